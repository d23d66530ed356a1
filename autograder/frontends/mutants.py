"""Mutation testing of a lesson's checks: can a small change to a correct solution pass?

Every solution cell of every source notebook in ``assignments/LESSON/`` is changed in one
small way at a time (a *mutant*, see :mod:`autograder.frontends.mutate` for the changes),
and each mutant notebook is graded with the kit's own API, in a confined worker, exactly
as a student's would be. A mutant is *killed* as soon as one exercise loses points (with partial credit, one part failing is enough). Mutant
notebooks leave out the demonstration cells (code cells without a grade_id): no check
reads them, and without them a mutant cannot be "killed" by running out of time there.
Mutants with identical source are graded once.

Every mutant that survives must be listed by its lesson as equivalent
(``lesson.equivalent_mutants``, or ``lesson.equivalent_variable_mutants`` for the mutants
of ``--variables``) with a one-line reason (it computes what the solution computes, on
every input the lesson allows); any other survivor is a hole in the checks. A mutant
whose grading ends in a grader error is not killed: it is reported apart, and the run
fails.

    python scripts/mutants.py [LESSON] [--course DIR] [--lesson PATH] [--notebook NAME]
                              [--exercise GRADE_ID] [--jobs N] [--variables] [--list]
                              [--json FILE]

Exit status: 0 when every non-equivalent mutant was killed, 1 when some survived (or a
listed equivalent mutant no longer exists, or was killed: then either a correct answer
fails an exercise or the entry is wrong), 3 on a grader error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Mapping

from .mutate import FRESH_DELETED, FRESH_HOISTED, Mutant, cell_mutants, notebook_mutants, split_solution

__all__ = ["Mutant", "FRESH_DELETED", "FRESH_HOISTED", "SolutionFails", "cell_mutants", "notebook_mutants", "split_solution",
           "equivalents", "solution_notebooks", "base_notebook", "grade_base", "grade_mutant",
           "run", "summary", "main", "cli"]

Key = tuple[str, str, str, str]

# Tight limits: a mutant that loops forever costs seconds (a timeout counts as killed).
# Lesson 8's slowest solution cell takes about a second on a busy 2-core machine.
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 20.0, 90.0


class SolutionFails(Exception):
    """The unmutated solution notebook fails an exercise: every mutant would look killed,
    so the run proves nothing. (Not a grader error: the lesson's solution or check is wrong.)"""


def equivalents(lesson, *, variables: bool = True) -> dict[Key, str]:
    """The mutants ``lesson`` lists as equivalent, with those of ``--variables`` unless
    ``variables`` is false (a run without them cannot generate those, so they are not
    stale; but a listed one always counts as equivalent)."""
    out = dict(lesson.equivalent_mutants)
    if variables:
        out.update(lesson.equivalent_variable_mutants)
    return out


# ----------------------------------------------------------------------------- notebooks
def solution_notebooks(course: Path, assignment: str, names: list[str] | None = None) -> dict[str, dict]:
    """The source notebooks of ``course/assignments/ASSIGNMENT`` (JSON) by file stem,
    optionally only ``names``; :class:`ValueError` for a name that is not there."""
    folder = Path(course) / "assignments" / assignment
    found = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.ipynb"))}
    if names:
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise ValueError(f"no such notebook: {', '.join(unknown)} (have {', '.join(found)})")
        found = {k: v for k, v in found.items() if k in names}
    return found


def base_notebook(nb: dict, folder: Path, name: str, *, demos: bool = False):
    """The solution notebook as the grader reads it (markers and hidden tests removed),
    without its demonstration cells (code cells with no grade_id): no check reads what
    they compute, they are the slowest cells (lesson 8's matmul timings run the three-loop
    version for seconds), and leaving them out can only make a mutant harder to kill
    (it can no longer run out of time in a demonstration). With ``demos`` they are kept:
    for the mutants that delete a statement and leave its names to what earlier cells
    assigned (``FRESH_DELETED``), as a student's notebook would."""
    from ..engine.notebook import read_notebook
    from .release import solution_notebook
    nb = solution_notebook(nb)
    if not demos:
        nb["cells"] = [c for c in nb["cells"] if c["cell_type"] != "code"
                       or c.get("metadata", {}).get("nbgrader", {}).get("grade_id")]
    path = Path(folder) / f"{name}{'-demos' if demos else ''}.ipynb"
    path.write_text(json.dumps(nb))
    return read_notebook(path)


def grade_base(base, limits) -> list[str]:
    """The exercises the unmutated solution notebook fails (must be none, or every mutant
    would look killed)."""
    from ..engine.grade import catalogue, identify, open_submission
    checks = catalogue()
    with open_submission(base, limits) as sub:
        results = [checks.run_exercise(ex, sub) for ex in checks.NOTEBOOKS[identify(base)]]
    return [r.message.splitlines()[0] for r in results if r.score < r.max_score]


def grade_mutant(mutant: Mutant, base, limits, equivalent: Mapping[Key, str]) -> Mutant:
    """Grade one mutant, its own exercise first, stopping at the first failing exercise.
    ``equivalent``: the keys of the mutants listed as equivalent (and why)."""
    from ..engine.errors import GraderError
    from ..engine.grade import catalogue, identify, open_submission
    from ..engine.notebook import Notebook
    checks = catalogue()
    cells = [dataclasses.replace(c, source=mutant.source) if c.grade_id == mutant.grade_id else c
             for c in base.cells]
    nb = Notebook(base.path, cells, set(base.duplicated_ids))
    order = sorted(checks.NOTEBOOKS[identify(nb)], key=lambda ex: ex.name != mutant.grade_id)
    listed = mutant.key in equivalent
    try:
        with open_submission(nb, limits) as sub:
            for ex in order:
                result = checks.run_exercise(ex, sub)
                if result.grader_error or result.score < result.max_score:
                    mutant.status = ("grader error" if result.grader_error else
                                     "equivalent, killed" if listed else "killed")
                    lines = result.message.splitlines()
                    # partial credit: the first line says which parts failed, the next one why
                    mutant.by, mutant.message = ex.name, " ".join(
                        line.strip() for line in lines[:2 if result.score > 0 else 1])
                    return mutant
    except GraderError as exc:
        mutant.status, mutant.message = "grader error", str(exc)
        return mutant
    mutant.status = "equivalent" if listed else "survived"
    return mutant


def run(lesson, course: Path, notebooks: list[str] | None = None, exercises: list[str] | None = None,
        *, jobs: int = 2, variables: bool = False, equivalent: Mapping[Key, str] | None = None,
        out=sys.stdout, progress=sys.stderr) -> tuple[list[Mutant], list[Key]]:
    """Generate and grade the mutants of ``lesson``'s source notebooks in ``course``; return
    them, and the listed equivalent mutants (of the notebooks and exercises graded) that no
    longer exist. ``equivalent`` defaults to what the lesson lists (see :func:`equivalents`).
    :class:`SolutionFails` when an unmutated solution fails;
    :class:`~autograder.engine.errors.GraderError` when the grader cannot grade."""
    from ..engine import pool
    from ..engine.preflight import preflight
    from ..engine.sandbox import Limits
    expected = equivalent
    if equivalent is None:
        equivalent, expected = equivalents(lesson), equivalents(lesson, variables=variables)
    limits = Limits(cell_timeout=CELL_TIMEOUT, notebook_timeout=NOTEBOOK_TIMEOUT)
    sources = solution_notebooks(course, lesson.name, notebooks)
    pool.prestart(jobs, limits, *pool.settings())
    preflight(limits)
    mutants: list[Mutant] = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        for name, nb in sources.items():
            mutants += notebook_mutants(name, nb, exercises, variables=variables)
        bases = {(name, False): base_notebook(nb, Path(tmp), name) for name, nb in sources.items()}
        bases.update({(m.notebook, True): base_notebook(sources[m.notebook], Path(tmp), m.notebook, demos=True)
                      for m in mutants if m.demos})
        for (name, demos), base in bases.items():
            failed = grade_base(base, limits)
            if failed:
                raise SolutionFails(f"{name}{' (with its demonstration cells)' if demos else ''}: the "
                                    f"solution notebook itself fails, so mutants prove nothing: "
                                    + "; ".join(failed))
        done, start = 0, time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            futures = [ex.submit(grade_mutant, m, bases[m.notebook, m.demos], limits, equivalent)
                       for m in mutants]
            for future in as_completed(futures):
                m = future.result()
                done += 1
                if out is not None and m.status in ("survived", "grader error", "equivalent, killed"):
                    print(f"{m.status.upper()}: {m.line()}" +
                          (f"\n  {m.message}" if m.message else ""), file=out, flush=True)
                if progress is not None and progress.isatty():
                    print(f"\r{done}/{len(mutants)} mutants, {time.monotonic() - start:.0f} s",
                          end="", file=progress, flush=True)
        if progress is not None and progress.isatty():
            print(file=progress)
    present = {m.key for m in mutants}
    stale = [k for k in expected if k[0] in sources and (not exercises or k[1] in exercises)
             and k not in present]
    return mutants, stale


def summary(mutants: list[Mutant], stale: list[Key], seconds: float | None = None) -> str:
    count = {s: sum(m.status == s for m in mutants) for s in ("killed", "equivalent", "survived",
                                                              "grader error")}
    graded = len(mutants) - count["equivalent"]
    score = 100.0 * count["killed"] / graded if graded else 100.0
    lines = [f"{len(mutants)} mutants: {count['killed']} killed, {count['equivalent']} equivalent, "
             f"{count['survived']} survived, {count['grader error']} grader errors"]
    for name in dict.fromkeys(m.notebook for m in mutants):
        mine = [m for m in mutants if m.notebook == name]
        k = sum(m.status == "killed" for m in mine)
        e = sum(m.status == "equivalent" for m in mine)
        lines.append(f"  {name}: {len(mine)} mutants, {k} killed, {e} equivalent, "
                     f"score {100.0 * k / max(1, len(mine) - e):.1f}%")
    lines += [f"listed as equivalent but no longer generated: {k}" for k in stale]
    lines += [f"listed as equivalent but killed (a correct answer fails, or the entry is wrong): "
              f"{m.line()}" for m in mutants if m.status == "equivalent, killed"]
    lines.append(f"mutation score: {score:.1f}% of {graded} non-equivalent mutants killed"
                 + (f" ({seconds:.0f} s)" if seconds is not None else ""))
    return "\n".join(lines)


def exit_status(mutants: list[Mutant], stale: list[Key]) -> int:
    if any(m.status == "grader error" for m in mutants):
        return 3
    return 1 if stale or any(m.status in ("survived", "equivalent, killed") for m in mutants) else 0


# ----------------------------------------------------------------------------- command line
def main(lesson: str = "lesson8", *, course: str | Path = ".", notebooks: list[str] | None = None,
         exercises: list[str] | None = None, jobs: int = 2, variables: bool = False,
         list_only: bool = False, json_path: str | Path | None = None, out=sys.stdout,
         err=sys.stderr) -> int:
    """Grade (or with ``list_only``, print) the mutants of lesson ``lesson`` (discovered:
    installed, or a folder added with :func:`autograder.engine.discovery.add_paths`) in the
    course directory ``course``; print a summary; return the exit status."""
    from ..engine import discovery
    from ..engine.errors import GraderError
    try:
        found = discovery.load()
        if lesson not in found:
            raise GraderError(f"no lesson is called {lesson} (found: {', '.join(sorted(found)) or 'none'})",
                              "Install it, or name its folder with --lesson PATH")
        the_lesson = found[lesson]
        if list_only:
            listed = equivalents(the_lesson)
            for name, nb in solution_notebooks(Path(course), lesson, notebooks).items():
                for m in notebook_mutants(name, nb, exercises, variables=variables):
                    print(m.line() + ("  (equivalent)" if m.key in listed else ""), file=out)
            return 0
        start = time.monotonic()
        mutants, stale = run(the_lesson, Path(course), notebooks, exercises, jobs=jobs,
                             variables=variables, out=out)
    except ValueError as exc:                   # an unknown --notebook
        print(exc, file=err)
        return 1
    except SolutionFails as exc:
        print(exc, file=err)
        return 1
    except GraderError as exc:
        print(f"grader error: {exc}", file=err)
        return 3
    print(summary(mutants, stale, time.monotonic() - start), file=out)
    if json_path:
        Path(json_path).write_text(json.dumps(
            [{k: v for k, v in dataclasses.asdict(m).items() if k != "source"} for m in mutants],
            indent=1) + "\n")
    return exit_status(mutants, stale)


def cli(argv: list[str] | None = None, *, course: str | Path = ".", description: str = "") -> int:
    """The command line of :func:`main` (``scripts/mutants.py``)."""
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="lesson8", metavar="LESSON",
                        help="the lesson whose checks are tested (default lesson8)")
    parser.add_argument("--course", default=str(course), metavar="DIR",
                        help="the course directory holding assignments/LESSON/ (default: %(default)s)")
    parser.add_argument("--lesson", action="append", default=[], metavar="PATH",
                        help="also use the lesson in this folder (not installed; repeatable)")
    parser.add_argument("--notebook", action="append", metavar="NAME",
                        help="only this notebook, e.g. 02_fully_connected (repeatable)")
    parser.add_argument("--exercise", action="append", metavar="GRADE_ID",
                        help="only the cell of this exercise (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="mutants graded at once")
    parser.add_argument("--variables", action="store_true",
                        help="also replace each variable read by another variable of its scope "
                             "(many more mutants; not part of the default run)")
    parser.add_argument("--list", action="store_true", help="print the mutants without grading them")
    parser.add_argument("--json", metavar="FILE", help="write every mutant and its outcome as JSON")
    args = parser.parse_args(argv)
    from ..engine import discovery
    from ..engine.errors import GraderError
    try:
        discovery.add_paths(args.lesson)
    except GraderError as exc:
        print(f"grader error: {exc}", file=sys.stderr)
        return 3
    return main(args.name, course=args.course, notebooks=args.notebook, exercises=args.exercise,
                jobs=args.jobs, variables=args.variables, list_only=args.list, json_path=args.json)
