"""The grader's handle on one submission's worker process.

A :class:`Session` starts a worker (confined where possible, see
:mod:`autograder.engine.sandbox`), runs the submission's cells in it, and asks it questions.
Every answer is checked by the grader; a worker that dies, hangs, or sends garbage
is killed and replaced by a fresh one that replays the cells that had run cleanly, so
one crashing exercise never costs another its points.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import codec, pool, sandbox
from .errors import GraderError
from .sandbox import Limits

__all__ = ["Session", "WorkerDied", "CellRun", "Evaluation"]

STARTUP_TIMEOUT = 120.0
CANARY_TIMEOUT = 60.0

# A known-good cell, run by a fresh worker before anyone is graded (the preflight) and
# after a worker dies, to tell a student's crash from the grader's: it does what the
# lesson's setup does (import torch and the kit's public names, open MNIST as the lesson
# does and read its first bytes: the grader verified the file's checksum; unpickling all
# 220 MB here would cost a second of first-touch memory on every run).
CANARY = """\
import gzip, os, pickle
import torch
from autograder import check
from autograder.data import mnist_path
canary = float(torch.ones(4, 4).clamp_min(0.).sum())
if os.environ.get("AUTOGRADER_MNIST"):      # a worker given the lesson's data must see it
    with gzip.open(mnist_path(), "rb") as _f:
        _head = _f.read(2)                    # a pickle's first bytes (the grader checked the rest)
    assert _head[:1] == pickle.PROTO, "the lesson's data file is not a pickle"
"""
FIX_WORKER = ("Check that bubblewrap works (`bwrap --ro-bind / / true`) and that the kit imports "
              "(`python -c 'import autograder.engine.worker'`), or set AUTOGRADER_UNCONFINED=1 to grade unconfined")


class WorkerDied(RuntimeError):
    """The worker stopped answering: it crashed, was killed, or timed out."""


@dataclass
class CellRun:
    """What happened when one cell of the submission ran."""
    label: str
    status: str                     # ok | error | timeout | crashed | skipped
    error: dict | None = None       # ename, evalue, traceback (the student's frames)
    stdout: str = ""
    stderr: str = ""
    violations: list[tuple[str, int]] = field(default_factory=list)   # banned calls: (name, line)

    @property
    def reason(self) -> str:
        if self.error:
            return f"{self.error.get('ename')}: {self.error.get('evalue')}"
        return self.status


@dataclass
class Evaluation:
    """The answer to one grader snippet, decoded in the grader's process."""
    status: str
    values: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    error: dict | None = None
    stdout: str = ""
    violations: list[tuple[str, int]] = field(default_factory=list)   # banned calls: (name, line)


def violations(reply: dict) -> list[tuple[str, int]]:
    """The banned calls a worker reported (see :mod:`autograder.engine.guard`), as plain pairs;
    anything malformed is dropped (it could only ever be the student's own side's doing)."""
    found = []
    items = reply.get("violations")
    for item in items[:20] if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("name"), str) and type(item.get("line")) is int:
            found.append((item["name"][:120], item["line"]))
    return found


