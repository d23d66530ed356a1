"""A student who only ``pip install``s the kit, as on Colab: the README's commands, for real.

One module-scoped environment, made once per run: the wheel that ``pip wheel --no-deps .``
builds; a fresh virtual environment over the packages a Colab machine already holds
(torch installed first, then numpy, matplotlib, tqdm, nbformat, ipykernel: a layer that
pip builds once per machine and keeps in ``~/.cache/foundations-autograder-tests``, since
installing torch and ipykernel takes minutes here); the wheel installed into it with pip
(torch must stay exactly as it was). Then, in an empty folder that holds no kit source,
``python -m autograder notebooks``, one notebook filled with a known-bad submission's
answers, and the three ways to grade it: ``pytest --notebook``, ``python -m autograder
grade`` and ``check()`` in a real Jupyter kernel of that environment, started with no
bubblewrap on its PATH and as root, as on Colab. They must agree on every verdict and
first message line. Slow: about 2 minutes (the first run on a machine, 5 more).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "release"
BAD = ROOT / "tests" / "submissions" / "02_fully_connected-fail-mse-no-squeeze-broadcast.ipynb"
NOTEBOOK = "02_fully_connected.ipynb"
TORCH = "torch==2.13.0"             # the version setup.sh installs (a local wheel here)
COLAB = ("numpy", "matplotlib", "tqdm", "nbformat", "ipykernel")   # preinstalled there too
MARKERS = ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION")
# The kit's own code that names the markers (to strip them, or to refuse them), never content.
# The package's long description (the README) describes them in prose.
MARKER_CODE = {"autograder/frontends/release.py", "autograder/frontends/nbgrader/plugin.py",
               "autograder/frontends/mutate.py", "autograder/frontends/gradescope/bundle.py",
               "foundations_autograder-0.1.0.dist-info/METADATA"}


def run(cmd: list, *, cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def pip(python: Path, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """This interpreter's pip, installing into ``python``'s environment (pip --python)."""
    proc = run([sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check",
                *args], cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def torch_of(python: Path, env: dict, cwd: Path) -> tuple[str, str]:
    proc = run([python, "-c", "import torch; print(torch.__version__); print(torch.__file__)"],
               cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    version, path = proc.stdout.split()
    return version, path


def base_layer(env: dict) -> Path:
    """The packages a Colab machine has before the student types anything (torch first,
    then numpy, matplotlib, tqdm, nbformat, ipykernel), installed with pip into an
    environment of their own, once per machine (installing torch and ipykernel takes
    minutes here): the fresh environment of each run sees them as its system packages."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "foundations-autograder-tests"
    layer = cache / f"colab-py{sys.version_info[0]}{sys.version_info[1]}-{TORCH.replace('==', '-')}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)              # another run may be building it
        if not (layer / ".complete").exists():
            shutil.rmtree(layer, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(layer)], check=True, timeout=120)
            python = layer / "bin" / "python"
            pip(python, "install", "-q", TORCH, cwd=cache, env=env)
            pip(python, "install", "-q", *COLAB, cwd=cache, env=env)
            (layer / ".complete").write_text("")
    return site_packages(layer)


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """The wheel, a fresh environment over the Colab-like packages, the kit installed into
    it, and an empty working folder."""
    base = tmp_path_factory.mktemp("pip")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    wheels = base / "wheels"
    # The wheel builds (in pip's own isolated build environment) meanwhile.
    build = subprocess.Popen([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                              "--disable-pip-version-check", "-w", str(wheels), str(ROOT)],
                             cwd=base, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    system = base_layer(env)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site_packages(venv) / "colab-system-packages.pth").write_text(
        f"import site; site.addsitedir({str(system)!r})\n")
    python = venv / "bin" / "python"
    torch_before = torch_of(python, env, base)
    out, err = build.communicate(timeout=600)
    assert build.returncode == 0, err[-3000:]
    [wheel] = wheels.glob("foundations_autograder-*.whl")
    installed = pip(python, "install", wheel, cwd=base, env=env)
    folder = base / "work"
    folder.mkdir()
    env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    return {"wheel": wheel, "python": python, "bin": venv / "bin", "env": env, "folder": folder,
            "torch_before": torch_before, "torch_after": torch_of(python, env, folder),
            "install": installed.stdout + installed.stderr}


