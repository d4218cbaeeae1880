"""``get_preds(with_loss=True)`` over a loss per position (a mask's pixels) with an ``ignore_index`` or a class
``weight``: each item's loss is the loss's own mean over that item (the mean over its kept positions, weighted by
their classes' weights), not a plain mean counting the ignored positions as 0, so items with many void pixels keep
their place in ``top_losses``. An item whose positions are all ignored gets 0. Losses without either keep the plain
mean."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.data import DataLoaders, get_image_files
from pipekit.learn import (CrossEntropyLossFlat, CutMix, FocalLossFlat, Interpretation, LabelSmoothingCrossEntropy,
                           LabelSmoothingCrossEntropyFlat, Learner, MixUp, MSELossFlat)
from pipekit.vision import Resize, SegmentationDataLoaders


def _batch_of_one(loss_func, out: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """The loss's own mean reduction over each item alone, as a batch of one."""
    return torch.stack([loss_func(out[i:i + 1], targ[i:i + 1]) for i in range(len(out))])


def _synthetic(loss_func, void: int = 255, all_void: bool = False):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 4, 4), torch.randint(0, 3, (8, 4, 4))
    y[:4, :, :3] = void  # items 0-3: 12 of 16 pixels are void
    if all_void:
        y[5] = void
    ds = list(zip(x, y))
    model = nn.Conv2d(3, 3, 1)
    learn = Learner(DataLoaders.from_dsets(ds, ds, bs=8, device="cpu"), model, loss_func=loss_func)
    with torch.no_grad():
        out = model(x)
    return learn, out, y


def test_ignored_pixels_are_left_out_of_each_items_mean():
    learn, out, y = _synthetic(CrossEntropyLossFlat(axis=1, ignore_index=255))
    _, _, losses = learn.get_preds(with_loss=True)
    expected = _batch_of_one(lambda o, t: F.cross_entropy(o, t, ignore_index=255), out, y)
    assert torch.allclose(losses, expected, atol=1e-5)
    # items 0-3 (mostly void) are as hard as the others: a plain mean over 16 pixels made them 4x too small
    assert losses[:4].min() > 0.9
    # validate's loss is their mean weighted by each item's kept pixels
    kept = (y != 255).sum((1, 2)).float()
    assert float((losses * kept).sum() / kept.sum()) == pytest.approx(learn.validate()[0], rel=1e-5)


@pytest.mark.parametrize("make", [
    lambda: CrossEntropyLossFlat(axis=1, ignore_index=255, weight=[1.0, 5.0, 0.5]),
    lambda: nn.CrossEntropyLoss(ignore_index=255, weight=torch.tensor([1.0, 5.0, 0.5])),
    lambda: FocalLossFlat(axis=1, ignore_index=255, weight=[1.0, 5.0, 0.5]),
], ids=["CrossEntropyLossFlat", "nn.CrossEntropyLoss", "FocalLossFlat"])
def test_class_weights_give_the_weighted_mean_over_kept_pixels(make):
    """With a class ``weight``: the sum of the item's weighted pixel losses over the summed weights of its kept
    pixels, as the loss's 'mean' divides a batch."""
    learn, out, y = _synthetic(make())
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(make(), out, y), atol=1e-5)


def test_a_plain_function_given_ignore_index_by_partial():
    learn, out, y = _synthetic(functools.partial(F.cross_entropy, ignore_index=255))
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(functools.partial(F.cross_entropy, ignore_index=255), out, y),
                          atol=1e-5)


def test_a_plain_function_by_its_default_ignore_index():
    """F.cross_entropy leaves targets of -100, its default ignore_index, out of its mean."""
    learn, out, y = _synthetic(F.cross_entropy, void=-100)
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(F.cross_entropy, out, y), atol=1e-5)


def test_label_smoothing_leaves_its_ignored_pixels_out():
    """LabelSmoothingCrossEntropy leaves targets of -100 (its ignore_index) out of both its terms."""
    learn, out, y = _synthetic(LabelSmoothingCrossEntropy(), void=-100)
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(LabelSmoothingCrossEntropy(), out, y), atol=1e-5)


def test_an_item_with_every_pixel_ignored_gets_zero():
    """torch's mean over no kept pixel is NaN, which would sort first among the top losses: such an item gets 0."""
    learn, out, y = _synthetic(CrossEntropyLossFlat(axis=1, ignore_index=255), all_void=True)
    assert torch.isnan(F.cross_entropy(out[5:6], y[5:6], ignore_index=255))
    _, _, losses = learn.get_preds(with_loss=True)
    assert losses[5] == 0 and not losses.isnan().any()
    keep = [i for i in range(8) if i != 5]
    expected = _batch_of_one(lambda o, t: F.cross_entropy(o, t, ignore_index=255), out[keep], y[keep])
    assert torch.allclose(losses[keep], expected, atol=1e-5)
    assert Interpretation.from_learner(learn).top_losses(1, largest=False)[1].item() == 5


