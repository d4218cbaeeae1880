"""An XGBoost or CatBoost model's ``params`` read from a file are data: the library's training parameters, each with
the values it takes, held to one allow-list per library by the check the GBM's LightGBM ``params`` go through.

``fit`` hands ``params`` to ``xgb.train`` / ``catboost.CatBoost`` as they are, and some of their parameters write files
where they say (CatBoost writes its training logs into ``train_dir``, snapshots into ``snapshot_file``) or choose the
hardware (threads, memory, a GPU). Edits of real pipekit files adding one must be refused at load, before the library
is imported, naming the file and ``params.<key>``; the settings pipekit itself trains with are accepted, and a model
built in code takes any parameter its user gives it. With xgboost / catboost installed, fitted files round-trip.
"""
from __future__ import annotations

import numpy as np
import pytest
from file_edits import component_records, edited_copy, refused_quickly
from test_models_helpers import adult

import pipekit
from pipekit.backends import GBM, CatBoost, XGBoost, as_data, boosters
from pipekit.backends.booster_files import (CATBOOST_FILE_PARAMS, CATBOOST_RULES, LIGHTGBM_RULES, XGBOOST_FILE_PARAMS,
                                            XGBOOST_RULES, check_catboost_file_params, check_file_params,
                                            check_lightgbm_file_params, check_params_to_save,
                                            check_xgboost_file_params)
from pipekit.core import ExportError
from pipekit.core.errors import FieldError

#: parameters a file may not set, and values of allowed ones it may not hold
XGBOOST_CRAFTED = [
    ("nthread", 64), ("n_jobs", 64), ("device", "cuda:0"), ("gpu_id", 0), ("predictor", "gpu_predictor"),
    ("updater", "grow_gpu_hist"), ("tree_method", "gpu_hist"), ("process_type", "update"),
    ("callbacks", ["os.system"]), ("model_file", "/tmp/m.json"), ("no_such_parameter", 1),
    ("max_depth", -3), ("eta", "fast"), ("objective", "reg:squarederror nthread=64"), ("eval_metric", ["auc", "/x"]),
    ("subsample", 1.5), ("seed", 0.5)]
CATBOOST_CRAFTED = [
    ("train_dir", "/tmp/catboost_logs"), ("snapshot_file", "/tmp/snap.cbsnapshot"), ("save_snapshot", True),
    ("snapshot_interval", 1), ("model_shrink_rate", 0.1), ("model_shrink_mode", "Constant"),
    ("used_ram_limit", "64gb"), ("thread_count", 64), ("task_type", "GPU"), ("devices", "0:1"),
    ("input_borders", "/etc/passwd"), ("output_borders", "/tmp/borders.tsv"), ("callbacks", ["os.system"]),
    ("no_such_parameter", 1), ("allow_writing_files", True), ("depth", 40), ("learning_rate", "fast"),
    ("loss_function", "RMSE:path=/etc/passwd"), ("eval_metric", "NoSuchMetric"), ("custom_metric", ["AUC", 3])]
#: keys whose value, not the key, is refused
_VALUES = {"max_depth", "eta", "objective", "eval_metric", "subsample", "seed", "depth", "learning_rate",
           "loss_function", "custom_metric"}
_SETTINGS = {"tree_method", "allow_writing_files"}  # values that choose what only code may (a GPU, writing files)
_CHECKS = {XGBoost: check_xgboost_file_params, CatBoost: check_catboost_file_params}
_CASES = [(XGBoost, k, v) for k, v in XGBOOST_CRAFTED] + [(CatBoost, k, v) for k, v in CATBOOST_CRAFTED]
_IDS = [f"{cls.__name__}-{k}" for cls, k, _ in _CASES]


def _set_params(cls: type, extra: dict, replace: bool = False):
    """An edit adding ``extra`` to the ``params`` of every ``cls`` record in a file's record (with ``replace``,
    setting them to ``extra``)."""
    def edit(record: dict) -> None:
        found = list(component_records(record, f"pipekit.backends.{cls.__name__}"))
        assert found, f"the file holds no {cls.__name__}"
        for rec in found:
            rec["params"]["params"] = {**({} if replace else rec["params"].get("params") or {}), **extra}
    return edit


