"""The check library: one function per exercise, shared by every front end.

An exercise is registered with :func:`exercise`; :func:`run_exercise` runs it against
any :class:`~autograder.submission.Submission` and always returns an
:class:`~autograder.report.ExerciseResult` — a check never crashes the grader.

Checks never import ``solutions/``: references come from PyTorch itself or literals.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import static
from ..errors import STUDENT_NOTE, GraderError
from ..feedback import Fail, NotImplementedYet
from ..report import ExerciseResult
from ..session import WorkerDied
from ..submission import Submission

__all__ = ["Exercise", "exercise", "EXERCISES", "NOTEBOOKS", "run_exercise", "call", "Called",
           "fail_on_error", "cell_error", "grader_error_result", "require_named_squeeze"]


@dataclass(frozen=True)
class Exercise:
    name: str                   # the nbgrader grade_id of the solution cell
    notebook: str               # e.g. "02_fully_connected"
    points: int
    check: Callable[..., Any]
    title: str                  # the call shown in messages, e.g. "lin(x, w, b)"
    rule: static.Rule | None = None
    rule_hint: str = ""
    # The check re-runs the cell with the grader's inputs (see fully_connected._judge_cell),
    # so a cell that raised because of an earlier exercise's mistake can still pass.
    reruns: bool = False
    # The name the cell defines, when it is not the grade_id (class ReluModule in cell
    # "Relu_module"): how a student's own kernel finds the cell's source.
    defines: str = ""


# The kit itself is off limits inside solution cells, apart from what the setup cells use.
KIT_RULE = static.Rule(prefixes=("autograder",), allowed=("autograder.check", "autograder.data.mnist_path"),
                       imports=True, strings=("autograder",))
KIT_HINT = ("Inside your solutions only `check` and `mnist_path` come from the kit; everything else "
            "in it is the grader's own code. Write the answer yourself: that is the exercise.")

EXERCISES: dict[str, Exercise] = {}
NOTEBOOKS: dict[str, list[Exercise]] = {}
# Per notebook, a function that loads the grader's references ahead of the checks.
PREFETCH: dict[str, Callable[[], Any]] = {}


def exercise(notebook: str, name: str, points: int, title: str, *,
             rule: static.Rule | None = None, rule_hint: str = "", reruns: bool = False,
             defines: str = ""):
    """Register a check function for the exercise ``name`` of ``notebook``."""
    def register(fn):
        ex = Exercise(name, notebook, points, fn, title, rule, rule_hint, reruns, defines)
        EXERCISES[name] = ex
        NOTEBOOKS.setdefault(notebook, []).append(ex)
        return fn
    return register


@dataclass
class Called:
    """The outcome of calling a student function (decoded, in the grader)."""
    result: Any
    args: list[Any] = field(default_factory=list)     # the arguments after the call
    stdout: str = ""


def call(sub: Submission, title: str, fn: str, *args, seed: int | None = None,
         overrides: dict | None = None, definitions: dict | None = None,
         hint_on_error: Callable[[dict], str | None] | None = None) -> Called:
    """Call the student's ``fn(*args)`` in the submission; raise :class:`Fail` on errors."""
    names = [f"a{i}" for i in range(len(args))]
    code = f"result = {fn}({', '.join(names)})"
    ev = sub.evaluate(code, inputs=dict(zip(names, args)), overrides=overrides,
                      definitions=definitions, outputs=("result", *names), seed=seed)
    fail_on_error(title, ev, (fn,), hint_on_error)
    return Called(ev.values.get("result"), [ev.values.get(n) for n in names], ev.stdout)


def fail_on_error(title: str, ev, names: tuple[str, ...] = (),
                  hint_on_error: Callable[[dict], str | None] | None = None) -> None:
    """Raise the student-facing :class:`Fail` for a snippet that timed out or raised."""
    if ev.status == "timeout":
        raise Fail(f"{title}: did not finish in time.",
                   hint="Look for a loop that never ends, or work far larger than the inputs need.")
    if not ev.error:
        return
    ename, evalue = ev.error.get("ename", "Error"), ev.error.get("evalue", "")
    if ename == "NotImplementedError":
        raise NotImplementedYet(f"{title}: not implemented yet.")
    for name in names:
        if ename == "NameError" and f"'{name}'" in evalue:
            raise Fail(f"{title}: `{name}` is not defined.",
                       hint="Run the cell that defines it; check the spelling of the name.")
    hint = _limit_hint(ev.error) or (hint_on_error(ev.error) if hint_on_error else None)
    raise Fail(f"{title}: calling it raised {ename}.", *_traceback_lines(ev.error),
               hint=hint or "Read the last line of the traceback, then the line of your code above it.")


