"""Unit tests that need no worker: the codec, the static rules, the statistics, reading
notebooks, and the seed sweep of every statistical weight check."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import math
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.engine import static
from autograder.lessons.lesson8.fully_connected import FROM_SCRATCH
from autograder.engine.codec import MISSING, NumpyArray, Opaque, ProtocolError, decode, encode, recv, send
from autograder.engine.notebook import NotebookError, read_notebook
from autograder.engine.stats import (
    chi2_quantile,
    kurtosis_z,
    normal_quantile,
    violations,
    weight_bounds,
    weight_stats,
)

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "assignments" / "lesson8" / "02_fully_connected.ipynb"


def roundtrip(value):
    """Encode as the worker does, pass the header through JSON, decode as the grader does."""
    buffers: list = []
    desc = json.loads(json.dumps(encode(value, buffers)))
    return decode(desc, [bytes(b) for b in buffers])


def encoded(value):
    buffers: list = []
    return encode(value, buffers), [bytes(b) for b in buffers]


# ============================================================================= codec

@pytest.mark.parametrize("tensor", [
    torch.randn(3, 4),
    torch.randn(2, 3, dtype=torch.float64),
    torch.randn(5).half(),
    torch.randn(5).bfloat16(),
    torch.arange(12).reshape(3, 4),
    torch.arange(6, dtype=torch.int32),
    torch.arange(200, dtype=torch.uint8),
    torch.tensor([True, False, True]),
    torch.randn(4, dtype=torch.complex64),
    torch.tensor(3.5),
    torch.tensor(7),
    torch.empty(0),
    torch.empty(0, 784),
    torch.randn(3, 5).t(),
    torch.randn(2, 3)[:, 1],
], ids=lambda t: f"{str(t.dtype).removeprefix('torch.')}{tuple(t.shape)}")
def test_tensors_round_trip(tensor):
    """Does a tensor come back with the same dtype, shape and values, whatever its layout?"""
    back = roundtrip(tensor)
    assert type(back) is torch.Tensor
    assert back.dtype == tensor.dtype and back.shape == tensor.shape
    assert torch.equal(back, tensor)


def test_decoded_tensor_is_private():
    """Is a decoded tensor a writable copy, not a view of the received bytes?"""
    desc, buffers = encoded(torch.arange(3.0))
    first, second = decode(desc, buffers), decode(desc, buffers)
    first.add_(10)
    assert torch.equal(second, torch.arange(3.0)) and torch.equal(first, torch.arange(3.0) + 10)


def test_gradient_attribute_travels():
    """Does a tensor's .g (the lesson's hand-made gradient) come back with it?"""
    t = torch.randn(4, 2)
    t.g = torch.ones(4, 2) * 3
    back = roundtrip(t)
    assert torch.equal(back, t) and torch.equal(back.g, t.g)
    assert not hasattr(roundtrip(torch.randn(2)), "g")


def test_parameter_and_requires_grad_arrive_as_plain_tensors():
    """Do an nn.Parameter and a tensor that requires grad arrive as plain tensors with the same values?"""
    p = torch.nn.Parameter(torch.randn(3))
    back = roundtrip(p)
    assert type(back) is torch.Tensor and torch.equal(back, p.detach())
    assert encoded(p)[0]["requires_grad"] is True


def test_numpy_arrays_stay_numpy():
    """Does a numpy array arrive as a NumpyArray (so a check can say "numpy, not torch")?"""
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = roundtrip(a)
    assert isinstance(back, NumpyArray)
    assert back.shape == (3, 4) and back.dtype == "float32"
    np.testing.assert_array_equal(back.array, a)
    assert isinstance(roundtrip(np.array(["a", "b"], dtype=object)), Opaque)


def test_numpy_scalar_is_opaque_with_its_number():
    """Does a numpy scalar arrive as an opaque value rather than as a number the grader trusts?"""
    back = roundtrip(np.float32(1.5))
    assert isinstance(back, Opaque) and back.type_name == "numpy.float32" and not back.callable


def test_lazy_iterators_are_opaque():
    """Does a map object arrive as Opaque('map') without being consumed?"""
    m = map(str, [1, 2])
    back = roundtrip(m)
    assert isinstance(back, Opaque) and back.type_name == "map"
    assert list(m) == ["1", "2"]
    assert roundtrip(x for x in ()).type_name == "generator"
    assert roundtrip(zip()).type_name == "zip"


@pytest.mark.parametrize("value", [
    None, True, False, 0, -3, 2**70, 1.5, -0.0, math.inf, "text", "",
    [1, 2.0, "x"], (1, (2, 3)), [], (), {"a": 1, "b": [torch.ones(2)]},
], ids=repr)
def test_plain_values_round_trip(value):
    """Do None, bools, ints, floats, strings, lists, tuples and dicts come back equal and of the same type?"""
    back = roundtrip(value)
    if isinstance(value, dict):
        assert back.keys() == value.keys() and back["a"] == 1 and torch.equal(back["b"][0], torch.ones(2))
        return
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


def test_nan_round_trips():
    """Does float('nan') come back as a nan?"""
    assert math.isnan(roundtrip(float("nan")))


def test_long_and_deep_containers_are_cut():
    """Are long lists cut (keeping their length) and deep nests described as opaque?"""
    desc, _ = encoded(list(range(1000)))
    assert desc["len"] == 1000 and len(desc["items"]) < 1000
    deep: list = []
    for _ in range(20):
        deep = [deep]
    back = roundtrip(deep)
    while isinstance(back, list):
        back = back[0]
    assert isinstance(back, Opaque) and back.type_name == "list"


class HostileRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")


class HostileTensor(torch.Tensor):
    pass


def test_hostile_objects_never_break_encoding():
    """Does an object whose __repr__ raises (or a tensor subclass) become opaque instead of crashing?"""
    back = roundtrip(HostileRepr())
    assert isinstance(back, Opaque) and back.type_name.endswith("HostileRepr")
    assert "repr failed" in back.repr
    sub = torch.randn(2).as_subclass(HostileTensor)
    assert isinstance(roundtrip(sub), Opaque)
    assert roundtrip(len).callable is True


def test_missing_is_falsy_and_decodes():
    """Does a missing name decode to the MISSING marker, which is falsy?"""
    assert decode({"t": "missing"}, []) is MISSING and not MISSING


def tensor_desc(**changes):
    desc, buffers = encoded(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    desc.update(changes)
    return desc, buffers


@pytest.mark.parametrize("changes, buffers, message", [
    ({"shape": [2, 4]}, None, "byte count"),
    ({"shape": [7]}, None, "byte count"),
    ({}, [b"\0" * 20], "byte count"),
    ({"dtype": "float128"}, None, "not allowed"),
    ({"dtype": "object"}, None, "not allowed"),
    ({"shape": [-1, 6]}, None, "malformed shape"),
    ({"shape": "2x3"}, None, "expected a list"),
    ({"buf": 5}, None, "out of range"),
    ({"t": "pickle"}, None, "unknown value kind"),
], ids=["bytes-vs-shape", "shape-too-big", "short-buffer", "float128", "object-dtype",
        "negative-dim", "shape-not-list", "buffer-index", "unknown-kind"])
def test_decode_rejects_malformed_tensors(changes, buffers, message):
    """Does decode refuse a tensor whose bytes, shape, dtype or kind do not add up (ProtocolError)?"""
    desc, good = tensor_desc(**changes)
    with pytest.raises(ProtocolError, match=message):
        decode(desc, buffers if buffers is not None else good)


def test_decode_rejects_malformed_arrays_and_values():
    """Does decode refuse numpy arrays with the wrong byte count or dtype, and non-descriptions?"""
    desc, buffers = encoded(np.zeros((2, 2), dtype=np.float64))
    with pytest.raises(ProtocolError, match="byte count"):
        decode(dict(desc, shape=[3, 2]), buffers)
    with pytest.raises(ProtocolError, match="not allowed"):
        decode(dict(desc, dtype="V8"), buffers)
    for bad in ("tensor", {"no": "kind"}, {"t": 3}, {"t": "list", "items": "abc"}):
        with pytest.raises(ProtocolError):
            decode(bad, [])


def test_frames_cross_a_pipe():
    """Does a frame of header and buffers sent into a pipe come out identical?"""
    r, w = os.pipe()
    try:
        desc, buffers = encoded({"w": torch.randn(10, 3), "s": "ok"})
        send(w, {"values": desc}, buffers)
        header, got = recv(r, deadline=time.monotonic() + 5)
        back = decode(header["values"], got)
        assert back["s"] == "ok" and back["w"].shape == (10, 3)
        send(w, {"empty": True})
        assert recv(r) == ({"empty": True}, [])
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("frame, error, message", [
    (struct.pack("!II", 2**30, 0), ProtocolError, "too large"),
    (struct.pack("!II", 3, 0) + b"{{{", ProtocolError, "not JSON"),
    (struct.pack("!II", 2, 0) + b"[]", ProtocolError, "not an object"),
    (struct.pack("!II", 2, 1) + b"{}" + struct.pack("!Q", 2**40), ProtocolError, "more than"),
    (struct.pack("!II", 10, 0) + b"{}", EOFError, "closed"),
], ids=["huge-header", "not-json", "not-object", "huge-buffer", "truncated"])
def test_recv_refuses_bad_frames(frame, error, message):
    """Does recv refuse oversized, non-JSON, non-object and truncated frames?"""
    r, w = os.pipe()
    try:
        os.write(w, frame)
        os.close(w)
        w = None
        with pytest.raises(error, match=message):
            recv(r, max_bytes=2**20)
    finally:
        os.close(r)
        if w is not None:
            os.close(w)


def test_recv_gives_up_at_its_deadline():
    """Does recv raise TimeoutError when a frame does not arrive in time?"""
    r, w = os.pipe()
    try:
        os.write(w, struct.pack("!II", 10, 0))
        with pytest.raises(TimeoutError):
            recv(r, deadline=time.monotonic() + 0.2)
    finally:
        os.close(r)
        os.close(w)


# ============================================================================= static rules

def banned(cell: str, imports: str = "import torch") -> list[str]:
    table = static.aliases(imports + "\n" + cell)
    return [f.name for f in static.find_banned(cell, FROM_SCRATCH, table)]


@pytest.mark.parametrize("imports, cell, found", [
    ("import torch.nn.functional as F", "def relu(x):\n    return F.relu(x)\n", "torch.nn.functional.relu"),
    ("from torch import nn", "def relu(x):\n    return nn.functional.relu(x)\n", "torch.nn.functional.relu"),
    ("from torch.nn.functional import relu as r", "def relu(x):\n    return r(x)\n",
     "torch.nn.functional.relu"),
    ("import torch", "def relu(x):\n    return torch.relu(x)\n", "torch.relu"),
    ("import torch as T", "def relu(x):\n    return T.relu(x)\n", "torch.relu"),
    ("import torch", "def relu(x):\n    return x.relu()\n", ".relu()"),
    ("import torch", "def relu(x):\n    return x.relu_()\n", ".relu_()"),
    ("from torch import nn", "def init_kaiming(i, o):\n    return nn.init.kaiming_normal_(torch.empty(o, i))\n",
     "torch.nn.init.kaiming_normal_"),
    ("import torch.nn.functional as F", "def mse(a, b):\n    return F.mse_loss(a.squeeze(-1), b)\n",
     "torch.nn.functional.mse_loss"),
], ids=["F-alias", "from-torch-import-nn", "from-import-as", "torch.relu", "torch-alias",
        "method", "method-in-place", "nn.init", "mse_loss"])
def test_from_scratch_rule_catches(imports, cell, found):
    """Is a banned operator found however it was imported or called?"""
    assert found in banned(cell, imports)


@pytest.mark.parametrize("cell", [
    "def relu(x):\n    return x.clamp_min(0.)\n",
    "def relu(x):\n    return x.clamp(min=0.)\n",
    "def relu(x):\n    return torch.where(x > 0, x, torch.zeros_like(x))\n",
    "def relu(x):\n    return x * (x > 0)\n",
    "def lin(x, w, b):\n    return x @ w + b\n",
    "def lin(x, w, b):\n    return torch.einsum('bi,io->bo', x, w) + b\n",
    "def lin(x, w, b):\n    return x.matmul(w).add(b)\n",
    "def init_kaiming(i, o):\n    return torch.randn(i, o) * math.sqrt(2 / i)\n",
    "def mse(a, b):\n    return (a.squeeze(-1) - b).pow(2).mean()\n",
    "def shifted_relu(x):\n    return relu(x) - 0.5\n",
    "def broken(:\n",
], ids=["clamp_min", "clamp", "where", "mask-multiply", "matmul-operator", "einsum", "matmul-method",
        "randn", "pow-mean", "own-relu", "syntax-error"])
def test_from_scratch_rule_allows(cell):
    """Are plain tensor operations (clamp, where, @, einsum, randn) and the student's own relu allowed?"""
    assert banned(cell) == []


