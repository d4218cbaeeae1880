"""Samplers: the random pieces an augmentation plan is made of, each drawing from its own stream.

An :class:`AffineSampler` draws one 3x3 matrix per image (output -> input, normalised coordinates);
a :class:`LightingSampler` draws one map ``logit(x) * scale + shift`` per image; :class:`Saturation` and :class:`Hue`
draw one factor or hue shift per image, which mix the colour channels. Every sampler draws
from the generator of its own ``stream`` (``ctx.rng(stream)``: derived from seed, epoch, batch and the
stream's name), so adding, removing or reordering samplers changes no other sampler's draws. Each
draws all its numbers for every image whether it applies them or not, so its draws depend only on
the stream. A new kind of augmentation is a subclass with its own ``stream``.

>>> import numpy as np
>>> Rotate(30, p=1.0).matrices(2, np.random.default_rng(0), (64, 64), (64, 64)).shape
(2, 3, 3)
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from pipekit.core.component import Component
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, Is, Options, check, finite_number, plain_number, shown
from pipekit.vision.geometry import (CROP_SCALE, INTERP_MODES, MAX_LIGHTING, PAD_MODES, PROBABILITY, RATIO,
                                     check_crop_scales, crop_matrices, eye_stack, first_fitting_try, keystone_matrices,
                                     size2, size_param)

Frame = tuple[int, int]


class Sampler(Component):
    """Base class: ``stream`` names the random stream the sampler draws from.

    Samplers given to a DataBlock's ``batch_tfms`` as fastai's single augmentations (``[Flip(), Rotate(max_deg=20),
    Brightness()]``) become one :class:`~pipekit.vision.BatchAugment` drawing from them, resampled once.
    They take fastai's arguments: ``draw`` (``draw_x``/``draw_y`` for Zoom and Warp), a value used instead of the
    random draw for every image, or a list with one per image (still applied with probability ``p``), in fastai's
    units (degrees, zoom factor, centre 0..1, 0/1 for a flip, fastai's 0..7 for Dihedral, the level mid-grey goes to,
    a factor, a hue turn); ``batch=True``, one coin and one draw for the whole batch; and for the affine ones
    ``size``, ``mode`` and ``pad_mode``, which the augmentation resamples with (samplers given together must agree),
    and ``align_corners`` (False only: pipekit resamples on pixel edges). A function as ``draw`` is refused: each
    sampler draws from its own seeded stream.

    >>> from pipekit.vision import Brightness, Flip, Rotate, Sampler
    >>> Flip.stream, Rotate.stream, Brightness.stream  # each draws from its own stream
    ('flip', 'rotate', 'brightness')
    >>> aug = Sampler.batch_transform([Flip(p=1.0), Rotate(max_deg=20)])
    >>> type(aug).__name__, [type(x).__name__ for x in aug.extra_samplers]
    ('BatchAugment', ['Flip', 'Rotate'])
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "sampler"
    stream: ClassVar[str] = ""

    #: the resampling settings pipekit's affine samplers take as fastai's (through ``_fastai_args``, which records them in
    #: ``_resampling``), which the one augmentation made from them (:meth:`batch_transform`) resamples with; None:
    #: that augmentation's default. Only those are read (:func:`resampling_given`), not any attribute so named: a
    #: subclass of one's own gives them by passing them to its base's ``__init__`` (or setting ``_resampling``)
    RESAMPLING: ClassVar[tuple[str, ...]] = ("size", "mode", "pad_mode")

    @classmethod
    def batch_transform(cls, samplers: Sequence[Sampler]) -> Any:
        """One augmentation drawing from ``samplers`` (in their order), and nothing else, resampled once with the
        ``size``, ``mode`` and ``pad_mode`` they give (each the same wherever given; else refused).

        >>> Sampler.batch_transform([Rotate(30, pad_mode="zeros"), Flip()]).settings.pad_mode
        'zeros'
        """
        from pipekit.vision.augment import AugmentSettings
        from pipekit.vision.transforms import BatchAugment  # which builds on the samplers

        given = resampling_given(samplers)
        none = AugmentSettings(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0, **given)
        return BatchAugment(none, extra_samplers=list(samplers))

    def _fastai_args(self, draws: dict[str, tuple[Any, Is]], batch: bool, **resampling: Any) -> None:
        """Check and keep fastai's arguments: ``draws`` (name: (value, what one value may be)), ``batch``, and for an
        affine sampler ``size``, ``mode``, ``pad_mode`` and ``align_corners``."""
        owner = type(self).__name__
        for name, (value, _) in draws.items():
            if callable(value):
                raise ParameterError(
                    f"{owner}: {name}={shown(value)} (a function) is not available: each sampler draws from its own "
                    "random stream, seeded per batch, so runs repeat; give one value for every image or a list with one "
                    f"per image, or subclass {owner} and override its drawing method (it is given the stream's "
                    "generator)")
        checked = check(owner, batch=(batch, Is(lambda b: isinstance(b, (bool, np.bool_)), "True (one draw for the "
                                                   "whole batch) or False (one per image)")),
                        **{name: (value, _draw_values(what)) for name, (value, what) in draws.items()})
        for name in draws:  # kept as plain Python numbers (one held by NumPy or torch too), so records keep them
            value = checked[name]
            setattr(self, name, [plain_number(x) for x in np.asarray(value, dtype=object).ravel()]
                    if isinstance(value, (list, tuple, np.ndarray)) else value)
        self.batch = bool(batch)
        if not resampling:
            return
        if resampling.pop("align_corners"):
            raise ParameterError(f"{owner}: align_corners=True is not available: pipekit resamples on pixel edges "
                                 "(align_corners=False), so images, masks and points stay aligned; leave align_corners "
                                 "out (or give False)")
        self.align_corners = False
        check(owner, mode=(resampling["mode"], Is(lambda m: m is None or m in INTERP_MODES,
                                                   f"None or {Options(*INTERP_MODES)}")),
              pad_mode=(resampling["pad_mode"], Is(lambda m: m is None or m in PAD_MODES, f"None or {Options(*PAD_MODES)}")))
        self.size = size_param(owner, resampling["size"], none_ok=True)
        self.mode, self.pad_mode = resampling["mode"], resampling["pad_mode"]
        self._resampling = Sampler.RESAMPLING  # what resampling_given reads (taken here, not any attribute so named)

    def _given(self, name: str, drawn: np.ndarray, sign: float = 1.0) -> np.ndarray:
        """(n,) the values draw argument ``name`` gives (one for all, or the first n of a list) times ``sign`` (-1
        where pipekit's matrices turn the other way to fastai's for the same value), else ``drawn`` (n,); with
        ``batch``, the first image's draw for all (given values are kept, as fastai keeps them)."""
        value, n = getattr(self, name, None), len(drawn)
        if value is None:
            return self._batched(drawn)
        if isinstance(value, list):
            if len(value) < n:
                raise ParameterError(f"{type(self).__name__}: {name} holds {len(value)} values for a batch of {n} "
                                     "images; give at least one per image (as many as the batch size)")
            value = value[:n]
        return np.broadcast_to(np.asarray(value, np.float64) * sign, (n,)).copy()

    def _batched(self, drawn: np.ndarray) -> np.ndarray:
        """``drawn`` (n, ...), or with ``batch`` the first image's for every image, as fastai's ``batch=True``."""
        return np.broadcast_to(drawn[:1], drawn.shape).copy() if getattr(self, "batch", False) else drawn


