"""Stores: a materialised column that whole batches are gathered from without per-item Python work."""
from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch

#: the loader batch being gathered in this thread, while a DataLoader gathers one: its key (seed, epoch, batch) and
#: its split (0 for a loader that augments, a training loader; 1 otherwise). A store whose items are drawn at random
#: as they are fetched (a user's item transform on images) derives its draws from it, so the same batch gives the
#: same items whichever thread gathers it. A DataBlock built with a seed (``dataloaders(source, seed=42)``) is built
#: under the key ``(seed,)`` and split 1, as outside a loader: the item transforms a block runs once, as it encodes
#: its column (a ``RandTransform`` on the labels), draw from it
_GATHERING: ContextVar[tuple[tuple[int, ...], int] | None] = ContextVar("pipekit_gathering", default=None)
#: what a store is gathered for outside a loader (``store.gather``, ``store.item``): a fixed key, the validation split
OUTSIDE_LOADER: tuple[tuple[int, ...], int] = ((), 1)


@contextlib.contextmanager
def gathering(key: tuple[int, ...], split_idx: int) -> Iterator[None]:
    """Within it, the stores gathered in this thread are gathered for the loader batch ``key`` of split
    ``split_idx`` (see :func:`gather_context`); a DataLoader sets it around each batch it makes.

    >>> with gathering((0, 1, 2), 0):
    ...     gather_context()
    ((0, 1, 2), 0)
    >>> gather_context()
    ((), 1)
    """
    token = _GATHERING.set((tuple(int(k) for k in key), int(split_idx)))
    try:
        yield
    finally:
        _GATHERING.reset(token)


def gather_context() -> tuple[tuple[int, ...], int]:
    """(key, split_idx) of the loader batch being gathered in this thread (see :func:`gathering`); outside a loader,
    :data:`OUTSIDE_LOADER`."""
    return _GATHERING.get() or OUTSIDE_LOADER


_ITEM_DRAWS = threading.Lock()  # one seeded run of items at a time: they all draw from the process's generators


@contextlib.contextmanager
def item_draws(key: tuple[int, ...]) -> Iterator[Callable[..., None]]:
    """Within it, ``seed(*place)`` seeds Python's ``random`` and NumPy's global generator for one item from ``key``
    (a :func:`gathering` key) and the item's place (its row, its position): the same key and place always give the
    same draws, whatever was drawn before. The generators get their states back at the end, so code drawing from
    them around it gets the numbers it would get without it. One such block runs at a time (a lock). Images made as
    they are fetched are seeded so (see :class:`~pipekit.vision.cache.LiveImageStore`), per ``(row, k)``.

    >>> with item_draws((0,)) as seed:
    ...     seed(3); a = random.random()
    ...     seed(3); b = random.random()
    >>> a == b
    True
    """
    with _ITEM_DRAWS:
        py_state, np_state = random.getstate(), np.random.get_state()

        def seed(*place: int) -> None:
            # hashes of tuples of whole numbers are the same in every process (no hash randomisation)
            random.seed(hash((*key, *place)))
            np.random.seed(hash((-1, *key, *place)) & 0xFFFFFFFF)
        try:
            yield seed
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class Store:
    """A column of encoded items. ``gather(idx)`` returns the batch for those item indices as a CPU tensor.

    ``gather`` is called from prefetch threads: it must be thread-safe and should release the GIL
    (torch indexing, NumPy take, OpenCV do).

    >>> import numpy as np
    >>> import torch
    >>> from pipekit.data import Store
    >>> class Squares(Store):
    ...     def __len__(self): return 10
    ...     def gather(self, idx): return torch.as_tensor(idx) ** 2
    >>> s = Squares()
    >>> s, s.gather(np.array([3, 1])).tolist(), s.item(4).item(), s.subset([2, 3]).gather(np.array([1])).tolist()
    (Squares(n=10), [9, 1], 16, [9])
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def gather(self, idx: np.ndarray) -> Any:
        raise NotImplementedError

    def item(self, i: int) -> Any:
        """One encoded item (the batch of one, unbatched)."""
        return self.gather(np.asarray([i], dtype=np.int64))[0]

    def subset(self, idx: np.ndarray) -> Store:
        """A store holding only the items at ``idx`` (used to build smaller loaders)."""
        return TensorStore(self.gather(np.asarray(idx, dtype=np.int64)))

    def source_size(self, i: int) -> tuple[int, int] | None:
        """The (height, width) item ``i`` had before encoding, for stores of images (None otherwise)."""
        return None

    @property
    def crop_sizes(self) -> np.ndarray | None:
        """Each item's (height, width) as its image item transform got it, (N, 2): the proportions a random crop of
        it is drawn in (``RandomResizedCrop``); None when unknown (not images, or sizes a user's transform changed)."""
        orig = getattr(self, "orig_sizes", None)
        return None if orig is None else np.asarray(orig)

    def __repr__(self) -> str:
        try:
            n = len(self)
        except Exception:  # a repr never raises: a store without a length (the abstract Store itself) shows none
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(n={n})"


class StoreRows:
    """Rows of a store, not gathered yet: what the loader hands a batch transform that reads its store
    itself (``BatchTransform.reads_rows``), e.g. an augmentation warping straight from the memory-mapped
    image cache instead of from a gathered copy of the batch. ``gather()`` gives the batch as usual.

    >>> StoreRows(TensorStore(np.arange(5) * 10), np.array([4, 1])).gather().tolist()
    [40, 10]
    """

    __slots__ = ("store", "rows")

    def __init__(self, store: Store, rows: np.ndarray):
        self.store, self.rows = store, rows

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self) -> Any:
        return self.store.gather(self.rows)

    def __repr__(self) -> str:
        return f"StoreRows({type(self.store).__name__}, {len(self.rows)} rows)"


