"""Starting worker processes, and keeping fresh ones ready ahead of need.

Starting a worker costs about a second (Python, then ``import torch``). A class run
hides that cost by starting the next submission's worker while the current one is
graded, and a single run starts its worker before the grader imports torch itself.
Every worker is still used for exactly one submission and then killed: a spare is a
*fresh* confined process that no student code has touched yet. Two students never
share an interpreter.

This module does not import torch, so the command line can start workers first.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox
from .sandbox import Limits

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

__all__ = ["Worker", "spawn", "release", "prestart", "keep", "take", "settings", "shutdown"]


@dataclass
class Worker:
    """One started worker process and what belongs to it."""
    proc: subprocess.Popen
    req_w: int
    rep_r: int
    scratch: Path
    cgroup: Path | None
    key: tuple = field(default=())


def settings() -> tuple[list[Path], dict[str, str]]:
    """What every worker may read besides Python and the kit (the MNIST cache), and the
    environment that tells it where the data is."""
    from .data import DataError, mnist_path
    try:
        path = mnist_path()
    except DataError:
        return [], {}
    return [path.parent], {"AUTOGRADER_MNIST": str(path)}


def worker_env(scratch: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "TMPDIR": str(scratch), **extra}
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if key in os.environ:
            env.setdefault(key, os.environ[key])
    return env


def _key(limits: Limits, readable, env) -> tuple:
    return (limits, tuple(map(str, readable)), tuple(sorted((env or {}).items())))


def spawn(limits: Limits, readable: list[Path], env: dict[str, str] | None = None) -> Worker:
    """Start a worker (confined where possible); it announces itself with a "ready" frame."""
    sandbox.sweep_stale(tempfile.gettempdir())
    scratch = Path(tempfile.mkdtemp(prefix=f"autograder-scratch-{os.getpid()}-"))
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    for fd in (req_w, rep_w):       # bigger pipes: fewer round trips for MNIST-sized tensors
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
    cgroup = None
    try:
        argv, popen_env, _ = sandbox.worker_command(scratch, list(readable), (req_r, rep_w),
                                                    worker_env(scratch, env or {}))
        cgroup = sandbox.pids_cgroup(limits.processes)
        proc = subprocess.Popen(argv, env=popen_env or worker_env(scratch, env or {}), cwd=scratch,
                                pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=sandbox.prepare_child(limits, cgroup))
    except BaseException:
        for fd in (req_w, rep_r):
            os.close(fd)
        sandbox.remove_cgroup(cgroup)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        for fd in (req_r, rep_w):
            os.close(fd)
    return Worker(proc, req_w, rep_r, scratch, cgroup, _key(limits, readable, env))


def release(worker: Worker) -> None:
    """Kill the worker and everything it started; free its pipes, scratch and cgroup."""
    sandbox.kill_process_group(worker.proc)
    for fd in (worker.req_w, worker.rep_r):
        try:
            os.close(fd)
        except OSError:
            pass
    if worker.cgroup is not None:
        sandbox.kill_cgroup(worker.cgroup)
        sandbox.remove_cgroup(worker.cgroup)
    shutil.rmtree(worker.scratch, ignore_errors=True)


_lock = threading.Lock()
_spares: list[Worker] = []
_wanted = 0          # spares to keep ready
_left: int | None = None   # workers still to be handed out (None: unknown)


def _target() -> int:
    return _wanted if _left is None else min(_wanted, _left)


def prestart(count: int, limits: Limits, readable: list[Path], env: dict[str, str] | None = None,
             *, total: int | None = None) -> None:
    """Keep ``count`` fresh workers with these settings started ahead of need; with
    ``total``, never start more than that many in all (no spare left over at the end)."""
    global _wanted, _left
    with _lock:
        _wanted, _left = count, total
        while sum(w.key == _key(limits, readable, env) for w in _spares) < _target():
            _spares.append(spawn(limits, readable, env))


def keep(count: int) -> None:
    """From now on, keep ``count`` spares (those already started stay)."""
    global _wanted
    with _lock:
        _wanted = count


def take(limits: Limits, readable: list[Path], env: dict[str, str] | None = None) -> Worker | None:
    """A fresh spare with these settings (starting its replacement), or None."""
    global _left
    key = _key(limits, readable, env)
    with _lock:
        while True:
            index = next((i for i, w in enumerate(_spares) if w.key == key), None)
            if index is None:
                return None
            worker = _spares.pop(index)
            if worker.proc.poll() is not None:           # died while waiting: not usable
                release(worker)
                continue
            if _left is not None:
                _left -= 1
            if sum(w.key == key for w in _spares) < _target():
                _spares.append(spawn(limits, readable, env))
            return worker


@atexit.register
def shutdown() -> None:
    """Stop every spare worker (also run at interpreter exit)."""
    global _wanted
    with _lock:
        _wanted = 0
        while _spares:
            release(_spares.pop())
