"""Image decoding with OpenCV into uint8 HWC arrays, and a checker for unreadable files.

EXIF orientation: pipekit decodes the pixels as they are stored and ignores the EXIF Orientation
tag (OpenCV's ``IMREAD_IGNORE_ORIENTATION``; OpenCV alone would apply it). A phone photo stored
sideways with tag 6 ("rotate 90 degrees to display") therefore comes out sideways, its height and
width those of the stored frame. This keeps an image in the same frame as its mask (PNG masks carry
no tag) and as points and boxes measured on the stored pixels; training and inference decode alike.
To train on the displayed orientation, rotate such files upright once before training, e.g. with
``PIL.ImageOps.exif_transpose(img).save(path)``.

Image size: an image whose header declares more than :data:`MAX_PIXELS` pixels (178,956,970, PIL's default
``Image.MAX_IMAGE_PIXELS``, so the bound fastai has) is refused before it is decoded, with an
:class:`ImageTooLargeError` naming the file: a PNG of 746 KB can declare 16000x16000 pixels and take 1.5 GB and
10 s to decode, a mask 19 bytes a pixel. The size is read from the header of PNG, JPEG, BMP, WebP, GIF, TIFF,
PNM/PFM/PAM, Sun raster, Radiance HDR, JPEG 2000 (a JP2 file or a bare codestream) and AVIF/HEIF files, and by PIL's
header reader for a file of another format PIL knows (or a JPEG, TIFF, JPEG 2000 or AVIF header the walk here cannot
follow); every decoded image is held to the same bound, so an image whose header neither pipekit nor PIL reads, or
a header that under-reports, is refused once decoded. To read larger images you trust, raise the bound for the
process (``None`` leaves only OpenCV's own limit)::

    import pipekit.vision.decode
    pipekit.vision.decode.MAX_PIXELS = 400_000_000

Example:
    >>> import pipekit.datasets as D
    >>> from pipekit.vision import decode_image
    >>> img = decode_image(D.path("mnist_tiny") / "train/3/7463.png", mode="L")
    >>> img.shape, img.dtype
    ((28, 28, 1), dtype('uint8'))
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipekit.core.errors import DataError, warn
from pipekit.core.validate import env_positive_int
from pipekit.data.lists import L


def _opencv_limit(name: str, default: int) -> int:
    """OpenCV's limit the environment variable ``name`` sets (a whole number, ``KB``/``MB`` suffixes as OpenCV reads
    them), ``default`` when unset; another value is a ParameterError naming the variable (OpenCV would abort)."""
    return env_positive_int(name, units=_OPENCV_UNITS) or default


_OPENCV_UNITS = {**dict.fromkeys(("KB", "Kb", "kb"), 1 << 10), **dict.fromkeys(("MB", "Mb", "mb"), 1 << 20)}

#: OpenCV's limits on the image it decodes: pixels, and width or height (its defaults; the environment may set them).
#: They are read before cv2 is imported: OpenCV reads the same variables when it loads and aborts the process on a
#: value it cannot parse, where pipekit names the variable.
MAX_IMAGE_PIXELS = _opencv_limit("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30)
MAX_IMAGE_SIDE = min(_opencv_limit("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20),
                     _opencv_limit("OPENCV_IO_MAX_IMAGE_HEIGHT", 1 << 20))

import cv2  # noqa: E402  (after the limits above are checked)

MODES = ("RGB", "L", "mask")


class ImageDecodeError(ValueError):
    """Raised when an image file cannot be read or decoded; the message names the file.

    >>> from pipekit.vision import ImageDecodeError, decode_bytes
    >>> try:
    ...     decode_bytes(b"", name="photo.jpg")
    ... except ImageDecodeError as e:
    ...     print(type(e).__name__, str(e))
    ImageDecodeError photo.jpg: the file is empty (0 bytes); remove it or re-download it
    """


class ImageTooLargeError(ImageDecodeError, DataError):
    """An image of more pixels than :data:`MAX_PIXELS` (or than OpenCV decodes at all); the message names the file,
    its size and what to do. An :class:`ImageDecodeError` (``verify_images`` lists the file) and a DataError."""


#: the most pixels (width times height) an image may have to be decoded: PIL's default ``Image.MAX_IMAGE_PIXELS``,
#: over which fastai's ``PILImage.create`` refuses a file (a decompression bomb). Read at each decode, so setting
#: ``pipekit.vision.decode.MAX_PIXELS`` raises it for the process; None leaves only OpenCV's own limit
MAX_PIXELS: int | None = 178_956_970


# OpenCV >= 4.11 decodes straight to RGB (same pixels, no separate BGR->RGB pass over the full image).
_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
# grey images are read in their own channels (a grey file as it is, a colour one as BGR) and a colour one is made grey
# by PIL's luma (:func:`luma`): a JPEG decoder's own grey output (its Y plane) differs from it by up to 12 levels
_FLAGS = {"RGB": _RGB_FLAG, "L": cv2.IMREAD_ANYCOLOR, "mask": cv2.IMREAD_UNCHANGED}


def luma(pixels: np.ndarray, bgr: bool = False) -> np.ndarray:
    """(H, W, 1) uint8 grey of the first three channels of uint8 (H, W, C) colour pixels (RGB order, or BGR with
    ``bgr=True``), by PIL's ITU-R 601-2 luma: the levels ``Image.convert('L')`` gives, as fastai's ``PILImageBW``
    reads a colour file.

    >>> luma(np.array([[[255, 0, 0], [10, 200, 30]]], np.uint8))[..., 0].tolist()
    [[76, 124]]
    """
    from PIL import Image

    rgb = np.ascontiguousarray(pixels[:, :, 2::-1] if bgr else pixels[:, :, :3])
    return np.asarray(Image.fromarray(rgb).convert("L"))[:, :, None]  # PIL's own arithmetic, in C


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not supported; use one of {MODES}")


def decode_bytes(data: bytes | np.ndarray, mode: str = "RGB", name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF, WebP) into a uint8 HWC array.

    `mode="RGB"` gives 3 channels in RGB order, `"L"` one grey channel, `"mask"` the stored
    values unchanged (palette/grey PNG label maps), always as (H, W, C). The EXIF Orientation tag is
    ignored: the pixels come in the stored frame (see the module docstring). A file OpenCV cannot decode
    and PIL can (a 32-bit float or integer TIFF, PIL's modes F and I, from microscopy or remote sensing) is
    decoded by PIL, within the same pixel bound, and brought to uint8 as :func:`image_from_value` brings that
    PIL image (see :func:`_pil_decode`); so is a TGA file (by its ``.tga`` extension in ``name``, TGA having no
    signature). An 8-bit RGBA TIFF of unassociated alpha (as PIL, GIMP and Photoshop save one) is decoded by PIL too:
    OpenCV would multiply its colours by the alpha, and its pixels come out as a PNG's of the same pixels do, the alpha
    dropped (PIL's ``convert('RGB')``).

    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from pipekit.vision import decode_bytes
    >>> buf = io.BytesIO()
    >>> Image.fromarray(np.array([[[255, 0, 0], [10, 200, 30]]], np.uint8)).save(buf, "PNG")
    >>> rgb = decode_bytes(buf.getvalue())
    >>> rgb.shape, rgb.dtype, rgb[0, 0].tolist(), decode_bytes(buf.getvalue(), mode="L")[..., 0].tolist()
    ((1, 2, 3), dtype('uint8'), [255, 0, 0], [[76, 124]])
    """
    _check_mode(mode)
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ImageDecodeError(f"{name}: the file is empty (0 bytes); remove it or re-download it")
    view = np.ascontiguousarray(buf).data.cast("B")
    size = _header_size(view)
    if size is not None:  # refused before decoding: a small file can declare gigabytes of pixels
        if size[0] * size[1] > MAX_IMAGE_PIXELS or max(size) > MAX_IMAGE_SIDE:  # past OpenCV's limits too
            raise ImageTooLargeError(f"{name}: {_too_large(buf)}; downscale it (a few thousand pixels a side is "
                                   "plenty to train on) or remove it")
        _check_pixels(*size, name)
    if _tiff_premultiplies(view):  # an RGBA TIFF OpenCV would darken: PIL reads its colours as stored
        return _pil_decode(buf, mode, name)
    # A palette PNG mask is read as its indices: OpenCV would expand the palette to colours and lose them.
    palette = mode == "mask" and _is_palette_png(buf)
    # EXIF orientation is ignored: the stored frame is the one masks, points and boxes are given in.
    try:
        img = _palette_indices(buf, name) if palette else cv2.imdecode(
            buf, _FLAGS[mode] | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE" in str(e):  # OpenCV refuses to allocate an image over its size limits
            raise ImageTooLargeError(f"{name}: {_too_large(buf)}; downscale it (a few thousand pixels a side is "
                                   "plenty to train on) or remove it") from None
        img, said = None, str(e).strip().splitlines()[-1]
    else:
        said = ""
    if img is None:  # OpenCV cannot decode it (32-bit samples, a format it lacks): PIL may
        return _pil_decode(buf, mode, name, said)
    # the same bound on what was decoded, whatever the header said: a header that under-reports (or none read here)
    # never lets a larger image through
    _check_pixels(img.shape[1], img.shape[0], name)
    if img.dtype != np.uint8:
        img = _wide_to_uint8(img, mode, name)
    if img.ndim == 2:
        img = img[:, :, None]
    if mode == "L" and img.shape[2] > 1:
        img = luma(img, bgr=True)
    if mode == "RGB":
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if _RGB_FLAG == cv2.IMREAD_COLOR:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif mode == "mask" and img.shape[2] > 1:
        if _pil_mode(buf) == "P":  # a palette image of another format (BMP, GIF, TIFF): its indices are the classes
            img = _palette_indices(buf, name)[:, :, None]
            return np.ascontiguousarray(img)
        # A colour-coded mask cannot be mapped to classes without a palette: refuse rather than guess.
        if not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])):
            raise ImageDecodeError(
                f"{name}: mask has {img.shape[2]} different colour channels; masks must hold one class "
                "index per pixel (a grey or palette PNG)"
            )
        img = img[:, :, :1]
    return np.ascontiguousarray(img)


