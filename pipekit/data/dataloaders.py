"""Datasets (items, split, one encoded store per block) and DataLoaders (train/valid loaders + recipe)."""
from __future__ import annotations

import copy
import inspect
import io
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, overload

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from pipekit.core.component import Component
from pipekit.core.errors import DataError, ExportError, FieldError, ParameterError, PipelineStepError, warn
from pipekit.core.protocols import Loader
from pipekit.core.validate import (Interval, argument_names, bs_or_batch_size, check, check_arguments,
                                   check_positive_int)
from pipekit.data.arrays import ArrayRecipe
from pipekit.data.getters import item_at
from pipekit.data.lists import fastuple
from pipekit.data.loader import (ArrayDataset, DataLoader, ForeignLoader, ItemsDataset, default_device, loader_seed, pick,
                                 recipe_item_tfms, stack_items, table_attribute)
from pipekit.data.splitters import check_disjoint, left_out_message, row_index
from pipekit.data.store import ListStore, TensorStore, gathering
from pipekit.data.transform import (BatchPipeline, BatchTransform, Pipeline, as_list, depends_on_split, encode_items,
                                    grouped_batch_tfms, runs_on_split)


def short_repr(value: Any) -> str:
    """A one-line description of a value flowing through the pipeline (type, shape, first value)."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, np.ndarray):
        return f"ndarray{value.shape} {value.dtype}"
    if isinstance(value, pl.Series):
        return f"Series[{value.dtype}] len {len(value)}, first {value[0]!r}" if len(value) else "Series (empty)"
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return repr(value[:20])[:-1] + (", ...]" if len(value) > 20 else "]")
    if isinstance(value, (tuple, list)):  # a batch's parts, or a long list of paths: the first few, and how many
        more = f", ... ({len(value)} in all)" if len(value) > 5 else ""
        return "(" + ", ".join(short_repr(v) for v in value[:5]) + more + ")"
    if isinstance(value, pl.DataFrame):
        cols = value.columns
        return f"DataFrame ({len(value)} rows, columns {cols[:10]}{' ...' if len(cols) > 10 else ''})"
    return f"{type(value).__name__} {repr(value)[:80]}"


def walk_batch(dl: DataLoader, say: Callable[[str], None]) -> tuple:
    """Collate the first batch of ``dl`` (in plan order) and apply each batch transform, saying what comes
    out of every step; a failing transform raises :class:`PipelineStepError` naming it and its input.

    >>> from pipekit.data import DataLoader
    >>> from pipekit.data import ArrayDataset
    >>> from pipekit.data import TensorStore
    >>> dl = DataLoader(ArrayDataset([TensorStore(torch.arange(6.0)), TensorStore(torch.arange(6))], n_inp=1), bs=4)
    >>> _ = walk_batch(dl, print)
    Collating a batch of 4 with DataLoader
      (Tensor(4,) float32, Tensor(4,) int64)
    No batch transforms
    """
    entry = dl.batch_plan(0)[0]
    say(f"Collating a batch of {len(entry) if hasattr(entry, '__len__') else dl.bs} with {type(dl).__name__}")
    with gathering((getattr(dl, "seed", 0), 0, 0), 0 if getattr(dl, "augment", False) else 1):  # the items of the loader's first batch, as it makes it
        batch = tuple(dl.create_batch(entry))
    say(f"  {short_repr(batch)}")
    ctx = dl.context(0, 0, entry)
    if not len(dl.batch_tfms):
        say("No batch transforms")
    for t in dl.batch_tfms:
        try:
            batch = t.encode(batch, ctx)  # type: ignore[call-arg]
        except Exception as e:
            raise PipelineStepError(f"step 'batch transform {t!r}' failed on input {short_repr(batch)}: "
                                    f"{type(e).__name__}: {e}") from e
        say(f"Batch transform {t!r}: {short_repr(batch)}")
    return batch


def learned_state(obj: Any, say: Callable[[str], None], seen: set[int] | None = None) -> None:
    """Say what every fitted component inside ``obj`` learned (vocabularies, statistics, fill values),
    walking its parameters and its fitted state, each component once.

    >>> import polars as pl
    >>> from pipekit.data import CategoryBlock
    >>> block = CategoryBlock()
    >>> _ = block.setup(pl.Series(["dog", "cat", "dog"]), np.arange(3))
    >>> learned_state(block, print)
      Categorize learned vocab_=['cat', 'dog']
    """
    seen = set() if seen is None else seen
    if isinstance(obj, (list, tuple, dict)):
        for v in obj.values() if isinstance(obj, dict) else obj:
            learned_state(v, say, seen)
        return
    if not isinstance(obj, Component) or id(obj) in seen:
        return
    seen.add(id(obj))
    state = obj.fitted_state()
    # nested components speak for themselves below; an empty list of them (no transforms) says nothing
    plain = {k: v for k, v in state.items()
             if not isinstance(v, Component) and not (isinstance(v, (list, tuple, dict)) and not v)
             and not (isinstance(v, (list, tuple)) and any(isinstance(x, Component) for x in v))}
    if plain:
        say(f"  {type(obj).__name__} learned " + ", ".join(f"{k}={short_repr(v)}" for k, v in plain.items()))
    for v in [*obj.get_params(deep=False).values(), *state.values()]:
        learned_state(v, say, seen)


def vocab_block(blocks: Sequence[Any], n_inp: int) -> Any:
    """The block whose vocab is the data's: the first target that has one (boxes have none, their labels do), else
    the first target; with no target, the first input (a language model's text)."""
    targets = list(blocks[n_inp:])
    return next((b for b in targets if b.vocab is not None), targets[0] if targets else (blocks[0] if blocks else None))


def several_target_blocks(blocks: Sequence[Any], n_inp: int) -> list[Any]:
    """The targets, in order, when there are two or more (``blocks=(ImageBlock, CategoryBlock, RegressionBlock),
    n_inp=1``), else ``[]``: such data's ``c`` is one size per target, as fastai's (``[2, 1]``), and a model for it
    gives their outputs side by side. A block that labels the items of another target (``BBoxLblBlock``, the label
    of each box of a ``BBoxBlock``; it has a ``labels_geometry``) is part of that target, so boxes with their labels
    are one target."""
    targets = list(blocks[n_inp:])
    own = [b for b in targets if getattr(b, "labels_geometry", None) is None]
    return targets if len(own) > 1 else []


def _block_classes(kind: type) -> list[Any]:
    """Every subclass of ``kind`` imported so far, depth first."""
    out: list[Any] = []
    sub: Any
    for sub in kind.__subclasses__():
        out += [sub, *_block_classes(sub)]
    return out


def target_block_of_steps(steps: Sequence[Any]) -> Any:
    """The fitted block a target made by ``steps`` (a ``Datasets``' target transforms) is, as a DataBlock's target
    would be: the last step that is the column transform of a block with a ``loss_kind`` (``Categorize``:
    ``CategoryBlock``, ``MultiCategorize``: ``MultiCategoryBlock``, ``ToFloat``: ``RegressionBlock``), in a block of
    that class holding it fitted; None when no step is. Each block says what its column transform is
    (``type_transforms``), so a block added later is found the same way."""
    from pipekit.data.blocks import TransformBlock  # the blocks build on this module's loaders

    makers: list[tuple[type, Any]] = []
    for cls in dict.fromkeys(_block_classes(TransformBlock)):
        if cls.loss_kind is None:
            continue
        try:
            made = cls().type_transforms()
        except Exception:  # a block that needs its parameters (codes, a size) makes its transforms only with them
            continue
        makers += [(type(t), cls) for t in made]
    for step in reversed(list(steps)):
        maker = next((c for kind, c in makers if type(step) is kind), None)
        if maker is not None:
            block = maker()
            block.tfms_, block.batch_tfms_ = [step], []
            return block
    return None


class Vocabs(list):
    """The vocabs of several blocks, in block order (a text classifier's ``dls.vocab``: ``[tokens, classes]``): a
    list, indexed by block. Indexed by predictions (a tensor or array of class indices, as one vocab is), it says
    which block's vocab names them, where a list would give Python's bare TypeError.

    >>> import torch
    >>> v = Vocabs([["xxunk", "the"], ["negative", "positive"]])
    >>> v[1], v == [["xxunk", "the"], ["negative", "positive"]]
    (['negative', 'positive'], True)
    >>> v[torch.tensor([1, 0])]
    Traceback (most recent call last):
    ...
    TypeError: dls.vocab holds the vocab of each of 2 blocks (a text classifier's: [tokens, classes]), so it is indexed by block first: dls.vocab[-1][preds.argmax(1)] names the predicted classes (or learn.dls.vocab[1])
    """

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, (int, slice)) and hasattr(i, "__len__") or (
                hasattr(i, "ndim") and getattr(i, "ndim", 0) > 0):
            raise TypeError(f"dls.vocab holds the vocab of each of {len(self)} blocks (a text classifier's: [tokens, "
                            "classes]), so it is indexed by block first: dls.vocab[-1][preds.argmax(1)] names the "
                            "predicted classes (or learn.dls.vocab[1])")
        return super().__getitem__(i)


def _one_or_list(vocabs: list[Any]) -> Any:
    """None for no vocab, the vocab itself for one, else the list of them (fastai's gathering of ``vocab``)."""
    return None if not vocabs else vocabs[0] if len(vocabs) == 1 else Vocabs(vocabs)


def data_vocab(blocks: Sequence[Any], n_inp: int) -> Any:
    """The data's vocab (``dls.vocab``), as fastai's: the vocab of every block that has one, inputs and targets, in
    block order. One such block gives its vocab alone (an image classifier's classes ``['3', '7']``, a language
    model's tokens, a table's target classes); several give the list of them: a text classifier's
    ``[tokens, classes]`` (``dls.vocab[0]`` the text's tokens, ``dls.vocab[1]`` the classes), two categories'
    ``[['3', '7'], ['big', 'small']]``. None when no block has one. The classes alone are :func:`target_vocab`'s."""
    return _one_or_list([b.vocab for b in blocks if b.vocab is not None])


def target_vocab(blocks: Sequence[Any], n_inp: int) -> Any:
    """The classes a model's outputs are named by: the vocab of the one target that has one (boxes have none,
    their labels do), or for several such targets the list of their vocabs in target order; never an input's (a
    text classifier's tokens, which :func:`data_vocab` lists first). None when no target has one (a regression, a
    language model)."""
    return _one_or_list([b.vocab for b in blocks[n_inp:] if b.vocab is not None])


def classes_vocab(data: Any) -> Any:
    """:func:`target_vocab` of loaders or of a dataset (what predictions, interpretation and exports name the
    classes by, where ``dls.vocab`` may list a text's tokens first). Loaders of a ``Datasets``' items (no blocks)
    give the vocab of the target parts; those of a ``TfmdLists``' items its vocab. None for data with neither.

    >>> from functools import partial
    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    >>> from pipekit.data.dataloaders import classes_vocab
    >>> from pipekit.vision import ImageBlock
    >>> items = partial(get_image_files, folders=["train", "valid"])     # mnist_tiny's test folder has no labels
    >>> dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=items, get_y=parent_label,
    ...                 splitter=GrandparentSplitter()).dataloaders(D.path("mnist_tiny"), bs=64)
    >>> classes_vocab(dls), classes_vocab(dls.train_ds)
    (['3', '7'], ['3', '7'])
    """
    blocks = getattr(data, "blocks", None)
    if blocks:
        return target_vocab(blocks, data.n_inp)
    loaders = getattr(data, "loaders", None)
    first = loaders[0] if loaders else data
    source = getattr(getattr(first, "dataset", first), "source", None)
    tls, n_inp = getattr(source, "tls", None), getattr(source, "n_inp", None)
    if isinstance(tls, list) and isinstance(n_inp, int):
        return _one_or_list([tl.vocab for tl in tls[n_inp:] if tl.vocab is not None])
    return getattr(first, "vocab", None)


def _vocab_size(vocab: Any) -> int | None:
    """``dls.c`` of loaders without blocks (a ``Datasets``' or ``TfmdLists``' items), as fastai's: the length of their
    vocab (``['3', '7']``: 2); None without one. A vocab per target (``[['3', '7'], ['even', 'odd']]``) gives None:
    a list ``dls.c`` tells a learner that target blocks read each target's slice of the outputs, and such loaders
    have none.

    >>> _vocab_size(["3", "7"]), _vocab_size([["3", "7"], ["even", "odd"]]), _vocab_size(None)
    (2, None, None)
    """
    if isinstance(vocab, (str, bytes)) or not isinstance(vocab, Sequence):
        return None
    if any(isinstance(v, Sequence) and not isinstance(v, (str, bytes)) for v in vocab):
        return None
    return len(vocab)


def _vocab_shown(vocab: Any) -> str:
    """A vocab's first 10 entries; a vocab per block (``[tokens, classes]``) as the first 10 of each.

    >>> _vocab_shown([str(i) for i in range(12)]), _vocab_shown([["a", "b"], ["x"]])
    ("['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] ...", "[['a', 'b'], ['x']]")
    """
    if _vocab_size(vocab) is None and isinstance(vocab, Sequence) and not isinstance(vocab, (str, bytes)):
        return f"[{', '.join(_vocab_shown(v) for v in vocab)}]"
    return f"{vocab[:10]!r}{' ...' if len(vocab) > 10 else ''}"


class ItemList(Sequence):
    """The source items of one subset, in the subset's order, as a getter sees each one: a ``Path`` for file
    items, the value for items of one column, else a dict of the row. Read on demand from the items table.

    ``dls.valid_ds.items[i]`` is the item of validation position ``i`` (a top loss's index, a prediction's row).
    """

    def __init__(self, frame: pl.DataFrame, rows: np.ndarray):
        self.frame, self.rows = frame, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        """One item for a position (a Python int, a numpy integer or a 0-d integer tensor, as ``top_losses``
        gives), a list of items for a slice or for an integer list, array or tensor of positions."""
        return pick(i, len(self), "this subset", lambda p: item_at(self.frame, int(self.rows[p])))

    def __repr__(self) -> str:
        first = ", ".join(repr(v) for v in self[:3])
        return f"ItemList({len(self)} items: [{first}{', ...' if len(self) > 3 else ''}])"


