"""Image files as users have them, decoded as fastai (PIL) reads them and as the cleaner shows them: an RGBA TIFF of
unassociated alpha (as PIL, GIMP and Photoshop save one) keeps its colours, a ``.tga`` file is read by PIL, and the
image cleaner's thumbnails are the pixels the model is fed (stored frame, 16-bit at its top 8 bits)."""

from __future__ import annotations

import base64
import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

import pipekit.datasets as D
from pipekit.vision.decode import (
    ImageDecodeError,
    decode_bytes,
    decode_image,
    image_from_value,
    verify_images,
)
from pipekit.vision.widgets import ImagesCleaner

pytestmark = pytest.mark.data


def cat() -> np.ndarray:
    """A dogscats photo, cropped wider than tall (a rotation shows), RGB uint8."""
    with Image.open(D.path("dogscats") / "train" / "cats" / "cat.0.jpg") as im:
        return np.asarray(im.convert("RGB").crop((0, 0, 200, 120))).copy()


def with_alpha(rgb: np.ndarray) -> np.ndarray:
    """RGBA: the left half half transparent, the top left corner fully transparent, the rest opaque."""
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :100] = 128
    alpha[:30, :40] = 0
    return np.dstack([rgb, alpha])


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate"])
def test_an_rgba_tiff_of_unassociated_alpha_keeps_its_colours(tmp_path, compression):
    rgba = with_alpha(cat())
    tif, png = tmp_path / "cat.tif", tmp_path / "cat.png"
    Image.fromarray(rgba, "RGBA").save(tif, compression=compression)
    Image.fromarray(rgba, "RGBA").save(png)
    with Image.open(tif) as im:
        assert im.mode == "RGBA" and im.tag_v2[338] == (2,)  # ExtraSamples: unassociated alpha
        fastai_rgb, fastai_grey = np.asarray(im.convert("RGB")), np.asarray(im.convert("L"))
        from_pil = image_from_value(im)
    np.testing.assert_array_equal(fastai_rgb, rgba[..., :3])  # PIL drops the alpha, colours as stored

    # the file, its bytes, and the PIL image give the same pixels: fastai's, and the PNG's of the same pixels
    for got in (decode_image(tif), decode_bytes(tif.read_bytes()), from_pil, decode_image(png)):
        np.testing.assert_array_equal(got, fastai_rgb)
    np.testing.assert_array_equal(decode_image(tif, mode="L")[..., 0], fastai_grey)
    np.testing.assert_array_equal(decode_image(tif, mode="L"), decode_image(png, mode="L"))
    assert verify_images([tif]) == []


def test_opencv_written_and_16bit_rgba_tiffs_decode_as_before(tmp_path):
    """OpenCV's own RGBA TIFFs (no ExtraSamples: read as stored) and 16-bit RGBA TIFFs keep OpenCV's decode; the
    PIL-written one beside them is no longer darker."""
    rgba = with_alpha(cat())
    pil_tif, cv8, cv16 = tmp_path / "pil.tif", tmp_path / "cv8.tif", tmp_path / "cv16.tif"
    Image.fromarray(rgba, "RGBA").save(pil_tif)
    bgra = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
    assert cv2.imwrite(str(cv8), bgra) and cv2.imwrite(str(cv16), bgra.astype(np.uint16) * 257)
    for f in (pil_tif, cv8, cv16):
        np.testing.assert_array_equal(decode_image(f), rgba[..., :3], err_msg=f.name)


def test_a_tga_file_decodes_through_pil(tmp_path):
    rgb = cat()
    tga = tmp_path / "cat.tga"
    Image.fromarray(rgb).save(tga)
    with Image.open(tga) as im:  # what learn.predict(Image.open(tga)) and fastai read
        fastai_rgb, fastai_grey = np.asarray(im.convert("RGB")), np.asarray(im.convert("L"))
    np.testing.assert_array_equal(decode_image(tga), fastai_rgb)
    np.testing.assert_array_equal(decode_image(str(tga), mode="L")[..., 0], fastai_grey)
    upper = tmp_path / "CAT.TGA"
    upper.write_bytes(tga.read_bytes())
    np.testing.assert_array_equal(decode_image(upper), fastai_rgb)
    assert verify_images([tga, upper]) == []

    # bytes that are no image stay unreadable, whatever the file is named
    junk = tmp_path / "junk.tga"
    junk.write_bytes(b"\x00\x01" * 40)
    with pytest.raises(ImageDecodeError, match=r"junk\.tga: not a readable image"):
        decode_image(junk)


def thumbnails(files) -> list[np.ndarray]:
    """The thumbnails the image cleaner shows for ``files`` (its page without ipywidgets, the same PNG as its
    drop-down view), as RGB arrays."""
    iw = ImagesCleaner(opts=("cats", "dogs"), max_n=len(files))
    iw.set_fns(files)
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', iw._repr_html_())
    assert len(pngs) == len(files)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(p))).convert("RGB")) for p in pngs]


def test_the_cleaner_shows_what_the_model_is_fed(tmp_path):
    rgb = cat()
    exif6, exif8 = tmp_path / "sideways6.jpg", tmp_path / "sideways8.jpg"
    for f, tag in ((exif6, 6), (exif8, 8)):
        exif = Image.Exif()
        exif[0x0112] = tag  # Orientation: rotate to display
        Image.fromarray(rgb).save(f, quality=95, exif=exif)
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257).save(grey16)
    tif = tmp_path / "alpha.tif"
    Image.fromarray(with_alpha(rgb), "RGBA").save(tif)
    files = [exif6, exif8, grey16, tif]
    for f, thumb in zip(files, thumbnails(files)):
        # each fits the default 128 x 256 box as stored, so the thumbnail is the decoded image itself
        np.testing.assert_array_equal(thumb, decode_image(f), err_msg=f.name)
    assert thumbnails([grey16])[0].mean() < 250  # not the white of a 16-bit PNG made 8-bit by clipping


def test_a_large_photo_thumbnail_is_shrunk_in_its_stored_frame(tmp_path):
    src = D.path("dogscats") / "train" / "cats" / "cat.0.jpg"
    f = tmp_path / "tagged.jpg"
    with Image.open(src) as im:  # a phone photo's size, wider than tall as stored, tagged to be shown upright
        exif = Image.Exif()
        exif[0x0112] = 6
        im.convert("RGB").resize((480, 300), Image.Resampling.BICUBIC).save(f, quality=95, exif=exif)
    fed = decode_image(f)
    thumb = thumbnails([f])[0]
    h, w = fed.shape[:2]
    assert (h, w) == (300, 480)
    scale = min(128 / h, 256 / w)
    assert abs(thumb.shape[0] - h * scale) <= 1 and abs(thumb.shape[1] - w * scale) <= 1
    small = np.asarray(Image.fromarray(fed).resize(thumb.shape[1::-1], Image.Resampling.BILINEAR)).astype(
        float
    )
    assert np.abs(small - thumb).mean() < 8
