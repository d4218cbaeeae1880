"""The book's ``SubwordTokenizer`` on the imdb_sample reviews (chapter 10): ``sp.setup(txts)`` and the pieces of
a review, as a SentencePiece user sees them."""
from __future__ import annotations

import re
import warnings

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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sp.setup(txts)
    sp.setup_warnings = [str(w.message) for w in caught]  # type: ignore[attr-defined]
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


def test_too_little_text_for_vocab_sz_warns(txts, sp10k):
    sp = SubwordTokenizer(vocab_sz=10000)
    with pytest.warns(UserWarning, match=r"SubwordTokenizer: the 200 training texts gave ([\d,]+) subword pieces, "
                      r"not the vocab_sz=10,000 asked for; set it up on more text, or ask for a smaller vocab_sz "
                      r"\(at most \1 for these texts\)") as rec:
        sp.setup(txts[:200])
    learnt = sp._sub.get_vocab_size() if sp._sub is not None else 0
    assert learnt < 10000 and f"gave {learnt:,} subword pieces" in str(rec[0].message)
    # the whole sample holds the 10,000 pieces asked for: nothing to warn about
    assert sp10k.setup_warnings == []
