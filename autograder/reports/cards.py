"""Rich output for ``check()``: a pass/fail card, "expected vs got", and figures.

Where a person looks, ``check(name)`` shows more than text:

* in a Jupyter kernel, one ``display_data`` with a ``text/html`` card (badge, message,
  the "expected vs got" table, the figures of :mod:`autograder.reports.figures`) and a
  ``text/plain`` part that is exactly the old message, so terminals, pytest and the
  JSON lose nothing;
* in nbgrader's grader process (:class:`~autograder.frontends.nbgrader.plugin.SandboxGrade`), the
  *evidence* of each visible check (a few numbers, no picture yet) becomes a
  ``display_data`` of :data:`MIME` on the test cell; ``generate_feedback`` draws it
  (:mod:`autograder.frontends.nbgrader.figures`), so autograding pays for no plotting.

Everywhere else (``grade --json``, ``pytest autograder``, plain Python) nothing is
recorded and nothing is imported. Every string that reaches HTML is escaped here: a
message can quote a student's exception text, names and values.
"""

from __future__ import annotations

import contextlib
import contextvars
import html
import sys
from typing import Iterator

from ..engine import evidence

__all__ = ["MIME", "checked", "collecting", "card_html", "feedback_outputs", "summary",
           "in_kernel"]

MIME = "application/vnd.foundations-autograder.engine.evidence+json"
# What a graded notebook shows where the figures will be drawn (formgrader, a plain viewer).
PENDING = "(figures for this check are drawn in the feedback)"

_COLLECTOR: contextvars.ContextVar[list | None] = contextvars.ContextVar("collector", default=None)

_CSS = ("font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px;"
        "line-height:1.4;color:#222;border:1px solid #d0d0d0;border-left:6px solid {color};"
        "border-radius:4px;padding:8px 12px;margin:6px 0;max-width:1100px;background:#fff")
_BADGE = ("display:inline-block;background:{color};color:#fff;font-weight:600;border-radius:3px;"
          "padding:0 8px;margin-right:8px;font-size:12px")
_TABLE = "border-collapse:collapse;margin:6px 0;font-size:12px"
_CELL = "border:1px solid #ddd;padding:2px 8px;text-align:left"
PASS, FAIL, ERROR = "#2e7d32", "#c62828", "#6d4c41"


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where rich output is rendered)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


@contextlib.contextmanager
def collecting(records: list | None) -> Iterator[list | None]:
    """Inside this block, ``check()`` appends its record to ``records`` (``None``: nothing)."""
    token = _COLLECTOR.set(records)
    try:
        yield records
    finally:
        _COLLECTOR.reset(token)


def checked(name: str, sub, options: dict):
    """Grade ``name`` and show it where someone looks; ``(result, displayed)``.

    ``displayed`` is true when the result was shown as rich output in a kernel (the
    caller then prints nothing more for a pass).
    """
    from ..engine.grade import result_for
    collector = _COLLECTOR.get()
    kernel = collector is None and in_kernel()
    if collector is None and not kernel:
        return result_for(name, sub, **options), False
    with evidence.recording() as seen:
        result = result_for(name, sub, **options)
    if not result.grader_error:
        evidence.extras(name, sub, seen)
    record = _record(result, seen)
    if collector is not None:
        collector.append(record)
        return result, False
    text = result.message if not result.passed else f"✓ {result.message}"
    _display({"text/plain": text, "text/html": card_html(record)})
    return result, True


def _record(result, seen: dict) -> dict:
    from ..engine.grade import catalogue
    ex = catalogue().EXERCISES.get(result.name)
    return {"name": result.name, "title": ex.title if ex else result.name, "passed": result.passed,
            "grader_error": result.grader_error, "score": result.score,
            "max_score": result.max_score, "message": result.message,
            "evidence": evidence.jsonable(seen)}


def _display(bundle: dict) -> None:
    from IPython.display import display
    display(bundle, raw=True)


# ----------------------------------------------------------------------------- HTML
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(v, digits: int = 4) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "—"
    return f"{v:.{digits}g}"


def _shape(s) -> str:
    if not isinstance(s, list):
        return "—"
    return "(" + ", ".join(str(int(x)) for x in s) + ("," if len(s) == 1 else "") + ")"


def _table(rows: list[tuple[str, str, str]]) -> str:
    head = (f'<tr><th style="{_CELL}"></th><th style="{_CELL}">expected</th>'
            f'<th style="{_CELL}">got</th></tr>')
    body = "".join(f'<tr><th style="{_CELL}">{_e(a)}</th><td style="{_CELL}">{_e(b)}</td>'
                   f'<td style="{_CELL}">{_e(c)}</td></tr>' for a, b, c in rows)
    return f'<table class="ag-expected-got" style="{_TABLE}">{head}{body}</table>'


