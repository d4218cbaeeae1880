"""The one contract of every configurable piece: transforms, blocks, getters, splitters, procs, backends,
ensembles, losses, metrics and callbacks with state.

- **Parameters** are exactly the ``__init__`` arguments, stored under the same names and never changed
  by fitting: ``get_params()``, ``set_params()``, ``clone()`` (an unfitted copy) and ``repr`` read them.
- **Learned state** lives only in attributes ending in ``_`` (``vocab_``, ``mean_``, ``classes_``), set
  by ``setup``/``fit``; ``check_is_fitted()`` raises :class:`NotFittedError` when there is none.
- **Records**: ``to_record()`` gives ``{"class", "params", "state"}`` as plain data (arrays set aside in
  a dict) and ``from_record()`` rebuilds it. Rebuilding goes through the registry only: a record can
  name nothing that pipekit (or the user, explicitly) did not register, and its parameters must be
  parameters of that class.
- **Older records**: a field added to a class's record later is declared in ``record_defaults`` with what a
  record without it means (written only where it says something else, so an older file's record, and the
  fingerprint kept of it, stay the same); a record whose shape a file format changed is rewritten to the
  current shape by the class's ``upgrade_record``, which :func:`upgrade` applies to a whole file's record.

>>> from pipekit.data import Categorize
>>> import polars as pl
>>> c = Categorize(); c.setup(pl.Series(["b", "a"])); c.vocab_
['a', 'b']
>>> rec = c.to_record(); rec["class"], rec["state"]
('pipekit.data.Categorize', {'vocab_': ['a', 'b']})
>>> Component.from_record(rec).vocab_, c.clone().is_fitted
(['a', 'b'], False)
"""
from __future__ import annotations

import contextvars
import copy
import dataclasses
import inspect
import sys
import types
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from pipekit.core.errors import ExportError, FieldError, NotFittedError, ParameterError, UnknownNameError
from pipekit.core.registry import lookup, name_of, register

__all__ = ["Component", "to_data", "from_data", "param_names", "construct", "upgrade"]

C = TypeVar("C", bound="Component")
_ARRAY, _REF, _CLASS = "__array__", "__ref__", "class"
#: registered kinds a record's value may not name: a loader reads a file, a learner factory builds a learner and an
#: architecture builds a network, each called by pipekit from the field it belongs to and never as a value (a
#: getter that named one would call it on every item); a callback is given to a learner, never read as a value; a
#: "loaded_learner" function finishes a learner ``load_learner`` rebuilt (``pipekit.learn.export.LOADED_LEARNER``,
#: named here as that module imports this one). A field that declares what it holds (``Component.ref_kinds``) takes
#: only those kinds.
_NOT_VALUES = ("loader", "learner", "arch", "callback", "loaded_learner")
#: deepest nesting a record may have (a file cannot make the loader recurse without bound)
MAX_DEPTH = 64


def param_names(cls: type) -> list[str]:
    """The ``__init__`` parameters of ``cls`` (no ``self`` or ``**kwargs``; a ``*args`` is one parameter).

    >>> from pipekit.core import param_names
    >>> from pipekit.data import Categorize, RandomSplitter
    >>> param_names(RandomSplitter), param_names(Categorize)
    (['valid_pct', 'seed'], ['vocab', 'sort', 'add_na'])
    """
    init = cls.__init__  # type: ignore[misc]
    if init is object.__init__:
        return []
    return [p.name for p in inspect.signature(init).parameters.values()
            if p.name != "self" and p.kind is not p.VAR_KEYWORD]


#: the class :func:`construct` is building, while its ``__init__`` runs (:func:`built_from_held_settings`)
_CONSTRUCTING: contextvars.ContextVar[type | None] = contextvars.ContextVar("pipekit_constructing", default=None)


def construct(cls: type[C], params: dict[str, Any]) -> C:
    """``cls(**params)``, passing a ``*args`` parameter by position: how a record read from a file, ``clone`` and
    ``set_params`` build a component from every setting it holds (:func:`built_from_held_settings`).

    >>> from pipekit.core.component import construct
    >>> from pipekit.data import RandomSplitter
    >>> construct(RandomSplitter, {"valid_pct": 0.25, "seed": 0})
    RandomSplitter(valid_pct=0.25, seed=0)
    """
    star = [p.name for p in inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
            if p.kind is p.VAR_POSITIONAL]
    token = _CONSTRUCTING.set(cls)
    try:
        if star and star[0] in params:
            params = dict(params)
            return cls(*params.pop(star[0]), **params)
        return cls(**params)
    finally:
        _CONSTRUCTING.reset(token)


def built_from_held_settings(obj: Any) -> bool:
    """Whether ``obj``, whose ``__init__`` is running, is being built by :func:`construct` from every setting a record
    or a component already holds (loading a file, ``clone``, ``set_params``), rather than from what a caller wrote:
    a check of how a caller spelled its arguments applies to the latter only.

    >>> from pipekit.core import Component
    >>> class Probe(Component):
    ...     def __init__(self, k=1):
    ...         self.k, self.held = k, built_from_held_settings(self)
    >>> Probe().held, construct(Probe, {"k": 2}).held
    (False, True)
    """
    return _CONSTRUCTING.get() is type(obj)


