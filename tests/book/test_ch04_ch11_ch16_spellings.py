"""Chapters 4, 11 and 16 as the book spells them: ``DataLoader(dset, batch_size=256)`` on a list of (x, y) pairs,
``dsets.dataloaders(bs=64)``, ``cat(lbls[0])`` and ``tls.decode(tls[:3])``, a callback with a misspelt event,
``HookCallback`` after a fit with validation, ``learn.opt.hypers`` and ``dls.bs``; on mnist_tiny."""
from __future__ import annotations

import string
import warnings

import numpy as np
import pytest
import torch
from book_helpers import threes_and_sevens
from PIL import Image
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import (Categorize, CategoryBlock, DataBlock, DataLoader, DataLoaders, Datasets,
                          GrandparentSplitter, TfmdLists, first, get_image_files, parent_label)
from pipekit.learn import SGD, Callback, HookCallback, Learner
from pipekit.vision import ImageBlock


@pytest.fixture(scope="module")
def digits():
    """mnist_tiny's train and valid images of 3s and 7s as flat tensors, 3 -> 1 and 7 -> 0 as in the book."""
    torch.set_num_threads(1)
    return threes_and_sevens("train", torch.float32), threes_and_sevens("valid", torch.float32)


@pytest.fixture(scope="module")
def labelled_files():
    """mnist_tiny's train and valid images (its unlabelled test folder left out)."""
    return [f for f in get_image_files(D.path("mnist_tiny")) if f.parent.parent.name in ("train", "valid")]