def expected_vs_got(ev: dict) -> str:
    """The small "expected vs got" table, where values were compared."""
    cmp = ev.get("compare")
    if isinstance(cmp, dict):
        exp, got = cmp.get("expected", {}), cmp.get("got", {})
        rows = [("shape", _shape(exp.get("shape")), _shape(got.get("shape"))),
                ("dtype", exp.get("dtype", "—"), got.get("dtype", "—")),
                ("mean", _num(exp.get("mean")), _num(got.get("mean"))),
                ("std", _num(exp.get("std")), _num(got.get("std")))]
        mm = cmp.get("mismatch")
        if isinstance(mm, dict):
            where = "[" + ", ".join(str(i) for i in mm.get("index", [])) + "]"
            rows.append((f"first mismatch, at {where}", _num(mm.get("expected"), 6), _num(mm.get("got"), 6)))
            rows.append(("entries that differ", "0", f"{mm.get('count')} of {mm.get('of')}"))
        return _table(rows)
    boxes = ev.get("uniform")
    if isinstance(boxes, list) and boxes:
        rows = []
        for p in boxes:
            label = f" ({p.get('title')})" if len(boxes) > 1 else ""
            b = p.get("bound")
            rows += [(f"range{label}", f"[-{_num(b)}, {_num(b)}]", f"[{_num(p.get('min'))}, {_num(p.get('max'))}]"),
                     (f"std{label}", f"{_num(b / 3 ** 0.5) if isinstance(b, float) else '—'} = b/√3",
                      _num(p.get("std")))]
        return _table(rows)
    panels = ev.get("weights")
    if isinstance(panels, list) and panels:
        rows = []
        for p in panels:
            label = f" ({p.get('title')})" if len(panels) > 1 else ""
            rows += [(f"mean{label}", "0", _num(p.get("mean"))),
                     (f"std{label}", f"{_num(p.get('sigma'))} = {p.get('formula')}", _num(p.get("std")))]
        return _table(rows)
    return ""


def figures_for(ev: dict) -> list[tuple[str, str]]:
    """``(alt, data URI)`` of every figure the evidence asks for (none if drawing fails)."""
    from . import figures
    todo = []
    if ev.get("weights"):
        todo.append(lambda: figures.weights_figure(ev["weights"], ev.get("experiment")))
    if ev.get("uniform"):
        todo.append(lambda: figures.uniform_figure(ev["uniform"]))
    if ev.get("layers"):
        todo.append(lambda: figures.layers_figure(ev["layers"], ev.get("fraction")))
    if ev.get("normalize"):
        todo.append(lambda: figures.normalize_figure(ev["normalize"]))
    if ev.get("gradients"):
        todo.append(lambda: figures.gradients_figure(ev["gradients"], ev.get("gradient_tolerance")))
    if ev.get("speed"):
        todo.append(lambda: figures.speed_figure(ev["speed"]))
    if ev.get("overflow"):
        todo.append(lambda: figures.overflow_figure(ev["overflow"]))
    if ev.get("training"):
        todo.append(lambda: figures.training_figure(ev["training"]))
    if ev.get("confusion"):
        todo.append(lambda: figures.confusion_figure(ev["confusion"]))
    out = []
    for draw in todo:
        try:
            out.append(draw())
        except Exception:      # a picture is never worth a crash
            pass
    return out


def _figures_html(figs: list[tuple[str, str]]) -> str:
    return "".join(f'<figure class="ag-figure" style="margin:6px 0"><img src="{_e(uri)}" alt="{_e(alt)}" '
                   f'style="max-width:100%;height:auto"></figure>' for alt, uri in figs)


def card_html(record: dict, *, message: bool = True) -> str:
    """The card for one check: badge, message, "expected vs got", figures (all escaped)."""
    ev = record.get("evidence") or {}
    if record.get("grader_error"):
        color, badge = ERROR, "NOT GRADED"
    elif record.get("passed"):
        color, badge = PASS, "PASS"
    elif (record.get("score") or 0) > 0:           # partial credit: some parts passed
        color, badge = FAIL, "PARTLY RIGHT"
    else:
        color, badge = FAIL, "FAIL"
    parts = [f'<div class="ag-card" style="{_CSS.format(color=color)}">']
    if message:
        parts.append(f'<div><span class="ag-badge" style="{_BADGE.format(color=color)}">{badge}</span>'
                     f'<b>{_e(record.get("title", ""))}</b> '
                     f'<span style="color:#666">{_e(_num(record.get("score")))}/'
                     f'{_e(_num(record.get("max_score")))} points</span></div>')
        parts.append('<pre class="ag-message" style="white-space:pre-wrap;margin:6px 0;font-size:12px;'
                     f'background:#f7f7f7;padding:6px">{_e(record.get("message", ""))}</pre>')
    else:
        parts.append(f'<div><b>What the grader saw: {_e(record.get("title", ""))}</b></div>')
    parts.append(expected_vs_got(ev))
    parts.append(_figures_html(figures_for(ev)))
    parts.append("</div>")
    return "".join(parts)


