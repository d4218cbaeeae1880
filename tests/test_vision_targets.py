"""Vision targets beyond one label: palette masks, boxes with their labels, points, and the fastai names and
learner options a book user reaches for (camvid_tiny, coco_tiny)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import ColReader, DataBlock, MultiCategoryBlock, RandomSplitter
from pipekit.learn import BCEWithLogitsLossFlat, MSELossFlat, SigmoidRange, load_learner
from pipekit.vision import (BBoxBlock, BBoxLblBlock, ImageBlock, PointBlock, Resize, SegmentationDataLoaders,
                            get_annotations, unet_learner, vision_learner)
from pipekit.vision.decode import ImageDecodeError, decode_bytes, decode_image

README = Path(__file__).resolve().parents[1] / "README.md"


def camvid_masks(n: int = 4) -> tuple[Path, list[Path], list[str]]:
    path = D.path("camvid_tiny")
    images = sorted((path / "images").iterdir())[:n]
    return path, images, [str(c) for c in np.loadtxt(path / "codes.txt", dtype=str)]


def save_palette(grey: Path, dest: Path, palette: np.ndarray, fmt: str = "PNG") -> None:
    """``grey``'s class indices saved as a palette image ("P") with ``palette`` (256 RGB colours)."""
    from PIL import Image

    p = Image.fromarray(np.array(Image.open(grey))).convert("P")
    p.putpalette(palette.astype(np.uint8).ravel().tolist())
    p.save(dest, format=fmt)


# ---------------------------------------------------------------- palette masks
def test_palette_masks_give_the_classes_of_the_grey_masks(tmp_path):
    path, images, codes = camvid_masks()
    colours = np.random.default_rng(0).integers(0, 256, (256, 3))
    grey_looking = np.repeat(((np.arange(256) * 7) % 256)[:, None], 3, axis=1)  # index i drawn as grey 7i
    (tmp_path / "labels").mkdir()
    for f in images:
        grey = path / "labels" / f"{f.stem}_P{f.suffix}"
        save_palette(grey, tmp_path / "labels" / f"{f.stem}_P.png", colours)
        save_palette(grey, tmp_path / "labels" / f"{f.stem}_G.png", grey_looking)
        save_palette(grey, tmp_path / "labels" / f"{f.stem}_B.bmp", colours, fmt="BMP")
        want = decode_image(grey, mode="mask")
        for suffix in ("_P.png", "_G.png", "_B.bmp"):
            got = decode_image(tmp_path / "labels" / f"{f.stem}{suffix}", mode="mask")
            assert got.shape == want.shape and np.array_equal(got, want), suffix
    cut = (tmp_path / "labels" / f"{images[0].stem}_P.png").read_bytes()[:-20]
    with pytest.raises(ImageDecodeError, match="truncated"):  # refused as a cut grey PNG is
        decode_bytes(cut, mode="mask", name="cut.png")

    def loaders(label_func):
        return SegmentationDataLoaders.from_label_func(path, fnames=images, label_func=label_func, codes=codes, bs=4,
                                                       valid_pct=0.25, seed=0, item_tfms=Resize(48))

    pal = loaders(lambda o: tmp_path / "labels" / f"{o.stem}_P.png")
    grey = loaders(lambda o: path / "labels" / f"{o.stem}_P{o.suffix}")
    assert torch.equal(pal.train.one_batch()[1], grey.train.one_batch()[1])


# ---------------------------------------------------------------- boxes and their labels
def coco_rows(n: int = 12) -> pl.DataFrame:
    path = D.path("coco_tiny")
    images, lbl_bbox = get_annotations(path / "train.json")
    return pl.DataFrame({"path": [str(path / "train" / f) for f in images[:n]],
                         "boxes": [b for b, _ in lbl_bbox[:n]], "labels": [lab for _, lab in lbl_bbox[:n]]})


def coco_block(get_labels) -> DataBlock:
    return DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1,
                     getters=[ColReader("path"), ColReader("boxes"), get_labels],
                     splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize(32))


