"""Whose fault is it? The grader's own failures are never a student's zero.

Each test reproduces a way the grader itself can fail, through the real front ends, and
asserts that the outcome is a grader error (exit status 3, ``"grader_error": true``, an
*error* in pytest), never a failing exercise with a message that blames the student. The
nbgrader side is tested in ``test_nbgrader_trust.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autograder.engine import pool, session
from autograder.frontends.cli import exit_status
from autograder.engine.grade import grade_notebook
from autograder.engine.preflight import forget
from autograder.engine.sandbox import Limits

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions" / "lesson8"
BLAME = ("your cell", "your code", "os._exit", "sys.exit")


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or dict(os.environ))


def with_cell(source: Path, grade_id: str, text: str, dest: Path) -> Path:
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell["source"] = text
    dest.write_text(json.dumps(nb))
    return dest


# ----------------------------------------------------------------------------- a course with its own kit
@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course directory that holds its own copy of the kit, beside the installed one."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(REPO / "autograder", root / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SOLUTIONS, root / "lesson8")
    return root


@pytest.mark.slow
def test_copied_kit_course_directory_gives_the_solution_full_marks(course, tmp_path):
    """Run from a course directory holding its own copy of the kit, does the command line
    grade the reference solutions in full (workers import the grader's copy, not the
    installed one)?"""
    proc = run("-m", "autograder", "preflight", cwd=course)
    assert proc.returncode == 0, proc.stderr
    assert str(course / "autograder") in proc.stdout          # the grader used the course's copy
    out = tmp_path / "out.json"
    proc = run("-m", "autograder", "grade", "lesson8/01_matmul.ipynb", "lesson8/02_fully_connected.ipynb",
               "--jobs", "2", "--json", str(out), cwd=course)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    reports = json.loads(out.read_text())
    assert [(r["score"], r["max_score"], r["grader_error"]) for r in reports] == [(8, 8, False), (22, 22, False)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["spawned", "unconfined"])
def test_copied_kit_is_what_every_kind_of_worker_imports(course, mode):
    """Do spawned and unconfined workers, too, import the course's copy of the kit that
    the grader imported (the preflight compares the paths)?"""
    extra = {"spawned": {"AUTOGRADER_ZYGOTE": "0"}, "unconfined": {"AUTOGRADER_UNCONFINED": "1"}}[mode]
    proc = run("-m", "autograder", "preflight", cwd=course, env={**os.environ, **extra})
    assert proc.returncode == 0, proc.stderr
    assert str(course / "autograder") in proc.stdout


@pytest.mark.slow
def test_copied_kit_course_directory_through_pytest(course):
    """Does `pytest autograder` from that course directory pass every exercise too?"""
    proc = run("-m", "pytest", "autograder", "--notebook", "lesson8/01_matmul.ipynb", "-q",
               "-p", "no:cacheprovider", cwd=course)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "4 passed" in proc.stdout


# ----------------------------------------------------------------------------- the data is unavailable
@pytest.mark.slow
def test_data_outage_is_exit_3_with_one_line_and_nobody_graded(tmp_path, offline_env):
    """With the lesson's data unavailable, does the command line grade nobody, exit 3, and
    say in one line what is broken and how to fix it?"""
    out = tmp_path / "out.json"
    proc = run("-m", "autograder", "grade", str(SOLUTIONS / "02_fully_connected.ipynb"),
               str(SOLUTIONS / "03_backward.ipynb"), "--json", str(out), cwd=REPO, env=offline_env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("grader error: nobody was graded: the lesson's data is unavailable")
    assert "python -m autograder.data" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists() and "score" not in proc.stdout


@pytest.mark.slow
def test_data_outage_is_an_error_in_pytest_not_a_failure(tmp_path, offline_env):
    """Does `pytest autograder` report every exercise as an error (not a failure) when the
    grader cannot grade, with the one-line reason?"""
    xml = tmp_path / "junit.xml"
    proc = run("-m", "pytest", "autograder", "--notebook", str(SOLUTIONS / "02_fully_connected.ipynb"),
               "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", cwd=REPO, env=offline_env)
    assert proc.returncode != 0
    suite = ET.parse(xml).getroot().find("testsuite")
    assert int(suite.get("failures")) == 0 and int(suite.get("errors")) == 15, proc.stdout[-2000:]
    assert "the lesson's data is unavailable" in proc.stdout
    assert "Traceback" not in proc.stdout


# ----------------------------------------------------------------------------- workers
@pytest.fixture
def fresh_preflight():
    forget()
    yield
    forget()


def test_a_worker_importing_another_kit_is_a_grader_error(monkeypatch, fresh_preflight):
    """When a worker imports the kit from elsewhere than the grader did, is the notebook a
    grader failure (no exercise recorded, exit status 3) rather than a string of zeros?"""
    monkeypatch.setattr(pool, "KIT_DIR", "/elsewhere/autograder")
    report = grade_notebook(SOLUTIONS / "01_matmul.ipynb")
    assert report.grader_error and not report.exercises
    assert "imported the kit from" in report.grader_failure and "/elsewhere/autograder" in report.grader_failure
    assert report.as_json()["grader_error"] is True
    assert exit_status([report]) == 3


def test_a_worker_that_cannot_start_is_a_grader_error(monkeypatch):
    """When no worker can be started at all, is that the grader's failure?"""
    def broken(*args, **kwargs):
        raise OSError(24, "Too many open files")
    monkeypatch.setattr(pool, "take", lambda *a, **k: None)
    monkeypatch.setattr(pool, "spawn", broken)
    report = grade_notebook(SOLUTIONS / "01_matmul.ipynb")
    assert report.grader_error and "could not be started" in report.grader_failure


