"""What a student who only installed the kit meets, short of a real install
(tests/test_pip_install.py does that): the pytest plugin staying off in unrelated runs and
not clashing with ``pytest autograder`` in a clone; ``python -m autograder notebooks``;
tensors on another device than the CPU; check()'s one note that it runs unconfined."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

import autograder
from autograder.engine import codec, sandbox
from autograder.engine.codec import Opaque
from autograder.engine.feedback import Fail, off_cpu, require_tensor
from autograder.engine.registry import call
from autograder.engine.session import Evaluation
from autograder.frontends import cli

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "release" / "lesson8"
PLUGIN = "autograder.frontends.pytest_plugin"


def plugin_args() -> list[str]:
    """Load the plugin as the installed kit's entry point does (the kit may be installed
    from an older checkout, without the entry point)."""
    names = {ep.name for ep in metadata.entry_points(group="pytest11")}
    return [] if "autograder" in names else ["-p", PLUGIN]


def pytest_in(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}      # this checkout's kit, from any folder
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin_args(), *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- the plugin, off
PROBE = '''
import json, sys
def pytest_sessionfinish(session):
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("autograder."))
    with open("probe.json", "w") as f:
        json.dump({"loaded": loaded, "plugin": session.config.pluginmanager.has_plugin("autograder")
                   or session.config.pluginmanager.has_plugin("%s")}, f)
''' % PLUGIN


def test_unrelated_pytest_run_imports_no_torch_and_starts_nothing(tmp_path):
    """With the plugin active, does an unrelated pytest run (no --notebook) import neither
    torch nor any part of the grader, start no worker, and pass as usual?"""
    (tmp_path / "conftest.py").write_text(PROBE)
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    proc = pytest_in(tmp_path, "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert probe["plugin"] is True
    assert probe["loaded"] == ["autograder.frontends", PLUGIN], probe   # no torch, no engine, no worker
    assert "--notebook" in pytest_in(tmp_path, "--help").stdout


@pytest.mark.slow
def test_notebook_option_collects_only_the_notebook(tmp_path):
    """Does `pytest --notebook hw.ipynb` collect one test per exercise of that notebook,
    named after it, and not the folder's own tests?"""
    (tmp_path / "hw.ipynb").write_bytes((RELEASE / "01_matmul.ipynb").read_bytes())
    (tmp_path / "test_plain.py").write_text("def test_one():\n    pass\n")
    proc = pytest_in(tmp_path, "--notebook", "hw.ipynb", "--collect-only", "-q")
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids == [f"hw.ipynb::{name}" for name in
                   ("matmul_loops", "matmul_elementwise", "matmul_broadcast", "matmul_einsum")], proc.stdout
    both = pytest_in(tmp_path, "test_plain.py", "--notebook", "hw.ipynb", "--collect-only", "-q")
    assert "test_plain.py::test_one" in both.stdout and "hw.ipynb::matmul_einsum" in both.stdout


