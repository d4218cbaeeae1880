"""The book's ``resnet18`` ... ``resnet152``: torchvision's architecture and parameter names, built with random
weights (pipekit ships no ResNet ImageNet weights and downloads nothing), trained, exported, started from a
torchvision state dict in a local safetensors file, and refused with ``pretrained=True`` saying what to do."""
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
from safetensors.torch import save_file
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import error_rate
from pipekit.vision import (ImageBlock, Normalize, Resize, ResNet, ResNetBody, SegmentationDataLoaders, cnn_learner,
                            imagenet_stats, resnet18, resnet34, resnet50, resnet101, resnet152, unet_learner,
                            vision_learner)

pytestmark = pytest.mark.data


def mnist_dls(n_train: int = 32, n_valid: int = 16, bs: int = 16):
    """mnist_tiny's 3s and 7s in colour (as ``ImageDataLoaders.from_folder`` reads them), ``n_*`` of each class."""
    def get_items(path: Path) -> list[Path]:
        return [f for split, n in (("train", n_train), ("valid", n_valid)) for digit in ("3", "7")
                for f in sorted(get_image_files(path / split / digit))[:n]]

    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_items, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(28)])
    return dblock.dataloaders(D.path("mnist_tiny"), bs=bs, seed=0, device="cpu")


@pytest.fixture(scope="module")
def dls():
    return mnist_dls()


# torchvision's published parameter counts (1000 classes) and blocks per stage
@pytest.mark.parametrize("fn, n_params, blocks, width", [
    (resnet18, 11_689_512, (2, 2, 2, 2), 512), (resnet34, 21_797_672, (3, 4, 6, 3), 512),
    (resnet50, 25_557_032, (3, 4, 6, 3), 2048), (resnet101, 44_549_160, (3, 4, 23, 3), 2048),
    (resnet152, 60_192_808, (3, 8, 36, 3), 2048)])
def test_parameter_counts_layout_and_names_are_torchvisions(fn, n_params, blocks, width):
    with torch.device("meta"):
        m = fn()
    assert isinstance(m, ResNet) and sum(p.numel() for p in m.parameters()) == n_params
    assert [n for n, _ in m.named_children()] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                                                  "layer4", "avgpool", "fc"]
    assert tuple(len(getattr(m, f"layer{i}")) for i in (1, 2, 3, 4)) == blocks
    keys = m.state_dict()
    bottleneck = width == 2048
    assert tuple(keys["conv1.weight"].shape) == (64, 3, 7, 7) and tuple(keys["fc.weight"].shape) == (1000, width)
    assert "layer1.0.downsample.0.weight" in keys if bottleneck else "layer1.0.downsample.0.weight" not in keys
    assert tuple(keys["layer2.0.downsample.1.running_var"].shape) == (128 * (4 if bottleneck else 1),)
    assert (f"layer4.{blocks[3] - 1}.bn3.weight" in keys) == bottleneck and "bn1.num_batches_tracked" in keys
    # the body is fastai's cut -2, under the same names: the same modules as the model's
    with torch.device("meta"):
        body = pipekit.vision.create_body(fn)
        assert body(torch.zeros(1, 3, 64, 64)).shape == (1, width, 2, 2)
    assert isinstance(body, ResNetBody) and list(body._modules) == ["conv1", "bn1", "relu", "maxpool", "layer1",
                                                                    "layer2", "layer3", "layer4"]


def test_the_books_first_model_line_is_refused_before_any_work_saying_what_to_do(dls):
    fixes = ['vision_learner(dls, "efficientnet_lite0", ...)', "vision_learner(dls, resnet34, pretrained=False)",
             'pretrained="resnet34.safetensors"', "pipekit ships no ResNet ImageNet weights", "fastai downloads"]
    not_loaders = object()  # refused before the loaders are read or a model is built
    for call in (lambda d: vision_learner(d, resnet34, metrics=error_rate),
                 lambda d: vision_learner(d, "resnet34", pretrained=True),
                 lambda d: cnn_learner(d, resnet34, metrics=error_rate)):
        for d in (not_loaders, dls):
            with pytest.raises(ParameterError) as err:
                call(d)
            msg = str(err.value)
            assert all(f in msg for f in fixes), msg
            lines = msg.splitlines()
            assert any("efficientnet_lite0" in ln and "pretrained extra" in ln for ln in lines)
            assert any("pretrained=False" in ln and "from scratch" in ln for ln in lines)
    with pytest.raises(ParameterError, match=r"unet_learner\(dls, resnet50, pretrained=False\)"):
        unet_learner(not_loaders, resnet50)
    with pytest.raises(ParameterError, match="no ResNet ImageNet weights"):
        pipekit.vision.create_body("resnet18", pretrained=True)


