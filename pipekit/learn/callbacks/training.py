"""The callbacks every Learner has (train/eval switching, the Recorder, the progress display) and the one
``get_preds`` adds to collect predictions."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from pipekit.core.errors import NotFittedError, ParameterError, warn
from pipekit.core.protocols import Loader
from pipekit.core.validate import BOOL, Interval, check_state, env_flag, shown
from pipekit.data.loader import DataLoader, _to
from pipekit.data.plotting import get_pyplot, savefig_or_show
from pipekit.data.progress import (Shown, Slot, check_progress_settings, format_time, html_table, in_notebook,
                                   progress_bar, progress_enabled)
from pipekit.learn.callbacks.core import Callback, CancelTrainException, CancelValidException
from pipekit.learn.distributed import is_main_process
from pipekit.learn.losses import item_losses
from pipekit.metrics import Metric

__all__ = ["TrainEvalCallback", "ShortEpochCallback", "Recorder", "ProgressCallback", "GatherPreds", "item_order"]


class TrainEvalCallback(Callback):
    """Puts the model in train/eval mode and keeps ``pct_train`` / ``train_iter`` for the schedulers.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> type(learn.train_eval).__name__                  # every Learner has one
    'TrainEvalCallback'
    >>> learn.fit(2)
    >>> learn.train_iter, learn.pct_train, learn.model.training   # 2 epochs of 2 batches, ending on validation
    (4, 1.0, False)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    unique = True  # one per learner: another replaces it

    order = -20  # first: every other callback reads the mode and the position in training

    def before_fit(self) -> None:
        check_progress_settings()  # a bad PIPEKIT_QUIET/PIPEKIT_PROGRESS stops the fit here, whatever prints later
        learn = self.learn
        n_iter = len(learn.dls.train)
        learn.train_iter = learn.start_epoch * n_iter
        learn.pct_train = learn.start_epoch / max(1, learn.n_epoch)
        learn.total_iters = max(1, learn.n_epoch * n_iter)

    def before_train(self) -> None:
        learn = self.learn
        learn.train_iter = learn.epoch * len(learn.dl)
        learn.pct_train = min(1.0, learn.train_iter / learn.total_iters)  # epoch / n_epoch unless TimeLimit cut it
        learn.model.train()
        learn.training = True

    def after_batch(self) -> None:
        learn = self.learn
        if learn.training:
            learn.train_iter += 1
            learn.pct_train = learn.train_iter / learn.total_iters

    def before_validate(self) -> None:
        self.learn.model.eval()
        self.learn.training = False


class ShortEpochCallback(Callback):
    """Runs only the first ``pct`` of each epoch's training batches, and with ``short_valid`` only the first ``pct``
    of its validation batches too (fastai's ``ShortEpochCallback``): a quick check that a fit runs end to end.

    As fastai's, a phase stops after the batch at which ``iter / n_iter`` reaches ``pct`` (``iter`` counting from 0):
    ``pct=0`` runs one batch of each phase, ``pct=1`` all of them. It stops the phase once every other callback has
    had that batch (it runs last), so the Recorder's ``losses`` and ``lrs`` hold every batch trained, and the epoch's
    row holds the losses and metrics of the batches run. Passed to ``get_preds`` or ``validate`` (or left among the
    learner's callbacks), it shortens their passes too when ``short_valid``.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, ShortEpochCallback
    >>> ds = list(zip(torch.randn(80, 4), torch.randint(0, 2, (80,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=8, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> learn.fit(1, cbs=ShortEpochCallback(pct=0.25))   # 10 batches: iter 3 is the first with 3/10 >= 0.25
    >>> len(learn.recorder.lrs)
    4
    """

    order = 80  # after every other callback's after_batch (the Recorder's, GatherPreds'): the batch it stops on counts
    param_constraints = {"pct": Interval(0, 1, why="the share of each epoch's batches to run"), "short_valid": BOOL}

    def __init__(self, pct: float = 0.01, short_valid: bool = True):
        self.pct, self.short_valid = pct, short_valid
        self.check_params()

    def after_batch(self) -> None:
        learn = self.learn
        if learn.iter / learn.n_iter < self.pct:
            return
        if learn.training:
            raise CancelTrainException()
        if self.short_valid:
            raise CancelValidException()


def _batch_size(xb: tuple) -> int:
    x = xb[0] if xb else None
    return int(x.shape[0]) if isinstance(x, torch.Tensor) and x.ndim else 1


