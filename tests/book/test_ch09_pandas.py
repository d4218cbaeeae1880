"""Chapter 9's forest workflow as the book writes it, on Rossmann's store sales read with pandas: a time split by a
condition on the date parts, ``cont_cat_split``, ``TabularPandas(df, procs, cat, cont, y_names=dep_var,
splits=splits)``, then pandas code on ``to.train.xs`` and ``to.train.y`` as they come back: scikit-learn's tree and
forest fitted on them, ``xs.loc[...] = ...``, the feature-importance frame and ``xs[to_keep]``,
``drop(c, axis=1)``, ``value_counts`` read through ``to.classes``, partial dependence on an axis, ``.iloc`` and
``.values``, ``pd.concat`` of the two splits for the domain-shift forest; then the book's net on the same rows
and the mean of the two.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch.nn.functional as F
from sklearn.ensemble import RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

import pipekit
import pipekit.datasets as D
from pipekit.inspection import cluster_columns, plot_partial_dependence
from pipekit.learn import to_np
from pipekit.tabular import (Categorify, FillMissing, Normalize, TabularPandas, add_datepart, cont_cat_split,
                             tabular_learner)

DATES = {"Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Elapsed"}


def r_mse(pred, y):
    return round(math.sqrt(((pred - y) ** 2).mean()), 6)


def m_rmse(m, xs, y):
    return r_mse(m.predict(xs), y)


def rf(xs, y, n_estimators=20, max_samples=20_000, max_features=0.5, min_samples_leaf=5):
    return RandomForestRegressor(n_jobs=-1, n_estimators=n_estimators, max_samples=max_samples,
                                 max_features=max_features, min_samples_leaf=min_samples_leaf, oob_score=True,
                                 random_state=0).fit(xs, y)


def rf_feat_importance(m, df):
    return pd.DataFrame({"cols": df.columns, "imp": m.feature_importances_}).sort_values("imp", ascending=False)


@pytest.fixture(scope="module")
def book():
    path = D.path("rossmann_sample")
    df = pd.read_csv(path / "train.csv", low_memory=False).merge(pd.read_csv(path / "store.csv"), on="Store")
    df = df[(df.Open == 1) & (df.Sales > 0)].drop(columns=["Customers"])  # a filtered frame: its labels have gaps
    dep_var = "Sales"
    df[dep_var] = np.log(df[dep_var])
    df = add_datepart(df, "Date")
    cond = (df.Year < 2015) | (df.Month < 6)
    train_idx, valid_idx = np.where(cond)[0], np.where(~cond)[0]
    splits = (list(train_idx), list(valid_idx))
    cont, cat = cont_cat_split(df, 1, dep_var=dep_var)
    to = TabularPandas(df, [Categorify, FillMissing], cat, cont, y_names=dep_var, splits=splits)
    return df, to, train_idx, valid_idx, dep_var


def test_the_splits_come_back_as_pandas_labelled_as_the_rows(book):
    df, to, train_idx, valid_idx, dep_var = book
    xs, y = to.train.xs, to.train.y
    valid_xs, valid_y = to.valid.xs, to.valid.y
    assert isinstance(xs, pd.DataFrame) and isinstance(y, pd.Series) and y.name == dep_var
    assert list(xs.columns) == to.cat_names + to.cont_names
    assert xs.index.equals(df.index[train_idx]) and valid_xs.index.equals(df.index[valid_idx])
    assert y.index.equals(xs.index) and len(valid_y) == len(valid_idx)
    # the target is the frame's own log sales; a category is its code into to.classes
    np.testing.assert_allclose(valid_y.to_numpy(), df[dep_var].to_numpy()[valid_idx], rtol=1e-6)
    decoded = [to.classes["StoreType"][c] for c in valid_xs["StoreType"].head(50)]
    assert decoded == df.StoreType.iloc[valid_idx[:50]].tolist()
    # the book's fix of a column is made on its copy: the table keeps its values
    old = int((xs["CompetitionOpenSinceYear"] < 1990).sum())
    assert old > 0
    xs.loc[xs["CompetitionOpenSinceYear"] < 1990, "CompetitionOpenSinceYear"] = 1990
    assert int((xs["CompetitionOpenSinceYear"] < 1990).sum()) == 0
    assert int((to.train.xs["CompetitionOpenSinceYear"] < 1990).sum()) == old


def test_forest_importance_clusters_and_domain_shift_in_pandas(book):
    df, to, train_idx, valid_idx, dep_var = book
    xs, y = to.train.xs, to.train.y
    valid_xs, valid_y = to.valid.xs, to.valid.y
    tree = DecisionTreeRegressor(max_leaf_nodes=4).fit(xs, y)
    m = rf(xs, y)
    assert m_rmse(m, valid_xs, valid_y) < m_rmse(tree, valid_xs, valid_y) and m_rmse(m, valid_xs, valid_y) < 0.2
    preds = np.stack([t.predict(valid_xs.values) for t in m.estimators_])  # the trees' spread, as numpy
    assert r_mse(preds.mean(0), valid_y) == pytest.approx(m_rmse(m, valid_xs, valid_y), abs=1e-6)
    assert r_mse(m.oob_prediction_, y) < 0.2
    fi = rf_feat_importance(m, xs)
    to_keep = fi[fi.imp > 0.005].cols
    xs_imp, valid_xs_imp = xs[to_keep], valid_xs[to_keep]
    assert list(xs_imp.columns) == list(to_keep) and 5 < len(to_keep) < xs.shape[1]
    assert "CompetitionDistance" in list(fi.cols[:5]) and "Promo" in list(fi.cols[:5])
    clusters = cluster_columns(xs_imp, plot=False)
    assert sorted(clusters.columns) == sorted(to_keep)
    # Dayofweek and DayOfWeek are one day of the week: a pair ranked the same
    same = {frozenset(r[:2]) for r in clusters.pairs(0.999).iter_rows()}
    assert {"Dayofweek", "DayOfWeek"} <= set(to_keep) and frozenset({"Dayofweek", "DayOfWeek"}) in same
    xs_final, valid_xs_final = xs_imp.drop("Dayofweek", axis=1), valid_xs_imp.drop("Dayofweek", axis=1)
    # value_counts of codes, read as the classes they stand for, are the raw column's counts
    counts = valid_xs_final["StoreType"].value_counts(sort=False)
    c = to.classes["StoreType"]
    assert {c[k]: v for k, v in counts.items()} == df.StoreType.iloc[valid_idx].value_counts().to_dict()
    m = rf(xs_final, y)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plot_partial_dependence(m, valid_xs_final, ["Promo", "CompetitionDistance"], grid_resolution=20, ax=ax)
    assert fig.axes and any(a.lines or a.collections for a in fig.axes)
    plt.close(fig)
    row = valid_xs_final.iloc[:5]
    assert row.values.shape == (5, xs_final.shape[1]) and list(row.index) == list(df.index[valid_idx[:5]])
    df_dom = pd.concat([xs_final, valid_xs_final])
    is_valid = np.array([0] * len(xs_final) + [1] * len(valid_xs_final))
    m_dom = rf(df_dom, is_valid)
    # what tells the validation rows from the training rows is time
    assert rf_feat_importance(m_dom, df_dom).cols.iloc[0] in DATES


def test_the_books_net_and_the_mean_with_the_forest(book, one_torch_thread):
    df, to, train_idx, valid_idx, dep_var = book
    xs, y, valid_xs, valid_y = to.train.xs, to.train.y, to.valid.xs, to.valid.y
    m = rf(xs, y)
    df_nn_final = df[list(xs.columns.drop([c for c in xs.columns if c.endswith("_na")])) + [dep_var]]
    cont_nn, cat_nn = cont_cat_split(df_nn_final, max_card=9000, dep_var=dep_var)
    assert "Elapsed" in cat_nn  # fewer than 9000 days: the book moves its elapsed time back, as here
    cat_nn.remove("Elapsed")
    cont_nn.append("Elapsed")
    splits = (list(train_idx), list(valid_idx))
    to_nn = TabularPandas(df_nn_final, [Categorify, FillMissing, Normalize], cat_nn, cont_nn, splits=splits,
                          y_names=dep_var)
    dls = to_nn.dataloaders(1024)
    y_nn = to_nn.train.y
    assert isinstance(y_nn, pd.Series) and y_nn.min() > 6 and y_nn.max() < 11
    pipekit.set_seed(42)
    learn = tabular_learner(dls, y_range=(6, 11), layers=[500, 250], n_out=1, loss_func=F.mse_loss)
    learn.fit_one_cycle(2, 1e-2)
    preds, targs = learn.get_preds()
    # the net's validation rows are the forest's, in the same order: the book's mean lines them up by position
    np.testing.assert_allclose(to_np(targs).ravel(), valid_y.to_numpy(), rtol=1e-6)
    nn_rmse, rf_preds = r_mse(to_np(preds.squeeze()), valid_y.to_numpy()), m.predict(valid_xs)
    ens_preds = (to_np(preds.squeeze()) + rf_preds) / 2
    assert nn_rmse < 0.35  # log sales vary by 0.41 around their mean
    assert r_mse(ens_preds, valid_y.to_numpy()) < max(nn_rmse, r_mse(rf_preds, valid_y.to_numpy()))
