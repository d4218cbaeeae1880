"""set_seed restarts the loaders already built at their first epoch: set_seed(n), a new learner and a fit, twice
on one ``dls``, train on the same batches (and augmentation) and give the same losses, as chapter 8's re-run cells do."""
from __future__ import annotations

import copy
import gc
import pickle
import warnings
import weakref

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, DataLoader, GrandparentSplitter, RandomSplitter, get_image_files, \
    parent_label
from pipekit.data.seed import seeded, set_seed
from pipekit.learn import Learner, simple_cnn
from pipekit.tabular import CollabDataLoaders, Tabular, collab_learner, tabular_learner
from pipekit.vision import ImageBlock, aug_transforms

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _order(dl) -> list[list[int]]:
    return [b.tolist() for b in dl]


def _two_fits(make_learner) -> list[list[float]]:
    """The recorded training losses and the validation loss of two learners, each made and fitted after
    set_seed(0)."""
    out = []
    for _ in range(2):
        set_seed(0)
        learn = make_learner()
        learn.fit_one_cycle(1, 5e-3, wd=0.1)
        out.append([float(v) for v in learn.recorder.losses] + [float(learn.validate()[0])])
    return out


def test_collab_two_learners_after_set_seed_fit_alike():
    ratings = pl.read_csv(D.path("movie_lens_sample") / "ratings.csv")
    for seed in (3, None):  # a loader's own seed, or one drawn from NumPy's generator as it is built
        dls = CollabDataLoaders.from_df(ratings, bs=64, seed=seed)
        first, second = _two_fits(lambda dls=dls: collab_learner(dls, n_factors=50, y_range=(0, 5.5)))
        assert first == second
        assert dls.train.epoch == 1  # each fit read one epoch, the second from epoch 0 again


def test_tabular_two_learners_after_set_seed_fit_alike():
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)
    tab = Tabular(adult, cat_names=["workclass", "education", "marital-status", "occupation"],
                  cont_names=["age", "fnlwgt", "education-num"], y_names="salary", splits=RandomSplitter(0.2, seed=1))
    dls = tab.dataloaders(bs=64)
    first, second = _two_fits(lambda: tabular_learner(dls, layers=[20, 10]))
    assert first == second


def test_vision_two_learners_after_set_seed_see_the_same_augmentation():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::8],
                       splitter=GrandparentSplitter(), get_y=parent_label, batch_tfms=aug_transforms())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=16, seed=0, device="cpu")
    # the augmented batches of epoch 0, of epoch 1, then epoch 0's again after set_seed
    x0 = dls.train.one_batch()[0].clone()
    list(dls.train)
    x1 = dls.train.one_batch()[0].clone()
    set_seed(1)
    assert not torch.equal(x0, x1) and torch.equal(dls.train.one_batch()[0], x0)
    first, second = _two_fits(lambda: Learner(dls, simple_cnn(n_in=1, n_out=2)))
    assert first == second


def test_without_set_seed_each_epoch_reads_other_batches():
    set_seed(0)
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(dl) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != epochs[2] and dl.epoch == 3
    set_seed(0)
    assert dl.epoch == 0 and _order(dl) == epochs[0] and _order(dl) == epochs[1]


def test_copies_are_restarted_too():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    made = {"new": dl.new(bs=4), "weighted": dl.weighted(np.arange(1, 41)), "partial": dl.partial(16),
            "shard": dl.shard(0, 2), "copy": copy.copy(dl), "deepcopy": copy.deepcopy(dl),
            "pickle": pickle.loads(pickle.dumps(dl))}
    firsts = {name: _order(c) for name, c in made.items()}
    for c in made.values():
        _order(c)
    set_seed(0)
    assert {name: c.epoch for name, c in made.items()} == dict.fromkeys(made, 0)
    assert {name: _order(c) for name, c in made.items()} == firsts


def test_set_seed_mid_epoch_finishes_the_epoch_then_restarts():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(dl) for _ in range(3)]
    dl.epoch = 1
    it = iter(dl)
    got = [next(it).tolist()]
    set_seed(0)  # the epoch under way is epoch 1's to its end
    got += [b.tolist() for b in it]
    assert got == epochs[1] and _order(dl) == epochs[0]


def test_seeded_block_leaves_the_loaders_where_they_were():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(dl) for _ in range(2)]
    with seeded(7):  # a model seeding its own training (TorchTabular) inside a user's run
        pass
    assert dl.epoch == 2
    set_seed(0)
    assert _order(dl) == epochs[0]


def test_loaders_are_not_kept_alive():
    ref = weakref.ref(DataLoader(list(range(10)), bs=4, shuffle=True, seed=0))
    gc.collect()
    assert ref() is None
    set_seed(0)
