"""Text data on imdb_sample: a subword tokenizer given fitted keeps its model (and its own token cache entry), the
classifier loader leaves out a random few texts each epoch rather than the shortest, and ``tkn(texts)`` slices as
the book's list of token lists does."""
import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter
from pipekit.learn import load_learner
from pipekit.text import (AWD_LSTM, Numericalize, TextBlock, TextDataLoaders, TokenizedTexts, Tokenizer,
                          text_classifier_learner)

SMALL = dict(emb_sz=16, n_hid=32, n_layers=1)


@pytest.fixture(scope="module")
def df():
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


@pytest.fixture(scope="module")
def lm_dls(df, tmp_path_factory):
    """A language model's data with a unigram tokenizer trained on 250 reviews."""
    return DataBlock(blocks=TextBlock.from_df("text", is_lm=True, tok=Tokenizer("unigram", vocab_sz=800),
                                              cache_dir=tmp_path_factory.mktemp("lm_cache")),
                     get_x=ColReader("text"), splitter=RandomSplitter(0.1, seed=0)).dataloaders(df.head(250), bs=16,
                                                                                                seed=0)


@pytest.fixture(scope="module")
def clas_df(df):
    """Reviews the language model never saw: 60 training ones and 20 validation ones."""
    return pl.concat([df.filter(~pl.col("is_valid")).tail(60), df.filter(pl.col("is_valid")).tail(20)])


def _clas_dls(clas_df, vocab, tok, cache_dir):
    return DataBlock(blocks=(TextBlock.from_df("text", vocab=vocab, tok=tok, cache_dir=cache_dir), CategoryBlock),
                     get_x=ColReader("text"), get_y=ColReader("label"),
                     splitter=ColSplitter("is_valid")).dataloaders(clas_df, bs=16, seed=0)


# ---------------------------------------------------------------- a fitted tokenizer is used as fitted
def test_a_fitted_subword_tokenizer_splits_the_classifier_texts_as_the_language_model(lm_dls, clas_df, tmp_path):
    lm_tok = lm_dls.blocks[0].tok
    before = lm_tok.fitted_state()["subword_"]
    dls = _clas_dls(clas_df, lm_dls.vocab, lm_tok, tmp_path)
    clf_tok = dls.blocks[0].tok
    assert clf_tok.fitted_state()["subword_"] == before  # the model itself, not one trained on these 60 reviews
    texts = clas_df["text"].to_list()
    assert all(clf_tok.tokenize(t) == lm_tok.tokenize(t) for t in texts)
    ids = np.concatenate([dls.blocks[0].encode_text(t) for t in texts])
    assert float((ids == 0).mean()) < 0.01  # xxunk: the classifier's pieces are the language model's
    # the tokenizer given is left as it was, and TextBlock(tok=...) shows the model before the data is built
    assert lm_tok.fitted_state()["subword_"] == before and lm_dls.blocks[0].tok is lm_tok
    block = TextBlock.from_df("text", tok=lm_tok, cache_dir=False)
    assert block.tok.tokenize(texts[0]) == lm_tok.tokenize(texts[0])
    assert block.clone().tok.tokenize(texts[0]) == lm_tok.tokenize(texts[0])


def test_the_token_cache_never_gives_one_model_the_tokens_of_another(df, clas_df, tmp_path):
    """Two fitted tokenizers of equal settings, trained on different texts, on the same texts and split: each build
    reads only its own model's entry."""
    a, b = Tokenizer("unigram", vocab_sz=600), Tokenizer("unigram", vocab_sz=600)
    a.setup(df["text"][:200])
    b.setup(df["text"][200:400])
    texts = clas_df["text"].to_list()
    assert any(a.tokenize(t) != b.tokenize(t) for t in texts)
    cache = tmp_path / "cache"
    for tok, cached in ((a, False), (b, False), (a, True), (b, True)):
        dls = _clas_dls(clas_df, None, tok, cache)
        block = dls.blocks[0]
        assert block.from_cache_ is cached
        assert block.tok.fitted_state()["subword_"] == tok.fitted_state()["subword_"]
        x, _ = dls.valid.dataset[0]
        row = int(dls.valid.dataset.idxs[0])
        assert block.num.decode(x)[:40] == tok.tokenize(texts[row])[:40]


def test_an_unfitted_subword_tokenizer_trains_on_the_training_texts_only(df, clas_df, tmp_path):
    """The validation reviews carry a made-up word many times: a model trained on them learns longer pieces of
    it."""
    word = "zorblaxian"
    edited = clas_df.with_columns(pl.when(pl.col("is_valid")).then(pl.col("text") + (" " + word) * 40)
                                  .otherwise(pl.col("text")).alias("text"))
    given = Tokenizer("unigram", vocab_sz=600)
    dls = _clas_dls(edited, None, given, tmp_path)
    assert not given.is_fitted  # the block trained a copy
    tok = dls.blocks[0].tok
    assert tok.is_fitted and word not in tok.fitted_state()["subword_"]
    with_valid = Tokenizer("unigram", vocab_sz=600)
    with_valid.setup(edited["text"])  # what training on the validation texts too would give
    assert len(tok.tokenize(word)) > len(with_valid.tokenize(word))


