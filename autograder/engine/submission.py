"""What a check sees of a submission: one interface, two places it can live.

* :class:`RemoteSubmission` — the grader's view: the notebook file, its cells run in a
  confined worker through a :class:`~autograder.engine.session.Session`.
* :class:`LocalSubmission` — the student's own kernel, for instant feedback from
  ``check("lin")`` in the notebook. Values still go through the codec, so a check sees
  exactly the same plain data in both places.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import types
from typing import Any, Iterator

from . import cellruns, codec
from .executor import Executor, definition
from .notebook import Notebook
from .session import CellRun, Evaluation, Session, violations

__all__ = ["Submission", "RemoteSubmission", "LocalSubmission"]


class Submission:
    """The interface checks are written against."""

    confined = False
    _watch: dict | None = None              # while an exercise with a rule is checked
    _seen: list[tuple[str, int]] | None = None

    @contextlib.contextmanager
    def watching(self, grade_id: str, rule: dict, others: list[tuple[str, str | None]] = (),
                 defines: str | None = None) -> Iterator[list[tuple[str, int]]]:
        """While the exercise ``grade_id`` is checked, every snippet the check runs also
        reports the banned operators (``rule``, see :mod:`autograder.engine.guard`) that the
        exercise's own code called; they collect in the list yielded, as ``(name, line)``.
        ``others`` are the notebook's other exercises (their code answers for itself)."""
        self._watch, self._seen = self.watch_spec(grade_id, rule, others, defines), []
        try:
            yield self._seen
        finally:
            self._watch = None

    def watch_spec(self, grade_id: str, rule: dict, others, defines: str | None) -> dict:
        """The guard's description of the exercise's code, for this front end."""
        raise NotImplementedError

    def _note(self, found: list[tuple[str, int]]) -> None:
        if self._seen is not None:
            self._seen.extend(f for f in found if f not in self._seen)

    def source(self, grade_id: str, name: str | None = None) -> str | None:
        """The source of the exercise's cell, if known; ``name`` is what the cell defines
        when that is not the grade_id (only a student's kernel needs it, to find the cell)."""
        raise NotImplementedError

    def all_source(self) -> str:
        """Every code cell of the student's, for resolving imports."""
        raise NotImplementedError

    def cell_run(self, grade_id: str, name: str | None = None) -> CellRun | None:
        """How the exercise's cell ran, if known (``name`` as for :meth:`source`)."""
        return None

    def cell_missing(self, grade_id: str) -> str | None:
        """A reason when the exercise's cell is not usable in this notebook."""
        return None

    def evaluate(self, code: str, **kwargs) -> Evaluation:
        raise NotImplementedError

    def get(self, *names: str) -> dict[str, Any]:
        raise NotImplementedError


class RemoteSubmission(Submission):
    def __init__(self, notebook: Notebook, session: Session, guards: dict[str, dict] | None = None) -> None:
        """``guards`` maps an exercise's grade_id to the keyword arguments of
        :meth:`watching` for it: when the notebook runs, that cell reports the banned
        operators it called."""
        self.notebook, self.session = notebook, session
        self.confined = session.confined
        self.runs: dict[str, CellRun] = {}
        self.guards = guards or {}

    def execute(self) -> None:
        """Run the student's cells in order (a cell that fails does not stop the rest)."""
        for cell in self.notebook.code_to_run():
            label = cell.grade_id or f"{cell.index + 1}"
            plan = self.guards.get(cell.grade_id) if cell.grade_id else None
            watch = self.watch_spec(cell.grade_id, **plan) if plan else None
            run = self.session.run_cell(label, cell.source, watch=watch)
            if cell.grade_id:
                self.runs[cell.grade_id] = run

    def watch_spec(self, grade_id, rule, others=(), defines=None):
        cell = f"<cell {grade_id}>"
        return {"rule": rule, "cells": [cell], "stops": [f"<cell {name}>" for name, _ in others],
                "source": self.source(grade_id), "filename": cell}

    def source(self, grade_id, name=None):
        cell = self.notebook.by_id(grade_id)
        return cell.source if cell else None

    def all_source(self):
        return self.notebook.code_source()

    def cell_run(self, grade_id, name=None):
        return self.runs.get(grade_id)

    def cell_missing(self, grade_id):
        if grade_id in self.notebook.duplicated_ids:
            return (f"the notebook has more than one cell with grade_id {grade_id!r}; "
                    "a copied or duplicated cell makes the answer ambiguous. Keep exactly one")
        cell = self.notebook.by_id(grade_id)
        if cell is None:
            return (f"the cell for this exercise (grade_id {grade_id!r}) is missing from the notebook: "
                    "it was deleted, or its metadata was changed. Copy it back from a fresh release")
        if cell.cell_type != "code":
            return f"the cell for this exercise (grade_id {grade_id!r}) is not a code cell"
        return None

    def evaluate(self, code, **kwargs):
        ev = self.session.evaluate(code, watch=self._watch, **kwargs)
        self._note(ev.violations)
        return ev

    def get(self, *names):
        return self.session.get(*names)


