"""Transforms: fitted on the training subset, state kept as plain data, composed by order.

A :class:`Transform` works on whole columns (a Polars Series, a NumPy array, a batch tensor), never on
one Python object at a time. It is a :class:`~pipekit.core.Component`: its parameters are its
``__init__`` arguments and what ``setup`` learns lives in attributes ending in ``_``, so a fitted
transform is saved as a record and rebuilt from the registry without unpickling code.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from pipekit.core.component import Component
from pipekit.core.errors import ParameterError
from pipekit.data.probe import stage


class Transform(Component):
    """Base class: ``setup`` on training values, ``encode`` any values, ``decode`` for display.

    >>> class AddOne(Transform):
    ...     def encode(self, x): return x + 1
    ...     def decode(self, x): return x - 1
    >>> AddOne().decode(AddOne().encode(np.arange(3))).tolist()
    [0, 1, 2]
    """

    registry_kind = "transform"
    order: ClassVar[int] = 0

    def setup(self, values: Any) -> None:
        """Learn state from the training subset (default: nothing to learn)."""

    def encode(self, values: Any) -> Any:
        return values

    def decode(self, values: Any) -> Any:
        return values

    def __call__(self, values: Any) -> Any:
        return self.encode(values)

    def applies_to(self, block: Any) -> bool:
        """Whether this item/batch transform acts on ``block``'s data (default: every block)."""
        return True


def as_list(value: Any) -> list:
    """What every parameter taking transforms, metrics, callbacks or procs accepts, as one flat list: one
    object, a list/tuple of them, or lists inside a list (``[aug_transforms(), Normalize()]``); None is none.

    >>> as_list("a"), as_list(["a", ("b", ["c"])]), as_list(None)
    (['a'], ['a', 'b', 'c'], [])
    """
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        return [value]
    out: list = []
    for v in value:
        out.extend(as_list(v) if isinstance(v, (list, tuple)) else [v])
    return out


class Pipeline:
    """Transforms composed by their ``order``; ``setup`` fits each on the output of the ones before it.

    >>> Pipeline([]).encode([1, 2])
    [1, 2]
    """

    def __init__(self, tfms: Iterable[Transform] | Transform | None = None):
        tfms = as_list(tfms if tfms is None or isinstance(tfms, (Transform, list, tuple)) else list(tfms))
        for t in tfms:
            if not isinstance(t, Transform):
                raise ParameterError(f"Pipeline takes Transform objects, got {t!r}; wrap a function in a "
                                     "Transform subclass")
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + " -> ".join(repr(t) for t in self.tfms) + ")"


@dataclass
class BatchContext:
    """What a batch transform may know: each batch element's geometry (``None``, ``"image"``,
    ``"mask"``, ``"points"``, ``"bbox"``), how many are inputs, train or not, the device, and where the
    batch is in the run (``key`` = seed, epoch, batch) from which its random streams are derived."""

    geometry: tuple[str | None, ...]
    n_inp: int
    train: bool
    device: torch.device
    key: tuple[int, ...] = (0,)

    def rng(self, stream: str = "") -> np.random.Generator:
        """The random generator of ``stream`` for this batch: the same (seed, epoch, batch, stream) always
        gives the same draws, whatever other streams exist or in what order they are used."""
        return np.random.default_rng([*self.key, zlib.crc32(stream.encode())])


class BatchTransform(Transform):
    """A transform over a whole collated batch (a tuple of tensors), run after the device transfer.

    ``encode(batch, ctx)`` must draw randomness only from ``ctx.rng(stream)``, which depends on
    (seed, epoch, batch, stream) only: that is what makes augmentation repeatable and thread-safe.
    """

    order: ClassVar[int] = 50
    #: runs on the CPU, in the loader's worker threads, before the batch is moved to the device (per-image
    #: library code on NumPy arrays); such transforms run before every other batch transform
    on_host: ClassVar[bool] = False

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return batch

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return batch

    @property
    def stage_name(self) -> str:
        """The name this step's time is reported under when the pipeline is profiled."""
        return type(self).__name__

    def fuse(self, following: BatchTransform) -> BatchTransform | None:
        """A step doing this transform then ``following`` in one pass with the same result, or None.

        A pipeline runs fused steps in place of adjacent pairs (e.g. augmentation then normalisation per
        image while it is in the CPU cache); records, ``decode`` and ``len`` still see each transform."""
        return None

    def setup_batches(self, dl: Any) -> None:
        """Learn what this transform needs from the training loader ``dl``, once, when the loaders are built
        (``Normalize()`` without statistics takes them from a training batch). Default: nothing."""

    def reads_rows(self, store: Any, geometry: str | None, j: int, n_inp: int) -> bool:
        """Whether this transform, run first, takes batch element ``j`` as :class:`~pipekit.data.store.StoreRows`
        of ``store`` and reads the store itself (saving the gathered copy). Default: no."""
        return False

    def valid_geometry(self, in_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
        """For a transform that moves pixels when it is not augmenting (a centred crop to a size): the (3, 3)
        matrix from its output's -1..1 coordinates to its input's, and its output size, for an input of size
        ``in_hw``; None when it leaves coordinates alone (the default). ``predict`` maps predicted points and
        boxes back through it."""
        return None


class BatchPipeline(Pipeline):
    """Batch transforms in order; they all see the whole batch tuple and act on the elements they handle.

    ``steps()`` is what ``encode`` runs: the transforms, with adjacent ones that can be done in one pass
    (``BatchTransform.fuse``) fused. Each step's time is reported under its ``stage_name`` when profiled.
    """

    @property  # type: ignore[override]
    def tfms(self) -> list[Transform]:
        return self._tfms

    @tfms.setter
    def tfms(self, tfms: list[Transform]) -> None:
        self._tfms = list(tfms)
        self._steps: list[BatchTransform] | None = None

    def steps(self) -> list[BatchTransform]:
        if self._steps is None:
            steps: list[BatchTransform] = []
            for t in self._tfms:
                fused = steps[-1].fuse(t) if steps else None  # type: ignore[arg-type]
                if fused is not None:
                    steps[-1] = fused
                else:
                    steps.append(t)  # type: ignore[arg-type]
            self._steps = steps
        return self._steps

    def first_step(self) -> BatchTransform | None:
        return next(iter(self.steps()), None)

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        for t in self.steps():
            with stage(t.stage_name):
                batch = t.encode(batch, ctx)
        return batch

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        for t in reversed(self.tfms):
            batch = t.decode(batch, ctx)  # type: ignore[call-arg]
        return batch

    __call__ = encode  # type: ignore[assignment]
