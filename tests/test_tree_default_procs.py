"""TabularClassifier / TabularRegressor given no ``procs``: a backend made of trees gets ``Categorify, FillMissing``
(the values as read, so a GBM at LightGBM's defaults predicts what ``LGBMClassifier()`` does on the same rows), a net
or a linear model ``Categorify, FillMissing, Normalize``; procs given are kept as given."""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import pipekit
from pipekit.backends import GBM, ExtraTrees, RandomForest, SklearnModel, XGBoost
from pipekit.datasets import path
from pipekit.ensemble import BaggedModel, MeanEnsemble, StackingEnsemble, TorchTabular
from pipekit.sklearn import TabularClassifier
from pipekit.sklearn.fitting import default_procs
from pipekit.tabular import Categorify, FillMissing, Normalize

lgb = pytest.importorskip("lightgbm")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

C = "classification"
#: adult's columns without missing values: LightGBM reads a missing category as missing, Categorify as '#na#'
ADULT_CATS = ["workclass", "education", "marital-status", "relationship", "race", "sex", "native-country"]
ADULT_NUMS = ["age", "fnlwgt", "capital-gain", "capital-loss", "hours-per-week"]


def lightgbm_defaults() -> GBM:
    return GBM(C, n_estimators=100, learning_rate=0.1)


def names(procs) -> list[str]:
    return sorted(type(p).__name__ for p in procs)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def adult():
    df = pl.read_csv(path("adult_sample") / "adult.csv")
    y = df["salary"].to_numpy()
    tr, te = train_test_split(np.arange(df.height), test_size=0.3, random_state=0, stratify=y)
    X = df.select(ADULT_CATS + ADULT_NUMS)
    return X[tr], X[te], y[tr], y[te]


def test_a_gbm_at_lightgbms_defaults_predicts_what_lgbmclassifier_does_on_breast_cancer(cancer):
    """With Normalize in the default procs LightGBM binned the scaled values and one row's probability moved by 0.24
    (log loss 0.1994 against LGBMClassifier's 0.1939). LightGBM reads pipekit's matrix as float32: the reference
    reads the same float32 rows."""
    Xtr, Xte, ytr, _ = cancer
    clf = TabularClassifier(lightgbm_defaults(), random_state=0).fit(Xtr, ytr)
    assert names(clf.processor_.procs) == ["Categorify", "FillMissing"]
    ref = lgb.LGBMClassifier(verbose=-1).fit(Xtr.astype(np.float32), ytr).predict_proba(Xte.astype(np.float32))
    np.testing.assert_allclose(clf.predict_proba(Xte), ref, rtol=0, atol=1e-9)


def test_a_gbm_at_lightgbms_defaults_predicts_what_lgbmclassifier_does_on_adult_with_categories(adult):
    """Text columns become Categorify's codes, LightGBM's categorical features, as a pandas category column is for
    LGBMClassifier."""
    Xtr, Xte, ytr, _ = adult
    clf = TabularClassifier(lightgbm_defaults()).fit(Xtr, ytr)
    assert names(clf.processor_.procs) == ["Categorify", "FillMissing"]
    assert sorted(clf.model_.cat_features_) == sorted(ADULT_CATS)
    ptr, pte = Xtr.to_pandas(), Xte.to_pandas()
    for c in ADULT_CATS:
        kind = pd.CategoricalDtype(sorted(ptr[c].unique()))
        ptr[c], pte[c] = ptr[c].astype(kind), pte[c].astype(kind)
    ref = lgb.LGBMClassifier(verbose=-1).fit(ptr, ytr).predict_proba(pte)
    p = clf.predict_proba(Xte)
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-9)
    # the same procs given by hand train the same model; Normalize given by hand is kept, and trains another
    same = TabularClassifier(lightgbm_defaults(), procs=[Categorify, FillMissing]).fit(Xtr, ytr)
    np.testing.assert_array_equal(same.predict_proba(Xte), p)
    scaled = TabularClassifier(lightgbm_defaults(), procs=[Categorify, FillMissing, Normalize]).fit(Xtr, ytr)
    assert names(scaled.processor_.procs) == ["Categorify", "FillMissing", "Normalize"]
    assert np.abs(scaled.predict_proba(Xte) - ref).max() > 0.01


@pytest.mark.parametrize("backend", [
    "gbm", "rf", GBM(C, n_estimators=5), RandomForest(C, n_estimators=5), ExtraTrees(C, n_estimators=5),
    SklearnModel(RandomForestClassifier(n_estimators=5), C), SklearnModel(HistGradientBoostingClassifier(), C),
    BaggedModel(GBM(C, n_estimators=5)), MeanEnsemble([GBM(C, n_estimators=5), RandomForest(C, n_estimators=5)]),
    StackingEnsemble([GBM(C, n_estimators=5), RandomForest(C, n_estimators=5)])],
    ids=lambda b: b if isinstance(b, str) else type(b).__name__)
