"""Per-row contributions of TabularClassifier / TabularRegressor in their input columns, and partial dependence
grids on integer and date columns of raw rows, on real data."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.backends import GBM, RandomForest, SklearnModel
from pipekit.core.errors import NotFittedError, ParameterError
from pipekit.inspection import contributions, partial_dependence, waterfall_plot
from pipekit.sklearn import TabularClassifier, TabularRegressor

DATA = os.environ.get("PIPEKIT_DATA")
pytestmark = [pytest.mark.skipif(not DATA, reason="needs PIPEKIT_DATA"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture(scope="module")
def rossmann():
    p = f"{DATA}/rossmann_sample/"
    df = pd.read_csv(p + "train.csv", low_memory=False, nrows=30000).merge(pd.read_csv(p + "store.csv"), on="Store")
    df = df[(df.Open == 1) & (df.Sales > 0)].drop(columns=["Customers", "Open"])
    df = df.sample(1500, random_state=0).reset_index(drop=True)
    y = np.log(df.pop("Sales").to_numpy().astype(float))
    return df, y


@pytest.fixture(scope="module")
def adult():
    a = pd.read_csv(f"{DATA}/adult_sample/adult.csv", nrows=1500)
    y = np.where(a.pop("salary").to_numpy() == ">=50k", 10, 2)  # as text, "10" sorts before "2"
    return a, y


def test_regressor_contributions_are_exact_per_input_column(rossmann, tmp_path):
    X, y = rossmann
    reg = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1), random_state=0).fit(X, y)
    rows = X.iloc[:6]
    c = contributions(reg, rows)
    assert c.feature_names == list(reg.feature_names_in_)
    assert c.values.shape == (6, X.shape[1]) and c.space == "value"
    assert np.abs(c.bias + c.values.sum(1) - reg.predict(rows)).max() < 1e-9
    # each input's term is the sum of the terms of the columns the procs made from it
    inner = contributions(reg.model_, reg.process(rows))
    parts = [i for i, f in enumerate(inner.feature_names) if f.startswith("Date_")]
    assert len(parts) > 3
    np.testing.assert_allclose(c.values[:, c.feature_names.index("Date")], inner.values[:, parts].sum(1), atol=1e-12)
    np.testing.assert_allclose(c.values[:, c.feature_names.index("Store")],
                               inner.values[:, inner.feature_names.index("Store")], atol=1e-12)
    assert set(c.frame(0)["feature"].to_list()) <= set(X.columns)
    assert waterfall_plot(c, row=0, path=tmp_path / "wf.png").exists()


def test_gbm_regressor_contributions_sum_to_predict(rossmann):
    X, y = rossmann
    reg = TabularRegressor(GBM("regression", n_estimators=20), random_state=0).fit(X, y)
    c = contributions(reg, X.iloc[:6])
    assert c.feature_names == list(reg.feature_names_in_)
    assert np.abs(c.bias + c.values.sum(1) - reg.predict(X.iloc[:6])).max() < 1e-9


def test_classifier_contributions_in_its_classes_order(adult):
    X, y = adult
    clf = TabularClassifier(RandomForest("classification", n_estimators=5, n_jobs=1), random_state=0).fit(X, y)
    assert clf.classes_.tolist() == [2, 10] and clf.model_.classes_.tolist() == ["10", "2"]
    c = contributions(clf, X.iloc[:8])
    assert c.classes.tolist() == [2, 10] and c.feature_names == list(X.columns)
    assert np.abs(c.bias + c.values.sum(1) - clf.predict_proba(X.iloc[:8])).max() < 1e-9
    gbm = TabularClassifier(GBM("classification", n_estimators=20), random_state=0).fit(X, y)
    g = contributions(gbm, pl.from_pandas(X.iloc[:8]))
    assert g.space == "raw_score" and g.classes.tolist() == [2, 10]
    # the log-odds of classes_[1], as decision_function gives them
    assert np.abs(g.bias + g.values.sum(1) - gbm.decision_function(X.iloc[:8])).max() < 1e-9


def test_estimator_contributions_refused_without_tree_paths(adult):
    from sklearn.linear_model import Ridge

    X, _ = adult
    X = X[["age", "hours-per-week"]]
    with pytest.raises(NotFittedError):
        contributions(TabularRegressor("rf"), X)
    reg = TabularRegressor(SklearnModel(Ridge(), "regression")).fit(X, X["age"] * 2.0)
    with pytest.raises(ParameterError, match=r"through its backend.*permutation_importance\(est, X, y=y\)"):
        contributions(reg, X)


@pytest.mark.parametrize("form", ["pandas", "polars"])
def test_pdp_non_whole_grid_on_integer_column(adult, form):
    from sklearn.ensemble import RandomForestRegressor

    X = adult[0][["age", "hours-per-week"]]
    assert X["age"].dtype == np.int64
    m = RandomForestRegressor(n_estimators=10, random_state=0).fit(X.astype(float), X["age"] * 10.0)
    grid = [30.2, 30.8, 45.5]
    pdp = partial_dependence(m, X if form == "pandas" else pl.from_pandas(X), "age", grid=grid, n_rows=None)
    expected = [m.predict(X.astype(float).assign(age=v)).mean() for v in grid]
    np.testing.assert_allclose(pdp.average, expected)
    assert pdp.average[1] != pdp.average[0]  # 30.8 is not read as 30


def test_pdp_non_whole_grid_through_estimator(adult):
    X, y = adult
    clf = TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1), random_state=0).fit(X, y)
    grid = [30.2, 30.8, 45.5]
    pdp = partial_dependence(clf, X, "age", grid=grid, n_rows=None)
    expected = [clf.predict_proba(X.assign(age=v))[:, 1].mean() for v in grid]
    np.testing.assert_allclose(pdp.average, expected)


@pytest.mark.parametrize("form", ["text", "pandas", "polars"])
def test_pdp_date_grid_is_quantile_dates(rossmann, form):
    X, y = rossmann
    X = X[["Store", "DayOfWeek", "Date", "Promo"]]
    if form == "pandas":
        X = X.assign(Date=pd.to_datetime(X["Date"]))
    elif form == "polars":
        X = pl.from_pandas(X).with_columns(pl.col("Date").str.to_date())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1), random_state=0).fit(X, y)
    pdp = partial_dependence(reg, X, "Date", grid=5, n_rows=200)
    dates = pd.to_datetime(pd.Series(X["Date"].to_numpy() if form == "polars" else X["Date"]))
    days = pd.to_datetime(pd.Series(pdp.grid_labels[0]))
    assert len(pdp.grid[0]) == 5 and pdp.average.shape == (5,)
    assert days.is_monotonic_increasing and days.isin(dates).all()
    assert days.iloc[0] >= dates.quantile(0.04) and days.iloc[-1] <= dates.quantile(0.96)
    assert len(partial_dependence(reg, X, "Date", grid=12, n_rows=50).grid[0]) == 12
    rows = X.sample(200, random_state=0) if form != "polars" else X.sample(200, seed=0)
    one = partial_dependence(reg, rows, "Date", grid=[pdp.grid[0][2]], n_rows=None)
    setter = (lambda v: rows.with_columns(pl.lit(v).cast(pl.Date).alias("Date"))) if form == "polars" else \
        (lambda v: rows.assign(Date=v))
    assert one.average[0] == pytest.approx(reg.predict(setter(pdp.grid[0][2])).mean())


def test_pdp_refuses_a_grid_of_no_points(rossmann):
    X, y = rossmann
    X = X[["Store", "DayOfWeek", "Date", "Promo"]]
    reg = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1), random_state=0).fit(X, y)
    for col in ["Store", "Date"]:  # a number column and a date column read as time
        with pytest.raises(ParameterError, match=r"partial_dependence: grid=0 is not accepted.*a number of grid"):
            partial_dependence(reg, X, col, grid=0, n_rows=50)
        with pytest.raises(ParameterError, match=r"partial_dependence: grid\['Date'\]=-1 is not accepted"):
            partial_dependence(reg, X, col, grid={"Date": -1}, n_rows=50)
    assert len(partial_dependence(reg, X, "Date", grid=1, n_rows=50).grid[0]) == 1
    assert len(partial_dependence(reg, X, "Store", grid={"Date": 3}, n_rows=50).grid[0]) == 20  # the default


def last_line_of_fresh_python(code: str) -> str:
    """The last line ``code`` prints, run by a new Python process (what it imports is its own)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_contributions_of_a_backend_leave_the_estimators_module_unloaded():
    code = ("import sys, numpy as np, polars as pl\n"
            "from pipekit.backends import RandomForest, as_data\n"
            "from pipekit.inspection import contributions\n"
            "xs = pl.DataFrame({'a': np.arange(60.0), 'b': np.arange(60.0) % 7})\n"
            "rf = RandomForest('regression', n_estimators=3, n_jobs=1).fit(as_data(xs, y=xs['a'].to_numpy()))\n"
            "c = contributions(rf, xs.head(5))\n"
            "assert np.allclose(c.bias + c.values.sum(1), rf.predict(xs.head(5)))\n"
            "print('pipekit.sklearn.estimators' in sys.modules)\n")
    assert last_line_of_fresh_python(code) == "False"


