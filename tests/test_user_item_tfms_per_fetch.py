"""A user's item transform on images runs each time an image is fetched, as fastai runs item transforms: a random one
draws anew every epoch (repeatably, from the loader's seed), and fastai's ``split_idx`` (a ``RandTransform``'s 0) says
on which split's images it runs."""
from __future__ import annotations

import os
import random
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import (CategoryBlock, DataBlock, FuncSplitter, GrandparentSplitter, RandTransform, get_image_files,
                          parent_label, store_attr)
from pipekit.data.transform import Transform, runs_on_split
from pipekit.learn import Learner
from pipekit.vision import ImageBlock, MaskBlock, PILImage, PILImageBW, PILMask, Resize
from pipekit.vision.cache import LiveImageStore

pytestmark = pytest.mark.data


def _every_8th(p: Path) -> list[Path]:
    return sorted(get_image_files(p), key=os.fspath)[::8]


def _mnist(item_tfms=(), bs=8, seed=0, shuffle=False, num_workers=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=_every_8th, get_y=parent_label,
                         splitter=GrandparentSplitter(), item_tfms=list(item_tfms)).dataloaders(
            D.path("mnist_tiny"), bs=bs, shuffle=shuffle, device="cpu", seed=seed, num_workers=num_workers)


class RandFlip(Transform):  # the course's augmentation written as a Transform: a new draw each time it runs
    def encodes(self, x: PILImage):
        return np.ascontiguousarray(x[:, ::-1]) if random.random() < 0.5 else x


class Flip(Transform):  # deterministic
    def encodes(self, x: PILImage):
        return np.ascontiguousarray(x[:, ::-1])


class FlipTrain(RandTransform):  # fastai's RandTransform: training images only (split_idx = 0), with probability p
    def encodes(self, x: PILImage):
        return np.ascontiguousarray(x[:, ::-1])


def _epochs(dl, n: int) -> list[torch.Tensor]:
    return [torch.cat([b[0] for b in dl]) for _ in range(n)]


def _flipped(got: torch.Tensor, plain: torch.Tensor) -> list[bool]:
    """For each image, whether ``got`` is ``plain`` flipped left to right (it must be that or ``plain``)."""
    out = []
    for g, p in zip(got, plain):
        assert torch.equal(g, p) or torch.equal(g, p.flip(-1))
        out.append(not torch.equal(g, p))
    return out


def test_a_random_item_transform_draws_anew_each_epoch_and_repeats_with_the_seed():
    plain = torch.cat([b[0] for b in _mnist().train])
    dls = _mnist([RandFlip(), Resize(28)])
    assert isinstance(dls.train_ds.stores[0], LiveImageStore)
    first = next(iter(dls.train))[0]
    second = next(iter(dls.train))[0]  # the same first batch, drawn in the next epoch
    assert not torch.equal(first, second)
    # a batch is keyed by (seed, epoch, batch), as batch augmentation is: one_batch() repeats within an epoch
    assert torch.equal(dls.train.one_batch()[0], dls.train.one_batch()[0])
    epochs = _epochs(_mnist([RandFlip(), Resize(28)]).train, 3)
    assert torch.equal(epochs[0][:8], first) and torch.equal(epochs[1][:8], second)
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    for got in epochs:  # each image is its file's, flipped or not, and both happen
        flips = _flipped(got, plain)
        assert 0.25 < np.mean(flips) < 0.75
    # the same seed on a fresh build gives the same images, epoch by epoch; another seed other ones
    assert all(torch.equal(a, b) for a, b in zip(epochs, _epochs(_mnist([RandFlip(), Resize(28)]).train, 3)))
    assert not torch.equal(epochs[0], _epochs(_mnist([RandFlip(), Resize(28)], seed=1).train, 1)[0])


