"""The authoring API: everything a lesson's checks may use, and nothing else.

A *lesson* is a Python package (installed, or a local folder) that declares one
:class:`Lesson` object and its exercises. The engine finds it (see
:mod:`autograder.engine.discovery`), runs the student's notebook in a confined worker,
and calls each exercise's check with a :class:`Submission`. Every front end (the command
line, pytest, ``check()`` in Jupyter, nbgrader, Dask, the class report, the author's
self-test) grades a discovered lesson with no change to the kit. ``docs/authoring.md``
walks through writing one exercise end to end; this module's docstrings are the reference.

Declaring a lesson and an exercise::

    from autograder.authoring import Fail, Lesson, Rule, call, require_tensor

    lesson = Lesson("mylesson", title="Dot products")
    NB = "01_dot"                                   # the notebook's file stem

    @lesson.exercise(NB, "dot", 2, "dot(a, b)",     # grade_id, points, the call shown
                     rule=Rule(prefixes=("torch.dot",), methods=("dot",)),
                     rule_hint="Multiply elementwise and sum: that is the exercise.")
    def check_dot(sub):
        got = require_tensor(call(sub, "dot(a, b)", "dot", a, b).result, "dot(a, b)")
        if not torch.allclose(got, a @ b):
            raise Fail("dot(a, b): the result has the wrong value.", hint="...")

Checking the lesson itself (``python -m autograder lint-lesson mylesson``): the solutions
score 100%, the released stubs 0 with "not implemented", ``release/`` is what nbgrader
generates, every mutant of the solutions fails unless the lesson lists it as equivalent::

    lesson.equivalent_mutants[(NB, "dot", "return (a * b).sum(0)", "return (a * b).sum(-1)")] = \
        "a and b are 1-d, so axis 0 is their last axis"

and no correct answer fails over many random seeds (``@lesson.seed_sweep``, or the
solutions graded again with fresh seeds).

A check raises :class:`Fail` (the student's mistake, with a teaching message and a hint)
or returns (the exercise passes). Anything else it raises is the grader's own bug and is
reported as a *grader error*, never as the student's zero. Before a check runs, the
engine has already failed the exercise when its cell is missing, still raises
``NotImplementedError`` ("not implemented yet"), crashed, timed out, or uses what the
exercise's :class:`Rule` bans.

Partial credit: an exercise whose pieces are independent declares them with their
points (summing to the exercise's), and its check receives a :class:`Parts` recorder as
its second argument::

    @lesson.exercise(NB, "lin_grad", 3, "lin_grad(inp, out, w, b)",
                     parts={"inp.g": 1, "w.g": 1, "b.g": 1})
    def check_lin_grad(sub, parts):
        after = call(sub, title, "lin_grad", inp, out, w, b).args   # shared: a Fail here fails all
        with parts.judge("inp.g"):
            judge(after[0].g, expected_inp_g)                        # a Fail here fails inp.g only
        with parts.judge("w.g"):
            judge(after[2].g, expected_w_g)
        with parts.judge("b.g"):
            judge(after[3].g, expected_b_g)

The score is the sum of the parts that pass; the message names each failed part with
its explanation and says which passed; the JSON lists ``parts`` (name, score,
max_score). A part can never pass because another failed first: judge every part from
the grader's own inputs, never from what the student's code gave for another part. A
part passes only when it was judged and never failed; a ``Fail`` outside every
``judge`` block fails every part not already failed; a part the check never judged is a
grader error (the lesson's bug), not a pass. ``NotImplementedYet`` always fails the whole
exercise.

The packaging: declare the lesson object in the entry-point group
``foundations_autograder.lessons`` (``mylesson = "mypkg.lesson:lesson"``), or name its
folder with ``--lesson PATH`` / ``AUTOGRADER_LESSONS`` / ``c.SandboxGrade.lessons``.
"""

from __future__ import annotations

