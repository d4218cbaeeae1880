"""The augmentation plan (samplers on their own streams) and its two executors, on real images."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import pipekit.datasets as D
from pipekit.core import Component
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import BatchContext
from pipekit.vision import (AffineSampler, AugmentPlan, AugmentSettings, BatchAugment, CropPad, Dihedral, FlipVert,
                            LightingSampler, Resize, Rotate, Warp, aug_transforms, build_image_store, map_points,
                            sample_plan, warp_cv2, warp_torch)
from pipekit.vision.geometry import crop_matrices, eye_stack, keystone_matrices, pixel_matrices


@pytest.fixture(scope="module")
def dog_batch():
    files = sorted((D.path("dogscats") / "train" / "dogs").glob("*.jpg"))[:12]
    return build_image_store(files, Resize(96), cache_dir=False).gather(np.arange(12))


@pytest.fixture(scope="module")
def camvid():
    p = D.path("camvid_tiny")
    imgs = sorted((p / "images").glob("*.png"))[:6]
    masks = [p / "labels" / f"{f.stem}_P{f.suffix}" for f in imgs]
    x = build_image_store(imgs, Resize((72, 96)), cache_dir=False).gather(np.arange(6))
    y = build_image_store(masks, Resize((72, 96)), mode="mask", cache_dir=False).gather(np.arange(6))
    return x, y


def _streams(seed):
    """The random streams of batch ``seed``, as a BatchAugment sees them."""
    return BatchContext(("image",), 1, True, torch.device("cpu"), key=(seed,)).rng


def _settings(**kw):
    args = dict(size=80, min_scale=0.6, max_rotate=25, max_zoom=1.3, max_warp=0.2, max_lighting=0.3,
                p_affine=1.0, p_lighting=1.0)
    args.update(kw)
    return AugmentSettings(**args)


def _full_plan(n, in_size, seed, **kw):
    return sample_plan(n, in_size, _streams(seed), _settings(**kw))


def _centre_plan(n, in_size, size=None):
    return sample_plan(n, in_size, _streams(0), AugmentSettings(size=size), train=False)


@pytest.mark.parametrize("pad_mode", ["reflection", "zeros", "border"])
def test_executors_agree_on_the_same_plan(dog_batch, pad_mode):
    plan = _full_plan(len(dog_batch), (96, 96), 0)
    a = warp_cv2(dog_batch, plan, pad_mode=pad_mode).permute(0, 3, 1, 2).float()
    b = warp_torch(dog_batch, plan, pad_mode=pad_mode) * 255
    diff = (a - b).abs()
    assert a.shape == b.shape == (12, 3, 80, 80)
    assert diff.mean() < 1.0, diff.mean()
    assert torch.quantile(diff.flatten()[::7], 0.999) < 8
    # the plan really changed the pictures (a test against the unaugmented centre crop)
    centre = warp_torch(dog_batch, _centre_plan(12, (96, 96), 80)) * 255
    assert (a - centre).abs().mean() > 10


def test_executors_agree_for_nearest_masks(camvid):
    _, masks = camvid
    plan = _full_plan(len(masks), (72, 96), 3, size=(64, 80))
    a = warp_cv2(masks, plan, mode="nearest")
    b = warp_torch(masks, plan, mode="nearest")
    assert a.dtype == b.dtype == torch.uint8 and a.shape == (6, 64, 80)
    assert (a == b).float().mean() > 0.99
    assert set(torch.unique(a).tolist()) <= set(torch.unique(masks).tolist())  # no blended class values


def test_masks_follow_their_images_under_rotation_and_flip(camvid):
    _, masks = camvid
    palette = np.random.default_rng(0).integers(0, 256, (256, 3)).astype(np.uint8)
    palette[:32] = np.array([[(i * 37) % 256, (i * 91) % 256, (i * 53) % 256] for i in range(32)], np.uint8)
    images = torch.from_numpy(palette[masks.numpy()])  # an image painted with its own mask's classes
    plan = _full_plan(len(masks), (72, 96), 5, max_rotate=40, max_warp=0.0, max_lighting=0.0)
    assert np.any(plan.matrices[:, 0, 0] < 0) or np.any(plan.matrices[:, 0, 1] != 0)
    aug = BatchAugment(AugmentSettings(size=(64, 80), max_rotate=40, max_zoom=1.3, max_warp=0.0, max_lighting=0.0,
                                       p_affine=1.0, mode="nearest", min_scale=0.6))
    ctx = BatchContext(geometry=("image", "mask"), n_inp=1, train=True, device=torch.device("cpu"), key=(5,))
    img, mask = aug.encode((images, masks), ctx)
    recovered = np.argmin(((img.numpy()[..., None, :].astype(int) - palette[None, None, None, :32]) ** 2).sum(-1), -1)
    agree = (recovered == mask.numpy()).mean()
    assert agree > 0.97, agree
    # a mask that does not follow (unaugmented centre crop) disagrees badly
    centre = warp_cv2(masks, _centre_plan(6, (72, 96), (64, 80)), "nearest")
    assert (recovered == centre.numpy()).mean() < 0.8


def test_points_follow_their_images(dog_batch):
    n, size = 8, 96
    rng = np.random.default_rng(1)
    pix = rng.uniform(25, 70, (n, 2))
    images = np.zeros((n, size, size, 3), np.uint8)
    for i, (x, y) in enumerate(pix.astype(int)):
        images[i, y - 1:y + 2, x - 1:x + 2] = 255  # a 3x3 dot centred on pixel (x, y)
    points = torch.tensor((pix.astype(int) + 0.5) / size * 2 - 1, dtype=torch.float32)[:, None, :]
    aug = BatchAugment(AugmentSettings(size=80, max_rotate=45, max_zoom=1.2, max_warp=0.1, max_lighting=0.0, p_affine=1.0,
                                       min_scale=0.8))
    ctx = BatchContext(geometry=("image", "points"), n_inp=1, train=True, device=torch.device("cpu"), key=(2,))
    img, pts = aug.encode((torch.from_numpy(images), points), ctx)
    flipped = 0
    for i in range(n):
        w = img[i, :, :, 0].numpy().astype(float)
        ys, xs = np.mgrid[:80, :80]
        cx, cy = (w * xs).sum() / w.sum() + 0.5, (w * ys).sum() / w.sum() + 0.5
        px, py = (pts[i, 0, 0].item() + 1) * 40, (pts[i, 0, 1].item() + 1) * 40
        assert abs(cx - px) < 1.0 and abs(cy - py) < 1.0, (i, cx, cy, px, py)
    plan = aug.plan(n, (size, size), ctx.rng, True)
    flipped = int((np.linalg.det(plan.matrices[:, :2, :2]) < 0).sum())
    assert flipped > 0  # some images were mirrored, and their points went with them
    back = map_points(pts, AugmentPlan(np.linalg.inv(plan.matrices), (80, 80), (96, 96), np.zeros(n), np.ones(n)))
    assert torch.allclose(back, points, atol=1e-4)


def test_same_seed_same_plan_and_pixels(dog_batch):
    p1 = _full_plan(12, (96, 96), 7)
    p2 = _full_plan(12, (96, 96), 7)
    p3 = _full_plan(12, (96, 96), 8)
    assert np.array_equal(p1.matrices, p2.matrices) and np.array_equal(p1.brightness, p2.brightness)
    assert not np.allclose(p1.matrices, p3.matrices)
    assert torch.equal(warp_cv2(dog_batch, p1), warp_cv2(dog_batch, p2))
    assert torch.equal(warp_torch(dog_batch, p1), warp_torch(dog_batch, p2))


def test_validation_plan_is_deterministic_and_plain(dog_batch):
    a = sample_plan(12, (96, 96), _streams(0), AugmentSettings(size=64), train=False)
    b = sample_plan(12, (96, 96), _streams(99), AugmentSettings(size=64), train=False)
    assert np.array_equal(a.matrices, b.matrices) and not a.has_lighting
    assert np.allclose(a.matrices[0], np.diag([1.0, 1.0, 1.0]))  # square in, square out: a pure resize
    assert _centre_plan(3, (96, 96)).identity
    out = BatchAugment(AugmentSettings(size=None)).encode((dog_batch, torch.zeros(12)), BatchContext(
        ("image", None), 1, False, torch.device("cpu")))
    assert out[0] is dog_batch  # validation without resizing leaves the batch untouched


def test_lighting_lut_matches_float_formula():
    plan = AugmentPlan(np.eye(3)[None].repeat(2, 0), (4, 4), (4, 4), np.array([0.4, -0.7]), np.array([1.3, 0.8]))
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).repeat(2, 1, 1, 1)
    a = warp_cv2(x.reshape(2, 16, 16, 1), AugmentPlan(plan.matrices, (16, 16), (16, 16), plan.brightness, plan.contrast))
    b = warp_torch(x, AugmentPlan(plan.matrices, (16, 16), (16, 16), plan.brightness, plan.contrast)) * 255
    assert (a.permute(0, 3, 1, 2).float() - b).abs().max() <= 1.0
    assert a[0].float().mean() > x[0].float().mean() and a[1].float().mean() < x[1].float().mean()


def test_unchanged_lighting_table_is_the_identity():
    # warp_cv2 skips the lookup for images whose lighting is unchanged: that must be exact.
    plan = AugmentPlan(np.eye(3)[None].repeat(2, 0), (4, 4), (4, 4), np.array([0.0, 0.3]), np.array([1.0, 1.0]))
    luts = plan.luts()
    assert np.array_equal(luts[0], np.arange(256)) and not np.array_equal(luts[1], np.arange(256))


def test_cv2_executor_matches_a_plain_per_image_reference(dog_batch):
    """The batch executor (in-place writes, skipped identity lookups) gives exactly the plain OpenCV result."""
    import cv2

    plan = _full_plan(len(dog_batch), (96, 96), 3, p_lighting=0.5, p_affine=0.5)
    got = warp_cv2(dog_batch, plan).numpy()
    luts = plan.luts()
    assert ((plan.brightness == 0) & (plan.contrast == 1)).any() and (plan.brightness != 0).any()
    for i, img in enumerate(dog_batch.numpy()):
        pm = pixel_matrices(plan.matrices[i], (96, 96), (80, 80))
        ref = cv2.warpPerspective(img, pm, (80, 80), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
        if abs(pm[2, 0]) < 1e-12 and abs(pm[2, 1]) < 1e-12:
            ref = cv2.warpAffine(img, pm[:2] / pm[2, 2], (80, 80), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
        assert np.array_equal(got[i], cv2.LUT(ref, luts[i])), f"image {i} differs"
    grey = warp_cv2(dog_batch[..., :1], plan).numpy()  # one channel goes through the 2-D path
    assert grey.shape == (len(dog_batch), 80, 80, 1)
    assert np.abs(grey[..., 0].astype(int) - got[..., 0]).max() == 0


@pytest.mark.parametrize("flip_vert,out_hw", [(True, (60, 90)), (True, (64, 64)), (False, (60, 90))],
                         ids=["dihedral-wide", "dihedral-square", "flip-wide"])
def test_batched_plan_equals_composing_each_image_alone(flip_vert, out_hw):
    """sample_plan builds the matrices as stacks; they must equal the per-image composition exactly."""
    n, (ho, wo), in_hw = 32, out_hw, (80, 120)
    settings = AugmentSettings(size=(ho, wo), min_scale=0.3, ratio=(0.75, 1.33), max_rotate=30, max_zoom=1.5,
                               max_warp=0.3, flip_vert=flip_vert, p_affine=0.6)
    plan = sample_plan(n, in_hw, _streams(5), settings)
    rng = _streams(5)  # the same draws, each from its sampler's stream in that sampler's order
    crop = rng("crop")
    scale, log_r, uv = crop.uniform(0.3, 1.0, n), crop.uniform(math.log(0.75), math.log(1.33), n), crop.uniform(0, 1, (n, 2))
    # fastai's further tries for a crop that does not fit (rounded to whole pixels), then the centred crop
    more = crop.uniform(0.3, 1.0, (n, 9)), crop.uniform(math.log(0.75), math.log(1.33), (n, 9))
    z = rng("zoom")
    zoom = np.where(z.uniform(size=n) < 0.6, z.uniform(1.0, 1.5, n), 1.0)
    zc = z.uniform(-1, 1, (n, 2))
    r = rng("rotate")
    on = r.uniform(size=n) < 0.6
    angle = np.deg2rad(r.uniform(-30, 30, n)) * on
    w = rng("warp")
    on = w.uniform(size=(n, 2)) < 0.6  # one coin per direction, as fastai's
    warp = w.uniform(-0.3, 0.3, (n, 2)) * on
    # fastai's aug_transforms: Dihedral(p=0.5) with flip_vert (the 8 symmetries of a square output, the identity
    # and the 3 mirrors of any other), else Flip(p=0.5)
    if flip_vert:
        d = rng("dihedral")
        on = d.uniform(size=n) < 0.5
        k = np.where(on, d.integers(0, 8 if ho == wo else 4, n), 0)
    else:
        k = np.where(rng("flip").uniform(size=n) < 0.5, 2, 0)  # the left-right mirror
    signs = [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)]
    flips = [np.diag([a, b, 1.0]) for a, b in signs] + [np.array([[0, a, 0], [b, 0, 0], [0, 0, 1.0]]) for a, b in signs]
    to_px, from_px = np.diag([wo / 2, ho / 2, 1.0]), np.diag([2 / wo, 2 / ho, 1.0])
    tried = 0
    for i in range(n):
        for t, (sc, lr) in enumerate([(scale[i], log_r[i]), *zip(more[0][i], more[1][i])]):
            r = np.exp(np.array([lr]))
            aspect = (wo / ho) * r[0]
            cw = np.sqrt(sc * in_hw[0] * in_hw[1] * aspect)
            if round(cw) <= in_hw[1] and round(cw / aspect) <= in_hw[0]:
                m = crop_matrices(in_hw, (ho, wo), np.array([sc]), r, uv[i:i + 1])[0]
                tried += t > 0
                break
        else:
            near = np.clip([(in_hw[1] / in_hw[0]) / (wo / ho)], 0.75, 1.33)
            m = crop_matrices(in_hw, (ho, wo), np.ones(1), near, np.full((1, 2), 0.5))[0]
        if zoom[i] != 1:
            s = 1 / zoom[i]
            m = m @ np.array([[s, 0, zc[i, 0] * (1 - s)], [0, s, zc[i, 1] * (1 - s)], [0, 0, 1]])
        if angle[i] != 0:
            c, s = np.cos(angle[i]), np.sin(angle[i])
            m = m @ (from_px @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ to_px)
        if warp[i].any():
            m = m @ keystone_matrices(warp[i:i + 1])[0]
        m = m @ flips[k[i]]
        assert np.array_equal(plan.matrices[i], m), f"image {i}"
    assert (zoom != 1).any() and (angle != 0).any() and warp.any() and (k != 0).any() and (k == 0).any()
    assert tried  # some crops fitted only at a later try
    assert (k >= 4).any() == (flip_vert and ho == wo)  # quarter turns and transposes only for a square output


class Shear(AffineSampler):
    """A sampler of one's own: a horizontal shear, on its own stream."""

    stream = "shear"

    def __init__(self, max_shear: float = 0.3):
        self.max_shear = max_shear

    def matrices(self, n, rng, in_hw, out_hw):
        m = eye_stack(n)
        m[:, 0, 1] = rng.uniform(-self.max_shear, self.max_shear, n)
        return m


