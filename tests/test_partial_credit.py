"""Partial credit: an exercise's independent parts, each judged on its own.

The engine's rules are tested with small fake checks (no worker); the lesson's two
exercises with parts (``lin_grad``: one point per gradient; ``matmul_loops``: the product
and the shape check) are graded for real on known-bad notebooks; nbgrader's side is the
partial-credit output that ``nbgrader.utils.determine_grade`` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from autograder.engine.feedback import Fail, NotImplementedYet
from autograder.engine.grade import grade_notebook
from autograder.engine.registry import Lesson, LessonError, run_exercise
from autograder.engine.report import ExerciseResult, NotebookReport
from autograder.engine.submission import Submission

SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


class Blank(Submission):
    """A submission whose cells all ran cleanly and hold nothing to read."""

    def source(self, grade_id, name=None):
        return ""

    def all_source(self):
        return ""


def declare(fn, parts=None, points=3):
    lesson = Lesson("partial-test")
    lesson.exercise("nb", "ex", points, "ex(x)", parts=parts if parts is not None else
                    {"a": 1, "b": 1, "c": 1})(fn)
    return lesson["ex"]


# ----------------------------------------------------------------------------- the engine
def test_each_part_scores_on_its_own():
    """Is the score the sum of the parts that pass, with each failed part's explanation
    and the passed ones named?"""
    def check(sub, parts):
        with parts.judge("a"):
            pass
        with parts.judge("b"):
            raise Fail("ex(x): b has the wrong value.", "Expected 1, got 2.", hint="Add one.")
        with parts.judge("c"):
            pass

    result = run_exercise(declare(check), Blank())
    assert (result.passed, result.score, result.max_score) == (False, 2, 3)
    assert result.parts == [{"name": "a", "score": 1.0, "max_score": 1.0},
                            {"name": "b", "score": 0.0, "max_score": 1.0},
                            {"name": "c", "score": 1.0, "max_score": 1.0}]
    head, *rest = result.message.splitlines()
    assert head == "ex · ex(x): 2/3 points: a and c are right; b is not."
    assert rest == ["  b: ex(x): b has the wrong value.", "    Expected 1, got 2.", "    Hint: Add one."]


def test_a_part_never_passes_because_another_failed_first():
    """When the check fails outside every part (the student's function raised in a later
    case), does every part not yet failed fail too, instead of keeping an earlier pass?"""
    def check(sub, parts):
        with parts.judge("a"):
            raise Fail("ex(x): a is wrong.")
        with parts.judge("b"):
            pass            # passed in the first case...
        raise Fail("ex(x): calling it raised ValueError.")      # ...then the second case crashed

    result = run_exercise(declare(check), Blank())
    assert result.score == 0 and [p["score"] for p in result.parts] == [0, 0, 0]
    assert "a: ex(x): a is wrong." in result.message
    assert "b: ex(x): calling it raised ValueError." in result.message
    assert "c: the same failure as b." in result.message


def test_one_failure_shared_by_every_part_reads_as_before():
    """Is a failure that every part shares (the call raised) said once, as for an
    all-or-nothing exercise?"""
    def check(sub, parts):
        raise Fail("ex(x): calling it raised RuntimeError.", hint="Read the traceback.")

    result = run_exercise(declare(check), Blank())
    assert result.message == "ex · ex(x): calling it raised RuntimeError.\n  Hint: Read the traceback."
    assert result.score == 0 and len(result.parts) == 3


def test_a_part_never_judged_is_a_grader_error_not_a_pass():
    """Does a check that forgets to judge a declared part give a grader error (the
    lesson's bug), never a free point?"""
    def check(sub, parts):
        with parts.judge("a"):
            pass
        with parts.judge("b"):
            pass

    result = run_exercise(declare(check), Blank())
    assert result.grader_error and result.score == 0 and not result.passed
    assert "never judged part c" in result.message


def test_a_stub_inside_a_part_fails_the_whole_exercise():
    """Is "not implemented yet" raised inside one part the whole exercise's failure?"""
    def check(sub, parts):
        with parts.judge("a"):
            raise NotImplementedYet("ex(x): not implemented yet.")

    result = run_exercise(declare(check), Blank())
    assert result.score == 0 and "not implemented yet" in result.message
    assert result.message.startswith("ex · ex(x): not implemented yet.")


def test_all_parts_passing_is_full_marks():
    """Does an exercise whose every part passes read and score like any pass?"""
    def check(sub, parts):
        for name in parts:
            with parts.judge(name):
                pass

    result = run_exercise(declare(check), Blank())
    assert result.passed and result.score == 3 and result.message == "ex · ex(x): passed."
    assert [p["score"] for p in result.parts] == [1, 1, 1]


@pytest.mark.parametrize("parts, why", [({"a": 1, "b": 1}, "worth 2 points in total"),
                                        ({"a": 3}, "at least two"),
                                        ({"a": 3, "b": 0}, "must be worth some points")])
def test_a_broken_parts_declaration_is_refused(parts, why):
    """Is a declaration whose parts do not add up to the exercise's points refused?"""
    with pytest.raises(LessonError, match=why):
        declare(lambda sub, parts: None, parts=parts)


def test_parts_travel_in_the_json():
    """Do the parts survive ``grade --json`` and reading it back (class report, CSV)?"""
    result = ExerciseResult("ex", False, 2.0, 3.0, "ex · ...", parts=[
        {"name": "a", "score": 1.0, "max_score": 1.0}, {"name": "b", "score": 1.0, "max_score": 2.0}])
    report = NotebookReport("nb.ipynb", [result])
    data = json.loads(json.dumps(report.as_json()))
    assert data["exercises"][0]["parts"] == result.parts
    assert NotebookReport.from_json(data).exercises[0] == result


def test_lesson8_declares_parts_that_add_up():
    """Are lin_grad and matmul_loops the lesson's exercises with parts, adding up?"""
    from autograder.engine.grade import catalogue
    exercises = catalogue().EXERCISES
    with_parts = {name: dict(ex.parts) for name, ex in exercises.items() if ex.parts}
    assert with_parts == {"lin_grad": {"inp.g": 1, "w.g": 1, "b.g": 1},
                          "matmul_loops": {"product": 1, "shape check": 1}}
    for name, parts in with_parts.items():
        assert sum(parts.values()) == exercises[name].points


# ----------------------------------------------------------------------------- the lesson
_graded: dict[str, NotebookReport] = {}


def graded(name: str):
    if name not in _graded:
        _graded[name] = grade_notebook(SUBMISSIONS / name)
    return {e.name: e for e in _graded[name].exercises}


def test_one_wrong_gradient_costs_one_point():
    """Does lin_grad with an averaged bias gradient keep the points of inp.g and w.g?"""
    result = graded("03_backward-fail-lin_grad-averaged-bias.ipynb")["lin_grad"]
    assert (result.score, result.max_score, result.passed) == (2, 3, False)
    assert [(p["name"], p["score"]) for p in result.parts] == [("inp.g", 1), ("w.g", 1), ("b.g", 0)]
    head = result.message.splitlines()[0]
    assert head == "lin_grad · lin_grad(inp, out, w, b): 2/3 points: inp.g and w.g are right; b.g is not."
    assert "don't average" in result.message


def test_a_function_that_raises_earns_no_part():
    """When lin_grad raises before storing anything, is every gradient 0, with the error?"""
    result = graded("03_backward-fail-lin_grad-missing-transpose.ipynb")["lin_grad"]
    assert result.score == 0 and [p["score"] for p in result.parts] == [0, 0, 0]
    assert "calling it raised RuntimeError" in result.message


def test_the_product_scores_without_the_shape_check():
    """Does a right product without a shape check keep the product's point?"""
    result = graded("01_matmul-fail-matmul_loops-no-shape-check.ipynb")["matmul_loops"]
    assert (result.score, result.max_score) == (1, 2)
    assert result.message.splitlines()[0].endswith("product is right; shape check is not.")


def test_a_wrong_product_keeps_the_shape_checks_point():
    """Is the shape check judged (and passed) even when the product is wrong?"""
    result = graded("01_matmul-fail-matmul_loops-transposed.ipynb")["matmul_loops"]
    assert (result.score, result.max_score) == (1, 2)
    assert [(p["name"], p["score"]) for p in result.parts] == [("product", 0), ("shape check", 1)]


def test_refusing_everything_is_no_shape_check():
    """Does a shape check that also refuses shapes that can be multiplied earn nothing?"""
    result = graded("01_matmul-fail-matmul_loops-compares-wrong-sizes.ipynb")["matmul_loops"]
    assert result.score == 0
    assert "product: matmul_loops(a, b): calling it raised AssertionError." in result.message
    assert "shape check: matmul_loops(a, b): raised an error for a (5, 3) and a (3, 4) matrix" in result.message


# ----------------------------------------------------------------------------- nbgrader
def _test_cell(src: str, points: float = 3):
    from nbformat.v4 import new_code_cell
    cell = new_code_cell(src)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": points,
                                 "grade_id": "test_x", "schema_version": 3}
    return cell


