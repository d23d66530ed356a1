"""Whose fault is it? The grader's own failures, kept apart from the student's.

A :class:`GraderError` means the kit could not grade (a worker that cannot start or
import the kit, the lesson's data or the grader's references unavailable, a sandbox
that cannot be set up, a bug in the kit). It is never written as a student's zero:

* an exercise it hits is marked ``grader_error`` (and the notebook with it);
* ``python -m autograder grade`` exits with :data:`EXIT_GRADER_ERROR`;
* ``pytest autograder`` reports an *error*, not a failure;
* nbgrader writes no score for that notebook and autograde fails for that student.

Messages are one line an instructor can act on: what is broken, then how to fix it.
"""

from __future__ import annotations

__all__ = ["GraderError", "EXIT_OK", "EXIT_FAILED", "EXIT_UNREADABLE", "EXIT_GRADER_ERROR",
           "STUDENT_NOTE"]

EXIT_OK = 0             # every exercise of every notebook passed
EXIT_FAILED = 1         # some exercise failed: the student's code
EXIT_UNREADABLE = 2     # a file could not be read as a notebook (or the cluster is unusable)
EXIT_GRADER_ERROR = 3   # the grader could not grade: nothing was charged to anyone

# What a student reads where the grader failed: never "your code", never a hint to look
# for os._exit.
STUDENT_NOTE = ("The grader itself failed here, not the notebook: this exercise was not checked "
                "and no score was recorded for it. Your instructor has been told.")


class GraderError(RuntimeError):
    """The grader itself cannot work; ``str(exc)`` is one line saying what and how to fix it."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what, self.fix = what.rstrip("."), fix.rstrip(".")
        super().__init__(f"{self.what}. {self.fix}." if self.fix else f"{self.what}.")
