"""``Tabular``: a table split into train/valid, processed by procs fitted on the training rows.

Example:
    >>> from pipekit.datasets import path
    >>> from pipekit.data.splitters import RandomSplitter
    >>> from pipekit.tabular import Tabular, Categorify, FillMissing, Normalize
    >>> tab = Tabular(path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing, Normalize],
    ...               cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], y_names="salary",
    ...               splits=RandomSplitter(valid_pct=0.2, seed=42))
    >>> len(tab.train), len(tab.valid), tab.y_vocab
    (26049, 6512, ['<50k', '>=50k'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipekit.data.splitters import RandomSplitter
from pipekit.tabular.procs import Categorify, FillMissing, Normalize, TabularProc, make_procs
from pipekit.tabular.processor import TabularProcessor

DEFAULT_PROCS = (Categorify, FillMissing, Normalize)
_SPLIT_COL = "__pipekit_train__"


def _as_list(names: str | Sequence[str] | None, param: str) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{param}: expected column names (str), got {list(names)!r}.")
    return list(names)


def read_table(source: Any, cat_names: Sequence[str] = (), lazy: bool = False,
               columns: Sequence[str] | None = None, text_names: Sequence[str] = (),
               cont_names: Sequence[str] = ()) -> pl.DataFrame | pl.LazyFrame:
    """Read a Polars/pandas DataFrame, Arrow table, Polars LazyFrame or a CSV/Parquet path into Polars.

    Paths are scanned lazily and only ``columns`` (all when None) are read. In a CSV, ``cat_names``
    (and ``text_names`` whose values are text) are read as ``pl.Categorical`` and numeric ``cont_names``
    as Float32, so 10M-row tables stay small; category codes are never trusted (``Categorify`` looks
    values up by value).

    Example:
        >>> from pipekit.datasets import path
        >>> read_table(path("adult_sample") / "adult.csv").shape
        (32561, 15)
    """
    # Columns that are missing are left for the caller to report, with the roles they were given.
    if isinstance(source, pl.DataFrame):
        frame = source if columns is None else source.select([c for c in columns if c in source.columns])
        return frame.lazy() if lazy else frame
    if isinstance(source, pl.LazyFrame):
        if columns is not None:
            have = source.collect_schema().names()
            source = source.select([c for c in columns if c in have])
        return source if lazy else source.collect(engine="streaming")
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"Tabular: file {str(p)!r} does not exist.")
        suffix = p.suffix.lower()
        if suffix in (".csv", ".tsv", ".txt"):
            sep = "\t" if suffix == ".tsv" else ","
            head = pl.read_csv(p, n_rows=1000, separator=sep, infer_schema_length=1000)
            overrides = {c: pl.Categorical for c in cat_names if c in head.columns}
            overrides.update({c: pl.Categorical for c in text_names if c in head.columns and head[c].dtype == pl.String})
            overrides.update({c: pl.Float32 for c in cont_names if c in head.columns and head[c].dtype.is_numeric()})
            lf = pl.scan_csv(p, schema_overrides=overrides, separator=sep, infer_schema_length=10000)
        elif suffix in (".parquet", ".pq"):
            lf = pl.scan_parquet(p)
        elif suffix in (".arrow", ".ipc", ".feather"):
            lf = pl.scan_ipc(p)
        else:
            raise ValueError(f"Tabular: cannot read {str(p)!r}; supported files are .csv, .tsv, .parquet, .arrow/.ipc/.feather.")
        if columns is not None:
            have = lf.collect_schema().names()
            lf = lf.select([c for c in columns if c in have])
        return lf if lazy else lf.collect(engine="streaming")
    type_name = f"{type(source).__module__}.{type(source).__name__}"
    if type_name.startswith("pandas.") and type(source).__name__ == "DataFrame":
        df = pl.from_pandas(source)
        return df.lazy() if lazy else df
    if type_name.startswith("pyarrow.") and type(source).__name__ in ("Table", "RecordBatch"):
        df = pl.from_arrow(source)
        return df.lazy() if lazy else df
    raise TypeError(f"Tabular: source must be a Polars/pandas DataFrame, a pyarrow Table, a Polars LazyFrame "
                    f"or a CSV/Parquet path, got {type_name}.")


def _columns_for(splits: Any, model_columns: list[str]) -> list[str] | None:
    """The columns to read from a file: the model's plus what a known splitter looks at (None = all)."""
    from pipekit.data.splitters import (ColSplitter, IndexSplitter, RandomSplitter, TimeSplitter,
                                        TrainTestSplitter)

    extra: list[str | None]
    if splits is None or isinstance(splits, (tuple, list)) or isinstance(splits, (RandomSplitter, IndexSplitter)):
        extra = []
    elif isinstance(splits, (ColSplitter, TimeSplitter)):
        extra = [splits.col]
    elif isinstance(splits, TrainTestSplitter):
        extra = [splits.stratify_col]
    else:
        return None  # a user function may look at any column
    return list(dict.fromkeys(model_columns + [c for c in extra if c]))


