"""The nbgrader front end: preprocessors and exporters named in ``nbgrader_config.py``.

* :mod:`.plugin`: ``SandboxGrade`` (replaces nbgrader's ``Execute``), the safe and
  offline exporters, and the small preprocessors around them;
* :mod:`.ahead`: ``nbgrader autograde`` in parallel, grading ahead of nbgrader;
* :mod:`.figures`: the check figures in feedback and formgrader.

The classes are re-exported here, so the configuration can name them as
``autograder.frontends.nbgrader.SandboxGrade``. Importing this package imports nbgrader.
"""

from .plugin import (AddGradingNotes, CheckCellMetadataOnce, OfflineFeedbackExporter, SafeNotebookExporter,
                     SandboxGrade, ScrubHiddenFeedback, StripOrphanMetadata, ZeroMissingGrades)

__all__ = ["AddGradingNotes", "CheckCellMetadataOnce", "OfflineFeedbackExporter", "SafeNotebookExporter",
           "SandboxGrade", "ScrubHiddenFeedback", "StripOrphanMetadata", "ZeroMissingGrades"]
