"""One registry for everything a file may name: classes and functions, keyed by qualified name.

An exported recipe or model stores names, never code; loading looks each name up here and only what is
registered can be built. pipekit's own classes register themselves as ``pipekit.<package>.<Name>``
(the package they are imported from, so moving code between files keeps old exports loadable). A
user's class is never registered by accident: a subclass defined outside pipekit stays unknown until
the user calls :func:`register`, and a name that is taken by another object is refused, so a user's
``class Resize(Transform)`` can neither replace pipekit's ``Resize`` nor be mistaken for it.

Every entry has a *kind* ("transform", "block", "arch", "metric", ...): a lookup says which kind it
expects, so a file cannot make pipekit build a loss where a transform was due.

>>> def shout(x): return str(x).upper()
>>> register(shout, name="doc.shout", kind="function")          # doctest: +ELLIPSIS
<function shout at ...>
>>> lookup("doc.shout", "function") is shout, name_of(shout)
(True, 'doc.shout')
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, TypeVar

from pipekit.core.errors import ParameterError, UnknownNameError

__all__ = ["register", "lookup", "name_of", "registered", "default_name", "import_builtin_packages"]

T = TypeVar("T")

#: pipekit's packages whose import registers their classes (imported by loaders, never named by a file)
BUILTIN_PACKAGES = ("pipekit.data", "pipekit.learn", "pipekit.vision", "pipekit.text", "pipekit.tabular",
                    "pipekit.backends", "pipekit.ensemble", "pipekit.sklearn")

_ENTRIES: dict[str, tuple[str, Any]] = {}  # name -> (kind, object)
_NAMES: dict[int, str] = {}  # id(object) -> name
_SHORT: dict[tuple[str, str], str] = {}  # (kind, short name) -> pipekit name, for records that use short names
_SHORT_ANY: dict[str, str] = {}  # short name -> the first pipekit name registered with it, whatever its kind
#: pipekit's packages whose import failed (a package missing optional dependencies registers nothing): tried once, not
#: again for each of the names a file may hold that are not registered
_FAILED: set[str] = set()
#: what :func:`lookup` raises for a name that is not registered, unless given a ``default``
_RAISE: Any = object()


def default_name(obj: Any) -> str:
    """``pipekit.<package>.<qualname>`` for pipekit's objects, ``<module>.<qualname>`` for anyone else's.

    >>> from collections import OrderedDict
    >>> from pipekit.core.registry import default_name
    >>> from pipekit.data import RandomSplitter
    >>> default_name(RandomSplitter), default_name(OrderedDict)
    ('pipekit.data.RandomSplitter', 'collections.OrderedDict')
    """
    module = getattr(obj, "__module__", None) or "__main__"
    parts = module.split(".")
    if parts[0] == "pipekit" and len(parts) > 1:
        module = ".".join(parts[:2])
    return f"{module}.{obj.__qualname__}"


def register(obj: T | None = None, *, name: str | None = None, kind: str | None = None,
             replace: bool = False) -> Any:
    """Make a class or function loadable by name; refuses a name already taken by another object.

    Usable as ``register(MyClass)``, ``@register`` or ``@register(name="my.name")``. ``kind`` defaults to
    the ``registry_kind`` of the class (components declare it); functions must give one. ``replace=True``
    lets a new definition take over its own name (a notebook cell that defines the class again).

    >>> import pipekit
    >>> from pipekit.core import ParameterError
    >>> from pipekit.core import lookup
    >>> def double(x): return 2 * x
    >>> _ = pipekit.register(double, name="mylib.double", kind="function", replace=True)  # a cell run again: its own
    >>> lookup("mylib.double", "function")(21)
    42
    >>> try:
    ...     pipekit.register(lambda x: x, name="mylib.double", kind="function")
    ... except ParameterError as e:
    ...     print(str(e)[:44])
    register: the name 'mylib.double' is already
    """
    if obj is None:
        return lambda o: register(o, name=name, kind=kind, replace=replace)
    kind = kind or getattr(obj, "registry_kind", None)
    if not kind:
        raise ParameterError(f"register({obj!r}): give kind= (e.g. 'metric', 'arch'); only components know theirs")
    key = name or default_name(obj)
    old = _ENTRIES.get(key)
    if old is not None and old[1] is not obj and replace:
        _NAMES.pop(id(old[1]), None)
    elif old is not None and old[1] is not obj:
        prev, what = old[1], getattr(obj, "__qualname__", None) or type(obj).__name__
        was = f"{getattr(prev, '__module__', None) or '?'}.{getattr(prev, '__qualname__', None) or type(prev).__name__}"
        given = "" if name is None else f", name={key!r}"
        if default_name(prev) == default_name(obj):  # the same module and name: a definition run again
            raise ParameterError(
                f"register: the name {key!r} is already taken by an earlier definition of {what} (a notebook cell or "
                f"script run again defines it anew); pass replace=True to let this definition take it over, "
                f"register({what}{given}, replace=True), or register it under another name, "
                f"register({what}, name='mypackage.{what}')")
        raise ParameterError(
            f"register: the name {key!r} is already taken by {was}, another object; register {what} under another "
            f"name, register({what}, name='mypackage.{what}'), or pass replace=True to let it take the name over, "
            f"register({what}{given}, replace=True)")
    if id(obj) in _NAMES and _NAMES[id(obj)] != key:
        raise ParameterError(f"register: {obj!r} is already registered as {_NAMES[id(obj)]!r}")
    _ENTRIES[key] = (kind, obj)
    _NAMES[id(obj)] = key
    if key.startswith("pipekit."):
        _SHORT.setdefault((kind, key.rsplit(".", 1)[1]), key)
        _SHORT_ANY.setdefault(key.rsplit(".", 1)[1], key)
    return obj


def import_builtin_packages() -> None:
    """Import pipekit's own packages so their classes are registered (a fixed list, never read from a file).

    >>> from pipekit.core.registry import import_builtin_packages, registered
    >>> import_builtin_packages()
    >>> "pipekit.vision.Resize" in registered("transform"), "pipekit.learn.Learner" in registered()
    (True, True)
    """
    for mod in BUILTIN_PACKAGES:
        _import(mod)


def _import(mod: str) -> bool:
    """Import pipekit's package ``mod`` unless it is imported already or its import failed before (see ``_FAILED``);
    whether this call imported it."""
    if mod in sys.modules or mod in _FAILED:
        return False
    try:
        importlib.import_module(mod)
    except ImportError:
        _FAILED.add(mod)
        return False
    return True


def lookup(name: str, kind: str | None = None, base: type | None = None, not_kinds: tuple[str, ...] = (),
           default: Any = _RAISE) -> Any:
    """The object registered as ``name`` (of kind ``kind``, a subclass of ``base``, of none of ``not_kinds``); an
    error that says how to register it otherwise, or ``default`` when given and no object is registered as ``name``
    (the error's list of registered names is then never made: a file may name many classes that are not).

    pipekit's own packages are imported on a miss, so a loader needs no import by the user. A short name
    (``"Categorize"``) finds pipekit's own class of that name, as records written by pipekit 0.1 name them. Each
    try is a dictionary lookup, whatever the name.

    >>> from pipekit.core import UnknownNameError
    >>> from pipekit.core import lookup
    >>> lookup("pipekit.data.RandomSplitter", "splitter").__name__, lookup("Categorize", "transform").__name__
    ('RandomSplitter', 'Categorize')
    >>> for name, kind in [("pipekit.data.RandomSplitter", "transform"), ("mylib.Missing", None)]:
    ...     try:
    ...         lookup(name, kind)
    ...     except UnknownNameError as e:
    ...         print(str(e)[:59])
    'pipekit.data.RandomSplitter' is a registered splitter, not
    object 'mylib.Missing' is not registered, so it cannot be r
    >>> lookup("mylib.Missing", default=None) is None
    True
    """
    if not isinstance(name, str):
        raise UnknownNameError(f"a registered name must be text, got {name!r:.80}")
    what = kind or (base.__name__ if base is not None else "object")

    def find() -> Any:
        key = name
        if "." not in name:
            key = (_SHORT_ANY.get(name) if kind is None else _SHORT.get((kind, name))) or name
        entry = _ENTRIES.get(key)
        if entry is None:
            return None
        if kind is not None and entry[0] != kind:
            raise UnknownNameError(f"{name!r} is a registered {entry[0]}, not a {kind}")
        if entry[0] in not_kinds:
            raise UnknownNameError(f"{name!r} is a registered {entry[0]}, which cannot stand here")
        if base is not None and not (isinstance(entry[1], type) and issubclass(entry[1], base)):
            raise UnknownNameError(f"{name!r} is registered but is not a {base.__name__}")
        return entry

    entry = find()
    # on a miss, pipekit's own packages are imported one at a time (the one a pipekit name points into
    # first), so loading a learner does not import every domain
    own = ".".join(name.split(".")[:2]) if name.startswith("pipekit.") else None
    for mod in ([own] if own in BUILTIN_PACKAGES else []) + list(BUILTIN_PACKAGES):
        if entry is not None:
            break
        if _import(mod):  # one imported already (or that failed to) holds nothing new for this name
            entry = find()
    if entry is not None:
        return entry[1]
    if default is not _RAISE:
        return default
    known = sorted(k for k, (kd, o) in _ENTRIES.items() if kind in (None, kd)
                   and (base is None or (isinstance(o, type) and issubclass(o, base))))
    raise UnknownNameError(
        f"{what} {name!r} is not registered, so it cannot be rebuilt. If it is your own class or function, "
        f"import the module that defines it and call pipekit.register(it) (under that name) before loading. "
        f"Registered: {', '.join(known[:30])}{' ...' if len(known) > 30 else ''}")


def name_of(obj: Any) -> str:
    """The name ``obj`` (a class or function) is registered under; an error saying how to register it.

    >>> from pipekit.core import UnknownNameError
    >>> from pipekit.core import name_of
    >>> from pipekit.data import RandomSplitter
    >>> name_of(RandomSplitter)
    'pipekit.data.RandomSplitter'
    >>> def label(x): return x
    >>> try:
    ...     name_of(label)
    ... except UnknownNameError as e:
    ...     print(e)
    label is not registered, so a file cannot name it: call pipekit.register(label, kind='function') once, ...
    """
    key = _NAMES.get(id(obj))
    if key is None or _ENTRIES.get(key, (None, None))[1] is not obj:
        what = getattr(obj, "__qualname__", type(obj).__name__)
        kind = "" if getattr(obj, "registry_kind", None) else ", kind='function'"  # a component knows its kind
        raise UnknownNameError(f"{what} is not registered, so a file cannot name it: call "
                               f"pipekit.register({what}{kind}) once, after defining it (and before loading, in the "
                               "process that loads the file), to make it exportable")
    return key


def registered(kind: str | None = None) -> dict[str, Any]:
    """Every registered object (of one ``kind``), by name.

    >>> from pipekit.core import registered
    >>> splitters = registered("splitter")
    >>> splitters["pipekit.data.RandomSplitter"].__name__, "pipekit.data.Categorize" in splitters
    ('RandomSplitter', False)
    """
    return {k: obj for k, (kd, obj) in sorted(_ENTRIES.items()) if kind is None or kd == kind}

