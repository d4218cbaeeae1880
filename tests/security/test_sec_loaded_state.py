"""What a file holds is checked against what it will be used with before anything is set: a tampered or
mismatched file is an ExportError naming the file and the field, never a raw KeyError/TypeError/IndexError/
RuntimeError at load, nor a model that loads and then fails (or answers wrongly) at predict.

Real data: a tabular learner on adult_sample (checkpoints, exports); forests, GBMs, scikit-learn models and every
ensemble fitted on adult_sample (fitted state of saved models); a small CNN on mnist_tiny's grey images and a small
AWD-LSTM classifier on imdb_sample (exports).
"""
from __future__ import annotations

import copy
import io
import json
import zipfile

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from file_edits import edited_copy

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM, RandomForest, SklearnModel
from pipekit.core.archive import read_pipekit, write_archive
from pipekit.core.errors import ExportError, ParameterError
from pipekit.data import (CategoryBlock, ColReader, ColSplitter, DataBlock, GrandparentSplitter, RandomSplitter,
                          get_image_files, parent_label)
from pipekit.data.seed import set_seed
from pipekit.ensemble import BaggedModel, MeanEnsemble, StackingEnsemble, WeightedEnsemble
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.tabular import Normalize, Tabular, tabular_learner
from pipekit.text import AWD_LSTM, TextBlock, text_classifier_learner
from pipekit.vision import ImageBlock
from pipekit.vision import Normalize as ImageNormalize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(2000)


@pytest.fixture(scope="module")
def tab(adult) -> Tabular:
    return Tabular(adult, cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], y_names="salary",
                   splits=RandomSplitter(0.2, seed=42))


# ------------------------------------------------------------------------------------ 1. checkpoints
def _learner(tab, path):
    return tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[16], path=path)


@pytest.fixture(scope="module")
def ckpt(tab, tmp_path_factory):
    """A checkpoint of a tabular learner trained for an epoch (weights, Adam state, epoch, loaders, random states)."""
    folder = tmp_path_factory.mktemp("ckpt")
    set_seed(0)
    learn = _learner(tab, folder)
    learn.fit(1, 1e-2)
    path = learn.save("ck")
    archive = read_pipekit(path)
    return {"learn": learn, "path": path, "folder": folder, "record": archive.record, "arrays": archive.arrays,
            "tensors": archive.tensors()}


def _items(node, *keys):
    """The value at ``keys`` in a checkpoint record's stored dictionaries (``{"__items__": [[k, v], ...]}``)."""
    for k in keys:
        node = node[k] if isinstance(node, list) else next(v for key, v in node["__items__"] if key == k)
    return node


def _pairs(node, *keys):
    return _items(node, *keys)["__items__"]


def _snapshot(learn):
    return {"weights": {k: v.clone() for k, v in learn.model.state_dict().items()}, "opt": learn.opt,
            "resume_epoch": learn.resume_epoch, "loaders": [(dl.seed, dl.epoch) for dl in learn.dls.loaders],
            "rng": torch.get_rng_state().clone()}


def _assert_unchanged(learn, before):
    after = _snapshot(learn)
    assert after["weights"].keys() == before["weights"].keys()
    assert all(torch.equal(after["weights"][k], v) for k, v in before["weights"].items())
    assert after["opt"] is before["opt"] and after["resume_epoch"] == before["resume_epoch"]
    assert after["loaders"] == before["loaders"] and torch.equal(after["rng"], before["rng"])


def _set_next_epoch(rec, t):
    rec["next_epoch"] = "abc"


def _negative_epoch(rec, t):
    rec["next_epoch"] = -1


def _opt_int(rec, t):
    rec["opt"] = 5


def _opt_no_key(rec, t):
    rec["opt"] = {"__items__": [["x", 1]]}


def _weights_of_another_model(rec, t):
    for k in [k for k in t if k.startswith("model.")]:
        del t[k]
    t["model.x"] = torch.zeros(3)


def _weight_of_another_shape(rec, t):
    t["model.layers.0.weight"] = t["model.layers.0.weight"][:, :-1].contiguous()


def _integer_weight(rec, t):
    t["model.layers.0.weight"] = t["model.layers.0.weight"].to(torch.int64)


def _one_group_less(rec, t):
    groups = _items(rec["opt"], "opt", "param_groups")
    groups.pop()


def _group_with_fewer_params(rec, t):
    params = _items(rec["opt"], "opt", "param_groups", 0, "params")
    params.pop()


def _moment_of_another_shape(rec, t):
    t["opt.opt.state.0.exp_avg"] = torch.zeros(3)


def _moment_as_a_number(rec, t):
    t["opt.opt.state.0.exp_avg"] = torch.tensor(0.5)


def _step_of_a_parameter_shape(rec, t):
    t["opt.opt.state.0.step"] = torch.zeros_like(t["opt.opt.state.0.exp_avg"])


def _missing_moment(rec, t):
    pairs = _pairs(rec["opt"], "opt", "state", 0)
    pairs[:] = [p for p in pairs if p[0] != "exp_avg_sq"]


def _state_of_no_parameter(rec, t):
    _pairs(rec["opt"], "opt", "state").append([99, {"__items__": []}])


def _lr_as_text(rec, t):
    for pair in _pairs(rec["opt"], "opt", "param_groups", 0):
        if pair[0] == "lr":
            pair[1] = "fast"


def _betas_nan(rec, t):
    for pair in _pairs(rec["opt"], "opt", "param_groups", 0):
        if pair[0] == "betas":
            pair[1] = [float("nan"), 0.99]


def _option_of_another_optimiser(rec, t):
    _pairs(rec["opt"], "opt", "param_groups", 0).append(["nesterov", True])


def _frozen_far(rec, t):
    for pair in _pairs(rec["opt"]):
        if pair[0] == "frozen_to":
            pair[1] = 99


def _loader_seed_negative(rec, t):
    rec["loaders"][0]["seed"] = -1


def _loader_epoch_text(rec, t):
    rec["loaders"][0]["epoch"] = "3"


def _rng_short(rec, t):
    rec["rng"]["python"]["version"] = 3
    rec["rng"]["python"]["internal"] = [1, 2, 3]


def _callbacks_list(rec, t):
    rec["callbacks"] = [1, 2]


def _set_opt_entry(name, value):
    """An edit setting parameter 0's optimiser state entry ``name`` to ``value`` in the record (its tensor unread)."""
    def edit(rec, t):
        for pair in _pairs(rec["opt"], "opt", "state", 0):
            if pair[0] == name:
                pair[1] = value
    edit.__name__ = f"_{name}_{'null' if value is None else 'a_number'}"
    return edit