class Component:
    """Base class of pipekit's configurable pieces (see the module docstring for the contract).

    Subclasses set ``registry_kind`` on their family's base class; every class defined inside pipekit
    registers itself under ``pipekit.<package>.<Name>``. A user's subclass is registered by calling
    ``pipekit.register(MyClass)``.

    >>> from pipekit.core import Component
    >>> from pipekit.core import NotFittedError
    >>> class Shift(Component):
    ...     def __init__(self, by=0.0):
    ...         self.by = by
    ...     def fit(self, xs):
    ...         self.mean_ = sum(xs) / len(xs)
    ...         return self
    >>> s = Shift(by=1.0)
    >>> s, s.get_params(), s.is_fitted
    (Shift(by=1.0), {'by': 1.0}, False)
    >>> s.fit([1.0, 3.0]).fitted_state(), s.clone().is_fitted, s.set_params(by=2.0).is_fitted
    ({'mean_': 2.0}, False, False)
    >>> try:
    ...     s.check_is_fitted()
    ... except NotFittedError as e:
    ...     print(e)
    Shift is not fitted yet; call fit first
    """

    registry_kind: ClassVar[str] = "component"
    #: where a parameter is stored when its own name is taken (e.g. a ``vocab`` property): {param: attribute}
    param_attrs: ClassVar[dict[str, str]] = {}
    #: what each parameter accepts (``Interval``, ``Options``, ``Is`` from pipekit.core.validate); checked by
    #: ``check_params()``, which ``__init__`` calls, and exercised by the tests' conformance suite
    param_constraints: ClassVar[dict[str, Any]] = {}
    #: parameters that describe this machine (a cache folder): a record never keeps a path in them, and one read
    #: from a file leaves them at their default, so no file chooses where pipekit writes
    local_params: ClassVar[tuple[str, ...]] = ()
    #: fields added to this class's record after files were written without them, each with the value a record
    #: without it means: ``{"params.skipinitialspace": False, "state.y_type_": "str"}``. A record leaves such a field
    #: out while it holds that value, so the record of what an older pipekit could describe is the one it wrote (and
    #: a fingerprint of it, such as a backend's ``procs_signature_``, is unchanged); a record without the field reads
    #: as that value (a state field only in a fitted record's state)
    record_defaults: ClassVar[dict[str, Any]] = {}
    #: the registered kinds a field of this class's record read from a file may name, by field (``"params.get_x"``,
    #: ``"state.getters_"``): every ``{"__ref__": name}`` in it, and the class of every record in it, must be
    #: registered with one of them, or the file is refused naming the field, so a file cannot put a callback or a
    #: torch module where pipekit calls a getter on each item. Records nested in the field are held to the same
    #: kinds (a getter's own function is a getter too), unless their class declares the field itself. A field not
    #: listed may name anything registered but the kinds in ``_NOT_VALUES``.
    ref_kinds: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: values a record keeps under "params" beside the ``__init__`` arguments: what a subclass's ``__init__`` takes
    #: through ``**kwargs`` and passes on to this class's (a transform's ``split_idx``). ``params_to_data`` writes
    #: those given, and a rebuild sets them on the component ``__init__`` built, with :meth:`params_from_data`. One
    #: the class's ``__init__`` takes by name is a parameter like any other.
    passed_params: ClassVar[tuple[str, ...]] = ()
    #: attributes the component sets while it runs, which a record need not keep and a loaded copy sets again (a
    #: random transform's ``do``, drawn before each item): :meth:`unstored_problem` leaves them out
    transient: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.split(".")[0] == "pipekit" and not cls.__name__.startswith("_"):
            register(cls)

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` arguments; with ``deep``, nested components' as ``name__param`` too."""
        out: dict[str, Any] = {}
        for k in param_names(type(self)):
            attr = self.param_attrs.get(k, k)
            if not hasattr(self, attr):
                raise AttributeError(f"{type(self).__name__} must store its parameter {k!r} as self.{attr}")
            v = getattr(self, attr)
            out[k] = v
            if deep and isinstance(v, Component):
                out.update({f"{k}__{sk}": sv for sk, sv in v.get_params(deep=True).items()})
        return out

    def set_params(self: C, **params: Any) -> C:
        """Change parameters (``name__param`` reaches a nested component); learned state is dropped, and the component
        then holds what ``__init__`` builds from the new values, what it derives from them too (a tokenizer's rules, a
        loss's weights), as :meth:`clone` and a loaded copy do. The new
        values are checked as ``__init__`` checks them, all before any is set: a bad one raises
        :class:`ParameterError` and leaves the component, and its nested components, as they were, so a search
        grid's mistake is named before any fitting."""
        names = param_names(type(self))
        nested: dict[str, dict[str, Any]] = {}
        own: dict[str, Any] = {}
        for k, v in params.items():
            head, _, rest = k.partition("__")
            if head not in names:
                raise ParameterError(f"{type(self).__name__} has no parameter {head!r}; its parameters are {names}")
            if rest:
                nested.setdefault(head, {})[rest] = v
            else:
                own[head] = v
        # tried first on copies: this component built anew with the new values (every check __init__ makes,
        # those across parameters too), and each nested component's copy given its own
        trial = construct(type(self), {**self.get_params(deep=False), **own}) if own else self
        for head, sub in nested.items():
            part = getattr(trial, self.param_attrs.get(head, head))
            if not isinstance(part, Component):
                raise ParameterError(f"{type(self).__name__}: {head}__{next(iter(sub))} reaches into {head}, which is "
                                     f"a {type(part).__name__}, not a component with parameters")
            part.clone().set_params(**sub)
        passed = self.passed_to_data() if own else {}
        if passed:  # what a subclass's __init__ takes through **kwargs (a transform's split_idx), kept as clone keeps it
            trial.params_from_data(passed)
        # nested values after the new ones, so {"backend": GBM(...), "backend__num_leaves": 7} reaches the new backend
        # whatever the order given (a search grid sorts its keys, a user's dict need not)
        for head, sub in nested.items():
            getattr(trial, self.param_attrs.get(head, head)).set_params(**sub)
        if own:
            self._take_init_state(trial)
        self.reset_state()
        return self

    def _take_init_state(self, fresh: Component) -> None:
        """Hold what ``fresh``, built by ``__init__`` from the new parameters, holds: every attribute ``__init__`` set
        (the parameters as it keeps them, 0-d tensors as numbers, and what it derives from them, such as a tokenizer's
        rules or a loss's flattening), so the component works as one built with those parameters, as :meth:`clone`
        and a loaded copy do. An attribute ``__init__`` does not set stays (a callback's ``learn``, set by the
        learner holding it; a bag's stop signal given to its fold model), and learned state is dropped by
        :meth:`reset_state` as before. A torch module (a loss) keeps its training mode, its device
        and the hooks registered on it, which say how it is used, not how it was built."""
        mine = vars(self)
        torch = sys.modules.get("torch")
        module = torch is not None and isinstance(self, torch.nn.Module)
        kept = {k: v for k, v in mine.items() if k == "training" or "hook" in k} if module else {}
        held = [t for part in ("_parameters", "_buffers") for t in (mine.get(part) or {}).values()
                if t is not None] if module else []
        for k, v in vars(fresh).items():
            if k.endswith("_") and not k.startswith("_"):
                continue
            # a method __init__ kept (``self.run = self._fast``) is this component's, not the discarded copy's
            mine[k] = types.MethodType(v.__func__, self) if isinstance(v, types.MethodType) and v.__self__ is fresh else v
        mine.update(kept)
        if held:  # on the device it was moved to (a learner moves its loss once)
            self.to(held[0].device)  # type: ignore[attr-defined]

    def __sklearn_clone__(self: C) -> C:
        """What ``sklearn.base.clone`` calls: :meth:`clone`, so scikit-learn's tools copy a component the
        way pipekit does (parameters normalised in ``__init__``, such as ``list(layers)``, are fine)."""
        return self.clone()

    def clone(self: C) -> C:
        """A new, unfitted component with the same parameters (nested components cloned too), and the
        :attr:`passed_params` it was given (:meth:`passed_to_data`) set on it as a record's are."""
        out = construct(type(self), {k: _clone_param(v) for k, v in self.get_params(deep=False).items()})
        passed = self.passed_to_data()
        if passed:
            out.params_from_data(passed)
        return out

    def check_params(self) -> None:
        """Check every parameter against ``param_constraints``; a :class:`ParameterError` names the first bad one."""
        from pipekit.core.validate import check

        checked = check(type(self).__name__, **{k: (getattr(self, self.param_attrs.get(k, k)), c)
                                                for k, c in self.param_constraints.items()})
        for k, v in checked.items():  # a number given as a 0-d tensor or NumPy number is kept as the plain number,
            attr = self.param_attrs.get(k, k)  # so what is handed on (to scikit-learn, to a file) is plain
            if v is not getattr(self, attr):
                setattr(self, attr, v)

    # ------------------------------------------------------------------ learned state
    def fitted_state(self) -> dict[str, Any]:
        """What fitting learned: every attribute ending in ``_`` (and not starting with one)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def reset_state(self) -> None:
        """Forget what fitting learned (every attribute ending in ``_``); the parameters stay."""
        for k in list(self.fitted_state()):
            delattr(self, k)

    @property
    def is_fitted(self) -> bool:
        """Whether fitting has learned state (for an ensemble: whether every member is fitted)."""
        return bool(self.fitted_state())

    def check_is_fitted(self, what: str = "fit") -> None:
        """Raise :class:`NotFittedError` unless fitting has learned state."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call {what} first")

    # ------------------------------------------------------------------ records
    def to_record(self, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """``{"class", "params", "state"}`` as plain data; arrays go into ``arrays`` (inline lists if None)."""
        where = type(self).__name__
        problem = self.unstored_problem()
        if problem:
            raise ExportError(problem)
        parts = {"params": dict(self.params_to_data()), "state": dict(self.state_to_data())}
        for field, value in self.record_defaults.items():
            part, name = field.split(".", 1)
            if name in parts[part] and _same(parts[part][name], value):
                del parts[part][name]  # what a record without it means (see record_defaults)
        lists = _lists_hold_arrays(type(self))
        return {_CLASS: name_of(type(self)),
                "params": to_data(parts["params"], arrays, where, _arrays_in_lists=lists),
                "state": to_data(parts["state"], arrays, where, _arrays_in_lists=lists)}

    def unstored_problem(self) -> str | None:
        """What of this component a record (``pipekit.save``, ``learn.export``) would not keep, as the message that
        refuses it, or None. A record keeps the ``__init__`` arguments, read back from the attributes of their own
        names (``param_attrs``), and the learned state, the attributes ending in ``_``; an instance attribute is
        kept, or rebuilt, when it is one of those, a :attr:`passed_params` value, a private one (``_cache``), or one
        that ``__init__`` sets from the arguments and that still holds what it set (a copy built from them holds the
        same value). Anything else, such as the book's ``self.mean = ...`` set in ``setups`` (whether or not
        ``__init__`` first set ``self.mean = None``), would be lost, and a parameter read from the user's class
        attribute rather than from the instance (``__init__`` keeping ``k`` as ``self.factor``) would be saved as the
        class's value: both are refused, naming the attributes and the fix. So is a component that cannot be rebuilt
        from its ``__init__`` arguments, which a loaded copy could not be either.

        >>> from pipekit.core import Component
        >>> class NormalizeMean(Component):
        ...     def setup(self, xs): self.mean = sum(xs) / len(xs)
        >>> n = NormalizeMean(); n.setup([1.0, 3.0]); print(n.unstored_problem()[:95])
        NormalizeMean cannot be saved: attribute(s) ['mean'] are neither __init__ arguments nor learned
        >>> class MeanFromInit(Component):
        ...     def __init__(self, by=1.0): self.by, self.mean = by, None
        ...     def setup(self, xs): self.mean = sum(xs) / len(xs)
        >>> m = MeanFromInit(); print(m.unstored_problem()); m.setup([1.0, 3.0]); print(m.unstored_problem()[:94])
        None
        MeanFromInit cannot be saved: attribute(s) ['mean'] are neither __init__ arguments nor learned
        """
        cls = type(self)
        where = cls.__name__
        own = {k: self.param_attrs.get(k, k) for k in param_names(cls)}
        missing, from_class = [], []
        for k, attr in own.items():
            if attr in vars(self):
                continue
            owner = next((b for b in cls.__mro__ if attr in vars(b)), None)
            if owner is None:
                missing.append(k)
            elif not (owner.__module__.split(".")[0] == "pipekit" or inspect.isdatadescriptor(vars(owner)[attr])):
                from_class.append(k)
        if missing or from_class:
            names = missing + from_class
            why = (f"{missing} {'is' if len(missing) == 1 else 'are'} not stored on it" if missing else "") + \
                  (" and " if missing and from_class else "") + \
                  (f"{from_class} {'is' if len(from_class) == 1 else 'are'} read from the class attribute(s) "
                   f"{[f'{where}.{own[k]}' for k in from_class]}, not from the instance" if from_class else "")
            return (f"{where} cannot be saved: a record keeps each __init__ argument as the attribute of its own name, "
                    f"and its argument(s) {why}, so a loaded copy would not be built as this one. Store each argument "
                    f"under its own name in __init__ ({', '.join(f'self.{own[k]} = {k}' for k in names)}) and derive "
                    "other attributes from it")
        allowed = set(own.values()) | {a for k in self.passed_params for a in (k, self.param_attrs.get(k, k))}
        extra = [k for k in vars(self)
                 if not k.startswith("_") and not k.endswith("_") and k not in allowed and k not in self.transient]
        if not extra:
            return None
        import warnings

        try:  # what __init__ sets from the arguments is rebuilt with them, as loading rebuilds it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fresh = construct(cls, self.get_params(deep=False))
                fresh.params_from_data(self.passed_to_data())
        except Exception as e:
            return (f"{where} cannot be saved: a record rebuilds it from its __init__ arguments, and "
                    f"{where}({', '.join(f'{k}={_short(v)}' for k, v in self.get_params(deep=False).items())}) "
                    f"raises {type(e).__name__}: {e}, so a loaded copy "
                    "could not be built either. Give it settings its __init__ takes (set_params checks them), keep "
                    "each __init__ argument under its own name as it was given, and name what setup/fit learns with "
                    "a trailing '_'")
        lost = [k for k in extra if k not in vars(fresh) or not _held_same(vars(self)[k], vars(fresh)[k])]
        if not lost:
            return None
        return (f"{where} cannot be saved: attribute(s) {lost} are neither __init__ arguments nor learned state, and a "
                "record keeps only those (the arguments under their own names, learned state in attributes ending in "
                "'_'), so a loaded copy would lack them, use a class default or hold what __init__ set. Name what "
                f"setup/fit learns with a trailing '_' ({', '.join(f'self.{k}_' for k in lost)}), start what it only "
                f"caches with one (self._{lost[0]}), and keep __init__ arguments under their own names")

    def params_to_data(self) -> dict[str, Any]:
        """The parameters a record keeps (override to leave out what a loaded copy cannot use); the
        ``local_params`` are left out, the :attr:`passed_params` given (:meth:`passed_to_data`) kept beside them."""
        return {**{k: v for k, v in self.get_params(deep=False).items() if k not in self.local_params},
                **self.passed_to_data()}

    def passed_to_data(self) -> dict[str, Any]:
        """The :attr:`passed_params` this component was given that its ``__init__`` does not take by name, as a record
        and a copy keep them (``{name: value}``; none by default)."""
        return {}

    def params_from_data(self, passed: dict[str, Any]) -> None:
        """Set the :attr:`passed_params` a record holds (``{name: value}``, read from a file) on this component, just
        built from the record's ``__init__`` arguments, each checked as ``__init__`` checks it (a class declaring
        ``passed_params`` overrides this)."""
        if passed:
            raise ExportError(f"{type(self).__name__} takes no parameters besides its __init__'s, got {sorted(passed)}")

    def state_to_data(self) -> dict[str, Any]:
        """The learned state as data (override when state holds objects, e.g. a LightGBM booster)."""
        return self.fitted_state()

    def state_from_data(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_to_data` gave; only attributes ending in ``_`` are ever set."""
        for k, v in state.items():
            if not (isinstance(k, str) and k.endswith("_") and not k.startswith("_")):
                raise ExportError(f"{type(self).__name__}: state entry {k!r} is not a learned attribute")
            # a name the class defines as a property or method (read from the fitted state, never stored) is no
            # entry of a file this class wrote
            found = inspect.getattr_static(type(self), k, None)
            if isinstance(found, (property, staticmethod, classmethod)) or inspect.isfunction(found):
                raise ExportError(f"{type(self).__name__}: state entry {k!r} is computed from the fitted state, not "
                                  "stored; this file was not written by this class's export")
            setattr(self, k, v)

    @classmethod
    def from_record(cls: type[C], record: Any, arrays: dict[str, np.ndarray] | None = None) -> C:
        """Rebuild a component from :meth:`to_record`'s output; the class must be registered and a ``cls``."""
        if not (isinstance(record, dict) and _CLASS in record and "params" in record):
            raise ExportError(f"expected the record of a {cls.__name__} ({{'class', 'params', 'state'}}), "
                              f"got {type(record).__name__}")
        return _build(record, arrays, 0, base=cls)

    @classmethod
    def upgrade_record(cls, record: dict[str, Any], version: int) -> None:
        """Rewrite, in place, a record of this class read from a file of format ``version`` (older than
        ``pipekit.core.archive.VERSION``) into the current shape; :func:`upgrade` calls it for every record of a
        file, outer records first. A class whose record a format changed overrides it; it leaves what it does not
        recognise as it is, for the rebuild to refuse with its usual message."""

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        # a repr never raises: a parameter the class does not store as self.<name> (a user's transform keeping only
        # what it derives from its arguments) is left out here; exporting such a component is what refuses it
        sig = inspect.signature(type(self).__init__)  # type: ignore[misc]
        readable = {}
        for k in param_names(type(self)):
            try:
                readable[k] = getattr(self, self.param_attrs.get(k, k))
            except Exception:
                continue
        shown = []
        for k, v in readable.items():
            default = sig.parameters[k].default
            try:
                same = default is not inspect.Parameter.empty and bool(default == v)
            except Exception:  # arrays and tensors compare element-wise
                same = False
            if not same:
                shown.append(f"{k}={_short(v)}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _short(v: Any, n: int = 8) -> str:
    """A parameter's value as a component's repr shows it: a class or function by its name, as it is written
    (``blocks=(ImageBlock, CategoryBlock)``, ``get_y=parent_label``), in a list or tuple too, and a long list or
    tuple (a vocabulary) cut to its first ``n`` values and its length; anything else as ``repr``."""
    if callable(v) and not isinstance(v, Component) and getattr(v, "__name__", None):
        return str(v.__name__)
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):  # a named tuple shows its own repr
        shown = [_short(x, n) for x in v[:n]]
        if len(v) > n:
            return f"[{', '.join(shown)}, ... ({len(v)} values)]"
        return f"[{', '.join(shown)}]" if isinstance(v, list) else f"({', '.join(shown)}{',' * (len(v) == 1)})"
    return repr(v)


