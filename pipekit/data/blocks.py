"""Blocks say what a piece of data is: how to encode a raw column once, and decode it for people.

A :class:`TransformBlock` holds the column transforms (``type_tfms``) that ``setup`` on the training
subset and encode the whole column into a :class:`~pipekit.data.store.Store`, plus the item and batch
transforms it brings. Domains (vision, text, tabular) subclass it.
"""
from __future__ import annotations


import contextlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch

from pipekit.core.component import Component
from pipekit.core.errors import DataError, FieldError, ParameterError, warn
from pipekit.core.validate import BOOL, Is, check, check_state, is_pandas
from pipekit.data.arrays import to_numpy
from pipekit.data.items import one_type_column
from pipekit.data.plotting import set_title
from pipekit.data.store import ListStore, Store, TensorStore, gather_context, item_draws
from pipekit.data.transform import (BatchTransform, Pipeline, Transform, as_list, depends_on_split, encode_column,
                                    encode_items)
from pipekit.data.vocab import NA_TOKEN, CategoryMap, label_codes

Trace = Callable[[str, Any], None]


class TransformBlock(Component):
    """The base block: ``type_tfms`` encode a column, ``item_tfms``/``batch_tfms`` come along with it.

    A block declares what it is through capabilities instead of a name other packages match on:
    ``loss_kind`` (the default loss when it is the target), ``geometry`` (how augmentation moves it:
    None, "image", "mask", "points" or "bbox") and ``draws_on_input`` (``show`` draws it on the input's
    picture rather than writing it in the title) and ``table_columns`` (it decodes to a dict column -> value, so
    ``show_batch`` shows a table with a column per key rather than pictures). What ``setup`` learns: ``tfms_`` (its fitted
    transforms) and ``batch_tfms_`` (the batch transforms it brings).

    >>> import numpy as np
    >>> import polars as pl
    >>> from pipekit.data import Categorize, Transform, TransformBlock
    >>> block = TransformBlock(type_tfms=[Transform(str.lower), Categorize()])
    >>> store = block.setup(pl.Series(["Cat", "DOG", "cat"]), np.arange(3))
    >>> block.vocab, store.gather(np.arange(3)).tolist(), block.decode(store.item(1))
    (['cat', 'dog'], [0, 1, 0], 'dog')
    """

    registry_kind = "block"
    loss_kind: ClassVar[str | None] = None
    geometry: ClassVar[str | None] = None
    draws_on_input: ClassVar[bool] = False
    table_columns: ClassVar[bool] = False
    # what a subclass with its own parameters brings (the base class takes them as parameters)
    type_tfms: Any = ()
    item_tfms: Any = ()
    batch_tfms: Any = ()
    dl_type: Any = None

    def __init__(self, type_tfms: Sequence[Transform] | Transform = (), item_tfms: Sequence[Transform] | Transform = (),
                 batch_tfms: Sequence[BatchTransform] | BatchTransform = (), dl_type: type | None = None):
        self.type_tfms, self.item_tfms, self.batch_tfms, self.dl_type = type_tfms, item_tfms, batch_tfms, dl_type

    # ------------------------------------------------------------------ what the block is made of
    def type_transforms(self) -> list[Transform]:
        """Fresh, unfitted column transforms this block encodes with (subclasses build their own)."""
        return [t.clone() for t in as_list(self.type_tfms)]

    def block_batch_tfms(self) -> list[BatchTransform]:
        """The batch transforms this block brings along (decided once its item transforms are known)."""
        return [t.clone() for t in as_list(self.batch_tfms)]

    def loader_type(self) -> type | None:
        """The DataLoader class this block's data needs (None: the default loader)."""
        return self.dl_type

    # ------------------------------------------------------------------ building the store
    def check_raw(self, raw: pl.Series, role: str) -> None:
        """Refuse null values (a label with no value, a missing file name) before any work is done, unless the
        block has a class for them (``add_na``)."""
        if raw.null_count() and not getattr(self, "add_na", False):
            rows = raw.is_null().arg_true().to_list()
            more = " ..." if len(rows) > 10 else ""
            raise DataError(f"{type(self).__name__} ({role}) has {len(rows)} null value(s) at rows "
                            f"{rows[:10]}{more} (positions in the items, from 0); fill or drop those rows before "
                            f"building the data")

    def fit_tfms(self, item_tfms: Sequence[Transform] = ()) -> list[Transform]:
        """Set ``tfms_``: the type transforms plus the item transforms that apply to this block, in order."""
        extra = [t.clone() for t in as_list(self.item_tfms) + list(item_tfms) if t.applies_to(self)]
        self.tfms_ = sorted(self.type_transforms() + extra, key=lambda t: t.order)
        return self.tfms_

    def setup(self, raw: pl.Series, train_idx: np.ndarray, item_tfms: Sequence[Transform] = (),
              trace: Trace | None = None) -> Store:
        """Fit the column transforms on the training rows, then encode the whole column once. An item transform
        whose output depends on the split (:func:`~pipekit.data.transform.depends_on_split`: a ``RandTransform``, a
        ``split_idx``) gets the training rows as items of split 0 and the others as items of split 1, as fastai runs
        it (see :func:`_encode_by_split`)."""
        tfms = self.fit_tfms(item_tfms)
        if any(depends_on_split(t) for t in tfms):
            values = _encode_by_split(tfms, raw, train_idx, trace)
            self.batch_tfms_ = self.block_batch_tfms()
            return self.to_store(values)
        # the training rows fit the transforms; every item, those rows included, is encoded once below. A user's item
        # transform typed for nothing gets each value (a label), as one typed for its values does (encode_column)
        Pipeline(tfms, by_value=True).setup(raw.gather(train_idx) if isinstance(raw, pl.Series) else raw[train_idx],
                                            encode_last=False)
        values = raw
        for t in tfms:
            values = encode_column(t, values)
            if trace is not None:
                trace(repr(t), values)
        self.batch_tfms_ = self.block_batch_tfms()
        return self.to_store(values)

    def new_paths(self, raw: pl.Series) -> pl.Series:
        """``raw``, the paths of files given as new items (``learn.predict(Path(...))``, a list of paths for
        ``test_dl``), as this block's input values: a block whose values are files (an image) takes the paths
        themselves; a block of other values reads them from the files (:class:`~pipekit.text.TextBlock`)."""
        return raw

    def encode_new(self, raw: pl.Series) -> Store:
        """Encode new data with the fitted state (test sets, inference): new items are of split 1, as fastai's
        ``test_dl`` and ``predict`` items are (an item transform with ``split_idx=0`` leaves them alone)."""
        self.check_is_fitted("setup (build the data)")
        values = raw
        for t in self.tfms_:
            values = encode_items(t, values, 1, by_value=True) if depends_on_split(t) else encode_column(t, values)
        return self.to_store(values)

    def to_store(self, values: Any) -> Store:
        if isinstance(values, Store):
            return values
        if isinstance(values, pl.Series):
            if not (values.dtype.is_numeric() or values.dtype == pl.Boolean):
                return ListStore(values)
            values = values.to_numpy()
        return TensorStore(values)

    # ------------------------------------------------------------------ decoding for people
    def default_getter(self) -> Any:
        """The getter a DataBlock uses for this block when it is given none (a text block made for a column
        reads it); None: the DataBlock's usual default (the item itself)."""
        return None

    def decode(self, value: Any, split_idx: int | None = 1) -> Any:
        """One encoded item -> the human value (label, list of labels, number), as an item of split ``split_idx`` was
        encoded: a transform that does not run on that split (an item transform with ``split_idx=0`` on a validation
        item) did not encode it and does not decode it (see :meth:`Pipeline.decode
        <pipekit.data.transform.Pipeline.decode>`). A loader gives its own split (:meth:`DataLoader.decode_batch
        <pipekit.data.loader.DataLoader.decode_batch>`: training 0, validation and ``test_dl`` 1); the default, 1, is
        that of new items and of what is predicted for them (``learn.predict``); None decodes a value of no split,
        with the transforms of every split only."""
        return Pipeline(getattr(self, "tfms_", [])).decode(value, split_idx)

    def decode_batch(self, batch: Any, split_idx: int | None = 1) -> list[Any]:
        """Each encoded item of ``batch`` (this block's part of it) for people, as :meth:`decode` gives one of split
        ``split_idx``."""
        return [self.decode(v, split_idx=split_idx) for v in batch]

    def decode_prediction(self, value: Any, source_size: tuple[int, int] | None = None, geometry: Any = None) -> Any:
        """A predicted value for people, given the size of the input it was predicted on when the input
        has one (blocks of coordinates answer in its pixels, ``geometry`` being the (3, 3) matrix from the model
        input's -1..1 coordinates to those of the input's item-transformed image); by default :meth:`decode`."""
        return self.decode(value)

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        """Draw one decoded item on a matplotlib axis (default: as text)."""
        ax.axis("off")
        ax.text(0.5, 0.5, str(value)[:200], ha="center", va="center", wrap=True)
        set_title(ax, title)

    @property
    def vocab(self) -> list | None:
        """The fitted vocabulary (or, before fitting, the one given as a parameter)."""
        for t in getattr(self, "tfms_", []):
            if getattr(t, "vocab_", None) is not None:
                return t.vocab_  # type: ignore[attr-defined]
        given = getattr(self, "vocab_arg", None)
        return CategoryMap(given) if given is not None else None

    @property
    def c(self) -> int | None:
        """Number of model outputs this block needs as a target."""
        v = self.vocab
        return len(v) if v is not None else None