TAMPERED = [
    (_set_next_epoch, r"field 'next_epoch' must be a non-negative integer"),
    (_negative_epoch, r"field 'next_epoch'"),
    (_opt_int, r"field 'opt' must hold the optimiser's state"),
    (_opt_no_key, r"field 'opt' must hold the optimiser's state"),
    (_weights_of_another_model, r"model weights \(weights.safetensors.*Missing key\(s\).*Unexpected key\(s\)"),
    (_weight_of_another_shape, r"model weights \(weights.safetensors.*size mismatch.*layers.0.weight"),
    (_integer_weight, r"model weights \(weights.safetensors.*other number types.*layers.0.weight"),
    (_one_group_less, r"field 'opt.opt.param_groups' holds 1 parameter groups; this learner's optimiser has 2"),
    (_group_with_fewer_params, r"field 'opt.opt.param_groups\[0\].params' must list"),
    (_moment_of_another_shape, r"field 'opt.opt.state\[0\].exp_avg' has shape \(3,\), but parameter"),
    (_moment_as_a_number, r"field 'opt.opt.state\[0\].exp_avg' has shape \(\), but parameter"),
    (_step_of_a_parameter_shape, r"field 'opt.opt.state\[0\].step' has shape .*a step count is a single number"),
    # a moment set to null or to a plain number loaded, and Adam's step failed on it at the next fit ('NoneType' object
    # has no attribute 'lerp_'); a null step count was a raw TypeError from torch after the weights had been replaced
    (_set_opt_entry("exp_avg", None), r"field 'opt.opt.state\[0\].exp_avg' \(parameter 'embeds.weight'\) must be a "
                                      r"tensor of the parameter's shape \(\d+,\), got 'None'"),
    (_set_opt_entry("exp_avg_sq", None), r"field 'opt.opt.state\[0\].exp_avg_sq' \(parameter 'embeds.weight'\) must "
                                         r"be a tensor of the parameter's shape"),
    (_set_opt_entry("exp_avg", 0.5), r"field 'opt.opt.state\[0\].exp_avg' \(parameter 'embeds.weight'\) must be a "
                                     r"tensor of the parameter's shape \(\d+,\), got '0.5'"),
    (_set_opt_entry("step", None), r"field 'opt.opt.state\[0\].step' \(parameter 'embeds.weight'\) must be a finite "
                                   r"number \(a single value, as a step count is\), got 'None'"),
    (_missing_moment, r"field 'opt.opt.state\[0\]' \(parameter .*\) lacks \['exp_avg_sq'\]"),
    (_state_of_no_parameter, r"field 'opt.opt.state\[99\]' is the state of parameter"),
    (_lr_as_text, r"field 'opt.opt.param_groups\[0\].lr' must be a number"),
    (_betas_nan, r"field 'opt.opt.param_groups\[0\].betas' must be a list of 2 numbers \(finite\)"),
    (_option_of_another_optimiser, r"field 'opt.opt.param_groups\[0\]' has options \['nesterov'\]"),
    (_frozen_far, r"field 'opt.frozen_to' must be an integer in \[-1, 1\]"),
    (_loader_seed_negative, r"field 'loaders\[0\]' must be an object with a non-negative integer"),
    (_loader_epoch_text, r"field 'loaders\[0\]'"),
    (_rng_short, r"random states in .* are malformed \(record.json field 'rng'"),
    (_callbacks_list, r"field 'callbacks'"),
]


@pytest.mark.parametrize("edit, message", TAMPERED, ids=[f.__name__.strip("_") for f, _ in TAMPERED])
def test_sec_a_tampered_checkpoint_is_refused_and_leaves_the_learner_as_it_was(ckpt, tab, edit, message):
    rec, tensors = copy.deepcopy(ckpt["record"]), dict(ckpt["tensors"])
    edit(rec, tensors)
    path = write_archive(ckpt["folder"] / f"{edit.__name__}.pipekit", "checkpoint", rec, ckpt["arrays"],
                         weights=tensors)
    fresh = _learner(tab, ckpt["folder"])
    before = _snapshot(fresh)
    with pytest.raises(ExportError, match=message) as e:
        fresh.load(path)
    assert str(path) in str(e.value)
    _assert_unchanged(fresh, before)  # no half-loaded weights, no optimiser state, no counters


TRACKERS = [
    ("reduce_lr_on_plateau", {"reductions_": [[0, [-0.5]]]}, r"reductions_' must be a list of \[epoch, \[learning "
                                                              r"rates above 0\]\]"),
    ("reduce_lr_on_plateau", {"reductions_": "abc"}, r"reductions_' must be a list of \[epoch"),
    ("reduce_lr_on_plateau", {"wait_": -1}, r"wait_' must be"),
    ("early_stopping", {"wait_": "x"}, r"wait_' must be"),
    ("early_stopping", {"best_": "x"}, r"best_' must be a finite number, or null"),
    ("early_stopping", {"best_": 1e400}, r"best_"),
    ("early_stopping", {"best_": 10**400}, r"best_' must be a finite number"),
    ("reduce_lr_on_plateau", {"reductions_": [[0, [10**400]]]}, r"reductions_' must be a list of \[epoch"),
    ("save_model", {"saved_": 5}, r"saved_' must be a list of the checkpoints' paths"),
    ("save_model", {"best_epoch_": -2}, r"best_epoch_' must be an epoch number"),
]


@pytest.mark.parametrize("key, state, message", TRACKERS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(TRACKERS)])
def test_sec_a_checkpoints_tracker_state_is_checked_on_the_learner_and_when_given_to_fit(ckpt, tab, key, state,
                                                                                         message):
    """A negative learning rate in ReduceLROnPlateau's reductions trained uphill after a resume, text in a count or a
    best value raised raw errors mid-fit: refused at ``learn.load`` when the callback is on the learner, and when
    it is given to the resumed ``fit``, before any batch."""
    from pipekit.learn import EarlyStoppingCallback, ReduceLROnPlateau, SaveModelCallback

    make = {"reduce_lr_on_plateau": ReduceLROnPlateau, "early_stopping": EarlyStoppingCallback,
            "save_model": SaveModelCallback}[key]
    rec = copy.deepcopy(ckpt["record"])
    rec["callbacks"]["__items__"].append([key, {"__items__": [[k, v] for k, v in state.items()]}])
    path = write_archive(ckpt["folder"] / f"tracker-{key}.pipekit", "checkpoint", rec, ckpt["arrays"],
                         weights=dict(ckpt["tensors"]))
    on_learner = _learner(tab, ckpt["folder"])
    on_learner.add_cb(make())
    with pytest.raises(ExportError, match=message):
        on_learner.load(path)
    given_later = _learner(tab, ckpt["folder"]).load(path)
    before = {k: v.clone() for k, v in given_later.model.state_dict().items()}
    with pytest.raises(ExportError, match=message):
        given_later.fit(2, 1e-2, start_epoch=given_later.resume_epoch, cbs=[make()])
    assert all(torch.equal(before[k], v) for k, v in given_later.model.state_dict().items())  # no batch ran


