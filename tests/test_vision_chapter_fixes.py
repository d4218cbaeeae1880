"""The book's chapters 1, 2, 5, 6 and 7 as a reader types them, on real data: fine_tune after training from
scratch (progressive resizing), summaries shown once in a notebook or REPL, ``using_attr``, CutMix, the items
behind ``dls.valid_ds``, keypoints measured in the decoded image, ``aug_transforms(xtra_tfms=)``,
``PILImage``/``PILImageBW`` and ``pipekit predict`` on exported models."""
from __future__ import annotations

import code
import contextlib
import io
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.component import Component
from pipekit.core.errors import DataError, ExportError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, ColReader, ColSplitter, DataBlock, FuncSplitter, GrandparentSplitter,
                          RandomSplitter, RegexLabeller, get_image_files, parent_label)
from pipekit.learn import Callback, ClassificationInterpretation, CrossEntropyLossFlat, Learner, accuracy, load_learner, simple_cnn
from pipekit.vision import ImageBlock, Normalize, PointBlock, Resize, aug_transforms, xresnet18

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dogscats_dls(size: int, bs: int = 8, get_y=parent_label, step: int = 100):
    """A fortieth of dogscats (30 training, 10 validation photos) at ``size`` pixels."""
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::step],
                       get_y=get_y, splitter=GrandparentSplitter(), item_tfms=Resize(size))
    return dblock.dataloaders(D.path("dogscats"), bs=bs, seed=0)


# ------------------------------------------------------------------ 1. fine_tune on a model of one group
def test_fine_tune_after_training_from_scratch_runs_both_phases_as_fastai():
    pipekit.set_seed(0)
    learn = Learner(dogscats_dls(32), xresnet18(n_out=2), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    learn.fit_one_cycle(1, 3e-3)
    learn.dls = dogscats_dls(48)  # progressive resizing: the same model on larger images
    stem = learn.model[0][0][0].weight.detach().clone()
    peaks, epochs = [], [0]

    class Peaks(Callback):  # the peak learning rate of each fit fine_tune runs (fit sets it before before_fit)
        order = -100

        def before_fit(self):
            peaks.append(self.learn.opt.lrs[0])

        def before_epoch(self):
            epochs[0] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing can be frozen in one group: fastai runs the frozen phase anyway
        learn.fine_tune(1, 1e-3, cbs=Peaks())
    assert epochs[0] == 2  # freeze_epochs + epochs, as fastai's fine_tune(1, 1e-3)
    # the frozen phase at base_lr (slice(base_lr) on one group), then base_lr / 2
    assert peaks == [pytest.approx(1e-3), pytest.approx(1e-3 / 2)]
    assert all(p.requires_grad for p in learn.model.parameters())
    assert not torch.equal(stem, learn.model[0][0][0].weight)  # the body trained too
    peaks.clear()
    epochs[0] = 0
    learn.fine_tune(1, 1e-3, freeze_epochs=0, cbs=Peaks())  # freeze_epochs=0: no frozen phase
    assert epochs[0] == 1 and peaks == [pytest.approx(1e-3 / 2)]


# ------------------------------------------------------------------ 2. shown once
def _repl(namespace: dict, line: str) -> str:
    console = code.InteractiveConsole(namespace)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        console.push(line)
    return out.getvalue()


def test_summaries_and_the_report_show_once_in_a_repl(mnist_learner):
    learn = mnist_learner
    ns = {"learn": learn, "interp": ClassificationInterpretation.from_learner(learn)}
    shown = _repl(ns, "learn.summary()")
    assert shown.count("Total params") == 1 and "\\n" not in shown
    shown = _repl(ns, "interp.print_classification_report()")
    assert shown.count("weighted avg") == 1 and "\\n" not in shown
    shown = _repl(ns, "learn.dls.summary()")
    assert shown.count("Collating a batch of 4") == 1 and "\\n" not in shown
    # the text itself, for a script
    assert "Total params" in learn.summary(show=False) and "precision" in ns["interp"].classification_report()
    assert "Collating a batch of 4" in learn.dls.summary(show=False)


@pytest.mark.filterwarnings("ignore:.*neither the training")
def test_a_datablock_summary_shows_once_and_sets_up_normalize_as_dataloaders_does():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files,
                       splitter=GrandparentSplitter(), get_y=parent_label, batch_tfms=[Normalize()])
    shown = _repl({"dblock": dblock, "path": D.path("mnist_tiny")}, "dblock.summary(path)")
    assert shown.count("Collecting items: 1428 rows") == 1 and "\\n" not in shown
    norm = dblock.dataloaders(D.path("mnist_tiny"), bs=64, seed=0).train.batch_tfms.tfms[0]
    assert isinstance(norm, Normalize) and 0.05 < norm.mean[0] < 0.3 and dblock.batch_tfms[0].mean is None
    # the statistics the loaders learn, from the same training images, and a normalised batch
    assert f"Batch transform {norm!r}: (Tensor(4, 1, 28, 28) float32" in shown
    assert shown == dblock.summary(D.path("mnist_tiny"), show=False)