from .data import load_mnist_tensors, mnist_path
from .engine.codec import MISSING, NumpyArray, Opaque
from .engine.evidence import active as figures_active
from .engine.evidence import compared as record_compared
from .engine.evidence import fraction as record_fraction
from .engine.evidence import gradient as record_gradient
from .engine.evidence import uniform as record_uniform
from .engine.evidence import weights as record_weights
from .engine.feedback import (
                              Fail,
                              NotImplementedYet,
                              close,
                              describe,
                              difference,
                              require_tensor,
                              shape_str,
)
from .engine.parts import Parts
from .engine.registry import (
                              Called,
                              Exercise,
                              Lesson,
                              LessonError,
                              call,
                              cell_error,
                              fail_on_error,
                              require_named_squeeze,
)
from .engine.session import CellRun, Evaluation
from .engine.static import Finding, Rule, aliases, find_banned, parse
from .engine.stats import (
                              ALPHA,
                              Bounds,
                              bernstein_halfwidth,
                              binomial_acceptance,
                              binomial_cdf,
                              binomial_sf,
                              chi2_quantile,
                              normal_quantile,
                              proportion_interval,
                              violations,
                              weight_bounds,
                              weight_stats,
)
from .engine.submission import Submission

__all__ = [
    # declaring a lesson
    "Lesson", "Exercise", "LessonError", "Rule", "Parts",
    # what a check receives and how it calls the student's code
    "Submission", "CellRun", "Evaluation", "call", "Called", "MISSING", "NumpyArray", "Opaque",
    # failing with a teaching message
    "Fail", "NotImplementedYet", "fail_on_error", "cell_error", "require_tensor",
    "require_named_squeeze", "describe", "difference", "close", "shape_str",
    # reading the student's source
    "find_banned", "aliases", "parse", "Finding",
    # tolerances from sampling distributions
    "ALPHA", "Bounds", "normal_quantile", "chi2_quantile", "weight_bounds", "weight_stats",
    "violations", "bernstein_halfwidth", "binomial_cdf", "binomial_sf", "binomial_acceptance",
    "proportion_interval",
    # the few numbers the figures are drawn from
    "figures_active", "record_weights", "record_uniform", "record_fraction", "record_compared",
    "record_gradient",
    # the data the engine serves to workers
    "mnist_path", "load_mnist_tensors",
]

# The reference, one line per name (the objects' own docstrings say the rest):
#
# Lesson(name, title=)            a lesson; .exercise(notebook, grade_id, points, title, rule=,
#                                 rule_hint=, reruns=, defines=, parts=) declares a check function
#                                 check(sub, **options) (with parts: check(sub, parts, **options));
#                                 .prefetch(notebook) a function that
#                                 loads the notebook's references ahead of the checks (run once,
#                                 in a thread, while the student's cells run); .figure_extra(
#                                 *grade_ids) a function fn(grade_id, sub, seen) that adds to
#                                 the figure data after grading (never changes a result).
#                                 For the self-test (python -m autograder lint-lesson):
#                                 .equivalent_mutants, a dict (notebook, grade_id, line before,
#                                 line after) -> the one-line reason a mutant computes what the
#                                 solution computes (lines as ast.unparse writes them; the
#                                 mutation script's --list prints them), and
#                                 .equivalent_variable_mutants the same for --variables;
#                                 .seed_sweep a function fn(seeds) -> (false_failures, details)
#                                 that runs the statistical checks on correct random draws
#                                 (details: the report, its last line a summary).
# Parts                           the partial-credit recorder: `with parts.judge(name):` judges
#                                 one declared part (a Fail inside fails that part only);
#                                 parts.failed(name) whether it already failed.
# Rule(prefixes=, methods=, ...)  what an exercise's solution cell may not use: checked on the
#                                 source (with line numbers) before the check runs.
# Submission                      sub.evaluate(code, inputs=, outputs=, overrides=,
#                                 definitions=, seed=) runs code in the student's namespace in
#                                 the worker and returns an Evaluation (values decoded as plain
#                                 data and tensors; error; stdout); sub.get(*names) the globals;
#                                 sub.source(grade_id) a cell's source; sub.cell_run(grade_id)
#                                 how the cell ran (CellRun: status ok/error/timeout/crashed);
#                                 sub.all_source() the whole notebook's code.
# call(sub, title, fn, *args)     calls the student's fn(*args) in the worker; raises Fail with
#                                 the student's traceback when it raises or times out, and
#                                 NotImplementedYet for a stub. .result, .args (after the call).
# Fail(headline, *lines, hint=)   the student's mistake: which function, what was checked,
#                                 expected against got as summaries, one hint.
# require_tensor, describe,       summaries of values for messages (shape, dtype, mean/std,
# difference, close, shape_str    first mismatch, largest difference), never whole tensors.
# stats (ALPHA, weight_bounds,    tolerances derived from sampling distributions at a
# binomial_acceptance, ...)       false-alarm probability ALPHA per bound.
# record_* / figures_active       keep a few numbers for the figures, only when someone will
#                                 draw them (check() in Jupyter, nbgrader feedback).
