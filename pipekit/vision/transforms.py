"""Batch transforms for images: augmentation (plan + executor), uint8 -> float, normalisation.

Image batches travel as uint8 (B, H, W, C) from the cache until they are turned into float
(B, C, H, W): by the torch executor, or by :class:`Normalize` / :class:`IntToFloat` at the end. Masks
are integer (B, H, W); keypoints float (B, N, 2) in -1..1.

Example:
    >>> tfms = aug_transforms(size=224, min_scale=0.75) + [Normalize.from_stats(*imagenet_stats)]
    >>> [type(t).__name__ for t in tfms]
    ['BatchAugment', 'Normalize']
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
import torch

from pipekit.core.errors import DataError, FieldError, ParameterError
from pipekit.core.registry import lookup
from pipekit.core.validate import POSITIVE, Interval, Is, check
from pipekit.data.store import StoreRows
from pipekit.data.transform import BatchContext, BatchTransform, Transform, grouped_batch_tfms, rebuild
from pipekit.vision.augment import (DEFAULT_SETTINGS, MAGNITUDES, AugmentPlan, AugmentSettings, Streams, map_boxes,
                                    map_points, sample_plan, warp_cv2, warp_cv2_float, warp_torch)
from pipekit.vision.cache import ImageStore
from pipekit.vision.geometry import eye_stack, size2
from pipekit.vision.samplers import Dihedral, Flip, ResizedCrop, Sampler, resampling_given

imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
mnist_stats = ([0.131], [0.308])


def _source_sizes(t: torch.Tensor | StoreRows, ctx: BatchContext, j: int) -> np.ndarray | None:
    """Each image's (h, w) before its item transform, (B, 2), of batch element ``j``: read off the image store for a
    batch given as its rows (read in place, see ``BatchAugment.reads_rows``), else as the loader gave them with the
    batch's context for a gathered batch (``BatchContext.source_sizes``); None when neither knows them."""
    if isinstance(t, StoreRows):
        sizes = t.store.crop_sizes
        return None if sizes is None else np.asarray(sizes)[np.asarray(t.rows)]
    given = ctx.source_sizes[j] if j < len(ctx.source_sizes) else None
    return None if given is None or len(given) != len(t) else np.asarray(given)


def _image_size(t: torch.Tensor | StoreRows) -> tuple[int, int]:
    if isinstance(t, StoreRows):  # rows of an ImageStore (reads_rows offers no other store)
        return cast(ImageStore, t.store).size
    if t.ndim == 3 or t.dtype == torch.uint8:
        return int(t.shape[1]), int(t.shape[2])
    return int(t.shape[2]), int(t.shape[3])


