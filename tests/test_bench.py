"""The benchmark runs and prints what the README quotes from it (speed is reported by the
benchmark, never asserted: this only checks that it still works)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("nbgrader")


@pytest.mark.slow
def test_benchmark_prints_every_ratio_side_by_side():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--repeat", "1",
                           "--class-repeat", "1", "--class-size", "2", "--skip-nbconvert"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    ratio = r"\s+[\d.]+ s\s+[\d.]+x"
    for label in ("python -m autograder grade one.ipynb", "pytest autograder --notebook one.ipynb",
                  r"autograder grade --jobs 2  vs plain scripts",
                  r"nbgrader autograde \(workers = cores\)  vs plain scripts",
                  r"nbgrader's own work, nothing graded  vs plain scripts"):
        assert re.search(label + ratio, out), f"no ratio for {label!r} in:\n{out}"
    assert re.search(r"every run, in seconds: \{.*\"nbgrader\": \[[\d.]+\]", out)
    assert "peak memory (PSS)" in out
