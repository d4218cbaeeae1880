"""show_batch and show_results on loaders built without blocks (DataLoaders.from_dsets, as in chapters 13-19):
image-shaped tensors are drawn as pictures titled with their target (and prediction), other shapes are refused
saying what can be drawn."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import pipekit.data.show as show_mod
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders
from pipekit.learn import CrossEntropyLossFlat, Learner


@pytest.fixture(scope="module")
def digits():
    """mnist_tiny's 3s and 7s as (1, 28, 28) float tensors in 0..1 with int targets 3 and 7."""
    xs, ys = [], []
    for digit in ("3", "7"):
        for f in sorted((D.path("mnist_tiny") / "train" / digit).glob("*.png"))[:20]:
            xs.append(torch.tensor(np.asarray(Image.open(f).convert("L")), dtype=torch.float32)[None] / 255)
            ys.append(int(digit))
    return torch.stack(xs), torch.tensor(ys)


@pytest.fixture
def figures(monkeypatch):
    """The figures show_batch/show_results draw, kept instead of written."""
    kept = []
    monkeypatch.setattr(show_mod, "savefig_or_show", lambda fig, path=None, name="": kept.append(fig))
    yield kept
    import matplotlib.pyplot as plt
    for fig in kept:
        plt.close(fig)


def _pictures(fig):
    """(image array, title) of each drawn cell."""
    return [(ax.images[0].get_array(), ax.get_title()) for ax in fig.axes if ax.images]


def test_from_dsets_images_are_drawn_with_their_targets(digits, figures):
    x, y = digits
    dls = DataLoaders.from_dsets(list(zip(x, y)), list(zip(x, y)), bs=8, shuffle=False, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "axes sizes collapsed" from cells of text
        dls.train.show_batch(max_n=4)
    cells = _pictures(figures[0])
    assert len(cells) == 4
    for (img, title), xi, yi in zip(cells, x[:4], y[:4]):
        assert title == str(int(yi))
        assert np.allclose(np.asarray(img), xi[0].numpy(), atol=1e-6)  # the digit itself, grey, as given


def test_show_results_titles_actual_and_predicted(digits, figures):
    x, y = digits
    dls = DataLoaders.from_dsets(list(zip(x, y)), list(zip(x, y)), bs=8, shuffle=False, device="cpu")
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    learn.show_results(max_n=4)
    with torch.no_grad():
        pred = model(x[:4]).argmax(1)
    titles = [t for _, t in _pictures(figures[0])]
    assert titles == [f"{int(a)} / {int(p)}" for a, p in zip(y[:4], pred)]


def test_uint8_hw_and_normalised_images_are_drawn(digits, figures):
    x, y = digits
    as_bytes = (x[:, 0] * 255).to(torch.uint8)  # (H, W) uint8
    DataLoaders.from_dsets(list(zip(as_bytes, y)), list(zip(as_bytes, y)), bs=4, shuffle=False,
                           device="cpu").train.show_batch(max_n=2)
    img, _ = _pictures(figures[-1])[0]
    assert np.allclose(np.asarray(img), as_bytes[0].numpy() / 255, atol=1e-6)
    normed = (x - 0.13) / 0.31  # values outside 0..1 are stretched to 0..1 per image
    DataLoaders.from_dsets(list(zip(normed, y)), list(zip(normed, y)), bs=4, shuffle=False,
                           device="cpu").train.show_batch(max_n=2)
    img, _ = _pictures(figures[-1])[0]
    assert float(np.min(img)) == pytest.approx(0) and float(np.max(img)) == pytest.approx(1)


def test_shapes_that_are_not_images_are_refused_saying_what_can_be_drawn(digits):
    x, y = digits
    flat = x.view(len(x), -1)
    dls = DataLoaders.from_dsets(list(zip(flat, y)), list(zip(flat, y)), bs=4, device="cpu")
    with pytest.raises(ParameterError, match=r"input 0 of item 0 is a tensor of shape \(784,\).*\(C, H, W\) with C = 1, 3 or 4"):
        dls.show_batch()
    big_y = torch.zeros(len(x), 28, 28)
    dls = DataLoaders.from_dsets(list(zip(x, big_y)), list(zip(x, big_y)), bs=4, device="cpu")
    with pytest.raises(ParameterError, match=r"target 0 of item 0 has shape \(28, 28\)"):
        dls.show_batch()
