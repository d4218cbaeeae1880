"""Decoding as items of a split, as fastai 2.8.12 decodes them, on mnist_tiny: a DataBlock's loaders and a mid-level
``Datasets``' or ``TfmdLists``' loaders undo a transform with a ``split_idx`` on the batches of its split only
(``dls.train.decode_batch(b)``, ``dls.valid.decode_batch(b)``, ``test_dl``); a fastai-style ``encodes`` typed for
nothing runs on each item of a ``TfmdLists``; and images made as they are fetched draw under the one lock that every
seeded run of items takes (``item_draws``)."""
from __future__ import annotations

import os
import random
import threading
import warnings

import numpy as np
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import (Categorize, CategoryBlock, DataBlock, Datasets, GrandparentSplitter, TfmdLists, Transform,
                          TransformBlock, get_image_files, parent_label)
from pipekit.data.store import item_draws
from pipekit.vision import ImageBlock, IntToFloatTensor, PILImage, ToTensor
from pipekit.vision.cache import LiveImageStore

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def files() -> list:
    every = get_image_files(D.path("mnist_tiny"))
    # ordered by file name, so a batch holds both digits (fastai's repro takes the same 176 files)
    return sorted([f for f in every if f.parent.parent.name in ("train", "valid")],
                  key=lambda f: (f.name, os.fspath(f)))[::8]


@pytest.fixture(scope="module")
def splits(files) -> tuple:
    return GrandparentSplitter()(files)


SWAP = {"3": "7", "7": "3"}


class Swap(Transform):  # the training items' labels swapped, and swapped back (marked) when decoded
    split_idx = 0

    def encodes(self, x: str):
        return SWAP[x]

    def decodes(self, x: str):
        return SWAP[x] + "?"


class SwapValid(Swap):  # the same on validation and new items only
    split_idx = 1


def _labels(rows) -> list:
    return [r[1] for r in rows]


def _datablock(files, swap):
    return DataBlock(blocks=(ImageBlock(cls="L"), TransformBlock(type_tfms=[swap, Categorize()])), get_y=parent_label,
                     splitter=GrandparentSplitter()).dataloaders(files, bs=8, shuffle=False, device="cpu")


def test_a_datablock_loader_decodes_its_batches_as_items_of_its_split(files):
    dls = _datablock(files, Swap())
    bt, bv = dls.train.one_batch(), dls.valid.one_batch()
    # fastai 2.8.12: train codes [1, 1, 0, 0, 1, 0, 1, 0] (labels 3 3 7 7 3 7 3 7 swapped), valid [1, 1, 0, 1, 0, 1, 0, 0]
    assert bt[1].tolist() == [1, 1, 0, 0, 1, 0, 1, 0] and bv[1].tolist() == [1, 1, 0, 1, 0, 1, 0, 0]
    # fastai 2.8.12: dls.train.decode_batch(b) undoes the swap; dls.valid's has none to undo
    assert _labels(dls.train.decode_batch(bt)) == ["3?", "3?", "7?", "7?", "3?", "7?", "3?", "7?"]
    assert _labels(dls.valid.decode_batch(bv)) == ["7", "7", "3", "7", "3", "7", "3", "3"]
    assert _labels(dls.decode_batch(bt)) == _labels(dls.train.decode_batch(bt))  # the training loader's, as fastai's
    assert torch.equal(dls.train.decode(bt)[1], bt[1])  # a batch decoded as a batch: the codes, as fastai's
    # a copy of the training loader (get_preds(ds_idx=0) reads it in order) still holds training items
    assert _labels(dls.train.new(shuffle=False).decode_batch(bt))[:2] == ["3?", "3?"]
    # fastai 2.8.12: train_ds / valid_ds items decoded ['3?', '3?', '7?'] and ['7', '7', '3']
    assert [dls.train_ds.decode(dls.train_ds[i])[1] for i in range(3)] == ["3?", "3?", "7?"]
    assert [dls.valid_ds.decode(dls.valid_ds[i])[1] for i in range(3)] == ["7", "7", "3"]
    tdl = dls.test_dl(files[:3], with_labels=True)
    b = tdl.one_batch()
    # fastai 2.8.12: new items are of the validation split: codes [1, 1, 0], decoded ['7', '7', '3']
    assert b[1].tolist() == [1, 1, 0] and _labels(tdl.decode_batch(b)) == ["7", "7", "3"]


def test_a_block_decodes_a_value_of_no_loader_as_a_new_items(files):
    dls = _datablock(files, SwapValid())
    bt, bv = dls.train.one_batch(), dls.valid.one_batch()
    # fastai 2.8.12: train [0, 0, 1, 1, 0, 1, 0, 1] -> 3 3 7 7 ..., valid [0, 0, 1, 0, 1, 0, 1, 1] -> 7? 7? 3? 7? ...
    assert bt[1].tolist() == [0, 0, 1, 1, 0, 1, 0, 1] and bv[1].tolist() == [0, 0, 1, 0, 1, 0, 1, 1]
    assert _labels(dls.train.decode_batch(bt)) == ["3", "3", "7", "7", "3", "7", "3", "7"]
    assert _labels(dls.valid.decode_batch(bv)) == ["7?", "7?", "3?", "7?", "3?", "7?", "3?", "3?"]
    tdl = dls.test_dl(files[:3], with_labels=True)
    b = tdl.one_batch()
    assert b[1].tolist() == [0, 0, 1] and _labels(tdl.decode_batch(b)) == ["7?", "7?", "3?"]  # fastai 2.8.12
    # what learn.predict decodes a prediction with: the block, as a new item's (split 1), as test_dl decodes it
    y = dls.y_block
    assert [y.decode(torch.tensor(c)) for c in (0, 1)] == ["7?", "3?"]
    assert y.decode_batch(torch.tensor([0, 1]), split_idx=0) == ["3", "7"]


