"""Validation-only passes (validate, get_preds, predict, tta, interpretation) run the fit and epoch events around
their validation phase, as fastai's ``validation_context`` does, so the book's chapter 19 callbacks work there;
the learner's own callbacks leave what the last fit recorded as it was."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.data import get_image_files
from pipekit.learn import (
    ActivationStats, Callback, ClassificationInterpretation, CSVLogger, EarlyStoppingCallback, GradientAccumulation,
    HookCallback, Learner, ParamScheduler, SaveModelCallback, TimeLimit, accuracy,
)

pytestmark = pytest.mark.data

#: the events fastai 2.8.12 runs in ``learn.validate()`` and ``learn.get_preds()`` (runs of after_batch as one)
FASTAI_VALIDATE_EVENTS = ["before_fit", "before_epoch", "before_validate", "after_batch", "after_validate",
                          "after_epoch", "after_fit"]


class TrackResults(Callback):
    """The book's chapter 19 callback: state started in before_epoch, filled per batch, reported in after_epoch."""

    def before_epoch(self):
        self.accs, self.losses, self.ns = [], [], []

    def after_batch(self):
        if self.training or not self.yb:  # predict's item carries no label
            return
        n = len(self.xb[0])
        self.accs.append((self.pred.argmax(dim=1) == self.yb[0]).float().sum())
        self.losses.append(self.loss.mean() * n)  # per item where get_preds(with_loss=True) asks for it
        self.ns.append(n)

    def after_epoch(self):
        n = sum(self.ns)
        self.n = n
        self.acc = float(sum(self.accs) / n) if n else None
        self.valid_loss = float(sum(self.losses) / n) if n else None


class LogEvents(Callback):
    """The events a pass runs, consecutive after_batch as one."""

    def __init__(self):
        self.ev = []

    def _log(self, name):
        if not (name == "after_batch" and self.ev and self.ev[-1] == name):
            self.ev.append(name)

    def before_fit(self): self._log("before_fit")
    def before_epoch(self): self._log("before_epoch")
    def before_train(self): self._log("before_train")
    def before_validate(self): self._log("before_validate")
    def after_batch(self): self._log("after_batch")
    def after_validate(self): self._log("after_validate")
    def after_epoch(self): self._log("after_epoch")
    def after_fit(self): self._log("after_fit")

    def take(self):
        ev, self.ev = self.ev, []
        return ev


def learner(dls, tmp_path, cbs=()):
    pipekit.set_seed(0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), metrics=accuracy, path=tmp_path,
                   cbs=[TrackResults(), *cbs])


def test_book_callback_in_validate_before_any_fit_gives_validates_numbers(mnist_dls, tmp_path):
    learn = learner(mnist_dls, tmp_path)
    loss, acc = learn.validate()
    n_valid = len(mnist_dls.valid.dataset)
    assert learn.track_results.n == n_valid
    assert learn.track_results.acc == pytest.approx(acc, abs=1e-6)
    assert learn.track_results.valid_loss == pytest.approx(loss, rel=1e-5)
    assert learn.validation_only is False  # only while the pass runs
    assert learn.recorder.values == [] and learn.recorder.history == []


def test_validation_only_passes_run_fastais_events_after_a_fit(mnist_dls, tmp_path):
    log = LogEvents()
    learn = learner(mnist_dls, tmp_path, [log])
    learn.fit(1, 1e-3)
    assert log.take() == ["before_fit", "before_epoch", "before_train", "after_batch", "before_validate",
                          "after_batch", "after_validate", "after_epoch", "after_fit"]
    n_valid = len(mnist_dls.valid.dataset)
    track = learn.track_results

    _, acc = learn.validate()
    assert log.take() == FASTAI_VALIDATE_EVENTS
    assert track.n == n_valid and track.acc == pytest.approx(acc, abs=1e-6)

    track.n = None
    preds, targs = learn.get_preds()
    assert log.take() == FASTAI_VALIDATE_EVENTS
    assert track.n == n_valid and track.acc == pytest.approx(float((preds.argmax(1) == targs).float().mean()),
                                                             abs=1e-6)

    item = get_image_files(D.path("mnist_tiny") / "valid")[0]
    track.n = None
    label, _, _ = learn.predict(item)
    assert log.take() == FASTAI_VALIDATE_EVENTS
    assert label in ("3", "7") and track.n == 0  # the epoch of this pass (one unlabelled item), not the fit's

    track.n = None
    interp = ClassificationInterpretation.from_learner(learn)
    assert log.take() == FASTAI_VALIDATE_EVENTS
    assert track.n == n_valid == int(interp.confusion_matrix().sum())

    # tta's passes are one validation-only pass: one fit and one epoch around the n + 1 validation phases
    learn.tta(n=2)
    assert log.take() == ["before_fit", "before_epoch"] + ["before_validate", "after_batch", "after_validate"] * 3 \
        + ["after_epoch", "after_fit"]


