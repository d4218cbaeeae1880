"""Hooks (chapter 18's class activation maps) and ActivationStats' histograms (chapter 13), on Fashion-MNIST."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.learn import ActivationStats, Learner, accuracy, simple_cnn
from pipekit.learn.hooks import Hook, HookCallback, Hooks, hook_output, hook_outputs, leaf_modules
from pipekit.vision import Normalize, dataloaders_from_arrays


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz")[:512], D.read_idx(p / "train-labels-idx1-ubyte.gz")[:512]
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz")[:128], D.read_idx(p / "t10k-labels-idx1-ubyte.gz")[:128]
    dls = dataloaders_from_arrays(xt, yt, xv, yv, vocab=[str(i) for i in range(10)], bs=64, seed=0,
                                  batch_tfms=[Normalize.from_stats([0.286], [0.353])])
    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=10, channels=(8, 16)), metrics=accuracy)
    learn.fit_one_cycle(2, 1e-2)
    return learn


def test_class_activation_map_from_hooks(trained):
    learn = trained
    body = learn.model.body if hasattr(learn.model, "body") else learn.model[0]
    xb, _ = next(iter(learn.dls.valid))
    learn.model.eval()
    with hook_output(body) as hook:
        out = learn.model(xb)
        acts = hook.stored
    assert hook.removed and not body._forward_hooks
    assert acts.shape[0] == xb.shape[0] and acts.ndim == 4 and not acts.requires_grad
    # the book's Grad-CAM: gradients of the class score with respect to the body's output
    cls = int(out[0].argmax())
    with hook_output(body, grad=True) as hook_g, hook_output(body) as hook_a:
        learn.model.eval()
        score = learn.model(xb[:1])[0, cls]
        score.backward()
    grad, act = hook_g.stored[0][0], hook_a.stored[0]
    assert grad.shape == act.shape
    cam = (grad.mean(dim=[1, 2], keepdim=True) * act).sum(0)
    assert cam.shape == act.shape[1:] and torch.isfinite(cam).all()
    learn.model.zero_grad()

    class HookBwd:  # chapter 18's own class, as the book writes it: torch's older kind of backward hook
        def __init__(self, m):
            self.hook = m.register_backward_hook(self.hook_func)

        def hook_func(self, m, gi, go):
            self.stored = go[0].detach().clone()

        def __enter__(self, *args):
            return self

        def __exit__(self, *args):
            self.hook.remove()

    # pipekit registers no module backward hook (it hooks the graph a forward pass builds), so the book's HookBwd
    # and pipekit's gradient hook sit on the same layer and read the same gradient
    with pytest.warns(FutureWarning), HookBwd(body) as book, hook_output(body, grad=True) as ours:
        learn.model(xb[:1])[0, cls].backward()
    torch.testing.assert_close(ours.stored[0], book.stored)
    torch.testing.assert_close(ours.stored[0][0], grad)  # the gradient the full hook gave above
    assert not body._backward_hooks
    learn.model.zero_grad()


def test_hooks_on_several_layers_and_cpu_copies(trained):
    learn = trained
    layers = leaf_modules(learn.model)
    xb, _ = next(iter(learn.dls.valid))
    with hook_outputs(layers, cpu=True) as hooks, torch.no_grad():
        learn.model(xb)
    assert len(hooks) == len(layers) and all(s.device.type == "cpu" for s in hooks.stored)
    with Hooks(layers, lambda m, i, o: float(o.mean())) as means, torch.no_grad():
        learn.model(xb)
    assert all(isinstance(v, float) for v in means.stored)
    assert not any(m._forward_hooks for m in learn.model.modules())
    with pytest.raises(ParameterError, match="nn.Module"):
        Hook("conv", lambda m, i, o: o)


def test_hook_callback_counts_during_the_fit_and_removes_its_hooks(trained):
    learn = trained
    first = leaf_modules(learn.model)[0]

    class Count(HookCallback):
        def before_fit(self):
            super().before_fit()
            self.calls_ = 0

        def hook(self, module, inp, out):
            self.calls_ += 1

    every = Count(modules=[first], every=2)
    learn.fit(1, 1e-4, cbs=every)
    assert every.calls_ == len(learn.dls.train) // 2  # training batches 0, 2, 4, 6
    assert not first._forward_hooks
    kept = Count(modules=[first], remove_end=False)
    learn.fit(1, 1e-4, cbs=kept)
    assert first._forward_hooks
    kept.remove()
    assert not first._forward_hooks


def test_activation_stats_histograms_and_near_zero_as_the_book_counts(trained, tmp_path):
    learn = trained
    stats = ActivationStats(with_hist=True)
    learn.fit(1, 1e-3, cbs=stats)
    name = next(iter(stats.stats_))
    n = len(learn.dls.train)
    assert stats.hist_[name].shape == (n, 40) and stats.stats_[name].shape == (n, 3)
    # near zero counts everything at or below 0.05, negatives included; check on one batch by hand
    first = leaf_modules(learn.model)[0]
    xb, _ = next(iter(learn.dls.valid))
    with hook_output(first) as h, torch.no_grad():
        learn.model(xb)
    o = h.stored.float()
    manual = float((o <= 0.05).float().mean())
    assert manual > float((o.abs() < 0.05).float().mean())
    assert np.all(stats.hist_[name] >= 0) and stats.hist_[name].sum() > 0
    assert stats.color_dim(0, tmp_path / "cd.png").exists()
    # fastai's spellings: layer_stats(idx) as (3, batches), hist(idx) as (bins, batches) in log1p, figsize=
    assert np.array_equal(stats.layer_stats(0), stats.stats_[name].T) and stats.layer_stats(name).shape == (3, n)
    assert np.allclose(stats.hist(0), np.log1p(stats.hist_[name]).T) and stats.hist(0).shape == (40, n)
    assert stats.color_dim(-1, tmp_path / "cd_big.png", figsize=(5, 5)).exists()
    assert stats.plot_layer_stats(0, tmp_path / "ls.png", figsize=(6, 2)).exists()
    assert stats.dead_chart(name, tmp_path / "dead.png").exists()
    with pytest.raises(ParameterError, match="out of range"):
        stats.color_dim(99)
    plain = ActivationStats()
    learn.fit(1, 1e-3, cbs=plain)
    with pytest.raises(ParameterError, match="with_hist=True"):
        plain.color_dim(0)
    assert isinstance(learn.model, nn.Module)


def test_hooks_refused_part_way_leave_no_hook_on_the_model():
    """``hook_outputs`` of a list whose third entry is no layer: the error names it, and the two hooks already placed
    come off (they went on storing activations at every forward pass)."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ParameterError, match="must be an nn.Module"):
        hook_outputs([model[0], model[1], "model[2]"])
    assert all(not m._forward_hooks for m in model)
    with hook_outputs([model[0], model[2]]) as hooks:  # and hooks made whole still work
        model(torch.randn(3, 4))
        assert [tuple(s.shape) for s in hooks.stored] == [(3, 4), (3, 2)]
