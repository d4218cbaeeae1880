"""The size of a JPEG 2000 (JP2 file or bare codestream), AVIF/HEIF or PAM image is read from its header, so one
declaring more than MAX_PIXELS is refused before OpenCV decodes it (a 244-byte JP2 declaring 16000x16000 took 18 s
and 4 GB to decode before it was refused); lengths in the header are bounded, and real images still decode."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

import pipekit.vision.decode as decode
from pipekit.vision import decode_bytes, decode_image
from pipekit.vision.decode import ImageTooLargeError

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
CAMVID = DATA / "camvid_tiny" / "images"
SIDE = 16000  # 256,000,000 pixels, over MAX_PIXELS (178,956,970)
LOSSLESS = [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, 1000]


def _encode(ext: str, img: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, enc = cv2.imencode(ext, img, params or [])
    assert ok, f"this OpenCV cannot encode {ext}"
    return enc.tobytes()


def _jp2(shape: tuple[int, int] = (64, 80)) -> bytes:
    return _encode(".jp2", np.full((*shape, 3), 128, np.uint8))


def _patch_siz(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its codestream's SIZ marker (FF51: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz) declaring a
    ``width`` x ``height`` image of one tile."""
    out = bytearray(data)
    i = out.find(b"\xff\x51")
    struct.pack_into(">IIIIII", out, i + 6, width, height, 0, 0, width, height)
    return bytes(out)


def _patch_ihdr(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its JP2 header box's ihdr declaring HEIGHT then WIDTH."""
    out = bytearray(data)
    j = out.find(b"ihdr")
    struct.pack_into(">II", out, j + 4, height, width)
    return bytes(out)


def _codestream(jp2: bytes) -> bytes:
    """The bare J2K codestream inside a JP2 file (its jp2c box, the last one)."""
    i = jp2.find(b"jp2c")
    assert jp2[i + 4:i + 8] == b"\xff\x4f\xff\x51"
    return jp2[i + 4:]


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("OpenCV decoded the image before its size was checked")

    monkeypatch.setattr(decode.cv2, "imdecode", refuse)


def _too_large(call, name: str, width: int = SIDE, height: int = SIDE) -> None:
    with pytest.raises(ImageTooLargeError, match=rf"^{name}: the image is {width}x{height} = {width * height:,} "
                                                 r"pixels, over pipekit's limit of 178,956,970"):
        call()


def test_a_jp2_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, no_decoding):
    bomb = _patch_ihdr(_patch_siz(_jp2(), SIDE, SIDE), SIDE, SIDE)
    assert len(bomb) < 1000 and decode._header_size(bomb) == (SIDE, SIDE)
    path = tmp_path / "bomb.png"  # named as another format: the bytes decide
    path.write_bytes(bomb)
    _too_large(lambda: decode_image(path), str(path))
    _too_large(lambda: decode_bytes(bomb, name="upload.jp2"), "upload.jp2")


def test_a_jp2_whose_ihdr_and_codestream_disagree_is_bounded_by_the_larger(no_decoding):
    """OpenJPEG decodes the codestream's size whatever the ihdr box says: a small ihdr hides nothing."""
    jp2 = _jp2()
    assert decode._header_size(jp2) == (80, 64)
    only_siz = _patch_siz(jp2, SIDE, 20000)
    assert decode._header_size(only_siz) == (SIDE, 20000)
    _too_large(lambda: decode_bytes(only_siz, name="siz.jp2"), "siz.jp2", SIDE, 20000)
    only_ihdr = _patch_ihdr(jp2, 20000, SIDE)
    assert decode._header_size(only_ihdr) == (20000, SIDE)
    _too_large(lambda: decode_bytes(only_ihdr, name="ihdr.jp2"), "ihdr.jp2", 20000, SIDE)


def test_a_bare_j2k_codestream_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, no_decoding):
    code = _codestream(_jp2())
    assert decode._header_size(code) == (80, 64)
    bomb = _patch_siz(code, SIDE, SIDE)
    path = tmp_path / "bomb.j2k"
    path.write_bytes(bomb)
    _too_large(lambda: decode_image(path), str(path))
    # the image offsets on the reference grid are taken off: Xsiz - XOsiz by Ysiz - YOsiz
    offset = bytearray(_patch_siz(code, SIDE + 100, SIDE + 7))
    struct.pack_into(">II", offset, offset.find(b"\xff\x51") + 14, 100, 7)
    assert decode._header_size(bytes(offset)) == (SIDE, SIDE)


def test_small_jp2_and_j2k_files_still_decode():
    jp2 = _jp2((64, 80))
    assert decode_bytes(jp2).shape == (64, 80, 3)
    assert decode_bytes(jp2, mode="L").shape == (64, 80, 1)
    assert decode_bytes(_codestream(jp2)).shape == (64, 80, 3)


@pytest.mark.data
def test_a_real_image_as_lossless_jp2_decodes_to_its_png_pixels(tmp_path):
    png = sorted(CAMVID.iterdir())[0]
    bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
    jp2 = tmp_path / "frame.jp2"
    jp2.write_bytes(_encode(".jp2", bgr, LOSSLESS))
    assert decode._header_size(jp2.read_bytes()) == (bgr.shape[1], bgr.shape[0])
    expected = decode_image(png)
    got = decode_image(jp2)
    assert got.shape == expected.shape == (*bgr.shape[:2], 3)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(decode_image(jp2, mode="L"), decode_image(png, mode="L"))


