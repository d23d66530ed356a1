"""One wrong gradient in lin_grad: the same partial score and message in every front end.

The known-bad notebook ``03_backward-fail-lin_grad-averaged-bias.ipynb`` averages the
bias gradient instead of summing it: ``inp.g`` and ``w.g`` are right, ``b.g`` is not, so
``lin_grad`` scores 2 of its 3 points. The command line (JSON and text), ``pytest
autograder``, ``check()`` in a kernel's namespace, the real ``nbgrader autograde``
(gradebook and autograded notebook), the CSV export and the Gradescope results must all
say so, with the same message.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "tests" / "submissions" / "03_backward-fail-lin_grad-averaged-bias.ipynb"
HEAD = "lin_grad · lin_grad(inp, out, w, b): 2/3 points: inp.g and w.g are right; b.g is not."


def run(*args: str, cwd: Path = REPO, **kw) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)      # nbgrader calls alembic from PATH
    # This tree's kit, also where nbgrader runs from a course folder (nbgrader_config.py
    # imports the kit, and an editable install may point at another clone).
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    env.pop("JUPYTER_CONFIG_DIR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900, **kw)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "grades.json"
    proc = run("-m", "autograder", "grade", str(NOTEBOOK), "--json", str(out))
    assert proc.returncode == 1, proc.stderr
    [report] = json.loads(out.read_text())
    result = next(e for e in report["exercises"] if e["name"] == "lin_grad")
    return proc, out, report, result


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with 03_backward and one student, ada, who submitted the notebook."""
    pytest.importorskip("nbgrader")
    root = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "assignments" / "lesson8").mkdir(parents=True)
    shutil.copy(REPO / "assignments" / "lesson8" / "03_backward.ipynb", root / "assignments" / "lesson8")
    for args in (("generate_assignment", "lesson8"),):
        proc = run("-m", "nbgrader", *args, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    folder = root / "submitted" / "ada" / "lesson8"
    folder.mkdir(parents=True)
    shutil.copy(NOTEBOOK, folder / "03_backward.ipynb")
    proc = run("-m", "nbgrader", "autograde", "lesson8", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_the_partial_score_and_message_agree_everywhere(cli, course, gradescope, tmp_path):
    """Do the CLI, pytest, check(), nbgrader, Gradescope and the CSV give lin_grad 2/3 with
    one message?"""
    proc, json_path, report, result = cli
    message = result["message"]
    assert message.splitlines()[0] == HEAD
    assert "b.g: " in message and "don't average" in message
    assert (result["score"], result["max_score"], result["passed"]) == (2, 3, False)
    assert result["parts"] == [{"name": "inp.g", "score": 1.0, "max_score": 1.0},
                               {"name": "w.g", "score": 1.0, "max_score": 1.0},
                               {"name": "b.g", "score": 0.0, "max_score": 1.0}]
    assert f"[FAIL] 2/3  {HEAD}" in proc.stdout                       # the text report

    # pytest autograder: a failure (not full marks), with the message
    tested = run("-m", "pytest", "autograder", "--notebook", str(NOTEBOOK), "-p", "no:cacheprovider",
                 "-rN", "-k", "lin_grad")
    assert tested.returncode == 1 and "1 failed" in tested.stdout, tested.stdout[-2000:]
    assert all(line in tested.stdout for line in message.splitlines()), tested.stdout[-3000:]

    # check() in a kernel's namespace: the student's own definition
    import autograder
    nb = json.loads(NOTEBOOK.read_text())
    cell = next("".join(c["source"]) for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "lin_grad")
    ns = {"__name__": "__main__", "check": autograder.check, "In": ["", cell]}
    exec("import torch\n" + cell, ns)
    with pytest.raises(autograder.CheckFailed) as info:
        exec('check("lin_grad")', ns)
    assert str(info.value) == message
    assert (info.value.score, info.value.max_score) == (2, 3)

    # nbgrader: the gradebook holds the partial score, the graded cell the message
    from nbgrader.api import Gradebook
    with Gradebook("sqlite:///" + str(course / "gradebook.db")) as gb:
        sub = gb.find_submission_notebook("03_backward", "lesson8", "ada")
        grades = {g.cell.name: (g.auto_score, g.max_score) for g in sub.grades}
    assert grades["test_lin_grad"] == (2.0, 3.0)
    assert all(score == top for name, (score, top) in grades.items() if name != "test_lin_grad")
    graded = json.loads((course / "autograded" / "ada" / "lesson8" / "03_backward.ipynb").read_text())
    test_cell = next(c for c in graded["cells"]
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_lin_grad")
    streams = ["".join(o["text"]) for o in test_cell["outputs"] if o["output_type"] == "stream"]
    assert streams == [message + "\n"]

    # Gradescope: the bundle's run_autograder (tests/conftest.py builds and sets it up)
    _, results = gradescope["grade"]({"03_backward.ipynb": NOTEBOOK})
    lin = next(t for t in results["tests"] if t["name"] == "lin_grad")
    assert (lin["score"], lin["max_score"], lin["output"]) == (2, 3, message)
    assert results["score"] == report["score"]

    # the CSV, from the JSON and from the gradebook
    for source in ([str(json_path)], ["--gradebook", str(course / "gradebook.db"), "--assignment", "lesson8"]):
        out = tmp_path / "grades.csv"
        made = run("-m", "autograder", "report", *source, "--csv", str(out))
        assert made.returncode == 0, made.stderr
        with open(out, newline="") as f:
            [row] = list(csv.DictReader(f))
        column = next(k for k in row if k.startswith("lin_grad"))
        assert float(row[column]) == 2.0, row
