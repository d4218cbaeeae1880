"""Tokenizer and Numericalize: the book's rules, subword modes, vocab building, bad input."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipekit.datasets as D
from pipekit.core import DataError, NotFittedError, ParameterError
from pipekit.text import SPECIAL_TOKENS, Numericalize, Tokenizer, read_text_file
from pipekit.text.tokenize import apply_rules, decode_words


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


def test_rules_special_tokens():
    tok = Tokenizer()
    assert tok.tokenize("Hello World") == ["xxbos", "xxmaj", "hello", "xxmaj", "world"]
    assert tok.tokenize("This is GREAT") == ["xxbos", "xxmaj", "this", "is", "xxup", "great"]
    assert tok.tokenize("soooo good!!!!") == ["xxbos", "s", "xxrep", "4", "o", "good", "xxrep", "4", "!"]
    assert tok.tokenize("it was very very very very bad") == ["xxbos", "it", "was", "xxwrep", "4", "very", "bad"]
    # a run's count is a number, not text: 1000 repeats are not "1 xxrep 3 0" (a text's own 1000 is)
    for n in (111, 1000):
        toks = tok.tokenize("word " * n + "then 1000 people")
        assert toks == ["xxbos", "xxwrep", str(n), "word", "then", "1", "xxrep", "3", "0", "people"], toks
        assert tok.decode(toks) == " ".join(["word"] * n) + " then 1000 people"
    # two repeats are not a run; a single capital letter gets no marker (as in the book)
    assert tok.tokenize("no no I") == ["xxbos", "no", "no", "i"]
    assert tok.tokenize("I don't know, it's fine") == ["xxbos", "i", "do", "n't", "know", ",", "it", "'s", "fine"]


def test_html_fixes_and_newlines():
    tok = Tokenizer()
    toks = tok.tokenize("Good.<br /><br />Bad &amp; ugly")
    assert toks == ["xxbos", "xxmaj", "good", ".", "\n\n", "xxmaj", "bad", "&", "ugly"]
    assert "<" not in "".join(tok.tokenize("a<br />b"))


def test_character_references_are_unescaped_after_the_html_fixes():
    tok = Tokenizer()
    assert tok("&copy; caf&eacute; x &#8211; y &#x263A;") == ["xxbos", "©", "café", "x", "–", "y", "☺"]
    # the fixes of before are kept; a "&" not closed by ";" (a URL's query) is not read as a reference
    assert tok("Good.<br />Bad &amp; ugly &quot;x&quot;") == ["xxbos", "xxmaj", "good", ".", "\n", "xxmaj", "bad",
                                                              "&", "ugly", '"', "x", '"']
    assert tok("?a=1&para=2") == ["xxbos", "?", "a", "=", "1", "&", "para", "=", "2"]
    assert tok(["caf&eacute;", "plain"])[0] == ["xxbos", "café"]


def test_unescaping_leaves_the_imdb_sample_vocabulary_as_it_was(imdb):
    # the reviews hold no character references other than those HTML_FIXES handles
    tt = Tokenizer().encode(imdb["text"])
    num = Numericalize()
    num.setup(tt)
    assert (len(tt.vocab), len(num.vocab), len(tt.ids)) == (18705, 7096, 322364)
    assert "eacute" not in tt.vocab and "quot" not in tt.vocab and "amp" not in tt.vocab


def test_rules_off_keeps_raw_pieces():
    tok = Tokenizer(rules=False, add_bos=False)
    assert tok.tokenize("Hello WORLD!!!") == ["Hello", "WORLD", "!!!"]


def test_bos_eos_and_empty_texts():
    tok = Tokenizer(add_eos=True)
    tt = tok.encode(["", "   ", "Hi"])
    assert tt[0] == ["xxbos", "xxeos"] and tt[1] == ["xxbos", "xxeos"]
    assert tt[2] == ["xxbos", "xxmaj", "hi", "xxeos"]
    assert tt.lengths.tolist() == [2, 2, 4]


def test_decode_is_readable():
    tok = Tokenizer()
    text = "It's GREAT, isn't it? Soooo good!!!"
    assert tok.decode(tok.tokenize(text)) == text
    assert decode_words(["xxbos", "xxmaj", "a", "xxwrep", "3", "very", "long", "film", "."]) == "A very very very long film."


def _as_the_tokens_keep_it(text: str) -> str:
    """``text`` with what the tokenizer leaves out by design left out (decode_words' docstring lists it): HTML
    fixes, case the rules do not mark, a contraction's case, spacing around punctuation and line breaks, and a
    word going on for three letters or more after a run of a repeated letter (split after the run)."""
    import re

    from pipekit.text.tokenize import HTML_FIXES

    for a, b in HTML_FIXES:
        text = text.replace(a, b)
    text = re.sub(r"(?i)'(?:s|m|re|ve|ll|d)(?!\w)|(?i:n't)(?!\w)", lambda m: m.group().lower(), text)

    def case_of(w: str) -> str:
        marked = len(w) > 1 and w[0].isalpha() and (w.isupper() or (w[0].isupper() and w[1:] == w[1:].lower()))
        return w if marked else "I" if w.lower() == "i" else w.lower()

    text = re.sub(r"\w+", lambda m: case_of(m.group()), text)
    text = re.sub(r"(([^\W\d_])\2{2,})(?=[^\W\d_]{3,})", r"\1 ", text)
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r"(?<=\W) | (?=\W)", "", text).strip()


def test_decoding_the_tokens_gives_the_text_back(imdb):
    """Every review of imdb_sample, tokenized then decoded, is the review (as the tokens keep it)."""
    tok = Tokenizer()
    texts = imdb["text"].to_list()
    encoded = tok.encode(texts)
    assert len(texts) == 1000
    differ = [i for i, t in enumerate(texts) if _as_the_tokens_keep_it(tok.decode(encoded[i])) != _as_the_tokens_keep_it(t)]
    assert differ == [], [(texts[i][:200], tok.decode(encoded[i])[:200]) for i in differ[:3]]
    # runs of a letter, runs of a word with its case marker, a case marker before a run
    for text in ["This is a MUST MUST MUST see", "The The The end", "Mmmm hmmm", "Sooo goood movie", "aaaa bbbb",
                 "Hmmm... doiiing, BHHAAAAD! Woooooow FFFC", "look at www or so", "sooo is sooo bad", "Ummmph",
                 "Nooo nooo nooo I said", "YOU'VE GOT MAIL, DON'T you", "tt0077713 in 1999 was 3000 miles"]:
        assert tok.decode(tok.tokenize(text)) == text, tok.tokenize(text)
    assert decode_words(["xxbos", "xxwrep", "3", "xxup", "no", "!"]) == "NO NO NO!"
    assert decode_words(["xxwrep", "3", "xxmaj", "s", "xxrep", "3", "o", "good"]) == "Sooo Sooo Sooo good"


def test_apply_rules_units():
    assert apply_rules("McDonald") == ["mcdonald"]  # mixed case: lowered, no marker
    assert apply_rules("TV") == ["xxup", "tv"]
    assert apply_rules("...") == ["xxrep", "3", "."]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(alphabet="aAbB .!'\n<>br/", max_size=40), min_size=1, max_size=6))
def test_batch_equals_one_by_one(texts):
    # the corpus path (distinct chunks, vectorised expansion) must give what tokenizing each text alone gives
    tok = Tokenizer()
    tt = tok.encode(texts)
    assert len(tt) == len(texts)
    assert [tt[i] for i in range(len(texts))] == [Tokenizer().tokenize(t) for t in texts]


def test_real_corpus(imdb):
    tok = Tokenizer()
    tt = tok.encode(imdb["text"])
    assert len(tt) == 1000
    first = tt.ids[tt.offsets[:-1]]
    assert {tt.vocab[i] for i in first} == {"xxbos"}
    assert not any(" " in t or "\t" in t for t in tt.vocab)
    assert all(t == t.lower() for t in tt.vocab)
    counts = dict(zip(tt.vocab, tt.counts()))
    assert counts["xxmaj"] > 5000 and counts["xxup"] > 100 and counts["xxrep"] > 10
    assert "<br" not in tt.vocab and "br" not in tt.vocab


def test_bad_text_input():
    tok = Tokenizer()
    with pytest.raises(DataError, match="row 1 is missing"):
        tok.encode(pl.Series(["ok", None]))
    with pytest.raises(DataError, match="must hold strings"):
        tok.encode(pl.Series([1, 2]))
    with pytest.raises(ParameterError, match="wrap it in a list"):
        Tokenizer("bpe", vocab_sz=100).setup("just one text")  # one str is not a corpus to train on
    with pytest.raises(ParameterError, match="mode="):
        Tokenizer(mode="spacy")
    with pytest.raises(ParameterError, match="vocab_sz is only used"):
        Tokenizer(vocab_sz=100)
    with pytest.raises(ParameterError, match="vocab_sz=5"):
        Tokenizer("bpe", vocab_sz=5)
    assert repr(Tokenizer("bpe", vocab_sz=400)) == "Tokenizer(mode='bpe', vocab_sz=400)"


def test_non_utf8_file(tmp_path):
    f = tmp_path / "bad review.txt"
    f.write_bytes(b"great film \xff\xfe end")
    with pytest.raises(DataError, match=r"bad review\.txt.*not valid utf-8 at byte 11.*errors='replace'"):
        read_text_file(f)
    assert read_text_file(f, errors="replace") == "great film \ufffd\ufffd end"
    assert read_text_file(f, errors="ignore") == "great film  end"
    assert read_text_file(f, encoding="latin-1").endswith("end")
    with pytest.raises(ParameterError, match="errors="):
        read_text_file(f, errors="skip")


@pytest.mark.parametrize("mode", ["bpe", "unigram"])
def test_subword_modes(imdb, mode):
    texts = imdb["text"]
    train = texts[:150]
    tok = Tokenizer(mode, vocab_sz=400)
    with pytest.raises(NotFittedError, match="not fitted"):
        tok.encode(train[:2])
    tok.setup(train)
    tt = tok.encode(texts[:50])
    assert len(tt.vocab) <= 400
    assert tt[0][0] == "xxbos" and any(p.startswith("\u2581") for p in tt[0])
    # pieces decode to the same text as the word-level tokens
    word = Tokenizer()
    for i in range(5):
        assert tok.decode(tt[i]) == word.decode(word.tokenize(texts[i]))
    # deterministic training: same texts, same model
    tok2 = Tokenizer(mode, vocab_sz=400)
    tok2.setup(train)
    assert tok2.encode(texts[:50])[7] == tt[7]
    # fitted state is plain data and restores the same tokenizer
    tok3 = Tokenizer.from_record(tok.to_record())
    assert tok3.encode(texts[:3])[2] == tt[2]


def test_numericalize_vocab_rules():
    tok = Tokenizer()
    texts = ["a film a film a film", "good film good film", "bad", "only in valid and valid"]
    tt = tok.encode(texts)
    num = Numericalize(min_freq=2)
    num.setup(tt, np.array([0, 1, 2]))  # the last text is the validation split
    v = num.vocab_
    assert v[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert v[len(SPECIAL_TOKENS):len(SPECIAL_TOKENS) + 3] == ["film", "a", "good"]  # by count, ties alphabetical
    assert "valid" not in v and "bad" not in v  # validation-only token, and a token below min_freq
    assert len(v) % 8 == 0 and v[-1] == "xxfake"
    ids = num.encode(tt)
    assert ids.type == pa.list_(pa.int32())
    assert ids.to_pylist()[3][1:] == [0] * 5  # unknown tokens -> xxunk (0)
    assert num.decode(ids.to_pylist()[0]) == tt[0]
    small = Numericalize(min_freq=1, max_vocab=11)
    small.setup(tt)
    assert [t for t in small.vocab_ if t != "xxfake"] == SPECIAL_TOKENS + ["film", "a"]


def test_numericalize_bad_vocab_and_params():
    with pytest.raises(ParameterError, match=r"missing the special tokens \['xxpad', 'xxbos'"):
        Numericalize(vocab=["xxunk", "the", "a"])
    with pytest.raises(ParameterError, match="duplicate.*'a'"):
        Numericalize(vocab=SPECIAL_TOKENS + ["a", "a"])
    with pytest.raises(ParameterError, match="min_freq"):
        Numericalize(min_freq=0)
    with pytest.raises(ParameterError, match="max_vocab"):
        Numericalize(max_vocab=5)
    with pytest.raises(ParameterError, match="max_vocab=3 leaves no room"):
        Numericalize(max_vocab=3, special_tokens=["xxunk", "xxpad", "xxbos"])
    with pytest.raises(ParameterError, match="special_tokens=.*'xxunk'"):
        Numericalize(special_tokens=["xxpad"])
    num = Numericalize(vocab=SPECIAL_TOKENS + ["film"])
    num.setup(Tokenizer().encode(["a film"]))
    assert num.encode(["xxbos", "a", "film"]).tolist() == [2, 0, 9]
    with pytest.raises(DataError, match=r"ids must be in \[0, 10\)"):
        num.decode([3, 10])
    with pytest.raises(NotFittedError, match="not fitted"):
        Numericalize().encode(["a"])


def test_the_books_tokenizer_from_folder_reads_the_files_of_tfmdlists_on_imdb(tmp_path):
    # chapter 11: files = get_text_files(path, folders=['train', 'test']);
    # tls = TfmdLists(files, [Tokenizer.from_folder(path), Numericalize], splits=splits)
    import pipekit.datasets as D
    from pipekit.data import GrandparentSplitter, TfmdLists, get_text_files
    from pipekit.text import Numericalize, Tokenizer

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(60)
    for i, (label, text) in enumerate(df.select("label", "text").iter_rows()):
        folder = tmp_path / ("test" if i % 5 == 0 else "train") / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    files = get_text_files(tmp_path, folders=["train", "test"])
    tok = Tokenizer.from_folder(tmp_path)
    assert tok(files[0]) == tok(files[0].read_text()) and tok(files[:3])[2] == tok(files[2].read_text())
    tls = TfmdLists(files, [Tokenizer.from_folder(tmp_path), Numericalize],
                    splits=GrandparentSplitter(valid_name="test")(files))
    assert (len(tls.train), len(tls.valid)) == (48, 12)
    train_files = [f for f in files if f.parent.parent.name == "train"]
    vocab = tls.vocab
    ids = [vocab.index(t) if t in vocab else 0 for t in tok(train_files[0])]  # xxunk (0) for a rare word
    assert tls.train[0].tolist() == ids
    subword = Tokenizer.from_folder(tmp_path, mode="unigram", vocab_sz=200)
    subword.setup(files[:40])  # the subword model learns from the files' texts
    assert len(subword(files[0])) > 10
    bad = tmp_path / "train" / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: not valid utf-8 at byte 3"):
        tok([files[0], bad])
