"""Calls users make one after another in a notebook (freeze, fit, save, unfreeze, load, lr_find, an interrupted fit):
each leaves the learner as fastai's does. The numbers in the asserts are fastai 2.8.12's for the same model and data
(mnist_tiny's 3s and 7s, grey, bs=64: 11 training batches; a two-conv CNN of 8 parameter tensors, 6 of them trainable
when frozen: the head's 2 and the batch-norm layers' 4)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
from pipekit.core.errors import ParameterError
from pipekit.learn import (
    SGD,
    Callback,
    CancelFitException,
    GradientAccumulation,
    Learner,
    body_head_splitter,
    ranger,
    simple_cnn,
)

pytestmark = pytest.mark.data

N_PARAMS, N_FROZEN = 8, 6  # fastai: 8 tensors, 6 trainable after freeze()


def cnn_learner(dls, path=None, **kwargs) -> Learner:
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(n_in=1, n_out=2, channels=(4, 8)), splitter=body_head_splitter,
                   **({"path": path} if path is not None else {}), **kwargs)


def trainable(learn: Learner) -> int:
    return sum(p.requires_grad for p in learn.model.parameters())


def first_conv(learn: Learner) -> torch.Tensor:
    return learn.model[0][0][0].weight


def adam_steps(learn: Learner) -> list[int]:
    return sorted({int(s["step"]) for s in learn.opt.opt.state.values() if "step" in s})


# ------------------------------------------------------------------------------------------ load and freezing
def test_load_leaves_freezing_as_the_learner_has_it(mnist_dls, tmp_path):
    learn = cnn_learner(mnist_dls, tmp_path)
    learn.freeze()
    assert trainable(learn) == N_FROZEN
    learn.fit(1, 1e-3)
    learn.save("stage1")
    learn.unfreeze()
    learn.load("stage1")
    assert trainable(learn) == N_PARAMS  # fastai: 8 of 8, load never changes which parameters train
    before = first_conv(learn).detach().clone()
    learn.fit(1, slice(1e-5, 1e-3))
    assert not torch.equal(before, first_conv(learn).detach())  # the body trains
    # a learner that was never frozen stays trainable, one frozen before load stays frozen (fastai: 8, then 6)
    plain = cnn_learner(mnist_dls, tmp_path).load("stage1")
    assert trainable(plain) == N_PARAMS
    frozen = cnn_learner(mnist_dls, tmp_path)
    frozen.freeze()
    assert trainable(frozen.load("stage1")) == N_FROZEN


def test_a_resumed_fit_trains_what_the_checkpointed_fit_trained(mnist_dls, tmp_path):
    learn = cnn_learner(mnist_dls, tmp_path)
    learn.freeze()
    learn.fit(1, 1e-3)
    learn.save("frozen")  # one epoch done: a fit resumed from it starts at epoch 1
    resumed = cnn_learner(mnist_dls, tmp_path).load("frozen")
    assert resumed.resume_epoch == 1 and trainable(resumed) == N_PARAMS  # load itself changes nothing
    resumed.lr_find(num_it=10, show_plot=False)  # in between, it keeps what the resumed fit needs
    body = first_conv(resumed).detach().clone()
    resumed.fit(2, 1e-3, start_epoch=resumed.resume_epoch)
    assert trainable(resumed) == N_FROZEN and torch.equal(body, first_conv(resumed).detach())
    # freezing set after load is the user's choice, and the resumed fit keeps it
    chosen = cnn_learner(mnist_dls, tmp_path).load("frozen")
    chosen.unfreeze()
    body = first_conv(chosen).detach().clone()
    chosen.fit(2, 1e-3, start_epoch=chosen.resume_epoch)
    assert trainable(chosen) == N_PARAMS and not torch.equal(body, first_conv(chosen).detach())


# ------------------------------------------------------------------------------------------ optimiser state
def test_freeze_and_unfreeze_start_the_optimiser_afresh(mnist_dls):
    learn = cnn_learner(mnist_dls)
    learn.freeze()
    learn.fit(1, 1e-3)
    assert adam_steps(learn) == [11]
    learn.unfreeze()
    assert not learn.opt.opt.state
    learn.fit(1, 1e-3)
    assert adam_steps(learn) == [11]  # fastai: [11] (the head does not carry the frozen fit's 11 steps)
    learn.fit(1, 1e-3)
    assert adam_steps(learn) == [22]  # fastai: [22]
    learn.opt.clear_state()  # fastai's learn.opt.clear_state()
    assert not learn.opt.opt.state


def test_clear_state_forgets_lookaheads_slow_weights_too(mnist_dls):
    learn = cnn_learner(mnist_dls, opt_func=ranger)
    learn.fit(1, 1e-3)
    assert learn.opt.opt.state and learn.opt.opt.opt.state
    learn.freeze()
    assert not learn.opt.opt.state and not learn.opt.opt.opt.state


# ------------------------------------------------------------------------------------------ lr_find
@pytest.mark.parametrize("epoch", [5, 12])
def test_lr_find_after_training_runs_its_sweep(mnist_dls, epoch):
    # the book's fit_one_cycle(3); unfreeze(); lr_find(): a trained model's first batches' losses are low and noisy
    # (these loader epochs start with a batch scored far better than the next ones)
    mnist_dls.train.epoch = epoch
    pipekit.set_seed(0)
    learn = Learner(mnist_dls, nn.Sequential(nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU()),
                                             nn.Linear(16, 2)), splitter=body_head_splitter)
    learn.fit_one_cycle(3, 1e-2)
    learn.unfreeze()
    res = learn.lr_find(show_plot=False)
    assert len(res.lrs) > 50 and 1e-7 < res.valley < 10


def scaled_loss(factors):
    """Cross-entropy times the next factor, one per batch (a loss that is low, then noisy, or not finite)."""
    it = iter(factors)

    def loss(pred, y):
        return F.cross_entropy(pred, y) * next(it, 1.0)

    return loss


def test_lr_find_errors_say_what_helps(mnist_dls):
    pipekit.set_seed(0)
    learn = cnn_learner(mnist_dls, loss_func=scaled_loss([1.0, 0.01, 10.0]))
    with pytest.raises(ParameterError, match=r"after 3 batches; for a trained model, whose loss is low and noisy, "
                                             r"pass stop_div=False or a larger num_it \(now 10\)"):
        learn.lr_find(num_it=10, show_plot=False)
    learn = cnn_learner(mnist_dls, loss_func=scaled_loss([1.0, 1.0, math.nan]))
    with pytest.raises(ParameterError, match=r"the loss became nan after 3 batches; lower start_lr \(now 1e-07\)"), \
            pytest.warns(RuntimeWarning, match="training loss was not finite"):
        learn.lr_find(show_plot=False)


# ------------------------------------------------------------------------------------------ interrupted fits
class StopAt(Callback):
    order = 100

    def __init__(self, exc):
        self.exc = exc

    def after_batch(self):
        if self.training and self.iter == 3:
            raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt, CancelFitException])
def test_an_interrupted_gradient_accumulation_leaves_no_gradients(mnist_dls, exc):
    learn = cnn_learner(mnist_dls, opt_func=SGD)
    before = first_conv(learn).detach().clone()
    try:
        learn.fit(1, 1e-2, cbs=[GradientAccumulation(n_acc=10_000), StopAt(exc())])
    except KeyboardInterrupt:
        assert exc is KeyboardInterrupt
    assert torch.equal(before, first_conv(learn).detach())  # four batches added up, no step yet
    # nothing is left for the next fit's first step to add to its own gradient
    assert all(p.grad is None for p in learn.model.parameters())
