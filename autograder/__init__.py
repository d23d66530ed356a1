"""Self-grading exercises for "deep learning from the foundations" (lesson 8).

The public surface is small:

* ``check("lin")`` — in a notebook: grade one exercise now and explain what is wrong;
* ``grade_notebook(path)`` — grade a notebook file in a confined worker process;
* ``python -m autograder grade NOTEBOOK ...`` and ``pytest autograder`` — the same
  checks from a terminal.
"""

from __future__ import annotations

import inspect
import sys

__all__ = ["check", "grade_notebook", "add_lessons", "CheckFailed"]
__version__ = "0.1.0"


class CheckFailed(AssertionError):
    """A check failed; ``str(exc)`` is the whole teaching message.

    In Jupyter, IPython shows what :meth:`_render_traceback_` returns instead of our
    traceback: the message, or, when ``check()`` has just displayed it in its card
    (``shown``), one short line, so the message is not printed twice. ``evalue`` (what
    "Run all" and ``nbgrader validate`` read) stays the whole message.

    ``score``/``max_score`` say how much of the exercise was right (partial credit: more
    than 0 when some of its parts passed) and ``parts`` lists each part's score; nbgrader's
    test cells turn a partial score into nbgrader's partial-credit output.
    """

    def __init__(self, message: str = "", *, exercise: str = "", shown: bool = False,
                 score: float = 0.0, max_score: float = 0.0, parts: list | None = None) -> None:
        super().__init__(message)
        self.exercise, self.shown = exercise, shown
        self.score, self.max_score, self.parts = score, max_score, list(parts or [])

    def _render_traceback_(self) -> list[str]:
        if self.shown:
            name = self.exercise or str(self).split(" · ", 1)[0]
            return [f"CheckFailed: {name} failed (the card above says why)."]
        return str(self).splitlines()


def check(name: str | None = None, **options):
    """Grade the exercise ``name`` (its grade_id) and raise :class:`CheckFailed` if it fails.

    Called from a student's kernel it checks the kernel's own definitions; called by the
    grader (in test cells run on the grader's side) it checks the submission under
    grading. Inside the grading worker it does nothing. When the grader itself could not
    check the exercise it raises :class:`~autograder.engine.errors.GraderError` instead (not an
    ``AssertionError``: nothing is the student's fault).

    In a Jupyter kernel the result is also shown as rich output (a card with the
    message, "expected vs got" and figures; see :mod:`autograder.reports.cards`), before a
    failure raises. ``check()`` with no name shows a summary of every exercise of the
    notebook and raises nothing.
    """
    from .engine.executor import in_worker
    if in_worker():
        return None
    from .reports.cards import checked, summary
    from .engine.grade import CURRENT
    from .engine.submission import LocalSubmission

    frame = inspect.currentframe().f_back
    sub = CURRENT.get()
    if sub is None:
        _note_unconfined()
        sub = LocalSubmission(frame.f_globals)
    if name is None:
        summary(sub, frame.f_globals)
        return None
    result, displayed = checked(name, sub, options)
    if result.grader_error:
        from .engine.errors import GraderError
        raise GraderError(result.message)
    if not result.passed:
        raise CheckFailed(result.message, exercise=name, shown=displayed, score=result.score,
                          max_score=result.max_score, parts=result.parts)
    if not displayed:
        print(f"✓ {result.message}")
    return None


_noted = False


def _note_unconfined() -> None:
    """Say once per process that check() runs the student's code unconfined, right here;
    and whether the command-line grader would confine it on this machine."""
    global _noted
    if _noted:
        return
    _noted = True
    from .engine.sandbox import confinement
    confined, how = confinement()
    grader = how if confined else f"unconfined on this machine too ({how})"
    print("note: check() runs your code right here, in this Python process, unconfined: it "
          "previews the grade. `python -m autograder grade` and `pytest --notebook` grade a saved "
          f"notebook in a separate worker process, {grader}.", file=sys.stderr)


def grade_notebook(path, **kwargs):
    """Grade one notebook file; see :func:`autograder.engine.grade.grade_notebook`."""
    from .engine.grade import grade_notebook as _grade
    return _grade(path, **kwargs)


def add_lessons(*paths) -> None:
    """Also grade with the lessons in these folders (not installed), in this process.

    The same as ``AUTOGRADER_LESSONS`` or the command line's ``--lesson PATH``: for a
    notebook whose exercises come from a lesson an instructor handed out as a folder.
    """
    from .engine import discovery
    discovery.add_paths(paths)


def _record_cell_runs() -> None:
    """In a Jupyter kernel, keep how each cell runs from now on (for ``check()``)."""
    if "IPython" in sys.modules:
        try:
            from .engine.cellruns import install
            install()
        except Exception:       # feedback in a kernel is never worth breaking the import
            pass


_record_cell_runs()
