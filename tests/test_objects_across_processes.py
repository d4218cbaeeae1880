"""Fitted pipekit objects copied and sent to other processes: a GBM (and what holds one) pickles its booster as
LightGBM's model text and rebuilds it after checking the process, so a worker forked after Polars work raises
ForkedProcessError instead of hanging inside LightGBM; copies, pickles and spawned workers predict as the original.
A vision learner over a memory-mapped image pack goes through ``joblib.Parallel``'s workers. Every wait on a
worker has a timeout, so a hang fails the test rather than the run."""
import copy
import os
import pickle
import subprocess
import sys
import textwrap

import cloudpickle
import joblib
import numpy as np
import pandas as pd
import pytest

import pipekit.datasets as D

pytestmark = pytest.mark.data

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def tab():
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(2000)
    return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=CAT, cont_names=CONT, y_names="salary",
                   splits=RandomSplitter(valid_pct=0.2, seed=42))


@pytest.fixture(scope="module")
def gbm(tab):
    from pipekit.backends import GBM

    return GBM("classification", n_estimators=40, early_stopping_rounds=5, n_jobs=2).fit(tab.train, tab.valid)


def _record(model, tmp_path):
    import zipfile

    from pipekit import save

    path = save(model, tmp_path / "m.pipekit")
    return zipfile.ZipFile(path).read("record.json")


def _predict(model, data):
    return np.asarray(model.predict(data))


def test_copies_and_pickles_of_a_gbm_predict_as_it_does(gbm, tab, tmp_path):
    want = gbm.predict(tab.valid)
    held = gbm.booster_.current_iteration()
    copies = {"deepcopy": copy.deepcopy(gbm), "pickle": pickle.loads(pickle.dumps(gbm)),
              "cloudpickle": cloudpickle.loads(cloudpickle.dumps(gbm))}
    joblib.dump(gbm, tmp_path / "gbm.joblib")
    copies["joblib"] = joblib.load(tmp_path / "gbm.joblib")
    for how, other in copies.items():
        assert other.booster_ is not gbm.booster_, how
        assert other.booster_.current_iteration() == held, how  # every round kept, not only those predicted with
        assert other.best_iteration_ == gbm.best_iteration_, how
        np.testing.assert_array_equal(other.predict(tab.valid), want, err_msg=how)
        np.testing.assert_array_equal(other.feature_importances_, gbm.feature_importances_, err_msg=how)
        np.testing.assert_array_equal(other.contributions(tab.valid).values, gbm.contributions(tab.valid).values,
                                      err_msg=how)
        assert _record(other, tmp_path) == _record(gbm, tmp_path), how  # the same file, fields in the same order
    assert copy.copy(gbm).booster_ is gbm.booster_  # a shallow copy shares the booster
    unfitted = pickle.loads(pickle.dumps(type(gbm)("regression", n_estimators=5)))
    assert "booster_" not in vars(unfitted) and unfitted.n_estimators == 5


def test_a_gbm_in_a_spawned_worker_predicts_as_it_does(gbm, tab):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        got = ex.submit(_predict, gbm, tab.valid).result(timeout=240)
    np.testing.assert_array_equal(got, gbm.predict(tab.valid))


def test_a_classifier_holding_a_gbm_clones_and_searches_in_joblib_workers():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from pipekit.backends import GBM
    from pipekit.sklearn import TabularClassifier

    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(1000)
    X, y = df[CAT + CONT], df["salary"].to_numpy()
    clf = TabularClassifier(GBM("classification", n_estimators=10, n_jobs=1), random_state=0).fit(X, y)
    assert "booster_" not in vars(clone(clf).backend)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), clf.predict_proba(X))
    search = GridSearchCV(TabularClassifier(GBM("classification", n_estimators=10, n_jobs=1), random_state=0),
                          {"backend__num_leaves": [4, 8]}, cv=2, n_jobs=2).fit(X, y)
    assert search.best_params_["backend__num_leaves"] in (4, 8)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(search)).predict(X), search.predict(X))


FORKED_AFTER_FIT = """
import concurrent.futures as cf, faulthandler, multiprocessing as mp, sys
import pandas as pd
import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.data import RandomSplitter
from pipekit.sklearn import TabularClassifier
from pipekit.tabular import Categorify, FillMissing, Tabular

CAT, CONT = ["workclass", "education", "occupation"], ["age", "education-num"]


def end_if_stuck():  # a worker stuck in LightGBM is ended after 30 s, so that no process is left waiting
    faulthandler.dump_traceback_later(30, exit=True, file=sys.stderr)


def predict(model, data):
    return model.predict(data).shape


if __name__ == "__main__":
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(2000)
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    gbm = GBM("classification", n_estimators=20).fit(tab.train, tab.valid)
    clf = TabularClassifier(GBM("classification", n_estimators=20), random_state=0).fit(df[CAT + CONT], df["salary"])
    for name, model, data in [("gbm", gbm, tab.valid), ("classifier", clf, df[CAT + CONT])]:
        print(f"--- {name}", file=sys.stderr, flush=True)
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("fork"), initializer=end_if_stuck) as ex:
            try:
                print(name, "->", ex.submit(predict, model, data).result(timeout=60), flush=True)
            except Exception as e:
                print(name, "->", type(e).__name__, flush=True)
"""


def test_a_gbm_sent_to_a_forked_worker_says_why_instead_of_hanging(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(FORKED_AFTER_FIT))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PIPEKIT_QUIET="1"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    workers = dict(part.split("\n", 1) for part in done.stderr.split("--- ")[1:])
    assert set(workers) == {"gbm", "classifier"}, done.stderr[-3000:]
    for name, said in workers.items():  # the worker ends on the error, which its stderr shows
        assert "ForkedProcessError: unpickling a GBM: this process" in said, said[-3000:]
        assert 'get_context("spawn")' in said and "Timeout" not in said, said[-3000:]
        assert f"{name} -> BrokenProcessPool" in done.stdout, done.stdout


def test_a_vision_learner_over_a_mapped_image_pack_predicts_in_joblib_workers(tmp_path, monkeypatch):
    from test_models_helpers import mnist_eighth_learner

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))

    for build in ("cold", "warm"):  # the pack written by this build, then the pack found in the cache and verified
        learn = mnist_eighth_learner()
        want = _preds(learn)
        got = joblib.Parallel(n_jobs=2, timeout=240)(joblib.delayed(_preds)(learn) for _ in range(2))
        for g in got:
            np.testing.assert_array_equal(g, want, err_msg=build)
        np.testing.assert_array_equal(_preds(copy.deepcopy(learn)), want, err_msg=build)


def _preds(learn):
    p, _ = learn.get_preds(ds_idx=1)
    return p.numpy()