# ------------------------------------------------------------------ 3. using_attr
def test_using_attr_labels_by_the_file_name_and_is_exported(tmp_path):
    from pipekit.data import UsingAttr, using_attr

    # the name alone: anchored at its start, the pattern could not match the whole path
    get_y = using_attr(RegexLabeller(r"^([a-z]+)\.\d+\.jpg$"), "name")
    dls = dogscats_dls(32, get_y=get_y)
    assert dls.vocab == ["cat", "dog"]
    labels = [dls.vocab[int(y)] for y in dls.valid_ds.stores[1].gather(dls.valid_ds.idxs)]
    assert labels == [f.parent.name[:-1] for f in dls.valid_ds.items]  # cats/cat.1500.jpg -> 'cat'
    learn = Learner(dls, simple_cnn(n_in=3, n_out=2))
    loaded = load_learner(learn.export(tmp_path / "pets.pipekit"))
    stored = loaded.dls.recipe.getters_[1]
    assert isinstance(stored, UsingAttr) and stored.attr == "name" and isinstance(stored.f, RegexLabeller)
    assert loaded.predict(dls.valid_ds.items[0])[0] in ("cat", "dog")
    # every part of a path as pathlib reads it, on the whole column
    paths = [str(f) for f in get_image_files(D.path("dogscats"))[::400]] + ["cat.1.jpg", "a/.hidden", "/x.tar.gz"]
    frame = pl.DataFrame({"path": paths})
    for attr in ("name", "stem", "suffix", "parent"):
        got = using_attr(lambda v: str(v), attr).column(frame).to_list()
        assert got == [str(getattr(PurePosixPath(p), attr)) for p in paths], attr
    # a file naming any other attribute is refused before anything reads it
    record = get_y.to_record()
    for bad in ("__class__", "read_text", "unlink"):
        record["params"]["attr"] = bad
        with pytest.raises((ParameterError, ExportError), match="attr"):
            Component.from_record(record)
    with pytest.raises(ParameterError, match=r"UsingAttr: attr='absolute' is not accepted; expected one of 'name'"):
        using_attr(RegexLabeller(r"(\d+)"), "absolute")


# ------------------------------------------------------------------ 4. CutMix
def _cutmix_run(dls):
    from pipekit.learn import CutMix

    class Spy(CutMix):
        """Keeps the first training batch before and after the cut."""

        def before_batch(self):
            x0 = self.learn.xb[0].clone()
            super().before_batch()
            if not hasattr(self, "seen"):
                self.seen = (x0, self.learn.xb[0].clone(), self.perm.clone(), self.lam.clone(), self.boxes.clone())

    pipekit.set_seed(0)
    spy = Spy(alpha=1.0)
    learn = Learner(dls, simple_cnn(n_in=3, n_out=2), metrics=accuracy)
    learn.fit(1, 1e-3, cbs=[spy])
    return learn, spy


def test_cutmix_pastes_a_box_of_another_image_and_weighs_the_labels_by_its_area():
    from pipekit.learn import CutMix

    dls = dogscats_dls(32)
    learn, spy = _cutmix_run(dls)
    x0, x1, perm, lam, boxes = spy.seen
    h, w = x0.shape[-2:]
    cut = 0
    for i in range(len(x0)):
        top, bottom, left, right = (int(v) for v in boxes[i])
        area = (bottom - top) * (right - left)
        assert float(lam[i]) == pytest.approx(1 - area / (h * w))
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        assert torch.equal(x1[i][:, inside], x0[perm[i]][:, inside]) and torch.equal(x1[i][:, ~inside], x0[i][:, ~inside])
        changed = int((x1[i] != x0[i]).any(0).sum())
        if int(perm[i]) != i and area:  # two photos differ almost everywhere: the changed pixels are the box
            assert 0.9 * area <= changed <= area
            cut += 1
    assert cut >= 2 and float(lam.min()) < 1
    # the loss mixes the two labels' losses by lam
    perm, lam = perm.cpu(), lam.cpu()  # the batches' device may be a GPU
    yb = torch.randint(0, 2, (len(x0),))
    pred = torch.randn(len(x0), 2)
    spy.yb_other, spy.lam = (yb[perm],), lam
    hand = (lam * torch.nn.functional.cross_entropy(pred, yb, reduction="none")
            + (1 - lam) * torch.nn.functional.cross_entropy(pred, yb[perm], reduction="none")).mean()
    spy._orig_loss = spy._reducible = CrossEntropyLossFlat()
    assert float(spy._mixed_loss(pred, yb)) == pytest.approx(float(hand), rel=1e-5)
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)  # put back after training
    # the same seed cuts the same boxes from the same pairs (new loaders: the first ones are an epoch further)
    _, again = _cutmix_run(dogscats_dls(32))
    assert all(torch.equal(a, b) for a, b in zip(spy.seen, again.seen))
    with pytest.raises(ParameterError, match=r"CutMix: alpha=0 is not accepted"):
        CutMix(alpha=0)
    # a batch without a channel axis: the (B, 1, H, W) box would broadcast it to (B, B, H, W)
    grey = CutMix()
    grey.learn = types.SimpleNamespace(xb=(torch.rand(4, 8, 8),), yb=(torch.zeros(4),))
    with pytest.raises(ParameterError, match=r"batches \(B, C, H, W\) of floats.*\(4, 8, 8\)"):
        grey.before_batch()