def test_a_deterministic_item_transform_gives_the_same_validation_images_as_applying_it_by_hand():
    dls = _mnist([Flip()])
    once, again = _epochs(dls.valid, 2)
    assert torch.equal(once, again)
    files = list(dls.valid.items)
    by_hand = torch.stack([torch.from_numpy(np.ascontiguousarray(np.asarray(PILImageBW.create(f))[:, ::-1]))
                           for f in files]).permute(0, 3, 1, 2)
    assert torch.equal((once * 255).round().to(torch.uint8), by_hand)
    # and through the mid-level: a store gathered outside a loader is of the validation split
    store = dls.valid_ds.stores[0]
    assert torch.equal(store.item(int(dls.valid_ds.idxs[0])), by_hand[0].permute(1, 2, 0))
    assert store.source_size(0) == (28, 28) and store.size == (28, 28)


def test_a_rand_transform_runs_on_training_images_only_and_p_0_never():
    plain = _mnist()
    dls = _mnist([FlipTrain()])
    assert torch.equal(dls.train.one_batch()[0], plain.train.one_batch()[0].flip(-1))
    assert torch.equal(dls.valid.one_batch()[0], plain.valid.one_batch()[0])  # validation: unflipped
    files = list(plain.valid.items)[:4]
    assert torch.equal(dls.test_dl(files).one_batch()[0], plain.test_dl(files).one_batch()[0])  # new items too
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2)))
    seen = np.round(np.asarray(learn.predict(files[0], with_input=True)[0]) * 255).astype(np.uint8)
    assert np.array_equal(seen, np.asarray(PILImageBW.create(files[0])))  # predict's: unflipped
    assert not np.array_equal(seen, np.asarray(PILImageBW.create(files[0]))[:, ::-1])
    # learn.tta's augmented passes use the loader as a training one (augment=True): the flip runs there
    tta_dl = dls.valid.new(shuffle=False, augment=True)
    assert torch.equal(tta_dl.one_batch()[0], plain.valid.one_batch()[0].flip(-1))
    # p=0 never runs; split_idx = None runs on every split
    never = _mnist([FlipTrain(p=0.0)])
    assert torch.equal(never.train.one_batch()[0], plain.train.one_batch()[0])

    class FlipAll(FlipTrain):
        split_idx = None

    both = _mnist([FlipAll()])
    assert torch.equal(both.valid.one_batch()[0], plain.valid.one_batch()[0].flip(-1))
    assert runs_on_split(FlipTrain(), 0) and not runs_on_split(FlipTrain(), 1) and runs_on_split(FlipAll(), 1)
    # summary's walk of the first training batch shows the training images as the loader makes them: flipped
    from pipekit.data.dataloaders import walk_batch

    walked = walk_batch(dls.train, lambda line: None)[0]
    assert torch.equal(walked, plain.train.one_batch()[0].flip(-1))


def test_a_rand_transform_with_p_half_draws_per_image_and_epoch():
    plain = torch.cat([b[0] for b in _mnist().train])
    epochs = _epochs(_mnist([FlipTrain(p=0.5)]).train, 2)
    flips = [_flipped(got, plain) for got in epochs]
    assert all(0.25 < np.mean(f) < 0.75 for f in flips) and flips[0] != flips[1]


SPLITS: list[int] = []


class AlbumentationsTransform(RandTransform):
    "A transform handler for multiple `Albumentation` transforms (the fastai tutorial's, as it writes it)"
    split_idx, order = None, 2

    def __init__(self, train_aug, valid_aug): store_attr()

    def before_call(self, b, split_idx):
        self.idx = split_idx
        SPLITS.append(split_idx)

    def encodes(self, img: PILImage):
        if self.idx == 0:
            aug_img = self.train_aug(image=np.array(img))['image']
        else:
            aug_img = self.valid_aug(image=np.array(img))['image']
        return PILImage.create(aug_img)


