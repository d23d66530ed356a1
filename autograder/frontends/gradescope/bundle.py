"""Build the zip that Gradescope's autograder specification asks for.

    python -m autograder gradescope [NOTEBOOK ...] -o autograder.zip
        [--visibility visible] [--hidden-visibility after_published] [--no-hidden-messages]

``NOTEBOOK`` is a notebook of the lesson, by name (``03_backward``) or by path: a source
notebook (``assignments/lesson8/03_backward.ipynb``) brings its test cells, hidden tests
included; a name is looked up in ``assignments/*/`` of the current directory (without
one, each exercise is graded by ``check(name)`` alone). No ``NOTEBOOK``: every notebook
of the installed lessons. The zip holds, at its root:

* ``setup.sh`` and ``run_autograder`` (this folder's templates);
* ``wheels/foundations_autograder-<version>-py3-none-any.whl``, built here with ``pip
  wheel --no-deps`` from the kit being used, so the version graded is the instructor's;
* ``gradescope.json``: the notebooks graded, each exercise's test cell code (visible and
  hidden; the zip stays with the instructor and Gradescope, never with students), the
  visibility settings, the torch version, the limits.

:func:`main` is the whole command as a function; the CLI is a thin wrapper.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ...engine.errors import GraderError
from .run import CONFIG_NAME, VISIBILITIES

__all__ = ["main", "test_cells", "BundleError"]

HERE = Path(__file__).resolve().parent
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


class BundleError(GraderError):
    """The bundle cannot be built (an unknown notebook, no project to build a wheel from)."""


def _split_hidden(source: str) -> tuple[str, str]:
    visible, hidden, inside = [], [], False
    for line in source.splitlines(keepends=True):
        if BEGIN_HIDDEN in line:
            inside = True
        elif END_HIDDEN in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "".join(visible), "".join(hidden)


def test_cells(path: Path) -> dict[str, dict[str, str]]:
    """``{exercise: {"visible": code, "hidden": code}}`` from a notebook's test cells
    (grade_id ``test_<exercise>``)."""
    nb = json.loads(Path(path).read_text())
    out = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id") or ""
        if cell.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution") \
                or not gid.startswith("test_"):
            continue
        source = cell.get("source", "")
        visible, hidden = _split_hidden("".join(source) if isinstance(source, list) else source)
        out[gid.removeprefix("test_")] = {"visible": visible, "hidden": hidden}
    return out


def _resolve(notebooks: list[str], cwd: Path) -> dict[str, Path | None]:
    """``{notebook name: its source notebook, or None}``, in the lesson's order."""
    from ...engine.grade import catalogue
    known = catalogue().NOTEBOOKS
    wanted: dict[str, Path | None] = {}
    for item in notebooks or list(known):
        path = Path(item)
        name = path.stem if path.suffix == ".ipynb" else item
        if name not in known:
            raise BundleError(f"{item}: no installed lesson has a notebook called {name!r} "
                              f"(known: {', '.join(known)})", "Name one of those, or its source notebook")
        if path.suffix == ".ipynb":
            if not path.is_file():
                raise BundleError(f"{item} does not exist", "Give the path of the assignment's source notebook")
            wanted[name] = path
        else:
            found = sorted(cwd.glob(f"assignments/*/{name}.ipynb"))
            wanted[name] = found[0] if found else None
    return {name: wanted[name] for name in known if name in wanted}


def _project_root() -> Path:
    import autograder
    root = Path(autograder.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise BundleError(f"the kit at {root} is an installed copy, not a project to build a wheel from",
                          "Build the bundle from a clone of the kit (pip install -e .)")
    return root


def build_wheel(dest: Path) -> Path:
    """``pip wheel --no-deps`` of the kit being used; the path of the wheel."""
    root = _project_root()
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "--disable-pip-version-check", "-w", str(dest), str(root)],
                          capture_output=True, text=True, timeout=600)
    wheels = sorted(dest.glob("foundations_autograder-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise BundleError(f"pip wheel of {root} failed: {(proc.stderr or proc.stdout).strip()[-500:]}",
                          "Check that the project builds (pip wheel --no-deps .)")
    return wheels[0]


def main(notebooks: list[str] | None = None, *, output: str | Path = "autograder.zip",
         visibility: str = "visible", hidden_visibility: str = "after_published",
         stdout_visibility: str = "hidden", show_hidden_messages: bool = True,
         torch_index: str = TORCH_CPU_INDEX, cell_timeout: float | None = None,
         notebook_timeout: float | None = None, cwd: str | Path | None = None, out=sys.stdout) -> Path:
    """Write the Gradescope bundle to ``output``; :class:`BundleError` if it cannot be built."""
    import torch

    import autograder
    from ...engine.sandbox import Limits
    for label, value in (("visibility", visibility), ("hidden visibility", hidden_visibility),
                         ("stdout visibility", stdout_visibility)):
        if value not in VISIBILITIES:
            raise BundleError(f"{label} {value!r} is not one of Gradescope's ({', '.join(VISIBILITIES)})",
                              "Choose one of those")
    sources = _resolve(list(notebooks or []), Path(cwd or Path.cwd()))
    tests: dict[str, dict[str, str]] = {}
    for path in sources.values():
        if path is not None:
            tests.update(test_cells(path))
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="gradescope-bundle-") as tmp:
        wheel = build_wheel(Path(tmp))
        config = {
            "kit": autograder.__version__, "wheel": wheel.name, "notebooks": list(sources),
            "torch": torch.__version__.split("+")[0], "torch_index": torch_index,
            "visibility": visibility, "hidden_visibility": hidden_visibility,
            "stdout_visibility": stdout_visibility, "show_hidden_messages": show_hidden_messages,
            "cell_timeout": cell_timeout or Limits.cell_timeout,
            "notebook_timeout": notebook_timeout or Limits.notebook_timeout,
            "tests": tests,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("setup.sh", "run_autograder"):
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o100755 << 16          # executable, as Gradescope runs them
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, (HERE / name).read_text())
            z.write(wheel, f"wheels/{wheel.name}")
            z.writestr(CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    hidden = sum(bool(t["hidden"].strip()) for t in tests.values())
    print(f"wrote {output}: {', '.join(sources)}; kit {autograder.__version__} ({wheel.name}), torch "
          f"{config['torch']}; {hidden} exercise{'s' * (hidden != 1)} with hidden tests "
          f"(shown {hidden_visibility})", file=out)
    return output