def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def test_ch04_dataloader_of_pairs_with_batch_size_trains(digits):
    (tx, ty), (vx, vy) = digits
    dl = DataLoader(list(zip(tx, ty)), batch_size=256, shuffle=True, seed=0)
    xb, yb = next(iter(dl))
    assert xb.shape == (256, 784) and yb.shape == (256, 1) and len(dl) == -(-len(tx) // 256)
    assert torch.equal(next(iter(DataLoader(list(zip(tx, ty)), batch_size=256, shuffle=True, seed=0)))[0], xb)
    valid_dl = DataLoader(list(zip(vx, vy)), batch_size=256)
    assert torch.equal(next(iter(valid_dl))[0], vx[:256])  # in order, as given
    dls = DataLoaders(dl, valid_dl)
    assert dls.bs == 256 and dls.valid.bs == 256
    pipekit.set_seed(0)
    learn = Learner(dls, nn.Linear(28 * 28, 1), opt_func=SGD, loss_func=mnist_loss)
    learn.fit(5, lr=1.0)
    with torch.no_grad():
        acc = float(((learn.model(vx).sigmoid() > 0.5).float() == vy).float().mean())
    assert acc > 0.9
    # the book's collections batch as fastai's: numbers to bare tensors, (number, letter) pairs to a tensor and a
    # tuple of letters; the same seed shuffles alike, every item once an epoch
    assert [b.tolist() for b in DataLoader(range(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(torch.arange(7) * 2, batch_size=4)] == [[0, 2, 4, 6], [8, 10, 12]]
    coll = list(DataLoader(range(15), batch_size=5, shuffle=True, seed=1))
    assert sorted(torch.cat(coll).tolist()) == list(range(15)) and first(DataLoader(range(15), batch_size=5)).shape == (5,)
    letters = list(DataLoader(list(enumerate(string.ascii_lowercase)), batch_size=6, shuffle=True, seed=1))
    assert [len(b[1]) for b in letters] == [6, 6, 6, 6, 2] and all(isinstance(b[1], tuple) for b in letters)
    assert all(string.ascii_lowercase[int(i)] == c for idx, cs in letters for i, c in zip(idx, cs))
    with pytest.raises(DataError, match=r"item 1 holds int 3 where item 0 holds a text"):
        DataLoader([(1, "a"), (2, 3)], batch_size=2)
    with pytest.raises(DataError, match=r"item 0 holds str 'a', which is not a number"):
        DataLoaders.from_dsets(list(enumerate("abc")), list(enumerate("de")), bs=2)
    # inputs alone, as the book's DataLoader(x) of a tensor, give predictions
    assert learn.get_preds(dl=DataLoader(vx[:300], batch_size=64))[0].shape == (300, 1)
    with pytest.raises(DataError, match=r"item 1 is not a tuple of 2 like item 0"):
        DataLoader([(1, 2), (3,)], batch_size=2)
    with pytest.raises(ParameterError, match="the list of items is empty"):
        DataLoader([], batch_size=2)
    with pytest.raises(ParameterError, match="bs=3 and batch_size=4 are one setting"):
        DataLoader(range(5), bs=3, batch_size=4)


def test_ch11_datasets_make_their_dataloaders(labelled_files):
    block = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label, splitter=GrandparentSplitter())
    dsets = block.datasets(labelled_files)
    dls = dsets.dataloaders(bs=64, seed=0)
    same = block.dataloaders(labelled_files, bs=64, seed=0)
    xb, yb = dls.one_batch()
    assert xb.shape == (64, 1, 28, 28) and dls.vocab == ["3", "7"] and dls.bs == 64
    assert torch.equal(xb, same.one_batch()[0]) and torch.equal(yb, same.one_batch()[1])
    assert len(dls.valid.dataset) == len(dsets.valid) == sum(f.parent.parent.name == "valid" for f in labelled_files)
    with pytest.raises(ParameterError, match="seq_len=8 sets the window of a language model"):
        dsets.dataloaders(bs=8, seq_len=8)
    with pytest.raises(ParameterError, match="bs"):
        dsets.dataloaders(bs=0)


def test_ch11_fastai_datasets_call_builds_one_tfmdlists_per_part(labelled_files):
    from pipekit.vision import PILImage

    files = labelled_files[::10]
    splits = GrandparentSplitter()(files)
    dsets = Datasets(files, [[PILImage.create], [parent_label, Categorize]], splits=splits)
    x, y = dsets.valid[0]
    assert x.size == (28, 28) and dsets.decode((x, y))[1] == files[splits[1][0]].parent.name
    assert dsets.vocab == ["3", "7"] and len(dsets.valid) == len(splits[1])
    with pytest.raises(ParameterError) as err:  # neither fastai's call nor a DataBlock's: named, both shown
        Datasets(files, [[PILImage.create]], splits=splits, stores=[])
    said = str(err.value)
    assert said.startswith("Datasets does not take these arguments")
    assert "tfms=[x_tfms, y_tfms]" in said and "blocks=(ImageBlock, CategoryBlock), get_y=parent_label" in said
    # what it shows, with the reader's valid positions, builds the loaders
    from pipekit.data import IndexSplitter

    dsets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=parent_label,
                      splitter=IndexSplitter(splits[1])).datasets(labelled_files)
    assert dsets.dataloaders(bs=16, seed=0).one_batch()[0].shape[0] == 16


def test_ch11_categorize_one_label_and_decoding_a_slice(labelled_files):
    labels = [parent_label(f) for f in labelled_files]
    cat = Categorize()
    cat.setup(labels)
    assert cat(labels[0]) == 0 and cat("7") == 1 and isinstance(cat("7"), int)
    assert cat(np.str_("7")) == 1 and cat(["7", "3"]).tolist() == [1, 0]
    with pytest.raises(DataError, match=r"label\(s\) \['9'\] at rows \[0\] are not in the training labels"):
        cat("9")
    assert Categorize(vocab=["3", "7"])(["7"]).tolist() == [1]  # a vocab given needs no setup
    tls = TfmdLists(labelled_files, [parent_label, Categorize()], splits=GrandparentSplitter()(labelled_files))
    assert tls.decode(tls[:3]) == [labels[0]] * 3 and tls.decode([1, 0]) == ["7", "3"]
    assert tls.tfms(labelled_files[0]) == 0 and tls.tfms(labelled_files[-1]) == 1  # one path is one item


def _tiny_learner():
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    dls = DataLoaders.from_dsets(list(zip(x[:48], y[:48])), list(zip(x[48:], y[48:])), bs=16, seed=0, device="cpu")
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss()), model


