"""Callbacks that write what training did somewhere else: a CSV file of the epochs (``CSVLogger``),
TensorBoard event files (``TensorBoardCallback``, when the ``tensorboard`` package is installed) and a graph
of the losses drawn as training goes (``ShowGraphCallback``).

>>> from pipekit.learn import CSVLogger
>>> cb = CSVLogger("history.csv", append=True)        # learn.fit(..., cbs=cb); cb.read_log()
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import socket
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipekit.core.archive import writable_folder
from pipekit.core.errors import DataError, warn
from pipekit.core.validate import BOOL, Interval, Is
from pipekit.data.plotting import (_next_png, _warn_unwritable, _write_png, figure_path, get_pyplot, plot_folder,
                                   plot_mode, savefig_or_show)
from pipekit.data.progress import format_time
from pipekit.learn.callbacks.builtin import LEARNER_FOLDER
from pipekit.learn.callbacks.core import Callback
from pipekit.learn.distributed import is_main_process
from pipekit.learn.registry import unwrapped

__all__ = ["CSVLogger", "ShowGraphCallback", "TensorBoardCallback"]


def _cell(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


class CSVLogger(Callback):
    """Writes one line per epoch to ``learn.path / fname``: ``epoch,train_loss,valid_loss,<metrics>,time``
    (the Recorder's row, its columns ``learn.recorder.metric_names``, so ``train_metrics=True`` adds
    ``train_<metric>`` columns; time as mm:ss, h:mm:ss from an hour on, as the progress table shows it).

    With ``append=False`` each fit starts the file anew; with ``append=True`` the lines go after those
    already there (the header is written once; a file whose header names other columns is refused rather
    than mixed). ``read_log()`` reads the file back as a pandas DataFrame (its time column the text written). A
    folder the file cannot be written in stops the fit before its first epoch, with an error naming it.

    >>> import tempfile, torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import CSVLogger, Learner
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, path=tempfile.mkdtemp())
    >>> cb = CSVLogger()
    >>> learn.fit(2, cbs=cb)
    >>> cb.path.relative_to(learn.path).as_posix(), cb.read_log().columns.tolist(), len(cb.read_log())
    ('history.csv', ['epoch', 'train_loss', 'valid_loss', 'time'], 2)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 57  # after the Recorder (50) has written the epoch's row
    param_constraints = {"fname": Is(lambda f: isinstance(f, (str, os.PathLike)) and str(f) != "", "a file name")}

    def __init__(self, fname: str | os.PathLike = "history.csv", append: bool = False):
        self.fname, self.append = fname, append
        self.check_params()

    @property
    def path(self) -> Path:
        """Where the log is written (``fname`` under ``learn.path`` unless absolute)."""
        learn = getattr(self, "learn", None)
        base = Path(learn.path) if learn is not None else Path(".")
        return base / self.fname

    def before_fit(self) -> None:
        self._file = None
        if not is_main_process():  # one file for the job, not one per process
            return
        header = self.learn.recorder.metric_names
        path = self.path
        writable_folder(path.parent, "CSVLogger",
                        f"CSVLogger(fname='<a writable folder>/{Path(self.fname).name}')"
                        if Path(self.fname).is_absolute() else
                        f"{LEARNER_FOLDER}, or CSVLogger(fname='<a writable folder>/{Path(self.fname).name}')")
        existing = path.exists() and path.stat().st_size > 0
        if self.append and existing:
            with open(path, newline="") as f:
                first = next(csv.reader(f), [])
            if first != header:
                raise DataError(f"CSVLogger: {path} already logs the columns {first}, this fit records {header}; "
                                "give another fname or append=False to start the file anew")
        self._file = open(path, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file)
        if not (self.append and existing):
            self._writer.writerow(header)
            self._file.flush()

    def after_epoch(self) -> None:
        if self._file is None or not self.learn.recorder.history:
            return
        row = list(self.learn.recorder.history[-1])
        cells = [str(row[0])] + [_cell(v) for v in row[1:-1]] + [format_time(row[-1])]
        self._writer.writerow(cells)
        self._file.flush()  # a crash later in the fit keeps the epochs already done

    def after_fit(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_log(self) -> Any:
        """The log as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(self.path)


def _require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError("TensorBoardCallback writes through torch.utils.tensorboard, which needs the "
                                  "'tensorboard' package: pip install tensorboard", name="tensorboard") from None


#: what TensorBoardCallback(log_preds=True) is refused with: pipekit draws predictions where figures are seen
_NO_LOG_PREDS = ("False: pipekit's TensorBoardCallback logs no figure of predictions (learn.show_results draws them "
                 "where figures are seen, a notebook, a window or a PNG, and hands none to TensorBoard); after the "
                 "fit, draw them with learn.show_results(max_n=9, path='results.png')")


def _run_name() -> str:
    """A TensorBoard run's folder name as ``SummaryWriter()`` makes it: the date and time, then the host."""
    return f"{datetime.now():%b%d_%H-%M-%S}_{socket.gethostname()}"


def _new_run_folder(runs: Path) -> Path:
    """A new, empty folder for one TensorBoard run in ``runs``, named as ``SummaryWriter()`` names its folders
    (``Jan05_14-03-22_host``), with ``_2``, ``_3``... after the name when that folder is already there (a second
    run started in the same second, by this process or another)."""
    base = _run_name()
    for k in range(1, 10_000):
        folder = runs / (base if k == 1 else f"{base}_{k}")
        try:
            folder.mkdir()  # made here, or taken already: two runs never share a folder
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no new run folder could be made in {runs}: {base} and 9,999 numbered after it are taken")


class TensorBoardCallback(Callback):
    """Logs to TensorBoard event files: the training loss and each parameter group's learning rate per batch
    (``train_loss``, ``lr/0``, ``lr/1``...), the validation loss and the metrics per epoch, and ``n_images``
    images of the first training batch as the model sees them before normalisation (``batch``). Steps count
    training batches over every fit this callback has seen. Needs the ``tensorboard`` package (``pip install
    tensorboard``).

    Each callback is one run: without ``log_dir`` it writes to a new folder under ``learn.path / 'runs'``, named as
    ``SummaryWriter()`` names its runs (date, time and host, e.g. ``runs/Jan05_14-03-22_host``; ``_2``... after it
    for a second run started in the same second), chosen at the callback's first fit and kept for its later fits
    (``run_dir``). So two experiments (two learners, or two callbacks) are two runs in ``tensorboard --logdir
    <learn.path>/runs``, never one run whose steps start again at 0. ``log_dir`` writes to that folder as given, for
    every fit. A folder that cannot be written stops the fit before its first epoch, with an error naming it.

    ``trace_model=True`` writes the model's graph once, at the callback's first fit (``writer.add_graph`` on the
    inputs of one training batch, the model in eval mode without gradients); a model that cannot be traced gets a
    warning saying why no graph was written, and training goes on. It is off by default (fastai's default is on):
    tracing unrolls the model for one batch, about a second for a ResNet-34, and more than a minute for an AWD-LSTM
    text classifier, which reads its text in windows. ``log_preds`` and ``n_preds`` are fastai's arguments:
    ``log_preds=False`` is accepted, and ``True`` is refused; after the fit, ``learn.show_results(max_n=n_preds,
    path='results.png')`` draws the predictions of a validation batch.

    >>> from pipekit.learn import TensorBoardCallback
    >>> cb = TensorBoardCallback(trace_model=True)       # learn.fit(..., cbs=cb); tensorboard --logdir <path>/runs
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 58  # after the Recorder (50): the epoch's row is written
    run_valid = False
    param_constraints = {"n_images": Interval(0, None, integer=True),
                         "log_dir": Is(lambda d: d is None or isinstance(d, (str, os.PathLike)), "None or a folder"),
                         "trace_model": BOOL,
                         "log_preds": Is(lambda v: v is False, _NO_LOG_PREDS),
                         "n_preds": Interval(1, None, integer=True)}

    def __init__(self, log_dir: str | os.PathLike | None = None, trace_model: bool = False, log_preds: bool = False,
                 n_preds: int = 9, n_images: int = 8):
        self.log_dir, self.trace_model, self.log_preds, self.n_preds = log_dir, trace_model, log_preds, n_preds
        self.n_images = n_images
        self.check_params()
        _require_tensorboard()

    @property
    def run_dir(self) -> Path | None:
        """The folder this callback writes its run to: ``log_dir``, or the one made at its first fit (None before)."""
        return Path(self.log_dir) if self.log_dir is not None else getattr(self, "_run_dir", None)

    def before_fit(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = None
        if not is_main_process():
            return
        if self.run_dir is None:  # the callback's first fit: a run of its own under learn.path/runs
            runs = writable_folder(Path(self.learn.path) / "runs", "TensorBoardCallback",
                                   f"{LEARNER_FOLDER}, or TensorBoardCallback(log_dir='<a writable folder>')")
            folder = self._run_dir = _new_run_folder(runs)
        else:
            folder = writable_folder(self.run_dir, "TensorBoardCallback",
                                     "TensorBoardCallback(log_dir='<a writable folder>')")
        self.writer = SummaryWriter(log_dir=str(folder))
        self.step_ = getattr(self, "step_", 0)
        if self.trace_model and not getattr(self, "_graph_tried", False):  # once: the model's graph does not change
            self._graph_tried = True
            self._write_graph()
        if self.n_images:
            self._log_images()

    def _write_graph(self) -> None:
        """The model's graph, traced on the inputs of one training batch in eval mode without gradients; a model
        that cannot be traced is said in a warning, and the fit goes on."""
        learn = self.learn
        model = unwrapped(learn.model)  # a compiled or distributed model's own module: the one that traces
        was_training = model.training
        try:
            dl = learn.dls.train
            b = dl.one_batch()
            b = (b,) if isinstance(b, torch.Tensor) else tuple(b)
            xb = tuple(t.to(learn.device) if isinstance(t, torch.Tensor) else t for t in b[:dl.n_inp])
            model.eval()
            assert self.writer is not None
            # the tracer's warnings say a trace may not fit other inputs (it only draws the graph here), and
            # tensorboard prints its own line on a failure, which the warning below replaces
            with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                # add_graph traces with torch.jit.trace, which torch marks deprecated: nothing the user can change
                warnings.filterwarnings("ignore", "`torch.jit.trace", DeprecationWarning)
                self.writer.add_graph(model, xb)
        except Exception as e:
            warn(f"TensorBoardCallback(trace_model=True): the model graph was not written: {type(model).__name__} "
                 f"could not be traced on a training batch ({type(e).__name__}: {str(e)[:300]}); training goes on. "
                 "Give trace_model=False not to try")
        finally:
            model.train(was_training)

    def _log_images(self) -> None:
        dl = self.learn.dls.train
        blocks = dl.blocks
        if not blocks or blocks[0].geometry != "image":
            return
        rows = dl.decode_batch(dl.one_batch(), max_n=self.n_images)
        imgs = [np.asarray(r[0]) for r in rows]
        batch = np.stack([i.astype(np.float32) / 255 if i.dtype == np.uint8 else i.astype(np.float32) for i in imgs])
        assert self.writer is not None
        self.writer.add_images("batch", batch.clip(0, 1), self.step_, dataformats="NHWC")

    def after_batch(self) -> None:
        learn = self.learn
        if self.writer is None or not learn.training or learn.loss is None:
            return
        self.step_ += 1
        self.writer.add_scalar("train_loss", float(learn.loss), self.step_)
        for i, lr in enumerate(learn.optimizer.lrs):
            self.writer.add_scalar(f"lr/{i}", float(lr), self.step_)

    def after_epoch(self) -> None:
        rec = self.learn.recorder
        if self.writer is None or not rec.history:
            return
        # the epoch's values after train_loss (logged per batch): valid_loss and the metrics, train_<metric> too
        for name, v in zip(rec.metric_names[2:-1], rec.history[-1][2:-1]):
            if v is not None:
                self.writer.add_scalar(name, float(v), self.step_)

    def after_fit(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ShowGraphCallback(Callback):
    """Draws the training loss (per batch, smoothed as the Recorder smooths it) and the validation loss (per
    epoch) after every epoch, on axes spanning the whole fit, so the curves grow as training goes. In a
    notebook it is one figure, updated in place; where figures cannot be shown, one PNG rewritten after every
    epoch (``path``, or ``plot_dir()/loss_graph.png``; ``loss_graph_2.png``... for later fits); with a
    screen, the final graph is shown when the fit ends. ``lr_find`` and ``pipekit.bench.bottleneck`` do not draw
    it. ``file_`` is the PNG written, if any (set when a fit of training starts).

    >>> from pipekit.learn import ShowGraphCallback
    >>> cb = ShowGraphCallback()          # learn.fit_one_cycle(5, cbs=cb)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = 61  # after the Recorder (50) has written the epoch's losses
    param_constraints = {"path": Is(lambda f: f is None or (isinstance(f, (str, os.PathLike)) and str(f) != ""),
                                    "a file name or None")}

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = path
        self.check_params()

    def before_fit(self) -> None:
        self.active_ = is_main_process()  # lr_find's sweep runs without it (pipekit.learn.schedule.NOT_TRAINING)
        self._handle: Any = None
        self.file_ = None
        if not self.active_:
            return
        self.mode_ = plot_mode()
        n_batches = len(self.learn.dls.train)
        self.span_ = max(1, (self.learn.n_epoch - self.learn.start_epoch) * n_batches)
        if self.path is not None:
            self.file_ = figure_path(self.path)  # the file written: ``.png`` added, a folder refused before the fit
        elif self.mode_ == "file":
            try:
                self.file_ = _next_png("loss_graph")
            except OSError as e:  # the plot folder cannot be made: said once, the fit goes on
                _warn_unwritable(plot_folder(), e)

    def _figure(self) -> Any:
        rec = self.learn.recorder
        fig, ax = get_pyplot().subplots(figsize=(6, 4))
        ax.plot(np.arange(len(rec.losses)), rec.losses, label="train")
        if rec.valid_losses_at:
            vx, vy = zip(*rec.valid_losses_at)
            ax.plot(vx, vy, marker="o", label="valid")
        seen = [v for v in [*rec.losses, *(v for _, v in rec.valid_losses_at)] if v is not None and np.isfinite(v)]
        if seen:
            lo, hi = min(seen), max(seen)
            pad = 0.05 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-3
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(0, self.span_)
        ax.set_xlabel("batch")
        ax.set_ylabel("loss")
        ax.set_title(f"epoch {self.learn.epoch + 1} of {self.learn.n_epoch}")
        ax.legend()
        return fig

    def after_epoch(self) -> None:
        if not self.active_:
            return
        fig = self._figure()
        if self.file_ is not None and self.path is not None:
            _write_png(fig, self.file_, "loss_graph")  # the user's file: one that cannot be written says so
        elif self.file_ is not None:
            try:
                fig.savefig(self.file_, dpi=100, bbox_inches="tight")
            except OSError as e:  # the plot folder: said once, the fit goes on without the file
                _warn_unwritable(self.file_.parent, e)
                self.file_ = None
        if self.mode_ == "inline":
            from IPython.display import display

            if self._handle is None:
                self._handle = display(fig, display_id=True)
            else:
                self._handle.update(fig)
        get_pyplot().close(fig)

    def after_fit(self) -> None:
        if self.active_ and self.mode_ == "window" and self.learn.recorder.losses:
            savefig_or_show(self._figure(), None, name="loss_graph")
