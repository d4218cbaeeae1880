"""The DataLoader: seeded index batches, gathered whole from stores, prefetched in threads.

Work per batch is a gather from each store (zero-copy where the store allows) and the batch
transforms; nothing is done per item in Python. Threads are enough because gathers, OpenCV and torch
release the GIL.
"""
from __future__ import annotations

import copy
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from pipekit.core.errors import DataError, ParameterError, PipelineStepError, collecting
from pipekit.core.validate import (ARGUMENT_SYNONYMS, Interval, bs_or_batch_size, check_positive_int, plain_number,
                                   unknown_names)
from pipekit.data.probe import stage
from pipekit.data.seed import PROCESS_MARK, kept_random_states, reseed_generation, reseeded_stream
from pipekit.data.store import ListStore, StoreRows, TensorStore, gather_context, gathering
from pipekit.data.transform import BatchContext, BatchPipeline, BatchTransform, Pipeline, as_list, runs_on_split


def default_device() -> torch.device:
    """The device pipekit puts batches (and a learner its model) on when none is given: the GPU (``cuda``) when
    torch sees one, else the CPU; ``dls.to(device)`` or ``device=`` on a loader or factory chooses another.

    >>> default_device().type in ("cuda", "cpu")
    True
    """
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def checked_device(device: str | torch.device, who: str, on_cpu: str = "device='cpu'") -> torch.device:
    """``device`` as a ``torch.device`` this machine has, or a ParameterError starting with ``who`` that says what to
    give (torch would fail deep inside with 'Torch not compiled with CUDA enabled' or an invalid device ordinal);
    ``on_cpu``: how the caller's user asks for the CPU.

    >>> checked_device("cpu", "profile")
    device(type='cpu')
    >>> checked_device("xla", "profile")
    Traceback (most recent call last):
    pipekit.core.errors.ParameterError: profile: device='xla' is not one pipekit puts models and batches on; give 'cpu', 'cuda', 'cuda:1' or 'mps', or device='cpu'
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ParameterError(f"{who}: device={device!r} is not a device; give 'cpu', 'cuda' or 'cuda:1', or "
                             f"{on_cpu}") from e
    if dev.type not in ("cpu", "cuda", "mps"):  # meta, xla, hpu...: no weights to predict with, or a backend
        raise ParameterError(f"{who}: device={str(device)!r} is not one pipekit puts models and batches on; give "
                             f"'cpu', 'cuda', 'cuda:1' or 'mps', or {on_cpu}")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ParameterError(f"{who}: device={str(device)!r} but no CUDA device is available here; use the CPU "
                                 f"with {on_cpu}")
        if dev.index is not None and dev.index >= n:
            raise ParameterError(f"{who}: device={str(device)!r} but this machine has {n} CUDA device(s) (cuda:0 to "
                                 f"cuda:{n - 1}); give one of those, or {on_cpu}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"{who}: device={str(device)!r} but MPS is not available here; give {on_cpu}")
    return dev


def _to(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device, non_blocking) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device, non_blocking) for k, v in batch.items()}
    return batch


def to_device(b: Any, device: torch.device | str | None = None, non_blocking: bool = False) -> Any:
    """Every tensor in ``b`` (a tensor, or tuples, lists and dicts of them, nested) moved to ``device`` (default:
    :func:`default_device`, the GPU when there is one), anything else as it is: fastai's ``to_device``, chapter 19's
    ``xb, yb = to_device(self.batch)``.

    >>> xb, yb = to_device((torch.zeros(2, 3), [torch.ones(2)]), "cpu")
    >>> xb.device.type, type(yb).__name__, yb[0].device.type
    ('cpu', 'list', 'cpu')
    """
    return _to(b, default_device() if device is None else device, non_blocking)


def is_tensor_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` is a ``torch.utils.data.TensorDataset``, or a subclass reading items as it does (its
    ``__getitem__`` and ``__len__`` are TensorDataset's): item ``i`` is ``tuple(t[i] for t in dataset.tensors)``,
    drawn at random by nothing, so a :class:`DataLoader` gathers its batches from the tensors themselves.

    >>> from torch.utils.data import TensorDataset
    >>> is_tensor_dataset(TensorDataset(torch.zeros(3, 2))), is_tensor_dataset([(torch.zeros(2),)])
    (True, False)
    """
    kind, td = type(dataset), torch.utils.data.TensorDataset
    return (isinstance(dataset, td) and kind.__getitem__ is td.__getitem__ and kind.__len__ is td.__len__
            and all(isinstance(t, torch.Tensor) for t in getattr(dataset, "tensors", None) or [None]))


