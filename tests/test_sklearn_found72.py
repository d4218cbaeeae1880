"""What a LightGBM user gives an estimator, on real data (rossmann, adult): per-input LightGBM parameters written in
X's column order, a fit that fails half way (a refit's eval_set, a backend that refuses its parameters), and the
importance of a column whose name starts with a date column's name."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from pipekit.backends import GBM
from pipekit.core import DataError, NotFittedError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import MeanEnsemble
from pipekit.sklearn import TabularClassifier, TabularRegressor

pytestmark = pytest.mark.filterwarnings("ignore:(FillMissing|Categorify):UserWarning")


@pytest.fixture(scope="module")
def rossmann() -> pl.DataFrame:
    return pl.read_csv(path("rossmann_sample") / "train.csv", try_parse_dates=True,
                       schema_overrides={"StateHoliday": pl.String}).filter(pl.col("Open") == 1).head(3000)


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").sample(fraction=1.0, shuffle=True, seed=0).head(1500)


def small_gbm(task: str = "regression", **kw) -> GBM:
    return GBM(task, n_estimators=30, learning_rate=0.1, n_jobs=1, **kw)


def by_source(values: list, columns: list[str], features: list[str], flags: dict[str, str]) -> list:
    """``values`` (one per column of X) as each model input should get it; ``flags``: flag -> its column."""
    given = dict(zip(columns, values))
    return [given[flags.get(f, f)] for f in features]


def test_monotone_constraints_are_read_in_xs_column_order(rossmann):
    X = rossmann.select("Promo", "Customers", "StateHoliday")
    y = np.log1p(rossmann["Sales"].to_numpy())
    gbm = small_gbm(monotone_constraints=[0, -1, 0])
    reg = TabularRegressor(gbm).fit(X, y)
    features = reg.model_.feature_names_
    assert features[0] == "StateHoliday"  # the categorical comes first in the model: the list is rewritten
    assert reg.model_.params["monotone_constraints"] == by_source([0, -1, 0], X.columns, features, {})
    grid = pl.concat([X.head(1)] * 5).with_columns(Customers=pl.Series([200, 400, 800, 1600, 3200]))
    p = reg.predict(grid)
    assert np.all(np.diff(p) <= 1e-12), p  # sales never rise with Customers, as asked
    # the user's GBM and the estimator's parameters are as given
    assert gbm.params["monotone_constraints"] == [0, -1, 0]
    assert reg.get_params()["backend__params"]["monotone_constraints"] == [0, -1, 0]


def test_per_input_lists_follow_flags_and_the_wrong_length_names_xs_columns(rossmann):
    X = rossmann.select("Promo", "Customers", "StateHoliday").with_columns(
        Customers=pl.when(pl.col("Customers") < 900).then(pl.col("Customers")))  # a _na flag for Customers
    y = np.log1p(rossmann["Sales"].to_numpy())
    kw = dict(params={"mc": "0,1,0"}, interaction_constraints=[[0, 1], [2]], feature_penalty=[1.0, 0.5, 0.25],
              cegb_penalty_feature_lazy=[0.0, 2.0, 1.0])  # LightGBM's aliases, its text form of the constraints
    reg = TabularRegressor(small_gbm(**kw)).fit(X, y)
    features, params = reg.model_.feature_names_, reg.model_.params
    assert "Customers_na" in features
    flags = {"Customers_na": "Customers"}
    assert params["mc"] == [1 if f == "Customers" else 0 for f in features]  # the flag is unconstrained
    assert params["feature_contri"] == by_source([1.0, 0.5, 0.25], X.columns, features, flags)
    assert params["cegb_penalty_feature_lazy"] == by_source([0.0, 2.0, 1.0], X.columns, features, flags)
    groups = [sorted(features.index(f) for f in ("Promo", "Customers", "Customers_na")),
              [features.index("StateHoliday")]]
    assert [sorted(g) for g in params["interaction_constraints"]] == groups
    with pytest.raises(ParameterError, match=r"3 columns of X, in its order \['Promo', 'Customers', 'StateHoliday'\]"):
        TabularRegressor(small_gbm(monotone_constraints=[0, 1, 0, 0])).fit(X, y)
    # in an ensemble too
    ens = TabularRegressor(MeanEnsemble([small_gbm(monotone_constraints=[0, -1, 0]), small_gbm()])).fit(X, y)
    member = ens.model_.members[0]
    assert member.params["monotone_constraints"] == [-1 if f == "Customers" else 0 for f in member.feature_names_]


def test_a_monotone_date_column_is_refused_naming_it(rossmann):
    X, y = rossmann.select("Date", "Promo"), np.log1p(rossmann["Sales"].to_numpy())
    with pytest.raises(ParameterError, match="date column.*'Date'"):
        TabularRegressor(small_gbm(monotone_constraints=[1, 0])).fit(X, y)
    reg = TabularRegressor(small_gbm(monotone_constraints=[0, 1])).fit(X, y)
    assert reg.model_.params["monotone_constraints"] == [int(f == "Promo") for f in reg.model_.feature_names_]


def test_a_refit_refused_leaves_the_estimator_unfitted(adult):
    X, y = adult.drop("salary"), adult["salary"].to_numpy()
    clf = TabularClassifier(small_gbm("classification")).fit(X[:1000], y[:1000])
    renamed = np.where(y[1000:] == ">=50k", "yes", "no")
    with pytest.raises(DataError, match="eval_set"):
        clf.fit(X[:1000], y[:1000], eval_set=[(X[1000:], renamed)])
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError, match="call fit"):
        clf.predict(X[1000:])


def test_a_first_fit_the_backend_refuses_leaves_the_estimator_unfitted(adult):
    X, y = adult.drop("salary"), adult["salary"].to_numpy()
    mc = [1 if c == "workclass" else 0 for c in X.columns]  # a category: GBM refuses a monotone output in it
    clf = TabularClassifier(small_gbm("classification", monotone_constraints=mc))
    with pytest.raises(ParameterError, match="workclass"):
        clf.fit(X, y)
    assert not clf.is_fitted
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError, match="call fit"):
        clf.predict(X)


def test_a_column_named_after_a_date_keeps_its_flags_importance(rossmann):
    y = np.log1p(rossmann["Sales"].to_numpy())
    X = rossmann.select("Date", "Promo", Date_promo_customers=pl.when(pl.col("Customers") < 900)
                        .then(pl.col("Customers")).cast(pl.Float64))
    reg = TabularRegressor(small_gbm()).fit(X, y)
    imp = dict(zip(*reg.model_.feature_importance().select("feature", "importance").to_dict(as_series=False).values()))
    assert imp.get("Date_promo_customers_na", 0) > 0  # the flag is used
    total = sum(imp.values())
    expected = {"Date": sum(v for f, v in imp.items() if f.startswith("Date_") and not f.startswith("Date_promo"))
                / total, "Promo": imp.get("Promo", 0) / total,
                "Date_promo_customers": (imp["Date_promo_customers"] + imp["Date_promo_customers_na"]) / total}
    got = dict(zip(reg.feature_names_in_, reg.feature_importances_))
    assert got == pytest.approx(expected)