class Gamma(LightingSampler):
    stream = "gamma"

    def lighting(self, n, rng):
        return rng.uniform(0.7, 1.3, n), rng.uniform(-0.2, 0.2, n)


def test_adding_or_removing_a_sampler_leaves_every_other_draw_unchanged():
    n, hw = 16, (96, 96)
    settings = _settings(flip_vert=True, p_affine=0.8, p_lighting=0.8)
    base = sample_plan(n, hw, _streams(3), settings)
    # an extra affine sampler: the composed matrices are the old ones times its own, lighting untouched
    sheared = sample_plan(n, hw, _streams(3), settings, extra=[Shear()])
    shear = Shear().matrices(n, _streams(3)("shear"), hw, (80, 80))
    assert not np.allclose(shear, np.eye(3))
    assert np.array_equal(sheared.matrices, base.matrices @ shear)
    assert np.array_equal(sheared.brightness, base.brightness) and np.array_equal(sheared.contrast, base.contrast)
    # an extra lighting sampler: geometry untouched, the old lighting mapped through the new one: in logit space
    # (L + brightness) * contrast, then L * scale + shift
    lit = sample_plan(n, hw, _streams(3), settings, extra=[Gamma()])
    scale, shift = Gamma().lighting(n, _streams(3)("gamma"))
    assert np.array_equal(lit.matrices, base.matrices)
    assert np.array_equal(lit.contrast, base.contrast * scale)
    logits = np.linspace(-6, 6, 13)[:, None]
    assert np.allclose((logits + lit.brightness) * lit.contrast,
                       (logits + base.brightness) * base.contrast * scale + shift, rtol=0, atol=1e-12)
    # removing the warp: the crop, zoom, rotation and flips drawn are the same as with it
    no_warp = sample_plan(n, hw, _streams(3), dataclasses.replace(settings, max_warp=0.0))
    warp = Warp(0.2, p=0.8).matrices(n, _streams(3)("warp"), hw, (80, 80))
    flips = Dihedral().matrices(n, _streams(3)("dihedral"), hw, (80, 80))  # flip_vert: fastai's Dihedral(p=0.5)
    assert not np.allclose(warp, np.eye(3)) and (np.abs(flips[:, 0, 1]) == 1).any()  # a quarter turn among them
    assert np.allclose(no_warp.matrices @ np.linalg.inv(flips) @ warp @ flips, base.matrices, rtol=0, atol=1e-12)
    assert np.array_equal(no_warp.brightness, base.brightness)
    # within a BatchAugment, a user's sampler is one more stream; a second sampler on a taken stream is refused
    aug = BatchAugment(settings, extra_samplers=[Shear()])
    assert np.array_equal(aug.plan(n, hw, _streams(3), True).matrices, sheared.matrices)
    with pytest.raises(ParameterError, match="extra_samplers.*stream of its own"):
        BatchAugment(settings, extra_samplers=[Rotate(5.0)])


