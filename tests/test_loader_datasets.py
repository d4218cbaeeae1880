"""Datasets a loader reads, as fastai 2.8.12 reads them: a map-style dataset read batch by batch (its random
augmentation drawn anew each epoch), datasets indexed by slices and lists of positions, ``test_dl`` keeping every
new item whatever the loaders drop, dict items refused naming the fix, and ``from_dsets`` with no validation items."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import DataLoader, DataLoaders
from pipekit.learn import Learner

pytestmark = pytest.mark.data


def _threes(n: int = 8) -> list:
    return sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:n]


class FlipNoise(torch.utils.data.Dataset):
    """mnist_tiny digits as floats, flipped at random and with random noise: an augmentation in ``__getitem__``."""

    def __init__(self, files: list):
        self.files, self.calls = files, 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple:
        self.calls += 1
        x = torch.from_numpy(np.array(Image.open(self.files[i]), dtype=np.float32)) / 255
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x + 0.1 * torch.randn_like(x), i


def _two_epochs(seed: int) -> tuple[torch.Tensor, torch.Tensor, FlipNoise]:
    ds = FlipNoise(_threes())
    torch.manual_seed(seed)
    dl = DataLoader(ds, bs=3, device="cpu")
    e1, e2 = (torch.cat([x for x, _ in dl]) for _ in range(2))
    return e1, e2, ds


# ------------------------------------------------------------------ a map-style dataset, read batch by batch
def test_a_map_dataset_is_read_every_epoch_so_its_augmentation_is_drawn_anew():
    e1, e2, ds = _two_epochs(0)
    assert e1.shape == (8, 28, 28)
    assert not torch.equal(e1, e2)  # a new draw each epoch, as fastai's loader
    assert ds.calls == 1 + 2 * 8  # item 0 once as the loader is built, then every item each epoch
    # the digits under the noise are the files' (flipped or not)
    clean = torch.from_numpy(np.array(Image.open(ds.files[0]), dtype=np.float32)) / 255
    assert min(float((e1[0] - c).abs().mean()) for c in (clean, clean.flip(-1))) < 0.1


def test_a_map_datasets_draws_repeat_under_torch_manual_seed_and_building_draws_none():
    a1, a2, _ = _two_epochs(0)
    b1, b2, _ = _two_epochs(0)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    # building the loader reads item 0 but gives the generators back: the first epoch draws what it would alone
    ds = FlipNoise(_threes())
    torch.manual_seed(0)
    alone = torch.cat([ds[i][0] for i in range(8)])
    torch.manual_seed(0)
    dl = DataLoader(ds, bs=8, device="cpu")
    assert torch.equal(next(iter(dl))[0].reshape(-1, 28), alone)
    assert dl.num_workers == 0  # read in the iterating thread, in order
    # nor does what a Learner reads of the loaders (n_inp, the first item's parts), on them or on a subset
    subset = lambda d: DataLoader(d.dataset.subset(np.arange(8)), bs=8, device="cpu")  # noqa: E731
    for make, reads in ((lambda d: d, 1 + 8), (subset, 2 + 8)):  # a subset reads its own item 0 (draws given back)
        ds, model = FlipNoise(_threes()), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))
        valid = DataLoader(FlipNoise(_threes(4)), bs=4, device="cpu")
        torch.manual_seed(0)
        dl = make(DataLoader(ds, bs=8, device="cpu"))
        Learner(DataLoaders(dl, valid), model, loss_func=torch.nn.CrossEntropyLoss())
        assert (dl.n_inp, dl.dataset.n_inp, valid.n_inp) == (1, 1, 1)
        assert torch.equal(next(iter(dl))[0].reshape(-1, 28), alone)
        assert ds.calls == reads  # item 0 as the loader was built (Learner reading none), then the epoch's items


def test_a_map_dataset_keeps_shuffling_seeds_workers_and_its_batches_shape():
    x, y = torch.arange(40.0).reshape(20, 2), torch.arange(20)
    ds = torch.utils.data.TensorDataset(x, y)
    order = [torch.cat([b[1] for b in DataLoader(ds, bs=6, shuffle=True, seed=s)]).tolist() for s in (3, 3, 4)]
    assert order[0] == order[1] != order[2] and sorted(order[0]) == list(range(20))
    threaded = DataLoader(ds, bs=6, shuffle=True, seed=3, num_workers=2)
    assert threaded.num_workers == 2 and torch.cat([b[1] for b in threaded]).tolist() == order[0]

    class Pixels(torch.utils.data.Dataset):  # uint8 (C, H, W) images and list items, as torch's loader stacks them
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> list:
            img = torch.from_numpy(np.array(Image.open(_threes()[i])))[None]
            return [img, i % 2]

    xb, yb = DataLoader(Pixels(), bs=4, device="cpu").one_batch()
    assert (tuple(xb.shape), xb.dtype, yb.tolist()) == ((4, 1, 28, 28), torch.uint8, [0, 1, 0, 1])


def test_a_map_dataset_item_that_cannot_be_batched_is_named():
    class Bad(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> tuple:
            return (object() if i == 0 else torch.zeros(2)), 0

    with pytest.raises(DataError, match=r"DataLoader: part 0 of item 0 is a object .*cannot be batched"):
        DataLoader(Bad(), bs=2)

    class Ragged(torch.utils.data.Dataset):  # item 4 has another shape: named by its position in the dataset
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> Any:
            return torch.zeros(3 if i == 4 else 2), 0

    for kw in ({}, {"before_batch": lambda items: items}):
        dl = DataLoader(Ragged(), bs=3, shuffle=True, seed=1, device="cpu", **kw)
        with pytest.raises(DataError, match=r"part 0 of item 4 has shape \(3,\), where 2 of the batch's 3 items "
                                            r"have \(2,\); to batch them give them one shape"):
            list(dl)

    class SomeDicts(torch.utils.data.Dataset):  # item 4 is a dict: named by its position, steps or none
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> Any:
            return {"x": torch.zeros(2)} if i == 4 else (torch.zeros(2), 0)

    for kw in ({}, {"before_batch": lambda items: items}):
        dl = DataLoader(SomeDicts(), bs=3, shuffle=True, seed=1, device="cpu", **kw)
        with pytest.raises(DataError, match=r"item 4 is a dict \(keys 'x'\)"):
            list(dl)


def test_an_item_after_a_reordering_before_batch_is_named_by_its_place_in_the_batch():
    from pipekit.data import Datasets

    files = _threes(6)
    pixels = [np.array(Image.open(f)) if i != 4 else np.zeros((3, 3), np.uint8) for i, f in enumerate(files)]

    class Ragged(torch.utils.data.Dataset):  # item 4 has another shape
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> Any:
            return torch.from_numpy(pixels[i]), i

    def in_place(b: list) -> list:
        b.sort(key=lambda t: -int(t[1]))
        return b

    placed = r"part 0 of item 1 of the batch after before_batch has shape \(3, 3\), where 5 of the batch's 6 items"
    steps = [lambda b: b[::-1], lambda b: sorted(b, key=lambda t: -int(t[1])), in_place]
    for step in steps:  # 4th of 6 read, 2nd after the reordering: never "item 4" nor a position it is not
        for dataset in (Ragged(), [(torch.from_numpy(p), i) for i, p in enumerate(pixels)]):
            with pytest.raises(DataError, match=placed):
                list(DataLoader(dataset, bs=6, device="cpu", before_batch=step))
        dsets = Datasets(list(range(6)), [[lambda i: pixels[i]], [lambda i: i]], splits=[list(range(6)), []])
        with pytest.raises(DataError, match=placed):
            list(dsets.dataloaders(bs=6, device="cpu", before_batch=step, shuffle=False).train)
    # a step keeping each item in its place (the same objects) leaves the dataset's position
    keep = DataLoader(Ragged(), bs=6, device="cpu", before_batch=lambda b: list(b))
    with pytest.raises(DataError, match=r"part 0 of item 4 has shape \(3, 3\)"):
        list(keep)

    class SomeDicts(torch.utils.data.Dataset):  # item 4 is a dict: the same naming
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> Any:
            return {"x": torch.zeros(2)} if i == 4 else (torch.zeros(2), i)

    with pytest.raises(DataError, match=r"item 1 of the batch after before_batch is a dict \(keys 'x'\)"):
        list(DataLoader(SomeDicts(), bs=6, device="cpu", before_batch=lambda b: b[::-1]))


def test_an_int_beyond_int64_is_named_not_a_raw_overflow():
    files = _threes(4)

    class Big(torch.utils.data.Dataset):  # a label too large for int64 (an id, a hash)
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> tuple:
            return torch.from_numpy(np.array(Image.open(files[i]))), 2**70 if i == 0 else i

    msg = r"part 1 of item {} is a int \(1180591620717411303424\), which cannot be batched.*int64's range"
    with pytest.raises(DataError, match=msg.format(0)):
        DataLoader(Big(), bs=2, device="cpu")
    items = [(torch.from_numpy(np.array(Image.open(f))), 2**70 if i == 2 else i) for i, f in enumerate(files)]
    with pytest.raises(DataError, match=msg.format(2)):
        list(DataLoader(items, bs=4, device="cpu", before_batch=lambda b: b))


def test_one_position_is_an_int_checked_and_wrapped():
    from pipekit.data import Datasets, TfmdLists
    from pipekit.data.loader import ArrayDataset, item_positions
    from pipekit.data.store import TensorStore

    files = _threes(5)
    assert [item_positions(i, 5) for i in (0, -1, np.int64(-5), np.uint8(3), torch.tensor(-2))] == [0, 4, 0, 3, 3]
    assert all(type(item_positions(i, 5)) is int for i in (-1, np.int32(2), torch.tensor(1)))
    for i in (5, -6, np.int64(7)):
        with pytest.raises(IndexError, match=f"item {i} is out of range: this subset has 5 items"):
            item_positions(i, 5)
    for i in (True, np.bool_(False), 1.0):
        with pytest.raises(ParameterError, match="items are indexed by an integer position"):
            item_positions(i, 5)
    tl = TfmdLists(files, [lambda f: f.name])
    dsets = Datasets(files, [[lambda f: f.name], [lambda f: f.parent.name]])
    ds = ArrayDataset([TensorStore(torch.arange(5)), TensorStore(torch.arange(5) * 2)])
    assert (tl[-1], tl[np.int16(1)]) == (files[4].name, files[1].name)
    assert dsets[-5] == (files[0].name, "3") and [int(v) for v in ds[-2]] == [3, 6]
    for seq, what in ((tl, "this TfmdLists"), (dsets, "this Datasets"), (ds, "this dataset")):
        with pytest.raises(IndexError, match=f"item 5 is out of range: {what} has 5 items"):
            seq[5]
        with pytest.raises(ParameterError, match="got bool"):
            seq[True]


def test_a_list_of_items_with_before_batch_names_a_failing_item_by_its_position():
    files = _threes(6)
    items = [(np.array(Image.open(f)) if i != 5 else np.zeros((3, 3), np.uint8), i % 2) for i, f in enumerate(files)]
    dl = DataLoader(items, bs=4, shuffle=True, seed=0, device="cpu", before_batch=lambda b: b)
    with pytest.raises(DataError, match=r"part 0 of item 5 has shape \(3, 3\), where \d of the batch's \d items "
                                        r"have \(28, 28\)"):
        list(dl)


# ------------------------------------------------------------------ a TensorDataset is gathered from its tensors
def test_a_tensor_dataset_is_gathered_from_its_tensors_as_torch_batches_it():
    imgs = torch.stack([torch.from_numpy(np.array(Image.open(f))) for f in _threes()])  # uint8 (8, 28, 28)
    x, y = imgs[:, None], torch.arange(8) % 2  # (C, H, W) images as torch batches them
    ds = torch.utils.data.TensorDataset(x, y)
    dl = DataLoader(ds, bs=3, shuffle=True, seed=0, device="cpu")
    assert type(dl.dataset).__name__ == "ArrayDataset" and dl.dataset.stores[0].data.data_ptr() == x.data_ptr()
    batches = list(dl)
    order = torch.cat([torch.nonzero((imgs[:, None] == xb[:, None]).flatten(2).all(-1))[:, 1] for xb, _ in batches])
    assert sorted(order.tolist()) == list(range(8))
    for xb, yb in batches:
        assert xb.dtype == torch.uint8 and tuple(xb.shape[1:]) == (1, 28, 28) and yb.dtype == torch.int64
    # the same batches as reading it item by item (a subclass with its own __getitem__), in the same order
    class Items(torch.utils.data.TensorDataset):
        def __getitem__(self, i: int) -> tuple:
            return super().__getitem__(i)

    by_item = DataLoader(Items(x, y), bs=3, shuffle=True, seed=0, device="cpu")
    assert type(by_item.dataset).__name__ == "MapItems"
    for (xa, ya), (xb, yb) in zip(batches, by_item):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # a lone tensor's items are 1-tuples, batches too; before_batch reads items one by one, stacked as torch's
    (only,) = DataLoader(torch.utils.data.TensorDataset(x), bs=8, device="cpu").one_batch()
    assert torch.equal(only, x)
    xs, ys = DataLoader(ds, bs=4, device="cpu", before_batch=lambda b: b[::-1]).one_batch()
    assert torch.equal(xs, x[:4].flip(0)) and ys.tolist() == [1, 0, 1, 0]
    with pytest.raises(ParameterError, match=r"the dataset \(TensorDataset\) is empty"):
        DataLoader(torch.utils.data.TensorDataset(x[:0], y[:0]), bs=2)


def test_a_map_datasets_parts_stack_as_torchs_loader_stacks_them():
    files = _threes(6)

    class Mixed(torch.utils.data.Dataset):  # pixels as arrays and tensors, ints, floats, bools and numpy ints
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int) -> tuple:
            a = np.array(Image.open(files[i]), dtype=np.float32) / 255
            return torch.from_numpy(a), a, i, float(a.mean()), bool(i % 2), np.int64(i)

    got = DataLoader(Mixed(), bs=6, device="cpu").one_batch()
    want = torch.utils.data.default_collate([Mixed()[i] for i in range(6)])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and torch.equal(g, w)
    # a part that is not alike item by item (an int beside a float) is made value by value as before
    mixed = DataLoader([(torch.zeros(2), 1), (torch.ones(2), 2.5)], bs=2, device="cpu", before_batch=lambda b: b)
    assert mixed.one_batch()[1].dtype == torch.float64


# ------------------------------------------------------------------ datasets indexed by slices and lists
@pytest.fixture(scope="module")
def mnist_dls():
    from pipekit.vision import ImageDataLoaders

    return ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0, device="cpu")


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(all(torch.equal(torch.as_tensor(u), torch.as_tensor(v)) for u, v in zip(p, q))
                                    for p, q in zip(a, b))


def test_a_datasets_slices_and_position_lists_give_lists_of_items(mnist_dls):
    valid, train = mnist_dls.valid_ds, mnist_dls.train_ds
    n = len(valid)
    assert _same(valid[:3], [valid[0], valid[1], valid[2]])
    assert _same(train[-2:], [train[len(train) - 2], train[len(train) - 1]])
    # fastai: valid_ds[:3] labels [0, 0, 0], train_ds[-2:] [1, 1], valid_ds[[0, 2]] [0, 0]
    assert [int(t[1]) for t in valid[:3]] == [0, 0, 0] and [int(t[1]) for t in train[-2:]] == [1, 1]
    for idx in ([0, 2], np.array([0, 2]), torch.tensor([0, 2]), (0, 2)):
        assert _same(valid[idx], [valid[0], valid[2]])
    assert valid[[]] == [] and len(valid[::100]) == len(range(n)[::100])
    assert _same([valid[np.int64(1)]], [valid[torch.tensor(1)]])
    with pytest.raises(IndexError, match=f"item {n} is out of range: this dataset has {n} items"):
        valid[[0, n]]
    with pytest.raises(IndexError, match=f"item {n} is out of range"):
        valid[n]
    with pytest.raises(ParameterError, match="items are indexed by an integer position.*got float"):
        valid[1.5]
    with pytest.raises(ParameterError, match="got list of bool"):
        valid[[True, False]]


def test_a_tfmdlists_and_its_datasets_take_position_lists(mnist_dls):
    from pipekit.data import Categorize, Datasets, TfmdLists, parent_label

    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:3] + \
        sorted((D.path("mnist_tiny") / "train" / "7").glob("*.png"))[:3]
    tl = TfmdLists(files, [parent_label, Categorize()], splits=[[0, 1, 3, 4], [2, 5]])
    want = [tl[0], tl[2]]
    assert [int(v) for v in want] == [0, 0]
    for idx in ([0, 2], np.array([0, 2]), torch.tensor([0, 2]), range(0, 3, 2)):
        assert tl[idx] == want
    # fastai: tl.train[[0, 2]] labels [0, 1], tl.valid[[1, 0]] [1, 0]
    assert [int(v) for v in tl.train[[0, 2]]] == [0, 1] and [int(v) for v in tl.valid[[1, 0]]] == [1, 0]
    assert tl.train[[-1]] == [tl.train[3]] and tl[[]] == []
    with pytest.raises(IndexError, match="item 6 is out of range: this TfmdLists has 6 items"):
        tl[[0, 6]]
    with pytest.raises(ParameterError, match="got list of bool"):
        tl[[True, False]]
    dsets = Datasets(files, [[lambda f: str(f.name)], [parent_label, Categorize()]], splits=[[0, 1, 3, 4], [2, 5]])
    pairs = dsets.train[np.array([3, 0])]
    assert [(n, int(c)) for n, c in pairs] == [(files[4].name, 1), (files[0].name, 0)]
    assert dsets[torch.tensor([5])] == [dsets[5]] and dsets[np.int64(-1)] == dsets[5]
    with pytest.raises(IndexError, match="item 2 is out of range: this Datasets has 2 items"):
        dsets.valid[[2]]


def test_every_loader_over_a_map_datasets_items_reads_them_in_the_iterating_thread():
    ds = FlipNoise(_threes())
    dl = DataLoader(ds, bs=3, device="cpu")
    again = DataLoader(dl.dataset, bs=3, device="cpu")
    part = DataLoader(dl.dataset.subset(np.arange(5)), bs=2, device="cpu")
    assert (dl.num_workers, again.num_workers, part.num_workers) == (0, 0, 0)
    assert DataLoader(dl.dataset, bs=3, num_workers=2).num_workers == 2  # as given, it wins
    torch.manual_seed(0)
    a = torch.cat([x for x, _ in again])
    torch.manual_seed(0)
    b = torch.cat([x for x, _ in DataLoader(dl.dataset, bs=3, device="cpu")])
    assert torch.equal(a, b)  # the draws follow torch.manual_seed, in order


def test_a_map_datasets_loader_dataset_takes_slices_too():
    ds = DataLoader(torch.utils.data.TensorDataset(torch.arange(5.0), torch.arange(5)), bs=2).dataset
    assert [int(y) for _, y in ds[1:4]] == [1, 2, 3] and [int(y) for _, y in ds[[4, 0]]] == [4, 0]



class Threes(torch.utils.data.Dataset):
    """mnist_tiny's first threes as uint8 (28, 28) tensors, each with its position."""

    def __init__(self, n: int = 6):
        self.files = _threes(n)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple:
        return torch.from_numpy(np.array(Image.open(self.files[i]))), i


