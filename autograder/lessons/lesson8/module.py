"""Checks for the last refactor of ``03_backward``: a ``Module`` base class, and the layers
and model rebuilt on it (``ReluModule``, ``LinModule``, ``MseModule``, ``ModelModule``).

The base class keeps the bookkeeping: ``__call__(*args)`` stores ``self.args`` and
``self.out = self.forward(*args)``; ``backward()`` calls ``self.bwd(self.out, *self.args)``.
A subclass only says what it computes (``forward``) and how the gradient flows back
(``bwd``). The new classes have names of their own, so the earlier ``Relu``, ``Lin``,
``Mse`` and ``Model`` (and their checks) stay as they were.

As in :mod:`.backward`, every reference gradient comes from autograd in float64, in the
grader's process. Each subclass is re-run with the grader's ``Module`` (and the model
with the grader's layers), so a mistake in the base class is charged to ``Module`` alone.

Each subclass is run whole (``layer(...)`` then ``layer.backward()``, through Module) and
its two methods directly: ``forward`` on a fresh layer, and ``bwd`` on another fresh layer
with the grader's output, so that neither may lean on what the other or Module left on
``self``. The model must be the refactor itself: the grader's ``Module`` records every
``__call__`` and ``backward`` it runs, and a worker-side probe (:data:`_PROBE`) reports
back plain data only: the class names of the objects the model holds, whether each is a
``Module``, and which of them went through ``Module.__call__`` and ``Module.backward``.
"""

from __future__ import annotations

import ast

import torch

from ...authoring import Fail, describe, fail_on_error, parse, require_named_squeeze, require_tensor
from . import lesson
from .backward import (
    NB,
    NO_AUTOGRAD,
    RULE_HINT,
    _autograd,
    _close,
    _error_hint,
    _grad_of,
    _lin_case,
    _mse_case,
    _network,
    _randn,
    _relu_hints,
    _run,
    judge_grad,
    judge_lin,
    judge_model,
    judge_mse_layer,
)

_CLASSES = '''
TRACE = []
class Module():
    def __call__(self, *args):
        TRACE.append(("call", self))
        self.args = args
        self.out = self.forward(*args)
        return self.out
    def forward(self, *args):
        raise NotImplementedError()
    def backward(self):
        TRACE.append(("backward", self))
        self.bwd(self.out, *self.args)
    def bwd(self, out, *args):
        raise NotImplementedError()

class ReluModule(Module):
    def forward(self, inp):
        return inp.clamp_min(0.)
    def bwd(self, out, inp):
        inp.g = (inp > 0).float() * out.g

class LinModule(Module):
    def __init__(self, w, b):
        self.w, self.b = w, b
    def forward(self, inp):
        return inp @ self.w + self.b
    def bwd(self, out, inp):
        inp.g = out.g @ self.w.t()
        self.w.g = inp.t() @ out.g
        self.b.g = out.g.sum(0)

class MseModule(Module):
    def forward(self, inp, targ):
        return (inp.squeeze(-1) - targ).pow(2).mean()
    def bwd(self, out, inp, targ):
        inp.g = 2. * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]
'''
REF = {name: f"(lambda ns: (exec({_CLASSES!r}, ns), ns[{name!r}])[1])({{'torch': torch}})"
       for name in ("Module", "ReluModule", "LinModule", "MseModule")}
