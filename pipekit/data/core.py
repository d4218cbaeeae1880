"""DataBlock -> Datasets -> DataLoaders: the declarative recipe and what it builds."""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from pipekit.data.blocks import TransformBlock
from pipekit.data.getters import ColReader, Getter, apply_getter, getter_from_record, getter_record, item_at
from pipekit.data.items import to_items
from pipekit.data.loader import ArrayDataset, DataLoader, default_device
from pipekit.data.plotting import get_pyplot, savefig_or_show
from pipekit.data.splitters import RandomSplitter, Splitter
from pipekit.data.transform import BatchPipeline, BatchTransform, Transform, registered

RECIPES: dict[str, type] = {}


def register_recipe(cls: type) -> type:
    """Make a recipe class (anything with ``to_record``/``from_record``/``new_datasets``) loadable by name."""
    RECIPES[cls.__name__] = cls
    return cls


class PipelineStepError(ValueError):
    """A step of the data pipeline failed; the message names the step and its input."""


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, np.ndarray):
        return f"ndarray{value.shape} {value.dtype}"
    if isinstance(value, pl.Series):
        return f"Series[{value.dtype}] len {len(value)}, first {value[0]!r}" if len(value) else "Series (empty)"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    r = repr(value)
    return f"{type(value).__name__} {r[:80]}"


class Datasets(ArrayDataset):
    """The items, their split and one encoded store per block. ``ds.train``/``ds.valid`` are subsets."""

    def __init__(self, items: pl.DataFrame, splits: Sequence[np.ndarray], stores: Sequence[Any],
                 blocks: Sequence[TransformBlock], n_inp: int):
        super().__init__(stores, n_inp=n_inp, blocks=blocks)
        self.items = items
        self.splits = [np.asarray(s, dtype=np.int64) for s in splits]

    @property
    def train(self) -> ArrayDataset:
        return self.subset(self.splits[0], split_idx=0)

    @property
    def valid(self) -> ArrayDataset:
        return self.subset(self.splits[1], split_idx=1)

    @property
    def vocab(self) -> list | None:
        return self.blocks[-1].vocab if self.blocks else None

    def __repr__(self) -> str:
        return (f"Datasets(items={len(self.items)}, train={len(self.splits[0])}, valid={len(self.splits[1])}, "
                f"blocks={list(self.blocks)})")


