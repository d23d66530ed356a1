"""The gradebook export (``report ... --csv``): read back with the csv module, it must say
what the JSON and the nbgrader gradebook say, with grader errors empty, never 0."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from autograder.engine.grade import catalogue
from autograder.engine.report import ExerciseResult, NotebookReport, write_json
from autograder.reports import classreport
from autograder.reports.gradebook import student_of, write_csv

CHECKS = catalogue()
MATMUL = [ex.name for ex in CHECKS.NOTEBOOKS["01_matmul"]]
BACKWARD = [ex.name for ex in CHECKS.NOTEBOOKS["03_backward"]]
FIXED = ["Student", "SIS Login ID"]
TAIL = ["Total", "Grader errors", "Notes"]


def full(kind: str, path: str, **changes) -> NotebookReport:
    """A report of ``kind`` with every exercise passed, except ``changes`` (name: result)."""
    exercises = []
    for ex in CHECKS.NOTEBOOKS[kind]:
        exercises.append(changes.get(ex.name) or ExerciseResult(ex.name, True, ex.points, ex.points,
                                                                f"{ex.name} · passed."))
    return NotebookReport(path, exercises)


def a_class() -> list[NotebookReport]:
    lin = ExerciseResult("lin_grad", False, 2.0, 3.0, "lin_grad · 2/3 points: ...", parts=[
        {"name": "inp.g", "score": 1.0, "max_score": 1.0}, {"name": "w.g", "score": 1.0, "max_score": 1.0},
        {"name": "b.g", "score": 0.0, "max_score": 1.0}])
    broken = ExerciseResult("relu_grad", False, 0, 1, "relu_grad · relu_grad(inp, out): not graded: the "
                            "grader's own code raised KeyError.\n  The grader itself failed here", grader_error=True)
    return [
        full("01_matmul", "submitted/alice/lesson8/01_matmul.ipynb"),
        full("03_backward", "submitted/alice/lesson8/03_backward.ipynb", lin_grad=lin),
        full("01_matmul", "submitted/bob/lesson8/01_matmul.ipynb"),
        full("03_backward", "submitted/bob/lesson8/03_backward.ipynb", relu_grad=broken),
        NotebookReport("submitted/=cmd|x/lesson8/01_matmul.ipynb", error="not valid JSON (line 3)"),
        NotebookReport("submitted/dora/lesson8/03_backward.ipynb", grader_failure="the lesson's data is unavailable"),
    ]


def read_back(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames), list(reader)


def test_one_row_per_student_one_column_per_exercise_then_the_total(tmp_path):
    """Does the export have the documented header, a row per student and each score?"""
    path = tmp_path / "class.json"
    write_json(a_class(), path)
    out = tmp_path / "grades.csv"
    assert classreport.main([path], csv=out, out=io.StringIO()) == 0
    header, rows = read_back(out.read_text())
    assert header == FIXED + MATMUL + BACKWARD + TAIL
    by = {r["Student"]: r for r in rows}
    assert sorted(by) == ["'=cmd|x", "alice", "bob", "dora"]          # a formula is not a formula

    # the export says what the JSON says, cell by cell
    for entry in json.loads(path.read_text()):
        student = student_of(entry["notebook"], notebooks=set(CHECKS.NOTEBOOKS), lessons=set(CHECKS.LESSONS))
        row = by.get(student) or by["'" + student]
        for e in entry["exercises"]:
            assert row[e["name"]] == ("" if e["grader_error"] else f"{e['score']:g}"), (student, e["name"])

    alice = by["alice"]
    assert alice["lin_grad"] == "2" and alice["Grader errors"] == "" and alice["Notes"] == ""
    total = sum(ex.points for name in ("01_matmul", "03_backward") for ex in CHECKS.NOTEBOOKS[name])
    assert float(alice["Total"]) == total - 1

    bob = by["bob"]                  # a grader error: an empty cell and an empty total, never 0
    assert bob["relu_grad"] == "" and bob["Total"] == ""
    assert bob["Grader errors"].startswith("relu_grad: relu_grad(inp, out): not graded")

    dora = by["dora"]                # the grader failed on the whole notebook
    assert all(dora[name] == "" for name in BACKWARD) and dora["Total"] == ""
    assert dora["Grader errors"] == "03_backward: the lesson's data is unavailable"
    assert all(dora[name] == "" for name in MATMUL)          # not in the input: empty, and said
    assert "01_matmul: no notebook in the input" in dora["Notes"]

    cmd = by["'=cmd|x"]              # unreadable: the student's own, 0 with the reason
    assert all(cmd[name] == "0" for name in MATMUL)
    assert "01_matmul: not valid JSON (line 3)" in cmd["Notes"]


def test_the_points_row_is_canvas_style(tmp_path):
    """With --points-row, is the second row "Points Possible" with each column's maximum?"""
    out = io.StringIO()
    write_csv(a_class()[:2], out, points_row=True)
    header, rows = read_back(out.getvalue())
    points = rows[0]
    assert points["Student"] == "Points Possible" and points["SIS Login ID"] == ""
    assert points["lin_grad"] == "3" and points["matmul_loops"] == "2"
    assert float(points["Total"]) == sum(float(points[c]) for c in MATMUL + BACKWARD)
    assert [r["Student"] for r in rows[1:]] == ["alice"]


@pytest.mark.parametrize("path, student", [
    ("submitted/alice/lesson8/01_matmul.ipynb", "alice"),
    ("alice/01_matmul", "alice"),                       # nbgrader's gradebook
    ("bob.ipynb", "bob"),
    ("tests/submissions/03_backward-fail-lin_grad-averaged-bias.ipynb", "03_backward-fail-lin_grad-averaged-bias"),
    ("carol/01_matmul.ipynb", "carol"),
])
def test_who_a_notebook_belongs_to(path, student):
    """Is the student read from nbgrader's layout, or else from the file's name?"""
    assert student_of(path, notebooks=set(CHECKS.NOTEBOOKS), lessons=set(CHECKS.LESSONS)) == student


@pytest.mark.slow
def test_the_export_of_a_real_gradebook_matches_it(feedback_course, tmp_path):
    """From a real nbgrader gradebook, does every cell hold that student's auto score?"""
    from nbgrader.api import Gradebook
    out = tmp_path / "grades.csv"
    assert classreport.main(gradebook=feedback_course["gradebook"], assignment="lesson8", csv=out,
                            out=io.StringIO()) == 0
    header, rows = read_back(out.read_text())
    fully = [ex.name for ex in CHECKS.NOTEBOOKS["02_fully_connected"]]
    assert header == FIXED + fully + TAIL
    by = {r["Student"]: r for r in rows}
    with Gradebook("sqlite:///" + str(feedback_course["gradebook"])) as gb:
        for student in ("ada", "ben"):
            nb = gb.find_submission_notebook("02_fully_connected", "lesson8", student)
            scores = {g.name.removeprefix("test_"): g.auto_score for g in nb.grades
                      if g.cell_type == "code" and g.auto_score is not None}
            assert {c: float(by[student][c]) for c in fully} == scores
            assert float(by[student]["Total"]) == pytest.approx(sum(scores.values()))
            assert by[student]["Grader errors"] == ""
    assert float(by["ada"]["init_kaiming"]) == 0 and float(by["ben"]["init_kaiming"]) > 0


def test_docs_describe_the_columns():
    """Does the instructors' page name every column the export writes?"""
    page = (Path(__file__).resolve().parents[1] / "docs" / "gradebook-export.md").read_text()
    for column in FIXED + TAIL + ["Points Possible"]:
        assert f"`{column}`" in page, column
