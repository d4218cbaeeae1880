"""Ready-made callbacks: checkpoints and early stopping on a monitored value, gradient clipping, mixed
precision, activation statistics, hyper-parameter schedules and the learning-rate finder (MixUp and CutMix are
in :mod:`pipekit.learn.callbacks.mixing`).

>>> from pipekit.learn import SaveModelCallback, EarlyStoppingCallback
>>> cbs = [SaveModelCallback(monitor="accuracy"), EarlyStoppingCallback(monitor="valid_loss", patience=2)]
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pipekit.core.archive import writable_folder
from pipekit.core.errors import ParameterError, warn
from pipekit.core.validate import (
    BOOL, POSITIVE, Interval, Is, Options, as_number, check, check_state, env_flag, finite_number,
)
from pipekit.data.lists import L
from pipekit.data.plotting import get_pyplot, savefig_or_show
from pipekit.learn.callbacks.core import (
    Callback, CancelBatchException, CancelFitException, CancelTrainException, CancelValidException,
)
from pipekit.learn.callbacks.training import _batch_size as batch_size
from pipekit.learn.distributed import is_main_process
from pipekit.learn.export import checkpoint_path
from pipekit.learn.hooks import HookCallback

__all__ = ["TrackerCallback", "SaveModelCallback", "EarlyStoppingCallback", "ReduceLROnPlateau", "GradientAccumulation",
           "GradientClip", "BnFreeze", "MixedPrecision", "ActivationStats", "ParamScheduler", "LRFinder",
           "TimeLimit"]

_COUNT = Interval(1, None, integer=True)
#: a plateau callback's patience: 0 acts as 1 (the first epoch without improvement), as fastai takes it
_PATIENCE = Interval(0, None, integer=True)
#: how a callback writing under ``learn.path`` is given another folder (the end of
#: :func:`~pipekit.core.archive.writable_folder`'s message)
LEARNER_FOLDER = "Learner(..., path='<a writable folder>') or learn.path = Path('<a writable folder>')"
#: a tracker's best value as set by hand: a number, or None (infinite too) for no best yet; a NaN is none
_BEST = Is(lambda v: v is None or (as_number(v) is not None and v == v),
           "a number (the best value of monitor so far, which an epoch must beat to improve), or None, inf or -inf "
           "for no best yet")


class TrackerCallback(Callback):
    """Tracks the best value of ``monitor`` ('valid_loss', 'train_loss' or a metric's name; any column of
    ``learn.recorder.metric_names``, e.g. 'train_accuracy' with ``learn.recorder.train_metrics = True``) over epochs.

    Which way is better comes from the metric (``greater_is_better``); the losses are lower-is-better.
    ``comp(a, b)``, e.g. ``np.less``, overrides it: True when ``a`` is better than ``b``. A value
    improves on the best when it is better by more than ``min_delta``. A value that is not a finite number (a NaN
    loss, a metric undefined on the validation set) never improves on it, never becomes the best, and is warned of
    (a :class:`~pipekit.core.errors.PipekitWarning` naming the value and the epoch); it counts as an epoch without
    improvement.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, TrackerCallback
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> tracker = TrackerCallback(monitor="valid_loss")
    >>> learn.fit(2, 1e-2, cbs=tracker)
    >>> tracker.best == min(valid_loss for train_loss, valid_loss in learn.recorder.values)
    True
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 63  # after the Recorder (50) has written the epoch's values
    param_constraints = {"min_delta": Interval(0, None), "comp": Is(lambda c: c is None or callable(c), "a function")}
    best_: float | None = None  # learned: the best value so far

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0, reset_on_fit: bool = True):
        self.monitor, self.comp, self.min_delta, self.reset_on_fit = monitor, comp, min_delta, reset_on_fit
        self.check_params()

    def before_fit(self) -> None:
        recorder = self.learn.recorder
        recorded = recorder.metric_names[1:-1]
        # a former pipekit name of a recorded metric ('roc_auc_binary' for 'roc_auc_score') is taken too
        self._monitored = recorder.recorded_name(self.monitor)
        if self._monitored not in recorded:
            hint = ("" if recorder.valid_metrics else "; the Recorder records no validation values "
                    "(valid_metrics=False): set learn.recorder.valid_metrics = True to monitor them")
            raise ParameterError(f"{type(self).__name__}: cannot monitor {self.monitor!r}; recorded values are "
                                 f"{recorded}{hint}")
        if not recorder.measured_on_train(self._monitored) and self.judges_epochs():
            self._refuse_without_validation()
        metric = recorder.metric(self._monitored)
        self._greater = metric is not None and metric.greater_is_better
        if self.reset_on_fit:
            self.reset_state()
        self.new_best = False
        #: the epochs of this fit whose monitored value was not a finite number
        self._not_finite: list[int] = []

    def judges_epochs(self) -> bool:
        """Whether this tracker acts on the monitored value (a checkpoint written every epoch does not)."""
        return True

    def _refuse_without_validation(self) -> None:
        """Refuse a fit whose loaders have no validation batch: a validation score to monitor is never recorded
        (None each epoch) when a model trains on every item (``RandomSplitter(valid_pct=0)``, ``splits=None``)."""
        try:
            valid = self.learn.dls.valid
            n_batches, n_items = len(valid), len(valid.dataset)
        except (AttributeError, TypeError, ValueError):  # loaders with no validation loader, or none of known size
            return
        if n_batches:
            return
        raise ParameterError(
            f"{type(self).__name__}: monitor={self.monitor!r} is measured on the validation set, and these loaders "
            f"have no validation batch (dls.valid holds {n_items} items): with no validation set, as "
            "RandomSplitter(valid_pct=0) or Tabular(splits=None) give, the model trains on every item and records "
            f"{self.monitor!r} as None each epoch. Pass monitor='train_loss', leave the callback out, or keep a "
            "validation set (e.g. RandomSplitter(valid_pct=0.2, seed=42))")

    @property
    def best(self) -> float | None:
        """The best value of ``monitor`` so far (fastai's name for ``best_``); None before any epoch gave one.

        Setting it seeds the best a fit's epochs must beat: after ``super().before_fit()`` in a subclass (which
        forgets the last fit's best when ``reset_on_fit``), or before a fit with ``reset_on_fit=False``. ``None``,
        ``inf`` and ``-inf`` mean no best yet (the first finite value is one).

        >>> cb = TrackerCallback(monitor="valid_loss", reset_on_fit=False)
        >>> cb.best = 0.3                      # only a valid_loss under 0.3 counts as an improvement
        >>> cb.best, cb.best_
        (0.3, 0.3)
        >>> cb.best = float("inf"); cb.best is None
        True
        """
        return self.best_

    @best.setter
    def best(self, value: float | None) -> None:
        value = check(type(self).__name__, best=(value, _BEST))["best"]
        self.best_ = finite_number(value)

    def tell(self, line: str) -> None:
        """Print what the tracker did, as fastai's trackers do, unless ``PIPEKIT_QUIET=1`` (one process of a
        distributed job speaks for all)."""
        if not env_flag("PIPEKIT_QUIET") and is_main_process():
            print(line)

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``; a value that is not a finite number
        (NaN, infinite) never does, so it never becomes the best."""
        if finite_number(value) is None:
            return False
        best = self.best_
        if best is None:
            return True
        better = self.comp(value, best) if self.comp is not None else value > best if self._greater else value < best
        return bool(better) and abs(value - best) > self.min_delta

    #: what a checkpoint's state of a tracker may hold, checked before a resumed fit uses it (each entry present)
    STATE_FIELDS: ClassVar[dict[str, Any]] = {
        "best_": Is(lambda v: v is None or finite_number(v) is not None, "a finite number, or null before any epoch"),
        "best_epoch_": Is(lambda v: v is None or (type(v) is int and v >= 0), "an epoch number, or null"),
        "wait_": Interval(0, None, integer=True),
        "saved_": Is(lambda v: isinstance(v, (list, tuple)) and all(isinstance(p, str) for p in v),
                     "a list of the checkpoints' paths"),
        "reductions_": Is(lambda v: isinstance(v, list) and all(
            isinstance(r, (list, tuple)) and len(r) == 2 and type(r[0]) is int and r[0] >= 0
            and isinstance(r[1], list) and r[1] and all((x := finite_number(lr)) is not None and x > 0 for lr in r[1])
            for r in v), "a list of [epoch, [learning rates above 0]]"),
    }

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A checkpoint's tracker state: the best value finite, counts and epochs whole numbers of at least 0,
        learning rates finite and above 0, checkpoint paths text (a negative rate trained uphill, a NaN best
        stopped the fit at once, text raised raw errors mid-fit)."""
        check_state(state, f"the {type(self).__name__} of a resumed fit",
                    **{k: v for k, v in self.STATE_FIELDS.items() if k in state})
        super().state_from_data(state)

    def after_epoch(self) -> None:
        val = self.learn.recorder.value(self._monitored)
        #: whether this epoch gave a value to judge (an epoch whose validation was skipped gives none)
        self.judged = val is not None
        if val is not None and finite_number(val) is None:
            self._not_finite.append(self.learn.epoch)
            best = "no epoch has given a finite value yet" if self.best_ is None else \
                f"the best stays {self.best_:.6g}"
            warn(f"{type(self).__name__}: the monitored value {self.monitor}={val} at epoch {self.learn.epoch} is not a "
                 f"finite number, so it never counts as an improvement ({best}); a NaN validation loss or metric "
                 "comes from NaN or infinite inputs or targets in the validation set, a diverging model (a lower "
                 "learning rate), or a metric undefined on that validation set, such as ROC-AUC of a set holding "
                 "one class alone (that metric's own warning names the class and the fix)")
        self.new_best = val is not None and self.improved(val)
        if self.new_best and val is not None:
            self.best_ = float(val)


