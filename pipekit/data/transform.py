"""Transforms: fitted on the training subset, state kept as plain data, composed by order.

A :class:`Transform` works on whole columns (a Polars Series, a NumPy array, a batch tensor), never on
one Python object at a time. It is a :class:`~pipekit.core.Component`: its parameters are its
``__init__`` arguments and what ``setup`` learns lives in attributes ending in ``_``, so a fitted
transform is saved as a record and rebuilt from the registry without unpickling code.
"""
from __future__ import annotations

import inspect
import os
import random
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import polars as pl
import torch

from pipekit.core.component import Component, param_names
from pipekit.core.errors import ParameterError, PipekitError, PipelineStepError
from pipekit.core.validate import Interval, Is, Options, check, check_arguments, is_pandas
from pipekit.data.getters import Getter, check_item_getters
from pipekit.data.lists import fastuple
from pipekit.data.probe import stage

#: fastai's method names and the pipekit methods they are read as (the book's chapter 11 spells them so)
FASTAI_NAMES = {"encodes": "encode", "decodes": "decode", "setups": "setup"}
#: the class attribute a class body's repeated ``encodes``/``decodes`` reach ``Transform.__init_subclass__`` in
_DEFINITIONS = "_fastai_definitions"


class _ClassBody(dict):
    """The namespace of a Transform class body, which keeps every ``def encodes`` (and ``decodes``) written in it, not
    only the last one as a plain class body does: fastai's way of writing a transform for several types is one
    ``encodes`` per type (``def encodes(self, x: int)``, then ``def encodes(self, x: str)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.definitions: dict[str, list[Callable[..., Any]]] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        if key in ("encodes", "decodes"):
            kept = self.definitions.setdefault(key, [])
            if inspect.isfunction(value):
                kept.append(value)
            else:  # ``encodes = staticmethod(...)`` or another object: it stands alone, as Python keeps it
                kept.clear()
        super().__setitem__(key, value)


class _TransformMeta(type):
    """Transform's metaclass: a class body whose ``encodes`` or ``decodes`` is defined more than once hands every
    definition to ``__init_subclass__`` (in the class attribute ``_fastai_definitions``, removed there), which
    dispatches on the value's type over all of them (see :func:`_dispatch_method`)."""

    @classmethod
    def __prepare__(mcs, name: str, bases: tuple[type, ...], /, **kwargs: Any) -> dict[str, object]:
        return _ClassBody()

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        repeated = {k: v for k, v in getattr(namespace, "definitions", {}).items() if len(v) > 1}
        namespace = dict(namespace)
        if repeated:
            namespace[_DEFINITIONS] = repeated
        return super().__new__(mcs, name, bases, namespace, **kwargs)