def same_resampling(name: str, a: Any, b: Any) -> bool:
    """Whether two values of resampling setting ``name`` (``size``, ``mode``, ``pad_mode``) resample alike: a size
    ``32`` is ``(32, 32)``.

    >>> same_resampling("size", 32, (32, 32)), same_resampling("size", 32, (32, 48)), same_resampling("mode", None, None)
    (True, False, True)
    """
    if name == "size" and a is not None and b is not None:
        return size2(a) == size2(b)
    return bool(a == b)


def resampling_given(samplers: Sequence[Sampler], settings: Any = None, who: str = "") -> dict[str, Any]:
    """The ``size``, ``mode`` and ``pad_mode`` ``samplers`` give (those given by none left out); samplers resampled
    together take one each, so two that give different ones are refused. Only the samplers taking fastai's
    resampling arguments give them (:class:`Rotate`, :class:`Zoom`, ...): another sampler's ``mode`` is its own.
    With ``settings`` (the :class:`~pipekit.vision.AugmentSettings` of the augmentation the samplers are in), each
    sampler must also give what the settings resample with (a size ``32`` is ``(32, 32)``); ``who`` names the caller
    in the error.

    >>> resampling_given([Rotate(30, pad_mode="zeros"), Flip(size=32)])
    {'pad_mode': 'zeros', 'size': 32}
    >>> from pipekit.vision import AugmentSettings
    >>> resampling_given([Rotate(pad_mode="zeros")], AugmentSettings(), "BatchAugment")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: BatchAugment: pad_mode='reflection' from the augmentation's settings ...
    """
    out: dict[str, Any] = {}
    by: dict[str, str] = {}
    if settings is not None:
        for name in Sampler.RESAMPLING:
            out[name], by[name] = getattr(settings, name), "the augmentation's settings (AugmentSettings, aug_transforms)"
    for s in samplers:
        for name in getattr(s, "_resampling", ()):
            value = getattr(s, name, None)
            if value is None:
                continue
            if name in out and not same_resampling(name, out[name], value):
                raise ParameterError(
                    f"{who + ': ' if who else ''}{name}={out[name]!r} from {by[name]} and {name}={value!r} from {s!r}: "
                    f"each image is resampled once, with one {name}; give the same {name} to each (or only to one), "
                    "or make the samplers their own augmentations, resampled one after the other: "
                    "batch_tfms=[Sampler.batch_transform([...]), Sampler.batch_transform([...])]")
            out[name], by[name] = value, repr(s)
    return {name: value for name, value in out.items() if value is not None}


