"""fastai's ``RandTransform`` (``p``, ``do``, ``before_call``) and ``split_idx`` in a DataBlock's label blocks: an item
transform reaching the labels runs on the training rows as items of split 0 and on the validation rows and new items
(``test_dl``) as items of split 1, ``before_call`` once per item with that split, never when drawn with ``p=0``; on
mnist_tiny and adult_sample."""
from __future__ import annotations

import os
import warnings

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import PipelineStepError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, GrandparentSplitter, RandomSplitter, RandTransform,
                          RegressionBlock, TransformBlock, get_image_files, parent_label, set_seed)
from pipekit.data.transform import Transform
from pipekit.vision import ImageBlock

pytestmark = pytest.mark.data


def _every_8th(p):
    return sorted(get_image_files(p), key=os.fspath)[::8]


def _mnist(item_tfms=(), y=CategoryBlock, get_y=parent_label):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls="L"), y), get_items=_every_8th, get_y=get_y,
                         splitter=GrandparentSplitter(), item_tfms=list(item_tfms)).dataloaders(
            D.path("mnist_tiny"), bs=16, shuffle=False, device="cpu")


def _ys(dl) -> list:
    """The labels of a loader's items, in order: codes (a CategoryBlock) or the values themselves (a TransformBlock)."""
    out: list = []
    for b in dl:
        out += b[1].tolist() if isinstance(b[1], torch.Tensor) else list(b[1])
    return out


def _valid_files() -> list:  # three 3s and three 7s
    files = _every_8th(D.path("mnist_tiny") / "valid")
    return files[:3] + files[-3:]


class Bang(RandTransform):  # fastai's RandTransform (split_idx = 0), typed for the labels
    def encodes(self, x: str):
        return x + "!"


class Swap(Transform):  # a transform of the validation and new items only: '3' and '7' change places
    split_idx = 1

    def encodes(self, x: str):
        return {"3": "7", "7": "3"}.get(x, x)


def _swap(x):  # the same, typed for nothing (run value by value), given as Transform(f, split_idx=1)
    return {"3": "7", "7": "3"}.get(x, x) if isinstance(x, str) else x


def test_a_rand_transform_drawn_with_p_0_never_runs_on_the_labels():
    plain = _mnist()
    never = _mnist([Bang(p=0.0)])
    # fastai 2.8.12 gives ['3', '7'] here, whatever p
    assert list(never.vocab) == ["3", "7"]
    assert _ys(never.train) == _ys(plain.train) and _ys(never.valid) == _ys(plain.valid)
    files = _valid_files()
    assert _ys(never.test_dl(files, with_labels=True)) == _ys(plain.test_dl(files, with_labels=True))
    # labels kept as text: p=0 leaves every one alone too
    text = _mnist([Bang(p=0.0)], y=TransformBlock)
    assert set(_ys(text.train)) | set(_ys(text.valid)) == {"3", "7"}


def test_a_transform_of_split_1_runs_on_the_validation_labels_and_new_items_only():
    plain = _mnist()
    files = _valid_files()
    want_new = [1 - c for c in _ys(plain.test_dl(files, with_labels=True))]
    assert sorted(set(want_new)) == [0, 1]
    for tfm in (Swap(), Transform(_swap, split_idx=1)):
        dls = _mnist([tfm])
        assert list(dls.vocab) == ["3", "7"], tfm  # learned from the training labels, which it leaves alone
        assert _ys(dls.train) == _ys(plain.train), tfm
        assert _ys(dls.valid) == [1 - c for c in _ys(plain.valid)], tfm  # each validation label swapped
        assert _ys(dls.test_dl(files, with_labels=True)) == want_new, tfm
    # a RandTransform (split_idx 0) the other way round: the training labels only, as fastai's on text labels
    text = _mnist([Bang()], y=TransformBlock)
    assert set(_ys(text.train)) == {"3!", "7!"} and set(_ys(text.valid)) == {"3", "7"}
    assert [str(v) for v in _ys(text.test_dl(files, with_labels=True))] == [f.parent.name for f in files]


SEEN: list = []


class SplitOf(RandTransform):  # records the split each label's before_call is given
    split_idx = None

    def before_call(self, b, split_idx):
        super().before_call(b, split_idx)
        SEEN.append((b, split_idx))

    def encodes(self, x: str):
        return x


def test_before_call_gets_split_0_for_each_training_row_and_1_for_each_validation_row():
    SEEN.clear()
    dls = _mnist([SplitOf()], y=TransformBlock, get_y=os.fspath)  # a label per file: its path
    train, valid = {os.fspath(f) for f in dls.train.items}, {os.fspath(f) for f in dls.valid.items}
    assert len(SEEN) == len(train) + len(valid)  # once per item: one draw each
    assert {b for b, s in SEEN if s == 0} == train and {b for b, s in SEEN if s == 1} == valid
    SEEN.clear()
    files = _valid_files()
    dls.test_dl(files, with_labels=True)
    assert SEEN == [(os.fspath(f), 1) for f in files]


def test_a_split_0_transform_making_validation_labels_outside_the_vocab_is_refused_naming_it():
    with pytest.raises(PipelineStepError, match=r"item transform\(s\) Bang changed this block's values on some items "
                                                r"only.*split_idx=None, p=1.*not in the training labels.*valid/[37]/"):
        _mnist([Bang()])


def _adult_labels(seed: int) -> tuple[list, np.ndarray]:
    df = pl.read_csv(D.path("adult_sample") / "adult.csv")
    db = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                   splitter=RandomSplitter(seed=0), item_tfms=[Bang(p=0.5)])
    set_seed(seed)
    ds = db.datasets(df)
    codes = ds.stores[1].data.numpy() if isinstance(ds.stores[1].data, torch.Tensor) else ds.stores[1].data
    return [ds.vocab[int(c)] for c in codes], ds.splits[0]


def test_the_same_seed_draws_the_same_labels_on_adult_sample():
    labels, train = _adult_labels(0)
    assert len(labels) == 32561
    in_train = np.zeros(len(labels), bool)
    in_train[train] = True
    banged = np.array([v.endswith("!") for v in labels])
    assert not banged[~in_train].any()  # validation labels: never
    assert 0.45 < banged[in_train].mean() < 0.55  # training labels: each drawn with p=0.5
    again, _ = _adult_labels(0)
    other, _ = _adult_labels(1)
    assert again == labels and other != labels
