"""The checks of ``02_fully_connected`` against real notebooks.

* the source notebook (with its solutions) earns every point;
* the release stubs fail every exercise with "not implemented yet";
* ``tests/submissions/02_fully_connected-pass-*.ipynb`` are correct work in other styles
  and pass everything;
* ``tests/submissions/02_fully_connected-fail-<exercise>-<comment>.ipynb`` each hold one
  classic mistake in the cell of ``<exercise>``: that exercise fails (and, where the later
  exercise reads the same globals, the ones listed in ``CASCADES``), with a message that
  teaches what is wrong.

Grading runs each notebook in a worker process (several seconds each), so each notebook
is graded once per module, several at a time, and the module is marked slow.
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

import autograder
from autograder.engine.registry import NOTEBOOKS
from autograder.engine.grade import grade_notebook
from autograder.engine.report import NotebookReport

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "assignments" / "lesson8" / "02_fully_connected.ipynb"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
NB = "02_fully_connected"
ALL = [ex.name for ex in NOTEBOOKS[NB]]
PASS_FILES = sorted(SUBMISSIONS.glob(f"{NB}-pass-*.ipynb"))
FAIL_FILES = sorted(SUBMISSIONS.glob(f"{NB}-fail-*.ipynb"))
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*\n?", re.S | re.M)

# file comment (after "fail-") -> a phrase the failing exercise's message must contain
PHRASES = {
    "get_data-map": "not subscriptable",
    "get_data-numpy": "numpy array, not a torch tensor",
    "normalize-precedence": "Operator precedence",
    "normalize_data-valid-own-stats": "its own mean and std",
    "normalize_data-train-not-rebound": "not normalised yet",
    "dims-c-off-by-one": "one fewer than the number of classes",
    "lin-no-bias": "without the bias",
    "lin-transposed-weight": "no transpose is needed",
    "relu-clamp-in-place": "in place",
    "relu-mask-assign-in-place": "in place",
    "relu-torch-relu": "build yourself",
    "relu-F-alias": "torch.nn.functional.relu",
    "shifted_relu-shift-before": "relu first, then subtract 0.5",
    "shifted_relu-stub": "not implemented yet",
    "init_simple-transposed": "(n_in, n_out)",
    "init_glorot-torch-rand": "not centred on 0",
    "init_glorot-centred-uniform": "not look normally distributed",
    "init_kaiming-factor-1": "factor 2",
    "init_kaiming-n_out": "n_out where n_in belongs",
    "kaiming_mode-fan_in": "which of PyTorch's fans is our n_in",
    "params-w1-simple-init": "factor 2",
    "params-w2-unscaled": "plain randn",
    "model-missing-relu": "relu between the two layers is missing",
    "model-squeezed-output": "(rows, 1)",
    "mse-no-squeeze-broadcast": "broadcasts",
    "mse-bare-squeeze": "without an axis",
    "mse-sum": "sum of squared errors",
    "float_targets-unchanged": "still int64",
    "float_targets-typo": "raised AttributeError",
    "params-w2-kaiming": "Kaiming's sqrt(2/n_in)",
    "normalize_data-undefined-name": "raised NameError",
    "normalize-ignores-m-and-s": "ignores m and s",
    "get_data-borrowed-from-kit": "grader's own code",
    "init_kaiming-borrowed-from-kit": "grader's own code",
    # 'meta' stands in for a GPU (none where the kit is tested): the same path as cuda:0
    "relu-result-on-another-device": "returned a tensor on meta; the grader compares on the CPU",
    # a CPU build says "not compiled with CUDA", a GPU-less CUDA build "no NVIDIA driver",
    # a GPU "same device": each gets the hint
    "lin-moves-to-cuda": "keep everything on the CPU",
}

# Mistakes that unavoidably fail later exercises too: those exercises read the notebook's
# globals, which the earlier mistake already spoiled. (Exercises that can be graded on the
# grader's own inputs are: model and shifted_relu run with the grader's lin and relu, and
# the params cell is re-run with the grader's initialisers.)
CASCADES: dict[str, set[str]] = {
    # none: normalize_data and float_targets re-run their cells with the grader's
    # get_data and labels when the notebook's own globals fail
}

# Known defects of the checks (see the list in the test report); strict, so a fix shows up.
MESSAGE_DEFECTS: dict[str, str] = {}   # known message defects, as strict xfails


def comment(path: Path) -> str:
    return path.stem.split("-", 2)[2]


def primary(path: Path) -> str:
    return comment(path).split("-", 1)[0]


# ----------------------------------------------------------------------------- grading, cached

def cell_source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def stub_notebook(source: Path, dest: Path) -> Path:
    """The release version: every solution region replaced by nbgrader's stub."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = cell_source(cell)
        stubbed = SOLUTION.sub(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()\n", text)
        cell["source"] = stubbed.splitlines(True)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return dest


class Graded:
    """Each notebook graded once, several at a time, in the order tests first ask."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade")
        self.futures: dict[Path, Future] = {}
        self.lock = threading.Lock()

    def submit(self, path: Path) -> Future:
        with self.lock:
            if path not in self.futures:
                self.futures[path] = self.pool.submit(grade_notebook, path)
            return self.futures[path]

    def __getitem__(self, path: Path) -> NotebookReport:
        return self.submit(path).result()


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory) -> Path:
    return stub_notebook(SOURCE, tmp_path_factory.mktemp("release") / f"{NB}.ipynb")


@pytest.fixture(scope="module")
def graded(request, stub_path) -> Graded:
    """Start grading every notebook that the selected tests of this module will ask for."""
    cache = Graded(workers=int(os.environ.get("AUTOGRADER_TEST_WORKERS", min(4, os.cpu_count() or 1))))
    for item in request.session.items:
        if getattr(item, "module", None) is not request.module:
            continue
        path = getattr(item, "callspec", None) and item.callspec.params.get("path")
        if path is not None:
            cache.submit(path)
        elif "stub" in item.name:
            cache.submit(stub_path)
        elif "source" in item.name:
            cache.submit(SOURCE)
    yield cache
    cache.pool.shutdown(wait=True, cancel_futures=True)


def by_name(report: NotebookReport) -> dict:
    assert report.error is None, report.error
    return {ex.name: ex for ex in report.exercises}


def failing(report: NotebookReport) -> set[str]:
    return {name for name, ex in by_name(report).items() if not ex.passed}


# ----------------------------------------------------------------------------- the source and the stubs

def test_source_notebook_earns_every_point(graded):
    """Does the source notebook, with its solutions, pass every exercise with full score (22/22)?"""
    report = graded[SOURCE]
    results = by_name(report)
    assert list(results) == ALL
    assert [ex.message for ex in report.exercises if not ex.passed] == []
    assert (report.score, report.max_score) == (22, 22)


def test_release_stubs_are_not_implemented_yet(graded, stub_path):
    """Does every exercise of the untouched release fail with "not implemented yet" and no points?"""
    code = [cell_source(c) for c in json.loads(stub_path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"]
    assert not any("SOLUTION" in text for text in code)
    assert sum("raise NotImplementedError()" in text for text in code) == len(ALL)
    report = graded[stub_path]
    results = by_name(report)
    assert list(results) == ALL
    for ex in results.values():
        assert not ex.passed and ex.score == 0, ex.message
        assert "not implemented yet" in ex.message, ex.message
    assert report.score == 0


# ----------------------------------------------------------------------------- known-good and known-bad work

def test_every_fail_file_is_described():
    """Is every known-bad notebook named after a real exercise, with a phrase to expect?"""
    assert PASS_FILES and FAIL_FILES
    assert {comment(p) for p in FAIL_FILES} == set(PHRASES)
    assert {primary(p) for p in FAIL_FILES} <= set(ALL)
    assert set(CASCADES) | set(MESSAGE_DEFECTS) <= set(PHRASES)


@pytest.mark.parametrize("path", PASS_FILES, ids=lambda p: p.stem.split("-", 1)[1])
def test_other_correct_styles_pass(graded, path):
    """Does correct work written differently (einsum, torch.where, a list, prints, warnings,
    helpers, c as a tensor) pass every exercise?"""
    report = graded[path]
    assert list(by_name(report)) == ALL
    assert [ex.message for ex in report.exercises if not ex.passed] == []
    assert report.score == report.max_score == 22


@pytest.mark.parametrize("path", FAIL_FILES, ids=lambda p: p.stem.split("-", 1)[1])
def test_one_mistake_fails_only_its_exercise(graded, path):
    """Does one classic mistake fail its own exercise, and no other (except a documented cascade)?"""
    report = graded[path]
    expected = {primary(path)} | CASCADES.get(comment(path), set())
    messages = {name: ex.message for name, ex in by_name(report).items() if not ex.passed}
    assert set(messages) == expected, messages
    assert report.score == 22 - sum(ex.points for ex in NOTEBOOKS[NB] if ex.name in expected)


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(reason=MESSAGE_DEFECTS[comment(p)]))
    if comment(p) in MESSAGE_DEFECTS else p
    for p in FAIL_FILES], ids=lambda p: p.stem.split("-", 1)[1])
def test_failure_message_teaches(graded, path):
    """Does the failing exercise's message name the exercise and explain the mistake?"""
    ex = by_name(graded[path])[primary(path)]
    assert not ex.passed
    assert ex.message.startswith(f"{ex.name} · "), ex.message
    assert PHRASES[comment(path)] in ex.message, ex.message
    assert "Traceback" not in ex.message or "Your code's traceback" in ex.message, ex.message


# ----------------------------------------------------------------------------- check() in a kernel

def solution_source(grade_id: str) -> str:
    nb = json.loads(SOURCE.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell_source(cell)
    raise KeyError(grade_id)


def kernel(source: str) -> dict:
    """A plain namespace standing in for a student's kernel after running ``source``."""
    ns = {"__name__": "__main__", "check": autograder.check}
    exec("import math, torch\nfrom torch import tensor", ns)
    exec(source, ns)
    return ns


def test_instant_check_passes_in_a_kernel(capsys):
    """Does check("lin") in a kernel holding the solution's lin pass, and say so?"""
    ns = kernel(solution_source("lin"))
    exec('check("lin")', ns)
    assert "lin · lin(x, w, b): passed." in capsys.readouterr().out


def test_instant_check_explains_a_wrong_lin():
    """Does check("lin") in a kernel with a bias-less lin raise CheckFailed with the teaching message?"""
    ns = kernel("def lin(x, w, b):\n    return x @ w\n")
    with pytest.raises(autograder.CheckFailed) as info:
        exec('check("lin")', ns)
    message = str(info.value)
    assert message.startswith("lin · lin(x, w, b)") and "without the bias" in message
    assert info.value._render_traceback_() == message.splitlines()


def test_instant_check_catches_in_place_relu():
    """Does check("relu") in a kernel notice a relu that overwrites its input?"""
    ns = kernel("def relu(x):\n    x[x < 0] = 0\n    return x\n")
    with pytest.raises(autograder.CheckFailed, match="in place"):
        exec('check("relu")', ns)


def test_correct_data_is_judged_on_sampled_rows(monkeypatch):
    """Do a correct get_data and normalize_data pass on grader-chosen rows alone, without
    the full 190 MB transfer that only a failure needs (to explain itself)?"""
    from autograder.lessons.lesson8 import fully_connected as fc

    real_call = fc.call

    def call(sub, title, fn, *args, **kwargs):
        assert fn != "get_data", "the full comparison ran for a correct get_data"
        return real_call(sub, title, fn, *args, **kwargs)

    def full_judge(values):
        raise AssertionError("the full comparison ran for a correct normalize_data")

    monkeypatch.setattr(fc, "call", call)
    monkeypatch.setattr(fc, "_judge_normalized", full_judge)
    solution = Path(__file__).resolve().parents[1] / "solutions" / "lesson8" / "02_fully_connected.ipynb"
    results = {ex.name: ex for ex in grade_notebook(solution).exercises}
    assert results["get_data"].passed, results["get_data"].message
    assert results["normalize_data"].passed, results["normalize_data"].message
