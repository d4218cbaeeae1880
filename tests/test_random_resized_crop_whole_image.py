"""``RandomResizedCrop`` crops the whole image, as fastai's does: the cache holds each image whole (squished to the size
plus fastai's validation margin), training crops are drawn from the source image's area and proportions, and
validation batches are fastai's squish to ``size + xtra`` then centre crop.

The coloured images are 300x100, their left third red, the middle green, the right blue: fastai 2.8.12's training
batches over 5 epochs of the book's ``RandomResizedCrop(32, min_scale=0.3)`` are about 18% red, 63% green and 19% blue
(the sides of a wide image are trained on), its validation batches 29% / 42% / 29%.
"""
from __future__ import annotations

import cv2
import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (CategoryBlock, DataBlock, FuncSplitter, IndexSplitter, Transform, get_image_files,
                          parent_label)
from pipekit.vision import (ImageBlock, MaskBlock, PointBlock, RandomResizedCrop, aug_transforms, build_image_store)


def _thirds(folder, n=16):
    """``n`` 300x100 pictures, red | green | blue thirds, in two class folders."""
    a = np.zeros((100, 300, 3), np.uint8)
    a[:, :100, 0] = a[:, 100:200, 1] = a[:, 200:, 2] = 255
    for i in range(n):
        (folder / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(folder / "ab"[i % 2] / f"{i}.png")
    return sorted(get_image_files(folder))


def _dls(folder, seed=0, batch_tfms=(), item_tfms=(), **crop):
    folder = folder / "img"
    files = _thirds(folder)
    crop = {"min_scale": 0.3, **crop}
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: files, get_y=parent_label,
                     splitter=IndexSplitter([0, 1, 2, 3]), item_tfms=[*item_tfms, RandomResizedCrop(32, **crop)],
                     batch_tfms=list(batch_tfms)).dataloaders(folder, bs=12, seed=seed, device="cpu")


class _Same(Transform):
    """A user's item transform: the images are then made as they are fetched, not cached."""

    def encodes(self, x):
        return x


_NO_AUG = dict(do_flip=False, max_rotate=0, max_warp=0, max_lighting=0)


def _shares(batches):
    tot = sum(x.float().mean((0, 2, 3)).double() for x in batches)
    return (tot / tot.sum()).numpy()


@pytest.mark.parametrize("how", ["cached", "images made per fetch", "torch executor"])
def test_training_crops_show_the_sides_of_a_wide_image_and_validation_is_fastais(tmp_path, how):
    dls = _dls(tmp_path, item_tfms=[_Same()] if how == "images made per fetch" else [],
               batch_tfms=aug_transforms(executor="torch", **_NO_AUG) if how == "torch executor" else [])
    assert dls.train.dataset.stores[0].size == (40, 40)  # the whole image, squished to 32 + 8
    train = _shares(x for _ in range(5) for x, _ in dls.train)
    assert train[0] > 0.05 and train[2] > 0.05, train  # a centre crop would show no red and no blue
    # in the source's proportions: most crops of a 3:1 picture do not fit, and fastai's fallback is its centred 4:3
    # (crops drawn in the squished square's proportions would show 45% green)
    assert 0.5 < train[1] < 0.8 and abs(train[0] - train[2]) < 0.15, train
    valid = _shares([dls.valid.one_batch()[0]])
    assert np.allclose(valid, [0.292, 0.417, 0.292], atol=0.005), valid


def test_the_same_seed_gives_the_same_crops(tmp_path):
    a, b, c = _dls(tmp_path / "a"), _dls(tmp_path / "b"), _dls(tmp_path / "c", seed=1)
    for (xa, _), (xb, _), (xc, _) in zip(a.train, b.train, c.train):
        assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_crops_cover_min_scale_to_max_scale_of_the_source_area_in_its_proportions():
    from pipekit.vision.samplers import ResizedCrop

    rng = np.random.default_rng(0)
    sources = np.array([[100, 300], [300, 100], [200, 200], [90, 120]] * 250)
    m = ResizedCrop(0.3, max_scale=0.4).matrices(len(sources), rng, (40, 40), (32, 32), sources)
    area = m[:, 0, 0] * m[:, 1, 1]  # of the whole image's
    square = sources[:, 0] == sources[:, 1]
    # on a square source every try fits (rounded to whole pixels)
    assert area[square].min() > 0.29 and area[square].max() < 0.41
    aspect = m[:, 0, 0] * sources[:, 1] / (m[:, 1, 1] * sources[:, 0])  # width / height in source pixels
    assert aspect.min() > 0.72 and aspect.max() < 1.36  # within ratio (whole pixels), whatever the source's aspect
    assert np.all(np.abs(m[:, :2, 2]) + np.stack([m[:, 0, 0], m[:, 1, 1]], 1) <= 1 + 1e-9)  # inside the image
    # a 3:1 source fits no crop of all its area: fastai's fallback, its centred 4:3 crop
    whole = ResizedCrop(1.0).matrices(3, rng, (40, 40), (32, 32), np.array([[100, 300]] * 3))
    assert np.allclose(whole[:, 0, 0], 133 / 300) and np.allclose(whole[:, 1, 1], 1) and np.allclose(whole[:, :2, 2], 0)


