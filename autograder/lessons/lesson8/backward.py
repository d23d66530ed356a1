"""Checks for ``03_backward``: gradients by hand, the chain rule, and the layer classes.

Every reference gradient is computed here, in the grader's process, by PyTorch's
autograd in float64 on the grader's own small inputs; the student's code never runs
autograd for us. Gradients come back as the ``.g`` attribute of the tensors the grader
passed in (arguments, or globals installed with ``overrides``). Later exercises run
with the grader's versions of the earlier pieces (``definitions``), so one mistake is
not charged twice.

Tolerance: a float32 answer against a float64 reference, within a relative 1e-4
(about 800 float32 rounding steps, room for the sums over a few dozen rows used here)
and an absolute 1e-5 times the largest entry of the reference.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ...authoring import (
    MISSING,
    Fail,
    Rule,
    call,
    describe,
    difference,
    fail_on_error,
    record_gradient,
    require_named_squeeze,
    require_tensor,
    shape_str,
)
from . import lesson

NB = "03_backward"
NO_AUTOGRAD = Rule(prefixes=("torch.autograd", "torch.nn", "torch.func", "functorch"),
                          attributes=("requires_grad", "requires_grad_", "grad", "retain_grad",
                                      "grad_fn"),
                          calls=("backward",))
RULE_HINT = ("This notebook works out every gradient by hand with the chain rule. PyTorch's "
             "autograd (requires_grad, .grad, torch.autograd) is for comparing with your answers "
             "in the demonstration cells only; compute each gradient with tensor arithmetic and "
             "store it in `.g`.")
RTOL = 1e-4

# The grader's own versions of the earlier pieces, installed while later exercises run.
REF_DEFINITIONS = {
    "lin": "lambda x, w, b: x @ w + b",
    "relu": "lambda x: x.clamp_min(0.)",
    "mse": "lambda output, targ: (output.squeeze(-1) - targ).pow(2).mean()",
    "mse_grad": "lambda inp, targ: setattr(inp, 'g', 2. * (inp.squeeze(-1) - targ).unsqueeze(-1)"
                " / inp.shape[0])",
    "relu_grad": "lambda inp, out: setattr(inp, 'g', (inp > 0).float() * out.g)",
    "lin_grad": "lambda inp, out, w, b: (setattr(inp, 'g', out.g @ w.t()), "
                "setattr(w, 'g', inp.t() @ out.g), setattr(b, 'g', out.g.sum(0))) and None",
}
_CLASSES = '''
class Relu:
    def __call__(self, inp):
        self.inp = inp
        self.out = inp.clamp_min(0.)
        return self.out
    def backward(self):
        self.inp.g = (self.inp > 0).float() * self.out.g

class Lin:
    def __init__(self, w, b):
        self.w, self.b = w, b
    def __call__(self, inp):
        self.inp = inp
        self.out = inp @ self.w + self.b
        return self.out
    def backward(self):
        self.inp.g = self.out.g @ self.w.t()
        self.w.g = self.inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)

class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
        self.out = (inp.squeeze(-1) - targ).pow(2).mean()
        return self.out
    def backward(self):
        self.inp.g = 2. * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]
'''
REF_CLASSES = {name: f"(lambda ns: (exec({_CLASSES!r}, ns), ns[{name!r}])[1])({{'torch': torch}})"
               for name in ("Relu", "Lin", "Mse")}

NOT_SET_HINT = ("Store each gradient as an attribute of the tensor it belongs to (`x.g = ...`); "
                "the function itself does not need to return anything.")
ORDER_HINT = ("A `.g` was read before anything had stored it. The backward pass runs in the "
              "reverse order of the forward pass: first the loss's gradient, then the last layer, "
              "back to the first, and each step reads the `.g` that the step before it stored.")
NETWORK_NOT_SET_HINT = ("After the backward pass every parameter and the input should carry a "
                        "gradient: the pass has to go all the way back to the first layer, "
                        "storing each gradient on the very tensor it belongs to.")
SUM_NOT_MEAN = ("Sum over the rows of the batch, don't average: the 1/n of the mean was already "
                "applied once, by the loss's gradient, and out.g carries it.")


# ----------------------------------------------------------------------------- helpers
def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _autograd(fn, *tensors: torch.Tensor, upstream: torch.Tensor | None = None):
    """``fn(*tensors)`` and the gradient of every argument, by autograd in float64."""
    leaves = [t.detach().double().requires_grad_() for t in tensors]
    out = fn(*leaves)
    out.backward(None if upstream is None else upstream.double())
    return out.detach(), [leaf.grad for leaf in leaves]


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    if got.shape != expected.shape:
        return False
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    atol = 1e-5 * max(scale, 1e-3)
    return bool(torch.allclose(got.double(), expected.double(), rtol=RTOL, atol=atol))


def _grad_of(title: str, tensor, name: str, *, returned=None, hint: str = NOT_SET_HINT) -> torch.Tensor:
    """The ``.g`` that the student's code stored on ``tensor``, or a Fail saying it is missing."""
    g = getattr(tensor, "g", MISSING) if isinstance(tensor, torch.Tensor) else MISSING
    if g is MISSING:
        details = []
        if isinstance(returned, torch.Tensor):
            details.append(f"Your function returned {describe(returned)} instead; the grader "
                           f"reads the gradient from {name}.")
        raise Fail(f"{title}: {name} was not set.", *details, hint=hint)
    return require_tensor(g, f"{title}: {name}")