def _encode_by_split(tfms: Sequence[Transform], raw: Any, train_idx: np.ndarray, trace: Trace | None) -> Any:
    """``raw`` (a block's column) through ``tfms`` step by step: each fitted on the training rows (``train_idx``) as
    the steps before it encoded them, then run on the column. A step whose output depends on the split
    (:func:`~pipekit.data.transform.depends_on_split`) gets the training rows as items of split 0 and the others as
    items of split 1 (:func:`~pipekit.data.transform.encode_items`: a ``RandTransform`` draws ``do`` once per item,
    from Python's ``random``, which ``set_seed`` seeds); any other step the whole column, as :meth:`TransformBlock.setup`
    gives it. The fit sees the very values encoded, so one draw makes both. A DataBlock built with a seed
    (``dataloaders(source, seed=42)``, see :func:`~pipekit.data.store.gathering`) seeds each row's draws of each step
    from it (:func:`~pipekit.data.store.item_draws`, as images made as they are fetched are seeded), so the same seed
    gives the same labels whatever was drawn before."""
    n = len(raw)
    in_train = np.zeros(n, dtype=bool)
    in_train[np.asarray(train_idx, dtype=np.int64)] = True
    parts = [np.flatnonzero(in_train), np.flatnonzero(~in_train)]  # the rows of split 0, of split 1
    order = np.empty(n, dtype=np.int64)  # the position of each row among the parts put end to end
    order[np.concatenate(parts)] = np.arange(n)
    by_split: list[str] = []  # the steps so far whose output depends on the split
    key = gather_context()[0]  # (seed,) in a build given a seed; () otherwise: the draws are the process's
    values = raw
    for j, t in enumerate(tfms):
        try:
            Pipeline([t], by_value=True).setup(_take(values, train_idx), encode_last=False)
            if depends_on_split(t):
                with item_draws(key) if key else contextlib.nullcontext(None) as seed:
                    done = [encode_items(t, _take(values, rows), split, by_value=True,
                                         seed_item=None if seed is None else _seed_rows(seed, rows, j))
                            for split, rows in enumerate(parts) if len(rows)]
                values = _rejoin(done, order if len(done) > 1 else None)
                by_split.append(type(t).__name__)
            else:
                values = encode_column(t, values)
        except DataError as e:
            if not by_split:
                raise
            # pipekit runs item transforms on a block's values before its own (a CategoryBlock's Categorize), so one
            # of the training items only (a RandTransform's split_idx 0) changes the labels the vocab is learned from
            error = DataError(
                f"item transform(s) {', '.join(dict.fromkeys(by_split))} changed this block's values on some items "
                "only (the training ones, split_idx=0; the others, split_idx=1; or as a RandTransform drew) before "
                f"{type(t).__name__} got them, so the training and validation values differ: make such a transform "
                "leave this block's values alone (annotate its value with the type it is for, e.g. "
                f"encodes(self, x: PILImage)), or run it on every item (split_idx=None, p=1). {type(t).__name__}: {e}")
            if hasattr(e, "rows"):  # positions among the column's values: the recipe names their items
                error.rows = e.rows  # type: ignore[attr-defined]
            raise error from e
        if trace is not None:
            trace(repr(t), values)
    return values


def _seed_rows(seed: Callable[..., None], rows: np.ndarray, step: int) -> Callable[[int], None]:
    """``seed_item`` for the items of a column's ``rows``: the item at position ``i`` is seeded by its row and the step
    (two random steps do not draw the same numbers for a row)."""
    return lambda i: seed(int(rows[i]), step)


def _take(values: Any, rows: np.ndarray) -> Any:
    """The values at positions ``rows`` of a column (a Polars Series, a NumPy array or a list)."""
    if isinstance(values, pl.Series):
        return values.gather(rows)
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows.tolist()]


def _rejoin(parts: list[Any], order: np.ndarray | None) -> Any:
    """The encoded parts of a column put end to end, then back in the column's order (``order``: each row's
    position among them; None: one part, already in order). Parts of one kind stay so (a Series, an array of the
    same shape per row); parts a step made of different kinds (one split run, the other left as it was) make a
    Series of their values."""
    if order is None:
        return parts[0]
    if all(isinstance(p, pl.Series) for p in parts) and len({p.dtype for p in parts}) == 1:
        return pl.concat(parts).gather(order)
    if all(isinstance(p, np.ndarray) for p in parts) and len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)[order]
    joined = [v for p in parts for v in (p.to_list() if isinstance(p, pl.Series) else to_numpy(p).tolist()
                                         if isinstance(p, (np.ndarray, torch.Tensor)) else list(p))]
    name = next((p.name for p in parts if isinstance(p, pl.Series)), "")
    return pl.Series(name, [joined[i] for i in order.tolist()], strict=False)


# ---------------------------------------------------------------------------------------- categories
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


#: the label types a learned vocabulary holds (what a label column of text, integers, numbers or flags gives)
LABEL_TYPES = (str, int, float, bool)