class BatchAugment(BatchTransform):
    """Random crop, flips, rotation, zoom, perspective warp and lighting, resampled once per image.

    ``settings`` (an :class:`AugmentSettings`, most easily made by :func:`aug_transforms`) say what is
    drawn; ``extra_samplers`` add samplers of one's own after those, each on its own random stream.
    Training batches (``ctx.train``) get a random plan; validation batches only the deterministic one:
    the whole image resized to ``size`` (with ``min_scale`` below 1, the centred crop of the crops' shape
    when the image is not in it; see :func:`~pipekit.vision.augment.valid_crop`). ``executor``: ``'cv2'`` (uint8, threads), ``'torch'`` (grid_sample) or
    ``'auto'`` (cv2 for uint8 batches on the CPU, torch otherwise).

    >>> BatchAugment(AugmentSettings(size=64, max_rotate=20)).settings.max_rotate
    20
    """

    order: ClassVar[int] = 20

    def __init__(self, settings: AugmentSettings = DEFAULT_SETTINGS, extra_samplers: Sequence[Sampler] = ()):
        extra_samplers = tuple(extra_samplers)
        check("BatchAugment", settings=(settings, Is(lambda s: isinstance(s, AugmentSettings), "an AugmentSettings")))
        taken = [s.stream for s in settings.samplers()]
        streams = taken + [getattr(s, "stream", None) for s in extra_samplers]
        check("BatchAugment", extra_samplers=(extra_samplers, Is(
            lambda e: all(isinstance(s, Sampler) for s in e) and len(set(streams)) == len(streams),
            f"Samplers, each on a stream of its own (the settings' samplers use {taken})")))
        resampling_given(extra_samplers, settings, "BatchAugment")  # refused when built, not at the first batch
        self.settings, self.extra_samplers = settings, extra_samplers

    def plan(self, n: int, in_size: tuple[int, int], streams: Streams, train: bool,
             source_sizes: np.ndarray | None = None) -> AugmentPlan:
        """The batch's plan (see :func:`~pipekit.vision.augment.sample_plan`). ``source_sizes`` (n, 2): each image's
        size before its item transform, when the loader knows the batch's rows (read in place or gathered); these
        samplers draw in the frame of the image as cached, so they leave it unused (:class:`ResizedCropAugment` draws
        in the source's)."""
        return sample_plan(n, in_size, streams, self.settings, train, self.extra_samplers)

    def valid_geometry(self, in_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
        plan = self.plan(1, in_hw, lambda stream: np.random.default_rng(0), train=False)
        return plan.matrices[0], plan.out_size

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return self.encode_then(batch, ctx, None)

    def reads_rows(self, store: Any, geometry: str | None, j: int, n_inp: int) -> bool:
        # the OpenCV executor warps each image straight from the memory-mapped cache: no gathered copy
        return geometry in ("image", "mask") and self.warps_in_place(store)

    def warps_in_place(self, store: Any) -> bool:
        """Whether the executor warps images straight from ``store`` (the OpenCV executor, from the image cache);
        rows of another store are gathered first."""
        return self.settings.executor != "torch" and isinstance(store, ImageStore)

    def fuse(self, following: BatchTransform) -> Any:
        if self.settings.executor != "torch" and isinstance(following, (Normalize, IntToFloat)):
            return AugmentThenFloat(self, following)
        return None

    def encode_then(self, batch: tuple, ctx: BatchContext, to_float: Normalize | IntToFloat | None) -> tuple:
        """``encode``, then ``to_float.encode`` when one is given; an image that the OpenCV executor warps is
        converted to float in the same pass (:func:`~pipekit.vision.augment.warp_cv2_float`). Elements
        given as :class:`~pipekit.data.store.StoreRows` are read from their store in place."""
        spatial = [j for j, g in enumerate(ctx.geometry) if g in ("image", "mask") and j < len(batch)]
        first = batch[spatial[0]] if spatial else None
        sizes = None if first is None else _source_sizes(first, ctx, spatial[0])
        if any(isinstance(x, StoreRows) and not self.warps_in_place(x.store) for x in batch):  # rows taken for sizes
            batch = tuple(x.gather() if isinstance(x, StoreRows) and not self.warps_in_place(x.store) else x
                          for x in batch)
            first = batch[spatial[0]] if spatial else None
        plan = None if first is None else self.plan(len(first), _image_size(first), ctx.rng, ctx.train, sizes)
        if plan is None or plan.identity:
            batch = tuple(x.gather() if isinstance(x, StoreRows) else x for x in batch)
            return batch if to_float is None else to_float.encode(batch, ctx)
        s = self.settings
        out = list(batch)
        for j, geo in enumerate(ctx.geometry[:len(batch)]):
            x = batch[j]
            done = False  # converted to float here already
            if geo in ("image", "mask"):
                if _image_size(x) != plan.in_size:
                    raise DataError(f"batch element {j} ({geo}) is {_image_size(x)} but the images are "
                                    f"{plan.in_size}; give images and masks the same item transform")
                rows = x.rows if isinstance(x, StoreRows) else None
                # rows of the image cache are read in place: the store's (N, H, W, C) images, (N, H, W) masks
                src = x if rows is None else cast(ImageStore, x.store).pixels
                src = src[..., 0] if rows is not None and geo == "mask" else src
                use_cv2 = rows is not None or s.executor == "cv2" or (s.executor == "auto" and x.device.type == "cpu"
                                                                        and x.dtype == torch.uint8)
                if geo == "mask":
                    out[j] = (warp_cv2(src if rows is not None else x.to(torch.uint8), plan, "nearest", s.pad_mode,
                                       lighting=False, rows=rows).to(torch.uint8 if rows is not None else x.dtype)
                              if use_cv2 and (rows is not None or x.device.type == "cpu") else
                              warp_torch(x, plan, "nearest", s.pad_mode, lighting=False))
                elif use_cv2:
                    if rows is None and x.dtype != torch.uint8:
                        raise ParameterError("executor='cv2' needs uint8 images; put BatchAugment before IntToFloat")
                    lut = None if to_float is None else to_float.float_lut(j, geo, int(src.shape[-1]), ctx)
                    if lut is None:
                        out[j] = warp_cv2(src, plan, s.mode, s.pad_mode, rows=rows)
                    else:
                        out[j] = warp_cv2_float(src, plan, *lut, mode=s.mode, pad_mode=s.pad_mode, rows=rows)
                        done = True
                else:
                    out[j] = warp_torch(x, plan, s.mode, s.pad_mode)
            elif geo == "points":
                out[j] = map_points(x, plan)
            elif geo == "bbox":
                out[j] = map_boxes(x, plan)
            if to_float is not None and not done:
                out[j] = to_float.encode_element(j, geo, out[j], ctx)
        return tuple(out)


class ResizedCropAugment(BatchAugment):
    """The per-batch half of :class:`~pipekit.vision.RandomResizedCrop`, which the image block adds: its images are
    cached whole, squished to ``size`` plus the validation margin. Training batches get fastai's random crop
    (:class:`~pipekit.vision.samplers.ResizedCrop`: ``min_scale``..``max_scale`` of the source image's area, aspect in
    ``ratio``) resized to ``size``; validation batches the centred ``size`` pixels of the cached image (fastai's
    squish to ``size`` plus the margin, then centre crop), copied as they are.

    The crops are drawn in each source image's proportions, which the loader gives with the batch: read off the
    image store for rows it reads in place (a loader on the CPU), in the batch's context
    (``BatchContext.source_sizes``) for a batch gathered before it gets here (a loader on the GPU, a ``create_batch``
    of one's own), so both draw the same crops. A batch whose rows are not known (given to it directly, or images a
    user's item transform resized) is cropped in the proportions of the cached image instead.

    Followed by another :class:`BatchAugment` (``aug_transforms``), the two are done in one resample: the other's
    draws (zoom, rotation, warp, flips, its own crop and size) act on the crop, as fastai's batch transforms act on
    the cropped item.

    >>> aug = ResizedCropAugment(64, min_scale=0.35)
    >>> aug.plan(2, (80, 80), lambda s: np.random.default_rng(0), train=False).matrices[0].tolist()
    [[0.8, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 1.0]]
    """

    order: ClassVar[int] = 19  # before the augmentation it is done with, whatever order the two were given in

    def __init__(self, size: int | Sequence[int] = 224, min_scale: float = 0.08, max_scale: float = 1.0,
                 ratio: Sequence[float] = (3 / 4, 4 / 3)):
        crop = ResizedCrop(min_scale, max_scale, ratio)
        none = AugmentSettings(size=cast(Any, size), do_flip=False, max_rotate=0.0, max_zoom=1.0, max_warp=0.0,
                               max_lighting=0.0)  # size is checked there
        super().__init__(none, (crop,))
        self.size, self.min_scale, self.max_scale, self.ratio = none.size, min_scale, max_scale, crop.ratio

    def plan(self, n: int, in_size: tuple[int, int], streams: Streams, train: bool,
             source_sizes: np.ndarray | None = None) -> AugmentPlan:
        in_hw = (int(in_size[0]), int(in_size[1]))
        out_hw = size2(self.settings.size, in_hw)
        if train:
            crop = self.extra_samplers[0]
            mats = cast(ResizedCrop, crop).matrices(n, streams(crop.stream), in_hw, out_hw, source_sizes)
        else:  # the centred out_hw pixels, unscaled: the cache is the validation image before its centre crop
            mats = eye_stack(n, out_hw[1] / in_hw[1], out_hw[0] / in_hw[0])
        return AugmentPlan(mats, in_hw, out_hw, np.zeros(n), np.ones(n))

    def fuse(self, following: BatchTransform) -> Any:
        if isinstance(following, BatchAugment) and not isinstance(following, ResizedCropAugment):
            return _CropThenAugment(self, following)
        return super().fuse(following)

    def reads_rows(self, store: Any, geometry: str | None, j: int, n_inp: int) -> bool:
        # the rows give each image's source size: taken from any image store, gathered here when not warped in place
        return geometry in ("image", "mask") and getattr(store, "crop_sizes", None) is not None


class _CropThenAugment(BatchAugment):
    """A batch pipeline's step for :class:`ResizedCropAugment` followed by another :class:`BatchAugment`: one plan,
    the crop's matrices then the augmentation's (drawn on the crop's output size), so each image is resampled once;
    the executor, interpolation and padding are the augmentation's."""

    def __init__(self, crop: ResizedCropAugment, augment: BatchAugment):
        self.crop, self.augment = crop, augment
        self.settings, self.extra_samplers = augment.settings, augment.extra_samplers

    @property
    def stage_name(self) -> str:
        return f"{self.crop.stage_name}+{self.augment.stage_name}"

    def reads_rows(self, store: Any, geometry: str | None, j: int, n_inp: int) -> bool:
        return self.crop.reads_rows(store, geometry, j, n_inp)

    def plan(self, n: int, in_size: tuple[int, int], streams: Streams, train: bool,
             source_sizes: np.ndarray | None = None) -> AugmentPlan:
        first = self.crop.plan(n, in_size, streams, train, source_sizes)
        then = self.augment.plan(n, first.out_size, streams, train)
        return AugmentPlan(first.matrices @ then.matrices, first.in_size, then.out_size, then.brightness, then.contrast,
                           then.saturation, then.hue)


class FlipItem(BatchAugment):
    """fastai's ``FlipItem``: each training image mirrored left-right with probability ``p`` (its masks, points and
    boxes with it); validation batches pass unchanged. Given in ``item_tfms`` (``item_tfms=[Resize(64), FlipItem()]``)
    it runs on each batch after the cache, as an item transform drawn anew every epoch must: a flip moves whole pixels,
    so the picture is the one fastai's flip of the item gives. Draws from the batch's ``"flip_item"`` stream, so the
    same seed gives the same flips.

    >>> FlipItem().plan(4, (8, 8), lambda s: np.random.default_rng(1), train=True).matrices[:, 0, 0].tolist()
    [1.0, 1.0, -1.0, 1.0]
    """

    order: ClassVar[int] = 18  # before the batch augmentations, as fastai's item transforms come before its batch ones
    stream: ClassVar[str] = "flip_item"
    param_constraints = {"p": Interval(0, 1)}

    def __init__(self, p: float = 0.5):
        self.p = p
        self.check_params()
        super().__init__(AugmentSettings(do_flip=False, max_rotate=0.0, max_zoom=1.0, max_warp=0.0, max_lighting=0.0))

    def matrices(self, n: int, rng: np.random.Generator, out_hw: tuple[int, int]) -> np.ndarray:
        return Flip(p=self.p).matrices(n, rng, out_hw, out_hw)  # the batch sampler's draw, on the item stream

    def plan(self, n: int, in_size: tuple[int, int], streams: Streams, train: bool,
             source_sizes: np.ndarray | None = None) -> AugmentPlan:
        hw = (int(in_size[0]), int(in_size[1]))
        mats = self.matrices(n, streams(self.stream), hw) if train else eye_stack(n)
        return AugmentPlan(mats, hw, hw, np.zeros(n), np.ones(n))


class DihedralItem(FlipItem):
    """fastai's ``DihedralItem``: with probability ``p`` (fastai's default 1.0) each training image takes one of the 8
    symmetries of the square (the identity among them, each as likely: mirrors, quarter turns, transposes), with its
    masks, points and boxes; validation batches pass unchanged. Images that are not square take one of the 4 that keep
    their shape (the identity and the three mirrors), as a batch holds images of one size. Given in ``item_tfms`` it
    runs on each batch after the cache (see :class:`FlipItem`), from the batch's ``"dihedral_item"`` stream.

    >>> m = DihedralItem().plan(1000, (8, 8), lambda s: np.random.default_rng(0), train=True).matrices
    >>> len({tuple(x.ravel()) for x in m})
    8
    """

    stream: ClassVar[str] = "dihedral_item"

    def __init__(self, p: float = 1.0):
        super().__init__(p)

    def matrices(self, n: int, rng: np.random.Generator, out_hw: tuple[int, int]) -> np.ndarray:
        return Dihedral(p=self.p).matrices(n, rng, out_hw, out_hw)  # the batch sampler's draw, on the item stream


class AugmentThenFloat:
    """A batch pipeline's step for :class:`BatchAugment` followed by :class:`Normalize` or :class:`IntToFloat`
    (see ``BatchTransform.fuse``): images warped by the OpenCV executor are lit, converted and normalised
    in the same pass, with the same result as the two transforms one after the other."""

    def __init__(self, augment: BatchAugment, to_float: Normalize | IntToFloat):
        self.augment, self.to_float = augment, to_float

    @property
    def stage_name(self) -> str:
        return f"{self.augment.stage_name}+{self.to_float.stage_name}"

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:
        return self.augment.encode_then(batch, ctx, self.to_float)

    def fuse(self, following: BatchTransform) -> None:
        return None

    def reads_rows(self, store: Any, geometry: str | None, j: int, n_inp: int) -> bool:
        return self.augment.reads_rows(store, geometry, j, n_inp)

    def __repr__(self) -> str:
        return f"{self.augment!r} + {self.to_float!r}"


def aug_transforms(do_flip: bool = True, flip_vert: bool = False, max_rotate: float = 10.0, min_zoom: float = 1.0,
                   max_zoom: float = 1.1, max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75,
                   p_lighting: float = 0.75, size: int | Sequence[int] | None = None, mode: str = "bilinear",
                   pad_mode: str = "reflection", min_scale: float = 1.0, executor: str = "auto",
                   mult: float = 1.0, xtra_tfms: BatchTransform | Sequence[BatchTransform] | None = None,
                   batch: bool = False, align_corners: bool = False) -> list[BatchTransform]:
    """The standard augmentation set as one :class:`BatchAugment`; ``mult`` scales the magnitudes.

    ``size``: output (int or (h, w); None keeps the input's); the whole image is mapped onto it, on training
    and validation batches alike (squished when ``size`` has another aspect, as fastai's affine transforms
    with ``size`` do, so points and boxes stay in -1..1); ``min_scale``: below 1, the smallest share of the
    area a random crop keeps, the crop square as fastai's ``RandomResizedCropGPU`` draws it, or in the
    output's shape when the image has that shape (:func:`~pipekit.vision.augment.crop_frame`), then resized
    to ``size``; validation batches then show the centred crop of that shape (all of a square image);
    ``do_flip``: with probability 0.5, mirror left-right, or with ``flip_vert`` too, one of the 8 symmetries of the
    square (:class:`~pipekit.vision.Dihedral`, each as likely); ``flip_vert`` without ``do_flip`` flips nothing, as in
    fastai;
    ``max_rotate`` (degrees), ``min_zoom``..``max_zoom`` and ``max_warp`` (perspective) each
    apply with probability ``p_affine``; ``max_lighting`` changes brightness and contrast, each with
    probability ``p_lighting``; ``mode``: ``'bilinear'`` or ``'nearest'``; ``pad_mode``: ``'reflection'``,
    ``'zeros'`` or ``'border'``; ``executor``: see :class:`BatchAugment`. ``mult`` multiplies ``max_rotate``,
    ``max_warp`` and ``max_lighting``, as fastai's does (not the zoom); each result must stay in the range its argument
    accepts (``max_lighting`` below 1: with the default 0.2, ``mult`` below 5), else the error names ``mult``.
    ``xtra_tfms``: batch transforms appended after the augmentation (as fastai's argument of that name).

    fastai's ``batch=True`` (one draw for the whole batch) and ``align_corners=True`` are refused with what to do:
    here each image draws its own augmentation (the single augmentations, ``Rotate(batch=True)`` and the others, draw
    once per batch), resampled on pixel edges.

    >>> aug_transforms(size=128, min_scale=0.5)[0].settings.size
    128
    """
    if batch:
        raise ParameterError("aug_transforms: batch=True (one augmentation for the whole batch) is not available: "
                             "aug_transforms draws each image's flip, rotation, zoom, warp and lighting on its own; "
                             "for one draw per batch give the single augmentations with batch=True in batch_tfms "
                             "(batch_tfms=[Flip(batch=True), Rotate(p=0.75, batch=True), Zoom(p=0.75, batch=True), "
                             "Warp(p=0.75, batch=True), Brightness(batch=True), Contrast(batch=True)]), resampled "
                             "once together, or leave batch out")
    if align_corners:
        raise ParameterError("aug_transforms: align_corners=True is not available: pipekit resamples on pixel edges "
                             "(align_corners=False), so images, masks and points stay aligned; leave align_corners out")
    # fastai's single augmentations given here (xtra_tfms=[Flip(p=1.)]) are made one augmentation, as in batch_tfms
    extra: list[Any] = grouped_batch_tfms([] if xtra_tfms is None else list(xtra_tfms)
                                          if isinstance(xtra_tfms, (list, tuple)) else [xtra_tfms])
    bad = next((t for t in extra if not isinstance(t, BatchTransform)), None)
    if bad is not None:
        raise ParameterError(f"aug_transforms: xtra_tfms holds {bad!r} ({type(bad).__name__}), not a batch transform; "
                             "give pipekit batch transforms or augmentations (e.g. Flip(p=1.), Rotate(max_deg=20), "
                             "Normalize.from_stats(*imagenet_stats)); item transforms (Resize, RandomResizedCrop) go "
                             "in the DataBlock's item_tfms")
    check("aug_transforms", mult=(mult, POSITIVE))
    given = {"max_rotate": max_rotate, "max_warp": max_warp, "max_lighting": max_lighting}
    _check_scaled(given, min_zoom, max_zoom, mult)
    return [BatchAugment(AugmentSettings(
        size=size,  # type: ignore[arg-type]  # checked by AugmentSettings
        min_scale=min_scale, do_flip=do_flip, flip_vert=flip_vert, max_rotate=max_rotate * mult,
        min_zoom=min_zoom, max_zoom=max_zoom, max_warp=max_warp * mult, p_affine=p_affine,
        max_lighting=max_lighting * mult, p_lighting=p_lighting, mode=mode, pad_mode=pad_mode, executor=executor)),
        *extra]


def _check_scaled(given: dict[str, float], min_zoom: float, max_zoom: float, mult: float) -> None:
    """The arguments as given, then as ``mult`` scales them: an error names the argument the user passed (and
    ``mult`` when only the scaled value is out of range) with what it accepts."""
    try:
        AugmentSettings(min_zoom=min_zoom, max_zoom=max_zoom, max_rotate=given["max_rotate"],
                        max_warp=given["max_warp"], max_lighting=given["max_lighting"])
    except ParameterError as e:
        raise ParameterError(str(e).replace("AugmentSettings:", "aug_transforms:", 1)) from None
    for name, value in given.items():
        limit = MAGNITUDES[name]
        if not limit.accepts(value * mult):
            below = f"a mult below {limit.high / value:.3g} or " if limit.high is not None and value > 0 else ""
            raise ParameterError(f"aug_transforms: mult={mult:g} scales {name}={value:g} to {value * mult:g}, but "
                                 f"{name} accepts {limit}; give {below}a smaller {name}")


def _uint8_to_float_nchw(x: torch.Tensor, scale: Sequence[float], shift: Sequence[float]) -> torch.Tensor:
    """uint8 (B,H,W,C) -> float32 (B,C,H,W) computing x*scale[c] + shift[c], in the thread pool."""
    if x.device.type != "cpu":
        s = torch.tensor(scale, device=x.device).view(1, -1, 1, 1)
        t = torch.tensor(shift, device=x.device).view(1, -1, 1, 1)
        return x.permute(0, 3, 1, 2).float().mul_(s).add_(t)
    b, h, w, _ = x.shape
    # one float lookup table per channel converts and normalises in a single pass: warp_cv2_float's, with
    # a plan that moves no pixel
    return warp_cv2_float(x, AugmentPlan(eye_stack(b), (h, w), (h, w), np.zeros(b), np.ones(b)), scale, shift)


class IntToFloat(BatchTransform):
    """uint8 images (B,H,W,C) -> float (B,C,H,W) in 0..1, and masks -> int64 class indices.

    Every image block brings one; float images pass through unchanged.

    >>> import torch
    >>> from pipekit.data import BatchContext
    >>> from pipekit.vision import IntToFloat
    >>> ctx = BatchContext(("image", "mask"), 1, False, torch.device("cpu"), key=(0, 0, 0))
    >>> img, mask = torch.full((2, 4, 6, 3), 255, dtype=torch.uint8), torch.ones(2, 4, 6, dtype=torch.uint8)
    >>> x, y = IntToFloat().encode((img, mask), ctx)
    >>> tuple(x.shape), x.dtype, x.max().item(), y.dtype
    ((2, 3, 4, 6), torch.float32, 1.0, torch.int64)
    """

    order: ClassVar[int] = 90

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return tuple(self.encode_element(j, geo, batch[j], ctx) for j, geo in enumerate(ctx.geometry[:len(batch)])) \
            + tuple(batch[len(ctx.geometry):])

    def float_lut(self, j: int, geo: str | None, channels: int, ctx: BatchContext) -> tuple[list, list] | None:
        """(scale, shift) per channel when element ``j`` is a uint8 image this transform turns into floats."""
        return ([1 / 255.0] * channels, [0.0] * channels) if geo == "image" else None

    def encode_element(self, j: int, geo: str | None, x: Any, ctx: BatchContext) -> Any:
        if geo == "image" and x.dtype == torch.uint8:
            c = x.shape[-1]
            return _uint8_to_float_nchw(x, [1 / 255.0] * c, [0.0] * c)
        if geo == "mask" and x.dtype != torch.int64:
            return x.long()
        return x


def image_stats(dl: Any, n: int = 256) -> tuple[list[float], list[float]] | None:
    """Per-channel mean and std (0..1 scale) of ``n`` training images of ``dl`` drawn at random (the loader's seed
    draws them, so the same seed measures the same images), as stored (presized, not augmented), or None when its
    first image input is not stored as pixels. A sample, as fastai's statistics come from a shuffled batch: the
    first items of a folder-sorted data set are often all of one class."""
    dataset, geometry = getattr(dl, "dataset", None), getattr(dl, "geometry", ())
    if dataset is None or not callable(getattr(dataset, "gather", None)) or not len(dataset):
        return None
    j = next((i for i, g in enumerate(geometry[:dl.n_inp]) if g == "image"), None)
    if j is None:
        return None
    seed = getattr(dl, "seed", None)
    rows = np.sort(np.random.default_rng(0 if seed is None else seed).permutation(len(dataset))[:n])
    x = dataset.gather(rows)[j]
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        return None
    if x.dtype == torch.uint8:  # stored as (N, H, W[, C])
        flat = (x.reshape(-1, 1) if x.ndim == 3 else x.reshape(-1, x.shape[-1])).float() / 255
    elif x.is_floating_point():  # float images as (N, [C,] H, W)
        flat = x.reshape(-1, 1) if x.ndim == 3 else x.transpose(0, 1).reshape(x.shape[1], -1).T
        flat = flat.float()
    else:
        return None
    return flat.mean(0).tolist(), flat.std(0).clamp_min(1e-3).tolist()


class Normalize(BatchTransform):
    """Subtract ``mean`` and divide by ``std`` per channel (stats on the 0..1 scale) for input images.

    Takes uint8 (B,H,W,C) or float (B,C,H,W) batches and returns float (B,C,H,W); the uint8 case
    converts and normalises in one pass. ``decode`` undoes it for display. ``Normalize()`` without statistics
    takes them from a batch of training images drawn at random (not augmented) when the loaders are built, as
    the book's ``batch_tfms=Normalize()`` does; they are then kept, and exported, like given ones.

    >>> Normalize.from_stats(*imagenet_stats).mean
    [0.485, 0.456, 0.406]
    """

    order: ClassVar[int] = 85

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if mean is None and std is None:  # learned from a sample of the training images
            self.mean: list[float] | None = None
            self.std: list[float] | None = None
            return
        if mean is None or std is None:
            raise ParameterError("Normalize: give both mean and std (one value per channel), or neither to take "
                                 "them from a sample of the training images")
        mean, std = [float(m) for m in np.ravel(mean)], [float(s) for s in np.ravel(std)]
        # a NaN or infinite statistic makes every normalised pixel NaN (or 0): refused here, where a file's are read too
        check("Normalize", mean=(mean, Is(lambda v: len(v) > 0 and bool(np.isfinite(v).all()),
                                          "one finite value per channel")), std=(std, Is(
            lambda v: len(v) == len(mean) and bool(np.isfinite(v).all()) and min(v) > 0,
            f"{len(mean)} finite positive values (one per channel of mean)")))
        self.mean, self.std = mean, std

    def setup_batches(self, dl: Any) -> None:
        if self.mean is not None:
            return
        stats = image_stats(dl)
        if stats is None:
            raise DataError("Normalize() takes its statistics from the training images, and these loaders give "
                            "none (no image input stored as pixels); give them: Normalize.from_stats(mean, std)")
        self.mean, self.std = stats

    @classmethod
    def from_stats(cls, mean: Sequence[float], std: Sequence[float], cuda: bool = True) -> Normalize:
        """A Normalize of the given statistics (one value per channel, on the 0..1 scale). ``cuda`` (fastai's: put
        them on the GPU, or not) changes nothing: the statistics go to the device each batch is on, as they are
        used, whichever that is."""
        check("Normalize.from_stats", cuda=(cuda, Is(lambda v: isinstance(v, bool), "True or False")))
        return cls(mean, std)

    @classmethod
    def table_proc(cls, given: Normalize) -> Any:
        """What stands for this batch transform in a table's ``procs`` (``procs=[Categorify, FillMissing, Normalize]``
        where ``from pipekit.vision.all import *`` came after ``from pipekit.tabular.all import *``):
        :class:`pipekit.tabular.Normalize`, learning each continuous column's statistics from the training rows, as
        fastai's one ``Normalize`` does for a table. One holding image statistics is refused."""
        if given.mean is not None:
            raise ParameterError(f"TabularProcessor: procs holds pipekit.vision's Normalize with image statistics "
                                 f"(mean={given.mean}), a batch transform for images; for a table give Normalize (or "
                                 "Normalize()), which learns each continuous column's statistics from the training rows")
        return lookup("pipekit.tabular.Normalize")()  # by its registered name: the vision layer imports no table code

    def check_stats(self, channels: int | None = None) -> None:
        """Refuse the statistics of a Normalize read from a fitted recipe (an export's batch transforms) that cannot
        normalise its images: none (a fitted recipe's Normalize holds the ones it was given or took from the first
        training batch as its loaders were built), or statistics for another number of channels than one or the
        images' ``channels`` (None: not known). ``load_learner`` calls it, so such a file is refused at load and not
        at predict; a :class:`FieldError` names the parameter (``params.mean``).

        >>> Normalize.from_stats(*mnist_stats).check_stats(3)
        >>> Normalize.from_stats(*imagenet_stats).check_stats(1)
        Traceback (most recent call last):
        ...
        pipekit.core.errors.FieldError: field 'params.mean' holds statistics for 3 channels, but the recipe's images have 1 ...
        """
        if self.mean is None or self.std is None:
            raise FieldError("params.mean", "is missing (null): a fitted recipe's Normalize holds the per-channel "
                                            "statistics it was given or took from the training images, and this "
                                            "one holds none to normalise images with")
        if channels is not None and len(self.mean) not in (1, channels):
            raise FieldError("params.mean", f"holds statistics for {len(self.mean)} channels, but the recipe's images "
                                            f"have {channels} (a Normalize holds one value, or one per channel)")

    def _stats(self, c: int, like: torch.Tensor | None = None) -> tuple[Any, Any]:
        """Per-channel mean and std for ``c`` channels; as (1, C, 1, 1) tensors ``like`` a float batch."""
        if self.mean is None or self.std is None:
            raise DataError("Normalize() has no statistics yet: it takes them from a sample of the training images when "
                            "DataLoaders are built; elsewhere give them: Normalize.from_stats(mean, std)")
        if len(self.mean) in (1, c):
            mean, std = self.mean * (c // len(self.mean)), self.std * (c // len(self.mean))
            if like is None:
                return mean, std
            return tuple(torch.tensor(v, device=like.device,  # type: ignore[return-value]
                                      dtype=like.dtype).view(1, -1, 1, 1) for v in (mean, std))
        raise DataError(f"Normalize has {len(self.mean)} channel stats but the images have {c} channel(s); "
                        "use stats for that many channels (e.g. ImageBlock(cls='RGB') with imagenet_stats)")

    def __call__(self, batch: Any, ctx: BatchContext | None = None) -> Any:
        """In a loader, a batch with its context; called on a float image tensor of one's own, (B, C, H, W) or
        (C, H, W), that tensor normalised (fastai's ``nrm(t)``; :meth:`decode` undoes it).

        >>> nrm = Normalize.from_stats([0.5], [0.25]); t = torch.full((1, 2, 2), 0.75)
        >>> nrm(t).flatten().tolist(), nrm.decode(nrm(t)).flatten().tolist()
        ([1.0, 1.0, 1.0, 1.0], [0.75, 0.75, 0.75, 0.75])
        """
        if ctx is None and isinstance(batch, torch.Tensor):
            return self._plain(batch, undo=False)
        if ctx is None:
            raise ParameterError("Normalize: called on its own it takes a float image tensor, (B, C, H, W) or "
                                 f"(C, H, W), got {type(batch).__name__}; in loaders give it in batch_tfms")
        return self.encode(batch, ctx)

    def _plain(self, x: torch.Tensor, undo: bool) -> torch.Tensor:
        """A float image tensor of one's own (B, C, H, W) or (C, H, W) normalised, or with ``undo`` restored."""
        if not x.is_floating_point() or x.ndim not in (3, 4):
            raise ParameterError(f"Normalize: called on its own it takes a float image tensor, (B, C, H, W) or "
                                 f"(C, H, W), got {x.dtype} of shape {tuple(x.shape)}")
        one = x.ndim == 3
        xb = x[None] if one else x
        m, s = self._stats(xb.shape[1], xb)
        out = xb * s + m if undo else (xb - m) / s
        return out[0] if one else out

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        return tuple(self.encode_element(j, geo, batch[j], ctx) for j, geo in enumerate(ctx.geometry[:len(batch)])) \
            + tuple(batch[len(ctx.geometry):])

    def float_lut(self, j: int, geo: str | None, channels: int, ctx: BatchContext) -> tuple[list, list] | None:
        """(scale, shift) per channel when element ``j`` is a uint8 input image this transform normalises."""
        if geo != "image" or j >= ctx.n_inp:
            return None
        mean, std = self._stats(channels)
        return [1 / (255.0 * s) for s in std], [-m / s for m, s in zip(mean, std)]

    def encode_element(self, j: int, geo: str | None, x: Any, ctx: BatchContext) -> Any:
        if geo != "image" or j >= ctx.n_inp:
            return x
        if x.dtype == torch.uint8:
            return _uint8_to_float_nchw(x, *self.float_lut(j, geo, x.shape[-1], ctx))  # type: ignore[misc]
        m, s = self._stats(x.shape[1], x)
        return (x - m) / s

    def decode(self, batch: Any, ctx: BatchContext | None = None) -> Any:  # type: ignore[override]
        if ctx is None:  # a tensor this Normalize was called on by itself
            if not isinstance(batch, torch.Tensor):
                raise ParameterError("Normalize.decode: without a batch context it takes a float image tensor, "
                                     f"got {type(batch).__name__}")
            return self._plain(batch, undo=True)
        out = list(batch)
        for j, geo in enumerate(ctx.geometry[:len(batch)]):
            x = batch[j]
            if geo == "image" and j < ctx.n_inp and x.is_floating_point():
                m, s = self._stats(x.shape[1], x)
                out[j] = x * s + m
        return tuple(out)


#: fastai's name for :class:`IntToFloat` (chapter 11's ``after_batch=[IntToFloatTensor, Normalize.from_stats(...)]``)
IntToFloatTensor = IntToFloat


class ToTensor(Transform):
    """fastai's ``ToTensor``, an item transform for the mid-level API (``tls.dataloaders(after_item=[Resize(224),
    ToTensor])``): an image (``PILImage.create``'s uint8 (H, W, C) pixels, a PIL image) becomes a uint8 (C, H, W)
    tensor, as fastai's; the images of a tuple (a ``fastuple``) each, its other values kept; anything else is given
    back as it is. The loader batches such tensors as pipekit's uint8 image batches, which ``IntToFloatTensor`` and
    ``Normalize`` turn into floats (a DataBlock's ``ImageBlock`` does all of this itself).

    >>> from pipekit.vision import PILImage
    >>> ToTensor()((PILImage.create(np.zeros((4, 6), np.uint8)), True))[0].shape
    torch.Size([3, 4, 6])
    """

    order: ClassVar[int] = 20  # after the resizing item transforms (Resize and RandomResizedCrop: order 1), as fastai's

    def encode(self, values: Any) -> Any:
        if isinstance(values, tuple):
            return rebuild(values, [self.encode(v) for v in values])
        pixels = np.asarray(values) if type(values).__module__.startswith("PIL") else values
        if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and (
                pixels.ndim == 2 or pixels.ndim == 3 and pixels.shape[2] in (1, 3, 4)):
            pixels = pixels.view(np.ndarray)
            return torch.from_numpy(np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[:, :, None])
                                    ).permute(2, 0, 1)
        return values


class RandomErasing(BatchTransform):
    """fastai's ``RandomErasing`` (Zhong et al.): on a training batch, each image with probability ``p`` gets 1 to
    ``max_count`` rectangles filled with standard normal noise, each covering ``sl``..``sh`` of its share of the image
    (the image's area over the count) with an aspect log-uniform in ``min_aspect``..``1 / min_aspect``. It runs after
    ``Normalize`` (order 100), on float images, where the noise looks like normalised pixels; validation batches pass
    unchanged. Each image draws its own rectangles, from the batch's seeded ``"erasing"`` stream (fastai's erases the
    same rectangles in every image of a batch).

    >>> t = RandomErasing(p=1.0, sh=0.3)
    >>> ctx = BatchContext(("image", None), 1, True, torch.device("cpu"), key=(0, 0, 0))
    >>> x = torch.zeros(2, 3, 16, 16)
    >>> out = t.encode((x, torch.zeros(2)), ctx)[0]
    >>> bool((out != 0).any()), bool((out == 0).any())  # rectangles of noise, the rest kept
    (True, True)
    """

    order: ClassVar[int] = 100
    param_constraints = {"p": Interval(0, 1), "sl": Interval(0, 1), "sh": Interval(0, 1),
                         "min_aspect": Interval(0, 1, closed="right"), "max_count": Interval(1, 64, integer=True)}

    def __init__(self, p: float = 0.5, sl: float = 0.0, sh: float = 0.3, min_aspect: float = 0.3, max_count: int = 1):
        self.p, self.sl, self.sh, self.min_aspect, self.max_count = p, sl, sh, min_aspect, max_count
        self.check_params()
        if sl > sh:
            raise ParameterError(f"RandomErasing: sl={sl} is above sh={sh}; each rectangle covers sl..sh of the image, "
                                 "so give sl <= sh")

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        if not ctx.train or self.p == 0:
            return batch
        rng = ctx.rng("erasing")
        out = list(batch)
        for j, geo in enumerate(ctx.geometry[:ctx.n_inp]):
            x = batch[j]
            if geo != "image" or not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
                continue
            x = x.clone()
            n, _, h, w = x.shape
            log_ratio = (np.log(self.min_aspect), -np.log(self.min_aspect))
            for i in np.flatnonzero(rng.uniform(size=n) < self.p).tolist():
                count = int(rng.integers(1, self.max_count + 1))
                area = h * w / count
                for _ in range(count):
                    r_area = rng.uniform(self.sl, self.sh) * area
                    aspect = float(np.exp(rng.uniform(*log_ratio)))
                    rh, rw = min(h, round((r_area * aspect) ** 0.5)), min(w, round((r_area / aspect) ** 0.5))
                    if rh == 0 or rw == 0:
                        continue
                    top, left = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
                    noise = torch.from_numpy(rng.standard_normal((x.shape[1], rh, rw)).astype(np.float32))
                    x[i, :, top:top + rh, left:left + rw] = noise.to(x.device, x.dtype)
            out[j] = x
        return tuple(out)
