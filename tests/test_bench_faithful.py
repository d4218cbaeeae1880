"""pipekit.bench measures what it says it measures, on real images (mnist_tiny): the reference torch DataLoader does
the DataBlock's item transforms or refuses the ones it cannot do (never drops one), bottleneck() leaves the global
random state as it found it, profile() builds and checks loaders on the device it is given, and a first epoch counts
as one epoch."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.bench import bottleneck, profile, reference_loader
from pipekit.bench.reference import reference_blocks
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, Transform, get_image_files, parent_label
from pipekit.vision import DihedralItem, FlipItem, ImageBlock, Normalize, Resize, imagenet_stats

pytestmark = [pytest.mark.data, pytest.mark.filterwarnings("ignore:.*in neither the training")]


@pytest.fixture(scope="module")
def source() -> Path:
    return D.path("mnist_tiny")


def digits(*item_tfms) -> DataBlock:
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=[Resize(32), *item_tfms],
                     batch_tfms=[Normalize.from_stats(*imagenet_stats)])


def first_batch(dblock: DataBlock, source: Path, subset: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's first batch, in the items' order (nothing shuffled, so two DataBlocks can be compared)."""
    ref = reference_loader(dblock, source, bs=16, num_workers=0, subset=subset, seed=0, shuffle=False)
    return next(iter(ref))


class Inverting(Resize):
    def apply(self, img, nearest=False):
        return 255 - super().apply(img, nearest)


class NoFlip(FlipItem):
    """A user's flip that never flips."""

    def plan(self, n, hw, rng, train=True):
        return super().plan(n, hw, rng, train=False)


class Twice(Transform):
    """A user's own item transform: the reference has no equivalent of it."""

    def encodes(self, x):
        return x


def test_the_reference_refuses_an_item_transform_it_cannot_do_naming_it(source):
    with pytest.raises(ParameterError, match=r"reference_loader: no equivalent for the transform\(s\) "
                                             r"\[Twice\(\)\].*remove it from item_tfms or batch_tfms to compare"):
        reference_loader(digits(Twice()), source, bs=16, num_workers=0)
    # bench-loader --compare reference checks the same before measuring anything
    with pytest.raises(ParameterError, match=r"bench-loader: --compare reference: no equivalent .*Twice"):
        reference_blocks(digits(Twice()), "bench-loader: --compare reference")
    # a plain function given as an item transform is a Transform of the user's too
    with pytest.raises(ParameterError, match="no equivalent for the transform"):
        reference_loader(digits(lambda x: x), source, bs=16, num_workers=0)
    # and so is a subclass of one the reference mirrors: its own code would be replaced by the built-in's
    for dblock, own in ((digits().new(item_tfms=[Inverting(32)]), "Inverting"), (digits(NoFlip(p=1.0)), "NoFlip")):
        with pytest.raises(ParameterError, match=rf"no equivalent for the transform\(s\) \[{own}"):
            reference_loader(dblock, source, bs=16, num_workers=0)


def test_the_reference_flips_as_flipitem_dihedralitem_and_albumentations_do(source):
    import albumentations as A

    from pipekit.vision import Albumentations

    x, y = first_batch(digits(), source)
    xf, yf = first_batch(digits(FlipItem(p=1.0)), source)
    assert torch.equal(yf, y)
    assert torch.equal(xf, x.flip(-1))  # every training image mirrored left-right, as pipekit's FlipItem(p=1)
    xa, _ = first_batch(digits(Albumentations(A.HorizontalFlip(p=1.0))), source)
    assert torch.equal(xa, x.flip(-1))  # an Albumentations pipeline is run as it is
    # validation images pass unchanged, as pipekit's
    xv, _ = first_batch(digits(), source, "valid")
    assert torch.equal(first_batch(digits(FlipItem(p=1.0)), source, "valid")[0], xv)
    assert torch.equal(first_batch(digits(Albumentations(A.HorizontalFlip(p=1.0))), source, "valid")[0], xv)
    # square images: each one of the 8 symmetries of the square, not all the identity
    xd, _ = first_batch(digits(DihedralItem(p=1.0)), source)
    syms = [lambda t, k=k, f=f: torch.rot90(t.flip(-1) if f else t, k, (-2, -1)) for k in range(4) for f in (0, 1)]
    kinds = [next(i for i, s in enumerate(syms) if torch.equal(s(a), b)) for a, b in zip(x, xd)]
    assert len(set(kinds)) > 1, kinds


