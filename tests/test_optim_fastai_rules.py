"""The optimiser behaves as fastai's: ``learn.opt.hypers`` is live (writing ``h["lr"]`` changes the next step),
``set_hypers``, weight decay on every parameter but layers' own biases and normalisation layers, and SGD/RMSProp
take fastai's steps (decoupled weight decay by default, RMSProp's momentum on the raw gradient)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders, TensorStore
from pipekit.learn import Callback, Learner, Module, MSELossFlat
from pipekit.learn.optim import SGD, Adam, OptimWrapper, RMSProp


def _grads(params, step):
    """Deterministic gradients for ``step``: different per parameter and per step, of mixed sign."""
    return [torch.sin(torch.arange(p.numel(), dtype=torch.float32) * (0.37 + 0.1 * i) + step).reshape(p.shape)
            for i, p in enumerate(params)]


def _run(opt_func, model, n_steps=4, lr=0.05, wd=None):
    opt = OptimWrapper(model, opt_func, lr=lr)
    if wd is not None:
        opt.set_hyper("wd", wd)
    params = list(model.parameters())
    for s in range(n_steps):
        for p, g in zip(params, _grads(params, s)):
            p.grad = g.clone()
        opt.step()
        opt.zero_grad()
    return params


def _reference(model, n_steps, lr, rule, no_wd=()):
    """fastai's update rule, written out per parameter in float64 from the model's starting weights."""
    params = [p.detach().double().clone() for p in model.parameters()]
    state: list[dict] = [{} for _ in params]
    for s in range(n_steps):
        for i, (w, g) in enumerate(zip(params, _grads(list(model.parameters()), s))):
            rule(w, g.double(), state[i], lr, i not in no_wd)
    return params


def _close(got, want):
    for p, q in zip(got, want):
        np.testing.assert_allclose(p.detach().double().numpy(), q.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ live hypers, set_hypers
def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return DataLoaders.from_stores([TensorStore(x[:48]), TensorStore(y[:48])],
                                   [TensorStore(x[48:]), TensorStore(y[48:])], bs=16, seed=0, device="cpu")


class HalveLR(Callback):
    """fastai's idiom (its ReduceLROnPlateau writes the hypers the same way)."""
    order = 100

    def after_epoch(self):
        for h in self.opt.hypers:
            h["lr"] = h["lr"] / 2


class RecordLR(Callback):
    def before_fit(self):
        self.seen = []

    def after_step(self):
        self.seen.append(self.opt.lrs[-1])


def test_writing_hypers_changes_the_lr_of_the_next_steps():
    torch.manual_seed(0)
    learn = Learner(_data(), nn.Linear(3, 1), loss_func=MSELossFlat(), opt_func=SGD)
    rec = RecordLR()
    learn.fit(3, 0.1, cbs=[HalveLR(), rec])
    per_epoch = len(learn.dls.train)
    assert rec.seen == pytest.approx([0.1] * per_epoch + [0.05] * per_epoch + [0.025] * per_epoch)
    assert learn.opt.hypers[-1]["lr"] == pytest.approx(0.0125) and learn.opt.lrs == pytest.approx([0.0125])


def test_a_written_lr_is_the_one_the_step_uses():
    w = nn.Linear(2, 1, bias=False)
    w.weight.data.fill_(1.0)
    opt = OptimWrapper(w, SGD, lr=1.0)
    opt.hypers[0]["lr"] = 0.25
    w.weight.grad = torch.ones_like(w.weight)
    opt.step()
    torch.testing.assert_close(w.weight.data, torch.full((1, 2), 0.75))


