"""Confinement and limits for the worker process.

Where bubblewrap (``bwrap``) works, the worker sees a read-only view of the system
and of the Python installation, the kit's own package, the MNIST cache, and one
private writable scratch directory that is its working directory. It has no network,
its own user, process, IPC and host namespaces (inside, it is ``nobody``), and no
capabilities. Course files (``assignments/``, ``solutions/``,
other submissions, the gradebook) are simply not in its view.

Where bubblewrap is missing or refused (macOS, a container without user namespaces),
grading still works: :func:`confinement` says why it is off and every report says the
run was unconfined.

Limits are set before the worker starts: address space, file size, open files and no
core dumps with ``setrlimit``; processes and threads with a pids cgroup where one can be
made (else ``RLIMIT_NPROC``). Time limits are enforced by the session.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "confinement", "worker_command", "NOBODY"]

NOBODY = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission. Times in seconds, sizes in bytes."""
    cell_timeout: float = 60.0          # one cell or one check's call into student code
    notebook_timeout: float = 600.0     # everything one submission may run, in total
    memory: int = 6 * 2**30             # address space of the worker (torch alone maps ~1.5 GiB)
    processes: int = 256                # processes and threads of one worker
    file_size: int = 512 * 2**20        # largest file the worker may write
    open_files: int = 512
    reply_bytes: int = 2 * 2**30        # largest answer the grader accepts from the worker

    def apply(self) -> None:
        """Set the limits on the current process (called in the child before exec)."""
        pairs = [(resource.RLIMIT_AS, self.memory), (resource.RLIMIT_FSIZE, self.file_size), (resource.RLIMIT_NOFILE, self.open_files),
                 (resource.RLIMIT_CORE, 0)]
        for which, value in pairs:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass


@functools.lru_cache(maxsize=None)
def confinement() -> tuple[bool, str]:
    """Whether workers can be confined here, and a sentence saying how or why not."""
    if os.environ.get("AUTOGRADER_UNCONFINED") == "1":
        return False, "confinement switched off by AUTOGRADER_UNCONFINED=1"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run([bwrap, *_bwrap_base([]), "--", "/bin/true"],
                               capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bubblewrap could not start: {exc}"
    if probe.returncode != 0:
        reason = probe.stderr.decode(errors="replace").strip().splitlines()
        return False, f"bubblewrap refused to run here: {reason[-1] if reason else probe.returncode}"
    return True, "confined with bubblewrap (read-only system, private scratch, no network)"


def _bwrap_base(readable: list[Path]) -> list[str]:
    """bwrap's options: namespaces, a read-only system, and the ``readable`` paths."""
    args = ["--unshare-all", "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "worker", "--proc", "/proc", "--dev", "/dev"]
    for d in SYSTEM_DIRS:
        args += ["--ro-bind-try", d, d]
    seen = set(SYSTEM_DIRS)
    for path in readable:
        p = str(path)
        if p in seen or any(p.startswith(s + "/") for s in SYSTEM_DIRS):
            continue
        args += ["--ro-bind", p, p]
        seen.add(p)
    return args


def python_paths() -> list[Path]:
    """What the worker's interpreter needs to see: the install, the venv, the kit, and the
    site-packages folders on ``sys.path`` outside them (``pip install --user``, a system
    or layered environment's packages: where torch may be). Never the working directory:
    a course folder stays out of view."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix),
             Path(os.path.realpath(sys.executable)).parent.parent,
             Path(__file__).resolve().parents[1]}   # the autograder package
    for entry in sys.path:
        parts = Path(entry).parts
        if entry and ("site-packages" in parts or "dist-packages" in parts):
            paths.add(Path(entry))
    return sorted(p for p in paths if p.exists())


def worker_command(scratch: Path, readable: list[Path], fds: tuple[int, ...],
                   env: dict[str, str], *, module: str = "autograder.engine.worker",
                   scratch_writable: bool = True) -> tuple[list[str], dict[str, str], bool]:
    """The argv and environment that start a worker (or the zygote, ``module``), and
    whether it is confined. The zygote's scratch is read-only: its children mount their
    own tmpfs there."""
    worker = [sys.executable, "-X", "faulthandler", "-m", module, *map(str, fds)]
    confined, _ = confinement()
    if not confined:
        return worker, env, False
    args = ["bwrap", *_bwrap_base([*python_paths(), *readable]),
            "--bind" if scratch_writable else "--ro-bind", str(scratch), str(scratch), "--remount-ro", "/",
            "--chdir", str(scratch), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *worker], {}, True


CGROUP_PIDS_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def pids_cgroup(limit: int) -> Path | None:
    """A fresh pids cgroup capped at ``limit`` tasks, where this process may make one.

    The kernel's per-user RLIMIT_NPROC does not bind root, and for another user it counts
    every process that user has; a cgroup caps exactly one worker's processes and threads.
    Returns None where cgroups are not writable (then :func:`prepare_child` falls back).
    """
    for root in CGROUP_PIDS_ROOTS:
        if not (root / "pids.max").exists() and not (root / "cgroup.procs").exists():
            continue
        path = root / f"autograder-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
        except OSError:
            continue
        try:
            (path / "pids.max").write_text(str(limit))
            return path
        except OSError:
            remove_cgroup(path)
    return None


@functools.lru_cache(maxsize=None)
def process_cap() -> str:
    """How a worker's process count is capped here: "cgroup", "rlimit" or "none"."""
    probe = pids_cgroup(1)
    if probe is not None:
        remove_cgroup(probe)
        return "cgroup"
    return "none" if os.geteuid() == 0 or _user_threads() is None else "rlimit"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.lru_cache(maxsize=None)
def sweep_stale(scratch_root: str) -> None:
    """Remove scratch folders and cgroups left by graders that were killed (their names
    carry the grader's pid). Runs once per grader process."""
    leftovers = [*Path(scratch_root).glob("autograder-scratch-*-*")]
    for root in CGROUP_PIDS_ROOTS:
        leftovers += root.glob("autograder-*-*") if root.is_dir() else []
    for path in leftovers:
        parts = path.name.split("-")
        pid = parts[2] if path.name.startswith("autograder-scratch-") else parts[1]
        if pid.isdigit() and not _alive(int(pid)):
            if path.parent in CGROUP_PIDS_ROOTS:
                remove_cgroup(path)
            else:
                shutil.rmtree(path, ignore_errors=True)


def kill_process_group(proc: subprocess.Popen) -> None:
    """Kill a worker and its process group, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def kill_cgroup(path: Path) -> None:
    """SIGKILL every task left in the cgroup (children that left the worker's process group)."""
    try:
        pids = (path / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def remove_cgroup(path: Path | None) -> None:
    if path is None:
        return
    for _ in range(50):                      # the killed tasks take a moment to leave
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _user_threads() -> int | None:
    """Threads this user runs now (what RLIMIT_NPROC counts), or None without /proc."""
    uid, total = os.getuid(), 0
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return None
    for entry in entries:
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    total += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return total


def prepare_child(limits: Limits, cgroup: Path | None = None):
    """A ``preexec_fn``: a new session (so the whole group can be killed), the limits, and
    the process cap: join ``cgroup``, or else an RLIMIT_NPROC above what the user runs now."""
    running = None if cgroup is not None or os.geteuid() == 0 else _user_threads()
    nproc = None if running is None else running + limits.processes
    procs = str(cgroup / "cgroup.procs").encode() if cgroup is not None else None

    def _pre() -> None:
        os.setsid()
        limits.apply()
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        elif nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return _pre
