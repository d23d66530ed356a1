"""The checks of ``04_init_in_pytorch`` (fans, gain, kaiming_uniform_, PyTorch's default
init, the conv-stack experiment), and the statistics they stand on.

* Fast tests: the tolerances in :mod:`autograder.engine.stats` and the judgement of uniform
  weights, on draws made here.
* Slow tests grade real notebooks: the source earns every point, the release stubs say
  "not implemented yet", ``tests/submissions/04_init_in_pytorch-pass-*.ipynb`` pass, and each
  ``04_init_in_pytorch-fail-<exercise>-<mistake>.ipynb`` fails exactly ``<exercise>`` with a
  message that names the mistake. (The Module refactor at the end of ``03_backward`` is
  covered with the rest of that notebook, in ``test_lesson_parts.py``.)
* The seed sweep over the new statistical checks: zero false failures in 1,000 seeds.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from autograder.engine import stats
from autograder.engine.registry import NOTEBOOKS
from autograder.lessons.lesson8.init_pytorch import judge_uniform, script, scripted_counts, uniform_judgement
from autograder.engine.feedback import Fail
from autograder.engine.grade import grade_notebook

REPO = Path(__file__).resolve().parents[1]
NB = "04_init_in_pytorch"
SOURCE = REPO / "assignments" / "lesson8" / f"{NB}.ipynb"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
ALL = [ex.name for ex in NOTEBOOKS[NB]]
POINTS = sum(ex.points for ex in NOTEBOOKS[NB])
PASS_FILES = sorted(SUBMISSIONS.glob(f"{NB}-pass-*.ipynb"))
FAIL_FILES = sorted(SUBMISSIONS.glob(f"{NB}-fail-*.ipynb"))
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)

# file comment (after "fail-") -> a phrase the failing exercise's message must contain
PHRASES = {
    "fans-fan_in-from-dim-0": "fan_in comes from dimension 1",
    "fans-no-receptive-field": "receptive field",
    "fans-no-dim-check": "raise a ValueError",
    "gain-sqrt5-as-gain": "not the gain itself",
    "gain-no-square-root": "gain squared",
    "kaiming_uniform-no-sqrt3": "The √3 is missing",
    "kaiming_uniform-normal": "not a normal distribution",
    "kaiming_uniform-not-in-place": "not filled in place",
    "kaiming_uniform-ignores-mode": "reads the fan of mode='fan_in'",
    "kaiming_uniform-torch-init": "torch.nn.init.kaiming_uniform_",
    "default_std-bound-not-std": "the std of U(-b, b) is b/√3",
    "default_std-kaiming": "Kaiming's std",
    "layer_stats-before-relu": "before its ReLU",
    "layer_stats-last-only": "after every layer",
    "fraction_better-counts-worse": "*closer* to std 1",
    "fraction_better-no-reinit": "About half",
    "fraction_better-count-not-fraction": "between 0 and 1",
    "fraction_better-compares-means": "compares the means",
    "fraction_better-reuses-earlier-stacks": "left in the notebook by an earlier cell",
    "fraction_better-stacks-built-once": "one pair for all the samples",
    "fraction_better-default-0-samples": "the default of n_samples is 0;",
    "fraction_better-default-200-samples": "the default of n_samples is 200;",
    "kaiming_uniform-no-no_grad": "torch.no_grad()",
}


def comment(path: Path) -> str:
    return path.stem.split("-", 2)[2]


def exercise_of(path: Path) -> str:
    return comment(path).split("-", 1)[0]


# ============================================================================= statistics

@pytest.mark.parametrize("n, p, expected", [(100, 0.5, (22, 78)), (63, 0.5, (10, 53))])
def test_binomial_acceptance_is_a_central_region(n, p, expected):
    """Does the acceptance region of Binomial(n, p) leave out at most ALPHA/2 on each side,
    and nothing more than it needs to?"""
    lo, hi = stats.binomial_acceptance(n, p)
    assert (lo, hi) == expected
    assert stats.binomial_cdf(lo - 1, n, p) <= stats.ALPHA / 2 < stats.binomial_cdf(lo, n, p)
    assert stats.binomial_sf(hi + 1, n, p) <= stats.ALPHA / 2 < stats.binomial_sf(hi, n, p)


def test_proportion_interval_of_all_successes():
    """Is the Clopper-Pearson interval of 200 successes in 200 the closed-form p^200 = ALPHA/2?"""
    low, high = stats.proportion_interval(200, 200)
    assert math.isclose(low, (stats.ALPHA / 2) ** (1 / 200), rel_tol=1e-9) and high == 1.0
    low, high = stats.proportion_interval(100, 200)
    assert low < 0.5 < high and math.isclose(low, 1 - high, rel_tol=1e-6)


def test_bernstein_halfwidth_covers_uniform_means():
    """Does the Bernstein bound hold the mean of 800 uniform draws in every one of 2000 tries,
    while staying within a factor 2 of the normal approximation's width?"""
    g = torch.Generator().manual_seed(0)
    t = stats.bernstein_halfwidth(800, 1 / 3, 1.0)
    means = (torch.rand(2000, 800, generator=g, dtype=torch.float64) * 2 - 1).mean(1)
    assert float(means.abs().max()) < t
    normal = stats.normal_quantile(1 - stats.ALPHA / 2) * math.sqrt(1 / 3 / 800)
    assert normal < t < 2 * normal


