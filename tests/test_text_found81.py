"""Text data on imdb_sample: a language model on every review and a classifier on most of them each keep their token
cache entry (neither tokenizes again when the two are built in turn), while editing many texts at a time leaves at
most one older entry; a Hugging Face tokenizer whose ids have gaps is cached; changing ``tok.rules`` changes the
tokens; the vocabulary is padded with xxfake as fastai pads it; training texts without words are named as such."""
import warnings

import numpy as np
import polars as pl
import pytest
import tokenizers

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data.cache import CacheRebuildWarning, cache_usage
from pipekit.text import HFTokenizer, Numericalize, TextBlock, Tokenizer
from pipekit.text.numericalize import FAKE
from pipekit.text.tokenize import SPECIAL_TOKENS


@pytest.fixture(scope="module")
def texts() -> pl.Series:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"].head(200)


def build(texts: pl.Series, cache_dir, tok=None, is_lm=False) -> TextBlock:
    block = TextBlock(tok or Tokenizer(), is_lm=is_lm, min_freq=1, cache_dir=cache_dir)
    block.setup(texts, np.arange(len(texts) * 9 // 10))
    return block


def entries(cache_dir) -> int:
    return cache_usage(cache_dir / "text")[1]


@pytest.mark.parametrize("labelled", [0.8, 0.9])
def test_a_language_model_and_a_classifier_on_most_of_its_texts_both_read_the_cache(texts, tmp_path, labelled):
    """The book's ULMFiT: the language model on every review, the classifier on the labelled ones (here the first
    80% or 90%). Each build kept the other's entry, so after one build of each, both read their tokens back."""
    clas_texts = texts.head(int(len(texts) * labelled))
    assert build(texts, tmp_path, is_lm=True).from_cache_ is False
    assert build(clas_texts, tmp_path).from_cache_ is False
    assert entries(tmp_path) == 2
    for _ in range(2):
        lm, clas = build(texts, tmp_path, is_lm=True), build(clas_texts, tmp_path)
        assert (lm.from_cache_, clas.from_cache_) == (True, True) and entries(tmp_path) == 2
    # and the classifier's ids are those of a build without a cache
    fresh = build(clas_texts, False)
    assert clas.vocab == fresh.vocab and len(clas.vocab) > 1000
    assert clas.setup(clas_texts, np.arange(100)).ids.equals(fresh.setup(clas_texts, np.arange(100)).ids)


@pytest.mark.parametrize("edited", [20, 30])
def test_editing_many_texts_at_a_time_leaves_at_most_one_older_entry(texts, tmp_path, edited):
    """A tenth (or 15%) of the texts edited per rebuild: the older entry is not a copy of the new one, so one stays
    (the entry of another recipe might be), but never more than one, however many edits (the one before it, which
    the kept one replaced, goes); a small edit replaces its entry, and a sample of the texts keeps its own."""
    assert len(texts) == 200
    values = texts.to_list()
    sizes = []
    for round_ in range(4):
        for i in range(round_ * edited, round_ * edited + edited):
            values[i] += f" Edited in round {round_}."
        assert build(pl.Series(values), tmp_path).from_cache_ is False
        sizes.append(entries(tmp_path))
    assert sizes == [1, 2, 2, 2]
    assert build(pl.Series(values), tmp_path).from_cache_ is True
    values[199] += " One more."
    build(pl.Series(values), tmp_path)  # a copy of the newest: replaces it, the one older entry stays
    assert entries(tmp_path) == 2
    build(pl.Series(values[:100]), tmp_path)  # half of the texts: another data set, which leaves the others
    assert entries(tmp_path) == 3


def holed_tokenizer(texts: pl.Series) -> tokenizers.Tokenizer:
    """A word-level tokenizer trained on the reviews with every third token taken out of its vocabulary, as a
    vocabulary pruned after training is: its ids have gaps."""
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tk.train_from_iterator(texts.to_list(), tokenizers.trainers.WordLevelTrainer(special_tokens=["[UNK]"],
                                                                                  show_progress=False))
    vocab = {t: i for t, i in tk.get_vocab().items() if i == 0 or i % 3}
    holed = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    holed.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return holed


def test_a_hugging_face_tokenizer_with_gaps_in_its_ids_is_cached(texts, tmp_path):
    tk = holed_tokenizer(texts)
    assert max(tk.get_vocab().values()) + 1 > tk.get_vocab_size()  # gaps
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRebuildWarning)
        first = build(texts, tmp_path, HFTokenizer(tk))
        second = build(texts, tmp_path, HFTokenizer(tk))
    assert (first.from_cache_, second.from_cache_) == (False, True)
    fresh = build(texts, False, HFTokenizer(tk))
    assert second.vocab == fresh.vocab and len(second.vocab) > 100
    assert second.setup(texts, np.arange(180)).ids.equals(fresh.setup(texts, np.arange(180)).ids)
    # the tokens' ids are the tokenizer's, each token named once
    tt = HFTokenizer(tk, add_bos=False).encode(texts.head(5))
    assert tt.ids.tolist() == [i for t in texts.head(5).to_list() for i in tk.encode(t).ids]
    assert len(set(tt.vocab)) == len(tt.vocab) and all(tt.vocab[i] == t for t, i in tk.get_vocab().items())


def test_setting_rules_on_a_tokenizer_changes_all_its_tokens(texts):
    tok = Tokenizer()
    with_rules = tok(texts)
    tok.rules = False
    assert list(tok(texts)) == list(Tokenizer(rules=False)(texts))
    assert list(tok(texts)) != list(with_rules)
    tok.rules = True
    assert list(tok(texts)) == list(with_rules)


@pytest.mark.parametrize("n_words, length", [(991, 1008), (990, 1000), (10, 24), (7, 24)])
def test_the_vocab_is_padded_as_fastai_pads_it(n_words, length):
    """fastai adds 8 - len % 8 xxfake entries: 8 when the tokens fill a multiple of 8 (9 special tokens + 991 words
    = 1000), so the embedding is as large as the book's for the same texts."""
    num = Numericalize(min_freq=1)
    num.setup([[f"w{i}" for i in range(n_words)]])
    assert len(num.vocab) == length and num.vocab.count(FAKE) == length - len(SPECIAL_TOKENS) - n_words


def test_training_texts_without_words_are_named_as_such(texts):
    with pytest.raises(DataError, match=r"the 3 training texts hold no words .* text column"):
        Numericalize(min_freq=1).setup(Tokenizer()(["", "   ", "\t"]))
    with pytest.raises(DataError, match=r"the 2 training texts hold no words"):  # not even an xxbos
        Numericalize(min_freq=1).setup(Tokenizer(add_bos=False)(["", "  "]))
    blank = pl.Series([" "] * 180 + texts.head(20).to_list())  # the training rows are blank, the others not
    with pytest.raises(DataError, match=r"the 180 training texts hold no words"):
        build(blank, False)
    with pytest.raises(DataError, match="idx selects none of the 200 texts"):
        Numericalize(min_freq=1).setup(Tokenizer()(texts), np.array([], dtype=np.int64))
    # words too rare for min_freq are still told to lower it
    with pytest.raises(DataError, match="lower min_freq"):
        Numericalize(min_freq=1000).setup(Tokenizer()(texts.head(3)))