def test_sec_a_real_checkpoint_still_round_trips(ckpt, tab):
    trained = ckpt["learn"]
    loaded = _learner(tab, ckpt["folder"]).load(ckpt["path"])
    assert all(torch.equal(a, b) for a, b in zip(trained.model.state_dict().values(),
                                                  loaded.model.state_dict().values()))
    assert loaded.resume_epoch == 1 and loaded.opt is not None
    for o, r in zip(trained.opt.opt.state.values(), loaded.opt.opt.state.values()):
        assert o.keys() == r.keys() and all(torch.equal(o[k], r[k]) for k in o)
    assert [g["lr"] for g in loaded.opt.param_groups] == [g["lr"] for g in trained.opt.param_groups]
    assert [(dl.seed, dl.epoch) for dl in loaded.dls.loaders] == [(dl.seed, dl.epoch) for dl in trained.dls.loaders]
    loaded.fit(2, 1e-2, start_epoch=loaded.resume_epoch)  # the resumed fit steps with the loaded state


def test_sec_a_checkpoint_whose_step_counts_are_plain_numbers_still_resumes(ckpt, tab, tmp_path):
    """torch's optimisers take a step count written as a plain number (older torch saved it so) and make it a tensor:
    the check that refuses a null one accepts it, and the resumed fit steps with it."""
    def plain_steps(rec):
        for _, state in _pairs(rec["opt"], "opt", "state"):
            for pair in state["__items__"]:
                if pair[0] == "step":
                    pair[1] = 1

    path = edited_copy(ckpt["path"], plain_steps, tmp_path / "plain-steps.pipekit")
    learn = _learner(tab, ckpt["folder"]).load(path)
    assert learn.opt.opt.state and all(float(s["step"]) == 1 for s in learn.opt.opt.state.values())
    learn.fit(2, 1e-2, start_epoch=learn.resume_epoch)


def test_sec_what_a_load_leaves_out_is_not_checked(ckpt, tab):
    """with_opt=False reads no optimiser state, restore_state=False no counters; strict=False loads the weights
    whose names match (their shapes still must)."""
    rec, tensors = copy.deepcopy(ckpt["record"]), dict(ckpt["tensors"])
    rec["opt"], rec["next_epoch"] = 5, "abc"
    path = write_archive(ckpt["folder"] / "partial.pipekit", "checkpoint", rec, ckpt["arrays"], weights=tensors)
    learn = _learner(tab, ckpt["folder"]).load(path, with_opt=False, restore_state=False)
    assert learn.opt is None and learn.resume_epoch == 0
    assert torch.equal(learn.model.layers[0].weight, ckpt["learn"].model.layers[0].weight)
    tensors = {k: v for k, v in ckpt["tensors"].items() if k != "model.layers.0.weight"}
    path = write_archive(ckpt["folder"] / "fewer.pipekit", "checkpoint", ckpt["record"], ckpt["arrays"],
                         weights=tensors)
    with pytest.raises(ExportError, match=r"Missing key\(s\).*layers.0.weight"):
        _learner(tab, ckpt["folder"]).load(path)
    fresh = _learner(tab, ckpt["folder"])
    init = fresh.model.layers[0].weight.clone()
    fresh.load(path, strict=False)
    assert torch.equal(fresh.model.layers[0].weight, init)
    assert torch.equal(fresh.model.layers[2].weight, ckpt["learn"].model.layers[2].weight)


# ------------------------------------------------------------------------ 2. fitted state of saved models
@pytest.fixture(scope="module")
def saved(tab, adult, tmp_path_factory):
    """Models fitted on adult, each saved with pipekit.save: {name: (model, path, split it predicts)}."""
    folder = tmp_path_factory.mktemp("models")
    train, valid = tab.train, tab.valid
    rf = RandomForest("classification", n_estimators=5, n_jobs=1).fit(train, valid)
    gbm = GBM("classification", n_estimators=10, n_jobs=1).fit(train, valid)
    reg = Tabular(adult, cat_names=["workclass"], cont_names=["fnlwgt", "education-num"], y_names="age",
                  y_block="regression", splits=RandomSplitter(0.2, seed=42))
    models = {
        "weighted": (WeightedEnsemble({"rf": rf, "gbm": gbm}).fit(valid), valid),
        "mean": (MeanEnsemble([rf, gbm]).fit(valid), valid),
        "bagged": (BaggedModel(GBM("classification", n_estimators=10, n_jobs=1), n_folds=3, n_jobs=1).fit(train), valid),
        "stacking": (StackingEnsemble([GBM("classification", n_estimators=10, n_jobs=1),
                                       RandomForest("classification", n_estimators=5, n_jobs=1)], n_folds=2,
                                      passthrough=True).fit(train), valid),
        "logistic": (SklearnModel(LogisticRegression(max_iter=200), "classification").fit(train, valid), valid),
        "naive_bayes": (SklearnModel(GaussianNB(), "classification").fit(train, valid), valid),
        "linear": (SklearnModel(LinearRegression(), "regression").fit(reg.train, reg.valid), reg.valid),
    }
    return {k: (m, pipekit.save(m, folder / f"{k}.pipekit"), data) for k, (m, data) in models.items()}


def test_sec_saved_models_still_round_trip(saved):
    for name, (model, path, data) in saved.items():
        loaded = pipekit.load(path)
        assert type(loaded) is type(model)
        assert np.array_equal(loaded.predict(data), model.predict(data)), name


def _tampered(saved, name, edit, tmp_path):
    """The saved model ``name`` with ``edit(record, arrays)`` applied to its record.json and arrays.npz."""
    with zipfile.ZipFile(saved[name][1]) as z:
        files = {n: z.read(n) for n in z.namelist()}
    record = json.loads(files["record.json"])
    arrays = dict(np.load(io.BytesIO(files["arrays.npz"])))

    def array(node, value):  # replace the array a record node refers to
        arrays[node["__array__"]] = np.asarray(value)

    edit(record, arrays, array)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files["record.json"], files["arrays.npz"] = json.dumps(record).encode(), buf.getvalue()
    path = tmp_path / f"{name}-tampered.pipekit"
    with zipfile.ZipFile(path, "w") as z:
        for n, v in files.items():
            z.writestr(n, v)
    return path


