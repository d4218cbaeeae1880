"""The book's training loop as fastai runs it, on mnist_tiny: a callback adding a penalty to ``learn.loss`` in place
with a loss ending in ``sqrt`` (chapter 16), ``fine_tune`` on a model of one parameter group (chapter 7's progressive
resizing) and chapter 16's step-function ``Optimizer`` used on its own with ``hypers`` and ``set_hypers``."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import SGD, Callback, Learner, Optimizer, simple_cnn
from pipekit.vision import ImageBlock

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mnist(step: int = 4):
    """A quarter of mnist_tiny's 3s and 7s, grey, 28x28: loaders of their own, the same batches in the same order."""
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::step],
                       get_y=parent_label, splitter=GrandparentSplitter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return dblock.dataloaders(D.path("mnist_tiny"), bs=32, seed=0)


def rmse(pred, targ):  # the book's loss whose last op (sqrt) keeps its output for backward
    return torch.sqrt(F.mse_loss(pred, F.one_hot(targ, pred.shape[1]).float()))


class WeightPenalty(Callback):
    """Chapter 16's spelling: a penalty added to learn.loss in place."""
    def after_loss(self):
        if not self.training:
            return
        self.learn.loss += 0.01 * sum(p.pow(2).sum() for p in self.learn.model.parameters())


def weights(learn):
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()])


def learner(cbs=None):
    pipekit.set_seed(0)
    return Learner(mnist(), simple_cnn(n_in=1, n_out=2, channels=(4, 8)), loss_func=rmse, cbs=cbs)


# ------------------------------------------------------------------ learn.loss += penalty with an RMSE loss
def test_an_in_place_penalty_on_learn_loss_with_a_sqrt_loss_trains_and_is_recorded():
    plain = learner()
    init = weights(plain)
    plain.fit(1, 1e-2)
    learn = learner(WeightPenalty())
    with pytest.warns(UserWarning, match=r"changed learn.loss in after_loss but not learn.loss_grad") as caught:
        learn.fit(1, 1e-2)  # a view of loss_grad changed in place made backward fail ("output 0 of Sqrt")
    assert sum("learn.loss_grad" in str(w.message) for w in caught) == 1  # once, not once per batch
    torch.testing.assert_close(weights(learn), weights(plain))  # backward used loss_grad alone, as fastai's
    assert not torch.equal(weights(learn), init)  # it trained
    assert learn.recorder.values[-1][0] > plain.recorder.values[-1][0]  # the record has the penalty
    assert learn.recorder.values[-1][1] == pytest.approx(plain.recorder.values[-1][1])  # validation has none


def test_learn_loss_is_a_tensor_of_its_own_during_after_loss():
    seen = {}

    class Peek(Callback):
        def after_loss(self):
            if self.training and not seen:
                seen["same_storage"] = self.learn.loss.data_ptr() == self.learn.loss_grad.data_ptr()
                seen["equal"] = bool(self.learn.loss == self.learn.loss_grad.detach())
                seen["grad"] = self.learn.loss.requires_grad

    learner(Peek()).fit(1, 1e-2)
    assert seen == {"same_storage": False, "equal": True, "grad": False}


# ------------------------------------------------------------------ fine_tune on one parameter group
def test_fine_tune_of_one_group_runs_the_frozen_phase_too_as_fastai():
    fits, epochs = [], [0]

    class Count(Callback):
        order = -100  # before the schedule moves the rate: fit has set it to the fit's peak

        def before_fit(self):
            fits.append(self.learn.opt.lrs)

        def before_epoch(self):
            epochs[0] += 1

    pipekit.set_seed(0)
    learn = Learner(mnist(), simple_cnn(n_in=1, n_out=2, channels=(4, 8)), cbs=Count())
    assert learn.optimizer.n_groups == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to freeze is no reason to warn: fastai runs both phases
        learn.fine_tune(2, base_lr=1e-2)
    assert epochs[0] == 1 + 2  # freeze_epochs + epochs, where skipping the frozen phase ran 2
    assert len(learn.recorder.values) == 2  # the recorder holds the last fit's rows
    assert fits == [[pytest.approx(1e-2)], [pytest.approx(1e-2 / 2)]]  # slice(base_lr), then base_lr / 2
    assert all(p.requires_grad for p in learn.model.parameters())


