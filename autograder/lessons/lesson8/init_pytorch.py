"""Checks for ``04_init_in_pytorch``: fans, gains, ``kaiming_uniform_``, PyTorch's default
init (why ``a=√5``), and the experiment that compares the two on a stack of convolutions.

References come from PyTorch's own ``torch.nn.init`` and ``F.conv2d``, or from literals.
Exercises that build on earlier ones run with the grader's versions of those
(``definitions``), so one mistake is not charged twice.

Tolerances, each at a false-alarm probability of :data:`~autograder.ALPHA` (1e-8):

* ``kaiming_uniform_``: n weights drawn from U(-b, b). All of them lie within ±b (exact,
  up to float rounding), and the largest |w| reaches b(1 - t) except with probability
  (1 - t)^n, so t = 1 - ALPHA^(1/n) (2.3% for n = 800, 0.1% for n = 18,432). Their mean
  (variance b²/3, within b of 0) and their mean square (expectation b²/3, variance 4b⁴/45,
  within 2b²/3 of it) are bounded with Bernstein's inequality, which holds for bounded
  draws at every n, with no normal approximation.
* ``fraction_better``: the student's count over n samples is Binomial(n, p). With the
  student's ``kaiming_uniform_`` replaced by PyTorch's default init, both stacks are drawn
  the same way, so p = 1/2 exactly (ties have probability 0): the count must lie in the
  central 1 - ALPHA of Binomial(n, 1/2). With the grader's ``kaiming_uniform_``, p is not
  known in closed form: the grader runs the experiment itself with its own seeds
  (:data:`REFERENCE_SAMPLES` samples), takes the Clopper-Pearson interval for p at ALPHA,
  and accepts counts that Binomial(n, p) reaches with probability 1 - ALPHA/2 on each
  side for every p in it. ``python scripts/seed_sweep.py`` measures both on correct work.
  A third run is exact: ``conv_stack``, ``kaiming_uniform_`` and ``layer_stats`` are
  replaced by stand-ins whose statistics are made up by the grader (:func:`script`), so
  the right count is known, and so are the counts of the classic wrong readings (the
  mean for the std, the first layer for the last, no ``abs``, "worse" for "better").
  Every run counts the stacks built through the grader's ``conv_stack`` (exactly two per
  sample), with ``default_layers``/``kaiming_layers`` (what an ungraded cell leaves
  behind) poisoned; and the default of ``n_samples`` must be 100 (read with
  ``inspect.signature`` in the worker). Both are exact.
* Everything else is deterministic: float rounding only (relative 1e-4).
"""

from __future__ import annotations

import functools
import math
import threading

import torch
import torch.nn.functional as F

from ...authoring import (
    ALPHA,
    Fail,
    NotImplementedYet,
    Rule,
    bernstein_halfwidth,
    binomial_acceptance,
    call,
    describe,
    fail_on_error,
    proportion_interval,
    record_fraction,
    record_uniform,
    require_tensor,
    shape_str,
    weight_stats,
)
from . import lesson

NB = "04_init_in_pytorch"
NO_INIT = Rule(prefixes=("torch.nn.init",))
RULE_HINT = ("torch.nn.init is what this notebook reads, so your own version may not call it: "
             "compute the fans, the gain and the bound yourself, and fill w with w.uniform_.")
RTOL = 1e-4

# The experiment: three conv+ReLU layers (in, out, kernel), stride 2, padding kernel // 2,
# on N_IMAGES normalised validation images shaped (N, 1, 28, 28).
CONVS = ((1, 8, 5), (8, 16, 3), (16, 32, 3))
N_IMAGES = 32
REFERENCE_SAMPLES = 200
MARK = 7.0                  # what the scripted stand-in for kaiming_uniform_ fills weights with

