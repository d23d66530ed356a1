"""Workers forked from a warm zygote: fast, and each walled off from its siblings.

These run the real zygote inside the real sandbox; they are skipped where workers are
not confined (no bubblewrap), since the zygote is only used there.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import textwrap

import pytest

from autograder.engine import pool
from autograder.engine.codec import MISSING
from autograder.engine.sandbox import Limits
from autograder.engine.session import Session

LIMITS = Limits(cell_timeout=30)

pytestmark = pytest.mark.skipif(not pool.zygotes_enabled(), reason="workers are not confined here")


@pytest.fixture
def settings():
    return pool.settings()


def _session(settings) -> Session:
    return Session(LIMITS, *settings)


def _run(session: Session, source: str):
    run = session.run_cell("probe", textwrap.dedent(source))
    assert run.status == "ok", run.reason
    return run


def test_workers_come_from_the_zygote_and_are_fresh_processes(settings):
    """Is every worker a forked, untouched process of its own (nothing from the last student)?"""
    seen = set()
    for i in range(3):
        with _session(settings) as s:
            assert s.get("leak")["leak"] is MISSING
            _run(s, f"leak = {i}")
            assert isinstance(s._worker.proc, pool.ForkedProcess)
            seen.add(s._worker.proc.pid)
    assert len(seen) == 3


def test_siblings_cannot_see_signal_or_meet_each_other(settings):
    """Two students graded at once: no shared pids, files, /dev, /dev/shm, sockets or /proc."""
    with _session(settings) as a, _session(settings) as b:
        _run(b, """
            import os, socket
            open("answers.txt", "w").write("b's work")
            if os.path.isdir("/dev/shm"):
                open("/dev/shm/b", "w").write("b")
            try:
                open("/dev/b-was-here", "w").write("b")
            except OSError:
                pass
            open("/dev/null", "w").write("devices still work")
            import pty
            terminal = pty.openpty()                  # kept open: /dev/pts/0 while b lives
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind("\\0autograder-sibling")
            listener.listen()
        """)
        _run(a, """
            import os, socket
            reachable = []
            for pid in range(1, 5000):
                try:
                    os.kill(pid, 0)
                    reachable.append(pid)
                except ProcessLookupError:
                    pass
            files = os.listdir(".")
            shm = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
            proc = os.listdir("/proc")
            dev_note = os.path.exists("/dev/b-was-here")
            terminals = [n for n in os.listdir("/dev/pts") if n != "ptmx"] if os.path.isdir("/dev/pts") else []
            try:
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("\\0autograder-sibling")
                met = True
            except OSError:
                met = False
        """)
        seen = a.get("reachable", "files", "shm", "proc", "met", "dev_note", "terminals")
        assert seen["dev_note"] is False and seen["terminals"] == []
        assert set(seen["reachable"]) <= {1, 2}      # its own pid-1 parent and itself
        assert seen["files"] == [] and seen["shm"] == [] and seen["proc"] == []
        assert seen["met"] is False
        _run(b, "assert open('answers.txt').read() == \"b's work\"")


def test_a_forked_worker_has_no_privileges(settings):
    """Can student code mount, unmount its scratch, or regain capabilities? It must not."""
    with _session(settings) as s:
        _run(s, """
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            mount = libc.mount(b"tmpfs", os.getcwd().encode(), b"tmpfs", 0, None)
            umount = libc.umount2(os.getcwd().encode(), 2)
            unshare = libc.unshare(0x00020000)               # a new mount namespace
            no_new_privs = libc.prctl(39, 0, 0, 0, 0)        # PR_GET_NO_NEW_PRIVS
            uid = os.geteuid()
        """)
        got = s.get("mount", "umount", "unshare", "no_new_privs", "uid")
        assert got["mount"] == -1 and got["umount"] == -1 and got["unshare"] == -1
        assert got["no_new_privs"] == 1
        assert got["uid"] != 0
        # A user namespace of its own gives capabilities over nothing it inherited: the
        # mounts that hide /proc and the zygote's scratch stay (they are locked).
        _run(s, """
            import ctypes, os
            pid = os.fork()
            if pid == 0:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(0x10000000 | 0x00020000) != 0:     # user + mount namespace
                    os._exit(10)
                unhid = libc.umount2(b"/proc", 2) == 0 or libc.umount2(os.getcwd().encode(), 2) == 0
                os._exit(20 if unhid else 30)
            escape = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            still_hidden = os.listdir("/proc") == []
        """)
        got = s.get("escape", "still_hidden")
        assert got["escape"] in (10, 30) and got["still_hidden"] is True


def test_each_worker_has_its_own_process_cap(settings):
    """Does one student's fork bomb leave a sibling able to start processes?"""
    if pool.sandbox.process_cap() != "cgroup":
        pytest.skip("no writable pids cgroup here")
    limits = Limits(cell_timeout=30, processes=24)
    with Session(limits, *settings) as bomb, Session(limits, *settings) as other:
        _run(bomb, "pass")
        _run(other, "pass")
        assert None is not bomb._worker.cgroup != other._worker.cgroup
        _run(bomb, """
            import os, time
            children = 0
            for _ in range(200):
                try:
                    if os.fork() == 0:
                        time.sleep(120)
                        os._exit(0)
                    children += 1
                except OSError:
                    break
        """)
        assert bomb.get("children")["children"] < 24
        _run(other, """
            import os
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        """)
        cgroup = bomb._worker.cgroup
    assert not cgroup.exists()


