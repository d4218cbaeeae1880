"""The inspection tools on fitted scikit-learn estimators (a forest fitted on ``tab.train.xs``) and on
``TabularClassifier``/``TabularRegressor``, checked against the same quantities computed by hand on real
Rossmann and adult rows; and ``PartialDependence.grid_raw``, the grid in the data's own units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor

from pipekit.backends import as_data
from pipekit.core import DataError, NotFittedError, ParameterError
from pipekit.datasets import path
from pipekit.inspection import (contributions, drop_redundant, partial_dependence, plot_partial_dependence,
                                prune_features, waterfall_plot)
from pipekit.sklearn import TabularClassifier, TabularRegressor
from pipekit.tabular import Categorify, Normalize, Tabular


def rmse(y, p):
    return float(np.sqrt(np.mean((np.asarray(y, dtype=np.float64) - p) ** 2)))


@pytest.fixture(scope="module")
def ross():
    df = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})
    df = df.filter(pl.col("Open") == 1).head(4000)
    tab = Tabular(df, procs=[Categorify, Normalize], cat_names=["Store", "DayOfWeek", "StateHoliday"],
                  cont_names=["Customers", "Promo", "SchoolHoliday"], y_names="Sales",
                  splits=(np.arange(3000), np.arange(3000, 4000)))
    ytr = as_data(tab.train).y
    rf = RandomForestRegressor(n_estimators=10, min_samples_leaf=5, random_state=0, n_jobs=1)
    return df, tab, rf.fit(tab.train.xs, ytr), ytr


def test_pd_of_sklearn_forest_matches_hand_and_grid_raw_is_in_raw_units(ross, tmp_path):
    df, tab, rf, _ = ross
    pdep = partial_dependence(rf, tab.valid, "Customers", grid=6, n_rows=None)
    xs = tab.valid.xs
    hand = [rf.predict(xs.with_columns(pl.lit(g).cast(xs.schema["Customers"]).alias("Customers"))).mean()
            for g in pdep.grid[0]]
    assert np.allclose(pdep.average, hand)
    assert pdep.average[-1] > pdep.average[0] + 1000  # more customers, more sales
    # grid is what the forest was given (normalised); grid_raw the customers counts the plot shows
    raw = df["Customers"].to_numpy()[3000:].astype(np.float64)
    assert abs(pdep.grid[0]).max() < 10
    assert np.allclose(pdep.grid_raw[0][[0, -1]], np.quantile(raw, [0.05, 0.95]), rtol=1e-3)
    assert np.allclose(pdep.grid_raw[0], pdep.grid_labels[0])
    assert plot_partial_dependence(pdep, tmp_path / "customers.png").exists()
    # scikit-learn's and plot_partial_dependence's name for the number of points reads the same grid
    same = partial_dependence(rf, tab.valid, "Customers", grid_resolution=6, n_rows=None)
    np.testing.assert_array_equal(same.grid[0], pdep.grid[0])
    np.testing.assert_allclose(same.average, pdep.average)
    with pytest.raises(ParameterError, match="not both"):
        partial_dependence(rf, tab.valid, "Customers", grid=6, grid_resolution=6)


def test_pd_of_sklearn_forest_categorical_and_2d(ross):
    df, tab, rf, _ = ross
    xs = tab.valid.xs
    one = partial_dependence(rf, tab.valid, "DayOfWeek", n_rows=None)
    assert one.categorical == (True,)
    assert sorted(int(v) for v in one.grid_raw[0]) == sorted(set(df["DayOfWeek"].to_list()[3000:]))
    day = lambda g: xs.with_columns(pl.lit(g).cast(xs.schema["DayOfWeek"]).alias("DayOfWeek"))  # noqa: E731
    assert np.allclose(one.average, [rf.predict(day(g)).mean() for g in one.grid[0]])
    two = partial_dependence(rf, tab.valid, ("DayOfWeek", "Promo"), n_rows=None)
    assert two.average.shape == (len(two.grid[0]), len(two.grid[1]))
    i, j = len(two.grid[0]) - 1, len(two.grid[1]) - 1
    cell = day(two.grid[0][i]).with_columns(pl.lit(two.grid[1][j]).cast(xs.schema["Promo"]).alias("Promo"))
    assert np.isclose(two.average[i, j], rf.predict(cell).mean())
    assert np.allclose(two.grid_raw[1][[0, -1]], [0, 1], atol=1e-6)  # Promo de-normalised back to 0/1


@pytest.mark.filterwarnings("ignore:Categorify")  # a workclass rarer than 1 in 2500 rows, set on every row
def test_pd_of_tabular_classifier_on_raw_adult_rows():
    df = pd.read_csv(path("adult_sample") / "adult.csv").sample(3000, random_state=0).reset_index(drop=True)
    X, y = df.drop(columns="salary"), df["salary"]
    clf = TabularClassifier("rf", random_state=0).fit(X[:2500], y[:2500])
    va = X[2500:].reset_index(drop=True)
    work = partial_dependence(clf, va, "workclass", n_rows=None)
    present = sorted(v for v in va["workclass"].unique() if isinstance(v, str))
    assert work.categorical == (True,) and list(work.grid[0]) == present == list(work.grid_raw[0])
    pos = list(clf.classes_).index(clf.classes_[-1])
    hand = [clf.predict_proba(va.assign(workclass=g))[:, pos].mean() for g in present]
    assert np.allclose(work.average, hand) and work.output == f"P({clf.classes_[-1]})"
    age = partial_dependence(clf, va, "age", grid=5, n_rows=None)  # an integer column: whole-number grid
    assert not age.categorical[0] and np.array_equal(age.grid[0], np.round(age.grid[0]))
    assert np.allclose(age.average, [clf.predict_proba(va.assign(age=int(g)))[:, pos].mean() for g in age.grid[0]])
    with pytest.raises(DataError, match="'nope'"):
        partial_dependence(clf, va, "nope")
    with pytest.raises(NotFittedError, match="not fitted"):
        partial_dependence(TabularRegressor("rf"), va, "age")


def test_drop_redundant_and_prune_features_refit_a_sklearn_forest(ross):
    _, tab, rf, ytr = ross
    yva = as_data(tab.valid).y
    out = drop_redundant(rf, tab.train, tab.valid, columns=["SchoolHoliday", "StateHoliday"], metric="rmse")
    assert out["dropped"].to_list() == ["(none)", "SchoolHoliday", "StateHoliday", "SchoolHoliday+StateHoliday"]
    full = clone(rf).fit(tab.train.xs, ytr)
    assert np.isclose(out["score"][0], rmse(yva, full.predict(tab.valid.xs)))
    no_school = clone(rf).fit(tab.train.xs.drop("SchoolHoliday"), ytr)
    assert np.isclose(out["score"][1], rmse(yva, no_school.predict(tab.valid.xs.drop("SchoolHoliday"))))
    # without valid: the out-of-bag predictions of a forest made with oob_score=True
    oob_rf = clone(rf).set_params(oob_score=True, n_estimators=30).fit(tab.train.xs, ytr)
    oob = drop_redundant(oob_rf, tab.train, columns=["SchoolHoliday"])
    assert np.isclose(oob["score"][0], rmse(ytr, oob_rf.oob_prediction_))
    with pytest.raises(ParameterError, match="oob_score=True"):
        drop_redundant(rf, tab.train, columns=["SchoolHoliday"])
    with pytest.raises(ParameterError, match=r"\(X, y\) pair"):
        drop_redundant(rf, tab.train.xs, tab.valid, columns=["SchoolHoliday"])

    share = rf.feature_importances_ / rf.feature_importances_.sum()
    low = [c for c, s in zip(rf.feature_names_in_, share) if s < 0.01]
    assert low  # the holiday columns barely matter for sales
    pruned = prune_features(rf, tab.train, tab.valid, threshold=0.01)
    assert sorted(pruned.dropped) == sorted(low) and pruned.model.n_features_in_ == len(share) - len(low)
    assert np.isclose(pruned.score_before, rmse(yva, rf.predict(tab.valid.xs)))
    assert np.isclose(pruned.score_after, rmse(yva, pruned.model.predict(tab.valid.xs.drop(low))))


@pytest.mark.filterwarnings("ignore:Categorify")  # countries seen only in the last 500 rows
def test_drop_redundant_of_tabular_regressor_on_raw_pairs():
    df = pd.read_csv(path("adult_sample") / "adult.csv").head(1500)
    X, y = df.drop(columns=["age", "salary"]), df["age"]
    reg = TabularRegressor("rf", random_state=0).fit(X[:1000], y[:1000])
    out = drop_redundant(reg, (X[:1000], y[:1000]), (X[1000:], y[1000:]), columns=["fnlwgt"])
    full = clone(reg).fit(X[:1000], y[:1000])
    assert out["dropped"].to_list() == ["(none)", "fnlwgt"]
    assert np.isclose(out["score"][0], rmse(y[1000:], full.predict(X[1000:])))


def test_contributions_take_a_sklearn_forest_and_waterfall_refuses_a_model_naming_what_to_use(ross):
    _, tab, rf, _ = ross
    c = contributions(rf, tab.valid)  # the book's forest on tab.train.xs: tree-interpreter, exact
    assert np.abs(c.bias + c.values.sum(1) - rf.predict(tab.valid.xs)).max() < 1e-9
    with pytest.raises(NotFittedError):  # a TabularRegressor is explained once fitted, through its model_
        contributions(TabularRegressor(), tab.valid)
    with pytest.raises(ParameterError, match=r"contributions\(model, data\)"):
        waterfall_plot(rf)


def test_grid_raw_of_a_pipekit_forest_decodes_codes_and_normalised_numbers(ross):
    from pipekit.backends import RandomForest

    df, tab, _, _ = ross
    forest = RandomForest("regression", n_estimators=5, n_jobs=1, seed=0).fit(tab.train)
    pdep = partial_dependence(forest, tab.valid, ("StateHoliday", "Customers"), grid=4, n_rows=None)
    assert set(pdep.grid_raw[0].tolist()) == set(df["StateHoliday"].to_list()[3000:])  # "0", "a", ... not codes
    raw = df["Customers"].to_numpy()[3000:].astype(np.float64)
    assert np.allclose(pdep.grid_raw[1][[0, -1]], np.quantile(raw, [0.05, 0.95]), rtol=1e-3)


def test_pd_grid_of_normalised_columns_is_in_raw_units_without_float_noise(ross):
    df, tab, rf, _ = ross
    # Customers is a whole-number column, normalised to float32: the grid is its quantiles, whole, as in the data
    raw = df["Customers"].to_numpy()[3000:].astype(np.float64)
    pdep = partial_dependence(rf, tab.valid, "Customers", grid=6, n_rows=None)
    expect = np.unique(np.round(np.quantile(raw, np.linspace(0.05, 0.95, 6))))
    assert pdep.grid_raw[0].tolist() == expect.tolist() == pdep.grid_labels[0]
    # the forest was given those points normalised as Normalize does (float32, as the column)
    norm = next(p for p in tab.processor.procs if isinstance(p, Normalize))
    mean, std = norm.means_["Customers"], norm.stds_["Customers"]
    assert pdep.grid[0].dtype == np.float32
    assert np.array_equal(pdep.grid[0], ((expect - mean) / std).astype(np.float32))
    # adult's age (whole years): 20, not 19.99999992
    adult = pl.read_csv(path("adult_sample") / "adult.csv").head(3000)
    atab = Tabular(adult, procs=[Categorify, Normalize], cat_names=["relationship"], cont_names=["age", "fnlwgt"],
                   y_names="salary", splits=(np.arange(2500), np.arange(2500, 3000)))
    arf = RandomForestRegressor(n_estimators=5, random_state=0, n_jobs=1).fit(atab.train.xs, atab.train.y)
    ages = partial_dependence(arf, atab.valid, "age", grid=8, n_rows=None).grid_raw[0]
    assert ages.tolist() == np.unique(np.round(np.quantile(adult["age"].to_numpy()[2500:], np.linspace(0.05, 0.95, 8)))).tolist()
    assert set(ages.tolist()) <= set(adult["age"].to_list())  # every age shown is one in the data here


def _drawn(fig, n):
    """The ``n`` panels plot_partial_dependence added to ``fig`` (axes it drew a line or an image on)."""
    axes = [a for a in fig.axes if a.axison and (a.lines or a.images)]
    assert len(axes) == n
    return axes


def test_plot_partial_dependence_takes_the_books_call_with_a_model(ross, tmp_path):
    import matplotlib.pyplot as plt

    from pipekit.backends import RandomForest

    _, tab, sk, _ = ross
    forest = RandomForest("regression", n_estimators=5, n_jobs=1, seed=0).fit(tab.train)
    for model in (forest, sk):  # pipekit's forest, and a scikit-learn forest fitted on tab.train.xs
        fig, ax = plt.subplots(figsize=(12, 4))
        assert plot_partial_dependence(model, tab.valid, ["Customers", "DayOfWeek"], grid_resolution=6, ax=ax) is None
        cust, day = _drawn(fig, 2)
        want = partial_dependence(model, tab.valid, "Customers", grid=6)
        np.testing.assert_allclose(cust.lines[-1].get_ydata(), want.average)
        np.testing.assert_allclose(cust.lines[-1].get_xdata(), want.grid_raw[0])
        assert (cust.get_xlabel(), day.get_xlabel()) == ("Customers", "DayOfWeek")
        np.testing.assert_allclose(day.lines[-1].get_ydata(), partial_dependence(model, tab.valid, "DayOfWeek").average)
        plt.close(fig)
    # a pair is one 2-D panel; a list of Axes takes one panel each
    fig, axes = plt.subplots(1, 2)
    out = plot_partial_dependence(forest, tab.valid, ["Customers", ("DayOfWeek", "Promo")], grid_resolution=4,
                                  ax=list(axes), path=tmp_path / "two.png")
    assert out == tmp_path / "two.png" and out.exists()
    assert len(axes[0].lines) == 1 and len(axes[1].images) == 1
    plt.close(fig)
    # kind="both" draws up to max_lines individual curves under the average
    fig, ax = plt.subplots()
    plot_partial_dependence(forest, tab.valid, ["Customers"], kind="both", max_lines=7, ax=ax)
    assert len(ax.lines) == 8
    plt.close(fig)
    with pytest.raises(ParameterError, match="kind='average' only"):
        plot_partial_dependence(forest, tab.valid, [("DayOfWeek", "Promo")], kind="both")
    assert plot_partial_dependence(sk, tab.valid, "Customers", path=tmp_path / "one.png").exists()


def test_plot_partial_dependence_names_what_to_pass(ross, tmp_path):
    import matplotlib.pyplot as plt

    _, tab, rf, _ = ross
    pdep = partial_dependence(rf, tab.valid, "Customers", grid=4)
    with pytest.raises(ParameterError, match=r"\['grid_resolution'\].*computed already"):
        plot_partial_dependence(pdep, grid_resolution=10)
    with pytest.raises(ParameterError, match=r"\['data', 'features'\]"):
        plot_partial_dependence(pdep, tab.valid, ["Customers"])
    with pytest.raises(ParameterError, match=r"plot_partial_dependence\(model, tab.valid, \['column'"):
        plot_partial_dependence(rf, tab.valid)
    with pytest.raises(ParameterError, match="got str"):
        plot_partial_dependence("Customers", tab.valid, ["Customers"])
    with pytest.raises(ParameterError, match="pairs of names"):
        plot_partial_dependence(rf, tab.valid, [("Customers", "Promo", "DayOfWeek")])
    with pytest.raises(ParameterError, match="grid_resolution"):
        plot_partial_dependence(rf, tab.valid, ["Customers"], grid_resolution=1)
    fig, axes = plt.subplots(1, 3)
    with pytest.raises(ParameterError, match="a list of 2 Axes"):
        plot_partial_dependence(rf, tab.valid, ["Customers", "Promo"], ax=list(axes))
    plt.close(fig)
    with pytest.raises(ParameterError, match="kind"):
        plot_partial_dependence(rf, tab.valid, ["Customers"], kind="mean")
    assert plot_partial_dependence(pdep, tmp_path / "pd.png").exists()  # a path as the second argument, as before
