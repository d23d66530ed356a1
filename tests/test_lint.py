"""The code passes the linter the project is configured for (``[tool.ruff]`` in
pyproject.toml: pyflakes, syntax and statement errors, bugbear)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return [found]


def test_ruff_finds_nothing():
    done = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise",
                           "autograder", "scripts", "benchmarks", "tests", "nbgrader_config.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_would_catch_an_undefined_name(tmp_path):
    """The configuration really checks something: a file with an undefined name fails."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    return undefined_name\n")
    done = subprocess.run([*_ruff(), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                           str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "F821" in done.stdout