def test_settings_round_trip_through_records():
    settings = aug_transforms(size=(40, 56), min_scale=0.5, pad_mode="zeros", mult=2.0)[0].settings
    assert settings.max_rotate == 20.0 and settings.size == (40, 56)
    aug = BatchAugment(settings, extra_samplers=[FlipVert(p=0.3)])
    arrays: dict = {}
    rec = json.loads(json.dumps(aug.to_record(arrays)))  # plain data, nothing set aside
    assert not arrays and rec["params"]["settings"]["class"] == "pipekit.vision.AugmentSettings"
    back = Component.from_record(rec)
    assert isinstance(back, BatchAugment) and isinstance(back.settings, AugmentSettings)
    assert back.settings == settings and back.settings.size == (40, 56) and back.settings.ratio == (1.0, 1.0)
    assert [type(s) for s in back.extra_samplers] == [FlipVert] and back.extra_samplers[0].p == 0.3
    assert repr(back) == repr(aug) and repr(aug).startswith("BatchAugment(settings=AugmentSettings(size=(40, 56), "
                                                            "min_scale=0.5, max_rotate=20.0, ")
    assert "max_zoom" not in repr(aug)  # mult leaves the zoom at its default, as fastai's does
    assert repr(aug).endswith("pad_mode='zeros'), extra_samplers=(FlipVert(p=0.3),))")  # defaults are not shown
    p1, p2 = aug.plan(8, (64, 64), _streams(1), True), back.plan(8, (64, 64), _streams(1), True)
    assert np.array_equal(p1.matrices, p2.matrices) and np.array_equal(p1.brightness, p2.brightness)
    assert Component.from_record(settings.to_record()) == settings and aug.clone().settings == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_rotate = 3.0  # type: ignore[misc]
    with pytest.raises(ParameterError, match=r"frozen.*dataclasses.replace\(settings, max_rotate=...\)"):
        aug.set_params(settings__max_rotate=3.0)
    assert aug.set_params(settings=dataclasses.replace(settings, max_rotate=3.0)).settings.max_rotate == 3.0


