"""Bounding boxes follow their images, on coco_tiny."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import BatchContext, ColReader, DataBlock, RandomSplitter
from pipekit.vision import (AugmentSettings, BatchAugment, BBoxBlock, BBoxLblBlock, ImageBlock, Resize, aug_transforms,
                            map_points)


def coco_items(n: int = 24) -> pl.DataFrame:
    path = D.path("coco_tiny")
    meta = json.loads((path / "train.json").read_text())
    names = {c["id"]: c["name"] for c in meta["categories"]}
    rows: dict[int, dict[str, Any]] = {
        im["id"]: {"path": str(path / "train" / im["file_name"]), "boxes": [], "labels": []} for im in meta["images"]}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        rows[a["image_id"]]["boxes"].append([x, y, x + w, y + h])
        rows[a["image_id"]]["labels"].append(names[a["category_id"]])
    return pl.DataFrame(list(rows.values())[:n])


def test_coco_boxes_and_labels_through_datablock(tmp_path):
    df = coco_items()
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock(img_size=(128, 128)), BBoxLblBlock), n_inp=1,
                       getters=[ColReader("path"), ColReader("boxes"), ColReader("labels")],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(64)], batch_tfms=aug_transforms())
    dls = dblock.dataloaders(df, bs=6, seed=0, device="cpu")
    vocab = dls.blocks[2].vocab
    assert vocab[0] == "#na#" and set(vocab[1:]) <= {"chair", "couch", "tv", "remote", "book", "vase"}
    x, b, lab = next(iter(dls.valid))
    i0 = int(dls.valid.dataset.idxs[0])
    first = np.asarray(df["boxes"][i0].to_list(), dtype=np.float32) / 64 - 1  # 128 -> 64 px, then -1..1
    assert torch.allclose(b[0, : len(first)], torch.from_numpy(first), atol=1e-5)
    assert torch.isnan(b[0, len(first):]).all() and (lab[0, len(first):] == 0).all()
    assert [vocab[int(k)] for k in lab[0, : len(first)]] == df["labels"][i0].to_list()
    assert vocab[lab[0, : len(first)]] == df["labels"][i0].to_list()  # a row of codes names its labels at once
    label = df["labels"][i0][0]
    assert vocab.o2i[label] == list(vocab).index(label)
    png = dls.show_batch(max_n=4, path=str(tmp_path / "boxes.png"))
    assert png.exists()


def test_boxes_follow_rotation_and_flip():
    n, s = 6, 64
    rng = np.random.default_rng(3)
    boxes = np.zeros((n, 1, 4), np.float32)
    imgs = np.zeros((n, s, s, 1), np.uint8)
    for i in range(n):
        x0, y0 = rng.integers(14, 26, 2)
        x1, y1 = x0 + rng.integers(10, 20), y0 + rng.integers(8, 18)
        imgs[i, y0:y1, x0:x1] = 255
        boxes[i, 0] = np.array([x0, y0, x1, y1]) / s * 2 - 1
    aug = BatchAugment(AugmentSettings(max_rotate=30, max_warp=0.0, max_lighting=0.0, p_affine=1.0, max_zoom=1.2))
    ctx = BatchContext(("image", "bbox"), 1, True, torch.device("cpu"), key=(4,))
    out, moved = aug.encode((torch.from_numpy(imgs), torch.from_numpy(boxes)), ctx)
    for i in range(n):
        ys, xs = np.nonzero(out[i, :, :, 0].numpy() > 127)
        got = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / s * 2 - 1
        assert np.abs(got - moved[i, 0].numpy()).max() < 3 / s * 2, (i, got, moved[i, 0])
    pad = torch.full((1, 2, 4), float("nan"))
    ctx1 = BatchContext(("image", "bbox"), 1, True, torch.device("cpu"), key=(0,))
    assert torch.isnan(aug.encode((torch.from_numpy(imgs[:1]), pad), ctx1)[1]).all()


def test_bad_boxes_are_named():
    df = pl.DataFrame({"path": coco_items(4)["path"], "boxes": [[[5.0, 5.0, 2.0, 9.0]]] * 4})
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock(img_size=(128, 128))), getters=[ColReader("path"),
                       ColReader("boxes")], splitter=RandomSplitter(0.5, seed=0), item_tfms=[Resize(32)])
    with pytest.raises(Exception, match="x0 <= x1"):
        dblock.dataloaders(df, bs=2)


def test_points_and_boxes_without_image_size_say_how_to_fix():
    import polars as pl

    from pipekit.vision import BBoxBlock, PointBlock

    with pytest.raises(ValueError, match=r"PointBlock item 0 has no source image size: put an ImageBlock before it in the DataBlock.s blocks .* give img_size"):
        PointBlock()._encode(pl.Series([[[1.0, 2.0]]]))
    with pytest.raises(ValueError, match=r"BBoxBlock item 0: a dict value needs 'boxes' and 'size' keys"):
        BBoxBlock()._encode(pl.Series([{"boxes": [[0.0, 0.0, 1.0, 1.0]]}]))


def test_box_labels_are_the_data_vocab_and_are_drawn_at_their_boxes(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    df = coco_items()
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock(img_size=(128, 128)), BBoxLblBlock), n_inp=1,
                       getters=[ColReader("path"), ColReader("boxes"), ColReader("labels")],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(64)])
    dls = dblock.dataloaders(df, bs=6, seed=0, device="cpu")
    vocab = dls.datasets.vocab
    assert vocab[0] == "#na#" and dls.vocab == vocab and dls.c == len(vocab)
    figs: list = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figs.append(fig), save(fig, *a, **k))[1])
    dls.valid.show_batch(max_n=4, path=tmp_path / "boxes.png")
    _, _, lab = dls.valid.one_batch()
    for i, ax in enumerate([ax for ax in figs[0].axes if ax.images]):
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        want = [vocab[int(k)] for k in lab[i] if int(k) != 0]
        assert [t.get_text() for t in ax.texts] == want and len(boxes) == len(want)
        for t, box in zip(ax.texts, boxes):  # each label at its box's top-left corner
            assert t.get_position() == pytest.approx(box.get_xy())


def test_get_annotations_reads_coco_as_the_tutorials_datablock_takes_it(tmp_path):
    """fastai's vision tutorial: ``images, lbl_bbox = get_annotations(path/'train.json')``, then getters that look
    each image's boxes and labels up by its name."""
    from pipekit.core import DataError
    from pipekit.data import get_image_files
    from pipekit.vision import get_annotations

    path = D.path("coco_tiny")
    images, lbl_bbox = get_annotations(path / "train.json")
    df = coco_items(10_000)
    assert len(images) == len(df) and [str(path / "train" / f) for f in images] == df["path"].to_list()
    assert [b for b, _ in lbl_bbox] == df["boxes"].to_list() and [lab for _, lab in lbl_bbox] == df["labels"].to_list()
    assert get_annotations(path / "train.json", prefix="train/")[0][0] == "train/" + images[0]
    img2bbox = dict(zip(images, lbl_bbox))
    coco = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files,
                     splitter=RandomSplitter(seed=0), get_y=[lambda o: img2bbox[o.name][0], lambda o: img2bbox[o.name][1]],
                     item_tfms=Resize(64), n_inp=1)
    dls = coco.dataloaders(path / "train", bs=8, seed=0, device="cpu")
    x, boxes, labels = dls.one_batch()
    assert x.shape[0] == boxes.shape[0] == labels.shape[0] == 8 and boxes.shape[-1] == 4
    # a file that is not COCO's says where
    bad = tmp_path / "bad.json"
    bad.write_text('{"categories": [{"id": 1, "name": "cat"}], "images": [{"id": 7, "file_name": "a.jpg"}], '
                   '"annotations": [{"image_id": 7, "bbox": [1, 2, 3], "category_id": 1}]}')
    with pytest.raises(DataError, match=r"bad.json: annotations\[0\].bbox must be \[x, y, width, height\]"):
        get_annotations(bad)
    bad.write_text('{"categories": [], "images": []}')
    with pytest.raises(DataError, match=r"bad.json: a COCO annotation file holds a list 'annotations'; this one has none"):
        get_annotations(bad)
    # the file is data: what it names stays inside the images' folder, and its numbers are numbers
    one = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"image_id": 1, "bbox": [1, 2, 3, 4], "category_id": 1}]}
    for old, new, message in (
            ('"a.jpg"', '"/etc/passwd"', r"images\[0\].file_name='/etc/passwd' must be a path inside the images' folder"),
            ('"a.jpg"', '"../../x.jpg"', r"images\[0\].file_name='../../x.jpg' must be a path inside"),
            ("[1, 2, 3, 4]", "[NaN, 0, Infinity, 5]", r"annotations\[0\].bbox must be \[x, y, width, height\], four finite"),
            ("[1, 2, 3, 4]", "[1, 2, -3, 4]", r"a width and height of at least 0"),
            ("[1, 2, 3, 4]", "[1" + "0" * 400 + ", 2, 3, 4]", r"annotations\[0\].bbox must be"),
            ('"image_id": 1', '"image_id": true', r"annotations\[0\].image_id must be a whole number or text, got True")):
        bad.write_text(json.dumps(one).replace(old, new, 1))
        with pytest.raises(DataError, match=message):
            get_annotations(bad)
    bad.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match=r"bad.json nests JSON deeper than \d+ levels \(a COCO annotation file\)"):
        get_annotations(bad)