def _st(r):
    return r["state"]


def _attrs(r):
    return r["state"]["model_"]["attributes"]


def _proc(r, kind):
    """The record of the saved processor's proc of ``kind``."""
    return next(p for p in r["state"]["processor_"]["params"]["procs"] if p["class"].endswith("." + kind))


def _norm(r):
    """The fitted state of the saved processor's Normalize."""
    return _proc(r, "Normalize")["state"]


def test_sec_a_processing_takes_categorify_and_normalize_once():
    with pytest.raises(ParameterError, match=r"procs lists \['Normalize'\] more than once; give each once"):
        Tabular(pl.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]}), procs=[Normalize, Normalize], cont_names=["a"],
                y_names="y", y_block="category")


def _fill_a_categorical(r, a, array):
    state = _proc(r, "FillMissing")["state"]
    state["columns_"].append("workclass")
    state["fill_values_"]["workclass"] = 0.0


def _processor_of_another_kind(r, a, array):
    r["state"]["processor_"] = {"class": "pipekit.data.Categorize", "params": {}, "state": {"vocab_": ["a", "b"]}}


STATES = [
    # WeightedEnsemble.weights_: the tester's three, and the other ways weights can be wrong
    ("weighted", lambda r, a, array: _st(r).update(weights_=[0.5, 0.5]), r"weights_ must be an array of 2 floats"),
    ("weighted", lambda r, a, array: array(_st(r)["weights_"], [0.2, 0.3, 0.5]), r"weights_ must be an array of 2"),
    ("weighted", lambda r, a, array: array(_st(r)["weights_"], [np.nan, np.nan]), r"weights_ must be finite"),
    ("weighted", lambda r, a, array: array(_st(r)["weights_"], [1.5, -0.5]), r"weights_ must be finite, non-negative"),
    ("weighted", lambda r, a, array: array(_st(r)["weights_"], [1.0, 1.0]), r"weights_ .* sum to 1"),
    ("weighted", lambda r, a, array: array(_st(r)["weights_"], [1, 0]), r"weights_ must be an array of 2 floats"),
    ("weighted", lambda r, a, array: _st(r).update(best_member_=7), r"best_member_ must be a member index below 2"),
    ("weighted", _processor_of_another_kind, r"processor_ must be the fitted procs of a Tabular"),
    # Normalize: a std of 0 or a NaN mean would scale new values to infinities or NaN; a column it does not scale
    ("weighted", lambda r, a, array: _norm(r)["stds_"].update(age=0.0),
     r"procs\[2\].state.stds_' must be a finite number above 0 within float32's range for each column of means_"),
    ("weighted", lambda r, a, array: _norm(r)["stds_"].update(age=float("inf")), r"state.stds_' must be a finite"),
    ("weighted", lambda r, a, array: _norm(r)["means_"].update(age=float("nan")), r"state.means_' must be a finite"),
    ("weighted", lambda r, a, array: _norm(r)["means_"].update(age="38"), r"state.means_' must be a finite"),
    ("weighted", lambda r, a, array: _norm(r)["stds_"].pop("age"), r"state.stds_' must be .* for each column of means_"),
    ("weighted", lambda r, a, array: (_norm(r)["means_"].update(workclass=1.0), _norm(r)["stds_"].update(workclass=1.0)),
     r"procs\[2\].state.means_' must name every one of the continuous inputs"),
    ("weighted", lambda r, a, array: (_norm(r)["means_"].pop("age"), _norm(r)["stds_"].pop("age")),
     r"procs\[2\].state.means_' must name every one of the continuous inputs \(cont_names_=\['age'"),
    ("weighted", lambda r, a, array: _norm(r)["means_"].update(age=1e300), r"state.means_' must be a finite number "
                                                                          r"within float32's range"),
    ("weighted", lambda r, a, array: _norm(r)["stds_"].update(age=1e-320), r"state.stds_' must be a finite number "
                                                                           r"above 0 within float32's range"),
    ("weighted", lambda r, a, array: _st(r)["processor_"]["params"]["procs"].append(_proc(r, "Normalize")),
     r"TabularProcessor refuses: procs lists \['Normalize'\] more than once"),
    # an emptied proc read as an unfitted one, and failed only at predict (as a learner export's is refused)
    ("weighted", lambda r, a, array: _proc(r, "Normalize").update(state={}),
     r"processor_.params.procs\[2\].state.means_' is missing: the fitted processing's Normalize processes new rows"),
    ("weighted", lambda r, a, array: _proc(r, "FillMissing")["state"].update(columns_=[], fill_values_={},
                                                                              na_columns_=[]),
     r"processor_.params.procs\[0\].state.columns_' must list every continuous input the processing fills"),
    # the columns each proc works on: Categorify codes categorical inputs, FillMissing fills continuous ones
    ("weighted", lambda r, a, array: _proc(r, "Categorify")["state"]["classes_"].update(age=["#na#", "49"]),
     r"state.classes_' must name only categorical inputs"),
    ("weighted", _fill_a_categorical, r"state.columns_' must name only continuous inputs"),
    ("weighted", lambda r, a, array: _proc(r, "FillMissing")["state"]["fill_values_"].update(age=10**400),
     r"state.fill_values_' must be one number \(finite, within float32's range\)"),
    ("weighted", lambda r, a, array: _proc(r, "FillMissing")["state"]["fill_values_"].update(age=1e300),
     r"state.fill_values_' must be one number \(finite, within float32's range\)"),
    ("weighted", lambda r, a, array: _st(r)["processor_"]["state"]["cont_names_"].append("age"),
     r"state.cat_names_' and cont_names_ must name distinct input columns.*\['age'\]"),
    ("weighted", lambda r, a, array: _st(r)["processor_"]["state"]["cat_names_"].append("salary"),
     r"state.cat_names_' and cont_names_ must name distinct input columns, none of them the target \['salary'\]"),
    # MeanEnsemble: its weights are a parameter
    ("mean", lambda r, a, array: r["params"].update(weights=[float("nan"), 1.0]), r"weights must be 2 finite"),
    ("mean", lambda r, a, array: r["params"].update(weights=["x", 1]), r"weights must be 2 finite"),
    ("mean", _processor_of_another_kind, r"processor_ must be the fitted procs of a Tabular"),
    # a name the class computes (a property) is no stored entry, at any depth: named, not a bare AttributeError
    ("mean", lambda r, a, array: _st(r).update(weights_=[0.9, 0.1]),
     r"MeanEnsemble: state entry 'weights_' is computed from the fitted state, not stored"),
    ("weighted", lambda r, a, array: _st(r)["processor_"]["state"].update(classes_={"workclass": ["#na#"]}),
     r"TabularProcessor: state entry 'classes_' is computed from the fitted state, not stored"),
    # SklearnModel: fitted arrays against the features and classes
    ("logistic", lambda r, a, array: array(_attrs(r)["coef_"], np.zeros((1, 1))),
     r"LogisticRegression: the fitted attribute 'coef_' has shape \(1, 1\).*must be numbers of shape \(1, 4\)"),
    ("logistic", lambda r, a, array: array(_attrs(r)["classes_"], [0, 5]),
     r"LogisticRegression: the fitted attribute 'classes_' must hold sorted, distinct class indices below 2"),
    ("logistic", lambda r, a, array: array(_attrs(r)["classes_"], ["<50k", ">=50k"]), r"'classes_' must hold"),
    ("logistic", lambda r, a, array: array(_attrs(r)["intercept_"], [np.nan]), r"'intercept_' holds NaN"),
    ("logistic", lambda r, a, array: array(_attrs(r)["coef_"], np.full((1, 4), "x")), r"'coef_' has shape \(1, 4\) of"),
    ("logistic", lambda r, a, array: _attrs(r).pop("coef_"), r"LogisticRegression: the stored fitted attributes do not "
                                                             r"predict"),
    ("naive_bayes", lambda r, a, array: array(_attrs(r)["var_"], np.ones((2, 3))), r"GaussianNB: .*'var_' has shape"),
    ("naive_bayes", lambda r, a, array: array(_attrs(r)["theta_"], np.full((2, 4), np.inf)), r"'theta_' holds NaN or "
                                                                                             r"infinite"),
    ("linear", lambda r, a, array: array(_attrs(r)["coef_"], np.zeros(7)), r"LinearRegression: .*'coef_' has shape "
                                                                          r"\(7,\)"),
    ("linear", lambda r, a, array: _attrs(r).update(intercept_="0"), r"'intercept_' has shape \(\) of <U1"),
    # BaggedModel: fold models and out-of-fold arrays against the bag
    ("bagged", lambda r, a, array: array(_st(r)["oof_predictions_"], np.zeros((len(a[_st(r)["oof_targets_"]["__array__"]]), 3))),
     r"oof_predictions_ must hold one finite prediction per training row \(shape \(1600, 2\)\)"),
    ("bagged", lambda r, a, array: array(_st(r)["oof_targets_"], np.full(len(a[_st(r)["oof_targets_"]["__array__"]]), 5)),
     r"oof_targets_ must hold a class index below 2"),
    ("bagged", lambda r, a, array: array(_st(r)["models_"][1]["state"]["classes_"], ["no", "yes"]),
     r"fold model 1 \(models_\[1\]\) predicts classes \['no', 'yes'\]"),
    ("bagged", lambda r, a, array: _st(r)["models_"][2]["state"].update(
        feature_names_=["age", "fnlwgt", "workclass", "education"]),
     r"fold model 2 \(models_\[2\]\) reads the columns \['age', 'fnlwgt', 'workclass', 'education'\], the bag"),
    ("bagged", _processor_of_another_kind, r"processor_ must be the fitted procs of a Tabular"),
    # what a backend knows of the rows it was fitted on (held to new rows by check_rows)
    ("bagged", lambda r, a, array: _st(r).update(norm_stats_={"age": [38.5, -1.0]}),
     r"BaggedModel: norm_stats_ must map normalised inputs to their raw mean and standard deviation"),
    ("bagged", lambda r, a, array: _st(r).update(norm_stats_={"age": ["38", 13.0]}), r"norm_stats_ must map"),
    ("bagged", lambda r, a, array: _st(r).update(cat_dtypes_={"age": "Int8"}),
     r"BaggedModel: cat_dtypes_ must map categorical inputs to the type of their codes"),
    # StackingEnsemble: refitted members and the meta-model against the members
    ("stacking", lambda r, a, array: _st(r)["members_"].pop(), r"members_ must hold 2 fitted models"),
    ("stacking", lambda r, a, array: _st(r)["members_"].reverse(), r"members_ must hold 2 fitted models"),
    ("stacking", lambda r, a, array: _st(r)["meta_model_"]["state"]["feature_names_"].__setitem__(-1, "age"),
     r"meta_model_ reads the columns .* but the members' predictions and the passthrough columns make"),
    ("stacking", lambda r, a, array: _st(r).update(passthrough_cats_=["nowhere"]), r"passthrough_cats_"),
    ("stacking", lambda r, a, array: array(_st(r)["meta_model_"]["state"]["classes_"], ["no", "yes"]),
     r"meta_model_ predicts the classes \['no', 'yes'\]"),
    ("stacking", lambda r, a, array: _st(r).update(meta_model_=_st(r)["members_"][0]["params"]),
     r"meta_model_ must be a fitted classification model"),
    ("stacking", _processor_of_another_kind, r"processor_ must be the fitted procs of a Tabular"),
]


