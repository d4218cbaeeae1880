"""Parameter checks written once: each names the owner, the parameter, the value and what is accepted.

>>> check("RandomSplitter", valid_pct=(0.2, Interval(0, 1, closed="neither")))
{'valid_pct': 0.2}
>>> check("RandomSplitter", valid_pct=(1.5, Interval(0, 1, closed="neither")))
Traceback (most recent call last):
...
pipekit.core.errors.ParameterError: RandomSplitter: valid_pct=1.5 is not accepted; expected a number in (0, 1)
"""
from __future__ import annotations

import difflib
import inspect
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipekit.core.errors import FieldError, ParameterError

__all__ = ["as_number", "plain_number", "Interval", "Options", "Is", "BOOL", "POSITIVE_SIZES", "Y_RANGE", "CLASS_AXIS", "check", "check_positive_int", "check_state",
           "close_names", "names_shown", "unknown_names", "ARGUMENT_SYNONYMS", "argument_names", "check_arguments",
           "FastaiKeyword", "REFUSED",
           "one_of_two_names", "bs_or_batch_size", "shuffle_or_shuffle_train", "env_flag", "env_positive_int"]


def is_pandas(obj: Any, kind: str | None = None) -> bool:
    """Whether ``obj`` is a pandas object (of class ``kind``, such as "DataFrame" or "Series", when given), told
    without importing pandas (about a second), which a user without a pandas object need not pay.

    >>> import polars as pl
    >>> is_pandas(pl.DataFrame()), is_pandas([1, 2])
    (False, False)
    """
    cls = type(obj)
    return cls.__module__.split(".")[0] == "pandas" and (kind is None or cls.__name__ == kind)


def is_column(v: Any) -> bool:
    """Whether ``v`` is a column of values (a list, tuple, NumPy array, or a Polars or pandas Series), not one cell:
    a dict of them is columns, a dict of cells one row.

    >>> is_column([30, 41]), is_column(np.array([1.0])), is_column("cook"), is_column(30)
    (True, True, False, False)
    """
    if isinstance(v, np.ndarray):
        return v.ndim >= 1  # a 0-d array is one value
    return isinstance(v, (list, tuple)) or type(v).__name__ == "Series" and (
        is_pandas(v) or type(v).__module__.split(".")[0] == "polars")


def is_missing(v: Any) -> bool:
    """Whether one value is missing as pandas and NumPy write it: None, NaN, pandas' NA or NaT.

    >>> is_missing(None), is_missing(float("nan")), is_missing(0.0), is_missing("")
    (True, True, False, False)
    """
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")


def as_number(v: Any) -> numbers.Real | None:
    """``v`` as one real number, or None when it is not one: a Python or NumPy number as it is, a 0-d tensor or
    array (``torch.tensor(0.2)``, an element of ``torch.linspace``) as the number it holds. Bools, and tensors of a
    bool dtype, are not numbers here (``True`` for a threshold or a size is a slip, not a 1).

    >>> import torch, numpy as np
    >>> as_number(torch.tensor(0.25)), as_number(np.array(3)), as_number(True), as_number(torch.ones(2))
    (0.25, 3, None, None)
    """
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, numbers.Real):
        return v
    if getattr(v, "ndim", None) == 0 and callable(getattr(v, "item", None)):  # a 0-d torch tensor or NumPy array
        try:
            x = v.item()
        except Exception:
            return None
        return None if isinstance(x, bool) or not isinstance(x, numbers.Real) else x
    return None


