"""LightGBM models in files: the model text of a GBM is checked field by field in one pass (a large model loads about
as fast as LightGBM reads it) with the same refusals, and a LightGBM estimator wrapped as a scikit-learn one is
refused at save, with the reason and pipekit's GBM to use instead, rather than written to a file that cannot load."""
from __future__ import annotations

import json
import re
import zipfile

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.core.registry as registry
import pipekit.datasets as D
from pipekit.backends import GBM, SklearnModel
from pipekit.backends.gbm import checked_lightgbm_text
from pipekit.core import ExportError
from pipekit.data import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Tabular


@pytest.fixture(scope="module")
def tab():
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)
    return Tabular(adult, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                   cont_names=["age", "hours-per-week"], y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))


@pytest.fixture(scope="module")
def gbm_text(tab):
    model = GBM("classification", n_estimators=8, num_leaves=15, n_jobs=1).fit(tab.train)
    text = re.sub(r"tree_sizes=[^\n]*\n", "", model.booster_.model_to_string())
    assert "num_cat=" in text and "split_gain=" in text
    return model, text


@pytest.fixture
def own_registry(monkeypatch):
    """Registrations made in the test are dropped after it (pipekit's own list is registered first, once)."""
    from pipekit.backends.sklearn_adapter import loadable_estimators

    loadable_estimators()
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_NAMES", dict(registry._NAMES))


def check(text: str, model: GBM) -> str:
    return checked_lightgbm_text(text, len(model.feature_names_), "classification", 2)


def test_checked_text_of_a_real_model_reads_as_lightgbm_wrote_it(gbm_text):
    model, text = gbm_text
    checked = check(text, model)
    assert lgb.Booster(model_str=checked).model_to_string() == lgb.Booster(model_str=text).model_to_string()


@pytest.mark.parametrize("field,edit,said", [
    # a whole number past 64 bits is named as written
    ("left_child", lambda v: "99999999999999999999 " + v.split(" ", 1)[1],
     r"node 0 has child node 99999999999999999999 \(must be in 1\.\."),
    ("right_child", lambda v: "-99999999999999999999 " + v.split(" ", 1)[1], r"node 0 has leaf 99999999999999999998 "),
    ("split_feature", lambda v: "99999999999999999999 " + v.split(" ", 1)[1], r"a split on a feature outside 0\.\.3"),
    # the fields only LightGBM reads (importance, SHAP) must still be plain numbers, as many as the tree needs
    ("split_gain", lambda v: "1.5.5 " + v.split(" ", 1)[1], r"split_gain holds a value that is not a number"),
    ("internal_count", lambda v: "1_000 " + v.split(" ", 1)[1], r"internal_count holds a value that is not a number"),
    ("leaf_weight", lambda v: v + " 1", r"leaf_weight has 16 values, the tree needs 15"),
    ("threshold", lambda v: "infinity " + v.split(" ", 1)[1], r"threshold holds a value that is not a number"),
    ("threshold", lambda v: "1-2 " + v.split(" ", 1)[1], r"threshold holds a value that is not a number"),
    ("decision_type", lambda v: "+-2 " + v.split(" ", 1)[1], r"decision_type holds a value that is not a number"),
    ("decision_type", lambda v: "   ", r"decision_type has 0 values, the tree needs 14"),
    ("leaf_value", lambda v: "nan " + v.split(" ", 1)[1], r"a split threshold is NaN or a leaf value is not a finite number"),
])
def test_tree_field_edits_are_refused_with_the_field(gbm_text, field, edit, said):
    model, text = gbm_text
    start = text.index("\nTree=0\n")
    line = re.compile(rf"\n{field}=([^\n]*)\n").search(text, start)
    edited = text[:line.start(1)] + edit(line.group(1)) + text[line.end(1):]
    with pytest.raises(ExportError, match=rf"booster_: LightGBM tree 0: {said}"):
        check(edited, model)


def test_spaces_between_values_read_as_lightgbm_reads_them(gbm_text):
    model, text = gbm_text
    spaced = re.sub(r"\n(threshold|left_child|leaf_value|split_gain)=([^\n]*)",
                    lambda m: f"\n{m.group(1)}= {m.group(2).replace(' ', '   ')} ", text)
    X = np.random.default_rng(0).integers(0, 8, (200, len(model.feature_names_))).astype(float)
    X[:, -2:] = np.random.default_rng(1).normal(0, 2, (200, 2))
    np.testing.assert_array_equal(lgb.Booster(model_str=check(spaced, model)).predict(X),
                                  model.booster_.predict(X))