class SaveModelCallback(TrackerCallback):
    """Saves the model when ``monitor`` improves (``fname``), or every epoch with ``every_epoch=True``
    (``fname_{epoch}``; ``every_epoch=n`` saves the epochs whose number is a multiple of ``n``: 0, n, 2n, ...,
    as fastai does); at the end of training the best model is loaded back, its optimiser state too with
    ``with_opt=True``, unless ``at_end`` (then the last model is saved). A fit in which no epoch gave a finite value of ``monitor`` saves no best model and loads none back:
    the model keeps its last epoch's weights, which a warning says. The checkpoints go to
    ``learn.path / learn.model_dir``, made and tried as the fit starts: a folder that cannot be written (a read-only
    dataset folder) stops the fit before its first epoch, with an error naming it and how to give another
    (``Learner(..., path=...)``, ``learn.path``, ``learn.model_dir``).

    Early stopping only takes effect once the epoch is over, so the model of the epoch in which training
    stops is saved if it is the best, whichever order the two callbacks are listed in. Its order (66)
    comes after ``EarlyStoppingCallback`` (64), so a checkpoint it writes holds the trackers' state for
    the epoch just finished and a fit resumed from it counts patience exactly as the uninterrupted one.

    >>> import tempfile
    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, SaveModelCallback
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, path=tempfile.mkdtemp())
    >>> cb = SaveModelCallback(monitor="valid_loss")
    >>> learn.fit(2, 1e-2, cbs=cb)
    >>> cb.best_epoch_, cb.saved_[-1].relative_to(learn.path).as_posix()   # the best model, loaded back at the end
    (1, 'models/model.pipekit')
    """

    order = 66
    param_constraints = {**TrackerCallback.param_constraints,
                         "fname": Is(lambda f: isinstance(f, str) and f != "" and os.sep not in f, "a plain file name"),
                         "every_epoch": Is(lambda v: isinstance(v, bool) or (isinstance(v, (int, np.integer))
                                                                             and bool(v >= 1)),
                                           "True, False or a number of epochs (1 or more)")}
    saved_: tuple[Path, ...] = ()  # learned: the checkpoints written (absolute paths, as learn.save returns)
    best_epoch_: int | None = None

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0, fname: str = "model", every_epoch: bool | int = False, at_end: bool = False,
                 with_opt: bool = False, reset_on_fit: bool = True):
        self.fname, self.every_epoch, self.at_end, self.with_opt = fname, every_epoch, at_end, with_opt
        super().__init__(monitor, comp, min_delta, reset_on_fit)

    def judges_epochs(self) -> bool:
        """Whether the model is saved when ``monitor`` improves (not every epoch, nor once at the end)."""
        return not (self.every_epoch or self.at_end)

    def before_fit(self) -> None:
        super().before_fit()
        if is_main_process():  # the one process that writes: a folder it cannot write stops the fit before epoch 0
            writable_folder(checkpoint_path(self.learn, self.fname).parent, "SaveModelCallback",
                            f"{LEARNER_FOLDER} (checkpoints go to learn.path / learn.model_dir), or learn.model_dir = "
                            "'<an absolute writable folder>'")

    def after_epoch(self) -> None:
        if self.every_epoch:
            if self.learn.epoch % int(self.every_epoch) == 0:  # True counts as 1: every epoch
                self._save(f"{self.fname}_{self.learn.epoch}")
            return
        super().after_epoch()
        if self.new_best and not self.at_end:
            self.best_epoch_ = self.learn.epoch
            self.tell(f"Better model found at epoch {self.learn.epoch} with {self.monitor} value: {self.best_:.6g}.")
            self._save(self.fname)

    def _save(self, name: str) -> None:
        # listed before writing: the checkpoint's copy of this callback's state already knows of itself,
        # so a fit resumed from it reloads the best model at the end
        self.saved_ = (*self.saved_, checkpoint_path(self.learn, name).absolute())  # as learn.save returns it
        self.learn.save(name, with_opt=self.with_opt)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.saved_ = tuple(Path(p) for p in self.saved_)

    def after_fit(self) -> None:
        if self.at_end:
            self.saved_ = (*self.saved_, self.learn.save(self.fname, with_opt=self.with_opt))
        elif self.every_epoch:
            return
        elif self.best_ is None and getattr(self, "_not_finite", None):
            epochs = ", ".join(map(str, self._not_finite))
            warn(f"SaveModelCallback: the monitored value {self.monitor} was not a finite number in any epoch of this "
                 f"fit (epoch(s) {epochs}), so no best model was saved and none is loaded back: the model keeps the "
                 "weights of its last epoch. Find where the NaN comes from (learn.validate() on the validation set, "
                 "its inputs and targets), or monitor another value (monitor='train_loss')")
        elif self.saved_:  # the best epoch's weights, and with with_opt=True its optimiser state, saved with them
            # the freezing this fit ended with stays the one later saves record and resumed fits apply: the best
            # epoch may have been trained frozen (fine_tune's first phase) while the model now trains whole
            opt = self.learn.opt
            keep = opt.resume_frozen_to if opt is not None else None
            self.learn.load(self.fname, with_opt=self.with_opt, restore_state=False)
            if self.learn.opt is not None:
                self.learn.opt.resume_frozen_to = keep


