"""fastai's single augmentations take fastai's keyword arguments; masks resample alike on both executors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import BatchContext
from pipekit.data.transform import grouped_batch_tfms
from pipekit.core.component import Component
from pipekit.vision import (AugmentPlan, AugmentSettings, BatchAugment, Brightness, Contrast, Dihedral, Flip, Hue,
                            Resize, Rotate, Sampler, Saturation, Warp, Zoom, aug_transforms, build_image_store,
                            sample_plan, warp_cv2, warp_torch)
from pipekit.vision.augment import nearest_indices, warp_cv2_float
from pipekit.vision.samplers import LightingSampler


def _camvid_masks(size):
    p = D.path("camvid_tiny")
    masks = [p / "labels" / f"{f.stem}_P{f.suffix}" for f in sorted((p / "images").glob("*.png"))[:6]]
    return build_image_store(masks, Resize(size), mode="mask", cache_dir=False).gather(np.arange(6))


@pytest.fixture(scope="module")
def camvid():
    p = D.path("camvid_tiny")
    imgs = sorted((p / "images").glob("*.png"))[:6]
    x = build_image_store(imgs, Resize((48, 64)), cache_dir=False).gather(np.arange(6))
    return x, _camvid_masks((48, 64))


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
    # fastai's rotate_mat for an angle t (square output): [[cos t, sin t], [-sin t, cos t]], output -> input
    m = Rotate(draw=30, p=1.).matrices(3, rng, (8, 8), (8, 8))
    t = np.radians(30)
    assert np.allclose(m[:, :2, :2], [[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    m = Rotate(draw=[10, -20], p=1.).matrices(2, rng, (8, 8), (8, 8))
    assert np.allclose(np.degrees(np.arctan2(m[:, 0, 1], m[:, 0, 0])), [10, -20])
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
    # fastai's homographies for draw_x=0.1 and draw_y=0.1: perspective rows [-0.1, 0, 1] and [0, -0.1, 1]
    assert np.allclose(Warp(p=1., draw_x=0.1, draw_y=0.0).matrices(1, rng, (8, 8), (8, 8))[0, 2], [-0.1, 0, 1])
    w = Warp(p=1., draw_x=0.0, draw_y=0.1).matrices(1, rng, (8, 8), (8, 8))[0]
    assert np.allclose(w[2], [0, -0.1, 1]) and w[1, 2] < 0


def test_given_angles_turn_the_picture_as_fastai_and_drawn_ones_are_unchanged():
    # a positive draw turns the picture clockwise, as fastai's Rotate(draw=90): the top row becomes the right column
    mask = torch.zeros(1, 8, 8, dtype=torch.uint8)
    mask[0, 0] = 1
    aug = Sampler.batch_transform([Rotate(draw=90, p=1., mode="nearest")])
    for executor in ("cv2", "torch"):
        aug.settings = AugmentSettings(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0,
                                       mode="nearest", executor=executor)
        (out,) = aug.encode((mask,), _ctx(geometry=("mask",)))
        assert out[0, :, 7].tolist() == [1] * 8 and int(out.sum()) == 8
    # drawn angles are the stream's uniform draws, as before (a Warp's drawn tilts likewise)
    m = Rotate(30, p=1.).matrices(4, np.random.default_rng(0), (8, 8), (8, 8))
    drawn = np.random.default_rng(0)
    drawn.uniform(size=4)  # the coins
    assert np.allclose(np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])), drawn.uniform(-30, 30, 4))
    assert np.round(Warp(0.2, p=0.5).matrices(4, np.random.default_rng(0), (64, 64), (64, 64))[:, 2, :2], 3).tolist() \
        == [[-0.174, 0.0], [0.199, 0.126], [0.0, 0.0], [0.0, 0.0]]


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
    # a sampler's own setting that its augmentation's settings contradict is refused when the augmentation is built
    with pytest.raises(ParameterError, match="BatchAugment: pad_mode='reflection' from the augmentation's settings.*"
                                             "pad_mode='zeros' from Rotate"):
        BatchAugment(AugmentSettings(max_rotate=0), extra_samplers=[Rotate(pad_mode="zeros")])
    with pytest.raises(ParameterError, match="size=32.*size=48"):
        BatchAugment(AugmentSettings(size=32, max_rotate=0), extra_samplers=[Rotate(size=48)])


def test_equal_sizes_are_one_size():
    # 32 and (32, 32) are one size: given together they agree, in the samplers and against the settings
    (aug,) = grouped_batch_tfms([Rotate(size=32), Zoom(size=(32, 32))])
    assert aug.settings.size in (32, (32, 32))
    images = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    for settings, sampler in [(AugmentSettings(size=32, max_rotate=0), Rotate(size=(32, 32))),
                              (AugmentSettings(size=(32, 32), max_rotate=0), Rotate(size=32))]:
        (out,) = BatchAugment(settings, extra_samplers=[sampler]).encode((images,), _ctx(geometry=("image",)))
        assert tuple(out.shape[1:3]) == (32, 32)
        assert sample_plan(2, (8, 8), _ctx().rng, settings, extra=[sampler]).out_size == (32, 32)


def test_records_of_samplers_without_fastai_arguments_are_the_older_ones():
    # what a sampler given none of fastai's arguments writes is what pipekit wrote before it took them, so an older
    # pipekit loads the file; a record without them reads as their defaults
    older = {Rotate(): {"max_deg": 10.0, "p": 0.5}, Flip(): {"p": 0.5}, Dihedral(): {"p": 0.5},
             Zoom(): {"min_zoom": 1.0, "max_zoom": 1.1, "p": 0.5}, Warp(): {"magnitude": 0.2, "p": 0.5},
             Brightness(): {"max_lighting": 0.2, "p": 0.75}, Contrast(): {"max_lighting": 0.2, "p": 0.75},
             Saturation(): {"max_lighting": 0.2, "p": 0.75}, Hue(): {"max_hue": 0.1, "p": 0.75}}
    for sampler, params in older.items():
        rec = sampler.to_record()
        assert rec["params"] == params, rec
        back = Component.from_record(json.loads(json.dumps(rec)))
        assert back.get_params() == sampler.get_params()
    given = Rotate(draw=5.0, batch=True, pad_mode="zeros").to_record()["params"]
    assert given == {"max_deg": 10.0, "p": 0.5, "draw": 5.0, "pad_mode": "zeros", "batch": True}
    assert Component.from_record(json.loads(json.dumps(Rotate(draw=5.0, batch=True).to_record()))).batch is True


def test_numpy_draws_are_kept_as_numbers():
    r = Rotate(draw=np.array([10.0, -20.0]), p=1.)
    assert r.draw == [10.0, -20.0] and all(type(v) is float for v in r.draw)
    assert type(Flip(draw=np.int64(1)).draw) is int and type(Brightness(draw=np.float32(0.5)).draw) is float
    rec = json.loads(json.dumps(r.to_record()))
    assert rec["params"]["draw"] == [10.0, -20.0]


def test_aug_transforms_batch_points_to_the_single_augmentations():
    with pytest.raises(ParameterError, match=r"single augmentations with batch=True in batch_tfms.*Rotate\(p=0.75, "
                                             r"batch=True\)"):
        aug_transforms(batch=True)


@pytest.mark.parametrize("pad_mode", ["reflection", "zeros", "border"])
def test_executors_give_the_same_masks(camvid, pad_mode):
    _, masks = camvid
    n = len(masks)
    valid = sample_plan(n, (48, 64), _ctx().rng, AugmentSettings(size=(40, 56)), train=False)
    train = sample_plan(n, (48, 64), _ctx().rng, AugmentSettings(size=(40, 56), min_scale=0.5, max_rotate=30,
                                                                  max_warp=0.3, p_affine=1.0, flip_vert=True))
    # scaled, moved or mirrored: the very same pixels; rotated and warped: OpenCV's own ties, in a rare pixel
    assert valid.aligned.all() and not train.aligned.all()
    assert torch.equal(warp_cv2(masks, valid, "nearest", pad_mode), warp_torch(masks, valid, "nearest", pad_mode))
    a, b = warp_cv2(masks, train, "nearest", pad_mode), warp_torch(masks, train, "nearest", pad_mode)
    assert (a == b).float().mean() > 0.995
    # the validation squish of 48 rows to 40: source rows 2.5, 8.5, 14.5 ... are ties, taken to the even row
    picks = nearest_indices(valid, pad_mode)
    assert picks.rows.shape == (n, 40) and picks.cols.shape == (n, 56)
    assert picks.rows[0, [2, 7, 12, 17, 22]].tolist() == [2, 8, 14, 20, 26]


@pytest.mark.parametrize("pad_mode", ["reflection", "zeros", "border"])
@pytest.mark.parametrize("in_hw, out_hw", [((224, 224), (112, 112)), ((96, 128), (48, 64)), ((6, 6), (3, 3))])
def test_executors_give_the_same_resized_flipped_and_zoomed_masks(in_hw, out_hw, pad_mode):
    # halving a side puts every output pixel's source half-way between two pixels: each executor must break the
    # ties alike (the torch executor's float32 grid would break some either way)
    masks = _camvid_masks(in_hw)
    n = len(masks)
    valid = sample_plan(n, in_hw, _ctx().rng, AugmentSettings(size=out_hw), train=False)
    train = sample_plan(n, in_hw, _ctx(key=2).rng, AugmentSettings(size=out_hw, max_rotate=0, max_warp=0,
                                                                    min_zoom=0.6, max_zoom=1.5, p_affine=1.0))
    flips = AugmentPlan(np.tile(np.diag([-1.0, 1.0, 1.0]), (n, 1, 1)), in_hw, in_hw, np.zeros(n), np.ones(n))
    for plan in (valid, train, flips):
        assert plan.aligned.all()
        a, b = warp_cv2(masks, plan, "nearest", pad_mode), warp_torch(masks.long(), plan, "nearest", pad_mode)
        assert torch.equal(a.long(), b) and b.dtype == torch.long
        picks = nearest_indices(plan, pad_mode)
        assert picks.rows.shape == (n, plan.out_size[0]) and picks.cols.shape == (n, plan.out_size[1])
        # each output pixel is its row's and column's source pixel (or padding): the mask one axis at a time
        want = masks.numpy()[np.arange(n)[:, None, None], picks.rows[:, :, None], picks.cols[:, None, :]]
        want = want * (picks.rows_inside[:, :, None] & picks.cols_inside[:, None, :])
        assert np.array_equal(a.numpy(), want)
    # zoomed out with pad_mode='zeros': padding rows and columns are 0; with the others, none is padding
    inside = nearest_indices(train, pad_mode)
    padded = ~(inside.rows_inside.all() and inside.cols_inside.all())
    assert padded == (pad_mode == "zeros")
    # the flips mirror whole pixels: the mask read backwards
    assert torch.equal(warp_torch(masks, flips, "nearest", pad_mode), masks.flip(2))
    # the validation halving: source rows 0.5, 2.5, ... go to the even rows
    assert nearest_indices(valid, pad_mode).rows[0].tolist() == list(range(0, in_hw[0], 2))


def _coded(n, hw, axis):
    """uint8 images (n, H, W, 3) and masks (n, H, W) whose every pixel is its source row (axis 1) or column (axis 2)
    mod 251: what a resampled pixel holds says which source row or column it came from."""
    h, w = hw
    line = (torch.arange(hw[axis - 1]) % 251).to(torch.uint8)
    masks = (line.view(1, h, 1) if axis == 1 else line.view(1, 1, w)).expand(n, h, w).contiguous()
    return masks[..., None].expand(n, h, w, 3).contiguous(), masks


@pytest.mark.parametrize("executor", ["cv2", "torch"])
@pytest.mark.parametrize("in_hw, out_hw", [((48, 64), (40, 56)), ((96, 128), (48, 64)), ((224, 224), (112, 112))])
def test_nearest_images_take_the_rows_and_columns_their_masks_take(executor, in_hw, out_hw):
    # resizes putting source points half-way between two pixels: with mode='nearest' an image and its mask must take
    # the same source row and column for every pixel, in validation (the squish) and in training (zoom, flip)
    settings = AugmentSettings(size=out_hw, mode="nearest", executor=executor, max_rotate=0, max_warp=0, min_zoom=0.7,
                               max_zoom=1.4, p_affine=1.0, max_lighting=0)
    for train in (False, True):
        for axis in (1, 2):
            imgs, masks = _coded(4, in_hw, axis)
            x, y = BatchAugment(settings).encode((imgs, masks.clone()), _ctx(train=train, key=3))
            got = x[..., 0] if x.dtype == torch.uint8 else (x[:, 0] * 255).round().to(torch.uint8)
            assert torch.equal(got, y), (train, axis)
    # and the image converted to float in the same pass (an augmentation followed by Normalize or IntToFloat)
    imgs, masks = _coded(4, in_hw, 1)
    plan = sample_plan(4, in_hw, _ctx().rng, AugmentSettings(size=out_hw), train=False)
    floats = warp_cv2_float(imgs, plan, [1.0] * 3, [0.0] * 3, mode="nearest")
    assert torch.equal(floats[:, 1].to(torch.uint8), warp_cv2(masks, plan, "nearest"))


def test_nearest_images_are_lit_after_taking_their_pixels(camvid):
    x, masks = camvid
    n = len(x)
    plan = sample_plan(n, (48, 64), _ctx().rng, AugmentSettings(size=(40, 56)), train=False)
    lit = AugmentPlan(plan.matrices, plan.in_size, plan.out_size, np.linspace(-1, 1, n), np.full(n, 1.3))
    dark = warp_cv2(x, plan, "nearest")
    want = np.stack([lit.luts()[i][dark[i].numpy()] for i in range(n)])
    assert np.array_equal(warp_cv2(x, lit, "nearest").numpy(), want)
    # the torch executor lights the same pixels in float: within a level of the lookup tables
    assert (warp_torch(x, lit, "nearest").permute(0, 2, 3, 1) * 255 - torch.from_numpy(want)).abs().max() <= 1.0


def _rotation(deg):
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


@pytest.mark.parametrize("pad_mode", ["reflection", "zeros"])
def test_each_image_of_a_batch_takes_the_nearest_picks_on_its_own(camvid, pad_mode):
    # a batch mixing rotated images with images only squished, zoomed or mirrored: each of the latter gives what it
    # gives alone, on both executors, masks and nearest images alike
    x, masks = camvid
    zoom = np.diag([-1 / 1.3, 1 / 1.3, 1.0])
    zoom[:2, 2] = [0.1, -0.2]
    mats = np.stack([np.eye(3), _rotation(20), zoom, _rotation(-7) @ zoom, np.diag([-1.0, 1, 1]), _rotation(45)])
    n = len(mats)
    plan = AugmentPlan(mats, (48, 64), (40, 56), np.zeros(n), np.ones(n))
    aligned = np.array([True, False, True, False, True, False])
    for data in (masks, x):
        c, t = warp_cv2(data, plan, "nearest", pad_mode), warp_torch(data, plan, "nearest", pad_mode)
        t = t if data.ndim == 3 else (t * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        for i in range(n):
            alone = warp_cv2(data[i:i + 1], AugmentPlan(mats[i:i + 1], (48, 64), (40, 56), np.zeros(1), np.ones(1)),
                             "nearest", pad_mode)[0]
            assert torch.equal(c[i], alone), (data.ndim, i)
            if aligned[i]:
                assert torch.equal(t[i], alone), (data.ndim, i)
            else:  # the others as OpenCV and grid_sample resample them: a tie may fall differently
                assert (c[i] == t[i]).float().mean() > 0.99
    assert plan.aligned.tolist() == aligned.tolist()


class _Cutout(LightingSampler):
    """A user's sampler whose own ``mode`` means something else than resampling."""

    stream = "cutout"

    def __init__(self, mode="random", size=3):
        self.mode, self.size = mode, size

    def lighting(self, n, rng):
        return np.ones(n), np.zeros(n)


