"""Two more ways chapter 1's readers bring their images, each trained, asked about one image in the forms a
user holds it, exported and asked again in a fresh Python process:

- a CSV of file names and labels (``ImageDataLoaders.from_csv``, the getters are ``ColReader`` s, stored in
  the export as data): the model reads rows as dicts, pandas Series, one-row pandas or Polars frames, or the
  bare path, before and after ``load_learner``;
- images already in memory as arrays (Fashion-MNIST's IDX files, ``dataloaders_from_arrays``): the model
  reads an array, a tensor or a PIL image, and exports like any other.

CPU-sized: mnist_tiny at 28 px, 2,000 Fashion-MNIST images, ``simple_cnn``.
"""
from __future__ import annotations

import numpy as np
import PIL.Image
import polars as pl
import pytest
import torch
from book_helpers import fresh_predictions, probs_of

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data.external import read_idx
from pipekit.learn import accuracy
from pipekit.vision import ImageDataLoaders, dataloaders_from_arrays, vision_learner

mnist = D.path("mnist_tiny")
fashion = D.path("fashion_mnist")


@pytest.fixture(scope="module")
def from_csv(one_torch_thread):
    dls = ImageDataLoaders.from_csv(mnist, "labels.csv", fn_col="name", label_col="label", valid_pct=0.2, seed=0,
                                    img_cls="L", bs=64)
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", metrics=accuracy)
    learn.fit_one_cycle(2, 1e-2)
    return learn


def test_csv_of_file_names_trains_and_reads_rows_in_every_form(from_csv, tmp_path):
    assert from_csv.dls.vocab == [3, 7] and len(from_csv.dls.valid_ds) == 281  # fastai's int(0.2 * 1408)
    assert from_csv.recorder.value("accuracy") > 0.9  # threes and sevens: the majority is about 0.5
    table = pl.read_csv(mnist / "labels.csv")
    i = 5
    row = table.row(i, named=True)
    forms = {"dict": row, "inputs only": {"name": row["name"]}, "pandas Series": table.to_pandas().iloc[i],
             "one-row pandas frame": table.to_pandas().iloc[[i]], "one-row polars frame": table[i],
             "bare path": mnist / row["name"]}
    preds = {k: from_csv.predict(v) for k, v in forms.items()}
    ref = preds["dict"]
    assert ref[0] in (3, 7) and from_csv.dls.vocab[int(ref[1])] == ref[0]
    for k, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs_of(ref), atol=1e-6), k
    with pytest.raises(ValueError, match="one item; this DataFrame has 2 rows"):
        from_csv.predict(table[:2])
    with pytest.raises(DataError, match="name"):  # a row without the file-name column
        from_csv.predict({"file": row["name"]})
    # ColReader is a component: the export stores it, so the loaded model still reads rows
    there = fresh_predictions(from_csv.export(tmp_path / "digits.pipekit"),
                              [("row", row), ("pandas_row", row), ("path", mnist / row["name"])], tmp_path)
    for decoded, probs in there:
        assert decoded == ref[0] and np.allclose(probs, probs_of(ref), atol=1e-6)


@pytest.fixture(scope="module")
def fashion_arrays():
    x, y = read_idx(fashion / "train-images-idx3-ubyte.gz"), read_idx(fashion / "train-labels-idx1-ubyte.gz")
    return x[:2000], y[:2000], x[2000:2500], y[2000:2500]


@pytest.fixture(scope="module")
def from_arrays(fashion_arrays, one_torch_thread):
    xt, yt, xv, yv = fashion_arrays
    vocab = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
    dls = dataloaders_from_arrays(xt, yt, xv, yv, vocab=vocab, bs=64, seed=0)
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", metrics=accuracy)
    learn.fit_one_cycle(2, 1e-2)
    return learn


def test_arrays_train_predict_and_export(from_arrays, fashion_arrays, tmp_path):
    _, _, xv, yv = fashion_arrays
    assert from_arrays.recorder.value("accuracy") > 0.6  # ten classes: a constant answer gets about 0.1
    img = xv[3]  # (28, 28) uint8, as the training images
    forms = {"array HW": img, "array HW1": img[:, :, None], "tensor": torch.from_numpy(img.copy()),
             "PIL image": PIL.Image.fromarray(img)}
    preds = {k: from_arrays.predict(v) for k, v in forms.items()}
    ref = preds["array HW"]
    assert ref[0] in from_arrays.dls.vocab and probs_of(ref).shape == (10,)
    for k, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs_of(ref), atol=1e-6), k
    # the predictions over the validation arrays are what get_preds gives
    preds_v, _ = from_arrays.get_preds()
    assert np.allclose(preds_v[3].numpy(), probs_of(ref), atol=1e-5)
    there = fresh_predictions(from_arrays.export(tmp_path / "fashion.pipekit"), [("array", img), ("tensor", img)],
                              tmp_path)
    for decoded, probs in there:
        assert decoded == ref[0] and np.allclose(probs, probs_of(ref), atol=1e-6)