def _distinct(names: list[str]) -> list[str]:
    """Names made distinct by a suffix: two ``accuracy_multi`` metrics record ``accuracy_multi`` and
    ``accuracy_multi_2`` (so each is a column, and a tracker's ``monitor``)."""
    out: list[str] = []
    for name in names:
        new, i = name, 1
        while new in out or new in ("epoch", "train_loss", "valid_loss", "time"):
            i += 1
            new = f"{name}_{i}"
        out.append(new)
    return out


def _detached(pred: Any) -> Any:
    """A training batch's predictions without their graph (a tensor, or a tuple or list of them), for a metric."""
    if isinstance(pred, torch.Tensor):
        return pred.detach()
    if isinstance(pred, (tuple, list)):
        return type(pred)(_detached(p) for p in pred)
    return pred



class Recorder(Callback):
    """Records smoothed training loss, learning rates and momentums per batch; losses and metrics per epoch.

    After ``fit``: ``learn.recorder.values`` (one row per epoch: ``[train_loss, valid_loss, *metrics]``, as
    fastai's, so ``values[-1][2]`` is the first metric), ``metric_names`` (``['epoch', 'train_loss', 'valid_loss',
    *metrics, 'time']``, metrics of one name told apart by a suffix: ``accuracy_multi``, ``accuracy_multi_2``),
    ``history`` (the rows of the progress table, laid out as ``metric_names``), ``value(name)`` (one recorded value
    by name), ``losses`` (smoothed, per batch), ``lrs`` and ``moms`` (the last layer group's, one number per training
    batch, as fastai's; every group's in ``group_lrs`` and ``group_moms``); ``plot_loss()`` draws them. After
    ``learn.lr_find()``, which leaves the per-epoch history (``values``, ``history``) as it was, the per-batch record
    is the sweep's, as fastai's (``lrs`` and ``losses`` its curve, so ``plt.plot(recorder.lrs, recorder.losses)``
    draws it) until the next fit records its own; the curve is also kept apart (``lr_find_lrs``, ``lr_find_losses``,
    ``lr_find_suggestions``), which a later fit keeps, and ``plot_lr_find()`` draws it.

    As fastai's, ``train_metrics=True`` (``Recorder(train_metrics=True)``, or ``learn.recorder.train_metrics = True``
    before a fit) also measures the metrics on the training batches of each epoch, as the model in training mode
    predicted them before each step, and ``valid_metrics=False`` records no validation loss nor metrics. The
    columns are then ``['epoch', 'train_loss', 'train_accuracy', 'valid_loss', 'valid_accuracy', 'time']`` (both),
    or ``['epoch', 'train_loss', 'accuracy', 'time']`` (training metrics only, the metrics those of the training
    batches), or ``['epoch', 'train_loss', 'time']`` (neither); each column is a tracker's ``monitor``.

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner, Recorder, accuracy
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), metrics=accuracy)
    >>> learn.recorder.train_metrics = True
    >>> learn.fit(1, 1e-2)
    >>> learn.recorder.metric_names
    ['epoch', 'train_loss', 'train_accuracy', 'valid_loss', 'valid_accuracy', 'time']
    >>> learn.recorder.value("train_accuracy") > 0.5
    True

    A Recorder given to one fit (``learn.fit(1, cbs=Recorder(train_metrics=True))``) is ``learn.recorder`` after it,
    in place of the one it replaced, so the record read after a fit is always that fit's.

    The smoothing's running state (``ema_``, ``n_smoothed_``) continues across a resumed fit. ``learn.validate()``,
    ``get_preds`` and ``predict`` leave all of this as the last fit left it.
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    unique = True  # one per learner: another replaces it
    kept_after_fit = True  # learn.fit(..., cbs=Recorder(...)): learn.recorder is then that fit's record

    order = 50
    #: what a fit records against its training batches (``lrs``, ``moms`` and ``losses`` one per batch, each
    #: validation's loss at the batch it followed, a ParamScheduler's values by name); a fit starts them afresh,
    #: and ``lr_find`` leaves its sweep's here
    PER_BATCH: ClassVar[tuple[str, ...]] = ("losses", "lrs", "moms", "group_lrs", "group_moms", "valid_losses_at",
                                            "scheduled_hps")
    #: what a fit records per epoch; a fit starts them afresh, and ``lr_find`` leaves the last fit's as they were
    PER_EPOCH: ClassVar[tuple[str, ...]] = ("values", "history", "iters")

    param_constraints = {"train_metrics": BOOL, "valid_metrics": BOOL}
    # recorded only when not fastai's defaults, so a record of the default Recorder is the one older pipekit reads
    record_defaults: ClassVar[dict[str, Any]] = {"params.train_metrics": False, "params.valid_metrics": True}

    def __init__(self, beta: float = 0.98, train_metrics: bool = False, valid_metrics: bool = True):
        self.beta = beta
        self.train_metrics, self.valid_metrics = train_metrics, valid_metrics
        self.check_params()
        self.metrics: list[Metric] = []
        self.metric_names: list[str] = []
        #: the metric columns of ``metric_names``: (column, metric, 'train_' / 'valid_' / '' as fastai prefixes
        #: them, whether measured on the training batches)
        self.metric_columns: list[tuple[str, Metric, str, bool]] = []
        self.values: list[list[Any]] = []
        self.history: list[list[Any]] = []
        self.losses: list[float] = []
        self.lrs: list[float] = []  # the last layer group's, per training batch (fastai's recorder.lrs)
        self.moms: list[float] = []  # likewise; NaN for an optimiser without momentum
        self.group_lrs: list[list[float]] = []  # every layer group's, per training batch
        self.group_moms: list[list[float | None]] = []
        self.valid_losses_at: list[tuple[int, float]] = []
        self.iters: list[int] = []  # training batches recorded by the end of each epoch (fastai's recorder.iters)
        self.scheduled_hps: dict[str, list[float]] = {}  # what a ParamScheduler set per batch, by name
        # the last lr_find's sweep (a fit does not reset it)
        self.lr_find_lrs: list[float] = []
        self.lr_find_losses: list[float] = []
        self.lr_find_suggestions: dict[str, float] = {}
        self._valid_total: Any = 0.0
        self._valid_count = 0
        self._raw: list[torch.Tensor] = []  # the training batches' losses not yet folded in (see _fold)
        self._bs: list[int] = []
        self._n_folded, self._n_bad, self._first_bad = 0, 0, 0  # this epoch's training batches folded, non-finite
        self._train_began = False  # this epoch's training phase reset the metrics to measure it (train_metrics)
        self._train_vals: list[float | None] | None = None  # the metrics of this epoch's training batches
        self._fit_train = False  # the fit measures its training batches' metrics (train_metrics at its start)
        self._record_valid = True  # a fit's validation batches are measured (valid_metrics), a validation pass's always

    # per batch only the detached loss is kept (no tensor op, no host sync); smoothing and sums are
    # computed once per training phase, or when ``smooth_loss`` is read. A validation-only pass (validate,
    # get_preds) leaves what the last fit recorded as it was: only before_validate and after_batch act there, for
    # validate's row
    def before_fit(self) -> None:
        check_progress_settings()  # as TrainEvalCallback does, for a fit run without it
        self.check_params()  # train_metrics / valid_metrics may have been set since
        self.ema_, self.n_smoothed_ = 0.0, 0
        self.metrics = list(self.learn.metrics)
        # what this fit records, fixed for its epochs (the columns are named now)
        self._fit_train, self._record_valid = bool(self.train_metrics), bool(self.valid_metrics)
        # fastai's columns: metrics prefixed 'train_' and 'valid_' when both are measured, else as they are
        both = self._fit_train and self._record_valid
        sides = [("train_" if both else "", True)] if self._fit_train else []
        sides += [("valid_" if both else "", False)] if self._record_valid else []
        self.metric_columns = []
        for prefix, on_train in sides:
            names = _distinct([prefix + m.name for m in self.metrics])
            self.metric_columns += [(n, m, prefix, on_train) for n, m in zip(names, self.metrics)]
        train_cols = [c[0] for c in self.metric_columns if c[3]]
        valid_cols = [c[0] for c in self.metric_columns if not c[3]]
        self.metric_names = (["epoch", "train_loss", *train_cols] + (["valid_loss"] if self._record_valid else [])
                             + [*valid_cols, "time"])
        for k in (*self.PER_EPOCH, *self.PER_BATCH):
            setattr(self, k, {} if k == "scheduled_hps" else [])
        self._raw, self._bs = [], []

    def before_epoch(self) -> None:
        self._epoch_start = time.perf_counter()
        self._train_total, self._train_count = 0.0, 0
        self._raw, self._bs = [], []
        self._n_folded, self._n_bad, self._first_bad = 0, 0, 0
        self._train_began, self._train_vals = False, None

    def before_train(self) -> None:
        if self._fit_train:
            self._reset_metrics()
            self._train_began = True

    def after_cancel_epoch(self) -> None:
        # an epoch cancelled while training skips after_train: its batches are this epoch's, not the next one's
        self.after_train()

    def after_batch(self) -> None:
        learn = self.learn
        loss = learn.loss
        if loss is None:
            return
        if isinstance(loss, torch.Tensor):  # a callback may have set learn.loss from a graph (loss + penalty)
            loss = loss.detach()
        bs = _batch_size(learn.xb)
        if learn.training:
            self._raw.append(loss)
            self._bs.append(bs)
            lrs, moms = learn.optimizer.lrs, learn.optimizer.moms
            self.group_lrs.append(lrs)
            self.group_moms.append(moms)
            self.lrs.append(lrs[-1])
            self.moms.append(moms[-1] if moms[-1] is not None else math.nan)
            if self._train_began and learn.yb:  # the predictions the model made in training mode, before the step
                pred, targ = _detached(learn.pred), learn.yb[0] if len(learn.yb) == 1 else learn.yb
                for m in self.metrics:
                    m.accumulate(pred, targ, loss.float(), bs)
        elif self._record_valid or learn.validation_only:
            loss = loss.float()
            self._valid_total = self._valid_total + loss * bs
            self._valid_count += bs
            for m in self.metrics:
                m.accumulate(learn.pred, learn.yb[0] if len(learn.yb) == 1 else learn.yb, loss, bs)

    def after_train(self) -> None:
        self._fold()
        if self._n_bad:
            warn(f"the training loss was not finite in {self._n_bad} batch(es) of epoch {self.learn.epoch} "
                 f"(first: batch {self._first_bad}); lower the learning rate, add GradientClip, or check the "
                 "inputs for NaN/inf", RuntimeWarning)
            self._n_bad = 0
        if self._train_began and self._train_vals is None:  # read before validation resets the metrics
            self._train_vals = [m.value for m in self.metrics]

    def _fold(self) -> None:
        """Fold the training losses kept since the last fold into the epoch's sums and the smoothed losses
        (``losses``, ``ema_``): one host sync for all of them."""
        if not self._raw:
            return
        raw = torch.stack([r.float().reshape(()) for r in self._raw]).cpu().numpy().astype(np.float64)
        bs = np.asarray(self._bs, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(raw))
        if len(bad):
            if not self._n_bad:
                self._first_bad = self._n_folded + int(bad[0])
            self._n_bad += len(bad)
        self._n_folded += len(raw)
        self._train_total += float((raw * bs).sum())
        self._train_count += int(bs.sum())
        ema, count, beta = self.ema_, self.n_smoothed_, self.beta
        for v in raw:  # exponential moving average, debiased like an EMA started at zero
            count += 1
            ema = beta * ema + (1 - beta) * float(v)
            self.losses.append(ema / (1 - beta ** count))
        self.ema_, self.n_smoothed_ = ema, count
        self._raw, self._bs = [], []

    def before_validate(self) -> None:
        self._valid_total, self._valid_count = 0.0, 0
        if self._record_valid or self.learn.validation_only:
            self._reset_metrics()

    def _reset_metrics(self) -> None:
        # the data's classes and kind of target, for a metric that cannot tell them from a batch (one column: one
        # class, a binary model's single output, or a regression's number); a fit's training (train_metrics) and
        # validation, and a validation-only pass, come here
        dls = self.learn.dls
        kind = getattr(dls, "loss_kind", None)
        c = getattr(dls, "c", None) if kind == "cross_entropy" else None
        for m in self.metrics:
            m.set_classes(c if isinstance(c, int) else None, kind)
            m.reset()

    def valid_row(self) -> list[float | None]:
        """``[valid_loss, *metrics]`` of the validation pass just run (None where nothing was seen)."""
        seen = self._valid_count
        self._valid_count = 0
        return [float(self._valid_total) / seen if seen else None, *[m.value if seen else None for m in self.metrics]]

    @property
    def smooth_loss(self) -> float | None:
        """The smoothed training loss (fastai's ``learn.smooth_loss``, which reads this): while training, up to the
        batch just run for a callback's ``after_batch`` that runs after the Recorder's (``order`` > 50), up to the
        batch before for one that runs before it; after a training phase, its last value; None before any training
        batch. Read during training, it waits for the batches queued on the device (one host sync per read)."""
        self._fold()
        return self.losses[-1] if self.losses else None

    def after_epoch(self) -> None:
        learn = self.learn
        train_loss = self._train_total / self._train_count if self._train_count else None
        valid = self.valid_row()
        row = [learn.epoch, train_loss]
        if self._fit_train:
            row += self._train_vals if self._train_vals is not None else [None] * len(self.metrics)
        if self._record_valid:
            row += valid
        row.append(time.perf_counter() - self._epoch_start)
        self.history.append(row)
        self.values.append(row[1:-1])
        self.iters.append(len(self.losses))
        if self._record_valid and valid[0] is not None:
            self.valid_losses_at.append((len(self.losses), valid[0]))
        learn.final_record = row[1:-1]

    def after_fit(self) -> None:
        self.after_train()

    def release(self) -> None:
        """A fit that ended in an error or Ctrl-C keeps what it recorded: the training batches run before it stopped
        are in ``losses`` beside their ``lrs``, as after a full fit, so ``plot_loss()`` draws them."""
        self._fold()

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A checkpoint's smoothing state: a finite running average and a count of the batches in it."""
        fields = {"ema_": Interval(None, None), "n_smoothed_": Interval(0, None, integer=True)}
        check_state(state, "the smoothed loss of a resumed fit", **{k: v for k, v in fields.items() if k in state})
        super().state_from_data(state)

    def __repr__(self) -> str:
        if not self.history:
            return "Recorder(nothing recorded yet)"
        last = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(self.metric_names[1:-1], self.history[-1][1:-1]))
        n = len(self.history)
        return f"Recorder({n} epoch{'s' * (n != 1)}, {len(self.losses)} batches; last epoch: {last})"

    def recorded_name(self, name: str) -> str:
        """The name ``name`` is recorded under: itself, or for another name of one recorded metric (a name pipekit
        once recorded it under, ``roc_auc_binary`` for ``roc_auc_score``; see ``Metric.aliases``) that metric's
        recorded name. A name that fits several recorded metrics is refused; one that fits none is returned as it
        is."""
        if name in self.metric_names:
            return name
        fits = [n for n, m, prefix, _ in self.metric_columns if name in (prefix + a for a in m.own_aliases())]
        if len(fits) > 1:
            raise ParameterError(f"{name!r} is another name of {len(fits)} recorded metrics, {fits}: give the one "
                                 "meant by its recorded name")
        return fits[0] if fits else name

    def metric(self, name: str) -> Metric | None:
        """The metric recorded as ``name`` (or another name of it, see :meth:`recorded_name`; None for the
        losses)."""
        name = self.recorded_name(name)
        return next((m for n, m, _, _ in self.metric_columns if n == name), None)

    def measured_on_train(self, name: str) -> bool:
        """Whether the recorded ``name`` (see :meth:`recorded_name`) is measured on the training batches:
        'train_loss', and with ``train_metrics=True`` the training batches' metrics (``train_accuracy``, or
        ``accuracy`` when ``valid_metrics=False``)."""
        name = self.recorded_name(name)
        return name == "train_loss" or any(n == name and on_train for n, _, _, on_train in self.metric_columns)

    def value(self, name: str, epoch: int = -1) -> float | None:
        """The recorded ``name`` (a column of ``metric_names``: 'train_loss', 'valid_loss' or a metric name, see
        :meth:`recorded_name`) at ``epoch`` (an epoch number of the last fit, as in the progress table; negative
        counts back from the last epoch recorded)."""
        if not self.history:
            raise NotFittedError("the Recorder has recorded nothing yet: call fit first")
        name = self.recorded_name(name)
        if name not in self.metric_names:
            raise ParameterError(f"no recorded value {name!r}; recorded: {self.metric_names}")
        if epoch < 0:
            if -epoch > len(self.history):
                raise ParameterError(f"epoch={epoch}: only {len(self.history)} epoch(s) were recorded")
            row = self.history[epoch]
        else:
            rows = [r for r in self.history if r[0] == epoch]
            if not rows:
                raise ParameterError(f"epoch {epoch} was not recorded by the last fit; recorded epochs: "
                                     f"{[r[0] for r in self.history]}")
            row = rows[-1]
        return row[self.metric_names.index(name)]

    @property
    def log(self) -> list[Any]:
        """The last row of the table, laid out as ``metric_names`` (``[epoch, train_loss, valid_loss, *metrics,
        time]`` by default; fastai's ``recorder.log``); empty before any epoch."""
        return list(self.history[-1]) if self.history else []

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, path: str | os.PathLike | None = None,
                  log: bool = False, show_epochs: bool = False, ax: Any = None) -> Any:
        """Plot the smoothed training loss per batch (and validation loss per epoch); PNG when headless.

        ``log``: a log scale for the losses; ``show_epochs``: a line where each epoch ends. On ``ax`` (matplotlib
        axes, as fastai's ``plot_loss(ax=...)``) it draws into the caller's figure and returns the axes; else it
        shows its own figure (inline, a window, or a PNG whose path it returns).
        """
        own = ax is None
        if own:
            fig, ax = get_pyplot().subplots(figsize=(6, 4))
        xs = np.arange(len(self.losses))
        ax.plot(xs[skip_start:], self.losses[skip_start:], label="train")
        if with_valid and self.valid_losses_at:
            vx, vy = zip(*self.valid_losses_at)
            ax.plot(vx, vy, marker="o", label="valid")
        if show_epochs:
            for x, _ in self.valid_losses_at:
                ax.axvline(x, color="grey", linestyle=":")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("loss")
        ax.legend()
        return savefig_or_show(fig, path, name="loss") if own else ax

    def plot_lr_find(self, skip_end: int = 5, return_fig: bool = False, suggestions: Sequence[Any] | None = None,
                     nms: Sequence[str] | None = None, path: str | os.PathLike | None = None) -> Any:
        """Plot the last ``learn.lr_find()``'s smoothed loss against the learning rate (log scale), its
        suggestions marked, as ``lr_find(show_plot=True)`` draws it; inline in a notebook, PNG when headless (to
        ``path`` when given). fastai's arguments: ``skip_end`` points at the end are left out (default 5, usually
        past divergence; 0 draws them all), ``return_fig=True`` returns the figure (else the PNG written, if any),
        ``suggestions``/``nms`` mark other points (see :meth:`~pipekit.learn.SuggestedLRs.plot`). The file to write
        is given by name, ``plot_lr_find(path="lr.png")``: the first argument is ``skip_end``, as fastai's."""
        if isinstance(skip_end, (str, os.PathLike)):
            raise ParameterError(f"plot_lr_find: skip_end={shown(skip_end)} is a file; the first argument is skip_end "
                                 "(as fastai's: the points left out at the end of the curve): give the file as "
                                 f"path=, plot_lr_find(path={shown(skip_end)})")
        if not self.lr_find_lrs:
            raise NotFittedError("plot_lr_find draws the curve of learn.lr_find(), and this learner has not run it: "
                                 "call learn.lr_find() first")
        from pipekit.learn.schedule import SuggestedLRs  # the module that runs the sweep imports this one

        return SuggestedLRs(self.lr_find_suggestions, np.asarray(self.lr_find_lrs),
                            np.asarray(self.lr_find_losses)).plot(path, skip_end=skip_end, return_fig=return_fig,
                                                                  suggestions=suggestions, nms=nms)

    @property
    def hps(self) -> dict[str, list[float]]:
        """The hyper-parameters of the last layer group per training batch of the last fit, by name: ``lr`` and
        ``mom`` always, and whatever a scheduler set (``fit_one_cycle``'s ``lr`` and ``mom``, a
        ``ParamScheduler({'wd': ...})``'s ``wd``), as fastai's ``recorder.hps``."""
        out: dict[str, list[float]] = {"lr": list(self.lrs), "mom": list(self.moms)}
        out.update(self.scheduled_hps)
        return out

    def plot_sched(self, keys: str | Sequence[str] | None = None, figsize: tuple[float, float] | None = None,
                   path: str | os.PathLike | None = None) -> Path | None:
        """Plot the hyper-parameters ``keys`` (default: every name in :attr:`hps`, e.g. ``lr`` and ``mom``) of the
        last layer group per batch, one panel each, two panels a row (fastai's ``plot_sched(keys, figsize)``);
        inline in a notebook, PNG when headless."""
        hps = self.hps
        if not self.lrs:
            raise NotFittedError("plot_sched draws the hyper-parameters of the last fit, and this learner has "
                                 "not trained: call fit (or fit_one_cycle) first")
        names = list(hps) if keys is None else [keys] if isinstance(keys, str) else list(keys)
        unknown = [k for k in names if k not in hps]
        if unknown or not names:
            raise ParameterError(f"plot_sched: no recorded hyper-parameter {unknown or names!r}; recorded: "
                                 f"{list(hps)}")
        rows, cols = (len(names) + 1) // 2, min(2, len(names))
        fig, axs = get_pyplot().subplots(rows, cols, figsize=figsize or (4 * cols, 3 * rows), squeeze=False)
        for ax in axs.flat[len(names):]:
            ax.set_visible(False)
        for name, ax in zip(names, axs.flat):
            ax.plot(hps[name])
            ax.set_title(name)
            ax.set_xlabel("batch")
        return savefig_or_show(fig, path, name="schedule")


