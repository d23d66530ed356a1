"""The preflight: before anyone is graded, prove that the grader can grade.

Every front end calls :func:`preflight` first (the command line, ``pytest autograder``,
the nbgrader preprocessor, and a Dask worker's first task). It checks, in order, that

1. the lesson's data is there and verified (``autograder.data.mnist_path``);
2. a worker starts exactly as it will for students (same limits, same confinement,
   forked from the zygote where there is one) and imports the very kit files this
   process imported;
3. that worker runs a known-good canary cell (the lesson's own reading of MNIST);
4. the grader loads the data its references are computed from.

Any failure is a :class:`~autograder.engine.errors.GraderError` with one line saying what is
broken and how to fix it; no student is graded. A success is remembered per process and
set of limits, so the preflight costs one worker start per run.
"""

from __future__ import annotations

import threading

from .errors import GraderError
from .sandbox import Limits

__all__ = ["preflight"]

DATA_FIX = ("Run `python -m autograder.data` on this machine (it says what it tried), "
            "or set AUTOGRADER_MNIST to a verified copy of mnist.pkl.gz")

_lock = threading.Lock()
_done: dict[Limits, GraderError | None] = {}


def preflight(limits: Limits = Limits()) -> None:
    """Raise :class:`GraderError` unless this process can grade with ``limits``."""
    with _lock:
        if limits not in _done:
            try:
                _run(limits)
                _done[limits] = None
            except GraderError as exc:
                _done[limits] = exc
        failure = _done[limits]
    if failure is not None:
        raise failure


def forget() -> None:
    """Run the preflight again next time (after the instructor fixed something)."""
    with _lock:
        _done.clear()


def _run(limits: Limits) -> None:
    from . import discovery, pool
    from ..data import DataError, mnist_path
    from .session import Session
    discovery.load()          # LessonError (a GraderError): a broken or clashing lesson
    try:
        mnist_path()
    except DataError as exc:
        first = str(exc).strip().splitlines()[0].rstrip(":")
        raise GraderError(f"the lesson's data is unavailable ({first})", DATA_FIX) from None
    readable, env = pool.settings()
    if "AUTOGRADER_MNIST" not in env:
        raise GraderError("the lesson's data could not be made readable for grading workers", DATA_FIX)
    # The references load while the worker starts and runs the canary.
    failures: list[GraderError] = []
    loading = threading.Thread(target=_load_references, args=(failures,), daemon=True)
    loading.start()
    try:
        with Session(limits, readable=readable, env=env) as session:
            session.run_canary()
    finally:
        loading.join()
    if failures:
        raise failures[0]


def _load_references(failures: list) -> None:
    """The grader's own view of the data its references are computed from, memory-mapped
    from the array cache (the copies and the derived references load while each
    notebook's cells run, as before: a failure there can only be a bug, and a bug in a
    check is a grader error of its own)."""
    from ..data import load_mnist
    try:
        shapes = [tuple(a.shape) for a in load_mnist()]
        if shapes != [(50000, 784), (50000,), (10000, 784), (10000,)]:
            raise ValueError(f"unexpected shapes {shapes}")
    except Exception as exc:  # noqa: BLE001 - any failure here is the grader's
        failures.append(GraderError(f"the grader could not load the data of its references "
                                    f"({type(exc).__name__}: {exc})", DATA_FIX))
