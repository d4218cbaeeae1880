"""Batch augmentation as a plan, then an execution: each image is resampled once.

:class:`AugmentSettings` holds the knobs and says which samplers (:mod:`pipekit.vision.samplers`) they
stand for. For every batch :func:`sample_plan` lets each sampler draw from its own random stream and
composes the draws into one 3x3 matrix (crop, zoom, rotation, perspective warp and flips) plus one
lighting map per image. The matrix maps output coordinates to input coordinates in the normalised
frame of ``grid_sample`` (-1..1, pixel edges, ``align_corners=False``). Two executors take the same plan:

* :func:`warp_torch`: a batched ``grid_sample`` on any device (the path on a GPU);
* :func:`warp_cv2`: uint8 OpenCV ``warpAffine``/``warpPerspective`` per image in a thread pool, with
  lighting as a 256-entry lookup table (the fast path on a CPU); an image whose saturation or hue changes is lit
  in float instead, as those mix its colour channels.

They agree within interpolation tolerance. Masks are resampled with nearest neighbours: a mask only scaled,
moved or mirrored (the validation resize, flips, zooms; each image of a batch on its own) takes on either executor the
rows and columns :func:`nearest_indices` picks, as ``grid_sample``'s nearest mode does in exact arithmetic (a source
point half-way between two pixels going to the even one), so both executors give the same mask; a rotated or warped
one is resampled by OpenCV or ``grid_sample`` and may differ in a pixel where a tie falls. Images resampled with
``mode='nearest'`` take the same picks, so an image and its mask take the same pixels. Keypoints are
moved with the inverse matrix (:func:`map_points`).

Example:
    >>> import numpy as np
    >>> streams = lambda name: np.random.default_rng([0, len(name)])
    >>> plan = sample_plan(4, (256, 256), streams, AugmentSettings(size=224, min_scale=0.75))
    >>> plan.matrices.shape, plan.out_size
    ((4, 3, 3), (224, 224))
"""
from __future__ import annotations

import numbers
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import pipekit.vision.decode  # noqa: F401  (checks OpenCV's environment variables before cv2 reads them)

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipekit.core.component import Component
from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import POSITIVE, Interval, Is, Options, check, env_positive_int
from pipekit.vision.buffers import pooled_empty
from pipekit.vision.geometry import (CV_BORDER, INTERP_MODES, MAX_LIGHTING, PAD_MODES, PROBABILITY, RATIO,
                                     crop_matrices, eye_stack, pixel_matrices, size2, size_param)
from pipekit.vision.samplers import (GREY_WEIGHTS, AffineSampler, Brightness, Contrast, Dihedral, Flip, Hue,
                                     LightingSampler, RandomCrop, Rotate, Sampler, Saturation, Warp, Zoom,
                                     resampling_given)

EXECUTORS = ("auto", "cv2", "torch")
_EPS = 1e-3
Streams = Callable[[str], np.random.Generator]


#: what the magnitudes ``aug_transforms`` scales by ``mult`` accept
MAGNITUDES = {"max_rotate": Interval(0, 180), "max_warp": Interval(0, 1, closed="left"), "max_lighting": MAX_LIGHTING}


@dataclass(frozen=True, repr=False)
class AugmentSettings(Component):
    """What :class:`~pipekit.vision.BatchAugment` does, checked once; :func:`~pipekit.vision.aug_transforms`
    describes each knob. ``samplers()`` turns the knobs into the samplers a plan is drawn from.

    >>> [type(s).__name__ for s in AugmentSettings(size=224, min_scale=0.75).samplers()]
    ['RandomCrop', 'Zoom', 'Rotate', 'Warp', 'Flip', 'Brightness', 'Contrast']
    """

    registry_kind: ClassVar[str] = "settings"
    size: int | tuple[int, int] | None = None
    min_scale: float = 1.0
    ratio: tuple[float, float] = (1.0, 1.0)
    do_flip: bool = True
    flip_vert: bool = False
    max_rotate: float = 10.0
    min_zoom: float = 1.0
    max_zoom: float = 1.1
    max_warp: float = 0.2
    p_affine: float = 0.75
    max_lighting: float = 0.2
    p_lighting: float = 0.75
    mode: str = "bilinear"
    pad_mode: str = "reflection"
    executor: str = "auto"

    def __post_init__(self) -> None:
        check("AugmentSettings", min_scale=(self.min_scale, Interval(0, 1, closed="right")),
              ratio=(self.ratio, RATIO), max_rotate=(self.max_rotate, MAGNITUDES["max_rotate"]),
              min_zoom=(self.min_zoom, POSITIVE),
              max_zoom=(self.max_zoom, Is(lambda z: isinstance(z, numbers.Real) and not isinstance(z, bool) and float(z) >= self.min_zoom,
                                          f"a number at least min_zoom={self.min_zoom} (1: no zoom; to zoom out "
                                          "give min_zoom below 1 too)")),
              max_warp=(self.max_warp, MAGNITUDES["max_warp"]), p_affine=(self.p_affine, PROBABILITY),
              max_lighting=(self.max_lighting, MAGNITUDES["max_lighting"]),
              p_lighting=(self.p_lighting, PROBABILITY), mode=(self.mode, Options(*INTERP_MODES)),
              pad_mode=(self.pad_mode, Options(*PAD_MODES)), executor=(self.executor, Options(*EXECUTORS)))
        object.__setattr__(self, "size", size_param("AugmentSettings", self.size, none_ok=True))
        object.__setattr__(self, "ratio", (float(self.ratio[0]), float(self.ratio[1])))

    def set_params(self, **params: Any) -> AugmentSettings:
        raise ParameterError("AugmentSettings is frozen: make changed settings with dataclasses.replace(settings, "
                             f"{', '.join(f'{k}=...' for k in params)}) and pass those instead")

    def samplers(self) -> list[Sampler]:
        """The samplers, in the order their matrices compose; one that could only draw the identity is left out."""
        out: list[Sampler] = [RandomCrop(self.min_scale, self.ratio)]
        if self.p_affine > 0:
            if (self.min_zoom, self.max_zoom) != (1, 1):
                out.append(Zoom(self.min_zoom, self.max_zoom, self.p_affine))
            if self.max_rotate:
                out.append(Rotate(self.max_rotate, self.p_affine))
            if self.max_warp:
                out.append(Warp(self.max_warp, self.p_affine))
        if self.do_flip:  # fastai's: the 8 symmetries of the square with flip_vert, else a left-right mirror
            out.append(Dihedral(p=0.5) if self.flip_vert else Flip(p=0.5))
        if self.max_lighting and self.p_lighting > 0:  # fastai's order: (logit(x) + brightness) * contrast
            out += [Brightness(self.max_lighting, self.p_lighting), Contrast(self.max_lighting, self.p_lighting)]
        return out