def unreadable(name: str, said: str = "") -> str:
    """The message for an image file neither OpenCV nor PIL decodes (``said``: what the decoder reported): a file
    may be valid in a format neither reads, so it says to check and re-save it before removing it."""
    why = f": {said}" if said else ""
    return (f"{name}: not a readable image (corrupt, truncated, or in a format OpenCV and PIL cannot read{why}); "
            "check it with pipekit.vision.verify_images(files) and re-save it in a common format (PNG, JPEG, "
            "8- or 16-bit TIFF), or remove it if it is broken")


#: the formats PIL may open from a file pipekit reads (PIL's format names): those whose opener reads the header
#: alone (PIL 13's sources), so pipekit's pixel bound applies before any pixel is decoded. ICO is left out: its
#: opener decodes the largest icon (a PNG inside may declare any size) while opening; so are formats PIL hands to
#: another program (EPS to Ghostscript) or to the system. WebP's and AVIF's openers parse the file in libwebp and
#: libavif, which decode nothing until pixels are asked for
_PIL_HEADERS = frozenset({"JPEG", "MPO", "TIFF", "JPEG2000", "AVIF", "PNG", "BMP", "DIB", "GIF", "WEBP", "PPM",
                          "TGA", "PCX", "SGI", "DDS", "SUN"})
#: of those, the raster formats PIL decodes where OpenCV cannot (a 32-bit float TIFF, a TGA, known by its ``.tga``
#: extension as it has no signature) or would premultiply (an 8-bit RGBA TIFF of unassociated alpha): JPEG 2000, AVIF
#: and Sun raster files are decoded by OpenCV alone
_PIL_DECODES = _PIL_HEADERS - {"JPEG2000", "AVIF", "SUN"}


