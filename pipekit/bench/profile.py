"""``profile()``: how fast a loader is and where its time goes, first epoch and steady state apart.

The main thread's stages (waiting on prefetch, the device copy, whatever runs there) add up to the epoch;
what the prefetch threads, the cache-building threads or torch worker processes do runs beside it and is
given as a share of their capacity (their seconds over the epoch's seconds times their number). So a
profile answers both "what does training wait for" and "what keeps the workers busy".
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipekit.bench.runner import EpochRun, Runner, as_runner, stage_kind
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, check
from pipekit.data.loader import checked_device
from pipekit.data.probe import StageTimes, recording, stage

#: the tolerance within which the main thread's stages add up to the measured epoch when the main thread has
#: a core and Python's lock when it needs them (the rest is the loop itself: the generator hand-off and counting
#: the items, a few microseconds per batch); beyond it, the summary says so
STAGE_TOLERANCE = 0.05


@dataclass
class StageTime:
    """One stage: ``where`` it ran (``main``, ``prefetch``, ``build``, ``workers``), total seconds and calls, and
    its share: of the epoch for the main thread, of the threads' capacity for the others.

    >>> import numpy as np
    >>> from pipekit.bench import profile
    >>> from pipekit.data import DataLoader, TensorStore
    >>> from pipekit.data import ArrayDataset
    >>> ds = ArrayDataset([TensorStore(np.arange(1000.0)), TensorStore(np.arange(1000) % 2)])
    >>> p = profile(DataLoader(ds, bs=100, seed=0, device="cpu", num_workers=0), warm_epochs=1)
    >>> sorted((s.name, s.where, s.calls) for s in p.warm.stages)
    [('batch plan', 'main', 1), ('collate', 'main', 10), ('gather TensorStore', 'main', 20)]
    >>> collate = next(s for s in p.warm.stages if s.name == "collate")
    >>> 0 < collate.share < 1, collate.seconds <= p.warm.wall_s
    (True, True)
    """

    name: str
    kind: str
    where: str
    seconds: float
    calls: int
    share: float


@dataclass
class EpochProfile:
    """Timings of one phase (``first epoch``, measured whole whatever ``n_batches``, cache build included when
    profiled from a DataBlock, or ``steady state``: the warm epochs together).

    >>> import numpy as np
    >>> from pipekit.bench import profile
    >>> from pipekit.data import DataLoader, TensorStore
    >>> from pipekit.data import ArrayDataset
    >>> ds = ArrayDataset([TensorStore(np.arange(1000.0)), TensorStore(np.arange(1000) % 2)])
    >>> p = profile(DataLoader(ds, bs=100, seed=0, device="cpu", num_workers=0), warm_epochs=2)
    >>> p.cold.label, p.cold.epochs, p.cold.batches
    ('first epoch', 1, 10)
    >>> p.warm.label, p.warm.epochs, p.warm.batches, p.warm.items, p.warm.threads
    ('steady state (warm epochs)', 2, 20, 2000, {'main': 1})
    >>> sorted(p.warm.by_kind("main")), p.warm.items_per_s > 0
    (['batch plan', 'collate', 'gather'], True)
    """

    label: str
    wall_s: float
    batches: int
    items: int
    epochs: int
    stages: list[StageTime]
    threads: dict[str, int]
    build_s: float = 0.0

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def main_seconds(self) -> float:
        """Seconds the main thread spent inside stages (what adds up to the epoch)."""
        return sum(s.seconds for s in self.stages if s.where == "main")

    @property
    def unaccounted_s(self) -> float:
        """Epoch seconds in no stage: the loop around the loader (hand-off, counting items), and the main thread
        waiting for a core or for Python's lock (held by threads beside it) between stages."""
        return self.wall_s - self.main_seconds

    @property
    def unaccounted_share(self) -> float:
        return self.unaccounted_s / self.wall_s if self.wall_s > 0 else 0.0

    def by_kind(self, where: str = "main") -> dict[str, float]:
        """Seconds per kind of stage (read/decode, cache gather, collate, ...) in threads of ``where``."""
        out: dict[str, float] = {}
        for s in self.stages:
            if s.where == where:
                out[s.kind] = out.get(s.kind, 0.0) + s.seconds
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(items_per_s=self.items_per_s, batches_per_s=self.batches_per_s, unaccounted_s=self.unaccounted_s)
        return d


