"""fastai's single augmentations take fastai's keyword arguments; masks resample alike on both executors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import BatchContext
from pipekit.data.transform import grouped_batch_tfms
from pipekit.vision import (AugmentSettings, Brightness, Contrast, Dihedral, Flip, Hue, Resize, Rotate, Sampler,
                            Saturation, Warp, Zoom, build_image_store, sample_plan, warp_cv2, warp_torch)
from pipekit.vision.augment import nearest_indices


@pytest.fixture(scope="module")
def camvid():
    p = D.path("camvid_tiny")
    imgs = sorted((p / "images").glob("*.png"))[:6]
    masks = [p / "labels" / f"{f.stem}_P{f.suffix}" for f in imgs]
    x = build_image_store(imgs, Resize((48, 64)), cache_dir=False).gather(np.arange(6))
    y = build_image_store(masks, Resize((48, 64)), mode="mask", cache_dir=False).gather(np.arange(6))
    return x, y


def _ctx(train=True, geometry=("image", "mask"), key=1):
    return BatchContext(geometry, 1, train, torch.device("cpu"), key=(key,))


def test_fastai_resampling_arguments_are_accepted_and_used(camvid):
    x, _ = camvid
    for t in [Rotate(max_deg=45, p=1., pad_mode="zeros"), Zoom(max_zoom=1.5, p=1., size=32), Flip(p=1., mode="nearest"),
              Dihedral(p=1., size=32), Warp(p=1., pad_mode="border", batch=True)]:
        aug = grouped_batch_tfms([t])[0]
        s = aug.settings
        assert (s.size, s.mode, s.pad_mode) == (t.size, t.mode or "bilinear", t.pad_mode or "reflection")
        (img,) = aug.encode((x,), _ctx(geometry=("image",)))
        assert tuple(img.shape[1:3]) == ((32, 32) if t.size else (48, 64))
    # pad_mode='zeros' really pads with black: the corners of a 45 degree turn of a bright dog picture
    files = sorted((D.path("dogscats") / "train" / "dogs").glob("*.jpg"))[:4]
    dogs = build_image_store(files, Resize(64), cache_dir=False).gather(np.arange(4))
    (zeros,) = Sampler.batch_transform([Rotate(draw=45, p=1., pad_mode="zeros")]).encode((dogs,), _ctx(geometry=("image",)))
    (refl,) = Sampler.batch_transform([Rotate(draw=45, p=1.)]).encode((dogs,), _ctx(geometry=("image",)))
    assert int(zeros[:, 0, 0].max()) == 0 and int(refl[:, 0, 0].max()) > 0


def test_draw_fixes_the_value_as_fastai():
    rng = np.random.default_rng(0)
    m = Rotate(draw=30, p=1.).matrices(3, rng, (8, 8), (8, 8))
    assert np.allclose(np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])), 30)
    m = Rotate(draw=[10, -20], p=1.).matrices(2, rng, (8, 8), (8, 8))
    assert np.allclose(np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])), [10, -20])
    with pytest.raises(ParameterError, match="draw holds 2 values for a batch of 3"):
        Rotate(draw=[10, -20]).matrices(3, rng, (8, 8), (8, 8))
    assert Flip(p=1., draw=[1, 0, 1]).matrices(3, rng, (8, 8), (8, 8))[:, 0, 0].tolist() == [-1, 1, -1]
    z = Zoom(p=1., draw=2.0, draw_x=0.0, draw_y=1.0).matrices(1, rng, (8, 8), (8, 8))[0]
    assert np.allclose(z[:2], [[0.5, 0, -0.5], [0, 0.5, 0.5]])
    # fastai's numbering of the symmetries: 3 swaps x and y with x mirrored
    assert Dihedral(p=1., draw=3).matrices(1, rng, (8, 8), (8, 8))[0, :2, :2].tolist() == [[0, -1], [1, 0]]
    _, shift = Brightness(p=1., draw=0.7).lighting(2, rng)
    assert np.allclose(1 / (1 + np.exp(-shift)), 0.7)
    assert Contrast(p=1., draw=1.5).lighting(2, rng)[0].tolist() == [1.5, 1.5]
    assert Saturation(p=1., draw=0.5).saturation(2, rng).tolist() == [0.5, 0.5]
    assert Hue(p=1., draw=0.25).hue(2, rng).tolist() == [0.25, 0.25]
    assert np.allclose(Warp(p=1., draw_x=0.1, draw_y=0.0).matrices(1, rng, (8, 8), (8, 8))[0, 2], [-0.1, 0, 1])


def test_batch_draws_once_for_the_batch():
    m = Rotate(30, p=0.5, batch=True).matrices(64, np.random.default_rng(0), (8, 8), (8, 8))
    assert len({round(float(a), 9) for a in m[:, 1, 0]}) == 1
    f = Flip(p=0.5, batch=True).matrices(64, np.random.default_rng(1), (8, 8), (8, 8))[:, 0, 0]
    assert len(set(f.tolist())) == 1
    assert len(set(Flip(p=0.5).matrices(64, np.random.default_rng(1), (8, 8), (8, 8))[:, 0, 0].tolist())) == 2


def test_unavailable_or_bad_arguments_are_refused_by_name():
    with pytest.raises(ParameterError, match="align_corners=True"):
        Rotate(align_corners=True)
    with pytest.raises(ParameterError, match="draw=.*a function.*subclass Rotate"):
        Rotate(draw=lambda x: x)
    with pytest.raises(ParameterError, match="pad_mode='mirror'"):
        Zoom(pad_mode="mirror")
    with pytest.raises(ParameterError, match="mode='bicubic'"):
        Flip(mode="bicubic")
    with pytest.raises(ParameterError, match="size"):
        Dihedral(size=0)
    with pytest.raises(ParameterError, match="draw=9"):
        Dihedral(draw=9)
    with pytest.raises(ParameterError, match="draw=1.5"):
        Brightness(draw=1.5)


def test_samplers_given_together_take_one_resampling():
    aug = grouped_batch_tfms([Rotate(pad_mode="zeros"), Flip(), Zoom(pad_mode="zeros"), Brightness()])
    assert len(aug) == 1 and aug[0].settings.pad_mode == "zeros"
    with pytest.raises(ParameterError, match="pad_mode='zeros'.*pad_mode='border'.*Sampler.batch_transform"):
        grouped_batch_tfms([Rotate(pad_mode="zeros"), Zoom(pad_mode="border")])
    with pytest.raises(ParameterError, match="size"):
        grouped_batch_tfms([Rotate(size=32), Zoom(size=64)])
    # a sampler's own setting that its augmentation's settings contradict is refused, not ignored
    from pipekit.vision import BatchAugment
    aug2 = BatchAugment(AugmentSettings(max_rotate=0), extra_samplers=[Rotate(pad_mode="zeros")])
    with pytest.raises(ParameterError, match="pad_mode='zeros'.*pad_mode='reflection'"):
        aug2.encode((torch.zeros(2, 8, 8, 3, dtype=torch.uint8),), _ctx(geometry=("image",)))


@pytest.mark.parametrize("pad_mode", ["reflection", "zeros", "border"])
def test_executors_give_the_same_masks(camvid, pad_mode):
    _, masks = camvid
    n = len(masks)
    valid = sample_plan(n, (48, 64), _ctx().rng, AugmentSettings(size=(40, 56)), train=False)
    train = sample_plan(n, (48, 64), _ctx().rng, AugmentSettings(size=(40, 56), min_scale=0.5, max_rotate=30,
                                                                  max_warp=0.3, p_affine=1.0, flip_vert=True))
    # scaled, moved or mirrored: the very same pixels; rotated and warped: OpenCV's own ties, in a rare pixel
    assert valid.axis_aligned and not train.axis_aligned
    assert torch.equal(warp_cv2(masks, valid, "nearest", pad_mode), warp_torch(masks, valid, "nearest", pad_mode))
    a, b = warp_cv2(masks, train, "nearest", pad_mode), warp_torch(masks, train, "nearest", pad_mode)
    assert (a == b).float().mean() > 0.995
    # the validation squish of 48 rows to 40: source rows 2.5, 8.5, 14.5 ... are ties, taken to the even row
    rows = nearest_indices(valid, pad_mode)[0][0, :, 0] // 64
    assert rows[[2, 7, 12, 17, 22]].tolist() == [2, 8, 14, 20, 26]
