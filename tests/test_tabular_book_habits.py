"""The tabular chapter's habits with pipekit's objects: the target of a split as a 1-D Series (``to.train.y``),
``add_datepart`` on the reader's own frame type, searching a backend named by a string."""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Tabular


def _r_mse(pred, y):
    return float(np.sqrt(((pred - y) ** 2).mean()))


def test_a_splits_y_is_its_one_target_and_scores_a_1d_prediction():
    from sklearn.tree import DecisionTreeRegressor

    df = pd.read_csv(path("adult_sample") / "adult.csv")
    to = Tabular(df, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                 cont_names=["fnlwgt", "education-num"], y_names="age", splits=RandomSplitter(0.1, seed=42))
    xs, y, valid_xs, valid_y = to.train.xs, to.train.y, to.valid.xs, to.valid.y
    assert isinstance(y, pl.Series) and y.name == "age" and y.shape == (len(to.train),)
    assert np.asarray(valid_y).shape == (len(to.valid),)
    np.testing.assert_array_equal(np.asarray(valid_y), to.valid.y_array())
    assert valid_y.to_list() == to.valid.ys["age"].to_list()  # the same values, one dimension
    m = DecisionTreeRegressor(min_samples_leaf=25, random_state=0).fit(xs, y)
    pred = m.predict(valid_xs)
    assert (pred - valid_y).shape == (len(to.valid),)
    score = _r_mse(pred, valid_y)
    assert score == pytest.approx(float(np.sqrt(np.mean((pred - df["age"].to_numpy()[to.valid_idx]) ** 2))), rel=1e-6)
    # the (n, 1) frame broadcasts to (n, n) and gives another, plausible number: why .y exists
    assert abs(_r_mse(pred, to.valid.ys.to_numpy()) - score) > 0.5
    # a classification target is its codes into y_vocab
    to = Tabular(df.head(3000), procs=[Categorify], cat_names=["workclass"], y_names="salary",
                 splits=RandomSplitter(0.2, seed=1))
    assert to.valid.y.dtype == pl.Int64 and set(to.valid.y.unique()) <= {0, 1}
    assert [to.y_vocab[c] for c in to.valid.y.head(5)] == df["salary"].to_numpy()[to.valid_idx[:5]].tolist()
    # new rows without the target column: no y, as no ys
    assert to.new(df.head(5).drop(columns="salary")).y is None


def test_y_with_several_targets_points_to_ys():
    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=500)
    to = Tabular(df, procs=[Categorify], cat_names=["workclass"], y_names=["age", "fnlwgt"],
                 splits=RandomSplitter(0.2, seed=1))
    with pytest.raises(ParameterError, match=r"valid.y is the one target .* 2 \(\['age', 'fnlwgt'\]\): use .ys"):
        _ = to.valid.y
    assert to.valid.ys.shape == (len(to.valid), 2)