def _dropout_learner(source):
    from pipekit.learn import Learner

    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter()).dataloaders(source, bs=64, seed=42, num_workers=0, device="cpu")
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss())


def _seeded_fit(source, bench: bool) -> torch.Tensor:
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    learn = _dropout_learner(source)
    if bench:
        states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
        bottleneck(learn, n_batches=3, warmup=1)
        assert torch.equal(states[0], torch.get_rng_state()) and states[1] == random.getstate()
        assert np.array_equal(states[2], np.random.get_state()[1])
    learn.fit(1, 1e-2)
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()])


def test_bottleneck_leaves_a_seeded_fit_as_it_would_have_been(source):
    # the timed training steps draw dropout masks from torch's global generator: put back, a seeded fit after the
    # benchmark trains to the same weights as without it
    assert torch.equal(_seeded_fit(source, bench=True), _seeded_fit(source, bench=False))


def test_profile_builds_on_the_device_given_and_refuses_one_it_cannot_use(source, monkeypatch):
    dblock = digits()
    built = []
    real = DataBlock.dataloaders

    def spy(self, *args, **kwargs):
        built.append(kwargs.get("device"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DataBlock, "dataloaders", spy)
    p = profile(dblock, source=source, n_batches=2, warm_epochs=1, bs=64, num_workers=0, device="cpu")
    assert p.device == "cpu" and built and all(str(d) == "cpu" for d in built)  # the loaders are built there
    for bad, said in (("no-such-device", "is not a device"), ("meta", "is not one pipekit puts"),
                      ("xla", "is not one pipekit puts")):
        with pytest.raises(ParameterError, match=rf"profile: device='{bad}' {said}"):
            profile(dblock, source=source, device=bad, bs=64)
    dls = real(dblock, source, bs=64, num_workers=0, device="cpu", seed=0)
    with pytest.raises(ParameterError, match=r"profile: device='no-such-device' is not a device"):
        profile(dls, n_batches=2, device="no-such-device")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match=r"profile: device='cuda' but no CUDA device is available here"):
            profile(dls, n_batches=2, device="cuda")
        # a machine with one GPU: loaders already built on the CPU are measured as they are, so refused, saying how
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "one GPU")
        with pytest.raises(ParameterError, match=r"device='cuda:0', but these pipekit loaders put their batches on "
                                                 r"'cpu'.*dls\.to\('cuda:0'\)"):
            profile(dls, n_batches=2, device="cuda:0")
        with pytest.raises(ParameterError, match=r"device='cuda:1' but this machine has 1 CUDA device"):
            profile(dls, n_batches=2, device="cuda:1")
        monkeypatch.undo()
    assert profile(dls, n_batches=2, warm_epochs=1, device="cpu", cold=False).device == "cpu"


def test_a_first_epoch_from_a_datablock_counts_one_epoch(source, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    p = profile(digits(), source=source, n_batches=3, warm_epochs=1, bs=64, seed=0, num_workers=0, device="cpu")
    # the first epoch is measured whole, the build in its time and not an epoch
    assert p.cold.epochs == 1 and p.cold.batches == 709 // 64 and p.cold.build_s > 0 and p.warm.batches == 3
    assert p.warm.epochs == 1
    d = json.loads(p.to_json())
    assert d["cold"]["epochs"] == 1 and d["cold"]["build_s"] == p.cold.build_s
    assert p.cold.wall_s > p.cold.build_s  # the cold time still includes the build


RECIPE = '''
import os
from pathlib import Path
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, Resize


def datablock():
    return (DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                      splitter=GrandparentSplitter(), item_tfms=[Resize(32)]),
            Path(os.environ["PIPEKIT_DATA"]) / "mnist_tiny")
'''


def test_bench_loader_json_counts_the_first_epoch_once(tmp_path, monkeypatch):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "rec.py").write_text(RECIPE)
    assert main(["bench-loader", "rec.py", "--batches", "2", "--warm-epochs", "1", "--bs", "32", "--json",
                 "out.json"]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["profile"]["cold"]["epochs"] == 1 and out["profile"]["cold"]["batches"] == 709 // 32
    assert out["profile"]["warm"]["batches"] == 2
