"""End to end: a class graded with the real nbgrader commands and the kit's plugin.

A temporary course (a copy of ``nbgrader_config.py`` and ``assignments/``) goes through
``generate_assignment``, ``autograde``, ``generate_feedback`` and ``export``; every
student's per-cell points are read back from the gradebook. One ``autograde`` run grades
the whole class; one ``autograde --force`` run regrades a resubmission.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT, NOTEBOOK = "lesson8", "02_fully_connected"
HIDDEN = re.compile(r"[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S)
# Always added to test_lin in the temporary course: a hidden case with a single-row batch.
EXTRA_HIDDEN = 'check("lin", seed=123, sizes=[(1, 5, 2)])'
CELL_TIMEOUT = 8                                  # seconds; hank's endless loop costs this once


# ----------------------------------------------------------------------------- helpers
def nbgrader(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)      # alembic must be on PATH for a new gradebook
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("JUPYTER_CONFIG_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc


def source(nb: dict, grade_id: str) -> str:
    return "".join(cell_by_id(nb, grade_id)["source"])


def cell_by_id(nb: dict, grade_id: str) -> dict:
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def set_source(nb: dict, grade_id: str, text: str) -> dict:
    cell_by_id(nb, grade_id)["source"] = text
    return nb


def without_hidden(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell["source"] = HIDDEN.sub("", "".join(cell["source"]))
    return nb


def delete_cell(nb: dict, grade_id: str) -> dict:
    nb["cells"].remove(cell_by_id(nb, grade_id))
    return nb


def submit(root: Path, student: str, nb: dict | str) -> None:
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    text = nb if isinstance(nb, str) else json.dumps(nb, indent=1)
    (folder / f"{NOTEBOOK}.ipynb").write_text(text)


def gradebook_totals(root: Path) -> dict[str, tuple[float, float]]:
    """{student: (score, max_score)} of the whole assignment."""
    from nbgrader.api import Gradebook
    with Gradebook("sqlite:///" + str(root / "gradebook.db")) as gb:
        return {s.id: (gb.find_submission(ASSIGNMENT, s.id).score,
                       gb.find_submission(ASSIGNMENT, s.id).max_score) for s in gb.students}


def gradebook_scores(root: Path) -> dict[str, dict[str, tuple[float, bool]]]:
    """{student: {grade_id: (score, needs_manual_grade)}} for the notebook."""
    from nbgrader.api import Gradebook
    out = {}
    with Gradebook("sqlite:///" + str(root / "gradebook.db")) as gb:
        for student in gb.students:
            sub = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student.id)
            out[student.id] = {g.cell.name: (g.score, g.needs_manual_grade) for g in sub.grades}
    return out


def visible_text(page: str) -> str:
    """What a reader of the HTML sees (tags removed, entities decoded)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# ----------------------------------------------------------------------------- the class