def _own_params(cls: type, task: str, n_classes: int = 0) -> dict:
    """The parameter dict pipekit itself trains ``cls`` with (its defaults), for ``task``."""
    model = cls(task)
    if n_classes:
        model.classes_ = np.arange(n_classes)
    return model.xgb_params() if cls is XGBoost else model.cb_params()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real pipekit files of an XGBoost and a CatBoost model (unfitted: saving one needs neither library), each with
    parameters of its library in ``params`` as a user gives them."""
    out = tmp_path_factory.mktemp("boosters")
    xgb = XGBoost("classification", n_estimators=50, n_jobs=1,
                  params={"max_bin": 64, "gamma": 0.1, "eval_metric": ["auc", "error@0.6"], "grow_policy": "lossguide"})
    cb = CatBoost("classification", n_estimators=50, n_jobs=1,
                  params={"border_count": 64, "bootstrap_type": "Bernoulli", "subsample": 0.8,
                          "loss_function": "Logloss", "allow_writing_files": False})
    return {XGBoost: (xgb, pipekit.save(xgb, out / "xgb.pipekit")), CatBoost: (cb, pipekit.save(cb, out / "cb.pipekit"))}


@pytest.mark.parametrize(("cls", "key", "value"), _CASES, ids=_IDS)
def test_file_params_check_refuses_what_is_no_training_data(cls, key, value):
    with pytest.raises(FieldError, match=rf"field 'params\.{key}' ") as e:
        _CHECKS[cls]({"learning_rate": 0.1, key: value}, field="params")
    message = str(e.value)
    if key in _VALUES:
        assert "must be" in message, message
    else:
        assert "given in code" in message and "from a file" in message, message
    if key in ("nthread", "n_jobs", "thread_count"):
        assert "n_jobs= argument sets them" in message, message


@pytest.mark.parametrize(("cls", "key", "value"), _CASES, ids=_IDS)
def test_booster_file_refuses_params_that_are_no_data(files, tmp_path, cls, key, value):
    _, path = files[cls]
    crafted = edited_copy(path, _set_params(cls, {key: value}), tmp_path / f"{key}.pipekit")
    message = refused_quickly(pipekit.load, crafted, named=(f"params.params.{key}",))
    assert ("must be" if key in _VALUES else "given in code") in message, message
    if key in _SETTINGS:
        assert f"is {value!r}" in message, message


@pytest.mark.parametrize("cls", [XGBoost, CatBoost])
def test_params_pipekit_trains_with_are_accepted_in_a_file(cls, files, tmp_path):
    threads = "nthread" if cls is XGBoost else "thread_count"
    for task, k in (("regression", 0), ("classification", 2), ("classification", 5)):
        own = _own_params(cls, task, k)
        assert threads in own  # the threads come from n_jobs=, an argument of the model, never from params
        data = {key: v for key, v in own.items() if key != threads}
        _CHECKS[cls](data)
        loaded = pipekit.load(edited_copy(files[cls][1], _set_params(cls, data, replace=True),
                                          tmp_path / f"own_{task}{k}.pipekit"))
        assert loaded.params == data
    table = XGBOOST_FILE_PARAMS if cls is XGBoost else CATBOOST_FILE_PARAMS
    assert threads not in table and "n_jobs" not in table
    if cls is CatBoost:  # pipekit's own setting, with that value only
        assert own["allow_writing_files"] is False and CATBOOST_FILE_PARAMS["allow_writing_files"].accepts(False)
        assert not CATBOOST_FILE_PARAMS["allow_writing_files"].accepts(True)


@pytest.mark.parametrize("cls", [XGBoost, CatBoost])
def test_booster_file_with_its_own_params_loads(cls, files):
    model, path = files[cls]
    back = pipekit.load(path)
    assert isinstance(back, cls) and back.params == model.params and back.get_params() == model.get_params()
    bare = pipekit.load(pipekit.save(cls("regression"), path.with_name(f"bare_{cls.__name__}.pipekit")))
    assert bare.params is None


@pytest.mark.parametrize(("cls", "bad"), [(XGBoost, {"device": "cuda"}), (CatBoost, {"train_dir": "/tmp/x"})])
def test_file_params_are_refused_before_the_library_is_imported(cls, bad, monkeypatch):
    # a fitted record: its model would be handed to the library, which is never reached
    def no_library(package: str, name: str):
        raise AssertionError(f"{package} imported for a file whose params are refused")
    monkeypatch.setattr(boosters, "_require", no_library)
    model = cls("regression", params=bad)
    state = {model.model_attr: np.zeros(4, np.uint8), "feature_names_": ["a"], "cat_features_": [],
             "best_iteration_": 1}
    with pytest.raises(FieldError, match=rf"params\.params\.{next(iter(bad))}'.*given in code"):
        model.state_from_data(state)


@pytest.mark.parametrize("cls", [XGBoost, CatBoost])
def test_booster_built_in_code_takes_any_params(cls, files):
    # a user's own code chooses its settings, even those a file may not: the check is the file's only
    anything = {"nthread": 2, "device": "cpu"} if cls is XGBoost else {"train_dir": "/tmp/logs", "thread_count": 2}
    model = cls("regression", params=anything)
    assert model.params == anything
    loaded = pipekit.load(files[cls][1]).set_params(params=anything)
    assert loaded.params == anything


def test_lightgbm_file_params_still_go_through_the_same_check():
    check_lightgbm_file_params({"num_leaf": 63, "extra_trees": True})
    with pytest.raises(ExportError, match=r"params\.params\.workers' is LightGBM's machines"):
        check_lightgbm_file_params({"workers": "10.0.0.1:12400"})


@pytest.mark.parametrize(("cls", "package"), [(XGBoost, "xgboost"), (CatBoost, "catboost")])
def test_fitted_booster_file_round_trips_and_refuses_crafted_params(cls, package, tmp_path):
    pytest.importorskip(package)
    tr, va = (as_data(d) for d in adult(3000))
    params = {"max_bin": 63, "gamma": 0.1} if cls is XGBoost else {"border_count": 63, "random_strength": 0.5}
    model = cls("classification", n_estimators=30, learning_rate=0.2, n_jobs=1, params=params).fit(tr, va)
    path = model.export(tmp_path / f"{package}.pipekit")
    back = pipekit.load(path)
    assert back.params == params
    np.testing.assert_array_equal(back.predict(va), model.predict(va))
    key, value = ("device", "cuda") if cls is XGBoost else ("train_dir", str(tmp_path / "logs"))
    crafted = edited_copy(path, _set_params(cls, {key: value}), tmp_path / "crafted.pipekit")
    refused_quickly(pipekit.load, crafted, named=(f"params.params.{key}",), match="given in code")
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(("cls", "rules", "key", "value", "fix"), [
    (XGBoost, XGBOOST_RULES, "nthread", 8, "Give the threads with n_jobs= instead (XGBoost(..., n_jobs=8))"),
    (XGBoost, XGBOOST_RULES, "device", "cuda", "without 'device'"),
    (CatBoost, CATBOOST_RULES, "thread_count", 2, "Give the threads with n_jobs= instead (CatBoost(..., n_jobs=2))"),
    (CatBoost, CATBOOST_RULES, "train_dir", "/tmp/logs", "without 'train_dir'"),
    (CatBoost, CATBOOST_RULES, "allow_writing_files", True, "without 'allow_writing_files'"),
    (GBM, LIGHTGBM_RULES, "num_threads", 5000, "Give the threads with n_jobs= instead (GBM(..., n_jobs=5000))"),
    (GBM, LIGHTGBM_RULES, "forced_splits", "/tmp/s.json", "without 'forced_splits'")])
def test_params_a_file_could_not_hold_are_refused_at_save_by_the_load_check(cls, rules, key, value, fix):
    params = {"learning_rate": 0.1, key: value}
    with pytest.raises(FieldError):  # loading refuses it ...
        check_file_params(params, rules)
    with pytest.raises(ExportError, match=rf"{cls.__name__} cannot be saved: field 'params\.{key}' ") as e:
        check_params_to_save(cls.__name__, params, rules)  # ... so saving does, naming the setting and the way out
    message = str(e.value)
    assert fix in message and message.endswith("before saving") and "pipekit.load would refuse the file" in message
    assert not isinstance(e.value, FieldError)


@pytest.mark.parametrize("cls", [XGBoost, CatBoost])
def test_params_pipekit_trains_with_pass_the_save_check(cls):
    rules = XGBOOST_RULES if cls is XGBoost else CATBOOST_RULES
    threads = "nthread" if cls is XGBoost else "thread_count"
    for task, k in (("regression", 0), ("classification", 2), ("classification", 5)):
        check_params_to_save(cls.__name__, {key: v for key, v in _own_params(cls, task, k).items() if key != threads},
                             rules)
    check_params_to_save(cls.__name__, None, rules)


def test_lightgbm_settings_that_only_read_data_or_check_predictions_are_file_data():
    harmless = {"device_type": "cpu", "device": "cpu", "precise_float_parser": True, "two_round": False,
                "two_round_loading": True, "header": False, "gpu_use_dp": True, "saved_feature_importance_type": 1,
                "predict_disable_shape_check": True}
    check_lightgbm_file_params(harmless)
    check_params_to_save("GBM", harmless, LIGHTGBM_RULES)
    for key, value in (("device_type", "gpu"), ("device", "cuda"), ("saved_feature_importance_type", 2),
                       ("precise_float_parser", "yes"), ("gpu_device_id", 0), ("num_gpu", 1)):
        with pytest.raises(FieldError, match=rf"params\.params\.{key}' "):
            check_lightgbm_file_params({key: value})


@pytest.mark.parametrize(("cls", "key", "value"), [(XGBoost, "nthread", 8), (CatBoost, "train_dir", "/tmp/logs"),
                                                   (GBM, "forced_splits", "/tmp/s.json")])
def test_saving_a_model_whose_file_could_not_load_is_refused(cls, key, value, tmp_path):
    """Every booster's save runs its file check: no file is written that pipekit.load would refuse."""
    model = cls("regression", params={"learning_rate": 0.1, key: value})
    with pytest.raises(ExportError, match=rf"{cls.__name__} cannot be saved: field 'params\.{key}' "):
        pipekit.save(model, tmp_path / "m.pipekit")
    assert not list(tmp_path.iterdir())
    model.set_params(params={"learning_rate": 0.1})
    assert pipekit.load(pipekit.save(model, tmp_path / "ok.pipekit")).params == {"learning_rate": 0.1}


