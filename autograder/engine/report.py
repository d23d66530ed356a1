"""Results as small dataclasses, and how they are printed and saved."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["ExerciseResult", "NotebookReport", "render_text", "render_table", "write_json"]


@dataclass
class ExerciseResult:
    name: str                   # the grade_id
    passed: bool
    score: float
    max_score: float
    message: str
    grader_error: bool = False  # the grader failed here: not the student's score
    # An exercise with parts: [{"name", "score", "max_score"}], whose scores add up to
    # ``score`` (empty for all-or-nothing exercises, and where the grader failed).
    parts: list[dict] = field(default_factory=list)


@dataclass
class NotebookReport:
    notebook: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None            # the whole file was unusable
    confinement: str = ""
    grader_failure: str | None = None   # the grader could not grade this notebook at all

    @property
    def grader_error(self) -> bool:
        """The grader failed on this notebook or on one of its exercises."""
        return self.grader_failure is not None or any(e.grader_error for e in self.exercises)

    @property
    def score(self) -> float:
        return sum(e.score for e in self.exercises)

    @property
    def max_score(self) -> float:
        return sum(e.max_score for e in self.exercises)

    @property
    def passed(self) -> bool:
        return (self.error is None and not self.grader_error
                and all(e.passed for e in self.exercises))

    def as_json(self) -> dict:
        out = {"notebook": self.notebook, "exercises": [asdict(e) for e in self.exercises],
               "score": self.score, "max_score": self.max_score, "grader_error": self.grader_error}
        if self.error:
            out["error"] = self.error
        if self.grader_failure:
            out["grader_failure"] = self.grader_failure
        return out

    @classmethod
    def from_json(cls, data: dict) -> "NotebookReport":
        """The report ``as_json`` wrote (from ``grade --json`` or a cluster worker)."""
        fields = ExerciseResult.__dataclass_fields__
        exercises = [ExerciseResult(**{k: v for k, v in e.items() if k in fields})
                     for e in data.get("exercises", [])]
        return cls(str(data["notebook"]), exercises, data.get("error"),
                   data.get("confinement", ""), data.get("grader_failure"))


def render_text(report: NotebookReport, *, verbose: bool = True) -> str:
    """The per-exercise report a student reads at a terminal."""
    lines = [f"== {report.notebook}"]
    if report.error:
        lines.append(f"  cannot be graded: {report.error}")
        return "\n".join(lines)
    if report.grader_failure:
        lines.append(f"  not graded, the grader failed: {report.grader_failure}")
        return "\n".join(lines)
    for e in report.exercises:
        mark = "PASS" if e.passed else "ERROR" if e.grader_error else "FAIL"
        head, *rest = e.message.splitlines()
        lines.append(f"  [{mark}] {e.score:g}/{e.max_score:g}  {head}")
        if verbose and not e.passed:
            lines += ["           " + r for r in rest]
    errors = sum(e.grader_error for e in report.exercises)
    if errors:
        lines.append(f"  score: not recorded: the grader failed on {errors} exercise"
                     f"{'s' if errors > 1 else ''} (ERROR above); nothing was charged to the student")
    else:
        lines.append(f"  score: {report.score:g}/{report.max_score:g}")
    if report.confinement:
        lines.append(f"  ({report.confinement})")
    return "\n".join(lines)


def render_table(reports: list[NotebookReport]) -> str:
    """One line per notebook: the score table at the end of a class run."""
    width = max([len(r.notebook) for r in reports] + [8])
    lines = [f"{'notebook'.ljust(width)}  {'score':>9}  passed"]
    for r in reports:
        if r.error:
            lines.append(f"{r.notebook.ljust(width)}  {'—':>9}  unreadable: {r.error[:60]}")
        elif r.grader_error:
            reason = r.grader_failure or "on " + ", ".join(e.name for e in r.exercises if e.grader_error)
            lines.append(f"{r.notebook.ljust(width)}  {'—':>9}  grader error: {reason[:60]}")
        else:
            passed = sum(e.passed for e in r.exercises)
            lines.append(f"{r.notebook.ljust(width)}  {f'{r.score:g}/{r.max_score:g}':>9}  "
                         f"{passed}/{len(r.exercises)}")
    return "\n".join(lines)


def write_json(reports: list[NotebookReport], path: str | Path) -> None:
    Path(path).write_text(json.dumps([r.as_json() for r in reports], indent=2) + "\n")
