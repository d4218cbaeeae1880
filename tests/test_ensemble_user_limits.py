"""What a scikit-learn or AutoGluon user of ``fit_ensemble`` is told: a lambda metric's direction said once, as it is
chosen on; an ensemble that a time limit left no better than predicting the class prior said to be so, naming the
limit."""

from __future__ import annotations

import os
import warnings

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_diabetes

import pipekit.datasets as D
from pipekit.backends import GBM, RandomForest
from pipekit.data import RandomSplitter
from pipekit.ensemble import fit_ensemble
from pipekit.ensemble.auto import constant_oof_score
from pipekit.metrics import get_metric
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")

#: the warnings that say which way a metric is chosen on
DIRECTION = ("no name to read its direction", "is taken as better", "so smaller is better", "so larger is better")


def fit_quietly_recording(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ens = fit_ensemble(*args, **kwargs)
    return ens, [str(w.message) for w in caught]


def test_a_lambda_error_gets_one_warning_of_the_direction_it_is_chosen_on():
    db = pl.from_pandas(load_diabetes(as_frame=True).frame)
    tab = Tabular(db, procs=[FillMissing], cont_names=db.columns[:-1], y_names="target",
                  splits=RandomSplitter(valid_pct=0.2, seed=0))
    cands = {"gbm": GBM("regression", n_estimators=30, n_jobs=1), "rf": RandomForest("regression", n_estimators=10,
                                                                                      n_jobs=1)}
    ens, said = fit_quietly_recording(tab, metric=lambda y, p: float(np.mean(np.abs(y - p))), candidates=cands,
                                      n_folds=3, stack=False, n_jobs=1, verbose=False)
    direction = [s for s in said if any(d in s for d in DIRECTION)]
    assert len(direction) == 1, direction
    assert "'<lambda>' is taken as better smaller, as its scores say" in direction[0]
    assert ens.metric.greater_is_better is False  # and it is minimised: the better member weighs more
    report = ens.report_.filter(pl.col("model").is_in(["gbm", "rf"]))
    best = report.sort(report.columns[1])["model"][0]
    assert report.filter(pl.col("model") == best)["weight"][0] >= 0.5


def test_a_lambda_whose_scores_do_not_tell_keeps_the_name_warning():
    from pipekit.metrics.lookup import checked_metric

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = checked_metric(lambda y, p: 1.0, "regression")  # the same score of every prediction: nothing told
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "a lambda metric has no name to read its direction from" in said[0]
    assert m.greater_is_better is True


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv")


def adult_tab(df: pl.DataFrame) -> Tabular:
    cats = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
    conts = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=cats, cont_names=conts, y_names="salary",
                   splits=RandomSplitter(valid_pct=0.2, seed=42))


def test_an_ensemble_no_better_than_the_class_prior_is_warned_of_naming_the_time_limit(adult):
    tab = adult_tab(adult.head(8000))
    ens, said = fit_quietly_recording(tab, time_limit=1e-3, metric="accuracy", n_jobs=2, verbose=False)
    # every fold model cut short at once: the ensemble predicts the majority class, as the class prior does
    returned = ens.report_.filter(pl.col("status") == "returned")["oof_accuracy"][0]
    y = np.asarray(tab.train.y.to_numpy() if hasattr(tab.train.y, "to_numpy") else tab.train.y)
    majority = np.unique(y, return_counts=True)[1].max() / len(y)
    assert returned == pytest.approx(majority, abs=2e-3)
    prior = [s for s in said if "no better than predicting the class prior" in s]
    assert len(prior) == 1, said
    assert "time_limit=0.001 s" in prior[0] and "raise time_limit" in prior[0]
    assert f"accuracy {returned:.4g} out of fold" in prior[0]


def test_a_fit_with_time_enough_is_not_warned_of_the_class_prior(adult):
    tab = adult_tab(adult.head(8000))
    ens, said = fit_quietly_recording(tab, metric="accuracy", n_folds=3, stack=False, verbose=False, n_jobs=2,
                                      candidates={"gbm": GBM("classification", n_estimators=50, n_jobs=2)})
    assert not [s for s in said if "no better than predicting" in s], said
    oof = ens.report_.filter(pl.col("status") == "returned")["oof_accuracy"][0]
    assert oof > constant_oof_score(ens.members[0], get_metric("accuracy", "classification")) + 0.05


def test_an_ensemble_given_a_lambda_error_says_its_direction_once_as_it_selects():
    """``WeightedEnsemble(members, metric=lambda ...)`` built and fitted directly: the name-based guess (better
    larger) is not said before the scores decide better smaller."""
    from pipekit.backends import as_data
    from pipekit.ensemble import WeightedEnsemble

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    fit_on, select_on = as_data(X[:300], y=y[:300]), as_data(X[300:], y=y[300:])
    members = [GBM("regression", n_estimators=20, n_jobs=1).fit(fit_on),
               RandomForest("regression", n_estimators=20, n_jobs=1).fit(fit_on)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ens = WeightedEnsemble(members, metric=lambda a, b: float(np.mean(np.abs(a - b)))).fit(select_on)
    said = [str(w.message) for w in caught if any(d in str(w.message) for d in DIRECTION)]
    assert len(said) == 1 and "better smaller" in said[0], said
    mae = lambda p: float(np.mean(np.abs(y[300:].to_numpy() - p)))  # noqa: E731
    assert mae(ens.predict(select_on)) <= min(mae(m.predict(select_on)) for m in members) + 1e-9
