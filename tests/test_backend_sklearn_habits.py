"""What scikit-learn and book chapter 9 users reach for on a backend, on real adult rows: ``feature_importances_``
on the GBM as on the forest, ``fit(xs, y)`` refused with what fit takes, and ``xs[to_keep]`` as
``TabularData.select``."""

from __future__ import annotations

import os

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM, ExtraTrees, RandomForest, as_data
from pipekit.core import DataError, ParameterError
from pipekit.data import RandomSplitter
from pipekit.tabular import Tabular

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")
CATS, CONTS = ["workclass", "education", "marital-status", "occupation"], ["age", "hours-per-week", "education-num"]


@pytest.fixture(scope="module")
def tab() -> Tabular:
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(3000)
    return Tabular(df, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=1))


@pytest.fixture(scope="module")
def gbm(tab) -> GBM:
    return GBM("classification", n_estimators=200, learning_rate=0.1, n_jobs=1).fit(tab.train, tab.valid)


def test_gbm_feature_importances_are_lightgbm_split_counts_in_input_order(tab, gbm, tmp_path):
    imp = gbm.feature_importances_
    names = gbm.feature_names_
    assert imp.shape == (len(names),) and imp.dtype.kind == "i" and imp.sum() > 0
    # LightGBM's scikit-learn API on the same inputs and rounds gives the same counts, in the same order
    X, d = gbm.matrix(as_data(tab.train), order="F"), as_data(tab.train)
    assert gbm.best_iteration_ < 200  # early stopping kept fewer rounds: the counts are of those kept
    ref = lgb.LGBMClassifier(n_estimators=gbm.best_iteration_, learning_rate=0.1, num_leaves=31,
                             min_child_samples=20, reg_lambda=0.0, colsample_bytree=1.0, random_state=0,
                             deterministic=True, n_jobs=1, verbose=-1, force_col_wise=True)
    ref.fit(X, gbm.encode_y(d.y), categorical_feature=[names.index(c) for c in gbm.cat_features_])
    np.testing.assert_array_equal(imp, ref.feature_importances_)
    # the sorted frame with kind="split" holds the same numbers
    frame = gbm.feature_importance(kind="split")
    assert dict(zip(frame["feature"], frame["importance"])) == dict(zip(names, imp.tolist()))
    # and a loaded model gives them too
    loaded = pipekit.load(gbm.export(tmp_path / "g.pipekit"))
    np.testing.assert_array_equal(loaded.feature_importances_, imp)


def test_forest_and_gbm_importances_agree_in_shape_and_order(tab, gbm):
    rf = RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    assert rf.feature_names_ == gbm.feature_names_
    assert rf.feature_importances_.shape == gbm.feature_importances_.shape == (len(rf.feature_names_),)
    # both in feature_names_ order: the same top input by both frames as by the arrays
    for m in (rf, gbm):
        frame = m.feature_importance() if m is rf else m.feature_importance(kind="split")
        assert frame["feature"][0] == m.feature_names_[int(np.argmax(m.feature_importances_))]


@pytest.mark.parametrize("y_of", [lambda s: s.y, lambda s: pl.Series("salary", s.y), lambda s: list(s.y)],
                         ids=["numpy", "polars", "list"])
def test_fit_with_a_target_as_valid_says_what_fit_takes(tab, y_of):
    xs, y = tab.train.xs, as_data(tab.train).y
    from pipekit.ensemble import BaggedModel, TorchTabular

    for model in (RandomForest("classification", n_estimators=5, n_jobs=1), GBM("classification", n_jobs=1),
                  BaggedModel(GBM("classification", n_jobs=1), n_folds=2), TorchTabular("classification", epochs=1)):
        with pytest.raises(ParameterError, match=r"fit\(train, valid=None\) takes splits .*valid got a "
                                                 r"(numpy\.ndarray|polars\.Series|list) of \d+ values.*"
                                                 r"as_data\(xs, y=y\).*TabularClassifier"):
            model.fit(xs, y_of(tab.train))
        assert not model.is_fitted
    # the way it says works
    rf = RandomForest("classification", n_estimators=5, n_jobs=1).fit(as_data(xs, y=y))
    assert rf.score(tab.valid) > 0.7


