"""Chapter 8, as a reader writes it: MovieLens ratings from a CSV (``CollabDataLoaders.from_csv``), the
chapter's own models from scratch (``DotProduct``, ``CollabNN``) in a plain ``Learner``, a
dot-product model with biases (``collab_learner(n_factors=50, y_range=(0, 5.5))``), then one rating
predicted from a row in every form a user holds it, the same after export in a fresh process.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from book_helpers import fresh_predictions
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.learn import Embedding, Learner, Module, MSELossFlat, mse, sigmoid_range
from pipekit.tabular import CollabDataLoaders, collab_learner, get_emb_sz

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


class DotProduct(Module):  # the book's spelling: Module needs no super().__init__(), Embedding starts small
    def __init__(self, n_users, n_movies, n_factors, y_range=(0, 5.5)):
        self.user_factors = Embedding(n_users, n_factors)
        self.movie_factors = Embedding(n_movies, n_factors)
        self.y_range = y_range

    def forward(self, x):
        users = self.user_factors(x[:, 0])
        movies = self.movie_factors(x[:, 1])
        return sigmoid_range((users * movies).sum(dim=1), *self.y_range)


class CollabNN(Module):
    def __init__(self, user_sz, item_sz, y_range=(0, 5.5), n_act=100):
        super().__init__()  # harmless, as in fastai
        self.user_factors = Embedding(*user_sz)
        self.item_factors = Embedding(*item_sz)
        self.layers = nn.Sequential(nn.Linear(user_sz[1] + item_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1))
        self.y_range = y_range

    def forward(self, x):
        embs = self.user_factors(x[:, 0]), self.item_factors(x[:, 1])
        x = self.layers(torch.cat(embs, dim=1))
        return sigmoid_range(x, *self.y_range)


def test_the_books_models_from_scratch_train_on_the_loaders(one_torch_thread):
    """The chapter's own models take one input ``x`` of (user, item) codes: ``x[:, 0]`` users, ``x[:, 1]`` movies."""
    dls = CollabDataLoaders.from_csv(path / "ratings.csv", bs=64, seed=42)
    x, y = dls.one_batch()
    assert x.shape == (64, 2) and y.shape == (64, 1)
    users, movies = dls.classes["userId"], dls.classes["movieId"]
    assert int(x[:, 0].max()) < len(users) and int(x[:, 1].max()) < len(movies)
    tab = dls.tabular
    baseline = float(((tab.valid.y_array() - float(tab.train.y_array().mean())) ** 2).mean())
    pipekit.set_seed(42)
    learn = Learner(dls, DotProduct(len(users), len(movies), 50), loss_func=MSELossFlat())
    learn.fit_one_cycle(5, 5e-3)
    dot_loss = learn.validate()[0]
    assert dot_loss < 0.9 * baseline, (dot_loss, baseline)
    pipekit.set_seed(42)
    embs = get_emb_sz(dls)
    learn = Learner(dls, CollabNN(*embs), loss_func=MSELossFlat())
    learn.fit_one_cycle(5, 5e-3, wd=0.01)
    nn_loss = learn.validate()[0]
    assert nn_loss < 0.9 * baseline, (nn_loss, baseline)
    row = pl.read_csv(path / "ratings.csv").row(10, named=True)
    pred = learn.predict({"userId": row["userId"], "movieId": row["movieId"]})
    assert 0.0 < float(pred[0]) < 5.5


def test_a_one_hot_product_looks_up_a_users_factors():
    """Chapter 8's ``one_hot(3, n_users).float()``: a matrix product with it is the index lookup an Embedding does."""
    from pipekit.learn import one_hot

    dls = CollabDataLoaders.from_csv(path / "ratings.csv", bs=64, seed=42)
    n_users = len(dls.classes["userId"])
    torch.manual_seed(0)
    user_factors = torch.randn(n_users, 5)
    one_hot_3 = one_hot(3, n_users).float()
    assert one_hot_3.shape == (n_users,) and one_hot_3.sum() == 1 and one_hot_3[3] == 1
    assert torch.equal(user_factors.t() @ one_hot_3, user_factors[3])
    assert one_hot([0, 2], 4).tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match=f"outside 0..{n_users - 1}"):
        one_hot(n_users, n_users)


def test_pandas_ratings_give_pandas_frames_back():
    """The chapter reads ratings with pandas; ``dls.train.xs`` and ``.y`` come back as pandas, labelled as its rows,
    as a table's do."""
    ratings = pd.read_csv(path / "ratings.csv")
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=42)
    xs, y = dls.train.xs, dls.train.y
    assert isinstance(xs, pd.DataFrame) and isinstance(y, pd.Series)
    assert list(xs.columns) == ["userId", "movieId"] and len(xs) == len(dls.train_ds)
    assert np.allclose(y.to_numpy(), ratings.loc[xs.index, "rating"].to_numpy())
    assert isinstance(CollabDataLoaders.from_df(pl.from_pandas(ratings), bs=64, seed=42).train.xs, pl.DataFrame)