# ----------------------------------------------------------------------------- the wheel
def test_wheel_ships_the_release_and_no_solution_or_hidden_test(student):
    """Does the wheel hold release/ byte for byte under autograder/notebooks/, nothing from
    assignments/ or solutions/, and no member with a solution or hidden-test region?"""
    with zipfile.ZipFile(student["wheel"]) as z:
        members = {name: z.read(name) for name in z.namelist() if not name.endswith("/")}
    released = {f"autograder/notebooks/{p.relative_to(RELEASE).as_posix()}": p.read_bytes()
                for p in RELEASE.rglob("*") if p.is_file()}
    shipped = {name: data for name, data in members.items() if name.startswith("autograder/notebooks/")}
    assert shipped == released and len(shipped) == len(list((ROOT / "release").glob("*/*.ipynb")))
    assert not [n for n in members if n.split("/")[0] in ("assignments", "solutions")
                or "/assignments/" in n or "/solutions/" in n]
    for name, data in members.items():
        if any(m.encode() in data for m in MARKERS):
            assert name in MARKER_CODE, f"{name} holds a solution or hidden-test marker"
    assert b"autograder = autograder.frontends.pytest_plugin" in members[next(
        n for n in members if n.endswith(".dist-info/entry_points.txt"))]


def test_torch_is_kept_not_reinstalled(student):
    """Does installing the kit keep the environment's torch (same version, same files)?"""
    assert student["torch_before"] == student["torch_after"]
    assert student["torch_before"][0].startswith("2.13.0")
    collected = re.findall(r"Installing collected packages: (.*)", student["install"])
    assert collected and not [p for line in collected for p in line.split(", ") if p.strip() == "torch"]
    assert "Requirement already satisfied: torch" in student["install"]


# ----------------------------------------------------------------------------- an empty folder
@pytest.fixture(scope="module")
def notebooks(student):
    """`python -m autograder notebooks`, run twice, and the known-bad notebook in place."""
    folder, env = student["folder"], student["env"]
    assert not list(folder.iterdir())
    first = run([student["python"], "-m", "autograder", "notebooks"], cwd=folder, env=env)
    fill(folder / NOTEBOOK, BAD)                  # the student's work, with a known mistake
    filled = (folder / NOTEBOOK).read_bytes()
    second = run([student["python"], "-m", "autograder", "notebooks"], cwd=folder, env=env)
    return first, second, filled


def fill(path: Path, answers: Path) -> None:
    """Write the answers (solution cells, by grade_id) of ``answers`` into a released notebook."""
    nb, src = json.loads(path.read_text()), json.loads(answers.read_text())
    by_id = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in src["cells"]
             if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    filled = 0
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in by_id:
            cell["source"], filled = by_id[meta["grade_id"]], filled + 1
    assert filled == len(by_id) > 10
    path.write_text(json.dumps(nb, indent=1))


def test_notebooks_command_writes_the_release_and_keeps_work(student, notebooks):
    """Does `python -m autograder notebooks` write every released notebook, list them, and
    on a second run keep (not overwrite) them, saying so?"""
    first, second, filled = notebooks
    folder = student["folder"]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    names = sorted(p.name for p in RELEASE.glob("*/*.ipynb"))
    assert re.findall(r"^wrote\s+(\S+)", first.stdout, re.M) == names
    assert re.findall(r"^kept\s+(\S+):", second.stdout, re.M) == names
    assert "pytest --notebook 02_fully_connected.ipynb" in first.stdout
    assert (folder / NOTEBOOK).read_bytes() == filled
    assert (folder / "01_matmul.ipynb").read_bytes() == (RELEASE / "lesson8" / "01_matmul.ipynb").read_bytes()
    assert not (folder / "autograder").exists()


