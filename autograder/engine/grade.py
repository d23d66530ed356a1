"""Grade one notebook file: read it, run it in a worker, run every exercise's check.

This is the Python API behind every front end (``python -m autograder grade``,
``pytest autograder``, the nbgrader preprocessor): ``grade_notebook(path)`` returns a
:class:`~autograder.engine.report.NotebookReport` and never raises for a bad submission.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from pathlib import Path
from typing import Iterator

from . import discovery, pool
from . import registry as checks
from .errors import GraderError
from .notebook import Notebook, NotebookError, read_notebook
from .report import ExerciseResult, NotebookReport
from .sandbox import Limits
from .session import Session
from .submission import RemoteSubmission, Submission

__all__ = ["grade_notebook", "identify", "open_submission", "catalogue", "result_for", "CURRENT"]

# The submission that ``check()`` grades when called from grader-run test-cell code.
CURRENT: contextvars.ContextVar[Submission | None] = contextvars.ContextVar("CURRENT", default=None)


def identify(nb: Notebook) -> str:
    """Which of the kit's notebooks this is, by the grade_ids it holds (not its file name)."""
    discovery.load()
    ids = nb.grade_ids
    best, overlap = None, 0
    for name, exercises in checks.NOTEBOOKS.items():
        n = sum(1 for ex in exercises if ex.name in ids or f"test_{ex.name}" in ids)
        if n > overlap:
            best, overlap = name, n
    if best is None:
        raise NotebookError(f"{nb.path.name} holds none of this kit's exercises "
                            "(no cell has a known grade_id); is it the right notebook?")
    return best


_prefetching = threading.Lock()


def _locked(fn) -> None:
    """Run a (cached) prefetch under a lock, so two threads never compute it twice."""
    with _prefetching:
        fn()


@contextlib.contextmanager
def open_submission(nb: Notebook, limits: Limits = Limits()) -> Iterator[RemoteSubmission]:
    """Run the notebook's cells in a fresh worker and yield the submission to check.

    While the worker runs the student's cells, the grader loads its own references.
    """
    try:
        kind = identify(nb)
    except NotebookError:
        kind = None
    prefetch = checks.PREFETCH.get(kind)
    if prefetch is not None:
        threading.Thread(target=_locked, args=(prefetch,), daemon=True).start()
    readable, env = pool.settings()
    with Session(limits, readable=readable, env=env) as session:
        sub = RemoteSubmission(nb, session, guards=checks.guards(kind) if kind else None)
        sub.execute()
        token = CURRENT.set(sub)
        try:
            yield sub
        finally:
            CURRENT.reset(token)


def grade_notebook(path: str | Path, *, limits: Limits = Limits()) -> NotebookReport:
    """Grade one notebook file; never raises for a bad submission."""
    path = Path(path)
    report = NotebookReport(str(path))
    try:
        nb = read_notebook(path)
        kind = identify(nb)
    except NotebookError as exc:
        report.error = str(exc)
        return report
    except GraderError as exc:          # a broken lesson: nobody's fault but the grader's
        report.grader_failure = str(exc)
        return report
    try:
        with open_submission(nb, limits) as sub:
            report.confinement = sub.session.confinement_note
            for ex in checks.NOTEBOOKS[kind]:
                report.exercises.append(checks.run_exercise(ex, sub))
    except GraderError as exc:          # while running the student's cells: nothing is charged
        report.exercises.clear()
        report.grader_failure = str(exc)
    except Exception as exc:            # a bug of the grader's own outside a check: the same
        report.exercises.clear()
        report.grader_failure = (f"the grader's own code raised {type(exc).__name__}: {exc}. "
                                 "Please report it with this notebook")
    return report


def catalogue():
    """The exercise catalogue with every discovered lesson installed."""
    discovery.load()
    return checks


def result_for(name: str, sub: Submission, **options) -> ExerciseResult:
    discovery.load()
    return checks.run_exercise(checks.EXERCISES[name], sub, **options)
