"""Partial credit: an exercise's independent parts, each judged on its own.

An exercise may declare parts with their points (``parts={"inp.g": 1, "w.g": 1, "b.g": 1}``,
summing to the exercise's points). Its check then receives a :class:`Parts` recorder as
its second argument and judges each part inside ``with parts.judge(name):``; a
:class:`~autograder.engine.feedback.Fail` raised there fails that part only, and the
check goes on to judge the others with the grader's inputs.

The rules that keep a part from passing by accident:

* a part passes only when it was judged at least once and never failed;
* a ``Fail`` raised *outside* a ``judge`` block (the student's function raised before
  anything could be judged, a precondition every part shares) fails every part that has
  not already failed on its own;
* a part that the check never judged is the lesson's bug: a grader error, never a pass.

:func:`outcome` turns the recorder into the exercise's score, its message (each failed
part with its explanation, and which passed) and the per-part scores of the JSON.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from .feedback import Fail, NotImplementedYet

__all__ = ["Parts", "PartsNeverJudged", "outcome", "validate"]


class PartsNeverJudged(Exception):
    """The check returned without judging some declared part: a bug in the lesson."""


def validate(parts: dict[str, float] | None, points: float) -> str | None:
    """What is wrong with a declaration of ``parts`` for an exercise worth ``points``."""
    if not parts:
        return None
    if len(parts) < 2:
        return "an exercise with parts needs at least two"
    for name, value in parts.items():
        if not isinstance(name, str) or not name.strip():
            return f"part name {name!r} is not a non-empty string"
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            return f"part {name!r} must be worth some points, not {value!r}"
    if abs(sum(parts.values()) - points) > 1e-9:
        return (f"its parts are worth {sum(parts.values()):g} points in total, "
                f"but the exercise is worth {points:g}")
    return None


class Parts:
    """The verdict of each declared part, as the check judges them (see the module doc)."""

    def __init__(self, points: dict[str, float]) -> None:
        self.points = dict(points)
        self.failures: dict[str, Fail] = {}
        self.judged: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.points

    def __iter__(self):
        return iter(self.points)

    @contextlib.contextmanager
    def judge(self, name: str) -> Iterator[None]:
        """Judge part ``name`` in this block: a ``Fail`` here fails that part, and only it.

        ``NotImplementedYet`` (the stub) and anything that is not a ``Fail`` pass through:
        they concern the whole exercise, or are the grader's own error.
        """
        if name not in self.points:
            raise KeyError(f"part {name!r} is not declared (declared: {', '.join(self.points)})")
        self.judged.add(name)
        try:
            yield
        except NotImplementedYet:
            raise
        except Fail as fail:
            self.failures.setdefault(name, fail)

    def failed(self, name: str) -> bool:
        """Whether part ``name`` has already failed (a check may skip judging it again)."""
        return name in self.failures

    def fail_all(self, fail: Fail) -> None:
        """A failure every part shares: each part not already failed fails with it."""
        for name in self.points:
            self.failures.setdefault(name, fail)


@dataclass
class Outcome:
    score: float
    message: str                # without the "name · " prefix
    parts: list[dict]           # [{"name", "score", "max_score"}] in declaration order

    @property
    def passed(self) -> bool:
        return all(p["score"] == p["max_score"] for p in self.parts)


def outcome(title: str, recorder: Parts) -> Outcome:
    """Score and message of an exercise whose check finished (returned, or raised a Fail
    outside every part, already given to :meth:`Parts.fail_all`)."""
    never = [n for n in recorder.points if n not in recorder.judged and n not in recorder.failures]
    if never:
        raise PartsNeverJudged(f"the check never judged part{'s' * (len(never) > 1)} "
                               f"{', '.join(never)}")
    rows = [{"name": n, "score": 0.0 if n in recorder.failures else float(p), "max_score": float(p)}
            for n, p in recorder.points.items()]
    score = sum(r["score"] for r in rows)
    total = sum(r["max_score"] for r in rows)
    failed = [n for n in recorder.points if n in recorder.failures]
    passed = [n for n in recorder.points if n not in recorder.failures]
    if not failed:
        return Outcome(score, f"{title}: passed.", rows)
    distinct = {id(recorder.failures[n]) for n in failed}
    if not passed and len(distinct) == 1:       # one failure shared by all: said once, as ever
        return Outcome(0.0, recorder.failures[failed[0]].render(), rows)
    head = (f"{title}: {score:g}/{total:g} points: "
            + (f"{_names(passed)} {'is' if len(passed) == 1 else 'are'} right; " if passed else "")
            + f"{_names(failed)} {'is' if len(failed) == 1 else 'are'} not.")
    lines = [head]
    shown: dict[int, str] = {}
    for name in failed:
        fail = recorder.failures[name]
        if id(fail) in shown:                    # the same failure for several parts: once
            lines.append(f"  {name}: the same failure as {shown[id(fail)]}.")
            continue
        shown[id(fail)] = name
        first, *rest = fail.render().splitlines()
        lines.append(f"  {name}: {first}")
        lines += ["  " + line for line in rest]
    return Outcome(score, "\n".join(lines), rows)


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
