"""vision_learner's pretrained bodies as fastai builds them: the normalisation of a Lite body from a file, a
pretrained Lite body's batch-norm momentum after an export, fastai's XResNet layer groups, and fastai's rule
for a first convolution's weights on another number of input channels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import get_image_files
from pipekit.learn import build_arch, load_learner
from pipekit.learn.registry import arch_spec
from pipekit.vision import (ImageDataLoaders, Normalize, Resize, SegmentationDataLoaders, create_body,
                            create_vision_model, load_body_weights, unet_learner, vision_learner, xresnet18)
from pipekit.vision.efficientnet import (EfficientNetLite, _adapt_stem, efficientnet_lite0, efficientnet_lite_stats,
                                        load_pretrained)
from pipekit.vision.learner import _body_head


@pytest.fixture(scope="module")
def mnist64():
    """mnist_tiny at 64 px (no smaller than the size at which a pretrained body follows the data's statistics)."""
    return ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(64), bs=32, seed=0)


@pytest.fixture(scope="module")
def mnist28():
    return ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)


def _norm(learn):
    return next(t for t in learn.dls.train.batch_tfms if isinstance(t, Normalize))


def _body_bn_momenta(body: nn.Module) -> set:
    return {m.momentum for m in body.modules() if isinstance(m, nn.BatchNorm2d)}


# ------------------------------------------------------------------ a Lite body from a file: the Lite statistics
@pytest.fixture(scope="module")
def lite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lite") / "lite0.safetensors"
    save_file(EfficientNetLite("lite0", n_out=2).state_dict(), str(path))  # the layout learn.save writes
    return path


def test_lite_body_from_a_file_is_normalised_as_the_lite_weights(lite_file):
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(64), bs=32, seed=0)
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=str(lite_file))
    norm = _norm(learn)
    assert np.allclose(norm.mean, efficientnet_lite_stats[0], atol=1e-6)
    assert np.allclose(norm.std, efficientnet_lite_stats[1], atol=1e-6)


def test_unet_lite_encoder_from_a_file_is_normalised_as_the_lite_weights(lite_file):
    path = D.path("camvid_tiny")
    dls = SegmentationDataLoaders.from_label_func(
        path, get_image_files(path / "images")[:6], lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
        codes=np.loadtxt(path / "codes.txt", dtype=str), item_tfms=Resize(32), bs=3, seed=0)
    learn = unet_learner(dls, "efficientnet_lite0", pretrained=str(lite_file))
    norm = _norm(learn)
    assert np.allclose(norm.mean, efficientnet_lite_stats[0], atol=1e-6)
    assert np.allclose(norm.std, efficientnet_lite_stats[1], atol=1e-6)


# ------------------------------------------------------------------ a pretrained Lite body's momentum, exported
def test_export_keeps_a_pretrained_lite_body_bn_momentum(mnist64, tmp_path):
    learn = vision_learner(mnist64, "efficientnet_lite0")
    assert _body_bn_momenta(learn.model.body) == {0.01}
    loaded = load_learner(learn.export(tmp_path / "lite.pipekit"), cpu=True)
    assert _body_bn_momenta(loaded.model.body) == {0.01}
    assert {m.momentum for m in loaded.model.head.modules() if isinstance(m, nn.BatchNorm1d)} == {0.1}


def test_export_keeps_the_momentum_small_images_follow_at(tmp_path):
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
    learn = vision_learner(dls, "efficientnet_lite0")
    assert _body_bn_momenta(learn.model.body) == {0.1}  # images below 64 px: the body follows them
    assert "bn_momentum" not in arch_spec(learn.model)[1]
    loaded = load_learner(learn.export(tmp_path / "small.pipekit"), cpu=True)
    assert _body_bn_momenta(loaded.model.body) == {0.1}


def test_load_pretrained_records_the_momentum_of_a_registered_lite_model():
    model = load_pretrained(efficientnet_lite0(n_out=3, head="concat"))
    name, config = arch_spec(model)
    assert config["bn_momentum"] == 0.01
    assert _body_bn_momenta(build_arch(name, config).body) == {0.01}


def test_a_stored_bn_momentum_is_checked():
    with pytest.raises(ParameterError, match="bn_momentum"):
        build_arch("vision_model", {"arch": "xresnet18", "n_out": 2, "bn_momentum": 5})
    with pytest.raises(ParameterError, match="bn_momentum"):
        build_arch("efficientnet_lite0", {"n_out": 2, "bn_momentum": float("nan")})