def test_a_classifier_on_the_language_models_tokenizer_exports_and_predicts_the_same(lm_dls, clas_df, tmp_path):
    dls = _clas_dls(clas_df, lm_dls.vocab, lm_dls.blocks[0].tok, False)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=SMALL)
    loaded = load_learner(learn.export(tmp_path / "clf.pipekit"), cpu=True)
    block = loaded.dls.blocks[0]
    assert block.tok.fitted_state()["subword_"] == lm_dls.blocks[0].tok.fitted_state()["subword_"]
    for text in clas_df["text"].to_list()[:5] + ["A zorblaxian film, sooo GOOD!!!"]:
        assert block.tok.tokenize(text) == lm_dls.blocks[0].tok.tokenize(text)
        label, idx, probs = learn.predict(text)
        label2, idx2, probs2 = loaded.predict(text)
        assert label == label2 and int(idx) == int(idx2)
        assert torch.allclose(probs, probs2, atol=1e-6)


# ---------------------------------------------------------------- the classifier loader leaves out random texts
def test_every_training_text_is_in_some_batch_and_the_left_out_ones_change(df):
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=64, seed=0,
                                  cache_dir=False)
    dl = dls.train
    n, bs = len(dls.train_ds), dl.bs
    assert dl.drop_last and n % bs  # 800 reviews: 32 left out of each epoch's 12 batches
    seen = np.zeros(n, int)
    left_out = []
    lens = dl.lengths
    for epoch in range(10):
        plan = dl.batch_plan(epoch)
        flat = np.concatenate(plan)
        assert len(plan) == n // bs and all(len(b) == bs for b in plan) and len(np.unique(flat)) == len(flat)
        assert [b.tolist() for b in plan] == [b.tolist() for b in dl.batch_plan(epoch)]  # same seed and epoch
        out = np.setdiff1d(np.arange(n), flat)
        assert len(out) == n % bs
        left_out.append(set(out.tolist()))
        seen[flat] += 1
        # the batch holding the longest text still comes first, and batches are still sorted by length
        assert int(lens[plan[0]].max()) == int(lens[flat].max())
    assert (seen > 0).all()  # fastai's cut leaves the 32 shortest out of every epoch
    assert len(set(map(frozenset, left_out))) == 10
    shortest = set(np.argsort(lens, kind="stable")[:n % bs].tolist())
    assert all(s != shortest for s in left_out)
    # validation leaves none out, longest first
    valid = np.concatenate(dls.valid.batch_plan(0))
    assert sorted(valid.tolist()) == list(range(len(dls.valid_ds)))
    assert (np.diff(dls.valid.lengths[valid]) <= 0).all()


def test_without_drop_last_every_text_is_in_each_epoch(df):
    dls = TextDataLoaders.from_df(df.head(300), text_col="text", label_col="label", valid_col="is_valid", bs=64,
                                  seed=1, cache_dir=False, drop_last=False)
    dl = dls.train
    flat = np.concatenate(dl.batch_plan(3))
    assert sorted(flat.tolist()) == list(range(len(dls.train_ds)))


# ---------------------------------------------------------------- tkn(texts) slices
@pytest.fixture(scope="module")
def toks200(df):
    return Tokenizer()(df["text"][:200])


def test_tokenized_texts_slice_as_the_books_list(toks200):
    first = toks200[:3]
    assert isinstance(first, TokenizedTexts) and len(first) == 3
    assert list(first) == [toks200[0], toks200[1], toks200[2]]
    assert len(first.ids) == sum(len(toks200[i]) for i in range(3))  # gathered, only those texts' ids
    assert set(first.vocab) == {t for i in range(3) for t in toks200[i]}
    assert list(toks200[::-50]) == [toks200[i] for i in (199, 149, 99, 49)]
    assert list(toks200[[5, -1, 5]]) == [toks200[5], toks200[199], toks200[5]]
    assert list(toks200[np.array([7, 2])]) == [toks200[7], toks200[2]]
    mask = np.zeros(200, bool)
    mask[[1, 10]] = True
    assert list(toks200[mask]) == [toks200[1], toks200[10]]
    assert len(toks200[300:]) == 0 and len(toks200[[]]) == 0
    assert repr(toks200[:3]).startswith("TokenizedTexts(3 texts, ")
    # the book's next step: a vocab from the first texts, as from their token lists
    a, b = Numericalize(min_freq=2), Numericalize(min_freq=2)
    a.setup(toks200[:100])
    b.setup([toks200[i] for i in range(100)])
    assert a.vocab == b.vocab
    assert a(toks200[:5]).to_pylist() == b([toks200[i] for i in range(5)]).to_pylist()


def test_tokenized_texts_bad_positions_name_the_length(toks200):
    for bad in (200, -201, [3, 200], np.array([-300])):
        with pytest.raises(IndexError, match="outside the 200 texts"):
            toks200[bad]
    with pytest.raises(IndexError, match="200 texts"):
        toks200[np.ones(5, bool)]
    with pytest.raises(TypeError, match="not a position"):
        toks200["xxbos"]
    with pytest.raises(TypeError, match="must be ints"):
        toks200[[1.5]]
