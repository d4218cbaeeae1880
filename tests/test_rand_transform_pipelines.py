"""fastai's ``RandTransform`` (``p``, ``do``, ``before_call``) and ``split_idx`` in every item pipeline, on mnist_tiny:
``TfmdLists``, the mid-level ``Datasets`` and ``dataloaders(after_item=...)`` run a transform of one split on that
split's items only, call ``before_call`` once per item with the item's split (0 training, 1 validation and new items,
None for the whole list) and never run a transform drawn with ``p=0``; the constructor keywords ``split_idx=`` and
``order=`` of ``Transform(f)`` and ``RandTransform`` are taken and win over the class's values."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (Categorize, Datasets, GrandparentSplitter, Pipeline, RandTransform, TfmdLists, Transform,
                          get_image_files, parent_label)
from pipekit.vision import PILImage, Resize, ToTensor

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def files() -> list:
    every = sorted(get_image_files(D.path("mnist_tiny")), key=os.fspath)[::8]
    return [f for f in every if f.parent.name != "test"]


@pytest.fixture(scope="module")
def splits(files) -> list:
    return GrandparentSplitter()(files)


class Bang(RandTransform):  # fastai's RandTransform, training items only (split_idx = 0), typed for the labels
    def encodes(self, x: str):
        return x + "!"


class Seen(Bang):
    """Bang that records the split of each call of its ``before_call``."""

    def __init__(self, p: float = 1.0):
        super().__init__(p=p)
        self.splits: list = []

    def before_call(self, b, split_idx):
        self.splits.append(split_idx)
        super().before_call(b, split_idx)


class Mirror(RandTransform):  # an image augmentation of training items, counting the images it changes
    def __init__(self, p: float = 1.0):
        super().__init__(p=p)
        self.calls: list = []
        self.encoded = 0

    def before_call(self, b, split_idx):
        self.calls.append((type(b).__name__, split_idx))
        super().before_call(b, split_idx)

    def encodes(self, x: PILImage):
        self.encoded += 1
        return np.ascontiguousarray(x[:, ::-1])  # left to right


def _quiet(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def test_review_case_tfmdlists_and_datasets_with_p0_leave_every_item_alone(files, splits):
    tl = TfmdLists(files, [parent_label, Bang(p=0.0)], splits=splits)
    assert (tl.train[0], tl.valid[0]) == ("3", "3")
    ds = Datasets(files, [[PILImage.create], [parent_label, Bang(p=0.0)]], splits=splits)
    assert (ds.train[0][1], ds.valid[0][1]) == ("3", "3")


def test_tfmdlists_runs_a_training_transform_on_training_items_only(files, splits):
    tl = TfmdLists(files, [parent_label, Bang()], splits=splits)
    assert set(tl.train[:]) == {"3!", "7!"}
    assert set(tl.valid[:]) == {"3", "7"}
    assert set(tl[:]) == {"3", "7"}  # the whole list is of no split, as fastai's: split_idx=0 steps skip it


def test_before_call_gets_each_items_split_once_in_tfmdlists_and_datasets(files, splits):
    n_train, n_valid = len(splits[0]), len(splits[1])
    seen = Seen()
    tl = TfmdLists(files, [parent_label, seen], splits=splits)
    # the whole list is of no split (setup, on the training items, does not encode with the last step)
    assert seen.splits == [None] * len(files)
    seen.splits.clear()
    tl.train[0], tl.valid[0]
    assert seen.splits == [0] * n_train + [1] * n_valid
    seen.splits.clear()
    tl.train[1], tl.valid[1]  # the subsets' items are encoded once
    assert seen.splits == []

    seen = Seen()
    ds = Datasets(files, [[PILImage.create], [parent_label, seen]], splits=splits)
    seen.splits.clear()
    assert ds.train[0][1] in ("3!", "7!") and ds.valid[0][1] in ("3", "7")
    assert seen.splits == [0] * n_train + [1] * n_valid


def test_split_idx_1_runs_on_validation_and_new_items_only(files, splits):
    tl = TfmdLists(files, [parent_label, Transform(lambda x: x + "?", split_idx=1)], splits=splits)
    assert set(tl.train[:]) == {"3", "7"}
    assert set(tl.valid[:]) == {"3?", "7?"}
    assert tl.encode_new([files[0]]) == [parent_label(files[0]) + "?"]  # test_dl's items are of split 1
    tl0 = TfmdLists(files, [parent_label, Transform(lambda x: x + "?", split_idx=0)], splits=splits)
    assert set(tl0.train[:]) == {"3?", "7?"} and set(tl0.valid[:]) == {"3", "7"}
    assert tl0.encode_new([files[0]]) == [parent_label(files[0])]


def test_review_case_after_item_p0_never_runs_on_valid_or_train(files, splits):
    ds = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=splits)
    flip = Mirror(p=0.0)
    dls = _quiet(lambda: ds.dataloaders(bs=4, after_item=[Resize(28), ToTensor(), flip], device="cpu"))
    dls.valid.one_batch()
    dls.train.one_batch()
    assert flip.encoded == 0
    assert {s for _, s in flip.calls} == {0, 1}


def test_after_item_runs_per_split_and_before_call_gets_the_loaders_split(files, splits):
    ds = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=splits)
    flip = Mirror()
    dls = _quiet(lambda: ds.dataloaders(bs=4, after_item=[Resize(28), flip], device="cpu"))
    flip.calls.clear()
    dls.valid.one_batch()
    # once per item, on the whole item, as fastai's (the loader reads its first item once more, for its geometry)
    assert flip.encoded == 0 and set(flip.calls) == {("tuple", 1)} and len(flip.calls) >= 4
    flip.calls.clear()
    dls.train.one_batch()
    assert flip.encoded >= 4 and set(flip.calls) == {("tuple", 0)} and len(flip.calls) == flip.encoded
    flip.calls.clear()
    before = flip.encoded
    dls.test_dl(files[:3]).one_batch()
    assert flip.encoded == before and set(flip.calls) == {("tuple", 1)}


def test_after_item_training_transform_changes_training_images_only(files, splits):
    tl = TfmdLists(files, [PILImage.create], splits=splits)
    plain = tl.dataloaders(bs=4, after_item=[Resize(28), ToTensor()], device="cpu", shuffle=False)
    mirrored = tl.dataloaders(bs=4, after_item=[Resize(28), ToTensor(), Mirror()], device="cpu", shuffle=False)
    (a,), (b,) = plain.train.one_batch(), mirrored.train.one_batch()
    assert not bool((a == b).all()) and bool((a.flip(-2) == b).all())  # NHWC: flipped along the width
    (a,), (b,) = plain.valid.one_batch(), mirrored.valid.one_batch()
    assert bool((a == b).all())


def test_fastai_constructor_keywords_are_taken():
    t = Transform(str.upper, split_idx=0)
    assert t.split_idx == 0 and t("a") == "a" and t.encode("a") == "A"
    assert Transform(str.upper, order=3).order == 3 and Transform(str.upper).order == 0
    r = RandTransform(p=0.5, split_idx=None)
    assert r.split_idx == 0  # None keeps the class's value, as fastai's ifnone
    assert RandTransform(p=0.5, order=3).order == 3 and RandTransform.order == 0

    class Everywhere(Bang):
        split_idx = None

    assert Everywhere(split_idx=1).split_idx == 1 and Everywhere().split_idx is None
    # kept by a copy (a DataBlock copies its item_tfms), also through a subclass passing them on as **kwargs
    assert (Transform(str.upper, split_idx=1, order=4).clone().split_idx,
            Transform(str.upper, split_idx=1, order=4).clone().order) == (1, 4)

    class Passing(RandTransform):
        def __init__(self, size: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.size = size

    c = Passing(size=2, p=0.25, order=7, split_idx=1).clone()
    assert (c.size, c.p, c.order, c.split_idx) == (2, 0.25, 7, 1)
    with pytest.raises(ParameterError, match="split_idx"):
        RandTransform(split_idx=2)
    with pytest.raises(ParameterError, match="order"):
        Transform(str.upper, order=1.5)


def _add_a(x: str) -> str:
    return x + "a"


def _upper(x: str) -> str:
    return x.upper()


def test_order_keyword_changes_the_order_of_the_steps(files, splits):
    assert Pipeline([_add_a, _upper]).encode("x") == "XA"
    assert Pipeline([Transform(_add_a, order=3), _upper]).encode("x") == "Xa"
    three = Transform(_add_a, order=3)
    tl = TfmdLists(files, [parent_label, three, RandTransform(order=-1), _upper], splits=splits)
    assert [t.order for t in tl.tfms] == [-1, 0, 0, 3] and tl.tfms[3] is three
    assert set(tl.valid[:]) == {"3a", "7a"}  # _upper (order 0) before _add_a (order 3)
    plain = TfmdLists(files, [parent_label, Transform(_add_a), _upper], splits=splits)
    assert set(plain.valid[:]) == {"3A", "7A"}


def test_pipeline_encode_takes_the_items_split():
    p = Pipeline([Transform(str.upper), Bang(), Transform(lambda x: x + "?", split_idx=1)])
    assert (p.encode("a", split_idx=0), p.encode("a", split_idx=1), p("a")) == ("A!", "A?", "A")


def test_image_item_tfms_call_before_call_on_every_split_as_the_other_pipelines(files):
    from pipekit.data import CategoryBlock, DataBlock
    from pipekit.vision import ImageBlock

    flip = Mirror()
    dls = _quiet(lambda: DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                                   splitter=GrandparentSplitter(), item_tfms=[flip]).dataloaders(
        files, bs=4, shuffle=False, device="cpu", seed=0, num_workers=0))
    block_flip = next(t for t in dls.recipe.blocks_[0].tfms_ if isinstance(t, Mirror))  # the block's copy
    plain = _quiet(lambda: DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                                     splitter=GrandparentSplitter()).dataloaders(
        files, bs=4, shuffle=False, device="cpu", seed=0, num_workers=0))
    block_flip.calls.clear()
    (a, _), (b, _) = dls.valid.one_batch(), plain.valid.one_batch()
    # drawn for each validation image (split 1), which a training transform then leaves as it is
    assert [s for _, s in block_flip.calls] == [1] * 4 and bool((a == b).all())
    block_flip.calls.clear()
    (a, _), (b, _) = dls.train.one_batch(), plain.train.one_batch()
    assert [s for _, s in block_flip.calls] == [0] * 4 and bool((a == b.flip(-1)).all())


class _Mirror(RandTransform):
    def encodes(self, x: PILImage):
        return np.ascontiguousarray(x[:, ::-1])


def test_after_item_draws_follow_the_seed_made_in_the_iterating_thread():
    """A RandTransform in after_item draws from Python's random as each item is made: the loader makes its batches
    in the thread iterating it (no prefetch threads), so set_seed repeats the draws and no thread reads another's
    ``do``."""
    import pipekit

    files = sorted(get_image_files(D.path("mnist_tiny")), key=os.fspath)
    files = [f for f in files if f.parent.parent.name in ("train", "valid")][::6]
    splits = GrandparentSplitter()(files)

    def run(num_workers):
        pipekit.set_seed(0)
        ds = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=splits)
        dls = ds.dataloaders(bs=16, after_item=[Resize(28), ToTensor(), _Mirror(p=0.5)], device="cpu", seed=0,
                             num_workers=num_workers)
        assert dls.train.dataset.draws_per_fetch
        return np.concatenate([b[0].numpy() for b in dls.train])

    first = run(None)
    assert np.array_equal(first, run(None)) and np.array_equal(first, run(2)) and np.array_equal(first, run(0))
