"""``Recorder(train_metrics=..., valid_metrics=...)``, as fastai's: the metrics measured on the training batches too
(``train_<metric>`` beside ``valid_<metric>``), or no validation values at all, and everything reading the record
(values, the progress table, trackers, CSVLogger) following the columns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.learn import (
    Callback,
    CSVLogger,
    EarlyStoppingCallback,
    Learner,
    Recorder,
    SaveModelCallback,
    accuracy,
)
from pipekit.learn.callbacks import ProgressCallback
from pipekit.learn.callbacks import training as training_mod


class HandAccuracy(Callback):
    """Accuracy over each epoch's training batches, counted by hand from the predictions the model made."""

    order = 99

    def before_epoch(self) -> None:
        self.right, self.seen, self.modes = 0, 0, set()

    def after_batch(self) -> None:
        learn = self.learn
        if learn.training:
            self.modes.add(learn.model.training)
            self.right += int((learn.pred.argmax(1) == learn.yb[0]).sum())
            self.seen += len(learn.yb[0])

    def after_epoch(self) -> None:
        self.accs = [*getattr(self, "accs", []), self.right / self.seen]


def _model() -> nn.Module:
    torch.manual_seed(0)  # dropout: predictions in training mode differ from evaluation mode
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(28 * 28, 2))


def _learner(dls, **kw) -> Learner:
    return Learner(dls, _model(), metrics=accuracy, **kw)


def test_train_metrics_are_the_training_batches_accuracy_beside_the_validation_one(mnist_dls):
    learn = _learner(mnist_dls)
    learn.recorder.train_metrics = True
    hand = HandAccuracy()
    learn.fit(2, 1e-2, cbs=hand)
    rec = learn.recorder
    assert rec.metric_names == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_accuracy",
        "time",
    ]
    assert hand.modes == {True}  # measured as the model predicted in training mode
    assert [len(v) for v in rec.values] == [4, 4]
    assert [v[1] for v in rec.values] == pytest.approx(hand.accs, abs=1e-6)
    assert [rec.value("train_accuracy", e) for e in (0, 1)] == pytest.approx(hand.accs, abs=1e-6)
    assert rec.log[2] == pytest.approx(hand.accs[-1], abs=1e-6)
    # the validation columns are what validate() measures on the fitted model
    valid_loss, valid_acc = learn.validate()
    assert rec.values[-1][2:] == pytest.approx([valid_loss, valid_acc], abs=1e-6)
    assert learn.final_record == rec.values[-1]
    assert rec.metric("train_accuracy") is rec.metric("valid_accuracy") is rec.metrics[0]
    assert rec.measured_on_train("train_accuracy") and not rec.measured_on_train("valid_accuracy")
    assert rec.valid_losses_at[-1][1] == rec.values[-1][2]


def test_the_defaults_record_as_before(mnist_dls):
    learn = _learner(mnist_dls)
    learn.fit(1, 1e-2)
    rec = learn.recorder
    assert (rec.train_metrics, rec.valid_metrics) == (False, True)
    assert rec.metric_names == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert rec.values[-1][1:] == pytest.approx(learn.validate(), abs=1e-6)


def test_a_recorder_built_with_train_metrics_replaces_the_learners(mnist_dls):
    learn = _learner(mnist_dls, cbs=Recorder(train_metrics=True))
    hand = HandAccuracy()
    learn.fit(1, 1e-2, cbs=hand)
    assert learn.recorder.train_metrics
    assert learn.recorder.value("train_accuracy") == pytest.approx(hand.accs[0], abs=1e-6)
    with pytest.raises(ParameterError, match="train_metrics"):
        Recorder(train_metrics="yes")
    learn.recorder.valid_metrics = None
    with pytest.raises(ParameterError, match="valid_metrics"):
        learn.fit(1, 1e-2)


def test_valid_metrics_false_records_the_training_side_only(mnist_dls):
    learn = _learner(mnist_dls, cbs=Recorder(train_metrics=True, valid_metrics=False))
    hand = HandAccuracy()
    learn.fit(1, 1e-2, cbs=hand)
    rec = learn.recorder
    assert rec.metric_names == ["epoch", "train_loss", "accuracy", "time"]  # fastai's names
    assert len(rec.values[-1]) == 2 and rec.values[-1][1] == pytest.approx(hand.accs[0], abs=1e-6)
    assert rec.measured_on_train("accuracy") and rec.valid_losses_at == []
    # validate() still measures the validation set when asked
    loss, acc = learn.validate()
    assert loss > 0 and 0 <= acc <= 1

    rec.train_metrics = False
    learn.fit(1, 1e-2)
    assert rec.metric_names == ["epoch", "train_loss", "time"]
    assert len(rec.values[-1]) == 1 and rec.values[-1][0] > 0


def test_trackers_monitor_train_columns_and_name_valid_metrics_false(mnist_dls, tmp_path):
    learn = _learner(mnist_dls, path=tmp_path)
    learn.recorder.train_metrics = True
    hand = HandAccuracy()
    save = SaveModelCallback(monitor="train_accuracy", fname="best")
    learn.fit(3, 1e-2, cbs=[hand, save])
    assert save.best == pytest.approx(max(hand.accs), abs=1e-6)  # higher is better, as accuracy's
    assert save.best_epoch_ == hand.accs.index(max(hand.accs))

    learn.recorder.valid_metrics = False
    stop = EarlyStoppingCallback(monitor="accuracy", patience=0)
    learn.fit(1, 1e-2, cbs=stop)  # the training batches' accuracy, no validation needed
    assert stop.best == pytest.approx(learn.recorder.values[-1][1])
    with pytest.raises(ParameterError, match="valid_metrics=False"):
        learn.fit(1, 1e-2, cbs=EarlyStoppingCallback(monitor="valid_loss"))


def test_csv_logger_and_progress_tables_follow_the_columns(mnist_dls, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    learn = _learner(mnist_dls, path=tmp_path)
    learn.recorder.train_metrics = True
    log = CSVLogger("history.csv")
    learn.fit(2, 1e-2, cbs=[log, ProgressCallback(show_bar=False)])
    names = ["epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "time"]
    df = log.read_log()
    assert list(df.columns) == names
    assert df[names[1:-1]].to_numpy().ravel().tolist() == pytest.approx(sum(learn.recorder.values, []))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == names
    assert [float(c) for c in printed[-1].split()[1:5]] == pytest.approx(learn.recorder.values[-1], abs=1e-6)

    shown = []

    class FakeSlot:  # a notebook's output area: what the table shows
        def show(self, s):
            shown.append(s)

    monkeypatch.setattr(training_mod, "in_notebook", lambda: True)
    monkeypatch.setattr(training_mod, "Slot", FakeSlot)
    learn.fit(1, 1e-2, cbs=ProgressCallback(show_bar=False))
    assert "".join(f"<th>{n}</th>" for n in names) in shown[-1].html_text
    assert shown[-1].text.splitlines()[0].split() == names