# ------------------------------------------------------------------ 5. the items behind a subset
def test_valid_ds_items_lead_from_a_top_loss_back_to_its_file(mnist_learner):
    learn = mnist_learner
    dls = learn.dls
    items = dls.valid_ds.items
    assert len(items) == len(dls.valid_ds) and dls.train_ds.vocab == dls.valid_ds.vocab == dls.vocab == ["3", "7"]
    # each item's folder is the label stored at that position
    stored = dls.valid_ds.stores[1].gather(dls.valid_ds.idxs)
    assert [f.parent.name for f in items] == [dls.vocab[int(y)] for y in stored]
    assert all(f.parent.parent.name == "valid" for f in items) and all(f.parent.parent.name == "train"
                                                                      for f in dls.train_ds.items)
    interp = ClassificationInterpretation.from_learner(learn)
    _, idx = interp.top_losses(3)
    for i in idx.tolist():
        f = items[i]
        assert isinstance(f, Path) and f.is_file() and f.parent.name == dls.vocab[int(interp.targs[i])]
    assert items[-1] == items[len(items) - 1] and items[:2] == [items[0], items[1]]
    with pytest.raises(IndexError, match=f"item {len(items)} is out of range: this subset has {len(items)} items"):
        items[len(items)]
    # indexed by what top_losses gives: a 0-d tensor, the index tensor itself, numpy integers and arrays
    assert [items[i] for i in idx] == [items[int(i)] for i in idx.tolist()]
    assert items[idx] == items[idx.numpy()] == items[idx.tolist()] == [items[int(i)] for i in idx.tolist()]
    assert items[np.int64(1)] == items[torch.tensor(1, dtype=torch.int32)] == items[1]
    for f, i in zip(items[idx], idx.tolist()):
        assert f.parent.name == dls.vocab[int(interp.targs[i])]
    assert items[[]] == [] and items[torch.tensor([], dtype=torch.long)] == []
    for bad in (1.0, torch.tensor(1.0), np.float32(1), True, [True, False], torch.tensor([0.5]), "0", [[0, 1]]):
        with pytest.raises(ParameterError, match="integer position"):
            items[bad]
    with pytest.raises(IndexError, match="out of range"):
        items[torch.tensor([0, len(items)])]


# ------------------------------------------------------------------ 6. keypoints in the decoded image
def test_point_block_reads_each_source_size_off_the_decoded_image():
    import json

    from PIL import Image

    root = D.path("coco_tiny")
    meta = json.loads((root / "train.json").read_text())
    first = {}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        first.setdefault(a["image_id"], [x + w / 2, y + h / 2])
    by_name = {i["file_name"]: first[i["id"]] for i in meta["images"] if i["id"] in first}
    files = sorted(root.glob("train/*.jpg"))[:12]
    files = [f for f in files if f.name in by_name]
    images = ImageBlock(cache_dir=False)
    store = images.setup(pl.Series([str(f) for f in files]), np.arange(len(files)))
    centres = pl.Series([torch.tensor(by_name[f.name]) for f in files], dtype=pl.Object)  # the book's tensor([x, y])
    points = PointBlock().setup(centres, np.arange(len(files)), source_sizes=store.orig_sizes)
    for i, f in enumerate(files):
        w, h = Image.open(f).size
        cx, cy = by_name[f.name]
        assert points.data[i][0].tolist() == pytest.approx([cx / w * 2 - 1, cy / h * 2 - 1], abs=1e-5)  # batches'
        assert points.item(i)[0].tolist() == pytest.approx([cx, cy], abs=1e-4)  # an item: the getter's pixels
    with pytest.raises(DataError, match=r"PointBlock item 0: its image is \d+x\d+ \(w x h\) but img_size=\(7, 9\)"):
        PointBlock(img_size=(7, 9)).setup(centres, np.arange(len(files)), source_sizes=store.orig_sizes)


def test_a_datablock_gives_points_their_image_sizes():
    import json

    from PIL import Image

    root = D.path("coco_tiny")
    meta = json.loads((root / "train.json").read_text())
    centre = {}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        centre.setdefault(a["image_id"], [x + w / 2, y + h / 2])
    ids = {i["file_name"]: i["id"] for i in meta["images"]}
    files = [f for f in sorted(root.glob("train/*.jpg")) if ids[f.name] in centre][:24]
    dblock = DataBlock(blocks=(ImageBlock, PointBlock), get_items=lambda _: files,
                       get_y=lambda f: torch.tensor(centre[ids[f.name]]),
                       splitter=RandomSplitter(0.25, seed=0))
    dls = dblock.dataloaders(root, bs=8, seed=0)
    f = dls.valid_ds.items[0]
    w, h = Image.open(f).size
    cx, cy = centre[ids[f.name]]
    assert dls.valid_ds[0][1][0].tolist() == pytest.approx([cx, cy], abs=1e-4)  # the getter's pixels, as fastai's
    assert dls.valid.one_batch()[1][0, 0].tolist() == pytest.approx([cx / w * 2 - 1, cy / h * 2 - 1], abs=1e-5)
    # the sizes come from an image block before the points: none there, the points say how to give them
    with pytest.raises(PipelineStepError, match=r"PointBlock item 0 has no source image size: put an ImageBlock before"):
        DataBlock(blocks=(PointBlock, ImageBlock), n_inp=1, get_items=lambda _: files,
                  getters=[lambda f: torch.tensor(centre[ids[f.name]]), None],
                  splitter=RandomSplitter(0.25, seed=0)).dataloaders(root, bs=8, seed=0)


