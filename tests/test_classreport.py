"""The class report: pass counts that match the JSON, failure causes, and a page that
escapes what students wrote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.reports import classreport

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "tests" / "submissions"
INJECTION = '<script>alert("pwned")</script>'


def exercise(name, passed, message, points=2, grader_error=False):
    return {"name": name, "passed": passed, "score": points if passed else 0, "max_score": points,
            "message": message, "grader_error": grader_error}


def notebook(path, exercises, **extra):
    return {"notebook": path, "exercises": exercises, "score": sum(e["score"] for e in exercises),
            "max_score": sum(e["max_score"] for e in exercises),
            "grader_error": any(e["grader_error"] for e in exercises), **extra}


CLASS = [
    notebook("ana/02.ipynb", [exercise("lin", True, "lin · lin(x, w, b): passed."),
                              exercise("relu", True, "relu · relu(x): passed.", 1)]),
    notebook("ben/02.ipynb", [exercise("lin", False, "lin · lin(x, w, b): the result has the wrong value.\n"
                                                      "  Hint: add b."),
                              exercise("relu", True, "relu · relu(x): passed.", 1)]),
    notebook(f"{INJECTION}/02.ipynb",
             [exercise("lin", False, "lin · lin(x, w, b): the result has the wrong value.\n  more"),
              exercise("relu", False, f"relu · relu(x): calling it raised ValueError: {INJECTION}", 1)]),
    notebook("dan/02.ipynb", [exercise("lin", True, "lin · lin(x, w, b): passed."),
                              exercise("relu", False, "relu · relu(x): not graded: the worker could not "
                                                      "start.", 1, grader_error=True)]),
    {"notebook": "eve/02.ipynb", "exercises": [], "score": 0, "max_score": 0, "grader_error": False,
     "error": "not valid JSON (line 3)"},
    {"notebook": "fay/02.ipynb", "exercises": [], "score": 0, "max_score": 0, "grader_error": True,
     "grader_failure": "the lesson's data is unavailable"},
]


@pytest.fixture
def class_json(tmp_path):
    path = tmp_path / "class.json"
    path.write_text(json.dumps(CLASS))
    return path


def pass_counts(page: str) -> dict[str, str]:
    rows = re.findall(r"<tr><td><code>([^<]*)</code></td>.*?<td class=\"num pass-count\">(\d+/\d+)</td>", page)
    return dict(rows)


def test_summary_counts_failures_apart_from_grader_errors(class_json):
    """Are grader errors and unreadable notebooks kept out of the pass counts, and failure
    causes grouped by the first line of the message?"""
    s = classreport.summarise(classreport.load_json([class_json]))
    by_name = {e.name: e for e in s.exercises}
    assert (by_name["lin"].passed, by_name["lin"].graded) == (2, 4)
    assert (by_name["relu"].passed, by_name["relu"].graded) == (2, 3)
    assert by_name["lin"].causes.most_common() == [("lin(x, w, b): the result has the wrong value.", 2)]
    assert s.unreadable == [("eve/02.ipynb", "not valid JSON (line 3)")]
    assert [(nb, ex) for nb, ex, _ in s.grader_errors] == [("dan/02.ipynb", "relu"), ("fay/02.ipynb", "")]
    assert sorted(s.percentages) == [0.0, pytest.approx(100 / 3), 100.0]    # dan's score is not recorded


def test_html_page_escapes_what_students_wrote(class_json, tmp_path):
    """Is the page self-contained, with figures as data URIs, pass counts as "passed/graded",
    and no student string unescaped (a notebook name or message with a script tag)?"""
    out = tmp_path / "report.html"
    assert classreport.main([class_json], html=out) == 0
    page = out.read_text()
    assert pass_counts(page) == {"lin": "2/4", "relu": "2/3"}
    assert INJECTION not in page and "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;") == 1    # the message
    assert "fay/02.ipynb" in page and "the lesson&#x27;s data is unavailable" in page
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', page)) == 2
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)


def test_text_report_without_html(class_json, capsys):
    """Without --html, is the same summary printed as text?"""
    assert classreport.main([class_json]) == 0
    text = capsys.readouterr().out
    assert "lin             2/4    50%  2× lin(x, w, b): the result has the wrong value." in text
    assert "Could not be graded:\n  eve/02.ipynb: not valid JSON (line 3)" in text
    assert "Grader errors" in text and "dan/02.ipynb · relu" in text


def test_unusable_input_is_one_line_and_exit_2(tmp_path, capsys):
    """Is a missing or broken JSON file one error line (exit 2), never a traceback?"""
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    assert classreport.main([bad]) == 2
    assert classreport.main([tmp_path / "missing.json"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: cannot read the class's results") for line in err)


@pytest.mark.slow
def test_report_from_a_real_grade_json_matches_it(tmp_path):
    """Do the command's pass counts match what `grade --json` wrote for the same notebooks?"""
    notebooks = [SUBMISSIONS / "01_matmul-fail-matmul_loops-transposed.ipynb",
                 SUBMISSIONS / "01_matmul-pass-alternative-forms.ipynb",
                 SUBMISSIONS / "01_matmul-fail-matmul_einsum-no-einsum.ipynb"]
    graded = tmp_path / "class.json"
    subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, notebooks), "--json", str(graded),
                    "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    reports = json.loads(graded.read_text())
    expected = {}
    for r in reports:
        for e in r["exercises"]:
            p, g = expected.get(e["name"], (0, 0))
            expected[e["name"]] = (p + e["passed"], g + 1)
    out = tmp_path / "class.html"
    proc = subprocess.run([sys.executable, "-m", "autograder", "report", str(graded), "--html", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert pass_counts(out.read_text()) == {k: f"{p}/{g}" for k, (p, g) in expected.items()}
    assert expected["matmul_loops"] == (2, 3) and expected["matmul_einsum"] == (2, 3)


@pytest.mark.slow
def test_report_from_the_gradebook_matches_it(feedback_course, tmp_path):
    """With --gradebook, do pass counts match the gradebook's auto scores, with the failure
    messages read from the autograded notebooks (escaped)?"""
    from nbgrader.api import Gradebook
    db = feedback_course["gradebook"]
    expected: dict[str, list[int]] = {}
    with Gradebook("sqlite:///" + str(db)) as gb:
        for sub in gb.find_assignment("lesson8").submissions:
            for nb in sub.notebooks:
                for g in nb.grades:
                    counts = expected.setdefault(g.name.removeprefix("test_"), [0, 0])
                    counts[0] += g.auto_score >= g.max_score
                    counts[1] += 1
    out = tmp_path / "report.html"
    assert classreport.main([], html=out, gradebook=db, assignment="lesson8") == 0
    page = out.read_text()
    assert pass_counts(page) == {k: f"{p}/{g}" for k, (p, g) in expected.items()}
    assert pass_counts(page)["init_kaiming"] == "1/2"
    assert "init_kaiming(784, 50): the weights have the wrong scale." in page
    assert "relu(x): calling it raised ValueError." in page      # her script tag is in later lines
    assert INJECTION not in page and "<script" not in page.lower()
