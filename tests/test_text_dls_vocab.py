"""A text classifier's ``dls.vocab`` is fastai's ``[text_vocab, classes]``: the vocab of every block that has one, in
block order (fastai 2.8.12's ``TextDataLoaders.from_df`` on imdb_sample gives ``L([tokens, CategoryMap(['negative',
'positive'])])``), so the book's ``dls.vocab[0][:10]`` and ``vocab=dls_lm.vocab`` read tokens. Data with one block
that has a vocab keeps it alone: a language model's tokens, an image classifier's classes. Predictions,
interpretation and exports name the classes from the target alone. Real data: imdb_sample reviews, mnist_tiny.
"""
from __future__ import annotations

import csv

import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import Categorize, CategoryMap, Datasets, GrandparentSplitter, get_text_files, parent_label
from pipekit.data.dataloaders import classes_vocab
from pipekit.learn import ClassificationInterpretation, load_learner
from pipekit.text import SPECIAL_TOKENS, AWD_LSTM, Numericalize, TextDataLoaders, Tokenizer, text_classifier_learner
from pipekit.data import pad_input
from pipekit.vision import ImageDataLoaders

SMALL = dict(emb_sz=16, n_hid=16, n_layers=1)
CLASSES = ["negative", "positive"]


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    df = pd.read_csv(D.path("imdb_sample") / "texts.csv")
    return pd.concat([df[~df.is_valid].head(120), df[df.is_valid].head(40)], ignore_index=True)


@pytest.fixture(scope="module")
def dls(reviews):
    return TextDataLoaders.from_df(reviews, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=42,
                                   cache_dir=False)


@pytest.fixture(scope="module")
def learn(dls):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, seq_len=16, max_len=64, lin_ftrs=[8])
    learn.fit(1, 1e-3)
    return learn


def test_a_text_classifiers_vocab_is_the_tokens_then_the_classes(dls, reviews):
    tokens = dls.blocks[0].vocab
    assert len(dls.vocab) == 2 and dls.vocab[0] == tokens and len(dls.vocab[0]) == len(tokens) > 100
    assert dls.vocab[0][:4] == list(SPECIAL_TOKENS[:4]) == ["xxunk", "xxpad", "xxbos", "xxeos"]
    assert isinstance(dls.vocab[1], CategoryMap) and list(dls.vocab[1]) == CLASSES and dls.vocab[1].o2i["positive"] == 1
    # every reader of the data's vocab follows the one rule: the training loader, the subsets
    for other in (dls.train.vocab, dls.valid.vocab, dls.train_ds.vocab, dls.valid_ds.vocab):
        assert other[0] == tokens and list(other[1]) == CLASSES
    # the size of the outputs and the classes stay the target's
    assert dls.c == 2 and list(classes_vocab(dls)) == CLASSES and list(dls.y_block.vocab) == CLASSES
    # the book's reuse of the vocab: a classifier built with dls.vocab[0] gets the same ids
    some = pd.concat([reviews.iloc[:30], reviews.iloc[120:130]], ignore_index=True)
    again = TextDataLoaders.from_df(some, text_col="text", label_col="label", valid_col="is_valid",
                                    text_vocab=dls.vocab[0], bs=8, cache_dir=False)
    assert again.vocab[0] == tokens and list(again.vocab[1]) == CLASSES


def test_a_trained_text_classifier_predicts_and_is_interpreted_with_the_classes(learn, reviews):
    label, idx, probs = learn.predict(reviews.text.iloc[-1])
    assert label in CLASSES and label == CLASSES[int(idx)] and tuple(probs.shape) == (2,)
    interp = ClassificationInterpretation.from_learner(learn)
    assert interp.vocab == CLASSES and "2 classes" in repr(interp)
    assert interp.confusion_matrix().shape == (2, 2) and int(interp.confusion_matrix().sum()) == 40
    assert all(a in CLASSES and p in CLASSES for a, p, _ in interp.most_confused()) or interp.most_confused() == []


