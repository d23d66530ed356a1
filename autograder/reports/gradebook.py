"""The gradebook export: one row per student, one column per exercise, then the total.

    python -m autograder report CLASS.json [...] --csv grades.csv [--points-row]
    python -m autograder report --gradebook gradebook.db --assignment lesson8 --csv grades.csv

Reads the same inputs as the class report (``grade --json`` files, or nbgrader's
gradebook) and writes a CSV that an LMS gradebook imports (Canvas: Grades → Import;
Moodle: Grade administration → Import → CSV file). The columns, in order:

* ``Student`` and ``SIS Login ID``: the student (nbgrader's student id; for ``grade
  --json``, the folder above the assignment folder in ``<student>/<assignment>/<notebook>.ipynb``,
  else the file's name without ``.ipynb``);
* one column per exercise, named by its grade_id, in the lesson's order (only the
  notebooks that appear in the input); a score, partial credit included;
* ``Total``: the sum of the row's exercises;
* ``Grader errors``: where the grader could not grade (the exercise, and why). Such an
  exercise's cell is **empty, never 0**, and so is the total: it is a run to repeat,
  not a grade;
* ``Notes``: the student's own problems that scored 0 (an unreadable notebook) or left
  cells empty (a notebook of the lesson not in the input).

With ``points_row`` a second row ``Points Possible`` carries each column's maximum, as
Canvas's own export does (leave it out for Moodle, which would read it as a student).
Nothing else is written: no formulas (a cell starting with ``=``, ``+``, ``-`` or ``@``
from a student's file name is prefixed with ``'``), no index column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TextIO

from ..engine.report import NotebookReport

__all__ = ["STUDENT", "LOGIN", "TOTAL", "GRADER_ERRORS", "NOTES", "Row", "rows", "student_of",
           "write_csv"]

STUDENT, LOGIN, TOTAL, GRADER_ERRORS, NOTES = "Student", "SIS Login ID", "Total", "Grader errors", "Notes"


@dataclass
class Row:
    student: str
    scores: dict[str, float | None] = field(default_factory=dict)   # None: the grader failed there
    grader_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def total(self, columns: list[str]) -> float | None:
        values = [self.scores.get(c) for c in columns]
        if any(v is None for v in values):
            return None
        return sum(values)


def student_of(notebook: str, *, notebooks: set[str], lessons: set[str]) -> str:
    """Who a report belongs to: ``alice`` for ``submitted/alice/lesson8/01_matmul.ipynb``
    (or nbgrader's ``alice/01_matmul``), else the file name: ``bob`` for ``bob.ipynb``."""
    path = PurePosixPath(str(notebook).replace("\\", "/"))
    if path.stem in notebooks and len(path.parts) >= 2:
        parent = path.parent
        if parent.name in lessons and len(parent.parts) >= 2:
            return parent.parent.name
        return parent.name
    return path.stem


def rows(reports: list[NotebookReport], *, student_of_report=None) -> tuple[list[str], dict[str, float], list[Row]]:
    """``(exercise columns, their maximum, one row per student)`` from notebook reports.

    A notebook is one of the lesson's by its exercises (or, unreadable, by its file name).
    """
    from ..engine.grade import catalogue
    checks = catalogue()
    kinds = {name: [ex.name for ex in exercises] for name, exercises in checks.NOTEBOOKS.items()}
    points = {ex.name: float(ex.points) for ex in checks.EXERCISES.values()}
    who = student_of_report or (lambda r: student_of(r.notebook, notebooks=set(kinds),
                                                     lessons=set(checks.LESSONS)))
    by_student: dict[str, Row] = {}
    seen_kinds: set[str] = set()
    for report in reports:
        row = by_student.setdefault(who(report), Row(who(report)))
        kind = _kind(report, kinds)
        name = Path(report.notebook).name
        if kind is None:
            row.notes.append(f"{name}: not one of the lesson's notebooks"
                             + (f" ({report.error})" if report.error else ""))
            continue
        seen_kinds.add(kind)
        if report.grader_failure:
            for ex in kinds[kind]:
                row.scores[ex] = None
            row.grader_errors.append(f"{kind}: {report.grader_failure}")
            continue
        if report.error and not report.exercises:        # unreadable: the student's, 0
            for ex in kinds[kind]:
                row.scores.setdefault(ex, 0.0)
            row.notes.append(f"{kind}: {report.error}")
            continue
        results = {e.name: e for e in report.exercises}
        for ex in kinds[kind]:
            result = results.get(ex)
            if result is None:
                row.scores[ex] = None
                row.grader_errors.append(f"{ex}: no score was recorded")
            elif result.grader_error:
                row.scores[ex] = None
                row.grader_errors.append(f"{ex}: {_first_line(result.message, ex)}")
            else:
                row.scores[ex] = float(result.score)
                points[ex] = float(result.max_score) or points.get(ex, 0.0)
    columns = [ex for kind in kinds if kind in seen_kinds for ex in kinds[kind]]
    for row in by_student.values():
        missing = [kind for kind in kinds if kind in seen_kinds
                   and not any(ex in row.scores for ex in kinds[kind])]
        row.notes += [f"{kind}: no notebook in the input (cells left empty)" for kind in missing]
    return columns, {c: points.get(c, 0.0) for c in columns}, sorted(by_student.values(), key=lambda r: r.student)


def _kind(report: NotebookReport, kinds: dict[str, list[str]]) -> str | None:
    names = {e.name for e in report.exercises}
    best = max(kinds, key=lambda k: len(names & set(kinds[k])), default=None)
    if best is not None and names & set(kinds[best]):
        return best
    stem = Path(report.notebook).stem
    return stem if stem in kinds else None


def _first_line(message: str, name: str) -> str:
    line = (message or "").strip().splitlines()[0] if (message or "").strip() else "(no message)"
    return line.removeprefix(f"{name} · ")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(reports: list[NotebookReport], out: str | Path | TextIO, *, points_row: bool = False,
              student_of_report=None) -> tuple[list[str], list[Row]]:
    """Write the export to ``out`` (a path or an open text file); returns what was written."""
    columns, maximum, table = rows(reports, student_of_report=student_of_report)
    header = [STUDENT, LOGIN, *columns, TOTAL, GRADER_ERRORS, NOTES]
    lines = [header]
    if points_row:
        lines.append(["Points Possible", "", *(_number(maximum[c]) for c in columns),
                      _number(sum(maximum.values())), "", ""])
    for row in table:
        lines.append([_safe(row.student), _safe(row.student), *(_number(row.scores.get(c)) for c in columns),
                      _number(row.total(columns)), _safe("; ".join(row.grader_errors)),
                      _safe("; ".join(row.notes))])
    if isinstance(out, (str, Path)):
        with open(out, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(lines)
    else:
        csv.writer(out).writerows(lines)
    return columns, table
