"""albumentations transforms on the presized images: ``Albumentations(A.Compose([...]))``.

Where it runs: files are decoded and presized once into the cache; an albumentations pipeline is random
per epoch, so it cannot be part of the cache. It runs per batch, right after the batch is gathered from
the cache (on the CPU, before the transfer to the device and before pipekit's own augmentation), on each
uint8 image of the training batch, in the shared thread pool (OpenCV releases the GIL). Masks, keypoints
and boxes of the batch go through the same call as their image, so they follow it. Validation batches
pass unchanged unless ``on_valid=True`` (for deterministic transforms).

Determinism: each image gets its own seed, drawn from the batch's ``"albumentations"`` stream
(``ctx.rng``, itself derived from the loader's seed, the epoch and the batch), and the pipeline is reseeded
with it before that image. So an image's augmentation depends only on (seed, epoch, batch, position in the
batch), never on which thread ran it or in what order, and it is exactly what
``A.Compose(transforms, seed=that_seed)(image=img)`` gives (see :meth:`Albumentations.seeds`).

What cannot run there is refused with the reason: transforms that turn the uint8 image into floats or
tensors (``A.Normalize``, ``A.ToFloat``, ``ToTensorV2``: pipekit converts and normalises on the device,
use ``pipekit.vision.Normalize``), and, on the first batch, a pipeline that changes the image size (the
cache holds one size: set it with ``Resize``, or crop with ``A.RandomResizedCrop(size=cached_size)``) or
that fails on the images (e.g. a colour transform on grey images).

Use it as an item transform (``item_tfms=[Resize(64), Albumentations(A.Compose([...]))]``) or as a batch
transform; either way it runs on batches, so on the resized images wherever ``item_tfms`` lists it, as a fastai
item transform of an ``order`` above ``Resize``'s (1) runs (with ``RandomResizedCrop``, on the whole cached image
before its crop is drawn, where fastai's gets the crop: give ``Resize`` and an albumentations crop for that). In a saved file the pipeline is stored as data: the classes of
:data:`FILE_TRANSFORMS` (compositions, flips, rotations and warps, crops, resizes and pads, colour, blur and
noise: none takes a path, a function or an array) with every parameter checked (its type and range; image sizes
at most 8192 px per side, the limit of pipekit's own vision transforms; kernels at most 63 px and
CoarseDropout's holes at most an image's area, so no parameter makes one image take minutes of CPU). A file is
checked before anything is built from it, and so is a pipeline when it is saved: an image size a parameter sets,
or can scale an image to, must stay within 8192 px per side for any image the cache can hold (up to 8192 px per
side, of any shape), so an upscaling step (``A.RandomScale`` above 1, ``A.SmallestMaxSize``, ``A.Affine(
fit_output=True)``) must come after a step that sets the size (``A.Resize``, a crop); and the whole pipeline may
take at most :data:`MAX_SECONDS` of one CPU core on one such image (a SomeOf or RandomOrder repeats its
transforms n times). A pipeline outside this is left out of a saved file with a warning (augmentation on
training batches never changes predictions), or refused by the export when it also runs on validation batches
(``on_valid=True``).

Example:
    >>> import albumentations as A
    >>> aug = Albumentations(A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.3)]))
    >>> aug.order, aug.on_host
    (10, True)
"""
from __future__ import annotations

import copy
import functools
import inspect
import os
import threading
from typing import Any, ClassVar

import numpy as np
import torch

from pipekit.core.component import to_data
from pipekit.core.errors import DataError, ExportError, ParameterError, warn
from pipekit.core.registry import register, registered
from pipekit.core.validate import BOOL, Interval, Is, Options, check
from pipekit.data.transform import BatchContext, BatchTransform
from pipekit.vision.augment import run_chunks
from pipekit.vision.geometry import MAX_SIDE

__all__ = ["Albumentations", "FILE_TRANSFORMS", "albumentations_from_data", "albumentations_to_data"]

KIND = "albumentations"
#: transforms whose output is not a uint8 image of the same size: pipekit does these steps itself
REFUSED = {"Normalize": "pipekit normalises on the device: use pipekit.vision.Normalize (batch_tfms)",
           "ToFloat": "pipekit turns images into floats on the device (IntToFloat): leave it out",
           "ToTensorV2": "pipekit collates tensors itself: leave it out",
           "ToTensor": "pipekit collates tensors itself: leave it out"}
_BOX_INDEX = "pipekit_box_index"


def _albumentations() -> Any:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call to PyPI on import
    import albumentations

    return albumentations


@functools.lru_cache(maxsize=None)
def _register_listed() -> None:
    """Register the transform classes albumentations exports (its public namespace) as the ones a file may
    name; a user's own transform class is not among them."""
    A = _albumentations()
    for name in dir(A):
        cls = getattr(A, name)
        if isinstance(cls, type) and issubclass(cls, (A.BasicTransform, A.BaseCompose)) and cls.__name__ == name:
            register(cls, name=f"albumentations.{name}", kind=KIND)


def _is_transform(t: Any) -> bool:
    if t is None or not type(t).__module__.startswith("albumentations"):
        return t is None
    A = _albumentations()
    return isinstance(t, (A.BasicTransform, A.BaseCompose))


def _leaves(t: Any) -> list[Any]:
    inner = getattr(t, "transforms", None)
    return [t] if inner is None else [x for sub in inner for x in _leaves(sub)]