# ------------------------------------------------------------------ Optimizer / SGD on their own: hypers, set_hypers
def sgd_cb(p, lr, **kwargs):  # chapter 16's step function
    p.data.add_(p.grad.data, alpha=-lr)


def one_step(model, opt, xb, yb, start):
    """Load ``start`` into ``model``, take one step of ``opt`` on a batch and return how far the weights moved."""
    with torch.no_grad():
        for p, s in zip(model.parameters(), start):
            p.copy_(s)
    F.cross_entropy(model(*xb), *yb).backward()
    opt.step()
    opt.zero_grad()
    return torch.cat([(p.detach() - s).flatten() for p, s in zip(model.parameters(), start)])


def test_the_books_optimizer_on_its_own_has_live_hypers_and_set_hypers():
    b = next(iter(mnist().train))
    xb, yb = b[:1], b[1:]
    pipekit.set_seed(0)
    model = simple_cnn(n_in=1, n_out=2, channels=(4, 8))
    start = [p.detach().clone() for p in model.parameters()]
    opt = Optimizer(model.parameters(), [sgd_cb], lr=0.1)
    assert opt.hypers == [{"lr": 0.1, "wd": 0.0}]  # one dict per parameter group, as fastai's
    big = one_step(model, opt, xb, yb, start)
    assert big.abs().max() > 0
    opt.set_hypers(lr=0.01)
    assert opt.hypers[0]["lr"] == 0.01 and opt.param_groups[0]["lr"] == 0.01
    torch.testing.assert_close(one_step(model, opt, xb, yb, start), big / 10)  # the step is a tenth
    opt.hypers[0]["lr"] = 0.05  # the dicts are live: the next step uses it
    torch.testing.assert_close(one_step(model, opt, xb, yb, start), big / 2)


def test_sgd_hypers_per_group_from_a_list_or_a_slice():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = SGD([{"params": model[0].parameters()}, {"params": model[1].parameters()}], lr=0.1)
    assert opt.hypers == [{"lr": 0.1, "mom": 0.0, "wd": 0.0}] * 2
    opt.set_hypers(lr=[1e-3, 1e-2], wd=0.1)
    assert [h["lr"] for h in opt.hypers] == [1e-3, 1e-2] and [h["wd"] for h in opt.hypers] == [0.1, 0.1]
    opt.set_hypers(lr=slice(1e-4, 1e-2))
    assert [h["lr"] for h in opt.hypers] == [pytest.approx(1e-4), pytest.approx(1e-2)]
    with pytest.raises(ParameterError, match="3 learning rates for 2 parameter groups"):
        opt.set_hypers(lr=[1e-3, 1e-2, 1e-1])


def test_the_books_step_functions_bring_their_own_hyper_parameters_and_bad_values_are_named():
    """Chapter 16's ``partial(Optimizer, cbs=[average_grad, momentum_step])`` starts from the step functions'
    defaults (mom=0.9, as fastai's), ``set_hypers(mom=...)`` sets what they read, and a value that is not a number
    is refused naming the hyper-parameter (lr=None made every weight NaN)."""
    from functools import partial

    from pipekit.core.errors import ParameterError
    from pipekit.learn.optim import Optimizer, average_grad, momentum_step

    w = torch.nn.Parameter(torch.ones(3))
    opt = partial(Optimizer, cbs=[average_grad, momentum_step])([w], lr=0.1)
    assert opt.hypers == [{"lr": 0.1, "mom": 0.9, "wd": 0.0}]
    w.grad = torch.ones(3)
    opt.step()
    opt.set_hypers(mom=0.5)
    opt.step()  # grad_avg = 0.5 * 1 + 1 = 1.5
    assert torch.allclose(w.data, torch.full((3,), 1 - 0.1 - 0.15))
    with pytest.raises(ParameterError, match=r"set_hyper: lr=None is not a number"):
        opt.set_hypers(lr=None)
    with pytest.raises(ParameterError, match=r"got 2 values of wd for 1 parameter groups"):
        opt.set_hypers(wd=[1e-2, 1e-3])
    assert opt.hypers[0]["lr"] == 0.1 and torch.isfinite(w.data).all()
