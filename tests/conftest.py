"""Shared fixtures: one small nbgrader course, graded once per run, for the tests that
look at its feedback (tests/test_figures.py, tests/test_browser.py); and an environment in
which the lesson's data is unavailable (tests/test_trust.py, tests/test_nbgrader_trust.py)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.engine import discovery

# The catalogue of exercises, as every front end loads it (tests read it at import time).
discovery.load()

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT, NOTEBOOK = "lesson8", "02_fully_connected"
HIDDEN = re.compile(r"[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S)
INJECTION = '<script>alert("pwned")</script>'


def _nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)      # alembic must be on PATH for a new gradebook
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("JUPYTER_CONFIG_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="session")
def feedback_course(tmp_path_factory):
    """A course with 02_fully_connected and two students, through generate_assignment,
    autograde and generate_feedback. ``ada`` forgot Kaiming's factor 2 and her relu
    raises an error whose message (and printed output) carries a script tag; ``ben``
    submitted the solution."""
    pytest.importorskip("nbgrader")
    root = tmp_path_factory.mktemp("figures-course")
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "assignments" / ASSIGNMENT).mkdir(parents=True)
    src_path = REPO / "assignments" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    shutil.copy(src_path, root / "assignments" / ASSIGNMENT / src_path.name)
    src = json.loads(src_path.read_text())
    hidden = [line.strip() for cell in src["cells"] for block in HIDDEN.findall("".join(cell["source"]))
              for line in block.splitlines() if line.strip() and "HIDDEN TESTS" not in line]
    _nbgrader(root, "generate_assignment", ASSIGNMENT)
    solution = copy.deepcopy(src)
    for cell in solution["cells"]:
        cell["source"] = HIDDEN.sub("", "".join(cell["source"]))
    ada = copy.deepcopy(solution)
    _cell(ada, "init_kaiming")["source"] = ("def init_kaiming(n_in, n_out):\n"
                                            "    return torch.randn(n_in, n_out) / math.sqrt(n_in)\n")
    _cell(ada, "relu")["source"] = f"print({INJECTION!r})\ndef relu(x):\n    raise ValueError({INJECTION!r})\n"
    for student, nb in (("ada", ada), ("ben", solution)):
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{NOTEBOOK}.ipynb").write_text(json.dumps(nb, indent=1))
    _nbgrader(root, "autograde", ASSIGNMENT)
    _nbgrader(root, "generate_feedback", ASSIGNMENT)
    feedback = {s: root / "feedback" / s / ASSIGNMENT / f"{NOTEBOOK}.html" for s in ("ada", "ben")}
    autograded = {s: json.loads((root / "autograded" / s / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text())
                  for s in ("ada", "ben")}
    return {"root": root, "feedback": feedback, "autograded": autograded, "hidden": hidden,
            "gradebook": root / "gradebook.db"}


# ada's mistakes in 04: kaiming_uniform_ without the √3, layer_stats measured before the
# ReLU, and a fraction_better that never re-initialises its second stack.
ADA_04 = {
    "kaiming_uniform": ("def kaiming_uniform_(w, a=0., mode=\"fan_in\"):\n"
                        "    fan_in, fan_out = fans(w)\n"
                        "    bound = gain(a) / math.sqrt(fan_in if mode == \"fan_in\" else fan_out)\n"
                        "    with torch.no_grad():\n        w.uniform_(-bound, bound)\n    return w\n"),
    "layer_stats": ("def layer_stats(x, layers):\n    stats = []\n    with torch.no_grad():\n"
                    "        for layer in layers:\n            z = layer(x)\n            x = z.clamp_min(0.)\n"
                    "            stats.append((z.mean().item(), z.std().item()))\n    return stats\n"),
    "fraction_better": ("def fraction_better(n_samples=100):\n    better = 0\n"
                        "    for _ in range(n_samples):\n"
                        "        default_layers, kaiming_layers = conv_stack(), conv_stack()\n"
                        "        d = layer_stats(x_imgs, default_layers)[-1][1]\n"
                        "        k = layer_stats(x_imgs, kaiming_layers)[-1][1]\n"
                        "        better += abs(k - 1) < abs(d - 1)\n    return better / n_samples\n"),
}


@pytest.fixture(scope="session")
def feedback_course_04(tmp_path_factory):
    """A course with 04_init_in_pytorch and one student, ada (:data:`ADA_04`), through
    generate_assignment, autograde and generate_feedback."""
    pytest.importorskip("nbgrader")
    notebook = "04_init_in_pytorch"
    root = tmp_path_factory.mktemp("figures-course-04")
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "assignments" / ASSIGNMENT).mkdir(parents=True)
    src_path = REPO / "assignments" / ASSIGNMENT / f"{notebook}.ipynb"
    shutil.copy(src_path, root / "assignments" / ASSIGNMENT / src_path.name)
    _nbgrader(root, "generate_assignment", ASSIGNMENT)
    ada = json.loads(src_path.read_text())
    for cell in ada["cells"]:
        cell["source"] = HIDDEN.sub("", "".join(cell["source"]))
    for grade_id, source in ADA_04.items():
        _cell(ada, grade_id)["source"] = source
    folder = root / "submitted" / "ada" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / f"{notebook}.ipynb").write_text(json.dumps(ada, indent=1))
    _nbgrader(root, "autograde", ASSIGNMENT)
    _nbgrader(root, "generate_feedback", ASSIGNMENT)
    return {"root": root, "feedback": root / "feedback" / "ada" / ASSIGNMENT / f"{notebook}.html",
            "autograded": json.loads((root / "autograded" / "ada" / ASSIGNMENT / f"{notebook}.ipynb").read_text())}


@pytest.fixture
def offline_env(tmp_path) -> dict:
    """An environment in which the lesson's data is unavailable: an empty cache, no
    AUTOGRADER_MNIST, and every download source fails at once (a closed local port, a
    wheel that does not exist)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # free once closed: nothing listens there
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_MNIST"}
    (tmp_path / "empty-cache").mkdir(exist_ok=True)
    env.update(AUTOGRADER_CACHE=str(tmp_path / "empty-cache"),
               AUTOGRADER_MNIST_URLS=f"http://127.0.0.1:{port}/mnist.pkl.gz",
               AUTOGRADER_MNIST_WHEEL=str(tmp_path / "no-such-wheel.whl"))
    return env


