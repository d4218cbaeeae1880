"""Blocks say what a piece of data is: how to encode a raw column once, and decode it for people.

A :class:`TransformBlock` holds the column transforms (``type_tfms``) that ``setup`` on the training
subset and encode the whole column into a :class:`~pipekit.data.store.Store`, plus the item and batch
transforms it brings. Domains (vision, text, tabular) subclass it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch

from pipekit.data.store import ListStore, Store, TensorStore
from pipekit.data.transform import BatchTransform, Pipeline, Transform, init_config, registered

BLOCKS: dict[str, type[TransformBlock]] = {}
Trace = Callable[[str, Any], None]


def _describe_nulls(values: pl.Series, what: str) -> str:
    rows = values.is_null().arg_true().to_list()
    return f"{what} has {len(rows)} null value(s) at rows {rows[:10]}{' ...' if len(rows) > 10 else ''}"


class TransformBlock:
    """The base block: ``type_tfms`` encode a column, ``item_tfms``/``batch_tfms`` come along with it."""

    kind: ClassVar[str] = "generic"
    #: what loss a Learner picks when this block is the target: 'cross_entropy', 'bce', 'mse' or None
    loss_kind: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BLOCKS[cls.__name__] = cls

    def __init__(self, type_tfms: Sequence[Transform] = (), item_tfms: Sequence[Transform] = (),
                 batch_tfms: Sequence[BatchTransform] = (), dl_type: type | None = None):
        self.type_tfms = Pipeline(type_tfms)
        self.item_tfms = list(item_tfms)
        self.batch_tfms = list(batch_tfms)
        self.dl_type = dl_type

    # ------------------------------------------------------------------ building the store
    def check_raw(self, raw: pl.Series, role: str) -> None:
        """Refuse null values (a label with no value, a missing file name) before any work is done."""
        if raw.null_count():
            raise ValueError(_describe_nulls(raw, f"{type(self).__name__} ({role})") +
                             "; fill or drop those rows before building the data")

    def build(self, raw: pl.Series, train_idx: np.ndarray, item_tfms: Sequence[Transform] = (),
              trace: Trace | None = None) -> Store:
        """Fit the column transforms on the training rows, then encode the whole column once."""
        self.item_tfms = self.item_tfms + [t for t in item_tfms if t.applies_to(self.kind) and t not in self.item_tfms]
        tfms = self.all_tfms()
        values_train = raw.gather(train_idx) if isinstance(raw, pl.Series) else raw[train_idx]
        for t in tfms:
            t.setup(values_train)
            values_train = t.encode(values_train)
        values = raw
        for t in tfms:
            values = t.encode(values)
            if trace is not None:
                trace(f"{t!r}", values)
        return self.to_store(values)

    def all_tfms(self) -> list[Transform]:
        return sorted(list(self.type_tfms) + self.item_tfms, key=lambda t: t.order)

    def encode_new(self, raw: pl.Series) -> Store:
        """Encode new data with the fitted state (test sets, inference)."""
        values = raw
        for t in self.all_tfms():
            values = t.encode(values)
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
    def decode(self, value: Any) -> Any:
        """One encoded item -> the human value (label, list of labels, number)."""
        for t in reversed(self.all_tfms()):
            value = t.decode(value)
        return value

    def decode_batch(self, batch: Any) -> list[Any]:
        return [self.decode(v) for v in batch]

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        """Draw one decoded item on a matplotlib axis (default: as text)."""
        ax.axis("off")
        ax.text(0.5, 0.5, str(value)[:200], ha="center", va="center", wrap=True)
        if title:
            ax.set_title(title)

    @property
    def vocab(self) -> list | None:
        for t in self.type_tfms:
            if getattr(t, "vocab", None) is not None:
                return t.vocab
        return None

    @property
    def c(self) -> int | None:
        """Number of model outputs this block needs as a target."""
        v = self.vocab
        return len(v) if v is not None else None

    # ------------------------------------------------------------------ export
    def to_record(self) -> dict[str, Any]:
        return {"name": type(self).__name__, "config": self.config(),
                "type_tfms": self.type_tfms.to_records(), "item_tfms": [t.to_record() for t in self.item_tfms]}

    def config(self) -> dict[str, Any]:
        return {k: v for k, v in init_config(self).items()
                if k not in ("type_tfms", "item_tfms", "batch_tfms", "dl_type")}

    @staticmethod
    def from_record(record: dict[str, Any]) -> TransformBlock:
        block = registered(record["name"], BLOCKS)(**record.get("config", {}))
        block.type_tfms = Pipeline.from_records(record.get("type_tfms", []))
        block.item_tfms = [Transform.from_record(r) for r in record.get("item_tfms", [])]
        return block

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if v is not None)
        return f"{type(self).__name__}({cfg})"


# ---------------------------------------------------------------------------------------- categories
class Categorize(Transform):
    """Labels -> integer codes with a vocab learned on the training labels (sorted).

    >>> t = Categorize(); t.setup(pl.Series(["dog", "cat", "dog"])); t.vocab
    ['cat', 'dog']
    >>> t.encode(pl.Series(["dog", "cat"])).tolist()
    [1, 0]
    """

    order = 1
    _state = ("vocab",)

    def __init__(self, vocab: Sequence[Any] | None = None, sort: bool = True):
        if vocab is not None:
            vocab = list(vocab)
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"Categorize: the vocab has duplicates: {vocab}")
        self.vocab = vocab
        self.sort = sort

    def setup(self, values: pl.Series) -> None:
        if self.vocab is not None:
            self._check_known(values, "the vocab you gave")
            return
        uniq = values.unique(maintain_order=True)
        self.vocab = sorted(uniq.to_list()) if self.sort else uniq.to_list()

    def _check_known(self, values: pl.Series, where: str) -> np.ndarray:
        assert self.vocab is not None
        codes = values.replace_strict(self.vocab, list(range(len(self.vocab))), default=None, return_dtype=pl.Int64)
        unknown = codes.is_null() & values.is_not_null()
        if unknown.any():
            rows = unknown.arg_true().to_list()
            labels = sorted({str(v) for v in values.gather(rows[:50]).to_list()})
            raise ValueError(f"label(s) {labels[:10]} at rows {rows[:10]} are not in {where} "
                             f"(vocab: {self.vocab[:20]}{' ...' if len(self.vocab) > 20 else ''}); "
                             "add them to the vocab or to the training set")
        return codes.to_numpy()

    def encode(self, values: pl.Series) -> np.ndarray:
        if self.vocab is None:
            raise RuntimeError("Categorize.encode before setup: build the data first")
        try:
            return self._check_known(values, "the training labels")
        except pl.exceptions.InvalidOperationError as e:
            raise TypeError(f"labels of type {values.dtype} cannot be matched to a vocab of "
                            f"{type(self.vocab[0]).__name__}: {e}") from e

    def decode(self, value: Any) -> Any:
        assert self.vocab is not None
        if isinstance(value, torch.Tensor):
            value = value.item() if value.ndim == 0 else value.argmax(-1).item()
        return self.vocab[int(value)]


class CategoryBlock(TransformBlock):
    """A single-label classification target (or input).

    >>> CategoryBlock(vocab=["cat", "dog"]).loss_kind
    'cross_entropy'
    """

    kind = "category"
    loss_kind = "cross_entropy"

    def __init__(self, vocab: Sequence[Any] | None = None, sort: bool = True):
        self.vocab_arg = vocab
        super().__init__(type_tfms=[Categorize(vocab, sort=sort)])
        self.sort = sort

    def config(self) -> dict[str, Any]:
        return {"vocab": self.vocab_arg, "sort": self.sort}


class MultiCategorize(Transform):
    """Lists of labels -> one-hot float rows, vocab learned on the training labels."""

    order = 1
    _state = ("vocab",)

    def __init__(self, vocab: Sequence[Any] | None = None, label_delim: str | None = None):
        self.vocab = list(vocab) if vocab is not None else None
        self.label_delim = label_delim

    def _lists(self, values: pl.Series) -> pl.Series:
        if values.dtype == pl.Utf8:
            if self.label_delim is None:
                raise TypeError("MultiCategoryBlock got text labels: give label_delim (e.g. ' ') to split them, "
                                "or a getter that returns lists")
            values = values.str.split(self.label_delim).list.eval(pl.element().filter(pl.element() != ""))
        if not isinstance(values.dtype, pl.List):
            raise TypeError(f"MultiCategoryBlock needs a list of labels per item, got {values.dtype}")
        return values

    def setup(self, values: pl.Series) -> None:
        flat = self._lists(values).explode().drop_nulls()
        if self.vocab is None:
            self.vocab = sorted(flat.unique().to_list())
            return
        missing = sorted(set(flat.unique().to_list()) - set(self.vocab))
        if missing:
            raise ValueError(f"label(s) {missing[:10]} are not in the vocab you gave ({self.vocab[:20]})")

    def encode(self, values: pl.Series) -> np.ndarray:
        assert self.vocab is not None, "MultiCategorize.encode before setup"
        lists = self._lists(values)
        lens = lists.list.len().fill_null(0).to_numpy()
        rows = np.repeat(np.arange(len(lists)), lens)
        flat = lists.explode()
        flat = flat.filter(flat.is_not_null()) if len(flat) != lens.sum() else flat
        codes = flat.replace_strict(self.vocab, list(range(len(self.vocab))), default=None, return_dtype=pl.Int64)
        if codes.null_count():
            i = int(codes.is_null().arg_true()[0])
            raise ValueError(f"label {flat[i]!r} (item {rows[i]}) is not in the training labels {self.vocab[:20]}")
        out = np.zeros((len(lists), len(self.vocab)), dtype=np.float32)
        out[rows, codes.to_numpy()] = 1.0
        return out

    def decode(self, value: Any) -> list:
        assert self.vocab is not None
        v = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        return [self.vocab[i] for i in np.flatnonzero(v > 0.5)]


class MultiCategoryBlock(TransformBlock):
    """A multi-label target: each item has zero or more labels, encoded one-hot."""

    kind = "multicategory"
    loss_kind = "bce"

    def __init__(self, vocab: Sequence[Any] | None = None, label_delim: str | None = None):
        self.vocab_arg = vocab
        self.label_delim = label_delim
        super().__init__(type_tfms=[MultiCategorize(vocab, label_delim)])

    def config(self) -> dict[str, Any]:
        return {"vocab": self.vocab_arg, "label_delim": self.label_delim}


class ToFloat(Transform):
    """Numbers (or lists of numbers) -> a float32 matrix of ``n_out`` columns."""

    order = 1
    _state = ("n_out",)

    def __init__(self, n_out: int | None = None):
        self.n_out = n_out

    def encode(self, values: pl.Series) -> np.ndarray:
        if isinstance(values.dtype, (pl.List, pl.Array)):
            arr = np.asarray(values.to_list(), dtype=np.float32)
        elif values.dtype.is_numeric() or values.dtype == pl.Boolean:
            arr = values.cast(pl.Float32).to_numpy().reshape(-1, 1)
        else:
            bad = values.cast(pl.Float32, strict=False).is_null() & values.is_not_null()
            i = int(bad.arg_true()[0]) if bad.any() else 0
            raise TypeError(f"RegressionBlock needs numbers, got {values.dtype} (row {i}: {values[i]!r}); "
                            "convert the column to numbers first")
        if arr.ndim != 2:
            raise ValueError(f"RegressionBlock: items have different numbers of values (shape {arr.shape})")
        if np.isnan(arr).any():
            i = int(np.flatnonzero(np.isnan(arr).any(1))[0])
            raise ValueError(f"RegressionBlock: NaN target at row {i}; fill or drop it")
        if self.n_out is None:
            self.n_out = arr.shape[1]
        elif arr.shape[1] != self.n_out:
            raise ValueError(f"RegressionBlock(n_out={self.n_out}) got {arr.shape[1]} value(s) per item")
        return arr

    def decode(self, value: Any) -> Any:
        v = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return float(v.reshape(-1)[0]) if v.size == 1 else v.tolist()


class RegressionBlock(TransformBlock):
    """A continuous target with ``n_out`` values per item."""

    kind = "regression"
    loss_kind = "mse"

    def __init__(self, n_out: int | None = None):
        self.n_out = n_out
        super().__init__(type_tfms=[ToFloat(n_out)])

    @property
    def c(self) -> int | None:
        return self.type_tfms.tfms[0].n_out  # type: ignore[attr-defined]

    def config(self) -> dict[str, Any]:
        return {"n_out": self.n_out}