class DatasetSplit(ArrayDataset):
    """One subset of :class:`Datasets` (``dls.train_ds``, ``dls.valid_ds``): its stores' rows, plus the source
    items they were made from (``items``) and the target's ``vocab``.

    >>> from functools import partial
    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    >>> from pipekit.vision import ImageBlock
    >>> items = partial(get_image_files, folders=["train", "valid"])     # mnist_tiny's test folder has no labels
    >>> dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=items, get_y=parent_label,
    ...                 splitter=GrandparentSplitter()).dataloaders(D.path("mnist_tiny"), bs=64)
    >>> dls.valid_ds.items[0].relative_to(D.path("mnist_tiny")).as_posix(), dls.train_ds.vocab
    ('valid/3/7006.png', ['3', '7'])
    """

    def __init__(self, stores: Sequence[Any], blocks: Sequence[Any], n_inp: int | None, idxs: np.ndarray,
                 split_idx: int | None, frame: pl.DataFrame, table: Any = None, recipe: Any = None):
        super().__init__(stores, blocks, n_inp, idxs, split_idx)
        #: the fitted recipe the items were encoded with (its ``item_tfms``: a loader's ``after_item``)
        self.frame, self.table, self.recipe = frame, table, recipe

    def __getattr__(self, name: str) -> Any:
        return table_attribute(self, name)

    @property
    def items(self) -> ItemList:
        """The source item of each position of this subset (see :class:`ItemList`)."""
        return ItemList(self.frame, self.idxs)

    @property
    def vocab(self) -> Any:
        """As :attr:`DataLoaders.vocab`."""
        return data_vocab(self.blocks, self.n_inp)

    def subset(self, positions: np.ndarray, split_idx: int | None = None) -> DatasetSplit:
        return DatasetSplit(self.stores, self.blocks, self.n_inp, self.idxs[np.asarray(positions, dtype=np.int64)],
                            split_idx, self.frame, recipe=self.recipe)  # a part of a split: the table's rows are not


class SampledLoaders:
    """fastai's ``weighted_dataloaders`` and ``partial_dataloaders`` for a source whose ``dataloaders`` builds its
    loaders (:class:`Datasets`, :class:`TfmdLists`, :class:`TfmdDatasets`)."""

    dataloaders: Callable[..., DataLoaders]

    def weighted_dataloaders(self, wgts: Any, bs: int = 64, n: int | None = None, **kwargs: Any) -> DataLoaders:
        """:meth:`dataloaders` whose training loader draws each epoch's items with replacement, item ``i`` of the
        training set with probability proportional to ``wgts[i]`` (one weight per training item), ``n`` of them
        (default: as many as the training set has), as fastai's ``weighted_dataloaders``; the same seed draws the
        same items (see :meth:`DataLoader.weighted <pipekit.data.loader.DataLoader.weighted>`)."""
        return weighted_loaders(self.dataloaders(bs=bs, **kwargs), wgts, n=n)

    def partial_dataloaders(self, partial_n: int, bs: int = 64, **kwargs: Any) -> DataLoaders:
        """:meth:`dataloaders` whose training loader reads ``partial_n`` of the training items each epoch, drawn
        at random without replacement, another draw each epoch, as fastai's ``partial_dataloaders``; the same seed
        draws the same items (see :meth:`DataLoader.partial <pipekit.data.loader.DataLoader.partial>`)."""
        return partial_loaders(self.dataloaders(bs=bs, **kwargs), partial_n)


class Datasets(ArrayDataset, SampledLoaders):
    """The items, their split and one encoded store per block. ``ds.train``/``ds.valid`` are subsets;
    ``recipe`` is the fitted recipe that built them.

    ``DataBlock.datasets(source)`` builds one. fastai's ``Datasets(items, [x_tfms, y_tfms], splits=...)`` (chapter
    11's) gives a :class:`TfmdDatasets`: one :class:`~pipekit.data.TfmdLists` per part of an item.

    >>> import polars as pl
    >>> from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, Datasets, RegressionBlock
    >>> df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"], "is_valid": [False, False, False, True]})
    >>> dsets = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("x"), get_y=ColReader("y"),
    ...                   splitter=ColSplitter()).datasets(df)
    >>> isinstance(dsets, Datasets), len(dsets.train), len(dsets.valid), dsets.vocab
    (True, 3, 1, ['a', 'b'])
    >>> dsets.train[0], dsets.decode(dsets.valid[0])
    ((tensor([1.]), tensor(0)), (4.0, 'b'))
    """

    #: what ``inspect.signature(Datasets)`` shows: fastai's call (set below, from :class:`TfmdDatasets`)
    __signature__: ClassVar[inspect.Signature]
    #: set by the constructor DataBlock.datasets calls (hidden from type checkers, which see the two calls below)
    items: pl.DataFrame
    recipe: Any
    table: Any
    splits: list[np.ndarray]
    #: set by DataBlock.datasets: which of the items get_items listed the split placed (weighted_dataloaders' map)
    placed: np.ndarray

    # type checkers read the constructor from these two calls, as __new__ dispatches them: what DataBlock.datasets
    # builds, and fastai's Datasets(items, [x_tfms, y_tfms], splits=...) (chapter 11's), which gives a TfmdDatasets
    @overload
    def __new__(cls, items: pl.DataFrame, splits: Sequence[np.ndarray], stores: Sequence[Any],
                blocks: Sequence[Any], n_inp: int, recipe: Any = None, table: Any = None) -> Datasets: ...

    @overload
    def __new__(  # type: ignore[misc]  # not a Datasets: fastai's call gives what runs it, a TfmdDatasets
            cls, items: Any = None, tfms: Any = None, tls: Sequence[TfmdLists] | None = None, n_inp: int | None = None,
            splits: Sequence[Sequence[int]] | Sequence[np.ndarray] | None = None) -> TfmdDatasets: ...

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        try:  # the parameters are bound here so that a fastai-style call is named, not a bare TypeError
            if args or kwargs:  # (a copy makes the object without arguments)
                inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError as e:
            if cls is Datasets:  # fastai's Datasets(items, [x_tfms, y_tfms], splits=...): one TfmdLists per part
                try:
                    inspect.signature(TfmdDatasets.__init__).bind(None, *args, **kwargs)
                except TypeError:
                    pass
                else:
                    return TfmdDatasets(*args, **kwargs)
            raise ParameterError(
                f"{cls.__name__} does not take these arguments ({e}). A Datasets is fastai's Datasets(items, "
                "tfms=[x_tfms, y_tfms], splits=[train_idx, valid_idx], n_inp=None) (one list of transforms per part "
                "of an item), or what DataBlock.datasets builds (items, splits, stores, blocks, n_inp), e.g. for image "
                "files and their folder's label DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=parent_label, "
                "splitter=IndexSplitter(valid_idx)).datasets(items); one list of items through transforms is "
                "TfmdLists(items, tfms, splits=[train_idx, valid_idx])") from None
        return super().__new__(cls)

    if not TYPE_CHECKING:  # type checkers take the constructor from __new__'s calls above
        def __init__(self, items: pl.DataFrame, splits: Sequence[np.ndarray], stores: Sequence[Any],
                     blocks: Sequence[Any], n_inp: int, recipe: Any = None, table: Any = None):
            super().__init__(stores, blocks=blocks, n_inp=n_inp)
            self.items, self.recipe, self.table = items, recipe, table
            self.splits = [np.asarray(s, dtype=np.int64) for s in splits]

    def subset(self, positions: np.ndarray, split_idx: int | None = None) -> DatasetSplit:
        whole_split = split_idx in (0, 1) and positions is self.splits[split_idx]
        table = (self.table.train if split_idx == 0 else self.table.valid) if (
            self.table is not None and whole_split) else None
        return DatasetSplit(self.stores, self.blocks, self.n_inp, self.idxs[np.asarray(positions, dtype=np.int64)],
                            split_idx, self.items, table, recipe=self.recipe)

    @property
    def train(self) -> DatasetSplit:
        """The training subset, with its ``items`` and ``vocab``."""
        return self.subset(self.splits[0], split_idx=0)

    @property
    def valid(self) -> DatasetSplit:
        """The validation subset, with its ``items`` and ``vocab``."""
        return self.subset(self.splits[1], split_idx=1)

    @property
    def vocab(self) -> Any:
        """As :attr:`DataLoaders.vocab`."""
        return data_vocab(self.blocks, self.n_inp)

    def dataloaders(self, bs: int = 64, val_bs: int | None = None, shuffle: bool = True, seed: int | None = None,
                    device: str | torch.device | None = None, num_workers: int | None = None,
                    drop_last: bool | None = None, seq_len: int | None = None, **fastai_tfms: Any) -> DataLoaders:
        """The training loader (shuffled, augmented) and the validation loader of these datasets, as
        :meth:`DataBlock.dataloaders <pipekit.data.DataBlock.dataloaders>` makes them from the same items
        (``dsets.dataloaders(bs=64)``, as the book writes it). ``before_batch=bb_pad`` (fastai's, for boxes) is
        taken where there are boxes and changes nothing: a ``BBoxBlock`` stores them padded to the most boxes of
        any image already (NaN rows, label 0), so the batches are those made without it. Any other transform is
        the DataBlock's (``item_tfms``, ``batch_tfms``).

        >>> from functools import partial
        >>> import pipekit.datasets as D
        >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
        >>> from pipekit.vision import ImageBlock
        >>> items = partial(get_image_files, folders=["train", "valid"])   # mnist_tiny's test folder has no labels
        >>> dsets = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=items,
        ...                   get_y=parent_label, splitter=GrandparentSplitter()).datasets(D.path("mnist_tiny"))
        >>> dls = dsets.dataloaders(bs=16, seed=0)
        >>> tuple(dls.one_batch()[0].shape), dls.vocab
        ((16, 1, 28, 28), ['3', '7'])
        """
        steps = as_list(fastai_tfms.get("before_batch"))
        if "before_batch" in fastai_tfms and steps and all(
                getattr(f, "padded_when_encoded", None) is not None
                and f.padded_when_encoded in self.geometry for f in steps):
            # bb_pad: boxes are stored padded to the most of any image as they are encoded (NaN rows, label 0)
            del fastai_tfms["before_batch"]
        if fastai_tfms:
            raise ParameterError(
                f"Datasets.dataloaders: {', '.join(f'{k}=' for k in fastai_tfms)} is not taken here: the transforms "
                "are the DataBlock's, item_tfms= (fastai's after_item, e.g. [Resize(224)]) and batch_tfms= (fastai's "
                "after_batch, e.g. [Normalize.from_stats(*imagenet_stats)]; decoding the images and scaling them to "
                "floats, fastai's ToTensor and IntToFloatTensor, are the ImageBlock's own): DataBlock(..., "
                "item_tfms=..., batch_tfms=...).datasets(items).dataloaders(bs=64)")
        if self.recipe is None or not hasattr(self.recipe, "dl_type"):
            raise ParameterError("Datasets.dataloaders: these datasets carry no recipe to batch them with; build "
                                 "them with DataBlock(...).datasets(source), or the loaders at once with "
                                 "DataBlock(...).dataloaders(source, bs=...)")
        check_positive_int("dataloaders", "bs", bs)
        lm_loader = check_seq_len("Datasets.dataloaders", seq_len, self.recipe.dl_type(), self.blocks)
        lm_blocks = [b for b in self.blocks if getattr(b, "is_lm", False) and hasattr(b, "seq_len")]
        dls = DataLoaders.from_datasets(self, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                        num_workers=num_workers, drop_last=drop_last)
        if seq_len is not None and lm_loader:
            # an empty validation loader (no validation set) has no windows to cut: it is kept as it is
            dls.loaders = [dl.new(seq_len=int(seq_len)) if hasattr(dl, "seq_len") else dl for dl in dls.loaders]
            for b in lm_blocks:  # the fitted block records it: exports and test_dl alike
                b.seq_len = int(seq_len)
        return dls

    def __repr__(self) -> str:
        return (f"Datasets(items={len(self.items)}, train={len(self.splits[0])}, valid={len(self.splits[1])}, "
                f"blocks={list(self.blocks)})")


def _take(items: Any, idx: np.ndarray) -> Any:
    """The items at positions ``idx``, in the container they came in (a list stays a list)."""
    if isinstance(items, (np.ndarray, torch.Tensor)):
        return items[torch.as_tensor(idx) if isinstance(items, torch.Tensor) else idx]
    if hasattr(items, "gather") and hasattr(items, "dtype"):  # a Polars Series
        return items.gather(idx)
    if hasattr(items, "take") and hasattr(items, "type"):  # an Arrow array
        return items.take(idx)
    if isinstance(items, pl.DataFrame):  # its rows
        return items[np.asarray(idx, dtype=np.int64)]
    if hasattr(items, "iloc"):  # a pandas Series or DataFrame
        return items.iloc[idx]
    return [items[int(i)] for i in idx]


