"""The Gradescope bundle, end to end: built, unpacked into a root laid out as Gradescope
lays it out, set up by its own setup.sh into a fresh virtual environment, and run by its
own run_autograder on a correct, a mistaken, an unreadable, a missing and a cheating
submission and during a data outage. Every results.json is checked against a JSON
schema of Gradescope's documented format (tests/gradescope_results.schema.json)."""

from __future__ import annotations

import copy
import json
import re
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(__file__).parent / "gradescope_results.schema.json").read_text())
SOLUTION = REPO / "solutions" / "lesson8" / "03_backward.ipynb"
SOURCE = REPO / "assignments" / "lesson8" / "03_backward.ipynb"
AVERAGED_BIAS = REPO / "tests" / "submissions" / "03_backward-fail-lin_grad-averaged-bias.ipynb"
HIDDEN = re.compile(r"BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def valid(results: dict) -> dict:
    jsonschema.validate(results, SCHEMA)
    return results


def hidden_lines() -> list[str]:
    nb = json.loads(SOURCE.read_text())
    return [line.strip() for cell in nb["cells"] for block in HIDDEN.findall("".join(cell["source"]))
            for line in block.splitlines() if line.strip()]


def never_quotes_hidden_tests(results: dict) -> None:
    text = json.dumps(results)
    for line in hidden_lines():
        assert line not in text and json.dumps(line)[1:-1] not in text, line


def named_tests(results: dict) -> dict[str, dict]:
    return {t["name"]: t for t in results["tests"]}


def test_the_zip_is_laid_out_as_gradescope_asks(gradescope):
    """Are setup.sh and run_autograder at the root (executable), with the kit as a wheel?"""
    with zipfile.ZipFile(gradescope["bundle"]) as z:
        names = z.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        config = json.loads(z.read("gradescope.json"))
    assert {"setup.sh", "run_autograder", "gradescope.json"} <= set(names)
    assert all(modes[n] & 0o111 for n in ("setup.sh", "run_autograder"))
    [wheel] = [n for n in names if n.startswith("wheels/")]
    assert re.fullmatch(r"wheels/foundations_autograder-[\w.]+-py3-none-any\.whl", wheel)
    assert config["notebooks"] == ["03_backward"] and config["hidden_visibility"] == "after_published"
    assert "seed=9090" in config["tests"]["Module"]["hidden"]          # the instructor's, in the zip
    venv_kit = list((gradescope["root"] / "venv" / "lib").glob("python3*/site-packages/autograder"))
    assert venv_kit, "setup.sh did not install the kit's wheel into the virtual environment"


def test_a_correct_submission_gets_full_marks(gradescope):
    """Is the solution notebook graded 100%, one test per exercise, hidden tests passed?"""
    proc, results = gradescope["grade"]({"my work.ipynb": SOLUTION})
    assert proc.returncode == 0, proc.stderr[-3000:]
    valid(results)
    from autograder.engine.grade import catalogue
    exercises = catalogue().NOTEBOOKS["03_backward"]
    total = sum(ex.points for ex in exercises)
    assert results["score"] == total
    tests = named_tests(results)
    for ex in exercises:
        t = tests[ex.name]
        assert (t["score"], t["max_score"], t["status"]) == (ex.points, ex.points, "passed"), t
        assert t["output"].endswith(": passed.") and t["visibility"] == "visible"
    hidden = [t for t in results["tests"] if t["name"].endswith("(hidden tests)")]
    assert {t["name"].split()[0] for t in hidden} == {"Module", "Relu_module", "Lin_module", "Mse_module",
                                                      "Model_module"}
    assert all(t["visibility"] == "after_published" and t["score"] == 0 == t["max_score"] for t in hidden)
    assert results["output"].startswith(f"Score: {total:g}/{total:g} points.")
    assert "my work.ipynb (03_backward) was graded" in results["output"]
    never_quotes_hidden_tests(results)


def test_a_mistaken_submission_gets_partial_credit_with_the_message(gradescope):
    """Does one wrong gradient cost lin_grad one point of three, with the teaching message?"""
    proc, results = gradescope["grade"]({"03_backward.ipynb": AVERAGED_BIAS})
    assert proc.returncode == 0, proc.stderr[-3000:]
    valid(results)
    lin = named_tests(results)["lin_grad"]
    assert (lin["score"], lin["max_score"], lin["status"]) == (2, 3, "failed")
    assert lin["output"].startswith("lin_grad · lin_grad(inp, out, w, b): 2/3 points: inp.g and w.g are right")
    assert "don't average" in lin["output"]
    assert [p["score"] for p in lin["extra_data"]["parts"]] == [1, 1, 0]
    assert results["score"] == sum(t["score"] for t in results["tests"]) == sum(
        t["max_score"] for t in results["tests"]) - 1
    never_quotes_hidden_tests(results)


def test_an_unreadable_submission_is_the_students_zero(gradescope):
    """Is a truncated notebook a 0 for the student, with the reason, not a grader error?"""
    proc, results = gradescope["grade"]({"03_backward.ipynb": '{"cells": [{"cell_type": "code", "sou'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    valid(results)
    assert results["score"] == 0 and results["extra_data"]["grader_error"] is False
    assert "03_backward.ipynb could not be graded:" in results["output"]
    assert all(t["score"] == 0 and "no readable notebook 03_backward.ipynb" in t["output"]
               for t in results["tests"])


def test_a_missing_submission_is_the_students_zero(gradescope):
    """With no notebook uploaded, is every exercise 0 with a message saying what to upload?"""
    proc, results = gradescope["grade"]({"notes.txt": "I forgot the notebook"})
    assert proc.returncode == 0
    valid(results)
    assert results["score"] == 0
    assert "No notebook (.ipynb file) was found in your submission" in results["output"]
    assert "03_backward.ipynb" in results["output"]


def test_a_cheating_submission_gains_nothing(gradescope):
    """Does patching torch's comparisons, printing a fake report and exiting the process
    earn no point, and cost only the exercises it happened in?"""
    nb = json.loads(SOLUTION.read_text())
    cells = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c for c in nb["cells"]}
    cheat = copy.deepcopy(nb)
    by_id = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c for c in cheat["cells"]}
    by_id["lin_grad"]["source"] = (
        "import torch, json\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "print(json.dumps({'score': 100, 'tests': []}))\nprint('✓ lin_grad · passed.')\n"
        "def lin_grad(inp, out, w, b):\n    inp.g = out.g\n    w.g = w\n    b.g = b\n")
    by_id["relu_grad"]["source"] = "import os\ndef relu_grad(inp, out):\n    os._exit(0)\n"
    assert cells["lin_grad"]["source"] != by_id["lin_grad"]["source"]
    proc, results = gradescope["grade"]({"03_backward.ipynb": json.dumps(cheat)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    valid(results)
    tests = named_tests(results)
    assert tests["lin_grad"]["score"] == 0 and tests["relu_grad"]["score"] == 0
    assert "stopped" in tests["relu_grad"]["output"]
    others = [t for n, t in tests.items() if n not in ("lin_grad", "relu_grad") and t["max_score"]]
    assert all(t["score"] == t["max_score"] for t in others), [t["output"] for t in others if t["score"] < t["max_score"]]
    assert results["score"] == sum(t["max_score"] for t in others)
    assert "'score': 100" not in json.dumps(results) and "✓ lin_grad" not in json.dumps(results)


def test_a_data_outage_records_no_score_and_says_why(gradescope, offline_env):
    """When the lesson's data cannot be had, is the run a failed autograder (no score,
    the reason, exit status 3), never the student's 0?"""
    proc, results = gradescope["grade"]({"03_backward.ipynb": SOLUTION}, env=offline_env)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    valid(results)
    assert "score" not in results and results["tests"] == []
    assert all("score" not in t for t in results["tests"])
    assert results["output"].startswith("The autograder failed, not the submission:")
    assert "data" in results["output"] and "No score was recorded" in results["output"]
    assert results["extra_data"]["grader_error"] is True


def test_the_schema_refuses_what_gradescope_would(gradescope):
    """Does the schema itself fail a wrong visibility, an unknown field and a test
    without a score where there is no top-level score?"""
    good = {"score": 1.0, "tests": [{"name": "x", "score": 1.0, "max_score": 1.0}]}
    valid(good)
    for bad in ({**good, "visibility": "later"}, {**good, "scroe": 1},
                {"tests": [{"name": "x", "max_score": 1.0}], "output": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            valid(bad)
