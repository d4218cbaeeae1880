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
transform; either way it runs on batches. In a saved file the pipeline is stored as data (the classes
albumentations lists and their plain parameters, rebuilt without running code from the file).

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
import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from pipekit.core.component import to_data
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.core.registry import register, registered
from pipekit.core.validate import Is, Options
from pipekit.data.transform import BatchContext, BatchTransform
from pipekit.vision.augment import run_chunks

__all__ = ["Albumentations", "albumentations_from_data", "albumentations_to_data"]

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


# ---------------------------------------------------------------------------------------- as data
def albumentations_to_data(t: Any) -> dict[str, Any]:
    """An albumentations transform as plain data (albumentations' own ``to_dict`` description), refusing
    what a file could not rebuild: classes albumentations does not list, functions as parameters."""
    A = _albumentations()
    _register_listed()
    try:
        spec = A.to_dict(t)["transform"]
    except (NotImplementedError, TypeError, ValueError) as e:
        raise ExportError(f"{type(t).__name__} cannot be written as data ({e})") from None

    def check(node: Any) -> None:
        name = node.get("__class_fullname__")
        if f"albumentations.{name}" not in registered(KIND):
            raise ExportError(f"{name} is not a transform albumentations lists, so a file cannot name it")
        for sub in node.get("transforms") or []:
            check(sub)

    check(spec)
    to_data(spec)  # only plain values (numbers, text, lists, dicts) pass
    return spec


def albumentations_from_data(spec: Any, _depth: int = 0) -> Any:
    """Rebuild :func:`albumentations_to_data`'s description: every class is looked up among the ones
    albumentations lists, its parameters are checked against its signature and must be plain values."""
    _register_listed()
    if _depth > 16:
        raise ExportError("an albumentations description is nested more than 16 levels deep")
    if not (isinstance(spec, dict) and isinstance(spec.get("__class_fullname__"), str)):
        raise ExportError("an albumentations transform is stored as {'__class_fullname__': name, ...parameters}")
    params = {k: v for k, v in spec.items() if k != "__class_fullname__"}
    name = spec["__class_fullname__"]
    cls = registered(KIND).get(f"albumentations.{name}")
    if cls is None:
        raise ExportError(f"{name!r:.80} is not a transform albumentations lists; a file may name only those")
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise ExportError(f"albumentations.{name} takes no parameters {unknown}")
    if "transforms" in params:
        if not isinstance(params["transforms"], list):
            raise ExportError(f"albumentations.{name}: 'transforms' must be a list")
        params["transforms"] = [albumentations_from_data(x, _depth + 1) for x in params["transforms"]]
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
    """

    order: ClassVar[int] = 10
    #: runs on the CPU before the transfer to the device (the DataLoader asks this)
    on_host: ClassVar[bool] = True
    param_constraints = {"transform": Is(_is_transform, "an albumentations transform or Compose (or None)"),
                         "on_valid": Options(True, False)}

    def __init__(self, transform: Any = None, on_valid: bool = False):
        if isinstance(transform, dict) and set(transform) == {"albumentations"}:  # as a saved file holds it
            transform = albumentations_from_data(transform["albumentations"])
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
                # augmentation never changes predictions: a saved model without it predicts the same
                warnings.warn(f"Albumentations: the pipeline is left out of the saved file, which will not augment "
                              f"when trained again: {e}", stacklevel=2)
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