def _fmt(v: Any) -> str:
    if v is None:  # no validation batch (no validation set, or validation skipped): None, as fastai prints it
        return "None"
    if isinstance(v, float):
        return f"{v:.6f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


class ProgressCallback(Callback):
    """A rich progress bar over batches and a per-epoch table of losses and metrics.

    The table prints unless ``PIPEKIT_QUIET=1`` or ``show_table=False``; the bar shows only on a terminal, unless
    ``show_bar=False`` (``learn.no_logging()`` and ``learn.no_bar()`` turn them off for a ``with`` block).

    A validation-only pass (``get_preds``, ``validate``, ``tta``, predictions on a ``dls.test_dl``) shows a bar over
    each of its phases' batches too, as fastai's, described by ``learn.pass_bar`` ('get_preds', 'validate', 'tta
    pass 1/4'), and no table: the Recorder and the table stay as the last fit left them. A phase of one batch
    (``predict``'s one item) shows none, and neither does a pass a callback runs during a fit (the fit's bar counts
    the fit's batches). The pass leaves ``learn.batch_wrapper`` as it found it.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, ProgressCallback
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=ProgressCallback(show_bar=False))   # the table only
    >>> learn.progress.show_bar, len([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])  # it replaced the default
    (False, 1)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    unique = True  # one per learner: another replaces it

    order = 60

    def __init__(self, show_table: bool = True, show_bar: bool = True):
        self.show_table, self.show_bar = show_table, show_bar

    _in_fit = False  # between this learner's before_fit and after_fit (or release); a class default, which a
    # callback read from an older export lacks

    def _outer(self) -> list[Any]:
        """The batch wrappers the validation-only phases now running found, innermost last."""
        return self.__dict__.setdefault("_outer_wrappers", [])

    def before_fit(self) -> None:
        self._in_fit = True
        self._header_done = False
        # one table for the job, not one per process
        self._quiet = env_flag("PIPEKIT_QUIET") or not self.show_table or not is_main_process()
        # in a notebook: the table as HTML in one output, redrawn after each epoch, and the bar in one below it
        self._notebook = in_notebook()
        self._table: Slot | None = Slot() if self._notebook and not self._quiet else None
        learn = self.learn
        if not self.show_bar:
            return
        bar = Slot() if self._notebook and progress_enabled() else None
        learn.batch_wrapper = lambda dl: progress_bar(dl, total=len(dl),
                                                      description=f"epoch {learn.epoch + 1}/{learn.n_epoch} "
                                                                  f"{'train' if learn.training else 'valid'}",
                                                      slot=bar)

    def after_epoch(self) -> None:
        rec = self.learn.recorder
        if self._quiet or not rec.history:
            return
        names = rec.metric_names
        rows = [[str(r[0])] + [_fmt(v) for v in r[1:-1]] + [format_time(r[-1])]
                for r in rec.history]
        widths = [max(len(n), 10) for n in names]
        if self._table is not None:
            text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [names, *rows])
            self._table.show(Shown(html_table(names, rows), text))
            return
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        if not self._header_done:
            console.print("  ".join(n.ljust(w) for n, w in zip(names, widths)), style="bold")
            self._header_done = True
        console.print("  ".join(c.ljust(w) for c, w in zip(rows[-1], widths)))

    def before_validate(self) -> None:
        learn = self.learn
        if not learn.validation_only:  # a fit's own validation phase: the fit's bar, set in before_fit
            return
        self._outer().append(learn.batch_wrapper)
        try:
            n = len(learn.dl)
        except TypeError:
            n = 0
        if self._in_fit or not self.show_bar or n <= 1 or not progress_enabled():
            learn.batch_wrapper = None
            return
        description = learn.pass_bar or "valid"
        learn.batch_wrapper = lambda dl: progress_bar(dl, total=n, description=description)

    def after_validate(self) -> None:
        if self.learn.validation_only and self._outer():
            self.learn.batch_wrapper = self._outer().pop()

    def after_fit(self) -> None:
        self._in_fit = False
        self.learn.batch_wrapper = None

    def release(self) -> None:
        """A fit that ended in an error or Ctrl-C takes its bar away too: a later ``validate`` or ``get_preds``
        would draw the dead fit's 'epoch 1/2 valid' bar."""
        self._in_fit = False
        self._outer().clear()
        self.learn.batch_wrapper = None