def _old_map_boxes(boxes: torch.Tensor, plan) -> torch.Tensor:
    """``map_boxes`` before boxes moved out of the picture became padding: the box around the moved corners,
    clamped to -1..1 (such a box stayed, labelled, as a sliver of no area on the border)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    corners = torch.stack([torch.stack(c, -1) for c in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], 2)
    b, m = boxes.shape[:2]
    moved = map_points(corners.reshape(b, m * 4, 2), plan).reshape(b, m, 4, 2)
    return torch.cat([moved.amin(2), moved.amax(2)], -1).clamp(-1, 1)


def _check_labelled_boxes_are_real(boxes: torch.Tensor, labels: torch.Tensor) -> None:
    """Every labelled box has a width and a height inside -1..1; every other row is padding (NaN, label 0)."""
    labelled, pad = labels != 0, torch.isnan(boxes).any(-1)
    real = boxes[labelled]
    assert torch.isfinite(real).all() and (real >= -1).all() and (real <= 1).all()
    assert (real[:, 2] > real[:, 0]).all() and (real[:, 3] > real[:, 1]).all(), real[(real[:, 2] <= real[:, 0])
                                                                                      | (real[:, 3] <= real[:, 1])]
    assert torch.equal(pad, ~labelled) and torch.isnan(boxes[pad]).all()


def test_boxes_moved_out_of_the_picture_become_padding_with_the_padding_label():
    """fastai's ``clip_remove_empty``: a box augmentation pushes out of the picture is dropped with its label, not
    kept as a labelled sliver of no area on the border (coco_tiny with ``aug_transforms(max_zoom=2,
    max_rotate=30)`` made 58 of 234 labelled boxes such slivers). The boxes left are the ones it gave before."""
    df = coco_items(48)
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock(img_size=(128, 128)), BBoxLblBlock), n_inp=1,
                       getters=[ColReader("path"), ColReader("boxes"), ColReader("labels")],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(32)],
                       batch_tfms=aug_transforms(max_zoom=2.0, max_rotate=30))
    dls = dblock.dataloaders(df, bs=12, seed=0, device="cpu", num_workers=0)
    dl, box_block, label_block = dls.train, dls.blocks[1], dls.blocks[2]
    aug = next(t for t in dl.batch_tfms.tfms if isinstance(t, BatchAugment))
    plan_entries, emptied = dl.batch_plan(0), 0
    for i, (_, boxes, labels) in enumerate(dl.iter_epoch(0)):
        _check_labelled_boxes_are_real(boxes, labels)
        # what the batch was before augmentation, and the boxes the old map_boxes made of it with the same draws
        raw_x, raw_boxes, raw_labels = dl.create_batch(plan_entries[i])
        old = _old_map_boxes(raw_boxes, aug.plan(len(raw_x), tuple(raw_x.shape[1:3]), dl.context(0, i).rng, True))
        kept, was_box = labels != 0, ~torch.isnan(raw_boxes).any(-1)
        assert torch.equal(raw_labels != 0, was_box) and (kept <= was_box).all()
        assert torch.allclose(boxes[kept], old[kept], atol=1e-6) and torch.equal(labels[kept], raw_labels[kept])
        gone = old[was_box & ~kept]
        assert ((gone[:, 2] <= gone[:, 0]) | (gone[:, 3] <= gone[:, 1])).all()  # only boxes of no area were dropped
        emptied += len(gone)
        for b, lab in zip(boxes, labels):  # decoded, each box still has its own label
            assert len(box_block.decode(b)) == len(label_block.decode(lab)) == int((lab != 0).sum())
        if i == 2:
            break
    assert emptied >= 5, emptied  # the draws did push boxes out


def test_boxes_the_item_transform_crops_away_are_padding_in_validation_batches(tmp_path, monkeypatch):
    """Resize's centre crop keeps rows 48..80 of coco_tiny's 128 px images (a 16x64 output): boxes outside that
    band become padding with the padding label in the un-augmented validation batches, ``test_dl`` and
    ``show_batch``; the boxes left are the ones it gave before (clipped to the crop)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    df = coco_items(32)
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock(img_size=(128, 128)), BBoxLblBlock), n_inp=1,
                       getters=[ColReader("path"), ColReader("boxes"), ColReader("labels")],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize((16, 64))],
                       batch_tfms=aug_transforms())
    dls = dblock.dataloaders(df, bs=8, seed=0, device="cpu", num_workers=0)
    vocab = dls.vocab
    rows = [int(r) for r in dls.valid.dataset.idxs]
    got = [dls.valid.one_batch(), next(iter(dls.test_dl(df[rows], with_labels=True)))]
    dropped = 0
    for _, boxes, labels in got:
        _check_labelled_boxes_are_real(boxes, labels)
        for i, r in enumerate(rows):
            # before: the box in the crop's -1..1 frame, clipped (x / 64 - 1, (y - 48) / 16 - 1), labelled
            src = np.asarray(df["boxes"][r].to_list(), dtype=np.float64)
            old = torch.from_numpy(np.clip(np.stack([src[:, 0] / 64 - 1, (src[:, 1] - 48) / 16 - 1, src[:, 2] / 64 - 1,
                                                     (src[:, 3] - 48) / 16 - 1], 1), -1, 1).astype(np.float32))
            keep = torch.from_numpy((old[:, 2] > old[:, 0]).numpy() & (old[:, 3] > old[:, 1]).numpy())
            n = len(src)
            assert torch.equal(labels[i, :n] != 0, keep) and (labels[i, n:] == 0).all()
            assert torch.allclose(boxes[i, :n][keep], old[keep], atol=1e-5)
            assert [vocab[int(k)] for k in labels[i, :n][keep]] == [c for c, k in zip(df["labels"][r], keep) if k]
            dropped += int((~keep).sum())
    assert dropped >= 10, dropped
    # show_batch draws the boxes left, each with its label
    figs: list = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figs.append(fig), save(fig, *a, **k))[1])
    dls.valid.show_batch(max_n=4, path=tmp_path / "boxes.png")
    labels = got[0][2]
    for i, ax in enumerate([ax for ax in figs[0].axes if ax.images]):
        want = [vocab[int(k)] for k in labels[i] if int(k) != 0]
        assert [t.get_text() for t in ax.texts] == want
        assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == len(want)