def test_select_keeps_inputs_categories_and_procs(tab):
    to_keep = ["age", "education", "marital-status", "education-num"]
    train, valid = as_data(tab.train), as_data(tab.valid)
    sel = train.select(to_keep)
    assert sel.feature_names == to_keep and sel.cat_names == ("education", "marital-status")
    assert sel.procs_signature == train.procs_signature and sel.processor is train.processor
    np.testing.assert_array_equal(sel.y, train.y)
    assert train.drop(["workclass", "occupation"]).feature_names == [
        c for c in train.feature_names if c not in ("workclass", "occupation")]
    for bad in (lambda: train.select(["age", "Age", "salary"]), lambda: train.drop(["nope"])):
        with pytest.raises(DataError, match=r"column\(s\) \['(Age', 'salary|nope)'\] are not inputs of this split"):
            bad()

    rf = ExtraTrees("classification", n_estimators=20, n_jobs=1, seed=0).fit(sel, valid.select(to_keep))
    assert rf.feature_names_ == to_keep and rf.cat_features_ == ["education", "marital-status"]
    # it predicts its selection, and any split of the Tabular (it reads its own columns of it)
    p = rf.predict(valid.select(to_keep))
    np.testing.assert_array_equal(p, rf.predict(tab.valid))
    assert rf.valid_score_ > 0.7
    # given other columns, or a split of other procs, it refuses
    with pytest.raises(DataError, match=r"input column\(s\) \['education-num'\] missing"):
        rf.predict(valid.select(to_keep[:3]))
    other = Tabular(pl.read_csv(D.path("adult_sample") / "adult.csv").slice(3000, 1000), cat_names=CATS,
                    cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=1))
    with pytest.raises(DataError, match="processed by different procs"):
        rf.predict(as_data(other.valid).select(to_keep))
    # the book's spelling on the Tabular's own splits: tab.train.select(to_keep), tab.valid.drop(...)
    direct = tab.train.select(to_keep)
    assert direct.feature_names == to_keep and direct.xs.equals(sel.xs) and direct.processor is train.processor
    assert tab.valid.drop(["workclass"]).feature_names == valid.drop(["workclass"]).feature_names
    np.testing.assert_array_equal(rf.predict(tab.valid.select(to_keep)), p)


def test_gbm_predict_takes_lightgbm_raw_score_and_pred_contrib(tab, gbm, tmp_path):
    d = as_data(tab.valid)
    X = gbm.matrix(d, order="F")
    raw = gbm.predict(tab.valid, raw_score=True)
    contrib = gbm.predict(tab.valid, pred_contrib=True)
    # LightGBM's own booster on the same rows and kept rounds gives the same arrays
    np.testing.assert_array_equal(raw, gbm.booster_.predict(X, num_iteration=gbm.best_iteration_, raw_score=True))
    assert raw.shape == (len(d),) and contrib.shape == (len(d), len(gbm.feature_names_) + 1)
    # raw scores are the probabilities' log-odds; each row's contributions sum to its raw score
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), gbm.predict(tab.valid)[:, 1], rtol=1e-12)
    np.testing.assert_allclose(contrib.sum(1), raw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(contrib[:, :-1], gbm.contributions(tab.valid).values)
    # a loaded model answers the same
    loaded = pipekit.load(gbm.export(tmp_path / "g.pipekit"))
    np.testing.assert_array_equal(loaded.predict(tab.valid, raw_score=True), raw)
    with pytest.raises(ParameterError, match="pass one of them"):
        gbm.predict(tab.valid, raw_score=True, pred_contrib=True)
    with pytest.raises(ParameterError, match="raw_score"):
        gbm.predict(tab.valid, raw_score="yes")
