"""Derived notebooks: ``solutions/`` from ``assignments/``.

``release/`` is made by the real ``nbgrader generate_assignment`` (a test proves it is
current); ``solutions/`` is made here: the source notebooks with their solutions kept,
the ``### BEGIN/END SOLUTION`` marker lines dropped, and every hidden-test region
removed, so a student can compare after the deadline without learning the hidden tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["strip_hidden_tests", "solution_notebook", "build_solutions", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]      # the repository (a clone)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


def strip_hidden_tests(source: str) -> str:
    return HIDDEN.sub("", source).rstrip("\n")


def solution_notebook(source_nb: dict) -> dict:
    nb = json.loads(json.dumps(source_nb))
    for cell in nb["cells"]:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        text = MARKER.sub("", strip_hidden_tests(text))
        cell["source"] = text
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def build_solutions(root: Path = ROOT, *, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) solutions/; return the paths that were stale."""
    stale = []
    for src in sorted((root / "assignments").glob("*/*.ipynb")):
        target = root / "solutions" / src.relative_to(root / "assignments")
        text = _dump(solution_notebook(json.loads(src.read_text())))
        if not target.exists() or target.read_text() != text:
            stale.append(str(target.relative_to(root)))
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return stale
