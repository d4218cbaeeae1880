"""What users of the ensembles and boosters run into on real data: a LightGBM model that stopped finding splits,
saved and loaded again; a metric function of their own (Kaggle's ``rmspe``) chosen on in the right direction; a
True/False column passed where numbers were trained on; a pandas table with missing targets; the report's names
of an averaged metric."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.datasets import load_diabetes, load_wine

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM, ExtraTrees, RandomForest, as_data
from pipekit.core import DataError, ExportError
from pipekit.ensemble import fit_ensemble
from pipekit.metrics import AccumMetric, F1Score, FuncMetric, Jaccard, Precision, RocAuc, check_metric, get_metric
from pipekit.tabular import Tabular

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


def rmspe(y_true, y_pred):
    """Root mean squared percentage error, as Kaggle's Rossmann competition (and recipes/rossmann.py) names it."""
    return float(np.sqrt(np.mean(((y_true - y_pred) / y_true) ** 2)))


def rossmann_metric(y_true, y_pred):
    """The same error under a name that says nothing of its direction."""
    return rmspe(y_true, y_pred)


# -- a LightGBM model whose boosting ran out of splits ----------------------------------------------------------
@pytest.fixture(scope="module")
def wine_gbm() -> tuple[GBM, object]:
    """A GBM on 100 wine rows (12 to stop on) with extra_trees: some rounds find no split and add no tree, so
    LightGBM's early stopping reports a best round (866) past the trees it keeps (676)."""
    w = load_wine(as_frame=True)
    X, y = pl.from_pandas(w.data), np.array(["a", "b", "c"])[w.target]
    rng = np.random.default_rng(0)
    for _ in range(9):
        idx = rng.permutation(len(y))
    tr, va = idx[:100], idx[100:112]
    m = GBM("classification", learning_rate=0.05, params={"extra_trees": True}, n_estimators=10000,
            early_stopping_rounds=50, seed=8, n_jobs=1).fit(as_data(X[tr], y=y[tr]), as_data(X[va], y=y[va]))
    return m, as_data(X)


def test_gbm_that_stopped_finding_splits_keeps_its_trees_and_loads(wine_gbm, tmp_path):
    m, rows = wine_gbm
    held = m.booster_.current_iteration()
    assert m.booster_.best_iteration > held  # the case: LightGBM counted rounds that added no tree
    assert m.best_iteration_ == held
    # LightGBM predicts with every tree it holds for the round it reported, as the model does
    raw = m.booster_.predict(m.matrix(rows, order="F"), num_iteration=m.booster_.best_iteration)
    np.testing.assert_array_equal(m.predict(rows), raw)
    loaded = pipekit.load(pipekit.save(m, tmp_path / "wine_gbm.pipekit"))
    assert loaded.best_iteration_ == held
    np.testing.assert_array_equal(loaded.predict(rows), m.predict(rows))


def test_gbm_file_naming_rounds_past_its_trees_loads_and_a_bogus_one_is_refused(wine_gbm, tmp_path):
    m, rows = wine_gbm
    expected, held, reported = m.predict(rows), m.best_iteration_, m.booster_.best_iteration
    try:
        m.best_iteration_ = reported  # what files written before the cap hold
        old = pipekit.save(m, tmp_path / "old.pipekit")
        loaded = pipekit.load(old)
        assert loaded.best_iteration_ == held
        np.testing.assert_array_equal(loaded.predict(rows), expected)
        for bad in (m.n_estimators + 1, 0, -3):  # beyond the rounds lgb.train looped, or no rounds at all
            m.best_iteration_ = bad
            path = pipekit.save(m, tmp_path / f"bad{bad}.pipekit")
            with pytest.raises(ExportError, match=r"best_iteration_' must be an integer in \[1, 10000\]"):
                pipekit.load(path)
    finally:
        m.best_iteration_ = held


# -- a metric function's direction ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diabetes() -> Tabular:
    d = load_diabetes(as_frame=True, scaled=False)
    rows = np.random.default_rng(0).permutation(len(d.frame))
    return Tabular(d.frame, cont_names=list(d.feature_names), y_names="target", splits=(rows[:350], rows[350:]))


