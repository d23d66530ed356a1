"""``nbgrader autograde`` over a class, with the kit's workers grading in parallel.

nbgrader grades one submission after another in one process. When ``autograde`` starts
(the moment :class:`~autograder.frontends.nbgrader.plugin.SafeNotebookExporter` is created: nbgrader
has listed the submissions and touched none), :func:`begin`

1. runs the kit's preflight: if the grader cannot grade, one line in nbgrader's log says
   why and how to fix it, and autograde stops before any student is touched;
2. lists the notebooks this run will grade, in nbgrader's order (its ``--student``,
   ``--assignment``, ``--notebook`` and ``--force`` already chose the submissions; the
   ones nbgrader will skip as already graded are left out the way nbgrader decides it);
3. starts ``SandboxGrade.workers`` threads (default: one per core) that grade ahead: each
   runs nbgrader's own sanitize preprocessors on a submission, exactly as nbgrader will,
   and grades the result with :meth:`SandboxGrade.grade`, keeping only the small
   :class:`~autograder.frontends.nbgrader.plugin.Graded` and a hash of the notebook's content.

When nbgrader reaches a notebook, :meth:`SandboxGrade.preprocess` takes its result if the
content nbgrader hands it hashes the same (a submission changed meanwhile is graded
again, now), else grades it itself. Either way the outputs come from the same function, so
the gradebook is the same as with ``workers = 1``. At most ``workers`` notebooks are
graded at once (nbgrader's own thread included) and at most ``2 × workers`` results wait.
A result the grader failed on ahead is graded again in nbgrader's order before anything
is refused. At exit, or Ctrl-C, every worker is killed at once (:func:`autograder.engine.pool.close`).
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass

import nbformat
from nbconvert.exporters import NotebookExporter

from ...reports.progress import Progress, log_around, wanted

__all__ = ["begin", "current", "Run"]

_current: "Run | None" = None
_QUIET = logging.getLogger("autograder.frontends.nbgrader.ahead.silent")   # sanitizing ahead says nothing
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def current() -> "Run | None":
    """The run :func:`begin` started in this process, while it lasts."""
    return _current


@dataclass
class Job:
    """One notebook nbgrader is expected to grade, and what grading it ahead found."""
    index: int
    assignment: str
    student: str
    notebook: str
    path: str
    state: str = "waiting"          # waiting | running | done | taken | passed
    result: tuple | None = None     # (content key, Graded) once graded ahead


def begin(converter, grader_class, *, forget_cells, content_key, read_submission) -> None:
    """Preflight, plan and start grading ahead for the ``Autograde`` converter that is starting.

    Raises nbgrader's ``NbGraderException`` (autograde exits 1, nobody touched) when the
    preflight fails; the reason is one error line in nbgrader's log.
    """
    global _current
    from nbgrader.converters.base import NbGraderException

    from ...engine import pool
    from ...engine.errors import GraderError
    from ...engine.preflight import preflight
    stop()
    forget_cells()
    grader = grader_class(config=converter.config, parent=converter)
    # The zygote (or the first workers) starts now and gets ready while this process
    # imports torch and the checks for the preflight.
    pool.prestart(grader.worker_count(), grader.limits, *pool.settings())
    try:
        grader.use_lessons()
        preflight(grader.limits)
    except GraderError as exc:
        converter.log.error("Grader error, nobody was graded: %s", exc)
        raise NbGraderException(str(exc)) from None
    jobs = plan(converter)
    _current = Run(converter, grader, jobs, grader.worker_count(), content_key=content_key,
                   read_submission=read_submission)
    _current.start()


def stop() -> None:
    """Stop the current run's threads (they finish the notebook they are on)."""
    global _current
    run, _current = _current, None
    if run is not None:
        run.close()


@atexit.register
def _exit() -> None:
    """At exit (also after Ctrl-C): kill every worker at once, start none."""
    run = _current
    if run is not None and any(t.is_alive() for t in run.threads):
        from ...engine import pool
        run.stopping = True
        pool.close()
    stop()