class Blocking(Transform):  # an image transform that can be held inside, while another thread draws
    inside, go = threading.Event(), threading.Event()
    armed = False

    def encodes(self, x: PILImage):
        if Blocking.armed:
            Blocking.inside.set()
            Blocking.go.wait(10)
        return x


def test_images_made_as_fetched_draw_under_the_lock_of_every_seeded_run_of_items(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label, splitter=GrandparentSplitter(),
                        item_tfms=[Blocking()]).dataloaders(files[:16], bs=4, shuffle=False, device="cpu")
    store = dls.train_ds.stores[0]
    assert isinstance(store, LiveImageStore)
    with item_draws((7,)) as seed:
        seed(3)
        want = random.random()
    Blocking.inside.clear()
    Blocking.go.clear()
    Blocking.armed = True
    thread = threading.Thread(target=store.gather, args=(np.array([0]),))
    try:
        with item_draws((7,)) as seed:  # a seeded run of items (a DataBlock's labels drawn with a seed)
            seed(3)
            thread.start()
            # an image being made reseeds the process's generators for itself: it waits for this run to end
            entered = Blocking.inside.wait(0.5)
            got = random.random()
    finally:
        Blocking.go.set()
        thread.join(10)
        Blocking.armed = False
    assert not entered and got == want and Blocking.inside.is_set()


def test_a_mid_level_loader_decodes_its_items_through_their_transforms(files, splits, tmp_path):
    dsets = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=splits)
    dls = dsets.dataloaders(bs=8, shuffle=False, device="cpu")
    b = dls.valid.one_batch()
    rows = dls.valid.decode_batch(b)
    # fastai 2.8.12: 8 items (TensorImage, Category), the labels ['7', '7', '3', '7', '3', '7', '3', '3'], the image the
    # file's pixels
    assert len(rows) == 8 and _labels(rows) == ["7", "7", "3", "7", "3", "7", "3", "3"]
    assert np.array_equal(np.asarray(rows[0][0]), np.asarray(PILImage.create(files[splits[1][0]])))
    assert torch.equal(dls.decode(b)[1], b[1])  # the batch transforms undone (none here): the codes, as fastai's
    # chapter 11's after_item and after_batch: the items back through after_item too, shown with their labels
    dls = dsets.dataloaders(bs=8, shuffle=False, device="cpu", after_item=[ToTensor], after_batch=[IntToFloatTensor])
    assert _labels(dls.valid.decode_batch(dls.valid.one_batch())) == _labels(rows)
    assert os.path.exists(dls.valid.show_batch(max_n=4, path=tmp_path / "batch.png"))
    swapped = Datasets(files, [[PILImage.create], [parent_label, Swap(), Categorize()]], splits=splits)
    sdls = swapped.dataloaders(bs=8, shuffle=False, device="cpu")
    # fastai 2.8.12: the training batch's swapped labels come back marked, the validation batch's as they are
    assert _labels(sdls.train.decode_batch(sdls.train.one_batch())) == ["3?", "3?", "7?", "7?", "3?", "7?", "3?", "7?"]
    assert _labels(sdls.valid.decode_batch(sdls.valid.one_batch())) == ["7", "7", "3", "7", "3", "7", "3", "3"]
    tdl = sdls.test_dl(files[:3], with_labels=True)
    tb = tdl.one_batch()
    assert tb[1].tolist() == [1, 1, 0] and _labels(tdl.decode_batch(tb)) == ["7", "7", "3"]  # fastai 2.8.12
    tls = TfmdLists(files, [parent_label, Swap(), Categorize()], splits=splits)
    tdls = tls.dataloaders(bs=8, shuffle=False, device="cpu")
    # fastai 2.8.12: ['3?', '3?', '7?', '7?', ...] and ['7', '7', '3', '7', ...], one value per item
    assert [r for (r,) in tdls.train.decode_batch(tdls.train.one_batch())] == ["3?", "3?", "7?", "7?", "3?", "7?",
                                                                                "3?", "7?"]
    assert [r for (r,) in tdls.valid.decode_batch(tdls.valid.one_batch())] == ["7", "7", "3", "7", "3", "7", "3", "3"]


class Times10(Transform):
    def encodes(self, x):
        return x * 10


class Name(Transform):
    def encodes(self, x):
        return str(x).rsplit("/", 1)[-1]


def test_an_untyped_encodes_runs_on_each_item_of_a_tfmdlists(files):
    tl = TfmdLists([-1, -2, 3], [Times10()])
    assert tl[0] == -10 and list(tl) == [-10, -20, 30] and len(tl) == 3  # fastai 2.8.12
    # fastai 2.8.12: [(-10, 0), (-20, -1), (30, 4)]
    assert list(Datasets([-1, -2, 3], [[Times10()], [lambda x: x + 1]])) == [(-10, 0), (-20, -1), (30, 4)]
    # fastai 2.8.12: ['0.png', '702.png', '7030.png', '7046.png'] (str of the whole list would be one text)
    assert list(TfmdLists(files[:4], [Name()])) == ["0.png", "702.png", "7030.png", "7046.png"]
    assert list(Datasets(files[:4], [[Name()], [parent_label]])) == [("0.png", "7"), ("702.png", "7"),
                                                                       ("7030.png", "3"), ("7046.png", "3")]
    # pipekit's own transforms still see the whole column
    assert TfmdLists(["b", "a", "b"], [Categorize()]).vocab == ["a", "b"]
