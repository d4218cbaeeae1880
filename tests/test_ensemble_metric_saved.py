"""An ensemble's metric in its file: a metric given by name is stored by name and scores the same after loading (in a
fresh process too); one a file cannot hold (a scikit-learn scorer, a user's function) warns at save, naming what the
loaded model scores with. And LightGBM's aliases of ``linear_tree`` keep ``Normalize`` among the default procs."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import polars as pl
import pytest

import pipekit
from pipekit.backends import GBM, SklearnModel
from pipekit.ensemble import fit_ensemble
from pipekit.sklearn import TabularRegressor
from pipekit.sklearn.fitting import default_procs, learns_trees
from pipekit.tabular import Normalize, Tabular
from test_models_helpers import adult_tab

DIABETES = """
import polars as pl
from sklearn.datasets import load_diabetes
from pipekit.data.splitters import RandomSplitter
from pipekit.tabular import FillMissing, Normalize, Tabular
data = load_diabetes(as_frame=True)
tab = Tabular(pl.from_pandas(data.frame), procs=[FillMissing, Normalize], cont_names=list(data.feature_names),
              y_names="target", y_block="regression", splits=RandomSplitter(valid_pct=0.2, seed=0))
"""


def diabetes_tab() -> Tabular:
    scope: dict = {}
    exec(DIABETES, scope)
    return scope["tab"]


def small_fit(tab: Tabular, metric, task: str = "regression"):
    from sklearn.linear_model import LogisticRegression, Ridge

    linear = Ridge(alpha=1.0) if task == "regression" else LogisticRegression(max_iter=300)
    cands = {"gbm": GBM(task, n_estimators=30, num_leaves=7, n_jobs=1), "linear": SklearnModel(linear, task)}
    return fit_ensemble(tab, metric=metric, candidates=cands, n_folds=2, stack=False, n_jobs=1, verbose=False)


def stored_metric(file) -> object:
    return json.loads(zipfile.ZipFile(file).read("record.json"))["params"]["metric"]


def test_metric_names_are_stored_and_score_the_same_in_a_fresh_process(tmp_path):
    tab = diabetes_tab()
    expected = {}
    for name in ("mape", "rmsle", "root_mean_squared_error"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a name is kept: nothing to warn of at save
            ens = small_fit(tab, name)
            file = pipekit.save(ens, tmp_path / f"{name}.pipekit")
        assert stored_metric(file) == name
        rep = ens.report(tab.valid)
        expected[name] = [ens.score(tab.valid), rep.columns[1], rep[:, 1].to_list()]
    assert expected["mape"][0] < 1 < expected["root_mean_squared_error"][0]  # a relative error, not the RMSE
    code = DIABETES + f"""
import json, pipekit
out = {{}}
for name in {sorted(expected)!r}:
    ens = pipekit.load({str(tmp_path)!r} + "/" + name + ".pipekit")
    rep = ens.report(tab.valid)
    out[name] = [ens.score(tab.valid), rep.columns[1], rep[:, 1].to_list()]
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    for name, (score, column, scores) in expected.items():
        assert loaded[name][1] == column, name
        np.testing.assert_allclose(loaded[name][0], score, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(loaded[name][2], scores, rtol=1e-12, err_msg=name)


def test_a_scorer_warns_at_save_naming_the_default_the_loaded_model_scores_with(tmp_path):
    from sklearn.metrics import get_scorer

    tab = adult_tab(2000)
    ens = small_fit(tab, get_scorer("roc_auc"), "classification")
    auc, acc = ens.score(tab.valid), ens.score(tab.valid, "accuracy")
    assert auc != acc
    with pytest.warns(UserWarning, match="metric 'roc_auc_score' is a scikit-learn scorer") as w:
        file = pipekit.save(ens, tmp_path / "auc.pipekit")
    said = str(next(x.message for x in w if "roc_auc_score" in str(x.message)))
    assert "classification default, 'accuracy'" in said and "metric='roc_auc'" in said
    assert stored_metric(file) is None
    loaded = pipekit.load(file)
    assert loaded.score(tab.valid) == pytest.approx(acc, abs=1e-12)  # as the warning said
    assert loaded.score(tab.valid, "roc_auc") == pytest.approx(auc, abs=1e-12)


def test_a_users_function_warns_at_save_naming_rmse(tmp_path):
    from sklearn.metrics import get_scorer

    tab = diabetes_tab()

    def my_error(y_true, y_pred):
        return float(np.mean(np.abs(y_true - y_pred) ** 1.5))

    ens = small_fit(tab, my_error)
    with pytest.warns(UserWarning, match=r"'my_error' is a function.*regression default, 'rmse'"):
        file = pipekit.save(ens, tmp_path / "cost.pipekit")
    assert pipekit.load(file).score(tab.valid) == pytest.approx(ens.score(tab.valid, "rmse"), rel=1e-12)
    ens = small_fit(tab, get_scorer("neg_mean_absolute_error"))
    with pytest.warns(UserWarning, match=r"'mean_absolute_error' is a scikit-learn scorer.*metric='mae'"):
        pipekit.save(ens, tmp_path / "mae.pipekit")


@pytest.mark.parametrize("params", [{"linear_tree": True}, {"linear_trees": True}, {"linear_tree": "true"}])
def test_linear_tree_under_any_lightgbm_name_keeps_normalize(params):
    import lightgbm as lgb
    from sklearn.datasets import load_diabetes

    model = GBM("regression", params=params, n_estimators=20, n_jobs=1)
    assert not learns_trees(model) and Normalize in default_procs(model)
    assert not learns_trees(SklearnModel(lgb.LGBMRegressor(**params), "regression"))
    assert learns_trees(GBM("regression", params={"linear_trees": False}))
    data = load_diabetes(as_frame=True)
    X = pl.from_pandas(data.data)
    est = TabularRegressor(model).fit(X, data.target.to_numpy())
    assert Normalize in {type(p) for p in est.processor_.procs}  # a linear model in each leaf reads them scaled


def test_scikit_learn_function_names_are_the_metrics_they_name_in_a_file(tmp_path):
    """``"mean_absolute_error"`` is MAE's alias: an ensemble selects on it, saves it without a warning, and the loaded
    model scores what scikit-learn's function gives on diabetes."""
    from sklearn.metrics import mean_absolute_error

    tab = diabetes_tab()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a name of a registered metric: nothing to warn of at save
        ens = small_fit(tab, "mean_absolute_error")
        file = pipekit.save(ens, tmp_path / "mae.pipekit")
    y = tab.valid.ys.to_numpy().ravel()
    expected = mean_absolute_error(y, ens.predict(tab.valid).ravel())
    assert ens.score(tab.valid) == pytest.approx(expected, rel=1e-9)
    assert pipekit.load(file).score(tab.valid) == pytest.approx(expected, rel=1e-9)
