"""Generated notebooks are current, and hidden tests leak nowhere a student can look."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.frontends.release import build_solutions, release_differences

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "assignments" / "lesson8").glob("*.ipynb"))


def _hidden_lines() -> list[str]:
    lines = []
    for src in SOURCES:
        for cell in json.loads(src.read_text())["cells"]:
            text = "".join(cell["source"])
            if "### BEGIN HIDDEN TESTS" in text:
                body = text.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
                lines += [line.strip() for line in body.splitlines() if line.strip()]
    return lines


@pytest.mark.slow
def test_release_is_what_nbgrader_generates():
    """Is release/ exactly what the real `nbgrader generate_assignment` makes from assignments/?"""
    pytest.importorskip("nbgrader")
    assert release_differences(ROOT, "lesson8") == [], (
        "run `nbgrader generate_assignment lesson8 --force` from the repository root and commit the result")


def test_solutions_are_current():
    """Is solutions/ what `python -m autograder solutions` makes from assignments/?"""
    assert build_solutions(check=True) == []


def test_every_source_has_hidden_tests_and_they_leak_nowhere():
    """Are the hidden-test lines absent from release/, solutions/ and the installed package?"""
    hidden = _hidden_lines()
    assert len(hidden) >= 5
    places = [*ROOT.glob("release/**/*.ipynb"), *ROOT.glob("solutions/**/*.ipynb"),
              *ROOT.glob("autograder/**/*.py"), *ROOT.glob("autograder/**/*.j2")]
    assert places
    for path in places:
        text = path.read_text()
        for line in hidden:
            assert line not in text, f"hidden test {line!r} is readable in {path.relative_to(ROOT)}"


def test_release_stubs_and_ids():
    """Does every released solution cell hold the stub, with the same grade_ids as the source?"""
    for src in SOURCES:
        rel = ROOT / "release" / "lesson8" / src.name
        source_ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in json.loads(src.read_text())["cells"]]
        cells = json.loads(rel.read_text())["cells"]
        assert [c["metadata"].get("nbgrader", {}).get("grade_id") for c in cells] == source_ids
        for cell in cells:
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("solution") and cell["cell_type"] == "code":
                text = "".join(cell["source"])
                assert "raise NotImplementedError()" in text and "BEGIN SOLUTION" not in text


def test_the_shipped_nbgrader_config_is_the_courses():
    """Is the configuration `python -m autograder nbgrader-config` writes the kit's own?"""
    shipped = ROOT / "autograder" / "frontends" / "nbgrader" / "course_config.py"
    assert shipped.read_bytes() == (ROOT / "nbgrader_config.py").read_bytes(), (
        "copy nbgrader_config.py to autograder/frontends/nbgrader/course_config.py")