def test_losses_without_ignore_index_or_weight_keep_the_plain_mean():
    """A loss per pixel over float targets (even one with a ``weight``, such as BCE's per-element weight) is
    averaged over all the item's positions."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 4, 4), torch.rand(6, 3, 4, 4)
    ds = list(zip(x, y))
    model = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        out = model(x)
    for loss_func in (MSELossFlat(axis=1), nn.BCEWithLogitsLoss(weight=torch.tensor([2.0, 1.0, 0.5])[:, None, None])):
        learn = Learner(DataLoaders.from_dsets(ds, ds, bs=6, device="cpu"), model, loss_func=loss_func)
        _, _, losses = learn.get_preds(with_loss=True)
        assert torch.allclose(losses, _batch_of_one(loss_func, out, y), atol=1e-5)


@pytest.fixture(scope="module")
def camvid():
    path = D.path("camvid_tiny")
    codes = list(np.loadtxt(path / "codes.txt", dtype=str))
    dls = SegmentationDataLoaders.from_label_func(
        path, bs=32, fnames=get_image_files(path / "images"), seed=0,
        label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", codes=codes, item_tfms=Resize((24, 32)))
    return dls, codes.index("Void")


def test_camvid_void_pixels_leave_the_item_losses_and_top_losses_right(camvid):
    """camvid_tiny's masks, 'Void' ignored: each image's loss is cross-entropy's mean over its non-void pixels, the
    top losses rank by it, and validate's loss is their mean weighted by the kept pixels."""
    dls, void = camvid
    pipekit.set_seed(0)
    model = nn.Conv2d(3, len(dls.vocab), 1)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1, ignore_index=void, weight=None))
    _, targs, losses = learn.get_preds(with_loss=True)
    xb, yb = dls.valid.one_batch()
    assert len(xb) == len(losses)  # the whole validation set in one batch
    with torch.no_grad():
        out = model(xb)
    expected = _batch_of_one(lambda o, t: F.cross_entropy(o, t.long(), ignore_index=void), out, yb)
    assert torch.allclose(losses, expected, atol=1e-5)
    kept = (targs != void).reshape(len(targs), -1).sum(1).float()
    assert kept.min() < kept.max()  # images differ in their share of void pixels
    assert float((losses * kept).sum() / kept.sum()) == pytest.approx(learn.validate()[0], rel=1e-5)
    top, idxs = Interpretation.from_learner(learn).top_losses(5)
    assert torch.equal(idxs, expected.topk(5).indices)


def test_camvid_class_weights(camvid):
    dls, void = camvid
    weight = [1.0 + (i % 5) for i in range(len(dls.vocab))]
    loss_func = CrossEntropyLossFlat(axis=1, ignore_index=void, weight=weight)
    pipekit.set_seed(0)
    model = nn.Conv2d(3, len(dls.vocab), 1)
    learn = Learner(dls, model, loss_func=loss_func)
    _, _, losses = learn.get_preds(with_loss=True)
    xb, yb = dls.valid.one_batch()
    with torch.no_grad():
        out = model(xb)
    expected = _batch_of_one(lambda o, t: F.cross_entropy(o, t.long(), weight=torch.tensor(weight),
                                                          ignore_index=void), out, yb)
    assert torch.allclose(losses, expected, atol=1e-5)


# --- only losses over class indices read `weight` and `ignore_index` ---------------------------------------------


class _IntLabelsBCE(nn.BCEWithLogitsLoss):
    """A multi-label loss of the user's taking 0/1 labels as integers; its ``weight`` is one per label."""

    def forward(self, inp, targ):
        return super().forward(inp, targ.float())


def _per_position_weighted_ce(out, targ, weight=None, reduction="mean"):
    """A user's function whose ``weight`` is one per token position, not per class."""
    loss = F.cross_entropy(out, targ, reduction="none") * weight
    return loss.mean() if reduction == "mean" else loss


class _Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 10)

    def forward(self, x):
        return self.emb(x).transpose(1, 2)  # (bs, vocab, seq)


def _learner_and_outputs(loss_func, x, y, model):
    ds = list(zip(x, y))
    learn = Learner(DataLoaders.from_dsets(ds, ds, bs=len(x), device="cpu"), model, loss_func=loss_func)
    with torch.no_grad():
        out = model(x)
    return learn, out


