"""nbgrader feedback: draw the figures of each test cell's visible checks.

During ``autograde``, :class:`~autograder.frontends.nbgrader.plugin.SandboxGrade` leaves on a test
cell one ``display_data`` of :data:`autograder.reports.cards.MIME` per visible check: a few
numbers (histogram counts, relative errors, timings), never a picture, so grading a
class pays for no plotting. ``generate_feedback`` runs :class:`FeedbackFigures` (after
``ClearHiddenTests``), which turns each into a ``text/html`` card holding the "expected
vs got" table and the figures as ``data:`` URIs: the page stays one offline file.
Formgrader runs it too (``c.HTMLExporter.preprocessors`` in the course configuration),
so an instructor opening a submission sees the same cards.

Hidden checks leave nothing (the grader records the visible part of a cell only), and
every string in a card is escaped.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from ...reports.cards import MIME, render_feedback_output

__all__ = ["FeedbackFigures"]


def _is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


class FeedbackFigures(Preprocessor):
    """Evidence outputs of test cells become cards with figures; anywhere else they go."""

    enabled = Bool(True, help="nbconvert runs a preprocessor only when it is enabled.").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.get("cell_type") != "code":
            return cell, resources
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") != "display_data" or MIME not in out.get("data", {}):
                kept.append(out)
            elif _is_test_cell(cell) and render_feedback_output(out):
                kept.append(out)
        cell.outputs = kept
        return cell, resources
