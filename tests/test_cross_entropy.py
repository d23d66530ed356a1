"""The checks of ``05_cross_entropy`` (ten outputs, log-softmax, the max trick, nll,
cross-entropy, accuracy, an SGD step and the training loop).

* Fast tests: the run-time wiring of PyTorch's losses (it records, and it puts everything
  back), the judgement of fit's batches, and the new figure kinds.
* Slow tests grade real notebooks: the source earns every point, the release stubs say
  "not implemented yet", ``tests/submissions/05_cross_entropy-pass-*.ipynb`` pass, and each
  ``05_cross_entropy-fail-<exercise>-<mistake>.ipynb`` fails exactly ``<exercise>`` with a
  message that names the mistake.
* The lesson's own code for this step (fastai course-v3, ``nbs/dl2/03_minibatch_training``),
  fitted to the notebook's names: what it writes by hand passes, what breaks the
  notebook's rules fails with the rule's message.
"""

from __future__ import annotations

import copy
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from autograder.engine.feedback import Fail
from autograder.engine.grade import grade_notebook
from autograder.engine.registry import NOTEBOOKS
from autograder.lessons.lesson8 import cross_entropy as ce
from autograder.reports import cards, figures

REPO = Path(__file__).resolve().parents[1]
NB = "05_cross_entropy"
SOURCE = REPO / "assignments" / "lesson8" / f"{NB}.ipynb"
SOLUTION = REPO / "solutions" / "lesson8" / f"{NB}.ipynb"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
ALL = [ex.name for ex in NOTEBOOKS[NB]]
POINTS = sum(ex.points for ex in NOTEBOOKS[NB])
PASS_FILES = sorted(SUBMISSIONS.glob(f"{NB}-pass-*.ipynb"))
FAIL_FILES = sorted(SUBMISSIONS.glob(f"{NB}-fail-*.ipynb"))
REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)

# file comment (after "fail-") -> a phrase the failing exercise's message must contain
PHRASES = {
    "output_layer-one-output": "One output was the seed's",
    "output_layer-relu-gain": "no relu comes after w2",
    "log_softmax-dim-0": "softmax across the batch (dim 0)",
    "log_softmax-no-keepdim": "keep the summed axis (keepdim=True)",
    "logsumexp-naive": "exp overflows float32 above about 88.7",
    "logsumexp-max-not-added-back": "add it back after the log",
    "logsumexp-global-max": "largest entry of the whole tensor",
    "stable_log_softmax-axis-not-restored": "put its axis back",
    "stable_log_softmax-naive-formula": "Go through your logsumexp",
    "int_targets-still-float": "Notebook 02 made the labels floats",
    "nll-column-index": "an n×n table",
    "nll-sum": "the sum over the batch",
    "nll-no-minus": "*negative* log likelihood",
    "cross_entropy-uses-F": "uses `torch.nn.functional.cross_entropy` (line 4)",
    "cross_entropy-helper-in-another-cell": "running it called `torch.nn.functional.cross_entropy`",
    "cross_entropy-naive-log_softmax": "the naive log_softmax overflows",
    "accuracy-argmax-without-dim": "argmax() without a dim flattens out",
    "sgd_step-gradients-never-zeroed": "loss.backward() adds to .grad",
    "sgd_step-update-outside-no_grad": "inside `with torch.no_grad():`",
    "sgd_step-wrong-sign": "moved the wrong way",
    "sgd_step-rebinds-p": "only rebinds the loop's name",
    "fit-drops-last-batch": "The last, partial batch was dropped",
    "fit-one-batch-too-many": "one of the batches was empty",
    "fit-last-batch-double-counted": "more than once in one epoch",
    "fit-returns-nothing": "should return the list of the losses",
}


def comment(path: Path) -> str:
    return path.stem.split("-", 2)[2]


def exercise_of(path: Path) -> str:
    return comment(path).split("-", 1)[0]


# ============================================================================= fast

def _trapped(code: str, ns: dict) -> list[str]:
    scope: dict = {}
    exec(compile(ce.trapped(code), "<test>", "exec"), ns, scope)
    return scope["_ag_hits"]