def is_map_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` is a map-style dataset a :class:`DataLoader` reads item by item: an object with
    ``__len__`` and ``__getitem__`` (a ``torch.utils.data.Dataset`` such as ``TensorDataset``, or a class of one's
    own, as the book's chapter 19 writes) that is not a pipekit dataset (it gathers batches itself), a list, an
    array, a table, a mapping or a text.

    >>> from torch.utils.data import TensorDataset
    >>> is_map_dataset(TensorDataset(torch.zeros(3, 2))), is_map_dataset([1, 2]), is_map_dataset({"x": [1]})
    (True, False, False)
    """
    kind = type(dataset)
    return (hasattr(kind, "__len__") and hasattr(kind, "__getitem__")
            and not callable(getattr(dataset, "gather", None))
            and not isinstance(dataset, (list, tuple, range, str, bytes, bytearray, Mapping, torch.utils.data.DataLoader))
            and not hasattr(dataset, "__array__") and not hasattr(dataset, "iloc"))


TABLE_ATTRIBUTES = ("xs", "ys", "y")


def table_attribute(holder: Any, name: str) -> Any:
    """A tabular split's ``xs``, ``ys`` or ``y`` asked of the loader or subset built over it (fastai's
    ``dls.train.xs``, ``dls.valid_ds.y``, ``dls.test_dl(df).xs``); any other missing name is the usual
    AttributeError."""
    kind = type(holder).__name__
    described = getattr(type(holder), name, None)
    if isinstance(described, property):  # a property that refused: its own message, not this one
        return described.__get__(holder)
    if name not in TABLE_ATTRIBUTES:
        raise AttributeError(f"'{kind}' object has no attribute '{name}'")
    dataset = holder.__dict__.get("dataset", holder)
    table = getattr(dataset, "__dict__", {}).get("table")
    if table is None and getattr(dataset, "made_like", None) is not None:
        table = _new_rows_table(dataset, kind, name)
    if table is None:
        raise AttributeError(f"'{kind}' object has no attribute '{name}': {name} is a table's, and this loader reads "
                             "no table; the loaders of a table have it (dls.train.xs, dls.valid_ds.y, "
                             "dls.test_dl(df).xs), as the table itself does (dls.tabular.train.xs, to.valid.y)")
    return getattr(table, name)


def _new_rows_table(dataset: Any, kind: str, name: str) -> Any:
    """The processed rows of a tabular test loader's dataset (``dls.test_dl(df)``), made on first asking from its
    ``items`` by the processing of the table it was made like, and kept as its ``table``."""
    items = getattr(dataset, "items", None)
    if items is None:
        raise AttributeError(f"'{kind}' object has no attribute '{name}': this test loader did not keep the rows it "
                             "was made from (a file, or rows given one at a time); process them as it did with "
                             f"dls.tabular.new(rows).{name} (fastai's to.new(rows))")
    with collecting():  # test_dl has warned already about what the rows hold
        table = dataset.made_like.new_rows(items)
    dataset.table = table
    return table


def loader_seed(seed: Any, who: str) -> int:
    """The seed a loader draws its order and augmentation with: a whole number from 0 (NumPy's, Python's and 0-d
    torch integers), or None for one drawn from NumPy's global generator: after :func:`~pipekit.data.set_seed`
    (or ``np.random.seed``) an unseeded loader shuffles the same way. Torch's generator is left as it was, so building
    loaders does not change the weights a model built after them starts from.

    >>> loader_seed(3, "DataLoader"), 0 <= loader_seed(None, "DataLoader") < 2**31
    (3, True)
    >>> loader_seed(-1, "DataLoader")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: DataLoader: seed=-1 is not a seed; give a whole number from 0 (or None for a random one)
    """
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    if not Interval(0, 2**64 - 1, integer=True).accepts(seed):
        raise ParameterError(f"{who}: seed={seed!r:.40} is not a seed; give a whole number from 0 (or None for a "
                             "random one)")
    return int(plain_number(seed))


def _reseed_record(base: int | None, drawn: bool = False) -> tuple[str, int, int | None, int | None, bool]:
    """A loader's record of the ``set_seed`` calls it has seen (see ``DataLoader._reseeded``), taken now, for a
    loader drawing from seed ``base``, given by the user or ``drawn`` from NumPy's generator."""
    return (PROCESS_MARK, *reseed_generation(), base, drawn)


class DataLoader:
    """Batches of a dataset (or subset): a tuple of tensors per batch, on ``device``.

    ``seed`` fixes the shuffling and the per-batch RNG handed to batch transforms, so the same seed
    gives the same batches and the same augmentation, epoch by epoch; a later :func:`~pipekit.data.set_seed` starts
    it afresh at epoch 0 of that seed. Without one, the loader draws its seed from
    NumPy's global generator as it is built, so :func:`~pipekit.data.set_seed` repeats it (``torch.manual_seed``
    alone does not: torch's generator is left to the model's weights); a later ``set_seed`` with another value than
    the one in force then starts it afresh on a stream made of both.

    ``dataset`` is a pipekit dataset, a list of items (``list(zip(x, y))``, ``range(15)``), or any map-style
    dataset, an object with ``__len__`` and ``__getitem__`` (a ``torch.utils.data.Dataset`` subclass, the book's own
    ``Dataset`` class): its items are read as each batch is made, ``dataset[i]`` for each of the batch's positions,
    every epoch (an augmentation in ``__getitem__`` draws anew each time), and batched as torch's loader does
    (tuples or lists of tensors become a tuple of stacked tensors; see :class:`MapItems`). Its item 0 is read as
    the loader is built (the random generators given back after), so with no ``before_batch``/``create_batch`` an
    item 0 that cannot be batched is refused then; any other item is refused as its batch is made, named by its
    dataset position, or by its place in the batch after a ``before_batch`` step that reorders or remakes the
    items (a ``create_batch`` function batches them its own way). A ``TensorDataset(x, y)`` (see
    :func:`is_tensor_dataset`) draws nothing: each batch is gathered from its tensors at once, as from stores.
    Items are batches' parts side by side: a dict item is refused, naming the fix (give ``(x, y)`` tuples). With
    ``before_batch``/``create_batch``, a map-style dataset's uint8 (C, H, W) images stay (B, C, H, W) as torch's
    loader stacks them, while a list of items' images become pipekit's (B, H, W, C) image batch, as a
    ``TfmdLists``' or ``Datasets``' items through ``after_item`` do.

    ``num_workers`` is the number of prefetch threads making the next batches while one is used (default: 2 when
    gathering or batch transforms do real work, else 0, making each batch when it is asked for; 0 for a map-style
    dataset's items, :class:`MapItems` (``reads_in_order``), a subset of them or a loader built on another's
    ``dl.dataset`` too, whose ``__getitem__`` then draws its random numbers in the iterating thread, in order, so
    ``torch.manual_seed`` or :func:`~pipekit.data.set_seed` repeats them; with prefetch threads it reads items in
    them, and the draws' order is the threads'). A loader whose
    dataset holds a store drawing at random as items are fetched (``draws_per_fetch``: images through a user's item
    transforms, :class:`~pipekit.vision.cache.LiveImageStore`) makes its batches in the thread that iterates it,
    whatever ``num_workers`` says: those draws reseed the process's ``random`` and ``np.random`` and give them
    their states back after each item, which only the thread drawing them can do unseen.

    >>> from pipekit.data import TensorStore
    >>> ds = ArrayDataset([TensorStore(np.arange(10)), TensorStore(np.arange(10) % 2)])
    >>> dl = DataLoader(ds, bs=4, shuffle=True, seed=0)
    >>> len(dl), [b[0].shape[0] for b in dl]
    (3, [4, 4, 2])
    """

    def __init__(self, dataset: Any, bs: int = 64, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, device: str | torch.device | None = None,
                 batch_tfms: BatchPipeline | Sequence | None = None, num_workers: int | None = None,
                 augment: bool | None = None, pin_memory: bool | None = None, allow_empty: bool = False,
                 batch_size: int | None = None, before_batch: Any = None, create_batch: Any = None):
        steps = as_list(before_batch)
        for name, f in [*(("before_batch", f) for f in steps), ("create_batch", create_batch)]:
            if f is not None and not callable(f):
                raise ParameterError(f"DataLoader: {name} takes a function of the list of a batch's items (fastai's "
                                     f"before_batch=pad_input, create_batch=lambda items: ...), got {f!r:.80}")
        if batch_size is not None:  # fastai's and torch's name for bs
            if bs != 64 and bs != batch_size:
                raise ParameterError(f"DataLoader: bs={bs} and batch_size={batch_size} are one setting; give one")
            bs = batch_size
        check_positive_int("DataLoader", "bs", bs)
        map_style = is_map_dataset(dataset)
        if map_style and not len(dataset):
            raise ParameterError(f"DataLoader: the dataset ({type(dataset).__name__}) is empty; give one with items "
                                 "to batch")
        if map_style and not (steps or create_batch is not None) and is_tensor_dataset(dataset):
            # TensorDataset(x, y) draws nothing as it is read: its tensors are stores, each batch one gather per
            # tensor (no copy of them, no item read one at a time)
            dataset = ArrayDataset([TensorStore(t.detach().cpu()) for t in dataset.tensors])
            self.bare = False
        elif map_style:
            # a torch Dataset (a subclass) or the book's own class with __len__ and __getitem__: its items are read
            # batch by batch, so what __getitem__ draws at random is drawn anew every epoch
            dataset = MapItems(dataset)
            first = dataset.read_first()  # kept for n_inp, geometry: no other read
            if not (steps or create_batch is not None):  # refused now, naming the item, not at the first batch
                dataset.collate([first], np.zeros(1, dtype=np.int64))
            self.bare = not isinstance(first, (tuple, list))
        if isinstance(dataset, (list, tuple, range)) or (isinstance(dataset, (np.ndarray, torch.Tensor))
                                                          and dataset.ndim >= 1):
            if not len(dataset):
                raise ParameterError("DataLoader: the list of items is empty; give the items to batch (e.g. "
                                     "list(zip(x, y)))")
        if (steps or create_batch is not None) and (isinstance(dataset, (list, tuple, range)) or (
                isinstance(dataset, (np.ndarray, torch.Tensor)) and dataset.ndim >= 1)):
            # items a step of the batch's list reads as they are (texts of different lengths to pad): not stacked
            self.bare = not isinstance(dataset[0], (tuple, list))
            dataset = ItemsDataset(list(dataset))
        elif isinstance(dataset, (list, tuple, range)) or (isinstance(dataset, (np.ndarray, torch.Tensor))
                                                            and dataset.ndim >= 1):
            # the book's DataLoader(list(zip(x, y)), batch_size=256) and DataLoader(range(15), batch_size=5); a
            # tensor or array of numbers is one store as it is
            numbers = isinstance(dataset, torch.Tensor) or (isinstance(dataset, np.ndarray)
                                                            and dataset.dtype.kind in "biuf")
            # as fastai's: items that are not tuples batch to bare tensors, and texts to tuples of texts
            self.bare = numbers or not isinstance(dataset[0], (tuple, list))
            dataset = ArrayDataset([TensorStore(torch.as_tensor(dataset))] if numbers else
                                   stack_items(list(dataset), "", who="DataLoader", single_ok=True, texts_ok=True))
        if not callable(getattr(dataset, "gather", None)):
            raise ParameterError(f"DataLoader takes a pipekit dataset (stores it gathers batches from), a dataset with "
                                 f"__len__ and __getitem__ (a torch Dataset) or a list of items such as "
                                 f"list(zip(x, y)), got a {type(dataset).__name__}: for tensors x, y "
                                 "use DataLoader(list(zip(x, y)), bs=...), DataLoaders.from_dsets(list(zip(x_train, "
                                 "y_train)), list(zip(x_valid, y_valid)), bs=...) or DataLoader(ArrayDataset("
                                 "[TensorStore(x), TensorStore(y)]), bs=...)")
        if len(dataset) == 0 and not allow_empty:  # a loader of new items (test_dl) may hold none: no batch
            raise ParameterError("DataLoader: the dataset is empty; check the items and the split")
        self.dataset, self.bs, self.shuffle, self.drop_last = dataset, int(bs), shuffle, drop_last
        drawn, seed = seed is None, loader_seed(seed, "DataLoader")
        # the seed and epoch the next pass draws with, and the set_seed call seen last (see _follow_set_seed)
        self.__dict__.update(seed=seed, epoch=0, _reseeded=_reseed_record(seed, drawn))
        self.device = torch.device(device) if device is not None else default_device()
        self.batch_tfms = (batch_tfms if isinstance(batch_tfms, BatchPipeline)
                           else BatchPipeline(batch_tfms or []))
        if num_workers is None:
            # a thread hand-off costs ~30us: only worth it when gathering or batch transforms do real work
            stores = getattr(dataset, "stores", ())
            busy = len(self.batch_tfms) > 0 or any(getattr(s, "prefetch_worthy", True) for s in stores) or not stores
            # a map-style dataset's __getitem__ may draw from the process's generators (MapItems.reads_in_order):
            # read in the iterating thread, its draws follow torch.manual_seed / set_seed, as torch's loader with no
            # workers
            in_order = self._draws_per_fetch() or getattr(dataset, "reads_in_order", False)
            num_workers = min(2, os.cpu_count() or 1) if busy and not in_order else 0
        self.num_workers = int(num_workers)
        if self.num_workers < 0:
            raise ParameterError(f"DataLoader: num_workers must be >= 0, got {num_workers}")
        self.augment = bool(shuffle) if augment is None else augment
        self.pin_memory = (self.device.type == "cuda") if pin_memory is None else pin_memory
        self.rank, self.world_size = 0, 1
        #: functions of each batch's list of items, run in order before it is collated (fastai's ``before_batch``)
        self.batch_steps: list = steps
        #: what makes a batch of the list of items instead of collating it (fastai's ``create_batch``)
        self.collate_with: Any = create_batch

    #: the weight of each item (summing to 1) an epoch draws its items by, with replacement (see :meth:`weighted`)
    wgts: np.ndarray | None = None
    #: how many items a weighted epoch draws (None: as many as the loader has)
    n_draws: int | None = None
    #: how many items, drawn without replacement, an epoch reads (see :meth:`partial`); None: all of them
    partial_n: int | None = None
    batch_steps: list = []
    collate_with: Any = None

    def __getattr__(self, name: str) -> Any:
        return table_attribute(self, name)

    #: ``(mark, n, born, base, drawn)``: the process that recorded it (:data:`~pipekit.data.seed.PROCESS_MARK`), the
    #: :func:`~pipekit.data.seed.reseed_generation` count seen last and the ``set_seed`` value in force when the loader
    #: was built (None: none yet), the seed it was built with (or given since), which a later ``set_seed`` starts it
    #: afresh from, and whether that seed was drawn from NumPy's generator (no ``seed=`` given); copies carry it
    _reseeded: tuple[str, int, int | None, int | None, bool] | None = None

    def _follow_set_seed(self) -> None:
        """Start afresh if :func:`~pipekit.data.set_seed` was called since this loader last looked: epoch 0 of its own
        seed when it was given one (``seed=``: that seed fixes its batches), or when the value given is the one in
        force as its seed was drawn (re-running a learner's cell after ``set_seed`` as the loaders' cell began);
        else a stream made of its drawn seed and the value given (see :func:`~pipekit.data.seed.reseeded_stream`):
        the same call gives the same batches and augmentation, another call other ones. Read as the next epoch's
        number or seed is (``dl.epoch``, ``dl.seed``); a loader unpickled from another process (or an older pipekit)
        reads as its seed alone says until the next ``set_seed``."""
        state = self.__dict__
        n, given = reseed_generation()
        seen = state.get("_reseeded")
        if seen is None or seen[0] != PROCESS_MARK:  # its seed drawn or given, as recorded (none: its own)
            state["_reseeded"] = _reseed_record(state.get("seed"), seen is not None and bool(seen[-1]))
        elif seen[1] != n:
            _, _, born, base, drawn = seen
            state["_reseeded"] = (PROCESS_MARK, n, born, base, drawn)
            if base is not None and given is not None:
                state["seed"] = reseeded_stream(base, given) if drawn and given != born else base
            state["epoch"] = 0

    def seed_was_drawn(self) -> None:
        """Mark this loader's seed as drawn from NumPy's generator (loaders built together from one drawn seed), so a
        later ``set_seed`` with another value than the one in force then gives it other batches (see
        :meth:`_follow_set_seed`)."""
        self.__dict__["_reseeded"] = _reseed_record(self.__dict__["seed"], drawn=True)

    @property
    def epoch(self) -> int:
        """The number of the epoch the next pass reads (0 for the first, and again after a
        :func:`~pipekit.data.set_seed`); its seed and this number decide its batches."""
        self._follow_set_seed()
        return self.__dict__["epoch"]

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._follow_set_seed()
        self.__dict__["epoch"] = value

    @property
    def seed(self) -> int:
        """The seed the next pass draws its order and augmentation with: the one given (or drawn) as the loader was
        built, or, after a :func:`~pipekit.data.set_seed`, one made of it and the seed given there."""
        self._follow_set_seed()
        return self.__dict__["seed"]

    @seed.setter
    def seed(self, value: int) -> None:
        self._follow_set_seed()
        state = self.__dict__
        if value != state.get("seed"):  # a later set_seed starts from it, drawn or given as the loader's was
            seen = state.get("_reseeded")
            state["_reseeded"] = _reseed_record(value, bool(seen and seen[-1]))
        state["seed"] = value

    def _stream_seed(self) -> int:
        """The seed of the epoch under way, as it began (a ``set_seed`` during it counts from the next)."""
        return self.__dict__["seed"]

    # ------------------------------------------------------------------ what a batch is
    @property
    def n(self) -> int:
        """The number of items this loader reads (its dataset's length; ``len(dl)`` is its number of batches)."""
        return len(self.dataset)

    @property
    def items(self) -> Any:
        """The items this loader reads, in the dataset's order (fastai's ``dls.valid.items``, ``tst_dl.items``):
        the files, rows or values of a DataBlock's split or of ``test_dl(items)``."""
        items = getattr(self.dataset, "items", None)
        if items is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute 'items': this loader's dataset "
                                 f"({type(self.dataset).__name__}) was built from arrays, not from items")
        return items

    @property
    def n_inp(self) -> int:
        """How many of each batch's elements are model inputs; the rest are targets."""
        return self.dataset.n_inp

    @property
    def vocab(self) -> Any:
        """The vocab of this loader's items, as ``dls.vocab`` gives it (fastai's ``dls.train.vocab``); None for a
        dataset with none (built from arrays, or a ``test_dl`` of inputs alone, whose blocks hold no vocab)."""
        return getattr(self.dataset, "vocab", None)

    @property
    def geometry(self) -> tuple[str | None, ...]:
        """What each batch element carries spatially (see ``TransformBlock.geometry``)."""
        return tuple(self.dataset.geometry)

    @property
    def blocks(self) -> tuple:
        """The fitted blocks of this loader's items, inputs then targets (empty for a dataset built from arrays)."""
        return tuple(getattr(self.dataset, "blocks", ()))

    # ------------------------------------------------------------------ the transforms of each stage
    @property
    def after_item(self) -> Pipeline:
        """The item transforms this loader's items went through, in the order they run, as items of its split
        (fastai's ``dls.train.after_item``; :meth:`decode_split`): a transform of the other split (a
        ``RandTransform``'s ``split_idx=0`` on a validation loader) is left out. A DataBlock's are its ``item_tfms``
        (``Resize``, ``RandomResizedCrop``), run once as the items are encoded and cached (presizing), not at each
        fetch; decoding an image to its uint8 pixels (fastai's ``ToTensor``) is its block's own. Loaders of a
        ``TfmdLists`` or ``Datasets`` run their ``after_item`` on each item as it is fetched. Empty for tables,
        texts and loaders built from arrays, whose items go through none. Set by ``DataBlock(item_tfms=...)``
        (``dblock.new(item_tfms=...)``) or ``tls.dataloaders(after_item=...)``, never on a loader."""
        return Pipeline([t for t in _item_tfms_of(self.dataset) if runs_on_split(t, self.decode_split())])

    @after_item.setter
    def after_item(self, value: Any) -> None:
        raise _stage_not_settable("after_item", "item_tfms")

    @property
    def before_batch(self) -> Pipeline:
        """The functions of each batch's list of items this loader runs before collating it (fastai's
        ``dls.train.before_batch``), in order: ``tls.dataloaders(before_batch=pad_input)``'s. Empty for a
        DataBlock's loaders, which gather whole batches from their stores: texts are padded, and boxes were
        padded when they were encoded (``bb_pad``'s work), with no step per batch. Set by
        ``dataloaders(before_batch=...)`` of a ``TfmdLists`` or ``Datasets``, or ``DataLoader(items,
        before_batch=...)``, never on a loader."""
        return Pipeline([*as_list(getattr(getattr(self.dataset, "before_batch", None), "steps", None)),
                         *self.batch_steps])

    @before_batch.setter
    def before_batch(self, value: Any) -> None:
        raise _stage_not_settable("before_batch", None)

    @property
    def after_batch(self) -> BatchPipeline:
        """The batch transforms of this loader, in the order they run (fastai's ``dls.train.after_batch``): a
        DataBlock's blocks' own (``IntToFloat``, fastai's ``IntToFloatTensor``) then its ``batch_tfms``
        (``aug_transforms``, ``Normalize``). Every loader of the data lists the same ones, as fastai's do: each
        transform decides for itself what it does on a batch that is not augmented (the validation loader,
        ``test_dl``), where an augmentation draws nothing and at most resamples to its ``size``. Set by
        ``DataBlock(batch_tfms=...)`` (``dblock.new(batch_tfms=...)``), never on a loader."""
        return BatchPipeline(list(self.batch_tfms))

    @after_batch.setter
    def after_batch(self, value: Any) -> None:
        raise _stage_not_settable("after_batch", "batch_tfms")

    def _n_drawn(self) -> int:
        """How many items an epoch reads: the dataset's, or what a weighted or partial loader draws of them."""
        if not self.shuffle:
            return self.n
        if self.wgts is not None:
            return self.n if self.n_draws is None else self.n_draws
        return self.n if self.partial_n is None else min(self.partial_n, self.n)

    def __len__(self) -> int:
        n = self._n_drawn()
        n_batches = n // self.bs if self.drop_last else -(-n // self.bs)
        return -(-n_batches // self.world_size)

    def get_idxs(self, epoch: int | None = None) -> np.ndarray:
        """The positions in the dataset the items of an epoch (default: the next one, ``dl.epoch``) are read from,
        in order, as fastai's ``dl.get_idxs()``: every item in order, or, shuffling, a permutation drawn from
        ``(seed, epoch)``; a weighted loader's draws with replacement by ``wgts``, a partial one's ``partial_n``
        items without replacement, from the same generator (the same seed, the same draws). A loader that is not
        shuffled reads every item in order, as fastai's weighted and partial loaders do.

        >>> dl = DataLoader(list(range(6)), bs=2, shuffle=True, seed=0)
        >>> sorted(dl.get_idxs().tolist()), dl.get_idxs().tolist() == dl.get_idxs(0).tolist()
        ([0, 1, 2, 3, 4, 5], True)
        """
        if epoch is not None and not Interval(0, None, integer=True).accepts(epoch):
            raise ParameterError(f"get_idxs: epoch={epoch!r:.40} is not an epoch; give a whole number from 0 (or "
                                 "leave it out for the next one, dl.epoch)")
        epoch = self.epoch if epoch is None else int(plain_number(epoch))
        if not self.shuffle:
            return np.arange(self.n)
        rng = np.random.default_rng([self.seed, epoch])
        if self.wgts is not None:
            return rng.choice(self.n, size=self._n_drawn(), replace=True, p=self.wgts)
        if self.partial_n is not None:
            return rng.choice(self.n, size=self._n_drawn(), replace=False)
        return rng.permutation(self.n)

    def batch_plan(self, epoch: int) -> list[Any]:
        """What each batch of an epoch is made of (here: arrays of row positions in the dataset, see
        :meth:`get_idxs`)."""
        order = self.get_idxs(epoch)
        stop = (len(order) // self.bs) * self.bs if self.drop_last else len(order)
        return self.shard_plan([order[i:i + self.bs] for i in range(0, stop, self.bs)])

    def weighted(self, wgts: Any, n: int | None = None) -> DataLoader:
        """A copy drawing each epoch's ``n`` items (default: as many as it has) with replacement, item ``i`` with
        probability proportional to ``wgts[i]``, as fastai's ``WeightedDL``: the draws come from the loader's
        ``(seed, epoch)`` generator, so the same seed draws the same items. It is shuffled (an unshuffled loader
        reads its items in order, as fastai's does)."""
        try:
            w = np.asarray(wgts, dtype=np.float64).reshape(-1) if not isinstance(wgts, torch.Tensor) else \
                wgts.detach().cpu().double().numpy().reshape(-1)
        except (TypeError, ValueError):
            raise ParameterError(f"weighted: wgts must be numbers, one per training item (a list, array, Series or "
                                 f"tensor), got {type(wgts).__name__}") from None
        if len(w) != self.n:
            raise ParameterError(f"weighted: wgts has {len(w)} weights and the loader {self.n} items; give one weight "
                                 "per training item (for a DataBlock's items, dblock.weighted_dataloaders(source, "
                                 "wgts) takes one per item of the source and keeps the training ones)")
        bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
        if len(bad):
            raise ParameterError(f"weighted: wgts[{int(bad[0])}] is {w[bad[0]]}; weights are finite numbers >= 0")
        if w.max(initial=0.0) <= 0:
            raise ParameterError("weighted: every weight in wgts is 0; give at least one item a positive weight")
        w = w / w.max()  # to 0..1 first: a sum of huge weights would overflow to inf
        if n is not None:
            check_positive_int("weighted", "n", n)
        self._check_own_plan("weighted")
        return self.new(wgts=w / w.sum(), n_draws=None if n is None else int(n), partial_n=None, shuffle=True)

    def partial(self, partial_n: int) -> DataLoader:
        """A copy reading ``partial_n`` items each epoch (all of them when it has fewer), drawn at random without
        replacement, another draw each epoch, as fastai's ``PartialDL``; the draws come from the loader's
        ``(seed, epoch)`` generator, so the same seed draws the same items."""
        check_positive_int("partial", "partial_n", partial_n)
        self._check_own_plan("partial")
        return self.new(partial_n=int(partial_n), wgts=None, n_draws=None, shuffle=True)

    def _check_own_plan(self, what: str) -> None:
        if type(self).batch_plan is not DataLoader.batch_plan:
            raise ParameterError(f"{what}: a {type(self).__name__} plans its own batches (sorted by length, a "
                                 "language model's windows), so it draws no weighted or partial epochs; use them "
                                 "with a DataLoader of items")

    def shard_plan(self, plan: list[Any]) -> list[Any]:
        """This process's share of an epoch's batches: every ``world_size``-th batch from ``rank``.

        Every process gets the same number of batches (the first ones repeat when they do not divide
        evenly), which is what DistributedDataParallel's collective steps need.
        """
        if self.world_size == 1:
            return plan
        per = -(-len(plan) // self.world_size)
        padded = plan + plan[: per * self.world_size - len(plan)]
        return padded[self.rank::self.world_size]

    def shard(self, rank: int, world_size: int) -> DataLoader:
        """A copy that yields only process ``rank``'s batches out of ``world_size`` (same seed, same order).

        >>> from pipekit.data import TensorStore
        >>> ds = ArrayDataset([TensorStore(np.arange(10))], n_inp=1)
        >>> [b[0].tolist() for b in DataLoader(ds, bs=3).shard(1, 2)]
        [[3, 4, 5], [9]]
        """
        if not 0 <= rank < world_size:
            raise ParameterError(f"shard: rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        dl = self.new()
        dl.rank, dl.world_size = int(rank), int(world_size)
        return dl

    def create_batch(self, entry: Any) -> tuple:
        """Gather one batch (CPU tensors) for a plan entry; with ``before_batch`` steps or a ``create_batch``
        function, the list of its items through the steps, then that function (else collated)."""
        if not self.batch_steps and self.collate_with is None:
            return self.dataset.gather(entry)
        positions = np.asarray(entry, dtype=np.int64)
        own = isinstance(self.dataset, ItemsDataset)
        made = self.dataset.made_at(positions) if own else [self.dataset[int(p)] for p in positions]
        items = list(made)  # a step sorting the list in place leaves ``made`` as read
        for f in ([self.dataset.before_batch] if own and self.dataset.before_batch is not None else []) + \
                list(self.batch_steps):
            items = f(items)
        if self.collate_with is None:
            collate = self.dataset.collate if own else (
                lambda v, at, after: collate_items(v, index=at, after=after))
            return collate_stepped(collate, made, items, positions.reshape(-1))
        b = self.collate_with(items)
        if "bare" in self.__dict__:  # what create_batch makes is the batch as given (a bare tensor, a tuple)
            self.bare = not isinstance(b, (tuple, list))
        return (b,) if not isinstance(b, (tuple, list)) else tuple(b)

    def _deferred(self) -> tuple[int, ...]:
        """Batch elements the first batch transform reads from their store itself (an augmentation reading
        the memory-mapped image cache), so they are not gathered into a batch first: on the CPU, where batch
        transforms run right after the gather, and only for the base loader's gather."""
        if (self.device.type != "cpu" or type(self).create_batch is not DataLoader.create_batch
                or self.batch_steps or self.collate_with is not None or not isinstance(self.dataset, ArrayDataset)):
            return ()
        first = self.batch_tfms.first_step()
        if first is None:
            return ()
        geometry = self.geometry
        return tuple(j for j, s in enumerate(self.dataset.stores)
                     if j < len(geometry) and first.reads_rows(s, geometry[j], j, self.n_inp))

    def context(self, epoch: int, i: int, entry: Any = None) -> BatchContext:
        """The context of batch ``i`` of ``epoch`` for the batch transforms; ``entry``, the batch's plan entry (its
        positions in the dataset), gives them each image's source size (``BatchContext.source_sizes``), so a random
        crop is drawn in the source's proportions however the batch was gathered."""
        return BatchContext(geometry=self.geometry, n_inp=self.n_inp, train=self.augment, device=self.device,
                            key=(self._stream_seed(), epoch, i), source_sizes=self._source_sizes(entry))

    def _source_sizes(self, entry: Any) -> tuple[np.ndarray | None, ...]:
        """Per batch element, the (B, 2) source sizes of the batch of plan entry ``entry`` for an image or mask
        element whose store knows them (``Store.crop_sizes``), else None; () when the rows are not known (no
        entry, a dataset that is not stores side by side, an entry that is not positions) or none are."""
        if entry is None or not isinstance(self.dataset, ArrayDataset):
            return ()
        geometry = self.geometry
        sizes = [getattr(s, "crop_sizes", None) if j < len(geometry) and geometry[j] in ("image", "mask") else None
                 for j, s in enumerate(self.dataset.stores)]
        if all(z is None for z in sizes):
            return ()
        positions = np.asarray(entry)
        if positions.ndim != 1 or positions.dtype.kind not in "iu":
            return ()
        rows = self.dataset.idxs[positions]
        return tuple(None if z is None else np.asarray(z)[rows] for z in sizes)

    # ------------------------------------------------------------------ producing batches
    def _split_tfms(self) -> tuple[BatchPipeline, BatchPipeline]:
        """(host, device) batch transforms: the ``on_host`` ones run before the transfer, in the workers."""
        host = [t for t in self.batch_tfms if getattr(t, "on_host", False)]
        if not host:
            return BatchPipeline([]), self.batch_tfms
        return BatchPipeline(host), BatchPipeline([t for t in self.batch_tfms if not getattr(t, "on_host", False)])

    def _produce(self, epoch: int, i: int, entry: Any) -> tuple:
        # stores drawing their items as they are fetched (a user's item transform on images) draw from this batch's
        # key and split: the same batch gives the same items, whichever thread gathers it
        with gathering((self._stream_seed(), epoch, i), 0 if self.augment else 1):
            if self.device.type == "cpu":
                if not len(self.batch_tfms):
                    with stage("collate"):
                        return tuple(self.create_batch(entry))
                deferred = self._deferred()
                with stage("collate"):
                    b = tuple(self.dataset.gather(entry, deferred) if deferred else self.create_batch(entry))
                b = self.batch_tfms.encode(b, self.context(epoch, i, entry))
                # a transform that passed on rows it was offered (none of pipekit's do) still yields tensors
                return tuple(x.gather() if isinstance(x, StoreRows) else x for x in b) if deferred else b
            with stage("collate"):
                b = tuple(self.create_batch(entry))
        host, _ = self._split_tfms()
        if len(host):
            b = host.encode(b, self.context(epoch, i, entry))
        if self.pin_memory:
            with stage("pin memory"):
                b = tuple(t.pin_memory() if isinstance(t, torch.Tensor) else t for t in b)
        return b

    def _finish(self, epoch: int, i: int, b: tuple, entry: Any = None) -> tuple:
        """Batch ``i`` made by ``_produce`` from plan entry ``entry``, on the device with the batch transforms run
        after the transfer (which get its rows' source sizes from the entry, see :meth:`context`)."""
        if self.device.type == "cpu":
            return b
        with stage("to device"):
            b = _to(b, self.device, non_blocking=self.pin_memory)
        _, device = self._split_tfms()
        return device.encode(b, self.context(epoch, i, entry)) if len(device) else b

    def _draws_per_fetch(self) -> bool:
        """Whether a store of the dataset draws from the process's random generators as its items are fetched
        (its ``draws_per_fetch``): its batches are then made in the thread iterating the loader, never in
        prefetch threads, so the generators it reseeds and restores around each item are the iterating thread's
        own business (the code around the loop draws the numbers it would without it)."""
        return bool(getattr(self.dataset, "draws_per_fetch", False)) or \
            any(getattr(s, "draws_per_fetch", False) for s in getattr(self.dataset, "stores", ()))

    def workers_in_effect(self, n_batches: int) -> tuple[int, str | None]:
        """The prefetch threads an epoch of ``n_batches`` batches uses, and why none when ``num_workers`` asks for
        some (else None). The batches are made in the thread iterating the loader when ``num_workers`` is 0, when a
        store draws at random as its items are fetched (see :meth:`_draws_per_fetch`), and when the epoch is a
        single batch (there is nothing to work ahead on).

        >>> from pipekit.data import TensorStore
        >>> dl = DataLoader(ArrayDataset([TensorStore(np.arange(64.0))]), bs=64, num_workers=2)
        >>> dl.workers_in_effect(len(dl))[0], dl.workers_in_effect(4)
        (0, (2, None))
        """
        if self.num_workers == 0:
            return 0, None
        if self._draws_per_fetch():
            return 0, ("num_workers has no effect on this loader: its items go through item transforms of your own "
                       "each time they are fetched, which may draw from the process's random generators, so it makes "
                       "every batch in the thread that iterates it, never in prefetch threads (0 in effect, whatever "
                       "num_workers says); pipekit's own item transforms, or random transforms given as batch_tfms, "
                       "leave the batches to its prefetch threads")
        if n_batches <= 1:
            return 0, (f"num_workers has no effect on this loader: an epoch of it is {n_batches} batch{'es' if n_batches != 1 else ''} "
                       f"({self._n_drawn()} items, bs={self.bs}), made in the thread that iterates it, never in "
                       "prefetch threads, as there is no next batch to make ahead (0 in effect, whatever num_workers "
                       "says); a smaller bs or more items give its prefetch threads batches to make")
        return self.num_workers, None

    def iter_epoch(self, epoch: int) -> Iterator[tuple]:
        with stage("batch plan"):
            plan = self.batch_plan(epoch)
        workers, _ = self.workers_in_effect(len(plan))
        if workers == 0:
            for i, entry in enumerate(plan):
                yield self._finish(epoch, i, self._produce(epoch, i, entry), entry)
            return
        depth = workers + 1
        with ThreadPoolExecutor(workers, thread_name_prefix="pipekit-prefetch") as pool:
            pending: deque = deque()
            it = iter(enumerate(plan))
            with stage("prefetch hand-off"):  # starting the threads and queueing work competes with them
                for i, entry in it:
                    pending.append((i, entry, pool.submit(self._produce, epoch, i, entry)))
                    if len(pending) >= depth:
                        break
            while pending:
                i, entry, fut = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    with stage("prefetch hand-off"):
                        pending.append((nxt[0], nxt[1], pool.submit(self._produce, epoch, nxt[0], nxt[1])))
                with stage("wait for prefetch"):
                    b = fut.result()
                yield self._finish(epoch, i, b, entry)

    def __iter__(self) -> Iterator[tuple]:
        epoch = self.epoch
        self.epoch += 1
        if "bare" not in self.__dict__:
            yield from self.iter_epoch(epoch)
            return
        for b in self.iter_epoch(epoch):
            yield self.as_given(b)

    def as_given(self, batch: tuple) -> Any:
        """A batch of a loader of the book's own list of items as fastai's loader gives it (``list(dl)``,
        ``first(dl)``): a bare tensor for items that are not tuples, texts as a tuple; any other loader's as it
        is."""
        if "bare" not in self.__dict__:
            return batch
        batch = tuple(tuple(v) if isinstance(v, list) else v for v in batch)
        return batch[0] if self.bare else batch

    def one_batch(self) -> Any:
        """The first batch of the current epoch, exactly as iterating gives it (see :meth:`as_given`), without
        advancing the epoch.

        >>> DataLoader(list(range(23)), bs=5).one_batch()
        tensor([0, 1, 2, 3, 4])
        """
        return self.as_given(self._first_batch())

    def _first_batch(self) -> tuple:
        """The first batch of the current epoch as a tuple of its parts."""
        plan = self.batch_plan(self.epoch)
        if not plan:  # fastai's loaders raise a ValueError here too ("does not contain any batches")
            raise DataError(f"this loader holds no batch ({self.n} items, bs={self.bs}"
                            f"{', drop_last=True' if self.drop_last else ''}): an empty validation set, as "
                            "RandomSplitter(valid_pct=0) gives, has none; show or take a batch of dls.train instead")
        return self._finish(self.epoch, 0, self._produce(self.epoch, 0, plan[0]), plan[0])

    # ------------------------------------------------------------------ helpers
    def new(self, dataset: Any = None, **kwargs: Any) -> DataLoader:
        """A copy with some settings changed (e.g. ``shuffle=False`` for predictions); ``batch_size`` is ``bs``
        under PyTorch's and fastai's name."""
        if "batch_size" in kwargs:
            kwargs["bs"] = bs_or_batch_size("DataLoader.new", kwargs.get("bs", self.bs), kwargs.pop("batch_size"),
                                            default=self.bs)
        unknown = [k for k in kwargs if not hasattr(self, k)]
        if unknown:
            settings = sorted(k for k in vars(self) if not k.startswith("_"))
            raise ParameterError(f"DataLoader.new (also behind dls.test_dl): unknown setting(s) {unknown}; "
                                 f"{unknown_names(unknown, settings, 'settings', limit=60, synonyms=ARGUMENT_SYNONYMS)}")
        dl = copy.copy(self)
        if dataset is not None:
            table = getattr(self.dataset, "__dict__", {}).get("table")
            if table is not None and isinstance(dataset, ArrayDataset) and "table" not in vars(dataset):
                dataset.made_like = table  # new rows of a table (test_dl): their xs are processed as its rows
            dl.dataset = dataset
        for k, v in kwargs.items():
            if k == "device":
                v = torch.device(v)
            if k == "bs":
                check_positive_int("DataLoader", "bs", v)
            if k == "seed":
                v = loader_seed(v, "DataLoader.new (also behind dls.test_dl)")
            setattr(dl, k, v)
        if "shuffle" in kwargs and "augment" not in kwargs:
            dl.augment = bool(kwargs["shuffle"]) and self.augment
        dl.epoch = 0
        return dl

    def to(self, device: str | torch.device) -> DataLoader:
        """Put this loader's batches on ``device`` (``"cpu"``, ``"cuda"``, a ``torch.device``) from now on;
        returns it."""
        self.device = torch.device(device)
        self.pin_memory = self.device.type == "cuda"
        return self

    def show_batch(self, max_n: int = 9, path: str | None = None, nrows: int | None = None,
                   ncols: int | None = None, figsize: tuple[float, float] | None = None, unique: bool = False) -> Any:
        """Draw ``max_n`` decoded items of this loader's first batch, in ``nrows`` x ``ncols`` (either one; default
        about square). ``unique``: the first item ``max_n`` times, each with its own augmentation, as the book
        shows what augmentation does (``dls.train.show_batch(max_n=8, nrows=2, unique=True)``). The seed fixes
        every batch, so calling it again shows the same items and augmentation; the next epoch's batches differ
        (``dl.epoch`` is the one shown). Returns the PNG path when one was written."""
        from pipekit.data.show import show_items

        check_positive_int("show_batch", "max_n", max_n)
        if unique:
            first = np.asarray(self.batch_plan(self.epoch)[0])
            if first.ndim != 1 or not len(first):
                raise ParameterError("show_batch(unique=True) needs a loader whose batches are rows of its dataset")
            entry = np.full(max_n, first[0])
            batch = self._finish(self.epoch, 0, self._produce(self.epoch, 0, entry), entry)
        else:
            batch = self._first_batch()
        return show_items(self.decode_batch(batch, max_n=max_n), self.blocks, self.n_inp, path=path, nrows=nrows,
                          ncols=ncols, figsize=figsize)

    def decode(self, batch: tuple) -> tuple:
        """A batch with its batch transforms undone, still a batch, on the CPU, as fastai's ``dl.decode(b)``: images
        as one (N, C, H, W) tensor of their 0..255 pixels (uint8, as stored; fastai's are int64 of the same values:
        ``.long()``), labels as their codes, points and boxes in -1..1 (a batch's units). Chapter 18's
        ``x_dec = TensorImage(dls.train.decode((x,))[0][0])`` is the first image, (C, H, W). :meth:`decode_batch`
        decodes each item for people (labels, pixels of points), as ``show_batch`` draws them."""
        batch = batch if isinstance(batch, tuple) else (batch,)
        out = self.batch_tfms.decode(tuple(batch), self.context(self.epoch, 0)) if len(self.batch_tfms) else batch
        geometry = self.geometry
        # an image block's batch is floats in 0..1 (IntToFloat, which has no decode): back to the pixels it stored
        return tuple(_to(_image_pixels(x) if j < len(geometry) and geometry[j] == "image" else x, "cpu")
                     for j, x in enumerate(out))

    def decode_batch(self, batch: tuple, max_n: int | None = None) -> list[tuple]:
        """A batch back into human values: batch transforms undone, then each block's decode, as items of this
        loader's split (:meth:`decode_split`): a transform of the other split (an item transform with
        ``split_idx=0`` on a validation batch) is not undone, as fastai's ``dls.valid.decode_batch(b)``. Points and
        boxes come in pixels of their item's decoded image (the first input image), as fastai's."""
        from pipekit.data.show import on_item_image  # show imports nothing of the loader's

        ctx = self.context(self.epoch, 0)
        batch = self.batch_tfms.decode(tuple(batch), ctx) if len(self.batch_tfms) else tuple(batch)
        blocks, split = self.blocks, self.decode_split()
        n = len(batch[0]) if max_n is None else min(max_n, len(batch[0]))
        cols = [blocks[j].decode_batch(batch[j][:n], split_idx=split) if j < len(blocks) else list(batch[j][:n])
                for j in range(len(batch))]
        rows = list(zip(*cols))
        return [on_item_image(row, blocks, self.n_inp) for row in rows]

    def decode_split(self) -> int:
        """The split this loader's items were encoded as, which decoding them undoes: its dataset's (``split_idx``: a
        training loader's 0, a validation loader's and ``test_dl``'s 1, also in a copy made by ``dl.new()``), else the
        one its items are made as when fetched (0 when it augments, 1 when not; see :meth:`_produce`)."""
        split = getattr(self.dataset, "split_idx", None)
        return split if split is not None else (0 if self.augment else 1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={self.n}, bs={self.bs}, batches={len(self)}, shuffle={self.shuffle}, "
                f"device={self.device}, batch_tfms={self.batch_tfms!r})")


def _item_tfms_of(dataset: Any) -> list:
    """The item transforms the items of ``dataset`` go through: an :class:`ItemsDataset`'s ``after_item``, a
    DataBlock's subset's ``item_tfms`` (read from the recipe it carries, batch transforms among them left out: they
    run on batches); none for any other dataset."""
    after = getattr(dataset, "after_item", None)
    if isinstance(after, Pipeline):
        return list(after.tfms)
    if after is not None:
        return [after]
    return recipe_item_tfms(getattr(dataset, "__dict__", {}).get("recipe"))


def recipe_item_tfms(recipe: Any) -> list:
    """A DataBlock recipe's ``item_tfms``, the batch transforms among them left out (they run on batches)."""
    given = as_list(getattr(recipe, "item_tfms", None))
    return [t for t in Pipeline(given).tfms if not isinstance(t, BatchTransform)] if given else []


def _stage_not_settable(name: str, recipe_name: str | None) -> AttributeError:
    """The error of assigning a loader's ``name`` stage, naming where its transforms are given."""
    where = (f"give them to the DataBlock, DataBlock(..., {recipe_name}=[...]) (or dblock.new({recipe_name}=[...])), "
             "and build the loaders again" if recipe_name is not None else "")
    mid = f"tls.dataloaders({name}=...) or dsets.dataloaders({name}=...) for a TfmdLists' or Datasets' items"
    return AttributeError(f"{name} is read-only on a loader: it lists the transforms the loader was built with; "
                          + (f"{where}, or {mid}" if where else mid))


def _image_pixels(x: Any) -> Any:
    """An image batch of floats in 0..1 as its 0..255 pixels, uint8; any other value as it is."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8)
    return x


#: how to build loaders of one's own tensors that pipekit can also show, encode new items with and export
PIPEKIT_LOADERS_FIX = ("build pipekit loaders from the tensors instead: DataLoaders.from_dsets(list(zip(train_x, "
                       "train_y)), list(zip(valid_x, valid_y)), bs=256), or DataLoaders.from_stores([TensorStore("
                       "train_x), TensorStore(train_y)], [TensorStore(valid_x), TensorStore(valid_y)], bs=256)")


class ForeignLoader:
    """A loader pipekit did not build, as a pipekit loader: what ``DataLoaders(train_loader, valid_loader)`` makes
    of each ``torch.utils.data.DataLoader`` it is given (fastai's "Pure PyTorch to fastai"), or of any object with
    a length that yields batches, tuples or lists of tensors, afresh each time it is iterated.

    Batches come as ``loader`` makes them (its sampler, ``generator`` and workers decide the order), as tuples
    moved to ``device``. ``n_inp`` of their parts are the model's inputs: as given, else as fastai decides, all
    but the last (a batch of one part is inputs only). ``learn.fit``, ``validate``, ``get_preds`` and ``lr_find``
    train and predict over them; what must know how the items were read (``show_batch``, ``test_dl``,
    ``predict`` on new items, ``tta``, ``export``) needs loaders pipekit built, and says so.

    >>> from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset
    >>> ds = TensorDataset(torch.arange(10.0).reshape(5, 2), torch.tensor([0, 1, 0, 1, 1]))
    >>> dl = ForeignLoader(TorchDataLoader(ds, batch_size=2), device="cpu")
    >>> len(dl), dl.bs, dl.n_inp, [tuple(t.shape) for t in next(iter(dl))]
    (3, 2, 1, [(2, 2), (2,)])
    """

    blocks: tuple = ()  # nothing says how to decode or show its parts
    #: what a checkpoint records of a loader's order (``learn.save``): a torch loader's comes from its own sampler
    #: and ``generator``, which the checkpoint does not hold, so a fit resumed from it draws other batches
    seed: int = 0

    def __init__(self, loader: Any, n_inp: int | None = None, device: str | torch.device | None = None,
                 where: str = "ForeignLoader"):
        kind = f"{type(loader).__module__}.{type(loader).__name__}"
        self.loader, self.kind, self.where = loader, kind, f"{where} ({kind})"
        if isinstance(loader, Iterator) or not isinstance(loader, Iterable):
            said = ("an iterator, which gives its batches once, and training iterates the loader again every epoch"
                    if isinstance(loader, Iterator) else "not iterable, so it yields no batches")
            raise ParameterError(f"{self.where} is {said}: give a torch.utils.data.DataLoader, or an object with "
                                 "__iter__ (a fresh pass each time) and __len__ yielding (x, y) tuples of tensors; "
                                 f"or {PIPEKIT_LOADERS_FIX}")
        try:
            n = len(self.loader)
        except TypeError:
            raise ParameterError(f"{self.where} has no length: a loader says how many batches an epoch has "
                                 "(progress, schedules and lr_find read it); give it __len__, the number of batches "
                                 "(a torch DataLoader over an IterableDataset has none), or "
                                 f"{PIPEKIT_LOADERS_FIX}") from None
        if n == 0:
            raise ParameterError(f"{self.where} gives no batch (its length is 0); check its dataset, batch size "
                                 "and drop_last")
        self.device = torch.device(device) if device is not None else default_device()
        self.epoch = 0
        first = self._batch(self._first_batch())
        if n_inp is not None and not (isinstance(n_inp, int) and 1 <= n_inp <= len(first)):
            raise ParameterError(f"{self.where}: n_inp={n_inp!r}, and its batches have {len(first)} part(s): n_inp "
                                 f"is how many of them are the model's inputs, an integer from 1 to {len(first)}")
        # as fastai decides it: a batch of one part is inputs only, else the last part is the target
        self.n_inp = n_inp if n_inp is not None else max(1, len(first) - 1)
        sampler = getattr(loader, "batch_sampler", None)
        self.bs: int | None = getattr(loader, "batch_size", None) or getattr(sampler, "batch_size", None) or (
            int(first[0].shape[0]) if isinstance(first[0], torch.Tensor) and first[0].ndim else None)

    def _first_batch(self) -> Any:
        """A batch made as the loader makes its batches: for a torch loader over a map-style dataset, its
        ``collate_fn`` of item 0 (no iteration, so a seeded ``generator`` gives the order it would have given);
        otherwise the first batch of a pass."""
        dl = self.loader
        if isinstance(dl, torch.utils.data.DataLoader) and not isinstance(dl.dataset, torch.utils.data.IterableDataset):
            try:
                return dl.collate_fn([dl.dataset[0]] if dl.batch_sampler is not None else dl.dataset[0])
            except Exception:  # a dataset not indexed from 0 (a sampler's own keys): a pass says what it yields
                pass
        return next(iter(dl))

    def _batch(self, b: Any) -> tuple:
        """A batch as pipekit's loaders give them, a tuple (a bare tensor is a batch of inputs only)."""
        if isinstance(b, torch.Tensor):
            return (b,)
        if not isinstance(b, (tuple, list)) or not len(b):
            shown = f"dict with keys {list(b)[:5]}" if isinstance(b, Mapping) else (
                f"empty {type(b).__name__}" if isinstance(b, (tuple, list)) else type(b).__name__)
            raise ParameterError(f"{self.where} yields a {shown} as a batch, where a batch is a tuple or list of "
                                 "tensors, the inputs then the targets: make it yield (x, y) tuples (for dicts, a "
                                 "collate_fn returning (batch['x'], batch['y'])), or " + PIPEKIT_LOADERS_FIX)
        return tuple(b)

    @property
    def dataset(self) -> Any:
        """The loader's dataset (a torch loader's ``dataset``), None when it has none."""
        return getattr(self.loader, "dataset", None)

    @property
    def n(self) -> int | None:
        """How many items the loader reads, when its dataset has a length."""
        ds = self.dataset
        return len(ds) if ds is not None and hasattr(ds, "__len__") else None

    @property
    def shuffle(self) -> bool:
        """Whether a torch loader reads its items in another order than its dataset's (a random sampler, a
        batch sampler of its own); another object's order is its own."""
        sampler = getattr(self.loader, "batch_sampler", None)
        if not isinstance(self.loader, torch.utils.data.DataLoader) or sampler is None:
            return False
        return not (type(sampler) is torch.utils.data.BatchSampler
                    and isinstance(sampler.sampler, torch.utils.data.SequentialSampler))

    @property
    def drop_last(self) -> bool:
        return bool(getattr(self.loader, "drop_last", False))

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def distributed_sampler(self) -> Any:
        """The ``torch.utils.data.distributed.DistributedSampler`` a torch loader reads its items through (its
        sampler or its batch sampler's), or None."""
        for sampler in (getattr(self.loader, "sampler", None),
                        getattr(getattr(self.loader, "batch_sampler", None), "sampler", None)):
            if isinstance(sampler, torch.utils.data.distributed.DistributedSampler):
                return sampler
        return None

    def __iter__(self) -> Iterator[tuple]:
        """A pass over the loader's batches. A ``DistributedSampler`` it reads through is told the pass's number
        first (``set_epoch``), as torch's training loops do, so each epoch is shuffled anew (the same in every
        process, and the same again for the same ``seed``)."""
        sampler = self.distributed_sampler
        if sampler is not None:
            sampler.set_epoch(self.epoch)
        self.epoch += 1
        non_blocking = self.device.type == "cuda" and bool(getattr(self.loader, "pin_memory", False))
        for b in self.loader:
            yield to_device(self._batch(b), self.device, non_blocking)

    def one_batch(self) -> tuple:
        """The first batch of a pass, on ``device``."""
        return to_device(self._batch(next(iter(self.loader))), self.device)

    def new(self, shuffle: bool | None = None, drop_last: bool | None = None, bs: int | None = None,
            device: str | torch.device | None = None, **kwargs: Any) -> ForeignLoader:
        """A copy with some settings changed: ``get_preds(ds_idx=0)`` reads the training items in order and all
        of them (``shuffle=False, drop_last=False``), which for a torch loader over a map-style dataset is a torch
        loader of the same dataset, batch size and ``collate_fn``, in the dataset's order."""
        if kwargs:
            raise self.needs_recipe(f"a copy of the loader with {', '.join(f'{k}=' for k in kwargs)}")
        dl, loader = self.loader, self.loader
        changed = {k: v for k, v in (("shuffle", shuffle), ("drop_last", drop_last), ("bs", bs))
                   if v is not None and v != getattr(self, k)}
        if changed:
            if not (isinstance(dl, torch.utils.data.DataLoader) and dl.batch_size is not None
                    and not isinstance(dl.dataset, torch.utils.data.IterableDataset)):
                raise ParameterError(f"{self.where} cannot be remade with {changed} (it is not a torch DataLoader "
                                     "batching a map-style dataset by batch_size): give an in-order loader of its own "
                                     f"to DataLoaders, or {PIPEKIT_LOADERS_FIX}")
            check_positive_int("ForeignLoader.new", "bs", self.bs if bs is None else bs)
            shuffled = self.shuffle if shuffle is None else shuffle
            # an in-order copy draws its workers' seed from a generator of its own: predicting leaves the training
            # loader's generator (and torch's global one) where it was, so the next fit's order does not change
            loader = torch.utils.data.DataLoader(
                dl.dataset, batch_size=self.bs if bs is None else bs, collate_fn=dl.collate_fn, shuffle=shuffled,
                generator=dl.generator if shuffled else torch.Generator(),
                drop_last=self.drop_last if drop_last is None else drop_last, num_workers=dl.num_workers,
                pin_memory=dl.pin_memory, worker_init_fn=dl.worker_init_fn, timeout=dl.timeout)
        out = copy.copy(self)
        out.loader, out.epoch = loader, 0
        if device is not None:
            out.device = torch.device(device)
        return out

    def to(self, device: str | torch.device) -> ForeignLoader:
        self.device = torch.device(device)
        return self

    def needs_recipe(self, what: str) -> ParameterError:
        """The refusal of ``what``, which needs loaders that know how their items were read."""
        origin = ("plain torch loaders" if isinstance(self.loader, torch.utils.data.DataLoader)
                  else f"loaders made outside pipekit ({self.kind})")
        return ParameterError(
            f"{what} needs loaders pipekit built, which know how their items are read, encoded and shown: these "
            f"DataLoaders were made from {origin}, DataLoaders(train_loader, valid_loader), whose batches pipekit "
            f"trains, validates and predicts over as they come (learn.fit, learn.validate, learn.get_preds). To use "
            f"{what}, " + PIPEKIT_LOADERS_FIX)

    def show_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise self.needs_recipe("show_batch")

    def decode_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise self.needs_recipe("decoding a batch (decode_batch)")

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        raise self.needs_recipe("decoding a batch (decode)")

    def __repr__(self) -> str:
        return f"ForeignLoader({self.where}, batches={len(self)}, bs={self.bs}, n_inp={self.n_inp}, device={self.device})"


def check_not_dict(who: str, i: int, item: Any, index: Sequence[int] | np.ndarray | None = None,
                   after: str = "") -> None:
    """Refuse item ``i`` of a batch or list of items when it is a dict: a loader's batch is its items' parts side by
    side (inputs then targets), which a dict's keys do not order. The item is named by ``i``, or by ``index[i]``
    (its position in the dataset) when given; ``after``, the step that made the batch's list (``"before_batch"``),
    says ``i`` is the item's place in that list (see :func:`item_name`).

    >>> check_not_dict("DataLoader", 1, {"x": 1}, index=[5, 7])
    Traceback (most recent call last):
    ...
    pipekit.core.errors.DataError: DataLoader: item 7 is a dict (keys 'x'), and a batch is its items' parts side by side, the inputs then the targets: give (x, y) tuples, e.g. [(d['x'], d['y']) for d in items], or a dataset whose __getitem__ returns (x, y)
    """
    if not isinstance(item, tuple) and isinstance(item, Mapping):
        keys = list(item)
        shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
        raise DataError(f"{who}: item {item_name(i, index, after)} is a dict (keys {shown}), and a batch is its items' "
                        "parts side by side, the inputs then the targets: give (x, y) tuples, e.g. "
                        "[(d['x'], d['y']) for d in items], or a dataset whose __getitem__ returns (x, y)")


def item_name(i: int, index: Sequence[int] | np.ndarray | None = None, after: str = "") -> str:
    """How a message names item ``i`` of a batch's list: ``index[i]``, its position in the dataset, when given;
    else its place in the list, which ``after`` (the step that made the list, ``"before_batch"``) says is the
    batch's order after that step, not the dataset's.

    >>> item_name(1, [5, 7]), item_name(1), item_name(1, after="before_batch")
    ('7', '1', '1 of the batch after before_batch')
    """
    if index is not None:
        return str(int(index[i]))
    return f"{int(i)} of the batch after {after}" if after else str(int(i))


def batch_index(made: Sequence[Any], items: Sequence[Any], positions: np.ndarray) -> np.ndarray | None:
    """The dataset positions naming the items of a batch that steps (``before_batch``) turned from ``made``, the
    items as read, into ``items``: ``positions`` when each item is still in its place (the very objects read, in
    order), else None, as a step that reorders, drops or remakes items leaves no position to each
    (:func:`collate_items` then names an item by its place in the batch after the steps).

    >>> a, b = (1,), (2,)
    >>> batch_index([a, b], [a, b], np.array([4, 9])).tolist(), batch_index([a, b], [b, a], np.array([4, 9]))
    ([4, 9], None)
    """
    if len(items) == len(made) == len(positions) and all(x is y for x, y in zip(items, made)):
        return positions
    return None


def collate_stepped(collate: Callable[[Sequence[Any], np.ndarray | None, str], tuple], made: Sequence[Any],
                    items: Sequence[Any], positions: np.ndarray) -> tuple:
    """``collate(items, at, after)`` for the list ``items`` that ``before_batch`` steps made of ``made``, the items
    read at ``positions``: a failing item is named by its position in the dataset when the steps left each item in
    its place (``at``, see :func:`batch_index`), else by its place in the batch they made (``after`` is
    ``"before_batch"``).

    >>> a, b = (1,), (2,)
    >>> collate_stepped(lambda v, at, after: (at, after), [a, b], [b, a], np.array([4, 9]))
    (None, 'before_batch')
    """
    at = batch_index(made, items, positions)
    return collate(items, at, "" if at is not None else "before_batch")


def item_positions(i: Any, n: int, what: str = "this subset") -> int | np.ndarray:
    """Index ``i`` of a collection of ``n`` items as positions, negative ones counted from the end: a Python int for
    one position (an int, a numpy integer, a 0-d integer tensor), a 1-d int64 array for a slice or a list, array or
    tensor of integer positions. Anything else (a float, a bool, a text) is a ParameterError, a position outside the
    items an IndexError naming it and ``what`` holds them.

    >>> item_positions(-1, 5), item_positions(slice(-2, None), 5).tolist(), item_positions([0, 2], 5).tolist()
    (4, [3, 4], [0, 2])
    >>> item_positions([0, 7], 5)
    Traceback (most recent call last):
    ...
    IndexError: item 7 is out of range: this subset has 5 items
    """
    if type(i) is int or isinstance(i, np.integer):  # one position (a bool is neither), as fast as a list's index
        if -n <= i < n:
            return int(i) + n if i < 0 else int(i)
        raise IndexError(f"item {i} is out of range: {what} has {n} items")
    if isinstance(i, slice):
        return np.arange(*i.indices(n), dtype=np.int64)
    if isinstance(i, torch.Tensor):
        i = i.detach().cpu().numpy()
    a = np.asarray(i) if isinstance(i, (list, tuple, range, np.ndarray, np.generic, int)) else None
    if a is None or a.dtype == bool or a.ndim > 1 or (a.size and a.dtype.kind not in "iu"):
        got = type(i).__name__ if a is None else f"{type(i).__name__} of {a.dtype}, shape {a.shape}"
        raise ParameterError(f"items are indexed by an integer position or a slice (an int, a numpy or a 0-d tensor "
                             f"integer; a slice; a list, array or tensor of integer positions); got {got}")
    a = a.astype(np.int64)
    bad = (a < -n) | (a >= n)
    if bad.any():
        raise IndexError(f"item {a[bad].reshape(-1)[0]} is out of range: {what} has {n} items")
    a = np.where(a < 0, a + n, a)
    return int(a) if a.ndim == 0 else a


def pick(i: Any, n: int, what: str, one: Callable[[int], Any]) -> Any:
    """``one(position)`` for index ``i`` of a collection of ``n`` items naming one position, else the list of
    ``one(p)`` for each of its positions (a slice; a list, array or tensor of them), as read by
    :func:`item_positions` (``what`` names the collection in its IndexError).

    >>> pick(-1, 5, "this dataset", lambda p: p * 10), pick(slice(1, 3), 5, "this dataset", lambda p: p * 10)
    (40, [10, 20])
    """
    if type(i) is int and -n <= i < n:  # one position, the common case: read at once
        return one(i + n if i < 0 else i)
    at = item_positions(i, n, what)
    return one(at) if isinstance(at, int) else [one(int(p)) for p in at]


def stack_items(items: Sequence[Any], name: str, who: str = "from_dsets", single_ok: bool = False,
                texts_ok: bool = False) -> list[Any]:
    """One store per position of the ``(x, y, ...)`` tuples of ``items`` (``single_ok``: items that are not tuples
    are one store), each position stacked into a :class:`~pipekit.data.store.TensorStore` (``texts_ok``: a
    position holding only texts is a :class:`~pipekit.data.store.ListStore`, batched as a list of them).

    >>> [tuple(s.data.shape) for s in stack_items([(np.zeros(3), 1), (np.ones(3), 0)], "train")]
    [(2, 3), (2,)]
    """
    if isinstance(items, torch.utils.data.DataLoader) or not hasattr(items, "__len__") or not len(items):
        raise DataError(f"{who}: the {name + ' ' if name else ''}items must be a non-empty list of (x, y) tuples, "
                        f"e.g. list(zip(x, y)); got {type(items).__name__}"
                        + (" of none" if hasattr(items, "__len__") else ""))
    first = items[0]
    check_not_dict(who, 0, first)
    single = not isinstance(first, (tuple, list))  # item 0 says whether the items are tuples
    if single and not single_ok:
        raise DataError(f"{who}: {name} item 0 is a {type(first).__name__}, not an (x, y) tuple; pass "
                        "list(zip(x, y))")
    n = 1 if single else len(first)
    parts: list[list[Any]] = [[] for _ in range(n)]
    for i, item in enumerate(items):
        check_not_dict(who, i, item)
        if single:
            item = (item,)
        elif not isinstance(item, (tuple, list)) or len(item) != n:
            raise DataError(f"{who}: {name + ' ' if name else ''}item {i} is not a tuple of {n} like item 0 "
                            f"({item!r:.80})")
        for j, v in enumerate(item):
            if texts_ok and isinstance(v, str) and (i == 0 or isinstance(parts[j][0], str)):
                parts[j].append(v)
                continue
            if i and isinstance(parts[j][0], str):
                raise DataError(f"{who}: item {i} holds {type(v).__name__} {v!r:.40} where item 0 holds a text; "
                                "each position of the items holds texts or numbers, not both")
            a = v if isinstance(v, torch.Tensor) else np.asarray(v)
            if isinstance(v, (str, bytes)) or (isinstance(a, np.ndarray) and a.dtype.kind in "OUSV"):
                # a text, or what no tensor can hold (a loader, a list of texts, any other object)
                raise DataError(f"{who}: {name + ' ' if name else ''}item {i} holds {type(v).__name__} {v!r:.40}, "
                                "which is not a number: a loader of items batches numbers, arrays and tensors; "
                                "encode texts and labels first (a DataBlock with TextBlock or CategoryBlock does)")
            parts[j].append(v.detach().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(a))
    out: list[Any] = []
    for j, vals in enumerate(parts):
        if isinstance(vals[0], str):
            out.append(ListStore(vals))
            continue
        shapes = {tuple(v.shape) for v in vals}
        if len(shapes) > 1:
            raise DataError(f"{who}: part {j} of the {name + ' ' if name else ''}items has shapes "
                            f"{sorted(shapes)[:3]}; every item's part must have one shape to be batched")
        out.append(TensorStore(torch.stack(vals)))
    return out


class ArrayDataset:
    """Stores side by side (the model inputs first), optionally restricted to rows ``idxs``; ``blocks``
    say what each store holds (how to decode and show it, what geometry it carries).

    >>> import numpy as np
    >>> from pipekit.data import ArrayDataset, TensorStore
    >>> ds = ArrayDataset([TensorStore(np.arange(12.0).reshape(4, 3)), TensorStore(np.arange(4))], idxs=[1, 3])
    >>> len(ds), ds.n_inp, [t.tolist() for t in ds[0]]
    (2, 1, [[3.0, 4.0, 5.0], 1])
    >>> [tuple(t.shape) for t in ds.gather(np.array([0, 1]))]
    [(2, 3), (2,)]
    """

    #: the items the rows came from, when known (``test_dl(items)`` sets them): ``DataLoader.items``
    items: Any = None
    #: the table split whose processing made these rows (a tabular ``test_dl``'s, set by ``DataLoader.new``):
    #: ``xs``, ``ys`` and ``y`` are ``items`` processed by it, as ``to.new(items)`` gives them
    made_like: Any = None

    def __init__(self, stores: Sequence[Any], blocks: Sequence[Any] = (), n_inp: int | None = None,
                 idxs: np.ndarray | None = None, split_idx: int | None = None):
        if not stores:
            raise ParameterError("ArrayDataset needs at least one store")
        lens = {len(s) for s in stores}
        if len(lens) != 1:
            raise ParameterError(f"ArrayDataset: the stores have different lengths {sorted(lens)}")
        self.stores, self.blocks = tuple(stores), tuple(blocks)
        self.n_inp = n_inp if n_inp is not None else max(1, len(self.stores) - 1)
        self.idxs = np.arange(lens.pop(), dtype=np.int64) if idxs is None else np.asarray(idxs, dtype=np.int64)
        self.split_idx = split_idx

    @property
    def geometry(self) -> tuple[str | None, ...]:
        geo = tuple(b.geometry for b in self.blocks)
        return geo + (None,) * (len(self.stores) - len(geo))

    def __len__(self) -> int:
        return len(self.idxs)

    def gather(self, positions: np.ndarray, deferred: Sequence[int] = ()) -> tuple:
        """The batch at ``positions``: one gather per store; the elements listed in ``deferred`` come as
        :class:`StoreRows` (the rows, not gathered) for a batch transform that reads its store itself."""
        rows = self.idxs[np.asarray(positions, dtype=np.int64)]
        out = []
        for j, s in enumerate(self.stores):
            if j in deferred:
                out.append(StoreRows(s, rows))
                continue
            with stage(f"gather {type(s).__name__}"):
                out.append(s.gather(rows))
        return tuple(out)

    def __getattr__(self, name: str) -> Any:
        return table_attribute(self, name)

    def __getitem__(self, i: Any) -> Any:
        """The item at position ``i`` (a tuple of its parts), or a list of them for a slice or a list, array or
        tensor of positions (``dls.valid_ds[:3]``, ``dls.train_ds[[0, 2]]``), as fastai's datasets give them."""
        return pick(i, len(self), "this dataset", self._item_at)

    def _item_at(self, position: int) -> tuple:
        """The item at ``position`` (in range): its row's value in each store."""
        row = int(self.idxs[position])
        return tuple(s.item(row) for s in self.stores)

    def subset(self, positions: np.ndarray, split_idx: int | None = None) -> ArrayDataset:
        return ArrayDataset(self.stores, self.blocks, self.n_inp, self.idxs[np.asarray(positions, dtype=np.int64)],
                            split_idx)

    def decode(self, item: tuple) -> tuple:
        """An item of this data set back into human values by its blocks, as an item of its split (``split_idx``;
        None for the whole data set, whose items' transforms of one split are not undone, as fastai's)."""
        return tuple(b.decode(v, split_idx=self.split_idx) for b, v in zip(self.blocks, item)) if self.blocks else item

    def show(self, item: tuple, ctx: Any = None, **kwargs: Any) -> Any:
        """Show an item of this data set decoded, as fastai's ``dsets.show(dsets.train[0])`` and
        ``show_at(dsets.train, 0)``: an input image drawn with its labels as the title (on ``ctx``, matplotlib axes,
        when given), otherwise each part printed. Returns the axes drawn on, or what was printed last."""
        from pipekit.data.show import show_parts

        return show_parts(self.decode(tuple(item)), n_inp=self.n_inp, ctx=ctx, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, blocks={[type(b).__name__ for b in self.blocks]})"


def range_of(x: Any) -> list[int]:
    """``list(range(len(x)))``: the positions of a table's rows or a list's items (as fastai's ``range_of``), what
    a splitter splits in the tabular tutorial's ``splits = RandomSplitter(valid_pct=0.2)(range_of(df))``.

    >>> import polars as pl
    >>> range_of(pl.DataFrame({"a": [7, 8, 9]})), range_of("ab"), range_of([])
    ([0, 1, 2], [0, 1], [])
    """
    return list(range(len(x)))


def batch_parts(dl: Any) -> tuple:
    """The first batch of ``dl`` (a :class:`DataLoader` or a loader pipekit wraps) as a tuple of its parts, inputs
    then targets, whatever form iterating gives it in (a bare tensor for a plain list's items): what pipekit reads
    one batch for (a model's summary, the shapes a head is built for) indexes its parts.

    >>> batch_parts(DataLoader(list(range(10)), bs=4))[0].tolist()
    [0, 1, 2, 3]
    """
    if isinstance(dl, DataLoader):
        return dl._first_batch()
    b = dl.one_batch()
    return b if isinstance(b, tuple) else (b,)


def first(x: Any, f: Any = None) -> Any:
    """The first item of an iterable, or the first for which ``f(item)`` is true; None when there is none
    (as fastai's ``first``). For a :class:`DataLoader` it is ``dl.one_batch()`` (as iterating gives it, see
    :meth:`DataLoader.as_given`): the epoch does not advance and no prefetch threads are started.

    >>> first([3, 4, 5]), first([3, 4, 5], lambda o: o % 2 == 0), first([]), first("ab")
    (3, 4, None, 'a')
    >>> from pipekit.data import TensorStore
    >>> dl = DataLoader(ArrayDataset([TensorStore(np.arange(10))]), bs=4, device="cpu")
    >>> first(dl)[0].tolist(), dl.epoch
    ([0, 1, 2, 3], 0)
    """
    if f is None and isinstance(x, DataLoader):
        return x.one_batch() if len(x) else None
    it = iter(x)
    try:
        return next((o for o in it if f is None or f(o)), None)
    finally:
        # a generator made here (a loader's epoch, say) is closed now, releasing what it holds (its
        # prefetch threads) instead of waiting for garbage collection; an iterator passed in is left as is
        if it is not x and hasattr(it, "close"):
            it.close()


def pad_input(samples: Sequence[tuple], pad_idx: int = 1, pad_fields: int | Sequence[int] = 0, pad_first: bool = False,
              backwards: bool = False) -> list[tuple]:
    """fastai's ``pad_input``, a ``before_batch`` step (``dsets.dataloaders(bs=64, before_batch=pad_input)``): field
    ``pad_fields`` of every sample (its text's ids) padded with ``pad_idx`` to the longest in the batch, at the end
    (``pad_first``: at the start; ``backwards``: then reversed), so the batch stacks into one tensor.

    >>> s = pad_input([(torch.tensor([2, 5, 6]), 0), (torch.tensor([2, 7]), 1)])
    >>> [x.tolist() for x, _ in s], pad_input([(torch.tensor([2, 7]), 1), (torch.tensor([3]), 0)], pad_first=True)[1][0]
    ([[2, 5, 6], [2, 7, 1]], tensor([1, 3]))
    """
    fields = [pad_fields] if isinstance(pad_fields, int) else list(pad_fields)
    longest = {f: max(len(s[f]) for s in samples) for f in fields}

    def pad(f: int, x: Any) -> Any:
        if f not in longest:
            return x
        x = torch.as_tensor(x)
        fill = x.new_full((longest[f] - x.shape[0],), pad_idx)
        out = torch.cat([fill, x] if pad_first else [x, fill])
        return out.flip(0) if backwards else out

    return [tuple(pad(f, x) for f, x in enumerate(s)) for s in samples]


def _image_hwc(v: Any) -> torch.Tensor | None:
    """An image of an item as pipekit batches images, uint8 (H, W, C), or None when ``v`` is not an image: pixels
    (H, W, C) as ``PILImage.create`` gives them, a PIL image, or a uint8 (C, H, W) tensor as ``ToTensor`` gives."""
    if type(v).__module__.startswith("PIL"):
        v = np.asarray(v)
        v = v[:, :, None] if v.ndim == 2 else v
    if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 3 and v.shape[2] in (1, 3, 4):
        return torch.from_numpy(np.ascontiguousarray(v.view(np.ndarray)))
    if isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.ndim == 3 and v.shape[0] in (1, 3, 4):
        return v.detach().cpu().permute(1, 2, 0).contiguous()
    return None


_NOT_MAPPINGS = frozenset({tuple, int, float, bool, str, torch.Tensor, np.ndarray})


def collate_items(items: Sequence[Any], who: str = "DataLoader", images: bool = True,
                  index: Sequence[int] | np.ndarray | None = None, after: str = "") -> tuple:
    """Items made one at a time (tuples, or single values) as one batch: a tuple with one element per part of an
    item. Images become pipekit's uint8 (B, H, W, C) image batch (see :func:`_image_hwc`; ``images=False``: stacked
    as they are, as torch's loader does), texts a list, tensors, arrays, numbers and booleans a stacked tensor
    (fastai's ``fa_collate`` dtypes: ``True`` values are ``torch.bool``); a part whose values are all alike (tensors
    of one shape, not images to make (H, W, C)) is stacked at once. Parts whose shapes differ are refused, naming the
    first item whose shape is not the batch's most common one and saying how to make them one size; so is a dict
    item (a batch is its parts side by side: give ``(x, y)`` tuples). An item is named by ``index[place]`` (its
    position in the dataset), else by its place in ``items``, which ``after`` names the step that ordered them
    (``"before_batch"``; see :func:`item_name`).

    >>> b = collate_items([(np.zeros((2, 3, 3), np.uint8), True), (np.ones((2, 3, 3), np.uint8), False)])
    >>> tuple(b[0].shape), b[1]
    ((2, 2, 3, 3), tensor([ True, False]))
    """
    def name(i: int) -> str:
        return item_name(i, index, after)

    if not {type(v) for v in items} <= _NOT_MAPPINGS:  # tuples, numbers, texts, tensors, arrays pass as they are
        for i, v in enumerate(items):
            check_not_dict(who, i, v, index, after)
    single = not isinstance(items[0], tuple)
    rows = [(v,) if single else tuple(v) for v in items]
    n = len(rows[0])
    for i in [i for i, r in enumerate(rows) if len(r) != n][:1]:
        raise DataError(f"{who}: item {name(i)} has {len(rows[i])} parts where the first has {n}; every item is a "
                        "tuple of the same parts")
    out: list[Any] = []
    for j in range(n):
        vals = [r[j] for r in rows]
        if all(isinstance(v, str) for v in vals):
            out.append(list(vals))
            continue
        stacked = _stacked(vals, images)
        if stacked is not None:
            out.append(stacked)
            continue
        hwc: list[torch.Tensor | None] = [_image_hwc(v) for v in vals] if images else [None]
        if all(x is not None for x in hwc):
            tensors = hwc
        else:
            tensors = [_as_tensor(v, who, name(i), j) for i, v in enumerate(vals)]
        shapes = [tuple(t.shape) for t in tensors]  # type: ignore[union-attr]
        if len(set(shapes)) > 1:  # the odd one out: the first item whose shape is not the batch's most common one
            common, k = Counter(shapes).most_common(1)[0]
            i = next(i for i, z in enumerate(shapes) if z != common)
            raise DataError(f"{who}: part {j} of item {name(i)} has shape {shapes[i]}, where {k} of the batch's "
                            f"{len(shapes)} items have {common}; to batch them give them one shape: "
                            "after_item=[Resize(size)] for images, before_batch=pad_input for texts' ids")
        out.append(torch.stack(tensors))  # type: ignore[arg-type]
    return tuple(out)


def _stacked(vals: list[Any], images: bool) -> torch.Tensor | None:
    """Part values of a batch stacked at once when they are all alike: tensors of one shape on one device (images
    too when ``images`` is False; a uint8 (C, H, W) tensor is otherwise made (H, W, C) first), NumPy arrays of
    numbers of one shape and dtype (not images), or Python ints, floats or bools of one type (as NumPy makes them:
    int64, float64, bool); None for anything else, which :func:`collate_items` makes value by value (and names a
    value that differs)."""
    v0, kinds = vals[0], {type(v) for v in vals}
    if len(kinds) != 1:
        return None
    kind = type(v0)
    if kind is torch.Tensor:
        if images and _image_hwc(v0) is not None:
            return None
        try:  # torch checks the shapes and devices as it stacks
            return torch.stack(vals).detach().cpu()
        except RuntimeError:
            return None
    if kind is np.ndarray:
        if v0.dtype.kind not in "biuf" or (images and _image_hwc(v0) is not None):
            return None
        if all(v.shape == v0.shape and v.dtype == v0.dtype for v in vals):
            return torch.from_numpy(np.stack(vals))
        return None
    dtype = {int: torch.int64, float: torch.float64, bool: torch.bool}.get(kind)
    if dtype is None:
        return None
    try:
        return torch.tensor(vals, dtype=dtype)
    except (OverflowError, RuntimeError, ValueError):  # an int beyond int64: named value by value
        return None


def _as_tensor(v: Any, who: str, i: int | str, j: int) -> torch.Tensor:
    """Part ``j`` of item ``i`` of a batch as a tensor; a value that is no image, array, tensor or number (a path, a
    dict, a mixed list) is named, with the fix."""
    if isinstance(v, torch.Tensor):
        return v.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(v))
    except (TypeError, ValueError, RuntimeError) as e:
        fix = (" (a path: open it as an image, PILImage.create(path), in the item or an after_item transform)"
               if isinstance(v, (str, os.PathLike)) else
               " (an int outside int64's range: give it as a float, or one that fits)"
               if isinstance(v, int) and not isinstance(v, bool) else "")
        raise DataError(f"{who}: part {j} of item {i} is a {type(v).__name__} ({v!r:.80}), which cannot be batched: "
                        f"the parts of an item are images, arrays, tensors, numbers or texts{fix}") from e


class ItemsDataset:
    """The items of a mid-level ``TfmdLists`` or ``Datasets`` subset for a :class:`DataLoader`, made one at a time
    in Python (fastai's ``after_item`` and ``before_batch`` are per-item Python code): a batch is
    ``source[i]`` for each of its positions through ``after_item``, the list through ``before_batch``, then
    :func:`collate_items`. The loader batches it as any dataset (seeded order, batch transforms): a DataBlock's
    cached stores are the fast path, this is the general one.

    ``geometry`` (what the loader's batch transforms read) says which parts are images, from the first item.

    >>> ds = ItemsDataset([(np.full((2, 2, 3), i, np.uint8), i % 2) for i in range(5)])
    >>> dl = DataLoader(ds, bs=2, device="cpu")
    >>> [tuple(t.shape) for t in dl.one_batch()], ds.geometry, ds.n_inp
    ([(2, 2, 2, 3), (2,)], ('image', None), 1)
    """

    blocks: tuple = ()
    stores: tuple = ()  # nothing to gather from: the loader's threads make the items

    @property
    def items(self) -> Any:
        """The source items of this dataset's positions, in order (fastai's ``dls.valid.items``): those set on it
        (``test_dl``'s new items), else its ``TfmdLists``' or ``Datasets``' items at its positions, by position
        (a pandas frame's rows too); None for a source without items."""
        given = self.__dict__.get("_items")
        if given is not None:
            return given
        source_items = getattr(self.source, "items", None)
        if source_items is None or isinstance(self.source, (list, tuple)):
            return None
        if len(self.idxs) == len(source_items) and np.array_equal(self.idxs, np.arange(len(self.idxs))):
            return source_items
        if hasattr(source_items, "iloc"):
            return source_items.iloc[self.idxs]
        return [source_items[int(i)] for i in self.idxs]

    @items.setter
    def items(self, value: Any) -> None:
        self._items = value

    def __init__(self, source: Any, after_item: Any = None, before_batch: Any = None, n_inp: int | None = None,
                 idxs: np.ndarray | None = None, split_idx: int | None = None):
        self.source, self.after_item, self.before_batch = source, after_item, before_batch
        self.idxs = np.arange(len(source), dtype=np.int64) if idxs is None else np.asarray(idxs, dtype=np.int64)
        self.split_idx, self._n_inp = split_idx, n_inp
        self._parts: tuple | None = None
        self._first_type: type | None = None

    @property
    def vocab(self) -> Any:
        """The vocabulary of the ``TfmdLists`` or ``Datasets`` these items come from (its target's, see
        ``Datasets.vocab``), as fastai's ``dls.vocab`` of such loaders; None for items with none."""
        return getattr(self.source, "vocab", None)

    @property
    def draws_per_fetch(self) -> bool:
        """Whether a step of ``after_item`` draws as items are made (a ``before_call``: a
        :class:`~pipekit.data.RandTransform`): a loader then makes the batches in the thread iterating it, as
        fastai's does with no workers, so the draws follow the seed and a transform's ``do`` is never another
        thread's. A step that only runs on one split draws nothing: its split reaches each prefetch thread."""
        return any(getattr(t, "before_call", None) is not None for t in getattr(self.after_item, "tfms", ()))

    def item(self, row: int) -> Any:
        """Item ``row`` of the source through ``after_item``, as an item of this dataset's split (``split_idx``: 0
        training, 1 validation and new items; when None, the split of the loader gathering it, see
        :func:`~pipekit.data.store.gathering`), so a transform of the other split is skipped and a
        :class:`~pipekit.data.RandTransform` draws for it (see :func:`~pipekit.data.transform.call_item_tfm`); a
        failing step is named with the item."""
        value = self.source[int(row)]
        if self.after_item is None:
            return value
        try:
            if isinstance(self.after_item, Pipeline):
                split = self.split_idx if self.split_idx is not None else gather_context()[1]
                return self.after_item.encode(value, split)
            return self.after_item(value)
        except Exception as e:
            raise PipelineStepError(f"after_item {self.after_item!r:.120} failed on item {row} ({value!r:.80}): "
                                    f"{type(e).__name__}: {e}") from e

    def __len__(self) -> int:
        return len(self.idxs)

    def __getitem__(self, i: Any) -> Any:
        """The item at position ``i``, or a list of them for a slice or a list, array or tensor of positions."""
        return pick(i, len(self), "this dataset", lambda p: self.item(int(self.idxs[p])))

    def _first(self) -> tuple:
        """The parts of the first item (for ``geometry`` and ``n_inp``); its class is kept too (``first_kind``)."""
        if self._parts is None:
            if len(self):
                return self.keep_first(self[0])
            self._first_type, self._parts = None, ()
        return self._parts

    def keep_first(self, first: Any) -> tuple:
        """Keep ``first``, item 0 as read (by a loader as it is built), for ``geometry``, ``n_inp`` and
        ``first_kind``, which then read no item; its parts."""
        self._first_type = type(first)
        self._parts = tuple(first) if isinstance(first, tuple) else (first,)
        return self._parts

    @property
    def first_kind(self) -> tuple[type | None, int]:
        """The class of the first item (None when there is none) and its number of parts, made once with
        ``geometry``: an :class:`ItemsDataLoader <pipekit.data.dataloaders.ItemsDataLoader>` batches items of a
        :class:`~pipekit.data.fastuple` subclass in that class."""
        parts = self._first()
        return self._first_type, len(parts)

    @property
    def geometry(self) -> tuple[str | None, ...]:
        return tuple("image" if _image_hwc(v) is not None else None for v in self._first())

    @property
    def n_inp(self) -> int:
        """As given, else fastai's: the parts but the last (one part: it is the input)."""
        return self._n_inp if self._n_inp is not None else max(1, len(self._first()) - 1)

    def made_at(self, positions: np.ndarray) -> list:
        """The items at ``positions``, made one by one (through ``after_item``), before ``before_batch``."""
        return [self.item(int(r)) for r in self.idxs[np.asarray(positions, dtype=np.int64)]]

    def gather(self, positions: np.ndarray, deferred: Sequence[int] = ()) -> tuple:
        rows = np.asarray(positions, dtype=np.int64).reshape(-1)
        made = self.made_at(rows)
        if self.before_batch is None:
            return self.collate(made, rows)
        return collate_stepped(self.collate, made, self.before_batch(list(made)), rows)

    def collate(self, items: Sequence[Any], positions: np.ndarray | None = None, after: str = "") -> tuple:
        """A batch's list of items as one batch (:func:`collate_items`); ``positions``, the items' positions in this
        dataset, name an item that cannot be batched (else its place in the list after step ``after``)."""
        return collate_items(items, index=positions, after=after)

    def subset(self, positions: np.ndarray, split_idx: int | None = None) -> ItemsDataset:
        """The items at ``positions``, of split ``split_idx`` (None: this dataset's), of this dataset's class."""
        return type(self)(self.source, self.after_item, self.before_batch, self._n_inp,
                          self.idxs[np.asarray(positions, dtype=np.int64)],
                          self.split_idx if split_idx is None else split_idx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, after_item={self.after_item!r})"


class MapItems(ItemsDataset):
    """A map-style dataset's items for a :class:`DataLoader` (a ``torch.utils.data.Dataset``, any object with
    ``__len__`` and ``__getitem__``; a ``TensorDataset`` is gathered from its tensors, see
    :func:`is_tensor_dataset`): each batch reads ``source[i]`` for its positions, every epoch, and stacks them as
    torch's loader does: an item's parts side by side (a list item as a tuple), images as they are (a uint8
    (C, H, W) tensor stays one), no part read as an image by the loader's transforms.

    >>> class Squares(torch.utils.data.Dataset):
    ...     def __len__(self): return 3
    ...     def __getitem__(self, i): return torch.tensor([i, i * i]), i % 2
    >>> dl = DataLoader(Squares(), bs=2, device="cpu")
    >>> type(dl.dataset).__name__, [b[1].tolist() for b in dl], dl.num_workers
    ('MapItems', [[0, 1], [0]], 0)
    """

    #: its ``__getitem__`` may draw from the process's generators (an augmentation): a loader over it (or a subset
    #: of it) reads its items in the thread that iterates it unless given ``num_workers``, so
    #: ``torch.manual_seed`` repeats the draws, in order
    reads_in_order = True

    def item(self, row: int) -> Any:
        value = self.source[int(row)]
        return tuple(value) if isinstance(value, list) else value

    def made_at(self, positions: np.ndarray) -> list:
        get = self.source.__getitem__  # as item(), for a batch's rows at once
        items = [get(r) for r in self.idxs[np.asarray(positions, dtype=np.int64)].tolist()]
        return [tuple(v) if isinstance(v, list) else v for v in items] if list in map(type, items) else items

    def read_first(self) -> Any:
        """Item 0, read with the random generators given back after (what its ``__getitem__`` draws is left to the
        first epoch), and kept (:meth:`keep_first`)."""
        with kept_random_states():
            first = self[0]
            self.keep_first(first)
        return first

    def _first(self) -> tuple:
        """As :meth:`ItemsDataset._first`, item 0 read by :meth:`read_first` (``n_inp``, which a Learner reads,
        changes no draw)."""
        if self._parts is None and len(self):
            self.read_first()
        return super()._first()

    @property
    def geometry(self) -> tuple[str | None, ...]:
        return (None,) * len(self._first())

    def collate(self, items: Sequence[Any], positions: np.ndarray | None = None, after: str = "") -> tuple:
        return collate_items(items, images=False, index=positions, after=after)
