"""``python -m autograder notebooks [DEST]``: the released notebooks, ready to fill in.

A student who only installed the kit (no clone) gets the notebooks from the package:
the wheel carries ``release/`` as ``autograder/notebooks/`` (see ``pyproject.toml``;
``assignments/`` and ``solutions/`` are never shipped). In a clone or an editable
install there is no such folder and the repository's ``release/`` is read instead.

A notebook that is already in DEST is never overwritten (it may hold a student's work):
it is listed as kept, unless ``force``.
"""

from __future__ import annotations

import sys
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import TextIO

__all__ = ["released", "write_notebooks"]

CLONE_RELEASE = Path(__file__).resolve().parents[2] / "release"


def _source() -> Traversable | None:
    packaged = resources.files("autograder") / "notebooks"
    if packaged.is_dir():
        return packaged
    return CLONE_RELEASE if CLONE_RELEASE.is_dir() else None


def released() -> list[Traversable]:
    """The released notebooks (``ASSIGNMENT/NAME.ipynb``), sorted by name; [] if none."""
    src = _source()
    if src is None:
        return []
    folders = sorted((f for f in src.iterdir() if f.is_dir() and not f.name.startswith(".")),
                     key=lambda f: f.name)
    return sorted((nb for folder in folders for nb in folder.iterdir()
                   if nb.name.endswith(".ipynb") and not nb.name.startswith(".") and nb.is_file()),
                  key=lambda nb: nb.name)


def write_notebooks(dest: str | Path = ".", *, force: bool = False,
                    out: TextIO = sys.stdout) -> list[Path]:
    """Write every released notebook into ``dest`` (created if needed), saying what was
    written and what was kept; return the paths written. Raises FileNotFoundError when
    the installation holds no notebook at all."""
    notebooks = released()
    if not notebooks:
        raise FileNotFoundError("this installation of the kit holds no released notebook "
                                "(autograder/notebooks/ in the package, or release/ in a clone)")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for nb in notebooks:
        target = dest / nb.name
        data = nb.read_bytes()
        try:
            with open(target, "wb" if force else "xb") as f:
                f.write(data)
        except FileExistsError:
            print(f"kept    {target}: it exists already (--force replaces it)", file=out)
            continue
        written.append(target)
        print(f"wrote   {target}", file=out)
    if written:
        example = next((p for p in written if "fully_connected" in p.name), written[0])
        print(f"\nOpen a notebook in Jupyter and fill in the cells that raise NotImplementedError; "
              f"check(\"NAME\") under each exercise grades it there. To grade a whole notebook:\n"
              f"  pytest --notebook {example}", file=out)
    return written
