"""fastai's ``split_idx`` through the mid-level API, on mnist_tiny: a Transform subclass giving ``split_idx=``/``order=``
to ``super().__init__``, decoding as an item of the split it was encoded in (``tl.train``, ``tl.valid``, a mid-level
``Datasets``' subsets, ``Pipeline.decode``), each item encoded once per split in a ``TfmdLists``, and a DataBlock's
``seed=`` reaching the draws of a ``RandTransform`` on its labels."""
from __future__ import annotations

import os
import random
import warnings
from collections import Counter

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (Categorize, DataBlock, Datasets, GrandparentSplitter, Pipeline, RandTransform, TfmdLists,
                          Transform, TransformBlock, get_image_files, parent_label)
from pipekit.vision import ImageBlock

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def files() -> list:
    every = sorted(get_image_files(D.path("mnist_tiny")), key=os.fspath)
    return [f for f in every if f.parent.parent.name in ("train", "valid")][::8]


@pytest.fixture(scope="module")
def splits(files) -> list:
    return GrandparentSplitter()(files)


class Query(Transform):  # the validation items' labels only, given as fastai's subclasses give it
    def __init__(self):
        super().__init__(split_idx=1)

    def encodes(self, x: str):
        return x + "?"


class Early(Transform):  # placed before the label getter by its order
    def __init__(self):
        super().__init__(order=-1)

    def encodes(self, x: os.PathLike):
        return x.parent


class Tenfold(Transform):  # a training-only step with a decodes
    split_idx, order = 0, 10

    def encodes(self, x):
        return x * 10

    def decodes(self, x):
        return x // 10


def test_a_subclass_passes_split_idx_and_order_to_transform_init(files, splits):
    q, e = Query(), Early()
    assert (q.split_idx, q.order, e.order, e.split_idx) == (1, 0, -1, None)  # fastai 2.8.12: 1 0 -1 None
    tl = TfmdLists(files, [parent_label, Query()], splits=splits)
    # fastai 2.8.12: train ['3', '7'], valid ['3?', '7?'], whole ['3', '7']
    assert (sorted(set(tl.train)), sorted(set(tl.valid)), sorted(set(tl))) == (["3", "7"], ["3?", "7?"], ["3", "7"])
    tl = TfmdLists(files, [parent_label, Early()], splits=splits)
    assert type(tl.tfms[0]) is Early and sorted(set(tl.train)) == ["train"]  # fastai 2.8.12: ['train']
    # a DataBlock's item_tfms are copies: the split comes along, and so for a class with no __init__ of its own
    assert Query().clone().split_idx == 1
    assert (Tenfold(split_idx=1, order=3).clone().split_idx, Tenfold(split_idx=1, order=3).clone().order) == (1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock(cls="L"), TransformBlock), get_y=parent_label, splitter=GrandparentSplitter(),
                        item_tfms=[Query()]).dataloaders(files, bs=16, shuffle=False, device="cpu")
    assert {y for b in dls.train for y in b[1]} == {"3", "7"} and {y for b in dls.valid for y in b[1]} == {"3?", "7?"}
    with pytest.raises(ParameterError, match="split_idx"):
        Tenfold(split_idx=2)
    with pytest.raises(ParameterError, match="Transform.__init__: unknown argument"):
        Tenfold(splitidx=1)


