"""Grading a large class: the progress bar, and grading on a Dask cluster."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.reports.progress import Progress, clock_text, wanted
from autograder.engine.report import ExerciseResult, NotebookReport

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "lesson8" / "02_fully_connected.ipynb"
RELEASE = ROOT / "release" / "lesson8" / "02_fully_connected.ipynb"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def report(passed: bool = True, error: str | None = None) -> NotebookReport:
    lin = ExerciseResult("lin", passed, 1.0 * passed, 1.0, "msg")
    return NotebookReport("nb.ipynb", [lin], error)


# -- progress bar ---------------------------------------------------------------------------

def test_bar_shows_done_elapsed_eta_and_counts():
    """Does the line show done/total, a bar, elapsed, an ETA from the mean time per notebook
    and the jobs, and how many passed, failed and could not be read?"""
    clock, stream = FakeClock(), io.StringIO()
    bar = Progress(8, stream=stream, enabled=True, jobs=2, clock=clock, width=200)
    bar.draw()
    assert stream.getvalue() == ("\r0/8 [" + "-" * 20 + "] 0:00 elapsed, ETA ? | "
                                 "0 passed, 0 failing, 0 unreadable")
    clock.now += 10
    bar.advance(report(True), 6.0)
    bar.advance(report(False), 8.0)
    bar.advance(report(error="bad JSON"), 0.0)
    bar.advance(report(True), 6.0)
    bar.draw()
    # 4 done, mean 5 s each, 4 left on 2 jobs: 10 s to go
    assert stream.getvalue().rsplit("\r", 1)[1] == (
        "4/8 [" + "#" * 10 + "-" * 10 + "] 0:10 elapsed, ETA 0:10 | "
        "2 passed, 1 failing, 1 unreadable")


def test_clear_blanks_the_line_and_a_shorter_line_overwrites_a_longer_one():
    """Does clear() leave the cursor at the start of a blank line, and does a redraw that is
    shorter than the last one pad over its leftovers?"""
    stream = io.StringIO()
    bar = Progress(2, stream=stream, enabled=True, clock=FakeClock(), width=200)
    bar.draw()
    width = len(stream.getvalue()) - 1
    bar.clear()
    assert stream.getvalue().endswith("\r" + " " * width + "\r")
    bar.clear()                                     # nothing on screen: writes nothing
    assert stream.getvalue().endswith("\r" + " " * width + "\r")
    bar.draw()
    bar.line = lambda: "short"
    bar.draw()
    assert stream.getvalue().endswith("\rshort" + " " * (width - 5))


def test_bar_is_cut_to_the_terminal_width():
    """Is the line cut short of the terminal's width, so that it never wraps (a wrapped
    line cannot be redrawn with \\r)?"""
    stream = io.StringIO()
    Progress(40, stream=stream, enabled=True, clock=FakeClock(), width=30).draw()
    assert stream.getvalue() == "\r0/40 [" + "-" * 20 + "] 0"      # 29 characters


def test_disabled_bar_writes_nothing():
    """Does a disabled bar stay silent whatever happens?"""
    stream = io.StringIO()
    bar = Progress(3, stream=stream, enabled=False, clock=FakeClock())
    bar.draw()
    bar.advance(report(), 1.0)
    bar.draw()
    bar.clear()
    assert stream.getvalue() == ""


def test_bar_only_when_a_person_watches(monkeypatch):
    """Is the bar wanted only for several notebooks on a terminal, outside CI, not switched off?"""
    monkeypatch.delenv("CI", raising=False)
    assert wanted(Terminal(), 2)
    assert not wanted(io.StringIO(), 2)             # piped
    assert not wanted(Terminal(), 1)                # one notebook
    assert not wanted(Terminal(), 2, allowed=False)  # --quiet / --no-progress
    monkeypatch.setenv("CI", "true")
    assert not wanted(Terminal(), 2)


def test_clock_text():
    """Are times shown as m:ss, and h:mm:ss past an hour?"""
    assert [clock_text(s) for s in (0, 7.4, 754, 3723, -3)] == \
        ["0:00", "0:07", "12:34", "1:02:03", "0:00"]


# -- grading on a Dask cluster --------------------------------------------------------------

def run_cli(*args: str, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]          # free once closed; nothing listens there


@pytest.mark.parametrize("address", ["closed port", "no-port-number"])
def test_unreachable_scheduler_is_one_line_and_status_3(address):
    """Does an unreachable scheduler, or a malformed address, give exit status 3 (the grader
    could not grade) and one line on stderr, no traceback, at once?"""
    pytest.importorskip("distributed")
    if address == "closed port":
        address = f"tcp://127.0.0.1:{closed_port()}"
    proc = run_cli(str(SOLUTION), "--scheduler", address,
                   env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, timeout=30)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], proc.stderr


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def runs(scheduler, tmp_path_factory):
    """The same three notebooks graded locally and on the cluster."""
    tmp = tmp_path_factory.mktemp("scale")
    truncated = tmp / "02_fully_connected-truncated.ipynb"
    raw = SOLUTION.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    paths = [str(SOLUTION), str(RELEASE), str(truncated)]
    out = {}
    for name, extra in (("cluster", ["--scheduler", scheduler]), ("local", ["--jobs", "2"])):
        proc = run_cli(*paths, *extra, "--json", str(tmp / f"{name}.json"))
        assert (tmp / f"{name}.json").exists(), proc.stderr[-2000:]
        out[name] = proc, json.loads((tmp / f"{name}.json").read_text())
    return paths, out


@pytest.mark.slow
def test_cluster_reports_come_back_in_input_order(runs):
    """Are the cluster's reports in input order, the solution full marks, the stub failing
    as not implemented, the truncated file unreadable, with exit status 2 and no traceback?"""
    paths, out = runs
    proc, reports = out["cluster"]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert [r["notebook"] for r in reports] == paths
    solution, release, truncated = reports
    assert (solution["score"], solution["max_score"]) == (22, 22)
    assert all(e["passed"] for e in solution["exercises"])
    assert release["score"] == 0 and release["exercises"]
    assert all("not implemented yet" in e["message"] for e in release["exercises"])
    assert "truncated" in truncated["error"] and not truncated["exercises"]
    assert proc.stdout.index(paths[0]) < proc.stdout.index(paths[1]) < proc.stdout.index(paths[2])
    assert f"(on {socket.gethostname()}: confined" in proc.stdout or "unconfined" in proc.stdout


@pytest.mark.slow
def test_a_worker_that_cannot_confine_says_so():
    """Does a worker machine without confinement say so in the report it sends back, under
    the notebook's own file name?"""
    code = ("import json, sys; from autograder.frontends.dask import grade_bytes; "
            "print(json.dumps(grade_bytes('stub.ipynb', sys.stdin.buffer.read(), {})))")
    proc = subprocess.run([sys.executable, "-c", code], input=RELEASE.read_bytes(), cwd=ROOT,
                          capture_output=True, timeout=300,
                          env={**os.environ, "AUTOGRADER_UNCONFINED": "1"})
    data = json.loads(proc.stdout)
    assert data["confinement"] == f"on {socket.gethostname()}: " \
        "confinement switched off by AUTOGRADER_UNCONFINED=1"
    assert data["score"] == 0 and data["max_score"] == 22 and data["seconds"] > 0


@pytest.mark.slow
def test_cluster_grades_exactly_as_local_grading(runs):
    """Does grading on the cluster give the same JSON as grading on this machine?"""
    _, out = runs
    (_, remote), (proc, local) = out["cluster"], out["local"]
    assert proc.returncode == 2

    def verdicts(r):
        return [(e["name"], e["passed"], e["score"], e["message"]) for e in r["exercises"]]
    assert [verdicts(r) for r in remote] == [verdicts(r) for r in local]
    assert remote == local          # paths, scores and the error message too
