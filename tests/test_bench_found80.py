"""pipekit.bench counts what a loader yields and measures where it is told: batches without items are refused (not
divided by), a list of samples counts its samples (so does a field holding a tuple of per-sample tensors: a
detection collate's images), a None batch is a batch of no items rather than the end of the epoch, compare() and
sweep() check and use ``device`` as profile() does, and ``bench-loader --workers`` profiles and compares the setting
it chose when the recipe's ``dataloaders()`` does not take ``num_workers``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader as TorchLoader
from torch.utils.data import Dataset, TensorDataset, default_collate

import pipekit.bench
import pipekit.datasets as D
from pipekit.bench import compare, profile, sweep
from pipekit.bench.runner import count_items
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, Resize

pytestmark = [pytest.mark.data, pytest.mark.filterwarnings("ignore:.*in neither the training")]


@pytest.fixture(scope="module")
def source() -> Path:
    return D.path("mnist_tiny")


def digits() -> DataBlock:
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=Resize(24))


class NoRows:
    """A loader whose batches have no rows (a filter upstream dropped every one)."""

    def __len__(self) -> int:
        return 3

    def __iter__(self):
        for _ in range(3):
            yield torch.zeros(0, 4), torch.zeros(0)


class SomeUnreadable(Dataset):
    """64 items, of which ``bad`` cannot be read (None)."""

    def __init__(self, bad: range):
        self.bad = bad

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int):
        return None if i in self.bad else (torch.full((3,), float(i)), i)


def skip_unreadable(items):
    items = [x for x in items if x is not None]
    return default_collate(items) if items else None


def test_batches_without_items_are_refused_and_batches_per_s_counts_batches():
    for call in (lambda: profile(NoRows(), device="cpu"), lambda: compare(NoRows(), NoRows(), rounds=3, device="cpu")):
        with pytest.raises(ParameterError, match=r"(NoRows|a): the loader's 3 batch\(es\) held no items"):
            call()
    every_batch_none = TorchLoader(SomeUnreadable(range(64)), batch_size=8, collate_fn=skip_unreadable)
    with pytest.raises(ParameterError, match=r"the loader's 8 batch\(es\) held no items"):
        profile(every_batch_none, device="cpu")
    # 250 items in batches of 32: 8 batches, the last of 26
    p = profile(TorchLoader(TensorDataset(torch.randn(250, 3), torch.arange(250)), batch_size=32), device="cpu",
                warm_epochs=2)
    assert (p.plain_items, p.plain_batches, p.warm.items, p.warm.batches) == (500, 16, 500, 16)
    assert p.batches_per_s == pytest.approx(16 / p.plain_wall_s)
    d = p.to_dict()
    assert d["plain_batches"] == 16 and d["batches_per_s"] == pytest.approx(p.batches_per_s)


def test_items_are_counted_for_every_common_batch_shape():
    xs, ys = torch.randn(256, 3), torch.arange(256)
    tuples = TensorDataset(xs, ys)
    dicts = [{"x": xs[i], "y": int(ys[i])} for i in range(256)]
    nested = [((xs[i], xs[i] * 2), int(ys[i])) for i in range(256)]
    mixed = [({"x": xs[i]}, {"y": int(ys[i])}) for i in range(256)]
    loaders = {
        "tuples, default collate": TorchLoader(tuples, batch_size=32),
        "tuples, collate_fn=list": TorchLoader(tuples, batch_size=32, collate_fn=list),
        "dicts, default collate": TorchLoader(dicts, batch_size=32),
        "dicts, collate_fn=list": TorchLoader(dicts, batch_size=32, collate_fn=list),
        "nested tuples, default collate": TorchLoader(nested, batch_size=32),
        "a dict per field, default collate": TorchLoader(mixed, batch_size=32),
        "tensors only": TorchLoader(xs, batch_size=32),
        "strings, collate_fn=list": TorchLoader([f"item {i}" for i in range(256)], batch_size=32, collate_fn=list),
    }
    for label, dl in loaders.items():
        p = profile(dl, device="cpu", warm_epochs=1, cold=False)
        assert (p.warm.items, p.warm.batches) == (256, 8), label
    # one batch of each shape, counted directly
    assert count_items(next(iter(loaders["tuples, collate_fn=list"]))) == 32
    assert count_items(next(iter(loaders["nested tuples, default collate"]))) == 32
    assert count_items((["a", "b", "c"], torch.zeros(3))) == 3
    with pytest.raises(ParameterError, match="first element is a int has no length"):
        count_items((7, 8))
    # containers of fields are followed down where the batch's other fields agree with their rows
    x8, y8 = torch.zeros(8, 3), torch.zeros(8)
    assert count_items(((x8, torch.zeros(8, 4)), y8)) == 8
    assert count_items(({"x": x8}, {"y": y8})) == count_items(({"x": x8},)) == 8
    # containers of per-sample tensors count their samples, not the first sample's size
    token_ids = [torch.arange(20), torch.arange(5)] * 4  # unpadded, one tensor per text
    assert count_items((token_ids, y8)) == 8
    assert count_items({"input_ids": token_ids, "labels": y8}) == 8
    assert count_items(({"input_ids": token_ids}, y8)) == 8
    assert count_items(([[1] * 20, [2] * 5] * 4, y8)) == 8
    images = [torch.zeros(3, 32, 32)] * 8
    assert count_items((images, y8)) == 8
    assert count_items((images,)) == 8  # a learner's xb for a model taking a list of images
    boxes = tuple({"boxes": torch.zeros(3, 4), "labels": torch.zeros(3)} for _ in range(4))
    assert count_items((tuple(torch.zeros(3, 40 + i, 50) for i in range(4)), boxes)) == 4


class Detection(Dataset):
    """mnist_tiny's images, cropped to a height of their own, each with its boxes: what torchvision's detection
    models are trained on."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image
        img = torch.from_numpy(np.array(Image.open(self.files[i]).convert("L")))
        img = img[: 20 + i % 8].expand(3, -1, -1)
        return img, {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]] * 3), "labels": torch.ones(3, dtype=torch.long)}


