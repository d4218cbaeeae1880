"""Callbacks, metric names and optimisers as fastai users write them: a callback that cancels the fit or an epoch in
its ``before_`` event, fastai's metric names in ``monitor=``, ``SaveModelCallback(every_epoch=n)``,
``Adam(decouple_wd=False)``, ``RAdam(beta=)`` / ``ranger(beta=)`` and ``MixedPrecision()`` on a CPU. Reference values
were computed with fastai 2.8.12 on the same inputs."""
from __future__ import annotations

import csv
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders, TensorStore
from pipekit.learn import (
    CSVLogger, Callback, CancelEpochException, CancelFitException, CrossEntropyLossFlat, EarlyStoppingCallback,
    F1ScoreMulti, Learner, MixedPrecision, Precision, PrecisionMulti, Recall, RecallMulti, ReduceLROnPlateau, RocAuc,
    RocAucBinary, RocAucMulti, SaveModelCallback, ShowGraphCallback, accuracy,
)
from pipekit.learn.optim import Adam, RAdam, ranger
from pipekit.metrics import BalancedAccuracy, CohenKappa, F1Score, MatthewsCorrCoef

pytestmark = pytest.mark.data


def adult_learner(adult_xy, **kw):
    """The adult rows of conftest's ``adult_xy``: 384 to train, 128 to validate, a small MLP."""
    x, y = adult_xy
    dls = DataLoaders.from_stores([TensorStore(x[:384]), TensorStore(y[:384])],
                                  [TensorStore(x[384:]), TensorStore(y[384:])], bs=64, seed=0, device="cpu")
    pipekit.set_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), **{"metrics": accuracy, **kw})


def mnist_learner(mnist_dls, **kw):
    pipekit.set_seed(0)
    return Learner(mnist_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), **{"metrics": accuracy, **kw})


def _weights(learn):
    return [p.detach().clone() for p in learn.model.parameters()]


class Events(Callback):
    """Notes the fit and epoch events it sees (``order`` sets where it runs)."""

    def __init__(self, order=0, cancel=None):
        self.order, self.cancel, self.seen = order, cancel, []

    def before_fit(self):
        self.seen.append("before_fit")
        if self.cancel == "fit":
            raise CancelFitException()

    def before_epoch(self):
        self.seen.append("before_epoch")
        if self.cancel == "epoch" and self.epoch == 0:
            raise CancelEpochException()

    def after_cancel_fit(self):
        self.seen.append("after_cancel_fit")

    def after_cancel_epoch(self):
        self.seen.append("after_cancel_epoch")

    def after_epoch(self):
        self.seen.append("after_epoch")

    def after_fit(self):
        self.seen.append("after_fit")


# -- a cancel in a before_ event ---------------------------------------------------------------------------------
def test_cancel_fit_in_before_fit_returns_having_trained_nothing(mnist_dls, tmp_path):
    stop, later = Events(order=0, cancel="fit"), Events(order=70)
    learn = mnist_learner(mnist_dls, path=tmp_path, cbs=[stop, later])
    before = _weights(learn)
    log = CSVLogger(fname="log.csv")
    # fastai: the fit returns normally; the Recorder, the one-cycle schedule, the logger and the graph, whose
    # before_fit never ran, are not asked to end the fit
    learn.fit_one_cycle(1, 1e-3, cbs=[log, ShowGraphCallback(), SaveModelCallback(), EarlyStoppingCallback()])
    learn.fit(1, 1e-3)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(learn)))
    assert learn.recorder.values == [] and not (tmp_path / "log.csv").exists()
    # the callback that cancelled ends what it began, as in fastai; one after it never began the fit
    assert stop.seen == ["before_fit", "after_cancel_fit", "after_fit"] * 2
    assert later.seen == []


