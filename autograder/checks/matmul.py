"""Checks for the matmul notebook (issue 5): not written yet."""