def _epoch_profile(label: str, runs: Sequence[EpochRun], build_s: float = 0.0) -> EpochProfile:
    wall = sum(r.wall_s for r in runs)
    totals: dict[tuple[str, str], list[float]] = {}  # [seconds, calls]
    threads: dict[str, int] = {}
    for r in runs:
        for key, (s, c) in r.stages.items():
            t = totals.setdefault(key, [0.0, 0.0])
            t[0] += s
            t[1] += c
        for k, n in r.threads.items():
            threads[k] = max(threads.get(k, 0), n)
    stages = []
    # the main thread first, then each kind of thread beside it, its stages by seconds
    for (name, where), (secs, calls) in sorted(totals.items(), key=lambda kv: (kv[0][1] != "main", kv[0][1],
                                                                              -kv[1][0])):
        # the cache-building threads only exist while the loaders are built, the prefetch threads and worker
        # processes only once they are: each is a share of the time it existed
        if build_s > 0 and where == "build":
            span = build_s
        elif build_s > 0 and where != "main" and wall > build_s:
            span = wall - build_s
        else:
            span = wall
        capacity = span * (1 if where == "main" else max(1, threads.get(where, 1)))
        stages.append(StageTime(name, stage_kind(name), where, secs, int(calls),
                                secs / capacity if capacity > 0 else 0.0))
    # the loaders' build, timed as a run of its own, gives no batch and is no epoch (an epoch gives one at least)
    epochs = sum(1 for r in runs if r.batches)
    return EpochProfile(label, wall, sum(r.batches for r in runs), sum(r.items for r in runs), epochs, stages,
                        threads, build_s)


def _probe_cost(n: int = 2000) -> float:
    """Seconds one recorded stage costs (timed here, on this machine, now)."""
    times = StageTimes()
    with recording(times):
        t0 = time.perf_counter()
        for _ in range(n):
            with stage("probe"):
                pass
        return (time.perf_counter() - t0) / n


def _paired_overhead(timed: Sequence[EpochRun], plain: Sequence[EpochRun]) -> float:
    """How much slower a timed epoch is than the untimed one run beside it: the median over the pairs (a
    pair shares the machine's load of its moment, the median drops a pair that a burst of load hit)."""
    ratios = [t.wall_s / p.wall_s for t, p in zip(timed, plain) if p.wall_s > 0]
    return statistics.median(ratios) - 1 if ratios else 0.0


def machine() -> dict[str, Any]:
    """Where a measurement was taken: CPU count, load average, torch threads, accelerator (or that none was).

    >>> from pipekit.bench import machine
    >>> m = machine()
    >>> sorted(m)
    ['cpus', 'gpu', 'gpu_note', 'load_average', 'platform', 'python', 'torch', 'torch_threads']
    >>> m["cpus"] >= 1, len(m["load_average"]), m["gpu_note"] is None or m["gpu_note"].startswith("no GPU")
    (True, 3, True)
    """
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": list(load),
            "gpu": gpu, "gpu_note": None if gpu else "no GPU: GPU figures were not measured"}


