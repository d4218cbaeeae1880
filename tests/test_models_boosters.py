"""ExtraTrees and the optional XGBoost / CatBoost backends on adult: fit, early stopping, files, bad input; the
boosters' time limit.
XGBoost and CatBoost are tested where their packages are installed; pipekit never requires them."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_models_helpers import adult

from pipekit.backends import GBM, CatBoost, ExtraTrees, RandomForest, XGBoost, as_data, installed, load_model
from pipekit.backends import boosters
from pipekit.core import ExportError, ParameterError


@pytest.fixture(scope="module")
def splits():
    tr, va = adult(6000)
    return as_data(tr), as_data(va)


def test_extra_trees(splits, tmp_path):
    tr, va = splits
    et = ExtraTrees("classification", n_estimators=20, n_jobs=1).fit(tr, va)
    rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(tr, va)
    assert type(et.model_).__name__ == "ExtraTreesClassifier" and not et.model_.bootstrap
    assert et.valid_score_ > 0.8 and et.oob_score_ is None
    assert not np.allclose(et.predict(va), rf.predict(va))  # random thresholds: other trees than the forest's
    back = load_model(et.export(tmp_path / "et.pipekit"))
    assert isinstance(back, ExtraTrees)
    np.testing.assert_array_equal(back.predict(va), et.predict(va))
    assert et.feature_importance()["feature"][0] in ("relationship", "marital-status", "education-num", "age")
    boot = ExtraTrees("regression", n_estimators=5, max_samples=0.5, oob_score=True, n_jobs=1).fit(
        as_data(tr.xs.drop("age"), y=tr.xs["age"].to_numpy()))
    assert boot.model_.bootstrap and boot.oob_score_ is not None
    c = et.contributions(va.take(np.arange(5)))
    np.testing.assert_allclose(c.bias + c.values.sum(1), et.predict(va.take(np.arange(5))))
    with pytest.raises(ParameterError, match="min_samples_leaf=0 is not accepted"):
        ExtraTrees("classification", min_samples_leaf=0)


@pytest.mark.parametrize("cls", [RandomForest, ExtraTrees])
def test_forests_take_scikit_learns_max_depth(cls, splits, tmp_path):
    tr, va = splits
    shallow = cls("classification", n_estimators=10, max_depth=3, n_jobs=1).fit(tr, va)
    deep = cls("classification", n_estimators=10, n_jobs=1).fit(tr, va)
    assert max(t.get_depth() for t in shallow.estimators_) == 3 < min(t.get_depth() for t in deep.estimators_)
    back = load_model(shallow.export(tmp_path / "shallow.pipekit"))
    assert back.max_depth == 3
    np.testing.assert_array_equal(back.predict(va), shallow.predict(va))
    with pytest.raises(ParameterError, match="max_depth=0 is not accepted"):
        cls("classification", max_depth=0)


@pytest.mark.parametrize("cls, package", [(XGBoost, "xgboost"), (CatBoost, "catboost")])
def test_optional_boosters(cls, package, splits, tmp_path):
    pytest.importorskip(package)
    tr, va = splits
    m = cls("classification", n_estimators=2000, learning_rate=0.2, n_jobs=1).fit(tr, va)
    assert m.stops_early() and m.best_iteration_ < 2000  # stopped early on the valid split
    p = m.predict(va)
    assert p.shape == (len(va), 2) and np.allclose(p.sum(1), 1) and m.valid_score_ > 0.82
    assert list(m.classes_) == ["<50k", ">=50k"]
    assert m.stopped_params(1.5) == {"n_estimators": round(m.best_iteration_ * 1.5), "early_stopping_rounds": None}
    back = load_model(m.export(tmp_path / f"{package}.pipekit"))
    assert isinstance(back, cls)
    np.testing.assert_array_equal(back.predict(va), p)
    imp = m.feature_importance()
    assert imp["feature"][0] in ("relationship", "marital-status", "education-num", "age")
    # fixed rounds without a valid split: the stopped model's rounds, fitted again
    fixed = cls("classification", learning_rate=0.2, n_jobs=1, **m.stopped_params()).fit(tr)
    assert fixed.best_iteration_ == m.best_iteration_
    # several classes and regression
    target = "relationship"
    xs_tr, xs_va = tr.xs.drop(target), va.xs.drop(target)
    multi = cls("classification", n_estimators=50, learning_rate=0.3, n_jobs=1).fit(
        as_data(xs_tr, y=tr.xs[target].to_numpy(), cat_names=[c for c in tr.cat_names if c != target]))
    assert multi.predict(as_data(xs_va, cat_names=[c for c in va.cat_names if c != target])).shape == (
        len(va), len(multi.classes_))
    reg = cls("regression", n_estimators=100, learning_rate=0.2, n_jobs=1).fit(
        as_data(tr.xs.drop("age"), y=tr.xs["age"].to_numpy(), cat_names=tr.cat_names))
    assert reg.score(as_data(va.xs.drop("age"), y=va.xs["age"].to_numpy(), cat_names=va.cat_names)) < 0.95
    with pytest.raises(ParameterError, match="learning_rate=0 is not accepted"):
        cls("classification", learning_rate=0)


def test_catboost_trees_of_one_leaf_fit_save_and_load(tmp_path):
    # on 40 training rows CatBoost grows trees with no split (depth 0), which its JSON writes as "splits": null
    pytest.importorskip("catboost")
    import json

    tr, va = (as_data(d) for d in adult(50))
    m = CatBoost("classification", n_estimators=10_000, learning_rate=0.1, n_jobs=1).fit(tr, va)
    m.model_.save_model(str(tmp_path / "own.json"), format="json")
    own = json.loads((tmp_path / "own.json").read_text())["oblivious_trees"]
    assert any(t["splits"] is None for t in own)
    back = load_model(m.export(tmp_path / "small.pipekit"))
    np.testing.assert_array_equal(back.predict(va), m.predict(va))


@pytest.mark.parametrize("cls, package", [(XGBoost, "xgboost"), (CatBoost, "catboost")])
def test_optional_boosters_say_what_to_install(cls, package, splits, monkeypatch):
    tr, _ = splits
    model = cls("classification", n_estimators=5)  # building one never needs the package
    monkeypatch.setattr(boosters, "installed", lambda name: False)
    with pytest.raises(ImportError, match=f"{cls.__name__} needs the {package} package, which is not installed: "
                                          f"pip install {package}"):
        model.fit(tr)


def test_malformed_booster_files_are_refused(splits):
    pytest.importorskip("xgboost")
    tr, _ = splits
    m = XGBoost("classification", n_estimators=5, n_jobs=1).fit(tr)
    with pytest.raises(ExportError, match=r"XGBoost model \(JSON or UBJSON\) stored as a 1-D uint8 array"):
        m.model_from_data(np.zeros((2, 2), np.float32))
    if installed("catboost"):
        c = CatBoost("classification", n_estimators=5, n_jobs=1).fit(tr)
        with pytest.raises(ExportError, match="the CatBoost model is in CatBoost's binary format"):
            c.model_from_data(np.frombuffer(b"not a model", dtype=np.uint8))
        with pytest.raises(ExportError, match="the CatBoost model is not valid JSON"):
            c.model_from_data(np.frombuffer(b'{"oblivious_trees": [', dtype=np.uint8))


@pytest.mark.parametrize("cls, package", [(GBM, "lightgbm"), (XGBoost, "xgboost"), (CatBoost, "catboost")])
def test_a_boosters_time_limit_stops_it_and_keeps_the_rounds_it_boosted(cls, package, splits, tmp_path):
    pytest.importorskip(package)
    tr, va = splits
    # at this rate 200,000 rounds would take many minutes: the limit ends boosting after about a second
    slow = {"n_estimators": 200_000, "learning_rate": 1e-4, "n_jobs": 1, "time_limit": 1.0}
    t = time.perf_counter()
    m = cls("classification", early_stopping_rounds=None, **slow).fit(tr)
    took = time.perf_counter() - t
    assert m.stopped_on_time_ and 1 <= m.best_iteration_ < 200_000 and took < 15
    # what it boosted is a model: the same rounds fitted without a limit predict the same (CatBoost plans its
    # boosting from the number of rounds it is given, so only the count is the same there)
    same = cls("classification", early_stopping_rounds=None, **{**slow, "n_estimators": m.best_iteration_,
                                                                "time_limit": None}).fit(tr)
    assert not same.stopped_on_time_ and same.best_iteration_ == m.best_iteration_
    if cls is not CatBoost:
        np.testing.assert_allclose(same.predict(va), m.predict(va), rtol=1e-6, atol=1e-9)
    back = load_model(m.export(tmp_path / "timed.pipekit"))
    assert back.time_limit == 1.0 and back.stopped_on_time_
    np.testing.assert_array_equal(back.predict(va), m.predict(va))
    # stopping early on a valid split, the time keeps the best round of those done
    es = cls("classification", early_stopping_rounds=10**6, **slow).fit(tr, va)
    assert es.stopped_on_time_ and es.best_iteration_ >= 1
    if cls is GBM:  # its per-round losses are recorded: the kept round is the lowest of those boosted
        losses = es.evals_result_["valid"]["binary_logloss"]
        assert es.best_iteration_ == int(np.argmin(losses)) + 1 and len(losses) < 200_000
    # a limit that does not bind changes nothing
    free = cls("classification", n_estimators=30, learning_rate=0.2, n_jobs=1).fit(tr, va)
    roomy = cls("classification", n_estimators=30, learning_rate=0.2, n_jobs=1, time_limit=600).fit(tr, va)
    assert not roomy.stopped_on_time_ and roomy.best_iteration_ == free.best_iteration_
    np.testing.assert_array_equal(roomy.predict(va), free.predict(va))
    with pytest.raises(ParameterError, match="time_limit=0 is not accepted"):
        cls("classification", time_limit=0)
