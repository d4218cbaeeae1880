"""``show_image`` of pictures as users open them (a 16-bit PNG, a float TIFF, an RGBA array, a palette or CMYK
image, a flipped array) draws every grey level and channel; a misspelt data set name gets a suggestion from
``untar_data`` and ``URLs`` as it does from ``path``."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data.external import URLs, untar_data
from pipekit.data.plotting import show_image


@pytest.fixture(autouse=True)
def _plots(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path / "plots"))


@pytest.fixture(scope="module")
def digit():
    """The first 3 of mnist_tiny's training set, as its PNG decodes (uint8, 28 x 28)."""
    first = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[0]
    return np.array(Image.open(first))


def _grey(ax):
    """The grey picture drawn on ``ax`` as the 0..1 values its colour map is given (after matplotlib's scaling)."""
    im = ax.get_images()[0]
    return np.asarray(im.norm(np.asarray(im.get_array(), dtype=float)))


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_a_wide_pil_image_keeps_its_grey_levels(tmp_path, digit, mode):
    if mode == "I;16":  # a 16-bit PNG, as a scanner or a medical image writes one, opened again
        Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "digit16.png")
        im = Image.open(tmp_path / "digit16.png")
    else:
        im = Image.fromarray(digit.astype(np.int32 if mode == "I" else np.float32) * (257 if mode == "I" else 1.5))
    assert im.mode == mode
    # every grey level of the digit is drawn where it is: the same picture as the 8-bit PNG's
    expected = (digit - digit.min()) / (digit.max() - digit.min())
    assert len(np.unique(expected)) > 50
    np.testing.assert_allclose(_grey(show_image(im)), expected, atol=1e-6)
    np.testing.assert_allclose(_grey(show_image(Image.fromarray(digit))), expected, atol=1e-6)


def test_a_big_endian_16_bit_image_is_drawn(digit):
    im = Image.frombytes("I;16B", digit.shape[::-1], (digit.astype(">u2") * 257).tobytes())
    expected = (digit - digit.min()) / (digit.max() - digit.min())
    np.testing.assert_allclose(_grey(show_image(im)), expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_an_8_bit_pil_image_is_drawn_as_decoded(digit, mode):
    im = Image.fromarray(digit).convert(mode)
    drawn = np.asarray(show_image(im).get_images()[0].get_array())
    assert drawn.dtype == np.uint8 and np.array_equal(drawn, np.array(im))


def test_rgba_arrays_and_tensors_are_drawn_with_their_alpha(digit):
    rgba = np.dstack([digit, digit, digit, np.where(digit > 0, 255, 128).astype(np.uint8)])
    expected = rgba / 255
    for im in (rgba, torch.from_numpy(rgba).permute(2, 0, 1), torch.from_numpy(rgba).permute(2, 0, 1).float() / 255):
        drawn = np.asarray(show_image(im).get_images()[0].get_array())
        assert drawn.shape == (28, 28, 4)
        np.testing.assert_allclose(drawn, expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(28, 28, 2), (2, 28, 28), (5, 28, 28), (28, 28, 5)])
def test_a_refusal_names_the_shape_given(shape):
    with pytest.raises(ParameterError, match=rf"an array of shape \({shape[0]}, {shape[1]}, {shape[2]}\) is not an "
                                             r"image.*1, 3 or 4 channels"):
        show_image(np.zeros(shape, np.uint8))
    with pytest.raises(ParameterError, match=rf"a tensor of shape \({shape[0]}, {shape[1]}, {shape[2]}\)"):
        show_image(torch.zeros(shape))


@pytest.mark.parametrize("given", ["mnist_tini", "MNIST_TINY", "https://s3.amazonaws.com/fast-ai-sample/mnist_tini.tgz"])
def test_untar_data_suggests_the_name_meant(given):
    with pytest.raises(ValueError, match=r"no registered data set comes from .*did you mean 'mnist_tiny'\? The "
                                         r"registered data sets are \[.*'mnist_tiny'.*register_dataset"):
        untar_data(given)
    with pytest.raises(ValueError) as far:
        untar_data("https://example.org/pets.tgz")
    assert "did you mean" not in str(far.value)


@pytest.mark.parametrize("given,meant", [("MNIST_TINI", "URLs.MNIST_TINY"), ("mnist_tiny", "URLs.MNIST_TINY"),
                                         ("ADULT_SAMPL", "URLs.ADULT_SAMPLE"),
                                         ("FASHION_MNIST", "untar_data('fashion_mnist')")])
def test_urls_suggests_the_book_name_meant(given, meant):
    said = re.escape(f"registered as URLs.{given} (did you mean {meant}?); it knows ")
    with pytest.raises(AttributeError, match=said + r".*URLs.MNIST_TINY \(mnist_tiny\)"):
        getattr(URLs, given)
    with pytest.raises(AttributeError) as far:
        _ = URLs.PETS
    assert "did you mean" not in str(far.value)


# PIL images in every mode a user opens (a palette GIF or PNG, grey with alpha, a CMYK JPEG, black and white) are
# drawn in their colours, and a flipped array (np.flip, arr[::-1]) flipped

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
