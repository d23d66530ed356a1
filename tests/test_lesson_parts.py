"""End-to-end tests for the matmul (01) and backward-pass (03) notebooks.

Each notebook is graded for real with :func:`autograder.engine.grade.grade_notebook`: the source
notebooks (with solutions) must pass every exercise, their released-style stubs must fail
every exercise as "not implemented yet", and every known-bad submission under
``tests/submissions/`` named ``<notebook>-fail-<exercise>-<what>.ipynb`` must fail exactly
that exercise, with a message that names the mistake; ``<notebook>-pass-<what>.ipynb``
files solve the exercises in other accepted ways and must pass everything.

Grading a notebook takes a few seconds, so every file is graded once per session.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autograder.engine.grade import grade_notebook
from autograder.engine.report import NotebookReport

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = REPO / "assignments" / "lesson8"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
PARTS = ("01_matmul", "03_backward")
SOLUTION_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$",
                             re.MULTILINE | re.DOTALL)

# A phrase that the failing exercise's message must contain, for each known-bad notebook.
EXPECTED_PHRASE = {
    "01_matmul-fail-matmul_loops-transposed.ipynb": "transposed",
    "01_matmul-fail-matmul_loops-running-total.ipynb": "running totals",
    "01_matmul-fail-matmul_loops-uses-matmul-operator.ipynb": "uses `@`",
    "01_matmul-fail-matmul_loops-no-shape-check.ipynb": "cannot be multiplied",
    "01_matmul-fail-matmul_loops-compares-wrong-sizes.ipynb": "which can be multiplied",
    "01_matmul-fail-matmul_elementwise-no-shape-check.ipynb": "cannot be multiplied",
    "01_matmul-fail-matmul_broadcast-two-loops.ipynb": "nests 2 loops",
    "01_matmul-fail-matmul_broadcast-sum-over-wrong-axis.ipynb": "wrong shape",
    "01_matmul-fail-matmul_einsum-no-einsum.ipynb": "does not call torch.einsum",
    "03_backward-fail-mse_grad-missing-factor-2.ipynb": "factor 2 is missing",
    "03_backward-fail-mse_grad-returns-gradient.ipynb": "inp.g was not set",
    "03_backward-fail-relu_grad-no-chain-rule.ipynb": "multiplied by out.g",
    "03_backward-fail-lin_grad-missing-transpose.ipynb": "which factor",
    "03_backward-fail-lin_grad-averaged-bias.ipynb": "don't average",
    "03_backward-fail-forward_and_backward-autograd.ipynb": "autograd",
    "03_backward-fail-forward_and_backward-wrong-order.ipynb": "reverse order",
    "03_backward-fail-Model-forward-order-backward.ipynb": "reverse order",
    "03_backward-fail-mse_grad-bare-squeeze.ipynb": "without an axis",
    "03_backward-fail-Mse-bare-squeeze.ipynb": "without an axis",
    "03_backward-fail-Module-forgets-args.ipynb": "self.args was not set",
    "03_backward-fail-Module-bwd-without-out.ipynb": "self.bwd(self.out, *self.args)",
    "03_backward-fail-Module-second-forward.ipynb": "very tensor",
    "03_backward-fail-Relu_module-overrides-call.ipynb": "only forward and bwd",
    "03_backward-fail-Lin_module-missing-transpose.ipynb": "which factor",
    "03_backward-fail-Mse_module-bare-squeeze.ipynb": "without an axis",
    "03_backward-fail-Model_module-bwd-in-forward-order.ipynb": "reverse order",
    "03_backward-fail-Model_module-old-classes.ipynb": "not subclasses of Module",
    "03_backward-fail-Model_module-calls-forward.ipynb": "went through Module.__call__ 0 times",
    "03_backward-fail-Lin_module-bwd-reads-self.ipynb": "called directly on a fresh layer",
}
BAD_NOTEBOOKS = sorted(p.name for p in SUBMISSIONS.glob("0[13]_*-fail-*.ipynb"))
GOOD_NOTEBOOKS = sorted(p.name for p in SUBMISSIONS.glob("0[13]_*-pass-*.ipynb"))

_reports: dict[Path, NotebookReport] = {}


def graded(path: Path) -> NotebookReport:
    """Grade ``path`` once per test session."""
    if path not in _reports:
        _reports[path] = grade_notebook(path)
    return _reports[path]


def summary(report: NotebookReport) -> str:
    return "\n".join(e.message for e in report.exercises) or str(report.error)


def make_stub(source: Path, target: Path) -> Path:
    """What nbgrader releases: each solution region replaced by ``raise NotImplementedError()``."""
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            text = "".join(cell["source"])
            text = SOLUTION_REGION.sub(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()",
                                       text)
            cell["source"] = text.splitlines(keepends=True)
    target.write_text(json.dumps(nb, indent=1) + "\n")
    return target


def exercise_of(name: str) -> str:
    """``01_matmul-fail-matmul_loops-transposed.ipynb`` -> ``matmul_loops``."""
    return name.split("-")[2]


@pytest.mark.parametrize("part", PARTS)
def test_solution_passes_every_exercise(part):
    """Does the source notebook, with its solutions, pass every exercise with full marks?"""
    report = graded(ASSIGNMENTS / f"{part}.ipynb")
    assert report.error is None, report.error
    assert report.exercises, "no exercises were graded"
    assert report.passed, summary(report)
    assert report.score == report.max_score


@pytest.mark.parametrize("part", PARTS)
def test_stub_fails_every_exercise_as_not_implemented(part, tmp_path):
    """Does every exercise of an untouched released notebook say "not implemented yet"?"""
    stub = make_stub(ASSIGNMENTS / f"{part}.ipynb", tmp_path / f"{part}.ipynb")
    assert "### BEGIN SOLUTION" not in stub.read_text()
    report = graded(stub)
    assert report.error is None, report.error
    for result in report.exercises:
        assert not result.passed and result.score == 0, result.message
        assert "not implemented yet" in result.message, result.message


@pytest.mark.parametrize("name", GOOD_NOTEBOOKS)
def test_alternative_correct_answers_pass(name):
    """Are other correct ways of writing the exercises accepted too?"""
    report = graded(SUBMISSIONS / name)
    assert report.error is None, report.error
    assert report.passed, summary(report)


def test_every_known_bad_notebook_has_an_expected_phrase():
    """Is each known-bad notebook on disk listed with the phrase its message must contain?"""
    assert sorted(EXPECTED_PHRASE) == BAD_NOTEBOOKS


@pytest.mark.parametrize("name", BAD_NOTEBOOKS)
def test_known_bad_notebook_fails_exactly_its_exercise(name):
    """Does the known-bad notebook fail only the exercise its name gives, saying why?"""
    report = graded(SUBMISSIONS / name)
    assert report.error is None, report.error
    target = exercise_of(name)
    results = {e.name: e for e in report.exercises}
    assert target in results, f"{target!r} is not an exercise of this notebook"
    failed = sorted(n for n, e in results.items() if not e.passed)
    assert failed == [target], summary(report)
    message = results[target].message
    assert EXPECTED_PHRASE.get(name, "") in message, message
    assert "not implemented yet" not in message and "grader itself failed" not in message, message