def _uniform(shape, bound, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 - 1) * bound


@pytest.mark.parametrize("shape", [(32, 1, 5, 5), (64, 32, 3, 3), (50, 784)])
def test_uniform_judgement_passes_correct_draws(shape):
    """Do correct uniform draws of every size the checks use pass, over 50 seeds?"""
    for seed in range(50):
        assert uniform_judgement(_uniform(shape, 0.3, seed), 0.3) == []


@pytest.mark.parametrize("make, phrase", [
    (lambda b: _uniform((64, 32, 3, 3), b / math.sqrt(3)), "√3 is missing"),
    (lambda b: torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(1)) * b / math.sqrt(3),
     "not a normal distribution"),
    (lambda b: torch.rand(64, 32, 3, 3, generator=torch.Generator().manual_seed(2)) * b, "not centred"),
    (lambda b: _uniform((64, 32, 3, 3), b * math.sqrt(2)), "wrong range"),
    (lambda b: torch.full((64, 32, 3, 3), math.nan), "NaN or infinite"),
], ids=["no-sqrt3", "normal", "rand", "too-wide", "nan"])
def test_judge_uniform_names_the_mistake(make, phrase):
    """Does judge_uniform tell the classic wrong draws apart, and say which one it is?"""
    bound = math.sqrt(2) * math.sqrt(3 / 288)
    with pytest.raises(Fail) as caught:
        judge_uniform("kaiming_uniform_(w)", make(bound), (64, 32, 3, 3), 0.0, "fan_in")
    assert phrase in str(caught.value)


def test_judge_uniform_names_sqrt5_taken_as_the_gain():
    """Is a bound computed with a = √5 as the gain told that a is not the gain?"""
    shape = (50, 784)
    wrong = _uniform(shape, math.sqrt(5) * math.sqrt(3 / 784))
    with pytest.raises(Fail) as caught:
        judge_uniform("kaiming_uniform_(w, a=√5)", wrong, shape, math.sqrt(5), "fan_in")
    assert "uses a itself as the gain" in str(caught.value)


def test_scripted_statistics_tell_every_wrong_reading_apart():
    """For any seed, does the script behind fraction_better's exact run give each classic
    wrong reading (mean, first layer, no abs, larger std, worse) a count of its own?"""
    for seed in range(40):
        counts = scripted_counts(script(seed, 30))
        assert all(c != counts["right"] for name, c in counts.items() if name != "right"), (seed, counts)


# ============================================================================= real notebooks

def make_stub(source: Path, target: Path) -> Path:
    """What nbgrader releases: each solution region replaced by ``raise NotImplementedError()``."""
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            text = SOLUTION.sub(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()",
                                "".join(cell["source"]))
            cell["source"] = text.splitlines(keepends=True)
    target.write_text(json.dumps(nb, indent=1) + "\n")
    return target


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory) -> Path:
    return make_stub(SOURCE, tmp_path_factory.mktemp("release") / f"{NB}.ipynb")


@pytest.fixture(scope="module")
def reports(request, stub_path):
    """Every notebook this module's selected tests need, graded two at a time, once."""
    paths = {SOURCE, stub_path, *PASS_FILES, *FAIL_FILES}
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
    assert (reports[SOURCE].score, reports[SOURCE].max_score) == (POINTS, POINTS) == (8, 8)


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
    """Does correct work written differently (len(w.shape), w[0][0].numel(), a dict
    for the mode, copy_ of a rescaled rand, tensors as statistics, helper functions) pass?"""
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


# ============================================================================= seed sweep

def load_seed_sweep():
    """scripts/seed_sweep.py, imported from its path (scripts/ is not a package)."""
    if "seed_sweep" not in sys.modules:
        path = REPO / "scripts" / "seed_sweep.py"
        spec = importlib.util.spec_from_file_location("seed_sweep", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["seed_sweep"] = module        # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["seed_sweep"]


@pytest.mark.slow
def test_seed_sweep_of_the_init_checks_finds_no_false_failures():
    """Over 1000 seeds, does every kaiming_uniform_ case and the experiment's acceptance
    regions pass every correct draw, and catch the classic mistakes every time?"""
    results = load_seed_sweep().sweep_init_pytorch(1000)
    assert {label: r["false_failures"] for label, r in results.items() if r["false_failures"]} == {}
    weak = {(label, name): p for label, r in results.items() for name, p in r["power"].items()
            if p is not None and p < 1.0}
    assert weak == {}
