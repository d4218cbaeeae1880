"""Gradient hooks on layers whose output is changed in place (every ResNet block), fastai's model-size helpers,
lr_find's custom suggestion functions of fastai's form, plot_lr_find's fastai arguments and the schedules' checks
of div_final and moms, on mnist_tiny."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import (Hook, HookCallback, Learner, dummy_eval, hook_output, hook_outputs, in_channels,
                           model_sizes, num_features_model, steep)
from pipekit.vision import ImageBlock, Resize
from pipekit.vision.models import resnet18


@pytest.fixture(scope="module")
def dls(one_torch_thread):
    items = lambda p: get_image_files(p, folders=["train", "valid"])  # noqa: E731
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=items, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=Resize(16)).dataloaders(
        D.path("mnist_tiny"), bs=64, seed=0, device="cpu", num_workers=0)


def _cnn():
    """conv -> batch-norm -> ReLU(inplace=True), as every ResNet block is built."""
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(4 * 14 * 14, 2))


def _learner(dls):
    pipekit.set_seed(0)
    learn = Learner(dls, _cnn())
    learn.no_bar()
    return learn


def _grad_of_output(model, layer, x, score):
    """The gradient of ``score(model(x))`` with respect to ``layer``'s output, computed on the model with its ReLUs
    made out of place (the same function), by torch.autograd.grad."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for r in relus:
        r.inplace = False
    seen = []
    h = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        s = score(model(x))
        return torch.autograd.grad(s, seen[0])[0]
    finally:
        h.remove()
        for r in relus:
            r.inplace = True


def test_grad_hook_on_a_layer_whose_output_an_inplace_relu_changes(dls):
    xb, _ = dls.one_batch()
    x = xb[:2].float()
    torch.manual_seed(0)
    model = _cnn()
    with hook_output(model[1], grad=True) as hook_g, hook_output(model[1]) as hook_a:
        model(x)[0, 1].backward()
    want = _grad_of_output(model, model[1], x, lambda out: out[0, 1])
    assert isinstance(hook_g.stored, tuple) and hook_g.stored[0].shape == hook_a.stored.shape == (2, 4, 14, 14)
    torch.testing.assert_close(hook_g.stored[0], want)
    assert not hook_g.stored[0].requires_grad
    assert not model[1]._forward_hooks and not model[1]._backward_hooks
    # the Grad-CAM of the book on pipekit's resnet18: its stem's bn1 and a block's bn1 both feed in-place ReLUs
    m = resnet18().eval()
    body = nn.Sequential(*list(m.children())[:-2])
    img = torch.cat([x[:1]] * 3, dim=1)
    for layer in (body[1], body[2], body[-1][-1].bn1, body[-1][-1].conv2):
        with hook_output(layer, grad=True) as hg:
            body(img).mean().backward()
        torch.testing.assert_close(hg.stored[0], _grad_of_output(body, layer, img, lambda out: out.mean()))
        assert not layer._forward_hooks and not layer._backward_hooks
    # several layers at once, and hooks removed between the forward and the backward pass: the graph built while
    # they were on still stores its gradients
    with hook_outputs([model[0], model[1]], grad=True) as hooks:
        out = model(x)[0, 1]
    out.backward()
    assert all(h.removed for h in hooks)
    torch.testing.assert_close(hooks.stored[1][0], _grad_of_output(model, model[1], x, lambda o: o[0, 1]))
    torch.testing.assert_close(hooks.stored[0][0], _grad_of_output(model, model[0], x, lambda o: o[0, 1]))


