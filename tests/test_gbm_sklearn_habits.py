"""Habits users bring from LightGBM and scikit-learn, on real adult and rossmann rows: ``early_stopping_rounds``
with no validation split, ``fit(X, y, eval_set=[(X_valid, y_valid)])`` on the wrappers, ``check_is_fitted`` on a
bare model, and ``df_shrink``'s categories read as pandas' ``.cat.codes``."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted

from pipekit.backends import GBM, RandomForest
from pipekit.core import DataError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import BaggedModel, MeanEnsemble
from pipekit.sklearn import TabularClassifier, TabularRegressor
from pipekit.tabular import Tabular
from pipekit.tabular.dates import df_shrink

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


@pytest.fixture(scope="module")
def tab(adult_1500_tab) -> Tabular:
    return adult_1500_tab


@pytest.fixture(scope="module")
def xy(adult_1500) -> tuple[pd.DataFrame, np.ndarray]:
    df = adult_1500.to_pandas()
    return df.drop(columns="salary"), df["salary"].to_numpy()


def test_early_stopping_rounds_without_a_valid_split_is_said(tab, xy):
    gbm = GBM("classification", n_estimators=300, early_stopping_rounds=10, n_jobs=1)
    with pytest.warns(UserWarning, match=r"early_stopping_rounds=10.*all n_estimators=300 rounds.*tab\.valid.*"
                                         r"early_stopping_rounds=None"):
        assert gbm.clone().fit(tab.train).best_iteration_ == 300
    X, y = xy
    with pytest.warns(UserWarning, match=r"early_stopping_rounds=10.*eval_set=\[\(X_valid, y_valid\)\]"):
        TabularClassifier(gbm).fit(X, y)
    # an ensemble fits its members without a valid split: said, and fitted
    with pytest.warns(UserWarning, match="early_stopping_rounds=10"):
        ens = TabularClassifier(MeanEnsemble([gbm.clone(), RandomForest("classification", n_estimators=5)])).fit(X, y)
    assert ens.predict(X[:5]).shape == (5,)
    # with the valid split it stops on it; without early stopping every round is boosted
    stopped = gbm.clone().fit(tab.train, tab.valid)
    assert stopped.best_iteration_ < 300 and stopped.valid_score_ > 0.7
    assert gbm.clone().set_params(early_stopping_rounds=None).fit(tab.train).best_iteration_ == 300
    # the default (50) has nothing to stop on without a valid split: a plain fit keeps working
    assert GBM("classification", n_estimators=30, n_jobs=1).fit(tab.train).best_iteration_ == 30
    # pipekit's own fits of a stopping model hold rows out to stop on, then refit with the rounds chosen
    bag = BaggedModel(GBM("classification", n_estimators=100, early_stopping_rounds=5, n_jobs=1), n_folds=2)
    assert bag.fit(tab.train).oof_predictions_.shape == (len(tab.train), 2)


def test_wrapper_takes_eval_set_and_stops_on_it(xy):
    X, y = xy
    tr, va = slice(0, 1100), slice(1100, None)
    clf = TabularClassifier(GBM("classification", n_estimators=400, learning_rate=0.2, early_stopping_rounds=10,
                                n_jobs=1), random_state=0)
    assert clf.fit(X[tr], y[tr], eval_set=[(X[va], y[va])]) is clf
    assert 0 < clf.best_iteration_ < 400 and clf.best_iteration_ == clf.model_.best_iteration_
    # the valid rows went through the procs fitted on X: the backend scored the same rows as the estimator does
    assert clf.model_.valid_score_ == pytest.approx(clf.score(X[va], y[va]))
    # clone gives the unfitted estimator, and a search passes eval_set on to every fit
    assert not hasattr(clone(clf), "model_") and repr(clone(clf)) == repr(clf)
    search = GridSearchCV(clf, {"backend__num_leaves": [7, 15]}, cv=2).fit(X[tr], y[tr], eval_set=[(X[va], y[va])])
    assert search.best_estimator_.best_iteration_ < 400
    # a regressor stops the same way; a backend that does not boost has no best_iteration_
    age = X["age"].to_numpy(dtype=float)
    reg = TabularRegressor(GBM("regression", n_estimators=400, learning_rate=0.2, early_stopping_rounds=10,
                               n_jobs=1)).fit(X.drop(columns="age")[tr], age[tr],
                                              eval_set=[(X.drop(columns="age")[va], age[va])])
    assert reg.best_iteration_ < 400
    rf = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1)).fit(X.drop(columns="age"), age)
    assert not hasattr(rf, "best_iteration_")


def test_wrapper_refuses_what_it_cannot_use(xy):
    X, y = xy
    clf = TabularClassifier(GBM("classification", n_estimators=20, n_jobs=1))
    with pytest.raises(TypeError, match="not callbacks="):
        clf.fit(X, y, callbacks=[])
    with pytest.raises(ParameterError, match=r"one \(X_valid, y_valid\) pair"):
        clf.fit(X, y, eval_set=[(X, y), (X, y)])
    with pytest.raises(DataError, match=r"labels \['maybe'\]"):
        clf.fit(X[:1000], y[:1000], eval_set=[(X[1000:], np.where(np.arange(500) == 3, "maybe", y[1000:]))])
    with pytest.raises(ParameterError, match="BaggedModel fits its members without one"):
        TabularClassifier(BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=2)).fit(
            X, y, eval_set=[(X, y)])


def test_check_is_fitted_on_a_bare_model_says_whether_it_is_fitted(tab):
    rf = RandomForest("classification", n_estimators=5, n_jobs=1)
    with pytest.raises(ParameterError, match=r"this RandomForest is not fitted yet: model\.fit\(tab\.train\)"):
        check_is_fitted(rf)
    rf.fit(tab.train)
    with pytest.raises(ParameterError, match=r"this RandomForest is fitted;.*TabularClassifier"):
        check_is_fitted(rf)


def test_df_shrink_sorts_categories_as_pandas_does():
    store = pd.read_csv(path("rossmann_sample") / "store.csv")
    shrunk = df_shrink(store)
    for c in ("StoreType", "Assortment", "PromoInterval"):
        fastai = store[c].astype("category")  # what fastai's df_shrink makes
        assert list(shrunk[c].cat.categories) == list(fastai.cat.categories) == sorted(store[c].dropna().unique())
        assert (shrunk[c].cat.codes == fastai.cat.codes).all()
    # Polars keeps its Categorical, which orders its values lexically
    small = df_shrink(pl.from_pandas(store))
    assert small["StoreType"].dtype == pl.Categorical
    assert small["StoreType"].unique().sort().to_list() == sorted(store["StoreType"].unique())