# One namespace for the four classes (each REF entry has a Module of its own), with the
# helpers that report on a model in plain data. Installing it rebinds the notebook's names
# for one run only: they are overrides of that run (REF), which the worker restores.
_PROBE = _CLASSES + '''
def install(namespace):
    for name in ("Module", "ReluModule", "LinModule", "MseModule"):
        namespace[name] = globals()[name]
def held(model):
    """(class name, is a Module) of every layer-like object the model keeps in its attributes."""
    found = []
    for value in list(getattr(model, "__dict__", {}).values()):
        items = (list(value.values()) if isinstance(value, dict)
                 else list(value) if isinstance(value, (list, tuple)) else [value])
        for item in items:
            if not isinstance(item, torch.Tensor) and (callable(item) or hasattr(item, "backward")):
                found.append((type(item).__name__, isinstance(item, Module)))
    return found
def traced(model, kind, start=0):
    """The class names of the objects (the model aside) that went through Module's kind."""
    return [type(o).__name__ for k, o in TRACE[start:] if k == kind and o is not model]
install.held, install.traced, install.trace = held, traced, TRACE
'''
PROBE = f"(lambda ns: (exec({_PROBE!r}, ns), ns['install'])[1])({{'torch': torch}})"
ONLY_FORWARD_AND_BWD = {"forward", "bwd", "__init__"}
BWD_ARGS_HINT = ("bwd(out, inp) receives everything it needs: the output (its gradient in out.g) "
                 "and the inputs of the forward pass. Store the gradients on those very tensors.")


def _class_shape(title: str, source: str | None, cls: str, *, subclass: bool = True) -> None:
    """The cell defines ``cls``, as a subclass of Module implementing only forward and bwd."""
    if not source:
        return
    try:
        tree = parse(source)
    except SyntaxError:
        return                          # the cell's own run reports it
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    if not found:
        raise Fail(f"{title}: this cell does not define the class `{cls}`.",
                   hint=f"Keep the name `{cls}`: the checks (and the model) look it up by that name.")
    if not subclass:
        return
    node = found[-1]
    if not any(isinstance(b, ast.Name) and b.id == "Module" for b in node.bases):
        raise Fail(f"{title}: `{cls}` should be a subclass of Module: class {cls}(Module).",
                   hint="Inheriting from Module gives the class its __call__ and backward for free.")
    extra = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.name not in ONLY_FORWARD_AND_BWD]
    if extra:
        raise Fail(f"{title}: `{cls}` defines {', '.join(extra)} itself.",
                   hint="The point of Module is that a layer implements only forward and bwd: "
                        "Module's __call__ keeps the arguments and the output, and its backward "
                        "passes them to bwd.")


# ----------------------------------------------------------------------------- the base class
_TWICE = """
class _Twice(Module):
    def forward(self, x, y):
        return x * 2. + y
    def bwd(self, out, x, y):
        x.g = 2. * out.g
        y.g = out.g * 1.
m = _Twice()
result = m(x, y)
"""
_KEPT = """
has_args, has_out = hasattr(m, 'args'), hasattr(m, 'out')
args_same = has_args and len(m.args) == 2 and m.args[0] is x and m.args[1] is y
out_same = has_out and m.out is result
"""


