"""``python -m autograder lint-lesson LESSON``: the author's self-test of a lesson.

A lesson is checked as the anchors check theirs (otter demands that the solution scores
100%, nbgrader's validator that the stub fails, PrairieLearn grades generated wrong
answers). In a course directory (``--course DIR``, default: the current one) holding
``assignments/LESSON/*.ipynb`` (nbgrader sources), ``release/LESSON/*.ipynb`` and
optionally ``solutions/LESSON/*.ipynb``, five checks, one line each:

1. **solutions**: every source notebook, with its solutions kept and its hidden tests
   removed, graded by the real engine: every exercise of the lesson passes;
2. **stubs**: every released notebook scores 0, "not implemented" on every exercise;
3. **release**: ``release/LESSON`` is what the real ``nbgrader generate_assignment`` makes
   from ``assignments/LESSON`` (in a temporary copy), and ``solutions/LESSON``, if there,
   is what ``python -m autograder solutions`` makes;
4. **mutants**: every mutant of the solutions (see :mod:`autograder.frontends.mutants`)
   fails an exercise, except those the lesson lists in ``lesson.equivalent_mutants``;
5. **seed sweep**: no correct answer fails over many seeds: the lesson's own
   ``@lesson.seed_sweep`` hook, or else the solutions graded ``--seeds`` more times, each
   in a fresh worker (fresh seeds for every unseeded generator).

Exit status: 0 when every check passed (a skipped one does not count against), 1 when a
check failed, 3 when the grader itself could not check (a grader error, nbgrader missing,
no such lesson). :func:`main` is the Python API; the command line is a thin wrapper.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.errors import EXIT_FAILED, EXIT_GRADER_ERROR, EXIT_OK, GraderError

__all__ = ["Check", "main", "DEFAULT_REPEATS"]

DEFAULT_REPEATS = 3         # gradings of the solutions in the generic seed sweep
MAX_DETAILS = 12            # lines shown under a failed check


@dataclass
class Check:
    """The outcome of one check: PASS, FAIL, SKIP or ERROR (the grader could not check)."""
    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"{self.status:<5} {self.name:<10}  {self.summary}"]
        shown = self.details[:MAX_DETAILS]
        lines += [f"        {d}" for d in shown]
        if len(self.details) > len(shown):
            lines.append(f"        ... and {len(self.details) - len(shown)} more")
        return "\n".join(lines)


def _n(count: int, noun: str) -> str:
    """``3 notebooks``, ``1 notebook``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _grade_all(paths: list[Path], jobs: int):
    """Grade notebooks with the real engine, ``jobs`` at a time, in input order."""
    from ..engine.grade import grade_notebook
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(grade_notebook, paths))


def _kinds(paths: list[Path]) -> dict[Path, str | None]:
    """Which lesson notebook each file is (by its grade_ids), or None."""
    from ..engine.grade import identify
    from ..engine.notebook import NotebookError, read_notebook
    out = {}
    for p in paths:
        try:
            out[p] = identify(read_notebook(p))
        except NotebookError:
            out[p] = None
    return out


def _coverage(lesson, paths: list[Path], what: str) -> list[str]:
    """Problems with which notebooks ``paths`` are: another lesson's, or a lesson notebook
    with no file."""
    problems, seen = [], set()
    for path, kind in _kinds(paths).items():
        if kind is None:
            continue                    # the grading reports why
        if kind not in lesson.notebooks:
            problems.append(f"{what}/{path.name} is a notebook of another lesson ({kind})")
        seen.add(kind)
    for name in lesson.notebooks:
        if name not in seen:
            exercises = ", ".join(ex.name for ex in lesson.notebooks[name])
            problems.append(f"no {what} notebook holds {name}'s exercises ({exercises})")
    return problems


