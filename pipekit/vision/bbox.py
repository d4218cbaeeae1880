"""Bounding boxes: ``BBoxBlock`` (boxes per image) and ``BBoxLblBlock`` (their labels), for detection data.

Boxes are (x0, y0, x1, y1) in source pixels (left/top edges at 0); they go through the item transform
and are stored padded to the largest count per image, in -1..1 coordinates (padding rows are NaN), which
batches hold; a data set's item holds the getter's pixels, and ``decode_batch`` gives a batch's in pixels
of each item's decoded image.
Augmentation moves each box with its image (the box around its moved corners, clipped). Labels are
padded with index 0, ``'#na#'``.

A box left with no area, because the item transform cropped it away or augmentation moved it out of the
picture, becomes padding in its place, as fastai's ``clip_remove_empty`` drops it: a NaN row, and
:class:`DropEmptyBoxes` (the batch transform ``BBoxLblBlock`` brings) gives it the label 0. So every
labelled box of a batch has a width and a height inside -1..1, and ``decode``, ``show_batch`` and a loss
that masks ``labels != 0`` see such a box exactly as padding.

>>> BBoxBlock(img_size=(128, 128)).geometry, BBoxLblBlock().draws_on_input
('bbox', True)
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from pipekit.core.errors import DataError, NotInVocab, ParameterError
from pipekit.data.blocks import TransformBlock
from pipekit.data.plotting import set_title
from pipekit.data.store import TensorStore
from pipekit.data.transform import BatchContext, BatchTransform, Transform
from pipekit.data.vocab import CategoryMap, label_code
from pipekit.vision.augment import empty_boxes_to_padding
from pipekit.vision.blocks import CoordBlock, CoordStore, _Coords, to_numpy

PAD_LABEL = "#na#"
BOX_GID = "pipekit-box"  # marks the rectangles BBoxBlock draws, where BBoxLblBlock writes the labels


class Boxes(np.ndarray):
    """An (n, 4) array of boxes whose text form is short (it is used in plot titles)."""

    def __str__(self) -> str:
        return f"{len(self)} box{'es' if len(self) != 1 else ''}"


class TensorBBox(_Coords):
    """Boxes under the name fastai users know: ``TensorBBox.create(boxes)`` (or ``TensorBBox(boxes)``) makes float32
    (n, 4) [x0, y0, x1, y1] boxes, a :class:`Boxes` array, from a list, an array or a tensor. What ``BBoxBlock``
    decodes and ``learn.predict`` gives for boxes is one:
    ``isinstance(b, TensorBBox)``. fastai's are tensors; ``torch.as_tensor(b)`` makes one.

    >>> b = TensorBBox.create([[1, 2, 5, 6]]); b.tolist(), isinstance(b, TensorBBox)
    ([[1.0, 2.0, 5.0, 6.0]], True)
    """

    array_type, width, rows = Boxes, 4, "[[x0, y0, x1, y1], ...]"
    value_form = f"{{'boxes': {rows}, 'size': [h, w]}}"


class BBoxBlock(CoordBlock):
    """Boxes per item: a list of [x0, y0, x1, y1] in pixels of the source image (see :class:`CoordBlock`);
    a value with its own size is ``{"boxes": [[x0, y0, x1, y1], ...], "size": [h, w]}``.

    >>> import pipekit.datasets as D
    >>> from pipekit.data import DataBlock, RandomSplitter
    >>> from pipekit.vision import ImageBlock, Resize
    >>> from pipekit.vision import BBoxBlock, BBoxLblBlock, get_annotations
    >>> path = D.path("coco_tiny")
    >>> images, lbl_bbox = get_annotations(path / "train.json")  # per image: (boxes in pixels, labels)
    >>> ann = dict(zip(images, lbl_bbox))
    >>> dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, item_tfms=Resize(64),
    ...                    get_y=[lambda o: ann[o.name][0], lambda o: ann[o.name][1]],
    ...                    splitter=RandomSplitter(seed=0))
    >>> dls = dblock.dataloaders([path / "train" / f for f in images[:8]], bs=4, seed=0)
    >>> x, boxes, labels = dls.one_batch()
    >>> tuple(boxes.shape), [round(v, 2) for v in boxes[0, 0].tolist()], boxes[0, 1].isnan().all().item()
    ((4, 20, 4), [0.66, -0.68, 0.76, -0.59], True)
    """

    geometry, draws_on_input = "bbox", True
    key, example = "boxes", "[[x0, y0, x1, y1], ...]"

    def _encode(self, raw: pl.Series, source_sizes: np.ndarray | None = None) -> TensorStore:
        values = self.coords(raw, 4, source_sizes)
        out = np.full((len(values), max(1, max(len(b) for b, _ in values)), 4), np.nan, dtype=np.float32)
        pixels = out.copy()  # the getter's boxes, padded alike: a data set's items (see CoordStore)
        for i, (arr, hw) in enumerate(values):
            if not np.isfinite(arr).all() or (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
                raise DataError(f"BBoxBlock item {i}: boxes must be finite [x0, y0, x1, y1] with x0 <= x1 and "
                                f"y0 <= y1, got {arr.tolist()[:4]}")
            out[i, : len(arr)] = self.to_unit(arr, hw)
            pixels[i, : len(arr)] = arr
        # boxes the item transform cropped away (or that had no area) are padding rows in their place, so each
        # stays next to its label; DropEmptyBoxes gives those labels the padding label in every batch
        return CoordStore(empty_boxes_to_padding(torch.from_numpy(out)).numpy(), pixels)

    def item_counts(self, raw: pl.Series) -> np.ndarray:
        """The number of boxes of each value a getter gave (a dict value's ``boxes``), as :meth:`coords` reads them."""
        values = [v.get(self.key) if isinstance(v, dict) else v for v in raw.to_list()]
        return np.array([np.asarray(v if v is not None else [], dtype=np.float64).reshape(-1, 4).shape[0]
                         for v in values], dtype=np.int64)

    def decode(self, value: Any, split_idx: int | None = 1) -> np.ndarray:
        """Boxes as an (n, 4) array (a ``TensorBBox``), padding removed, in the units they come in, whatever the
        item's split: a batch's and a model's in -1..1, a data set's item in the getter's pixels. A loader's
        ``decode_batch`` gives a batch's in pixels of each item's image (:meth:`decode_on_image`)."""
        v = to_numpy(value).reshape(-1, 4)
        return np.ascontiguousarray(v[~np.isnan(v).any(1)]).view(Boxes)

    def decode_prediction(self, value: Any, source_size: tuple[int, int] | None = None, geometry: Any = None) -> Any:
        """Predicted boxes as (n, 4) [x0, y0, x1, y1] in pixels of the image predicted on (``geometry``: the
        batch transforms' validation crop, undone first)."""
        unit = np.asarray(self.decode(value))
        if source_size is None:
            return unit.view(Boxes)
        hw = (int(source_size[0]), int(source_size[1]))
        unit = self.unit_before_batch(unit.reshape(-1, 2, 2), geometry)
        return np.ascontiguousarray(self.to_pixels(unit, hw).reshape(-1, 4)).view(Boxes)

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        from matplotlib.patches import Rectangle

        b = self.decode(value)  # in pixels of the image on ax, as decode_batch gives them (pixel edges at 0)
        for x0, y0, x1, y1 in b:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=2, color="yellow",
                                   gid=BOX_GID))
        set_title(ax, title)


