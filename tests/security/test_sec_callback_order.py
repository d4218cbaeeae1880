"""Callbacks run in their declared order whatever order they are listed in: ``[EarlyStoppingCallback,
SaveModelCallback]`` restores the same (best) model as the reverse list. Real data: adult_sample."""
from __future__ import annotations

import inspect

import polars as pl
import pytest
import torch

import pipekit.learn as L
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.learn import Callback, EarlyStoppingCallback, SaveModelCallback, accuracy
from pipekit.learn.callbacks import GatherPreds
from pipekit.learn.callbacks import FiniteInputsCheck
from pipekit.tabular import Tabular, tabular_learner
from pipekit.text.learner import ModelResetter, RNNRegularizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "hours-per-week"]


@pytest.fixture(scope="module")
def tab() -> Tabular:
    df = pl.read_csv(path("adult_sample") / "adult.csv").head(4000)
    return Tabular(df, cat_names=CAT, cont_names=CONT, y_names="salary", splits=RandomSplitter(0.2, seed=42))


def _run(tab, tmp_path, lr, bs, early, reverse):
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=bs, seed=0), layers=[50, 20], metrics=accuracy,
                            path=tmp_path / f"{'rev' if reverse else 'fwd'}")
    save = SaveModelCallback(monitor="accuracy")
    cbs = [save, early] if reverse else [early, save]
    learn.fit(8, lr, cbs=cbs)
    recorded = [row[2] for row in learn.recorder.values]
    return learn, recorded, early.stopped_epoch_


@pytest.mark.parametrize("lr, bs, make_early", [
    # valid_loss stops improving while accuracy still improves in the epoch training stops
    (2e-2, 256, lambda: EarlyStoppingCallback(monitor="valid_loss", patience=1)),
    # accuracy improves by less than min_delta in the epoch training stops
    (2e-2, 64, lambda: EarlyStoppingCallback(monitor="accuracy", min_delta=0.01, patience=3)),
], ids=["loss-stops-accuracy-improves", "small-improvement"])
def test_both_list_orders_restore_the_best_model(tab, tmp_path, lr, bs, make_early):
    fwd, rec_fwd, stop_fwd = _run(tab, tmp_path, lr, bs, make_early(), reverse=False)
    rev, rec_rev, stop_rev = _run(tab, tmp_path, lr, bs, make_early(), reverse=True)
    assert stop_fwd is not None and stop_fwd == stop_rev and stop_fwd < 7  # early stopping did fire
    assert rec_fwd == rec_rev
    # the epoch in which training stopped improved accuracy: its model is the one to keep
    assert rec_fwd[stop_fwd] == max(rec_fwd)
    acc_fwd, acc_rev = fwd.validate()[1], rev.validate()[1]
    assert acc_fwd == acc_rev == max(rec_fwd)
    for (k, a), b in zip(fwd.model.state_dict().items(), rev.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_early_stopping_lets_every_callback_finish_the_epoch(tab, tmp_path):
    seen = []

    class Late(Callback):
        order = 90  # runs after EarlyStoppingCallback

        def after_epoch(self):
            seen.append(self.learn.epoch)

    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[50, 20], metrics=accuracy, path=tmp_path)
    es = EarlyStoppingCallback(monitor="valid_loss", patience=2)
    learn.fit(8, 2e-2, cbs=[es, Late()])
    assert es.stopped_epoch_ is not None and seen == list(range(es.stopped_epoch_ + 1))
    assert len(learn.recorder.values) == es.stopped_epoch_ + 1


def test_builtin_callbacks_have_distinct_documented_orders():
    classes = [c for _, c in inspect.getmembers(L, inspect.isclass) if issubclass(c, Callback) and c is not Callback]
    classes += [GatherPreds, FiniteInputsCheck, ModelResetter, RNNRegularizer]
    orders = {c.__name__: c.order for c in set(classes)}
    assert len(set(orders.values())) == len(orders), orders
    # early stopping decides first (its stop waits for the end of the epoch), then the checkpoint is written
    assert orders["Recorder"] < orders["EarlyStoppingCallback"] < orders["SaveModelCallback"]
    doc = L.callbacks.__doc__
    for name, order in orders.items():
        assert f"{order:>4}   {name}" in doc, name