def test_a_users_sampler_attributes_are_not_read_as_resampling_settings():
    assert Sampler.batch_transform([_Cutout(), Flip()]).settings.mode == "bilinear"
    aug = Sampler.batch_transform([_Cutout(), Rotate(30, mode="nearest", size=32)])
    assert aug.settings.mode == "nearest" and aug.settings.size == 32
    aug = BatchAugment(AugmentSettings(size=16), extra_samplers=[_Cutout(size=5)])
    assert aug.plan(2, (20, 20), _ctx().rng, True).out_size == (16, 16)
    # the resampling arguments of pipekit's samplers are still read, kept through set_params and clone
    with pytest.raises(ParameterError, match="pad_mode"):
        Sampler.batch_transform([Rotate(pad_mode="zeros"), Flip().set_params(pad_mode="border")])
    assert Sampler.batch_transform([Zoom(mode="nearest").clone(), _Cutout()]).settings.mode == "nearest"


@pytest.mark.parametrize("draw", [torch.tensor(30.), [torch.tensor(30.), torch.tensor(-20.)], np.float64(30.)])
def test_tensor_draws_are_kept_as_numbers_through_save_and_load(tmp_path, draw):
    # a draw given as torch's (or NumPy's) number is kept as the plain number it holds, so a saved sampler loads as
    # the same sampler: one value for every image, or one per image
    r = Rotate(draw=draw, p=1.)
    assert type(r.draw) is float or all(type(v) is float for v in r.draw)
    back = pipekit.load(pipekit.save(r, tmp_path / "rotate.pipekit"))
    assert back.draw == r.draw
    rng = np.random.default_rng(0)
    assert np.array_equal(back.matrices(2, rng, (8, 8), (8, 8)), r.matrices(2, np.random.default_rng(0), (8, 8), (8, 8)))
    with pytest.raises(ParameterError, match="draw="):
        Rotate(draw=[torch.tensor(30.), torch.tensor(float("nan"))])