class Transform(Component, metaclass=_TransformMeta):
    """Base class: ``setup`` on training values, ``encode`` any values, ``decode`` for display.

    >>> class AddOne(Transform):
    ...     def encode(self, x): return x + 1
    ...     def decode(self, x): return x - 1
    >>> AddOne().decode(AddOne().encode(np.arange(3))).tolist()
    [0, 1, 2]

    The book's spelling works too: a subclass defining ``encodes``/``decodes``/``setups`` (as in fastai) has
    them as ``encode``/``decode``/``setup``. ``Transform(f)`` or ``Transform(f, g)`` wraps plain functions
    (a :class:`FuncTransform`). An ``encodes``/``decodes`` (or a function) that annotates the type of its value
    applies to values of that type only, as fastai's do: any other value is given back as it is, and a column
    (a list, tuple, array or Series) is gone through value by value (see :func:`apply_typed`).

    >>> class LowerCase(Transform):
    ...     def encodes(self, x): return x.lower()
    >>> LowerCase()("HeLLo"), Transform(lambda x: x + 1)(1)
    ('hello', 2)

    Several ``encodes`` (or ``decodes``) in one class, each annotating another type, are all kept, as fastai's: a
    value goes to the one of its nearest class (see :func:`_dispatch_method`).

    >>> class Double(Transform):
    ...     def encodes(self, x: int): return x * 2
    ...     def encodes(self, x: str): return x + x
    >>> Double()(3), Double()("a"), Double()([1, "b", 2.5])
    (6, 'aa', [2, 'bb', 2.5])
    """

    registry_kind = "transform"
    order: ClassVar[int] = 0
    #: which split's items it runs on, as fastai's ``split_idx``: 0 training items only, 1 validation and new items
    #: (``test_dl``, ``predict``) only, None every item (see :func:`runs_on_split`); a class attribute, or set on one
    #: (``super().__init__(split_idx=1)`` in a subclass's ``__init__``, as fastai's, see :meth:`__init__`)
    split_idx: int | None = None
    #: whether ``encode``/``decode`` take the batch context too (batch transforms), so fastai's one-argument
    #: ``encodes`` cannot stand for them
    takes_context: ClassVar[bool] = False
    #: fastai's keywords a subclass's ``__init__`` may take through ``**kwargs`` and pass on to this one's: a record
    #: keeps them beside the subclass's own parameters (see :meth:`params_to_data`)
    passed_params: ClassVar[tuple[str, ...]] = ("split_idx", "order")

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Transform and (args or kwargs):  # Transform(f): fastai's transform of a plain function
            # an instance of Transform: Python runs FuncTransform.__init__ on it with these arguments
            return super().__new__(FuncTransform)
        return super().__new__(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        repeated = cls.__dict__.get(_DEFINITIONS, {})
        if repeated:
            delattr(cls, _DEFINITIONS)
        for theirs, ours in FASTAI_NAMES.items():
            fn = cls.__dict__.get(theirs)
            if fn is None:
                continue
            where = f"{cls.__name__}.{theirs}"
            if ours in cls.__dict__:
                raise ParameterError(f"{where}: {cls.__name__} defines both {theirs} (fastai's name) and {ours} "
                                     f"(pipekit's); keep one, {ours}")
            if cls.takes_context and theirs != "setups":
                raise ParameterError(f"{where}: a batch transform works on whole batches; define "
                                     f"{ours}(self, batch, ctx) instead (see BatchTransform)")
            method = None
            if theirs in repeated:  # one definition per type, as fastai's: dispatched on the value's type
                method = _dispatch_method(repeated[theirs], where)
            if method is None:
                types = value_types(fn, where, skip_self=True) if theirs != "setups" else None
                method = fn if types is None else _typed_method(fn, types)
            setattr(cls, ours, _over_inherited(cls, ours, method))

    def __init__(self, **fastai_kwargs: Any):
        """fastai's ``Transform.__init__(enc=None, dec=None, split_idx=None, order=None)``, as a subclass's
        ``super().__init__(split_idx=1)`` (or ``order=3``) calls it: ``split_idx`` and ``order`` are set on this
        transform and win over the class's (see :func:`set_split_and_order`); a copy keeps them (:meth:`clone`).
        Keywords only, so a subclass's parameters stay those of its own ``__init__``; functions (``enc``, ``dec``)
        are :class:`FuncTransform`'s, ``Transform(f, g)``.

        >>> class Valid(Transform):
        ...     def __init__(self): super().__init__(split_idx=1, order=2)
        ...     def encodes(self, x: int): return x + 100
        >>> t = Valid(); t.split_idx, t.order, Pipeline([t]).encode(1, split_idx=1), Pipeline([t]).encode(1, split_idx=0)
        (1, 2, 101, 1)
        """
        super().__init__()  # a class mixing another base in still reaches its __init__
        who = f"{type(self).__name__}: Transform.__init__"
        check_arguments(who, fastai_kwargs, ["enc", "dec", "split_idx", "order"])
        if fastai_kwargs.get("enc") is not None or fastai_kwargs.get("dec") is not None:
            raise ParameterError(f"{who}(enc=..., dec=...): a Transform subclass encodes with its own encodes (and "
                                 "decodes) methods; functions are wrapped by Transform(f, g), without a subclass")
        split_idx, order = fastai_kwargs.get("split_idx"), fastai_kwargs.get("order")
        if split_idx is None and order is None:
            return
        given = check(type(self).__name__, split_idx=(split_idx, SPLIT_IDX), order=(order, ORDER))
        set_split_and_order(self, given["split_idx"], given["order"])

    def passed_to_data(self) -> dict[str, Any]:
        """The :attr:`passed_params` this transform was given that its class's ``__init__`` does not take by name:
        ``split_idx`` and ``order`` (``Brighten(amount=120, split_idx=1)``, a subclass passing ``**kwargs`` on, as
        fastai's do), where given (None is the class's value). A copy (:meth:`clone`, a DataBlock's ``item_tfms``)
        and a record keep them."""
        own = param_names(type(self))
        given = {"split_idx": getattr(self, "split_idx_arg", None), "order": getattr(self, "order_arg", None)}
        return {k: v for k, v in given.items() if k not in own and v is not None}

    def params_from_data(self, passed: dict[str, Any]) -> None:
        """``split_idx`` and ``order`` read from a file's record, checked as :meth:`__init__` checks them and set as
        it sets them (:func:`set_split_and_order`)."""
        unknown = [k for k in passed if k not in ("split_idx", "order")]
        if unknown:
            super().params_from_data({k: passed[k] for k in unknown})
        given = check(type(self).__name__,
                      split_idx=(passed.get("split_idx", getattr(self, "split_idx_arg", None)), SPLIT_IDX),
                      order=(passed.get("order", getattr(self, "order_arg", None)), ORDER))
        set_split_and_order(self, given["split_idx"], given["order"])

    def setup(self, values: Any) -> None:
        """Learn state from the training subset (default: nothing to learn)."""

    def encode(self, values: Any) -> Any:
        return values

    def decode(self, values: Any) -> Any:
        return values

    def __call__(self, values: Any, split_idx: Any = None) -> Any:
        """``values`` encoded as an item of split ``split_idx`` (0, 1 or None; typed Any for the batch transforms
        whose second argument is their batch context), as fastai calls a transform (see :func:`call_item_tfm`): one of
        a single split gives a value of no split back as it is."""
        return call_item_tfm(self, values, split_idx)

    def applies_to(self, block: Any) -> bool:
        """Whether this item/batch transform acts on ``block``'s data (default: every block)."""
        return True


#: what fastai's ``split_idx=`` and ``order=`` keywords accept (None: the class's value)
SPLIT_IDX = Options(None, 0, 1)
ORDER = Interval(integer=True, none_ok=True)


def set_split_and_order(t: Transform, split_idx: int | None, order: int | None) -> None:
    """fastai's ``split_idx=``/``order=`` keywords of a transform's constructor: kept as given (``split_idx_arg``,
    ``order_arg``, the parameters a clone or a record repeats) and, when given, set on the instance, where they win
    over the class's (``Pipeline`` sorts by ``t.order``; :func:`runs_on_split` reads ``t.split_idx``). None keeps
    the class's value, as in fastai. Checks every parameter of ``t``."""
    t.split_idx_arg, t.order_arg = split_idx, order  # type: ignore[attr-defined]
    t.check_params()
    if split_idx is not None:
        t.split_idx = t.split_idx_arg  # type: ignore[attr-defined]
    if order is not None:
        t.order = t.order_arg  # type: ignore[attr-defined,misc]


class FuncTransform(Transform):
    """A transform made of plain functions: ``enc`` encodes, ``dec`` (optional) decodes; nothing to set up.
    ``Transform(enc, dec)`` gives one, as fastai's does, and so do fastai's keywords ``Transform(enc, split_idx=0)``
    (training items only, see :func:`runs_on_split`) and ``Transform(enc, order=3)`` (its place in a
    :class:`Pipeline`). A function pipekit did not register cannot be saved in a file: an export that holds one is
    refused, naming it.

    >>> t = Transform(lambda x: x * 2, lambda x: x // 2)
    >>> type(t).__name__, t(np.arange(3)).tolist(), t.decode(t(np.arange(3))).tolist()
    ('FuncTransform', [0, 2, 4], [0, 1, 2])
    >>> Pipeline([Transform(lambda x: x + "a", order=3), str.upper]).encode("x"), Transform(len, split_idx=1).split_idx
    ('Xa', 1)
    """

    param_attrs = {"split_idx": "split_idx_arg", "order": "order_arg"}
    param_constraints = {"enc": Is(callable, "a function of the values"),
                         "dec": Is(lambda v: v is None or callable(v), "None or a function of the values"),
                         "split_idx": SPLIT_IDX, "order": ORDER}
    #: a file's functions are called on every value: registered functions (or getters, ``Transform(parent_label)``),
    #: never a module, a model, a transform or a callback
    ref_kinds = {"params.enc": ("function", "getter"), "params.dec": ("function", "getter")}
    #: ``split_idx``/``order`` as given (None: the class's), see :func:`set_split_and_order`
    split_idx_arg: int | None = None
    order_arg: int | None = None

    def __init__(self, enc: Callable[[Any], Any], dec: Callable[[Any], Any] | None = None,
                 split_idx: int | None = None, order: int | None = None):
        self.enc, self.dec = enc, dec
        set_split_and_order(self, split_idx, order)
        self._types = (value_types(enc, "Transform(f)"), None if dec is None else value_types(dec, "Transform(f, g)"))

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A file's functions (of a registered kind, checked as it was read) are functions or getters that read a
        value, all the way down (see :func:`~pipekit.data.getters.check_item_getters`): not classes (calling a class
        builds an object of it from every value), nor item finders (``get_files`` would list the folder a value
        names)."""
        super().state_from_data(state)
        for name in ("enc", "dec"):
            check_item_getters(getattr(self, name), f"params.{name}",
                               f"{type(self).__name__}'s {name} is a registered function of the values")

    def encode(self, values: Any) -> Any:
        types = self._types[0]
        return self.enc(values) if types is None else apply_typed(self.enc, types, values)

    def decode(self, values: Any) -> Any:
        if self.dec is None:
            return values
        types = self._types[1]
        return self.dec(values) if types is None else apply_typed(self.dec, types, values)


class RandTransform(Transform):
    """A transform that draws whether it runs each time it is called, as fastai's ``RandTransform``: before each
    item, ``before_call(b, split_idx)`` sets ``self.do`` (True with probability ``p``, drawn from Python's
    ``random``), and the item is transformed only when ``do`` is True. It runs on training items only (class attribute
    ``split_idx = 0``, see :func:`runs_on_split`); a subclass setting ``split_idx = None`` runs on every item, and its
    ``before_call`` may keep the split to choose what to do, as the fastai Albumentations tutorial's
    ``AlbumentationsTransform`` picks its training or its validation augmentation. ``before_call=f`` takes the place
    of the method (``f(b, split_idx=...)``); fastai's ``split_idx=`` and ``order=`` set those of one transform (see
    :func:`set_split_and_order`).

    Every item pipeline calls it so (see :func:`call_item_tfm`). In an image block's ``item_tfms`` it runs each time
    an image is fetched (see :class:`~pipekit.vision.cache.LiveImageStore`): ``b`` is that image, the split the
    loader's (0 for a training loader, 1 for validation, ``test_dl`` and ``predict``). In a ``TfmdLists`` (and each
    part of a mid-level ``Datasets``) ``tl.train``'s items are of split 0, ``tl.valid``'s and new items' (``test_dl``)
    of split 1 and the whole list's (``tl[i]``) of none, as fastai's; the items are encoded once, so each draws once.
    In ``dataloaders(after_item=...)`` each item is of its loader's split, drawn each time it is fetched. Called
    directly, ``t(x, split_idx=0)`` runs it on a training value; ``t(x)`` gives ``x`` back from one that runs on
    training items only, as fastai's does.

    >>> class Negate(RandTransform):
    ...     def encodes(self, x): return -x
    >>> Negate()(3, split_idx=0), Negate()(3), Negate(p=0.0)(3, split_idx=0)
    (-3, 3, 3)
    """

    split_idx: int | None = 0
    #: whether the current item is transformed, as ``before_call`` drew it (drawn again before each item: not saved)
    do: bool = True
    transient = ("do",)
    #: the probability of transforming an item (a class default too, for a subclass whose ``__init__`` sets none)
    p: float = 1.0
    param_attrs = {"before_call": "before_call_fn", "split_idx": "split_idx_arg", "order": "order_arg"}
    param_constraints = {"p": Interval(0, 1),
                         "before_call": Is(lambda v: v is None or callable(v), "None or a function of (item, split_idx)"),
                         "split_idx": SPLIT_IDX, "order": ORDER}
    #: a file's ``before_call`` is called before every item: a registered function, never a module, a getter, a
    #: transform or a callback
    ref_kinds = {"params.before_call": ("function",)}
    #: fastai's keywords a subclass's ``__init__`` may pass on to this one's through ``**kwargs`` (see
    #: :meth:`passed_to_data`)
    passed_params = ("split_idx", "order", "p", "before_call")
    #: ``split_idx``/``order`` as given (None: the class's), see :func:`set_split_and_order`
    split_idx_arg: int | None = None
    order_arg: int | None = None

    def __init__(self, p: float = 1.0, nm: str | None = None, before_call: Callable[..., Any] | None = None,
                 split_idx: int | None = None, order: int | None = None):
        self.p, self.nm, self.before_call_fn = p, nm, before_call
        set_split_and_order(self, split_idx, order)
        if before_call is not None:  # fastai's: the function stands for the method
            self.before_call = before_call  # type: ignore[method-assign]

    def passed_to_data(self) -> dict[str, Any]:
        """``split_idx`` and ``order`` (see :meth:`Transform.passed_to_data`), ``p`` other than 1 and a
        ``before_call`` function given to a subclass whose ``__init__`` passes them on through ``**kwargs``."""
        out = super().passed_to_data()
        own = param_names(type(self))
        if "p" not in own and self.p != 1.0:
            out["p"] = self.p
        if "before_call" not in own and getattr(self, "before_call_fn", None) is not None:
            out["before_call"] = self.before_call_fn
        return out

    def params_from_data(self, passed: dict[str, Any]) -> None:
        """``split_idx``, ``order``, ``p`` and ``before_call`` read from a file's record, checked as
        :meth:`__init__` checks them and set as it sets them."""
        rest = {k: v for k, v in passed.items() if k not in ("p", "before_call")}
        if rest:
            super().params_from_data(rest)
        given = check(type(self).__name__, **{k: (passed[k], RandTransform.param_constraints[k])
                                              for k in ("p", "before_call") if k in passed})
        if "p" in given:
            self.p = given["p"]
        if given.get("before_call") is not None:
            self.before_call_fn = self.before_call = given["before_call"]  # type: ignore[method-assign]

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A file's ``before_call`` (a registered function, checked as it was read) is a function of the item, all the
        way down (see :func:`~pipekit.data.getters.check_item_getters`): not a class (calling a class builds an object
        of it before every item), nor an item finder (``get_files`` would list the folder an item names)."""
        super().state_from_data(state)
        check_item_getters(getattr(self, "before_call_fn", None), "params.before_call",
                           f"{type(self).__name__}'s before_call is a registered function of (item, split_idx)")

    def before_call(self, b: Any, split_idx: int | None) -> None:
        """Draw ``self.do`` for the item ``b`` (of split ``split_idx``); override to draw more (a subclass's own
        random parameters) or to keep the split."""
        self.do = self.p == 1.0 or random.random() < self.p