def plan(converter) -> list[Job]:
    """The notebooks nbgrader will grade in this run, in its order."""
    from nbgrader.api import Gradebook, MissingEntry
    coursedir = converter.coursedir
    pattern = converter._format_source("(?P<assignment_id>.*)", "(?P<student_id>.*)", escape=True)
    known: dict[str, set[str]] = {}
    jobs: list[Job] = []
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for folder in sorted(converter.assignments):
            match = re.match(pattern, folder)
            if match is None:
                continue
            assignment, student = match.group("assignment_id"), match.group("student_id")
            if assignment not in known:
                try:
                    known[assignment] = {nb.name for nb in gb.find_assignment(assignment).notebooks}
                except MissingEntry:
                    known[assignment] = set()
            if not will_process(converter, assignment, student):
                continue
            for path in sorted(converter.assignments[folder]):
                notebook = os.path.splitext(os.path.basename(path))[0]
                if notebook in known[assignment]:
                    jobs.append(Job(len(jobs), assignment, student, notebook, path))
    with Gradebook(coursedir.db_url):
        pass        # nbgrader's OverwriteCells opens this course too: create it once, here
    return jobs


def will_process(converter, assignment: str, student: str) -> bool:
    """nbgrader's ``init_destination`` decision, without its side effects (a wrong guess
    only costs time: what nbgrader grades is decided by nbgrader)."""
    coursedir = converter.coursedir
    if coursedir.student_id_exclude and student in coursedir.student_id_exclude.split(","):
        return False
    dest = os.path.normpath(converter._format_dest(assignment, student))
    if not os.path.exists(dest) or converter.force:
        return True
    source = converter._format_source(assignment, student)
    new = coursedir.get_existing_timestamp(source)
    old = coursedir.get_existing_timestamp(dest)
    return new is not None and old is not None and new > old


