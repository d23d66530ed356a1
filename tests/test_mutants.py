"""Mutation testing of the checks (``autograder/frontends/mutants.py``, run by
``scripts/mutants.py`` and ``python -m autograder lint-lesson``).

The generator is tested on small cells (fast); one mutant of a real notebook is graded to
show that a change the checks cannot see is reported as a survivor and that one they can
see is killed; and, marked slow, the whole run of the script over every notebook must kill
every mutant that lesson 8 does not list as equivalent, with no grader error.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from autograder.engine import discovery
from autograder.frontends import mutants as engine

ROOT = Path(__file__).resolve().parents[1]
LESSON = discovery.lessons()["lesson8"]


def load_mutants():
    """scripts/mutants.py, imported from its path (scripts/ is not a package)."""
    if "mutants" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mutants", ROOT / "scripts" / "mutants.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["mutants"] = module         # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["mutants"]


CELL = '''def f(x, m, s):
    """A docstring is never mutated."""
    ### BEGIN SOLUTION
    y = (x - m) / s
    assert y.shape[0] > 0, f"empty {x.shape}"
    z = torch.zeros(3, 4)
    w = init(x, mode="fan_out")
    return y.squeeze(-1).mean() + w.t()
    ### END SOLUTION
'''


def changes(cell: str = CELL) -> dict[str, set[tuple[str, str]]]:
    m = engine
    source, region = m.split_solution(cell)
    found: dict[str, set[tuple[str, str]]] = {}
    for mutant in m.cell_mutants(source, region):
        found.setdefault(mutant.kind, set()).add((mutant.before, mutant.after))
        compile(mutant.source, "<mutant>", "exec")      # every mutant is a whole, valid cell
        assert "### BEGIN SOLUTION" not in mutant.source
    return found


def test_generator_makes_every_kind_of_change():
    """Does one small cell give operator, constant, axis, argument, keyword, method,
    parameter and deletion mutants, each the expected one-line change?"""
    found = changes()
    ret, z, w = "return y.squeeze(-1).mean() + w.t()", "z = torch.zeros(3, 4)", "w = init(x, mode='fan_out')"
    assert ("y = (x - m) / s", "y = (x + m) / s") in found["operator"]
    assert ("y = (x - m) / s", "y = (x - m) * s") in found["operator"]
    assert ("assert y.shape[0] > 0, f'empty {x.shape}'",
            "assert y.shape[0] >= 0, f'empty {x.shape}'") in found["operator"]
    assert (z, "z = torch.zeros(4, 4)") in found["constant"]
    assert (w, "w = init(x, mode='fan_in')") in found["constant"]
    assert (ret, ret.replace("squeeze(-1)", "squeeze(0)")) in found["axis"]
    assert (ret, ret.replace("squeeze(-1)", "squeeze(1)")) in found["axis"]
    assert (z, "z = torch.zeros(4, 3)") in found["argument"]
    assert ("y = (x - m) / s", "y = (m - x) / s") in found["argument"]
    assert (ret, ret.replace("squeeze(-1)", "squeeze()")) in found["argument"]
    assert (w, "w = init(x)") in found["keyword"]
    assert (ret, ret.replace(".mean()", ".std()")) in found["method"]
    assert (z, "z = torch.ones(3, 4)") in found["method"]
    assert (ret, ret.replace("w.t()", "w")) in found["method"]
    assert ("def f(x, m, s):", "def f(m, x, s):") in found["parameter"]
    assert ("y = (x - m) / s", "pass") in found["deletion"]
    assert "variable" not in found


LOOP = '''def experiment(n_samples=100, mode="fan_in", *, quiet=False):
    ### BEGIN SOLUTION
    wins = 0
    for i in range(n_samples):
        a, b = build(), build()
        x = step(a, i)
        wins += score(a, b, x)
    return wins
    ### END SOLUTION
'''


def test_defaults_and_fresh_objects_in_loops_are_mutated():
    """Is each parameter default changed (n -> n + 1, 0, -n; the mode string; the boolean),
    and is a statement that builds fresh objects in a loop deleted (graded with the
    demonstration cells kept, so its names fall back on what earlier cells left) or built
    once before the loop, while statements that read the loop's names are not?"""
    m = load_mutants()
    source, region = m.split_solution(LOOP)
    mutants = m.cell_mutants(source, region)
    for x in mutants:
        compile(x.source, "<mutant>", "exec")
    found = {x.kind: set() for x in mutants}
    for x in mutants:
        found[x.kind].add(x.change)
    assert found["default"] == {"n_samples=100 -> n_samples=101", "n_samples=100 -> n_samples=0",
                                "n_samples=100 -> n_samples=-100", "mode='fan_in' -> mode='fan_out'",
                                "quiet=False -> quiet=True"}
    fresh = [x for x in mutants if x.kind == "fresh"]
    assert sorted(x.change for x in fresh) == sorted([m.FRESH_DELETED, m.FRESH_HOISTED])
    assert all("x = step(a, i)" in x.source for x in fresh)            # it reads the loop variable
    deleted = next(x for x in fresh if x.change == m.FRESH_DELETED)
    hoisted = next(x for x in fresh if x.change == m.FRESH_HOISTED)
    assert deleted.demos and not hoisted.demos
    assert "build()" not in deleted.source
    assert hoisted.source.index("a, b = (build(), build())") < hoisted.source.index("for i in")