def test_cancel_epoch_in_before_epoch_skips_that_epoch(adult_xy, tmp_path):
    skip = Events(order=0, cancel="epoch")
    learn = adult_learner(adult_xy, path=tmp_path, cbs=[skip])
    log = CSVLogger(fname="log.csv")
    learn.fit(3, 1e-2, cbs=[log, EarlyStoppingCallback(patience=5), ReduceLROnPlateau(patience=5)])
    # epoch 0 was skipped whole: no row for it, and epoch 1's training loss is its own batches' alone
    assert [r[0] for r in learn.recorder.history] == [1, 2]
    assert skip.seen[:3] == ["before_fit", "before_epoch", "after_cancel_epoch"]
    with open(tmp_path / "log.csv", newline="") as f:
        assert [row[0] for row in csv.reader(f)] == ["epoch", "1", "2"]
    train_loss = learn.recorder.values[0][0]
    assert len(learn.recorder.losses) == 2 * 6 and np.isfinite(train_loss)


# -- metric names ------------------------------------------------------------------------------------------------
#: the names fastai 2.8.12 gives these metrics (``m.name``), which a Learner records and shows
FASTAI_NAMES = [
    (accuracy, "accuracy"), (F1Score(), "f1_score"), (F1Score(average="macro"), "f1_score"),
    (Precision(), "precision_score"), (Recall(), "recall_score"), (RocAuc(), "roc_auc_score"),
    (RocAucBinary(), "roc_auc_score"), (RocAucMulti(), "roc_auc_score"), (BalancedAccuracy(), "balanced_accuracy_score"),
    (MatthewsCorrCoef(), "matthews_corrcoef"), (CohenKappa(), "cohen_kappa_score"), (F1ScoreMulti(), "f1_score"),
    (PrecisionMulti(), "precision_score"), (RecallMulti(), "recall_score"),
]


@pytest.mark.parametrize("metric,name", FASTAI_NAMES, ids=[n for _, n in FASTAI_NAMES])
def test_metric_names_are_fastais(metric, name):
    assert metric.name == name


def test_fastai_metric_names_are_recorded_logged_and_monitored(adult_xy, tmp_path):
    learn = adult_learner(adult_xy, path=tmp_path, metrics=[accuracy, RocAucBinary(), Precision(), Recall()])
    stop = EarlyStoppingCallback(monitor="roc_auc_score", patience=3)
    learn.fit_one_cycle(2, 1e-2, cbs=[stop, CSVLogger(fname="log.csv")])
    names = ["epoch", "train_loss", "valid_loss", "accuracy", "roc_auc_score", "precision_score", "recall_score",
             "time"]
    assert learn.recorder.metric_names == names
    with open(tmp_path / "log.csv", newline="") as f:
        assert next(csv.reader(f)) == names
    aucs = [r[names.index("roc_auc_score")] for r in learn.recorder.history]
    assert stop.best_ == pytest.approx(max(aucs)) and 0.5 < max(aucs) <= 1


def test_former_pipekit_metric_names_still_monitor_one_metric(adult_xy, tmp_path):
    learn = adult_learner(adult_xy, path=tmp_path, metrics=[accuracy, RocAucBinary(), Precision()])
    save = SaveModelCallback(monitor="roc_auc_binary", fname="best")
    stop = EarlyStoppingCallback(monitor="precision", patience=5)
    learn.fit(6, 3e-2, cbs=[save, stop])
    aucs, precisions = [r[4] for r in learn.recorder.history], [r[5] for r in learn.recorder.history]
    assert save.best_ == pytest.approx(max(aucs)) and (tmp_path / "models" / "best.pipekit").exists()
    assert stop.best_ == pytest.approx(max(precisions)) and max(precisions) > 0
    assert learn.recorder.value("roc_auc_binary") == learn.recorder.value("roc_auc_score") == aucs[-1]
    # a former name that fits two recorded metrics is refused, naming them
    two = adult_learner(adult_xy, path=tmp_path, metrics=[RocAuc(), RocAuc(average="weighted")])
    with pytest.raises(ParameterError, match=r"'roc_auc' is another name of 2 recorded metrics.*roc_auc_score_2"):
        two.fit(1, 1e-2, cbs=EarlyStoppingCallback(monitor="roc_auc"))
    with pytest.raises(ParameterError, match="cannot monitor 'f1'"):
        two.fit(1, 1e-2, cbs=EarlyStoppingCallback(monitor="f1"))


