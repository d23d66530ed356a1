"""Are lessons found as the docs say, and is a clash a clear error, not a silent override?"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.engine import discovery, registry
from autograder.engine.errors import GraderError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restored_catalogue():
    """Each test's lessons leave the process's catalogue as it was (other tests count it)."""
    from autograder.engine import evidence
    saved = (dict(registry.EXERCISES), {k: list(v) for k, v in registry.NOTEBOOKS.items()},
             dict(registry.LESSONS), dict(registry.PREFETCH), dict(evidence.EXTRAS),
             dict(discovery._folders))
    yield
    for target, value in zip((registry.EXERCISES, registry.NOTEBOOKS, registry.LESSONS,
                              registry.PREFETCH, evidence.EXTRAS, discovery._folders), saved):
        target.clear()
        target.update(value)


def _lesson(folder: Path, name: str, exercises: dict[str, str]) -> Path:
    """A lesson package in ``folder`` declaring ``exercises`` (grade_id -> notebook)."""
    folder.mkdir(parents=True)
    body = "".join(f"@lesson.exercise({nb!r}, {ex!r}, 1, {ex!r})\ndef check_{ex}(sub):\n    pass\n\n"
                   for ex, nb in exercises.items())
    (folder / "__init__.py").write_text(
        "from autograder.authoring import Lesson\n\n"
        f"lesson = Lesson({name!r})\n\n" + body)
    return folder


def test_lesson8_is_found_through_its_entry_point():
    """Is the kit's own lesson declared like anyone else's, in the entry-point group?"""
    lessons = discovery.load()
    assert lessons["lesson8"].origin.startswith("entry point lesson8 = autograder.lessons.lesson8:lesson")
    assert registry.EXERCISES["lin"].lesson == "lesson8"


def test_a_local_folder_adds_its_exercises(tmp_path):
    """Does a folder named in AUTOGRADER_LESSONS add its exercises to the catalogue?"""
    folder = _lesson(tmp_path / "extra", "discovery_extra", {"disc_one": "91_disc", "disc_two": "91_disc"})
    lesson = discovery.load_folder(folder)
    assert [ex.name for ex in lesson.exercises] == ["disc_one", "disc_two"]
    assert [ex.name for ex in registry.NOTEBOOKS["91_disc"]] == ["disc_one", "disc_two"]
    assert discovery.load_folder(folder) is lesson          # once per folder


def test_two_lessons_with_one_exercise_name_are_a_grader_error(tmp_path):
    """Is an exercise defined twice refused, naming both lessons, with nothing installed?"""
    folder = _lesson(tmp_path / "clash", "discovery_clash", {"disc_new": "92_disc", "lin": "92_disc"})
    with pytest.raises(GraderError) as info:
        discovery.load_folder(folder)
    message = str(info.value)
    assert "exercise lin is defined by two lessons: lesson8" in message and "discovery_clash" in message
    assert "disc_new" not in registry.EXERCISES and "92_disc" not in registry.NOTEBOOKS


@pytest.mark.parametrize("what,init,expected", [
    ("no package", None, "has no __init__.py"),
    ("no lesson", "x = 1\n", "does not name a Lesson"),
    ("broken", "raise RuntimeError('boom')\n", "could not be loaded: RuntimeError: boom"),
])
def test_a_broken_lesson_folder_says_what_is_wrong(tmp_path, what, init, expected):
    """Does a folder that is not a lesson fail with a one-line reason?"""
    folder = tmp_path / what.replace(" ", "_")
    folder.mkdir()
    if init is not None:
        (folder / "__init__.py").write_text(init)
    with pytest.raises(GraderError, match=expected):
        discovery.load_folder(folder)


def test_the_command_line_refuses_a_clashing_lesson_at_start_up(tmp_path):
    """Does `grade --lesson` with a clash exit 3 before anyone is graded?"""
    folder = _lesson(tmp_path / "clash", "cli_clash", {"relu": "93_disc"})
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "--lesson", str(folder),
                           str(ROOT / "examples" / "alice-01_matmul.ipynb")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AUTOGRADER_LESSONS": ""})
    assert proc.returncode == 3, proc.stderr
    assert "grader error: nobody was graded: exercise relu is defined by two lessons" in proc.stderr
    assert "[PASS]" not in proc.stdout


def test_a_lesson_declaring_an_exercise_twice_is_refused():
    """Can one lesson declare the same grade_id twice?"""
    lesson = registry.Lesson("twice")
    lesson.exercise("94_disc", "same", 1, "same")(lambda sub: None)
    with pytest.raises(GraderError, match="declares exercise same twice"):
        lesson.exercise("94_disc", "same", 1, "same")(lambda sub: None)


def test_the_authoring_api_names_only_what_exists():
    """Is every name in autograder.authoring.__all__ really there (the reference is true)?"""
    from autograder import authoring
    missing = [n for n in authoring.__all__ if not hasattr(authoring, n)]
    assert missing == []
    assert textwrap.dedent(authoring.__doc__).strip().startswith("The authoring API")