def test_a_datablock_gives_boxes_their_image_sizes():
    import json

    from pipekit.vision import BBoxBlock, BBoxLblBlock

    root = D.path("coco_tiny")
    meta = json.loads((root / "train.json").read_text())
    names = {c["id"]: c["name"] for c in meta["categories"]}
    boxes: dict[int, list] = {}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append(([x, y, x + w, y + h], names[a["category_id"]]))
    ids = {i["file_name"]: i["id"] for i in meta["images"]}
    files = [f for f in sorted(root.glob("train/*.jpg")) if ids[f.name] in boxes][:24]
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, get_items=lambda _: files,
                       getters=[None, lambda f: [b for b, _ in boxes[ids[f.name]]],
                                lambda f: [c for _, c in boxes[ids[f.name]]]],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize(64))
    dls = dblock.dataloaders(root, bs=8, seed=0)
    f = dls.valid_ds.items[0]
    given = np.asarray([b for b, _ in boxes[ids[f.name]]], dtype=np.float32)
    first = given / 64 - 1  # 128 px sources at 64 px
    assert torch.allclose(dls.valid.one_batch()[1][0, : len(first)], torch.from_numpy(first), atol=1e-5)
    assert torch.allclose(dls.valid_ds[0][1][: len(given)], torch.from_numpy(given))  # an item: the getter's pixels


def test_points_and_boxes_are_placed_by_their_own_photo_size_and_predicted_back_in_its_pixels(tmp_path, monkeypatch):
    """Photos of four sizes (coco_tiny's, cropped): a point or box given in pixels alone is measured in its own
    photo, read as the photo is decoded (each file once), for training, labelled new items and predictions."""
    from PIL import Image
    from torch import nn

    import pipekit.vision.cache as cache
    from pipekit.data import IndexSplitter
    from pipekit.vision import BBoxBlock, BBoxLblBlock

    files = []
    for k, f in enumerate(sorted(D.path("coco_tiny").glob("train/*.jpg"))[:12]):
        w, h = [(128, 128), (96, 128), (128, 80), (112, 64)][k % 4]
        files.append(tmp_path / f.name)
        Image.open(f).crop((0, 0, w, h)).save(files[-1])
    sizes = {f.name: Image.open(f).size for f in files}  # (w, h)

    def get_pt(f):  # the book's tensor([x, y]): a quarter of the width, a tenth of the height
        w, h = sizes[Path(f).name]
        return torch.tensor([w * 0.25, h * 0.1])

    def get_box(f):
        w, h = sizes[Path(f).name]
        return [[w * 0.25, h * 0.1, w * 0.75, h * 0.5]]

    decoded = []
    decode_one = cache._decode_one
    monkeypatch.setattr(cache, "_decode_one", lambda path, *a, **k: decoded.append(path) or decode_one(path, *a, **k))
    squish = Resize(64, method="squish")  # keeps each point's place relative to its photo
    db = DataBlock(blocks=(ImageBlock(cache_dir=False), PointBlock), get_items=lambda p: files, get_y=get_pt,
                   splitter=IndexSplitter([0, 1]), item_tfms=squish)
    dls = db.dataloaders("/", bs=4, seed=0)
    with_points = len(decoded)
    DataBlock(blocks=(ImageBlock(cache_dir=False), CategoryBlock), get_items=lambda p: files,
              get_y=lambda f: f"{sizes[Path(f).name][0]} wide", splitter=IndexSplitter([0, 1]),
              item_tfms=squish).dataloaders("/", bs=4)
    assert with_points == len(decoded) - with_points  # the sizes come with the decoded photos: nothing read again
    stored = torch.cat([b[1] for dl in (dls.train, dls.valid) for b in dl.new(shuffle=False, drop_last=False)])
    assert torch.allclose(stored, torch.tensor([[[-0.5, -0.8]]]).expand_as(stored), atol=1e-5)
    labelled = dls.test_dl(pl.DataFrame({"path": [str(f) for f in files]}), with_labels=True)
    assert torch.allclose(next(iter(labelled))[1], torch.tensor([[[-0.5, -0.8]]]).expand(4, 1, 2), atol=1e-5)

    class Perfect(nn.Module):  # answers files[0]'s point as the model sees it, whatever the photo
        def __init__(self, v):
            super().__init__()
            self.v = nn.Parameter(torch.tensor(v))

        def forward(self, x):
            return self.v.expand(len(x), -1).clone()

    learn = Learner(dls, Perfect(dls.valid.one_batch()[1][0].reshape(-1).tolist()))
    for f in files[:3]:
        w, h = sizes[f.name]
        np.testing.assert_allclose(learn.predict(f)[0], [[w * 0.25, h * 0.1]], atol=0.6)

    boxes = DataBlock(blocks=(ImageBlock(cache_dir=False), BBoxBlock, BBoxLblBlock), n_inp=1,
                      get_items=lambda p: files, getters=[None, get_box, lambda f: ["dog"]],
                      splitter=IndexSplitter([0, 1]), item_tfms=squish).dataloaders("/", bs=4, seed=0)
    got = torch.cat([b[1] for b in boxes.train.new(shuffle=False, drop_last=False)])
    assert torch.allclose(got, torch.tensor([[[-0.5, -0.8, 0.5, 0.0]]]).expand_as(got), atol=1e-5)


