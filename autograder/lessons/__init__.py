"""The lessons that come with the kit, each in one folder, written only against
:mod:`autograder.authoring` and found through the ``foundations_autograder.lessons``
entry-point group like anyone else's (see :mod:`autograder.engine.discovery`)."""
