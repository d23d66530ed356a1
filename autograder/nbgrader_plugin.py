"""nbgrader integration: grade test cells with the kit's confined grader.

Configured from the course's ``nbgrader_config.py`` (see the one at the repository root);
nothing here is used unless nbgrader loads it. One small class per job, nbgrader style:

* :class:`SafeNotebookExporter` (both autograde phases) — a submission that is not a
  readable notebook (invalid JSON, ...) is graded as an empty notebook with a note saying
  why, instead of aborting the run for that student.
* :class:`StripOrphanMetadata` (sanitize phase, after ``OverwriteCells``) — a cell whose
  grade_id the student changed becomes an ordinary cell, instead of failing the whole
  submission in ``CheckCellMetadata``.
* :class:`SandboxGrade` (autograde phase, replaces ``Execute``) — runs the student's
  cells in a confined worker (:func:`autograder.grade.open_submission`) and each test
  cell's trusted source in the grader process; writes outputs that nbgrader's
  ``determine_grade`` scores (stdout = full points, one ``error`` = zero).
* :class:`ZeroMissingGrades` (autograde phase, after ``SaveAutoGrades``) — grades of
  cells missing from the submission become 0, also on ``autograde --force`` (nbgrader
  would keep the previous run's score).
* :class:`AddGradingNotes` (autograde phase) — shows the notes the steps above left (why
  something scored 0, how the code was confined) as a markdown cell at the top of the
  graded notebook, so they appear in formgrader and in the feedback.
* :class:`ScrubHiddenFeedback` (feedback, before ``ClearHiddenTests``) and
  :class:`OfflineFeedbackExporter` — feedback never quotes hidden tests and loads
  nothing from the network.

Student code never runs in this process: test-cell sources come from the gradebook
(``OverwriteCells`` restores them), so executing them here is executing our own code.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter, NotebookExporter
from nbformat.v4 import new_markdown_cell, new_notebook, new_output
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Unicode

__all__ = ["SafeNotebookExporter", "StripOrphanMetadata", "SandboxGrade", "ZeroMissingGrades",
           "AddGradingNotes", "ScrubHiddenFeedback", "OfflineFeedbackExporter", "split_hidden"]

NOTES_KEY = "autograder"          # notebook metadata: {"notes": [...]} carried between phases
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


def add_note(nb, text: str) -> None:
    """Record a sentence for the grading notes cell (see :class:`AddGradingNotes`)."""
    notes = nb.metadata.setdefault(NOTES_KEY, {}).setdefault("notes", [])
    if text not in notes:
        notes.append(text)


def is_test_cell(cell) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def split_hidden(source: str, begin: str = BEGIN_HIDDEN, end: str = END_HIDDEN) -> tuple[str, str]:
    """``(visible, hidden)`` code of a test cell; the delimiter lines belong to neither.

    Lines are matched like nbgrader's ``ClearHiddenTests`` does: a line containing the
    delimiter (``### BEGIN HIDDEN TESTS``) opens or closes a region.
    """
    visible, hidden, inside = [], [], False
    for line in source.splitlines(keepends=True):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "".join(visible), "".join(hidden)


def _error(message: str, ename: str = "CheckFailed"):
    return new_output("error", ename=ename, evalue=message, traceback=message.splitlines() or [ename])


# ----------------------------------------------------------------------------- reading
class SafeNotebookExporter(NotebookExporter):
    """Grade an unreadable submission as an empty notebook, with the reason as a note.

    nbgrader aborts that student's autograde (grades stay ungraded, exit status 1).
    Here the notebook has no cells, so :class:`ZeroMissingGrades` scores every cell 0.
    Grading notes a student wrote into the file's metadata are dropped on reading it.
    """

    def from_file(self, file_stream, resources=None, **kw):
        name = getattr(file_stream, "name", None)
        try:
            nb = nbformat.read(file_stream, as_version=4)
        except Exception as exc:
            reason = _unreadable_reason(name, exc)
            self.log.error("Cannot read %s: %s; grading it as an empty notebook", name, reason)
            nb = new_notebook()
            add_note(nb, f"Your notebook file could not be read, so every test scored 0: {reason}")
            return self.from_notebook_node(nb, resources=resources, **kw)
        if os.environ.get("NBGRADER_EXECUTION") != "autograde":   # reading the student's file
            nb.metadata.pop(NOTES_KEY, None)
        return self.from_notebook_node(nb, resources=resources, **kw)


def _unreadable_reason(name: str | None, exc: Exception) -> str:
    from .notebook import NotebookError, read_notebook
    if name:
        try:
            read_notebook(name)
        except NotebookError as err:
            return str(err)
        except Exception:
            pass
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'not a notebook'}"


class StripOrphanMetadata(NbGraderPreprocessor):
    """Turn a cell whose grade_id nbgrader did not recognise into an ordinary cell.

    ``OverwriteCells`` deletes an unknown grade_id but keeps the grade/solution flags, and
    ``CheckCellMetadata`` then rejects the whole submission. The original cell is then
    simply missing: its exercise fails with a message, its grade becomes 0.
    """

    def preprocess(self, nb, resources):
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader")
            if meta is not None and "grade_id" not in meta:
                self.log.warning("Cell %d has nbgrader metadata with an unknown grade_id; "
                                 "treating it as an ordinary cell", index + 1)
                del cell.metadata["nbgrader"]
                add_note(nb, f"Cell {index + 1} carries nbgrader metadata that does not match the "
                             "assignment (was its grade_id changed?); it was graded as an ordinary "
                             "cell. Copy the original cell back from a fresh release.")
        return nb, resources


# ----------------------------------------------------------------------------- grading
class SandboxGrade(NbGraderPreprocessor):
    """Replaces nbgrader's ``Execute``: no kernel, student code confined, our checks trusted."""

    cell_timeout = Float(60.0, help="Seconds one student cell, or one check's call into "
                                    "student code, may run.").tag(config=True)
    notebook_timeout = Float(600.0, help="Seconds all of one notebook's student code may run "
                                         "in total.").tag(config=True)
    show_hidden_messages = Bool(True, help="When a hidden test fails, show its teaching message "
                                           "(never its source). False: a generic sentence."
                                ).tag(config=True)
    restore_student_outputs = Bool(True, help="Put the output of the student's exercise cells "
                                              "back on them (for formgrader and feedback)."
                                   ).tag(config=True)
    begin_hidden = Unicode(BEGIN_HIDDEN).tag(config=True)
    end_hidden = Unicode(END_HIDDEN).tag(config=True)

    def preprocess(self, nb, resources):
        tests = [cell for cell in nb.cells if is_test_cell(cell)]
        if not tests:
            return nb, resources
        from .grade import open_submission
        from .notebook import NotebookError
        from .sandbox import Limits
        from . import pool
        limits = Limits(cell_timeout=self.cell_timeout, notebook_timeout=self.notebook_timeout)
        # nbgrader grades one notebook after another in this process: the zygote started
        # for the first forks a fresh worker for each (or, without a zygote, the next
        # one's worker starts while this one is graded; see autograder.pool).
        pool.prestart(1, limits, *pool.settings())
        graded: set[int] = set()
        try:
            notebook = self._load(nb, resources)
            with open_submission(notebook, limits) as sub:
                note = sub.session.confinement_note
                add_note(nb, "Your code ran in a separate worker process, "
                             + (f"{note}." if sub.session.confined else f"not confined: {note}."))
                for cell in tests:
                    cell.outputs = self._run_test(cell)
                    graded.add(id(cell))
                if self.restore_student_outputs:
                    self._restore_outputs(nb, sub)
        except NotebookError as exc:
            self._fail_rest(nb, tests, graded, f"Your notebook could not be graded: {exc}")
        except Exception as exc:   # the worker could not start, ...: fail closed
            self.log.exception("Grading %s failed", resources.get("nbgrader", {}).get("student"))
            self._fail_rest(nb, tests, graded,
                            f"Your notebook could not be graded ({type(exc).__name__}: {exc}). "
                            "This is not your fault: please tell your instructor.")
        return nb, resources

    def _load(self, nb, resources):
        from .notebook import read_notebook
        name = (resources.get("metadata") or {}).get("name") or "notebook"
        with tempfile.TemporaryDirectory(prefix="autograder-nbgrader-") as tmp:
            path = Path(tmp) / f"{name}.ipynb"
            nbformat.write(nb, str(path))
            return read_notebook(path)

    def _fail_rest(self, nb, tests, graded, message: str) -> None:
        add_note(nb, message)
        for cell in tests:
            if id(cell) not in graded:
                cell.outputs = [_error(message, "NotGraded")]

    def _run_test(self, cell) -> list:
        """Run the cell's visible, then hidden code; one stdout stream or one error."""
        import autograder
        grade_id = cell.metadata.nbgrader.get("grade_id", "?")
        visible, hidden = split_hidden(cell.source, self.begin_hidden, self.end_hidden)
        namespace = {"__name__": "__grader__", "check": autograder.check}
        out = io.StringIO()
        for code, is_hidden in ((visible, False), (hidden, True)):
            if not code.strip():
                continue
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
                        warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exec(compile(code, f"<test cell {grade_id}>", "exec"), namespace)
            except AssertionError as exc:      # CheckFailed, or a plain assert
                message = str(exc) or "A test in this cell failed."
            except Exception as exc:           # the test code itself is broken: not the student's fault
                self.log.warning("Test cell %s raised %s: %s", grade_id, type(exc).__name__, exc)
                message = ("This test could not run (" + ("details withheld" if is_hidden else
                           f"{type(exc).__name__}: {exc}") + "). This is not your fault: "
                           "please tell your instructor.")
                return [_error(message, "TestError")]
            else:
                continue
            if is_hidden:
                message = ("A hidden test failed: " + message if self.show_hidden_messages
                           else "A hidden test failed (its details are not shown).")
            return [_error(message)]
        text = out.getvalue()
        return [new_output("stream", name="stdout", text=text)] if text else []

    def _restore_outputs(self, nb, sub) -> None:
        """The student's exercise cells get what they printed and how they failed."""
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            run = sub.runs.get(grade_id) if grade_id else None
            if run is None or cell.cell_type != "code" or utils.is_grade(cell):
                continue        # a grade cell's outputs decide its score: never touch them
            outputs = []
            if run.stdout:
                outputs.append(new_output("stream", name="stdout", text=run.stdout))
            if run.stderr:
                outputs.append(new_output("stream", name="stderr", text=run.stderr))
            if run.error:
                tb = run.error.get("traceback") or ""
                lines = tb.splitlines() if isinstance(tb, str) else [str(t) for t in tb]
                outputs.append(new_output("error", ename=str(run.error.get("ename", "Error")),
                                          evalue=str(run.error.get("evalue", "")),
                                          traceback=lines or [run.reason]))
            cell.outputs = outputs


class ZeroMissingGrades(NbGraderPreprocessor):
    """Score 0 every grade of this notebook whose cell is not in the submission.

    nbgrader only updates grades of cells present in the notebook, so a test cell deleted
    before ``autograde --force`` kept the previous run's score. Missing answer cells get
    an automatic comment in the gradebook (test cells have no comment to hold one).
    """

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook
        info = resources["nbgrader"]
        present = {cell.metadata.nbgrader.get("grade_id") for cell in nb.cells
                   if "nbgrader" in cell.metadata}
        missing = []
        with Gradebook(info["db_url"]) as gb:
            sub = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            for grade in sub.grades:
                if grade.cell.name not in present:
                    missing.append(grade.cell.name)
                    grade.auto_score = 0.0
                    grade.needs_manual_grade = grade.manual_score is not None
            for comment in sub.comments:
                if comment.cell.name not in present:
                    missing.append(comment.cell.name)
                    comment.auto_comment = ("This cell is missing from the submission (deleted, or "
                                            "its nbgrader metadata was changed).")
            gb.db.commit()
        if missing and nb.cells:
            names = ", ".join(f"`{name}`" for name in sorted(set(missing)))
            self.log.warning("%s: cells missing from the submission, scored 0: %s",
                             info["student"], names)
            add_note(nb, f"These cells are missing from your notebook, so their tests scored 0: "
                         f"{names}. Copy them back from a fresh copy of the assignment.")
        return nb, resources


class AddGradingNotes(NbGraderPreprocessor):
    """Show the notes left in the notebook's metadata as a markdown cell at the top."""

    def preprocess(self, nb, resources):
        notes = nb.metadata.get(NOTES_KEY, {}).get("notes", [])
        if notes:
            text = "**Autograder notes**\n\n" + "\n".join(f"* {note}" for note in notes)
            nb.cells.insert(0, new_markdown_cell(text))
        return nb, resources


# ----------------------------------------------------------------------------- feedback
class ScrubHiddenFeedback(NbGraderPreprocessor):
    """Remove from a test cell's outputs every line that quotes its hidden code.

    Runs before ``ClearHiddenTests`` (which removes the region from the source but not
    from outputs). :class:`SandboxGrade` already writes only teaching messages; this is
    the guard for anything else that ever put output there.
    """

    begin_hidden = Unicode(BEGIN_HIDDEN).tag(config=True)
    end_hidden = Unicode(END_HIDDEN).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if not is_test_cell(cell) or self.begin_hidden not in cell.source:
            return cell, resources
        _, hidden = split_hidden(cell.source, self.begin_hidden, self.end_hidden)
        secret = [line.strip() for line in hidden.splitlines() if line.strip()]

        def clean(text: str) -> str:
            return "".join(line for line in text.splitlines(keepends=True)
                           if not any(s in line for s in secret))

        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                out.text = clean(out.text)
            elif out.output_type == "error":
                out.evalue = clean(out.evalue)
                out.traceback = [line for line in out.traceback if not any(s in line for s in secret)]
            else:
                for mime, value in list(out.get("data", {}).items()):
                    if isinstance(value, str):
                        out.data[mime] = clean(value)
        return cell, resources


_EXTERNAL = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>"
    r"|<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)


class OfflineFeedbackExporter(HTMLExporter):
    """nbgrader's feedback HTML without external scripts or stylesheets.

    The feedback template loads MathJax from a CDN (ignoring ``mathjax_url``); everything
    else it uses is inlined. Formulas then stay as LaTeX source, which is readable.
    """

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources=resources, **kw)
        return _EXTERNAL.sub("", output), resources
