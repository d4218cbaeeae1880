"""Image models and learners: XResNet, U-Net, vision_learner/unet_learner, pretrained weights, export."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_image_files, parent_label
from pipekit.data.seed import set_seed
from pipekit.learn import accuracy, arch_spec, build_arch, load_learner
from pipekit.learn.nets import ConcatPool2d
from pipekit.vision import (ImageBlock, MaskBlock, PixelAccuracy, Resize, image_paths_with, load_body_weights, unet,
                            unet_learner, vision_learner, vision_model, xresnet18, xresnet34, xresnet50)
from pipekit.vision.models import ResBlock


@pytest.fixture(scope="module")
def mnist_dls():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=32, seed=0, device="cpu")
    rng = np.random.default_rng(0)
    for i in (0, 1):
        ds = dls.loaders[i].dataset
        dls.loaders[i] = dls.loaders[i].new(dataset=ds.subset(np.sort(rng.permutation(len(ds))[:96])))
    return dls


@pytest.mark.parametrize("fn, n_params", [(xresnet18, 11.2e6), (xresnet34, 21.3e6), (xresnet50, 23.5e6)])
def test_xresnet_shapes_and_improved_stem(fn, n_params):
    m = fn(n_in=1, n_out=7)
    assert m(torch.zeros(2, 1, 40, 56)).shape == (2, 7)
    assert abs(sum(p.numel() for p in m.parameters()) - n_params) / n_params < 0.02
    convs = [c for c in m[0][:3] for c in c.modules() if isinstance(c, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3 and convs[0].stride == (2, 2)  # 3-conv stem, no 7x7
    strided = [b for b in m.modules() if isinstance(b, ResBlock) and isinstance(b.pool, nn.AvgPool2d)]
    assert len(strided) == 3  # the downsampling shortcuts average-pool, then 1x1 conv
    last_bn = [b.convs[-1][1] for b in m.modules() if isinstance(b, ResBlock)]
    assert all(float(bn.weight.detach().abs().sum()) == 0 for bn in last_bn)  # residual branches start at zero


def test_vision_model_head_and_registry_roundtrip():
    m = vision_model("xresnet18", n_out=5, n_in=3)
    body, head = m
    assert isinstance(head[0], ConcatPool2d) and isinstance(head[1], nn.BatchNorm1d) and head[1].num_features == 1024
    assert isinstance(head[-1], nn.Linear) and head[-1].out_features == 5
    assert sum(isinstance(x, nn.Dropout) for x in head) == 2
    clone = build_arch(*arch_spec(m))
    clone.load_state_dict(m.state_dict())
    m.eval(), clone.eval()
    x = torch.randn(2, 3, 48, 48)
    assert torch.allclose(m(x), clone(x))
    with pytest.raises(ValueError, match="arch"):
        vision_model("resnet9000", 2)


def test_unet_outputs_one_score_per_pixel_and_class():
    u = unet("xresnet18", n_out=6, n_in=3)
    assert u(torch.zeros(1, 3, 72, 100)).shape == (1, 6, 72, 100)
    assert arch_spec(u) == ("unet", {"encoder": "xresnet18", "n_out": 6, "n_in": 3, "y_range": None})


def test_vision_learner_groups_freeze_and_training(mnist_dls, tmp_path):
    set_seed(0)  # the accuracy bar below is for this seeded initialisation
    learn = vision_learner(mnist_dls, "simple_cnn", metrics=accuracy, path=tmp_path)
    assert len(learn.splitter(learn.model)) == 2
    # normalize=True added one Normalize (measured on training pixels) to the shared pipeline
    assert sum(t.__class__.__name__ == "Normalize" for t in mnist_dls.train.batch_tfms) == 1
    assert sum(t.__class__.__name__ == "Normalize" for t in mnist_dls.valid.batch_tfms) == 1
    x, _ = mnist_dls.one_batch()
    assert abs(x.mean().item()) < 0.3 and 0.7 < x.std().item() < 1.3
    learn.fit_one_cycle(3, 1e-2)
    loss, acc = learn.validate()
    assert acc > 0.8, acc
    # pretrained from that file: the body starts from the saved weights and is frozen
    f = learn.save("small", with_opt=False)
    tuned = vision_learner(mnist_dls, "simple_cnn", pretrained=f, path=tmp_path)
    for a, b in zip(learn.model[0].state_dict().values(), tuned.model[0].state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    tuned.create_opt() if tuned.opt is None else None
    frozen = [p for m in tuned.model[0].modules() if isinstance(m, nn.Conv2d) for p in m.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    with pytest.raises(ValueError, match="does not match this architecture"):
        vision_learner(mnist_dls, "xresnet18", pretrained=f)
    with pytest.raises(FileNotFoundError, match="no such file"):
        vision_learner(mnist_dls, "simple_cnn", pretrained=tmp_path / "nope.pth")


def test_export_and_load_learner_predict_the_same(mnist_dls, tmp_path):
    learn = vision_learner(mnist_dls, "simple_cnn", metrics=accuracy, path=tmp_path)
    learn.fit(1, 1e-3)
    f = learn.export(tmp_path / "mnist.pipekit")
    again = load_learner(f)
    files = get_image_files(D.path("mnist_tiny") / "valid" / "7")[:6]
    p1 = learn.get_preds(dl=learn.dls.test_dl(files))[0]
    p2 = again.get_preds(dl=again.dls.test_dl(files))[0]
    assert torch.allclose(p1, p2, atol=1e-5)


def test_grey_weights_start_a_colour_body(tmp_path):
    grey = xresnet18(n_in=1, n_out=3)
    torch.save({"model": grey.state_dict()}, tmp_path / "grey.pth")
    colour = xresnet18(n_in=3, n_out=3)[0]
    n = load_body_weights(colour, tmp_path / "grey.pth")
    assert n == len(colour.state_dict())
    w1, w3 = grey[0][0][0].weight, colour[0][0].weight
    assert w3.shape[1] == 3 and torch.allclose(w3.sum(1, keepdim=True), w1, atol=1e-5)


def test_unet_learner_on_camvid_and_pixel_accuracy_ignores_void():
    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images")[:8],
                       get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize((32, 48))])
    dls = dblock.dataloaders(path, bs=3, seed=0, device="cpu")
    void = codes.index("Void")
    learn = unet_learner(dls, "simple_cnn", metrics=[PixelAccuracy(ignore_index=void)])
    assert learn.model(dls.one_batch()[0]).shape == (3, 32, 32, 48)
    learn.fit(1, 1e-3)
    assert 0.0 <= learn.validate()[1] <= 1.0
    m = PixelAccuracy(ignore_index=void)
    pred = torch.zeros(1, 32, 2, 2)
    pred[0, 3] = 1  # predicts class 3 everywhere
    m.accumulate(pred, torch.tensor([[[3, void], [3, 5]]]), None, 1)
    assert m.value == pytest.approx(2 / 3)


def test_show_results_writes_png(mnist_dls, tmp_path):
    from pipekit.vision import show_results

    learn = vision_learner(mnist_dls, "simple_cnn")
    out = show_results(learn, max_n=4, path=tmp_path / "r.png")
    assert out.exists() and out.stat().st_size > 1000
    with pytest.raises(ValueError, match="max_n"):
        show_results(learn, max_n=0)