def _parts(*scores):
    return [{"name": n, "score": float(s), "max_score": 1.0} for n, s in zip("abc", scores)]


def test_nbgrader_reads_a_partial_score(monkeypatch):
    """Does a partly right check become nbgrader's partial-credit output (the message on
    stdout, the score as an execute_result), which determine_grade scores, scaled to the
    cell's points?"""
    import autograder
    from nbgrader.utils import determine_grade

    from autograder.frontends.nbgrader.plugin import SandboxGrade

    def fake_check(name, **options):
        if options.get("seed") == 1:     # the hidden case: a wrong too
            raise autograder.CheckFailed("x: 2/3 points: b and c are right; a is not.", score=2,
                                         max_score=3, parts=_parts(0, 1, 1))
        raise autograder.CheckFailed("x: 2/3 points: a and c are right; b is not.", score=2,
                                     max_score=3, parts=_parts(1, 0, 1))

    monkeypatch.setattr(autograder, "check", fake_check)
    grader = SandboxGrade()
    cell = _test_cell('check("x")')
    cell.outputs = grader._run_test(cell)
    assert [o.output_type for o in cell.outputs] == ["stream", "execute_result"]
    assert cell.outputs[0].text == "x: 2/3 points: a and c are right; b is not.\n"
    assert determine_grade(cell) == (2.0, 3.0)

    six = _test_cell('check("x")', points=6)            # the cell's points, not the check's
    six.outputs = grader._run_test(six)
    assert determine_grade(six) == (4.0, 6.0)

    both = _test_cell('check("x")\n### BEGIN HIDDEN TESTS\ncheck("x", seed=1)\n### END HIDDEN TESTS')
    both.outputs = grader._run_test(both)
    assert determine_grade(both) == (1.0, 3.0)          # a and b each lost somewhere: only c
    assert "A hidden test failed: x: 2/3 points" in both.outputs[0].text