class LocalSubmission(Submission):
    """The student's kernel: their globals, their function sources via ``inspect``."""

    def __init__(self, namespace: dict) -> None:
        self.executor = Executor(namespace)

    def source(self, grade_id, name=None):
        """The exercise's cell, as the kernel last ran it (see :mod:`autograder.cellruns`):
        the whole cell, as the grader reads it from the notebook file. Failing that, the
        definition of ``name`` (by default the grade_id): the latest cell of the kernel's
        input history that defines it, else ``inspect``'s source of a function."""
        run = cellruns.find(grade_id, name)
        if run is not None:
            return run["source"]
        grade_id = name or grade_id
        history = self.executor.ns.get("In")
        if isinstance(history, list):
            pattern = re.compile(rf"^\s*(def|class)\s+{re.escape(grade_id)}\b", re.M)
            for cell in reversed(history):
                if isinstance(cell, str) and pattern.search(cell):
                    return cell
        value = self.executor.ns.get(grade_id)
        if callable(value):
            try:
                return inspect.getsource(value)
            except (OSError, TypeError):
                pass
        return None

    def watch_spec(self, grade_id, rule, others=(), defines=None):
        """In a kernel the exercise's code is wherever its function or class was defined
        (the cell's file, for IPython), plus the cell source a check re-runs."""
        cell = f"<cell {grade_id}>"
        own = _code_files(self.executor.ns.get(defines or grade_id))
        stops = set()
        for name, other_defines in others:
            stops |= _code_files(self.executor.ns.get(other_defines or name))
        return {"rule": rule, "cells": sorted(own | {cell}), "stops": sorted(stops - own),
                "source": self.source(grade_id, defines), "filename": cell}

    def cell_run(self, grade_id, name=None):
        """How the exercise's cell ran when the kernel last ran it, if the kernel knows."""
        run = cellruns.find(grade_id, name)
        if run is None:
            return None
        return CellRun(grade_id, run["status"], run["error"])

    def all_source(self):
        history = self.executor.ns.get("In")
        if isinstance(history, list):
            return "\n\n".join(h for h in history if isinstance(h, str))
        return ""

    def evaluate(self, code, *, inputs=None, overrides=None, definitions=None,
                 outputs=("result",), seed=None):
        inputs = {k: _copy(v) for k, v in (inputs or {}).items()}
        overrides = {k: _copy(v) for k, v in (overrides or {}).items()}
        for name, expr in (definitions or {}).items():
            overrides[name] = definition(expr)
        reply, buffers = self.executor.evaluate(code, inputs, overrides, list(outputs), seed=seed,
                                                watch=self._watch)
        buffers = [bytes(b) for b in buffers]
        values = {k: codec.decode(v, buffers) for k, v in reply["values"].items()}
        after = {k: codec.decode(v, buffers) for k, v in reply["overrides"].items()}
        found = violations(reply)
        self._note(found)
        return Evaluation(reply["status"], values, after, reply["error"], reply["stdout"], found)

    def get(self, *names):
        reply, buffers = self.executor.get(list(names))
        buffers = [bytes(b) for b in buffers]
        return {k: codec.decode(v, buffers) for k, v in reply["values"].items()}


def _code_files(value) -> set[str]:
    """The files the code of a function, or of a class's methods, was compiled from."""
    functions = [value] if isinstance(value, types.FunctionType) else []
    if isinstance(value, type):
        for item in vars(value).values():
            item = getattr(item, "__func__", item)
            item = getattr(item, "fget", item)
            if isinstance(item, types.FunctionType):
                functions.append(item)
    return {fn.__code__.co_filename for fn in functions}


def _copy(value):
    """A private copy made through the codec, as the worker would receive it."""
    buffers: list = []
    desc = codec.encode(value, buffers)
    return codec.decode(desc, [bytes(b) for b in buffers])