def test_hypers_are_live_per_group_and_keep_no_decay_and_no_momentum():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    split = lambda m: [list(m[:2].parameters()), list(m[2].parameters())]  # noqa: E731
    opt = OptimWrapper(model, partial(SGD, mom=0.9), lr=0.1, splitter=split)
    hypers = opt.hypers
    assert len(hypers) == 2 and set(hypers[0]) >= {"lr", "mom", "wd"}
    hypers[0]["lr"], hypers[1]["lr"] = 1e-3, 1e-2
    hypers[1]["mom"] = 0.5
    for h in opt.hypers:
        h["wd"] = 0.3
    assert opt.lrs == pytest.approx([1e-3, 1e-2]) and opt.moms == pytest.approx([0.9, 0.5])
    for g in opt.param_groups:  # biases and batch-norm keep their 0
        no_decay = {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}
        assert g["weight_decay"] == (0.0 if {id(p) for p in g["params"]} <= no_decay else 0.3)
    assert dict(opt.hypers[1]) == {"lr": 1e-2, "mom": 0.5, "wd": 0.3}
    plain = OptimWrapper(model, SGD, lr=0.1, splitter=split)
    for h in plain.hypers:
        h["mom"] = 0.95  # built without momentum: keeps none
    assert plain.moms == [0.0, 0.0]
    with pytest.raises(ParameterError, match="cannot be removed"):
        del opt.hypers[0]["lr"]
    with pytest.raises(KeyError):
        opt.hypers[0]["sqr_mom"]


def test_hypers_survive_loading_a_state_dict():
    model = nn.Linear(3, 1)
    opt = OptimWrapper(model, Adam, lr=0.1)
    h = opt.hypers[0]
    opt.load_state_dict(opt.state_dict())  # torch builds new group dicts
    h["lr"] = 0.02
    assert opt.lrs == [0.02] and opt.param_groups[0]["lr"] == 0.02


def test_set_hypers_takes_values_lists_and_slices():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    split = lambda m: [list(layer.parameters()) for layer in m]  # noqa: E731
    opt = OptimWrapper(model, Adam, lr=0.1, splitter=split)
    opt.set_hypers(lr=slice(1e-4, 1e-2), mom=0.8, sqr_mom=[0.9, 0.95, 0.99])
    assert opt.lrs == pytest.approx([1e-4, 1e-3, 1e-2]) and opt.moms == pytest.approx([0.8] * 3)
    assert [h["sqr_mom"] for h in opt.hypers] == pytest.approx([0.9, 0.95, 0.99])
    opt.set_hypers(lr=slice(1e-2))
    assert opt.lrs == pytest.approx([1e-3, 1e-3, 1e-2])
    with pytest.raises(ParameterError, match="3 parameter groups"):
        opt.set_hypers(lr=[1e-3, 1e-2])


# ------------------------------------------------------------------ which parameters get weight decay
class DotProductBias(Module):
    """Chapter 8's model with its own parameters, biases among them, plus a layer and a batch-norm."""

    def __init__(self):
        self.user_factors = nn.Parameter(torch.randn(5, 3))
        self.user_bias = nn.Parameter(torch.randn(5))
        self.movie_bias = nn.Parameter(torch.randn(7))
        self.head = nn.Linear(3, 1)
        self.bn = nn.BatchNorm1d(3)
        self.ln = nn.LayerNorm(3)
        self.gn = nn.GroupNorm(1, 3)

    def forward(self, x):
        return x


def _decayed(opt, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("opt_func", [Adam, SGD, RMSProp])
def test_weight_decay_skips_only_layer_biases_and_norm_layers(opt_func):
    model = DotProductBias()
    opt = OptimWrapper(model, opt_func, lr=0.1)
    opt.set_hyper("wd", 0.1)
    wd = _decayed(opt, model)
    # fastai's norm_types hold no GroupNorm: its weight is decayed, its bias (a layer's own) is not
    assert {n for n, v in wd.items() if v == 0.1} == {"user_factors", "user_bias", "movie_bias", "head.weight",
                                                       "gn.weight"}
    assert {n for n, v in wd.items() if v == 0.0} == {"head.bias", "bn.weight", "bn.bias", "ln.weight", "ln.bias",
                                                       "gn.bias"}
    every = OptimWrapper(model, opt_func, lr=0.1, wd_bn_bias=True)
    every.set_hyper("wd", 0.1)
    assert set(_decayed(every, model).values()) == {0.1}


def test_a_learner_decays_a_parameter_named_bias():
    model = DotProductBias()
    learn = Learner(_data(), model, loss_func=MSELossFlat(), wd=0.1)
    learn.create_opt()
    wd = _decayed(learn.opt, model)
    assert wd["user_bias"] == wd["movie_bias"] == 0.1 and wd["head.bias"] == 0.0
    # and the decay is applied: with a zero gradient AdamW only shrinks the weights
    before = model.user_bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    learn.opt.set_hyper("lr", 0.5)
    learn.opt.step()
    torch.testing.assert_close(model.user_bias.detach(), before * (1 - 0.5 * 0.1))


# ------------------------------------------------------------------ SGD and RMSProp take fastai's steps
def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))