# The grader's own versions, installed in the worker while later exercises run.
_REFERENCE = '''
import math
def fans(w):
    if w.dim() < 2:
        raise ValueError("fans need a weight with at least 2 dimensions")
    rf = math.prod(w.shape[2:])
    return w.shape[1] * rf, w.shape[0] * rf
def gain(a):
    return math.sqrt(2 / (1 + a * a))
def kaiming_uniform_(w, a=0., mode="fan_in"):
    fan_in, fan_out = fans(w)
    bound = gain(a) * math.sqrt(3 / (fan_in if mode == "fan_in" else fan_out))
    with torch.no_grad():
        return w.uniform_(-bound, bound)
def default_like_(w, a=0., mode="fan_in"):
    """PyTorch's own default init, standing in for kaiming_uniform_."""
    bound = 1 / math.sqrt(fans(w)[0])
    with torch.no_grad():
        return w.uniform_(-bound, bound)
def layer_stats(x, layers):
    out = []
    with torch.no_grad():
        for layer in layers:
            x = layer(x).clamp_min(0.)
            out.append((x.mean().item(), x.std().item()))
    return out
def conv_stack():
    conv_stack.calls += 1
    return [torch.nn.Conv2d(i, o, k, stride=2, padding=k // 2) for i, o, k in %r]
conv_stack.calls = 0
def marking_(w, a=0., mode="fan_in"):
    """Stands in for kaiming_uniform_: marks the weight, so the statistics can be scripted."""
    with torch.no_grad():
        return w.fill_(%r)
def scripted_layer_stats(x, layers):
    """Stands in for layer_stats: the next scripted statistics of a default or a marked stack."""
    kind = "kaiming" if all(float(l.weight.detach().reshape(-1)[0]) == %r for l in layers) else "default"
    i = scripted_layer_stats.calls[kind]
    scripted_layer_stats.calls[kind] += 1
    return [tuple(pair) for pair in SCRIPT[kind][i %% len(SCRIPT[kind])]]
scripted_layer_stats.calls = {"default": 0, "kaiming": 0}
class Poisoned(torch.nn.Conv2d):
    """A layer of a stack that an ungraded cell left behind: any use of it is recorded."""
    def forward(self, x):
        self.used = True
        return super().forward(x)
def poisoned_stack():
    """Stands in for default_layers and kaiming_layers: NaN weights, and a record of use."""
    layers = [Poisoned(i, o, k, stride=2, padding=k // 2) for i, o, k in %r]
    with torch.no_grad():
        for layer in layers:
            layer.weight.fill_(float("nan"))
    return layers
def tagging_conv_stack():
    """conv_stack, each layer tagged with its fresh weights (for the pictures)."""
    layers = conv_stack()
    for layer in layers:
        layer._ag_fresh = layer.weight.detach().clone()
    return layers
def recording_layer_stats(x, layers):
    """layer_stats, keeping each stack's kind and its std after each layer (for the pictures)."""
    out = layer_stats(x, layers)
    kinds = set()
    for layer in layers:
        fresh = getattr(layer, "_ag_fresh", None)
        kinds.add("other" if fresh is None else "default" if torch.equal(fresh, layer.weight.detach())
                  else "kaiming")
    recording_layer_stats.seen.append((kinds.pop() if len(kinds) == 1 else "mixed", [s for _, s in out]))
    return out
recording_layer_stats.seen = []
''' % (CONVS, MARK, MARK, CONVS)


def _ref(name: str, **values) -> str:
    """An expression that evaluates (in the worker) to the grader's ``name``; ``values``
    (plain literals) become globals of the grader's code."""
    extra = "".join(f", {k!r}: {v!r}" for k, v in values.items())
    return f"(lambda ns: (exec({_REFERENCE!r}, ns), ns[{name!r}])[1])({{'torch': torch{extra}}})"


REF_FANS, REF_GAIN = _ref("fans"), _ref("gain")
LAYER_STATS_SEED = 50


def _picture_defs() -> dict[str, str]:
    """The grader's pieces for picturing the stacks a fraction_better measures."""
    return {"kaiming_uniform_": _ref("kaiming_uniform_"), "layer_stats": _ref("recording_layer_stats"),
            "conv_stack": _ref("tagging_conv_stack"), "fans": REF_FANS, "gain": REF_GAIN}