def test_trap_records_pytorchs_losses_and_puts_everything_back():
    """Does a run under the trap record F.cross_entropy reached through a helper, a loss
    module and a global alias, and leave torch exactly as it was?"""
    import torch.nn.functional as F
    before = (F.cross_entropy, torch.logsumexp, "logsumexp" in vars(torch.Tensor))
    ns = {"torch": torch, "F": F, "loss_func": F.cross_entropy}
    exec("def helper(o, t):\n    return F.cross_entropy(o, t)", ns)
    out, targ = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    ns.update(out=out, targ=targ)
    assert _trapped("helper(out, targ)", ns) == ["torch.nn.functional.cross_entropy"]
    assert _trapped("torch.nn.CrossEntropyLoss()(out, targ)", ns) == ["torch.nn.functional.cross_entropy"]
    assert _trapped("loss_func(out, targ)", ns) == ["torch.nn.functional.cross_entropy"]
    assert _trapped("out.logsumexp(-1)", ns) == [".logsumexp()"]
    assert _trapped("(out - out.max(-1, keepdim=True)[0]).exp().sum(-1).log()", ns) == []
    assert (F.cross_entropy, torch.logsumexp, "logsumexp" in vars(torch.Tensor)) == before
    assert ns["loss_func"] is F.cross_entropy
    with pytest.raises(ZeroDivisionError):           # restored even when the code raises
        _trapped("1 / 0", ns)
    assert (F.cross_entropy, torch.logsumexp) == before[:2]


def _calls(batches, lr=0.25, n=None):
    rows = [torch.tensor(b, dtype=torch.int64) for b in batches]
    return {"steps": len(rows), "xs": torch.cat(rows), "sizes": torch.tensor([len(r) for r in rows]),
            "paired": True, "lrs": torch.full((len(rows),), lr, dtype=torch.float64), "same_model": True,
            "returned": "list", "returned_len": len(rows),
            "returned_values": torch.arange(len(rows), dtype=torch.float64) + 1.5}


@pytest.mark.parametrize("batches, phrase", [
    ([range(0, 4), range(4, 8)], "The last, partial batch was dropped"),
    ([range(0, 4), range(4, 8), range(8, 10), range(6, 10)], "more than once"),
    ([range(0, 4), range(4, 8), range(8, 10), []], "empty"),
    ([range(0, 3), range(3, 6), range(6, 9), range(9, 10)], "should hold bs=4 rows each"),
], ids=["dropped", "twice", "empty", "batch-size"])
def test_judge_batches_names_each_mistake(batches, phrase):
    """Does the batch judgement tell a dropped, a repeated and an empty batch apart?"""
    with pytest.raises(Fail) as caught:
        ce.judge_batches("fit", _calls(batches), 10, 4, 0.25)
    assert phrase in str(caught.value)


def test_judge_batches_accepts_every_row_once_in_any_order():
    """Is a shuffled epoch (every row once, full batches, a smaller last one) accepted?"""
    ce.judge_batches("fit", _calls([[9, 1, 2, 3], [4, 5, 6, 7], [8, 0]]), 10, 4, 0.25)


def test_new_figure_kinds_render_from_plain_numbers():
    """Do the loss curve, the confusion matrix and the overflow plot render from the
    evidence the checks keep, through the card's figure list?"""
    ev = {"training": {"yours": [2.3, 1.0, None, 0.4], "grader": [2.3, 0.9, 0.5, 0.4], "every": 2, "steps": 8,
                       "accuracy": 0.93, "grader_accuracy": 0.931, "threshold": 0.92, "images": 512,
                       "bs": 64, "lr": 0.1},
          "confusion": {"matrix": [[5 if i == j else 1 for j in range(10)] for i in range(10)],
                        "digits": [{"index": 3, "label": 7, "pred": 1, "pixels": [[0] * 14] * 14}],
                        "accuracy": 0.5},
          "overflow": {"largest": [0.0, 100.0, 300.0], "yours": [1.0, "inf", "nan"],
                       "naive": [1.0, "inf", "inf"], "stable": [1.0, 101.0, 301.0]}}
    alts = [alt for alt, uri in cards.figures_for(ev) if uri.startswith("data:image/svg+xml;base64,")]
    assert len(alts) == 3
    assert "yours gives inf or nan at 100, 300" in alts[0]
    assert "threshold 0.92" in alts[1] and "7 read as 1" in alts[2]
    assert figures.training_figure({"yours": [], "grader": []})[1].startswith("data:image/svg+xml")


