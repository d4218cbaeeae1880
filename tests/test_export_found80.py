"""An export names the getters it leaves out (and the loaded learner which one it lacks), get_preds(with_loss=True)
refuses a loader without targets, and DataBlock.summary decodes only the images it walks (mnist_tiny)."""
import re
import warnings
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

import pipekit
import pipekit.datasets as D
import pipekit.vision.cache as image_cache
from pipekit.core import DataError, PipekitWarning
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, ImageDataLoaders, Normalize, Resize, vision_learner

path = D.path("mnist_tiny")


def get_x(r):
    return path / r["name"]


def get_y(r):
    return r["label"]


def lab(f):
    return Path(f).parent.name


@pytest.fixture(scope="module")
def df():
    labels = pd.read_csv(path / "labels.csv")
    return labels.groupby("label").head(40).reset_index(drop=True)  # both classes


@pytest.fixture(scope="module")
def files():
    return [f for split in ("train", "valid") for c in ("3", "7") for f in sorted(get_image_files(path / split / c))[:20]]


def export_warnings(learn, name):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        f = learn.export(name)
    return f, [str(x.message) for x in w if issubclass(x.category, PipekitWarning) and "getter" in str(x.message)]


def test_export_names_each_getter_left_out_and_its_role(df, tmp_path):
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_x=get_x, get_y=get_y,
                    splitter=RandomSplitter(seed=0)).dataloaders(df, bs=16)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    f, said = export_warnings(learn, "g.pipekit")
    assert len(said) == 1
    msg = said[0]
    assert "'get_x', 'get_y' cannot be kept in the file" in msg
    assert "the input getter of block 0" in msg and "the label getter of block 1" in msg
    assert "pipekit.register(get_x, kind='getter')" in msg and "pipekit.register(get_y, kind='getter')" in msg
    loaded = pipekit.load_learner(f)
    with pytest.raises(DataError, match=r"without its getter 'get_x', which reads the input.*pipekit.register\(get_x"):
        loaded.predict(df.iloc[0])
    assert loaded.predict(path / df.name[0])[0] == learn.predict(df.iloc[0])[0]  # the input itself still predicts


def test_left_out_label_func_says_labels_cannot_be_read(files, tmp_path):
    dls = ImageDataLoaders.from_path_func(path, files, label_func=lab, valid_pct=0.2, seed=0, bs=16, img_cls="L")
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    f, said = export_warnings(learn, "m.pipekit")
    assert len(said) == 1 and "'lab'" in said[0] and "the label getter of block 1" in said[0]
    assert "labels of new items (test_dl(items, with_labels=True)) without 'lab'" in said[0]
    loaded = pipekit.load_learner(f)
    with pytest.raises(DataError, match="getter 'lab', which reads the labels") as e:
        loaded.dls.test_dl(files[:4], with_labels=True)
    assert "give the input itself" not in str(e.value) and "pipekit.register(lab, kind='getter')" in str(e.value)
    assert loaded.get_preds(dl=loaded.dls.test_dl(files[:4]))[0].shape == (4, 2)  # without labels: as before


def test_lambda_advice_is_code_that_keeps_them(df, tmp_path):
    block = partial(DataBlock, blocks=(ImageBlock(cls="L"), CategoryBlock), splitter=RandomSplitter(seed=0))
    dls = block(get_x=lambda r: path / r["name"], get_y=lambda r: r["label"]).dataloaders(df, bs=16)
    _, said = export_warnings(vision_learner(dls, "resnet18", pretrained=False, path=tmp_path), "l.pipekit")
    assert len(said) == 1 and "'<lambda>', '<lambda>'" in said[0]
    advice = re.findall(r"(get_[xy] = pipekit\.register\(lambda r: \.\.\., kind='getter', name='myproject\.get_[xy]'\))",
                        said[0])
    assert len(advice) == 2
    for line in advice:
        compile(line, "advice", "exec")
    # as the advice says: two lambdas, each registered under a name of its own, are kept
    gx = pipekit.register(lambda r: path / r["name"], kind="getter", name="found80.lambda_get_x", replace=True)
    gy = pipekit.register(lambda r: r["label"], kind="getter", name="found80.lambda_get_y", replace=True)
    learn = vision_learner(block(get_x=gx, get_y=gy).dataloaders(df, bs=16), "resnet18", pretrained=False,
                           path=tmp_path)
    f, said = export_warnings(learn, "r.pipekit")
    assert said == []
    loaded = pipekit.load_learner(f)
    assert loaded.predict(df.iloc[3])[0] == learn.predict(df.iloc[3])[0]
    assert loaded.get_preds(dl=loaded.dls.test_dl(df.head(5), with_labels=True))[1].shape == (5,)


def test_get_preds_with_loss_refuses_a_loader_without_targets(files, tmp_path):
    dls = ImageDataLoaders.from_folder(path, img_cls="L", bs=16, seed=0)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    with pytest.raises(DataError, match=r"with_loss=True.*no targets.*with_labels=True"):
        learn.get_preds(dl=dls.test_dl(files[:6]), with_loss=True)
    _, targs, losses = learn.get_preds(dl=dls.test_dl(files[:6], with_labels=True), with_loss=True)
    assert targs.shape == (6,) and losses.shape == (6,)
    assert learn.get_preds(dl=dls.test_dl(files[:6]))[1] is None  # without with_loss: predictions only, as before


def test_summary_decodes_only_what_it_walks(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    decoded = []
    real = image_cache._decode_one
    monkeypatch.setattr(image_cache, "_decode_one", lambda p, *a, **k: decoded.append(p) or real(p, *a, **k))
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                       get_items=partial(get_image_files, folders=["train", "valid"]), splitter=GrandparentSplitter(),
                       item_tfms=Resize(20), batch_tfms=Normalize())
    text = dblock.summary(path, bs=4, show=False)
    assert not (tmp_path / "cache" / "images").exists()  # no presize cache written
    # the batch's 4 images and the 256 Normalize() learns from (of 709 training images, 1408 in all)
    assert len(decoded) <= 4 + 256 + 1 and len(set(decoded)) == len(decoded)
    stored = next(line for line in text.splitlines() if line.startswith("  stored as ImageStore"))
    assert "n=1408, size=(20, 20), channels=1" in stored
    assert f"presized by Resize(size=20) in the image cache under {tmp_path / 'cache' / 'images'}" in stored
    assert "Collating a batch of 4" in text and "Batch transform Normalize" in text
    assert "(Tensor(4, 1, 20, 20) float32, Tensor(4,) int64)" in text
    dls = dblock.dataloaders(path, bs=4)  # dataloaders() still presizes every image into the cache
    assert len(decoded) > 1408 and (tmp_path / "cache" / "images").exists() and len(dls.train_ds) == 709
