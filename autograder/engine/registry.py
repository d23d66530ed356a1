"""The catalogue of exercises, and how one exercise is graded.

A lesson (see :mod:`autograder.authoring`) declares its exercises on a :class:`Lesson`;
:mod:`autograder.engine.discovery` installs discovered lessons here, in
:data:`EXERCISES` and :data:`NOTEBOOKS`. :func:`run_exercise` runs an exercise's check
against any :class:`~autograder.engine.submission.Submission` and always returns an
:class:`~autograder.engine.report.ExerciseResult`: a check never crashes the grader.

Checks never import ``solutions/``: references come from PyTorch itself or literals.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from . import evidence, static
from .errors import STUDENT_NOTE, GraderError
from .feedback import DEVICE_HINT, Fail, NotImplementedYet, describe, off_cpu
from .parts import Parts, PartsNeverJudged, outcome, validate
from .report import ExerciseResult
from .session import WorkerDied
from .submission import Submission

__all__ = ["Exercise", "Lesson", "LessonError", "EXERCISES", "NOTEBOOKS", "PREFETCH", "install",
           "run_exercise", "call", "Called", "fail_on_error", "cell_error", "grader_error_result",
           "require_named_squeeze", "guard_plan", "guards"]


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
    lesson: str = ""            # the lesson that declared it
    # Independent parts and their points, (name, points) in the order messages list them;
    # empty: all or nothing. See autograder.engine.parts.
    parts: tuple[tuple[str, float], ...] = ()


# The kit itself is off limits inside solution cells, apart from what the setup cells use.
KIT_RULE = static.Rule(prefixes=("autograder",), allowed=("autograder.check", "autograder.data.mnist_path"),
                       imports=True, strings=("autograder",))
KIT_HINT = ("Inside your solutions only `check` and `mnist_path` come from the kit; everything else "
            "in it is the grader's own code. Write the answer yourself: that is the exercise.")

EXERCISES: dict[str, Exercise] = {}
NOTEBOOKS: dict[str, list[Exercise]] = {}
# Per notebook, a function that loads the grader's references ahead of the checks.
PREFETCH: dict[str, Callable[[], Any]] = {}
LESSONS: dict[str, "Lesson"] = {}


class LessonError(GraderError):
    """A lesson cannot be installed: two lessons define the same exercise, or its
    declaration is broken. A grader error: no student is graded."""

    def __init__(self, what: str, fix: str = "Fix the lesson's declaration, or remove one of the "
                                               "two lessons from the environment") -> None:
        super().__init__(what, fix)


class Lesson:
    """One lesson: its notebooks' exercises, their references and figure extras.

    See :mod:`autograder.authoring` for how an author declares one.
    """

    def __init__(self, name: str, *, title: str = "") -> None:
        self.name, self.title = name, title
        self.exercises: list[Exercise] = []
        self.prefetches: dict[str, Callable[[], Any]] = {}
        self.extras: dict[str, Callable[[str, Any, dict], None]] = {}
        self.origin = ""                # where discovery found it (entry point or folder)
        # For the author's self-test (python -m autograder lint-lesson): the mutants that
        # compute what the solution computes, (notebook, grade_id, line before, line after)
        # -> the one-line reason; the second for the mutants of --variables.
        self.equivalent_mutants: dict[tuple[str, str, str, str], str] = {}
        self.equivalent_variable_mutants: dict[tuple[str, str, str, str], str] = {}
        self.sweep: Callable[[int], tuple[int, str]] | None = None

    def __repr__(self) -> str:
        return f"Lesson({self.name!r}, {len(self.exercises)} exercises)"

    def __getitem__(self, name: str) -> Exercise:
        """The exercise declared as ``name``."""
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise KeyError(name)

    @property
    def notebooks(self) -> dict[str, list[Exercise]]:
        out: dict[str, list[Exercise]] = {}
        for ex in self.exercises:
            out.setdefault(ex.notebook, []).append(ex)
        return out

    def exercise(self, notebook: str, name: str, points: int, title: str, *,
                 rule: static.Rule | None = None, rule_hint: str = "", reruns: bool = False,
                 defines: str = "", parts: dict[str, float] | None = None):
        """Declare the check function of exercise ``name`` (the solution cell's grade_id).

        With ``parts`` (``{"inp.g": 1, "w.g": 1, "b.g": 1}``, summing to ``points``) the
        exercise gives partial credit: the check is called as ``check(sub, parts, **options)``
        and judges each part in ``with parts.judge(name):`` (see :mod:`autograder.engine.parts`).
        """
        if not name.isidentifier():
            raise LessonError(f"lesson {self.name}: exercise name {name!r} is not an identifier "
                              "(it is the grade_id of the solution cell)")
        if points <= 0:
            raise LessonError(f"lesson {self.name}: exercise {name} must be worth some points")
        wrong = validate(parts, points)
        if wrong:
            raise LessonError(f"lesson {self.name}: exercise {name}: {wrong}")

        def register(fn):
            if any(ex.name == name for ex in self.exercises):
                raise LessonError(f"lesson {self.name} declares exercise {name} twice")
            self.exercises.append(Exercise(name, notebook, points, fn, title, rule, rule_hint,
                                           reruns, defines, self.name,
                                           tuple((parts or {}).items())))
            return fn
        return register

    def prefetch(self, notebook: str):
        """Declare a function that loads ``notebook``'s references (run ahead, once)."""
        def register(fn):
            self.prefetches[notebook] = fn
            return fn
        return register

    def seed_sweep(self, fn):
        """Declare ``fn(seeds) -> (false_failures, details)``: the lesson's statistical checks
        run on ``seeds`` correct random draws each; ``false_failures`` counts the correct
        draws they failed (must be 0) and ``details`` is the report to print (its last line
        a summary). Without one, the self-test grades the solutions several times."""
        self.sweep = fn
        return fn

    def figure_extra(self, *names: str):
        """Declare ``fn(name, sub, seen)``, run after exercise ``name`` when figures are shown."""
        def register(fn):
            for n in names:
                self.extras[n] = fn
            return fn
        return register


def install(lesson: Lesson) -> None:
    """Put ``lesson``'s exercises into the catalogue; :class:`LessonError` on a clash."""
    if LESSONS.get(lesson.name) is lesson:
        return
    if lesson.name in LESSONS:
        raise LessonError(f"two lessons are called {lesson.name}: {LESSONS[lesson.name].origin} "
                          f"and {lesson.origin}")
    for ex in lesson.exercises:
        if ex.name in EXERCISES:
            other = EXERCISES[ex.name]
            raise LessonError(
                f"exercise {ex.name} is defined by two lessons: {other.lesson} ({other.notebook}, "
                f"{LESSONS[other.lesson].origin}) and {lesson.name} ({ex.notebook}, {lesson.origin}); "
                "grade_ids must be unique across the installed lessons")
    for notebook in lesson.notebooks:
        if notebook in NOTEBOOKS:
            raise LessonError(f"notebook {notebook} is defined by two lessons: "
                              f"{NOTEBOOKS[notebook][0].lesson} and {lesson.name}")
    LESSONS[lesson.name] = lesson
    for ex in lesson.exercises:
        EXERCISES[ex.name] = ex
        NOTEBOOKS.setdefault(ex.notebook, []).append(ex)
    PREFETCH.update(lesson.prefetches)
    evidence.EXTRAS.update(lesson.extras)


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
    moved = off_cpu(ev.values.get("result"))
    if moved is not None:
        raise Fail(f"{title}: your function returned a tensor on {moved.device}; the grader "
                   "compares on the CPU.", f"Got {describe(moved)}.", hint=DEVICE_HINT)
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


# What torch says when code moves a tensor to a GPU where there is none (a CPU build, the
# grader's worker), or mixes a GPU tensor with the grader's CPU ones.
DEVICE_ERRORS = ("on the same device", "CUDA", "NVIDIA driver", "cuda:")


def _limit_hint(error: dict) -> str | None:
    """A hint for errors that mean the submission hit one of the grader's limits."""
    ename, evalue = error.get("ename", ""), str(error.get("evalue", ""))
    if ename == "MemoryError" or "allocate memory" in evalue:
        return ("Your code asked for more memory than the grader allows for one submission; "
                "the exercise needs only a few megabytes. Look for a tensor far larger than its inputs.")
    if ename == "BlockingIOError" or "Resource temporarily unavailable" in evalue:
        return ("Your code started more processes or threads than the grader allows; "
                "nothing in this lesson needs to start any.")
    if any(s in evalue for s in DEVICE_ERRORS):
        return DEVICE_HINT
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
            raise rule_failure(ex, [f"`{f.name}` (line {f.line})" for f in found])
    run = sub.cell_run(ex.name, ex.defines or None)
    if ex.rule and run is not None and run.violations:
        raise called_banned(ex, run.violations)
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


def rule_failure(ex: Exercise, uses: list[str]) -> Fail:
    """The from-scratch rule's failure: ``uses`` names what the exercise's code used."""
    return Fail(f"{ex.title}: uses {', '.join(uses[:3])}, which this exercise asks you to build yourself.",
                hint=ex.rule_hint or "The point is to see what is inside PyTorch's operator: "
                                     "write it with plain tensor arithmetic.")


def called_banned(ex: Exercise, found: list[tuple[str, int]]) -> Fail:
    """The rule's failure for banned operators seen at run time (:mod:`autograder.engine.guard`)."""
    return rule_failure(ex, [f"`{name}` (called at line {line})" for name, line in found])


def guard_plan(ex: Exercise) -> dict | None:
    """How the run-time guard watches ``ex``: the keyword arguments of
    :meth:`~autograder.submission.Submission.watching` (``None`` for an exercise without a rule)."""
    if ex.rule is None:
        return None
    rule = ex.rule
    methods = (*rule.methods, *rule.attributes, *rule.calls,
               *(("__matmul__", "__rmatmul__", "__imatmul__") if rule.matmul_operator else ()))
    return {"rule": {"prefixes": list(rule.prefixes), "methods": list(dict.fromkeys(methods)),
                     "allowed": list(rule.allowed)},
            "others": [(o.name, o.defines or None) for o in NOTEBOOKS[ex.notebook] if o is not ex],
            "defines": ex.defines or None}


def guards(notebook: str) -> dict[str, dict]:
    """:func:`guard_plan` of every exercise of ``notebook`` that has a rule, by grade_id."""
    return {ex.name: plan for ex in NOTEBOOKS.get(notebook, ()) if (plan := guard_plan(ex))}


def cell_error(ex: Exercise, run) -> Fail:
    """The failure for an exercise whose cell raised when the notebook ran."""
    error = run.error or {}
    return Fail(f"{ex.title}: your cell raised {error.get('ename', 'an error')} when it ran.",
                *_traceback_lines(error),
                hint=_limit_hint(error) or "Fix the error and run the cell again; the cells below it depend on it.")


def run_exercise(ex: Exercise, sub: Submission, **options) -> ExerciseResult:
    """Grade one exercise. Never raises: every outcome becomes a result with a message.

    An exercise with parts scores the sum of the parts that pass (see
    :mod:`autograder.engine.parts`); a failure before any part is judged (missing cell,
    banned operator, stub, crash) scores every part 0. A banned operator seen at run time
    (:mod:`autograder.engine.guard`) fails the whole exercise with the rule's message.
    """
    recorder = Parts(dict(ex.parts)) if ex.parts else None
    plan = guard_plan(ex)
    watch = sub.watching(ex.name, **plan) if plan else contextlib.nullcontext([])
    try:
        with watch as seen:
            try:
                _precheck(ex, sub)
                if recorder is None:
                    ex.check(sub, **options)
                else:
                    try:
                        ex.check(sub, recorder, **options)
                    except NotImplementedYet:
                        raise
                    except Fail as fail:                # outside every part: it fails each one left
                        recorder.fail_all(fail)
            except Fail:
                if not seen:
                    raise
            if seen:        # a banned operator the source did not show: the rule's failure first
                raise called_banned(ex, seen)
    except Fail as fail:
        return ExerciseResult(ex.name, False, 0, ex.points, f"{ex.name} · {fail.render()}",
                              parts=_zero_parts(ex))
    except WorkerDied as died:          # a fresh worker ran the canary: the crash is the student's
        return ExerciseResult(ex.name, False, 0, ex.points,
                              f"{ex.name} · {ex.title}: the Python process running your code stopped: "
                              f"{died}.\n  Hint: look for os._exit, sys.exit, an endless loop, "
                              f"or memory use far beyond what the exercise needs.", parts=_zero_parts(ex))
    except GraderError as exc:
        return grader_error_result(ex, str(exc))
    except Exception:  # a bug in the grader: say so plainly, and do not blame the student
        detail = traceback.format_exc(limit=-3).strip().splitlines()[-1]
        return grader_error_result(ex, f"the grader's own code raised {detail}")
    if recorder is not None:
        try:
            out = outcome(ex.title, recorder)
        except PartsNeverJudged as exc:
            return grader_error_result(ex, f"the lesson's check is incomplete: {exc}")
        return ExerciseResult(ex.name, out.passed, out.score, ex.points, f"{ex.name} · {out.message}",
                              parts=out.parts)
    return ExerciseResult(ex.name, True, ex.points, ex.points, f"{ex.name} · {ex.title}: passed.")


def _zero_parts(ex: Exercise) -> list[dict]:
    return [{"name": n, "score": 0.0, "max_score": float(p)} for n, p in ex.parts]


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

