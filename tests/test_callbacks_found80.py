"""SaveModelCallback(with_opt=True) reloading the best optimiser state, epoch times of an hour or more in the
progress table and CSVLogger's file, and the epochs without improvement the trackers tell."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipekit.data import set_seed
from pipekit.data.progress import format_time
from pipekit.learn import CSVLogger, Callback, EarlyStoppingCallback, Learner, ReduceLROnPlateau, SaveModelCallback


def _linear(dls, **kw):
    set_seed(0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), **kw)


def _opt_tensors(learn):
    """The torch optimiser's state (AdamW: step, exp_avg, exp_avg_sq), parameter by parameter."""
    state = learn.opt.opt.state_dict()["state"]
    return {k: {name: t.clone() for name, t in v.items() if torch.is_tensor(t)} for k, v in state.items()}


def test_save_model_with_opt_reloads_the_best_epoch_s_optimiser_state(mnist_dls, tmp_path):
    learn = _linear(mnist_dls, path=tmp_path)
    cb = SaveModelCallback(monitor="valid_loss", comp=np.greater, with_opt=True)  # the worst loss: epoch 0 is best
    with learn.no_logging():
        learn.fit(3, 1e-2, cbs=cb)
    assert cb.best_epoch_ == 0
    ref = _linear(mnist_dls, path=tmp_path)
    ref.load("model", with_opt=True)  # what the best epoch's checkpoint holds
    for a, b in zip(learn.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)
    now, best = _opt_tensors(learn), _opt_tensors(ref)
    steps_per_epoch = len(mnist_dls.train)
    assert {float(s["step"]) for s in best.values()} == {float(steps_per_epoch)}
    assert now.keys() == best.keys()
    for k in best:
        assert now[k].keys() == best[k].keys()
        for name in best[k]:
            assert torch.equal(now[k][name], best[k][name]), (k, name)
    # training goes on from the best epoch's moments, not from those of the last epoch
    learn.fit(1, 1e-2)
    assert {float(s["step"]) for s in _opt_tensors(learn).values()} == {float(2 * steps_per_epoch)}


def test_save_model_without_opt_keeps_the_last_optimiser_state(mnist_dls, tmp_path):
    learn = _linear(mnist_dls, path=tmp_path)
    cb = SaveModelCallback(monitor="valid_loss", comp=np.greater)  # with_opt=False: the checkpoint has no optimiser
    with learn.no_logging():
        learn.fit(2, 1e-2, cbs=cb)
    assert cb.best_epoch_ == 0
    assert {float(s["step"]) for s in _opt_tensors(learn).values()} == {float(2 * len(mnist_dls.train))}


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "00:00"), (0.999, "00:00"), (65.4, "01:05"), (3599.9, "59:59"), (3600, "1:00:00"), (3725, "1:02:05"),
    (36000 + 59, "10:00:59"), (90000, "25:00:00"),
])
def test_format_time_keeps_the_hours(seconds, shown):
    assert format_time(seconds) == shown


class _HourLongEpoch(Callback):
    """Moves the Recorder's epoch start back 3725 s just before it closes the epoch: an epoch of 1:02:05."""
    order = 49

    def after_epoch(self):
        self.learn.recorder._epoch_start -= 3725


def _seconds(text):
    parts = [int(p) for p in text.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def test_an_hour_long_epoch_keeps_its_hours_in_the_table_and_the_csv_log(mnist_dls, tmp_path, monkeypatch, capsys):
    learn = _linear(mnist_dls, path=tmp_path)
    log = CSVLogger()
    monkeypatch.setenv("PIPEKIT_QUIET", "0")
    learn.fit(1, 1e-2, cbs=[_HourLongEpoch(), log])
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    recorded = learn.recorder.history[-1][-1]
    assert 3725 <= recorded < 3726
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    header = next(row for row in table if row and row[0] == "epoch")
    row = next(row for row in table if row and row[0] == "0")
    assert row[header.index("time")] == "1:02:05"
    assert open(log.path).read().splitlines()[-1].split(",")[-1] == "1:02:05"
    df = log.read_log()
    assert df["time"].tolist() == ["1:02:05"]
    assert [_seconds(t) for t in df["time"]] == [int(recorded)]


def _tensor_learner(tmp_path):
    import torch.nn.functional as F

    from pipekit.data import DataLoaders

    set_seed(0)
    ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    return Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), nn.Linear(4, 2), loss_func=F.cross_entropy,
                   path=tmp_path)


@pytest.mark.parametrize(("patience", "told"), [
    (0, ["epoch 1: valid_loss has not improved for 1 epoch(s); lr reduced to 0.005",
         "epoch 2: valid_loss has not improved for 1 epoch(s); lr reduced to 0.0025",
         "epoch 3: valid_loss has not improved for 1 epoch(s); lr reduced to 0.00125"]),
    (2, ["epoch 2: valid_loss has not improved for 2 epoch(s); lr reduced to 0.005"]),
])
def test_reduce_lr_on_plateau_tells_the_epochs_without_improvement(tmp_path, monkeypatch, capsys, patience, told):
    learn = _tensor_learner(tmp_path)
    cb = ReduceLROnPlateau(monitor="valid_loss", min_delta=10, patience=patience, factor=2)  # no epoch improves by 10
    monkeypatch.setenv("PIPEKIT_QUIET", "0")
    with learn.no_logging():
        learn.fit(4, 1e-2, cbs=cb)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    assert capsys.readouterr().out.splitlines() == told
    assert [epoch for epoch, _ in cb.reductions_] == [int(line.split(":")[0].split()[1]) for line in told]


@pytest.mark.parametrize(("patience", "told"), [
    (0, "No improvement since epoch 0: early stopping"),
    (2, "No improvement since epoch 0: early stopping"),
])
def test_early_stopping_tells_the_epoch_of_the_last_improvement(tmp_path, monkeypatch, capsys, patience, told):
    learn = _tensor_learner(tmp_path)
    cb = EarlyStoppingCallback(monitor="valid_loss", min_delta=10, patience=patience)
    monkeypatch.setenv("PIPEKIT_QUIET", "0")
    with learn.no_logging():
        learn.fit(5, 1e-2, cbs=cb)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    assert capsys.readouterr().out.splitlines() == [told]
    assert cb.stopped_epoch_ == max(patience, 1)