#: each library's names for its threads, which a model's n_jobs= argument sets (LightGBM's aliases read as num_threads)
_THREAD_NAMES = [(LIGHTGBM_RULES, "LightGBM", k) for k in ("num_threads", "nthread", "num_thread", "n_jobs")] + \
    [(XGBOOST_RULES, "XGBoost", k) for k in ("nthread", "n_jobs")] + \
    [(CATBOOST_RULES, "CatBoost", k) for k in ("thread_count", "n_jobs", "nthread")]


@pytest.mark.parametrize(("rules", "library", "key"), _THREAD_NAMES,
                         ids=[f"{lib}-{k}" for _, lib, k in _THREAD_NAMES])
@pytest.mark.parametrize("value", [1, 8])
def test_threads_are_refused_in_every_library_file_for_n_jobs(rules, library, key, value):
    # one rule for the three: whatever the count, a file never sets the threads; the model's n_jobs= does
    with pytest.raises(FieldError, match=rf"params\.params\.{key}' is {library}'s .*sets the threads {library} trains "
                                         r"with \(pipekit's n_jobs= argument sets them\)"):
        check_file_params({key: value}, rules)
    model = {"LightGBM": "GBM", "XGBoost": "XGBoost", "CatBoost": "CatBoost"}[library]
    with pytest.raises(ExportError, match=rf"Give the threads with n_jobs= instead \({model}\(\.\.\., "
                                          rf"n_jobs={value}\)\) and drop '{key}' from params before saving"):
        check_params_to_save(model, {key: value}, rules)


