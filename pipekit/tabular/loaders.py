"""Tabular DataLoaders: whole batches gathered from materialised tensors ``(cats, conts, y)``.

The processed table is turned into three contiguous tensors once; a batch is an ``index_select`` on
each (no per-batch DataFrame indexing, no per-row Python). The recipe that goes with the loaders is
``TabularRecipe``: the fitted processing as plain data, which is what an exported model carries and
what ``dls.test_dl(df)`` uses to encode new rows.

Example:
    >>> dls = tab.dataloaders(bs=64, seed=0)          # doctest: +SKIP
    >>> cats, conts, y = dls.one_batch()              # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from pipekit.core.component import Component
from pipekit.data.blocks import CategoryBlock, RegressionBlock, TransformBlock
from pipekit.data.dataloaders import DataLoaders
from pipekit.data.loader import ArrayDataset, DataLoader
from pipekit.data.store import TensorStore


class TabularCatBlock(TransformBlock):
    """The categorical inputs of a tabular batch: codes into ``classes`` (decodes to the values)."""

    def __init__(self, cat_names: list[str] | None = None, classes: dict[str, list[str]] | None = None) -> None:
        self.cat_names = list(cat_names or [])
        self.classes = dict(classes or {})
        self.tfms_: list = []

    def decode(self, value: Any) -> dict[str, str]:
        codes = value.tolist() if hasattr(value, "tolist") else list(value)
        return {c: self.classes[c][int(i)] for c, i in zip(self.cat_names, codes)}


class TabularContBlock(TransformBlock):
    """The continuous inputs of a tabular batch (normalised floats)."""

    def __init__(self, cont_names: list[str] | None = None) -> None:
        self.cont_names = list(cont_names or [])
        self.tfms_: list = []

    def decode(self, value: Any) -> dict[str, float]:
        vals = value.tolist() if hasattr(value, "tolist") else list(value)
        return {c: float(v) for c, v in zip(self.cont_names, vals)}


def _stores(frame: pl.DataFrame, processor: Any, with_y: bool) -> list[TensorStore]:
    n = len(frame)
    cats = (frame.select(processor.cat_names_).to_numpy(order="c").astype(np.int64, copy=False)
            if processor.cat_names_ else np.zeros((n, 0), dtype=np.int64))
    conts = (frame.select(processor.cont_names_).to_numpy(order="c").astype(np.float32, copy=False)
             if processor.cont_names_ else np.zeros((n, 0), dtype=np.float32))
    stores = [TensorStore(cats), TensorStore(conts)]
    if with_y:
        if processor.y_kind_ == "category":
            y = frame[processor.y_names[0]].to_numpy().astype(np.int64, copy=False)
        else:
            y = frame.select(processor.y_names).to_numpy(order="c").astype(np.float32, copy=False)
            y = y[:, 0] if y.shape[1] == 1 else y
        stores.append(TensorStore(y))
    return stores


def _rows_to_frame(items: Any) -> Any:
    """``learn.predict(row)`` hands over ``[row]``: accept dict rows, one-row frames and pandas Series."""
    if isinstance(items, dict):
        return pl.DataFrame([items])
    if type(items).__name__ == "Series" and type(items).__module__.startswith("pandas"):
        return pl.DataFrame([items.to_dict()])
    if isinstance(items, (list, tuple)):
        if items and all(isinstance(r, dict) for r in items):
            return pl.DataFrame(list(items))
        if len(items) == 1:
            return _rows_to_frame(items[0])
        raise TypeError("tabular new data: give a DataFrame, a path, a dict row or a list of dict rows, "
                        f"got a list of {type(items[0]).__name__ if items else 'nothing'}.")
    return items


class TabularRecipe(Component):
    """How tabular batches are made: the fitted ``TabularProcessor`` (plain data, exportable)."""

    registry_kind = "recipe"
    n_inp_ = 2

    def __init__(self, processor: Any) -> None:
        from pipekit.tabular.processor import TabularProcessor

        self.processor = TabularProcessor.from_state(processor) if isinstance(processor, dict) else processor

    def params_to_data(self) -> dict[str, Any]:
        return {"processor": self.processor.state()}

    def state_to_data(self) -> dict[str, Any]:
        return {}

    def dl_type(self) -> type:
        return DataLoader

    def batch_pipeline(self) -> Any:
        from pipekit.data.transform import BatchPipeline

        return BatchPipeline([])

    @property
    def fitted_blocks(self) -> tuple[TransformBlock, ...]:
        return self.blocks

    @property
    def blocks(self) -> tuple[TransformBlock, ...]:
        p = self.processor
        ins: tuple[TransformBlock, ...] = (TabularCatBlock(p.cat_names_, p.classes_), TabularContBlock(p.cont_names_))
        if p.y_kind_ == "category":
            y: TransformBlock = CategoryBlock(vocab=p.y_vocab_)
        elif p.y_kind_ == "regression":
            y = RegressionBlock(n_out=len(p.y_names))
        else:
            return ins
        y.fit_tfms()
        y.tfms_[0].setup(pl.Series(list(p.y_vocab_)) if p.y_kind_ == "category" else pl.Series([[0.0] * len(p.y_names)]))
        return ins + (y,)

    def new_datasets(self, items: Any, with_labels: bool = False) -> ArrayDataset:
        """Encode new rows (a DataFrame or a path) with the fitted procs."""
        from pipekit.tabular.core import read_table

        frame = self.processor.transform(read_table(_rows_to_frame(items), self.processor.cat_names))
        has_y = bool(self.processor.y_names) and all(c in frame.columns for c in self.processor.y_names)
        if with_labels and not has_y:
            raise ValueError(f"test_dl(with_labels=True): the new data lacks the target column(s) {self.processor.y_names}.")
        stores = _stores(frame, self.processor, with_y=with_labels)
        blocks = self.blocks
        return ArrayDataset(stores, blocks=blocks[:len(stores)], n_inp=2)

    def __repr__(self) -> str:
        p = self.processor
        return f"TabularRecipe(cat_names={p.cat_names_}, cont_names={p.cont_names_}, y_names={p.y_names})"


def tabular_dataloaders(tab: Any, bs: int = 64, val_bs: int | None = None, shuffle: bool = True,
                        seed: int | None = None, device: Any = None, num_workers: int | None = None) -> DataLoaders:
    """DataLoaders over a ``Tabular``: the tensors are built once and both subsets index into them."""
    if len(tab.valid) == 0:
        raise ValueError("dataloaders: this Tabular has no validation rows; build it with splits=, e.g. "
                         "RandomSplitter(valid_pct=0.2, seed=42).")
    if not tab.y_names:
        raise ValueError("dataloaders: this Tabular has no target; give y_names= to train a model.")
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    recipe = TabularRecipe(tab.processor)
    blocks = recipe.blocks
    stores = _stores(tab.frame, tab.processor, with_y=True)
    tr = ArrayDataset(stores, blocks=blocks, n_inp=2, idxs=tab.train_idx, split_idx=0)
    va = ArrayDataset(stores, blocks=blocks, n_inp=2, idxs=tab.valid_idx, split_idx=1)
    # A batch is three index_selects (microseconds): prefetch threads would only fight the training
    # loop for the GIL, so batches are made in the main thread unless asked otherwise.
    nw = 0 if num_workers is None else num_workers
    train = DataLoader(tr, bs=bs, shuffle=shuffle, drop_last=shuffle and len(tr) > bs, seed=seed, device=device,
                       num_workers=nw, augment=False)
    valid = DataLoader(va, bs=val_bs or bs, shuffle=False, seed=seed + 1, device=device, num_workers=nw,
                       augment=False)
    return DataLoaders(train, valid, recipe=recipe, device=train.device)