@pytest.mark.parametrize("fn", [rmspe, rossmann_metric])
def test_a_metric_function_of_an_error_is_minimised(diabetes, fn):
    # a good member and a poor one (a single boosting round barely moves off the mean)
    cands = {"good": ExtraTrees("regression", n_estimators=20, n_jobs=1, seed=0),
             "poor": GBM("regression", n_estimators=1, learning_rate=0.01, n_jobs=1)}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        ens = fit_ensemble(diabetes, metric=fn, candidates=cands, n_folds=3, stack=False, verbose=False)
    assert ens.metric.greater_is_better is False
    weights = dict(zip(ens.report_["model"], ens.report_["weight"]))
    assert weights["good"] > weights["poor"]
    valid = dict(zip(ens.report_["model"], ens.report_[f"valid_{fn.__name__}"]))
    assert valid["weighted_ensemble"] < valid["poor"]
    # the name rmspe says it; the scores say it of a name that does not, with a word on it
    named = [str(w.message) for w in said if "taken as better smaller" in str(w.message)]
    assert bool(named) == (fn is rossmann_metric)
    assert not [w for w in said if issubclass(w.category, RuntimeWarning)]


def test_error_names_read_as_better_smaller_everywhere():
    def error(pred, targ):
        return 0.0

    for name in ("rmspe", "smape", "wmape", "medae", "mad", "nll", "pinball", "huber", "brier", "brier_score"):
        error.__name__ = name
        # a Learner's metrics (and so SaveModelCallback's and EarlyStoppingCallback's monitors) and an ensemble's
        assert FuncMetric(error).greater_is_better is False, name
        assert AccumMetric(error).greater_is_better is False, name
        assert get_metric(error, "regression").greater_is_better is False, name
    for name in ("r2_score", "d2_brier_score", "accuracy", "kappa"):
        error.__name__ = name
        assert FuncMetric(error).greater_is_better is True, name


def test_a_direction_given_that_the_scores_contradict_is_warned_about_and_kept(diabetes):
    given = get_metric(FuncMetric(rmspe, greater_is_better=True, y_first=True), "regression")
    with pytest.warns(UserWarning, match=r"metric 'rmspe' scores a near-perfect prediction .* so smaller is better, "
                                         r"but it is set greater_is_better=True.*greater_is_better=False"):
        check_metric(given, "regression")
    assert given.greater_is_better is True
    # a percentage error on targets without a zero: the check's own rows have none either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_metric(get_metric(rmspe, "regression"), "regression")


def test_a_function_metric_built_without_a_direction_is_set_by_its_scores():
    # FuncMetric(fn) given no direction reads it from the function's name (better larger here); the scores say smaller
    m = FuncMetric(rossmann_metric, y_first=True)
    assert m.greater_is_better is True
    with pytest.warns(UserWarning, match=r"metric 'rossmann_metric' is taken as better smaller, as its scores say"):
        check_metric(m, "regression")
    assert m.greater_is_better is False
    # a direction given, by the constructor or set_params, is kept with a warning, and so is a copy's (as get_metric
    # makes of a metric passed to fit_ensemble): the copy's greater_is_better is given
    for given in (FuncMetric(rossmann_metric, greater_is_better=True, y_first=True),
                  FuncMetric(rossmann_metric, y_first=True).set_params(greater_is_better=True),
                  FuncMetric(rossmann_metric, y_first=True).clone()):
        with pytest.warns(UserWarning, match=r"but it is set greater_is_better=True"):
            check_metric(given, "regression")
        assert given.greater_is_better is True
    # set_params(greater_is_better=None) reads the name again, and the scores may set it
    again = FuncMetric(rossmann_metric, greater_is_better=True, y_first=True).set_params(greater_is_better=None)
    with pytest.warns(UserWarning, match=r"taken as better smaller"):
        check_metric(again, "regression")
    assert again.greater_is_better is False


