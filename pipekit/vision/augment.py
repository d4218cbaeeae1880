"""Batch augmentation as a plan, then an execution: each image is resampled once.

For every batch :func:`sample_plan` draws, per image, one 3x3 matrix (crop, flip, rotation, zoom and
perspective warp composed) plus lighting parameters, from the batch RNG. The matrix maps output
coordinates to input coordinates in the normalised frame of ``grid_sample`` (-1..1, pixel edges,
``align_corners=False``). Two executors take the same plan:

* :func:`warp_torch`: a batched ``grid_sample`` on any device (the path on a GPU);
* :func:`warp_cv2`: uint8 OpenCV ``warpAffine``/``warpPerspective`` per image in a thread pool, with
  lighting as a 256-entry lookup table (the fast path on a CPU).

They agree within interpolation tolerance. Masks are resampled with nearest neighbours; keypoints are
moved with the inverse matrix (:func:`map_points`).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> plan = sample_plan(4, (256, 256), rng, train=True, size=224, min_scale=0.75)
    >>> plan.matrices.shape, plan.out_size
    ((4, 3, 3), (224, 224))
"""
from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipekit.vision.buffers import pooled_empty

INTERP_MODES = ("bilinear", "nearest")
PAD_MODES = ("reflection", "zeros", "border")
# grid_sample's reflection (align_corners=False) reflects about the pixel edges, like BORDER_REFLECT.
_CV_BORDER = {"reflection": cv2.BORDER_REFLECT, "zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE}
_EPS = 1e-3


@dataclass
class AugmentPlan:
    """Per-image geometry and lighting for one batch.

    ``matrices`` (B, 3, 3): output -> input normalised coordinates. ``out_size`` (h, w).
    ``brightness`` (B,) shift in logit space (0 = unchanged), ``contrast`` (B,) factor in logit space
    (1 = unchanged). ``identity`` is True when nothing needs resampling.
    """

    matrices: np.ndarray
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    brightness: np.ndarray
    contrast: np.ndarray

    @property
    def identity(self) -> bool:
        return (self.in_size == self.out_size and np.allclose(self.matrices, np.eye(3)) and not self.has_lighting)

    @property
    def geometry_identity(self) -> bool:
        return self.in_size == self.out_size and bool(np.allclose(self.matrices, np.eye(3)))

    @property
    def has_lighting(self) -> bool:
        return bool(np.any(self.brightness != 0) or np.any(self.contrast != 1))

    def luts(self) -> np.ndarray:
        """(B, 256) uint8 lookup tables applying each image's lighting to uint8 pixels."""
        x = np.clip(np.arange(256, dtype=np.float64) / 255.0, _EPS, 1 - _EPS)
        logit = np.log(x / (1 - x))
        y = 1 / (1 + np.exp(-(logit[None] * self.contrast[:, None] + self.brightness[:, None])))
        return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def _check(value: str, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of {allowed}")
    return value


def _size2(size: int | Sequence[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    if size is None:
        return default
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"size={size!r} must be None, an int or a (height, width) pair")


def _crop_matrix(in_hw: tuple[int, int], out_hw: tuple[int, int], scale: float, ratio: float,
                 u: float, v: float) -> np.ndarray:
    """Crop covering ``scale`` of the input area with aspect (w/h) ``ratio`` x output aspect, placed at u, v in [0,1]."""
    hi, wi = in_hw
    ho, wo = out_hw
    aspect = (wo / ho) * ratio
    cw = math.sqrt(scale * hi * wi * aspect)
    ch = cw / aspect
    if cw > wi:  # too wide for the image: shrink keeping the aspect
        cw, ch = wi, wi / aspect
    if ch > hi:
        ch, cw = hi, hi * aspect
    sx, sy = cw / wi, ch / hi
    tx, ty = (2 * u - 1) * (1 - sx), (2 * v - 1) * (1 - sy)
    return np.array([[sx, 0, tx], [0, sy, ty], [0, 0, 1]], dtype=np.float64)


def _crop_matrices(in_hw: tuple[int, int], out_hw: tuple[int, int], scale: np.ndarray, ratio: np.ndarray,
                   uv: np.ndarray) -> np.ndarray:
    """:func:`_crop_matrix` for a batch (same arithmetic, elementwise)."""
    hi, wi = in_hw
    ho, wo = out_hw
    aspect = (wo / ho) * ratio
    cw = np.sqrt(scale * hi * wi * aspect)
    ch = cw / aspect
    wide = cw > wi
    cw, ch = np.where(wide, wi, cw), np.where(wide, wi / aspect, ch)
    tall = ch > hi
    ch, cw = np.where(tall, hi, ch), np.where(tall, hi * aspect, cw)
    sx, sy = cw / wi, ch / hi
    m = np.zeros((len(scale), 3, 3))
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = sx, sy, 1.0
    m[:, 0, 2], m[:, 1, 2] = (2 * uv[:, 0] - 1) * (1 - sx), (2 * uv[:, 1] - 1) * (1 - sy)
    return m


def _perspective(dx: float, dy: float) -> np.ndarray:
    """Homography moving the corners of the -1..1 square in a keystone pattern (magnitudes dx, dy)."""
    src = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float32)
    dst = np.array([[-1 - dx, -1 + dy], [1 + dx, -1 - dy], [1 - dx, 1 + dy], [-1 + dx, 1 - dy]], dtype=np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def sample_plan(n: int, in_size: tuple[int, int], rng: np.random.Generator, train: bool = True,
                size: int | Sequence[int] | None = None, do_flip: bool = True, flip_vert: bool = False,
                max_rotate: float = 10.0, min_zoom: float = 1.0, max_zoom: float = 1.1,
                max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75,
                p_lighting: float = 0.75, min_scale: float = 1.0,
                ratio: Sequence[float] = (1.0, 1.0)) -> AugmentPlan:
    """Draw the plan for a batch of ``n`` images of ``in_size`` (h, w) from ``rng``.

    ``train=False`` gives the deterministic validation plan: a centred crop to ``size`` and nothing else.
    """
    in_hw = (int(in_size[0]), int(in_size[1]))
    out_hw = _size2(size, in_hw)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if not train:
        if out_hw != in_hw:
            eye[:] = _crop_matrix(in_hw, out_hw, 1.0, 1.0, 0.5, 0.5)
        return AugmentPlan(eye, in_hw, out_hw, np.zeros(n), np.ones(n))
    ho, wo = out_hw
    # Every draw is made for every image whether used or not, so a plan depends only on the seed.
    scale = rng.uniform(min_scale, 1.0, n)
    log_r = rng.uniform(math.log(ratio[0]), math.log(ratio[1]), n)
    uv = rng.uniform(0, 1, (n, 2))
    flip = rng.uniform(size=(n, 3)) < 0.5
    p = rng.uniform(size=(n, 3)) < p_affine
    angle = np.deg2rad(rng.uniform(-max_rotate, max_rotate, n)) * p[:, 0]
    zoom = np.where(p[:, 1], rng.uniform(min_zoom, max_zoom, n), 1.0)
    zc = rng.uniform(-1, 1, (n, 2))
    warp = rng.uniform(-max_warp, max_warp, (n, 2)) * p[:, 2:3]
    pl = rng.uniform(size=(n, 2)) < p_lighting
    bright = rng.uniform(0.5 - max_lighting, 0.5 + max_lighting, n)
    brightness = np.where(pl[:, 0], np.log(bright / (1 - bright)), 0.0)
    span = -math.log(1 - max_lighting)  # contrast factors are log-uniform in [1 - max, 1 / (1 - max)]
    contrast = np.where(pl[:, 1], np.exp(rng.uniform(-1.0, 1.0, n) * span), 1.0)

    # Rotations act in square pixel units of the output, hence the aspect scaling around them.
    to_px, from_px = np.diag([wo / 2, ho / 2, 1.0]), np.diag([2 / wo, 2 / ho, 1.0])
    # The factors are built for the whole batch and multiplied as stacks (an unused factor is the
    # identity, which leaves the product exact); scalar math.* keeps the values bit-identical to
    # composing the same matrices one image at a time.
    mats = _crop_matrices(in_hw, out_hw, scale, np.array([math.exp(v) for v in log_r]), uv)
    eye3 = np.broadcast_to(np.eye(3), (n, 3, 3))
    if np.any(zoom != 1.0):
        s = 1 / zoom
        zm = eye3.copy()
        zm[:, 0, 0] = zm[:, 1, 1] = s
        zm[:, 0, 2], zm[:, 1, 2] = zc[:, 0] * (1 - s), zc[:, 1] * (1 - s)
        zm[zoom == 1.0] = np.eye(3)
        mats = mats @ zm
    if np.any(angle != 0):
        rot = eye3.copy()
        for i in np.flatnonzero(angle != 0):
            c, s_ = math.cos(angle[i]), math.sin(angle[i])
            rot[i, :2, :2] = [[c, -s_], [s_, c]]
        on = angle != 0
        mats[on] = mats[on] @ from_px @ rot[on] @ to_px
    if np.any(warp != 0):
        per = eye3.copy()
        for i in np.flatnonzero((warp[:, 0] != 0) | (warp[:, 1] != 0)):
            per[i] = _perspective(float(warp[i, 0]), float(warp[i, 1]))
        mats = mats @ per
    if do_flip:
        mats[flip[:, 0]] = mats[flip[:, 0]] @ np.diag([-1.0, 1.0, 1.0])
    if flip_vert:
        mats[flip[:, 1]] = mats[flip[:, 1]] @ np.diag([1.0, -1.0, 1.0])
        if ho == wo:  # the transposes complete the 8 dihedral symmetries
            mats[flip[:, 2]] = mats[flip[:, 2]] @ np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
    return AugmentPlan(mats, in_hw, out_hw, brightness, contrast)


# ------------------------------------------------------------------------------------------- executors
def pixel_matrix(m: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """A normalised output->input matrix as a pixel-centre matrix (what OpenCV's inverse map wants)."""
    hi, wi = in_hw
    ho, wo = out_hw
    a_out = np.array([[2 / wo, 0, 1 / wo - 1], [0, 2 / ho, 1 / ho - 1], [0, 0, 1]])
    b_in = np.array([[wi / 2, 0, (wi - 1) / 2], [0, hi / 2, (hi - 1) / 2], [0, 0, 1]])
    return b_in @ m @ a_out


def pixel_matrices(m: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """:func:`pixel_matrix` for a stack of matrices (B, 3, 3) at once."""
    hi, wi = in_hw
    ho, wo = out_hw
    a_out = np.array([[2 / wo, 0, 1 / wo - 1], [0, 2 / ho, 1 / ho - 1], [0, 0, 1]])
    b_in = np.array([[wi / 2, 0, (wi - 1) / 2], [0, hi / 2, (hi - 1) / 2], [0, 0, 1]])
    return b_in @ np.asarray(m, dtype=np.float64) @ a_out


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def thread_pool() -> ThreadPoolExecutor:
    """The shared pool the OpenCV executor uses (size: $PIPEKIT_AUG_THREADS or the number of cores)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            n = int(os.environ.get("PIPEKIT_AUG_THREADS", 0)) or max(1, min(8, os.cpu_count() or 1))
            _POOL = ThreadPoolExecutor(n, thread_name_prefix="pipekit-aug")
        return _POOL


def warp_cv2(images: np.ndarray | torch.Tensor, plan: AugmentPlan, mode: str = "bilinear",
             pad_mode: str = "reflection", lighting: bool = True, num_threads: int | None = None) -> torch.Tensor:
    """Apply ``plan`` to uint8 images (B, H, W, C) or masks (B, H, W) with OpenCV; returns uint8, same layout.

    Runs per image in the shared thread pool (OpenCV releases the GIL), ``num_threads`` chunks at a time.
    Lighting is never applied to masks (3-D input).
    """
    _check(mode, "mode", INTERP_MODES)
    _check(pad_mode, "pad_mode", PAD_MODES)
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"warp_cv2 needs uint8 images, got {arr.dtype}; use warp_torch for float tensors")
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[..., None]
    b, hi, wi, c = arr.shape
    if (hi, wi) != plan.in_size or b != len(plan.matrices):
        raise ValueError(f"plan is for {len(plan.matrices)} images of {plan.in_size}, got {b} of {(hi, wi)}")
    ho, wo = plan.out_size
    out = pooled_empty((b, ho, wo, c), np.uint8)
    flags = (cv2.INTER_NEAREST if mode == "nearest" else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    border = _CV_BORDER[pad_mode]
    luts = plan.luts() if (lighting and plan.has_lighting and not squeeze) else None
    # The unchanged-lighting table is the identity (checked in the tests): those images skip the lookup.
    lit = None if luts is None else (plan.brightness != 0) | (plan.contrast != 1)
    same = plan.geometry_identity
    pms = None if same else pixel_matrices(plan.matrices, (hi, wi), (ho, wo))
    affine = None if same else (np.abs(pms[:, 2, :2]).max(1) < 1e-12)
    # Every result is written straight into its slot of the batch buffer (dst=): no per-image copies.
    flat = out.reshape(b, ho, wo * c) if c > 1 else out[..., 0]

    def one(i: int) -> None:
        dst = out[i] if c > 1 else flat[i]
        src = arr[i] if c > 1 else arr[i, :, :, 0]
        if same:
            np.copyto(dst, src)
        elif affine[i]:
            cv2.warpAffine(src, pms[i, :2] / pms[i, 2, 2], (wo, ho), dst=dst, flags=flags, borderMode=border)
        else:
            cv2.warpPerspective(src, pms[i], (wo, ho), dst=dst, flags=flags, borderMode=border)
        if luts is not None and lit[i]:
            cv2.LUT(flat[i], luts[i], dst=flat[i])  # in place, while the image is still in cache

    def chunk(lo: int, hi_: int) -> None:
        for i in range(lo, hi_):
            one(i)

    n_thr = num_threads or thread_pool()._max_workers
    if n_thr <= 1 or b <= 1:
        chunk(0, b)
    else:
        bounds = np.linspace(0, b, min(n_thr, b) + 1).astype(int)
        futs = [thread_pool().submit(chunk, int(lo), int(hi_)) for lo, hi_ in zip(bounds[:-1], bounds[1:])]
        for f in futs:
            f.result()
    t = torch.from_numpy(out)
    return t[..., 0] if squeeze else t


def _grid(plan: AugmentPlan, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    ho, wo = plan.out_size
    ys = (torch.arange(ho, device=device, dtype=dtype) * 2 + 1) / ho - 1
    xs = (torch.arange(wo, device=device, dtype=dtype) * 2 + 1) / wo - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, -1, 3)
    m = torch.as_tensor(plan.matrices, device=device, dtype=dtype)
    src = base @ m.transpose(1, 2)  # (B, HW, 3)
    src = src[..., :2] / src[..., 2:3]
    return src.reshape(len(plan.matrices), ho, wo, 2)


def warp_torch(images: torch.Tensor, plan: AugmentPlan, mode: str = "bilinear", pad_mode: str = "reflection",
               lighting: bool = True) -> torch.Tensor:
    """Apply ``plan`` with one batched ``grid_sample``.

    Images: uint8 (B, H, W, C) or float (B, C, H, W) in 0..1 -> float (B, C, h, w) in 0..1.
    Masks: integer (B, H, W) -> same dtype (B, h, w), resampled with nearest neighbours.
    """
    _check(mode, "mode", INTERP_MODES)
    _check(pad_mode, "pad_mode", PAD_MODES)
    is_mask = images.ndim == 3
    if is_mask:
        x = images[:, None].float()
        mode = "nearest"
    elif images.dtype == torch.uint8:
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
    else:
        x = images.float()
    if tuple(x.shape[-2:]) != plan.in_size or x.shape[0] != len(plan.matrices):
        raise ValueError(f"plan is for {len(plan.matrices)} images of {plan.in_size}, got {x.shape[0]} of "
                         f"{tuple(x.shape[-2:])}")
    if not plan.geometry_identity:
        x = F.grid_sample(x, _grid(plan, x.device, torch.float32), mode=mode, padding_mode=pad_mode,
                          align_corners=False)
    if is_mask:
        return x[:, 0].round().to(images.dtype)
    if lighting and plan.has_lighting:
        b = torch.as_tensor(plan.brightness, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        c = torch.as_tensor(plan.contrast, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        x = torch.sigmoid(torch.logit(x.clamp(_EPS, 1 - _EPS)) * c + b)
    return x


def map_points(points: torch.Tensor, plan: AugmentPlan) -> torch.Tensor:
    """Move keypoints (B, N, 2) given as normalised (x, y) in -1..1 of the input to the output frame."""
    inv = torch.as_tensor(np.linalg.inv(plan.matrices), dtype=torch.float64, device=points.device)
    p = points.to(torch.float64)
    homo = torch.cat([p, torch.ones_like(p[..., :1])], -1) @ inv.transpose(1, 2)
    return (homo[..., :2] / homo[..., 2:3]).to(points.dtype)


def map_boxes(boxes: torch.Tensor, plan: AugmentPlan) -> torch.Tensor:
    """Move boxes (B, M, 4) as normalised (x0, y0, x1, y1) to the output frame: the box around the moved
    corners, clipped to the image. Padding rows (NaN) stay NaN.
    """
    x0, y0, x1, y1 = boxes.unbind(-1)
    corners = torch.stack([torch.stack(c, -1) for c in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], 2)  # B,M,4,2
    b, m = boxes.shape[:2]
    moved = map_points(corners.reshape(b, m * 4, 2), plan).reshape(b, m, 4, 2)
    lo, hi = moved.amin(2), moved.amax(2)
    return torch.cat([lo, hi], -1).clamp(-1, 1)
