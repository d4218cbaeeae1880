"""What get_preds, show_results and tta give back, shaped as fastai's: a language model's predictions as one
tensor of whole streams, its results as input / target / pred, and ``tta(beta=None)`` as ``((aug, plain), targs)``."""
from __future__ import annotations

import warnings

import polars as pl
import pytest
import torch

import pipekit
import pipekit.data.plotting as plotting
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (CategoryBlock, ColReader, ColSplitter, DataBlock, GrandparentSplitter, RandomSplitter,
                          get_image_files, parent_label)
from pipekit.learn import Learner, accuracy
from pipekit.text import AWD_LSTM, TextBlock, TextDataLoaders, language_model_learner, text_classifier_learner
from pipekit.vision import ImageBlock, aug_transforms, simple_cnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(emb_sz=16, n_hid=32, n_layers=1)
BS, SEQ_LEN = 4, 50


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(40), df.filter(pl.col("is_valid")).head(16)])


@pytest.fixture(scope="module")
def lm_learn(imdb, tmp_path_factory):
    db = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=tmp_path_factory.mktemp("lm")),
                   get_x=ColReader("text"), splitter=RandomSplitter(0.2, seed=0))
    dls = db.dataloaders(imdb, bs=BS, seq_len=SEQ_LEN, seed=0, num_workers=0)
    pipekit.set_seed(0)
    learn = language_model_learner(dls, AWD_LSTM, config=TINY, pretrained=False, metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    return learn


def test_language_model_get_preds_gives_whole_streams_as_fastai_does(lm_learn):
    dl = lm_learn.dls.valid
    batches = list(dl)
    assert len(batches) > 2 and batches[-1][0].shape[1] < SEQ_LEN  # a short last window: no equal-sized batches
    vocab_sz = len(lm_learn.dls.blocks[0].vocab)
    inputs, preds, targs, decoded, losses = lm_learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
    # one tensor each: row r is stream r, the windows joined along the sequence (fastai's concat_dim=1)
    assert isinstance(preds, torch.Tensor) and preds.shape == (BS, dl.stream_len, vocab_sz)
    assert targs.shape == inputs.shape == decoded.shape == (BS, dl.stream_len)
    assert torch.equal(targs, torch.cat([y for _, y in batches], 1))
    assert torch.equal(inputs, torch.cat([x for x, _ in batches], 1))
    assert torch.equal(inputs[:, 1:], targs[:, :-1])  # each target is the next input token
    torch.testing.assert_close(preds.sum(-1), torch.ones(BS, dl.stream_len))  # probabilities of the next token
    assert torch.equal(decoded, preds.argmax(-1))
    assert losses.shape == (BS, len(batches))  # the mean loss of each window of each stream
    # predictions line up with the targets: their accuracy is the one the learner reports (every token counts)
    acc = float((preds.argmax(-1) == targs).float().mean())
    assert acc == pytest.approx(lm_learn.recorder.values[-1][-1], abs=1e-6)
    loss, valid_acc = lm_learn.validate()
    assert acc == pytest.approx(valid_acc, abs=1e-6) and loss == pytest.approx(lm_learn.recorder.values[-1][1])
    # the book's get_preds(dl=[batch]): that batch's windows
    p1, t1 = lm_learn.get_preds(dl=[batches[0]])
    assert p1.shape == (BS, SEQ_LEN, vocab_sz) and torch.equal(t1, batches[0][1])
    torch.testing.assert_close(p1, preds[:, :SEQ_LEN])  # the hidden state is reset before each pass


def test_language_model_show_results_shows_input_target_and_pred(lm_learn, tmp_path, monkeypatch):
    out = lm_learn.show_results(max_n=2, path=tmp_path / "lm.png")
    assert out.exists() and out.stat().st_size > 1000
    shown: list[dict] = []
    monkeypatch.setattr(plotting, "plot_mode", lambda: "inline")
    monkeypatch.setattr(plotting, "show_text_table", lambda columns, **kw: shown.append(columns))
    assert lm_learn.show_results(max_n=BS) is None
    (columns,) = shown
    assert list(columns) == ["input", "target", "pred"] and all(len(v) == BS for v in columns.values())
    block, (x, y) = lm_learn.dls.blocks[0], lm_learn.dls.valid.one_batch()
    assert columns["input"] == [block.decode(r) for r in x] and columns["target"] == [block.decode(r) for r in y]
    # the predicted text is the most likely next token at each position of the first window
    dec = lm_learn.get_preds(with_decoded=True)[2][:, :SEQ_LEN]
    assert columns["pred"] == [block.decode(r) for r in dec]
    with pytest.raises(ParameterError, match=r"3 columns \(input, target, pred\)"):
        lm_learn.show_results(ncols=2)
    gen = lm_learn.predict("This movie was", n_words=4, seed=0)
    assert gen.startswith("This movie was") and len(gen.split()) > 3


def test_language_model_from_text_dataloaders_gets_tensors(imdb, tmp_path):
    dls = TextDataLoaders.from_df(imdb, text_col="text", is_lm=True, valid_pct=0.2, seed=0, bs=BS, seq_len=SEQ_LEN,
                                  cache_dir=tmp_path, num_workers=0)
    learn = language_model_learner(dls, AWD_LSTM, config=TINY, pretrained=False, metrics=accuracy)
    preds, targs = learn.get_preds()
    n = dls.valid.stream_len
    assert preds.shape == (BS, n, len(dls.blocks[0].vocab)) and targs.shape == (BS, n)
    assert float((preds.argmax(-1) == targs).float().mean()) == pytest.approx(learn.validate()[1], abs=1e-6)
    assert learn.show_results(max_n=1, path=tmp_path / "r.png").exists()


def test_text_classifier_preds_validate_predict_and_show_results(imdb, tmp_path):
    db = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), CategoryBlock), get_x=ColReader("text"),
                   get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    dls = db.dataloaders(imdb, bs=8, seed=0, num_workers=0)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=TINY, pretrained=False, metrics=accuracy)
    preds, targs, dec = learn.get_preds(with_decoded=True)
    assert preds.shape == (16, 2) and targs.shape == dec.shape == (16,) and torch.equal(dec, preds.argmax(1))
    assert float((dec == targs).float().mean()) == pytest.approx(learn.validate()[1], abs=1e-6)
    label, idx, probs = learn.predict(imdb["text"][0])
    assert label in ("negative", "positive") and probs.shape == (2,)
    assert learn.show_results(max_n=2, path=tmp_path / "clas.png").exists()


