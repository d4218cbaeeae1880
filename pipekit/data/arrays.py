"""``ArrayRecipe``: the recipe of loaders built from stores a user encoded (``DataLoaders.from_stores``,
``pipekit.vision.dataloaders_from_arrays``).

Such loaders have no getters or column transforms to replay: a new item is already what a training item
was, an array (an image, a feature vector). The recipe remembers the shape and dtype of one item of each
input, the blocks and the batch transforms, so ``test_dl``, ``predict`` and ``export`` / ``load_learner``
work as for a ``DataBlock``. An input whose block encodes images held in memory (an ``ImageBlock``) takes
what that block takes (arrays, tensors, PIL images, bytes).

>>> import numpy as np
>>> from pipekit.data import DataLoaders, TensorStore
>>> x, y = np.random.default_rng(0).normal(size=(20, 3)).astype("float32"), np.arange(20) % 2
>>> dls = DataLoaders.from_stores([TensorStore(x[:16]), TensorStore(y[:16])], [TensorStore(x[16:]), TensorStore(y[16:])],
...                               bs=4, seed=0, device="cpu")
>>> dls.test_dl([x[0], x[1]]).one_batch()[0].shape
torch.Size([2, 3])
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from pipekit.core.component import Component
from pipekit.core.errors import DataError
from pipekit.core.validate import Interval
from pipekit.data.loader import ArrayDataset, DataLoader
from pipekit.data.store import ListStore, Store, TensorStore
from pipekit.data.transform import BatchPipeline, as_list

__all__ = ["ArrayRecipe", "to_numpy"]


def to_numpy(v: Any) -> np.ndarray:
    """A tensor (detached, on the CPU) or any array-like as a NumPy array.

    >>> import torch
    >>> from pipekit.data.arrays import to_numpy
    >>> a = to_numpy(torch.ones(2, 3, requires_grad=True))
    >>> type(a).__name__, a.shape, to_numpy([1, 2]).tolist()
    ('ndarray', (2, 3), [1, 2])
    """
    if not isinstance(v, torch.Tensor):
        return np.asarray(v)
    v = v.detach().cpu()
    # NumPy has no bfloat16: its values are float32's, exactly
    return (v.float() if v.dtype == torch.bfloat16 else v).numpy()


def _item_of(store: Any) -> Any:
    item = store.item(0)
    return to_numpy(item) if isinstance(item, torch.Tensor) else item


def _dtype_of(store: Any, item: Any) -> str | None:
    """The dtype of ``store``'s items, as NumPy names it; ``bfloat16`` for a store of bfloat16 tensors."""
    if not isinstance(item, np.ndarray):
        return None
    held = getattr(store, "data", None)
    return "bfloat16" if isinstance(held, torch.Tensor) and held.dtype == torch.bfloat16 else str(item.dtype)


