"""Image, mask and point blocks inside DataBlock, on the real data sets."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import (CategoryBlock, DataBlock, DataLoaders, GrandparentSplitter, RandomSplitter,
                          get_image_files, parent_label)
from pipekit.vision import (ImageBlock, MaskBlock, Normalize, PointBlock, RandomResizedCrop, Resize, aug_transforms,
                            image_paths_with, imagenet_stats, mnist_stats)


def _mnist_dblock(**kw):
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     splitter=GrandparentSplitter(), **kw)


@pytest.mark.filterwarnings("ignore:.*neither the training")
def test_mnist_tiny_grandparent_split_and_batches():
    dls = _mnist_dblock(batch_tfms=aug_transforms(max_warp=0) + [Normalize.from_stats(*mnist_stats)]).dataloaders(
        D.path("mnist_tiny"), bs=32, seed=0, device="cpu")
    assert dls.vocab == ["3", "7"] and dls.c == 2
    assert len(dls.train.dataset) == 709 and len(dls.valid.dataset) == 699
    x, y = dls.one_batch()
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 0.5 and 0.6 < x.std().item() < 1.4  # normalised
    xv, _ = next(iter(dls.valid))
    raw = dls.valid.dataset.gather(np.arange(32))[0]
    # validation: no augmentation, only the conversion and normalisation
    assert torch.allclose(xv, (raw.permute(0, 3, 1, 2).float() / 255 - 0.131) / 0.308, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*neither the training")
def test_same_seed_same_augmented_batches_and_epochs_differ():
    def first(seed):
        dls = _mnist_dblock(batch_tfms=aug_transforms()).dataloaders(D.path("mnist_tiny"), bs=16, seed=seed,
                                                                     device="cpu")
        it = iter(dls.train)
        a = next(it)[0]
        return a, next(iter(dls.train))[0]

    a1, e2 = first(3)
    a2, _ = first(3)
    b, _ = first(4)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, b)
    assert not torch.equal(a1, e2)  # the next epoch is shuffled and augmented differently


def test_dogscats_presize_then_augment_and_export_roundtrip(tmp_path):
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(64)],
                       batch_tfms=aug_transforms(size=48, min_scale=0.75) + [Normalize.from_stats(*imagenet_stats)])
    dls = dblock.dataloaders(D.path("dogscats"), bs=32, seed=1, device="cpu")
    assert dls.vocab == ["cats", "dogs"]
    assert len(dls.train.dataset) == 3000 and len(dls.valid.dataset) == 1000
    x, y = dls.one_batch()
    assert x.shape == (32, 3, 48, 48) and x.dtype == torch.float32
    xv, _ = next(iter(dls.valid))
    assert xv.shape == (32, 3, 48, 48)
    files = get_image_files(D.path("dogscats") / "valid" / "cats")[:5]
    tdl = dls.test_dl(files)
    (xt,) = next(iter(tdl))
    assert torch.allclose(xt, xv[:5], atol=1e-5)  # test_dl sees exactly the validation-time pipeline
    restored = DataLoaders.from_state(dls.state())
    (xr,) = next(iter(restored.test_dl(files)))
    assert torch.allclose(xr, xt, atol=1e-5)
    png = dls.show_batch(max_n=4, path=str(tmp_path / "b.png"))
    assert png.exists() and png.stat().st_size > 1000


def test_random_resized_crop_item_transform_crops_per_epoch():
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[:64],
                       get_y=parent_label, splitter=RandomSplitter(0.25, seed=0),
                       item_tfms=[RandomResizedCrop(40, min_scale=0.3)])
    dls = dblock.dataloaders(D.path("dogscats") / "train", bs=16, seed=0, device="cpu")
    it1 = next(iter(dls.train.new(shuffle=False, augment=True)))[0]
    it2 = next(iter(dls.train.new(shuffle=False, augment=True, seed=9)))[0]
    assert it1.shape == (16, 3, 40, 40) and not torch.equal(it1, it2)
    v1, v2 = next(iter(dls.valid))[0], next(iter(dls.valid))[0]
    assert torch.equal(v1, v2)


def _camvid_dblock(codes, **kw):
    path = D.path("camvid_tiny")
    return DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images"),
                     get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                     splitter=RandomSplitter(0.2, seed=0), **kw), path


def test_camvid_masks_travel_with_images(tmp_path):
    codes = (D.path("camvid_tiny") / "codes.txt").read_text().split()
    dblock, path = _camvid_dblock(codes, item_tfms=[Resize((48, 64))],
                                  batch_tfms=aug_transforms(size=(40, 56), max_rotate=20))
    dls = dblock.dataloaders(path, bs=8, seed=0, device="cpu")
    assert dls.c == 32 and dls.vocab[0] == "Animal"
    x, y = dls.one_batch()
    assert x.shape == (8, 3, 40, 56) and y.shape == (8, 40, 56) and y.dtype == torch.int64
    assert int(y.max()) < 32
    png = dls.show_batch(max_n=4, path=str(tmp_path / "seg.png"))
    assert png.exists()


def test_plain_learner_on_masks_defaults_to_cross_entropy_per_pixel_and_trains_on_camvid_tiny(tmp_path):
    from torch import nn

    import pipekit
    from pipekit.learn import CrossEntropyLossFlat, Learner
    from pipekit.vision import unet_learner

    codes = (D.path("camvid_tiny") / "codes.txt").read_text().split()
    dblock, path = _camvid_dblock(codes, item_tfms=[Resize((24, 32))])
    dls = dblock.dataloaders(path, bs=8, seed=0, device="cpu", num_workers=0)
    pipekit.set_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, len(codes), 1))
    learn = Learner(dls, model, path=tmp_path)  # no loss_func: the mask block's default
    assert isinstance(learn.loss_func, CrossEntropyLossFlat) and learn.loss_func.axis == 1
    assert learn.loss_func.to_record() == unet_learner(dls, "xresnet18", pretrained=False).loss_func.to_record()
    before = learn.validate()[0]
    learn.fit(2, 1e-2)
    after = learn.validate()[0]
    assert np.isfinite(after) and after < before
    preds, targs = learn.get_preds()
    assert preds.shape == (len(dls.valid_ds), len(codes), 24, 32) and targs.shape == (len(dls.valid_ds), 24, 32)
    assert torch.allclose(preds.sum(1), torch.ones(()), atol=1e-4)  # a softmax over the classes of each pixel
    # the loss the learner reports is cross-entropy of each pixel over its class scores
    x, y = dls.valid.one_batch()
    with torch.no_grad():
        out = learn.model(x)
    assert float(learn.loss_func(out, y)) == pytest.approx(float(nn.functional.cross_entropy(out, y)), rel=1e-5)


def test_mask_values_beyond_codes_name_the_file():
    dblock, path = _camvid_dblock(["road", "sky"], item_tfms=[Resize(32)])
    with pytest.raises(ValueError, match=r"_P\.png: mask value \d+ but only 2 codes"):
        dblock.dataloaders(path, bs=8, seed=0, device="cpu")


def test_image_block_rejects_bad_settings_and_non_paths():
    with pytest.raises(ValueError, match="cls"):
        ImageBlock(cls="CMYK")
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=lambda r: 3, get_y=lambda r: "a",
                       splitter=RandomSplitter(0.5, seed=0))
    with pytest.raises(Exception, match="file paths"):
        dblock.dataloaders(pl.DataFrame({"a": [1, 2, 3, 4]}), bs=2)


def test_point_block_docs_name_only_what_pipekit_vision_exports():
    import re

    import pipekit.vision

    named = re.findall(r":class:`(\w+)`", PointBlock.__doc__ or "")
    assert named and all(hasattr(pipekit.vision, n) for n in named), named


def test_point_block_follows_the_item_transform():
    files = get_image_files(D.path("dogscats") / "valid" / "cats")[:8]
    items = pl.DataFrame({"path": [str(f) for f in files]})
    # one keypoint per image at the image centre and one at the top-left quarter point (200x200 sources)
    pts = [[[100.0, 100.0], [50.0, 50.0]]] * 8
    dblock = DataBlock(blocks=(ImageBlock, PointBlock(img_size=(200, 200))), getters=[None, lambda r: pts[0]],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(64)],
                       batch_tfms=aug_transforms(size=56, max_rotate=30, p_affine=1.0))
    dls = dblock.dataloaders(items, bs=6, seed=0, device="cpu")
    xv, pv = next(iter(dls.valid))
    assert pv.shape == (2, 2, 2) and torch.allclose(pv[0], torch.tensor([[0.0, 0.0], [-0.5, -0.5]]), atol=1e-5)
    x, p = dls.one_batch()
    assert p.shape == (6, 2, 2) and not torch.allclose(p[:, 1], torch.tensor([-0.5, -0.5]))
    # without img_size the sizes come from the decoded photos (200x200): the same points
    dls = DataBlock(blocks=(ImageBlock, PointBlock()), getters=[None, lambda r: pts[0]],
                    splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(64)]).dataloaders(items, bs=4)
    _, pv = next(iter(dls.valid))
    assert torch.allclose(pv[0], torch.tensor([[0.0, 0.0], [-0.5, -0.5]]), atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*neither the training")
def test_summary_walks_images_through_every_step():
    text = _mnist_dblock(batch_tfms=aug_transforms(size=24) + [Normalize.from_stats(*mnist_stats)]).summary(
        D.path("mnist_tiny"), bs=4, show=False)
    assert "ImageStore(n=1408, size=(28, 28), channels=1" in text
    assert "BatchAugment" in text and "Tensor(4, 1, 24, 24) float32" in text


@pytest.mark.parametrize("data", ["mnist_tiny", "camvid_tiny"])
def test_fused_augment_reading_the_cache_in_place_matches_the_transforms_one_after_another(data):
    from pipekit.vision.transforms import AugmentThenFloat

    norm = Normalize.from_stats(*imagenet_stats)
    if data == "mnist_tiny":
        dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                           splitter=GrandparentSplitter(), item_tfms=[Resize(40)],
                           batch_tfms=aug_transforms(size=32, max_warp=0.3) + [norm])
        path = D.path("mnist_tiny")
    else:
        codes = (D.path("camvid_tiny") / "codes.txt").read_text().split()
        dblock, path = _camvid_dblock(codes, item_tfms=[Resize((48, 64))],
                                      batch_tfms=aug_transforms(size=(40, 56), max_rotate=20) + [norm])
    dl = dblock.dataloaders(path, bs=16, seed=3, device="cpu", num_workers=0).train
    # the loader runs augmentation and normalisation as one step, warping straight from the cache
    assert isinstance(dl.batch_tfms.steps()[0], AugmentThenFloat)
    assert dl._deferred() == ((0, 1) if data == "camvid_tiny" else (0,))
    for i, (got, entry) in enumerate(zip(dl.iter_epoch(2), dl.batch_plan(2))):
        if i == 2:
            break
        b, ctx = dl.dataset.gather(entry), dl.context(2, i)  # gathered, then each transform in turn
        for t in dl.batch_tfms.tfms:
            b = t.encode(b, ctx)
        assert len(got) == len(b) and all(g.dtype == e.dtype and torch.equal(g, e) for g, e in zip(got, b))
        assert got[0].dtype == torch.float32 and got[0].shape[0] == 16


def test_presized_masks_stay_on_their_image(tmp_path):
    # each output pixel of a mask takes the source pixel under its centre (either one at an exact pixel edge):
    # resize maps of source row / column numbers, camvid's label size, shrinking and growing
    h, w = 96, 128
    rows = np.repeat(np.arange(h, dtype=np.uint8)[:, None], w, 1)
    cols = np.repeat(np.arange(w, dtype=np.uint8)[None, :], h, 0)
    for size in ((40, 56), (200, 300)):
        tfm = Resize(size, method="squish")
        for src, n, m, axis in ((rows, h, size[0], 1), (cols, w, size[1], 0)):
            got = tfm.apply(src, nearest=True)[:, :, 0].astype(float)
            centre = (np.arange(m) + 0.5) * n / m
            centre = centre[:, None] if axis == 1 else centre[None, :]
            assert ((got <= centre) & (centre <= got + 1)).all(), size
    # through a DataBlock: a rectangle's mask covers the pixels its area-resized image mostly covers
    from PIL import Image
    m = np.zeros((200, 200), np.uint8)
    m[40:120, 60:160] = 1
    Image.fromarray(m * 255).convert("RGB").save(tmp_path / "a.png")
    Image.fromarray(m).save(tmp_path / "a_m.png")
    items = pl.DataFrame({"img": [str(tmp_path / "a.png")] * 2, "mask": [str(tmp_path / "a_m.png")] * 2})
    dls = DataBlock(blocks=(ImageBlock, MaskBlock(["bg", "fg"])), getters=[lambda r: r["img"], lambda r: r["mask"]],
                    splitter=lambda items: (np.array([0]), np.array([1])), item_tfms=Resize(64)).dataloaders(
        items, bs=1, seed=0, device="cpu")
    x, y = dls.valid.one_batch()
    assert torch.equal(x[0, 0] > 0.5, y[0] == 1)


def _drawn(monkeypatch) -> list:
    """The figures show_batch / show_results write, to look at."""
    from matplotlib.figure import Figure

    figs: list = []
    save = Figure.savefig

    def spy(fig, *args, **kwargs):
        figs.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figs


def test_show_batch_draws_both_images_of_a_pair(monkeypatch, tmp_path):
    # the book's Siamese pairs: two image inputs and a same/not-same label, each pair in one titled cell
    files = get_image_files(D.path("mnist_tiny"), folders=["train"])[:48]
    pairs = pl.DataFrame({"a": [str(f) for f in files], "b": [str(f) for f in files[::-1]],
                          "same": [f.parent.name == g.parent.name for f, g in zip(files, files[::-1])]})
    dls = DataBlock(blocks=(ImageBlock(cls="L"), ImageBlock(cls="L"), CategoryBlock), n_inp=2,
                    getters=[lambda r: r["a"], lambda r: r["b"], lambda r: r["same"]],
                    splitter=RandomSplitter(0.25, seed=0)).dataloaders(pairs, bs=8, seed=0, device="cpu")
    figs = _drawn(monkeypatch)
    dls.valid.show_batch(max_n=4, path=tmp_path / "pairs.png")
    x1, x2, y = dls.valid.one_batch()
    axes = [ax for ax in figs[0].axes if ax.images]
    assert len(axes) == 8  # both images of 4 pairs
    for i in range(4):  # pair i: its first image, then its second, as the batch holds them
        for j, x in enumerate((x1, x2)):
            shown = np.asarray(axes[2 * i + j].images[0].get_array(), dtype=np.float32)
            assert np.allclose(shown, x[i, 0].numpy(), atol=1 / 255), (i, j)
    titles = [ax.title.get_text() for ax in figs[0].axes if ax.title.get_text()]
    assert titles == [str(dls.vocab[int(v)]) for v in y[:4]]


def test_show_results_titles_of_many_labels_are_joined_wrapped_and_apart(monkeypatch, tmp_path):
    import json
    import re

    from pipekit.data import ColReader, MultiCategoryBlock
    from pipekit.data import show_items

    p = D.path("coco_tiny")
    meta = json.loads((p / "train.json").read_text())
    names, labels = {c["id"]: c["name"] for c in meta["categories"]}, {}
    for a in meta["annotations"]:
        labels.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    items = pl.DataFrame([{"fname": im["file_name"], "labels": " ".join(sorted(labels[im["id"]]))}
                          for im in meta["images"][:40]])
    dls = DataBlock(blocks=(ImageBlock, MultiCategoryBlock(label_delim=" ")), get_x=ColReader("fname", pref=p / "train"),
                    get_y=ColReader("labels"), splitter=RandomSplitter(0.5, seed=0),
                    item_tfms=Resize(48)).dataloaders(items, bs=9, seed=0, device="cpu")
    rows = dls.valid.decode_batch(dls.valid.one_batch(), max_n=9)
    every = list(dls.vocab)  # the longest prediction there is: every label
    figs = _drawn(monkeypatch)
    show_items(rows, dls.blocks, 1, preds=[every] * len(rows), path=tmp_path / "labels.png")
    fig = figs[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure was closed once written
    canvas.draw()
    renderer = canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.title.get_text()]
    assert len(titles) == 9
    for t, row in zip(titles, rows):
        text = t.get_text()
        one_line = re.sub(r"\s+", " ", text.replace(";\n", ";"))  # lines break after a ';' or at a space
        assert one_line == ";".join(row[1]) + " / " + ";".join(every)
        assert max(len(line) for line in text.split("\n")) < 32 and len(text.split("\n")) > 1
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert not [(i, j) for i in range(9) for j in range(i + 1, 9) if boxes[i].overlaps(boxes[j])]
    images = [ax.get_window_extent(renderer) for ax in fig.axes if ax.images]
    assert not [(i, j) for i in range(9) for j in range(9) if boxes[i].overlaps(images[j])]



def test_batch_transforms_given_as_item_transforms_run_on_batches():
    def batches(item_tfms, batch_tfms):
        dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::100],
                           get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=item_tfms,
                           batch_tfms=batch_tfms)
        dls = dblock.dataloaders(D.path("dogscats"), bs=8, seed=0, device="cpu")
        return dls.train.one_batch(), dls.valid.one_batch()

    norm = Normalize.from_stats(*imagenet_stats)
    for extra in (aug_transforms(size=24), [norm], aug_transforms(size=24) + [norm]):
        (xt, yt), (xv, yv) = batches([Resize(32), *extra], None)
        (rt, ryt), (rv, ryv) = batches([Resize(32)], extra)
        assert torch.equal(xt, rt) and torch.equal(xv, rv) and torch.equal(yt, ryt) and torch.equal(yv, ryv)
    assert abs(float(xv.mean())) < 0.6 and xt.shape == (8, 3, 24, 24)  # normalised and cropped: they did run


def test_a_mask_models_vocab_names_the_class_of_a_pixel_and_looks_a_code_up():
    from pipekit.vision import SegmentationDataLoaders

    path = D.path("camvid_tiny")
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    dls = SegmentationDataLoaders.from_label_func(
        path, bs=4, fnames=sorted((path / "images").iterdir())[:8], seed=0, valid_pct=0.25,
        label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", codes=codes, item_tfms=Resize((24, 32)))
    _, masks = dls.one_batch()
    first_row = masks[0, 0]
    assert dls.vocab[first_row] == [str(codes[int(c)]) for c in first_row]
    assert dls.vocab == list(codes) and dls.vocab.o2i["Road"] == list(codes).index("Road")
