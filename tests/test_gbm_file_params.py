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
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pipekit
from pipekit.backends import GBM
from pipekit.backends.gbm import monotone_values
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
    # the threads: a GBM's n_jobs= argument sets them, as XGBoost's and CatBoost's
    ("num_threads", 4),
    ("nthread", 4),
    ("n_jobs", 4),
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
    # a value GBM refuses when built in code too is refused as the file's GBM is built, naming it as written there
    built = key in ("num_leaves", "num_leaf", "learning_rate", "objective")
    message = refused_quickly(pipekit.load, crafted, named=(f"params={{{key!r}" if built else f"params.params.{key}",))
    if key in ("num_leaves", "num_leaf", "learning_rate", "objective", "metric"):
        assert "must be" in message or "is not a LightGBM objective" in message, message  # a value it may not hold
    else:
        assert "given in code" in message and "from a file" in message, message
    if key in ("num_threads", "nthread", "n_jobs"):
        assert "LightGBM's num_threads" in message and "pipekit's n_jobs= argument sets them" in message, message


def test_gbm_file_with_its_own_params_round_trips(gbm_file, adult, tmp_path):
    model, path = gbm_file
    back = pipekit.load(path)
    assert back.params == model.params
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    # every LightGBM parameter a file may hold, under LightGBM's own names and under aliases, loads and refits
    allowed = {"boosting": "gbdt", "bagging_fraction": 0.8, "feature_fraction_bynode": 0.9, "min_gain_to_split": 0.0,
               "max_bin": 63, "tree_learner": "serial",
               "monotone_constraints": [int(c == "age") for c in model.feature_names_],
               "min_data": 10, "reg_alpha": 0.0, "objective": "binary", "metric": "auc,binary_error",
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


#: settings a user's own GBM may hold that its file could not (each refused at save, naming params.<key>)
UNSAVABLE = [
    ("device_type", "gpu", "chooses the device (GPU)"),
    ("device", "cuda", "chooses the device (GPU)"),
    ("forcedsplits_filename", "/tmp/splits.json", "names a file"),
    ("machines", "10.255.255.1:12400", "trains across machines"),
    ("gpu_device_id", 0, "chooses the device"),
    ("no_such_parameter", 1, "is no name of a LightGBM parameter"),
    ("num_threads", 4096, "n_jobs="),
    ("num_threads", 2, "n_jobs="),
    ("nthread", 8, "n_jobs="),
]
#: LightGBM settings that only change how it reads data, its numerical precision, what its model text records or its
#: prediction checks: a file may hold them (the device only as "cpu")
HARMLESS = {"device": "cpu", "precise_float_parser": True, "two_round": True, "saved_feature_importance_type": 1,
            "predict_disable_shape_check": True, "gpu_use_dp": False, "header": False}


@pytest.mark.parametrize(("key", "value", "why"), UNSAVABLE, ids=[f"{k}-{v}" for k, v, _ in UNSAVABLE])
def test_gbm_save_refuses_params_its_file_could_not_load(adult, tmp_path, key, value, why):
    model = GBM("classification", n_estimators=3, n_jobs=1, params={"max_depth": 3, key: value})
    target = tmp_path / "user.pipekit"
    with pytest.raises(ExportError, match=rf"GBM cannot be saved: field 'params\.{key}' ") as e:
        pipekit.save(model, target)
    message = str(e.value)
    assert why in message and "pipekit.load would refuse the file" in message and "before saving" in message, message
    if why == "n_jobs=":
        assert "sets the threads LightGBM trains with" in message and f"GBM(..., n_jobs={value})" in message, message
    else:
        assert f"without {key!r}" in message, message
    assert not target.exists()


def test_gbm_refuses_when_built_a_value_its_file_could_not_hold(gbm_file, tmp_path):
    # LightGBM's max_bin is 2 or more: refused as the GBM is built, naming it, so no model or file holds it
    target = tmp_path / "user.pipekit"
    with pytest.raises(ParameterError, match=r"GBM: params=\{'max_bin': 1\}: LightGBM's max_bin must be an integer"):
        pipekit.save(GBM("classification", n_estimators=3, n_jobs=1, params={"max_depth": 3, "max_bin": 1}), target)
    assert not target.exists()
    _, path = gbm_file  # and a file edited to hold it is refused at load, naming it
    crafted = edited_copy(path, _set_params({"max_bin": 1}), tmp_path / "max_bin.pipekit")
    message = refused_quickly(pipekit.load, crafted, named=("params={'max_bin': 1}",))
    assert "must be an integer" in message, message


def test_fitted_gbm_save_refuses_a_setting_only_code_may_give(adult, tmp_path):
    # LightGBM trains on the CPU with gpu_device_id set, so this user's model fits; its file could not be loaded
    model = GBM("classification", n_estimators=3, n_jobs=1, params={"gpu_device_id": 0}).fit(adult.train)
    with pytest.raises(ExportError, match=r"field 'params\.gpu_device_id' .*Drop that setting or change it"):
        pipekit.save(model, tmp_path / "gpu.pipekit")
    model.set_params(params=None).fit(adult.train)  # without it, the same model saves and loads
    back = pipekit.load(pipekit.save(model, tmp_path / "cpu.pipekit"))
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))