# ---------------------------------------------------------------------------------------- what a file may hold
#: largest kernel (Blur, MedianBlur, GaussianBlur, MotionBlur, Sharpen) a file may ask for, in pixels (albumentations'
#: defaults are 3-7). A Gaussian kernel costs its size: on one 8192 x 8192 RGB image, one CPU core, GaussianBlur takes
#: 2.4 s at 63 px and 27 s at the 449 px sigma 64 asks for, Sharpen 5.2 s and 19 s at 255 px (median, box and motion
#: blurs: 1.6-4 s at any size)
MAX_KERNEL = 63
#: largest sigma for GaussianBlur, whose kernel (when blur_limit allows 0) is int(sigma * 3.5) * 2 + 1 px: 63 px
MAX_SIGMA = 9
#: most of an image CoarseDropout's holes may cover, as images (num_holes x hole height x hole width at their
#: largest): filling them costs their area, about 500 s on one 8192 x 8192 image for 4096 holes of 0.99 x 0.99 filled
#: with "random" (measured on 1024 x 1024 and scaled); inpainting costs 12 s there for a quarter of the image
#: (albumentations' default holes cover 8%)
MAX_HOLES_COVER, MAX_INPAINT_COVER = 1.0, 0.25
#: most transforms one stored pipeline may hold, compositions included
MAX_TRANSFORMS = 256
#: most CPU time a stored pipeline may take on one image of the largest size it can see (8192 x 8192 px unless it
#: resizes first), in seconds of one core, each transform counted at its parameter bounds (:data:`_SECONDS`) and as
#: often as a SomeOf or RandomOrder can repeat it. Ten transforms at albumentations' defaults (Affine,
#: brightness/contrast, HSV, Gaussian and motion blur, noise, CoarseDropout, JPEG, Sharpen, CLAHE) count 18 s (they
#: take 5 s), and 62 s with WebP compression and FancyPCA added; three SomeOf(n=32, replace=True) nested around one
#: Blur run it 32,768 times, 76 minutes (measured on 64 x 64 px and scaled)
MAX_SECONDS = 90.0


def _is_real(v: Any) -> bool:
    return Interval().accepts(v) and abs(float(v)) != float("inf")


def _choice(*values: Any) -> Is:
    """One of ``values`` exactly (True is not 1, 1.0 is not 1)."""
    return Is(lambda v: any(type(v) is type(x) and v == x for x in values),
              "one of " + ", ".join(repr(x) for x in values))


def _range(item: Interval | Is, length: int = 2, ordered: bool = True) -> Is:
    """A list of ``length`` numbers each accepted by ``item`` (a [low, high] range: low <= high)."""
    def ok(v: Any) -> bool:
        return (isinstance(v, (list, tuple)) and len(v) == length and all(item.accepts(x) for x in v)
                and (not ordered or all(a <= b for a, b in zip(v, v[1:]))))
    return Is(ok, f"[low, high] with low <= high, each {item}" if ordered and length == 2
              else f"a list of {length}, each {item}")


def _xy(item: Interval | Is) -> Is:
    """Albumentations' per-axis ranges: ``{"x": [low, high], "y": [low, high]}``."""
    pair = _range(item)
    return Is(lambda v: isinstance(v, dict) and set(v) == {"x", "y"} and all(pair.accepts(v[k]) for k in v),
              f'{{"x": [low, high], "y": [low, high]}} with low <= high, each {item}')


def _either(*constraints: Any) -> Is:
    return Is(lambda v: any(c.accepts(v) for c in constraints), " or ".join(str(c) for c in constraints))


def _fill_ok(v: Any) -> bool:
    return _is_real(v) or (isinstance(v, (list, tuple)) and 1 <= len(v) <= 16 and all(_is_real(x) for x in v))


_NONE = Is(lambda v: v is None, "None")
_P = Interval(0, 1)
_INTERP = _choice(0, 1, 2, 3, 4, 5, 6)  # OpenCV's interpolation flags albumentations takes
_BORDER = _choice(0, 1, 2, 3, 4)  # OpenCV's border modes albumentations takes
_FILL = Is(_fill_ok, "a number or a list of at most 16 numbers (one per channel)")
#: an image side in pixels
_SIDE = Is(Interval(1, MAX_SIDE, integer=True).accepts,
           f"an integer in [1, {MAX_SIDE}] (at most {MAX_SIDE} per side, the largest image side pipekit makes)")
_SIZE = Is(_range(_SIDE, ordered=False).accepts, f"a [height, width] pair, each {_SIDE}")
_KERNEL = _range(Interval(0, MAX_KERNEL, integer=True))
_POSITION = _choice("center", "top_left", "top_right", "bottom_left", "bottom_right", "random")
_ROTATE_METHOD = _choice("largest_box", "ellipse")
_ANGLES = _range(Interval(-360, 360))
_FRACTION = Interval(0, 1)
_COMMON: dict[str, Any] = {
    "p": _P, "interpolation": _INTERP, "mask_interpolation": _INTERP, "border_mode": _BORDER, "fill": _FILL,
    "fill_mask": _either(_NONE, _FILL), "area_for_downscale": _choice(None, "image", "image_mask"),
    "keypoint_remapping_method": _choice("direct", "mask"), "pad_if_needed": BOOL, "pad_position": _POSITION,
    "rotate_method": _ROTATE_METHOD,
}
_PAD_CROP = ("p", "border_mode", "fill", "fill_mask", "pad_if_needed", "pad_position")
_RESIZING = ("p", "interpolation", "mask_interpolation", "area_for_downscale")
_WARP = ("p", "interpolation", "mask_interpolation", "border_mode", "fill", "fill_mask")
_MAX_SIZE = {"max_size": _either(_NONE, _SIDE, Is(lambda v: isinstance(v, (list, tuple)) and 1 <= len(v) <= 64 and all(
                 _SIDE.accepts(x) for x in v), f"a list of at most 64 sizes, each {_SIDE}")),
             "max_size_hw": _either(_NONE, _range(_either(_NONE, _SIDE), ordered=False))}
_COMPOSE = {"transforms": Is(lambda v: isinstance(v, list), "a list of transforms"), "p": _P}