# ------------------------------------------------------------------ XResNet layer groups: fastai's _xresnet_split
def test_xresnet_layer_groups_are_fastais():
    m = create_vision_model("xresnet18", 2, pretrained=False)
    groups = _body_head(m)
    ids = [{id(p) for p in g} for g in groups]
    assert len(groups) == 3
    assert ids[0] == {id(p) for p in m.body[:3].parameters()}  # the stem's three convolutions
    assert ids[1] == {id(p) for p in m.body[3:].parameters()}  # max-pool and the four stages
    assert ids[2] == {id(p) for p in m.head.parameters()}
    assert [len(g) for g in groups[:2]] == [9, 57]  # fastai's xresnet18: 9 and 57 tensors


def test_xresnet_groups_freeze_train_with_slices_and_export(mnist28, tmp_path):
    path = tmp_path / "xres.safetensors"
    save_file(xresnet18(n_in=3, n_out=2).state_dict(), str(path))
    learn = vision_learner(mnist28, "xresnet18", pretrained=str(path), train_bn=False)
    body = learn.model.body
    assert not any(p.requires_grad for p in body.parameters())  # frozen: the head trains
    learn.unfreeze()
    learn.fit_one_cycle(1, slice(1e-5, 1e-3))
    groups = learn.opt.param_groups if hasattr(learn.opt, "param_groups") else learn.opt.opt.param_groups
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    stem, stages = {lr[id(p)] for p in body[:3].parameters()}, {lr[id(p)] for p in body[3:].parameters()}
    head = {lr[id(p)] for p in learn.model.head.parameters()}
    assert len(stem) == len(stages) == len(head) == 1  # one rate per layer group
    assert stem.pop() < stages.pop() < head.pop()  # the stem alone gets the smallest
    learn.freeze_to(1)  # the stem stays frozen, the stages train
    assert not any(p.requires_grad for p in body[:3].parameters())
    assert all(p.requires_grad for p in body[4:].parameters())
    loaded = load_learner(learn.export(tmp_path / "xres.pipekit"), cpu=True)
    assert [len(g) for g in loaded.splitter(loaded.model)] == [9, 57, len(list(loaded.model.head.parameters()))]


# ------------------------------------------------------------------ first-conv weights for other channel counts
@pytest.fixture(scope="module")
def xres_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("xres") / "xresnet18.safetensors"
    colour = xresnet18(n_in=3, n_out=10)
    save_file(colour.state_dict(), str(path))
    return path, colour[0][0][0].weight.detach().clone()


@pytest.mark.parametrize("n_in", [1, 2, 4, 5])
def test_load_body_weights_adapts_the_first_conv_as_fastai(xres_file, n_in):
    path, w = xres_file
    body = create_body("xresnet18", n_in=n_in)
    load_body_weights(body, path)
    got = body[0][0].weight.detach()
    if n_in == 1:
        want = w.sum(1, keepdim=True)
    elif n_in == 2:
        want = w[:, :2] * 1.5
    else:
        want = torch.cat([w, torch.zeros(w.shape[0], n_in - 3, *w.shape[2:])], 1)
    assert torch.allclose(got, want, atol=1e-6)


def test_a_grey_first_conv_still_starts_a_colour_body(tmp_path):
    grey = xresnet18(n_in=1, n_out=2)
    path = tmp_path / "grey.safetensors"
    save_file(grey.state_dict(), str(path))
    body = create_body("xresnet18", n_in=3)
    load_body_weights(body, path)
    w = grey[0][0][0].weight.detach()
    assert torch.allclose(body[0][0].weight.detach(), w.repeat(1, 3, 1, 1) / 3, atol=1e-6)


def test_lite_stem_adapted_as_fastai():
    w = torch.randn(32, 3, 3, 3)
    assert torch.allclose(_adapt_stem(w, 1), w.sum(1, keepdim=True))
    assert torch.allclose(_adapt_stem(w, 2), w[:, :2] * 1.5)
    four = _adapt_stem(w, 4)
    assert torch.equal(four[:, :3], w) and bool((four[:, 3] == 0).all())


def test_pretrained_lite_with_four_channels_keeps_the_colours():
    w3 = load_pretrained(EfficientNetLite("lite0", n_out=2)).body._conv_stem.weight.detach()
    w4 = load_pretrained(EfficientNetLite("lite0", n_out=2, n_in=4)).body._conv_stem.weight.detach()
    assert torch.equal(w4[:, :3], w3) and bool((w4[:, 3] == 0).all())
