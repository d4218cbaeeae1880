"""RandomForest / GBM / SklearnModel on processed adult: the one interface, export in the pipekit file format
(no pickle), the component contract, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import polars as pl
import pytest
from test_models_helpers import adult

import pipekit
from pipekit.backends import GBM, RandomForest, SklearnModel, as_data, load_model
from pipekit.core import Component, DataError, ExportError, NotFittedError, ParameterError
from pipekit.datasets import path as data_path
from pipekit.tabular import Categorify, Tabular


@pytest.fixture(scope="module")
def splits():
    return adult()


@pytest.fixture(scope="module")
def rf(splits):
    tr, va = splits
    return RandomForest("classification", n_estimators=30, n_jobs=1, seed=0).fit(tr, va)


@pytest.fixture(scope="module")
def gbm(splits):
    tr, va = splits
    return GBM("classification", n_estimators=300, learning_rate=0.1, n_jobs=1).fit(tr, va)


def test_rf_scores_and_oob(rf, splits):
    _, va = splits
    p = rf.predict(va)
    assert p.shape == (len(va.xs), 2) and np.allclose(p.sum(1), 1)
    assert rf.valid_score_ == pytest.approx(rf.score(va)) and rf.valid_score_ > 0.8
    # OOB accuracy estimates the valid accuracy (the book's point): within a few points
    assert abs(rf.oob_score_ - rf.valid_score_) < 0.04
    assert list(rf.classes_) == sorted(va.y_vocab)
    assert set(rf.predict_labels(va)) <= set(va.y_vocab)


def test_rf_tree_predictions_and_contributions(rf, splits):
    _, va = splits
    mean, std = rf.tree_predictions(va)
    assert np.allclose(mean, rf.predict(va))
    assert (std >= 0).all() and std.max() > 0.05
    c = rf.contributions(va.xs[:300])
    # tree interpreter: bias + per-feature contributions reproduce the prediction exactly
    assert np.allclose(c.bias + c.values.sum(1), rf.predict(va.xs[:300]), atol=1e-9)
    assert c.values.shape == (300, len(rf.feature_names_), 2)
    assert c.frame(0)["feature"].len() == len(rf.feature_names_)
    # a class by its label; the default is the positive (last) class
    first = c.frame(0, cls="<50k").sort("feature")["contribution"].to_numpy()
    np.testing.assert_allclose(first, -c.frame(0).sort("feature")["contribution"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(c.frame(0, cls=">=50k")["contribution"], c.frame(0)["contribution"])
    with pytest.raises(ParameterError, match=r"cls=1 is not one of the model's classes \['<50k', '>=50k'\]"):
        c.frame(0, cls=1)


def test_rf_feature_importance_names_real_signal(rf):
    imp = rf.feature_importance()
    assert imp.columns == ["feature", "importance"]
    assert imp["importance"].sum() == pytest.approx(1.0)
    # relationship / marital status / education-num / age carry the salary signal in adult
    assert set(imp["feature"][:4]) & {"relationship", "marital-status", "education-num", "age"}


def test_rf_reads_scikit_learns_fitted_names(rf, splits, tmp_path):
    """The book's forest code reads ``estimators_``, ``feature_importances_`` and ``oob_prediction_``; the
    backend answers them from its fitted forest."""
    tr, va = splits
    # classification: the trees, per-tree probabilities whose mean is the forest's prediction
    assert len(rf.estimators_) == 30
    per_tree = np.stack([t.predict_proba(va.xs.to_numpy()) for t in rf.estimators_])
    np.testing.assert_allclose(per_tree.mean(0), rf.predict(va), atol=1e-6)
    imp = rf.feature_importances_
    assert isinstance(imp, np.ndarray) and imp.shape == (len(rf.feature_names_),)
    by_name = dict(zip(*rf.feature_importance().to_dict(as_series=False).values()))
    np.testing.assert_allclose(imp, [by_name[c] for c in rf.feature_names_])
    oob = rf.oob_decision_function_
    assert oob.shape == (len(tr.xs), 2)
    kept = ~np.isnan(oob).any(1)
    assert (oob[kept].argmax(1) == tr.y.to_numpy()[kept]).mean() == pytest.approx(rf.oob_score_)
    assert not hasattr(rf, "oob_prediction_")  # a classifier's is the decision function, as in scikit-learn
    with pytest.raises(AttributeError, match="read oob_decision_function_"):
        _ = rf.oob_prediction_
    # regression on real Rossmann rows: the book's tree variance and OOB error
    df = pl.read_csv(data_path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})
    df = df.filter(pl.col("Open") == 1).head(3000).with_columns(pl.col("Sales").log1p())
    tab = Tabular(df, procs=[Categorify], cat_names=["Store", "DayOfWeek", "StateHoliday"],
                  cont_names=["Customers", "Promo", "SchoolHoliday"], y_names="Sales",
                  splits=(np.arange(2500), np.arange(2500, 3000)))
    reg = RandomForest("regression", n_estimators=20, n_jobs=1).fit(tab.train)
    preds = np.stack([t.predict(tab.valid.xs.to_numpy()) for t in reg.estimators_])
    mean, std = reg.tree_predictions(tab.valid)
    np.testing.assert_allclose(preds.mean(0), mean, rtol=1e-9)
    np.testing.assert_allclose(preds.std(0), std, rtol=1e-9, atol=1e-12)
    oob = reg.oob_prediction_
    kept = ~np.isnan(oob)
    y = tab.train.y.to_numpy().astype(np.float64)
    # pipekit's oob_score_ is the rmse of these predictions; scikit-learn's (R²) stays on model_
    assert reg.oob_score_ == pytest.approx(np.sqrt(np.mean((oob[kept] - y[kept]) ** 2)), rel=1e-6)
    assert reg.model_.oob_score_ == pytest.approx(1 - np.mean((oob[kept] - y[kept]) ** 2) / np.var(y[kept]), rel=1e-6)
    assert not hasattr(reg, "oob_decision_function_")
    assert np.array_equal(reg.feature_importances_, reg.model_.feature_importances_)
    # a loaded model has its trees but no out-of-bag predictions; an unfitted one has neither
    back = load_model(reg.export(tmp_path / "reg.pipekit"))
    assert len(back.estimators_) == 20
    with pytest.raises(AttributeError, match="not kept in a model's file"):
        _ = back.oob_prediction_
    with pytest.raises(AttributeError, match="oob_score=False"):
        _ = RandomForest("regression", n_estimators=5, oob_score=False, n_jobs=1).fit(tab.train).oob_prediction_
    with pytest.raises(ExportError, match=r"'estimators_' is computed from the fitted state, not stored"):
        RandomForest("regression").state_from_data({**reg.state_to_data(), "estimators_": [1]})
    fresh = RandomForest("regression")
    for name in ("estimators_", "feature_importances_", "oob_prediction_"):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(fresh, name)
        assert not hasattr(fresh, name)


def test_rf_export_load_roundtrip(rf, splits, tmp_path):
    _, va = splits
    path = rf.export(tmp_path / "rf.pipekit")
    with zipfile.ZipFile(path) as z:  # the one pipekit format: a manifest, the record as JSON, plain arrays
        assert sorted(z.namelist()) == ["arrays.npz", "manifest.json", "record.json"]
        record = json.loads(z.read("record.json"))
        z.extract("arrays.npz", tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as arrays:  # nothing in the file needs unpickling
        threshold = record["state"]["model_"]["trees"]["threshold"]["__array__"]
        assert arrays[threshold].dtype == np.float64 and len(arrays[threshold]) > 30
    assert record["class"] == "pipekit.backends.RandomForest" and record["params"]["n_estimators"] == 30
    back = load_model(path)
    assert isinstance(back, RandomForest)
    assert np.array_equal(back.predict(va), rf.predict(va))
    assert back.feature_importance().equals(rf.feature_importance())
    assert np.allclose(back.contributions(va.xs[:20]).values, rf.contributions(va.xs[:20]).values)
    with pytest.raises(ExportError, match="not a GBM"):
        GBM.load(path)
    # the folder form of the same file, and pipekit.save / pipekit.load
    folder = pipekit.save(rf, tmp_path / "rf_folder")
    assert folder.is_dir() and np.array_equal(pipekit.load(folder).predict(va), rf.predict(va))


def test_a_forest_grows_what_its_time_limit_holds(rf, splits, tmp_path):
    tr, va = splits
    # time to spare: grown a tenth at a time, the very trees (and out-of-bag score) of one fit
    roomy = RandomForest("classification", n_estimators=30, n_jobs=1, seed=0, time_limit=600).fit(tr, va)
    assert not roomy.stopped_on_time_ and len(roomy.model_.estimators_) == 30
    np.testing.assert_array_equal(roomy.predict(va), rf.predict(va))
    assert roomy.oob_score_ == rf.oob_score_
    # no time: the first two trees per thread, scored out of bag on those trees, and a file that loads as it
    # predicts
    tight = RandomForest("classification", n_estimators=30, n_jobs=1, seed=0, time_limit=1e-3).fit(tr, va)
    assert tight.stopped_on_time_ and len(tight.model_.estimators_) == 2
    assert 0.6 < tight.oob_score_ < 1 and tight.valid_score_ > 0.7
    np.testing.assert_array_equal(tight.predict(va), np.mean([t.predict_proba(tight.matrix(tight._prepare(va),
                                                                                            order="C"))
                                                              for t in tight.model_.estimators_], axis=0))
    tight.export(tmp_path / "tight.pipekit")
    back = load_model(tmp_path / "tight.pipekit")
    np.testing.assert_array_equal(back.predict(va), tight.predict(va))
    assert back.time_limit == 1e-3


def test_rf_regression_and_max_samples(splits):
    tr, va = splits
    X = tr.xs.drop("education-num")
    data = as_data(X, y=tr.xs["education-num"].to_numpy(), cat_names=tr.cat_names)
    m = RandomForest("regression", n_estimators=20, max_samples=2000, n_jobs=1).fit(data)
    assert m.model_.max_samples == 2000
    vd = as_data(va.xs.drop("education-num"), y=va.xs["education-num"].to_numpy(), cat_names=va.cat_names)
    # education (a category) determines education-num except where it was missing and filled
    assert m.score(vd) < 0.35 * np.std(vd.y)
    c = m.contributions(vd.xs[:50])
    assert np.allclose(c.bias + c.values.sum(1), m.predict(vd.xs[:50]))
    assert m.oob_score_ < 0.35


def test_gbm_early_stopping_categorical_and_contributions(gbm, splits):
    _, va = splits
    assert gbm.best_iteration_ < 300
    assert 0.83 < gbm.score(va)
    dump = gbm.booster_.dump_model()
    assert dump["feature_names"] == [f"f{i}" for i in range(len(gbm.feature_names_))]
    cat_splits = str(dump["tree_info"]).count("'decision_type': '=='")
    assert cat_splits > 0, "Categorify codes must reach LightGBM as native categorical features"
    c = gbm.contributions(va.xs[:200])
    assert np.allclose(c.bias + c.values.sum(1), c.prediction, atol=1e-8)
    prob = 1 / (1 + np.exp(-c.prediction))
    assert np.allclose(prob, gbm.predict(va.xs[:200])[:, 1])
    gain, split = gbm.feature_importance("gain"), gbm.feature_importance("split")
    assert gain["feature"][0] in {"relationship", "marital-status", "education-num", "age"}
    assert split["importance"].dtype == pl.Float64 and split["importance"].sum() > 0
    with pytest.raises(ParameterError, match="kind='cover' is not accepted"):
        gbm.feature_importance("cover")


def test_gbm_export_load_and_multiclass(gbm, splits, tmp_path):
    tr, va = splits
    back = GBM.load(gbm.export(tmp_path / "gbm.pipekit"))
    assert np.allclose(back.predict(va), gbm.predict(va))
    # multiclass: predict the race category from the other inputs
    y = tr.xs["race"].to_numpy()
    m = GBM("classification", n_estimators=30, n_jobs=1).fit(as_data(tr.xs.drop("race"), y=y))
    p = m.predict(va.xs)
    assert p.shape == (len(va.xs), len(np.unique(y)))
    c = m.contributions(va.xs[:10])
    assert c.values.shape == (10, len(m.feature_names_), p.shape[1])
    assert np.allclose(c.bias + c.values.sum(1), c.prediction)


def test_same_seed_same_model(splits):
    tr, va = splits
    a = RandomForest("classification", n_estimators=5, n_jobs=1, seed=3, oob_score=False).fit(tr).predict(va)
    b = RandomForest("classification", n_estimators=5, n_jobs=1, seed=3, oob_score=False).fit(tr).predict(va)
    assert np.array_equal(a, b)


def test_sklearn_adapter_roundtrip(splits, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, va = splits
    m = SklearnModel(LogisticRegression(max_iter=300), "classification").fit(tr, va)
    assert m.valid_score_ > 0.78
    back = load_model(m.export(tmp_path / "lr.pipekit"))
    assert np.allclose(back.predict(va), m.predict(va))
    assert m.feature_importance().height == len(m.feature_names_)
    piped = SklearnModel(make_pipeline(StandardScaler(), LogisticRegression()), "classification").fit(tr)
    with pytest.raises(ExportError, match="cannot be exported"):
        piped.export(tmp_path / "p.pipekit")


def test_bad_input_messages(rf, splits, tmp_path):
    tr, va = splits
    with pytest.raises(DataError, match="'age'.*tab.new"):
        rf.predict(va.xs.drop("age"))
    with pytest.raises(DataError, match="column 'age' holds String"):
        rf.predict(va.xs.with_columns(pl.col("age").cast(pl.String)))
    with pytest.raises(ValueError, match="task='classify'"):
        RandomForest("classify")
    with pytest.raises(ValueError, match="max_features"):
        RandomForest("classification", max_features=2.0)
    with pytest.raises(ValueError, match="learning_rate"):
        GBM("regression", learning_rate=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        GBM("regression").predict(va)
    with pytest.raises(ValueError, match="label 'maybe'"):
        rf.score(as_data(va.xs[:3], y=np.array(["maybe", "<50k", "<50k"])))
    with pytest.raises(ValueError, match="xs has 10 rows but ys has 9"):
        as_data(va.xs[:10], y=np.zeros(9))
    with pytest.raises(ValueError, match="no targets"):
        RandomForest("classification").fit(va.xs)
    with pytest.raises(ValueError, match="predict got 0 rows"):
        rf.predict(va.xs[:0])
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ExportError, match="is not a pipekit file"):
        load_model(bad)


def test_inputs_reach_the_libraries_without_a_second_copy(rf, gbm, splits):
    _, va = splits
    d = as_data(va)
    X = rf.matrix(d, order="C")
    # sklearn trees want float32 C-contiguous: asarray with those demands must hand back the same buffer
    assert X.dtype == np.float32 and np.asarray(X, dtype=np.float32, order="C") is X
    F = gbm.matrix(d, order="F")
    # LightGBM reads column-major float32 as is (it only ravels in F order)
    assert F.flags["F_CONTIGUOUS"] and np.shares_memory(F.ravel(order="F"), F)
    assert np.array_equal(X, F) and X.shape == (len(va), len(rf.feature_names_))
    assert np.array_equal(X[:, 0], va.xs[rf.feature_names_[0]].to_numpy().astype(np.float32))


# ------------------------------------------------------------------------------------------ the component contract
def test_backends_follow_the_component_contract(rf, gbm, splits, tmp_path):
    from sklearn.linear_model import LogisticRegression

    _, va = splits
    for model in (rf, gbm, SklearnModel(LogisticRegression(C=0.5), "classification", name="lr")):
        assert isinstance(model, Component) and model.registry_kind == "model"
        params = model.get_params()
        copy = model.clone()
        assert not copy.is_fitted and copy.get_params().keys() == params.keys()
        assert all(v is params[k] or v == params[k] for k, v in copy.get_params().items()
                   if k != "estimator")  # an estimator is compared by its own parameters below
        # an unfitted model saves and loads as its parameters alone
        back = pipekit.load(pipekit.save(copy, tmp_path / f"{type(model).__name__}_unfitted.pipekit"))
        assert type(back) is type(model) and not back.is_fitted and repr(back) == repr(copy)
    assert repr(rf) == "RandomForest(task='classification', n_estimators=30, n_jobs=1)"
    lr = SklearnModel(LogisticRegression(C=0.5), "classification")
    assert pipekit.load(pipekit.save(lr, tmp_path / "lr.pipekit")).estimator.get_params() == lr.estimator.get_params()
    # learned state lives in *_ attributes only, and changing a parameter drops it
    assert {"feature_names_", "classes_", "model_", "oob_score_", "valid_score_"} <= set(rf.fitted_state())
    refit = rf.clone().fit(*splits)
    refit.set_params(n_estimators=5)
    assert not refit.is_fitted
    with pytest.raises(NotFittedError, match="RandomForest is not fitted yet"):
        refit.predict(va)


@pytest.mark.parametrize("make, param, bad", [
    (lambda **kw: RandomForest("classification", **kw), "n_estimators", 0),
    (lambda **kw: RandomForest("classification", **kw), "max_samples", 1.5),
    (lambda **kw: RandomForest("classification", **kw), "max_features", "all"),
    (lambda **kw: RandomForest("classification", **kw), "min_samples_leaf", 0),
    (lambda **kw: RandomForest("classification", **kw), "n_jobs", 0),
    (lambda **kw: RandomForest("classification", **kw), "seed", -1),
    (lambda **kw: RandomForest("classification", **kw), "name", 3),
    (lambda **kw: GBM("regression", **kw), "num_leaves", 1),
    (lambda **kw: GBM("regression", **kw), "subsample", 0.0),
    (lambda **kw: GBM("regression", **kw), "colsample", 1.5),
    (lambda **kw: GBM("regression", **kw), "reg_lambda", -1.0),
    (lambda **kw: GBM("regression", **kw), "early_stopping_rounds", 0),
    (lambda **kw: GBM("regression", **kw), "params", [("seed", 1)]),
    (lambda **kw: SklearnModel(**{"estimator": _linear(), "task": "regression", **kw}), "estimator", object()),
    (lambda **kw: SklearnModel(**{"estimator": _linear(), "task": "regression", **kw}), "task", "ranking"),
])
def test_declared_constraints_reject_bad_values_by_name(make, param, bad):
    make()  # the defaults are accepted
    with pytest.raises(ParameterError, match=f"{param}=.* is not accepted; expected"):
        make(**{param: bad})


def _linear():
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def test_load_model_reads_an_ensemble_without_importing_anything_first(rf, gbm, splits, tmp_path):
    from pipekit.ensemble import WeightedEnsemble

    _, va = splits
    ens = WeightedEnsemble([rf, gbm], n_iter=5).fit(va)
    path = ens.export(tmp_path / "ens.pipekit")
    expected = ens.predict(va.xs[:20])
    np.save(tmp_path / "xs.npy", va.xs[:20].to_numpy())
    code = f"""