def finite_number(v: Any) -> float | None:
    """``v`` as a finite float, or None when it is not a number (see :func:`as_number`) or not finite, an integer
    too large for a float included.

    >>> finite_number(2), finite_number(float("nan")), finite_number(10**400), finite_number("1")
    (2.0, None, None, None)
    """
    x = as_number(v)
    if x is None:
        return None
    try:
        f = float(x)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def plain_number(v: Any) -> Any:
    """``v`` as a plain Python ``int`` or ``float`` when it is one number held by NumPy or torch (a NumPy number, a
    0-d array or tensor), else ``v`` itself: what :func:`check` hands every constraint, so each accepts
    ``torch.tensor(0.5)`` or ``np.int64(3)`` where it accepts ``0.5`` or ``3``. Bools (NumPy's and 0-d bool tensors
    too) and arrays of several values stay as they are, for the constraint to refuse where a number is meant.

    >>> import torch, numpy as np
    >>> plain_number(torch.tensor(0.5)), plain_number(np.int64(3)), plain_number(np.array(2.0)), plain_number("a")
    (0.5, 3, 2.0, 'a')
    >>> plain_number(np.bool_(True)), plain_number(torch.tensor(True)), plain_number(torch.ones(2)).shape
    (np.True_, tensor(True), torch.Size([2]))
    """
    if type(v) in (int, float) or not (isinstance(v, np.generic) or getattr(v, "ndim", None) == 0):
        return v
    x = as_number(v)
    if x is None:
        return v
    return x.item() if isinstance(x, np.generic) else x


@dataclass(frozen=True)
class Interval:
    """A real (or with ``integer=True``, whole) number between ``low`` and ``high`` (None: unbounded); ``why``, when
    given, says after the range why it ends there.

    >>> str(Interval(0, 1, why="a fraction"))
    'a number in [0, 1] (a fraction)'
    """

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"
    integer: bool = False
    none_ok: bool = False
    why: str = ""

    def accepts(self, v: Any) -> bool:
        if v is None:
            return self.none_ok
        v = as_number(v)
        if v is None or v != v:  # bools, NaN and anything holding more (or other) than one number are refused
            return False
        if self.integer and not isinstance(v, numbers.Integral):
            return False
        try:
            x = float(v)
        except OverflowError:  # a whole number too large for a float (10**400) is no parameter's value
            return False
        lo_ok = self.low is None or (x >= self.low if self.closed in ("both", "left") else x > self.low)
        hi_ok = self.high is None or (x <= self.high if self.closed in ("both", "right") else x < self.high)
        return lo_ok and hi_ok

    def reason(self, v: Any) -> str:
        """Why ``v`` was refused, when it is not a plain number (a bool, a str, a tensor of several values) or is a
        whole number too large for a float."""
        if v is None:
            return ""
        x = as_number(v)
        if x is not None:
            return "a whole number too large for a float" if isinstance(x, numbers.Integral) and \
                finite_number(x) is None else ""
        shape = getattr(v, "shape", None)
        if shape is not None and len(shape) > 0:
            return f"a {type(v).__name__} of shape {tuple(shape)}, not one number"
        dtype = getattr(v, "dtype", None)
        return f"a {type(v).__name__}{f' of {dtype}' if dtype is not None else ''}, not a number"

    def __str__(self) -> str:
        what = "an integer" if self.integer else "a number"
        if self.low is None and self.high is None:
            return what + (" or None" if self.none_ok else "")
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{what} in {lb}{lo}, {hi}{rb}" + (" or None" if self.none_ok else "") + (
            f" ({self.why})" if self.why else "")