def test_max_scale_and_val_xtra_are_honoured_and_checked(tmp_path):
    from pipekit.vision.transforms import ResizedCropAugment

    # max_scale: the largest share of the source's area a crop takes
    for max_scale in (0.1, 1.0):
        dls = _dls(tmp_path / f"m{max_scale}", min_scale=0.05, max_scale=max_scale)
        aug = dls.train.batch_tfms.tfms[0]
        assert isinstance(aug, ResizedCropAugment) and aug.max_scale == max_scale
        m = aug.plan(200, (40, 40), lambda s: np.random.default_rng(0), True, np.array([[100, 300]] * 200)).matrices
        area = m[:, 0, 0] * m[:, 1, 1]
        assert area.min() > 0.045 and (area.max() < 0.105 if max_scale == 0.1 else area.max() > 0.3), area
    # val_xtra: the margin squished into the cache and cropped off in validation
    for val_xtra, size, shares in ((0.0, 32, [1 / 3, 1 / 3, 1 / 3]), (0.5, 48, [0.25, 0.5, 0.25])):
        dls = _dls(tmp_path / f"x{val_xtra}", val_xtra=val_xtra)
        assert dls.train.dataset.stores[0].size == (size, size)
        assert np.allclose(_shares([dls.valid.one_batch()[0]]), shares, atol=0.005)
        assert dls.one_batch()[0].shape == (12, 3, 32, 32)
    with pytest.raises(ParameterError, match=r"RandomResizedCrop: max_scale=0.2 is not accepted; expected a number "
                                             r"in \[0.3, 1\]"):
        RandomResizedCrop(32, min_scale=0.3, max_scale=0.2)
    with pytest.raises(ParameterError, match=r"RandomResizedCrop: val_xtra=-0.1 is not accepted"):
        RandomResizedCrop(32, val_xtra=-0.1)
    with pytest.raises(ParameterError, match=r"val_xtra=100 is not accepted; expected a margin keeping the cached "
                                             r"image at most 8192 pixels"):
        RandomResizedCrop(224, val_xtra=100)


def test_aug_transforms_act_on_the_crop_in_the_same_resample(tmp_path):
    dls = _dls(tmp_path, batch_tfms=aug_transforms(size=24, **_NO_AUG))
    steps = dls.train.batch_tfms.steps()
    assert steps[0].stage_name.startswith("ResizedCropAugment+BatchAugment")  # one plan, one resample
    x, _ = dls.one_batch()
    assert x.shape == (12, 3, 24, 24)
    train = _shares(x for _ in range(3) for x, _ in dls.train)
    assert train[0] > 0.05 and train[2] > 0.05, train
    # validation: the crop's centre, then aug_transforms' own validation (all of it, resized to 24)
    assert np.allclose(_shares([dls.valid.one_batch()[0]]), [0.292, 0.417, 0.292], atol=0.01)


def test_test_dl_and_the_direct_call_give_the_validation_image(tmp_path):
    dls = _dls(tmp_path)
    files = list(dls.valid.items)
    (xt,) = next(iter(dls.test_dl(files)))
    xv, _ = next(iter(dls.valid))
    assert torch.equal(xt, xv)
    img = np.asarray(Image.open(files[0]))
    direct = RandomResizedCrop(32, min_scale=0.3)(img)
    assert direct.shape == (32, 32, 3) and (direct[:, 0, 0] == 255).all() and (direct[:, -1, 2] == 255).all()
    assert torch.allclose(torch.from_numpy(direct).permute(2, 0, 1).float() / 255, xv[0], atol=1e-6)


def test_the_cache_holds_the_whole_image_and_crop_settings_share_it(tmp_path):
    files = _thirds(tmp_path / "img", n=4)
    a = build_image_store(files, RandomResizedCrop(32, min_scale=0.3), cache_dir=tmp_path / "c")
    b = build_image_store(files, RandomResizedCrop(32, min_scale=0.8, max_scale=0.9), cache_dir=tmp_path / "c")
    assert a.size == (40, 40) and a.n_decoded_ == 4 and b.n_reused_ == 4
    left, mid = a.pixels[0, :, :13], a.pixels[0, :, 14:26]  # 300 px squished to 40: thirds of 13.3 px
    assert (left[..., 0] == 255).all() and (mid[..., 1] == 255).all()  # all of the picture, not its centre
    assert RandomResizedCrop(32).cache_key() != RandomResizedCrop(40).cache_key()
    assert RandomResizedCrop(32).cache_key() != RandomResizedCrop(32, val_xtra=0.5).cache_key()


