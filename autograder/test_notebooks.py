"""Placeholder collected by ``autograder/conftest.py``: ``pytest autograder`` grades
the released notebooks (or ``--notebook PATH``) and reports one test per exercise."""