@pytest.mark.slow
def test_pytest_autograder_in_a_clone_with_the_plugin_loaded():
    """With the plugin loaded as an installed plugin, does `pytest autograder` in a clone
    still collect the released notebooks through the placeholder (the clone's conftest
    must not define --notebook a second time)?"""
    proc = pytest_in(ROOT, "autograder", "--collect-only", "-q",
                     "--notebook", str(RELEASE / "01_matmul.ipynb"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "autograder/test_notebooks.py::01_matmul.ipynb::matmul_loops" in proc.stdout


# ----------------------------------------------------------------------------- notebooks command
def test_notebooks_command_writes_lists_and_never_overwrites(tmp_path, capsys):
    """Does `python -m autograder notebooks DEST` write every released notebook (the same
    bytes) and list them; keep a notebook that exists, saying so; replace it with --force?"""
    dest = tmp_path / "course"
    assert cli.main(["notebooks", str(dest)]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in RELEASE.glob("*.ipynb"))
    assert sorted(p.name for p in dest.iterdir()) == names
    for name in names:
        assert (dest / name).read_bytes() == (RELEASE / name).read_bytes()
        assert f"wrote   {dest / name}" in out
    (dest / "01_matmul.ipynb").write_text("my work")
    assert cli.main(["notebooks", str(dest)]) == 0
    out = capsys.readouterr().out
    assert (dest / "01_matmul.ipynb").read_text() == "my work"
    assert f"kept    {dest / '01_matmul.ipynb'}: it exists already (--force replaces it)" in out
    assert "wrote" not in out
    assert cli.main(["notebooks", str(dest), "--force"]) == 0
    assert (dest / "01_matmul.ipynb").read_bytes() == (RELEASE / "01_matmul.ipynb").read_bytes()


def test_notebooks_command_into_an_unwritable_place(tmp_path, capsys):
    """Is a DEST that is a file one line on stderr and a non-zero status, not a traceback?"""
    (tmp_path / "file").write_text("")
    assert cli.main(["notebooks", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot write the notebooks into")


# ----------------------------------------------------------------------------- off the CPU
def test_tensor_on_another_device_crosses_as_where_it_is():
    """Does a tensor off the CPU ('meta' stands in for a GPU: there is none here) cross the
    process boundary as a description of where it is, instead of failing to be copied?"""
    desc = codec.encode(torch.empty(3, 4, device="meta"), [])
    assert desc["t"] == "object" and desc["device"] == "meta"
    value = codec.decode(json.loads(json.dumps(desc)), [])
    assert isinstance(value, Opaque) and value.device == "meta"
    assert str(value) == "a tensor on meta"
    assert "shape (3, 4)" in value.repr
    assert off_cpu([1, {"w": value}]) is value and off_cpu(torch.zeros(2)) is None


CUDA = {"t": "object", "type": "torch.Tensor", "device": "cuda:0",
        "repr": "tensor of shape (8, 6), dtype float32, on cuda:0"}


class Returns:
    """A submission whose function call answers with this value description (as a worker
    on a machine with a GPU would describe a CUDA tensor)."""

    def __init__(self, desc: dict) -> None:
        self.desc = desc

    def evaluate(self, code, **kwargs):
        return Evaluation("ok", {"result": codec.decode(self.desc, [])}, {}, None, "")


def test_function_returning_a_cuda_tensor_fails_with_what_to_do():
    """Does a function that returned a tensor on cuda:0 fail with a message that says so
    and what to do, instead of crashing in the grader?"""
    with pytest.raises(Fail) as info:
        call(Returns(CUDA), "relu · relu(x)", "relu", torch.randn(8, 6))
    message = str(info.value)
    assert message.startswith("relu · relu(x): your function returned a tensor on cuda:0; "
                              "the grader compares on the CPU.")
    assert "shape (8, 6)" in message and "`.cpu()`" in message and "keep everything on the CPU" in message
    with pytest.raises(Fail, match="x_train is a tensor on cuda:0; the grader compares on the CPU"):
        require_tensor(codec.decode(CUDA, []), "x_train")


@pytest.mark.parametrize("error", [
    "Torch not compiled with CUDA enabled",                      # a CPU build of torch
    "Found no NVIDIA driver on your system.",                    # a CUDA build, no GPU (the worker)
    "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
])
def test_moving_to_a_gpu_gets_a_hint_on_every_kind_of_machine(error):
    """Whatever torch says when student code moves a tensor to a GPU, is the hint about
    keeping everything on the CPU?"""
    class Raises:
        def evaluate(self, code, **kwargs):
            return Evaluation("error", {}, {}, {"ename": "RuntimeError", "evalue": error,
                                                "traceback": f"RuntimeError: {error}"}, "")
    with pytest.raises(Fail, match="keep everything on the CPU"):
        call(Raises(), "lin · lin(x, w, b)", "lin", torch.randn(2, 3))


def test_check_in_a_kernel_with_a_meta_result():
    """Does check() in a student's own process give that message too (values go through
    the same codec there)?"""
    ns = {"__name__": "__main__", "check": autograder.check}
    exec("import torch\ndef relu(x):\n    return x.clamp_min(0.).to('meta')\n", ns)
    with pytest.raises(autograder.CheckFailed, match="returned a tensor on meta; the grader compares on the CPU"):
        exec('check("relu")', ns)


# ----------------------------------------------------------------------------- unconfined, once
@pytest.fixture
def no_bwrap(monkeypatch, tmp_path):
    """A machine like Colab: no bubblewrap on PATH (and this test runs as whoever runs it)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AUTOGRADER_UNCONFINED", raising=False)
    monkeypatch.setattr(autograder, "_noted", False)
    sandbox.confinement.cache_clear()
    yield
    sandbox.confinement.cache_clear()


def test_check_says_once_that_it_runs_unconfined(no_bwrap, monkeypatch):
    """Without bubblewrap, does check() still grade and say exactly once (on stderr) that
    it runs the code unconfined, and that the command line would be unconfined too?"""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    ns = {"__name__": "__main__", "check": autograder.check}
    exec("import torch\ndef relu(x):\n    return x.clamp_min(0.)\n", ns)
    exec('check("relu")', ns)
    exec('check("relu")', ns)
    notes = [line for line in err.getvalue().splitlines() if line.startswith("note: check()")]
    assert len(notes) == 1, err.getvalue()
    assert "unconfined" in notes[0] and "bubblewrap (bwrap) is not installed" in notes[0]
