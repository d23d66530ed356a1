"""Reading a submitted notebook, which is untrusted input.

Any file that cannot be used raises :class:`NotebookError` with a one-line reason a
student can act on. Outputs are ignored (a notebook with enormous outputs costs only
its reading), and cells are classified by their nbgrader metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NotebookError", "Cell", "Notebook", "read_notebook", "MAX_NOTEBOOK_BYTES"]

MAX_NOTEBOOK_BYTES = 256 * 2**20


class NotebookError(Exception):
    """The file is not a usable notebook; ``str(exc)`` is one line saying why."""


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str
    source: str
    grade_id: str | None = None
    grade: bool = False
    solution: bool = False
    locked: bool = False
    points: float = 0.0

    @property
    def is_test(self) -> bool:
        """A test cell: the grader's own code, never run as the student's."""
        return self.cell_type == "code" and ((self.grade and not self.solution)
                                             or (self.grade_id or "").startswith("test_"))


@dataclass
class Notebook:
    path: Path
    cells: list[Cell]
    duplicated_ids: set[str] = field(default_factory=set)

    def by_id(self, grade_id: str) -> Cell | None:
        for cell in self.cells:
            if cell.grade_id == grade_id:
                return cell
        return None

    @property
    def grade_ids(self) -> set[str]:
        return {c.grade_id for c in self.cells if c.grade_id}

    def code_to_run(self) -> list[Cell]:
        """The student's code cells in order: everything but markdown and test cells."""
        return [c for c in self.cells if c.cell_type == "code" and not c.is_test]

    def code_source(self) -> str:
        return "\n\n".join(c.source for c in self.code_to_run())


def _text(source) -> str:
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def read_notebook(path: str | Path) -> Notebook:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise NotebookError(f"{path.name} is {size >> 20} MiB, larger than the "
                                f"{MAX_NOTEBOOK_BYTES >> 20} MiB a notebook may be; clear its outputs and save again")
        raw = path.read_bytes()
    except NotebookError:
        raise
    except FileNotFoundError:
        raise NotebookError(f"{path} does not exist") from None
    except OSError as exc:
        raise NotebookError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise NotebookError(f"{path.name} is not a text file (not UTF-8): it is not a notebook") from None
    except json.JSONDecodeError as exc:
        truncated = (exc.pos >= len(raw.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
                     or not raw.rstrip().endswith(b"}"))
        where = "it ends too early, as if truncated" if truncated else \
            f"{exc.msg.removesuffix(' at')} at line {exc.lineno}, column {exc.colno}"
        raise NotebookError(f"{path.name} is not valid JSON ({where}); the file is damaged: "
                            f"restore a saved copy (File > Revert) or start again from the release") from None
    if not isinstance(data, dict):
        raise NotebookError(f"{path.name} is JSON but not a notebook (its top level is not an object)")
    major = data.get("nbformat")
    if major != 4:
        if major in (1, 2, 3):
            try:
                import nbformat
                data = json.loads(nbformat.writes(nbformat.reads(raw.decode("utf-8-sig"), as_version=4)))
            except Exception as exc:
                raise NotebookError(f"{path.name} uses notebook format v{major}, which could not be "
                                    f"converted to v4 ({type(exc).__name__}); open and save it in Jupyter") from None
        else:
            raise NotebookError(f"{path.name} has notebook format version {major!r}; "
                                f"this kit reads format 4 (save it again with Jupyter)")
    raw_cells = data.get("cells")
    if not isinstance(raw_cells, list):
        raise NotebookError(f"{path.name} has no list of cells: it is not a Jupyter notebook")
    if not raw_cells:
        raise NotebookError(f"{path.name} has no cells at all")
    cells = []
    for i, rc in enumerate(raw_cells):
        if not isinstance(rc, dict):
            raise NotebookError(f"{path.name}: cell {i + 1} is not an object; the file is damaged")
        meta = rc.get("metadata") if isinstance(rc.get("metadata"), dict) else {}
        nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        grade_id = nbg.get("grade_id") if isinstance(nbg.get("grade_id"), str) else None
        try:
            points = float(nbg.get("points") or 0)
        except (TypeError, ValueError):
            points = 0.0
        cells.append(Cell(i, str(rc.get("cell_type", "")), _text(rc.get("source", "")), grade_id,
                          nbg.get("grade") is True, nbg.get("solution") is True,
                          nbg.get("locked") is True, points))
    counts = Counter(c.grade_id for c in cells if c.grade_id)
    return Notebook(path, cells, {gid for gid, n in counts.items() if n > 1})
