"""Data with several category targets (the course's multi-target notebook: ``blocks=(ImageBlock, CategoryBlock,
CategoryBlock), n_inp=1``): a vocab and a size per target, learners that say what to pass, and an export of the
course's combine-loss model that loads and predicts as it did."""
from __future__ import annotations

import warnings

import polars as pl
import pytest
import torch
import torch.nn.functional as F

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, Datasets, GrandparentSplitter, RandomSplitter,
                          RegressionBlock, get_image_files, parent_label)
from pipekit.data.blocks import Categorize
from pipekit.learn import ClassificationInterpretation, Interpretation, Learner, error_rate, load_learner
from pipekit.vision import ImageBlock, Resize, vision_learner

pytestmark = pytest.mark.data


def size(f):
    """A second label of each digit, from its file: 'big' over 300 bytes, else 'small'."""
    return "big" if f.stat().st_size > 300 else "small"


def n_bytes(f):
    return float(f.stat().st_size)


def every_fourth(path):
    return get_image_files(path)[::4]


def blocks_dls(blocks, get_y, bs=32):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=blocks, n_inp=1, get_items=every_fourth, get_y=get_y,
                         splitter=GrandparentSplitter(), item_tfms=Resize(28)).dataloaders(D.path("mnist_tiny"),
                                                                                          bs=bs, seed=0)


@pytest.fixture(scope="module")
def dls():
    return blocks_dls((ImageBlock(cls="L"), CategoryBlock, CategoryBlock), [parent_label, size])


# the course's losses and metrics, over the digit's 2 outputs then the size's 2
def digit_loss(inp, digit, big):
    return F.cross_entropy(inp[:, :2], digit)


def size_loss(inp, digit, big):
    return F.cross_entropy(inp[:, 2:], big)


def combine_loss(inp, digit, big):
    return digit_loss(inp, digit, big) + size_loss(inp, digit, big)


def digit_err(inp, digit, big):
    return error_rate(inp[:, :2], digit)


def size_err(inp, digit, big):
    return error_rate(inp[:, 2:], big)


@pytest.fixture(scope="module")
def learn(dls):
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, n_out=4, loss_func=combine_loss,
                           metrics=(digit_err, size_err, digit_loss, size_loss))
    learn.fit_one_cycle(1, 1e-2)
    return learn


def test_vocab_and_c_are_one_per_target(dls):
    assert dls.vocab == [["3", "7"], ["big", "small"]]  # as fastai 2.8 gives them
    assert dls.c == [2, 2]
    assert dls.train_ds.vocab == dls.valid_ds.vocab == [["3", "7"], ["big", "small"]]
    assert dls.one_batch()[2].shape == (32,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsets = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock, CategoryBlock), n_inp=1,
                          get_items=get_image_files, get_y=[parent_label, size],
                          splitter=GrandparentSplitter()).datasets(D.path("mnist_tiny"))
    assert dsets.vocab == dsets.train.vocab == [["3", "7"], ["big", "small"]]
    # one target: as before
    one = blocks_dls((ImageBlock(cls="L"), CategoryBlock), parent_label)
    assert one.vocab == ["3", "7"] and one.c == 2 and one.train_ds.vocab == ["3", "7"]


def test_a_target_without_vocab_has_a_size_but_no_vocab():
    # fastai: vocab [['3', '7'], ['big', 'small']], c [2, 1, 2]
    dls = blocks_dls((ImageBlock(cls="L"), CategoryBlock, RegressionBlock, CategoryBlock), [parent_label, n_bytes, size])
    assert dls.vocab == [["3", "7"], ["big", "small"]]
    assert dls.c == [2, 1, 2]


def test_mid_level_datasets_of_several_targets():
    items = get_image_files(D.path("mnist_tiny") / "train")[::20]
    dsets = Datasets(items, [[lambda f: f.name], [parent_label, Categorize()], [size, Categorize()]], n_inp=1)
    assert dsets.vocab == [["3", "7"], ["big", "small"]]
    assert Datasets(items, [[lambda f: f.name], [parent_label, Categorize()]]).vocab == ["3", "7"]


def test_learners_without_n_out_or_loss_say_what_to_pass(dls):
    with pytest.raises(ParameterError, match=r"n_out and loss_func were not given and the data has 2 targets .*"
                                             r"n_out=4 \(the sum of the targets' sizes \[2, 2\]\).*"
                                             r"F.cross_entropy\(pred\[:, 2:4\], y1\)"):
        vision_learner(dls, "simple_cnn", pretrained=False)
    with pytest.raises(ParameterError, match=r"n_out was not given .* Pass n_out=4"):
        vision_learner(dls, "simple_cnn", pretrained=False, loss_func=combine_loss)
    with pytest.raises(ParameterError, match=r"vision_learner: loss_func was not given .*loss\(pred, y0, y1\)"):
        vision_learner(dls, "simple_cnn", pretrained=False, n_out=4)
    with pytest.raises(ParameterError, match=r"Learner: loss_func was not given and the data has 2 targets"):
        Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 4)))