@pytest.mark.parametrize("name, edit, message", STATES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(STATES)])
def test_sec_tampered_fitted_state_is_refused_at_load(saved, tmp_path, name, edit, message):
    path = _tampered(saved, name, edit, tmp_path)
    with pytest.raises(ExportError, match=message) as e:
        pipekit.load(path)
    assert str(path) in str(e.value)


PROCESSORS = [
    ({"class": "pipekit.data.Categorize", "params": {}, "state": {"vocab_": ["a", "b"]}}, r"got a Categorize"),
    (lambda fitted: {**fitted, "state": {}}, r"got an unfitted TabularProcessor"),
    ("Categorify", r"got a str"),
    ([1, 2], r"got a list"),
]


@pytest.mark.parametrize("name", ["weighted", "mean", "bagged", "stacking"])
@pytest.mark.parametrize("processor, message", PROCESSORS, ids=["component", "unfitted", "text", "list"])
def test_sec_every_kind_of_ensemble_refuses_a_processor_that_is_not_fitted_procs(saved, tmp_path, name, processor,
                                                                                 message):
    """process(rows) and processor() hand processor_ raw rows: whatever kind the ensemble, the check is the one of
    their base class, as the file is loaded."""
    assert vars(saved[name][0]).get("processor_") is not None  # each was fitted on adult's split, and keeps its procs
    def edit(r, a, array):
        fitted = r["state"]["processor_"]
        r["state"]["processor_"] = processor(fitted) if callable(processor) else processor

    path = _tampered(saved, name, edit, tmp_path)
    with pytest.raises(ExportError, match=r"processor_ must be the fitted procs of a Tabular \(a fitted "
                                          r"TabularProcessor\), " + message) as e:
        pipekit.load(path)
    assert str(path) in str(e.value) and type(saved[name][0]).__name__ in str(e.value)