def test_variables_are_replaced_only_when_asked():
    """With variables=True, is each variable read replaced by another of its own scope
    (a parameter or a name the function assigns, or another attribute the class sets on
    self), and never by a name from elsewhere?"""
    m = engine
    source, region = m.split_solution(CELL)
    found = {(x.before, x.after) for x in m.cell_mutants(source, region, variables=True)
             if x.kind == "variable"}
    assert ("y = (x - m) / s", "y = (s - m) / s") in found
    assert ("return y.squeeze(-1).mean() + w.t()", "return y.squeeze(-1).mean() + z.t()") in found
    assert not any("torch" in after.replace("torch.zeros", "") for _, after in found)
    layer = ("class L:\n    def __call__(self, inp):\n        ### BEGIN SOLUTION\n"
             "        self.inp = inp\n        self.out = inp * 2\n        return self.out\n"
             "        ### END SOLUTION\n")
    source, region = m.split_solution(layer)
    found = {(x.before, x.after) for x in m.cell_mutants(source, region, variables=True)
             if x.kind == "variable"}
    assert ("return self.out", "return self.inp") in found


def test_generator_leaves_the_scaffold_alone():
    """Are the lines outside the solution markers (and docstrings, f-strings and axis
    literals as plain numbers) left unmutated, and are mutants unique?"""
    m = engine
    source, region = m.split_solution(CELL)
    mutants = m.cell_mutants(source, region)
    assert len({x.source for x in mutants}) == len(mutants)
    for x in mutants:
        assert "A docstring is never mutated." in x.source
        if x.before.startswith("assert") and x.kind != "deletion":
            assert x.after.endswith(", f'empty {x.shape}'"), x
        assert not (x.kind == "constant" and "squeeze(" in x.before and "squeeze(-1)" not in x.after)
    # without a region the def line is part of the code, so nothing outside it changes
    outside = m.cell_mutants("def g(a, b):\n    return a - b\n", {2})
    assert {x.kind for x in outside} >= {"operator", "parameter", "deletion"}


def test_every_listed_equivalent_mutant_has_a_reason():
    """Does every equivalent mutant lesson 8 lists name a notebook and an exercise of the
    lesson, and say why?"""
    from autograder.engine.registry import EXERCISES
    listed = engine.equivalents(LESSON)
    assert len(LESSON.equivalent_mutants) >= 30 and LESSON.equivalent_variable_mutants
    for (notebook, grade_id, before, after), reason in listed.items():
        assert grade_id in EXERCISES and EXERCISES[grade_id].notebook == notebook
        assert EXERCISES[grade_id].lesson == "lesson8"
        assert before and after and before != after
        assert len(reason) > 20 and "\n" not in reason


