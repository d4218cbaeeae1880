"""SaveModelCallback(with_opt=True) reloading the best optimiser state while the learner keeps its own freezing,
epoch times of an hour or more in the progress table and CSVLogger's file (no negative or NaN times, a notebook bar
past its total has none left), and the epochs without improvement the trackers tell."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipekit.data import set_seed
from pipekit.data.progress import NotebookBar, format_time
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


def _two_layer(dls, path):
    set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 2))
    return Learner(dls, model, splitter=lambda m: [list(m[1].parameters()), list(m[3].parameters())], path=path)


def test_reloading_a_best_model_trained_frozen_keeps_the_learner_s_freezing(mnist_dls, tmp_path):
    learn = _two_layer(mnist_dls, tmp_path)
    # the worst loss: fine_tune's frozen epoch stays the best, and its checkpoint was written frozen
    cb = SaveModelCallback(monitor="valid_loss", comp=np.greater, with_opt=True, reset_on_fit=False)
    with learn.no_logging():
        learn.fine_tune(2, freeze_epochs=1, cbs=cb)
    assert cb.best_epoch_ == 0
    assert learn.opt.frozen_to == 0 and learn.opt.resume_frozen_to is None
    assert all(p.requires_grad for p in learn.model.parameters())
    learn.save("after")
    resumed = _two_layer(mnist_dls, tmp_path)
    resumed.load("after")
    assert resumed.opt.resume_frozen_to == 0
    body = [p.clone() for p in resumed.model[1].parameters()]
    with resumed.no_logging():
        resumed.fit(resumed.resume_epoch + 1, 1e-3, start_epoch=resumed.resume_epoch)
    assert all(p.requires_grad for p in resumed.model.parameters())  # the body trains, as it did when saved
    assert not all(torch.equal(a, b) for a, b in zip(body, resumed.model[1].parameters()))


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "00:00"), (0.999, "00:00"), (65.4, "01:05"), (3599.9, "59:59"), (3600, "1:00:00"), (3725, "1:02:05"),
    (36000 + 59, "10:00:59"), (90000, "25:00:00"), (-3.2, "00:00"), (-0.4, "00:00"), (-7200, "00:00"),
    (float("nan"), "--:--"), (float("inf"), "--:--"), (float("-inf"), "--:--"), (np.float32(61.5), "01:01"),
])
def test_format_time_keeps_the_hours(seconds, shown):
    assert format_time(seconds) == shown


class _Slot:
    """Keeps what a notebook output slot is given to show."""

    def __init__(self):
        self.shown = []

    def show(self, shown):
        self.shown.append(shown.text)


def test_a_notebook_bar_past_its_total_has_no_time_left():
    bar = NotebookBar(10, "train", slot=_Slot())
    bar.start -= 7.5  # 7.5 s elapsed
    bar.count = 4
    assert bar.shown().text == "train 4/10 [00:07 < 00:11]"
    bar.count = 12  # a loader that yields more batches than its len() says
    assert bar.shown().text == "train 12/10 [00:07 < 00:00]"


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