def test_masks_and_points_follow_the_crop(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        img = np.zeros((90, 240, 3), np.uint8)
        mask = np.zeros((90, 240), np.uint8)
        x, y = int(rng.integers(30, 210)), int(rng.integers(20, 70))
        img[y - 6:y + 6, x - 6:x + 6] = 255  # a white square, its centre the point
        mask[y - 6:y + 6, x - 6:x + 6] = 1
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / f"{i}_m.png")
        rows.append({"path": str(tmp_path / f"{i}.png"), "mask": str(tmp_path / f"{i}_m.png"), "pt": [[x, y]]})
    items = pl.DataFrame(rows)
    dls = DataBlock(blocks=(ImageBlock, MaskBlock(["bg", "fg"]), PointBlock), n_inp=1,
                    getters=[lambda r: r["path"], lambda r: r["mask"], lambda r: r["pt"]],
                    splitter=FuncSplitter(lambda r: r["path"].endswith(("0.png", "1.png"))),
                    item_tfms=RandomResizedCrop(48, min_scale=0.5)).dataloaders(items, bs=10, seed=0, device="cpu")
    seen = 0
    for dl in (dls.train, dls.train, dls.valid):
        for x, m, p in dl:
            white = (x.min(1).values > 0.8).long()
            agree = (white == m).float().mean((1, 2))
            assert agree.min() > 0.97, agree  # the mask is resampled with its image
            px = ((p[:, 0] + 1) / 2 * 48).floor().long()  # the point moved with its image, in output pixels
            inside = ((px >= 1) & (px < 47)).all(1)
            if dl is dls.valid:  # the whole width but the margin: item 0's square, at x=183 of 240, is in it
                assert inside.all()
            for k in torch.nonzero(inside).flatten().tolist():
                assert m[k, px[k, 1], px[k, 0]] == 1 and white[k, px[k, 1], px[k, 0]] == 1
                seen += 1
    assert seen > 10


@pytest.mark.filterwarnings("ignore:the training labels hold a single class")
def test_camvid_validation_is_fastais_squish_then_centre_crop():
    cam = D.path("camvid_tiny")
    files = sorted(get_image_files(cam / "images"))[:4]
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: files + files, get_y=lambda f: f.name[:3],
                    splitter=IndexSplitter([0, 1, 2, 3]), item_tfms=RandomResizedCrop(64, min_scale=0.3)
                    ).dataloaders(cam, bs=4, val_bs=4, device="cpu")
    x = dls.valid.one_batch()[0]
    assert x.shape == (4, 3, 64, 64)
    assert abs(float(x.mean()) - 0.2200) < 0.002  # fastai 2.8.12: 0.2200; the centre crop of the old cache: 0.2568


