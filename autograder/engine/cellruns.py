"""How the cells of a student's own Jupyter kernel ran: what ``check()`` needs to judge
a kernel the way the grader judges a notebook file.

The grader runs a notebook's cells itself, so it knows, per exercise, the cell's source
and whether it raised (a stub raises ``NotImplementedError``). A kernel knows neither by
itself; without them ``check("params")`` judged the globals a stub never bound ("nh is
not defined") where the grader says "not implemented yet". So, when the kit is imported
in a kernel, :func:`install` registers an IPython ``post_run_cell`` callback that keeps,
for every cell run from then on, its cell id, its source and whether it raised.

:func:`find` gives the latest run of an exercise's cell, found (in this order) by

* its cell id: JupyterLab and Notebook 7 send each cell's id with its code, and the
  released notebooks' cell ids are the grade_ids;
* its source: the latest cell that defines the exercise's function or class, or the
  exercise's untouched released stub (from the clone's release/ or the wheel's copy, when the
  stub is unlike the notebook's other stubs).

Nothing is recorded outside a kernel, and a cell run before the kit was imported is
unknown (``check()`` then judges what it can see, as before).
"""

from __future__ import annotations

import functools
import json
import re
import sys
import traceback
from pathlib import Path

__all__ = ["install", "find", "RUNS"]

RUNS: list[dict] = []           # {"cell_id", "source", "status", "error"}, oldest first
MAX_RUNS = 5000
# The released notebooks: in a clone, release/ beside the package; in a wheel, the copy it
# ships as autograder/notebooks/ (see pyproject.toml).
_PACKAGE = Path(__file__).resolve().parents[1]
RELEASE = next((p for p in (_PACKAGE.parent / "release", _PACKAGE / "notebooks") if p.is_dir()),
               _PACKAGE.parent / "release")


def _shell():
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def install() -> None:
    """Start recording cell runs, once per kernel (nothing outside a kernel)."""
    shell = _shell()
    if shell is None or getattr(shell, "_autograder_cellruns", False):
        return
    shell.events.register("post_run_cell", _record)
    shell._autograder_cellruns = True


def _record(result) -> None:
    info = getattr(result, "info", None)
    exc = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
    RUNS.append({"cell_id": getattr(info, "cell_id", None), "source": getattr(info, "raw_cell", "") or "",
                 "status": "error" if exc is not None else "ok",
                 "error": _error(exc) if exc is not None else None})
    del RUNS[:-MAX_RUNS]


def _error(exc: BaseException) -> dict:
    """Name, message and the traceback frames of the kernel's own cells (as the worker's)."""
    try:
        message = str(exc)
    except Exception:
        message = "<the exception's message could not be shown>"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_cell(f.filename)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    name = type(exc).__name__
    lines.append(f"{name}: {message}\n" if message else f"{name}\n")
    return {"ename": name, "evalue": message[:2000], "traceback": "".join(lines)[-8000:]}


def _is_cell(filename: str) -> bool:
    return "ipykernel_" in filename or filename.startswith("<ipython-input-")


def find(grade_id: str, name: str | None = None) -> dict | None:
    """The latest recorded run of the exercise's cell (``name``: the function or class
    it defines, if not the grade_id), or ``None`` if none is known."""
    for run in reversed(RUNS):
        if run["cell_id"] == grade_id:
            return run
    defines = re.compile(rf"^\s*(def|class)\s+{re.escape(name or grade_id)}\b", re.M)
    stub = _stubs().get(grade_id)
    for run in reversed(RUNS):
        if run["source"] == stub or defines.search(run["source"]):
            return run
    return None


@functools.lru_cache(maxsize=1)
def _stubs() -> dict[str, str]:
    """grade_id -> the released stub's source, for stubs unlike every other one."""
    found: dict[str, str] = {}
    seen: dict[str, int] = {}
    for path in sorted(RELEASE.glob("*/*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for cell in nb.get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.get("cell_type") == "code" and meta.get("solution") and meta.get("grade_id"):
                text = cell.get("source", "")
                text = "".join(text) if isinstance(text, list) else text
                found[meta["grade_id"]] = text
                seen[text] = seen.get(text, 0) + 1
    return {gid: text for gid, text in found.items() if seen[text] == 1}
