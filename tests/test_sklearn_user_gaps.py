"""What a scikit-learn or LightGBM user writes, on real data (adult, rossmann): a column named like a date part, a
Polars LazyFrame or a pyarrow RecordBatch as X, rows given as lists, a search over a bad value, LightGBM's own
parameter names, scikit-learn's scoring names, and what the "gbm" backend name trains with."""
from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from file_edits import component_records
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV

import pipekit
from pipekit.backends import GBM, RandomForest
from pipekit.core import DataError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import MeanEnsemble
from pipekit.sklearn import TabularClassifier, TabularRegressor

pytestmark = pytest.mark.filterwarnings("ignore:(FillMissing|Categorify):UserWarning")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").sample(fraction=1.0, shuffle=True, seed=0).head(2000)


@pytest.fixture(scope="module")
def rossmann() -> pl.DataFrame:
    return pl.read_csv(path("rossmann_sample") / "train.csv", try_parse_dates=True,
                       schema_overrides={"StateHoliday": pl.String}).filter(pl.col("Open") == 1).head(3000)


def small_gbm(task: str = "classification", **kw) -> GBM:
    return GBM(task, n_estimators=kw.pop("n_estimators", 20), min_child_samples=5, n_jobs=1, **kw)


# ---------------------------------------------------------------------------------------- date parts
def test_a_column_named_like_a_date_part_is_refused_naming_both(rossmann):
    """rossmann's Date gives the parts Date_Year, Date_Month, ...: a column of X already named Date_Year was
    replaced by the year, silently (the model never saw it). It is refused, naming both columns and the fix, from
    pandas and Polars alike."""
    X = rossmann.select("Store", "Date", "Promo").with_columns(Date_Year=rossmann["Customers"].cast(pl.Float64))
    y = rossmann["Sales"].to_numpy().astype(np.float64)
    words = (r"TabularRegressor: column 'Date_Year' of X has the name of a part of the date column 'Date', which "
             r"would replace it; rename 'Date_Year' \(or 'Date'\)")
    for frame in (X, X.to_pandas()):
        with pytest.raises(DataError, match=words):
            TabularRegressor(small_gbm("regression")).fit(frame, y)
    # a column named like a part the date does not make (Date holds days: no Date_Hour) is the user's own
    own = X.rename({"Date_Year": "Date_Hour"})
    reg = TabularRegressor(small_gbm("regression", n_estimators=50)).fit(own, y)
    assert "Date_Hour" in reg.cont_names_ and "Date_Hour" in reg.processor_.cont_names
    assert not np.allclose(reg.predict(own), reg.predict(own.with_columns(Date_Hour=pl.lit(0.0))))


# ---------------------------------------------------------------------------------------- inputs
def test_a_lazyframe_and_a_record_batch_keep_their_column_names(adult):
    """A Polars LazyFrame failed to fit ('no attribute n_features_in_'), and a pyarrow RecordBatch lost its column
    names, so columns given in another order at predict were matched by position without a word. Both fit as the
    frame they hold: names kept, the same model, reordered columns refused as a table's are."""
    X, y = adult.select("age", "workclass", "hours-per-week", "education-num"), adult["salary"].to_numpy()
    reference = TabularClassifier(small_gbm()).fit(X, y)
    batch = X.to_arrow().combine_chunks().to_batches()[0]
    assert isinstance(batch, pa.RecordBatch) and batch.num_rows == X.height
    for given in (X.lazy(), batch):
        clf = TabularClassifier(small_gbm()).fit(given, y)
        assert list(clf.feature_names_in_) == X.columns and clf.n_features_in_ == 4
        assert np.array_equal(clf.predict_proba(given), reference.predict_proba(X))
        assert np.array_equal(reference.predict_proba(given), reference.predict_proba(X))
    swapped = X.select("hours-per-week", "age", "workclass", "education-num")
    for given in (swapped.lazy(), swapped.to_arrow().combine_chunks().to_batches()[0]):
        with pytest.raises(ValueError, match="Feature names must be in the same order"):
            clf.predict(given)


def test_rows_given_as_lists_keep_their_numbers_numeric(adult):
    """Rows as a list of tuples mixing numbers and text were read by NumPy as text throughout, so age became a
    category (and every age not seen at fit '#na#'). The numbers stay numbers, as in a frame of the same rows."""
    X, y = adult.select("age", "workclass", "hours-per-week"), adult["salary"].to_numpy()
    rows = [(float(a), w, float(h)) for a, w, h in X.iter_rows()]
    clf = TabularClassifier(small_gbm()).fit(rows, y)
    assert (clf.cat_names_, clf.cont_names_) == (["x1"], ["x0", "x2"])
    frame = pl.DataFrame({"x0": X["age"].cast(pl.Float64), "x1": X["workclass"], "x2": X["hours-per-week"].cast(pl.Float64)})
    same = TabularClassifier(small_gbm()).fit(frame, y)
    assert np.array_equal(clf.predict_proba(rows), same.predict_proba(frame))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # an age not seen at fit is a number, not an unseen category
        assert clf.predict_proba([(37.5, " Private", 41.0)]).shape == (1, 2)