def crashing(tmp_path: Path) -> Path:
    return with_cell(SOLUTIONS / "01_matmul.ipynb", "matmul_elementwise",
                     "import os\nos._exit(3)\n", tmp_path / "crash.ipynb")


def test_a_crash_is_the_students_when_the_canary_runs(tmp_path):
    """When a student's cell kills the worker and a fresh worker runs the canary cleanly,
    is the crash charged to that exercise (and only to it), as before?"""
    report = grade_notebook(crashing(tmp_path))
    assert not report.grader_error
    results = {e.name: e for e in report.exercises}
    assert not results["matmul_elementwise"].passed
    assert "stopped the Python process" in results["matmul_elementwise"].message
    assert all(e.passed for name, e in results.items() if name != "matmul_elementwise")


def test_a_crash_is_the_graders_when_the_canary_fails_too(tmp_path, monkeypatch):
    """When the canary fails in a fresh worker as well, is the crash the grader's: no
    exercise charged, and no message that blames the student?"""
    monkeypatch.setattr(session, "CANARY", "raise RuntimeError('the grader is broken')")
    report = grade_notebook(crashing(tmp_path))
    assert report.grader_error and not report.exercises
    assert "canary" in report.grader_failure and "the grader is broken" in report.grader_failure
    assert not any(word in report.grader_failure for word in BLAME)


def test_a_bug_in_a_check_is_a_grader_error_that_blames_nobody(monkeypatch):
    """Does an exception inside a check become a grader error whose message never says
    "your code" or hints at os._exit?"""
    from autograder.engine import registry as checks
    ex = checks.EXERCISES["matmul_loops"]

    def buggy(sub, *args, **kwargs):        # matmul_loops has parts: (sub, parts)
        raise KeyError("a bug in the grader")
    monkeypatch.setitem(checks.EXERCISES, "matmul_loops", ex.__class__(**{**ex.__dict__, "check": buggy}))
    monkeypatch.setitem(checks.NOTEBOOKS, "01_matmul",
                        [checks.EXERCISES["matmul_loops"], *checks.NOTEBOOKS["01_matmul"][1:]])
    report = grade_notebook(SOLUTIONS / "01_matmul.ipynb")
    result = report.exercises[0]
    assert result.grader_error and not result.passed and result.score == 0
    assert "not graded" in result.message and "a bug in the grader" in result.message
    assert not any(word in result.message for word in BLAME)
    assert report.grader_error and not report.passed and exit_status([report]) == 3
    assert all(e.passed for e in report.exercises[1:])