def test_reflection_padding_means_the_same_on_every_path():
    """'reflection' is grid_sample's (align_corners=False) mirror about the pixel edges, which repeats the edge
    pixel, for the OpenCV executor and the torch executor alike; the presize padding mirrors about the edge pixel,
    as np.pad(mode="reflect") and fastai's pad do."""
    img = np.random.default_rng(0).integers(0, 256, (1, 9, 7, 3), dtype=np.uint8)

    def shift_plan(in_hw, out_hw, dx, dy):
        """The plan moving the picture by whole pixels: input pixel (x, y) = output pixel (x - dx, y - dy)."""
        (hi, wi), (ho, wo) = in_hw, out_hw
        a_out = np.array([[2 / wo, 0, 1 / wo - 1], [0, 2 / ho, 1 / ho - 1], [0, 0, 1]])
        b_in = np.array([[wi / 2, 0, (wi - 1) / 2], [0, hi / 2, (hi - 1) / 2], [0, 0, 1]])
        px = np.array([[1.0, 0, -dx], [0, 1, -dy], [0, 0, 1]])
        m = np.linalg.inv(b_in) @ px @ np.linalg.inv(a_out)
        return AugmentPlan(m[None], in_hw, out_hw, np.zeros(1), np.ones(1))

    def torch_uint8(plan):
        return (warp_torch(torch.from_numpy(img), plan, pad_mode="reflection") * 255).round().permute(0, 2, 3, 1).byte()

    shifted = shift_plan((9, 7), (9, 7), 3, -2)
    a = warp_cv2(img, shifted, pad_mode="reflection")
    assert torch.equal(a, torch_uint8(shifted))
    padded = CropPad((15, 13), pad_mode="reflection")(img[0])  # 3 rows and columns of padding on each side
    assert np.array_equal(padded, np.pad(img[0], ((3, 3), (3, 3), (0, 0)), mode="reflect"))
    assert np.array_equal(padded[2, 3:10], img[0, 1]) and np.array_equal(padded[1, 3:10], img[0, 2])
    assert np.array_equal(Resize((15, 7), method="pad")(img[0][:, :, :1])[:, :, 0], padded[:, 3:10, 0])