def item_order(dl: Loader, epoch: int, n: int) -> np.ndarray | None:
    """Positions of the items in the order the loader yielded them, when it did not keep their order.

    >>> import torch
    >>> from pipekit.data import DataLoader
    >>> from pipekit.learn.callbacks.training import item_order
    >>> ds = list(zip(torch.arange(6.0), torch.arange(6)))
    >>> dl = DataLoader(ds, bs=4, shuffle=True, seed=0)
    >>> item_order(dl, epoch=0, n=6).tolist(), [int(x) for xb, yb in dl for x in xb]
    ([3, 2, 5, 4, 0, 1], [3, 2, 5, 4, 0, 1])
    >>> item_order(DataLoader(ds, bs=4), epoch=0, n=6) is None       # kept in order
    True
    """
    if not isinstance(dl, DataLoader):
        return None
    try:
        plan = dl.batch_plan(epoch)
        if not all(isinstance(p, np.ndarray) and p.ndim == 1 and p.dtype.kind in "iu" for p in plan):
            return None
        order = np.concatenate(plan) if plan else np.arange(0)
    except Exception:  # a custom loader's plan that is not item positions
        return None
    positions = np.arange(n)
    if len(order) != n or np.array_equal(order, positions) or not np.array_equal(np.sort(order), positions):
        return None
    return order


