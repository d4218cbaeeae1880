"""``show_image`` of PIL images in every mode a user opens (a palette GIF or PNG, grey with alpha, a CMYK JPEG,
black and white) draws their colours, and of a flipped array (``np.flip``, ``arr[::-1]``) draws it flipped."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pipekit.datasets as D
from pipekit.data.plotting import show_image


@pytest.fixture(autouse=True)
def _plots(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path / "plots"))


@pytest.fixture(scope="module")
def digit():
    """The first 3 of mnist_tiny's training set, as its PNG decodes (uint8, 28 x 28)."""
    first = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[0]
    return np.array(Image.open(first))


def _drawn(ax):
    return np.asarray(ax.get_images()[0].get_array())


@pytest.fixture(scope="module")
def colour(digit):
    """The digit in three different channels: a colour picture whose channels differ everywhere it is drawn."""
    return np.dstack([digit, 255 - digit, (digit // 2).astype(np.uint8)])


def test_a_palette_image_is_drawn_in_its_colours(tmp_path, colour):
    Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(tmp_path / "pal.png")
    im = Image.open(tmp_path / "pal.png")
    assert im.mode == "P"
    drawn = _drawn(show_image(im))
    assert drawn.shape == (28, 28, 3) and np.array_equal(drawn, np.array(im.convert("RGB")))


def test_a_palette_image_with_transparency_keeps_it(tmp_path, colour):
    im = Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    im.info["transparency"] = 0
    drawn = _drawn(show_image(im))
    assert drawn.shape == (28, 28, 4) and (drawn[..., 3] == 0).any() and (drawn[..., 3] == 255).any()


def test_grey_with_alpha_is_drawn_grey_with_its_alpha(digit):
    im = Image.merge("LA", (Image.fromarray(digit), Image.fromarray(np.where(digit > 0, 255, 100).astype(np.uint8))))
    drawn = _drawn(show_image(im))
    assert drawn.shape == (28, 28, 4)
    assert np.array_equal(drawn[..., 0], digit) and np.array_equal(drawn[..., 3], np.array(im)[..., 1])


def test_cmyk_is_drawn_as_its_rgb(colour):
    im = Image.fromarray(colour).convert("CMYK")
    drawn = _drawn(show_image(im))
    assert drawn.shape == (28, 28, 3) and np.array_equal(drawn, np.array(im.convert("RGB")))


def test_black_and_white_is_drawn_black_and_white(digit):
    im = Image.fromarray(digit).convert("1")
    drawn = _drawn(show_image(im))
    assert drawn.dtype == np.uint8 and set(np.unique(drawn)) == {0, 255}


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_flipped_array_is_drawn_flipped(colour, dtype):
    arr = colour if dtype == np.uint8 else colour.astype(np.float32) / 255
    np.testing.assert_allclose(_drawn(show_image(np.flip(arr, 0))), colour[::-1] / 255, atol=1e-6)
    np.testing.assert_allclose(_drawn(show_image(arr[:, ::-1])), colour[:, ::-1] / 255, atol=1e-6)
