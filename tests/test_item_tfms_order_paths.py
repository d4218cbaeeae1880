"""A user's item transforms on images run where their ``order`` puts them among the item transforms, as fastai sorts
them (its ``Resize`` and ``RandomResizedCrop`` have order 1, ``CropPad`` 0): before the resize or on the resized
image. ``ImageClassifierCleaner`` with labels that are not text; fastai's ``ItemTransform`` (the whole item) refused
by a DataBlock with what to give instead; an albumentations pipeline changing the images' channels."""
from __future__ import annotations

import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, DataBlock, GrandparentSplitter, RandTransform, RandomSplitter,
                          get_image_files, parent_label, store_attr)
from pipekit.data.transform import Transform
from pipekit.vision import (CropPad, ImageBlock, MaskBlock, PILImage, PILImageBW, PILMask, RandomResizedCrop, Resize,
                            image_paths_with)
from pipekit.vision.cache import ImageStore, LiveImageStore

pytestmark = pytest.mark.data


def _every_8th(p: Path) -> list[Path]:
    return sorted(get_image_files(p), key=os.fspath)[::8]


def _mnist(item_tfms, cls="L", bs=8, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls=cls), CategoryBlock), get_items=_every_8th, get_y=parent_label,
                         splitter=GrandparentSplitter(), item_tfms=list(item_tfms)).dataloaders(
            D.path("mnist_tiny"), bs=bs, shuffle=False, device="cpu", seed=seed)


class Crop12(Transform):
    """The centre 12 x 12 of an image (order given per test)."""

    def encodes(self, x: PILImage):
        h, w = x.shape[:2]
        return np.ascontiguousarray(x[(h - 12) // 2:(h - 12) // 2 + 12, (w - 12) // 2:(w - 12) // 2 + 12])


def _crop(order: int) -> Crop12:
    return Crop12(order=order)  # fastai's keyword, kept by the copy a DataBlock makes


def _images(dls) -> torch.Tensor:
    return torch.cat([b[0] for b in dls.valid])


# ------------------------------------------------------------------------------------------- 1. order vs the resize
def test_a_transform_of_a_higher_order_than_resize_gets_the_resized_image():
    plain = _images(_mnist([Resize(20)]))
    got = _images(_mnist([Resize(20), _crop(2)]))
    assert got.shape[-2:] == (12, 12)
    assert torch.equal(got, plain[..., 4:16, 4:16])  # the centre of the resized image, not the image resized back


def test_a_transform_of_order_0_still_runs_on_the_decoded_image_before_the_resize():
    # listed after Resize: its order (0) is lower than Resize's (1), as in fastai
    got = _images(_mnist([Resize(20), _crop(0)]))
    assert got.shape[-2:] == (20, 20)
    assert torch.equal(got, _images(_mnist([_crop(0), Resize(20)])))


@pytest.mark.parametrize("tfms, side", [
    (lambda: [Resize(20), _crop(1)], 12),      # Resize's order: where item_tfms lists it
    (lambda: [_crop(1), Resize(20)], 20),
    (lambda: [CropPad(20), _crop(0)], 12),     # CropPad's order is 0
    (lambda: [_crop(0), CropPad(20)], 20),
])
def test_a_transform_of_the_presize_order_runs_where_item_tfms_lists_it(tfms, side):
    assert _images(_mnist(tfms())).shape[-2:] == (side, side)


class AlbumentationsTransform(RandTransform):
    "The fastai Albumentations tutorial's transform, as it writes it"
    split_idx, order = None, 2

    def __init__(self, train_aug, valid_aug): store_attr()

    def before_call(self, b, split_idx): self.idx = split_idx

    def encodes(self, img: PILImage):
        aug = self.train_aug if self.idx == 0 else self.valid_aug
        return PILImage.create(aug(image=np.array(img))['image'])


def test_the_albumentations_tutorial_crops_the_resized_images_of_each_split():
    A = pytest.importorskip("albumentations")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tfm = AlbumentationsTransform(A.Compose([A.RandomResizedCrop(size=(48, 48)), A.HorizontalFlip()]),
                                      A.Compose([A.CenterCrop(48, 48, p=1.), A.Resize(48, 48)], p=1.))
        dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::200],
                        get_y=parent_label, splitter=RandomSplitter(0.2, seed=42),
                        item_tfms=[Resize(64), tfm]).dataloaders(D.path("dogscats") / "train", bs=4, seed=0,
                                                                 device="cpu")
        plain = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::200],
                          get_y=parent_label, splitter=RandomSplitter(0.2, seed=42),
                          item_tfms=[Resize(64)]).dataloaders(D.path("dogscats") / "train", bs=4, seed=0,
                                                              device="cpu")
    assert dls.train.one_batch()[0].shape[-2:] == (48, 48)
    valid, whole = dls.valid.new(shuffle=False).one_batch()[0], plain.valid.new(shuffle=False).one_batch()[0]
    assert torch.equal(valid, whole[..., 8:56, 8:56])  # CenterCrop(48) of the 64 x 64 resized image


