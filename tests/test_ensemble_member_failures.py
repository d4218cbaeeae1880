"""A candidate whose model fails is left out of ``fit_ensemble`` (warned about, marked failed in the report) while
the others are fitted; a bag's failing fold model raises its own error, with a note naming the fold; scikit-learn probabilities computed in float32 still
sum to one, so log_loss scores them without complaint."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from test_models_helpers import adult_tab

from pipekit.backends import GBM, SklearnModel
from pipekit.core import DataError, ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.ensemble import BaggedModel, Candidate, StackingEnsemble, WeightedEnsemble, fit_ensemble
from pipekit.ensemble.auto import CandidatesFailedError
from pipekit.tabular import Tabular


class Boom(BaseEstimator, ClassifierMixin):
    """A classifier whose ``fit`` raises on its ``fail_on``-th call (counted over every copy: the fold models are
    clones), after fitting a logistic regression on the calls before."""

    calls = 0

    def __init__(self, fail_on: int = 1):
        self.fail_on = fail_on

    def fit(self, X, y):
        type(self).calls += 1
        if type(self).calls == self.fail_on:
            raise RuntimeError("boom on fit")
        self.lr_ = LogisticRegression(max_iter=300).fit(X, y)
        self.classes_ = self.lr_.classes_
        return self

    def predict(self, X):
        return self.lr_.predict(X)

    def predict_proba(self, X):
        return self.lr_.predict_proba(X)


@pytest.fixture(autouse=True)
def _count_from_zero():
    Boom.calls = 0


@pytest.fixture(scope="module")
def tab():
    return adult_tab(3000)


def gbm() -> GBM:
    return GBM("classification", n_estimators=40, n_jobs=1)


@pytest.mark.parametrize("boom_first", [False, True])
def test_a_failing_candidate_is_left_out_and_reported(tab, boom_first):
    cands = [Candidate("gbm", gbm()), Candidate("boom", SklearnModel(Boom(), task="classification"))]
    with pytest.warns(UserWarning, match=r"candidate 'boom' failed and is left out: fold 0 of 3: "
                                         r"RuntimeError: boom on fit"):
        ens = fit_ensemble(tab, time_limit=60, metric="accuracy", n_folds=3, verbose=False, stack=False,
                           candidates=cands[::-1] if boom_first else cands)
    assert [b.name for b in ens.members] == ["gbm"]
    rows = {r["model"]: r for r in ens.report_.to_dicts()}
    assert rows["boom"]["status"] == "failed: fold 0 of 3: RuntimeError: boom on fit"
    assert rows["boom"]["weight"] is None and rows["boom"]["oof_accuracy"] is None
    assert rows["gbm"]["status"] == "fitted" and rows["gbm"]["weight"] == 1.0
    assert rows["weighted_ensemble"]["status"] == "returned"
    assert ens.score(tab.valid) > 0.75


def test_a_scikit_learn_estimator_refusing_its_parameters_is_one_candidates_failure(tab):
    # scikit-learn checks its parameters when fitting, not when built
    bad = SklearnModel(LogisticRegression(C=-1.0), task="classification")
    with pytest.warns(UserWarning, match=r"candidate 'bad_lr' failed and is left out: fold 0 of 3: "
                                         r"InvalidParameterError: The 'C' parameter"):
        ens = fit_ensemble(tab, metric="accuracy", n_folds=3, verbose=False, stack=False,
                           candidates={"bad_lr": bad, "gbm": gbm()})
    assert [b.name for b in ens.members] == ["gbm"]
    status = dict(zip(ens.report_["model"], ens.report_["status"]))
    assert status["bad_lr"].startswith("failed: fold 0 of 3: InvalidParameterError: The 'C' parameter")


def test_every_candidate_failing_names_each_failure(tab):
    cands = {"boom": SklearnModel(Boom(), task="classification"),
             "bad_lr": SklearnModel(LogisticRegression(C=-1.0), task="classification")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(CandidatesFailedError, match=r"every candidate failed.*'boom': fold 0 of 3: RuntimeError: "
                                                        r"boom on fit; 'bad_lr': fold 0 of 3: InvalidParameterError: "
                                                        r"The 'C' parameter") as e:
            fit_ensemble(tab, metric="accuracy", n_folds=3, verbose=False, candidates=cands)
    assert set(e.value.failures) == {"boom", "bad_lr"}
    boom, bad = e.value.failures["boom"], e.value.failures["bad_lr"]
    assert type(boom) is RuntimeError and boom.pipekit_fold == (0, 0, 3)  # each fold model's own error
    assert isinstance(bad, ValueError) and bad.pipekit_fold == (0, 0, 3)
    assert e.value.__cause__ in (boom, bad)


def test_the_users_own_arguments_still_stop_the_call(tab):
    # a metric no candidate can be scored with is the caller's to fix, not one model's failure
    with pytest.raises(ParameterError, match="rmse"):
        fit_ensemble(tab, metric="rmse", n_folds=3, verbose=False, candidates={"gbm": gbm()})


def test_a_bagged_models_failing_fold_raises_its_error_with_a_note_naming_the_fold(tab):
    bag = BaggedModel(SklearnModel(Boom(fail_on=2), task="classification"), n_folds=3, name="boom")
    with pytest.raises(RuntimeError) as e:
        bag.fit(tab.train)
    assert type(e.value) is RuntimeError and str(e.value) == "boom on fit"  # the model's own error, not a wrapper
    assert e.value.pipekit_fold == (1, 0, 3) and e.value.pipekit_bag == "boom"
    [note] = e.value.__notes__
    assert re.fullmatch(r"\(raised in the fold model of fold 1 of 3 of BaggedModel 'boom', fitted on \d+ "
                        r"rows: the error is the model's own, change its parameters or the rows it is given\)", note)
    assert not bag.is_fitted  # no half-fitted bag is left behind


class Refuses(Boom):
    """A classifier whose every fit raises pipekit's DataError, as a model checking its rows does."""

    def fit(self, X, y):
        raise DataError(f"{len(X)} rows are too few for this model; give more rows")