#: the albumentations transforms a saved pipeline may name, with the parameters each may have (a name alone: the
#: check :data:`_COMMON` gives that name). None of them takes a path, a function or an array.
FILE_TRANSFORMS: dict[str, dict[str, Any]] = {
    # compositions (pipekit sets a pipeline's box and keypoint formats and extra targets itself)
    "Compose": {**_COMPOSE, "bbox_params": _NONE, "keypoint_params": _NONE,
                "additional_targets": Is(lambda v: v is None or v == {}, "{} (pipekit sets the targets)"),
                "is_check_shapes": BOOL},
    "Sequential": _COMPOSE,
    "OneOf": _COMPOSE,
    "SomeOf": {**_COMPOSE, "n": Interval(1, 32, integer=True), "replace": BOOL},
    "RandomOrder": {**_COMPOSE, "n": Interval(1, 32, integer=True), "replace": BOOL},
    # flips, rotations, warps: the image keeps its size
    "HorizontalFlip": {"p": _P}, "VerticalFlip": {"p": _P}, "Transpose": {"p": _P}, "RandomRotate90": {"p": _P},
    "D4": {"p": _P},
    "Affine": {**dict.fromkeys(_WARP + ("rotate_method",)), "rotate": _ANGLES,
               "scale": _xy(Interval(0, 64, closed="right")), "shear": _xy(Interval(-89, 89)),
               "translate_percent": _either(_NONE, _xy(Interval(-1, 1))),
               "translate_px": _either(_NONE, _xy(Interval(-MAX_SIDE, MAX_SIDE))),  # albumentations writes floats
               "fit_output": BOOL, "keep_ratio": BOOL, "balanced_scale": BOOL},
    "Rotate": {**dict.fromkeys(_WARP + ("rotate_method",)), "limit": _ANGLES, "crop_border": BOOL},
    "ShiftScaleRotate": {**dict.fromkeys(_WARP + ("rotate_method",)), "shift_limit_x": _range(Interval(-1, 1)),
                         "shift_limit_y": _range(Interval(-1, 1)),
                         "scale_limit": _range(Interval(-1, 63, closed="right")), "rotate_limit": _ANGLES},
    "Perspective": {**dict.fromkeys(_WARP), "scale": _range(_FRACTION), "keep_size": BOOL,
                    "fit_output": _choice(False)},
    "GridDistortion": {**dict.fromkeys(_WARP + ("keypoint_remapping_method",)),
                       "num_steps": Interval(1, 64, integer=True), "distort_limit": _range(Interval(-1, 1)),
                       "normalized": BOOL},
    "CoarseDropout": {"p": _P, "fill": _either(_FILL, _choice("random", "random_uniform", "inpaint_telea",
                                                                "inpaint_ns")),
                      "fill_mask": _either(_NONE, _FILL), "num_holes_range": _range(Interval(1, 4096, integer=True)),
                      "hole_height_range": _either(_range(Interval(0, 1, closed="right")), _range(_SIDE)),
                      "hole_width_range": _either(_range(Interval(0, 1, closed="right")), _range(_SIDE))},
    # crops, resizes, pads: the size they set is at most MAX_SIDE per side
    "Crop": {**dict.fromkeys(_PAD_CROP), **dict.fromkeys(("x_min", "y_min"), Interval(0, MAX_SIDE - 1, integer=True)),
             **dict.fromkeys(("x_max", "y_max"), _SIDE)},
    "CenterCrop": {**dict.fromkeys(_PAD_CROP), "height": _SIDE, "width": _SIDE},
    "RandomCrop": {**dict.fromkeys(_PAD_CROP), "height": _SIDE, "width": _SIDE},
    "Resize": {**dict.fromkeys(_RESIZING), "height": _SIDE, "width": _SIDE},
    "RandomResizedCrop": {**dict.fromkeys(_RESIZING), "size": _SIZE, "scale": _range(Interval(0, 1, closed="right")),
                          "ratio": _range(Interval(0, 1000, closed="right"))},
    "RandomSizedCrop": {**dict.fromkeys(_RESIZING), "size": _SIZE, "min_max_height": _range(_SIDE),
                        "w2h_ratio": Interval(0, 1000, closed="right")},
    "PadIfNeeded": {**dict.fromkeys(("p", "border_mode", "fill", "fill_mask")), "position": _POSITION,
                    **dict.fromkeys(("min_height", "min_width", "pad_height_divisor", "pad_width_divisor"),
                                    _either(_NONE, _SIDE))},
    "LongestMaxSize": {**dict.fromkeys(_RESIZING), **_MAX_SIZE},
    "SmallestMaxSize": {**dict.fromkeys(_RESIZING), **_MAX_SIZE},
    "RandomScale": {**dict.fromkeys(_RESIZING), "scale_limit": _range(Interval(-1, 63, closed="right"))},
    # colour and contrast (uint8 in, uint8 out)
    "RandomBrightnessContrast": {"p": _P, "brightness_limit": _range(Interval(-10, 10)),
                                 "contrast_limit": _range(Interval(-10, 10)), "brightness_by_max": BOOL,
                                 "ensure_safe_range": BOOL},
    "HueSaturationValue": {"p": _P, "hue_shift_limit": _range(Interval(-180, 180)),
                           "sat_shift_limit": _range(Interval(-255, 255)),
                           "val_shift_limit": _range(Interval(-255, 255))},
    "ColorJitter": {"p": _P, **dict.fromkeys(("brightness", "contrast", "saturation"), _range(Interval(0, 100))),
                    "hue": _range(Interval(-0.5, 0.5))},
    "RandomGamma": {"p": _P, "gamma_limit": _range(Interval(0, 1000, closed="right"))},
    "CLAHE": {"p": _P, "clip_limit": _range(Interval(0, 1000)), "tile_grid_size": _range(
        Interval(1, 64, integer=True), ordered=False)},
    "ToGray": {"p": _P, "num_output_channels": Interval(1, 4, integer=True),
               "method": _choice("weighted_average", "from_lab", "desaturation", "average", "max", "pca")},
    "ChannelShuffle": {"p": _P}, "InvertImg": {"p": _P}, "ToSepia": {"p": _P},
    "FancyPCA": {"p": _P, "alpha": Interval(0, 100)},
    "Posterize": {"p": _P, "num_bits": _either(_range(Interval(0, 8, integer=True)), Is(
        lambda v: isinstance(v, (list, tuple)) and 1 <= len(v) <= 16 and all(
            _range(Interval(0, 8, integer=True)).accepts(x) for x in v), "a list of such ranges, one per channel"))},
    "Solarize": {"p": _P, "threshold_range": _range(_FRACTION)},
    "Equalize": {"p": _P, "mode": _choice("cv", "pil"), "by_channels": BOOL, "mask": _NONE},
    "Sharpen": {"p": _P, "alpha": _range(_FRACTION), "lightness": _range(Interval(0, 100)),
                "method": _choice("kernel", "gaussian"), "kernel_size": Interval(3, MAX_KERNEL, integer=True),
                "sigma": Interval(0, 64, closed="right")},
    "Emboss": {"p": _P, "alpha": _range(_FRACTION), "strength": _range(Interval(0, 100))},
    # blur, noise, compression
    "Blur": {"p": _P, "blur_limit": _KERNEL},
    "MedianBlur": {"p": _P, "blur_limit": _KERNEL},
    "GaussianBlur": {"p": _P, "blur_limit": _KERNEL, "sigma_limit": _range(Interval(0, MAX_SIGMA))},
    "MotionBlur": {"p": _P, "blur_limit": _KERNEL, "allow_shifted": BOOL, "angle_range": _range(Interval(0, 360)),
                   "direction_range": _range(Interval(-1, 1))},
    "GaussNoise": {"p": _P, "std_range": _range(_FRACTION), "mean_range": _range(Interval(-1, 1)),
                   "per_channel": BOOL, "noise_scale_factor": Interval(0, 1, closed="right")},
    "ImageCompression": {"p": _P, "compression_type": _choice("jpeg", "webp"),
                         "quality_range": _range(Interval(1, 100, integer=True))},
    "Downscale": {"p": _P, "scale_range": _range(Interval(0, 1, closed="neither")),
                  "interpolation_pair": Is(lambda v: isinstance(v, dict) and set(v) == {"upscale", "downscale"} and all(
                      _INTERP.accepts(x) for x in v.values()), '{"upscale": flag, "downscale": flag} (OpenCV '
                                                               "interpolation flags)")},
}
#: parameters albumentations' description of a transform holds that its class does not take
_NOT_TAKEN = {"PadIfNeeded": {"padding": 0}}
#: the parameters a message names when a transform's output size is over the limit
_SIZED_BY = {"Resize": "height/width", "CenterCrop": "height/width", "RandomCrop": "height/width",
             "Crop": "x_min/y_min/x_max/y_max", "RandomResizedCrop": "size", "RandomSizedCrop": "size",
             "PadIfNeeded": "min_height/min_width/pad_height_divisor/pad_width_divisor",
             "LongestMaxSize": "max_size/max_size_hw", "SmallestMaxSize": "max_size/max_size_hw",
             "RandomScale": "scale_limit", "Affine": "fit_output (with scale and shear)", "Perspective": "keep_size"}

