"""pipekit's augmentation against fastai 2.8's defaults and names, measured on real images.

fastai's ``Rotate``/``Zoom``/``Warp`` apply with probability 0.5 on their own; ``aug_transforms`` flips only with
``do_flip`` (``Dihedral(p=0.5)`` with ``flip_vert``, else ``Flip(p=0.5)``); ``Saturation``, ``Hue``, ``FlipItem``
and ``DihedralItem`` exist under those names.
"""
from __future__ import annotations

import colorsys

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.data.transform import BatchContext
from pipekit.vision import (Brightness, Contrast, DihedralItem, FlipItem, Hue, ImageBlock, Resize,
                            Rotate, Sampler, Saturation, Warp, Zoom, aug_transforms, build_image_store, warp_cv2,
                            warp_torch)


def _ctx(seed, train=True):
    return BatchContext(("image",), 1, train, torch.device("cpu"), key=(seed,))


@pytest.fixture(scope="module")
def dogs():
    """240 real photographs (dogscats), 48x48 uint8 RGB."""
    root = D.path("dogscats") / "train"
    files = sorted((root / "dogs").glob("*.jpg"))[:120] + sorted((root / "cats").glob("*.jpg"))[:120]
    return build_image_store(files, Resize(48), cache_dir=False).gather(np.arange(len(files)))