@lesson.exercise(NB, "Module", 2, "Module", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def module(sub, *, seed: int = 900) -> None:
    title = "Module: out = layer(x, y), then layer.backward(), for a layer whose forward is 2x + y"
    x, y, g = _randn(8, 5, seed=seed), _randn(8, 5, seed=seed + 1), _randn(8, 5, seed=seed + 2)
    ev = sub.evaluate(_TWICE + _KEPT, inputs={"x": x, "y": y},
                      outputs=("result", "has_args", "has_out", "args_same", "out_same"))
    fail_on_error(title, ev, ("Module",), _module_error_hint)
    v = ev.values
    result = v.get("result")
    if result is None:
        raise Fail(f"{title}: layer(x, y) returned None.",
                   hint="__call__ should return the output it computed (and kept as self.out).")
    judge_grad(title, "the output of layer(x, y)", require_tensor(result, f"{title}: layer(x, y)"),
               2 * x.double() + y.double(), [(x.double() * 2, "Pass every argument on to forward: "
                                                              "self.forward(*args).")])
    if v.get("has_args") is not True:
        raise Fail(f"{title}: after the call, self.args was not set.",
                   hint="__call__ has to keep its arguments, self.args = args: backward passes them "
                        "on to bwd, which needs the inputs to compute their gradients.")
    if v.get("args_same") is not True:
        raise Fail(f"{title}: self.args should hold the very arguments of the call, in order: (x, y).",
                   hint="Keep the tuple of arguments as it came: self.args = args. The gradients are "
                        "stored on those very tensors.")
    if v.get("has_out") is not True or v.get("out_same") is not True:
        raise Fail(f"{title}: self.out should be the very tensor that layer(x, y) returned.",
                   hint="The next layer stores the gradient on the tensor it received (out.g), and "
                        "backward reads it from self.out: compute the output once, keep it as "
                        "self.out and return that same tensor.")
    ev = sub.evaluate(_TWICE + "result.g = g\nm.backward()\n", inputs={"x": x, "y": y, "g": g},
                      outputs=("x", "y"))
    fail_on_error(title, ev, ("Module",), _module_error_hint)
    judge_grad(title, "x.g", _grad_of(title, ev.values.get("x"), "x.g",
                                      hint="backward should call self.bwd(self.out, *self.args)."),
               2 * g.double(), [(g.double(), "bwd receives the output first, then the arguments: "
                                             "self.bwd(self.out, *self.args).")])
    judge_grad(title, "y.g", _grad_of(title, ev.values.get("y"), "y.g"), g.double())


def _module_error_hint(error: dict) -> str:
    ename, evalue = error.get("ename", ""), str(error.get("evalue", ""))
    if ename == "TypeError" and "positional argument" in evalue:
        return ("forward receives the arguments of the call; bwd receives the output first, then "
                "the same arguments: Module.backward calls self.bwd(self.out, *self.args), and a "
                "layer defines bwd(self, out, inp).")
    if ename == "AttributeError" and "object has no attribute" in evalue and not evalue.endswith("'g'"):
        return ("Module keeps the arguments (self.args) and the output (self.out); a layer's forward "
                "and bwd receive what they need as arguments (bwd(self, out, inp)), so use those "
                "rather than attributes such as self.inp.")
    return _error_hint(ename, evalue)


def _subclass_run(sub, title: str, grade_id: str, cls: str, test: str, *, inputs: dict, outputs,
                  definitions: dict | None = None):
    """Re-run the subclass's cell with the grader's Module, then the test code."""
    source = sub.source(grade_id, cls) or ""
    _class_shape(title, source, cls)
    ev = sub.evaluate(source + "\n" + test, inputs=inputs, outputs=outputs,
                      definitions={"Module": REF["Module"], **(definitions or {})})
    fail_on_error(title, ev, (cls,), _module_error_hint)
    return ev


# ----------------------------------------------------------------------------- the layers
def _direct_titles(cls: str, make: str, args: str) -> tuple[str, str]:
    """Titles of the two direct calls: forward on a fresh layer, bwd on another fresh one."""
    return (f"{cls}: {make}.forward({args}), called directly",
            f"{cls}: {make}.bwd(out, {args}), called directly on a fresh layer")


@lesson.exercise(NB, "Relu_module", 1, "ReluModule()", rule=NO_AUTOGRAD, rule_hint=RULE_HINT, defines="ReluModule")
def relu_module(sub, *, seed: int = 1000) -> None:
    title = "ReluModule: out = layer(inp), then layer.backward()"
    inp, out_g = _randn(16, 6, seed=seed), _randn(16, 6, seed=seed + 1)
    ev = _subclass_run(sub, title, "Relu_module", "ReluModule",
                       "layer = ReluModule()\nout = layer(inp)\nout.g = g\nlayer.backward()",
                       inputs={"inp": inp, "g": out_g}, outputs=("out", "inp"))
    out, (expected,) = _autograd(torch.relu, inp, upstream=out_g)
    judge_grad(title, "the output of layer(inp)", require_tensor(ev.values.get("out"), f"{title}: layer(inp)"),
               out, [(inp.double(), "forward should return the ReLU of its input.")])
    judge_grad(title, "inp.g", _grad_of(title, ev.values.get("inp"), "inp.g"), expected,
               _relu_hints(inp, out_g, expected))
    # forward and bwd on their own, with other inputs than the whole run's
    forward, bwd = _direct_titles("ReluModule", "ReluModule()", "inp")
    inp, out_g = _randn(12, 4, seed=seed + 2), _randn(12, 4, seed=seed + 3)
    out, (expected,) = _autograd(torch.relu, inp, upstream=out_g)
    ev = _subclass_run(sub, forward, "Relu_module", "ReluModule", "out = ReluModule().forward(inp)",
                       inputs={"inp": inp}, outputs=("out",))
    judge_grad(forward, "the result of forward(inp)", require_tensor(ev.values.get("out"), f"{forward}: the result"),
               out, [(inp.double(), "forward should return the ReLU of its input.")])
    ev = _subclass_run(sub, bwd, "Relu_module", "ReluModule", "out.g = g\nReluModule().bwd(out, inp)",
                       inputs={"inp": inp, "out": out.float(), "g": out_g}, outputs=("inp",))
    judge_grad(bwd, "inp.g", _grad_of(bwd, ev.values.get("inp"), "inp.g", hint=BWD_ARGS_HINT), expected,
               _relu_hints(inp, out_g, expected))


@lesson.exercise(NB, "Lin_module", 1, "LinModule(w, b)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT, defines="LinModule")
def lin_module(sub, *, seed: int = 1100, case=(24, 7, 5)) -> None:
    title = "LinModule: out = LinModule(w, b)(inp), then layer.backward()"
    inp, w, b, out_g, out, grads = _lin_case(*case, seed)
    ev = _subclass_run(sub, title, "Lin_module", "LinModule",
                       "layer = LinModule(w, b)\nout = layer(inp)\nout.g = g\nlayer.backward()",
                       inputs={"inp": inp, "w": w, "b": b, "g": out_g}, outputs=("out", "inp", "w", "b"))
    judge_grad(title, "the output of layer(inp)", require_tensor(ev.values.get("out"), f"{title}: layer(inp)"),
               out, [(inp.double() @ w.double(), "The bias is missing from the output.")])
    judge_lin(title, ev.values, inp, w, b, out_g, grads)
    forward, bwd = _direct_titles("LinModule", "LinModule(w, b)", "inp")
    inp, w, b, out_g, out, grads = _lin_case(9, 6, 3, seed + 4)
    ev = _subclass_run(sub, forward, "Lin_module", "LinModule", "out = LinModule(w, b).forward(inp)",
                       inputs={"inp": inp, "w": w, "b": b}, outputs=("out",))
    judge_grad(forward, "the result of forward(inp)", require_tensor(ev.values.get("out"), f"{forward}: the result"),
               out, [(inp.double() @ w.double(), "The bias is missing from the output.")])
    ev = _subclass_run(sub, bwd, "Lin_module", "LinModule", "out.g = g\nLinModule(w, b).bwd(out, inp)",
                       inputs={"inp": inp, "w": w, "b": b, "out": out.float(), "g": out_g},
                       outputs=("inp", "w", "b"))
    _grad_of(bwd, ev.values.get("inp"), "inp.g", hint=BWD_ARGS_HINT)
    judge_lin(bwd, ev.values, inp, w, b, out_g, grads)


@lesson.exercise(NB, "Mse_module", 1, "MseModule()", rule=NO_AUTOGRAD, rule_hint=RULE_HINT, defines="MseModule")
def mse_module(sub, *, seed: int = 1200, n: int = 32) -> None:
    title = "MseModule: loss = MseModule()(inp, targ), then loss.backward()"
    inp, targ, value, expected, hints = _mse_case(n, seed)
    ev = _subclass_run(sub, title, "Mse_module", "MseModule",
                       "loss = MseModule()\nresult = loss(inp, targ)\nloss.backward()",
                       inputs={"inp": inp, "targ": targ}, outputs=("result", "inp"))
    judge_mse_layer(title, ev.values, value, expected, hints)
    require_named_squeeze(title, sub.source("Mse_module", "MseModule"))
    forward, bwd = _direct_titles("MseModule", "MseModule()", "inp, targ")
    inp, targ, value, expected, hints = _mse_case(n // 2, seed + 2)
    ev = _subclass_run(sub, forward, "Mse_module", "MseModule", "result = MseModule().forward(inp, targ)",
                       inputs={"inp": inp, "targ": targ}, outputs=("result",))
    got = require_tensor(ev.values.get("result"), f"{forward}: the result")
    if got.numel() != 1 or not _close(got.double().reshape(()), value):
        raise Fail(f"{forward}: forward(inp, targ) should return the mean squared error, one number.",
                   f"Expected {value.item():.6g}; got {describe(got)}.")
    ev = _subclass_run(sub, bwd, "Mse_module", "MseModule", "MseModule().bwd(out, inp, targ)",
                       inputs={"inp": inp, "targ": targ, "out": value.float()}, outputs=("inp",))
    judge_grad(bwd, "inp.g", _grad_of(bwd, ev.values.get("inp"), "inp.g", hint=BWD_ARGS_HINT), expected, hints)


# ----------------------------------------------------------------------------- the model
REFACTOR_HINT = ("This exercise is the Module refactor: build the model from the layers that "
                 "inherit from Module, the ones this section defines, so that Module's __call__ "
                 "and backward do the bookkeeping for every layer.")
_MODEL_FORWARD = """
_probe(globals())
model = ModelModule(w1, b1, w2, b2)
held = _probe.held(model)
_start = len(_probe.trace)
loss = model(inp, targ)
called = _probe.traced(model, "call", _start)
"""
_MODEL_BACKWARD = """
_start = len(_probe.trace)
model.backward()
backed = _probe.traced(model, "backward", _start)
"""


def _names(names: list[str]) -> str:
    """Lin, Relu, Lin and Mse."""
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


@lesson.exercise(NB, "Model_module", 1, "ModelModule(w1, b1, w2, b2)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT,
          defines="ModelModule")
def model_module(sub, *, seed: int = 1300) -> None:
    """Run with the grader's Module and layers (so that only the model is judged), which
    record what goes through Module: the model must hold Module instances, call each of
    them (Module.__call__), back-propagate through each (Module.backward), and get the
    loss and every gradient right."""
    title = "ModelModule: loss = model(inp, targ), then model.backward()"
    inp, targ, params = _network(seed)
    source = sub.source("Model_module", "ModelModule") or ""
    _class_shape(title, source, "ModelModule", subclass=False)
    definitions = {**REF, "_probe": PROBE}
    inputs = {"inp": inp, "targ": targ, **params}
    ev = _run(sub, title, ("ModelModule",), source + _MODEL_FORWARD, inputs=inputs,
              outputs=("held", "called"), definitions=definitions)
    held, called = ev.values.get("held") or [], ev.values.get("called") or []
    strangers = [str(name) for name, is_module in held if is_module is not True]
    if strangers:
        raise Fail(f"{title}: the model holds {_names(strangers)}, which "
                   f"{'is not a subclass' if len(strangers) == 1 else 'are not subclasses'} of Module.",
                   "Those layers keep their own inputs and outputs, so Module's __call__ and backward "
                   "never run: the model skips the refactor.", hint=REFACTOR_HINT)
    if len(called) != 4:
        raise Fail(f"{title}: model(inp, targ) went through Module.__call__ {len(called)} times; "
                   f"expected 4, once for each of the three layers and once for the loss.",
                   f"Called through Module: {_names(called) if called else 'nothing'}.",
                   hint="Call each layer, layer(x), and the loss, self.loss(x, targ): Module.__call__ "
                        "keeps the arguments and the output that backward needs, and calling forward "
                        "directly skips that bookkeeping." if len(called) < 4 else REFACTOR_HINT)
    ev = _run(sub, title, ("ModelModule",), source + _MODEL_FORWARD + _MODEL_BACKWARD, inputs=inputs,
              outputs=("loss", "inp", "backed", *params), definitions=definitions)
    backed = ev.values.get("backed") or []
    if sorted(map(str, backed)) != sorted(map(str, called)):
        raise Fail(f"{title}: model.backward() went through Module.backward for "
                   f"{_names(backed) if backed else 'nothing'}; expected each of {_names(called)} once.",
                   hint="Call each layer's backward() (and the loss's): Module.backward hands bwd the "
                        "output and the arguments it kept, and calling bwd yourself skips that.")
    judge_model(title, ev.values, inp, targ, params)
