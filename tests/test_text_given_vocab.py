"""A classifier given a language model's vocabulary (``TextBlock.from_df('text', vocab=dls_lm.vocab)``) on the
imdb_sample reviews: ``Numericalize.setup`` warns when most training words are not in it, naming the language model's
tokenizer when the vocabulary holds another tokenizer's tokens (a subword language model's pieces, the texts split into
words) and saying it is small or learned on other texts when it holds words; it checks what it is given as it does
without a vocabulary. The case markers of ALL-CAPS contractions (``DON'T``) and their decoding (``WOULDN'T'VE``), and
the rules version a tokenizer records, so a recipe written under other rules warns as it is read."""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter
from pipekit.text import SPECIAL_TOKENS, Numericalize, SubwordTokenizer, TextBlock, Tokenizer, WordTokenizer, defaults


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
    assert "tok=dls_lm.blocks[0].tok" in said[0] and "another tokenizer" in said[0]
    # the fix named for any block, not one column of one name
    assert "TextBlock.from_df(..., vocab=dls_lm.vocab" in said[0] and "from_folder(..., tok=...)" in said[0]
    assert "from_df('text'" not in said[0]
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


def _warned(f, *args):
    """What ``f(*args)`` returns, and the messages of the pipekit warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = f(*args)
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize("n_texts", [2, 5])
def test_a_word_vocab_learned_on_few_texts_is_called_small_not_another_tokenizers(df, n_texts):
    # both the language model's vocabulary and the classifier's texts are words of the word tokenizer: nothing says
    # the tokenizers differ, so the warning names the vocabulary's size and texts, and the fix that fits
    tt = Tokenizer().encode(df["text"])
    lm = Numericalize()
    _warned(lm.setup, tt, list(range(n_texts)))  # what the vocabulary learned on few texts leaves out, said there
    num = Numericalize(lm.vocab)
    _, said = _warned(num.setup, tt, list(range(n_texts, 100)))
    assert len(said) == 1, said
    assert "not in the vocabulary given" in said[0] and "small or was learned on other texts" in said[0]
    assert "on more texts, or on these texts too" in said[0]
    assert "another tokenizer" not in said[0] and "tok=" not in said[0]
    assert num.vocab == lm.vocab


def test_a_vocab_of_cased_words_given_to_lower_cased_words_names_the_tokenizer():
    # a vocabulary of words with their capitals (a tokenizer without the rules), the texts' words lower-cased with
    # case markers (the rules): split by another tokenizer, and so named
    num = Numericalize(list(SPECIAL_TOKENS) + ["The", "Good", "Film", "Bad"])
    _, said = _warned(num.setup, [["xxbos", "xxmaj", "the", "xxup", "good", "film"], ["xxbos", "bad", "film"]])
    assert len(said) == 1 and "another tokenizer" in said[0], said
    assert "its tokens are words, capitals kept, these texts' words, lower-cased" in said[0]
    assert "tok=dls_lm.blocks[0].tok" in said[0]


@pytest.mark.parametrize("given, match", [
    (["good"], "one text's tokens"),                        # one text's tokens, not one list per text
    ([[9, 10]], "token 0 of text 0 is 9, not a str"),       # ids, not tokens
    (None, "got NoneType"),
    ([np.array(["good", "film"])], "text 0 is a ndarray"),
])
def test_setup_checks_what_it_is_given_the_same_with_a_vocab_and_without(given, match):
    errors = []
    for num in (Numericalize(min_freq=1), Numericalize(list(SPECIAL_TOKENS) + ["good", "film"])):
        with pytest.raises(ParameterError, match=match) as e:
            num.setup(given)
        errors.append(str(e.value))
    assert errors[0] == errors[1]


# a word after its contractions: each written in capitals when the word is ALL-CAPS
@pytest.mark.parametrize("text", ["WOULDN'T'VE", "I WOULDN'T'VE known", "YOU'D'VE SEEN", "Wouldn't've", "YOU'VE"])
def test_chained_contractions_of_an_all_caps_word_decode_in_capitals(text):
    tkn = Tokenizer()
    toks = tkn(text)
    assert tkn.decode(toks) == text
    if text == "WOULDN'T'VE":
        assert toks == ["xxbos", "xxup", "would", "n't", "'ve"]
    # a mark between them ends the ALL-CAPS word: the contraction after it is lower-case
    assert tkn.decode(["xxbos", "xxup", "do", "n't", ",", "'ve"]) == "DON'T,'ve"


# one case-marker decision for the tokenizer and the rules one function each
def test_replace_all_caps_and_replace_maj_mark_each_piece_as_the_tokenizer_does(df):
    from pipekit.text.rules import fix_html, replace_all_caps, replace_maj, split_pieces
    from pipekit.text.tokenize import apply_rules

    pieces = {p for text in df["text"].to_list() for p in split_pieces(fix_html(text)).split()}
    pieces |= {"A1", "I", "N'T", "DO", "McDonald", "ÜBER", "Éa", "X2"}
    marked = 0
    for p in pieces:
        ruled = apply_rules(p)
        marker = ruled[0] if ruled[0] in ("xxup", "xxmaj") else None
        marked += marker is not None
        # replace_maj after replace_all_caps, as the tokenizer applies them, gives the tokenizer's marker
        assert replace_maj(replace_all_caps(p)).split()[0] == (marker or p), p
    assert marked > 100
    # replace_maj alone marks a capital followed by no letters, as fastai 2.8.12's replace_maj does
    assert replace_maj("A1 X2 A. Hello") == "xxmaj a1 xxmaj x2 xxmaj a. xxmaj hello"
    assert replace_all_caps("A1 X2 Hello") == "xxup a1 xxup x2 Hello"