# ------------------------------------------------------------------ 7. aug_transforms
def test_aug_transforms_appends_xtra_tfms_and_names_what_it_does_not_take():
    norm = Normalize()
    tfms = aug_transforms(size=24, xtra_tfms=[norm])
    assert len(tfms) == 2 and tfms[-1] is norm and aug_transforms(xtra_tfms=norm)[-1] is norm
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::4],
                       get_y=parent_label, splitter=GrandparentSplitter(), batch_tfms=tfms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xb, _ = dblock.dataloaders(D.path("mnist_tiny"), bs=64, seed=0).one_batch()
    assert xb.shape[-2:] == (24, 24) and abs(float(xb.mean())) < 0.3 and 0.6 < float(xb.std()) < 1.4  # normalised
    with pytest.raises(ParameterError, match=r"aug_transforms: batch=True .* leave batch out"):
        aug_transforms(batch=True)
    with pytest.raises(ParameterError, match=r"aug_transforms: align_corners=True is not available"):
        aug_transforms(align_corners=True)
    with pytest.raises(ParameterError, match=r"xtra_tfms holds Resize.* not a batch transform.* item_tfms"):
        aug_transforms(xtra_tfms=[Resize(32)])
    assert len(aug_transforms(batch=False, align_corners=False)) == 1


def test_chapter_6_points_with_a_size_of_another_aspect_see_the_whole_image():
    """Chapter 6's head-pose DataBlock (no item_tfms, ``batch_tfms=aug_transforms(size=(48, 64))``) on coco_tiny's
    128x128 photos: as in fastai 2.8.12 the whole photo is squished to 48x64, on validation batches too, so the
    centre targets keep their place in -1..1 (fastai: -0.857..0.925) and a ``y_range=(-1, 1)`` model can reach
    them; a centred 4:3 crop put 5 of them outside (-1.064..1.035)."""
    import json

    import cv2
    from PIL import Image

    root = D.path("coco_tiny")
    meta = json.loads((root / "train.json").read_text())
    first: dict[int, list] = {}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        first.setdefault(a["image_id"], [x + w / 2, y + h / 2])
    ctr = {i["file_name"]: first[i["id"]] for i in meta["images"] if i["id"] in first}
    dblock = DataBlock(blocks=(ImageBlock, PointBlock), get_items=get_image_files,
                       get_y=lambda f: torch.tensor(ctr[f.name]), splitter=FuncSplitter(lambda o: o.name.startswith("0000001")),
                       batch_tfms=aug_transforms(size=(48, 64)))
    dls = dblock.dataloaders(root, bs=40, seed=0)
    xb, yb = dls.valid.one_batch()
    files = dls.valid_ds.items[:len(xb)]
    want = torch.tensor([[[ctr[f.name][0] / 64 - 1, ctr[f.name][1] / 64 - 1]] for f in files])
    assert xb.shape[-2:] == (48, 64) and torch.allclose(yb, want, atol=1e-5)
    squish = np.stack([cv2.resize(np.asarray(Image.open(f).convert("RGB")), (64, 48), interpolation=cv2.INTER_LINEAR)
                       for f in files]).transpose(0, 3, 1, 2) / 255
    assert np.abs(xb.numpy() - squish).mean() < 0.005
    ys = torch.cat([y for _, y in dls.valid])
    assert ys.abs().max() <= 1 and ys.min() == pytest.approx(-0.857, abs=1e-3) and ys.max() == pytest.approx(0.925, abs=1e-3)
    xt, yt = dls.train.one_batch()  # training batches: the same squish, then flips, rotation, zoom and warp
    assert xt.shape[-2:] == (48, 64) and yt.abs().max() < 1.5


# ------------------------------------------------------------------ 8. PILImage, PILImageBW
def test_pil_image_names_are_the_image_modes(mnist_learner):
    from pipekit.vision import PILImage, PILImageBW

    files = get_image_files(D.path("mnist_tiny") / "valid")[:3]
    for cls, channels in ((PILImageBW, 1), (PILImage, 3)):
        block = ImageBlock(cls=cls)
        assert type(block.cls) is str and block.to_record()["params"]["cls"] == ("L" if channels == 1 else "RGB")
        dls = DataBlock(blocks=(block, CategoryBlock), get_items=lambda _: files, get_y=parent_label,
                        splitter=FuncSplitter(lambda f: f == files[-1])).dataloaders(D.path("mnist_tiny"), bs=2)
        assert dls.one_batch()[0].shape == (2, channels, 28, 28)
    img = PILImageBW.create(files[0])
    assert img.shape == (28, 28, 1) and PILImage.create(files[0]).shape == (28, 28, 3)
    by_path, by_image = mnist_learner.predict(files[0]), mnist_learner.predict(img)
    assert by_path[0] == by_image[0] and torch.allclose(by_path[2], by_image[2])


