"""``python -m autograder``: a thin command line over the Python API.

    python -m autograder grade NOTEBOOK [NOTEBOOK ...] [--json FILE]
                               [--jobs N | --scheduler ADDRESS] [--no-progress]
    python -m autograder preflight
    python -m autograder gradescope [NOTEBOOK ...] -o autograder.zip
    python -m autograder notebooks [DEST] [--force]
    python -m autograder nbgrader-config [DIR] [--force]
    python -m autograder solutions [--check] [--course DIR]
    python -m autograder lint-lesson LESSON [--course DIR] [--lesson PATH] [--skip-mutants]
                                            [--seeds N] [--jobs N] [--notebook NAME]
    python -m autograder report CLASS.json [...] [--html OUT.html]
    python -m autograder report --gradebook gradebook.db --assignment lesson8 [--html OUT.html]
    python -m autograder report ... --csv grades.csv [--points-row]

Each subcommand is a plain function (``grade(paths, ...)``, ``solutions(...)``,
:func:`autograder.frontends.selftest.main`) so the Python API and the command line never
drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..engine import pool as workers
from ..engine.errors import EXIT_FAILED, EXIT_GRADER_ERROR, EXIT_OK, EXIT_UNREADABLE, GraderError
from ..reports.progress import Progress, wanted
from ..engine.report import NotebookReport, render_table, render_text, write_json
from ..engine.sandbox import Limits

__all__ = ["main", "grade"]


def _timed(path, limits: Limits) -> tuple[NotebookReport, float]:
    from ..engine.grade import grade_notebook
    start = time.monotonic()
    report = grade_notebook(path, limits=limits)
    return report, time.monotonic() - start


def _grade_locally(pool: ThreadPoolExecutor, paths, limits: Limits):
    """Yield (input index, report, seconds) in the order the notebooks finish."""
    futures = {pool.submit(_timed, p, limits): i for i, p in enumerate(paths)}
    for future in as_completed(futures):
        yield futures[future], *future.result()


def grade(paths: list[str | Path], *, json_path: str | Path | None = None, jobs: int = 1,
          limits: Limits = Limits(), out=sys.stdout, verbose: bool = True,
          scheduler: str | None = None, progress: bool = True) -> list[NotebookReport]:
    """Grade notebooks (in input order), print each report, optionally write JSON.

    With ``scheduler`` (a Dask scheduler address) the notebooks are graded on that cluster
    and ``jobs`` is ignored; :class:`~autograder.frontends.dask.ClusterError` if it is unusable.
    With ``progress``, a bar is drawn on stderr when it is a terminal (see :mod:`autograder.reports.progress`).
    With ``scheduler`` unset, :func:`~autograder.engine.preflight.preflight` runs first and raises
    :class:`~autograder.engine.errors.GraderError` (nobody graded) when the grader cannot grade.
    """
    with contextlib.ExitStack() as stack:
        if scheduler:
            from .dask import Cluster
            cluster = stack.enter_context(Cluster(scheduler))
            slots, finished = cluster.slots, cluster.grade(paths, limits=limits)
        else:
            slots = max(1, jobs)
            # Start the zygote (or, without one, the first workers) now: it imports torch
            # and loads MNIST while this process imports torch too.
            workers.prestart(min(slots, len(paths)), limits, *workers.settings(), total=len(paths))
            workers.keep(1)   # spawned workers only: after the first ones, one spare is enough
            from ..engine.preflight import preflight
            preflight(limits)     # GraderError: nobody is graded
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=slots))
            finished = _grade_locally(pool, paths, limits)
        bar = Progress(len(paths), stream=sys.stderr, jobs=slots,
                       enabled=wanted(sys.stderr, len(paths), allowed=progress))
        bar.draw()
        reports: list[NotebookReport | None] = [None] * len(paths)
        shown = 0
        try:
            for i, report, seconds in finished:
                reports[i] = report
                bar.advance(report, seconds)
                while shown < len(reports) and reports[shown] is not None:
                    bar.clear()         # print in input order, as soon as each one can be
                    print(render_text(reports[shown], verbose=verbose), file=out, flush=True)
                    print(file=out)
                    shown += 1
                bar.draw()
        finally:
            bar.clear()
    if len(reports) > 1:
        print(render_table(reports), file=out)
    if json_path:
        write_json(reports, json_path)
    return reports


def _preflight() -> int:
    from ..engine.preflight import preflight
    from ..engine.sandbox import confinement
    try:
        preflight(Limits())
    except GraderError as exc:
        print(f"grader error: {exc}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    print(f"ready to grade: data verified, a worker imported the kit from {workers.KIT_DIR} and ran "
          f"the canary cell, references loaded ({confinement()[1]})")
    return EXIT_OK


def _notebooks(dest: str, force: bool) -> int:
    from .notebooks import write_notebooks
    try:
        write_notebooks(dest, force=force)
    except FileNotFoundError as exc:    # a broken installation: the kit's fault
        print(f"grader error: {exc}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    except OSError as exc:              # DEST not writable, not a folder, ...
        print(f"error: cannot write the notebooks into {dest}: {exc}", file=sys.stderr)
        return 1
    return EXIT_OK


def _solutions(check: bool, root: Path) -> int:
    from .release import build_solutions
    stale = build_solutions(root, check=check)
    if check and stale:
        print("solutions/ is out of date: " + ", ".join(stale) +
              "\n  run `python -m autograder solutions` and commit the result", file=sys.stderr)
        return 1
    return 0


def _nbgrader_config(dest: Path, *, force: bool = False) -> int:
    """Write the kit's nbgrader configuration (the same file as the kit's own course)."""
    from importlib.resources import files
    target = dest / "nbgrader_config.py"
    if target.exists() and not force:
        print(f"{target} exists; not replaced (use --force to replace it)", file=sys.stderr)
        return EXIT_FAILED
    dest.mkdir(parents=True, exist_ok=True)
    target.write_bytes(files("autograder.frontends.nbgrader").joinpath("course_config.py").read_bytes())
    print(f"wrote {target}")
    return EXIT_OK


def exit_status(reports: list[NotebookReport]) -> int:
    """3 the grader could not grade, 2 a file could not be read, 1 some exercise failed,
    0 everything passed (the most serious wins)."""
    if any(r.grader_error for r in reports):
        return EXIT_GRADER_ERROR
    if any(r.error for r in reports):
        return EXIT_UNREADABLE
    return EXIT_OK if all(r.passed for r in reports) else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0])
    lessons = argparse.ArgumentParser(add_help=False)
    lessons.add_argument("--lesson", action="append", default=[], metavar="PATH",
                         help="also use the lesson in this folder (not installed; repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade notebooks and print a report per exercise", parents=[lessons])
    g.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    g.add_argument("--json", dest="json_path", metavar="FILE", help="write one JSON report per notebook")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="grade N notebooks at once")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on a running Dask cluster, e.g. tcp://host:8786 (needs [cluster])")
    g.add_argument("--cell-timeout", type=float, default=Limits.cell_timeout, metavar="S")
    g.add_argument("--timeout", type=float, default=Limits.notebook_timeout, metavar="S",
                   help="time budget for one whole notebook")
    g.add_argument("--memory", type=float, default=Limits.memory / 2**30, metavar="GiB")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="only the first line of each message, and no progress bar")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    sub.add_parser("preflight", help="check that this machine can grade (data, workers, references)",
                   parents=[lessons])
    n = sub.add_parser("notebooks", help="write the released notebooks into DEST (default: here), "
                                        "keeping any that exist")
    n.add_argument("dest", nargs="?", default=".", metavar="DEST")
    n.add_argument("--force", action="store_true", help="replace notebooks that exist in DEST")
    s = sub.add_parser("solutions", help="regenerate solutions/ from assignments/ (hidden tests removed)")
    s.add_argument("--check", action="store_true", help="only report whether solutions/ is current")
    s.add_argument("--course", metavar="DIR", default=".", help="the course directory (default: here)")
    c = sub.add_parser("nbgrader-config", help="write the kit's nbgrader_config.py into a course directory")
    c.add_argument("dest", nargs="?", default=".", metavar="DIR")
    c.add_argument("--force", action="store_true", help="replace an nbgrader_config.py that is there")
    t = sub.add_parser("lint-lesson", parents=[lessons],
                       help="the author's self-test: solutions 100%%, stubs 0, release current, "
                            "mutants killed, no false failure over seeds")
    t.add_argument("name", metavar="LESSON", help="the lesson (installed, or a folder given with --lesson)")
    t.add_argument("--course", default=".", metavar="DIR",
                   help="the course directory with assignments/LESSON and release/LESSON (default: .)")
    t.add_argument("--skip-mutants", action="store_true", help="leave out the mutants (the slowest check)")
    t.add_argument("--notebook", action="append", metavar="NAME",
                   help="only this source notebook's mutants (repeatable)")
    t.add_argument("--seeds", type=int, metavar="N",
                   help="seeds per case for the lesson's sweep (its own default otherwise), or, "
                        "for a lesson without one, how many more times the solutions are graded "
                        "(default 3)")
    t.add_argument("--jobs", type=int, default=2, metavar="N", help="notebooks or mutants graded at once")
    m = sub.add_parser("mutants", add_help=False,
                       help="mutation testing of a lesson's checks (the options: mutants --help)")
    m.add_argument("rest", nargs=argparse.REMAINDER)
    r = sub.add_parser("report", help="a class report from `grade --json` files or nbgrader's gradebook",
                       parents=[lessons])
    r.add_argument("json_files", nargs="*", metavar="CLASS.json")
    r.add_argument("--html", metavar="OUT.html", help="write one self-contained page instead of text")
    r.add_argument("--gradebook", metavar="DB", help="read nbgrader's gradebook.db instead of JSON")
    r.add_argument("--assignment", metavar="NAME", help="the assignment, with --gradebook")
    r.add_argument("--csv", metavar="OUT.csv", help="write the gradebook export: one row per student, "
                                                    "one column per exercise, then the total")
    r.add_argument("--points-row", action="store_true",
                   help="with --csv: a second row with each column's points (Canvas; not for Moodle)")
    gs = sub.add_parser("gradescope", help="build a Gradescope autograder bundle (a zip)", parents=[lessons])
    gs.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                    help="notebooks to grade, by name or source path (default: all of the lesson's)")
    gs.add_argument("-o", "--output", default="autograder.zip", metavar="ZIP")
    gs.add_argument("--visibility", default="visible", help="visibility of each exercise's test")
    gs.add_argument("--hidden-visibility", default="after_published",
                    help="visibility of the hidden tests' outcome (visible, hidden, after_due_date, "
                         "after_published)")
    gs.add_argument("--no-hidden-messages", action="store_true",
                    help="when a hidden test fails, say so without its teaching message")
    gs.add_argument("--torch-index", default=None, metavar="URL",
                    help="where setup.sh installs torch from (default: PyTorch's CPU index)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["mutants"]:         # its own command line (also scripts/mutants.py)
        from .mutants import cli as mutants
        return mutants(argv[1:], description="python -m autograder mutants: can a small change "
                                             "to a correct solution pass?")
    args = parser.parse_args(argv)
    if args.command == "notebooks":     # needs no lesson loaded
        return _notebooks(args.dest, args.force)

    try:
        from ..engine import discovery
        discovery.add_paths(getattr(args, "lesson", []))
        discovery.load()
    except GraderError as exc:          # a broken or clashing lesson: nobody is graded
        print(f"grader error: nobody was graded: {exc}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    if args.command == "report":
        from ..reports.classreport import main as report
        return report(args.json_files, html=args.html, gradebook=args.gradebook, assignment=args.assignment,
                      csv=args.csv, points_row=args.points_row)
    if args.command == "gradescope":
        from .gradescope.bundle import TORCH_CPU_INDEX
        from .gradescope.bundle import main as bundle
        try:
            bundle(args.notebooks, output=args.output, visibility=args.visibility,
                   hidden_visibility=args.hidden_visibility, show_hidden_messages=not args.no_hidden_messages,
                   torch_index=TORCH_CPU_INDEX if args.torch_index is None else args.torch_index)
        except GraderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        return EXIT_OK
    if args.command == "solutions":
        return _solutions(args.check, Path(args.course))
    if args.command == "nbgrader-config":
        return _nbgrader_config(Path(args.dest), force=args.force)
    if args.command == "lint-lesson":
        from .selftest import main as lint_lesson
        return lint_lesson(args.name, course=args.course, skip_mutants=args.skip_mutants,
                           seeds=args.seeds, jobs=args.jobs, notebooks=args.notebook)
    if args.command == "preflight":
        return _preflight()
    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.timeout,
                    memory=int(args.memory * 2**30))
    from .dask import ClusterError
    try:
        reports = grade(args.notebooks, json_path=args.json_path, jobs=args.jobs, limits=limits,
                        verbose=not args.quiet, scheduler=args.scheduler,
                        progress=not (args.quiet or args.no_progress))
    except ClusterError as exc:         # the grader's infrastructure, not a student's file
        print(f"grader error: {exc}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    except GraderError as exc:
        print(f"grader error: nobody was graded: {exc}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    for r in reports:
        if r.error:
            print(f"error: {r.notebook}: {r.error}", file=sys.stderr)
        if r.grader_error:
            reason = r.grader_failure or "; ".join(e.message.splitlines()[0] for e in r.exercises
                                                   if e.grader_error)
            print(f"grader error: {r.notebook}: {reason}", file=sys.stderr)
    return exit_status(reports)


if __name__ == "__main__":
    sys.exit(main())
