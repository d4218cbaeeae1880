"""A GBM's LightGBM ``params`` read from a file are data: LightGBM's training parameters, each with the values it takes.

``fit`` hands a GBM's ``params`` to ``lgb.train``, and some LightGBM parameters name files it reads or writes
(``forcedsplits_filename`` made it open any path and let a JSON file there decide the trees) or make it train across
machines (``machines``/``num_machines``/``local_listen_port`` bound a port and waited up to two hours for hosts the
file named). Edits of real files (a GBM fitted on adult, the same inside a TabularClassifier and in a
``fit_ensemble`` result) must be refused at load, naming the file and ``params.<key>``, under LightGBM's own name of a
parameter or any alias of it; genuine files still load and predict as before, and a GBM built in code takes any
parameter its user gives it.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pipekit
from pipekit.backends import GBM
from pipekit.core import ExportError, ParameterError

pytest.importorskip("lightgbm")

from file_edits import component_records, edited_copy, refused_quickly  # noqa: E402
from test_models_helpers import adult_tab  # noqa: E402

_GBM = "pipekit.backends.GBM"
#: LightGBM parameters a file may not set, each under its own name and an alias (and values that are no setting)
CRAFTED = [
    ("forcedsplits_filename", "/etc/passwd"),
    ("forced_splits", "/etc/passwd"),
    ("forcedbins_filename", "/etc/passwd"),
    ("machines", "10.255.255.1:12400,127.0.0.1:12401"),
    ("workers", "10.255.255.1:12400,127.0.0.1:12401"),
    ("nodes", "10.255.255.1:12400,127.0.0.1:12401"),
    ("num_machines", 2),
    ("num_machine", 2),
    ("local_listen_port", 12401),
    ("port", 12401),
    ("local_port", 12401),
    ("time_out", 1),
    ("machine_list_filename", "/tmp/machines.txt"),
    ("tree_learner", "data"),
    ("tree", "voting"),
    ("device_type", "gpu"),
    ("device", "cuda"),
    ("output_model", "/tmp/stolen.txt"),
    ("config", "/tmp/train.conf"),
    ("no_such_parameter", 1),
    ("num_leaves", -5),
    ("num_leaf", -5),
    ("learning_rate", "fast"),
    # a value is written into LightGBM's "key=value key=value" text as it stands: a space would start another setting
    ("objective", "binary forcedsplits_filename=/etc/passwd"),
    ("metric", ["auc", "l2 machines=10.255.255.1:12400"]),
]


def _members(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("record.json"))


def _set_params(extra: dict):
    """An edit adding ``extra`` to the ``params`` of every GBM record in a file's record."""
    def edit(record: dict) -> None:
        found = list(component_records(record, _GBM))
        assert found, "the file holds no GBM"
        for rec in found:
            rec["params"]["params"] = {**(rec["params"].get("params") or {}), **extra}
    return edit


@pytest.fixture(scope="module")
def adult():
    return adult_tab(3000)


@pytest.fixture(scope="module")
def gbm_file(adult, tmp_path_factory):
    # a model as a user writes one: LightGBM parameters of its own in params, one of them by an alias
    model = GBM("classification", n_estimators=15, n_jobs=1,
                params={"max_depth": 5, "lambda_l1": 0.1, "verbosity": -1, "bagging_freq": 2, "num_leaf": 15,
                        "metric": ["binary_logloss", "auc"], "interaction_constraints": [[0, 1], [2, 3, 4]]})
    model.fit(adult.train, adult.valid)
    return model, pipekit.save(model, tmp_path_factory.mktemp("gbm") / "gbm.pipekit")


@pytest.fixture(scope="module")
def classifier_file(adult, tmp_path_factory):
    from pipekit.sklearn import TabularClassifier

    df = adult.train.xs.head(0)  # only for the column names
    cols = [c for c in ("age", "workclass", "hours-per-week", "education-num") if c in df.columns]
    import polars as pl

    raw = pl.read_csv(pipekit.datasets.path("adult_sample") / "adult.csv").head(1500)
    X, y = raw.select(cols), raw["salary"].to_numpy()
    clf = TabularClassifier(GBM("classification", n_estimators=10, n_jobs=1, params={"extra_trees": True}),
                            random_state=0).fit(X, y)
    return clf, X, pipekit.save(clf, tmp_path_factory.mktemp("clf") / "clf.pipekit")


@pytest.fixture(scope="module")
def ensemble_file(adult, tmp_path_factory):
    from pipekit.ensemble import fit_ensemble

    # two of fit_ensemble's own GBM configurations: gbm_sub (its second) and gbm_xt (extra_trees in params)
    ens = fit_ensemble(adult, candidates=["gbm_sub", "gbm_xt"], n_folds=2, stack=False, n_jobs=1, verbose=False)
    return ens, pipekit.save(ens, tmp_path_factory.mktemp("ens") / "ens.pipekit")