class BoxLabels(Transform):
    """Lists of labels -> padded index rows; index 0 is the padding label ``#na#``.

    Labels keep their values: the learned ones are sorted as Python sorts them (whole numbers by value, text
    alphabetically), so integer category ids stay integers, and each label is looked up as ``Categorize`` looks
    one up (:func:`~pipekit.data.vocab.label_code`): by its value, else as the same label in the vocab's type (``2``
    for ``'2'`` in a vocab of text). A missing label (None or NaN) is refused, naming its item and box, and so are
    flags among numbers.

    >>> t = BoxLabels(); t.setup(pl.Series([[12, 2], [3]])); t.vocab_
    ['#na#', 2, 3, 12]
    >>> t.encode(pl.Series([[12, 2], [3]])).tolist(), t.decode(np.array([3, 1, 0]))
    ([[3, 1], [2, 0]], [12, 2])
    >>> t = BoxLabels(vocab=["12", "2"]); t.setup(pl.Series([["2"]])); t.encode(pl.Series([[2, 12]])).tolist()
    [[2, 1]]
    """

    order = 1

    def __init__(self, vocab: Sequence[Any] | None = None):
        self.vocab = vocab

    def setup(self, values: pl.Series) -> None:
        if self.vocab is not None:
            given = list(self.vocab)
        else:
            labels = [x.item() if isinstance(x, np.generic) else x for x in _box_labels(values)]
            seen = list({(type(x), x): x for x in labels}.values())
            try:
                if len({isinstance(x, bool) for x in seen}) > 1:  # True == 1: the vocab would take one for the other
                    raise TypeError
                given = sorted(set(seen))
            except TypeError:
                kinds = sorted({type(x).__name__ for x in seen})
                raise DataError(f"BBoxLblBlock got box labels of mixed types {kinds} (e.g. "
                                f"{sorted(seen, key=str)[:6]}); give the labels one type (e.g. all text: "
                                "[str(label) for label in labels])") from None
        self.vocab_ = CategoryMap([PAD_LABEL, *[v for v in given if not (isinstance(v, str) and v == PAD_LABEL)]])

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The labels read from a file come back a :class:`~pipekit.data.vocab.CategoryMap`, as fitting made them
        (``vocab[codes]`` names the labels of a row of boxes)."""
        super().state_from_data(state)
        if isinstance(vars(self).get("vocab_"), list):
            self.vocab_ = CategoryMap(self.vocab_)

    def encode(self, values: pl.Series) -> np.ndarray:
        self.check_is_fitted("setup")
        labels = self.vocab_.derived("box labels", lambda v: CategoryMap(v[1:]))  # the vocab less its padding label
        lists = [list(v or []) for v in values.to_list()]
        out = np.zeros((len(lists), max(1, max(len(v) for v in lists))), dtype=np.int64)
        found: dict[tuple[type, Any], int] = {}
        for i, row in enumerate(lists):
            for j, lab in enumerate(row):
                _check_box_label(lab, i, j)
                code = self.vocab_.exact_code(lab)
                if code is None:
                    try:
                        key = (type(lab), lab)
                        code = found.get(key)
                    except TypeError:  # an unhashable value (a list) is no label
                        key, code = None, None
                    if code is None:
                        try:
                            code = label_code(labels, lab) + 1
                        except (NotInVocab, ParameterError):
                            raise DataError(f"box label {lab!r} (item {i}) is not in the training labels "
                                            f"{self.vocab_[1:20]}; add it to the training items or to the vocab "
                                            "(BBoxLblBlock(vocab=[...]))") from None
                        if key is not None:
                            found[key] = code
                out[i, j] = code
        return out

    def decode(self, value: Any) -> list[Any]:
        self.check_is_fitted("setup")
        v = to_numpy(value)
        return [self.vocab_[int(i)] for i in v.reshape(-1) if int(i) != 0]


def _check_box_label(label: Any, item: int, box: int) -> None:
    """Refuse a missing box label (None or NaN): it names no class, and padding is the boxes' business."""
    if label is None or (isinstance(label, (float, np.floating)) and label != label):
        raise DataError(f"BBoxLblBlock got a missing box label ({label!r}) for box {box} of item {item}: every box "
                        "needs a label; drop that box with its label, or give it one (e.g. 'unknown')")


