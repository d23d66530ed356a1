"""The from-scratch rule at run time (autograder.engine.guard): whatever the spelling, a banned
operator called from an exercise's own code fails that exercise, with the rule's message.

The static rule reads only the solution cell's source, so every submission here is
written to get past it: the banned operator is reached through ``importlib``, ``getattr``
with a built string, ``eval``, ``__import__``, an alias made in an earlier cell, or a
helper function of an earlier (ungraded) cell. Without the guard each of them gets full
marks; with it the cheated exercise, and only that one, fails with "uses `X` (called at
line N), which this exercise asks you to build yourself" and the rule's hint.
"""

from __future__ import annotations

import json
import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import autograder
from autograder.engine import registry as checks
from autograder.engine import guard
from autograder.engine.executor import Executor
from autograder.engine.grade import grade_notebook

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions" / "lesson8"
RULE_PHRASE = "which this exercise asks you to build yourself"
SPELLINGS = ("importlib", "getattr", "eval", "__import__", "alias", "helper")

_SHAPES = ('    ar, ac = a.shape\n    br, bc = b.shape\n'
           '    assert ac == br, f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}"\n')


def _product(fn: str, body: str, head: str = "") -> str:
    return f"{head}def {fn}(a, b):\n{_SHAPES}    return {body}\n"


