"""The book's chapters 6 and 18 beside fastai 2.8.12: a point getter giving the wrong number of values, the units of
points and boxes in a data set's items and in decoded batches, ``recorder.lrs``/``losses`` after ``lr_find`` and
``dls.decode(b)`` as a batch (coco_tiny's box centres as chapter 6's head centres, mnist_tiny, dogscats)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, DataBlock, FuncSplitter, GrandparentSplitter, get_image_files,
                          parent_label)
from pipekit.learn import Learner
from pipekit.vision import (BBoxBlock, BBoxLblBlock, ImageBlock, ImageDataLoaders, Normalize, PointBlock, Resize,
                            TensorImage, TensorPoint, aug_transforms, imagenet_stats)


def _coco():
    """coco_tiny's files with the centre of each one's first box (chapter 6's ``get_ctr``), its boxes and labels."""
    root = D.path("coco_tiny")
    meta = json.loads((root / "train.json").read_text())
    names = {c["id"]: c["name"] for c in meta["categories"]}
    boxes: dict = {}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append(([x, y, x + w, y + h], names[a["category_id"]]))
    by_name = {im["file_name"]: boxes[im["id"]] for im in meta["images"] if im["id"] in boxes}
    files = [f for f in sorted((root / "train").glob("*.jpg")) if f.name in by_name][:40]
    ctr = {f.name: [(by_name[f.name][0][0][0] + by_name[f.name][0][0][2]) / 2,
                    (by_name[f.name][0][0][1] + by_name[f.name][0][0][3]) / 2] for f in files}
    return root, files, ctr, by_name


def _biwi(get_y, files, **kwargs) -> DataBlock:
    valid = {f.name for f in files[::5]}
    return DataBlock(blocks=(ImageBlock, PointBlock), get_items=lambda p: files, get_y=get_y,
                     splitter=FuncSplitter(lambda o: o.name in valid), **kwargs)


# ------------------------------------------------------------------ 1. a getter of the wrong number of values
def test_a_point_getter_of_three_numbers_is_refused_naming_the_item_its_file_the_values_and_the_fix():
    root, files, ctr, by_name = _coco()
    wrong = files[7]

    def get_y(f):  # chapter 6's tensor([x, y]) with one item's written as tensor([x, y, 1.0])
        return torch.tensor(ctr[f.name] + ([1.0] if f == wrong else []))

    with pytest.raises(PipelineStepError) as e:
        _biwi(get_y, files, batch_tfms=aug_transforms(size=(48, 64))).dataloaders(root, bs=8)
    assert isinstance(e.value.__cause__, DataError)
    msg = str(e.value)
    x, y = (round(v, 4) for v in ctr[wrong.name])
    assert f"PointBlock item 7: the getter gave 3 value(s) of shape (3,) ([{x}, {y}, 1.0])" in msg
    assert "not rows of 2 numbers (2 per point): give [[x, y], ...], or [x, y] for one" in msg
    assert f"'train/{wrong.name}'" in msg and "(1 in all)" in msg  # the item's file, as other blocks name it
    # boxes: 4 per box, one check for both; TensorPoint.create says it in the same words
    with pytest.raises(PipelineStepError, match=r"BBoxBlock item 0: the getter gave 6 value\(s\) .* not rows of 4 "
                                                r"numbers \(4 per box\): give \[\[x0, y0, x1, y1\], \.\.\.\]"):
        DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, get_items=lambda p: files[:8],
                  getters=[None, lambda f: [1, 2, 3, 4, 5, 6], lambda f: ["a"]],
                  item_tfms=Resize(32)).dataloaders(root, bs=4)
    with pytest.raises(ParameterError, match=r"TensorPoint.create: 3 value\(s\) .* not rows of 2 numbers \(2 per "
                                             r"point\): give \[\[x, y\], \.\.\.\], or \[x, y\] for one"):
        TensorPoint.create([1.0, 2.0, 3.0])


