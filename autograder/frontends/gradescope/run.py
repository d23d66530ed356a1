"""Inside Gradescope: grade the submission and write ``results/results.json``.

    python -m autograder.frontends.gradescope.run [--root /autograder]

``run_autograder`` (in the bundle) calls this with the kit installed from the
instructor's wheel. :func:`main` grades every notebook in ``submission/`` (any file
name: a notebook is recognised by its grade_ids) against the notebooks the bundle was
built for (``source/gradescope.json``), running each exercise's test cell as nbgrader
would: its visible code, then its hidden code, with ``check`` bound to the submission.

Whose fault it is decides what is written (Gradescope's format, see :func:`results`):

* the student's (a wrong answer, a crash, an unreadable or missing notebook): a score,
  one test per exercise with the teaching message;
* the grader's (the preflight fails, the lesson's data is unavailable, a worker cannot
  start, an exercise the grader could not check, a broken test cell): **no score at all**,
  the top-level ``output`` saying plainly that the autograder failed and why, and exit
  status 3, so that the instructor sees a failed run to fix and regrade, never a 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...engine.errors import EXIT_GRADER_ERROR, EXIT_OK, GraderError
from ...engine.report import ExerciseResult

__all__ = ["main", "results", "Outcome", "CONFIG_NAME", "VISIBILITIES"]

CONFIG_NAME = "gradescope.json"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
GRADER_FAILED = ("The autograder failed, not the submission: {reason}. No score was recorded "
                 "for this submission; the instructor has to fix the autograder and regrade it.")


@dataclass
class ExerciseOutcome:
    name: str
    title: str
    notebook: str
    max_score: float
    visible: ExerciseResult | None = None          # the visible checks' result
    hidden: list[ExerciseResult] = field(default_factory=list)
    hidden_failure: str = ""                       # a hidden check's message (never its source)
    note: str = ""                                 # why it scored 0 without being checked

    @property
    def score(self) -> float:
        """Visible then hidden checks, as nbgrader scores a test cell: each part at the
        lowest score any check gave it (all or nothing: the lowest score)."""
        if self.visible is None:
            return 0.0
        results = [self.visible, *self.hidden]
        if all(r.parts for r in results):
            lowest: dict[str, float] = {}
            for r in results:
                for p in r.parts:
                    lowest[p["name"]] = min(lowest.get(p["name"], p["score"]), p["score"])
            return float(sum(lowest.values()))
        return float(min(r.score for r in results))

    @property
    def visible_score(self) -> float:
        return float(self.visible.score) if self.visible is not None else 0.0


@dataclass
class Outcome:
    exercises: list[ExerciseOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    grader_error: str | None = None


# ----------------------------------------------------------------------------- grading
def _load_config(source: Path) -> dict:
    path = source / CONFIG_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GraderError(f"the bundle's {CONFIG_NAME} cannot be read ({type(exc).__name__}: {exc})",
                          "Build the bundle again with `python -m autograder gradescope`") from None


def _submitted(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("._"))


def grade(config: dict, submission: Path) -> Outcome:
    """Grade the submission folder against the bundle's configuration; never raises for
    the student's files (a :class:`GraderError` is caught into ``grader_error``)."""
    from ...engine import discovery
    from ...engine.grade import catalogue
    from ...engine.preflight import preflight
    from ...engine.sandbox import Limits
    limits = Limits(cell_timeout=float(config.get("cell_timeout", Limits.cell_timeout)),
                    notebook_timeout=float(config.get("notebook_timeout", Limits.notebook_timeout)))
    outcome = Outcome()
    try:
        discovery.load()
        checks = catalogue()
        expected = list(config.get("notebooks") or [])
        unknown = [n for n in expected if n not in checks.NOTEBOOKS]
        if unknown:
            raise GraderError(f"the bundle grades {', '.join(unknown)}, which no installed lesson defines",
                              "Build the bundle from the kit that defines them")
        preflight(limits)
        by_kind = _grade_files(config, _submitted(submission), limits, outcome)
    except GraderError as exc:
        outcome.grader_error = str(exc)
        return outcome
    for kind in expected:
        for ex in checks.NOTEBOOKS[kind]:
            got = by_kind.get(kind, {}).get(ex.name)
            if got is None:
                got = ExerciseOutcome(ex.name, ex.title, kind, float(ex.points),
                                      note=f"{ex.name} · {ex.title}: not graded: your submission has no "
                                           f"readable notebook {kind}.ipynb (see the notes above).")
            outcome.exercises.append(got)
    return outcome