# notebook -> spelling -> (exercise, earlier ungraded cell or None, its solution cell, banned name)
CHEATS = {
    "01_matmul": {
        "importlib": ("matmul_loops", None, _product(
            "matmul_loops", "importlib.import_module('torch.linalg').multi_dot([a, b])", "import importlib\n"),
            "torch.linalg.multi_dot"),
        "getattr": ("matmul_elementwise", None, _product(
            "matmul_elementwise", "getattr(torch, 'mat' + 'mul')(a, b)"), "torch.matmul"),
        "eval": ("matmul_broadcast", None, _product("matmul_broadcast", "eval('a @ b')"), "@"),
        "__import__": ("matmul_loops", None, _product(
            "matmul_loops", "getattr(__import__('operator'), 'mat' + 'mul')(a, b)"), "operator.matmul"),
        "alias": ("matmul_einsum", "product = torch.mm\n", _product(
            "matmul_einsum", "torch.einsum('ij->ij', product(a, b))"), "torch.mm"),
        "helper": ("matmul_broadcast", "def times(a, b):\n    return a @ b\n",
                   _product("matmul_broadcast", "times(a, b)"), "@"),
    },
    "02_fully_connected": {
        "importlib": ("lin", None, "import importlib\ndef lin(x, w, b):\n"
                      "    return importlib.import_module('torch.nn.functional').linear(x, w.t(), b)\n",
                      "torch.nn.functional.linear"),
        "getattr": ("relu", None, "def relu(x):\n    return getattr(torch, 're' + 'lu')(x)\n", "torch.relu"),
        "eval": ("mse", None, "def mse(output, targ):\n"
                 "    return eval('torch.nn.functional.mse_loss(output.squeeze(-1), targ)')\n",
                 "torch.nn.functional.mse_loss"),
        "__import__": ("init_kaiming", None, "def init_kaiming(n_in, n_out):\n"
                       "    init = __import__('torch.nn.init', fromlist=['init'])\n"
                       "    return init.kaiming_normal_(torch.empty(n_in, n_out), mode='fan_out')\n",
                       "torch.nn.init.kaiming_normal_"),
        "alias": ("shifted_relu", "positive_part = torch.relu\n",
                  "def shifted_relu(x):\n    return positive_part(x) - 0.5\n", "torch.relu"),
        "helper": ("model", "def layer(x, w, b):\n    return torch.nn.functional.linear(x, w.t(), b)\n",
                   "def model(xb):\n    return lin(relu(layer(xb, w1, b1)), w2, b2)\n",
                   "torch.nn.functional.linear"),
    },
    "03_backward": {
        "importlib": ("mse_grad", None, textwrap.dedent("""\
            import importlib
            def mse_grad(inp, targ):
                x = inp.detach().clone()
                setattr(x, 'requires' + '_grad', True)
                loss = (x.squeeze(-1) - targ).pow(2).mean()
                importlib.import_module('torch.autograd').backward(loss)
                inp.g = getattr(x, 'gr' + 'ad')
            """), "torch.autograd.backward"),
        "getattr": ("relu_grad", None, textwrap.dedent("""\
            def relu_grad(inp, out):
                x = inp.detach().clone()
                setattr(x, 'requires' + '_grad', True)
                getattr(x.clamp_min(0.), 'back' + 'ward')(out.g)
                inp.g = getattr(x, 'gr' + 'ad')
            """), ".backward()"),
        "eval": ("lin_grad", None, textwrap.dedent("""\
            def lin_grad(inp, out, w, b):
                leaves = [t.detach().clone() for t in (inp, w, b)]
                for t in leaves:
                    setattr(t, 'requires' + '_grad', True)
                x, ww, bb = leaves
                inp.g, w.g, b.g = eval('torch.autograd.grad(x @ ww + bb, (x, ww, bb), out.g)')
            """), "torch.autograd.grad"),
        "__import__": ("Mse_module", None, textwrap.dedent("""\
            class MseModule(Module):
                def forward(self, inp, targ):
                    return (inp.squeeze(-1) - targ).pow(2).mean()

                def bwd(self, out, inp, targ):
                    x = inp.detach().clone()
                    setattr(x, 'requires' + '_grad', True)
                    loss = (x.squeeze(-1) - targ).pow(2).mean()
                    autograd = __import__('torch.autograd', fromlist=['grad'])
                    inp.g, = getattr(autograd, 'gr' + 'ad')(loss, x)
            """), "torch.autograd.grad"),
        "alias": ("Relu", "vjp = torch.autograd.grad\n", textwrap.dedent("""\
            class Relu():
                def __call__(self, inp):
                    self.inp = inp
                    self.out = inp.clamp_min(0.)
                    return self.out

                def backward(self):
                    x = self.inp.detach().clone()
                    setattr(x, 'requires' + '_grad', True)
                    self.inp.g, = vjp(x.clamp_min(0.), x, self.out.g)
            """), "torch.autograd.grad"),
        "helper": ("Lin", textwrap.dedent("""\
            def gradients(f, tensors, g):
                leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
                return torch.autograd.grad(f(*leaves), leaves, g)
            """), textwrap.dedent("""\
            class Lin():
                def __init__(self, w, b):
                    self.w, self.b = w, b

                def __call__(self, inp):
                    self.inp = inp
                    self.out = inp @ self.w + self.b
                    return self.out

                def backward(self):
                    grads = gradients(lambda x, w, b: x @ w + b, (self.inp, self.w, self.b), self.out.g)
                    self.inp.g, self.w.g, self.b.g = grads
            """), "torch.autograd.grad"),
    },
    "04_init_in_pytorch": {
        "importlib": ("kaiming_uniform", None, textwrap.dedent("""\
            import importlib
            def kaiming_uniform_(w, a=0., mode="fan_in"):
                return importlib.import_module('torch.nn.' + 'init').kaiming_uniform_(w, a=a, mode=mode)
            """), "torch.nn.init.kaiming_uniform_"),
        "getattr": ("gain", None, "def gain(a):\n"
                    "    return getattr(torch.nn, 'in' + 'it').calculate_gain('leaky_relu', a)\n",
                    "torch.nn.init.calculate_gain"),
        "eval": ("fans", None, textwrap.dedent("""\
            def fans(w):
                if w.dim() < 2:
                    raise ValueError(f"fans need a weight with at least 2 dimensions, got {tuple(w.shape)}")
                return eval('torch.nn.init._calculate_fan_in_and_fan_out(w)')
            """), "torch.nn.init._calculate_fan_in_and_fan_out"),
        "__import__": ("kaiming_uniform", None, textwrap.dedent("""\
            def kaiming_uniform_(w, a=0., mode="fan_in"):
                return __import__('torch.nn.init', fromlist=['init']).kaiming_uniform_(w, a=a, mode=mode)
            """), "torch.nn.init.kaiming_uniform_"),
        "alias": ("kaiming_uniform", "fill = torch.nn.init.kaiming_uniform_\n",
                  'def kaiming_uniform_(w, a=0., mode="fan_in"):\n    return fill(w, a=a, mode=mode)\n',
                  "torch.nn.init.kaiming_uniform_"),
        "helper": ("fans", "def fan_pair(w):\n    return torch.nn.init._calculate_fan_in_and_fan_out(w)\n",
                   textwrap.dedent("""\
            def fans(w):
                if w.dim() < 2:
                    raise ValueError(f"fans need a weight with at least 2 dimensions, got {tuple(w.shape)}")
                return fan_pair(w)
            """), "torch.nn.init._calculate_fan_in_and_fan_out"),
    },
}