@pytest.fixture(scope="module")
def digits():
    """40 real grey images (mnist_tiny) read as RGB: every pixel grey."""
    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:40]
    x = build_image_store(files, Resize(28), cache_dir=False).gather(np.arange(len(files)))
    assert x.shape[-1] == 3 and bool((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all())
    return x


def _changed(aug, x, seeds):
    """Per image over ``seeds`` batches: whether the training batch differs from the input."""
    out = []
    for seed in seeds:
        y = aug.encode((x,), _ctx(seed))[0]
        out.append((y != x).flatten(1).any(1).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("sampler,share", [(Rotate(), 0.5), (Zoom(), 0.5), (Warp(), 0.75)],
                         ids=["Rotate", "Zoom", "Warp"])
def test_rotate_zoom_warp_default_to_fastai_p_half(dogs, sampler, share):
    assert sampler.p == 0.5  # fastai 2.8: Rotate, Zoom and Warp default to p=0.5
    aug = Sampler.batch_transform([sampler])
    changed = _changed(aug, dogs, seeds=(0, 1))  # 480 images
    # Warp tilts in x and in y each with probability p, as fastai's: 1 - 0.5 ** 2 of the images change
    assert len(changed) >= 200 and abs(changed.mean() - share) < 0.08, changed.mean()


def test_other_standalone_defaults_match_fastai():
    from pipekit.vision import Dihedral, Flip, RandomErasing
    assert (Flip().p, Dihedral().p, Brightness().p, Contrast().p) == (0.5, 0.5, 0.75, 0.75)
    assert (Brightness().max_lighting, Contrast().max_lighting, Rotate().max_deg, Warp().magnitude) == (0.2, 0.2, 10, 0.2)
    assert (Zoom().min_zoom, Zoom().max_zoom) == (1.0, 1.1)
    e = RandomErasing()
    assert (e.p, e.sl, e.sh, e.min_aspect, e.max_count) == (0.5, 0.0, 0.3, 0.3, 1)
    assert (Saturation().max_lighting, Saturation().p, Hue().max_hue, Hue().p) == (0.2, 0.75, 0.1, 0.75)
    assert (FlipItem().p, DihedralItem().p) == (0.5, 1.0)
    # aug_transforms keeps its own probability for the affine draws
    s = aug_transforms()[0].settings
    assert s.p_affine == 0.75 and all(x.p == 0.75 for x in s.samplers() if isinstance(x, (Rotate, Zoom, Warp)))


def _symmetries(x):
    """The 8 symmetries of each square image of ``x`` (B, H, W, C), (8, B, H, W, C)."""
    out = []
    for t in (False, True):
        y = x.transpose(1, 2) if t else x
        for fh in (False, True):
            for fv in (False, True):
                z = y.flip(2) if fh else y
                out.append(z.flip(1) if fv else z)
    return torch.stack(out)


@pytest.mark.parametrize("do_flip,flip_vert,unchanged", [
    (False, True, 1.0), (False, False, 1.0), (True, False, 0.5), (True, True, 0.5 + 0.5 / 8)])
def test_aug_transforms_flips_as_fastai(dogs, do_flip, flip_vert, unchanged):
    """fastai: ``if do_flip: Dihedral(p=0.5) if flip_vert else Flip(p=0.5)``; nothing without do_flip."""
    aug = aug_transforms(do_flip=do_flip, flip_vert=flip_vert, max_rotate=0, max_zoom=1, max_warp=0,
                         max_lighting=0)[0]
    same, kinds = [], set()
    for seed in range(4):  # 960 images
        y = aug.encode((dogs,), _ctx(seed))[0]
        sym = _symmetries(dogs)
        match = (sym == y[None]).flatten(2).all(2)  # (8, B): which symmetry each output is, exactly
        assert bool(match.any(0).all())  # every output is one of the input's symmetries, pixel for pixel
        k = match.float().argmax(0).numpy()
        kinds |= set(k.tolist())
        same.append(k == 0)
    frac = np.concatenate(same).mean()
    assert abs(frac - unchanged) < 0.05, frac
    assert len(kinds) == {1.0: 1, 0.5: 2}.get(unchanged, 8)  # Dihedral takes all 8, Flip only the mirror


def _spread(x):
    """Per image, the mean spread of its pixels' channels (0 for a grey image)."""
    x = x.float()
    return (x.amax(-1) - x.amin(-1)).flatten(1).mean(1)


def test_saturation_scales_colour_and_keeps_grey(dogs, digits):
    aug = Sampler.batch_transform([Saturation(p=1.0)])
    plan = aug.plan(len(dogs), (48, 48), _ctx(3).rng, True)
    f = plan.saturation
    assert f.min() >= 0.8 - 1e-9 and f.max() <= 1.25 + 1e-9 and (f < 0.95).any() and (f > 1.05).any()
    y = aug.encode((dogs,), _ctx(3))[0]
    ratio = (_spread(y) / _spread(dogs).clamp_min(1)).numpy()
    far = np.abs(f - 1) > 0.05
    # less saturated where the factor is below 1, more where above
    assert (ratio[far & (f < 1)] < 1).mean() > 0.95 and (ratio[far & (f > 1)] > 1).mean() > 0.95
    # a grey image keeps its colour (none) and, within a level, its pixels
    g = aug.encode((digits,), _ctx(3))[0]
    assert int(_spread(g).max()) == 0 and int((g.int() - digits.int()).abs().max()) <= 1
    # validation batches pass unchanged
    assert torch.equal(aug.encode((dogs,), _ctx(3, train=False))[0], dogs)
    # the same seed gives the same pictures
    assert torch.equal(aug.encode((dogs,), _ctx(3))[0], y)


def test_saturation_default_applies_three_quarters():
    f = np.concatenate([Saturation().saturation(400, _ctx(s).rng("saturation")) for s in range(2)])
    assert abs((f != 1).mean() - 0.75) < 0.06


def test_hue_turns_colour_and_leaves_grey_alone(dogs, digits):
    aug = Sampler.batch_transform([Hue(p=1.0)])
    plan = aug.plan(len(dogs), (48, 48), _ctx(5).rng, True)
    h = plan.hue
    assert h.min() >= -0.1 - 1e-9 and h.max() <= 1 / 0.9 - 1 + 1e-9 and (h < -0.05).any() and (h > 0.05).any()
    y = aug.encode((dogs,), _ctx(5))[0]
    big = np.abs(h) > 0.05
    assert bool(((y != dogs).flatten(1).float().mean(1) > 0.1)[torch.from_numpy(big)].all())
    # each pixel's hue turned by the draw, its saturation and value kept (colorsys on a real image's pixels)
    i = int(np.argmax(np.abs(h)))
    px = dogs[i].reshape(-1, 3).numpy() / 255.0
    want = np.array([colorsys.hsv_to_rgb((hh + h[i]) % 1, s, v) for hh, s, v in
                     (colorsys.rgb_to_hsv(*p) for p in px)])
    assert np.abs(y[i].reshape(-1, 3).numpy() / 255.0 - want).max() <= 1.5 / 255
    # a grey image is left exactly as it is
    assert torch.equal(aug.encode((digits,), _ctx(5))[0], digits)
    assert torch.equal(aug.encode((dogs,), _ctx(5, train=False))[0], dogs)
    assert torch.equal(aug.encode((dogs,), _ctx(5))[0], y)


def test_colour_executors_agree(dogs):
    """The OpenCV and torch executors give the same picture for brightness, contrast, saturation and hue together."""
    aug = Sampler.batch_transform([Rotate(p=1.0), Brightness(p=1.0), Contrast(p=1.0), Saturation(p=1.0), Hue(p=1.0)])
    plan = aug.plan(len(dogs), (48, 48), _ctx(7).rng, True)
    a = warp_cv2(dogs, plan).float() / 255
    b = warp_torch(dogs, plan).permute(0, 2, 3, 1)
    assert float((a - b).abs().mean()) < 1.5 / 255 and float((a - b).abs().quantile(0.99)) < 6 / 255
    # and the lit float path (augmentation fused with IntToFloat/Normalize) is the uint8 one, converted
    from pipekit.vision.augment import warp_cv2_float
    c = warp_cv2_float(dogs, plan, [1 / 255] * 3, [0.0] * 3).permute(0, 2, 3, 1)
    assert torch.allclose(a, c, atol=1e-6)


@pytest.fixture(scope="module")
def dogscats_df():
    root = D.path("dogscats")
    rows = []
    for valid, sub, k in ((False, "train", 120), (True, "valid", 20)):
        for y in ("dogs", "cats"):
            rows += [(str(f), y, valid) for f in sorted((root / sub / y).glob("*.jpg"))[:k]]
    return pl.DataFrame(rows, schema=["path", "y", "valid"], orient="row")


def _dls(df, item_tfms, seed=0):
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("path"), get_y=ColReader("y"),
                   splitter=ColSplitter("valid"), item_tfms=item_tfms)
    return db.dataloaders(df, bs=40, seed=seed, shuffle=False)


def _images(dl, epochs=1):
    return [torch.cat([b[0] for b in dl]) for _ in range(epochs)]


def test_flip_item_in_item_tfms_flips_half_repeatably(dogscats_df):
    plain = _dls(dogscats_df, [Resize(48)])
    flipped = _dls(dogscats_df, [Resize(48), FlipItem()])
    base = _images(plain.train)[0]
    epochs = _images(flipped.train, epochs=2)  # 480 images
    mirrored = []
    for e in epochs:
        same = (e == base).flatten(1).all(1)
        mirror = (e == base.flip(-1)).flatten(1).all(1)
        assert bool((same | mirror).all())  # each image is as it was or its exact mirror
        mirrored.append(mirror & ~same)
    m = torch.cat(mirrored).float()
    assert abs(float(m.mean()) - 0.5) < 0.08
    assert not torch.equal(mirrored[0], mirrored[1])  # drawn anew each epoch
    # the same seed gives the same flips; validation is left as it is
    again = _images(_dls(dogscats_df, [Resize(48), FlipItem()]).train, epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(epochs, again))
    assert torch.equal(_images(flipped.valid)[0], _images(plain.valid)[0])


def test_dihedral_item_takes_the_eight_symmetries(dogscats_df):
    plain = _dls(dogscats_df, [Resize(48)])
    turned = _dls(dogscats_df, [Resize(48), DihedralItem()])
    base = _images(plain.train)[0].permute(0, 2, 3, 1)
    got = _images(turned.train, epochs=2)
    sym = _symmetries(base)
    kinds = []
    for e in got:
        match = (sym == e.permute(0, 2, 3, 1)[None]).flatten(2).all(2)
        assert bool(match.any(0).all())
        kinds.append(match.float().argmax(0))
    k = torch.cat(kinds)
    counts = torch.bincount(k, minlength=8).float() / len(k)
    assert int((counts > 0).sum()) == 8 and float(counts.max()) < 0.22  # each about 1/8 (p=1.0)
    assert torch.equal(_images(turned.valid)[0], _images(plain.valid)[0])


def _lit(x, b, c, s=None):
    """fastai's lighting of uint8 RGB ``x`` (B, H, W, 3) as 0..1 float64: in logit space brightness ``b`` added, then
    contrast ``c`` multiplied (``(logit(x) + b) * c``), then saturation ``s`` towards the grey image, then the sigmoid.
    The pixels are clipped to 1e-3..1 - 1e-3 before the logit, as pipekit's executors clip them."""
    p = np.clip(x.numpy().astype(np.float64) / 255, 1e-3, 1 - 1e-3)
    y = (np.log(p / (1 - p)) + b[:, None, None, None]) * c[:, None, None, None]
    if s is not None:
        grey = (y * np.array([0.2989, 0.5870, 0.1140])).sum(-1, keepdims=True)
        y = y * s[:, None, None, None] + grey * (1 - s[:, None, None, None])
    return 1 / (1 + np.exp(-y))


def test_lighting_adds_brightness_then_multiplies_contrast_as_fastai(dogs):
    """fastai 2.8.12's aug_transforms lists Brightness before Contrast and composes them in logit space in that
    order: a pixel becomes sigmoid((logit(x) + b) * c). Both executors compute that, and agree."""
    from pipekit.vision import AugmentPlan
    from pipekit.vision.augment import warp_cv2_float

    x = dogs[:8]
    b = np.array([0.4, -0.4, 0.8, -0.8, 0.4, 0.0, 0.6, -0.2])
    c = np.array([1.25, 1.25, 0.8, 0.8, 0.5, 1.5, 1.0, 2.0])
    plan = AugmentPlan(np.eye(3)[None].repeat(8, 0), (48, 48), (48, 48), b, c)
    want = _lit(x, b, c)
    got_cv2 = warp_cv2(x, plan).numpy() / 255
    got_torch = warp_torch(x, plan).permute(0, 2, 3, 1).numpy()
    assert np.abs(got_cv2 - want).max() <= 0.5 / 255 + 1e-9  # the uint8 lookup table: rounded to the nearest level
    assert np.abs(got_torch - want).max() < 1e-5
    assert np.abs(got_cv2 - got_torch).max() <= 0.5 / 255 + 1e-5
    # the other order (contrast, then brightness) is measurably another picture on this image
    other = 1 / (1 + np.exp(-(np.log(want / (1 - want)) + b[:, None, None, None] * (1 - c[:, None, None, None]))))
    assert np.abs(other - want)[:5].max() > 4 / 255
    # the lit float path (fused with the float conversion) is the uint8 one, converted
    f = warp_cv2_float(x, plan, [1 / 255] * 3, [0.0] * 3).permute(0, 2, 3, 1).numpy()
    assert np.abs(f - got_cv2).max() < 1e-6
    # with saturation the image is lit in float: the same order, then the move towards grey
    s = np.array([0.8, 1.25, 0.9, 1.1, 0.8, 1.2, 1.0, 0.85])
    plan = AugmentPlan(plan.matrices, (48, 48), (48, 48), b, c, s)
    want = _lit(x, b, c, s)
    assert np.abs(warp_cv2(x, plan).numpy() / 255 - want).max() <= 1 / 255
    assert np.abs(warp_torch(x, plan).permute(0, 2, 3, 1).numpy() - want).max() < 1e-5


def test_aug_transforms_plans_brightness_then_contrast(dogs):
    """The plan aug_transforms draws holds each image's drawn brightness shift and contrast factor as they are, in
    fastai's order (Brightness, then Contrast), so the picture is sigmoid((logit(x) + b) * c)."""
    from pipekit.vision.samplers import Brightness as B, Contrast as C
    aug = aug_transforms(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0.3, p_lighting=1.0)[0]
    assert [type(t).__name__ for t in aug.settings.samplers()][-2:] == ["Brightness", "Contrast"]
    n = len(dogs)
    plan = aug.plan(n, (48, 48), _ctx(11).rng, True)
    _, shift = B(0.3, 1.0).lighting(n, _ctx(11).rng("brightness"))
    factor, _ = C(0.3, 1.0).lighting(n, _ctx(11).rng("contrast"))
    assert np.array_equal(plan.brightness, shift) and np.array_equal(plan.contrast, factor)
    y = aug.encode((dogs,), _ctx(11))[0].numpy() / 255
    assert np.abs(y - _lit(dogs, shift, factor)).max() <= 0.5 / 255 + 1e-9


def test_reference_loader_mirrors_flip_vert_with_the_dihedral_group(dogscats_df):
    """aug_transforms(flip_vert=True) is fastai's Dihedral(p=0.5): the albumentations reference takes D4 (the 8
    symmetries) for a square picture, and the identity and three mirrors for any other, with the same p."""
    import albumentations as A

    from pipekit.bench import reference_loader
    from pipekit.bench.reference import _augment_step

    def loader(item, do_flip):
        db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("path"), get_y=ColReader("y"),
                       splitter=ColSplitter("valid"), item_tfms=[item],
                       batch_tfms=aug_transforms(do_flip=do_flip, flip_vert=True, max_rotate=0, max_zoom=1,
                                                 max_warp=0, max_lighting=0))
        return reference_loader(db, dogscats_df, bs=80, num_workers=0, seed=0), db

    for hw in ((48, 48), (40, 56)):
        dl, db = loader(Resize(hw), True)
        base = torch.cat([b[0] for b in loader(Resize(hw), False)[0]]).permute(0, 2, 3, 1)
        steps = _augment_step(db.batch_tfms[0], True, hw)
        got = torch.cat([b[0] for b in dl]).permute(0, 2, 3, 1)  # 240 training images, as floats
        assert got.shape == base.shape == (240, *hw, 3)
        if hw[0] == hw[1]:
            assert [type(t) for t in steps] == [A.D4] and steps[0].p == 0.5
            match = (_symmetries(base) == got[None]).flatten(2).all(2)
            n_kinds = 8
        else:
            assert [type(t) for t in steps] == [A.OneOf] and steps[0].p == 0.5 and len(steps[0].transforms) == 4
            mirrors = [base, base.flip(2), base.flip(1), base.flip(1).flip(2)]
            match = torch.stack([(m == got).flatten(1).all(1) for m in mirrors])
            n_kinds = 4
        assert bool(match.any(0).all())  # every image is one of its symmetries, pixel for pixel
        k = match.float().argmax(0)
        assert len(set(k.tolist())) == n_kinds
        assert abs(float((k == 0).float().mean()) - (0.5 + 0.5 / n_kinds)) < 0.1