def test_samplers_and_their_settings_agree_through_one_check(camvid):
    x, _ = camvid
    # the plan of a batch refuses what the augmentation would: its settings changed after it was built included
    with pytest.raises(ParameterError, match="sample_plan: mode='bilinear' from the augmentation's settings.*"
                                             "mode='nearest' from Rotate.*Sampler.batch_transform"):
        sample_plan(2, (8, 8), _ctx().rng, AugmentSettings(), extra=[Rotate(mode="nearest")])
    aug = Sampler.batch_transform([Rotate(30, p=1., pad_mode="zeros")])
    aug.settings = AugmentSettings(max_rotate=0)
    with pytest.raises(ParameterError, match="sample_plan: pad_mode='reflection'.*pad_mode='zeros'"):
        aug.encode((x,), _ctx(geometry=("image",)))


def test_nearest_indices_refuses_a_rotated_plan_unless_told(camvid):
    _, masks = camvid
    mats = np.stack([np.diag([-1.0, 1, 1]), _rotation(20)])
    plan = AugmentPlan(mats, (48, 64), (40, 56), np.zeros(2), np.ones(2))
    with pytest.raises(ParameterError, match=r"nearest_indices: the plan rotates, shears or warps image\(s\) \[1\].*"
                                             "strict=False"):
        nearest_indices(plan)
    # strict=False: the rotated image's picks have nothing inside (gathered, it is all padding); the mirrored one's
    # are its own
    picks = nearest_indices(plan, strict=False)
    assert picks.rows_inside[0].all() and not picks.rows_inside[1].any() and not picks.cols_inside[1].any()
    gathered = picks.gather(masks[:2])
    assert not gathered[1].any()
    alone = nearest_indices(AugmentPlan(mats[:1], (48, 64), (40, 56), np.zeros(1), np.ones(1)))
    assert torch.equal(gathered[:1], alone.gather(masks[:1]))
