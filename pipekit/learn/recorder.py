"""The callbacks every Learner has: train/eval switching, the Recorder and the progress display."""
from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipekit.learn.callbacks import Callback
from pipekit.learn.metrics import Metric

__all__ = ["TrainEvalCallback", "Recorder", "ProgressCallback"]


class TrainEvalCallback(Callback):
    """Puts the model in train/eval mode and keeps ``pct_train`` / ``train_iter`` for the schedulers."""

    order = -20  # first: every other callback reads the mode and the position in training

    def before_fit(self) -> None:
        learn = self.learn
        n_iter = len(learn.dls.train)
        learn.train_iter = learn.start_epoch * n_iter
        learn.pct_train = learn.start_epoch / max(1, learn.n_epoch)
        learn._total_iters = max(1, learn.n_epoch * n_iter)

    def before_train(self) -> None:
        learn = self.learn
        learn.pct_train = learn.epoch / max(1, learn.n_epoch)
        learn.train_iter = learn.epoch * len(learn.dl)
        learn.model.train()
        learn.training = True

    def after_batch(self) -> None:
        learn = self.learn
        if learn.training:
            learn.train_iter += 1
            learn.pct_train = learn.train_iter / learn._total_iters

    def before_validate(self) -> None:
        self.learn.model.eval()
        self.learn.training = False


class Recorder(Callback):
    """Records smoothed training loss, learning rates and momentums per batch; losses and metrics per epoch.

    After ``fit``: ``learn.recorder.values`` (one row per epoch: train_loss, valid_loss, metrics...),
    ``metric_names``, ``losses`` (smoothed, per batch), ``lrs``, ``moms``; ``plot_loss()`` draws them.
    """

    order = 50

    def __init__(self, train_metrics: bool = False, beta: float = 0.98):
        self.beta = beta
        self.train_metrics = train_metrics
        self.values: list[list[float | None]] = []
        self.losses: list[float] = []
        self.lrs: list[list[float]] = []
        self.moms: list[list[float | None]] = []
        self.iters: list[int] = []
        self.valid_losses_at: list[tuple[int, float]] = []

    # per batch only the detached loss is kept (no tensor op, no host sync); smoothing and sums are
    # computed once per training phase
    def before_fit(self) -> None:
        self._ema, self._count = 0.0, 0
        self.metrics: list[Metric] = list(self.learn.metrics)
        self.metric_names = ["epoch", "train_loss", "valid_loss"] + [m.name for m in self.metrics] + ["time"]
        self.values = []
        self.losses, self.lrs, self.moms, self.iters = [], [], [], []
        self.valid_losses_at = []
        self._raw: list[torch.Tensor] = []
        self._bs: list[int] = []

    def before_epoch(self) -> None:
        self._epoch_start = time.perf_counter()
        self._train_total, self._train_count = 0.0, 0

    def after_batch(self) -> None:
        learn = self.learn
        loss = learn.loss
        if loss is None:
            return
        bs = _batch_size(learn)
        if learn.training:
            self._raw.append(loss)
            self._bs.append(bs)
            opt = learn.opt
            self.lrs.append(opt.lrs)
            self.moms.append(opt.moms)
        else:
            loss = loss.float()
            self._valid_total = self._valid_total + loss * bs
            self._valid_count += bs
            for m in self.metrics:
                m.accumulate(learn.pred, learn.yb[0] if len(learn.yb) == 1 else learn.yb, loss, bs)

    def after_train(self) -> None:
        if not self._raw:
            return
        raw = torch.stack([r.float().reshape(()) for r in self._raw]).cpu().numpy().astype(np.float64)
        bs = np.asarray(self._bs, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(raw))
        if len(bad):
            warnings.warn(f"the training loss was not finite in {len(bad)} batch(es) of epoch {self.learn.epoch} "
                          f"(first: batch {int(bad[0])}); lower the learning rate, add GradientClip, or check the "
                          "inputs for NaN/inf", RuntimeWarning, stacklevel=2)
        self._train_total += float((raw * bs).sum())
        self._train_count += int(bs.sum())
        ema, count, beta = self._ema, self._count, self.beta
        for v in raw:  # exponential moving average, debiased like an EMA started at zero
            count += 1
            ema = beta * ema + (1 - beta) * float(v)
            self.losses.append(ema / (1 - beta ** count))
        self._ema, self._count = ema, count
        self._raw, self._bs = [], []

    def before_validate(self) -> None:
        self._valid_total: Any = 0.0
        self._valid_count = 0
        for m in self.metrics:
            m.reset()

    def state_dict(self) -> dict[str, Any]:
        # the smoothed loss continues across a resumed fit exactly as in one uninterrupted fit
        return {"ema": float(self._ema), "count": int(self._count)} if hasattr(self, "_ema") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "ema" in state:
            self._ema, self._count = float(state["ema"]), int(state["count"])

    @property
    def smooth_loss(self) -> float | None:
        """The smoothed training loss at the end of the last training phase."""
        return self.losses[-1] if self.losses else None

    def after_epoch(self) -> None:
        learn = self.learn
        train_loss = float(self._train_total) / self._train_count if self._train_count else None
        valid_loss = float(self._valid_total) / self._valid_count if getattr(self, "_valid_count", 0) else None
        metric_vals = [m.value if getattr(self, "_valid_count", 0) else None for m in self.metrics]
        row = [learn.epoch, train_loss, valid_loss, *metric_vals, time.perf_counter() - self._epoch_start]
        self.values.append(row)
        if valid_loss is not None:
            self.valid_losses_at.append((len(self.losses), valid_loss))
        self._valid_count = 0
        learn.final_record = row

    def after_fit(self) -> None:
        self.after_train()

    def value(self, name: str, epoch: int = -1) -> float | None:
        """The recorded ``name`` ('train_loss', 'valid_loss' or a metric name) at ``epoch``."""
        if name not in self.metric_names:
            raise KeyError(f"no recorded value {name!r}; recorded: {self.metric_names}")
        if not self.values:
            raise ValueError("nothing recorded yet: call fit first")
        return self.values[epoch][self.metric_names.index(name)]

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, path: str | os.PathLike | None = None) -> Path | None:
        """Plot the smoothed training loss per batch (and validation loss per epoch); PNG when headless."""
        from pipekit.data.plotting import get_pyplot, savefig_or_show

        plt = get_pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = np.arange(len(self.losses))
        ax.plot(xs[skip_start:], self.losses[skip_start:], label="train")
        if with_valid and self.valid_losses_at:
            vx, vy = zip(*self.valid_losses_at)
            ax.plot(vx, vy, marker="o", label="valid")
        ax.set_xlabel("batch")
        ax.set_ylabel("loss")
        ax.legend()
        return savefig_or_show(fig, path, name="loss")

    def plot_sched(self, path: str | os.PathLike | None = None) -> Path | None:
        """Plot the learning rate and momentum of the last group per batch."""
        from pipekit.data.plotting import get_pyplot, savefig_or_show

        plt = get_pyplot()
        fig, axs = plt.subplots(1, 2, figsize=(8, 3))
        axs[0].plot([lr[-1] for lr in self.lrs])
        axs[0].set_title("lr")
        axs[1].plot([m[-1] if m[-1] is not None else math.nan for m in self.moms])
        axs[1].set_title("mom")
        return savefig_or_show(fig, path, name="schedule")


