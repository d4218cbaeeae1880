"""A value a vocabulary does not hold: ``vocab.o2i[value]`` raises a KeyError whose message reads as a sentence
(not quoted, newlines not escaped) naming the value, some classes and what to do, on real adult and movie_lens
vocabularies."""

import traceback

import polars as pl
import pytest

from pipekit.core.errors import NotInVocab, PipekitError
from pipekit.data.vocab import CategoryMap
from pipekit.datasets import path
from pipekit.tabular import CollabDataLoaders


@pytest.fixture(scope="module")
def workclass() -> CategoryMap:
    adult = pl.read_csv(path("adult_sample") / "adult.csv", n_rows=2000)
    return CategoryMap(sorted(adult["workclass"].drop_nulls().unique().to_list()), name="workclass")


def _raised(vocab: CategoryMap, value) -> KeyError:
    with pytest.raises(KeyError) as info:
        vocab.o2i[value]
    return info.value


def test_a_missing_label_reads_as_a_sentence_naming_it_some_classes_and_the_fix(workclass):
    e = _raised(workclass, "Never\nworked")
    assert isinstance(e, NotInVocab) and isinstance(e, KeyError) and isinstance(e, PipekitError)
    msg = str(e)
    assert msg == (f"'Never\\nworked' is not in the vocab of 'workclass' ({len(workclass)} classes, e.g. "
                   f"{list(workclass[:4])!r}); classes are looked up by the value the labels hold; test first with "
                   "`value in vocab.o2i`, or take a default with vocab.o2i.get(value, default)")
    assert not msg.startswith(("'\"", '"')) and "\\'" not in msg
    # the traceback's last line is the sentence itself, as a user sees it
    last = traceback.format_exception_only(type(e), e)[-1]
    assert last == f"pipekit.core.errors.NotInVocab: {msg}\n"
    # a KeyError still: get, `in` and `except KeyError` treat it as any missing key
    assert workclass.o2i.get("Never\nworked", -1) == -1 and "Never\nworked" not in workclass.o2i
    assert workclass.o2i[workclass[2]] == 2


def test_a_column_vocab_never_seen_id_reads_as_a_sentence_too():
    ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv")
    movies = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64).classes["movieId"]
    e = _raised(movies, 888888)
    assert isinstance(e, NotInVocab)
    assert str(e) == ("'movieId': 888888 was never seen in training; 100 known values, e.g. ['1', '10', '32']; "
                      "test first with `value in vocab.o2i`, or take a default with vocab.o2i.get(value, default)")
    assert e.__suppress_context__ and 888888 not in movies.o2i and movies.o2i.get(888888) is None
    assert str(_raised(movies, None)).startswith("'movieId': None is a missing value, scored as #na# (code 0);")


def test_a_plain_key_error_was_quoted():
    """What a plain KeyError does with the same message (why the vocab raises its own)."""
    assert str(KeyError("a\nb")) == "'a\\nb'" and str(NotInVocab("a\nb")) == "a\nb"