def test_input_columns_and_index_credit_each_procs_column_to_its_input(rossmann):
    from pipekit.backends import as_data
    from pipekit.core.errors import DataError

    X, y = rossmann
    reg = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1), random_state=0).fit(X, y)
    inputs = reg.input_columns()
    assert inputs == list(X.columns)
    features = as_data(reg.process(X.iloc[:5])).feature_names  # the columns the procs give the backend
    of = dict(zip(features, [inputs[i] for i in reg.input_index(features)]))
    assert of["Promo2SinceWeek_na"] == "Promo2SinceWeek" and of["Store"] == "Store"
    assert {f for f, c in of.items() if c == "Date"} >= {"Date_Year", "Date_Dayofweek", "Date_Elapsed"}
    # feature_importances_ is the backend's importance of each of those, summed into its input column
    imp = reg.model_.feature_importance()
    expected = np.zeros(len(inputs))
    for f, v in zip(imp["feature"].to_list(), imp["importance"].to_list()):
        expected[inputs.index(of[f])] += v
    np.testing.assert_allclose(reg.feature_importances_, expected / expected.sum())
    with pytest.raises(DataError, match=r"TabularRegressor: the backend's column 'Sales_lag' comes from no input"):
        reg.input_index(["Store", "Sales_lag"])
    # an array without column names: its columns are x0, x1, ...
    arr = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1), random_state=0).fit(
        X[["Store", "Promo", "Promo2SinceWeek"]].to_numpy(dtype=float), y)
    assert arr.input_columns() == ["x0", "x1", "x2"] and arr.input_index(["x2_na", "x2", "x0"]) == [2, 2, 0]
    with pytest.raises(NotFittedError):
        TabularRegressor("rf").input_columns()


