"""The book's ``SubwordTokenizer`` on the imdb_sample reviews (chapter 10): ``sp.setup(txts)`` and the pieces of
a review, as a SentencePiece user sees them."""
from __future__ import annotations

import re

import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.text import SubwordTokenizer


@pytest.fixture(scope="module")
def txts() -> list[str]:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"].to_list()


@pytest.fixture(scope="module")
def sp10k(txts) -> SubwordTokenizer:
    sp = SubwordTokenizer(vocab_sz=10000)
    sp.setup(txts)
    return sp


def test_unigram_keeps_common_words_whole(txts, sp10k):
    # a model trained on the raw text keeps the words every review uses in one piece, as BPE does
    for w in ["this", "does", "the", "movie", "This", "The"]:
        assert sp10k(w) == ["\u2581" + w], w
    pieces = sp10k([txts[0]])[0]  # the book's first(sp([txt]))
    assert "\u2581thi" not in pieces and "\u2581doe" not in pieces
    # punctuation written against a word is a piece of its chunk ("in this, which"), not a word of its own
    i = pieces.index("\u2581this")
    assert pieces[i - 1:i + 3] == ["\u2581in", "\u2581this", ",", "\u2581which"]
    assert sp10k._sub is not None and sp10k._sub.get_vocab_size() == 10000


def test_decoding_the_pieces_gives_the_raw_text_back(txts, sp10k):
    def spaced(t: str) -> str:  # runs of spaces as one, none around a line break: what the pieces keep
        return re.sub(r" *(\n+) *", r"\1", re.sub(r"[^\S\n]+", " ", t)).strip()

    assert sp10k.decode(sp10k(txts)) == [spaced(t) for t in txts]
    assert sp10k.decode(sp10k(["A film (really) that 's  odd .\n\nEnd"])) == ["A film (really) that 's odd .\n\nEnd"]
