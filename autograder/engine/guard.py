"""The from-scratch rule at run time: does the exercise's own code call a banned operator?

:mod:`autograder.static` reads a cell's source, so it cannot see a banned operator
reached through ``importlib.import_module``, ``getattr`` with a built string, ``eval``,
``__import__``, an alias made in another cell, or a helper function of another cell.
This module watches the calls instead, while one exercise's code runs (its cell when the
notebook runs, and the grader's snippets that call its functions).

For that time, :func:`watching` replaces each callable the exercise's rule bans by a
thin wrapper: the functions of the banned modules (``torch.nn.init``, ...), the banned
functions (``torch.relu``, ``torch.matmul``, ...), calling the banned modules' classes
(``nn.Module.__call__``: any layer), and the banned methods of ``torch.Tensor``
(``@`` is ``Tensor.__matmul__``); in their modules and classes, and wherever the
notebook's own names hold one (a global alias, a list, a default argument, a closure,
a class or instance attribute). Afterwards everything is put back.

A wrapper looks at the Python frame that called it and walks outwards through the
student's code (the notebook's functions, strings it ``eval``-ed) until it reaches the
exercise's own code: code compiled from the exercise's cell, including the functions,
lambdas and nested functions defined there. That is a violation, recorded with the line
of the exercise's cell. The walk stops, and nothing is recorded, at a library's code
(PyTorch calling the operator itself: ``nn.Conv2d`` runs ``init.kaiming_uniform_`` in
``reset_parameters``), at the grader's snippets, and at another exercise's cell (that
exercise answers for its own code). Ungraded cells are never watched when they run.

This runs on the student's side (a grading worker, or the student's kernel for
``check()``), single-threaded, and answers in plain data. It cannot see what is not a
Python-level call (numpy's ``@``, a reference hidden outside the notebook's names before
the exercise runs, torch's private ``torch._C`` entry points), and code that sets out to
disable the guard itself runs in the same process as the guard: the static rule, which
bans the kit's names in solution cells, is the first line there.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from typing import Any, Iterator

__all__ = ["watching", "Watch"]

MAX_FRAMES = 64             # frames followed outwards from a call
MAX_ITEMS = 10_000          # items of one container searched for a stored banned callable
SEARCH_DEPTH = 4            # containers within containers searched
_MISSING = object()
_OPERATOR_METHODS = {"__matmul__": "@", "__rmatmul__": "@", "__imatmul__": "@="}

_ACTIVE: "Watch | None" = None          # the watch of the code running now
_WRAPPERS: dict[int, tuple[Any, Any, str]] = {}    # id(original) -> (original, its wrapper, name)
_ORIGINALS: dict[int, Any] = {}                # id(wrapper) -> original
_TARGETS: dict[tuple, tuple[int, frozenset, "_Plan"]] = {}  # rule -> (modules, those it covers, plan)


def _wrapper(original: Any, name: str):
    """The one wrapper of ``original`` (made once, reused by every watch)."""
    known = _WRAPPERS.get(id(original))
    if known is not None and known[0] is original:
        return known[1]     # with the name it was made with (see _Plan.names)

    def guarded(*args, **kwargs):
        watch = _ACTIVE
        if watch is not None and name in watch.names:
            watch.called(name, sys._getframe(1))
        return original(*args, **kwargs)

    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(guarded, attr, getattr(original, attr))
        except (AttributeError, TypeError):
            pass
    _WRAPPERS[id(original)] = (original, guarded, name)
    _ORIGINALS[id(guarded)] = original
    return guarded


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _resolve(prefixes: tuple[str, ...], methods: tuple[str, ...], allowed: tuple[str, ...]):
    """What to wrap for a rule: ``(owner, attribute, original, name)`` for each place a
    banned callable lives, and the banned originals by id (with their names)."""
    found: dict[tuple[int, str], tuple[Any, str, Any]] = {}
    names: dict[int, str] = {}
    searched: set[int] = set()          # the originals also looked for among the notebook's names

    def add(owner, attr, original, name, search=True):
        original = _ORIGINALS.get(id(original), original)
        if any(_under(name, a) for a in allowed):
            return
        if id(original) not in names or len(name) < len(names[id(original)]):
            names[id(original)] = name
        if search:
            searched.add(id(original))
        found[(id(owner), attr)] = (owner, attr, original)

    for prefix in prefixes:
        # the public modules under the prefix (torch.nn, torch.nn.functional, torch.nn.init, ...)
        modules = sorted((m for n, m in list(sys.modules.items())
                          if isinstance(m, types.ModuleType) and _under(n, prefix)
                          and not any(part.startswith("_") for part in n[len(prefix):].split("."))),
                         key=lambda m: m.__name__)
        for module in modules:
            top = module.__name__ == prefix
            for attr, value in list(vars(module).items()):
                if attr.startswith("__"):
                    continue
                full = f"{module.__name__}.{attr}"
                if isinstance(value, types.FunctionType) and _under(getattr(value, "__module__", "") or "", prefix):
                    add(module, attr, value, full)
                elif isinstance(value, types.BuiltinFunctionType):
                    # torch's own functions re-exported here (F.conv2d is torch.conv2d) are
                    # banned as spelled through this module, not wherever they are kept
                    add(module, attr, value, full, search=False)
                elif top and isinstance(value, type) and _under(value.__module__, prefix):
                    # calling an instance of the module's classes (any nn.Module: a layer made
                    # anywhere does its work when called)
                    method = vars(value).get("__call__")
                    if isinstance(method, types.FunctionType):
                        add(value, "__call__", method, full)
        if not modules:                 # a single function: torch.relu, operator.matmul
            head, _, attr = prefix.rpartition(".")
            owner = sys.modules.get(head)
            value = getattr(owner, attr, None) if owner is not None else None
            if callable(value) and not isinstance(value, type):
                add(owner, attr, value, prefix)
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)
    for method in methods if tensor is not None else ():
        value = getattr(tensor, method, None)
        if callable(value) and not isinstance(value, (property, type)):
            add(tensor, method, value, _OPERATOR_METHODS.get(method, f".{method}()"))
    targets = [(owner, attr, original, names[id(original)]) for owner, attr, original in found.values()]
    return targets, {i: n for i, n in names.items() if i in searched}


class _Plan:
    """What a rule wraps, grouped by the module or class that holds it (made once per rule)."""

    def __init__(self, targets: list, banned: dict[int, str]) -> None:
        groups: dict[int, tuple[Any, dict, dict]] = {}
        for owner, attr, original, name in targets:
            _, originals, wrappers = groups.setdefault(id(owner), (owner, {}, {}))
            originals[attr], wrappers[attr] = original, _wrapper(original, name)
        # the names the wrappers report (a wrapper keeps the name it was first made with)
        self.names = {_WRAPPERS[id(original)][2] for _, _, original, _ in targets}
        self.banned = {i: _WRAPPERS[i][2] if i in _WRAPPERS else name for i, name in banned.items()}
        self.modules = [(vars(o), a, w) for o, a, w in groups.values() if type(vars(o)) is dict]
        self.classes = [(o, a, w) for o, a, w in groups.values() if type(vars(o)) is not dict]


def _plan(rule: dict) -> _Plan:
    """The rule's plan, cached until a module under one of its prefixes is imported."""
    key = (tuple(rule.get("prefixes", ())), tuple(rule.get("methods", ())), tuple(rule.get("allowed", ())))
    cached = _TARGETS.get(key)
    if cached is not None and cached[0] == len(sys.modules):
        return cached[2]
    covered = frozenset(n for n in list(sys.modules) if any(_under(n, p) or _under(p, n) for p in key[0]))
    if cached is None or cached[1] != covered:
        cached = (len(sys.modules), covered, _Plan(*_resolve(*key)))
    _TARGETS[key] = (len(sys.modules), covered, cached[2])
    return cached[2]