DEFAULT_SETTINGS = AugmentSettings()  # frozen, so one shared default is safe


@dataclass
class AugmentPlan:
    """Per-image geometry and lighting for one batch.

    ``matrices`` (B, 3, 3): output -> input normalised coordinates. ``out_size`` (h, w).
    ``brightness`` (B,) shift in logit space (0 = unchanged), then ``contrast`` (B,) factor in logit space
    (1 = unchanged): each pixel becomes ``sigmoid((logit(x) + brightness) * contrast)``, fastai's order (its
    ``aug_transforms`` lists ``Brightness`` before ``Contrast`` and composes them in that order in logit space).
    ``saturation`` (B,) factor towards the grey image in logit space after those (1 = unchanged; see
    :class:`~pipekit.vision.Saturation`), ``hue`` (B,) turn of the hue of the lit image (0 = unchanged; see
    :class:`~pipekit.vision.Hue`); None gives unchanged. ``identity`` is True when nothing needs resampling.

    >>> import numpy as np
    >>> from pipekit.vision import AugmentPlan
    >>> flip = np.array([[[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]])  # x -> -x: a horizontal flip
    >>> plan = AugmentPlan(flip, (2, 4), (2, 4), brightness=np.zeros(1), contrast=np.ones(1))
    >>> plan.identity, plan.geometry_identity, plan.has_lighting, plan.aligned.tolist()  # aligned: only mirrored
    (False, False, False, [True])
    >>> brighter = AugmentPlan(np.eye(3)[None], (2, 4), (2, 4), np.array([1.0]), contrast=np.ones(1))
    >>> brighter.geometry_identity, brighter.luts()[0, [64, 128, 255]].tolist()  # uint8 levels after lighting
    (True, [122, 187, 255])
    """

    matrices: np.ndarray
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    brightness: np.ndarray
    contrast: np.ndarray
    saturation: Any = field(default=None)
    hue: Any = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.matrices)
        self.saturation = np.ones(n) if self.saturation is None else np.asarray(self.saturation, np.float64)
        self.hue = np.zeros(n) if self.hue is None else np.asarray(self.hue, np.float64)

    @property
    def identity(self) -> bool:
        return self.geometry_identity and not self.has_lighting

    @property
    def geometry_identity(self) -> bool:
        return self.in_size == self.out_size and bool(np.allclose(self.matrices, np.eye(3)))

    @property
    def aligned(self) -> np.ndarray:
        """(B,) whether each image is only scaled, moved or mirrored (no rotation, shear or perspective): its output
        rows come from its input rows and its columns from its columns (:func:`nearest_indices`)."""
        m = np.asarray(self.matrices).reshape(-1, 9)
        return ~(m[:, [1, 3, 6, 7]] != 0).any(1) & (m[:, 8] == 1)

    @property
    def has_lighting(self) -> bool:
        """Whether any image's pixel values change (brightness, contrast, saturation or hue)."""
        return bool(np.any(self.lit) or self.has_colour)

    @property
    def lit(self) -> np.ndarray:
        """(B,) whether each image's brightness, contrast, saturation or hue changes."""
        return (self.brightness != 0) | (self.contrast != 1) | self.coloured

    @property
    def coloured(self) -> np.ndarray:
        """(B,) whether each image's saturation or hue changes: changes that mix its colour channels."""
        return (self.saturation != 1) | (self.hue != 0)

    @property
    def has_colour(self) -> bool:
        return bool(np.any(self.coloured))

    def luts(self) -> np.ndarray:
        """(B, 256) uint8 lookup tables applying each image's lighting to uint8 pixels."""
        x = np.clip(np.arange(256, dtype=np.float64) / 255.0, _EPS, 1 - _EPS)
        logit = np.log(x / (1 - x))
        y = 1 / (1 + np.exp(-((logit[None] + self.brightness[:, None]) * self.contrast[:, None])))
        return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)

    def colour_maps(self) -> np.ndarray:
        """(B, 3, 4) float32 maps of each image's logits ``L`` (RGB) to ``mix @ ((L + brightness) * contrast)``, as
        ``cv2.transform`` takes them: ``mix`` moves each pixel towards its grey value by 1 - saturation."""
        s = self.saturation[:, None, None]
        mix = s * np.eye(3)[None] + (1 - s) * np.tile(np.asarray(GREY_WEIGHTS)[None, None], (1, 3, 1))
        m = np.empty((len(s), 3, 4))
        m[:, :, :3] = mix * self.contrast[:, None, None]
        m[:, :, 3] = mix.sum(2) * (self.brightness * self.contrast)[:, None]
        return m.astype(np.float32)


#: the logit of each uint8 value, clipped as the lighting tables clip it
_LOGITS = (lambda x: np.log(x / (1 - x)))(np.clip(np.arange(256) / 255.0, _EPS, 1 - _EPS)).astype(np.float32)


