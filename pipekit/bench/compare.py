"""``compare()`` two loaders in alternating rounds, and ``sweep()`` one loader over ``num_workers`` settings.

On a shared machine a single run of each contender measures the machine's load as much as the loaders.
Here every round runs each contender once, the order alternating between rounds, and the ratio is
taken per round: a winner is named only when every round agrees.
"""
from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from pipekit.bench.profile import bench_device, build_loaders, machine, on_device, resolve
from pipekit.bench.runner import Runner, as_runner
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, Is, check

_WORKERS = Is(lambda ws: len(ws) > 0 and all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in ws),
              "a list of numbers of workers (integers >= 0)")


def _runner(obj: Any, subset: str, source: Any, dev: torch.device | None, name: str | None,
            dl_kwargs: dict[str, Any]) -> Runner:
    """The runner of ``obj`` on ``dev`` (checked by :func:`bench_device`): a DataBlock's loaders are built there,
    a torch loader's batches moved there, pipekit loaders built on another device refused."""
    datablock, obj = resolve(obj, source)
    if datablock is not None:
        obj, _ = build_loaders(datablock, obj, subset, dl_kwargs if dev is None else {**dl_kwargs, "device": dev})
    return on_device(as_runner(obj, subset, dev, name), dev, "compare")


#: how far from 1 every round's ratio must be, and how many rounds there must be, to name a winner: two runs of one
#: loader differ by a few percent on a quiet machine and by tens of percent on a busy one
WINNER_MARGIN, WINNER_ROUNDS = 0.05, 3