def _box_labels(values: pl.Series) -> list[Any]:
    """Every box label of ``values`` (a list of labels per item), a missing one refused."""
    out = []
    for i, row in enumerate(values.to_list()):
        for j, lab in enumerate(row or []):
            _check_box_label(lab, i, j)
            out.append(lab)
    return out


class DropEmptyBoxes(BatchTransform):
    """Every box of a batch that is padding, or has no area inside the picture, made padding with its label:
    a NaN row in the boxes and the padding label 0 (``'#na#'``) in the labels (fastai's ``clip_remove_empty``).

    It runs after every other batch transform, on training and validation batches alike, so the boxes the
    item transform cropped away (stored as padding rows, their labels kept) and those augmentation moved
    out of the picture lose their labels. The labels of a ``"bbox"`` element are the first later element of
    integer codes with one per box (``BBoxLblBlock`` after ``BBoxBlock``, as in fastai's
    ``blocks=(ImageBlock, BBoxBlock, BBoxLblBlock)``).

    >>> ctx = BatchContext(("image", "bbox", None), 1, True, torch.device("cpu"))
    >>> boxes = torch.tensor([[[-0.5, -0.5, 0.5, 0.5], [-1.0, 0.2, -1.0, 0.6], [float("nan")] * 4]])
    >>> _, boxes, labels = DropEmptyBoxes().encode((torch.zeros(1, 8, 8, 3), boxes, torch.tensor([[2, 1, 0]])), ctx)
    >>> boxes[0, 1].isnan().all().item(), labels.tolist()
    (True, [[2, 0, 0]])
    """

    order = 95  # after the augmentation (20), any transform of the user's (50) and normalisation (90)

    def encode(self, batch: tuple, ctx: BatchContext) -> tuple:  # type: ignore[override]
        out = list(batch)
        geometry = ctx.geometry[:len(batch)]
        for j, geo in enumerate(geometry):
            boxes = out[j]
            if geo != "bbox" or not isinstance(boxes, torch.Tensor) or boxes.ndim != 3 or boxes.shape[-1] != 4:
                continue
            out[j] = boxes = empty_boxes_to_padding(boxes)
            k = next((k for k in range(j + 1, len(out)) if geometry[k] is None and _codes_of(out[k], boxes)), None)
            if k is not None:
                out[k] = out[k].masked_fill(torch.isnan(boxes).any(-1), 0)
        return tuple(out)


