"""set_seed starts the loaders already built afresh: their next pass is epoch 0, with their own seed when the value
is the one in force as they were built, else on a stream made of their own seed and the value given, so
set_seed(0), a new learner and a fit, twice on one ``dls``, train on the same batches (and augmentation) and give
the same losses, as chapter 8's re-run cells do, while another seed gives other batches."""
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
from torch import nn

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, DataLoader, DataLoaders, GrandparentSplitter, RandomSplitter, \
    get_image_files, parent_label
from pipekit.data.seed import reseed_generation, seeded, set_seed
from pipekit.learn import Callback, Learner, simple_cnn
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
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=16, device="cpu")  # its seed drawn from NumPy's
    list(dls.train)
    # the augmented first batch after set_seed(1), again after another set_seed(1), and after set_seed(2)
    set_seed(1)
    x1 = dls.train.one_batch()[0].clone()
    list(dls.train)
    set_seed(1)
    assert torch.equal(dls.train.one_batch()[0], x1)
    set_seed(2)
    assert not torch.equal(dls.train.one_batch()[0], x1)
    first, second = _two_fits(lambda: Learner(dls, simple_cnn(n_in=1, n_out=2)))
    assert first == second


def test_another_seed_gives_other_first_epoch_batches():
    set_seed(0)
    dl = DataLoader(list(range(40)), bs=8, shuffle=True)  # its seed drawn from NumPy's generator
    orders = {}
    for s in (0, 1, 2):  # a sweep over seeds on one loader
        set_seed(s)
        orders[s] = _order(dl)
        assert dl.epoch == 1
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    set_seed(1)
    assert _order(dl) == orders[1]
    assert all(sorted(sum(o, [])) == list(range(40)) for o in orders.values())
    # a loader given seed= keeps the batches that seed gives, whatever set_seed restarts it with
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    first = _order(dl)
    _order(dl)
    for s in (0, 1, 2):
        set_seed(s)
        assert _order(dl) == first


def test_loaders_built_together_from_a_drawn_seed_follow_set_seed_together():
    set_seed(3)
    items = [(torch.tensor([float(i)]), torch.tensor(i)) for i in range(40)]
    dls = DataLoaders.from_dsets(items, items[:8], bs=8)  # no seed: one drawn for both

    def order():
        return [b[1].tolist() for b in dls.train]
    first = order()
    set_seed(3)
    assert order() == first
    set_seed(4)
    assert order() != first


def test_set_seed_each_epoch_in_a_callback():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = torch.arange(64).float()[:, None]  # each item's own number, to see the order
    dls = DataLoaders(DataLoader(list(zip(x, y)), bs=8, shuffle=True),
                      DataLoader(list(zip(x[:8], y[:8])), bs=8), device="cpu")

    class Reseed(Callback):
        def __init__(self, same: bool):
            self.same = same

        def before_epoch(self):
            set_seed(42 if self.same else self.learn.epoch)

    class FirstBatches(Callback):
        def before_fit(self):
            self.seen = []

        def before_batch(self):
            if self.learn.training and self.learn.iter == 0:
                self.seen.append(self.learn.yb[0][:, 0].int().tolist())

    for same in (False, True):
        spy = FirstBatches()
        Learner(dls, nn.Linear(3, 1), loss_func=nn.MSELoss(), cbs=[Reseed(same), spy]).fit(3, 1e-3)
        distinct = {tuple(b) for b in spy.seen}
        assert len(distinct) == (1 if same else 3)  # the same value every epoch repeats the same epoch


def test_without_set_seed_each_epoch_reads_other_batches():
    set_seed(0)
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(dl) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != epochs[2] and dl.epoch == 3
    set_seed(0)
    assert dl.epoch == 0
    after = [_order(dl) for _ in range(2)]
    assert after[0] != after[1] and dl.epoch == 2
    set_seed(0)
    assert [_order(dl) for _ in range(2)] == after


def test_a_loader_never_reseeded_reads_as_its_seed_says():
    set_seed(7)
    dl = DataLoader(list(range(12)), bs=4, shuffle=True)
    with seeded(3):  # a model seeding its own training leaves the loaders' stream alone
        pass
    assert dl.seed == 327741615
    assert [_order(dl) for _ in range(2)] == [[[11, 4, 8, 2], [0, 7, 3, 1], [9, 10, 6, 5]],
                                              [[10, 9, 6, 3], [1, 0, 8, 11], [5, 4, 2, 7]]]
    own = DataLoader(list(range(12)), bs=4, shuffle=True, seed=3)
    assert [sum(_order(own), []) for _ in range(2)] == \
        [np.random.default_rng([3, e]).permutation(12).tolist() for e in range(2)]