# ----------------------------------------------------------------------------- helpers
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _number(value, what: str) -> float:
    """A Python number or a one-element tensor, as a float; else a Fail saying what it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.reshape(()).item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise Fail(f"{what} should be a number.", f"Got {describe(value)}.")


def _near(got: float, expected: float) -> bool:
    return math.isclose(got, expected, rel_tol=RTOL, abs_tol=1e-12)


def _fans_of(shape) -> tuple[int, int]:
    rf = math.prod(shape[2:])
    return shape[1] * rf, shape[0] * rf


@functools.lru_cache(maxsize=1)
def images() -> torch.Tensor:
    """The first N_IMAGES validation images, normalised with the training statistics."""
    from .fully_connected import normalized
    return normalized()["x_valid"][:N_IMAGES].reshape(-1, 1, 28, 28).clone()


# ----------------------------------------------------------------------------- fans and gain
FANS_CASES = ((32, 1, 5, 5), (50, 784), (10, 3), (8, 4, 3), (16, 8, 3, 3, 3))


@lesson.exercise(NB, "fans", 1, "fans(w)", rule=NO_INIT, rule_hint=RULE_HINT)
def fans(sub, *, shapes=FANS_CASES) -> None:
    for shape in shapes:
        title = f"fans(w) for a weight of shape {shape_str(shape)}"
        got = call(sub, "fans(w)", "fans", torch.zeros(shape)).result
        expected = _fans_of(shape)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Fail(f"{title} should return two numbers, (fan_in, fan_out).", f"Got {describe(got)}.")
        pair = tuple(int(x) if x.is_integer() else x for x in (_number(v, f"{title}: each fan") for v in got))
        if pair == expected:
            continue
        fan_in, fan_out = expected
        rf = math.prod(shape[2:])
        hints = [((fan_out, fan_in), "PyTorch stores a weight as (out, in, *kernel): fan_in comes from "
                                     "dimension 1 and fan_out from dimension 0, not the other way round."),
                 ((shape[1], shape[0]), "For a conv weight every output sees in × (kernel entries) inputs: "
                                        "multiply both fans by the receptive field, the product of the "
                                        "dimensions after the first two."),
                 ((fan_in, shape[0]), "The receptive field multiplies fan_out too: each input feeds "
                                      "out × (kernel entries) outputs."),
                 ((shape[-1], shape[-2]), "The last two dimensions of a conv weight are its kernel, not "
                                          "its inputs and outputs: PyTorch's layout is (out, in, *kernel).")]
        hint = next((h for wrong, h in hints if wrong == pair and wrong != expected), None)
        raise Fail(f"{title}: expected (fan_in, fan_out) = {expected}, got {pair}.",
                   f"(receptive field: {rf})" if len(shape) > 2 else "", hint=hint)
    for shape in ((5,), ()):
        _refuses(sub, shape)


def _refuses(sub, shape) -> None:
    title = f"fans(w) for a tensor of shape {shape_str(shape)}"
    ev = sub.evaluate("result = fans(w)", inputs={"w": torch.zeros(shape)})
    if ev.status == "timeout":
        fail_on_error(title, ev)
    if not ev.error:
        raise Fail(f"{title} returned {describe(ev.values.get('result'))}.",
                   "A tensor with fewer than 2 dimensions has no inputs and outputs to count.",
                   hint="Refuse it: check w.dim() first and raise a ValueError that says why.")
    ename, evalue = ev.error.get("ename", ""), str(ev.error.get("evalue", "")).strip()
    if ename == "NotImplementedError":
        raise NotImplementedYet(f"{title}: not implemented yet.")
    if ename == "ValueError" and evalue:
        return
    if ename == "ValueError":
        raise Fail(f"{title} raised a ValueError with no message.",
                   hint="Say what is wrong, as PyTorch does: a weight needs at least 2 dimensions "
                        "(out, in, *kernel), and this one has fewer.")
    raise Fail(f"{title} raised {ename}: {evalue}.",
               "" if ename in ("AssertionError", "RuntimeError") else
               "That error comes from a step that cannot work on such a tensor, not from a check "
               "of yours: it does not tell the caller what is wrong.",
               hint="Check w.dim() first and raise a ValueError (what PyTorch raises for a bad "
                    "argument) saying that a weight needs at least 2 dimensions.")


GAIN_CASES = (0.0, 1.0, math.sqrt(5), 0.01, 3.0)


@lesson.exercise(NB, "gain", 1, "gain(a)", rule=NO_INIT, rule_hint=RULE_HINT)
def gain(sub, *, cases=GAIN_CASES) -> None:
    for a in cases:
        title = f"gain(a) for a = {a:.4g}"
        got = _number(call(sub, "gain(a)", "gain", a).result, f"{title}: the result")
        expected = math.sqrt(2 / (1 + a * a))
        if _near(got, expected):
            continue
        hints = [(a, "a is the negative slope of the leaky ReLU that follows the layer, not the gain "
                     "itself: the gain is sqrt(2 / (1 + a²)). PyTorch's a = √5 gives sqrt(1/3)."),
                 (2 / (1 + a * a), "That is the gain squared: take the square root."),
                 (math.sqrt(2 / (1 + a)), "Square the slope: the leaky ReLU keeps a fraction a² of the "
                                          "negative half's second moment."),
                 (math.sqrt(2), "The gain depends on a: √2 is only right for a plain ReLU (a = 0)."),
                 (math.sqrt(1 + a * a), "Upside down: the gain is sqrt(2 / (1 + a²)).")]
        hint = next((h for wrong, h in hints if _near(got, wrong)), None)
        raise Fail(f"{title}: expected sqrt(2 / (1 + a²)) = {expected:.6g}, got {got:.6g}.", hint=hint)


# ----------------------------------------------------------------------------- kaiming_uniform_
# (shape, a, mode): a conv weight with ReLU; PyTorch's own a = √5 on a linear weight;
# a linear layer (a = 1) in fan_out mode on a conv weight; fan_out on an (out, in) weight.
UNIFORM_CASES = (((64, 32, 3, 3), None, None), ((50, 784), math.sqrt(5), "fan_in"),
                 ((16, 8, 5, 5), 1.0, "fan_out"), ((784, 50), 0.0, "fan_out"))


def uniform_judgement(w: torch.Tensor, bound: float, alpha: float = ALPHA) -> list[str]:
    """What is wrong with ``w`` as draws from U(-bound, bound): empty when nothing is.

    Phrases: "not finite" (NaN or infinity), "outside" (beyond ±bound), "short" (never
    near ±bound), "mean", "scale".
    """
    x = w.detach().double().reshape(-1)
    n = x.numel()
    if not bool(torch.isfinite(x).all()):
        return ["not finite"]
    bad = []
    top = float(x.abs().max())
    if top > bound * (1 + 1e-6):
        bad.append("outside")
    elif top < bound * (1 - alpha ** (1 / n)):
        bad.append("short")
    if abs(float(x.mean())) > bernstein_halfwidth(n, bound ** 2 / 3, bound, alpha):
        bad.append("mean")
    second = float((x * x).mean())
    if abs(second - bound ** 2 / 3) > bernstein_halfwidth(n, 4 * bound ** 4 / 45, 2 * bound ** 2 / 3, alpha):
        bad.append("scale")
    return bad


def _bound(shape, a: float, mode: str) -> tuple[float, float, int]:
    """(gain, bound, fan) of kaiming_uniform_ for this shape, a and mode."""
    fan_in, fan_out = _fans_of(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    g = math.sqrt(2 / (1 + a * a))
    return g, g * math.sqrt(3 / fan), fan


def judge_uniform(title: str, w, shape, a: float, mode: str, *, alpha: float = ALPHA) -> None:
    """Fail unless ``w`` looks like kaiming_uniform_'s draws for this shape, a and mode."""
    w = require_tensor(w, f"{title}: w after the call")
    if tuple(w.shape) != tuple(shape) or not w.is_floating_point():
        raise Fail(f"{title}: w changed shape or dtype.", f"Expected {shape_str(shape)} floats, got {describe(w)}.")
    fan_in, fan_out = _fans_of(shape)
    g, bound, fan = _bound(shape, a, mode)
    bad = uniform_judgement(w, bound, alpha)
    if not bad:
        return
    if bad == ["not finite"]:
        raise Fail(f"{title}: some weights are NaN or infinite.", f"Got {describe(w)}.",
                   hint="Look for a division by zero or the square root of a negative number in the bound.")
    s = weight_stats(w)
    detail = (f"Expected U(-b, b) with b = gain(a)·sqrt(3/{mode}) = {g:.4f}·sqrt(3/{fan}) = {bound:.4f} "
              f"(std b/√3 = {bound / math.sqrt(3):.4f}); got values in [{float(w.min()):.4f}, "
              f"{float(w.max()):.4f}], mean {s['mean']:.4f}, std {s['std']:.4f}.")
    if float(w.abs().max()) == 0:
        raise Fail(f"{title}: w is still all zeros.", hint="Fill w itself, in place: w.uniform_(-bound, bound).")
    if "mean" in bad and float(w.min()) >= 0:
        raise Fail(f"{title}: the weights are not centred on 0.", detail,
                   hint="Draw from -bound to +bound: w.uniform_(-bound, bound), not torch.rand.")
    other = "fan_out" if mode == "fan_in" else "fan_in"
    other_fan = fan_out if mode == "fan_in" else fan_in
    confusions = [
        (bound / math.sqrt(3), "The √3 is missing: that bound is the std you want. A uniform U(-b, b) "
                               "has std b/√3, so the bound is √3 times the std (hence sqrt(3/fan))."),
        (a * math.sqrt(3 / fan), "That uses a itself as the gain. a is the slope of the leaky ReLU; "
                                 "the gain is gain(a) = sqrt(2/(1+a²))."),
        (g * math.sqrt(3 / other_fan), f"That reads the fan of mode={other!r}: with mode={mode!r} the "
                                       f"fan is {mode}, {fan} for this weight."),
        (math.sqrt(3 / fan), "The gain is missing: multiply by gain(a)."),
        (g * g * math.sqrt(3 / fan), "That multiplies by gain(a)²: the gain scales the std, not the variance."),
    ]
    if "outside" in bad and "scale" not in bad:
        raise Fail(f"{title}: some weights lie outside ±b.", detail,
                   hint="The std is right, but the values are not uniform: use w.uniform_(-bound, bound), "
                        "not a normal distribution.")
    fits = [(abs(math.log(s["rms"] * math.sqrt(3) / alt)), hint) for alt, hint in confusions
            if s["rms"] > 0 and not math.isclose(alt, bound, rel_tol=1e-9)
            and not uniform_judgement(w, alt, alpha)]
    if fits:
        raise Fail(f"{title}: the weights have the wrong range.", detail, hint=min(fits)[1])
    raise Fail(f"{title}: the weights do not look like U(-b, b).", detail,
               hint="Compute bound = gain(a) * sqrt(3 / fan) with the fan that mode names, "
                    "then w.uniform_(-bound, bound).")


