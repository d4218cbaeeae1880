"""A forest's out-of-bag predictions, made by pipekit from each tree's bootstrap sample: scikit-learn's numbers
where a row has one, NaN (and left out of ``oob_score_``) for a row every tree drew, where scikit-learn gives 0 —
class 0, or the value 0 — and warns. No warning reaches the user, and the warning filters are left as they were,
with forests fitted side by side in threads too. On adult_sample and rossmann_sample, few rows and trees."""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, r2_score

import pipekit
from pipekit.backends import ExtraTrees, RandomForest, as_data
from pipekit.metrics import get_metric

from test_models_helpers import adult_tab, rossmann_open_tab  # noqa: E402


@pytest.fixture(scope="module")
def adult():
    return adult_tab(1000)


@pytest.fixture(scope="module")
def rossmann():
    return rossmann_open_tab(1000)


def xy(rf, split):
    """The matrix and encoded targets ``rf`` is fitted on for ``split``."""
    d = as_data(split)
    return rf.matrix(d), rf.encode_y(d.y)


def by_hand(rf, X):
    """Each row's mean over the trees that did not draw it of their predictions, NaN for a row every tree drew."""
    clf = rf.task == "classification"
    preds, left_out = [], []
    for tree, drawn in zip(rf.model_.estimators_, rf.model_.estimators_samples_):
        preds.append(tree.predict_proba(X) if clf else tree.predict(X)[:, None])
        left_out.append(~np.isin(np.arange(len(X)), drawn))
    preds, left_out = np.stack(preds), np.stack(left_out)
    n = left_out.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (preds * left_out[:, :, None]).sum(0) / n[:, None]
    mean[n == 0] = np.nan
    return mean if clf else mean[:, 0]


def filters():
    """The warning filters, a pattern as its text (scikit-learn's threads rebuild each filter from its pattern)."""
    return [(a, getattr(m, "pattern", m), c, getattr(mod, "pattern", mod), n) for a, m, c, mod, n in warnings.filters]


