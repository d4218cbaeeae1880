"""DataBlock: the declarative recipe (blocks, getters, splitter, transforms) and what it builds.

A DataBlock is never changed by building: ``datasets(source)`` and ``dataloaders(source)`` fit a clone of
it, and that fitted clone (its learned state in ``blocks_``, ``getters_``, ``batch_tfms_``) is the recipe
the loaders keep, encode new items with and export. So one DataBlock builds any number of independent
loaders, on any number of sources.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import os
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import polars as pl
import torch

from pipekit.core.component import Component, construct
from pipekit.core.errors import (DataError, ExportError, FieldError, ParameterError, PipelineStepError,
                                 UnknownNameError, warn)
from pipekit.core.registry import name_of
from pipekit.core.validate import (Is, argument_names, bs_or_batch_size, check, check_arguments, check_positive_int,
                                   check_state, is_pandas)
from pipekit.data.blocks import RegressionBlock, TransformBlock
from pipekit.data.dataloaders import (DataLoaders, Datasets, check_seq_len, learned_state, short_repr, walk_batch,
                                      weighted_loaders)
from pipekit.data.getters import (ColReader, Getter, Row, apply_getter, called_on_items, check_item_getters,
                                  is_item_getter, item_at, iter_items, rows_column)
from pipekit.data.items import names_files, to_items
from pipekit.data.loader import ArrayDataset, DataLoader
from pipekit.data.splitters import (GrandparentSplitter, RandomSplitter, Splitter, check_disjoint, left_out_message,
                                    row_index)
from pipekit.data.store import OUTSIDE_LOADER, ListStore, Store, gathering
from pipekit.data.transform import (_VALUE_TYPES, BatchPipeline, BatchTransform, FuncTransform, Transform, as_list,
                                    as_transform, grouped_batch_tfms, written_for_items)

Trace = Callable[[str, str, Any], None]  # (step, what, value)

#: set while :meth:`DataBlock.summary` builds the data it walks: a block whose items are decoded into a cache (an
#: image block's presized images) then decodes each one as a batch first reads it, in memory, and writes no cache,
#: since the walk reads one batch (and the sample that batch transforms learn from)
_WALKING_ONE_BATCH: ContextVar[bool] = ContextVar("pipekit_walking_one_batch", default=False)


def walking_one_batch() -> bool:
    """Whether :meth:`DataBlock.summary` is building the data it walks in this thread (see
    :data:`_WALKING_ONE_BATCH`).

    >>> walking_one_batch()
    False
    """
    return _WALKING_ONE_BATCH.get()


def _wrap_hint(t: Any) -> str:
    """How to pass a transform from another library."""
    if type(t).__module__.split(".")[0] == "albumentations":
        return "; wrap an albumentations transform or Compose: pipekit.vision.Albumentations(t)"
    return ""


#: how a transform of whole batches is written in pipekit, as messages about fastai's batch Transforms say it
BATCH_TRANSFORM_HOW = ("subclass BatchTransform and define encode(self, batch, ctx), where batch is the tuple of the "
                       "batch's tensors, inputs then targets, and it returns that tuple (x, *rest = batch; return "
                       "(x * 10, *rest)), and decode(self, batch, ctx) alike to undo it for show_batch; give it "
                       "order = 95 (a class attribute) to get images as fastai's batch transforms do, float (B, C, H, "
                       "W) in 0..1 after IntToFloat (order 90), not the uint8 (B, H, W, C) batch before it (the "
                       "default order is 50); random draws come from ctx.rng(name), and ctx.train says whether the "
                       "batch is a training one")


def tensor_only_types(t: Any) -> tuple[type, ...] | None:
    """The classes ``t``'s typed ``encodes`` (or ``Transform(f)``'s annotated function) applies to when all of them
    are tensor classes (``x: TensorImage``, ``x: torch.Tensor``), else None. An item transform sees an item's values
    before they are batched: in the blocks :func:`values_are_no_tensors` names (an image as an ImageArray, a label
    as text or a number) never a tensor, so there such a transform would change nothing (it is fastai's way of
    writing a batch transform); in a block whose values are what the getter gives (a ``TransformBlock``), they may
    be tensors, and it runs on them."""
    if isinstance(t, BatchTransform) or not isinstance(t, Transform):
        return None
    types = t._types[0] if isinstance(t, FuncTransform) else getattr(type(t).encode, _VALUE_TYPES, None)
    if types and all(isinstance(c, type) and issubclass(c, torch.Tensor) for c in types):
        return tuple(types)
    return None


def values_are_no_tensors(block: Any) -> bool:
    """Whether the values item transforms see in ``block`` are known to be no tensors: pipekit's blocks make their
    values themselves (an image or a mask as an ImageArray, a label as text or a number, a text as tokens), except
    a generic ``TransformBlock``, whose values are what its getter gives, and the blocks that take the getter's
    numbers or coordinates as they come (a ``RegressionBlock``; a block of geometry ``"points"`` or ``"bbox"``),
    which may be tensors; so may the values of a block pipekit does not define.

    >>> from pipekit.data import CategoryBlock, RegressionBlock, TransformBlock
    >>> values_are_no_tensors(CategoryBlock()), values_are_no_tensors(TransformBlock())
    (True, False)
    >>> values_are_no_tensors(RegressionBlock())
    False
    """
    cls = type(block)
    if cls is TransformBlock or not cls.__module__.startswith("pipekit."):
        return False
    return not isinstance(block, RegressionBlock) and block.geometry not in ("points", "bbox")


def _annotation(types: tuple[type, ...]) -> str:
    """``types`` as an annotation reads (``TensorImage | Tensor``)."""
    return " | ".join(c.__name__ for c in types)


def item_transforms(item_tfms: Any) -> list[Transform]:
    """``item_tfms`` as transforms: a plain function (the book's ``item_tfms=[f]``) is ``Transform(f)``, as in
    fastai, run on every value of an item its type dispatch lets through, one value at a time (an image, a label);
    a class or anything not callable is refused, saying what to give, and so is an albumentations transform, with
    the hint to wrap it in ``pipekit.vision.Albumentations``. Another callable (another library's transform
    included) is taken as a function of one value."""
    out = []
    for t in as_list(item_tfms):
        if not isinstance(t, Transform) and (isinstance(t, type) or not callable(t) or _wrap_hint(t)):
            raise ParameterError(f"DataBlock: item_tfms takes transforms (e.g. Resize(224)) or functions of one "
                                 f"value, got {t!r:.200}" + _wrap_hint(t))
        out.append(as_transform(t))
    return out


def _nested(value: Any) -> Any:
    """``value`` as a column of items holds it: a NumPy array of two axes or more (an item's points, (n, 2)) as
    nested lists, as a list of lists gives it (Polars holds an array of one axis per item, not more), and an object
    array of rows as the lists of its rows; rows of different lengths are refused. Anything else as it is.

    >>> _nested(np.zeros((2, 2), np.float32)), _nested(np.arange(2))
    ([[0.0, 0.0], [0.0, 0.0]], array([0, 1]))
    >>> _nested(np.array([[1], [2, 3]], dtype=object))
    Traceback (most recent call last):
    ...
    pipekit.core.errors.DataError: an array of 2 rows of different lengths ([1], [2, 3]) is no table of values; give each item's values as one array whose rows all have the same length
    """
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype == object and any(isinstance(r, (list, tuple, np.ndarray)) for r in value.reshape(-1)):
        rows = value.tolist()  # rows held as objects: a table when they all have one length
        try:
            np.array(rows)
        except ValueError:  # NumPy refuses rows of different lengths
            shown = ", ".join(str(r)[:20] for r in value.reshape(-1)[:3])
            raise DataError(f"an array of {value.size} rows of different lengths ({shown}) is no table of values; give "
                            "each item's values as one array whose rows all have the same length") from None
        return rows
    return value.tolist() if value.ndim >= 2 else value


def _array_rows(block: Any, getter: Any) -> Any:
    """``getter`` (a function of one item) with what it gives as :func:`_nested` makes it, so that a 2-D (or N-D)
    NumPy array per item (``get_y`` giving (n, 2) points, a ``TensorPoint``) is taken as a list of lists or a tensor
    is; an error names the item. A block of pixels takes its arrays as they are, and a pipekit getter reads columns."""
    if not callable(getter) or isinstance(getter, Getter) or block.geometry in ("image", "mask"):
        return getter

    def rows(item: Any) -> Any:
        return _nested(getter(item))

    rows.__name__ = getattr(getter, "__name__", repr(getter))  # the getter an error names
    return rows


def _storable(v: Any) -> bool:
    """Whether a parameter can be written in a file: plain data (None, a bool, number or text, or a list/tuple of
    them, as ``n_inp`` is), a registered function, or a component whose own parameters can (a ``FuncSplitter`` or
    ``using_attr`` around a function of the user's cannot)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)) and all(x is None or isinstance(x, (bool, int, float, str)) for x in v):
        return True
    try:
        if isinstance(v, Component):
            v.to_record({})
            return True
        return bool(name_of(v))
    except (UnknownNameError, ExportError):
        return False


def _getter_name(g: Any) -> str:
    """How an export names a getter it cannot keep, for :func:`getter_fix` to say what to register: a function's
    name (``'<lambda>'`` for a lambda; ``'is_cat(name)'`` for a getter pipekit made around one); for a getter of
    pipekit's around a function that is not registered (``using_attr(is_cat, 'name')``), that function's; else the
    object's class, ``'<partial object>'`` (a ``functools.partial``, a ``Pipeline`` of getters), an object that is
    registered as itself, under a name.

    >>> from functools import partial
    >>> def lab(f, k=1): return f
    >>> _getter_name(lab), _getter_name(partial(lab, k=2)), _getter_name(lambda o: o)
    ('lab', '<partial object>', '<lambda>')
    """
    if isinstance(g, Component):  # what keeps it out of a file is a function among its parameters
        for v in g.get_params(deep=False).values():
            if callable(v) and not _storable(v):
                return _getter_name(v)
    name = getattr(g, "__name__", None)
    if isinstance(name, str) and (inspect.isfunction(g) or inspect.ismethod(g) or inspect.isbuiltin(g)
                                  or inspect.isclass(g) or "(" in name):
        return name
    return f"<{type(g).__name__} object>"


def _check_masks_fit_images(blocks: Sequence[Any], stores: Sequence[Any], items: pl.DataFrame) -> None:
    """A mask follows its image through every transform, so each must be the size of its image (pixel for pixel);
    the first one that is not is named with its item."""
    image = next((s for b, s in zip(blocks, stores) if b.geometry == "image" and hasattr(s, "orig_sizes")), None)
    if image is None:
        return
    for b, s in zip(blocks, stores):
        if b.geometry == "mask" and hasattr(s, "orig_sizes") and len(s.orig_sizes) == len(image.orig_sizes):
            bad = np.flatnonzero((np.asarray(s.orig_sizes) != np.asarray(image.orig_sizes)).any(1))
            if bad.size:
                i = int(bad[0])
                (ih, iw), (mh, mw) = image.orig_sizes[i], s.orig_sizes[i]
                raise DataError(f"item {i} ({item_at(items, i)!r}): the image is {iw}x{ih} but its "
                                f"{type(b).__name__} is {mw}x{mh} ({bad.size} item(s) differ); a mask must be the size "
                                "of its image, pixel for pixel: check the getter pairs each image with its own mask")


def _check_boxes_have_labels(blocks: Sequence[Any], raws: Sequence[pl.Series], items: pl.DataFrame) -> None:
    """Each box is paired with the label at its place, so an item needs as many labels (the first later block
    labelling ``"bbox"`` geometry, ``BBoxLblBlock``) as boxes; the first item that has not is named with both counts."""
    for j, b in enumerate(blocks[:len(raws)]):
        if b.geometry != "bbox":
            continue
        k = next((k for k in range(j + 1, len(raws)) if getattr(blocks[k], "labels_geometry", None) == "bbox"), None)
        if k is None:
            continue
        n_boxes, n_labels = b.item_counts(raws[j]), blocks[k].item_counts(raws[k])
        bad = np.flatnonzero(n_boxes != n_labels)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"item {i} ({item_at(items, i)!r}): {n_boxes[i]} box(es) but {n_labels[i]} label(s) "
                            f"({bad.size} item(s) differ); give one label per box: the getters of "
                            f"{type(b).__name__} and {type(blocks[k]).__name__} must return lists of the same length")


def _source_sizes(block: Any, before: Sequence[Any], stores: Sequence[Any]) -> dict[str, Any]:
    """``{"source_sizes": (N, 2)}`` for a block whose values are measured in the source images (points, boxes):
    each item's (h, w), read from the store of the first image block before it (its files are decoded once, so
    this costs no second read); nothing for any other block, whose ``setup``/``encode_new`` keep their signature."""
    if not getattr(block, "needs_source_sizes", False):
        return {}
    image = next((s for b, s in zip(before, stores) if b.geometry == "image" and hasattr(s, "orig_sizes")), None)
    return {} if image is None else {"source_sizes": image.orig_sizes}


def _with_block_getters(blocks: Sequence[Any], getters: list) -> list:
    """A block's own getter where none was given (``TextBlock.from_df("review")`` reads 'review'); a ColReader of
    other columns for such a block is a contradiction, refused naming both."""
    out = []
    for b, g in zip(blocks, getters):
        own = b.default_getter()
        if own is not None and isinstance(g, ColReader) and g.cols != own.cols:
            raise ParameterError(f"{type(b).__name__} was made for column(s) {own.cols!r} but its getter reads "
                                 f"{g.cols!r}: drop the getter (the block reads its own columns) or make the block "
                                 f"for {g.cols!r}")
        out.append(own if g is None and own is not None else g)
    return out


def _takes_whole_rows(block: Any, getter: Any, items: pl.DataFrame) -> bool:
    """Whether ``block`` is given each item's whole row: as in the book's ``DataBlock().datasets(df)``, a block that
    keeps its values as they are (a plain ``TransformBlock`` with no type transforms) with no getter, over items of
    several columns none of which is the item's ``path`` (a block that reads one column, an image's or a label's,
    still refuses such items, naming their columns)."""
    return (getter is None and type(block) is TransformBlock and not block.type_transforms() and items.width > 1
            and "path" not in items.columns)


class PlainStore(ListStore):
    """What a plain ``TransformBlock`` keeps as its getter gave it: an item is the Python value (a getter's list of
    labels is a list, as in the book's ``get_y=lambda r: r['labels'].split(' ')``), not a one-item Polars Series."""

    def item(self, i: int) -> Any:
        v = self.values[int(i)]
        return v.to_list() if isinstance(v, pl.Series) else v

    def subset(self, idx: np.ndarray) -> PlainStore:
        return type(self)(self.values.gather(np.asarray(idx, dtype=np.int64)))


def _plain(block: Any, store: Any, rows: bool) -> Any:
    """``store`` as a :class:`RowStore` (whole rows) or :class:`PlainStore` (a plain block's values), else itself."""
    if type(store) is not ListStore or type(block) is not TransformBlock:
        return store
    if rows:
        return RowStore(store.values)
    return PlainStore(store.values) if isinstance(store.values.dtype, (pl.List, pl.Array)) else store


class RowStore(PlainStore):
    """The whole rows of a table, for a block given no getter (``DataBlock().datasets(df)``): ``dsets.train[0]`` is
    ``(row, row)``, each a :class:`~pipekit.data.getters.Row` (``x['fname']``, ``x.fname``). Rows are what a getter
    reads, not what a model takes: batching them is refused, saying to give blocks and getters."""

    def item(self, i: int) -> Row:
        return Row(self.values[int(i)])

    def gather(self, idx: np.ndarray) -> list:
        raise DataError(rows_not_batched(self.values.struct.fields))


def rows_not_batched(columns: Sequence[str]) -> str:
    """Why a DataBlock whose items are whole rows makes no batches, and what to give it."""
    shown = [*columns[:6], "..."] if len(columns) > 6 else list(columns)
    first, second = [*columns, "col", "label"][:2]
    return (f"a block with no getter (a DataBlock() without blocks and getters, or a TransformBlock) is given each "
            f"item's whole row of the table (columns {shown}): rows can be looked at (dsets.train[0]) but not "
            f"batched for a model; give blocks and getters, saying what the data is and which columns hold it, "
            f"e.g. DataBlock(blocks=(ImageBlock, MultiCategoryBlock), "
            f"get_x=ColReader({first!r}, pref=path/'train'), get_y=ColReader({second!r}, label_delim=' ')); for a "
            f"table's own columns as the model's input, use TabularPandas or TabularDataLoaders")


#: the registered kinds a getter read from a file may be: pipekit's getters, or a function of the user's registered
#: as one (``pipekit.register(fn, kind='getter')``, or ``kind='function'``); never a callback, a module, a model...
_GETTER_KINDS = ("getter", "function")
#: what a getter read from a file is said to take when refused (see :func:`check_item_getters`)
_GETTER_TAKES = "a getter reads one item's value: a getter (ColReader, ParentLabel, ...) or a registered function"


#: what a fitted DataBlock read from a file must hold to encode new items
_FITTED_STATE = {
    "blocks_": Is(lambda v: isinstance(v, list) and bool(v) and all(isinstance(b, TransformBlock) for b in v),
                  "the fitted blocks (a non-empty list)"),
    "getters_": Is(lambda v: isinstance(v, list) and all(is_item_getter(h) for g in v
                                                         for _, h in called_on_items(g, "")),
                   "one getter (or null) per block"),
    "n_inp_": Is(lambda v: type(v) is int and v >= 1, "the number of inputs (a positive integer)"),
    "batch_tfms_": Is(lambda v: isinstance(v, list) and all(isinstance(t, BatchTransform) for t in v),
                      "the batch transforms (a list)"),
}


def _learned(t: Any) -> list[str]:
    """The learned attributes the class of ``t`` declares (annotations ending in ``_``, ``vocab_: CategoryMap``)."""
    names: dict[str, Any] = {}
    for k in reversed(type(t).__mro__):
        names.update(vars(k).get("__annotations__", {}))
    return [n for n in names if n.endswith("_") and not n.startswith("_")]


def _check_fitted_tfms(block: Any, field: str) -> None:
    """A fitted block read from a file encodes with its fitted transforms (``tfms_``) and brings its batch transforms
    (``batch_tfms_``): each must be a transform of its kind, and one that declares what it learns (Categorize's
    ``vocab_``) must hold it, so a file stripped of it is refused here and not at the user's predict."""
    for name, kind in (("tfms_", Transform), ("batch_tfms_", BatchTransform)):
        tfms = vars(block).get(name, [])
        if not (isinstance(tfms, list) and all(isinstance(t, kind) for t in tfms)):
            bad = next((t for t in tfms if not isinstance(t, kind)), tfms) if isinstance(tfms, list) else tfms
            raise FieldError(f"{field}.{name}", f"must be a list of {kind.__name__}s, holds {str(bad)[:60]!r}; the "
                                                "file is damaged or was not written by pipekit")
        if name == "tfms_":  # the block's own column transforms, each once and in order (its item transforms beside)
            own = [type(t) for t in sorted(block.type_transforms(), key=lambda t: t.order)]
            held = [type(t) for t in tfms if type(t) in own or not t.applies_to(block)]
            if held != own:
                raise FieldError(f"{field}.tfms_", f"holds {[c.__name__ for c in held]} where a fitted "
                                                   f"{type(block).__name__} encodes with {[c.__name__ for c in own]} "
                                                   "(each once, in this order); the file is damaged or was not "
                                                   "written by pipekit")
        for j, t in enumerate(tfms):
            missing = [n for n in _learned(t) if n not in vars(t)]
            if missing:
                raise FieldError(f"{field}.{name}[{j}].state.{missing[0]}",
                                 f"is missing: {type(t).__name__} encodes new items with what setup learned; the "
                                 "file is damaged or was not written by pipekit")
            # what a transform learns by its settings (a subword Tokenizer's model), which only it can check
            check_fitted = getattr(t, "check_fitted_state", None)
            if callable(check_fitted):
                try:
                    check_fitted()
                except FieldError as e:
                    raise e.within(f"{field}.{name}[{j}]") from None


def _as_column(values: Any, i: int, who: str) -> pl.Series:
    """Column ``i`` of what a :meth:`DataBlock.from_columns` ``get_items`` gave, as a Polars Series: a Polars or
    pandas Series, a NumPy array or a tensor as its values, a list as ``to_items`` reads one (paths as text, arrays and
    images kept as objects); a single value (a text, a number) is refused, naming the column."""
    if isinstance(values, pl.Series):
        return values
    if is_pandas(values) and not is_pandas(values, "DataFrame") and not is_pandas(values, "Series") and hasattr(
            values, "__array__") and getattr(values, "ndim", 1) == 1:
        # a pandas array (``df['text'].values``, an ArrowStringArray; nullable integers; a Categorical) is a column
        # as its Series is; pandas is already imported, the user handed over one of its arrays
        import pandas as pd

        values = pd.Series(values)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim >= 1:
        return pl.Series(values)
    if isinstance(values, (str, bytes, os.PathLike, dict)) or not hasattr(values, "__iter__") or (
            isinstance(values, np.ndarray) and values.ndim == 0):
        raise DataError(f"{who}: column {i} is {type(values).__name__} {values!r:.60}, not a column of values; "
                        "DataBlock.from_columns takes one column per block, each with a value per item, e.g. "
                        "(paths, labels)")
    frame = to_items(values)
    if frame.width != 1:
        raise DataError(f"{who}: column {i} is a table of {frame.width} columns {frame.columns[:6]}; give each "
                        "block's values as one column (e.g. df['fname'], not df[['fname']])")
    return frame.to_series(0)


def _columns_table(columns: Any, n_columns: int, who: str) -> pl.DataFrame:
    """The items table of :meth:`DataBlock.from_columns`: ``columns`` (one per block, item ``i`` being their
    ``i``-th values) side by side, named after them where they have distinct names (a pandas or Polars Series'),
    by position (``'0'``, ``'1'``, ...) otherwise. At least ``n_columns`` columns, all of one length.

    >>> _columns_table((["a.jpg", "b.jpg"], [["cat"], ["dog", "cat"]]), 2, "get_items").rows()
    [('a.jpg', ['cat']), ('b.jpg', ['dog', 'cat'])]
    """
    if isinstance(columns, (str, bytes, os.PathLike, dict, pl.DataFrame, pl.LazyFrame)) or is_pandas(
            columns, "DataFrame") or not hasattr(columns, "__iter__"):
        table = isinstance(columns, (dict, pl.DataFrame, pl.LazyFrame)) or is_pandas(columns)
        names = list(columns) if isinstance(columns, dict) else list(getattr(columns, "columns", [])) if (
            isinstance(columns, pl.DataFrame) or is_pandas(columns, "DataFrame")) else None
        shown = (f"a {type(columns).__name__} (columns {names[:10]})" if names is not None else
                 f"a {type(columns).__name__}" if table else f"{type(columns).__name__} {columns!r:.60}")
        hint = ("; for the columns of a table, return them: (df['fname'], df['labels']), or read the table with "
                "DataBlock(get_x=ColReader('fname'), get_y=ColReader('labels'))" if table else "")
        raise DataError(f"{who} gave {shown}; DataBlock.from_columns takes one column per block, e.g. "
                        f"(paths, labels){hint}")
    series = [_as_column(c, i, who) for i, c in enumerate(columns)]
    if len(series) < n_columns:
        raise DataError(f"{who} gave {len(series)} column(s) for {n_columns} blocks; DataBlock.from_columns reads "
                        f"column j for block j: give one column per block, e.g. (paths, labels), or getters= "
                        f"saying which column each block reads")
    lengths = [len(s) for s in series]
    if len(set(lengths)) > 1:
        raise DataError(f"{who} gave columns of {lengths} values; item i is the i-th value of every column, so the "
                        "columns must all have one length")
    names = [s.name if s.name not in ("", "item") else str(i) for i, s in enumerate(series)]
    if len(set(names)) < len(names):
        names = [str(i) for i in range(len(series))]
    return pl.DataFrame([s.rename(n) for s, n in zip(series, names)])


class _Columns:
    """The ``get_items`` of :meth:`DataBlock.from_columns`: the items table whose columns are those
    ``get_items(source)`` returns (``source`` itself when there is no ``get_items``). It holds the user's function,
    so an export leaves it out as it leaves out any unregistered ``get_items``: encoding new items does not use it."""

    def __init__(self, get_items: Callable | None, n_columns: int):
        self.get_items, self.n_columns = get_items, n_columns
        # what "get_items ... found no items" names
        self.__name__ = "from_columns" if get_items is None else getattr(get_items, "__name__", repr(get_items))

    def __call__(self, source: Any) -> pl.DataFrame:
        if self.get_items is None:
            return _columns_table(source, self.n_columns, "the source (there is no get_items)")
        return _columns_table(self.get_items(source), self.n_columns, f"get_items {self.__name__}")

    def __repr__(self) -> str:
        return f"from_columns({'' if self.get_items is None else self.__name__})"


class _OnTuples:
    """A function of the user's given as a getter to :meth:`DataBlock.from_columns`: called, as fastai calls it,
    with each item as the tuple of its values (``lambda t: t[1].split()``), whatever the columns' names. Its name
    says it is pipekit's wrapper, so an export that leaves it out does not suggest registering the function alone."""

    def __init__(self, f: Callable[[Any], Any]):
        self.f = f
        self.__name__ = f"{getattr(f, '__name__', type(f).__name__)}(item as a tuple)"

    def __call__(self, item: Any) -> Any:
        return self.f(tuple(item.values()) if isinstance(item, Row) else (item,))

    def __repr__(self) -> str:
        return repr(self.f)


class DataBlock(Component):
    """A recipe: what the data is (blocks), where items come from, how to label and split them.

    ``splitter``: a splitter (default ``RandomSplitter(0.2)``, seeded by ``dataloaders(seed=)`` or else by
    NumPy's global generator) or a function of the items returning ``(train_positions, valid_positions)``, given
    them as fastai gives them: items that are one value each (the files ``get_image_files`` lists, as ``Path``
    objects; a list of texts) as a list, in order; a table source as its frame (a pandas DataFrame as a pandas frame
    whose index is the row positions, a Polars frame or a table file as a Polars frame).

    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, ColReader, RandomSplitter, RegressionBlock
    >>> dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"),
    ...                    get_y=ColReader("salary"), splitter=RandomSplitter(seed=42))
    >>> dls = dblock.dataloaders(D.path("adult_sample") / "adult.csv", bs=64)
    >>> dls.vocab, len(dls.train.dataset), len(dls.valid.dataset)
    (['<50k', '>=50k'], 26049, 6512)
    """

    registry_kind = "recipe"
    #: a file's getters are called on every item (and its splitter on every item list): they may name only getters
    #: and splitters (see ``Component.ref_kinds``)
    ref_kinds = {**{f"params.{k}": _GETTER_KINDS for k in ("get_items", "get_x", "get_y", "getters")},
                 "state.getters_": _GETTER_KINDS, "params.splitter": ("splitter", "function")}

    def __init__(self, blocks: Sequence[TransformBlock | type] | TransformBlock | type = (),
                 get_items: Callable | None = None, get_x: Getter | Callable | Sequence | None = None,
                 get_y: Getter | Callable | Sequence | None = None,
                 getters: Sequence[Getter | Callable | None] | None = None, splitter: Splitter | Callable | None = None,
                 item_tfms: Sequence[Transform] | Transform | None = None,
                 batch_tfms: Sequence[BatchTransform] | BatchTransform | None = None, n_inp: int | None = None):
        if isinstance(splitter, type):  # the class: calling it on the items would build a splitter, not split them
            raise ParameterError(f"DataBlock: splitter takes a splitter, got the class {splitter.__name__}; pass "
                                 f"{splitter.__name__}() (e.g. RandomSplitter(valid_pct=0.2, seed=42))")
        batch_tfms = grouped_batch_tfms(batch_tfms)
        self.blocks, self.get_items, self.get_x, self.get_y = blocks, get_items, get_x, get_y
        self.getters, self.splitter, self.item_tfms, self.batch_tfms, self.n_inp = (
            getters, splitter, item_tfms, batch_tfms, n_inp)
        blocks_ = self._new_blocks()  # validates the blocks, n_inp, getters and transforms now, not at build
        self._resolve_getters(len(blocks_))
        for t in item_transforms(item_tfms):
            applied = [b for b in blocks_ if t.applies_to(b)]
            if not applied:
                raise ParameterError(f"DataBlock: item transform {t!r} applies to none of the blocks {blocks_}")
            types = tensor_only_types(t)
            if types is not None and all(values_are_no_tensors(b) for b in applied):  # it would run on nothing
                names = ", ".join(type(b).__name__ for b in applied)
                raise ParameterError(
                    f"DataBlock: item transform {t!r:.100} encodes only values annotated x: {_annotation(types)}, and "
                    f"the values item_tfms see in the blocks ({names}) are no tensors (an image comes as an "
                    f"ImageArray, which x: PILImage names, a label as text or a number), so it would change nothing "
                    f"(a TransformBlock, whose values are what its getter gives, may have tensors). To work on the batches' "
                    f"tensors, as fastai's batch transforms typed x: TensorImage do, {BATCH_TRANSFORM_HOW}, and pass "
                    f"it in batch_tfms; to work on each item, annotate the values it is for (x: PILImage) or none")
        for t in as_list(batch_tfms):
            if not isinstance(t, BatchTransform):
                item, name, types = "", type(t).__name__, tensor_only_types(t)
                if types is not None:  # fastai's batch transform, typed for the batch's tensors
                    item = (f"; {name} is a Transform, which pipekit runs on each item before batching, never on "
                            f"batches, and there its encodes typed x: {_annotation(types)} would change nothing: for "
                            f"a transform of whole batches (fastai's batch Transform), {BATCH_TRANSFORM_HOW}")
                elif isinstance(t, Transform):
                    item = (f"; {name} is an item transform, run on each item before batching: it goes in item_tfms "
                            f"(item_tfms=[{t!r:.100}])")
                    if written_for_items(t):  # a user's: it may have been meant for batches
                        item += f"; for a transform of whole batches, {BATCH_TRANSFORM_HOW}"
                raise ParameterError(f"DataBlock: batch_tfms takes batch transforms (e.g. aug_transforms()), got "
                                     f"{t!r:.200}" + (item or _wrap_hint(t)))

    def new(self, **params: Any) -> DataBlock:
        """A new DataBlock with some parameters changed and the others kept, checked as the constructor
        checks them (the book's ``bears = bears.new(item_tfms=RandomResizedCrop(128, min_scale=0.5))``).

        >>> from pipekit.data import CategoryBlock
        >>> DataBlock(blocks=CategoryBlock).new(n_inp=1).n_inp
        1
        """
        current = self.get_params(deep=False)
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ParameterError(f"DataBlock.new: {unknown} are not DataBlock parameters; they are {list(current)}")
        return construct(type(self), {**current, **params})

    @classmethod
    def from_columns(cls, blocks: Sequence[TransformBlock | type] | TransformBlock | type | None = None,
                     getters: Sequence[Getter | Callable | None] | None = None, get_items: Callable | None = None,
                     **kwargs: Any) -> DataBlock:
        """A DataBlock whose items come as columns, one per block (fastai's ``DataBlock.from_columns``):
        ``get_items(source)`` (``source`` itself without ``get_items``) returns a tuple of columns, such as
        ``(paths, labels)``, and item ``i`` is their ``i``-th values. The columns are the items table's columns (named
        after them where they have distinct names, as a pandas Series has, else ``'0'``, ``'1'``, ...) and block
        ``j`` reads column ``j`` (``ColReader(j)``), unless ``getters`` (or ``get_x``/``get_y``) say otherwise: a
        pipekit getter reads the columns (``ColReader(1, label_delim=' ')``), a function of the user's is given each
        item as the tuple of its values, as in fastai (``lambda t: t[1]``). ``blocks`` None is two plain blocks, as
        ``DataBlock()``; ``kwargs`` are the DataBlock's (``splitter``, ``item_tfms``, ``batch_tfms``, ``n_inp``,
        ``get_x``, ``get_y``). An export keeps the ``ColReader`` getters and leaves out ``get_items`` and the getters that
        hold a function of the user's (as it leaves out an unregistered ``get_items``), so a loaded learner predicts
        on new inputs (a file's path) as usual.

        >>> import pandas as pd
        >>> import pipekit.datasets as D
        >>> from pipekit.data import CategoryBlock, IndexSplitter
        >>> from pipekit.vision import ImageBlock
        >>> path = D.path("mnist_tiny")
        >>> df = pd.read_csv(path / "labels.csv")
        >>> def mnist_items(x): return (f"{path}/" + x.name, x.label)
        >>> valid_idx = df[df.name.str.startswith("valid/")].index.values
        >>> dblock = DataBlock.from_columns(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=mnist_items,
        ...                                 splitter=IndexSplitter(valid_idx))
        >>> dls = dblock.dataloaders(df, bs=64, seed=0)
        >>> dls.vocab, len(dls.train_ds), len(dls.valid_ds), dls.one_batch()[0].shape
        ([3, 7], 709, 699, torch.Size([64, 1, 28, 28]))
        """
        n = len(as_list(blocks)) or 2  # no blocks: DataBlock()'s two plain ones
        reads = 0  # the columns the getters made here read (ColReader(j) for block j): get_items must give as many

        def on_tuples(g: Any) -> Any:
            return _OnTuples(g) if callable(g) and not isinstance(g, (Getter, type, _OnTuples)) else g

        def own_columns(start: int, stop: int) -> list[ColReader]:
            nonlocal reads
            reads = max(reads, stop)
            return [ColReader(j) for j in range(start, stop)]

        for side in ("get_x", "get_y"):
            g = kwargs.get(side)
            if g is not None:
                kwargs[side] = [on_tuples(h) for h in g] if isinstance(g, (list, tuple)) else on_tuples(g)
        if getters is not None:
            getters = [on_tuples(g) for g in getters]
        elif kwargs.get("get_x") is None and kwargs.get("get_y") is None:
            getters = own_columns(0, n)
        else:  # a side without get_x/get_y of its own reads its blocks' columns, as fastai's ItemGetter(j)
            n_inp = kwargs.get("n_inp")
            k = n_inp if isinstance(n_inp, int) and 1 <= n_inp <= n else max(1, n - 1)  # DataBlock refuses others
            if kwargs.get("get_x") is None:
                kwargs["get_x"] = own_columns(0, k)
            if kwargs.get("get_y") is None:
                kwargs["get_y"] = own_columns(k, n)
        return cls(blocks=() if blocks is None else blocks, getters=getters, get_items=_Columns(get_items, reads),
                   **kwargs)

    # ------------------------------------------------------------------ resolving the declaration
    def _new_blocks(self) -> list[TransformBlock]:
        out = []
        for b in as_list(self.blocks):
            b = b() if isinstance(b, type) else b.clone() if isinstance(b, TransformBlock) else b
            if not isinstance(b, TransformBlock):
                raise ParameterError(f"DataBlock: {b!r} is not a block; use CategoryBlock, ImageBlock, ... "
                                     "or a TransformBlock")
            out.append(b)
        if not out:  # as the book's DataBlock(): an input and a target, each what its getter gives
            out = [TransformBlock(), TransformBlock()]
        if not 1 <= self._n_inp(len(out)) <= len(out):
            raise ParameterError(f"DataBlock: n_inp={self.n_inp} must be between 1 and the number of blocks ({len(out)})")
        return out

    def _n_inp(self, n_blocks: int) -> int:
        return self.n_inp if self.n_inp is not None else max(1, n_blocks - 1)

    def _resolve_getters(self, n: int) -> list:
        k = self._n_inp(n)
        if self.getters is not None:
            getters = list(self.getters)
            if len(getters) != n:
                raise ParameterError(f"DataBlock: {len(getters)} getters for {n} blocks")
            return getters
        xs = list(self.get_x) if isinstance(self.get_x, (list, tuple)) else [self.get_x] * k
        ys = list(self.get_y) if isinstance(self.get_y, (list, tuple)) else [self.get_y] * (n - k)
        if (len(xs) != k or len(ys) != n - k) and self.n_inp is None:
            # n_inp was not given: name the default and the n_inp that makes the getters given fit the blocks
            fits = n - len(ys) if isinstance(self.get_y, (list, tuple)) else len(xs)
            if 1 <= fits < n and (not isinstance(self.get_x, (list, tuple)) or len(xs) == fits) and (
                    not isinstance(self.get_y, (list, tuple)) or len(ys) == n - fits):
                given = (f"get_y gives {len(ys)} getter(s)" if isinstance(self.get_y, (list, tuple))
                         else f"get_x gives {len(xs)} getter(s)")
                raise ParameterError(f"DataBlock: {given} for {n} blocks, but n_inp was not given and defaulted to {k} "
                                     f"(the number of blocks less one), leaving {n - k} target(s); pass n_inp={fits} "
                                     f"(DataBlock(..., n_inp={fits})) so that the first {fits} block(s) are the inputs "
                                     f"and the other {n - fits} the targets")
        if len(xs) != k or len(ys) != n - k:
            raise ParameterError(f"DataBlock: get_x gives {len(xs)} getter(s) for {k} input(s) and get_y {len(ys)} "
                                 f"for {n - k} target(s)")
        return xs + ys

    # ------------------------------------------------------------------ building
    def items_from(self, source: Any) -> pl.DataFrame:
        """The items table ``source`` gives (through ``get_items`` when set), one row per item, before splitting: what
        ``dataloaders(source)`` reads. A ``get_items`` that finds nothing is refused, naming the source."""
        listed = source if self.get_items is None else self.get_items(source)
        items = to_items(listed)
        if len(items) == 0 and self.get_items is not None:
            raise DataError(f"get_items {getattr(self.get_items, '__name__', self.get_items)} found no items "
                            f"in {source!r}; check the path and the file extensions")
        if len(items) == 0:
            raise DataError(f"the source {type(source).__name__} has no rows/items")
        return items

    def _fit(self, source: Any, trace: Trace | None = None, seed: int | None = None) -> Datasets:
        """Build on a clone of this recipe (see the module docstring): items, split, fitted blocks."""
        def step(name: str, fn: Callable[[], Any], inp: Any = None) -> Any:
            try:
                return fn()
            except PipelineStepError:
                raise
            except Exception as e:
                where = f" on input {short_repr(inp)}" if inp is not None else ""
                raise PipelineStepError(f"step '{name}' failed{where}: {type(e).__name__}: {e}") from e

        def say(kind: str, what: str, value: Any) -> None:
            if trace is not None:
                trace(kind, what, value)

        items = step("get_items", lambda: self.items_from(source), source)
        say("items", "", items)
        splitter = self.splitter if self.splitter is not None else RandomSplitter(0.2)
        if seed is not None and isinstance(splitter, Component) and "seed" in splitter.get_params() \
                and splitter.get_params()["seed"] is None:  # a random split without its own seed takes the loaders'
            splitter = splitter.clone().set_params(seed=seed)
        said = f"{splitter.__name__}()" if callable(splitter) and hasattr(splitter, "__name__") else repr(splitter)
        if isinstance(splitter, Component):
            split = step(f"split ({splitter!r})", lambda: splitter(items), items)
        else:  # a function of the user's, given the items as fastai gives them: its error says what it was given
            as_given = _items_as_given(items, source)
            try:
                split = splitter(as_given)
            except PipelineStepError:
                raise
            except Exception as e:
                raise PipelineStepError(
                    f"step 'split ({said})' failed on what the function was given, {_given(as_given)}: "
                    f"{type(e).__name__}: {e}. A function splitter gets the items as fastai gives them: items that are "
                    f"one value each (the files get_image_files lists, as Paths; a list of texts) as a list, in order; "
                    f"a table source as its frame (a pandas source as pandas, the row positions as its index); it "
                    f"returns (train_positions, valid_positions)") from e
        if isinstance(split, (str, bytes)) or not hasattr(split, "__len__") or len(split) != 2:
            raise DataError(f"the splitter {said} returned {type(split).__name__} {split!r:.60}; a splitter "
                            "returns two lists of positions, (train_idx, valid_idx)")
        # positions as a list, array, pandas Index or boolean mask: checked and made int64 arrays here
        train, valid = (row_index(part, len(items), f"the splitter {said}: its {name}")
                        for part, name in zip(split, ("training", "validation")))
        say("split", repr(splitter), (train, valid))
        items, train, valid, placed = _check_split(items, train, valid, splitter)
        self.item_columns_ = list(items.columns)  # what an item was: new items given as bare values are read alike
        self.blocks_ = self._new_blocks()
        self.getters_ = _with_block_getters(self.blocks_, self._resolve_getters(len(self.blocks_)))
        self.n_inp_ = self._n_inp(len(self.blocks_))
        # a batch transform given in item_tfms runs on batches (see _batch_tfms), never on a block's column
        item_tfms = [t.clone() for t in item_transforms(self.item_tfms) if not isinstance(t, BatchTransform)]
        stores: list[Any] = []
        raws: list[pl.Series] = []
        for j, (block, getter) in enumerate(zip(self.blocks_, self.getters_)):
            role = f"x{j}" if j < self.n_inp_ else f"y{j - self.n_inp_}"
            name = f"{type(block).__name__} [{role}]"
            gname = getattr(getter, "__name__", repr(getter))
            # no input named here: a getter's own error names the item it failed on
            rows = _takes_whole_rows(block, getter, items)
            if rows:
                gname = "None (the whole row)"
            reads = _array_rows(block, getter)
            raw: pl.Series = step(f"{name} getter {gname}", lambda g=reads, r=rows: (  # type: ignore[misc]
                rows_column(items) if r else apply_getter(g, items)))
            say("getter", f"{name}: getter {gname}", raw)
            raws.append(raw)
            if isinstance(getter, Getter):
                getter.check_build(items, raw)
            # the role names the getter too (a ColReader names its column), so an error points at the data
            named = role if getter is None else f"{role}, {gname}"
            step(f"{name} check", lambda b=block, r=raw, ro=named: b.check_raw(r, ro))  # type: ignore[misc]
            sub = (lambda label, v: say("tfm", label, v)) if trace else None
            sizes = _source_sizes(block, self.blocks_[:j], stores)
            # the item transforms a block runs as it encodes its column (a RandTransform on the labels) draw from the
            # seed, when one is given, as a loader's images do (see gathering)
            with gathering((seed,), OUTSIDE_LOADER[1]) if seed is not None else contextlib.nullcontext():
                store = step(f"{name} encode",
                             lambda b=block, r=raw, t=sub, z=sizes: _naming_items(  # type: ignore[misc]
                                 lambda: b.setup(r, train, item_tfms, t, **z), items, len(r), source),
                             raw)
            store = _plain(block, store, rows)
            say("store", name, (block, store))
            stores.append(store)
        _check_masks_fit_images(self.blocks_, stores, items)
        _check_boxes_have_labels(self.blocks_, raws, items)
        self.batch_tfms_ = self._batch_tfms()
        dsets = Datasets(items, [train, valid], stores, self.blocks_, self.n_inp_, recipe=self)
        # which of the items get_items listed the split placed (those in neither subset are left out): weights given
        # one per listed item are read through it (weighted_dataloaders)
        dsets.placed = placed
        return dsets

    def _batch_tfms(self) -> list[BatchTransform]:
        """The blocks' batch transforms (one of each class) then the DataBlock's own. An item transform that is
        a batch transform (random per epoch, so it runs on each batch after the cache) is one of its own."""
        own = [t.clone() for t in as_list(self.item_tfms) + as_list(self.batch_tfms) if isinstance(t, BatchTransform)]
        tfms: list[BatchTransform] = []
        for t in [bt for b in self.blocks_ for bt in b.batch_tfms_]:
            if not any(type(u) is type(t) for u in tfms + own):
                tfms.append(t)
        return tfms + own

    def datasets(self, source: Any, seed: int | None = None, **kwargs: Any) -> Datasets:
        """Collect, split and encode the items of ``source`` (transforms fitted on the training rows). ``seed``
        seeds a random splitter that has no seed of its own (else it draws from NumPy's global generator). Any other
        keyword is refused, naming the close ones; fastai's ``verbose=True`` is refused naming
        :meth:`summary`, which walks the steps and says what each gives.

        >>> import pipekit.datasets as D
        >>> from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock
        >>> dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"),
        ...                    get_y=ColReader("salary"), splitter=RandomSplitter(seed=42))
        >>> dsets = dblock.datasets(D.path("adult_sample") / "adult.csv")
        >>> len(dsets.train), len(dsets.valid), dsets.vocab
        (26049, 6512, ['<50k', '>=50k'])
        >>> dsets.train[0]                           # an item encoded: the age, the salary class's code
        (tensor([49.]), tensor(1))
        >>> dsets.decode(dsets.train[0])
        (49.0, '>=50k')
        """
        if "verbose" in kwargs:
            raise ParameterError(f"DataBlock.datasets: verbose={kwargs['verbose']!r} is fastai's switch for printing "
                                 "each step as the data is built, which pipekit's datasets does not take; "
                                 "dblock.summary(source) walks every step and says what each gives. Leave verbose out")
        check_arguments("DataBlock.datasets", kwargs, argument_names(DataBlock.datasets, but=("source",)))
        return self.clone()._fit(source, seed=seed)

    def dataloaders(self, source: Any, bs: int = 64, val_bs: int | None = None, shuffle: bool = True,
                    seed: int | None = None, device: str | torch.device | None = None,
                    num_workers: int | None = None, drop_last: bool | None = None,
                    path: str | os.PathLike | None = None, seq_len: int | None = None, batch_size: int | None = None,
                    before_batch: Any = None, **kwargs: Any) -> DataLoaders:
        """Build the Datasets and wrap train/valid in DataLoaders (train shuffled and augmented). ``seed`` fixes
        the shuffling, the augmentation and a random split whose splitter has no seed of its own. ``batch_size``
        is PyTorch's and fastai's name of ``bs``; any other keyword is refused, naming the close ones.

        ``seq_len`` is the window of a language model's batches (``TextBlock(is_lm=True)``; default the
        block's). A text classifier's batches are whole texts padded to the longest, so there it changes
        nothing (it is accepted for the book's calls; the classifier reads texts in windows of
        ``text_classifier_learner(dls, seq_len=...)``); other blocks refuse it. ``path``: the folder a learner
        on these loaders saves to (``dls.path``, then ``learn.path``; the book's ``.dataloaders(path, path=path,
        ...)``); the items come from ``source``. ``before_batch=bb_pad`` (fastai's, for boxes) is taken and changes
        nothing (see :meth:`Datasets.dataloaders <pipekit.data.Datasets.dataloaders>`); another is refused.

        >>> import pipekit.datasets as D
        >>> from functools import partial
        >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
        >>> from pipekit.vision import ImageBlock
        >>> dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
        ...                    get_items=partial(get_image_files, folders=["train", "valid"]),
        ...                    splitter=GrandparentSplitter())
        >>> dls = dblock.dataloaders(D.path("mnist_tiny"), bs=16, seed=0)
        >>> dls.vocab, len(dls.train_ds), len(dls.valid_ds), tuple(dls.one_batch()[0].shape)
        (['3', '7'], 709, 699, (16, 1, 28, 28))
        """
        check_loader_kwargs("DataBlock.dataloaders", kwargs)
        bs = bs_or_batch_size("DataBlock.dataloaders", bs, batch_size)
        check_positive_int("dataloaders", "bs", bs)
        check("DataBlock.dataloaders", path=(path, Is(lambda p: p is None or isinstance(p, (str, os.PathLike)),
                                                      "a folder (str or Path) or None")))
        check_seq_len("DataBlock.dataloaders", seq_len, self.dl_type(), self._new_blocks())  # before the items are read
        dsets = self.datasets(source, seed=seed)
        rows = next((s for s in dsets.stores if isinstance(s, RowStore)), None)
        if rows is not None:  # refused here, before loaders are made of them (as fastai's fails at its first batch)
            raise DataError(rows_not_batched(rows.values.struct.fields))
        steps = {} if before_batch is None else {"before_batch": before_batch}  # bb_pad, or refused there
        dls = dsets.dataloaders(bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                num_workers=num_workers, drop_last=drop_last, seq_len=seq_len, **steps)
        if path is not None:
            dls.path = Path(path)
        return dls

    def weighted_dataloaders(self, source: Any, wgts: Any, bs: int = 64, n: int | None = None,
                             **kwargs: Any) -> DataLoaders:
        """:meth:`dataloaders` whose training loader draws each epoch's items with replacement by ``wgts``, one
        weight per item of ``source`` as ``get_items`` lists them (those of the training items are kept; items the
        splitter places in neither subset have weights too, unused), ``n`` of them (default: as many as the
        training set has), as fastai's ``dblock.weighted_dataloaders(source, wgts)``; the same seed draws the same
        items (see :meth:`DataLoader.weighted <pipekit.data.loader.DataLoader.weighted>`).

        >>> import pipekit.datasets as D
        >>> from pipekit.data import CategoryBlock, ColReader, DataBlock, IndexSplitter, RegressionBlock
        >>> import polars as pl
        >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(200)
        >>> dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"),
        ...                    get_y=ColReader("salary"), splitter=IndexSplitter(range(150, 200)))
        >>> wgts = (df["salary"] == ">=50k").cast(float).to_numpy()   # only the >=50k rows are ever drawn
        >>> dls = dblock.weighted_dataloaders(df, wgts, bs=50, seed=0)
        >>> {dls.vocab[int(c)] for _, y in dls.train for c in y}
        {'>=50k'}
        """
        dls = self.dataloaders(source, bs=bs, **kwargs)
        dsets = dls.datasets
        try:  # one weight per item, as a flat list, array, Series or tensor, or a column of them ((n, 1))
            w = (wgts.detach().cpu().double().numpy() if isinstance(wgts, torch.Tensor)
                 else np.asarray(wgts, dtype=np.float64)).reshape(-1)
        except (TypeError, ValueError):
            raise ParameterError(f"DataBlock.weighted_dataloaders: wgts must be numbers, one per item of the source "
                                 f"(a list, array, Series or tensor), got {type(wgts).__name__}") from None
        if dsets is None:
            raise ParameterError("DataBlock.weighted_dataloaders: the loaders hold no datasets to weigh")
        train = np.asarray(dsets.splits[0])
        placed = dsets.placed  # which of the items get_items listed the split placed (see _fit)
        if len(w) != len(dsets.items):
            if len(w) != len(placed):
                raise ParameterError(f"DataBlock.weighted_dataloaders: wgts has {w.size} weight(s) and the source "
                                     f"{len(placed)} items; give one weight per item of the source, as get_items lists "
                                     "them (the training items' are kept), or one per training item to "
                                     "dblock.datasets(source).weighted_dataloaders(wgts)")
            # the splitter left some items out of both subsets: the training items' weights are read through the
            # positions of the items kept among those listed
            train = np.flatnonzero(placed)[train]
        return weighted_loaders(dls, w[train], n=n)

    # ------------------------------------------------------------------ the fitted recipe
    def batch_pipeline(self) -> BatchPipeline:
        """The fitted batch transforms (the blocks' own, then ``batch_tfms``), as the loaders run them on each
        batch."""
        self.check_is_fitted("dataloaders(source)")
        return BatchPipeline(self.batch_tfms_)

    def dl_type(self) -> type[DataLoader]:
        """The loader class the blocks ask for (a language model's streams, sorted text batches), else
        :class:`DataLoader`."""
        for b in getattr(self, "blocks_", None) or self._new_blocks():
            if b.loader_type() is not None:
                return b.loader_type()  # type: ignore[return-value]
        return DataLoader

    @property
    def fitted_blocks(self) -> list[TransformBlock]:
        """The blocks as ``dataloaders(source)`` fitted them (vocabularies learned), inputs then targets."""
        self.check_is_fitted("dataloaders(source)")
        return self.blocks_

    def new_datasets(self, source: Any, with_labels: bool | None = False) -> ArrayDataset:
        """Encode new items with the fitted state (no refitting): inputs only unless ``with_labels``.

        New items are rows (a table, dicts: the getters read them as they read the training items) or bare
        values (what ``to_items`` puts in one ``item`` column: a file path, a text, an image in memory). A
        path or text where the training items were paths is read as they were (getters included); any other
        bare value is the input itself, whatever getter found the input in a training row.
        """
        self.check_is_fitted("dataloaders(source)")
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
            # new items are the items themselves, as in the book's dls.test_dl(get_image_files(path))
            finder = getattr(self.get_items, "__name__", "")
            finder = finder if finder.isidentifier() else "get_image_files"
            raise DataError(f"test_dl: {source} is a folder; give the items in it, e.g. "
                            f"dls.test_dl({finder}({str(source)!r}))")
        # files the user named as files (path objects): an input block may read them (new_paths); a ``str``, or a
        # table's column of them, is never read as a file by a block whose values are not files (a text is the text
        # itself, whatever it spells, and whatever a column is named)
        values = self._column_of_values(source)
        items = source if isinstance(source, pl.DataFrame) else to_items(source if values is None else values)
        if len(items) == 0:
            raise DataError("test_dl: no items given")
        n = len(self.blocks_) if with_labels else self.n_inp_
        paths = items["path"].cast(pl.String) if names_files(source, items) else None
        items, bare = self._new_items(items)
        if bare and (self.n_inp_ > 1 or with_labels):
            what = f"{self.n_inp_} inputs" if self.n_inp_ > 1 else "labels"
            raise DataError(f"new items given as bare values cannot give {what}; give rows (a table, dicts or a "
                            "pandas Series) with the columns the getters read")
        stores: list[Any] = []
        raws: list[pl.Series] = []
        for i, (block, getter) in enumerate(zip(self.blocks_[:n], self.getters_[:n])):
            if not bare:
                self._check_getter_stored(i)
            rows = not bare and _takes_whole_rows(block, getter, items)
            raw = rows_column(items) if rows else apply_getter(
                None if bare else _array_rows(block, _raw_value_getter(getter, items)), items)
            if paths is not None and i < self.n_inp_ and raw.dtype == pl.String and raw.equals(paths):
                raw = block.new_paths(raw)  # a file per item, which the block may read
            block.check_raw(raw, "new data")
            sizes = _source_sizes(block, self.blocks_[:i], stores)
            try:
                store = _naming_items(lambda b=block, r=raw, z=sizes: b.encode_new(r, **z),  # type: ignore[misc]
                                      items, len(raw))
            except DataError as e:
                if i < self.n_inp_ or getattr(e, "rows", getattr(e.__cause__, "rows", None)) is None:
                    raise
                # labels the training set lacks, asked for: new items often have none (a test folder's name)
                raise DataError(f"{e}; for new items without labels (a test set) pass with_labels=False, which "
                                "reads the inputs only") from e
            stores.append(_plain(block, store, rows))
            raws.append(raw)
        _check_boxes_have_labels(self.blocks_[:n], raws, items)
        return ArrayDataset(stores, n_inp=self.n_inp_, blocks=self.blocks_[:n], split_idx=1)

    def _column_of_values(self, source: Any) -> list[str] | None:
        """The values of a pandas or Polars Series of texts (file paths, a Kaggle ``sample_submission``'s ids made
        into paths) that is not a column the input getters read, so that it is read as a list of them is; None
        for anything else. A Series named as a column the getters read (``df["name"]`` for
        ``ColReader("name")``) stays that column: a ``ColReader`` reads it by its name, and a function getter is
        given each value itself (a pandas Series holds values, not rows; give ``df[["name"]]`` for rows)."""
        if not (isinstance(source, pl.Series) or is_pandas(source) and getattr(source, "ndim", 0) == 1):
            return None
        trained_on = getattr(self, "item_columns_", None)
        if trained_on is None or trained_on in (["item"], ["path"]):
            return None  # the training items were bare values themselves: a Series is read as they were
        values = list(source)
        if not values or not all(isinstance(v, str) for v in values):
            return None
        read = {c for g in self.getters_[:self.n_inp_] for c in as_list(getattr(g, "cols", None)) if isinstance(c, str)}
        return None if source.name in (read or set(trained_on)) else values

    def _new_items(self, items: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
        """``(items, bare)``: new items as the getters read them, and whether they are bare values that are
        the input itself (so no getter applies)."""
        trained_on = getattr(self, "item_columns_", None)
        if trained_on is None or items.columns not in (["item"], ["path"]) or items.columns == trained_on:
            return items, False  # rows, the training items' own kind, or a recipe fitted before this rule
        if trained_on == ["path"] and items.to_series(0).dtype == pl.Utf8:
            return items.rename({items.columns[0]: "path"}), False  # paths as text: read as the training paths
        return items, True

    def params_to_data(self) -> dict[str, Any]:
        # what finds, splits and labels the training items is not needed to encode new ones: a user's
        # own function there is left out rather than making the model unexportable
        return {k: (v if _storable(v) or isinstance(v, (list, tuple)) and all(map(_storable, v)) else None)
                for k, v in self.get_params(deep=False).items()}

    def state_to_data(self) -> dict[str, Any]:
        state = self.fitted_state()
        if not state:
            return state  # an unfitted recipe: nothing learned
        getters = state.get("getters_", [])
        # a getter left out is named, so that reading rows without it says so instead of reading them wrongly;
        # a loaded recipe keeps the names it was given
        before = state.get("unstored_getters_") or []
        names = [None if _storable(g) else _getter_name(g) for g in getters]
        names = [n if n is not None else (before[i] if i < len(before) else None) for i, n in enumerate(names)]
        state["getters_"] = [g if _storable(g) else None for g in getters]
        if any(n is not None for n in names):
            state["unstored_getters_"] = names
        else:
            state.pop("unstored_getters_", None)
        return state

    @classmethod
    def upgrade_record(cls, record: dict[str, Any], version: int) -> None:
        """Files of format 2 gave an unfitted recipe the state ``{"getters_": []}``; it holds none now."""
        if version < 3 and record.get("state") == {"getters_": []}:
            record["state"] = {}

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file (an export's recipe, or a recipe saved on its own), checked before anything
        encodes with it: fitted blocks, each with its fitted transforms, a getter per block, at most one input per block,
        and batch transforms. A :class:`FieldError` names the field (``state.n_inp_``). The getters of its parameters
        and of its fitted state read each item's value, never list a folder (see :func:`check_item_getters`)."""
        for k in ("get_x", "get_y", "getters"):  # the kinds were checked as the file was read (ref_kinds)
            v = getattr(self, k)
            for j, g in enumerate(v) if isinstance(v, (list, tuple)) else [(None, v)]:
                check_item_getters(g, f"params.{k}{'' if j is None else f'[{j}]'}", _GETTER_TAKES)
        if not state:
            return  # an unfitted recipe's record
        super().state_from_data(state)
        read = vars(self).get("getters_")
        for i, g in enumerate(read if isinstance(read, list) else []):
            check_item_getters(g, f"state.getters_[{i}]", _GETTER_TAKES)
        check_state(vars(self), "the data recipe, to encode new items,", **_FITTED_STATE)
        blocks, getters, n_inp = self.blocks_, self.getters_, self.n_inp_
        if len(getters) != len(blocks) or n_inp > len(blocks):
            raise FieldError("state", f"holds {len(blocks)} blocks, {len(getters)} getters and n_inp_={n_inp}: a "
                                      "getter per block and at most one input per block")
        for i, b in enumerate(blocks):
            if "tfms_" not in vars(b):
                raise FieldError(f"state.blocks_[{i}]", f"({type(b).__name__}) holds no fitted transforms (tfms_)")
            _check_fitted_tfms(b, f"state.blocks_[{i}].state")
        for i, b in enumerate(blocks):  # the recipe runs one of each batch transform its blocks bring (_batch_tfms)
            lacking = [type(t).__name__ for t in vars(b).get("batch_tfms_", [])
                       if not any(type(u) is type(t) for u in self.batch_tfms_)]
            if lacking:
                raise FieldError("state.batch_tfms_", f"lacks {lacking[0]}, which blocks_[{i}] ({type(b).__name__}) "
                                                      "brings to every batch; the file is damaged or was not written "
                                                      "by pipekit")
        optional = {  # files written before these were recorded lack them
            "item_columns_": Is(lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
                                "the training items' column names (a list of text)"),
            "unstored_getters_": Is(lambda v: isinstance(v, list) and len(v) == len(blocks)
                                    and all(n is None or isinstance(n, str) for n in v),
                                    f"the name (or null) of each of the {len(blocks)} blocks' getters")}
        check_state(state, "the data recipe", **{k: c for k, c in optional.items() if k in state})

    def _check_getter_stored(self, i: int) -> None:
        left = {j: (name, role) for j, name, role in left_out_getters(vars(self))}
        if i not in left:
            return
        name, role = left[i]
        fix = getter_fix(name, role, i, self.n_inp_, len(self.blocks_))
        if role == "label":
            raise DataError(f"this model was saved without its getter {name!r}, which reads the labels (a function "
                            "that was not registered cannot be stored), so it cannot read the labels of new items; "
                            "leave with_labels out (dls.test_dl(items)) to predict without them, or, to read "
                            f"labels, {fix}")
        raise DataError(f"this model was saved without its getter {name!r}, which reads the input (a function that "
                        "was not registered cannot be stored), so it cannot read rows; give the input itself (e.g. "
                        f"the image's path), or, to read rows, {fix}")

    # ------------------------------------------------------------------ summary
    @overload
    def summary(self, source: Any, bs: int = ..., show: Literal[True] = ..., show_batch: bool = ...,
                batch_size: int | None = ...) -> None: ...
    @overload
    def summary(self, source: Any, bs: int = ..., *, show: Literal[False], show_batch: bool = ...,
                batch_size: int | None = ...) -> str: ...
    @overload
    def summary(self, source: Any, bs: int = ..., show: bool = ..., show_batch: bool = ...,
                batch_size: int | None = ...) -> str | None: ...

    def summary(self, source: Any, bs: int = 4, show: bool = True, show_batch: bool = False,
                batch_size: int | None = None) -> str | None:
        """Walk one batch of ``source`` through every step (items, split, getters, what each block learned, the
        collated batch, each batch transform), saying what comes out; a failing step is named. Batch transforms
        that learn from the training batches (``Normalize()`` without statistics) learn as in ``dataloaders()``. Images are
        decoded only as the walk reads them (its batch, and the sample ``Normalize()`` learns from), in memory: the
        presize cache ``dataloaders()`` fills is not built, and an image block's ``stored as`` line says how
        ``dataloaders()`` stores them.

        Each line is printed as it is found when ``show`` (and nothing is returned, so a notebook or a REPL shows
        the walk once, as ``dls.summary()`` does, and as fastai's ``dblock.summary`` prints); ``show=False`` prints
        nothing and returns the text (``learn.summary()`` returns its table, as fastai's). ``show_batch=True`` (fastai's) then draws the items of the training batch walked
        (``dls.show_batch()``). ``batch_size`` is ``bs`` under PyTorch's and fastai's name.

        >>> import polars as pl
        >>> from pipekit.data import CategoryBlock, ColReader, RandomSplitter, RegressionBlock
        >>> df = pl.DataFrame({"x": [0.5 * i for i in range(10)], "y": ["a", "b"] * 5})
        >>> dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("x"), get_y=ColReader("y"),
        ...                    splitter=RandomSplitter(0.2, seed=0))
        >>> text = dblock.summary(df, show=False)
        >>> [line for line in text.splitlines() if line.startswith("Splitting") or "vocab_" in line]
        ['Splitting with RandomSplitter(seed=0): 8 train, 2 valid', "  Categorize learned vocab_=['a', 'b']"]
        >>> dblock.summary(df) is None  # printed once, returned never  # doctest: +ELLIPSIS
        DataBlock summary: 2 block(s), n_inp=1
        ...
        No batch transforms
        True
        """
        bs = bs_or_batch_size("DataBlock.summary", bs, batch_size, default=4)
        out = io.StringIO()

        def say(line: str) -> None:
            out.write(line + "\n")
            if show:
                print(line)

        def trace(kind: str, what: str, value: Any) -> None:
            if kind == "items":
                say(f"Collecting items: {len(value)} rows, columns {value.columns}")
                say(f"  first item: {item_at(value, 0)!r}")
            elif kind == "split":
                say(f"Splitting with {what}: {len(value[0])} train, {len(value[1])} valid")
            elif kind == "getter":
                say(f"{what} -> {short_repr(value)}")
            elif kind == "tfm" and isinstance(value, Store):  # a store names itself (its "stored as" line tells more)
                head, more, _ = repr(value).partition("; ")
                say(f"  {what}: {head + ')' if more else head}")
            elif kind == "tfm":
                say(f"  {what}: {short_repr(value[:1] if hasattr(value, '__getitem__') and not isinstance(value, dict) else value)}")
            elif kind == "store":
                block, store = value
                learned_state(block.tfms_, say)
                say(f"  stored as {store!r}")

        fitted = self.clone()
        n_blocks = len(fitted._new_blocks())
        say(f"DataBlock summary: {n_blocks} block(s), n_inp={fitted._n_inp(n_blocks)}")
        walking = _WALKING_ONE_BATCH.set(True)  # the images the walk reads are decoded, not the whole cache built
        try:
            dsets = fitted._fit(source, trace)
            dl = fitted.dl_type()(dsets.train, bs=bs, shuffle=False, seed=0, device="cpu", num_workers=0,
                                  batch_tfms=fitted.batch_pipeline(), augment=True)
            try:  # loaders set up their batch transforms on the training batches: Normalize() takes its statistics
                dls = DataLoaders(dl, recipe=fitted, device="cpu")
            except Exception as e:
                raise PipelineStepError(f"step 'batch transforms learning from the training batches' failed: "
                                        f"{type(e).__name__}: {e}") from e
            walk_batch(dl, say)
        except PipelineStepError as e:
            say(f"FAILED: {e}")
            raise
        finally:
            _WALKING_ONE_BATCH.reset(walking)
        if show_batch:
            dls.show_batch()
        return None if show else out.getvalue()


def left_out_getters(state: dict[str, Any]) -> list[tuple[int, str, str]]:
    """``(block, name, role)`` of each getter a fitted recipe's ``state`` (its attributes, or an export's record of
    them) names as left out of its file (``unstored_getters_``, see :meth:`DataBlock.state_to_data`), ``role``
    ``'input'`` or ``'label'``.

    >>> left_out_getters({"unstored_getters_": [None, "lab"], "n_inp_": 1})
    [(1, 'lab', 'label')]
    """
    names, n_inp = state.get("unstored_getters_") or [], state.get("n_inp_", 1)
    return [(i, n, "input" if i < n_inp else "label") for i, n in enumerate(names) if n is not None]


def getter_fix(name: str, role: str, i: int, n_inp: int, n_blocks: int) -> str:
    """How to keep getter ``name`` (of block ``i`` of ``n_blocks``, ``n_inp`` of them inputs; ``role``
    ``'input'`` or ``'label'``) in an export: register it before exporting, and before loading, with code that runs
    as written (a lambda under a name of its own; a getter pipekit made around a function, which cannot be kept).

    >>> getter_fix("lab", "label", 1, 1, 2)
    "register it before exporting, and before loading in the process that loads the file: pipekit.register(lab, kind='getter')"
    >>> getter_fix("<lambda>", "input", 0, 1, 2).split(": ", 1)[1]
    "define it with def and register that, or register the lambda under a name of its own and give the DataBlock what register returns, get_x = pipekit.register(lambda r: ..., kind='getter', name='myproject.get_x')"
    """
    side, k, n = ("get_x", i, n_inp) if role == "input" else ("get_y", i - n_inp, n_blocks - n_inp)
    var = side if n == 1 else f"{side}{k}"
    if "(" in name:  # pipekit's getter around the user's function (from_name_func's "is_cat(name)"): not one to register
        return (f"build the loaders with a DataBlock whose {side} is a registered function (pipekit.register(f, "
                "kind='getter'), or a getter such as using_attr(f, 'name') around one): pipekit's getter "
                f"{name!r} around your function cannot be kept in a file")
    when = "register it before exporting, and before loading in the process that loads the file: "
    if name == "<lambda>":  # every lambda has this name: each needs one of its own
        return (f"{when}define it with def and register that, or register the lambda under a name of its own and "
                f"give the DataBlock what register returns, {var} = pipekit.register(lambda r: ..., kind='getter', "
                f"name='myproject.{var}')")
    if not name.isidentifier():  # an object (a partial, a Pipeline of getters): registered as itself, under a name
        what = name[1:-1] if name.startswith("<") and name.endswith(" object>") else f"{name} object"
        return (f"{when}pipekit.register(g, kind='getter', name='myproject.{var}'), g being the {what} given as "
                f"{side}")
    return f"{when}pipekit.register({name}, kind='getter')"


def check_loader_kwargs(who: str, kwargs: dict[str, Any], *factories: Callable[..., Any],
                        but: Sequence[str] = ()) -> None:
    """Refuse a keyword that neither ``factories`` (the one called, ``who``, and those it passes its keywords on to)
    nor :meth:`DataBlock.dataloaders` takes (less ``but``, those the factories fill in themselves), in the name of
    ``who`` with the names each may have meant (:func:`~pipekit.core.validate.check_arguments`)."""
    check_arguments(who, kwargs, argument_names(*factories, DataBlock.dataloaders, but=("source", *but)))


def _naming_items(encode: Callable[[], Any], items: pl.DataFrame, n_values: int, folder: Any = None) -> Any:
    """``encode()``, where a DataError about some of the values (its ``rows``, their positions: Categorize's for
    labels the training set lacks) also names those items' files when the items are files (a ``path`` column) and
    the values are one per item; a path under ``folder`` (the source folder) is given relative to it."""
    try:
        return encode()
    except DataError as e:
        rows = getattr(e, "rows", None)
        if not (isinstance(rows, list) and rows and "path" in items.columns and n_values == items.height
                and all(type(i) is int and 0 <= i < items.height for i in rows)):
            raise
        root = Path(folder) if isinstance(folder, (str, os.PathLike)) else None

        def shown(p: Any) -> str:
            try:
                return Path(p).relative_to(root).as_posix() if root is not None else str(p)
            except ValueError:  # not under the source folder
                return str(p)

        paths = [shown(p) for p in items["path"].gather(rows[:5]).to_list()]
        more = f" and {len(rows) - len(paths)} more" if len(rows) > len(paths) else ""
        raise DataError(f"{e}; the item(s) at those rows ({len(rows)} in all) are the file(s) "
                        f"{', '.join(map(repr, paths))}{more}") from e


def _items_as_given(items: pl.DataFrame, source: Any) -> Any:
    """What a splitter written as a plain function of the user's is given, as fastai gives it: a pandas source's
    frame as pandas (the row positions as its index), a table (a Polars frame, a table file) as the Polars frame,
    and items that are one value each (the files ``get_image_files`` lists, a list of texts) as a list of them, in
    order (a file as its ``Path``). pipekit's own splitters (``Splitter`` subclasses) read the items table."""
    if is_pandas(source):
        return items.to_pandas()
    if items.width == 1 and not isinstance(source, (pl.DataFrame, pl.LazyFrame)) and not (
            items.columns != ["path"] and isinstance(source, (str, os.PathLike))):
        return list(iter_items(items))
    return items


def _given(value: Any) -> str:
    """What a function splitter was given (see :func:`_items_as_given`), as its error names it.

    >>> from pathlib import Path
    >>> _given([Path("train/3/a.png"), Path("valid/7/b.png")])
    'a list of 2 Paths (the first train/3/a.png)'
    >>> _given(pl.DataFrame({"text": ["a", "b"]}))
    "a Polars DataFrame (2 rows, columns ['text'])"
    """
    if isinstance(value, list):
        kinds = sorted({"Path" if isinstance(v, Path) else type(v).__name__ for v in value})
        first = "" if not value else f" (the first {str(value[0]) if isinstance(value[0], Path) else repr(value[0]):.80})"
        return f"a list of {len(value)} {'Path' if kinds == ['Path'] else ' or '.join(kinds) + ' value'}s{first}"
    if isinstance(value, pl.DataFrame):
        return f"a Polars {short_repr(value)}"
    if is_pandas(value):
        cols = list(value.columns)
        return f"a pandas DataFrame ({len(value)} rows, columns {cols[:10]}{' ...' if len(cols) > 10 else ''})"
    return short_repr(value)


def _check_split(items: pl.DataFrame, train: np.ndarray, valid: np.ndarray,
                 splitter: Any) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Refuse an empty training set or an item in both; leave out (and say so) items in neither, returning the items
    kept, the positions of the two subsets among them, and whether the splitter placed each item listed. An empty
    validation set is a choice (``RandomSplitter(valid_pct=0)``, ``IndexSplitter([])``: train on every item):
    its loader has no batch and the learner records no validation scores. A splitter asked for a share of the items
    (``valid_pct`` above 0) that gives none, as too few items do, is warned about."""
    if len(train) == 0:
        raise DataError(f"the split {splitter!r} leaves the training set empty ({len(train)} train / {len(valid)} "
                        f"valid of {len(items)} items); change the splitter's settings")
    pct = getattr(splitter, "valid_pct", None)
    if len(valid) == 0 and isinstance(pct, (int, float)) and pct > 0:
        need = int(np.ceil(1 / pct - 1e-9))
        warn(f"the split {splitter!r} gives no validation items: valid_pct={pct} of {len(items)} items is "
             f"{pct * len(items):g}, rounded down to 0, so there are no validation scores (valid_loss is None every "
             f"epoch); give at least {need} items or a larger valid_pct, or pass valid_pct=0 to train on every item "
             "on purpose")
    check_disjoint(train, valid, f"the split {splitter!r}", lambda i: repr(item_at(items, i)))
    placed = np.ones(len(items), dtype=bool)
    if len(train) + len(valid) < len(items):
        keep = np.sort(np.concatenate([train, valid]))
        left = np.setdiff1d(np.arange(len(items)), keep)
        nested = _nested_in_split_folders(items, left, splitter)
        if nested:
            warn(nested)
        else:
            if isinstance(splitter, GrandparentSplitter):  # a split by folder: list only the split's folders
                folders = splitter.folder_names()
                fix = (f"list only the split's folders, get_items=partial(get_image_files, folders={folders!r}) "
                       "(get_files and get_text_files take folders= too)")
            else:
                fix = "give get_items only the items to split"
            warn(left_out_message(len(left), len(items), repr(item_at(items, int(left[0]))), fix))
        remap = np.full(len(items), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        placed[left] = False
        items, train, valid = items[keep], remap[train], remap[valid]
    return items, train, valid, placed


def _nested_in_split_folders(items: pl.DataFrame, left: np.ndarray, splitter: Any) -> str | None:
    """For a :class:`GrandparentSplitter` whose left-out files (positions ``left``) lie inside a split folder
    (``train/``, ``valid/``) but deeper than ``<split>/<class>/<file>``, so that the folder two above them is neither:
    the warning saying so and what to do (listing only the split folders would not leave them out). Else None."""
    if not isinstance(splitter, GrandparentSplitter) or "path" not in items.columns:
        return None
    names = set(splitter.folder_names())  # a name, or a list of them, for each of the two sets
    every = items["path"].cast(pl.String).str.replace_all("\\", "/", literal=True)
    try:  # the folders below the one all items share (a folder above the data may be named 'train' too)
        root = len(os.path.commonpath(every.to_list()).rstrip("/").split("/")) if len(every) > 1 else 0
    except ValueError:  # absolute and relative paths mixed
        root = 0
    paths = every.gather(left).to_list()
    deep = [p for p in paths if names & set(p.split("/")[root:-3])]
    if not deep:
        return None
    return (f"{len(deep)} of {len(items)} items lie inside a {' or '.join(map(repr, splitter.folder_names()))} folder "
            f"but deeper than <split>/<class>/<file> (first: {deep[0]!r}): GrandparentSplitter places a file by the "
            "folder two above it, so these are in neither the training nor the validation set and are left out "
            "(listing only the split folders, get_items=partial(get_image_files, folders=[...]), still finds them). To "
            "use them, move each into its class folder, or split with FuncSplitter(lambda p: 'valid' in "
            "Path(p).parts) and label with a function that reads the class folder below the split's (parent_label "
            "would give their own folder's name); to leave them out, remove them or give get_items a function "
            "listing only the files at <split>/<class>/<file>")


def _raw_value_getter(getter: Any, items: pl.DataFrame) -> Any:
    """New data given as bare values (``test_dl(["a text"])``) rather than rows: a one-column ColReader
    without prefix/suffix then reads those values directly."""
    if (isinstance(getter, ColReader) and isinstance(getter.cols, str) and getter.cols not in items.columns
            and items.columns == ["item"] and not getter.pref and not getter.suffix):
        return None
    return getter
