"""A one-line progress bar on stderr while a class is graded, drawn by ``tqdm``.

    12/40 [######--------------] 1:05 elapsed, ETA 2:31 | 9 passed, 2 failing, 1 unreadable

(``, 1 grader error`` is added once the grader itself has failed on a notebook.) It is
drawn only when it helps a person watching: several notebooks, stderr is a terminal, not
under CI, not switched off (``--quiet``, ``--no-progress``). Otherwise it writes nothing.
tqdm redraws the line in place, cuts it short of the terminal's width (a wrapped line
could not be redrawn with ``\\r``) and, through :func:`log_around`, keeps log lines (such
as nbgrader's) from running into it. What the line says is the kit's own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Callable, Iterator, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..engine.report import NotebookReport

__all__ = ["Progress", "wanted", "log_around"]

BAR_WIDTH = 20
FORMAT = "{n}/{total} [{bar:%d}] {since} elapsed, ETA {left} | {counts}" % BAR_WIDTH


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


class _Line(tqdm):
    """tqdm drawing the kit's line (also when ``tqdm.write`` redraws it after a log line)."""

    monitor_interval = 0        # no monitor thread: nothing may outlive the grading run

    def __init__(self, progress: "Progress", **kwargs) -> None:
        self.progress = progress
        super().__init__(**kwargs)

    def __str__(self) -> str:
        return self.progress.line()


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
        self.passed = self.failing = self.unreadable = self.grader_errors = 0
        self._shown = False
        # Nothing is drawn until draw() (delay): advance() never redraws by itself. One line
        # at the top of tqdm's stack (position 0; nrows set: a pty that reports no size
        # would otherwise hide it).
        self._bar = _Line(self, total=total, file=stream, leave=False, ascii="-#", position=0,
                          nrows=100, delay=float("inf"), bar_format=FORMAT) if enabled else None

    def advance(self, report: NotebookReport, seconds: float) -> None:
        """Count one finished notebook that took ``seconds`` to grade (does not redraw)."""
        self.done += 1
        self.busy += seconds
        if report.error:
            self.unreadable += 1
        elif report.grader_error:
            self.grader_errors += 1
        elif report.passed:
            self.passed += 1
        else:
            self.failing += 1

    def counts(self) -> str:
        text = f"{self.passed} passed, {self.failing} failing, {self.unreadable} unreadable"
        if self.grader_errors:
            text += f", {self.grader_errors} grader error{'s' if self.grader_errors > 1 else ''}"
        return text

    def line(self) -> str:
        eta = "?"
        if self.done:
            eta = clock_text(self.busy / self.done * max(0, self.total - self.done) / self.jobs)
        return tqdm.format_meter(
            min(self.done, self.total), self.total, 0, ncols=max(1, self.columns() - 1),
            ascii="-#", bar_format=FORMAT, since=clock_text(self.clock() - self.start),
            left=eta, counts=self.counts())

    def columns(self) -> int:
        if self.width:
            return self.width
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        return columns or 80        # a terminal that does not say its width (0)

    def draw(self) -> None:
        if self._bar is None:
            return
        self._bar.display(msg=self.line())
        self._shown = True

    def clear(self) -> None:
        """Blank the bar's line, so that a report printed next starts on a clean line."""
        if self._bar is None or not self._shown:
            return
        self._bar.clear()
        self._shown = False

    def close(self) -> None:
        """Blank the line and let go of the terminal (the bar draws nothing after this)."""
        self.clear()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def log_around(progress: Progress, logger: logging.Logger) -> Iterator[None]:
    """While the bar is shown, ``logger``'s console lines are printed above it, not into it."""
    if progress._bar is None:
        yield
        return
    with logging_redirect_tqdm(loggers=[logger], tqdm_class=_Line):
        yield