def test_text_classifier_without_n_out_says_what_to_pass():
    from pipekit.text import AWD_LSTM, TextBlock, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(60)
    df = df.with_columns(pl.when(pl.col("text").str.len_chars() > 1000).then(pl.lit("long"))
                         .otherwise(pl.lit("short")).alias("length"))
    dls = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), CategoryBlock, CategoryBlock), n_inp=1,
                    get_x=ColReader("text"), get_y=[ColReader("label"), ColReader("length")],
                    splitter=RandomSplitter(0.2, seed=0)).dataloaders(df, bs=8, seed=0)
    assert dls.vocab[1:] == [["negative", "positive"], ["long", "short"]] and dls.c == [2, 2]
    with pytest.raises(ParameterError, match=r"text_classifier_learner: n_out and loss_func were not given .*n_out=4"):
        text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=dict(emb_sz=8, n_hid=8, n_layers=1))


def test_combine_loss_learner_trains_exports_and_predicts_as_before(learn, dls, tmp_path):
    train_loss, valid_loss, digit_e, size_e, digit_l, size_l = learn.recorder.values[-1]  # the user's 4 metrics
    assert 0 <= digit_e <= 1 and 0 <= size_e <= 1 and valid_loss == pytest.approx(digit_l + size_l, rel=1e-4)
    items = list(dls.valid_ds.items)[:40]
    preds = learn.get_preds(dl=dls.test_dl(items))[0]
    assert preds.shape == (40, 4)
    # predict reads each target's label from its own two outputs (the loss is the user's: nothing is activated)
    for i, item in enumerate(items):
        labels, idxs, outputs = learn.predict(item)
        torch.testing.assert_close(outputs, preds[i])
        assert idxs.tolist() == [int(preds[i, :2].argmax()), int(preds[i, 2:].argmax())]
        assert labels == (["3", "7"][idxs[0]], ["big", "small"][idxs[1]])
    item = items[0]
    label, dec, probs = learn.predict(item)
    loaded = load_learner(learn.export(tmp_path / "multi.pipekit"))
    assert loaded.dls.vocab == [["3", "7"], ["big", "small"]] and loaded.dls.c == [2, 2]
    torch.testing.assert_close(loaded.get_preds(dl=loaded.dls.test_dl(items))[0], preds)
    label2, dec2, probs2 = loaded.predict(item)
    assert label2 == label and label[0] in ("3", "7") and label[1] in ("big", "small")
    torch.testing.assert_close(dec2, dec)
    torch.testing.assert_close(probs2, probs)
    # the loss was the user's: scoring asks for it back, and with it the loaded learner scores as the exported one
    # (the labels read by the training loaders' getters, which the export holds only by name)
    labelled = dls.test_dl(items, with_labels=True)
    with pytest.raises(ParameterError, match="set learn.loss_func to that function again"):
        loaded.validate(dl=labelled)
    loaded.loss_func = combine_loss
    assert loaded.validate(dl=labelled)[0] == pytest.approx(learn.validate(dl=labelled)[0], rel=1e-5)
    again = load_learner(loaded.export(tmp_path / "again.pipekit"))  # a loaded learner exports again
    torch.testing.assert_close(again.predict(item)[2], probs)


def test_classification_interpretation_says_it_takes_one_target(learn):
    with pytest.raises(ParameterError, match=r"ClassificationInterpretation takes one target, and this learner's "
                                             r"data has 2 \(CategoryBlock \['3', '7'\], CategoryBlock "
                                             r"\['big', 'small'\]\).*preds\[:, :2\]"):
        ClassificationInterpretation.from_learner(learn)


def test_interpretation_ranks_items_by_a_loss_of_several_targets(learn, tmp_path):
    def per_item_loss(inp, digit, big, reduction="mean"):
        return F.cross_entropy(inp[:, :2], digit, reduction=reduction) + F.cross_entropy(inp[:, 2:], big,
                                                                                        reduction=reduction)

    old = learn.loss_func
    learn.loss_func = per_item_loss
    try:
        interp = Interpretation.from_learner(learn)
    finally:
        learn.loss_func = old
    assert type(interp) is Interpretation and "2 targets" in repr(interp)
    losses, idxs = interp.top_losses(3)
    assert bool(losses[0] >= losses[1] >= losses[2]) and len(interp.losses) == len(learn.dls.valid_ds)
    assert interp.plot_top_losses(3, path=tmp_path / "top.png").exists()


def test_each_loader_has_the_data_vocab(dls):
    assert dls.train.vocab == dls.valid.vocab == dls.vocab == [["3", "7"], ["big", "small"]]
