"""The worker process: where student code runs.

Started by :class:`autograder.engine.session.Session` (inside the sandbox when one is
available) as ``python -m autograder.engine.worker REQUEST_FD REPLY_FD``. It reads requests
from one pipe and answers on the other, in the frame format of :mod:`autograder.engine.codec`.
Its own stdout and stderr are not part of the protocol, so whatever student code
prints (or forges) there cannot be mistaken for an answer.

Requests (``op``): ``run`` a cell, ``eval`` a grader snippet, ``get`` globals, ``bye``.
Nothing this process says decides a grade: the grader checks every answer itself.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import types

ACTIVE = False          # set while serving; ``autograder.check`` is a no-op in here

# The kit's modules a worker keeps: the package (``check``, a no-op in here), and the
# worker's own machinery. ``autograder.data`` is replaced by a module that offers only
# ``mnist_path``. Everything else of the kit (checks and their references, the data
# loader, the grader) is removed before student code runs, and importing it fails.
KEPT = frozenset({"autograder", "autograder.engine", "autograder.engine.worker", "autograder.engine.executor",
                  "autograder.engine.codec", "autograder.engine.guard"})
GUARDED = ("{name} is the grader's own code, not part of the lesson: your code cannot import "
           "it here. The notebooks need only `check` and `mnist_path` from the kit.")


class _KitGuard(importlib.abc.MetaPathFinder):
    """Refuses imports of the grader's own modules inside a worker."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("autograder.") and name not in KEPT:
            raise ImportError(GUARDED.format(name=name), name=name)
        return None


def public_data() -> types.ModuleType:
    """``autograder.data`` as student code sees it in a worker: ``mnist_path`` only (the
    grader verified the file and passes its path in ``AUTOGRADER_MNIST``)."""
    from pathlib import Path
    module = types.ModuleType("autograder.data", "The lesson's data, as a grading worker sees it.")

    def mnist_path(path=None, *, download=True):
        """The path of the lesson's ``mnist.pkl.gz`` (verified by the grader)."""
        found = path if path is not None else os.environ.get("AUTOGRADER_MNIST")
        if not found:
            raise FileNotFoundError("the lesson's data is not available in this grading worker")
        found = Path(found).expanduser()
        return found / "mnist.pkl.gz" if found.is_dir() else found

    module.mnist_path = mnist_path
    module.MNIST_FILENAME = "mnist.pkl.gz"
    module.__all__ = ["mnist_path"]
    return module


def lockdown() -> None:
    """Take the grader's modules out of reach of the student code this worker will run."""
    for name in [n for n in sys.modules if n.startswith("autograder.") and n not in KEPT]:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and isinstance(getattr(sys.modules[parent], child, None), types.ModuleType):
            delattr(sys.modules[parent], child)
    data = sys.modules["autograder.data"] = public_data()
    sys.modules["autograder"].data = data
    sys.meta_path.insert(0, _KitGuard())


def serve(request_fd: int, reply_fd: int) -> None:
    global ACTIVE
    import torch  # noqa: F401  (imported before any student code, once)

    from . import codec
    from .executor import Executor, definition

    ACTIVE = True
    kit = os.path.dirname(os.path.realpath(sys.modules["autograder"].__file__))
    lockdown()
    executor = Executor()
    codec.send(reply_fd, {"op": "ready", "pid": os.getpid(), "kit": kit})
    while True:
        try:
            header, buffers = codec.recv(request_fd)
        except EOFError:
            return
        op = header.get("op")
        if op == "bye":
            return
        if op == "run":
            codec.send(reply_fd, executor.run_cell(header["source"], header["label"], header.get("timeout"),
                                                   watch=header.get("watch")))
        elif op == "eval":
            inputs = {k: codec.decode(v, buffers) for k, v in header.get("inputs", {}).items()}
            overrides = {k: codec.decode(v, buffers) for k, v in header.get("overrides", {}).items()}
            for name, expr in header.get("definitions", {}).items():
                overrides[name] = definition(expr)
            reply, out = executor.evaluate(header["code"], inputs, overrides, header.get("outputs", []),
                                           seed=header.get("seed"), timeout=header.get("timeout"),
                                           watch=header.get("watch"))
            codec.send(reply_fd, reply, out)
        elif op == "get":
            reply, out = executor.get(header.get("names", []))
            codec.send(reply_fd, reply, out)
        else:
            codec.send(reply_fd, {"status": "error", "error": {"ename": "ProtocolError",
                                                                "evalue": f"unknown op {op!r}"}})


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    request_fd, reply_fd = int(argv[0]), int(argv[1])
    # Student output must never reach the protocol pipes or the grader's terminal.
    sys.stdin = open(os.devnull)
    serve(request_fd, reply_fd)
    os._exit(0)  # skip interpreter teardown: student objects may have hostile finalizers


if __name__ == "__main__":
    main()