def test_boxes_and_labels_of_different_counts_are_refused_naming_the_item():
    df = coco_rows()
    short = int(np.argmax([len(b) for b in df["boxes"].to_list()]))  # an item with several boxes
    n_boxes = len(df["boxes"][short])
    assert n_boxes > 1

    def one_label_short(r):
        return r["labels"][:-1] if r["path"] == df["path"][short] else r["labels"]

    with pytest.raises(DataError, match=rf"item {short} .*{n_boxes} box\(es\) but {n_boxes - 1} label\(s\) \(1 item"):
        coco_block(one_label_short).dataloaders(df, bs=4)

    # new items read with their labels (test_dl) are checked the same way
    dls = coco_block(ColReader("labels")).dataloaders(df, bs=4)
    bad = df.with_columns(pl.Series("labels", [lab[:-1] if i == short else lab
                                               for i, lab in enumerate(df["labels"].to_list())]))
    with pytest.raises(DataError, match=rf"item {short} .*one label per box"):
        dls.test_dl(bad, with_labels=True)
    assert len(dls.test_dl(df, with_labels=True).dataset) == len(df)


# ---------------------------------------------------------------- points: dls.loss_func, decode, predict
def point_dls():
    """coco_tiny's first box centre of each image as a point, images squished to 32x32."""
    df = coco_rows(16).with_columns(pl.col("boxes").list.first().alias("box"))
    df = df.with_columns(((pl.col("box").list.get(0) + pl.col("box").list.get(2)) / 2).alias("x"),
                         ((pl.col("box").list.get(1) + pl.col("box").list.get(3)) / 2).alias("y"))
    dls = DataBlock(blocks=(ImageBlock, PointBlock), get_x=ColReader("path"), get_y=lambda r: [[r["x"], r["y"]]],
                    splitter=RandomSplitter(0.25, seed=0),
                    item_tfms=Resize(32, method="squish")).dataloaders(df, bs=4, seed=0)
    return df, dls


def test_dls_loss_func_is_the_learners_default_and_dls_decode_is_the_training_loaders():
    df, dls = point_dls()
    assert isinstance(dls.loss_func, MSELossFlat) and repr(dls.loss_func) == "MSELossFlat()"
    assert type(vision_learner(dls, "simple_cnn", pretrained=False).loss_func) is type(dls.loss_func)
    multi = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_x=ColReader("path"), get_y=ColReader("labels"),
                      splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize(32)).dataloaders(coco_rows(), bs=4)
    assert isinstance(multi.loss_func, BCEWithLogitsLossFlat)
    b = dls.train.one_batch()
    got, want = dls.decode(b), dls.train.decode(b)
    assert len(got) == 2 and all(np.array_equal(g, w) for g, w in zip(got[1], want[1]))


def test_points_decode_in_batch_units_and_predict_in_source_pixels_as_the_readme_says():
    from PIL import Image

    df, dls = point_dls()
    b = dls.valid.one_batch()
    dec = dls.valid.decode_batch(b, max_n=1)[0][1]
    assert np.allclose(dec, (b[1][0].cpu().numpy() + 1) * 16)  # pixels of the decoded 32x32 image, as fastai's
    assert torch.equal(dls.valid.decode(b)[1], b[1])  # a batch decoded as a batch: -1..1, as fastai's
    learn = vision_learner(dls, "simple_cnn", pretrained=False, y_range=(-1, 1))
    f = df["path"][0]
    w, h = Image.open(f).size
    pred = learn.predict(f)[0]
    unit = learn.get_preds(dl=dls.test_dl([f]))[0].reshape(-1, 2).numpy()
    assert np.allclose(pred, (unit + 1) / 2 * np.array([w, h]), atol=1e-3)  # pixels of the source image
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `learn.predict(item)`"))
    assert "pixels of the image predicted on" in row and re.search(r"decode_batch\(b\)` gives .* in pixels of each item", row)
    assert re.search(r"dls\.decode\(b\)` undoes the batch transforms only.*-1\.\.1", row) and "getter's pixels" in row