def test_a_slice_gives_a_list_slices_positions_and_one_helper_reads_each_kind_of_index():
    from pipekit.data.loader import MapItems, item_positions, pick

    for n in (0, 1, 5, 8):
        for s in (slice(None), slice(2, None), slice(-3, None), slice(None, -1), slice(None, None, -1),
                  slice(6, 1, -2), slice(-100, 100), slice(3, 3), slice(None, None, 3), slice(np.int64(1), None)):
            a = item_positions(s, n)
            assert a.dtype == np.int64 and a.shape == (len(range(n)[s]),) and a.tolist() == list(range(n))[s]
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        item_positions(slice(None, None, 0), 5)
    names = [f.name for f in _threes(6)]
    assert pick(-1, 6, "this list", names.__getitem__) == names[5]
    assert pick(slice(4, None), 6, "this list", names.__getitem__) == names[4:]
    assert pick(torch.tensor([2, -6]), 6, "this list", names.__getitem__) == [names[2], names[0]]
    with pytest.raises(IndexError, match="item 6 is out of range: this list has 6 items"):
        pick(6, 6, "this list", names.__getitem__)
    ds = DataLoader(Threes(), bs=2, device="cpu").dataset
    sub = ds.subset(np.array([4, 1, 3]), split_idx=1)
    assert type(sub) is MapItems and (sub.split_idx, sub.n_inp, sub.geometry) == (1, 1, (None, None))
    assert [y for _, y in sub[:]] == [4, 1, 3] and [y for _, y in sub.subset(np.array([2]))] == [3]
    xb, yb = DataLoader(sub, bs=3, device="cpu").one_batch()
    assert (tuple(xb.shape), xb.dtype, yb.tolist()) == ((3, 28, 28), torch.uint8, [4, 1, 3])


