"""The book's ``SubwordTokenizer`` on the imdb_sample reviews (chapter 10): ``sp.setup(txts)`` and the pieces of
a review, as a SentencePiece user sees them."""
from __future__ import annotations

import re
import warnings

import numpy as np
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


# The tokens pipekit 0523281 (before a model without the rules was trained on chunks) gave with
# SubwordTokenizer(vocab_sz=300) set up on the first 40 imdb_sample reviews, for the shortest three of reviews 800-999
# (the first 40 tokens of each, joined by spaces: no token holds one).
OLD_TOKENS = [
    "▁I t ▁' s ▁thi s ▁ s or t ▁of ▁movie ▁tha t ▁you ▁ t r y ▁ and ▁ i m it at e ▁. ▁B y ▁ at te mp t ing ▁to ▁real is e",
    '▁The ▁movie ▁ is ▁great ▁ and ▁I ▁like ▁the ▁story ▁. ▁I ▁ p re f er ▁thi s ▁movie ▁tha n ▁ other ▁movie ▁ s u ch ▁The ▁ c ell ▁ ( ▁ s ic k',
    "▁I ▁' m ▁a ▁ D on ▁ J o h n s on ▁f an ▁ , ▁but ▁thi s ▁ is ▁un d o u b t ed ly ▁the ▁ W O R S T ▁movie ▁",
]


@pytest.fixture(scope="module")
def short3(txts) -> list[str]:
    return sorted(txts[800:], key=len)[:3]


def _record(path) -> dict:
    import json
    import zipfile

    return json.loads(zipfile.ZipFile(path).read("record.json"))


def test_a_model_saved_before_chunks_keeps_the_tokens_it_gave(txts, short3, tmp_path):
    """A SubwordTokenizer saved before a model without the rules was trained on the raw text's chunks was trained on
    pipekit's word split; its file has no units_, and loaded it still applies the model to words, so a text model
    saved with it gets the token ids it was trained on."""
    import pipekit

    old = SubwordTokenizer(vocab_sz=300)
    old._train(pl.Series(txts[:40]), "words")  # what setup did before
    pipekit.save(old, tmp_path / "old.pipekit")
    assert "units_" not in _record(tmp_path / "old.pipekit")["state"]  # the record an older pipekit wrote
    back = pipekit.load(tmp_path / "old.pipekit")
    assert back.units_ == "words"
    expected = [t.split(" ") for t in OLD_TOKENS]
    assert [back(t)[:40] for t in short3] == expected
    # decoding follows the words too: the word split's spacing, not the chunks' joins
    assert back.decode(back(short3[2])).startswith("I'm a Don Johnson fan, but this is")
    # and again through a file written now
    pipekit.save(back, tmp_path / "again.pipekit")
    assert "units_" not in _record(tmp_path / "again.pipekit")["state"]
    assert [pipekit.load(tmp_path / "again.pipekit")(t)[:40] for t in short3] == expected


def test_a_model_set_up_now_is_applied_to_chunks_after_loading(txts, short3, tmp_path):
    import pipekit

    sp = SubwordTokenizer(vocab_sz=300)
    sp.setup(txts[:40])
    assert sp.units_ == "chunks"
    toks = [sp(t) for t in short3]
    assert toks[2][14:17] == ["\u2581f", "an", ","]  # the comma is a piece of "fan,", not a word of its own
    pipekit.save(sp, tmp_path / "new.pipekit")
    assert _record(tmp_path / "new.pipekit")["state"]["units_"] == "chunks"
    back = pipekit.load(tmp_path / "new.pipekit")
    assert back.units_ == "chunks" and [back(t) for t in short3] == toks
    assert back.decode(toks[2]) == " ".join(short3[2].split())
    # set up again, a loaded model of words becomes one of chunks
    old = SubwordTokenizer(vocab_sz=300)
    old._train(pl.Series(txts[:40]), "words")
    old.setup(txts[:40])
    assert old.units_ == "chunks" and old(short3[2])[14:17] == ["\u2581f", "an", ","]


def test_a_file_with_unknown_units_is_refused(txts, tmp_path):
    from file_edits import edited_copy

    import pipekit
    from pipekit.core.errors import ExportError

    sp = SubwordTokenizer(vocab_sz=300)
    sp.setup(txts[:40])
    pipekit.save(sp, tmp_path / "sp.pipekit")
    edited_copy(tmp_path / "sp.pipekit", lambda r: r["state"].update(units_="sentences"), tmp_path / "bad.pipekit")
    with pytest.raises(ExportError, match=r"state\.units_.*'sentences'"):
        pipekit.load(tmp_path / "bad.pipekit")


def test_the_token_cache_keeps_what_the_model_is_applied_to(txts, tmp_path):
    """A cached entry restores the tokenizer's units_ with its model, and entries written before units_ was kept
    (whose model of chunks would read as one of words) are under another cache version."""
    from pipekit.text import TextBlock, Tokenizer
    from pipekit.text.store import CACHE_VERSION

    assert CACHE_VERSION == "pk-text-6"
    texts = pl.Series("text", txts[:60])
    idx = np.arange(40)
    # without the rules (TextBlock puts them on top of a SubwordTokenizer, and a model of words goes with them)
    first = TextBlock(Tokenizer("unigram", vocab_sz=300, rules=False), cache_dir=tmp_path)
    first.setup(texts, idx)
    again = TextBlock(Tokenizer("unigram", vocab_sz=300, rules=False), cache_dir=tmp_path)
    store = again.setup(texts, idx)
    assert again.from_cache_ and again.tok.units_ == "chunks"
    assert again.tok(txts[50]) == first.tok(txts[50])
    assert store.ids.equals(first.setup(texts, idx).ids)
    # with the rules, the model is one of words, cached as such
    ruled = TextBlock(SubwordTokenizer(vocab_sz=300), cache_dir=tmp_path)
    ruled.setup(texts, idx)
    assert not ruled.from_cache_ and ruled.tok.rules and ruled.tok.units_ == "words"
