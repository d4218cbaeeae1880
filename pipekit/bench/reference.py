"""``reference_loader()``: a DataBlock's items, split and transforms as a plain torch ``DataLoader``.

This is the loader a typical PyTorch project writes by hand: a ``Dataset`` whose ``__getitem__`` reads and
decodes one file, resizes it, augments it with albumentations and normalises it, run in worker
processes, batched by ``default_collate``. It does the same work as the DataBlock's plan, per item and
every epoch (nothing is cached), so comparing a pipekit loader with it measures what pipekit's design
buys. Workers set OpenCV to one thread, as albumentations recommends for multiprocessing loaders. They
are started by a fork server and kept between epochs (``persistent_workers``): forking the measuring
process itself is unsafe once threads have run in it (pipekit's loaders, torch's thread pool) and can
hang a worker, and keeping them charges their start to the first epoch only.

Each worker reports its stages (read file, decode, item transforms, augment + normalize, collate) into a
small shared-memory table that :func:`~pipekit.bench.profile` reads, so the reference is profiled stage
by stage like a pipekit loader.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pipekit.vision.decode  # noqa: F401  (checks OpenCV's environment variables before cv2 reads them)

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, check
from pipekit.data.cache import keyed_by_settings
from pipekit.data.transform import BatchTransform, as_list

STAGES = ("read file", "decode", "item transforms", "augment + normalize (per item)", "collate")
_SLOTS = 65  # the main process, then up to 64 workers


class WorkerStageRecorder:
    """Seconds and calls per stage, per process, in shared memory: workers add, the main process reads."""

    def __init__(self, names: Sequence[str] = STAGES):
        self.names = tuple(names)
        self.table = torch.zeros(_SLOTS, len(self.names), 2, dtype=torch.float64).share_memory_()
        self.flag = torch.zeros(1, dtype=torch.int32).share_memory_()
        self._view()

    def _view(self) -> None:
        self._np, self._on = self.table.numpy(), self.flag.numpy()

    def __getstate__(self) -> dict[str, Any]:  # worker processes started by spawn get the shared tensors
        return {"names": self.names, "table": self.table, "flag": self.flag}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._view()

    @property
    def on(self) -> bool:
        return bool(self._on[0])

    def reset(self, on: bool) -> None:
        self.table.zero_()
        self.flag[0] = int(on)

    def add(self, k: int, seconds: float) -> None:
        info = get_worker_info()
        row = self._np[0 if info is None else 1 + info.id % (_SLOTS - 1), k]
        row[0] += seconds
        row[1] += 1

    def totals(self) -> tuple[dict[tuple[str, str], tuple[float, int]], int]:
        """(stage, 'main' or 'workers') -> (seconds, calls), and how many workers reported."""
        t = self.table.numpy().copy()
        out: dict[tuple[str, str], tuple[float, int]] = {}
        for k, name in enumerate(self.names):
            if t[0, k, 1]:
                out[(name, "main")] = (float(t[0, k, 0]), int(t[0, k, 1]))
            if t[1:, k, 1].sum():
                out[(name, "workers")] = (float(t[1:, k, 0].sum()), int(t[1:, k, 1].sum()))
        return out, int((t[1:, :, 1].sum(1) > 0).sum())


def _border(pad_mode: str, item: bool = False) -> int:
    """OpenCV's border for pipekit's ``pad_mode``: the item-level pad's (``Resize(method='pad')``, ``CropPad``) or,
    without ``item``, the augmentation warp's."""
    from pipekit.vision.geometry import CV_BORDER, PAD_BORDER

    return (PAD_BORDER if item else CV_BORDER)[pad_mode]