def _batch_size(learn: Any) -> int:
    x = learn.xb[0] if learn.xb else None
    try:
        return int(x.shape[0])  # type: ignore[union-attr]
    except (AttributeError, IndexError, TypeError):
        return 1


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


class ProgressCallback(Callback):
    """A rich progress bar over batches and a per-epoch table of losses and metrics.

    The table prints unless ``PIPEKIT_QUIET=1``; the bar shows only on a terminal.
    """

    order = 60

    def __init__(self, show_table: bool = True):
        self.show_table = show_table

    def before_fit(self) -> None:
        from pipekit.data.progress import progress_bar

        self._header_done = False
        from pipekit.learn.distributed import is_main_process

        # one table for the job, not one per process
        self._quiet = os.environ.get("PIPEKIT_QUIET") == "1" or not self.show_table or not is_main_process()
        learn = self.learn
        learn.batch_wrapper = lambda dl: progress_bar(dl, total=len(dl),
                                                      description=f"epoch {learn.epoch + 1}/{learn.n_epoch} "
                                                                  f"{'train' if learn.training else 'valid'}")

    def after_epoch(self) -> None:
        rec = getattr(self.learn, "recorder", None)
        if self._quiet or rec is None or not rec.values:
            return
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        names = rec.metric_names
        widths = [max(len(n), 10) for n in names]
        if not self._header_done:
            console.print("  ".join(n.ljust(w) for n, w in zip(names, widths)), style="bold")
            self._header_done = True
        row = list(rec.values[-1])
        cells = [str(row[0])] + [_fmt(v) for v in row[1:-1]] + [time.strftime("%M:%S", time.gmtime(row[-1]))]
        console.print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))

    def after_fit(self) -> None:
        self.learn.batch_wrapper = None

