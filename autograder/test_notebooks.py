"""Placeholder collected by the kit's pytest plugin (autograder/frontends/pytest_plugin.py):
``pytest autograder`` grades the released notebooks (or ``--notebook PATH``) and reports one
test per exercise."""