def test_grad_hook_taken_off_before_backward_stores_that_graph_only_and_goes_with_it(dls):
    xb, _ = dls.one_batch()
    x = xb[:2].float()
    torch.manual_seed(0)
    model = _cnn()
    with hook_output(model[0], grad=True) as hg:
        out = model(x)
    out[0, 1].backward()  # outside the with block, as the book's Grad-CAM may do it
    want = _grad_of_output(model, model[0], x, lambda o: o[0, 1])
    assert hg.removed and isinstance(hg.stored, tuple)
    torch.testing.assert_close(hg.stored[0], want)
    # a forward pass after the removal attaches nothing: what was stored stays
    kept = hg.stored[0]
    model(x)[1, 0].backward()
    assert hg.stored[0] is kept
    # a removed hook is kept alive by the graph built while it was on, and no longer than that graph
    hook = hook_output(model[0], grad=True)
    out = model(x)
    alive = weakref.ref(hook)
    hook.remove()
    del hook
    gc.collect()
    assert alive() is not None
    out.sum().backward()
    assert alive().stored[0].shape == (2, 4, 14, 14)
    del out
    gc.collect()
    assert alive() is None
    # hooked passes that are never backpropagated leave nothing behind either
    hook = hook_output(model[0], grad=True)
    for _ in range(3):
        model(x)
    alive = weakref.ref(hook)
    hook.remove()
    del hook
    assert alive() is None  # without a collection: no reference cycle through the graph


class _ArgmaxAndScores(nn.Module):
    """A layer returning (predicted class, scores): the first output needs no gradient."""

    def __init__(self, n_in):
        super().__init__()
        self.lin = nn.Linear(n_in, 3)

    def forward(self, x):
        y = self.lin(x)
        return y.argmax(1), y


class _TwoOps(nn.Module):
    def forward(self, x):
        return x * 2, x + 1


def test_grad_hook_reports_every_output_that_needs_a_gradient(dls):
    xb, _ = dls.one_batch()
    x = xb[:4].float().flatten(1)
    torch.manual_seed(0)
    # a tuple whose first item is no gradient's: None for it, the second's gradient in its place
    m = _ArgmaxAndScores(x.shape[1])
    with hook_output(m, grad=True) as hg:
        _, y = m(x)
        (y ** 2).sum().backward()
    assert len(hg.stored) == 2 and hg.stored[0] is None
    torch.testing.assert_close(hg.stored[1], 2 * y.detach())
    # a layer handing its input on unchanged: the input, a leaf, gets its gradient from a hook on it
    ident = nn.Identity()
    xl = x.clone().requires_grad_()
    seen = []
    with Hook(ident, lambda mod, gi, go: seen.append(gi) or go, is_forward=False) as hi:
        (ident(xl) * 3).sum().backward()
    assert seen == [()] and hi.stored[0].shape == x.shape
    torch.testing.assert_close(hi.stored[0], torch.full_like(x, 3.0))
    assert not xl._backward_hooks  # taken off the input at the end of the backward pass
    (xl * 5).sum().backward()  # a later backward pass through the input stores nothing more
    torch.testing.assert_close(hi.stored[0], torch.full_like(x, 3.0))
    # an LSTM's (output, (h, c)): the gradient of its output first, as the book reads stored[0]
    lstm = nn.LSTM(x.shape[1], 5, batch_first=True)
    seq = x.view(2, 2, -1)
    with hook_output(lstm, grad=True) as hl:
        out, _ = lstm(seq)
        out.sum().backward()
    assert len(hl.stored) == 2 and hl.stored[1] is None
    torch.testing.assert_close(hl.stored[0], torch.ones(2, 2, 5))
    # outputs made by two operations: the hook runs once per backward pass, with the gradients that pass reached
    two, xt = _TwoOps(), x[:, :3].clone().requires_grad_()
    calls = []
    with Hook(two, lambda mod, gi, go: calls.append([None if g is None else float(g.sum()) for g in go]),
              is_forward=False):
        a, b = two(xt)
        (4 * b).sum().backward()
        a, b = two(xt)
        (a.sum() + 2 * b.sum()).backward()
    assert calls == [[None, 4.0 * xt.numel()], [float(xt.numel()), 2.0 * xt.numel()]]


