"""Splitters turn the items DataFrame into (train indices, valid indices). Same seed, same split."""
from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipekit.core.component import Component
from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.core.validate import Interval, Is, check_arguments, one_of_two_names, unknown_names
from pipekit.data.dates import AWARE, OFFSET, read_text_dates, text_date_layouts
from pipekit.data.getters import iter_items, path_column

Split = tuple[np.ndarray, np.ndarray]


class Splitter(Component):
    """Base class: ``splitter(items) -> (train_idx, valid_idx)`` as sorted or seeded int64 arrays.

    >>> import numpy as np
    >>> import polars as pl
    >>> from pipekit.data import Splitter
    >>> class EveryOther(Splitter):
    ...     def split(self, items):
    ...         idx = np.arange(len(items))
    ...         return idx[idx % 2 == 0], idx[idx % 2 == 1]
    >>> [s.tolist() for s in EveryOther()(pl.DataFrame({"x": range(5)}))]
    [[0, 2, 4], [1, 3]]
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "splitter"

    def split(self, items: pl.DataFrame) -> Split:
        raise NotImplementedError

    def columns(self) -> list[str] | None:
        """The columns of the items this splitter reads ([]: none, only their number; None: any column), so
        a reader of a large table can load only those."""
        return None

    def __call__(self, items: Any) -> Split:
        """Split ``items``: a table, or a list of files or values as ``get_image_files`` gives (the book's
        ``GrandparentSplitter()(files)``), read as a DataBlock reads its items."""
        if not isinstance(items, pl.DataFrame):
            from pipekit.data.items import to_items

            items = to_items(items)
        if len(items) == 0:
            raise DataError(f"{self!r}: there are no items to split")
        train, valid = self.split(items)
        return np.asarray(train, dtype=np.int64), np.asarray(valid, dtype=np.int64)


def left_out_message(n_left: int, n: int, first: str, fix: str, unit: str = "item", where: str = "",
                     place: str | None = None) -> str:
    """The warning for a split that places ``n_left`` of ``n`` items (a Tabular's rows: ``unit="row"``) in neither
    the training nor the validation set, which are left out (``where``: of what, where it is not the whole of what is
    built): ``first`` shows the first of them, ``fix`` says how to leave them out without the warning, and ``place``
    the other way, placing every item (default: a splitter that does). A DataBlock, a Tabular and the mid-level
    Datasets and TfmdLists say it.

    >>> left_out_message(5, 20, "row 10", "give only the rows to split", unit="row")[:72]
    '5 of 20 rows are in neither the training nor the validation set and are '
    """
    place = f"use a splitter that places every {unit}" if place is None else place
    return (f"{n_left} of {n} {unit}s are in neither the training nor the validation set and are left out{where} "
            f"(first: {first}); to leave them out without this warning, {fix}, or {place}")


def _mask_split(valid_mask: np.ndarray) -> Split:
    valid_mask = np.asarray(valid_mask, dtype=bool)
    return np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)


def stratified_counts(counts: Any, n_take: int) -> np.ndarray:
    """How many items of each class (``counts``: the classes' sizes) a stratified draw of ``n_take`` items takes, as
    scikit-learn's ``StratifiedShuffleSplit`` allocates them: each class its share ``n_take * count / total`` rounded
    down, the items left over going one each to the classes with the largest remainders (ties to the earlier
    class). The one allocation of pipekit's stratified splits (``TrainTestSplitter``, a bagged model's early-stopping
    rows).

    >>> stratified_counts([6] * 4, 6).tolist()    # 1.5 each: the two left over go to the first two classes
    [2, 2, 1, 1]
    >>> stratified_counts([90, 7, 3], 10).tolist()
    [9, 1, 0]
    """
    counts = np.asarray(counts, dtype=np.int64)
    if n_take <= 0 or counts.sum() == 0:
        return np.zeros(len(counts), dtype=np.int64)
    share = n_take * counts / counts.sum()
    take = np.floor(share).astype(np.int64)
    left = n_take - int(take.sum())
    take[np.argsort(-(share - take), kind="stable")[:left]] += 1
    return take


#: a split's validation share, as every ``valid_pct=`` takes it: 0 trains on every item, with no validation set
VALID_PCT = Interval(0, 1, closed="left", why="0 trains on every item, with no validation set")
#: the same, or None (where None means another way of splitting)
VALID_PCT_OR_NONE = Interval(0, 1, closed="left", none_ok=True, why="0 trains on every item, with no validation set")


class RandomSplitter(Splitter):
    """A random ``valid_pct`` of the items is the validation set; the same ``seed`` gives the same split.
    Without one, each split draws its seed from NumPy's global generator, so ``pipekit.set_seed(42)`` before
    building repeats it. The validation set holds ``int(valid_pct * n)`` of the ``n`` items, as fastai's does;
    ``valid_pct=0`` trains on every item (the final fit on all the data), with no validation set and so no
    validation scores.

    >>> import polars as pl
    >>> RandomSplitter(0.5, seed=0)(pl.DataFrame({"x": range(4)}))[1].tolist()
    [0, 2]
    >>> [len(s) for s in RandomSplitter(0)(pl.DataFrame({"x": range(4)}))]
    [4, 0]
    """

    param_constraints = {"valid_pct": VALID_PCT,
                         "seed": Interval(None, None, integer=True, none_ok=True)}

    def __init__(self, valid_pct: float = 0.2, seed: int | None = None):
        self.valid_pct, self.seed = valid_pct, seed
        self.check_params()

    def split(self, items: pl.DataFrame) -> Split:
        n = len(items)
        # shuffling int32 positions draws exactly what permutation(n) draws (the same split) with half the
        # memory traffic
        perm = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        seed = self.seed if self.seed is not None else int(np.random.randint(0, 2**63 - 1, dtype=np.int64))
        np.random.default_rng(seed).shuffle(perm)
        # a mask gives both subsets in row order in O(n), where sorting would cost O(n log n)
        mask = np.zeros(n, dtype=bool)
        # int(), not round(): fastai's number of validation items (48 items at 0.2: 9, not 10)
        mask[perm[: int(self.valid_pct * n)]] = True
        return _mask_split(mask)

    def columns(self) -> list[str] | None:
        return []



class EndSplitter(Splitter):
    """The items in their order, the last ``valid_pct`` of them the validation set (the first, with
    ``valid_last=False``), as fastai's ``EndSplitter``: for ordered data (a time series, a text cut into chunks),
    where a random split would validate on items between the training ones. The validation set holds
    ``int(valid_pct * n)`` of the ``n`` items, as fastai's; when that is none (``valid_pct=0``, or too few items),
    every item is for training.

    >>> import polars as pl
    >>> from pipekit.data import EndSplitter
    >>> items = pl.DataFrame({"x": range(10)})
    >>> [s.tolist() for s in EndSplitter(valid_pct=0.2)(items)]
    [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]]
    >>> [s.tolist() for s in EndSplitter(valid_pct=0.3, valid_last=False)(items)]
    [[3, 4, 5, 6, 7, 8, 9], [0, 1, 2]]
    """

    param_constraints = {"valid_pct": VALID_PCT, "valid_last": Is(lambda v: isinstance(v, bool), "True or False")}

    def __init__(self, valid_pct: float = 0.2, valid_last: bool = True):
        self.valid_pct, self.valid_last = valid_pct, valid_last
        self.check_params()

    def split(self, items: pl.DataFrame) -> Split:
        n = len(items)
        cut = int(self.valid_pct * n)  # int(), as fastai's
        idx = np.arange(n, dtype=np.int64)
        return (idx[:n - cut], idx[n - cut:]) if self.valid_last else (idx[cut:], idx[:cut])

    def columns(self) -> list[str] | None:
        return []


class FileSplitter(Splitter):
    """The items whose file name is listed in the text file ``fname`` (one name per line, as ``valid.txt``) are the
    validation set, as fastai's ``FileSplitter``: an item's name is its path's last part (``Path(o).name``), so
    ``train/3/7463.png`` is listed as ``7463.png``. ``col`` names the column with the paths (default: the items'
    ``path`` column). The file is read when the items are split. A file naming none of the items leaves every item
    for training, with a warning.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.data import FileSplitter
    >>> fname = Path(tempfile.mkdtemp()) / "valid.txt"
    >>> _ = fname.write_text("b.png\\nd.png\\n")
    >>> [s.tolist() for s in FileSplitter(fname)(["x/a.png", "x/b.png", "y/c.png", "y/d.png"])]
    [[0, 2], [1, 3]]
    """

    param_constraints = {"fname": Is(lambda v: isinstance(v, (str, os.PathLike)), "the path of a text file"),
                         "col": Is(lambda v: v is None or isinstance(v, str), "None or a column name")}

    def __init__(self, fname: str | os.PathLike, col: str | None = None):
        # kept as text, as a record holds it: a loaded or cloned splitter is the same
        self.fname, self.col = os.fspath(fname) if isinstance(fname, os.PathLike) else fname, col
        self.check_params()

    def split(self, items: pl.DataFrame) -> Split:
        try:
            names = set(Path(self.fname).read_text().splitlines())
        except OSError as e:
            raise DataError(f"FileSplitter: cannot read the file of validation names {str(self.fname)!r}: "
                            f"{type(e).__name__}: {e}") from e
        paths = items[self.col].cast(pl.Utf8) if self.col else path_column(items, "FileSplitter")
        own = paths.str.replace_all(r"\\", "/").str.split("/").list.last()
        mask = own.is_in(list(names - {""})).fill_null(False).to_numpy()
        if not mask.any():
            warn(f"FileSplitter: none of the names in {str(self.fname)!r} is an item's file name (first item: "
                 f"{own[0]!r}); training on every item, with no validation set")
        return _mask_split(mask)

    def columns(self) -> list[str] | None:
        return [self.col] if self.col else None

class GrandparentSplitter(Splitter):
    """Split by the folder two levels above each file: ``train/3/x.png`` is in 'train'.

    ``train_name`` and ``valid_name`` each name one folder or a list of them (``valid_name=["valid", "test"]``:
    the files under either are the validation set); ``valid_name=None`` names no validation folder: the files under
    ``train_name`` train, with no validation set (said in a warning). ``col`` names the column with the paths
    (default: the items' ``path`` column).

    >>> from pipekit.data import GrandparentSplitter
    >>> files = ["mnist/train/3/a.png", "mnist/valid/7/b.png", "mnist/train/7/c.png", "mnist/test/3/d.png"]
    >>> [s.tolist() for s in GrandparentSplitter()(files)]
    [[0, 2], [1]]
    >>> [s.tolist() for s in GrandparentSplitter(valid_name=["valid", "test"])(files)]
    [[0, 2], [1, 3]]
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     [s.tolist() for s in GrandparentSplitter(valid_name=None)(files)]
    [[0, 2], []]
    """

    param_constraints = {
        "train_name": Is(lambda v: bool(_folder_names(v)), "a folder's name or a non-empty list of them"),
        "valid_name": Is(lambda v: v is None or bool(_folder_names(v)),
                         "a folder's name, a non-empty list of them, or None (no validation folder)"),
    }

    def __init__(self, train_name: str | Sequence[str] = "train", valid_name: str | Sequence[str] | None = "valid",
                 col: str | None = None):
        self.train_name, self.valid_name, self.col = _values(train_name), _values(valid_name), col
        self.check_params()

    def folder_names(self) -> list[str]:
        """Every split folder's name, the training ones first.

        >>> GrandparentSplitter(valid_name=["valid", "test"]).folder_names()
        ['train', 'valid', 'test']
        """
        return [*_folder_names(self.train_name), *_folder_names(self.valid_name)]

    def split(self, items: pl.DataFrame) -> Split:
        paths = items[self.col].cast(pl.Utf8) if self.col else path_column(items, "GrandparentSplitter")
        parts = paths.str.replace_all(r"\\", "/").str.split("/")
        gp = parts.list.get(-3, null_on_oob=True)
        train_names, valid_names = _folder_names(self.train_name), _folder_names(self.valid_name)
        train = np.flatnonzero(gp.is_in(train_names).fill_null(False).to_numpy())
        valid = np.flatnonzero(gp.is_in(valid_names).fill_null(False).to_numpy())
        if len(train) > 0 and not valid_names:  # valid_name=None: no validation folder, on purpose
            warn(f"GrandparentSplitter: valid_name=None; training on the {len(train)} item(s) under "
                 f"{' and '.join(repr(n) for n in train_names)} with no validation set")
        elif len(train) == 0 or len(valid) == 0:
            seen = sorted({str(g) for g in gp.head(1000)})
            names = train_names if len(train) == 0 else valid_names
            missing = f"no items under {' or '.join(repr(n) for n in names)} folders; grandparent folders found: {seen}"
            if len(train) == 0:
                raise DataError(f"GrandparentSplitter: {missing}. Set train_name/valid_name.")
            # training on every item is allowed (fastai's final fit on all the data), but a misspelt valid_name
            # would give it silently: say what was found
            warn(f"GrandparentSplitter: {missing}; training on the {len(train)} item(s) under "
                 f"{' and '.join(repr(n) for n in train_names)} with no validation set (set valid_name= if one was "
                 "meant)")
        return train, valid

    def columns(self) -> list[str] | None:
        return [self.col] if self.col else None


def _folder_names(v: Any) -> list[str]:
    """The folder names a :class:`GrandparentSplitter` setting gives (one name, or a list of them); none (``[]``)
    for a setting that is neither.

    >>> _folder_names("valid"), _folder_names(["valid", "test"]), _folder_names(3), _folder_names(["valid", 3])
    (['valid'], ['valid', 'test'], [], [])
    """
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(n, str) for n in v):
        return list(v)
    return []


class ColSplitter(Splitter):
    """Items whose ``col`` is true (``valid_value=None``, the default, as fastai's ``on=None``; or ``True``) or equals
    ``valid_value`` (or is one of a list of them) are the validation set. ``on=`` is fastai's name of ``valid_value``
    (``ColSplitter("fold", on=1)``, ``on=[1, 2]``); given under both names, the two must be one value.

    True, with the default ``valid_value=None``, is: ``True``; a number other than 0, as fastai's
    ``df[col].astype(bool)`` reads it (``2`` as well as ``1``, a NaN too); a text ``"true"``, ``"1"``, ``"yes"`` or
    ``"valid"``, in any case (a CSV's flags). A missing value (null, ``None``, or a NaN pandas reads as missing) is refused, naming
    its row, rather than silently put in one set: fill the column so each row is training or validation.

    >>> import polars as pl
    >>> from pipekit.data import ColSplitter
    >>> df = pl.DataFrame({"x": [1, 2, 3, 4], "is_valid": [False, True, False, True], "fold": [0, 0, 1, 2]})
    >>> [s.tolist() for s in ColSplitter()(df)], [s.tolist() for s in ColSplitter("fold", valid_value=1)(df)]
    ([[0, 2], [1, 3]], [[0, 1, 3], [2]])
    >>> ColSplitter("fold", on=1).valid_value, ColSplitter("x", on=[1, 4])(df)[1].tolist()
    (1, [0, 3])

    A number column holding other numbers than 0 and 1 (``ColSplitter("fold")`` above: its 1 and 2 are both
    validation) is split so, with a warning naming them and ``valid_value=``, which takes one of them.
    """

    def __init__(self, col: str = "is_valid", valid_value: Any = None, **fastai_kwargs: Any):
        check_arguments("ColSplitter", fastai_kwargs, ["on"])
        self.col = col
        self.valid_value = one_of_two_names("ColSplitter", "valid_value", _values(valid_value), "on",
                                            _values(fastai_kwargs.get("on")), None, same=_same_values)

    def split(self, items: pl.DataFrame) -> Split:
        if self.col not in items.columns:
            raise DataError(f"ColSplitter: column {self.col!r} not in the items; "
                            f"{unknown_names([self.col], items.columns)}")
        s = items[self.col]
        if s.null_count():
            raise DataError(f"ColSplitter: column {self.col!r} has {s.null_count()} null(s), first at row "
                             f"{int(s.is_null().arg_true()[0])}; fill them so each row is train or valid")
        value = True if self.valid_value is None else self.valid_value  # None: true values, as fastai's on=None
        if s.dtype == pl.Boolean and value is True:
            mask = s.to_numpy()
        elif s.dtype.is_numeric() and self.valid_value is None:  # fastai's astype(bool): any number but 0 (NaN too)
            values = s.to_numpy()
            mask = values != 0
            flag = (s == 0) | (s == 1)  # NaN compares false: not a flag
            odd = s.filter(~flag)
            if len(odd):  # a fold number or a score, not a flag: say what the split takes
                shown = sorted({str(v) for v in odd.unique().head(5).to_list()})
                warn(f"ColSplitter: column {self.col!r} holds numbers other than 0 and 1 ({', '.join(shown)}, in "
                     f"{len(odd)} rows): as fastai reads a column of flags, every number but 0 puts its row in the "
                     f"validation set ({int(mask.sum())} of {len(mask)} rows); to take one value, give it "
                     f"(ColSplitter({self.col!r}, valid_value={odd[0]!r}), or on=[...] for several)")
        elif s.dtype == pl.Utf8 and value is True:
            mask = s.str.to_lowercase().is_in(["true", "1", "yes", "valid"]).to_numpy()
        elif isinstance(value, list):  # one of several values, as fastai's on=[...]
            mask = s.is_in(value).to_numpy()
        else:
            mask = (s == value).to_numpy()
        return _mask_split(mask)

    def columns(self) -> list[str] | None:
        return [self.col]


def _values(v: Any) -> Any:
    """A splitter's value or values: several (a tuple, a set, an array) as a list, as an exported recipe keeps them."""
    return list(v) if isinstance(v, (tuple, set, frozenset, np.ndarray)) else v


def _same_values(a: Any, b: Any) -> bool:
    """Whether two settings of one splitter argument are one: equal values of one kind, a flag (``True``) not being
    the number 1, nor a boolean mask the positions 0 and 1.

    >>> _same_values(1, 1), _same_values(True, 1), _same_values([0, 2], np.array([0, 2])), _same_values([True], [1])
    (True, False, True, False)
    """
    try:
        x, y = np.asarray(a), np.asarray(b)
        return x.shape == y.shape and (x.dtype == bool) == (y.dtype == bool) and bool(np.all(x == y))
    except (TypeError, ValueError):
        return False


class FuncSplitter(Splitter):
    """``fn(item) -> bool`` marks validation items (a user function; not exportable).

    >>> from pipekit.data import FuncSplitter
    >>> files = ["cat_01.png", "dog_02.png", "cat_03.png", "dog_04.png"]
    >>> [s.tolist() for s in FuncSplitter(lambda f: f.startswith("dog"))(files)]
    [[0, 2], [1, 3]]
    """

    param_constraints = {"fn": Is(callable, "a function item -> bool")}

    def __init__(self, fn: Callable[[Any], bool]):
        self.fn = fn
        self.check_params()

    def split(self, items: pl.DataFrame) -> Split:
        return _mask_split(np.fromiter((bool(self.fn(o)) for o in iter_items(items)), dtype=bool, count=len(items)))


def row_index(rows: Any, n: int, what: str) -> np.ndarray:
    """Row positions (int64) from positions or from a boolean mask with one value per row (``df.b > 1``), for
    ``n`` rows. A mask of another length is refused (read as positions, its values would be rows 0 and 1), and so
    are a position outside ``0..n-1``, negative ones included (-1 is not taken as the last row), and values that
    are neither; ``what`` ("Tabular: the valid") starts the message.

    >>> row_index([False, True, True], 3, "the valid").tolist()
    [1, 2]
    """
    a = np.asarray(rows).reshape(-1)
    if a.dtype == bool:
        if len(a) != n:
            raise DataError(f"{what} mask has {len(a)} values for {n} rows; give one per row, or the row positions")
        return np.flatnonzero(a).astype(np.int64)
    if len(a) and a.dtype.kind not in "iu":
        raise DataError(f"{what} split holds {a.dtype} values; give row positions (integers) or a boolean mask with one "
                        "value per row")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= n)
    if bad.any():
        wrong = a[bad]
        raise DataError(f"{what} split has {wrong.size} row position(s) outside 0..{n - 1} (there are {n} rows): "
                        f"{wrong[:5].tolist()}; positions count from 0, and negative ones are not read from the end")
    return a


def check_disjoint(train: np.ndarray, valid: np.ndarray, who: str, item: Callable[[int], Any]) -> None:
    """Refuse a split that puts an item in both the training and the validation set: its validation score would
    be measured on items the model was trained on. ``who`` starts the message, ``item(i)`` shows item ``i``.

    >>> check_disjoint(np.array([0, 1]), np.array([2]), "the split", str)
    >>> check_disjoint(np.array([0, 1]), np.array([1, 2]), "the split", lambda i: f"row {i}")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.DataError: the split puts 1 item(s) in both the training and the validation set (first: row 1)
    """
    both = np.intersect1d(train, valid)
    if both.size:
        raise DataError(f"{who} puts {both.size} item(s) in both the training and the validation set "
                        f"(first: {item(int(both[0]))})")


class IndexSplitter(Splitter):
    """The items at ``idxs`` are the validation set: row positions, or a boolean mask with one value per item
    (``(df.year == 2020).to_numpy()``). ``valid_idx=`` is fastai's name of ``idxs``.

    >>> import polars as pl
    >>> IndexSplitter([False, True, True])(pl.DataFrame({"x": [1, 2, 3]}))[1].tolist()
    [1, 2]
    >>> IndexSplitter(valid_idx=[0, 2])(pl.DataFrame({"x": [1, 2, 3]}))[1].tolist()
    [0, 2]
    """

    def __init__(self, idxs: Sequence[int] | Sequence[bool] | np.ndarray | None = None, **fastai_kwargs: Any):
        check_arguments("IndexSplitter", fastai_kwargs, ["valid_idx"])
        idxs = one_of_two_names("IndexSplitter", "idxs", _values(idxs), "valid_idx",
                                _values(fastai_kwargs.get("valid_idx")), None, same=_same_values)
        if idxs is None:
            raise ParameterError("IndexSplitter needs the validation items' positions: IndexSplitter([3, 7, 9]) (or "
                                 "valid_idx=[3, 7, 9], fastai's name), or a boolean mask with one value per item")
        try:  # a range, a set or a generator of positions as well as a list, an array or a Series
            a = idxs if isinstance(idxs, np.ndarray) else np.asarray(list(idxs))
        except TypeError:
            a = np.asarray(idxs)
        if a.ndim != 1:
            raise ParameterError(f"IndexSplitter: idxs must be a list of row positions or a boolean mask, got "
                                 f"{type(idxs).__name__} of shape {a.shape}")
        # kept as plain Python values (bools for a mask), as an exported recipe stores them
        self.idxs = [bool(v) for v in a] if a.dtype == bool else [int(v) if a.dtype.kind in "iu" else v
                                                                   for v in a.tolist()]

    def split(self, items: pl.DataFrame) -> Split:
        n = len(items)
        mask = np.zeros(n, dtype=bool)
        mask[row_index(self.idxs, n, "IndexSplitter: the validation")] = True
        return _mask_split(mask)

    def columns(self) -> list[str] | None:
        return []


class MaskSplitter(Splitter):
    """The items where ``mask`` is True are the validation set: one boolean per item, in the items' order
    (fastai's ``MaskSplitter``, e.g. ``MaskSplitter(df.year == 2020)``).

    >>> import polars as pl
    >>> MaskSplitter([False, True, False, True])(pl.DataFrame({"x": range(4)}))
    (array([0, 2]), array([1, 3]))
    """

    def __init__(self, mask: Sequence[bool] | np.ndarray):
        try:
            a = mask if isinstance(mask, np.ndarray) else np.asarray(list(mask))
        except TypeError:
            a = np.asarray(mask)
        if a.ndim != 1 or a.dtype != bool:
            raise ParameterError(f"MaskSplitter: mask must hold one True/False per item (True: validation), got "
                                 f"{a.dtype} of shape {a.shape}; for row positions use IndexSplitter")
        self.mask = [bool(v) for v in a]  # plain booleans, as an exported recipe stores them

    def split(self, items: pl.DataFrame) -> Split:
        return _mask_split(np.isin(np.arange(len(items)), row_index(self.mask, len(items), "MaskSplitter: the")))

    def columns(self) -> list[str] | None:
        return []


class TimeSplitter(Splitter):
    """Train on rows before ``cutoff`` in column ``col``, validate on rows from the cutoff on.

    ``cutoff`` may be a date/datetime, an ISO string, a number, or a float in (0, 1) meaning "the last
    that share of the time range". A cutoff without a UTC offset is read in the column's time zone.

    A text column is read as dates: ``format=`` (a strftime format such as ``"%m/%d/%Y"``) says how; without it
    ISO text and day/month numbers are recognised, and a column that reads both day-first and month-first
    (``01/06/2015``) is refused rather than split on a guess.

    >>> import polars as pl
    >>> df = pl.DataFrame({"Date": ["03/30/2015", "06/02/2015", "06/20/2015"]})
    >>> TimeSplitter("Date", "2015-06-01")(df)[1].tolist()
    [1, 2]
    """

    def __init__(self, col: str, cutoff: Any, format: str | None = None):
        self.col, self.format = col, format
        if isinstance(cutoff, np.datetime64):  # NumPy's (and a pandas column's) datetimes, as ISO text
            cutoff = str(np.datetime_as_string(cutoff, unit="us"))
        self.cutoff = cutoff.isoformat() if isinstance(cutoff, (dt.date, dt.datetime)) else cutoff
        if isinstance(self.cutoff, str):
            try:
                dt.datetime.fromisoformat(self.cutoff)
            except ValueError:
                raise ParameterError(f"TimeSplitter: cutoff={self.cutoff!r} is not an ISO date; give e.g. '2015-06-14' "
                                     "(or '2015-06-14 12:00'), a datetime.date, a number or a share in (0, 1)") from None

    def times(self, items: pl.DataFrame) -> pl.Series:
        """Column ``col`` of ``items`` as the split compares it (text read as dates), one time per row: what a
        ``Tabular`` split by this splitter records of its training rows (``Tabular.train_times``).

        >>> import polars as pl
        >>> TimeSplitter("Date", "2015-06-01").times(pl.DataFrame({"Date": ["2015-06-02"]})).dtype
        Datetime(time_unit='us', time_zone=None)
        """
        if self.col not in items.columns:
            raise DataError(f"TimeSplitter: column {self.col!r} not in the items; "
                            f"{unknown_names([self.col], items.columns)}")
        s = items[self.col]
        if s.dtype == pl.Utf8:
            s = self._parse(s)
        if s.null_count():
            raise DataError(f"TimeSplitter: column {self.col!r} has {s.null_count()} null(s) "
                             f"(first at row {int(s.is_null().arg_true()[0])}); a row with no time has no side")
        return s

    def split(self, items: pl.DataFrame) -> Split:
        return self.split_times(self.times(items))

    def split_times(self, s: pl.Series) -> Split:
        """The split of rows whose times (as :meth:`times` gives them) are ``s``."""
        cut = self.cutoff
        if isinstance(cut, float) and 0 < cut < 1:
            if s.dtype == pl.Date:  # each date as its midnight: a date plus 14.25 days drops the quarter day, so
                s = s.cast(pl.Datetime("us"))  # dates split as the same days as datetimes or text dates do
            lo, hi = s.min(), s.max()
            cut = lo + (hi - lo) * (1 - cut)  # type: ignore[operator]
        elif isinstance(cut, str) and s.dtype in (pl.Date, pl.Datetime):
            cut = dt.datetime.fromisoformat(cut)
            if s.dtype == pl.Date:
                cut = cut.date()
            else:
                tz = s.dtype.time_zone  # type: ignore[attr-defined]
                if tz:  # a cutoff without an offset is the column's local time; one with an offset, that instant
                    cut = (cut.replace(tzinfo=zoneinfo.ZoneInfo(tz)) if cut.tzinfo is None
                           else cut.astimezone(zoneinfo.ZoneInfo(tz)))
                elif not tz and cut.tzinfo is not None:
                    raise DataError(f"TimeSplitter: cutoff {self.cutoff!r} has a UTC offset but column {self.col!r} has "
                                    "no time zone; give the cutoff without an offset, in the column's local time")
        elif isinstance(cut, str):
            raise DataError(f"TimeSplitter: cutoff {cut!r} is text but column {self.col!r} is {s.dtype}")
        return _mask_split((s >= cut).to_numpy())

    def _parse(self, text: pl.Series) -> pl.Series:
        return text_times(text, self.col, "TimeSplitter", self.format)

    def columns(self) -> list[str] | None:
        return [self.col]


def text_times(text: pl.Series, col: str, who: str, format: str | None = None) -> pl.Series:
    """Text dates as datetimes, read as ``TimeSplitter`` and ``add_datepart`` read them: in ``format`` when given,
    else ISO text or day/month numbers in the order every value together settles, whatever layouts they are
    written in (``13/02/2015``, ``03-04-2015 10:00``), refusing a column that reads both day-first and month-first
    (``01/06/2015``); times written with a UTC offset keep the clock they were written in. A value that does not
    read is a DataError naming ``who``, column ``col`` and its row.

    >>> text_times(pl.Series(["2015-01-02", "2015-01-01"]), "Date", "TimeSplitter").dt.day().to_list()
    [2, 1]
    """
    text = text.str.strip_chars()
    if text.drop_nulls().str.contains(AWARE).all() and text.drop_nulls().len():
        # times written with their UTC offset are compared on the clock they were written in, as
        # add_datepart reads their parts (Polars would turn them into UTC: 01:00+02:00 the day before)
        text = text.str.replace(OFFSET, "")
    layouts = [format] if format is not None else \
        text_date_layouts(text.drop_nulls().unique(maintain_order=True), col, who) or []
    # no layout reads any value: every value is a misfit (Polars' own inference would raise on it)
    parsed = read_text_dates(text, layouts) if layouts else \
        pl.Series(col, [None] * len(text), pl.Datetime("us"))
    bad = parsed.is_null() & text.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        how = f" in format {layouts[0]!r}" if len(layouts) == 1 else f" in formats {layouts}" if layouts else ""
        raise DataError(f"{who}: {int(bad.sum())} value(s) of column {col!r} are not dates{how}, first "
                        f"{text[row]!r} at row {row}; fix them, or pass format= (e.g. format='%m/%d/%Y')")
    return parsed


class TrainTestSplitter(Splitter):
    """A stratified random split (``stratify_col`` keeps class proportions in both subsets).

    fastai's (and scikit-learn's) names are taken too: ``test_size`` for ``valid_pct``, ``random_state`` for
    ``seed``, and ``stratify``, the labels themselves, one per item, in place of a column's name.

    >>> import polars as pl
    >>> items = pl.DataFrame({"y": ["a"] * 8 + ["b"] * 4})
    >>> train, valid = TrainTestSplitter(test_size=0.25, random_state=0, stratify=items["y"].to_list()).split(items)
    >>> sorted(items["y"][valid].to_list())
    ['a', 'a', 'b']
    """

    param_constraints = RandomSplitter.param_constraints

    def __init__(self, valid_pct: float = 0.2, seed: int | None = None, stratify_col: str | None = None, *,
                 test_size: float | None = None, random_state: int | None = None, stratify: Any = None):
        if test_size is not None:
            valid_pct = test_size
        if random_state is not None:
            seed = random_state
        if stratify is not None and stratify_col is not None:
            raise ParameterError("TrainTestSplitter: give the labels (stratify=) or a column's name (stratify_col=), "
                                 "not both")
        self.valid_pct, self.seed, self.stratify_col = valid_pct, seed, stratify_col
        self.test_size = self.random_state = None  # read into valid_pct and seed, which carry them
        self.stratify = None if stratify is None else [str(v) for v in np.asarray(stratify, dtype=object).ravel()]
        self.check_params()

    def split(self, items: pl.DataFrame) -> Split:
        if self.stratify_col is None and self.stratify is None:
            return RandomSplitter(self.valid_pct, self.seed).split(items)
        # no seed of its own: drawn from NumPy's global generator (pipekit.set_seed), as RandomSplitter does
        seed = self.seed if self.seed is not None else int(np.random.randint(0, 2**63 - 1, dtype=np.int64))
        rng = np.random.default_rng(seed)
        if self.stratify is not None:
            if len(self.stratify) != len(items):
                raise ParameterError(f"TrainTestSplitter: stratify= holds {len(self.stratify)} labels for "
                                     f"{len(items)} items; give one label per item, in the items' order")
            codes = np.asarray(self.stratify, dtype=object)
        else:
            codes = items[str(self.stratify_col)].cast(pl.Utf8).fill_null("#na#").to_numpy()
        labels, counts = np.unique(codes, return_counts=True)
        # as many validation items as scikit-learn's train_test_split gives: ceil(valid_pct * n)
        n_valid = int(np.ceil(self.valid_pct * len(items)))
        if n_valid:
            self._check_strata(labels, counts, n_valid, len(items))
        mask = np.zeros(len(items), dtype=bool)
        for v, take in zip(labels, stratified_counts(counts, n_valid)):
            mask[rng.permutation(np.flatnonzero(codes == v))[:take]] = True
        return _mask_split(mask)

    def _check_strata(self, labels: np.ndarray, counts: np.ndarray, n_valid: int, n: int) -> None:
        """Refuse, as scikit-learn's ``train_test_split`` does, a class of one item (it cannot be in both subsets)
        and a subset too small to hold an item of every class."""
        where = f"column {self.stratify_col!r}" if self.stratify_col is not None else "stratify="
        if counts.min() < 2:
            rare = [str(v) for v in labels[counts < 2]]
            raise DataError(f"TrainTestSplitter: {len(rare)} class(es) of {where} have 1 item, too few to be in both "
                            f"the training and the validation set (first {rare[:5]}); drop or merge those classes "
                            "before splitting, or split without stratifying (RandomSplitter)")
        for subset, size in (("validation", n_valid), ("training", n - n_valid)):
            if size < len(labels):
                raise DataError(f"TrainTestSplitter: valid_pct={self.valid_pct} gives a {subset} set of {size} of the "
                                f"{n} items, fewer than the {len(labels)} classes of {where}, so some class would have "
                                f"none there; give a valid_pct between {len(labels) / n:.3g} and "
                                f"{1 - len(labels) / n:.3g}, merge rare classes, or split without stratifying "
                                "(RandomSplitter)")

    def columns(self) -> list[str] | None:
        return [self.stratify_col] if self.stratify_col else []