def _mutant(notebook: str, grade_id: str, before: str, after: str):
    m = engine
    nb = m.solution_notebooks(ROOT, "lesson8", [notebook])[notebook]
    found = [x for x in m.notebook_mutants(notebook, nb, [grade_id]) if (x.before, x.after) == (before, after)]
    assert len(found) == 1, f"no single mutant {before!r} -> {after!r}"
    return found[0]


def test_an_invisible_change_is_reported_as_a_survivor(tmp_path):
    """Is a mutant the checks cannot tell apart (here: zeros -> ones in a version that
    overwrites every entry) reported as a survivor once it is not listed as equivalent,
    and as equivalent while it is?"""
    from autograder.engine.sandbox import Limits
    m = engine
    mutant = _mutant("01_matmul", "matmul_elementwise", "c = torch.zeros(ar, bc)", "c = torch.ones(ar, bc)")
    nb = m.solution_notebooks(ROOT, "lesson8", ["01_matmul"])["01_matmul"]
    base = m.base_notebook(nb, tmp_path, "01_matmul")
    limits = Limits(cell_timeout=m.CELL_TIMEOUT, notebook_timeout=m.NOTEBOOK_TIMEOUT)
    assert m.grade_mutant(mutant, base, limits, m.equivalents(LESSON)).status == "equivalent"
    graded = m.grade_mutant(mutant, base, limits, {})
    assert graded.status == "survived", graded
    assert "mutation score: 0.0%" in m.summary([graded], [])


def test_a_visible_change_is_killed_by_its_exercise(tmp_path):
    """Is a mutant that breaks the exercise (the running total of three loops assigned
    instead of added) killed, by that exercise, with its message; and were it listed as
    equivalent, would the run say that a listed equivalent mutant failed?"""
    from autograder.engine.sandbox import Limits
    m = engine
    mutant = _mutant("01_matmul", "matmul_loops", "c[i, j] += a[i, k] * b[k, j]", "c[i, j] = a[i, k] * b[k, j]")
    nb = m.solution_notebooks(ROOT, "lesson8", ["01_matmul"])["01_matmul"]
    base = m.base_notebook(nb, tmp_path, "01_matmul")
    limits = Limits(cell_timeout=m.CELL_TIMEOUT, notebook_timeout=m.NOTEBOOK_TIMEOUT)
    graded = m.grade_mutant(mutant, base, limits, m.equivalents(LESSON))
    assert (graded.status, graded.by) == ("killed", "matmul_loops"), graded
    assert "last product" in graded.message
    graded = m.grade_mutant(mutant, base, limits, {mutant.key: "listed by mistake, for this test"})
    assert graded.status == "equivalent, killed"
    assert "listed as equivalent but killed" in m.summary([graded], [])


@pytest.mark.slow
@pytest.mark.long   # the whole mutation run (minutes): its own CI step
def test_every_non_equivalent_mutant_is_killed(tmp_path):
    """Does every mutant of every notebook's solutions that is not listed as equivalent
    fail at least one exercise, does every listed one pass, with no grader error and no
    stale equivalent entry? (Through scripts/mutants.py, the command the README shows.)"""
    m = load_mutants()
    out = tmp_path / "mutants.json"
    status = m.main(["--json", str(out)])
    results = json.loads(out.read_text())
    survivors = [r for r in results if r["status"] == "survived"]
    errors = [r for r in results if r["status"] == "grader error"]
    assert not errors, errors
    wrongly_listed = [r for r in results if r["status"] == "equivalent, killed"]
    assert not wrongly_listed, wrongly_listed
    assert not survivors, "\n".join(f"{r['notebook']} {r['grade_id']}: {r['before']} -> {r['after']}"
                                    for r in survivors)
    assert status == 0
    notebooks = {r["notebook"] for r in results}
    assert {"01_matmul", "02_fully_connected", "03_backward", "04_init_in_pytorch"} <= notebooks