def test_ch16_a_misspelt_event_is_said_once_per_class():
    learn, _ = _tiny_learner()
    ran = []

    class Old(Callback):
        def begin_batch(self):
            ran.append("begin")

        def after_batchs(self):
            ran.append("typo")

        def after_batch(self):
            ran.append("after")

    with pytest.warns(UserWarning, match=r"Old: after_batchs \(after_batch\?\), begin_batch \(before_batch\?\) are "
                                         r"not events of the training loop and will not be called"):
        learn.fit(1, 1e-2, cbs=Old())
    assert set(ran) == {"after"}  # the real event runs, the others never
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.fit(1, 1e-2, cbs=Old())  # said once

        class Fine(Callback):
            def before_batch(self):
                pass

            def helper(self):
                pass

        learn.fit(1, 1e-2, cbs=Fine())


def test_ch16_hook_callback_keeps_the_last_training_value_through_validation():
    learn, model = _tiny_learner()
    seen = []

    class MeanOut(HookCallback):
        def hook(self, m, i, o):
            seen.append(float(o.mean()))
            return seen[-1]

    cb = MeanOut(modules=[model[0]])
    learn.fit(1, 1e-2, cbs=cb)
    assert len(seen) == len(learn.dls.train)  # training batches only (run_valid=False)
    assert cb.hooks.stored == [seen[-1]]  # not overwritten by the validation passes
    every = MeanOut(modules=[model[0]], every=2)
    seen.clear()
    learn.fit(1, 1e-2, cbs=every)
    assert len(seen) == -(-len(learn.dls.train) // 2) and every.hooks.stored == [seen[-1]]


def test_ch16_opt_hypers_read_as_in_the_book():
    learn, _ = _tiny_learner()
    learn.fit_one_cycle(1, 1e-2)
    hypers = learn.opt.hypers
    assert len(hypers) == 1 and set(hypers[0]) >= {"lr", "mom", "sqr_mom", "eps", "wd"}
    assert hypers[0]["lr"] == learn.opt.lrs[0] and hypers[0]["mom"] == learn.opt.moms[0]
    learn.opt.set_hyper("wd", 0.1)
    assert learn.opt.hypers[0]["wd"] == 0.1


def test_ch04_show_image_of_a_tensor_goes_where_figures_go(digits, tmp_path):
    from pipekit.vision import show_image

    (tx, _), _ = digits
    three = tx[0].view(28, 28)  # floats in 0..1, as the book's stacked tensors
    ax = show_image(three, title="a 3")
    assert ax.get_title() == "a 3"
    drawn = ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.asarray(drawn), three.numpy(), atol=1e-6)
    assert len(list((tmp_path / "plots").glob("image*.png"))) == 1  # headless: a PNG
    pixels = Image.open(sorted((D.path("mnist_tiny") / "train" / "7").glob("*.png"))[0])
    assert np.array_equal(np.asarray(show_image(pixels).get_images()[0].get_array()), np.asarray(pixels))
    with pytest.raises(ParameterError, match=r"a tensor of shape \(5,\) is not an image"):
        show_image(torch.zeros(5))


def test_path_ls_lists_the_folders_the_book_walks(tmp_path):
    """Chapter 4 starts with ``path.ls()`` and ``(path/'train').ls()``: the data set's folder and every path joined
    onto it list their entries, sorted, with the book's filters."""
    from pipekit.data import DataPath, URLs, untar_data

    path = untar_data(URLs.MNIST_TINY)
    assert [p.name for p in path.ls()] == ["labels.csv", "test", "train", "valid"]
    threes = (path / "train" / "3").ls()
    assert len(threes) == 346 and threes == sorted(threes) and all(isinstance(p, DataPath) for p in threes)
    assert [p.name for p in path.ls(file_exts="csv")] == ["labels.csv"]
    assert len((path / "train" / "3").ls(n_max=5, file_type="image")) == 5
    with pytest.raises(NotADirectoryError, match="labels.csv' is a file"):
        (path / "labels.csv").ls()
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "a.png").write_bytes(b"")
    assert [p.name for p in DataPath(tmp_path).ls(file_type="text")] == ["b.txt"]