def _sgd_rule(mom, wd, decouple):
    def rule(w, g, st, lr, do_wd):
        if do_wd and decouple:
            w.mul_(1 - lr * wd)
        elif do_wd:
            g = g + wd * w
        if mom:
            st["avg"] = mom * st.get("avg", torch.zeros_like(w)) + g
            g = st["avg"]
        w.sub_(lr * g)
    return rule


def _rmsprop_rule(mom, sqr_mom, eps, wd):
    def rule(w, g, st, lr, do_wd):
        if do_wd:
            w.mul_(1 - lr * wd)
        st["sqr"] = sqr_mom * st.get("sqr", torch.zeros_like(w)) + (1 - sqr_mom) * g * g
        if mom:
            st["avg"] = mom * st.get("avg", torch.zeros_like(w)) + g
            g = st["avg"]
        w.sub_(lr * g / (st["sqr"].sqrt() + eps))
    return rule


BIASES = (1, 3)  # the two Linear biases: no weight decay


@pytest.mark.parametrize("mom", [0.0, 0.9])
def test_sgd_weight_decay_is_decoupled_by_default(mom):
    ref = _reference(_model(), 5, 0.05, _sgd_rule(mom, 0.1, decouple=True), no_wd=BIASES)
    _close(_run(partial(SGD, mom=mom, wd=0.1), _model(), n_steps=5), ref)
    l2 = _reference(_model(), 5, 0.05, _sgd_rule(mom, 0.1, decouple=False), no_wd=BIASES)
    _close(_run(partial(SGD, mom=mom, wd=0.1, decouple_wd=False), _model(), n_steps=5), l2)
    # without momentum both rules are one step, w - lr * (g + wd * w); with it, they part
    assert np.allclose(ref[0].numpy(), l2[0].numpy(), rtol=1e-4) == (mom == 0)


def test_sgd_decoupled_decay_through_the_learner_hyper():
    ref = _reference(_model(), 4, 0.05, _sgd_rule(0.9, 0.2, decouple=True), no_wd=BIASES)
    _close(_run(partial(SGD, mom=0.9), _model(), wd=0.2), ref)


@pytest.mark.parametrize("mom", [0.0, 0.9])
def test_rmsprop_takes_fastais_steps(mom):
    ref = _reference(_model(), 6, 0.01, _rmsprop_rule(mom, 0.99, 1e-8, 0.0))
    _close(_run(partial(RMSProp, mom=mom), _model(), n_steps=6, lr=0.01), ref)
    decayed = _reference(_model(), 6, 0.01, _rmsprop_rule(mom, 0.9, 1e-3, 0.05))
    # the biases keep no decay: redo them without
    undecayed = _reference(_model(), 6, 0.01, _rmsprop_rule(mom, 0.9, 1e-3, 0.0))
    want = [undecayed[i] if i in BIASES else decayed[i] for i in range(len(decayed))]
    _close(_run(partial(RMSProp, mom=mom, sqr_mom=0.9, eps=1e-3, wd=0.05), _model(), n_steps=6, lr=0.01), want)


def test_rmsprop_momentum_is_not_torchs():
    model = _model()
    mine = _run(partial(RMSProp, mom=0.9), model, n_steps=6, lr=0.01)
    theirs = _run(lambda params, lr: torch.optim.RMSprop(params, lr=lr, alpha=0.99, momentum=0.9, eps=1e-8),
                  _model(), n_steps=6, lr=0.01)
    assert not torch.allclose(mine[0], theirs[0], atol=1e-3)


def test_one_cycle_moves_sgd_momentum_only_when_built_with_it():
    data = _data()
    plain = Learner(data, nn.Linear(3, 1), loss_func=MSELossFlat(), opt_func=SGD)
    plain.fit_one_cycle(1, 1e-2)
    assert {m[0] for m in plain.recorder.group_moms} == {0.0}
    with_mom = Learner(data, nn.Linear(3, 1), loss_func=MSELossFlat(), opt_func=partial(RMSProp, mom=0.9))
    with_mom.fit_one_cycle(1, 1e-2)
    assert max(m[0] for m in with_mom.recorder.group_moms) == pytest.approx(0.95)