def class_submissions(src: dict, release: dict) -> dict[str, dict | str]:
    solution = without_hidden(src)
    subs: dict[str, dict | str] = {"alice": solution, "bob": release}
    subs["carol"] = set_source(copy.deepcopy(solution), "lin", "def lin(x, w, b):\n    return x @ w\n")
    subs["dave"] = '{"cells": [{"cell_type": "code", "source": "def lin(x'     # truncated file
    subs["erin"] = delete_cell(copy.deepcopy(solution), "test_lin")
    frank = set_source(copy.deepcopy(solution), "lin", "def lin(x, w, b):\n    return x @ w\n")
    set_source(frank, "test_lin", 'print("passed")')                 # tampered: restored by nbgrader
    subs["frank"] = set_source(frank, "test_relu", "pass")
    gina = copy.deepcopy(solution)
    set_source(gina, "lin", "import sys, warnings\n\ndef lin(x, w, b):\n"
                            "    print('computing lin', x.shape)\n"
                            "    print('debug: lin called', file=sys.stderr)\n"
                            "    warnings.warn('lin is being graded')\n"
                            "    return x @ w + b\n\n"
                            "warnings.warn('defining lin')\nprint('lin defined')\n")
    subs["gina"] = gina
    hank = copy.deepcopy(solution)
    subs["hank"] = set_source(hank, "kaiming_mode", source(hank, "kaiming_mode") + "\nwhile True:\n    pass\n")
    ivy = copy.deepcopy(solution)           # passes test_lin's visible check, fails a hidden one
    set_source(ivy, "lin", "def lin(x, w, b):\n    if x.shape[0] == 1:\n        return x @ w\n"
                           "    return x @ w + b\n")
    cell_by_id(ivy, "test_relu")["metadata"]["nbgrader"]["grade_id"] = "my_relu_test"
    subs["ivy"] = ivy
    jack = copy.deepcopy(solution)          # cheats: patches torch's comparisons, fakes a report, exits
    set_source(jack, "lin", "import torch\ntorch.allclose = lambda *a, **k: True\n"
                            "torch.equal = lambda *a, **k: True\nprint('✓ lin · lin(x, w, b): passed.')\n"
                            "def lin(x, w, b):\n    return x @ w\n")
    subs["jack"] = set_source(jack, "relu", "import os\ndef relu(x):\n    os._exit(0)\n")
    return subs