@pytest.mark.parametrize("model, caught", [(LogisticRegression(C=-1.0), ValueError), (Refuses(), DataError)])
def test_a_fold_models_error_keeps_its_type_for_the_callers_except(tab, model, caught):
    bag = BaggedModel(SklearnModel(model, task="classification"), n_folds=3, name="m")
    try:
        bag.fit(tab.train)
    except caught as e:  # scikit-learn's ValueError and pipekit's DataError are still caught as such
        assert e.pipekit_fold == (0, 0, 3)
        assert any("fold model of fold 0 of 3 of BaggedModel 'm'" in n for n in e.__notes__)
        raised = type(e).__name__
    else:
        pytest.fail("the fold model's error was not raised")
    # the same error in every candidate of fit_ensemble is each one's failure: none is left to ensemble
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(CandidatesFailedError, match=f"'m': fold 0 of 3: {raised}: ") as failed:
            fit_ensemble(tab, metric="accuracy", n_folds=3, verbose=False,
                         candidates={"m": SklearnModel(model, task="classification")})
    assert isinstance(failed.value.failures["m"], caught)


def test_a_fold_models_memory_error_is_not_one_candidates_failure(tab):
    class Exhausted(Boom):
        def fit(self, X, y):
            raise MemoryError("no memory for the fold")

    with pytest.raises(MemoryError, match="no memory for the fold") as e:
        fit_ensemble(tab, metric="accuracy", n_folds=3, verbose=False,
                     candidates={"gbm": gbm(), "big": SklearnModel(Exhausted(), task="classification")})
    assert not hasattr(e.value, "pipekit_fold") and not getattr(e.value, "__notes__", None)


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True, as_frame=True)
    df = X.copy()
    df["t"] = y.map({0: "zeta", 1: "alpha", 2: "mid"})
    return Tabular(df, cont_names=list(X.columns), y_names="t", splits=RandomSplitter(0.25, seed=1))


def test_logistic_regression_probabilities_sum_to_one_in_float64(wine):
    lr = BaggedModel(SklearnModel(LogisticRegression(max_iter=2000), task="classification"), n_folds=3,
                     name="lr").fit(wine.train)
    for p in (lr.oof_predictions_, lr.predict_proba(wine.valid), lr.models_[0].predict_proba(wine.valid)):
        assert p.dtype == np.float64
        assert np.abs(p.sum(axis=1) - 1).max() < 1e-12
    gb = BaggedModel(GBM("classification", n_estimators=30, n_jobs=1), n_folds=3, name="gbm").fit(wine.train)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*do not sum to one")
        for ens in (WeightedEnsemble([gb, lr], metric="log_loss"), StackingEnsemble([gb, lr], metric="log_loss")):
            ens.fit(wine.train)
            assert ens.score(wine.valid, "log_loss") < 0.5
