"""Chapter 10's tokenizing flow as the book writes it, on the imdb_sample reviews: a tokenizer called on one
text, a vocabulary set up on many, one text's ids as a tensor, and the way back."""
from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest
import torch

import pipekit.datasets as D
from pipekit.core import Component, NotFittedError, ParameterError
from pipekit.text import (Numericalize, SubwordTokenizer, TextBlock, TokenizedTexts, Tokenizer,
                          WordTokenizer)


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


def test_word_tokenizer_is_the_word_mode_without_rules(txts):
    spacy = WordTokenizer()
    raw = spacy(txts[0])
    assert raw[:12] == ["Un", "-", "bleeping", "-", "believable", "!", "Meg", "Ryan", "does", "n't", "even", "look"]
    assert spacy(txts[:5])[4] == Tokenizer(rules=False, add_bos=False)(txts[4])
    tkn = Tokenizer(spacy)  # the book's Tokenizer(spacy): the rules on those words
    assert tkn.get_params() == Tokenizer().get_params() and repr(tkn) == "Tokenizer()"
    assert [tkn(t) for t in txts[:30]] == [Tokenizer()(t) for t in txts[:30]]
    assert repr(spacy) == "WordTokenizer()" and type(spacy.clone()) is WordTokenizer
    again = Component.from_record(spacy.to_record())
    assert type(again) is WordTokenizer and again(txts[1]) == spacy(txts[1])
    # a TextBlock given a base tokenizer puts the rules on top, as fastai's does
    block_tok = TextBlock(tok=spacy, cache_dir=False).tok
    assert block_tok.rules and block_tok.add_bos and block_tok(txts[2]) == Tokenizer()(txts[2])


def test_subword_tokenizer_is_the_unigram_mode(txts):
    sp = SubwordTokenizer(vocab_sz=500)
    with pytest.raises(NotFittedError, match="call setup"):
        sp([txts[0]])
    sp.setup(txts[:200])  # the book's sp.setup(txts); ' '.join(first(sp([txt]))[:40])
    pieces = sp([txts[0]])[0][:40]
    assert pieces == sp(txts[0])[:40] and "".join(pieces[:3]) == "\u2581Un" and "xxbos" not in pieces
    assert sp.decode(sp(txts[3])) == " ".join(txts[3].split())  # the raw text back, as SentencePiece decodes
    tkn = Tokenizer(sp)
    assert (tkn.mode, tkn.vocab_sz, tkn.rules) == ("unigram", 500, True) and not tkn.is_fitted
    assert Tokenizer(SubwordTokenizer(vocab_sz=300, model_type="bpe")).get_params() == \
        Tokenizer("bpe", vocab_sz=300).get_params()
    tkn.setup(txts[:200])
    toks = tkn(txts[0])
    assert toks[0] == "xxbos" and tkn.decode(toks) == Tokenizer().decode(Tokenizer()(txts[0]))


def test_tokenizer_of_something_else_is_refused():
    with pytest.raises(ParameterError, match=r"mode=Tokenizer\(...\) is a full tokenizer already: use it as it is"):
        Tokenizer(Tokenizer())
    with pytest.raises(ParameterError, match=r"mode=.* \(object\) is not a mode.*WordTokenizer\(\) or SubwordTokenizer"):
        Tokenizer(object())
    with pytest.raises(ParameterError, match="vocab_sz=100 differs from the SubwordTokenizer's vocab_sz=300"):
        Tokenizer(SubwordTokenizer(vocab_sz=300), vocab_sz=100)
    with pytest.raises(ParameterError, match="model_type"):
        SubwordTokenizer(model_type="char")
    with pytest.raises(ParameterError, match="vocab_sz"):
        SubwordTokenizer(vocab_sz=3)


def test_tokenizer_of_no_text_says_what_it_takes():
    with pytest.raises(ParameterError, match=r"Tokenizer takes a text \(str\) or a list of texts.*got NoneType"):
        Tokenizer()(None)
    with pytest.raises(ParameterError, match="must be a sequence of strings.*got int"):
        Tokenizer().encode_texts(3)


def test_numericalize_before_setup_shows_the_call_that_works(txts):
    num = Numericalize()
    with pytest.raises(NotFittedError, match=r"call num\.setup\(toks\) \(or num\.setup\(toks, train_idx\)"):
        num(["xxbos", "a"])
    toks200 = Tokenizer()(txts[:200])
    num.setup(toks200)  # the call the message shows, as the book writes it
    assert num(["xxbos", "the"]).tolist() == [num.vocab.index("xxbos"), num.vocab.index("the")]


def test_text_learner_example_fits_the_books_lmmodel7():
    import ast
    import inspect

    from pipekit.text import TextLearner

    def book_lmmodel7(vocab_sz, n_hidden, n_layers, p):  # the book's LMModel7.__init__ signature
        pass

    example = " ".join(line.split("#", 1)[1].strip() for line in (TextLearner.__doc__ or "").splitlines()
                       if ">>> #" in line)
    calls = [n for n in ast.walk(ast.parse(example))
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LMModel7"]
    assert len(calls) == 1
    inspect.signature(book_lmmodel7).bind(*calls[0].args)


def test_numericalize_orders_tokens_of_equal_counts_as_first_used_so_ids_are_the_books(txts):
    """fastai's vocabulary: ``Counter.most_common`` (count, then first use in the training texts) after the special
    tokens, padded to a multiple of 8. On the same token lists the vocab, and so every id, is fastai's."""
    from collections import Counter

    toks = [t.lower().split() for t in txts[:300]]
    num = Numericalize(min_freq=2)
    num.setup(toks)
    specials = num.vocab[:9]
    counted = Counter(tok for text in toks for tok in text)
    expected = specials + [t for t, c in counted.most_common() if c >= 2 and t not in specials]
    expected += ["xxfake"] * (8 - len(expected) % 8)
    assert num.vocab == expected and len(expected) > 4000
    ties = [t for t, c in counted.most_common() if c == 7][:6]
    assert len(ties) == 6 and ties != sorted(ties)  # equal counts in order of first use, not alphabetical
    # the training texts are the ones at idx, in their order
    num.setup(TokenizedTexts.from_lists(toks, "test"), idx=[5, 4, 3])
    first = Counter(tok for i in [5, 4, 3] for tok in toks[i])
    expected = specials + [t for t, c in first.most_common() if c >= 2 and t not in specials]
    assert num.vocab == expected + ["xxfake"] * (8 - len(expected) % 8)