# ----------------------------------------------------------------------------- nbgrader
def feedback_outputs(records: list[dict]) -> list:
    """``display_data`` outputs carrying each visible check's evidence (for feedback)."""
    from nbformat.v4 import new_output
    outs = []
    for record in records:
        ev = record.get("evidence") or {}
        if not any(ev.get(k) for k in ("weights", "uniform", "layers", "normalize", "gradients", "speed",
                                       "compare", "overflow", "training", "confusion")):
            continue
        kept = {k: record[k] for k in ("name", "title", "passed", "grader_error")}
        outs.append(new_output("display_data", data={MIME: {**kept, "evidence": ev}, "text/plain": PENDING}))
    return outs


def render_feedback_output(out) -> bool:
    """Replace an evidence output's data by its card; False if there is nothing to show."""
    record = out.get("data", {}).get(MIME)
    if not isinstance(record, dict):
        return False
    ev = record.get("evidence") if isinstance(record.get("evidence"), dict) else {}
    figs = figures_for(ev)
    table = expected_vs_got(ev)
    if not figs and not table:
        return False
    body = card_html({**record, "evidence": ev}, message=False)
    out["data"] = {"text/html": body, "text/plain": "; ".join(alt for alt, _ in figs) or PENDING}
    return True


# ----------------------------------------------------------------------------- check()
def summary(sub, namespace: dict) -> str:
    """Grade every exercise of the notebook this kernel is working on; show a table."""
    from ..engine.grade import catalogue, result_for
    checks = catalogue()
    notebook = getattr(sub, "notebook", None)       # the grader's view of a notebook file
    if notebook is not None:
        from ..engine.grade import identify
        kind = identify(notebook)
    else:
        kind = _which_notebook(namespace)
    if kind is None:
        text = "No exercise of this kit is defined here yet: run the notebook's cells first."
        _show_or_print(text, f"<p>{_e(text)}</p>")
        return text
    results = [result_for(ex.name, sub) for ex in checks.NOTEBOOKS[kind]]
    lines = [f"{kind}: {sum(r.score for r in results):g}/{sum(r.max_score for r in results):g} points"]
    rows = []
    for r in results:
        status = "PASS" if r.passed else "ERROR" if r.grader_error else "FAIL"
        first = r.message.splitlines()[0] if r.message else ""
        lines.append(f"  [{status}] {r.score:g}/{r.max_score:g}  {first}")
        color = PASS if r.passed else ERROR if r.grader_error else FAIL
        rows.append(f'<tr><td style="{_CELL}"><code>{_e(r.name)}</code></td>'
                    f'<td style="{_CELL}">{_e(f"{r.score:g}/{r.max_score:g}")}</td>'
                    f'<td style="{_CELL}"><span style="{_BADGE.format(color=color)}">{status}</span></td>'
                    f'<td style="{_CELL}">{_e(first)}</td></tr>')
    text = "\n".join(lines)
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("exercise", "points", "status", "message"))
    body = (f'<div class="ag-card" style="{_CSS.format(color="#555")}"><b>{_e(lines[0])}</b>'
            f'<table class="ag-summary" style="{_TABLE}"><tr>{head}</tr>{"".join(rows)}</table></div>')
    _show_or_print(text, body)
    return text


def _which_notebook(namespace: dict) -> str | None:
    """The kit notebook whose exercises this namespace defines the most of."""
    from ..engine.grade import catalogue
    checks = catalogue()
    best, most = None, 0
    for kind, exercises in checks.NOTEBOOKS.items():
        n = sum(1 for ex in exercises if (getattr(ex, "defines", None) or ex.name) in namespace
                or ex.name in namespace)
        if n > most:
            best, most = kind, n
    return best


def _show_or_print(text: str, body: str) -> None:
    if in_kernel():
        _display({"text/plain": text, "text/html": body})
    else:
        print(text)
