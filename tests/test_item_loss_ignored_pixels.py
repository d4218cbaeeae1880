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
from pipekit.learn import (CrossEntropyLossFlat, FocalLossFlat, Interpretation, LabelSmoothingCrossEntropy, Learner,
                           MSELossFlat)
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
