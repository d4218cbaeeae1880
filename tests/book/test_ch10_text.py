"""Chapter 10 (and chapter 1's IMDB classifier), as a reader writes it: reviews in folders
(``train/<label>/*.txt``, ``valid/<label>/*.txt``, made here from imdb_sample's texts), loaded with
``TextDataLoaders.from_folder``, an AWD-LSTM classifier trained, then a review predicted as a raw string,
as its file and as a Path, the same after export in a fresh process.

CPU-sized: a small AWD-LSTM (the book's 400/1152/3-layer one, pretrained on WikiText, takes hours on a CPU).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl
import pytest
import torch
from book_helpers import fresh_predictions, probs_of

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import (CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_text_files,
                          parent_label)
from pipekit.learn import accuracy
from pipekit.text import AWD_LSTM, TextBlock, TextDataLoaders, text_classifier_learner

SMALL = dict(emb_sz=64, n_hid=128, n_layers=1)


@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("imdb")
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    for i, (label, text, valid) in enumerate(df.iter_rows()):
        folder = root / ("valid" if valid else "train") / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text)
    return root


@pytest.fixture(scope="module")
def learn(imdb, one_torch_thread):
    dls = TextDataLoaders.from_folder(imdb, valid="valid", min_freq=2, bs=32, seed=0, cache_dir=False)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.3, metrics=accuracy, config=SMALL, max_len=200)
    learn.fit_one_cycle(3, 1e-2)
    return learn


def test_reviews_from_folders_beat_the_majority(learn):
    assert learn.dls.vocab[1] == ["negative", "positive"] and len(learn.dls.valid_ds) == 200
    _, targs = learn.get_preds()
    majority = max(float(targs.float().mean()), 1 - float(targs.float().mean()))
    assert learn.recorder.value("accuracy") > majority + 0.05, (learn.recorder.value("accuracy"), majority)


def test_a_raw_string_is_text_and_a_file_is_read(learn, imdb, tmp_path):
    f = sorted((imdb / "valid" / "positive").iterdir())[0]
    text = f.read_text()
    forms = {"raw string": text, "Path": f}
    preds = {k: learn.predict(v) for k, v in forms.items()}
    ref = preds["raw string"]
    assert ref[0] in ("negative", "positive")
    for k, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs_of(ref), atol=1e-6), k
    short = learn.predict("What a wonderful, moving film. I loved every minute of it.")
    assert short[0] in ("negative", "positive") and float(probs_of(short).sum()) == pytest.approx(1.0, abs=1e-5)
    # a str is the text itself, never a file it names (as in fastai): a file's name is refused, pointing to Path
    for name in (str(f), "missing_review.txt"):
        with pytest.raises(DataError, match=r"looks like the name of a text file.*give the file as a path, Path\("):
            learn.predict(name)
    there = fresh_predictions(learn.export(tmp_path / "imdb.pipekit"), [("str", text), ("path", f)], tmp_path)
    for decoded, probs in there:
        assert decoded == ref[0] and np.allclose(probs, probs_of(ref), atol=1e-6)


def test_the_books_datablocks_take_path_and_seq_len(imdb):
    """The chapter's DataBlocks end in ``.dataloaders(path, path=path, bs=128, seq_len=80)`` (the language model)
    and ``seq_len=72`` (the classifier): seq_len is the language model's window; the classifier takes it too."""
    get_imdb = partial(get_text_files, folders=["train", "valid"])
    dls_lm = DataBlock(blocks=TextBlock.from_folder(imdb, is_lm=True, cache_dir=False), get_items=get_imdb,
                       splitter=RandomSplitter(0.1, seed=0)).dataloaders(imdb, path=imdb, bs=16, seq_len=40)
    x, y = dls_lm.one_batch()
    assert x.shape == (16, 40) and torch.equal(x[:, 1:], y[:, :-1])
    assert dls_lm.valid.one_batch()[0].shape == (16, 40)
    assert dls_lm.test_dl(["a short review, read in windows of forty"]).seq_len == 40
    dls_clas = DataBlock(blocks=(TextBlock.from_folder(imdb, vocab=dls_lm.vocab, cache_dir=False), CategoryBlock),
                         get_y=parent_label, get_items=get_imdb, splitter=GrandparentSplitter(valid_name="valid")
                         ).dataloaders(imdb, path=imdb, bs=16, seq_len=72)
    assert dls_clas.vocab[1] == ["negative", "positive"] and dls_clas.train.blocks[0].vocab == dls_lm.vocab
    with pytest.raises(ParameterError, match=r"seq_len=5 sets the window of a language model's batches, and these "
                                             r"blocks make none; give TextBlock\(is_lm=True\)"):
        DataBlock(blocks=(CategoryBlock, CategoryBlock), get_items=get_imdb, get_x=parent_label,
                  get_y=parent_label).dataloaders(imdb, seq_len=5)
    with pytest.raises(ParameterError, match=r"seq_len=0 is not accepted"):
        DataBlock(blocks=TextBlock.from_folder(imdb, is_lm=True), get_items=get_imdb).dataloaders(imdb, seq_len=0)
