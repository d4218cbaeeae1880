"""What users reach for on the ensembles and backends, on real adult rows: scikit-learn's ``fit(xs, y)`` on a
weighted or mean ensemble, one model named differently in two ensembles built from dicts, scikit-learn's tools on a
bare model, and ``report`` on rows without their target."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

import pipekit
from pipekit.backends import GBM, RandomForest, as_data
from pipekit.core import DataError, ParameterError
from pipekit.ensemble import MeanEnsemble, WeightedEnsemble
from pipekit.sklearn import TabularClassifier
from pipekit.tabular import Tabular

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


@pytest.fixture(scope="module")
def tab(adult_1500_tab) -> Tabular:
    return adult_1500_tab


@pytest.fixture(scope="module")
def gbm(tab) -> GBM:
    return GBM("classification", n_estimators=10, n_jobs=1).fit(tab.train)


@pytest.fixture(scope="module")
def rf(tab) -> RandomForest:
    return RandomForest("classification", n_estimators=8, n_jobs=1, seed=0).fit(tab.train)


@pytest.mark.parametrize("make", [WeightedEnsemble, MeanEnsemble])
def test_fit_with_xs_and_y_says_what_fit_takes(tab, gbm, rf, make):
    ens = make([gbm, rf])
    with pytest.raises(ParameterError, match=rf"{make.__name__}\.fit\(data=None\) takes splits .*y got a "
                                             r"polars\.Series of 300 values.*as_data\(xs, y=y\).*TabularClassifier"):
        ens.fit(tab.valid.xs, tab.valid.y)
    assert "report_" not in vars(ens)
    # the way it says works, and scores as the split itself does
    labels = np.asarray(gbm.classes_)[np.asarray(tab.valid.y)]
    fitted = make([gbm, rf]).fit(as_data(tab.valid.xs, y=labels))
    assert fitted.score(tab.valid) == make([gbm, rf]).fit(tab.valid).score(tab.valid)


def test_dict_members_are_named_without_renaming_the_callers_models(tab, gbm, rf, tmp_path):
    a = WeightedEnsemble({"forest_A": rf, "gbm": gbm}, n_iter=5).fit(tab.valid)
    b = MeanEnsemble({"forest_B": rf, "gbm": gbm}).fit(tab.valid)
    assert a.report(tab.valid)["model"].to_list() == ["forest_A", "gbm", "WeightedEnsemble"]
    assert b.report()["model"].to_list() == ["forest_B", "gbm", "MeanEnsemble"]
    assert rf.name is None and gbm.name is None and "name=" not in repr(rf)
    # one model given twice is two members with their own names
    twice = MeanEnsemble({"x": gbm, "y": gbm}).fit(tab.valid)
    assert twice.report()["model"].to_list() == ["x", "y", "MeanEnsemble"]
    # a member shares what the caller's model learned (a forest's trees are not held twice) and predicts as it does
    member = a.members[0]
    assert member is not rf and member.model_ is rf.model_ and member.processor_ is rf.processor_
    np.testing.assert_array_equal(b.members[0].predict(tab.valid), rf.predict(tab.valid))
    np.testing.assert_array_equal(member.feature_importances_, rf.feature_importances_)
    # setting a member's parameter through the ensemble leaves the caller's model as it was
    clone(b).set_params(forest_B__n_estimators=3)
    b.set_params(gbm__n_estimators=4)
    assert gbm.n_estimators == 10 and gbm.is_fitted and a.members[1].is_fitted
    # the names are what a file keeps; a loaded ensemble reports and predicts as the one saved
    loaded = pipekit.load(pipekit.save(a, tmp_path / "a.pipekit"))
    assert loaded.report(tab.valid)["model"].to_list() == ["forest_A", "gbm", "WeightedEnsemble"]
    np.testing.assert_array_equal(loaded.predict(tab.valid), a.predict(tab.valid))
    assert [m.name for m in clone(a).members] == ["forest_A", "gbm"]


def test_scikit_learn_tools_on_a_bare_model_name_the_wrappers(adult_1500):
    X, y = adult_1500.drop("salary").head(300), adult_1500["salary"].head(300).to_numpy()
    for model, wrapper in [(GBM("classification", n_estimators=5, n_jobs=1), "TabularClassifier"),
                           (RandomForest("regression", n_estimators=3, n_jobs=1), "TabularRegressor"),
                           (WeightedEnsemble([GBM("classification", n_estimators=5, n_jobs=1)]), "TabularClassifier")]:
        name = type(model).__name__
        with pytest.raises(ParameterError, match=rf"{name} is a pipekit model, not a scikit-learn estimator.*"
                                                 rf"cross_val_score\({wrapper}\({name}\(\.\.\.\)\), X, y\)"):
            cross_val_score(model, X, y if wrapper == "TabularClassifier" else adult_1500["age"].head(300), cv=2)
        assert repr(clone(model)) == repr(model) and not clone(model).is_fitted  # clone does not ask for the tags
    with pytest.raises(ParameterError, match=r"wrap it in TabularClassifier \(pipekit\.sklearn\)"):
        GridSearchCV(GBM("classification", n_estimators=5, n_jobs=1), {"num_leaves": [7, 15]}, cv=2).fit(X, y)
    # the way it says works
    scores = cross_val_score(TabularClassifier(GBM("classification", n_estimators=5, n_jobs=1)), X, y, cv=2)
    assert scores.shape == (2,) and (scores > 0.5).all()


def test_report_on_rows_without_their_target_says_how_to_label_them(adult_1500, tab, gbm, rf):
    ens = WeightedEnsemble({"gbm": gbm, "rf": rf}, n_iter=5).fit(tab.valid)
    rows = ens.process(adult_1500.drop("salary").tail(50))
    fix = r"needs a labelled split \(with ys\): a processed split of the Tabular .*ens\.process\(df\)"
    with pytest.raises(DataError, match=f"report {fix}"):
        ens.report(rows)
    with pytest.raises(DataError, match=f"score {fix}"):
        ens.score(rows)
    with pytest.raises(DataError, match=f"fit {fix}"):
        MeanEnsemble([gbm, rf]).fit(rows)
    with pytest.raises(DataError, match=f"this {fix}"):  # selecting weights on them: the same fix
        WeightedEnsemble([gbm, rf], n_iter=5).fit(tab.new(adult_1500.drop("salary").tail(50)))
    labelled = ens.process(adult_1500.tail(50))
    assert ens.report(labelled)["accuracy"][-1] == pytest.approx(ens.score(labelled))