def test_the_validation_crop_is_the_cached_centre_copied_by_both_executors():
    from pipekit.vision import warp_cv2, warp_torch
    from pipekit.vision.geometry import pixel_matrices
    from pipekit.vision.transforms import ResizedCropAugment

    imgs = np.random.default_rng(0).integers(0, 256, (3, 80, 80, 3), dtype=np.uint8)
    assert RandomResizedCrop(64).cached_size() == (80, 80)
    plan = ResizedCropAugment(64).plan(3, (80, 80), lambda s: np.random.default_rng(0), train=False)
    out = warp_cv2(imgs, plan).numpy()
    assert np.array_equal(out, imgs[:, 8:72, 8:72])
    pm = pixel_matrices(plan.matrices, (80, 80), (64, 64))[0]  # what OpenCV's bilinear warp gives: the same pixels
    assert np.array_equal(out[0], cv2.warpAffine(imgs[0], pm[:2], (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    via_torch = warp_torch(torch.from_numpy(imgs), plan).permute(0, 2, 3, 1).numpy() * 255
    assert np.abs(via_torch - out).max() < 0.01  # of 255: float rounding of the grid only


def test_a_learner_exported_before_the_whole_image_was_cached_loads_as_it_was_made(tmp_path):
    """A file of format 3 cached the centred crop: its RandomResizedCrop records (the image block's and the point
    block's) have no whole_image, nor val_xtra and max_scale. It loads with whole_image=False everywhere, so images
    and points are predicted as they were."""
    import json
    import zipfile

    from file_edits import component_records
    from pipekit.learn import Learner, load_learner, simple_cnn

    rows = []
    for i in range(8):
        img = np.zeros((60, 180, 3), np.uint8)
        img[:, 60:120] = 150
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        rows.append({"path": str(tmp_path / f"{i}.png"), "pt": [[20 + 15 * i, 30]]})
    dls = DataBlock(blocks=(ImageBlock, PointBlock), n_inp=1, getters=[lambda r: r["path"], lambda r: r["pt"]],
                    splitter=FuncSplitter(lambda r: r["path"].endswith("0.png")),
                    item_tfms=RandomResizedCrop(32, whole_image=False)).dataloaders(
        pl.DataFrame(rows), bs=4, seed=0, device="cpu")
    assert [type(t).__name__ for t in dls.train.batch_tfms][0] == "BatchAugment"  # drawn within the cached centre
    torch.manual_seed(0)
    learn = Learner(dls, simple_cnn(3, 2, (4, 8)))
    learn.export(tmp_path / "made.pkl")
    with zipfile.ZipFile(tmp_path / "made.pkl") as z:
        members = {n: z.read(n) for n in z.namelist()}
    record = json.loads(members["record.json"])
    crops = list(component_records(record, "pipekit.vision.RandomResizedCrop"))
    assert len(crops) >= 2  # the image block's and the point block's
    for rec in crops:  # as format 3 wrote them
        for name in ("whole_image", "val_xtra", "max_scale"):
            rec["params"].pop(name)
    members["record.json"] = json.dumps(record).encode()
    members["manifest.json"] = json.dumps({**json.loads(members["manifest.json"]), "version": 3}).encode()
    with zipfile.ZipFile(tmp_path / "older.pkl", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    back = load_learner(tmp_path / "older.pkl")
    held = [t for b in back.dls.recipe.fitted_blocks for t in b.tfms_ if isinstance(t, RandomResizedCrop)]
    assert len(held) == 2 and all(not t.whole_image and t.cached_size() == (32, 32) for t in held)
    wide = tmp_path / "0.png"
    got, want = back.predict(wide), learn.predict(wide)
    assert np.allclose(np.asarray(got[0]), np.asarray(want[0])) and torch.allclose(got[2], want[2])
    x = back.dls.test_dl([wide]).one_batch()[0]
    assert x.shape[-2:] == (32, 32) and float(x[0, :, :, :4].mean()) > 0.5  # the centre third only, as before
    # a file written now keeps whole_image, and loads with the whole image cached
    now = _dls(tmp_path / "now")
    Learner(now, simple_cnn(3, 2, (4, 8))).export(tmp_path / "now.pkl")
    loaded = load_learner(tmp_path / "now.pkl")
    assert next(t for t in loaded.dls.recipe.fitted_blocks[0].tfms_ if isinstance(t, RandomResizedCrop)).whole_image


class _LeftSquare(Transform):
    """A user's crop: the left square of each picture."""

    def encodes(self, x):
        return np.ascontiguousarray(x[:, :x.shape[0]]) if getattr(x, "ndim", 0) == 3 else x


def test_after_a_users_transform_changing_the_size_the_crop_is_of_what_it_made(tmp_path):
    """The user's transform keeps the left 60x60 square of 60x200 gradients; a crop of the whole area then spans
    the whole square (drawn in the cached image's proportions), not the middle of it (the file's proportions)."""
    for i in range(8):
        a = np.zeros((60, 200, 3), np.uint8)
        a[:] = (np.arange(200) * 255 // 199)[None, :, None]
        (tmp_path / "ab"[i % 2]).mkdir(exist_ok=True)
        Image.fromarray(a).save(tmp_path / "ab"[i % 2] / f"{i}.png")
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=IndexSplitter([0, 1]), item_tfms=[_LeftSquare(), RandomResizedCrop(32, min_scale=1.0,
                                                                                              ratio=(1, 1))]
                    ).dataloaders(tmp_path, bs=6, device="cpu", seed=0)
    assert dls.train.dataset.stores[0].crop_sizes is None
    x = dls.train.one_batch()[0].float()
    assert float(x[:, 0, 16, 0].max()) < 0.02 and float(x[:, 0, 16, -1].min()) > 0.26  # 0 .. 77/255
    # a transform keeping the size (a flip) keeps the source's proportions
    same = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     splitter=IndexSplitter([0, 1]), item_tfms=[_Same(), RandomResizedCrop(32)]).dataloaders(
        tmp_path, bs=6, device="cpu", seed=0)
    assert same.train.dataset.stores[0].crop_sizes.tolist()[0] == [60, 200]
