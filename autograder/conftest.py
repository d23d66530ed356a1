"""``pytest autograder`` in a clone: the kit's pytest front end, collected from here.

The front end itself is :mod:`autograder.frontends.pytest_plugin`; this file only
brings its hooks into the folder pytest is pointed at.
"""

from autograder.frontends.pytest_plugin import *  # noqa: F401,F403
from autograder.frontends.pytest_plugin import (pytest_addoption, pytest_configure,  # noqa: F401
                                                pytest_pycollect_makemodule, pytest_sessionfinish,
                                                pytest_unconfigure)
