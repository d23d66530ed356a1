"""Whose fault is it, under ``nbgrader autograde``? The grader's failures write no score.

Real nbgrader, temporary course directories. Where the grader cannot grade, autograde
exits non-zero, its log says in one line what is broken and how to fix it, and the
gradebook keeps what it held.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from test_nbgrader_flow import ASSIGNMENT, NOTEBOOK, REPO, set_source, source, submit, without_hidden  # noqa: E402
from test_nbgrader_parallel import gradebook, make_course  # noqa: E402

pytestmark = pytest.mark.slow


def run_nbgrader(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m nbgrader`` from the course root: the course's folder comes first on sys.path."""
    env = dict(env or os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("JUPYTER_CONFIG_DIR", None)
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Grader error" in line]


def test_course_with_its_own_copy_of_the_kit_gives_the_solution_full_marks(tmp_path):
    """From a course directory that holds its own copy of the kit (which nbgrader then
    imports), does autograde give the reference solution full marks?"""
    course = make_course(tmp_path, 2)
    shutil.copytree(REPO / "autograder", tmp_path / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    solution = without_hidden(course["src"])
    submit(tmp_path, "alice", solution)
    submit(tmp_path, "amos", solution)
    proc = run_nbgrader(tmp_path, "autograde", ASSIGNMENT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert error_lines(proc.stderr) == []
    points = {c["metadata"]["nbgrader"]["grade_id"]: float(c["metadata"]["nbgrader"]["points"])
              for c in course["src"]["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    for student in ("alice", "amos"):
        assert {k: score for k, (score, _, _) in gradebook(tmp_path)[student]["grades"].items()} == points


def test_data_outage_grades_nobody_and_keeps_the_gradebook(tmp_path, offline_env):
    """With the lesson's data unavailable, does autograde --force exit non-zero with one
    error line naming the problem and its fix, before touching anyone: the grades already
    in the gradebook and the autograded notebooks stay as they were?"""
    course = make_course(tmp_path, 2)
    solution = without_hidden(course["src"])
    submit(tmp_path, "alice", solution)
    submit(tmp_path, "bob", course["release"])
    first = run_nbgrader(tmp_path, "autograde", ASSIGNMENT)
    assert first.returncode == 0, first.stderr[-3000:]
    before = gradebook(tmp_path)
    db_before = (tmp_path / "gradebook.db").read_bytes()
    graded = tmp_path / "autograded" / "alice" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    graded_before = graded.read_text()

    submit(tmp_path, "alice", course["release"])          # a resubmission that must not be graded
    proc = run_nbgrader(tmp_path, "autograde", ASSIGNMENT, "--force", env=offline_env)
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert "ERROR" in line and "data is unavailable" in line and "AUTOGRADER_MNIST" in line
    assert "Traceback" not in proc.stderr
    assert gradebook(tmp_path) == before
    assert (tmp_path / "gradebook.db").read_bytes() == db_before   # not written at all
    assert graded.read_text() == graded_before


def test_broken_test_cell_writes_no_score(tmp_path):
    """When a test cell's own code is broken (the instructor's, not a student's), is no
    score written for a notebook that reaches it, does autograde exit non-zero, and does
    one error line say which cell raised what? (A notebook that fails the cell's visible
    check first never runs the broken part, and is graded.)"""
    course = make_course(tmp_path, 2)
    src_path = tmp_path / "assignments" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    src = json.loads(src_path.read_text())
    set_source(src, "test_relu", source(src, "test_relu").rstrip("\n")
               + "\n### BEGIN HIDDEN TESTS\ncheck_relu_again()\n### END HIDDEN TESTS\n")
    src_path.write_text(json.dumps(src, indent=1))
    assert run_nbgrader(tmp_path, "generate_assignment", ASSIGNMENT, "--force").returncode == 0
    submit(tmp_path, "alice", without_hidden(src))
    submit(tmp_path, "bob", course["release"])
    proc = run_nbgrader(tmp_path, "autograde", ASSIGNMENT)
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert "alice" in line and "test cell test_relu raised NameError" in line
    book = gradebook(tmp_path)
    assert {score for score, _, _ in book["alice"]["grades"].values()} == {None}
    assert {score for score, _, _ in book["bob"]["grades"].values()} == {0.0}
    assert not (tmp_path / "autograded" / "alice" / ASSIGNMENT).exists()


# A student whose cell kills the worker (os._exit) is still charged for that exercise (the
# canary passes): jack in test_nbgrader_flow.py and test_nbgrader_parallel.py.