def _item_step(tfm: Any, train: bool) -> list[Any]:
    """Albumentations doing what a pipekit image item transform does (per item, every epoch)."""
    import albumentations as A

    from pipekit.vision.presize import CropPad, RandomResizedCrop, Resize

    if tfm is None:
        return []
    h, w = tfm.output_size()
    if isinstance(tfm, RandomResizedCrop):
        if train:
            return [A.RandomResizedCrop(size=(h, w), scale=(tfm.min_scale, 1.0), ratio=tfm.ratio)]
        return [A.SmallestMaxSize(max_size=max(h, w)), A.CenterCrop(h, w)]
    if isinstance(tfm, Resize):
        if tfm.method == "squish":
            return [A.Resize(h, w)]
        if tfm.method == "pad":  # fit inside (h, w), then pad to it
            return [A.LongestMaxSize(max_size_hw=(h, w)), A.PadIfNeeded(h, w, border_mode=_border(tfm.pad_mode, item=True))]
        return [A.SmallestMaxSize(max_size_hw=(h, w)), A.CenterCrop(h, w)]  # cover (h, w), then crop to it
    if isinstance(tfm, CropPad):
        return [A.PadIfNeeded(h, w, border_mode=_border(tfm.pad_mode, item=True)), A.CenterCrop(h, w)]
    raise ParameterError(f"reference_loader: no albumentations equivalent for the item transform {tfm!r}")


def _centre_step(in_hw: tuple[int, int] | None, out_hw: tuple[int, int]) -> list[Any]:
    """The validation plan: the largest centred crop with the output's aspect, resized to the output."""
    import albumentations as A

    ho, wo = out_hw
    if in_hw is None:  # sizes vary (no item transform): the shorter side to the output's, then the centre
        return [A.SmallestMaxSize(max_size=max(ho, wo)), A.CenterCrop(ho, wo)]
    hi, wi = in_hw
    aspect = wo / ho
    ch, cw = (hi, hi * aspect) if hi * aspect <= wi else (wi / aspect, wi)
    ch, cw = max(1, round(ch)), max(1, round(cw))
    steps = [] if (ch, cw) == (hi, wi) else [A.CenterCrop(ch, cw)]
    return steps + ([] if (ch, cw) == (ho, wo) else [A.Resize(ho, wo)])


def _dihedral(p: float, hw: tuple[int, int] | None) -> Any:
    """Albumentations drawing what pipekit's dihedral draws do, with probability ``p``, on images of size ``hw``."""
    import albumentations as A

    if hw is not None and hw[0] == hw[1]:  # the 8 symmetries of the square, each as likely
        return A.D4(p=p)
    # a picture that is not square (or of varying sizes) keeps its shape: the identity and 3 mirrors
    both = A.Sequential([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)], p=1.0)
    return A.OneOf([A.NoOp(), A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0), both], p=p)


def _flip_item_step(tfm: Any, train: bool, in_hw: tuple[int, int] | None) -> list[Any]:
    """Albumentations doing what :class:`~pipekit.vision.FlipItem` / :class:`~pipekit.vision.DihedralItem` do:
    a training image mirrored (or given one of the dihedral symmetries) with probability ``p``; validation
    images unchanged."""
    import albumentations as A

    from pipekit.vision.transforms import DihedralItem

    if not train:
        return []
    return [_dihedral(tfm.p, in_hw)] if isinstance(tfm, DihedralItem) else [A.HorizontalFlip(p=tfm.p)]


def _albumentations_step(tfm: Any, train: bool) -> list[Any]:
    """The pipeline of :class:`~pipekit.vision.Albumentations` itself, per item: on training images, and on
    validation images when it runs there too (``on_valid``)."""
    import copy

    import albumentations as A

    if tfm.transform is None or not (train or tfm.on_valid):
        return []
    t = copy.deepcopy(tfm.transform)
    transforms, p = (list(t.transforms), t.p) if isinstance(t, A.Compose) else ([t], 1.0)
    return [A.Sequential(transforms, p=p)]


