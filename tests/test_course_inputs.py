"""Inputs as the course gives them, on real data: a pandas Series of path strings to ``test_dl`` of ``from_df``
loaders, a DataBlock of two targets without ``n_inp``, ``resize_images(..., ext=)`` over files of one name in two
formats, and ``vision_learner(pool=False)``."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from PIL import Image
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, ImageDataLoaders, Resize, create_vision_model, resize_images, vision_learner


# ------------------------------------------------------------------ test_dl of a Series of path strings
def test_test_dl_reads_a_series_of_path_strings_as_the_paths_on_from_df_loaders():
    path = D.path("mnist_tiny")
    df = pd.read_csv(path / "labels.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = ImageDataLoaders.from_df(df, path, fn_col="name", label_col="label", valid_pct=0.2, item_tfms=Resize(28),
                                       bs=32, seed=0, device="cpu")
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False)
    # a Kaggle-style frame of ids, made into paths: a column the getter (ColReader('name')) does not read
    ss = pd.DataFrame({"image_id": sorted(f.name for f in (path / "test").iterdir())[:6]})
    files = ss.image_id.map(lambda f: path / "test" / f)
    as_list = learn.get_preds(dl=dls.test_dl(list(files)))[0]
    for items in (files, files.astype(str), pl.Series("image_id", [str(f) for f in files])):
        preds = learn.get_preds(dl=dls.test_dl(items))[0]
        assert torch.equal(preds, as_list)
    one_by_one = torch.stack([learn.predict(f)[2] for f in files])
    assert torch.allclose(as_list, one_by_one, atol=1e-4)  # in the items' order
    # a Series named as the column the getter reads is that column of a table, read as the training rows were
    named = df.name[:6]
    assert torch.allclose(learn.get_preds(dl=dls.test_dl(named))[0],
                          torch.stack([learn.predict(path / f)[2] for f in named]), atol=1e-4)


# ------------------------------------------------------------------ n_inp defaulted
def test_several_targets_without_n_inp_name_the_default_and_the_n_inp_to_pass():
    path = D.path("mnist_tiny")

    def size(f):
        return "big" if f.stat().st_size > 300 else "small"

    with pytest.raises(ParameterError) as e:
        DataBlock(blocks=(ImageBlock, CategoryBlock, CategoryBlock), get_items=get_image_files,
                  get_y=[parent_label, size], splitter=GrandparentSplitter(), item_tfms=Resize(28))
    msg = str(e.value)
    assert "get_y gives 2 getter(s) for 3 blocks" in msg and "n_inp was not given and defaulted to 2" in msg
    assert "pass n_inp=1" in msg and "get_x" not in msg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock, CategoryBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20],
                        get_y=[parent_label, size], splitter=GrandparentSplitter(), item_tfms=Resize(28),
                        n_inp=1).dataloaders(path, bs=16, device="cpu")
    assert len(dls.one_batch()) == 3
    # n_inp given and wrong: the getters' counts, as before
    with pytest.raises(ParameterError, match=r"get_x gives 2 getter\(s\) for 2 input\(s\) and get_y 2 for 1"):
        DataBlock(blocks=(ImageBlock, CategoryBlock, CategoryBlock), get_y=[parent_label, size], n_inp=2)


# ------------------------------------------------------------------ resize_images name collisions
def test_resize_images_keeps_the_first_of_files_written_under_one_name_and_reports_the_others(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    coco = D.path("coco_tiny") / "train"
    photo = sorted(coco.iterdir())[0]
    with Image.open(photo) as im:
        im.convert("RGB").save(src / "photo.png")
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(src / "photo.webp")  # black: not the photo
    shutil.copy(sorted(coco.iterdir())[1], src / "other.jpg")
    with pytest.warns(UserWarning, match=r"resize_images: 1 file\(s\) would be written under the name of another "
                                         r"with ext='\.jpg'.*photo\.webp.*photo\.jpg.*photo\.png"):
        left_out = resize_images(src, max_size=100, dest=out, ext=".jpg")
    assert list(left_out) == [src / "photo.webp"]
    assert sorted(p.name for p in out.iterdir()) == ["other.jpg", "photo.jpg"]
    with Image.open(out / "photo.jpg") as im:
        assert np.asarray(im).mean() > 20  # the PNG's photo, not the black WebP written over it
    # without ext each file keeps its own name: nothing left out
    assert list(resize_images(src, max_size=100, dest=tmp_path / "all")) == []
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["other.jpg", "photo.png", "photo.webp"]


# ------------------------------------------------------------------ vision_learner(pool=False)
def test_vision_learner_pool_false_builds_a_head_without_pooling_and_trains():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), valid="valid", item_tfms=Resize(28), bs=64, seed=0,
                                           device="cpu")

    def arch():  # a net that pools itself: the body cut before its classifier gives (N, 16) features
        return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(16, 10))

    pipekit.set_seed(0)
    learn = vision_learner(dls, arch(), pretrained=False, cut=-1, pool=False, lin_ftrs=[8])
    pooled = vision_learner(dls, "simple_cnn", pretrained=False, lin_ftrs=[8])
    kinds = [type(m).__name__ for m in learn.model.head]
    assert kinds == ["BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    assert type(pooled.model.head[0]).__name__ == "ConcatPool2d" and learn.model.head[0].num_features == 16
    learn.unfreeze()
    learn.fit(1, 1e-2)
    assert np.isfinite(learn.recorder.values[-1]).all()
    assert create_vision_model(arch(), 2, cut=-1, pool=False)(torch.zeros(2, 3, 28, 28)).shape == (2, 2)
    # a body giving a feature map needs the head's pooling
    with pytest.raises(ParameterError, match=r"vision_learner: pool=False leaves the pooling out.*shape "
                                             r"\(2, 64, \d+, \d+\).*leave pool=True"):
        vision_learner(dls, "simple_cnn", pretrained=False, pool=False)


def test_vision_learner_pool_false_builds_the_body_once_and_prefixes_its_errors(tmp_path):
    from pipekit.learn import register_arch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), valid="valid", item_tfms=Resize(28), bs=64, seed=0,
                                           device="cpu")
    built = []

    @register_arch("course_inputs_pooling_net", overwrite=True)
    def pooling_net(pretrained=False):  # pools itself: cut=-1 leaves (N, 16) features
        built.append(1)
        return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(16, 10))

    pipekit.set_seed(0)
    learn = vision_learner(dls, pooling_net, pretrained=False, cut=-1, pool=False, lin_ftrs=[8])
    assert len(built) == 1  # the head is measured on the body the model holds
    assert learn.model.head[0].num_features == 16
    # the export rebuilds the unpooled head
    loaded = pipekit.load(learn.export(tmp_path / "pool_false.pipekit"))
    x = torch.rand(2, 3, 28, 28)
    learn.model.eval()
    loaded.model.eval()
    assert torch.allclose(loaded.model.cpu()(x), learn.model.cpu()(x))
    # an error building the body is vision_learner's, as with pool=True
    for pool in (True, False):
        with pytest.raises(ParameterError, match=r"^vision_learner: cut=-2 keeps none of the 2 children of XResNet"):
            vision_learner(dls, "xresnet18", pretrained=False, cut=-2, pool=pool)

