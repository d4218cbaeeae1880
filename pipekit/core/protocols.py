"""The contracts between layers, written down once and checked by mypy instead of guessed with ``hasattr``.

- a :class:`Store` holds one encoded column; batches are gathered from it;
- a :class:`Block` says what a column is (encodes it once, decodes and shows it);
- a :class:`Recipe` is a fitted recipe (a DataBlock, a tabular recipe): it encodes new items and is
  what an exported model carries;
- a :class:`Loader` yields batches (tuples of tensors: ``n_inp`` inputs, then targets);
- :class:`Loaders` are what a ``Learner`` trains on;
- a :class:`Backend` is a model that is not a torch ``Learner`` (forests, GBMs, ensembles);
- a :class:`ProcessedSplit` is a processed table split that backends read.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Store", "Block", "Recipe", "Loader", "Loaders", "Backend", "ProcessedSplit", "conforms"]


@runtime_checkable
class Store(Protocol):
    def __len__(self) -> int: ...
    def gather(self, idx: np.ndarray) -> Any: ...
    def item(self, i: int) -> Any: ...


@runtime_checkable
class Block(Protocol):
    loss_kind: str | None
    geometry: str | None
    draws_on_input: bool

    @property
    def vocab(self) -> list | None: ...
    @property
    def c(self) -> int | None: ...
    def decode(self, value: Any) -> Any: ...
    def decode_prediction(self, value: Any, source_size: tuple[int, int] | None = None,
                          geometry: Any = None) -> Any: ...
    def show(self, ax: Any, value: Any, title: str | None = None) -> None: ...


@runtime_checkable
class Recipe(Protocol):
    n_inp_: int

    @property
    def fitted_blocks(self) -> Sequence[Block]: ...
    def new_datasets(self, source: Any, with_labels: bool | None = False) -> Any: ...
    def batch_pipeline(self) -> Any: ...
    def dl_type(self) -> type: ...
    def to_record(self, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]: ...


@runtime_checkable
class Loader(Protocol):
    @property
    def n_inp(self) -> int: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple]: ...


@runtime_checkable
class Loaders(Protocol):
    recipe: Any
    #: the loaders themselves (train, valid, ...); empty when rebuilt from an export to encode new items
    loaders: list[Any]

    @property
    def train(self) -> Any: ...
    @property
    def valid(self) -> Any: ...
    @property
    def blocks(self) -> tuple: ...
    @property
    def y_block(self) -> Block | None: ...
    @property
    def device(self) -> Any: ...
    @property
    def n_inp(self) -> int: ...
    def test_dl(self, items: Any, with_labels: bool = False, bs: int | None = None) -> Any: ...
    def to(self, device: Any) -> Any: ...
    def state(self, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]: ...


@runtime_checkable
class ProcessedSplit(Protocol):
    """A processed subset of a table: model inputs and targets (Polars frames), column roles, and the fitted
    processing that produced it (its state identifies the processing; a tabular net sizes itself from it)."""

    inputs: Any
    targets: Any
    cat_names: list[str]
    y_vocab: list[str] | None
    processor: Any


@runtime_checkable
class Backend(Protocol):
    task: str

    def fit(self, train: Any, valid: Any = None) -> Any: ...
    def predict(self, data: Any) -> np.ndarray: ...
    def score(self, data: Any, metric: Any = None) -> float: ...


def conforms(obj: object, protocol: type) -> bool:
    """Whether ``obj`` has every member of ``protocol``, looked up without running properties (what
    ``isinstance`` does from Python 3.12 on): DataLoaders rebuilt from an export hold no loaders, and
    reading their ``train`` would raise.

    >>> conforms([], Loader), conforms(object(), Store)
    (False, False)
    """
    import inspect

    names = {n for n in vars(protocol) if not n.startswith("_") or n in ("__len__", "__iter__")}
    names |= set(getattr(protocol, "__annotations__", {}))
    missing = object()
    return all(inspect.getattr_static(obj, n, missing) is not missing for n in names)