class ItemTransform(Transform):
    """fastai's transform of a whole item: its ``encodes(self, x)`` gets the item's values together (``img, mask =
    x``), as the fastai Albumentations tutorial's ``SegmentationAlbumentationsTransform(ItemTransform)`` does.

    A ``DataBlock`` runs its item transforms on each block's values apart (the image, then the mask, with the same
    random draws), never on a whole item, so it refuses one of these in ``item_tfms`` when it is built, saying what
    to give instead: for images with their masks, points or boxes, the albumentations pipeline itself,
    ``item_tfms=[Resize(224), Albumentations(A.Compose([...]))]`` (see :class:`pipekit.vision.Albumentations`),
    which moves them with their image on training batches (``on_valid=True``: on every batch); for the image alone,
    a ``Transform`` whose ``encodes(self, x: PILImage)`` gets it. Called directly, it transforms the value it is given,
    a tuple whole.

    >>> from pipekit.data import CategoryBlock, DataBlock
    >>> from pipekit.core import ParameterError
    >>> class Swap(ItemTransform):
    ...     def encodes(self, x): a, b = x; return b, a
    >>> Swap()((1, 2))
    (2, 1)
    >>> try:
    ...     DataBlock(blocks=(CategoryBlock, CategoryBlock), item_tfms=Swap())
    ... except ParameterError as e:
    ...     print(str(e)[:85])
    DataBlock: item transform Swap is an ItemTransform, which fastai gives the whole item
    """

    abstract = True  # a base class: a user's subclass says what it does

    def applies_to(self, block: Any) -> bool:
        raise ParameterError(
            f"DataBlock: item transform {type(self).__name__} is an ItemTransform, which fastai gives the whole item "
            "((image, mask), (image, points)); a DataBlock runs item transforms on each block's values apart (the "
            "image, then the mask, with the same random draws), never on the whole item. To move masks, points and "
            "boxes with their image, give the albumentations pipeline itself in item_tfms: item_tfms=[Resize(224), "
            "Albumentations(A.Compose([...]))] (from pipekit.vision; training batches only, as split_idx = 0, or "
            "every batch with on_valid=True); for the image alone, subclass Transform with encodes(self, x: PILImage)")


def runs_on_split(t: Any, split_idx: int | None) -> bool:
    """Whether the transform ``t`` runs on the items of split ``split_idx`` (0 training, 1 validation and new items),
    from its ``split_idx`` attribute as fastai reads it: None (or none at all) runs on every split, 0 or 1 on that
    split only. A value of no split (``split_idx=None``: a transform called directly) runs only those of every split.

    >>> runs_on_split(Transform(), 1), runs_on_split(RandTransform(), 0), runs_on_split(RandTransform(), 1)
    (True, True, False)
    """
    own = getattr(t, "split_idx", None)
    return own is None or own == split_idx


