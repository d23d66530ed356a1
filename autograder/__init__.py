"""Self-grading exercises for "deep learning from the foundations" (lesson 8).

The public surface is small:

* ``check("lin")`` — in a notebook: grade one exercise now and explain what is wrong;
* ``grade_notebook(path)`` — grade a notebook file in a confined worker process;
* ``python -m autograder grade NOTEBOOK ...`` and ``pytest autograder`` — the same
  checks from a terminal.
"""

from __future__ import annotations

import inspect

__all__ = ["check", "grade_notebook", "CheckFailed"]
__version__ = "0.1.0"


class CheckFailed(AssertionError):
    """A check failed. In Jupyter only the teaching message is shown, not our traceback."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def check(name: str, **options):
    """Grade the exercise ``name`` (its grade_id) and raise :class:`CheckFailed` if it fails.

    Called from a student's kernel it checks the kernel's own definitions; called by the
    grader (in test cells run on the grader's side) it checks the submission under
    grading. Inside the grading worker it does nothing. When the grader itself could not
    check the exercise it raises :class:`~autograder.errors.GraderError` instead (not an
    ``AssertionError``: nothing is the student's fault).
    """
    from .executor import in_worker
    if in_worker():
        return None
    from .grade import CURRENT, result_for
    from .submission import LocalSubmission

    sub = CURRENT.get()
    if sub is None:
        frame = inspect.currentframe().f_back
        sub = LocalSubmission(frame.f_globals)
    result = result_for(name, sub, **options)
    if result.grader_error:
        from .errors import GraderError
        raise GraderError(result.message)
    if not result.passed:
        raise CheckFailed(result.message)
    print(f"✓ {result.message}")
    return None


def grade_notebook(path, **kwargs):
    """Grade one notebook file; see :func:`autograder.grade.grade_notebook`."""
    from .grade import grade_notebook as _grade
    return _grade(path, **kwargs)
