"""How a failure reads: the :class:`Fail` exception and value summaries.

A student reads the message, not the code. A message says, in order: which exercise
and call; what was checked; expected against got, as summaries (shape, dtype,
mean/std, first mismatch, largest difference — never whole tensors); one hint.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import evidence
from .codec import MISSING, NumpyArray, Opaque

__all__ = ["Fail", "NotImplementedYet", "describe", "difference", "close", "require_tensor",
           "off_cpu", "DEVICE_HINT"]

# A student who moved a tensor to a GPU (Colab has one): say what to do, never crash.
DEVICE_HINT = ("The grader calls your code with CPU tensors and compares on the CPU, where there "
               "may be no GPU: keep everything on the CPU (no `.cuda()`, `.to('cuda')`, `device=`), "
               "or return `.cpu()` of your result; the lesson's tensors are small.")


class Fail(Exception):
    """A check failed; ``str(exc)`` is the teaching message (without the exercise name)."""

    def __init__(self, what: str, *details: str, hint: str | None = None) -> None:
        self.what, self.details, self.hint = what, [d for d in details if d], hint
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.what]
        lines += [f"  {d}" for d in self.details]
        if self.hint:
            lines.append(f"  Hint: {self.hint}")
        return "\n".join(lines)


class NotImplementedYet(Fail):
    """The exercise is still the stub."""

    def __init__(self, what: str = "not implemented yet.") -> None:
        super().__init__(what, hint="Replace `raise NotImplementedError()` with your code, "
                                    "then run the cell.")


def shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def describe(value: Any) -> str:
    """A one-line summary of any value that came back from the worker."""
    if value is MISSING:
        return "not defined"
    if isinstance(value, torch.Tensor):
        text = f"a tensor of shape {shape_str(value.shape)}, dtype {str(value.dtype).removeprefix('torch.')}"
        if value.numel() and (value.is_floating_point() or value.dtype == torch.int64):
            v = value.double()
            if value.numel() == 1:
                text += f", value {v.item():.4g}"
            else:
                text += f", mean {v.mean().item():.4f}, std {v.std().item():.4f}"
        return text
    if isinstance(value, NumpyArray):
        return f"a numpy array of shape {shape_str(value.shape)}, dtype {value.dtype}"
    if isinstance(value, Opaque):
        return f"a {value.repr}" if value.device else f"a `{value.type_name}` object"
    if isinstance(value, (list, tuple)):
        kind = type(value).__name__
        return f"a {kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return f"the {type(value).__name__} {value!r}"
    if isinstance(value, str):
        return f"the string {value[:60]!r}"
    return f"a {type(value).__name__}"


def close(got: torch.Tensor, expected: torch.Tensor, *, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and |got - expected| <= atol + rtol * |expected| everywhere (no NaN).

    Small tensors are compared in float64; big ones in float32 with in-place arithmetic,
    which is several times faster than ``torch.allclose`` on MNIST-sized data.
    """
    if got.shape != expected.shape:
        return False
    dtype = torch.float32 if got.numel() > 1_000_000 else torch.float64
    diff = got.to(dtype) - expected.to(dtype)          # a new tensor: safe to modify
    bound = expected.to(dtype).abs().mul_(rtol).add_(atol)
    return bool(diff.abs_().le_(bound).all())          # NaN compares False


def difference(got: torch.Tensor, expected: torch.Tensor, *, rtol: float = 1e-4, atol: float = 1e-5) -> list[str]:
    """Detail lines for two same-shaped tensors that differ: first mismatch, largest gap.

    Tensors of different shapes get one line saying so (never an exception)."""
    if tuple(got.shape) != tuple(expected.shape):
        return [f"Expected shape {shape_str(expected.shape)}, got shape {shape_str(got.shape)}."]
    g, e = got.double(), expected.double()
    bad = ~torch.isclose(g, e, rtol=rtol, atol=atol)
    evidence.compared(got, expected, bad=bad)      # for the "expected vs got" table, when shown
    lines = []
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        where = f"[{', '.join(map(str, idx))}]" if idx else ""
        lines.append(f"First mismatch at index {where or '()'}: expected {e[idx].item():.6g}, "
                     f"got {g[idx].item():.6g}  ({int(bad.sum())} of {bad.numel()} entries differ).")
        gap = (g - e).abs()
        gap = torch.where(torch.isnan(gap), torch.full_like(gap, math.inf), gap)
        lines.append(f"Largest difference: {gap.max().item():.4g}.")
    return lines


def require_tensor(value: Any, what: str, *, hint_numpy: str | None = None) -> torch.Tensor:
    """The value as a tensor, or a Fail that says what it is instead."""
    if isinstance(value, torch.Tensor):
        return value
    if value is MISSING:
        raise Fail(f"{what} is not defined.", hint="Run the cell that defines it (and the cells above it).")
    if isinstance(value, NumpyArray):
        raise Fail(f"{what} is a numpy array, not a torch tensor.",
                   f"Got {describe(value)}.",
                   hint=hint_numpy or "This lesson works with torch tensors: convert numpy arrays "
                                      "with `torch.tensor(...)` (or `map` it over several arrays).")
    if isinstance(value, Opaque) and value.device:
        raise Fail(f"{what} is a tensor on {value.device}; the grader compares on the CPU.",
                   f"Got {describe(value)}.", hint=DEVICE_HINT)
    raise Fail(f"{what} should be a tensor.", f"Got {describe(value)}.")


def off_cpu(value: Any, depth: int = 0) -> Opaque | None:
    """A tensor that came back from another device than the CPU, in ``value`` or in the
    lists, tuples and dicts it holds; None if there is none."""
    if isinstance(value, Opaque):
        return value if value.device else None
    if depth < 6 and isinstance(value, (list, tuple, dict)):
        for item in (value.values() if isinstance(value, dict) else value):
            if (found := off_cpu(item, depth + 1)) is not None:
                return found
    return None