@dataclass
class Comparison:
    """Per-round items/s of ``a`` and ``b`` and their ratios (a / b); ``winner`` is 'a', 'b' or None.

    >>> from pipekit.bench import Comparison
    >>> c = Comparison(("pipekit", "torch"), n_batches=10, rates_a=[1200.0, 1150.0, 1300.0],
    ...                rates_b=[800.0, 820.0, 790.0])
    >>> c.winner, round(c.ratio, 2), [round(r, 2) for r in c.ratios]
    ('a', 1.5, [1.5, 1.4, 1.65])
    >>> c.verdict
    'pipekit is 1.50x torch (every round faster, ratios 1.4-1.65)'
    """

    names: tuple[str, str]
    n_batches: int | None
    rates_a: list[float]
    rates_b: list[float]
    machine_before: dict[str, Any] = field(default_factory=dict)
    load_average_after: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.rates_a, self.rates_b)]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios."""
        return statistics.median(self.ratios)

    @property
    def ratio_min(self) -> float:
        return min(self.ratios)

    @property
    def ratio_max(self) -> float:
        return max(self.ratios)

    @property
    def median_a(self) -> float:
        return statistics.median(self.rates_a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.rates_b)

    @property
    def winner(self) -> str | None:
        """'a' or 'b' when every one of at least ``WINNER_ROUNDS`` rounds has it faster by more than
        ``WINNER_MARGIN``; else None."""
        if len(self.ratios) < WINNER_ROUNDS:
            return None
        if self.ratio_min > 1 + WINNER_MARGIN:
            return "a"
        if self.ratio_max < 1 - WINNER_MARGIN:
            return "b"
        return None

    @property
    def verdict(self) -> str:
        a, b = self.names
        # the rounds' range in the headline's direction (a/b, or b/a when b wins), to 3 significant digits
        span = f"{self.ratio_min:.3g}-{self.ratio_max:.3g}"
        if self.winner == "a":
            return f"{a} is {self.ratio:.2f}x {b} (every round faster, ratios {span})"
        if self.winner == "b":
            return (f"{b} is {1 / self.ratio:.2f}x {a} (every round faster, ratios "
                    f"{1 / self.ratio_max:.3g}-{1 / self.ratio_min:.3g})")
        if len(self.ratios) < WINNER_ROUNDS:
            return (f"no winner named from {len(self.ratios)} round(s) (median ratio {self.ratio:.2f}, {span}): "
                    f"give rounds >= {WINNER_ROUNDS}")
        return (f"no clear winner: median ratio {self.ratio:.2f}, the rounds' ratios ({span}) are not all beyond "
                f"{1 - WINNER_MARGIN:.2f}-{1 + WINNER_MARGIN:.2f} on one side")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ratios=self.ratios, ratio=self.ratio, ratio_min=self.ratio_min, ratio_max=self.ratio_max,
                 winner=self.winner, verdict=self.verdict)
        return d

    def table(self) -> Any:
        from pipekit.bench.report import comparison_table

        return comparison_table(self)

    def print_report(self) -> None:
        from rich.console import Console

        Console(highlight=False, width=max(Console().width, 110)).print(self.table())

    def __repr__(self) -> str:
        return f"Comparison({self.verdict})"


def compare(a: Any, b: Any, n_batches: int | None = None, rounds: int = 5, subset: str = "train", *,
            source: Any = None, names: Sequence[str] | None = None, device: Any = None,
            **dl_kwargs: Any) -> Comparison:
    """Items/s of ``a`` and ``b`` over ``rounds`` alternating rounds (``ab``, ``ba``, ``ab``, ...), each epoch
    cut at ``n_batches``, after one untimed epoch of each.

    ``a``/``b``: anything :func:`profile` takes (DataBlocks are built once, outside the timing, with
    ``dl_kwargs``). ``device`` is where both put their batches, as for :func:`profile`: DataBlocks are built
    there, torch loaders' batches moved there, pipekit loaders built on another device refused. The ratio is
    reported per round; a winner is named only when every round (3 at least) has it faster by more than 5%, so
    noise on a busy machine does not invent one.

    >>> import numpy as np
    >>> from pipekit.data import DataLoader, TensorStore
    >>> from pipekit.data import ArrayDataset
    >>> ds = ArrayDataset([TensorStore(np.arange(4096.0)), TensorStore(np.arange(4096) % 2)])
    >>> dl = DataLoader(ds, bs=256, shuffle=True, seed=0, device="cpu", num_workers=0)
    >>> c = compare(dl, dl, rounds=3)
    >>> len(c.ratios), c.names
    (3, ('a', 'b'))
    """
    check("compare", rounds=(rounds, Interval(1, None, integer=True)),
          n_batches=(n_batches, Interval(1, None, integer=True, none_ok=True)),
          names=(names, Is(lambda n: n is None or (not isinstance(n, str) and len(n) == 2), "two names, (a, b)")))
    dev = bench_device(device, "compare")
    before = machine()
    na, nb = names if names is not None else ("a", "b")
    if dl_kwargs and all(resolve(x, source)[0] is None for x in (a, b)):
        raise ParameterError(f"compare: {sorted(dl_kwargs)} only apply when building from a DataBlock, and both "
                             "loaders are built already")
    ra = _runner(a, subset, source, dev, na, dl_kwargs)
    rb = _runner(b, subset, source, dev, nb, dl_kwargs)
    ra.epoch(0, n_batches)
    rb.epoch(0, n_batches)
    rates: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for k in order:
            run = (ra, rb)[k].epoch(r + 1, n_batches)
            rates[k].append(run.items / run.wall_s)
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    return Comparison((na, nb), n_batches, rates[0], rates[1], before, load)


@dataclass
class Sweep:
    """Items/s per ``num_workers`` setting (median over rounds) and the best one. ``no_effect`` says why
    ``num_workers`` changes nothing for the loader swept, when it does not (every setting then runs the same
    way, so none is best: ``best`` is None and the rates differ by noise alone).

    >>> from pipekit.bench import Sweep
    >>> s = Sweep("pipekit", n_batches=10, rounds={0: [900.0, 1000.0, 950.0], 2: [1500.0, 1400.0, 1600.0]})
    >>> s.rates, s.best
    ({0: 950.0, 2: 1500.0}, 2)
    >>> s
    Sweep(pipekit: best num_workers=2, 0: 950 items/s, 2: 1,500 items/s)
    >>> Sweep("pipekit", 10, {0: [900.0], 2: [950.0]}, no_effect="num_workers has no effect on this loader").best
    """

    name: str
    n_batches: int | None
    rounds: dict[int, list[float]]
    machine_before: dict[str, Any] = field(default_factory=dict)
    no_effect: str | None = None

    @property
    def rates(self) -> dict[int, float]:
        return {w: statistics.median(r) for w, r in self.rounds.items()}

    @property
    def best(self) -> int | None:
        """The setting of the fastest median; None when ``num_workers`` has no effect on the loader."""
        if self.no_effect:
            return None
        rates = self.rates
        return max(rates, key=lambda w: rates[w])

    @property
    def headline(self) -> str:
        """What the sweep found, in a few words: the best setting, or why ``num_workers`` has no effect."""
        return self.no_effect if self.no_effect else f"best num_workers={self.best}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_batches": self.n_batches, "rounds": {str(k): v for k, v in self.rounds.items()},
                "rates": {str(k): v for k, v in self.rates.items()}, "best": self.best,
                "no_effect": self.no_effect, "machine_before": self.machine_before}

    def table(self) -> Any:
        from pipekit.bench.report import sweep_table

        return sweep_table(self)

    def print_report(self) -> None:
        from rich.console import Console

        Console(highlight=False, width=max(Console().width, 110)).print(self.table())

    def __repr__(self) -> str:
        return f"Sweep({self.name}: {self.headline}, " + ", ".join(f"{w}: {r:,.0f} items/s" for w, r in self.rates.items()) + ")"


def sweep(loader: Any, workers: Sequence[int] = (0, 2, 4), n_batches: int | None = None, rounds: int = 3,
          subset: str = "train", *, source: Any = None, device: Any = None, name: str | None = None,
          **dl_kwargs: Any) -> Sweep:
    """Items/s of ``loader`` at each ``num_workers`` in ``workers`` (prefetch threads for pipekit, worker
    processes for torch), round-robin over ``rounds`` rounds; ``best`` is the fastest median. A pipekit loader that
    makes its batches in the thread iterating it whatever ``num_workers`` says (its items go through item transforms
    of your own as they are fetched, or an epoch of it is a single batch) runs every setting alike: the sweep says so
    (``no_effect``, why) and names no best.

    ``loader``: pipekit ``DataLoaders``/``DataLoader``, a DataBlock (with ``source=``, built once), or a
    function ``num_workers -> loader`` (e.g. ``lambda w: reference_loader(dblock, path, num_workers=w)``).
    ``device``: where the batches go, as for :func:`profile` (a DataBlock is built there, pipekit loaders built on
    another device are refused).

    >>> import numpy as np
    >>> from pipekit.data import DataLoader, TensorStore
    >>> from pipekit.data import ArrayDataset
    >>> ds = ArrayDataset([TensorStore(np.arange(2048.0)), TensorStore(np.arange(2048) % 2)])
    >>> s = sweep(DataLoader(ds, bs=256, seed=0, device="cpu"), workers=(0, 1), rounds=2)
    >>> sorted(s.rounds), s.best in (0, 1)
    ([0, 1], True)
    """
    check("sweep", rounds=(rounds, Interval(1, None, integer=True)), workers=(workers, _WORKERS),
          n_batches=(n_batches, Interval(1, None, integer=True, none_ok=True)))
    dev = bench_device(device, "sweep")
    before = machine()
    make: Callable[[int], Any]
    datablock, obj = resolve(loader, source)
    if datablock is not None:
        obj, _ = build_loaders(datablock, obj, subset, {**dl_kwargs, "num_workers": max(workers),
                                                        **({} if dev is None else {"device": dev})})
    elif dl_kwargs:
        raise ParameterError(f"sweep: {sorted(dl_kwargs)} only apply when building from a DataBlock")
    if callable(obj) and not hasattr(obj, "__iter__"):
        make = obj
    else:
        base = on_device(as_runner(obj, subset, dev, name), dev, "sweep")
        if base.kind != "pipekit":
            raise ParameterError("sweep: give pipekit loaders, a DataBlock, or a function num_workers -> loader "
                                 "(a torch DataLoader cannot change its number of workers)")
        make = lambda w: base.loader.new(num_workers=w)  # noqa: E731 - one line, read once
    runners = {w: on_device(as_runner(make(w), subset, dev, name), dev, "sweep") for w in workers}
    label = name or next(iter(runners.values())).name
    for r in runners.values():
        r.epoch(0, n_batches)
    rates: dict[int, list[float]] = {w: [] for w in workers}
    for k in range(rounds):
        for w in (list(workers) if k % 2 == 0 else list(workers)[::-1]):
            run = runners[w].epoch(k + 1, n_batches)
            rates[w].append(run.items / run.wall_s)
    # every setting made its batches in the iterating thread: none of them is best, whatever the noise says
    unused = [r.workers_unused for w, r in runners.items() if w > 0]
    no_effect = unused[0] if unused and all(unused) else None
    return Sweep(label, n_batches, rates, before, no_effect)