def test_threshold_is_what_the_docstring_derives():
    """Is THRESHOLD the documented minimum of the grader's runs minus z binomial sds,
    rounded down, and below the normal bound on the runs too?"""
    import math
    from autograder.engine import stats
    doc = " ".join(ce.fit.__doc__.split())
    low = float(re.search(r"from (0\.\d+) \(min\)", doc).group(1))
    bound = float(re.search(r"mean - z·sd = (0\.\d+)", doc).group(1))
    derived = low - stats.normal_quantile(1 - stats.ALPHA) * math.sqrt(low * (1 - low) / 10_000)
    assert low == ce.REFERENCE_MIN
    assert derived - 0.005 < ce.THRESHOLD <= min(derived, bound)


# ============================================================================= real notebooks

def make_stub(source: Path, target: Path) -> Path:
    """What nbgrader releases: each solution region replaced by ``raise NotImplementedError()``."""
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            text = REGION.sub(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()",
                              "".join(cell["source"]))
            cell["source"] = text.splitlines(keepends=True)
    target.write_text(json.dumps(nb, indent=1) + "\n")
    return target


# The lesson's own code for this step: fastai/course-v3, nbs/dl2/03_minibatch_training.ipynb,
# fitted to this notebook's names (its fit loop split into sgd_step and fit, the step
# returning its loss as the notebook asks). Small snippets, quoted to test the checks.
FASTAI = {
    "log_softmax": "def log_softmax(x): return (x.exp()/(x.exp().sum(-1,keepdim=True))).log()",
    "logsumexp": "def logsumexp(x):\n    m = x.max(-1)[0]\n    return m + (x-m[:,None]).exp().sum(-1).log()",
    "stable_log_softmax": "def stable_log_softmax(x): return x - x.logsumexp(-1,keepdim=True)",
    "nll": "def nll(input, target): return -input[range(target.shape[0]), target].mean()",
    "cross_entropy": "cross_entropy = F.cross_entropy",
    "accuracy": "def accuracy(out, yb): return (torch.argmax(out, dim=1)==yb).float().mean()",
    "sgd_step": ("def sgd_step(model, xb, yb, lr):\n"
                 "    loss = loss_func(model(xb), yb)\n"
                 "    loss.backward()\n"
                 "    with torch.no_grad():\n"
                 "        for p in model.parameters(): p -= p.grad * lr\n"
                 "        model.zero_grad()\n"
                 "    return loss"),
    "fit": ("def fit(model, x, y, lr, bs):\n"
            "    losses = []\n"
            "    for i in range((len(x)-1)//bs + 1):\n"
            "        start_i = i*bs\n"
            "        end_i = start_i+bs\n"
            "        losses.append(sgd_step(model, x[start_i:end_i], y[start_i:end_i], lr).item())\n"
            "    return losses"),
}
FASTAI_SETUP = "import torch.nn.functional as F\nloss_func = F.cross_entropy"
FASTAI_FAILS = {"stable_log_softmax": "uses `.logsumexp()` (line 1)",
                "cross_entropy": "uses `torch.nn.functional.cross_entropy` (line 1)",
                "sgd_step": "running it called `torch.nn.functional.cross_entropy`"}


def make_fastai(target: Path) -> Path:
    nb = json.loads(SOLUTION.read_text())
    cells = []
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid == "log_softmax":        # the lesson imports F at the top, as an ungraded cell
            cells.append({"cell_type": "code", "id": "fastai-imports", "metadata": {}, "outputs": [],
                          "execution_count": None, "source": FASTAI_SETUP})
        if gid in FASTAI:
            cell = copy.deepcopy(cell)
            cell["source"] = FASTAI[gid]
        cells.append(cell)
    nb["cells"] = cells
    target.write_text(json.dumps(nb, indent=1))
    return target