# ---------------------------------------------------------------------------------------- parameters at fit
@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite:UserWarning")
def test_a_search_scores_a_candidate_with_a_bad_value_as_its_error_score(adult):
    """scikit-learn checks parameters in fit, never in __init__ or set_params, so a search over a bad value scores
    that candidate error_score and the others are still scored; a pipekit estimator stopped the whole search in
    set_params. The same ParameterError now comes from fit; a name that does not exist is still refused at once."""
    from sklearn.utils.estimator_checks import check_do_not_raise_errors_in_init_or_set_params

    X, y = adult.select("age", "workclass", "hours-per-week", "education-num"), adult["salary"].to_numpy()
    with pytest.warns(FitFailedWarning, match=r"GBM: num_leaves=1 is not accepted; expected an integer in \[2, inf\]"):
        search = GridSearchCV(TabularClassifier(small_gbm()), {"backend__num_leaves": [1, 7]}, cv=2).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[0]) and scores[1] > 0.7 and search.best_params_ == {"backend__num_leaves": 7}
    for est in (TabularClassifier(small_gbm()), TabularRegressor("rf")):
        check_do_not_raise_errors_in_init_or_set_params(type(est).__name__, est)
    bad = TabularClassifier(backend="xgb")
    with pytest.raises(ParameterError, match="TabularClassifier: backend='xgb' is not accepted"):
        bad.fit(X, y)
    ens = MeanEnsemble({"gbm": small_gbm(), "rf": RandomForest("classification", n_estimators=5, n_jobs=1)})
    clf = TabularClassifier(ens).set_params(backend__rf__n_estimators=0, backend__gbm__num_leaves=9)
    assert (clf.backend.members[0].num_leaves, clf.backend.members[1].n_estimators) == (9, 0)
    with pytest.raises(ParameterError, match=r"RandomForest: n_estimators=0 is not accepted"):
        clf.fit(X, y)
    with pytest.raises(ParameterError, match="no parameter or named member 'svm'"):
        clf.set_params(backend__svm__C=1.0)
    with pytest.raises(ParameterError, match="GBM has no parameter 'max_dpth'"):
        TabularClassifier(small_gbm()).set_params(backend__max_dpth=3)


# ---------------------------------------------------------------------------------------- LightGBM's names
def test_gbm_takes_lightgbm_names_as_its_own_arguments_or_params(adult, tmp_path):
    """GBM(random_state=..., colsample_bytree=..., max_depth=...) was a bare TypeError. A LightGBM name of what a GBM
    argument sets is that argument, any other LightGBM parameter joins params under LightGBM's own name: the model,
    its repr and its file are those of the pipekit spelling, and LightGBM trains with them."""
    X, y = adult.select("age", "workclass", "hours-per-week", "education-num"), adult["salary"].to_numpy()
    lgb_style = GBM("classification", random_state=3, colsample_bytree=0.8, num_boost_round=30, max_depth=4,
                    reg_alpha=0.1, verbose=-1, subsample=0.9, subsample_freq=2, min_child_samples=10, n_jobs=1)
    pipekit_style = GBM("classification", seed=3, colsample=0.8, n_estimators=30, subsample=0.9,
                        min_child_samples=10, n_jobs=1,
                        params={"max_depth": 4, "lambda_l1": 0.1, "verbosity": -1, "bagging_freq": 2})
    assert repr(lgb_style) == repr(pipekit_style) and lgb_style.to_record() == pipekit_style.to_record()
    clf = TabularClassifier(lgb_style).fit(X, y)
    text = clf.model_.booster_.model_to_string()
    assert all(f"[{p}]" in text for p in ("max_depth: 4", "lambda_l1: 0.1", "feature_fraction: 0.8", "seed: 3",
                                          "bagging_freq: 2", "bagging_fraction: 0.9"))
    assert np.array_equal(clf.predict_proba(X), TabularClassifier(pipekit_style).fit(X, y).predict_proba(X))
    pipekit.save(clf, tmp_path / "clf.pipekit")
    with zipfile.ZipFile(tmp_path / "clf.pipekit") as z:
        record = json.loads(z.read("record.json"))
    stored = [r["params"] for r in component_records(record, "pipekit.backends.GBM")]
    assert len(stored) == 2  # the estimator's backend parameter and its fitted model_, each in pipekit's spelling
    assert all(p == pipekit_style.to_record()["params"] for p in stored)
    assert np.array_equal(pipekit.load(tmp_path / "clf.pipekit").predict_proba(X), clf.predict_proba(X))
    # in a search grid, through the estimator
    assert TabularClassifier(small_gbm()).set_params(backend__max_depth=3).backend.params == {"max_depth": 3}
    for kw, words in (({"class_weight": "balanced"}, r"scikit-learn estimators, not a LightGBM parameter; weigh the "
                                                     r"rows instead, fit\(\.\.\., sample_weight="),
                      ({"max_dpth": 3}, r"GBM has no parameter 'max_dpth' and LightGBM none of that name; .*params="
                                        r"\{'max_depth': 5\}"),
                      ({"seed": 1, "random_state": 2}, r"seed=1 and random_state=2 \(LightGBM's name for seed\)"),
                      ({"params": {"max_depth": 2}, "max_depth": 3}, r"params=\{'max_depth': \.\.\.\} and "
                                                                     r"max_depth=3 set the same")):
        with pytest.raises(ParameterError, match=words):
            GBM("classification", **kw)


