"""Gradescope: the autograder bundle (:mod:`.bundle`) and what runs inside it (:mod:`.run`).

``python -m autograder gradescope [NOTEBOOK ...] -o autograder.zip`` builds the zip that
Gradescope's autograder specification asks for; Gradescope runs its ``setup.sh`` once
and its ``run_autograder`` for every submission, which writes ``results/results.json``.
See docs/gradescope.md.
"""
