"""Derived notebooks: ``solutions/`` and ``release/`` from ``assignments/``.

``release/`` is made by the real ``nbgrader generate_assignment``:
:func:`release_differences` runs it in a temporary copy of the course and compares
(``tests/test_release.py`` and ``python -m autograder lint-lesson`` both use it).
``solutions/`` is made here: the source notebooks with their solutions kept, the
``### BEGIN/END SOLUTION`` marker lines dropped, and every hidden-test region removed,
so a student can compare after the deadline without learning the hidden tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..engine.errors import GraderError

__all__ = ["strip_hidden_tests", "solution_notebook", "build_solutions", "generate_release",
           "release_differences", "ROOT"]

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


def build_solutions(root: Path = ROOT, *, check: bool = False, assignment: str = "*") -> list[str]:
    """Write (or with ``check``, compare) solutions/; return the paths that were stale.
    ``assignment``: only that folder of ``assignments/`` (default: every one)."""
    root = Path(root)
    stale = []
    for src in sorted((root / "assignments").glob(f"{assignment}/*.ipynb")):
        target = root / "solutions" / src.relative_to(root / "assignments")
        text = _dump(solution_notebook(json.loads(src.read_text())))
        if not target.exists() or target.read_text() != text:
            stale.append(str(target.relative_to(root)))
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return stale


# A course without its own nbgrader_config.py: the kit's folder names, nothing else.
_MINIMAL_CONFIG = ('c = get_config()  # noqa: F821\n'
                   'c.CourseDirectory.source_directory = "assignments"\n'
                   'c.CourseDirectory.release_directory = "release"\n')


def generate_release(course: Path, assignment: str, into: Path, *, timeout: float = 600) -> Path:
    """Run the real ``nbgrader generate_assignment ASSIGNMENT --force --no-db`` on a copy of
    ``course`` (its ``nbgrader_config.py`` and ``assignments/ASSIGNMENT``) made in
    ``into``; return the generated ``release/ASSIGNMENT`` folder. :class:`GraderError`
    when nbgrader is missing or fails: nobody can tell whether the release is current."""
    course, into = Path(course), Path(into)
    source = course / "assignments" / assignment
    if not source.is_dir():
        raise GraderError(f"{source} does not exist: there is no source to release",
                          "Run the command in the course directory, or pass --course DIR")
    into.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    if config.is_file():
        shutil.copy(config, into / "nbgrader_config.py")
    else:
        (into / "nbgrader_config.py").write_text(_MINIMAL_CONFIG)
    shutil.copytree(source, into / "assignments" / assignment, dirs_exist_ok=True)
    bindir = os.path.dirname(sys.executable)       # alembic must be on PATH for a new gradebook
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("JUPYTER_CONFIG_DIR", None)
    try:
        # --no-db: the same notebooks, without creating a gradebook (twice as fast)
        proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment,
                               "--force", "--no-db"], cwd=into, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GraderError(f"nbgrader generate_assignment {assignment} did not finish in {timeout:.0f} s")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        if "No module named nbgrader" in proc.stderr:
            raise GraderError("nbgrader is not installed in this environment",
                              "Install it: pip install 'foundations-autograder[nbgrader]'")
        raise GraderError(f"nbgrader generate_assignment {assignment} failed: {last}",
                          "Run it yourself in the course directory to see the whole error")
    return into / "release" / assignment


def release_differences(course: Path = ROOT, assignment: str = "lesson8") -> list[str]:
    """How ``course``'s ``release/ASSIGNMENT`` differs from what nbgrader generates from
    ``assignments/ASSIGNMENT``: one line per missing, extra or stale notebook (empty: current)."""
    course = Path(course)
    committed = course / "release" / assignment
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        fresh = generate_release(course, assignment, Path(tmp))
        generated = {p.name: p.read_text() for p in sorted(fresh.glob("*.ipynb"))}
    have = {p.name: p.read_text() for p in sorted(committed.glob("*.ipynb"))}
    where = f"release/{assignment}"
    out = [f"assignments/{assignment}/{name}: {n} {'cell has' if n == 1 else 'cells have'} no id, so "
           "nbgrader gives random ones and every release differs; open and save the notebook in "
           "Jupyter (or run nbformat.validator.normalize) and commit it"
           for name, n in _cells_without_id(course, assignment)]
    out += [f"{where}/{name} is missing" for name in generated if name not in have]
    out += [f"{where}/{name} is not made from any source notebook" for name in have if name not in generated]
    out += [f"{where}/{name} is stale" for name in generated if name in have and have[name] != generated[name]]
    return out


def _cells_without_id(course: Path, assignment: str) -> list[tuple[str, int]]:
    """Source notebooks with cells that have no id (nbformat 4.5 requires one)."""
    out = []
    for src in sorted((course / "assignments" / assignment).glob("*.ipynb")):
        try:
            cells = json.loads(src.read_text()).get("cells", [])
        except (ValueError, AttributeError):
            continue                    # nbgrader says what is wrong with it
        missing = sum(1 for c in cells if isinstance(c, dict) and "id" not in c)
        if missing:
            out.append((src.name, missing))
    return out
