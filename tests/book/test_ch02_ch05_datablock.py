"""Chapters 2 and 5, as a reader writes them, on a folder of the reader's own photos (cats and dogs copied
from dogscats into ``pets/cats`` and ``pets/dogs``):

- chapter 2: a ``DataBlock`` labelled by folder, changed with ``.new(item_tfms=RandomResizedCrop(...),
  batch_tfms=aug_transforms())``, trained, read through a confusion matrix, exported, loaded back with
  ``load_learner`` and asked about a photo;
- chapter 5: labels from the file name with a regular expression, ``summary`` to see the steps,
  ``lr_find(suggest_funcs=(minimum, steep))``, then training with discriminative learning rates.

CPU-sized: 320 photos at 32-40 pixels and ``simple_cnn``.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from book_helpers import probs_of

import pipekit
import pipekit.datasets as D
from pipekit.data import (CategoryBlock, DataBlock, FileName, Pipe, RandomSplitter, RegexLabeller, get_image_files,
                          parent_label)
from pipekit.learn import ClassificationInterpretation, error_rate, load_learner, minimum, steep
from pipekit.vision import (ImageBlock, ImageDataLoaders, PadMode, RandomResizedCrop, Resize, ResizeMethod,
                            aug_transforms, vision_learner)


@pytest.fixture(scope="module")
def pets(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("pets")
    for kind in ("cats", "dogs"):
        (root / kind).mkdir()
        for f in sorted((D.path("dogscats") / "train" / kind).iterdir())[:160]:
            shutil.copy(f, root / kind / f.name)
    return root


def test_ch02_datablock_new_train_interpret_export(pets, tmp_path):
    bears = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(valid_pct=0.2, seed=42), get_y=parent_label, item_tfms=Resize(40))
    bears = bears.new(item_tfms=RandomResizedCrop(40, min_scale=0.5), batch_tfms=aug_transforms(size=32))
    assert isinstance(bears.item_tfms, RandomResizedCrop)
    dls = bears.dataloaders(pets, bs=32, seed=0)
    assert dls.vocab == ["cats", "dogs"] and len(dls.valid_ds) == 64
    # the random crops change from epoch to epoch; the validation set always sees the same pictures
    first, again = next(iter(dls.train))[0], next(iter(dls.train))[0]
    assert first.shape == (32, 3, 32, 32) and not torch.equal(first, again)
    assert torch.equal(next(iter(dls.valid))[0], next(iter(dls.valid))[0])
    assert dls.show_batch(max_n=4).stat().st_size > 1000  # a PNG when there is no display

    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", metrics=error_rate)
    learn.fine_tune(2, base_lr=3e-3)
    interp = ClassificationInterpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.sum() == 64 and (1 - np.trace(cm) / cm.sum()) == pytest.approx(learn.recorder.value("error_rate"))
    for actual, predicted, count in interp.most_confused(min_val=1):
        assert cm[dls.vocab.index(actual), dls.vocab.index(predicted)] == count and actual != predicted
    # the chapter's own spellings of the pictures
    assert interp.plot_top_losses(5, nrows=1).stat().st_size > 1000
    assert interp.plot_confusion_matrix(figsize=(12, 12), dpi=60).stat().st_size > 1000

    learn.export(tmp_path / "export.pipekit")
    learn_inf = load_learner(tmp_path / "export.pipekit")
    assert learn_inf.dls.vocab == ["cats", "dogs"]
    photo = sorted((D.path("dogscats") / "valid" / "dogs").iterdir())[0]
    mine, theirs = learn.predict(photo), learn_inf.predict(photo)
    assert theirs[0] == mine[0] and np.allclose(probs_of(theirs), probs_of(mine), atol=1e-6)


def test_ch05_regex_labels_summary_lr_find_discriminative_rates(pets):
    pat = r"^(.+)\.\d+\.jpg$"
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                       splitter=RandomSplitter(seed=42), get_y=Pipe(FileName(), RegexLabeller(pat)),
                       item_tfms=Resize(48), batch_tfms=aug_transforms(size=32, min_scale=0.75))
    text = dblock.summary(pets, show=False)
    for step in ("Collecting items: 320 rows", "RegexLabeller", "Resize", "BatchAugment"):
        assert step in text, step
    dls = dblock.dataloaders(pets, bs=32, seed=0)
    assert dls.vocab == ["cat", "dog"]
    # chapter 1's one-line spelling of the same thing: the same labels, split and validation batch
    dls_re = ImageDataLoaders.from_name_re(pets, get_image_files(pets), pat, valid_pct=0.2, seed=42,
                                           item_tfms=Resize(48), batch_tfms=aug_transforms(size=32, min_scale=0.75),
                                           bs=32)
    assert dls_re.vocab == dls.vocab and len(dls_re.valid_ds) == len(dls.valid_ds) == 64
    (xb_re, yb_re), (xb, yb) = next(iter(dls_re.valid)), next(iter(dls.valid))
    assert torch.equal(xb_re, xb) and torch.equal(yb_re, yb)

    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", metrics=error_rate)
    untrained = learn.validate()[0]
    lr_min, lr_steep = learn.lr_find(suggest_funcs=(minimum, steep), num_it=40, show_plot=False)
    # within the sweep (1e-7 to 10), minimum's a tenth of it: on 256 images the curve is flat until it diverges
    assert 1e-8 <= lr_min < 10 and 1e-7 <= lr_steep < 10
    learn.fit_one_cycle(2, 3e-3)
    learn.unfreeze()
    learn.fit_one_cycle(1, lr_max=slice(1e-5, 1e-3))
    body_lr, head_lr = learn.recorder.group_lrs[len(learn.recorder.lrs) // 3]  # one-cycle's warm-up, both groups
    assert head_lr == pytest.approx(100 * body_lr)  # the body learns at the slice's lower end
    losses = np.asarray(learn.recorder.losses)
    assert np.isfinite(losses).all() and learn.validate()[0] < untrained  # it learned


def test_ch02_resize_methods_and_show_batch_as_the_book_spells_them(pets):
    import matplotlib.pyplot as plt
    from PIL import Image

    bears = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(valid_pct=0.2, seed=42), get_y=parent_label, item_tfms=Resize(40))
    squish = bears.new(item_tfms=Resize(40, ResizeMethod.Squish))
    pad = bears.new(item_tfms=Resize(40, ResizeMethod.Pad, pad_mode=PadMode.Zeros))
    assert (squish.item_tfms.method, pad.item_tfms.method, pad.item_tfms.pad_mode) == ("squish", "pad", "zeros")
    dls = pad.dataloaders(pets, bs=16, seed=0)
    shown = dls.valid.show_batch(max_n=4, nrows=1)  # one row of four
    assert Image.open(shown).size[0] > 2.5 * Image.open(shown).size[1]
    # the same photo four times, each with its own augmentation
    aug = bears.new(item_tfms=Resize(48), batch_tfms=aug_transforms(size=32, mult=2)).dataloaders(pets, bs=16, seed=0)
    drawn = []
    real = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn.append([ax.images[0].get_array().copy() for ax in fig.axes if ax.images])
        return real(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        aug.train.show_batch(max_n=4, nrows=2, unique=True)
        aug.show_batch(max_n=4, nrows=2)
    finally:
        plt.Figure.savefig = real
    unique, plain = drawn
    assert len(unique) == len(plain) == 4
    assert all(not np.array_equal(unique[0], u) for u in unique[1:])  # other augmentations of one photo
    # of the same photo: their means sit much closer together than those of four different photos
    spread = lambda ims: np.std([float(np.asarray(i, dtype=float).mean()) for i in ims])  # noqa: E731
    assert spread(unique) < spread(plain)


def test_a_saved_datablock_keeps_pipekits_own_item_finder(tmp_path):
    """A DataBlock saved with pipekit.save keeps get_items=get_image_files (pipekit's own function, named in the
    file), so the loaded recipe builds the same loaders from the folder; a user's own finder is still left out."""
    from pipekit.data import GrandparentSplitter, get_text_files, parent_label

    mnist = D.path("mnist_tiny")
    db = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                   splitter=GrandparentSplitter())
    loaded = pipekit.load(pipekit.save(db, tmp_path / "recipe.pipekit"))
    assert loaded.get_items is get_image_files
    a, b = db.dataloaders(mnist, bs=8, seed=0), loaded.dataloaders(mnist, bs=8, seed=0)
    assert len(a.train_ds) == len(b.train_ds) == 709 and torch.equal(a.one_batch()[0], b.one_batch()[0])
    texts = DataBlock(blocks=(CategoryBlock,), get_items=get_text_files)
    assert pipekit.load(pipekit.save(texts, tmp_path / "texts.pipekit")).get_items is get_text_files
    # a list of files given to a recipe that finds its own is refused with the fix (it was a TypeError on a list)
    with pytest.raises(ValueError, match=r"get_items=get_image_files finds the files in a folder, "
                                       r"and the source is already a list of 1428 files"):
        loaded.dataloaders(get_image_files(mnist))
    mine = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p), get_y=parent_label)
    assert pipekit.load(pipekit.save(mine, tmp_path / "mine.pipekit")).get_items is None