class Session:
    """One worker process at a time for one submission."""

    def __init__(self, limits: Limits = Limits(), readable: list[Path] = (),
                 env: dict[str, str] | None = None) -> None:
        self.limits = limits
        self.readable = [Path(p) for p in readable]
        self.env = env or {}
        self.confined, self.confinement_note = sandbox.confinement()
        if sandbox.process_cap() == "none":
            self.confinement_note += "; the number of processes is not capped (no writable cgroup)"
        self.replay: list[tuple[str, str]] = []     # cells that ran cleanly, for a restart
        self.started_at = time.monotonic()
        self.restarts = 0
        self._worker: pool.Worker | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            try:
                codec.send(worker.req_w, {"op": "bye"})
                worker.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
            pool.release(worker)

    @property
    def remaining(self) -> float:
        """Seconds left of the whole submission's time budget."""
        return self.limits.notebook_timeout - (time.monotonic() - self.started_at)

    def _start(self) -> None:
        """Adopt a fresh spare worker (see :mod:`autograder.engine.pool`) or start one; wait for it.

        No student code has run in it yet, so a worker that cannot start is the grader's
        failure (:class:`GraderError`), never the student's.
        """
        try:
            self._worker = (pool.take(self.limits, self.readable, self.env)
                            or pool.spawn(self.limits, self.readable, self.env))
        except OSError as exc:
            raise GraderError(f"a grading worker could not be started ({type(exc).__name__}: {exc})",
                              FIX_WORKER) from None
        try:
            ready, _ = self._request_raw(None, STARTUP_TIMEOUT, verify=False)   # wait for "ready"
        except WorkerDied as exc:
            raise GraderError(f"a grading worker stopped before it was ready ({exc})", FIX_WORKER) from None
        kit = ready.get("kit")
        if kit != pool.KIT_DIR:
            self._discard()
            raise GraderError(f"a grading worker imported the kit from {kit or 'nowhere'}, not from "
                              f"{pool.KIT_DIR} as the grader did",
                              "Grade with the Python environment the kit is installed in")

    def _discard(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            pool.release(worker)

    def run_canary(self, timeout: float = CANARY_TIMEOUT) -> None:
        """Run the canary cell in a fresh worker of this session's kind; :class:`GraderError`
        unless it runs cleanly. The worker is discarded afterwards."""
        self._discard()
        self._start()
        try:
            reply, _ = self._request_raw({"op": "run", "source": CANARY, "label": "canary",
                                          "timeout": timeout}, timeout + 5, verify=False)
        except WorkerDied as exc:
            raise GraderError(f"a fresh grading worker could not run the kit's canary cell ({exc})",
                              FIX_WORKER) from None
        finally:
            self._discard()
        if reply.get("status") != "ok":
            error = reply.get("error") or {}
            reason = f"{error.get('ename', reply.get('status'))}: {error.get('evalue', '')}".strip()
            reason = reason.splitlines()[0] if reason else str(reply.get("status"))
            raise GraderError(f"a fresh grading worker failed the kit's canary cell ({reason})",
                              "Run `python -m autograder.data` to check the lesson's data, "
                              "and `python -m autograder preflight` for details")

    def _ensure(self) -> None:
        """Start a worker if there is none, replaying the cells that had run cleanly.

        A replayed cell that now fails or kills the worker is dropped from the replay.
        """
        while self._worker is None:
            self._start()
            for item in list(self.replay):
                label, source = item
                try:
                    reply, _ = self._request({"op": "run", "source": source, "label": label})
                except WorkerDied:
                    self.replay.remove(item)
                    break                      # no worker now: start another, replay the rest
                if reply.get("status") != "ok":
                    self.replay.remove(item)

    def _die(self, reason: str) -> WorkerDied:
        """The worker stopped while serving: the exception to raise. Whether the student's
        code or the grader is to blame is told by the canary cell in a fresh worker: when it
        runs cleanly the crash was the student's (:class:`WorkerDied`); when it fails too,
        this raises :class:`GraderError`."""
        died = self._dead(reason)
        self.run_canary()
        return died

    def _dead(self, reason: str) -> WorkerDied:
        worker, self._worker = self._worker, None
        detail = reason
        if worker is not None:
            try:
                worker.proc.wait(timeout=0.5)      # let a process that is exiting report why
            except subprocess.TimeoutExpired:
                pass
            pool.release(worker)
            code = worker.exit_code()
            if code is not None and code < 0:
                name = signal.Signals(-code).name
                detail += f" (it was stopped by {name}"
                detail += ", most likely for using too much memory)" if name == "SIGKILL" else ")"
            elif code not in (None, 0):
                detail += f" (it exited with status {code})"
        self.restarts += 1
        return WorkerDied(detail)

    # ------------------------------------------------------------------ requests
    def _request_raw(self, header: dict | None, timeout: float, buffers: list = (), *,
                     verify: bool = True) -> tuple[dict, list]:
        """Send a request and wait for its answer. A worker that fails to answer is gone;
        with ``verify``, a fresh worker's canary then says whose fault that was."""
        die = self._die if verify else self._dead
        deadline = time.monotonic() + max(0.1, min(timeout, self.remaining + 5))
        try:
            if header is not None:
                codec.send(self._worker.req_w, header, buffers)
            return codec.recv(self._worker.rep_r, max_bytes=self.limits.reply_bytes, deadline=deadline)
        except TimeoutError:
            raise die(f"it was still running after {timeout:g} s") from None
        except (EOFError, BrokenPipeError, OSError):
            raise die("the worker process died") from None
        except codec.ProtocolError as exc:
            raise die(f"the worker sent a malformed answer: {exc}") from None

    def _request(self, header: dict, buffers: list = ()) -> tuple[dict, list]:
        self._ensure()
        if self.remaining <= 0:
            raise WorkerDied(f"the submission used up its {self.limits.notebook_timeout:g} s time budget")
        timeout = min(self.limits.cell_timeout, self.remaining)
        header = {**header, "timeout": timeout}
        return self._request_raw(header, timeout + 5, buffers)

    def run_cell(self, label: str, source: str, watch: dict | None = None) -> CellRun:
        """Run one cell of the submission; never raises for student misbehaviour. ``watch``
        asks for the banned operators the cell's own code calls (:mod:`autograder.engine.guard`)."""
        header = {"op": "run", "source": source, "label": label}
        if watch:
            header["watch"] = watch
        try:
            reply, _ = self._request(header)
        except WorkerDied as exc:
            return CellRun(label, "crashed", {"ename": "WorkerDied", "evalue": str(exc), "traceback": ""})
        run = CellRun(label, str(reply.get("status")), reply.get("error"),
                      str(reply.get("stdout", "")), str(reply.get("stderr", "")), violations(reply))
        if run.status == "ok":
            self.replay.append((label, source))
        return run

    def evaluate(self, code: str, *, inputs: dict | None = None, overrides: dict | None = None,
                 definitions: dict[str, str] | None = None, outputs: tuple[str, ...] = ("result",),
                 seed: int | None = None, watch: dict | None = None) -> Evaluation:
        """Run a grader snippet; raises :class:`WorkerDied` if the worker does not survive it."""
        buffers: list = []
        header = {"op": "eval", "code": code, "outputs": list(outputs), "seed": seed,
                  "inputs": {k: codec.encode(v, buffers) for k, v in (inputs or {}).items()},
                  "overrides": {k: codec.encode(v, buffers) for k, v in (overrides or {}).items()},
                  "definitions": dict(definitions or {})}
        if watch:
            header["watch"] = watch
        reply, out = self._request(header, buffers)
        try:
            values = {k: codec.decode(v, out) for k, v in dict(reply.get("values", {})).items()}
            after = {k: codec.decode(v, out) for k, v in dict(reply.get("overrides", {})).items()}
        except (codec.ProtocolError, TypeError, ValueError, AttributeError) as exc:
            raise self._die(f"the worker sent a malformed answer: {exc}") from None
        return Evaluation(str(reply.get("status")), values, after, reply.get("error"),
                          str(reply.get("stdout", "")), violations(reply))

    def get(self, *names: str) -> dict[str, Any]:
        """The notebook's globals ``names``, decoded (``codec.MISSING`` when undefined)."""
        reply, out = self._request({"op": "get", "names": list(names)})
        try:
            return {k: codec.decode(v, out) for k, v in dict(reply.get("values", {})).items()}
        except (codec.ProtocolError, TypeError, ValueError, AttributeError) as exc:
            raise self._die(f"the worker sent a malformed answer: {exc}") from None