@dataclass
class LoaderProfile:
    """What :func:`profile` measured. ``warm.items_per_s`` is with the stage timers on; ``items_per_s`` without
    them (the headline figure); ``overhead`` is how much slower the timed epochs were (measured, noisy) and
    ``probe_overhead`` what the timers cost by count (calls x the cost of one, a share of the epoch).

    >>> import numpy as np
    >>> from pipekit.bench import profile
    >>> from pipekit.data import DataLoader, TensorStore
    >>> from pipekit.data import ArrayDataset
    >>> ds = ArrayDataset([TensorStore(np.arange(1000.0)), TensorStore(np.arange(1000) % 2)])
    >>> p = profile(DataLoader(ds, bs=100, seed=0, device="cpu", num_workers=0), warm_epochs=1)
    >>> p.name, p.bs, p.num_workers, p.device, p.n_batches, p.items_per_s > 0
    ('pipekit', 100, 0, 'cpu', 10, True)
    >>> p.summary()
    'pipekit: ... items/s (... batches/s) warm; ... items/s first epoch; main thread ...'
    >>> d = p.to_dict(); d["warm"]["items"], d["cold"]["batches"]
    (1000, 10)
    """

    name: str
    subset: str | None
    bs: int | None
    num_workers: int
    device: str
    n_batches: int
    cold: EpochProfile | None
    warm: EpochProfile
    plain_wall_s: float
    plain_items: int
    plain_batches: int
    overhead: float
    probe_overhead: float
    machine_before: dict[str, Any] = field(default_factory=dict)
    load_average_after: list[float] = field(default_factory=list)
    #: why the loader's ``num_workers`` setting had no effect (``num_workers`` is then the 0 in effect), or None
    workers_note: str | None = None

    @property
    def items_per_s(self) -> float:
        return self.plain_items / self.plain_wall_s if self.plain_wall_s > 0 else float("nan")

    @property
    def batches_per_s(self) -> float:
        return self.plain_batches / self.plain_wall_s if self.plain_wall_s > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("cold", "warm")}
        d.update(items_per_s=self.items_per_s, batches_per_s=self.batches_per_s, warm=self.warm.to_dict(),
                 cold=self.cold.to_dict() if self.cold is not None else None, stage_tolerance=STAGE_TOLERANCE)
        return d

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The profile as JSON text; written to ``path`` when one is given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    def table(self) -> Any:
        """A rich table of the stages (print it with ``rich.print`` or ``print_report()``)."""
        from pipekit.bench.report import profile_table

        return profile_table(self)

    def print_report(self) -> None:
        from rich.console import Console

        Console(highlight=False, width=max(Console().width, 110)).print(self.table())

    def plot(self, path: str | os.PathLike | None = None) -> Path | None:
        """A bar chart of where each phase's time goes (a PNG where figures cannot be shown)."""
        from pipekit.bench.report import plot_profile

        return plot_profile(self, path)

    def summary(self) -> str:
        """One line: throughput, the main stage, the overhead of measuring."""
        w = self.warm
        main = max((s for s in w.stages if s.where == "main"), key=lambda s: s.seconds, default=None)
        busy = max((s for s in w.stages if s.where != "main"), key=lambda s: s.seconds, default=None)
        parts = [f"{self.name}: {self.items_per_s:,.0f} items/s ({self.batches_per_s:,.1f} batches/s) warm"]
        if self.cold is not None:
            parts.append(f"{self.cold.items_per_s:,.0f} items/s first epoch" +
                         (f" incl. {self.cold.build_s:.1f} s building the loaders" if self.cold.build_s else ""))
        if main is not None:
            parts.append(f"main thread {main.share:.0%} in {main.name}")
        if busy is not None:
            parts.append(f"{busy.where} busiest in {busy.name} ({busy.share:.0%} of their time)")
        per_epoch = w.wall_s / max(w.epochs, 1)
        noisy = abs(self.overhead) > 0.1 and per_epoch < 1.0
        parts.append(f"timers cost {self.probe_overhead:.2%} (measured {self.overhead:+.1%}" +
                     (f": epochs of {per_epoch:.2f} s are too short to measure it, give more batches)" if noisy
                      else ")"))
        if w.unaccounted_share > STAGE_TOLERANCE:
            beside = any(k != "main" for k in w.threads)
            why = ("the main thread waited for a core or for Python's lock between stages; a busy machine, or "
                   "threads beside it holding the lock, cost that much") if beside else \
                  ("no thread works beside the main one, so it is the loop itself (handing each batch over, "
                   "counting its items) or a busy machine: with batches this quick, give more of them or bigger ones"
                   if per_epoch < 0.05 else "no thread works beside the main one: a busy machine took the time")
            parts.append(f"{w.unaccounted_share:.1%} of the warm epochs is outside every stage (more than "
                         f"{STAGE_TOLERANCE:.0%}): {why}")
        if self.workers_note:
            parts.append(self.workers_note)
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"LoaderProfile({self.summary()})"


def build_loaders(datablock: Any, source: Any, subset: str, dl_kwargs: dict[str, Any] | None,
                  record: StageTimes | None = None) -> tuple[Any, float]:
    """``datablock.dataloaders(source, **dl_kwargs)``, timed (the build's stages go to ``record``)."""
    t0 = time.perf_counter()
    with recording(record):
        with stage("dataloaders()"):
            dls = datablock.dataloaders(source, **(dl_kwargs or {}))
    return dls, time.perf_counter() - t0


def resolve(obj: Any, source: Any = None) -> tuple[Any, Any]:
    """``(datablock, source)`` when ``obj`` is a DataBlock (with ``source``) or such a pair, else ``(None, obj)``."""
    from pipekit.data.datablock import DataBlock

    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], DataBlock):
        obj, source = obj
    if isinstance(obj, DataBlock):
        if source is None:
            raise ParameterError("profile: a DataBlock needs source= (the folder, file or table to build from)")
        return obj, source
    return None, obj


