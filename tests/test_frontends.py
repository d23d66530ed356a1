"""The three front ends agree: the CLI, `pytest autograder`, and `check()` in a kernel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.engine import registry as checks

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "release" / "lesson8"
SOLUTIONS = ROOT / "solutions" / "lesson8"
NOTEBOOKS = sorted(p.name for p in (ROOT / "assignments" / "lesson8").glob("*.ipynb"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out.json"
    paths = [str(SOLUTIONS / n) for n in NOTEBOOKS] + [str(RELEASE / n) for n in NOTEBOOKS]
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", *paths, "--jobs", "2",
                           "--json", str(out)], capture_output=True, text=True, timeout=900)
    return proc, json.loads(out.read_text())


def test_cli_json_has_one_report_per_notebook_in_input_order(cli_run):
    """Does --json write one report per notebook, in input order, with the documented keys?"""
    proc, reports = cli_run
    assert [Path(r["notebook"]).parent.name for r in reports] == ["lesson8"] * (2 * len(NOTEBOOKS))
    assert [Path(r["notebook"]).name for r in reports] == NOTEBOOKS * 2
    for r in reports:
        assert set(r) == {"notebook", "exercises", "score", "max_score", "grader_error"}
        assert r["grader_error"] is False
        for e in r["exercises"]:
            assert set(e) == {"name", "passed", "score", "max_score", "message", "grader_error", "parts"}
            assert e["grader_error"] is False
    assert proc.returncode == 1          # the stubs fail
    assert "Traceback" not in proc.stdout + proc.stderr


def test_solutions_pass_every_exercise(cli_run):
    """Does every solution notebook pass every one of its exercises, for full marks?"""
    _, reports = cli_run
    for r in reports[:len(NOTEBOOKS)]:
        failed = [e["message"] for e in r["exercises"] if not e["passed"]]
        assert not failed, failed
        kind = Path(r["notebook"]).stem
        assert [e["name"] for e in r["exercises"]] == [ex.name for ex in checks.NOTEBOOKS[kind]]
        assert r["score"] == r["max_score"] > 0


def test_released_stubs_fail_every_exercise_as_not_implemented(cli_run):
    """Does every released stub fail with "not implemented yet" — never a crash message?"""
    _, reports = cli_run
    for r in reports[len(NOTEBOOKS):]:
        assert r["score"] == 0
        for e in r["exercises"]:
            assert not e["passed"]
            assert "not implemented yet" in e["message"], e["message"]


def test_pytest_autograder_grades_the_release_in_place():
    """Does `pytest autograder` collect one test per exercise, named after it, and fail each
    stub with the teaching message and no traceback from the grader?"""
    proc = subprocess.run([sys.executable, "-m", "pytest", "autograder", "-p", "no:cacheprovider",
                           "-rN", "--tb=short"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1
    total = sum(len(v) for v in checks.NOTEBOOKS.values())
    assert re.search(rf"\b{total} failed\b", proc.stdout), proc.stdout[-500:]
    assert "not implemented yet" in proc.stdout
    assert "Traceback" not in proc.stdout and "autograder/checks" not in proc.stdout
    listed = subprocess.run([sys.executable, "-m", "pytest", "autograder", "--collect-only", "-q",
                             "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    ids = [line for line in listed.stdout.splitlines() if "::" in line]
    assert any(line.endswith("02_fully_connected.ipynb::lin") for line in ids), ids[:5]
    assert len(ids) == total


def test_in_kernel_check_uses_the_same_messages():
    """Does check("mse") in a kernel namespace explain the (N,1)-(N,) broadcast like the CLI?"""
    import autograder
    ns = {"__name__": "__main__", "check": autograder.check}
    exec("import torch\ndef mse(output, targ):\n    return ((output - targ) ** 2).mean()\n", ns)
    with pytest.raises(autograder.CheckFailed) as info:
        exec('check("mse")', ns)
    assert "broadcasts" in str(info.value)
    assert info.value._render_traceback_() == str(info.value).splitlines()
    exec("def mse(output, targ):\n    return ((output[:, 0] - targ) ** 2).mean()\n", ns)
    exec('check("mse")', ns)


def test_in_kernel_check_applies_the_from_scratch_rule_to_classes():
    """Is autograd inside a notebook-defined class caught by check() in a kernel, where
    inspect cannot find a class's source (it comes from the kernel's input history)?"""
    import autograder
    cell = ("import torch\nclass Relu:\n    def __call__(self, inp):\n        self.inp = inp\n"
            "        self.out = inp.clamp_min(0.)\n        return self.out\n"
            "    def backward(self):\n        self.inp.requires_grad_(True)\n")
    ns = {"__name__": "__main__", "check": autograder.check, "In": ["", cell]}
    exec(cell, ns)
    with pytest.raises(autograder.CheckFailed) as info:
        exec('check("Relu")', ns)
    assert "requires_grad" in str(info.value)