class EarlyStoppingCallback(TrackerCallback):
    """Stops training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (0 stops at the
    first epoch without improvement, as 1 does, as fastai takes it).

    It never stops in an epoch that set a new best. The stop takes effect once the epoch is over
    (``learn.request_stop``), so every callback, a ``SaveModelCallback`` among them, has seen that epoch
    whatever the order of the list the callbacks were given in.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import EarlyStoppingCallback, Learner
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> cb = EarlyStoppingCallback(monitor="valid_loss", min_delta=10, patience=1)   # no epoch improves by 10
    >>> learn.fit(5, 1e-2, cbs=cb)
    >>> cb.stopped_epoch_, len(learn.recorder.values)        # epoch 0 sets the best, epoch 1 stops the fit
    (1, 2)
    """

    order = 64
    param_constraints = {**TrackerCallback.param_constraints, "patience": _PATIENCE}

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0, patience: int = 1, reset_on_fit: bool = True):
        self.patience = patience
        super().__init__(monitor, comp, min_delta, reset_on_fit)

    def before_fit(self) -> None:
        super().before_fit()
        self.wait_ = 0
        self.stopped_epoch_: int | None = None

    def after_epoch(self) -> None:
        super().after_epoch()
        if not self.judged:  # nothing to judge (validation skipped, or a validation-only pass): does not count
            return
        self.wait_ = 0 if self.new_best else self.wait_ + 1
        if self.wait_ and self.wait_ >= self.patience:
            self.stopped_epoch_ = self.learn.epoch
            self.tell(f"No improvement since epoch {self.learn.epoch - self.wait_}: early stopping")
            self.learn.request_stop()


class ReduceLROnPlateau(TrackerCallback):
    """Divides the learning rate of every layer group by ``factor`` (never below ``min_lr``) when ``monitor``
    has not improved by ``min_delta`` for ``patience`` epochs, then waits ``patience`` epochs again.

    For ``learn.fit`` (a constant lr): a schedule such as ``fit_one_cycle`` sets the lr before every batch
    and would undo the reduction. Each reduction is printed (unless ``PIPEKIT_QUIET=1``) and kept in
    ``reductions_`` as ``(epoch, lrs)``; an epoch without a value to judge (validation skipped) does not count.
    It runs before ``SaveModelCallback``, so a checkpoint holds the epoch's reduction, and a fit resumed from
    it continues at the reduced rates.

    >>> from pipekit.learn import ReduceLROnPlateau
    >>> cb = ReduceLROnPlateau(monitor="valid_loss", patience=2, factor=10)   # learn.fit(20, 1e-3, cbs=cb)
    """

    order = 65  # after the Recorder and early stopping, before SaveModelCallback (66) writes a checkpoint
    param_constraints = {**TrackerCallback.param_constraints, "patience": _PATIENCE,
                         "factor": Interval(1, None, closed="neither"), "min_lr": Interval(0, None)}

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0, patience: int = 1, factor: float = 10.0, min_lr: float = 0.0,
                 reset_on_fit: bool = True):
        self.patience, self.factor, self.min_lr = patience, factor, min_lr
        super().__init__(monitor, comp, min_delta, reset_on_fit)

    def before_fit(self) -> None:
        super().before_fit()
        self.wait_ = 0
        self.reductions_: list[tuple[int, list[float]]] = []

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.reductions_:  # a resumed fit continues at the rates the checkpointed one had come down to
            self.learn.optimizer.set_hyper("lr", np.asarray(self.reductions_[-1][1], dtype=float))

    def after_epoch(self) -> None:
        super().after_epoch()
        if not self.judged:
            return
        self.wait_ = 0 if self.new_best else self.wait_ + 1
        if not self.wait_ or self.wait_ < self.patience:
            return
        waited, self.wait_ = self.wait_, 0
        opt = self.learn.optimizer
        old = np.asarray(opt.lrs, dtype=float)
        new = np.maximum(old / self.factor, self.min_lr)
        if (new < old).any():
            opt.set_hyper("lr", new)
            self.reductions_.append((self.learn.epoch, [float(v) for v in new]))
            shown = ", ".join(f"{v:.3g}" for v in new)
            self.tell(f"epoch {self.learn.epoch}: {self.monitor} has not improved for {waited} epoch(s); "
                      f"lr reduced to {shown}")