# ------------------------------------------------------------------ 9. the command line
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # the pipekit this test imported, wherever the subprocess starts
    here = str(Path(pipekit.__file__).resolve().parents[1])
    env = {**os.environ, "PIPEKIT_QUIET": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "pipekit.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_pipekit_predict_an_image_model(mnist_learner, tmp_path):
    model = mnist_learner.export(tmp_path / "digits.pipekit")
    files = [str(f) for f in get_image_files(D.path("mnist_tiny") / "valid")[::200]]
    done = _cli("predict", str(model), *files, "missing.png", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.strip() == (f"pipekit predict: missing.png: no such file (looked in "
                                                            f"{tmp_path})")
    lines = done.stdout.splitlines()
    assert len(lines) == len(files) >= 3
    # a file of another kind is named with the kinds the model takes (a .txt line was read as an image path)
    (tmp_path / "notes.txt").write_text("hello\n")
    done = _cli("predict", str(model), "notes.txt", str(D.path("adult_sample") / "adult.csv"), cwd=tmp_path)
    assert done.returncode == 1 and not done.stdout
    assert done.stderr.splitlines() == [
        "pipekit predict: notes.txt: this is an image model; it takes image files (.jpg, .png, ...), and "
        "'notes.txt' is a text file",
        f"pipekit predict: {D.path('adult_sample') / 'adult.csv'}: this is an image model; it takes image files "
        "(.jpg, .png, ...), and 'adult.csv' is a table"]
    for f, line in zip(files, lines):
        label, _, probs = mnist_learner.predict(f)
        assert line == f"{f}\t{label}\t{float(probs.max()):.4f}"


def test_pipekit_predict_names_a_file_a_model_reads_wrongly(mnist_learner, tmp_path, monkeypatch, capsys):
    """A model that fails on a file in an unforeseen way (a crafted recipe's getter) names the file and goes on to the
    next one, where it printed a traceback and stopped."""
    import pipekit.cli as cli

    model = mnist_learner.export(tmp_path / "digits.pipekit")
    good = str(next(iter(get_image_files(D.path("mnist_tiny") / "valid"))))
    real = cli.predictions

    def failing(learn, path):
        if path.name == "bad.png":
            raise TypeError("expected str, bytes or os.PathLike object, not dict")
        return real(learn, path)

    monkeypatch.setattr(cli, "predictions", failing)
    (tmp_path / "bad.png").write_bytes(b"")
    assert cli.main(["predict", str(model), str(tmp_path / "bad.png"), good]) == 1
    out, err = capsys.readouterr()
    assert err.strip() == (f"pipekit predict: {tmp_path / 'bad.png'}: this model could not read it (TypeError: "
                           "expected str, bytes or os.PathLike object, not dict)")
    assert out.startswith(good + "\t")


def test_pipekit_predict_rows_of_a_csv_with_a_tabular_model(tmp_path):
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    adult = D.path("adult_sample") / "adult.csv"
    dls = TabularDataLoaders.from_csv(adult, cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"],
                                      y_names="salary", bs=256, seed=0)
    pipekit.set_seed(0)
    learn = tabular_learner(dls, layers=[16], metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    model = learn.export(tmp_path / "adult.pipekit")
    rows = tmp_path / "people.csv"
    rows.write_text("".join(adult.read_text().splitlines(keepends=True)[:13]))  # the header and 12 people, as written
    preds, _, dec = learn.get_preds(dl=dls.test_dl(rows), with_decoded=True)
    done = _cli("predict", str(model), str(rows), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    want = [f"{rows} row {i}\t{dls.vocab[int(d)]}\t{float(p[int(d)]):.4f}" for i, (p, d) in enumerate(zip(preds, dec))]
    assert done.stdout.splitlines() == want and len(want) == 12
    (tmp_path / "notes.txt").write_text("hello\n")
    done = _cli("predict", str(model), "notes.txt", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.strip() == (
        "pipekit predict: notes.txt: this is a table model; it takes tables (.csv, .tsv, .parquet, .arrow), a row "
        "each, and 'notes.txt' is a text file")


def test_pipekit_predict_lines_of_text_with_a_text_model(tmp_path):
    from pipekit.text import AWD_LSTM, TextBlock, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(60), df.filter(pl.col("is_valid")).head(20)])
    dls = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=ColSplitter("is_valid")).dataloaders(df, bs=16, seed=0)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=32, n_layers=1), metrics=accuracy)
    model = learn.export(tmp_path / "reviews.pipekit")
    reviews = df.filter(pl.col("is_valid"))["text"].head(3).to_list()
    texts = tmp_path / "reviews.txt"
    texts.write_text(f"{reviews[0]}\n\n{reviews[1]}\n{reviews[2]}\n", encoding="utf-8")
    done = _cli("predict", str(model), str(texts), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for n, text, line in zip((1, 3, 4), reviews, lines):
        label, _, probs = learn.predict(text)
        where, said, prob = line.split("\t")
        assert (where, said) == (f"{texts} line {n}", label) and float(prob) == pytest.approx(float(probs.max()), abs=2e-4)
    assert len(lines) == 3
    # an image, another kind of file and a file that is not UTF-8 are refused, each named, with the fix
    image = next(iter(get_image_files(D.path("mnist_tiny") / "valid")))
    (tmp_path / "review.md").write_text(reviews[0], encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
    done = _cli("predict", str(model), str(image), "review.md", "latin1.txt", cwd=tmp_path)
    assert done.returncode == 1 and not done.stdout
    takes = ("this is a text model; it takes UTF-8 .txt files, a text a line, or tables (.csv, .tsv, .parquet, "
             ".arrow), a row each")
    assert done.stderr.splitlines() == [
        f"pipekit predict: {image}: {takes}, and {image.name!r} is an image",
        f"pipekit predict: review.md: {takes}, and 'review.md' is none of those",
        "pipekit predict: latin1.txt: byte 3 is not UTF-8 (invalid continuation byte); save the file as UTF-8 text"]
    # trained on a column of a table, it reads a table's rows (texts with line breaks come in no other way)
    table = tmp_path / "reviews.csv"
    df.filter(pl.col("is_valid")).head(3).write_csv(table)
    done = _cli("predict", str(model), str(table), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for i, (text, line) in enumerate(zip(reviews, done.stdout.splitlines())):
        label, _, probs = learn.predict(text)
        where, said, prob = line.split("\t")
        assert (where, said) == (f"{table} row {i}", label) and float(prob) == pytest.approx(float(probs.max()), abs=2e-4)


def test_run_and_summary_say_a_saved_model_is_no_recipe(mnist_learner, tmp_path, monkeypatch, capsys):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)
    mnist_learner.export(tmp_path / "dc.pipekit")
    for cmd in ("run", "summary"):
        with pytest.raises(SystemExit, match=r"'dc.pipekit' is a saved model .* `pipekit predict dc.pipekit FILE...`, "
                                             r"or in Python with load_learner\('dc.pipekit'\)"):
            main([cmd, "dc.pipekit"])
    # the recipes a misspelt name lists are the ones `run --list` lists
    assert main(["run", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    with pytest.raises(SystemExit) as e:
        main(["summary", "no_such_recipe"])
    assert f"built-in recipes: {', '.join(listed)};" in str(e.value)


# ------------------------------------------------------------------ an image array's channel axis
def test_an_array_with_a_channel_last_axis_is_read_channels_last_by_create_and_predict(mnist_learner):
    from pipekit.vision import ImageDecodeError, PILImage
    learn = mnist_learner
    f = learn.dls.valid_ds.items[0]
    grey = PILImage.create(f)[:, :, 0]  # (28, 28) uint8
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    # a few rows of a photo as floats: (4, 28, 3) was read as 4 channels of 28x3 and came out (28, 3, 3)
    strip = rgb[:4].astype(np.float64) / 255
    assert PILImage.create(strip).shape == (4, 28, 3) and np.array_equal(PILImage.create(strip), rgb[:4])
    assert np.array_equal(PILImage.create(rgb[:4]), rgb[:4])  # uint8 and floats read alike
    # channels first only when the last axis cannot be channels; predict reads arrays by the same rule
    chw = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float() / 255
    assert np.array_equal(PILImage.create(chw), rgb) and np.array_equal(PILImage.create(rgb / 255), rgb)
    want = learn.predict(f)
    for value in (rgb, rgb / 255, chw, chw.numpy()):
        got = learn.predict(value)
        assert got[0] == want[0] and torch.allclose(got[2], want[2], atol=1e-5)
    # a tensor whose first and last axes could both be channels names its shape, in create and in predict
    for call in (PILImage.create, learn.predict):
        with pytest.raises(ImageDecodeError, match=r"shape \(3, 28, 3\) could be channels first"):
            call(chw[:, :, :3])
    with pytest.raises(ImageDecodeError, match=r"shape \(5, 28, 2\) has no channel axis"):
        PILImage.create(np.zeros((5, 28, 2), np.float32))


# ------------------------------------------------------------------ TTA on targets that move with the image
def _camvid_dls(batch_tfms=None):
    from pipekit.vision import MaskBlock, image_paths_with

    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images")[:8],
                       get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize((32, 48))],
                       batch_tfms=batch_tfms if batch_tfms is not None else aug_transforms())
    return dblock.dataloaders(path, bs=4, seed=0, device="cpu")


def test_tta_refuses_masks_and_points_which_the_augmentation_moves():
    from pipekit.vision import unet_learner

    learn = unet_learner(_camvid_dls(), "simple_cnn")
    preds, targs = learn.get_preds()  # plain predictions stay available
    assert preds.shape[-2:] == targs.shape[-2:] == (32, 48)
    for kw in ({}, {"beta": None}, {"ds_idx": 0, "n": 1}):
        with pytest.raises(ParameterError, match=r"tta: the targets are mask, which the augmentation moves with the "
                                                 r"image.*use learn\.get_preds\(\)"):
            learn.tta(**kw)
    # points: mnist_tiny digits with their centre pixel as the target
    files = get_image_files(D.path("mnist_tiny") / "train")[::20]
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), PointBlock), get_y=lambda f: torch.tensor([[14.0, 14.0]]),
                       splitter=RandomSplitter(0.25, seed=0), batch_tfms=aug_transforms())
    dls = dblock.dataloaders(files, bs=8, seed=0, device="cpu")
    plearn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2)))
    with pytest.raises(ParameterError, match=r"tta: the targets are points"):
        plearn.tta(n=1)


