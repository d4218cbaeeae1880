"""Patterns and vocabularies read from a file are checked as the file is loaded: a RegexLabeller's pattern that only
Python's backtracking ``re`` can run must have a bounded time, a text tokenizer's stored subword model goes through
the checks HFTokenizer's tokenizer does, and learned vocabularies must be what fitting makes (distinct labels of one
plain type). A file that breaks these is an ExportError naming the field, never a load that hangs or panics later.

Real data: dogscats' file names (labelled by pattern), imdb_sample's texts (tokenized and numericalized).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import pipekit
from pipekit.core.errors import ExportError
from pipekit.data.getters import RegexLabeller
from file_edits import edited_copy


_tampered = edited_copy


@pytest.fixture(scope="module")
def cat_paths() -> list[str]:
    folder = Path(os.environ["PIPEKIT_DATA"]) / "dogscats" / "train" / "cats"
    return sorted(str(p) for p in folder.iterdir())[:20]


# ------------------------------------------------------------------------------------------- RegexLabeller
@pytest.mark.parametrize("pat", [r"(?=(a+)+$)(x)", r"(?=(\w+)*!)(\w)", r"(.)(?:\1)+"])
def test_regex_labeller_refuses_unbounded_python_only_pattern_from_file(tmp_path, pat):
    saved = pipekit.save(RegexLabeller(r"/([^/]+)\.\d+\.jpg$"), tmp_path / "rl.pipekit")
    bad = _tampered(saved, lambda r: r["params"].update(pat=pat), tmp_path / "bad.pipekit")
    t, began = time.process_time(), time.perf_counter()  # CPU time: a busy machine does not count
    with pytest.raises(ExportError, match=r"field 'params\.pat'.*backtracking"):
        pipekit.load(bad)
    assert time.process_time() - t < 5 and time.perf_counter() - began < 110  # and no long wait


def test_regex_labeller_from_file_keeps_linear_and_bounded_patterns(tmp_path, cat_paths):
    # Polars runs the first; the second has a look-behind (Python's re) that the time check accepts
    for pat in (r"/([^/]+)\.\d+\.jpg$", r"(?<=/)([a-z]+)\."):
        g = pipekit.load(pipekit.save(RegexLabeller(pat), tmp_path / "rl.pipekit"))
        assert g.pat == pat
        assert [g(p) for p in cat_paths] == ["cat"] * len(cat_paths)


def test_regex_labeller_in_a_recipe_file_is_checked(tmp_path, cat_paths):
    from pipekit.data import CategoryBlock, DataBlock, RandomSplitter
    from pipekit.vision import ImageBlock
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=RegexLabeller(r"/([a-z]+)\.\d+\.jpg$"),
                       splitter=RandomSplitter(seed=0))
    saved = pipekit.save(dblock, tmp_path / "db.pipekit")

    def edit(r):
        r["params"]["get_y"]["params"]["pat"] = r"(?=(a+)+$)(x)"
    with pytest.raises(ExportError, match=r"field 'params\.get_y\.params\.pat'"):
        pipekit.load(_tampered(saved, edit, tmp_path / "bad.pipekit"))


# ------------------------------------------------------------------------------------------- subword Tokenizer
@pytest.fixture(scope="module")
def imdb_texts() -> list[str]:
    import polars as pl
    return pl.read_csv(Path(os.environ["PIPEKIT_DATA"]) / "imdb_sample" / "texts.csv")["text"].to_list()[:200]


@pytest.fixture(scope="module")
def subword(imdb_texts, tmp_path_factory):
    from pipekit.text import Tokenizer
    tok = Tokenizer("bpe", vocab_sz=500)
    tok.setup(imdb_texts)
    return tok, pipekit.save(tok, tmp_path_factory.mktemp("sub") / "sub.pipekit")


def _with_normalizer(normalizer):
    def edit(r):
        sw = json.loads(r["state"]["subword_"])
        sw["normalizer"] = normalizer
        r["state"]["subword_"] = json.dumps(sw)
        r["params"]["rules"] = False
    return edit


def test_subword_model_from_file_goes_through_the_tokenizer_checks(subword, tmp_path):
    tok, saved = subword
    bad = _tampered(saved, _with_normalizer({"type": "Replace", "pattern": {"Regex": "(a+)+$"}, "content": "x"}),
                    tmp_path / "bad.pipekit")
    with pytest.raises(ExportError, match=r"field 'state\.subword_'.*\(a\+\)\+\$"):
        pipekit.load(bad)
    for value in (7, ["{}"]):
        wrong = _tampered(saved, lambda r, v=value: r["state"].update(subword_=v), tmp_path / "wrong.pipekit")
        with pytest.raises(ExportError, match=r"field 'state\.subword_'"):
            pipekit.load(wrong)


def test_subword_model_from_file_still_tokenizes_as_saved(subword, imdb_texts):
    tok, saved = subword
    loaded = pipekit.load(saved)
    got, want = loaded.encode(imdb_texts[:20]), tok.encode(imdb_texts[:20])
    assert [got[i] for i in range(20)] == [want[i] for i in range(20)]
    assert any(len(want[i]) > len(imdb_texts[i].split()) for i in range(20))  # words split into pieces


def test_a_panic_in_the_tokenizers_library_is_a_data_error_naming_the_word(subword):
    from tokenizers import Tokenizer as Library

    from pipekit.core.errors import DataError
    tok, saved = subword
    tok = pipekit.load(saved)
    tok.rules = False
    # a subword model set in memory, past the checks, whose pattern exhausts the regex engine's retry limit
    sw = json.loads(tok._sub.to_str())
    sw["normalizer"] = {"type": "Replace", "pattern": {"Regex": "(a+)+$"}, "content": "x"}
    tok._sub = Library.from_str(json.dumps(sw))
    with pytest.raises(DataError, match=r"word \d+ \('a{30}b'"):
        tok.encode(["a fine film", "a" * 30 + "b"])


def test_an_interrupt_in_the_tokenizers_library_passes_through():
    from pipekit.text.tokenize import library_encode

    def interrupted(texts):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        library_encode(interrupted, ["a"], "Tokenizer")


# ------------------------------------------------------------------------------------------- learned vocabularies
@pytest.fixture(scope="module")
def imdb_labels():
    import polars as pl
    return pl.read_csv(Path(os.environ["PIPEKIT_DATA"]) / "imdb_sample" / "texts.csv")["label"]


def _state_edit(field, value):
    return lambda r: r["state"].update({field: value})


@pytest.mark.parametrize("vocab", [["negative", "negative"], [None, "positive"], [1, "positive"],
                                   [{"a": 1}, "positive"], "negative", [], ["positive", "negative"]])
def test_categorize_vocab_from_file_must_be_distinct_plain_sorted_labels(tmp_path, imdb_labels, vocab):
    from pipekit.data.blocks import Categorize
    cat = Categorize()
    cat.setup(imdb_labels)
    saved = pipekit.save(cat, tmp_path / "cat.pipekit")
    assert pipekit.load(saved).encode(imdb_labels[:10]).tolist() == cat.encode(imdb_labels[:10]).tolist()
    with pytest.raises(ExportError, match=r"field 'state\.vocab_' must be"):
        pipekit.load(_tampered(saved, _state_edit("vocab_", vocab), tmp_path / "bad.pipekit"))


def test_categorize_vocab_from_file_must_be_the_vocab_given(tmp_path, imdb_labels):
    from pipekit.data.blocks import Categorize
    cat = Categorize(vocab=["positive", "negative"])  # kept in the order given
    cat.setup(imdb_labels)
    saved = pipekit.save(cat, tmp_path / "cat.pipekit")
    assert pipekit.load(saved).vocab == ["positive", "negative"]
    for vocab in (["negative", "positive"], ["a", "b"]):
        with pytest.raises(ExportError, match=r"field 'state\.vocab_' must be the vocab given"):
            pipekit.load(_tampered(saved, _state_edit("vocab_", vocab), tmp_path / "bad.pipekit"))


@pytest.mark.parametrize("vocab", [[1, "1"], ["a", None], ["a", "a"], [True, 1], [float("nan"), 1.0]])
@pytest.mark.parametrize("owner", ["Categorize", "CategoryBlock", "MultiCategorize", "MultiCategoryBlock"])
def test_a_given_vocab_follows_the_rule_its_export_is_loaded_by(vocab, owner):
    """A vocab the loader would refuse in the state is refused when given, so every block exports what loads."""
    from pipekit.core.errors import ParameterError
    from pipekit.data import blocks
    with pytest.raises(ParameterError, match=rf"{owner}: vocab=.* is not accepted; expected distinct labels of one"):
        getattr(blocks, owner)(vocab=vocab)


def test_a_given_vocab_of_one_label_type_exports_and_loads(tmp_path):
    from pipekit.data.blocks import Categorize
    cat = Categorize(vocab=(3, 1, 2))  # any sequence; kept as given
    cat.setup([1, 2, 3, 3])
    loaded = pipekit.load(pipekit.save(cat, tmp_path / "cat.pipekit"))
    assert loaded.vocab == [3, 1, 2] and loaded.encode([2, 3]).tolist() == [2, 0]


@pytest.fixture(scope="module")
def numericalize(imdb_texts, tmp_path_factory):
    from pipekit.text import Numericalize, Tokenizer
    num = Numericalize()
    tokens = Tokenizer().encode(imdb_texts)
    num.setup(tokens)
    return num, tokens, pipekit.save(num, tmp_path_factory.mktemp("num") / "num.pipekit")


@pytest.mark.parametrize("edit", ["dups", "none", "int", "dict", "no_specials", "short", "not_a_list"])
def test_numericalize_vocab_from_file_must_be_tokens_with_the_specials(numericalize, tmp_path, edit):
    num, tokens, saved = numericalize
    loaded = pipekit.load(saved)
    assert loaded.encode_flat(tokens).tolist() == num.encode_flat(tokens).tolist()
    v = list(num.vocab_)
    vocab = {"dups": v[:9] + ["the"] * (len(v) - 9), "none": v[:9] + [None] + v[10:], "int": v[:9] + [5] + v[10:],
             "dict": v[:9] + [{"a": 1}] + v[10:], "no_specials": ["zz"] * 9 + v[9:], "short": v[:5],
             "not_a_list": {"xxunk": 0}}[edit]
    with pytest.raises(ExportError, match=r"field 'state\.vocab_'"):
        pipekit.load(_tampered(saved, _state_edit("vocab_", vocab), tmp_path / "bad.pipekit"))


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    import numpy as np
    import polars as pl

    from pipekit.tabular.processor import TabularProcessor
    from pipekit.tabular.procs import Categorify, FillMissing, Normalize
    df = pl.read_csv(Path(os.environ["PIPEKIT_DATA"]) / "adult_sample" / "adult.csv").head(2000)
    proc = TabularProcessor([Categorify(), FillMissing(), Normalize()], ["workclass", "education"], ["age"], "salary")
    proc.fit_transform(df, np.arange(len(df)) < 1600)
    return proc, df, pipekit.save(proc, tmp_path_factory.mktemp("proc") / "proc.pipekit")


@pytest.mark.parametrize("edit", ["dups", "none", "int", "no_na", "empty"])
def test_categorify_classes_from_file_must_be_distinct_text_after_na(processor, tmp_path, edit):
    proc, df, saved = processor
    assert pipekit.load(saved).transform(df.head(50)).equals(proc.transform(df.head(50)))

    def change(r):
        for p in r["params"]["procs"]:
            if p["class"].endswith("Categorify"):
                v = p["state"]["classes_"]["workclass"]
                p["state"]["classes_"]["workclass"] = {
                    "dups": ["#na#"] * len(v), "none": ["#na#", None] + v[2:], "int": ["#na#", 3] + v[2:],
                    "no_na": v[1:], "empty": []}[edit]
    with pytest.raises(ExportError, match=r"field 'params\.procs\[\d\]\.state\.classes_\.workclass' must be"):
        pipekit.load(_tampered(saved, change, tmp_path / "bad.pipekit"))


# ------------------------------------------------------------------------------------------- ColReader
@pytest.mark.parametrize("params, message", [
    ({"suffix": 5}, r"suffix=5 is not accepted; expected text put after each value"),
    ({"label_delim": 5}, r"label_delim=5 is not accepted"),
    ({"label_delim": ""}, r"label_delim='' is not accepted; expected None or the text between labels"),
    ({"pref": {"a": 1}}, r"pref=\{'a': 1\} is not accepted"),
    ({"cols": ["name", "name"]}, r"cols names a column twice"),
    ({"suffix": ".png", "suff": ".jpg"}, r"give the suffix once"),
])
def test_col_reader_params_from_a_file_are_checked(tmp_path, params, message):
    import polars as pl

    from pipekit.data import ColReader

    saved = pipekit.save(ColReader("name", pref="imgs/", suff=".png"), tmp_path / "cr.pipekit")
    assert pipekit.load(saved).column(pl.DataFrame({"name": ["a"]})).to_list() == ["imgs/a.png"]
    bad = _tampered(saved, lambda r: r["params"].update(params), tmp_path / "bad.pipekit")
    with pytest.raises(ExportError, match=message):
        pipekit.load(bad)


def test_categorize_with_add_na_loads_only_a_vocab_that_starts_with_na(tmp_path, imdb_labels):
    from pipekit.data.blocks import Categorize
    cat = Categorize(add_na=True)
    cat.setup(imdb_labels)
    assert cat.vocab == ["#na#", "negative", "positive"]
    saved = pipekit.save(cat, tmp_path / "cat.pipekit")
    assert pipekit.load(saved).encode(["positive", "neutral", None]).tolist() == [2, 0, 0]
    for vocab, match in ((["negative", "positive"], "must start with '#na#'"),
                         (["#na#", "positive", "negative"], "must be sorted")):
        with pytest.raises(ExportError, match=rf"field 'state\.vocab_' {match}"):
            pipekit.load(_tampered(saved, _state_edit("vocab_", vocab), tmp_path / "bad.pipekit"))
