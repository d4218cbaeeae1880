"""A classifier given a language model's vocabulary (``TextBlock.from_df('text', vocab=dls_lm.vocab)``) on the
imdb_sample reviews: ``Numericalize.setup`` warns when most training words are not in it (the vocabulary of a subword
language model, the texts split into words) and names the language model's tokenizer; and the case markers of
ALL-CAPS contractions (``DON'T``)."""
from __future__ import annotations

import warnings

import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter
from pipekit.text import Numericalize, SubwordTokenizer, TextBlock, Tokenizer, WordTokenizer, defaults


@pytest.fixture(scope="module")
def df() -> pl.DataFrame:
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(100), df.filter(pl.col("is_valid")).head(30)])


def _lm(df: pl.DataFrame, tok=None):
    return DataBlock(blocks=TextBlock.from_df("text", is_lm=True, tok=tok), get_x=ColReader("text"),
                     splitter=RandomSplitter(0.1, seed=42)).dataloaders(df, bs=16, seq_len=40, seed=42)


def _clf(df: pl.DataFrame, vocab, tok=None):
    """The classifier's loaders, the warnings their building gave, and the share of xxunk in a batch's tokens."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dls = DataBlock(blocks=(TextBlock.from_df("text", vocab=vocab, tok=tok), CategoryBlock),
                        get_x=ColReader("text"), get_y=ColReader("label"),
                        splitter=ColSplitter("is_valid")).dataloaders(df, bs=16, seed=0)
    xb, _ = dls.one_batch()
    words = xb[xb != 1]
    return dls, [str(w.message) for w in caught if "Numericalize" in str(w.message)], (words == 0).float().mean().item()


def test_a_subword_lm_vocab_given_to_a_word_classifier_warns_and_names_the_lm_tokenizer(df):
    dls_lm = _lm(df, SubwordTokenizer(vocab_sz=500))
    _, said, unk = _clf(df, dls_lm.vocab)
    assert unk > 0.5  # the reviews split into words: most are not among the model's pieces
    assert len(said) == 1, said
    assert "not in the vocabulary given" in said[0] and "subword pieces starting with '\u2581'" in said[0]
    assert "tok=dls_lm.blocks[0].tok" in said[0]
    # the fix it names: the classifier's texts split by the language model's own tokenizer
    _, said, unk = _clf(df, dls_lm.vocab, tok=dls_lm.blocks[0].tok)
    assert said == [] and unk < 0.01


def test_a_word_lm_vocab_given_to_a_word_classifier_does_not_warn(df):
    dls_lm = _lm(df)
    _, said, unk = _clf(df, dls_lm.vocab)
    assert said == [] and 0 < unk < 0.5  # words of the validation reviews the model never saw


def test_numericalize_given_a_vocab_counts_the_training_texts_only(df):
    texts = df["text"].to_list()
    sub = Tokenizer(SubwordTokenizer(vocab_sz=300))
    sub.setup(texts[:100])
    lm_num = Numericalize(min_freq=1)
    lm_num.setup(sub(texts[:100]))
    mixed = sub(texts[:3])  # the model's pieces, ...
    words = Tokenizer()(texts[100:])                # ... and texts split into words
    both = [*mixed, *words]
    for idx, warned in (([0, 1, 2], False), (list(range(3, len(both))), True), (None, True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            num = Numericalize(lm_num.vocab)
            num.setup(both, idx)
        assert any("not in the vocabulary given" in str(w.message) for w in caught) == warned, idx
        assert num.vocab == lm_num.vocab  # kept as given


# fastai 2.8.12's Tokenizer(WordTokenizer()) on these texts: the contraction of an ALL-CAPS word has no marker
FASTAI_CAPS = {
    "DON'T": ["xxbos", "xxup", "do", "n't"],
    "I DON'T KNOW": ["xxbos", "i", "xxup", "do", "n't", "xxup", "know"],
    "CAN'T": ["xxbos", "xxup", "ca", "n't"],
    "WON'T": ["xxbos", "xxup", "wo", "n't"],
    "ISN'T it": ["xxbos", "xxup", "is", "n't", "it"],
    "DOESN'T": ["xxbos", "xxup", "does", "n't"],
    "DON'T!!": ["xxbos", "xxup", "do", "n't", "!", "!"],
    "IT'S": ["xxbos", "xxup", "it", "'s"],
    "THEY'LL": ["xxbos", "xxup", "they", "'ll"],
    "Don't": ["xxbos", "xxmaj", "do", "n't"],
}


@pytest.mark.parametrize("text", list(FASTAI_CAPS))
def test_all_caps_contractions_tokenize_as_fastai_and_decode_back(text):
    tkn = Tokenizer(WordTokenizer())
    toks = tkn(text)
    assert toks == FASTAI_CAPS[text]
    assert tkn.decode(toks) == text
    t = text
    for rule in defaults.text_proc_rules:  # the rules one function each give the same tokens
        t = rule(t)
    assert t.split() == toks
