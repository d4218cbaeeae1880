"""Chapter 1's segmentation, as a reader writes it: CamVid masks found by a label function
(``SegmentationDataLoaders.from_label_func``), a U-Net with the bare ``pixel_accuracy`` metric trained for a
full epoch, then predictions on an image file and on its pixels, the same after export in a fresh process.

CPU-sized: camvid_tiny at 24x32 pixels and one epoch (the book: 8 epochs of a resnet34 U-Net).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from book_helpers import fresh_predictions

import pipekit
import pipekit.datasets as D
from pipekit.data import get_image_files
from pipekit.vision import Resize, SegmentationDataLoaders, decode_image, pixel_accuracy, unet_learner

path = D.path("camvid_tiny")


@pytest.fixture(scope="module")
def learn(one_torch_thread):
    dls = SegmentationDataLoaders.from_label_func(
        path, bs=8, fnames=get_image_files(path / "images"), seed=0,
        label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
        codes=np.loadtxt(path / "codes.txt", dtype=str), item_tfms=Resize((24, 32)))
    pipekit.set_seed(0)
    learn = unet_learner(dls, "xresnet18", metrics=pixel_accuracy)
    learn.fit(1, 1e-3)  # a full epoch: the bare metric must survive it
    return learn


def test_bare_pixel_accuracy_after_a_full_epoch(learn):
    value = learn.recorder.value("pixel_accuracy")
    preds, targs = learn.get_preds()
    assert preds.shape[1:] == (32, 24, 32) and targs.shape[1:] == (24, 32)
    assert value == pytest.approx(float((preds.argmax(1) == targs).float().mean()), abs=1e-6)
    assert 0.0 < value <= 1.0


def test_predict_a_mask_from_a_file_or_its_pixels(learn, tmp_path):
    f = sorted(get_image_files(path / "images"))[3]
    mask, dec, probs = learn.predict(f)
    assert mask.shape == (24, 32) and mask.dtype == np.int64 and 0 <= mask.min() and mask.max() < 32
    assert probs.shape == (32, 24, 32) and np.array_equal(probs.argmax(0).numpy(), mask)
    pixels = decode_image(f)
    for item in (pixels, torch.from_numpy(pixels).permute(2, 0, 1), f.read_bytes(), str(f)):
        assert np.array_equal(learn.predict(item)[0], mask)
    there = fresh_predictions(learn.export(tmp_path / "camvid.pipekit"), [("path", f), ("array", pixels)], tmp_path)
    for decoded, p in there:
        assert np.array_equal(np.asarray(decoded), mask) and np.allclose(p, probs.reshape(-1).numpy(), atol=1e-5)


def test_interpretation_counts_pixels_over_the_codes(learn, tmp_path):
    """ClassificationInterpretation of a U-Net: the confusion matrix is over CamVid's 32 codes, counting every
    validation pixel (it took the image width, 32 here, for the class count and named classes '0'...'31'), and
    plot_top_losses titles each image with its share of pixels right (it raised a tensor-to-scalar error)."""
    from pipekit.learn import ClassificationInterpretation

    interp = ClassificationInterpretation.from_learner(learn)
    codes = list(np.loadtxt(path / "codes.txt", dtype=str))
    assert interp.per_pixel and interp.vocab == codes
    preds, targs = learn.get_preds()
    cm = interp.confusion_matrix()
    assert cm.shape == (32, 32) and cm.sum() == targs.numel()
    assert np.trace(cm) == int((preds.argmax(1) == targs).sum())
    assert cm[codes.index("Road")].sum() == int((targs == codes.index("Road")).sum())
    actual, predicted, n = interp.most_confused()[0]
    assert {actual, predicted} <= set(codes) and n == cm[codes.index(actual), codes.index(predicted)]
    assert interp.plot_top_losses(3, path=tmp_path / "top.png").is_file()


def test_segmentation_metrics_pool_every_validation_pixel(learn):
    """fastai's DiceMulti, foreground_acc, Dice and JaccardCoeff as Learner metrics: over a whole set they are
    what the set's pixels give, however the batches cut it."""
    from pipekit.vision import Dice, DiceMulti, JaccardCoeff, foreground_acc

    preds, targs = learn.get_preds()
    labels = preds.argmax(1)
    dice = [2 * ((labels == c) & (targs == c)).sum().item() / ((labels == c).sum() + (targs == c).sum()).item()
            for c in range(32) if ((labels == c) | (targs == c)).any()]
    void = 30  # CamVid's Void code
    fg = ((labels == targs) & (targs != void)).sum().item() / (targs != void).sum().item()
    cars = (targs == 5)  # one class against the rest: a two-class mask
    two = torch.stack([-preds[:, 5], preds[:, 5]], 1)
    p1 = two.argmax(1) == 1
    before = learn.metrics
    try:
        learn.metrics = [DiceMulti(), foreground_acc(bkg_idx=void), Dice(), JaccardCoeff()]
        _, dice_multi, fg_acc, *_ = learn.validate()
    finally:
        learn.metrics = before
    assert dice_multi == pytest.approx(np.mean(dice)) and fg_acc == pytest.approx(fg)
    assert Dice().score(cars.long(), two) == pytest.approx(2 * (p1 & cars).sum().item() / (p1.sum() + cars.sum()).item())
    assert JaccardCoeff().score(cars.long(), two) == pytest.approx((p1 & cars).sum().item() / (p1 | cars).sum().item())