def test_the_albumentations_tutorials_transform_gets_the_split_of_each_loader():
    A = pytest.importorskip("albumentations")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls, plain = (DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=_every_8th, get_y=parent_label,
                                splitter=GrandparentSplitter(), item_tfms=tfms).dataloaders(
            D.path("mnist_tiny"), bs=8, shuffle=False, device="cpu", seed=0)
            for tfms in ([AlbumentationsTransform(A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)), Resize(28)],
                         [Resize(28)]))
    SPLITS.clear()
    assert torch.equal(dls.train.one_batch()[0], plain.train.one_batch()[0].flip(-1))  # train_aug
    assert SPLITS == [0] * 8
    SPLITS.clear()
    assert torch.equal(dls.valid.one_batch()[0], plain.valid.one_batch()[0].flip(-2))  # valid_aug
    assert SPLITS == [1] * 8


def test_prefetch_threads_give_the_images_of_a_single_thread():
    one = _epochs(_mnist([RandFlip(), FlipTrain(p=0.5)], shuffle=True, num_workers=0).train, 2)
    two = _mnist([RandFlip(), FlipTrain(p=0.5)], shuffle=True, num_workers=2)
    assert two.train.num_workers == 2
    assert all(torch.equal(a, b) for a, b in zip(one, _epochs(two.train, 2)))


def test_the_global_generators_are_left_as_they_were():
    dls = _mnist([RandFlip()])
    random.seed(5)
    np.random.seed(5)
    want = (random.random(), np.random.rand())
    random.seed(5)
    np.random.seed(5)
    next(iter(dls.train))
    assert (random.random(), np.random.rand()) == want


def _camvid(item_tfms, codes=None):
    cam = D.path("camvid_tiny")
    codes = np.loadtxt(cam / "codes.txt", dtype=str) if codes is None else codes
    return DataBlock(blocks=(ImageBlock, MaskBlock(codes)),
                     get_items=lambda p: sorted(get_image_files(p / "images"), key=os.fspath)[:6],
                     get_y=lambda f: cam / "labels" / f"{f.stem}_P{f.suffix}",
                     splitter=FuncSplitter(lambda f: Path(f).name > "0001TP_0080"),
                     item_tfms=[*item_tfms, Resize((48, 64), method="squish")]).dataloaders(
        cam, bs=4, shuffle=False, device="cpu", seed=0)


class RandFlipBoth(RandTransform):  # typed for nothing: it reaches images and masks, as in fastai
    def __init__(self):
        super().__init__(p=0.5)

    def encodes(self, x):
        return np.ascontiguousarray(x[:, ::-1])


def test_an_image_and_its_mask_get_the_same_draw():
    x, m = _camvid([]).train.one_batch()
    dl = _camvid([RandFlipBoth()]).train
    image_flips, mask_flips = [], []
    for _ in range(3):
        xf, mf = next(iter(dl))
        image_flips += [not torch.allclose(a, b, atol=0.02) for a, b in zip(xf, x)]
        mask_flips += [not torch.equal(a, b) for a, b in zip(mf, m)]
        assert all(torch.allclose(a, b, atol=0.02) or torch.allclose(a, b.flip(-1), atol=0.02) for a, b in zip(xf, x))
    assert image_flips == mask_flips and any(image_flips) and not all(image_flips)


def test_a_mask_transform_making_values_outside_the_codes_is_refused_naming_the_file():
    class Shift(Transform):
        def encodes(self, x):
            return x + 40 if x.dtype == np.uint8 and x.ndim == 2 else x

    with pytest.raises(Exception, match=r"0001TP_\d+_P\.png: mask value \d+ but only 32 codes were given") as e:
        _camvid([Shift()])
    assert isinstance(e.value.__cause__, DataError)


class ToColour(Transform):
    def encodes(self, x: PILImage):
        return x.convert("RGB")


def test_a_transform_changing_grey_to_colour_is_named_with_the_blocks_fix():
    with pytest.raises(Exception, match=r"ToColour gave uint8 pixels of shape \(28, 28, 3\) .*PILImageBW.create\(arr\)"
                                        r".*cls=PILImage for colour.*x.convert\('L'\)"):
        _mnist([ToColour()])


