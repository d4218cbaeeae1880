"""Files someone else hands a user, crafted to cost far more than they weigh: a table nested hundreds of lists deep, an
image header declaring hundreds of millions of pixels, a data set archive whose link or member inflates without
bound. Each is refused quickly with a DataError naming the file (and the column, pixels or member) and the fix,
while the real data sets, written the same ways, read as before."""
from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import textwrap
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import pipekit.vision.decode as decode
from pipekit.core.errors import DataError
from pipekit.data import read_table
from pipekit.data.extract import extract_archive
from pipekit.tabular import Tabular, TabularDataLoaders
from pipekit.vision import ImageDecodeError, decode_bytes, decode_image, verify_images

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT, MNIST = DATA / "adult_sample" / "adult.csv", DATA / "mnist_tiny"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def adult() -> pa.Table:
    return pl.read_csv(ADULT, n_rows=50).to_arrow()


def _with_nested(table: pa.Table, depth: int) -> pa.Table:
    """``table`` with a column ``deep``: a list of lists ... ``depth`` deep of int64 (nulls, built without recursion)."""
    t = pa.int64()
    for _ in range(depth):
        t = pa.list_(t)
    return table.append_column("deep", pa.nulls(table.num_rows, t))


TABLE_READERS = {
    "read_table": lambda f: read_table(f),
    "Tabular(path)": lambda f: Tabular(f, procs=[], cat_names=["workclass"], cont_names=["age"], y_names="salary"),
    "TabularDataLoaders.from_csv": lambda f: TabularDataLoaders.from_csv(f, cat_names=["workclass"],
                                                                         cont_names=["age"], y_names="salary", bs=8),
}


# ------------------------------------------------------------------------------------- tables nested too deeply
@pytest.mark.data
@pytest.mark.parametrize("reader", sorted(TABLE_READERS))
def test_a_column_nested_past_the_bound_is_named_by_every_table_reader(adult, tmp_path, reader):
    """40 lists deep (Polars reads it; 400 crashes it): refused naming the file, the column and its depth, in the
    Parquet and the Arrow file, and in a folder of Parquet files; one level of lists still reads."""
    read = TABLE_READERS[reader]
    files = {"parquet": tmp_path / "adult.parquet", "arrow": tmp_path / "adult.arrow"}
    deep = _with_nested(adult, 40)
    pq.write_table(deep, files["parquet"])
    feather.write_feather(deep, files["arrow"])
    for f in files.values():
        with pytest.raises(DataError, match=r"column 'deep' nests 40 levels .* over the 32 pipekit reads") as e:
            read(f)
        assert str(f) in str(e.value)
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(adult.slice(0, 25).append_column("deep", pa.nulls(25, pa.list_(pa.int64()))),
                   folder / "part-0.parquet")
    pq.write_table(_with_nested(adult.slice(25), 40), folder / "part-1.parquet")
    if reader == "Tabular(path)":  # the reader of folders
        with pytest.raises(DataError, match=r"part-1.parquet: column 'deep' nests 40 levels"):
            read(folder)
    # a list column (one level) is read as it was
    shallow = tmp_path / "shallow.parquet"
    pq.write_table(adult.append_column("deep", pa.array([[1, 2]] * adult.num_rows)), shallow)
    assert read_table(shallow)["deep"].to_list()[0] == [1, 2]
    assert Tabular(shallow, procs=[], cat_names=["workclass"], cont_names=["age"], y_names="salary").items.height == 50


@pytest.mark.data
def test_a_schema_pyarrow_refuses_is_named_without_reading_it(adult, tmp_path):
    """Past pyarrow's bounds (100 Parquet levels, 50 lists; its Arrow footer verifier's, between 120 and 150 lists),
    which Polars would read (and at a few hundred, crash on): 60 lists in Parquet, 150 in an Arrow file Polars
    wrote. The column cannot be named (pyarrow does not read the schema), the file is."""
    f, g = tmp_path / "deep60.parquet", tmp_path / "deep150.arrow"
    pq.write_table(_with_nested(adult, 60), f)
    pl.from_arrow(_with_nested(adult, 150)).write_ipc(g)  # pyarrow will not write it
    for read in TABLE_READERS.values():
        with pytest.raises(DataError, match=r"deep60.parquet: pyarrow refuses its schema \(Parquet schema too deeply "
                                            r"nested.*a column nests deeper than the 32 levels pipekit reads"):
            read(f)
        with pytest.raises(DataError, match=r"deep150.arrow: pyarrow refuses its schema \(Verification of flatbuffer"):
            read(g)


