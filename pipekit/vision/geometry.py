"""Geometry shared by presizing and augmentation: pad modes, sizes and 3x3 matrices, defined once.

Matrices map output coordinates to input coordinates in the normalised frame of ``grid_sample``
(-1..1 at the pixel edges, ``align_corners=False``) and are built for a whole batch as (B, 3, 3) stacks.

>>> size2(224), size2([32, 48]), size2(None, (5, 6))
((224, 224), (32, 48), (5, 6))
>>> crop_matrices((100, 100), (50, 50), np.ones(1), np.ones(1), np.full((1, 2), 0.5))[0].tolist()
[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from pipekit.core.validate import Interval, Is, check, finite_number

INTERP_MODES = ("bilinear", "nearest")
PAD_MODES = ("reflection", "zeros", "border")
# the augmentation's warp: grid_sample's reflection (align_corners=False) mirrors about the pixel edges, so the
# edge pixel is repeated (cba|abc): OpenCV's BORDER_REFLECT, not BORDER_REFLECT_101 (cb|abc).
CV_BORDER = {"reflection": cv2.BORDER_REFLECT, "zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE}
# an item transform's pad (Resize(method="pad"), CropPad) mirrors about the edge pixel, not repeating it (cb|abc),
# as np.pad(mode="reflect") and fastai's pad do: OpenCV's BORDER_REFLECT_101.
PAD_BORDER = {"reflection": cv2.BORDER_REFLECT_101, "zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE}
PROBABILITY = Interval(0, 1)
#: what ``max_lighting`` accepts: brightness moves the mid-grey to 0.5 * (1 -+ it) and contrast scales by up to
#: 1 / (1 - it), as fastai's do, so it stays below 1
MAX_LIGHTING = Interval(0, 1, closed="left")
#: what ``ratio`` (of a crop's width to its height) accepts: crops are drawn log-uniform between two finite numbers
#: (an infinite bound has no logarithm to draw up to)
RATIO = Is(lambda r: len(r) == 2 and all(finite_number(x) is not None for x in r) and 0 < r[0] <= r[1],
           "(low, high), two finite numbers with 0 < low <= high")
#: what a random crop's ``min_scale`` and ``max_scale`` (shares of the source's area) accept
CROP_SCALE = Interval(0, 1, closed="right")


def check_crop_scales(who: str, min_scale: float, max_scale: float) -> None:
    """Refuse a ``max_scale`` outside ``min_scale``..1: the range of areas a random crop is drawn from (each checked
    against :data:`CROP_SCALE` first)."""
    check(who, max_scale=(max_scale, Interval(min_scale, 1, closed="both")))


#: the largest side an image size parameter accepts (output of an item transform, the presize cache, batch
#: augmentation): each image of that size is a buffer of side x side pixels, so a size read from a file must not
#: be able to ask for more. 8192 px is far beyond what models are trained on (224-2048 px); larger sources are
#: resized down to it.
MAX_SIDE = 8192


def _whole(v: Any, limit: int | None = MAX_SIDE) -> bool:
    return (isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
            and (limit is None or int(v) <= limit))


def _size_ok(v: Any, limit: int | None = MAX_SIDE) -> bool:
    return _whole(v, limit) or (isinstance(v, (tuple, list)) and len(v) == 2 and all(_whole(x, limit) for x in v))


def _size_text(limit: int | None) -> str:
    return "a positive int or a (height, width) pair of them" + (
        f", at most {limit} per side (the largest image side pipekit makes)" if limit is not None else "")


#: what a size parameter accepts
SIZE = Is(_size_ok, _size_text(MAX_SIDE))


def as_size(size: Any, limit: int | None = MAX_SIDE) -> Any:
    """A size as stored: an int or a (height, width) tuple (the list a record holds becomes a tuple again);
    anything else is returned as given, for ``check_params`` to refuse by name."""
    return int(size) if _whole(size, limit) else (int(size[0]), int(size[1])) if _size_ok(size, limit) else size


def size_param(owner: str, size: Any, none_ok: bool = False, name: str = "size",
               limit: int | None = MAX_SIDE) -> int | tuple[int, int] | None:
    """Check a size parameter and return it as stored (or None where allowed). ``limit``: the largest side
    (None for a size that only describes a source image, such as the one coordinates are measured in)."""
    check(owner, **{name: (size, Is(lambda v: (none_ok and v is None) or _size_ok(v, limit), _size_text(limit) +
                                   (" or None" if none_ok else "")))})
    return None if size is None else as_size(size, limit)


def size2(size: int | Sequence[int] | None, default: tuple[int, int] | None = None) -> tuple[int, int]:
    """A checked size as (height, width); None gives ``default``."""
    if size is None:
        return default  # type: ignore[return-value]
    if _whole(size):
        return int(size), int(size)  # type: ignore[arg-type]
    return int(size[0]), int(size[1])  # type: ignore[index]


def eye_stack(n: int, sx: np.ndarray | float = 1.0, sy: np.ndarray | float = 1.0) -> np.ndarray:
    """(n, 3, 3) identity matrices, or scalings by ``sx``, ``sy`` (per image or shared)."""
    m = np.tile(np.eye(3), (n, 1, 1))
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def crop_matrices(in_hw: tuple[int, int], out_hw: tuple[int, int], scale: np.ndarray, ratio: np.ndarray,
                  uv: np.ndarray) -> np.ndarray:
    """Crops covering ``scale`` of the input area with aspect (w/h) ``ratio`` x the output's, placed at
    ``uv`` (n, 2) in [0, 1]; a crop too wide or too tall for the image shrinks keeping its aspect."""
    (hi, wi), (ho, wo) = in_hw, out_hw
    aspect = (wo / ho) * ratio
    cw = np.sqrt(scale * hi * wi * aspect)
    ch = cw / aspect
    wide = cw > wi
    cw, ch = np.where(wide, wi, cw), np.where(wide, wi / aspect, ch)
    tall = ch > hi
    ch, cw = np.where(tall, hi, ch), np.where(tall, hi * aspect, cw)
    sx, sy = cw / wi, ch / hi
    m = eye_stack(len(scale), sx, sy)
    m[:, 0, 2], m[:, 1, 2] = (2 * uv[:, 0] - 1) * (1 - sx), (2 * uv[:, 1] - 1) * (1 - sy)
    return m


def first_fitting_try(cw: np.ndarray, ch: np.ndarray, w: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
    """Of crops drawn several times per image (``cw``, ``ch``: (n, tries) widths and heights in the image's pixels,
    ``w``, ``h`` its size, a number or (n, 1)), the first try that fits, rounded to whole pixels, as fastai's
    ``RandomResizedCrop`` takes it: the try's index per image and whether any fits."""
    cw, ch = np.round(cw), np.round(ch)
    fits: np.ndarray = (cw <= w) & (ch <= h) & (cw >= 1) & (ch >= 1)
    return fits.argmax(1), np.asarray(fits.any(1))