@pytest.mark.parametrize(("key", "value"), CRAFTED, ids=[k for k, _ in CRAFTED])
def test_gbm_file_refuses_lightgbm_params_that_are_no_data(gbm_file, tmp_path, key, value):
    _, path = gbm_file
    crafted = edited_copy(path, _set_params({key: value}), tmp_path / f"{key}.pipekit")
    message = refused_quickly(pipekit.load, crafted, named=(f"params.params.{key}",))
    if key in ("num_leaves", "num_leaf", "learning_rate", "objective", "metric"):
        assert "must be" in message, message  # a parameter a file may hold, with a value it may not
    else:
        assert "given in code" in message and "from a file" in message, message


def test_gbm_file_with_its_own_params_round_trips(gbm_file, adult, tmp_path):
    model, path = gbm_file
    back = pipekit.load(path)
    assert back.params == model.params
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    # every LightGBM parameter a file may hold, under LightGBM's own names and under aliases, loads and refits
    allowed = {"boosting": "gbdt", "bagging_fraction": 0.8, "feature_fraction_bynode": 0.9, "min_gain_to_split": 0.0,
               "max_bin": 63, "tree_learner": "serial",
               "monotone_constraints": [int(c == "age") for c in model.feature_names_],
               "min_data": 10, "reg_alpha": 0.0, "num_threads": 1, "objective": "binary", "metric": "auc,binary_error",
               "is_unbalance": True, "early_stopping_round": 5}
    loaded = pipekit.load(edited_copy(path, _set_params(allowed), tmp_path / "allowed.pipekit"))
    assert loaded.params["min_data"] == 10 and loaded.params["tree_learner"] == "serial"
    refit = loaded.fit(adult.train, adult.valid)
    assert refit.booster_.params["max_bin"] == 63 and refit.predict(adult.valid).shape == (len(adult.valid), 2)


def test_gbm_built_in_code_takes_any_params(gbm_file, adult, tmp_path):
    # a user's own code chooses its settings, even those a file may not: the check is the file's only
    model = GBM("classification", n_estimators=5, n_jobs=1,
                params={"forcedsplits_filename": str(tmp_path / "splits.json"), "output_model": "x.txt"})
    assert model.params["forcedsplits_filename"].endswith("splits.json")
    loaded = pipekit.load(gbm_file[1]).set_params(params={"num_machines": 1, "tree_learner": "serial"})
    assert loaded.params == {"num_machines": 1, "tree_learner": "serial"}


def test_tabular_classifier_with_gbm_file(classifier_file, tmp_path):
    clf, X, path = classifier_file
    back = pipekit.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert len(list(component_records(_members(path), _GBM))) == 2  # the backend and the fitted model
    for key, value in (("machines", "10.255.255.1:12400,127.0.0.1:12401"), ("fs", "/etc/passwd"),
                       ("unknown_key", 3)):
        crafted = edited_copy(path, _set_params({key: value}), tmp_path / f"clf_{key}.pipekit")
        refused_quickly(pipekit.load, crafted, named=(f"params.params.{key}",), match="given in code")


def test_fit_ensemble_file_with_gbm_members(ensemble_file, adult, tmp_path):
    ens, path = ensemble_file
    record = _members(path)
    stored = [r["params"].get("params") for r in component_records(record, _GBM)]
    assert {"extra_trees": True} in stored  # gbm_xt's own LightGBM parameter is in the file, and loads
    back = pipekit.load(path)
    np.testing.assert_array_equal(back.predict(adult.valid), ens.predict(adult.valid))
    for extra in ({"num_machines": 2, "local_listen_port": 12401, "machines": "10.255.255.1:12400,127.0.0.1:12401"},
                  {"forcedsplits_filename": "/etc/passwd"}):
        crafted = edited_copy(path, _set_params(extra), tmp_path / f"ens_{next(iter(extra))}.pipekit")
        with pytest.raises(ExportError, match=r"params\.params\.(num_machines|forcedsplits_filename)'? .*given in "
                                              "code") as e:
            pipekit.load(crafted)
        assert str(crafted) in str(e.value) or crafted.name in str(e.value)


def test_gbm_monotone_in_a_categorical_input_is_refused_not_a_crash(gbm_file, adult, tmp_path):
    # LightGBM ended the process (an error in a training thread) for a monotone output in a categorical input; a
    # file may hold monotone_constraints, so fit says what is wrong instead
    model, path = gbm_file
    cat = model.feature_names_.index("workclass")
    mono = [int(i == cat) for i in range(len(model.feature_names_))]
    loaded = pipekit.load(edited_copy(path, _set_params({"monotone_constraint": mono}), tmp_path / "mono.pipekit"))
    with pytest.raises(ParameterError, match=r"monotone output in the categorical input\(s\) \['workclass'\]"):
        loaded.fit(adult.train, adult.valid)
    with pytest.raises(ParameterError, match="has 2 values; give one per input"):
        GBM("classification", n_estimators=5, n_jobs=1, params={"monotone_constraints": [0, 1]}).fit(adult.train)
