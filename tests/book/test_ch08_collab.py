"""Chapter 8, as a reader writes it: MovieLens ratings from a CSV (``CollabDataLoaders.from_csv``), a
dot-product model with biases (``collab_learner(n_factors=50, y_range=(0, 5.5))``), then one rating
predicted from a row in every form a user holds it, the same after export in a fresh process.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from book_helpers import fresh_predictions

import pipekit
import pipekit.datasets as D
from pipekit.learn import mse
from pipekit.tabular import CollabDataLoaders, collab_learner

path = D.path("movie_lens_sample")


@pytest.fixture(scope="module")
def learn(one_torch_thread):
    dls = CollabDataLoaders.from_csv(path / "ratings.csv", bs=64, seed=42)
    pipekit.set_seed(42)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5), metrics=mse)
    learn.fit_one_cycle(5, 5e-3, wd=0.1)
    return learn


def test_ratings_are_learned_better_than_the_mean(learn):
    tab = learn.dls.tabular
    train_mean = float(tab.train.y_array().mean())
    valid_y = tab.valid.y_array()
    baseline = float(((valid_y - train_mean) ** 2).mean())  # predicting the average rating
    assert learn.recorder.value("mse") < 0.95 * baseline, (learn.recorder.value("mse"), baseline)


def test_predict_a_rating_from_a_row(learn, tmp_path):
    ratings = pl.read_csv(path / "ratings.csv")
    row = ratings.row(10, named=True)
    forms = {"dict": {"userId": row["userId"], "movieId": row["movieId"]}, "with the rating too": row,
             "pandas Series": pd.Series(row), "pandas frame": ratings.to_pandas().iloc[[10]], "polars frame": ratings[10]}
    preds = {k: learn.predict(v) for k, v in forms.items()}
    ref = float(preds["dict"][0])
    assert 0.0 < ref < 5.5
    for k, p in preds.items():
        assert float(p[0]) == pytest.approx(ref, abs=1e-6), k
    # an unknown user falls back to the biases (index 0, '#na#'), it is not an error
    unknown = float(learn.predict({"userId": -1, "movieId": row["movieId"]})[0])
    assert 0.0 < unknown < 5.5 and unknown != ref
    with pytest.raises(ValueError, match="movieId"):
        learn.predict({"userId": row["userId"]})
    there = fresh_predictions(learn.export(tmp_path / "collab.pipekit"),
                              [("row", forms["dict"]), ("pandas_row", forms["dict"])], tmp_path)
    for decoded, _ in there:
        assert float(np.asarray(decoded).reshape(-1)[0]) == pytest.approx(ref, abs=1e-6)