def bb_pad(samples: Sequence[Any], pad_idx: int = 0) -> list[tuple]:
    """fastai's ``bb_pad``, a ``before_batch`` step for ``(image, boxes, labels)`` samples with boxes in -1..1: each
    sample's boxes clipped to -1..1 and those left with no width or no height dropped with their labels (fastai's
    ``clip_remove_empty``, by the rule of :func:`~pipekit.vision.augment.empty_boxes_to_padding`), and so are
    padding rows (NaN) it already holds, then its boxes padded with zero rows and its labels with ``pad_idx``, up to the most
    boxes among ``samples``. The image is kept as it is.

    A DataBlock of ``BBoxBlock`` and ``BBoxLblBlock`` needs no such step: its boxes are stored padded (NaN rows,
    label 0, ``'#na#'``) to the most boxes of any image when they are encoded, and :class:`DropEmptyBoxes` makes an
    empty box padding in each batch. ``dsets.dataloaders(before_batch=bb_pad)`` on such data is taken as that
    padding and batches as without it (the boxes stay NaN-padded to the most of any image, not zero-padded to the
    most of the batch: select real boxes by label, ``lbl > 0``).

    >>> s = bb_pad([("a", [[-0.5, -0.5, 0.5, 0.5]], [3]), ("b", [[0, 0, 0.5, 0.5], [0.1, 0.1, 0.1, 0.9]], [1, 2])])
    >>> [(img, box.tolist(), lbl.tolist()) for img, box, lbl in s]
    [('a', [[-0.5, -0.5, 0.5, 0.5]], [3]), ('b', [[0.0, 0.0, 0.5, 0.5]], [1])]
    """
    if isinstance(pad_idx, bool) or not isinstance(pad_idx, (int, np.integer)):
        raise DataError(f"bb_pad: pad_idx is the label of the padding boxes, an int (0, '#na#'), got {pad_idx!r:.60}")
    kept = []
    for i, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 3:
            raise DataError(f"bb_pad: sample {i} is {type(sample).__name__} {sample!r:.80}; bb_pad takes "
                            "(image, boxes, labels) samples, as DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock)) "
                            "makes them")
        boxes = torch.as_tensor(np.asarray(sample[1], dtype=np.float32) if not isinstance(sample[1], torch.Tensor)
                                else sample[1]).reshape(-1, 4)
        labels = torch.as_tensor(sample[2]).reshape(-1)
        if len(labels) != len(boxes):
            raise DataError(f"bb_pad: sample {i} has {len(boxes)} box(es) and {len(labels)} label(s); give one "
                            "label per box")
        # one rule for an empty box, the augmentation's: clipped to -1..1, no width or no height (a box with both
        # sides inverted too) makes a padding row; padding rows (NaN) given in the sample go with them
        boxes = empty_boxes_to_padding(boxes if boxes.is_floating_point() else boxes.float())
        real = ~boxes.isnan().any(-1)
        kept.append((sample[0], boxes[real], labels[real]))
    most = max((len(b) for _, b, _ in kept), default=0)
    return [(img, torch.cat([b, b.new_zeros(most - len(b), 4)]),
             torch.cat([lbl, lbl.new_full((most - len(lbl),), int(pad_idx))])) for img, b, lbl in kept]


