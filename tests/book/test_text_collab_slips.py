"""Chapters 8 and 10 as a reader types them, slips included: a text block made for one column and read from
another, a number given to a text model, a vocabulary nothing reaches, one class of labels, a missing id,
ratings stored as text, one column named twice, the book's dls.classes and get_emb_sz(dls)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.tabular import CollabDataLoaders, get_emb_sz
from pipekit.text import TextBlock, TextDataLoaders


def _reviews() -> pl.DataFrame:
    return pl.DataFrame({"review": ["A great film!", "Dull.", "Great fun", "So dull"] * 4,
                         "title": ["alpha", "beta", "gamma", "delta"] * 4,
                         "label": ["pos", "neg", "pos", "neg"] * 4, "is_valid": [False] * 12 + [True] * 4})


def test_a_text_block_reads_the_column_it_was_made_for():
    block = TextBlock.from_df("review", min_freq=1, cache_dir=False)
    dls = DataBlock(blocks=(block, CategoryBlock), get_y=ColReader("label"),
                    splitter=ColSplitter("is_valid")).dataloaders(_reviews(), bs=4, seed=0)
    vocab = dls.train.dataset.blocks[0].vocab
    assert "dull" in vocab and "alpha" not in vocab  # the reviews, not the titles
    with pytest.raises(ParameterError, match=r"TextBlock was made for column\(s\) 'review' but its getter reads "
                                             r"'title'"):
        DataBlock(blocks=(TextBlock.from_df("review", min_freq=1, cache_dir=False), CategoryBlock),
                  get_x=ColReader("title"), get_y=ColReader("label"),
                  splitter=ColSplitter("is_valid")).dataloaders(_reviews(), bs=4, seed=0)


def test_text_slips_are_said():
    with pytest.raises(DataError, match=r"TextBlock takes texts or paths of text files, got Int64 values \(e.g. 5\)"):
        TextBlock.from_folder().texts(pl.Series([5]))
    with pytest.raises(DataError, match=r"a text model predicts on texts: item 0 is 5 \(Int64\); give a str"):
        TextBlock.from_folder().texts(pl.Series([5]), new=True)
    df = _reviews()
    with pytest.raises(PipelineStepError, match=r"no token appears min_freq=1000 times .*appears \d+ times.*lower "
                                                r"min_freq"):
        TextDataLoaders.from_df(df, text_col="review", is_lm=True, min_freq=1000, valid_col="is_valid", bs=4)
    one = df.with_columns(pl.lit("pos").alias("label"))
    with pytest.warns(UserWarning, match=r"the training labels hold a single class 'pos'"):
        TextDataLoaders.from_df(one, text_col="review", label_col="label", valid_col="is_valid", bs=4, min_freq=1)


def test_collab_slips_and_the_books_lookups():
    ratings = pl.read_csv(D.path("movie_lens_sample") / "ratings.csv").head(2000)
    as_text = ratings.with_columns(pl.col("rating").cast(pl.String))
    with pytest.raises(DataError, match=r"the ratings 'rating' are String \(e.g. '\d\.\d'\), not numbers; cast them "
                                        r"first: df.with_columns\(pl.col\('rating'\).cast\(pl.Float32\)\)"):
        CollabDataLoaders.from_df(as_text, user_name="userId", item_name="movieId", rating_name="rating")
    with pytest.raises(ParameterError, match="must name three different columns"):
        CollabDataLoaders.from_df(ratings, user_name="movieId", item_name="movieId", rating_name="rating")
    # a missing id (NaN in a float column) is missing, not a user called 'NaN'; and a rating without its user
    # would train the #na# slot that users never seen in training predict from: refused, naming the rows
    gaps = ratings.with_columns(pl.when(pl.int_range(pl.len()) % 97 == 0).then(float("nan"))
                                .otherwise(pl.col("userId").cast(pl.Float64)).alias("userId"))
    with pytest.raises(DataError, match=r"'userId' is missing in 21 of 2000 rows \(first rows \[0, 97, 194"):
        CollabDataLoaders.from_df(gaps, user_name="userId", item_name="movieId", rating_name="rating", seed=0)
    # the book's lookups
    dls = CollabDataLoaders.from_df(ratings, user_name="userId", item_name="movieId", rating_name="rating", seed=0)
    assert list(dls.classes) == ["userId", "movieId"]
    assert get_emb_sz(dls) == get_emb_sz(["userId", "movieId"], dls.classes)
    assert [n for n, _ in get_emb_sz(dls)] == [len(dls.classes["userId"]), len(dls.classes["movieId"])]
    with pytest.raises(ParameterError, match="get_emb_sz takes"):
        get_emb_sz(np.zeros(3))


def test_a_text_classifier_is_given_texts():
    from pipekit.text import AWD_LSTM, text_classifier_learner

    dls = TextDataLoaders.from_df(_reviews(), text_col="review", label_col="label", valid_col="is_valid", bs=4,
                                  min_freq=1, seed=0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=16, n_layers=1))
    assert learn.predict("a great film")[0] in ("pos", "neg")
    with pytest.raises(DataError, match=r"a text model predicts on texts: item 0 is 5 \(Int64\); give a str"):
        learn.predict(5)
    with pytest.raises(TypeError, match=r"item 0 is a str, item 1 a int: 3"):
        learn.dls.test_dl(["good", 3, "bad"])


def test_a_language_models_window_given_to_dataloaders_survives_export(tmp_path):
    import pandas as pd
    import torch

    from pipekit.data import RandomSplitter
    from pipekit.learn import load_learner
    from pipekit.text import AWD_LSTM, language_model_learner

    torch.set_num_threads(1)
    df = pd.read_csv(D.path("imdb_sample") / "texts.csv").head(60)
    db = DataBlock(blocks=TextBlock.from_df("text", is_lm=True), get_x=ColReader("text"),
                   splitter=RandomSplitter(0.2, seed=0))
    dls = db.dataloaders(df, bs=8, seq_len=24, seed=0)
    assert dls.train.one_batch()[0].shape == (8, 24)
    learn = language_model_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=16, n_layers=1))
    learn.fit(1, 1e-2)
    learn.export(tmp_path / "lm.pipekit")
    back = load_learner(tmp_path / "lm.pipekit")
    assert next(iter(back.dls.test_dl(df.head(10))))[0].shape[1] == 24  # not the block's default of 72
    assert db.dataloaders(df, bs=8, seed=0).train.one_batch()[0].shape[1] == 72  # the user's DataBlock unchanged