def _random_split(n: int, valid_pct: float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``RandomSplitter(valid_pct, seed)``'s split, in O(n): a mask instead of sorting 10M indices."""
    perm = np.random.default_rng(seed).permutation(n)
    valid = np.zeros(n, dtype=bool)
    valid[perm[: int(round(valid_pct * n))]] = True
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def _resolve_splits(splits: Any, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return (train_idx, valid_idx, explicit) where explicit says a validation set was asked for."""
    n = len(items)
    if splits is None:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64), False
    if type(splits) is RandomSplitter:
        train, valid = _random_split(n, splits.valid_pct, splits.seed)
    elif callable(splits):
        train, valid = splits(items)
    elif isinstance(splits, (tuple, list)) and len(splits) == 2:
        train, valid = splits
    else:
        raise TypeError("Tabular: splits must be None, a splitter (items -> (train_idx, valid_idx)) "
                        f"or a pair of index arrays, got {type(splits).__name__}.")
    train = np.asarray(train, dtype=np.int64).reshape(-1)
    valid = np.asarray(valid, dtype=np.int64).reshape(-1)
    for name, idx in (("train", train), ("valid", valid)):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"Tabular: {name} split has indices outside 0..{n - 1}.")
    if len(train) == 0:
        raise ValueError(f"Tabular: the split left the training set empty (0 of {n} rows); check the splitter.")
    if len(valid) == 0:
        raise ValueError(f"Tabular: the split left the validation set empty (0 of {n} rows); use a splitter that "
                         "keeps some rows for validation, or splits=None to train on every row without one.")
    return train, valid, True


class _FittedNames:
    """Column names and fitted vocabularies, read from the processor (what models and ensembles use)."""

    processor: TabularProcessor

    @property
    def cat_names(self) -> list[str]:
        return self.processor.cat_names_

    @property
    def cont_names(self) -> list[str]:
        return self.processor.cont_names_

    @property
    def y_names(self) -> list[str]:
        return self.processor.y_names

    @property
    def classes(self) -> dict[str, list[str]]:
        return self.processor.classes_

    @property
    def y_vocab(self) -> list[str] | None:
        return self.processor.y_vocab_


class TabularSplit(_FittedNames):
    """Processed rows of one subset: ``.xs`` (Polars), ``.ys``, ``.cats``, ``.conts``, ``to_numpy()``, ``to_torch()``.

    Example:
        >>> xs, y = tab.train.to_numpy()        # doctest: +SKIP
    """

    def __init__(self, frame: pl.DataFrame, processor: TabularProcessor, idxs: np.ndarray | None = None,
                 name: str = "train") -> None:
        self._full = frame
        self.idxs = idxs
        self.processor = processor
        self.name = name
        self._frame: pl.DataFrame | None = None

    @property
    def frame(self) -> pl.DataFrame:
        if self._frame is None:
            self._frame = self._full if self.idxs is None else self._full[self.idxs]
        return self._frame

    def __len__(self) -> int:
        return len(self._full) if self.idxs is None else len(self.idxs)

    @property
    def has_targets(self) -> bool:
        return bool(self.y_names) and all(c in self._full.columns for c in self.y_names)

    @property
    def xs(self) -> pl.DataFrame:
        """Model inputs: categorical codes then normalised continuous columns."""
        return self.frame.select(self.cat_names + self.cont_names)

    @property
    def cats(self) -> pl.DataFrame:
        return self.frame.select(self.cat_names)

    @property
    def conts(self) -> pl.DataFrame:
        return self.frame.select(self.cont_names)

    @property
    def ys(self) -> pl.DataFrame | None:
        """Encoded targets (class codes into ``y_vocab`` or floats); None when the data has no target."""
        return self.frame.select(self.y_names) if self.has_targets else None

    def y_array(self) -> np.ndarray | None:
        """Targets as numpy: int64 codes (classification), float32 ``(n,)`` or ``(n, k)`` (regression)."""
        if not self.has_targets:
            return None
        if self.processor.y_kind_ == "category":
            y = self.frame[self.y_names[0]].to_numpy().astype(np.int64, copy=False)
        else:
            y = self.frame.select(self.y_names).to_numpy(order="c").astype(np.float32, copy=False)
            y = y[:, 0] if y.shape[1] == 1 else y
        # Arrow buffers are read-only; the target is small, so copy rather than hand torch a read-only array.
        return y if y.flags.writeable else y.copy()

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(xs, y)``: a float32 matrix of categorical codes and continuous values, and ``y_array()``."""
        xs = self.xs.to_numpy(order="c")
        return xs.astype(np.float32, copy=False), self.y_array()

    def to_torch(self) -> tuple[Any, Any, Any]:
        """``(cats int64, conts float32, y)`` CPU tensors shaped ``(n, n_cat)``, ``(n, n_cont)``."""
        import torch

        n = len(self)
        cats = (self.cats.to_numpy(order="c").astype(np.int64, copy=False) if self.cat_names
                else np.zeros((n, 0), dtype=np.int64))
        conts = (self.conts.to_numpy(order="c").astype(np.float32, copy=False) if self.cont_names
                 else np.zeros((n, 0), dtype=np.float32))
        y = self.y_array()
        return torch.from_numpy(cats), torch.from_numpy(conts), (None if y is None else torch.from_numpy(y))

    def decode(self, n: int = 5) -> pl.DataFrame:
        """The first ``n`` rows with categories as their values (continuous columns stay normalised)."""
        return self.processor.decode(self.frame.head(n))

    def __repr__(self) -> str:
        return (f"TabularSplit({self.name}, {len(self)} rows, {len(self.cat_names)} categorical, "
                f"{len(self.cont_names)} continuous, y={self.y_names})")


class Tabular(_FittedNames):
    """A table processed by procs fitted on its training rows, split into ``.train`` and ``.valid``.

    Args:
        source: Polars/pandas DataFrame, pyarrow Table, Polars LazyFrame, or a CSV/Parquet path.
        procs: classes or instances of ``Categorify``, ``FillMissing``, ``Normalize`` (run in that
            dependency order: fill, then categorify, then normalise).
        cat_names, cont_names: categorical / continuous input columns.
        y_names: target column(s).
        y_block: None (infer: text/bool -> "category", numbers -> "regression"), "category",
            "regression", or a block with a ``kind`` attribute.
        splits: None (every row trains, no validation set), a splitter ``items -> (train_idx, valid_idx)``
            such as ``RandomSplitter(0.2, seed=42)``, or a pair of index arrays.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"a": ["x", "y", "x", "y"], "b": [1.0, 2.0, None, 4.0], "y": [0.5, 1.0, 1.5, 2.0]})
        >>> tab = Tabular(df, cat_names=["a"], cont_names=["b"], y_names="y", splits=([0, 1, 2], [3]))
        >>> tab.cat_names, tab.train.cats["a"].to_list()
        (['a', 'b_na'], [1, 2, 1])
    """

    def __init__(self, source: Any, procs: Sequence[type[TabularProc] | TabularProc] | None = DEFAULT_PROCS,
                 cat_names: str | Sequence[str] | None = None, cont_names: str | Sequence[str] | None = None,
                 y_names: str | Sequence[str] | None = None, y_block: Any = None,
                 splits: Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray]] | tuple | None = None) -> None:
        cats = _as_list(cat_names, "cat_names")
        conts = _as_list(cont_names, "cont_names")
        ys = _as_list(y_names, "y_names")
        self.processor = TabularProcessor(procs=make_procs(procs), cat_names=cats, cont_names=conts,
                                          y_names=ys, y_block=y_block)
        wanted = _columns_for(splits, cats + conts + ys)
        if isinstance(source, pl.DataFrame):  # already in memory: select, never copy
            self.processor.check_columns(source.columns, where="Tabular")
            items = read_table(source, columns=wanted)
        else:
            lazy = read_table(source, cats, lazy=True, text_names=ys, cont_names=conts)
            self.processor.check_columns(lazy.collect_schema().names(), where="Tabular")
            items = read_table(lazy, columns=wanted)
        train_idx, valid_idx, self.has_valid = _resolve_splits(splits, items)
        mask = np.zeros(len(items), dtype=bool)
        mask[train_idx] = True
        self._attach(self.processor.fit_transform(items, mask), train_idx, valid_idx)

    def _attach(self, frame: pl.DataFrame, train_idx: np.ndarray, valid_idx: np.ndarray) -> None:
        self.frame = frame
        self.train_idx, self.valid_idx = train_idx, valid_idx
        self.train = TabularSplit(self.frame, self.processor, train_idx, "train")
        self.valid = TabularSplit(self.frame, self.processor, valid_idx, "valid")

    @classmethod
    def from_processed(cls, path: str | os.PathLike, processor: TabularProcessor | None = None) -> Tabular:
        """Load a table written by ``process_to_parquet`` (already processed; split by its ``is_valid`` column).

        The fitted state is read from ``<path>.state.json`` unless ``processor`` is given.
        """
        p = Path(path)
        if processor is None:
            sp = p.with_suffix(".state.json")
            if not sp.exists():
                raise FileNotFoundError(f"Tabular.from_processed: no state file {str(sp)!r}; pass processor=.")
            processor = TabularProcessor.from_state(json.loads(sp.read_text()))
        frame = pl.read_parquet(p)
        if "is_valid" not in frame.columns:
            raise KeyError(f"Tabular.from_processed: {str(p)!r} has no 'is_valid' column; write it with process_to_parquet.")
        valid = frame["is_valid"].to_numpy()
        obj = cls.__new__(cls)
        obj.processor = processor
        obj.has_valid = bool(valid.any())
        obj._attach(frame.drop("is_valid"), np.flatnonzero(~valid), np.flatnonzero(valid))
        return obj

    # Names and fitted vocabularies, as the models and ensembles read them.
    @property
    def procs(self) -> list[TabularProc]:
        return self.processor.procs

    @property
    def y_kind(self) -> str:
        return self.processor.y_kind_

    @property
    def c(self) -> int:
        """Number of model outputs: classes for classification, target columns for regression."""
        return self.processor.c_

    @property
    def splits(self) -> tuple[np.ndarray, np.ndarray]:
        return self.train_idx, self.valid_idx

    def new(self, source: Any) -> TabularSplit:
        """Apply the fitted procs to new rows (targets are encoded when present); warns about filled values."""
        return TabularSplit(self.processor.transform(read_table(source, self.processor.cat_names)),
                            self.processor, None, "new")

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Every row (train and valid) as ``(xs, y)``; the subsets have their own ``to_numpy()``."""
        return TabularSplit(self.frame, self.processor, None, "all").to_numpy()

    def state(self) -> dict[str, Any]:
        """The fitted processing as plain data (JSON-able); ``TabularProcessor.from_state`` rebuilds it."""
        return self.processor.state()

    def dataloaders(self, bs: int = 64, val_bs: int | None = None, shuffle: bool = True, seed: int | None = None,
                    device: Any = None, num_workers: int | None = None) -> Any:
        """DataLoaders whose batches are ``(cats, conts, y)`` gathered from materialised tensors."""
        from pipekit.tabular.loaders import tabular_dataloaders

        return tabular_dataloaders(self, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                   num_workers=num_workers)

    def __repr__(self) -> str:
        return (f"Tabular({len(self.train)} train / {len(self.valid)} valid rows, cat_names={self.cat_names}, "
                f"cont_names={self.cont_names}, y_names={self.y_names}, y_kind={self.y_kind!r})")
