"""The class report: which pitfalls a class fell into, on one self-contained page.

    python -m autograder report CLASS.json [CLASS.json ...] [--html OUT.html]
    python -m autograder report --gradebook gradebook.db --assignment lesson8 [--html OUT.html]
    python -m autograder report ... --csv grades.csv [--points-row]   (the gradebook export)

Reads what ``grade --json`` wrote (or nbgrader's gradebook, with the failure messages
from the course's ``autograded/`` notebooks when they are there) and shows: the score
distribution; per exercise its pass count ("31/45") and pass rate; the most common
failure causes per exercise, grouped by the first line of the message; the notebooks
that could not be graded; and grader errors, kept apart from students' failures.

:func:`main` is the whole command as a function; the CLI is a thin wrapper. Every string
that came from a submission (file names, messages quoting a student's exception text)
is escaped in the page, which loads nothing and runs no script.
"""

from __future__ import annotations

import html
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..engine.report import ExerciseResult, NotebookReport

__all__ = ["main", "load_json", "load_gradebook", "summarise", "render_text", "render_html",
           "ClassSummary"]

TOP_CAUSES = 5


# ----------------------------------------------------------------------------- reading
def load_json(paths: list[str | Path]) -> list[NotebookReport]:
    """The notebook reports in one or more files written by ``grade --json``."""
    reports = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        for entry in data if isinstance(data, list) else [data]:
            reports.append(NotebookReport.from_json(entry))
    return reports


def load_gradebook(db: str | Path, assignment: str) -> list[NotebookReport]:
    """One report per submitted notebook of ``assignment`` in an nbgrader gradebook.

    A test cell ``test_<name>`` is exercise ``<name>``; it passed when its auto score is
    its maximum. Messages come from the test cell's error output in
    ``autograded/<student>/<assignment>/<notebook>.ipynb`` next to the gradebook, when
    that file exists. A notebook without any auto score could not be graded.
    """
    from nbgrader.api import Gradebook
    url = str(db) if "://" in str(db) else "sqlite:///" + str(Path(db).resolve())
    root = Path(url.removeprefix("sqlite:///")).parent
    reports = []
    with Gradebook(url) as gb:
        for sub in gb.find_assignment(assignment).submissions:
            student = sub.student.id
            for nb in sub.notebooks:
                report = NotebookReport(f"{student}/{nb.name}")
                messages = _messages(root / "autograded" / student / assignment / f"{nb.name}.ipynb")
                for grade in sorted(nb.grades, key=lambda g: g.name):
                    if grade.cell_type != "code" or grade.auto_score is None:
                        continue
                    name = grade.name.removeprefix("test_")
                    passed = grade.auto_score >= grade.max_score
                    message = messages.get(grade.name) or (
                        f"{name} · passed." if passed else f"{name} · failed (no message recorded).")
                    report.exercises.append(ExerciseResult(name, passed, float(grade.auto_score),
                                                           float(grade.max_score), message))
                if not report.exercises:     # nbgrader writes no score only where the grader failed
                    report.grader_failure = ("no autograde score in the gradebook (not autograded yet, "
                                             "or the grader failed on it: autograde's log says why)")
                reports.append(report)
    return reports