def test_grader_modules_are_out_of_reach_of_student_code():
    """Inside a worker, can student code use `check` and `mnist_path` but not import the
    checks, their references or the data loader?"""
    readable, env = pool.settings()
    probe = (
        "import importlib, sys\n"
        "from autograder import check\n"
        "from autograder.data import mnist_path\n"
        "found = []\n"
        "for name in ('autograder.engine.registry', 'autograder.lessons.lesson8.fully_connected', 'autograder.engine.grade',\n"
        "             'autograder.engine.feedback', 'autograder.engine.stats'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        found.append(name)\n"
        "    except ImportError as exc:\n"
        "        message = str(exc)\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('autograder.'))\n"
        "loader = hasattr(sys.modules['autograder.data'], 'load_mnist_tensors')\n"
        "path = str(mnist_path())\n"
    )
    with session.Session(Limits(), readable=readable, env=env) as s:
        run = s.run_cell("probe", probe)
        assert run.status == "ok", run.reason
        got = s.get("found", "message", "loaded", "loader", "path")
    assert got["found"] == []
    assert "grader's own code" in got["message"]
    assert not any(n.startswith(("autograder.engine.registry", "autograder.engine.grade")) for n in got["loaded"])
    assert got["loader"] is False
    assert got["path"].endswith("mnist.pkl.gz")


def test_exit_status_contract():
    """Is the exit status 3 for a grader error, 2 for an unreadable file, 1 for a failed
    exercise and 0 when all passed, the most serious winning?"""
    from autograder.engine.report import ExerciseResult, NotebookReport
    ok = NotebookReport("a", [ExerciseResult("x", True, 1, 1, "")])
    failed = NotebookReport("b", [ExerciseResult("x", False, 0, 1, "")])
    unreadable = NotebookReport("c", error="not JSON")
    grader = NotebookReport("d", [ExerciseResult("x", False, 0, 1, "", grader_error=True)])
    assert exit_status([ok]) == 0
    assert exit_status([ok, failed]) == 1
    assert exit_status([failed, unreadable]) == 2
    assert exit_status([failed, unreadable, grader]) == 3
    assert NotebookReport.from_json(grader.as_json()) == grader


def test_a_bug_outside_the_checks_is_a_grader_failure(monkeypatch):
    """Does an exception in the grader's own machinery (here, while running the cells)
    become a grader failure of that notebook instead of crashing the whole run?"""
    from autograder.engine import submission

    def broken(self):
        raise ValueError("the grader's bug")
    monkeypatch.setattr(submission.RemoteSubmission, "execute", broken)
    report = grade_notebook(SOLUTIONS / "01_matmul.ipynb")
    assert report.grader_error and not report.exercises
    assert "ValueError: the grader's bug" in report.grader_failure
    assert exit_status([report]) == 3


def test_kit_rule_reads_module_names_not_prose():
    """Does the kit rule catch the kit named in an import string, but not a sentence that
    happens to contain the word?"""
    from autograder.engine import static
    from autograder.engine.registry import KIT_RULE
    table = static.aliases("from autograder import check\nfrom autograder.data import mnist_path\n")
    assert static.find_banned("def f():\n    return __import__('autograder.engine.registry')", KIT_RULE, table)
    assert static.find_banned("def f():\n    return mnist_path(), check", KIT_RULE, table) == []
    assert static.find_banned("def f():\n    print('the autograder is strict')", KIT_RULE, table) == []
