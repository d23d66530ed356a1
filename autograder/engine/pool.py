"""Starting worker processes: forked from a warm zygote, or spawned from scratch.

Starting a worker from scratch costs about a second of CPU (Python, then ``import
torch``), and the student's first read of MNIST another half second. Where workers are
confined (bubblewrap), the pool instead starts one :class:`Zygote` per set of limits: a
confined process that has done all that once (see :mod:`autograder.engine.zygote`) and forks
a fresh worker per request in a few milliseconds. Each forked worker builds its own
user, pid, mount, IPC and network namespaces, a private scratch and its own pids cgroup
before any student code runs, so siblings cannot see or touch each other.

Where there is no zygote (unconfined, ``AUTOGRADER_ZYGOTE=0``, or a zygote that failed),
spare workers are spawned ahead of need instead: a class run starts the next
submission's worker while the current one is graded. Either way every worker serves
exactly one submission and is then killed; two students never share an interpreter.

This module does not import torch, so the command line can start workers first.
"""

from __future__ import annotations

import array
import atexit
import fcntl
import functools
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox, zygote
from .sandbox import Limits

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

__all__ = ["Worker", "Zygote", "ForkedProcess", "spawn", "release", "prestart", "keep", "take",
           "settings", "shutdown", "close"]

# The kit's own package folder, as this (the grader's) process imported it. Workers import
# exactly these files: their PYTHONPATH starts with its parent (whatever the current
# directory, sys.path or kind of install), and each says where it found the kit when it
# is ready (see Session._start).
KIT_DIR = str(Path(__file__).resolve().parent.parent)      # the autograder package
STARTUP_TIMEOUT = 120.0         # seconds for a zygote to import torch and load MNIST
FORK_TIMEOUT = 30.0             # seconds for a forked child to build its namespaces