# ---------------------------------------------------------------- fastai's names
def test_pilmask_tensorpoint_tensorbbox_are_fastai_names_for_pipekits_values():
    import pipekit.vision.all as everything
    from pipekit.vision.all import PILMask, TensorBBox, TensorPoint

    assert {"PILMask", "TensorPoint", "TensorBBox"} <= {n for n in vars(everything) if not n.startswith("_")}
    path, images, _ = camvid_masks(1)
    fn = path / "labels" / f"{images[0].stem}_P{images[0].suffix}"
    mask = PILMask.create(fn)
    assert isinstance(mask, PILMask) and mask.dtype == np.uint8
    assert np.array_equal(mask, decode_image(fn, mode="mask")[:, :, 0])  # as MaskBlock reads it, (H, W)
    assert np.array_equal(PILMask.create(fn.read_bytes()), mask) and not isinstance(np.zeros(2), PILMask)
    assert mask.show() is not None
    with pytest.raises(ParameterError, match=r"PILMask\.create"):
        PILMask(fn)

    df, dls = point_dls()
    point = dls.valid.decode_batch(dls.valid.one_batch(), max_n=1)[0][1]
    assert isinstance(point, TensorPoint) and not isinstance(point, TensorBBox)
    assert isinstance(vision_learner(dls, "simple_cnn", pretrained=False).predict(df["path"][0])[0], TensorPoint)
    made = TensorPoint.create(torch.tensor([12.5, 6.5]))
    assert isinstance(made, TensorPoint) and made.tolist() == [[12.5, 6.5]]
    boxes = coco_block(ColReader("labels")).dataloaders(coco_rows(), bs=4)
    box = boxes.valid.decode_batch(boxes.valid.one_batch(), max_n=1)[0][1]
    assert isinstance(box, TensorBBox) and not isinstance(box, TensorPoint)
    assert TensorBBox([[1, 2, 5, 6], [0, 0, 3, 3]]).shape == (2, 4)
    with pytest.raises(ParameterError, match="TensorBBox.create"):
        TensorBBox.create([1, 2, 3])


# ---------------------------------------------------------------- fastai's learner options
@pytest.fixture(scope="module")
def seg_dls():
    path, images, codes = camvid_masks(8)
    return SegmentationDataLoaders.from_label_func(path, fnames=images, codes=codes, bs=4, valid_pct=0.25, seed=0,
                                                   label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                                                   item_tfms=Resize(32))


def test_unet_learner_takes_n_in_y_range_init_and_refuses_fastais_decoder_options(seg_dls, tmp_path):
    x = seg_dls.valid.one_batch()[0]
    assert unet_learner(seg_dls, "xresnet18", pretrained=False, n_in=3).model.eval()(x).shape[1] == 32
    with pytest.raises(ParameterError, match=r"unet_learner: n_in=1, but the data's images have 3 channel"):
        unet_learner(seg_dls, "xresnet18", pretrained=False, n_in=1)
    for option, value in [("self_attention", True), ("blur", True), ("last_cross", False), ("act_cls", nn.ReLU),
                          ("norm_type", None), ("bottle", True), ("blur_final", False)]:
        with pytest.raises(ParameterError, match=rf"unet_learner: {option}= is an option of fastai's DynamicUnet"):
            unet_learner(seg_dls, "xresnet18", pretrained=False, **{option: value})

    learn = unet_learner(seg_dls, "xresnet18", pretrained=False, y_range=(0, 1), init=nn.init.zeros_)
    assert isinstance(learn.model.final[-1], SigmoidRange)
    assert float(learn.model.final[1].weight.detach().abs().sum()) == 0  # the decoder's last convolution, zeroed by init
    learn.model.final[1].weight.data.normal_()
    learn.model.eval()
    with torch.no_grad():
        out = learn.model(x)
    assert out.shape[1] == 32 and float(out.min()) > 0 and float(out.max()) < 1
    learn.export(tmp_path / "unet.pipekit")
    loaded = load_learner(tmp_path / "unet.pipekit")
    assert isinstance(loaded.model.final[-1], SigmoidRange)
    with torch.no_grad():
        assert torch.allclose(loaded.model.eval()(x.to(next(loaded.model.parameters()).device)).cpu(), out, atol=1e-5)
    with pytest.raises(ParameterError, match="unet_learner: y_range"):
        unet_learner(seg_dls, "xresnet18", pretrained=False, y_range=(1, 0))


def test_vision_learner_takes_n_in_and_init():
    _, dls = point_dls()
    assert vision_learner(dls, "simple_cnn", pretrained=False, n_in=3) is not None
    with pytest.raises(ParameterError, match=r"vision_learner: n_in=1, but the data's images have 3 channel"):
        vision_learner(dls, "simple_cnn", pretrained=False, n_in=1)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, init=nn.init.zeros_)
    linear = [m for m in learn.model.head if isinstance(m, nn.Linear)]
    assert linear and all(float(m.weight.detach().abs().sum()) == 0 for m in linear)
    norms = [m for m in learn.model.head if isinstance(m, nn.BatchNorm1d)]
    assert norms and all(bool((m.weight == 1).all()) for m in norms)  # norm layers left as they are
    with pytest.raises(ParameterError, match="vision_learner: init='he' is not a function"):
        vision_learner(dls, "simple_cnn", pretrained=False, init="he")