def _draw_values(what: Is) -> Is:
    """What a draw argument accepts: None (drawn at random), one value ``what`` accepts for every image, or a list
    (tuple, array) of them, one per image of a batch."""
    def one(v: Any) -> bool:
        x = finite_number(v)
        return x is not None and what.accepts(x)

    def ok(v: Any) -> bool:
        if isinstance(v, (list, tuple, np.ndarray)):
            return len(v) > 0 and all(one(x) for x in np.asarray(v, dtype=object).ravel())
        return v is None or one(v)

    return Is(ok, f"None (drawn at random), {what} for every image, or a list of those with one per image")


#: fastai's arguments, with what a record without them means (their defaults): a record of a sampler leaves out those
#: holding their defaults, so a sampler given none writes the record it wrote before it took them
_DRAW_DEFAULTS: dict[str, Any] = {"params.draw": None, "params.batch": False}
_RESAMPLING_DEFAULTS: dict[str, Any] = {"params.size": None, "params.mode": None, "params.pad_mode": None,
                                        "params.align_corners": False}

_NUMBER = Is(lambda v: math.isfinite(v), "a number")
_POSITIVE = Is(lambda v: math.isfinite(v) and v > 0, "a number above 0")
_SHARE = Is(lambda v: 0 <= v <= 1, "a number in [0, 1]")


