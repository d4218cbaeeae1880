"""Tabular nets read from files (a saved TorchTabular, a tabular_learner export): the stored layer sizes are
checked against the stored weights before any module is built, so a small file cannot make pipekit build a net of
hundreds of thousands of layers (a minute and gigabytes before the weights were compared); a y_range or config
value the net cannot use is refused with the field named, at load and as a parameter."""
from __future__ import annotations

import io
import json
import math
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load, save

import pipekit
from pipekit.core import ExportError, ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path as dataset_path
from pipekit.ensemble import TorchTabular
from pipekit.learn import load_learner
from pipekit.tabular import Tabular, TabularModel, tabular_learner
from file_edits import edited_copy

CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONTS = ["age", "fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    df = pl.read_csv(dataset_path("adult_sample") / "adult.csv").head(1500)
    tab = Tabular(df, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=42))
    out = tmp_path_factory.mktemp("tabnet")
    net = TorchTabular("classification", layers=[8, 4], epochs=1, seed=0).fit(tab.train)
    pipekit.save(net, out / "net.pipekit")
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[8, 4])
    learn.export(out / "learn.pipekit")
    return {"net": out / "net.pipekit", "learn": out / "learn.pipekit", "rows": df.tail(20).drop("salary"), "out": out}


def craft(base: Path, out: Path, edit) -> Path:
    return edited_copy(base, edit, out)


def refused_quickly(load, path: Path, *named: str) -> str:
    """``load(path)`` raises an ExportError naming each of ``named``, in well under the CPU time (a machine busy with
    other work does not count), with no long wait, and memory that building the net the record asks for takes."""
    tracemalloc.start()
    start, began = time.process_time(), time.perf_counter()
    try:
        with pytest.raises(ExportError) as e:
            load(path)
        took, waited = time.process_time() - start, time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took < 5 and waited < 110, f"refused after {took:.1f}s of CPU time, {waited:.0f}s waited"
    assert peak < 100 << 20, f"peak {peak >> 20} MB of Python allocations before refusing"
    for n in named:
        assert n in str(e.value), str(e.value)
    return str(e.value)


def test_sec_saved_net_with_many_layers_is_refused_before_building(files):
    path = craft(files["net"], files["out"] / "many.pipekit", lambda r: r["params"].update(layers=[1] * 30000))
    msg = refused_quickly(pipekit.load, path, "params.layers", "30000", "[8, 4]")
    assert "do not match" not in msg
    huge = craft(files["net"], files["out"] / "huge.pipekit", lambda r: r["params"].update(layers=[2**40, 2**40]))
    refused_quickly(pipekit.load, huge, "params.layers", "1099511627776")
    assert pipekit.load(files["net"]).layers == [8, 4]  # the untouched file still loads


def test_sec_learner_export_with_many_layers_is_refused_before_building(files):
    for name, layers in (("many", [1] * 30000), ("wide", [100000, 100000]), ("huge", [2**40]), ("fewer", [8])):
        path = craft(files["learn"], files["out"] / f"l_{name}.pipekit",
                     lambda r, ls=layers: r["arch"]["config"].update(layers=ls))
        refused_quickly(load_learner, path, "arch.config.layers", "[8, 4]")
    path = craft(files["learn"], files["out"] / "l_out.pipekit", lambda r: r["arch"]["config"].update(out_sz=10**9))
    refused_quickly(load_learner, path, "arch.config.out_sz")
    learn = load_learner(files["learn"])
    assert learn.get_preds(dl=learn.dls.test_dl(files["rows"]))[0].shape == (20, 2)


def test_sec_learner_export_with_a_nan_y_range_is_refused(files):
    for bad in ([math.nan, 1.0], [0.0, math.inf], [2.0, 1.0], [1.0, 1.0], ["a", "b"], [0.0]):
        path = craft(files["learn"], files["out"] / "l_yr.pipekit",
                     lambda r, b=bad: r["arch"]["config"].update(y_range=b))
        refused_quickly(load_learner, path, "arch.config.y_range")


def test_sec_learner_export_config_types_are_checked(files):
    for key, bad in (("ps", [3.0, 2.0]), ("ps", [0.1]), ("embed_p", 7), ("use_bn", "yes"), ("bn_final", 1),
                     ("n_cont", -3), ("act_cls", "os.system")):
        path = craft(files["learn"], files["out"] / "l_cfg.pipekit",
                     lambda r, k=key, b=bad: r["arch"]["config"].update({k: b}))
        refused_quickly(load_learner, path, "arch.config", key)