def test_aliases_follow_the_notebook_imports():
    """Does the alias table map every imported name to its full dotted path?"""
    table = static.aliases("import torch.nn.functional as F\nfrom torch import nn, tensor\nimport numpy as np\n"
                           "import os.path\n%matplotlib inline\n")
    assert table["F"] == "torch.nn.functional" and table["nn"] == "torch.nn"
    assert table["tensor"] == "torch.tensor" and table["np"] == "numpy" and table["os"] == "os"


def test_one_call_is_one_finding():
    """Is `torch.relu(x)` reported once, not also as a `.relu()` method call?"""
    assert banned("def relu(x):\n    return torch.relu(x)\n") == ["torch.relu"]


@pytest.mark.parametrize("source, lines", [
    ("def mse(o, t):\n    return (o.squeeze() - t).pow(2).mean()\n", [2]),
    ("def mse(o, t):\n    return (torch.squeeze(o) - t).pow(2).mean()\n", [2]),
    ("def mse(o, t):\n    o.squeeze_()\n    return (o - t).pow(2).mean()\n", [2]),
    ("def mse(o, t):\n    return (o.squeeze(-1) - t).pow(2).mean()\n", []),
    ("def mse(o, t):\n    return (o.squeeze(1) - t).pow(2).mean()\n", []),
    ("def mse(o, t):\n    return (o.squeeze(dim=1) - t).pow(2).mean()\n", []),
    ("def mse(o, t):\n    return (torch.squeeze(o, -1) - t).pow(2).mean()\n", []),
    ("def mse(o, t):\n    return (torch.squeeze(o, dim=-1) - t).pow(2).mean()\n", []),
    ("def mse(o, t):\n    return (o[:, 0] - t).pow(2).mean()\n", []),
], ids=["method", "function", "in-place", "minus-one", "one", "dim-keyword", "function-axis",
        "function-dim-keyword", "index"])