def _same(a: Any, b: Any) -> bool:
    """``a`` is the value ``b`` (of its type: ``0`` is not ``False``)."""
    return type(a) is type(b) and a == b


def _held_same(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether an attribute holds the value ``b`` that a copy rebuilt from the ``__init__`` arguments holds: the same
    object, equal numbers, strings, tuples, lists, dicts or None, equal arrays (``np.array_equal``) or tensors
    (``torch.equal``), components of one class with the same parameters and learned state. Values that cannot be
    compared (equality that raises, gives no single bool, or only tells whether two objects are one) are not the
    same: a record could not show that a loaded copy would hold the value.

    >>> _held_same(None, None), _held_same([1, (2.0, "a")], [1, (2.0, "a")]), _held_same(None, 3.0)
    (True, True, False)
    >>> _held_same(np.arange(3), np.arange(3)), _held_same(float("nan"), float("nan")), _held_same(object(), object())
    (True, True, False)
    """
    if a is b:
        return True
    if depth > MAX_DEPTH:
        return False
    numbers = (int, float, complex, np.number, np.bool_)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return bool(a == b) or bool(a != a and b != b)  # NaN is the value NaN
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        try:
            return a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        except Exception:
            return False
    if type(a).__module__.split(".")[0] == "torch" and hasattr(a, "dtype") and hasattr(a, "shape"):
        import torch

        try:
            return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
        except Exception:  # tensors on different devices
            return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_held_same(x, y, depth + 1) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_held_same(a[k], b[k], depth + 1) for k in a)
    if isinstance(a, Component):
        return (_held_same(a.get_params(deep=False), b.get_params(deep=False), depth + 1)
                and _held_same(a.fitted_state(), b.fitted_state(), depth + 1))
    if type(a).__eq__ is object.__eq__:  # equality that only tells whether two objects are one
        return False
    try:
        same = a == b
    except Exception:
        return False
    return bool(same) if isinstance(same, (bool, np.bool_)) else False


def _clone_param(v: Any) -> Any:
    if isinstance(v, Component):
        return v.clone()
    if isinstance(v, (list, tuple)):
        return type(v)(_clone_param(x) for x in v)
    if isinstance(v, dict):
        return {k: _clone_param(x) for k, x in v.items()}
    return copy.deepcopy(v) if isinstance(v, (set, np.ndarray)) else v


# ---------------------------------------------------------------------------------------- plain data
def _lists_hold_arrays(cls: type) -> bool:
    """Whether the record of ``cls`` may hold arrays inside its lists: a class of the user's may (a learned
    ``(mean, std)`` pair of arrays); pipekit's own classes hold labels, names, numbers or records in their lists,
    whose checks compare values one by one, so a file's array there is refused naming the field."""
    return cls.__module__.split(".")[0] != "pipekit"