def is_label_list(v: Any) -> bool:
    """Whether ``v`` is a list of distinct labels, all of one of :data:`LABEL_TYPES` (``True`` is no integer here),
    none missing: what learning a vocabulary makes.

    >>> is_label_list(["cat", "dog"]), is_label_list(["cat", "cat"]), is_label_list([1, "1"]), is_label_list([None])
    (True, False, False, False)
    """
    if not isinstance(v, list) or not v:
        return False
    kind = type(v[0])
    return (kind in LABEL_TYPES and all(type(x) is kind for x in v) and not any(_is_missing(x) for x in v)
            and len(set(v)) == len(v))


_LABELS = Is(is_label_list, "distinct labels of one type (text, integers, numbers or booleans), none missing")


def _check_vocab(owner: str, vocab: Sequence[Any] | None) -> list[Any] | None:
    """A vocab given as a parameter, as the list of plain labels it is kept as (a NumPy array, a pandas or Polars
    Series or Index, a tuple or a range give their values: ``np.array(['3', '7'])`` is ``['3', '7']``), checked
    by the rule a learned one read from a file follows (``_LABELS``), so what a block exports with it loads back."""
    if vocab is None:
        return None
    if isinstance(vocab, (str, bytes)):
        raise ParameterError(f"{owner}: vocab={vocab!r} is one text; give the labels as a list ([{vocab!r}, ...])")
    values = vocab.tolist() if hasattr(vocab, "tolist") else vocab.to_list() if hasattr(vocab, "to_list") else vocab
    labels = [v.item() if isinstance(v, np.generic) else v for v in values]
    check(owner, vocab=(labels, _LABELS))
    return labels


def _check_vocab_state(state: dict[str, Any], who: str, given: Sequence[Any] | None, sort: bool,
                       empty_ok: bool = False, add_na: bool = False) -> None:
    """A learned ``vocab_`` read from a file: labels as :func:`is_label_list` says, the vocab given as the parameter
    when there is one (``setup`` keeps it as given), else sorted when ``sort`` (as ``setup`` sorts it), after
    ``'#na#'`` when ``add_na``. Codes are positions in it, so a vocab that is not the one fitting made labels
    predictions wrongly."""
    if not state:
        return  # an unfitted record
    if not (empty_ok and state.get("vocab_") == []):  # labels of items that all have none
        check_state(state, f"{who}, to encode and decode labels,", vocab_=_LABELS)
    vocab = state["vocab_"]
    if add_na:
        if vocab[:1] != [NA_TOKEN]:
            raise FieldError("state.vocab_", f"must start with {NA_TOKEN!r} (add_na=True), got {str(vocab)[:80]}")
        vocab = vocab[1:]
        given = [v for v in given if v != NA_TOKEN] if given is not None else None
    if given is not None and vocab != list(given):
        raise FieldError("state.vocab_", f"must be the vocab given as the parameter ({str(list(given))[:80]}), as "
                                         f"fitting keeps it, got {str(vocab)[:80]}")
    if "declared_" in state:  # set by a fit on an Enum's labels, which learns their declared order
        check_state(state, f"{who}, to know the vocab_ is an Enum's declared labels,", declared_=BOOL)
        if state["declared_"] and (given is not None or not vocab):
            why = "was given a vocab, which fitting keeps" if given is not None else "learned no labels"
            raise FieldError("state.declared_", f"is True (the vocab_ an Enum's declared labels), but {who} {why}, so "
                                                "fitting never sets it; the file is damaged or was not written by "
                                                "pipekit")
    if given is None and sort and not state.get("declared_") and vocab != sorted(vocab):
        raise FieldError("state.vocab_", f"must be sorted, as fitting sorts it, got {str(vocab)[:80]}")


def _check_add_na(owner: str, vocab: Sequence[Any] | None, add_na: bool) -> None:
    check(owner, add_na=(add_na, BOOL))
    if add_na and vocab is not None and not all(isinstance(v, str) for v in vocab):
        raise ParameterError(f"{owner}(add_na=True) takes a vocab of text labels (its {NA_TOKEN!r} class is text), "
                             f"got {list(vocab)[:5]}: give the labels as text, or leave add_na out")


def _refuse_missing(missing: np.ndarray, who: str) -> None:
    """A label that is None, null or NaN has no class: name where they are (sorting or matching them would fail
    on a type error that does not say which item)."""
    rows = np.flatnonzero(missing)
    if rows.size:
        more = " ..." if rows.size > 10 else ""
        raise DataError(f"{who} got {rows.size} missing label(s) (None, null or NaN) at position(s) "
                        f"{rows[:10].tolist()}{more}: every item needs a label; drop those items or fill them "
                        "(e.g. with 'unknown')")


#: the Polars types of categories (a pandas ``category``, a Hugging Face ``ClassLabel``), text underneath
_CATEGORIES = (pl.Enum, pl.Categorical)


def label_column(values: Any, who: str, missing_as: str | None = None) -> pl.Series:
    """Labels given as a Polars Series, a list, a tuple, a NumPy array or a pandas Series, as a Polars Series
    (labels of mixed types are refused, naming them). A missing label (None, null or NaN) is refused, naming where
    it is, or becomes ``missing_as`` when given (``Enum`` and ``Categorical`` labels then come back as text).

    >>> label_column(["3", "7"], "Categorize").to_list(), label_column(np.array([1, 0]), "Categorize").dtype
    (['3', '7'], Int64)
    >>> label_column(["a", None], "Categorize", missing_as="#na#").to_list()
    ['a', '#na#']
    """
    if missing_as is not None:
        if is_pandas(values) and getattr(values, "ndim", 0) == 1:
            values = values.to_numpy()
        if isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim == 1:
            values = to_numpy(values).tolist()
        if isinstance(values, (list, tuple)):
            values = [missing_as if _is_missing(v) else v for v in values]
        elif isinstance(values, pl.Series) and (values.dtype == pl.Utf8 or isinstance(values.dtype, _CATEGORIES)):
            values = values.cast(pl.String).fill_null(missing_as)  # categories as text: missing_as is one more
    if isinstance(values, pl.Series):
        missing = values.is_null() | (values.is_nan() if values.dtype.is_float() else False)
        _refuse_missing(missing.to_numpy(), who)
        return _one_label_each(values, who)
    if is_pandas(values) and getattr(values, "ndim", 0) == 1:
        _refuse_missing(values.isna().to_numpy(), who)  # before Polars, which refuses a NaN among texts
        return _one_label_each(pl.Series(values.to_numpy()), who)
    if isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim == 1:
        arr = to_numpy(values)
        _refuse_missing(np.isnan(arr) if arr.dtype.kind == "f" else np.array([_is_missing(v) for v in arr], bool)
                        if arr.dtype.kind == "O" else np.zeros(len(arr), bool), who)
        return _one_label_each(pl.Series(arr), who)
    if isinstance(values, (list, tuple)):
        _refuse_missing(np.array([_is_missing(v) for v in values], bool), who)
        return _one_label_each(one_type_column("", values, f"{who} got labels of", fix="give the labels one type"),
                               who)
    raise DataError(f"{who} takes the labels of all the items at once (a list, array or Series), got "
                    f"{type(values).__name__} {values!r:.60}")


