"""An ensemble fitted with a plain metric function takes its direction as fit_ensemble does: from the function's
scores, its name deciding only where they do not tell."""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from pipekit.backends import GBM, SklearnModel
from pipekit.core import ParameterError
from pipekit.ensemble import StackingEnsemble, WeightedEnsemble


def cost(y_true, y_pred):
    """The mean absolute error under a name that says nothing of its direction."""
    return float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))


@pytest.fixture(scope="module")
def diabetes():
    from sklearn.datasets import load_diabetes

    from pipekit.data.splitters import RandomSplitter
    from pipekit.tabular import Tabular

    df = pl.from_pandas(load_diabetes(as_frame=True, scaled=False).frame)
    return Tabular(df, cont_names=[c for c in df.columns if c != "target"], y_names="target",
                   splits=RandomSplitter(0.25, seed=0))


def test_a_weighted_ensemble_minimises_a_neutrally_named_error(diabetes):
    from sklearn.dummy import DummyRegressor

    tab = diabetes
    gbm = GBM("regression", n_estimators=40, n_jobs=1).fit(tab.train)
    mean = SklearnModel(DummyRegressor(), "regression").fit(tab.train)
    errors = [cost(tab.valid.y, m.predict(tab.valid)) for m in (gbm, mean)]
    assert errors[0] < errors[1]  # the forest of boosted trees is the better member
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        ens = WeightedEnsemble({"gbm": gbm, "mean": mean}, metric=cost, n_iter=10).fit(tab.valid)
    assert ens.best_member_ == 0 and ens.selection_[0] == 0 and ens.weights_[0] > ens.weights_[1]
    assert ens.scores_[0] == pytest.approx(errors[0])  # its first step is the best member alone
    assert min(ens.scores_) <= errors[0]
    assert ens.report_["cost"][-1] <= errors[0]
    assert [str(w.message) for w in said if "'cost' is taken as better smaller" in str(w.message)]


def test_a_stacking_ensemble_checks_its_metric_before_fitting_members(diabetes):
    """A classification metric of a regression stack is refused before any member is fitted, not when the
    validation rows are scored after every fold's fit."""
    from sklearn.dummy import DummyRegressor
    from sklearn.metrics import accuracy_score

    tab = diabetes
    stack = StackingEnsemble([SklearnModel(DummyRegressor(), "regression"),
                              GBM("regression", n_estimators=10, n_jobs=1)], n_folds=2, metric=accuracy_score)
    with pytest.raises(ParameterError, match="'accuracy_score' is a classification metric but the task is "
                                             "'regression'"):
        stack.fit(tab.train, tab.valid)
    assert not any(m.is_fitted for m in stack.members)
