"""GBM's ``metric`` takes the names a pipekit or scikit-learn user writes (log_loss, accuracy, roc_auc) as LightGBM's
metric of the same, which early stopping then watches; LightGBM's own names pass as they are, and any other name is
refused when the GBM is made, listing the names taken (LightGBM drops a name it does not know, and early stopping then
failed with "at least one dataset and eval metric is required")."""
import numpy as np
import pandas as pd
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.core.errors import ParameterError
from pipekit.data import RandomSplitter
from pipekit.ensemble import BaggedModel
from pipekit.tabular import Categorify, FillMissing, Tabular

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def adult():
    return pd.read_csv(D.path("adult_sample") / "adult.csv").head(3000)


def _tab(df, y):
    return Tabular(df, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                   cont_names=["age", "education-num"], y_names=y, splits=RandomSplitter(0.2, seed=42))


@pytest.fixture(scope="module")
def salary(adult):  # two classes
    return _tab(adult, "salary")


@pytest.fixture(scope="module")
def race(adult):  # five classes
    return _tab(adult, "race")


@pytest.mark.parametrize("metric, watched", [("log_loss", "binary_logloss"), ("accuracy", "binary_error"),
                                             ("error_rate", "binary_error"), ("roc_auc", "auc"),
                                             ("binary_logloss", "binary_logloss"), ("auc", "auc"),
                                             ("binary", "binary_logloss")])
def test_two_classes_metric_is_the_one_early_stopping_watches(salary, metric, watched):
    gbm = GBM("classification", n_estimators=20, early_stopping_rounds=3, n_jobs=1, metric=metric)
    gbm.fit(salary.train, salary.valid)
    assert list(gbm.evals_result_["valid"]) == [watched]
    curve = np.asarray(gbm.evals_result_["valid"][watched])
    best = curve.argmax() if watched == "auc" else curve.argmin()  # the first best round is kept
    assert gbm.best_iteration_ == best + 1
    assert gbm.params == {"metric": metric}  # the name given is kept (repr, clone, file)


@pytest.mark.parametrize("metric, watched", [("log_loss", "multi_logloss"), ("accuracy", "multi_error"),
                                             ("roc_auc", "auc_mu"), ("multi_error", "multi_error")])
def test_more_classes_take_the_multiclass_forms(race, metric, watched):
    gbm = GBM("classification", n_estimators=20, n_jobs=1, metric=metric).fit(race.train, race.valid)
    assert len(gbm.classes_) == 5 and list(gbm.evals_result_["valid"]) == [watched]


def test_a_bag_of_gbms_with_a_scikit_learn_metric_fits(salary):
    bag = BaggedModel(GBM("classification", n_estimators=20, n_jobs=1, metric="log_loss"), n_folds=3, n_jobs=1)
    bag.fit(salary.train, salary.valid)
    assert bag.predict(salary.valid).shape == (len(salary.valid), 2)


def test_lightgbm_names_pass_for_regression_and_several_are_taken(adult, salary):
    tab = _tab(adult, "hours-per-week")
    gbm = GBM("regression", n_estimators=20, n_jobs=1, metric="mse").fit(tab.train, tab.valid)
    assert list(gbm.evals_result_["valid"]) == ["l2"]
    gbm = GBM("classification", n_estimators=20, n_jobs=1, metric=["accuracy", "log_loss"]).fit(salary.train,
                                                                                                 salary.valid)
    assert sorted(gbm.evals_result_["valid"]) == ["binary_error", "binary_logloss"]


@pytest.mark.parametrize("task, kw, said", [
    ("classification", {"metric": "f1"}, r"metric='f1': 'f1' is not a metric GBM knows; give one of pipekit's and "
                                         r"scikit-learn's log_loss, .*accuracy.*, or LightGBM's binary_logloss, "),
    ("classification", {"params": {"metric": "acc"}}, r"'acc' is not a metric GBM knows"),
    ("classification", {"metrics": ["log_loss", "r2"]}, r"'r2' is not a metric GBM knows"),
    ("regression", {"metric": "log_loss"}, r"'log_loss' is a classification metric and the task is 'regression'; "
                                           r"give one of LightGBM's l2, rmse, l1, ")])
def test_an_unknown_name_is_refused_when_the_gbm_is_made(task, kw, said):
    with pytest.raises(ParameterError, match=said):
        GBM(task, **kw)
    with pytest.raises(ParameterError, match=said):
        GBM(task).set_params(**kw)


def test_no_metric_with_early_stopping_is_refused_naming_the_fix(salary):
    with pytest.raises(ParameterError, match=r"metric 'None' asks LightGBM for no metric.*early_stopping_rounds=None"):
        GBM("classification", n_estimators=5, n_jobs=1, metric="None").fit(salary.train, salary.valid)


def test_a_gbm_with_a_scikit_learn_metric_saves_and_loads(salary, tmp_path):
    gbm = GBM("classification", n_estimators=20, n_jobs=1, metric="log_loss").fit(salary.train, salary.valid)
    back = pipekit.load(pipekit.save(gbm, tmp_path / "gbm.pipekit"))
    assert back.params == {"metric": "log_loss"}
    np.testing.assert_allclose(back.predict(salary.valid), gbm.predict(salary.valid))


def test_a_metric_that_is_no_name_is_refused_before_lightgbm_runs(salary):
    gbm = GBM("classification", n_estimators=5, n_jobs=1, metric="auc,l2 num_threads=64")
    with pytest.raises(ParameterError, match=r"'l2 num_threads=64' is not a metric GBM knows"):
        gbm.fit(salary.train, salary.valid)
