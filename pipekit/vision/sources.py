"""Where an image block's pixels come from: files, or images already in memory.

A column of an image block holds, per item, one of:

- a file path (text, ``pathlib.Path``), read from disk;
- encoded bytes (PNG, JPEG, ...): a ``Binary`` column, or a Hugging Face ``datasets`` ``Image`` column,
  which Arrow (and so ``to_items``) holds as ``{"bytes", "path"}`` structs (bytes when the image is in
  memory, a path when it is a file);
- a PIL image, a NumPy array or a torch tensor of pixels (a column of Python objects; see
  :func:`~pipekit.vision.decode.image_from_value` for the shapes and value ranges taken).

Images in memory go into the same presize cache as files, keyed by their bytes (PIL images and arrays: by
their mode or dtype, size and pixels), so they are decoded and presized once, like files; a handful of new
items (``predict``) is decoded in memory without touching the cache.

Example:
    >>> import polars as pl
    >>> s = pl.Series("image", [{"bytes": b"\\x89PNG...", "path": "a.png"}, {"bytes": None, "path": "b.png"}])
    >>> [type(v).__name__ for v in image_sources(s, "ImageBlock")]
    ['MemoryImage', 'str']
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipekit.core.errors import DataError
from pipekit.vision.decode import IMAGE_VALUES, decode_bytes, file_object_bytes, image_from_value, is_image_value

__all__ = ["MemoryImage", "image_sources"]


@dataclass(frozen=True, eq=False)
class MemoryImage:
    """One image held in memory: encoded ``data`` (bytes), or an ``image`` (a PIL image, an array or a tensor
    of pixels); ``name`` says where it came from in error messages.

    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from pipekit.vision.sources import MemoryImage
    >>> buf = io.BytesIO(); Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(buf, format="PNG")
    >>> img = MemoryImage("upload.png", data=buf.getvalue())
    >>> str(img), img.decode("RGB").shape, img.decode("L").shape
    ('upload.png', (4, 6, 3), (4, 6, 1))
    """

    name: str
    data: bytes | None = None
    image: Any = None

    def __str__(self) -> str:
        return self.name

    def content(self) -> bytes:
        """What the cache key hashes: the encoded bytes, or a PIL image's mode, size and pixels, and for a palette
        image (mode P or PA, as a GIF opens) its palette and transparent colour too: its pixels are indices into the
        palette, so two images of one set of indices and different palettes are different images."""
        if self.data is not None:
            return self.data
        img = self.image
        if _is_pil(img):
            head = f"PIL|{img.mode}|{img.size[0]}x{img.size[1]}|".encode()
            if img.mode in ("P", "PA"):
                palette = img.getpalette("RGBA") or []  # with each entry's alpha, whatever the palette's own mode
                head += (b"palette|" + bytes(palette)
                         + f"|transparency|{img.info.get('transparency')!r}|".encode())
            return head + img.tobytes()
        arr = np.ascontiguousarray(img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img))
        return f"array|{arr.dtype}|{arr.shape}|".encode() + arr.tobytes()

    def decode(self, mode: str) -> np.ndarray:
        """The pixels as a uint8 HWC array in ``mode`` ("RGB", "L" or "mask"), as files are decoded."""
        if self.data is not None:
            return decode_bytes(self.data, mode=mode, name=self.name)
        return image_from_value(self.image, mode=mode, name=self.name)


def _is_pil(v: Any) -> bool:
    return type(v).__module__.startswith("PIL.") and hasattr(v, "tobytes") and hasattr(v, "convert")


def _from_struct(raw: pl.Series, who: str) -> list[str | MemoryImage]:
    fields = [f.name for f in raw.dtype.fields]  # type: ignore[attr-defined]
    if not {"bytes", "path"} <= set(fields):
        raise DataError(f"{who} got a column of structs with fields {fields}; image structs (a Hugging Face "
                        "datasets Image column) have 'bytes' and 'path'")
    out: list[str | MemoryImage] = []
    for i, v in enumerate(raw.to_list()):
        data, path = (v or {}).get("bytes"), (v or {}).get("path")
        if data is not None:
            out.append(MemoryImage(f"{path or 'image'} (item {i} of column {raw.name!r})", data=bytes(data)))
        elif path is not None:
            out.append(str(path))
        else:
            raise DataError(f"{who}: item {i} of column {raw.name!r} has neither image bytes nor a path")
    return out


def image_sources(raw: pl.Series, who: str) -> list[str | MemoryImage]:
    """Each item of an image column as a file path or a :class:`MemoryImage` (see the module docstring).

    >>> import numpy as np
    >>> import polars as pl
    >>> from pipekit.vision.sources import image_sources
    >>> image_sources(pl.Series("image", ["a.png", "b.jpg"]), "ImageBlock")
    ['a.png', 'b.jpg']
    >>> col = pl.Series("image", [np.zeros((2, 2), np.uint8), "c.png"], dtype=pl.Object)
    >>> [str(v) for v in image_sources(col, "ImageBlock")]
    ["item 0 of column 'image' (a ndarray)", 'c.png']
    """
    if raw.dtype == pl.Utf8:
        return raw.to_list()
    if raw.dtype == pl.Binary:
        return [MemoryImage(f"item {i} of column {raw.name!r}", data=v) for i, v in enumerate(raw.to_list())]
    if isinstance(raw.dtype, pl.Struct):
        return _from_struct(raw, who)
    if raw.dtype == pl.Object or raw.dtype == pl.Null:
        out: list[str | MemoryImage] = []
        for i, v in enumerate(raw.to_list()):
            if isinstance(v, (str, os.PathLike)):
                out.append(os.fspath(v))
            elif isinstance(v, (bytes, bytearray, memoryview)):
                out.append(MemoryImage(f"item {i} of column {raw.name!r}", data=bytes(v)))
            elif is_image_value(v):
                out.append(MemoryImage(f"item {i} of column {raw.name!r} (a {type(v).__name__})", image=v))
            elif callable(getattr(v, "read", None)):  # io.BytesIO(data), open(path, 'rb'): the bytes it holds
                name = f"item {i} of column {raw.name!r}"
                out.append(MemoryImage(name, data=file_object_bytes(v, name)))
            else:
                raise DataError(f"{who}: item {i} of column {raw.name!r} is a {type(v).__name__}; give {IMAGE_VALUES}")
        return out
    raise DataError(f"{who} needs images: {IMAGE_VALUES}, or a Hugging Face Image column; got a column of "
                    f"{raw.dtype}. Use a getter that returns the image (or its file) of each item")
