"""Ready-made callbacks: checkpoints and early stopping on a monitored value, gradient clipping, mixed
precision, MixUp and activation statistics.

>>> from pipekit.learn import SaveModelCallback, EarlyStoppingCallback
>>> cbs = [SaveModelCallback(monitor="accuracy"), EarlyStoppingCallback(monitor="valid_loss", patience=2)]
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipekit.learn.callbacks import Callback

__all__ = ["TrackerCallback", "SaveModelCallback", "EarlyStoppingCallback", "GradientClip", "MixedPrecision",
           "MixUp", "ActivationStats"]


class TrackerCallback(Callback):
    """Tracks the best value of ``monitor`` ('valid_loss', 'train_loss' or a metric name) over epochs.

    ``comp`` decides what "better" means: by default lower for names containing 'loss' or 'error', else higher.
    """

    order = 63  # after the Recorder (50) has written the epoch's values

    def __init__(self, monitor: str = "valid_loss", comp: Any = None, min_delta: float = 0.0,
                 reset_on_fit: bool = True):
        if min_delta < 0:
            raise ValueError(f"{type(self).__name__}: min_delta must be >= 0, got {min_delta}")
        if comp is None:
            comp = np.less if ("loss" in monitor or "error" in monitor) else np.greater
        self.monitor, self.comp, self.min_delta, self.reset_on_fit = monitor, comp, min_delta, reset_on_fit
        self.best: float | None = None

    def before_fit(self) -> None:
        rec = self.learn.recorder
        if self.monitor not in rec.metric_names[1:-1]:
            raise ValueError(f"{type(self).__name__}: cannot monitor {self.monitor!r}; recorded values are "
                             f"{rec.metric_names[1:-1]}")
        if self.reset_on_fit or self.best is None:
            self.best = np.inf if self.comp is np.less else -np.inf
        self.new_best = False

    def after_epoch(self) -> None:
        val = self.learn.recorder.value(self.monitor)
        self.new_best = False
        if val is None:
            return
        delta = -self.min_delta if self.comp is np.less else self.min_delta
        if self.comp(val - delta, self.best):
            self.best, self.new_best = float(val), True

    def state_dict(self) -> dict[str, Any]:
        return {"best": None if self.best is None else float(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("best") is not None:
            self.best = float(state["best"])


class SaveModelCallback(TrackerCallback):
    """Saves the model when ``monitor`` improves (``fname``), or every epoch (``fname_{epoch}``); at the
    end of training the best model is loaded back unless ``at_end`` (then the last model is saved).

    Early stopping only takes effect once the epoch is over, so the model of the epoch in which training
    stops is saved if it is the best, whichever order the two callbacks are listed in. Its order (65)
    comes after ``EarlyStoppingCallback`` (64), so a checkpoint it writes holds the trackers' state for
    the epoch just finished and a fit resumed from it counts patience exactly as the uninterrupted one.
    """

    order = 65

    def __init__(self, monitor: str = "valid_loss", comp: Any = None, min_delta: float = 0.0, fname: str = "model",
                 every_epoch: bool = False, at_end: bool = False, with_opt: bool = False, reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        if not fname or os.sep in fname:
            raise ValueError(f"SaveModelCallback: fname must be a plain file name, got {fname!r}")
        self.fname, self.every_epoch, self.at_end, self.with_opt = fname, every_epoch, at_end, with_opt
        self.saved: list[Path] = []

    def after_epoch(self) -> None:
        if self.every_epoch:
            self._save(f"{self.fname}_{self.learn.epoch}")
            return
        super().after_epoch()
        if self.new_best and not self.at_end:
            self.best_epoch = self.learn.epoch
            self._save(self.fname)

    def _save(self, name: str) -> None:
        from pipekit.learn.export import _ckpt_path

        # listed before writing: the checkpoint's copy of this callback's state already knows of itself,
        # so a fit resumed from it reloads the best model at the end
        self.saved.append(_ckpt_path(self.learn, name))
        self.learn.save(name, with_opt=self.with_opt)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "saved": [str(p) for p in self.saved],
                "best_epoch": getattr(self, "best_epoch", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.saved = [Path(p) for p in state.get("saved", [])]
        if state.get("best_epoch") is not None:
            self.best_epoch = int(state["best_epoch"])

    def after_fit(self) -> None:
        from pipekit.learn.export import load_checkpoint

        if self.at_end:
            self.saved.append(self.learn.save(self.fname, with_opt=self.with_opt))
        elif not self.every_epoch and self.saved:
            load_checkpoint(self.learn, self.fname, with_opt=False, restore_state=False)


class EarlyStoppingCallback(TrackerCallback):
    """Stops training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    It never stops in an epoch that set a new best. The stop takes effect once the epoch is over
    (``learn.request_stop``), so every callback, a ``SaveModelCallback`` among them, has seen that epoch
    whatever the order of the list the callbacks were given in.
    """

    order = 64

    def __init__(self, monitor: str = "valid_loss", comp: Any = None, min_delta: float = 0.0, patience: int = 1,
                 reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        if patience < 1:
            raise ValueError(f"EarlyStoppingCallback: patience must be >= 1, got {patience}")
        self.patience = patience

    def before_fit(self) -> None:
        super().before_fit()
        self.wait = 0
        self.stopped_epoch: int | None = None

    def after_epoch(self) -> None:
        super().after_epoch()
        if self.new_best:
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = self.learn.epoch
            self.learn.request_stop()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": int(getattr(self, "wait", 0))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = int(state.get("wait", 0))


class GradientClip(Callback):
    """Clips the global gradient norm to ``max_norm`` before each optimiser step."""

    order = 20  # after MixedPrecision has unscaled the gradients

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0):
        if max_norm <= 0:
            raise ValueError(f"GradientClip: max_norm must be > 0, got {max_norm}")
        self.max_norm, self.norm_type = max_norm, norm_type

    def before_step(self) -> None:
        self.last_norm = nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.max_norm, self.norm_type)


class MixedPrecision(Callback):
    """Autocast forward pass and loss; a GradScaler for fp16.

    ``dtype``: 'bf16', 'fp16' or None (bf16 where CUDA supports it, else fp16). On the CPU it does
    nothing unless ``cpu=True`` (then bf16 autocast; fp16 is not offered on the CPU).
    """

    order = 10

    def __init__(self, dtype: str | None = None, cpu: bool = False):
        if dtype not in (None, "bf16", "fp16"):
            raise ValueError(f"MixedPrecision: dtype must be 'bf16', 'fp16' or None, got {dtype!r}")
        self.dtype_name, self.cpu = dtype, cpu
        self.active = False
        self.scaler: Any = None

    def before_fit(self) -> None:
        dev = self.learn.device.type
        self.device_type = dev
        if dev == "cuda":
            name = self.dtype_name or ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
        elif dev == "cpu" and self.cpu:
            if self.dtype_name == "fp16":
                raise ValueError("MixedPrecision: fp16 autocast is not available on the CPU; use dtype='bf16'")
            name = "bf16"
        else:
            self.active = False
            return
        self.active = True
        self.dtype = torch.bfloat16 if name == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler(dev) if self.dtype is torch.float16 else None
        self.learn.opt.scaler = self.scaler  # type: ignore[union-attr]

    def before_batch(self) -> None:
        if self.active:
            self._ctx = torch.autocast(self.device_type, dtype=self.dtype)
            self._ctx.__enter__()

    def after_loss(self) -> None:
        if self.active and getattr(self, "_ctx", None) is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
            # metrics and predictions in full precision
            if isinstance(self.learn.pred, torch.Tensor) and self.learn.pred.is_floating_point():
                self.learn.pred = self.learn.pred.float()

    def after_cancel_batch(self) -> None:
        self.after_loss()

    def before_backward(self) -> None:
        if self.scaler is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def before_step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.learn.opt.opt)

    def after_fit(self) -> None:
        if self.learn.opt is not None:
            self.learn.opt.scaler = None
        self.active = False

    def state_dict(self) -> dict[str, Any]:
        # fp16's loss scale and its growth counter: a resumed fit starts from the same scale
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


class MixUp(Callback):
    """MixUp: trains on convex combinations of pairs of items and of their losses (``alpha`` of the Beta)."""

    order = 30
    run_valid = False

    def __init__(self, alpha: float = 0.4):
        if alpha <= 0:
            raise ValueError(f"MixUp: alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def before_train(self) -> None:
        self._orig_loss = self.learn.loss_func
        self.learn.loss_func = self._mixed_loss

    def after_train(self) -> None:
        self.learn.loss_func = self._orig_loss

    def after_cancel_fit(self) -> None:
        if hasattr(self, "_orig_loss"):
            self.learn.loss_func = self._orig_loss

    def before_batch(self) -> None:
        learn = self.learn
        x = learn.xb[0]
        bs = x.shape[0]
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((bs,))
        lam = torch.maximum(lam, 1 - lam).to(x.device)  # the item itself keeps the larger weight
        self.lam = lam
        self.perm = torch.randperm(bs, device=x.device)
        shape = (bs,) + (1,) * (x.ndim - 1)
        xs = tuple(torch.lerp(xi[self.perm], xi, lam.view(shape).to(xi.dtype)) if xi.is_floating_point() else xi
                   for xi in learn.xb)
        learn.xb = xs
        self.yb_other = tuple(y[self.perm] for y in learn.yb)

    def _mixed_loss(self, pred: torch.Tensor, *yb: torch.Tensor) -> torch.Tensor:
        lf = self._orig_loss
        old = getattr(lf, "reduction", None)
        if old is None:
            raise TypeError("MixUp needs a loss with a `reduction` attribute (e.g. CrossEntropyLossFlat)")
        lf.reduction = "none"
        try:
            l1 = lf(pred, *yb)
            l2 = lf(pred, *self.yb_other)
        finally:
            lf.reduction = old
        bs = pred.shape[0]
        l1, l2 = l1.reshape(bs, -1).mean(1), l2.reshape(bs, -1).mean(1)
        loss = torch.lerp(l2, l1, self.lam.to(l1.dtype))
        return loss.mean() if old == "mean" else loss.sum() if old == "sum" else loss


class ActivationStats(Callback):
    """Per-layer mean, std and share of near-zero activations, per training batch.

    ``modules`` default: every leaf module with parameters (conv, linear, norm layers). After ``fit``:
    ``stats[name]`` is an array ``[n_batches, 3]`` (mean, std, near_zero); ``plot_layer_stats`` draws them.
    """

    order = -7  # hooks armed before any forward pass
    run_valid = False

    def __init__(self, modules: Sequence[nn.Module] | None = None, near_zero: float = 0.05, every: int = 1):
        if every < 1:
            raise ValueError(f"ActivationStats: every must be >= 1, got {every}")
        self.modules_arg, self.near_zero, self.every = modules, near_zero, every
        self.stats: dict[str, np.ndarray] = {}

    def before_fit(self) -> None:
        model = self.learn.model
        names = {m: n for n, m in model.named_modules()}
        mods = list(self.modules_arg) if self.modules_arg is not None else [
            m for m in model.modules() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
        self._names = [names.get(m, type(m).__name__) for m in mods]
        self._buf: dict[str, list[torch.Tensor]] = {n: [] for n in self._names}
        self._hooks = [m.register_forward_hook(self._hook(n)) for m, n in zip(mods, self._names)]
        self._record = False

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inp: Any, out: Any) -> None:
            if self._record and isinstance(out, torch.Tensor):
                o = out.detach().float()
                # kept on the device as one small tensor: no host sync per batch
                self._buf[name].append(torch.stack([o.mean(), o.std(), (o.abs() < self.near_zero).float().mean()]))
        return hook

    def before_batch(self) -> None:
        self._record = self.learn.training and self.learn.train_iter % self.every == 0

    def after_batch(self) -> None:
        self._record = False

    def after_fit(self) -> None:
        for h in self._hooks:
            h.remove()
        self.stats = {n: torch.stack(v).cpu().numpy() if v else np.zeros((0, 3)) for n, v in self._buf.items()}

    def plot_layer_stats(self, name: str | int, path: str | os.PathLike | None = None) -> Path | None:
        """Mean, std and near-zero share of one layer over the recorded batches (PNG when headless)."""
        from pipekit.data.plotting import get_pyplot, savefig_or_show

        key = self._names[name] if isinstance(name, int) else name
        if key not in self.stats:
            raise KeyError(f"ActivationStats: no layer {name!r}; recorded: {list(self.stats)}")
        data = self.stats[key]
        plt = get_pyplot()
        fig, axs = plt.subplots(1, 3, figsize=(10, 3))
        for ax, i, title in zip(axs, range(3), ("mean", "std", "near zero")):
            ax.plot(data[:, i])
            ax.set_title(f"{key}: {title}")
        return savefig_or_show(fig, path, name=f"activation_stats_{key}")