class Run:
    """One autograde run's look-ahead: the jobs, the threads, the progress line."""

    def __init__(self, converter, grader, jobs: list[Job], workers: int, *, content_key,
                 read_submission) -> None:
        # The plugin's own functions, handed over by it (this module never imports it).
        self.content_key, self.read_submission = content_key, read_submission
        self.converter, self.grader, self.jobs = converter, grader, jobs
        self.workers = max(1, workers)
        self.window = 2 * self.workers
        self.index = {(j.assignment, j.student, j.notebook): j.index for j in jobs}
        self.position = 0               # the next job nbgrader has not reached yet
        self.in_flight = 0
        self.stopping = False
        self.cond = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.bar = Progress(len(jobs), stream=sys.stderr, enabled=wanted(sys.stderr, len(jobs)))
        self._logging = log_around(self.bar, _logger(converter))
        self._last = time.monotonic()

    def start(self) -> None:
        from ...engine import pool
        self._logging.__enter__()
        self.bar.draw()
        pool.prestart(min(self.workers, max(1, len(self.jobs))), self.grader.limits, *pool.settings(),
                      total=len(self.jobs))
        if self.workers > 1 and len(self.jobs) > 1:
            for n in range(min(self.workers, len(self.jobs))):
                thread = threading.Thread(target=self._work, name=f"autograder-ahead-{n}", daemon=True)
                thread.start()
                self.threads.append(thread)

    # ------------------------------------------------------------------ grading threads
    def _next(self) -> Job | None:
        """The next job to grade ahead (called with the condition held), or None: stop."""
        while not self.stopping:
            job = next((j for j in self.jobs[self.position:] if j.state == "waiting"), None)
            if job is None:
                return None
            if job.index < self.position + self.window and self.in_flight < self.workers:
                job.state = "running"
                self.in_flight += 1
                return job
            self.cond.wait()
        return None

    def _work(self) -> None:
        while True:
            with self.cond:
                job = self._next()
            if job is None:
                return
            try:
                result = self._grade_ahead(job)
            except BaseException:       # noqa: BLE001 - nbgrader's thread grades it instead
                result = None
            with self.cond:
                if job.state == "running":      # not passed over by nbgrader meanwhile
                    job.result = None if self.stopping else result
                    job.state = "done"
                self.in_flight -= 1
                self.cond.notify_all()

    def _grade_ahead(self, job: Job) -> tuple:
        """Sanitize the submission as nbgrader will, then grade what SandboxGrade will see."""
        content_key, read_submission = self.content_key, self.read_submission
        config = self.converter.config
        resources = {"unique_key": job.notebook, "output_files_dir": f"{job.notebook}_files",
                     "nbgrader": {"student": job.student, "assignment": job.assignment,
                                  "notebook": job.notebook, "db_url": self.converter.coursedir.db_url}}
        sanitize = NotebookExporter(config=config, log=_QUIET)   # nbgrader logs it when it gets there
        for pp in self.converter.sanitize_preprocessors:
            sanitize.register_preprocessor(pp)
        with open(job.path, encoding="utf-8") as f:
            student = read_submission(f, "sanitize")
        text, _ = sanitize.from_notebook_node(student, resources=copy.deepcopy(resources))
        # What the autograde phase hands SandboxGrade, its first preprocessor: nbgrader writes
        # this text, reads it back, and the exporter preprocesses a copy of what it read.
        nb = nbformat.reads(text, as_version=4)
        key = content_key(nb, job.notebook)
        return key, self.grader.grade(nb, job.notebook)

    # ------------------------------------------------------------------ nbgrader's thread
    def take(self, info: dict, key: str):
        """The result graded ahead for the notebook nbgrader has reached, if its content
        is the same and the grader did not fail on it; else None (grade it now)."""
        i = self.index.get((info.get("assignment"), info.get("student"), info.get("notebook")))
        if i is None:
            return None
        with self.cond:
            passed = [j for j in self.jobs[self.position:i] if j.state not in ("taken",)]
            for job in passed:          # nbgrader skipped these (or failed before grading)
                job.state, job.result = "passed", None
            self.bar.total -= len(passed)
            self.position = max(self.position, i + 1)
            self.cond.notify_all()
            job = self.jobs[i]
            if job.state == "waiting":
                job.state = "taken"
                return None
            while job.state == "running":
                self.cond.wait()
            result, job.result, job.state = job.result, None, "taken"
        if result is None:
            return None
        found, graded = result
        where = "{student}/{assignment} ({notebook})".format(**info)
        if found != key:
            self.converter.log.info("%s changed since it was graded ahead: graded again", where)
            return None
        if graded.grader_error is not None:
            self.converter.log.info("%s: the grader failed on it ahead (%s): graded again",
                                    where, graded.grader_error)
            return None
        return graded

    def grade_now(self, grader, nb, name: str):
        """Grade in nbgrader's thread (nothing ahead, or it changed); counts as in flight."""
        with self.cond:
            while self.in_flight >= self.workers and not self.stopping:
                self.cond.wait()
            self.in_flight += 1
        try:
            return grader.grade(copy.deepcopy(nb), name)
        finally:
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()

    def finished(self, info: dict, graded) -> None:
        """Count a notebook nbgrader is done grading on the progress line."""
        now = time.monotonic()
        graded.report.grader_failure = graded.grader_error
        if (info.get("assignment"), info.get("student"), info.get("notebook")) not in self.index:
            self.bar.total += 1
        self.bar.advance(graded.report, now - self._last)
        self._last = now
        self.bar.draw()
        if self.position >= len(self.jobs) and self.bar.done >= self.bar.total:
            stop()

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.bar.close()
        self._logging.__exit__(None, None, None)


def _logger(converter) -> logging.Logger:
    log = converter.log
    return log.logger if isinstance(log, logging.LoggerAdapter) else log