def _value_advice(obj: Any) -> str:
    """How to store ``obj``, a value (not a class or function) that a record cannot hold, as plain data."""
    kind = type(obj)
    module = kind.__module__.split(".")[0]
    if isinstance(obj, (set, frozenset)):
        fix = "a list (sorted(value))"
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        fix = "text (value.decode()) or an array of bytes (np.frombuffer(value, np.uint8))"
    elif isinstance(obj, (complex, np.complexfloating)):
        fix = "two numbers ([value.real, value.imag])"
    elif hasattr(obj, "isoformat"):  # datetime.date, datetime.datetime, datetime.time, pandas.Timestamp
        fix = "ISO text (value.isoformat())"
    elif isinstance(obj, np.generic):
        fix = "a number or text (value.item(), str(value))"
    elif module in ("pandas", "polars") and hasattr(obj, "to_list" if module == "polars" else "tolist"):
        fix = f"a list (value.{'to_list' if module == 'polars' else 'tolist'}())"
    elif module in ("pandas", "polars") and hasattr(obj, "to_dict"):
        fix = "a dict of lists (value.to_dict(as_series=False) in Polars, value.to_dict('list') in pandas)"
    else:
        fix = "a number, text, a list or a text-keyed dict of them, or an array"
    return (f"a value of type {kind.__module__}.{kind.__qualname__} cannot be stored in a record, which holds "
            f"numbers, text, lists, text-keyed dicts, arrays, components and registered classes or functions: "
            f"convert it to {fix} where it is given (or in __init__, keeping the parameter as given), and keep what "
            "fitting learns in an attribute ending in '_' holding such data (registering the value's type does not "
            "help: a record names classes and functions, never objects)")


