"""The Learner: one training loop with callbacks for every torch model pipekit trains.

>>> import numpy as np, torch
>>> from pipekit.data import DataLoaders, TensorStore
>>> from pipekit.learn import CrossEntropyLossFlat, Learner, MLP, accuracy
>>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
>>> dls = DataLoaders.from_stores([TensorStore(x[:48]), TensorStore(y[:48])], [TensorStore(x[48:]), TensorStore(y[48:])],
...                               bs=16, seed=0, device="cpu")
>>> learn = Learner(dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
>>> learn.fit(1, 1e-2)
>>> len(learn.recorder.values)
1
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipekit.learn.callbacks import (
    EVENTS, Callback, CancelBackwardException, CancelBatchException, CancelEpochException, CancelFitException,
    CancelStepException, CancelTrainException, CancelValidException,
)
from pipekit.learn.losses import loss_from_kind
from pipekit.learn.metrics import Metric, as_metric
from pipekit.learn.nonfinite import TerminateOnNaNCallback
from pipekit.learn.optim import Adam, OptimWrapper
from pipekit.learn.recorder import ProgressCallback, Recorder, TrainEvalCallback

__all__ = ["Learner"]

_EXC = {"fit": CancelFitException, "epoch": CancelEpochException, "train": CancelTrainException,
        "validate": CancelValidException, "batch": CancelBatchException, "backward": CancelBackwardException,
        "step": CancelStepException}

# event names per stage, built once: the loop runs them for every batch
_STAGE = {k: (f"before_{k}", f"after_cancel_{k}", f"after_{k}", e) for k, e in _EXC.items()}
_INNER = frozenset({"before_batch", "after_pred", "after_loss", "before_backward", "after_backward", "before_step",
                    "after_step", "after_cancel_batch", "after_batch"})


def _check_lr(lr: Any, name: str = "lr") -> None:
    if isinstance(lr, slice):
        vals = [v for v in (lr.start, lr.stop) if v is not None]
    else:
        vals = list(np.atleast_1d(np.asarray(lr, dtype=float))) if lr is not None else []
    for v in vals:
        if not (isinstance(v, (int, float, np.floating)) and np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, a slice of them, or a list; got {lr!r}")


class Learner:
    """Trains ``model`` on ``dls`` with ``loss_func``, an optimiser built by ``opt_func`` and callbacks.

    Parameters
    ----------
    dls: DataLoaders with ``.train`` and ``.valid`` (and ``.y_block`` to pick the default loss).
    model: any ``nn.Module`` taking the ``n_inp`` input tensors of a batch.
    loss_func: defaults from ``dls.y_block.loss_kind``: CrossEntropyLossFlat, BCEWithLogitsLossFlat or MSELossFlat.
    opt_func: ``opt_func(param_groups, lr) -> torch.optim.Optimizer`` (``Adam`` = AdamW, ``SGD``, ``RMSProp``).
    lr: default learning rate for ``fit``.  splitter: ``model -> list of parameter lists`` (layer groups;
    the last is the head) used by ``freeze``/``freeze_to`` and ``slice`` learning rates.
    metrics: functions ``fn(pred, targ)`` or ``Metric`` objects, computed over the whole validation set.
    wd: weight decay (None: the optimiser's default).  cbs: extra callbacks.
    terminate_on_nan: stop ``fit`` with ``NonFiniteError`` at the first NaN/inf loss or weights, the last
    finite weights put back (``TerminateOnNaNCallback``); False trains on (the Recorder only warns).
    """

    def __init__(self, dls: Any, model: nn.Module, loss_func: Callable | None = None,
                 opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float | slice = 1e-3,
                 splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
                 cbs: Callback | Sequence[Callback] | None = None, metrics: Any = None,
                 path: str | os.PathLike | None = None, model_dir: str = "models", wd: float | None = None,
                 wd_bn_bias: bool = False, train_bn: bool = True, moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
                 device: str | torch.device | None = None, terminate_on_nan: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Learner: model must be a torch nn.Module, got {type(model).__name__}")
        # look on the class too: DataLoaders rebuilt by load_learner hold no loaders, and reading .train raises
        if dls is None or not any(hasattr(type(dls), a) or a in getattr(dls, "__dict__", {}) for a in ("train", "test_dl")):
            raise TypeError("Learner: dls must be DataLoaders with .train and .valid "
                            f"(got {type(dls).__name__}); build them with DataBlock.dataloaders(...)")
        _check_lr(lr)
        if wd is not None and (not np.isfinite(wd) or wd < 0):
            raise ValueError(f"Learner: wd must be a non-negative number or None, got {wd!r}")
        if len(moms) != 3:
            raise ValueError(f"Learner: moms must be 3 values (start, middle, end), got {moms!r}")
        self.dls, self.model = dls, model
        self.opt_func, self.lr, self.splitter, self.wd = opt_func, lr, splitter, wd
        self.wd_bn_bias, self.train_bn, self.moms = wd_bn_bias, train_bn, tuple(moms)
        self.path = Path(path) if path is not None else Path(getattr(dls, "path", None) or ".")
        self.model_dir = model_dir
        self.device = torch.device(device) if device is not None else self._dls_device()
        self.model.to(self.device)
        if loss_func is None:
            y_block = getattr(dls, "y_block", None)
            kind = getattr(y_block, "loss_kind", None)
            if kind is None:
                raise ValueError("Learner: loss_func was not given and the target block has no loss_kind "
                                 "('cross_entropy', 'bce' or 'mse'); pass loss_func=, e.g. CrossEntropyLossFlat()")
            loss_func = loss_from_kind(kind)
        if not callable(loss_func):
            raise TypeError(f"Learner: loss_func must be callable(pred, target), got {type(loss_func).__name__}")
        self.loss_func = loss_func
        if isinstance(loss_func, nn.Module):
            loss_func.to(self.device)
        if metrics is None:
            metrics = []
        elif not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        self.metrics: list[Metric] = [as_metric(m) for m in metrics]
        self.opt: OptimWrapper | None = None
        self.cbs: list[Callback] = []
        self._events: dict[str, list[tuple[Callable[[], None], bool, bool]]] = {}
        self.training = False
        self.epoch, self.n_epoch, self.start_epoch, self.iter, self.n_iter = 0, 1, 0, 0, 0
        self.train_iter, self.pct_train = 0, 0.0
        self.xb: tuple = ()
        self.yb: tuple = ()
        self.pred: Any = None
        self.loss: torch.Tensor | None = None
        self.loss_grad: torch.Tensor | None = None
        self.batch_wrapper: Callable[[Any], Any] | None = None
        self.resume_epoch = 0
        self._epoch_done = False
        self.stop_requested = False
        # callback states read from a checkpoint, handed back when the resumed fit starts (see load)
        self._resume_cb_states: dict[str, dict[str, Any]] = {}
        self.add_cbs([TrainEvalCallback(), Recorder(), ProgressCallback()]
                     + ([TerminateOnNaNCallback()] if terminate_on_nan else []))
        if cbs is not None:
            self.add_cbs(cbs if isinstance(cbs, (list, tuple)) else [cbs])

    def _dls_device(self) -> torch.device:
        dev = getattr(self.dls, "device", None)
        return torch.device(dev) if dev is not None else torch.device("cpu")

    # ------------------------------------------------------------------ callbacks
    def _rebuild_events(self) -> None:
        cbs = sorted(self.cbs, key=lambda c: c.order)
        # run_train/run_valid only filter the per-batch events; fit/epoch/phase events always run
        self._events = {e: [(getattr(cb, e), cb.run_train or e not in _INNER, cb.run_valid or e not in _INNER)
                            for cb in cbs if callable(getattr(cb, e, None))] for e in EVENTS}

    def add_cb(self, cb: Callback | type) -> Learner:
        """Add a callback (an instance, or a class to instantiate); reachable as ``learn.<cb.name>``."""
        if isinstance(cb, type):
            cb = cb()
        if not isinstance(cb, Callback):
            raise TypeError(f"add_cb: expected a Callback, got {type(cb).__name__}")
        old = getattr(self, cb.name, None)
        if isinstance(old, Callback) and old in self.cbs:
            self.remove_cb(old)
        cb.learn = self
        setattr(self, cb.name, cb)
        self.cbs.append(cb)
        self._rebuild_events()
        return self

    def add_cbs(self, cbs: Sequence[Callback | type]) -> Learner:
        for cb in cbs:
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> Learner:
        """Remove a callback instance (or every callback of a class)."""
        targets = [c for c in self.cbs if (c is cb or (isinstance(cb, type) and isinstance(c, cb)))]
        for c in targets:
            self.cbs.remove(c)
            if getattr(self, c.name, None) is c:
                delattr(self, c.name)
        self._rebuild_events()
        return self

    def remove_cbs(self, cbs: Sequence[Callback | type]) -> Learner:
        for cb in cbs:
            self.remove_cb(cb)
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Sequence[Callback] | Callback | None) -> Iterator[Learner]:
        """Callbacks present only inside the ``with`` block."""
        cbs = [] if cbs is None else list(cbs) if isinstance(cbs, (list, tuple)) else [cbs]
        self.add_cbs(cbs)
        try:
            yield self
        finally:
            self.remove_cbs(cbs)

    @contextlib.contextmanager
    def removed_cbs(self, cbs: Sequence[Callback]) -> Iterator[Learner]:
        """Callbacks switched off inside the ``with`` block (e.g. the Recorder while predicting)."""
        cbs = [c for c in cbs if c in self.cbs]
        for c in cbs:
            self.cbs.remove(c)
        self._rebuild_events()
        try:
            yield self
        finally:
            self.cbs.extend(cbs)
            self._rebuild_events()

    def __call__(self, event: str) -> None:
        training = self.training
        for fn, run_train, run_valid in self._events.get(event, ()):
            if run_train if training else run_valid:
                fn()

    def _with_events(self, f: Callable[[], None], name: str) -> None:
        before, cancel, after, exc = _STAGE[name]
        error = None
        try:
            self(before)
            f()
        except exc as e:
            self(cancel)
            error = getattr(e, "error", None)
        self(after)
        if error is not None:  # a callback stopped the fit for a reason the caller must see
            raise error

    def request_stop(self) -> None:
        """Stop the fit once the current epoch is over (every callback still sees its ``after_epoch``).

        Early stopping uses this rather than raising in the middle of ``after_epoch``, so a callback that
        runs later in that event (a checkpoint of the epoch's model) is never skipped."""
        self.stop_requested = True

    # ------------------------------------------------------------------ optimiser and groups
    def create_opt(self) -> None:
        """Build the optimiser over the splitter's layer groups (called by ``fit`` when needed)."""
        self.opt = OptimWrapper(self.model, self.opt_func, lr=float(np.max(np.atleast_1d(
            self.lr.stop if isinstance(self.lr, slice) else self.lr))), splitter=self.splitter,
            wd_bn_bias=self.wd_bn_bias, train_bn=self.train_bn)
        if self.wd is not None:
            self.opt.set_hyper("wd", self.wd)
        self.opt.set_hyper("lr", self.lr)

    def freeze_to(self, n: int) -> None:
        """Freeze the first ``n`` layer groups (negative counts from the end); normalisation layers stay trainable."""
        if self.opt is None:
            self.create_opt()
        assert self.opt is not None
        self.opt.freeze_to(n)

    def freeze(self) -> None:
        """Train only the last layer group (the head) and the normalisation layers."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group."""
        self.freeze_to(0)

    # ------------------------------------------------------------------ the loop
    def fit(self, n_epoch: int, lr: float | slice | Sequence[float] | None = None, wd: float | None = None,
            cbs: Sequence[Callback] | Callback | None = None, reset_opt: bool = False, start_epoch: int = 0) -> None:
        """Train for ``n_epoch`` epochs at a constant ``lr`` (a slice gives discriminative rates per group).

        ``start_epoch`` skips the first epochs (to resume a run from a checkpoint, see ``load``).
        """
        if not isinstance(n_epoch, (int, np.integer)) or n_epoch < 1:
            raise ValueError(f"fit: n_epoch must be a positive integer, got {n_epoch!r}")
        if not 0 <= start_epoch < n_epoch:
            raise ValueError(f"fit: start_epoch must be in [0, n_epoch={n_epoch}), got {start_epoch}")
        _check_lr(lr)
        with self.added_cbs(cbs):
            if reset_opt or self.opt is None:
                self.create_opt()
            assert self.opt is not None
            if wd is not None:
                self.opt.set_hyper("wd", wd)
            self.opt.set_hyper("lr", self.lr if lr is None else lr)
            self.n_epoch, self.start_epoch = int(n_epoch), int(start_epoch)
            self.epoch = self.start_epoch
            self.stop_requested = False
            self._with_events(self._do_fit, "fit")

    def _do_fit(self) -> None:
        states, self._resume_cb_states = self._resume_cb_states, {}
        if self.start_epoch > 0:  # resuming a checkpoint: callbacks continue where it left them
            for cb in self.cbs:
                if cb.name in states:
                    cb.load_state_dict(states[cb.name])
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self._with_events(self._do_epoch, "epoch")
            if self.stop_requested:
                raise CancelFitException()

    def _do_epoch(self) -> None:
        self._epoch_done = False
        self.dl = self.dls.train
        self._with_events(self._all_batches, "train")
        self._do_validate()
        self._epoch_done = True  # checkpoints saved from now on resume at the next epoch

    def _do_validate(self, dl: Any = None) -> None:
        self.dl = self.dls.valid if dl is None else dl
        with torch.no_grad():
            self._with_events(self._all_batches, "validate")

    def _all_batches(self) -> None:
        dl = self.dl
        self.n_iter = len(dl)
        self._n_inp = int(getattr(dl, "n_inp", None) or getattr(self.dls, "n_inp", None) or 1)
        it = dl if self.batch_wrapper is None else self.batch_wrapper(dl)
        for i, b in enumerate(it):
            self.iter = i
            self._one_batch(b)

    def _one_batch(self, b: Sequence[torch.Tensor]) -> None:
        n = self._n_inp
        dev = self.device
        if isinstance(b[0], torch.Tensor) and b[0].device != dev:
            b = tuple(t.to(dev, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in b)
        self.xb, self.yb = tuple(b[:n]), tuple(b[n:])
        self._with_events(self._do_one_batch, "batch")

    def _do_one_batch(self) -> None:
        self.pred = self.model(*self.xb)
        self("after_pred")
        if self.yb:
            self.loss_grad = self.loss_func(self.pred, *self.yb)
            self.loss = self.loss_grad.detach()
        else:
            self.loss_grad = self.loss = None
        self("after_loss")
        if not self.training or not self.yb:
            return
        self._with_events(self._backward, "backward")
        self._with_events(self._step, "step")
        self.opt.zero_grad()  # type: ignore[union-attr]

    def _backward(self) -> None:
        self.loss_grad.backward()  # type: ignore[union-attr]

    def _step(self) -> None:
        self.opt.step()  # type: ignore[union-attr]

    def validate(self, ds_idx: int = 1, dl: Any = None) -> list[float | None]:
        """Loss and metrics over a whole set (default: validation) as ``[loss, *metrics]``."""
        rec: Recorder = self.recorder
        dl = self._get_dl(ds_idx, dl)
        self.training = False
        with self.removed_cbs([c for c in self.cbs if isinstance(c, ProgressCallback)]):
            rec.metrics = list(self.metrics)
            rec._valid_total, rec._valid_count = 0.0, 0
            self._do_validate(dl)
        loss = float(rec._valid_total) / rec._valid_count if rec._valid_count else None
        out = [loss, *[m.value for m in self.metrics]]
        rec._valid_count = 0
        return out

    def _get_dl(self, ds_idx: int, dl: Any) -> Any:
        if dl is not None:
            return dl
        if ds_idx == 0:
            return self.dls.train.new(shuffle=False, drop_last=False) if hasattr(self.dls.train, "new") \
                else self.dls.train
        if ds_idx == 1:
            return self.dls.valid
        raise ValueError(f"ds_idx must be 0 (train) or 1 (valid), got {ds_idx!r}")

    # ------------------------------------------------------------------ schedules (see schedule.py)
    def fit_one_cycle(self, n_epoch: int, lr_max: float | slice | None = None, div: float = 25.0,
                      div_final: float = 1e5, pct_start: float = 0.25, wd: float | None = None,
                      moms: tuple[float, float, float] | None = None, cbs: Any = None, reset_opt: bool = False,
                      start_epoch: int = 0) -> None:
        """One-cycle policy: lr warms up (cosine) from lr_max/div to lr_max, then anneals to lr_max/div_final;
        momentum moves the opposite way (``moms``)."""
        from pipekit.learn.schedule import fit_one_cycle

        fit_one_cycle(self, n_epoch, lr_max, div, div_final, pct_start, wd, moms, cbs, reset_opt, start_epoch)

    def fit_flat_cos(self, n_epoch: int, lr: float | slice | None = None, div_final: float = 1e5,
                     pct_start: float = 0.75, wd: float | None = None, cbs: Any = None, reset_opt: bool = False,
                     start_epoch: int = 0) -> None:
        """Flat lr for ``pct_start`` of training, then cosine annealing to lr/div_final."""
        from pipekit.learn.schedule import fit_flat_cos

        fit_flat_cos(self, n_epoch, lr, div_final, pct_start, wd, cbs, reset_opt, start_epoch)

    def fine_tune(self, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
                  pct_start: float = 0.3, div: float = 5.0, **kwargs: Any) -> None:
        """Transfer learning: train the head (frozen body) ``freeze_epochs``, then everything ``epochs``
        with discriminative rates ``slice(base_lr/2/lr_mult, base_lr/2)``."""
        from pipekit.learn.schedule import fine_tune

        fine_tune(self, epochs, base_lr, freeze_epochs, lr_mult, pct_start, div, **kwargs)

    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
                show_plot: bool = True, path: str | os.PathLike | None = None) -> Any:
        """Short run with an exponentially growing lr; returns ``SuggestedLRs(valley, steep, minimum)``.

        The model and optimiser are restored afterwards. ``show_plot`` draws loss vs lr (PNG when headless)."""
        from pipekit.learn.schedule import lr_find

        return lr_find(self, start_lr, end_lr, num_it, stop_div, show_plot, path)

    # ------------------------------------------------------------------ inference (see inference.py)
    def get_preds(self, ds_idx: int = 1, dl: Any = None, with_input: bool = False, with_decoded: bool = False,
                  with_loss: bool = False, act: Callable | None = None, reorder: bool = True,
                  cbs: Any = None) -> tuple:
        """Predictions over a whole set: ``(preds, targs)`` plus ``decoded``/``losses``/inputs when asked.

        Returns a tuple ``([inputs,] preds, targs[, decoded][, losses])``; ``preds`` are activated
        (softmax/sigmoid from the loss) unless ``act`` is given. ``targs`` is None without labels."""
        from pipekit.learn.inference import get_preds

        return get_preds(self, ds_idx, dl, with_input, with_decoded, with_loss, act, reorder, cbs)

    def predict(self, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Predict one raw item: ``(decoded_label, decoded_tensor, probabilities)``."""
        from pipekit.learn.inference import predict

        return predict(self, item)

    def tta(self, ds_idx: int = 1, dl: Any = None, n: int = 4, beta: float | None = 0.25,
            use_max: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Test-time augmentation: ``n`` passes with training-time batch augmentation, mixed with a plain pass."""
        from pipekit.learn.inference import tta

        return tta(self, ds_idx, dl, n, beta, use_max)

    def summary(self, show: bool = True) -> str:
        """Each layer's output shape and parameter count on one training batch, and what is frozen."""
        from pipekit.learn.summary import model_summary

        text = model_summary(self)
        if show:
            print(text)
        return text

    def show_results(self, ds_idx: int = 1, dl: Any = None, max_n: int = 9,
                     path: str | os.PathLike | None = None) -> Any:
        """Draw ``max_n`` items of a batch titled "actual / predicted" (PNG when headless)."""
        from pipekit.learn.inference import show_results

        return show_results(self, ds_idx, dl, max_n, path)

    # ------------------------------------------------------------------ several processes
    def distributed(self, backend: str | None = None, sync_bn: bool = True,
                    find_unused_parameters: bool = False) -> contextlib.AbstractContextManager:
        """Context for ``torchrun``: DDP model, each process reading its own shard of training batches.

        ``with learn.distributed(): learn.fit_one_cycle(5, 1e-3)``; does nothing outside torchrun.
        Backend: 'nccl' on CUDA, 'gloo' on CPU. ``sync_bn`` syncs batch-norm statistics on CUDA."""
        from pipekit.learn.distributed import distributed_context

        return distributed_context(self, backend, sync_bn, find_unused_parameters)

    # ------------------------------------------------------------------ persistence (see export.py)
    def save(self, name: str, with_opt: bool = True) -> Path:
        """Checkpoint to ``path/model_dir/name.pth``: weights, optimiser state, the epoch to resume at, loader
        seeds and epoch counters, random states and callback states, so that ``load`` then
        ``fit(..., start_epoch=learn.resume_epoch)`` continues exactly as the uninterrupted fit."""
        from pipekit.learn.export import save_checkpoint

        return save_checkpoint(self, name, with_opt)

    def load(self, name: str | os.PathLike, with_opt: bool = True, strict: bool = True) -> Learner:
        """Load a checkpoint written by ``save`` (never unpickles code); sets ``resume_epoch``."""
        from pipekit.learn.export import load_checkpoint

        load_checkpoint(self, name, with_opt, strict)
        return self

    def export(self, fname: str | os.PathLike = "export.pipekit") -> Path:
        """Write a single zip file with weights (safetensors), architecture spec and data recipe (JSON);
        a path without an extension gets a folder holding the same files.

        ``pipekit.load_learner(path)`` rebuilds the learner for inference without the training data."""
        from pipekit.learn.export import export_learner

        return export_learner(self, fname)

    def __repr__(self) -> str:
        return (f"Learner(model={type(self.model).__name__}, loss_func={type(self.loss_func).__name__}, "
                f"metrics={[m.name for m in self.metrics]}, device={self.device})")