def test_ch11_siamese_steps_that_pipekit_builds_otherwise_say_how_and_ch18_decodes_and_overlays(labelled_files):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipekit.vision import Resize, show_image

    files = labelled_files[::20]
    # chapter 11: TfmdLists(...).dataloaders(after_item=...) batches the items; a DataBlock's Datasets takes the
    # DataBlock's item_tfms instead
    tls = TfmdLists(files, [parent_label, Categorize()], splits=[list(range(20)), list(range(20, len(files)))])
    assert tls.dataloaders(bs=4, after_item=[Resize(28)], device="cpu").valid.one_batch()[0].tolist() == tls.valid[:4]
    block = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label, splitter=GrandparentSplitter())
    with pytest.raises(ParameterError, match=r"after_item=, after_batch= is not taken here.*item_tfms="):
        block.datasets(files).dataloaders(after_item=[Resize(28)], after_batch=[])
    with pytest.raises(PipelineStepError, match=r"items are tuples .*one column per part"):
        block.datasets([(files[0], files[1], True), (files[2], files[3], False)])
    # chapter 18: x_dec = dls.train.decode((x,))[0][0], then show_image(x_dec, ctx=ax) under a CAM overlay
    dls = block.dataloaders(files, bs=8, seed=0)
    x, _ = dls.one_batch()
    x_dec = dls.train.decode((x,))[0][0]
    # a batch decoded as a batch, as fastai's: (N, C, H, W) of the 0..255 pixels; decode_batch gives each (H, W, C)
    assert dls.train.decode((x,))[0].shape == x.shape and x_dec.dtype == torch.uint8
    assert np.array_equal(x_dec.permute(1, 2, 0).numpy(), np.round(dls.train.decode_batch((x,))[0][0] * 255))
    _, ax = plt.subplots()
    assert show_image(x_dec, ctx=ax) is ax
    ax.imshow(np.random.default_rng(0).random((7, 7)), alpha=0.6, extent=(0, 28, 28, 0), interpolation="bilinear",
              cmap="magma")
    show_image(x_dec, ax=ax, alpha=0.5)
    assert [im.get_alpha() for im in ax.get_images()] == [None, 0.6, 0.5]
    with pytest.raises(ParameterError, match="ax= and ctx= name the axes"):
        show_image(x_dec, ax=ax, ctx=plt.subplots()[1])
    # the book's own spelling: x_dec = TensorImage(dls.train.decode((x,))[0][0]); x_dec.show(ctx=ax)
    from pipekit.vision import TensorImage

    t_dec = TensorImage(dls.train.decode((x,))[0][0])
    assert type(t_dec) is TensorImage and tuple(t_dec.shape) == (1, 28, 28)  # (C, H, W), as fastai's
    assert torch.equal(t_dec.as_subclass(torch.Tensor), x_dec)
    _, ax2 = plt.subplots()
    assert t_dec.show(ctx=ax2) is ax2
    np.testing.assert_array_equal(ax2.get_images()[0].get_array(), ax.get_images()[0].get_array())
    assert type(t_dec * 2) is TensorImage and TensorImage(x[0]).shape == x[0].shape  # a tensor is taken as it is
    plt.close("all")


def test_show_at_a_datablocks_datasets_draws_the_image_titled_with_its_label(capsys):
    """``show_at(dsets.train, 0)`` and ``dsets.valid.show(dsets.valid[3], ctx=ax)`` on a DataBlock's data sets: the
    image with its label as the title; a text's item prints the text, then its label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    from pipekit.data import ColReader, ColSplitter, GrandparentSplitter, get_image_files, parent_label, show_at
    from pipekit.text import TextBlock

    mnist = D.path("mnist_tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither split
        dsets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                          splitter=GrandparentSplitter()).datasets(mnist)
    _, ax = plt.subplots()
    assert dsets.valid.show(dsets.valid[3], ctx=ax) is ax
    assert ax.get_title() == dsets.valid.items[3].parent.name and ax.get_images()[0].get_array().shape[:2] == (28, 28)
    assert show_at(dsets.train, 0).get_title() == "3"
    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")[770:830]  # valid rows begin at 800
    tds = DataBlock(blocks=(TextBlock.from_df("text"), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=ColSplitter()).datasets(texts)
    capsys.readouterr()
    assert show_at(tds.valid, 0) is None  # printed, not also returned (a notebook would show it twice)
    shown = capsys.readouterr().out.splitlines()
    assert shown[-1] == texts.filter(pl.col("is_valid"))["label"][0] and len(shown) > 1
    plt.close("all")
