"""What a file holds is checked against what it will be used with before anything is set: a tampered or
mismatched file is an ExportError naming the file and the field, never a raw KeyError/TypeError/IndexError/
RuntimeError at load, nor a model that loads and then fails (or answers wrongly) at predict.

Real data: a tabular learner on adult_sample (checkpoints).
"""
from __future__ import annotations

import copy

import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.archive import read_pipekit, write_archive
from pipekit.core.errors import ExportError
from pipekit.data import RandomSplitter
from pipekit.data.seed import set_seed
from pipekit.tabular import Tabular, tabular_learner

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