def _cast_new_items(stacked: np.ndarray, dtype: str, j: int) -> np.ndarray:
    """New items (``stacked``, one row each) cast to a model's ``dtype``, refused where the cast would change a
    value: for an integer or boolean ``dtype`` a fraction, a value out of the type's range, NaN or infinity (floats
    0..1 cast to uint8 are all 0); for a narrower float ``dtype`` a finite value it cannot hold (1e5 in float16
    becomes infinity). Cast once; the values the cast changed are found by comparing it with the items.

    >>> import numpy as np
    >>> _cast_new_items(np.array([[0.0, 255.0]]), "uint8", 0)
    array([[  0, 255]], dtype=uint8)
    """
    target = np.dtype(dtype)
    if stacked.dtype == target:
        return stacked
    with np.errstate(invalid="ignore", over="ignore"):  # what the cast changes is refused below
        out = stacked.astype(target)
    source = stacked.dtype
    if source.kind == "b" or not stacked.size:  # False/True are 0/1 in every type
        return out
    if target.kind in "biu":
        if target.kind == "b":
            lo, hi, allowed = 0, 1, "0 or 1"
        else:
            info = np.iinfo(target)
            lo, hi = int(info.min), int(info.max)
            allowed = f"whole numbers {lo}..{hi}" if target.itemsize <= 2 else "whole numbers in range"
        # integers change only out of the range (two reductions say whether any is); other items are compared with
        # what they became, NumPy comparing in a type holding both (a fraction, NaN or wrapped value is unequal)
        if source.kind in "iu" and lo <= int(stacked.min()) and int(stacked.max()) <= hi:
            return out
        bad = out != stacked
    elif target.kind == "f" and float((np.finfo if source.kind == "f" else np.iinfo)(source).max) > \
            float(np.finfo(target).max):
        limit = float(np.finfo(target).max)
        allowed = f"numbers within +-{limit:g}"
        with np.errstate(invalid="ignore"):  # only a value beyond the type's largest can have become infinite
            if not (np.fmax.reduce(stacked, axis=None) > limit or np.fmin.reduce(stacked, axis=None) < -limit):
                return out
        bad = np.isinf(out) & np.isfinite(stacked)  # the items' own infinities stay infinite
    else:  # a float type that holds the items' range (precision may round, as torch's casts do)
        return out
    if not bad.any():
        return out
    k = int(np.flatnonzero(bad)[0])
    per_item = max(1, int(np.prod(stacked.shape[1:])))
    i, at = divmod(k, per_item)
    pos = f" at {tuple(int(n) for n in np.unravel_index(at, stacked.shape[1:]))}" if stacked.ndim > 1 else ""
    scaled = target.kind == "u" and source.kind == "f" and bool(((stacked[i] >= 0) & (stacked[i] <= 1)).all())
    fix = (f"its values look scaled to 0..1: scale them back ((x * {np.iinfo(target).max}).round().astype({dtype!r}))"
           if scaled else f"give {allowed}, as the training items were")
    raise DataError(f"item {i}, input {j}: value {stacked.flat[k].item()!r}{pos} would change when cast to {dtype}: the "
                    f"model was trained on {dtype} values ({allowed}); {fix}")