class TensorStore(Store):
    """Items as rows of one contiguous tensor (labels, one-hot targets, numeric features).

    >>> s = TensorStore(np.arange(10) * 2)
    >>> s.gather(np.array([3, 1])).tolist()
    [6, 2]
    """

    prefetch_worthy = False

    def __init__(self, data: np.ndarray | torch.Tensor):
        if isinstance(data, np.ndarray):
            if data.dtype == object:
                raise TypeError("TensorStore needs a numeric array, got dtype=object")
            data = np.ascontiguousarray(data)
            if not data.flags.writeable:  # Polars/Arrow hand out read-only views; torch needs its own buffer
                data = data.copy()
            data = torch.from_numpy(data)
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"TensorStore takes a NumPy array or a tensor, got {type(data).__name__}")
        self.data = data

    def __len__(self) -> int:
        return self.data.shape[0]

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        return self.data.index_select(0, torch.from_numpy(np.asarray(idx, dtype=np.int64)))

    def item(self, i: int) -> torch.Tensor:
        return self.data[i]

    def __repr__(self) -> str:
        return f"TensorStore(n={len(self)}, shape={tuple(self.data.shape[1:])}, dtype={self.data.dtype})"


class ListStore(Store):
    """Non-numeric items (paths, raw strings) kept in an Arrow-backed Series; a batch is a Python list.

    >>> import polars as pl
    >>> ListStore(pl.Series(["a", "b", "c"])).gather(np.array([2, 0]))
    ['c', 'a']
    """

    prefetch_worthy = False

    def __init__(self, values: Any):
        import polars as pl

        self.values = values if isinstance(values, pl.Series) else pl.Series(list(values))

    def __len__(self) -> int:
        return len(self.values)

    def gather(self, idx: np.ndarray) -> list:
        return self.values.gather(np.asarray(idx, dtype=np.int64)).to_list()

    def item(self, i: int) -> Any:
        return self.values[int(i)]

    def subset(self, idx: np.ndarray) -> Store:
        return ListStore(self.values.gather(np.asarray(idx, dtype=np.int64)))
