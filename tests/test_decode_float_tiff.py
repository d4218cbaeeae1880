"""A 32-bit float (PIL mode F) or integer (mode I) TIFF, which OpenCV cannot decode, is decoded by PIL to the pixels
fastai's ``PILImage.create`` gives (``convert('RGB')``: clipped to 0..255, truncated), within the same pixel bound;
``verify_images`` does not list it, and a file neither OpenCV nor PIL reads is refused with a message that says to
check and re-save it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipekit.vision.decode as decode
from pipekit.vision import ImageDataLoaders, ImageDecodeError, decode_image, verify_images
from pipekit.vision.decode import ImageTooLargeError, decode_bytes

pytestmark = pytest.mark.data

MNIST = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent")) / "mnist_tiny"
UNREADABLE = "corrupt, truncated, or in a format OpenCV and PIL cannot read"


def digits(split: str, label: str, n: int = 3) -> list[Path]:
    return sorted((MNIST / split / label).glob("*.png"))[:n]


def grey(png: Path) -> np.ndarray:
    return np.asarray(Image.open(png).convert("L")).astype(np.float32)


# 0..255 with fractions and values past 255 (clipped, truncated); and 0..1, which fastai reads as near-black
SCALES = {"0..255": lambda a: a + 0.7, "0..1": lambda a: a / 255}


def float_tiff(png: Path, dest: Path, scale: str) -> Path:
    Image.fromarray(SCALES[scale](grey(png)).astype(np.float32)).save(dest)
    assert Image.open(dest).mode == "F"
    return dest


def fastai_pixels(path: Path, mode: str = "RGB") -> np.ndarray:
    """What fastai's PILImage.create (PILImageBW for "L") gives: PIL's own convert."""
    arr = np.asarray(Image.open(path).convert(mode))
    return arr[:, :, None] if arr.ndim == 2 else arr


@pytest.mark.parametrize("scale", list(SCALES))
def test_a_float_tiff_decodes_to_fastais_pixels(tmp_path, scale):
    import warnings

    f = float_tiff(digits("train", "3")[0], tmp_path / "three.tiff", scale)
    for mode in ("RGB", "L"):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            got = decode_image(f, mode=mode)
        assert got.dtype == np.uint8 and got.shape == (28, 28, 3 if mode == "RGB" else 1)
        np.testing.assert_array_equal(got, fastai_pixels(f, mode))
        # values of 0..1 come out black, as fastai reads them: said, naming the file and the fix
        black = [str(w.message) for w in said if "lie in 0..1" in str(w.message)]
        assert (black != []) == (scale == "0..1")
        assert all("three.tiff" in m and "* 255" in m for m in black)
    if scale == "0..255":  # the digit is there: clipped at 255, fractions dropped, as PIL converts
        assert decode_image(f).max() == 255 and np.array_equal(decode_image(f)[..., 0],
                                                               np.clip(grey(digits("train", "3")[0]) + 0.7, 0,
                                                                       255).astype(np.uint8))
    assert verify_images([f]) == []


def test_an_integer_tiff_decodes_as_its_grey_levels(tmp_path):
    png = digits("train", "7")[0]
    f = tmp_path / "seven.tiff"
    Image.fromarray(grey(png).astype(np.int32)).save(f)
    assert Image.open(f).mode == "I"
    np.testing.assert_array_equal(decode_image(f, mode="L")[..., 0], np.asarray(Image.open(png).convert("L")))
    assert verify_images([f]) == []


def test_from_folder_reads_float_tiffs_as_fastai_does(tmp_path):
    root = tmp_path / "mnist_float"
    for split in ("train", "valid"):
        for label in ("3", "7"):
            (root / split / label).mkdir(parents=True)
            for i, png in enumerate(digits(split, label)):
                float_tiff(png, root / split / label / f"{png.stem}.tiff", list(SCALES)[i % 2])
    assert verify_images(root) == []
    dls = ImageDataLoaders.from_folder(root, bs=4, seed=0)
    assert dls.vocab == ["3", "7"] and len(dls.train_ds) == 6 and len(dls.valid_ds) == 6
    for ds in (dls.train_ds, dls.valid_ds):
        for i in range(len(ds)):
            np.testing.assert_array_equal(np.asarray(ds[i][0]), fastai_pixels(Path(ds.items[i])))
    assert dls.one_batch()[0].shape == (4, 3, 28, 28)


def test_the_pixel_bound_applies_before_pil_decodes(tmp_path, monkeypatch):
    f = float_tiff(digits("train", "3")[0], tmp_path / "three.tiff", "0..255")
    monkeypatch.setattr(decode, "MAX_PIXELS", 28 * 28 - 1)
    loaded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loaded.append(self) or None)
    with pytest.raises(ImageTooLargeError, match=f"{f}: .*28x28"):
        decode_image(f)
    assert loaded == []


def test_a_file_neither_reads_is_refused_saying_to_check_and_resave(tmp_path):
    good = float_tiff(digits("valid", "3")[0], tmp_path / "good.tiff", "0..1")
    data = good.read_bytes()
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(data[: len(data) // 2])  # the header stands, half the float pixels are gone
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"a page of text saved as .png, not an image\n" * 20)
    for bad in (cut, junk):
        with pytest.raises(ImageDecodeError) as e:
            decode_image(bad)
        said = str(e.value)
        assert said.startswith(f"{bad}: not a readable image ({UNREADABLE}")
        assert "verify_images" in said and "re-save it in a common format" in said and "remove it if it is broken" in said
        with pytest.raises(ImageDecodeError, match=UNREADABLE):
            decode_bytes(bad.read_bytes(), name=bad.name)
    assert verify_images([good, cut, junk]) == [cut, junk]


def test_a_format_pil_hands_to_another_program_is_never_decoded(tmp_path, monkeypatch):
    """An EPS file (PIL would run Ghostscript to draw it) named .png: its header is read, its pixels never are."""
    from PIL import EpsImagePlugin

    loads = []

    def must_not_run(self, *a, **k):
        loads.append(self)
        raise OSError("Ghostscript would run here")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", must_not_run)
    f = tmp_path / "drawing.png"
    f.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n")
    with pytest.raises(ImageDecodeError, match=r"drawing\.png: not a readable image .*OpenCV and PIL cannot read"):
        decode_image(f)
    assert loads == []


def _icon_holding_png(side: int) -> bytes:
    """An ICO file of one icon, a side x side RGBA PNG of zeros (a few kB: the rows compress to nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pack = zlib.compressobj(9)
    row = bytes(1 + 4 * side)  # filter byte and RGBA zeros
    idat = b"".join(pack.compress(row) for _ in range(side)) + pack.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0))
           + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    # ICONDIR (reserved, type 1 = icon, 1 image) and one ICONDIRENTRY (0 = 256 a side) pointing at the PNG
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22) + png