def keystone_matrices(d: np.ndarray) -> np.ndarray:
    """Homographies moving the corners of the -1..1 square in a keystone pattern, ``d`` (n, 2) = (dx, dy);
    the 8x8 systems of all images are solved at once."""
    src = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    sign = np.array([[-1, 1], [1, -1], [-1, 1], [1, -1]], dtype=np.float64)  # corner moves (dx, dy) x sign
    dst = src + sign * d[:, None, :]  # (n, 4, 2)
    n = len(d)
    a = np.zeros((n, 8, 8))
    x, y = np.broadcast_to(src[:, 0], (n, 4)), np.broadcast_to(src[:, 1], (n, 4))
    u, v = dst[..., 0], dst[..., 1]
    a[:, 0::2, 0], a[:, 0::2, 1], a[:, 0::2, 2] = x, y, 1
    a[:, 1::2, 3], a[:, 1::2, 4], a[:, 1::2, 5] = x, y, 1
    a[:, 0::2, 6], a[:, 0::2, 7] = -u * x, -u * y
    a[:, 1::2, 6], a[:, 1::2, 7] = -v * x, -v * y
    h = np.linalg.solve(a, dst.reshape(n, 8, 1))[..., 0]
    return np.concatenate([h, np.ones((n, 1))], 1).reshape(n, 3, 3)


def pixel_matrices(m: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Normalised output->input matrices (B, 3, 3) as pixel-centre matrices (what OpenCV's inverse map wants)."""
    (hi, wi), (ho, wo) = in_hw, out_hw
    a_out = np.array([[2 / wo, 0, 1 / wo - 1], [0, 2 / ho, 1 / ho - 1], [0, 0, 1]])
    b_in = np.array([[wi / 2, 0, (wi - 1) / 2], [0, hi / 2, (hi - 1) / 2], [0, 0, 1]])
    return b_in @ np.asarray(m, dtype=np.float64) @ a_out
