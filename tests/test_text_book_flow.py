"""Chapter 10's tokenizing flow as the book writes it, on the imdb_sample reviews: a tokenizer called on one
text, a vocabulary set up on many, one text's ids as a tensor, and the way back."""
from __future__ import annotations

import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.text import TokenizedTexts, Tokenizer


@pytest.fixture(scope="module")
def txts() -> list[str]:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"].to_list()


def test_tokenizer_on_one_text_gives_its_tokens(txts):
    tkn = Tokenizer()
    txt = txts[0]
    toks = tkn(txt)
    assert type(toks) is list and all(type(t) is str for t in toks)
    assert toks == tkn.encode([txt])[0] == tkn.tokenize(txt)
    assert toks[:14] == ["xxbos", "xxmaj", "un", "-", "bleeping", "-", "believable", "!", "xxmaj", "meg", "xxmaj",
                         "ryan", "does", "n't"]
    # many texts keep the corpus form, and each text in it is what the text alone gives
    many = tkn(txts[:20])
    assert isinstance(many, TokenizedTexts) and len(many) == 20
    assert [many[i] for i in range(20)] == [tkn(t) for t in txts[:20]]
    assert tkn("") == ["xxbos"]