def test_is_estimator_tells_one_without_loading_the_estimators_module():
    from sklearn.ensemble import RandomForestRegressor

    from pipekit import cli
    from pipekit.inspection.explain import is_estimator

    for est in (TabularRegressor("rf"), TabularClassifier()):  # fitted or not
        assert is_estimator(est) and cli._is_estimator(est)
    for other in (RandomForest("regression"), RandomForestRegressor(), pd.DataFrame()):
        assert not is_estimator(other) and not cli._is_estimator(other)
    code = ("import sys\n"
            "from pipekit.backends import RandomForest\n"
            "from pipekit.cli import _is_estimator\n"
            "from pipekit.inspection.explain import is_estimator\n"
            "print(is_estimator(RandomForest('regression')), _is_estimator(None), "
            "'pipekit.sklearn.estimators' in sys.modules)\n")
    assert last_line_of_fresh_python(code) == "False False False"


def test_pdp_of_a_column_with_no_value_is_refused_naming_it(rossmann):
    from pipekit.core.errors import DataError

    X, y = rossmann
    X = X[["Store", "Date", "Promo2SinceWeek", "PromoInterval"]].assign(Date=pd.to_datetime(X["Date"]))
    reg = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1), random_state=0).fit(X, y)
    rows = X[X["PromoInterval"].isna()].head(50).assign(Date=pd.NaT)  # stores not in Promo2, the days unknown
    assert len(rows) == 50
    for col in ["Promo2SinceWeek", "PromoInterval", "Date"]:  # a number, a category and a date column
        with pytest.raises(DataError, match=rf"partial_dependence: column '{col}' has no values \(all missing\)"):
            partial_dependence(reg, rows, col, n_rows=None)
    given = partial_dependence(reg, rows, "PromoInterval", grid=["Jan,Apr,Jul,Oct"], n_rows=None)
    assert given.average[0] == pytest.approx(reg.predict(rows.assign(PromoInterval="Jan,Apr,Jul,Oct")).mean())