def _one_label_each(labels: pl.Series, who: str) -> pl.Series:
    """Refuse labels that are lists (a get_y returning ``[label]``): a single-label block would make each list a
    class of its own, and a multi-label task would train as one of single labels."""
    nested = labels.dtype.is_nested() or (labels.dtype == pl.Object and any(
        isinstance(v, (list, tuple, set, np.ndarray)) for v in labels.head(100).to_list()))
    if nested:
        first = labels.drop_nulls().head(1).to_list()
        raise DataError(f"{who} (CategoryBlock) takes one label per item, and these labels are lists (the first: "
                        f"{first[0] if first else None!r:.60}): for several labels per item use MultiCategoryBlock; "
                        "for one, make get_y return the label itself, not a list of it")
    return labels


def warn_near_labels(vocab: Sequence[Any], what: str) -> None:
    """Warn when text labels differ only by the spaces around them or by case (``'positive'``, ``'positive '`` and
    ``'Positive'``): each is a class of its own, which is seldom what the data means. A DataBlock's category blocks
    and a table's class target (``TabularProcessor``) both call it on the classes they learn."""
    groups: dict[str, list[str]] = {}
    for v in vocab:
        if isinstance(v, str):
            groups.setdefault(v.strip().casefold(), []).append(v)
    near = [g for g in groups.values() if len(g) > 1]
    if near:
        spaces = any(v != v.strip() for g in near for v in g)
        case = any(len({v.strip() for v in g}) > 1 for g in near)
        how = " or by case" if spaces and case else ""
        fix = (["strip the spaces"] if spaces else []) + (["make the case one"] if case else [])
        polars = "pl.col(c)" + (".str.strip_chars()" if spaces else "") + (".str.to_lowercase()" if case else "")
        pandas = "df[c]" + (".str.strip()" if spaces else "") + (".str.lower()" if case else "")
        shown = "; ".join(" and ".join(repr(v) for v in g) for g in near[:5])
        warn(f"the {what} hold classes that differ only by {'spaces around them' if spaces else 'case'}{how} "
             f"({shown}{'; ...' if len(near) > 5 else ''}): each is a class of its own; if they are one, clean the "
             f"labels first (e.g. {' and '.join(fix)}: {polars}, or {pandas} in pandas)")


#: a CategoryBlock's classes that are numbers, more of them distinct than this, are more likely a regression's targets
#: (an error about labels the training set lacks says so); floats, more than ``MANY_FLOAT_CLASSES``, are warned about
MANY_NUMBER_CLASSES, MANY_FLOAT_CLASSES = 20, 50


def _numbers(classes: Sequence[Any], kinds: tuple[type, ...] = (int, float, np.integer, np.floating)) -> int:
    """How many of ``classes`` are numbers of ``kinds`` (bools are not), or 0 when any other class is among them."""
    n = sum(isinstance(v, kinds) and not isinstance(v, (bool, np.bool_)) for v in classes)
    return n if n == len(classes) else 0


def number_classes_hint(classes: Sequence[Any], fix: str) -> str:
    """Advice for classes that are numbers, many of them distinct (a regression's targets taken as classes): ``""``
    for others. ``fix`` says how a regression is asked for where the classes come from."""
    n = _numbers(classes)
    return f"these labels are numbers ({n} distinct), each a class of its own: for a regression use {fix}" \
        if n > MANY_NUMBER_CLASSES else ""


def warn_number_classes(classes: Sequence[Any], what: str, fix: str) -> None:
    """Warn when the classes learned are fractional numbers, many of them: a classifier of hundreds of classes where
    a regression was meant trains without a word otherwise."""
    if _numbers(classes, (float, np.floating)) > MANY_FLOAT_CLASSES:
        warn(f"the {what} are numbers, {len(classes)} distinct ones, each a class of its own (a CategoryBlock): for a "
             f"regression use {fix}; if each number is a class, nothing needs changing")


#: how a DataBlock asks for a regression of its labels
_REGRESSION_BLOCK = "RegressionBlock() as the target block (y_block=RegressionBlock() in from_df and from_lists)"