def test_a_weight_of_a_loss_not_over_class_indices_is_not_read_as_class_weights():
    """A BCE subclass reading integer 0/1 labels: its ``weight`` is one per label, and each item's loss is its own
    plain mean over the labels, not a mean weighted as if the labels were class indices."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8, 3))
    loss_func = _IntLabelsBCE(weight=torch.tensor([1.0, 5.0, 0.5]))
    learn, out = _learner_and_outputs(loss_func, x, y, nn.Linear(4, 3))
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(loss_func, out, y), atol=1e-6)


def test_a_users_weight_keyword_is_not_read_as_class_weights():
    """``partial(fn, weight=...)`` of a user's function whose ``weight`` is one per position: a plain mean over each
    item's positions, as the function's own mean."""
    torch.manual_seed(0)
    x, y = torch.randint(0, 10, (6, 5)), torch.randint(0, 10, (6, 5))
    loss_func = functools.partial(_per_position_weighted_ce, weight=torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0]))
    learn, out = _learner_and_outputs(loss_func, x, y, _Tokens())
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(loss_func, out, y), atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: functools.partial(F.cross_entropy, weight=torch.tensor([1.0, 5.0, 0.5]), ignore_index=255),
    lambda: functools.partial(F.cross_entropy, weight=torch.tensor([1.0, 5.0, 0.5]), ignore_index=255,
                              label_smoothing=0.1),
    lambda: CrossEntropyLossFlat(axis=1, ignore_index=255, weight=[1.0, 5.0, 0.5], label_smoothing=0.1),
], ids=["partial(F.cross_entropy)", "partial(F.cross_entropy, label_smoothing)", "CrossEntropyLossFlat smoothing"])
def test_torchs_cross_entropy_with_weight_and_smoothing(make):
    learn, out, y = _synthetic(make())
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(make(), out, y), atol=1e-5)


def test_nll_loss_with_class_weights():
    loss_func = nn.NLLLoss(ignore_index=255, weight=torch.tensor([1.0, 5.0, 0.5]))
    learn, out, y = _synthetic(loss_func)
    learn.model = nn.Sequential(learn.model, nn.LogSoftmax(1))
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(loss_func, out.log_softmax(1), y), atol=1e-5)


# --- label smoothing with class weights ---------------------------------------------------------------------------


def test_label_smoothing_with_class_weights_gives_its_own_mean_per_item():
    """LabelSmoothingCrossEntropy's two terms divide by different sums with ``weight`` (the smoothing term by the kept
    pixels, the nll term by their weights): each item's loss is still the loss run on that item alone."""
    make = functools.partial(LabelSmoothingCrossEntropy, weight=[1.0, 5.0, 0.5])
    learn, out, y = _synthetic(make(), void=-100)
    _, _, losses = learn.get_preds(with_loss=True)
    expected = _batch_of_one(make(), out, y)
    assert torch.allclose(losses, expected, atol=1e-5)
    # the kept-pixel mean of the summed terms is not it: the weights change the smoothing term's share
    plain = make(reduction="none")(out, y)
    kept = (y != -100).float()
    assert not torch.allclose((plain * kept).sum((1, 2)) / kept.sum((1, 2)), expected, atol=1e-3)


def test_label_smoothing_flat_with_class_weights_over_token_sequences():
    torch.manual_seed(0)
    x, y = torch.randint(0, 10, (6, 5)), torch.randint(0, 10, (6, 5))
    y[:3, 3:] = -100
    make = functools.partial(LabelSmoothingCrossEntropyFlat, weight=[1.0 + i for i in range(10)])
    model = nn.Embedding(10, 10)  # (bs, seq, vocab) scores
    learn, out = _learner_and_outputs(make(), x, y, model)
    _, _, losses = learn.get_preds(with_loss=True)
    assert torch.allclose(losses, _batch_of_one(make(), out, y), atol=1e-5)


# --- a numpy integer ignore_index ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: nn.CrossEntropyLoss(ignore_index=np.int64(255)),
    lambda: CrossEntropyLossFlat(axis=1, ignore_index=np.int64(255)),
], ids=["nn.CrossEntropyLoss", "CrossEntropyLossFlat"])
def test_a_numpy_integer_ignore_index(make):
    learn, out, y = _synthetic(make())
    _, _, losses = learn.get_preds(with_loss=True)
    expected = _batch_of_one(lambda o, t: F.cross_entropy(o, t, ignore_index=255), out, y)
    assert torch.allclose(losses, expected, atol=1e-5)
    assert losses[:4].min() > 0.9


# --- MixUp and CutMix reduce each item as the loss does -----------------------------------------------------------