def judge_grad(title: str, name: str, got, expected: torch.Tensor, hints=()) -> None:
    """Fail unless the gradient ``got`` (the value of ``name``) matches ``expected``.

    ``hints`` are (known wrong answer, hint) pairs, tried in order when it does not.
    """
    got = require_tensor(got, f"{title}: {name}")
    record_gradient(name, got, expected, tolerance=RTOL)     # for the figure, when one is shown
    hints = [(w, h) for w, h in hints if w is not None and not _close(w, expected)]
    if got.shape != expected.shape:
        for wrong, hint in hints:
            if got.shape == wrong.shape and _close(got, wrong):
                raise Fail(f"{title}: {name} has the wrong shape.",
                           f"Expected {shape_str(expected.shape)}, got {shape_str(got.shape)}.", hint=hint)
        raise Fail(f"{title}: {name} has the wrong shape.",
                   f"Expected {shape_str(expected.shape)}, got {describe(got)}.",
                   hint="A gradient always has the shape of the tensor it belongs to.")
    if not got.is_floating_point():
        raise Fail(f"{title}: {name} has an integer dtype.", f"Got {describe(got)}.",
                   hint="Gradients are floats; a comparison such as x > 0 gives booleans: "
                        "convert them with .float() before multiplying.")
    if _close(got, expected):
        return
    lines = difference(got, expected, rtol=RTOL, atol=1e-5 * max(float(expected.abs().max()), 1e-3))
    for wrong, hint in hints:
        if _close(got, wrong):
            raise Fail(f"{title}: {name} has the wrong value.", *lines, hint=hint)
    raise Fail(f"{title}: {name} has the wrong value.", *lines,
               f"Expected {describe(expected.float())}; got {describe(got)}.")


def _run(sub, title: str, names: tuple[str, ...], code: str, *, inputs: dict, outputs: tuple[str, ...],
         overrides: dict | None = None, definitions: dict | None = None):
    """Run a grader snippet that calls the student's ``names``; Fail the way ``call`` does."""
    ev = sub.evaluate(code, inputs=inputs, overrides=overrides, definitions=definitions, outputs=outputs)
    fail_on_error(title, ev, names, lambda error: _error_hint(error.get("ename", ""), error.get("evalue", "")))
    return ev