class RandFlip(Transform):  # random, after the resize: drawn anew each epoch, repeatably
    order = 2

    def encodes(self, x: PILImage):
        return np.ascontiguousarray(x[:, ::-1]) if random.random() < 0.5 else x


def test_a_random_transform_after_the_resize_draws_each_epoch_repeatably():
    def epochs(seed):
        dl = _mnist([Resize(20), RandFlip()], seed=seed).train
        return [torch.cat([b[0] for b in dl]) for _ in range(2)]

    first, again = epochs(0), epochs(0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])  # not cached: a new draw in the next epoch
    plain = torch.cat([b[0] for b in _mnist([Resize(20)]).train])
    flipped = [bool(torch.equal(g, p.flip(-1))) and not torch.equal(g, p) for g, p in zip(first[0], plain)]
    assert 0 < sum(flipped) < len(flipped)


class CropBoth(Transform):  # typed for nothing: the image and its mask, after the resize
    order = 2

    def encodes(self, x):
        return np.ascontiguousarray(x[8:40, 8:40]) if isinstance(x, np.ndarray) and x.ndim >= 2 else x


def _camvid(item_tfms):
    path = D.path("camvid_tiny")
    codes = list(np.loadtxt(path / "codes.txt", dtype=str))
    return DataBlock(blocks=(ImageBlock, MaskBlock(codes)),
                     get_items=lambda p: sorted(get_image_files(p / "images"))[:8],
                     get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                     splitter=RandomSplitter(0.25, seed=0), item_tfms=item_tfms).dataloaders(
        path, bs=4, seed=0, device="cpu", shuffle=False)


def test_masks_go_through_the_same_transforms_after_the_resize():
    got = _camvid([Resize(48), CropBoth()]).valid.one_batch()
    plain = _camvid([Resize(48)]).valid.one_batch()
    assert got[0].shape[-2:] == (32, 32) and got[1].shape[-2:] == (32, 32)
    assert torch.equal(got[0], plain[0][..., 8:40, 8:40]) and torch.equal(got[1], plain[1][..., 8:40, 8:40])


def test_a_mask_value_beyond_the_codes_is_refused_before_a_resize_drops_it(tmp_path):
    src = D.path("camvid_tiny")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for f in sorted((src / "images").glob("*.png"))[:4]:
        shutil.copy(f, tmp_path / "images")
        shutil.copy(src / "labels" / f"{f.stem}_P.png", tmp_path / "labels")
    bad = sorted((tmp_path / "labels").glob("*.png"))[0]
    mask = np.array(Image.open(bad))
    mask[0, :4] = 200  # the top row, which Resize(48)'s centre crop of a wide image drops
    Image.fromarray(mask).save(bad)
    codes = list(np.loadtxt(src / "codes.txt", dtype=str))
    with pytest.raises(PipelineStepError, match="mask value 200 but only 32 codes") as e:
        DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: sorted(get_image_files(p / "images")),
                  get_y=image_paths_with(tmp_path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                  splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(48), CropBoth()]).dataloaders(
            tmp_path, bs=2, seed=0, device="cpu")
    assert bad.name in str(e.value)