def to_data(obj: Any, arrays: dict[str, np.ndarray] | None = None, where: str = "value", *,
            _arrays_in_lists: bool = True) -> Any:
    """``obj`` as JSON-able data. Arrays/tensors go into ``arrays`` (inline lists when None), components
    become records, registered classes and functions become ``{"__ref__": name}``; anything else raises
    an :class:`ExportError` naming where it was found and how to store it. A record holds JSON's kinds of
    value: a tuple is kept as a list and a ``Path`` as its text, and :func:`from_data` gives back a list and
    text (``clone`` keeps them as given). ``_arrays_in_lists``: whether a list may hold arrays (see
    :func:`_lists_hold_arrays`); where it may not, such a list is refused here, as loading would refuse it.

    >>> import numpy as np
    >>> from pipekit.core import to_data
    >>> from pipekit.core import ExportError
    >>> arrays = {}
    >>> to_data({"mean": np.float32(0.5), "w": np.arange(3)}, arrays), list(arrays)
    ({'mean': 0.5, 'w': {'__array__': 'a0'}}, ['a0'])
    >>> to_data({"w": np.arange(3)})  # no dict for the arrays: inline lists
    {'w': [0, 1, 2]}
    >>> try:
    ...     to_data({"f": open}, where="params")
    ... except ExportError as e:
    ...     print(str(e)[:45])
    params.f = <built-in function open> cannot be
    >>> to_data({"pair": (np.zeros(2), np.ones(2))}, arrays), to_data((1, 2))
    ({'pair': [{'__array__': 'a1'}, {'__array__': 'a2'}]}, [1, 2])
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise ExportError(f"{where}: an object array cannot be stored as data; convert it to text or numbers")
        if arrays is None:
            return obj.tolist()
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {_ARRAY: key}
    if isinstance(obj, Component):
        return obj.to_record(arrays)
    lists = _arrays_in_lists
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str) or k in (_ARRAY, _REF)]
        if bad:
            raise ExportError(f"{where}: dictionary keys must be text (and not {_ARRAY}/{_REF}), got {bad[:3]}")
        return {k: to_data(v, arrays, f"{where}.{k}", _arrays_in_lists=lists) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = [to_data(v, arrays, f"{where}[{i}]", _arrays_in_lists=lists) for i, v in enumerate(obj)]
        if not lists:
            held = next((i for i, v in enumerate(out) if isinstance(v, dict) and _ARRAY in v), None)
            if held is not None:
                raise ExportError(f"{where}[{held}] is an array inside a list, which this record cannot hold (its lists "
                                  "hold labels, names, numbers or records); store the array as the field's whole "
                                  "value, or a dict's")
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_data(obj.__dict__, arrays, where, _arrays_in_lists=lists)
    try:
        return {_REF: name_of(obj)}
    except UnknownNameError as e:
        if not (isinstance(obj, type) or inspect.isroutine(obj)):  # a value: registering its type changes nothing
            raise ExportError(f"{where} = {obj!r:.80} cannot be stored as data: {_value_advice(obj)}") from None
        raise ExportError(f"{where} = {obj!r:.80} cannot be stored as data: {e}") from None


def _lookup_kind(name: Any, kinds: tuple[str, ...], base: type | None = None) -> Any:
    """The object registered as ``name`` with one of ``kinds`` (and a subclass of ``base``); a :class:`FieldError`
    (its field filled in by the caller, :func:`_from_field`) saying what the name is and what the field takes."""
    first: UnknownNameError | None = None
    for kind in kinds:
        try:
            return lookup(name, kind, base=base)
        except UnknownNameError as e:
            first = first or e
    said = str(first) if "is a registered" in str(first) else f"{name!r:.80} is not registered as one"
    if _user_name(name) and lookup(name, default=None) is None:
        # a module path outside pipekit, registered under no kind here: a user's function or class, which the process
        # that wrote the file registered (nothing a file names is imported: the user defines and registers it)
        module, short = name.rsplit(".", 1)
        call = f"pipekit.register({short}" + ("" if base is not None else f", kind={kinds[0]!r}")
        how = (f"define {short} in the script or notebook that loads it and register it before loading, as the "
               f"exporting one did: {call}) (defined in an imported module instead: {call}, name={name!r}))"
               if module == "__main__" else
               f"import {short} (from {module}) and register it before loading, as the exporting process did: {call})")
        raise FieldError("", f"names {name!r:.80}, a {' or '.join(kinds)} that the process which exported the file "
                             f"registered and this process has not (pipekit never imports or runs what a file "
                             f"names); {how}")
    raise FieldError("", f"names {name!r:.80}, but this field takes a registered {' or '.join(kinds)} ({said}); the "
                         "file is damaged, was not written by pipekit, or was written by a newer pipekit whose "
                         "classes this one lacks (upgrade pipekit: pip install -U pipekit)")


def _user_name(name: Any) -> bool:
    """Whether ``name`` can be the registered name of a user's function or class: a module path and qualified name
    (``'__main__.is_cat'``, ``'mylib.steps.Tokenize'``) outside pipekit, as :func:`pipekit.register` names them."""
    if not isinstance(name, str) or len(name) > 300:
        return False
    parts = name.split(".")
    return len(parts) >= 2 and parts[0] != "pipekit" and all(
        p.isidentifier() or p in ("<locals>", "<lambda>") for p in parts)


def from_data(data: Any, arrays: dict[str, np.ndarray] | None = None, _depth: int = 0,
              _kinds: tuple[str, ...] | None = None, _arrays_in_lists: bool = False) -> Any:
    """Inverse of :func:`to_data`. Records rebuild registered components only; parameters are checked
    against the class's ``__init__`` before it is called. ``_kinds``: the registered kinds the field being read
    takes (see ``Component.ref_kinds``); None: any kind a value may be. ``_arrays_in_lists``: whether a list may
    hold arrays; it may in the record of a user's class (:func:`_lists_hold_arrays`), never in pipekit's own classes'
    records nor in the fields pipekit reads itself. Every array reference, in a list or not, names an array the
    file holds, and the file's references are counted against what it stores before any is read
    (:func:`pipekit.core.archive.check_array_references`).

    >>> import numpy as np
    >>> from pipekit.core import from_data, to_data
    >>> from pipekit.data import Categorize
    >>> arrays = {}
    >>> data = to_data({"labels": Categorize(vocab=["cat", "dog"]), "w": np.arange(3)}, arrays)
    >>> data["labels"]["class"]
    'pipekit.data.Categorize'
    >>> back = from_data(data, arrays)
    >>> back["labels"], back["w"].tolist()
    (Categorize(vocab=['cat', 'dog']), [0, 1, 2])
    """
    if _depth > MAX_DEPTH:
        raise ExportError(f"a record is nested more than {MAX_DEPTH} levels deep")
    if isinstance(data, list):
        for i, v in enumerate(data):
            # pipekit's own records hold an array as a field's whole value (or a mapping's); their lists hold labels,
            # names, numbers or records, whose checks compare values one by one and need one value each
            if not _arrays_in_lists and isinstance(v, dict) and _ARRAY in v:
                raise FieldError(f"[{i}]", "is an array, where a record's list holds labels, names, numbers or "
                                           "records; the file is damaged or was not written by pipekit")
        return [_from_field(v, arrays, _depth + 1, i, _kinds, _arrays_in_lists) for i, v in enumerate(data)]
    if not isinstance(data, dict):
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        raise ExportError(f"unexpected {type(data).__name__} in a record")
    if _ARRAY in data:
        if arrays is None or not isinstance(data[_ARRAY], str) or data[_ARRAY] not in arrays:
            raise ExportError(f"a record refers to array {data[_ARRAY]!r}, which the file does not hold")
        return arrays[data[_ARRAY]]
    if _REF in data:
        if _kinds is not None:  # a field that says what it holds (a getter): that kind only
            return _lookup_kind(data[_REF], _kinds)
        try:  # a value: never what reads files, builds learners or builds networks (those have fields of their own)
            return lookup(data[_REF], not_kinds=_NOT_VALUES)
        except UnknownNameError as e:
            raise ExportError(str(e)) from None
    if _CLASS in data and "params" in data:
        return _build(data, arrays, _depth, kinds=_kinds)
    return {k: _from_field(v, arrays, _depth + 1, k, _kinds, _arrays_in_lists) for k, v in data.items()}


def _from_field(data: Any, arrays: dict[str, np.ndarray] | None, depth: int, key: str | int,
                kinds: tuple[str, ...] | None = None, arrays_in_lists: bool = False) -> Any:
    """:func:`from_data` of the field ``key`` (a key, or a list index) of a record: a :class:`FieldError` raised by
    a component nested in it gets the field's place in front of its path, so it names the path from the top."""
    try:
        return from_data(data, arrays, depth, kinds, arrays_in_lists)
    except FieldError as e:
        place = f"[{key}]" if isinstance(key, int) else str(key)
        raise (FieldError(place, e.problem) if not e.field else e.within(place)) from None


