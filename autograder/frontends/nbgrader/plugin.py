"""nbgrader integration: grade test cells with the kit's confined grader.

Configured from the course's ``nbgrader_config.py`` (see the one at the repository root);
nothing here is used unless nbgrader loads it. One small class per job, nbgrader style:

* :class:`SafeNotebookExporter` (both autograde phases) — a submission that is not a
  readable notebook (invalid JSON, ...) is graded as an empty notebook with a note saying
  why, instead of aborting the run for that student.
* :class:`StripOrphanMetadata` (sanitize phase, after ``OverwriteCells``) — a cell whose
  grade_id the student changed becomes an ordinary cell, instead of failing the whole
  submission in ``CheckCellMetadata``.
* :class:`CheckCellMetadataOnce` (both phases, replaces ``CheckCellMetadata``) — nbgrader's
  own metadata validator, each distinct cell metadata validated once, not per notebook.
* :class:`SandboxGrade` (autograde phase, replaces ``Execute``) — runs the student's
  cells in a confined worker (:func:`autograder.engine.grade.open_submission`) and each test
  cell's trusted source in the grader process; writes outputs that nbgrader's
  ``determine_grade`` scores (stdout = full points, one ``error`` = zero, an
  ``execute_result`` number = partial credit). Where the
  grader is at fault it writes nothing and raises: nbgrader records no score. With
  ``workers`` above 1 it takes the notebook's result graded ahead, in parallel, by
  :mod:`autograder.frontends.nbgrader.ahead` (started by the exporter), when the content matches.
* :class:`ZeroMissingGrades` (autograde phase, after ``SaveAutoGrades``) — grades of
  cells missing from the submission become 0, also on ``autograde --force`` (nbgrader
  would keep the previous run's score); the gradebook is opened only when one is missing.
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
import contextvars
import copy
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter, NotebookExporter
from nbformat.v4 import new_markdown_cell, new_notebook, new_output
from nbgrader import utils
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Integer, List, Unicode

from ...engine.report import ExerciseResult, NotebookReport

__all__ = ["SafeNotebookExporter", "StripOrphanMetadata", "CheckCellMetadataOnce", "SandboxGrade",
           "ZeroMissingGrades", "AddGradingNotes", "ScrubHiddenFeedback", "OfflineFeedbackExporter", "split_hidden",
           "read_submission", "content_key"]

NOTES_KEY = "autograder"          # notebook metadata: {"notes": [...]} carried between phases
NOTES_CELL_ID = "autograder-notes"
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


def _fraction(exc: AssertionError) -> float:
    """The share of an exercise that was right, for a ``CheckFailed`` with partial credit
    (0 for any other failure: a plain assert, or a check that gives all or nothing)."""
    score, max_score = getattr(exc, "score", 0) or 0, getattr(exc, "max_score", 0) or 0
    if max_score <= 0 or not 0 < score < max_score:
        return 0.0
    return score / max_score


def _combined_fraction(failures: list) -> float:
    """Each part at the lowest score any of ``failures`` gave it (parts by name)."""
    parts: dict[str, tuple[float, float]] = {}
    for exc in failures:
        if not exc.parts:                    # no breakdown: the share as a whole
            parts.setdefault("", (1.0, 1.0))
            parts[""] = (min(parts[""][0], _fraction(exc)), 1.0)
            continue
        for p in exc.parts:
            score, top = float(p["score"]), float(p["max_score"])
            parts[p["name"]] = (min(parts.get(p["name"], (top, top))[0], score), top)
    total = sum(top for _, top in parts.values())
    if "" in parts and len(parts) > 1:       # mixed: fall back to the lowest share
        return min(_fraction(exc) for exc in failures)
    return sum(score for score, _ in parts.values()) / total if total else 0.0


def _error(message: str, ename: str = "CheckFailed"):
    return new_output("error", ename=ename, evalue=message, traceback=message.splitlines() or [ename])


# ----------------------------------------------------------------------------- reading
class SafeNotebookExporter(NotebookExporter):
    """Grade an unreadable submission as an empty notebook, with the reason as a note.

    nbgrader aborts that student's autograde (grades stay ungraded, exit status 1).
    Here the notebook has no cells, so :class:`ZeroMissingGrades` scores every cell 0.
    Grading notes a student wrote into the file's metadata are dropped on reading it.

    Created once when ``autograde`` starts, after nbgrader listed the submissions and
    before it touches any: that is when the run's preflight and grading ahead begin
    (:func:`autograder.frontends.nbgrader.ahead.begin`).
    """

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        from nbgrader.converters import Autograde
        if isinstance(self.parent, Autograde):
            from .ahead import begin
            begin(self.parent, SandboxGrade, forget_cells=forget_cells, content_key=content_key,
                  read_submission=read_submission)

    def from_file(self, file_stream, resources=None, **kw):
        phase = "autograde" if os.environ.get("NBGRADER_EXECUTION") == "autograde" else "sanitize"
        nb = read_submission(file_stream, phase, self.log)
        return self.from_notebook_node(nb, resources=resources, **kw)


def read_submission(file_stream, phase: str, log=None):
    """The notebook in ``file_stream``, as nbgrader's ``phase`` ("sanitize": the student's
    file, "autograde": nbgrader's own sanitized copy) should see it."""
    name = getattr(file_stream, "name", None)
    try:
        nb = nbformat.read(file_stream, as_version=4)
    except Exception as exc:
        reason = _unreadable_reason(name, exc)
        if log is not None:
            log.error("Cannot read %s: %s; grading it as an empty notebook", name, reason)
        nb = new_notebook()
        add_note(nb, f"Your notebook file could not be read, so every test scored 0: {reason}")
        return nb
    if phase != "autograde":            # reading the student's file
        nb.metadata.pop(NOTES_KEY, None)
    return nb