# ------------------------------------------------------------------------------------------- 2. the cleaner
@pytest.mark.parametrize("get_y, shown", [
    (lambda f: int(f.parent.name), ["3", "7"]),
    (lambda f: f.parent.name == "3", ["False", "True"]),
])
def test_the_cleaner_shows_and_relabels_images_whose_labels_are_not_text(tmp_path, get_y, shown):
    from torch import nn

    from pipekit.learn import Learner
    from pipekit.vision.widgets import ImageClassifierCleaner

    for split in ("train", "valid"):
        shutil.copytree(D.path("mnist_tiny") / split, tmp_path / split)
    dls = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files, get_y=get_y,
                    splitter=GrandparentSplitter()).dataloaders(tmp_path, bs=64, seed=0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    cleaner = ImageClassifierCleaner(learn, max_n=4)
    assert cleaner.vocab == shown
    for cat in shown:
        for split in ("Train", "Valid"):
            cleaner.select(cat, split)
            assert len(cleaner.fns) == 4
    cleaner.select(shown[1], "Valid")
    cleaner.mark(0, shown[0])
    assert cleaner.change() == [(0, shown[0])]
    (tmp_path / "moved" / shown[0]).mkdir(parents=True)
    moved = cleaner.fns[0]
    for idx, cat in cleaner.change():
        shutil.move(str(cleaner.fns[idx]), tmp_path / "moved" / cat)
    assert (tmp_path / "moved" / shown[0] / moved.name).exists()


# ------------------------------------------------------------------------------------------- 3. ItemTransform
def test_fastais_item_transform_is_named_and_refused_by_a_datablock_pointing_to_albumentations():
    A = pytest.importorskip("albumentations")
    ns: dict = {}
    exec("from pipekit.vision.all import *", ns)

    class SegmentationAlbumentationsTransform(ns["ItemTransform"]):  # the fastai tutorial's
        split_idx = 0

        def __init__(self, aug): self.aug = aug

        def encodes(self, x):
            img, mask = x
            aug = self.aug(image=np.array(img), mask=np.array(mask))
            return ns["PILImage"].create(aug["image"]), ns["PILMask"].create(aug["mask"])

    tfm = SegmentationAlbumentationsTransform(A.HorizontalFlip(p=1))
    img, mask = np.arange(12, dtype=np.uint8).reshape(2, 2, 3), np.array([[0, 1], [2, 3]], np.uint8)
    out_img, out_mask = tfm((img, mask), split_idx=0)  # called directly on a training item: the whole item
    assert np.array_equal(np.asarray(out_img), img[:, ::-1]) and np.array_equal(np.asarray(out_mask), mask[:, ::-1])
    codes = list(np.loadtxt(D.path("camvid_tiny") / "codes.txt", dtype=str))
    with pytest.raises(ParameterError, match=r"SegmentationAlbumentationsTransform is an ItemTransform") as e:
        DataBlock(blocks=(ImageBlock, MaskBlock(codes)), item_tfms=[Resize(48), tfm])
    assert "Albumentations(A.Compose([...]))" in str(e.value)


# ------------------------------------------------------------------------------------------- 4. channels
def test_an_albumentations_pipeline_changing_the_channels_is_refused_saying_so():
    A = pytest.importorskip("albumentations")
    from pipekit.vision import Albumentations

    dls = _mnist([Resize(16), Albumentations(A.ToGray(num_output_channels=1, p=1))], cls="RGB")
    with pytest.raises(DataError, match=r"number of image channels from 3 to 1") as e:
        dls.train.one_batch()
    msg = str(e.value)
    assert "A.ToGray(num_output_channels=3)" in msg and "ImageBlock(cls=PILImageBW)" in msg
    assert "size from" not in msg


# ------------------------------------------------------------------------------------------- 4. after the presize
class VoidToZero(Transform):
    """A mask's void value 255 as class 0, the codes' first (typed for masks)."""

    def encodes(self, x: PILMask):
        x = np.array(x)
        x[x == 255] = 0
        return x


def _camvid_with(tmp_path, item_tfms, value=255, box=(slice(40, 60), slice(40, 60)), n=4):
    """camvid_tiny's first ``n`` images, each mask with ``value`` in ``box``."""
    src = D.path("camvid_tiny")
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    for f in sorted((src / "images").glob("*.png"))[:n]:
        shutil.copy(f, tmp_path / "images")
        mask = np.array(Image.open(src / "labels" / f"{f.stem}_P.png"))
        mask[box] = value
        Image.fromarray(mask).save(tmp_path / "labels" / f"{f.stem}_P.png")
    codes = list(np.loadtxt(src / "codes.txt", dtype=str))
    return DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: sorted(get_image_files(p / "images")),
                     get_y=image_paths_with(tmp_path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                     splitter=RandomSplitter(0.25, seed=0), item_tfms=item_tfms).dataloaders(
        tmp_path, bs=2, seed=0, device="cpu", shuffle=False)


def test_a_mask_transform_after_the_resize_remapping_a_void_value_into_the_codes_passes(tmp_path):
    after = _camvid_with(tmp_path, [Resize(48), VoidToZero(order=2)])
    before = _camvid_with(tmp_path, [Resize(48), VoidToZero(order=0)])
    got, want = torch.cat([b[1] for b in after.valid]), torch.cat([b[1] for b in before.valid])
    assert int(got.max()) < 32
    assert torch.equal(got, want)  # a value map commutes with the nearest-pixel resize of masks


def test_a_void_value_kept_by_the_resize_and_by_the_transforms_after_it_is_refused(tmp_path):
    with pytest.raises(PipelineStepError, match="mask value 255 but only 32 codes"):
        _camvid_with(tmp_path, [Resize(48), CropBoth()])  # the patch is in the centre both keep


def test_a_void_value_the_resize_drops_is_refused_though_a_later_transform_would_remap_it(tmp_path):
    # the left edge, which Resize(48)'s centre crop of the wide images drops: the later transform never sees it
    with pytest.raises(PipelineStepError, match="mask value 255 but only 32 codes"):
        _camvid_with(tmp_path, [Resize(48), VoidToZero(order=2)], box=(slice(0, 4), slice(0, 4)))


class Same(Transform):
    def encodes(self, x: PILImage):
        return x


@pytest.mark.parametrize("tfms, keeps", [
    (lambda: [Resize(20), Same(order=2)], True),      # the resize is the presize transform's, not the user's
    (lambda: [Same(order=0), Resize(20)], True),
    (lambda: [Resize(20), _crop(2)], False),
    (lambda: [_crop(0), Resize(20)], False),
])
def test_the_crop_proportions_are_the_sources_when_the_users_transforms_keep_the_size(tfms, keeps):
    store = _mnist(tfms()).train.dataset.stores[0]
    assert isinstance(store, LiveImageStore)
    if keeps:
        assert store.crop_sizes is not None and np.array_equal(store.crop_sizes, store.orig_sizes)
    else:
        assert store.crop_sizes is None


@pytest.mark.parametrize("order", [1, 2])
def test_a_transform_following_random_resized_crop_changing_the_size_is_refused_naming_the_fix(order):
    with pytest.raises(PipelineStepError, match=r"Crop12\(order=%d\) follow RandomResizedCrop.*change the size.*"
                       r"Resize\(20\).*order=0" % order):
        _mnist([RandomResizedCrop(20), _crop(order)])


def test_a_size_keeping_transform_following_random_resized_crop_gets_the_presized_image():
    seen = []

    def look(x: PILImage) -> PILImage:
        seen.append(x.size)
        return x

    dls = _mnist([RandomResizedCrop(20), Transform(look, order=2)])
    assert dls.train.one_batch()[0].shape[-2:] == (20, 20)
    assert seen and all(s == seen[0] and s[0] >= 20 for s in seen)  # the presized image, crop margin and all


def test_a_transform_before_random_resized_crop_still_runs_and_plain_presizing_is_cached():
    before = _mnist([_crop(0), RandomResizedCrop(20)])
    assert isinstance(before.train.dataset.stores[0], LiveImageStore)
    assert before.train.one_batch()[0].shape[-2:] == (20, 20) and _images(before).shape[-2:] == (20, 20)
    for tfm in (Resize(20), RandomResizedCrop(20)):  # no transform of the user's: the cached images
        assert isinstance(_mnist([tfm]).train.dataset.stores[0], ImageStore)
