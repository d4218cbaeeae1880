"""A scikit-learn scorer wherever pipekit takes ``metric=`` (its score function, keyword arguments, sign as the
direction and response method), and scikit-learn's names of the errors users type: root_mean_squared_error,
rmsle and mape."""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import sklearn.metrics as skm
from sklearn.metrics import get_scorer, make_scorer

from pipekit.backends import GBM, SklearnModel
from pipekit.core import ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.ensemble import WeightedEnsemble, fit_ensemble
from pipekit.ensemble.auto import Candidate
from pipekit.metrics import as_metric, check_metric, get_metric
from pipekit.sklearn import TabularClassifier
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

pytestmark = pytest.mark.filterwarnings("ignore:(FillMissing|Categorify):UserWarning")

AUC = make_scorer(skm.roc_auc_score, response_method="predict_proba")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").sample(fraction=1.0, shuffle=True, seed=0).head(2000)


@pytest.fixture(scope="module")
def adult_tab(adult):
    return Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education", "sex"],
                   cont_names=["age", "education-num", "hours-per-week"], y_names="salary",
                   splits=RandomSplitter(valid_pct=0.25, seed=0))


@pytest.fixture(scope="module")
def classifier(adult):
    X = adult.select("age", "workclass", "hours-per-week", "sex", "education-num")
    y = (adult["salary"] == ">=50k").cast(pl.Int64).to_numpy()  # scikit-learn's scorers take 1 as the positive class
    clf = TabularClassifier(GBM("classification", n_estimators=20, min_child_samples=5, n_jobs=1)).fit(X, y)
    return clf, X, y


@pytest.fixture(scope="module")
def rossmann():
    df = pl.read_csv(path("rossmann_sample") / "train.csv", try_parse_dates=True,
                     schema_overrides={"StateHoliday": pl.String}).filter(pl.col("Open") == 1).head(3000)
    tab = Tabular(df.select("Store", "DayOfWeek", "Promo", "Customers", "Sales"), procs=[Normalize],
                  cont_names=["Store", "DayOfWeek", "Promo", "Customers"], y_names="Sales",
                  splits=RandomSplitter(valid_pct=0.25, seed=0))
    gbm = GBM("regression", n_estimators=30, n_jobs=1).fit(tab.train)
    return tab, gbm, np.asarray(tab.valid.y, dtype=np.float64), gbm.predict(tab.valid)


def test_a_scorer_scores_as_its_scoring_name_and_as_scikit_learn_scores_the_estimator(classifier):
    clf, X, y = classifier
    codes, proba = np.searchsorted(clf.classes_, y), clf.predict_proba(X)
    by_name = get_metric("roc_auc", "classification").score(codes, proba)
    for scorer in (AUC, get_scorer("roc_auc")):
        m = get_metric(scorer, "classification")
        check_metric(m, "classification", 2)
        assert (m.name, m.greater_is_better) == ("roc_auc_score", True)
        assert m.score(codes, proba) == pytest.approx(by_name)
        assert m.score(codes, proba) == pytest.approx(scorer(clf, X, y))  # scikit-learn's own scoring of the model
    # the response method decides what the function is given: 'predict' the classes, as scikit-learn gives them
    for scorer in (make_scorer(skm.f1_score), make_scorer(skm.roc_auc_score), get_scorer("neg_log_loss"),
                   make_scorer(lambda t, p: float(np.mean(p)), response_method="predict_proba")):
        assert get_metric(scorer, "classification").score(codes, proba) == pytest.approx(
            scorer(clf, X, y) * scorer._sign)
    hard = get_metric(make_scorer(skm.roc_auc_score), "classification").score(codes, proba)  # AUC of the labels
    assert hard == pytest.approx(skm.roc_auc_score(codes, proba.argmax(1))) and hard < by_name


def test_a_log_loss_scorer_scores_rows_that_lack_a_class_as_the_log_loss_metric_does(classifier):
    """Folds of a small or unbalanced set may hold one class only: the log loss of a scorer is still scored over
    every class of the model, as metric='log_loss' scores it (scikit-learn's function alone refuses one label)."""
    clf, X, y = classifier
    codes, proba = np.searchsorted(clf.classes_, y), clf.predict_proba(X)
    only = codes == 0
    by_name = get_metric("log_loss", "classification").score(codes[only], proba[only])
    m = get_metric(get_scorer("neg_log_loss"), "classification")
    assert m.score(codes[only], proba[only]) == pytest.approx(by_name)
    assert m.score(codes[only], proba[only]) == pytest.approx(skm.log_loss(codes[only], proba[only], labels=[0, 1]))
    three = np.column_stack([proba * 0.9, np.full(len(proba), 0.1)])  # a third class, never the truth here
    assert m.score(codes, three) == pytest.approx(skm.log_loss(codes, three, labels=[0, 1, 2]))
    assert m.score(codes, three) > m.score(codes, proba)


