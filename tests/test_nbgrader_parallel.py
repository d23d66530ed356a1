"""``nbgrader autograde`` with the kit's workers in parallel: the same gradebook as one at a time.

Two copies of one course, with the same class (cheaters and broken files included), are
graded by the real ``nbgrader autograde``: one with ``SandboxGrade.workers = 1`` (one
notebook after another in nbgrader's thread), one with ``workers = 2`` (graded ahead).
Their gradebooks and autograded notebooks are compared.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from test_nbgrader_flow import (ASSIGNMENT, NOTEBOOK, REPO, cell_by_id, delete_cell,  # noqa: E402
                                nbgrader, set_source, submit, without_hidden)

pytestmark = pytest.mark.slow


def make_course(root: Path, workers: int, extra_config: str = "") -> dict:
    """A course with only the fully connected notebook; returns its source and release."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "assignments" / ASSIGNMENT, root / "assignments" / ASSIGNMENT,
                    ignore=lambda folder, names: [n for n in names if n.endswith(".ipynb")
                                                  and n != f"{NOTEBOOK}.ipynb"])
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.SandboxGrade.workers = {workers}\nc.SandboxGrade.cell_timeout = 20\n{extra_config}")
    nbgrader(root, "generate_assignment", ASSIGNMENT)
    src = json.loads((root / "assignments" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text())
    release = json.loads((root / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text())
    return {"src": src, "release": release}


def the_class(src: dict, release: dict) -> dict[str, dict | str]:
    solution = without_hidden(src)
    wrong_lin = "def lin(x, w, b):\n    return x @ w\n"
    cheat = set_source(copy.deepcopy(solution), "lin",
                       "import torch\ntorch.allclose = lambda *a, **k: True\n"
                       "torch.equal = lambda *a, **k: True\nprint('✓ lin · lin(x, w, b): passed.')\n"
                       + wrong_lin)
    set_source(cheat, "relu", "import os\ndef relu(x):\n    os._exit(0)\n")
    renamed = set_source(copy.deepcopy(solution), "lin", wrong_lin)
    cell_by_id(renamed, "test_relu")["metadata"]["nbgrader"]["grade_id"] = "my_relu_test"
    return {
        "alice": solution,
        "bob": release,
        "carol": set_source(copy.deepcopy(solution), "lin", wrong_lin),
        "dave": '{"cells": [{"cell_type": "code", "source": "def lin(x',       # truncated file
        "erin": delete_cell(copy.deepcopy(solution), "test_lin"),
        "jack": cheat,                                                        # cheats, then exits
        "kate": renamed,
    }


def gradebook(root: Path) -> dict:
    """Every score, comment and needs-manual-grade flag of the notebook, by student and cell
    (students without a submission are left out)."""
    from nbgrader.api import Gradebook, MissingEntry
    out = {}
    with Gradebook("sqlite:///" + str(root / "gradebook.db")) as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student.id)
            except MissingEntry:
                continue
            out[student.id] = {
                "grades": {g.cell.name: (g.auto_score, g.manual_score, g.needs_manual_grade)
                           for g in sub.grades},
                "comments": {c.cell.name: (c.auto_comment, c.manual_comment) for c in sub.comments},
            }
    return out


def autograded(root: Path, students) -> dict[str, str]:
    return {s: (root / "autograded" / s / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text() for s in students}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = {}
    for workers in (1, 2):
        root = tmp_path_factory.mktemp(f"course-{workers}")
        course = make_course(root, workers)
        students = the_class(course["src"], course["release"])
        for student, nb in students.items():
            submit(root, student, nb)
        proc = nbgrader(root, "autograde", ASSIGNMENT, ok=False)
        runs[workers] = {"root": root, "proc": proc,
                         "gradebook": gradebook(root), "autograded": autograded(root, students),
                         "students": sorted(students)}
    return runs


def test_parallel_gradebook_is_the_sequential_one(two_runs):
    """Are the scores, comments and needs-manual-grade flags of every student the same
    whether nbgrader graded with one worker or two?"""
    one, two = two_runs[1], two_runs[2]
    assert one["proc"].returncode == 0, one["proc"].stderr[-3000:]
    assert two["proc"].returncode == 0, two["proc"].stderr[-3000:]
    assert sorted(one["gradebook"]) == one["students"]
    assert two["gradebook"] == one["gradebook"]
    full = one["gradebook"]["alice"]["grades"]
    assert all(score > 0 for score, _, _ in full.values())
    assert one["gradebook"]["jack"]["grades"]["test_lin"][0] == 0      # the cheat did not work
    assert one["gradebook"]["jack"]["grades"]["test_relu"][0] == 0     # os._exit: still charged


def test_parallel_autograded_notebooks_are_the_sequential_ones(two_runs):
    """Is every autograded notebook byte for byte the same with one worker or two?"""
    one, two = two_runs[1]["autograded"], two_runs[2]["autograded"]
    for student in one:
        assert two[student] == one[student], student


def test_parallel_run_grades_ahead(two_runs):
    """Did the parallel run use the results it graded ahead (no notebook graded twice)?"""
    log = two_runs[2]["proc"].stderr
    assert "graded again" not in log
    assert "Grader error" not in log


def test_changed_submission_is_graded_again(tmp_path):
    """Is a submission that changes after it was graded ahead, before nbgrader reaches it,
    graded again from its new content?"""
    hook = """
import time as _time
def _change_later_submission(**kwargs):
    # nbgrader calls this before each student; on the first, wait until zed's notebook is
    # graded ahead, then replace it (the release, 0 points) with the solution.
    from autograder.frontends.nbgrader import ahead as nbgrader_ahead
    run = nbgrader_ahead.current()
    if run is None or _change_later_submission.done:
        return
    _change_later_submission.done = True
    job = next(j for j in run.jobs if j.student == "zed")
    deadline = _time.monotonic() + 300
    while job.state != "done" and _time.monotonic() < deadline:
        _time.sleep(0.1)
    import shutil
    shutil.copy("solution.ipynb", "submitted/zed/lesson8/02_fully_connected.ipynb")
_change_later_submission.done = False
c.Autograde.pre_convert_hook = _change_later_submission
"""
    course = make_course(tmp_path, 2, hook)
    solution = without_hidden(course["src"])
    (tmp_path / "solution.ipynb").write_text(json.dumps(solution))
    for student, nb in (("amy", solution), ("bea", solution), ("zed", course["release"])):
        submit(tmp_path, student, nb)
    proc = nbgrader(tmp_path, "autograde", ASSIGNMENT)
    assert "zed" in proc.stderr and "graded again" in proc.stderr
    book = gradebook(tmp_path)
    assert book["zed"]["grades"] == book["amy"]["grades"]                # the new content's grade
    assert all(score > 0 for score, _, _ in book["zed"]["grades"].values())


def test_student_option_and_missing_submissions(tmp_path):
    """With --assignment and --student, is only that student graded, is a student with no
    submission left without one, and does a second run without --force skip what is
    already graded?"""
    course = make_course(tmp_path, 2)
    solution = without_hidden(course["src"])
    submit(tmp_path, "amy", solution)
    submit(tmp_path, "bea", course["release"])
    nbgrader(tmp_path, "db", "student", "add", "zoe")          # in the class, never submitted
    nbgrader(tmp_path, "autograde", "--assignment", ASSIGNMENT, "--student", "bea")
    assert sorted(gradebook(tmp_path)) == ["bea"]
    proc = nbgrader(tmp_path, "autograde", ASSIGNMENT)
    assert "Skipping existing assignment" in proc.stderr
    book = gradebook(tmp_path)
    assert sorted(book) == ["amy", "bea"]
    assert all(score > 0 for score, _, _ in book["amy"]["grades"].values())
    assert all(score == 0 for score, _, _ in book["bea"]["grades"].values())


def kit_processes(marker: str) -> list[int]:
    """Processes whose command line or environment mentions ``marker`` (a worker's scratch)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if marker.encode() in cmd or marker.encode() in env:
            found.append(int(pid))
    return found


def test_ctrl_c_stops_every_worker_at_once(tmp_path):
    """Does Ctrl-C (SIGINT) during a parallel autograde end nbgrader and every worker
    within seconds, even while students' cells loop forever?"""
    course = make_course(tmp_path, 2)
    looping = set_source(without_hidden(course["src"]), "lin",
                         "def lin(x, w, b):\n    return x @ w + b\nwhile True:\n    pass\n")
    for student in ("amy", "bea", "cid"):
        submit(tmp_path, student, looping)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    proc = subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = f"autograder-scratch-{proc.pid}-"      # every worker's (and zygote's) scratch
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(kit_processes(marker)) < 3:
        time.sleep(0.5)
    time.sleep(3)                           # students' endless loops are running now
    assert kit_processes(marker), "no worker started"
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    proc.communicate(timeout=60)
    assert time.monotonic() - start < 10
    time.sleep(1)
    assert kit_processes(marker) == []