# -- new rows ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adult() -> tuple[pd.DataFrame, GBM]:
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:800]
    tab = Tabular(df, cat_names=["workclass", "education"], cont_names=["age", "hours-per-week"], y_names="salary",
                  splits=(np.arange(600), np.arange(600, 800)))
    return df, GBM("classification", n_estimators=20, n_jobs=1).fit(tab.train)


def test_true_false_where_numbers_were_trained_on_is_warned_about(adult, tmp_path):
    df, gbm = adult
    loaded = pipekit.load(pipekit.save(gbm, tmp_path / "adult_gbm.pipekit"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.process(df.head(50))  # numbers, as in training: nothing said
    for rows in (df.head(50).assign(age=df.age.head(50) > 40), pl.from_pandas(df.head(50)).lazy().with_columns(
            pl.col("age") > 40)):
        with pytest.warns(UserWarning, match=r"continuous column 'age' holds True/False values here, but numbers in "
                                             r"the training rows: they are read as 1/0"):
            loaded.process(rows)
    # a column that held True/False in training too is read as it was
    df2 = df.head(300).assign(young=df.age.head(300) < 30)
    tab = Tabular(df2, cat_names=["workclass"], cont_names=["young", "hours-per-week"], y_names="salary",
                  splits=(np.arange(250), np.arange(250, 300)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tab.new(df2.tail(20))


def test_missing_targets_in_a_pandas_table_say_the_pandas_fix():
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:300]
    df.loc[[7, 20], "age"] = np.nan
    with pytest.raises(DataError, match=r"target column 'age' has 2 missing .* first at row 7; drop those rows "
                                        r"\(pandas: df\.dropna\(subset=\['age'\]\); Polars: "
                                        r"df\.filter\(pl\.col\('age'\)\.is_finite\(\)\)\)"):
        Tabular(df, cat_names=["workclass"], cont_names=["hours-per-week"], y_names="age", y_block="regression",
                splits=(np.arange(250), np.arange(250, 300)))
    df.loc[9, "age"] = np.inf
    with pytest.raises(DataError, match=r"has 3 missing .*pandas: df\[np\.isfinite\(df\['age'\]\)\]"):
        Tabular(df, cat_names=["workclass"], cont_names=["hours-per-week"], y_names="age", y_block="regression",
                splits=(np.arange(250), np.arange(250, 300)))


# -- the report -------------------------------------------------------------------------------------------------
def test_report_columns_name_the_metric_as_given():
    w = load_wine(as_frame=True)
    df = w.frame.assign(target=np.array(["a", "b", "c"])[w.target])
    rows = np.random.default_rng(1).permutation(len(df))
    tab = Tabular(df, cont_names=list(w.feature_names), y_names="target", splits=(rows[:140], rows[140:]))
    cands = {"rf": RandomForest("classification", n_estimators=10, n_jobs=1, seed=0)}
    ens = fit_ensemble(tab, metric="f1_macro", candidates=cands, n_folds=3, stack=False, verbose=False)
    assert ens.report_.columns[1:3] == ["oof_f1_macro", "valid_f1_macro"]
    assert ens.report_["valid_f1_macro"][0] > 0.8
    # a metric object by the scoring name get_metric reads back as it: a weighted ROC-AUC is no plain roc_auc_score
    for metric, label in ((RocAuc(average="weighted"), "roc_auc_ovr_weighted"), (F1Score(average="macro"), "f1_macro"),
                          (RocAuc(), "roc_auc_score")):
        ens = fit_ensemble(tab, metric=metric, candidates=cands, n_folds=3, stack=False, verbose=False)
        assert ens.report_.columns[1:3] == [f"oof_{label}", f"valid_{label}"]
        assert repr(get_metric(label, "classification")) == repr(metric)
    # every scoring name reads back as its metric
    metrics = [RocAuc(multi_class=c, average=a) for c in ("ovr", "ovo") for a in ("macro", "weighted")]
    metrics += [F1Score(), F1Score(average="micro"), Precision(average="weighted"), Jaccard(average="macro")]
    for m in metrics:
        assert repr(get_metric(m.scoring_name, "classification")) == repr(m), m.scoring_name
    assert RocAuc(multi_class="ovo").scoring_name == "roc_auc_ovo"