@lesson.exercise(NB, "kaiming_uniform", 2, "kaiming_uniform_(w, a, mode)", rule=NO_INIT, rule_hint=RULE_HINT,
                 defines="kaiming_uniform_")
def kaiming_uniform(sub, *, seed: int = 40, cases=UNIFORM_CASES) -> None:
    definitions = {"fans": REF_FANS, "gain": REF_GAIN}
    for k, (shape, a, mode) in enumerate(cases):
        args = ", ".join(f"{n}={v!r}" for n, v in (("a", a), ("mode", mode)) if v is not None)
        title = f"kaiming_uniform_(w{', ' + args if args else ''}) on w of shape {shape_str(shape)}"
        # The first weight is a layer's parameter, as in the experiment: autograd tracks it.
        wrap = "w = torch.nn.Parameter(w)\n" if k == 0 else ""
        ev = sub.evaluate(f"{wrap}result = kaiming_uniform_(w{', ' + args if args else ''})\nsame = result is w",
                          inputs={"w": torch.zeros(shape)}, outputs=("result", "same", "w"),
                          definitions=definitions, seed=seed + k)
        fail_on_error(title + (" (a layer's weight, which autograd tracks)" if wrap else ""), ev,
                      ("kaiming_uniform_",), _no_grad_hint)
        result, w = ev.values.get("result"), ev.values.get("w")
        if isinstance(w, torch.Tensor) and w.shape == shape and w.is_floating_point():
            _, bound, _ = _bound(shape, 0.0 if a is None else a, mode or "fan_in")
            record_uniform(title, w, bound, f"gain(a)·sqrt(3/{mode or 'fan_in'})")
        if isinstance(w, torch.Tensor) and w.shape == shape and float(w.abs().max()) == 0:
            extra = (["It returned new weights instead: fill w itself."]
                     if isinstance(result, torch.Tensor) and float(result.abs().max()) > 0 else [])
            raise Fail(f"{title}: w was not filled in place.", *extra,
                       hint="Like PyTorch's init functions (their names end in _), fill the tensor "
                            "you were given, with w.uniform_(-bound, bound), and return it.")
        judge_uniform(title, w, shape, 0.0 if a is None else a, mode or "fan_in")
        if ev.values.get("same") is not True:
            raise Fail(f"{title}: w is filled, but the function returned {describe(result)}.",
                       hint="Return w itself, as PyTorch's init functions do, so that calls can be chained.")


