"""Lesson 8 of "deep learning from the foundations": a fully connected network from scratch.

Notebooks (sources in ``assignments/lesson8/``, released in ``release/lesson8/``):
``01_matmul``, ``02_fully_connected``, ``03_backward`` (with the ``Module`` refactor),
``04_init_in_pytorch`` and ``05_cross_entropy``. Each module here holds one notebook's checks;
``extras`` holds what its figures need beyond the checks; ``mutants`` and ``seed_sweep`` what
the author's self-test (``python -m autograder lint-lesson lesson8``) needs. Declared in
``pyproject.toml`` under the
``foundations_autograder.lessons`` entry-point group, as any lesson is.
"""

from ...authoring import Lesson

lesson = Lesson("lesson8", title="A fully connected network from scratch, on MNIST")

# Each module declares its notebook's exercises on ``lesson``.
from . import matmul, fully_connected, backward, module, init_pytorch, cross_entropy, extras  # noqa: E402,F401,I001
from . import mutants, seed_sweep  # noqa: E402,F401,I001