def _error_hint(ename: str, evalue: str) -> str:
    if ename == "AttributeError" and evalue.endswith("'g'"):
        return ORDER_HINT
    if ename == "AttributeError" and "object has no attribute" in evalue:
        return ("__call__ should keep what backward needs on self: its inputs (self.inp) and the "
                "tensor it returns (self.out).")
    if ename == "RuntimeError" and "cannot be multiplied" in evalue:
        return ("A matrix product with mismatched shapes. Each gradient has the shape of the "
                "tensor it belongs to (inp.g like inp, w.g like w); that tells you which factor "
                "needs a transpose.")
    if ename == "RuntimeError" and "size of tensor" in evalue:
        return "Two operands did not broadcast: write down the shape of each, lining them up from the right."
    return "Read the last line of the traceback, then the line of your code above it."


# ----------------------------------------------------------------------------- the pieces
def _mse_case(n: int, seed: int):
    inp, targ = _randn(n, 1, seed=seed), _randn(n, seed=seed + 1)
    loss, (g, _) = _autograd(lambda i, t: F.mse_loss(i.squeeze(-1), t), inp, targ)
    hints = [(g / 2, "The derivative of x² is 2x: the factor 2 is missing."),
             (g * n, "The loss is a mean over the batch, so its gradient is divided by the "
                     "number of rows."),
             (-g, "The sign is flipped: the loss grows as inp moves away from targ, so the gradient "
                  "is positive where inp is above targ."),
             (g.squeeze(-1), "inp.g must have the shape of inp, (n, 1): put back the unit axis "
                             "that you removed for the subtraction."),
             (2 * (inp.double() - targ.double()) / n,
              f"(n, 1) minus (n,) broadcasts to an n×n matrix (here {n}×{n}): remove inp's unit "
              f"axis before subtracting, then put it back.")]
    return inp, targ, loss, g, hints