def _kind(v: Any) -> str | None:
    """What kind of number ``v`` is to :class:`Options` (a flag, a whole number, another real number; NumPy's as
    Python's), None for anything else (text, None), which compares by value alone."""
    if isinstance(v, (bool, np.bool_)):
        return "flag"
    if isinstance(v, numbers.Integral):
        return "integer"
    return "number" if isinstance(v, numbers.Real) else None


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values, of its kind too: a flag (``True``) is not the number 1, and a float (``1.0``) is
    not the whole number 1, though Python compares them equal.

    >>> Options(None, 0, 1).accepts(1), Options(None, 0, 1).accepts(True), Options(None, 0, 1).accepts(1.0)
    (True, False, False)
    """

    values: tuple[Any, ...]

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", tuple(values))

    def accepts(self, v: Any) -> bool:
        if getattr(v, "ndim", 0):  # an array or tensor (as read from a file) is never one of the options
            return False
        try:
            return any(v == o and _kind(v) == _kind(o) for o in self.values)
        except (TypeError, ValueError):  # something compared element by element
            return False

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Is:
    """A value passing ``test`` (e.g. ``Is(callable, "a function")``).

    >>> from pipekit.core import ParameterError
    >>> from pipekit.core import Is, check
    >>> func = Is(callable, "a function")
    >>> func.accepts(len), func.accepts(3), str(func)
    (True, False, 'a function')
    >>> try:
    ...     check("ColReader", get_y=(3, func))
    ... except ParameterError as e:
    ...     print(e)
    ColReader: get_y=3 is not accepted; expected a function
    """

    test: Callable[[Any], bool]
    description: str

    def accepts(self, v: Any) -> bool:
        try:
            return bool(self.test(v))
        except Exception:
            return False

    def __str__(self) -> str:
        return self.description


#: the largest finite float32, the dtype models compute in
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: beyond this magnitude float32 no longer holds every whole number (2**24 + 1 reads as 2**24): a continuous column
#: with a training value past it is processed as Float64, and the tree backends read it as float64, so ids and large
#: counts keep their distinct values
FLOAT32_EXACT = 2 ** 24


def past_float32(e: Any, rounded: bool = False) -> Any:
    """The Polars expression: ``e`` (a number column) is finite and past :data:`FLOAT32_EXACT` in magnitude, where
    float32 merges whole numbers. ``rounded``: ``e`` was read as float32 already, where 2**24 + 1 reads as 2**24,
    so 2**24 itself counts. The one test of the processing (``cont_float64_``), a CSV's re-reading and the tree
    backends' matrix."""
    big = e.abs() >= FLOAT32_EXACT if rounded else e.abs() > FLOAT32_EXACT
    return e.is_finite() & big


def _is_y_range(v: Any) -> bool:
    """Whether ``v`` is None or a ``(low, high)`` output range a float32 model can compute with: ``sigmoid_range``
    computes ``sigmoid(x) * (high - low) + low`` in float32, so both bounds and their difference must be finite there
    (``(-1e308, 1e308)`` is finite in float64, but its width overflows float32 and every prediction is NaN), and low
    must stay below high once rounded to float32.

    >>> _is_y_range((0, 5.5)), _is_y_range((-1e308, 1e308)), _is_y_range((-3e38, 3e38)), _is_y_range((0, 3e38))
    (True, False, False, True)
    """
    if v is None:
        return True
    if isinstance(v, (str, bytes, Mapping)) or len(v) != 2:
        return False
    lo, hi = (finite_number(x) for x in v)
    if lo is None or hi is None or not lo < hi:
        return False
    return max(abs(lo), abs(hi), hi - lo) <= FLOAT32_MAX and bool(np.float32(lo) < np.float32(hi))


#: a number above 0: a learning rate, a divisor, a temperature
POSITIVE = Interval(0, None, closed="neither")
#: a flag: a Python bool, True or False (0, 1 and NumPy bools are refused)
BOOL = Is(lambda v: isinstance(v, bool), "True or False")
#: a list of positive whole numbers: hidden layer sizes, widths, blocks per stage
POSITIVE_SIZES = Is(lambda v: isinstance(v, (list, tuple)) and all(Interval(1, None, integer=True).accepts(x) for x in v),
                    "a list of positive sizes")
#: a regression's output range: None, or two finite numbers with low < high, each and high - low within float32's
#: range (a NaN bound, or a range as wide as (-1e308, 1e308), makes every prediction NaN)
Y_RANGE = Is(_is_y_range, "None or a (low, high) pair of finite numbers with low < high, both and high - low within "
             "float32's range (about -3.4e38 to 3.4e38; the model computes in float32)")


#: the class axis of a loss or metric: a whole number naming an axis of outputs of up to 5 dimensions (``(bs, n_classes,
#: d, h, w)``), never 0, the batch axis
CLASS_AXIS = Is(lambda v: type(v) is int and v != 0 and -5 <= v <= 4,
                "the class axis of the outputs: a whole number from -5 to 4, not 0 (the batch axis)")


