"""The author's self-test, ``python -m autograder lint-lesson LESSON``.

Lesson 8 passes it (without the mutants, which tests/test_mutants.py runs in full). A tiny
lesson built here, outside the kit (a folder with two exercises on plain tensors, a source
notebook, its release made by the real nbgrader), passes every check; and each check
fails on a copy of that course broken in the one way the check exists to catch.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.engine import discovery, evidence, registry
from autograder.frontends import selftest
from autograder.frontends.release import build_solutions

REPO = Path(__file__).resolve().parents[1]
NAME, NB = "tinylesson", "01_tiny"

LESSON_INIT = '''
"""A tiny lesson: doubling a tensor and adding up its entries."""
import torch

from autograder.authoring import Fail, Lesson, call, require_tensor

lesson = Lesson("tinylesson", title="Doubling and totals")
NB = "01_tiny"
X = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]])


@lesson.exercise(NB, "double", 1, "double(x)")
def check_double(sub):
    called = call(sub, "double(x)", "double", X.clone())
    got = require_tensor(called.result, "double(x)")
    if not torch.equal(called.args[0], X):
        raise Fail("double(x): your function changed its input x.",
                   hint="Write the result into a new tensor and leave x as it was.")
    if got.shape != X.shape or not torch.allclose(got, 2 * X):
        raise Fail("double(x): the result has the wrong value.",
                   f"Expected shape {tuple(X.shape)}, got {tuple(got.shape)}.",
                   hint="Each entry of the result is twice the same entry of x.")


@lesson.exercise(NB, "total", 1, "total(x)")
def check_total(sub):
    got = require_tensor(call(sub, "total(x)", "total", X).result, "total(x)")
    if got.shape != () or not torch.isclose(got, X.sum()):
        raise Fail("total(x): the result is not the sum of every entry.",
                   f"Expected a single number, got shape {tuple(got.shape)}.",
                   hint="Add up all the entries, over both axes.")


lesson.equivalent_mutants[(NB, "double", "out = torch.zeros_like(x)", "out = torch.ones_like(x)")] = (
    "every entry of out is assigned before out is returned, so its first values never show")
'''

DOUBLE = ("def double(x):\n    ### BEGIN SOLUTION\n    out = torch.zeros_like(x)\n"
          "    out[...] = x * 2\n    return out\n    ### END SOLUTION\n")
TOTAL = "def total(x):\n    ### BEGIN SOLUTION\n    return x.sum()\n    ### END SOLUTION\n"


def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _source_notebook() -> dict:
    def code(source, metadata=None):
        return {"cell_type": "code", "execution_count": None, "metadata": metadata or {},
                "outputs": [], "source": source}
    cells = [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Doubling and totals"},
        code("import torch\nfrom autograder import check", _meta("setup", locked=True)),
        code(DOUBLE, _meta("double", solution=True)),
        code('check("double")', _meta("test_double", grade=True, locked=True, points=1)),
        code(TOTAL, _meta("total", solution=True)),
        code('check("total")\n### BEGIN HIDDEN TESTS\ncheck("total")\n### END HIDDEN TESTS',
             _meta("test_total", grade=True, locked=True, points=1)),
        code("total(torch.ones(2, 2))"),                 # a demonstration cell
    ]
    for i, cell in enumerate(cells):           # as Jupyter saves them (nbformat 4.5)
        cell.setdefault("id", f"cell-{i}")
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def _nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("JUPYTER_CONFIG_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny lesson installed for this module only, and its course: the source, the
    release made by the real nbgrader, solutions/ made by the kit."""
    pytest.importorskip("nbgrader")
    root = tmp_path_factory.mktemp("tiny")
    folder = root / NAME
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(LESSON_INIT))
    course = root / "course"
    (course / "assignments" / NAME).mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        'c = get_config()  # noqa: F821\nc.CourseDirectory.source_directory = "assignments"\n'
        'c.CourseDirectory.release_directory = "release"\n')
    (course / "assignments" / NAME / f"{NB}.ipynb").write_text(json.dumps(_source_notebook(), indent=1))
    _nbgrader(course, "generate_assignment", NAME, "--no-db")     # the same release, faster
    build_solutions(course, assignment=NAME)
    saved = ({k: list(v) for k, v in registry.NOTEBOOKS.items()}, dict(registry.EXERCISES),
             dict(registry.LESSONS), dict(registry.PREFETCH), dict(evidence.EXTRAS),
             dict(discovery._folders))
    lesson = discovery.load_folder(folder)
    try:
        yield {"lesson": lesson, "course": course}
    finally:               # the rest of the session sees the catalogue it had
        for table, old in zip((registry.NOTEBOOKS, registry.EXERCISES, registry.LESSONS,
                               registry.PREFETCH, evidence.EXTRAS, discovery._folders), saved):
            table.clear()
            table.update(old)