class AffineSampler(Sampler):
    """Draws (n, 3, 3) output->input matrices; the plan multiplies them in the order of its samplers.

    >>> import numpy as np
    >>> from pipekit.vision import AffineSampler, Flip, Zoom
    >>> rng = np.random.default_rng(0)
    >>> samplers = [Flip(p=1.0), Zoom(2.0, 2.0, p=1.0)]
    >>> all(isinstance(x, AffineSampler) for x in samplers)
    True
    >>> m = samplers[0].matrices(1, rng, (8, 8), (8, 8)) @ samplers[1].matrices(1, rng, (8, 8), (8, 8))
    >>> m.round(3).tolist()  # mirrored, and half the picture (around a random centre) fills the output
    [[[-0.5, 0.0, 0.483], [0.0, 0.5, 0.313], [0.0, 0.0, 1.0]]]
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        raise NotImplementedError


class LightingSampler(Sampler):
    """Draws (scale, shift) per image, applied in logit space as ``logit(x) * scale + shift``.

    >>> import numpy as np
    >>> from pipekit.vision import Contrast, LightingSampler
    >>> isinstance(Contrast(), LightingSampler)
    True
    >>> scale, shift = Contrast(p=1.0).lighting(3, np.random.default_rng(0))
    >>> x = np.array([0.25, 0.5, 0.75])  # pixel values of the first image
    >>> y = np.log(x / (1 - x)) * scale[0] + shift[0]  # in logit space
    >>> scale.round(3).tolist(), (1 / (1 + np.exp(-y))).round(3).tolist()
    ([0.806, 1.15, 1.202], [0.292, 0.5, 0.708])
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    def lighting(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class RandomCrop(AffineSampler):
    """A crop of ``min_scale``..1 of the image area with aspect ``ratio`` (log-uniform) x the output's,
    at a uniform position, resized to the output size. As fastai's ``RandomResizedCropGPU``, a crop that does not
    fit the image (rounded to whole pixels) is drawn again, up to ten tries, so the areas that fit stay uniform
    (a square crop of a 96x128 image with ``min_scale=0.5``: 0.5..0.75 of it); when none fits, the centred crop of
    the aspect in ``ratio`` nearest the image's, as large as fits.

    >>> import numpy as np
    >>> from pipekit.vision import RandomCrop
    >>> m = RandomCrop(min_scale=0.5).matrices(3, np.random.default_rng(0), (64, 64), (32, 32))
    >>> m[:, 0, 0].round(3).tolist()  # the side of each crop, as a share of the image's: sqrt(0.5..1)
    [0.905, 0.797, 0.721]
    >>> bool(np.all(np.abs(m[:, :2, 2]) <= 1 - m[:, [0], [0]]))  # every crop inside the image
    True
    """

    stream = "crop"
    tries: ClassVar[int] = 10

    def __init__(self, min_scale: float = 1.0, ratio: Sequence[float] = (1.0, 1.0)):
        if (isinstance(min_scale, (int, float, np.integer, np.floating)) and not isinstance(min_scale, bool)
                and float(min_scale) > 1 and float(min_scale).is_integer()):
            size = int(min_scale)
            raise ParameterError(
                f"RandomCrop({size}): pipekit's RandomCrop is a batch augmentation whose first argument is min_scale, "
                "the smallest share of the image's area a crop keeps (a number in (0, 1]; aug_transforms(min_scale=...) "
                f"adds it). fastai's RandomCrop({size}) is an item transform cutting {size}x{size} pixels at a random "
                "place of a training image (the centre of a validation one); in pipekit use "
                f"item_tfms=RandomResizedCrop({size}, min_scale=...) for a random crop resized to {size}x{size}, or "
                f"item_tfms=CropPad({size}) for the centre {size}x{size} pixels, not rescaled (Resize({size}, "
                f"method='crop') rescales the largest centred square to {size}x{size})")
        check("RandomCrop", min_scale=(min_scale, Interval(0, 1, closed="right")), ratio=(ratio, RATIO))
        self.min_scale, self.ratio = min_scale, (float(ratio[0]), float(ratio[1]))

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        # the first try, then the others: a crop that fits at the first try (any square crop of a square image)
        # is drawn from the same numbers as with one try
        first = rng.uniform(self.min_scale, 1.0, n), rng.uniform(*log_ratio, n), rng.uniform(0, 1, (n, 2))
        scale = np.concatenate([first[0][:, None], rng.uniform(self.min_scale, 1.0, (n, self.tries - 1))], 1)
        ratio = np.exp(np.concatenate([first[1][:, None], rng.uniform(*log_ratio, (n, self.tries - 1))], 1))
        (hi, wi), (ho, wo) = in_hw, out_hw
        aspect = (wo / ho) * ratio
        cw = np.sqrt(scale * hi * wi * aspect)
        (k, found), rows = first_fitting_try(cw, cw / aspect, wi, hi), np.arange(n)
        # none fits: the centred crop of the ratio nearest the image's aspect, as large as fits (crop_matrices
        # shrinks the whole-area crop), as fastai falls back
        nearest = np.clip((wi / hi) / (wo / ho), *self.ratio)
        return crop_matrices(in_hw, out_hw, np.where(found, scale[rows, k], 1.0),
                             np.where(found, ratio[rows, k], nearest), np.where(found[:, None], first[2], 0.5))


class ResizedCrop(AffineSampler):
    """fastai's ``RandomResizedCrop`` draw: a crop of ``min_scale``..``max_scale`` of the source image's area, of
    aspect (width / height, in the source's pixels) log-uniform in ``ratio``, at a uniform place; of ten tries per
    image the first that fits (rounded to whole source pixels) is taken, and when none does, the centred crop of the
    aspect in ``ratio`` nearest the image's (all of it when its aspect is in ``ratio``). The matrices are in the
    frame of the whole image, which ``in_hw`` holds squished (its normalised coordinates are the source's).

    ``source_sizes`` (n, 2): each image's source (h, w), so crops are drawn in its proportions; without them, in
    those of ``in_hw``.

    >>> m = ResizedCrop(0.3).matrices(2, np.random.default_rng(0), (80, 80), (64, 64), np.array([[100, 300]] * 2))
    >>> bool(np.all(np.abs(m[:, 0, 2]) + m[:, 0, 0] <= 1 + 1e-9))  # inside the image
    True
    """

    stream = "resized_crop"
    tries: ClassVar[int] = 10

    def __init__(self, min_scale: float = 0.08, max_scale: float = 1.0, ratio: Sequence[float] = (3 / 4, 4 / 3)):
        check("ResizedCrop", min_scale=(min_scale, CROP_SCALE), max_scale=(max_scale, CROP_SCALE), ratio=(ratio, RATIO))
        check_crop_scales("ResizedCrop", min_scale, max_scale)
        self.min_scale, self.max_scale, self.ratio = min_scale, max_scale, (float(ratio[0]), float(ratio[1]))

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame,
                 source_sizes: np.ndarray | None = None) -> np.ndarray:
        hw = (np.tile(np.asarray(in_hw, np.float64), (n, 1)) if source_sizes is None
              else np.asarray(source_sizes, np.float64).reshape(n, 2))
        h, w = hw[:, :1], hw[:, 1:]  # (n, 1): against each try
        area = rng.uniform(self.min_scale, self.max_scale, (n, self.tries)) * w * h
        r = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, self.tries)))
        place = rng.uniform(0, 1, (n, self.tries, 2))
        cw, ch = np.round(np.sqrt(area * r)), np.round(np.sqrt(area / r))
        k, found = first_fitting_try(cw, ch, w, h)
        rows = np.arange(n)
        cw, ch, u = cw[rows, k], ch[rows, k], place[rows, k]
        h, w = h[:, 0], w[:, 0]
        # none fits: the centred crop of the ratio nearest the image's aspect, as fastai falls back
        a = w / h
        fw = np.where(a > self.ratio[1], np.floor(h * self.ratio[1]), w)
        fh = np.where(a < self.ratio[0], np.floor(w / self.ratio[0]), h)
        cw, ch = np.maximum(np.where(found, cw, fw), 1), np.maximum(np.where(found, ch, fh), 1)
        u = np.where(found[:, None], u, 0.5)
        x0, y0 = u[:, 0] * (w - cw), u[:, 1] * (h - ch)
        m = eye_stack(n, cw / w, ch / h)
        m[:, 0, 2], m[:, 1, 2] = (2 * x0 + cw) / w - 1, (2 * y0 + ch) / h - 1
        return m


