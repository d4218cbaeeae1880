"""``cluster_columns``, ``out_of_domain`` and ``drop_redundant`` on the raw rows a ``TabularClassifier`` /
``TabularRegressor`` is fitted on (text, categories and ISO date text, as a CSV reads them), checked against the
book's way (the Spearman correlation of a Categorify-processed frame) on real adult and Rossmann rows; and
``drop_redundant`` refitting a GBM the way it was fitted, stopping early on the valid split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy.stats import spearmanr

from pipekit.backends import GBM, RandomForest
from pipekit.core import DataError
from pipekit.datasets import path
from pipekit.inspection import cluster_columns, drop_redundant, out_of_domain
from pipekit.sklearn import TabularClassifier, TabularRegressor
from pipekit.tabular import Categorify, FillMissing, Tabular

CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "sex"]
CONTS = ["age", "hours-per-week", "capital-gain"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    df = pd.read_csv(path("adult_sample") / "adult.csv")
    return df.sample(3000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def ross() -> tuple[pd.DataFrame, np.ndarray]:
    p = path("rossmann_sample")
    df = pd.read_csv(p / "train.csv", low_memory=False).merge(pd.read_csv(p / "store.csv"), on="Store")
    df = df[(df.Open == 1) & (df.Sales > 0)].drop(columns=["Customers", "Open"])
    df = df.sample(4000, random_state=0).sort_values("Date").reset_index(drop=True)
    return df, np.log(df.pop("Sales").to_numpy().astype(float))


def test_cluster_columns_of_raw_rows_is_the_categorified_frames(adult):
    X = adult[CATS + CONTS]
    cc = cluster_columns(X, plot=False)
    assert cc.columns == CATS + CONTS and cc.constant == []  # the user's columns, under their names
    # the book's way: Spearman rank correlation of the frame Categorify made of the same rows
    tab = Tabular(adult, procs=[Categorify], cat_names=CATS, cont_names=CONTS, y_names="salary",
                  splits=(np.arange(len(adult)), np.arange(0)))
    ref = cluster_columns(tab.train, plot=False)
    at = {c: i for i, c in enumerate(ref.columns)}
    order = [at[c] for c in cc.columns]
    assert np.allclose(cc.correlation, ref.correlation[np.ix_(order, order)])
    assert cc.pairs(0.5).select("column_a", "column_b").rows() == [("relationship", "sex")]


def test_out_of_domain_on_raw_rows(adult):
    X = adult.drop(columns="salary")
    alike = out_of_domain(X[:2000], X[2000:], n_estimators=15, n_jobs=1)
    assert alike.auc < 0.65 and sorted(alike.importance["feature"].to_list()) == sorted(X.columns)
    by_age = X.sort_values("age", kind="stable").reset_index(drop=True)
    shifted = out_of_domain(by_age[:2000], by_age[2000:], n_estimators=15, n_jobs=1)
    assert shifted.auc > 0.95 and shifted.separating(1) == ["age"]


def test_out_of_domain_and_clusters_read_iso_date_text_as_time(ross):
    X, _ = ross
    cut = 3200  # the rows are in date order: the later days are the valid rows
    ood = out_of_domain(X[:cut], X[cut:].reset_index(drop=True), n_estimators=15, n_jobs=1)
    assert ood.auc > 0.95 and ood.separating(1) == ["Date"]
    assert sorted(ood.importance["feature"].to_list()) == sorted(X.columns)
    with_time = X.assign(When=pd.to_datetime(X["Date"]))  # the same days as datetimes
    cc = cluster_columns(with_time, plot=False)
    i, j = cc.columns.index("Date"), cc.columns.index("When")
    assert cc.correlation[i, j] == pytest.approx(1.0)
    assert ("Promo2", "PromoInterval") in cc.pairs(0.9).select("column_a", "column_b").rows()
    k = cc.columns.index("DayOfWeek")
    days = pd.to_datetime(X["Date"]).astype("int64")
    assert cc.correlation[i, k] == pytest.approx(spearmanr(days, X["DayOfWeek"]).statistic)


def test_drop_redundant_default_columns_on_raw_rows(adult, ross):
    X, y = adult.drop(columns="salary"), adult["salary"].to_numpy()
    clf = TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1), random_state=0)
    clf.fit(X[:2000], y[:2000])
    report = drop_redundant(clf, (X[:2000], y[:2000]), (X[2000:], y[2000:]), threshold=0.5)
    assert report["dropped"].to_list() == ["(none)", "relationship", "sex"]
    assert report["score"][0] == pytest.approx(clf.score(X[2000:], y[2000:]))
    Xr, yr = ross
    reg = TabularRegressor(RandomForest("regression", n_estimators=10, n_jobs=1), random_state=0)
    reg.fit(Xr[:3200], yr[:3200])
    report = drop_redundant(reg, (Xr[:3200], yr[:3200]), (Xr[3200:], yr[3200:]))
    assert report["dropped"].to_list() == ["(none)", "Promo2", "PromoInterval"]


def test_a_column_that_cannot_be_ranked_is_named(adult):
    X = pl.from_pandas(adult[["age", "hours-per-week", "education"]]).with_columns(
        tags=pl.concat_list(pl.col("education"), pl.col("education")))
    with pytest.raises(DataError, match=r"cluster_columns: column 'tags' holds List.*drop the column"):
        cluster_columns(X, plot=False)
    with pytest.raises(DataError, match=r"out_of_domain: column 'tags' holds List"):
        out_of_domain(X[:2000], X[2000:], n_estimators=5, n_jobs=1)
    from sklearn.dummy import DummyClassifier

    y = adult["salary"].to_numpy()
    dummy = DummyClassifier().fit(X, y)  # an estimator reading the rows as they are
    with pytest.raises(DataError, match=r"drop_redundant: column 'tags' holds List.*pass columns="):
        drop_redundant(dummy, (X, y), (X, y))
    assert drop_redundant(dummy, (X, y), (X, y), columns=["tags"])["dropped"].to_list() == ["(none)", "tags"]


def test_drop_redundant_refits_a_gbm_stopping_early_on_valid(adult):
    tab = Tabular(pl.from_pandas(adult), procs=[Categorify, FillMissing], cat_names=CATS,
                  cont_names=["age", "fnlwgt", "education-num", "hours-per-week"], y_names="salary",
                  splits=(np.arange(2200), np.arange(2200, 3000)))
    gbm = GBM("classification", n_jobs=1, seed=0).fit(tab.train, tab.valid)
    assert gbm.best_iteration_ < 500  # it stopped early on the valid split
    report = drop_redundant(gbm, tab.train, tab.valid, columns=["education"])
    # the score with every column is the model's own: refitted as it was fitted, with the valid split
    assert report["score"][0] == pytest.approx(gbm.score(tab.valid))


def test_drop_redundant_refits_a_gbm_fitted_on_train_alone_without_early_stopping(adult):
    from pipekit.ensemble import MeanEnsemble

    tab = Tabular(pl.from_pandas(adult), procs=[Categorify, FillMissing], cat_names=CATS,
                  cont_names=["age", "fnlwgt", "education-num", "hours-per-week"], y_names="salary",
                  splits=(np.arange(2200), np.arange(2200, 3000)))
    gbm = GBM("classification", n_jobs=1, seed=0, n_estimators=300).fit(tab.train)  # no valid split
    assert gbm.valid_score_ is None
    report = drop_redundant(gbm, tab.train, tab.valid, columns=["education"])
    # refitted as it was fitted, on train alone: the score with every column is the model's own
    assert report["score"][0] == pytest.approx(gbm.score(tab.valid))
    ens = MeanEnsemble([gbm, RandomForest("classification", n_estimators=10, n_jobs=1, seed=0).fit(tab.train)]).fit()
    report = drop_redundant(ens, tab.train, tab.valid, columns=["education"])
    assert report["score"][0] == pytest.approx(ens.score(tab.valid))


@pytest.mark.parametrize("form", ["pandas", "numpy", "pyarrow", "polars"])
def test_empty_rows_are_named(adult, form):
    import pyarrow as pa

    num = adult[["age", "fnlwgt", "education"]].head(50)
    frame = {"pandas": lambda f: f, "numpy": lambda f: f.to_numpy(), "pyarrow": pa.Table.from_pandas,
             "polars": pl.from_pandas}[form]
    full, empty = frame(num), frame(num.iloc[:0])
    with pytest.raises(DataError, match=r"out_of_domain needs rows in both sets; got 50 train and 0 valid"):
        out_of_domain(full, empty, n_estimators=5, n_jobs=1)
    with pytest.raises(DataError, match=r"out_of_domain needs rows in both sets; got 0 train and 50 valid"):
        out_of_domain(empty, full, n_estimators=5, n_jobs=1)
    with pytest.raises(DataError, match=r"cluster_columns: the rows are empty \(0 rows of columns"):
        cluster_columns(empty, plot=False)
    if form != "polars":
        no_columns = frame(num[[]])
        with pytest.raises(DataError, match=r"out_of_domain needs at least one column"):
            out_of_domain(no_columns, no_columns, n_estimators=5, n_jobs=1)


def test_out_of_domain_takes_category_columns_made_on_each_set(adult):
    X = adult.drop(columns="salary")
    tr, va = X[:2000].copy(), X[2000:].reset_index(drop=True)
    for c in ["workclass", "native-country"]:  # each set made categorical on its own: other categories
        tr[c], va[c] = tr[c].astype("category"), va[c].astype("category")
    assert not tr["native-country"].cat.categories.equals(va["native-country"].cat.categories)
    alike = out_of_domain(tr, va, n_estimators=15, n_jobs=1)
    assert alike.auc < 0.65 and sorted(alike.importance["feature"].to_list()) == sorted(X.columns)
    # a category only the valid rows hold tells them apart: its code is learned on both sets together
    kind = pd.Categorical(np.where(X["age"] < 40, "young", "old"))
    shifted = X.assign(workclass=kind)
    tr, va = shifted[:2000].copy(), shifted[2000:].reset_index(drop=True)
    tr["workclass"] = tr["workclass"].astype(str).astype("category")
    va["workclass"] = pd.Categorical(np.full(len(va), "retired"))
    ood = out_of_domain(tr, va, n_estimators=15, n_jobs=1)
    assert ood.auc > 0.99 and ood.separating(1) == ["workclass"]
    # a Polars Enum in one set and text in the other: read as text
    ptr = pl.from_pandas(tr).with_columns(pl.col("workclass").cast(pl.String))
    ood = out_of_domain(ptr, va, n_estimators=15, n_jobs=1)
    assert ood.auc > 0.99 and ood.separating(1) == ["workclass"]


@pytest.mark.parametrize("form", ["pandas", "polars"])
def test_an_ordered_category_ranks_in_its_own_order(form):
    sizes = ["Large", "Large / Medium", "Medium", "Small", "Mini", "Compact"]  # ProductSize, largest first
    k = np.random.default_rng(0).integers(0, len(sizes), 300)
    names = np.array(sizes)[k]
    size = (pd.Categorical(names, categories=sizes, ordered=True) if form == "pandas"
            else pl.Series(names).cast(pl.Enum(sizes)))
    rank = k.astype(float)  # the size's place in that order
    X = pd.DataFrame({"size": size, "rank": rank}) if form == "pandas" else pl.DataFrame({"size": size, "rank": rank})
    cc = cluster_columns(X, plot=False)
    assert cc.columns == ["size", "rank"]
    assert cc.correlation[0, 1] == pytest.approx(1.0)  # codes in the category order, not the sorted one
    assert spearmanr(pd.Series(names).rank(method="dense"), rank).statistic < 0.9  # sorted text ranks otherwise


def test_columns_labelled_by_numbers_keep_their_labels_as_text(adult):
    X = adult[["age", "education-num", "hours-per-week", "education"]]
    numbered = X.set_axis([0, 1, 2, 3], axis=1)  # a frame made from an array, or read without a header
    cc = cluster_columns(numbered, plot=False)
    assert cc.columns == ["0", "1", "2", "3"]  # the names the rows are given to a model by (not x0, x1, ...)
    assert np.allclose(cc.correlation, cluster_columns(X, plot=False).correlation)
    ood = out_of_domain(numbered[:1500], numbered[1500:].reset_index(drop=True), n_estimators=5, n_jobs=1)
    assert sorted(ood.importance["feature"].to_list()) == ["0", "1", "2", "3"]
    with pytest.raises(DataError, match=r"out_of_domain needs rows in both sets; got 1500 train and 0 valid"):
        out_of_domain(numbered[:1500], numbered[:0], n_estimators=5, n_jobs=1)
    y = adult["salary"].to_numpy()
    clf = TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1), random_state=0)
    clf.fit(numbered[:2000], y[:2000])
    report = drop_redundant(clf, (numbered[:2000], y[:2000]), (numbered[2000:], y[2000:]), columns=["3"])
    assert report["dropped"].to_list() == ["(none)", "3"]  # the refit drops the column labelled 3