@pytest.mark.parametrize("kwargs, word", [
    (dict(max_lighting=1.0), "max_lighting"), (dict(min_scale=0.0), "min_scale"), (dict(p_affine=2), "p_affine"),
    (dict(mode="cubic"), "mode"), (dict(pad_mode="wrap"), "pad_mode"), (dict(executor="gpu"), "executor"),
    (dict(min_zoom=2.0, max_zoom=1.0), "min_zoom"),
])
def test_bad_parameters_are_named(kwargs, word):
    with pytest.raises(ParameterError, match=word):
        aug_transforms(**kwargs)


def test_plan_size_mismatch_is_explained(dog_batch):
    plan = _full_plan(3, (50, 50), 0)
    with pytest.raises(DataError, match="plan is for 3 images"):
        warp_cv2(dog_batch, plan)
    with pytest.raises(ParameterError, match="uint8"):
        warp_cv2(dog_batch.float(), _full_plan(12, (96, 96), 0))


def test_aug_transforms_errors_name_the_argument_given():
    from pipekit.vision import aug_transforms

    # the book's aug_transforms(mult=2): rotation, lighting and warp doubled, the zoom as given (fastai 2.8.12)
    doubled = aug_transforms(mult=2)[0].settings
    assert (doubled.max_rotate, doubled.max_lighting, doubled.max_warp) == (20.0, pytest.approx(0.4), pytest.approx(0.4))
    assert doubled.max_zoom == 1.1 and doubled.min_zoom == 1.0
    # mult scales every magnitude: the one it pushes out of range is named with mult and the largest mult that fits
    with pytest.raises(ParameterError, match=r"aug_transforms: mult=6 scales max_lighting=0.2 to 1.2, but max_lighting "
                                             r"accepts a number in \[0, 1\); give a mult below 5 or a smaller"):
        aug_transforms(mult=6, max_warp=0)
    with pytest.raises(ParameterError, match=r"mult=3 scales max_rotate=90 to 270, .*a mult below 2"):
        aug_transforms(max_rotate=90, max_lighting=0.1, mult=3)
    # a value given out of range is named as given, not as something derived from it
    with pytest.raises(ParameterError, match=r"aug_transforms: max_zoom=0.5 is not accepted; expected a number at "
                                             r"least min_zoom=1.0"):
        aug_transforms(max_zoom=0.5)
    with pytest.raises(ParameterError, match=r"aug_transforms: max_lighting=1 is not accepted"):
        aug_transforms(max_lighting=1)
    assert aug_transforms(max_lighting=0.7)[0].settings.max_lighting == 0.7  # fastai takes it too
    assert aug_transforms(min_zoom=0.5, max_zoom=1.0)[0].settings.min_zoom == 0.5  # zooming out only