def test_tta_averages_masks_when_the_augmentation_changes_lighting_only():
    from pipekit.vision import unet_learner

    lighting = aug_transforms(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0.4, p_lighting=1)
    learn = unet_learner(_camvid_dls(lighting), "simple_cnn")
    plain, targs = learn.get_preds()
    (aug, plain2), aug_targs = learn.tta(beta=None, n=2)
    assert torch.equal(aug_targs, targs) and aug.shape == plain.shape and torch.equal(plain2, plain)
    assert not torch.allclose(aug, plain, atol=1e-4)  # the passes saw other pixels
    blended = learn.tta(n=2)[0]
    assert torch.allclose(blended, 0.75 * aug + 0.25 * plain, atol=1e-6)
    # a test loader has no masks to show that they stay put
    test_dl = learn.dls.test_dl(get_image_files(D.path("camvid_tiny") / "images")[:2])
    with pytest.raises(ParameterError, match=r"this loader carries no targets"):
        learn.tta(dl=test_dl)


def test_tta_of_a_classifier_blends_augmented_and_plain_and_returns_the_plain_targets(mnist_learner):
    plain, targs = mnist_learner.get_preds()
    (aug, plain2), aug_targs = mnist_learner.tta(beta=None)
    blended, blended_targs = mnist_learner.tta()
    assert torch.equal(plain2, plain)
    assert torch.equal(aug_targs, targs) and torch.equal(blended_targs, targs)
    assert torch.allclose(blended, 0.75 * aug + 0.25 * plain, atol=1e-6)
    assert torch.equal(mnist_learner.tta()[0], blended)  # deterministic


