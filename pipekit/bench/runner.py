"""Running one epoch of any loader the same way, with or without stage timers.

:func:`as_runner` wraps what a user hands to :mod:`pipekit.bench` (pipekit ``DataLoaders``/``DataLoader``,
a torch ``DataLoader``, anything iterable with a length) into a :class:`Runner` whose ``epoch()`` iterates
``n_batches`` batches, moves them to the device where the loader does not, counts the items and stops
the clock at the last batch. Stopping is not timed: a prefetching loader is closed after the clock stops.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pipekit.core.errors import ParameterError
from pipekit.data.probe import StageTimes, recording, stage

#: what each stage name is, for reading a profile (names not listed are batch transforms)
KINDS = {"read file": "read/decode", "decode": "read/decode", "hash file": "cache build",
         "cache write": "cache build", "dataloaders()": "building the loaders", "collate": "collate",
         "pin memory": "host-to-device copy", "to device": "host-to-device copy",
         "wait for prefetch": "waiting on prefetch", "prefetch hand-off": "waiting on prefetch", "wait for workers": "waiting on prefetch",
         "batch plan": "batch plan", "torch DataLoader loop": "collate", "item transforms": "item transforms",
         "augment + normalize (per item)": "batch transforms"}


def stage_kind(name: str) -> str:
    """What a stage is: read/decode, item transforms, cache gather, collate, host-to-device copy, ..."""
    if name in KINDS:
        return KINDS[name]
    if name.startswith("item transform"):
        return "item transforms"
    if name == "gather ImageStore":
        return "cache gather"
    if name.startswith("gather "):
        return "gather"
    return "batch transforms"


def _device_sync(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return None


def _samples(batch: Any) -> bool:
    """Whether ``batch`` is a list of samples as a loader with ``collate_fn=list`` gives (each a tuple of the same
    length, or a dict of the same keys), rather than collated fields (a list of tensors, as torch's default collate
    gives for tuple samples)."""
    if not isinstance(batch, list) or not batch:
        return False
    first = batch[0]
    if isinstance(first, tuple):
        return all(isinstance(s, tuple) and len(s) == len(first) for s in batch)
    if isinstance(first, dict):
        return all(isinstance(s, dict) and s.keys() == first.keys() for s in batch)
    return False


def _rows(x: Any) -> int | None:
    """The leading dimension of a tensor or array field, ``None`` for anything else."""
    if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim:
        return int(x.shape[0])
    return None


def _shared_rows(part: Any) -> int | None:
    """The leading dimension every element of a container shares (tensors, arrays, or containers of them), which
    makes it a container of collated fields; ``None`` where they differ or are something else."""
    if not isinstance(part, (tuple, list, dict)) or not part:
        return None
    shared = None
    for x in part.values() if isinstance(part, dict) else part:
        n = _rows(x)
        if n is None:
            n = _shared_rows(x)
        if n is None or (shared is not None and n != shared):
            return None
        shared = n
    return shared


def _known_rows(fields: Any) -> set[int]:
    """The rows of the fields that say them for certain: tensors and arrays, directly or under a dict's keys (a
    nested tuple or list may hold per-sample tensors, whose rows say nothing)."""
    found: set[int] = set()
    for x in fields:
        n = _rows(x)
        if n is not None:
            found.add(n)
        elif isinstance(x, dict):
            found |= _known_rows(x.values())
    return found


def _field_items(field: Any, others: Any) -> int:
    """Items of one field of a collated batch. A nested dict holds fields; a nested tuple or list counts as a
    container of fields (the rows its elements share) only where a tensor field of the batch has that many rows:
    a tuple of per-sample tensors (a detection collate's images, unpadded token ids) shares their first dimension
    by chance, and counts its length."""
    n = _rows(field)
    if n is not None:
        return n
    if isinstance(field, dict) and field:  # keyed fields: the first one counts, checked against the rest
        inner = list(field.values())
        return _field_items(inner[0], [*inner[1:], *others])
    if _samples(field):
        return len(field)
    shared = _shared_rows(field)
    if shared is not None and shared != len(field) and shared in _known_rows(others):
        return shared
    try:
        return len(field)
    except TypeError:
        raise ParameterError(f"a batch whose first element is a {type(field).__name__} has no length to count items "
                             "by: measure a loader that yields batches of tensors (a tensor, or a tuple or dict of "
                             "them) or lists of samples") from None


def count_items(batch: Any) -> int:
    """Items in a batch: the length of its first field (of a tuple, list or dict; a nested container of fields
    that agree with the batch's other fields is followed down, one of per-sample tensors counts its length), the
    number of samples of a list of samples (``collate_fn=list``: a list of tuples or dicts), or the length of a
    list of other things (strings, numbers, arrays). ``None`` (a batch a collate dropped, which the loop still
    sees) holds no items.

    >>> import torch
    >>> xs, ys = torch.zeros(32, 3), torch.zeros(32)
    >>> count_items((xs, ys)), count_items({"x": xs, "y": ys}), count_items(((xs, xs), ys))
    (32, 32, 32)
    >>> count_items([(x, y) for x, y in zip(xs, ys)]), count_items([{"x": x} for x in xs]), count_items(None)
    (32, 32, 0)
    >>> images = tuple(torch.zeros(3, 40 + i, 50) for i in range(4))  # a detection collate's (images, targets)
    >>> count_items((images, tuple({"boxes": torch.zeros(2, 4)} for _ in images)))
    4
    """
    if batch is None:
        return 0
    if isinstance(batch, (tuple, dict)) or (isinstance(batch, list) and batch and not _samples(batch)):
        if not batch:
            return _field_items(batch, [])
        fields = list(batch.values()) if isinstance(batch, dict) else batch
        first = fields[0]
        if isinstance(first, torch.Tensor) and first.ndim:
            return int(first.shape[0])
        if isinstance(batch, list) and not isinstance(first, (torch.Tensor, tuple, list, dict)):
            return len(batch)  # a list of strings, numbers or arrays: those are its items
        return _field_items(first, fields[1:])
    if isinstance(batch, list):
        return len(batch)  # a list of samples
    return _field_items(batch, [])


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


@dataclass
class EpochRun:
    """One measured epoch: wall seconds, batches, items, and the stage timers' totals when recorded."""

    wall_s: float
    batches: int
    items: int
    stages: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    threads: dict[str, int] = field(default_factory=dict)


class Runner:
    """One loader made measurable: ``epoch(e, n_batches, times)`` runs and times an epoch."""

    name: str = "loader"
    bs: int | None = None
    #: the workers (prefetch threads, worker processes) that make its batches: the setting in effect
    num_workers: int = 0
    #: why the loader's ``num_workers`` setting has no effect on it, or None when it has
    workers_unused: str | None = None
    device: torch.device = torch.device("cpu")
    kind: str = "loader"
    loader: Any = None

    def __len__(self) -> int:
        return len(self.loader)

    def batches(self, epoch: int) -> Iterator[Any]:
        raise NotImplementedError

    def prepare(self, times: StageTimes | None) -> None:
        """Called before an epoch (torch reference datasets reset their worker timers here)."""

    def finish_stages(self, stages: dict[tuple[str, str], tuple[float, int]],
                      threads: dict[str, int]) -> tuple[dict[tuple[str, str], tuple[float, int]], dict[str, int]]:
        """Add the stages recorded outside the stage timers (torch worker processes) to an epoch's."""
        return stages, threads

    def epoch(self, epoch: int, n_batches: int | None = None, record: bool = False) -> EpochRun:
        times = StageTimes(sync=_device_sync(self.device)) if record else None
        self.prepare(times)
        n, items = 0, 0
        with recording(times):
            t0 = time.perf_counter()
            it = self.batches(epoch)
            try:
                for b in it:
                    items += count_items(b)
                    n += 1
                    if n_batches is not None and n >= n_batches:
                        break
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                wall = time.perf_counter() - t0
                stages = times.snapshot() if times is not None else {}
                threads = times.thread_counts() if times is not None else {}
                if record:
                    stages, threads = self.finish_stages(stages, threads)
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()  # a prefetching loader finishes its batches in flight: not timed
        if n == 0:
            raise ParameterError(no_batches(self))
        if items == 0:
            raise ParameterError(f"{self.name}: the loader's {n} batch(es) held no items (each had 0 rows, or was "
                                 "None); give it items (check the split, the source and what its collate returns)")
        return EpochRun(wall, n, items, stages, threads)


def no_batches(runner: Runner) -> str:
    """Why a loader gave no batch, and what to change."""
    n = getattr(runner.loader, "n", None)
    if n is None:
        n = len(getattr(runner.loader, "dataset", None) or ())
    drop = bool(getattr(runner.loader, "drop_last", False))
    if n and runner.bs and drop and n < runner.bs:
        return (f"{runner.name}: the loader yielded no batches: its {n} items are fewer than one batch of bs={runner.bs}, "
                "and drop_last drops that batch; lower bs")
    return f"{runner.name}: the loader yielded no batches ({n} items); give it items (check the split and the source)"


#: what ends an iterator, told apart from a ``None`` batch (which a collate may return for a batch it drops)
_END = object()


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, (s, c) in b.items():
        s0, c0 = out.get(k, (0.0, 0))
        out[k] = (s0 + s, c0 + c)
    return out


class PipekitRunner(Runner):
    """A pipekit ``DataLoader``: epochs by index (the loader's own epoch counter is left alone)."""

    kind = "pipekit"

    def __init__(self, dl: Any, name: str | None = None):
        self.loader = dl
        self.name = name or "pipekit"
        self.bs = dl.bs
        # the threads an epoch of its batches uses (the whole epoch's, however many of them are measured)
        self.num_workers, self.workers_unused = dl.workers_in_effect(len(dl))
        self.device = dl.device
        self._start = dl.epoch

    def batches(self, epoch: int) -> Iterator[Any]:
        return self.loader.iter_epoch(self._start + epoch)


class TorchRunner(Runner):
    """A ``torch.utils.data.DataLoader`` (or any iterable with a length): batches moved to ``device`` the way a
    training loop moves them; its worker processes report their stages when the dataset records them
    (the datasets :func:`~pipekit.bench.reference_loader` builds do)."""

    kind = "torch"

    def __init__(self, dl: Any, device: torch.device | str | None = None, name: str | None = None):
        self.loader = dl
        self.name = name or ("torch DataLoader" if isinstance(dl, torch.utils.data.DataLoader) else type(dl).__name__)
        self.bs = getattr(dl, "batch_size", None)
        self.num_workers = int(getattr(dl, "num_workers", 0) or 0)
        from pipekit.data.loader import default_device

        self.device = torch.device(device) if device is not None else default_device()
        self._dataset = getattr(dl, "dataset", None)

    def prepare(self, times: StageTimes | None) -> None:
        recorder = getattr(self._dataset, "stage_recorder", None)
        if recorder is not None:
            recorder.reset(on=times is not None)

    def batches(self, epoch: int) -> Iterator[Any]:
        it = iter(self.loader)
        wait = "wait for workers" if self.num_workers > 0 else "torch DataLoader loop"
        try:
            while True:
                with stage(wait):
                    b = next(it, _END)
                if b is _END:
                    return
                if self.device.type != "cpu":
                    with stage("to device"):
                        b = _to(b, self.device)
                yield b
        finally:
            _finish_in_flight(it)
            del it  # ends the worker processes (persistent ones wait for the next epoch)

    def finish_stages(self, stages: dict[tuple[str, str], tuple[float, int]],
                      threads: dict[str, int]) -> tuple[dict[tuple[str, str], tuple[float, int]], dict[str, int]]:
        recorder = getattr(self._dataset, "stage_recorder", None)
        if recorder is None:
            return stages, threads
        extra, workers = recorder.totals()
        out = _merge(stages, extra)
        inside = sum(s for (_, where), (s, _c) in extra.items() if where == "main")
        loop = ("torch DataLoader loop", "main")
        if inside and loop in out:
            # the dataset ran inside the loop's stage: the loop is charged its own time only
            s, c = out[loop]
            out[loop] = (s - inside, c)
        return out, ({**threads, "workers": workers} if workers else threads)


def _finish_in_flight(it: Any) -> None:
    """Collect, untimed, the batches a worker-process iterator still has in flight when an epoch is cut short,
    so that its workers are idle when the next measurement starts (pipekit's loaders finish theirs the same
    way). Persistent workers would otherwise go on decoding them in the other contender's time. Only torch's
    multiprocessing iterator has any; its next epoch starts from a reset either way."""
    while getattr(it, "_tasks_outstanding", 0) > 0 and hasattr(it, "_get_data"):
        it._get_data()
        it._tasks_outstanding -= 1


def as_runner(obj: Any, subset: str = "train", device: Any = None, name: str | None = None) -> Runner:
    """The :class:`Runner` for ``obj``: pipekit ``DataLoaders`` (``subset`` 'train' or 'valid') or ``DataLoader``,
    a torch ``DataLoader``, or any iterable of batches with a length."""
    from pipekit.data.dataloaders import DataLoaders
    from pipekit.data.loader import DataLoader

    if isinstance(obj, Runner):
        return obj
    if isinstance(obj, DataLoaders):
        if subset not in ("train", "valid"):
            raise ParameterError(f"subset must be 'train' or 'valid', got {subset!r}")
        obj = obj.train if subset == "train" else obj.valid
    if isinstance(obj, DataLoader):
        return PipekitRunner(obj, name)
    if isinstance(obj, tuple) and any(isinstance(o, (DataLoaders, DataLoader)) for o in obj):
        raise ParameterError("a (DataBlock, source) pair is measured built from the DataBlock; this tuple holds "
                             "DataLoaders already built: give them alone")
    # a table, an array or a tensor is the data, not a loader of it (its len counts rows, its iteration columns)
    kind = type(obj).__module__.split(".")[0]
    data = isinstance(obj, (str, bytes, dict, tuple, np.ndarray)) or kind in ("pandas", "polars", "pyarrow") \
        or (kind == "torch" and hasattr(obj, "shape"))
    if hasattr(obj, "__iter__") and hasattr(obj, "__len__") and not data:
        return TorchRunner(obj, device, name)
    raise ParameterError(f"cannot measure {type(obj).__name__}: give pipekit DataLoaders or a DataLoader, a torch "
                         "DataLoader, a DataBlock with source=, or (DataBlock, source) as a recipe's datablock() returns")
