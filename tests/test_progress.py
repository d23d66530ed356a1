"""The progress line: grader errors counted, and log lines printed above it, not into it."""

from __future__ import annotations

import io
import logging
import sys

from autograder.reports.progress import Progress, log_around
from autograder.engine.report import ExerciseResult, NotebookReport


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def report(passed=True, error=None, grader_failure=None) -> NotebookReport:
    return NotebookReport("nb.ipynb", [ExerciseResult("lin", passed, 1.0 * passed, 1.0, "msg")],
                          error, grader_failure=grader_failure)


def test_grader_errors_are_counted_apart():
    """Is a notebook the grader failed on counted as a grader error, not as failing, and
    shown only once there is one?"""
    bar = Progress(3, stream=io.StringIO(), enabled=True, clock=lambda: 0.0, width=200)
    bar.advance(report(True), 1.0)
    assert bar.line().endswith("| 1 passed, 0 failing, 0 unreadable")
    bar.advance(report(False, grader_failure="the lesson's data is unavailable"), 1.0)
    bar.advance(report(False), 1.0)
    assert bar.line().endswith("| 1 passed, 1 failing, 0 unreadable, 1 grader error")


def test_log_lines_go_above_the_bar(monkeypatch):
    """While the bar is shown, does a log record (from a console handler, as nbgrader's)
    leave the bar's line, print whole, and is the bar drawn again below it?"""
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    logger = logging.getLogger("test_progress.app")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        bar = Progress(4, stream=stream, enabled=True, clock=lambda: 0.0, width=200)
        with log_around(bar, logger):
            bar.draw()
            logger.warning("Autograding alice")
            assert logger.handlers != [handler]            # routed through tqdm meanwhile
        assert logger.handlers == [handler]                # and put back afterwards
        bar.close()
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    before, after = text.split("Autograding alice\n")
    assert before.endswith("\r" + " " * len(bar.line()) + "\r")     # the bar was cleared first
    assert after.startswith("\r0/4 [")                               # then drawn again