@pytest.fixture(scope="module")
def fastai_path(tmp_path_factory) -> Path:
    return make_fastai(tmp_path_factory.mktemp("fastai") / f"{NB}.ipynb")


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory) -> Path:
    return make_stub(SOURCE, tmp_path_factory.mktemp("release") / f"{NB}.ipynb")


@pytest.fixture(scope="module")
def reports(stub_path, fastai_path):
    """Every notebook this module's tests need, graded two at a time, once."""
    paths = {SOURCE, stub_path, fastai_path, *PASS_FILES, *FAIL_FILES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {path: pool.submit(grade_notebook, path) for path in sorted(paths)}
        yield {path: future.result() for path, future in futures.items()}


def by_name(report):
    assert report.error is None, report.error
    return {ex.name: ex for ex in report.exercises}


@pytest.mark.slow
def test_source_notebook_earns_every_point(reports):
    """Does the source notebook, with its solutions, pass every exercise with full marks?"""
    results = by_name(reports[SOURCE])
    assert list(results) == ALL
    assert [ex.message for ex in results.values() if not ex.passed] == []
    assert (reports[SOURCE].score, reports[SOURCE].max_score) == (POINTS, POINTS) == (17, 17)


@pytest.mark.slow
def test_release_stubs_are_not_implemented_yet(reports, stub_path):
    """Does every exercise of the untouched release fail with "not implemented yet" and no points?"""
    results = by_name(reports[stub_path])
    assert list(results) == ALL
    for ex in results.values():
        assert not ex.passed and ex.score == 0, ex.message
        assert "not implemented yet" in ex.message, ex.message


def test_every_fail_file_is_described():
    """Is every known-bad notebook named after a real exercise, with a phrase to expect, and
    does every exercise have at least one?"""
    assert PASS_FILES and FAIL_FILES
    assert {comment(p) for p in FAIL_FILES} == set(PHRASES)
    assert {exercise_of(p) for p in FAIL_FILES} == set(ALL)


@pytest.mark.slow
@pytest.mark.parametrize("path", PASS_FILES, ids=lambda p: comment(p))
def test_other_correct_styles_pass(reports, path):
    """Does correct work written differently (gather, argmax's count over len, a zeroing
    before the backward pass, p.sub_, a float loss, a shuffled epoch) pass?"""
    results = by_name(reports[path])
    assert [ex.message for ex in results.values() if not ex.passed] == []
    assert reports[path].score == POINTS


@pytest.mark.slow
@pytest.mark.parametrize("path", FAIL_FILES, ids=lambda p: comment(p))
def test_one_mistake_fails_only_its_exercise_and_says_why(reports, path):
    """Does one classic mistake fail its own exercise, no other, with a message naming it?"""
    results = by_name(reports[path])
    failed = {name: ex.message for name, ex in results.items() if not ex.passed}
    assert set(failed) == {exercise_of(path)}, failed
    message = failed[exercise_of(path)]
    assert message.startswith(f"{exercise_of(path)} · ")
    assert PHRASES[comment(path)] in message, message
    assert "not implemented yet" not in message and not results[exercise_of(path)].grader_error


@pytest.mark.slow
def test_the_lessons_own_code_passes_what_it_writes_and_fails_what_it_borrows(reports, fastai_path):
    """Does the lesson's published code pass log_softmax, logsumexp, nll, accuracy and
    fit, and fail exactly where it uses PyTorch's own (x.logsumexp, F.cross_entropy as the
    loss, and through the global loss_func, at run time) with the rule's message?"""
    results = by_name(reports[fastai_path])
    failed = {name: ex.message for name, ex in results.items() if not ex.passed}
    assert set(failed) == set(FASTAI_FAILS), failed
    for name, phrase in FASTAI_FAILS.items():
        assert phrase in failed[name] and "build yourself" in failed[name], failed[name]
        assert not results[name].grader_error
    assert {"log_softmax", "logsumexp", "nll", "accuracy", "fit"} <= {n for n, e in results.items() if e.passed}
