"""Student code is untrusted input: attacks and broken files, through both front ends.

Each submission here is the reference notebook with one thing done to it; the test
asserts the verdict and the message. Grading is slow (seconds per notebook), so each
notebook is graded once per module.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from xml.etree import ElementTree

import pytest

from autograder.engine.grade import grade_notebook
from autograder.engine import sandbox
from autograder.engine.sandbox import Limits, confinement
from autograder.engine.session import Session

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "assignments" / "lesson8" / "02_fully_connected.ipynb"
CONFINED = confinement()[0]


def _nb() -> dict:
    return json.loads(SOURCE.read_text())


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _set(nb: dict, grade_id: str, source: str) -> dict:
    _cell(nb, grade_id)["source"] = source
    return nb


def _append(nb: dict, grade_id: str, extra: str) -> dict:
    cell = _cell(nb, grade_id)
    cell["source"] = "".join(cell["source"]) + "\n" + extra
    return nb


SUBMISSIONS = {
    # name: (how the notebook is made, {exercise: phrase expected in its message}, limits)
    "monkeypatched-allclose": (lambda: _append(_set(_nb(), "lin", "def lin(x, w, b):\n    return x @ w\n"),
                                               "lin", "import torch\ntorch.allclose = lambda *a, **k: True\n"
                                                      "torch.equal = lambda *a, **k: True\n"),
                               {"lin": "without the bias"}),
    "fake-report-printed": (lambda: _set(_nb(), "relu", "print('relu · relu(x): passed.\\n[PASS] 1/1')\n"
                                                        "def relu(x):\n    return x\n"),
                            {"relu": "wrong value"}),
    "liar-object": (lambda: _set(_nb(), "lin", "class Liar:\n    shape = (5, 3)\n"
                                               "    def __eq__(self, other): return True\n"
                                               "    def __bool__(self): return True\n"
                                               "def lin(x, w, b):\n    return Liar()\n"),
                    {"lin": "should be a tensor"}),
    "patches-the-grader": (lambda: _append(_set(_nb(), "relu", "def relu(x):\n    return x\n"), "relu",
                                           "import autograder, autograder.engine.registry, autograder.engine.feedback\n"
                                           "autograder.engine.registry.run_exercise = lambda *a, **k: None\n"
                                           "autograder.engine.feedback.close = lambda *a, **k: True\n"),
                           {"relu": "grader's own code"}),   # and the patch could not reach the grader anyway
    "os-exit-in-relu": (lambda: _set(_nb(), "relu", "import os\ndef relu(x):\n    os._exit(3)\n"),
                        {"relu": "stopped"}),
    "endless-loop-cell": (lambda: _set(_nb(), "kaiming_mode", "while True:\n    pass\n"),
                          {"kaiming_mode": "did not finish in time"}),
    "memory-hog": (lambda: _set(_nb(), "shifted_relu",
                                "def shifted_relu(x):\n    big = torch.empty(40_000_000_000)\n    return big\n"),
                   {"shifted_relu": "more memory than the grader allows"}),
    "deleted-cell": (lambda: {**_nb(), "cells": [c for c in _nb()["cells"]
                                                 if c["metadata"].get("nbgrader", {}).get("grade_id") != "relu"]},
                     {"relu": "missing from the notebook"}),
    "duplicated-grade-id": (lambda: (lambda nb: {**nb, "cells": nb["cells"] + [_cell(nb, "dims")]})(_nb()),
                            {"dims": "more than one cell"}),
    "enormous-output": (lambda: (lambda nb: (_cell(nb, "lin").update(outputs=[{
        "output_type": "stream", "name": "stdout", "text": "x" * 30_000_000}]), nb)[1])(_nb()), {}),
}
LIMITS = Limits(cell_timeout=10, notebook_timeout=300, memory=6 * 2**30)


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("untrusted")
    paths = {}
    for name, (make, *_rest) in SUBMISSIONS.items():
        paths[name] = folder / f"02_fully_connected-{name}.ipynb"
        paths[name].write_text(json.dumps(make()))
    return paths


@pytest.fixture(scope="module")
def graded(attack_files):
    return {name: grade_notebook(path, limits=LIMITS) for name, path in attack_files.items()}


@pytest.mark.parametrize("name", list(SUBMISSIONS))
def test_attack_changes_only_its_own_exercises(graded, name):
    """Does each attack or broken cell fail exactly the exercises it touches, with a reason,
    while every other exercise keeps its points?"""
    expected = SUBMISSIONS[name][1]
    report = graded[name]
    assert report.error is None
    failed = {e.name: e.message for e in report.exercises if not e.passed}
    assert set(failed) == set(expected), failed
    for exercise, phrase in expected.items():
        assert phrase in failed[exercise], failed[exercise]
    assert report.score == report.max_score - sum(e.max_score for e in report.exercises if e.name in expected)


def test_attacks_through_pytest_front_end(attack_files, tmp_path):
    """Does `pytest autograder --notebook` reach the same verdicts on the attacks, one failing
    test per affected exercise, with the teaching message and no grader traceback?"""
    names = ["monkeypatched-allclose", "fake-report-printed", "liar-object", "patches-the-grader",
             "os-exit-in-relu"]
    junit = tmp_path / "junit.xml"
    args = [a for name in names for a in ("--notebook", str(attack_files[name]))]
    proc = subprocess.run([sys.executable, "-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={junit}", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stdout[-2000:]
    failed = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            notebook = case.get("classname", "").split("test_notebooks.", 1)[-1]
            failed[(notebook, case.get("name"))] = failure.get("message", "") + (failure.text or "")
    expected = {(f"02_fully_connected-{name}", exercise): phrase
                for name in names for exercise, phrase in SUBMISSIONS[name][1].items()}
    got = {(nb.removesuffix(".ipynb"), ex): msg for (nb, ex), msg in failed.items()}
    assert set(got) == set(expected), sorted(got)
    for key, phrase in expected.items():
        assert phrase in got[key] and "Traceback" not in got[key].split("Your code's traceback")[0]


BAD_FILES = {
    "truncated.ipynb": (lambda: SOURCE.read_text()[:5000], "truncated"),
    "not-json.ipynb": (lambda: "this is not a notebook", "not valid JSON"),
    "no-cells.ipynb": (lambda: json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}),
                       "no cells"),
    "format-5.ipynb": (lambda: json.dumps({"nbformat": 5, "cells": [{}]}), "format version 5"),
    "list-at-top.ipynb": (lambda: "[1, 2, 3]", "not a notebook"),
    "foreign.ipynb": (lambda: json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                          "cells": [{"cell_type": "code", "source": "1", "metadata": {},
                                                     "outputs": []}]}), "none of this kit's exercises"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    for name, (make, _) in BAD_FILES.items():
        (folder / name).write_text(make())
    return folder


def test_cli_reports_bad_files_in_one_line_and_grades_the_rest(bad_files, tmp_path):
    """Does `python -m autograder grade` give each unusable file a one-line reason, exit
    non-zero, print no traceback, and still grade the good notebook in the same run?"""
    good = tmp_path / "good.ipynb"
    good.write_text(SOURCE.read_text())
    paths = [str(bad_files / n) for n in BAD_FILES] + [str(good)]
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", *paths, "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    reports = json.loads(out.read_text())
    assert [Path(r["notebook"]).name for r in reports] == [*BAD_FILES, "good.ipynb"]
    for report, (name, (_, phrase)) in zip(reports, BAD_FILES.items()):
        assert phrase in report["error"], (name, report["error"])
        assert len(report["error"].splitlines()) == 1
    assert reports[-1]["score"] == reports[-1]["max_score"] == 22


def test_pytest_front_end_reports_a_broken_file_without_traceback(bad_files):
    """Does `pytest autograder --notebook BROKEN` fail with the one-line reason only?"""
    proc = subprocess.run([sys.executable, "-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
                           "--notebook", str(bad_files / "truncated.ipynb")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "truncated" in proc.stdout
    assert "Traceback" not in proc.stdout and "autograder/" not in proc.stdout.split("short test summary")[0]


# --------------------------------------------------------------------------- confinement
needs_confinement = pytest.mark.skipif(not CONFINED, reason=f"unconfined here: {confinement()[1]}")


@pytest.fixture(scope="module")
def session():
    with Session(Limits(cell_timeout=20)) as s:
        yield s


@needs_confinement
def test_worker_cannot_read_course_files(session):
    """Can a submission read the course's assignments, solutions or gradebook? (It must not.)"""
    for target in (SOURCE, ROOT / "pyproject.toml", ROOT / "solutions", Path.home() / ".bashrc"):
        run = session.run_cell("probe", f"open({str(target)!r}).read()")
        assert run.status == "error", target
        assert run.error["ename"] in ("FileNotFoundError", "PermissionError", "IsADirectoryError",
                                      "NotADirectoryError"), run.error