class DataBlock:
    """A recipe: what the data is (blocks), where items come from, how to label and split them.

    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, ColReader, RandomSplitter, RegressionBlock
    >>> dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"),
    ...                    get_y=ColReader("salary"), splitter=RandomSplitter(seed=42))
    >>> dls = dblock.dataloaders(D.path("adult_sample") / "adult.csv", bs=64)
    >>> dls.vocab, len(dls.train.dataset), len(dls.valid.dataset)
    (['<50k', '>=50k'], 26049, 6512)
    """

    def __init__(self, blocks: Sequence[TransformBlock | type] = (), get_items: Callable | None = None,
                 get_x: Getter | Callable | Sequence | None = None, get_y: Getter | Callable | Sequence | None = None,
                 getters: Sequence[Getter | Callable | None] | None = None, splitter: Splitter | Callable | None = None,
                 item_tfms: Sequence[Transform] | None = None, batch_tfms: Sequence[BatchTransform] | None = None,
                 n_inp: int | None = None):
        blocks = list(blocks) if isinstance(blocks, (list, tuple)) else [blocks]
        if not blocks:
            raise ValueError("DataBlock: give at least one block, e.g. blocks=(ImageBlock, CategoryBlock)")
        self.blocks: list[TransformBlock] = []
        for b in blocks:
            b = b() if isinstance(b, type) else b
            if not isinstance(b, TransformBlock):
                raise TypeError(f"DataBlock: {b!r} is not a block; use CategoryBlock, ImageBlock, ... or a TransformBlock")
            self.blocks.append(b)
        self.n_inp = n_inp if n_inp is not None else max(1, len(self.blocks) - 1)
        if not 1 <= self.n_inp <= len(self.blocks):
            raise ValueError(f"DataBlock: n_inp={n_inp} must be between 1 and the number of blocks ({len(self.blocks)})")
        self.get_items = get_items
        self.getters = self._getters(getters, get_x, get_y)
        self.splitter = splitter if splitter is not None else RandomSplitter(0.2)
        self.item_tfms = list(item_tfms or [])
        self.batch_tfms = list(batch_tfms or [])
        for t in self.item_tfms:
            if not any(t.applies_to(b.kind) for b in self.blocks):
                raise ValueError(f"DataBlock: item transform {t!r} applies to none of the blocks "
                                 f"{[b.kind for b in self.blocks]}")
        self._fitted = False

    def _getters(self, getters: Any, get_x: Any, get_y: Any) -> list:
        n, k = len(self.blocks), self.n_inp
        if getters is not None:
            getters = list(getters)
            if len(getters) != n:
                raise ValueError(f"DataBlock: {len(getters)} getters for {n} blocks")
            return getters
        xs = list(get_x) if isinstance(get_x, (list, tuple)) else [get_x] * k
        ys = list(get_y) if isinstance(get_y, (list, tuple)) else [get_y] * (n - k)
        if len(xs) != k or len(ys) != n - k:
            raise ValueError(f"DataBlock: get_x gives {len(xs)} getter(s) for {k} input(s) and get_y {len(ys)} "
                             f"for {n - k} target(s)")
        return xs + ys

    # ------------------------------------------------------------------ building
    def items_from(self, source: Any) -> pl.DataFrame:
        if self.get_items is not None:
            found = self.get_items(source)
            items = to_items(found)
            if len(items) == 0:
                raise ValueError(f"get_items {getattr(self.get_items, '__name__', self.get_items)} found no items "
                                 f"in {source!r}; check the path and the file extensions")
        else:
            items = to_items(source)
            if len(items) == 0:
                raise ValueError(f"the source {type(source).__name__} has no rows/items")
        return items

    def _build(self, source: Any, trace: Callable[[str, Any], None] | None = None) -> Datasets:
        def step(name: str, fn: Callable[[], Any], inp: Any = None) -> Any:
            try:
                out = fn()
            except PipelineStepError:
                raise
            except Exception as e:
                where = f" on input {_short(inp)}" if inp is not None else ""
                raise PipelineStepError(f"step '{name}' failed{where}: {type(e).__name__}: {e}") from e
            if trace is not None:
                trace(name, out)
            return out

        items = step("get_items", lambda: self.items_from(source), source)
        train, valid = step(f"split ({self.splitter!r})", lambda: self.splitter(items), items)
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(f"the split {self.splitter!r} leaves the {'training' if len(train) == 0 else 'validation'} "
                             f"set empty ({len(train)} train / {len(valid)} valid of {len(items)} items); "
                             "change the splitter's settings")
        if np.intersect1d(train, valid).size:
            raise ValueError(f"the split {self.splitter!r} puts {np.intersect1d(train, valid).size} item(s) in both "
                             "the training and the validation set")
        in_split = len(train) + len(valid)
        if in_split < len(items):
            # items that belong to no subset are left out, and said so: nothing disappears silently
            keep = np.sort(np.concatenate([train, valid]))
            left = np.setdiff1d(np.arange(len(items)), keep)
            warnings.warn(f"{len(left)} of {len(items)} items are in neither the training nor the validation set "
                          f"and are left out (first: {item_at(items, int(left[0]))!r})", stacklevel=3)
            remap = np.full(len(items), -1, dtype=np.int64)
            remap[keep] = np.arange(len(keep))
            items = items[keep]
            train, valid = remap[train], remap[valid]
        stores = []
        for j, (block, getter) in enumerate(zip(self.blocks, self.getters)):
            role = f"{'x' if j < self.n_inp else 'y'}{j if j < self.n_inp else j - self.n_inp}"
            name = f"{type(block).__name__} [{role}]"
            raw = step(f"{name} getter {getattr(getter, '__name__', repr(getter))}",
                       lambda g=getter: apply_getter(g, items), item_at(items, int(train[0])))
            if isinstance(getter, Getter):
                getter.check_build(items, raw)
            step(f"{name} check", lambda b=block, r=raw, ro=role: b.check_raw(r, ro))

            def sub(label: str, value: Any, n=name) -> None:
                if trace is not None:
                    trace(f"{n} {label}", value)

            stores.append(step(f"{name} encode", lambda b=block, r=raw: b.build(r, train, self.item_tfms, sub), raw))
        self._fitted = True
        return Datasets(items, [train, valid], stores, self.blocks, self.n_inp)

    def datasets(self, source: Any) -> Datasets:
        """Collect, split and encode the items of ``source`` (transforms fitted on the training rows)."""
        return self._build(source)

    def batch_pipeline(self) -> BatchPipeline:
        tfms: list[BatchTransform] = []
        seen: set[str] = set()
        for t in [bt for b in self.blocks for bt in b.batch_tfms] + self.batch_tfms:
            if type(t).__name__ not in seen or t in self.batch_tfms:
                seen.add(type(t).__name__)
                tfms.append(t)
        return BatchPipeline(tfms)

    def dataloaders(self, source: Any, bs: int = 64, val_bs: int | None = None, shuffle: bool = True,
                    seed: int | None = None, device: str | torch.device | None = None,
                    num_workers: int | None = None, drop_last: bool | None = None) -> DataLoaders:
        """Build the Datasets and wrap train/valid in DataLoaders (train shuffled and augmented)."""
        if not isinstance(bs, (int, np.integer)) or isinstance(bs, bool) or bs <= 0:
            raise ValueError(f"dataloaders: bs must be a positive integer, got {bs!r}")
        dsets = self.datasets(source)
        return DataLoaders.from_datasets(dsets, self, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                         num_workers=num_workers, drop_last=drop_last)

    def dl_type(self) -> type[DataLoader]:
        for b in self.blocks:
            if b.dl_type is not None:
                return b.dl_type
        return DataLoader

    # ------------------------------------------------------------------ new data, export
    def new_datasets(self, source: Any, with_labels: bool = False) -> ArrayDataset:
        """Encode new items with the fitted state (no refitting): inputs only unless ``with_labels``."""
        if not self._fitted:
            raise RuntimeError("DataBlock.new_datasets: build the data (dataloaders/datasets) first")
        items = source if isinstance(source, pl.DataFrame) else to_items(source)
        if len(items) == 0:
            raise ValueError("test_dl: no items given")
        n = len(self.blocks) if with_labels else self.n_inp
        stores = []
        for block, getter in zip(self.blocks[:n], self.getters[:n]):
            raw = apply_getter(self._raw_value_getter(getter, items), items)
            block.check_raw(raw, "new data")
            stores.append(block.encode_new(raw))
        return ArrayDataset(stores, n_inp=self.n_inp, blocks=self.blocks[:n], split_idx=1)

    @staticmethod
    def _raw_value_getter(getter: Any, items: pl.DataFrame) -> Any:
        """New data given as bare values (``test_dl(["a text"])``) rather than rows: a one-column
        ColReader without prefix/suffix then reads those values directly."""
        if (isinstance(getter, ColReader) and isinstance(getter.cols, str) and getter.cols not in items.columns
                and items.columns == ["item"] and not getter.pref and not getter.suffix):
            return None
        return getter

    def to_record(self) -> dict[str, Any]:
        return {"name": "DataBlock", "blocks": [b.to_record() for b in self.blocks],
                "getters": [getter_record(g) for g in self.getters], "n_inp": self.n_inp,
                "batch_tfms": self.batch_pipeline().to_records(),
                "dl_type": self.dl_type().__name__}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DataBlock:
        blocks = [TransformBlock.from_record(r) for r in record["blocks"]]
        db = cls.__new__(cls)
        db.blocks, db.n_inp = blocks, record["n_inp"]
        db.getters = [getter_from_record(r) for r in record["getters"]]
        db.get_items, db.splitter, db.item_tfms = None, None, []
        db.batch_tfms = [Transform.from_record(r) for r in record.get("batch_tfms", [])]
        for b in db.blocks:
            b.batch_tfms = []
        db._fitted = True
        return db

    # ------------------------------------------------------------------ summary
    def summary(self, source: Any, bs: int = 4, show: bool = True) -> str:
        """Walk one batch through every step, printing types and shapes; a failing step is named.

        Returns the text that was printed.
        """
        out = io.StringIO()

        def say(line: str) -> None:
            out.write(line + "\n")
            if show:
                print(line)

        def trace(name: str, value: Any) -> None:
            if name == "get_items":
                say(f"Collecting items: {len(value)} rows, columns {value.columns}")
                say(f"  first item: {item_at(value, 0)!r}")
            elif name.startswith("split"):
                say(f"Splitting with {name[7:-1]}: {len(value[0])} train, {len(value[1])} valid")
            elif " getter " in name:
                say(f"{name.split(' getter ')[0]}: getter {name.split(' getter ')[1]} -> {_short(value)}")
            elif name.endswith(" check") or name.endswith(" encode"):
                if name.endswith(" encode"):
                    say(f"  stored as {value!r}")
            else:
                block, _, tname = name.partition("] ")
                say(f"  {tname}: {_short(value[:1] if hasattr(value, '__getitem__') and not isinstance(value, dict) else value)}")

        say(f"DataBlock summary: {len(self.blocks)} block(s) {[type(b).__name__ for b in self.blocks]}, n_inp={self.n_inp}")
        try:
            dsets = self._build(source, trace)
            dl = self.dl_type()(dsets.train, bs=bs, shuffle=False, seed=0, device="cpu", num_workers=0,
                                batch_tfms=self.batch_pipeline(), augment=True)
            say(f"Collating a batch of {bs} with {type(dl).__name__}")
            raw_batch = dl.create_batch(dl.batch_plan(0)[0])
            say(f"  {_short(tuple(raw_batch))}")
            batch = tuple(raw_batch)
            ctx = dl.context(0, 0)
            if not len(dl.batch_tfms):
                say("No batch transforms")
            for t in dl.batch_tfms:
                try:
                    batch = t.encode(batch, ctx)  # type: ignore[call-arg]
                except Exception as e:
                    raise PipelineStepError(f"step 'batch transform {t!r}' failed on input {_short(batch)}: "
                                            f"{type(e).__name__}: {e}") from e
                say(f"Batch transform {t!r}: {_short(batch)}")
        except PipelineStepError as e:
            say(f"FAILED: {e}")
            if not show:
                raise
            raise
        return out.getvalue()

    def __repr__(self) -> str:
        return (f"DataBlock(blocks={self.blocks}, getters={self.getters}, splitter={self.splitter!r}, "
                f"item_tfms={self.item_tfms}, batch_tfms={self.batch_tfms}, n_inp={self.n_inp})")