def _no_grad_hint(error: dict) -> str | None:
    if "leaf Variable" in str(error.get("evalue", "")):
        return ("A layer's weight is a leaf that autograd tracks, and autograd refuses to change it "
                "in place: fill it inside `with torch.no_grad():`, as PyTorch's init functions do.")
    return None


# ----------------------------------------------------------------------------- PyTorch's default
@lesson.exercise(NB, "default_std", 1, "default_std(fan_in)")
def default_std(sub, *, cases=(25, 288, 784)) -> None:
    for fan_in in cases:
        title = f"default_std({fan_in})"
        got = _number(call(sub, "default_std(fan_in)", "default_std", fan_in).result, f"{title}: the result")
        expected = 1 / math.sqrt(3 * fan_in)
        if _near(got, expected):
            continue
        hints = [(1 / math.sqrt(fan_in), "That is the bound of PyTorch's uniform, 1/sqrt(fan_in); the std "
                                         "of U(-b, b) is b/√3."),
                 (math.sqrt(2 / fan_in), "That is Kaiming's std for a ReLU, sqrt(2/fan_in): the point is "
                                         "that PyTorch's default is smaller."),
                 (1 / (3 * fan_in), "That is the variance: take the square root."),
                 (math.sqrt(3 / fan_in), "That is sqrt(3/fan_in), the bound with gain 1; PyTorch's a = √5 "
                                         "gives gain sqrt(1/3), and the std is the bound over √3.")]
        hint = next((h for wrong, h in hints if _near(got, wrong)), None)
        raise Fail(f"{title}: expected {expected:.6g}, got {got:.6g}.", hint=hint)


# ----------------------------------------------------------------------------- the experiment
def _conv_params(gen: torch.Generator, kaiming: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Weights and biases of the stack: PyTorch's default init (weights and biases
    U(±1/sqrt(fan_in))), or Kaiming's uniform for ReLU on the weights."""
    params = []
    for c_in, c_out, k in CONVS:
        fan_in = c_in * k * k
        b = math.sqrt(6 / fan_in) if kaiming else 1 / math.sqrt(fan_in)
        w = (torch.rand(c_out, c_in, k, k, generator=gen) * 2 - 1) * b
        bias = (torch.rand(c_out, generator=gen) * 2 - 1) / math.sqrt(fan_in)
        params.append((w, bias))
    return params