def _caching_in(datablock: Any, folder: str | os.PathLike) -> Any:
    """``datablock`` with its blocks that cache in a folder of their own (a ``cache_dir`` given, as in
    ``ImageBlock(cache_dir="/data/cache")``) caching in ``folder`` instead; ``datablock`` itself when none does. A
    cold first epoch so builds those caches anew, as it does the ones in ``$PIPEKIT_CACHE``, and leaves the user's
    folders as they were. A block without a cache (``cache_dir=False``) or in the standard one (None) is kept."""
    from pipekit.data.transform import as_list

    blocks = as_list(datablock.blocks)
    moved = [b.clone().set_params(cache_dir=os.fspath(folder))
             if not isinstance(b, type) and "cache_dir" in getattr(b, "local_params", ())
             and isinstance(getattr(b, "cache_dir", None), (str, os.PathLike)) else b for b in blocks]
    if all(m is b for m, b in zip(moved, blocks)):
        return datablock
    return datablock.new(blocks=moved)


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether ``a`` and ``b`` are one device (``'cuda'`` is the current CUDA device, ``'cuda:N'`` the N-th)."""
    def indexed(d: torch.device) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if d.type == "cuda" and d.index is None else d
    return indexed(a) == indexed(b)


def bench_device(device: Any, who: str) -> torch.device | None:
    """``device`` checked (:func:`~pipekit.data.loader.checked_device`), or None when none is given: the loaders'
    own devices are used."""
    return None if device is None else checked_device(device, who, on_cpu="device='cpu', or leave device out for "
                                                                          "the loader's own")


def on_device(runner: Runner, dev: torch.device | None, who: str) -> Runner:
    """``runner``, refused when ``dev`` is given and its pipekit loader puts batches on another device: loaders
    already built are measured as they are, not moved behind the user's back (a torch loader's batches are moved to
    ``dev`` by its runner)."""
    if dev is not None and runner.kind == "pipekit" and not _same_device(runner.device, dev):
        raise ParameterError(f"{who}: device={str(dev)!r}, but these pipekit loaders put their batches on "
                             f"{str(runner.device)!r} and are measured as they are; build them there "
                             f"(dataloaders(..., device={str(dev)!r}), or dls.to({str(dev)!r})), or leave "
                             "device out")
    return runner


def profile(loader: Any, n_batches: int | None = None, subset: str | None = None, *, source: Any = None,
            warm_epochs: int = 2, cold: bool = True, device: Any = None, name: str | None = None,
            **dl_kwargs: Any) -> LoaderProfile:
    """Throughput and the share of time per stage of a loader, first epoch and steady state apart.

    ``loader``: pipekit ``DataLoaders`` (``subset`` picks 'train', the default, or 'valid') or a ``DataLoader``, a torch
    ``DataLoader`` (:func:`reference_loader` builds one), or a ``DataBlock`` with ``source=`` (or the
    ``(DataBlock, source)`` pair a recipe's ``datablock()`` returns), built here with ``dl_kwargs`` (``bs``,
    ``num_workers``, ``seed``, ...) so the first epoch includes building the loaders and, with ``cold=True``,
    filling an empty image cache (a temporary folder, for ``$PIPEKIT_CACHE`` and for a block's own ``cache_dir``).
    Each warm epoch is cut at ``n_batches``; the first epoch is measured whole, whatever ``n_batches``: building
    the loaders reads every item, so its items/s is the whole epoch's items over the build and the whole epoch,
    and means the same for every ``n_batches`` and for every loader (a torch loader's first epoch is whole too).
    ``num_workers`` is the setting in effect: 0 for a loader that makes its batches in the thread iterating it
    (its items drawing at random as they are fetched, through item transforms of your own, or an epoch of it a
    single batch), which ``workers_note`` and the summary explain.

    The first epoch is timed once; then ``warm_epochs`` epochs with stage timers alternate with as many
    without, so the overhead of measuring is measured too. ``device`` (``'cpu'``, ``'cuda'``, a ``torch.device``; an
    unknown one is refused) is where the batches go: a DataBlock's loaders are built with it
    (``dataloaders(device=...)``), a torch loader's batches are moved there; pipekit loaders already built move
    their own, and are measured as they are: one whose device differs from ``device`` is refused, saying to build
    it there or leave ``device`` out (it is not moved behind the user's back).

    >>> import numpy as np
    >>> from pipekit.data import DataLoader, TensorStore
    >>> from pipekit.data import ArrayDataset
    >>> ds = ArrayDataset([TensorStore(np.arange(1000.0)), TensorStore(np.arange(1000) % 2)])
    >>> p = profile(DataLoader(ds, bs=100, shuffle=True, seed=0, device="cpu", num_workers=0))
    >>> p.warm.items, p.warm.batches, p.cold.items
    (2000, 20, 1000)
    """
    check("profile", n_batches=(n_batches, Interval(1, None, integer=True, none_ok=True)),
          warm_epochs=(warm_epochs, Interval(1, None, integer=True)))
    dev = bench_device(device, "profile")
    before = machine()
    datablock, obj = resolve(loader, source)
    cold_run: EpochProfile | None = None
    tmp_cache = None
    old_cache = os.environ.get("PIPEKIT_CACHE")
    try:
        if datablock is not None:
            times = StageTimes(sync=torch.cuda.synchronize if torch.cuda.is_available() else None)
            if cold:
                tmp_cache = tempfile.mkdtemp(prefix="pipekit_bench_cache_")
                os.environ["PIPEKIT_CACHE"] = tmp_cache
                datablock = _caching_in(datablock, tmp_cache)
            subset = subset or "train"
            dls, build_s = build_loaders(datablock, obj, subset,
                                         dl_kwargs if dev is None else {**dl_kwargs, "device": dev}, times)
            runner = as_runner(dls, subset, dev, name or type(datablock).__name__)
            # the whole epoch: the build read every item, so cut batches would carry the whole build's time
            first = runner.epoch(0, None, record=True)
            build = EpochRun(build_s, 0, 0, times.snapshot(), times.thread_counts())
            label = "first epoch (from dataloaders(), cache build included)" if cold else \
                "first epoch (from dataloaders(), with the cache already built)"
            cold_run = _epoch_profile(label, [build, first], build_s)
        else:
            if dl_kwargs:
                raise ParameterError(f"profile: {sorted(dl_kwargs)} only apply when building from a DataBlock")
            from pipekit.data.dataloaders import DataLoaders

            if isinstance(obj, DataLoaders):
                subset = subset or "train"
            elif subset is not None:
                raise ParameterError(f"profile: subset={subset!r} picks a loader of DataLoaders or a DataBlock; "
                                     f"a {type(obj).__name__} is one loader, measured as it is: leave subset out")
            runner = on_device(as_runner(obj, subset or "train", dev, name), dev, "profile")
            if cold:  # whole, as from a DataBlock
                cold_run = _epoch_profile("first epoch", [runner.epoch(0, None, record=True)])
        start = 1 if cold_run is not None else 0
        timed: list[EpochRun] = []
        plain: list[EpochRun] = []
        for k in range(warm_epochs):
            e = start + 2 * k
            # alternate timed and plain epochs so a drift in the machine's load hits both alike
            pair = [(True, e), (False, e + 1)] if k % 2 == 0 else [(False, e), (True, e + 1)]
            for record, ep in pair:
                (timed if record else plain).append(runner.epoch(ep, n_batches, record=record))
    finally:
        if tmp_cache is not None:
            if old_cache is None:
                os.environ.pop("PIPEKIT_CACHE", None)
            else:
                os.environ["PIPEKIT_CACHE"] = old_cache
            shutil.rmtree(tmp_cache, ignore_errors=True)  # mapped packs stay readable until released
    warm = _epoch_profile("steady state (warm epochs)", timed)
    plain_wall = sum(r.wall_s for r in plain)
    calls = sum(s.calls for s in warm.stages)
    after = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return LoaderProfile(
        name=runner.name, subset=subset, bs=runner.bs, num_workers=runner.num_workers, device=str(runner.device),
        n_batches=warm.batches // warm.epochs, cold=cold_run, warm=warm, plain_wall_s=plain_wall,
        plain_items=sum(r.items for r in plain), plain_batches=sum(r.batches for r in plain),
        overhead=_paired_overhead(timed, plain),
        probe_overhead=calls * _probe_cost() / warm.wall_s if warm.wall_s > 0 else 0.0,
        machine_before=before, load_average_after=list(after),
        # said where a setting was given that the loader does not use (0, its own default there, needs no word)
        workers_note=runner.workers_unused)