# ------------------------------------------------------------------ test_dl keeps every item
def _dropping_dls() -> DataLoaders:
    torch.manual_seed(0)
    x, y = torch.randn(100, 3), torch.arange(100) % 2
    return DataLoaders.from_dsets(list(zip(x[:80], y[:80])), list(zip(x[80:], y[80:])), bs=16, drop_last=True,
                                  device="cpu")


def test_test_dl_keeps_every_item_of_loaders_that_drop_their_last_batch():
    dls = _dropping_dls()
    assert dls.valid.drop_last and len(dls.valid) == 1  # 20 validation items, bs 16: the last 4 dropped
    for n in (10, 40):
        dl = dls.test_dl(torch.randn(n, 3))
        assert not dl.drop_last and sum(b[0].shape[0] for b in dl) == n
    assert dls.test_dl(torch.randn(10, 3)).one_batch()[0].shape == (10, 3)
    learn = Learner(dls, torch.nn.Linear(3, 2), loss_func=torch.nn.CrossEntropyLoss())
    preds, _ = learn.get_preds(dl=dls.test_dl(torch.randn(40, 3)))
    assert tuple(preds.shape) == (40, 2)
    assert dls.test_dl(torch.randn(40, 3), drop_last=True).drop_last  # as given, it wins


# ------------------------------------------------------------------ dict items
def test_dict_items_are_refused_naming_tuples_as_the_fix():
    items = [{"x": torch.randn(3), "y": i % 2} for i in range(10)]
    msg = r"item 0 is a dict \(keys 'x', 'y'\).*give \(x, y\) tuples, e.g. \[\(d\['x'\], d\['y'\]\) for d in items\]"
    with pytest.raises(DataError, match="DataLoader: " + msg):
        DataLoader(items, bs=4)

    class Rows(torch.utils.data.Dataset):  # a Hugging Face-style dataset's rows
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, i: int) -> dict:
            return items[i]

    with pytest.raises(DataError, match=msg):
        DataLoader(Rows(), bs=4)
    with pytest.raises(DataError, match=msg):
        DataLoaders.from_dsets(items[:8], items[8:], bs=4)
    pairs = [(d["x"], d["y"]) for d in items]
    with pytest.raises(DataError, match="from_dsets: " + msg.replace("item 0", "item 3")):
        DataLoaders.from_dsets(pairs[:3] + items[3:8], pairs[8:], bs=4)
    xb, yb = DataLoader([(d["x"], d["y"]) for d in items], bs=4).one_batch()  # the fix the message gives
    assert (tuple(xb.shape), yb.tolist()) == ((4, 3), [0, 1, 0, 1])


# ------------------------------------------------------------------ from_dsets with no validation items
def test_from_dsets_takes_an_empty_validation_set():
    torch.manual_seed(0)
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    dls = DataLoaders.from_dsets(list(zip(x, y)), [], bs=4, device="cpu")
    assert (len(dls.train), len(dls.valid), dls.valid.n) == (2, 0, 0)  # fastai: 2 and 0 batches
    assert [tuple(s.data.shape) for s in dls.valid.dataset.stores] == [(0, 3), (0,)]
    assert [s.data.dtype for s in dls.valid.dataset.stores] == [torch.float32, torch.int64]
    learn = Learner(dls, torch.nn.Linear(3, 2), loss_func=torch.nn.CrossEntropyLoss())
    learn.fit(1, 0.01)
    assert tuple(learn.get_preds(dl=dls.test_dl(x[:5]))[0].shape) == (5, 2)
    with pytest.raises(DataError, match="train items must be a non-empty list"):
        DataLoaders.from_dsets([], list(zip(x, y)), bs=4)