def test_bare_squeeze(source, lines):
    """Is a squeeze that does not name its axis found, and one that does left alone?"""
    assert static.bare_squeeze_calls(source) == lines


# ============================================================================= statistics

@pytest.mark.parametrize("p, k, expected", [
    (0.95, 10, 18.307), (0.05, 10, 3.940), (0.975, 1, 5.024), (0.5, 2, 2 * math.log(2)),
    (0.99, 100, 135.807), (0.01, 100, 70.065),
])
def test_chi2_quantile_matches_tables(p, k, expected):
    """Does chi2_quantile agree with the published chi-square table?"""
    assert chi2_quantile(p, k) == pytest.approx(expected, abs=1e-3)


def test_normal_quantile_matches_tables():
    """Is the standard normal's 97.5% quantile 1.95996?"""
    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize("n, sigma", [(50, 1 / math.sqrt(50)), (10_000, 0.2), (39_200, math.sqrt(2 / 784))])
def test_weight_bounds_contain_the_true_sigma(n, sigma):
    """Do the rms bounds bracket the true sigma, tighter for more weights?"""
    b = weight_bounds(n, sigma)
    assert b.rms[0] < sigma < b.rms[1]
    assert b.mean > 0
    assert (b.kurtosis_z is None) == (n < 1000)
    assert b.rms[1] / b.rms[0] < weight_bounds(n // 2, sigma).rms[1] / weight_bounds(n // 2, sigma).rms[0]


def test_correct_weights_violate_nothing():
    """Do fresh normal draws with the right sigma break none of the bounds?"""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(784, 50, generator=g) * 0.05
    assert violations(weight_stats(w), weight_bounds(w.numel(), 0.05)) == []


def test_violations_catch_the_classic_mistakes():
    """Are a factor-2 scale, a uniform draw and a torch.rand draw each caught, and for the right reason?"""
    g = torch.Generator().manual_seed(1)
    sigma, shape = 0.05, (784, 50)
    bounds = weight_bounds(784 * 50, sigma)
    assert "scale" in violations(weight_stats(torch.randn(*shape, generator=g) * sigma * 2), bounds)
    assert "scale" in violations(weight_stats(torch.randn(*shape, generator=g) * sigma / math.sqrt(2)), bounds)
    uniform = (torch.rand(*shape, generator=g) * 2 - 1) * math.sqrt(3) * sigma      # right mean and std
    assert violations(weight_stats(uniform), bounds) == ["shape"]
    assert "mean" in violations(weight_stats(torch.rand(*shape, generator=g) * sigma), bounds)


def test_weight_stats_and_kurtosis():
    """Are the mean, rms and kurtosis right, and is normal kurtosis scored near 0?"""
    s = weight_stats(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    assert (s["mean"], s["rms"], s["std"], s["kurtosis"]) == (0.0, 1.0, 1.0, 1.0)
    g = torch.Generator().manual_seed(2)
    n = 20_000
    assert abs(kurtosis_z(weight_stats(torch.randn(n, generator=g))["kurtosis"], n)) < 4
    assert kurtosis_z(1.8, n) < -20 and kurtosis_z(6.0, n) > 20


def judged(w, n_in, n_out, sigma) -> str | None:
    """The Fail message judge_weights gives ``w`` (None when it passes)."""
    from autograder.lessons.lesson8.fully_connected import judge_weights
    from autograder.engine.feedback import Fail
    try:
        judge_weights("w", w, n_in, n_out, sigma, "formula")
    except Fail as fail:
        return fail.render()
    return None


def draw(*shape, seed=0, kind="randn"):
    return getattr(torch, kind)(*shape, generator=torch.Generator().manual_seed(seed))


KAIMING = math.sqrt(2 / 784)


@pytest.mark.parametrize("weights, phrase", [
    (lambda: draw(50, 784) * KAIMING, "nn.Linear layout"),
    (lambda: torch.zeros(784, 50, dtype=torch.int64), "should be floats"),
    (lambda: draw(784, 50) / math.sqrt(784), "factor 2"),
    (lambda: draw(784, 50) * math.sqrt(2 / 50), "n_out where n_in belongs"),
    (lambda: draw(784, 50), "plain randn"),
    (lambda: draw(784, 50) * 2 / 784, "square root is missing"),
    (lambda: (draw(784, 50, kind="rand") * 2 - 1) * math.sqrt(3) * KAIMING, "normally distributed"),
    (lambda: draw(784, 50) * KAIMING + 0.01, "not centred on 0"),
], ids=["transposed", "integer", "factor-1", "n_out", "std-1", "no-sqrt", "uniform", "shifted"])
def test_judge_weights_names_the_mistake(weights, phrase):
    """Does judge_weights name the classic init mistakes on a (784, 50) Kaiming weight?"""
    assert phrase in (judged(weights(), 784, 50, KAIMING) or "passed")


def test_judge_weights_passes_correct_draws():
    """Do correct draws of every shape the checks use pass judge_weights?"""
    for seed, (n_in, n_out) in enumerate([(784, 50), (50, 200), (50, 1)]):
        assert judged(draw(n_in, n_out, seed=seed) * math.sqrt(2 / n_in), n_in, n_out,
                      math.sqrt(2 / n_in)) is None


def test_judge_weights_says_torch_rand_is_not_centred():
    """Is a torch.rand draw told that its weights are not centred on 0?"""
    assert "not centred on 0" in judged(draw(784, 50, kind="rand") * KAIMING, 784, 50, KAIMING)


def test_judge_weights_says_plain_randn_for_a_small_weight():
    """Is plain randn for w2 (50, 1) told it has std 1, not that it used n_out?"""
    assert "plain randn" in judged(draw(50, 1, seed=3), 50, 1, 1 / math.sqrt(50))


@functools.lru_cache(maxsize=1)
def load_seed_sweep():
    """scripts/seed_sweep.py, imported from its path (scripts/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "seed_sweep.py"
    spec = importlib.util.spec_from_file_location("seed_sweep", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_sweep"] = module        # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep_1000():
    return load_seed_sweep().sweep(1000)


@pytest.mark.slow
def test_seed_sweep_finds_no_false_failures(sweep_1000):
    """Over 1000 seeds, does every statistical weight check pass every correct draw?"""
    assert {label: r["false_failures"] for label, r in sweep_1000.items() if r["false_failures"]} == {}
    assert len(sweep_1000) == 9


@pytest.mark.slow
def test_pooled_w2_tells_kaiming_from_simplified(sweep_1000):
    """50 weights alone rarely show Kaiming's factor 2 on w2; do 40 runs of the cell?"""
    single, pooled = sweep_1000["params w2(50, 1)"], sweep_1000["params w2(50, 1) x40"]
    assert single["power"]["variance*2"] < 0.5 < 0.999 <= pooled["power"]["variance*2"]


@pytest.mark.slow
def test_seed_sweep_catches_wrong_inits_on_big_shapes(sweep_1000):
    """Over 1000 seeds, is every wrong variant caught every time on shapes of 10,000+ weights?"""
    weak = {(label, name): p for label, r in sweep_1000.items() if r["n"] >= 10_000
            for name, p in r["power"].items() if p is not None and p < 1.0}
    assert weak == {}


def test_seed_sweep_main_reports_a_table(capsys):
    """Does the script print a table and exit 0 when nothing fails (run here with 3 seeds)?"""
    assert load_seed_sweep().main(["--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "init_kaiming(784, 50)" in out and "0 false failures" in out


# ============================================================================= reading notebooks

def write(tmp_path, content, name="nb.ipynb") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def nb_json(**top) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, **top})


@pytest.mark.parametrize("content, phrase", [
    ('{"cells": [', "truncated"),
    ("{ nope }", "line 1, column 3"),
    ("", "truncated"),
    ('["a", "list"]', "top level is not an object"),
    (nb_json(), "no list of cells"),
    (nb_json(cells={"a": 1}), "no list of cells"),
    (nb_json(cells=[]), "no cells at all"),
    (nb_json(cells=[3]), "cell 1 is not an object"),
    (json.dumps({"nbformat": 5, "cells": []}), "format version 5"),
    (b'{"cells": [], "x": "\xff\xfe\xfa"}', "not UTF-8"),
    (gzip.compress(b"{}"), "not UTF-8"),
], ids=["truncated", "invalid", "empty-file", "top-level-list", "no-cells-key", "cells-not-list",
        "no-cells", "cell-not-object", "nbformat-5", "latin-1-bytes", "gzip"])
def test_unusable_notebooks_get_one_line(tmp_path, content, phrase):
    """Does a damaged or foreign file raise NotebookError with one line that says why?"""
    with pytest.raises(NotebookError) as info:
        read_notebook(write(tmp_path, content))
    message = str(info.value)
    assert phrase in message and "\n" not in message


def test_truncated_real_notebook(tmp_path):
    """Is a real notebook cut off half-way (inside a string) refused with one line?"""
    raw = SOURCE.read_bytes()
    with pytest.raises(NotebookError, match="not valid JSON") as info:
        read_notebook(write(tmp_path, raw[: len(raw) // 2]))
    assert "\n" not in str(info.value)


def test_truncated_inside_a_string_says_truncated(tmp_path):
    """Is a notebook cut off inside a string (the usual case) reported as truncated?"""
    raw = SOURCE.read_bytes()
    with pytest.raises(NotebookError, match="truncated"):
        read_notebook(write(tmp_path, raw[: len(raw) // 2]))


def test_missing_file(tmp_path):
    """Does a path that does not exist give a one-line NotebookError?"""
    with pytest.raises(NotebookError, match="does not exist"):
        read_notebook(tmp_path / "nowhere.ipynb")


def test_nbformat_3_is_converted(tmp_path):
    """Is an old nbformat 3 notebook converted to v4, keeping its cells and nbgrader ids?"""
    nbformat = pytest.importorskip("nbformat")
    v3 = nbformat.v3
    nb = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_text_cell("markdown", source="# Title"),
        v3.new_code_cell(input="def lin(x, w, b):\n    return x @ w + b",
                         metadata={"nbgrader": {"grade_id": "lin", "solution": True}})])])
    notebook = read_notebook(write(tmp_path, nbformat.writes(nb, version=3)))
    assert [c.cell_type for c in notebook.cells] == ["markdown", "code"]
    assert notebook.by_id("lin").source.startswith("def lin") and notebook.by_id("lin").solution


def test_source_notebook_reads(tmp_path):
    """Does the real source notebook read, with a BOM too, and classify its solution and test cells?"""
    notebook = read_notebook(write(tmp_path, b"\xef\xbb\xbf" + SOURCE.read_bytes()))
    assert notebook.by_id("lin").solution and notebook.by_id("test_lin").is_test
    assert notebook.by_id("test_lin").points == 2 and not notebook.duplicated_ids


def test_grading_a_damaged_file_reports_instead_of_raising(tmp_path):
    """Does grade_notebook on a damaged file return a report with the one-line error (no worker)?"""
    from autograder.engine.grade import grade_notebook
    report = grade_notebook(write(tmp_path, '{"cells": ['))
    assert report.exercises == [] and "truncated" in report.error and not report.passed
    foreign = grade_notebook(write(tmp_path, nb_json(cells=[{"cell_type": "code", "source": "1",
                                                             "metadata": {}}]), "other.ipynb"))
    assert "none of this kit's exercises" in foreign.error


def test_magics_are_made_harmless_outside_ipython():
    """Do %time lines run their statement once, and other magics or shell lines do nothing?"""
    from autograder.engine.executor import transform_magics
    assert transform_magics("%time y = f(x)\n  %timeit -n 3 g()\n!ls\n%%capture\nz = 2") == \
        "y = f(x)\n  pass\npass\npass\nz = 2"


def test_static_parse_survives_threads_parsing_at_once():
    """Two notebooks graded at once (--jobs 2) both parse sources. CPython 3.11's ast.parse
    can then fail one with "AST constructor recursion depth mismatch" (with plain
    ast.parse this stress reproduces it every time here); static.parse must not."""
    import gc
    import threading
    import time

    from autograder.engine import static

    source = "\n".join(f"def f{i}(x):\n    return [y * {i} for y in range(x) if y % 3] + [{{'a': (1, [2])}}]"
                       for i in range(300))

    class Finalised:
        def __del__(self):
            time.sleep(0)             # a finalizer that lets another thread run mid-parse

    errors: list[str] = []

    def work():
        for _ in range(25):
            junk: list = [Finalised() for _ in range(100)]
            junk.append(junk)         # a cycle: only the collector frees it, mid-parse
            try:
                static.parse(source)
            except SystemError as exc:
                errors.append(str(exc))

    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 2, 2)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert errors == []


def _stub_run(cell_id):
    from autograder.engine import cellruns
    return {"cell_id": cell_id, "source": cellruns._stubs()["params"], "status": "error",
            "error": {"ename": "NotImplementedError", "evalue": "", "traceback": "NotImplementedError\n"}}


@pytest.mark.parametrize("cell_id", ["params", None])
def test_check_in_a_kernel_knows_that_the_stub_raised(monkeypatch, cell_id):
    """When a kernel ran the params stub (found by its cell id, or by its untouched
    source where the front end sends no id), does check("params") say "not implemented
    yet", as the command line does, instead of judging globals the stub never bound?"""
    from autograder.engine import cellruns
    from autograder.engine.grade import result_for
    from autograder.engine.submission import LocalSubmission
    monkeypatch.setattr(cellruns, "RUNS", [_stub_run(cell_id)])
    result = result_for("params", LocalSubmission({"__name__": "__main__"}))
    assert result.message.splitlines()[0] == "params · w1, b1, w2, b2: not implemented yet."
    monkeypatch.setattr(cellruns, "RUNS", [])
    assert "nh is not defined" in result_for("params", LocalSubmission({"__name__": "__main__"})).message


def test_check_in_a_kernel_reads_the_whole_cell(monkeypatch):
    """Is the source a kernel's check() judges the whole cell the kernel last ran (the
    grader's line numbers), and does a cell that raised count as the grader counts it?"""
    from autograder.engine import cellruns
    from autograder.engine.submission import LocalSubmission
    cell = "import torch\n\ndef relu(x):\n    return torch.relu(x)\n"
    ns = {"__name__": "__main__"}
    exec(cell, ns)
    monkeypatch.setattr(cellruns, "RUNS", [{"cell_id": "relu", "source": cell, "status": "ok", "error": None}])
    sub = LocalSubmission(ns)
    assert sub.source("relu") == cell and sub.cell_run("relu").status == "ok"
    from autograder.engine.grade import result_for
    assert "(line 4)" in result_for("relu", sub).message
    fixed = "def relu(x):\n    return x.clamp_min(0.)\nprint(undefined)\n"
    exec(fixed.split("print")[0], ns)
    error = {"ename": "NameError", "evalue": "name 'undefined' is not defined", "traceback": ""}
    monkeypatch.setattr(cellruns, "RUNS", [{"cell_id": None, "source": fixed, "status": "error", "error": error}])
    assert "your cell raised NameError when it ran" in result_for("relu", sub).message