def call_item_tfm(t: Any, value: Any, split_idx: int | None, encode: Callable[[Any], Any] | None = None) -> Any:
    """``t`` on one item ``value`` of split ``split_idx`` (0 training, 1 validation and new items, None a value of no
    split), as fastai calls an item transform: first its ``before_call(value, split_idx=...)`` when it has one (a
    :class:`RandTransform` draws ``do`` there, whatever the split), then ``value`` is given back as it is when ``do``
    is False or ``t`` does not run on that split (:func:`runs_on_split`), else encoded (``t.encode``, or ``encode``
    when given: how the caller encodes, a whole column, an image). A transform with neither costs two attribute
    reads. The one way pipekit's item pipelines run a step (``Pipeline``, ``TfmdLists``, ``Datasets``,
    ``after_item``, an image block's ``item_tfms``).

    >>> class Shout(RandTransform):
    ...     split_idx = None
    ...     def encodes(self, x): return x.upper()
    >>> call_item_tfm(Shout(), "a", 1), call_item_tfm(Shout(p=0.0), "a", 0), call_item_tfm(RandTransform(), "a", 1)
    ('A', 'a', 'a')
    """
    before = getattr(t, "before_call", None)
    if before is not None:
        before(value, split_idx=split_idx)
        if not getattr(t, "do", True):
            return value
    if not runs_on_split(t, split_idx):
        return value
    return t.encode(value) if encode is None else encode(value)


def depends_on_split(t: Any) -> bool:
    """Whether what ``t`` makes of an item may depend on the item's split: it has a ``before_call`` (a
    :class:`RandTransform`) or runs on one split only (a ``split_idx``). Items through transforms that do not are
    encoded once for every split.

    >>> depends_on_split(Transform(str.upper)), depends_on_split(Transform(str.upper, split_idx=1)), depends_on_split(RandTransform())
    (False, True, True)
    """
    return getattr(t, "before_call", None) is not None or getattr(t, "split_idx", None) is not None


def encode_items(t: Transform, values: Any, split_idx: int | None, by_value: bool = False,
                 seed_item: Callable[[int], None] | None = None) -> Any:
    """``t`` on a column of items (a list, tuple, NumPy array or Series) of split ``split_idx``, as fastai runs it on
    each (:func:`call_item_tfm`): a transform with a ``before_call`` item by item, so each item draws its own ``do``;
    any other on the whole column at once (see :func:`_step`), or not at all when it is not of that split.
    ``by_value``: a block's column, which a transform typed for nothing gets value by value (:func:`encode_column`).
    ``seed_item``: called with each item's position before a transform with a ``before_call`` draws for it (to seed
    its draws, see :func:`~pipekit.data.store.item_draws`).

    >>> class Exclaim(RandTransform):
    ...     def encodes(self, x: str): return x + "!"
    >>> encode_items(Exclaim(), ["a", "b"], 0), encode_items(Exclaim(), ["a", "b"], 1), encode_items(Exclaim(p=0.0), ["a"], 0)
    (['a!', 'b!'], ['a', 'b'], ['a'])
    """
    if getattr(t, "before_call", None) is None:
        return call_item_tfm(t, values, split_idx, lambda v: _step(t, "encode", v, by_value))

    def each(v: Any) -> Any:
        return call_item_tfm(t, v, split_idx)
    if isinstance(values, pl.Series):
        return pl.Series(values.name, _encode_items(t, values.to_list(), each, seed_item), strict=False)
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return np.array(_encode_items(t, values.tolist(), each, seed_item))
    if isinstance(values, (list, tuple)) or is_pandas(values, "Series"):
        return _encode_items(t, values, each, seed_item)
    if seed_item is not None:
        seed_item(0)
    return each(values)  # one value


def value_types(fn: Callable[..., Any], where: str, skip_self: bool = False) -> tuple[type, ...] | None:
    """The classes the value parameter of ``fn`` is annotated with (``x: int``, ``x: int | float``), None when it
    is not annotated; an annotation that names no class (``x: "Sequence[int]"``) is refused, naming ``where``.

    >>> def f(x: int): return x + 1
    >>> def g(x: Any): return x
    >>> value_types(f, "f"), value_types(lambda x: x, "g"), value_types(g, "g")
    ((<class 'int'>,), None, None)

    ``Any`` and ``object`` name every value: such a function is not typed.
    """
    import builtins
    import inspect
    import types as pytypes
    import typing

    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a builtin without a signature (str.lower): nothing annotated
        return None
    params = params[1:] if skip_self else params
    if not params or params[0].annotation is inspect.Parameter.empty:
        return None
    try:
        hint = typing.get_type_hints(fn).get(params[0].name, params[0].annotation)
    except Exception:  # a name some annotation uses is not defined where fn was: a builtin's name still reads
        hint = params[0].annotation
        hint = getattr(builtins, hint, hint) if isinstance(hint, str) else hint
    parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, pytypes.UnionType) else (hint,)
    if any(h is typing.Any or h is object or h in ("Any", "typing.Any", "object") for h in parts):
        return None  # ``x: Any`` (PILImage.create's) says every value
    classes = tuple(typing.get_origin(h) or h for h in parts)
    if not all(isinstance(c, type) for c in classes):
        raise ParameterError(f"{where} annotates its value as {hint!r}, which names no class: a transform applies to "
                             "the values of the class its value is annotated with (x: int, x: str | Path); name one, "
                             "or drop the annotation to apply it to every value")
    return classes


def apply_typed(fn: Callable[[Any], Any], types: tuple[type, ...], values: Any,
                other: Callable[[Any], Any] | None = None) -> Any:
    """``fn`` on what of ``values`` is of ``types`` (fastai's type dispatch): a value of them is given to ``fn``; a
    tuple or list is gone through item by item (a tuple stays a tuple), a NumPy array or a Series value by value (as
    Python values); anything else is given back as it is, or to ``other`` when given.

    >>> def f(x: int): return x + 1
    >>> apply_typed(f, (int,), 2), apply_typed(f, (int,), 2.0), apply_typed(f, (int,), (2, "a", [3, 4.5]))
    (3, 2.0, (3, 'a', [4, 4.5]))
    """
    if isinstance(values, types):
        return fn(values)
    if isinstance(values, (tuple, list)):
        return type(values)(apply_typed(fn, types, v, other) for v in values)
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return np.array([apply_typed(fn, types, v, other) for v in values.tolist()])
    if isinstance(values, pl.Series):
        return pl.Series(values.name, [apply_typed(fn, types, v, other) for v in values.to_list()], strict=False)
    if is_pandas(values, "Series"):  # items, as a list holds them
        return [apply_typed(fn, types, v, other) for v in values.tolist()]
    return values if other is None else other(values)


#: the attributes of a typed ``encode``/``decode`` made by ``Transform.__init_subclass__``: the classes it applies to,
#: and the typed definitions it dispatches over (a subclass's are added to them, see :func:`_over_inherited`)
_VALUE_TYPES, _TYPED_DEFINITIONS = "_value_types", "_typed_definitions"


def _typed_method(fn: Callable[..., Any], types: tuple[type, ...]) -> Callable[..., Any]:
    """A transform's ``encodes``/``decodes`` annotated with ``types`` as the method applying it by type."""
    import functools

    @functools.wraps(fn)
    def method(self: Any, values: Any) -> Any:
        return apply_typed(lambda v: fn(self, v), types, values)
    setattr(method, _VALUE_TYPES, types)
    setattr(method, _TYPED_DEFINITIONS, (fn,))
    return method


def _shown(first: Callable[..., Any], classes: tuple[type, ...]) -> Callable[..., Any]:
    """What ``inspect.unwrap`` finds on a method made of several typed definitions: the first definition's code (where
    it was written, see :func:`written_for_items`) annotated with every class the method takes (see
    :func:`value_types`)."""
    import types as pytypes
    import typing

    shown = pytypes.FunctionType(first.__code__, first.__globals__, first.__name__, first.__defaults__,
                                 first.__closure__)
    shown.__kwdefaults__ = first.__kwdefaults__
    value_name = list(inspect.signature(first).parameters)[1]
    shown.__annotations__ = {value_name: typing.Union[classes]}
    return shown