def _mixed_at_weights_one_and_zero(mixer, make, loss_func, learn, out, y, rel):
    """Check that MixUp's or CutMix's loss with every item's own weight 1 is the loss's own mean over the batch, and
    with weight 0 the paired targets'; give its unreduced loss at weight 1."""
    mix = mixer()
    mix.learn = learn
    mix.before_train()
    try:
        perm = torch.arange(8).roll(1)
        mix.perm, mix.yb_other = perm, (y[perm],)
        mix.lam = torch.ones(8)
        assert float(mix._mixed_loss(out, y)) == pytest.approx(float(make()(out, y)), rel=rel)
        mix.lam = torch.zeros(8)
        assert float(mix._mixed_loss(out, y)) == pytest.approx(float(make()(out, y[perm])), rel=rel)
        mix.lam = torch.ones(8)
        loss_func.reduction = "none"
        unreduced = mix._mixed_loss(out, y)
        loss_func.reduction = "mean"
    finally:
        mix.after_train()
    return unreduced


@pytest.mark.parametrize("mixer", [MixUp, CutMix])
@pytest.mark.parametrize("make", [
    lambda: CrossEntropyLossFlat(axis=1, ignore_index=255),
    lambda: CrossEntropyLossFlat(axis=1, ignore_index=255, weight=[1.0, 5.0, 0.5]),
    lambda: nn.CrossEntropyLoss(ignore_index=255),
], ids=["ignore", "ignore+weight", "nn.CrossEntropyLoss"])
def test_mixing_with_an_items_own_weight_one_is_the_losss_own_mean(make, mixer):
    """With every item's own weight 1 (no mixing), MixUp's and CutMix's loss is the loss's own mean over the batch,
    and, unreduced, each item's loss is the one ``get_preds`` gives; with weight 0 it is the paired targets'."""
    loss_func = make()
    learn, out, y = _synthetic(loss_func)
    unreduced = _mixed_at_weights_one_and_zero(mixer, make, loss_func, learn, out, y, rel=1e-5)
    _, _, per_item = learn.get_preds(with_loss=True)
    assert torch.allclose(unreduced, per_item, atol=1e-5)


@pytest.mark.parametrize("mixer", [MixUp, CutMix])
def test_mixing_label_smoothing_with_class_weights_is_the_losss_own_mean(mixer):
    """LabelSmoothingCrossEntropy with ``weight``: its two terms divide by different sums (the kept pixels, their
    weights), so with no mixing the batch's loss is still the loss's own mean, not the items' losses weighted by one
    sum; unreduced, each item's loss is the one ``get_preds`` gives."""
    torch.manual_seed(0)
    make = functools.partial(LabelSmoothingCrossEntropy, eps=0.5, weight=[1.0, 5.0, 0.5])
    loss_func = make()
    learn, out, y = _synthetic(loss_func, void=-100)
    y[4] = 1  # an item all of the heavily weighted class
    unreduced = _mixed_at_weights_one_and_zero(mixer, make, loss_func, learn, out, y, rel=1e-6)
    assert torch.allclose(unreduced, _batch_of_one(make(), out, y), atol=1e-5)


def test_mixup_trains_a_segmentation_with_void_pixels():
    learn, _, _ = _synthetic(CrossEntropyLossFlat(axis=1, ignore_index=255), all_void=True)
    before = [p.detach().clone() for p in learn.model.parameters()]
    pipekit.set_seed(0)
    learn.fit(2, 0.1, cbs=MixUp())
    assert all(np.isfinite(v) for v in learn.recorder.losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


# --- plot_top_losses' share of pixels right --------------------------------------------------------------------


def test_plot_top_losses_share_of_pixels_leaves_void_out(camvid, monkeypatch, tmp_path):
    """A segmentation's top losses are titled with the share of its pixels predicted right: over the pixels the loss
    reads, void ones left out, as the loss beside it."""
    import pipekit.learn.interpret as interpret_module

    dls, void = camvid
    pipekit.set_seed(0)
    learn = Learner(dls, nn.Conv2d(3, len(dls.vocab), 1), loss_func=CrossEntropyLossFlat(axis=1, ignore_index=void))
    interp = Interpretation.from_learner(learn)
    figures = []
    real = interpret_module.savefig_or_show
    monkeypatch.setattr(interpret_module, "savefig_or_show",
                        lambda fig, *a, **k: figures.append(fig) or real(fig, *a, **k))
    interp.plot_top_losses(4, path=tmp_path / "top.png")
    titles = [ax.get_title() for ax in figures[0].axes[2::3]]
    losses, idxs = interp.top_losses(4)
    kept_shares, all_shares = [], []
    for i, loss in zip(idxs.tolist(), losses.tolist()):
        right, kept = interp.decoded[i] == interp.targs[i], interp.targs[i] != void
        kept_shares.append(f"{float(right[kept].float().mean()):.0%} of pixels / {loss:.2f}")
        all_shares.append(f"{float(right.float().mean()):.0%} of pixels / {loss:.2f}")
    assert kept_shares != all_shares  # these images have void pixels the model gets wrong or right
    assert [t.replace("\n", " ") for t in titles] == kept_shares
