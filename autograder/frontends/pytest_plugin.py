"""The pytest front end: grade notebooks, one test per exercise.

Installed with the kit as a pytest plugin (entry-point group ``pytest11``, name
``autograder``), so it is loaded by every pytest run in that environment, and it stays
off until asked:

* ``pytest --notebook hw.ipynb`` (repeatable) grades those notebooks, from any folder.
  With no other path on the command line, only the notebooks are collected (not the
  folder's tests nor ``testpaths``); with other paths, the notebooks are graded beside them.
* ``pytest autograder`` in a clone grades the released notebooks in place
  (``release/*/*.ipynb``, what a self-learner edits), or the ``--notebook`` ones: pytest
  collects the placeholder ``autograder/test_notebooks.py``.

Until one of those is asked for, the plugin imports nothing but pytest (no torch, no
lesson) and starts no worker; ``-p no:autograder`` switches it off altogether.

A failing test shows the teaching message and nothing else: no traceback from inside the
grader. When the grader itself cannot grade (the preflight fails, or an exercise is a
grader error) the test is reported as an *error* at setup, not a failure: nothing is
charged to the student.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent          # autograder/
PLACEHOLDER = PACKAGE / "test_notebooks.py"
RELEASE = PACKAGE.parent / "release"                      # in a clone


def pytest_addoption(parser):
    group = parser.getgroup("autograder", "grading lesson notebooks")
    group.addoption("--notebook", action="append", default=[], metavar="PATH",
                    help="grade this notebook, one test per exercise (repeatable)")
    group.addoption("--lesson", action="append", default=[], metavar="PATH",
                    help="also use the lesson in this folder (not installed; repeatable)")


def _given(config) -> list[Path]:
    return [Path(p) for p in config.getoption("notebook")]


def _paths(config) -> list[Path]:
    """What the placeholder grades: the --notebook paths, else a clone's released notebooks."""
    return _given(config) or sorted(RELEASE.glob("*/*.ipynb"))


def _is_placeholder(config, arg: str) -> bool:
    """Whether a command-line path names the kit's package folder or its placeholder."""
    target = arg.split("::", 1)[0]
    if config.getoption("pyargs", False) and target in ("autograder", "autograder.test_notebooks"):
        return True
    try:
        path = Path(config.invocation_params.dir, target).resolve()
    except OSError:
        return False
    return path in (PACKAGE, PLACEHOLDER)


def pytest_configure(config):
    """Off unless asked. Asked, the notebooks become what pytest collects and the zygote
    (or a spare worker) starts at once: it imports torch and maps MNIST while this
    process collects and imports torch itself."""
    given = _given(config)
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    placeholder = explicit and any(_is_placeholder(config, a) for a in config.args)
    config._autograder_notebooks = set()
    if given and not placeholder:
        # `pytest --notebook hw.ipynb`: collect the notebooks themselves.
        config.args = [*config.args, *map(str, given)] if explicit else list(map(str, given))
        here = config.invocation_params.dir
        config._autograder_notebooks = {Path(here, p).resolve() for p in given}
    if not (given or placeholder):
        return
    if config.getoption("lesson"):
        from autograder.engine import discovery
        discovery.add_paths(config.getoption("lesson"))
    paths = _paths(config)
    if paths:
        from autograder.engine import pool
        from autograder.engine.sandbox import Limits
        pool.prestart(1, Limits(), *pool.settings(), total=len(paths))
        pool.keep(1)


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".ipynb" and file_path.resolve() in getattr(parent.config, "_autograder_notebooks", ()):
        return NotebookFile.from_parent(parent, path=file_path)
    return None


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name == PLACEHOLDER.name and module_path.parent == PACKAGE:
        return Notebooks.from_parent(parent, path=module_path)
    return None


class ExerciseFailed(Exception):
    """Carries the teaching message of a failed exercise."""


class Notebooks(pytest.File):
    """The placeholder module: one collector per notebook to grade."""

    def collect(self):
        paths = _paths(self.config)
        if not paths:
            raise pytest.UsageError("no notebooks to grade: pass --notebook PATH")
        for path in paths:
            yield NotebookItems.from_parent(self, name=path.name, path_=path)


class _Graded:
    """One notebook: one :class:`Exercise` per exercise of its kind, graded once."""

    notebook_path: Path
    label: str          # how messages name the notebook
    _report = None

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


class NotebookItems(_Graded, pytest.Collector):
    """A notebook graded through the placeholder (``pytest autograder``)."""

    def __init__(self, *, path_: Path, **kwargs):
        super().__init__(**kwargs)
        self.notebook_path = path_
        self.label = str(path_)


class NotebookFile(_Graded, pytest.File):
    """A notebook collected by itself (``pytest --notebook hw.ipynb``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.notebook_path = self.path
        self.label = self.name


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
            raise ExerciseFailed(f"{self.parent.label}: {self.reason}")
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