class Zoom(AffineSampler):
    """With probability ``p`` (fastai's default 0.5; ``aug_transforms`` gives its ``p_affine``), zoom in by
    ``min_zoom``..``max_zoom`` around a uniform centre.

    >>> import numpy as np
    >>> from pipekit.vision import Zoom
    >>> rng = np.random.default_rng(0)
    >>> Zoom(1.5, 1.5, p=1.0).matrices(2, rng, (64, 64), (64, 64))[:, 0, 0].round(4).tolist()  # 1 / 1.5
    [0.6667, 0.6667]
    >>> rng = np.random.default_rng(0)
    >>> Zoom(p=0.5).matrices(4, rng, (64, 64), (64, 64))[:, 0, 0].round(4).tolist()  # 1: not zoomed
    [1.0, 0.9164, 0.9428, 0.932]
    """

    stream = "zoom"
    record_defaults: ClassVar[dict[str, Any]] = {**_DRAW_DEFAULTS, "params.draw_x": None, "params.draw_y": None,
                                                 **_RESAMPLING_DEFAULTS}

    def __init__(self, min_zoom: float = 1.0, max_zoom: float = 1.1, p: float = 0.5, draw: Any = None,
                 draw_x: Any = None, draw_y: Any = None, size: int | Sequence[int] | None = None,
                 mode: str | None = None, pad_mode: str | None = None, align_corners: bool = False, batch: bool = False):
        check("Zoom", min_zoom=(min_zoom, Interval(0, max_zoom, closed="right")), p=(p, PROBABILITY))
        self.min_zoom, self.max_zoom, self.p = min_zoom, max_zoom, p
        self._fastai_args({"draw": (draw, _POSITIVE), "draw_x": (draw_x, _SHARE), "draw_y": (draw_y, _SHARE)}, batch,
                          size=size, mode=mode, pad_mode=pad_mode, align_corners=align_corners)

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        on = self._batched(rng.uniform(size=n) < self.p)
        s = 1 / np.where(on, self._given("draw", rng.uniform(self.min_zoom, self.max_zoom, n)), 1.0)
        drawn = rng.uniform(-1, 1, (n, 2))  # the centre, as fastai's draw_x and draw_y (0..1) give it: 2 * x - 1
        centre = np.stack([self._given(k, (drawn[:, j] + 1) / 2) for j, k in enumerate(("draw_x", "draw_y"))], 1) * 2 - 1
        m = eye_stack(n, s, s)
        m[:, :2, 2] = centre * (1 - s)[:, None]
        return m


class Rotate(AffineSampler):
    """With probability ``p`` (fastai's default 0.5; ``aug_transforms`` gives its ``p_affine``), rotate by up to
    ``max_deg`` degrees either way (in square output pixels). A given ``draw`` turns the picture as fastai's does:
    clockwise for a positive angle.

    >>> import numpy as np
    >>> from pipekit.vision import Rotate
    >>> m = Rotate(30, p=0.5).matrices(4, np.random.default_rng(0), (64, 64), (64, 64))
    >>> np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])).round(1).tolist()  # the angles: 0 when not rotated
    [0.0, 24.8, 6.4, 13.8]
    """

    stream = "rotate"
    record_defaults: ClassVar[dict[str, Any]] = {**_DRAW_DEFAULTS, **_RESAMPLING_DEFAULTS}

    def __init__(self, max_deg: float = 10.0, p: float = 0.5, draw: Any = None, size: int | Sequence[int] | None = None,
                 mode: str | None = None, pad_mode: str | None = None, align_corners: bool = False, batch: bool = False):
        check("Rotate", max_deg=(max_deg, Interval(0, 180)), p=(p, PROBABILITY))
        self.max_deg, self.p = max_deg, p
        self._fastai_args({"draw": (draw, _NUMBER)}, batch, size=size, mode=mode, pad_mode=pad_mode,
                          align_corners=align_corners)

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        on = self._batched(rng.uniform(size=n) < self.p)
        # a given angle turns the picture the way fastai's does (clockwise on screen); drawn ones are symmetric
        angle = np.deg2rad(self._given("draw", rng.uniform(-self.max_deg, self.max_deg, n), sign=-1.0)) * on
        rot = eye_stack(n, np.cos(angle), np.cos(angle))
        rot[:, 0, 1], rot[:, 1, 0] = -np.sin(angle), np.sin(angle)
        ho, wo = out_hw
        # the rotation acts in square pixel units of the output: scale to pixels, rotate, scale back
        return np.diag([2 / wo, 2 / ho, 1.0]) @ rot @ np.diag([wo / 2, ho / 2, 1.0])