register_recipe(DataBlock)


class DataLoaders:
    """The training and validation loaders (and how to make more for new data).

    ``recipe`` is what built them (a DataBlock, a Tabular, ...): it encodes new items for ``test_dl``
    and is what an exported model carries instead of pickled code.
    """

    def __init__(self, *loaders: DataLoader, recipe: Any = None, device: str | torch.device | None = None):
        self.loaders = list(loaders)
        self.recipe = recipe
        self._device = torch.device(device) if device is not None else (
            loaders[0].device if loaders else default_device())

    @classmethod
    def from_datasets(cls, dsets: Datasets, recipe: Any, bs: int = 64, val_bs: int | None = None,
                      shuffle: bool = True, seed: int | None = None, device: Any = None,
                      num_workers: int | None = None, drop_last: bool | None = None,
                      batch_tfms: BatchPipeline | None = None, dl_type: type[DataLoader] | None = None) -> DataLoaders:
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        dl_type = dl_type or (recipe.dl_type() if hasattr(recipe, "dl_type") else DataLoader)
        bt = batch_tfms if batch_tfms is not None else (recipe.batch_pipeline() if hasattr(recipe, "batch_pipeline")
                                                         else BatchPipeline([]))
        train = dl_type(dsets.train, bs=bs, shuffle=shuffle, drop_last=shuffle if drop_last is None else drop_last,
                        seed=seed, device=device, batch_tfms=bt, num_workers=num_workers, augment=True)
        valid = dl_type(dsets.valid, bs=val_bs or bs, shuffle=False, seed=seed + 1, device=device, batch_tfms=bt,
                        num_workers=num_workers, augment=False)
        dls = cls(train, valid, recipe=recipe, device=train.device)
        dls.datasets = dsets
        return dls

    @classmethod
    def from_stores(cls, train_stores: Sequence[Any], valid_stores: Sequence[Any], blocks: Sequence[Any] = (),
                    kinds: Sequence[str] | None = None, n_inp: int | None = None, recipe: Any = None, bs: int = 64,
                    val_bs: int | None = None, seed: int | None = None, device: Any = None,
                    batch_tfms: Sequence[BatchTransform] | None = None, dl_type: type[DataLoader] = DataLoader,
                    num_workers: int | None = None, drop_last: bool = True) -> DataLoaders:
        """Loaders straight from already-encoded stores (domains that encode columns themselves)."""
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        bt = BatchPipeline(batch_tfms or [])
        tr = ArrayDataset(train_stores, kinds, n_inp, blocks=blocks, split_idx=0)
        va = ArrayDataset(valid_stores, kinds, n_inp, blocks=blocks, split_idx=1)
        train = dl_type(tr, bs=bs, shuffle=True, drop_last=drop_last, seed=seed, device=device, batch_tfms=bt,
                        num_workers=num_workers, augment=True)
        valid = dl_type(va, bs=val_bs or bs, shuffle=False, seed=seed + 1, device=device, batch_tfms=bt,
                        num_workers=num_workers, augment=False)
        return cls(train, valid, recipe=recipe, device=train.device)

    # ------------------------------------------------------------------ access
    def __getitem__(self, i: int) -> DataLoader:
        return self.loaders[i]

    def __len__(self) -> int:
        return len(self.loaders)

    @property
    def train(self) -> DataLoader:
        return self.loaders[0]

    @property
    def valid(self) -> DataLoader:
        if len(self.loaders) < 2:
            raise AttributeError("these DataLoaders have no validation loader")
        return self.loaders[1]

    @property
    def train_ds(self) -> Any:
        return self.train.dataset

    @property
    def valid_ds(self) -> Any:
        return self.valid.dataset

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: str | torch.device) -> DataLoaders:
        self._device = torch.device(device)
        for dl in self.loaders:
            dl.to(self._device)
        return self

    @property
    def blocks(self) -> tuple:
        if self.recipe is not None and hasattr(self.recipe, "blocks"):
            return tuple(self.recipe.blocks)
        return self.train.blocks if self.loaders else ()

    @property
    def n_inp(self) -> int:
        if self.recipe is not None and hasattr(self.recipe, "n_inp"):
            return self.recipe.n_inp
        return self.train.n_inp

    @property
    def y_block(self) -> Any:
        b = self.blocks
        return b[self.n_inp] if len(b) > self.n_inp else None

    @property
    def vocab(self) -> list | None:
        """The target's vocab; for data with no target (a language model) the input's vocab."""
        yb = self.y_block
        if yb is not None:
            return getattr(yb, "vocab", None)
        return getattr(self.blocks[0], "vocab", None) if self.blocks else None

    @property
    def c(self) -> int | None:
        yb = self.y_block
        return getattr(yb, "c", None) if yb is not None else None

    @property
    def loss_kind(self) -> str | None:
        yb = self.y_block
        return getattr(yb, "loss_kind", None) if yb is not None else None

    def one_batch(self) -> tuple:
        return self.train.one_batch()

    # ------------------------------------------------------------------ new data
    def test_dl(self, items: Any, with_labels: bool = False, bs: int | None = None, **kwargs: Any) -> DataLoader:
        """A loader over new items with the validation-time transforms (no augmentation, no shuffling)."""
        if self.recipe is None or not hasattr(self.recipe, "new_datasets"):
            raise RuntimeError("test_dl: these DataLoaders were built without a recipe that can encode new items")
        ds = self.recipe.new_datasets(items, with_labels=with_labels)
        template = self.valid if len(self.loaders) > 1 else (self.loaders[0] if self.loaders else None)
        if template is not None:
            return template.new(dataset=ds, shuffle=False, augment=False, bs=bs or template.bs, **kwargs)
        dl_type = self.recipe.dl_type() if hasattr(self.recipe, "dl_type") else DataLoader
        bt = self.recipe.batch_pipeline() if hasattr(self.recipe, "batch_pipeline") else None
        return dl_type(ds, bs=bs or 64, shuffle=False, device=self.device, batch_tfms=bt, augment=False,
                       **{k: v for k, v in kwargs.items() if k in ("num_workers",)})

    # ------------------------------------------------------------------ showing
    def show_batch(self, max_n: int = 9, nrows: int | None = None, dl: DataLoader | None = None,
                   path: str | None = None, show: bool = True) -> Any:
        """Draw ``max_n`` decoded items of a training batch (PNG when headless). Returns the figure path."""
        dl = dl or self.train
        rows = dl.decode_batch(dl.one_batch(), max_n=max_n)
        blocks = dl.blocks
        plt = get_pyplot()
        n = len(rows)
        nrows = nrows or int(np.ceil(np.sqrt(n)))
        ncols = int(np.ceil(n / nrows))
        fig, axs = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3 * nrows), squeeze=False)
        for ax in axs.flat[n:]:
            ax.axis("off")
        n_inp = dl.n_inp
        # spatial targets (masks, points, boxes) are drawn on the image, not written in the title
        drawn = {"mask", "points", "bbox", "bbox_label"}
        for ax, row in zip(axs.flat, rows):
            title = " / ".join(str(v) for j, v in enumerate(row[n_inp:], n_inp)
                               if not (j < len(blocks) and getattr(blocks[j], "kind", "") in drawn)) or None
            if blocks:
                blocks[0].show(ax, row[0], title=title)
                for b, v in zip(blocks[n_inp:], row[n_inp:]):
                    if getattr(b, "kind", "") in ("mask", "points", "bbox"):
                        b.show(ax, v)
            else:
                ax.axis("off")
                ax.text(0.5, 0.5, str(row[0]))
        return savefig_or_show(fig, path, name="show_batch") if show else fig

    # ------------------------------------------------------------------ export
    def state(self) -> dict[str, Any]:
        """The recipe with every fitted state, as plain data (what an exported model carries)."""
        if self.recipe is None or not hasattr(self.recipe, "to_record"):
            raise RuntimeError("these DataLoaders have no exportable recipe")
        tmpl = self.valid if len(self.loaders) > 1 else self.train
        return {"recipe": self.recipe.to_record(), "bs": tmpl.bs, "kinds": list(tmpl.kinds),
                "n_inp": self.n_inp}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | torch.device = "cpu") -> DataLoaders:
        """DataLoaders with no data, able to encode new items exactly as at training time."""
        rec = state["recipe"]
        recipe = registered(rec["name"], RECIPES).from_record(rec)
        return cls(recipe=recipe, device=device)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={len(dl.dataset)} items/{len(dl)} batches"
                          for n, dl in zip(("train", "valid", "extra"), self.loaders))
        return f"DataLoaders({parts}, device={self.device}, recipe={type(self.recipe).__name__})"