def _augment_step(aug: Any, train: bool, in_hw: tuple[int, int] | None = None) -> list[Any]:
    """Albumentations doing what a BatchAugment plan does (the same kinds of warp, per item); ``in_hw``: the
    images' size after the item transform, when they all have one."""
    import albumentations as A

    from pipekit.vision.samplers import Brightness, Contrast, Dihedral, Flip, FlipVert, RandomCrop, Rotate, Warp, Zoom

    s = aug.settings
    if aug.extra_samplers:
        raise ParameterError(f"reference_loader: no albumentations equivalent for the samplers {list(aug.extra_samplers)}")
    size = s.size if s.size is None or isinstance(s.size, tuple) else (s.size, s.size)
    border = _border(s.pad_mode)
    interp = cv2.INTER_NEAREST if s.mode == "nearest" else cv2.INTER_LINEAR
    if not train:
        return [] if size is None else _centre_step(in_hw, size)
    out: list[Any] = []
    samplers = s.samplers()
    zoom = next((z for z in samplers if isinstance(z, Zoom)), None)
    rot = next((r for r in samplers if isinstance(r, Rotate)), None)
    for sm in samplers:
        if isinstance(sm, RandomCrop):
            if size is not None:
                aspect = size[1] / size[0]
                out.append(A.RandomResizedCrop(size=size, scale=(sm.min_scale, 1.0),
                                               ratio=(sm.ratio[0] * aspect, sm.ratio[1] * aspect), interpolation=interp))
        elif isinstance(sm, (Zoom, Rotate)):
            if sm is (zoom or rot):  # one affine warp for zoom and rotation, as the plan composes them
                out.append(A.Affine(scale=(zoom.min_zoom, zoom.max_zoom) if zoom else 1.0,
                                    rotate=(-rot.max_deg, rot.max_deg) if rot else 0.0, interpolation=interp,
                                    border_mode=border, p=s.p_affine))
        elif isinstance(sm, Warp):
            # corners move up to magnitude in -1..1 units (magnitude/2 of the side): a uniform spread of that
            # width has the standard deviation albumentations' scale means
            out.append(A.Perspective(scale=(0.0, sm.magnitude / (2 * math.sqrt(3))), interpolation=interp,
                                     border_mode=border, p=sm.p))
        elif isinstance(sm, Flip):
            out.append(A.HorizontalFlip(p=sm.p))
        elif isinstance(sm, FlipVert):
            out.append(A.VerticalFlip(p=sm.p))
        elif isinstance(sm, Dihedral):
            out.append(_dihedral(sm.p, size or in_hw))
        elif isinstance(sm, Contrast):
            if not any(isinstance(b, Brightness) for b in samplers):
                out.append(A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=sm.max_lighting, p=sm.p))
        elif isinstance(sm, Brightness):
            con = next((c for c in samplers if isinstance(c, Contrast)), None)
            # pipekit's (fastai's) brightness moves the mid-grey within 0.5 * (1 -+ max_lighting): half of it
            out.append(A.RandomBrightnessContrast(brightness_limit=sm.max_lighting / 2,
                                                  contrast_limit=con.max_lighting if con else 0.0, p=sm.p))
        else:
            raise ParameterError(f"reference_loader: no albumentations equivalent for the sampler {sm!r}")
    return out


class ReferenceImageDataset(Dataset):
    """Per item: read the file, decode it (OpenCV), item transform, augmentation and normalisation
    (albumentations), then the targets; the way a hand-written PyTorch Dataset does it."""

    def __init__(self, paths: Sequence[str], mode: str, item: Any, augment: Any, targets: Sequence[Any],
                 stage_recorder: WorkerStageRecorder):
        self.paths, self.mode = list(paths), mode
        self.item, self.augment = item, augment
        self.targets = list(targets)
        self.stage_recorder = stage_recorder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        rec = self.stage_recorder
        on = rec.on
        t0 = time.perf_counter()
        data = Path(self.paths[i]).read_bytes()
        t1 = time.perf_counter()
        flag = cv2.IMREAD_GRAYSCALE if self.mode == "L" else getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if img is None:
            raise ValueError(f"{self.paths[i]}: not a readable image")
        if self.mode != "L" and flag == cv2.IMREAD_COLOR:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        t2 = time.perf_counter()
        img = self.item(image=img)["image"] if self.item is not None else img
        t3 = time.perf_counter()
        x = self.augment(image=img)["image"]
        t4 = time.perf_counter()
        if on:
            for k, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                rec.add(k, dt)
        return (x, *(t[i] for t in self.targets))


class _TimedCollate:
    def __init__(self, rec: WorkerStageRecorder):
        self.rec = rec

    def __call__(self, items: list) -> Any:
        t0 = time.perf_counter()
        out = default_collate(items)
        if self.rec.on:
            self.rec.add(len(STAGES) - 1, time.perf_counter() - t0)
        return out


def _worker_init(worker_id: int) -> None:
    # albumentations' advice for multiprocessing loaders: one OpenCV thread per worker process
    cv2.setNumThreads(1)
    cv2.ocl.setUseOpenCL(False)


