"""Ratings are (n, 1) targets, as fastai's and the tabular loaders' regression targets are, and the collab models
predict (bs, 1): the book's chapter 8 models with ``keepdim=True`` train on the same loss through ``F.mse_loss``,
``nn.MSELoss`` and ``MSELossFlat``, and none is broadcast to (bs, bs). Real movie_lens_sample ratings."""

from __future__ import annotations

import warnings

import polars as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
from pipekit.datasets import path
from pipekit.learn import Embedding, Learner, Module, MSELossFlat, load_learner, mae, rmse, sigmoid_range
from pipekit.tabular import CollabDataLoaders, collab_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(path("movie_lens_sample") / "ratings.csv")


class DotProductBias(Module):
    """The book's chapter 8 model, its output kept (bs, 1) by ``keepdim=True``."""

    def __init__(self, n_users, n_movies, n_factors, y_range=(0, 5.5)):
        self.user_factors, self.user_bias = Embedding(n_users, n_factors), Embedding(n_users, 1)
        self.movie_factors, self.movie_bias = Embedding(n_movies, n_factors), Embedding(n_movies, 1)
        self.y_range = y_range

    def forward(self, x):
        users, movies = self.user_factors(x[:, 0]), self.movie_factors(x[:, 1])
        res = (users * movies).sum(dim=1, keepdim=True)
        res += self.user_bias(x[:, 0]) + self.movie_bias(x[:, 1])
        return sigmoid_range(res, *self.y_range)


class DotProduct(Module):
    """The book's first model: ``.sum(dim=1)``, an output of (bs,)."""

    def __init__(self, n_users, n_movies, n_factors, y_range=(0, 5.5)):
        self.user_factors, self.movie_factors = Embedding(n_users, n_factors), Embedding(n_movies, n_factors)
        self.y_range = y_range

    def forward(self, x):
        return sigmoid_range((self.user_factors(x[:, 0]) * self.movie_factors(x[:, 1])).sum(dim=1), *self.y_range)


def _broadcasts(fit) -> list[str]:
    """The broadcasting warnings torch gives while ``fit()`` trains (quietly: no bar, no table)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [str(w.message) for w in caught if "broadcast" in str(w.message) or "target size" in str(w.message)]


def _quiet(learn, method: str, *args, **kwargs):
    def fit():
        with learn.no_bar(), learn.no_logging():
            getattr(learn, method)(*args, **kwargs)
    return fit


def test_ratings_batches_are_one_column_of_floats(ratings):
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    x, y = dls.one_batch()
    assert x.shape == (64, 2) and x.dtype == torch.long
    assert y.shape == (64, 1) and y.dtype == torch.float32
    _, yv = next(iter(dls.valid))
    assert yv.shape[1:] == (1,)
    # rows to score with their ratings are batched alike
    _, yt = next(iter(dls.test_dl(ratings.head(10), with_labels=True)))
    assert yt.shape == (10, 1)
    assert torch.allclose(yt[:, 0], torch.tensor(ratings["rating"].head(10).to_list(), dtype=torch.float32))


def test_the_books_keepdim_model_trains_alike_through_every_mse_loss(ratings):
    results = {}
    for name, loss in (("MSELossFlat", MSELossFlat()), ("F.mse_loss", F.mse_loss), ("nn.MSELoss", nn.MSELoss())):
        pipekit.set_seed(42)
        dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
        model = DotProductBias(len(dls.classes["userId"]), len(dls.classes["movieId"]), 20)
        learn = Learner(dls, model, loss_func=loss, metrics=rmse)
        assert _broadcasts(_quiet(learn, "fit_one_cycle", 1, 5e-3, wd=0.1)) == [], name
        results[name] = learn.recorder.values[-1]
        # the loss is the mean squared error of each rating against its own prediction, not over 64 x 64 pairs
        preds, targs = learn.get_preds()
        assert preds.shape == targs.shape == (len(dls.valid_ds), 1)
        assert results[name][1] == pytest.approx(float(((preds - targs) ** 2).mean()), abs=1e-5), name
    flat = results["MSELossFlat"]
    for name in ("F.mse_loss", "nn.MSELoss"):
        assert results[name] == pytest.approx(flat, abs=1e-6), name


@pytest.mark.parametrize("use_nn", [False, True])
def test_collab_learner_predicts_the_targets_shape(ratings, use_nn, tmp_path):
    pipekit.set_seed(0)
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    learn = collab_learner(dls, n_factors=20, use_nn=use_nn, y_range=(0, 5.5), metrics=[rmse(), mae()])
    assert learn.model(dls.one_batch()[0]).shape == (64, 1)
    for loss in (F.mse_loss, nn.MSELoss()):  # a user's own loss sees like shapes
        learn.loss_func = loss
        assert _broadcasts(_quiet(learn, "fit", 1, 1e-3)) == []
    preds, targs = learn.get_preds()
    assert targs.shape == (len(dls.valid_ds), 1) and preds.shape == targs.shape
    loss, err, abs_err = learn.validate()
    assert err == pytest.approx(float(((preds - targs) ** 2).mean().sqrt()), abs=1e-5)
    assert abs_err == pytest.approx(float((preds - targs).abs().mean()), abs=1e-5)
    rating, decoded, raw = learn.predict(ratings.row(0, named=True))
    assert isinstance(rating, float) and raw.shape == (1,) and float(raw[0]) == pytest.approx(rating, abs=1e-6)
    learn.path = tmp_path
    learn.export("collab.pkl")
    back = load_learner(tmp_path / "collab.pkl")
    rows = ratings.head(12)
    new, _ = back.get_preds(dl=back.dls.test_dl(rows))
    old, _ = learn.get_preds(dl=dls.test_dl(rows))
    assert new.shape == (12, 1) and torch.allclose(new, old, atol=1e-6)


def test_the_books_flat_model_still_trains_with_mse_loss_flat(ratings):
    pipekit.set_seed(42)
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    learn = Learner(dls, DotProduct(len(dls.classes["userId"]), len(dls.classes["movieId"]), 20),
                    loss_func=MSELossFlat(), metrics=rmse)
    assert _broadcasts(_quiet(learn, "fit_one_cycle", 2, 5e-3)) == []
    preds, targs = learn.get_preds()
    assert preds.shape == (len(dls.valid_ds),) and targs.shape == (len(dls.valid_ds), 1)
    valid_loss, err = learn.recorder.values[-1][1:]
    assert valid_loss == pytest.approx(float(((preds - targs[:, 0]) ** 2).mean()), abs=1e-5)
    assert err == pytest.approx(valid_loss ** 0.5, abs=1e-4) and valid_loss < 1.0