def test_random_generators_are_not_shared_between_workers(settings):
    """Unseeded random numbers differ between students, as in fresh processes."""
    draws = []
    for _ in range(2):
        with _session(settings) as s:
            _run(s, "import random, numpy, torch\n"
                    "d = (random.random(), float(numpy.random.rand()), float(torch.rand(1)))")
            draws.append(tuple(s.get("d")["d"]))
    assert all(x != y for x, y in zip(*draws, strict=True))


def test_mnist_read_from_the_zygote_is_byte_identical(settings):
    """gzip.open of the MNIST file gives exactly the file's decompressed bytes."""
    readable, env = settings
    if "AUTOGRADER_MNIST" not in env:
        pytest.skip("MNIST is not available")
    with gzip.open(env["AUTOGRADER_MNIST"], "rb") as f:
        raw = f.read()
    expected = hashlib.sha256(raw).hexdigest()
    with _session(settings) as s:
        _run(s, """
            import gzip, hashlib, io, os, pickle
            path = os.environ["AUTOGRADER_MNIST"]
            served = type(gzip.open(path, "rb")).__name__
            with gzip.open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            with gzip.open(path, "rb") as f:
                ((x, y), _, _) = pickle.load(f, encoding="latin-1")
                rest = len(f.read())
            shape = list(x.shape)
            x[:] = 0                                          # a student's in-place change...
            with gzip.open(path, "rb") as f:
                again = pickle.load(f, encoding="latin-1")
            pristine = float(again[0][0].sum()) > 0 and again[0][0].flags.writeable
            kinds = sorted({type(a).__name__ for pair in again for a in pair})
            with gzip.open(path, "rb") as f:
                pickle.load(f, encoding="latin-1")
                after = (len(f.read()), f.tell())
                f.seek(0)
                head = list(f.read(2))
            with gzip.open(path, "rb") as f:                  # any other reading: the real thing
                f.read(10)
                try:
                    pickle.load(f, encoding="latin-1")
                    partial = "loaded"
                except Exception as exc:
                    partial = type(exc).__name__
            try:
                gzip.open(path, "rb").write(b"x")
                writable = True
            except (io.UnsupportedOperation, OSError):
                writable = False
        """)
        got = s.get("digest", "shape", "writable", "rest", "pristine", "partial", "kinds", "after",
                    "head", "served")
    assert got["digest"] == expected
    assert got["shape"] == [50000, 784] and got["rest"] == 0
    assert got["writable"] is False
    assert got["pristine"] is True                        # ...never reaches the next call
    assert got["kinds"] == ["ndarray"]
    assert list(got["after"]) == [0, len(raw)]             # at the end, as after a real load
    assert got["head"] == list(raw[:2])
    assert got["served"] == "MnistGzipFile"
    assert got["partial"] != "loaded"