def test_grad_hook_gets_the_gradients_torch_backward_hooks_give(dls):
    xb, _ = dls.one_batch()
    x = xb[:3].float().flatten(1).requires_grad_()
    torch.manual_seed(0)
    lin = nn.Linear(x.shape[1], 5)
    with Hook(lin, lambda m, gi, go: (gi, go), is_forward=False) as ours:
        lin(x).pow(2).sum().backward()
    gi, go = ours.stored
    out = lin(x)
    assert len(go) == 1
    torch.testing.assert_close(go[0], 2 * out.detach())  # d(sum out^2)/d out
    # the inputs of the output's operation (addmm: bias, input, weight transposed), as register_backward_hook gives
    grad_in = [g for g in gi if g is not None and g.shape == x.shape]
    torch.testing.assert_close(grad_in[0], (2 * out.detach()) @ lin.weight.detach())
    # no graph, no gradient: an inference pass with the hook on stores nothing
    with hook_output(lin, grad=True) as hg, torch.no_grad():
        lin(x)
    assert hg.stored is None


def test_gradient_hook_callback_trains_a_model_with_inplace_relus(dls):
    learn = _learner(dls)

    class GradNorms(HookCallback):
        def before_fit(self):
            super().before_fit()
            self.norms_ = []

        def hook(self, module, grad_in, grad_out):
            self.norms_.append(float(grad_out[0].norm()))

    cb = GradNorms(modules=[learn.model[1]], is_forward=False)
    learn.fit(1, 1e-3, cbs=cb)
    assert len(cb.norms_) == len(learn.dls.train) and all(np.isfinite(cb.norms_)) and max(cb.norms_) > 0
    assert not learn.model[1]._forward_hooks and not learn.model[1]._backward_hooks


def test_model_sizes_num_features_dummy_eval_and_in_channels_as_fastai():
    body = nn.Sequential(*list(resnet18().children())[:-2])
    # fastai 2.8.12's model_sizes(body, (64, 64)) on torchvision's resnet18 body
    assert [tuple(s) for s in model_sizes(body, (64, 64))] == [
        (1, 64, 32, 32), (1, 64, 32, 32), (1, 64, 32, 32), (1, 64, 16, 16), (1, 64, 16, 16), (1, 128, 8, 8),
        (1, 256, 4, 4), (1, 512, 2, 2)]
    assert num_features_model(body) == 512 and in_channels(body) == 3
    assert body.training and not any(m._forward_hooks for m in body.modules())  # mode restored, hooks removed
    small = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2))
    assert model_sizes(small, 32) == [torch.Size([1, 8, 15, 15])] * 2 + [torch.Size([1, 16, 7, 7])]
    assert tuple(dummy_eval(small, (20, 24)).shape) == (1, 16, 4, 5)
    mlp = nn.Sequential(nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
    assert in_channels(mlp) == 6 and tuple(dummy_eval(mlp, ()).shape) == (1, 2) and num_features_model(small) == 16
    # a model needing larger images than 32 pixels: the next sizes are tried
    big = nn.Sequential(nn.Conv2d(3, 5, 40))
    assert num_features_model(big) == 5
    with pytest.raises(ParameterError, match="in_channels: ReLU has no convolution or linear layer"):
        in_channels(nn.ReLU())
    with pytest.raises(ParameterError, match=r"dummy_eval: size=\(0, 8\)"):
        dummy_eval(small, (0, 8))
    star: dict = {}
    exec("from pipekit.learn import *", star)
    assert {"model_sizes", "num_features_model", "dummy_eval", "in_channels"} <= set(star)


def _fastai_steep(lrs, losses, num_it):
    # fastai's own steep, as fastai writes it: tensor methods on the curve
    grads = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    lr_steep = lrs[grads.argmin()].item()
    loss_idx = losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr_steep))]
    return lr_steep, (lr_steep, loss_idx)