@needs_confinement
def test_worker_cannot_write_outside_scratch(session, tmp_path):
    """Can a submission write to the gradebook's folder, the kit, or the home folder? (No.)"""
    for target in (ROOT / "gradebook.db", ROOT / "autograder" / "pwned.py", tmp_path / "x"):
        existed = target.exists()
        run = session.run_cell("probe", f"open({str(target)!r}, 'w').write('x')")
        assert run.status == "error", target
        assert target.exists() == existed and (not existed or target.read_bytes() != b"x")
    ok = session.run_cell("probe", "open('scratch.txt', 'w').write('fine')")
    assert ok.status == "ok"


@needs_confinement
def test_worker_has_no_network(session):
    """Can a submission open a network connection, even to this machine? (No.)"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    run = session.run_cell("probe", f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)")
    server.close()
    assert run.status == "error"
    assert not accepted


def test_worker_death_is_reported_and_recovered():
    """Does a killed worker give a clear reason, and does the next request get a fresh worker
    that still has the earlier cells' definitions?"""
    with Session(Limits(cell_timeout=20)) as s:
        assert s.run_cell("a", "x = 41").status == "ok"
        died = s.run_cell("b", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert died.status == "crashed" and "SIGKILL" in died.error["evalue"]
        assert s.run_cell("c", "y = x + 1").status == "ok"
        assert s.get("y")["y"] == 42


@pytest.mark.skipif(sandbox.process_cap() == "none",
                    reason="no pids cgroup here, and RLIMIT_NPROC does not bind root")
def test_fork_bomb_is_capped_and_cleaned_up():
    """Does a fork bomb hit the process cap with a clear error, leave the worker usable,
    and leave no process behind when the session closes?"""
    with Session(Limits(processes=64, cell_timeout=30)) as s:
        run = s.run_cell("bomb", "import os, time\nkids = 0\nwhile True:\n    if os.fork() == 0:\n"
                                 "        time.sleep(120)\n        os._exit(0)\n    kids += 1\n")
        assert run.status == "error" and run.error["ename"] == "BlockingIOError"
        assert 0 < s.get("kids")["kids"] < 64
        assert s.run_cell("after", "y = 1").status == "ok"
        cgroup = s._worker.cgroup
    if cgroup is not None:
        assert not cgroup.exists()