def test_gbm_with_harmless_lightgbm_settings_saves_loads_and_predicts_the_same(adult, tmp_path):
    model = GBM("classification", n_estimators=10, n_jobs=1, params=HARMLESS).fit(adult.train, adult.valid)
    assert model.booster_.params["device"] == "cpu"
    back = pipekit.load(pipekit.save(model, tmp_path / "harmless.pipekit"))
    assert back.params == HARMLESS
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    # each under LightGBM's own name too, in an edited file, and device_type other than "cpu" still refused
    record_path = pipekit.save(GBM("classification", n_estimators=3), tmp_path / "bare.pipekit")
    own = {"device_type": "cpu", "two_round_loading": True, "saved_feature_importance_type": 0}
    assert pipekit.load(edited_copy(record_path, _set_params(own), tmp_path / "own.pipekit")).params == own
    crafted = edited_copy(record_path, _set_params({"device_type": "cuda"}), tmp_path / "cuda.pipekit")
    refused_quickly(pipekit.load, crafted, named=("params.params.device_type",), match="given in code")


def test_every_default_gbm_configuration_saves_and_loads(tmp_path):
    from pipekit.ensemble.auto import default_candidates, stacker

    for task in ("classification", "regression"):
        gbms = [c.model for c in default_candidates(task) if isinstance(c.model, GBM)]
        gbms += [GBM(task), stacker(task)]
        assert len(gbms) >= 5
        for i, model in enumerate(gbms):
            back = pipekit.load(pipekit.save(model, tmp_path / f"{task}{i}.pipekit"))
            assert back.get_params() == model.get_params()


def _monotone_forms(names: list[str], cat: int) -> dict:
    mono = [int(i == cat) for i in range(len(names))]
    return {"list": mono, "tuple": tuple(mono), "array": np.array(mono), "text": ",".join(map(str, mono)),
            "spaced text": ", ".join(map(str, mono))}


@pytest.mark.parametrize("key", ["monotone_constraints", "monotone_constraint", "mc"])
@pytest.mark.parametrize("form", ["list", "tuple", "array", "text", "spaced text"])
def test_gbm_monotone_in_a_categorical_input_is_refused_in_every_form(gbm_file, key, form):
    model, _ = gbm_file
    cats = [i for i, c in enumerate(model.feature_names_) if c in model.cat_features_]
    value = _monotone_forms(model.feature_names_, model.feature_names_.index("workclass"))[form]
    with pytest.raises(ParameterError, match=rf"params {key}= asks for a monotone output in the categorical "
                                             r"input\(s\) \['workclass'\]"):
        model._check_monotone({key: value}, cats)
    allowed = [int(c == "age") for c in model.feature_names_]  # a number input: LightGBM can
    model._check_monotone({key: np.array(allowed) if form == "array" else allowed}, cats)
    model._check_monotone({key: ",".join(map(str, allowed))}, cats)


@pytest.mark.parametrize(("value", "reason"), [
    ("0,a,1", "not LightGBM's comma-separated text"), (np.zeros((2, 3), dtype=int), "array of shape"),
    ({"age": 1}, "is a dict"), (1, "is a int"), ([0.5] * 3, "has 0.5 at position 0"),
    ([True, False], "has True at position 0"), ([2, 0], "has 2 at position 0"), ([0, 1], "has 2 values")])
def test_gbm_monotone_value_lightgbm_cannot_read_is_refused_with_the_reason(gbm_file, value, reason):
    model, _ = gbm_file
    with pytest.raises(ParameterError, match=re.escape(reason)):
        model._check_monotone({"monotone_constraints": value}, [])
    # a different setting, despite its name: the method, not the constraints
    model._check_monotone({"monotone_constraining_method": "basic", "monotone_constraints": ""}, [])


def test_gbm_fit_with_monotone_array_on_a_categorical_input_raises_not_aborts(tmp_path):
    # run apart: LightGBM ends the process for it, which would take the test run with it
    code = textwrap.dedent("""
        import sys, numpy as np
        sys.path.insert(0, sys.argv[1])
        from pipekit.backends import GBM
        from pipekit.core import ParameterError
        from test_models_helpers import adult_tab
        tab = adult_tab(1500)
        names = GBM("classification", n_estimators=2, n_jobs=1).fit(tab.train).feature_names_
        for value in (np.array([int(c == "workclass") for c in names]), ",".join(str(int(c == "workclass")) for c in names)):
            try:
                GBM("classification", n_estimators=3, n_jobs=1, params={"mc": value}).fit(tab.train)
                print("fitted")
            except ParameterError as e:
                print("refused:", e)
    """)
    run = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env={**os.environ, "PIPEKIT_QUIET": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("refused: GBM: params mc= asks for a monotone output in the "
                                                   "categorical input(s) ['workclass']") for line in lines), run.stdout


