"""Ratings read as text: the refusal names the first value that is not a number, and its fix works."""

import re

import polars as pl
import pytest

from pipekit.core.errors import DataError
from pipekit.datasets import path
from pipekit.tabular import CollabDataLoaders


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(path("movie_lens_sample") / "ratings.csv")


def _as_text(ratings: pl.DataFrame, bad: dict[int, str]) -> pl.DataFrame:
    text = ratings["rating"].cast(pl.String).to_list()
    for row, value in bad.items():
        text[row] = value
    return ratings.with_columns(pl.Series("rating", text))


def test_a_rating_that_is_no_number_is_named_with_its_row_and_count(ratings, tmp_path):
    file = tmp_path / "ratings.csv"
    _as_text(ratings, {3: "4 stars"}).write_csv(file)
    with pytest.raises(DataError) as info:
        CollabDataLoaders.from_csv(file, bs=64, seed=42)
    msg = str(info.value)
    assert "'4 stars' at row 3 (1 such rows)" in msg
    assert str(file) in msg and "strict=False" in msg and "drop_nulls('rating')" in msg
    assert "(e.g. '4.0')" not in msg
    # the suggested fix reads the file's ratings as numbers, drops the one that is not, and trains
    fixed = pl.read_csv(file).with_columns(pl.col("rating").cast(pl.Float32, strict=False)).drop_nulls("rating")
    assert len(fixed) == len(ratings) - 1
    dls = CollabDataLoaders.from_df(fixed, bs=64, seed=42)
    assert len(dls.train_ds) + len(dls.valid_ds) == len(ratings) - 1


def test_several_bad_ratings_are_counted(ratings):
    df = _as_text(ratings, {10: "n/a", 20: "five", 30: "?"})
    with pytest.raises(DataError, match=re.escape("'n/a' at row 10 (3 such rows)")):
        CollabDataLoaders.from_df(df, bs=64, seed=42)


def test_numbers_written_as_text_get_the_cast_that_works(ratings):
    df = _as_text(ratings, {})
    assert df.schema["rating"] == pl.String
    with pytest.raises(DataError) as info:
        CollabDataLoaders.from_df(df, bs=64, seed=42)
    msg = str(info.value)
    assert "are String (e.g. '4.0'), not numbers; cast them first" in msg
    assert "df.with_columns(pl.col('rating').cast(pl.Float32))" in msg and "such rows" not in msg
    cast = df.with_columns(pl.col("rating").cast(pl.Float32))
    dls = CollabDataLoaders.from_df(cast, bs=64, seed=42)
    assert len(dls.train_ds) + len(dls.valid_ds) == len(ratings)


def test_numbers_with_spaces_get_a_cast_that_strips_them(ratings):
    df = _as_text(ratings, {5: " 3.5 "})
    with pytest.raises(DataError) as info:
        CollabDataLoaders.from_df(df, bs=64, seed=42)
    assert "pl.col('rating').str.strip_chars().cast(pl.Float32))" in str(info.value)
    cast = df.with_columns(pl.col("rating").str.strip_chars().cast(pl.Float32))
    assert cast["rating"][5] == 3.5 and cast["rating"].null_count() == 0


def test_pandas_ratings_get_the_pandas_fix(ratings):
    pd = pytest.importorskip("pandas")
    df = _as_text(ratings, {7: "4 stars"}).to_pandas()
    with pytest.raises(DataError, match=re.escape("'4 stars' at row 7 (1 such rows)")) as info:
        CollabDataLoaders.from_df(df, bs=64, seed=42)
    assert "pd.to_numeric(df['rating'], errors='coerce')" in str(info.value)
    df["rating"] = pd.to_numeric(df["rating"], errors="coerce")
    df = df.dropna(subset=["rating"])
    dls = CollabDataLoaders.from_df(df, bs=64, seed=42)
    assert len(dls.train_ds) + len(dls.valid_ds) == len(ratings) - 1