# ------------------------------------------------------------------ 2. points in pixels where fastai's are
def test_point_items_hold_the_getters_pixels_and_decoded_batches_pixels_of_their_image(monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    root, files, ctr, _ = _coco()
    biwi = _biwi(lambda f: torch.tensor(ctr[f.name]), files, item_tfms=Resize(96),
                 batch_tfms=[*aug_transforms(size=(48, 64)), Normalize.from_stats(*imagenet_stats)])
    dls = biwi.dataloaders(root, bs=8, seed=0)
    # fastai 2.8.12: dls.valid_ds[0][1] is TensorPoint([[107.5750, 50.1150]]), what get_ctr gave for the file
    assert dls.valid_ds[0][1].tolist() == [pytest.approx(ctr[dls.valid_ds.items[0].name])]
    dsets = biwi.datasets(root)
    assert dsets.valid[0][1].tolist() == [pytest.approx(ctr[dsets.valid.items[0].name])]
    assert dsets.train[0][1].tolist() == [pytest.approx(ctr[dsets.train.items[0].name])]
    x, y = dls.valid.one_batch()
    assert x.shape[-2:] == (48, 64) and y.abs().max() <= 1  # a batch stays in -1..1: what the model trains on
    rows = dls.valid.decode_batch((x, y))
    for (img, pt), unit in zip(rows, y):  # pixels of the decoded 48x64 image, as fastai's (53.79, 18.79 there)
        assert img.shape[:2] == (48, 64) and isinstance(pt, TensorPoint)
        np.testing.assert_allclose(pt, (unit.numpy() + 1) / 2 * [64, 48], rtol=1e-6)
    assert torch.equal(dls.valid.decode((x, y))[1], y)  # decoded as a batch: -1..1, as fastai's dl.decode(b)

    class Fixed(nn.Module):  # predicts the point (0.5, -0.5) of the model input, whatever the picture
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, xb):
            return torch.tensor([0.5, -0.5]).expand(len(xb), 2) + self.w

    figs: list = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figs.append(fig) or save(fig, *a, **k))
    dls.valid.show_batch(max_n=2, path=tmp_path / "batch.png")
    Learner(dls, Fixed(), loss_func=nn.MSELoss()).show_results(max_n=2, path=tmp_path / "results.png")
    marks = [ax.collections[0].get_offsets()[0].tolist() for fig in figs for ax in fig.axes if ax.collections]
    # the marks sit on the pixels decode_batch gives (pixel centres at whole numbers), the prediction's too
    expected = [(rows[i][1][0] - 0.5).tolist() for i in range(2)]
    assert marks[:2] == [pytest.approx(p) for p in expected]
    assert marks[2:] == [pytest.approx(expected[0]), pytest.approx([47.5, 11.5]),
                         pytest.approx(expected[1]), pytest.approx([47.5, 11.5])]


def test_box_items_hold_the_getters_pixels_and_decoded_batches_pixels_of_their_image():
    root, files, _, by_name = _coco()
    vocab = sorted({c for boxes in by_name.values() for _, c in boxes})
    dls = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock(vocab=vocab)), n_inp=1, get_items=lambda p: files[:16],
                    getters=[None, lambda f: [b for b, _ in by_name[f.name]], lambda f: [c for _, c in by_name[f.name]]],
                    splitter=FuncSplitter(lambda o: o in files[:4]), item_tfms=Resize(64, method="squish"),
                    batch_tfms=aug_transforms(size=48)).dataloaders(root, bs=4, seed=0)
    f = dls.valid_ds.items[0]
    given = np.asarray([b for b, _ in by_name[f.name]], dtype=np.float32)
    assert np.array_equal(dls.valid_ds[0][1][: len(given)].numpy(), given)  # the getter's pixels, as fastai's
    x, boxes, labels = dls.valid.one_batch()
    img, dec, _ = dls.valid.decode_batch((x, boxes, labels), max_n=1)[0]
    unit = boxes[0][~boxes[0].isnan().any(1)].numpy()
    assert img.shape[:2] == (48, 48) and np.abs(unit).max() <= 1
    np.testing.assert_allclose(dec, (unit + 1) / 2 * 48, rtol=1e-6)  # pixels of the decoded image