def test_sec_embedding_tables_must_be_the_columns_categories(files):
    """A saved net's embedding sizes swapped between two columns still fill the stored table, and predict read one
    column's codes in the other's table (an IndexError past its rows, or other predictions); each table's rows must
    be its column's categories, in the learner's export and in a saved TorchTabular."""
    def swap(sizes):
        return [sizes[1], sizes[0], *sizes[2:]]

    path = craft(files["learn"], files["out"] / "l_emb.pipekit",
                 lambda r: r["arch"]["config"].update(emb_szs=swap(r["arch"]["config"]["emb_szs"])))
    refused_quickly(load_learner, path, "field 'arch.config.emb_szs[0]' has 17 rows, but column 'workclass' is "
                                       "coded into 9 categories")
    path = craft(files["net"], files["out"] / "emb.pipekit",
                 lambda r: r["state"].update(emb_szs_=swap(r["state"]["emb_szs_"])))
    refused_quickly(pipekit.load, path, "field 'emb_szs_[0]' has 17 rows, but column 'workclass' is coded into 9")


@pytest.mark.parametrize("y_range", [[math.nan, 1.0], [0.0, math.inf], [3.0, 1.0], [1, 1], ["a", "b"], [1.0]])
def test_sec_torchtabular_y_range_must_be_finite_and_increasing(files, y_range):
    with pytest.raises(ParameterError, match="y_range"):
        TorchTabular("regression", y_range=y_range)
    path = craft(files["net"], files["out"] / "yr.pipekit", lambda r: r["params"].update(y_range=y_range))
    refused_quickly(pipekit.load, path, "y_range")
    path = craft(files["net"], files["out"] / "yr_state.pipekit", lambda r: r["state"].update(y_range_=y_range))
    refused_quickly(pipekit.load, path, "y_range_")
    with pytest.raises(ParameterError, match="y_range"):
        TabularModel([(3, 2)], 1, 1, layers=[4], y_range=y_range)
    assert TorchTabular("regression", y_range=[0, 1.5]).y_range == [0, 1.5]


@pytest.mark.parametrize("config, named", [
    ({"use_bn": "yes"}, "config.use_bn"), ({"bn_cont": 0}, "config.bn_cont"), ({"bn_final": None}, "config.bn_final"),
    ({"embed_p": 1.0}, "config.embed_p"), ({"embed_p": math.nan}, "config.embed_p"), ({"ps": [5.0, -1.0]}, "config.ps"),
    ({"ps": "os.system"}, "config.ps"),
    ({"bogus": 1}, "'ps', 'embed_p', 'y_range', 'use_bn', 'bn_final', 'bn_cont', 'act_cls', 'lin_first']"),
    ({"y_range": [1, 0]}, "config.y_range"), ({"y_range": [0, math.inf]}, "config.y_range"),
    ({"act_cls": "torch.nn.GELU"}, "config.act_cls"), ({"body": None}, "config.body is not taken")])
def test_sec_torchtabular_config_keys_and_types_are_checked(files, config, named):
    with pytest.raises(ParameterError) as e:
        TorchTabular("classification", config=config)
    assert named in str(e.value)
    path = craft(files["net"], files["out"] / "cfg.pipekit", lambda r: r["params"].update(config=config))
    refused_quickly(pipekit.load, path, named)


def test_sec_tabular_model_checks_its_options():
    for kw in ({"use_bn": "yes"}, {"embed_p": 1.5}, {"ps": [0.1, 2.0]}, {"bn_cont": "no"}):
        with pytest.raises(ParameterError, match=next(iter(kw))):
            TabularModel([(3, 2)], 1, 2, layers=[4, 4], **kw)
    good = TabularModel([(3, 2)], 1, 2, layers=[4, 4], ps=[0.1, 0.0], embed_p=0.2, use_bn=False, y_range=[0, 5])
    out = good.eval()(torch.tensor([[1], [2]]), torch.randn(2, 1))
    assert out.shape == (2, 2) and bool(((out > 0) & (out < 5)).all())
    assert np.isfinite(out.detach().numpy()).all()


def test_sec_collab_nets_are_checked_with_their_own_arguments():
    from pipekit.learn.registry import arch_spec
    from pipekit.tabular.collab import EmbeddingNN

    model = EmbeddingNN([(5, 3), (6, 4)], layers=[8])
    _, config = arch_spec(model)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    EmbeddingNN.check_stored(config, shapes, "arch.config")  # its own keys (classes, user_name, ...) are taken
    with pytest.raises(ExportError, match=r"'arch.config.layers' has 100000 hidden layer size\(s\)"):
        EmbeddingNN.check_stored(dict(config, layers=[1] * 100000), shapes, "arch.config")
    with pytest.raises(ExportError, match=r"'arch.config' has unknown key\(s\) \['n_factors'\]"):
        EmbeddingNN.check_stored(dict(config, n_factors=3), shapes, "arch.config")


