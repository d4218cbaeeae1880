"""Tabular DataLoaders: whole batches gathered from materialised tensors ``(cats, conts, y)``.

The processed table is turned into three contiguous tensors once; a batch is an ``index_select`` on
each (no per-batch DataFrame indexing, no per-row Python). The recipe that goes with the loaders is
``TabularRecipe``, whose one parameter is the fitted ``TabularProcessor``: it is what an exported model
carries and what ``dls.test_dl(df)`` encodes new rows with.

Example:
    >>> dls = tab.dataloaders(bs=64, seed=0)          # doctest: +SKIP
    >>> cats, conts, y = dls.one_batch()              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from pipekit.core.component import Component
from pipekit.core.errors import DataError
from pipekit.core.validate import Is
from pipekit.data.blocks import CategoryBlock, RegressionBlock, TransformBlock
from pipekit.data.dataloaders import DataLoaders, Datasets
from pipekit.data.loader import ArrayDataset, DataLoader
from pipekit.data.store import TensorStore
from pipekit.data.transform import BatchPipeline
from pipekit.tabular.core import TabularSplit, read_frame, rows_to_frame
from pipekit.tabular.processor import TabularProcessor


def _values(value: Any) -> list:
    return value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else list(value)


class TabularCatBlock(TransformBlock):
    """The categorical inputs of a tabular batch: one row of codes into ``classes`` per item, decoded to a
    dict column -> value. An input block: no loss, no geometry, shown as text."""

    def __init__(self, cat_names: Sequence[str] = (), classes: Mapping[str, Sequence[str]] | None = None) -> None:
        self.cat_names, self.classes = list(cat_names), classes

    def decode(self, value: Any) -> dict[str, str]:
        classes = self.classes or {}
        return {c: classes[c][int(i)] for c, i in zip(self.cat_names, _values(value))}


class TabularContBlock(TransformBlock):
    """The continuous inputs of a tabular batch (normalised floats), decoded to a dict column -> value."""

    def __init__(self, cont_names: Sequence[str] = ()) -> None:
        self.cont_names = list(cont_names)

    def decode(self, value: Any) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.cont_names, _values(value))}


def _stores(frame: pl.DataFrame, processor: TabularProcessor, with_y: bool) -> list[TensorStore]:
    cats, conts, y = TabularSplit(frame, processor, None, "all").arrays()
    return [TensorStore(cats), TensorStore(conts)] + ([TensorStore(y)] if with_y and y is not None else [])


class TabularRecipe(Component):
    """How tabular batches are made and new rows encoded: the fitted ``TabularProcessor``.

    Batches are ``(cats, conts[, y])``: two input blocks (``TabularCatBlock``, ``TabularContBlock``) and
    a ``CategoryBlock`` or ``RegressionBlock`` target built from the fitted target vocabulary.
    """

    registry_kind = "recipe"
    param_constraints = {"processor": Is(lambda p: isinstance(p, TabularProcessor), "a TabularProcessor")}
    n_inp_: int = 2

    def __init__(self, processor: TabularProcessor) -> None:
        self.processor = processor
        self.check_params()

    @property
    def is_fitted(self) -> bool:
        return self.processor.is_fitted

    def dl_type(self) -> type:
        return DataLoader

    def batch_pipeline(self) -> BatchPipeline:
        return BatchPipeline([])

    @property
    def fitted_blocks(self) -> tuple[TransformBlock, ...]:
        self.check_is_fitted("Tabular(...).dataloaders()")
        p = self.processor
        ins: tuple[TransformBlock, ...] = (TabularCatBlock(p.cat_names_, p.classes_), TabularContBlock(p.cont_names_))
        if p.y_kind_ == "category":
            y: TransformBlock = CategoryBlock(vocab=p.y_vocab_)
            y.setup(pl.Series(p.y_vocab_, dtype=pl.String), np.arange(p.c_))
        elif p.y_kind_ == "regression":
            y = RegressionBlock(n_out=len(p.y_names))
            y.setup(pl.Series([[0.0] * len(p.y_names)]), np.arange(1))
        else:
            return ins
        return ins + (y,)

    def new_datasets(self, source: Any, with_labels: bool = False) -> ArrayDataset:
        """Encode new rows (a DataFrame, a path, dict rows) with the fitted procs."""
        p = self.processor
        frame = p.transform(read_frame(rows_to_frame(source), p.cat_names))
        if with_labels and not (p.y_names and all(c in frame.columns for c in p.y_names)):
            raise DataError(f"test_dl(with_labels=True): the new data lacks the target column(s) {p.y_names}.")
        stores = _stores(frame, p, with_y=with_labels)
        return ArrayDataset(stores, blocks=self.fitted_blocks[:len(stores)], n_inp=self.n_inp_)


def tabular_dataloaders(tab: Any, bs: int = 64, val_bs: int | None = None, shuffle: bool = True,
                        seed: int | None = None, device: Any = None, num_workers: int | None = None) -> DataLoaders:
    """DataLoaders over a ``Tabular``: the tensors are built once and both subsets index into them."""
    if len(tab.valid) == 0:
        raise DataError("dataloaders: this Tabular has no validation rows; build it with splits=, e.g. "
                        "RandomSplitter(valid_pct=0.2, seed=42).")
    if not tab.y_names:
        raise DataError("dataloaders: this Tabular has no target; give y_names= to train a model.")
    recipe = TabularRecipe(tab.processor)
    dsets = Datasets(tab.frame, [tab.train_idx, tab.valid_idx], _stores(tab.frame, tab.processor, with_y=True),
                     recipe.fitted_blocks, recipe.n_inp_, recipe=recipe)
    # A batch is three index_selects (microseconds): prefetch threads would only fight the training
    # loop for the GIL, so batches are made in the main thread unless asked otherwise.
    return DataLoaders.from_datasets(dsets, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                     num_workers=0 if num_workers is None else num_workers,
                                     drop_last=shuffle and len(tab.train_idx) > bs)
