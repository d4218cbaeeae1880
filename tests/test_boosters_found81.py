"""XGBoost and CatBoost models on real data save, load and predict what their library does.

XGBoost 2 writes a categorical split's threshold as NaN: such a file must load (the threshold, which XGBoost never
reads, is stored as 0) and predict as the fitted model, while NaN anywhere else is still refused; a model whose file
would be refused is refused when it is saved. CatBoost's losses with settings (``Quantile:alpha=0.9``) store the order
of their settings as JSON text, which must be read (and checked) rather than refused; Poisson and Tweedie regressors
predict the target (the exponent of CatBoost's raw score), and losses that predict no single estimate per row are
refused when the model is built.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_models_helpers import adult_tab

from pipekit.tabular import Categorify, FillMissing

import pipekit
from pipekit.backends import CatBoost, XGBoost, as_data
from pipekit.backends.booster_files import _checked_info, checked_xgboost_model, parse_xgboost_model
from pipekit.core import ExportError
from pipekit.core.errors import ParameterError


@pytest.fixture(scope="module")
def tab():
    return adult_tab(2000, procs=(Categorify, FillMissing))  # age in years, not normalised


def _regression(tab, split):
    """``split`` of adult with age (in years, mean about 38) as the target."""
    d = getattr(tab, split)
    return as_data(d.xs.drop("age"), y=d.xs["age"].to_numpy().astype(float),
                   cat_names=d.cat_names)


def _strict(data: bytes) -> dict:
    def refuse(name):
        raise AssertionError(f"the stored model holds {name}")
    return json.loads(data, parse_constant=refuse)


# ------------------------------------------------------------------------------------------------ XGBoost
def test_xgboost_with_categorical_splits_saves_loads_and_predicts_the_same(tab, tmp_path):
    pytest.importorskip("xgboost")
    model = XGBoost("classification", n_estimators=30, n_jobs=1).fit(tab.train, tab.valid)
    raw = json.loads(bytes(model.booster_.save_raw(raw_format="json")))  # Python's reader takes XGBoost 2's NaN
    trees = raw["learner"]["gradient_booster"]["model"]["trees"]
    assert any(1 in t["split_type"] for t in trees), "the model has no categorical split"
    stored = _strict(model.model_to_data().tobytes())  # the file holds JSON: finite numbers only
    for tree in stored["learner"]["gradient_booster"]["model"]["trees"]:
        assert all(np.isfinite(tree["split_conditions"]))
    back = pipekit.load(pipekit.save(model, tmp_path / "xgb.pipekit"))
    np.testing.assert_array_equal(back.predict(tab.valid), model.predict(tab.valid))
    np.testing.assert_array_equal(back.model_to_data(), model.model_to_data())


def test_xgboost_nan_is_read_only_as_a_categorical_splits_threshold(tab):
    pytest.importorskip("xgboost")
    model = XGBoost("classification", n_estimators=5, n_jobs=1).fit(tab.train)
    text = bytes(model.booster_.save_raw(raw_format="json"))
    n, cats = len(model.feature_names_), [c in model.cat_features_ for c in model.feature_names_]

    def checked(edit):
        parsed = parse_xgboost_model(text)
        edit(parsed["learner"]["gradient_booster"]["model"]["trees"])
        again = parse_xgboost_model(json.dumps(parsed).encode())  # json.dumps writes NaN as XGBoost 2 does
        return checked_xgboost_model(again, n, cats, "classification", 2)

    def nan_on(split_type):
        def edit(trees):
            tree = next(t for t in trees if split_type in t["split_type"])
            tree["split_conditions"][tree["split_type"].index(split_type)] = float("nan")
        return edit

    out = checked(nan_on(1))  # XGBoost 2's threshold of a categorical split: read, and written as 0
    tree = next(t for t in out["learner"]["gradient_booster"]["model"]["trees"] if 1 in t["split_type"])
    assert tree["split_conditions"][tree["split_type"].index(1)] == 0.0
    with pytest.raises(ExportError, match=r"split_conditions must be a list of \d+ finite numbers, got NaN at"):
        checked(nan_on(0))  # a number input's threshold
    with pytest.raises(ExportError, match="holds Infinity"):
        parse_xgboost_model(text.replace(b'"split_conditions":[', b'"split_conditions":[Infinity,', 1))


def test_xgboost_model_its_file_could_not_load_is_refused_when_saved(tab, tmp_path):
    pytest.importorskip("xgboost")
    # raw scores, not probabilities: pipekit.load refuses a classifier with this objective, so saving does
    model = XGBoost("classification", n_estimators=5, n_jobs=1, params={"objective": "binary:logitraw"}).fit(tab.train)
    with pytest.raises(ExportError, match=r"XGBoost cannot be saved: pipekit.load would refuse its model .*"
                                          r"must name a binary objective"):
        pipekit.save(model, tmp_path / "raw.pipekit")
    assert not (tmp_path / "raw.pipekit").exists()


# ------------------------------------------------------------------------------------------------ CatBoost
@pytest.mark.parametrize("loss", ["Quantile:alpha=0.9", "Huber:delta=2.0", "Tweedie:variance_power=1.5"])
def test_catboost_losses_with_settings_fit_save_and_load(tab, tmp_path, loss):
    pytest.importorskip("catboost")
    tr, va = _regression(tab, "train"), _regression(tab, "valid")
    model = CatBoost("regression", n_estimators=150, learning_rate=0.1, n_jobs=1, params={"loss_function": loss})
    model.fit(tr, va)
    stored = _strict(model.model_to_data().tobytes())["model_info"]["params"]["loss_function"]
    setting = loss.partition(":")[2].partition("=")[0]
    assert stored["type"] == loss.partition(":")[0] and json.loads(stored["params"]["__params_key_order"]) == [setting]
    back = pipekit.load(pipekit.save(model, tmp_path / "cb.pipekit"))
    p = model.predict(va)
    np.testing.assert_array_equal(back.predict(va), p)
    if loss.startswith("Quantile"):  # the 0.9 quantile: most ages lie at or below it
        assert np.mean(va.y <= p) > 0.8
    else:
        assert abs(p.mean() - va.y.mean()) < 3


@pytest.mark.parametrize("order", ['["alpha", "path"]', '["alpha", "alpha"]', '"alpha"', "[alpha]", '[["alpha"]]'])
def test_catboost_settings_order_must_name_the_settings_beside_it(order):
    def info(text):
        return {"params": {"loss_function": {"type": "Quantile", "params": {"__params_key_order": text,
                                                                            "alpha": "0.9"}}}}
    kept = _checked_info(info('[ "alpha" ]'), "regression", 0)  # written again by pipekit, compact
    assert kept["params"]["loss_function"]["params"]["__params_key_order"] == '["alpha"]'
    with pytest.raises(ExportError, match=r"__params_key_order must be the JSON text of a list of the names"):
        _checked_info(info(order), "regression", 0)


@pytest.mark.parametrize("loss", ["Poisson", "Tweedie:variance_power=1.5"])
def test_catboost_log_link_regression_predicts_the_target(tab, tmp_path, loss):
    cb = pytest.importorskip("catboost")
    tr, va = _regression(tab, "train"), _regression(tab, "valid")
    model = CatBoost("regression", n_estimators=200, learning_rate=0.1, n_jobs=1, early_stopping_rounds=None,
                     params={"loss_function": loss}).fit(tr)
    p = model.predict(va)
    own = cb.CatBoostRegressor(loss_function=loss, iterations=200, learning_rate=0.1, depth=6, l2_leaf_reg=3.0,
                               random_seed=0, thread_count=1, verbose=False, allow_writing_files=False)
    own.fit(model._pool(tr))
    np.testing.assert_allclose(p, own.predict(model._pool(va, label=False)), rtol=1e-6)
    assert abs(p.mean() - va.y.mean()) < 2  # years, not their log
    back = pipekit.load(pipekit.save(model, tmp_path / "log.pipekit"))
    np.testing.assert_array_equal(back.predict(va), p)


@pytest.mark.parametrize(("loss", "said"), [
    ("RMSEWithUncertainty", "predicts two values per row"), ("SurvivalAft:dist=Normal", "target of two columns"),
    ("Cox", "log relative risk")])
def test_catboost_regression_losses_of_no_single_estimate_are_refused_when_built(loss, said):
    with pytest.raises(ParameterError, match=rf"CatBoost: params loss_function='{loss}' .*{said}.*give one of"):
        CatBoost("regression", params={"loss_function": loss})
    with pytest.raises(ParameterError, match=rf"CatBoost: params objective='{loss}' .*{said}"):
        CatBoost("regression", n_estimators=5).set_params(params={"objective": loss})
    CatBoost("regression", params={"objective": "LogLinQuantile:alpha=0.5"})