class GradientAccumulation(Callback):
    """Steps the optimiser once every ``n_acc`` training items rather than every batch, adding up the gradients
    of the batches in between: training with small batches (what fits in memory) behaves like training with
    batches of ``n_acc`` items. Each batch's loss is scaled by its share of ``n_acc`` before the backward
    pass, so the summed gradient is that of the mean loss over the items; the losses recorded are the
    batches' own. The last batch of an epoch steps on what has added up, as the mean over the items seen
    (fewer than ``n_acc``), so every epoch ends with nothing pending and a checkpoint resumes exactly.

    >>> from pipekit.learn import GradientAccumulation
    >>> cb = GradientAccumulation(n_acc=64)   # with bs=16: one step every 4 batches; learn.fit(1, cbs=cb)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 8  # before MixedPrecision (10) unscales and GradientClip (20) clips the gradients for a step
    param_constraints = {"n_acc": _COUNT}

    def __init__(self, n_acc: int = 32):
        self.n_acc = n_acc
        self.check_params()

    def before_fit(self) -> None:
        self.count_ = 0
        self.steps_ = 0
        self.learn.optimizer.zero_grad()

    def before_backward(self) -> None:
        if self.learn.loss_grad is not None:  # items counted as the Recorder counts them
            self.learn.loss_grad = self.learn.loss_grad * (batch_size(self.learn.xb) / self.n_acc)

    def before_step(self) -> None:
        learn = self.learn
        self.count_ += batch_size(learn.xb)
        last = learn.iter == learn.n_iter - 1
        if self.count_ < self.n_acc and not last:
            raise CancelBatchException  # neither step nor zero_grad: the gradients add up
        if self.count_ < self.n_acc:  # the epoch's last items: the mean over them, not a share of n_acc
            scale = self.n_acc / self.count_
            for p in learn.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)
        self.count_ = 0
        self.steps_ += 1

    def after_fit(self) -> None:
        self.learn.optimizer.zero_grad()

    def release(self) -> None:
        # a fit ended by an error or Ctrl-C between two steps: the gradients added up so far would otherwise be
        # added to the next fit's first step
        if self.learn.opt is not None:
            self.learn.opt.zero_grad()


class TimeLimit(Callback):
    """Fits training into ``seconds`` by shortening the schedule rather than cutting it off.

    The seconds count from ``before_fit``, once the optimizer is built (a process's first optimizer imports
    torch's compiler, a second or so the limit does not see: build it first, ``learn.optimizer``, to count it);
    each fit has its own (``fine_tune`` shares one limit between its two fits, given to it or held by the
    learner), and a checkpointed fit resumed with ``start_epoch`` starts a new one. From the ``probe``-th training batch on, or sooner when those take
    more than a twentieth of the limit (the first two, which pay one-off costs, are not timed), before every
    training batch it projects the batches left at the rate measured, plus a validation per epoch they reach (as
    long as the last one took; before one has run, a validation batch counts a third of a training batch), and
    when they would run past the limit it ends training after the batches that fit (the projection is made
    again at every batch, so an early estimate that was too slow or too fast is corrected). ``pct_train`` then
    runs to 1 over those batches, so a one-cycle schedule still warms up and anneals to its end; the last epoch
    may stop part-way, and is validated (one that would train no batch, its time gone by its first, is not run:
    the fit ends after the epoch before it). Should the time run out anyway (a batch far slower than measured),
    the fit stops before the next training batch, without validating.

    Fitted: ``planned_`` (training batches the fit was asked for), ``kept_`` (those the schedule was cut to,
    equal when the time sufficed), ``stopped_on_time_`` (whether the limit changed the fit), ``cut_off_`` (whether
    the time ran out before the schedule's end: the first batches of a very short limit, or a stall; a warning
    says so when the model is far from annealed, unless ``quiet``: a backend fitted under a time limit, such as
    ``TorchTabular``, reports ``stopped_on_time_`` instead, as every backend does). A fit the limit
    shortens depends on the machine's speed, so it is not reproducible batch for batch.

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner, TimeLimit
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> limit = TimeLimit(60)                    # as many of the epochs as one minute holds
    >>> learn.fit_one_cycle(2, 1e-2, cbs=limit)
    >>> limit.planned_, limit.kept_, limit.stopped_on_time_     # 2 epochs of 11 batches: done well within it
    (22, 22, False)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = -19  # right after TrainEvalCallback has counted the batch and set pct_train, before anything reads it
    param_constraints = {"seconds": POSITIVE, "probe": _COUNT, "quiet": Options(True, False)}
    #: the share of the time left the shortened schedule plans to use (the rate measured varies)
    SAFETY = 0.92
    #: training batches not timed at the start of the fit (one-off costs: the optimizer's first step, caches)
    WARM_UP = 2

    def __init__(self, seconds: float, probe: int = 20, quiet: bool = False):
        self.seconds, self.probe, self.quiet = seconds, probe, quiet
        self.check_params()

    def before_fit(self) -> None:
        learn = self.learn
        self._end = time.perf_counter() + self.seconds
        self._first, self._over = learn.train_iter, False
        self._ref: tuple[float, int] | None = None  # (time, train_iter) the rate is measured from
        self._valid_s: float | None = None  # what the last validation took
        self._valid_sum, self._valid_start = 0.0, 0.0  # validations since the rate's reference point
        self.planned_ = self.kept_ = learn.total_iters - learn.train_iter
        self.stopped_on_time_ = self.cut_off_ = False

    def before_batch(self) -> None:
        learn = self.learn
        if not learn.training:
            return
        now = time.perf_counter()
        if now >= self._end:  # a batch ran far over the rate measured: stop without another batch or validation
            self.stopped_on_time_ = self.cut_off_ = True
            self.kept_ = learn.train_iter - self._first
            if not self.quiet and learn.total_iters - learn.train_iter > max(2, 0.1 * self.kept_):  # far from its end
                warn(f"TimeLimit({self.seconds:.3g}): the time ran out after {self.kept_} of {self.planned_} "
                     "training batches, before the schedule could be fitted to it (the first batches, or a "
                     "stall, took it all): the model is barely trained at a high learning rate; raise the "
                     "limit")
            raise CancelFitException()
        if self._over:  # the shortened schedule is done: validate this epoch and stop
            self._end_training()
        done = learn.train_iter - self._first
        if self._ref is None:
            if done >= self.WARM_UP:
                self._ref = (now, learn.train_iter)
        elif (measured := learn.train_iter - self._ref[1]) >= self.probe or (
                measured and now - self._ref[0] - self._valid_sum >= self.seconds / 20):
            self._fit_schedule(now, (now - self._ref[0] - self._valid_sum) / measured)
        # the stop is decided on the newest projection, so an early estimate that was too slow never ends the fit
        if self._schedule_done():
            self._end_training()

    def _end_training(self) -> None:
        """End the shortened schedule at the batch about to run: this epoch's training, which is then validated,
        or, before the epoch has trained a batch, the fit. The last epoch is validated already, and this one would
        add a row of no training loss and a validation the schedule left no time for (the epoch's first batch
        often comes later than projected: the loader starting, another process taking the CPU)."""
        if self.learn.iter == 0:
            raise CancelFitException()
        raise CancelTrainException()

    def _schedule_done(self) -> bool:
        learn = self.learn
        if self.kept_ < self.planned_ and learn.train_iter >= learn.total_iters:
            self._over = True
            learn.request_stop()
        return self._over

    def state_dict(self) -> dict[str, Any]:
        return {}  # a limit belongs to one fit: a resumed fit counts its own time and batches

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def after_train(self) -> None:
        self._valid_start = time.perf_counter()

    def after_epoch(self) -> None:
        now = time.perf_counter()
        self._valid_s = now - self._valid_start
        if self._ref is None or self._over:
            return
        self._valid_sum += self._valid_s  # validations are not training time
        measured = self.learn.train_iter - self._ref[1]
        if measured:  # projected again with this epoch's validation, then ended here if its batches are done
            self._fit_schedule(now, (now - self._ref[0] - self._valid_sum) / measured)
            self._schedule_done()

    def _fit_schedule(self, now: float, per_batch: float) -> None:
        learn = self.learn
        n_train = max(1, len(learn.dls.train))
        valid = self._valid_s
        if valid is None:
            valid = per_batch * (len(learn.dls.valid) if learn.dls.valid is not None else 0) / 3.0
        left = (self._end - now) * self.SAFETY - 2 * per_batch  # a margin for batches slower than the rate
        pos = learn.train_iter % n_train  # batches into this epoch

        def cost(b: int) -> float:  # b more training batches and the validations of the epochs they reach
            return b * per_batch + -(-(pos + b) // n_train) * valid

        b = self.planned_ - (learn.train_iter - self._first)  # all the batches asked for, if they fit
        if cost(b) > left:  # else the most that fit (the cost grows with b): a binary search
            lo, hi = 0, b  # 0: not one more batch fits, the schedule ends here
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if cost(mid) <= left else (lo, mid - 1)
            b = lo
        if learn.train_iter + b != learn.total_iters:
            learn.total_iters = learn.train_iter + b
            learn.pct_train = learn.train_iter / max(learn.total_iters, 1)
            self.kept_ = learn.total_iters - self._first
            self.stopped_on_time_ = self.kept_ < self.planned_


class GradientClip(Callback):
    """Clips the global gradient norm to ``max_norm`` before each optimiser step.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Callback, GradientClip, Learner
    >>> class GradNorm(Callback):
    ...     order = 21   # after GradientClip (20): the gradients the optimiser steps on
    ...     def before_step(self): self.norm = float(torch.cat([p.grad.flatten() for p in self.model.parameters()]).norm())
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> clip, seen = GradientClip(max_norm=0.01), GradNorm()
    >>> learn.fit(1, 1e-2, cbs=[clip, seen])
    >>> float(clip.last_norm) > 0.01, round(seen.norm, 4)        # the norm before clipping, and after
    (True, 0.01)
    """

    order = 20  # after MixedPrecision has unscaled the gradients
    param_constraints = {"max_norm": POSITIVE, "norm_type": POSITIVE}

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0):
        self.max_norm, self.norm_type = max_norm, norm_type
        self.check_params()

    def before_step(self) -> None:
        #: the norm before clipping, of the last step
        self.last_norm = nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.max_norm, self.norm_type)