def test_each_split_decodes_through_the_steps_that_ran_on_it(files, splits):
    names = [f.parent.name for f in files]
    tl = TfmdLists(files, [parent_label, Categorize(), Tenfold()], splits=splits)
    # fastai 2.8.12: train codes [0, 10], valid and whole codes [0, 1], every item decoded back to its label
    assert sorted(set(tl.train)) == [0, 10] and sorted(set(tl.valid)) == [0, 1] and sorted(set(tl)) == [0, 1]
    assert [tl.train.decode(v) for v in tl.train] == [names[i] for i in splits[0]]
    assert [tl.valid.decode(v) for v in tl.valid] == [names[i] for i in splits[1]]
    assert [tl.decode(v) for v in tl] == names
    ds = Datasets(files, [[lambda f: f.name], [parent_label, Categorize(), Tenfold()]], splits=splits)
    # fastai 2.8.12: ('9929.png', 1) -> ('9929.png', '7'), and ('7.png', 0) -> ('7.png', '3') in train and whole
    assert ds.valid[-1] == ("9929.png", 1) and ds.valid.decode(ds.valid[-1]) == ("9929.png", "7")
    assert ds.train.decode(ds.train[0]) == ("7.png", "3") and ds.decode(ds[0]) == ("7.png", "3")
    assert [ds.valid.decode(x)[1] for x in ds.valid] == [names[i] for i in splits[1]]
    p = Pipeline([Tenfold()])
    assert (p.decode(70, split_idx=0), p.decode(7, split_idx=1), p.decode(7)) == (7, 7, 7)


class Count(Transform):  # counts each label it encodes
    def __init__(self):
        self.seen: Counter = Counter()

    def encodes(self, x: str):
        self.seen[x] += 1
        return x


class Bang(RandTransform):
    def __init__(self, p: float = 1.0):
        super().__init__(p=p)
        self.splits: list = []

    def before_call(self, b, split_idx):
        self.splits.append(split_idx)
        super().before_call(b, split_idx)

    def encodes(self, x: str):
        return x + "!"


class Learns(Transform):  # records the values it is set up on
    order = 5

    def setups(self, items):
        self.fitted = list(items)


def test_tfmdlists_encodes_each_item_once_per_split(files, splits):
    n_train, n_valid = len(splits[0]), len(splits[1])
    labelled = TfmdLists(files, [parent_label], splits=splits)
    count, bang, learns = Count(), Bang(p=0.5), Learns()
    tl = TfmdLists(files, [parent_label, count, bang, learns], splits=splits)
    train, valid = tl.train[:], tl.valid[:]
    # each item through the steps before the random one once; each draws once for its split and once in the whole
    # list, which is of no split (as fastai's ``tls[i]``)
    assert sum(count.seen.values()) == len(files)
    assert Counter(bang.splits) == {None: len(files), 0: n_train, 1: n_valid}
    # the step after it is set up on the very draws tl.train gives
    assert learns.fitted == train and {v.endswith("!") for v in train} == {True, False}
    assert valid == labelled.valid[:] and tl[:] == labelled[:]
    # with no step depending on the split: once per item too
    count = Count()
    tl = TfmdLists(files, [parent_label, count, Categorize()], splits=splits)
    tl.train[:], tl.valid[:]
    assert sum(count.seen.values()) == len(files)


def _labels(files, seed, state) -> list:
    random.seed(state)
    np.random.seed(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock(cls="L"), TransformBlock), get_y=parent_label, splitter=GrandparentSplitter(),
                        item_tfms=[Bang(p=0.5)]).dataloaders(files, bs=16, shuffle=False, device="cpu", seed=seed)
    return [y for dl in (dls.train, dls.valid) for b in dl for y in b[1]]


def test_the_dataloaders_seed_draws_the_labels(files, splits):
    first = _labels(files, 7, state=1)
    train, valid = first[:len(splits[0])], first[len(splits[0]):]
    assert {v.endswith("!") for v in train} == {True, False} and not any(v.endswith("!") for v in valid)
    assert _labels(files, 7, state=2) == first  # the same seed, whatever the process drew before
    assert _labels(files, 8, state=1) != first  # another seed, other draws
    random.seed(3)
    after = random.random()
    random.seed(3)
    before = random.getstate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsets = DataBlock(blocks=(ImageBlock(cls="L"), TransformBlock), get_y=parent_label,
                          splitter=GrandparentSplitter(), item_tfms=[Bang(p=0.5)]).datasets(files, seed=7)
    assert random.getstate() == before and random.random() == after  # the process's draws are left alone
    labels = dsets.stores[1].values.to_list()  # datasets(seed=) draws them as dataloaders(seed=) does
    assert [labels[i] for i in splits[0]] + [labels[i] for i in splits[1]] == first