class Warp(AffineSampler):
    """A perspective (keystone) warp moving the corners by up to ``magnitude``, tilting in x and in y each with
    its own probability ``p`` (fastai's default 0.5; ``aug_transforms`` gives its ``p_affine``), as fastai draws
    them: with ``p=0.75``, 1/16 of the images are left unwarped and 3/8 tilt in one direction only. A given ``draw_x``
    or ``draw_y`` tilts the picture the way fastai's does.

    >>> import numpy as np
    >>> from pipekit.vision import Warp
    >>> m = Warp(0.2, p=1.0).matrices(2, np.random.default_rng(0), (64, 64), (64, 64))
    >>> m[:, 2, :2].round(3).tolist()  # the perspective row: not an affine map
    [[-0.165, 0.125], [-0.092, 0.043]]
    >>> m = Warp(0.2, p=0.5).matrices(4, np.random.default_rng(0), (64, 64), (64, 64))
    >>> m[:, 2, :2].round(3).tolist()  # 0: that direction not tilted
    [[-0.174, 0.0], [0.199, 0.126], [0.0, 0.0], [0.0, 0.0]]
    >>> off = Warp(0.2, p=0.0).matrices(2, np.random.default_rng(0), (64, 64), (64, 64))
    >>> np.array_equal(off, [np.eye(3)] * 2)
    True
    """

    stream = "warp"
    record_defaults: ClassVar[dict[str, Any]] = {"params.draw_x": None, "params.draw_y": None, "params.batch": False,
                                                 **_RESAMPLING_DEFAULTS}

    def __init__(self, magnitude: float = 0.2, p: float = 0.5, draw_x: Any = None, draw_y: Any = None, size: int | Sequence[int] | None = None,
                 mode: str | None = None, pad_mode: str | None = None, align_corners: bool = False, batch: bool = False):
        check("Warp", magnitude=(magnitude, Interval(0, 1, closed="left")), p=(p, PROBABILITY))
        self.magnitude, self.p = magnitude, p
        tilt = Is(lambda v: -1 < v < 1, "a number in (-1, 1)")
        self._fastai_args({"draw_x": (draw_x, tilt), "draw_y": (draw_y, tilt)}, batch, size=size, mode=mode,
                          pad_mode=pad_mode, align_corners=align_corners)

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        on = self._batched(rng.uniform(size=(n, 2)) < self.p)  # one coin per direction, as fastai's _WarpCoord
        drawn = rng.uniform(-self.magnitude, self.magnitude, (n, 2))
        # fastai's draw_x tilts in x (the perspective row's x term), which the second column of d gives
        # and a given draw_y tilts the way fastai's does, opposite to the first column's sign
        d = np.stack([self._given(k, drawn[:, j], sign=-1.0 if k == "draw_y" else 1.0)
                      for j, k in enumerate(("draw_y", "draw_x"))], 1) * on
        return np.where((on[:, 0] | on[:, 1])[:, None, None], keystone_matrices(d), eye_stack(n))


class Flip(AffineSampler):
    """Mirror left-right with probability ``p``.

    >>> import numpy as np
    >>> from pipekit.vision import Flip
    >>> Flip(p=0.5).matrices(6, np.random.default_rng(0), (8, 8), (8, 8))[:, 0, 0].tolist()  # -1: mirrored
    [1.0, -1.0, -1.0, -1.0, 1.0, 1.0]
    """

    stream = "flip"
    record_defaults: ClassVar[dict[str, Any]] = {**_DRAW_DEFAULTS, **_RESAMPLING_DEFAULTS}

    def __init__(self, p: float = 0.5, draw: Any = None, size: int | Sequence[int] | None = None,
                 mode: str | None = None, pad_mode: str | None = None, align_corners: bool = False, batch: bool = False):
        check("Flip", p=(p, PROBABILITY))
        self.p = p
        self._fastai_args({"draw": (draw, Is(lambda v: v in (0, 1), "0 (kept) or 1 (mirrored)"))}, batch, size=size,
                          mode=mode, pad_mode=pad_mode, align_corners=align_corners)

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        on = self._batched(rng.uniform(size=n) < self.p) & (self._given("draw", np.ones(n)) == 1)
        return eye_stack(n, np.where(on, -1.0, 1.0))