def _grade_files(config: dict, paths: list[Path], limits, outcome: Outcome) -> dict[str, dict]:
    """``{notebook kind: {exercise: ExerciseOutcome}}`` for the files that are the lesson's."""
    from ...engine.grade import identify, open_submission
    from ...engine.notebook import NotebookError, read_notebook
    expected = list(config.get("notebooks") or [])
    by_kind: dict[str, dict] = {}
    if not paths:
        outcome.notes.append("No notebook (.ipynb file) was found in your submission, so every "
                             "exercise scored 0. Upload your notebook file" +
                             (f"s ({', '.join(k + '.ipynb' for k in expected)})" if expected else "") + ".")
    for path in paths:
        name = path.name
        try:
            nb = read_notebook(path)
            kind = identify(nb)
        except NotebookError as exc:
            outcome.notes.append(f"{name} could not be graded: {exc}")
            continue
        if kind not in expected:
            outcome.notes.append(f"{name} is the notebook {kind}, which this assignment does not grade; "
                                 f"it was ignored.")
            continue
        if kind in by_kind:
            outcome.notes.append(f"{name} is a second copy of {kind}; only the first one "
                                 f"({by_kind[kind]['_file']}) was graded. Submit one copy of each notebook.")
            continue
        graded: dict = {"_file": name}
        with open_submission(nb, limits) as sub:
            note = sub.session.confinement_note
            outcome.notes.append(f"{name} ({kind}) was graded; your code ran in a separate worker process, "
                                 + (f"{note}." if sub.session.confined else f"not confined: {note}."))
            for ex in _exercises(kind):
                graded[ex.name] = _grade_exercise(config, ex, sub)
        by_kind[kind] = graded
    return {kind: {k: v for k, v in d.items() if k != "_file"} for kind, d in by_kind.items()}


def _exercises(kind: str):
    from ...engine.grade import catalogue
    return catalogue().NOTEBOOKS[kind]


def _grade_exercise(config: dict, ex, sub) -> ExerciseOutcome:
    """Run the exercise's test cell code: the visible part, then the hidden part."""
    from ...engine.grade import result_for
    cell = (config.get("tests") or {}).get(ex.name) or {}
    visible = cell.get("visible") or f"check({ex.name!r})"
    hidden = cell.get("hidden") or ""
    out = ExerciseOutcome(ex.name, ex.title, ex.notebook, float(ex.points))
    for code, is_hidden in ((visible, False), (hidden, True)):
        if not code.strip():
            continue
        seen: list[ExerciseResult] = []

        def check(name: str | None = None, _seen=seen, **options):
            if name is None:
                return None
            result = result_for(name, sub, **options)
            if result.grader_error:
                raise GraderError(result.message.splitlines()[0])
            if name == ex.name:
                _seen.append(result)
            return None

        part = "hidden" if is_hidden else "visible"
        try:
            exec(compile(code, f"<{part} test of {ex.name}>", "exec"), {"__name__": "__grader__", "check": check})
        except GraderError:
            raise
        except AssertionError as exc:          # the instructor's own assert in a test cell
            seen.append(ExerciseResult(ex.name, False, 0.0, ex.points, str(exc) or "A test failed."))
        except Exception as exc:
            raise GraderError(f"the {part} code of test cell test_{ex.name} raised {type(exc).__name__}: {exc}",
                              "Fix the test cell in the assignment's source notebook and build the "
                              "bundle again") from None
        if not is_hidden:
            out.visible = seen[0] if seen else ExerciseResult(ex.name, True, ex.points, ex.points,
                                                              f"{ex.name} · {ex.title}: passed.")
            continue
        out.hidden = seen
        failed = next((r for r in seen if r.score < r.max_score), None)
        if failed is not None:
            out.hidden_failure = ("A hidden test failed: " + failed.message
                                  if config.get("show_hidden_messages", True)
                                  else "A hidden test failed (its details are not shown).")
    return out


