"""The worker process: where student code runs.

Started by :class:`autograder.session.Session` (inside the sandbox when one is
available) as ``python -m autograder.worker REQUEST_FD REPLY_FD``. It reads requests
from one pipe and answers on the other, in the frame format of :mod:`autograder.codec`.
Its own stdout and stderr are not part of the protocol, so whatever student code
prints (or forges) there cannot be mistaken for an answer.

Requests (``op``): ``run`` a cell, ``eval`` a grader snippet, ``get`` globals, ``bye``.
Nothing this process says decides a grade: the grader checks every answer itself.
"""

from __future__ import annotations

import os
import sys

ACTIVE = False          # set while serving; ``autograder.check`` is a no-op in here


def serve(request_fd: int, reply_fd: int) -> None:
    global ACTIVE
    import torch  # noqa: F401  (imported before any student code, once)

    from . import codec
    from .executor import Executor

    ACTIVE = True
    executor = Executor()
    codec.send(reply_fd, {"op": "ready", "pid": os.getpid()})
    while True:
        try:
            header, buffers = codec.recv(request_fd)
        except EOFError:
            return
        op = header.get("op")
        if op == "bye":
            return
        if op == "run":
            codec.send(reply_fd, executor.run_cell(header["source"], header["label"], header.get("timeout")))
        elif op == "eval":
            inputs = {k: codec.decode(v, buffers) for k, v in header.get("inputs", {}).items()}
            overrides = {k: codec.decode(v, buffers) for k, v in header.get("overrides", {}).items()}
            for name, expr in header.get("definitions", {}).items():
                overrides[name] = eval(expr, {"torch": __import__("torch")})  # grader-authored
            reply, out = executor.evaluate(header["code"], inputs, overrides, header.get("outputs", []),
                                           seed=header.get("seed"), timeout=header.get("timeout"))
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
