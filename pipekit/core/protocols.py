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
    """One encoded column: its length, a batch gathered at item indices, and one item.

    >>> import numpy as np
    >>> from pipekit.core.protocols import Store
    >>> from pipekit.data import TensorStore
    >>> s = TensorStore(np.arange(5) * 10)
    >>> isinstance(s, Store), s.gather(np.array([4, 1])).tolist(), isinstance([1, 2], Store)
    (True, [40, 10], False)
    """

    def __len__(self) -> int: ...
    def gather(self, idx: np.ndarray) -> Any: ...
    def item(self, i: int) -> Any: ...


@runtime_checkable
class Block(Protocol):
    """What a column is: its loss kind and geometry, its vocabulary, how it decodes and shows a value.

    >>> from pipekit.core.protocols import Block, conforms
    >>> from pipekit.data import CategoryBlock, RegressionBlock
    >>> conforms(CategoryBlock(), Block), conforms(RegressionBlock(), Block), conforms("label", Block)
    (True, True, False)
    """

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
    """A fitted recipe (a DataBlock, a tabular recipe, an ArrayRecipe): it encodes new items, and is what an exported
    model carries.

    >>> import numpy as np
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> x, y = np.arange(24, dtype="float32").reshape(8, 3), np.arange(8) % 2
    >>> dls = DataLoaders.from_stores([TensorStore(x[:6]), TensorStore(y[:6])], [TensorStore(x[6:]), TensorStore(y[6:])],
    ...                               bs=2, seed=0, device="cpu")
    >>> from pipekit.core.protocols import Recipe, conforms
    >>> conforms(dls.recipe, Recipe), type(dls.recipe).__name__, dls.recipe.n_inp_
    (True, 'ArrayRecipe', 1)
    """

    n_inp_: int

    @property
    def fitted_blocks(self) -> Sequence[Block]: ...
    def new_datasets(self, source: Any, with_labels: bool | None = False) -> Any: ...
    def batch_pipeline(self) -> Any: ...
    def dl_type(self) -> type: ...
    def to_record(self, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]: ...


@runtime_checkable
class Loader(Protocol):
    """What yields batches: tuples of tensors, ``n_inp`` inputs first, then the targets.

    >>> import numpy as np
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> x, y = np.arange(24, dtype="float32").reshape(8, 3), np.arange(8) % 2
    >>> dls = DataLoaders.from_stores([TensorStore(x[:6]), TensorStore(y[:6])], [TensorStore(x[6:]), TensorStore(y[6:])],
    ...                               bs=2, seed=0, device="cpu")
    >>> from pipekit.core.protocols import Loader, conforms
    >>> conforms(dls.train, Loader), len(dls.train), [tuple(t.shape) for t in next(iter(dls.train))]
    (True, 3, [(2, 3), (2,)])
    """

    @property
    def n_inp(self) -> int: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple]: ...


@runtime_checkable
class Loaders(Protocol):
    """What a ``Learner`` trains on: the training and validation loaders, the recipe and blocks, the device.

    >>> import numpy as np
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> x, y = np.arange(24, dtype="float32").reshape(8, 3), np.arange(8) % 2
    >>> dls = DataLoaders.from_stores([TensorStore(x[:6]), TensorStore(y[:6])], [TensorStore(x[6:]), TensorStore(y[6:])],
    ...                               bs=2, seed=0, device="cpu")
    >>> from pipekit.core.protocols import Loaders, conforms
    >>> conforms(dls, Loaders), dls.n_inp, len(dls.valid.dataset), str(dls.device)
    (True, 1, 2, 'cpu')
    """

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
    processing that produced it (its state identifies the processing; a tabular net sizes itself from it).

    >>> import polars as pl
    >>> from pipekit.core.protocols import ProcessedSplit, conforms
    >>> from pipekit.tabular import Categorify, TabularPandas
    >>> df = pl.DataFrame({"town": ["a", "b", "a", "c"], "size": [1.0, 2.0, 3.0, 4.0], "y": [0.5, 1.0, 1.5, 2.0]})
    >>> to = TabularPandas(df, procs=[Categorify], cat_names=["town"], cont_names=["size"], y_names="y")
    >>> conforms(to.train, ProcessedSplit), to.train.cat_names, to.train.inputs.shape
    (True, ['town'], (4, 2))
    """

    inputs: Any
    targets: Any
    cat_names: list[str]
    y_vocab: list[str] | None
    processor: Any


@runtime_checkable
class Backend(Protocol):
    """A model that is not a torch ``Learner`` (a forest, a GBM, an ensemble): fit, predict and score.

    >>> from pipekit.backends import RandomForest
    >>> from pipekit.core.protocols import Backend, conforms
    >>> conforms(RandomForest("regression"), Backend), RandomForest("classification").task
    (True, 'classification')
    """

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