def reference_blocks(datablock: Any, who: str = "reference_loader") -> list:
    """The blocks of the DataBlock ``datablock``, checked to be what the reference mirrors: one image input, then
    labels or numbers, and item transforms the reference has equivalents for. Raises ParameterError (starting with
    ``who``) naming the blocks or the transforms otherwise; nothing is read, so ``pipekit bench-loader --compare
    reference`` refuses a text or tabular DataBlock, or one with an item transform of the user's own, before
    measuring anything."""
    blocks = datablock._new_blocks()
    n_inp = datablock._n_inp(len(blocks))
    if n_inp != 1 or blocks[0].geometry != "image" or any(b.geometry is not None for b in blocks[1:]):
        raise ParameterError(f"{who}: the reference is written for one image input and label or number targets; this "
                             f"DataBlock has {[type(b).__name__ for b in blocks]}: compare it with another loader "
                             "instead (compare() in Python, or bench-loader --compare other_recipe.py)")
    _split_item_tfms(datablock, blocks[0], who)
    return blocks


def _split_item_tfms(datablock: Any, image_block: Any, who: str = "reference_loader") -> tuple[Any, list, list]:
    """The DataBlock's item transforms as the reference runs them: (the presize, the transforms each block encodes
    its values with, those run on batches). FlipItem, DihedralItem and Albumentations given as item transforms are
    batch transforms (run after the presize, as the DataBlock runs them); any other transform on the images has no
    reference equivalent and is refused (starting with ``who``), naming it: left out, the reference would do less
    work than the DataBlock it is compared with."""
    from pipekit.data.datablock import item_transforms
    from pipekit.vision.presize import find_item_transform

    tfms = item_transforms(datablock.item_tfms)
    on_batches = [t for t in tfms if isinstance(t, BatchTransform)]
    per_item = [t for t in tfms if not isinstance(t, BatchTransform)]
    presize = find_item_transform(per_item)
    # a subclass of the user's (of Resize, FlipItem, Albumentations...) runs its own code, which the reference would
    # replace by the built-in's
    own = [t for t in per_item if (t is not presize or not keyed_by_settings(t)) and t.applies_to(image_block)]
    own += [t for t in [*on_batches, *as_list(datablock.batch_tfms)] if not keyed_by_settings(t)]
    if own:
        raise ParameterError(f"{who}: no equivalent for the transform(s) {own!r:.300} on the images: the "
                             "reference mirrors pipekit's Resize, CropPad, RandomResizedCrop, FlipItem, DihedralItem, "
                             "Albumentations, aug_transforms and Normalize only, and a transform of your own (a "
                             "subclass of one of those included) has no reference equivalent; remove it from "
                             "item_tfms or batch_tfms to compare (dblock.new(item_tfms=[...], batch_tfms=[...]))")
    return presize, per_item, on_batches