class FlipVert(AffineSampler):
    """Mirror top-bottom with probability ``p``, and for a square output also transpose with probability
    ``p``: with :class:`Flip`, the 8 symmetries of the square.

    >>> import numpy as np
    >>> from pipekit.vision import FlipVert
    >>> rng = np.random.default_rng(0)
    >>> FlipVert(p=1.0).matrices(1, rng, (8, 8), (8, 16))[0].tolist()  # not square: mirrored top-bottom
    [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> FlipVert(p=1.0).matrices(1, rng, (8, 8), (8, 8))[0].tolist()  # square: also transposed
    [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """

    stream = "flip_vert"

    def __init__(self, p: float = 0.5):
        check("FlipVert", p=(p, PROBABILITY))
        self.p = p

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        on = rng.uniform(size=(n, 2)) < self.p
        m = eye_stack(n, 1.0, np.where(on[:, 0], -1.0, 1.0))
        if out_hw[0] == out_hw[1]:
            m[on[:, 1]] = m[on[:, 1]] @ np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
        return m


#: the 8 symmetries of the square as output -> input matrices: the identity, the mirrors and the quarter turns
_DIHEDRAL = np.array([[[a, 0, 0], [0, b, 0], [0, 0, 1]] for a in (1.0, -1.0) for b in (1.0, -1.0)]
                     + [[[0, a, 0], [b, 0, 0], [0, 0, 1]] for a in (1.0, -1.0) for b in (1.0, -1.0)])


#: the same, in fastai's numbering (``Dihedral(draw=k)``): mirrors ``xs``, ``ys`` and whether x and y swap
_FASTAI_DIHEDRAL = np.array([[[xs * (1 - t), xs * t, 0], [ys * t, ys * (1 - t), 0], [0, 0, 1]]
                             for xs, ys, t in zip([1, -1, 1, -1, -1, 1, 1, -1], [1, 1, -1, 1, -1, -1, 1, -1],
                                                  [0, 0, 0, 1, 0, 1, 1, 1])], np.float64)


class Dihedral(AffineSampler):
    """With probability ``p``, one of the 8 symmetries of the square (mirrors, quarter turns, transposes), each as
    likely, as fastai's ``Dihedral``: for images with no up or down (satellite pictures, cells under a microscope).
    An output that is not square takes only the 4 that keep its shape (the identity and the three mirrors).

    >>> m = Dihedral(p=1.0).matrices(1000, np.random.default_rng(0), (32, 32), (32, 32))
    >>> len({tuple(x.round().ravel()) for x in m})
    8
    """

    stream = "dihedral"
    record_defaults: ClassVar[dict[str, Any]] = {**_DRAW_DEFAULTS, **_RESAMPLING_DEFAULTS}

    def __init__(self, p: float = 0.5, draw: Any = None, size: int | Sequence[int] | None = None,
                 mode: str | None = None, pad_mode: str | None = None, align_corners: bool = False, batch: bool = False):
        check("Dihedral", p=(p, PROBABILITY))
        self.p = p
        self._fastai_args({"draw": (draw, Is(lambda v: v in range(8), "a whole number 0..7 (fastai's numbering of "
                                                "the 8 symmetries; 0: unchanged)"))}, batch, size=size, mode=mode,
                          pad_mode=pad_mode, align_corners=align_corners)

    def matrices(self, n: int, rng: np.random.Generator, in_hw: Frame, out_hw: Frame) -> np.ndarray:
        on = self._batched(rng.uniform(size=n) < self.p)
        k = self._batched(rng.integers(0, 8 if out_hw[0] == out_hw[1] else 4, n))
        chosen = _DIHEDRAL[k] if getattr(self, "draw", None) is None else _FASTAI_DIHEDRAL[self._given("draw", k).astype(np.int64)]
        return np.where(on[:, None, None], chosen, eye_stack(n))