def test_temporary_callbacks_of_validate_and_get_preds_get_the_events(mnist_dls, tmp_path):
    learn = learner(mnist_dls, tmp_path)
    for run in (lambda cb: learn.validate(cbs=cb), lambda cb: learn.get_preds(cbs=[cb]),
                lambda cb: learn.get_preds(with_loss=True, cbs=cb)):
        cb = LogEvents()
        run(cb)
        assert cb.ev == FASTAI_VALIDATE_EVENTS
        assert not any(c is cb for c in learn.cbs)


def test_validation_passes_after_a_fit_leave_the_learners_callbacks_as_the_fit_left_them(mnist_dls, tmp_path,
                                                                                          monkeypatch, capsys):
    monkeypatch.setenv("PIPEKIT_QUIET", "0")  # the progress table prints for a fit, and nothing for validate
    stats = ActivationStats()
    save = SaveModelCallback(fname="best")
    stop = EarlyStoppingCallback(patience=5)
    wd = ParamScheduler({"wd": lambda pos: 0.01 * (1 - pos)})
    learn = learner(mnist_dls, tmp_path, [stats, save, stop, wd])
    learn.fit(2, 1e-3)
    assert "train_loss" in capsys.readouterr().out
    rec = learn.recorder
    kept = {k: copy.deepcopy(getattr(rec, k)) for k in
            ("values", "history", "losses", "lrs", "moms", "iters", "metric_names", "valid_losses_at", "hps")}
    assert len(kept["values"]) == 2 and kept["hps"]["wd"]
    hypers = [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups]
    pos = (learn.pct_train, learn.train_iter, learn.total_iters, learn.final_record)
    trackers = (save.best_, save.saved_, save.best_epoch_, stop.best_, stop.wait_)
    best_file = tmp_path / "models" / "best.pipekit"
    saved_at = best_file.stat().st_mtime_ns
    stats_ = {k: v.copy() for k, v in stats.stats_.items()}
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}

    learn.validate()
    learn.get_preds()
    learn.predict(get_image_files(D.path("mnist_tiny") / "valid")[0])
    ClassificationInterpretation.from_learner(learn)
    learn.tta(n=1)

    assert capsys.readouterr().out == ""  # no table, no bar, no tracker line
    assert learn.batch_wrapper is None
    assert {k: getattr(rec, k) for k in kept} == kept
    assert [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups] == hypers  # no schedule ran
    assert (learn.pct_train, learn.train_iter, learn.total_iters, learn.final_record) == pos
    assert (save.best_, save.saved_, save.best_epoch_, stop.best_, stop.wait_) == trackers
    assert best_file.stat().st_mtime_ns == saved_at  # nothing saved, nothing loaded back
    assert all(torch.equal(v, weights[k]) for k, v in learn.model.state_dict().items())
    assert stats.stats_.keys() == stats_.keys() and all((stats.stats_[k] == v).all() for k, v in stats_.items())
    # each pass was the callback's own epoch: the last, tta's plain and augmented passes over the valid set
    assert learn.track_results.n == 2 * len(mnist_dls.valid.dataset)

    # lr_find (a short fit whose validation is cancelled) still works and leaves the per-epoch history as it was;
    # the per-batch record is the sweep's, as fastai's
    learn.lr_find(num_it=8, show_plot=False)
    assert 0 < len(rec.lr_find_lrs) <= 8
    epochs = ("values", "history", "iters", "metric_names")
    assert {k: getattr(rec, k) for k in epochs} == {k: kept[k] for k in epochs}
    assert rec.lrs == rec.lr_find_lrs and rec.losses == rec.lr_find_losses and len(rec.moms) == len(rec.lrs)


def test_an_error_in_a_validation_pass_ends_it_and_the_next_fit_records(mnist_dls, tmp_path):
    class Fails(Callback):
        def after_validate(self):
            raise RuntimeError("boom")

    learn = learner(mnist_dls, tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        learn.validate(cbs=Fails())
    assert learn.validation_only is False
    learn.fit(1, 1e-3)
    assert len(learn.recorder.values) == 1 and learn.track_results.n == len(mnist_dls.valid.dataset)


def test_loggers_limits_and_kept_hooks_sit_out_validation_passes_before_and_after_a_fit(mnist_dls, tmp_path):
    class CountOutputs(HookCallback):
        def before_fit(self):
            super().before_fit()
            if not self.validation_only:  # a count over the fit's batches
                self.n_ = 0

        def hook(self, module, inp, out):
            self.n_ += 1

    hooks = CountOutputs(remove_end=False)
    log = CSVLogger("log.csv")
    learn = learner(mnist_dls, tmp_path, [log, GradientAccumulation(128), TimeLimit(600), hooks])
    learn.validate()  # before any fit: nothing to log, no limit started
    assert not (tmp_path / "log.csv").exists()
    learn.fit(1, 1e-3)
    lines = (tmp_path / "log.csv").read_text()
    kept, n = hooks.hooks, hooks.n_
    learn.validate()
    learn.get_preds()
    assert (tmp_path / "log.csv").read_text() == lines
    # the hooks the fit kept stay on the model (not replaced, not removed) and count no validation batch
    assert hooks.hooks is kept and not any(h.removed for h in kept) and hooks.n_ == n == len(mnist_dls.train)
    kept.remove()
