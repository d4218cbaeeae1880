"""Item transforms for images: the deterministic resize done once per file before caching.

Every transform here maps a decoded uint8 HWC array to a fixed output size and can say where a point
of the source image lands (``point_matrix``), so masks and keypoints follow their image exactly.
Random cropping is not done per item: it is part of the per-batch augmentation plan, which resamples
each image once (see :mod:`pipekit.vision.augment`).

Example:
    >>> import numpy as np
    >>> Resize(64, method="pad")(np.zeros((100, 50, 3), np.uint8)).shape
    (64, 64, 3)
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import cv2
import numpy as np

from pipekit.core.errors import ParameterError
from pipekit.core.validate import BOOL, Interval, Is, Options, check, check_arguments
from pipekit.data.transform import Transform, rebuild
from pipekit.vision.geometry import (CROP_SCALE, MAX_SIDE, PAD_BORDER, PAD_MODES, RATIO, SIZE, as_size,
                                     check_crop_scales, size2)

METHODS = ("crop", "pad", "squish")


def resize_to(img: np.ndarray, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    """Resize an HWC array to (h, w): area averaging when shrinking (no aliasing), bilinear when growing;
    ``nearest``: each output pixel takes the source pixel under its centre, so a mask stays on its image
    (OpenCV's plain INTER_NEAREST samples at the corner, shifting a mask by up to a pixel right and down)."""
    h, w = hw
    if img.shape[0] == h and img.shape[1] == w:
        return img
    if nearest:
        interp = cv2.INTER_NEAREST_EXACT
    else:
        interp = cv2.INTER_AREA if (h < img.shape[0] and w < img.shape[1]) else cv2.INTER_LINEAR
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


class ItemTransform(Transform):
    """Base of the image item transforms that set the cached size: a fixed output size and a known geometry (not
    fastai's ``ItemTransform`` of whole items, which is :class:`pipekit.data.transform.ItemTransform`).

    ``order`` is fastai's (1 for ``Resize`` and ``RandomResizedCrop``, 0 for ``CropPad``): a user's item transform
    of a lower ``order`` runs on the decoded image before it, one of a higher ``order`` on the image it makes, and one
    of the same ``order`` where ``item_tfms`` lists it (see :meth:`~pipekit.vision.ImageBlock.user_item_tfms`). A
    :class:`RandomResizedCrop` draws its training crop per batch, after the item transforms: one of the user's that
    follows it gets the whole presized image, and one changing that image's size is refused when the data is built
    (give :class:`Resize` and a random crop of one's own, or give the transform ``order=0``)."""

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    order: ClassVar[int] = 1

    def applies_to(self, block: Any) -> bool:
        return block.geometry is not None

    def geometry(self, h: int, w: int) -> tuple[tuple[int, int, int, int], tuple[int, int], tuple[int, int, int, int]]:
        """(crop box y0,x0,y1,x1 in the source, resized size, padding top,bottom,left,right)."""
        raise NotImplementedError

    def point_matrix(self, h: int, w: int) -> np.ndarray:
        """3x3 matrix taking source coordinates (x, y in pixels, edges at 0 and w) to output coordinates."""
        (y0, x0, y1, x1), (rh, rw), (pt, _pb, pl, _pr) = self.geometry(h, w)
        sx, sy = rw / (x1 - x0), rh / (y1 - y0)
        return np.array([[sx, 0, pl - x0 * sx], [0, sy, pt - y0 * sy], [0, 0, 1]], dtype=np.float64)

    def apply(self, img: np.ndarray, nearest: bool = False) -> np.ndarray:
        """Transform one uint8 HWC image (``nearest=True`` for masks)."""
        if img.ndim == 2:
            img = img[:, :, None]
        h, w = img.shape[:2]
        (y0, x0, y1, x1), rhw, (pt, pb, pl, pr) = self.geometry(h, w)
        out = resize_to(img[y0:y1, x0:x1], rhw, nearest)
        if pt or pb or pl or pr:
            mode = getattr(self, "pad_mode", "zeros")
            out = cv2.copyMakeBorder(out, pt, pb, pl, pr, PAD_BORDER[mode], value=0)
            out = out[:, :, None] if out.ndim == 2 else out
        return np.ascontiguousarray(out)

    def encode(self, values: Any) -> Any:
        """One image, HWC (an ``ImageArray`` stays one, so it still shows itself); a tuple (chapter 11's
        ``SiameseImage(img1, img2, same)``, any ``fastuple``) has each image in it transformed and its other values
        kept, in a tuple of the same type, as fastai's item transforms go through tuples; a PIL image gives a PIL
        image; a value that is not an image (a label) is given back as it is.

        >>> from pipekit.data import fastuple
        >>> pair = Resize(8)(fastuple(np.zeros((4, 6, 3), np.uint8), np.ones((5, 5, 3), np.uint8), True))
        >>> type(pair).__name__, [getattr(v, "shape", v) for v in pair]
        ('fastuple', [(8, 8, 3), (8, 8, 3), True])
        """
        if isinstance(values, tuple):
            return rebuild(values, [self.encode(v) for v in values])
        if type(values).__module__.startswith("PIL") and hasattr(values, "getbands"):  # a PIL image: one back
            from PIL import Image

            pil = values if values.mode in ("L", "RGB", "RGBA") else values.convert("RGB")
            out = self.encode(np.asarray(pil))
            return Image.fromarray(out[:, :, 0] if out.ndim == 3 and out.shape[2] == 1 else out)
        if not (isinstance(values, np.ndarray) and values.ndim in (2, 3)):  # a label, a text's ids: not an image
            return values
        out = self.call_one(values)
        return out.view(type(values)) if isinstance(values, np.ndarray) and type(values) is not np.ndarray else out

    def call_one(self, img: np.ndarray) -> np.ndarray:
        """What calling the transform on one HWC image gives: the image it caches (:meth:`apply`); a
        :class:`RandomResizedCrop` gives its validation image instead."""
        return self.apply(img)

    def output_size(self) -> tuple[int, int]:
        """The (h, w) of the images a batch gets."""
        return size2(self.size)  # type: ignore[attr-defined]

    def cached_size(self) -> tuple[int, int]:
        """The (h, w) of the image this transform caches (:meth:`apply`), the frame points are stored in: the
        output size, but for :class:`RandomResizedCrop`, which caches the whole image larger than it."""
        return self.output_size()

    def cache_key(self) -> str:
        """What identifies this transform's output in the on-disk cache (with the OpenCV border a pad
        mode stands for, which the padded pixels depend on)."""
        key, pad = f"{type(self).__name__}{sorted(self.get_params().items())}", getattr(self, "pad_mode", None)
        return key + (f"|border={PAD_BORDER[pad]}" if pad else "")


class ResizeMethod:
    """``Resize``'s methods under the book's names: ``Resize(128, ResizeMethod.Squish)`` is
    ``Resize(128, method="squish")``.

    >>> import numpy as np
    >>> from pipekit.vision import Resize, ResizeMethod
    >>> ResizeMethod.Squish, Resize(8, ResizeMethod.Squish)(np.zeros((4, 16, 3), np.uint8)).shape
    ('squish', (8, 8, 3))
    """

    Crop, Pad, Squish = "crop", "pad", "squish"


class PadMode:
    """Pad modes under the book's names: ``Resize(128, ResizeMethod.Pad, pad_mode=PadMode.Zeros)``.

    >>> import numpy as np
    >>> from pipekit.vision import PadMode, Resize, ResizeMethod
    >>> out = Resize(4, ResizeMethod.Pad, pad_mode=PadMode.Zeros)(np.full((2, 4, 1), 9, np.uint8))
    >>> PadMode.Zeros, out[..., 0].tolist()
    ('zeros', [[0, 0, 0, 0], [9, 9, 9, 9], [9, 9, 9, 9], [0, 0, 0, 0]])
    """

    Reflection, Zeros, Border = "reflection", "zeros", "border"


class Resize(ItemTransform):
    """Resize to ``size`` by center-cropping (``crop``), padding (``pad``) or stretching (``squish``).

    The crop is the centre on the training set too: the resized images are cached once, before any epoch
    (fastai's ``Resize`` crops at a random position on the training set). The random crops are
    :class:`RandomResizedCrop` and ``aug_transforms``, drawn each epoch within the cached image.

    >>> Resize((32, 48), method="squish")(np.zeros((10, 10, 1), np.uint8)).shape
    (32, 48, 1)
    """

    param_constraints = {"size": SIZE, "method": Options(*METHODS), "pad_mode": Options(*PAD_MODES)}

    def __init__(self, size: int | Sequence[int], method: str = "crop", pad_mode: str = "reflection", **fastai: Any):
        if "resamples" in fastai:
            raise ParameterError(f"Resize: resamples={fastai['resamples']!r} (fastai's PIL filters for images and masks) "
                                 "is not taken: pipekit resizes images by area averaging when shrinking and bilinearly "
                                 "when growing, and masks by the nearest pixel; leave resamples out")
        check_arguments("Resize", fastai, ["size", "method", "pad_mode"])
        self.size, self.method, self.pad_mode = as_size(size), method, pad_mode
        self.check_params()

    def geometry(self, h: int, w: int):
        th, tw = self.output_size()
        if self.method == "squish":
            return (0, 0, h, w), (th, tw), (0, 0, 0, 0)
        if self.method == "crop":
            # largest centred box with the target aspect ratio
            scale = min(h / th, w / tw)
            ch, cw = max(1, round(th * scale)), max(1, round(tw * scale))
            y0, x0 = (h - ch) // 2, (w - cw) // 2
            return (y0, x0, y0 + ch, x0 + cw), (th, tw), (0, 0, 0, 0)
        scale = min(th / h, tw / w)
        rh, rw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
        pt, pl = (th - rh) // 2, (tw - rw) // 2
        return (0, 0, h, w), (rh, rw), (pt, th - rh - pt, pl, tw - rw - pl)


class CropPad(ItemTransform):
    """Center-crop or pad to ``size`` without rescaling.

    >>> CropPad(4)(np.ones((2, 6, 1), np.uint8))[:, :, 0].shape
    (4, 4)
    """

    order: ClassVar[int] = 0
    param_constraints = {"size": SIZE, "pad_mode": Options(*PAD_MODES)}

    def __init__(self, size: int | Sequence[int], pad_mode: str = "zeros"):
        self.size, self.pad_mode = as_size(size), pad_mode
        self.check_params()

    def geometry(self, h: int, w: int):
        th, tw = self.output_size()
        ch, cw = min(h, th), min(w, tw)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        pt, pl = (th - ch) // 2, (tw - cw) // 2
        return (y0, x0, y0 + ch, x0 + cw), (ch, cw), (pt, th - ch - pt, pl, tw - cw - pl)


class RandomResizedCrop(ItemTransform):
    """fastai's ``RandomResizedCrop``: a training image is a random crop of ``min_scale``..``max_scale`` of the
    image's area, of aspect (width / height, in the image's own pixels) log-uniform in ``ratio``, at a random place,
    resized to ``size`` (after ten crops that do not fit, the centred crop of the aspect in ``ratio`` nearest the
    image's); a validation image, and a new one (``predict``, ``test_dl``), is the whole image squished to ``size``
    plus a margin of ``val_xtra`` of it (rounded up to 8 pixels), then its centre cropped to ``size``.

    Each file is decoded once and cached whole, squished to that validation size (:meth:`cached_size`); the crop is
    drawn per batch by the :class:`~pipekit.vision.transforms.ResizedCropAugment` the image block adds, in each
    source image's proportions (by a loader on the CPU; see there), and costs one resample per image (with
    ``aug_transforms`` too: their draws act on the crop, in the same resample). So validation batches are the cached
    pixels' centre, copied as they are, and the cache holds about 1.3 to 1.6 times the pixels of ``size``. A
    training crop smaller than about 0.7 of the area is enlarged from the cached image (fastai crops the decoded
    file): at the defaults, a crop of a quarter of the area is enlarged about 1.7 times.

    Calling it on an image (``RandomResizedCrop(64)(img)``) gives the validation image. A user's item transform
    runs before it (one of a lower ``order``, on the decoded image); one following it gets the whole presized image
    the crop is drawn from, and is refused when the data is built if it changes that image's size (the crop would
    undo it): give :class:`Resize` and a random crop of one's own instead.

    ``whole_image=False`` is how learners exported before the whole image was cached load (files of format 3 and
    before, see :meth:`upgrade_record`): the cache holds the
    centred crop at ``size`` (a wide photo's sides are never seen), the training crops are drawn within it and
    ``val_xtra`` and ``max_scale`` do nothing.

    >>> RandomResizedCrop(64, min_scale=0.35).output_size(), RandomResizedCrop(64).cached_size()
    ((64, 64), (80, 80))
    >>> RandomResizedCrop(64)(np.zeros((100, 50, 3), np.uint8)).shape
    (64, 64, 3)
    """

    param_constraints = {"size": SIZE, "min_scale": CROP_SCALE, "ratio": RATIO,
                         "val_xtra": Interval(0, None), "max_scale": CROP_SCALE,
                         "whole_image": BOOL}

    def __init__(self, size: int | Sequence[int], min_scale: float = 0.08, ratio: Sequence[float] = (3 / 4, 4 / 3),
                 val_xtra: float = 0.14, max_scale: float = 1.0, whole_image: bool = True):
        self.size, self.min_scale, self.ratio = as_size(size), min_scale, ratio
        self.val_xtra, self.max_scale, self.whole_image = val_xtra, max_scale, whole_image
        self.check_params()
        self.ratio = (float(ratio[0]), float(ratio[1]))
        check_crop_scales("RandomResizedCrop", self.min_scale, self.max_scale)
        check("RandomResizedCrop", val_xtra=(self.val_xtra, Is(
            lambda v: max(self.cached_size()) <= MAX_SIDE,
            f"a margin keeping the cached image at most {MAX_SIDE} pixels a side (it is size + "
            "ceil(max(size) * val_xtra / 8) * 8); give a smaller val_xtra or size")))

    @classmethod
    def upgrade_record(cls, record: dict[str, Any], version: int) -> None:
        """Files before format 4 cached the centred crop and drew the training crops within it: such a record (every
        copy of it, the image block's and a point or box block's) loads with ``whole_image=False``, so the learner
        predicts as it did."""
        params = record.get("params")
        if version < 4 and isinstance(params, dict) and "whole_image" not in params:
            params["whole_image"] = False

    def margin(self) -> int:
        """The pixels added to each side of ``size`` for the validation image, as fastai adds them (none with
        ``whole_image=False``)."""
        return math.ceil(max(self.output_size()) * self.val_xtra / 8) * 8 if self.whole_image else 0

    def cached_size(self) -> tuple[int, int]:
        h, w = self.output_size()
        return h + self.margin(), w + self.margin()

    def geometry(self, h: int, w: int):
        if not self.whole_image:  # as learners exported before the whole image was cached made it
            return Resize(self.size, method="crop").geometry(h, w)
        return (0, 0, h, w), self.cached_size(), (0, 0, 0, 0)  # the whole image, squished

    def call_one(self, img: np.ndarray) -> np.ndarray:
        out, (h, w), top = self.apply(img), self.output_size(), self.margin() // 2
        return np.ascontiguousarray(out[top:top + h, top:top + w])

    def cache_key(self) -> str:
        # what the cached pixels depend on: the crop's draws are made per batch, so min_scale, max_scale and ratio
        # share entries
        h, w = self.cached_size()
        return f"RandomResizedCrop|{'whole image squished' if self.whole_image else 'centred crop'} to {h}x{w}"


def find_item_transform(tfms: Sequence[Transform]) -> ItemTransform | None:
    """The image item transform among ``tfms`` (at most one is allowed: the cache holds one size)."""
    found = [t for t in tfms if isinstance(t, ItemTransform)]
    if len(found) > 1:
        raise ParameterError(f"give at most one image item transform (Resize, CropPad, RandomResizedCrop); got {found}")
    return found[0] if found else None