def _colour_cv2(img: np.ndarray, m: np.ndarray, hue: float) -> None:
    """Light uint8 RGB ``img`` (h, w, 3) in place, in float: ``m`` (3, 4) in logit space (see
    :meth:`AugmentPlan.colour_maps`), then the hue turned by ``hue`` (turns) in HSV."""
    x = cv2.transform(_LOGITS[img], m)  # float32 throughout, in place: the sigmoid, then 0..255
    cv2.exp(-x, x)
    x += 1
    np.reciprocal(x, out=x)
    if hue:
        x = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # float: hue in degrees
        x[..., 0] = np.mod(x[..., 0] + np.float32(360 * hue), 360)
        x = cv2.cvtColor(x, cv2.COLOR_HSV2RGB)
    x *= 255
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    np.copyto(img, x, casting="unsafe")


def _turn_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """RGB images ``x`` (B, 3, H, W) in 0..1 with the hue turned by ``turns`` (B,) of a circle in HSV; saturation
    and value (so every grey pixel) kept."""
    r, g, b = x.unbind(1)
    v, lo = x.amax(1), x.amin(1)
    d = v - lo
    safe = torch.where(d > 0, d, torch.ones_like(d))
    h = torch.where(v == r, (g - b) / safe, torch.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = torch.remainder(h / 6 + turns.view(-1, 1, 1), 1.0) * 6

    def channel(k0: float) -> torch.Tensor:
        k = torch.remainder(h + k0, 6.0)
        return v - d * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return torch.stack([channel(5.0), channel(3.0), channel(1.0)], 1)


def crop_frame(in_hw: tuple[int, int], out_hw: tuple[int, int], min_scale: float) -> tuple[int, int]:
    """The shape (h, w) whose aspect (times ``ratio``) a random crop of an ``in_hw`` image takes before it is
    resized to ``out_hw``, as fastai's ``aug_transforms(size=...)`` plans it. With ``min_scale`` 1, the whole
    image: its affine transforms map all of it onto ``size``, a squish when the aspects differ. Below 1, a
    square, as its ``RandomResizedCropGPU`` (``ratio=(1, 1)``) crops; where the image and the output are both
    wider than square (or both taller) the aspect nearest square between theirs, so an image already in the
    output's shape is cropped in that shape, undistorted.

    >>> crop_frame((128, 128), (48, 64), 1.0), crop_frame((96, 128), (64, 48), 0.75)
    ((128, 128), (1, 1))
    >>> crop_frame((96, 128), (48, 64), 0.75), crop_frame((100, 200), (48, 64), 0.75)
    ((48, 64), (48, 64))
    """
    (hi, wi), (ho, wo) = in_hw, out_hw
    a_in, a_out = wi / hi, wo / ho
    if a_in == a_out:
        return out_hw
    if min_scale >= 1:
        return in_hw
    a = min(max(1.0, min(a_in, a_out)), max(a_in, a_out))
    return out_hw if a == a_out else in_hw if a == a_in else (1, 1)


def valid_crop(n: int, in_hw: tuple[int, int], out_hw: tuple[int, int], min_scale: float = 1.0,
               ratio: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The validation plan's matrices (n, 3, 3), as fastai's validation batches show the image: all of it when
    the crops' aspects (:func:`crop_frame` times ``ratio``) include its own, else the centred crop of the
    aspect nearest it; then resized to ``out_hw``.

    >>> valid_crop(1, (96, 128), (64, 64), min_scale=0.75)[0].tolist()  # the centred square
    [[0.75, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> valid_crop(1, (96, 128), (64, 64))[0].tolist()  # min_scale 1: all of it, squished
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if in_hw == out_hw:
        return eye_stack(n)
    (hi, wi), (fh, fw) = in_hw, crop_frame(in_hw, out_hw, min_scale)
    a_in, a = wi / hi, fw / fh
    aspect = min(max(a_in, a * min(ratio[0], 1.0)), a * max(ratio[1], 1.0))
    if aspect == a_in and (fh, fw) != out_hw:  # all of it, exactly (an image in the output's shape: as before)
        return eye_stack(n)
    return crop_matrices(in_hw, (fh, fw), np.ones(n), np.full(n, aspect / a), np.full((n, 2), 0.5))


def sample_plan(n: int, in_size: tuple[int, int], streams: Streams, settings: AugmentSettings = DEFAULT_SETTINGS,
                train: bool = True, extra: Sequence[Sampler] = ()) -> AugmentPlan:
    """The plan for a batch of ``n`` images of ``in_size`` (h, w): each sampler of ``settings`` (then
    ``extra``) draws from ``streams(sampler.stream)`` (e.g. ``ctx.rng``), and the draws are composed.

    A :class:`~pipekit.vision.RandomCrop` is drawn in the shape :func:`crop_frame` gives, every other sampler
    in the output's. ``train=False`` gives the deterministic validation plan and nothing else: the whole image
    resized to ``size`` (a squish when ``size`` has another aspect), or with ``min_scale`` below 1 the
    centred crop of the crops' shape when the image is not in it (:func:`valid_crop`).

    >>> streams = lambda name: np.random.default_rng(0)
    >>> sample_plan(2, (128, 128), streams, AugmentSettings(size=(48, 64)), train=False).matrices[0]  # all
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    in_hw = (int(in_size[0]), int(in_size[1]))
    out_hw = size2(settings.size, in_hw)
    resampling_given(extra, settings, "sample_plan")
    if not train:
        return AugmentPlan(valid_crop(n, in_hw, out_hw, settings.min_scale, settings.ratio), in_hw, out_hw,
                           np.zeros(n), np.ones(n))
    mats, contrast, brightness, saturation, hue = eye_stack(n), np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)
    for s in (*settings.samplers(), *extra):
        if isinstance(s, AffineSampler):
            frame = crop_frame(in_hw, out_hw, s.min_scale) if isinstance(s, RandomCrop) else out_hw
            mats = mats @ s.matrices(n, streams(s.stream), in_hw, frame)
        elif isinstance(s, LightingSampler):
            # the map so far, (L + brightness) * contrast, then this one's L * scale + shift, kept in that form
            scale, shift = s.lighting(n, streams(s.stream))
            factor = contrast * scale
            if np.any(factor == 0):
                raise ParameterError(f"sample_plan: {s!r} drew a scale of 0, which maps every pixel to one value; "
                                     "give a LightingSampler whose scales are never 0")
            contrast, brightness = factor, brightness + shift / factor
        elif isinstance(s, Saturation):
            # as fastai's aug_transforms composes them: saturation (a LightingTfm of xtra_tfms) in logit space after
            # brightness and contrast, hue (an HSV transform) on the lit 0..1 image after the sigmoid; saturation is
            # linear in logit space, so it commutes with contrast and its factors multiply
            saturation = saturation * s.saturation(n, streams(s.stream))
        elif isinstance(s, Hue):
            hue = np.asarray(np.mod(hue + s.hue(n, streams(s.stream)) + 0.5, 1.0) - 0.5, np.float64)  # turns add; kept in -0.5..0.5
        else:
            raise ParameterError(f"sample_plan: {s!r} is neither an AffineSampler, a LightingSampler, Saturation nor Hue")
    return AugmentPlan(mats, in_hw, out_hw, brightness, contrast, saturation, hue)


# ------------------------------------------------------------------------------------------- executors
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def thread_pool() -> ThreadPoolExecutor:
    """The shared pool the OpenCV executor uses (size: $PIPEKIT_AUG_THREADS or the number of cores).

    Without $PIPEKIT_AUG_THREADS: at most 8 and at most ``torch.get_num_threads()``, so torch.set_num_threads limits it."""
    global _POOL, _POOL_SIZE
    n = env_positive_int("PIPEKIT_AUG_THREADS") or max(1, min(8, os.cpu_count() or 1, torch.get_num_threads()))
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != n:
            # the pool replaced is not shut down: a batch still using it finishes; its threads end when it is let go
            _POOL, _POOL_SIZE = ThreadPoolExecutor(n, thread_name_prefix="pipekit-aug"), n
        return _POOL


def run_chunks(fn: Callable[[int, int], None], n: int, threads: int | None = None) -> None:
    """``fn(lo, hi)`` over 0..n in one chunk per pool thread (``threads`` at most), waiting for all."""
    pool = thread_pool()
    k = min(threads or pool._max_workers, n)
    if k <= 1:
        return fn(0, n)
    bounds = np.linspace(0, n, k + 1).astype(int)
    for f in [pool.submit(fn, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]:
        f.result()


#: source coordinates are snapped to this share of a pixel before rounding, so a point half-way between two pixels
#: (of a resize by 48/40, say) is an exact tie whatever the rounding of the arithmetic before
_SNAP = 2.0 ** 20


class NearestPicks(NamedTuple):
    """The source row of each output row and the source column of each output column, per image, as
    :func:`nearest_indices` gives them: ``rows`` (B, h) and ``cols`` (B, w) int64, always within the input;
    ``rows_inside`` (B, h) and ``cols_inside`` (B, w) whether each lies inside it (all True unless ``pad_mode`` is
    ``'zeros'``, where the others are padding: 0). An image that is not only scaled, moved or mirrored
    (:attr:`AugmentPlan.aligned` False) has none inside: the executors resample it otherwise."""

    rows: np.ndarray
    cols: np.ndarray
    rows_inside: np.ndarray
    cols_inside: np.ndarray

    def take(self, i: int, src: np.ndarray, out: np.ndarray) -> None:
        """Image ``i`` of the batch from uint8 ``src``, a mask (H, W) or an image (H, W, C), into ``out`` (h, w) or
        (h, w, C): its rows, then their columns, taken as rows of the transposed image (whole rows copied, not single
        pixels gathered)."""
        rows = src.take(self.rows[i], axis=0)  # (h, W[, C])
        if not self.rows_inside[i].all():  # padding (pad_mode='zeros'): 0
            rows[~self.rows_inside[i]] = 0
        if rows.ndim == 3 and rows.shape[2] > 4:  # more channels than an OpenCV transpose takes
            np.take(rows, self.cols[i], axis=1, out=out)
            out[:, ~self.cols_inside[i]] = 0
            return
        picked = np.take(cv2.transpose(rows), self.cols[i], axis=0)  # (w, h[, C])
        if not self.cols_inside[i].all():
            picked[~self.cols_inside[i]] = 0
        cv2.transpose(picked, dst=out)

    def subset(self, which: np.ndarray) -> NearestPicks:
        """The picks of the images ``which`` (a (B,) mask or indices) selects, in their order."""
        return NearestPicks(*(a[which] for a in self))

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Masks (B, H, W) or images (B, C, H, W) of any dtype on any device -> (B, h, w) or (B, C, h, w): rows, then
        columns, on their device."""
        dev, lead = x.device, (1,) * (x.ndim - 3)  # a 1 for the channel axis of images
        rows, cols = torch.from_numpy(self.rows).to(dev), torch.from_numpy(self.cols).to(dev)
        b, (h, w), wi = len(rows), (rows.shape[1], cols.shape[1]), x.shape[-1]
        mid = tuple(x.shape[1:-2])
        out = x.gather(-2, rows.view(b, *lead, h, 1).expand(b, *mid, h, wi))
        out = out.gather(-1, cols.view(b, *lead, 1, w).expand(b, *mid, h, w))
        if not (self.rows_inside.all() and self.cols_inside.all()):
            inside = torch.from_numpy(self.rows_inside[:, :, None] & self.cols_inside[:, None, :]).to(dev)
            out = out.masked_fill(~inside.view(b, *lead, h, w), 0)
        return out


def nearest_indices(plan: AugmentPlan, pad_mode: str = "reflection", strict: bool = True) -> NearestPicks:
    """The pixels nearest neighbours take under ``plan`` in each image only scaled, moved or mirrored
    (:attr:`AugmentPlan.aligned`), as ``grid_sample``'s nearest mode (``align_corners=False``) picks them, a
    source point half-way between two pixels going to the even one: the source row of each output row and the
    source column of each output column (:class:`NearestPicks`), with whether each lies inside the input (for
    ``pad_mode='zeros'``). Computed in float64, source points snapped to 2**-20 of a pixel, so a tie is a tie whatever
    the rounding. Both executors resample such a mask (and such an image, with ``mode='nearest'``) with them, so they
    give the same pixels, and an image and its mask take the same ones. A plan rotating, shearing or warping an image
    is refused; with ``strict=False`` such an image's picks are given with none inside (as the executors take them,
    resampling those images otherwise).

    >>> plan = AugmentPlan(np.eye(3)[None], (6, 1), (5, 1), np.zeros(1), np.ones(1))  # 6 rows resized to 5
    >>> nearest_indices(plan).rows[0].tolist()  # rows 0.1, 1.3, 2.5 (a tie: 2), 3.7, 4.9
    [0, 1, 2, 4, 5]
    """
    if strict and not plan.aligned.all():
        raise ParameterError(
            f"nearest_indices: the plan rotates, shears or warps image(s) {np.flatnonzero(~plan.aligned).tolist()}; it "
            "takes plans that only scale, move and mirror (plan.aligned), or give strict=False for picks with none "
            "inside for those images")
    (hi, wi), (ho, wo), m = plan.in_size, plan.out_size, np.asarray(plan.matrices, np.float64)
    # the output rows' centres then the columns', in -1..1, and each one's source size: one pass for both
    t = (np.concatenate([np.arange(ho), np.arange(wo)]) * 2.0 + 1) / np.repeat([float(ho), float(wo)], [ho, wo]) - 1
    size = np.repeat([float(hi), float(wi)], [ho, wo])
    src = np.concatenate([m[:, 1, 1:2] * t[None, :ho] + m[:, 1, 2:3], m[:, 0, 0:1] * t[None, ho:] + m[:, 0, 2:3]], 1)
    c = np.round((((src + 1) * size - 1) / 2) * _SNAP) / _SNAP  # pixel units: 0 the first pixel's centre
    if pad_mode == "reflection" and ((c < -0.5) | (c > size - 0.5)).any():
        a = np.abs(c + 0.5)  # mirrored about the pixel edges, -0.5 and size - 0.5, as grid_sample
        extra = np.fmod(a, size)
        c = np.where(np.remainder(np.floor(a / size), 2) == 0, extra - 0.5, size - extra - 0.5)
    c = np.round(c)  # half-way to the even pixel, as grid_sample's nearbyint
    # with pad_mode='zeros' a point outside is padding; else it is clamped to the edge (reflected ones are inside)
    inside = (c >= 0) & (c < size) if pad_mode == "zeros" else np.ones(c.shape, bool)
    inside &= plan.aligned[:, None]
    picks = np.minimum(np.maximum(c, 0), size - 1).astype(np.int64)
    rows, cols, rows_in, cols_in = picks[:, :ho], picks[:, ho:], inside[:, :ho], inside[:, ho:]
    return NearestPicks(rows, cols, rows_in, cols_in)


def _check_batch(who: str, plan: AugmentPlan, n: int, hw: tuple[int, ...], mode: str, pad_mode: str) -> None:
    check(who, mode=(mode, Options(*INTERP_MODES)), pad_mode=(pad_mode, Options(*PAD_MODES)))
    if n != len(plan.matrices) or hw != plan.in_size:
        raise DataError(f"plan is for {len(plan.matrices)} images of {plan.in_size}, got {n} of {hw}")


def _source(images: np.ndarray | torch.Tensor, rows: np.ndarray | None, who: str) -> tuple[np.ndarray, int]:
    """The uint8 array images are read from (a batch, or a whole store when ``rows`` picks the batch's
    images from it) with a channel axis, and the batch size."""
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8:
        raise ParameterError(f"{who} needs uint8 images, got {arr.dtype}; use warp_torch for float tensors")
    return arr, (arr.shape[0] if rows is None else len(rows))


class _Warper:
    """One plan's per-image OpenCV resampling: ``warp(i, src, dst)`` writes image ``i`` into ``dst``."""

    def __init__(self, plan: AugmentPlan, in_hw: tuple[int, int], mode: str, pad_mode: str):
        self.out_hw = plan.out_size
        self.flags = (cv2.INTER_NEAREST if mode == "nearest" else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
        self.border = CV_BORDER[pad_mode]
        self.same = plan.geometry_identity
        # None when the plan moves no pixel
        self.pms: Any = None if self.same else pixel_matrices(plan.matrices, in_hw, self.out_hw)
        self.affine: Any = None if self.pms is None else (np.abs(self.pms[:, 2, :2]).max(1) < 1e-12)
        # images only moved by whole pixels, within the source (RandomResizedCrop's validation centre crop): copied
        self.shift: Any = None if self.pms is None else self._whole_pixel_shifts(in_hw)

    def _whole_pixel_shifts(self, in_hw: tuple[int, int]) -> np.ndarray:
        (hi, wi), (ho, wo), pm = in_hw, self.out_hw, self.pms
        t = np.rint(pm[:, :2, 2])
        self.offsets = t.astype(np.int64)
        return ((np.abs(pm - np.eye(3)[None])[:, :, :2].max((1, 2)) < 1e-9) & (np.abs(pm[:, 2, 2] - 1) < 1e-12)
                & (np.abs(pm[:, :2, 2] - t).max(1) < 1e-6) & (t.min(1) >= 0) & (t[:, 0] + wo <= wi) & (t[:, 1] + ho <= hi))

    def warp(self, i: int, src: np.ndarray, dst: np.ndarray) -> None:
        ho, wo = self.out_hw
        if self.same:
            np.copyto(dst, src)
        elif self.shift[i]:  # the bilinear warp would give these very pixels
            x, y = self.offsets[i]
            np.copyto(dst, src[y:y + ho, x:x + wo])
        elif self.affine[i]:
            cv2.warpAffine(src, self.pms[i, :2] / self.pms[i, 2, 2], (wo, ho), dst=dst, flags=self.flags,
                           borderMode=self.border)
        else:
            cv2.warpPerspective(src, self.pms[i], (wo, ho), dst=dst, flags=self.flags, borderMode=self.border)


def _nearest_aligned(plan: AugmentPlan, mode: str) -> np.ndarray:
    """(B,) whether each image takes the rows and columns :func:`nearest_indices` picks: with nearest neighbours
    (masks, and images with ``mode='nearest'``) an image only scaled, moved or mirrored takes those on both executors
    (OpenCV breaks a half-way tie its own way, where a validation resize would differ in whole rows, and float32 grid
    points break one either way), so an image and its mask take the same pixels. None where the plan moves no pixel."""
    if mode == "nearest" and not plan.geometry_identity:
        return plan.aligned
    return np.zeros(len(plan.matrices), bool)


def _nearest_warp(plan: AugmentPlan, in_hw: tuple[int, int], mode: str,
                  pad_mode: str) -> tuple[Any, np.ndarray, Any]:
    """How :func:`warp_cv2` resamples each image: ``(picks, aligned, warper)``. An image ``aligned[i]``
    (:func:`_nearest_aligned`) takes the rows and columns ``picks`` gives; any other image is resampled by ``warper``
    (with nearest neighbours a rotated one may differ from warp_torch's in a rare pixel, OpenCV's). None where no image
    needs it."""
    aligned = _nearest_aligned(plan, mode)
    picks = nearest_indices(plan, pad_mode, strict=False) if aligned.any() else None
    warper = None if aligned.all() else _Warper(plan, in_hw, mode, pad_mode)
    return picks, aligned, warper


def warp_cv2(images: np.ndarray | torch.Tensor, plan: AugmentPlan, mode: str = "bilinear",
             pad_mode: str = "reflection", lighting: bool = True, num_threads: int | None = None,
             rows: np.ndarray | None = None) -> torch.Tensor:
    """Apply ``plan`` to uint8 images (B, H, W, C) or masks (B, H, W) with OpenCV; returns uint8, same layout.

    Runs per image in the shared thread pool (OpenCV releases the GIL), ``num_threads`` chunks at a time.
    Lighting is never applied to masks (3-D input). With ``rows``, ``images`` is a whole store (N, ...)
    and image ``i`` of the batch is ``images[rows[i]]``: read in place (e.g. from the memory-mapped
    cache), with no gathered copy of the batch.

    >>> import numpy as np
    >>> import torch
    >>> from pipekit.vision import AugmentPlan, warp_cv2
    >>> mirror = np.array([[[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]])
    >>> flip = AugmentPlan(mirror, (2, 4), (2, 4), np.zeros(1), np.ones(1))
    >>> images = torch.tensor([0, 10, 20, 30], dtype=torch.uint8).view(1, 1, 4, 1).repeat(1, 2, 1, 3)  # BHWC
    >>> out = warp_cv2(images, flip)
    >>> tuple(out.shape), out.dtype, out[0, 0, :, 0].tolist()
    ((1, 2, 4, 3), torch.uint8, [30, 20, 10, 0])
    >>> warp_cv2(images[..., 0], flip, mode="nearest")[0].tolist()  # a mask (B, H, W)
    [[30, 20, 10, 0], [30, 20, 10, 0]]
    """
    arr, b = _source(images, rows, "warp_cv2")
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[..., None]
    hi, wi, c = arr.shape[1:]
    _check_batch("warp_cv2", plan, b, (hi, wi), mode, pad_mode)
    ho, wo = plan.out_size
    out = pooled_empty((b, ho, wo, c), np.uint8)
    picks, aligned, warper = _nearest_warp(plan, (hi, wi), mode, pad_mode)
    luts = plan.luts() if (lighting and plan.has_lighting and not squeeze) else None
    # The unchanged-lighting table is the identity (checked in the tests): those images skip the lookup.
    lit: Any = None if luts is None else plan.lit
    # saturation and hue mix the channels, which a lookup table cannot: such RGB images are lit in float
    colour: Any = plan.coloured if luts is not None and c == 3 else np.zeros(b, bool)
    maps: Any = plan.colour_maps() if colour.any() else None
    # Every result is written straight into its slot of the batch buffer (dst=): no per-image copies.
    flat = out.reshape(b, ho, wo * c) if c > 1 else out[..., 0]

    def chunk(lo: int, hi_: int) -> None:
        for i in range(lo, hi_):
            k = i if rows is None else int(rows[i])
            src, dst = (arr[k], out[i]) if c > 1 else (arr[k, :, :, 0], flat[i])
            if aligned[i]:
                picks.take(i, src, dst)
            else:
                warper.warp(i, src, dst)
            if colour[i]:
                _colour_cv2(out[i], maps[i], float(plan.hue[i]))
            elif luts is not None and lit[i]:
                cv2.LUT(flat[i], luts[i], dst=flat[i])  # in place, while the image is still in cache

    run_chunks(chunk, b, num_threads)
    t = torch.from_numpy(out)
    return t[..., 0] if squeeze else t


def warp_cv2_float(images: np.ndarray | torch.Tensor, plan: AugmentPlan, scale: Sequence[float],
                   shift: Sequence[float], mode: str = "bilinear", pad_mode: str = "reflection", lighting: bool = True,
                   num_threads: int | None = None, rows: np.ndarray | None = None) -> torch.Tensor:
    """:func:`warp_cv2` then the float conversion ``x * scale[c] + shift[c]`` into (B, C, h, w) float32, in one
    pass per image: each image is warped and lit into a small buffer and written to its channel planes
    while still in the CPU cache. The result is exactly that of ``warp_cv2`` followed by
    ``Normalize``/``IntToFloat`` (the same OpenCV calls on the same pixels). ``rows``: see :func:`warp_cv2`.

    >>> imgs = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    >>> plan = sample_plan(2, (8, 8), lambda s: np.random.default_rng(1), AugmentSettings(size=6))
    >>> warp_cv2_float(imgs, plan, [1 / 255] * 3, [0.0] * 3).shape
    torch.Size([2, 3, 6, 6])
    """
    arr, b = _source(images, rows, "warp_cv2_float")
    if arr.ndim != 4:
        raise ParameterError(f"warp_cv2_float takes images (B, H, W, C), got shape {tuple(arr.shape)}")
    hi, wi, c = arr.shape[1:]
    _check_batch("warp_cv2_float", plan, b, (hi, wi), mode, pad_mode)
    if len(scale) != c or len(shift) != c:
        raise ParameterError(f"warp_cv2_float: {len(scale)} scales and {len(shift)} shifts for {c} channel(s)")
    ho, wo = plan.out_size
    out = pooled_empty((b, c, ho, wo), np.float32)
    picks, aligned, warper = _nearest_warp(plan, (hi, wi), mode, pad_mode)
    luts: Any = plan.luts() if (lighting and plan.has_lighting) else None
    lit = np.zeros(b, bool) if luts is None else plan.lit
    colour = plan.coloured & lit if c == 3 else np.zeros(b, bool)  # lit in float, as warp_cv2 does
    maps: Any = plan.colour_maps() if colour.any() else None
    # one float lookup table per channel: x * scale[c] + shift[c] for every uint8 value x
    to_float = [(np.arange(256, dtype=np.float64) * a + b).astype(np.float32).reshape(1, 256)
                for a, b in zip(scale, shift)]

    def chunk(lo: int, hi_: int) -> None:
        # one warped image and one set of channel planes per chunk, reused for each of its images
        warped = np.empty((ho, wo, c), np.uint8)
        flat = warped.reshape(ho, wo * c)
        planes = [np.empty((ho, wo), np.uint8) for _ in range(c)] if c > 1 else None
        for i in range(lo, hi_):
            src = arr[i if rows is None else int(rows[i])]
            if plan.geometry_identity and not lit[i]:
                img = src  # nothing to resample or light: straight to the float planes
            else:
                one, dst = (src, warped) if c > 1 else (src[:, :, 0], warped[:, :, 0])
                if aligned[i]:
                    picks.take(i, one, dst)
                else:
                    warper.warp(i, one, dst)
                if colour[i]:
                    _colour_cv2(warped, maps[i], float(plan.hue[i]))
                elif lit[i]:
                    cv2.LUT(flat, luts[i], dst=flat)
                img = warped
            chans = cv2.split(img, planes) if c > 1 else [img[:, :, 0]]
            for ch in range(c):
                cv2.LUT(chans[ch], to_float[ch], dst=out[i, ch])

    run_chunks(chunk, b, num_threads)
    return torch.from_numpy(out)


def _grid(plan: AugmentPlan, device: torch.device, dtype: torch.dtype, which: np.ndarray | None = None) -> torch.Tensor:
    """The sampling grid (B, h, w, 2) of ``plan``'s images, or of those ``which`` (a (B,) mask) selects."""
    ho, wo = plan.out_size
    ys = (torch.arange(ho, device=device, dtype=dtype) * 2 + 1) / ho - 1
    xs = (torch.arange(wo, device=device, dtype=dtype) * 2 + 1) / wo - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, -1, 3)
    mats = np.asarray(plan.matrices) if which is None else np.asarray(plan.matrices)[which]
    m = torch.as_tensor(mats, device=device, dtype=dtype)
    src = base @ m.transpose(1, 2)  # (B, HW, 3)
    src = src[..., :2] / src[..., 2:3]
    return src.reshape(len(mats), ho, wo, 2)


def warp_torch(images: torch.Tensor, plan: AugmentPlan, mode: str = "bilinear", pad_mode: str = "reflection",
               lighting: bool = True) -> torch.Tensor:
    """Apply ``plan`` with one batched ``grid_sample``.

    Images: uint8 (B, H, W, C) or float (B, C, H, W) in 0..1 -> float (B, C, h, w) in 0..1.
    Masks: integer (B, H, W) -> same dtype (B, h, w), resampled with nearest neighbours.

    >>> import numpy as np
    >>> import torch
    >>> from pipekit.vision import AugmentPlan, warp_torch
    >>> mirror = np.array([[[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]])
    >>> flip = AugmentPlan(mirror, (2, 4), (2, 4), np.zeros(1), np.ones(1))
    >>> images = torch.tensor([0, 51, 102, 255], dtype=torch.uint8).view(1, 1, 4, 1).repeat(1, 2, 1, 3)
    >>> out = warp_torch(images, flip)  # uint8 (B, H, W, C) in, float (B, C, H, W) in 0..1 out
    >>> tuple(out.shape), out.dtype, [round(v, 2) for v in out[0, 0, 0].tolist()]
    ((1, 3, 2, 4), torch.float32, [1.0, 0.4, 0.2, 0.0])
    >>> mask_plan = AugmentPlan(mirror, (1, 4), (1, 4), np.zeros(1), np.ones(1))
    >>> warp_torch(torch.tensor([[[0, 1, 2, 3]]]), mask_plan)  # a mask (B, H, W): nearest neighbours
    tensor([[[3, 2, 1, 0]]])
    """
    is_mask = images.ndim == 3
    hw = tuple(images.shape[1:3] if images.ndim == 3 or images.dtype == torch.uint8 else images.shape[-2:])
    _check_batch("warp_torch", plan, images.shape[0], hw, mode, pad_mode)
    mode = "nearest" if is_mask else mode
    aligned = _nearest_aligned(plan, mode)  # those taking nearest_indices' picks, as warp_cv2 takes them
    some = bool(aligned.any())
    every = some and bool(aligned.all())
    if is_mask:
        x = images if every else images[:, None].float()
    elif images.dtype == torch.uint8:
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
    else:
        x = images.float()
    if every:
        x = nearest_indices(plan, pad_mode, strict=False).gather(x)
    elif not plan.geometry_identity:
        rest = torch.from_numpy(~aligned).to(x.device) if some else None  # a batch of both kinds: the others
        warped = F.grid_sample(x if rest is None else x[rest], _grid(plan, x.device, torch.float32, ~aligned if some
                                                                     else None),
                               mode=mode, padding_mode=pad_mode, align_corners=False)
        if rest is not None:
            out = x.new_empty((len(x), *warped.shape[1:]))
            out[rest], out[~rest] = warped, nearest_indices(plan, pad_mode, strict=False).subset(aligned).gather(x[~rest])
            warped = out
        x = warped
    if is_mask:
        return x if every else x[:, 0].round().to(images.dtype)
    if lighting and plan.has_lighting:
        b = torch.as_tensor(plan.brightness, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        c = torch.as_tensor(plan.contrast, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        y = (torch.logit(x.clamp(_EPS, 1 - _EPS)) + b) * c  # fastai's order: brightness, then contrast
        rgb = x.shape[1] == 3  # saturation and hue leave an image with no 3 colour channels as it is
        if rgb and np.any(plan.saturation != 1):
            s = torch.as_tensor(plan.saturation, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
            grey = (y * torch.tensor(GREY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, True)
            y = y * s + grey * (1 - s)
        x = torch.sigmoid(y)
        if rgb and np.any(plan.hue != 0):
            x = _turn_hue(x, torch.as_tensor(plan.hue, device=x.device, dtype=x.dtype))
    return x


def map_points(points: torch.Tensor, plan: AugmentPlan) -> torch.Tensor:
    """Move keypoints (B, N, 2) given as normalised (x, y) in -1..1 of the input to the output frame.

    >>> import numpy as np
    >>> import torch
    >>> from pipekit.vision import AugmentPlan, map_points
    >>> zoom = np.array([[[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]]])  # the output shows the centre half
    >>> plan = AugmentPlan(zoom, (8, 8), (8, 8), np.zeros(1), np.ones(1))
    >>> map_points(torch.tensor([[[0.5, -0.25], [0.0, 0.0]]]), plan).tolist()
    [[[1.0, -0.5], [0.0, 0.0]]]
    """
    inv = torch.as_tensor(np.linalg.inv(plan.matrices), dtype=torch.float64, device=points.device)
    p = points.to(torch.float64)
    homo = torch.cat([p, torch.ones_like(p[..., :1])], -1) @ inv.transpose(1, 2)
    return (homo[..., :2] / homo[..., 2:3]).to(points.dtype)


def map_boxes(boxes: torch.Tensor, plan: AugmentPlan) -> torch.Tensor:
    """Move boxes (B, M, 4) as normalised (x0, y0, x1, y1) to the output frame: the box around the moved
    corners, clipped to the image. Padding rows (NaN) stay NaN, and a box moved out of the picture (clipped to
    no width or no height) becomes padding in its place (:func:`empty_boxes_to_padding`); the batch transform
    ``BBoxLblBlock`` brings, :class:`~pipekit.vision.bbox.DropEmptyBoxes`, gives its label the padding label 0.

    >>> shift = np.array([[[1.0, 0, 0.75], [0, 1, 0], [0, 0, 1]]])  # the picture moves 0.75 to the left
    >>> plan = AugmentPlan(shift, (8, 8), (8, 8), np.zeros(1), np.ones(1))
    >>> map_boxes(torch.tensor([[[-0.5, -0.5, 0.5, 0.5], [-1.0, -1.0, -0.5, 0.0]]]), plan)
    tensor([[[-1.0000, -0.5000, -0.2500,  0.5000],
             [    nan,     nan,     nan,     nan]]])
    """
    x0, y0, x1, y1 = boxes.unbind(-1)
    corners = torch.stack([torch.stack(c, -1) for c in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], 2)  # B,M,4,2
    b, m = boxes.shape[:2]
    moved = map_points(corners.reshape(b, m * 4, 2), plan).reshape(b, m, 4, 2)
    lo, hi = moved.amin(2), moved.amax(2)
    return empty_boxes_to_padding(torch.cat([lo, hi], -1))


def empty_boxes_to_padding(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (..., 4) as (x0, y0, x1, y1) clipped to -1..1, each one left with no width or no height made a
    padding row (NaN) in its place, as fastai's ``clip_remove_empty`` drops it: a box outside the picture is
    clipped onto its border, where it has no area. Padding rows stay NaN.

    >>> empty_boxes_to_padding(torch.tensor([[-0.5, 0.0, 1.5, 0.5], [1.2, 0.0, 1.6, 0.5]]))
    tensor([[-0.5000,  0.0000,  1.0000,  0.5000],
            [    nan,     nan,     nan,     nan]])
    """
    boxes = boxes.clamp(-1, 1)
    empty = (boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])
    return boxes.masked_fill(empty.unsqueeze(-1), float("nan"))