def _limit_hint(error: dict) -> str | None:
    """A hint for errors that mean the submission hit one of the grader's limits."""
    ename, evalue = error.get("ename", ""), str(error.get("evalue", ""))
    if ename == "MemoryError" or "allocate memory" in evalue:
        return ("Your code asked for more memory than the grader allows for one submission; "
                "the exercise needs only a few megabytes. Look for a tensor far larger than its inputs.")
    if ename == "BlockingIOError" or "Resource temporarily unavailable" in evalue:
        return ("Your code started more processes or threads than the grader allows; "
                "nothing in this lesson needs to start any.")
    return None


def _traceback_lines(error: dict) -> list[str]:
    text = (error.get("traceback") or f"{error.get('ename')}: {error.get('evalue')}").rstrip()
    return ["Your code's traceback:"] + ["  " + line for line in text.splitlines()[-12:]]


def _precheck(ex: Exercise, sub: Submission) -> None:
    """Problems with the exercise's cell itself: missing, banned operators, crashed."""
    missing = sub.cell_missing(ex.name)
    if missing:
        raise Fail(f"{ex.title}: {missing}.")
    source = sub.source(ex.name, ex.defines or None)
    if source:
        found = static.find_banned(source, KIT_RULE, static.aliases(sub.all_source()))
        if found:
            names = ", ".join(f"`{f.name}` (line {f.line})" for f in found[:3])
            raise Fail(f"{ex.title}: uses {names}, which is the grader's own code, not an answer.",
                       hint=KIT_HINT)
    if ex.rule and source:
        found = static.find_banned(source, ex.rule, static.aliases(sub.all_source()))
        if found:
            names = ", ".join(f"`{f.name}` (line {f.line})" for f in found[:3])
            raise Fail(f"{ex.title}: uses {names}, which this exercise asks you to build yourself.",
                       hint=ex.rule_hint or "The point is to see what is inside PyTorch's operator: "
                                            "write it with plain tensor arithmetic.")
    run = sub.cell_run(ex.name, ex.defines or None)
    if run is None or run.status == "ok":
        return
    error = run.error or {}
    if error.get("ename") == "NotImplementedError":
        raise NotImplementedYet(f"{ex.title}: not implemented yet.")
    if run.status == "timeout":
        raise Fail(f"{ex.title}: your cell did not finish in time ({error.get('evalue', '')}).",
                   hint="Look for a loop that never ends.")
    if run.status == "crashed":
        raise Fail(f"{ex.title}: running your cell stopped the Python process: {error.get('evalue', '')}.",
                   hint="Look for os._exit, sys.exit, or memory use far beyond what the exercise needs.")
    if not ex.reruns:
        raise cell_error(ex, run)


def cell_error(ex: Exercise, run) -> Fail:
    """The failure for an exercise whose cell raised when the notebook ran."""
    error = run.error or {}
    return Fail(f"{ex.title}: your cell raised {error.get('ename', 'an error')} when it ran.",
                *_traceback_lines(error),
                hint=_limit_hint(error) or "Fix the error and run the cell again; the cells below it depend on it.")


def run_exercise(ex: Exercise, sub: Submission, **options) -> ExerciseResult:
    """Grade one exercise. Never raises: every outcome becomes a result with a message."""
    try:
        _precheck(ex, sub)
        ex.check(sub, **options)
    except Fail as fail:
        return ExerciseResult(ex.name, False, 0, ex.points, f"{ex.name} · {fail.render()}")
    except WorkerDied as died:          # a fresh worker ran the canary: the crash is the student's
        return ExerciseResult(ex.name, False, 0, ex.points,
                              f"{ex.name} · {ex.title}: the Python process running your code stopped: "
                              f"{died}.\n  Hint: look for os._exit, sys.exit, an endless loop, "
                              f"or memory use far beyond what the exercise needs.")
    except GraderError as exc:
        return grader_error_result(ex, str(exc))
    except Exception:  # a bug in the grader: say so plainly, and do not blame the student
        detail = traceback.format_exc(limit=-3).strip().splitlines()[-1]
        return grader_error_result(ex, f"the grader's own code raised {detail}")
    return ExerciseResult(ex.name, True, ex.points, ex.points, f"{ex.name} · {ex.title}: passed.")


def require_named_squeeze(title: str, source: str | None) -> None:
    """Fail when ``source`` calls ``.squeeze()`` without naming the axis it removes."""
    bare = static.bare_squeeze_calls(source or "")
    if bare:
        raise Fail(f"{title}: `.squeeze()` without an axis (line {bare[0]}).",
                   "It removes every axis of size 1, so with a batch of one the result collapses "
                   "to a scalar and broadcasting silently changes meaning.",
                   hint="Name the axis you remove: squeeze the last axis explicitly.")


def grader_error_result(ex: Exercise, reason: str) -> ExerciseResult:
    """The result for an exercise the grader could not check: no score, the reason."""
    return ExerciseResult(ex.name, False, 0, ex.points,
                          f"{ex.name} · {ex.title}: not graded: {reason.rstrip('.')}.\n  {STUDENT_NOTE}",
                          grader_error=True)


# Register every notebook's exercises (the modules import the names defined above).
from . import backward, fully_connected, init_pytorch, matmul, module  # noqa: E402,F401
