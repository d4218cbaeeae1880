"""``L``: the book's list, a plain Python ``list`` with fastai's methods, ``fastuple`` (a tuple taking its items as
arguments), ``coll_repr`` to show a collection, ``store_attr`` to keep a method's arguments on its object and
``delegates`` to show the keyword arguments a function passes on through ``**kwargs`` in its signature.

``get_files``, ``get_image_files``, ``get_text_files``, ``verify_images`` and a data set folder's ``ls()`` give an
``L``, so the book's and Kaggle's spellings run as they are: ``get_image_files(path).sorted()``, chapter 2's
``failed = verify_images(fns); failed.map(Path.unlink)``, chapter 4's ``(path/'train'/'3').ls().sorted()`` and
``L(learn.recorder.values).itemgot(2)``, ``fnames.attrgot('name')``, ``fnames[[0, 2]]``.

An ``L`` *is* a ``list`` (``isinstance(x, list)``, ``x == [...]``, slicing, ``json.dumps(x)``, ``x.append``), so
code that treats these results as lists keeps working. It prints as a list does (fastai's ``print(L)`` too);
in a notebook it shows as fastai's does, through :func:`coll_repr`: the count first, ``(#709)``, for a long one.

>>> from pathlib import Path
>>> fns = L([Path("train/7/2.png"), Path("train/3/1.png"), Path("valid/3/9.png")])
>>> fns.sorted().attrgot("name")
['1.png', '2.png', '9.png']
>>> fns[[0, 2]].map(lambda p: p.parent.name)
['7', '3']
>>> fns.map(Path.as_posix) == ["train/7/2.png", "train/3/1.png", "valid/3/9.png"], isinstance(fns, list)
(True, True)
>>> L([[0.52, 0.31, 0.90], [0.29, 0.18, 0.95]]).itemgot(2)
[0.9, 0.95]
"""
from __future__ import annotations

import inspect
import itertools
import operator
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sized
from functools import partial, reduce
from typing import Any, SupportsIndex, TypeVar, cast, overload

__all__ = ["L", "coll_repr", "delegates", "fastuple", "store_attr"]

_T = TypeVar("_T")


def store_attr(names: str | None = None, self: Any = None, but: str | Iterable[str] = "", **attrs: Any) -> None:
    """Keep the arguments of the method it is called in (an ``__init__``) as attributes of its object, as
    fastcore's ``store_attr`` (the book's and fastai's tutorials write ``def __init__(self, a, b): store_attr()``):
    every argument, or those ``names`` lists (``"a,b"``), less those ``but`` lists; with keyword ``attrs``, those
    values alone.

    >>> class Crop:
    ...     def __init__(self, size, pad=0, mode="zeros"):
    ...         store_attr(but="mode")
    >>> c = Crop(64, pad=4); (c.size, c.pad, hasattr(c, "mode"))
    (64, 4, False)
    """
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    if caller is None:
        raise RuntimeError("store_attr: called with no calling method to read the arguments of")
    try:
        code, local = caller.f_code, caller.f_locals
        arg_names = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
        if self is None:
            if not arg_names or arg_names[0] not in local:
                raise TypeError("store_attr: call it in a method (its first argument is the object), or pass self=")
            self = local[arg_names[0]]
            arg_names = arg_names[1:]
        if attrs:
            for k, v in attrs.items():
                setattr(self, k, v)
            return
        wanted = arg_names if names is None else [n for n in re.split(r"\s*,\s*", names.strip()) if n]
        skip = set(re.split(r"\s*,\s*", but.strip())) if isinstance(but, str) else set(but)
        for name in wanted:
            if name in skip:
                continue
            if name not in local:
                raise TypeError(f"store_attr: {name!r} is not an argument of {code.co_name}; its arguments are "
                                f"{arg_names}")
            setattr(self, name, local[name])
    finally:
        del frame, caller