def test_an_ensemble_fitted_on_a_scorer_reports_what_the_metric_name_reports(adult_tab):
    tab = adult_tab
    cands = [Candidate("gbm", GBM("classification", n_estimators=20, n_jobs=1), 1.0, 1.0)]
    ens = fit_ensemble(tab, metric=AUC, candidates=cands, n_folds=2, stack=False, n_jobs=1, verbose=False)
    named = ens.report(tab.valid, metric="roc_auc")["roc_auc_score"]
    assert ens.report(tab.valid)["roc_auc_score"].to_list() == pytest.approx(named.to_list())
    got = ens.report(tab.valid, metric=get_scorer("roc_auc"))["roc_auc_score"]
    assert got.to_list() == pytest.approx(named.to_list()) and 0.6 < named[-1] < 1.0


def test_a_scorer_of_a_loss_is_minimised_and_reported_positive():
    from sklearn.datasets import load_diabetes
    from sklearn.dummy import DummyRegressor

    df = pl.from_pandas(load_diabetes(as_frame=True, scaled=False).frame)
    tab = Tabular(df, cont_names=[c for c in df.columns if c != "target"], y_names="target",
                  splits=RandomSplitter(0.25, seed=0))
    gbm = GBM("regression", n_estimators=40, n_jobs=1).fit(tab.train)
    mean = SklearnModel(DummyRegressor(), "regression").fit(tab.train)
    errors = [skm.mean_squared_error(tab.valid.y, m.predict(tab.valid)) for m in (gbm, mean)]
    assert errors[0] < errors[1]
    scorer = make_scorer(skm.mean_squared_error, greater_is_better=False)
    m = get_metric(scorer, "regression")
    assert (m.name, m.greater_is_better) == ("mean_squared_error", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sign agrees with the scores: nothing to warn of
        ens = WeightedEnsemble({"gbm": gbm, "mean": mean}, metric=scorer, n_iter=10).fit(tab.valid)
    assert ens.best_member_ == 0 and ens.weights_[0] > ens.weights_[1]
    assert ens.scores_[0] == pytest.approx(errors[0]) and min(ens.scores_) <= errors[0]
    assert ens.report_["mean_squared_error"][-1] <= errors[0]  # the loss itself, not minus it


def test_a_scorer_pipekit_cannot_read_or_of_the_other_task_is_refused_naming_what_to_pass():
    old = make_scorer(skm.roc_auc_score, response_method="predict_proba")
    del old._response_method  # as a scorer of another scikit-learn version
    with pytest.raises(ParameterError, match=r"scikit-learn _Scorer of roc_auc_score that pipekit cannot read .*pass the function "
                                             r"itself \(metric=roc_auc_score\) or its name \(metric='roc_auc'\)"):
        get_metric(old, "classification")
    with pytest.raises(ParameterError, match="metric 'roc_auc_score' is a classification metric but the task is "
                                             "'regression'"):
        check_metric(get_metric(get_scorer("roc_auc"), "regression"), "regression")
    with pytest.raises(ParameterError, match=r"is a scikit-learn scorer.*skm_to_fastai"):
        as_metric(AUC)  # a Learner's metric
    with pytest.warns(UserWarning, match=r"make_scorer\(mean_squared_error, greater_is_better=False"):
        check_metric(get_metric(make_scorer(skm.mean_squared_error), "regression"), "regression")


def test_scikit_learn_error_names_score_as_scikit_learn(rossmann):
    tab, gbm, y, p = rossmann
    for name, fn in (("root_mean_squared_error", skm.root_mean_squared_error),
                     ("rmsle", skm.root_mean_squared_log_error), ("mape", skm.mean_absolute_percentage_error)):
        m = get_metric(name, "regression")
        check_metric(m, "regression")
        assert m.greater_is_better is False
        assert m.score(y, p) == pytest.approx(fn(y, p))
        assert gbm.score(tab.valid, metric=name) == pytest.approx(fn(y, p))
        with pytest.raises(ParameterError, match=f"metric={name!r} is a regression metric but the task is "
                                                 "'classification'"):
            get_metric(name, "classification")
    assert get_metric("rmsle", "regression").score(y, p) == pytest.approx(np.sqrt(skm.mean_squared_log_error(y, p)))
    with pytest.raises(ParameterError, match=r"'root_mean_squared_log_error' cannot score these values .*-1.*"
                                             r"metric='rmse'"):
        get_metric("rmsle", "regression").score(y, p - y.max() - 10)


@pytest.mark.parametrize("name, fn, ours", [("mean_absolute_error", skm.mean_absolute_error, "mae"),
                                            ("mean_squared_error", skm.mean_squared_error, "mse")])
def test_scikit_learn_function_names_of_mae_and_mse_are_those_metrics(rossmann, name, fn, ours):
    """scikit-learn's function names are the aliases of pipekit's metric classes: the metric is the class (named by
    its pipekit name), scores what scikit-learn's function gives, and ``neg_`` of the name points at it."""
    tab, gbm, y, p = rossmann
    m = get_metric(name, "regression")
    assert (m.name, m.greater_is_better) == (ours, False)
    assert type(m) is type(get_metric(ours, "regression"))
    assert m.score(y, p) == pytest.approx(fn(y, p), rel=1e-6)
    assert gbm.score(tab.valid, metric=name) == pytest.approx(fn(y, p), rel=1e-6)
    with pytest.raises(ParameterError, match=f"metric={name!r} is a regression metric but the task is 'classification'"):
        get_metric(name, "classification")
    with pytest.raises(ParameterError, match=f"scorer of minus {name}.*use metric={ours!r}"):
        get_metric(f"neg_{name}", "regression")