class BnFreeze(Callback):
    """Keeps the running statistics of pretrained batch-norm layers as they are: each training epoch, a
    batch-norm layer whose weights do not train (a frozen group under ``train_bn=False``) is put in eval mode,
    so it normalises with its stored (e.g. ImageNet) statistics instead of following the training batches.

    ``body=True`` does the same for every batch-norm layer outside the last layer group (the pretrained body of
    a ``vision_learner``), also once its weights train: the new head's batch-norm layers still learn their
    statistics, the body keeps the ones its weights were trained with while the weights adapt.

    With a pretrained body and ``train_bn=False``, the frozen phase of ``fine_tune`` then trains the head on
    exactly the features the body computes at inference, and the augmented training photos do not pull the
    statistics away from those of clean ones; with ``body=True`` the unfrozen phase starts from the same
    features instead of switching the body to batch statistics. Batch-norm layers without weights
    (``affine=False``) are left in train mode.

    >>> from pipekit.learn import BnFreeze
    >>> cbs = [BnFreeze(body=True)]   # vision_learner(dls, "efficientnet_lite0", pretrained=True, train_bn=False, cbs=cbs)
    """

    order = -15  # after TrainEvalCallback has put the whole model in train mode
    param_constraints = {"body": BOOL}

    def __init__(self, body: bool = False):
        self.body = body
        self.check_params()

    def before_train(self) -> None:
        body: set[int] = set()
        if self.body:
            body = {id(p) for group in self.learn.optimizer.layer_groups[:-1] for p in group}
        for module in self.learn.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None \
                    and (not module.weight.requires_grad or id(module.weight) in body):
                module.eval()


