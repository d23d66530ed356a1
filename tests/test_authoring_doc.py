"""Does docs/authoring.md work, followed verbatim by someone who has only the kit?

The page's files (a line `` `PATH`: `` or `` `PATH` (append): `` followed by a fenced
block) are written, and its commands (``$ ...`` lines of ``console`` blocks) are run, in
the page's order, in an empty folder with the kit's virtual environment first on PATH.
A command ending in ``# exits N`` must exit with N, every other one with 0. Then the
course the page built is graded through the front ends the page does not run itself:
pytest and ``check()`` in a real Jupyter kernel, and the results are compared.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "authoring.md"
VENV_BIN = str(Path(sys.executable).parent)
FILE = re.compile(r"^`(?P<path>[^`]+)`(?P<append> \(append\))?:$")
FENCE = re.compile(r"^```(?P<lang>\w*)$")
EXITS = re.compile(r"#\s*exits (\d+)\s*$")

pytestmark = pytest.mark.slow


def steps(text: str) -> list[tuple[str, ...]]:
    """The page as a list of ("file", path, mode, body) and ("run", command, status)."""
    out, lines, i, pending = [], text.splitlines(), 0, None
    while i < len(lines):
        line = lines[i]
        m = FILE.match(line.strip())
        if m:
            pending = (m["path"], "a" if m["append"] else "w")
        fence = FENCE.match(line.strip())
        if fence:
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            body = "\n".join(lines[i + 1:j]) + "\n"
            if pending and lines[i - 1].strip().startswith("`"):
                out.append(("file", pending[0], pending[1], body))
            elif fence["lang"] == "console":
                for cmd in (b[2:] for b in body.splitlines() if b.startswith("$ ")):
                    status = EXITS.search(cmd)
                    out.append(("run", cmd, int(status.group(1)) if status else 0))
            pending, i = None, j
        i += 1
    return out


def test_the_page_parses_into_files_and_commands():
    """Does the parser see what the page holds (so the follow-through test tests something)?"""
    found = steps(DOC.read_text())
    files = [s[1] for s in found if s[0] == "file"]
    runs = [s[1] for s in found if s[0] == "run"]
    assert {"lessons/vectors/__init__.py", "lessons/vectors/checks.py", "make_source.py",
            "nbgrader_config.py"} <= set(files)
    assert any(r.startswith("python -m autograder lint-lesson") for r in runs)
    assert any(r.startswith("nbgrader autograde") for r in runs)
    assert sum(1 for s in found if s[0] == "run" and s[2] == 1) >= 2


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course the page builds, step by step; each command's output is kept."""
    folder = tmp_path_factory.mktemp("vectors-course")
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": ""}
    env.pop("AUTOGRADER_LESSONS", None)
    outputs = {}
    for step in steps(DOC.read_text()):
        if step[0] == "file":
            _, path, mode, body = step
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, mode, encoding="utf-8") as f:
                f.write(body)
            continue
        _, cmd, status = step
        proc = subprocess.run(["bash", "-c", cmd], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert proc.returncode == status, (f"`{cmd}` exited {proc.returncode}, the page says {status}\n"
                                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        outputs[cmd] = proc.stdout + proc.stderr
    return folder, outputs, env


def _output(outputs: dict, start: str) -> str:
    return next(v for k, v in outputs.items() if k.startswith(start))


def test_the_page_builds_a_lesson_that_grades(course):
    """Do the page's own commands give what its text promises?"""
    folder, outputs, _ = course
    assert "score: 3/3" in _output(outputs, "python -m autograder grade solutions/")
    stub = _output(outputs, "python -m autograder grade release/")
    assert stub.count("not implemented yet") == 2 and "score: 0/3" in stub
    bad = _output(outputs, "python -m autograder grade known-bad/")
    assert "[FAIL] 0/2  dot · dot(a, b): uses `@` (line 2), which this exercise asks you to build yourself." in bad
    assert "[PASS] 1/1  norm" in bad
    assert "BEGIN HIDDEN" not in (folder / "release/vectors/01_vectors.ipynb").read_text()


def test_nbgrader_grades_the_lesson(course):
    """Does the real nbgrader autograde + feedback of the page hold ada's 1 of 3 points?"""
    folder, _, env = course
    proc = subprocess.run(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("
         "'select sum(auto_score) from grade').fetchone()[0])", str(folder / "gradebook.db")],
        capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "1.0", proc.stderr
    page = (folder / "feedback/ada/vectors/01_vectors.html").read_text()
    assert "which this exercise asks you to build yourself" in page
    assert "seed=7" not in page and "HIDDEN" not in page


def test_pytest_and_the_kernel_agree_with_the_command_line(course):
    """Do pytest and check() in a real kernel give the command line's verdicts and messages?"""
    folder, outputs, env = course
    bad = folder / "known-bad/01_vectors-fail-dot-uses-matmul.ipynb"
    lesson = folder / "lessons/vectors"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "autograder"), "--notebook", str(bad), "--lesson", str(lesson)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 failed, 1 passed" in proc.stdout
    assert "dot(a, b): uses `@` (line 2), which this exercise asks you to build yourself." in proc.stdout

    from nbclient import NotebookClient
    import nbformat
    nb = nbformat.read(bad, as_version=4)
    probe = ("import autograder, json\nautograder.add_lessons(%r)\nout = {}\n"
             "for name in ('dot', 'norm'):\n"
             "    try:\n        check(name)\n        out[name] = 'passed'\n"
             "    except AssertionError as exc:\n        out[name] = str(exc).splitlines()[0]\n"
             "print('RESULT' + json.dumps(out))" % str(lesson))
    nb.cells = [c for c in nb.cells if c.cell_type != "code" or
                c.metadata.get("nbgrader", {}).get("grade") is not True]
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    got = json.loads(text.split("RESULT", 1)[1])
    assert got["norm"] == "passed"
    assert got["dot"] == "dot · dot(a, b): uses `@` (line 2), which this exercise asks you to build yourself."
