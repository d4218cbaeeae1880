"""An XResNet starts as fastai's (``init_cnn``): Kaiming-normal convolutions and linear head, every bias 0; and
``LabelSmoothingCrossEntropy(reduction='none')`` gives one loss per item in the targets' layout, (bs, h, w) for a
segmentation's (bs, n_classes, h, w) outputs, as fastai's does, while a classifier's stay (bs,) (MixUp, get_preds).

The expected head statistics are fastai 2.8.12's (xresnet18: weight std 0.0619 for sqrt(2/512) = 0.0625, bias 0)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.data import get_image_files
from pipekit.learn import LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat, Learner, MixUp, load_learner
from pipekit.vision import Resize, SegmentationDataLoaders, XResNet, unet_learner, xresnet18, xresnet50
from test_fastai_heads_optim import _fastai_label_smoothing  # fastai's forward, written out


# ------------------------------------------------------------------------------------------------ XResNet's init
@pytest.mark.parametrize("factory", [xresnet18, xresnet50])
def test_xresnet_head_starts_kaiming_normal_with_zero_bias(factory):
    pipekit.set_seed(0)
    model = factory(n_out=10)
    head = model[1][-1]
    assert isinstance(head, nn.Linear)
    kaiming = (2 / head.in_features) ** 0.5
    assert float(head.weight.detach().std()) == pytest.approx(kaiming, rel=0.05)   # PyTorch's default: 0.41 of it
    assert float(head.weight.detach().mean()) == pytest.approx(0.0, abs=0.1 * kaiming)
    assert torch.count_nonzero(head.bias) == 0
    # every bias of the net starts at 0, as fastai's init_cnn leaves them
    biases = [(n, m.bias) for n, m in model.named_modules() if getattr(m, "bias", None) is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for _, b in biases), [n for n, b in biases if b.any()]


def test_xresnet_convolutions_and_head_all_kaiming_normal():
    pipekit.set_seed(0)
    model = XResNet(expansion=1, layers=(1, 1), n_in=1, n_out=4, widths=(16, 32))
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.numel() >= 500:
            fan_in = m.weight[0].numel()
            assert float(m.weight.detach().std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.15), name
    assert torch.count_nonzero(model[1][-1].bias) == 0


def test_trained_xresnet_with_mixup_and_label_smoothing_keeps_its_weights_on_load(mnist_dls, tmp_path,
                                                                                 one_torch_thread):
    pipekit.set_seed(0)
    model = XResNet(expansion=1, layers=(1, 1), n_in=1, n_out=2, widths=(16, 32))
    learn = Learner(mnist_dls, model, loss_func=LabelSmoothingCrossEntropy(), cbs=MixUp(0.4))
    learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.value("train_loss"))
    assert learn.loss_func.reduction == "mean"                         # MixUp put it back
    preds, targs, losses = learn.get_preds(with_loss=True, act=lambda x: x)
    n = len(mnist_dls.valid.dataset)
    assert preds.shape == (n, 2) and losses.shape == (n,)               # one loss per image
    torch.testing.assert_close(losses, LabelSmoothingCrossEntropy(reduction="none")(preds, targs))
    # the trained head, bias included, is what a loaded learner holds: the init is only the constructor's
    assert torch.count_nonzero(learn.model[1][-1].bias) > 0
    loaded = load_learner(learn.export(tmp_path / "xr.pipekit"))
    for (k, a), b in zip(learn.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu()), k


# ------------------------------------------------------------------------------- label smoothing, one loss per item
@pytest.mark.parametrize("weight", [None, [0.5, 2.0, 1.0]])
def test_label_smoothing_none_keeps_a_segmentations_layout(weight):
    g = torch.Generator().manual_seed(0)
    logits, targ = torch.randn(2, 3, 4, 5, generator=g), torch.randint(0, 3, (2, 4, 5), generator=g)
    w = torch.tensor(weight) if weight is not None else None
    got = LabelSmoothingCrossEntropy(0.1, weight, "none")(logits, targ)
    assert got.shape == (2, 4, 5)
    torch.testing.assert_close(got, _fastai_label_smoothing(logits, targ, 0.1, w, "none"))
    assert round(float(got.mean()), 6) == round(float(_fastai_label_smoothing(logits, targ, 0.1, w, "none").mean()), 6)
    # the flat variant flattens, as fastai's LabelSmoothingCrossEntropyFlat: the same values, one a pixel
    flat = LabelSmoothingCrossEntropyFlat(0.1, axis=1, weight=weight, reduction="none")(logits, targ)
    assert flat.shape == (40,)
    torch.testing.assert_close(flat, got.reshape(-1))
    # a (bs, n_classes, seq) sequence too
    seq = LabelSmoothingCrossEntropy(reduction="none")(logits[:, :, 0], targ[:, 0])
    assert seq.shape == (2, 5)


def test_label_smoothing_none_on_real_masks_gives_per_image_losses(one_torch_thread):
    path = D.path("camvid_tiny")
    dls = SegmentationDataLoaders.from_label_func(
        path, bs=8, fnames=get_image_files(path / "images")[:24], seed=0,
        label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
        codes=np.loadtxt(path / "codes.txt", dtype=str), item_tfms=Resize((24, 32)))
    pipekit.set_seed(0)
    learn = unet_learner(dls, "xresnet18", loss_func=LabelSmoothingCrossEntropy())
    xb, yb = dls.one_batch()
    with torch.no_grad():
        out = learn.model.eval()(xb)
    each = LabelSmoothingCrossEntropy(reduction="none")(out, yb)
    assert each.shape == yb.shape == (len(yb), 24, 32)
    torch.testing.assert_close(each, _fastai_label_smoothing(out, yb.long(), 0.1, None, "none"))
    torch.testing.assert_close(each.mean(), LabelSmoothingCrossEntropy()(out, yb))
    preds, targs, losses = learn.get_preds(with_loss=True, act=lambda x: x)
    assert losses.shape == (len(targs),)                                 # one loss per image: its pixels' mean
    torch.testing.assert_close(losses, LabelSmoothingCrossEntropy(reduction="none")(preds, targs).mean((1, 2)))
