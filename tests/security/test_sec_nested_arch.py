"""Exported learners whose record nests an architecture spec (a ResNet body, a U-Net encoder, a vision_model inside a
vision_model) that asks for layers the body cut throws away: what a record can make ``load_learner`` build is
bounded by the weights the file stores, at any depth, before anything is allocated; edited U-Net arguments are
refused by their field name."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pipekit.datasets as D
from pipekit.data import get_image_files
from pipekit.learn import load_learner
from pipekit.vision import Resize, SegmentationDataLoaders, resnet18, unet_learner, vision_learner

from file_edits import edited_copy, refused_quickly


def spec(name: str, config: dict) -> dict:
    """A nested architecture as an export stores one (``config_to_data({'arch': resnet18(n_out=7)})``)."""
    return {"class": "pipekit.learn.ArchSpec", "params": {"name": name, "config": config}, "state": {}}


def arch_config(record: dict) -> dict:
    return record["arch"]["config"]


def refused(path: Path, field: str) -> str:
    """``load_learner(path)`` raises an ExportError naming the file and ``field`` in under 5 s of CPU time (each
    crafted record below built for up to 36 s before; refusing one takes about 0.5 s on an idle 2-core machine and
    has taken 2.1 s beside a parallel test run), tracing under 200 MB (reading the stored weights of a resnet18
    U-Net traces about 150 MB); returns its message."""
    return refused_quickly(load_learner, path, named=(str(path), field), seconds=5, megabytes=200)


@pytest.fixture(scope="module")
def resnet_export(mnist_dls, tmp_path_factory):
    learn = vision_learner(mnist_dls, resnet18, pretrained=False)
    path = tmp_path_factory.mktemp("r18") / "r18.pipekit"
    learn.export(path)
    learn.model.eval()
    return path, learn


@pytest.fixture(scope="module")
def unet_export(tmp_path_factory):
    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    files = sorted(get_image_files(path / "images"))[:8]
    dls = SegmentationDataLoaders.from_label_func(path, files, lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                                                  codes=codes, item_tfms=Resize(32), bs=4, seed=0)
    learn = unet_learner(dls, resnet18, pretrained=False)
    out = tmp_path_factory.mktemp("unet") / "unet.pipekit"
    learn.export(out)
    learn.model.eval()
    return out, learn


def test_sec_genuine_resnet_and_unet_exports_still_load_and_predict_the_same(resnet_export, unet_export, tmp_path):
    for path, learn, x in ((*resnet_export, torch.rand(2, 1, 28, 28)), (*unet_export, torch.rand(2, 3, 32, 32))):
        loaded = load_learner(path)
        assert torch.equal(loaded.model(x), learn.model(x))
    # the nested spec pipekit itself writes for a module arch, with the sizes the body keeps, loads too
    path, learn = resnet_export
    nested = edited_copy(path, lambda c: c.update(arch=spec("resnet18", {"n_in": 1, "n_out": 2})),
                         tmp_path / "nested.pipekit", arch_config)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(load_learner(nested).model(x), learn.model(x))


@pytest.mark.parametrize("case", ["n_out", "lin_ftrs_wide", "lin_ftrs_long", "xresnet_deep"])
def test_sec_nested_vision_arch_cannot_build_more_than_the_file_stores(resnet_export, tmp_path, case):
    # each of these built, and loaded, after allocating up to 2 GB or taking up to 36 s
    nested = {"n_out": spec("resnet18", {"n_in": 1, "n_out": 1_000_000}),
              "lin_ftrs_wide": spec("vision_model", {"arch": "resnet18", "n_out": 2, "n_in": 1,
                                                     "lin_ftrs": [15625, 15625]}),
              "lin_ftrs_long": spec("vision_model", {"arch": "resnet18", "n_out": 2, "n_in": 1,
                                                     "lin_ftrs": [8] * 20000}),
              "xresnet_deep": spec("vision_model", {"arch": spec("xresnet", {"layers": [5000, 1, 1, 1], "n_in": 1,
                                                                            "n_out": 2}), "n_out": 2, "n_in": 1}),
              }[case]
    path = edited_copy(resnet_export[0], lambda c: c.update(arch=nested), tmp_path / f"{case}.pipekit", arch_config)
    said = refused(path, "'arch.config'")
    assert "architecture 'vision_model' build over" in said


def test_sec_nested_unet_encoder_cannot_build_more_than_the_file_stores(unet_export, tmp_path):
    path = edited_copy(unet_export[0], lambda c: c.update(encoder=spec("resnet18", {"n_in": 3, "n_out": 1_000_000})),
                       tmp_path / "enc.pipekit", arch_config)
    assert "architecture 'unet' build over" in refused(path, "'arch.config'")


@pytest.mark.parametrize("value", [2.5, "3", None, [3], 10**30])
def test_sec_unet_n_out_is_refused_by_its_field(unet_export, tmp_path, value):
    path = edited_copy(unet_export[0], lambda c: c.update(n_out=value), tmp_path / "n_out.pipekit", arch_config)
    said = refused(path, "'arch.config.n_out'")
    assert "stored output convolution has" in said


@pytest.mark.parametrize("value", [2.5, "3", 10**30])
def test_sec_unet_n_in_is_refused_without_a_stack_trace(unet_export, tmp_path, value):
    path = edited_copy(unet_export[0], lambda c: c.update(n_in=value), tmp_path / "n_in.pipekit", arch_config)
    said = refused(path, "n_in")
    assert "\n" not in said and "frame #" not in said, said
