"""A one-line progress bar on stderr while a class is graded (no third-party dependency).

    12/40 [######--------------] 1:05 elapsed, ETA 2:31 | 9 passed, 2 failing, 1 unreadable

It is drawn only when it helps a person watching: several notebooks, stderr is a terminal,
not under CI, not switched off (``--quiet``, ``--no-progress``). Otherwise it writes nothing.
The line is cut to the terminal's width: a wrapped line could not be redrawn with ``\r``.
"""

from __future__ import annotations

import os
import time
from typing import Callable, TextIO

from .report import NotebookReport

__all__ = ["Progress", "wanted"]

BAR_WIDTH = 20


def wanted(stream: TextIO, total: int, *, allowed: bool = True) -> bool:
    """Whether a bar helps: more than one notebook, a terminal, not CI, not switched off."""
    if not allowed or total <= 1 or os.environ.get("CI"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):     # no isatty, or a closed stream
        return False


def clock_text(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    minutes, secs = divmod(int(round(max(0.0, seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """done/total, a bar, elapsed time, ETA and how the finished notebooks fared.

    The ETA is the mean grading time of a finished notebook, times the notebooks left,
    divided by how many are graded at once (``jobs``). ``clock`` and ``width`` (else the
    terminal's) are injectable for tests.
    """

    def __init__(self, total: int, *, stream: TextIO, enabled: bool, jobs: int = 1,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.jobs, self.clock, self.width = max(1, jobs), clock, width
        self.start = clock()
        self.done, self.busy = 0, 0.0           # notebooks finished, and their summed grading time
        self.passed = self.failing = self.unreadable = 0
        self._shown = 0                         # length of the line now on screen

    def advance(self, report: NotebookReport, seconds: float) -> None:
        """Count one finished notebook that took ``seconds`` to grade (does not redraw)."""
        self.done += 1
        self.busy += seconds
        if report.error:
            self.unreadable += 1
        elif report.passed:
            self.passed += 1
        else:
            self.failing += 1

    def line(self) -> str:
        filled = BAR_WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta = "?"
        if self.done:
            eta = clock_text(self.busy / self.done * (self.total - self.done) / self.jobs)
        elapsed = clock_text(self.clock() - self.start)
        return (f"{self.done}/{self.total} [{bar}] {elapsed} elapsed, ETA {eta} | "
                f"{self.passed} passed, {self.failing} failing, "
                f"{self.unreadable} unreadable")

    def columns(self) -> int:
        if self.width:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 80

    def draw(self) -> None:
        if not self.enabled:
            return
        text = self.line()[:max(1, self.columns() - 1)]
        self.stream.write("\r" + text + " " * max(0, self._shown - len(text)))
        self.stream.flush()
        self._shown = len(text)

    def clear(self) -> None:
        """Blank the bar's line, so that a report printed next starts on a clean line."""
        if not self.enabled or not self._shown:
            return
        self.stream.write("\r" + " " * self._shown + "\r")
        self.stream.flush()
        self._shown = 0
