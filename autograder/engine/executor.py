"""Run student code in a namespace and answer the grader's questions about it.

This module runs on the *student's* side of the boundary: inside the confined worker
process (see :mod:`autograder.engine.worker`), or inside the student's own Jupyter kernel
when they call ``check(...)`` for instant feedback. Everything it returns is plain
data made by :func:`autograder.engine.codec.encode`.
"""

from __future__ import annotations

import contextlib
import io
import linecache
import random
import re
import signal
import sys
import threading
import traceback
from typing import Any

from . import codec, guard

__all__ = ["Executor", "CellTimeout", "transform_magics", "definition"]

MAX_OUTPUT = 64 * 1024          # characters of stdout/stderr kept per request
CELL_PREFIX = "<cell "


class CellTimeout(BaseException):
    """Raised inside student code when its time is up (a BaseException, like KeyboardInterrupt)."""


class _CappedText(io.TextIOBase):
    """A text stream that keeps the first MAX_OUTPUT characters and counts the rest."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s) -> int:
        s = str(s)
        room = MAX_OUTPUT - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output not kept]"
        return text


_MAGIC = re.compile(r"^(\s*)(%%?|!)(\w*)\s?(.*)$")


def transform_magics(source: str) -> str:
    """Make IPython-only lines harmless outside IPython.

    ``%time expr`` and ``%timeit expr`` run ``expr`` once; a ``%%time`` cell header is
    dropped; any other magic or shell line becomes ``pass`` (indentation kept).
    """
    out = []
    for line in source.splitlines():
        match = _MAGIC.match(line)
        if not match:
            out.append(line)
            continue
        indent, kind, name, rest = match.groups()
        if kind == "%" and name in ("time", "timeit", "prun") and rest.strip() and not rest.startswith("-"):
            out.append(indent + rest)
        else:
            out.append(indent + "pass")
    return "\n".join(out)


def format_student_error(exc: BaseException) -> dict:
    """Name, message and the traceback frames that belong to the student's cells."""
    try:
        message = str(exc)
    except Exception:
        message = "<the exception's message could not be shown>"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.startswith(CELL_PREFIX)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    name = type(exc).__name__
    lines.append(f"{name}: {message}\n" if message else f"{name}\n")
    return {"ename": name, "evalue": message[:2000], "traceback": "".join(lines)[-8000:]}


