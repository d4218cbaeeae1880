"""The chapter 9 inspection tools on what the book hands them: a scikit-learn forest fitted on some of a split's
columns, scored on the Tabular's splits or out of bag with few trees, a class picked from a two-class GBM's
contributions, a forest wrapped in ``SklearnModel``, and rows given as arrays (``row.values``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import accuracy_score

import pipekit.datasets as D
from pipekit.backends import GBM, RandomForest, SklearnModel, as_data
from pipekit.core import DataError, ParameterError
from pipekit.ensemble import MeanEnsemble
from pipekit.inspection import (contributions, drop_redundant, permutation_importance, prune_features,
                                waterfall_plot)
from pipekit.tabular import Categorify, FillMissing, Tabular, TabularPandas

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]
KEEP = ["relationship", "education-num", "age", "occupation", "marital-status", "fnlwgt"]


@pytest.fixture(scope="module")
def subset_forest():
    """The book's forest of the important columns: fitted on ``xs[keep]`` of 2000 adult rows."""
    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=3000)
    to = TabularPandas(df, [Categorify, FillMissing], CAT, CONT, y_names="salary",
                       splits=(list(range(2000)), list(range(2000, 3000))))
    m = RandomForestClassifier(n_estimators=10, min_samples_leaf=5, max_features=0.5, random_state=0,
                               n_jobs=1).fit(to.train.xs[KEEP], to.train.y)
    return to, m


def test_drop_redundant_refits_the_columns_the_forest_was_fitted_on(subset_forest):
    to, m = subset_forest
    own = accuracy_score(to.valid.y, m.predict(to.valid.xs[KEEP]))
    report = drop_redundant(m, to.train, to.valid, columns=["age"])
    assert report["dropped"].to_list() == ["(none)", "age"]
    assert report["score"][0] == pytest.approx(own, abs=1e-12)  # the user's model, not one of every column


def test_prune_features_and_permutation_importance_read_the_forest_columns(subset_forest):
    to, m = subset_forest
    p = prune_features(m, to.train, to.valid, threshold=0.1)
    assert p.score_before == pytest.approx(accuracy_score(to.valid.y, m.predict(to.valid.xs[KEEP])), abs=1e-12)
    assert set(p.kept) | set(p.dropped) == set(KEEP)
    assert list(p.model.feature_names_in_) == [c for c in KEEP if c in p.kept]
    imp = permutation_importance(m, to.valid, n_repeats=1, seed=0)
    assert sorted(imp["feature"].to_list()) == sorted(KEEP)


def test_a_column_the_split_lacks_is_named(subset_forest):
    to, _ = subset_forest
    xs = to.train.xs[KEEP].assign(extra=0.0)
    m = RandomForestClassifier(n_estimators=3, random_state=0, n_jobs=1).fit(xs, to.train.y)
    for call in (lambda: drop_redundant(m, to.train, to.valid, columns=["age"]),
                 lambda: prune_features(m, to.train, to.valid),
                 lambda: permutation_importance(m, to.valid, n_repeats=1)):
        with pytest.raises(DataError, match="extra"):
            call()


def test_out_of_bag_scores_leave_out_rows_no_tree_left_out():
    df = pd.read_csv(D.path("rossmann_sample") / "train.csv", nrows=4000, low_memory=False)
    df = df[(df.Open == 1) & (df.Sales > 0)]
    xs, y = df[["Store", "DayOfWeek", "Promo", "SchoolHoliday"]], np.log(df["Sales"])
    m = RandomForestRegressor(n_estimators=3, min_samples_leaf=5, oob_score=True, random_state=0, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns of the rows without an out-of-bag prediction
        m.fit(xs, y)
        report = drop_redundant(m, (xs, y), columns=["SchoolHoliday"])
    left_out = sum((np.bincount(s, minlength=len(xs)) == 0).astype(int) for s in m.estimators_samples_)
    assert (left_out == 0).sum() > 100  # three trees draw many rows into every sample
    seen = left_out > 0
    want = np.sqrt(((m.oob_prediction_[seen] - y.to_numpy()[seen]) ** 2).mean())
    assert report["score"][0] == pytest.approx(want, rel=1e-9)
    assert report["score"][0] < 1.0  # counting the rows as predicting 0 gave several times this


@pytest.fixture(scope="module")
def adult_numbers():
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=2000).drop_nulls()
    xs = adult.select(["age", "education-num", "hours-per-week", "capital-gain"]).cast(pl.Float64)
    return xs, adult["salary"].to_numpy()


