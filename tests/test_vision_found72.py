"""The random draws of Warp and of aug_transforms' crops follow fastai's distributions.

Each check draws 20,000 images from a seeded generator; the margins are at least five binomial standard
deviations (sqrt(p (1 - p) / 20,000) is at most 0.0036), so they cannot fail by chance, and far narrower than
the distance to a wrong distribution.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipekit.vision import AugmentSettings, RandomCrop, ResizedCrop, Warp, sample_plan
from pipekit.vision.geometry import crop_matrices

N = 20_000


def _margin(p: float, sigmas: float = 6.0) -> float:
    return sigmas * math.sqrt(p * (1 - p) / N) + 0.003


def _tilts(p: float, seed: int = 0) -> np.ndarray:
    """(N, 2) booleans: whether each image is tilted in x and in y (its perspective row's entries)."""
    m = Warp(0.2, p=p).matrices(N, np.random.default_rng(seed), (64, 64), (64, 64))
    return np.abs(m[:, 2, :2]) > 1e-12


def test_warp_draws_one_coin_per_direction_as_fastai():
    # fastai's _WarpCoord masks x_t and y_t each with its own draw of probability p: with aug_transforms'
    # p_affine=0.75, 1/16 of the images unwarped, 3/8 tilted in one direction only, 9/16 in both
    t = _tilts(0.75)
    none, one, both = (~t).all(1).mean(), (t.sum(1) == 1).mean(), t.all(1).mean()
    assert abs(none - 1 / 16) < _margin(1 / 16), none
    assert abs(one - 3 / 8) < _margin(3 / 8), one
    assert abs(both - 9 / 16) < _margin(9 / 16), both
    for d in range(2):  # each direction on its own: 3/4, whatever the other does
        assert abs(t[:, d].mean() - 0.75) < _margin(0.75)
        assert abs(t[~t[:, 1 - d], d].mean() - 0.75) < _margin(0.75, 8) + 0.01


def test_warp_p_half_and_the_extremes():
    t = _tilts(0.5, seed=1)
    assert abs((~t).all(1).mean() - 0.25) < _margin(0.25)
    assert abs((t.sum(1) == 1).mean() - 0.5) < _margin(0.5)
    assert _tilts(1.0).all()
    off = Warp(0.2, p=0.0).matrices(50, np.random.default_rng(0), (64, 64), (64, 64))
    assert np.array_equal(off, np.tile(np.eye(3), (50, 1, 1)))


def test_warp_same_seed_same_draws():
    a = Warp(0.2, p=0.75).matrices(64, np.random.default_rng(5), (64, 64), (64, 64))
    b = Warp(0.2, p=0.75).matrices(64, np.random.default_rng(5), (64, 64), (64, 64))
    assert np.array_equal(a, b)


# fastai's RandomResizedCropGPU(min_scale=0.5, ratio=(1, 1)) on a 96x128 image: the area share a ~ U(0.5, 1) is
# kept when the rounded square side fits, round(sqrt(a * 96 * 128)) <= 96, i.e. a < 96.5**2 / (96 * 128); up to
# ten tries, then the centred 96x96 square. Kept areas are uniform on [0.5, A_FIT) (crops over 96 px cut to 96).
A_FIT = 96.5 ** 2 / (96 * 128)


def _crop_areas(settings: AugmentSettings, seed: int = 0) -> np.ndarray:
    plan = sample_plan(N, (96, 128), lambda name: np.random.default_rng([seed, len(name)]), settings)
    return plan.matrices


def _no_extras(min_scale: float) -> AugmentSettings:
    return AugmentSettings(size=64, min_scale=min_scale, do_flip=False, max_rotate=0, max_zoom=1, max_warp=0,
                           max_lighting=0)


def test_aug_transforms_crop_areas_on_a_wide_image_match_fastai():
    m = _crop_areas(_no_extras(0.5))
    sx, sy = m[:, 0, 0], m[:, 1, 1]
    assert np.allclose(sx * 128, sy * 96)  # squares in the image's pixels
    area = sx * sy
    assert area.min() >= 0.5 - 1e-9 and area.max() <= 0.75 + 1e-9
    below = (0.625 - 0.5) / (A_FIT - 0.5)  # 0.485 (the old shrink-to-fit draw: 0.25)
    assert abs((area < 0.625).mean() - below) < _margin(below)
    at_max = (A_FIT - 0.75) / (A_FIT - 0.5)  # 0.03 (the old draw: half of them)
    assert abs((area > 0.7499).mean() - at_max) < _margin(at_max)
    q = np.quantile(area, [0.25, 0.5, 0.75])
    assert np.allclose(q, 0.5 + np.array([0.25, 0.5, 0.75]) * (A_FIT - 0.5), atol=0.01), q
    # placed uniformly: the crop's centre spans the room left either side
    room = 1 - sx
    assert abs(np.mean(m[:, 0, 2] / room)) < 0.03


def test_aug_transforms_crop_larger_than_fits_is_the_centred_square():
    # min_scale=0.8 of a 96x128 image never fits as a square (0.75 at most): fastai's ten tries all fail and it
    # takes the centred 96x96 square
    m = _crop_areas(_no_extras(0.8))[:200]
    assert np.allclose(m, [[0.75, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_random_crop_on_square_images_draws_as_with_one_try():
    # a square crop of a square image always fits at the first try: the draws are the first ones of the stream
    for min_scale in (0.08, 0.35, 0.75, 1.0):
        got = RandomCrop(min_scale).matrices(500, np.random.default_rng(3), (64, 64), (1, 1))
        rng = np.random.default_rng(3)
        scale, log_r = rng.uniform(min_scale, 1.0, 500), rng.uniform(0.0, 0.0, 500)
        want = crop_matrices((64, 64), (1, 1), scale, np.exp(log_r), rng.uniform(0, 1, (500, 2)))
        assert np.array_equal(got, want)


def test_random_crop_with_a_ratio_redraws_instead_of_shrinking():
    # ratio (3/4, 4/3) on a square image with min_scale 0.9: a crop at 0.9..1 of the area whose aspect is off 1
    # often does not fit; fastai draws again, so every crop keeps at least 0.9 of the area (or, after ten failed
    # tries, all of it)
    m = RandomCrop(0.9, ratio=(3 / 4, 4 / 3)).matrices(N, np.random.default_rng(0), (64, 64), (64, 64))
    area = m[:, 0, 0] * m[:, 1, 1]
    assert area.min() >= 0.9 - 0.02  # whole pixels: a side rounded down by up to half a pixel
    assert np.all(np.abs(m[:, :2, 2]) <= 1 - m[:, [0, 1], [0, 1]] + 1e-9)  # inside the image


def test_random_crop_same_seed_same_plan():
    s = AugmentSettings(size=64, min_scale=0.35)
    streams = lambda name: np.random.default_rng([7, len(name)])  # noqa: E731
    a, b = sample_plan(32, (96, 128), streams, s), sample_plan(32, (96, 128), streams, s)
    assert np.array_equal(a.matrices, b.matrices) and np.array_equal(a.contrast, b.contrast)


@pytest.mark.parametrize("hw", [(96, 128), (128, 96)])
def test_item_random_resized_crop_areas_match_fastai(hw):
    # RandomResizedCrop's draw (ResizedCrop) already tries ten times, as fastai's: square crops of 0.5..1 of a
    # 96x128 image are uniform on 0.5..0.75 of it
    h, w = hw
    m = ResizedCrop(0.5, ratio=(1, 1)).matrices(N, np.random.default_rng(0), (80, 80), (64, 64),
                                                 np.array([hw] * N))
    area = m[:, 0, 0] * m[:, 1, 1]
    a_fit = (min(h, w) + 0.5) ** 2 / (h * w)
    below = (0.625 - 0.5) / (a_fit - 0.5)
    assert abs((area < 0.625).mean() - below) < _margin(below) + 0.01  # whole-pixel crops
    assert area.max() <= 0.75 + 1e-9
