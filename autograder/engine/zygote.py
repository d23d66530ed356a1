"""The warm parent: one confined process that forks a fresh worker for each submission.

Started by :class:`autograder.engine.pool.Zygote` inside the same bubblewrap sandbox as a
plain worker, as ``python -m autograder.engine.zygote CONTROL_FD``. It imports torch, the kit
and the modules the lesson uses, memory-maps the MNIST arrays from the data module's
cache (the file was checksum-verified by the grader), and then waits. It never runs
student code.

For each request (a message on the control socket carrying three file descriptors:
the worker's request pipe, its reply pipe, and a status socket) it forks, and the
child walls itself off from its siblings before any student code exists::

    zygote ── C: unshare user, mount, pid, ipc, net and uts namespaces; map the uid;
              └─ G: pid 1 of the new pid namespace. Says hello on the status socket
                    (the kernel attaches G's pid as the grader sees it, so the grader
                    can put G in a fresh pids cgroup and hold a pidfd), waits for "go",
                    then (wall_off) mounts an empty private tmpfs on the scratch
                    directory and on /dev/shm and its own devpts, makes the rest of
                    /dev read-only, hides /proc, drops every capability and sets
                    no_new_privs, says "ready" and closes the status socket, then
                    └─ W: the worker (pid 2), serving the grader as a spawned one does.

G reaps whatever W leaves behind and exits with W's status; C reports that status on
the status socket. Killing G (the grader does, through its pidfd) ends the whole pid
namespace. Siblings cannot see, signal or trace each other (separate pid and user
namespaces, no /proc), cannot meet (separate network and IPC namespaces, private
/dev/shm and ptys), and cannot read or leave files for each other (a private scratch,
/dev read-only). Each is a separate process: two students never share an interpreter.

A child that cannot build its namespaces never runs anything: it reports the error on
the status socket, and the grader falls back to spawning plain workers.
"""

from __future__ import annotations

import array
import ctypes
import functools
import gzip
import io
import json
import os
import signal
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY, MS_REMOUNT, MS_BIND = 2, 4, 8, 1, 32, 4096
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522

