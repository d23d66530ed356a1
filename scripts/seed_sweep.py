"""Run every statistical check of ``02_fully_connected`` and ``04_init_in_pytorch`` over many seeds.

A thin wrapper over lesson 8's seed sweep (``autograder/lessons/lesson8/seed_sweep.py``,
which the author's self-test ``python -m autograder lint-lesson lesson8`` runs too): for
every case the grader judges it counts the correct random draws that fail (false
failures: must be 0) and the power against the classic wrong variants.

    python scripts/seed_sweep.py [--seeds 1000]

Exits with status 1 if any correct draw failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.engine import discovery  # noqa: E402
from autograder.lessons.lesson8 import seed_sweep as _sweep  # noqa: E402
from autograder.lessons.lesson8.seed_sweep import *  # noqa: E402,F401,F403  (its API, as before)

__all__ = [*_sweep.__all__, "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per case (default 1000)")
    args = parser.parse_args(argv)
    total, text = discovery.lessons()["lesson8"].sweep(args.seeds)
    print(text)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