# ------------------------------------------------------------------------- 3. the data recipe of exports
@pytest.fixture(scope="module")
def exported(ckpt, adult, tmp_path_factory):
    """Learners trained on real data and exported: {name: (learner, path, what it predicts)}."""
    folder = tmp_path_factory.mktemp("exports")
    set_seed(0)
    mnist = D.path("mnist_tiny")
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter()).dataloaders(mnist, bs=64, seed=42)
    vision = Learner(dls, simple_cnn(n_in=1, n_out=dls.c))
    vision.fit(1)
    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    texts = pl.concat([texts.filter(~pl.col("is_valid")).head(40), texts.filter(pl.col("is_valid")).head(10)])
    dls = DataBlock(blocks=(TextBlock.from_df("text"), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=ColSplitter("is_valid")).dataloaders(texts, bs=16, seed=42)
    text = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=32, n_layers=1), pretrained=False)
    text.fit(1, 1e-2)
    learners = {"vision": (vision, sorted((mnist / "test").iterdir())[0]), "text": (text, texts["text"][-1]),
                "tabular": (ckpt["learn"], adult.tail(20).drop("salary"))}
    return {k: (learn, learn.export(folder / f"{k}.pipekit"), item) for k, (learn, item) in learners.items()}


def _predictions(learn, item):
    if isinstance(item, pl.DataFrame):
        return learn.get_preds(dl=learn.dls.test_dl(item))[0]
    return learn.predict(item)[2]


def test_sec_real_exports_still_load_and_predict_identically(exported):
    for name, (learn, path, item) in exported.items():
        loaded = load_learner(path)
        assert type(loaded) is type(learn)
        assert torch.allclose(_predictions(loaded, item), _predictions(learn, item), atol=1e-6), name


def _tampered_export(exported, name, edit, tmp_path):
    return edited_copy(exported[name][1], edit, tmp_path / f"{name}-tampered.pipekit",
                       part=lambda record: record["dls"]["recipe"])


@pytest.fixture(scope="module")
def normalized(tmp_path_factory):
    """mnist_tiny's grey 3s and 7s through batch_tfms=Normalize(), which takes its statistics from a sample of the
    training images, a small CNN trained an epoch and exported: (learner, path, an image to predict)."""
    set_seed(0)
    mnist = D.path("mnist_tiny")
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter(), batch_tfms=ImageNormalize()).dataloaders(mnist, bs=64, seed=42)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=dls.c, channels=(4, 8)))
    learn.fit(1)
    path = learn.export(tmp_path_factory.mktemp("normalized") / "vision.pipekit")
    return learn, path, sorted((mnist / "test").iterdir())[0]


def test_sec_a_real_export_with_image_normalize_still_loads_and_predicts_identically(normalized):
    learn, path, image = normalized
    loaded = load_learner(path)
    norm = next(t for t in loaded.dls.recipe.batch_tfms_ if isinstance(t, ImageNormalize))
    assert len(norm.mean) == len(norm.std) == 1 and norm.std[0] > 0  # grey images' statistics, from a training batch
    assert torch.allclose(loaded.predict(image)[2], learn.predict(image)[2], atol=1e-6)


def _image_normalize(recipe):
    """The record of the image Normalize among a DataBlock recipe's fitted batch transforms."""
    return next(t for t in recipe["state"]["batch_tfms_"] if t["class"] == "pipekit.vision.Normalize")


