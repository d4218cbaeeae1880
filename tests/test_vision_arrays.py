"""Images already in memory (Fashion-MNIST's IDX arrays) into loaders: layouts and labels given the wrong way are
refused with what to do, labels given as the class names work."""
from __future__ import annotations

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.vision import dataloaders_from_arrays

VOCAB = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def fmnist():
    p = D.path("fashion_mnist")
    return D.read_idx(p / "train-images-idx3-ubyte.gz")[:96], D.read_idx(p / "train-labels-idx1-ubyte.gz")[:96]


def test_channel_first_arrays_are_refused_with_the_transpose(fmnist):
    x, y = fmnist
    rgb_first = np.repeat(x[:, None], 3, axis=1)  # (N, 3, 28, 28), as torch holds images
    with pytest.raises(DataError, match=r"channel-first.*x_train.transpose\(0, 2, 3, 1\)"):
        dataloaders_from_arrays(rgb_first[:64], y[:64], rgb_first[64:], y[64:], vocab=VOCAB)
    dls = dataloaders_from_arrays(rgb_first[:64].transpose(0, 2, 3, 1), y[:64], rgb_first[64:].transpose(0, 2, 3, 1),
                                  y[64:], vocab=VOCAB, bs=16, seed=0)
    assert tuple(dls.one_batch()[0].shape) == (16, 3, 28, 28)


def test_train_and_valid_images_must_match(fmnist):
    x, y = fmnist
    with pytest.raises(DataError, match="28x28x1 .* validation images 20x20x1"):
        dataloaders_from_arrays(x[:64], y[:64], x[64:, :20, :20], y[64:], vocab=VOCAB)


def test_labels_as_indices_whole_floats_or_names(fmnist):
    x, y = fmnist
    by_index = dataloaders_from_arrays(x[:64], y[:64], x[64:], y[64:], vocab=VOCAB, bs=16, seed=0)
    names = np.array(VOCAB)[y]
    by_name = dataloaders_from_arrays(x[:64], names[:64], x[64:], names[64:], vocab=VOCAB, bs=16, seed=0)
    as_float = dataloaders_from_arrays(x[:64], y[:64].astype(float), x[64:], y[64:].astype(float), vocab=VOCAB, bs=16,
                                       seed=0)
    want = next(iter(by_index.valid))[1].tolist()
    assert next(iter(by_name.valid))[1].tolist() == want == next(iter(as_float.valid))[1].tolist()
    with pytest.raises(DataError, match=r"holds \d\.7, not a class index"):
        dataloaders_from_arrays(x[:64], y[:64] + 0.7, x[64:], y[64:], vocab=VOCAB)
    with pytest.raises(DataError, match=r"\['Boot'\], which are not in vocab"):
        dataloaders_from_arrays(x[:64], np.where(y[:64] == 9, "Boot", names[:64]), x[64:], names[64:], vocab=VOCAB)
    with pytest.raises(DataError, match="outside 0..9"):
        dataloaders_from_arrays(x[:64], y[:64] + 10, x[64:], y[64:], vocab=VOCAB)
