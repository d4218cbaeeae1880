"""Chapter 10's tokenizing flow as the book writes it, on the imdb_sample reviews: a tokenizer called on one
text, a vocabulary set up on many, one text's ids as a tensor, and the way back."""
from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest
import torch

import pipekit.datasets as D
from pipekit.core import ParameterError
from pipekit.text import Numericalize, TokenizedTexts, Tokenizer


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
    assert many[-1] == tkn(txts[19]) and list(many)[3] == many[3]  # the last text, not an empty list
    with pytest.raises(IndexError, match="text 20 is outside the 20 texts"):
        many[20]


def test_numericalize_one_text_gives_a_tensor_of_ids_the_book_slices(txts):
    tkn = Tokenizer()
    toks = tkn(txts[0])
    toks200 = [tkn(t) for t in txts[:200]]  # the book's txts[:200].map(tkn)
    num = Numericalize()
    num.setup(toks200)
    # setting up on the token lists learns what setting up on the corpus form learns
    same = Numericalize()
    same.setup(tkn(txts[:200]))
    assert num.vocab == same.vocab and len(num.vocab) > 1000
    nums = num(toks)[:20]
    assert isinstance(nums, torch.Tensor) and nums.dtype == torch.long and nums.shape == (20,)
    assert ' '.join(num.vocab[o] for o in nums) == ' '.join(
        t if t in num.vocab else "xxunk" for t in toks[:20])
    assert ' '.join(num.vocab[o] for o in nums) == ("xxbos xxmaj xxunk - xxunk - believable ! xxmaj xxunk xxmaj ryan "
                                                     "does n't even look her usual xxunk lovable")  # min_freq=3
    # the ids of the whole text decode to its tokens (every token of text 0 is in the 200 texts' vocabulary
    # at min_freq=1), and to the text itself through the tokenizer
    full = Numericalize(min_freq=1)
    full.setup(toks200)
    ids = full(toks)
    assert ids.ndim == 1 and len(ids) == len(toks)
    assert full.decode(ids) == toks and full.decode(ids[5:9]) == toks[5:9]
    assert "believable! Meg Ryan doesn't even look her usual pert lovable self" in tkn.decode(full.decode(ids))
    # many texts keep the column of id lists
    many = full(toks200[:3])
    assert isinstance(many, pa.ListArray) and many.to_pylist()[0] == ids.tolist()
    assert full(tkn(txts[:3])).to_pylist() == many.to_pylist()
    assert full([]).tolist() == []


def test_numericalize_token_lists_bad_input(txts):
    tkn, num = Tokenizer(), Numericalize(min_freq=1)
    with pytest.raises(ParameterError, match=r"one text's tokens: wrap them in a list"):
        num.setup(tkn(txts[0]))
    with pytest.raises(ParameterError, match=r"text 1 is a str, not a list of tokens"):
        num.setup([tkn(txts[0]), txts[1]])
    with pytest.raises(ParameterError, match=r"token 2 of text 0 is 3, not a str"):
        num.setup([["xxbos", "a", 3]])
    num.setup([tkn(txts[0])])
    with pytest.raises(ParameterError, match="takes one text's tokens"):
        num(7)
