"""Chapter 6, as a reader writes it: a multi-label classifier from a table (get_x / get_y functions of a
row, ``MultiCategoryBlock``, ``partial(accuracy_multi, thresh=0.2)``) and a key-point regression
(``PointBlock``), on mnist_tiny: each digit gets a list of labels derived from it, and, placed somewhere on
a larger canvas, its centre of mass (computed from the pixels) is the point to find. Predictions take rows in every form a user holds them,
and points come back in pixels of the image predicted on.
"""
from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import polars as pl
import pytest
import torch
from book_helpers import fresh_predictions, probs_of

import pipekit
import pipekit.datasets as D
from pipekit.data import ColSplitter, DataBlock, GrandparentSplitter, MultiCategoryBlock, get_image_files
from pipekit.core.errors import DataError
from pipekit.learn import accuracy_multi, load_learner, mse, simple_cnn
from pipekit.vision import ImageBlock, PointBlock, Resize, aug_transforms, decode_image, vision_learner

path = D.path("mnist_tiny")
LABELS = {"3": "three round", "7": "seven straight"}


@pytest.fixture(scope="module")
def df():
    """The book's PASCAL table, for digits: file name, space-separated labels, is_valid."""
    t = pl.read_csv(path / "labels.csv")
    return t.with_columns(pl.col("label").cast(pl.String).replace_strict(LABELS).alias("labels"),
                          pl.col("name").str.starts_with("valid/").alias("is_valid")).drop("label")


def get_x(r):
    return path / r["name"]


def get_y(r):
    return r["labels"].split(" ")


@pytest.fixture(scope="module")
def multi(df, one_torch_thread):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), splitter=ColSplitter("is_valid"),
                       get_x=get_x, get_y=get_y, item_tfms=Resize(28))
    dls = dblock.dataloaders(df, bs=64, seed=0)
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", metrics=partial(accuracy_multi, thresh=0.2))
    learn.fit_one_cycle(3, 1e-2)
    return learn


def test_multi_label_beats_the_best_constant(multi, df):
    assert multi.dls.vocab == ["round", "seven", "straight", "three"]
    preds, targs = multi.get_preds()
    share = targs.float().mean(0)
    best_constant = float(torch.maximum(share, 1 - share).mean())
    acc = multi.recorder.value("accuracy_multi")
    assert acc == pytest.approx(float(((preds > 0.2) == targs.bool()).float().mean()), abs=1e-6)
    assert acc > best_constant + 0.2, (acc, best_constant)


def test_multi_label_predicts_rows_in_every_form(multi, df, tmp_path):
    valid = df.filter(pl.col("is_valid"))
    i = 5
    row = valid.row(i, named=True)
    forms = {"dict": row, "pandas Series": valid.to_pandas().iloc[i], "pandas frame": valid.to_pandas().iloc[[i]],
             "polars frame": valid[i], "bare path": path / row["name"]}
    preds = {k: multi.predict(v) for k, v in forms.items()}
    ref = preds["dict"]
    assert sorted(ref[0]) == sorted(get_y(row))  # the digit's labels
    assert ref[1].shape == (4,) and set(ref[1].tolist()) <= {0.0, 1.0}
    for k, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs_of(ref), atol=1e-6), k
    with pytest.raises(KeyError, match="name"):  # a row without the column get_x reads
        multi.predict({"file": row["name"], "labels": row["labels"]})
    export = multi.export(tmp_path / "multi.pipekit")
    (decoded, probs), = fresh_predictions(export, [("path", path / row["name"])], tmp_path)
    assert decoded == ref[0] and np.allclose(probs, probs_of(ref), atol=1e-6)
    # get_x, a function of this module, is not stored in the export (no pickle): the loaded model reads
    # bare images, and says why it cannot read rows
    with pytest.raises(DataError, match="without its getter 'get_x'.*pipekit.register"):
        load_learner(export).predict(row)


def centre_of_mass(p):
    """The book's get_ctr, for digits: the ink's centre in pixels (x, y), computed from the image itself."""
    img = decode_image(p, mode="L")[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return [[float((xs * img).sum() / img.sum()) + 0.5, float((ys * img).sum() / img.sum()) + 0.5]]


@pytest.fixture(scope="module")
def canvases(tmp_path_factory):
    """Each digit at a random place on a 48x48 canvas (MNIST centres its digits, so on their own 28x28
    images the centres barely move), written as PNG files under train/ and valid/."""
    root = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    for f in get_image_files(path, folders=["train", "valid"]):
        canvas = np.zeros((48, 48), np.uint8)
        y, x = rng.integers(0, 21, size=2)
        canvas[y:y + 28, x:x + 28] = decode_image(f, mode="L")[:, :, 0]
        out = root / f.parent.parent.name / f.parent.name / f.name
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), canvas)
    return root


@pytest.fixture(scope="module")
def points(canvases, one_torch_thread):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), PointBlock(img_size=(48, 48))), get_items=get_image_files,
                       get_y=centre_of_mass, splitter=GrandparentSplitter(), item_tfms=Resize(32),
                       batch_tfms=aug_transforms(max_rotate=10, max_warp=0))
    dls = dblock.dataloaders(canvases, bs=64, seed=0)
    pipekit.set_seed(0)
    # five stride-2 blocks see the whole 32-px image (as the book's resnet does): a point is a place, and
    # three blocks' pooled 4x4 features barely know where they came from; no dropout in a regression head
    arch = partial(simple_cnn, channels=(16, 32, 64, 64, 64))
    learn = vision_learner(dls, arch, metrics=mse, ps=0)
    learn.fit_one_cycle(6, 1e-2)
    return learn


def test_points_are_learned_and_answered_in_pixels(points, canvases, tmp_path):
    _, targs = points.get_preds()
    baseline = float(((targs - targs.mean(0)) ** 2).mean())  # always predicting the average centre
    assert points.recorder.value("mse") < 0.3 * baseline, (points.recorder.value("mse"), baseline)
    files = sorted(get_image_files(canvases / "valid"))[::35]
    errs, base_errs = [], []
    mean_centre = (targs.reshape(-1, 2).mean(0).numpy() + 1) / 2 * 48
    for f in files:
        pts, unit, _ = points.predict(f)
        assert pts.shape == (1, 2) and (pts >= 0).all() and (pts <= 48).all()  # pixels of the 48x48 image
        # -1..1 of the 32-px resized image, back to the 48-px source: (u + 1) / 2 * 48
        assert np.allclose(pts, (unit.numpy().reshape(1, 2) + 1) / 2 * 48, atol=1e-4)
        truth = np.asarray(centre_of_mass(f))
        errs.append(np.abs(pts - truth).max())
        base_errs.append(np.abs(mean_centre - truth).max())
    assert np.mean(errs) < 0.5 * np.mean(base_errs), (np.mean(errs), np.mean(base_errs))
    # the same digit as a grey 2-D array, a (H, W, 1) array or a tensor: the same pixels, the same answer
    f = files[0]
    grey = decode_image(f, mode="L")
    ref = points.predict(f)[0]
    for item in (grey[:, :, 0], grey, torch.from_numpy(grey[:, :, 0])):
        assert np.allclose(points.predict(item)[0], ref, atol=1e-5)
    there = fresh_predictions(points.export(tmp_path / "points.pipekit"), [("path", f), ("array", grey[:, :, 0])],
                              tmp_path)
    for decoded, _ in there:
        assert np.allclose(np.asarray(decoded), ref, atol=1e-5)