# ------------------------------------------- a size of another aspect than the images' (fastai 2.8.12, checked)
def _plain(**kw):
    """Settings that draw no flip, rotation, zoom, warp or lighting: only the crop and the resize to ``size``."""
    return AugmentSettings(**{**dict(do_flip=False, max_rotate=0.0, max_zoom=1.0, max_warp=0.0, max_lighting=0.0), **kw})


def _mask_squish(masks, hw, edge):
    """Nearest-neighbour squish of (B, H, W) masks to ``hw``: each output pixel takes the source pixel under its
    centre; one at an exact pixel edge the pixel after it (``edge=0``) or before it (``edge=-1e-6``)."""
    (h, w), (ho, wo) = masks.shape[1:], hw
    rows = np.floor((np.arange(ho) + 0.5) * h / ho + edge).astype(int)
    cols = np.floor((np.arange(wo) + 0.5) * w / wo + edge).astype(int)
    return masks[:, rows][:, :, cols]


@pytest.mark.parametrize("train", [False, True])
def test_a_size_of_another_aspect_maps_the_whole_image_images_masks_and_points(camvid, train):
    """fastai's ``aug_transforms(size=...)`` (min_scale 1) maps the whole image onto ``size`` on training and
    validation batches: a squish when the aspects differ. camvid's 72x96 (4:3) images to 48x48: the images are
    a plain squish, the masks a nearest one, and the points (-1..1 of the whole image) keep their coordinates."""
    import cv2

    x, y = camvid
    points = torch.from_numpy(np.random.default_rng(0).uniform(-0.95, 0.95, (len(x), 5, 2)).astype(np.float32))
    ctx = BatchContext(("image", "mask", "points"), 1, train, torch.device("cpu"), key=(3,))
    img, mask, pts = BatchAugment(_plain(size=48)).encode((x, y, points), ctx)
    squish = np.stack([cv2.resize(im, (48, 48), interpolation=cv2.INTER_LINEAR) for im in x.numpy()])
    diff = np.abs(img.numpy().astype(int) - squish)
    assert img.shape == (6, 48, 48, 3) and diff.mean() < 0.5 and diff.max() <= 2, (diff.mean(), diff.max())
    m = mask.numpy()
    assert ((m == _mask_squish(y.numpy(), (48, 48), 0)) | (m == _mask_squish(y.numpy(), (48, 48), -1e-6))).all()
    assert torch.allclose(pts, points, atol=1e-6) and pts.abs().max() <= 1
    # (before, the 72x72 centre of each image: the points' x went out to 0.95 * 96 / 72 = 1.27)
    centre = np.stack([cv2.resize(im[:, 12:84], (48, 48), interpolation=cv2.INTER_LINEAR) for im in x.numpy()])
    assert np.abs(img.numpy().astype(int) - centre).mean() > 10