def test_exit_status_and_kill_reach_the_grader(settings):
    """Are os._exit codes and signals reported as with a spawned worker, and is a
    timed-out worker killed and replaced?"""
    with Session(Limits(cell_timeout=2), *settings) as s:
        died = s.run_cell("exit", "import os\nos._exit(3)")
        assert died.status == "crashed" and "status 3" in died.error["evalue"]
        hung = s.run_cell("loop", "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass")
        assert hung.status in ("timeout", "crashed")
        assert s.run_cell("after", "z = 1").status == "ok"


def test_a_zygote_whose_children_cannot_wall_off_falls_back_to_spawning(settings, monkeypatch, capsys):
    """If a child cannot build its namespaces it runs nothing, and grading goes on with
    spawned workers."""
    pool.shutdown()
    monkeypatch.setattr(pool.Zygote, "_request",
                        lambda self, limits: {"op": "fork", "scratch": "/nonexistent", "scratch_bytes": 1 << 20})
    try:
        with _session(settings) as s:
            _run(s, "ok = 1")
            assert not isinstance(s._worker.proc, pool.ForkedProcess)
        assert "could not wall itself off" in capsys.readouterr().err
    finally:
        pool.shutdown()
        pool._warned.clear()


def test_zygote_runs_no_student_code_and_stops_with_the_pool(settings):
    """The zygote outlives its children, and shutdown() stops it."""
    with _session(settings) as s:
        _run(s, "import os\nos.kill(1, 9)")      # pid 1 is the child's own init, not the zygote
    parent = next(iter(pool._zygotes.values()))
    assert parent.proc.poll() is None
    with _session(settings) as s:
        _run(s, "x = 1")
    pool.shutdown()
    assert parent.proc.poll() is not None
    assert os.path.exists(parent.scratch) is False


def test_a_zygote_that_died_is_replaced(settings, capsys, monkeypatch):
    """If the zygote itself is killed (say, by the OOM killer), grading goes on with a
    new zygote; after too many deaths, with spawned workers."""
    pool.shutdown()
    monkeypatch.setattr(pool, "_restarts", {})
    monkeypatch.setattr(pool, "MAX_ZYGOTE_RESTARTS", 1)

    def kill_zygote():
        parent = next(iter(pool._zygotes.values()))
        parent.proc.kill()
        parent.proc.wait()
        return parent

    def kind():
        with _session(settings) as s:
            _run(s, "x = 2")
            assert s.get("x")["x"] == 2
            return type(s._worker.proc).__name__

    try:
        assert kind() == "ForkedProcess"
        first = kill_zygote()
        assert kind() == "ForkedProcess"          # from a new zygote
        assert next(iter(pool._zygotes.values())) is not first
        assert capsys.readouterr().err == ""
        kill_zygote()
        assert [kind(), kind()] == ["Popen", "Popen"]   # given up after one restart
        assert "no warm workers (the zygote died 2 times)" in capsys.readouterr().err
    finally:
        pool.shutdown()
        pool._warned.clear()


def test_a_forked_worker_holds_only_its_own_descriptors(settings):
    """No socket (the zygote's control socket, a sibling's status socket) reaches student
    code: only standard streams, its two pipes, and the read-only maps of the data."""
    with _session(settings) as s:
        _run(s, """
            import os, stat
            kinds = []
            for fd in range(1024):
                try:
                    mode = os.fstat(fd).st_mode
                except OSError:
                    continue
                kinds.append("socket" if stat.S_ISSOCK(mode) else "pipe" if stat.S_ISFIFO(mode)
                             else "file" if stat.S_ISREG(mode) else "device")
        """)
        kinds = s.get("kinds")["kinds"]
    assert "socket" not in kinds and kinds.count("pipe") == 2


def test_multiprocessing_works_in_a_forked_worker(settings):
    """A student's multiprocessing.Pool (fork, semaphores in /dev/shm, pipes) works, as in
    a spawned worker: the zygote's file objects stay valid in its children."""
    with _session(settings) as s:
        _run(s, """
            import multiprocessing as mp
            with mp.Pool(2) as p:
                squares = p.map(abs, [-1, -2, 3])
        """)
        assert list(s.get("squares")["squares"]) == [1, 2, 3]
