"""``python -m autograder``: a thin command line over the Python API.

    python -m autograder grade NOTEBOOK [NOTEBOOK ...] [--json FILE] [--jobs N]
    python -m autograder solutions [--check]

Each subcommand is a plain function (``grade(paths, ...)``, ``solutions(...)``) so the
Python API and the command line never drift apart.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .report import NotebookReport, render_table, render_text, write_json
from .sandbox import Limits

__all__ = ["main", "grade"]


def grade(paths: list[str | Path], *, json_path: str | Path | None = None, jobs: int = 1,
          limits: Limits = Limits(), out=sys.stdout, verbose: bool = True) -> list[NotebookReport]:
    """Grade notebooks (in input order), print each report, optionally write JSON."""
    from .grade import grade_notebook

    def one(path):
        return grade_notebook(path, limits=limits)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, p) for p in paths]
        reports = []
        for future in futures:       # print in input order, as each finishes
            report = future.result()
            reports.append(report)
            print(render_text(report, verbose=verbose), file=out, flush=True)
            print(file=out)
    if len(reports) > 1:
        print(render_table(reports), file=out)
    if json_path:
        write_json(reports, json_path)
    return reports


def _solutions(check: bool) -> int:
    from .release import build_solutions
    stale = build_solutions(check=check)
    if check and stale:
        print("solutions/ is out of date: " + ", ".join(stale) +
              "\n  run `python -m autograder solutions` and commit the result", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade notebooks and print a report per exercise")
    g.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    g.add_argument("--json", dest="json_path", metavar="FILE", help="write one JSON report per notebook")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="grade N notebooks at once")
    g.add_argument("--cell-timeout", type=float, default=Limits.cell_timeout, metavar="S")
    g.add_argument("--timeout", type=float, default=Limits.notebook_timeout, metavar="S",
                   help="time budget for one whole notebook")
    g.add_argument("--memory", type=float, default=Limits.memory / 2**30, metavar="GiB")
    g.add_argument("-q", "--quiet", action="store_true", help="only the first line of each message")
    s = sub.add_parser("solutions", help="regenerate solutions/ from assignments/ (hidden tests removed)")
    s.add_argument("--check", action="store_true", help="only report whether solutions/ is current")
    args = parser.parse_args(argv)

    if args.command == "solutions":
        return _solutions(args.check)
    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.timeout,
                    memory=int(args.memory * 2**30))
    try:
        reports = grade(args.notebooks, json_path=args.json_path, jobs=args.jobs, limits=limits,
                        verbose=not args.quiet)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    for r in reports:
        if r.error:
            print(f"error: {r.notebook}: {r.error}", file=sys.stderr)
    if any(r.error for r in reports):
        return 2
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
