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

__all__ = ["check", "grade_notebook", "CheckFailed"]
__version__ = "0.1.0"


class CheckFailed(AssertionError):
    """A check failed; ``str(exc)`` is the whole teaching message.

    In Jupyter, IPython shows what :meth:`_render_traceback_` returns instead of our
    traceback: the message, or, when ``check()`` has just displayed it in its card
    (``shown``), one short line, so the message is not printed twice. ``evalue`` (what
    "Run all" and ``nbgrader validate`` read) stays the whole message.
    """

    def __init__(self, message: str = "", *, exercise: str = "", shown: bool = False) -> None:
        super().__init__(message)
        self.exercise, self.shown = exercise, shown

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
    check the exercise it raises :class:`~autograder.errors.GraderError` instead (not an
    ``AssertionError``: nothing is the student's fault).

    In a Jupyter kernel the result is also shown as rich output (a card with the
    message, "expected vs got" and figures; see :mod:`autograder.display`), before a
    failure raises. ``check()`` with no name shows a summary of every exercise of the
    notebook and raises nothing.
    """
    from .executor import in_worker
    if in_worker():
        return None
    from .display import checked, summary
    from .grade import CURRENT
    from .submission import LocalSubmission

    frame = inspect.currentframe().f_back
    sub = CURRENT.get()
    if sub is None:
        sub = LocalSubmission(frame.f_globals)
    if name is None:
        summary(sub, frame.f_globals)
        return None
    result, displayed = checked(name, sub, options)
    if result.grader_error:
        from .errors import GraderError
        raise GraderError(result.message)
    if not result.passed:
        raise CheckFailed(result.message, exercise=name, shown=displayed)
    if not displayed:
        print(f"✓ {result.message}")
    return None


def grade_notebook(path, **kwargs):
    """Grade one notebook file; see :func:`autograder.grade.grade_notebook`."""
    from .grade import grade_notebook as _grade
    return _grade(path, **kwargs)


def _record_cell_runs() -> None:
    """In a Jupyter kernel, keep how each cell runs from now on (for ``check()``)."""
    if "IPython" in sys.modules:
        try:
            from .cellruns import install
            install()
        except Exception:       # feedback in a kernel is never worth breaking the import
            pass


_record_cell_runs()
