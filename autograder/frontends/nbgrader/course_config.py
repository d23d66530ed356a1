"""nbgrader configuration for the course (nbgrader 0.9.6).

The kit ships this file: `python -m autograder nbgrader-config [DIR]` writes it into a
course directory (the copy at the root of the kit's repository is the same bytes).

Every path is computed from this file's location, so a command run from a subfolder
(or with ``--CourseDirectory.root``) never creates a stray empty gradebook, and a copy
of the course in another directory uses its own gradebook. Run nbgrader with the
virtual environment's ``bin`` on ``PATH`` (creating a gradebook runs ``alembic``).

Autograding never starts a Jupyter kernel: ``autograder.frontends.nbgrader.plugin.SandboxGrade``
replaces ``Execute``, runs the student's cells in a confined worker and the test cells'
checks in the grader. See ``autograder/frontends/nbgrader/plugin.py`` for each step.
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

_ROOT = os.path.dirname(os.path.abspath(__file__))
_PLUGIN = "autograder.frontends.nbgrader."

c.CourseDirectory.course_id = "dl-foundations"
c.CourseDirectory.root = _ROOT
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_ROOT, "gradebook.db")
c.CourseDirectory.source_directory = "assignments"
c.CourseDirectory.release_directory = "release"
# nbgrader's solution folder is left at its default: solutions/ holds the kit's own files.

# nbconvert validates the whole notebook after every preprocessor; this validates it once,
# after the last: the same check (a broken notebook still stops there), done once per notebook.
c.Exporter.optimistic_validation = True

# ---------------------------------------------------------------- autograde
# Unreadable submissions (invalid JSON, ...) are graded as empty notebooks (every test 0,
# with the reason shown) instead of aborting that student's run.
c.Autograde.exporter_class = _PLUGIN + "SafeNotebookExporter"

c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",       # locked cells (all tests) back from the gradebook
    _PLUGIN + "StripOrphanMetadata",               # changed grade_id: ordinary cell, not a crash
    _PLUGIN + "CheckCellMetadataOnce",             # nbgrader's CheckCellMetadata, each metadata once
]
c.Autograde.autograde_preprocessors = [
    _PLUGIN + "SandboxGrade",                      # replaces nbgrader.preprocessors.Execute
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    _PLUGIN + "ZeroMissingGrades",                 # after SaveAutoGrades: no stale score on --force
    "nbgrader.preprocessors.AssignLatePenalties",
    _PLUGIN + "AddGradingNotes",
    _PLUGIN + "CheckCellMetadataOnce",
]

# Time limits, mapped onto autograder.engine.sandbox.Limits.
c.SandboxGrade.cell_timeout = 60          # seconds per student cell / per check's call
c.SandboxGrade.notebook_timeout = 600     # seconds for all of one notebook's student code
# Notebooks graded at once: 0 = one per core; 1 = one after another in nbgrader's thread.
# The gradebook is the same either way (see autograder/frontends/nbgrader/ahead.py).
c.SandboxGrade.workers = 0
# A failed hidden test shows its teaching message (never its source); False: a generic line.
c.SandboxGrade.show_hidden_messages = True

# ---------------------------------------------------------------- formgrader
# Formgrader shows an autograded notebook through nbconvert's HTMLExporter with this
# configuration: each visible check's figures are drawn there too, as in the feedback
# (instead of the placeholder "figures for this check are drawn in the feedback").
c.HTMLExporter.preprocessors = ["autograder.frontends.nbgrader.figures.FeedbackFigures"]

# ---------------------------------------------------------------- feedback
# No hidden test source or output, and self-contained HTML (no CDN script).
c.GenerateFeedback.exporter_class = _PLUGIN + "OfflineFeedbackExporter"
c.OfflineFeedbackExporter.preprocessors = []   # not formgrader's: the list below, in its order
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    _PLUGIN + "ScrubHiddenFeedback",               # before ClearHiddenTests: needs the delimiters
    "nbgrader.preprocessors.ClearHiddenTests",
    "autograder.frontends.nbgrader.figures.FeedbackFigures",   # each visible check's figures, drawn here
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