# A correct 04 whose code builds layers through nn.Conv2d (whose reset_parameters calls
# init.kaiming_uniform_) in a solution cell, and whose ungraded cells call torch.nn.init.
CONV_KAIMING = textwrap.dedent("""\
    def kaiming_uniform_(w, a=0., mode="fan_in"):
        fan_in, fan_out = fans(w)
        fan = fan_in if mode == "fan_in" else fan_out
        bound = gain(a) * math.sqrt(3 / fan)
        with torch.no_grad():
            w.uniform_(-bound, bound)
        return w

    probe = nn.Conv2d(8, 16, 3)                 # PyTorch's own init runs here, inside torch
    kaiming_uniform_(probe.weight)
    """)
DEMO = ("w_demo = torch.nn.init.kaiming_uniform_(torch.empty(16, 8, 3, 3))\n"
        "kaiming_uniform_(torch.nn.init.kaiming_uniform_(torch.empty(16, 8, 3, 3)))\n")


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def submission(notebook: str, exercise: str, source: str, earlier: str | None, dest: Path,
               after: str | None = None) -> Path:
    """The reference solution with ``exercise``'s cell replaced by ``source``; ``earlier``
    becomes an ungraded cell just before it, ``after`` one just after it."""
    nb = json.loads((SOLUTIONS / f"{notebook}.ipynb").read_text())

    def ungraded(text: str, where: str) -> dict:
        return {"cell_type": "code", "id": f"{exercise}-{where}", "metadata": {}, "source": text,
                "outputs": [], "execution_count": None}

    cells = []
    for cell in nb["cells"]:
        if _grade_id(cell) == exercise:
            cells += [ungraded(earlier, "earlier")] if earlier else []
            cells.append({**cell, "source": source})
            cells += [ungraded(after, "after")] if after else []
        else:
            cells.append(cell)
    assert any(_grade_id(c) == exercise for c in cells), exercise
    dest.write_text(json.dumps({**nb, "cells": cells}))
    return dest


CASES = [(nb, spelling) for nb in CHEATS for spelling in SPELLINGS]


def test_every_notebook_with_a_rule_has_every_spelling():
    """Does every notebook whose exercises have a from-scratch rule get all six spellings,
    each on an exercise that has a rule?"""
    with_rules = {ex.notebook for ex in checks.EXERCISES.values() if ex.rule is not None
                  and ex.lesson == "lesson8"}
    # 05_cross_entropy wires its losses and softmaxes itself while the student's code runs
    # (autograder/lessons/lesson8/cross_entropy.py); tests/test_cross_entropy.py proves it.
    assert set(CHEATS) == with_rules - {"05_cross_entropy"}
    for notebook, table in CHEATS.items():
        assert set(table) == set(SPELLINGS), notebook
        for exercise, *_ in table.values():
            assert checks.EXERCISES[exercise].rule is not None, exercise


# ----------------------------------------------------------------------------- the guard itself, in-process
RULE = {"prefixes": ["torch.nn.init"], "methods": [], "allowed": []}
RELU_BEFORE = vars(torch.Tensor).get("relu")


def _watch(cell: str = "<cell kaiming_uniform>", stops=("<cell fans>",), source=None) -> dict:
    return {"rule": RULE, "cells": [cell], "stops": list(stops), "source": source, "filename": cell}


def test_guard_sees_the_cells_own_calls_and_not_pytorchs():
    """In an executor (as in a worker), is a banned call from the exercise's function seen
    through a helper of another cell, while PyTorch's own call inside nn.Conv2d, a call by
    the grader's snippet, and a call from another exercise's cell are not?"""
    ex = Executor()
    ex.run_cell("import torch\nfrom torch import nn\n"
                "def helper(w):\n    return torch.nn.init.kaiming_uniform_(w)\n", "1")
    ex.run_cell("def fans(w):\n    return torch.nn.init._calculate_fan_in_and_fan_out(w)\n", "fans")
    ex.run_cell("def kaiming_uniform_(w, a=0., mode='fan_in'):\n    return helper(w)\n"
                "def builds_layers():\n    return nn.Conv2d(3, 4, 3)\n"
                "def uses_fans(w):\n    return fans(w)\n", "kaiming_uniform", watch=_watch())
    w = {"w": torch.empty(4, 4)}
    reply, _ = ex.evaluate("result = kaiming_uniform_(w)", w, {}, ["result"], watch=_watch())
    assert reply["violations"] == [{"name": "torch.nn.init.kaiming_uniform_", "line": 2}]
    for code in ("result = builds_layers()", "result = torch.nn.init.kaiming_uniform_(w)",
                 "result = uses_fans(w)"):
        reply, _ = ex.evaluate(code, w, {}, ["result"], watch=_watch())
        assert reply["status"] == "ok" and reply["violations"] == [], code