def test_a_backend_made_of_trees_gets_no_normalize(backend):
    model = TabularClassifier(backend)._backend()
    assert [p.__name__ for p in default_procs(model)] == ["Categorify", "FillMissing"]


@pytest.mark.parametrize("backend", [
    "net", TorchTabular(C), SklearnModel(LogisticRegression(), C),
    MeanEnsemble([GBM(C, n_estimators=5), TorchTabular(C)]),
    StackingEnsemble([GBM(C, n_estimators=5), RandomForest(C, n_estimators=5)], passthrough=True)],
    ids=lambda b: b if isinstance(b, str) else type(b).__name__)
def test_a_net_or_a_linear_model_keeps_normalize(backend):
    """A stack passing the inputs through reads them with its meta-model too: a logistic regression by default."""
    model = TabularClassifier(backend)._backend()
    assert [p.__name__ for p in default_procs(model)] == ["Categorify", "FillMissing", "Normalize"]


def test_a_net_backends_default_procs_still_normalise(cancer):
    Xtr, Xte, ytr, _ = cancer
    clf = TabularClassifier(TorchTabular(C, layers=[20], epochs=1), random_state=0).fit(Xtr, ytr)
    assert names(clf.processor_.procs) == ["Categorify", "FillMissing", "Normalize"]
    xs = clf.process(Xtr).inputs.select(list(Xtr.columns)).to_numpy()
    np.testing.assert_allclose(xs.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(xs.std(0), 1, atol=1e-4)
    # a tree's processed values are the numbers as read
    tree = TabularClassifier(GBM(C, n_estimators=5)).fit(Xtr, ytr)
    np.testing.assert_allclose(tree.process(Xte).inputs.select(list(Xte.columns)).to_numpy(), Xte.to_numpy(),
                               rtol=1e-6)
    # procs given by hand are kept: a net without Normalize reads the numbers as read
    raw = TabularClassifier(TorchTabular(C, layers=[20], epochs=1), procs=[Categorify, FillMissing]).fit(Xtr, ytr)
    assert names(raw.processor_.procs) == ["Categorify", "FillMissing"]
    np.testing.assert_allclose(raw.process(Xte).inputs.select(list(Xte.columns)).to_numpy(), Xte.to_numpy(), rtol=1e-6)


def test_no_procs_stays_a_parameter_through_clone_and_a_file(cancer, tmp_path):
    """None is the parameter (scikit-learn's clone and a search keep it); the procs the backend chose are the fitted
    processor's, and a saved model predicts as before."""
    Xtr, Xte, ytr, _ = cancer
    clf = TabularClassifier(lightgbm_defaults())
    assert clf.get_params()["procs"] is None and clone(clf).procs is None
    clf.fit(Xtr, ytr)
    assert clf.procs is None
    pipekit.save(clf, tmp_path / "clf.pipekit")
    back = pipekit.load(tmp_path / "clf.pipekit")
    assert back.procs is None and names(back.processor_.procs) == ["Categorify", "FillMissing"]
    np.testing.assert_array_equal(back.predict_proba(Xte), clf.predict_proba(Xte))



def test_xgboosts_linear_booster_keeps_normalize_alone_and_in_an_ensemble():
    """XGBoost's ``gblinear`` is a linear model on the values, as its scikit-learn estimator is; a GBM asked for
    linear leaves is one too, in a bagged model or an ensemble as alone."""
    linear = XGBoost(C, n_estimators=5, params={"booster": "gblinear"})
    assert not linear.learns_trees and XGBoost(C, params={"booster": "dart"}).learns_trees
    assert [p.__name__ for p in default_procs(XGBoost(C))] == ["Categorify", "FillMissing"]
    for model in (linear, BaggedModel(linear), MeanEnsemble([RandomForest(C, n_estimators=5), linear]),
                  MeanEnsemble([RandomForest(C, n_estimators=5), GBM(C, params={"linear_tree": True})]),
                  TabularClassifier(linear)._backend()):
        assert [p.__name__ for p in default_procs(model)] == ["Categorify", "FillMissing", "Normalize"], model


def test_an_xgboost_linear_booster_reads_normalised_values(cancer):
    xgb = pytest.importorskip("xgboost")
    assert not SklearnModel(xgb.XGBClassifier(booster="gblinear"), C).learns_trees
    Xtr, _, ytr, _ = cancer
    clf = TabularClassifier(XGBoost(C, n_estimators=5, params={"booster": "gblinear"}), random_state=0).fit(Xtr, ytr)
    assert names(clf.processor_.procs) == ["Categorify", "FillMissing", "Normalize"]
    np.testing.assert_allclose(clf.process(Xtr).inputs.select(list(Xtr.columns)).to_numpy().mean(0), 0, atol=1e-5)
    trees = TabularClassifier(XGBoost(C, n_estimators=5), random_state=0).fit(Xtr, ytr)
    assert names(trees.processor_.procs) == ["Categorify", "FillMissing"]