def _graded(lesson, reports, label: str) -> tuple[list[str], list[str]]:
    """(grader errors, unusable files) of ``reports``, as lines."""
    errors, broken = [], []
    for r in reports:
        name = f"{label}/{Path(r.notebook).name}"
        if r.error:
            broken.append(f"{name}: cannot be graded: {r.error}")
        if r.grader_failure:
            errors.append(f"{name}: {r.grader_failure}")
        errors += [f"{name}: {e.message.splitlines()[0]}" for e in r.exercises if e.grader_error]
    return errors, broken


def _solution_files(course: Path, lesson: str, folder: Path) -> list[Path]:
    """The source notebooks with solutions kept and hidden tests removed, written to ``folder``."""
    import json

    from .release import solution_notebook
    out = []
    for src in sorted((course / "assignments" / lesson).glob("*.ipynb")):
        path = folder / src.name
        path.write_text(json.dumps(solution_notebook(json.loads(src.read_text())), indent=1))
        out.append(path)
    return out


# ----------------------------------------------------------------------------- the checks
def check_solutions(lesson, paths: list[Path], jobs: int, *, name: str = "solutions") -> Check:
    """Check 1: every exercise of the lesson passes on its solution notebook."""
    label = f"assignments/{lesson.name}"
    if not paths:
        return Check(name, "FAIL", f"no source notebooks in {label}/")
    reports = _grade_all(paths, jobs)
    errors, broken = _graded(lesson, reports, label)
    if errors:
        return Check(name, "ERROR", "the grader could not grade the solutions", errors)
    problems = broken + _coverage(lesson, paths, label)
    results = [e for r in reports for e in r.exercises]
    failed = [f"{Path(r.notebook).name}: {e.message.splitlines()[0]}"
              for r in reports for e in r.exercises if not e.passed]
    score, total = sum(e.score for e in results), sum(e.max_score for e in results)
    counts = (f"{_n(len(paths), 'notebook')}, {sum(e.passed for e in results)}/{len(results)} "
              f"exercises pass ({score:g}/{total:g} points)")
    if failed or problems:
        return Check(name, "FAIL", f"{counts}: the solutions must score 100%", problems + failed)
    return Check(name, "PASS", counts)


def check_stubs(lesson, course: Path, jobs: int) -> Check:
    """Check 2: every released notebook scores 0, "not implemented" on every exercise."""
    label = f"release/{lesson.name}"
    paths = sorted((course / label).glob("*.ipynb"))
    if not paths:
        return Check("stubs", "FAIL", f"no released notebooks in {label}/",
                     [f"run `nbgrader generate_assignment {lesson.name}` in the course directory"])
    reports = _grade_all(paths, jobs)
    errors, broken = _graded(lesson, reports, label)
    if errors:
        return Check("stubs", "ERROR", "the grader could not grade the released notebooks", errors)
    problems = broken + _coverage(lesson, paths, label)
    results = [e for r in reports for e in r.exercises]
    for r in reports:
        for e in r.exercises:
            first = e.message.splitlines()[0]
            if e.passed or e.score:
                problems.append(f"{Path(r.notebook).name}: {e.name} scores {e.score:g}/{e.max_score:g} "
                                "as released (is a solution left in the stub?)")
            elif "not implemented" not in first:
                problems.append(f"{Path(r.notebook).name}: {e.name} fails, but not as \"not "
                                f"implemented\": {first}")
    stubbed = sum(not e.passed and "not implemented" in e.message.splitlines()[0] for e in results)
    counts = (f"{_n(len(paths), 'notebook')}, {stubbed}/{len(results)} exercises \"not implemented\", "
              f"{sum(e.score for e in results):g}/{sum(e.max_score for e in results):g} points")
    if problems:
        return Check("stubs", "FAIL", f"{counts}: every stub must score 0, \"not implemented\"",
                     problems)
    return Check("stubs", "PASS", counts)