def test_an_exported_text_classifier_loads_with_the_same_vocab(learn, reviews, tmp_path):
    learn.export(tmp_path / "clf.pkl")
    loaded = load_learner(tmp_path / "clf.pkl", cpu=True)
    assert loaded.dls.vocab[0] == learn.dls.vocab[0] and list(loaded.dls.vocab[1]) == CLASSES
    assert loaded.predict(reviews.text.iloc[0])[0] == learn.predict(reviews.text.iloc[0])[0]
    shown = repr(loaded.dls)  # the first tokens and the classes, not every token
    assert "'xxunk'" in shown and "'negative', 'positive'" in shown and len(shown) < 400


def test_a_classifier_of_three_classes_exports(reviews, tmp_path):
    """The export's check of the model's outputs counts the classes, not the two vocabs of ``dls.vocab``."""
    three = reviews.assign(label=[("negative", "positive", "mixed")[i % 3] for i in range(len(reviews))])
    dls3 = TextDataLoaders.from_df(three, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0,
                                   cache_dir=False)
    assert len(dls3.vocab) == 2 and list(dls3.vocab[1]) == ["mixed", "negative", "positive"] and dls3.c == 3
    learn = text_classifier_learner(dls3, AWD_LSTM, config=SMALL, seq_len=16, max_len=64, lin_ftrs=[8])
    learn.export(tmp_path / "three.pkl")
    loaded = load_learner(tmp_path / "three.pkl", cpu=True)
    assert list(loaded.dls.vocab[1]) == ["mixed", "negative", "positive"]
    assert loaded.predict(three.text.iloc[0])[0] in ("mixed", "negative", "positive")


def test_a_language_models_vocab_is_still_its_tokens(reviews):
    dls_lm = TextDataLoaders.from_df(reviews, text_col="text", is_lm=True, valid_col="is_valid", bs=16, seq_len=16,
                                     seed=42, cache_dir=False)
    assert dls_lm.vocab == dls_lm.blocks[0].vocab and dls_lm.vocab[:4] == ["xxunk", "xxpad", "xxbos", "xxeos"]
    assert all(isinstance(t, str) for t in dls_lm.vocab) and dls_lm.train.vocab == dls_lm.vocab


def test_an_image_classifiers_vocab_is_still_its_classes():
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    assert dls.vocab == ["3", "7"] and dls.train.vocab == ["3", "7"] and dls.c == 2
    assert classes_vocab(dls) == ["3", "7"]


def test_a_datasets_of_texts_and_labels_gathers_both_vocabs(tmp_path):
    """fastai's ``Datasets(files, [[Tokenizer, Numericalize], [parent_label, Categorize()]])``: ``dsets.vocab`` is
    ``[tokens, classes]`` and its loaders' ``c`` the number of classes (fastai 2.8.12: 2)."""
    with open(D.path("imdb_sample") / "texts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:60]
    for i, r in enumerate(rows):
        d = tmp_path / ("test" if i % 5 == 0 else "train") / r["label"]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:03d}.txt").write_text(r["text"])
    files = sorted(get_text_files(tmp_path, folders=["train", "test"]))
    dsets = Datasets(files, [[Tokenizer.from_folder(tmp_path), Numericalize], [parent_label, Categorize()]],
                     splits=GrandparentSplitter(valid_name="test")(files))
    assert len(dsets.vocab) == 2 and dsets.vocab[0][:4] == ["xxunk", "xxpad", "xxbos", "xxeos"]
    assert list(dsets.vocab[1]) == CLASSES and list(dsets.train.vocab[1]) == CLASSES
    dls = dsets.dataloaders(bs=8, before_batch=pad_input, device="cpu", seed=0)
    assert dls.vocab[0] == dsets.vocab[0] and list(dls.vocab[1]) == CLASSES
    assert dls.c == 2 and list(classes_vocab(dls)) == CLASSES
    assert isinstance(dls.one_batch()[0], torch.Tensor)
