"""A recipe's plain parameters written to its file (``n_inp`` given with getters per target loads back), the mid-level
API's loaders pickled (a getter among ``Datasets``/``TfmdLists`` transforms), and an unseeded shuffled loader drawing
its order from NumPy's global generator (``set_seed`` repeats it, torch's generator is left to the model)."""
from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import pipekit
import pipekit.datasets as D
from pipekit.data import (CategoryBlock, Categorize, ColReader, ColSplitter, DataBlock, DataLoader, Datasets,
                          GrandparentSplitter, TfmdLists, get_image_files, parent_label, set_seed)
from pipekit.learn import load_learner
from pipekit.vision import ImageBlock, IntToFloatTensor, PILImage, Resize, ToTensor, vision_learner

pytestmark = pytest.mark.data


def digit_and_parity_loss(inp, digit, par):
    """The digit from the first two outputs, its parity from the last two."""
    return F.cross_entropy(inp[:, :2], digit) + F.cross_entropy(inp[:, 2:], par)


pipekit.register(digit_and_parity_loss, name="tests.data_files.digit_and_parity_loss", kind="function", replace=True)


@pytest.fixture(scope="module")
def files() -> list[Path]:
    root = D.path("mnist_tiny")
    return [f for f in sorted(get_image_files(root)) if f.parent.parent.name in ("train", "valid")]


@pytest.fixture(scope="module")
def table(files) -> pd.DataFrame:
    """Every third image of mnist_tiny, a row each: its file, digit, parity and whether it is a validation image."""
    some = files[::3]
    return pd.DataFrame(dict(fname=[str(f) for f in some], digit=[parent_label(f) for f in some],
                             par=["odd" if int(f.stem) % 2 else "even" for f in some],
                             is_valid=[f.parent.parent.name == "valid" for f in some]))


# ------------------------------------------------------------------ n_inp written to the file
def test_an_export_with_n_inp_and_a_getter_per_target_loads_and_predicts_the_same(table, tmp_path):
    torch.manual_seed(0)
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock, CategoryBlock), n_inp=1,
                    get_x=ColReader("fname"), get_y=[ColReader("digit"), ColReader("par")],
                    splitter=ColSplitter("is_valid"), item_tfms=Resize(28)).dataloaders(table, bs=32, seed=0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, n_out=4, loss_func=digit_and_parity_loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(1, 1e-2)
    row = table.iloc[-1]
    want = learn.predict(row)
    loaded = load_learner(learn.export(tmp_path / "two_targets.pipekit"))
    got = loaded.predict(row)
    assert loaded.dls.recipe.n_inp == 1 and loaded.dls.recipe.n_inp_ == 1
    assert got[0] == want[0]
    torch.testing.assert_close(torch.as_tensor(got[2]), torch.as_tensor(want[2]))


def test_a_saved_recipe_of_two_images_keeps_the_n_inp_given(table, tmp_path):
    both = table.assign(fname2=table.fname[::-1].to_list())
    recipe = DataBlock(blocks=(ImageBlock(cls="L"), ImageBlock(cls="L"), CategoryBlock), n_inp=2,
                       get_x=[ColReader("fname"), ColReader("fname2")], get_y=ColReader("digit"),
                       splitter=ColSplitter("is_valid"), item_tfms=Resize(28))
    dls = recipe.dataloaders(both, bs=16, seed=0)
    back = pipekit.load(pipekit.save(dls.recipe, tmp_path / "recipe.pipekit"))
    assert back.n_inp == 2 and back.n_inp_ == 2
    assert back.get_params(deep=False)["n_inp"] == 2


# ------------------------------------------------------------------ the mid-level API's objects pickle
@pytest.fixture(scope="module")
def midlevel(files):
    splits = GrandparentSplitter()(files)
    dsets = Datasets(files, tfms=[[PILImage.create], [parent_label, Categorize]], splits=splits)
    dls = dsets.dataloaders(after_item=[ToTensor], after_batch=[IntToFloatTensor], bs=64, seed=1)
    return files, splits, dsets, dls


def _batches(dl) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(torch.as_tensor(t) for t in b) for b in dl]


def _same_batches(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for s, t in zip(x, y):
            torch.testing.assert_close(s, t, rtol=0, atol=0)


def test_tfmdlists_with_a_getter_pickles_and_gives_the_same_items(midlevel):
    files, splits, _, _ = midlevel
    tls = TfmdLists(files, [parent_label, Categorize()], splits=splits)
    back = pickle.loads(pickle.dumps(tls))
    assert [int(back[i]) for i in range(len(files))] == [int(tls[i]) for i in range(len(files))]
    assert [int(v) for v in back.valid] == [int(v) for v in tls.valid]
    assert repr(back) == repr(tls)


def test_datasets_and_their_loaders_pickle_and_give_the_same_batches(midlevel):
    _, _, dsets, dls = midlevel
    back = pickle.loads(pickle.dumps(dsets))
    for i in (0, len(dsets) - 1):
        (x, y), (bx, by) = dsets[i], back[i]
        assert int(by) == int(y) and (torch.as_tensor(bx) == torch.as_tensor(x)).all()
    dls_back = pickle.loads(pickle.dumps(dls))
    _same_batches(_batches(dls_back.valid), _batches(dls.valid))
    _same_batches(_batches(dls_back.train), _batches(dls.train))


def test_pickled_loaders_give_the_same_batches_in_a_fresh_process(midlevel, tmp_path):
    _, _, _, dls = midlevel
    file = tmp_path / "dls.pkl"
    file.write_bytes(pickle.dumps(dls))
    want = _batches(dls.valid)
    code = ("import pickle, sys, torch; dls = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "torch.save([tuple(torch.as_tensor(t) for t in b) for b in dls.valid], sys.argv[2])")
    out = tmp_path / "batches.pt"
    r = subprocess.run([sys.executable, "-c", code, str(file), str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    _same_batches(torch.load(out), want)


# ------------------------------------------------------------------ an unseeded loader: set_seed repeats it
def _order(seed_with) -> list[int]:
    x = torch.arange(40)
    seed_with()
    dl = DataLoader(TensorDataset(x, x % 2), bs=5, shuffle=True)
    return [int(v) for b in dl for v in b[0]]


def test_an_unseeded_shuffled_loader_repeats_after_set_seed():
    first = _order(lambda: set_seed(3, deterministic=False))
    assert sorted(first) == list(range(40)) and first != list(range(40))
    assert _order(lambda: set_seed(3, deterministic=False)) == first
    assert _order(lambda: set_seed(4, deterministic=False)) != first


def test_building_unseeded_loaders_leaves_torchs_generator_to_the_model(midlevel):
    # a model built after its loaders starts from the weights torch.manual_seed gives, loaders built or not
    dsets = midlevel[2]
    torch.manual_seed(0)
    alone = torch.nn.Linear(4, 2).weight.detach().clone()
    torch.manual_seed(0)
    dsets.dataloaders(after_item=[ToTensor], after_batch=[IntToFloatTensor], bs=64)
    DataLoader(TensorDataset(torch.arange(10.0)), bs=5, shuffle=True)
    assert torch.equal(torch.nn.Linear(4, 2).weight.detach(), alone)