@pytest.mark.parametrize("size,min_scale", [((64, 64), 1.0), ((64, 64), 0.75), ((40, 96), 1.0), ((40, 96), 0.75)])
@pytest.mark.parametrize("train", [False, True])
def test_points_follow_their_images_to_a_size_of_another_aspect(size, min_scale, train):
    """3x3 dots on 96x128 (4:3) images go with their points through crop, squish, flip, rotation and zoom."""
    n, (h, w), (ho, wo) = 8, (96, 128), size
    pix = np.random.default_rng(4).uniform((45, 30), (83, 66), (n, 2)).astype(int)
    images = np.zeros((n, h, w, 3), np.uint8)
    for i, (px, py) in enumerate(pix):
        images[i, py - 1:py + 2, px - 1:px + 2] = 255
    points = torch.tensor((pix + 0.5) / (w, h) * 2 - 1, dtype=torch.float32)[:, None, :]
    aug = BatchAugment(AugmentSettings(size=size, min_scale=min_scale, max_rotate=30, max_zoom=1.2, max_warp=0.0,
                                       max_lighting=0.0, p_affine=1.0, pad_mode="zeros"))
    ctx = BatchContext(("image", "points"), 1, train, torch.device("cpu"), key=(6,))
    img, pts = aug.encode((torch.from_numpy(images), points), ctx)
    ys, xs = np.mgrid[:ho, :wo]
    for i in range(n):
        lum = img[i, :, :, 0].numpy().astype(float)
        cx, cy = (lum * xs).sum() / lum.sum() + 0.5, (lum * ys).sum() / lum.sum() + 0.5
        px, py = (pts[i, 0, 0].item() + 1) * wo / 2, (pts[i, 0, 1].item() + 1) * ho / 2
        assert abs(cx - px) < 1.0 and abs(cy - py) < 1.0, (i, cx, cy, px, py)
    if not train and min_scale == 1:  # validation shows all of the image: the points keep their coordinates
        assert torch.allclose(pts, points, atol=1e-6)


def test_crops_below_min_scale_1_are_square_as_fastais_random_resized_crop_gpu():
    """fastai's ``aug_transforms(size=(48, 64), min_scale=0.75)`` crops squares (``RandomResizedCropGPU``,
    ``ratio=(1, 1)``) of 75..100% of the area and squishes them to 48x64; its validation batches show a square
    image whole and the centred square of a 96x128 one. An image in the output's shape is cropped in that shape."""
    crop = _plain(size=(48, 64), min_scale=0.75)
    plan = sample_plan(64, (128, 128), _streams(1), crop)
    sx, sy = plan.matrices[:, 0, 0], plan.matrices[:, 1, 1]
    assert np.allclose(sx, sy) and (sx * sy).min() >= 0.75 - 1e-9 and (sx * sy).max() <= 1 + 1e-9
    assert np.allclose(sample_plan(4, (128, 128), _streams(1), crop, train=False).matrices, np.eye(3))
    portrait = dataclasses.replace(crop, size=(64, 48))  # 96x128 to 64x48: the centred 96x96, squished
    assert np.allclose(sample_plan(4, (96, 128), _streams(1), portrait, train=False).matrices, np.diag([0.75, 1, 1]))
    # 96x128 to 48x64 (the same 4:3): crops of 4:3, none squished, as before
    same = sample_plan(64, (96, 128), _streams(1), crop)
    rng = _streams(1)("crop")
    scale, log_r, uv = rng.uniform(0.75, 1.0, 64), rng.uniform(0.0, 0.0, 64), rng.uniform(0, 1, (64, 2))
    assert np.array_equal(same.matrices, crop_matrices((96, 128), (48, 64), scale, np.exp(log_r), uv))
    assert np.allclose(same.matrices[:, 0, 0], same.matrices[:, 1, 1])  # 4:3 of a 4:3 image


@pytest.mark.parametrize("in_hw,size", [((72, 96), (48, 64)), ((72, 96), (36, 48)), ((96, 96), 64), ((72, 96), None)])
def test_sizes_of_the_images_aspect_keep_their_plans_and_pixels(camvid, in_hw, size):
    """A size in the images' own aspect is a plain resize on validation batches, and training crops keep the
    output's shape (what pipekit planned before fastai's squish was matched for other aspects)."""
    import cv2

    out_hw = in_hw if size is None else (size, size) if isinstance(size, int) else size
    valid = sample_plan(3, in_hw, _streams(0), AugmentSettings(size=size), train=False).matrices
    old = np.eye(3) if out_hw == in_hw else crop_matrices(in_hw, out_hw, np.ones(3), np.ones(3), np.full((3, 2), 0.5))
    assert np.array_equal(valid, np.broadcast_to(old, valid.shape))
    settings = _settings(size=size)
    rng = _streams(2)("crop")
    scale, log_r, uv = rng.uniform(0.6, 1.0, 5), rng.uniform(0.0, 0.0, 5), rng.uniform(0, 1, (5, 2))
    crop = crop_matrices(in_hw, out_hw, scale, np.exp(log_r), uv)
    only_crop = sample_plan(5, in_hw, _streams(2), dataclasses.replace(settings, p_affine=0.0, do_flip=False))
    assert np.array_equal(only_crop.matrices, crop)
    if in_hw == (72, 96):
        x, _ = camvid
        img = BatchAugment(AugmentSettings(size=size)).encode((x,), BatchContext(("image",), 1, False,
                                                                               torch.device("cpu")))[0]
        squish = np.stack([cv2.resize(im, out_hw[::-1], interpolation=cv2.INTER_LINEAR) for im in x.numpy()])
        assert np.abs(img.numpy().astype(int) - squish).max() <= 2