#: seconds of one CPU core each transform takes on one 8192 x 8192 RGB image at the parameter bounds of
#: FILE_TRANSFORMS (OpenCV on one thread; measured there, or on 1024 x 1024 and scaled by 64); a function of the
#: parameters where they choose the method. A transform on a smaller image takes its share by pixels.
_SECONDS: dict[str, Any] = {
    **dict.fromkeys(("HorizontalFlip", "VerticalFlip", "Crop", "CenterCrop", "RandomCrop", "PadIfNeeded", "Blur",
                     "Emboss", "RandomBrightnessContrast", "RandomGamma", "ChannelShuffle", "InvertImg", "ToSepia",
                     "Posterize", "Solarize", "Equalize"), 0.5),
    **dict.fromkeys(("Transpose", "RandomRotate90", "D4", "HueSaturationValue", "ColorJitter", "Downscale"), 1.0),
    **dict.fromkeys(("Affine", "Rotate", "ShiftScaleRotate", "Perspective", "Resize", "RandomResizedCrop",
                     "RandomSizedCrop", "LongestMaxSize", "SmallestMaxSize", "RandomScale"), 4.5),  # Lanczos: 3.4-3.7 s
    "GridDistortion": 6.0, "CLAHE": 1.5, "FancyPCA": 16.0, "MedianBlur": 6.0, "GaussianBlur": 3.0, "MotionBlur": 2.0,
    "GaussNoise": 2.0, "ToGray": lambda q: 3.0 if q["method"] == "pca" else 1.0,
    "Sharpen": lambda q: 6.0 if q["method"] == "gaussian" else 0.5,
    "ImageCompression": lambda q: 30.0 if q["compression_type"] == "webp" else 2.0,
    "CoarseDropout": lambda q: 13.0 if str(q["fill"]).startswith("inpaint") else 1.0,
}


def _holes_cover(q: dict[str, Any]) -> float:
    """How many images' area CoarseDropout's holes can cover at their largest (of the largest image, for holes in
    pixels): albumentations reads both sizes in pixels when the largest height is at least 1, as fractions otherwise."""
    h, w = q["hole_height_range"][1], q["hole_width_range"][1]
    n = q["num_holes_range"][1]
    if h >= 1:
        return n * min(h, MAX_SIDE) * min(w, MAX_SIDE) / MAX_SIDE**2
    return n * h * min(w, 1.0)


#: an upper bound on an image's height and width and a lower bound on its shorter side, in pixels
_Shape = tuple[float, float, float]


def _join(a: _Shape, b: _Shape) -> _Shape:
    """Either shape (a step that may or may not run)."""
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2])