def check_release(lesson, course: Path) -> Check:
    """Check 3: release/ is what nbgrader generates; solutions/, if there, is current."""
    from .release import build_solutions, release_differences
    if not (course / "assignments" / lesson.name).is_dir():
        return Check("release", "FAIL", f"no assignments/{lesson.name}/ in {course}: nothing to release")
    try:
        differences = release_differences(course, lesson.name)
    except GraderError as exc:
        return Check("release", "ERROR", f"nbgrader could not generate the release: {exc}")
    count = len(list((course / "release" / lesson.name).glob("*.ipynb")))
    what = f"release/{lesson.name} is what nbgrader generate_assignment makes ({_n(count, 'notebook')})"
    fixes = [f"run `nbgrader generate_assignment {lesson.name} --force` in the course directory "
             "and commit the result"] if differences else []
    if (course / "solutions" / lesson.name).is_dir():
        stale = build_solutions(course, check=True, assignment=lesson.name)
        differences += [f"{s} is stale" for s in stale]
        if stale:
            fixes.append(f"run `python -m autograder solutions --course {course}` and commit the result")
        what += f"; solutions/{lesson.name} is current"
    if differences:
        return Check("release", "FAIL", "the committed notebooks are not what the sources make",
                     differences + fixes)
    return Check("release", "PASS", what)


def check_mutants(lesson, course: Path, jobs: int, notebooks: list[str] | None) -> Check:
    """Check 4: every mutant the lesson does not list as equivalent fails an exercise."""
    from . import mutants as engine
    start = time.monotonic()
    try:
        found, stale = engine.run(lesson, course, notebooks, jobs=jobs, out=None)
    except engine.SolutionFails as exc:
        return Check("mutants", "FAIL", str(exc))
    except ValueError as exc:                   # an unknown --notebook
        return Check("mutants", "FAIL", str(exc))
    except GraderError as exc:
        return Check("mutants", "ERROR", f"the grader could not grade the mutants: {exc}")
    count = {s: sum(m.status == s for m in found) for s in
             ("killed", "equivalent", "survived", "grader error", "equivalent, killed")}
    graded = len(found) - count["equivalent"]
    score = 100.0 * count["killed"] / graded if graded else 100.0
    where = f" of {', '.join(notebooks)}" if notebooks else ""
    counts = (f"{len(found)} mutants{where}: {count['killed']} killed, {count['equivalent']} "
              f"equivalent, {count['survived']} survived (score {score:.1f}%, "
              f"{time.monotonic() - start:.0f} s)")
    if count["grader error"]:
        return Check("mutants", "ERROR", counts, [f"grader error: {m.line()}: {m.message}"
                                                  for m in found if m.status == "grader error"])
    details = [f"survived: {m.line()}" for m in found if m.status == "survived"]
    details += [f"listed as equivalent but killed by {m.by}: {m.line()}" for m in found
                if m.status == "equivalent, killed"]
    details += [f"listed as equivalent but no longer generated: {k}" for k in stale]
    if details:
        hint = ("strengthen the check that let each survivor pass, or, if it computes what the "
                "solution computes, list it in lesson.equivalent_mutants with the reason")
        return Check("mutants", "FAIL", counts, details + [hint])
    return Check("mutants", "PASS", counts)


def check_seed_sweep(lesson, paths: list[Path], jobs: int, seeds: int | None) -> Check:
    """Check 5: the lesson's sweep hook finds no false failure, or the solutions pass
    ``seeds`` more times, each in fresh workers."""
    if lesson.sweep is not None:
        start = time.monotonic()
        try:
            total, details = lesson.sweep() if seeds is None else lesson.sweep(seeds)
        except Exception as exc:  # noqa: BLE001 - a bug in the lesson's hook is the grader's
            return Check("seed sweep", "ERROR", f"the lesson's seed sweep raised "
                         f"{type(exc).__name__}: {exc}")
        lines = [line for line in str(details).splitlines() if line.strip()]
        last = lines[-1] if lines else f"{total} false failures"
        summary = f"the lesson's sweep: {last}" + ("" if lines else f" ({time.monotonic() - start:.0f} s)")
        if total:
            return Check("seed sweep", "FAIL", summary, lines[:-1])
        return Check("seed sweep", "PASS", summary)
    repeats = DEFAULT_REPEATS if seeds is None else seeds
    failures, exercises = [], 0
    for run in range(1, repeats + 1):
        reports = _grade_all(paths, jobs)
        errors, broken = _graded(lesson, reports, f"assignments/{lesson.name}")
        if errors:
            return Check("seed sweep", "ERROR", f"the grader could not grade the solutions "
                         f"(run {run})", errors)
        exercises = sum(len(r.exercises) for r in reports)
        failures += [f"run {run}: {Path(r.notebook).name}: {e.message.splitlines()[0]}"
                     for r in reports for e in r.exercises if not e.passed] + broken
    what = (f"the solutions graded {_n(repeats, 'more time')} in fresh workers (fresh seeds), "
            f"{_n(exercises, 'exercise')} each")
    if failures:
        return Check("seed sweep", "FAIL", f"{what}: {_n(len(failures), 'false failure')}", failures)
    return Check("seed sweep", "PASS", f"{what}: no false failure")