def test_suggestion_functions_of_fastais_form_read_tensors(dls):
    learn = _learner(dls)
    seen = {}

    def kinds(lrs, losses, num_it):
        seen.update(lrs=(type(lrs), lrs.dtype), losses=(type(losses), losses.dtype), num_it=num_it)
        return float(lrs[0]), (float(lrs[0]), float(losses[0]))

    def two(lrs, losses):  # pipekit's own form keeps NumPy arrays
        seen["two"] = type(lrs)
        return float(lrs[-1])

    res = learn.lr_find(num_it=30, stop_div=False, show_plot=False, suggest_funcs=(_fastai_steep, steep, kinds, two))
    assert res._fastai_steep == res.steep  # fastai's steep on tensors picks what pipekit's picks
    assert seen["lrs"] == seen["losses"] == (torch.Tensor, torch.float64) and seen["num_it"] == 30
    assert seen["two"] is np.ndarray and res.kinds == res.lrs[3]  # the sweep's lr exactly (curve less its first tenth)


def test_plot_lr_find_takes_fastais_arguments(dls, tmp_path):
    learn = _learner(dls)
    with pytest.raises(ValueError, match="has not run it"):
        learn.recorder.plot_lr_find(skip_end=0)
    res = learn.lr_find(num_it=20, stop_div=False, show_plot=False)
    rec = learn.recorder
    n = len(rec.lr_find_lrs)

    def drawn(fig):
        return fig.axes[0].lines[0].get_xdata()

    fig = rec.plot_lr_find(return_fig=True)  # fastai's default: the last 5 points left out
    np.testing.assert_array_equal(drawn(fig), res.lrs[:n - 5])
    assert len(drawn(rec.plot_lr_find(skip_end=0, return_fig=True))) == n
    assert len(drawn(rec.plot_lr_find(skip_end=10, return_fig=True))) == n - 10
    png = rec.plot_lr_find(skip_end=2, path=tmp_path / "lr.png")
    assert png == tmp_path / "lr.png" and png.stat().st_size > 5000
    # fastai's suggestions= (the (lr, loss) points its suggestion functions return) with their names
    fig = rec.plot_lr_find(suggestions=[(1e-3, 0.5), 1e-2], nms=["mine", "other"], return_fig=True)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["mine: 1.00e-03", "other: 1.00e-02"]
    assert tuple(fig.axes[0].lines[1].get_ydata()) == (0.5,)
    with pytest.raises(ParameterError, match="skip_end=-1"):
        rec.plot_lr_find(skip_end=-1)
    with pytest.raises(ParameterError, match="nms has 1 names for 2 suggestions"):
        rec.plot_lr_find(suggestions=[1e-3, 1e-2], nms=["one"])
    with pytest.raises(ParameterError, match="suggestions="):
        rec.plot_lr_find(suggestions=["fast"])
    # a file given by position is fastai's skip_end: the error says to name it path=
    for where in (str(tmp_path / "pos.png"), tmp_path / "pos.png"):
        with pytest.raises(ParameterError, match=r"skip_end=.*pos\.png.* is a file.*give the file as path="):
            rec.plot_lr_find(where)
    assert not (tmp_path / "pos.png").exists()
    # SuggestedLRs.plot takes the file first, as lr_find calls it
    assert res.plot(tmp_path / "sug.png") == tmp_path / "sug.png" and (tmp_path / "sug.png").stat().st_size > 5000


def test_schedules_check_div_final_and_moms_before_training(dls):
    learn = _learner(dls)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    for bad in (-10, 0, float("nan")):
        with pytest.raises(ParameterError, match=r"fit_flat_cos: div_final=.* expected a number in \(0, inf\)"):
            learn.fit_flat_cos(1, lr=1e-2, div_final=bad)
    for moms in ((0.95, 0.85), (0.95, 0.85, 1.5), 0.9):
        with pytest.raises(ParameterError, match=r"fit_one_cycle: moms=.* 3 momentums"):
            learn.fit_one_cycle(1, 1e-2, moms=moms)
    assert learn.recorder.values == []
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, before[k])
    learn.fit_one_cycle(1, 1e-2, moms=(0.9, 0.8, 0.9))
    assert learn.recorder.moms[0] == pytest.approx(0.9) and 0.8 <= min(learn.recorder.moms) < 0.81