def _build(record: dict[str, Any], arrays: dict[str, np.ndarray] | None, depth: int,
           base: type[Component] | None = None, kinds: tuple[str, ...] | None = None) -> Any:
    """The component ``record`` describes; ``kinds``: the registered kinds the field holding it takes (its class
    must be one, and so must what its own fields name, unless its class declares them in ``ref_kinds``)."""
    name = record[_CLASS]
    if kinds is not None:
        _lookup_kind(name, kinds, base=base or Component)
    try:
        cls = lookup(name, base=base or Component)
    except UnknownNameError as e:
        raise ExportError(str(e)) from None
    if vars(cls).get("abstract", False):  # a base class (Metric, Getter): what it computes is its subclasses' to say
        raise FieldError("class", f"names {name!r:.80}, a base class, which does nothing of its own (its subclasses "
                                  "do); the file is damaged or was not written by pipekit")
    params = record.get("params") or {}
    state = record.get("state") or {}
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise ExportError(f"the record of {name} has params/state that are not objects")
    allowed = param_names(cls)
    passed = [k for k in cls.passed_params if k not in allowed]  # set after __init__ (see Component.passed_params)
    unknown = [k for k in params if k not in allowed and k not in passed]
    if unknown:
        raise ExportError(f"the record of {name} has parameters {unknown} that {cls.__name__} does not take "
                          f"(it takes {allowed + passed})")
    params, state = dict(params), dict(state)
    for field, value in cls.record_defaults.items():  # a field left out holds what its absence means
        part, key = field.split(".", 1)
        if part == "params":
            params.setdefault(key, value)
        elif state:  # an unfitted record's empty state stays empty
            state.setdefault(key, value)

    def kinds_of(part: str, k: str) -> tuple[str, ...] | None:  # what a field takes: its class's word, or its holder's
        return cls.ref_kinds.get(f"{part}.{k}", kinds)

    lists = _lists_hold_arrays(cls)
    try:
        values = {k: _from_field(v, arrays, depth + 1, f"params.{k}", kinds_of("params", k), lists)
                  for k, v in params.items()
                  if k not in cls.local_params}  # a file's folder for this machine is not followed
        obj = construct(cls, {k: v for k, v in values.items() if k not in passed})
        if any(k in values for k in passed):
            obj.params_from_data({k: v for k, v in values.items() if k in passed})
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"the record of {name} has parameters {cls.__name__} refuses: {e}") from e
    obj.state_from_data({k: _from_field(v, arrays, depth + 1, f"state.{k}", kinds_of("state", k), lists)
                         for k, v in state.items()})
    return obj