def _resized(name: str, q: dict[str, Any], hw: _Shape) -> _Shape:
    """The largest image ``name`` with parameters ``q`` can make from images within ``hw`` (their longest side
    is at most ``L``, their shortest at least ``s``)."""
    h, w, s = hw
    L = max(h, w)
    if name == "Resize":
        return q["height"], q["width"], min(q["height"], q["width"])
    if name in ("CenterCrop", "RandomCrop"):
        return q["height"], q["width"], 1
    if name == "Crop":
        return q["y_max"] - q["y_min"], q["x_max"] - q["x_min"], 1
    if name in ("RandomResizedCrop", "RandomSizedCrop"):
        return q["size"][0], q["size"][1], min(q["size"])
    if name == "PadIfNeeded":
        def side(n: float, least: int | None, divisor: int | None) -> float:
            return max(n, least) if least else -(-n // divisor) * divisor if divisor else n
        return side(h, q["min_height"], q["pad_height_divisor"]), side(w, q["min_width"], q["pad_width_divisor"]), s
    if name in ("Transpose", "RandomRotate90", "D4"):
        return L, L, s
    if name == "RandomScale":
        lo, hi = q["scale_limit"]
        return h * (1 + hi), w * (1 + hi), max(1.0, s * (1 + lo))
    if name in ("LongestMaxSize", "SmallestMaxSize"):
        m, (th, tw) = q["max_size"], q["max_size_hw"] or (None, None)
        sizes = [m] if isinstance(m, int) else list(m) if m is not None else []
        if name == "LongestMaxSize":  # scale = m / longest side, or min(th / h, tw / w)
            if sizes:
                return max(sizes), max(sizes), max(1.0, s * min(sizes) / L)
            if th and tw:
                return th, tw, max(1.0, s * min(th, tw) / L)
            up = float(th or tw or 0) / s  # one side given: the other follows the image's aspect
        else:  # scale = m / shortest side, or max(th / h, tw / w)
            if sizes:
                return h * max(sizes) / s, w * max(sizes) / s, min(sizes)
            up = max(th or 0, tw or 0) / s
        return h * up, w * up, 1.0
    if name == "Affine" and q["fit_output"]:  # the box around the warped image: |A| (h + w) per side
        grow = max(max(q["scale"]["x"]), max(q["scale"]["y"])) * (1 + sum(
            float(np.tan(np.radians(max(abs(a) for a in q["shear"][k])))) for k in ("x", "y")))
        return grow * (h + w) + 1, grow * (h + w) + 1, 1.0
    if name == "Perspective" and not q["keep_size"]:  # the corners move inward by up to 0.32 of a side
        return h + 0.32 * w + 2, w + 0.32 * h + 2, 1.0
    return hw  # the image keeps its size (or gets smaller: Downscale and GaussNoise work on smaller copies)


class _Step:
    """A checked stored transform: its name, where it is in the pipeline, its parameters (defaults filled in)
    and, for a composition, its transforms."""

    def __init__(self, name: str, where: str, q: dict[str, Any], kids: list[_Step] | None):
        self.name, self.where, self.q, self.kids = name, where, q, kids


def _check_node(spec: Any, where: str, count: list[int], depth: int = 0) -> _Step:
    """Check one stored transform: its class is in FILE_TRANSFORMS and each parameter has the type and range its
    table gives."""
    if depth > 16:
        raise ExportError("an albumentations description is nested more than 16 levels deep")
    count[0] += 1
    if count[0] > MAX_TRANSFORMS:
        raise ExportError(f"an albumentations description holds more than {MAX_TRANSFORMS} transforms")
    if not (isinstance(spec, dict) and isinstance(spec.get("__class_fullname__"), str)):
        raise ExportError(f"{where}an albumentations transform is stored as {{'__class_fullname__': name, "
                          "...parameters}")
    name = spec["__class_fullname__"]
    cls = registered(KIND).get(f"albumentations.{name}")
    if cls is None:
        raise ExportError(f"{where}{name!r:.80} is not a transform albumentations lists; a file may name only those")
    allowed = FILE_TRANSFORMS.get(name)
    if allowed is None:
        raise ExportError(f"{where}albumentations.{name} is not among the transforms a saved pipeline may hold "
                          "(pipekit.vision.albu.FILE_TRANSFORMS: none takes a path, a function or an array, and each "
                          "parameter is checked)")
    params = {k: v for k, v in spec.items() if k != "__class_fullname__"}
    signature = inspect.signature(cls.__init__).parameters
    unknown = [k for k in params if k not in allowed or k not in signature or k == "self"]
    if unknown:
        raise ExportError(f"{where}albumentations.{name} takes no parameters {unknown}")
    owner = f"{where}albumentations.{name}"
    try:
        check(owner, **{k: (v, allowed[k] if allowed[k] is not None else _COMMON[k]) for k, v in params.items()})
    except ParameterError as e:
        raise ExportError(str(e)) from None
    kids = None
    if "transforms" in allowed:
        kids = [_check_node(t, f"{where}{name}.transforms[{i}]: ", count, depth + 1)
                for i, t in enumerate(params.get("transforms", []))]
    q = dict(params)
    for k in allowed:  # what the description leaves out is the class's default, when that is in range too
        if k not in q and k != "transforms":
            default = signature[k].default
            constraint = allowed[k] if allowed[k] is not None else _COMMON[k]
            if default is inspect.Parameter.empty or not constraint.accepts(default):
                raise ExportError(f"{owner}: {k} must be given ({constraint})")
            q[k] = default
    if name in ("LongestMaxSize", "SmallestMaxSize") and (q["max_size"] is None) == (
            q["max_size_hw"] is None or q["max_size_hw"] == [None, None] or q["max_size_hw"] == (None, None)):
        raise ExportError(f"{owner}: give one of max_size and max_size_hw (a side at least)")
    if name == "CoarseDropout":
        cover = _holes_cover(q)
        most = MAX_INPAINT_COVER if str(q["fill"]).startswith("inpaint") else MAX_HOLES_COVER
        if cover > most:
            raise ExportError(f"{owner}: num_holes_range/hole_height_range/hole_width_range can cover {cover:,.2f} "
                              f"images' area with holes (fill={q['fill']!r}), over the {most:g} accepted (filling a "
                              "hole costs its area: fewer or smaller holes)")
    return _Step(name, where, q, kids)


def _largest(step: _Step, hw: _Shape, budget: list[int], times: float, spent: dict[str, float]
             ) -> tuple[_Shape, float]:
    """The largest image ``step`` can make from images within ``hw``, and the most CPU seconds it can take on one
    (see :data:`_SECONDS`; ``times``: how often the compositions around it can run it, ``spent``: the seconds of each
    transform, for a message). An image over MAX_SIDE per side (at any step) is refused naming the transform and the
    parameters that set the size."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ExportError("an albumentations description is too intricate to bound the image sizes it makes "
                          "(nested SomeOf)")
    name, q = step.name, step.q
    seconds = 0.0
    if step.kids is not None:
        out = hw
        if name in ("Compose", "Sequential"):  # one after another
            for kid in step.kids:
                out, more = _largest(kid, out, budget, times, spent)
                seconds += more
        else:  # OneOf: one of them; SomeOf: n of them in any order (with repeats when replace is true)
            n = q.get("n", 1)
            for i in range(n):
                grown, most = out, 0.0
                for kid in step.kids:
                    made, more = _largest(kid, out, budget, times * n, spent)
                    grown, most = _join(grown, made), max(most, more)
                if grown == out:  # the images stop growing: each run left costs as much as this one
                    seconds += most * (n - i)
                    break
                seconds += most
                out = grown
    else:
        out = _resized(name, q, hw)
        if max(out[0], out[1]) > MAX_SIDE:
            raise ExportError(
                f"{step.where}albumentations.{name}: {_SIZED_BY.get(name, 'its parameters')} can turn an image of up "
                f"to {hw[0]:,.0f} x {hw[1]:,.0f} px (its shortest side at least {hw[2]:,.0f} px) into one of "
                f"{out[0]:,.0f} x {out[1]:,.0f} px, over the {MAX_SIDE} px per side pipekit accepts (the cache holds images of up to {MAX_SIDE} px per side, of "
                "any shape: set the size first with A.Resize or a crop, or zoom with A.Affine(scale=...) or "
                "A.RandomResizedCrop, which keep it)")
        each = _SECONDS[name]
        seconds = (each(q) if callable(each) else each) * max(hw[0] * hw[1], out[0] * out[1]) / MAX_SIDE**2
        key = f"{step.where}albumentations.{name}"
        spent[key] = max(spent.get(key, 0.0), seconds * times)
    return (_join(hw, out) if q.get("p", 1) < 1 else out), seconds


def check_albumentations_data(spec: Any) -> None:
    """Check a stored pipeline before anything is built from it (or written): only :data:`FILE_TRANSFORMS`,
    each parameter of the type and range its table gives, no image larger than MAX_SIDE per side from any
    image the cache can hold (up to MAX_SIDE per side, of any shape), and at most MAX_SECONDS of CPU on one such
    image. Raises an :class:`ExportError` naming the transform, its place in the pipeline and the parameter."""
    _register_listed()
    spent: dict[str, float] = {}
    _, seconds = _largest(_check_node(spec, "", [0]), (MAX_SIDE, MAX_SIDE, 1.0), [16 * MAX_TRANSFORMS], 1.0, spent)
    if seconds > MAX_SECONDS:
        top = sorted(spent.items(), key=lambda kv: -kv[1])[:4]
        raise ExportError(f"the pipeline can take {seconds:,.0f} s of one CPU core on one image of up to {MAX_SIDE} x "
                          f"{MAX_SIDE} px (the largest the cache holds), over the {MAX_SECONDS:g} s accepted; the "
                          f"costliest: {'; '.join(f'{k} {v:,.0f} s' for k, v in top)} (SomeOf and RandomOrder run "
                          "their transforms n times: a smaller n, fewer transforms, or a Resize first)")


# ---------------------------------------------------------------------------------------- as data
def albumentations_to_data(t: Any) -> dict[str, Any]:
    """An albumentations transform as plain data (albumentations' own ``to_dict`` description), refusing
    what a file could not rebuild or would be refused at load (:func:`check_albumentations_data`):
    transforms outside :data:`FILE_TRANSFORMS`, functions as parameters, image sizes over the limit.

    >>> import albumentations as A
    >>> from pipekit.core import ExportError
    >>> from pipekit.vision.albu import albumentations_to_data
    >>> albumentations_to_data(A.HorizontalFlip(p=0.5))
    {'__class_fullname__': 'HorizontalFlip', 'p': 0.5}
    >>> try:
    ...     albumentations_to_data(A.Resize(20000, 20000))
    ... except ExportError as e:
    ...     print(e)
    albumentations.Resize: height=20000 is not accepted; expected an integer in [1, 8192] ...
    """
    A = _albumentations()
    _register_listed()
    try:
        spec = A.to_dict(t)["transform"]
    except (NotImplementedError, TypeError, ValueError) as e:
        raise ExportError(f"{type(t).__name__} cannot be written as data ({e})") from None

    def drop_unused(node: Any, top: bool) -> None:
        if not isinstance(node, dict):
            return
        for k, v in _NOT_TAKEN.get(str(node.get("__class_fullname__")), {}).items():
            if node.get(k) == v:  # written by albumentations' description, not taken by the class
                del node[k]
        if top and node.get("__class_fullname__") == "Compose":
            # pipekit sets the boxes' and keypoints' formats and the extra targets of the pipeline it runs
            node.update(bbox_params=None, keypoint_params=None, additional_targets={})
        for sub in node.get("transforms") or []:
            drop_unused(sub, False)

    drop_unused(spec, True)
    check_albumentations_data(spec)
    return to_data(spec)  # only plain values (numbers, text, lists, dicts) pass


def albumentations_from_data(spec: Any) -> Any:
    """Rebuild :func:`albumentations_to_data`'s description, checked first (:func:`check_albumentations_data`):
    only the classes of :data:`FILE_TRANSFORMS`, each with the parameters its table lists, of the types and
    ranges it gives.

    >>> import albumentations as A
    >>> from pipekit.core import ExportError
    >>> from pipekit.vision.albu import albumentations_from_data, albumentations_to_data
    >>> spec = albumentations_to_data(A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.3)]))
    >>> t = albumentations_from_data(spec)
    >>> type(t).__name__, [type(x).__name__ for x in t.transforms], t.transforms[0].p
    ('Compose', ['HorizontalFlip', 'RandomBrightnessContrast'], 0.5)
    >>> try:  # a stored parameter out of its range is refused before anything is built
    ...     albumentations_from_data({"__class_fullname__": "HorizontalFlip", "p": 7})
    ... except ExportError as e:
    ...     print(e)
    albumentations.HorizontalFlip: p=7 is not accepted; expected a number in [0, 1]
    """
    check_albumentations_data(spec)
    return _build_checked(spec)


def _build_checked(spec: dict[str, Any]) -> Any:
    params = {k: v for k, v in spec.items() if k != "__class_fullname__"}
    name = spec["__class_fullname__"]
    cls = registered(KIND)[f"albumentations.{name}"]
    if "transforms" in params:
        params["transforms"] = [_build_checked(x) for x in params["transforms"]]
    try:
        return cls(**params)
    except Exception as e:  # albumentations validates its parameters with its own errors
        raise ExportError(f"albumentations.{name} refuses the stored parameters: {e}") from None


# ---------------------------------------------------------------------------------------- the transform
class Albumentations(BatchTransform):
    """An albumentations transform or ``Compose`` on the presized uint8 images (see the module docstring).

    ``transform``: the albumentations transform (None: nothing, what a saved file holds when the pipeline
    could not be written as data). ``on_valid``: also run it on validation batches (deterministic
    transforms only). The pipeline's own ``bbox_params``/``keypoint_params`` are replaced: pipekit passes
    keypoints (kept when they leave the image) and boxes (clipped; a box left with no area becomes
    padding) in the formats it converts them to.

    >>> import albumentations as A
    >>> import torch
    >>> from pipekit.data import BatchContext
    >>> from pipekit.vision import Albumentations
    >>> aug = Albumentations(A.HorizontalFlip(p=1.0))
    >>> x = torch.arange(6, dtype=torch.uint8).view(1, 1, 6, 1).repeat(2, 1, 1, 3)  # 2 images, 1 x 6 px, RGB
    >>> train = BatchContext(("image", None), 1, True, torch.device("cpu"), key=(0, 0, 0))
    >>> valid = BatchContext(("image", None), 1, False, torch.device("cpu"), key=(0, 0, 0))
    >>> aug.encode((x, torch.zeros(2)), train)[0][0, 0, :, 0].tolist()  # a training batch: flipped
    [5, 4, 3, 2, 1, 0]
    >>> aug.encode((x, torch.zeros(2)), valid)[0][0, 0, :, 0].tolist()  # a validation batch passes unchanged
    [0, 1, 2, 3, 4, 5]
    """

    order: ClassVar[int] = 10
    #: runs on the CPU before the transfer to the device (the DataLoader asks this)
    on_host: ClassVar[bool] = True
    param_constraints = {"transform": Is(_is_transform, "an albumentations transform or Compose (or None)"),
                         "on_valid": Options(True, False)}

    def __init__(self, transform: Any = None, on_valid: bool = False):
        if isinstance(transform, dict) and set(transform) == {"albumentations"}:  # as a saved file holds it
            try:
                transform = albumentations_from_data(transform["albumentations"])
            except ExportError as e:
                raise ExportError(f"Albumentations: transform: {e}") from None
        self.transform, self.on_valid = transform, on_valid
        self.check_params()
        refused = [f"{type(t).__name__} ({REFUSED[type(t).__name__]})" for t in _leaves(transform)
                   if type(t).__name__ in REFUSED] if transform is not None else []
        if refused:
            raise ParameterError(f"Albumentations runs on the cached uint8 images, where these cannot run: "
                                 f"{'; '.join(refused)}")

    def applies_to(self, block: Any) -> bool:
        return block.geometry == "image"

    # -- files ---------------------------------------------------------------------------------------------
    def params_to_data(self) -> dict[str, Any]:
        spec = None
        if self.transform is not None:
            try:
                spec = albumentations_to_data(self.transform)
            except ExportError as e:
                if self.on_valid:  # it runs at predict: a saved model without it would predict otherwise
                    raise ExportError(f"Albumentations: transform: the pipeline runs on validation batches "
                                      f"(on_valid=True), so predictions depend on it, and it cannot be saved: {e}"
                                      ) from None
                # augmentation on training batches never changes predictions: a saved model without it predicts
                # the same
                warn(f"Albumentations: the pipeline is left out of the saved file, which will not augment "
                     f"when trained again: {e}")
        return {"transform": None if spec is None else {"albumentations": spec}, "on_valid": self.on_valid}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_local", None)  # the threads' own copies of the pipeline are rebuilt where they are needed
        return state

    # -- running -------------------------------------------------------------------------------------------
    @staticmethod
    def seeds(ctx: BatchContext, n: int) -> np.ndarray:
        """The seed of each of the ``n`` images of the batch ``ctx`` describes: image ``i`` gets
        ``A.Compose(transforms, seed=seeds[i])``'s draws."""
        return ctx.rng("albumentations").integers(0, 2**31 - 1, size=n)

    def _compose(self, layout: tuple[int, int, bool, bool]) -> Any:
        """This thread's own copy of the pipeline, set up for the batch's layout (albumentations keeps random
        state and per-call parameters in the transform objects, so threads never share one)."""
        cache = self.__dict__.setdefault("_local", threading.local()).__dict__.setdefault("composes", {})
        if layout not in cache:
            A = _albumentations()
            n_images, n_masks, points, boxes = layout
            t = copy.deepcopy(self.transform)
            transforms, p = (list(t.transforms), t.p) if isinstance(t, A.Compose) else ([t], 1.0)
            extra = {**{f"image{k}": "image" for k in range(1, n_images)},
                     **{f"mask{k}": "mask" for k in range(1, n_masks)}}
            kw: dict[str, Any] = {}
            if points:
                kw["keypoint_params"] = A.KeypointParams(format="xy", remove_invisible=False)
            if boxes:
                kw["bbox_params"] = A.BboxParams(format="pascal_voc", label_fields=[_BOX_INDEX], clip=True,
                                                 filter_invalid_bboxes=True)
            cache[layout] = A.Compose(transforms, p=p, additional_targets=extra, **kw)
        return cache[layout]

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        if self.transform is None or not (ctx.train or self.on_valid):
            return batch
        geo = list(ctx.geometry[:len(batch)])
        images = [j for j, g in enumerate(geo) if g == "image"]
        if not images:
            return batch
        masks = [j for j, g in enumerate(geo) if g == "mask"]
        points = [j for j, g in enumerate(geo) if g == "points"]
        boxes = [j for j, g in enumerate(geo) if g == "bbox"]
        if len(points) > 1 or len(boxes) > 1:
            raise DataError("Albumentations passes one keypoint and one box element per batch along with the images; "
                            f"this batch has {len(points)} and {len(boxes)}")
        host = [b.cpu() if isinstance(b, torch.Tensor) and b.device.type != "cpu" else b for b in batch]
        first = host[images[0]]
        if first.dtype != torch.uint8 or first.ndim != 4:
            raise DataError(f"Albumentations runs on uint8 (B, H, W, C) images from the cache, got {first.dtype} "
                            f"{tuple(first.shape)}; put it before the transforms that turn images into floats")
        n, h, w = first.shape[0], first.shape[1], first.shape[2]
        arrays = {j: host[j].numpy() for j in images + masks}
        outs = {j: np.empty_like(a) for j, a in arrays.items()}
        pts = host[points[0]].numpy().astype(np.float64) if points else None
        bxs = host[boxes[0]].numpy().astype(np.float64) if boxes else None
        pts_out = np.empty_like(pts, dtype=np.float32) if pts is not None else None
        bxs_out = np.full(bxs.shape, np.nan, dtype=np.float32) if bxs is not None else None
        seeds = self.seeds(ctx, n)
        layout = (len(images), len(masks), bool(points), bool(boxes))
        names = {j: ("image" if k == 0 else f"image{k}") for k, j in enumerate(images)}
        names.update({j: ("mask" if k == 0 else f"mask{k}") for k, j in enumerate(masks)})

        def run(lo: int, hi: int) -> None:
            compose = self._compose(layout)
            for i in range(lo, hi):
                data: dict[str, Any] = {names[j]: arrays[j][i] for j in names}
                if pts is not None:
                    # pipekit's -1..1 (edges) -> albumentations' pixels (pixel centres at integers)
                    data["keypoints"] = (pts[i] + 1) / 2 * [w, h] - 0.5
                keep = None
                if bxs is not None:
                    keep = np.flatnonzero(~np.isnan(bxs[i]).any(1))
                    data["bboxes"] = np.clip((bxs[i][keep] + 1) / 2 * [w, h, w, h], 0, [w, h, w, h])
                    data[_BOX_INDEX] = keep.tolist()
                compose.set_random_seed(int(seeds[i]))
                try:
                    res = compose(**data)
                except Exception as e:
                    raise DataError(f"Albumentations: {self.transform!r:.300} cannot run on the cached {h}x{w}x"
                                    f"{first.shape[3]} uint8 images (image {i} of the batch): {type(e).__name__}: {e}"
                                    ) from e
                for j, name in names.items():
                    out = np.asarray(res[name])
                    want = arrays[j][i]
                    if out.dtype != np.uint8:
                        raise DataError(f"Albumentations: the pipeline returned {out.dtype} {name} pixels; it must keep "
                                        "uint8 (pipekit converts and normalises on the device: use "
                                        "pipekit.vision.Normalize)")
                    if out.shape != want.shape:
                        out = out.reshape(out.shape[:2] + want.shape[2:]) if out.size == want.size else out
                    if out.shape != want.shape and out.shape[:2] == want.shape[:2]:
                        got_c, want_c = (a.shape[2] if a.ndim == 3 else 1 for a in (out, want))
                        raise DataError(f"Albumentations: the pipeline changed the number of {name} channels from "
                                        f"{want_c} to {got_c}; it runs on the cached images and must keep their "
                                        "channels: " + (
                                            "to make colour images grey, keep 3 channels (A.ToGray("
                                            "num_output_channels=3)), or work in grey from the start with "
                                            "ImageBlock(cls=PILImageBW)" if want_c == 3 and got_c == 1 else
                                            "the block's images are grey or colour as its ImageBlock(cls=...) says "
                                            "(cls=PILImage for colour, cls=PILImageBW for grey)"))
                    if out.shape != want.shape:
                        raise DataError(f"Albumentations: the pipeline changed the {name} size from "
                                        f"{want.shape[:2]} to {out.shape[:2]}; it runs on the cached images and must "
                                        "keep their size: set the size with pipekit's item transform (Resize) or "
                                        f"crop with A.RandomResizedCrop(size={want.shape[:2]})")
                    outs[j][i] = out
                if pts_out is not None:
                    pts_out[i] = (np.asarray(res["keypoints"], dtype=np.float64)[:, :2] + 0.5) / [w, h] * 2 - 1
                if bxs_out is not None:
                    got = np.asarray(res["bboxes"], dtype=np.float64).reshape(-1, 4)
                    rows = np.asarray(res[_BOX_INDEX], dtype=np.int64)
                    bxs_out[i, rows] = got / [w, h, w, h] * 2 - 1

        run_chunks(run, n)
        out = list(batch)
        for j in outs:
            out[j] = torch.from_numpy(outs[j]).to(batch[j].device)
        if points:
            out[points[0]] = torch.from_numpy(pts_out).to(batch[points[0]].device, batch[points[0]].dtype)
        if boxes:
            out[boxes[0]] = torch.from_numpy(bxs_out).to(batch[boxes[0]].device, batch[boxes[0]].dtype)
        return tuple(out)
