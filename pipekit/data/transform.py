"""Transforms: fitted on the training subset, state kept as plain data, composed by order.

A :class:`Transform` works on whole columns (a Polars Series, a NumPy array, a batch tensor), never on
one Python object at a time. Every ``__init__`` parameter is stored as an attribute of the same name,
so :meth:`Transform.config` can rebuild the object; attributes named in ``_state`` are what ``setup``
learns and are saved as JSON/arrays. Subclasses register themselves by class name, which is how an
exported recipe is rebuilt without unpickling code.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

TRANSFORMS: dict[str, type[Transform]] = {}


def registered(name: str, registry: dict[str, type]) -> type:
    """Look a class up by name with an error that says how to make it known."""
    try:
        return registry[name]
    except KeyError:
        raise KeyError(f"'{name}' is not a registered class; import the module that defines it (or define it "
                       f"as a subclass so it registers itself) before loading. Known: {sorted(registry)}") from None


def init_config(obj: Any) -> dict[str, Any]:
    """The ``__init__`` arguments of ``obj``, read back from attributes of the same name."""
    cfg = {}
    for name, p in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if hasattr(obj, name):
            cfg[name] = getattr(obj, name)
    return cfg


class Transform:
    """Base class: ``setup`` on training values, ``encode`` any values, ``decode`` for display.

    >>> class AddOne(Transform):
    ...     def encode(self, x): return x + 1
    ...     def decode(self, x): return x - 1
    >>> AddOne().decode(AddOne().encode(np.arange(3))).tolist()
    [0, 1, 2]
    """

    order: ClassVar[int] = 0
    #: block kinds this transform applies to when given as a DataBlock item/batch transform (None: all)
    kinds: ClassVar[tuple[str, ...] | None] = None
    #: names of the attributes ``setup`` learns
    _state: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TRANSFORMS[cls.__name__] = cls

    def setup(self, values: Any) -> None:
        """Learn state from the training subset (default: nothing to learn)."""

    def encode(self, values: Any) -> Any:
        return values

    def decode(self, values: Any) -> Any:
        return values

    def __call__(self, values: Any) -> Any:
        return self.encode(values)

    def applies_to(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds

    def config(self) -> dict[str, Any]:
        return init_config(self)

    def state(self) -> dict[str, Any]:
        return {k: getattr(self, k, None) for k in self._state}

    def load_state(self, state: dict[str, Any]) -> None:
        for k in self._state:
            if k in state:
                setattr(self, k, state[k])

    def to_record(self) -> dict[str, Any]:
        """Everything needed to rebuild this fitted transform: class name, config, state."""
        return {"name": type(self).__name__, "config": self.config(), "state": self.state()}

    @staticmethod
    def from_record(record: dict[str, Any]) -> Transform:
        cls = registered(record["name"], TRANSFORMS)
        tfm = cls(**record.get("config", {}))
        tfm.load_state(record.get("state", {}))
        return tfm

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not callable(v))
        return f"{type(self).__name__}({args})"


class Pipeline:
    """Transforms composed by their ``order``; ``setup`` fits each on the output of the ones before it.

    >>> Pipeline([]).encode([1, 2])
    [1, 2]
    """

    def __init__(self, tfms: Iterable[Transform] | None = None):
        tfms = list(tfms or [])
        for t in tfms:
            if not isinstance(t, Transform):
                raise TypeError(f"Pipeline takes Transform objects, got {t!r}; wrap a function in a Transform subclass")
        self.tfms: list[Transform] = sorted(tfms, key=lambda t: t.order)

    def setup(self, values: Any) -> Any:
        for t in self.tfms:
            t.setup(values)
            values = t.encode(values)
        return values

    def encode(self, values: Any) -> Any:
        for t in self.tfms:
            values = t.encode(values)
        return values

    def decode(self, values: Any) -> Any:
        for t in reversed(self.tfms):
            values = t.decode(values)
        return values

    __call__ = encode

    def __len__(self) -> int:
        return len(self.tfms)

    def __iter__(self):
        return iter(self.tfms)

    def to_records(self) -> list[dict[str, Any]]:
        return [t.to_record() for t in self.tfms]

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]]) -> Pipeline:
        return cls([Transform.from_record(r) for r in records])

    def __repr__(self) -> str:
        return "Pipeline(" + " -> ".join(repr(t) for t in self.tfms) + ")"


@dataclass
class BatchContext:
    """What a batch transform may know: the kind of each batch element, train or not, and its RNG."""

    kinds: tuple[str, ...]
    n_inp: int
    train: bool
    rng: np.random.Generator
    device: torch.device


class BatchTransform(Transform):
    """A transform over a whole collated batch (a tuple of tensors), run after the device transfer.

    ``encode(batch, ctx)`` must draw randomness only from ``ctx.rng``, which the DataLoader seeds per
    (seed, epoch, batch): that is what makes augmentation repeatable and thread-safe.
    """

    order: ClassVar[int] = 50

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return batch

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return batch


class BatchPipeline(Pipeline):
    """Batch transforms in order; they all see the whole batch tuple and act on the kinds they handle."""

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        for t in self.tfms:
            batch = t.encode(batch, ctx)  # type: ignore[call-arg]
        return batch

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        for t in reversed(self.tfms):
            batch = t.decode(batch, ctx)  # type: ignore[call-arg]
        return batch

    __call__ = encode
