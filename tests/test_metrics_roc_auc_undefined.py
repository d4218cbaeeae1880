"""ROC-AUC where scikit-learn's is undefined or its arguments do not go together: binary targets of one class scored
NaN with a pipekit warning that names the class and the fix (a stratified split), in a fit on adult's rows as
scored alone; ``multi_class='ovo'`` with ``average='micro'`` refused when the metric is made."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError, PipekitWarning
from pipekit.metrics import RocAuc, RocAucBinary
from pipekit.tabular import TabularDataLoaders, tabular_learner

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:1000]


def _no_sklearn_warning(record: list) -> None:
    from sklearn.exceptions import UndefinedMetricWarning

    assert not [w for w in record if issubclass(w.category, UndefinedMetricWarning)]


@pytest.mark.parametrize("metric", [RocAuc(), RocAucBinary()], ids=["RocAuc", "RocAucBinary"])
def test_binary_roc_auc_of_one_class_validation_set_is_nan_with_a_warning_naming_class_and_fix(adult, metric):
    # a validation set of the '<50k' rows alone: a split that is not stratified, on a rarer positive class
    valid_idx = np.flatnonzero((adult["salary"] == "<50k").to_numpy())[:150].tolist()
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age", "fnlwgt"], valid_idx=valid_idx, bs=128, seed=0, device="cpu")
    assert dls.vocab == ["<50k", ">=50k"]
    learn = tabular_learner(dls, layers=[8], metrics=metric)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        values = learn.validate()
    assert math.isnan(values[1])
    said = [str(w.message) for w in record if issubclass(w.category, PipekitWarning) and "ROC-AUC" in str(w.message)]
    assert said and "hold only class 0 of the two" in said[0] and "stratify_col=" in said[0]
    _no_sklearn_warning(record)
    # scored alone too, from one score per item
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert math.isnan(RocAucBinary().score(np.ones(4, dtype=np.int64), np.array([0.1, 0.4, 0.35, 0.8])))
    assert any("hold only class 1 of the two" in str(w.message) for w in record)
    _no_sklearn_warning(record)
    # both classes: scikit-learn's value, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RocAucBinary().score(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_roc_auc_ovo_with_micro_average_is_refused_when_made():
    with pytest.raises(ParameterError, match=r"^RocAuc: average='micro' .*give multi_class='ovo' with "
                                             r"average='macro' or 'weighted', or average='micro' with "
                                             r"multi_class='ovr'$"):
        RocAuc(multi_class="ovo", average="micro")
    with pytest.raises(ParameterError, match="^RocAucBinary: average='micro'"):
        RocAucBinary(multi_class="ovo", average="micro")
    metric = RocAuc(multi_class="ovo")
    with pytest.raises(ParameterError, match="average='micro'"):
        metric.set_params(average="micro")
    # every combination scikit-learn takes is made, and scores
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    for multi_class, average in (("ovr", "macro"), ("ovr", "weighted"), ("ovr", "micro"), ("ovo", "macro"),
                                 ("ovo", "weighted")):
        assert RocAuc(average=average, multi_class=multi_class).score(np.array([0, 1, 2, 1]), probs) == 1.0