_NORMALIZE = r"field 'dls.recipe.state.batch_tfms_\[\d+\].params.mean'"
NORMALIZE_STATS = [
    (lambda t: t.update(params={}), _NORMALIZE + r" is missing \(null\): a fitted recipe's Normalize holds the "
                                                 r"per-channel statistics it was given or took from the training "
                                                 r"images"),
    (lambda t: t["params"].update(mean=None, std=None), _NORMALIZE + r" is missing \(null\)"),
    (lambda t: t["params"].update(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
     _NORMALIZE + r" holds statistics for 3 channels, but the recipe's images have 1 .*export the trained learner "
                  r"again"),
    (lambda t: t["params"].update(mean=[float("nan")]),
     r"Normalize: mean=\[nan\] is not accepted; expected one finite value per channel"),
]


@pytest.mark.parametrize("edit, message", NORMALIZE_STATS, ids=["params-removed", "null", "rgb-stats", "nan"])
def test_sec_an_export_whose_image_normalize_cannot_normalise_its_images_is_refused(normalized, tmp_path, edit,
                                                                                    message):
    """An image Normalize keeps the statistics it took from a training batch as its parameters: removed or null they
    read as Normalize() before its loaders were built, and RGB statistics for the recipe's grey images loaded too,
    each failing only at predict ('Normalize() has no statistics yet', 'Normalize has 3 channel stats but the images
    have 1 channel(s)'), as a NaN mean made every input NaN there. Each is refused at load, naming the file and the
    field, and saying what to do."""
    path = edited_copy(normalized[1], lambda r: edit(_image_normalize(r)), tmp_path / "normalize.pipekit",
                       part=lambda record: record["dls"]["recipe"])
    with pytest.raises(ExportError, match=message) as e:
        load_learner(path)
    assert str(e.value).startswith(f"{path}: record.json field 'dls")


def test_sec_an_export_listing_more_metrics_than_a_learner_uses_is_refused_before_building_them(exported, tmp_path):
    from pipekit.learn import accuracy

    learn = exported["tabular"][0]
    learn.metrics = [accuracy]
    path = learn.export(tmp_path / "one-metric.pipekit")
    learn.metrics = []
    many = edited_copy(path, lambda r: r.__setitem__("metrics", r["metrics"] * 5000), tmp_path / "many.pipekit")
    with pytest.raises(ExportError, match=r"field 'metrics' lists 5,000 metrics, over the 100"):
        pipekit.load_learner(many)
    assert [m.name for m in pipekit.load_learner(path).metrics] == ["accuracy"]


def _vocab(recipe, block):
    """The fitted vocab_ list of a DataBlock recipe's block (its Categorize / Numericalize)."""
    return next(t["state"]["vocab_"] for t in recipe["state"]["blocks_"][block]["state"]["tfms_"]
                if "vocab_" in t.get("state", {}))


def _tfm(recipe, block, kind):
    """The record of the fitted transform ``kind`` (a class name) of a DataBlock recipe's block."""
    return next(t for t in recipe["state"]["blocks_"][block]["state"]["tfms_"] if t["class"].endswith("." + kind))


def _export_proc(recipe, kind):
    """The record of the proc ``kind`` (a class name) of an export's table processing."""
    return next(p for p in recipe["params"]["processor"]["params"]["procs"] if p["class"].endswith("." + kind))


#: what the processing's procs of an emptied record are named by
_PROCS = r"field 'dls.recipe.params.processor.params.procs"


RECIPES = [
    # the tester's three: a field removed, images of other channels, a vocab shorter than the outputs
    ("vision", lambda r: r["state"].pop("getters_"), r"field 'dls.recipe.state.getters_' is missing"),
    ("vision", lambda r: r["state"]["blocks_"][0]["params"].update(cls="RGB"),
     r"field 'dls.recipe.state.blocks_\[0\]' \(ImageBlock cls='RGB'\) makes 3-channel images, but the model's "
     r"first layer takes 1 channel"),
    ("vision", lambda r: _vocab(r, 1).__delitem__(slice(1, None)),
     r"field 'dls.recipe.state.blocks_\[1\]' gives 1 class \['3'\], but the model's last layer gives 2 scores"),
    ("vision", lambda r: _vocab(r, 1).append("9"), r"gives 3 classes \['3', '7', '9'\], but the model's last layer gives 2"),
    ("vision", lambda r: r["state"].pop("blocks_"), r"field 'dls.recipe.state.blocks_' is missing"),
    ("vision", lambda r: r["state"].pop("batch_tfms_"), r"field 'dls.recipe.state.batch_tfms_' is missing"),
    ("vision", lambda r: r["state"].update(n_inp_=3), r"holds 2 blocks, 2 getters and n_inp_=3"),
    ("vision", lambda r: r["state"]["getters_"].pop(), r"holds 2 blocks, 1 getters"),
    ("vision", lambda r: r["state"].update(n_inp_="1"), r"field 'dls.recipe.state.n_inp_' must be the number of inputs"),
    ("vision", lambda r: r["state"]["blocks_"][1]["state"].pop("tfms_"),
     r"field 'dls.recipe.state.blocks_\[1\]' \(CategoryBlock\) holds no fitted transforms"),
    # a text vocabulary of another size than the model's embedding
    ("text", lambda r: _vocab(r, 0).pop(), r"field 'dls.recipe.state.blocks_\[0\]' \(TextBlock\) holds a vocabulary "
                                           r"of \d+ tokens, but the model embeds \d+"),
    ("text", lambda r: _vocab(r, 1).pop(), r"field 'dls.recipe.state.blocks_\[1\]' gives 1 class"),
    # a Numericalize whose vocab was removed (or its whole state emptied) read as an unfitted one: NotFittedError at
    # predict, naming no file
    ("text", lambda r: _tfm(r, 0, "Numericalize")["state"].pop("vocab_"),
     r"field 'dls.recipe.state.blocks_\[0\].state.tfms_\[1\].state.vocab_' is missing: Numericalize encodes new items "
     r"with what setup learned"),
    ("text", lambda r: _tfm(r, 0, "Numericalize").update(state={}),
     r"field 'dls.recipe.state.blocks_\[0\].state.tfms_\[1\].state.vocab_' is missing"),
    # a table's procs: a field removed, a target vocabulary shorter than the outputs
    ("tabular", lambda r: r["params"]["processor"]["state"].pop("cat_names_"),
     r"field 'dls.recipe.params.processor.state.cat_names_' is missing"),
    ("tabular", lambda r: r["params"]["processor"]["state"].update(y_vocab_=["<50k"]),
     r"field 'dls.recipe.params.processor.state.y_vocab_' must list the target's classes, distinct, at least two and "
     r"as many as c_=2, got \['<50k'\]"),
    ("tabular", lambda r: r["params"]["processor"]["state"].update(y_vocab_=["<50k", "=50k", ">=50k"], c_=3),
     r"field 'dls.recipe.params.processor.state.y_vocab_' gives 3 classes \['<50k', '=50k', '>=50k'\], but the "
     r"model's last layer gives 2"),
    # a proc whose state was emptied read as an unfitted one (NotFittedError at predict); a FillMissing emptied of its
    # columns filled nothing, so a missing value reached the model (NonFiniteInputError at predict)
    ("tabular", lambda r: _export_proc(r, "Normalize").update(state={}),
     _PROCS + r"\[2\].state.means_' is missing: the fitted processing's Normalize processes new rows with what its "
              r"setup learned \(means_, stds_\), and this record holds none of it; the file is damaged or was not "
              r"written by pipekit: save or export it again"),
    ("tabular", lambda r: _export_proc(r, "FillMissing").update(state={}),
     _PROCS + r"\[0\].state.columns_' is missing: the fitted processing's FillMissing processes new rows with what "
              r"its setup learned \(columns_, fill_values_, na_columns_\)"),
    ("tabular", lambda r: _export_proc(r, "FillMissing")["state"].update(columns_=[], fill_values_={}, na_columns_=[]),
     _PROCS + r"\[0\].state.columns_' must list every continuous input the processing fills \(cont_names=\['age', "
              r"'fnlwgt'\]\), as its setup fills each of them; it lacks \['age', 'fnlwgt'\]"),
]


@pytest.mark.parametrize("name, edit, message", RECIPES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(RECIPES)])
def test_sec_an_export_whose_recipe_does_not_fit_its_model_is_refused(exported, tmp_path, name, edit, message):
    path = _tampered_export(exported, name, edit, tmp_path)
    with pytest.raises(ExportError, match=message) as e:
        load_learner(path)
    assert str(path) in str(e.value)


# ------------------------------------------------------------------- 4. a data recipe saved on its own
@pytest.fixture(scope="module")
def recipe_file(adult, tmp_path_factory):
    """adult's age -> salary DataBlock, fitted and saved on its own with pipekit.save: (recipe, path)."""
    dls = DataBlock(blocks=(pipekit.data.RegressionBlock, CategoryBlock), get_x=ColReader("age"),
                    get_y=ColReader("salary"), splitter=RandomSplitter(seed=42)).dataloaders(adult, bs=64)
    return dls.recipe, pipekit.save(dls.recipe, tmp_path_factory.mktemp("recipe") / "recipe.pipekit")


def test_sec_a_saved_recipe_loads_and_encodes_new_rows_as_the_fitted_one(recipe_file, adult):
    recipe, path = recipe_file
    loaded = pipekit.load(path)
    assert type(loaded) is DataBlock and loaded.n_inp_ == 1
    new = adult.tail(30)
    mine, theirs = recipe.new_datasets(new, with_labels=True), loaded.new_datasets(new, with_labels=True)
    idx = np.arange(len(new))
    for a, b in zip(mine.gather(idx), theirs.gather(idx)):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def _recipe_tampered(path, edit, tmp_path):
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    record = json.loads(files["record.json"])
    edit(record)
    files["record.json"] = json.dumps(record).encode()
    out = tmp_path / "recipe-tampered.pipekit"
    with zipfile.ZipFile(out, "w") as z:
        for n, v in files.items():
            z.writestr(n, v)
    return out