# -- SaveModelCallback(every_epoch=n) ------------------------------------------------------------------------------
def test_save_model_every_n_epochs_saves_the_multiples_of_n(adult_xy, tmp_path):
    learn = adult_learner(adult_xy, path=tmp_path)
    every2 = SaveModelCallback(every_epoch=2, fname="ep")
    learn.fit(5, 1e-2, cbs=every2)
    assert [p.name for p in every2.saved_] == ["ep_0.pipekit", "ep_2.pipekit", "ep_4.pipekit"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["ep_0.pipekit", "ep_2.pipekit", "ep_4.pipekit"]
    each = SaveModelCallback(every_epoch=True, fname="all")
    learn.fit(2, 1e-2, cbs=each)
    assert [p.name for p in each.saved_] == ["all_0.pipekit", "all_1.pipekit"]
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ParameterError, match="every_epoch"):
            SaveModelCallback(every_epoch=bad)


# -- optimisers --------------------------------------------------------------------------------------------------
#: weights of ``linspace(-1, 1, 5)`` after 8 steps on ``torch.randn(5)`` gradients (generator seed 0), by fastai
FASTAI_WEIGHTS = {
    "Adam l2": [-1.009818, -0.483404, 0.027046, 0.473696, 1.068011],
    "RAdam beta": [-1.012328, -0.500566, 0.039252, 0.490163, 1.045922],
    "RAdam beta l2": [-1.007417, -0.497541, 0.039389, 0.487121, 1.04177],
    "ranger beta": [-1.006302, -0.499697, 0.020556, 0.494608, 1.023041],
}
OPTIMISERS = {
    "Adam l2": partial(Adam, lr=0.01, wd=0.1, decouple_wd=False),
    "Adam l2 unfused": partial(Adam, lr=0.01, wd=0.1, decouple_wd=False, fused=False),
    "RAdam beta": partial(RAdam, lr=0.01, beta=0.5),
    "RAdam beta l2": partial(RAdam, lr=0.01, beta=2.0, wd=0.1, decouple_wd=False),
    "ranger beta": partial(ranger, lr=0.01, beta=0.5),
}


@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_optimiser_arguments_of_fastai_take_fastais_steps(name):
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=g) for _ in range(8)]
    w = nn.Parameter(torch.linspace(-1, 1, 5))
    opt = OPTIMISERS[name]([{"params": [w]}])
    for grad in grads:
        w.grad = grad.clone()
        opt.step()
        opt.zero_grad()
    np.testing.assert_allclose(w.detach().numpy(), FASTAI_WEIGHTS[name.replace(" unfused", "")], atol=2e-6)


def test_adam_l2_and_ranger_beta_train_a_learner(adult_xy):
    for opt_func in (partial(Adam, decouple_wd=False), partial(ranger, beta=0.5)):
        learn = adult_learner(adult_xy, opt_func=opt_func)
        learn.fit_one_cycle(2, 1e-2)
        assert learn.recorder.values[-1][2] > 0.7  # accuracy: the model learned
    with pytest.raises(ParameterError, match="beta"):
        RAdam([nn.Parameter(torch.zeros(2))], lr=0.1, beta=-1.0)


# -- MixedPrecision on a CPU ---------------------------------------------------------------------------------------
def test_mixed_precision_on_a_cpu_says_once_that_it_does_nothing(adult_xy):
    mp = MixedPrecision()
    learn = adult_learner(adult_xy, cbs=mp)
    with pytest.warns(UserWarning, match=r"MixedPrecision does nothing on cpu.*to_bf16\(\)"):
        learn.fit(1, 1e-2)
    assert mp.active is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not at every fit
        learn.fit(1, 1e-2)
        adult_learner(adult_xy, cbs=MixedPrecision(cpu=True)).fit(1, 1e-2)  # bf16 on the CPU, as asked: nothing to say