# ------------------------------------------------------------------ normalisation of loaders a learner is given later
def _norms(dls) -> list:
    return [(t.mean, t.std) for t in dls.train.batch_tfms if isinstance(t, Normalize)]


def test_progressive_resizing_keeps_the_pretrained_normalisation_through_export(tmp_path):
    from pipekit.vision import vision_learner

    learn = vision_learner(dogscats_dls(32), "efficientnet_lite0", pretrained=True, metrics=accuracy)
    want = _norms(learn.dls)
    assert len(want) == 1 and want[0][0] == pytest.approx([127 / 255] * 3) and want[0][1] == pytest.approx([128 / 255] * 3)
    big = dogscats_dls(48)
    assert _norms(big) == []
    learn.dls = big  # the book's progressive resizing
    assert learn.dls is big and _norms(big) == want
    x = learn.dls.valid.one_batch()[0]
    assert x.shape[-2:] == (48, 48) and x.min() < -0.9  # normalised; 0..1 pixels never go below 0
    path = learn.export(tmp_path / "big.pipekit")
    loaded = load_learner(path)
    files = list(get_image_files(D.path("dogscats") / "valid"))[::400]
    for f in files:
        assert torch.allclose(loaded.predict(f)[2], learn.predict(f)[2], atol=1e-5)
    plain = dogscats_dls(32)
    loaded.dls = plain  # a loaded learner normalises them as the exported one did (load_learner's dls_hook)
    assert loaded.dls is plain and _norms(plain) == want


def test_loaders_assigned_later_get_the_statistics_measured_first():
    from pipekit.vision import vision_learner
    from pipekit.vision.transforms import image_stats

    learn = vision_learner(dogscats_dls(32), "simple_cnn")
    first = _norms(learn.dls)
    assert len(first) == 1
    big = dogscats_dls(48, step=70)  # other photos too
    assert not np.allclose(image_stats(big.train)[0], first[0][0], atol=1e-3)  # measuring again would differ
    learn.dls = big
    assert _norms(big) == first
    learn.fit(1, 1e-3)  # trains on them
    assert len(learn.recorder.values) == 1


def test_a_pretrained_learner_after_a_random_weights_one_on_the_same_loaders_gets_its_own_statistics():
    from pipekit.vision import vision_learner

    dls = dogscats_dls(32)
    first = vision_learner(dls, "simple_cnn")
    measured = _norms(dls)
    with pytest.warns(UserWarning, match=r"normalised by a previous learner \(simple_cnn\) .* efficientnet_lite0 "
                                         r"weights .* this learner gets a copy of the loaders normalised that way") as rec:
        second = vision_learner(dls, "efficientnet_lite0", pretrained=True)
    assert not any("Leave Normalize out" in str(w.message) for w in rec)
    assert first.dls is dls and _norms(dls) == measured  # the first learner keeps its statistics
    assert second.dls is not dls
    assert _norms(second.dls) == [([127 / 255] * 3, [128 / 255] * 3)]
    assert [(t.mean, t.std) for t in second.dls.valid.batch_tfms if isinstance(t, Normalize)] == _norms(second.dls)
    files = list(get_image_files(D.path("dogscats") / "valid"))[:2]
    x1, x2 = first.dls.test_dl(files).one_batch()[0], second.dls.test_dl(files).one_batch()[0]
    m, s = measured[0]
    raw = x1 * torch.tensor(s).view(1, -1, 1, 1) + torch.tensor(m).view(1, -1, 1, 1)
    assert torch.allclose(x2, (raw - 127 / 255) / (128 / 255), atol=1e-4)  # the same pixels, each on its scale


def test_unet_learner_normalises_loaders_assigned_later_as_it_was_built():
    from pipekit.vision import unet_learner

    learn = unet_learner(_camvid_dls(), "simple_cnn")
    first = _norms(learn.dls)
    assert len(first) == 1
    other = _camvid_dls(batch_tfms=[])  # no augmentation: another pipeline, with no Normalize
    assert _norms(other) == []
    learn.dls = other
    assert _norms(other) == first
    assert learn.dls.valid.one_batch()[0].min() < -0.5  # normalised inputs, not 0..1 pixels


def test_normalize_measures_a_random_sample_of_the_training_images():
    # mnist_tiny's training folder lists its 3s before its 7s: the first 256 images were all 3s, whose statistics
    # (mean 0.138) are not the training images' (0.126); fastai measures a shuffled batch
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock, Normalize
    from pipekit.vision.transforms import image_stats

    def dls(seed):
        return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                         splitter=GrandparentSplitter(), batch_tfms=Normalize()).dataloaders(
            D.path("mnist_tiny"), bs=64, seed=seed)

    a = dls(1)
    train = a.train.dataset
    assert [a.vocab[int(i)] for i in train.gather(np.arange(256))[1]] == ["3"] * 256
    pixels = train.gather(np.arange(len(train)))[0].float() / 255
    first = float(pixels[:256].mean())
    assert abs(first - float(pixels.mean())) > 0.01  # the first 256 measured alone are off by 0.012
    norm = next(t for t in a.after_batch if isinstance(t, Normalize))
    assert abs(norm.mean[0] - float(pixels.mean())) < 0.008 and abs(norm.std[0] - float(pixels.std())) < 0.008
    assert image_stats(a.train) == image_stats(dls(1).train)  # the loader's seed draws the same sample