def _pil_decode(buf: np.ndarray, mode: str, name: str, said: str = "") -> np.ndarray:
    """Encoded bytes OpenCV could not decode (or would darken, see :func:`_tiff_premultiplies`), decoded by PIL (its
    first format recognised by signature, one of :data:`_PIL_DECODES`, else the one the extension of the file
    ``name`` gives: a ``.tga``) and made uint8 as :func:`image_from_value` makes a PIL image: mode I;16 keeps its top 8
    bits, mode I is 8-bit grey when
    its values fit 0..255 and 16-bit past it; mode F is clipped to 0..255 and truncated (PIL's ``convert('RGB')``,
    NaN as 0), the pixels fastai's ``PILImage.create`` gives. :data:`MAX_PIXELS` applies to PIL's size before the
    pixels are decoded. An :class:`ImageDecodeError` from :func:`unreadable` when PIL cannot decode it either."""
    data = buf.tobytes()
    im = _pil_open(data)
    if im is None and (kind := _suffix_format(name)) is not None:  # a format without a signature: a TGA
        im = _pil_open(data, kind)
    if im is None or im.format not in _PIL_DECODES:
        if im is not None:
            im.close()
        raise ImageDecodeError(unreadable(name, said))
    with im:
        width, height = im.size
        _check_pixels(width, height, name)  # before decoding, as for OpenCV
        try:
            im.load()
        except Exception as e:  # whatever PIL raises on pixels it cannot decode (truncated, corrupt)
            raise ImageDecodeError(unreadable(name, said or str(e))) from None
        if mode == "mask" and im.mode == "F":  # class indices stored as floats: whole numbers 0..255 only
            arr = np.asarray(im)
            if arr.size and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()
                                 and 0 <= arr.min() and arr.max() < 256):
                raise ImageDecodeError(f"{name}: a float mask must hold class indices (whole numbers 0..255); "
                                       "save the mask as an 8-bit grey or palette PNG")
            return image_from_value(arr.astype(np.uint8), mode, name)
        if im.mode == "F":  # 0..1 floats read as 0..255 levels truncate to black (as fastai reads them): said
            arr = np.asarray(im)
            top = float(np.nanmax(arr)) if arr.size and np.isfinite(arr).any() else 0.0
            if 0.0 < top <= 1.0:
                warn(f"{name}: a float image whose values lie in 0..1 (max {top:g}) is read as 0..255 levels, so it "
                     "comes out black, as fastai reads it; scale it to 0..255 (np.asarray(img) * 255) and save it as "
                     "an 8- or 16-bit image")
        return image_from_value(im, mode, name)


def _suffix_format(name: str) -> str | None:
    """The format of :data:`_PIL_DECODES` that PIL gives the extension of the file ``name`` (``'TGA'`` for
    ``x.tga``), or None: PIL's ``Image.open`` tries a TGA on any file, as TGA has no signature to recognise it by,
    and pipekit tries it on a file named so."""
    from PIL import Image

    Image.init()
    kind = Image.registered_extensions().get(os.path.splitext(name)[1].lower())
    return kind if kind in _PIL_DECODES else None


def _is_palette_png(buf: np.ndarray) -> bool:
    """Whether encoded bytes are a PNG of colour type 3 (palette): byte 25, in the IHDR chunk that follows the
    signature, is the colour type."""
    return buf.size > 25 and bytes(buf[:8]) == b"\x89PNG\r\n\x1a\n" and int(buf[25]) == 3


def _pil_mode(buf: np.ndarray) -> str | None:
    """The mode PIL opens encoded bytes with (only the header is read: one of :data:`_PIL_HEADERS`), or None when
    PIL cannot open them (not a palette image, then)."""
    im = _pil_open(buf.tobytes())
    if im is None:
        return None
    with im:
        return str(im.mode)


def _palette_indices(buf: np.ndarray, name: str) -> np.ndarray:
    """The palette indices of a palette image's encoded bytes, (H, W) uint8: the class of each pixel of a mask
    saved with a colour palette (PASCAL VOC style), as PIL reads it."""
    from io import BytesIO

    from PIL import Image

    data = buf.tobytes()
    cut = truncation_error(data, name)  # PIL decodes a PNG cut before its end that OpenCV refuses: refused alike
    if cut is not None:
        raise ImageDecodeError(cut)
    try:
        with Image.open(BytesIO(data)) as im:
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(unreadable(name, str(e))) from None


def _check_pixels(width: int, height: int, name: str) -> None:
    """Refuse an image of more pixels than :data:`MAX_PIXELS`, naming the file, its size and how to read it."""
    limit = MAX_PIXELS
    if limit is not None and width * height > limit:
        raise ImageTooLargeError(
            f"{name}: the image is {width}x{height} = {width * height:,} pixels, over pipekit's limit of {limit:,} "
            "(PIL's Image.MAX_IMAGE_PIXELS, as fastai has: a small file can declare that many pixels and take "
            "gigabytes to decode); downscale it or remove it, or, if you trust it, raise the limit: "
            f"import pipekit.vision.decode; pipekit.vision.decode.MAX_PIXELS = {width * height:_} (None: no limit)")


def _too_large(buf: np.ndarray) -> str:
    """What is too large about an image OpenCV would not decode: its size read from the header where it can be."""
    size = _header_size(np.ascontiguousarray(buf).data.cast("B"))
    if size is None:
        return f"the image is larger than OpenCV decodes (at most {MAX_IMAGE_PIXELS:,} pixels)"
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        return f"the image is too large to decode: {w}x{h} = {w * h:,} pixels, over the limit of {MAX_IMAGE_PIXELS:,}"
    return f"the image is too large to decode: {w}x{h}, over the limit of {MAX_IMAGE_SIDE:,} pixels a side"