@lesson.exercise(NB, "mse_grad", 2, "mse_grad(inp, targ)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def mse_grad(sub, *, seed: int = 100, sizes=(32, 1)) -> None:
    title = "mse_grad(inp, targ)"
    for k, n in enumerate(sizes):
        inp, targ, _, expected, hints = _mse_case(n, seed + 2 * k)
        called = call(sub, title, "mse_grad", inp, targ, hint_on_error=lambda e: _error_hint(
            e.get("ename", ""), e.get("evalue", "")))
        got = _grad_of(title, called.args[0], "inp.g", returned=called.result)
        judge_grad(f"{title} with inp {shape_str(inp.shape)}", "inp.g", got, expected, hints)
    require_named_squeeze(title, sub.source("mse_grad"))


def _relu_hints(inp, out_g, expected):
    mask = (inp > 0).double()
    return [(mask, "Chain rule: the mask of where the input was positive has to be multiplied "
                   "by out.g, the gradient arriving from the layer above."),
            (out_g.double(), "ReLU lets the gradient through only where its input was positive; "
                             "elsewhere inp.g is 0."),
            (mask * inp.double(), "Multiply the mask by the gradient arriving from above (out.g), "
                                  "not by the input."),
            ((inp < 0).double() * out_g.double(), "The mask is reversed: the gradient passes where "
                                                  "the input was positive.")]


@lesson.exercise(NB, "relu_grad", 1, "relu_grad(inp, out)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def relu_grad(sub, *, seed: int = 200) -> None:
    title = "relu_grad(inp, out)"
    inp, out_g = _randn(16, 6, seed=seed), _randn(16, 6, seed=seed + 1)
    out = inp.clamp_min(0.)
    out.g = out_g
    _, (expected,) = _autograd(torch.relu, inp, upstream=out_g)
    called = call(sub, title, "relu_grad", inp, out, hint_on_error=lambda e: _error_hint(
        e.get("ename", ""), e.get("evalue", "")))
    got = _grad_of(title, called.args[0], "inp.g", returned=called.result)
    judge_grad(title, "inp.g", got, expected, _relu_hints(inp, out_g, expected))


def _lin_case(n: int, n_in: int, n_out: int, seed: int):
    inp, w, b = _randn(n, n_in, seed=seed), _randn(n_in, n_out, seed=seed + 1), _randn(n_out, seed=seed + 2)
    out_g = _randn(n, n_out, seed=seed + 3)
    out, grads = _autograd(lambda i, w_, b_: i @ w_ + b_, inp, w, b, upstream=out_g)
    return inp, w, b, out_g, out, grads


def judge_lin(title: str, after: dict, inp, w, b, out_g, grads, *, who: str = "inp", parts=None) -> None:
    """The three gradients of a linear layer, in the order the layer computes them.

    With ``parts`` (lin_grad's recorder) each gradient is a part of its own, judged
    whatever the others gave: all three come from one call with the grader's inputs.
    """
    g_inp, g_w, g_b = grads
    n = inp.shape[0]
    og = out_g.double()
    transpose = ("{name} has {obj}'s shape transposed. Each gradient has the shape of the tensor "
                 "it belongs to; which factor of the product needs a transpose?")
    for name, expected in ((who, g_inp), ("w", g_w), ("b", g_b)):     # every bar of the figure
        record_gradient(f"{name}.g", getattr(after[name], "g", None), expected, tolerance=RTOL)
    judged = contextlib.nullcontext if parts is None else parts.judge
    with judged(f"{who}.g"):
        judge_grad(title, f"{who}.g", _grad_of(title, after[who], f"{who}.g"), g_inp, [
            (g_inp.t(), transpose.format(name=f"{who}.g", obj=who))])
    with judged("w.g"):
        judge_grad(title, "w.g", _grad_of(title, after["w"], "w.g"), g_w, [
            (g_w.t(), transpose.format(name="w.g", obj="w")),
            (g_w / n, SUM_NOT_MEAN),
            (inp.double().unsqueeze(-1) * og.unsqueeze(1),
             "That is one outer product per row, (n, n_in, n_out): sum them over the batch axis.")])
    with judged("b.g"):
        judge_grad(title, "b.g", _grad_of(title, after["b"], "b.g"), g_b, [
            (g_b / n, SUM_NOT_MEAN),
            (og, "b was added to every row, so its gradient adds up out.g over the rows."),
            (og.sum(1), "Sum over the batch (the rows, axis 0), not over the outputs."),
            (og.sum(), "Sum over the rows only: b.g has one entry per output, like b.")])


# One point per gradient: each is a separate piece of the chain rule, and one wrong
# transpose should not cost the other two.
LIN_GRAD_PARTS = {"inp.g": 1, "w.g": 1, "b.g": 1}


@lesson.exercise(NB, "lin_grad", 3, "lin_grad(inp, out, w, b)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT,
                 parts=LIN_GRAD_PARTS)
def lin_grad(sub, parts, *, seed: int = 300, cases=((24, 7, 5), (24, 6, 1))) -> None:
    title = "lin_grad(inp, out, w, b)"
    for k, (n, n_in, n_out) in enumerate(cases):
        inp, w, b, out_g, out, grads = _lin_case(n, n_in, n_out, seed + 10 * k)
        out = out.float()
        out.g = out_g
        called = call(sub, title, "lin_grad", inp, out, w, b, hint_on_error=lambda e: _error_hint(
            e.get("ename", ""), e.get("evalue", "")))
        after = {"inp": called.args[0], "w": called.args[2], "b": called.args[3]}
        judge_lin(f"{title} with inp {shape_str(inp.shape)}, w {shape_str(w.shape)}", after,
                  inp, w, b, out_g, grads, parts=parts)


# ----------------------------------------------------------------------------- the whole network
def _network(seed: int, n: int = 48, n_in: int = 20, nh: int = 8):
    """Small inputs and parameters (non-zero biases, so every piece matters)."""
    inp, targ = _randn(n, n_in, seed=seed), _randn(n, seed=seed + 1)
    params = {"w1": _randn(n_in, nh, seed=seed + 2) * math.sqrt(2 / n_in),
              "b1": _randn(nh, seed=seed + 3) * 0.1,
              "w2": _randn(nh, 1, seed=seed + 4) / math.sqrt(nh),
              "b2": _randn(1, seed=seed + 5) * 0.1}
    return inp, targ, params


def _reference(inp, targ, p) -> tuple[torch.Tensor, dict[str, torch.Tensor], list]:
    def loss_fn(x, w1, b1, w2, b2):
        return F.mse_loss((torch.relu(x @ w1 + b1) @ w2 + b2).squeeze(-1), targ.double())
    loss, grads = _autograd(loss_fn, inp, p["w1"], p["b1"], p["w2"], p["b2"])
    expected = dict(zip(("inp", "w1", "b1", "w2", "b2"), grads))
    # known wrong answers, by the piece that went wrong
    x, w1, b1, w2, b2 = (t.double() for t in (inp, p["w1"], p["b1"], p["w2"], p["b2"]))
    l1 = x @ w1 + b1
    l2 = l1.clamp_min(0.)
    out = l2 @ w2 + b2
    out_g = 2. * (out.squeeze(-1) - targ.double()).unsqueeze(-1) / x.shape[0]
    l2_g = out_g @ w2.t()
    no_relu = {"w1": x.t() @ l2_g, "b1": l2_g.sum(0), "inp": l2_g @ w1.t()}
    hints = {
        "w2": [(l1.t() @ out_g, "The second layer's input is the ReLU's output, not the first "
                                "layer's output before the ReLU."),
               (expected["w2"] / 2, "The factor 2 of the loss's gradient is missing."),
               (expected["w2"] * x.shape[0], "The loss's gradient is divided by the number of rows.")],
        "b2": [(expected["b2"] / 2, "The factor 2 of the loss's gradient is missing."),
               (expected["b2"] * x.shape[0], "The loss's gradient is divided by the number of rows.")],
        **{name: [(no_relu[name], "The ReLU's gradient is missing between the two layers: the "
                                  "gradient reaching the first layer is zero where its output "
                                  "was negative.")] for name in ("w1", "b1", "inp")},
    }
    return loss, expected, hints


def judge_network(title: str, after: dict, expected: dict, hints: dict) -> None:
    """Every gradient of the two-layer network, from the loss backwards."""
    for name in ("inp", "w1", "b1", "w2", "b2"):                       # every bar of the figure
        record_gradient(f"{name}.g", getattr(after[name], "g", None), expected[name], tolerance=RTOL)
    for name in ("w2", "b2", "w1", "b1", "inp"):
        label = "the input's inp.g" if name == "inp" else f"{name}.g"
        got = _grad_of(title, after[name], label, hint=NETWORK_NOT_SET_HINT)
        judge_grad(title, label, got, expected[name], hints.get(name, ()))


@lesson.exercise(NB, "forward_and_backward", 2, "forward_and_backward(inp, targ)",
          rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def forward_and_backward(sub, *, seed: int = 400) -> None:
    title = "forward_and_backward(inp, targ)"
    inp, targ, params = _network(seed)
    ev = _run(sub, title, ("forward_and_backward",), "forward_and_backward(inp, targ)",
              inputs={"inp": inp, "targ": targ}, outputs=("inp",), overrides=params,
              definitions=REF_DEFINITIONS)
    _, expected, hints = _reference(inp, targ, params)
    after = {"inp": ev.values.get("inp"), **{k: ev.overrides.get(k) for k in params}}
    judge_network(f"{title} (with the global w1, b1, w2, b2)", after, expected, hints)


# ----------------------------------------------------------------------------- the refactor
@lesson.exercise(NB, "Relu", 1, "Relu()", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def relu_class(sub, *, seed: int = 500) -> None:
    title = "Relu: out = layer(inp), then layer.backward()"
    inp, out_g = _randn(16, 6, seed=seed), _randn(16, 6, seed=seed + 1)
    ev = _run(sub, title, ("Relu",), "layer = Relu()\nout = layer(inp)\nout.g = g\nlayer.backward()",
              inputs={"inp": inp, "g": out_g}, outputs=("out", "inp"))
    out, (expected,) = _autograd(torch.relu, inp, upstream=out_g)
    returned = require_tensor(ev.values.get("out"), f"{title}: layer(inp)")
    judge_grad(title, "the output of layer(inp)", returned, out,
               [(inp.double(), "layer(inp) should return the ReLU of its input.")])
    got = _grad_of(title, ev.values.get("inp"), "inp.g")
    judge_grad(title, "inp.g", got, expected, _relu_hints(inp, out_g, expected))


@lesson.exercise(NB, "Lin", 1, "Lin(w, b)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def lin_class(sub, *, seed: int = 600) -> None:
    title = "Lin: out = Lin(w, b)(inp), then layer.backward()"
    inp, w, b, out_g, out, grads = _lin_case(24, 7, 5, seed)
    ev = _run(sub, title, ("Lin",), "layer = Lin(w, b)\nout = layer(inp)\nout.g = g\nlayer.backward()",
              inputs={"inp": inp, "w": w, "b": b, "g": out_g}, outputs=("out", "inp", "w", "b"))
    returned = require_tensor(ev.values.get("out"), f"{title}: layer(inp)")
    judge_grad(title, "the output of layer(inp)", returned, out,
               [(inp.double() @ w.double(), "The bias is missing from the output.")])
    judge_lin(title, ev.values, inp, w, b, out_g, grads)


@lesson.exercise(NB, "Mse", 1, "Mse()", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def mse_class(sub, *, seed: int = 700) -> None:
    title = "Mse: loss = Mse()(inp, targ), then loss.backward()"
    inp, targ, value, expected, hints = _mse_case(32, seed)
    ev = _run(sub, title, ("Mse",), "loss = Mse()\nresult = loss(inp, targ)\nloss.backward()",
              inputs={"inp": inp, "targ": targ}, outputs=("result", "inp"))
    judge_mse_layer(title, ev.values, value, expected, hints)
    require_named_squeeze(title, sub.source("Mse"))


def judge_mse_layer(title: str, values: dict, value, expected, hints) -> None:
    """The loss an Mse layer returned (``values["result"]``) and the ``inp.g`` it stored."""
    got = require_tensor(values.get("result"), f"{title}: the value of loss(inp, targ)")
    if got.numel() != 1 or not _close(got.double().reshape(()), value):
        raise Fail(f"{title}: loss(inp, targ) should return the mean squared error, one number.",
                   f"Expected {value.item():.6g}; got {describe(got)}.")
    judge_grad(title, "inp.g", _grad_of(title, values.get("inp"), "inp.g"), expected, hints)


@lesson.exercise(NB, "Model", 2, "Model(w1, b1, w2, b2)", rule=NO_AUTOGRAD, rule_hint=RULE_HINT)
def model_class(sub, *, seed: int = 800) -> None:
    title = "Model: loss = model(inp, targ), then model.backward()"
    inp, targ, params = _network(seed)
    ev = _run(sub, title, ("Model",),
              "model = Model(w1, b1, w2, b2)\nloss = model(inp, targ)\nmodel.backward()",
              inputs={"inp": inp, "targ": targ, **params}, outputs=("loss", "inp", *params),
              definitions=REF_CLASSES)
    judge_model(title, ev.values, inp, targ, params)


def judge_model(title: str, values: dict, inp, targ, params) -> None:
    """The loss a model returned (``values["loss"]``) and every gradient it stored."""
    value, expected, hints = _reference(inp, targ, params)
    got = require_tensor(values.get("loss"), f"{title}: the value of model(inp, targ)")
    if got.numel() != 1 or not _close(got.double().reshape(()), value):
        hint = ("model(x, targ) returns the loss, not the predictions: finish the forward pass "
                "with the loss layer.") if got.shape == (inp.shape[0], 1) else None
        raise Fail(f"{title}: model(inp, targ) should return the loss, one number.",
                   f"Expected {value.item():.6g}; got {describe(got)}.", hint=hint)
    judge_network(title, values, expected, hints)