@pytest.fixture(scope="module")
def mnist_learn():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::10],
                       get_y=parent_label, splitter=GrandparentSplitter(), batch_tfms=aug_transforms())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=16, seed=0, device="cpu", num_workers=0)
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(n_in=1, n_out=2), metrics=accuracy)


def test_tta_without_beta_gives_the_augmented_and_the_plain_predictions(mnist_learn):
    plain_preds, plain_targs = mnist_learn.get_preds()
    (aug, plain), targs = mnist_learn.tta(n=2, beta=None)
    assert torch.equal(plain, plain_preds) and torch.equal(targs, plain_targs)
    assert aug.shape == plain.shape == (len(mnist_learn.dls.valid.dataset), 2)
    assert not torch.allclose(aug, plain, atol=1e-4)  # the augmentation was applied
    # the other betas blend the same two, as before
    blended, blended_targs = mnist_learn.tta(n=2)
    torch.testing.assert_close(blended, torch.lerp(aug, plain, 0.25))
    assert torch.equal(blended_targs, targs)
    torch.testing.assert_close(mnist_learn.tta(n=2, beta=1.0)[0], plain)
    (aug_max, plain2), _ = mnist_learn.tta(n=2, beta=None, use_max=True)
    assert torch.equal(plain2, plain) and bool((aug_max >= aug - 1e-6).all())
    torch.testing.assert_close(mnist_learn.tta(n=2, beta=0.5, use_max=True)[0], torch.lerp(aug_max, plain, 0.5))