# ------------------------------------------------------------------- LightGBM's estimators as scikit-learn ones
def test_a_registered_lgbm_classifier_is_refused_at_save_with_the_reason_and_gbm(tab, tmp_path, own_registry):
    pipekit.register(lgb.LGBMClassifier, kind="sklearn_estimator")
    fitted = SklearnModel(lgb.LGBMClassifier(n_estimators=5, verbose=-1), "classification")
    with pytest.raises(ExportError, match=r"LGBMClassifier cannot be exported: a file of it would not load "
                                          r"\(LGBMClassifier: parameters \['verbose'\] are not arguments of "
                                          r"LGBMClassifier.*GBM\('classification', \.\.\.\).*"
                                          r"TabularClassifier\(GBM\('classification', \.\.\.\)\)") as e:
        pipekit.save(fitted, tmp_path / "verbose.pipekit")
    assert "pipekit.register(" not in str(e.value)
    model = SklearnModel(lgb.LGBMClassifier(n_estimators=5), "classification").fit(tab.train)
    with pytest.raises(ExportError, match=r"LGBMClassifier cannot be exported: a file of it would not load "
                                          r"\(LGBMClassifier: the fitted attribute 'classes_' .*got None\)\. "
                                          r"pipekit's GBM\('classification', \.\.\.\)"):
        pipekit.save(model, tmp_path / "lgbm.pipekit")
    assert not (tmp_path / "lgbm.pipekit").exists() and not (tmp_path / "verbose.pipekit").exists()
    # what it points to saves and loads
    gbm = GBM("classification", n_estimators=5, n_jobs=1).fit(tab.train)
    back = pipekit.load(pipekit.save(gbm, tmp_path / "gbm.pipekit"))
    np.testing.assert_array_equal(back.predict_proba(tab.valid), gbm.predict_proba(tab.valid))


def test_an_unregistered_lgbm_estimator_points_to_gbm_and_others_to_register(tab, tmp_path):
    from sklearn.ensemble import GradientBoostingClassifier

    model = SklearnModel(lgb.LGBMRegressor(n_estimators=5, verbose=-1), "regression")
    with pytest.raises(ExportError, match=r"lightgbm\.sklearn\.LGBMRegressor cannot be exported.*pipekit's "
                                          r"GBM\('regression', \.\.\.\).*TabularRegressor\(GBM\('regression'") as e:
        pipekit.save(model, tmp_path / "reg.pipekit")
    assert "pipekit.register(" not in str(e.value)
    other = SklearnModel(GradientBoostingClassifier(n_estimators=3), "classification")
    with pytest.raises(ExportError, match=r"Register it, pipekit\.register\(GradientBoostingClassifier, "
                                          r"kind='sklearn_estimator'\), before saving"):
        pipekit.save(other, tmp_path / "gb.pipekit")


def test_a_registered_estimator_whose_state_restores_saves_and_loads(tab, tmp_path, own_registry):
    from sklearn.linear_model import OrthogonalMatchingPursuit, LogisticRegression

    pipekit.register(OrthogonalMatchingPursuit, kind="sklearn_estimator")
    for est, task in ((OrthogonalMatchingPursuit(), "regression"), (LogisticRegression(C=0.5), "classification")):
        if task == "regression":
            data = Tabular(pl.read_csv(D.path("adult_sample") / "adult.csv").head(600), procs=[Categorify, FillMissing], cat_names=["workclass"],
                           cont_names=["age"], y_names="hours-per-week",
                           splits=RandomSplitter(valid_pct=0.2, seed=0))
        else:
            data = tab
        model = SklearnModel(est, task).fit(data.train)
        path = pipekit.save(model, tmp_path / f"{type(est).__name__}.pipekit")
        state = json.loads(zipfile.ZipFile(path).read("record.json"))["state"]["model_"]
        assert "attributes" in state and "coef_" in state["attributes"]
        back = pipekit.load(path)
        np.testing.assert_array_equal(back.predict(data.valid), model.predict(data.valid))