@pytest.mark.parametrize(("key", "form"), [("monotone_constraints", "text"), ("mc", "text"),
                                          ("monotone_constraints", "array"), ("monotone_constraint", "tuple")])
def test_gbm_with_monotone_constraints_in_any_form_it_trains_with_saves_loads_and_predicts_the_same(
        adult, tmp_path, key, form):
    # every form fit reads the constraints in is one its file holds: a GBM that trains also saves
    names = GBM("classification", n_estimators=2, n_jobs=1).fit(adult.train).feature_names_
    value = _monotone_forms(names, names.index("age"))[form]  # a number input: LightGBM can
    model = GBM("classification", n_estimators=15, n_jobs=1, params={key: value}).fit(adult.train, adult.valid)
    assert monotone_values(key, model.booster_.params[key]) == [int(c == "age") for c in names]
    back = pipekit.load(pipekit.save(model, tmp_path / f"{form}.pipekit"))
    np.testing.assert_array_equal(np.asarray(back.params[key]), np.asarray(value))
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    refit = back.fit(adult.train, adult.valid)  # the loaded constraints train the same model again
    np.testing.assert_array_equal(refit.predict(adult.valid), model.predict(adult.valid))
    saved = tmp_path / f"{form}.pipekit"
    for i, bad in enumerate(("0,a", np.zeros((2, 2), dtype=int), [2] * len(names))):  # what fit refuses is refused
        with pytest.raises(ParameterError, match=rf"(?s)GBM: params=\{{'{key}': .*LightGBM's monotone_constraints must "
                                                 "be -1, 0 or 1 per input"):  # as the GBM is built, naming it
            pipekit.save(GBM("classification", params={key: bad}), tmp_path / "bad.pipekit")
        assert not (tmp_path / "bad.pipekit").exists()
        held = bad.tolist() if isinstance(bad, np.ndarray) else bad  # and a file may not hold it
        crafted = edited_copy(saved, _set_params({key: held}), tmp_path / f"bad{i}.pipekit")
        message = refused_quickly(pipekit.load, crafted, named=(f"params={{'{key}': ",))
        assert "must be -1, 0 or 1 per input" in message, message


def test_gbm_threads_come_from_n_jobs_and_its_file_loads(adult, tmp_path):
    # GBM's own threads are its n_jobs= argument (LightGBM's names for them set it too), never a file's params
    for model in (GBM("classification", n_estimators=5, n_jobs=2), GBM("classification", n_estimators=5, nthread=2)):
        assert model.n_jobs == 2 and model.params is None
        model.fit(adult.train)
        assert model.booster_.params["num_threads"] == 2
        back = pipekit.load(pipekit.save(model, tmp_path / "threads.pipekit"))
        assert back.n_jobs == 2 and back.params is None
        np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))


def test_lightgbm_names_are_read_once():
    from pipekit.backends.gbm import lightgbm_names

    names = lightgbm_names()
    assert names is lightgbm_names()  # one table for every fit and file check
    assert names["nthread"] == names["num_threads"] == "num_threads" and names["mc"] == "monotone_constraints"


#: what an earlier pipekit's record of ``GBM(params=...)`` held beside those params: every argument, the defaults too,
#: which LightGBM's names in params contradicted (LightGBM read params over them)
_EARLIER = {"subsample": 1.0, "min_child_samples": 20, "seed": 0, "n_estimators": 1000, "early_stopping_rounds": 50}


def test_gbm_file_an_earlier_pipekit_wrote_loads_predicts_and_refits_as_it_did(adult, tmp_path):
    params = {"bagging_fraction": 0.8, "bagging_freq": 1, "min_data": 10, "random_state": 3, "num_iterations": 6,
              "early_stopping_round": 5}
    model = GBM("classification", n_jobs=1, params=params).fit(adult.train, adult.valid)
    assert (model.subsample, model.min_child_samples, model.seed, model.n_estimators) == (0.8, 10, 3, 6)

    def earlier(record: dict) -> None:
        for rec in component_records(record, _GBM):
            rec["params"].update(_EARLIER)

    path = edited_copy(pipekit.save(model, tmp_path / "new.pipekit"), earlier, tmp_path / "earlier.pipekit")
    back = pipekit.load(path)  # its settings as the file holds them, none refused
    assert back.params == params and {k: getattr(back, k) for k in _EARLIER} == _EARLIER
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    # copied and searched as any loaded model, and refitted with LightGBM reading params over the arguments
    assert back.clone().get_params() == back.get_params()
    refit = back.clone().set_params(learning_rate=0.1).fit(adult.train, adult.valid)
    assert refit.booster_.params["bagging_fraction"] == 0.8 and refit.booster_.params["min_data"] == 10
    # the same settings written in code are two values for one setting: refused, naming both
    with pytest.raises(ParameterError, match=r"set the same thing, LightGBM's bagging_fraction"):
        GBM(**back.get_params())