def expected_scores(points: dict[str, float]) -> dict[str, dict[str, float]]:
    full = dict(points)

    def but(**zero):
        return {**full, **{k: 0.0 for k in zero}}

    return {
        "alice": full,
        "bob": {k: 0.0 for k in points},
        "carol": but(test_lin=0),
        "dave": {k: 0.0 for k in points},
        "erin": but(test_lin=0),
        "frank": but(test_lin=0),       # its test_lin was `print("passed")`; test_relu was `pass`
        "gina": full,
        "hank": but(test_kaiming_mode=0),
        "ivy": but(test_lin=0, test_relu=0),
        "jack": but(test_lin=0, test_relu=0),
    }


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Grade the class once; snapshot everything the tests look at."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    # Only this notebook (and any data files): the lesson's other notebooks have their own tests.
    shutil.copytree(REPO / "assignments" / ASSIGNMENT, root / "assignments" / ASSIGNMENT,
                    ignore=lambda folder, names: [n for n in names if n.endswith(".ipynb")
                                                  and n != f"{NOTEBOOK}.ipynb"])
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.SandboxGrade.cell_timeout = {CELL_TIMEOUT}\n")

    src_path = root / "assignments" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    src = json.loads(src_path.read_text())
    set_source(src, "test_lin", source(src, "test_lin").rstrip("\n")
               + f"\n### BEGIN HIDDEN TESTS\n{EXTRA_HIDDEN}\n### END HIDDEN TESTS\n")
    src_path.write_text(json.dumps(src, indent=1))
    hidden_lines = [line.strip() for cell in src["cells"]
                    for block in HIDDEN.findall("".join(cell["source"]))
                    for line in block.splitlines() if line.strip() and "HIDDEN TESTS" not in line]
    points = {cell["metadata"]["nbgrader"]["grade_id"]: float(cell["metadata"]["nbgrader"]["points"])
              for cell in src["cells"]
              if cell.get("metadata", {}).get("nbgrader", {}).get("grade")}

    nbgrader(root, "generate_assignment", ASSIGNMENT)
    release = json.loads((root / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text())
    subs = class_submissions(src, release)
    for student, nb in subs.items():
        submit(root, student, nb)

    autograde = nbgrader(root, "autograde", ASSIGNMENT, ok=False)
    scores, totals = gradebook_scores(root), gradebook_totals(root)
    nbgrader(root, "generate_feedback", ASSIGNMENT)
    nbgrader(root, "export", "--to=grades.csv")
    feedback = {s: (root / "feedback" / s / ASSIGNMENT / f"{NOTEBOOK}.html").read_text()
                for s in subs}
    autograded = {s: json.loads((root / "autograded" / s / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text())
                  for s in subs}
    with open(root / "grades.csv", newline="") as f:
        export = {row["student_id"]: row for row in csv.DictReader(f)}
    return {"root": root, "src": src, "release": release, "points": points, "autograde": autograde,
            "scores": scores, "totals": totals, "feedback": feedback, "autograded": autograded, "export": export,
            "hidden_lines": hidden_lines, "students": sorted(subs)}


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_autograde_run_succeeds_for_every_student(graded_class):
    run = graded_class["autograde"]
    assert run.returncode == 0, run.stderr[-4000:]
    assert sorted(graded_class["scores"]) == graded_class["students"]
    assert "IPKernelApp" not in run.stderr        # no Jupyter kernel was started


@pytest.mark.slow
def test_release_hides_hidden_tests(graded_class):
    release = graded_class["release"]
    assert source(release, "test_lin").strip() == 'check("lin")'
    assert "raise NotImplementedError" in source(release, "lin")
    assert graded_class["hidden_lines"], "the source notebook should have hidden tests"


@pytest.mark.slow
@pytest.mark.parametrize("student", ["alice", "bob", "carol", "dave", "erin", "frank", "gina",
                                     "hank", "ivy", "jack"])
def test_per_cell_points(graded_class, student):
    expected = expected_scores(graded_class["points"])[student]
    got = graded_class["scores"][student]
    assert {k: score for k, (score, _) in got.items()} == expected
    flagged = [k for k, (_, manual) in got.items() if manual]
    assert flagged == [], f"{student}: cells left for manual grading: {flagged}"


@pytest.mark.slow
def test_export_matches_gradebook(graded_class):
    export = graded_class["export"]
    assert sorted(export) == graded_class["students"]
    for student, (score, max_score) in graded_class["totals"].items():
        assert float(export[student]["score"]) == pytest.approx(score), student
        assert float(export[student]["max_score"]) == pytest.approx(max_score), student
    for student, cells in graded_class["scores"].items():     # this notebook is the whole assignment
        total = sum(score for score, _ in cells.values())
        assert float(export[student]["score"]) == pytest.approx(total), student
        assert float(export[student]["max_score"]) == pytest.approx(sum(graded_class["points"].values()))


@pytest.mark.slow
def test_test_cells_get_one_teaching_output(graded_class):
    from autograder.reports.cards import MIME
    carol = graded_class["autograded"]["carol"]
    outputs = [o for o in cell_by_id(carol, "test_lin")["outputs"] if o["output_type"] != "display_data"]
    assert len(outputs) == 1 and outputs[0]["output_type"] == "error"
    assert outputs[0]["ename"] == "CheckFailed"
    assert "bias" in outputs[0]["evalue"] or "add b" in outputs[0]["evalue"]
    assert not any("Traceback" in line or "File \"" in line for line in outputs[0]["traceback"])
    for nb in graded_class["autograded"].values():
        for cell in nb["cells"]:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade") and cell["cell_type"] == "code":
                # one verdict, plus the visible checks' evidence for the feedback's figures
                verdicts = [o for o in cell["outputs"] if o["output_type"] != "display_data"]
                kinds = {(o["output_type"], o.get("name")) for o in verdicts}
                assert kinds <= {("stream", "stdout"), ("error", None)}, kinds
                assert len(verdicts) <= 1
                assert all(set(o["data"]) == {MIME, "text/plain"} for o in cell["outputs"]
                           if o["output_type"] == "display_data")
                assert "Traceback (most recent call last)" not in json.dumps(cell["outputs"])
    passed = cell_by_id(graded_class["autograded"]["alice"], "test_lin")["outputs"]
    assert [o["output_type"] for o in passed] == ["stream"] and "✓" in "".join(passed[0]["text"])


@pytest.mark.slow
def test_student_outputs_and_confinement_note_are_shown(graded_class):
    gina = graded_class["autograded"]["gina"]
    shown = json.dumps(cell_by_id(gina, "lin")["outputs"])
    assert "lin defined" in shown
    notes = "".join(gina["cells"][0]["source"])
    assert "Autograder notes" in notes and "worker process" in notes


@pytest.mark.slow
def test_feedback_explains_zero_scores(graded_class):
    text = {s: visible_text(page) for s, page in graded_class["feedback"].items()}
    assert "could not be read" in text["dave"] and "not valid JSON" in text["dave"]
    assert "missing from your notebook" in text["erin"] and "test_lin" in text["erin"]
    assert "did not finish in time" in text["hank"]
    assert "grade_id changed" in text["ivy"]
    assert "A hidden test failed" in text["ivy"] and "lin(x, w, b)" in text["ivy"]
    assert "add b" in text["carol"] or "bias" in text["carol"]


@pytest.mark.slow
def test_feedback_never_shows_hidden_tests(graded_class):
    hidden = graded_class["hidden_lines"]
    for student, page in graded_class["feedback"].items():
        text = visible_text(page)
        assert 'check("get_data")' in text or student == "dave"    # the stripping finds source code
        assert "HIDDEN TESTS" not in text, student
        for line in hidden:
            assert line not in text, (student, line)
        assert "site-packages" not in text and "frontends/nbgrader" not in text, student   # no grader frames


@pytest.mark.slow
def test_feedback_is_self_contained(graded_class):
    for student, page in graded_class["feedback"].items():
        assert not re.search(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", page, re.I), student
        assert not re.search(r"<link\b[^>]*\bhref\s*=\s*[\"']?(https?:)?//", page, re.I), student
        assert not re.search(r"@import\s+url\(\s*[\"']?https?://", page, re.I), student


@pytest.mark.slow
def test_force_regrade_leaves_no_stale_score(graded_class):
    """carol fixes lin (0 -> 2) and deletes test_relu (1 -> 0, not the old 1)."""
    root, src = graded_class["root"], graded_class["src"]
    before = graded_class["scores"]["carol"]
    assert before["test_lin"][0] == 0 and before["test_relu"][0] == graded_class["points"]["test_relu"]
    submit(root, "carol", delete_cell(without_hidden(src), "test_relu"))
    others = ",".join(s for s in graded_class["students"] if s != "carol")
    nbgrader(root, "autograde", ASSIGNMENT, "--force", f"--CourseDirectory.student_id_exclude={others}")
    after = gradebook_scores(root)
    assert after["carol"]["test_lin"] == (graded_class["points"]["test_lin"], False)
    assert after["carol"]["test_relu"] == (0.0, False)
    assert {k: v for k, v in after.items() if k != "carol"} == \
        {k: v for k, v in graded_class["scores"].items() if k != "carol"}


# ----------------------------------------------------------------------------- the plugin's parts
def test_split_hidden():
    from autograder.frontends.nbgrader.plugin import split_hidden
    visible, hidden = split_hidden('check("lin")\n### BEGIN HIDDEN TESTS\ncheck("lin", seed=1)\n'
                                   '### END HIDDEN TESTS\nprint("after")\n')
    assert visible == 'check("lin")\nprint("after")\n'
    assert hidden == 'check("lin", seed=1)\n'
    assert split_hidden("check('x')") == ("check('x')", "")


def _test_cell(src: str):
    from nbformat.v4 import new_code_cell
    cell = new_code_cell(src)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1,
                                 "grade_id": "test_x", "schema_version": 3}
    return cell


def test_test_cell_outputs(monkeypatch):
    import autograder
    from autograder.frontends.nbgrader.plugin import SandboxGrade

    def fake_check(name, **options):
        print("noise", file=sys.stderr)
        if options.get("seed") == 99:
            raise autograder.CheckFailed(f"{name}: wrong for the hidden case.\n  Hint: think.")
        print(f"✓ {name} passed")

    monkeypatch.setattr(autograder, "check", fake_check)
    grader = SandboxGrade()
    hidden = '\n### BEGIN HIDDEN TESTS\ncheck("x", seed=99)\n### END HIDDEN TESTS\n'

    ok = grader._run_test(_test_cell('check("x")'))
    assert [(o.output_type, o.get("name")) for o in ok] == [("stream", "stdout")]
    assert ok[0].text == "✓ x passed\n"

    [failed] = grader._run_test(_test_cell('check("x")' + hidden))
    assert failed.output_type == "error" and failed.ename == "CheckFailed"
    assert failed.evalue.startswith("A hidden test failed: x: wrong for the hidden case.")
    assert failed.traceback[-1] == "  Hint: think." and "seed=99" not in json.dumps(failed)

    grader.show_hidden_messages = False
    [generic] = grader._run_test(_test_cell('check("x")' + hidden))
    assert "wrong for the hidden case" not in json.dumps(generic)

    # Broken test code is the grader's fault: no output (no score), a GraderError to log.
    from autograder.engine.errors import GraderError
    with pytest.raises(GraderError, match="hidden code of test cell test_x raised NameError"):
        grader._run_test(_test_cell('check("x")\n### BEGIN HIDDEN TESTS\nsecret_name(1)\n'
                                    '### END HIDDEN TESTS'))


def test_a_grader_error_in_a_check_is_raised_not_scored(monkeypatch):
    """Does a check the grader could not run raise GraderError out of the test cell,
    instead of becoming an error output that nbgrader would score 0?"""
    import autograder
    from autograder.engine.errors import GraderError
    from autograder.frontends.nbgrader.plugin import SandboxGrade

    def failing_check(name, **options):
        raise GraderError("the grader could not load its references", "Run the preflight")

    monkeypatch.setattr(autograder, "check", failing_check)
    with pytest.raises(GraderError, match="could not load its references"):
        SandboxGrade()._run_test(_test_cell('check("x")'))


def test_test_cells_in_threads_keep_their_own_output(monkeypatch):
    """When two threads run test cells at once, does each get exactly its own printed
    output (the process has one sys.stdout)?"""
    import threading
    import autograder
    from autograder.frontends.nbgrader.plugin import SandboxGrade

    barrier = threading.Barrier(2)

    def chatty_check(name, **options):
        for i in range(200):
            print(f"{name} {i}")
            if i == 100:
                barrier.wait(timeout=10)

    monkeypatch.setattr(autograder, "check", chatty_check)
    results = {}

    def run(name):
        results[name] = SandboxGrade()._run_test(_test_cell(f'check("{name}")'))

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        [out] = results[name]
        assert out.text == "".join(f"{name} {i}\n" for i in range(200))
    assert not type(sys.stdout).__name__ == "_Switch"     # put back afterwards


def test_scrub_hidden_feedback():
    from nbformat.v4 import new_output
    from autograder.frontends.nbgrader.plugin import ScrubHiddenFeedback
    cell = _test_cell('check("x")\n### BEGIN HIDDEN TESTS\ncheck("x", seed=99)\n### END HIDDEN TESTS')
    cell.outputs = [new_output("error", ename="AssertionError", evalue="boom",
                               traceback=["Traceback", '----> 3 check("x", seed=99)', "boom"]),
                    new_output("stream", name="stdout", text='ran check("x", seed=99)\nok\n')]
    ScrubHiddenFeedback().preprocess_cell(cell, {}, 0)
    assert "seed=99" not in json.dumps(cell.outputs)
    assert cell.outputs[1].text == "ok\n"


def test_offline_feedback_strips_external_assets():
    from autograder.frontends.nbgrader.plugin import _EXTERNAL
    page = ('<head><script src="https://cdn.example/mathjax.js"> </script>'
            '<link rel="stylesheet" href="//cdn.example/x.css"><script>local()</script>'
            '<style>a{}</style></head><a href="https://example.org">a link</a>')
    assert _EXTERNAL.sub("", page) == ('<head><script>local()</script><style>a{}</style></head>'
                                       '<a href="https://example.org">a link</a>')


def test_unreadable_notebook_becomes_empty_with_a_note(tmp_path):
    from autograder.frontends.nbgrader.plugin import SafeNotebookExporter
    path = tmp_path / "nb.ipynb"
    path.write_text('{"cells": [')
    body, _ = SafeNotebookExporter().from_filename(str(path))
    nb = json.loads(body)
    assert nb["cells"] == []
    [note] = nb["metadata"]["autograder"]["notes"]
    assert "could not be read" in note and "JSON" in note


def _metadata_notebook(*cells):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    made = []
    for kind, meta in cells:
        cell = (new_code_cell if kind == "code" else new_markdown_cell)("x = 1")
        cell.metadata["nbgrader"] = meta
        made.append(cell)
    return new_notebook(cells=made)


GOOD = {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "test_x",
        "schema_version": 3}


@pytest.mark.parametrize("bad", [
    {**GOOD, "grade_id": ""},                                   # empty grade_id
    {k: v for k, v in GOOD.items() if k != "points"},           # a grade cell without points
    {**GOOD, "points": "one"},                                  # the schema: points is a number
    {**GOOD, "schema_version": 2},                              # too old
], ids=["empty-id", "no-points", "schema", "old-schema"])
def test_check_cell_metadata_once_rejects_what_nbgrader_rejects(bad):
    """The kit's CheckCellMetadataOnce agrees with nbgrader's CheckCellMetadata, also after
    the same cell's valid metadata was remembered."""
    from nbgrader.preprocessors import CheckCellMetadata

    from autograder.frontends.nbgrader.plugin import CheckCellMetadataOnce
    ok = _metadata_notebook(("code", GOOD))
    for preprocessor in (CheckCellMetadata(), CheckCellMetadataOnce()):
        preprocessor.preprocess(copy.deepcopy(ok), {})          # valid: no error, remembered
    for preprocessor in (CheckCellMetadata(), CheckCellMetadataOnce()):
        with pytest.raises(Exception) as raised:
            preprocessor.preprocess(_metadata_notebook(("code", bad)), {})
        assert "failed to validate" in str(raised.value) or "schema" in str(raised.value).lower()
    duplicate = _metadata_notebook(("code", GOOD), ("code", GOOD))   # each cell valid, ids clash
    for preprocessor in (CheckCellMetadata(), CheckCellMetadataOnce()):
        with pytest.raises(Exception, match="failed to validate"):
            preprocessor.preprocess(copy.deepcopy(duplicate), {})


def test_check_cell_metadata_once_remembers_only_what_validated(caplog):
    from autograder.frontends.nbgrader.plugin import CheckCellMetadataOnce, _RememberingValidator
    meta = {**GOOD, "grade_id": "test_remembered"}
    CheckCellMetadataOnce().preprocess(_metadata_notebook(("code", meta)), {})
    assert ("code", json.dumps(meta, sort_keys=True)) in _RememberingValidator.valid
    bad = {**meta, "points": "one"}
    for _ in range(2):          # never remembered: raised every time
        with pytest.raises(Exception, match="failed to validate"):
            CheckCellMetadataOnce().preprocess(_metadata_notebook(("code", bad)), {})
    assert not any(key[1] == json.dumps(bad, sort_keys=True) for key in _RememberingValidator.valid)
    changed = {**meta, "grade_id": "test_changed", "cell_type": "markdown"}   # nbgrader warns
    for _ in range(2):
        CheckCellMetadataOnce().preprocess(_metadata_notebook(("code", changed)), {})
    assert ("code", json.dumps(changed, sort_keys=True)) not in _RememberingValidator.valid