def _unreadable_reason(name: str | None, exc: Exception) -> str:
    from ...engine.notebook import NotebookError, read_notebook
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


class CheckCellMetadataOnce(NbGraderPreprocessor):
    """nbgrader's ``CheckCellMetadata``, validating each distinct cell metadata once.

    nbgrader's validator checks every nbgrader cell of every notebook against its JSON
    schema, re-checking the schema itself each time: about a tenth of a second per
    notebook, three times per submission (sanitizing, grading ahead, autograding), in
    nbgrader's one thread. The verdict depends only on the cell's type and its nbgrader
    metadata, which are the same across a class, so a success is remembered by those two
    (for as long as the process lives: formgrader may autograde many times). A failure is never remembered: it is raised (and logged) exactly as nbgrader does,
    with nbgrader's own validator and message.
    """

    def preprocess(self, nb, resources):
        try:
            _RememberingValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources


class _RememberingValidator(MetadataValidator):
    valid: set = set()          # (cell type, metadata as JSON) that validated, in this process
    LIMIT = 10_000

    def validate_cell(self, cell) -> None:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            return
        key = (cell.cell_type, json.dumps(meta, sort_keys=True, default=repr))
        if key in self.valid:
            return
        super().validate_cell(cell)
        # nbgrader warns when the recorded cell type differs: such a cell is checked every time
        if meta.get("cell_type", cell.cell_type) == cell.cell_type and len(self.valid) < self.LIMIT:
            self.valid.add(key)


# ----------------------------------------------------------------------------- grading
@dataclass
class Graded:
    """What :class:`SandboxGrade` found for one notebook, small enough to keep a few of:
    the outputs of its code cells by index (test-cell verdicts, restored student output),
    the notes to show, and how it fared (for the progress line). ``grader_error`` set: the
    grader could not grade it, and nothing may be written."""
    outputs: dict[int, list] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report: NotebookReport = field(default_factory=lambda: NotebookReport("notebook"))
    grader_error: str | None = None

    def apply(self, nb) -> None:
        for index, outputs in self.outputs.items():
            nb.cells[index].outputs = outputs
        for note in self.notes:
            add_note(nb, note)