def check(owner: str, **params: tuple[Any, Any]) -> dict[str, Any]:
    """Check ``name=(value, constraint)`` pairs, raising one :class:`ParameterError` that names the first bad one.

    A number given as a 0-d tensor or array or a NumPy number is checked as the plain Python number it holds
    (:func:`plain_number`), whatever the constraint, and the checked values are returned that way, ``{name:
    value}``, for the caller to keep.

    >>> import torch
    >>> check("RandomForest", max_features=(torch.tensor(0.5), Is(lambda v: isinstance(v, float), "a float")))
    {'max_features': 0.5}
    """
    out: dict[str, Any] = {}
    for name, (given, constraint) in params.items():
        value = out[name] = plain_number(given)
        if not constraint.accepts(value):
            why = constraint.reason(value) if isinstance(constraint, Interval) else ""
            raise ParameterError(f"{owner}: {name}={shown(given)} is not accepted; expected {constraint}"
                                 + (f" (it is {why})" if why else ""))
    return out


def shown(value: Any) -> str:
    """A value as an error message names it: its repr, a longer one than 80 characters by its start and its end
    (the end of a path is its file name), or, for a repr of several lines (a table, an array), its kind and shape.

    >>> import numpy as np, polars as pl
    >>> shown(0.5), shown(pl.DataFrame({"a": [1, 2]})), shown(np.zeros((300, 3)))
    ('0.5', 'a polars DataFrame of shape (2, 1)', 'a numpy ndarray of shape (300, 3)')
    >>> shown("/home/ann/projects/sales/" + "quarterly/" * 8 + "out.csv")
    "'/home/ann/projects/sales/quarterly/quar...uarterly/quarterly/quarterly/out.csv'"
    """
    text = repr(value)
    if "\n" not in text:
        return text if len(text) <= 80 else f"{text[:40]}...{text[-37:]}"
    shape = getattr(value, "shape", None)
    kind = f"a {type(value).__module__.split('.')[0]} {type(value).__name__}"
    return kind + (f" of shape {tuple(shape)}" if isinstance(shape, tuple) else "")