@pytest.mark.data
def test_a_parquet_file_nested_hundreds_deep_no_longer_kills_python(adult, tmp_path):
    """A 43 KB Parquet file 400 lists deep: Polars' readers overflowed the stack (exit 139, no error); each reader
    now raises the DataError. Run in a child process, which a crash would kill."""
    f = tmp_path / "deep.parquet"
    pq.write_table(_with_nested(adult, 400), f)
    script = textwrap.dedent(f"""
        from pipekit.data import read_table
        from pipekit.tabular import Tabular
        for read in (read_table, lambda f: Tabular(f, procs=[], cont_names=["age"], y_names="salary")):
            try:
                read({str(f)!r})
                print("read")
            except Exception as e:
                print(f"{{type(e).__name__}}: {{e}}")
        """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"DataError: {f}: pyarrow refuses its schema") for line in lines)


# --------------------------------------------------------------------------------- images of too many pixels
def _png(width: int, height: int, bits: int = 8, colour: int = 2) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` pixels, with a few bytes of image data: 100 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def _tiff(width: int, height: int, big_endian: bool) -> bytes:
    order = ">" if big_endian else "<"
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1)]
    ifd = struct.pack(order + "H", len(entries)) + b"".join(
        struct.pack(order + "HHII", tag, kind, n, value) if kind == 4 else
        struct.pack(order + "HHIHH", tag, kind, n, value, 0) for tag, kind, n, value in entries) + b"\0" * 4
    return (b"MM\0*" if big_endian else b"II*\0") + struct.pack(order + "I", 8) + ifd


SIDE = 13_400  # 13400 x 13400 = 179,560,000 pixels: just over PIL's 178,956,970

#: the headers of each format whose size is read before decoding, declaring SIDE x SIDE pixels
HEADERS = {
    "png": _png(SIDE, SIDE),
    "bmp": b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, SIDE, -SIDE) + b"\0" * 64,
    "webp-vp8x": b"RIFF\0\0\0\0WEBPVP8X" + b"\0" * 8 + (SIDE - 1).to_bytes(3, "little") * 2 + b"\0" * 32,
    "webp-vp8l": b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f" + ((SIDE - 1) | (SIDE - 1) << 14).to_bytes(4, "little")
                 + b"\0" * 32,
    "webp-vp8": b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a" + struct.pack("<HH", SIDE, SIDE) + b"\0" * 32,
    "gif": b"GIF89a" + struct.pack("<HH", SIDE, SIDE) + b"\0" * 32,
    "tiff": _tiff(SIDE, SIDE, big_endian=False),
    "tiff-big-endian": _tiff(SIDE, SIDE, big_endian=True),
    "ppm": f"P6\n# a comment\n{SIDE} {SIDE}\n255\n".encode() + b"\0" * 32,
    "sun-raster": b"\x59\xa6\x6a\x95" + struct.pack(">IIII", SIDE, SIDE, 24, 0) + b"\0" * 32,
    "hdr": f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {SIDE} +X {SIDE}\n".encode() + b"\0" * 32,
}


def _refused_quickly(call, match: str) -> str:
    """``call()`` raises a DataError matching ``match`` in under 1 s of CPU time (a machine busy with other work does not
    count), with no long wait, and 20 MB traced, an ImageDecodeError too (which verify_images lists); its message."""
    tracemalloc.start()
    start, began = time.process_time(), time.perf_counter()
    try:
        with pytest.raises(DataError, match=match) as e:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.process_time() - start < 1 and time.perf_counter() - began < 70 and peak < 20 * 2**20
    assert isinstance(e.value, ImageDecodeError) and type(e.value).__name__ == "ImageTooLargeError"
    return str(e.value)


@pytest.mark.data
def test_a_png_declaring_more_pixels_than_pil_allows_is_refused_before_decoding(tmp_path):
    """A 100-byte PNG declaring 16000x16000 (pipekit decoded such a 746 KB file in 10 s and 1.5 GB), as an image
    and as a 16-bit mask; the file is named with its size, the bound and how to raise it; verify_images lists it."""
    for sub in ("3", "7"):
        (tmp_path / sub).mkdir()
        for f in sorted((MNIST / "train" / sub).glob("*.png"))[:3]:
            shutil.copy(f, tmp_path / sub / f.name)
    bomb = tmp_path / "7" / "bomb.png"
    bomb.write_bytes(_png(16000, 16000))
    msg = _refused_quickly(lambda: decode_image(bomb), rf"{bomb}: the image is 16000x16000 = 256,000,000 pixels, over "
                                                       r"pipekit's limit of 178,956,970 \(PIL's Image.MAX_IMAGE_PIXELS")
    assert "pipekit.vision.decode.MAX_PIXELS = 256_000_000" in msg
    mask = tmp_path / "labels" / "mask.png"
    mask.parent.mkdir()
    mask.write_bytes(_png(16000, 16000, bits=16, colour=6))
    _refused_quickly(lambda: decode_image(mask, mode="mask"), rf"{mask}: the image is 16000x16000")
    _refused_quickly(lambda: decode_bytes(bomb.read_bytes(), name="upload.png"), r"^upload.png: the image is 16000x16000")
    assert verify_images(tmp_path / "7") == [bomb] and verify_images(tmp_path / "3") == []


@pytest.mark.parametrize("fmt", sorted(HEADERS))
def test_every_format_whose_header_is_read_is_bounded(fmt):
    _refused_quickly(lambda: decode_bytes(HEADERS[fmt], name=f"big.{fmt}"),
                     rf"^big.{fmt}: the image is {SIDE}x{SIDE} = 179,560,000 pixels, over pipekit's limit")


@pytest.mark.data
def test_the_pixel_bound_is_read_at_each_decode(monkeypatch):
    """The setting the message names is the one decoding reads; None turns it off; the real images decode."""
    digit = sorted((MNIST / "train" / "3").glob("*.png"))[0]
    assert decode_image(digit, mode="L").shape == (28, 28, 1)
    monkeypatch.setattr(decode, "MAX_PIXELS", 28 * 28 - 1)
    _refused_quickly(lambda: decode_image(digit, mode="L"), r"the image is 28x28 = 784 pixels, over pipekit's limit "
                                                            r"of 783 .*MAX_PIXELS = 784 \(None: no limit\)")
    monkeypatch.setattr(decode, "MAX_PIXELS", None)
    assert decode_image(digit, mode="L").shape == (28, 28, 1)
    # a format whose header is not read (AVIF here) meets the same bound once decoded
    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    import cv2

    ok, avif = cv2.imencode(".avif", np.zeros((20, 30, 3), np.uint8))
    if ok:
        _refused_quickly(lambda: decode_bytes(avif.tobytes(), name="x.avif"), r"^x.avif: the image is 30x20 = 600 pixels")


# -------------------------------------------------------------------------------------- data set archives
def _zip_entry(z: zipfile.ZipFile, name: str, st_mode: int, chunks) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system, info.external_attr, info.compress_type = 3, st_mode << 16, zipfile.ZIP_DEFLATED
    with z.open(info, "w", force_zip64=True) as w:
        for c in chunks:
            w.write(c)


@pytest.mark.data
def test_a_zip_symlink_entry_is_read_no_further_than_a_link_can_be(tmp_path):
    """A 'link' entry inflating to 64 MB was read whole into memory to be skipped: now 4 KB are read, and the archive
    is refused naming it; a real link is still skipped with a warning, the real data extracted."""
    arc = tmp_path / "adult.zip"
    with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(ADULT, "adult/adult.csv")
        _zip_entry(z, "adult/link", stat.S_IFLNK | 0o777, [b"a" * (1 << 20)] * 64)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"{arc}: refusing to extract: the symlink entry 'adult/link' has a "
                                            r"target over 4096 bytes long"):
            extract_archive(arc, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MB traced"
    assert not (tmp_path / "out" / "adult").exists()
    fine = tmp_path / "fine.zip"
    with zipfile.ZipFile(fine, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(ADULT, "adult/adult.csv")
        _zip_entry(z, "adult/alias.csv", stat.S_IFLNK | 0o777, [b"adult.csv"])
    with pytest.warns(UserWarning, match=r"'adult/alias.csv' \(symlink to 'adult.csv'\)"):
        extract_archive(fine, tmp_path / "out")
    assert (tmp_path / "out" / "adult" / "adult.csv").read_bytes() == ADULT.read_bytes()


def test_a_nul_byte_in_a_link_target_or_a_name_refuses_the_archive(tmp_path):
    """A raw 'ValueError: embedded null byte' named neither the archive nor the entry."""
    arc = tmp_path / "nul.zip"
    with zipfile.ZipFile(arc, "w") as z:
        z.writestr("toy/labels.csv", b"a,b\n1,2\n")
        _zip_entry(z, "toy/alias.csv", stat.S_IFLNK | 0o777, [b"labels\0.csv"])
    with pytest.raises(DataError, match=rf"{arc}: refusing to extract: 1 member\(s\) hold a NUL byte in their name or "
                                        r"link target, as no file's does: 'toy/alias.csv'. Nothing was extracted"):
        extract_archive(arc, tmp_path / "out")
    tgz = tmp_path / "nul.tgz"  # long enough to be kept in a pax header, which keeps the NUL
    with tarfile.open(tgz, "w:gz", format=tarfile.PAX_FORMAT) as t:
        link = tarfile.TarInfo("toy/link")
        link.type, link.linkname = tarfile.SYMTYPE, "x" * 120 + "\0.csv"
        t.addfile(link)
        named = tarfile.TarInfo("toy/" + "a" * 120 + "\0b.csv")
        named.size = 4
        t.addfile(named, io.BytesIO(b"a,b\n"))
    with pytest.raises(DataError, match=r"nul.tgz: refusing to extract: 2 member\(s\) hold a NUL byte .*'toy/link', "
                                        r"'toy/a+\\x00b.csv'"):
        extract_archive(tgz, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.data
def test_a_member_inflating_past_the_ratio_is_stopped(tmp_path):
    """64 MB of zeros in a 65 KB zip after the real CSV: stopped at 100 times the archive's size, the cut-off file
    removed; the CSV before it is whole."""
    arc = tmp_path / "bomb.zip"
    with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(ADULT, "adult/adult.csv")
        _zip_entry(z, "adult/big.csv", stat.S_IFREG | 0o644, [b"\0" * (1 << 20)] * 64)
    size = arc.stat().st_size
    with pytest.raises(DataError, match=rf"{arc} \(adult/big.csv\) inflates to more than 100 times its {size:,} "
                                        r"bytes, as no data set does \(a zip bomb\?\); nothing more was extracted"):
        extract_archive(arc, tmp_path / "out")
    assert not (tmp_path / "out" / "adult" / "big.csv").exists()
    assert (tmp_path / "out" / "adult" / "adult.csv").read_bytes() == ADULT.read_bytes()


@pytest.mark.data
def test_hard_links_count_against_the_archive_bound(tmp_path):
    """Each hard link is written as a copy of its file: 40 links to the real CSV in a tgz of 0.5 MB made 160 MB."""
    tgz = tmp_path / "links.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(ADULT, "adult/adult.csv")
        for i in range(40):
            link = tarfile.TarInfo(f"adult/copy{i}.csv")
            link.type, link.linkname = tarfile.LNKTYPE, "adult/adult.csv"
            t.addfile(link)
    limit = 100 * tgz.stat().st_size
    with pytest.raises(DataError, match=r"links.tgz \(adult/copy\d+.csv\) inflates to more than 100 times"):
        extract_archive(tgz, tmp_path / "out")
    written = sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file())
    assert written <= limit
    # a real data set extracts whole
    packed = Path(shutil.make_archive(str(tmp_path / "mnist"), "gztar", MNIST.parent, MNIST.name))
    extract_archive(packed, tmp_path / "mnist")
    got = sorted(p.relative_to(tmp_path / "mnist" / MNIST.name) for p in (tmp_path / "mnist" / MNIST.name).rglob("*")
                 if p.is_file())
    assert got == sorted(p.relative_to(MNIST) for p in MNIST.rglob("*") if p.is_file())


# ------------------------------------------------------------------ image headers that under-report or cannot be walked
CAT = DATA / "dogscats" / "valid" / "cats" / "cat.1500.jpg"


def _cat() -> tuple[bytes, int, int]:
    """A real JPEG's bytes and its width and height (as PIL reads them)."""
    from PIL import Image

    with Image.open(CAT) as im:
        width, height = im.size
    return CAT.read_bytes(), width, height


def _tiff_strip(entries: list[tuple[int, int, int, int]], width: int, height: int) -> bytes:
    """A little-endian TIFF of one deflated strip of ``width`` x ``height`` grey zeros, its first directory holding
    ``entries`` (tag, type, count, value), StripOffsets and StripByteCounts filled in."""
    strip = zlib.compress(bytes(width * height))
    entries = entries + [(258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1),
                         (278, 4, 1, height), (279, 4, 1, len(strip))]
    entries.sort(key=lambda e: e[0])
    offset = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, n, offset if tag == 273 else value) for tag, kind, n, value in entries)
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 4 + strip


@pytest.mark.data
def test_a_jpeg_whose_walk_finds_a_false_frame_is_refused(monkeypatch):
    """One 0xFF fill byte after the start marker (libjpeg skips it) put the header walk out of step, so it read a
    1x1 frame hidden in an APP1 segment; the real frame was decoded past the bound, and the check after decoding was
    skipped because the header had given a size. The walk now skips fill bytes and finds the real frame."""
    real, width, height = _cat()
    app1 = bytearray(0xFFFF - 2)
    fake_frame = b"\xff\xc0\x00\x11\x08\x00\x01\x00\x01\x03\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    at = 0xE1FF + 4 - 7  # where the walk, reading the APP1 marker's bytes as a length, landed in the payload
    app1[at:at + len(fake_frame)] = fake_frame
    crafted = real[:2] + b"\xff" + b"\xff\xe1" + (0xFFFF).to_bytes(2, "big") + bytes(app1) + real[2:]
    assert decode._header_size(crafted) == (width, height)
    monkeypatch.setattr(decode, "MAX_PIXELS", width * height - 1)
    _refused_quickly(lambda: decode_bytes(crafted, name="hidden.jpg"),
                     rf"^hidden.jpg: the image is {width}x{height} = {width * height:,} pixels, over pipekit's limit")
    monkeypatch.setattr(decode, "MAX_PIXELS", width * height)  # at the bound, the real image decodes
    assert decode_bytes(crafted).shape == (height, width, 3)


def test_a_tiff_giving_its_size_twice_is_bounded_by_the_larger(monkeypatch):
    """ImageWidth and ImageLength listed twice, 200 first (what libtiff decodes) and 1 after: the last had won, so
    the 200x200 image was decoded past a bound of 1000 pixels. The larger value is kept."""
    dup = _tiff_strip([(256, 4, 1, 200), (256, 4, 1, 1), (257, 4, 1, 200), (257, 4, 1, 1)], 200, 200)
    assert decode._header_size(dup) == (200, 200)
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)
    _refused_quickly(lambda: decode_bytes(dup, name="dup.tif"), r"^dup.tif: the image is 200x200 = 40,000 pixels")


@pytest.mark.data
def test_the_decoded_image_is_bounded_whatever_its_header_said(monkeypatch):
    """A header read as smaller than the image (any format, any parser slip) no longer lets the decoded image past the
    bound: the decoded shape is checked too."""
    real, width, height = _cat()
    monkeypatch.setattr(decode, "_header_size", lambda data: (1, 1))
    monkeypatch.setattr(decode, "MAX_PIXELS", width * height - 1)
    _refused_quickly(lambda: decode_bytes(real, name="cat.jpg"), rf"^cat.jpg: the image is {width}x{height} = ")


@pytest.mark.data
def test_headers_of_common_variants_are_read_before_decoding(monkeypatch):
    """A JPEG with a fill byte, a TEM marker or a thousand comment segments before its frame, and a Radiance HDR whose
    size line has several spaces (OpenCV reads them all) gave no size, so the whole image was decoded before it was
    refused: each size is now read from the header (PIL's header reader past a thousand segments)."""
    import cv2

    real, width, height = _cat()
    variants = {"fill byte": real[:2] + b"\xff" + real[2:], "TEM marker": real[:2] + b"\xff\x01" + real[2:],
                "1000 comments": real[:2] + b"\xff\xfe\x00\x02" * 1000 + real[2:]}
    ok, hdr = cv2.imencode(".hdr", np.zeros((30, 40, 3), np.float32))
    assert ok and b"\n-Y 30 +X 40\n" in hdr.tobytes()
    variants["hdr two spaces"] = hdr.tobytes().replace(b"\n-Y 30 +X 40\n", b"\n-Y  30  +X  40\n")
    sizes = {name: (40, 30) if name.startswith("hdr") else (width, height) for name in variants}
    for name, data in variants.items():
        assert decode._header_size(data) == sizes[name], name
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)

    def no_decoding(*args):
        raise AssertionError("decoded before the size was checked")

    monkeypatch.setattr(decode.cv2, "imdecode", no_decoding)
    for name, data in variants.items():
        w, h = sizes[name]
        _refused_quickly(lambda data=data: decode_bytes(data, name="x.img"), rf"^x.img: the image is {w}x{h} = ")


@pytest.mark.data
def test_a_header_number_of_thousands_of_digits_is_an_image_error(tmp_path):
    """A PNM or HDR size of 5000 digits raised Python's bare ValueError (over 4300 digits), naming no file and
    stopping verify_images; the header numbers are bounded, so such a file is read or listed like any other."""
    zeros = tmp_path / "zeros.pgm"  # 5000 leading zeros: still the number 5, a valid 5x5 image
    zeros.write_bytes(b"P5 " + b"0" * 4999 + b"5 5 255\n" + bytes(25))
    nines, hdr = tmp_path / "nines.pgm", tmp_path / "long.hdr"
    nines.write_bytes(b"P5 " + b"9" * 5000 + b" 5 255\n" + bytes(25))
    hdr.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y " + b"9" * 5000 + b" +X 1\n" + bytes(4))
    digit = tmp_path / "ok.png"
    shutil.copy(sorted((MNIST / "train" / "3").glob("*.png"))[0], digit)
    assert decode_image(zeros, mode="L").shape == (5, 5, 1)
    for f in (nines, hdr):
        with pytest.raises(ImageDecodeError, match=rf"^{f}: not a readable image"):
            decode_image(f)
    assert verify_images([zeros, nines, hdr, digit]) == [nines, hdr]


def _odd_columns(n: int) -> dict[str, tuple[pa.Array, tuple[str, ...]]]:
    """Columns of types Polars panics on, each with the table formats pyarrow writes it to."""
    both, ipc = ("parquet", "arrow"), ("arrow",)
    return {
        "union": (pa.UnionArray.from_sparse(pa.array([0] * n, pa.int8()), [pa.array(range(n)), pa.array(["a"] * n)]),
                  ipc),
        "run_end": (pa.RunEndEncodedArray.from_arrays(pa.array([n], pa.int32()), pa.array([7])), ipc),
        "interval": (pa.array([(1, 2, 3)] * n, pa.month_day_nano_interval()), ipc),
        "decimal76": (pa.array(range(n), pa.decimal256(76, 0)), both),
        "list_view": (pa.array([[1]] * n, pa.list_view(pa.int64())), both),
        "zero_width": (pa.array([[]] * n, pa.list_(pa.int64(), 0)), both),
        "mars_time": (pa.array(range(n), pa.timestamp("us", tz="Mars/Phobos")), both),
        "mars_times": (pa.array([[0]] * n, pa.list_(pa.timestamp("us", tz="Mars/Phobos"))), both),
    }


@pytest.mark.data
def test_a_column_of_a_type_polars_panics_on_is_named_by_every_table_reader(adult, tmp_path):
    """Polars panicked (pyo3's PanicException, which ``except Exception`` does not catch, naming no file) on a union,
    a run-end encoded, an interval, a 256-bit decimal, a list view, a zero-width fixed-size list or an unknown time
    zone; each is refused naming the file and the column, while such types Polars reads still read."""
    for column, (values, kinds) in _odd_columns(adult.num_rows).items():
        table = adult.append_column(column, values)
        for kind in kinds:
            f = tmp_path / f"{column}.{kind}"
            pq.write_table(table, f) if kind == "parquet" else feather.write_feather(table, f)
            for read in TABLE_READERS.values():
                with pytest.raises(DataError, match=rf"^{f}: column '{column}' holds .*which Polars cannot read; "
                                                    r"leave the column out"):
                    read(f)
    fine = adult.append_column("d38", pa.array(range(adult.num_rows), pa.decimal256(38, 0))).append_column(
        "paris", pa.array(range(adult.num_rows), pa.timestamp("us", tz="+01:00")))
    pq.write_table(fine, tmp_path / "fine.parquet")
    got = read_table(tmp_path / "fine.parquet")
    assert got["d38"].to_list()[:2] == [0, 1] and str(got["paris"].dtype.time_zone) == "Etc/GMT-1"


@pytest.mark.data
def test_a_polars_panic_while_reading_is_a_data_error_naming_the_file(adult, tmp_path, monkeypatch):
    """A panic from a type the check does not know yet still comes out as the DataError naming the file."""
    import pipekit.data.items as items
    import pipekit.tabular.core as tabular_core

    f = tmp_path / "union.arrow"
    values = pa.UnionArray.from_sparse(pa.array([0] * adult.num_rows, pa.int8()),
                                       [pa.array(range(adult.num_rows)), pa.array(["a"] * adult.num_rows)])
    feather.write_feather(adult.append_column("union", values), f)
    monkeypatch.setattr(items, "check_table_nesting", lambda path, kind: None)
    monkeypatch.setattr(tabular_core, "check_table_nesting", lambda path, kind: None)
    for read in TABLE_READERS.values():
        with pytest.raises(DataError, match=rf"^could not read {f}: .*Union"):
            read(f)