def _messages(path: Path) -> dict[str, str]:
    """grade_id -> the message of a test cell's error output (or its printed text)."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for cell in nb.get("cells", []):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if not grade_id:
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out[grade_id] = str(o.get("evalue", ""))
                break
            if o.get("output_type") == "stream":
                text = o.get("text", "")
                out[grade_id] = ("".join(text) if isinstance(text, list) else str(text)).lstrip("✓ ")
    return out


# ----------------------------------------------------------------------------- summarising
@dataclass
class ExerciseStats:
    name: str
    passed: int = 0
    graded: int = 0
    points: float = 0.0
    causes: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class ClassSummary:
    total: int
    percentages: list[float]                       # score / max score of each fully graded notebook
    exercises: list[ExerciseStats]
    unreadable: list[tuple[str, str]]              # (notebook, reason)
    grader_errors: list[tuple[str, str, str]]      # (notebook, exercise or "", reason)


def first_line(message: str, name: str = "") -> str:
    """The first line of a message, without the ``name · `` prefix every message has."""
    line = (message or "").strip().splitlines()[0] if (message or "").strip() else "(no message)"
    return line.removeprefix(f"{name} · ") if name else line


def summarise(reports: list[NotebookReport]) -> ClassSummary:
    stats: dict[str, ExerciseStats] = {}
    percentages, unreadable, grader_errors = [], [], []
    for r in reports:
        if r.error:
            unreadable.append((r.notebook, r.error))
            continue
        if r.grader_failure:
            grader_errors.append((r.notebook, "", r.grader_failure))
            continue
        for e in r.exercises:
            s = stats.setdefault(e.name, ExerciseStats(e.name, points=e.max_score))
            if e.grader_error:
                grader_errors.append((r.notebook, e.name, first_line(e.message, e.name)))
                continue
            s.graded += 1
            s.passed += bool(e.passed)
            if not e.passed:
                s.causes[first_line(e.message, e.name)] += 1
        if r.exercises and not r.grader_error and r.max_score > 0:
            percentages.append(100.0 * r.score / r.max_score)
    return ClassSummary(len(reports), percentages, list(stats.values()), unreadable, grader_errors)


# ----------------------------------------------------------------------------- text
def render_text(s: ClassSummary) -> str:
    graded = len(s.percentages)
    lines = [f"Class report: {s.total} notebooks; {graded} fully graded, {len(s.unreadable)} could not be "
             f"graded, {len({nb for nb, _, _ in s.grader_errors})} with grader errors"]
    if s.percentages:
        lines.append(f"Scores: mean {statistics.fmean(s.percentages):.0f}%, median "
                     f"{statistics.median(s.percentages):.0f}%, lowest {min(s.percentages):.0f}%, "
                     f"highest {max(s.percentages):.0f}%")
        lines.append("  " + "  ".join(f"{lo}-{lo + 9 if lo < 90 else 100}%: {n}"
                                      for lo, n in _buckets(s.percentages) if n))
    width = max([len(e.name) for e in s.exercises] + [8])
    lines += ["", f"{'exercise'.ljust(width)}  {'passed':>9}  {'rate':>5}  most common failures"]
    for e in s.exercises:
        causes = e.causes.most_common(TOP_CAUSES)
        head = f"{e.name.ljust(width)}  {f'{e.passed}/{e.graded}':>9}  {e.rate:>5.0%}  "
        if not causes:
            lines.append(head.rstrip())
        for k, (cause, n) in enumerate(causes):
            lines.append((head if k == 0 else " " * len(head)) + f"{n}× {cause}")
    if s.unreadable:
        lines += ["", "Could not be graded:"] + [f"  {nb}: {reason}" for nb, reason in s.unreadable]
    if s.grader_errors:
        lines += ["", "Grader errors (the grader failed; nothing was charged to these students):"]
        lines += [f"  {nb}{' · ' + ex if ex else ''}: {reason}" for nb, ex, reason in s.grader_errors]
    return "\n".join(lines)


def _buckets(percentages: list[float]) -> list[tuple[int, int]]:
    counts = [0] * 10
    for p in percentages:
        counts[min(int(p // 10), 9)] += 1
    return [(10 * k, n) for k, n in enumerate(counts)]


# ----------------------------------------------------------------------------- HTML
_STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;color:#222;
     margin:24px auto;max-width:1100px;padding:0 16px;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666} .cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6} td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.track{display:inline-block;width:60px;height:10px;background:#eceff3;vertical-align:middle}
.bar{display:block;height:10px;background:#1f6fb4}
.bar.low{background:#b8322a} .figs{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0}
.figs img{max-width:100%;height:auto;border:1px solid #eee}
ul.causes{margin:0;padding-left:18px} code{background:#f3f3f3;padding:0 3px}
details summary{cursor:pointer}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def render_html(s: ClassSummary, *, title: str = "Class report") -> str:
    """The whole page: inline CSS, figures as data URIs, every string escaped."""
    from . import figures
    graded = len(s.percentages)
    errored = len({nb for nb, _, _ in s.grader_errors})
    figs = []
    if s.percentages:
        figs.append(figures.score_histogram(s.percentages))
    if s.exercises:
        figs.append(figures.pass_rate_figure([(e.name, e.passed, e.graded) for e in s.exercises]))
    mean = f"{statistics.fmean(s.percentages):.0f}%" if s.percentages else "—"
    median = f"{statistics.median(s.percentages):.0f}%" if s.percentages else "—"
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{_e(title)}</h1><p class=\"muted\">{s.total} notebooks read. Pass counts are "
           "“passed/graded”: a notebook that could not be graded, or an exercise the grader "
           "failed on, counts for nobody.</p>",
           "<div class=\"cards\">",
           *(f"<div class=\"card\"><b>{_e(v)}</b>{_e(k)}</div>" for k, v in (
               ("fully graded", graded), ("could not be graded", len(s.unreadable)),
               ("with grader errors", errored), ("mean score", mean), ("median score", median))),
           "</div>"]
    if figs:
        out.append("<div class=\"figs\">")
        out += [f"<figure><img src=\"{_e(uri)}\" alt=\"{_e(alt)}\"></figure>" for alt, uri in figs]
        out.append("</div>")
    out.append("<h2>Exercises</h2><table class=\"exercises\"><tr><th>exercise</th><th>points</th>"
               "<th>passed</th><th>pass rate</th><th>most common failures</th></tr>")
    for e in s.exercises:
        causes = e.causes.most_common(TOP_CAUSES)
        cause_html = ("<ul class=\"causes\">" + "".join(
            f"<li><b>{n}×</b> {_e(c)}</li>" for c, n in causes) + "</ul>") if causes else ""
        more = sum(e.causes.values()) - sum(n for _, n in causes)
        if more:
            cause_html += f"<span class=\"muted\">and {more} other failure{'s' * (more > 1)}</span>"
        low = " low" if e.rate < 0.5 else ""
        out.append(f"<tr><td><code>{_e(e.name)}</code></td><td class=\"num\">{_e(f'{e.points:g}')}</td>"
                   f"<td class=\"num pass-count\">{e.passed}/{e.graded}</td>"
                   f"<td class=\"num\"><span class=\"track\"><span class=\"bar{low}\" "
                   f"style=\"width:{round(60 * e.rate)}px\"></span></span> "
                   f"{e.rate:.0%}</td><td>{cause_html}</td></tr>")
    out.append("</table>")
    out.append("<h2>Could not be graded</h2>")
    if s.unreadable:
        out.append("<table class=\"unreadable\"><tr><th>notebook</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{_e(nb)}</td><td>{_e(reason)}</td></tr>" for nb, reason in s.unreadable) + "</table>")
    else:
        out.append("<p class=\"muted\">None.</p>")
    out.append("<h2>Grader errors</h2><p class=\"muted\">The grader itself failed here: these are not "
               "the students' failures, no score was recorded for them, and they are not counted above.</p>")
    if s.grader_errors:
        out.append("<table class=\"grader-errors\"><tr><th>notebook</th><th>exercise</th><th>reason</th></tr>"
                   + "".join(f"<tr><td>{_e(nb)}</td><td>{_e(ex or 'whole notebook')}</td><td>{_e(r)}</td></tr>"
                             for nb, ex, r in s.grader_errors) + "</table>")
    else:
        out.append("<p class=\"muted\">None.</p>")
    out.append("</body></html>\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------- command
def main(paths: list[str | Path] = (), *, html: str | Path | None = None, gradebook: str | Path | None = None,
         assignment: str | None = None, out: TextIO | None = None, csv: str | Path | None = None,
         points_row: bool = False) -> int:
    """Write the class report (``html``) or print it, or (``csv``) the gradebook export of
    :mod:`autograder.reports.gradebook`; 0, or 2 when the input is unusable."""
    try:
        if gradebook:
            if not assignment:
                raise ValueError("--gradebook needs --assignment (the assignment's name in nbgrader)")
            reports = load_gradebook(gradebook, assignment)
        else:
            if not paths:
                raise ValueError("give the JSON files written by `grade --json`, or --gradebook")
            reports = load_json(paths)
    except Exception as exc:        # a missing file, invalid JSON, an unknown assignment
        print(f"error: cannot read the class's results: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    summary, out = summarise(reports), out or sys.stdout
    if csv:
        from .gradebook import write_csv
        columns, table = write_csv(reports, csv, points_row=points_row)
        errors = sum(bool(row.grader_errors) for row in table)
        print(f"wrote {csv}: {len(table)} students, {len(columns)} exercises"
              + (f"; {errors} with grader errors (empty cells, not zeros)" if errors else ""), file=out)
        if not html:
            return 0
    if html:
        Path(html).write_text(render_html(summary), encoding="utf-8")
        print(f"wrote {html}: {summary.total} notebooks, {len(summary.exercises)} exercises", file=out)
    else:
        print(render_text(summary), file=out)
    return 0
