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
from typing import ClassVar

import cv2
import numpy as np
import torch

from pipekit.data.transform import BatchContext, BatchTransform
from pipekit.vision.buffers import pooled_empty
from pipekit.vision.augment import (INTERP_MODES, PAD_MODES, map_boxes, map_points, sample_plan, thread_pool,
                                    warp_cv2, warp_torch)

imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
mnist_stats = ([0.131], [0.308])
EXECUTORS = ("auto", "cv2", "torch")


def _image_size(t: torch.Tensor) -> tuple[int, int]:
    if t.ndim == 3:
        return int(t.shape[1]), int(t.shape[2])
    if t.dtype == torch.uint8:
        return int(t.shape[1]), int(t.shape[2])
    return int(t.shape[2]), int(t.shape[3])


class BatchAugment(BatchTransform):
    """Random crop, flips, rotation, zoom, perspective warp and lighting, resampled once per image.

    Training batches (``ctx.train``) get a random plan; validation batches only the deterministic
    centre crop to ``size``. ``executor``: ``'cv2'`` (uint8, threads), ``'torch'`` (grid_sample) or
    ``'auto'`` (cv2 for uint8 batches on the CPU, torch otherwise).
    """

    order: ClassVar[int] = 20

    def __init__(self, size: int | Sequence[int] | None = None, do_flip: bool = True, flip_vert: bool = False,
                 max_rotate: float = 10.0, min_zoom: float = 1.0, max_zoom: float = 1.1,
                 max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75,
                 p_lighting: float = 0.75, mode: str = "bilinear", pad_mode: str = "reflection",
                 min_scale: float = 1.0, ratio: Sequence[float] = (1.0, 1.0), executor: str = "auto"):
        if size is not None and not (isinstance(size, int) or (isinstance(size, (tuple, list)) and len(size) == 2)):
            raise ValueError(f"size={size!r} must be None, an int or (height, width)")
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale={min_scale} must be in (0, 1]")
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f"min_zoom={min_zoom}, max_zoom={max_zoom}: need 0 < min_zoom <= max_zoom")
        if not 0 <= max_lighting < 0.5:
            raise ValueError(f"max_lighting={max_lighting} must be in [0, 0.5)")
        for name, p in (("p_affine", p_affine), ("p_lighting", p_lighting)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name}={p} must be a probability in [0, 1]")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio={ratio!r} must be (low, high) with 0 < low <= high")
        if mode not in INTERP_MODES:
            raise ValueError(f"mode={mode!r} is not supported; use one of {INTERP_MODES}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode={pad_mode!r} is not supported; use one of {PAD_MODES}")
        if executor not in EXECUTORS:
            raise ValueError(f"executor={executor!r} is not supported; use one of {EXECUTORS}")
        self.size = list(size) if isinstance(size, tuple) else size
        self.do_flip, self.flip_vert = do_flip, flip_vert
        self.max_rotate, self.min_zoom, self.max_zoom = max_rotate, min_zoom, max_zoom
        self.max_lighting, self.max_warp = max_lighting, max_warp
        self.p_affine, self.p_lighting = p_affine, p_lighting
        self.mode, self.pad_mode, self.min_scale = mode, pad_mode, min_scale
        self.ratio = list(ratio)
        self.executor = executor

    def plan(self, n: int, in_size: tuple[int, int], rng: np.random.Generator, train: bool):
        return sample_plan(n, in_size, rng, train=train, size=self.size, do_flip=self.do_flip,
                           flip_vert=self.flip_vert, max_rotate=self.max_rotate, min_zoom=self.min_zoom,
                           max_zoom=self.max_zoom, max_lighting=self.max_lighting, max_warp=self.max_warp,
                           p_affine=self.p_affine, p_lighting=self.p_lighting, min_scale=self.min_scale,
                           ratio=self.ratio)

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        spatial = [j for j, k in enumerate(ctx.geometry) if k in ("image", "mask") and j < len(batch)]
        if not spatial:
            return batch
        first = batch[spatial[0]]
        plan = self.plan(first.shape[0], _image_size(first), ctx.rng("augment"), ctx.train)
        if plan.identity:
            return batch
        out = list(batch)
        for j, kind in enumerate(ctx.geometry[:len(batch)]):
            x = batch[j]
            if kind in ("image", "mask"):
                if _image_size(x) != plan.in_size:
                    raise ValueError(f"batch element {j} ({kind}) is {_image_size(x)} but the images are "
                                     f"{plan.in_size}; give images and masks the same item transform")
                use_cv2 = self.executor == "cv2" or (self.executor == "auto" and x.device.type == "cpu"
                                                     and x.dtype == torch.uint8)
                if kind == "mask":
                    out[j] = (warp_cv2(x.to(torch.uint8), plan, "nearest", self.pad_mode, lighting=False).to(x.dtype)
                              if use_cv2 and x.device.type == "cpu" else warp_torch(x, plan, "nearest", self.pad_mode, lighting=False))
                elif use_cv2:
                    if x.dtype != torch.uint8:
                        raise TypeError("executor='cv2' needs uint8 images; put BatchAugment before IntToFloat")
                    out[j] = warp_cv2(x, plan, self.mode, self.pad_mode)
                else:
                    out[j] = warp_torch(x, plan, self.mode, self.pad_mode)
            elif kind == "points":
                out[j] = map_points(x, plan)
            elif kind == "bbox":
                out[j] = map_boxes(x, plan)
        return tuple(out)