def _copy(tiny, tmp_path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(tiny["course"], course)
    return course


def _edit(path: Path, grade_id: str, source: str) -> None:
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    cell["source"] = source
    path.write_text(json.dumps(nb, indent=1))


def _solutions(course: Path, tmp_path: Path) -> list[Path]:
    folder = tmp_path / "graded"
    folder.mkdir()
    return selftest._solution_files(course, NAME, folder)


@pytest.mark.slow
def test_lesson8_passes_the_self_test():
    """Does lesson 8, the kit's own lesson, pass every check but the mutants (run in full
    by tests/test_mutants.py) through the command line, with exit status 0?"""
    pytest.importorskip("nbgrader")
    proc = subprocess.run([sys.executable, "-m", "autograder", "lint-lesson", "lesson8",
                           "--skip-mutants", "--seeds", "5"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for name in ("solutions", "stubs", "release", "seed sweep"):
        assert any(line.startswith(f"PASS  {name}") for line in lines), proc.stdout
    from autograder.engine import discovery
    ours = discovery.lessons()["lesson8"].exercises
    n, points = len(ours), sum(ex.points for ex in ours)
    assert f"{n}/{n} exercises pass ({points}/{points} points)" in proc.stdout
    assert f'{n}/{n} exercises "not implemented", 0/{points} points' in proc.stdout
    assert "SKIP  mutants" in proc.stdout and "the lesson's sweep: 0 false failures" in proc.stdout
    assert lines[-1] == "lesson8: 4 passed, 1 skipped"


@pytest.mark.slow
def test_a_lesson_from_outside_the_kit_passes_every_check(tiny):
    """Does the tiny lesson pass all five checks (its mutants killed but the one it lists
    as equivalent, the generic sweep grading its solutions again), with exit status 0?"""
    out = io.StringIO()
    status = selftest.main(NAME, course=tiny["course"], seeds=2, out=out)
    text = out.getvalue()
    assert status == 0, text
    assert [line.split()[0] for line in text.splitlines()[1:6]] == ["PASS"] * 5, text
    assert "1 notebook, 2/2 exercises pass (2/2 points)" in text
    assert '2/2 exercises "not implemented", 0/2 points' in text
    assert f"solutions/{NAME} is current" in text
    assert "1 equivalent, 0 survived (score 100.0%" in text
    assert "graded 2 more times in fresh workers" in text
    assert text.splitlines()[-1] == f"{NAME}: 5 passed"


@pytest.mark.slow
def test_a_broken_solution_fails_the_solutions_check(tiny, tmp_path):
    """Is a source notebook whose solution is wrong (double returns x + 2) a FAIL of check 1
    that names the exercise and its message, and a FAIL of the generic seed sweep?"""
    course = _copy(tiny, tmp_path)
    _edit(course / "assignments" / NAME / f"{NB}.ipynb", "double",
          "def double(x):\n    ### BEGIN SOLUTION\n    return x + 2\n    ### END SOLUTION\n")
    paths = _solutions(course, tmp_path)
    check = selftest.check_solutions(tiny["lesson"], paths, 1)
    assert check.status == "FAIL", check
    assert "1/2 exercises pass" in check.summary
    assert any("double · double(x): the result has the wrong value." in d for d in check.details), check
    sweep = selftest.check_seed_sweep(tiny["lesson"], paths, 1, 1)
    assert sweep.status == "FAIL" and "run 1: 01_tiny.ipynb: double" in sweep.details[0], sweep


@pytest.mark.slow
def test_a_solution_left_in_the_release_fails_the_stubs_check(tiny, tmp_path):
    """Is a released notebook that still holds a solution (total) a FAIL of check 2 that
    says which exercise scores as released?"""
    course = _copy(tiny, tmp_path)
    _edit(course / "release" / NAME / f"{NB}.ipynb", "total", "def total(x):\n    return x.sum()\n")
    check = selftest.check_stubs(tiny["lesson"], course, 1)
    assert check.status == "FAIL", check
    assert check.details == [f"{NB}.ipynb: total scores 1/1 as released (is a solution left in the stub?)"]
    assert '1/2 exercises "not implemented", 1/2 points' in check.summary


@pytest.mark.slow
def test_a_stale_release_fails_the_release_check(tiny, tmp_path):
    """Once the source changes (a new line of text) and release/ and solutions/ do not,
    is that a FAIL of check 3 naming both stale notebooks and the commands that fix them?
    And is a source cell without an id (nbgrader would give it a random one on every
    release) named with the way to fix it?"""
    course = _copy(tiny, tmp_path)
    path = course / "assignments" / NAME / f"{NB}.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] += "\n\nA sentence added after the release."
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "A cell pasted in by hand."})
    path.write_text(json.dumps(nb, indent=1))
    check = selftest.check_release(tiny["lesson"], course)
    assert check.status == "FAIL", check
    assert f"release/{NAME}/{NB}.ipynb is stale" in check.details
    assert f"solutions/{NAME}/{NB}.ipynb is stale" in check.details
    assert any("nbgrader generate_assignment tinylesson --force" in d for d in check.details)
    assert check.details[0].startswith(f"assignments/{NAME}/{NB}.ipynb: 1 cell has no id, so "
                                       "nbgrader gives random ones")


@pytest.mark.slow
def test_a_mutant_the_checks_cannot_kill_fails_the_mutants_check(tiny, monkeypatch):
    """Without its reason listed, is the mutant no check can see (zeros_like made ones_like,
    every entry overwritten) a survivor that fails check 4, and is a listed entry that
    matches no mutant reported as stale?"""
    lesson = tiny["lesson"]
    stale = (NB, "total", "return x.sum()", "return x.prod()")
    monkeypatch.setattr(lesson, "equivalent_mutants", {stale: "a mutant the generator never makes"})
    check = selftest.check_mutants(lesson, tiny["course"], 2, None)
    assert check.status == "FAIL", check
    assert "0 equivalent, 1 survived" in check.summary
    assert any(d.startswith("survived: 01_tiny double [method: zeros_like -> ones_like]")
               for d in check.details), check
    assert f"listed as equivalent but no longer generated: {stale}" in check.details
    assert "lesson.equivalent_mutants" in check.details[-1]


def test_a_false_failure_in_the_lessons_sweep_fails_the_sweep_check(monkeypatch):
    """Does a sweep hook that counts false failures make check 5 FAIL with its report, and
    a hook that raises make it a grader error (not the author's failure)?"""
    from autograder.authoring import Lesson
    lesson = Lesson("sweeping")

    @lesson.seed_sweep
    def sweep(seeds=10):
        return 2, f"case a: 2 false failures\ncase b: 0 false failures\n2 false failures in {2 * seeds} correct draws"
    check = selftest.check_seed_sweep(lesson, [], 1, None)
    assert (check.status, check.summary) == ("FAIL", "the lesson's sweep: 2 false failures in 20 correct draws")
    assert check.details == ["case a: 2 false failures", "case b: 0 false failures"]
    assert selftest.check_seed_sweep(lesson, [], 1, 5).summary.endswith("in 10 correct draws")

    @lesson.seed_sweep
    def broken(seeds=10):
        raise KeyError("w3")
    check = selftest.check_seed_sweep(lesson, [], 1, None)
    assert check.status == "ERROR" and "KeyError" in check.summary


def test_an_unknown_lesson_is_a_grader_error(capsys):
    """Is a lesson nobody declared exit status 3 with a message naming the lessons found?"""
    assert selftest.main("no_such_lesson", course=REPO) == 3
    assert "no lesson is called no_such_lesson (found: " in capsys.readouterr().err