# ------------------------------------------------------------------ 3. recorder.lrs / losses after lr_find
def test_lr_find_leaves_its_sweep_in_recorder_lrs_and_losses_until_the_next_fit(tmp_path):
    import matplotlib.pyplot as plt

    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter(), item_tfms=Resize(28)).dataloaders(D.path("mnist_tiny"), bs=16,
                                                                                         seed=0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    learn.fit(1, 1e-3)
    values = [list(v) for v in learn.recorder.values]
    res = learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=30, show_plot=False)
    rec = learn.recorder
    # fastai 2.8.12: 30 of each, the sweep's, so plt.plot(learn.recorder.lrs, learn.recorder.losses) draws it
    assert len(rec.lrs) == len(rec.losses) == 30
    assert rec.lrs == res.lrs.tolist() and rec.losses == res.losses.tolist()
    assert len(rec.moms) == 30 and rec.values == values  # the per-epoch history is the training run's
    assert len(plt.plot(rec.lrs, rec.losses)[0].get_xdata()) == 30
    assert rec.plot_loss(path=tmp_path / "sweep_loss.png").exists()
    plt.close("all")
    learn.fit(1, 1e-3)  # the next fit records its own
    assert len(rec.lrs) == len(rec.losses) == len(dls.train) and len(rec.values) == 1
    assert learn.final_record == rec.values[-1] and rec.lr_find_lrs == res.lrs.tolist()
    assert rec.plot_loss(path=tmp_path / "loss.png").exists() and rec.plot_sched(path=tmp_path / "sched.png").exists()


# ------------------------------------------------------------------ 4. dls.decode(b) as a batch
def test_dls_decode_gives_the_batch_with_its_batch_transforms_undone_as_fastai():
    import matplotlib.pyplot as plt

    path = D.path("dogscats")
    fnames = get_image_files(path)[::20]
    dls = ImageDataLoaders.from_name_func(path, fnames, valid_pct=0.2, seed=21, label_func=lambda x: x.startswith("cat"),
                                          item_tfms=Resize(64), bs=32,
                                          batch_tfms=Normalize.from_stats(*imagenet_stats))
    b = dls.one_batch()
    xd, yd = dls.decode(b)
    # fastai 2.8.12: a TensorImage (32, 3, 64, 64) of 0..255 values (int64) and the labels' codes
    assert xd.shape == (32, 3, 64, 64) and xd.dtype == torch.uint8 and xd.device.type == "cpu"
    assert torch.equal(yd, b[1].cpu())
    rows = dls.decode_batch(b, max_n=3)
    for i, (img, _) in enumerate(rows):  # the same pixels decode_batch gives an item, (H, W, C) in 0..1
        assert np.abs(xd[i].permute(1, 2, 0).numpy() - img * 255).max() <= 0.5 + 1e-3
    # chapter 18: x, = first(dls.test_dl([img])); TensorImage(dls.train.decode((x,))[0][0]).show(ctx=ax)
    f = fnames[0]
    (x,) = next(iter(dls.test_dl([f])))
    x_dec = TensorImage(dls.train.decode((x,))[0][0])
    assert x_dec.shape == (3, 64, 64)
    stored = dls.test_dl([f]).dataset.stores[0].pixels[0]  # the file resized, as cached: (H, W, C) uint8
    assert np.abs(x_dec.permute(1, 2, 0).numpy().astype(int) - np.asarray(stored).astype(int)).max() <= 1
    _, ax = plt.subplots()
    assert x_dec.show(ctx=ax) is ax
    np.testing.assert_allclose(ax.get_images()[0].get_array(), x_dec.permute(1, 2, 0).numpy() / 255, atol=1e-6)
    plt.close("all")
