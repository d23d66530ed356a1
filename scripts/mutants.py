"""Mutation testing of the checks: can a small change to a correct solution pass?

A thin wrapper over :mod:`autograder.frontends.mutants` (the engine, generic over any
lesson), kept so the commands below stay true; lesson 8's equivalent mutants are listed in
``autograder/lessons/lesson8/mutants.py``. ``python -m autograder lint-lesson LESSON``
runs the same mutants as one of its checks.

    python scripts/mutants.py [LESSON] [--course DIR] [--lesson PATH]
                              [--notebook NAME] [--exercise GRADE_ID] [--jobs N]
                              [--variables] [--list] [--json FILE]

LESSON defaults to lesson8 and DIR to this repository. Exit status: 0 when every
non-equivalent mutant was killed, 1 when some survived (or a listed equivalent mutant no
longer exists, or was killed), 3 on a grader error.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.frontends import mutants as _engine  # noqa: E402
from autograder.frontends.mutants import *  # noqa: E402,F401,F403  (the engine's API, as before)

__all__ = [*_engine.__all__, "ROOT"]


def main(argv: list[str] | None = None) -> int:
    return _engine.cli(argv, course=ROOT, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
