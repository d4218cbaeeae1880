"""Chapter 16's optimisers written as step functions (``Optimizer(cbs=[...])``) train exactly as torch's own,
on adult's continuous columns."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

import pipekit
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders, TensorStore
from pipekit.learn import SGD, Adam, CrossEntropyLossFlat, Learner, MLP
from pipekit.learn.optim import (
    Optimizer, adam_step, average_grad, average_sqr_grad, l2_reg, momentum_step, sgd_step, step_stat, weight_decay,
)


def trained(adult_xy, opt_func, fit=lambda learn: learn.fit(2, 0.05)):
    x, y = adult_xy
    dls = DataLoaders.from_stores([TensorStore(x[:448]), TensorStore(y[:448])], [TensorStore(x[448:]), TensorStore(y[448:])],
                                  bs=64, seed=0, device="cpu")
    pipekit.set_seed(0)
    learn = Learner(dls, MLP(4, 2, layers=[16]), loss_func=CrossEntropyLossFlat(), opt_func=opt_func)
    fit(learn)
    return learn


def same_weights(a, b, atol=1e-6):
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=atol)


def test_sgd_step_is_plain_sgd(adult_xy):
    same_weights(trained(adult_xy, partial(Optimizer, cbs=[sgd_step])), trained(adult_xy, SGD))


def test_momentum_from_steps_is_torch_momentum(adult_xy):
    mine = trained(adult_xy, partial(Optimizer, cbs=[average_grad, momentum_step], mom=0.9))
    same_weights(mine, trained(adult_xy, partial(SGD, mom=0.9)))
    # L2 regularisation in the gradient is torch SGD's weight_decay
    l2 = trained(adult_xy, partial(Optimizer, cbs=[l2_reg, average_grad, momentum_step], mom=0.9, wd=0.01))
    torch_l2 = trained(adult_xy, partial(SGD, mom=0.9, wd=0.01, decouple_wd=False))
    # pipekit keeps weight decay off biases and norm layers for both
    same_weights(l2, torch_l2)


def test_adam_from_steps_is_torch_adamw(adult_xy):
    steps = [weight_decay, partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step]
    mine = trained(adult_xy, partial(Optimizer, cbs=steps, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01),
                   fit=lambda learn: learn.fit(2, 1e-2))
    ref = trained(adult_xy, partial(Adam, wd=0.01, fused=False), fit=lambda learn: learn.fit(2, 1e-2))
    same_weights(mine, ref, atol=1e-5)


def test_one_cycle_schedules_the_momentum_of_a_step_optimizer(adult_xy):
    learn = trained(adult_xy, partial(Optimizer, cbs=[average_grad, momentum_step], mom=0.9),
                    fit=lambda learn: learn.fit_one_cycle(2, 0.05))
    moms = np.array(learn.recorder.moms)
    assert moms[0] == pytest.approx(0.95) and moms.min() == pytest.approx(0.85, abs=1e-3)
    assert learn.optimizer.moms[-1] == pytest.approx(moms[-1])


def test_optimizer_needs_step_functions():
    with pytest.raises(ParameterError, match="step functions"):
        Optimizer([{"params": [torch.nn.Parameter(torch.ones(1))]}], cbs=[], lr=0.1)