def test_nbgrader_scores_zero_for_no_part(monkeypatch):
    """Is a check with parts that scored nothing still one error output (nbgrader's zero)?"""
    import autograder
    from nbgrader.utils import determine_grade

    from autograder.frontends.nbgrader.plugin import SandboxGrade

    def fake_check(name, **options):
        raise autograder.CheckFailed("x: calling it raised.", score=0, max_score=3, parts=_parts(0, 0, 0))

    monkeypatch.setattr(autograder, "check", fake_check)
    cell = _test_cell('check("x")')
    cell.outputs = SandboxGrade()._run_test(cell)
    assert [o.output_type for o in cell.outputs] == ["error"]
    assert determine_grade(cell) == (0, 3.0)


def test_mutants_count_a_lost_part_as_killed(tmp_path):
    """Does the mutation script count a mutant as killed when an exercise loses points
    (matmul_loops without its shape check keeps the product's point), not only when an
    exercise fails outright?"""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        import mutants
    finally:
        sys.path.pop(0)
    from autograder.engine.sandbox import Limits
    name = "01_matmul"
    base = mutants.base_notebook(mutants.solution_notebooks(mutants.ROOT, "lesson8", [name])[name], tmp_path, name)
    source = base.by_id("matmul_loops").source
    line = next(x for x in source.splitlines() if x.strip().startswith("assert"))
    mutant = mutants.Mutant(name, "matmul_loops", "deletion", "statement -> pass", line.strip(), "pass",
                            source.replace(line, line[: len(line) - len(line.lstrip())] + "pass"))
    graded = mutants.grade_mutant(mutant, base, Limits(cell_timeout=mutants._engine.CELL_TIMEOUT,
                                                       notebook_timeout=mutants._engine.NOTEBOOK_TIMEOUT), {})
    assert (graded.status, graded.by) == ("killed", "matmul_loops"), graded
    assert "product is right; shape check is not" in graded.message
    assert "accepted a (2, 3) and a (5, 2) matrix" in graded.message
