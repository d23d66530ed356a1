"""Pictures that teach: rich check() output in a real kernel, the evidence behind it,
and the figures in nbgrader feedback."""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

import autograder
from autograder.reports import cards as display
from autograder.engine import evidence
from autograder.engine.grade import result_for
from autograder.engine.submission import LocalSubmission

ASSIGNMENT, NOTEBOOK = "lesson8", "02_fully_connected"

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "lesson8" / "02_fully_connected.ipynb"
INJECTION = '<script>alert("pwned")</script>'
INIT_TESTS = ("test_init_simple", "test_init_glorot", "test_init_kaiming", "test_params")


def cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def with_mistakes(nb: dict) -> dict:
    """Kaiming without its factor 2 (a known mistake), and a relu whose error message
    carries a script tag."""
    nb = copy.deepcopy(nb)
    cell(nb, "init_kaiming")["source"] = ("def init_kaiming(n_in, n_out):\n"
                                          "    return torch.randn(n_in, n_out) / math.sqrt(n_in)\n")
    cell(nb, "relu")["source"] = (f"def relu(x):\n    raise ValueError({INJECTION!r})\n")
    return nb


def svgs(page: str) -> list[str]:
    """The SVG documents embedded as data URIs in a page."""
    return [base64.b64decode(m).decode() for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", page)]


def namespace(code: str) -> dict:
    ns = {"__name__": "__main__", "check": autograder.check}
    exec("import math, torch\n" + code, ns)
    return ns


# ----------------------------------------------------------------------------- evidence
def test_nothing_is_recorded_unless_someone_will_look():
    """Do the checks' evidence hooks do nothing outside recording() (plain and --json runs)?"""
    import torch
    assert not evidence.active()
    evidence.weights("w", torch.randn(10, 10), 1.0, "1")
    evidence.compared(torch.zeros(3), torch.ones(3))
    evidence.gradient("inp.g", torch.zeros(3), torch.ones(3))
    with evidence.recording() as seen:
        assert evidence.active()
    assert seen == {} and not evidence.active()


def test_grade_does_not_import_matplotlib(tmp_path):
    """Do a plain check() (not in a kernel) and `grade --json` leave matplotlib unimported,
    and does check() print as before?"""
    code = ("import sys, autograder, torch, math\nns = {'__name__': '__main__', 'check': autograder.check}\n"
            "exec('import torch, math\\ndef init_simple(i, o):\\n    return torch.randn(i, o) / math.sqrt(i)\\n', ns)\n"
            "exec('check(\"init_simple\")', ns)\nprint('matplotlib' in sys.modules)\n"
            "from autograder.frontends.cli import main\n"
            f"main(['grade', {str(ROOT / 'solutions' / 'lesson8' / '01_matmul.ipynb')!r}, '--quiet', "
            f"'--json', {str(tmp_path / 'out.json')!r}])\n"
            "print('matplotlib' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["✓ init_simple · init_simple(n_in, n_out): passed.", "False"]
    assert lines[-1] == "False" and json.loads((tmp_path / "out.json").read_text())[0]["score"] > 0


def test_collected_records_hold_small_evidence_and_the_same_result():
    """Inside collecting(), does check() record a histogram, the 8-layer experiment and the
    "expected vs got" numbers, while the result and message stay those of a plain run?"""
    ns = namespace("def init_kaiming(i, o):\n    return torch.randn(i, o) / math.sqrt(i) * 1.9\n"
                   "def mse_grad(inp, targ):\n    inp.g = (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]\n")
    sub = LocalSubmission(ns)
    plain = result_for("init_kaiming", sub)
    records: list = []
    with display.collecting(records):
        result, shown = display.checked("init_kaiming", sub, {})
        display.checked("mse_grad", sub, {})
    assert not shown and result == plain and not result.passed
    init, grad = records
    assert init["message"] == plain.message
    [panel, *_] = init["evidence"]["weights"]
    assert panel["title"] == "init_kaiming(784, 50)" and sum(panel["counts"]) + panel["outside"] == 784 * 50
    assert panel["outside"] > 0                                          # std 1.34 sigma: some beyond 4 sigma
    exp = init["evidence"]["experiment"]
    assert len(exp["yours"]) == 8 and exp["yours"][-1] > 2 * exp["references"]["Kaiming sqrt(2/n_in)"][-1]
    assert grad["evidence"]["gradients"]["inp.g"] == pytest.approx(0.5, rel=1e-3)
    assert grad["evidence"]["compare"]["mismatch"]["index"] == [0, 0]
    assert len(json.dumps(records)) < 20_000          # numbers, never tensors


def test_card_shows_badge_table_figures_and_escapes_everything():
    """Is the card's HTML built from escaped text only, with the figure as a data URI?"""
    ns = namespace(f"def relu(x):\n    raise ValueError({INJECTION!r})\n"
                   "def init_glorot(i, o):\n    return torch.randn(i, o) * math.sqrt(2 / (i + o))\n")
    sub = LocalSubmission(ns)
    records: list = []
    with display.collecting(records):
        display.checked("relu", sub, {})
        display.checked("init_glorot", sub, {})
    relu, glorot = (display.card_html(r) for r in records)
    assert INJECTION not in relu and "<script" not in relu.lower()
    assert html_escaped(INJECTION) in relu and "FAIL" in relu
    assert "PASS" in glorot and "<table" in glorot
    [svg] = svgs(glorot)
    assert "init_glorot(784, 50)" in svg and "Does the signal survive 8 layers?" in svg
    assert "<script" not in svg


def html_escaped(text: str) -> str:
    import html
    return html.escape(text, quote=True)


def test_figures_escape_dollar_signs_and_render_each_kind():
    """Do the backward bars, the normalisation bars and the speed ladder render, and does a
    $ in a label stay literal text (no math mode)?"""
    from autograder.reports import figures
    alt, uri = figures.gradients_figure({"inp.g": 1e-8, "w1.g": 0.5, "b1.g": None, "w2.g": "inf",
                                         "b2.g": 2e-9}, 1e-4)
    assert "w1.g 5.0e-01" in alt and "b1.g not set" in alt and uri.startswith("data:image/svg+xml;base64,")
    stats = {"before": {"x_train": [0.13, 0.31], "x_valid": [0.13, 0.31]},
             "yours": {"x_train": [0.0, 1.0], "x_valid": [0.0, 1.0]},
             "target": {"x_train": [0.0, 1.0], "x_valid": [-0.006, 0.99]}}
    assert figures.normalize_figure(stats)[1].startswith("data:image/svg+xml")
    alt, _ = figures.speed_figure({"seconds": {"matmul_loops": 0.1, "@": 2e-6}, "shapes": [[5, 100], [100, 10]]})
    assert "three loops 100 ms" in alt and "PyTorch @ 2 µs" in alt
    _, uri = figures.pass_rate_figure([("costs $5$", 1, 2)])
    assert "costs $5$" in svgs(uri)[0]


def test_summary_lists_every_exercise_of_the_notebook(capsys):
    """Does check() with no name grade every exercise of the notebook it finds, without raising?"""
    ns = namespace("def lin(x, w, b):\n    return x @ w + b\ndef relu(x):\n    return x.clamp_min(0.)\n")
    exec("check()", ns)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("02_fully_connected: ")
    assert any(line.startswith("  [PASS] 2/2  lin · ") for line in out)
    assert any("[FAIL]" in line and "get_data" in line for line in out)
    assert len(out) == 1 + len(autograder.engine.registry.NOTEBOOKS["02_fully_connected"])


# ----------------------------------------------------------------------------- a real kernel
@pytest.mark.slow
def test_real_kernel_shows_figures_and_keeps_the_plain_text(tmp_path):
    """Run all of a released notebook with a known mistake in a real Jupyter kernel: do the
    init exercises' test cells hold text/html with a figure, is text/plain exactly the
    grader's message, and does a failing check still raise, its red text one short line
    (the card above holds the message)?"""
    import nbformat
    from nbclient import NotebookClient
    from autograder.engine.grade import grade_notebook
    nb_json = with_mistakes(json.loads(SOLUTION.read_text()))
    path = tmp_path / "02_fully_connected.ipynb"
    path.write_text(json.dumps(nb_json))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    graded = {e.name: e for e in grade_notebook(path).exercises}
    assert not graded["init_kaiming"].passed and graded["init_simple"].passed

    for grade_id in INIT_TESTS:
        outputs = cell(nb, grade_id)["outputs"]
        [rich] = [o for o in outputs if o["output_type"] == "display_data"]
        page, text = rich["data"]["text/html"], rich["data"]["text/plain"]
        assert re.search(r'<img src="data:image/svg\+xml;base64,', page), grade_id
        assert not [o for o in outputs if o["output_type"] == "stream"], grade_id
        errors = [o["evalue"] for o in outputs if o["output_type"] == "error"]
        assert errors == ([] if text.startswith("✓ ") else [text]), grade_id     # raised after displaying
        for o in outputs:               # the card holds the message; the red text only says so
            if o["output_type"] == "error":
                name = grade_id.removeprefix("test_")
                assert o["traceback"] == [f"CheckFailed: {name} failed (the card above says why)."], grade_id
        if grade_id != "test_params":   # in a kernel, params is judged on the kernel's own w1 (no re-run)
            result = graded[grade_id.removeprefix("test_")]
            assert text == (result.message if not result.passed else f"✓ {result.message}"), grade_id
    kaiming = cell(nb, "test_init_kaiming")["outputs"][0]["data"]["text/html"]
    assert "FAIL" in kaiming and "sqrt(2/n_in)" in kaiming
    assert "Does the signal survive 8 layers?" in svgs(kaiming)[0]

    relu = cell(nb, "test_relu")["outputs"]
    page = relu[0]["data"]["text/html"]
    assert INJECTION not in page and "<script" not in page.lower() and html_escaped(INJECTION) in page
    assert relu[-1]["output_type"] == "error" and relu[-1]["ename"] == "CheckFailed"
    assert relu[-1]["traceback"] == ["CheckFailed: relu failed (the card above says why)."]
    assert relu[-1]["evalue"] == relu[0]["data"]["text/plain"]
    assert relu[-1]["evalue"].splitlines()[0] == graded["relu"].message.splitlines()[0]


# ----------------------------------------------------------------------------- nbgrader feedback
def alts(page: str) -> list[str]:
    """The alt text of every figure (nbconvert may reorder an img tag's attributes)."""
    import html
    tags = [t for t in re.findall(r"<img\b[^>]*>", page) if 'src="data:image/svg+xml;base64,' in t]
    return [html.unescape(m.group(1)) for t in tags if (m := re.search(r'\balt="([^"]*)"', t))]


@pytest.mark.slow
def test_autograde_leaves_numbers_and_feedback_draws_them(feedback_course):
    """Does autograde leave each visible check's evidence (numbers, no picture) beside the
    verdict, and does generate_feedback's page hold the figures, offline?"""
    graded = feedback_course["autograded"]["ada"]
    outs = cell(graded, "test_init_kaiming")["outputs"]
    assert [o["output_type"] for o in outs] == ["display_data", "error"]
    assert display.MIME in outs[0]["data"] and "image/" not in json.dumps(outs[0])
    passed = cell(graded, "test_init_simple")["outputs"]
    assert [o["output_type"] for o in passed] == ["display_data", "stream"]
    assert "".join(passed[1]["text"]).startswith("✓ init_simple")

    page = feedback_course["feedback"]["ada"].read_text()
    shown = alts(page)
    for title in ("init_simple(784, 50)", "init_glorot(784, 50)", "init_kaiming(784, 50)",
                  "w1, b1, w2, b2: w1 (Kaiming init)"):
        assert any(title in alt for alt in shown), (title, shown)
    assert any("before and after normalising" in alt for alt in shown)
    assert len(svgs(page)) == len(shown) >= 5
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert display.PENDING not in page


@pytest.mark.slow
def test_feedback_figures_show_no_hidden_test(feedback_course):
    """Are the hidden checks' cases (other shapes, other seeds) absent from the figures?"""
    page = feedback_course["feedback"]["ada"].read_text()
    drawn = " ".join(svgs(page) + alts(page))
    assert "(300, 40)" not in drawn and "(40, 300)" not in drawn      # the hidden init cases
    for line in feedback_course["hidden"]:
        assert line not in page


@pytest.mark.slow
def test_feedback_escapes_the_students_script(feedback_course):
    """Is a script tag in a student's error message and output escaped in the feedback?"""
    page = feedback_course["feedback"]["ada"].read_text()
    assert INJECTION not in page
    assert html_escaped(INJECTION) in page or "&lt;script&gt;" in page


@pytest.mark.slow
def test_formgrader_shows_the_figures_too(feedback_course):
    """Formgrader renders an autograded notebook with ``HTMLExporter(config=...)`` and its
    own template (nbgrader's FormgradeExtension.build_extra_config and SubmissionHandler);
    with the course's configuration the instructor sees each visible check's figures
    there, escaped, instead of the placeholder."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    root = feedback_course["root"]
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    formgrader = Config()
    formgrader.HTMLExporter.template_name = "formgrade"
    formgrader.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.merge(formgrader)
    resources = {"assignment_id": ASSIGNMENT, "notebook_id": NOTEBOOK, "submission_id": "s",
                 "index": 0, "total": 2, "base_url": "", "student": "ada", "last_name": None,
                 "first_name": None, "notebook_path": "/notebook"}
    path = root / "autograded" / "ada" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    page, _ = HTMLExporter(config=config).from_filename(str(path), resources=resources)
    shown = alts(page)
    assert any("init_kaiming(784, 50)" in alt for alt in shown), shown
    assert len(svgs(page)) == len(shown) >= 5
    assert display.PENDING not in page
    assert INJECTION not in page


# ----------------------------------------------------------------------------- 04: init in PyTorch
SOLUTION_04 = ROOT / "solutions" / "lesson8" / "04_init_in_pytorch.ipynb"


def namespace_04(**replaced: str) -> dict:
    """The 04 solution's setup and exercise cells run in a namespace (the ungraded demos
    skipped), with some exercises' cells replaced."""
    from autograder.engine.notebook import read_notebook
    ns = {"__name__": "__main__", "check": autograder.check}
    for c in read_notebook(SOLUTION_04).code_to_run():
        if c.grade_id:
            exec(replaced.get(c.grade_id, c.source), ns)
    return ns


@pytest.mark.slow
def test_04_records_the_uniform_box_and_the_std_per_layer():
    """Does check() in 04 record the histogram of kaiming_uniform_'s draws with its bound,
    and the std after each layer (the student's against the grader's, default against
    Kaiming) for layer_stats and fraction_better, small, escaped in the card, with the
    message of a plain run?"""
    from conftest import ADA_04
    sub = LocalSubmission(namespace_04(**ADA_04))
    records: list = []
    with display.collecting(records):
        for name in ("kaiming_uniform", "layer_stats", "fraction_better"):
            result, _ = display.checked(name, sub, {})
            assert not result.passed and records[-1]["message"] == result_for(name, sub).message
    uniform, layers, fraction = (r["evidence"] for r in records)
    [box] = uniform["uniform"]
    assert box["title"].endswith("on w of shape (64, 32, 3, 3)")
    assert box["bound"] == pytest.approx(math.sqrt(2) * math.sqrt(3 / 288), rel=1e-5)     # kept to 6 digits
    assert sum(box["counts"]) + box["outside"] == box["n"] == 64 * 32 * 9
    assert box["std"] == pytest.approx(box["bound"] / 3, rel=0.02)          # the √3 is missing
    assert layers["layers"]["of"] == "layer_stats"
    assert set(layers["layers"]["yours"]) == set(layers["layers"]["grader"]) == {"default", "kaiming"}
    assert layers["layers"]["yours"]["kaiming"][0] > 1.2 * layers["layers"]["grader"]["kaiming"][0]
    stacks = fraction["layers"]
    assert stacks["counts"] == {"default": 2 * stacks["samples"]}       # never re-initialised
    assert stacks["grader"]["kaiming"][-1] > 5 * stacks["grader"]["default"][-1]
    assert fraction["fraction"]["n"] == 100 and fraction["fraction"]["got"] < 0.8
    assert len(json.dumps(records)) < 20_000

    cards = [display.card_html(r) for r in records]
    [svg] = svgs(cards[0])
    assert "Your weights should fill the box from -b to b" in svg and "b/√3" in svg
    assert "your layer_stats should lie on the grader" in svgs(cards[1])[0]
    assert "the default shrinks it, Kaiming keeps it near 1" in svgs(cards[2])[0]
    assert "none re-initialised" in svgs(cards[2])[0]
    assert "b/√3" in cards[0] and "<table" in cards[0]

    # A correct fraction_better measures as many re-initialised stacks as default ones.
    seen: dict = {}
    evidence.extras("fraction_better", LocalSubmission(namespace_04()), seen)
    assert seen["layers"]["counts"] == {"default": 10, "kaiming": 10}

    # A layer_stats whose error carries a script tag: escaped, and the grader's curves still drawn.
    bad = namespace_04(layer_stats=f"def layer_stats(x, layers):\n    raise ValueError({INJECTION!r})\n")
    records = []
    with display.collecting(records):
        display.checked("layer_stats", LocalSubmission(bad), {})
    card = display.card_html(records[0])
    assert INJECTION not in card and html_escaped(INJECTION) in card
    assert records[0]["evidence"]["layers"]["yours"] == {} and len(svgs(card)) == 1


@pytest.mark.slow
def test_04_feedback_draws_the_box_and_the_layers(feedback_course_04):
    """Does autograde leave the numbers of 04's kaiming_uniform, layer_stats and
    fraction_better checks beside their verdicts, and does the feedback page draw them,
    offline?"""
    graded = feedback_course_04["autograded"]
    for grade_id in ("test_kaiming_uniform", "test_layer_stats", "test_fraction_better"):
        outs = cell(graded, grade_id)["outputs"]
        assert [o["output_type"] for o in outs] == ["display_data", "error"], grade_id
        assert display.MIME in outs[0]["data"] and "image/" not in json.dumps(outs[0])
    page = feedback_course_04["feedback"].read_text()
    shown = alts(page)
    for words in ("over the target uniform U(-b, b), with ±b and ±b/√3 marked",
                  "as your layer_stats measures it", "the stacks your fraction_better measures"):
        assert any(words in alt for alt in shown), (words, shown)
    assert len(svgs(page)) == len(shown) == 3
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert display.PENDING not in page