class GatherPreds(Callback):
    """Collects predictions, targets, inputs and per-item losses of a validation pass on the CPU.

    ``learn.get_preds`` runs it and joins its batches: ``with_input`` and ``with_loss`` are its two options.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> inputs, preds, targs, losses = learn.get_preds(with_input=True, with_loss=True)   # 2 batches, joined
    >>> [tuple(t.shape) for t in (inputs, preds, targs, losses)]          # one loss per item
    [(32, 4), (32, 2), (32,), (32,)]
    >>> torch.equal(inputs, torch.stack([x for x, _ in ds]))              # the validation items, in order
    True
    """

    order = 70
    run_train = False

    def __init__(self, with_input: bool = False, with_loss: bool = False):
        self.with_input, self.with_loss = with_input, with_loss

    def before_validate(self) -> None:
        self.preds: list[Any] = []
        self.targs: list[Any] = []
        self.inputs: list[Any] = []
        self.losses: list[torch.Tensor] = []

    def after_batch(self) -> None:
        learn = self.learn
        if learn.pred is None:  # a batch a callback cancelled before the model saw it: none of its items
            return
        self.preds.append(_to(learn.pred, "cpu"))
        if learn.yb:
            self.targs.append(_to(learn.yb[0] if len(learn.yb) == 1 else learn.yb, "cpu"))
        if self.with_input:
            self.inputs.append(_to(learn.xb[0] if len(learn.xb) == 1 else learn.xb, "cpu"))
        if self.with_loss and learn.loss is not None:
            loss = learn.loss.detach().float()
            bs = _batch_size(learn.xb)
            if loss.ndim == 0 and bs != 1:  # the batch's mean would stand for every item: wrong top losses
                name = getattr(learn.loss_func, "__name__", type(learn.loss_func).__name__)
                raise ParameterError(f"with_loss=True needs a loss per item, and loss_func {name!r} gave one number "
                                     f"for a batch of {bs} with reduction='none': make it honour reduction='none' "
                                     "(return the unreduced losses), or use a pipekit loss")
            if loss.ndim == 0:
                loss = loss.reshape(1)
            elif loss.numel() != bs:  # losses per position: the loss's own mean over each item's positions
                loss = item_losses(learn.loss_func, loss, bs, learn.yb[0] if len(learn.yb) == 1 else None,
                                   learn.pred if isinstance(learn.pred, torch.Tensor) else None)
            self.losses.append(loss.cpu())
