"""fit_ensemble's metric check hints at y_block='category' for classes coded as numbers, and the net's expected
time on a tiny table counts its fixed cost per fold model."""

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from pipekit.core.errors import ParameterError
from pipekit.ensemble import fit_ensemble
from pipekit.ensemble import auto
from pipekit.tabular import Normalize, Tabular


@pytest.fixture(autouse=True)
def _quiet(recwarn):
    """The 0/1 target is read as a regression with a warning, as intended here."""


def _tab(load, n=None):
    X, y = load(return_X_y=True, as_frame=True)
    df = pl.from_pandas(X).with_columns(target=pl.Series(y.values))
    df = df if n is None else df.head(n)
    valid = np.arange(0, len(df), 5)
    return Tabular(df, procs=[Normalize], cont_names=list(X.columns), y_names="target",
                   splits=(np.setdiff1d(np.arange(len(df)), valid), valid))


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
def test_a_classification_metric_on_a_0_1_target_says_how_to_classify(metric):
    tab = _tab(load_breast_cancer)
    assert tab.processor.y_kind_ == "regression"
    with pytest.raises(ParameterError, match=r"classification metric .* build the Tabular with y_block='category'"):
        fit_ensemble(tab, metric=metric, candidates=["gbm"], n_folds=2, n_jobs=1, verbose=False)


def test_the_net_is_expected_to_take_its_fixed_cost_on_a_tiny_table():
    ens = fit_ensemble(_tab(load_diabetes, 50), time_limit=600, candidates=["gbm", "net"], n_folds=2, stack=False,
                       n_jobs=1, verbose=False)
    gbm, net = (ens.report_.filter(pl.col("model") == m).row(0, named=True) for m in ("gbm", "net"))
    assert gbm["expected_s"] is None  # fitted first: nothing measured yet
    # two fold models, each at least its epochs' fixed cost, whatever the GBM's few rows took
    floor = 2 * 5 * auto.NET_EPOCH_S
    assert net["expected_s"] >= floor
    assert next(c for c in auto.default_candidates("regression") if c.name == "net").floor_s == floor / 2