def close_names(name: Any, names: Iterable[Any], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names in ``names`` a mistyped ``name`` may have meant, nearest first, at most ``n``: one that differs from
    it only in case, then the close spellings ``difflib`` finds (compared without case, so ``'productgroupdes'``
    finds ``'ProductGroupDesc'``).

    >>> close_names("workclas", ["age", "workclass", "education"]), close_names("Age", ["age", "fnlwgt"])
    (['workclass'], ['age'])
    >>> close_names("salary", ["x", "y"])
    []
    """
    text = str(name)
    by_lower: dict[str, list[str]] = {}
    for c in names:
        if str(c) != text:
            by_lower.setdefault(str(c).lower(), []).append(str(c))
    near = difflib.get_close_matches(text.lower(), list(by_lower), n=n, cutoff=cutoff)
    if text.lower() in by_lower:  # the same name but for case comes first
        near = [text.lower()] + [k for k in near if k != text.lower()]
    return [c for key in near for c in by_lower[key]][:n]


def names_shown(names: Sequence[Any], limit: int = 20) -> str:
    """A list of names as a message shows it: every one, or, in a wide table, the first ``limit`` and how many more.

    >>> names_shown(["age", "salary"]), names_shown([f"f{i}" for i in range(300)], limit=3)
    ("['age', 'salary']", "['f0', 'f1', 'f2', ... and 297 more]")
    """
    names = list(names)
    if len(names) <= limit:
        return str(names)
    return f"{str(names[:limit])[:-1]}, ... and {len(names) - limit} more]"


def _meant(missing: Sequence[Any], names: Sequence[Any], synonyms: Mapping[str, str] | None = None) -> str:
    """``"did you mean 'workclass'"`` for the names each of ``missing`` may have meant: its synonym when that is one
    of ``names`` (``synonyms``: ``{"batch_size": "bs"}``), else its closest spelling (:func:`close_names`); ``""``
    when none is near."""
    guesses = []
    for m in missing:
        near = [synonyms[m]] if synonyms and synonyms.get(m) in names else close_names(m, names, n=1)
        if near:
            guesses.append((m, near[0]))
    if not guesses:
        return ""
    if len(missing) == 1:
        return f"did you mean {guesses[0][1]!r}"
    return "did you mean " + " and ".join(f"{g!r} (for {m!r})" for m, g in guesses)


def unknown_names(missing: Sequence[Any], names: Sequence[Any], what: str = "columns", limit: int = 20,
                  synonyms: Mapping[str, str] | None = None) -> str:
    """The end of a message about names that are not there (columns, mostly): the close names each may have meant
    (:func:`close_names`, or a name's synonym in ``synonyms`` when that is there), then the names there are
    (:func:`names_shown`), for a message that reads ``"column(s) ['workclas'] are not in the data; " +
    unknown_names(...)``.

    >>> unknown_names(["workclas"], ["age", "workclass", "education"])
    "did you mean 'workclass'? The columns are ['age', 'workclass', 'education']"
    >>> unknown_names(["Age", "wrkclass", "x"], ["age", "workclass"])
    "did you mean 'age' (for 'Age') and 'workclass' (for 'wrkclass')? The columns are ['age', 'workclass']"
    >>> unknown_names(["x"], ["age", "workclass"])
    "the columns are ['age', 'workclass']"
    >>> unknown_names(["batch_size"], ["bs", "seed"], "arguments", synonyms=ARGUMENT_SYNONYMS)
    "did you mean 'bs'? The arguments are ['bs', 'seed']"
    """
    meant = _meant(missing, names, synonyms)
    listed = f"the {what} are {names_shown(names, limit)}"
    return f"{meant}? T{listed[1:]}" if meant else listed


#: argument names people write for ones pipekit takes under another name (PyTorch's and fastai's ``batch_size`` for
#: ``bs``, a singular for a plural): what an unknown argument was meant to be, before close spellings are looked for
ARGUMENT_SYNONYMS = {"batch_size": "bs", "metric": "metrics", "layer": "layers", "n_factor": "n_factors"}


def argument_names(*functions: Callable[..., Any], but: Iterable[str] = ()) -> list[str]:
    """The names by which the arguments of ``functions`` can be given as keywords, each once, in order: no ``self``,
    no ``*args`` or ``**kwargs``, no positional-only parameter, none of ``but``.

    >>> def f(source, /, bs=64, *, seed=None, **kwargs): ...
    >>> def g(self, bs, shuffle=True): ...
    >>> argument_names(f, g, but=["seed"])
    ['bs', 'shuffle']
    """
    skip = {"self", *but}
    out: dict[str, None] = {}
    for fn in functions:
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip:
                out[p.name] = None
    return list(out)


class _Refused:
    """The type of :data:`REFUSED`."""

    def __repr__(self) -> str:
        return "REFUSED"


#: a :class:`FastaiKeyword`'s ``taken`` when no value of the keyword is taken
REFUSED = _Refused()


@dataclass(frozen=True)
class FastaiKeyword:
    """How a pipekit function answers a keyword of fastai's function of the same name that it has no parameter for:
    taken at the one value that changes nothing in pipekit (``taken``; :data:`REFUSED`: no value is), refused at any
    other by ``refusal``, the message after ``"<who>: "``, a template of ``{given}`` (the keywords refused, each as
    ``name=value``, or as ``name=`` where ``show_value`` is False), ``{names}`` (their names joined by "and") and
    ``{s}`` ("s" for one keyword, "" for several: ``choose{s}``). Keywords whose entries are one ``refusal`` are
    refused in one message. A table ``{name: FastaiKeyword}`` is given to :func:`check_arguments` as ``fastai=``.

    >>> inner = FastaiKeyword("{given} is fastai's flag for a call inside a fit; leave {names} out", taken=False)
    >>> inner.takes(False), inner.takes(0), inner.refused("get_preds", {"inner": True})
    (True, False, "get_preds: inner=True is fastai's flag for a call inside a fit; leave inner out")
    """

    refusal: str
    taken: Any = REFUSED
    show_value: bool = True

    def takes(self, value: Any) -> bool:
        """Whether ``value`` is the one taken: ``taken`` itself, or a value of its type equal to it."""
        return self.taken is not REFUSED and (value is self.taken or type(value) is type(self.taken)
                                              and _equal(value, self.taken))

    def refused(self, who: str, given: Mapping[str, Any]) -> str:
        """The message refusing the keywords ``given`` (``{name: value}``, those of this entry) in the name of
        ``who``."""
        shown_given = ", ".join(f"{k}={v!r}" if self.show_value else f"{k}=" for k, v in given.items())
        return f"{who}: " + self.refusal.format(given=shown_given, names=" and ".join(given),
                                                s="s" if len(given) == 1 else "")


def check_arguments(who: str, kwargs: Mapping[str, Any], takes: Sequence[str],
                    passed_on: tuple[str, Sequence[str]] | None = None,
                    fastai: Mapping[str, FastaiKeyword] | None = None) -> None:
    """Refuse keyword arguments (``kwargs``, what a function's ``**kwargs`` gathered) that are none of the names it
    ``takes``, in the name of ``who``, the function called, saying what each may have meant
    (:data:`ARGUMENT_SYNONYMS`, then close spellings) and the names there are. ``passed_on``: ``(whose, names)`` of
    the function it passes its keyword arguments on to (a learner factory's ``("the Learner's", ...)``), accepted
    too and listed apart. ``fastai``: the keywords of fastai's function of that name that ``who`` has no parameter
    for (``{name: FastaiKeyword}``), each taken at the value that changes nothing and refused at any other with its
    own message, before any unknown argument is; the first refused, and those of its message, are said.

    >>> pickled = FastaiKeyword("{given} choose{s} how fastai pickles; leave {names} out", show_value=False)
    >>> check_arguments("learn.save", {"pickle_protocol": 4}, ["name"], fastai={"pickle_protocol": pickled})
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: learn.save: pickle_protocol= chooses how fastai pickles; leave pickle_protocol out

    >>> check_arguments("TabularDataLoaders.from_df", {"batch_size": 32}, ["df", "bs", "procs"])
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: TabularDataLoaders.from_df: unknown argument(s) ['batch_size']; did you mean 'bs'? The arguments are ['df', 'bs', 'procs']
    >>> check_arguments("tabular_learner", {"layer": [20]}, ["dls", "layers"], ("the Learner's", ["metrics", "wd"]))
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: tabular_learner: unknown argument(s) ['layer']; it takes ['dls', 'layers'], and the Learner's ['metrics', 'wd']; did you mean 'layers'?
    """
    table = fastai or {}
    for name, entry in table.items():
        if name in kwargs and not entry.takes(kwargs[name]):
            raise ParameterError(entry.refused(who, {k: kwargs[k] for k, e in table.items() if k in kwargs
                                                     and e.refusal == entry.refusal and not e.takes(kwargs[k])}))
    theirs = [n for n in (passed_on[1] if passed_on else ()) if n not in takes]
    unknown = [k for k in kwargs if k not in takes and k not in theirs and k not in table]
    if not unknown:
        return
    if passed_on is None:
        raise ParameterError(f"{who}: unknown argument(s) {unknown}; "
                             f"{unknown_names(unknown, list(takes), 'arguments', limit=60, synonyms=ARGUMENT_SYNONYMS)}")
    meant = _meant(unknown, [*takes, *theirs], ARGUMENT_SYNONYMS)
    raise ParameterError(f"{who}: unknown argument(s) {unknown}; it takes {list(takes)}, and {passed_on[0]} {theirs}"
                         + (f"; {meant}?" if meant else ""))


def one_of_two_names(who: str, name: str, value: Any, alias: str, alias_value: Any, default: Any = None, *,
                     whose: str = "fastai's", same: Callable[[Any, Any], Any] | None = None,
                     why: str | None = None) -> Any:
    """The value of one argument that ``who`` takes under two names: pipekit's ``name`` (given ``value``; at its
    ``default`` it counts as not given) and ``alias``, ``whose`` name of it (``alias_value``; None: not given). Given
    under both names with different values (``same(a, b)``: whether two values are one, ``==`` by default), it is
    refused, naming both and which name is whose (``why``, when given, says instead how the two are one argument).

    >>> one_of_two_names("DataBlock.dataloaders", "bs", 64, "batch_size", 16, 64, whose="PyTorch's")
    16
    >>> one_of_two_names("xresnet18", "n_in", 1, "c_in", None, 3), one_of_two_names("xresnet18", "n_in", 3, "c_in", 1, 3)
    (1, 1)
    >>> one_of_two_names("xresnet18", "n_in", 2, "c_in", 1, 3)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: xresnet18: n_in=2 and c_in=1 are one argument (c_in is fastai's name of n_in); give one of them
    """
    if alias_value is None:
        return value
    if not (value is default or _equal(value, default) or (same or _equal)(value, alias_value)):
        raise ParameterError(f"{who}: {name}={shown(value)} and {alias}={shown(alias_value)} are one argument "
                             f"({why or f'{alias} is {whose} name of {name}'}); give one of them")
    return alias_value


def _equal(a: Any, b: Any) -> bool:
    """Whether ``a == b``; False where that is no one truth value (arrays of several values, say)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def bs_or_batch_size(who: str, bs: Any, batch_size: Any, default: int = 64) -> Any:
    """The batch size, given as ``bs`` or as PyTorch's and fastai's ``batch_size`` (None: not given), by
    :func:`one_of_two_names`; ``bs`` at its ``default`` counts as not given.

    >>> bs_or_batch_size("DataBlock.dataloaders", 64, 16), bs_or_batch_size("DataBlock.dataloaders", 32, None)
    (16, 32)
    """
    return one_of_two_names(who, "bs", bs, "batch_size", batch_size, default, whose="PyTorch's")


def shuffle_or_shuffle_train(who: str, shuffle: Any, shuffle_train: Any) -> Any:
    """Whether to shuffle the training batches, given as ``shuffle`` or as fastai's older ``shuffle_train`` (None:
    not given), by :func:`one_of_two_names`; ``shuffle`` at its default (True) counts as not given.

    >>> shuffle_or_shuffle_train("Tabular.dataloaders", True, False), shuffle_or_shuffle_train("x", False, None)
    (False, False)
    """
    if shuffle_train is not None:
        check(who, shuffle_train=(shuffle_train, BOOL))
    return one_of_two_names(who, "shuffle", shuffle, "shuffle_train", shuffle_train, True, whose="fastai's older")


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """A positive whole number (batch sizes, epochs, counts), returned as ``int``.

    >>> import numpy as np
    >>> from pipekit.core import ParameterError
    >>> from pipekit.core import check_positive_int
    >>> check_positive_int("DataLoader", "bs", np.int64(64))
    64
    >>> try:
    ...     check_positive_int("DataLoader", "bs", 0)
    ... except ParameterError as e:
    ...     print(e)
    DataLoader: bs must be a positive integer, got 0
    """
    if not Interval(1, None, integer=True).accepts(value):
        raise ParameterError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


#: the values a yes/no environment variable (PIPEKIT_QUIET, PIPEKIT_PROGRESS) takes, in any case: on, and off (empty too)
ENV_ON = ("1", "true", "yes", "on")
ENV_OFF = ("0", "false", "no", "off", "")


def env_flag(name: str, default: bool = False) -> bool:
    """The yes/no setting the environment variable ``name`` holds (``default`` when it is unset): 1/true/yes/on
    (any case) is on, 0/false/no/off or empty is off; any other value is a ParameterError naming the variable, its
    value and the values accepted.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_QUIET": "True"}):
    ...     env_flag("PIPEKIT_QUIET")
    True
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_QUIET": "quiet"}):
    ...     env_flag("PIPEKIT_QUIET")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: environment variable PIPEKIT_QUIET='quiet' is not accepted; expected 1, true, yes or on (on), or 0, false, no, off or empty (off), e.g. PIPEKIT_QUIET=1
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ENV_ON or value in ENV_OFF:
        return value in ENV_ON
    raise ParameterError(f"environment variable {name}={raw!r} is not accepted; expected 1, true, yes or on (on), or "
                         f"0, false, no, off or empty (off), e.g. {name}=1")


def env_positive_int(name: str, default: int | None = None, units: Mapping[str, int] | None = None) -> int | None:
    """The positive whole number the environment variable ``name`` holds (``default`` when it is unset or empty);
    any other value is a ParameterError naming the variable, its value and what is accepted. ``units`` maps the
    suffixes a number may end with to what they multiply it by (``{"KB": 1024}``: ``4KB`` is 4096).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_AUG_THREADS": " 4 "}):
    ...     env_positive_int("PIPEKIT_AUG_THREADS")
    4
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_AUG_THREADS": "-1"}):
    ...     env_positive_int("PIPEKIT_AUG_THREADS")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: environment variable PIPEKIT_AUG_THREADS='-1' is not accepted; expected a positive whole number (e.g. PIPEKIT_AUG_THREADS=4), or unset or empty for the default
    """
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    text, scale = raw.strip(), 1
    for unit, times in (units or {}).items():
        if text.endswith(unit) and text[:-len(unit)].isdigit():
            text, scale = text[:-len(unit)], times
            break
    value = int(text) * scale if text.isdigit() else 0
    if value < 1:
        suffixes = f", optionally ending with {' or '.join(units)}" if units else ""
        raise ParameterError(f"environment variable {name}={raw!r} is not accepted; expected a positive whole number"
                             f"{suffixes} (e.g. {name}=4), or unset or empty for the default")
    return value

def env_folder(name: str, unset: str) -> Path | None:
    """The folder the environment variable ``name`` holds, ``~`` expanded, or None when it is unset or empty (what
    ``export VAR=$UNSET`` gives). A relative folder, or a ``~user`` that names no user, is a ParameterError naming the
    variable: what it names would follow the working folder. ``unset`` says what unsetting it gives, for that message.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_CACHE": "/scratch/pipekit"}):
    ...     env_folder("PIPEKIT_CACHE", "for ~/.cache/pipekit").as_posix()
    '/scratch/pipekit'
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_CACHE": ""}):
    ...     env_folder("PIPEKIT_CACHE", "for ~/.cache/pipekit") is None
    True
    """
    value = os.environ.get(name, "")
    if not value:
        return None
    folder = Path(os.path.expanduser(value))  # a ~ naming no home is left as it is (Path.expanduser raises)
    if not folder.is_absolute():
        tilde = f" ({value.split('/', 1)[0]!r} is the home folder of no user here)" if value.startswith("~") else ""
        raise ParameterError(f"{name}={value!r} is a relative folder{tilde}, so it would move with the working folder "
                             f"({Path.cwd() / folder} from here): set it to an absolute folder, or unset it {unset}")
    return folder

def check_state(state: dict[str, Any], purpose: str, **fields: Any) -> None:
    """Check learned state read from a file: each ``name=constraint`` must be in ``state`` and accepted; a
    :class:`FieldError` names the first that is not as ``state.<name>``, and ``purpose`` says what needs it.

    >>> check_state({"n_inp_": 0}, "the recipe, to encode new items,", n_inp_=Interval(1, None, integer=True))
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'state.n_inp_' must be an integer in [1, inf], got '0'
    """
    for name, constraint in fields.items():
        if name not in state:
            raise FieldError(f"state.{name}", f"is missing: {purpose} needs {constraint}; the file is damaged or was "
                                              "not written by pipekit")
        if not constraint.accepts(state[name]):
            raise FieldError(f"state.{name}", f"must be {constraint}, got {str(state[name])[:60]!r}")
