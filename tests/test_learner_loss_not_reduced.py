"""fastai's ``learn.loss_not_reduced()`` (the loss of each item inside the block, as ``get_preds(with_loss=True)``
gives them) and ``learn.smooth_loss`` / a callback's ``self.smooth_loss`` (the Recorder's smoothed training loss,
up to the batch just run for a callback after the Recorder, as in fastai 2.8.12), on mnist_tiny and adult_sample."""
from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders, TensorStore
from pipekit.learn import Callback, CrossEntropyLossFlat, Learner, MSELossFlat

pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def _mnist(mnist_dls, loss_func) -> Learner:
    pipekit.set_seed(0)
    return Learner(mnist_dls, _cnn(), loss_func=loss_func)


@pytest.fixture(scope="module")
def adult_reg():
    """adult_sample's hours-per-week (standardised) from age, education-num and fnlwgt: 256 rows to train, 64 to
    validate."""
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(320)
    x = df.select(["age", "education-num", "fnlwgt"]).fill_null(0).to_numpy().astype("float32")
    y = df.select(["hours-per-week"]).fill_null(0).to_numpy().astype("float32")
    x, y = (x - x.mean(0)) / x.std(0), (y - y.mean(0)) / y.std(0)
    return DataLoaders.from_stores([TensorStore(x[:256]), TensorStore(y[:256])],
                                   [TensorStore(x[256:]), TensorStore(y[256:])], bs=32, seed=0, device="cpu")


def _first_valid_batch(dls):
    xb, yb = next(iter(dls.valid))
    return xb, yb


def _check_per_item(learn: Learner, xb, yb) -> torch.Tensor:
    """The loss per item inside the block equals get_preds(with_loss=True)'s for the same batch, and the loss
    reduces to their mean again after it."""
    learn.model.eval()
    with torch.no_grad():
        pred = learn.model(xb)
        with learn.loss_not_reduced():
            per_item = learn.loss_func(pred, yb)
        reduced = learn.loss_func(pred, yb)
    _, _, losses = learn.get_preds(dl=[(xb, yb)], with_loss=True)
    assert per_item.shape == losses.shape == (len(xb),)
    torch.testing.assert_close(per_item.float().cpu(), losses, rtol=1e-5, atol=1e-6)
    assert reduced.ndim == 0
    torch.testing.assert_close(reduced, per_item.mean(), rtol=1e-5, atol=1e-6)
    return per_item


@pytest.mark.parametrize("loss_func", [CrossEntropyLossFlat(), nn.CrossEntropyLoss(), F.cross_entropy],
                         ids=["CrossEntropyLossFlat", "nn.CrossEntropyLoss", "F.cross_entropy"])
def test_loss_not_reduced_gives_get_preds_losses_per_item(mnist_dls, loss_func):
    learn = _mnist(mnist_dls, loss_func)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    xb, yb = _first_valid_batch(mnist_dls)
    per_item = _check_per_item(learn, xb, yb)
    assert len(set(per_item.tolist())) > 1  # one loss per image, not the batch's mean repeated
    assert learn.loss_func is loss_func
    if hasattr(loss_func, "reduction"):
        assert loss_func.reduction == "mean"


def test_loss_not_reduced_mse_on_a_regression(adult_reg):
    pipekit.set_seed(0)
    learn = Learner(adult_reg, nn.Linear(3, 1), loss_func=MSELossFlat())
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    xb, yb = _first_valid_batch(adult_reg)
    per_item = _check_per_item(learn, xb, yb)
    pred = learn.model(xb).detach()
    torch.testing.assert_close(per_item, ((pred - yb) ** 2).reshape(-1))


@pytest.mark.parametrize("loss_func", [CrossEntropyLossFlat(), F.cross_entropy], ids=["reducible", "function"])
def test_loss_reduces_again_after_an_error_in_the_block(mnist_dls, loss_func):
    learn = _mnist(mnist_dls, loss_func)
    xb, yb = _first_valid_batch(mnist_dls)
    with torch.no_grad():
        pred = learn.model(xb)
    with pytest.raises(RuntimeError, match="inside"):
        with learn.loss_not_reduced():
            assert learn.loss_func(pred, yb).shape == (len(xb),)
            raise RuntimeError("inside the block")
    assert learn.loss_func is loss_func
    assert learn.loss_func(pred, yb).ndim == 0
    if hasattr(loss_func, "reduction"):
        assert loss_func.reduction == "mean"
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)  # trains on the reduced loss (a per-item one would fail in backward)
    assert math.isfinite(learn.recorder.values[-1][0])


def test_loss_not_reduced_refuses_a_function_without_reduction(mnist_dls):
    def loss(pred, targ):
        return F.cross_entropy(pred, targ)

    learn = _mnist(mnist_dls, loss)
    with pytest.raises(ParameterError, match=r"loss_not_reduced\(\).*reduction='none'"):
        with learn.loss_not_reduced():
            pass
    assert learn.loss_func is loss


class WatchSmooth(Callback):
    """Reads the smoothed loss in every batch after the Recorder, as fastai users' callbacks do."""

    order = 60

    def before_fit(self):
        self.raw, self.seen, self.valid_seen = [], [], []

    def after_batch(self):
        if self.training:
            self.raw.append(float(self.loss))
            self.seen.append((self.smooth_loss, self.learn.smooth_loss, self.learn.recorder.smooth_loss))
        else:
            self.valid_seen.append(self.smooth_loss)


def test_callback_reads_smooth_loss_up_to_the_batch_just_run(mnist_dls):
    learn = _mnist(mnist_dls, CrossEntropyLossFlat())
    assert learn.smooth_loss is None  # no training batch yet
    watch = WatchSmooth()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2, cbs=watch)
    assert len(watch.seen) == len(learn.recorder.losses) == len(mnist_dls.train) > 3
    ema, beta = 0.0, learn.recorder.beta
    for i, (v, (own, on_learn, on_recorder)) in enumerate(zip(watch.raw, watch.seen), 1):
        ema = beta * ema + (1 - beta) * v
        assert own == on_learn == on_recorder == learn.recorder.losses[i - 1]
        assert own == pytest.approx(ema / (1 - beta ** i), rel=1e-6)  # fastai's value: this batch included
    # validation leaves it at the last training batch's; so does the end of the fit
    assert watch.valid_seen and set(watch.valid_seen) == {watch.seen[-1][0]}
    assert learn.smooth_loss == watch.seen[-1][0]
    # reading it every batch leaves the epoch's train loss the mean over all its items
    sizes = [len(b[0]) for b in mnist_dls.train]
    assert learn.recorder.values[-1][0] == pytest.approx(np.average(watch.raw, weights=sizes), rel=1e-5)


class NanAt(Callback):
    """Makes the recorded loss of training batch ``at`` NaN (before the Recorder reads it)."""

    order = 40

    def __init__(self, at):
        self.at = at

    def after_loss(self):
        if self.training and self.iter == self.at:
            self.learn.loss = torch.full_like(self.learn.loss, float("nan"))


def test_non_finite_losses_are_reported_once_per_epoch_when_smooth_loss_is_read(mnist_dls):
    learn = Learner(mnist_dls, _cnn(), loss_func=CrossEntropyLossFlat(), terminate_on_nan=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, 1e-2, cbs=[NanAt(2), WatchSmooth()])
    said = [str(x.message) for x in w if "not finite" in str(x.message)]
    assert len(said) == 1 and "in 1 batch(es)" in said[0] and "first: batch 2" in said[0]