def test_brightness_and_contrast_draw_fastais_ranges():
    """fastai 2.8.12: brightness moves the mid-grey to a level uniform in 0.5 * (1 -+ max_lighting) (0.4..0.6 by
    default), contrast scales by a factor log-uniform in [1 - max_lighting, 1 / (1 - max_lighting)]."""
    from pipekit.vision.samplers import Brightness, Contrast

    rng = np.random.default_rng(0)
    scale, shift = Brightness(0.2, p=1.0).lighting(20_000, rng)
    level = 1 / (1 + np.exp(-shift))  # the mid-grey's new level
    assert np.all(scale == 1) and level.min() >= 0.4 - 1e-9 and level.max() <= 0.6 + 1e-9
    assert level.min() < 0.401 and level.max() > 0.599  # the whole range is drawn
    factor, offset = Contrast(0.7, p=1.0).lighting(20_000, rng)
    assert np.all(offset == 0) and factor.min() >= 0.3 - 1e-9 and factor.max() <= 1 / 0.3 + 1e-9
    assert Brightness(0.9, p=1.0).lighting(10, rng)[1].std() > 0  # fastai accepts it up to 1


def test_xtra_tfms_take_fastais_single_augmentations():
    """fastai's ``aug_transforms(xtra_tfms=[Flip(p=1.)])``: the extra augmentation runs after the others."""
    import pipekit.datasets as D
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import Flip, ImageBlock, Resize

    tfms = aug_transforms(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0, xtra_tfms=[Flip(p=1.)])
    assert [type(t).__name__ for t in tfms] == ["BatchAugment", "BatchAugment"]

    def dls(batch_tfms=None):
        return DataBlock((ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20], get_y=parent_label,
                         splitter=GrandparentSplitter(), item_tfms=Resize(28), batch_tfms=batch_tfms).dataloaders(
            D.path("mnist_tiny"), bs=4, shuffle=False, device="cpu")

    flipped, plain = dls(tfms).train.one_batch()[0], dls().train.one_batch()[0]
    assert torch.allclose(flipped, plain.flip(-1), atol=1e-5) and not torch.allclose(flipped, plain)
    with pytest.raises(ParameterError, match=r"xtra_tfms holds .*Resize.*item_tfms"):
        aug_transforms(xtra_tfms=[Resize(28)])


def test_random_erasing_after_normalize_erases_training_images_only():
    """fastai's ``batch_tfms=[*aug_transforms(), Normalize.from_stats(*imagenet_stats), RandomErasing(p=1.)]``."""
    import pipekit.datasets as D
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock, Normalize, RandomErasing, Resize, imagenet_stats

    def dls(extra=(), seed=0):
        return DataBlock((ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20], get_y=parent_label,
                         splitter=GrandparentSplitter(), item_tfms=Resize(28),
                         batch_tfms=[Normalize.from_stats(*imagenet_stats), *extra]).dataloaders(
            D.path("mnist_tiny"), bs=8, shuffle=False, device="cpu", seed=seed)

    plain, erased = dls(), dls([RandomErasing(p=1.0, sl=0.1, sh=0.3, max_count=2)])
    x, e = plain.train.one_batch()[0], erased.train.one_batch()[0]
    changed = (x != e).any(1)  # (bs, h, w): the erased pixels
    share = changed.float().mean((1, 2))
    assert bool((share > 0.02).all()) and bool((share <= 0.3 + 1e-6).all())  # every image, within sl..sh of it
    assert e[changed.unsqueeze(1).expand_as(e)].std() > 0.5  # noise on the normalised scale, not a flat colour
    assert torch.equal(plain.valid.one_batch()[0], erased.valid.one_batch()[0])  # validation: unchanged
    again = dls([RandomErasing(p=1.0, sl=0.1, sh=0.3, max_count=2)]).train.one_batch()[0]
    assert torch.equal(again, e)  # the same seed erases the same rectangles
    assert [type(t).__name__ for t in erased.train.batch_tfms][-1] == "RandomErasing"  # after Normalize
    assert RandomErasing(p=0.0).encode((x, None), erased.train.context(0, 0))[0] is x
    with pytest.raises(ParameterError, match=r"sl=0.5 is above sh=0.3"):
        RandomErasing(sl=0.5)


def test_random_crop_given_a_size_in_pixels_names_the_item_transforms_that_do_it():
    from pipekit.vision import ImageDataLoaders, RandomCrop

    with pytest.raises(ParameterError, match=r"RandomCrop\(20\): pipekit's RandomCrop .* min_scale.*"
                                             r"item_tfms=RandomResizedCrop\(20, min_scale=\.\.\.\).*CropPad\(20\)"):
        RandomCrop(20)
    assert RandomCrop(0.5).min_scale == 0.5 and RandomCrop(1).min_scale == 1
    # the item transform named there gives 20x20 crops of the images, not rescaled
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", item_tfms=CropPad(20), bs=8, seed=0,
                                       device="cpu")
    assert tuple(dls.one_batch()[0].shape[-2:]) == (20, 20)
