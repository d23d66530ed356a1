"""Plain data across the process boundary.

Student code runs in a worker process; the grader only ever receives *plain data*
from it: a JSON header plus raw byte buffers. A tensor travels as dtype, shape and
its bytes, and is rebuilt by the grader with ``torch.frombuffer`` after checking that
the byte count matches. Nothing is unpickled, and no object's own ``__eq__``,
``shape`` or ``__bool__`` is ever consulted on the grader's side: an object the
worker cannot describe as plain data arrives as an :class:`Opaque` with its type
name and a truncated ``repr``.

Frame layout on a pipe: ``!II`` (header length, number of buffers), the UTF-8 JSON
header, then each buffer as ``!Q`` length + bytes.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Opaque", "NumpyArray", "MISSING", "ProtocolError", "encode", "decode",
           "send", "recv"]

MAX_HEADER = 8 * 2**20          # bytes of JSON a worker may send in one frame
MAX_ITEMS = 64                  # items of a list/tuple/dict described
MAX_REPR = 200                  # characters of an opaque object's repr kept
MAX_DEPTH = 6
LARGE = 1 << 20                 # bytes from which a received buffer is not zero-filled first

# dtypes that may cross the boundary, by name; anything else is described as opaque
TORCH_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
              torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32,
              torch.int64, torch.bool)
}
NUMPY_DTYPES = {"float16", "float32", "float64", "complex64", "complex128", "uint8",
                "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64", "bool"}


class ProtocolError(RuntimeError):
    """The worker sent something that is not a well-formed frame."""


@dataclass(frozen=True)
class Opaque:
    """An object that is not plain data: only its type and a short repr are known."""
    type_name: str
    repr: str = ""
    callable: bool = False
    device: str = ""        # a tensor that is not on the CPU (``cuda:0``): where it is

    def __str__(self) -> str:
        return f"a tensor on {self.device}" if self.device else f"a {self.type_name} object"


@dataclass(frozen=True)
class NumpyArray:
    """A numpy array (not a tensor): kept apart so checks can say so."""
    array: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> str:
        return str(self.array.dtype)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


# --------------------------------------------------------------------------- encode
def encode(value: Any, buffers: list, *, depth: int = 0, attrs: tuple[str, ...] = ("g",)) -> dict:
    """Describe ``value`` as a JSON-able dict, appending raw buffers to ``buffers``.

    Runs in the worker. It must never raise: whatever it cannot describe becomes opaque.
    """
    try:
        return _encode(value, buffers, depth, attrs)
    except Exception as exc:  # a hostile __repr__ or a broken tensor subclass
        return {"t": "object", "type": _type_name(value), "repr": f"<undescribable: {exc!r}>"[:MAX_REPR]}


def _type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "") else f"{module}.{name}"


def _encode(value, buffers, depth, attrs):
    if value is None:
        return {"t": "none"}
    if type(value) is bool:
        return {"t": "bool", "v": value}
    if type(value) is int:
        return {"t": "int", "v": str(value)}
    if type(value) is float:
        return {"t": "float", "v": repr(value)}
    if type(value) is str:
        return {"t": "str", "v": value[:4096], "len": len(value)}
    if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
        return _encode_tensor(value, buffers, depth, attrs)
    if type(value) is np.ndarray and value.dtype.name in NUMPY_DTYPES:
        data = np.ascontiguousarray(value)
        buffers.append(memoryview(data).cast("B"))
        return {"t": "ndarray", "dtype": data.dtype.name, "shape": list(data.shape),
                "buf": len(buffers) - 1}
    if isinstance(value, np.generic) and type(value).__module__ == "numpy":
        return {"t": "object", "type": _type_name(value), "repr": repr(value)[:MAX_REPR],
                "number": repr(value.item()) if value.dtype.kind in "biuf" else None}
    if type(value) in (list, tuple) and depth < MAX_DEPTH:
        items = [_encode(v, buffers, depth + 1, attrs) for v in value[:MAX_ITEMS]]
        return {"t": type(value).__name__, "items": items, "len": len(value)}
    if type(value) is dict and depth < MAX_DEPTH:
        items = [[str(k)[:100], _encode(v, buffers, depth + 1, attrs)]
                 for k, v in list(value.items())[:MAX_ITEMS]]
        return {"t": "dict", "items": items, "len": len(value)}
    try:
        text = repr(value)
    except Exception:
        text = "<repr failed>"
    return {"t": "object", "type": _type_name(value), "repr": text[:MAX_REPR],
            "callable": callable(value)}


def _encode_tensor(value, buffers, depth, attrs):
    name = str(value.dtype).removeprefix("torch.")
    if value.device.type != "cpu":
        # Not copied over: the grader compares on the CPU, and says so (feedback.py).
        return {"t": "object", "type": "torch.Tensor", "device": str(value.device)[:40],
                "repr": f"tensor of shape {tuple(value.shape)}, dtype {name}, on {value.device}"}
    if name not in TORCH_DTYPES or value.layout != torch.strided or value.is_quantized:
        return {"t": "object", "type": "torch.Tensor", "repr": f"tensor of dtype {name}"}
    data = value.detach().cpu().contiguous()
    shape = list(data.shape)
    raw = data.reshape(-1).view(torch.uint8) if data.numel() else torch.empty(0, dtype=torch.uint8)
    buffers.append(memoryview(raw.numpy()))
    out = {"t": "tensor", "dtype": name, "shape": shape, "buf": len(buffers) - 1,
           "requires_grad": bool(value.requires_grad)}
    extra = {}
    for attr in attrs:
        if depth < MAX_DEPTH and attr in getattr(value, "__dict__", {}):
            extra[attr] = _encode(value.__dict__[attr], buffers, depth + 1, ())
    if extra:
        out["attrs"] = extra
    return out


# --------------------------------------------------------------------------- decode
def decode(desc: Any, buffers: list[bytes]) -> Any:
    """Rebuild a value described by :func:`encode` in the grader's own process.

    Validates everything: dtype names against an allow-list, shapes against byte counts.
    """
    if not isinstance(desc, dict) or not isinstance(desc.get("t"), str):
        raise ProtocolError("malformed value description")
    t = desc["t"]
    if t == "none":
        return None
    if t == "missing":
        return MISSING
    if t == "bool":
        return bool(desc["v"] is True)
    if t == "int":
        return int(str(desc["v"])[:4300])
    if t == "float":
        return float(str(desc["v"]))
    if t == "str":
        return str(desc["v"])
    if t in ("list", "tuple"):
        items = [decode(d, buffers) for d in _as_list(desc.get("items"))]
        return items if t == "list" else tuple(items)
    if t == "dict":
        return {str(k): decode(v, buffers) for k, v in _as_list(desc.get("items"))}
    if t == "tensor":
        return _decode_tensor(desc, buffers)
    if t == "ndarray":
        dtype = desc.get("dtype")
        if dtype not in NUMPY_DTYPES:
            raise ProtocolError(f"dtype {dtype!r} not allowed")
        shape = _shape(desc)
        raw = _buffer(desc, buffers)
        if len(raw) != math.prod(shape) * np.dtype(dtype).itemsize:
            raise ProtocolError("array byte count does not match its shape")
        return NumpyArray(np.frombuffer(raw, dtype=dtype).reshape(shape).copy())
    if t == "object":
        number, device = desc.get("number"), desc.get("device")
        return Opaque(str(desc.get("type", "object"))[:200], str(desc.get("repr", ""))[:MAX_REPR],
                      bool(desc.get("callable", False)) if number is None else False,
                      device=device[:40] if isinstance(device, str) else "")
    raise ProtocolError(f"unknown value kind {t!r}")


def _as_list(x) -> list:
    if not isinstance(x, list):
        raise ProtocolError("expected a list")
    return x


def _shape(desc) -> list[int]:
    shape = _as_list(desc.get("shape"))
    if len(shape) > 16 or not all(type(s) is int and 0 <= s < 2**40 for s in shape):
        raise ProtocolError("malformed shape")
    return shape


def _buffer(desc, buffers) -> bytes:
    index = desc.get("buf")
    if type(index) is not int or not 0 <= index < len(buffers):
        raise ProtocolError("buffer index out of range")
    return buffers[index]


def _decode_tensor(desc, buffers) -> torch.Tensor:
    dtype = TORCH_DTYPES.get(desc.get("dtype"))
    if dtype is None:
        raise ProtocolError(f"dtype {desc.get('dtype')!r} not allowed")
    shape = _shape(desc)
    raw = _buffer(desc, buffers)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if len(raw) != math.prod(shape) * itemsize:
        raise ProtocolError("tensor byte count does not match its shape")
    if len(raw) == 0:
        tensor = torch.empty(shape, dtype=dtype)
    else:
        raw = raw if isinstance(raw, (bytearray, np.ndarray)) else bytearray(raw)  # must be writable
        tensor = torch.frombuffer(raw, dtype=dtype).reshape(shape)
    for attr, sub in (desc.get("attrs") or {}).items():
        if attr == "g":
            tensor.g = decode(sub, buffers)
    return tensor


# --------------------------------------------------------------------------- frames
def send(fd: int, header: dict, buffers: list = ()) -> None:
    """Write one frame to a file descriptor."""
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [struct.pack("!II", len(head), len(buffers)), head]
    for buf in buffers:
        parts.append(struct.pack("!Q", memoryview(buf).nbytes))
        parts.append(buf)
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytearray | np.ndarray:
    """Read exactly ``n`` bytes into one writable buffer (no intermediate copies; a large
    one is an uninitialised uint8 array, since zero-filling it first would cost a pass)."""
    buf = bytearray(n) if n < LARGE else np.empty(n, dtype=np.uint8)
    view, done = memoryview(buf), 0
    while done < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("no answer from the worker in time")
        got = os.readv(fd, [view[done:done + (1 << 24)]])
        if not got:
            raise EOFError("the worker closed its pipe")
        done += got
    return buf


def recv(fd: int, *, max_bytes: int = 4 * 2**30,
         deadline: float | None = None) -> tuple[dict, list[bytes]]:
    """Read one frame; refuse frames larger than ``max_bytes`` in total.

    With a ``deadline`` (a ``time.monotonic()`` value), raise TimeoutError when the
    whole frame has not arrived by then.
    """
    def read(n):
        return _read_exact(fd, n, deadline)

    head_len, nbuf = struct.unpack("!II", read(8))
    if head_len > MAX_HEADER or nbuf > 100_000:
        raise ProtocolError("frame header too large")
    try:
        header = json.loads(read(head_len))
    except ValueError as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    buffers, total = [], head_len
    for _ in range(nbuf):
        (size,) = struct.unpack("!Q", read(8))
        total += size
        if total > max_bytes:
            raise ProtocolError(f"the worker sent more than {max_bytes >> 20} MiB in one reply")
        buffers.append(read(size))
    return header, buffers