def test_frame_cls_of_a_two_class_gbm(adult_numbers, tmp_path):
    xs, y = adult_numbers
    g = GBM("classification", n_estimators=20, seed=0, n_jobs=1).fit(as_data(xs, y=y))
    c = contributions(g, xs.head(3))
    first, last = (dict(c.frame(1, cls=k).rows()) for k in ("<50k", ">=50k"))
    assert any(v != 0 for v in last.values())
    assert first == {f: -v for f, v in last.items()}  # the other class's log-odds, negated
    assert dict(c.frame(1).rows()) == last
    assert dict(c.frame(1, cls=np.str_("<50k")).rows()) == first
    with pytest.raises(ParameterError, match="no such class"):
        c.frame(0, cls="no such class")
    assert waterfall_plot(c, row=1, cls="<50k", path=tmp_path / "w.png").exists()
    r = contributions(GBM("regression", n_estimators=5, n_jobs=1).fit(as_data(xs, y=xs["age"].to_numpy())),
                      xs.head(2))
    with pytest.raises(ParameterError, match="leave cls out"):
        r.frame(0, cls=">=50k")


def test_sklearn_model_of_a_forest_has_contributions():
    tab = Tabular(pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=1500), procs=[Categorify, FillMissing],
                  cat_names=["workclass", "relationship"], cont_names=["age", "education-num"], y_names="salary",
                  splits=(list(range(1000)), list(range(1000, 1500))))
    sm = SklearnModel(RandomForestClassifier(n_estimators=5, ccp_alpha=1e-4, min_samples_leaf=5, random_state=0),
                      "classification").fit(tab.train)
    c = contributions(sm, tab.valid)
    assert c.feature_names == sm.feature_names_ and c.classes.tolist() == sm.classes_.tolist()
    assert np.allclose(c.bias + c.values.sum(1), sm.predict_proba(tab.valid))
    rf = RandomForest("classification", n_estimators=5, n_jobs=1, seed=0).fit(tab.train)
    ens = MeanEnsemble([sm, rf]).fit()
    e = contributions(ens, tab.valid)
    assert np.allclose(e.bias + e.values.sum(1), ens.predict(tab.valid))
    reg = SklearnModel(RandomForestRegressor(n_estimators=3, random_state=0), "regression").fit(
        as_data(tab.train.xs, y=tab.train.xs["age"].to_numpy()))
    r = contributions(reg, tab.valid.xs)
    assert np.allclose(r.bias + r.values.sum(1), reg.predict(tab.valid.xs))


def test_pipekit_trees_take_rows_as_arrays(adult_numbers):
    xs, y = adult_numbers
    d = as_data(xs, y=y)
    for model in (RandomForest("classification", n_estimators=5, n_jobs=1, seed=0).fit(d),
                  GBM("classification", n_estimators=5, n_jobs=1).fit(d)):
        want = contributions(model, xs.head(3))
        got = contributions(model, xs.head(3).to_numpy())
        assert np.allclose(got.values, want.values) and got.feature_names == want.feature_names
        assert np.allclose(contributions(model, xs.row(1)).values, want.values[1:2])
        with pytest.raises(DataError, match="education-num"):
            contributions(model, xs.head(2).to_numpy()[:, :3])
    rf = RandomForest("classification", n_estimators=3, n_jobs=1, seed=0).fit(d)
    assert np.allclose(rf.contributions(np.asarray(xs.row(0))).values, rf.contributions(xs.head(1)).values)


@pytest.fixture(scope="module")
def adult_codes():
    """Adult rows with category codes (Categorify + FillMissing): ``row.values`` holds them as floats."""
    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=1500)
    return TabularPandas(df, [Categorify, FillMissing], ["workclass", "relationship"], ["age", "education-num"],
                         y_names="salary", splits=(list(range(1000)), list(range(1000, 1500))))