def reference_loader(datablock: Any, source: Any = None, bs: int = 64, num_workers: int = 2, subset: str = "train",
                     seed: int = 0, shuffle: bool | None = None, drop_last: bool | None = None) -> DataLoader:
    """The DataBlock's items, split and transforms as a plain ``torch.utils.data.DataLoader`` whose workers
    do every item's work (read, decode, resize, augment with albumentations, normalise) every epoch.

    ``datablock``: a DataBlock with ``source``, or the ``(DataBlock, source)`` pair a recipe's ``datablock()``
    returns. Images (an ``ImageBlock`` input) with ``Resize``/``CropPad``/``RandomResizedCrop``,
    ``FlipItem``/``DihedralItem``, ``Albumentations`` and ``aug_transforms``/``Normalize`` have albumentations
    equivalents; the other blocks (labels, numbers) are encoded once as the DataBlock encodes them. Any other
    transform on the images (a ``Transform`` or function of your own in ``item_tfms`` included) has none, and
    is refused rather than left out, so that the two loaders compared do the same work. ``subset='train'``
    shuffles and augments (the training loader), ``'valid'`` does neither. Raises ParameterError naming what has
    no equivalent.

    >>> from functools import partial
    >>> import pipekit.datasets as D
    >>> from pipekit.bench import reference_loader
    >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    >>> from pipekit.vision import ImageBlock, Resize
    >>> dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), splitter=GrandparentSplitter(),
    ...                    get_items=partial(get_image_files, folders=["train", "valid"]), get_y=parent_label,
    ...                    item_tfms=Resize(24))
    >>> dl = reference_loader(dblock, D.path("mnist_tiny"), bs=16, num_workers=0, subset="valid")
    >>> x, y = next(iter(dl))    # each file read, decoded, resized and scaled to 0..1 by albumentations
    >>> type(dl).__name__, len(dl.dataset), tuple(x.shape), x.dtype, tuple(y.shape)
    ('DataLoader', 699, (16, 1, 24, 24), torch.float32, (16,))
    """
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from pipekit.data.datablock import DataBlock, _check_split
    from pipekit.data.getters import apply_getter
    from pipekit.data.splitters import RandomSplitter
    from pipekit.vision.albu import Albumentations
    from pipekit.vision.transforms import BatchAugment, FlipItem, IntToFloat, Normalize

    if isinstance(datablock, tuple) and len(datablock) == 2:
        datablock, source = datablock
    if not isinstance(datablock, DataBlock) or source is None:
        raise ParameterError("reference_loader: give a DataBlock and its source, or (DataBlock, source)")
    if subset not in ("train", "valid"):
        raise ParameterError(f"reference_loader: subset must be 'train' or 'valid', got {subset!r}")
    check("reference_loader", bs=(bs, Interval(1, None, integer=True)),
          num_workers=(num_workers, Interval(0, None, integer=True)))
    train = subset == "train"
    blocks = reference_blocks(datablock)
    presize, item_tfms, on_batches = _split_item_tfms(datablock, blocks[0])
    items = datablock.items_from(source)
    splitter = datablock.splitter if datablock.splitter is not None else RandomSplitter(0.2)
    tr, va = splitter(items)
    items, tr, va, _ = _check_split(items, np.asarray(tr), np.asarray(va), splitter)
    getters = datablock._resolve_getters(len(blocks))
    rows = tr if train else va
    paths = [str(p) for p in apply_getter(getters[0], items).to_list()]
    targets = []
    for block, getter in zip(blocks[1:], getters[1:]):
        store = block.setup(apply_getter(getter, items), tr, [t.clone() for t in item_tfms])
        sub = store.gather(rows)
        targets.append(sub if isinstance(sub, torch.Tensor) else list(sub))
    item = _item_step(presize, train)
    in_hw = None if presize is None else (int(presize.output_size()[0]), int(presize.output_size()[1]))
    steps: list[Any] = []
    to_float = None
    # in the order the DataBlock's batch pipeline runs them
    for t in sorted(on_batches + as_list(datablock.batch_tfms), key=lambda t: t.order):
        if isinstance(t, FlipItem):  # a BatchAugment of no samplers of its own: before that case
            steps += _flip_item_step(t, train, in_hw)
        elif isinstance(t, Albumentations):
            steps += _albumentations_step(t, train)
        elif isinstance(t, BatchAugment):
            steps += _augment_step(t, train, in_hw)
        elif isinstance(t, Normalize):
            to_float = A.Normalize(mean=t.mean, std=t.std, max_pixel_value=255.0)
        elif isinstance(t, IntToFloat):
            to_float = to_float or A.ToFloat(max_value=255.0)
        elif isinstance(t, BatchTransform):
            raise ParameterError(f"reference_loader: no per-item equivalent for the batch transform {t!r:.300}; "
                                 "remove it from batch_tfms (or item_tfms) to compare")
    steps += [to_float or A.ToFloat(max_value=255.0), ToTensorV2()]
    rec = WorkerStageRecorder()
    ds = ReferenceImageDataset([paths[i] for i in rows], getattr(blocks[0], "cls", "RGB"), A.Compose(item, seed=seed) if item else None,
                               A.Compose(steps, seed=seed), targets, rec)
    shuffle = train if shuffle is None else shuffle
    workers: dict[str, Any] = ({"multiprocessing_context": "forkserver", "persistent_workers": True}
                               if num_workers > 0 else {})
    return DataLoader(ds, batch_size=bs, shuffle=shuffle, drop_last=train if drop_last is None else drop_last,
                      num_workers=num_workers, collate_fn=_TimedCollate(rec), worker_init_fn=_worker_init,
                      generator=torch.Generator().manual_seed(seed), **workers)

