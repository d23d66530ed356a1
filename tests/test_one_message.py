"""One mistake, one message, whichever front end shows it.

Every submission notebook the project keeps (``tests/submissions/*.ipynb``, the known-bad
ones and the correct ones in other styles, and ``examples/*.ipynb``) is graded three
ways, and each exercise must get the same verdict and the same first line of its
message from all three:

* the command line (``python -m autograder grade --jobs 2 --json``), all notebooks in
  one run;
* ``pytest autograder --notebook ...``, all notebooks in one run, read from its JUnit XML;
* ``check(name)`` in a real Jupyter kernel, one fresh kernel per notebook: the
  notebook's own cells run first (each sent with its cell id, as JupyterLab does), then
  one ``check()`` per exercise, as a student would run the test cells.

The kernels draw no figures (:data:`NO_PICTURES`): the pictures are made after a result
is decided and never change it (tests/test_figures.py tests them), and drawing them for
every exercise of ninety notebooks would double this test's time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.engine import registry as checks
from autograder.engine.grade import identify
from autograder.engine.notebook import read_notebook

pytestmark = [pytest.mark.slow, pytest.mark.long]   # ~8 min on a quiet machine: its own CI step

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "tests" / "submissions").glob("*.ipynb")) + sorted((ROOT / "examples").glob("*.ipynb"))
KERNELS_AT_ONCE = 2
NO_PICTURES = ("import autograder.reports.cards, autograder.engine.evidence\n"
               "autograder.engine.evidence.extras = lambda *args: None\n"
               "autograder.reports.cards.figures_for = lambda evidence: []\n")


def first_line(message: str) -> str:
    return message.removeprefix("✓ ").splitlines()[0] if message else ""


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> dict:
    """notebook name -> exercise -> (passed, first line), from one `grade --json` run."""
    out = tmp_path_factory.mktemp("cli") / "grades.json"
    subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, NOTEBOOKS), "--jobs", "2",
                    "--json", str(out), "--quiet"], cwd=ROOT, capture_output=True, timeout=1200)
    return {Path(r["notebook"]).name: {e["name"]: (e["passed"], first_line(e["message"])) for e in r["exercises"]}
            for r in json.loads(out.read_text())}


@pytest.fixture(scope="module")
def pytest_front(tmp_path_factory) -> dict:
    """The same, from one `pytest autograder --notebook ...` run (its JUnit XML; a passed
    exercise has no message there)."""
    xml = tmp_path_factory.mktemp("pytest") / "junit.xml"
    args = [a for path in NOTEBOOKS for a in ("--notebook", str(path))]
    subprocess.run([sys.executable, "-m", "pytest", "autograder", *args, "-p", "no:cacheprovider", "-q",
                    f"--junitxml={xml}"], cwd=ROOT, capture_output=True, timeout=1200)
    found: dict = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        notebook = case.get("classname", "").removeprefix("autograder.test_notebooks.")
        failure = case.find("failure")
        message = "" if failure is None else (failure.text or failure.get("message", ""))
        found.setdefault(notebook, {})[case.get("name")] = (failure is None, first_line(message))
    return found


def run_in_kernel(cells: list[tuple[str | None, str]], cwd: Path) -> list[list[dict]]:
    """Run ``(cell id, code)`` pairs in one fresh kernel, each sent with its cell id in the
    request's metadata (as JupyterLab and Notebook 7 do); the outputs of each cell."""
    from jupyter_client.manager import KernelManager
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # IPC sockets at absolute paths: kernels started at once cannot pick the same TCP ports.
    sockets = tempfile.mkdtemp(prefix="kernel-")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "ipc"))
    km.start_kernel(cwd=str(cwd), env=env)
    kc = km.client()
    kc.start_channels()
    results = []
    try:
        kc.wait_for_ready(timeout=120)
        for cell_id, code in cells:
            content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                       "allow_stdin": False, "stop_on_error": False}
            msg = kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
            kc.shell_channel.send(msg)
            outputs: list[dict] = []
            while True:
                reply = kc.get_iopub_msg(timeout=300)
                if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                    continue
                kind = reply["msg_type"]
                if kind == "status" and reply["content"]["execution_state"] == "idle":
                    break
                if kind in ("display_data", "error"):
                    outputs.append({"output_type": kind, **reply["content"]})
            kc.get_shell_msg(timeout=300)
            results.append(outputs)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    return results


def kernel_verdicts(path: Path) -> dict:
    """exercise -> (passed, first line) from check() in a fresh kernel on ``path``."""
    nb = read_notebook(path)
    names = [ex.name for ex in checks.NOTEBOOKS[identify(nb)]]
    raw = json.loads(path.read_text())
    ids = [c.get("id") for c in raw["cells"]]
    cells = ([(None, NO_PICTURES)] + [(ids[c.index], c.source) for c in nb.code_to_run()]
             + [(None, f"check({n!r})") for n in names])
    outputs = run_in_kernel(cells, path.parent)[-len(names):]
    found = {}
    for name, outs in zip(names, outputs):
        shown = [o["data"]["text/plain"] for o in outs if o["output_type"] == "display_data"]
        errors = [o for o in outs if o["output_type"] == "error"]
        if errors and errors[0]["ename"] != "CheckFailed":
            found[name] = (False, f"{errors[0]['ename']}: {errors[0]['evalue']}")
        else:
            found[name] = (not errors, first_line(shown[0] if shown else ""))
    return found


@pytest.fixture(scope="module")
def kernel() -> dict:
    with ThreadPoolExecutor(KERNELS_AT_ONCE) as pool:
        return dict(zip((p.name for p in NOTEBOOKS), pool.map(kernel_verdicts, NOTEBOOKS)))


def test_every_front_end_gives_the_same_verdict_and_first_line(cli, pytest_front, kernel):
    """For every kept submission and every exercise: do the command line, `pytest
    autograder` and check() in a kernel agree on pass/fail and on the message's first line?"""
    assert sorted(cli) == sorted(p.name for p in NOTEBOOKS)
    differ = []
    for notebook, results in cli.items():
        assert results, notebook
        for name, want in results.items():
            for where, found in (("pytest", pytest_front), ("kernel", kernel)):
                got = found.get(notebook, {}).get(name, "(no result)")
                if where == "pytest" and got == (True, "") and want[0]:
                    continue                    # a passing pytest item carries no message
                if got != want:
                    differ.append(f"{notebook} {name}:\n  cli:    {want}\n  {where}: {got}")
    assert not differ, f"{len(differ)} differences:\n" + "\n".join(differ)
    assert any(not passed for results in cli.values() for passed, _ in results.values())