def _a_transform_as_block(r):
    r["state"]["blocks_"][0] = r["state"]["blocks_"][1]["state"]["tfms_"][0]


BARE_RECIPES = [
    (lambda r: r["state"].pop("getters_"), r"field 'state.getters_' is missing: the data recipe, to encode new items, "
                                           r"needs one getter \(or null\) per block"),
    (lambda r: r["state"].pop("blocks_"), r"field 'state.blocks_' is missing"),
    (lambda r: r["state"].update(n_inp_=3), r"field 'state' holds 2 blocks, 2 getters and n_inp_=3: a getter per block "
                                            r"and at most one input per block"),
    (lambda r: r["state"].update(n_inp_=0), r"field 'state.n_inp_' must be the number of inputs \(a positive integer\), "
                                            r"got '0'"),
    (lambda r: r["state"].update(n_inp_=True), r"field 'state.n_inp_' must be the number of inputs"),
    (lambda r: r["state"]["getters_"].pop(), r"holds 2 blocks, 1 getters"),
    (lambda r: r["state"]["getters_"].__setitem__(0, "age"), r"field 'state.getters_' must be one getter"),
    (lambda r: r["state"]["blocks_"][1]["state"].pop("tfms_"),
     r"field 'state.blocks_\[1\]' \(CategoryBlock\) holds no fitted transforms"),
    (_a_transform_as_block, r"field 'state.blocks_' must be the fitted blocks"),
    (lambda r: r["state"].update(batch_tfms_=[r["state"]["blocks_"][1]["state"]["tfms_"][0]]),
     r"field 'state.batch_tfms_' must be the batch transforms"),
    (lambda r: r["state"].update(item_columns_="age"), r"field 'state.item_columns_' must be the training items' column"),
]


@pytest.mark.parametrize("edit, message", BARE_RECIPES, ids=[str(i) for i in range(len(BARE_RECIPES))])
def test_sec_a_tampered_recipe_saved_on_its_own_is_refused_at_load(recipe_file, tmp_path, edit, message):
    """The checks of a recipe's fitted fields are the recipe's own: pipekit.load of a DataBlock file applies the
    ones an export's recipe gets, naming the file and the field from the top of its record."""
    path = _recipe_tampered(recipe_file[1], edit, tmp_path)
    with pytest.raises(ExportError, match=message) as e:
        pipekit.load(path)
    assert str(e.value).startswith(f"{path}: record.json field 'state")


# -------------------------------------------------------------- 5. a table's processing saved on its own
@pytest.fixture(scope="module")
def processor_file(tab, tmp_path_factory):
    """adult's fitted TabularProcessor, saved on its own with pipekit.save: (processor, path)."""
    return tab.processor, pipekit.save(tab.processor, tmp_path_factory.mktemp("procs") / "procs.pipekit")


def test_sec_a_saved_processor_loads_and_processes_new_rows_as_the_fitted_one(processor_file, adult):
    processor, path = processor_file
    loaded = pipekit.load(path)
    new = adult.tail(30)
    assert loaded.transform(new).equals(processor.transform(new))


BARE_PROCESSORS = [
    (lambda s: s.pop("cat_names_"), r"field 'state.cat_names_' is missing: the table's processing, to encode new "
                                    r"items, needs a list of column names"),
    (lambda s: s.update(cont_names_="age"), r"field 'state.cont_names_' must be a list of column names, got 'age'"),
    (lambda s: s.update(y_kind_="os.system"), r"field 'state.y_kind_' must be one of 'category', 'regression', "
                                              r"'none', got 'os.system'"),
    (lambda s: s.update(c_=-1), r"field 'state.c_' must be the target's size"),
    (lambda s: s.update(y_vocab_=["<50k"]), r"field 'state.y_vocab_' must list the target's classes, distinct, at "
                                            r"least two and as many as c_=2, got \['<50k'\]"),
    (lambda s: s.update(y_vocab_=["<50k", "<50k"]), r"field 'state.y_vocab_' must list the target's classes, "
                                                    r"distinct"),
    (lambda s: s.update(y_type_="bool"), r"field 'state.y_vocab_' does not match y_type_='bool'"),
    (lambda s: s.update(y_type_="os.system"), r"field 'state.y_type_' must be one of 'str', 'bool', 'int', 'float'"),
]


@pytest.mark.parametrize("edit, message", BARE_PROCESSORS, ids=[str(i) for i in range(len(BARE_PROCESSORS))])
def test_sec_a_tampered_processor_saved_on_its_own_is_refused_at_load(processor_file, tmp_path, edit, message):
    """The checks of a processor's fitted fields are the processor's own: pipekit.load of a file holding one (as
    process_to_parquet writes) refuses what an export's processor is refused for, naming the file and the field."""
    path = _recipe_tampered(processor_file[1], lambda r: edit(r["state"]), tmp_path)
    with pytest.raises(ExportError, match=message) as e:
        pipekit.load(path)
    assert str(e.value).startswith(f"{path}: record.json field 'state")


def test_sec_a_segmentation_export_whose_codes_do_not_fit_its_model_is_refused(tmp_path):
    """A mask model's last layer gives a score per code: a file listing other codes is refused at load, as a
    classifier's vocabulary is."""
    from pipekit.vision import Resize, SegmentationDataLoaders, unet_learner

    path = D.path("camvid_tiny")
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    dls = SegmentationDataLoaders.from_label_func(
        path, bs=4, fnames=sorted((path / "images").iterdir())[:12], seed=0, valid_pct=0.25,
        label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}", codes=codes, item_tfms=Resize((24, 32)))
    learn = unet_learner(dls, "xresnet18")
    saved = learn.export(tmp_path / "camvid.pipekit")
    assert load_learner(saved).dls.c == len(codes)

    def fewer_codes(recipe):
        block = recipe["state"]["blocks_"][1]
        block["params"]["codes"] = block["params"]["codes"][:-1]

    bad = edited_copy(saved, fewer_codes, tmp_path / "fewer.pipekit", part=lambda record: record["dls"]["recipe"])
    with pytest.raises(ExportError, match=rf"gives {len(codes) - 1} classes .*but the model's last layer gives "
                                          rf"{len(codes)} scores"):
        load_learner(bad)