def _over_inherited(cls: type, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (a subclass's ``encodes`` or ``decodes`` as ``name``) joined to the one ``cls`` inherits, as fastai's
    type dispatch does: when both are typed, a value goes to the definition, the subclass's or an inherited one,
    annotated with its nearest class (the subclass's for a class both name), so ``class Sub(Base)`` adding an
    ``encodes`` for ``str`` keeps ``Base``'s for ``int``. An untyped ``method`` takes every value, and an inherited
    untyped one is pipekit's whole-column method, left alone.

    >>> class Base(Transform):
    ...     def encodes(self, x: int): return x + 1
    ...     def encodes(self, x: bool): return "bool"
    >>> class Sub(Base):
    ...     def encodes(self, x: str): return x.upper()
    ...     def encodes(self, x: int): return x * 10
    >>> Sub()((1, "a", 2.5, True))
    (10, 'A', 2.5, 'bool')
    """
    own = getattr(method, _TYPED_DEFINITIONS, None)
    theirs = getattr(getattr(super(cls, cls), name, None), _TYPED_DEFINITIONS, None)
    if own is None or theirs is None:
        return method
    # every definition is typed, so there is a dispatch; later definitions (the subclass's own) win a tie
    merged = cast(Callable[..., Any], _dispatch_method([*theirs, *own], f"{cls.__name__}.{name}"))
    # what inspect.unwrap finds: the subclass's own first definition (where it was written, see written_for_items)
    merged.__wrapped__ = _shown(inspect.unwrap(method), getattr(merged, _VALUE_TYPES))  # type: ignore[attr-defined]
    return merged


def _dispatch_method(fns: list[Callable[..., Any]], where: str) -> Callable[..., Any] | None:
    """The method applying a class's several ``encodes`` (or ``decodes``) ``fns``, in the order written, as fastai's
    type dispatch does: a value goes to the definition annotated with its nearest class (``bool`` before ``int``; a
    virtual class, such as ``numbers.Number`` or pipekit's image kinds, after the value's own classes; of two
    definitions for one class, the later), a list, tuple, array or Series value by value (:func:`apply_typed`), and a
    value of none of them to the definition that annotates nothing when there is one, else back as it is. None when
    no definition is annotated: the last one is the method, as Python keeps it.

    >>> class Sizes(Transform):
    ...     def encodes(self, x): return "other"
    ...     def encodes(self, x: int): return "int"
    ...     def encodes(self, x: bool): return "bool"
    >>> Sizes()((1, True, 2.5))
    ('int', 'bool', 'other')
    """
    import abc
    import functools

    table: list[tuple[tuple[type, ...], Callable[..., Any]]] = []
    untyped = None
    for fn in fns:
        classes = value_types(fn, where, skip_self=True)
        if classes is None:
            untyped = fn
        else:
            table.append((classes, fn))
    if not table:
        return None
    every = tuple(dict.fromkeys(c for classes, _ in table for c in classes))
    # the definition chosen for a value's class, kept when one of the class's own (``__mro__``) annotated classes
    # decided and each of those asks only the class (a virtual class, never chosen over them, may ask the value:
    # PILImageBW takes a grey ImageArray, not a colour one)
    chosen: dict[type, Callable[..., Any]] = {}
    by_class = (type.__instancecheck__, abc.ABCMeta.__instancecheck__)

    def pick(value: Any) -> Callable[..., Any]:
        kind = type(value)
        best = chosen.get(kind)
        if best is not None:
            return best
        mro = kind.__mro__
        best, rank = table[0][1], len(mro) + 1
        for classes, fn in table:
            for c in classes:
                if isinstance(value, c) and (r := mro.index(c) if c in mro else len(mro)) <= rank:
                    best, rank = fn, r
        if rank < len(mro) and all(type(c).__instancecheck__ in by_class for c in every if c in mro):
            chosen[kind] = best
        return best

    first = table[0][1]

    @functools.wraps(first)
    def method(self: Any, values: Any) -> Any:
        return apply_typed(lambda v: pick(v)(self, v), every, values,
                           None if untyped is None else functools.partial(untyped, self))

    # what inspect.unwrap finds, as for one typed ``encodes`` (see _shown); with an untyped definition it takes every
    # value, so is typed for nothing
    method.__wrapped__ = _shown(first, every + ((object,) if untyped is not None else ()))  # type: ignore[attr-defined]
    if untyped is None:
        setattr(method, _VALUE_TYPES, every)
        setattr(method, _TYPED_DEFINITIONS, tuple(fn for _, fn in table))
    return method


class _ReadColumn:
    """What :func:`as_transform` makes a getter's transform encode with: the getter on one path or text (one item),
    or over a whole list, array, Series or table of items (:meth:`~pipekit.data.Getter.on_items`), as a DataBlock
    reads its column. A module-level class holding the getter, so that a ``TfmdLists`` or ``Datasets`` built on it
    pickles (and copies) with the getter it was given."""

    __name__ = "read"  # the name a transform's repr and errors show: ``FuncTransform(enc=read)``
    #: a getter reads whole columns: never run item by item (see :func:`written_for_items`)
    reads_columns = True

    def __init__(self, getter: Getter):
        self.getter = getter

    def __call__(self, v: Any) -> Any:
        return self.getter(v) if isinstance(v, (str, os.PathLike)) else self.getter.on_items(v)

    def __repr__(self) -> str:
        return f"read({self.getter!r})"


def as_transform(t: Any) -> Transform:
    """``t`` as a Transform: itself, an instance of a Transform class, a getter (``parent_label``, ``ColReader``...)
    run over the whole column, or a plain function wrapped in a :class:`FuncTransform`; anything else is refused.

    >>> as_transform(str.lower)("AB"), type(as_transform(Transform)).__name__
    ('ab', 'Transform')
    """
    if isinstance(t, Transform):
        return t
    if isinstance(t, Getter):  # a getter reads the whole column, as in a DataBlock; one path or text is one item
        return FuncTransform(_ReadColumn(t))
    if isinstance(t, type) and issubclass(t, Transform):
        return t()
    if callable(t) and not isinstance(t, type):
        return FuncTransform(t)
    raise ParameterError(f"expected a Transform (or a function to wrap in one), got {t!r:.80}")


def as_list(value: Any) -> list:
    """What every parameter taking transforms, metrics, callbacks or procs accepts, as one flat list: one
    object, a list/tuple of them, or lists inside a list (``[aug_transforms(), Normalize()]``); None is none.

    >>> as_list("a"), as_list(["a", ("b", ["c"])]), as_list(None)
    (['a'], ['a', 'b', 'c'], [])
    """
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        return [value]
    out: list = []
    for v in value:
        out.extend(as_list(v) if isinstance(v, (list, tuple)) else [v])
    return out


class Pipeline:
    """Transforms composed by their ``order``; ``setup`` fits each on the output of the ones before it. A plain
    function is wrapped in a :class:`FuncTransform` and a Transform class is instantiated, as in fastai.

    >>> Pipeline([]).encode([1, 2]), Pipeline([str.lower]).encode("AB")
    ([1, 2], 'ab')
    """

    #: whether a plain function (or a Transform class) is taken as a step; batch transforms must be objects
    wraps_functions: ClassVar[bool] = True

    def __init__(self, tfms: Iterable[Transform] | Transform | None = None, by_value: bool = False):
        #: whether a column (a block's Series of values) goes to a user's transform typed for nothing value by value
        #: (see :func:`encode_column`) rather than whole
        self.by_value = by_value
        tfms = as_list(tfms if tfms is None or isinstance(tfms, (Transform, list, tuple)) or callable(tfms)
                       else list(tfms))
        for t in tfms:
            if not (isinstance(t, Transform) or self.wraps_functions and callable(t)):
                raise ParameterError(f"{type(self).__name__} takes Transform objects"
                                     f"{' (or functions to wrap in one)' if self.wraps_functions else ''}, got {t!r:.80}")
        self.tfms: list[Transform] = sorted((as_transform(t) for t in tfms), key=lambda t: t.order)

    def setup(self, values: Any, encode_last: bool = True, split_idx: int | None = 0) -> Any:
        """Fit each transform on ``values`` as the ones before it encoded them; returns the encoded values (None
        with ``encode_last=False``, which leaves the last transform's encoding to the caller: a block encodes every
        item once its transforms are fitted). A transform that fails is named, with what it was given (a
        :class:`PipelineStepError`). ``values`` are items of split ``split_idx`` (the training ones, as fastai sets
        up on them), encoded as :func:`encode_items` does; a block's column (``by_value``) by every step.

        >>> class Scale(Transform):
        ...     def setups(self, xs): self.top_ = max(xs)
        ...     def encodes(self, x): return x / self.top_
        >>> Pipeline([Scale]).setup([1, 2, 4])
        [0.25, 0.5, 1.0]
        """
        for i, t in enumerate(self.tfms):
            _step(t, "setup", values)
            if not encode_last and i == len(self.tfms) - 1:
                return None
            values = _step(t, "encode", values, True) if self.by_value else encode_items(t, values, split_idx)
        return values

    def encode(self, values: Any, split_idx: int | None = None) -> Any:
        """One item through the steps, as fastai's pipeline of split ``split_idx`` runs them (see
        :func:`call_item_tfm`: 0 training, 1 validation and new items, None no split, where only the transforms of
        every split run). A block's column (``by_value``) goes through every step (see :func:`encode_column`).

        >>> class Bang(RandTransform):
        ...     def encodes(self, x: str): return x + "!"
        >>> p = Pipeline([str.upper, Bang()])
        >>> p.encode("a", split_idx=0), p.encode("a", split_idx=1), p("a")
        ('A!', 'A', 'A')
        """
        if self.by_value:
            for t in self.tfms:
                values = encode_column(t, values)
            return values
        for t in self.tfms:
            values = call_item_tfm(t, values, split_idx)
        return values

    def decode(self, values: Any, split_idx: int | None = None) -> Any:
        """``values`` back through the steps, last first, as fastai's pipeline of split ``split_idx`` decodes them: a
        step that does not run on that split (:func:`runs_on_split`; with None, no split, one of a single split) did
        not encode them and does not decode them.

        >>> class Tenfold(Transform):
        ...     split_idx = 0
        ...     def encodes(self, x: int): return x * 10
        ...     def decodes(self, x: int): return x // 10
        >>> p = Pipeline([Tenfold()])
        >>> p.decode(p.encode(3, split_idx=0), split_idx=0), p.decode(p.encode(3, split_idx=1), split_idx=1), p.decode(30)
        (3, 3, 30)
        """
        for t in reversed(self.tfms):
            if runs_on_split(t, split_idx):
                values = t.decode(values)
        return values

    __call__ = encode

    def __len__(self) -> int:
        return len(self.tfms)

    def __iter__(self):
        return iter(self.tfms)

    def __getitem__(self, i: int) -> Transform:
        """Step ``i`` (in the order the steps run), as the book's ``tls.tfms[1]``."""
        return self.tfms[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + " -> ".join(repr(t) for t in self.tfms) + ")"


def _step(t: Transform, what: str, values: Any, by_value: bool = False) -> Any:
    """``t.setup(values)`` or ``t.encode(values)``; a failure is named with the transform and what it was given.
    pipekit's own errors (a label outside the vocab, a bad parameter) already say what is wrong and pass as they
    are. A Transform subclass written as fastai's, with an ``encodes`` typed for nothing (see :func:`runs_per_value`),
    encodes a list, tuple, 1-D array or Series item by item, as fastai runs it on each item of a ``TfmdLists``: given
    the whole list, ``x * 10`` would repeat it and ``x[::-1]`` reverse it. Any other transform written for one item (see
    :func:`written_for_items`: one typed for its values, fastai's ``Transform(f)``) that fails on the whole list or
    tuple (or, for a function, does not give one value per item) is run item by item, as fastai runs it, the container
    kept (a failing item is named by position and value); a function giving one value per item of the whole list
    (``lambda fs: [f.parent.name for f in fs]``) is taken as written for the column. Items given as a 1-D NumPy
    array or a pandas or Polars Series are treated as the same items in a list: a function given the whole array
    or Series is kept when it gives one value per item (``lambda a: a * 2``), else (``len(str(a))``, ``Path(a)``)
    run on each item, and what runs item by item gives a list of the values. Any other failure gets the hint that
    pipekit's transforms see the whole column. ``by_value``: encode a block's column with :func:`encode_column`.

    >>> class PlusOne(Transform):
    ...     def encodes(self, x): return x + 1
    >>> class Times10(Transform):
    ...     def encodes(self, x): return x * 10
    >>> _step(PlusOne(), "encode", [1, 2]), _step(Times10(), "encode", (-1, 3)), _step(Transform(lambda x: x * 2), "encode", [1, 2])
    ([2, 3], (-10, 30), [2, 4])
    >>> def name_len(o): return len(str(o))
    >>> _step(Transform(name_len), "encode", np.array(["a", "bcd"])), _step(Transform(lambda a: a * 2), "encode", np.arange(2))
    ([1, 3], array([0, 2]))
    """
    items = what == "encode" and (isinstance(values, (list, tuple)) or not by_value and _item_column(values))
    per_value = what == "encode" and not isinstance(t, FuncTransform) and runs_per_value(t)
    if per_value and items:
        return _encode_items(t, values)
    by_items = items and written_for_items(t)
    try:
        out = encode_column(t, values) if (by_value or per_value) and what == "encode" else getattr(t, what)(values)
    except Exception as e:
        if by_items:
            return _encode_items(t, values)
        if isinstance(e, PipekitError):
            raise
        raise PipelineStepError(
            f"{type(t).__name__}.{what} failed on a column of {_count(values)} item(s) ({type(values).__name__}): "
            f"{type(e).__name__}: {e}. pipekit transforms see all the items at once: write the transform for the "
            "whole list (or array, or Series)") from e
    if by_items and isinstance(t, FuncTransform) and not _one_per_item(out, len(values)):
        # a function of one value, as fastai's Transform(f) takes it, that gives no value per item of the list, array
        # or Series (``lambda x: x * 2`` repeats a list, ``len`` counts it, ``len(str(a))`` reads an array as one
        # text): run on each item
        return _encode_items(t, values)
    return out


def _item_column(values: Any) -> bool:
    """Whether ``values`` are items given as a 1-D NumPy array or a pandas or Polars Series (see :func:`_step`)."""
    return (isinstance(values, pl.Series) or isinstance(values, np.ndarray) and values.ndim == 1
            or is_pandas(values, "Series"))


def _one_per_item(out: Any, n: int) -> bool:
    """Whether ``out``, what a function made of a column of ``n`` items, holds one value per item: a sized value
    (not a text) of length ``n``; one value (an int, a 0-d array) or a text is no column."""
    if isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        return False
    try:
        return len(out) == n
    except TypeError:  # a 0-d array has __len__ but no length
        return False


def written_for_items(t: Transform) -> bool:
    """Whether ``t`` may be written for one item, as fastai's are: a function wrapped by ``Transform(f)`` (not one of
    pipekit's getters, which read whole columns), or a Transform subclass whose ``encode`` (``encodes``) is defined
    outside pipekit. pipekit's own transforms work on whole columns and are never run item by item.

    >>> class Mine(Transform):
    ...     def encodes(self, x): return x
    >>> from pipekit.data import Categorize
    >>> written_for_items(Mine()), written_for_items(Transform(len)), written_for_items(Categorize())
    (True, True, False)
    """
    if not isinstance(t, Transform) or t.takes_context:
        return False
    if isinstance(t, FuncTransform):
        return not getattr(t.enc, "reads_columns", False)
    import inspect

    code = getattr(inspect.unwrap(type(t).encode), "__code__", None)  # an ``encodes`` typed by its annotation: its own
    if code is None:
        return False
    where = os.path.abspath(code.co_filename)
    # pipekit's recipes are written as a reader writes them, and are installed inside the package (pipekit.recipes)
    return not where.startswith(_PACKAGE_DIR) or where.startswith(_PACKAGE_DIR + "recipes" + os.sep)


#: where pipekit's own code lives: a transform whose ``encode`` is defined elsewhere is a user's
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def runs_per_value(t: Transform) -> bool:
    """Whether ``t`` is written for one value and typed for nothing (see :func:`written_for_items`): a function
    wrapped by ``Transform(f)`` whose value is not annotated, or a user's Transform subclass whose ``encodes``
    (fastai's spelling) does not annotate it. One typed (``encodes(self, x: str)``) gets the values of its type
    already (:func:`apply_typed`); one written with pipekit's ``encode`` sees whole columns.

    >>> class Upper(Transform):
    ...     def encodes(self, x): return x.upper()
    >>> class Typed(Transform):
    ...     def encodes(self, x: str): return x.upper()
    >>> def f(x: str): return x
    >>> runs_per_value(Upper()), runs_per_value(Transform(str.upper)), runs_per_value(Typed()), runs_per_value(Transform(f))
    (True, True, False, False)
    """
    if not written_for_items(t):
        return False
    if isinstance(t, FuncTransform):
        return t._types[0] is None
    owner = next(c for c in type(t).__mro__ if "encode" in c.__dict__)
    # __init_subclass__ sets ``encode`` beside the ``encodes`` it is made from, wrapped when its value is typed
    return "encodes" in owner.__dict__ and not hasattr(owner.__dict__["encode"], "__wrapped__")


def encode_column(t: Transform, values: Any) -> Any:
    """``t.encode`` on a block's column of values (a Polars Series or a 1-D NumPy array): a transform that
    :func:`runs_per_value` gets each value, as fastai runs it on each item, in a column of the same kind (a value it
    fails on is named by position); any other transform gets the whole column.

    >>> def upper(x): return x.upper() if isinstance(x, str) else x
    >>> encode_column(Transform(upper), pl.Series("y", ["three", "seven"])).to_list()
    ['THREE', 'SEVEN']
    """
    if isinstance(values, pl.Series) and runs_per_value(t):
        return pl.Series(values.name, _encode_items(t, values.to_list()), strict=False)
    if isinstance(values, np.ndarray) and values.ndim == 1 and runs_per_value(t):
        return np.array(_encode_items(t, values.tolist()))
    return t.encode(values)


def _encode_items(t: Transform, values: Any, call: Callable[[Any], Any] | None = None,
                  seed_item: Callable[[int], None] | None = None) -> Any:
    """``t.encode`` (or ``call``) on each item of ``values``, in a container of the same type (a list for the
    items of a 1-D array or a Series, read as Python values as a list holds them), after ``seed_item(position)``
    when given; the item that fails is named."""
    given = values
    if not isinstance(values, (list, tuple)):
        values = values.to_list() if isinstance(values, pl.Series) else values.tolist()
    out = []
    for i, v in enumerate(values):
        if seed_item is not None:
            seed_item(i)
        try:
            out.append(t.encode(v) if call is None else call(v))
        except Exception as e:
            raise PipelineStepError(f"{type(t).__name__}.encode failed on item {i} ({v!r:.80}) of {len(values)}: "
                                    f"{type(e).__name__}: {e}") from e
    return rebuild(values, out) if values is given else out


def rebuild(like: list | tuple, values: list) -> Any:
    """``values`` in a container of the type of ``like``: a list or ``L`` as one, a tuple as one, a tuple subclass
    taking its items as arguments (a :class:`~pipekit.data.fastuple`, a named tuple) as one.

    >>> from pipekit.data import L, fastuple
    >>> rebuild(L([0]), [1, 2]), rebuild((0,), [1, 2]), type(rebuild(fastuple(0, 0), [1, 2])).__name__
    ([1, 2], (1, 2), 'fastuple')
    """
    kind = type(like)
    if kind in (list, tuple):
        return kind(values)
    if isinstance(like, fastuple):  # made as its items (one item that is a list stays one item)
        return tuple.__new__(type(like), values)
    if isinstance(like, tuple) and hasattr(like, "_fields"):  # a named tuple
        return kind(*values)
    try:  # an ``L`` or another list or tuple subclass taking one iterable
        return kind(values)
    except TypeError:
        return list(values) if isinstance(like, list) else tuple(values)


def _count(values: Any) -> str:
    try:
        return str(len(values))
    except TypeError:  # one value (``Pipeline.setup(2.0)``)
        return "1"


@dataclass
class BatchContext:
    """What a batch transform may know: each batch element's geometry (``None``, ``"image"``,
    ``"mask"``, ``"points"``, ``"bbox"``), how many are inputs, train or not, the device, and where the
    batch is in the run (``key`` = seed, epoch, batch) from which its random streams are derived.

    ``source_sizes``: per batch element, each item's (height, width) as its image item transform got it, (B, 2),
    where the loader knows the batch's rows and the element's store knows them (``Store.crop_sizes``), else None;
    empty when the loader gave none. A random crop drawn in the source's proportions (``RandomResizedCrop``) reads
    them from a batch gathered before it runs (a loader on the GPU, a ``create_batch`` of one's own).

    >>> import torch
    >>> from pipekit.data import BatchContext
    >>> ctx = BatchContext(geometry=("image", None), n_inp=1, train=True, device=torch.device("cpu"), key=(0, 1, 5))
    >>> flips = ctx.rng("flip").random(3)
    >>> bool((flips == ctx.rng("flip").random(3)).all()), bool((flips == ctx.rng("crop").random(3)).all())
    (True, False)
    """

    geometry: tuple[str | None, ...]
    n_inp: int
    train: bool
    device: torch.device
    key: tuple[int, ...] = (0,)
    source_sizes: tuple[np.ndarray | None, ...] = ()

    def rng(self, stream: str = "") -> np.random.Generator:
        """The random generator of ``stream`` for this batch: the same (seed, epoch, batch, stream) always
        gives the same draws, whatever other streams exist or in what order they are used."""
        return np.random.default_rng([*self.key, zlib.crc32(stream.encode())])


class BatchTransform(Transform):
    """A transform over a whole collated batch (a tuple of tensors), run after the device transfer.

    ``encode(batch, ctx)`` must draw randomness only from ``ctx.rng(stream)``, which depends on
    (seed, epoch, batch, stream) only: that is what makes augmentation repeatable and thread-safe.

    >>> import torch
    >>> from pipekit.data import BatchContext, BatchTransform
    >>> class AddNoise(BatchTransform):
    ...     def encode(self, batch, ctx):
    ...         x, *rest = batch
    ...         if not ctx.train:
    ...             return batch
    ...         noise = ctx.rng("noise").normal(0, 0.1, size=tuple(x.shape))
    ...         return (x + torch.as_tensor(noise, dtype=x.dtype), *rest)
    >>> ctx = BatchContext(geometry=(None, None), n_inp=1, train=True, device=torch.device("cpu"), key=(0, 0, 3))
    >>> batch = (torch.zeros(2, 3), torch.tensor([0, 1]))
    >>> out = AddNoise().encode(batch, ctx)
    >>> tuple(out[0].shape), torch.equal(out[0], AddNoise().encode(batch, ctx)[0]), out[1].tolist()
    ((2, 3), True, [0, 1])
    """

    order: ClassVar[int] = 50
    takes_context: ClassVar[bool] = True
    #: runs on the CPU, in the loader's worker threads, before the batch is moved to the device (per-image
    #: library code on NumPy arrays); such transforms run before every other batch transform
    on_host: ClassVar[bool] = False

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return batch

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return batch

    @property
    def stage_name(self) -> str:
        """The name this step's time is reported under when the pipeline is profiled."""
        return type(self).__name__

    def fuse(self, following: BatchTransform) -> BatchTransform | None:
        """A step doing this transform then ``following`` in one pass with the same result, or None.

        A pipeline runs fused steps in place of adjacent pairs (e.g. augmentation then normalisation per
        image while it is in the CPU cache); records, ``decode`` and ``len`` still see each transform."""
        return None

    def setup_batches(self, dl: Any) -> None:
        """Learn what this transform needs from the training loader ``dl``, once, when the loaders are built
        (``Normalize()`` without statistics takes them from a training batch). Default: nothing."""

    def reads_rows(self, store: Any, geometry: str | None, j: int, n_inp: int) -> bool:
        """Whether this transform, run first, takes batch element ``j`` as :class:`~pipekit.data.store.StoreRows`
        of ``store`` and reads the store itself (saving the gathered copy). Default: no."""
        return False

    def valid_geometry(self, in_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
        """For a transform that moves pixels when it is not augmenting (a centred crop to a size): the (3, 3)
        matrix from its output's -1..1 coordinates to its input's, and its output size, for an input of size
        ``in_hw``; None when it leaves coordinates alone (the default). ``predict`` maps predicted points and
        boxes back through it."""
        return None


class BatchPipeline(Pipeline):
    """Batch transforms in order; they all see the whole batch tuple and act on the elements they handle.

    ``steps()`` is what ``encode`` runs: the transforms, with adjacent ones that can be done in one pass
    (``BatchTransform.fuse``) fused. Each step's time is reported under its ``stage_name`` when profiled.

    The repr lists the transforms in the order a batch goes through them (by ``order``; a fused step runs its
    transforms in that order too). A transform that turns uint8 images into floats (one with a ``float_lut``:
    ``Normalize``, ``IntToFloat``) does so where it comes first, dividing by 255 before its own work; the ones after
    it get float images and leave them as they are, which the repr says, so ``Normalize(...) -> IntToFloat()`` is not
    read as normalising 0..255 pixels and dividing by 255 after.

    >>> import torch
    >>> from pipekit.data import BatchContext, BatchPipeline, BatchTransform
    >>> class AddOneBatch(BatchTransform):
    ...     def encode(self, batch, ctx): return (batch[0] + 1, *batch[1:])
    >>> class HalveBatch(BatchTransform):
    ...     order = 60
    ...     def encode(self, batch, ctx): return (batch[0] / 2, *batch[1:])
    >>> ctx = BatchContext(geometry=(None,), n_inp=1, train=False, device=torch.device("cpu"))
    >>> p = BatchPipeline([HalveBatch(), AddOneBatch()])  # run by order: AddOneBatch (50), then HalveBatch (60)
    >>> p, p((torch.tensor([1.0, 3.0]),), ctx)[0].tolist()
    (BatchPipeline(AddOneBatch() -> HalveBatch()), [1.0, 2.0])
    """

    wraps_functions = False

    def __repr__(self) -> str:
        shown: list[str] = []
        to_float: Transform | None = None
        for t in self.tfms:
            note = ""
            if callable(getattr(t, "float_lut", None)):
                note = (f" [images already float after {type(to_float).__name__}: unchanged]" if to_float is not None
                        else " [takes uint8 images: /255 first]")
                to_float = to_float or t
            shown.append(repr(t) + note)
        return f"{type(self).__name__}(" + " -> ".join(shown) + ")"

    @property  # type: ignore[override]
    def tfms(self) -> list[Transform]:
        return self._tfms

    @tfms.setter
    def tfms(self, tfms: list[Transform]) -> None:
        self._tfms = list(tfms)
        self._steps: list[BatchTransform] | None = None

    def steps(self) -> list[BatchTransform]:
        if self._steps is None:
            steps: list[BatchTransform] = []
            for t in self._tfms:
                fused = steps[-1].fuse(t) if steps else None  # type: ignore[arg-type]
                if fused is not None:
                    steps[-1] = fused
                else:
                    steps.append(t)  # type: ignore[arg-type]
            self._steps = steps
        return self._steps

    def first_step(self) -> BatchTransform | None:
        return next(iter(self.steps()), None)

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        for t in self.steps():
            with stage(t.stage_name):
                batch = t.encode(batch, ctx)
        return batch

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        for t in reversed(self.tfms):
            batch = t.decode(batch, ctx)  # type: ignore[call-arg]
        return batch

    __call__ = encode  # type: ignore[assignment]


def grouped_batch_tfms(tfms: Any) -> Any:
    """``batch_tfms`` with each run of pieces that make one transform together made into it: fastai's single
    augmentations (``[Flip(), Rotate(max_deg=20), Brightness()]``) are samplers of one augmentation, resampled once;
    a class says how through a ``batch_transform(pieces)`` class method. Anything else is kept as given.

    A batch transform class, or a class with such a method, is made with its defaults first, as fastai makes a
    transform class given for one: ``batch_tfms=Normalize`` whichever of ``from pipekit.vision.all import *`` and
    ``from pipekit.tabular.all import *`` came last (the table's ``Normalize`` stands for the image one). The
    mid-level loaders' ``after_batch`` is read the same way.
    """
    def made(t: Any) -> Any:
        return t() if isinstance(t, type) and (issubclass(t, BatchTransform) or callable(
            getattr(t, "batch_transform", None))) else t

    tfms = [made(t) for t in tfms] if isinstance(tfms, (list, tuple)) else made(tfms)
    if tfms is None or not isinstance(tfms, (list, tuple)):
        make = getattr(type(tfms), "batch_transform", None)
        return make([tfms]) if callable(make) else tfms
    def maker(t: Any) -> Any:  # the function behind the class method: one for a whole family of classes
        make = getattr(type(t), "batch_transform", None)
        return getattr(make, "__func__", make) if callable(make) else None

    out: list[Any] = []
    run: list[Any] = []
    for t in [*tfms, None]:
        make = maker(t)
        if run and make is not maker(run[0]):
            out.append(type(run[0]).batch_transform(run))
            run = []
        if t is not None and make is not None:
            run.append(t)
        elif t is not None:
            out.append(t)
    return out
