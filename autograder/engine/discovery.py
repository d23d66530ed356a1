"""Finding lessons: installed packages' entry points, and local lesson folders.

A lesson is found, not imported by name (the engine and the front ends never import
one). Two places are looked at, in this order:

* the entry-point group :data:`GROUP` of every installed distribution, each entry naming
  a :class:`~autograder.engine.registry.Lesson` object (the kit declares its own lesson 8
  there too, in ``pyproject.toml``);
* local lesson folders that are not installed: the paths in ``AUTOGRADER_LESSONS``
  (separated by ``os.pathsep``), given on the command line as ``--lesson PATH``, in
  pytest as ``--lesson PATH``, or in ``nbgrader_config.py`` as ``c.SandboxGrade.lessons``.
  A folder is a Python package (``__init__.py``) whose ``lesson`` attribute is the
  :class:`Lesson`; its modules import each other relatively.

:func:`load` is idempotent and cheap after the first call. A broken lesson, or two that
define the same exercise, raise :class:`~autograder.engine.registry.LessonError`: a
grader error at start-up, never a silent override.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path

from . import registry
from .registry import Lesson, LessonError

__all__ = ["GROUP", "ENV", "load", "add_paths", "load_folder", "lessons"]

GROUP = "foundations_autograder.lessons"
ENV = "AUTOGRADER_LESSONS"

_lock = threading.RLock()
_done_entry_points = False
_folders: dict[Path, Lesson] = {}


def add_paths(paths) -> None:
    """Add local lesson folders for this process and the processes it starts."""
    paths = [str(Path(p).expanduser().resolve()) for p in paths if str(p)]
    if not paths:
        return
    known = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    os.environ[ENV] = os.pathsep.join(dict.fromkeys(known + paths))
    load()


def load() -> dict[str, Lesson]:
    """Install every discovered lesson into the catalogue; return them by name."""
    global _done_entry_points
    with _lock:
        if not _done_entry_points:
            for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
                try:
                    lesson = ep.load()
                except Exception as exc:
                    raise LessonError(f"the lesson {ep.name} ({ep.value}) could not be loaded: "
                                      f"{type(exc).__name__}: {exc}") from exc
                _install(lesson, f"entry point {ep.name} = {ep.value}")
            _done_entry_points = True
        for folder in [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]:
            load_folder(folder)
        return dict(registry.LESSONS)


def load_folder(folder) -> Lesson:
    """Load the lesson package in ``folder`` (once per folder)."""
    path = Path(folder).expanduser().resolve()
    with _lock:
        if path in _folders:
            return _folders[path]
        init = path / "__init__.py"
        if not init.is_file():
            raise LessonError(f"{path} is not a lesson folder: it has no __init__.py "
                              "(a lesson is a package whose `lesson` attribute is a Lesson)")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        name = f"autograder_local_lessons.{path.name.replace('-', '_')}_{digest}"
        if "autograder_local_lessons" not in sys.modules:
            import types
            sys.modules["autograder_local_lessons"] = types.ModuleType("autograder_local_lessons")
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(path)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise LessonError(f"the lesson folder {path} could not be loaded: "
                              f"{type(exc).__name__}: {exc}") from exc
        lesson = getattr(module, "lesson", None)
        _install(lesson, f"folder {path}")
        _folders[path] = lesson
        return lesson


def _install(lesson, origin: str) -> None:
    if not isinstance(lesson, Lesson):
        raise LessonError(f"{origin} does not name a Lesson (got {type(lesson).__name__})")
    if not lesson.origin:
        lesson.origin = origin
    registry.install(lesson)


def lessons() -> dict[str, Lesson]:
    """The discovered lessons by name (loading them first)."""
    return load()