class Categorize(Transform):
    """Labels -> integer codes with a vocab learned on the training labels (sorted), or the one given.

    ``vocab`` is the learned vocabulary once set up (before, the one given, or None), as the book reads
    ``tls.tfms[1].vocab``: a :class:`~pipekit.data.vocab.CategoryMap`, which takes codes as a model gives them
    (``dls.vocab[preds.argmax(1)]``) and looks a label's code up with ``.o2i``. The labels may be a Series, a list
    or an array.

    >>> import polars as pl
    >>> t = Categorize(); t.setup(pl.Series(["dog", "cat", "dog"])); t.vocab
    ['cat', 'dog']
    >>> t.encode(["dog", "cat"]).tolist(), t.decode(1), t.decode(np.array([1, 0]))
    ([1, 0], 'dog', ['dog', 'cat'])
    >>> t.vocab[torch.tensor([1, 1, 0])], t.vocab.o2i["dog"]
    (['dog', 'dog', 'cat'], 1)
    """

    order = 1
    #: the ``vocab`` parameter is kept as ``vocab_arg``: ``vocab`` is the property a reader uses
    param_attrs = {"vocab": "vocab_arg"}
    vocab_: CategoryMap

    def __init__(self, vocab: Sequence[Any] | None = None, sort: bool = True, add_na: bool = False):
        vocab = _check_vocab("Categorize", vocab)
        _check_add_na("Categorize", vocab, add_na)
        self.vocab_arg, self.sort, self.add_na = vocab, sort, add_na

    def _given(self) -> CategoryMap:
        vocab = list(self.vocab_arg or [])
        return CategoryMap([NA_TOKEN] + [v for v in vocab if v != NA_TOKEN] if self.add_na else vocab)

    @property
    def vocab(self) -> list | None:
        """The vocabulary: the learned ``vocab_`` after ``setup``, before it the one given (or None)."""
        learned = vars(self).get("vocab_")
        if learned is not None:
            return learned
        return self._given() if self.vocab_arg is not None else None

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The learned vocab read from a file must be what ``setup`` makes (see :func:`_check_vocab_state`); it
        comes back a :class:`~pipekit.data.vocab.CategoryMap`, as fitting made it."""
        _check_vocab_state(state, "Categorize", self.vocab_arg, self.sort, add_na=self.add_na)
        super().state_from_data(state)
        if isinstance(vars(self).get("vocab_"), list):
            self.vocab_ = CategoryMap(self.vocab_)

    def setup(self, values: Any) -> None:
        # an Enum's declared categories (a Hugging Face ClassLabel's names), in their order, unused ones too: taken
        # before add_na makes the labels text
        declared = values.dtype.categories if isinstance(values, pl.Series) and isinstance(
            values.dtype, pl.Enum) else None
        values = label_column(values, "Categorize", missing_as=NA_TOKEN if self.add_na else None)
        vars(self).pop("declared_", None)  # set (True) only when this fit's classes are an Enum's declared ones
        if self.add_na and values.dtype != pl.Utf8:
            raise DataError(f"CategoryBlock(add_na=True) takes text labels (its {NA_TOKEN!r} class is text), and these "
                            f"are {values.dtype}: make get_y return text (e.g. str(label)), or leave add_na out")
        if self.vocab_arg is not None:
            self.vocab_ = self._given()
            self._codes(values, "the vocab you gave")
            return
        seen = values.unique(maintain_order=True)  # the training labels ('#na#' for a missing one, with add_na)
        uniq = seen
        if declared is not None:
            self.declared_ = True
            uniq = declared
        if self.add_na:
            uniq = uniq.filter(uniq != NA_TOKEN)
        self.vocab_ = CategoryMap(([NA_TOKEN] if self.add_na else [])
                                  + (sorted(uniq.to_list()) if self.sort and declared is None else uniq.to_list()))
        self._one_per_item = len(values) > 10 and len(seen) == len(values)  # every item a class of its own
        if len(seen) == 1:  # a classifier of one class learns nothing and scores perfectly
            unused = [v for v in self.vocab_ if v not in (seen[0], NA_TOKEN)]  # declared classes no row has
            also = (f"; the vocab's other classes {unused[:5]}{' ...' if len(unused) > 5 else ''} have no training "
                    "rows" if unused else "")
            warn(f"the training labels hold a single class {seen[0]!r}{also}: a classifier would learn nothing (its "
                 "loss is 0, its accuracy 1); check the label column or getter (or the filter that chose the rows), "
                 "or give CategoryBlock(vocab=[...]) with every class")
        warn_near_labels(self.vocab_, "training labels")
        warn_number_classes(self.vocab_, "training labels", _REGRESSION_BLOCK)

    def _codes(self, values: pl.Series, where: str) -> np.ndarray:
        try:
            codes = label_codes(self.vocab_, values)
        except pl.exceptions.InvalidOperationError as e:
            raise DataError(f"labels of type {values.dtype} cannot be matched to a vocab of "
                            f"{type(self.vocab_[0]).__name__}: {e}") from e
        unknown = codes.is_null() & values.is_not_null()
        if self.add_na:  # a label the training set did not have, or none, is the '#na#' class (code 0)
            return codes.fill_null(0).to_numpy()
        if unknown.any():
            rows = unknown.arg_true().to_list()
            labels = sorted({str(v) for v in values.gather(rows[:50]).to_list()})
            numbers = number_classes_hint(self.vocab_, _REGRESSION_BLOCK)
            hint = (f"; {numbers}" if numbers else
                    f"; each of the {len(self.vocab_)} training items has a label of its own, so get_y gives "
                    "each item's name or id rather than its class: make it return the class (e.g. parent_label, "
                    "or a RegexLabeller on the file name)" if getattr(self, "_one_per_item", False) else
                    "; add them to the training set or to the vocab (CategoryBlock(vocab=[...]), or "
                    "Categorize(vocab=[...]) in TfmdLists or Datasets), or build with CategoryBlock(add_na=True), "
                    f"which gives a label the training set lacks the class {NA_TOKEN!r} (Categorize(add_na=True) in "
                    "TfmdLists or Datasets)")
            error = DataError(f"label(s) {labels[:10]} at rows {rows[:10]} are not in {where} "
                              f"(vocab: {self.vocab_[:20]}{' ...' if len(self.vocab_) > 20 else ''}){hint}")
            # every such position among ``values``: the recipe encoding its items names them (a file per item)
            error.rows = rows  # type: ignore[attr-defined]
            raise error
        return codes.to_numpy()

    def encode(self, values: Any) -> Any:
        """Labels -> their codes (an array); one label (``cat('7')``, as the book calls it) -> its code, an int.
        With a ``vocab`` given, no ``setup`` is needed."""
        if "vocab_" not in vars(self) and self.vocab_arg is not None:
            self.vocab_ = self._given()
        self.check_is_fitted("setup")
        missing_as = NA_TOKEN if self.add_na else None
        if isinstance(values, (str, bytes, bool, int, float, np.generic)) or (
                isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim == 0):
            one = values.item() if isinstance(values, (np.ndarray, torch.Tensor, np.generic)) else values
            return int(self._codes(label_column([one], "Categorize", missing_as), "the training labels")[0])
        return self._codes(label_column(values, "Categorize", missing_as), "the training labels")

    def decode(self, value: Any) -> Any:
        """A code -> its label; codes (a 1-d integer array or tensor) -> their labels; one item's scores (a
        1-d float tensor) -> the label scored highest."""
        self.check_is_fitted("setup")
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            value = np.asarray(value, dtype=np.int64)  # codes as a list (tls.decode(tls[:3]))
        codes = to_numpy(value) if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 1 else None
        if isinstance(value, np.ndarray) and codes is not None and codes.dtype.kind == "f":
            # a float array of codes (as a NumPy computation may give them); scores are a tensor's business
            if not (np.isfinite(codes).all() and (codes == np.round(codes)).all()):
                raise DataError(f"Categorize.decode got a float array that is not whole numbers ({codes[:5]}): "
                                "give codes as integers (e.g. .argmax(-1) of the scores), or one item's scores "
                                "as a torch tensor")
            codes = codes.astype(np.int64)
        if codes is not None and codes.dtype.kind == "b" and len(self.vocab_) == 2:
            codes = codes.astype(np.int64)  # a single-output binary model's decision (a sigmoid over 0.5): class 1
        if codes is not None and codes.dtype.kind in "iu":
            bad = codes[(codes < 0) | (codes >= len(self.vocab_))]
            if bad.size:
                raise DataError(f"Categorize.decode got code(s) {bad[:10].tolist()} outside the vocab of "
                                f"{len(self.vocab_)} classes (codes are 0..{len(self.vocab_) - 1})")
            return [self.vocab_[int(v)] for v in codes]
        if isinstance(value, torch.Tensor):
            value = value.item() if value.ndim == 0 else value.argmax(-1).item()
        return self.vocab_[int(value)]


class CategoryBlock(TransformBlock):
    """A single-label classification target (or input).

    ``add_na=True`` puts a class ``'#na#'`` first (code 0) that takes every label the training set did not have
    and every missing one, where they would otherwise be refused (fastai's ``CategoryBlock(add_na=True)``).

    >>> CategoryBlock(vocab=["cat", "dog"]).loss_kind
    'cross_entropy'
    """

    loss_kind = "cross_entropy"
    param_attrs = {"vocab": "vocab_arg"}

    def __init__(self, vocab: Sequence[Any] | None = None, sort: bool = True, add_na: bool = False):
        vocab = _check_vocab("CategoryBlock", vocab)
        _check_add_na("CategoryBlock", vocab, add_na)
        self.vocab_arg, self.sort, self.add_na = vocab, sort, add_na

    def type_transforms(self) -> list[Transform]:
        return [Categorize(self.vocab_arg, sort=self.sort, add_na=self.add_na)]


def label_lists(values: Any, who: str) -> pl.Series:
    """The labels of all the items of a multi-label block as a Polars Series: each item's labels a list (a list, a
    tuple or an array of labels; None for a missing list) or a text to split, the items given as a Polars or pandas
    Series, a list, a tuple (an ``L``) or a 1-d array. Labels of mixed types are refused, naming the item.

    >>> label_lists([["3"], ("7", "odd"), []], "MultiCategoryBlock").to_list()
    [['3'], ['7', 'odd'], []]
    """
    if isinstance(values, pl.Series):
        return values
    if is_pandas(values, "Series") or (isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype == object):
        values = values.tolist()
    elif isinstance(values, (np.ndarray, torch.Tensor)):  # rows of numbers (already one-hot)
        return pl.Series("", to_numpy(values))
    if not isinstance(values, (list, tuple)):
        raise DataError(f"{who} takes the labels of all the items at once (a list of each item's labels, or a "
                        f"Series), got {type(values).__name__} {values!r:.60}")
    items = [list(to_numpy(v).tolist() if isinstance(v, (np.ndarray, torch.Tensor)) else v)
             if isinstance(v, (list, tuple, np.ndarray, torch.Tensor)) else None if _is_missing(v) else v
             for v in values]
    kinds: dict[str, int] = {}  # each kind of label (text, number or another type), and the first item holding one
    for i, v in enumerate(items):
        for label in v if isinstance(v, list) else [v]:
            if label is not None:
                kinds.setdefault("text" if isinstance(label, str) else "number" if isinstance(
                    label, (int, float, np.number, np.bool_)) else type(label).__name__, i)
    lists = [i for i, v in enumerate(items) if isinstance(v, list)]
    if lists and len(lists) < sum(v is not None for v in items):
        text = next(i for i, v in enumerate(items) if v is not None and not isinstance(v, list))
        raise DataError(f"{who}: item {lists[0]} holds a list of labels and item {text} a single value "
                        f"({items[text]!r:.60}); give every item a list of its labels (['cat'], not 'cat')")
    if len(kinds) > 1:
        raise DataError(f"{who} got labels of mixed types {sorted(kinds)} (first at items {kinds}); give the labels "
                        "one type (e.g. all text: [str(label) for label in labels])")
    return pl.Series("", items, strict=False)


class MultiCategorize(Transform):
    """Lists of labels -> one-hot float rows, vocab learned on the training labels (or the one given).

    The learned ``vocab_`` is a :class:`~pipekit.data.vocab.CategoryMap`: the labels of a one-hot row are
    ``vocab_[torch.where(row == 1.)[0]]`` (as the book reads ``dsets.train.vocab[idxs]``) or ``vocab_[row == 1.]``.

    >>> import polars as pl
    >>> t = MultiCategorize(); t.setup(pl.Series([["cat", "dog"], ["fish"]]))
    >>> row = torch.tensor(t.encode(pl.Series([["fish", "cat"]]))[0])
    >>> t.vocab_[torch.where(row == 1.)[0]], t.vocab_[row == 1.], t.decode(row)
    (['cat', 'fish'], ['cat', 'fish'], ['cat', 'fish'])

    ``add_na=True`` puts a label ``'#na#'`` first in the vocab (column 0), which an item gets for each of its labels
    that the training set (or the vocab given) lacks, and for a missing label list.

    >>> t = MultiCategorize(add_na=True); t.setup(pl.Series([["cat", "dog"], ["fish"]])); t.vocab_
    ['#na#', 'cat', 'dog', 'fish']
    >>> t.encode(pl.Series([["dog", "owl"], []])).tolist()
    [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """

    order = 1
    vocab_: CategoryMap

    def __init__(self, vocab: Sequence[Any] | None = None, label_delim: str | None = None, encoded: bool = False,
                 add_na: bool = False):
        vocab = _check_vocab("MultiCategorize", vocab)
        _check_encoded("MultiCategorize", vocab, encoded)
        _check_multi_add_na("MultiCategorize", vocab, encoded, add_na)
        self.vocab, self.label_delim, self.encoded, self.add_na = vocab, label_delim, encoded, add_na

    def _onehot(self, values: Any) -> np.ndarray:
        """Items already one-hot encoded (``encoded=True``): a row of ``len(vocab)`` numbers each, 1 where the item
        has that label."""
        n = len(self.vocab or [])
        values = label_lists(values, "MultiCategoryBlock(encoded=True)")
        if isinstance(values.dtype, pl.Struct):  # ColReader(label_columns): a field per column, in order
            fields = values.struct.unnest()
            if fields.width != n:
                raise DataError(f"MultiCategoryBlock(encoded=True) got {fields.width} columns {fields.columns[:10]} "
                                f"for a vocab of {n} labels ({list(self.vocab or [])[:10]}); give one per label")
            values = pl.Series(fields.select(pl.concat_list(pl.all().cast(pl.Float64))).to_series())
        if not isinstance(values.dtype, (pl.List, pl.Array)) or not (
                values.dtype.inner.is_numeric() or values.dtype.inner == pl.Boolean):
            raise DataError(f"MultiCategoryBlock(encoded=True) takes a row of {n} numbers per item (1 where the item "
                            f"has the label), got {values.dtype}; make get_y return them (e.g. r[label_columns]), or "
                            "leave encoded out to give lists of labels")
        lens = values.list.len() if isinstance(values.dtype, pl.List) else pl.Series([values.dtype.size] * len(values))
        bad = (lens != n).fill_null(True)
        if bad.any():
            i = int(bad.arg_true()[0])
            raise DataError(f"MultiCategoryBlock(encoded=True): item {i} has {lens[i]} values for a vocab of {n} "
                            f"labels ({list(self.vocab or [])[:10]}); give one value per label")
        out = np.asarray(values.to_list(), dtype=np.float32).reshape(len(values), n)
        if not np.isfinite(out).all():
            i = int(np.flatnonzero(~np.isfinite(out).all(1))[0])
            raise DataError(f"MultiCategoryBlock(encoded=True): item {i} holds a missing or infinite value "
                            f"({out[i].tolist()[:10]}); fill it with 0 or 1")
        return out

    def _lists(self, values: Any) -> pl.Series:
        values = label_lists(values, "MultiCategoryBlock")
        if values.dtype == pl.Utf8:
            if self.label_delim is None:
                raise DataError("MultiCategoryBlock got text labels: give label_delim (e.g. ' ') to split them, "
                                "or a getter that returns lists")
            values = values.str.split(self.label_delim).list.eval(pl.element().filter(pl.element() != ""))
        if not isinstance(values.dtype, pl.List):
            raise DataError(f"MultiCategoryBlock needs a list of labels per item, got {values.dtype}")
        return values

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The learned vocab read from a file must be what ``setup`` makes (see :func:`_check_vocab_state`)."""
        _check_vocab_state(state, "MultiCategorize", self.vocab, True, empty_ok=True, add_na=self.add_na)
        super().state_from_data(state)
        if isinstance(vars(self).get("vocab_"), list):
            self.vocab_ = CategoryMap(self.vocab_)

    def setup(self, values: Any) -> None:
        vars(self).pop("declared_", None)  # set (True) only when this fit's labels are an Enum's declared ones
        if self.encoded:  # nothing to learn; encode checks every item's row, naming it by its position
            self.vocab_ = CategoryMap(self.vocab or [])
            return
        flat = self._lists(values).explode().drop_nulls()
        na = [NA_TOKEN] if self.add_na else []
        if self.add_na and len(flat) and flat.dtype != pl.Utf8 and not isinstance(flat.dtype, _CATEGORIES):
            raise DataError(f"MultiCategoryBlock(add_na=True) takes text labels (its {NA_TOKEN!r} label is text), "
                            f"and these are {flat.dtype}: make get_y return text (e.g. str(label)), or leave add_na out")
        if self.vocab is None:
            if not len(flat):  # nothing to learn: a model of no outputs (as one class is, in a single-label block)
                raise DataError(f"MultiCategoryBlock: every one of the {len(values)} training items has an empty "
                                "label list, so there are no labels to learn; check get_y (it should return each "
                                "item's labels) or label_delim (it splits a text of labels)")
            declared = flat.dtype.categories.to_list() if isinstance(flat.dtype, pl.Enum) else None
            if declared is not None:  # an Enum's declared labels, in their order, unused ones included
                self.declared_ = True
            self.vocab_ = CategoryMap(na + [v for v in declared or sorted(flat.unique().to_list()) if v not in na])
            warn_near_labels(self.vocab_, "training labels")
            return
        if self.add_na:  # a label the vocab lacks is the '#na#' label
            self.vocab_ = CategoryMap(na + [v for v in self.vocab if v != NA_TOKEN])
            return
        missing = sorted(set(flat.unique().to_list()) - set(self.vocab))
        if missing:
            raise DataError(f"label(s) {missing[:10]} are not in the vocab you gave ({list(self.vocab)[:20]}); add "
                            f"them to it, or build with MultiCategoryBlock(add_na=True), which gives them {NA_TOKEN!r}")
        self.vocab_ = CategoryMap(self.vocab)

    def encode(self, values: Any) -> np.ndarray:
        self.check_is_fitted("setup")
        if self.encoded:
            return self._onehot(values)
        lists = self._lists(values)
        lens = lists.list.len().fill_null(0).to_numpy()
        rows = np.repeat(np.arange(len(lists)), lens)
        flat = lists.explode()
        flat = flat.filter(flat.is_not_null()) if len(flat) != lens.sum() else flat
        # categories matched as text: a vocab may hold labels ('#na#', a given one) that are none of an Enum's
        codes = label_codes(self.vocab_, flat.cast(pl.String) if isinstance(flat.dtype, _CATEGORIES) else flat)
        if self.add_na:  # a label the training set lacks is the '#na#' label (column 0), as is a missing list
            codes = codes.fill_null(0)
        if codes.null_count():
            i = int(codes.is_null().arg_true()[0])
            raise DataError(f"label {flat[i]!r} (item {rows[i]}) is not in the training labels {self.vocab_[:20]}; "
                            f"MultiCategoryBlock(add_na=True) gives such a label the label {NA_TOKEN!r}")
        out = np.zeros((len(lists), len(self.vocab_)), dtype=np.float32)
        out[rows, codes.to_numpy()] = 1.0
        if self.add_na:
            out[lists.is_null().to_numpy(), 0] = 1.0
        return out

    def decode(self, value: Any) -> list:
        self.check_is_fitted("setup")
        v = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        return [self.vocab_[i] for i in np.flatnonzero(v > 0.5)]


class MultiCategoryBlock(TransformBlock):
    """A multi-label target: each item has zero or more labels, encoded one-hot.

    The labels of an item are a list (or text split at ``label_delim``); with ``encoded=True`` they come already
    one-hot, a row of ``len(vocab)`` numbers per item (a table with a 0/1 column per label: ``vocab`` names the
    columns, ``get_y`` reads them), as fastai's ``MultiCategoryBlock(encoded=True, vocab=...)``.

    ``add_na=True`` (fastai's) puts a label ``'#na#'`` first in the vocab (the model's output 0). An item gets it for
    each of its labels that the training set (or the vocab given) lacks, and for a missing label list, where those
    would otherwise be refused (as ``CategoryBlock(add_na=True)`` does for one label; fastai refuses such labels).

    >>> import numpy as np
    >>> import polars as pl
    >>> from pipekit.data import MultiCategoryBlock
    >>> block = MultiCategoryBlock(label_delim=" ")
    >>> store = block.setup(pl.Series(["cat dog", "dog", ""]), np.arange(3))
    >>> block.vocab, block.loss_kind, store.gather(np.arange(3)).tolist()
    (['cat', 'dog'], 'bce', [[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    >>> block.decode(store.item(1))
    ['dog']
    """

    loss_kind = "bce"
    param_attrs = {"vocab": "vocab_arg"}

    def __init__(self, vocab: Sequence[Any] | None = None, label_delim: str | None = None, encoded: bool = False,
                 add_na: bool = False):
        if isinstance(vocab, (bool, np.bool_)):  # fastai's first argument is encoded, pipekit's the vocab
            fix = ("MultiCategoryBlock(encoded=True, vocab=[...]) for rows that come one-hot (a 0/1 value per label, "
                   "vocab naming them)" if vocab else "MultiCategoryBlock() for lists of labels (encoded=False is the "
                   "default)")
            raise ParameterError(f"MultiCategoryBlock({bool(vocab)}): the first argument is vocab (the labels), not "
                                 f"fastai's first argument encoded; pass it by name: {fix}")
        vocab = _check_vocab("MultiCategoryBlock", vocab)
        _check_encoded("MultiCategoryBlock", vocab, encoded)
        _check_multi_add_na("MultiCategoryBlock", vocab, encoded, add_na)
        self.vocab_arg, self.label_delim, self.encoded, self.add_na = vocab, label_delim, encoded, add_na

    def type_transforms(self) -> list[Transform]:
        return [MultiCategorize(self.vocab_arg, self.label_delim, encoded=self.encoded, add_na=self.add_na)]


def _check_multi_add_na(owner: str, vocab: Sequence[Any] | None, encoded: bool, add_na: bool) -> None:
    _check_add_na(owner, vocab, add_na)
    if add_na and encoded:
        raise ParameterError(f"{owner}(encoded=True, add_na=True): the rows come one-hot already, a value per label "
                             f"of the vocab, so there is no label the {NA_TOKEN!r} column could take; put "
                             f"{NA_TOKEN!r} in vocab (and a column for it in the data), or leave add_na out")


def _check_encoded(owner: str, vocab: Sequence[Any] | None, encoded: bool) -> None:
    check(owner, encoded=(encoded, BOOL))
    if encoded and vocab is None:
        raise ParameterError(f"{owner}(encoded=True) needs vocab=: the name of each label, in the order of the "
                             "values of a row (e.g. the names of the 0/1 columns get_y reads)")


class ToFloat(Transform):
    """Numbers (or lists of numbers) -> a float32 matrix of ``n_out`` columns (learned when not given).

    >>> import polars as pl
    >>> from pipekit.data import ToFloat
    >>> t = ToFloat(); t.setup(pl.Series([[1, 2], [3, 4]]))
    >>> out = t.encode(pl.Series([[5, 6]]))
    >>> t.n_out_, out.dtype, out.tolist(), t.decode(out)
    (2, dtype('float32'), [[5.0, 6.0]], [[5.0, 6.0]])

    Several number columns read at once (``ColReader(['age', 'hours-per-week'])``, a Polars Struct) are a matrix of
    one column each:

    >>> ToFloat(n_out=2).encode(pl.DataFrame({"age": [39, 50], "hours": [40, 13]}).to_struct()).tolist()
    [[39.0, 40.0], [50.0, 13.0]]
    """

    order = 1

    def __init__(self, n_out: int | None = None):
        self.n_out = n_out

    def _matrix(self, values: Any, finite: bool = True) -> np.ndarray:
        values = number_column(values)
        if isinstance(values.dtype, pl.Struct):
            # several columns read at once (``ColReader(['age', 'hours-per-week'])``): a number column each, side by
            # side, as fastai reads a row's values; each is checked (and named) as a column on its own
            return np.hstack([self._matrix(f, finite) for f in values.struct.unnest().get_columns()]
                             ) if values.struct.fields else np.zeros((len(values), 0), np.float32)
        if isinstance(values.dtype, (pl.List, pl.Array)) or values.dtype == pl.Object:
            # a row of numbers per item: lists, arrays, or tensors (which Polars holds as objects)
            items = values.to_list()
            try:
                arr = np.asarray([to_numpy(v) for v in items] if values.dtype == pl.Object else items,
                                 dtype=np.float32)
            except (TypeError, ValueError):  # rows of different lengths, or values that are no numbers
                raise _rows_error(items) from None
            arr = arr.reshape(-1, 1) if arr.ndim == 1 and values.dtype == pl.Object else arr  # a number per item
            if arr.ndim != 2:
                raise _rows_error(items)
        elif values.null_count():
            raise _missing_error(values)
        elif values.dtype.is_numeric() or values.dtype == pl.Boolean:
            arr = values.cast(pl.Float32).to_numpy().reshape(-1, 1)
        else:
            bad = values.cast(pl.Float32, strict=False).is_null() & values.is_not_null()
            i = int(bad.arg_true()[0]) if bad.any() else 0
            error = DataError(f"RegressionBlock needs numbers, got {values.dtype}{_column_named(values)} (row {i}: "
                              f"{values[i]!r}); convert the column to numbers first (e.g. pd.to_numeric(df[c]) in "
                              "pandas, or pl.col(c).cast(pl.Float32) in Polars)")
            error.rows = [i]  # type: ignore[attr-defined]
            raise error
        if finite and not np.isfinite(arr).all():
            i = int(np.flatnonzero(~np.isfinite(arr).all(1))[0])
            raise DataError(f"RegressionBlock: non-finite target ({arr[i].tolist()}){_column_named(values)} at row "
                            f"{i}; fill or drop it")
        return arr

    def setup(self, values: Any) -> None:
        # fitted on the training rows: a non-finite value, or an item that is no row of numbers, is reported by
        # encode, which sees every item at its position
        width: int | None = self.n_out
        if width is None:
            try:
                width = self._matrix(values, finite=False).shape[1]
            except DataError:
                width = None
        self.n_out_ = width

    def encode(self, values: Any) -> np.ndarray:
        arr = self._matrix(values)
        n_out = getattr(self, "n_out_", self.n_out)
        if n_out is not None and arr.shape[1] != n_out:
            raise DataError(f"RegressionBlock(n_out={n_out}) got {arr.shape[1]} value(s) per item")
        return arr

    def decode(self, value: Any) -> Any:
        v = to_numpy(value)
        return float(v.reshape(-1)[0]) if v.size == 1 else v.tolist()


def number_column(values: Any) -> pl.Series:
    """A regression target's values (a Polars or pandas Series, a list, a tuple, an array or a tensor) as a Polars
    Series. pandas' nullable dtypes (``Int64``, ``Float64``, ``boolean``) and Arrow-backed ones (``int64[pyarrow]``)
    keep their type, their missing values (``pd.NA``) becoming nulls; a NaN stays a NaN.

    >>> import pandas as pd
    >>> s = number_column(pd.Series([39, None], dtype="Int64", name="age")); s.name, s.dtype, s.to_list()
    ('age', Int64, [39, None])
    >>> number_column([1, 2.5]).to_list(), number_column(np.array([[1, 2]])).dtype
    ([1.0, 2.5], Array(Int64, shape=(2,)))
    """
    if isinstance(values, pl.Series):
        return values
    if is_pandas(values, "Series"):
        if values.dtype != object:
            with contextlib.suppress(TypeError, ValueError, pl.exceptions.PolarsError):
                return pl.Series(pl.from_pandas(values, nan_to_null=False)).alias(str(values.name or ""))
        values = values.to_list()  # Python objects (texts, lists, tensors): each read as it is
    if isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim >= 1:
        arr = to_numpy(values)
        return pl.Series("", arr.tolist() if arr.dtype == object else arr, strict=False)
    if isinstance(values, (list, tuple)):
        return pl.Series("", list(values), strict=False)
    raise DataError(f"RegressionBlock takes the targets of all the items at once (a list, array or Series), got "
                    f"{type(values).__name__} {values!r:.60}")


def _column_named(values: pl.Series) -> str:
    return f" in column {values.name!r}" if values.name else ""


def _missing_error(values: pl.Series) -> DataError:
    """A regression target that is missing (None, null, ``pd.NA``) at some rows, named with the first of them."""
    rows = values.is_null().arg_true().to_list()
    more = " ..." if len(rows) > 10 else ""
    error = DataError(f"RegressionBlock got {len(rows)} missing value(s) (None, null or pd.NA){_column_named(values)} "
                      f"at row(s) {rows[:10]}{more}: every item needs a number; fill them (df[c].fillna(...) in pandas, "
                      "pl.col(c).fill_null(...) in Polars) or drop those rows")
    error.rows = rows  # type: ignore[attr-defined]
    return error


def _rows_error(items: Sequence[Any]) -> DataError:
    """Why the values of a regression target's items (lists, arrays, tensors) make no matrix of numbers: the first
    item that is no number or row of numbers, or that has another number of values than item 0, named by its
    position (``rows``, so a DataBlock names its file too)."""
    first = None
    for i, v in enumerate(items):
        try:
            a = np.asarray(to_numpy(v), dtype=np.float32)
        except (TypeError, ValueError):
            problem = f"is {str(v)[:80]!r}, which is not a number or a row of numbers"
        else:
            if a.ndim > 1:
                problem = (f"holds numbers of shape {a.shape}: a target is a number or a row of numbers per item; "
                           "flatten each (arr.ravel()), or use PointBlock for (x, y) points")
            elif first is not None and a.size != first:
                problem = (f"has {a.size} value(s) where item 0 has {first}: every item needs the same number of "
                           "values")
            else:
                first = a.size if first is None else first
                continue
        error = DataError(f"RegressionBlock item {i} {problem}")
        error.rows = [i]  # type: ignore[attr-defined]
        return error
    return DataError(f"RegressionBlock: the items' values make no row of numbers each (first: {str(items[:1])[:80]})")


class RegressionBlock(TransformBlock):
    """A continuous target with ``n_out`` values per item.

    >>> import numpy as np
    >>> import polars as pl
    >>> from pipekit.data import RegressionBlock
    >>> block = RegressionBlock()
    >>> store = block.setup(pl.Series([1.5, 2.0, 4.0]), np.arange(3))
    >>> block.c, block.loss_kind, store.gather(np.arange(3)).tolist(), block.decode(store.item(2))
    (1, 'mse', [[1.5], [2.0], [4.0]], 4.0)
    >>> two = RegressionBlock(); _ = two.setup(pl.Series([[1.0, 2.0], [3.0, 4.0]]), np.arange(2)); two.c
    2
    """

    loss_kind = "mse"

    def __init__(self, n_out: int | None = None):
        self.n_out = n_out

    def type_transforms(self) -> list[Transform]:
        return [ToFloat(self.n_out)]

    def check_raw(self, raw: pl.Series, role: str) -> None:
        """Refuse nulls, and non-finite targets naming their rows (before the fit sees only training rows)."""
        super().check_raw(raw, role)
        if raw.dtype.is_float():
            rows = (~raw.is_finite()).arg_true().to_list()
            if rows:
                more = " ..." if len(rows) > 10 else ""
                raise DataError(f"RegressionBlock ({role}) has {len(rows)} non-finite value(s) (NaN or inf) at rows "
                                f"{rows[:10]}{more} (first: {raw[rows[0]]}); fill or drop those rows")

    @property
    def c(self) -> int | None:
        tfms = getattr(self, "tfms_", None)
        return tfms[0].n_out_ if tfms else self.n_out  # type: ignore[attr-defined]