def test_an_icon_is_refused_without_decoding_its_pixels(tmp_path, monkeypatch):
    """PIL's ICO opener decodes the largest icon while opening (a PNG inside declaring any size): pipekit never
    opens an ICO with PIL, so an icon holding a 2000x2000 PNG is refused, naming the file, with no pixel decoded."""
    from PIL import IcoImagePlugin, PngImagePlugin

    loads = []

    def must_not_run(self, *a, **k):
        loads.append(type(self).__name__)
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(IcoImagePlugin.IcoImageFile, "load", must_not_run)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", must_not_run)
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)  # whatever the bound, the icon is not opened
    ico = _icon_holding_png(2000)
    f = tmp_path / "bomb.ico"
    f.write_bytes(ico)
    assert decode._pil_header_size(ico) is None and decode._pil_mode(np.frombuffer(ico, np.uint8)) is None
    for mode in ("RGB", "mask"):
        with pytest.raises(ImageDecodeError, match=rf"^{f}: not a readable image \({UNREADABLE}"):
            decode_image(f, mode=mode)
        with pytest.raises(ImageDecodeError, match=rf"^bomb\.ico: not a readable image \({UNREADABLE}"):
            decode_bytes(ico, name="bomb.ico")
    assert verify_images([f]) == [f]
    assert loads == []
    assert "ICO" not in decode._PIL_HEADERS and decode._PIL_DECODES <= decode._PIL_HEADERS


def test_a_png_digit_still_opens_through_pil_after_an_icon_is_refused():
    """The formats PIL opens are the ones whose opener reads the header alone; a real PNG is one of them."""
    png = digits("train", "3")[0].read_bytes()
    assert decode._pil_header_size(png) == (28, 28)
    assert decode._pil_mode(np.frombuffer(png, np.uint8)) == Image.open(digits("train", "3")[0]).mode
