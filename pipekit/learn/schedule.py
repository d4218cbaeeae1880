"""Hyper-parameter schedules: one-cycle, flat-cosine, the learning-rate finder and fine_tune.

A schedule is a function of the training progress ``pos`` in [0, 1] (``learn.pct_train``); the
``ParamScheduler`` callback sets the optimiser's hyper-parameters from it before every training batch,
so a run resumed at ``start_epoch`` continues the schedule exactly where it stopped.

>>> f = combine_scheds([0.25, 0.75], [sched_cos(1e-4, 1e-2), sched_cos(1e-2, 1e-7)])
>>> round(float(f(0.25)), 6), round(float(f(1.0)), 9)
(0.01, 1e-07)
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipekit.core.archive import writable_folder
from pipekit.core.errors import ParameterError
from pipekit.core.validate import POSITIVE, BOOL, FastaiKeyword, Interval, Is, argument_names, check, check_arguments
from pipekit.data.plotting import get_pyplot, savefig_or_show
from pipekit.learn.callbacks import (CSVLogger, LRFinder, ParamScheduler, ProgressCallback, Recorder,
                                     ShowGraphCallback, TensorBoardCallback, TerminateOnNaNCallback, TimeLimit,
                                     TrackerCallback)
from pipekit.data.transform import as_list
from pipekit.learn.callbacks.core import Cbs
from pipekit.learn.optim import LR_OR_NONE, lr_range

if TYPE_CHECKING:
    from pipekit.learn.learner import LR, Learner

__all__ = [
    "sched_lin", "sched_cos", "sched_exp", "sched_no", "SchedLin", "SchedCos", "SchedExp", "SchedNo",
    "SchedPoly", "combine_scheds", "combined_cos", "fit_one_cycle", "fit_flat_cos", "fit_sgdr",
    "fine_tune", "lr_find", "SuggestedLRs", "valley", "steep", "minimum", "slide",
]

Sched = Callable[[float], Any]


def _sched(f: Callable[[np.ndarray, np.ndarray, float], Any], start: Any, end: Any, pos: float | None) -> Any:
    s, e = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    return (lambda p: f(s, e, p)) if pos is None else f(s, e, pos)


def sched_lin(start: Any, end: Any, pos: float | None = None) -> Any:
    """Linear from ``start`` to ``end``: the schedule, a function of ``pos`` in [0, 1], or with ``pos`` given,
    its value there (fastai's ``sched_lin(start, end, pos)``).

    >>> float(sched_lin(1.0, 3.0)(0.5)), float(sched_lin(1.0, 3.0, 0.5))
    (2.0, 2.0)
    """
    return _sched(lambda s, e, p: s + p * (e - s), start, end, pos)


def sched_cos(start: Any, end: Any, pos: float | None = None) -> Any:
    """Half a cosine from ``start`` to ``end`` (flat at both ends); with ``pos``, its value there.

    >>> from pipekit.learn import sched_cos
    >>> f = sched_cos(1.0, 0.0)
    >>> [round(float(f(p)), 4) for p in (0.0, 0.25, 0.5, 1.0)]
    [1.0, 0.8536, 0.5, 0.0]
    >>> round(float(sched_cos(1.0, 0.0, 0.25)), 4)
    0.8536
    """
    return _sched(lambda s, e, p: s + (1 + math.cos(math.pi * (1 - p))) * (e - s) / 2, start, end, pos)


def sched_exp(start: Any, end: Any, pos: float | None = None) -> Any:
    """Exponential (geometric) from ``start`` to ``end``; with ``pos``, its value there.

    >>> from pipekit.learn import sched_exp
    >>> f = sched_exp(1e-7, 10.0)                # the learning-rate finder's sweep
    >>> [round(float(f(p)), 9) for p in (0.0, 0.5, 1.0)]
    [1e-07, 0.001, 10.0]
    >>> round(float(sched_exp(1.0, 100.0, 0.5)), 6)
    10.0
    """
    return _sched(lambda s, e, p: s * (e / s) ** p, start, end, pos)


def sched_no(start: Any, end: Any = None, pos: float | None = None) -> Any:
    """Constant ``start``; with ``pos``, its value there.

    >>> from pipekit.learn import sched_no
    >>> float(sched_no(0.1)(0.0)), float(sched_no(0.1)(0.9)), float(sched_no(0.1, 0.5, pos=0.9))
    (0.1, 0.1, 0.1)
    """
    return _sched(lambda s, e, p: s, start, start if end is None else end, pos)


# fastai's names for the schedules as objects: SchedCos(start, end) is the function of pos
def SchedLin(start: Any, end: Any) -> Sched:  # noqa: N802 - fastai's spelling
    """The linear schedule from ``start`` to ``end`` (``sched_lin(start, end)``).

    >>> from pipekit.learn import SchedLin
    >>> f = SchedLin(0.0, 1.0)
    >>> [float(f(p)) for p in (0.0, 0.25, 1.0)]
    [0.0, 0.25, 1.0]
    """
    return sched_lin(start, end)


def SchedCos(start: Any, end: Any) -> Sched:  # noqa: N802
    """The half-cosine schedule from ``start`` to ``end`` (``sched_cos(start, end)``).

    >>> f = combine_scheds([0.5, 0.5], [SchedLin(0.0, 1.0), SchedCos(1.0, 0.0)])
    >>> float(f(0.25)), float(f(0.75))
    (0.5, 0.5)
    """
    return sched_cos(start, end)


def SchedExp(start: Any, end: Any) -> Sched:  # noqa: N802
    """The exponential schedule from ``start`` to ``end`` (``sched_exp(start, end)``).

    >>> from pipekit.learn import SchedExp
    >>> f = SchedExp(1.0, 100.0)
    >>> [round(float(f(p)), 6) for p in (0.0, 0.5, 1.0)]
    [1.0, 10.0, 100.0]
    """
    return sched_exp(start, end)


def SchedNo(start: Any, end: Any = None) -> Sched:  # noqa: N802
    """The constant schedule at ``start`` (``sched_no(start)``).

    >>> from pipekit.learn import SchedCos, SchedNo, combine_scheds
    >>> f = combine_scheds([0.5, 0.5], [SchedNo(0.01), SchedCos(0.01, 0.0)])   # flat, then annealed
    >>> [round(float(f(p)), 4) for p in (0.0, 0.4, 0.75, 1.0)]
    [0.01, 0.01, 0.005, 0.0]
    """
    return sched_no(start, end)


def SchedPoly(start: Any, end: Any, power: float) -> Sched:  # noqa: N802
    """From ``start`` to ``end`` along ``pos ** power``.

    >>> float(SchedPoly(1.0, 0.0, 2)(0.5))
    0.75
    """
    s, e = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    return lambda pos: s + (e - s) * pos ** power


def combined_cos(pct: float, start: Any, middle: Any, end: Any) -> Sched:
    """Half a cosine from ``start`` to ``middle`` over the fraction ``pct`` of training, then from ``middle``
    to ``end`` (one-cycle's shape), as fastai's ``combined_cos``.

    >>> f = combined_cos(0.25, 1.0, 10.0, 0.0)
    >>> float(f(0.0)), float(f(0.25)), float(f(1.0))
    (1.0, 10.0, 0.0)
    """
    return combine_scheds([pct, 1 - pct], [sched_cos(start, middle), sched_cos(middle, end)])


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Sched]) -> Sched:
    """Run ``scheds[i]`` over the fraction ``pcts[i]`` of training (pcts must sum to 1).

    >>> from pipekit.learn import SchedCos, SchedLin, combine_scheds
    >>> f = combine_scheds([0.3, 0.7], [SchedLin(0.0, 1.0), SchedCos(1.0, 0.0)])   # warm up, then anneal
    >>> [round(float(f(p)), 4) for p in (0.15, 0.3, 0.65, 1.0)]
    [0.5, 1.0, 0.5, 0.0]
    >>> combine_scheds([0.5, 0.6], [SchedLin(0.0, 1.0), SchedCos(1.0, 0.0)])
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: combine_scheds: pcts must be one value >= 0 per schedule (2) and sum to 1, got [0.5, 0.6]
    """
    pcts_arr = np.asarray(pcts, dtype=float)
    if len(pcts) != len(scheds) or (pcts_arr < 0).any() or abs(pcts_arr.sum() - 1) > 1e-6:
        raise ParameterError(f"combine_scheds: pcts must be one value >= 0 per schedule ({len(scheds)}) and "
                             f"sum to 1, got {list(pcts)}")
    bounds = np.concatenate([[0.0], np.cumsum(pcts_arr)])

    def f(pos: float) -> Any:
        pos = min(max(float(pos), 0.0), 1.0)
        # the last segment with a positive width that starts at or before pos: at a boundary the next segment
        # starts (a restart of SGDR begins at its top), pos = 1 ends the last one
        # (bounds are sums of floats: 0.2 + 0.2 + 0.2 > 0.6, so a boundary is met within rounding)
        i = max((j for j in range(len(scheds)) if pcts_arr[j] > 0 and pos >= bounds[j] - 1e-9),
                default=len(scheds) - 1)
        width = pcts_arr[i] if pcts_arr[i] > 0 else 1.0
        return scheds[i]((pos - bounds[i]) / width)

    return f


_PCT = Interval(0, 1)


def fit_one_cycle(learn: Learner, n_epoch: int, lr_max: LR | None = None, div: float = 25.0, div_final: float = 1e5,
                  pct_start: float = 0.25, wd: float | None = None, moms: Sequence[float] | None = None,
                  cbs: Cbs = None, reset_opt: bool = False, start_epoch: int = 0) -> None:
    """One-cycle policy (``learn.fit_one_cycle``): lr warms up (cosine) from lr_max/div to lr_max, then
    anneals to lr_max/div_final; momentum moves the opposite way (``moms``).

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> learn.fit_one_cycle(1, lr_max=1e-2)
    >>> lrs, moms = learn.recorder.lrs, learn.recorder.moms     # one per batch: 709 images // 64
    >>> len(lrs), round(lrs[0], 6), round(max(lrs), 3), moms[0], round(min(moms), 2)
    (11, 0.0004, 0.01, 0.95, 0.85)
    """
    from pipekit.learn.learner import _SETTINGS  # the learner module builds on this one

    moms_ok: Any = _SETTINGS["moms"]  # checked as a Learner's moms= and learn.moms are
    check("fit_one_cycle", lr_max=(lr_max, LR_OR_NONE), pct_start=(pct_start, _PCT), div=(div, POSITIVE),
          div_final=(div_final, POSITIVE), moms=(moms, Is(lambda v: v is None or moms_ok.accepts(v),
                                                          f"None or {moms_ok}")))
    opt = learn.create_opt() if reset_opt else learn.optimizer
    lr = lr_range(learn.lr if lr_max is None else lr_max, opt.n_groups)
    m = tuple(learn.moms if moms is None else moms)
    scheds = {
        "lr": combine_scheds([pct_start, 1 - pct_start], [sched_cos(lr / div, lr), sched_cos(lr, lr / div_final)]),
        "mom": combine_scheds([pct_start, 1 - pct_start], [sched_cos(m[0], m[1]), sched_cos(m[1], m[2])]),
    }
    learn.fit(n_epoch, lr=lr, wd=wd, cbs=[ParamScheduler(scheds), *as_list(cbs)], start_epoch=start_epoch)


def fit_flat_cos(learn: Learner, n_epoch: int, lr: LR | None = None, div_final: float = 1e5, pct_start: float = 0.75,
                 wd: float | None = None, cbs: Cbs = None, reset_opt: bool = False, start_epoch: int = 0) -> None:
    """``learn.fit_flat_cos``: flat lr for ``pct_start`` of training, then cosine annealing to lr/div_final.

    >>> import numpy as np
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> from pipekit.learn import Learner, MLP, MSELossFlat
    >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"); y = x @ np.float32([1, -2, 0.5])
    >>> dls = DataLoaders.from_stores([TensorStore(x[:48]), TensorStore(y[:48])],
    ...                               [TensorStore(x[48:]), TensorStore(y[48:])], bs=16, seed=0, device="cpu")
    >>> learn = Learner(dls, MLP(3, 1, layers=[8]), loss_func=MSELossFlat())
    >>> learn.fit_flat_cos(2, lr=0.01)           # 3 batches an epoch: the 6th step is in the annealed last 25%
    >>> [round(lr, 5) for lr in learn.recorder.lrs]
    [0.01, 0.01, 0.01, 0.01, 0.01, 0.0075]
    """
    check("fit_flat_cos", lr=(lr, LR_OR_NONE), pct_start=(pct_start, _PCT), div_final=(div_final, POSITIVE))
    opt = learn.create_opt() if reset_opt else learn.optimizer
    lrs = lr_range(learn.lr if lr is None else lr, opt.n_groups)
    sched = combine_scheds([pct_start, 1 - pct_start], [sched_no(lrs), sched_cos(lrs, lrs / div_final)])
    learn.fit(n_epoch, lr=lrs, wd=wd, cbs=[ParamScheduler({"lr": sched}), *as_list(cbs)], start_epoch=start_epoch)


def fit_sgdr(learn: Learner, n_cycles: int, cycle_len: int, lr_max: LR | None = None, cycle_mult: int = 2,
             wd: float | None = None, cbs: Cbs = None, reset_opt: bool = False, start_epoch: int = 0) -> None:
    """Stochastic gradient descent with warm restarts (``learn.fit_sgdr``): ``n_cycles`` cosine annealings of
    the lr from ``lr_max`` to 0, the first ``cycle_len`` epochs long and each next one ``cycle_mult`` times
    longer, so ``cycle_len * (1 + cycle_mult + ... + cycle_mult**(n_cycles-1))`` epochs in all.

    >>> import numpy as np
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> from pipekit.learn import Learner, MLP, MSELossFlat
    >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"); y = x @ np.float32([1, -2, 0.5])
    >>> dls = DataLoaders.from_stores([TensorStore(x[:48]), TensorStore(y[:48])],
    ...                               [TensorStore(x[48:]), TensorStore(y[48:])], bs=16, seed=0, device="cpu")
    >>> learn = Learner(dls, MLP(3, 1, layers=[8]), loss_func=MSELossFlat())
    >>> learn.fit_sgdr(2, 1, lr_max=0.1)       # 1 + 2 = 3 epochs
    >>> len(learn.recorder.values)
    3
    """
    count = Interval(1, None, integer=True)
    check("fit_sgdr", n_cycles=(n_cycles, count), cycle_len=(cycle_len, count), cycle_mult=(cycle_mult, count),
          lr_max=(lr_max, LR_OR_NONE))
    opt = learn.create_opt() if reset_opt else learn.optimizer
    lrs = lr_range(learn.lr if lr_max is None else lr_max, opt.n_groups)
    lengths = [cycle_len * cycle_mult ** i for i in range(n_cycles)]
    n_epoch = int(sum(lengths))
    sched = combine_scheds([n / n_epoch for n in lengths], [sched_cos(lrs, lrs * 0.0) for _ in lengths])
    learn.fit(n_epoch, lr=lrs, wd=wd, cbs=[ParamScheduler({"lr": sched}), *as_list(cbs)], start_epoch=start_epoch)


def _whole_under_the_lock(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn(learn, ...)`` holding the learner's lock: a call made of several fits (``fine_tune``), or of a fit
    and a restore of the weights (``lr_find``), is one call to another thread's ``predict``, which never sees the
    weights between them."""
    @functools.wraps(fn)
    def run(learn: Any, *args: Any, **kwargs: Any) -> Any:
        lock = getattr(learn, "_lock", None)
        if lock is None:
            return fn(learn, *args, **kwargs)
        with lock:
            return fn(learn, *args, **kwargs)
    return run


#: fastai's ``fine_tune`` keywords that pipekit's has no parameter for, nor passes on to ``fit_one_cycle``
_FASTAI_FINE_TUNE = {"lr_max": FastaiKeyword(
    "{given} is not taken: fine_tune gives each of its two fit_one_cycle calls an lr_max of its own, from base_lr "
    "(slice(base_lr) for the frozen epochs, then slice(base_lr/2/lr_mult, base_lr/2)), so fastai's fine_tune fails "
    "on lr_max too; give the rate as base_lr=, or call learn.fit_one_cycle(n_epoch, lr_max=...) for one schedule of "
    "your own")}


@_whole_under_the_lock
def fine_tune(learn: Learner, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
              pct_start: float = 0.3, div: float = 5.0, unfreeze_to: int = 0, **kwargs: Any) -> None:
    """Transfer learning (``learn.fine_tune``): train the head (frozen body) ``freeze_epochs``, then everything
    ``epochs`` with discriminative rates ``slice(base_lr/2/lr_mult, base_lr/2)``.

    ``unfreeze_to``: the first layer group the second phase trains (0, the default: all of them). A
    ``vision_learner`` on an EfficientNet-Lite has three groups: with 1, the stem and the high-resolution
    blocks stay frozen (their edge and texture filters transfer as they are) and, with ``train_bn=False``,
    nothing is back-propagated through them, the costliest layers per image. A ResNet or XResNet body has three too
    (the stem and first two stages, the last two stages, the head), as fastai splits them: 1 trains the last two
    stages and the head. Other bodies are one group (body, head), where 1 trains only the head again.

    A model of one parameter group (a plain ``Learner`` without ``splitter=``, as the book's progressive resizing
    after training from scratch: ``learn.dls = get_dls(128, 224); learn.fine_tune(5, 1e-3)``) has nothing to
    freeze: as in fastai, both phases still run, the first training the whole model ``freeze_epochs`` at
    ``base_lr``, so it trains ``freeze_epochs + epochs`` epochs. ``freeze_epochs=0`` skips the first phase.

    Example (a body and a head: ``body_head_splitter`` makes them two groups, so the body can be frozen):
        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.learn import Learner, accuracy
        >>> from pipekit.vision import ImageDataLoaders, Resize
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
        >>> from pipekit.learn import body_head_splitter
        >>> body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 32), nn.ReLU())
        >>> learn = Learner(dls, nn.Sequential(body, nn.Linear(32, 2)), splitter=body_head_splitter, metrics=accuracy)
        >>> learn.fine_tune(1, base_lr=1e-2)  # one epoch of the head alone, then one of everything
        >>> len(learn.recorder.values), learn.recorder.values[-1][2] > 0.7  # the rows of the last fit
        (1, True)
    """
    # keywords neither fine_tune nor fit_one_cycle takes, refused before anything trains (fastai's lr_max saying what)
    own = argument_names(fine_tune, but=["learn"])
    check_arguments("fine_tune", kwargs, own, ("fit_one_cycle's", argument_names(
        fit_one_cycle, but=["learn", "n_epoch", "lr_max", *own])), fastai=_FASTAI_FINE_TUNE)
    count = Interval(0, None, integer=True)
    check("fine_tune", epochs=(epochs, count), freeze_epochs=(freeze_epochs, count), lr_mult=(lr_mult, Interval(1)),
          unfreeze_to=(unfreeze_to, count))
    n_groups = learn.optimizer.n_groups
    if unfreeze_to >= n_groups:
        raise ParameterError(f"fine_tune: unfreeze_to={unfreeze_to} would leave nothing to train in the second phase; "
                             f"the model has {n_groups} layer groups, so give 0 to {n_groups - 1}")
    cbs = as_list(kwargs.pop("cbs", None))
    limit = next((c for c in cbs if isinstance(c, TimeLimit)), None)
    # one the learner holds (Learner(cbs=TimeLimit(...))) is shared the same way: left out of the two fits, which
    # take their shares of it, and put back after (each fit would otherwise take the whole limit)
    held = next((c for c in learn.cbs if isinstance(c, TimeLimit)), None) if limit is None else None
    if held is not None:
        limit, cbs = held, [*cbs, held]
    end = None if limit is None else time.perf_counter() + limit.seconds
    phases: list[TimeLimit] = []

    def with_share(share: float) -> list:  # one TimeLimit for the whole of fine_tune: each fit gets its share
        if limit is None:
            return cbs
        phases.append(TimeLimit(max(share, 1e-3), limit.probe, limit.quiet))
        return [phases[-1] if c is limit else c for c in cbs]

    with learn.removed_cbs(held) if held is not None else contextlib.nullcontext():
        if freeze_epochs:
            learn.freeze()
            # its share of the epochs, or a quarter of the limit when that is more (the head's epochs are cheap, and
            # a share of a few batches' time would end the fit before its schedule could be fitted to it)
            share = limit.seconds * max(freeze_epochs / (freeze_epochs + epochs), 0.25) if limit is not None else 0.0
            fit_one_cycle(learn, freeze_epochs, slice(base_lr), pct_start=0.99, cbs=with_share(share), **kwargs)
        base_lr /= 2
        learn.freeze_to(unfreeze_to)
        if epochs:
            fit_one_cycle(learn, epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div,
                          cbs=with_share(0.0 if end is None else end - time.perf_counter()), **kwargs)
    if limit is not None and phases:  # the user's TimeLimit tells what the two fits did together
        limit.planned_ = sum(p.planned_ for p in phases)
        limit.kept_ = sum(p.kept_ for p in phases)
        limit.stopped_on_time_ = any(p.stopped_on_time_ for p in phases)
        limit.cut_off_ = any(p.cut_off_ for p in phases)


# ---------------------------------------------------------------- the learning-rate finder
# The suggestion functions read the curve as fastai's of the same names do, so a reader gets the book's rates
# from the same sweep: lr_find gives them the curve without its first tenth (noise from the start) and its last
# five points (usually past divergence), cut before any non-finite loss.
def _suggestion_curve(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> tuple[np.ndarray, np.ndarray]:
    """The points the suggestions read, fastai's: the recorded curve less its first ``num_it // 10`` and last 5
    points, then cut at its first non-finite loss (at least two points, however short the sweep)."""
    hi = max(len(losses) - 5, 2)
    lo = min(num_it // 10, hi - 2)
    bad = np.flatnonzero(~np.isfinite(losses[lo:hi]))
    if len(bad):
        hi = max(lo + int(bad[0]), min(lo + 2, hi))
    return lrs[lo:hi], losses[lo:hi]


def minimum(lrs: np.ndarray, losses: np.ndarray, num_it: int | None = None) -> float:
    """A tenth of the lr with the lowest loss.

    >>> minimum(np.array([1e-3, 1e-2, 1e-1]), np.array([1.0, 0.5, 2.0]))
    0.001
    """
    return float(np.asarray(lrs)[int(np.nanargmin(losses))] / 10)


def steep(lrs: np.ndarray, losses: np.ndarray, num_it: int | None = None) -> float:
    """The lr at the start of the step over which the loss falls fastest against log(lr).

    >>> steep(np.array([1e-3, 1e-2, 1e-1, 1.0]), np.array([1.0, 0.9, 0.4, 3.0]))
    0.01
    """
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    if len(losses) < 2:
        return float(lrs[0])
    return float(lrs[int(np.nanargmin(np.diff(losses) / np.diff(np.log(lrs))))])


def valley(lrs: np.ndarray, losses: np.ndarray, num_it: int | None = None) -> float:
    """An lr inside the longest valley of the curve: the longest run of points whose losses keep falling.

    Of the points before the valley's end (as many as the run is long), the suggestion is the one half-way
    between the first and second third: the loss is clearly falling there and still far from diverging.

    >>> lrs = np.logspace(-6, 0, 13)
    >>> valley(lrs, np.array([2.0, 2.0, 1.9, 1.7, 1.4, 1.0, 0.7, 0.5, 0.4, 0.35, 0.5, 1.5, 4.0]))
    0.0001
    """
    lrs, losses = np.asarray(lrs), np.asarray(losses, dtype=np.float64)
    n = len(losses)
    run = np.ones(n, dtype=int)  # the longest falling subsequence ending at each point
    for i in range(1, n):
        higher = losses[:i] > losses[i]
        if higher.any():
            run[i] = run[:i][higher].max() + 1
    end = int(np.argmax(run))  # the first point to end a longest run
    first = end - int(run[end]) if run[end] > 1 else 0
    third = (end - first) / 3
    return float(lrs[max(first + int(third) + int(third / 2), 0)])


def slide(lrs: np.ndarray, losses: np.ndarray, num_it: int | None = None, lr_diff: int = 15,
          thresh: float = 0.005, adjust_value: float = 1.0) -> float:
    """An lr by the interval slide rule: slide a window of ``lr_diff`` points leftwards from the end of the
    curve until the loss's slope (per point) at its two ends differs by at most ``thresh``; the suggestion is
    the window's left end just before it stopped, times ``adjust_value``. Falls back to :func:`valley` on a
    curve no longer than the window.

    >>> lrs = np.logspace(-6, 0, 30)
    >>> round(slide(lrs, np.r_[np.full(10, 2.0), np.linspace(2.0, 0.5, 15), np.linspace(0.6, 3.0, 5)]), 7)
    0.0001172
    """
    lrs, losses = np.asarray(lrs), np.asarray(losses, dtype=np.float64)
    n = len(losses)
    if n <= lr_diff:
        return valley(lrs, losses)
    grad = np.gradient(losses)
    right, left = n - 1, n - 1 - lr_diff
    picked = lrs[left]
    while left >= 0 and abs(grad[right] - grad[left]) > thresh:
        picked = lrs[left]
        right, left = right - 1, left - 1
    return float(picked) * adjust_value


def _suggest(fn: Callable[..., Any], lrs: np.ndarray, losses: np.ndarray, num_it: int) -> Any:
    """What the suggestion function ``fn`` makes of the curve. ``fn(lrs, losses, num_it)``, fastai's form, gets
    torch tensors as fastai's does (``lrs[1:].log()``, ``losses.argmin()``), in float64, the precision the lrs
    are recorded in, so the lr it picks is one of the sweep's exactly; ``fn(lrs, losses)`` gets NumPy arrays
    (pipekit's own ``valley``, ``steep``, ``minimum`` and ``slide`` get NumPy arrays in either form)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        takes_three = True
    else:
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_three = len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)
    if not takes_three:
        return fn(lrs, losses)
    inner = fn.func if isinstance(fn, functools.partial) else fn
    if inner in (valley, steep, minimum, slide):
        return fn(lrs, losses, num_it)
    return fn(torch.as_tensor(lrs, dtype=torch.float64), torch.as_tensor(losses, dtype=torch.float64), num_it)


def _suggestion_name(fn: Callable[..., Any]) -> str:
    inner = fn.func if isinstance(fn, functools.partial) else fn
    return str(getattr(inner, "__name__", type(inner).__name__))


def _marked_point(p: Any) -> tuple[float, float | None] | None:
    """A point to mark on the lr_find curve: ``(lr, loss)`` (fastai's suggestion functions return it, the loss
    maybe a 0-d tensor), or an lr alone (its loss read off the curve); None when ``p`` is neither."""
    try:
        if isinstance(p, (tuple, list)) and len(p) == 2:
            lr, y = float(p[0]), float(p[1])
        else:
            lr, y = float(p), None
    except (TypeError, ValueError):
        return None
    return (lr, y) if lr > 0 and math.isfinite(lr) else None


class SuggestedLRs:
    """What ``lr_find`` returns: one suggested learning rate per suggestion function, read like a named tuple
    (``res.valley``, ``res[0]``, ``lr_min, lr_steep = res``, ``res._fields``), and the recorded curve
    (``lrs``, ``losses``) with ``plot()``.

    >>> res = SuggestedLRs({"minimum": 1e-3, "steep": 3e-3}, np.array([1e-4, 1e-2]), np.array([1.0, 0.5]))
    >>> lr_min, lr_steep = res
    >>> lr_min, res.steep, res._fields
    (0.001, 0.003, ('minimum', 'steep'))
    """

    def __init__(self, suggestions: dict[str, float], lrs: np.ndarray, losses: np.ndarray,
                 plot_path: Path | None = None):
        self.suggestions = dict(suggestions)
        self.lrs, self.losses, self.plot_path = lrs, losses, plot_path

    @property
    def _fields(self) -> tuple[str, ...]:
        return tuple(self.suggestions)

    def _asdict(self) -> dict[str, float]:
        return dict(self.suggestions)

    def __getattr__(self, name: str) -> float:
        suggestions = self.__dict__.get("suggestions", {})
        if name in suggestions:
            return suggestions[name]
        raise AttributeError(f"lr_find made no {name!r} suggestion; it made {list(suggestions)} (ask for it with "
                             f"suggest_funcs=)")

    def __iter__(self) -> Iterator[float]:
        return iter(self.suggestions.values())

    def __len__(self) -> int:
        return len(self.suggestions)

    def __getitem__(self, i: int | str) -> float:
        return self.suggestions[i] if isinstance(i, str) else list(self.suggestions.values())[i]

    def __repr__(self) -> str:
        return "SuggestedLRs(" + ", ".join(f"{k}={v:.3g}" for k, v in self.suggestions.items()) + ")"

    def plot(self, path: str | os.PathLike | None = None, skip_end: int = 5, return_fig: bool = False,
             suggestions: Sequence[Any] | None = None, nms: Sequence[str] | None = None) -> Any:
        """Loss vs learning rate (log scale) with the suggestions marked; inline in a notebook, PNG when headless.
        Returns the PNG written, if any, or with ``return_fig=True`` the matplotlib figure. The first argument is
        the file to write (``res.plot("lr.png")``); ``learn.recorder.plot_lr_find``'s is fastai's ``skip_end``, and
        its file is given by name (``path=``).

        As fastai's ``plot_lr_find``: ``skip_end`` points at the end of the curve are left out (default 5, usually
        past divergence; ``skip_end=0`` draws all of it; at least two points are always drawn), and
        ``suggestions`` (with their names ``nms``), when given, are the points marked in place of the
        suggestions made: ``(lr, loss)`` pairs as fastai's suggestion functions return them, or learning rates
        alone (marked on the curve).

        >>> res = SuggestedLRs({"minimum": 1e-3}, np.logspace(-5, 0, 12), np.linspace(2.0, 0.5, 12))
        >>> fig = res.plot(skip_end=3, return_fig=True)
        >>> len(fig.axes[0].lines[0].get_xdata()), [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        (9, ['minimum: 1.00e-03'])
        """
        check("plot_lr_find", skip_end=(skip_end, Interval(0, None, integer=True)), return_fig=(return_fig, BOOL),
              suggestions=(suggestions, Is(lambda v: v is None or all(_marked_point(p) is not None for p in v),
                                           "None or a list of (lr, loss) points or learning rates")),
              nms=(nms, Is(lambda v: v is None or (not isinstance(v, str) and all(isinstance(n, str) for n in v)),
                           "None or a list of names, one per suggestion")))
        lrs, losses = np.asarray(self.lrs, dtype=np.float64), np.asarray(self.losses, dtype=np.float64)
        if suggestions is None:
            if nms is not None:
                raise ParameterError("plot_lr_find: nms names the points of suggestions=; give both, or neither "
                                     "(the suggestions lr_find made are marked with their own names)")
            points: list[tuple[str, float, float | None]] = [(k, float(v), None) for k, v in self.suggestions.items()]
        else:
            marked = [_marked_point(p) for p in suggestions]
            names = list(nms) if nms is not None else [f"suggestion {i + 1}" for i in range(len(marked))]
            if len(names) != len(marked):
                raise ParameterError(f"plot_lr_find: nms has {len(names)} names for {len(marked)} suggestions; give "
                                     "one name per suggestion")
            points = [(n, lr, y) for n, (lr, y) in zip(names, marked)]  # type: ignore[misc]
        keep = max(len(lrs) - skip_end, min(len(lrs), 2))
        plt = get_pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(lrs[:keep], losses[:keep])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        for (name, lr, y), marker in zip(points, itertools.cycle("o^sDv")):
            if y is None:
                y = float(np.interp(np.log(lr), np.log(lrs), losses))
            ax.plot([lr], [y], marker=marker, linestyle="", label=f"{name}: {lr:.2e}")
        if points:
            ax.legend()
        out = savefig_or_show(fig, path, name="lr_find")
        return fig if return_fig else out


#: callbacks that belong to training alone, switched off in the fits that are no epoch of training (``lr_find``'s
#: sweep, ``pipekit.bench.bottleneck``'s timed steps): nothing is shown (the table of epochs, a loss graph), logged,
#: checkpointed, early-stopped or timed, and a sweep that drives the loss to divergence on purpose (it stops there
#: itself) is not stopped as a NaN
NOT_TRAINING = (ProgressCallback, ShowGraphCallback, TerminateOnNaNCallback, CSVLogger, TensorBoardCallback,
                TrackerCallback, TimeLimit)
#: the learner's record of its last fit, which the sweep leaves as it was (a checkpoint saved after lr_find, or a
#: fit resumed from a loaded one, sees the training run's)
_FIT_STATE = ("epoch", "n_epoch", "start_epoch", "iter", "n_iter", "train_iter", "total_iters", "pct_train",
              "final_record", "epoch_done", "stop_requested", "resume_epoch", "resume_cb_states")

_SUGGEST = Is(lambda fs: len(as_list(fs)) > 0 and all(callable(f) for f in as_list(fs)),
              "a suggestion function fn(lrs, losses) -> lr (valley, steep, minimum, slide) or several")


@_whole_under_the_lock
def lr_find(learn: Learner, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
            show_plot: bool = True, suggest_funcs: Any = (valley, steep, minimum),
            path: str | os.PathLike | None = None) -> SuggestedLRs:
    """``learn.lr_find``: a short run with an exponentially growing lr, then one suggested lr per function of
    ``suggest_funcs`` (one function or several: ``valley``, ``steep``, ``minimum``, ``slide``, or any
    ``fn(lrs, losses) -> lr``, which gets NumPy arrays; fastai's ``fn(lrs, losses, num_it)`` gets torch tensors as
    fastai's), returned as a :class:`SuggestedLRs` read like a named tuple::

        lr_min, lr_steep = learn.lr_find(suggest_funcs=(minimum, steep))
        learn.lr_find(suggest_funcs=valley).valley

    The model and optimiser are restored afterwards, and so are the Recorder's per-epoch history (``values``,
    ``final_record``) and the learner's epoch counters; the sweep's curve is kept on the Recorder (``lr_find_lrs``,
    ``lr_find_losses``, ``lr_find_suggestions``) for ``learn.recorder.plot_lr_find()``, and is its per-batch record
    (``recorder.lrs``, ``recorder.losses``, as fastai's: ``plt.plot(learn.recorder.lrs, learn.recorder.losses)``)
    until the next fit records its own. The sweep runs without the callbacks of :data:`NOT_TRAINING`: the learner's
    trackers (``SaveModelCallback``, ``EarlyStoppingCallback``, any ``TrackerCallback``), ``TimeLimit``, loggers,
    the loss graph (``ShowGraphCallback``) and the table of epochs (the progress bar shows it, unless
    ``learn.no_bar()``); ``show_plot`` draws loss vs lr with the suggestions (PNG when headless: to ``path``, whose
    folder is checked before the sweep, or to ``$PIPEKIT_PLOTS``; a plot folder that cannot be written is warned
    about and the suggestions are still returned).

    Example:
        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.learn import Learner, accuracy
        >>> from pipekit.vision import ImageDataLoaders, Resize
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
        >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)), metrics=accuracy)
        >>> lrs = learn.lr_find(num_it=20, show_plot=False)
        >>> lrs._fields, 1e-7 < lrs.valley < 10, len(learn.recorder.values)  # the learner is left untrained
        (('valley', 'steep', 'minimum'), True, 0)
        >>> learn.fit_one_cycle(1, lrs.valley)
    """
    check("lr_find", suggest_funcs=(suggest_funcs, _SUGGEST))
    funcs = as_list(suggest_funcs)
    names = [_suggestion_name(f) for f in funcs]
    if len(set(names)) != len(names):
        raise ParameterError(f"lr_find: suggest_funcs has two functions named alike ({names}); each suggestion is "
                             "read by its function's name")
    if show_plot and path is not None:  # a path= that cannot be written is said before the sweep, not after it
        writable_folder(Path(path).parent, "lr_find's path=",
                        "path=<a .png file in a writable folder>, or leave path out (figures that cannot be shown "
                        "then go to $PIPEKIT_PLOTS, default ./pipekit_plots)")
    finder = LRFinder(start_lr, end_lr, num_it, stop_div)
    n_epoch = max(1, math.ceil(num_it / max(1, len(learn.dls.train))))  # no batch: fit says why
    model_state = copy.deepcopy(learn.model.state_dict())
    opt_state = copy.deepcopy(learn.optimizer.state_dict()) if learn.opt is not None else None
    dl_epoch = learn.dls.train.epoch
    fit_state = {k: getattr(learn, k) for k in _FIT_STATE}
    recorder = learn.__dict__.get("recorder")
    history = dict(recorder.__dict__) if recorder is not None else {}  # a fit makes new lists: a shallow copy keeps it
    sweep: dict[str, Any] = {}
    try:
        # the learner's progress bar shows the sweep (as fastai's does), without the table of epochs
        bar = [ProgressCallback(show_table=False)] if any(
            isinstance(c, ProgressCallback) and c.show_bar for c in learn.cbs) else []
        with learn.removed_cbs(NOT_TRAINING):
            learn.fit(n_epoch, cbs=[finder, *bar])
    finally:
        for k, v in fit_state.items():
            setattr(learn, k, v)
        if recorder is not None:
            # the per-batch record is the sweep's after lr_find (its lrs and losses those of the curve)
            sweep = {k: recorder.__dict__.get(k) for k in Recorder.PER_BATCH}
            recorder.__dict__.update(history)
        learn.model.load_state_dict(model_state)
        if opt_state is not None:
            learn.optimizer.load_state_dict(opt_state)
        else:
            learn.opt = None
        learn.dls.train.epoch = dl_epoch
    if len(finder.losses_) < 5:
        n = len(finder.losses_)
        if n and not math.isfinite(finder.losses_[-1]):
            raise ParameterError(f"lr_find: the loss became {finder.losses_[-1]} after {n} batches; lower start_lr "
                                 f"(now {start_lr}) or check the data/model")
        raise ParameterError(f"lr_find: the loss diverged (its smoothed value rose above 4 times its lowest) after "
                             f"{n} batches; for a trained model, whose loss is low and noisy, pass stop_div=False or "
                             f"a larger num_it (now {num_it}); otherwise lower start_lr (now {start_lr}) or check "
                             "the data/model")
    lrs, losses = np.asarray(finder.lrs_), np.asarray(finder.losses_)
    curve = _suggestion_curve(lrs, losses, num_it)
    suggestions = {}
    for name, fn in zip(names, funcs):
        out = _suggest(fn, *curve, num_it)
        # a function may also give the point it picked, (lr, (x, y)), as the book's versions do
        lr = out[0] if isinstance(out, (tuple, list)) else out
        try:
            suggestions[name] = float(lr)
        except (TypeError, ValueError):
            raise ParameterError(f"lr_find: the suggestion function {name} returned {out!r}, not a learning rate") from None
    res = SuggestedLRs(suggestions, lrs, losses)
    if recorder is not None:  # beside the training history, which the sweep left as it was: plot_lr_find() draws it
        recorder.lr_find_lrs, recorder.lr_find_losses = lrs.tolist(), losses.tolist()
        recorder.lr_find_suggestions = dict(suggestions)
        # as fastai's: the per-batch record is the sweep's until the next fit records its own, so
        # plt.plot(recorder.lrs, recorder.losses) draws the sweep
        recorder.__dict__.update({k: v for k, v in sweep.items() if v is not None})
        recorder.lrs, recorder.losses = lrs.tolist(), losses.tolist()
    if show_plot:
        res.plot_path = res.plot(path)
    return res