def test_guard_puts_everything_back():
    """After a watched run, are torch's functions and the notebook's own names exactly the
    objects they were (the wrappers live only while the exercise's code runs)?"""
    ex = Executor()
    ex.run_cell("import torch\nalias = torch.nn.init.kaiming_uniform_\nkept = {'f': [alias]}\n"
                "def dflt(w, f=torch.nn.init.kaiming_uniform_):\n    return f(w)\n", "1")
    original = torch.nn.init.kaiming_uniform_
    ex.run_cell("def kaiming_uniform_(w):\n    return kept['f'][0](dflt(w))\n", "kaiming_uniform", watch=_watch())
    reply, _ = ex.evaluate("result = kaiming_uniform_(w)", {"w": torch.empty(3, 3)}, {}, ["result"],
                           watch=_watch())
    assert reply["violations"] == [{"name": "torch.nn.init.kaiming_uniform_", "line": 2}]
    assert torch.nn.init.kaiming_uniform_ is original
    assert ex.ns["alias"] is original and ex.ns["kept"]["f"][0] is original
    assert ex.ns["dflt"].__defaults__ == (original,)
    assert guard._ACTIVE is None


def test_guard_watches_a_cell_rerun_as_the_cells_own_code():
    """When a check re-runs the cell's source in its snippet (class exercises, params), is
    that part run as the cell's code, so that its banned calls count?"""
    ex = Executor()
    ex.run_cell("import torch\n", "1")
    source = "def kaiming_uniform_(w):\n    return getattr(torch.nn, 'in' + 'it').kaiming_uniform_(w)\n"
    reply, _ = ex.evaluate(source + "\nresult = kaiming_uniform_(w)", {"w": torch.empty(3, 3)}, {},
                           ["result"], watch=_watch(source=source))
    assert reply["violations"] == [{"name": "torch.nn.init.kaiming_uniform_", "line": 2}]


def test_guard_watches_the_cells_top_level_code_and_stored_references():
    """Is a banned call in the cell's top-level code seen when the notebook runs it, and is
    one kept as a class attribute, in a closure or in a functools.partial seen too, while
    the class still works as it did (a builtin on a class is not bound)?"""
    ex = Executor()
    ex.run_cell("import functools, torch\n"
                "class Layer:\n    act = torch.relu\n"
                "def make():\n    f = torch.relu\n    return lambda x: f(x)\n"
                "closure, part = make(), functools.partial(torch.relu)\n", "1")
    rule = {"prefixes": ["torch.relu"], "methods": [], "allowed": []}
    spec = {"rule": rule, "cells": ["<cell relu>"], "stops": []}
    run = ex.run_cell("probe = getattr(torch, 're' + 'lu')(torch.ones(2))\n", "relu", watch=spec)
    assert run["status"] == "ok" and run["violations"] == [{"name": "torch.relu", "line": 1}]
    for call in ("Layer().act(x)", "closure(x)", "part(x)"):
        ex.run_cell(f"def relu(x):\n    return {call}\n", "relu")
        reply, _ = ex.evaluate("result = relu(x)", {"x": -torch.ones(2)}, {}, ["result"], watch=spec)
        assert reply["status"] == "ok", reply["error"]
        assert reply["violations"] == [{"name": "torch.relu", "line": 2}], call
    assert ex.ns["Layer"].__dict__["act"] is torch.relu


def test_tensor_methods_and_the_matmul_operator_are_watched():
    """Are banned Tensor methods (.relu(), and @ as Tensor.__matmul__) seen, bound and
    stored earlier too, and only while watched?"""
    ex = Executor()
    ex.run_cell("import torch\nx = torch.randn(3, 3)\nbound = x.relu\n", "1")
    rule = {"prefixes": ["torch.relu"], "methods": ["relu", "__matmul__", "__rmatmul__"], "allowed": []}
    spec = {"rule": rule, "cells": ["<cell f>"], "stops": []}
    ex.run_cell("def f(a):\n    return eval('a @ a'), getattr(a, 're' + 'lu')(), bound()\n", "f")
    reply, _ = ex.evaluate("result = f(x)", {}, {}, ["result"], watch=spec)
    assert {v["name"] for v in reply["violations"]} == {"@", ".relu()"}
    reply, _ = ex.evaluate("result = f(x)", {}, {}, ["result"])
    assert "violations" not in reply and vars(torch.Tensor).get("relu") is RELU_BEFORE


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_check_in_a_kernel_namespace_fails_every_spelling(spelling):
    """Does check() in a student's kernel (LocalSubmission: the student's own globals and
    cell files) fail kaiming_uniform with the rule's message for every spelling of 04?"""
    exercise, earlier, source, name = CHEATS["04_init_in_pytorch"][spelling]
    cells = ["import math, torch\nfrom torch import nn\n", earlier or "", source]
    ns = {"__name__": "__main__", "check": autograder.check, "In": ["", *cells]}
    for i, cell in enumerate(cells):        # each cell compiled from its own file, as IPython does
        exec(compile(cell, f"<ipykernel cell {i}>", "exec"), ns)
    with pytest.raises(autograder.CheckFailed) as info:
        exec(f'check("{exercise}")', ns)
    assert f"`{name}` (called at line" in str(info.value) and RULE_PHRASE in str(info.value)


