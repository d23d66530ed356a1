"""The whole lesson8 assignment (every notebook) through the real nbgrader autograde."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_autograde_grades_every_notebook_of_the_assignment(tmp_path):
    """Does `nbgrader autograde lesson8` give the solutions full marks and the unchanged
    release zero, in every one of the assignment's notebooks?"""
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "assignments", course / "assignments")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}

    def nbgrader(*args):
        proc = subprocess.run(["nbgrader", *args], cwd=course, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    nbgrader("generate_assignment", "lesson8", "--force")
    for student, folder in (("alice", ROOT / "solutions" / "lesson8"), ("bob", course / "release" / "lesson8")):
        target = course / "submitted" / student / "lesson8"
        target.mkdir(parents=True)
        for nb in folder.glob("*.ipynb"):
            shutil.copy(nb, target)
    nbgrader("autograde", "lesson8")
    names = sorted(p.stem for p in (ROOT / "assignments" / "lesson8").glob("*.ipynb"))
    with Gradebook("sqlite:///" + str(course / "gradebook.db")) as gb:
        for student in ("alice", "bob"):
            notebooks = {nb.name: nb for nb in gb.find_submission("lesson8", student).notebooks}
            assert sorted(notebooks) == names
            for nb in notebooks.values():
                assert nb.max_score > 0
                assert nb.score == (nb.max_score if student == "alice" else 0), (student, nb.name)