def upgrade(data: Any, version: int) -> Any:
    """A whole record read from a file of format ``version`` (a component's record, or a learner export's, which
    holds them) in the current format: each component record in it, outer ones first, goes through its class's
    :meth:`Component.upgrade_record`. Classes are looked up in the registry only; a record naming a class that is
    not registered is left as it is (rebuilding it refuses it). Each name is looked up once, however many records
    name it, and one that is not registered costs a few dictionary lookups (no error message is made for it); only
    the registered components' ``upgrade_record`` are called.

    >>> from pipekit.core.component import upgrade
    >>> old = {"class": "pipekit.vision.RandomResizedCrop", "params": {"size": 64}, "state": {}}
    >>> upgrade(old, 3)["params"]  # format 3 cropped within the cached centre
    {'size': 64, 'whole_image': False}
    >>> upgrade({"class": "pipekit.vision.RandomResizedCrop", "params": {"size": 64}}, 4)["params"]
    {'size': 64}
    """
    upgraders: dict[str, Any] = {}  # class name -> its upgrade_record, or None for a name of no component
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        name = node.get(_CLASS)
        if isinstance(name, str) and isinstance(node.get("params"), dict):
            if name not in upgraders:
                try:
                    cls = lookup(name, base=Component, default=None)
                except UnknownNameError:  # registered, but not a component
                    cls = None
                upgraders[name] = None if cls is None else cls.upgrade_record
            if upgraders[name] is not None:
                upgraders[name](node, version)
        stack.extend(reversed(list(node.values())))
    return data
