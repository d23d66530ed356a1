"""Checks for the backward notebook (issue 5): not written yet."""