def delegates(to: Callable[..., Any] | None = None, keep: bool = False,
              but: str | Iterable[str] | None = None) -> Callable[[_T], _T]:
    """Decorator, fastcore's (the book's chapter 15 and fastai's sources write ``@delegates(Learner.__init__)``): in the
    signature of the function it decorates, ``**kwargs`` is replaced by the keyword parameters (those with a default)
    of ``to`` that it does not have already, so ``inspect.signature``, ``help`` and tab completion show what can be
    passed on. On a class, the class's ``__init__`` is changed, and ``to`` None means the base class's ``__init__``
    (``@delegates()``). ``keep=True`` keeps ``**kwargs`` after them; ``but`` leaves names out (a list, or ``"a,b"``).
    Only the signature changes: the function still receives those arguments in ``**kwargs``.

    >>> import inspect
    >>> def base(a, b=1, c=2): ...
    >>> @delegates(base, but="c")
    ... def f(x, **kwargs): return base(x, **kwargs)
    >>> inspect.signature(f)
    <Signature (x, *, b=1)>
    >>> class Base:
    ...     def __init__(self, size=64, pad=0): ...
    >>> @delegates()
    ... class Crop(Base):
    ...     def __init__(self, mode="zeros", **kwargs): super().__init__(**kwargs)
    >>> inspect.signature(Crop)
    <Signature (mode='zeros', *, size=64, pad=0)>
    """
    if but is None:
        skip: set[str] = set()
    elif isinstance(but, str):
        skip = {n for n in re.split(r"\s*,\s*", but.strip()) if n}
    else:
        skip = set(but)
    if to is not None and not callable(to):
        raise TypeError(f"delegates: to={to!r} is not a function or class; pass the callable whose keyword "
                        "parameters **kwargs goes to (or nothing, on a class, for its base class's __init__)")

    def decorate(f: _T) -> _T:
        if to is None:
            if not isinstance(f, type):
                raise TypeError(f"delegates(): with no `to`, decorate a class (its base class's __init__ is the "
                                f"target); for the function {getattr(f, '__name__', f)!r} pass to=, e.g. "
                                "@delegates(other_function)")
        target: Any = cast(Any, f).__base__ if to is None else to
        to_f: Any = cast(Any, target).__init__ if isinstance(target, type) else target
        from_f: Any = f
        if isinstance(f, type):  # the class's own __init__ (not one it inherits, which other classes share)
            from_f = f.__dict__.get("__init__")
            if from_f is None:
                raise TypeError(f"delegates: class {f.__name__} defines no __init__ of its own whose **kwargs "
                                "could show the parameters it passes on")
        to_f, from_f = getattr(to_f, "__func__", to_f), getattr(from_f, "__func__", from_f)
        if hasattr(from_f, "__delwrap__"):  # already decorated
            return f
        sig = inspect.signature(from_f)
        var_kw = [p for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
        if not var_kw:
            raise TypeError(f"delegates: {getattr(from_f, '__qualname__', from_f)} has no **kwargs to show the "
                            f"parameters of {getattr(to_f, '__qualname__', to_f)} in; add **kwargs to its "
                            "signature (and pass them on)")
        added = {n: p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                 for n, p in inspect.signature(to_f).parameters.items()
                 if p.default is not inspect.Parameter.empty and n not in sig.parameters and n not in skip}
        params = [p for p in sig.parameters.values() if keep or p.kind is not inspect.Parameter.VAR_KEYWORD]
        params += added.values()
        from_f.__signature__ = sig.replace(parameters=sorted(params, key=lambda p: p.kind))
        if not keep:
            from_f.__delwrap__ = to_f
        annotations = getattr(from_f, "__annotations__", None)
        if isinstance(annotations, dict):
            annotations.update({n: a for n, a in getattr(to_f, "__annotations__", {}).items() if n in added})
        if not from_f.__doc__ and getattr(to_f, "__doc__", None):
            from_f.__doc__ = to_f.__doc__
        return f

    return decorate


def coll_repr(c: Iterable[Any], max_n: int = 250) -> str:
    """The first ``max_n`` items of ``c`` as a list, ``...`` when there are more, and the count first, ``(#n)``,
    when there are at least ``max(7, max_n)``: fastcore's, which the book prints tokens with.

    >>> coll_repr(["xxbos", "xxmaj", "this", "movie"])
    "['xxbos', 'xxmaj', 'this', 'movie']"
    >>> coll_repr(range(100), 5)
    '(#100) [0, 1, 2, 3, 4...]'
    """
    items = c if isinstance(c, Sized) else list(c)  # an iterator is read to count it
    n = len(items)
    shown = ", ".join(itertools.islice(map(repr, items), max_n))
    res = "[" + shown + ("..." if n > max_n else "") + "]"
    return f"(#{n}) {res}" if n >= max(7, max_n) else res


def _is_array(o: Any) -> bool:
    """An array, tensor or table (NumPy, torch, pandas, Polars): one item of an ``L``, as in fastai."""
    return hasattr(o, "__array__") or hasattr(o, "iloc")


def _as_list(o: Any) -> list[Any]:
    """``o`` as the items of a list: None is no item; text, bytes, a path, a dict, an array or any other
    single value is one item; any other iterable gives its items."""
    if o is None:
        return []
    if isinstance(o, list):
        return list(o)
    if isinstance(o, (str, bytes, bytearray, Mapping)) or _is_array(o):
        return [o]
    try:
        it = iter(o)
    except TypeError:  # a number, a path, any other one value
        return [o]
    return list(it)


def _positions(idx: Any, n: int) -> list[int]:
    """The positions a list of positions, or a boolean mask of ``n`` values, picks."""
    if isinstance(idx, (str, bytes, Mapping)):
        raise TypeError(f"L indices must be an int, a slice, a list of positions or a boolean mask, not "
                        f"{type(idx).__name__}")
    try:
        picks = [v.item() if hasattr(v, "item") else v for v in idx]  # NumPy and torch scalars as Python values
    except TypeError:
        raise TypeError(f"L indices must be an int, a slice, a list of positions or a boolean mask, not "
                        f"{type(idx).__name__}") from None
    if picks and isinstance(picks[0], bool):
        if len(picks) != n:
            raise IndexError(f"a boolean mask picks from a list of the same length: the mask has {len(picks)} "
                             f"values, the list {n} items")
        return [i for i, keep in enumerate(picks) if keep]
    try:
        return [operator.index(v) for v in picks]
    except TypeError:
        bad = next(v for v in picks if not hasattr(v, "__index__"))
        raise TypeError(f"L indices must be whole numbers (positions) or booleans (a mask), got {bad!r}") from None


class L(list[_T]):
    """A ``list`` with the methods of fastai's ``L``; every method that gives a list gives an ``L``.

    ``L(items)`` takes any iterable; ``None`` is an empty list; one value that is not a list of items (a
    number, a ``str``, a ``Path``, a dict, an array or tensor, as in fastai) is a one-item list, and
    ``L(1, 2, 3)`` is ``[1, 2, 3]``. ``use_list=True`` reads an array or a dict item by item.

    Indexing takes what a list does, an int (the item) or a slice (an ``L``), and also a list, tuple or
    array of positions, or a boolean mask as long as the list (an ``L`` of the items picked), as fastai's.
    ``+`` and ``*`` give an ``L``. :meth:`shuffle` draws from Python's ``random``, which ``set_seed`` seeds.

    >>> L(range(4))[[True, False, True, False]]
    [0, 2]
    >>> L("abc"), L(None), L(5), L(1, 2)
    (['abc'], [], [5], [1, 2])
    >>> L([3, 1, 2]).sorted(reverse=True) + [0]
    [3, 2, 1, 0]
    >>> L(["a", "b", "a"]).unique().enumerate()
    [(0, 'a'), (1, 'b')]
    >>> L([[1, 2], [3]]).concat().sum()
    6
    """

    def __init__(self, items: Any = None, *rest: Any, use_list: bool = False) -> None:
        if rest:
            items = (items, *rest)
        super().__init__(list(items) if use_list and items is not None else _as_list(items))

    # ------------------------------------------------------------------------------- indexing and operators
    @overload
    def __getitem__(self, idx: SupportsIndex) -> _T: ...

    @overload
    def __getitem__(self, idx: slice) -> L[_T]: ...

    @overload
    def __getitem__(self, idx: Iterable[Any]) -> L[_T]: ...

    def __getitem__(self, idx: Any) -> Any:
        """The item at an int; an ``L`` of the items of a slice, a list of positions or a boolean mask."""
        if isinstance(idx, int):
            return super().__getitem__(idx)
        if isinstance(idx, slice):
            return L(super().__getitem__(idx))
        if getattr(idx, "ndim", 1) == 0 or (hasattr(idx, "__index__") and not hasattr(idx, "__iter__")):
            return super().__getitem__(operator.index(idx))  # a NumPy or torch scalar
        return L([super(L, self).__getitem__(i) for i in _positions(idx, len(self))])

    def __add__(self, other: Any) -> L[Any]:  # type: ignore[override]
        return L(list.__add__(self, _as_list(other)))

    def __radd__(self, other: Any) -> L[Any]:
        return L(_as_list(other) + list(self))

    def __mul__(self, n: SupportsIndex) -> L[_T]:
        return L(list.__mul__(self, n))

    def __rmul__(self, n: SupportsIndex) -> L[_T]:
        return L(list.__mul__(self, n))

    def __invert__(self) -> L[bool]:
        """``not`` of each item, as fastai's: ``files[~is_train]`` picks what the mask ``is_train`` leaves out.

        >>> ~L([True, False, 0, 3])
        [False, True, True, False]
        """
        return L([not o for o in self])

    @classmethod
    def range(cls, a: Any, b: int | None = None, step: int | None = None) -> L[Any]:
        """``range(a, b, step)`` as an ``L``; a collection ``a`` (a list, a dataset, an array) stands for its
        length, as fastai's ``L.range(self.ds)`` gives a dataset's positions.

        >>> L.range(3), L.range(["a", "b"]), L.range(2, 8, 3)
        ([0, 1, 2], [0, 1], [2, 5])
        """
        if hasattr(a, "__len__") and getattr(a, "ndim", None) != 0:  # a 0-d array or tensor is a number
            a = len(a)
        args = (a,) if b is None and step is None else (a, b) if step is None else (a, b, step)
        return cls(range(*args))

    def copy(self) -> L[_T]:
        """A shallow copy, an ``L``."""
        return L(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """How a notebook shows it: :func:`coll_repr`, as fastai's ``L`` shows (``(#709) [Path(...), ...]``)."""
        p.text("L(...)" if cycle else coll_repr(self))

    # ------------------------------------------------------------------------------- fastai's methods
    def map(self, f: Callable[..., Any] | str | Any, *args: Any, **kwargs: Any) -> L[Any]:
        """``f(*args, item, **kwargs)`` for each item (``args`` come first, as ``functools.partial`` puts
        them); a str ``f`` is a format (``'{}.png'``), a dict or list ``f`` is looked up with each item.

        >>> L([1, 2]).map(str), L([1, 2]).map("{}.png"), L([0, 1]).map(["cat", "dog"])
        (['1', '2'], ['1.png', '2.png'], ['cat', 'dog'])
        """
        if callable(f):
            g = partial(f, *args, **kwargs) if args or kwargs else f
        elif isinstance(f, str):
            g = f.format
        else:
            g = f.__getitem__
        return L([g(o) for o in self])

    def filter(self, f: Callable[..., Any] | None = bool, negate: bool = False, **kwargs: Any) -> L[_T]:
        """The items for which ``f(item, **kwargs)`` is true (false with ``negate=True``); by default the items
        that are true themselves; ``f=None`` keeps every item.

        >>> L([0, 1, 2, 3]).filter(lambda x: x % 2), L([0, 1, 2]).filter(), L([1, 5]).filter(lambda x, t: x > t, t=2)
        ([1, 3], [1, 2], [5])
        """
        if f is None:
            return L(self)
        g = partial(f, **kwargs) if kwargs else f
        return L([o for o in self if bool(g(o)) != negate])

    def sorted(self, key: Callable[[Any], Any] | str | int | None = None, reverse: bool = False) -> L[_T]:
        """A sorted copy; ``key`` is a function, an attribute name (``'name'``, 0 for an item without it) or a
        position (``0``, the first value of each item), as fastai's.

        >>> L([[2, "b"], [1, "c"]]).sorted(0), L(["bb", "a"]).sorted(len)
        ([[1, 'c'], [2, 'b']], ['a', 'bb'])
        """
        k: Callable[[Any], Any] | None
        if isinstance(key, str):
            name = key
            k = lambda o: getattr(o, name, 0)  # noqa: E731
        elif isinstance(key, int):
            k = operator.itemgetter(key)
        else:
            k = key
        return L(sorted(self, key=k, reverse=reverse))  # type: ignore[type-var]

    def itemgot(self, *idxs: Any) -> L[Any]:
        """Item ``idx`` of each item, and item ``idxs[1]`` of that, ...: chapter 4's
        ``L(learn.recorder.values).itemgot(2)`` (the third value of each epoch's row).

        >>> L([{"a": (1, 2)}, {"a": (3, 4)}]).itemgot("a", 1)
        [2, 4]
        """
        out: L[Any] = L(self)
        for idx in idxs:
            out = out.map(operator.itemgetter(idx))
        return out

    def attrgot(self, k: str, default: Any = None) -> L[Any]:
        """Attribute ``k`` of each item (``'parent.name'`` reads inside), the value at ``k`` of a dict, or
        ``default`` where there is none.

        >>> from pathlib import Path
        >>> L([Path("a/b.png"), {"name": "c"}, 3]).attrgot("name"), L([Path("a/b.png")]).attrgot("parent.name")
        (['b.png', 'c', None], ['a'])
        """
        def got(o: Any) -> Any:
            if isinstance(o, dict):
                return o.get(k, default)
            try:
                for part in k.split("."):
                    o = getattr(o, part) if hasattr(o, part) else o[part]
            except (AttributeError, KeyError, IndexError, TypeError, ValueError):
                return default
            return o

        return self.map(got)

    def unique(self, sort: bool = False) -> L[_T]:
        """Each item once, in the order first seen (sorted with ``sort=True``)."""
        out = list(dict.fromkeys(self))
        return L(sorted(out) if sort else out)  # type: ignore[type-var]

    def val2idx(self) -> dict[Any, int]:
        """Each item's position, item -> position (a repeated item: its last one), as fastai's: chapter 19's
        ``v2i = lbls.val2idx()`` turns the labels into class indices.

        >>> L(["cats", "dogs"]).val2idx()
        {'cats': 0, 'dogs': 1}
        """
        return {v: i for i, v in enumerate(self)}

    def enumerate(self) -> L[tuple[int, _T]]:
        """``(position, item)`` pairs."""
        return L(enumerate(self))

    def zip(self) -> L[tuple[Any, ...]]:
        """``zip(*items)``: the first values of each item together, then the second, ...

        >>> L([[1, 2, 3], ["a", "b", "c"]]).zip()
        [(1, 'a'), (2, 'b'), (3, 'c')]
        """
        return L(zip(*self))

    def concat(self) -> L[Any]:
        """The items of each item, one list (an item that is one value counts as a list of it)."""
        return L(itertools.chain.from_iterable(_as_list(o) for o in self))

    def sum(self) -> Any:
        """The items added up, starting from 0, as fastai's."""
        return reduce(operator.add, self, 0)

    def shuffle(self) -> L[_T]:
        """A shuffled copy, drawn from Python's ``random`` (seeded by ``set_seed`` or ``random.seed``), as fastai's."""
        out = list(self)
        random.shuffle(out)
        return L(out)


class fastuple(tuple):  # noqa: N801 (fastai's name, as the book subclasses it)
    """A ``tuple`` taking its items as arguments, fastai's: ``fastuple(img1, img2, True)`` is ``(img1, img2, True)``,
    as chapter 11's ``class SiameseImage(fastuple)`` builds a pair of images and whether they match. One iterable
    argument gives its items (``fastuple([1, 2])``), one other value a one-item tuple, none an empty one.

    Transforms that go through tuples (``Resize(224)(pair)``, a ``TfmdLists``' item-by-item steps) give back the same
    subclass, so its ``show`` still draws the result. ``add``/``mul`` work value by value (fastai's), a scalar applying
    to every value:

    >>> class Pair(fastuple):
    ...     pass
    >>> p = Pair(1, 2)
    >>> p, type(p.add(10)).__name__, p.add(10), p.mul((2, 3)), fastuple([1, 2]), fastuple(5), fastuple()
    ((1, 2), 'Pair', (11, 12), (2, 6), (1, 2), (5,), ())
    """

    def __new__(cls, x: Any = None, *rest: Any) -> Any:
        if rest:
            items: tuple = (x, *rest)
        elif x is None:
            items = ()
        elif isinstance(x, tuple):
            items = x
        elif isinstance(x, (str, bytes, Mapping)) or _is_array(x):
            items = (x,)
        else:
            try:
                items = tuple(iter(x))
            except TypeError:
                items = (x,)
        return super().__new__(cls, items)

    def _op(self, op: Callable[[Any, Any], Any], other: Any) -> Any:
        others = other if isinstance(other, (tuple, list)) else [other] * len(self)
        if len(others) != len(self):
            raise ValueError(f"{type(self).__name__}: {len(self)} values and {len(others)} to combine them with")
        return tuple.__new__(type(self), [op(a, b) for a, b in zip(self, others)])

    def add(self, other: Any) -> Any:
        """Each value plus ``other`` (a value, or one per value)."""
        return self._op(operator.add, other)

    def mul(self, other: Any) -> Any:
        """Each value times ``other`` (a value, or one per value)."""
        return self._op(operator.mul, other)