class ArrayRecipe(Component):
    """How loaders built from encoded stores encode new items (see the module docstring).

    Parameter: ``n_inp`` (how many stores are inputs; None: all but the last). ``setup(stores, blocks,
    batch_tfms)`` learns ``n_inp_``, ``blocks_``, ``batch_tfms_``, and per store ``item_shapes_`` /
    ``dtypes_`` (one item's shape and dtype; None for a store of Python values) and ``by_block_`` (whether
    its block encodes new values, as an image block does).

    >>> import numpy as np
    >>> from pipekit.data import ArrayRecipe, TensorStore
    >>> x, y = np.zeros((6, 3), dtype="float32"), np.arange(6)
    >>> recipe = ArrayRecipe().setup([TensorStore(x), TensorStore(y)])
    >>> recipe.n_inp_, recipe.item_shapes_, recipe.dtypes_
    (1, [[3], []], ['float32', 'int64'])
    >>> ds = recipe.new_datasets([np.ones(3), np.ones(3)])  # two new items, encoded as the training items were
    >>> len(ds), tuple(ds.gather(np.array([0, 1]))[0].shape)
    (2, (2, 3))
    """

    registry_kind = "recipe"
    param_constraints = {"n_inp": Interval(1, None, integer=True, none_ok=True)}

    def __init__(self, n_inp: int | None = None):
        self.n_inp = n_inp
        self.check_params()

    def setup(self, stores: Sequence[Store], blocks: Sequence[Any] = (), batch_tfms: Any = ()) -> ArrayRecipe:
        """Learn what one item of each store is, from the training stores."""
        if not stores or len(stores[0]) == 0:
            raise DataError("ArrayRecipe: the training stores are empty")
        self.n_inp_ = self.n_inp if self.n_inp is not None else max(1, len(stores) - 1)
        self.blocks_, self.batch_tfms_ = list(blocks), as_list(batch_tfms)
        shapes: list[list[int] | None] = []
        dtypes: list[str | None] = []
        by_block: list[bool] = []
        for j, store in enumerate(stores):
            item = _item_of(store)
            shapes.append(list(item.shape) if isinstance(item, np.ndarray) else None)
            dtypes.append(_dtype_of(store, item))
            block = self.blocks_[j] if j < len(self.blocks_) else None
            # an image store (it knows its items' source size) whose block is fitted re-encodes new images
            by_block.append(bool(block is not None and getattr(block, "is_fitted", False)
                                 and getattr(store, "source_size", lambda i: None)(0) is not None))
        self.item_shapes_, self.dtypes_, self.by_block_ = shapes, dtypes, by_block
        return self

    # ------------------------------------------------------------------ the Recipe protocol
    @property
    def fitted_blocks(self) -> list[Any]:
        self.check_is_fitted("setup(stores)")
        return self.blocks_

    def batch_pipeline(self) -> BatchPipeline:
        self.check_is_fitted("setup(stores)")
        return BatchPipeline(self.batch_tfms_)

    def dl_type(self) -> type:
        for b in getattr(self, "blocks_", []):
            loader = getattr(b, "loader_type", None)
            if callable(loader) and loader() is not None:
                return loader()
        return DataLoader

    def new_datasets(self, source: Any, with_labels: bool | None = False) -> ArrayDataset:
        """Encode new items: a list of items (each an array, or a tuple of arrays when there are several
        inputs), or one array/tensor holding a batch of items. With ``with_labels`` each item also holds
        its targets, encoded as the training targets were; ``None`` (``test_dl``'s default) keeps them when every item
        is a tuple of inputs and targets, as the training items were given (``list(zip(xs, ys))``), as fastai's."""
        self.check_is_fitted("setup(stores)")
        if with_labels is None:
            with_labels = self._items_hold_targets(source)
        n = len(self.item_shapes_) if with_labels else self.n_inp_
        stores = [self._encode(j, values) for j, values in enumerate(self._columns(source, n))]
        return ArrayDataset(stores, blocks=self.blocks_[:n], n_inp=self.n_inp_, split_idx=1)

    def _items_hold_targets(self, source: Any) -> bool:
        """Whether every item of ``source`` (a list or tuple of items) is a tuple of as many parts as a training item
        had, inputs and targets, each input of its training shape."""
        total = len(self.item_shapes_)
        if total <= self.n_inp_ or not isinstance(source, (list, tuple)) or not source:
            return False

        def fits(part: Any, shape: list[int] | None) -> bool:
            return shape is None or (hasattr(part, "shape") and list(part.shape) == shape)

        return all(isinstance(it, tuple) and len(it) == total
                   and all(fits(it[j], self.item_shapes_[j]) for j in range(self.n_inp_)) for it in source)

    def _columns(self, source: Any, n: int) -> list[list[Any]]:
        if not isinstance(source, (np.ndarray, torch.Tensor, list, tuple)):
            raise DataError(f"new items of a model built from arrays are a list of items (arrays) or one array of "
                            f"items; got {type(source).__name__}")
        items: list[Any] = list(source)
        if not items:
            raise DataError("test_dl: no items given")
        if n == 1:
            return [[it[0] if isinstance(it, tuple) and len(it) == 1 else it for it in items]]
        bad = next((i for i, it in enumerate(items) if not (isinstance(it, (tuple, list)) and len(it) == n)), None)
        if bad is not None:
            raise DataError(f"item {bad}: this model reads {n} arrays per item (its inputs"
                            f"{' and targets' if n > self.n_inp_ else ''}); give each item as a tuple of {n}")
        return [[it[j] for it in items] for j in range(n)]

    def _encode(self, j: int, values: list[Any]) -> Store:
        shape, dtype = self.item_shapes_[j], self.dtypes_[j]
        if self.by_block_[j]:
            store = self.blocks_[j].encode_new(pl.Series("item", values, dtype=pl.Object))
            got = list(_item_of(store).shape)
            if shape is not None and got != shape:
                raise DataError(f"input {j}: the model was trained on images of shape {tuple(shape)} (H, W, C); "
                                f"these are {tuple(got)} after decoding; resize them first")
            return store
        if shape is None:
            return ListStore(values)
        arrays = [to_numpy(v) for v in values]
        for i, a in enumerate(arrays):
            if list(a.shape) != shape:
                raise DataError(f"item {i}, input {j}: shape {a.shape} but the model was trained on items of shape "
                                f"{tuple(shape)}")
        stacked = np.stack(arrays)
        if stacked.dtype.kind not in "biuf":
            raise DataError(f"input {j}: items of {stacked.dtype} are not numbers; the model was trained on {dtype}")
        if dtype == "bfloat16":  # a store of bfloat16 tensors: new items are too
            return TensorStore(torch.from_numpy(stacked.astype("float32", copy=False)).to(torch.bfloat16))
        return TensorStore(_cast_new_items(stacked, str(dtype), j))