@pytest.mark.parametrize("make", [
    lambda: RandomForest("classification", n_estimators=5, n_jobs=1, seed=0),
    lambda: GBM("classification", n_estimators=5, n_jobs=1),
    lambda: SklearnModel(RandomForestClassifier(n_estimators=5, ccp_alpha=1e-4, random_state=0), "classification")])
def test_rows_as_arrays_give_category_codes_back_in_the_models_type(adult_codes, make):
    from pipekit.backends.base import array_rows

    to = adult_codes
    m = make().fit(to.train)
    rows = to.valid.xs.iloc[:5]
    assert rows.values.dtype.kind == "f"  # codes and numbers together: the codes come as floats
    want = contributions(m, rows)
    name, codes = type(m).__name__, m.row_form().codes
    got = array_rows(rows.values, m.feature_names_, name, codes)
    assert got.schema["workclass"] == pl.Int8 and got["workclass"].to_list() == rows["workclass"].tolist()
    assert np.allclose(contributions(m, got).values, want.values)
    assert np.allclose(contributions(m, array_rows(rows.values[0], m.feature_names_, name, codes)).values,
                       want.values[:1])
    # the book's call: the array itself, to contributions and to the model's own method
    assert np.allclose(contributions(m, rows.values).values, want.values)
    assert np.allclose(contributions(m, rows.values[0]).values, want.values[:1])
    if type(m).__name__ in ("RandomForest", "GBM"):  # and to the model's own method
        assert np.allclose(m.contributions(rows.values).values, want.values)
    bad = rows.values[:2].copy()
    bad[1, m.feature_names_.index("relationship")] = 2.5
    with pytest.raises(DataError, match=r"category column 'relationship' holds 2.5 \(row 1\).*whole numbers 0 to"):
        array_rows(bad, m.feature_names_, name, codes)
    bad[1, m.feature_names_.index("relationship")] = 99
    with pytest.raises(DataError, match=r"'relationship' holds 99.0 \(row 1\)"):
        array_rows(bad, m.feature_names_, name, codes)


def test_a_column_the_forest_was_fitted_without_is_named_as_such(subset_forest):
    to, m = subset_forest
    for call in (lambda: drop_redundant(m, to.train, to.valid, columns=["race"]),
                 lambda: drop_redundant(m, to.train, None, columns=["race", "age"])):
        with pytest.raises(DataError, match=r"RandomForestClassifier was fitted without \['race'\] \(it reads "
                                            r"\['relationship'.*columns= must name columns the model reads"):
            call()
    with pytest.raises(DataError, match=r"columns \['no such'\] missing from the data"):
        drop_redundant(m, to.train, to.valid, columns=["no such"])
    # prune_features names its own argument: the importances it was given
    imp = pl.DataFrame({"feature": [*m.feature_names_in_, "race"], "importance": [1.0] * len(m.feature_names_in_) + [0.0]})
    with pytest.raises(DataError, match=r"prune_features: RandomForestClassifier was fitted without \['race'\].*"
                                        r"importance= must name columns the model reads"):
        prune_features(m, to.train, to.valid, importance=imp, threshold=0.01)


def test_trees_leaving_out_counts_each_trees_sample_for_forests_and_bagging():
    from sklearn.ensemble import BaggingRegressor
    from sklearn.tree import DecisionTreeRegressor

    from pipekit.backends.forest import trees_leaving_out

    df = pd.read_csv(D.path("rossmann_sample") / "train.csv", nrows=3000, low_memory=False)
    xs, y = df[["Store", "DayOfWeek", "Promo", "SchoolHoliday"]], df["Sales"].to_numpy(float)
    n = len(xs)
    for m in (RandomForestRegressor(n_estimators=20, max_samples=0.5, random_state=0, n_jobs=1).fit(xs, y),
              BaggingRegressor(DecisionTreeRegressor(), n_estimators=20, max_samples=0.3, random_state=0).fit(xs, y)):
        want = sum((np.bincount(s, minlength=n) == 0).astype(np.int64) for s in m.estimators_samples_)
        got = trees_leaving_out(m, n)
        assert got.tolist() == want.tolist() and 0 < got.min() and got.max() <= 20