# ---------------------------------------------------------------------------------------- scoring names
def test_scikit_learn_scoring_names_score_as_scikit_learn_or_name_the_pipekit_metric(adult):
    """roc_auc_ovr and its kin were refused though the README promises scikit-learn's scoring names: they score as
    scikit-learn's scorers do. The neg_* names are refused naming the metric to use, since a pipekit metric scores the
    loss itself (a mapping would report mean absolute errors with the other sign than scikit-learn's scorer)."""
    from sklearn.metrics import get_scorer

    from pipekit.metrics import get_metric

    X, y = adult.select("age", "workclass", "hours-per-week", "sex"), adult["relationship"].to_numpy()
    clf = TabularClassifier(small_gbm()).fit(X, y)
    codes = np.searchsorted(clf.classes_, y)
    proba = clf.predict_proba(X)
    for name in ("roc_auc_ovr", "roc_auc_ovo", "roc_auc_ovr_weighted", "roc_auc_ovo_weighted"):
        assert get_metric(name, "classification").score(codes, proba) == pytest.approx(get_scorer(name)(clf, X, y))
    with pytest.raises(ParameterError, match="'roc_auc_ovr' is a classification metric"):
        get_metric("roc_auc_ovr", "regression")
    for name, task, use in (("neg_mean_absolute_error", "regression", "metric='mae'"),
                            ("neg_root_mean_squared_error", "regression", "metric='rmse'"),
                            ("neg_mean_squared_error", "regression", "metric='mse'"),
                            ("neg_log_loss", "classification", "metric='log_loss'"),
                            ("neg_median_absolute_error", "regression", "metric=sklearn.metrics.median_absolute_error"),
                            ("neg_brier_score", "classification", "metric=sklearn.metrics.brier_score_loss")):
        with pytest.raises(ParameterError, match=f"scorer of minus .*smaller is better.*use {use}$"):
            get_metric(name, task)


# ---------------------------------------------------------------------------------------- the "gbm" name
def test_the_gbm_name_is_documented_with_the_learning_rate_it_trains_at():
    """default_backend's docstring said "the defaults of the libraries behind it", but "gbm" trains at GBM's learning
    rate 0.05, half LightGBM's; the docstrings say what it trains with and how to get LightGBM's."""
    from pipekit.sklearn.fitting import default_backend

    gbm = default_backend("gbm", "classification")
    assert (gbm.n_estimators, gbm.learning_rate) == (100, 0.05)
    doc = " ".join((default_backend.__doc__ or "").split())
    assert "defaults of the libraries behind it" not in doc
    assert "learning rate 0.05" in doc and "GBM(task, n_estimators=100, learning_rate=0.1)" in doc
    assert "learning rate 0.05" in " ".join((TabularClassifier.__doc__ or "").split())


def test_saving_and_loading_a_users_estimator_names_the_register_call(adult, tmp_path):
    from sklearn.base import BaseEstimator, ClassifierMixin

    from pipekit.backends import SklearnModel
    from pipekit.core import ExportError
    from pipekit.core.registry import _ENTRIES
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    class Prior(ClassifierMixin, BaseEstimator):
        def __init__(self, shrink: float = 1.0):
            self.shrink = shrink

        def fit(self, X, y):
            self.classes_ = np.unique(y)
            self.prior_ = np.array([(y == c).mean() for c in self.classes_])
            return self

        def predict_proba(self, X):
            return np.tile(self.prior_, (len(X), 1))

        def predict(self, X):
            return self.classes_[self.predict_proba(X).argmax(1)]

    tab = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"], cont_names=["age"],
                  y_names="salary", splits=RandomSplitter(0.2, seed=0))
    m = SklearnModel(Prior(), "classification").fit(tab.train, tab.valid)
    with pytest.raises(ExportError, match=r"pipekit\.register\(.*Prior, kind='sklearn_estimator'\)"):
        pipekit.save(m, tmp_path / "m.pipekit")
    name = "tests.sklearn_user_gaps.Prior"
    pipekit.register(Prior, name=name, kind="sklearn_estimator", replace=True)
    try:
        file = pipekit.save(m, tmp_path / "m.pipekit")
        assert np.array_equal(np.asarray(pipekit.load(file).predict(tab.valid)), np.asarray(m.predict(tab.valid)))
    finally:
        _ENTRIES.pop(name)  # the loading process without the class
    with pytest.raises(ExportError, match=rf"{name} is not loadable.*pipekit\.register\(Prior, kind='sklearn_estimator'\)"):
        pipekit.load(file)