@pytest.mark.parametrize("rules", [LIGHTGBM_RULES, XGBOOST_RULES], ids=["LightGBM", "XGBoost"])
def test_monotone_and_interaction_constraints_are_read_as_gbm_fit_reads_them(rules):
    from pipekit.backends.gbm import monotone_values

    for value in ([0, 1, -1], (0, 1, -1), np.array([0, 1, -1]), "0,1,-1", ""):
        assert monotone_values("monotone_constraints", value) == ([0, 1, -1] if len(value) else [])
        check_file_params({"monotone_constraints": value, "interaction_constraints": [[0, 1], [2]]}, rules)
        check_params_to_save("GBM", {"monotone_constraints": value}, rules)
    for value in ("0,a", "0,1 forcedsplits_filename=/etc/passwd", np.zeros((2, 2), dtype=int), [2, 0], [True],
                  np.array([0.0, 1.0]), {"age": 1}):
        with pytest.raises(FieldError, match=r"monotone_constraints' must be -1, 0 or 1 per input"):
            check_file_params({"monotone_constraints": value}, rules)
    for value in ([0, 1], [[0, -1]], "0,1"):
        with pytest.raises(FieldError, match=r"interaction_constraints' must be a list of lists of input indices"):
            check_file_params({"interaction_constraints": value}, rules)