import sys, numpy as np, polars as pl
import pipekit
assert "pipekit.ensemble" not in sys.modules and "pipekit.backends" not in sys.modules
ens = pipekit.load_model({str(path)!r})
xs = pl.DataFrame(np.load({str(tmp_path / 'xs.npy')!r}), schema={va.xs.columns!r}, orient="row")
xs = xs.with_columns([pl.col(c).cast(pl.{va.xs.schema[va.cat_names[0]]}) for c in {list(va.cat_names)!r}])
np.save({str(tmp_path / 'out.npy')!r}, ens.predict(xs))
print(type(ens).__module__, type(ens).__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["pipekit.ensemble.weighted", "WeightedEnsemble"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected)


def test_scores_use_pipekit_metrics_by_name_or_object(gbm, splits):
    from sklearn.metrics import log_loss, roc_auc_score

    import pipekit.metrics as M

    tr, va = splits
    d = as_data(va)
    y, p = gbm.encode_y(d.y), gbm.predict(va)
    assert gbm.score(va) == pytest.approx(np.mean(p.argmax(1) == y))
    assert gbm.score(va, "log_loss") == pytest.approx(log_loss(y, p))
    assert gbm.score(va, "roc_auc") == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert gbm.score(va, M.error_rate) == pytest.approx(1 - gbm.score(va))
    with pytest.raises(ParameterError, match="metric='rmse' is a regression metric"):
        gbm.score(va, "rmse")
    # regression: "r2" is scikit-learn's r2_score, 0.0 on a constant target when the prediction is not perfect
    target = "education-num"
    reg = GBM("regression", n_estimators=30, n_jobs=1).fit(as_data(tr.xs.drop(target), y=tr.xs[target].to_numpy()))
    xs = va.xs.drop(target)
    from sklearn.metrics import r2_score

    assert reg.score(as_data(xs, y=va.xs[target].to_numpy()), "r2") == pytest.approx(
        r2_score(va.xs[target].to_numpy(), reg.predict(xs)))
    assert reg.score(as_data(xs, y=np.full(len(xs), 3.0)), "r2") == 0.0
    assert reg.score(as_data(xs, y=va.xs[target].to_numpy()), "mae") < reg.score(
        as_data(xs, y=va.xs[target].to_numpy()), "rmse")


def test_a_number_given_as_a_0d_tensor_is_kept_as_that_number(splits, tmp_path):
    """A step of torch.linspace or a NumPy scalar is accepted where a number is, and kept as the plain number, so
    scikit-learn and LightGBM (and a saved file) get an int or a float, not a tensor."""
    import torch

    tr, va = splits
    rf = RandomForest("classification", n_estimators=torch.tensor(12), n_jobs=1)
    assert type(rf.n_estimators) is int and rf.n_estimators == 12
    rf.fit(tr, va)
    assert len(rf.estimators_) == 12
    back = pipekit.load(pipekit.save(rf, tmp_path / "rf.pipekit"))
    assert back.n_estimators == 12 and type(back.n_estimators) is int
    gbm = GBM("classification", learning_rate=torch.tensor(0.25), n_estimators=np.int64(5))
    assert repr(gbm) == "GBM(task='classification', n_estimators=5, learning_rate=0.25)"
    with pytest.raises(ParameterError, match=r"n_estimators=.* \(it is a Tensor of shape \(2,\)"):
        RandomForest("classification", n_estimators=torch.tensor([3, 4]))