# ----------------------------------------------------------------------------- three ways to grade
@pytest.fixture(scope="module")
def verdicts(student, notebooks):
    """{front end: {exercise: (passed, first message line)}} for the known-bad notebook."""
    folder, env, python = student["folder"], student["env"], student["python"]
    out = {}

    junit = folder.parent / "junit.xml"
    proc = run([student["bin"] / "pytest", "--notebook", NOTEBOOK, "-p", "no:cacheprovider",
                f"--junitxml={junit}"], cwd=folder, env=env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    out["pytest"] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        text = None if failure is None else (failure.text or failure.get("message", ""))
        out["pytest"][case.get("name")] = (failure is None, None if text is None else text.splitlines()[0])
    out["pytest_stdout"] = proc.stdout

    report = folder.parent / "report.json"
    proc = run([python, "-m", "autograder", "grade", NOTEBOOK, "--json", report], cwd=folder, env=env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    [graded] = json.loads(report.read_text())
    out["cli"] = {e["name"]: (e["passed"], None if e["passed"] else e["message"].splitlines()[0])
                  for e in graded["exercises"]}

    out["kernel"], out["kernel_stderr"] = in_kernel(student, folder / NOTEBOOK)
    return out


def in_kernel(student, path: Path) -> tuple[dict, str]:
    """Run the notebook in a real kernel of the student's environment, with no bubblewrap
    on its PATH (as on Colab; this runs as root there too): each test cell's verdict."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    specs = path.parent.parent / "kernels"
    (specs / "student").mkdir(parents=True)
    (specs / "student" / "kernel.json").write_text(json.dumps({
        "argv": [str(student["python"]), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "student", "language": "python"}))
    km = KernelManager(kernel_name="student", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))
    env = {**student["env"], "PATH": str(student["bin"])}       # no bwrap to be found
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, km=km, timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    verdicts, stderr = {}, ""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                stderr += output.get("text", "")
        match = re.fullmatch(r'\s*check\("(\w+)"\)\s*', cell.source)
        if not match:
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors:
            assert errors[0].ename == "CheckFailed", errors[0]
            verdicts[match[1]] = (False, errors[0].evalue.splitlines()[0])
        else:
            texts = [o.get("data", {}).get("text/plain", "") or o.get("text", "") for o in cell.outputs]
            assert any(t.startswith("✓") for t in texts), cell.outputs
            verdicts[match[1]] = (True, None)
    return verdicts, stderr


def test_three_front_ends_agree(verdicts):
    """Do pytest --notebook, the command line and check() in a kernel give the same verdict
    and first message line for every exercise: the known mistake failing, the rest passing?"""
    cli = verdicts["cli"]
    assert [name for name, (passed, _) in cli.items() if not passed] == ["mse"]
    assert cli["mse"][1].startswith("mse · mse(output, targ)"), cli["mse"]
    assert verdicts["pytest"] == cli
    assert verdicts["kernel"] == cli


def test_pytest_names_one_test_per_exercise(verdicts):
    """Is each exercise a test named after it, under the notebook's own name?"""
    assert re.search(r"FAILED 02_fully_connected\.ipynb::mse\b", verdicts["pytest_stdout"])
    assert "Traceback" not in verdicts["pytest_stdout"]


def test_kernel_says_once_that_it_runs_unconfined(verdicts):
    """Without bubblewrap (and as root, as on Colab), does check() grade and say once, in
    the kernel, that it runs unconfined, and why the command line would be too?"""
    notes = re.findall(r"note: check\(\) runs your code.*", verdicts["kernel_stderr"])
    assert len(notes) == 1, verdicts["kernel_stderr"][-2000:]
    assert "unconfined" in notes[0] and "bubblewrap (bwrap) is not installed" in notes[0]
