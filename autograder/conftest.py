"""``pytest autograder`` in a clone: brings in the kit's pytest front end,
:mod:`autograder.frontends.pytest_plugin`, where the kit is not installed with its entry
points (the plugin is normally loaded through the ``pytest11`` entry point, and then this
file does nothing: registering its hooks twice would define ``--notebook`` twice)."""


def pytest_addoption(parser, pluginmanager):
    from autograder.frontends import pytest_plugin
    if not (pluginmanager.is_registered(pytest_plugin) or pluginmanager.has_plugin("autograder")
            or pluginmanager.is_blocked("autograder")):
        pluginmanager.register(pytest_plugin, "autograder")