def _item(v: Any) -> Any:
    """One encoded item as a user works with it: a NumPy scalar as a Python number, one text's ids (an Arrow list
    of integers, what ``Numericalize`` gives each text of a column) as the 1-d ``torch.long`` tensor
    ``Numericalize`` gives for one text, any other Arrow value as Python's."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pa.Scalar):
        if isinstance(v, (pa.ListScalar, pa.LargeListScalar)) and v.is_valid and pa.types.is_integer(v.type.value_type):
            return torch.from_numpy(v.values.to_numpy(zero_copy_only=False).astype(np.int64))
        return v.as_py()
    return v


def _at(column: Any, i: int) -> Any:
    """Item ``i`` of an encoded column by position: a pandas Series' or DataFrame's ``i``-th row, never the row
    labelled ``i`` (a shuffled or filtered frame keeps its labels)."""
    return column.iloc[i] if hasattr(column, "iloc") else column[i]


def _one(items: Any, i: int) -> Any:
    """Item ``i`` of ``items`` as a person reads it (a table's row as a tuple)."""
    v = _take(items, np.array([i]))
    return v.row(0) if isinstance(v, pl.DataFrame) else v.iloc[0] if hasattr(v, "iloc") else v[0]


def _item_type(items: Any, i: int) -> type | None:
    """The type of item ``i`` of a column as a :class:`TfmdLists` gives it; None for a value that is no column of
    items (a step's summary of them)."""
    try:
        return type(_item(_one(items, i)))
    except Exception:  # any value a step gives may be no column
        return None


def _checked_splits(items: Any, splits: Sequence[Sequence[int]] | Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """``splits`` as :class:`TfmdLists` takes them (``[train_idx, valid_idx]``, positions or a boolean mask each;
    None: every item is for training), checked against ``items``: the positions of each split."""
    if isinstance(items, (str, bytes)) or not (hasattr(items, "__len__") and hasattr(items, "__getitem__")):
        raise ParameterError(f"TfmdLists takes a list (or array, or Series) of items, got {type(items).__name__}")
    n = len(items)
    if splits is None:
        splits = [range(n), []]
    if isinstance(splits, (str, bytes)) or len(splits) != 2:
        raise ParameterError("TfmdLists: splits must be [train_idx, valid_idx] (two lists of positions), got "
                             f"{splits!r:.80}")
    # positions or a boolean mask per item, checked as IndexSplitter checks them (floats refused, not truncated)
    checked = [row_index(s if hasattr(s, "__array__") else list(s), n, f"TfmdLists: the {name}")
               for name, s in zip(("train", "valid"), splits)]
    if not len(checked[0]):
        raise ParameterError("TfmdLists: the train split is empty; the transforms are set up on it")
    check_disjoint(checked[0], checked[1], "TfmdLists: the split", lambda i: f"item {i}, {_item(_one(items, i))!r:.80}")
    return checked


def _left_out_of_splits(items: Any, splits: Sequence[np.ndarray], who: str) -> tuple[np.ndarray | None,
                                                                                      np.ndarray | None]:
    """The positions of the items in a split, in order, and each item's position among them (-1 for one in neither),
    saying how many are in neither, as :meth:`DataBlock.datasets <pipekit.data.DataBlock.datasets>` says it;
    ``(None, None)`` when every item is in a split."""
    n = len(items)
    kept = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in splits]))
    if len(kept) == n:
        return None, None
    left = np.setdiff1d(np.arange(n), kept)
    first = f"item {int(left[0])}, {_item(_one(items, int(left[0])))!r:.80}"
    warn(f"{who}: " + left_out_message(len(left), n, first, "give only the items to split",
                                       where=" of its train and valid subsets and their loaders",
                                       place="splits=[train_idx, valid_idx] that place every item"))
    row = np.full(n, -1, dtype=np.int64)
    row[kept] = np.arange(len(kept))
    return kept, row


class TfmdLists(SampledLoaders):
    """Items through a :class:`Pipeline` fitted on the training split: the book's mid-level ``TfmdLists``.

    ``tfms`` (transforms, Transform classes or functions) are set up on the training items only and encode
    all the items at once: like every pipekit transform they see the whole column (a list of items, an array,
    a Series), not one item at a time. ``splits`` is ``[train_idx, valid_idx]`` (default: every item is for
    training); each is positions or a boolean mask with one value per item. Items in neither (the unlabelled
    ``test/`` files under a ``GrandparentSplitter``) are left out of ``tl.train``, ``tl.valid`` and their loaders,
    with a warning saying how many, as a DataBlock leaves them out; ``tl[i]`` encodes such an item only when it is
    read, naming it if a step cannot (a label the training items lack). ``tl[i]`` is encoded item ``i``
    (``tl[:2]`` a list of them), ``tl.train``/``tl.valid`` the subsets (sharing the fitted pipeline; their items are
    of split 0 and 1, the whole list's of none, new items' of 1, so a ``RandTransform`` or a transform with a
    ``split_idx`` runs where fastai's does, see :func:`~pipekit.data.transform.call_item_tfm`),
    ``tl.decode(x)`` runs the transforms backwards. pipekit's getters (``parent_label``, ``RegexLabeller``,
    ``ColReader``, ``using_attr(...)``) are steps too, reading the whole column as in a DataBlock, and
    ``tl.vocab`` is the vocabulary the steps learned:

    >>> from pipekit.data import Categorize, RegexLabeller
    >>> files = ["pets/great_pyrenees_17.jpg", "pets/Abyssinian_3.jpg", "pets/Abyssinian_8.jpg"]
    >>> tls = TfmdLists(files, [RegexLabeller(r"([^/]+)_[0-9]+.jpg$"), Categorize()], splits=[[0, 1], [2]])
    >>> tls[0], tls.decode(tls[0]), tls.vocab
    (1, 'great_pyrenees', ['Abyssinian', 'great_pyrenees'])

    The steps:

    >>> from pipekit.data import Transform
    >>> class Centre(Transform):
    ...     def setups(self, items): self.mean_ = float(np.mean(items))
    ...     def encodes(self, x): return np.asarray(x, dtype=float) - self.mean_
    ...     def decodes(self, x): return x + self.mean_
    >>> tl = TfmdLists(np.array([1.0, 2.0, 3.0, 10.0]), [Centre], splits=[[0, 1, 2], [3]])
    >>> tl.train[0], tl.valid[0], tl.decode(tl.valid[0]), len(tl.train), len(tl.valid)
    (-1.0, 8.0, 10.0, 3, 1)
    """

    def __init__(self, items: Any, tfms: Any, splits: Sequence[Sequence[int]] | Sequence[np.ndarray] | None = None, *,
                 _left_out: tuple[np.ndarray | None, np.ndarray | None] | None = None):
        # ``_left_out``: what :func:`_left_out_of_splits` gave for these items and splits, worked out (and said) once
        # by a Datasets for all its parts; given, nothing is said here
        self.splits = _checked_splits(items, splits)
        self.items = items
        self.pipeline = tfms if isinstance(tfms, Pipeline) else Pipeline(tfms)
        #: the split of these items (0 training, 1 validation), None for the whole list: what ``decode`` undoes
        self.split_idx: int | None = None
        # items in neither split (mnist_tiny's unlabelled test/ folder under a GrandparentSplitter) are left out of
        # ``train``, ``valid`` and their loaders, as a DataBlock leaves them out; ``tl[i]`` still reads every item, as
        # fastai's does, encoding such an item only when it is read (its label may be one no step was set up with)
        self._kept, self._row = _left_out_of_splits(items, self.splits, "TfmdLists") if _left_out is None \
            else _left_out
        rows = self.splits if self._row is None else [self._row[s] for s in self.splits]
        self._rows = rows  # each split's positions in ``encoded``
        if self._kept is not None:
            items = _take(items, self._kept)
        # the type of the first training item before each step and after the last, as fastai's ``types``: a new
        # item is read from the first step whose input it already is (see encode_new)
        first = int(rows[0][0])
        self.types: list[type | None] = [_item_type(items, first)]
        # (k, the column before step k): the first step whose output may depend on the split (a RandTransform, a
        # transform of one split); the subsets are encoded from there with their own split, as fastai's are, the
        # whole list (``tl[i]``) with none
        self._before_split: tuple[int, Any] | None = None
        self._split_encoded: dict[int, Any] = {}
        # each step is set up on the training items as the steps before it encoded them (items of split 0), then
        # encodes every item once: up to the first step depending on the split, the training items are the whole
        # list's; from there on they are encoded apart (``train``), the very draws the next steps are set up on being
        # those ``tl.train`` gives, and the whole list as items of no split
        column, train, last = items, None, len(self.pipeline) - 1
        for k, t in enumerate(self.pipeline):
            if self._before_split is None and depends_on_split(t):
                self._before_split, train = (k, column), _take(column, rows[0])
            Pipeline([t]).setup(_take(column, rows[0]) if train is None else train, encode_last=False)
            if train is not None and k < last:  # the last step encodes them when ``tl.train`` is first read
                train = encode_items(t, train, 0)
            column = encode_items(t, column, None)
            self.types.append(_item_type(column, first))
        #: the encoded items of the splits (every item, when each is in one), in the order of ``items``
        self.encoded = column
        #: the training items encoded with every step but the last, once a step depends on the split
        self._train_before_last = train

    def _subset(self, i: int) -> TfmdLists:
        sub = object.__new__(TfmdLists)
        idx = self.splits[i]
        sub.items, sub.pipeline, sub.encoded = _take(self.items, idx), self.pipeline, self._encode_split(i)
        sub.splits = [np.arange(len(idx)), np.zeros(0, np.int64)]
        sub.split_idx = i if self.split_idx is None else self.split_idx  # a subset's subset: its items' split
        sub.types = self.types
        sub._before_split, sub._split_encoded, sub._train_before_last = None, {}, None
        sub._kept, sub._row, sub._rows = None, None, sub.splits
        return sub

    def _encode_split(self, i: int) -> Any:
        """The items of split ``i`` (0 training, 1 validation) encoded as items of that split (see
        :func:`~pipekit.data.transform.call_item_tfm`), once: taken from the whole list's when no step depends on
        the split; the training items from where setting up the steps left them."""
        idx = self._rows[i]
        if self._before_split is None or not len(idx):
            return _take(self.encoded, idx)
        if i not in self._split_encoded:
            if i == 0 and self._train_before_last is not None:
                k, column = len(self.pipeline) - 1, self._train_before_last
            else:
                k, column = self._before_split[0], _take(self._before_split[1], idx)
            for t in self.pipeline.tfms[k:]:
                column = encode_items(t, column, i)
            self._split_encoded[i] = column
        return self._split_encoded[i]

    def encode_new(self, items: Sequence[Any], with_labels: bool | None = None, who: str = "test_dl") -> list:
        """New items encoded as this list's items are, fastai's ``test_set``: each from the first step whose input
        type it already has, as fastai's ``rm_type_tfms`` inference does. An item as the source items are (a file)
        goes through every step; one of the type the steps make (chapter 11's ``SiameseImage(img1, img2)``, which
        ``SiameseTransform`` makes from a file) skips them. An item of neither type is refused, naming both.
        ``with_labels`` is :meth:`DataLoaders.test_dl`'s: an item here is one whole, read as it is either way.

        >>> from pipekit.data import Categorize
        >>> tls = TfmdLists(["cat", "dog", "cat"], [Categorize()], splits=[[0, 1], [2]])
        >>> tls.encode_new(["dog", 0])
        [1, 0]
        """
        starts = [self._first_step(x, i, who) for i, x in enumerate(items)]
        out: list = [None] * len(starts)
        for k in sorted(set(starts)):  # the items starting at one step go through the rest as one column
            pos = [i for i, s in enumerate(starts) if s == k]
            column: Any = [_at(items, i) for i in pos]
            for t in self.pipeline.tfms[k:]:  # new items are of the validation split, as fastai's test_set
                column = encode_items(t, column, 1)
            for j, i in enumerate(pos):
                out[i] = _item(_one(column, j))
        return out

    def _first_step(self, x: Any, i: int, who: str) -> int:
        """The step new item ``x`` (item ``i`` of those given to ``who``) is read from (see :meth:`encode_new`)."""
        for k, kind in enumerate(self.types):
            if kind is not None and isinstance(x, kind):
                return k
        known = list(dict.fromkeys(k.__name__ for k in self.types if k is not None))
        raise DataError(f"{who}: item {i} ({x!r:.60}) is a {type(x).__name__}; this TfmdLists' items are "
                        f"{known[0] if known else '?'} and its transforms ({self.pipeline!r:.120}) make "
                        f"{known[-1] if known else '?'} of them: give new items of one of the types "
                        f"{', '.join(known)} (one made by a step is read from the step after it)")

    @property
    def train(self) -> TfmdLists:
        return self._subset(0)

    @property
    def valid(self) -> TfmdLists:
        return self._subset(1)

    def __len__(self) -> int:
        return len(self.encoded) if self._row is None else len(self._row)

    def __getitem__(self, i: Any) -> Any:
        """The encoded item at position ``i`` (an int, a numpy or a 0-d tensor integer), or a list of them for a
        slice or a list, array or tensor of positions (``tl[:2]``, ``tl.train[[0, 2]]``), as fastai's."""
        return pick(i, len(self), "this TfmdLists", self._item_at)

    def _item_at(self, i: int) -> Any:
        """The encoded item at position ``i`` (in range); one in neither split encoded as it is read."""
        if self._row is None:
            return _item(_at(self.encoded, i))
        return _item(_at(self.encoded, int(self._row[i]))) if self._row[i] >= 0 else self._encode_left_out(i)

    def _encode_left_out(self, i: int) -> Any:
        """Item ``i``, in neither split, through the steps as an item of no split, read when it is asked for: a step
        that cannot encode it (``Categorize`` given a label the training items lack) is named with the item and the
        value it was given."""
        column = _take(self.items, np.array([i]))
        for k, t in enumerate(self.pipeline.tfms):
            try:
                out = encode_items(t, column, None)
            except Exception as e:
                why = str(e).split(";")[0][:160]  # what was wrong; the fix that follows is for items of a split
                raise DataError(
                    f"TfmdLists: item {i} ({_item(_one(self.items, i))!r:.80}) is in neither the training nor the "
                    f"validation split, and step {k} ({t!r:.60}) cannot encode its value {_item(_one(column, 0))!r:.60}"
                    f" ({type(e).__name__}: {why}); tl.train, tl.valid and their loaders leave it out: read the items "
                    "of a split (tl.train[j], tl.valid[j]), or put it in one with splits=[train_idx, valid_idx]") from e
            column = out
        return _item(_one(column, 0))

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def dataloaders(self, bs: int = 64, val_bs: int | None = None, shuffle: bool = True, seed: int | None = None,
                    device: Any = None, num_workers: int | None = None, drop_last: bool | None = None,
                    after_item: Any = None, before_batch: Any = None, after_batch: Any = None,
                    n_inp: int | None = None, batch_size: int | None = None, dl_type: Any = None,
                    seq_len: int | None = None) -> Any:
        """Loaders of the training and validation items, as chapter 11's ``tls.dataloaders(after_item=[Resize(224),
        ToTensor], after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])``: each item through
        ``after_item`` (item transforms, classes or functions), the batch's list of items through ``before_batch``
        (``pad_input``), collated (images as pipekit's uint8 image batch), then ``after_batch`` (batch transforms)
        on the device. Items are made one at a time in Python (see :class:`~pipekit.data.loader.ItemsDataset`); a
        DataBlock's cached stores are the fast path. ``seed`` fixes the order (the same seed, the same batches);
        ``n_inp``: how many parts of an item are inputs (default: all but the last). No validation split: a
        training loader only. ``batch_size`` is PyTorch's and fastai's name of ``bs``. ``dl_type``: fastai's
        ``SortedDL`` (batches of texts of similar lengths) or ``LMDataLoader`` with ``seq_len`` (a language model's
        windows of the items' token ids), both from :mod:`pipekit.text` (see :func:`item_dataloaders`).

        >>> tls = TfmdLists([np.full((4, 4, 3), i, np.uint8) for i in range(6)], [], splits=[range(4), range(4, 6)])
        >>> from pipekit.vision import IntToFloatTensor
        >>> dls = tls.dataloaders(bs=2, after_batch=[IntToFloatTensor], device="cpu", seed=0)
        >>> b = dls.valid.one_batch(); tuple(b[0].shape), b[0].dtype, round(float(b[0][1].max()) * 255)
        ((2, 3, 4, 4), torch.float32, 5)
        """
        return item_dataloaders(self, "TfmdLists.dataloaders", bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed,
                                device=device, num_workers=num_workers, drop_last=drop_last, after_item=after_item,
                                before_batch=before_batch, after_batch=after_batch, n_inp=n_inp,
                                batch_size=batch_size, dl_type=dl_type, seq_len=seq_len)

    def decode(self, value: Any, split_idx: int | None = None) -> Any:
        """An encoded value (one item's, or the column's) back through the transforms, last first, as an item of
        this list's split (``tl.train``'s 0, ``tl.valid``'s 1, the whole list's none), as fastai's: a transform that
        does not run on that split is skipped (see :meth:`Pipeline.decode <pipekit.data.Pipeline.decode>`).
        ``split_idx`` (0 or 1) decodes it as an item of that split instead: a loader's items (a ``test_dl``'s new
        items are of split 1, see :class:`ItemsDataLoader`)."""
        return self.pipeline.decode(value, self.split_idx if split_idx is None else split_idx)

    def show(self, o: Any, ctx: Any = None, **kwargs: Any) -> Any:
        """Show an encoded item decoded, as chapter 11's ``tls.show(t)`` (and ``show_at(tls.valid, 0)``): a text's
        tokens printed joined by spaces, a label or number printed, an image drawn (on ``ctx``, matplotlib axes,
        when given; ``kwargs`` go to ``show_image``), a tuple with its own ``show`` (chapter 11's ``SiameseImage``)
        drawn by it (see :func:`~pipekit.data.show.show_value`). Returns the axes drawn on, or ``ctx`` (None) when it
        printed, as fastai's, so a notebook shows a text once.

        >>> from pipekit.data import Categorize
        >>> tls = TfmdLists(["cat", "dog", "cat"], [Categorize()])
        >>> _ = tls.show(tls[1])
        dog
        """
        from pipekit.data.show import show_value

        return show_value(self.decode(o), ctx=ctx, **kwargs)

    @property
    def tfms(self) -> Pipeline:
        """The fitted pipeline (``tls.tfms[1].vocab``, as in fastai)."""
        return self.pipeline

    @property
    def vocab(self) -> list | None:
        """The vocabulary learned by the last step that learns one (``Categorize``, ``Numericalize``), or None."""
        for t in reversed(self.pipeline.tfms):
            if getattr(t, "vocab_", None) is not None:
                return t.vocab_  # type: ignore[attr-defined]
        return None

    def __repr__(self) -> str:
        return (f"TfmdLists({len(self)} items, train={len(self.splits[0])}, valid={len(self.splits[1])}, "
                f"{self.pipeline!r})")