class Watch:
    """One exercise's code running: where it lives, what it may not call, what it called."""

    def __init__(self, rule: dict, cells, stops, namespace: dict) -> None:
        self.plan = _plan(rule)
        self.banned = self.plan.banned
        self.methods = {m for m in rule.get("methods", ())}
        self.names = self.plan.names | {_OPERATOR_METHODS.get(m, f".{m}()") for m in self.methods}
        self.cells = frozenset(cells)
        self.stops = frozenset(stops) - self.cells
        self.ns = namespace
        self.found: dict[str, int] = {}     # name -> line of the exercise's cell
        self._undo: list = []

    # ------------------------------------------------------------------ the call
    def called(self, name: str, frame) -> None:
        """A banned callable was called from ``frame``: is that the exercise's own code?"""
        if name in self.found:
            return
        for _ in range(MAX_FRAMES):
            if frame is None:
                return
            filename = frame.f_code.co_filename
            if filename in self.cells:
                self.found[name] = frame.f_lineno
                return
            if filename in self.stops or filename.startswith("<grader"):
                return
            if not (filename.startswith("<") or frame.f_globals is self.ns):
                return                  # a library's code, PyTorch's own or the kit's
            frame = frame.f_back

    @property
    def violations(self) -> list[dict]:
        return [{"name": name, "line": line} for name, line in self.found.items()]

    # ------------------------------------------------------------------ wrapping
    def install(self) -> None:
        for namespace, originals, wrappers in self.plan.modules:
            # in bulk: only what still holds the original (the student may have replaced it)
            swap = {attr: wrappers[attr] for attr, original in originals.items()
                    if namespace.get(attr, _MISSING) is original}
            namespace.update(swap)
            self._undo.append((self._put_back_module, namespace, swap, originals))
        for cls, originals, wrappers in self.plan.classes:
            for attr in originals:
                before = vars(cls).get(attr, _MISSING)
                try:
                    setattr(cls, attr, wrappers[attr])
                except (AttributeError, TypeError):
                    continue
                self._undo.append((self._put_back_attr, cls, attr, before, wrappers[attr]))
        self._visited: set[int] = set()
        self._fix_dict(self.ns, SEARCH_DEPTH)
        del self._visited

    def uninstall(self) -> None:
        while self._undo:
            restore, *args = self._undo.pop()
            try:
                restore(*args)
            except (AttributeError, TypeError, ValueError):
                pass

    @staticmethod
    def _put_back_module(namespace: dict, swapped: dict, originals: dict) -> None:
        namespace.update({attr: originals[attr] for attr, wrapper in swapped.items()
                          if namespace.get(attr, _MISSING) is wrapper})

    @staticmethod
    def _put_back_attr(owner, attr, before, wrapper) -> None:
        if vars(owner).get(attr, _MISSING) is not wrapper:
            return                      # the student's code replaced it meanwhile: theirs stays
        if before is _MISSING:
            delattr(owner, attr)
        else:
            setattr(owner, attr, before)

    @staticmethod
    def _put_back_item(container, key, before, wrapper) -> None:
        current = container.get(key, _MISSING) if isinstance(container, dict) else container[key]
        if current is not wrapper:
            return                      # the student's code replaced it meanwhile: theirs stays
        if before is _MISSING:
            del container[key]
        else:
            container[key] = before

    # ------------------------------------------------------------------ stored references
    def _banned_name(self, value) -> str | None:
        """The name of ``value`` when it is a banned callable (an original, not a wrapper)."""
        name = self.banned.get(id(value))
        if name is not None:
            return name
        kind = type(value)
        if kind is types.BuiltinMethodType and self.methods and getattr(value, "__name__", None) in self.methods:
            tensor = getattr(sys.modules.get("torch"), "Tensor", None)
            if tensor is not None and isinstance(getattr(value, "__self__", None), tensor):
                return _OPERATOR_METHODS.get(value.__name__, f".{value.__name__}()")
        return None

    def _replacement(self, value, depth: int):
        """A stand-in for ``value`` when it is, or immutably holds, a banned callable;
        mutable holders are changed in place (and put back afterwards)."""
        name = self._banned_name(value)
        if name is not None:
            return _wrapper(value, name)
        if depth <= 0 or id(value) in self._visited:
            return None
        kind = type(value)
        if kind in (str, bytes, int, float, bool, complex, type(None), types.ModuleType, range):
            return None
        self._visited.add(id(value))
        if kind is dict:
            self._fix_dict(value, depth - 1)
        elif kind is list:
            for i, item in enumerate(value[:MAX_ITEMS]):
                new = self._replacement(item, depth - 1)
                if new is not None:
                    value[i] = new
                    self._undo.append((self._put_back_item, value, i, item, new))
        elif kind is tuple:
            items = [self._replacement(item, depth - 1) for item in value[:MAX_ITEMS]]
            if any(item is not None for item in items):
                return tuple(new if new is not None else old for new, old in zip(items, value)) + value[MAX_ITEMS:]
        elif kind is functools.partial:
            func = self._replacement(value.func, depth - 1)
            args = self._replacement(value.args, depth - 1)
            if func is not None or args is not None:
                return functools.partial(func or value.func, *(args or value.args), **value.keywords)
        elif kind is types.MethodType:
            func = self._replacement(value.__func__, depth - 1)
            if func is not None:
                return types.MethodType(func, value.__self__)
        elif kind is types.FunctionType:
            self._fix_function(value, depth - 1)
        elif isinstance(value, type):
            if value.__module__ == self.ns.get("__name__"):
                self._fix_class(value, depth - 1)
        elif type(kind).__module__ == "builtins" and kind.__module__ == self.ns.get("__name__"):
            attrs = getattr(value, "__dict__", None)
            if type(attrs) is dict:
                self._fix_dict(attrs, depth - 1)
        return None

    def _fix_dict(self, mapping: dict, depth: int) -> None:
        for key, item in list(mapping.items())[:MAX_ITEMS]:
            new = self._replacement(item, depth)
            if new is not None:
                mapping[key] = new
                self._undo.append((self._put_back_item, mapping, key, item, new))

    def _fix_function(self, fn: types.FunctionType, depth: int) -> None:
        """A notebook function's defaults and closure (library functions are left alone)."""
        filename = fn.__code__.co_filename
        if filename.startswith("<grader") or not (fn.__globals__ is self.ns or filename.startswith("<")):
            return
        if fn.__defaults__:
            new = self._replacement(fn.__defaults__, depth)
            if new is not None:
                before, fn.__defaults__ = fn.__defaults__, new
                self._undo.append((self._put_back_defaults, fn, before, new))
        if fn.__kwdefaults__:
            self._fix_dict(fn.__kwdefaults__, depth)
        for cell in fn.__closure__ or ():
            try:
                item = cell.cell_contents
            except ValueError:          # not bound yet
                continue
            new = self._replacement(item, depth)
            if new is not None:
                cell.cell_contents = new
                self._undo.append((self._put_back_cell, cell, item, new))

    def _fix_class(self, cls: type, depth: int) -> None:
        for attr, item in list(vars(cls).items()):
            if isinstance(item, (staticmethod, classmethod)):
                new = self._replacement(item.__func__, depth)
                new = type(item)(new) if new is not None else None
            else:
                new = self._replacement(item, depth)
                if isinstance(new, types.FunctionType) and not isinstance(item, types.FunctionType):
                    new = staticmethod(new)     # a builtin kept on a class is not bound; its stand-in neither
            if new is not None:
                try:
                    setattr(cls, attr, new)
                except (AttributeError, TypeError):
                    continue
                self._undo.append((self._put_back_attr, cls, attr, item, new))

    @staticmethod
    def _put_back_defaults(fn, before, new) -> None:
        if fn.__defaults__ is new:
            fn.__defaults__ = before

    @staticmethod
    def _put_back_cell(cell, before, new) -> None:
        if cell.cell_contents is new:
            cell.cell_contents = before


@contextlib.contextmanager
def watching(spec: dict | None, namespace: dict) -> Iterator[Watch | None]:
    """Watch the exercise described by ``spec`` (plain data: ``rule`` with ``prefixes``,
    ``methods`` and ``allowed``; ``cells``, the file names of its code; ``stops``, those
    of the other exercises' code) while the body runs; ``None`` watches nothing.

    The :class:`Watch` yielded holds the violations afterwards; ``None`` is yielded when
    there is nothing to watch, or when the guard could not be set up (its own failure is
    never charged to the student: nothing is recorded).
    """
    global _ACTIVE
    watch = None
    if spec:
        try:
            watch = Watch(spec.get("rule") or {}, spec.get("cells") or (), spec.get("stops") or (), namespace)
            watch.install()
        except Exception:       # the guard's own failure must never become the student's error
            if watch is not None:
                watch.uninstall()
            watch = None
    if watch is None:
        yield None
        return
    previous = _ACTIVE
    try:
        _ACTIVE = watch
        yield watch
    finally:
        _ACTIVE = previous
        watch.uninstall()