class ForkedProcess:
    """A worker forked by a zygote, as the grader holds it: a pidfd on its pid-1 process
    (killing that ends the worker's whole pid namespace) and the status socket on which
    its parent reports the exit status. Offers the part of ``Popen`` the kit uses."""

    def __init__(self, pid: int, pidfd: int, status: socket.socket) -> None:
        self.pid, self.pidfd, self.status = pid, pidfd, status
        self.returncode: int | None = None

    def _collect(self, timeout: float | None) -> None:
        if self.returncode is not None or self.status.fileno() < 0:
            return
        if not select.select([self.status], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired("worker", timeout)
        data = b""
        try:
            while len(data) < zygote.STATUS.size:
                chunk = self.status.recv(zygote.STATUS.size - len(data))
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if len(data) == zygote.STATUS.size and data[:1] == b"X":
            code = zygote.STATUS.unpack(data)[1]
            self.returncode = 128 - code if 128 < code <= 128 + 64 else code   # G exits 128+N
        else:
            self.returncode = -signal.SIGKILL      # its parent vanished with it

    def poll(self) -> int | None:
        try:
            self._collect(0)
        except subprocess.TimeoutExpired:
            pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self._collect(timeout)
        return self.returncode

    def kill(self) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except OSError:
            pass

    def close(self) -> None:
        try:
            os.close(self.pidfd)
        except OSError:
            pass
        self.status.close()


@dataclass
class Worker:
    """One started worker process and what belongs to it."""
    proc: subprocess.Popen | ForkedProcess
    req_w: int
    rep_r: int
    scratch: Path | None            # None: a forked worker's scratch is its own tmpfs
    cgroup: Path | None
    key: tuple = field(default=())

    def exit_code(self) -> int | None:
        """The exit status, ``Popen``-style (negative: killed by that signal)."""
        code = self.proc.returncode
        if isinstance(self.proc, subprocess.Popen) and sandbox.confinement()[0] \
                and code is not None and 128 < code <= 128 + 64:
            code = 128 - code          # bwrap reports its child's death by signal N as 128+N
        return code


def settings() -> tuple[list[Path], dict[str, str]]:
    """What every worker may read besides Python and the kit (the MNIST cache, with its
    array cache built), and the environment that tells it where the data is."""
    from ..data import DataError, mnist_path
    try:
        path = mnist_path()
        _build_array_cache(path)
    except DataError:
        return [], {}
    return [path.parent], {"AUTOGRADER_MNIST": str(path)}


@functools.lru_cache(maxsize=None)
def _build_array_cache(path: Path) -> None:
    """Build the array cache the zygote maps (once per process: where the cache is not
    writable, this decodes the file and keeps nothing)."""
    from ..data import file_contents
    file_contents(path)


def worker_env(scratch: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "TMPDIR": str(scratch),
           "PYTHONPATH": str(Path(KIT_DIR).parent), **extra}
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if key in os.environ:
            env.setdefault(key, os.environ[key])
    return env


def _key(limits: Limits, readable, env) -> tuple:
    """What a worker's process is started with (time limits are the grader's business)."""
    return ((limits.memory, limits.processes, limits.file_size, limits.open_files),
            tuple(map(str, readable)), tuple(sorted((env or {}).items())))


def _pipes() -> tuple[int, int, int, int]:
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    for fd in (req_w, rep_w):       # bigger pipes: fewer round trips for MNIST-sized tensors
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
    return req_r, req_w, rep_r, rep_w


def spawn(limits: Limits, readable: list[Path], env: dict[str, str] | None = None) -> Worker:
    """Start a worker (confined where possible); it announces itself with a "ready" frame."""
    if _closed:
        raise OSError("the grader is stopping (interrupted or exiting)")
    sandbox.sweep_stale(tempfile.gettempdir())
    scratch = Path(tempfile.mkdtemp(prefix=f"autograder-scratch-{os.getpid()}-"))
    req_r, req_w, rep_r, rep_w = _pipes()
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
    return _live_worker(Worker(proc, req_w, rep_r, scratch, cgroup, _key(limits, readable, env)))


def release(worker: Worker) -> None:
    """Kill the worker and everything it started; free its pipes, scratch and cgroup."""
    _live.pop(id(worker), None)
    if isinstance(worker.proc, ForkedProcess):
        worker.proc.kill()
        try:
            worker.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        worker.proc.close()
    else:
        sandbox.kill_process_group(worker.proc)
    for fd in (worker.req_w, worker.rep_r):
        try:
            os.close(fd)
        except OSError:
            pass
    if worker.cgroup is not None:
        sandbox.kill_cgroup(worker.cgroup)
        sandbox.remove_cgroup(worker.cgroup)
    if worker.scratch is not None:
        shutil.rmtree(worker.scratch, ignore_errors=True)


class ZygoteError(RuntimeError):
    """The zygote could not give a confined worker; the pool spawns plain ones instead."""


class Zygote:
    """A warm confined process (see :mod:`autograder.engine.zygote`) and the grader's side of
    asking it for workers. Thread-safe: concurrent jobs fork from the same zygote."""

    def __init__(self, limits: Limits, readable: list[Path], env: dict[str, str] | None = None) -> None:
        sandbox.sweep_stale(tempfile.gettempdir())
        self.key = _key(limits, readable, env)
        self.broken: str | None = None
        self._ready = False
        self._lock = threading.Lock()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"autograder-scratch-{os.getpid()}-"))
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.cgroup = None
        try:
            env = worker_env(self.scratch, env or {})
            argv, popen_env, _ = sandbox.worker_command(self.scratch, list(readable), (theirs.fileno(),), env,
                                                        module="autograder.engine.zygote", scratch_writable=False)
            self.cgroup = sandbox.pids_cgroup(limits.processes)
            self.proc = subprocess.Popen(argv, env=popen_env or env, cwd=self.scratch,
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         preexec_fn=sandbox.prepare_child(limits, self.cgroup))
        except BaseException:
            self.control.close()
            sandbox.remove_cgroup(self.cgroup)
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        finally:
            theirs.close()

    def _wait_ready(self) -> None:
        if self._ready:
            return
        if not select.select([self.control], [], [], STARTUP_TIMEOUT)[0]:
            raise ZygoteError(f"the zygote was not ready after {STARTUP_TIMEOUT:g} s")
        try:
            message = json.loads(self.control.recv(65536) or b"null")
        except (OSError, ValueError):
            message = None
        if not isinstance(message, dict) or message.get("op") != "ready":
            raise ZygoteError("the zygote exited while starting")
        self._ready = True

    def fork(self, limits: Limits) -> Worker:
        """A fresh confined worker, in its own pids cgroup, ready to serve."""
        if self.broken is not None:
            raise ZygoteError(self.broken)
        try:
            return self._fork(limits)
        except ZygoteError as exc:
            self.broken = str(exc)
            raise
        except OSError as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            raise ZygoteError(self.broken) from None

    def _fork(self, limits: Limits) -> Worker:
        req_r, req_w, rep_r, rep_w = _pipes()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        cgroup = pidfd = None
        try:
            with self._lock:
                self._wait_ready()
                request = self._request(limits)
                fds = array.array("i", [req_r, rep_w, theirs.fileno()])
                self.control.sendmsg([json.dumps(request).encode()],
                                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            os.close(req_r)
            os.close(rep_w)
            req_r = rep_w = -1
            theirs.close()
            if not select.select([ours], [], [], FORK_TIMEOUT)[0]:
                raise ZygoteError(f"a forked worker did not report within {FORK_TIMEOUT:g} s")
            message, ancdata, _, _ = ours.recvmsg(1024, socket.CMSG_SPACE(struct.calcsize("3i")))
            if message[:1] != zygote.HELLO:
                detail = message[1:].decode(errors="replace") or "it exited"
                raise ZygoteError(f"a forked worker could not wall itself off: {detail}")
            pid = next(struct.unpack("3i", data[:12])[0] for level, kind, data in ancdata
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
            cgroup = sandbox.pids_cgroup(limits.processes)
            if cgroup is not None:
                (cgroup / "cgroup.procs").write_text(str(pid))
            pidfd = os.pidfd_open(pid)
            ours.sendall(zygote.GO)
            if not select.select([ours], [], [], FORK_TIMEOUT)[0]:
                raise ZygoteError(f"a forked worker did not get ready within {FORK_TIMEOUT:g} s")
            message = ours.recv(1)          # one byte: the exit status may follow it
            if message != zygote.READY:
                detail = ours.recv(1024)[:1000].decode(errors="replace") if message else "it exited"
                raise ZygoteError(f"a forked worker could not wall itself off: {detail}")
        except BaseException:
            if pidfd is not None:
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except OSError:
                    pass
            for fd in (req_r, rep_w, req_w, rep_r, pidfd):
                if fd is not None and fd >= 0:
                    os.close(fd)
            theirs.close()
            ours.close()
            if cgroup is not None:
                sandbox.kill_cgroup(cgroup)
                sandbox.remove_cgroup(cgroup)
            raise
        return Worker(ForkedProcess(pid, pidfd, ours), req_w, rep_r, None, cgroup, self.key)

    def _request(self, limits: Limits) -> dict:
        return {"op": "fork", "scratch": str(self.scratch), "scratch_bytes": limits.file_size}

    def stop(self) -> None:
        self.control.close()
        sandbox.kill_process_group(self.proc)       # it holds nothing worth a clean exit
        if self.cgroup is not None:
            sandbox.kill_cgroup(self.cgroup)
            sandbox.remove_cgroup(self.cgroup)
        shutil.rmtree(self.scratch, ignore_errors=True)


def zygotes_enabled() -> bool:
    """Whether workers are forked from a zygote here: only where they are confined (the
    child's namespaces are what keep siblings apart) and not switched off."""
    return (os.environ.get("AUTOGRADER_ZYGOTE", "1") != "0" and sandbox.confinement()[0]
            and hasattr(os, "pidfd_open") and hasattr(socket, "SCM_CREDENTIALS"))


_zygotes: dict[tuple, Zygote] = {}
_restarts: dict[tuple, int] = {}
MAX_ZYGOTE_RESTARTS = 3         # a zygote that keeps dying is given up for spawned workers
_warned: set[str] = set()


def _zygote(limits: Limits, readable, env) -> Zygote | None:
    """The zygote for these settings, started if there is none yet (call with ``_lock``)."""
    if not zygotes_enabled() or _closed:
        return None
    key = _key(limits, readable, env)
    found = _zygotes.get(key)
    if found is not None and found.proc.poll() is not None:
        found.broken = found.broken or "the zygote died"
        if _restarts.get(key, 0) >= MAX_ZYGOTE_RESTARTS:
            _warn(f"the zygote died {MAX_ZYGOTE_RESTARTS + 1} times")
    if found is not None and found.broken and found.proc.poll() is not None \
            and _restarts.get(key, 0) < MAX_ZYGOTE_RESTARTS:
        _restarts[key] = _restarts.get(key, 0) + 1       # it died (killed from outside): replace it
        found.stop()
        found = None
    if found is None:
        try:
            found = _zygotes[key] = Zygote(limits, readable, env)
        except OSError as exc:
            _warn(f"{type(exc).__name__}: {exc}")
            return None
    return None if found.broken else found


def _warn(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        print(f"autograder: no warm workers ({reason}); starting each worker from scratch",
              file=sys.stderr)


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
        if _zygote(limits, readable, env) is not None:
            return
        _wanted, _left = count, total
        while sum(w.key == _key(limits, readable, env) for w in _spares) < _target():
            _spares.append(spawn(limits, readable, env))


def keep(count: int) -> None:
    """From now on, keep ``count`` spares (those already started stay)."""
    global _wanted
    with _lock:
        _wanted = count


def take(limits: Limits, readable: list[Path], env: dict[str, str] | None = None) -> Worker | None:
    """A fresh worker forked from the zygote for these settings, else a fresh spare
    (starting its replacement), or None."""
    global _left
    key = _key(limits, readable, env)
    with _lock:
        parent = _zygote(limits, readable, env)
    if parent is not None:
        try:
            return _live_worker(parent.fork(limits))
        except ZygoteError as exc:
            _warn(str(exc))
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


_live: dict[int, Worker] = {}      # every worker started and not released yet (see close)
_closed = False


def _live_worker(worker: Worker) -> Worker:
    _live[id(worker)] = worker
    return worker


def close() -> None:
    """Stop for good, at once (Ctrl-C, interpreter exit): kill every live worker, even one
    a grading thread is waiting on, and start no new one (a :class:`Session` that asks then
    gets a ``GraderError``, which is charged to nobody)."""
    global _closed
    _closed = True
    for worker in list(_live.values()):
        if isinstance(worker.proc, ForkedProcess):
            worker.proc.kill()
        else:
            try:
                os.killpg(worker.proc.pid, signal.SIGKILL)   # its own session (see sandbox)
            except OSError:
                pass
    shutdown()


@atexit.register
def shutdown() -> None:
    """Stop every spare worker and zygote (also run at interpreter exit)."""
    global _wanted
    with _lock:
        _wanted = 0
        while _spares:
            release(_spares.pop())
        while _zygotes:
            _zygotes.popitem()[1].stop()
