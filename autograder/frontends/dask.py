"""Grading on an existing Dask distributed cluster: ``grade --scheduler ADDRESS``.

Workers may be other machines, so each task carries the notebook's bytes, not its path.
The worker writes them to a private temporary file and calls
:func:`~autograder.engine.grade.grade_notebook` there, which confines student code on that machine
exactly as it would locally (and says in ``confinement`` when it cannot). Only plain data
comes back; the client rebuilds the report dataclasses. The worker machines need this
package (same version) and the lesson's data, as for local grading.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from ..engine.notebook import MAX_NOTEBOOK_BYTES, NotebookError, read_notebook
from ..engine.report import NotebookReport
from ..engine.sandbox import Limits

__all__ = ["Cluster", "ClusterError", "grade_bytes"]

NOT_INSTALLED = ("grading on a cluster needs dask distributed: "
                 "pip install 'foundations-autograder[cluster]'")
UNREACHABLE = "cannot reach the Dask scheduler at {address}: {reason}"
TASK_FAILED = "not graded: the task failed on the cluster ({kind}: {reason})"


class ClusterError(Exception):
    """The cluster cannot be used at all; the message is one line for the command line."""


def grade_bytes(name: str, data: bytes, limits: dict, lessons: tuple[str, ...] = ()) -> dict:
    """Runs on a worker: grade one notebook's bytes on that machine, return plain data.

    The worker process's first task runs the preflight (remembered for the next ones); when
    it fails, the notebook comes back as a grader failure, never as the student's zero."""
    from ..engine.errors import GraderError
    from ..engine.grade import grade_notebook
    from ..engine.preflight import preflight
    from ..engine import discovery
    start = time.monotonic()
    try:
        discovery.add_paths(lessons)    # local lesson folders: the same path on every machine
        preflight(Limits(**limits))
    except GraderError as exc:
        report = NotebookReport(name, grader_failure=f"on {socket.gethostname()}: {exc}")
        return {**report.as_json(), "seconds": time.monotonic() - start}
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:   # mode 0700: private
        path = Path(tmp) / (name if name not in ("", ".", "..") else "notebook.ipynb")
        path.write_bytes(data)                  # same file name: messages read as locally
        report = grade_notebook(path, limits=Limits(**limits))
    where = f"on {socket.gethostname()}: {report.confinement}" if report.confinement else ""
    return {**report.as_json(), "confinement": where, "seconds": time.monotonic() - start}


def local_lessons() -> tuple[str, ...]:
    """The local lesson folders this process uses (installed lessons travel as packages)."""
    from ..engine.discovery import ENV
    return tuple(p for p in os.environ.get(ENV, "").split(os.pathsep) if p)


def _rebuild(notebook: str, data: dict) -> NotebookReport:
    return NotebookReport.from_json({**data, "notebook": notebook})


def _read(path: Path) -> bytes | NotebookReport:
    """The file's bytes, or the error report local grading gives for it (never sent)."""
    try:
        if path.stat().st_size <= MAX_NOTEBOOK_BYTES:
            return path.read_bytes()
    except OSError:
        pass
    try:
        read_notebook(path)                     # raises the same one-line message
    except NotebookError as exc:
        return NotebookReport(str(path), error=str(exc))
    return NotebookReport(str(path), error=f"{path} cannot be read")


class Cluster:
    """A connection to a running scheduler; ``grade()`` yields reports as tasks finish."""

    def __init__(self, address: str):
        try:
            from distributed import Client
            from distributed.comm import resolve_address
        except ImportError:
            raise ClusterError(NOT_INSTALLED) from None
        try:    # a bad address fails here at once (a half-made Client would hang at exit)
            resolve_address(address)
            self.client = Client(address, set_as_default=False)   # waits up to 30 s by default
        except (OSError, ValueError, TimeoutError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ClusterError(UNREACHABLE.format(address=address, reason=reason)) from None

    @property
    def slots(self) -> int:
        """How many notebooks the cluster grades at once (its worker threads)."""
        return max(1, sum(self.client.nthreads().values()))

    def grade(self, paths: list[str | Path], *,
              limits: Limits = Limits()) -> Iterator[tuple[int, NotebookReport, float]]:
        """Yield (input index, report, seconds spent grading) in the order tasks finish."""
        from distributed import as_completed
        sent: list[tuple[int, Path, bytes]] = []
        unreadable = []
        for i, path in enumerate(map(Path, paths)):
            data = _read(path)
            if isinstance(data, NotebookReport):
                unreadable.append((i, data, 0.0))
            else:
                sent.append((i, path, data))
        with warnings.catch_warnings():         # the bytes are the graph: that is the point
            warnings.filterwarnings("ignore", message="Sending large graph")
            futures = self.client.map(grade_bytes, [p.name for _, p, _ in sent],
                                      [d for _, _, d in sent], [asdict(limits)] * len(sent),
                                      [local_lessons()] * len(sent), pure=False)
        yield from unreadable
        where = {f.key: (i, str(path)) for f, (i, path, _) in zip(futures, sent)}
        for future in as_completed(futures, loop=self.client.loop):
            i, notebook = where[future.key]
            try:
                data = future.result()
            except Exception as exc:            # a lost worker, a missing package there, ...
                reason = (str(exc).splitlines() or [""])[0][:200]
                yield i, NotebookReport(notebook, grader_failure=TASK_FAILED.format(   # not the student's
                    kind=type(exc).__name__, reason=reason)), 0.0
            else:
                yield i, _rebuild(notebook, data), data["seconds"]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