class Executor:
    """Executes cells and grader snippets in one namespace (the notebook's globals)."""

    def __init__(self, namespace: dict | None = None) -> None:
        self.ns = namespace if namespace is not None else {"__name__": "__main__"}

    # ------------------------------------------------------------------ cells
    def run_cell(self, source: str, label: str, timeout: float | None = None,
                 watch: dict | None = None) -> dict:
        """Execute one notebook cell; report status, output and the student's traceback.

        With ``watch`` (see :func:`autograder.engine.guard.watching`), also the banned operators
        the cell's own code called while it ran, under ``"violations"``.
        """
        filename = f"{CELL_PREFIX}{label}>"
        source = transform_magics(source)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        out, err = _CappedText(), _CappedText()
        status, error, seen = "ok", None, None
        try:
            code = compile(source, filename, "exec")
            with _captured(out, err), _time_limit(timeout), guard.watching(watch, self.ns) as seen:
                exec(code, self.ns)
        except CellTimeout:
            status, error = "timeout", {"ename": "Timeout", "evalue": f"still running after {timeout:g} s",
                                        "traceback": ""}
        except BaseException as exc:  # student code may raise anything, SystemExit included
            status, error = "error", format_student_error(exc)
        reply = {"status": status, "error": error, "stdout": out.getvalue(), "stderr": err.getvalue()}
        if watch:
            reply["violations"] = seen.violations if seen is not None else []
        return reply

    # ------------------------------------------------------------------ questions
    def evaluate(self, code: str, inputs: dict[str, Any], overrides: dict[str, Any],
                 outputs: list[str], *, seed: int | None = None,
                 timeout: float | None = None, watch: dict | None = None) -> tuple[dict, list]:
        """Run a grader snippet against the student's namespace.

        ``inputs`` become local names of the snippet; ``overrides`` replace the
        notebook's globals for the duration of the snippet (so a student's ``model``
        can be run on the grader's weights) and are restored afterwards. The values
        named in ``outputs`` are returned encoded, along with the state of every
        override afterwards (under ``"overrides"``), so gradients stored as ``.g`` on
        the grader's tensors come back too.

        With ``watch``, the banned operators the exercise's code called come back under
        ``"violations"`` (see :func:`autograder.engine.guard.watching`). A snippet that starts with
        the exercise's cell source (``watch["source"]``, a cell re-run on the grader's
        inputs) runs that part as the cell's own code, under ``watch["filename"]``.
        """
        scope = dict(inputs)
        saved = {name: self.ns.get(name, codec.MISSING) for name in overrides}
        out, err = _CappedText(), _CappedText()
        error, status, seen = None, "ok", None
        try:
            self.ns.update(overrides)
            if seed is not None:
                _seed_everything(seed)
            parts = _split(code, watch)
            with _captured(out, err), _time_limit(timeout), guard.watching(watch, self.ns) as seen:
                for part in parts:
                    exec(part, self.ns, scope)
        except CellTimeout:
            status, error = "timeout", {"ename": "Timeout", "evalue": f"still running after {timeout:g} s",
                                        "traceback": ""}
        except BaseException as exc:
            status, error = "error", format_student_error(exc)
        finally:
            after = {name: self.ns.get(name, codec.MISSING) for name in overrides}
            for name, old in saved.items():
                if old is codec.MISSING:
                    self.ns.pop(name, None)
                else:
                    self.ns[name] = old
        buffers: list = []
        values = {name: (codec.encode(scope[name], buffers) if name in scope else {"t": "missing"})
                  for name in outputs}
        after_desc = {name: ({"t": "missing"} if v is codec.MISSING else codec.encode(v, buffers))
                      for name, v in after.items()}
        reply = {"status": status, "error": error, "values": values, "overrides": after_desc,
                 "stdout": out.getvalue(), "stderr": err.getvalue()}
        if watch:
            reply["violations"] = seen.violations if seen is not None else []
        return reply, buffers

    def get(self, names: list[str]) -> tuple[dict, list]:
        """Encode the notebook's globals ``names`` (missing ones as ``missing``)."""
        buffers: list = []
        values = {name: (codec.encode(self.ns[name], buffers) if name in self.ns else {"t": "missing"})
                  for name in names}
        return {"status": "ok", "values": values}, buffers


def _split(code: str, watch: dict | None) -> list:
    """The snippet compiled: the exercise's cell source it starts with (if any) as the
    cell's own code, the rest as the grader's."""
    source, filename = (watch or {}).get("source"), (watch or {}).get("filename")
    if not (source and filename and code.startswith(source)):
        return [compile(code, "<grader>", "exec")]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    rest = code[len(source):]
    return [compile(source, filename, "exec")] + ([compile(rest, "<grader>", "exec")] if rest.strip() else [])


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


@contextlib.contextmanager
def _captured(out, err):
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Interrupt Python code after ``seconds`` (main thread, POSIX only; else no limit).

    The grader also keeps a hard limit of its own: code stuck in C, or that swallows
    the interrupt, gets its worker process killed.
    """
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def _raise(signum, frame):
        raise CellTimeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def definition(expr: str):
    """One of the grader's own definitions (an expression the grader wrote), evaluated with
    ``torch``; its code is the grader's, so the from-scratch guard never counts its calls."""
    return eval(compile(expr, "<grader definition>", "eval"), {"torch": __import__("torch")})


def in_worker() -> bool:
    """True inside a grading worker (where ``check`` calls in student cells do nothing)."""
    return bool(sys.modules.get("autograder.engine.worker")) and getattr(
        sys.modules["autograder.engine.worker"], "ACTIVE", False)