def test_a_detection_collate_counts_its_images(source):
    ds = Detection(sorted(get_image_files(source))[:18])
    dl = TorchLoader(ds, batch_size=4, collate_fn=lambda b: tuple(zip(*b)))  # torchvision's detection collate
    images, targets = next(iter(dl))
    assert len(images) == 4 and {im.shape[0] for im in images} == {3} and len(targets[0]["boxes"]) == 3
    assert count_items((images, targets)) == 4
    p = profile(dl, device="cpu", cold=False, warm_epochs=1)
    assert (p.warm.items, p.warm.batches) == (18, 5)


def test_a_none_batch_is_a_batch_of_no_items_not_the_end_of_the_epoch():
    # items 8-15 unreadable: the collate drops that batch, the loop still sees 8 batches, 56 items
    dl = TorchLoader(SomeUnreadable(range(8, 16)), batch_size=8, collate_fn=skip_unreadable)
    assert sum(1 for _ in dl) == 8
    p = profile(dl, device="cpu", warm_epochs=2)
    assert p.n_batches == 8 and p.cold.items == 56 and p.warm.items == 112 and p.plain_items == 112


def test_compare_and_sweep_check_and_use_the_device_given(source, monkeypatch):
    dblock = digits()
    built = []
    real = DataBlock.dataloaders

    def spy(self, *args, **kwargs):
        built.append(kwargs.get("device"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DataBlock, "dataloaders", spy)
    compare((dblock, source), (dblock, source), n_batches=2, rounds=1, device="cpu", bs=32, num_workers=0)
    sweep((dblock, source), workers=(0, 1), n_batches=2, rounds=1, device="cpu", bs=32)
    assert len(built) == 3 and all(str(d) == "cpu" for d in built)  # each DataBlock is built there
    dls = real(dblock, source, bs=32, num_workers=0, device="cpu", seed=0)
    for fn, call in (("compare", lambda dev: compare(dls, dls, n_batches=2, rounds=1, device=dev)),
                     ("sweep", lambda dev: sweep(dls, workers=(0, 1), n_batches=2, rounds=1, device=dev))):
        with pytest.raises(ParameterError, match=rf"{fn}: device='no-such-device' is not a device"):
            call("no-such-device")
        if not torch.cuda.is_available():
            with pytest.raises(ParameterError, match=rf"{fn}: device='cuda' but no CUDA device is available here"):
                call("cuda")
            # a machine with one GPU: loaders built on the CPU are measured as they are, so refused, saying how
            with monkeypatch.context() as m:
                m.setattr(torch.cuda, "is_available", lambda: True)
                m.setattr(torch.cuda, "device_count", lambda: 1)
                m.setattr(torch.cuda, "get_device_name", lambda i=0: "one GPU")
                with pytest.raises(ParameterError, match=rf"{fn}: device='cuda:0', but these pipekit loaders put their "
                                                         r"batches on 'cpu'.*dls\.to\('cuda:0'\)"):
                    call("cuda:0")
        else:
            with pytest.raises(ParameterError, match=rf"{fn}: device='cuda:0', but these pipekit loaders put their "
                                                     r"batches on 'cpu'"):
                call("cuda:0")
            built.clear()
            c = compare((dblock, source), dls.to("cuda"), n_batches=2, rounds=1, device="cuda", bs=32)
            assert len(c.rates_a) == 1 and [str(d) for d in built] == ["cuda"]
            dls.to("cpu")
        call("cpu")


NO_WORKERS = '''
from functools import partial
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, Resize

def dblock():
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), splitter=GrandparentSplitter(),
                     get_items=partial(get_image_files, folders=["train", "valid"]), get_y=parent_label,
                     item_tfms=Resize(24))

def dataloaders(bs=32, seed=0):  # no num_workers: the loaders' own default
    return dblock().dataloaders(D.path("mnist_tiny"), bs=bs, seed=seed, device="cpu")
'''

A_DATABLOCK = NO_WORKERS + '''
def datablock():
    return dblock(), D.path("mnist_tiny")
'''


def test_bench_loader_profiles_and_compares_the_workers_it_chose(tmp_path, monkeypatch, source):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(NO_WORKERS)
    (tmp_path / "other.py").write_text(NO_WORKERS)
    (tmp_path / "block.py").write_text(A_DATABLOCK)
    default = digits().dataloaders(source, bs=32, seed=0, device="cpu").train.num_workers
    assert default != 1  # so a profile at the recipe's default would show
    seen = []
    real = pipekit.bench.compare

    def spy(a, b, *args, **kwargs):
        seen.append([x.train.num_workers if hasattr(x, "train") else kwargs.get("num_workers") for x in (a, b)])
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(pipekit.bench, "compare", spy)
    args = ["bench-loader", "mine.py", "--workers", "1", "--batches", "2", "--warm-epochs", "1", "--rounds", "1",
            "--no-cold", "--json", "out.json"]
    assert main([*args, "--compare", "other.py"]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["sweep"]["best"] == 1 and out["profile"]["num_workers"] == 1
    assert main([*args, "--compare", "block.py"]) == 0  # a DataBlock on the other side is built at it too
    assert seen == [[1, 1], [1, 1]]