# ----------------------------------------------------------------------------- Gradescope
def _run_plain(args: list[str], *, env: dict, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def plain_env(**extra: str) -> dict:
    """This machine's environment without the test run's virtual environment in it."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def gradescope(tmp_path_factory):
    """The Gradescope bundle for 03_backward, built once, unpacked into a root laid out as
    Gradescope lays it out (source/, submission/, results/) and set up with its own
    setup.sh into a fresh virtual environment (torch installed first, from this machine's
    wheels). ``grade(files, env=)`` runs run_autograder on a submission and returns
    (process, results.json)."""
    import time
    import zipfile
    started = time.monotonic()
    base = tmp_path_factory.mktemp("gradescope")
    bundle = base / "autograder.zip"
    proc = _run_plain([sys.executable, "-m", "autograder", "gradescope",
                       "assignments/lesson8/03_backward.ipynb", "-o", str(bundle), "--torch-index", ""],
                      env=plain_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = base / "autograder"
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
        for info in z.infolist():          # extractall drops the mode bits; Gradescope keeps them
            mode = info.external_attr >> 16
            if mode:
                os.chmod(root / "source" / info.filename, mode & 0o777)
    python = getattr(sys, "_base_executable", None) or sys.executable
    venv = root / "venv"
    for step in ([python, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "torch==2.13.0"]):
        proc = _run_plain(step, env=plain_env(), cwd=base)
        assert proc.returncode == 0, proc.stderr[-3000:]
    from autograder.data import mnist_path
    setup_env = plain_env(GRADESCOPE_ROOT=str(root), AUTOGRADER_SETUP_APT="0", AUTOGRADER_TORCH_INDEX="",
                          AUTOGRADER_PYTHON=python, AUTOGRADER_MNIST=str(mnist_path()))
    setup_env.pop("AUTOGRADER_CACHE", None)
    setup = _run_plain(["bash", str(root / "source" / "setup.sh")], env=setup_env, cwd=root / "source")
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]

    def grade(files: dict[str, bytes | str | Path], env: dict | None = None):
        for folder in ("submission", "results"):
            shutil.rmtree(root / folder)
            (root / folder).mkdir()
        for name, content in files.items():
            target = root / "submission" / name
            if isinstance(content, Path):
                shutil.copy(content, target)
            else:
                target.write_bytes(content.encode() if isinstance(content, str) else content)
        run_env = {**plain_env(GRADESCOPE_ROOT=str(root)), **(env or {})}
        for key in ("AUTOGRADER_MNIST",) if env is None else ():
            run_env.pop(key, None)
        if env is None:
            run_env.pop("AUTOGRADER_CACHE", None)
        proc = _run_plain(["bash", str(root / "source" / "run_autograder")], env=run_env, cwd=root)
        results = json.loads((root / "results" / "results.json").read_text())
        return proc, results

    return {"root": root, "bundle": bundle, "grade": grade, "setup": setup,
            "seconds": time.monotonic() - started}