#: the geometry of the blocks whose stores already hold what ``bb_pad`` makes (see ``Datasets.dataloaders``)
bb_pad.padded_when_encoded = "bbox"  # type: ignore[attr-defined]


def _codes_of(labels: Any, boxes: torch.Tensor) -> bool:
    """Whether ``labels`` can be the label codes of ``boxes`` (B, M, 4): integers, (B, M)."""
    return (isinstance(labels, torch.Tensor) and not labels.is_floating_point() and labels.dtype != torch.bool
            and tuple(labels.shape) == tuple(boxes.shape[:2]))


class BBoxLblBlock(TransformBlock):
    """The label of each box of a ``BBoxBlock`` (same order), padded with ``#na#``; drawn with its boxes,
    never written in a title. It brings :class:`DropEmptyBoxes`: a box that is padding in a batch (cropped
    away, or moved out of the picture by augmentation) has the padding label.

    >>> import pipekit.datasets as D
    >>> from pipekit.data import DataBlock, RandomSplitter
    >>> from pipekit.vision import ImageBlock, Resize
    >>> from pipekit.vision import BBoxBlock, BBoxLblBlock, get_annotations
    >>> path = D.path("coco_tiny")
    >>> images, lbl_bbox = get_annotations(path / "train.json")  # per image: (boxes in pixels, labels)
    >>> ann = dict(zip(images, lbl_bbox))
    >>> dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, item_tfms=Resize(64),
    ...                    get_y=[lambda o: ann[o.name][0], lambda o: ann[o.name][1]],
    ...                    splitter=RandomSplitter(seed=0))
    >>> dls = dblock.dataloaders([path / "train" / f for f in images[:8]], bs=4, seed=0)
    >>> x, boxes, labels = dls.one_batch()
    >>> dls.vocab, labels[1, :3].tolist(), [dls.vocab[i] for i in labels[1, :2]]  # 0: '#na#', padding
    (['#na#', 'book', 'chair', 'couch', 'remote', 'tv', 'vase'], [5, 2, 0], ['tv', 'chair'])
    """

    draws_on_input = True
    #: the geometry whose items it labels, one label per box: a DataBlock checks the counts agree item by item
    labels_geometry = "bbox"
    param_attrs = {"vocab": "vocab_arg"}

    def __init__(self, vocab: Sequence[Any] | None = None):
        self.vocab_arg = list(vocab) if vocab is not None else None

    def type_transforms(self) -> list[Transform]:
        return [BoxLabels(self.vocab_arg)]

    def block_batch_tfms(self) -> list[BatchTransform]:
        return [DropEmptyBoxes()]

    def item_counts(self, raw: pl.Series) -> np.ndarray:
        """The number of labels of each value a getter gave, as :class:`BoxLabels` encodes them."""
        return np.array([len(list(v or [])) for v in raw.to_list()], dtype=np.int64)

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        """Write each label inside the top-left corner of its box, the boxes a :class:`BBoxBlock` drew on ``ax``
        (in the same order; a label without a box is left out)."""
        boxes = [p for p in ax.patches if p.get_gid() == BOX_GID]
        labels = value if isinstance(value, list) else self.decode(value)  # show_batch gives it decoded
        for box, label in zip(boxes, labels):
            x, y = box.get_xy()
            ax.text(x, y, label, fontsize=8, color="black", va="top", ha="left", clip_on=True,
                    bbox={"facecolor": "yellow", "edgecolor": "none", "pad": 1, "alpha": 0.8})
        set_title(ax, title)


#: the largest annotation file read (COCO's own training annotations are about 450 MB)
MAX_ANNOTATION_BYTES = 1 << 30