# ----------------------------------------------------------------------------- graded notebooks
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every cheat, and the correct 04 that builds layers with nn.Conv2d, graded two at a time."""
    folder = tmp_path_factory.mktemp("runtime-rule")
    paths = {}
    for notebook, spelling in CASES:
        exercise, earlier, source, _ = CHEATS[notebook][spelling]
        paths[notebook, spelling] = submission(notebook, exercise, source, earlier,
                                               folder / f"{notebook}-fail-{exercise}-{spelling}.ipynb")
    paths["conv"] = submission("04_init_in_pytorch", "kaiming_uniform", CONV_KAIMING, None,
                               folder / "04_init_in_pytorch-pass-conv2d-and-demo.ipynb", after=DEMO)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {key: pool.submit(grade_notebook, path) for key, path in paths.items()}
        yield {key: future.result() for key, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("notebook,spelling", CASES, ids=[f"{nb}-{s}" for nb, s in CASES])
def test_each_spelling_fails_its_exercise_with_the_rule_message(graded, notebook, spelling):
    """Does a banned operator reached through this spelling fail its exercise, and only it,
    with the rule's message (the name, the line of the call) and the rule's hint?"""
    exercise, _, _, name = CHEATS[notebook][spelling]
    report = graded[notebook, spelling]
    assert report.grader_failure is None and report.error is None
    failed = {e.name: e for e in report.exercises if not e.passed}
    assert set(failed) == {exercise}, {k: e.message for k, e in failed.items()}
    result = failed[exercise]
    assert not result.grader_error and result.score == 0
    first = result.message.splitlines()[0]
    assert first.startswith(f"{exercise} · {checks.EXERCISES[exercise].title}: uses "), first
    assert f"`{name}` (called at line" in first and RULE_PHRASE in first, first
    assert checks.EXERCISES[exercise].rule_hint[:60] in result.message


@pytest.mark.slow
def test_pytorchs_own_init_and_demonstration_cells_are_not_the_students(graded):
    """Does a correct 04 pass in full when its solution cell builds a layer with nn.Conv2d
    (PyTorch's reset_parameters calls init.kaiming_uniform_) and an ungraded cell calls
    torch.nn.init.kaiming_uniform_ itself, and the student's function on its result?"""
    report = graded["conv"]
    assert [e.message for e in report.exercises if not e.passed] == []
    assert report.score == report.max_score == 8


# ----------------------------------------------------------------------------- a real kernel
@pytest.mark.slow
def test_real_kernel_check_fails_an_alias_from_an_earlier_cell(tmp_path, monkeypatch):
    """In a real Jupyter kernel, does check("kaiming_uniform") fail a kaiming_uniform_ that
    calls an alias of torch.nn.init.kaiming_uniform_ made in an earlier cell, with the same
    first line as the command line's verdict, while check("fans") passes?"""
    import nbformat
    from nbclient import NotebookClient
    exercise, earlier, source, name = CHEATS["04_init_in_pytorch"]["alias"]
    path = submission("04_init_in_pytorch", exercise, source, earlier, tmp_path / "04_init_in_pytorch.ipynb")
    nb = json.loads(path.read_text())
    end = next(i for i, c in enumerate(nb["cells"]) if _grade_id(c) == f"test_{exercise}")
    nb["cells"] = nb["cells"][:end + 1]               # up to the exercise's own test cell
    path.write_text(json.dumps(nb))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    kernel_nb = nbformat.read(path, as_version=4)
    NotebookClient(kernel_nb, kernel_name="python3", timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {_grade_id(c): c.get("outputs", []) for c in kernel_nb.cells if _grade_id(c)}
    assert not [o for o in outputs["test_fans"] if o["output_type"] == "error"]
    [error] = [o for o in outputs[f"test_{exercise}"] if o["output_type"] == "error"]
    assert error["ename"] == "CheckFailed"
    assert f"`{name}` (called at line 2)" in error["evalue"] and RULE_PHRASE in error["evalue"]
    graded = {e.name: e for e in grade_notebook(path).exercises}
    assert error["evalue"].splitlines()[0] == graded[exercise].message.splitlines()[0]