# ----------------------------------------------------------------------------- results.json
def results(config: dict, outcome: Outcome, seconds: float) -> dict:
    """The results in Gradescope's format (the autograder specification's ``results.json``).

    One test per exercise (its visible checks' score and message); an exercise with
    hidden checks has a second test, ``... (hidden tests)``, with ``max_score`` 0 and the
    points the hidden checks took away (0 or less), shown with ``hidden_visibility``. The
    top-level ``score`` is their sum. A grader error: no score anywhere.
    """
    visibility = config.get("visibility", "visible")
    hidden_visibility = config.get("hidden_visibility", "after_published")
    top = {"execution_time": round(seconds, 1), "visibility": visibility,
           "stdout_visibility": config.get("stdout_visibility", "hidden"),
           "extra_data": {"kit": config.get("kit", ""), "grader_error": outcome.grader_error is not None}}
    if outcome.grader_error is not None:
        reason = outcome.grader_error.rstrip(".")
        return {**top, "output": GRADER_FAILED.format(reason=reason), "tests": [],
                "extra_data": {**top["extra_data"], "reason": outcome.grader_error}}
    tests = []
    for k, ex in enumerate(outcome.exercises, 1):
        number = f"{ex.notebook[:2]}.{k}" if ex.notebook[:2].isdigit() else str(k)
        if ex.visible is None:
            tests.append(_test(ex.name, 0.0, ex.max_score, ex.note, visibility, ex.notebook, number))
            continue
        message = ex.visible.message
        test = _test(ex.name, ex.visible_score, ex.max_score, message, visibility, ex.notebook, number)
        if ex.visible.parts:
            test["extra_data"] = {"parts": ex.visible.parts}
        tests.append(test)
        if ex.hidden:
            lost = ex.score - ex.visible_score
            tests.append({**_test(f"{ex.name} (hidden tests)", round(lost, 6), 0.0,
                                  ex.hidden_failure or f"{ex.name}: the hidden tests passed.",
                                  hidden_visibility, ex.notebook, number + ".h"),
                          "status": "failed" if ex.hidden_failure else "passed"})
    score = round(sum(t["score"] for t in tests), 6)
    total = sum(ex.max_score for ex in outcome.exercises)
    lines = [f"Score: {score:g}/{total:g} points."] + outcome.notes
    return {**top, "score": score, "output": "\n".join(lines), "tests": tests}


def _test(name, score, max_score, output, visibility, notebook, number) -> dict:
    return {"name": name, "number": number, "score": float(score), "max_score": float(max_score),
            "status": "passed" if score >= max_score else "failed", "output": output,
            "visibility": visibility, "tags": [notebook]}


# ----------------------------------------------------------------------------- command
def main(root: str | Path | None = None, *, submission: str | Path | None = None,
         results_dir: str | Path | None = None, source: str | Path | None = None) -> int:
    """Grade ``<root>/submission`` and write ``<root>/results/results.json``; 0, or 3 when
    the autograder failed (then the file holds no score and says why)."""
    start = time.monotonic()
    root = Path(root or os.environ.get("GRADESCOPE_ROOT") or "/autograder")
    source = Path(source or root / "source")
    submission = Path(submission or os.environ.get("GRADESCOPE_SUBMISSION") or root / "submission")
    results_dir = Path(results_dir or os.environ.get("GRADESCOPE_RESULTS") or root / "results")
    try:
        config = _load_config(source)
        outcome = grade(config, submission)
    except GraderError as exc:
        config, outcome = {}, Outcome(grader_error=str(exc))
    except Exception as exc:                    # the kit's own bug: never the student's zero
        config, outcome = {}, Outcome(grader_error=f"the grader's own code raised {type(exc).__name__}: {exc}")
    data = results(config, outcome, time.monotonic() - start)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(data["output"])
    for test in data["tests"]:                  # the instructor's log (stdout_visibility)
        print(f"  {test['score']:g}/{test['max_score']:g}  {test['output'].splitlines()[0] if test['output'] else test['name']}")
    if outcome.grader_error is not None:
        print(f"grader error: {outcome.grader_error}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    return EXIT_OK


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.frontends.gradescope.run",
                                     description="Grade a Gradescope submission (run by run_autograder).")
    parser.add_argument("--root", help="Gradescope's root folder (default: $GRADESCOPE_ROOT or /autograder)")
    args = parser.parse_args(argv)
    return main(args.root)


if __name__ == "__main__":
    from ...engine import pool
    code = _cli()
    sys.stdout.flush()
    sys.stderr.flush()
    pool.shutdown()
    os._exit(code)