#: the brands of an ISO base media file (its ``ftyp`` box) that mark a HEIF image: AVIF (AV1) and HEIC (HEVC)
_HEIF_BRANDS = frozenset({b"avif", b"avis", b"avio", b"mif1", b"mif2", b"msf1", b"miaf", b"heic", b"heix", b"heim",
                          b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
#: the most boxes :func:`_boxes` walks in one container: real files have tens; a crafted one cannot make the walk long
_MAX_BOXES = 1024


def _boxes(data: bytes | memoryview, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The boxes of an ISO base media file (JPEG 2000's JP2, HEIF/AVIF) laid end to end from byte ``start`` to
    ``end``: (type, where its contents start, where it ends). Each box is at least its own header long and is cut at
    ``end``, and at most :data:`_MAX_BOXES` are walked, so a crafted length can neither loop the walk nor send it
    past its container."""
    for _ in range(_MAX_BOXES):
        if start + 8 > end:
            return
        size, body = int.from_bytes(data[start:start + 4], "big"), start + 8
        if size == 1:  # a 64-bit length follows the type
            if body + 8 > end:
                return
            size, body = int.from_bytes(data[body:body + 8], "big"), body + 8
        elif size == 0:  # the last box, running to the end of its container
            size = end - start
        if size < body - start:
            return
        yield bytes(data[start + 4:start + 8]), body, min(start + size, end)
        start += size


def _find_box(data: bytes | memoryview, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """(where its contents start, where it ends) of the first box of type ``kind`` from ``start`` to ``end``."""
    return next(((body, stop) for k, body, stop in _boxes(data, start, end) if k == kind), None)


def _j2k_size(data: bytes | memoryview, at: int, end: int) -> tuple[int, int] | None:
    """(width, height) of the JPEG 2000 codestream at byte ``at``: its SIZ marker, which follows the start marker
    (FF4F FF51), gives the reference grid's Xsiz and Ysiz and the image's offsets XOsiz and YOsiz on it."""
    if end - at < 24 or bytes(data[at:at + 4]) != b"\xff\x4f\xff\x51":
        return None
    xsiz, ysiz, xo, yo = (int.from_bytes(data[at + k:at + k + 4], "big") for k in (8, 12, 16, 20))
    return (xsiz - xo, ysiz - yo) if xo < xsiz and yo < ysiz else None


#: the first bytes of a TIFF and of a BigTIFF file, in either byte order
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
#: the bytes of one value of a TIFF field's type: BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG, LONG8 (others read as 4)
_TIFF_TYPE_SIZES = {1: 1, 3: 2, 4: 4, 6: 1, 8: 2, 9: 4, 16: 8}


def _tiff_tags(data: bytes | memoryview, wanted: Iterable[int]) -> dict[int, list[int]]:
    """The first value of each of the ``wanted`` tags in the first directory of TIFF or BigTIFF bytes ``data``, one
    for each time the directory gives the tag (a crafted file may give one twice), read from the entry or from where
    it points when the values do not fit in it. At most 4096 entries are read; nothing is decoded."""
    order: Literal["little", "big"] = "little" if data[0] == 0x49 else "big"
    big = bytes(data[2:4]) in (b"+\0", b"\0+")

    def num(at: int, n: int) -> int:
        return int.from_bytes(data[at:at + n], order)

    keep = frozenset(wanted)
    ifd = num(8, 8) if big else num(4, 4)
    # a directory is its number of entries (2 bytes, 8 in a BigTIFF), then entries of a tag (2), a type (2), a number
    # of values (4, 8 in a BigTIFF) and the values, or where they are when they do not fit (4, 8 in a BigTIFF)
    count, entry, inline = (8, 20, 8) if big else (2, 12, 4)
    found: dict[int, list[int]] = {}
    for k in range(min(num(ifd, count), 4096)):
        at = ifd + count + k * entry
        tag = num(at, 2)
        if tag not in keep:
            continue
        size = _TIFF_TYPE_SIZES.get(num(at + 2, 2), 4)
        where = at + 4 + inline
        if num(at + 4, inline) * size > inline:  # the values do not fit in the entry: it says where they are
            where = num(where, inline)
        found.setdefault(tag, []).append(num(where, size))  # left-aligned in the entry
    return found


def _tiff_premultiplies(data: bytes | memoryview) -> bool:
    """Whether OpenCV would decode image bytes ``data`` with their colours multiplied by their alpha: an 8-bit RGBA
    TIFF whose alpha is unassociated (ExtraSamples 2, as PIL, GIMP and Photoshop save one), which OpenCV reads through
    libtiff's RGBA reader, and that reader premultiplies it ((200, 120, 40) at alpha 128 comes out (100, 60, 20), a
    transparent pixel black). PIL's ``convert('RGB')`` drops the alpha and keeps the colours, as OpenCV does for a
    PNG or a WebP. A TIFF of associated alpha, or of an alpha without ExtraSamples (as OpenCV writes one), or of
    16-bit samples is read as stored. Only the first bytes of anything but a TIFF are looked at."""
    if bytes(data[:4]) not in _TIFF_MAGIC:
        return False
    tags = _tiff_tags(data, (258, 262, 277, 338))  # BitsPerSample, Photometric, SamplesPerPixel, ExtraSamples
    return (tags.get(262) == [2] and tags.get(277) == [4] and tags.get(338) == [2]
            and tags.get(258, [0])[0] == 8)


def _header_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) declared by the header of an image file's bytes ``data``: PNG, JPEG (its first frame marker),
    BMP, WebP, GIF, TIFF (its first image), PNM/PFM/PAM, Sun raster, Radiance HDR, JPEG 2000 (a JP2 file's ``ihdr``
    box and codestream, or a bare codestream) or AVIF/HEIF (its largest ``ispe`` property); else what PIL's header
    reader gives, or None. Nothing is decoded."""
    head = bytes(data[:65536])

    def num(at: int, n: int, order: Literal["little", "big"] = "little", buf: bytes | memoryview = head) -> int:
        return int.from_bytes(buf[at:at + n], order)

    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return num(16, 4, "big"), num(20, 4, "big")
    if head[:2] == b"\xff\xd8":
        i, n = 2, 0
        # a real JPEG has tens of segments before its frame; one of thousands is left to PIL's header reader
        while i + 9 <= len(data) and data[i] == 0xFF and n < 1000:
            marker, n = data[i + 1], n + 1
            if marker == 0xFF:  # a fill byte before a marker: libjpeg skips any number of them
                i += 1
            elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # RSTn and TEM: markers without a length
                i += 2
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
                return num(i + 7, 2, "big", data), num(i + 5, 2, "big", data)
            elif marker in (0xD9, 0xDA):  # the end, or scan data, before any frame: not a walk to trust
                break
            else:
                i += 2 + num(i + 2, 2, "big", data)
        return _pil_header_size(data, "JPEG")
    if head[:2] == b"BM" and len(head) >= 26:  # the DIB header: 16-bit sizes in the oldest, 32-bit signed after
        if num(14, 4) == 12:
            return num(18, 2), num(20, 2)
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(int.from_bytes(head[22:26], "little",
                                                                                          signed=True))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":  # the canvas, 24 bits less one a side
            return 1 + num(24, 3), 1 + num(27, 3)
        if chunk == b"VP8L":  # lossless: 14 bits less one a side, after the signature byte
            bits = num(21, 4)
            return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
        if chunk == b"VP8 ":  # lossy: after the frame tag and start code
            return num(26, 2) & 0x3FFF, num(28, 2) & 0x3FFF
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:  # the logical screen
        return num(6, 2), num(8, 2)
    if head[:4] in _TIFF_MAGIC:  # TIFF or BigTIFF: the first directory's ImageWidth and ImageLength
        tags = _tiff_tags(data, (256, 257))
        if 256 in tags and 257 in tags:
            # a tag given twice keeps its largest value (libtiff reads the first): never an under-report
            return max(tags[256]), max(tags[257])
        return _pil_header_size(data, "TIFF")
    # a comment runs to the end of its line (so the pattern has one way to match, whatever the file holds); a number
    # is at most 10 digits after its leading zeros (Python refuses to convert one of over 4300)
    pnm = re.match(rb"P[1-6Ff]\s(?:\s|#[^\r\n]*[\r\n])*0*(\d{1,10})(?:\s|#[^\r\n]*[\r\n])+0*(\d{1,10})(?!\d)",
                   head)
    if pnm:
        return int(pnm[1]), int(pnm[2])
    if head[:4] == b"\x59\xa6\x6a\x95" and len(head) >= 12:  # Sun raster
        return num(4, 4, "big"), num(8, 4, "big")
    if head[:2] == b"#?":  # Radiance HDR: the line after the header's blank line, "-Y height +X width"
        blank = head.find(b"\n\n")
        # spaced as OpenCV's sscanf reads it (any run of blanks, or none); at most 10 digits after leading zeros
        hdr = re.compile(rb"([-+])([XY])[ \t]*0*(\d{1,10})[ \t]*([-+])([XY])[ \t]*0*(\d{1,10})(?!\d)").match(
            head, blank + 2) if blank >= 0 else None
        if hdr:
            first, second = int(hdr[3]), int(hdr[6])
            return (second, first) if hdr[2] == b"Y" else (first, second)
    if head[:2] == b"P7" and head[2:3].isspace():  # PAM: "WIDTH w" and "HEIGHT h" lines before ENDHDR
        fields = head[:head.find(b"ENDHDR")] if b"ENDHDR" in head else head
        widths, heights = (re.findall(rb"(?im)^[ \t]*" + key + rb"[ \t]+0*(\d{1,10})(?!\d)", fields)
                           for key in (b"WIDTH", b"HEIGHT"))
        if widths and heights:  # a field given twice keeps its largest value: never an under-report
            return max(map(int, widths)), max(map(int, heights))
    if head[:12] == b"\0\0\0\x0cjP  \r\n\x87\n":  # a JP2 file: the header box's ihdr (height, width) and the codestream
        sizes = []
        jp2h = _find_box(data, 0, len(data), b"jp2h")
        ihdr = _find_box(data, *jp2h, b"ihdr") if jp2h else None
        if ihdr and ihdr[1] - ihdr[0] >= 8:
            sizes.append((num(ihdr[0] + 4, 4, "big", data), num(ihdr[0], 4, "big", data)))
        jp2c = _find_box(data, 0, len(data), b"jp2c")
        code = _j2k_size(data, *jp2c) if jp2c else None
        if code:
            sizes.append(code)
        if sizes:  # OpenJPEG decodes the codestream's size; the larger of the two is never an under-report
            return max(w for w, _ in sizes), max(h for _, h in sizes)
        return _pil_header_size(data, "JPEG2000")
    if head[:4] == b"\xff\x4f\xff\x51":  # a bare JPEG 2000 codestream (.j2k, .j2c)
        return _j2k_size(data, 0, len(data)) or _pil_header_size(data, "JPEG2000")
    if head[4:8] == b"ftyp":  # an ISO base media file: HEIF/AVIF when its brands say so
        ftyp = _find_box(head, 0, len(head), b"ftyp")
        brands = {head[k:k + 4] for k in range(ftyp[0], ftyp[1] - 3, 4)} if ftyp else set()
        if brands & _HEIF_BRANDS:
            # the image spatial extents in meta/iprp/ipco: one per image item (the image, a grid's tiles, a
            # thumbnail, an alpha plane); the largest is the one decoded
            meta = _find_box(data, 0, len(data), b"meta")
            # meta is a full box: its version and flags come before its boxes
            iprp = _find_box(data, meta[0] + 4, meta[1], b"iprp") if meta else None
            ipco = _find_box(data, *iprp, b"ipco") if iprp else None
            extents = [(num(body + 4, 4, "big", data), num(body + 8, 4, "big", data))
                       for box, body, stop in (_boxes(data, *ipco) if ipco else ()) if box == b"ispe"
                       and stop - body >= 12]
            if extents:
                return max(extents, key=lambda wh: wh[0] * wh[1])
    return _pil_header_size(data)


def _pil_header_size(data: bytes | memoryview, kind: str | None = None) -> tuple[int, int] | None:
    """(width, height) of an image as PIL's own parser reads its header: of PIL's format ``kind`` (``"JPEG"``,
    ``"TIFF"``, ``"JPEG2000"``, ``"AVIF"``: a header the walk in :func:`_header_size` could not follow, thousands of
    segments, an odd layout), or, with no ``kind``, of the first format PIL recognises by the file's first bytes, as
    ``Image.open`` finds it (formats PIL only guesses at, with no signature, are left out, and so are the ones out of
    :data:`_PIL_HEADERS`). Only the header is read, and PIL's pixel bound is not applied (pipekit's is, by the
    caller). None when PIL cannot read it either: the
    image is then decoded and refused after, if too large."""
    im = _pil_open(data, kind)
    if im is None:
        return None
    with im:
        width, height = im.size
        return int(width), int(height)


def _pil_open(data: bytes | memoryview, kind: str | None = None) -> Any:
    """A PIL image of ``data``, its header read and its pixels not yet (see :func:`_pil_header_size` for ``kind``),
    opened without PIL's pixel bound (pipekit's applies); None when no format of :data:`_PIL_HEADERS` reads its
    header. Only those formats are tried: another format's opener may decode pixels before any bound applies."""
    from io import BytesIO

    from PIL import Image

    Image.init()  # every format PIL has, registered once for the process
    raw = bytes(data)
    for fmt in [kind] if kind else list(Image.ID):
        factory, accept = Image.OPEN.get(fmt, (None, None)) if fmt in _PIL_HEADERS else (None, None)
        try:
            # as Image.open: a prefix check answering a string (a warning) or a false value is no match
            known = kind is not None or (accept is not None and not isinstance(match := accept(raw[:16]), str)
                                         and bool(match))
            if factory is None or not known:
                continue
            return factory(BytesIO(raw), "")  # Image.open's own opener, less its bomb check
        except Exception:  # whatever PIL raises on a header it cannot parse: OpenCV decides, the bound applies after
            continue
    return None


def _wide_to_uint8(img: np.ndarray, mode: str, name: str) -> np.ndarray:
    """Pixels wider than 8 bits as uint8: a mask keeps its class values (at most 255), a 16-bit image its top
    8 bits; one rule for a decoded file and for the same pixels given in memory."""
    if mode == "mask":
        if img.size and img.max() >= 256:
            raise ImageDecodeError(f"{name}: mask values go up to {int(img.max())}; at most 255 classes are supported")
        return img.astype(np.uint8)
    if img.dtype == np.uint16:
        return np.right_shift(img, 8).astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def decode_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Read and decode one image file into a uint8 HWC array (see `decode_bytes` for modes).

    Example:
        >>> import pipekit.datasets as D
        >>> from pipekit.vision import decode_image
        >>> img = decode_image(D.path("coco_tiny") / "train" / "000000153607.jpg")
        >>> img.shape, img.dtype, decode_image(D.path("mnist_tiny") / "train/3/7463.png", mode="L").shape
        ((128, 128, 3), dtype('uint8'), (28, 28, 1))
    """
    _check_mode(mode)
    return decode_bytes(read_image_file(path), mode=mode, name=str(Path(path)))


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of an image file; a missing or unreadable one is an :class:`ImageDecodeError` naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        if re.match(r"(?i)(https?|ftp)://", str(path)):  # an address, which pipekit never fetches on its own
            raise ImageDecodeError(f"{path}: is a web address, not a file; pipekit reads images from files and "
                                   "bytes: download it first (e.g. urllib.request.urlopen(url).read(), then pass "
                                   "the bytes)") from None
        raise ImageDecodeError(f"{path}: file not found; check the path or the getter that produced it") from None
    except OSError as e:
        raise ImageDecodeError(f"{path}: cannot be read ({e.strerror or e})") from None


def truncation_error(data: bytes, name: str) -> str | None:
    """Why ``data`` looks cut short (a JPEG without its end marker, a PNG without IEND), else None.

    Decoders fill a truncated image with grey and carry on, so this is checked separately.
    """
    tail = data[-65536:]
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return f"{name}: JPEG is truncated (no end-of-image marker); re-download or remove it"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        return f"{name}: PNG is truncated (no IEND chunk); re-download or remove it"
    return None


def _bad(path: Path, mode: str) -> str | None:
    try:
        decode_image(path, mode=mode)
        return truncation_error(path.read_bytes(), str(path))
    except ImageDecodeError as e:
        return str(e)


def verify_images(files: Iterable[str | os.PathLike], mode: str = "RGB", num_workers: int = 2) -> L[Path]:
    """Return the files that cannot be decoded or are truncated (empty list when all are fine).

    ``files`` is a list of files (``get_image_files(path)``), or a folder, whose image files are checked.
    Run it before training, then delete or fix what it lists, as in:
        >>> import shutil, tempfile
        >>> from pathlib import Path
        >>> import pipekit.datasets as D
        >>> from pipekit.data import get_image_files
        >>> from pipekit.vision import verify_images
        >>> path = Path(tempfile.mkdtemp()) / "3"
        >>> _ = shutil.copytree(D.path("mnist_tiny") / "valid" / "3", path)
        >>> _ = (path / "cut.png").write_bytes((path / "7006.png").read_bytes()[:60])   # a download cut short
        >>> bad = verify_images(get_image_files(path))
        >>> [f.name for f in bad]
        ['cut.png']
        >>> for f in bad: f.unlink()
        >>> verify_images(path)
        []
    """
    _check_mode(mode)
    if num_workers < 1:
        raise ValueError(f"num_workers={num_workers} must be >= 1")
    if isinstance(files, (str, os.PathLike)):  # one path: a folder to search, never the characters of its name
        from pipekit.core.errors import DataError
        from pipekit.data.getters import get_image_files

        if not os.path.isdir(files):
            raise DataError(f"verify_images: {os.fspath(files)!r} is not a folder; give a folder or a list of files "
                            f"(verify_images(get_image_files(path)))")
        files = get_image_files(files)
    paths = [Path(f) for f in files]
    with ThreadPoolExecutor(num_workers) as ex:
        errors = list(ex.map(lambda p: _bad(p, mode), paths))
    return L([p for p, e in zip(paths, errors) if e is not None])  # an L: the book's failed.map(Path.unlink)


def resize_to(size: tuple[int, int], targ_sz: int, use_min: bool = False) -> tuple[int, int]:
    """The (width, height) that brings the longer side of an image of ``size`` (width, height) to ``targ_sz`` (the
    shorter side with ``use_min``), keeping its aspect, as fastai's ``resize_to``.

    >>> resize_to((400, 300), 200), resize_to((400, 300), 150, use_min=True)
    ((200, 150), (200, 150))
    """
    w, h = size
    ratio = targ_sz / (min if use_min else max)(w, h)
    return int(w * ratio), int(h * ratio)


def resize_image(file: str | os.PathLike, dest: str | os.PathLike, src: str | os.PathLike = ".",
                 max_size: int | None = None, n_channels: int = 3, ext: str | None = None,
                 img_format: str | None = None, resample: int | None = None, resume: bool = False,
                 **kwargs: Any) -> bool:
    """Write ``src/file`` to ``dest/file`` with its longer side at most ``max_size`` (aspect kept) and
    ``n_channels`` channels (3: RGB), as fastai's ``resize_image``: an image already small enough, with those
    channels, is copied as it is (or left alone when ``dest`` is where it is). ``ext`` changes the suffix,
    ``img_format`` and ``kwargs`` go to PIL's ``save`` (e.g. ``quality=90``), ``resample`` is PIL's filter
    (default bilinear). ``resume``: a file already at ``dest`` is kept. Returns False (writing nothing) for a file
    that cannot be decoded, which :func:`resize_images` reports.

    >>> import tempfile
    >>> from PIL import Image
    >>> import pipekit.datasets as D
    >>> from pipekit.vision import resize_image
    >>> src, out = D.path("coco_tiny") / "train", tempfile.mkdtemp()
    >>> resize_image("000000153607.jpg", dest=out, src=src, max_size=64)  # a 128x128 photo
    True
    >>> with Image.open(f"{out}/000000153607.jpg") as im:
    ...     max(im.size)
    64
    """
    import shutil

    from PIL import Image

    file = Path(file)
    dest_fname = Path(dest) / file
    src_fname = Path(src) / file
    if ext is not None:
        dest_fname = dest_fname.with_suffix(ext)
    if resume and dest_fname.exists():
        return True
    if _bad(src_fname, "RGB") is not None:
        return False
    dest_fname.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src_fname) as img:
        channels = len(img.getbands())
        too_big = max_size is not None and max(img.size) > max_size
        if too_big or channels != n_channels or dest_fname.suffix.lower() != src_fname.suffix.lower():
            filt = Image.Resampling.BILINEAR if resample is None else resample
            out = img.resize(resize_to(img.size, max_size), resample=filt) if too_big and max_size is not None else img
            if n_channels == 3:
                out = out.convert("RGB")
            elif n_channels == 1:
                out = out.convert("L")
            out.save(dest_fname, img_format, **kwargs)
            return True
    if src_fname.resolve() != dest_fname.resolve():
        shutil.copy2(src_fname, dest_fname)
    return True


def resize_images(path: str | os.PathLike, max_workers: int = 2, max_size: int | None = None, recurse: bool = False,
                  dest: str | os.PathLike = ".", n_channels: int = 3, ext: str | None = None,
                  img_format: str | None = None, resample: int | None = None, resume: bool = False,
                  **kwargs: Any) -> L[Path]:
    """:func:`resize_image` for every image file in the folder ``path`` (its subfolders too with ``recurse``),
    written under ``dest`` at the same relative paths, in ``max_workers`` threads: the course's
    ``resize_images(path/o, max_size=400, dest=path/o)`` shrinks downloaded photos in place. ``resume`` keeps the
    files already at ``dest`` (to finish an interrupted run into another folder). Returns the files left out (an
    :class:`~pipekit.data.L`, empty when all were written), with a warning naming them: those that could not be
    decoded (delete them, as ``verify_images`` finds them), and those whose written name another file takes. With
    ``ext``, files of one name in different formats (``photo.png`` and ``photo.webp``, with ``ext='.jpg'``) would
    write the same file: the first of them (in sorted order) is written and the others are left out, named in the
    warning with the file that took their name (rename them to keep them all). Nothing is overwritten by another
    source.

    >>> import pipekit.datasets as D, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from pipekit.vision import resize_images
    >>> out = Path(tempfile.mkdtemp())
    >>> resize_images(D.path("coco_tiny") / "train", max_size=100, dest=out)  # 200 photos of 128x128
    []
    >>> with Image.open(sorted(out.iterdir())[0]) as im:
    ...     len(list(out.iterdir())), max(im.size)
    (200, 100)
    """
    from pipekit.core.errors import DataError, warn
    from pipekit.data.getters import get_image_files

    path = Path(path)
    if not path.is_dir():
        raise DataError(f"resize_images: {os.fspath(path)!r} is not a folder; give the folder of the images (to resize "
                        "one file, use resize_image(file, dest, src=folder))")
    if max_size is not None and (not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1):
        raise ValueError(f"resize_images: max_size={max_size!r} must be a positive whole number of pixels, or None")
    if n_channels not in (1, 3):
        raise ValueError(f"resize_images: n_channels={n_channels!r} must be 1 (grey) or 3 (RGB)")
    if max_workers < 1:
        raise ValueError(f"resize_images: max_workers={max_workers} must be >= 1")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(f.relative_to(path) for f in get_image_files(path, recurse=recurse))
    # the name each file is written under: with ext, two files of one stem would write one file, the second over
    # the first; the first (sorted) is written and the others are left out before anything is written
    taken: dict[Path, Path] = {}
    clashes: list[tuple[Path, Path]] = []  # (left out, the file written under its name)
    for f in files:
        out = f if ext is None else f.with_suffix(ext)
        if out in taken:
            clashes.append((f, taken[out]))
        else:
            taken[out] = f
    files = list(taken.values())
    with ThreadPoolExecutor(max_workers) as ex:
        done = list(ex.map(lambda f: resize_image(f, dest, src=path, max_size=max_size, n_channels=n_channels, ext=ext,
                                                  img_format=img_format, resample=resample, resume=resume, **kwargs),
                           files))
    failed: L[Path] = L([path / f for f, ok in zip(files, done) if not ok])
    if failed:
        warn(f"resize_images: {len(failed)} file(s) could not be decoded and were not written (first: {failed[0]}); "
             "remove them (verify_images lists them) or fix them")
    if clashes:
        f, first = clashes[0]
        warn(f"resize_images: {len(clashes)} file(s) would be written under the name of another with ext={ext!r} and "
             f"were left out (first: {path / f}, as {(dest / f).with_suffix(ext or '')} is written from {path / first}); "
             "rename them to keep them all, or resize without ext")
    return L([*failed, *(path / f for f, _ in clashes)])


#: what an image input accepts, said once for every error message and docstring that lists it
IMAGE_VALUES = ("file paths (str or pathlib.Path), encoded image bytes (JPEG/PNG/...) or a binary file object holding "
                "them, PIL images, or uint8 (or 16-bit) arrays/tensors: (H, W) grey, (H, W, C) or (C, H, W); float arrays/tensors (C, H, W) with values in 0..1")


def is_image_value(value: object) -> bool:
    """Whether ``value`` is an image already in memory (bytes, a PIL image, an array or a tensor), not a path."""
    if isinstance(value, (bytes, bytearray, memoryview, np.ndarray)):
        return True
    kind = type(value).__module__.split(".")[0]
    return kind in ("PIL", "torch") and hasattr(value, "shape" if kind == "torch" else "getbands")


def _pil_pixels(img: Any, mode: str, name: str) -> np.ndarray:
    """A PIL image's pixels as a file of the same image decodes them: a mask keeps its stored values (palette
    indices, grey levels); 16-bit grey (mode I;16, as a 16-bit PNG opens) stays 16-bit (PIL's convert would clip
    every value above 255 to white). Mode I (32-bit integers) holds 8-bit grey when its values fit 0..255 (as
    ``Image.fromarray(a).convert('I')`` makes it, and as PIL's own ``convert('L')`` reads it), and 16-bit grey when
    they go past 255 (older Pillow opens a 16-bit PNG as mode I); values outside 0..65535 are refused, naming the
    fix. A mask keeps mode I's values as class indices."""
    img_mode = img.mode
    if img_mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if img_mode == "I":
        arr = np.asarray(img)
        if mode == "mask":
            return arr
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageDecodeError(f"{name}: a PIL image of mode I (32-bit integers) holds values {lo}..{hi}, "
                                   "outside both 8-bit (0..255) and 16-bit (0..65535) pixels; scale it to one of "
                                   "them first (img.convert('L') clips to 0..255)")
        return arr.astype(np.uint8 if hi <= 255 else np.uint16)
    if mode != "mask" and img_mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    return np.asarray(img)


def _pixels_of(value: object, name: str, mode: str = "RGB") -> np.ndarray:
    """An in-memory image as an (H, W, C) array, uint8, uint16 or float (channels first moved last)."""
    kind = type(value).__module__.split(".")[0]
    if kind == "PIL":
        arr = _pil_pixels(value, mode, name)
    elif kind == "torch":
        arr = value.detach().cpu().numpy()  # type: ignore[attr-defined]
    else:
        arr = np.asarray(value)
    torch_like = kind == "torch"
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        last_ok, first_ok = arr.shape[2] in (1, 3, 4), arr.shape[0] in (1, 3, 4)
        # one rule for every array, whatever its dtype or size (a float (4, 12, 3) array is 4x12 RGB, not 3
        # channels of 12x3): channels last when the last axis can be channels (numpy, PIL and OpenCV images),
        # channels first only when the first can and the last cannot (a tensor, a decoded batch's image). A
        # tensor that fits both is refused: tensors are channels first, yet this one reads as channels last.
        if last_ok and first_ok and torch_like:
            raise ImageDecodeError(f"{name}: an image tensor of shape {tuple(arr.shape)} could be channels first "
                                   f"(C, H, W) or channels last (H, W, C); give it as an (H, W, C) array "
                                   f"(t.permute(1, 2, 0).numpy() for a (C, H, W) tensor)")
        if first_ok and not last_ok:
            arr = np.transpose(arr, (1, 2, 0))
        elif not last_ok:
            raise ImageDecodeError(f"{name}: an image array of shape {arr.shape} has no channel axis of 1, 3 or 4 "
                                   f"(first or last); give {IMAGE_VALUES}")
    else:
        raise ImageDecodeError(f"{name}: an image array needs 2 or 3 dimensions, got shape {arr.shape}; "
                               f"give {IMAGE_VALUES}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:  # the resize and augmentation of an image need pixels
        raise ImageDecodeError(f"{name}: the image is {arr.shape[1]}x{arr.shape[0]} pixels (width x height), so it "
                               "has none; give an image of at least 1x1 pixel (check the crop or the array that "
                               "made it)")
    return arr


def file_object_bytes(f: Any, name: str) -> bytes:
    """All of an open binary file's bytes (``open(path, 'rb')``, ``io.BytesIO``, an upload's file object), read from
    its start when it can seek there, as PIL's ``Image.open`` reads one."""
    try:
        f.seek(0)
    except (AttributeError, OSError, ValueError):  # a stream that cannot seek is read from where it is, as PIL does
        pass
    binary = "open image files in binary mode: open(path, 'rb')"
    try:
        data = f.read()
    except UnicodeDecodeError:  # a file opened as text
        raise ImageDecodeError(f"{name}: the file object {type(f).__name__} reads text, not bytes; {binary}") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageDecodeError(f"{name}: the file object {type(f).__name__} gave {type(data).__name__}, not bytes; "
                               f"{binary}")
    return bytes(data)


def image_from_value(value: object, mode: str = "RGB", name: str = "<image>") -> np.ndarray:
    """An image held in memory as a uint8 (H, W, C) array in ``mode`` (see :func:`decode_bytes`), as decoding
    its file would give it: encoded bytes are decoded, and so is an open binary file object holding them
    (``io.BytesIO(data)``, ``open(path, 'rb')``, read from its start); a PIL image, a NumPy array or a torch tensor
    is taken as pixels (uint8 0..255, or floats 0..1), grey (H, W), (H, W, C), or channels first (C, H, W) when the
    last axis cannot be channels (is not 1, 3 or 4); a tensor that fits both readings is refused. 16-bit pixels
    (a PIL image of mode I;16, a uint16 array) keep their top 8 bits, as a 16-bit file's do.

    >>> image_from_value(np.full((2, 3), 7, np.uint8), mode="RGB").shape
    (2, 3, 3)
    >>> image_from_value(np.ones((3, 4, 5), np.float32), mode="L")[0, 0]
    array([255], dtype=uint8)
    >>> image_from_value(np.full((2, 2), 1000, np.uint16), mode="L")[0, 0]   # 1000 >> 8
    array([3], dtype=uint8)
    """
    _check_mode(mode)
    if not is_image_value(value) and callable(getattr(value, "read", None)):
        value = file_object_bytes(value, name)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(value), mode=mode, name=name)
    if not is_image_value(value):
        raise ImageDecodeError(f"{name}: {type(value).__name__} is not an image; give {IMAGE_VALUES}")
    arr = _pixels_of(value, name, mode)
    if arr.dtype.kind == "f":
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
            raise ImageDecodeError(f"{name}: a float image must hold values in 0..1, this one spans {lo:g}..{hi:g}; "
                                   "give uint8 pixels (0..255) or divide by 255")
        arr = np.round(arr * 255).astype(np.uint8)
    elif arr.dtype == np.bool_:  # a mask's True is class 1; an image's is white
        arr = arr.astype(np.uint8) * (1 if mode == "mask" else 255)
    elif arr.dtype == np.uint16:
        arr = _wide_to_uint8(arr, mode, name)  # 16-bit pixels, as a 16-bit file decodes
    elif arr.dtype != np.uint8:
        if mode == "mask" and arr.dtype.kind in "iu" and arr.size and 0 <= arr.min() and arr.max() < 256:
            arr = arr.astype(np.uint8)
        else:
            raise ImageDecodeError(f"{name}: an image array of {arr.dtype} is not accepted; give {IMAGE_VALUES}")
    c = arr.shape[2]
    if mode == "RGB":
        arr = np.repeat(arr, 3, axis=2) if c == 1 else arr[:, :, :3]
    elif mode == "L" and c > 1:
        arr = luma(arr)  # as a colour file is made grey
    elif mode == "mask" and c > 1:
        if not all(np.array_equal(arr[..., 0], arr[..., k]) for k in range(1, min(c, 3))):
            raise ImageDecodeError(f"{name}: mask has {c} different colour channels; masks must hold one class "
                                   "index per pixel (a grey or palette image)")
        arr = arr[:, :, :1]
    return np.ascontiguousarray(arr)