# ----------------------------------------------------------------------------- the command
def main(lesson: str, *, course: str | Path = ".", skip_mutants: bool = False,
         seeds: int | None = None, jobs: int = 2, notebooks: list[str] | None = None,
         out=sys.stdout) -> int:
    """Run the five checks on the discovered lesson ``lesson`` in the course directory
    ``course``; print one line per check and a verdict; return the exit status.

    ``skip_mutants``: leave out check 4 (the slowest); ``notebooks``: only these source
    notebooks' mutants; ``seeds``: handed to the lesson's sweep hook (its own default
    otherwise), or the number of extra gradings of the generic sweep (default
    :data:`DEFAULT_REPEATS`); ``jobs``: notebooks or mutants graded at once.
    """
    from ..engine import discovery, pool
    from ..engine.preflight import preflight
    from ..engine.sandbox import Limits
    course = Path(course).resolve()
    try:
        found = discovery.load()
        if lesson not in found:
            raise GraderError(f"no lesson is called {lesson} (found: {', '.join(sorted(found)) or 'none'})",
                              "Install it, or name its folder with --lesson PATH")
        the_lesson = found[lesson]
        if not course.is_dir():
            raise GraderError(f"{course} is not a directory", "Pass the course directory with --course DIR")
        pool.prestart(max(1, jobs), Limits(), *pool.settings())
        preflight(Limits())
    except GraderError as exc:
        print(f"grader error: nothing was checked: {exc}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    print(f"lint-lesson {lesson} ({the_lesson.origin}; {_n(len(the_lesson.exercises), 'exercise')} "
          f"in {_n(len(the_lesson.notebooks), 'notebook')}), course {course}", file=out, flush=True)
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        print(check.render(), file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="lint-lesson-") as tmp:
        paths = _solution_files(course, lesson, Path(tmp))
        report(check_solutions(the_lesson, paths, jobs))
        solutions_pass = checks[-1].status == "PASS"
        report(check_stubs(the_lesson, course, jobs))
        report(check_release(the_lesson, course))
        if skip_mutants:
            report(Check("mutants", "SKIP", "--skip-mutants"))
        elif not solutions_pass:
            report(Check("mutants", "SKIP", "not run: the solutions do not pass, so every mutant "
                                            "would look killed"))
        else:
            report(check_mutants(the_lesson, course, jobs, notebooks))
        if the_lesson.sweep is None and not solutions_pass:
            report(Check("seed sweep", "SKIP", "not run: the solutions do not pass even once"))
        else:
            report(check_seed_sweep(the_lesson, paths, jobs, seeds))
    status = {s: sum(c.status == s for c in checks) for s in ("PASS", "FAIL", "SKIP", "ERROR")}
    verdict = ", ".join(f"{n} {word}" for word, n in (("passed", status["PASS"]),
                                                       ("failed", status["FAIL"]),
                                                       ("skipped", status["SKIP"]),
                                                       ("could not be checked", status["ERROR"])) if n)
    print(f"{lesson}: {verdict}", file=out, flush=True)
    if status["ERROR"]:
        return EXIT_GRADER_ERROR
    return EXIT_FAILED if status["FAIL"] else EXIT_OK