def content_key(nb, name: str) -> str:
    """Which notebook this is, by content: equal keys, equal grading input."""
    text = json.dumps(nb, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{name}\0{text}".encode()).hexdigest()


class SandboxGrade(NbGraderPreprocessor):
    """Replaces nbgrader's ``Execute``: no kernel, student code confined, our checks trusted.

    Where the grader is at fault (preflight, a worker that cannot start, an exercise the
    grader could not check, a test cell whose own code breaks), it writes nothing: it
    logs one line and raises, so nbgrader records no score for that notebook.
    """

    cell_timeout = Float(60.0, help="Seconds one student cell, or one check's call into "
                                    "student code, may run.").tag(config=True)
    notebook_timeout = Float(600.0, help="Seconds all of one notebook's student code may run "
                                         "in total.").tag(config=True)
    workers = Integer(0, help="Notebooks graded at once during autograde (see "
                              "autograder.frontends.nbgrader.ahead). 0: one per core; 1: one after "
                              "another in nbgrader's own thread.").tag(config=True)
    show_hidden_messages = Bool(True, help="When a hidden test fails, show its teaching message "
                                           "(never its source). False: a generic sentence."
                                ).tag(config=True)
    restore_student_outputs = Bool(True, help="Put the output of the student's exercise cells "
                                              "back on them (for formgrader and feedback)."
                                   ).tag(config=True)
    begin_hidden = Unicode(BEGIN_HIDDEN).tag(config=True)
    end_hidden = Unicode(END_HIDDEN).tag(config=True)
    lessons = List(Unicode(), help="Local lesson folders (not installed) to grade with, besides "
                                   "the installed lessons; relative paths are read from the "
                                   "directory nbgrader runs in.").tag(config=True)

    def use_lessons(self) -> None:
        """Install the configured local lessons (a LessonError is a GraderError)."""
        from ...engine import discovery
        discovery.add_paths(self.lessons)
        discovery.load()

    @property
    def limits(self):
        from ...engine.sandbox import Limits
        return Limits(cell_timeout=self.cell_timeout, notebook_timeout=self.notebook_timeout)

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else len(os.sched_getaffinity(0))

    def preprocess(self, nb, resources):
        from . import ahead as nbgrader_ahead
        from ...engine import pool
        from ...engine.errors import GraderError
        from ...engine.preflight import preflight
        info = resources.get("nbgrader", {})
        name = (resources.get("metadata") or {}).get("name") or "notebook"
        try:
            self.use_lessons()
            preflight(self.limits)      # done once per run (when autograde starts), then cached
        except GraderError as exc:
            raise self.refuse(info, str(exc)) from None
        run = nbgrader_ahead.current()
        graded = run.take(info, content_key(nb, name)) if run else None
        if graded is None and run is not None:
            graded = run.grade_now(self, nb, name)
        elif graded is None:
            # One notebook after another: the zygote started for the first forks a fresh
            # worker for each (or, without one, the next worker starts while this one is
            # graded; see autograder.engine.pool).
            pool.prestart(1, self.limits, *pool.settings())
            graded = self.grade(copy.deepcopy(nb), name)
        if run is not None:
            run.finished(info, graded)
        if graded.grader_error:
            raise self.refuse(info, graded.grader_error)
        graded.apply(nb)
        return nb, resources

    def refuse(self, info: dict, reason: str) -> Exception:
        """Log the one line an instructor reads; the exception makes nbgrader skip the notebook."""
        from ...engine.errors import GraderError
        self.log.error("Grader error, no score written for %s/%s (%s): %s", info.get("student", "?"),
                       info.get("assignment", "?"), info.get("notebook", "?"), reason)
        return GraderError(f"not graded: {reason}")

    def grade(self, nb, name: str) -> Graded:
        """Grade a (sanitized) notebook, which this changes; never raises."""
        from ...engine.errors import GraderError
        from ...engine.grade import open_submission
        from ...engine.notebook import NotebookError
        graded = Graded(report=NotebookReport(name))
        tests = [i for i, cell in enumerate(nb.cells) if is_test_cell(cell)]
        if not tests:
            graded.report.error = "no test cells"
            return graded
        done: set[int] = set()
        try:
            notebook = self._load(nb, name)
            with open_submission(notebook, self.limits) as sub:
                note = sub.session.confinement_note
                graded.notes.append("Your code ran in a separate worker process, "
                                    + (f"{note}." if sub.session.confined else f"not confined: {note}."))
                for index in tests:
                    nb.cells[index].outputs = self._run_test(nb.cells[index])
                    done.add(index)
                if self.restore_student_outputs:
                    self._restore_outputs(nb, sub)
        except NotebookError as exc:            # the student's notebook: zero, with the reason
            message = f"Your notebook could not be graded: {exc}"
            graded.notes.append(message)
            for index in tests:
                if index not in done:
                    nb.cells[index].outputs = [_error(message, "NotGraded")]
        except GraderError as exc:
            graded.grader_error = str(exc)
            return graded
        except Exception as exc:                # a bug in the kit: never the student's zero
            self.log.debug("Grading %s failed", name, exc_info=True)
            graded.grader_error = f"the grader failed ({type(exc).__name__}: {exc})"
            return graded
        graded.outputs = {i: cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
        for index in tests:
            grade_id = nb.cells[index].metadata.nbgrader.get("grade_id", "?")
            failed = any(out.output_type in ("error", "execute_result") for out in nb.cells[index].outputs)
            graded.report.exercises.append(ExerciseResult(grade_id, not failed, 0.0, 0.0, ""))
        return graded

    def _load(self, nb, name: str):
        from ...engine.notebook import read_notebook
        with tempfile.TemporaryDirectory(prefix="autograder-nbgrader-") as tmp:
            path = Path(tmp) / f"{name}.ipynb"
            nbformat.write(nb, str(path))
            return read_notebook(path)

    def _run_test(self, cell) -> list:
        """Run the cell's visible, then hidden code; one stdout stream or one error.

        A check the grader could not run, or test code that raises anything but an
        ``AssertionError``, is the grader's fault: :class:`GraderError`, no output.

        A check that gives partial credit (``CheckFailed`` with a score between 0 and its
        maximum) does not stop the cell: its message becomes the stdout stream and the
        score an ``execute_result``, nbgrader's partial-credit convention
        (``nbgrader.utils.determine_grade`` reads a number there as the cell's score,
        scaled here to the cell's points). When the hidden code gives partial credit
        too, each part keeps the lower of its two scores.
        """
        import autograder
        from ...engine.errors import GraderError
        grade_id = cell.metadata.nbgrader.get("grade_id", "?")
        visible, hidden = split_hidden(cell.source, self.begin_hidden, self.end_hidden)
        namespace = {"__name__": "__grader__", "check": autograder.check}
        from ...reports.cards import collecting, feedback_outputs
        shown: list = []        # what the visible checks saw, drawn in the feedback (not hidden ones)
        partial: list = []      # (CheckFailed, message) of each block that gave partial credit
        with captured() as out:
            for code, is_hidden in ((visible, False), (hidden, True)):
                if not code.strip():
                    continue
                try:
                    with collecting(None if is_hidden else shown):
                        exec(compile(code, f"<test cell {grade_id}>", "exec"), namespace)
                except GraderError:
                    raise
                except AssertionError as exc:      # CheckFailed, or a plain assert
                    message = str(exc) or "A test in this cell failed."
                    failure, fraction = exc, _fraction(exc)
                except Exception as exc:           # the test code itself is broken
                    part = "hidden" if is_hidden else "visible"
                    raise GraderError(f"the {part} code of test cell {grade_id} raised "
                                      f"{type(exc).__name__}: {exc}",
                                      "Fix the cell in the assignment's source notebook, run "
                                      "`nbgrader generate_assignment`, then autograde again") from None
                else:
                    continue
                if is_hidden:
                    message = ("A hidden test failed: " + message if self.show_hidden_messages
                               else "A hidden test failed (its details are not shown).")
                if fraction > 0:
                    partial.append((failure, message))
                    continue
                before = "".join(m + "\n" for _, m in partial)
                return feedback_outputs(shown) + [_error(before + message)]
        if partial:
            points = float(cell.metadata.nbgrader.get("points", 0) or 0)
            score = round(_combined_fraction([exc for exc, _ in partial]) * points, 6)
            text = "\n".join(m for _, m in partial) + "\n"
            return feedback_outputs(shown) + [
                new_output("stream", name="stdout", text=text),
                new_output("execute_result", data={"text/plain": f"{score:g}"}, metadata={},
                           execution_count=None)]
        text = out.getvalue()
        return feedback_outputs(shown) + ([new_output("stream", name="stdout", text=text)] if text else [])

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


# Test cells print through sys.stdout, which is one for the whole process; notebooks are
# graded in several threads at once. While any test cell runs, sys.stdout and sys.stderr
# are switches that send each thread's writes to that thread's own buffers (threads that
# are not running a test cell write through), and warnings are ignored.
_SINKS: contextvars.ContextVar[tuple[io.StringIO, io.StringIO] | None] = \
    contextvars.ContextVar("_SINKS", default=None)
_capture_lock = threading.Lock()
_capture_users = 0
_capture_saved: list = []


class _Switch(io.TextIOBase):
    def __init__(self, through, which: int) -> None:
        self.through, self.which = through, which

    def write(self, text: str) -> int:
        sinks = _SINKS.get()
        return (sinks[self.which] if sinks else self.through).write(text)

    def flush(self) -> None:
        if _SINKS.get() is None:
            self.through.flush()

    def isatty(self) -> bool:
        return _SINKS.get() is None and self.through.isatty()

    def fileno(self) -> int:
        return self.through.fileno()

    @property
    def encoding(self):
        return getattr(self.through, "encoding", "utf-8")


@contextlib.contextmanager
def captured():
    """This thread's stdout (yielded) and stderr (dropped) while the block runs."""
    global _capture_users
    out = io.StringIO()
    with _capture_lock:
        if _capture_users == 0:
            quiet = warnings.catch_warnings()
            quiet.__enter__()
            warnings.simplefilter("ignore")
            _capture_saved[:] = [quiet, sys.stdout, sys.stderr]
            sys.stdout, sys.stderr = _Switch(sys.stdout, 0), _Switch(sys.stderr, 1)
        _capture_users += 1
    token = _SINKS.set((out, io.StringIO()))
    try:
        yield out
    finally:
        _SINKS.reset(token)
        with _capture_lock:
            _capture_users -= 1
            if _capture_users == 0:
                quiet, stdout, stderr = _capture_saved
                if isinstance(sys.stdout, _Switch):
                    sys.stdout = stdout
                if isinstance(sys.stderr, _Switch):
                    sys.stderr = stderr
                quiet.__exit__(None, None, None)


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
        if _cells_of(info["db_url"], info["assignment"], info["notebook"]) <= present:
            return nb, resources        # the usual case: nothing missing, the gradebook untouched
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


_CELLS: dict[tuple[str, str, str], frozenset[str]] = {}     # forgotten when autograde starts


def forget_cells() -> None:
    """Read the gradebook's cells afresh (each ``autograde``; formgrader runs several in one
    process, and the assignment may be regenerated between them)."""
    _CELLS.clear()


def _cells_of(db_url: str, assignment: str, notebook: str) -> frozenset[str]:
    """The names of a notebook's grade, solution and task cells in the gradebook (read once per
    run: ``generate_assignment`` cannot run in the middle of an ``autograde``)."""
    key = (db_url, assignment, notebook)
    if key not in _CELLS:
        from nbgrader.api import Gradebook
        with Gradebook(db_url) as gb:
            nb = gb.find_notebook(notebook, assignment)
            _CELLS[key] = frozenset(c.name for c in (*nb.grade_cells, *nb.solution_cells, *nb.task_cells))
    return _CELLS[key]


class AddGradingNotes(NbGraderPreprocessor):
    """Show the notes left in the notebook's metadata as a markdown cell at the top."""

    def preprocess(self, nb, resources):
        notes = nb.metadata.get(NOTES_KEY, {}).get("notes", [])
        if notes:
            text = "**Autograder notes**\n\n" + "\n".join(f"* {note}" for note in notes)
            cell = new_markdown_cell(text)
            if all(c.get("id") != NOTES_CELL_ID for c in nb.cells):
                cell.id = NOTES_CELL_ID         # not random: the same grading, the same file
            nb.cells.insert(0, cell)
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
