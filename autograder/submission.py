"""What a check sees of a submission: one interface, two places it can live.

* :class:`RemoteSubmission` — the grader's view: the notebook file, its cells run in a
  confined worker through a :class:`~autograder.session.Session`.
* :class:`LocalSubmission` — the student's own kernel, for instant feedback from
  ``check("lin")`` in the notebook. Values still go through the codec, so a check sees
  exactly the same plain data in both places.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from . import cellruns, codec
from .executor import Executor
from .notebook import Notebook
from .session import CellRun, Evaluation, Session

__all__ = ["Submission", "RemoteSubmission", "LocalSubmission"]


class Submission:
    """The interface checks are written against."""

    confined = False

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
    def __init__(self, notebook: Notebook, session: Session) -> None:
        self.notebook, self.session = notebook, session
        self.confined = session.confined
        self.runs: dict[str, CellRun] = {}

    def execute(self) -> None:
        """Run the student's cells in order (a cell that fails does not stop the rest)."""
        for cell in self.notebook.code_to_run():
            label = cell.grade_id or f"{cell.index + 1}"
            run = self.session.run_cell(label, cell.source)
            if cell.grade_id:
                self.runs[cell.grade_id] = run

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
        return self.session.evaluate(code, **kwargs)

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
            overrides[name] = eval(expr, {"torch": __import__("torch")})
        reply, buffers = self.executor.evaluate(code, inputs, overrides, list(outputs), seed=seed)
        buffers = [bytes(b) for b in buffers]
        values = {k: codec.decode(v, buffers) for k, v in reply["values"].items()}
        after = {k: codec.decode(v, buffers) for k, v in reply["overrides"].items()}
        return Evaluation(reply["status"], values, after, reply["error"], reply["stdout"])

    def get(self, *names):
        reply, buffers = self.executor.get(list(names))
        buffers = [bytes(b) for b in buffers]
        return {k: codec.decode(v, buffers) for k, v in reply["values"].items()}


def _copy(value):
    """A private copy made through the codec, as the worker would receive it."""
    buffers: list = []
    desc = codec.encode(value, buffers)
    return codec.decode(desc, [bytes(b) for b in buffers])