def test_pretrained_false_trains_and_its_export_predicts_the_same_in_a_fresh_process(dls, tmp_path):
    pipekit.set_seed(0)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=error_rate)
    assert learn.model.body[0] is learn.model.body.conv1 and isinstance(learn.model.body, ResNetBody)
    # fastai's ResNet split: stem with layer1-2, layer3-4, head; random weights train unfrozen
    groups = learn.splitter(learn.model)
    assert [len(g) for g in groups] == [30, 30, len(list(learn.model.head.parameters()))]
    assert all(p.requires_grad for p in learn.model.parameters())
    learn.fit_one_cycle(2, 1e-3)
    train_losses = [row[0] for row in learn.recorder.values]
    assert train_losses[-1] < 0.7 * train_losses[0], train_losses  # seeds 0-3: 0.60-0.73 -> 0.17-0.23
    files = [sorted(get_image_files(D.path("mnist_tiny") / "valid" / d))[-1] for d in ("3", "7")]
    here = [learn.predict(f) for f in files]
    path = learn.export(tmp_path / "resnet18.pipekit")
    script = (
        "import json, torch\n"
        "from pathlib import Path\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        "from pipekit.learn import load_learner\n"
        f"learn = load_learner({str(path)!r})\n"
        f"out = [learn.predict(Path(f)) for f in {[str(f) for f in files]!r}]\n"
        "print(json.dumps({'preds': [[str(l), p.tolist()] for l, _, p in out], "
        "'arch': type(learn.model.body).__name__}))\n")
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                         cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    fresh = json.loads(res.stdout.strip().splitlines()[-1])
    assert fresh["arch"] == "ResNetBody"
    for (label, _, probs), (f_label, f_probs) in zip(here, fresh["preds"]):
        assert str(label) == f_label and np.array_equal(probs.numpy(), np.asarray(f_probs, dtype=np.float32))


def test_a_torchvision_state_dict_in_safetensors_starts_the_body_with_imagenet_stats(tmp_path):
    dls = mnist_dls(n_train=8, n_valid=4, bs=8)
    torch.manual_seed(1)
    source = resnet18().eval()  # torchvision's names, 1000 classes, as torchvision.models.resnet18() saves them
    for m in source.modules():  # running statistics that are not the defaults, so a skipped buffer shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    state = source.state_dict()
    assert {"conv1.weight", "layer3.1.bn2.running_var", "layer4.0.downsample.0.weight", "fc.bias"} <= set(state)
    file = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(file))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loaders get the weights' statistics, with nothing to warn about
        learn = vision_learner(dls, resnet18, pretrained=str(file))
    body = learn.model.body.state_dict()
    assert set(body) == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(body[k], state[k]) for k in body)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = source.layer4(source.layer3(source.layer2(source.layer1(
            source.maxpool(source.relu(source.bn1(source.conv1(x))))))))
        assert torch.equal(learn.model.body.eval()(x), features)
    norms = [t for t in learn.dls.train.batch_tfms if isinstance(t, Normalize)]
    assert len(norms) == 1 and np.allclose(norms[0].mean, imagenet_stats[0]) and np.allclose(norms[0].std,
                                                                                           imagenet_stats[1])
    # pretrained weights start frozen, as fastai's: only the head (and the body's batch norms) train
    assert not learn.model.body.conv1.weight.requires_grad and learn.model.head[-1].weight.requires_grad


def test_resnet34_by_name_matches_fastais_body_and_head():
    """fastai 2.8.12's ``vision_learner(dls, resnet34, pretrained=False)`` on mnist_tiny (2 classes, colour): a
    body of 21,284,672 parameters, then a head of BatchNorm1d(1024), Linear(1024 -> 512), BatchNorm1d(512),
    Linear(512 -> 2) after the concatenated avg+max pooling."""
    dls = mnist_dls(n_train=8, n_valid=4, bs=8)
    by_name = vision_learner(dls, "resnet34", pretrained=False)
    by_fn = cnn_learner(dls, resnet34, pretrained=False)
    for learn in (by_name, by_fn):
        assert isinstance(learn.model.body, ResNetBody)
        assert sum(p.numel() for p in learn.model.body.parameters()) == 21_284_672
        shapes = [(type(m).__name__, tuple(m.weight.shape)) for m in learn.model.head
                  if isinstance(m, (nn.Linear, nn.BatchNorm1d))]
        assert shapes == [("BatchNorm1d", (1024,)), ("Linear", (512, 1024)), ("BatchNorm1d", (512,)),
                          ("Linear", (2, 512))]
    assert by_name.model.body.state_dict().keys() == by_fn.model.body.state_dict().keys()


def test_unet_learner_on_a_resnet34_encoder_builds_and_predicts_masks(tmp_path):
    path = D.path("camvid_tiny")
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = SegmentationDataLoaders.from_label_func(
            path, bs=4, fnames=sorted(get_image_files(path / "images"))[:12], seed=0,
            label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", codes=codes, item_tfms=Resize((24, 32)))
    for arch in ("resnet18", resnet34):
        learn = unet_learner(dls, arch, pretrained=False)
        assert isinstance(learn.model.encoder, ResNetBody)
        assert learn.model.skip_idx == [2, 4, 5, 6]  # after relu (1/2), layer1 (1/4), layer2 (1/8), layer3 (1/16)
    preds, targs = learn.get_preds()
    assert preds.shape[1:] == (len(codes), 24, 32) and targs.shape[1:] == (24, 32)
    loaded = pipekit.load_learner(learn.export(tmp_path / "unet.pipekit"))
    assert torch.equal(loaded.get_preds(dl=loaded.dls.test_dl(sorted(get_image_files(path / "images"))[:2]))[0],
                       learn.get_preds(dl=learn.dls.test_dl(sorted(get_image_files(path / "images"))[:2]))[0])
