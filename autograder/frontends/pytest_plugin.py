"""``pytest autograder``: grade notebooks, one test per exercise.

With no options it grades the released notebooks in place (``release/*/*.ipynb``,
what a self-learner edits); ``--notebook PATH`` (repeatable) grades any notebook.
A failing test shows the teaching message and nothing else: no traceback from inside
the grader. When the grader itself cannot grade (the preflight fails, or an exercise is a
grader error) the test is reported as an *error* at setup, not a failure: nothing is
charged to the student. The wiring is off unless pytest is pointed at this folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent          # autograder/
RELEASE = PACKAGE.parent / "release"


def pytest_addoption(parser):
    group = parser.getgroup("autograder", "grading lesson notebooks")
    group.addoption("--notebook", action="append", default=[], metavar="PATH",
                    help="grade this notebook (repeatable); default: the released notebooks")
    group.addoption("--lesson", action="append", default=[], metavar="PATH",
                    help="also use the lesson in this folder (not installed; repeatable)")


def _paths(config) -> list[Path]:
    return [Path(p) for p in config.getoption("notebook")] or sorted(RELEASE.glob("*/*.ipynb"))


def pytest_configure(config):
    """Start the zygote (or a spare worker) as early as possible: it imports torch and
    maps MNIST while this process collects and imports torch itself."""
    paths = _paths(config)
    if config.getoption("lesson"):
        from autograder.engine import discovery
        discovery.add_paths(config.getoption("lesson"))
    if paths:
        from autograder.engine import pool
        from autograder.engine.sandbox import Limits
        pool.prestart(1, Limits(), *pool.settings(), total=len(paths))
        pool.keep(1)


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name == "test_notebooks.py" and module_path.parent == PACKAGE:
        return Notebooks.from_parent(parent, path=module_path)
    return None


class ExerciseFailed(Exception):
    """Carries the teaching message of a failed exercise."""


class Notebooks(pytest.File):
    def collect(self):
        paths = _paths(self.config)
        if not paths:
            raise pytest.UsageError("no notebooks to grade: pass --notebook PATH")
        for path in paths:
            yield NotebookItems.from_parent(self, name=path.name, path_=path)


class NotebookItems(pytest.Collector):
    def __init__(self, *, path_: Path, **kwargs):
        super().__init__(**kwargs)
        self.notebook_path = path_
        self._report = None

    def collect(self):
        from autograder.engine.grade import catalogue, identify
        from autograder.engine.notebook import NotebookError, read_notebook
        try:
            kind = identify(read_notebook(self.notebook_path))
        except NotebookError as exc:
            yield Exercise.from_parent(self, name="notebook", reason=str(exc))
            return
        for ex in catalogue().NOTEBOOKS[kind]:
            yield Exercise.from_parent(self, name=ex.name)

    def report(self):
        """Grade the notebook once (after the preflight); a GraderError is kept and re-raised."""
        if self._report is None:
            from autograder.engine.errors import GraderError
            from autograder.engine.grade import grade_notebook
            from autograder.engine.preflight import preflight
            from autograder.engine.report import NotebookReport
            try:
                preflight()
            except GraderError as exc:
                self._report = NotebookReport(str(self.notebook_path), grader_failure=str(exc))
            else:
                self._report = grade_notebook(self.notebook_path)
        return self._report


class Exercise(pytest.Item):
    def __init__(self, *, reason: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason

    def setup(self):
        """Grade (once per notebook); the grader's own failure is an error, not a failure."""
        if self.reason:
            return
        report = self.parent.report()
        if report.grader_failure:
            pytest.fail(f"grader error, nothing was graded: {report.grader_failure}", pytrace=False)
        for result in report.exercises:
            if result.name == self.name and result.grader_error:
                pytest.fail(f"grader error: {result.message}", pytrace=False)

    def runtest(self):
        if self.reason:
            raise ExerciseFailed(f"{self.parent.notebook_path}: {self.reason}")
        report = self.parent.report()
        if report.error:
            raise ExerciseFailed(report.error)
        for result in report.exercises:
            if result.name == self.name:
                if not result.passed:
                    raise ExerciseFailed(result.message)
                return
        raise ExerciseFailed(f"{self.name}: no result was produced")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ExerciseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.parent.notebook_path, None, f"{self.parent.name}::{self.name}"


def pytest_sessionfinish(session, exitstatus):
    session.config._autograder_fast_exit = (
        int(exitstatus) if session.items and all(isinstance(i, Exercise) for i in session.items) else None)


def pytest_unconfigure(config):
    """After a grading-only run has reported, skip the interpreter's teardown of torch and
    of the graded data (about half a second), as ``python -m autograder`` does."""
    status = getattr(config, "_autograder_fast_exit", None)
    if status is not None:
        import os
        import sys

        from autograder.engine import pool
        sys.stdout.flush()
        sys.stderr.flush()
        pool.shutdown()
        os._exit(status)