HELLO, GO, READY, FAILED = b"H", b"G", b"R", b"E"
STATUS = struct.Struct("!ci")      # b"X" and the worker's exit status (negative: signal)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: bytes | None, target: str, fstype: bytes | None, flags: int,
           data: bytes | None = None) -> None:
    _check(_libc.mount(source, target.encode(), fstype, flags, data), f"mount {target}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_privileges() -> None:
    """No capabilities (bounding, effective, permitted, inheritable) and no way back."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break                                   # EINVAL: past the last capability
    header, data = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def enter_namespaces() -> None:
    """In C: new user, mount, pid, ipc, network and uts namespaces; same uid and gid inside."""
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(NAMESPACES), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _mount_flags(path: str) -> int:
    """The per-mount flags ``path`` has now (a remount that dropped one would be refused)."""
    flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                                 (os.ST_NOEXEC, MS_NOEXEC)) if flag & st)


def wall_off(scratch: str, scratch_bytes: int) -> None:
    """In G: private mounts, a fresh scratch, no /proc, a read-only /dev with a private
    /dev/shm and /dev/pts, no capabilities."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(b"tmpfs", scratch, b"tmpfs", MS_NOSUID | MS_NODEV,
           f"size={scratch_bytes},mode=0700".encode())
    # bubblewrap's /dev is one tmpfs shared by every child: read-only here (device nodes
    # still work), with a private /dev/shm and /dev/pts on top.
    _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | _mount_flags("/dev"))
    if os.path.isdir("/dev/shm"):
        _mount(b"tmpfs", "/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777")
    if os.path.isdir("/dev/pts"):           # its own pseudo-terminals (/dev/ptmx -> pts/ptmx)
        _mount(b"devpts", "/dev/pts", b"devpts", MS_NOSUID | MS_NOEXEC, b"newinstance,ptmxmode=0666,mode=620")
    # /proc shows the zygote's pid namespace (the siblings); a new one cannot be mounted
    # under bubblewrap's partly covered /proc, so an empty read-only tmpfs hides it.
    _mount(b"tmpfs", "/proc", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=4k,mode=0555")
    _mount(None, "/proc", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(scratch)
    drop_privileges()


# ---------------------------------------------------------------------------- warm-up
class MnistGzipFile(gzip.GzipFile):
    """What ``gzip.open(MNIST_PATH, "rb")`` returns in a forked worker: the real gzip file,
    read and decompressed as usual, except that the lesson's ``pickle.load(f,
    encoding="latin-1")`` from its start is answered with fresh copies of the arrays the
    zygote memory-mapped once (see :func:`_serve_mnist_from_memory`). After that the file
    behaves as one read to its end."""

    size = 0                    # decompressed size, for tell() after a served load
    _served = False

    def _after_load(self) -> None:
        self._served = True

    def read(self, size=-1):
        return b"" if self._served else super().read(size)

    def read1(self, size=-1):
        return b"" if self._served else super().read1(size)

    def peek(self, n=0):
        return b"" if self._served else super().peek(n)

    def readline(self, size=-1):
        return b"" if self._served else super().readline(size)

    def tell(self):
        return self.size if self._served else super().tell()

    def seek(self, offset, whence=io.SEEK_SET):
        if self._served and whence != io.SEEK_END:
            offset += self.size if whence == io.SEEK_CUR else 0
            self._served = False                   # back to the real stream, from its start
            super().seek(0)
            whence = io.SEEK_SET
        return super().seek(offset, whence)


def _serve_mnist_from_memory() -> None:
    """Patch ``gzip.open`` and ``pickle.load`` for the one file every student reads: the
    same results, without decompressing and unpickling 220 MB once per student (each
    load gets its own writable arrays: see :func:`autograder.data.private_map`)."""
    import pickle

    from ..data import cached_contents, private_map
    path = os.environ.get("AUTOGRADER_MNIST")
    contents = cached_contents(path) if path and os.path.isfile(path) else None
    if contents is None:
        return
    real = os.path.realpath(path)
    with open(real, "rb") as f:                    # gzip's trailer: the size mod 2**32
        f.seek(-4, io.SEEK_END)
        MnistGzipFile.size = struct.unpack("<I", f.read(4))[0]
    original_open, original_load = gzip.open, pickle.load

    @functools.wraps(original_open)
    def open_(filename, mode="rb", *args, **kwargs):
        if (mode in ("r", "rb") and not args and not kwargs and isinstance(filename, (str, bytes, os.PathLike))
                and os.path.realpath(os.fsdecode(filename)) == real):
            return MnistGzipFile(filename, "rb")
        return original_open(filename, mode, *args, **kwargs)

    @functools.wraps(original_load)
    def load(file, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
        if (type(file) is MnistGzipFile and not file.closed and not file._served and file.tell() == 0
                and fix_imports and encoding == "latin-1" and errors == "strict" and buffers is None):
            file._after_load()
            return tuple(tuple(private_map(a) for a in pair) for pair in contents)
        return original_load(file, fix_imports=fix_imports, encoding=encoding, errors=errors,
                             buffers=buffers)

    gzip.open, pickle.load = open_, load


def warm_up() -> None:
    """Everything a worker would otherwise do first, done once: imports and MNIST."""
    import math  # noqa: F401
    import pickle  # noqa: F401

    import numpy  # noqa: F401
    import torch

    from . import codec, executor, worker  # noqa: F401
    # first-use costs of the operations the lesson uses (every worker reseeds its
    # generators: see _fresh_random_state)
    a = torch.ones(64, 64)
    ((a - a.mean()) / a.std() @ a).clamp_min(0.0).sum()
    torch.nn.init.kaiming_normal_  # noqa: B018
    _serve_mnist_from_memory()


# ---------------------------------------------------------------------------- forking
def _receive(control: socket.socket) -> tuple[dict, list[int]] | None:
    fds = array.array("i")
    msg, ancdata, _flags, _addr = control.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not msg:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(msg), list(fds)


def _child(control: socket.socket, request: dict, req_r: int, rep_w: int, status_fd: int) -> None:
    """C, then G, then W. Never returns.

    The only descriptors the zygote holds besides the three it was sent are its control
    socket (closed here, through its Python object so nothing later closes a reused
    number), standard input and output (/dev/null), and the read-only maps of the array
    cache; the descriptors sent for other children were closed before this fork.
    """
    status = socket.socket(fileno=status_fd)
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        enter_namespaces()
        init = os.fork()
    except BaseException as exc:                    # noqa: BLE001  report, never run anything
        _report_failure(status, exc)
    if init:                                        # C: wait for G, report, leave
        os.close(req_r)
        os.close(rep_w)
        _, code = os.waitpid(init, 0)
        try:
            status.sendall(STATUS.pack(b"X", os.waitstatus_to_exitcode(code)))
        finally:
            os._exit(0)
    try:                                            # G: pid 1 of the new namespace
        status.sendall(HELLO)
        if status.recv(1) != GO:
            os._exit(1)
        wall_off(request["scratch"], int(request["scratch_bytes"]))
        status.sendall(READY)
        status.close()
        worker_pid = os.fork()
    except BaseException as exc:                    # noqa: BLE001
        _report_failure(status, exc)
    if worker_pid == 0:                             # W: the worker
        _fresh_random_state()
        from . import worker
        worker.main([str(req_r), str(rep_w)])
        os._exit(0)
    os.close(req_r)
    os.close(rep_w)
    while True:                                     # G: reap until the worker is gone
        try:
            pid, code = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == worker_pid:
            code = os.waitstatus_to_exitcode(code)
            os._exit(128 - code if code < 0 else code)


def _fresh_random_state() -> None:
    """Unseeded generators start from fresh entropy, as in a new process (torch, numpy
    and ``random`` would otherwise continue the zygote's state, the same in every child)."""
    import random

    import numpy
    import torch
    random.seed()
    numpy.random.seed()
    torch.seed()


def _report_failure(status: socket.socket, exc: BaseException) -> None:
    try:
        status.sendall(FAILED + f"{type(exc).__name__}: {exc}".encode()[:1000])
    finally:
        os._exit(70)


def serve(control_fd: int) -> None:
    control = socket.socket(fileno=control_fd)
    warm_up()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # Cs are reaped by the kernel
    control.sendall(json.dumps({"op": "ready", "pid": os.getpid()}).encode())
    while True:
        received = _receive(control)
        if received is None:
            return
        request, fds = received
        if request.get("op") != "fork" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            _child(control, request, *fds)
        for fd in fds:
            os.close(fd)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    sys.stdin = open(os.devnull)
    serve(int(argv[0]))
    os._exit(0)


if __name__ == "__main__":
    main()