def _patch_ispe(data: bytes, width: int, height: int) -> bytes:
    """``data`` with every ispe property (full box: version and flags, then width and height) set to the size."""
    out, at = bytearray(data), 0
    while (at := out.find(b"ispe", at)) >= 0:
        struct.pack_into(">II", out, at + 8, width, height)
        at += 4
    return bytes(out)


def test_an_avif_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    avif = _encode(".avif", np.full((48, 72, 3), 90, np.uint8))
    assert decode._header_size(avif) == (72, 48)
    assert decode_bytes(avif).shape == (48, 72, 3)
    bomb = _patch_ispe(avif, SIDE, SIDE)
    assert decode._header_size(bomb) == (SIDE, SIDE)
    path = tmp_path / "bomb.avif"
    path.write_bytes(bomb)
    monkeypatch.setattr(decode.cv2, "imdecode", lambda *a: pytest.fail("decoded before the size was checked"))
    _too_large(lambda: decode_image(path), str(path))


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _ispe(width: int, height: int) -> bytes:
    return _box(b"ispe", b"\0\0\0\0" + struct.pack(">II", width, height))


def _heif(*properties: bytes, brand: bytes = b"heic") -> bytes:
    ftyp = _box(b"ftyp", brand + b"\0\0\0\0" + b"mif1" + brand)
    meta = _box(b"meta", b"\0\0\0\0" + _box(b"hdlr", b"\0" * 24) + _box(b"iprp", _box(b"ipco", b"".join(properties))))
    return ftyp + meta + _box(b"mdat", b"\0" * 16)


def test_heif_sizes_come_from_the_largest_ispe_property():
    """A HEIC photo is a grid of tiles, each with its own (smaller) ispe, and a thumbnail: the grid's is read."""
    assert decode._header_size(_heif(_ispe(512, 512), _ispe(4032, 3024), _ispe(320, 240))) == (4032, 3024)
    assert decode._header_size(_heif(_ispe(SIDE, SIDE), brand=b"avif")) == (SIDE, SIDE)
    # an MP4 video is an ISO base media file too, but no image: nothing is read from it
    assert decode._header_size(_heif(_ispe(SIDE, SIDE), brand=b"isom").replace(b"mif1", b"mp41")) is None


def test_crafted_box_lengths_neither_loop_nor_read_past_their_container():
    ipco_many = _heif(*[_box(b"free", b"")] * 5000, _ispe(SIDE, SIDE))  # past the walk's bound of boxes
    assert decode._header_size(ipco_many) is None
    stuck = _heif(struct.pack(">I", 3) + b"free", _ispe(SIDE, SIDE))  # a length shorter than its own header
    assert decode._header_size(stuck) is None
    huge = _heif(struct.pack(">I", 1) + b"free" + struct.pack(">Q", 2**63), _ispe(9, 9))
    assert decode._header_size(huge) is None  # a 64-bit length past the end: the walk stops there
    # an ispe cut short by its container is not read from the bytes after it
    cut = _heif(_box(b"ispe", b"\0\0\0\0" + struct.pack(">I", SIDE)) + b"\0" * 8)
    assert decode._header_size(cut) is None
    # a JP2 whose header box claims to run far past the file: read within the file, never beyond
    jp2 = bytearray(_jp2())
    at = jp2.find(b"jp2h") - 4
    struct.pack_into(">I", jp2, at, 2**32 - 1)
    assert decode._header_size(bytes(jp2)) == (80, 64)


def test_a_jp2_header_past_the_walks_bound_is_read_by_pil(no_decoding):
    """Thousands of boxes before the JP2 header box: the walk here stops, PIL's header reader finds the size."""
    jp2 = _patch_ihdr(_patch_siz(_jp2(), SIDE, SIDE), SIDE, SIDE)
    first = 12 + struct.unpack(">I", jp2[12:16])[0]  # after the signature and ftyp boxes
    padded = jp2[:first] + _box(b"free", b"") * 3000 + jp2[first:]
    assert decode._pil_header_size(padded, "JPEG2000") == (SIDE, SIDE)
    assert decode._header_size(padded) == (SIDE, SIDE)
    _too_large(lambda: decode_bytes(padded, name="padded.jp2"), "padded.jp2")


@pytest.mark.data
def test_pil_reads_the_header_of_any_format_it_recognises():
    png = sorted((DATA / "mnist_tiny" / "train" / "3").iterdir())[0].read_bytes()
    assert decode._pil_header_size(png) == (28, 28)
    assert decode._pil_header_size(_jp2()) == (80, 64)
    assert decode._pil_header_size(b"not an image at all" * 10) is None


def test_a_pam_declaring_too_many_pixels_is_refused_before_decoding(no_decoding):
    pam = _encode(".pam", np.zeros((30, 40, 3), np.uint8))
    assert pam.startswith(b"P7\n") and decode._header_size(pam) == (40, 30)
    bomb = pam.replace(b"WIDTH 40\n", f"WIDTH {SIDE}\n".encode()).replace(b"HEIGHT 30\n", f"HEIGHT {SIDE}\n".encode())
    _too_large(lambda: decode_bytes(bomb, name="bomb.pam"), "bomb.pam")