class TfmdDatasets(SampledLoaders):
    """fastai's ``Datasets(items, tfms=[x_tfms, y_tfms], splits=[train_idx, valid_idx])``, chapter 11's mid-level
    datasets (``Datasets(...)`` called so gives one): one :class:`~pipekit.data.TfmdLists` per part of an item,
    each set up on the same training split. ``ds[i]`` is item ``i``, a tuple of its parts; ``ds.train``/``ds.valid``
    the subsets; ``ds.decode(item)`` each part through its transforms backwards, ``ds.show(item)`` it shown;
    ``ds.dataloaders(bs=64, after_item=..., before_batch=..., after_batch=...)`` loaders of them (see
    :meth:`TfmdLists.dataloaders <pipekit.data.TfmdLists.dataloaders>`). ``n_inp``: how many parts are inputs
    (default: all but the last).

    >>> from pipekit.data import Categorize, RegexLabeller
    >>> files = ["pets/great_pyrenees_17.jpg", "pets/Abyssinian_3.jpg", "pets/Abyssinian_8.jpg"]
    >>> dsets = Datasets(files, [[lambda f: f.split("/")[-1]], [RegexLabeller(r"([^/]+)_[0-9]+.jpg$"), Categorize()]],
    ...                  splits=[[0, 1], [2]])
    >>> dsets.valid[0], dsets.decode(dsets.valid[0]), dsets.vocab, len(dsets.train)
    (('Abyssinian_8.jpg', 0), ('Abyssinian_8.jpg', 'Abyssinian'), ['Abyssinian', 'great_pyrenees'], 2)
    """

    def __init__(self, items: Any = None, tfms: Any = None, tls: Sequence[TfmdLists] | None = None,
                 n_inp: int | None = None, splits: Sequence[Sequence[int]] | Sequence[np.ndarray] | None = None):
        if tls is None:
            if items is None:
                raise ParameterError("Datasets: give the items (a list of files, texts, rows...) and tfms, one list "
                                     "of transforms per part of an item: Datasets(items, [x_tfms, y_tfms])")
            parts = [[]] if tfms is None else tfms
            if not isinstance(parts, (list, tuple)) or not parts:
                raise ParameterError(f"Datasets: tfms is one list of transforms per part of an item ([x_tfms, "
                                     f"y_tfms]), got {tfms!r:.80}")
            checked = _checked_splits(items, splits)  # items in neither split: found and said once, for the Datasets
            left_out = _left_out_of_splits(items, checked, "Datasets")
            tls = [TfmdLists(items, t, splits=checked, _left_out=left_out) for t in parts]
        self.tls = list(tls)
        check("Datasets", n_inp=(n_inp, Interval(1, len(self.tls), integer=True, none_ok=True)))
        self.n_inp = n_inp if n_inp is not None else max(1, len(self.tls) - 1)

    @property
    def items(self) -> Any:
        return self.tls[0].items

    @property
    def splits(self) -> list[np.ndarray]:
        return self.tls[0].splits

    def _subset(self, i: int) -> TfmdDatasets:
        return TfmdDatasets(tls=[tl._subset(i) for tl in self.tls], n_inp=self.n_inp)

    @property
    def train(self) -> TfmdDatasets:
        """The training items (the transforms' state is shared)."""
        return self._subset(0)

    @property
    def valid(self) -> TfmdDatasets:
        """The validation items."""
        return self._subset(1)

    def __len__(self) -> int:
        return len(self.tls[0])

    def __getitem__(self, i: Any) -> Any:
        """The item at position ``i`` (a tuple of its parts), or a list of them for a slice or a list, array or
        tensor of positions (``dsets[:3]``, ``dsets.train[[0, 2]]``), as fastai's."""
        return pick(i, len(self), "this Datasets", lambda p: tuple([tl._item_at(p) for tl in self.tls]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def decode(self, o: Sequence[Any], split_idx: int | None = None) -> tuple:
        """An item's parts, each back through its transforms (ids to text, class index to label), as an item of
        these datasets' split, or of ``split_idx`` when given (see :meth:`TfmdLists.decode
        <pipekit.data.TfmdLists.decode>`)."""
        return tuple(tl.decode(v, split_idx) for tl, v in zip(self.tls, o))

    def encode_new(self, items: Sequence[Any], with_labels: bool | None = False, who: str = "test_dl") -> list[tuple]:
        """New items as tuples of their parts, each part encoded by its list as
        :meth:`TfmdLists.encode_new <pipekit.data.TfmdLists.encode_new>` does: the inputs' parts only, the targets'
        too with ``with_labels=True``, as fastai's ``test_set``."""
        tls = self.tls if with_labels else self.tls[:self.n_inp]
        return list(zip(*(tl.encode_new(items, who=who) for tl in tls)))

    def show(self, o: Sequence[Any], ctx: Any = None, **kwargs: Any) -> Any:
        """Show an item decoded (``dsets.show(dsets.valid[0])``, ``show_at(dsets.train, 0)``): an input image drawn
        with its label as title, else a text printed then its label (see :func:`~pipekit.data.show.show_parts`).
        Returns the axes drawn on, or ``ctx`` (None) when it printed, as fastai's."""
        from pipekit.data.show import show_parts

        return show_parts(self.decode(o), self.n_inp, ctx=ctx, **kwargs)

    @property
    def vocab(self) -> Any:
        """The vocabulary of every part that learned one, inputs and targets, in part order, as fastai's: one such
        part gives its vocabulary alone (``[PILImage.create], [parent_label, Categorize()]``: the classes), several
        the list of them (a text's ``Numericalize`` then a ``Categorize``: ``[tokens, classes]``)."""
        return _one_or_list([tl.vocab for tl in self.tls if tl.vocab is not None])

    def dataloaders(self, bs: int = 64, val_bs: int | None = None, shuffle: bool = True, seed: int | None = None,
                    device: Any = None, num_workers: int | None = None, drop_last: bool | None = None,
                    after_item: Any = None, before_batch: Any = None, after_batch: Any = None,
                    batch_size: int | None = None, dl_type: Any = None, seq_len: int | None = None) -> DataLoaders:
        """Loaders of the training and validation items, as chapter 11's ``dsets.dataloaders(bs=64,
        before_batch=pad_input)`` and ``dsets.dataloaders(bs=64, dl_type=SortedDL, before_batch=pad_input)``; see
        :meth:`TfmdLists.dataloaders <pipekit.data.TfmdLists.dataloaders>`."""
        return item_dataloaders(self, "Datasets.dataloaders", bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed,
                                device=device, num_workers=num_workers, drop_last=drop_last, after_item=after_item,
                                before_batch=before_batch, after_batch=after_batch, n_inp=self.n_inp,
                                batch_size=batch_size, dl_type=dl_type, seq_len=seq_len)

    @property
    def tfms(self) -> list[Pipeline]:
        """The fitted pipeline of each part of an item, in part order (fastai's ``dsets.tfms``;
        ``dsets.tfms[1]`` a target's, ``dsets.tfms[1][-1].vocab`` its classes)."""
        return [tl.pipeline for tl in self.tls]

    def __repr__(self) -> str:
        return (f"Datasets({len(self)} items, train={len(self.splits[0])}, valid={len(self.splits[1])}, "
                f"tfms=[{', '.join(repr(tl.pipeline) for tl in self.tls)}])")


# help(Datasets) and inspect.signature(Datasets) show the call users write, fastai's (its __new__ takes any arguments)
Datasets.__signature__ = inspect.signature(TfmdDatasets)


def weighted_loaders(dls: DataLoaders, wgts: Any, n: int | None = None) -> DataLoaders:
    """``dls`` with a training loader drawing each epoch's items by ``wgts``, one weight per training item (see
    :meth:`DataLoader.weighted <pipekit.data.loader.DataLoader.weighted>`); the validation loader is as it was."""
    dls.loaders[0] = dls.loaders[0].weighted(wgts, n=n)
    return dls


def partial_loaders(dls: DataLoaders, partial_n: int) -> DataLoaders:
    """``dls`` with a training loader reading ``partial_n`` of its items, drawn afresh each epoch (see
    :meth:`DataLoader.partial <pipekit.data.loader.DataLoader.partial>`); the validation loader is as it was."""
    dls.loaders[0] = dls.loaders[0].partial(partial_n)
    return dls


def item_dataloaders(source: Any, who: str, bs: int = 64, val_bs: int | None = None, shuffle: bool = True,
                     seed: int | None = None, device: Any = None, num_workers: int | None = None,
                     drop_last: bool | None = None, after_item: Any = None, before_batch: Any = None,
                     after_batch: Any = None, n_inp: int | None = None, batch_size: int | None = None,
                     dl_type: Any = None, seq_len: int | None = None) -> DataLoaders:
    """Loaders over the ``train``/``valid`` subsets of a mid-level ``source`` (a TfmdLists or TfmdDatasets), each an
    :class:`~pipekit.data.loader.ItemsDataset` batched by the one :class:`DataLoader`: ``after_item`` a
    :class:`~pipekit.data.Pipeline` run on each item, ``before_batch`` functions of the batch's list of items, in
    order, ``after_batch`` batch transforms (a class is instantiated). The training loader is shuffled with ``seed``
    and drops its last partial batch when shuffling (unless it would be the only one), as a DataBlock's does.
    ``batch_size`` is ``bs`` under PyTorch's and fastai's name.

    ``dl_type`` is the loader class, :class:`ItemsDataLoader` or a subclass of it: fastai's ``SortedDL``
    (:class:`pipekit.text.SortedDL`, batches of texts of similar lengths). A language model's loader, one taking
    ``seq_len`` (``LMDataLoader``, as fastai's ``tls.dataloaders(bs=64, seq_len=72, dl_type=LMDataLoader)``), is
    given the items' token ids (a ``TfmdLists``', or a ``Datasets``' of one part) and cuts its windows from them."""
    bs = bs_or_batch_size(who, bs, batch_size)
    check_positive_int(who, "bs", bs)
    check(who, seq_len=(seq_len, Interval(1, None, integer=True, none_ok=True)))
    loader = ItemsDataLoader if dl_type is None else dl_type
    is_loader = isinstance(loader, type) and issubclass(loader, DataLoader)
    lm_loader = is_loader and takes_seq_len(loader)
    if not lm_loader and not (is_loader and issubclass(loader, ItemsDataLoader)):
        raise ParameterError(f"{who}: dl_type={getattr(loader, '__name__', repr(loader))[:60]} cannot batch these "
                             "items; give dl_type=SortedDL (batches of texts of similar lengths, with before_batch="
                             "pad_input) or dl_type=LMDataLoader with seq_len=... (a language model's windows of the "
                             "token ids), both from pipekit.text, a subclass of ItemsDataLoader, or leave dl_type out")
    if seq_len is not None and not lm_loader:
        raise ParameterError(f"{who}: seq_len={seq_len} sets the window of a language model's batches; give it with "
                             "dl_type=LMDataLoader (from pipekit.text), or leave seq_len out")
    if lm_loader:
        return _lm_item_dataloaders(source, who, loader, bs, val_bs, shuffle, seed, device, num_workers, drop_last,
                                    seq_len, (after_item, before_batch, after_batch))
    # read as a DataBlock reads its batch_tfms
    batch_tfms = [t() if isinstance(t, type) else t for t in as_list(grouped_batch_tfms(as_list(after_batch)))]
    for t in batch_tfms:
        if not isinstance(t, BatchTransform):
            raise ParameterError(f"{who}: after_batch takes batch transforms (IntToFloatTensor, Normalize.from_stats("
                                 f"...), aug_transforms()), got {t!r:.80}; a transform of one item goes in after_item")
    steps = as_list(before_batch)
    for f in steps:
        if not callable(f):
            raise ParameterError(f"{who}: before_batch takes functions of the list of a batch's items (pad_input), "
                                 f"got {f!r:.80}")

    def run_before(items: list) -> list:
        for f in steps:
            items = f(items)
        return items
    run_before.steps = steps  # type: ignore[attr-defined]  # what a loader's before_batch lists

    item_tfms = Pipeline(after_item) if after_item is not None else None
    made = [ItemsDataset(sub, item_tfms, run_before if steps else None, n_inp, split_idx=k)
            for k, sub in enumerate((source.train, source.valid))]
    return _split_loaders(loader, made[0], made[1], bs, val_bs, shuffle, drop_last, seed, device,
                          BatchPipeline(batch_tfms), num_workers)


def _lm_item_dataloaders(source: Any, who: str, loader: type[DataLoader], bs: int, val_bs: int | None, shuffle: bool,
                         seed: int | None, device: Any, num_workers: int | None, drop_last: bool | None,
                         seq_len: int | None, tfms: tuple[Any, Any, Any]) -> DataLoaders:
    """:func:`item_dataloaders` for a language model's loader (``loader`` takes ``seq_len``): the token ids of the
    training and validation items, each split one stream cut into windows; the loaders read their windows back into
    text with the source's transforms (``made_from``)."""
    if any(t is not None and t != [] for t in tfms):
        raise ParameterError(f"{who}: {loader.__name__} cuts a language model's windows from the items' token ids "
                             "itself; after_item, before_batch and after_batch do not apply to them: leave them out")
    texts = source.tls[0] if isinstance(source, TfmdDatasets) and len(source.tls) == 1 else source
    if not isinstance(texts, TfmdLists):
        raise ParameterError(f"{who}: {loader.__name__} reads one part per item, its token ids, and these Datasets "
                             f"have {len(source.tls)}; give it TfmdLists(items, [Tokenizer(), Numericalize()], "
                             "splits=...) (or Datasets(items, [[Tokenizer(), Numericalize()]]))")
    made: list[Any] = []
    for sub in (texts.train, texts.valid):  # each split's token ids
        ids = sub.encoded  # Numericalize's Arrow list column of integers is read whole by the loader, as it is
        made.append(ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) and ids.null_count == 0
                    and (pa.types.is_list(ids.type) or pa.types.is_large_list(ids.type))
                    and pa.types.is_integer(ids.type.value_type) else list(sub))
    window: dict[str, Any] = {} if seq_len is None else {"seq_len": int(seq_len)}  # else the loader's default
    lm: Callable[..., DataLoader] = partial(loader, **window)
    dls = _split_loaders(lm, made[0], made[1], bs, val_bs, shuffle, drop_last, seed, device, BatchPipeline([]),
                         num_workers)
    for dl in dls.loaders:
        dl.made_from = texts
    return dls


class ItemsDataLoader(DataLoader):
    """The :class:`DataLoader` of a ``TfmdLists``' or ``Datasets``' items (see :func:`item_dataloaders`): a batch of
    items of a :class:`~pipekit.data.fastuple` subclass comes in that class, as fastai collates them (chapter 11's
    ``type(dls.one_batch())`` is ``SiameseImage``, holding the batch of each part)."""

    def _finish(self, epoch: int, i: int, b: tuple, entry: Any = None) -> tuple:
        b = super()._finish(epoch, i, b, entry)
        kind, n_parts = self._item_kind()
        return tuple.__new__(kind, b) if kind is not None and len(b) == n_parts else b

    def _item_kind(self) -> tuple[type | None, int]:
        """The fastuple class of this loader's items (the first's) and its number of parts, or (None, 0), as the
        dataset read its first item (:attr:`ItemsDataset.first_kind <pipekit.data.loader.ItemsDataset.first_kind>`)."""
        kind, n_parts = self.dataset.first_kind
        return (kind, n_parts) if kind is not None and issubclass(kind, fastuple) else (None, 0)

    def decode_batch(self, batch: tuple, max_n: int | None = None) -> list[tuple]:
        """A batch back into its items for people, as fastai's ``dls.valid.decode_batch(b)``: the batch transforms
        undone (``after_batch``), then each item back through ``after_item`` and the transforms of the ``TfmdLists``
        or ``Datasets`` it is an item of, last first, as an item of this loader's split (0 training; 1 validation and
        ``test_dl``, see :meth:`~pipekit.data.loader.DataLoader.decode_split`), so a transform of the other split is
        not undone. One tuple per item: a ``Datasets``' item's parts (``(image, '3')``), a ``TfmdLists``' decoded item
        alone (``('3',)``), an item of a :class:`~pipekit.data.fastuple` class in that class."""
        rows = super().decode_batch(batch, max_n)
        source = self.decodes_with()
        if source is None:
            return rows
        split, after = self.decode_split(), self.dataset.after_item
        kind, n_parts = self.dataset.first_kind
        out = []
        for row in rows:
            item = (tuple.__new__(kind, row) if kind is not None and issubclass(kind, tuple) and len(row) == n_parts
                    else row[0] if len(row) == 1 else tuple(row))
            if isinstance(after, Pipeline):
                item = after.decode(item, split)
            item = source.decode(item, split_idx=split)
            out.append(item if isinstance(item, tuple) else (item,))
        return out

    def decodes_with(self) -> Any:
        """The ``TfmdLists`` or ``Datasets`` whose transforms decode this loader's items: its dataset's source, or
        for new items (``test_dl``, whose source is the items it encoded) that of the loader they were made from;
        None when there is none."""
        source = getattr(self.dataset, "source", None)
        if callable(getattr(source, "decode", None)):
            return source
        return self.__dict__.get("made_from")

    def new(self, dataset: Any = None, **kwargs: Any) -> DataLoader:
        """:meth:`DataLoader.new <pipekit.data.loader.DataLoader.new>`; a copy over other items (``test_dl``'s)
        decodes them with this loader's transforms (see :meth:`decodes_with`)."""
        dl = super().new(dataset, **kwargs)
        if dataset is not None:
            dl.made_from = self.decodes_with()  # type: ignore[attr-defined]
        return dl


def check_seq_len(who: str, seq_len: int | None, dl_type: type, blocks: Sequence[Any]) -> bool:
    """Whether ``dl_type`` batches a language model's windows (it takes ``seq_len``); a ``seq_len`` given to
    loaders of blocks that make no such batches is refused, naming the block that does."""
    check(who, seq_len=(seq_len, Interval(1, None, integer=True, none_ok=True)))
    lm_loader = takes_seq_len(dl_type)
    if seq_len is not None and not lm_loader and not any(hasattr(b, "seq_len") for b in blocks):
        raise ParameterError(f"{who}: seq_len={seq_len} sets the window of a language model's batches, and these "
                             "blocks make none; give TextBlock(is_lm=True) (or TextBlock.from_folder/from_df(..., "
                             "is_lm=True)) for a language model, or leave seq_len out")
    return lm_loader


def takes_seq_len(dl_type: Any) -> bool:
    """Whether the loader class ``dl_type`` batches a language model's windows: it takes ``seq_len``
    (:class:`~pipekit.text.LMDataLoader`)."""
    return "seq_len" in inspect.signature(dl_type).parameters


def _split_loaders(make: Callable[..., DataLoader], train: Any, valid: Any, bs: int, val_bs: int | None,
                   shuffle: bool, drop_last: bool | None, seed: int | None, device: Any, batch_tfms: BatchPipeline,
                   num_workers: int | None) -> DataLoaders:
    """The training and validation loaders ``make`` builds over the ``train`` and ``valid`` items of a mid-level
    source (see :func:`item_dataloaders` and :func:`_loaders`); with no validation items the validation loader is
    empty, as a DataBlock's is. ``drop_last`` (default: when shuffling more than ``bs`` items) drops the last
    partial training batch; with no validation set the training loader keeps it when dropping it would leave no
    batch."""
    if drop_last is None:
        drop_last = shuffle and len(train) > bs
    train_dl, valid_dl = _loaders(make, train, valid, bs, val_bs, shuffle, drop_last, seed, device, batch_tfms,
                                  num_workers, keep_a_batch=not len(valid))
    return DataLoaders(train_dl, valid_dl, device=train_dl.device)


def _loaders(dl_type: Callable[..., DataLoader], train: Any, valid: Any, bs: int, val_bs: int | None,
             shuffle: bool, drop_last: bool, seed: int | None, device: Any, batch_tfms: BatchPipeline,
             num_workers: int | None, valid_drop_last: bool = False,
             keep_a_batch: bool = False) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled, augmented) and the validation loader (in order, seeded one after). Fewer
    training items than ``bs`` with ``drop_last`` are refused where the loader then has no batch (``keep_a_batch``:
    their last partial batch is kept instead): a loader of items batches ``bs`` of them, a language model's
    (``LMDataLoader``) windows of ``bs`` streams cut from all of them."""
    drawn = seed is None
    if seed is None:  # NumPy's generator, as each loader's own
        seed = loader_seed(None, getattr(dl_type, "__name__", "DataLoader"))
    common = dict(device=device, batch_tfms=batch_tfms, num_workers=num_workers)
    train_dl = dl_type(train, bs=bs, shuffle=shuffle, drop_last=drop_last, seed=seed, augment=True, **common)
    if keep_a_batch and drop_last and not len(train_dl):
        train_dl = train_dl.new(drop_last=False)
    elif drop_last and 0 < len(train) < bs and not len(train_dl):
        raise DataError(f"the training set has {len(train)} items, fewer than bs={bs}: with drop_last=True it gives "
                        f"no batch to train on; lower bs (e.g. bs={len(train)}) or pass drop_last=False")
    # no validation items (RandomSplitter(valid_pct=0): training on every item) make an empty validation loader,
    # as fastai's: it has no batch, and a learner records no validation scores
    empty = {"allow_empty": True} if not len(valid) else {}
    try:
        valid_dl = dl_type(valid, bs=val_bs or bs, shuffle=False, seed=seed + 1, augment=False,
                           **({"drop_last": True} if valid_drop_last else {}), **empty, **common)
    except DataError as e:  # a loader's size check (a language model's streams) failing on the validation set
        if not len(valid):  # such a loader cannot be empty: a plain loader of no items, with no batch, stands in
            valid_dl = DataLoader(valid if callable(getattr(valid, "gather", None)) else ItemsDataset([]),
                                  bs=val_bs or bs, shuffle=False, seed=seed + 1, augment=False, allow_empty=True,
                                  **common)
            return _drawn(drawn, train_dl, valid_dl)
        raise DataError(f"the validation set ({len(valid)} items, bs={val_bs or bs}): {e}; for the validation set "
                        f"alone, pass val_bs=... to dataloaders()") from None
    return _drawn(drawn, train_dl, valid_dl)


def _drawn(drawn: bool, *loaders: DataLoader) -> Any:
    """``loaders``, each marked as drawing from a seed drawn from NumPy's generator when ``drawn`` (see
    :meth:`DataLoader.seed_was_drawn`)."""
    if drawn:
        for dl in loaders:
            dl.seed_was_drawn()
    return loaders


#: what ``test_dl`` of loaders rebuilt from an export (a loaded learner's) takes beside ``with_labels`` and ``bs``:
#: the settings of the loader it makes (its defaults: in order, not augmented, on the loaders' device)
TEST_DL_SETTINGS = ("shuffle", "drop_last", "augment", "seed", "device", "num_workers", "pin_memory")

#: the largest batch size an export records (``dls.bs`` of a loaded learner, the default batch of its ``test_dl``):
#: a larger one is written as this, and a file recording more is refused
MAX_RECORDED_BS = 2**20



def new_items_pipelines(recipe: Any) -> tuple[Pipeline, BatchPipeline]:
    """The item and batch pipelines of a loader of new items encoded by fitted ``recipe`` (``test_dl``, and
    ``learn.predict`` through it): the recipe's item transforms that run on new items (split 1, as validation items),
    which made the items as they were encoded, and its fitted batch transforms (the very objects the loader runs).
    ``dls.after_item`` and ``dls.after_batch`` of loaders rebuilt from an export (no data) are these."""
    after_item = Pipeline([t for t in recipe_item_tfms(recipe) if runs_on_split(t, 1)])
    return after_item, recipe.batch_pipeline()


def _train_stage(name: str, doc: str) -> property:
    """``dls.<name>``: the training loader's stage of that name (read-only there as on the loader, whose refusal of
    an assignment names where its transforms are given). Loaders rebuilt from an export (no data) answer
    ``after_item`` and ``after_batch`` with what their ``test_dl`` of new items runs."""

    def train(dls: Any) -> Any:
        if not dls.__dict__.get("loaders"):
            raise AttributeError(f"'DataLoaders' object has no attribute '{name}': these loaders hold no data")
        loader = dls.loaders[0]
        if isinstance(loader, ForeignLoader):
            raise loader.needs_recipe(f"dls.{name}")
        return loader

    def read(dls: Any) -> Any:
        recipe = dls.__dict__.get("recipe")
        if not dls.__dict__.get("loaders") and name in ("after_item", "after_batch") \
                and callable(getattr(recipe, "batch_pipeline", None)):
            after_item, after_batch = new_items_pipelines(recipe)
            return after_item if name == "after_item" else after_batch
        return getattr(train(dls), name)

    def assign(dls: Any, value: Any) -> None:
        setattr(train(dls), name, value)

    return property(read, assign, doc=doc)

class DataLoaders:
    """The training and validation loaders (and how to make more for new data).

    ``recipe`` is the fitted recipe that built them (a DataBlock, a tabular recipe, ...): it encodes new
    items for ``test_dl`` and is what an exported model carries instead of pickled code. ``path``: the folder a
    learner built on them saves to (``learn.path``, for ``learn.save`` and ``learn.export``): the ``path=``
    given to ``DataBlock.dataloaders`` or to a table's or a text's ``from_df``/``from_csv``, else the working
    directory (a factory reading a folder of images, ``from_folder(path)``, does not write into it).

    Loaders made elsewhere are taken as fastai takes them, ``DataLoaders(train_loader, valid_loader)`` of two
    ``torch.utils.data.DataLoader`` (or any objects with a length yielding ``(x, y)`` batches each time they are
    iterated): each becomes a :class:`~pipekit.data.loader.ForeignLoader` on ``device``, whose batches a learner
    trains, validates and predicts over as they come; ``n_inp`` says how many parts of a batch are inputs (default:
    all but the last). Showing, ``test_dl``, ``predict`` and export need loaders pipekit built (``from_dsets``).

    >>> import torch
    >>> from torch.utils.data import DataLoader as TorchLoader, TensorDataset
    >>> from pipekit.data import DataLoaders
    >>> _ = torch.manual_seed(0)
    >>> ds = TensorDataset(torch.randn(8, 3), torch.arange(8) % 2)
    >>> dls = DataLoaders(TorchLoader(ds, batch_size=4), TorchLoader(ds, batch_size=4), device="cpu")
    >>> len(dls.train), dls.n_inp, [tuple(t.shape) for t in dls.one_batch()]
    (2, 1, [(4, 3), (4,)])
    """

    #: where a learner on these loaders saves (see the class docstring)
    path: Path = Path(".")

    def __init__(self, *loaders: Any, recipe: Any = None, device: str | torch.device | None = None,
                 n_inp: int | None = None):
        # loaders made elsewhere (torch DataLoaders, fastai's "Pure PyTorch to fastai") are wrapped, each on the
        # device given, else the first pipekit loader's; n_inp= says how many parts of their batches are inputs
        check("DataLoaders", n_inp=(n_inp, Interval(1, None, integer=True, none_ok=True)))
        ours = [dl for dl in loaders if isinstance(dl, Loader)]
        for i, dl in enumerate(loaders):
            if n_inp is not None and isinstance(dl, Loader) and not isinstance(dl, ForeignLoader) \
                    and dl.n_inp != n_inp:
                raise ParameterError(f"DataLoaders: n_inp={n_inp} is for loaders pipekit did not build, and loader "
                                     f"{i}, a pipekit {type(dl).__name__}, has n_inp={dl.n_inp} from its data; leave "
                                     "n_inp out")
        at = device if device is not None else (getattr(ours[0], "device", None) if ours else None)
        self.loaders: list[Any] = [
            dl if isinstance(dl, Loader) else ForeignLoader(dl, n_inp=n_inp, device=at, where=f"DataLoaders: loader {i}")
            for i, dl in enumerate(loaders)]
        loaders = tuple(self.loaders)
        train_tfms = getattr(self.loaders[0], "batch_tfms", None) if self.loaders else None
        for t in list(train_tfms or ()):  # transforms that learn from the training batches (Normalize())
            setup = getattr(t, "setup_batches", None)
            if callable(setup):
                setup(self.loaders[0])
        self.datasets: Datasets | None = None
        #: the batch size and seed an export recorded, for loaders rebuilt from one (they have no loader to read them
        #: from): a loaded learner's test_dl batches and draws (tta) as the exported one's did
        self._state_bs: int = 64
        self._state_seed: int | None = None
        self.recipe = recipe
        self._device = torch.device(device) if device is not None else (
            loaders[0].device if loaders else default_device())

    @classmethod
    def from_datasets(cls, dsets: Datasets, recipe: Any = None, bs: int = 64, val_bs: int | None = None,
                      shuffle: bool = True, seed: int | None = None, device: Any = None,
                      num_workers: int | None = None, drop_last: bool | None = None) -> DataLoaders:
        """Training and validation loaders over the subsets of ``dsets`` (a :class:`Datasets`), batched by its recipe
        (the DataBlock that built it, unless ``recipe`` is given): ``bs`` items a batch (``val_bs`` for validation,
        default ``bs``), the training items shuffled by ``seed``, on ``device``. ``drop_last`` (default: when
        shuffling, unless it leaves no batch) drops the last incomplete training batch."""
        bs = check_positive_int("dataloaders", "bs", bs)  # before it is compared with the number of items
        recipe = recipe if recipe is not None else dsets.recipe
        if drop_last is None:  # a last partial batch is dropped when shuffling, unless it would be the only one
            drop_last = shuffle and len(dsets.train) > bs
        train, valid = _loaders(recipe.dl_type(), dsets.train, dsets.valid, bs, val_bs, shuffle, drop_last, seed, device,
                                recipe.batch_pipeline(), num_workers)
        dls = cls(train, valid, recipe=recipe, device=train.device)
        dls.datasets = dsets
        return dls

    @classmethod
    def from_dsets(cls, train: Sequence[Any], valid: Sequence[Any], bs: int = 64, shuffle: bool = True,
                   drop_last: bool | None = None, batch_size: int | None = None, **kwargs: Any) -> DataLoaders:
        """Loaders from two datasets of ``(x, y)`` items, as the book builds them by hand: ``list(zip(xs, ys))``
        or any sequence of equal-length tuples of tensors, arrays or numbers. Each position of the tuples is
        stacked into one store (the last is the target unless ``n_inp=`` says otherwise), then as
        :meth:`from_stores`; ``shuffle=False`` keeps the training items in order (a stateful RNN's batches), and
        ``drop_last=True`` drops the last incomplete batch of both loaders. An empty ``valid`` (``[]``: training on
        every item) gives an empty validation loader, as a DataBlock's ``RandomSplitter(valid_pct=0)`` does.
        ``batch_size`` is PyTorch's and fastai's name of ``bs``; a keyword neither this nor :meth:`from_stores`
        takes is refused, naming the close ones.

        >>> import torch
        >>> xs, ys = torch.randn(10, 3), torch.arange(10) % 2
        >>> dls = DataLoaders.from_dsets(list(zip(xs[:8], ys[:8])), list(zip(xs[8:], ys[8:])), bs=4, device="cpu")
        >>> [tuple(t.shape) for t in dls.one_batch()], dls.n_inp
        ([(4, 3), (4,)], 1)
        """
        check_arguments("DataLoaders.from_dsets", kwargs, argument_names(
            DataLoaders.from_dsets, DataLoaders.from_stores, but=("train_stores", "valid_stores")))
        bs = bs_or_batch_size("DataLoaders.from_dsets", bs, batch_size)
        train_stores = stack_items(train, "train")
        if not isinstance(valid, torch.utils.data.DataLoader) and hasattr(valid, "__len__") and len(valid) == 0:
            # no validation items: stores of none, shaped like the training ones (an empty validation loader)
            stores = [train_stores, [TensorStore(s.data[:0]) for s in train_stores]]
        else:
            stores = [train_stores, stack_items(valid, "valid")]
        if len(stores[0]) != len(stores[1]):
            raise DataError(f"from_dsets: the training items are tuples of {len(stores[0])} and the validation "
                            f"items of {len(stores[1])}; give both the same parts (x, y)")
        for j, (a, b) in enumerate(zip(stores[0], stores[1])):
            if a.data.shape[1:] != b.data.shape[1:] or a.data.is_floating_point() != b.data.is_floating_point():
                raise DataError(f"from_dsets: part {j} of the items is {tuple(a.data.shape[1:])} {a.data.dtype} in "
                                f"training and {tuple(b.data.shape[1:])} {b.data.dtype} in validation; a model "
                                "takes one shape and kind: give both sets alike")
        return cls.from_stores(stores[0], stores[1], bs=bs, shuffle=shuffle, drop_last=drop_last, **kwargs)

    @classmethod
    def from_stores(cls, train_stores: Sequence[Any], valid_stores: Sequence[Any], blocks: Sequence[Any] = (),
                    n_inp: int | None = None, recipe: Any = None, bs: int = 64, val_bs: int | None = None,
                    seed: int | None = None, device: Any = None,
                    batch_tfms: Sequence[BatchTransform] | BatchTransform | None = None,
                    dl_type: type[DataLoader] = DataLoader, num_workers: int | None = None,
                    drop_last: bool | None = None, shuffle: bool = True) -> DataLoaders:
        """Loaders straight from already-encoded stores (domains that encode columns themselves).

        Without a ``recipe`` they get an :class:`~pipekit.data.arrays.ArrayRecipe` learned from the training
        stores, so new items given as arrays can be encoded (``test_dl``, ``predict``) and a learner exported.
        ``shuffle=False`` keeps the training items in order. ``drop_last`` (default: when the training set is
        larger than a batch) drops the training loader's last incomplete batch; ``drop_last=True`` drops the
        validation loader's too.
        """
        tfms = as_list(batch_tfms)
        if recipe is None:
            recipe = ArrayRecipe(n_inp).setup(list(train_stores), blocks, tfms)
        tr = ArrayDataset(train_stores, blocks=blocks, n_inp=n_inp, split_idx=0)
        va = ArrayDataset(valid_stores, blocks=blocks, n_inp=n_inp, split_idx=1)
        train, valid = _loaders(dl_type, tr, va, bs, val_bs, shuffle, len(tr) > bs if drop_last is None else drop_last,
                                seed, device, BatchPipeline(tfms), num_workers, valid_drop_last=drop_last is True)
        return cls(train, valid, recipe=recipe, device=train.device)

    # ------------------------------------------------------------------ access
    def __getitem__(self, i: int) -> DataLoader:
        return self.loaders[i]

    def __len__(self) -> int:
        return len(self.loaders)

    def _holding(self, to: str) -> None:
        """Refuse ``to`` (what the user asked for, 'train', 'show a batch') on loaders rebuilt from an export."""
        if not self.loaders:
            raise DataError(f"these DataLoaders hold no data (a learner loaded with load_learner keeps only what "
                            f"predicting needs): to {to}, give it loaders first, learn.dls = <dls built the same way>")

    @property
    def train(self) -> DataLoader:
        """The training loader: shuffled, augmented batches (``dls.train.show_batch()``, ``dls.train.bs``)."""
        self._holding("train")
        return self.loaders[0]

    @property
    def valid(self) -> DataLoader:
        """The validation loader: batches in the items' order, without augmentation."""
        self._holding("validate")
        if len(self.loaders) < 2:
            raise AttributeError("these DataLoaders have no validation loader")
        return self.loaders[1]

    @property
    def bs(self) -> int:
        """The training loader's batch size (``dls.bs``, as the book reads it; ``dls.valid.bs`` is the validation
        loader's). Loaders rebuilt from an export (``learn.dls`` after ``load_learner``) hold no loader: theirs is the
        batch size the export recorded, which their ``test_dl`` batches new items in unless given ``bs``."""
        if not self.loaders:
            return self._state_bs
        return self.train.bs

    @property
    def train_ds(self) -> Any:
        """The training loader's dataset (``dls.train_ds[0]`` is the first training item, encoded)."""
        return self.train.dataset

    @property
    def valid_ds(self) -> Any:
        """The validation loader's dataset."""
        return self.valid.dataset

    @property
    def device(self) -> torch.device:
        """The device the batches are put on (the GPU when there is one, unless chosen); ``dls.to(device)``
        changes it."""
        return self._device

    def to(self, device: str | torch.device) -> DataLoaders:
        """Put every loader's batches on ``device`` (``"cpu"``, ``"cuda"``, a ``torch.device``); returns these
        loaders."""
        self._device = torch.device(device)
        for dl in self.loaders:
            dl.to(self._device)
        return self

    def cpu(self) -> DataLoaders:
        """``dls.to("cpu")``, as fastai's ``dls.cpu()``."""
        return self.to("cpu")

    def cuda(self) -> DataLoaders:
        """``dls.to("cuda")``, as fastai's ``dls.cuda()``."""
        return self.to("cuda")

    #: what the loaders answer for their training loader, as fastai's do (``dls.decode_batch(b)``, ``dls.n``,
    #: a table's ``dls.xs``, ``dls.new(bs=4)``: a training loader with other settings); ``dls.items`` is the
    #: training items
    TRAIN_ATTRIBUTES = ("decode", "decode_batch", "n", "dataset", "xs", "ys", "y", "new")

    def _decoding_loader(self) -> DataLoader:
        """For loaders rebuilt from an export (a loaded learner's, which hold no items): a loader of no items over the
        recipe's fitted blocks and batch transforms, which decodes a batch (``dls.decode_batch(b)``) as the
        loaders' ``test_dl`` decodes its own (items of split 1, as new items are)."""
        recipe = self.__dict__["recipe"]
        blocks = list(recipe.fitted_blocks)
        ds = ArrayDataset([ListStore(pl.Series([], dtype=pl.Object)) for _ in blocks], blocks, recipe.n_inp_,
                          split_idx=1)
        return recipe.dl_type()(ds, bs=self._state_bs, shuffle=False, device=self.device,
                                batch_tfms=new_items_pipelines(recipe)[1], augment=False, allow_empty=True)

    def __getattr__(self, name: str) -> Any:
        described = getattr(type(self), name, None)
        if isinstance(described, property):  # a property that refused (dls.cat_names of images): its own message
            return described.__get__(self)
        if name == "items" or name in DataLoaders.TRAIN_ATTRIBUTES:
            if not self.__dict__.get("loaders") and name in ("decode", "decode_batch") and self.__dict__.get(
                    "recipe") is not None:  # rebuilt from an export: decoded as its test_dl's batches are
                return getattr(self._decoding_loader(), name)
            if not self.__dict__.get("loaders"):
                raise AttributeError(f"'DataLoaders' object has no attribute '{name}': these loaders hold no data")
            train = self.__dict__["loaders"][0]
            return getattr(train.dataset if name == "items" else train, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    after_item = _train_stage("after_item", "The training loader's item transforms (fastai's ``dls.after_item``; see "
                              ":attr:`DataLoader.after_item`); ``dls.valid.after_item`` are the validation loader's. "
                              "Loaders rebuilt from an export (``load_learner(...).dls``) give those their "
                              "``test_dl`` runs on new items (a ``Resize`` with its size and method).")
    before_batch = _train_stage("before_batch", "The training loader's steps on each batch's list of items (see "
                                ":attr:`DataLoader.before_batch`).")
    after_batch = _train_stage("after_batch", "The training loader's batch transforms (fastai's ``dls.after_batch``; "
                               "see :attr:`DataLoader.after_batch`). Loaders rebuilt from an export "
                               "(``load_learner(...).dls``) give those their ``test_dl`` runs on new items, the same "
                               "fitted objects (a ``Normalize`` with its ``mean`` and ``std``).")

    def add_tfms(self, tfms: Any, event: str, loaders: int | Sequence[int] | None = None) -> None:
        """Add ``tfms`` at the end of stage ``event`` (``'after_item'``, ``'before_batch'`` or ``'after_batch'``) of
        every loader, or of those at the positions ``loaders`` (``0`` the training loader, ``1`` the validation
        loader), as fastai's ``dls.add_tfms``: the one way to add a transform to loaders once they are made (their
        ``after_batch`` and the other stages are read-only). After-batch transforms are read as
        ``dataloaders(after_batch=...)`` reads them (a class is made; ``Normalize()`` learns its statistics from
        the training batches).

        Loaders of a ``TfmdLists``' or ``Datasets``' items take them. A DataBlock's loaders are refused, naming
        ``DataBlock(batch_tfms=...)``: their recipe is what ``test_dl``, ``predict`` and an export encode new items
        with, and a transform added to the loaders alone would be missing there.

        >>> from pipekit.data import Categorize
        >>> tls = TfmdLists(["cat", "dog", "cat", "dog"], [Categorize()], splits=[[0, 1, 2], [3]])
        >>> dls = tls.dataloaders(bs=2, device="cpu", seed=0)
        >>> dls.add_tfms([lambda items: [x * 10 for x in items]], "before_batch", loaders=[1])
        >>> dls.valid.one_batch(), len(dls.train.before_batch), len(dls.valid.before_batch)
        ((tensor([10]),), 0, 1)
        """
        events = ("after_item", "before_batch", "after_batch")
        if event not in events:
            raise ParameterError(f"add_tfms: event={event!r} is not a stage of these loaders; give one of {events}")
        self._holding("add transforms")
        positions = range(len(self.loaders)) if loaders is None else [loaders] if isinstance(loaders, int) \
            else list(loaders)
        for k in positions:
            if not isinstance(k, int) or isinstance(k, bool) or not -len(self.loaders) <= k < len(self.loaders):
                raise ParameterError(f"add_tfms: loaders={loaders!r} names loader {k!r}; these DataLoaders have "
                                     f"{len(self.loaders)} (0 training, 1 validation)")
        if self.recipe is not None:
            name = "batch_tfms" if event == "after_batch" else "item_tfms"
            raise ParameterError(f"add_tfms: these loaders were built by a {type(self.recipe).__name__}, whose recipe "
                                 f"test_dl, predict and an export encode new items with; a transform added to the "
                                 f"loaders alone would be missing there. Give it to the recipe and build the loaders "
                                 f"again: DataBlock(..., {name}=[...]) (or dblock.new({name}=[...]))"
                                 f".dataloaders(source)")
        for k in positions:
            dl = self.loaders[k]
            if not isinstance(dl, DataLoader) or not isinstance(dl.dataset, ItemsDataset):
                raise ParameterError(f"add_tfms: loader {k} ({type(dl).__name__}) was not built from a TfmdLists' "
                                     "or Datasets' items and has no stage to add to; build the loaders with "
                                     f"tls.dataloaders({event}=[...]) or dsets.dataloaders({event}=[...])")
        added = as_list(tfms.tfms if isinstance(tfms, Pipeline) else tfms)
        if event == "after_batch":
            made = [t() if isinstance(t, type) else t for t in as_list(grouped_batch_tfms(added))]
            for t in made:
                if not isinstance(t, BatchTransform):
                    raise ParameterError(f"add_tfms: after_batch takes batch transforms (IntToFloatTensor, "
                                         f"Normalize.from_stats(...)), got {t!r:.80}; a transform of one item goes in "
                                         "'after_item'")
            for t in made:  # a transform that learns from the training batches (Normalize()) learns now
                setup = getattr(t, "setup_batches", None)
                if callable(setup) and len(self.loaders):
                    setup(self.loaders[0])
            for k in positions:
                dl = self.loaders[k]
                dl.batch_tfms = BatchPipeline([*dl.batch_tfms, *made])
        elif event == "before_batch":
            for f in added:
                if not callable(f):
                    raise ParameterError(f"add_tfms: before_batch takes functions of the list of a batch's items "
                                         f"(pad_input), got {f!r:.80}")
            for k in positions:
                dl = self.loaders[k]
                dl.batch_steps = [*dl.batch_steps, *added]
        else:
            for k in positions:
                dl = self.loaders[k]
                ds = copy.copy(dl.dataset)
                before = ds.after_item.tfms if isinstance(ds.after_item, Pipeline) else as_list(ds.after_item)
                ds.after_item = Pipeline([*before, *added])
                ds._parts, ds._first_type = None, None  # the first item is read again through the new steps
                dl.dataset = ds

    @property
    def blocks(self) -> tuple:
        """The fitted blocks, inputs then targets (``dls.blocks[-1].vocab`` is a classifier's classes)."""
        if self.recipe is not None:
            return tuple(self.recipe.fitted_blocks)
        return self.train.blocks if self.loaders else ()

    @property
    def n_inp(self) -> int:
        """How many of each batch's elements are model inputs (the rest are targets)."""
        return self.recipe.n_inp_ if self.recipe is not None else self.train.n_inp

    @property
    def y_block(self) -> Any:
        """The block of the (first) target, None when the items have no target. Loaders of a ``Datasets``' items
        (no blocks) have the block whose column transform is the last step of their one target's transforms that
        a block with a ``loss_kind`` makes (``[parent_label, Categorize()]``: a ``CategoryBlock``, so a learner's
        loss is ``CrossEntropyLossFlat``, as fastai's; see :func:`target_block_of_steps`)."""
        b = self.blocks
        if len(b) > self.n_inp:
            return b[self.n_inp]
        if b or not self.__dict__.get("loaders"):
            return None
        source = getattr(getattr(self.loaders[0], "dataset", None), "source", None)
        tls = getattr(source, "tls", None)
        if not isinstance(tls, list) or len(tls) - getattr(source, "n_inp", len(tls)) != 1:
            return None
        cached = self.__dict__.get("_items_y_block")
        if cached is None or cached[0] is not tls[-1]:
            cached = (tls[-1], target_block_of_steps(tls[-1].pipeline.tfms))
            self._items_y_block = cached
        return cached[1]

    @property
    def classes(self) -> dict[str, list[str]]:
        """The vocabulary of each categorical column of a table's (or ratings') loaders, ``#na#`` first: the book's
        ``dls.classes['title']``."""
        found = getattr(getattr(self.recipe, "processor", None), "classes_", None)
        if not found:
            raise AttributeError("these DataLoaders have no categorical columns (classes belong to tables and "
                                 "ratings); the target's labels are dls.vocab")
        return found

    def _table(self, what: str) -> Any:
        """The fitted processor of a table's (or ratings') loaders; another kind of data has no ``what``."""
        processor = getattr(self.recipe, "processor", None)
        if processor is None:
            raise AttributeError(f"these DataLoaders have no {what}: {what} belong to a table's or ratings' loaders "
                                 "(TabularDataLoaders, CollabDataLoaders)")
        return processor

    @property
    def cat_names(self) -> list[str]:
        """A table's categorical input columns, as the model reads them (``FillMissing``'s ``_na`` flags included),
        fastai's ``dls.cat_names``.

        >>> import polars as pl
        >>> from pipekit.tabular import TabularDataLoaders
        >>> df = pl.DataFrame({"a": ["x", "y", None, "x"], "b": [1.0, None, 3.0, 4.0], "y": ["no", "yes", "no", "yes"]})
        >>> dls = TabularDataLoaders.from_df(df, cat_names=["a"], cont_names=["b"], y_names="y", valid_idx=[3])
        >>> dls.cat_names, dls.cont_names, dls.y_names, [type(p).__name__ for p in dls.procs]
        (['a', 'b_na'], ['b'], ['y'], ['FillMissing', 'Categorify', 'Normalize'])
        """
        return list(self._table("cat_names").cat_names_)

    @property
    def cont_names(self) -> list[str]:
        """A table's continuous input columns (fastai's ``dls.cont_names``); see :attr:`cat_names`."""
        return list(self._table("cont_names").cont_names_)

    @property
    def y_names(self) -> list[str]:
        """A table's target columns (fastai's ``dls.y_names``); see :attr:`cat_names`."""
        return list(self._table("y_names").y_names)

    @property
    def procs(self) -> list[Any]:
        """A table's fitted procs, in the order they ran (fastai's ``dls.procs``; see :attr:`cat_names`): a list,
        named as a table's ``to.procs`` (``dls.procs.normalize.means``, ``dls.procs.categorify['workclass']``,
        ``dls.procs.fill_missing.na_dict``), on loaders rebuilt from an export (``load_learner(...).dls``) too."""
        processor = self._table("procs")
        named = getattr(processor, "fitted_procs", None)  # a table's processor names its procs
        return named("dls.procs") if callable(named) else list(processor.procs)

    @property
    def vocab(self) -> Any:
        """The vocab of every block that has one, inputs and targets, in block order, as fastai's (see
        :func:`data_vocab`): one such block gives its vocab alone (an image classifier's classes, boxes' labels, a
        language model's tokens), several the list of them: a text classifier's ``[tokens, classes]``
        (``dls.vocab[0]`` the text vocab a ``TextBlock.from_df(..., vocab=dls.vocab[0])`` or a model is sized by,
        ``dls.vocab[1]`` the classes), ``blocks=(ImageBlock, CategoryBlock, CategoryBlock), n_inp=1``'s
        ``[['3', '7'], ['big', 'small']]``. The classes alone are ``dls.y_block.vocab`` (:func:`classes_vocab`).
        Loaders of a ``Datasets``' or ``TfmdLists``' items (no blocks) give their training items'
        (``Datasets.vocab``)."""
        if not self.blocks and self.loaders:
            return getattr(self.loaders[0], "vocab", None)
        return data_vocab(self.blocks, self.n_inp)

    @property
    def c(self) -> Any:
        """The target's size: its number of classes (boxes with labels: of labels, ``#na#`` included). With several
        targets (see :func:`several_target_blocks`), a list of each target's size in target order, as fastai's:
        ``[2, 2]`` for two categories of 2, ``[2, 1]`` for a category then a number, ``[2, 4]`` for a category then
        4 labels of a ``MultiCategoryBlock``. A model for them has as many outputs as their sum
        (``n_out=sum(dls.c)``) and a loss that splits them. Loaders of a ``Datasets``' or ``TfmdLists``' items (no
        blocks) give the length of their :attr:`vocab`, as fastai's (chapter 11's ``Datasets`` of ``[parent_label,
        Categorize()]``: 2, for chapter 14's ``nn.Linear(256, dls.c)``). Typed ``Any`` for type checkers, as that
        use needs: an ``int`` for one target, a list of them for several, None for no target."""
        if self.y_block is None:
            if self.blocks:
                return None
            classes = classes_vocab(self)  # a text Datasets' vocab is [tokens, classes]: its size is the classes'
            return _vocab_size(classes if classes is not None else self.vocab)
        several = several_target_blocks(self.blocks, self.n_inp)
        if several:
            return [b.c for b in several]
        return self.y_block.c if self.y_block.c is not None else vocab_block(self.blocks, self.n_inp).c

    @c.setter
    def c(self, value: Any) -> None:
        """``dls.c = n`` as fastai's notebooks write it (the Rossmann example's ``dls.c = 1``): accepted when ``n``
        is the size the target already gives. Every learner, loss, prediction and export reads the size from the
        target itself, so another value is refused, naming the learner's ``n_out=``, which sets a model's number
        of outputs."""
        from pipekit.core.validate import as_number

        def same(a: Any, b: Any) -> bool:  # one size (a number, or None) or one per target, as fastai's dls.c
            if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
                return isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) \
                    and all(map(same, a, b))
            if a is None or b is None:
                return a is b
            x, y = as_number(a), as_number(b)  # a bool is no size
            return x is not None and y is not None and float(x) == float(y)

        current = self.c
        if same(value, current):
            return
        target = "no target" if self.y_block is None else f"a target ({type(self.y_block).__name__}) of size {current!r}"
        n_out = f"sum({value!r})" if isinstance(value, (list, tuple)) else repr(value) if value is not None else "..."
        raise ParameterError(f"dls.c = {value!r}: these loaders have {target}, which every learner, loss and "
                             "prediction reads from the target itself, so dls.c cannot be set to another value; for a "
                             f"model of another number of outputs pass n_out={n_out} to the learner (e.g. "
                             f"tabular_learner(dls, n_out={n_out}))")

    @property
    def loss_kind(self) -> str | None:
        """The loss the target calls for (``'cross_entropy'``, ``'bce'``, ``'mse'``), which a learner uses when it
        is given no ``loss_func``; None when the target names none."""
        return self.y_block.loss_kind if self.y_block is not None else None

    @property
    def loss_func(self) -> Any:
        """The loss a learner on these loaders uses when it is given no ``loss_func`` (fastai's ``dls.loss_func``,
        e.g. ``MSELossFlat()`` for points, ``BCEWithLogitsLossFlat()`` for multi-label); None when the target
        names no :attr:`loss_kind`. A new loss object each time."""
        from pipekit.learn.losses import loss_from_kind  # the learning layer builds on this one

        kind = self.loss_kind
        return None if kind is None else loss_from_kind(kind)

    def one_batch(self) -> tuple:
        """The first batch of the training loader, inputs then targets, on ``dls.device`` (fastai's
        ``dls.one_batch()``)."""
        self._holding("take a batch")
        return self.train.one_batch()

    def refuse_foreign(self, what: str) -> None:
        """Refuse ``what`` when these loaders were made elsewhere (``DataLoaders(train_loader, valid_loader)`` of
        torch loaders): it needs loaders that know how their items were read, and the message says how to make
        them."""
        foreign = next((dl for dl in self.loaders if isinstance(dl, ForeignLoader)), None)
        if foreign is not None:
            raise foreign.needs_recipe(what)

    # ------------------------------------------------------------------ new data
    def test_dl(self, items: Any, with_labels: bool | None = None, bs: int | None = None,
                batch_size: int | None = None, **kwargs: Any) -> DataLoader:
        """A loader over new items with the validation-time transforms (no augmentation, no shuffling).
        ``with_labels``: True reads the targets too, False the inputs only; None (the default), as fastai's: a
        ``Tabular``'s rows (``TabularDataLoaders``) keep their target when they carry it
        (``learn.validate(dl=dls.test_dl(df))`` scores them), and a DataBlock's items, rows of a table included, are
        read as inputs only (``with_labels=True`` reads their targets, to score them). ``batch_size`` is ``bs`` under
        PyTorch's and fastai's name. Other
        keywords are the new loader's settings, as fastai's ``test_dl(items, shuffle=False)`` passes them on: by
        default it reads the items in order (``shuffle=False``), unaugmented, and keeps every item
        (``drop_last=False``); ``shuffle``, ``drop_last``, ``device``, ``num_workers``, ``pin_memory``, ``seed`` and
        ``augment`` given win.

        Loaders of a ``TfmdLists``' items (``tls.dataloaders(after_item=..., after_batch=...)``) read each new item
        from the first of its transforms whose input it already is, as fastai's ``rm_type_tfms`` inference: chapter
        11's ``test_dl([SiameseImage(img1, img2)])`` skips the ``SiameseTransform`` that makes such pairs from files
        (see :meth:`TfmdLists.encode_new <pipekit.data.TfmdLists.encode_new>`).

        >>> import pipekit.datasets as D
        >>> from pipekit.data import get_image_files
        >>> from pipekit.vision import ImageDataLoaders
        >>> path = D.path("mnist_tiny")
        >>> dls = ImageDataLoaders.from_folder(path, img_cls="L", bs=64, seed=0)
        >>> dl = dls.test_dl(get_image_files(path / "test"))     # 20 unlabelled digits
        >>> len(dl.dataset), [tuple(t.shape) for t in dl.one_batch()]    # the inputs only
        (20, [(20, 1, 28, 28)])
        """
        if batch_size is not None:  # bs has no default here: any bs given counts
            bs = bs_or_batch_size("test_dl", batch_size if bs is None else bs, batch_size, default=0)
        if self.recipe is None:
            made = self.loaders[1] if len(self.loaders) > 1 else (self.loaders[0] if self.loaders else None)
            if isinstance(made, DataLoader) and isinstance(made.dataset, ItemsDataset) and hasattr(
                    made.dataset.source, "encode_new"):
                return self._items_test_dl(made, items, with_labels, bs, **kwargs)
            self.refuse_foreign("test_dl (and learn.predict, which reads a new item through it)")
            raise DataError("test_dl: these DataLoaders were built from loaders of data already encoded and hold no "
                            "recipe to encode new items with (learn.predict reads one through test_dl); build them with "
                            "DataBlock(...).dataloaders(source), TfmdLists(...).dataloaders(...) or "
                            "DataLoaders.from_dsets(train, valid) (new items as arrays), or give learn.model a batch "
                            "collated by hand")
        ds = self.recipe.new_datasets(items, with_labels=with_labels)
        if hasattr(items, "__len__") and hasattr(items, "__getitem__") and len(items) == len(ds):
            ds.items = items  # what the loader's rows are, in order (fastai's tst_dl.items)
        after_item, after_batch = new_items_pipelines(self.recipe)
        ds.after_item = after_item  # the item transforms that made the items (the loader's after_item)
        template = self.valid if len(self.loaders) > 1 else (self.loaders[0] if self.loaders else None)
        if template is not None:  # its own settings (in order, not augmented) unless the call gives others
            return template.new(dataset=ds, bs=bs or template.bs,
                                **{"shuffle": False, "augment": False, "drop_last": False, **kwargs})
        # loaders rebuilt from an export (no loader to copy): the settings a new loader takes, any other refused
        check_arguments("test_dl", kwargs, TEST_DL_SETTINGS)
        settings = {"shuffle": False, "augment": False, "device": self.device, "seed": self._state_seed, **kwargs}
        return self.recipe.dl_type()(ds, bs=bs or self._state_bs, batch_tfms=after_batch, allow_empty=True,
                                     **settings)

    def _items_test_dl(self, template: DataLoader, items: Any, with_labels: bool | None, bs: int | None,
                       **kwargs: Any) -> DataLoader:
        """:meth:`test_dl` of loaders of a ``TfmdLists``' (or ``Datasets``') items: the new items encoded by its
        transforms from the first step whose input they already are (see :meth:`TfmdLists.encode_new
        <pipekit.data.TfmdLists.encode_new>`), then, as the validation items, through ``after_item``,
        ``before_batch`` and ``after_batch``."""
        if isinstance(items, (str, bytes, fastuple)) or not (hasattr(items, "__len__") and hasattr(items, "__getitem__")):
            raise ParameterError(f"test_dl takes a list of items, got one {type(items).__name__} ({items!r:.60}): "
                                 "pass [item] (learn.predict(item) predicts one)")
        made = template.dataset
        encoded = made.source.encode_new(items, with_labels=with_labels, who="test_dl")
        ds = ItemsDataset(encoded, made.after_item, made.before_batch, made.n_inp, split_idx=1)
        ds.items = items  # what the loader's rows are, in order (fastai's tst_dl.items)
        return template.new(dataset=ds, bs=bs or template.bs,
                            **{"shuffle": False, "augment": False, "drop_last": False, **kwargs})

    # ------------------------------------------------------------------ showing
    def show_batch(self, max_n: int = 9, dl: DataLoader | None = None, path: str | None = None,
                   nrows: int | None = None, ncols: int | None = None, figsize: tuple[float, float] | None = None,
                   unique: bool = False) -> Any:
        """Draw ``max_n`` decoded items of a training batch (of ``dl`` when given; ``dls.valid.show_batch()``
        too); see :meth:`DataLoader.show_batch`. Returns the PNG path when one was written.

        >>> import pipekit.datasets as D
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> dls.show_batch(max_n=4, path=f"{out}/batch.png").name    # 4 digits titled with their labels, as a PNG
        'batch.png'
        """
        if dl is None:
            self._holding("show a batch")
        return (dl or self.train).show_batch(max_n=max_n, path=path, nrows=nrows, ncols=ncols, figsize=figsize,
                                             unique=unique)

    def summary(self, bs: int = 4, show: bool = True) -> str | None:
        """Walk one training batch of these loaders: the subsets, what the recipe's components learned,
        the collated batch, then each batch transform. A failing step is named.

        Each line is printed as it is found when ``show`` (and nothing is returned, so a notebook shows the walk
        once); ``show=False`` prints nothing and returns the text.

        For loaders built by a DataBlock, ``dblock.summary(source)`` also walks the items, the split and
        the getters.

        >>> import polars as pl
        >>> from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock
        >>> df = pl.DataFrame({"x": [0.5 * i for i in range(10)], "y": ["a", "b"] * 5})
        >>> dls = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("x"), get_y=ColReader("y"),
        ...                 splitter=RandomSplitter(0.2, seed=0)).dataloaders(df, bs=4, seed=0)
        >>> print(dls.summary(show=False))  # doctest: +NORMALIZE_WHITESPACE
        DataLoaders summary: 8 train / 2 valid items, n_inp=1, recipe DataBlock
        Blocks: RegressionBlock, CategoryBlock
          DataBlock learned item_columns_=['x', 'y'], n_inp_=int 1
          ToFloat learned n_out_=int 1
          Categorize learned vocab_=['a', 'b']
        Collating a batch of 4 with DataLoader
          (Tensor(4, 1) float32, Tensor(4,) int64)
        No batch transforms
        """
        self.refuse_foreign("summary")
        out = io.StringIO()

        def say(line: str) -> None:
            out.write(line + "\n")
            if show:
                print(line)

        sizes = " / ".join(f"{len(dl.dataset)} {name}" for name, dl in zip(("train", "valid", "extra"), self.loaders))
        made_by = type(self.recipe).__name__ if self.recipe is not None else "none (built from encoded arrays)"
        say(f"DataLoaders summary: {sizes} items, n_inp={self.n_inp}, recipe {made_by}")
        say("Blocks: " + ", ".join(type(b).__name__ for b in self.blocks))
        learned_state(self.recipe if self.recipe is not None else list(self.blocks), say)
        try:
            walk_batch(self.train.new(bs=bs, shuffle=False, augment=self.train.augment, num_workers=0, device="cpu"), say)
        except PipelineStepError as e:
            say(f"FAILED: {e}")
            raise
        return None if show else out.getvalue()

    # ------------------------------------------------------------------ export
    def state(self, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The recipe with every fitted state, as plain data (what an exported model carries)."""
        if not isinstance(self.recipe, Component):
            self.refuse_foreign("export")
            raise ExportError("these DataLoaders have no exportable recipe; build them with a DataBlock or a "
                              "domain helper so new items can be encoded at inference time")
        if self.loaders:  # what a loaded learner's test_dl batches new items in: loading refuses more than the cap
            bs = min((self.valid if len(self.loaders) > 1 else self.train).bs, MAX_RECORDED_BS)
        else:  # rebuilt from an export (no data): what that export recorded, so a loaded learner exports again
            bs = self._state_bs
        # the seed a loaded learner's test_dl draws with (tta's augmentation), as this one's does
        seed: int | None = (self.valid if len(self.loaders) > 1 else self.train).seed if self.loaders \
            else self._state_seed
        return {"recipe": self.recipe.to_record(arrays), "bs": bs, "n_inp": self.n_inp, "seed": seed}

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                   device: str | torch.device = "cpu") -> DataLoaders:
        """DataLoaders with no data, able to encode new items exactly as at training time, in batches of the
        recorded ``bs`` (``dls.bs``; 64 for a record without one). A malformed field is refused with a
        :class:`~pipekit.core.errors.FieldError` naming it within this record (``bs``, ``recipe.state...``)."""
        if not isinstance(state, dict) or "recipe" not in state:
            raise ExportError("the data state of this export has no recipe")
        bs = state.get("bs", 64)
        if not Interval(1, MAX_RECORDED_BS, integer=True).accepts(bs):
            raise FieldError("bs", f"must be the batch size new items are read in (dls.bs, test_dl's default), a "
                                   f"whole number from 1 to {MAX_RECORDED_BS:,}, got {type(bs).__name__} {bs!r:.60}; "
                                   "the file is damaged or was not written by learn.export()")
        try:
            recipe = Component.from_record(state["recipe"], arrays)
        except FieldError as e:
            raise (FieldError("recipe", e.problem) if not e.field else e.within("recipe")) from None
        seed = state.get("seed")
        if seed is not None and not Interval(0, 2**63 - 1, integer=True).accepts(seed):
            raise FieldError("seed", f"must be the seed new items are drawn with (a whole number from 0), or null, got "
                                     f"{type(seed).__name__} {seed!r:.60}; the file is damaged or was not written by "
                                     "learn.export()")
        dls = cls(recipe=recipe, device=device)
        dls._state_bs, dls._state_seed = int(bs), None if seed is None else int(seed)
        return dls

    def __repr__(self) -> str:
        parts = [f"{n}={'?' if (k := dl.n if isinstance(dl, ForeignLoader) else len(dl.dataset)) is None else k} "
                 f"items/{len(dl)} batches" for n, dl in zip(("train", "valid", "extra"), self.loaders)]
        if not parts:  # rebuilt from an export: it encodes new items (test_dl, predict) and holds none
            vocab = self.vocab if self.recipe is not None else None
            shown = "" if vocab is None else f", vocab={_vocab_shown(vocab)}"
            parts = [f"no data: encodes new items as at training{shown}"]
        return f"DataLoaders({', '.join(parts)}, device={self.device}, recipe={type(self.recipe).__name__})"