def test_sec_mlp_layers_are_checked_against_the_stored_weights():
    from pipekit.learn.nets import MLP

    model = MLP(4, 2, layers=[8, 3], use_bn=True)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    MLP.check_stored({"n_in": 4, "n_out": 2, "layers": [8, 3], "use_bn": True}, shapes, "arch.config")
    start = time.process_time()  # CPU time: a busy machine does not count
    for layers in ([1] * 200000, [8], [8, 2**40], [8, True]):
        with pytest.raises(ExportError, match=r"'arch.config.layers'"):
            MLP.check_stored({"n_in": 4, "n_out": 2, "layers": layers}, shapes, "arch.config")
    assert time.process_time() - start < 5


def test_sec_collab_vocabularies_from_a_file_are_checked(tmp_path):
    """A collab model looks ids up in the vocabularies stored in its arguments: a non-text id, a duplicate, no
    '#na#' first, or more ids than embedding rows (a lookup past the weights) are refused at load."""
    from pipekit.tabular import CollabDataLoaders, collab_learner

    ratings = pl.read_csv(dataset_path("movie_lens_sample") / "ratings.csv").head(1500)
    for use_nn in (False, True):
        learn = collab_learner(CollabDataLoaders.from_df(ratings, seed=0, bs=64), n_factors=4, use_nn=use_nn,
                               **({"layers": [8]} if use_nn else {}))
        good = tmp_path / f"collab{use_nn}.pipekit"
        learn.export(good)
        for name, edit in (("int", lambda v: v.__setitem__(1, 7)), ("dup", lambda v: v.__setitem__(2, v[1])),
                           ("na", lambda v: v.__setitem__(0, "x")), ("longer", lambda v: v.extend(["a", "b"]))):
            path = craft(good, tmp_path / f"c_{name}.pipekit",
                         lambda r, e=edit: e(r["arch"]["config"]["classes"]["movieId"]))
            with pytest.raises(ExportError, match=r"classes\['movieId'\]"):
                load_learner(path)
        loaded = load_learner(good)
        movies = ratings["movieId"].unique().sort().head(3).to_list()
        assert torch.equal(loaded.model.weight(movies), learn.model.weight(movies))


def _with_members(base: Path, out: Path, **replace: bytes) -> Path:
    with zipfile.ZipFile(base) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(out, "w") as z:
        for name, data in {**members, **replace}.items():
            z.writestr(name, data)
    return out


@pytest.mark.parametrize("edit, said", [
    (lambda w: w.update({k: v.long() for k, v in w.items() if v.is_floating_point()}), "holds int64 numbers where "
                                                                                        "the model keeps float32"),
    (lambda w: w["bn_cont.bias"].fill_(math.nan), "'bn_cont.bias' holds numbers that are not finite"),
    (lambda w: w["bn_cont.running_var"].fill_(-1.0), "'bn_cont.running_var' holds a variance below zero")])
def test_sec_weights_a_net_cannot_predict_with_are_refused(files, edit, said):
    """Integer weights in a float net loaded and predicted 0.5/0.5 for every row, a NaN weight gave NaN
    probabilities from a saved TorchTabular and a negative running variance NaN from get_preds, all without an
    error: each is refused at load, in a learner's export and in a saved net."""
    with zipfile.ZipFile(files["learn"]) as z:
        weights = load(z.read("weights.safetensors"))
    edit(weights)
    path = _with_members(files["learn"], files["out"] / "l_w.pipekit", **{"weights.safetensors": save(weights)})
    refused_quickly(load_learner, path, "the weights (weights.safetensors) cannot predict", said)
    # the saved TorchTabular keeps its weights as arrays of arrays.npz, named in its record
    with zipfile.ZipFile(files["net"]) as z:
        record, arrays = z.read("record.json"), dict(np.load(io.BytesIO(z.read("arrays.npz"))))
    refs = json.loads(record)["state"]["model_"]["weights"]
    tensors = {k: torch.from_numpy(arrays[v["__array__"]].copy()) for k, v in refs.items()}
    edit(tensors)
    for k, v in refs.items():
        arrays[v["__array__"]] = tensors[k].numpy()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = _with_members(files["net"], files["out"] / "n_w.pipekit", **{"arrays.npz": buf.getvalue()})
    refused_quickly(pipekit.load, path, "the weights cannot predict", said)