def reference_stats(x: torch.Tensor, params) -> list[tuple[float, float]]:
    """(mean, std) after each conv+ReLU, computed by the grader with F.conv2d."""
    out = []
    with torch.no_grad():
        for w, b in params:
            x = torch.relu(F.conv2d(x, w, b, stride=2, padding=w.shape[-1] // 2))
            out.append((float(x.mean()), float(x.std())))
    return out


_REFERENCE_LOCK = threading.Lock()


def reference_probability(samples: int = REFERENCE_SAMPLES, seed: int = 9_000) -> tuple[float, float]:
    """Where the probability that Kaiming's stack ends closer to std 1 lies (a
    Clopper-Pearson interval at ALPHA), from the grader's own run of the experiment.
    Computed once per process (one thread at a time: it sets torch's thread count)."""
    with _REFERENCE_LOCK:
        return _reference_probability(samples, seed)


@functools.lru_cache(maxsize=4)
def _reference_probability(samples: int, seed: int) -> tuple[float, float]:
    gen, x, wins = _gen(seed), images(), 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # small convolutions: thread hand-offs cost more than they save
    try:
        for _ in range(samples):
            d = reference_stats(x, _conv_params(gen, kaiming=False))[-1][1]
            k = reference_stats(x, _conv_params(gen, kaiming=True))[-1][1]
            wins += abs(k - 1) < abs(d - 1)
    finally:
        torch.set_num_threads(threads)
    return proportion_interval(wins, samples)


lesson.prefetch(NB)(reference_probability)

_BUILD_LAYERS = """
layers = []
for _w, _b in params:
    _conv = torch.nn.Conv2d(_w.shape[1], _w.shape[0], _w.shape[-1], stride=2, padding=_w.shape[-1] // 2)
    with torch.no_grad():
        _conv.weight.copy_(_w)
        _conv.bias.copy_(_b)
    layers.append(_conv)
result = layer_stats(x, layers)
"""


@lesson.exercise(NB, "layer_stats", 1, "layer_stats(x, layers)")
def layer_stats(sub, *, seed: int = LAYER_STATS_SEED, kaiming: bool = True) -> None:
    title = "layer_stats(x, layers)"
    x, params = images(), _conv_params(_gen(seed), kaiming=kaiming)
    ev = sub.evaluate("import torch\n" + _BUILD_LAYERS, inputs={"x": x, "params": params},
                      outputs=("result",))
    fail_on_error(title, ev, ("layer_stats",), lambda e: (
        "Feed each layer the output of the one before (after its ReLU), not the original images."
        if "channels" in str(e.get("evalue", "")) else None))
    got = ev.values.get("result")
    expected = reference_stats(x, params)
    shown = f"{title} on {N_IMAGES} images through {len(CONVS)} conv layers"
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        raise Fail(f"{shown}: expected a list of {len(expected)} (mean, std) pairs, one per layer.",
                   f"Got {describe(got)}.",
                   hint="Append the statistics after every layer, not only after the last one."
                   if isinstance(got, (list, tuple)) and len(got) == 1 else None)
    pairs = []
    for i, item in enumerate(got):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise Fail(f"{shown}: entry {i} should be a pair (mean, std).", f"Got {describe(item)}.")
        pairs.append(tuple(_number(v, f"{shown}: entry {i}") for v in item))
    if all(_near(g, e) for p, q in zip(pairs, expected) for g, e in zip(p, q)):
        return
    table = "; ".join(f"({m:.4f}, {s:.4f})" for m, s in expected)
    detail = [f"Expected {table}.", "Got " + "; ".join(f"({m:.4f}, {s:.4f})" for m, s in pairs) + "."]
    pre = []
    with torch.no_grad():
        h = x
        for w, b in params:
            z = F.conv2d(h, w, b, stride=2, padding=w.shape[-1] // 2)
            pre.append((float(z.mean()), float(z.std())))
            h = torch.relu(z)
    if _near(pairs[0][0], pre[0][0]) and _near(pairs[0][1], pre[0][1]):
        hint = "Those are the statistics of the conv's output before its ReLU: apply the ReLU, then measure."
    elif all(_near(p[0], q[1]) and _near(p[1], q[0]) for p, q in zip(pairs, expected)):
        hint = "Each pair is (std, mean): return (mean, std)."
    else:
        hint = "After each layer: x = relu(layer(x)), then record (x.mean(), x.std())."
    raise Fail(f"{shown}: the statistics are wrong.", *detail, hint=hint)


# Every run of the experiment counts the stacks that the grader's conv_stack builds, and
# gives the names an ungraded cell of the notebook leaves behind (default_layers and
# kaiming_layers, the one-draw demonstration) poisoned stacks: NaN weights, and layers that
# record being used. So the result cannot depend on whether that cell ran, and a
# fraction_better that measures those stacks instead of fresh ones is caught by name.
_EXPERIMENT = """
_built, _left = conv_stack, (("default_layers", default_layers), ("kaiming_layers", kaiming_layers))
result = fraction_better(n_samples=n)
stacks = _built.calls
left_used = []
for _name, _stack in _left:
    if any(getattr(_layer, "used", False) for _layer in _stack):
        left_used.append(_name)
"""
LEFT_BEHIND = {"default_layers": _ref("poisoned_stack") + "()", "kaiming_layers": _ref("poisoned_stack") + "()"}
FRESH_HINT = ("One draw could be luck: each sample is a new draw of both stacks. Build the "
              "sample's two stacks with conv_stack() inside the loop, every time round.")


def _experiment_defs(kaiming: str) -> dict[str, str]:
    return {"kaiming_uniform_": _ref(kaiming), "layer_stats": _ref("layer_stats"),
            "conv_stack": _ref("conv_stack"), "fans": REF_FANS, "gain": REF_GAIN, **LEFT_BEHIND}


def _judge_stacks(title: str, values: dict, n: int) -> None:
    """Two fresh stacks per sample, through conv_stack(); none of those an earlier cell left."""
    stacks, used = values.get("stacks"), values.get("left_used")
    if isinstance(used, list) and used:
        names = " and ".join(f"`{name}`" for name in used)
        raise Fail(f"{title}: it measured {names}, left in the notebook by an earlier cell, instead of "
                   f"stacks of its own.",
                   f"The grader ran it with those names holding stacks of its own, and they were used; "
                   f"conv_stack() built {stacks} stacks for {n} samples (expected 2 per sample, {2 * n}).",
                   hint=FRESH_HINT)
    if stacks != 2 * n:
        detail = {2: "That is one pair for all the samples: every sample re-measures the same stacks.",
                  n: "That is one stack per sample: the default and the Kaiming stack should be two "
                     "separate draws."}.get(stacks, "")
        raise Fail(f"{title}: conv_stack() built {stacks} stacks for {n} samples; expected two fresh "
                   f"ones per sample, {2 * n}.", *([detail] if detail else []), hint=FRESH_HINT)


def _run_fraction(sub, title: str, n: int, kaiming: str, seed: int) -> float:
    ev = sub.evaluate(_EXPERIMENT, inputs={"n": n}, overrides={"x_imgs": images()},
                      definitions=_experiment_defs(kaiming), outputs=("result", "stacks", "left_used"),
                      seed=seed)
    fail_on_error(title, ev, ("fraction_better",), _no_grad_hint)
    _judge_stacks(title, ev.values, n)
    got = _number(ev.values.get("result"), f"{title}: the result")
    if not 0 <= got <= 1:
        raise Fail(f"{title}: expected a fraction between 0 and 1, got {got:.4g}.",
                   hint="Divide the number of samples where Kaiming's stack ended closer to std 1 by n_samples.")
    if abs(got * n - round(got * n)) > 1e-6:
        raise Fail(f"{title}: {got:.4g} is not a count out of {n}.",
                   hint="Run exactly n_samples samples and return the count divided by n_samples.")
    return got


def script(seed: int, n: int) -> dict[str, list]:
    """Made-up (mean, std) per layer for n default and n Kaiming stacks, such that every
    classic wrong reading of them (:func:`scripted_counts`) gives another count than the
    right one. Means and stds spread over [0, 2]; only the Kaiming stacks' last std is
    drawn nearer 1 (from [0.4, 1.6]), so that the right count stands apart."""
    g = _gen(seed)
    for _ in range(1000):       # a few tries at most for n >= 10 (ties have probability 0)
        draw = torch.rand(2, n, len(CONVS), 2, generator=g, dtype=torch.float64) * 2
        draw[1, :, -1, 1] = 0.4 + draw[1, :, -1, 1] * 0.6
        table = {"default": draw[0].tolist(), "kaiming": draw[1].tolist()}
        counts = scripted_counts(table)
        if all(c != counts["right"] for name, c in counts.items() if name != "right"):
            break
    return table


def scripted_counts(table: dict[str, list]) -> dict[str, int]:
    """The right count of a script, and the counts that classic wrong readings give."""
    pairs = list(zip(table["default"], table["kaiming"]))
    def count(better) -> int:
        return sum(bool(better(d, k)) for d, k in pairs)
    return {
        "right": count(lambda d, k: abs(k[-1][1] - 1) < abs(d[-1][1] - 1)),
        "mean": count(lambda d, k: abs(k[-1][0] - 1) < abs(d[-1][0] - 1)),
        "first layer": count(lambda d, k: abs(k[0][1] - 1) < abs(d[0][1] - 1)),
        "no abs": count(lambda d, k: k[-1][1] - 1 < d[-1][1] - 1),
        "larger std": count(lambda d, k: k[-1][1] > d[-1][1]),
        "worse": count(lambda d, k: abs(k[-1][1] - 1) > abs(d[-1][1] - 1)),
    }


SCRIPT_HINTS = {
    "mean": "That compares the means: compare each stack's std (the second of each pair) with 1.",
    "first layer": "That compares the first layer's statistics: take the last layer's ([-1]).",
    "no abs": "Closer to 1 means a smaller distance, abs(std - 1): without abs, a std far below 1 "
              "counts as close.",
    "larger std": "A larger std is not the point: count the samples whose std is closer to 1, "
                  "abs(std - 1).",
    "worse": "That counts the samples where Kaiming's stack ends farther from 1: count the closer ones.",
}


def _scripted_run(sub, seed: int, n: int) -> None:
    title = (f"fraction_better(n_samples={n}) with conv_stack, kaiming_uniform_ and layer_stats "
             f"replaced by scripted stand-ins")
    table = script(seed, n)
    counts = scripted_counts(table)
    defs = {"kaiming_uniform_": _ref("marking_"), "layer_stats": _ref("scripted_layer_stats", SCRIPT=table),
            "conv_stack": _ref("conv_stack"), "fans": REF_FANS, "gain": REF_GAIN, **LEFT_BEHIND}
    ev = sub.evaluate(_EXPERIMENT, inputs={"n": n}, overrides={"x_imgs": images()}, definitions=defs,
                      outputs=("result", "stacks", "left_used"), seed=seed)
    fail_on_error(title, ev, ("fraction_better",), _no_grad_hint)
    _judge_stacks(title, ev.values, n)
    got = _number(ev.values.get("result"), f"{title}: the result")
    if math.isclose(got * n, counts["right"], abs_tol=1e-6):
        return
    hint = next((h for name, h in SCRIPT_HINTS.items()
                 if counts[name] != counts["right"] and math.isclose(got * n, counts[name], abs_tol=1e-6)),
                "Build both stacks with conv_stack(), re-initialise the second one's weights with "
                "kaiming_uniform_, measure each once with layer_stats(x_imgs, layers), and compare the "
                "last layer's std of each with 1.")
    raise Fail(f"{title}: expected {counts['right']}/{n}, got {got * n:.4g}/{n}.",
               "The stand-ins make up each stack's statistics, so the right count is known exactly.",
               hint=hint)


N_SAMPLES = 100               # the default the notebook gives: fraction_better(n_samples=100)
_SIGNATURE = """
import inspect as _inspect
try:
    _params = _inspect.signature(fraction_better).parameters
except (TypeError, ValueError):
    _params = {}
names = [str(_name) for _name in _params]
_p = _params.get("n_samples")
has_default = _p is not None and _p.default is not _p.empty
default = _p.default if has_default and type(_p.default) is int else None
shown = repr(_p.default)[:60] if has_default else ""
"""


def _judge_signature(sub) -> None:
    """fraction_better(n_samples=100): the notebook's next cell calls it with no argument."""
    title = "fraction_better(n_samples)"
    ev = sub.evaluate(_SIGNATURE, outputs=("names", "has_default", "default", "shown"))
    fail_on_error(title, ev, ("fraction_better",))
    v = ev.values
    names = v.get("names") if isinstance(v.get("names"), list) else []
    if "n_samples" not in names:
        raise Fail(f"{title}: fraction_better has no parameter named n_samples "
                   f"(its parameters: {', '.join(map(str, names)) or 'none'}).",
                   hint="Keep the signature the notebook gives: the grader and the next cell call it by "
                        "that name.")
    if v.get("has_default") is not True:
        raise Fail(f"{title}: n_samples has no default value.",
                   hint="The notebook's next cell calls fraction_better() with no argument: give n_samples "
                        "the default that the exercise states.")
    if v.get("default") != N_SAMPLES or type(v.get("default")) is not int:
        shown = str(v.get("shown"))
        few = isinstance(v.get("default"), int) and v["default"] <= 0
        raise Fail(f"{title}: the default of n_samples is {shown}; the exercise asks for {N_SAMPLES} samples.",
                   "The notebook's next cell, fraction_better(), runs with that default"
                   + (": with no samples there is nothing to count, and the fraction divides by zero."
                      if few else "."),
                   hint="How many samples to draw is part of the experiment: read the exercise's "
                        "signature again and use its default.")


@lesson.exercise(NB, "fraction_better", 2, "fraction_better(n_samples)", rule=NO_INIT, rule_hint=RULE_HINT)
def fraction_better(sub, *, seed: int = 60, n_samples: int = 100, n_null: int = 63,
                    n_scripted: int = 30) -> None:
    """The signature first (n_samples defaults to 100, :func:`_judge_signature`), then three
    runs: with the grader's kaiming_uniform_ (Kaiming should win nearly always); with
    scripted statistics, where the right count is known exactly; and with PyTorch's
    default standing in for kaiming_uniform_ (a fair coin). Every run counts the stacks
    built through the grader's conv_stack (two per sample), and gives default_layers and
    kaiming_layers, which the ungraded cell above the exercise leaves behind, poisoned
    stacks (NaN weights, layers that record their use) for its duration, so the result
    does not depend on that cell and any use of them fails by name (:func:`_judge_stacks`)."""
    _judge_signature(sub)
    title = f"fraction_better(n_samples={n_samples})"
    got = _run_fraction(sub, title, n_samples, "kaiming_uniform_", seed)
    p_low, p_high = reference_probability()
    lo, hi = binomial_acceptance(n_samples, p_low, p_high)
    record_fraction(got, n_samples, lo, hi)
    if not lo <= round(got * n_samples) <= hi:
        detail = (f"The grader's own run puts the probability that Kaiming's stack ends closer to std 1 "
                  f"between {p_low:.3f} and {p_high:.3f}, so {n_samples} samples give between {lo} and "
                  f"{hi} wins (except once in 10⁸); yours gave {round(got * n_samples)}.")
        if got < 0.5:
            hint = ("Count the samples where Kaiming's stack ends *closer* to std 1: compare "
                    "abs(std_kaiming - 1) with abs(std_default - 1) on the last layer's std.")
        else:
            hint = ("About half is what two stacks with the same init give: re-initialise every weight "
                    "of the second stack with kaiming_uniform_ before measuring it.")
        raise Fail(f"{title}: Kaiming's stack should win in nearly every sample.", detail, hint=hint)
    _scripted_run(sub, seed + 2, n_scripted)
    null = f"fraction_better(n_samples={n_null}) with kaiming_uniform_ replaced by PyTorch's default init"
    got = _run_fraction(sub, null, n_null, "default_like_", seed + 1)
    lo, hi = binomial_acceptance(n_null, 0.5)
    if not lo <= round(got * n_null) <= hi:
        raise Fail(f"{null}: both stacks are now drawn the same way, so each should win about half "
                   f"the time ({lo} to {hi} of {n_null}); yours said {round(got * n_null)}.",
                   hint="Build both stacks with conv_stack(), re-initialise only the second one's weights "
                        "with your kaiming_uniform_ (keep the biases), and compare the std after the last "
                        "layer of each with 1, the same way for both.")