class Contrast(LightingSampler):
    """With probability ``p``, a contrast factor log-uniform in [1 - max_lighting, 1 / (1 - max_lighting)] (fastai's;
    ``max_lighting`` below 1).

    >>> import numpy as np
    >>> from pipekit.vision import Contrast
    >>> scale, shift = Contrast(max_lighting=0.2, p=1.0).lighting(1000, np.random.default_rng(0))
    >>> round(float(scale.min()), 3), round(float(scale.max()), 3), bool((shift == 0).all())  # 0.8 .. 1 / 0.8
    (0.801, 1.249, True)
    """

    stream = "contrast"
    record_defaults: ClassVar[dict[str, Any]] = dict(_DRAW_DEFAULTS)

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw: Any = None, batch: bool = False):
        check("Contrast", max_lighting=(max_lighting, MAX_LIGHTING), p=(p, PROBABILITY))
        self.max_lighting, self.p = max_lighting, p
        self._fastai_args({"draw": (draw, _POSITIVE)}, batch)

    def lighting(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        on = self._batched(rng.uniform(size=n) < self.p)
        span = -math.log(1 - self.max_lighting)
        return np.where(on, self._given("draw", np.exp(rng.uniform(-1.0, 1.0, n) * span)), 1.0), np.zeros(n)


class Brightness(LightingSampler):
    """With probability ``p``, move the mid-grey to a level uniform in 0.5 * (1 -+ ``max_lighting``) (a shift in logit
    space), as fastai's ``Brightness`` draws it: 0.4..0.6 with the default 0.2; ``max_lighting`` below 1.

    >>> import numpy as np
    >>> from pipekit.vision import Brightness
    >>> scale, shift = Brightness(p=1.0).lighting(3, np.random.default_rng(0))
    >>> scale.tolist(), (1 / (1 + np.exp(-shift))).round(3).tolist()  # where mid-grey (0.5) goes
    ([1.0, 1.0, 1.0], [0.403, 0.563, 0.583])
    """

    stream = "brightness"
    record_defaults: ClassVar[dict[str, Any]] = dict(_DRAW_DEFAULTS)

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw: Any = None, batch: bool = False):
        check("Brightness", max_lighting=(max_lighting, MAX_LIGHTING), p=(p, PROBABILITY))
        self.max_lighting, self.p = max_lighting, p
        self._fastai_args({"draw": (draw, Is(lambda v: 0 < v < 1, "a level in (0, 1) (0.5: unchanged)"))}, batch)

    def lighting(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        on = self._batched(rng.uniform(size=n) < self.p)
        b = self._given("draw", rng.uniform(0.5 * (1 - self.max_lighting), 0.5 * (1 + self.max_lighting), n))
        return np.ones(n), np.where(on, np.log(b / (1 - b)), 0.0)


#: the ITU-R 601-2 luma weights of red, green and blue that fastai's ``Saturation`` takes the grey image with
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)


class Saturation(Sampler):
    """With probability ``p``, a saturation factor log-uniform in [1 - max_lighting, 1 / (1 - max_lighting)], as fastai's
    ``Saturation`` draws it: in logit space each pixel moves towards (factor below 1) or away from (above 1) its grey
    value (:data:`GREY_WEIGHTS`), after brightness and contrast: ``(logit(x) + brightness) * contrast``, then
    ``factor * y + (1 - factor) * grey(y)``. A grey pixel keeps its value; an image with no 3 colour channels is left
    as it is. ``max_lighting`` below 1.

    >>> f = Saturation(p=1.0).saturation(1000, np.random.default_rng(0))
    >>> bool(f.min() >= 0.8 and f.max() <= 1.25)
    True
    """

    stream = "saturation"
    record_defaults: ClassVar[dict[str, Any]] = dict(_DRAW_DEFAULTS)

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw: Any = None, batch: bool = False):
        check("Saturation", max_lighting=(max_lighting, MAX_LIGHTING), p=(p, PROBABILITY))
        self.max_lighting, self.p = max_lighting, p
        self._fastai_args({"draw": (draw, Is(lambda v: math.isfinite(v) and v >= 0, "a factor, 0 or more"))}, batch)

    def saturation(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) factors, 1 for an image left as it is."""
        on = self._batched(rng.uniform(size=n) < self.p)
        span = -math.log(1 - self.max_lighting)
        return np.where(on, self._given("draw", np.exp(rng.uniform(-1.0, 1.0, n) * span)), 1.0)


class Hue(Sampler):
    """With probability ``p``, turn the hue (in HSV, on the 0..1 image, after the lighting) by ``exp(u) - 1`` of a full
    turn, ``u`` uniform in [log(1 - max_hue), -log(1 - max_hue)], as fastai's ``Hue`` draws it: -0.1..+0.111 of a turn
    with the default 0.1. Saturation and value are kept, so a grey image is left as it is, and so is an image with no
    3 colour channels. ``max_hue`` below 1.

    >>> h = Hue(p=1.0).hue(1000, np.random.default_rng(0))
    >>> bool(h.min() >= -0.1 and h.max() <= 1 / 0.9 - 1)
    True
    """

    stream = "hue"
    record_defaults: ClassVar[dict[str, Any]] = dict(_DRAW_DEFAULTS)

    def __init__(self, max_hue: float = 0.1, p: float = 0.75, draw: Any = None, batch: bool = False):
        check("Hue", max_hue=(max_hue, MAX_LIGHTING), p=(p, PROBABILITY))
        self.max_hue, self.p = max_hue, p
        self._fastai_args({"draw": (draw, _NUMBER)}, batch)

    def hue(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) hue shifts in turns, 0 for an image left as it is."""
        on = self._batched(rng.uniform(size=n) < self.p)
        span = -math.log(1 - self.max_hue)
        return np.where(on, self._given("draw", np.exp(rng.uniform(-1.0, 1.0, n) * span) - 1.0), 0.0)
