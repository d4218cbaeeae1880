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
            return {"x": torch.zeros(2)} if i == 4 else (torch.zeros(2), 0)

    dl = DataLoader(Ragged(), bs=3, device="cpu")
    with pytest.raises(DataError, match=r"item 4 is a dict \(keys 'x'\)"):
        list(dl)


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


def test_a_map_datasets_loader_dataset_takes_slices_too():
    ds = DataLoader(torch.utils.data.TensorDataset(torch.arange(5.0), torch.arange(5)), bs=2).dataset
    assert [int(y) for _, y in ds[1:4]] == [1, 2, 3] and [int(y) for _, y in ds[[4, 0]]] == [4, 0]


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