class SlowRandFlip(Transform):  # draws, and waits while a prefetch thread would hold the generators seeded
    def encodes(self, x: PILImage):
        time.sleep(0.001)
        return np.ascontiguousarray(x[:, ::-1]) if random.random() < 0.5 else x


def _draws_while_iterating(dl) -> list[float]:
    random.seed(3)
    np.random.seed(3)
    out: list[float] = []
    for _ in dl:
        for _ in range(30):
            out += [random.random(), float(np.random.rand())]
            time.sleep(0.0002)
    return out


@pytest.mark.parametrize("num_workers", [None, 2])
def test_the_iterating_threads_draws_are_those_it_makes_without_the_loader(num_workers):
    dls = _mnist([SlowRandFlip(), Resize(28)], num_workers=num_workers)
    got = _draws_while_iterating(dls.train)
    random.seed(3)
    np.random.seed(3)
    want = [v for _ in range(len(got) // 2) for v in (random.random(), float(np.random.rand()))]
    assert len(got) == 2 * 30 * len(dls.train) and got == want


THREADS: set[str] = set()


class ThreadOf(Transform):  # RandFlip, noting the thread each image is made in
    def encodes(self, x: PILImage):
        THREADS.add(threading.current_thread().name)
        return np.ascontiguousarray(x[:, ::-1]) if random.random() < 0.5 else x


def test_a_loader_drawing_per_fetch_makes_its_batches_in_the_iterating_thread_and_trains():
    dls = _mnist([ThreadOf()], shuffle=True, num_workers=2)
    one = _epochs(_mnist([RandFlip()], shuffle=True, num_workers=0).train, 2)
    THREADS.clear()
    assert dls.train.num_workers == 2  # as asked, yet no prefetch thread is started for it
    assert all(torch.equal(a, b) for a, b in zip(one, _epochs(dls.train, 2)))
    assert THREADS == {threading.current_thread().name}
    assert _mnist([RandFlip()]).train.num_workers == 0  # the default: none
    # fit trains on such loaders (and makes their batches in its own thread)
    torch.manual_seed(0)
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2)))
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(2, 1e-2)
    assert THREADS == {threading.current_thread().name}
    assert not all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    losses = [float(v) for v in learn.validate()]
    assert all(np.isfinite(losses))


def test_masks_outside_the_codes_are_refused_at_build_with_a_user_transform_naming_the_file():
    class Ident(Transform):
        def encodes(self, x):
            return x

    cam = D.path("camvid_tiny")
    codes = [str(c) for c in np.loadtxt(cam / "codes.txt", dtype=str)][:31]  # one too few for value 31
    labels = [cam / "labels" / f"{f.stem}_P{f.suffix}" for f in sorted(get_image_files(cam / "images"), key=os.fspath)[:6]]
    maxima = [int(np.asarray(Image.open(f)).max()) for f in labels]
    assert maxima[0] < 31 <= max(maxima)  # the first mask (the one run through the transforms at build) is good
    bad = [str(f) for f, m in zip(labels, maxima) if m >= 31]
    named = []
    for tfms in ([], [Ident()]):  # cached, or made per fetch: both refuse at build, naming a file outside the codes
        with pytest.raises(Exception, match=r"mask value 31 but only 31 codes were given") as e:
            _camvid(tfms, codes=codes)
        assert isinstance(e.value.__cause__, DataError)
        named.append(str(e.value.__cause__).split(": mask value")[0])
    # both check the masks as made (after the resize), so both name the same file
    assert named[0] == named[1] and named[0] in bad

    class Remap(Transform):  # a transform that maps the out-of-codes value into them passes the build
        def encodes(self, x: PILMask):
            return np.where(np.asarray(x) >= 31, 0, np.asarray(x)).astype(np.uint8)

    dls = _camvid([Remap()], codes=codes)
    assert int(dls.train.one_batch()[1].max()) < 31