def test_copies_carry_the_restart():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    made = {"new": dl.new(bs=4), "weighted": dl.weighted(np.arange(1, 41)), "partial": dl.partial(16),
            "shard": dl.shard(0, 2), "copy": copy.copy(dl), "deepcopy": copy.deepcopy(dl),
            "pickle": pickle.loads(pickle.dumps(dl))}
    for c in made.values():
        _order(c)
    set_seed(0)
    assert {name: c.epoch for name, c in made.items()} == dict.fromkeys(made, 0)
    firsts = {name: _order(c) for name, c in made.items()}
    for c in made.values():
        _order(c)
    set_seed(0)
    assert {name: _order(c) for name, c in made.items()} == firsts
    # a copy draws the stream of the loader it was made from
    assert firsts["copy"] == firsts["deepcopy"] == firsts["pickle"] == _order(dl)


def test_a_seed_or_epoch_set_after_set_seed_is_kept():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    twin = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(twin) for _ in range(3)]
    _order(dl)
    set_seed(0)
    dl.seed, dl.epoch = 5, 2  # as a checkpoint is loaded (learn.load): its loaders' counters win
    assert _order(dl) == epochs[2]
    fresh = dl.new(seed=5)
    assert fresh.epoch == 0 and _order(fresh) == epochs[0]


class SlotDL(DataLoader):
    __slots__ = ("tag",)


def test_subclass_with_slots_copies_and_pickles():
    dl = SlotDL(list(range(12)), bs=4, shuffle=True, seed=3)
    dl.tag = "x"
    for c in (copy.copy(dl), copy.deepcopy(dl), dl.new(bs=2), pickle.loads(pickle.dumps(dl))):
        assert type(c) is SlotDL and c.tag == "x"
        assert sorted(sum(_order(c), [])) == list(range(12))


def test_set_seed_mid_epoch_finishes_the_epoch_then_restarts():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    twin = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(dl) for _ in range(3)]
    dl.epoch = 1
    it = iter(dl)
    got = [next(it).tolist()]
    set_seed(0)  # the epoch under way is epoch 1's to its end
    got += [b.tolist() for b in it]
    assert got == epochs[1] and _order(dl) == _order(twin) == epochs[0]  # then epoch 0 of its own seed again


def test_seeded_block_leaves_the_loaders_where_they_were():
    dl = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    twin = DataLoader(list(range(40)), bs=8, shuffle=True, seed=5)
    epochs = [_order(twin) for _ in range(3)]
    _order(dl), _order(dl)
    before = reseed_generation()
    with seeded(7):  # a model seeding its own training (TorchTabular) inside a user's run
        pass
    assert reseed_generation() == before and dl.epoch == 2 and _order(dl) == epochs[2]


def test_loaders_are_not_kept_alive():
    ref = weakref.ref(DataLoader(list(range(10)), bs=4, shuffle=True, seed=0))
    gc.collect()
    assert ref() is None
    set_seed(0)


def test_the_books_order_set_seed_loaders_fit_then_set_seed_again_repeats_the_first_run():
    # set_seed(42); dls; fit; then the learner's cell again, set_seed(42) first: the same batches as the first fit
    set_seed(42)
    dl = DataLoader(list(range(12)), bs=4, shuffle=True)
    first = _order(dl)
    _order(dl)
    set_seed(42)
    assert _order(dl) == first and dl.epoch == 1
    set_seed(7)
    other = _order(dl)
    assert other != first
    set_seed(42)
    assert _order(dl) == first
    set_seed(7)
    assert _order(dl) == other


def test_a_loader_pickled_in_another_process_reads_as_its_seed_says_until_the_next_set_seed():
    set_seed(3)
    dl = DataLoader(list(range(12)), bs=4, shuffle=True, seed=5)
    epochs = [_order(dl) for _ in range(3)]
    fresh = DataLoader(list(range(12)), bs=4, shuffle=True, seed=5)
    fresh_orders = [_order(fresh) for _ in range(4)]
    dl = DataLoader(list(range(12)), bs=4, shuffle=True, seed=5)
    _order(dl), _order(dl)
    state = pickle.loads(pickle.dumps(dl))
    mark, *rest = state.__dict__["_reseeded"]
    state.__dict__["_reseeded"] = ("another process", 10**6, *rest[1:])  # its count means nothing here
    assert state.epoch == 2 and _order(state) == fresh_orders[2] == epochs[2]
    set_seed(3)  # the value in force when it was read: its own seed again, from epoch 0
    assert state.epoch == 0 and _order(state) == fresh_orders[0]


def test_a_drawn_loader_unpickled_in_another_process_still_follows_set_seed():
    set_seed(3)
    dl = DataLoader(list(range(40)), bs=8, shuffle=True)  # its seed drawn from NumPy's generator
    back = pickle.loads(pickle.dumps(dl))
    mark, *rest = back.__dict__["_reseeded"]
    back.__dict__["_reseeded"] = ("another process", *rest)
    set_seed(1)
    one = _order(back)
    set_seed(2)
    assert _order(back) != one
    # a seed put back (learn.load restoring a checkpoint's) keeps the loader following set_seed
    back.seed = 12345
    set_seed(8)
    eight = _order(back)
    set_seed(9)
    assert _order(back) != eight