def quiet_fit(model, *args, **kwargs):
    """``model`` fitted, and the warnings the fit raised (every one, shown once each or not)."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        model.fit(*args, **kwargs)
    return model, [str(w.message) for w in said]


@pytest.mark.parametrize("how", ["plain", "max_samples", "sample_weight", "class_weight", "extra_trees"])
def test_classification_oob_is_scikit_learns_where_every_row_has_one(adult, how):
    kw = {"max_samples": 0.5} if how == "max_samples" else {"class_weight": "balanced"} if how == "class_weight" else {}
    cls = ExtraTrees if how == "extra_trees" else RandomForest
    w = np.random.default_rng(0).uniform(0.5, 2, len(adult.train.y)) if how == "sample_weight" else None
    rf, said = quiet_fit(cls("classification", n_estimators=100, oob_score=True, n_jobs=2, seed=3, **kw), adult.train,
                         sample_weight=w)
    assert said == []
    X, y = xy(rf, adult.train)
    oob = rf.oob_predictions_
    assert oob.shape == (len(y), 2) and not np.isnan(oob).any()  # enough trees: every row has one
    sk = clone(rf.model_).set_params(oob_score=True).fit(X, y, sample_weight=w)
    assert rf.model_.oob_score_ == sk.oob_score_
    assert np.allclose(rf.model_.oob_decision_function_, sk.oob_decision_function_, rtol=0, atol=1e-12)
    assert rf.oob_decision_function_ is oob and rf.oob_score_ == pytest.approx(accuracy_score(y, oob.argmax(1)))


@pytest.mark.parametrize("how", ["plain", "max_samples", "sample_weight"])
def test_regression_oob_is_scikit_learns_where_every_row_has_one(rossmann, how):
    w = np.random.default_rng(0).uniform(0.5, 2, len(rossmann.train.y)) if how == "sample_weight" else None
    rf, said = quiet_fit(RandomForest("regression", n_estimators=100, n_jobs=2, seed=5,
                                      max_samples=0.5 if how == "max_samples" else None),
                         rossmann.train, sample_weight=w)
    assert said == []
    X, y = xy(rf, rossmann.train)
    assert rf.oob_prediction_.shape == (len(y),) and not np.isnan(rf.oob_prediction_).any()
    sk = clone(rf.model_).set_params(oob_score=True).fit(X, y, sample_weight=w)
    assert rf.model_.oob_score_ == pytest.approx(sk.oob_score_, rel=1e-12)
    assert np.allclose(rf.model_.oob_prediction_, sk.oob_prediction_, rtol=1e-12, atol=0)
    assert rf.oob_score_ == pytest.approx(get_metric(None, "regression").score(y, sk.oob_prediction_), rel=1e-12)


def test_three_trees_leave_rows_without_a_prediction_nan_and_out_of_the_score(adult):
    rf, said = quiet_fit(RandomForest("classification", n_estimators=3, n_jobs=2, seed=0), adult.train)
    assert said == []  # scikit-learn would warn "Some inputs do not have OOB scores"
    X, y = xy(rf, adult.train)
    expected = by_hand(rf, X)
    none = np.isnan(expected).any(1)
    assert 0 < none.sum() < len(y) / 2  # 0.632**3 of the rows: about a quarter
    oob = rf.oob_predictions_
    assert np.array_equal(np.isnan(oob).any(1), none) and np.isnan(oob[none]).all()
    assert np.allclose(oob[~none], expected[~none], rtol=0, atol=1e-12)
    right = (expected[~none].argmax(1) == y[~none]).mean()
    assert rf.oob_score_ == pytest.approx(right) and rf.model_.oob_score_ == pytest.approx(right)
    assert np.isnan(rf.model_.oob_decision_function_[none]).all()


def test_three_regression_trees_leave_rows_nan_and_out_of_the_rmse(rossmann):
    rf, said = quiet_fit(RandomForest("regression", n_estimators=3, n_jobs=1, seed=0), rossmann.train)
    assert said == []
    X, y = xy(rf, rossmann.train)
    expected = by_hand(rf, X)
    none = np.isnan(expected)
    assert 0 < none.sum() and np.array_equal(np.isnan(rf.oob_prediction_), none)
    assert np.allclose(rf.oob_prediction_[~none], expected[~none], rtol=1e-12, atol=0)
    rmse = np.sqrt(np.mean((expected[~none] - y[~none]) ** 2))
    assert rf.oob_score_ == pytest.approx(rmse, rel=1e-9)
    assert rf.model_.oob_score_ == pytest.approx(r2_score(y[~none], expected[~none]), rel=1e-9)


def test_forests_fitted_side_by_side_in_threads_warn_nothing_and_leave_the_filters(adult):
    before = filters()
    models = [RandomForest("classification", n_estimators=3, n_jobs=2, seed=s) for s in range(4)]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        inside = filters()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda m: m.fit(adult.train), models))
        assert filters() == inside
    assert [str(w.message) for w in said] == []
    assert filters() == before
    assert all(np.isnan(m.oob_predictions_).any() for m in models)


def test_a_time_limited_forest_has_out_of_bag_predictions_and_warns_nothing(adult):
    rf, said = quiet_fit(RandomForest("classification", n_estimators=40, n_jobs=2, seed=0, time_limit=30),
                         adult.train)
    assert said == []  # no "Warm-start fitting without increasing n_estimators"
    X, _ = xy(rf, adult.train)
    assert len(rf.estimators_) == 40 and rf.oob_predictions_.shape == (len(X), 2)
    assert np.allclose(rf.oob_predictions_, by_hand(rf, X), rtol=0, atol=1e-12, equal_nan=True)
    full = RandomForest("classification", n_estimators=40, n_jobs=2, seed=0).fit(adult.train)
    assert np.allclose(rf.oob_predictions_, full.oob_predictions_, rtol=0, atol=1e-12, equal_nan=True)
    assert rf.oob_score_ == full.oob_score_ and rf.model_.oob_score_ == full.model_.oob_score_


def test_a_time_limit_that_stops_the_forest_early_scores_the_trees_grown(adult):
    rf, said = quiet_fit(RandomForest("classification", n_estimators=2000, n_jobs=1, seed=0, time_limit=0.3),
                         adult.train)
    assert said == [] and rf.stopped_on_time_ and len(rf.estimators_) < 2000
    X, _ = xy(rf, adult.train)
    assert np.allclose(rf.oob_predictions_, by_hand(rf, X), rtol=0, atol=1e-12, equal_nan=True)


def test_the_forest_says_what_it_did_and_its_file_predicts_the_same(adult, tmp_path):
    rf = RandomForest("classification", n_estimators=5, n_jobs=1, seed=0).fit(adult.train)
    assert rf.model_.get_params()["oob_score"] is True and hasattr(rf.model_, "oob_score_")
    back = pipekit.load(rf.export(tmp_path / "forest.pipekit"))
    assert back.get_params() == rf.get_params() and back.oob_score_ == rf.oob_score_
    assert back.model_.get_params() == rf.model_.get_params()
    assert np.array_equal(back.predict(adult.valid), rf.predict(adult.valid))
    off = RandomForest("classification", n_estimators=5, n_jobs=1, seed=0, oob_score=False).fit(adult.train)
    assert off.model_.get_params()["oob_score"] is False and not hasattr(off.model_, "oob_score_")
    assert off.oob_score_ is None and not hasattr(off, "oob_decision_function_")
    assert np.array_equal(off.predict(adult.valid), rf.predict(adult.valid))  # the same trees