def cpu_bf16_is_fast() -> bool:
    """Whether this machine's CPU computes bfloat16 in hardware (AMX or AVX512-BF16, as Linux reports its
    flags): only there does ``learn.to_bf16()`` train faster on the CPU than float32. Elsewhere (no such
    flags, or no ``/proc/cpuinfo``) False.

    >>> isinstance(cpu_bf16_is_fast(), bool)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class MixedPrecision(Callback):
    """Autocast forward pass and loss; a GradScaler for fp16.

    ``dtype``: 'bf16', 'fp16' or None (bf16 where CUDA supports it, else fp16). On the CPU it does
    nothing unless ``cpu=True`` (then bf16 autocast; fp16 is not offered on the CPU), and says so once.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, MixedPrecision
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> mp = MixedPrecision(cpu=True)
    >>> learn.fit(1, 1e-2, cbs=mp)
    >>> mp.device_type, mp.scaler is None         # bf16 autocast on the CPU, which needs no GradScaler
    ('cpu', True)
    >>> learn.fit(1, 1e-2, cbs=MixedPrecision(dtype="fp16", cpu=True))
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: MixedPrecision: fp16 autocast is not available on the CPU; use dtype='bf16'...
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    unique = True  # one per learner: another replaces it

    order = 10
    param_constraints = {"dtype": Options(None, "bf16", "fp16")}
    active = False  # while a fit runs with autocast
    scaler: torch.amp.GradScaler | None = None

    def __init__(self, dtype: str | None = None, cpu: bool = False):
        self.dtype, self.cpu = dtype, cpu
        self.check_params()

    def before_fit(self) -> None:
        dev = self.learn.device.type
        self.device_type, self.active, self.scaler = dev, False, None
        if dev == "cuda":
            name = self.dtype or ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
        elif dev == "cpu" and self.cpu:
            if self.dtype == "fp16":
                raise ParameterError("MixedPrecision: fp16 autocast is not available on the CPU; use dtype='bf16'")
            name = "bf16"
        else:
            if not self.__dict__.get("_said_inactive"):  # once per callback, not at every fit
                self._said_inactive = True
                hint = ("pass MixedPrecision(cpu=True) or use learn.to_bf16() for bf16 mixed precision on a CPU"
                        if dev == "cpu" else "it autocasts on CUDA, and on a CPU with cpu=True")
                warn(f"MixedPrecision does nothing on {dev}: training stays in fp32; {hint}")
            return
        self.active = True
        self._dtype = torch.bfloat16 if name == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler(dev) if self._dtype is torch.float16 else None
        self.learn.optimizer.scaler = self.scaler

    def before_batch(self) -> None:
        if self.active:
            self._ctx: torch.autocast | None = torch.autocast(self.device_type, dtype=self._dtype)
            self._ctx.__enter__()

    def after_loss(self) -> None:
        ctx = self.__dict__.get("_ctx")
        if self.active and ctx is not None:
            ctx.__exit__(None, None, None)
            self._ctx = None
            # metrics and predictions in full precision
            if isinstance(self.learn.pred, torch.Tensor) and self.learn.pred.is_floating_point():
                self.learn.pred = self.learn.pred.float()

    after_cancel_batch = after_loss

    def release(self) -> None:
        ctx = self.__dict__.get("_ctx")
        if ctx is not None:  # autocast entered for a batch that never reached its loss
            ctx.__exit__(None, None, None)
            self._ctx = None
        self.after_fit()

    def before_backward(self) -> None:
        if self.scaler is not None and self.learn.loss_grad is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def before_step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.learn.optimizer.opt)

    def after_fit(self) -> None:
        if self.learn.opt is not None:
            self.learn.opt.scaler = None
        self.active = False

    def state_dict(self) -> dict[str, Any]:
        # fp16's loss scale and its growth counter: a resumed fit starts from the same scale
        return {"scaler_": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler_"):
            self.scaler.load_state_dict(state["scaler_"])


class ActivationStats(HookCallback):
    """Per-layer mean, std and share of near-zero activations, per training batch (every ``every``-th).

    ``modules`` default: every leaf module with parameters (conv, linear, norm layers: their outputs, before
    any activation that follows). "Near zero" is the share of activations at or below ``near_zero``, as fastai
    and the book count it: after a ReLU those would be the dead ones. After ``fit``: ``stats_[name]`` is an
    array ``[n_batches, 3]`` (mean, std, near_zero) and ``plot_layer_stats`` draws them; with
    ``with_hist=True``, ``hist_[name]`` holds each batch's histogram of the activations (40 bins over 0..10),
    drawn by ``color_dim`` (the book's "colorful dimension") and ``dead_chart``.

    fastai's names read the same numbers: ``stats`` is one entry per recorded batch, each a list with one dict per
    hooked layer (``{'mean', 'std', 'near_zero'}``, and ``'hist'``, a tensor of the 40 counts, with
    ``with_hist=True``), so ``stats[-1][0]['mean']`` is the first layer's mean in the last batch; ``modules`` is
    the list of hooked modules once a fit has started (before, the ``modules`` given).

    >>> from pipekit.learn import ActivationStats
    >>> cb = ActivationStats(with_hist=True)   # learn.fit_one_cycle(1, 0.06, cbs=cb); cb.color_dim(-2)

    Example (a fit of a small net, then fastai's layout):
        >>> import torch, torch.nn.functional as F
        >>> from torch import nn
        >>> from pipekit.learn import Learner
        >>> from pipekit.data import DataLoaders
        >>> from pipekit.data import set_seed
        >>> set_seed(0)
        >>> xs, ys = torch.randn(64, 4), torch.randint(0, 2, (64,))
        >>> ds = list(zip(xs, ys))
        >>> dls = DataLoaders.from_dsets(ds, ds, bs=16, device="cpu")
        >>> learn = Learner(dls, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), loss_func=F.cross_entropy,
        ...                 cbs=ActivationStats(with_hist=True))
        >>> learn.fit(1)
        >>> st = learn.activation_stats
        >>> len(st.stats), len(st.stats[0]), list(st.stats[0][0]), tuple(st.stats[0][0]['hist'].shape)
        (4, 2, ['mean', 'std', 'near_zero', 'hist'], (40,))
        >>> st.modules == [learn.model[0], learn.model[2]], st.stats[-1][1]['mean'] == float(st.stats_['2'][-1, 0])
        (True, True)
    """

    order = -7  # just after HookCallback's -8, a distinct place in the run-order table
    param_constraints = {**HookCallback.param_constraints, "every": _COUNT, "near_zero": Interval(0, None)}
    #: the ``modules`` parameter is kept as ``modules_arg``: ``modules`` is the property a reader uses (fastai's)
    param_attrs = {**HookCallback.param_attrs, "modules": "modules_arg"}

    def __init__(self, modules: Sequence[nn.Module] | None = None, near_zero: float = 0.05, every: int = 1,
                 with_hist: bool = False):
        self.near_zero, self.with_hist = near_zero, with_hist
        super().__init__(modules=modules, every=every)

    @property
    def modules(self) -> list[nn.Module] | Sequence[nn.Module] | None:
        """The hooked modules once a fit has started (fastai's ``learn.activation_stats.modules``: the layers of
        ``stats``, in order), before it the ``modules`` given (None: every leaf module with parameters)."""
        hooked = self.__dict__.get("_hooked")
        return hooked if hooked is not None else self.modules_arg

    @modules.setter
    def modules(self, value: Sequence[nn.Module] | None) -> None:
        self.modules_arg = value

    def before_fit(self) -> None:
        self._hooked: list[nn.Module] | None = None  # the modules given (not the last fit's) choose what is hooked
        names = {m: n for n, m in self.learn.model.named_modules()}
        mods = self.hooked_modules()
        self._hooked = mods
        self._names = [names.get(m, type(m).__name__) for m in mods]
        self._name_of = {id(m): n for m, n in zip(mods, self._names)}
        self._buf: dict[str, list[torch.Tensor]] = {n: [] for n in self._names}
        self._hist: dict[str, list[torch.Tensor]] = {n: [] for n in self._names}
        self._batch_of: dict[str, list[int]] = {n: [] for n in self._names}  # the recorded batch of each record
        self._batches = 0
        super().before_fit()

    def hook(self, module: nn.Module, inp: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        o = out.float()
        name = self._name_of[id(module)]
        # kept on the device as small tensors: no host sync per batch
        self._buf[name].append(torch.stack([o.mean(), o.std(), (o <= self.near_zero).float().mean()]))
        self._batch_of[name].append(self._batches)
        if self.with_hist:
            self._hist[name].append(torch.histc(o, 40, 0, 10))

    def after_batch(self) -> None:
        if self._on:  # a recorded batch ends: the next records belong to the next one
            self._batches += 1
        super().after_batch()

    def after_fit(self) -> None:
        super().after_fit()
        self.stats_ = {n: torch.stack(v).cpu().numpy() if v else np.zeros((0, 3)) for n, v in self._buf.items()}
        if self.with_hist:
            self.hist_ = {n: torch.stack(v).cpu().numpy() if v else np.zeros((0, 40)) for n, v in self._hist.items()}
        # which batch each row of stats_ is from, kept with stats_ (a later fit that fails leaves both as they are)
        self._layout = (list(self._names), {n: np.asarray(v, dtype=np.int64) for n, v in self._batch_of.items()},
                        self._batches)
        self._stats: L[L[dict[str, Any] | None]] | None = None

    @property
    def stats(self) -> L[L[dict[str, Any] | None]]:
        """fastai's layout of ``stats_`` (and ``hist_``): one entry per recorded batch, each a list with one dict
        per hooked layer (in the order of ``modules``) holding its ``'mean'``, ``'std'`` and ``'near_zero'``
        (floats) and, with ``with_hist=True``, ``'hist'`` (a float tensor of the 40 counts over 0..10). A layer
        that did not run in a batch has None there; one that ran more than once, the last run's numbers (what
        fastai's hook keeps). Built once per fit, from the same arrays ``layer_stats`` and ``hist`` read.

        ``stats[-1][0]['mean']`` is the first layer's mean activation in the last recorded batch."""
        self.check_is_fitted("fit")
        built = self.__dict__.get("_stats")
        if built is not None:
            return built
        layout = self.__dict__.get("_layout")
        if layout is None:  # stats_ set otherwise than by a fit: row i of each layer is batch i
            layout = (list(self.stats_), {n: np.arange(len(v)) for n, v in self.stats_.items()}, 0)
        names, at, counted = layout
        hists = self.__dict__.get("hist_") if self.with_hist else None
        n_batches = max(counted, *(int(a.max()) + 1 for a in at.values() if len(a)), 0)
        rows: list[list[dict[str, Any] | None]] = [[None] * len(names) for _ in range(n_batches)]
        for j, n in enumerate(names):
            s = self.stats_[n]
            h = None if hists is None else torch.from_numpy(np.ascontiguousarray(hists[n], dtype=np.float32))
            for r, b in enumerate(at[n].tolist()):  # in record order: a later run in the batch replaces the first
                d: dict[str, Any] = {"mean": float(s[r, 0]), "std": float(s[r, 1]), "near_zero": float(s[r, 2])}
                if h is not None:
                    d["hist"] = h[r]
                rows[b][j] = d
        self._stats = L(L(row) for row in rows)
        return self._stats

    def _key(self, name: str | int, what: str = "stats_") -> str:
        self.check_is_fitted("fit")
        if what == "hist_" and not self.with_hist:
            raise ParameterError("ActivationStats: no histograms were recorded; build it with with_hist=True")
        if isinstance(name, int):
            if not -len(self._names) <= name < len(self._names):
                raise ParameterError(f"ActivationStats: layer index {name} is out of range; {len(self._names)} "
                                     f"layers were recorded: {self._names}")
            return self._names[name]
        if name not in self.stats_:
            raise ParameterError(f"ActivationStats: no layer {name!r}; recorded: {list(self.stats_)}")
        return name

    def layer_stats(self, name: str | int) -> np.ndarray:
        """One layer's ``(3, batches)`` rows of mean, std and near-zero share (fastai's ``layer_stats(idx)``)."""
        return self.stats_[self._key(name)].T

    def hist(self, name: str | int) -> np.ndarray:
        """One layer's histograms as ``(bins, batches)``, ``log1p`` of the counts, as ``color_dim`` draws them
        (fastai's ``hist(idx)``; ``with_hist=True``)."""
        return np.log1p(self.hist_[self._key(name, "hist_")]).T

    def plot_layer_stats(self, name: str | int, path: str | os.PathLike | None = None,
                         figsize: tuple[float, float] = (10, 3)) -> Path | None:
        """Mean, std and near-zero share of one layer over the recorded batches (PNG when headless)."""
        key = self._key(name)
        fig, axs = get_pyplot().subplots(1, 3, figsize=figsize)
        for ax, i, title in zip(axs, range(3), ("mean", "std", "near zero")):
            ax.plot(self.stats_[key][:, i])
            ax.set_title(f"{key}: {title}")
        return savefig_or_show(fig, path, name=f"activation_stats_{key}")

    def color_dim(self, name: str | int, path: str | os.PathLike | None = None,
                  figsize: tuple[float, float] = (8, 3)) -> Path | None:
        """The histogram of one layer's activations per batch as an image (batches left to right, activation
        0..10 bottom to top, log of the count as colour): smooth growth is healthy training, a collapse to the
        bottom row followed by a rise is the book's sign of a bad start (``with_hist=True``)."""
        key = self._key(name, "hist_")
        fig, ax = get_pyplot().subplots(figsize=figsize)
        ax.imshow(self.hist(key), origin="lower", aspect="auto", extent=(0, len(self.hist_[key]), 0, 10))
        ax.set_xlabel("batch")
        ax.set_ylabel("activation")
        ax.set_title(key)
        return savefig_or_show(fig, path, name=f"color_dim_{key}")

    def dead_chart(self, name: str | int, path: str | os.PathLike | None = None,
                   figsize: tuple[float, float] = (6, 3)) -> Path | None:
        """The share of one layer's activations in the two lowest histogram bins (0..0.5) per batch
        (``with_hist=True``)."""
        key = self._key(name, "hist_")
        h = self.hist_[key]
        fig, ax = get_pyplot().subplots(figsize=figsize)
        ax.plot(h[:, :2].sum(1) / np.maximum(h.sum(1), 1))
        ax.set_ylim(0, 1)
        ax.set_xlabel("batch")
        ax.set_title(f"{key}: share near zero")
        return savefig_or_show(fig, path, name=f"dead_chart_{key}")


class ParamScheduler(Callback):
    """Sets hyper-parameters from schedules ``{name: fn(pos)}`` (``pos``: progress in [0, 1]) before each
    training batch, so a fit resumed at ``start_epoch`` continues the schedule where it stopped.

    ``hps``: each scheduled value per training batch (the last layer group's, as fastai records them), handed to
    ``learn.recorder.hps`` when the fit ends, which ``recorder.plot_sched()`` draws.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, ParamScheduler
    >>> from pipekit.learn import SchedLin
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> sched = ParamScheduler({"lr": SchedLin(1e-2, 1e-3)})      # lr from 1e-2 down towards 1e-3
    >>> learn.fit(2, cbs=sched)
    >>> [round(lr, 5) for lr in sched.hps["lr"]]                   # 2 epochs of 2 batches
    [0.01, 0.00775, 0.0055, 0.00325]
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 62  # after the ProgressCallback (60), before the trackers (63-66)
    run_valid = False

    def __init__(self, scheds: dict[str, Callable[[float], Any]]):
        self.scheds = scheds

    def before_fit(self) -> None:
        self.hps: dict[str, list[float]] = {name: [] for name in self.scheds}

    def before_batch(self) -> None:
        pos = self.learn.pct_train
        for name, f in self.scheds.items():
            value = f(pos)
            self.learn.optimizer.set_hyper(name, value)
            self.hps[name].append(float(np.atleast_1d(value)[-1]))

    def after_fit(self) -> None:
        recorder = getattr(self.learn, "recorder", None)
        if recorder is not None:
            recorder.scheduled_hps = self.hps


class LRFinder(Callback):
    """Grows the lr exponentially from ``start_lr`` towards ``end_lr`` over ``num_it`` batches, recording the loss:
    batch ``i`` (from 0) trains at ``start_lr * (end_lr / start_lr) ** (i / num_it)``, fastai's rates (the last a step
    short of ``end_lr``).
    ``stop_div`` stops the sweep once the smoothed loss is not finite, or, after the first ``num_it // 10``
    batches, above 4 times its lowest since then.

    A user runs it through ``learn.lr_find``, which restores the model, optimiser and history afterwards and keeps
    the sweep's lrs and losses on the Recorder:

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import set_seed, DataLoaders
    >>> from pipekit.learn import Learner
    >>> set_seed(0)
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> w = learn.model.weight.clone()
    >>> learn.lr_find(start_lr=1e-5, end_lr=1, num_it=5, stop_div=False, show_plot=False)
    SuggestedLRs(valley=1e-05, steep=1e-05, minimum=1e-05)
    >>> [f"{lr:.0e}" for lr in learn.recorder.lr_find_lrs], len(learn.recorder.lr_find_losses)
    (['1e-05', '1e-04', '1e-03', '1e-02', '1e-01'], 5)
    >>> torch.equal(learn.model.weight, w), len(learn.recorder.values)  # the model is restored, untrained
    (True, 0)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 55
    run_valid = False
    param_constraints = {"start_lr": POSITIVE, "num_it": Interval(5, None, integer=True),
                         "beta": Interval(0, 1, closed="left")}

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
                 beta: float = 0.98):
        self.start_lr, self.end_lr, self.num_it, self.stop_div, self.beta = start_lr, end_lr, num_it, stop_div, beta
        self.check_params()
        check("lr_find", end_lr=(end_lr, Interval(start_lr, None, closed="neither")))

    def before_fit(self) -> None:
        self.lrs_: list[float] = []
        self.losses_: list[float] = []
        self._i, self._best, self._avg = 0, math.inf, 0.0

    def before_batch(self) -> None:
        self._lr = self.start_lr * (self.end_lr / self.start_lr) ** (self._i / self.num_it)
        self.learn.optimizer.set_hyper("lr", self._lr)

    def after_batch(self) -> None:
        if self.learn.loss is None:
            return
        self._i += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * float(self.learn.loss)
        smooth = self._avg / (1 - self.beta ** self._i)
        self.lrs_.append(self._lr)
        self.losses_.append(smooth)
        # the first num_it // 10 batches (which the suggestions leave out) neither set the best loss nor stop the
        # sweep: the smoothed loss of so few batches is noise, and a trained model's (0.017, 0.141, 0.143, ...)
        # rose past 4x its first batch's without diverging
        warm = self._i > self.num_it // 10
        if warm:
            self._best = min(self._best, smooth)
        diverged = not math.isfinite(smooth) or (warm and smooth > 4 * self._best)
        if self._i >= self.num_it or (self.stop_div and diverged):
            raise CancelFitException()

    def before_validate(self) -> None:
        if not self.learn.validation_only:
            raise CancelValidException()