def aug_transforms(do_flip: bool = True, flip_vert: bool = False, max_rotate: float = 10.0, min_zoom: float = 1.0,
                   max_zoom: float = 1.1, max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75,
                   p_lighting: float = 0.75, size: int | Sequence[int] | None = None, mode: str = "bilinear",
                   pad_mode: str = "reflection", min_scale: float = 1.0, executor: str = "auto",
                   mult: float = 1.0) -> list[BatchTransform]:
    """The standard augmentation set as one :class:`BatchAugment` (``mult`` scales the magnitudes).

    >>> aug_transforms(size=128, min_scale=0.5)[0].size
    128
    """
    if mult <= 0:
        raise ValueError(f"mult={mult} must be positive")
    return [BatchAugment(size=size, do_flip=do_flip, flip_vert=flip_vert, max_rotate=max_rotate * mult,
                         min_zoom=min_zoom, max_zoom=1 + (max_zoom - 1) * mult,
                         max_lighting=max_lighting * mult, max_warp=max_warp * mult,
                         p_affine=p_affine, p_lighting=p_lighting, mode=mode, pad_mode=pad_mode,
                         min_scale=min_scale, executor=executor)]


def _uint8_to_float_nchw(x: torch.Tensor, scale: Sequence[float], shift: Sequence[float]) -> torch.Tensor:
    """uint8 (B,H,W,C) -> float32 (B,C,H,W) computing x*scale[c] + shift[c], in the thread pool."""
    if x.device.type != "cpu":
        s = torch.tensor(scale, device=x.device).view(1, -1, 1, 1)
        t = torch.tensor(shift, device=x.device).view(1, -1, 1, 1)
        return x.permute(0, 3, 1, 2).float().mul_(s).add_(t)
    arr = x.numpy()
    b, h, w, c = arr.shape
    out = pooled_empty((b, c, h, w), np.float32)
    # One float lookup table per channel does the conversion and the normalisation in a single pass.
    luts = [(np.arange(256, dtype=np.float64) * scale[ch] + shift[ch]).astype(np.float32).reshape(1, 256)
            for ch in range(c)]

    def chunk(lo: int, hi: int) -> None:
        # one set of uint8 planes per chunk, reused for every image of it (no allocation per image)
        planes = [np.empty((h, w), np.uint8) for _ in range(c)] if c > 1 else None
        for i in range(lo, hi):
            src = cv2.split(arr[i], planes) if c > 1 else [arr[i, :, :, 0]]
            for ch in range(c):
                cv2.LUT(src[ch], luts[ch], dst=out[i, ch])

    n = min(thread_pool()._max_workers, b)
    if n <= 1:
        chunk(0, b)
    else:
        bounds = np.linspace(0, b, n + 1).astype(int)
        for f in [thread_pool().submit(chunk, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]:
            f.result()
    return torch.from_numpy(out)


class IntToFloat(BatchTransform):
    """uint8 images (B,H,W,C) -> float (B,C,H,W) in 0..1, and masks -> int64 class indices.

    Every image block brings one; float images pass through unchanged.
    """

    order: ClassVar[int] = 90

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        out = list(batch)
        for j, kind in enumerate(ctx.geometry[:len(batch)]):
            x = batch[j]
            if kind == "image" and x.dtype == torch.uint8:
                c = x.shape[-1]
                out[j] = _uint8_to_float_nchw(x, [1 / 255.0] * c, [0.0] * c)
            elif kind == "mask" and x.dtype != torch.int64:
                out[j] = x.long()
        return tuple(out)


class Normalize(BatchTransform):
    """Subtract ``mean`` and divide by ``std`` per channel (stats on the 0..1 scale) for input images.

    Takes uint8 (B,H,W,C) or float (B,C,H,W) batches and returns float (B,C,H,W); the uint8 case
    converts and normalises in one pass. ``decode`` undoes it for display.

    >>> Normalize.from_stats(*imagenet_stats).mean
    [0.485, 0.456, 0.406]
    """

    order: ClassVar[int] = 85

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        mean, std = [float(m) for m in np.ravel(mean)], [float(s) for s in np.ravel(std)]
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean ({len(mean)} values) and std ({len(std)} values) need one value per channel")
        if min(std) <= 0:
            raise ValueError(f"std={std} must be positive")
        self.mean, self.std = mean, std

    @classmethod
    def from_stats(cls, mean: Sequence[float], std: Sequence[float]) -> Normalize:
        return cls(mean, std)

    def _stats(self, c: int) -> tuple[list[float], list[float]]:
        if len(self.mean) == c:
            return self.mean, self.std
        if len(self.mean) == 1:
            return self.mean * c, self.std * c
        raise ValueError(f"Normalize has {len(self.mean)} channel stats but the images have {c} channel(s); "
                         "use stats for that many channels (e.g. ImageBlock(cls='RGB') with imagenet_stats)")

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        out = list(batch)
        for j, kind in enumerate(ctx.geometry[:len(batch)]):
            if kind != "image" or j >= ctx.n_inp:
                continue
            x = batch[j]
            if x.dtype == torch.uint8:
                mean, std = self._stats(x.shape[-1])
                out[j] = _uint8_to_float_nchw(x, [1 / (255.0 * s) for s in std], [-m / s for m, s in zip(mean, std)])
            else:
                mean, std = self._stats(x.shape[1])
                m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
                s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
                out[j] = (x - m) / s
        return tuple(out)

    def decode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        out = list(batch)
        for j, kind in enumerate(ctx.geometry[:len(batch)]):
            x = batch[j]
            if kind == "image" and j < ctx.n_inp and x.is_floating_point():
                mean, std = self._stats(x.shape[1])
                m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
                s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
                out[j] = x * s + m
        return tuple(out)