def get_annotations(fname: str | os.PathLike, prefix: str | None = None) -> tuple[list[str], list[tuple[list, list]]]:
    """Read a COCO-style annotation file: the file name of every image with at least one box (``prefix`` put
    before each), and for each the ``(boxes, labels)`` pair ``BBoxBlock`` and ``BBoxLblBlock`` read, boxes as
    ``[x0, y0, x1, y1]`` in pixels (COCO writes ``[x, y, width, height]``) and labels as category names.

    The file is data: ids must be whole numbers or text, boxes four finite numbers with a width and height of
    at least 0, names text, and file names relative paths inside the images' folder (no ``..``, not absolute);
    anything else is a :class:`DataError` naming the file and the entry.

    >>> import pipekit.datasets as D
    >>> images, lbl_bbox = get_annotations(D.path("coco_tiny") / "train.json")
    >>> images[0], lbl_bbox[0][1][:2], len(lbl_bbox[0][0]) == len(lbl_bbox[0][1])
    ('000000542959.jpg', ['chair', 'vase'], True)
    """
    from pipekit.core.archive import parse_json
    from pipekit.core.errors import ExportError

    path = Path(fname)
    try:
        meta = parse_json(path.read_bytes(), str(path), max_bytes=MAX_ANNOTATION_BYTES)
    except OSError as e:
        raise DataError(f"{path}: cannot be read as a COCO annotation file: {e}") from None
    except ExportError as e:
        raise DataError(f"{e} (a COCO annotation file)") from None

    def entries(key: str, fields: tuple[str, ...]) -> list[dict]:
        found = meta.get(key) if isinstance(meta, dict) else None
        if not isinstance(found, list):
            raise DataError(f"{path}: a COCO annotation file holds a list {key!r}; this one has "
                            f"{'none' if found is None else type(found).__name__}")
        for i, entry in enumerate(found):
            if not (isinstance(entry, dict) and all(f in entry for f in fields)):
                raise DataError(f"{path}: {key}[{i}] must hold {', '.join(fields)}; it holds {str(entry)[:80]}")
            for f in fields:
                if f.endswith("id") and not (type(entry[f]) is int or type(entry[f]) is str):
                    raise DataError(f"{path}: {key}[{i}].{f} must be a whole number or text, got {str(entry[f])[:40]}")
        return found

    def text(v: Any, where: str) -> str:
        if not isinstance(v, str) or "\x00" in v:
            raise DataError(f"{path}: {where} must be text, got {str(v)[:40]}")
        return v

    names = {c["id"]: text(c["name"], f"categories[{i}].name")
             for i, c in enumerate(entries("categories", ("id", "name")))}
    files: dict[Any, str] = {}
    for i, im in enumerate(entries("images", ("id", "file_name"))):
        name = text(im["file_name"], f"images[{i}].file_name")
        if name.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", name) or (len(name) > 1 and name[1] == ":"):
            raise DataError(f"{path}: images[{i}].file_name={name[:80]!r} must be a path inside the images' folder "
                            "(relative, without '..')")
        files[im["id"]] = name
    boxes: dict[Any, tuple[list, list]] = {}
    for i, a in enumerate(entries("annotations", ("image_id", "bbox", "category_id"))):
        box = a["bbox"]
        finite = isinstance(box, list) and len(box) == 4 and all(
            (type(v) is float and math.isfinite(v)) or (type(v) is int and abs(v) < 2**53) for v in box)
        if not (finite and box[2] >= 0 and box[3] >= 0):
            raise DataError(f"{path}: annotations[{i}].bbox must be [x, y, width, height], four finite numbers with "
                            f"a width and height of at least 0, got {str(box)[:80]}")
        if a["category_id"] not in names or a["image_id"] not in files:
            missing = "category_id" if a["category_id"] not in names else "image_id"
            raise DataError(f"{path}: annotations[{i}].{missing}={a[missing]!r} is not among the file's "
                            f"{'categories' if missing == 'category_id' else 'images'}")
        x, y, w, h = (float(v) for v in box)
        pair = boxes.setdefault(a["image_id"], ([], []))
        pair[0].append([x, y, x + w, y + h])
        pair[1].append(names[a["category_id"]])
    ids = [k for k in files if k in boxes]  # the images' order in the file
    return [(prefix or "") + files[k] for k in ids], [boxes[k] for k in ids]
