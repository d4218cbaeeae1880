"""XGBoost and CatBoost models in pipekit files are checked before their libraries read them.

XGBoost trusts a model's tree tables: a tester's edits of a real export (a child index of a million, a node that
is its own child, a split input of 10**8, a tree assigned to an output the model lacks, a million classes) loaded
and then crashed ``predict`` (SIGSEGV, glibc's "free(): invalid next size"). Each edit here is of a real XGBoost
classifier trained on adult (two categorical inputs, early stopped), loaded in a child process so that a crash
shows as its exit code, and must be refused with an ExportError naming the field. Untouched files, files in the
UBJSON that earlier versions wrote, multiclass, regression and dart models still round-trip bit for bit.

CatBoost's reader takes a JSON model's split indices, leaf counts and target-statistics tables as they are, and
its binary CBM format crashed it when a tester flipped a few bytes: CatBoost models are stored as checked JSON,
each edit of a real three-class model is refused, and CBM is not read.
"""
from __future__ import annotations

import copy
import io
import json
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pipekit
from pipekit.backends.booster_files import model_from_ubjson
from pipekit.core import ExportError

xgb = pytest.importorskip("xgboost")

from pipekit.backends import XGBoost, as_data  # noqa: E402
from test_models_helpers import adult_tab  # noqa: E402


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def with_booster(path: Path, data: bytes, out: Path, field: str = "booster_") -> Path:
    """The file ``path`` with its stored booster (its state's ``field``) replaced by ``data``."""
    files = members(path)
    key = json.loads(files["record.json"])["state"][field]["__array__"]
    arrays = dict(np.load(io.BytesIO(files["arrays.npz"]), allow_pickle=False))
    arrays[key] = np.frombuffer(data, dtype=np.uint8).copy()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files["arrays.npz"] = buf.getvalue()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    tab = adult_tab(1500)
    model = XGBoost("classification", n_estimators=40, max_depth=4, n_jobs=1).fit(tab.train, tab.valid)
    assert model.cat_features_ and 1 <= model.best_iteration_ <= 40
    path = pipekit.save(model, tmp_path_factory.mktemp("xgb") / "xgb.pipekit")
    stored = json.loads(bytes(model.booster_.save_raw(raw_format="json")))
    return model, path, stored, tab


def test_sec_xgboost_files_round_trip_bit_for_bit(export, tmp_path):
    model, path, _, tab = export
    back = pipekit.load(path)
    np.testing.assert_array_equal(back.predict(tab.valid), model.predict(tab.valid))
    assert back.best_iteration_ == model.best_iteration_
    # a file of an earlier version holds the booster as UBJSON: read by pipekit's own reader, checked, and loaded
    old = with_booster(path, bytes(model.booster_.save_raw(raw_format="ubj")), tmp_path / "ubj.pipekit")
    np.testing.assert_array_equal(pipekit.load(old).predict(tab.valid), model.predict(tab.valid))
    # several classes, regression and dart trees
    target = "relationship"
    cats = [c for c in tab.cat_names if c != target]
    tr, va = tab.train, tab.valid
    multi = XGBoost("classification", n_estimators=10, n_jobs=1).fit(
        as_data(tr.xs.drop(target), y=tr.xs[target].to_numpy(), cat_names=cats))
    reg = XGBoost("regression", n_estimators=10, n_jobs=1, params={"booster": "dart"}).fit(
        as_data(tr.xs.drop("age"), y=tr.xs["age"].to_numpy(), cat_names=tab.cat_names))
    for m, rows in ((multi, as_data(va.xs.drop(target), cat_names=cats)),
                    (reg, as_data(va.xs.drop("age"), cat_names=tab.cat_names))):
        again = pipekit.load(pipekit.save(m, tmp_path / "m.pipekit"))
        np.testing.assert_array_equal(again.predict(rows), m.predict(rows))


def _tree(model: dict) -> dict:
    return model["learner"]["gradient_booster"]["model"]["trees"][0]


def _categorical_tree(model: dict) -> dict:
    return next(t for t in model["learner"]["gradient_booster"]["model"]["trees"] if t["categories_nodes"])


def _set(*keys, value):
    def edit(model):
        node = model
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value
    return edit


def _tree_edit(field, change, pick=_tree):
    def edit(model):
        tree = pick(model)
        tree[field] = change(tree[field], tree)
    return edit


def _at(i, v):
    return lambda arr, tree: [v if j == i else x for j, x in enumerate(arr)]


def _first_inner(tree):
    return next(i for i, c in enumerate(tree["left_children"]) if c != -1)


def _swap_back(left, tree):
    """The last internal node's left child pointed at the root."""
    inner = [i for i, c in enumerate(left) if c != -1]
    return [0 if i == inner[-1] else c for i, c in enumerate(left)]


def _same_child(right, tree):
    """The root's right child is its left child too."""
    return [tree["left_children"][0] if i == 0 else c for i, c in enumerate(right)]


PARAM = ("learner", "learner_model_param")
BOOSTER = ("learner", "gradient_booster", "model")
ATTACKS = {
    # the tester's edits: each read or wrote outside XGBoost's buffers
    "a child a million nodes away": (_tree_edit("left_children", _at(0, 10**6)),
                                     r"tree 0.left_children must hold whole numbers in \[-1, "),
    "a node its own child": (_tree_edit("left_children", _at(0, 0)), r"tree 0: a node's child comes before it"),
    "a split input of 10**8": (_tree_edit("split_indices", _at(0, 10**8)),
                               r"tree 0.split_indices must hold whole numbers in \[0, "),
    "a negative child": (_tree_edit("right_children", _at(0, -5)), r"tree 0.right_children must hold"),
    "a tree for an output the model lacks": (_set(*BOOSTER, "tree_info", value=lambda v: [1] + v[1:]),
                                             r"tree_info must hold whole numbers in \[0, 0\]"),
    "a million classes": (_set(*PARAM, "num_class", value="1000000"),
                          r"num_class is 1000000, where a binary model over the state's 2 classes has 0"),
    # what else XGBoost indexes with
    "a child before its parent": (_tree_edit("left_children", _swap_back), r"tree 0: a node's child comes before it"),
    "a node reached twice": (_tree_edit("right_children", _same_child),
                             r"tree 0: its nodes are not one tree"),
    "one child": (_tree_edit("right_children", lambda a, t: [-1 if i == _first_inner(t) else x
                                                            for i, x in enumerate(a)]),
                  r"tree 0: a node has one child"),
    "a wrong parent": (_tree_edit("parents", lambda a, t: a[:1] + [a[1] + 1] + a[2:]),
                       r"tree 0.parents must name each node's parent"),
    "a short table": (_tree_edit("split_conditions", lambda a, t: a[:-1]), r"tree 0.split_conditions must be a list"),
    "more nodes than the tables": (_tree_edit("tree_param", lambda p, t: {**p, "num_nodes": str(int(p["num_nodes"]) + 9)}),
                                   r"tree 0.left_children must be a list of \d+ whole numbers"),
    "a category of 2**31": (_tree_edit("categories", lambda a, t: [2**31] + a[1:], pick=_categorical_tree),
                            r"categories must hold whole numbers in \[0, 16777216\]"),
    "categories past the list": (_tree_edit("categories_sizes", lambda a, t: [a[0] + 10**6] + a[1:],
                                            pick=_categorical_tree),
                                 r"categories_sizes must hold whole numbers in \[0, "),
    "a categorical split the list does not name": (_tree_edit("categories_nodes", lambda a, t: [a[0] + 1] + a[1:],
                                                              pick=_categorical_tree),
                                                   r"categories_nodes must list the tree's categorical splits"),
    "a categorical split on a number input": (_set("learner", "feature_types", value=lambda v: ["q"] * len(v)),
                                              r"feature_types must mark the model's categorical inputs"),
    "a tree over more inputs": (_tree_edit("tree_param", lambda p, t: {**p, "num_feature": "99"}),
                                r"tree 0.tree_param.num_feature must be the model's"),
    "more trees than listed": (_set(*BOOSTER, "gbtree_model_param", "num_trees", value="1000"),
                               r"num_trees must be the \d+ trees the model holds"),
    "rounds past the trees": (_set(*BOOSTER, "iteration_indptr", value=lambda v: v[:-1] + [v[-1] + 5]),
                              r"iteration_indptr must hold whole numbers in"),
    "a base score of NaN": (_set(*PARAM, "base_score", value="[nan]"), r"base_score must hold 1 finite number"),
    "a multiclass objective": (_set("learner", "objective", "name", value="multi:softprob"),
                               r"learner.objective must name a binary objective"),
    "a linear booster": (_set("learner", "gradient_booster", "name", value="gblinear"),
                         r"gradient_booster.name must be 'gbtree' or 'dart'"),
    "an unknown tree field": (lambda m: _tree(m).__setitem__("multi_strategy", 1),
                              r"tree 0 must have the keys .*unknown \['multi_strategy'\]"),
    "category names to re-code": (_set(*BOOSTER, "cats", "enc", value=[["a"]]), r"model.cats must be empty"),
    # a classifier's outputs must be probabilities: raw scores came back as "probabilities" of -0.19 and 1.19
    "an objective of raw scores": (_set("learner", "objective", "name", value="binary:logitraw"),
                                   r"learner.objective must name a binary objective \(binary:logistic, reg:logistic\)"),
}


_LOAD_EACH = """
import sys
import pipekit
from pipekit.core import ExportError
for path in sys.argv[1:]:
    try:
        pipekit.load(path)
    except ExportError as e:
        print("REFUSED", str(e).replace("\\n", " "), flush=True)
        continue
    print("LOADED", path, flush=True)
"""


def loaded_in_a_child(path: Path, stored: dict, edits: list, tmp_path: Path, field: str) -> tuple[list[Path], list[str]]:
    """Copies of the file ``path`` with its model (``stored``, the state's ``field``) edited by each of ``edits`` (a
    function changing the model, or the bytes to store instead), each loaded in a child process: their paths and
    the child's line for each (a crash shows as its exit code)."""
    paths = []
    for k, edit in enumerate(edits):
        if isinstance(edit, bytes):
            data = edit
        else:
            model = copy.deepcopy(stored)
            edit(model)
            assert model != stored
            data = json.dumps(model).encode()
        paths.append(with_booster(path, data, tmp_path / f"attack{k}.pipekit", field=field))
    run = subprocess.run([sys.executable, "-c", _LOAD_EACH, *map(str, paths)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"the child process died (exit code {run.returncode}): {run.stderr[-800:]}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) == len(edits), run.stdout + run.stderr
    return paths, lines


def test_sec_edited_xgboost_models_are_refused_before_xgboost_reads_them(export, tmp_path):
    _, path, stored, _ = export
    paths, lines = loaded_in_a_child(path, stored, [edit for edit, _ in ATTACKS.values()], tmp_path, "booster_")
    assert len(lines) == len(ATTACKS)
    for line, p, (name, (_, said)) in zip(lines, paths, ATTACKS.items()):
        assert line.startswith(f"REFUSED {p}: record.json: XGBoost: "), (name, line)
        assert re.search(said, line), (name, said, line)


def test_sec_xgboost_json_and_ubjson_are_read_strictly(export, tmp_path):
    """The two formats are parsed by pipekit: a key named twice (which two readers could resolve differently), a
    count larger than the bytes left, a cut-off document and deep nesting are refused before XGBoost sees them."""
    model, path, stored, _ = export
    text = json.dumps(stored)
    twice = text.replace('"learner": {', '"learner": {"attributes": {}, ', 1)
    ubj = bytes(model.booster_.save_raw(raw_format="ubj"))
    assert model_from_ubjson(ubj) == json.loads(json.dumps(model_from_ubjson(ubj)))
    huge = b"{U\x01a[$d#L" + struct.pack(">q", 10**12) + b"\x00" * 8 + b"}"
    deep = b"[" * 40 + b"]" * 40
    for data, said in [(twice.encode(), "names 'attributes' twice"), (huge, "declares 1000000000000 entries"),
                       (ubj[: len(ubj) // 2], "ends early"), (deep, "nests more than 16 levels"),
                       (b"{U\x01a[$H#U\x01\x00}", "unknown value type 'H'"),
                       # values of no bytes: 9 bytes declared millions of nulls, and the reader built them all
                       (b"{U\x01a[$Z#l\x00\x0f\x42\x40}", "container typed 'Z' at byte 6, whose values take no bytes"),
                       (text.replace("0.5", "NaN", 1).encode() if "0.5" in text else b'{"a": NaN}', "NaN")]:
        with pytest.raises(ExportError, match=re.escape(said)):
            pipekit.load(with_booster(path, data, tmp_path / "x.pipekit"))


def test_sec_a_best_iteration_past_the_stored_rounds_is_refused(export, tmp_path):
    from file_edits import edited_copy

    _, path, _, _ = export
    bad = edited_copy(path, lambda r: r["state"].__setitem__("best_iteration_", 10**6), tmp_path / "b.pipekit")
    with pytest.raises(ExportError, match=r"best_iteration_"):
        pipekit.load(bad)


# ------------------------------------------------------------------------------------------------ CatBoost
@pytest.fixture(scope="module")
def cat_export(tmp_path_factory):
    """A CatBoost classifier of three classes on adult (relationship from the rest): one-hot categories, target
    statistics of single categories and of combinations, symmetric trees of depth 6."""
    pytest.importorskip("catboost")
    from pipekit.backends import CatBoost

    tab = adult_tab(1500)
    target = "relationship"
    cats = [c for c in tab.cat_names if c != target]
    y = tab.train.xs[target].to_numpy() % 3
    model = CatBoost("classification", n_estimators=40, depth=6, n_jobs=1,
                     params={"one_hot_max_size": 4, "max_ctr_complexity": 2}).fit(
        as_data(tab.train.xs.drop(target), y=y, cat_names=cats))
    rows = as_data(tab.valid.xs.drop(target), cat_names=cats)
    path = pipekit.save(model, tmp_path_factory.mktemp("cb") / "cb.pipekit")
    stored = json.loads(model.model_to_data().tobytes())
    kinds = {s["split_type"] for t in stored["oblivious_trees"] for s in t["splits"]}
    assert kinds == {"FloatFeature", "OneHotFeature", "OnlineCtr"}, kinds
    assert any(len(c["elements"]) > 1 for c in stored["features_info"]["ctrs"])  # a combination of categories
    return model, path, stored, rows


def test_sec_catboost_files_round_trip_bit_for_bit(cat_export, tmp_path):
    """The fitted model predicts as its file does (CatBoost's JSON reader reads some 17-digit numbers a bit off,
    so the leaf values are kept to 15 digits), a loaded model saves the same bytes, and a binary classifier and a
    regressor round-trip too."""
    from pipekit.backends import CatBoost

    model, path, _, rows = cat_export
    back = pipekit.load(path)
    np.testing.assert_array_equal(back.predict(rows), model.predict(rows))
    assert np.array_equal(back.model_to_data(), model.model_to_data())
    tab = adult_tab(1500)
    for m, data in ((CatBoost("classification", n_estimators=30, n_jobs=1).fit(tab.train, tab.valid), tab.valid),
                    (CatBoost("regression", n_estimators=30, n_jobs=1).fit(
                        as_data(tab.train.xs.drop("age"), y=tab.train.xs["age"].to_numpy(), cat_names=tab.cat_names)),
                     as_data(tab.valid.xs.drop("age"), cat_names=tab.cat_names))):
        again = pipekit.load(pipekit.save(m, tmp_path / "m.pipekit"))
        np.testing.assert_array_equal(again.predict(data), m.predict(data))


def _cb_tree(model, kind="FloatFeature"):
    return next(t for t in model["oblivious_trees"] if any(s["split_type"] == kind for s in t["splits"]))


def _cb_split(model, kind):
    return next(s for s in _cb_tree(model, kind)["splits"] if s["split_type"] == kind)


def _cb_table(model):
    return next(iter(model["ctr_data"].values()))


def _cb_borders_ctr(model):
    return next(c for c in model["features_info"]["ctrs"] if c["ctr_type"] == "Borders")


CB_ATTACKS = {
    "a split index past the binary features": (lambda m: _cb_split(m, "FloatFeature").__setitem__("split_index", 10**6),
                                              r"split_index must be a whole number in \[0, \d+\]"),
    "a split index of another split": (lambda m: _cb_split(m, "OnlineCtr").__setitem__("split_index", 0),
                                       r"split_index 0 is not the split it describes"),
    "too few leaf values": (lambda m: _cb_tree(m).__setitem__("leaf_values", _cb_tree(m)["leaf_values"][:-3]),
                            r"leaf_values must be a list of \d+ finite numbers"),
    "a depth of 17": (lambda m: _cb_tree(m)["splits"].extend([_cb_tree(m)["splits"][0]] * 13),
                      r"splits must list at most 16 splits"),
    "a table of part rows": (lambda m: _cb_table(m)["hash_map"].append(5), r"hash_map must hold one or more rows"),
    "an empty table": (lambda m: _cb_table(m).__setitem__("hash_map", []), r"hash_map must hold one or more rows"),
    "a wrong stride": (lambda m: next(t for t in m["ctr_data"].values() if t["hash_stride"] == 2).__setitem__(
        "hash_stride", 3), r"hash_stride must be 2 for a Counter statistic"),
    "a target border past the classes": (lambda m: _cb_borders_ctr(m).__setitem__("target_border_idx", 7),
                                         r"a split reads target border 7 of a Borders statistic"),
    "a hash that is not a number": (lambda m: _cb_table(m)["hash_map"].__setitem__(0, "-1"),
                                    r"every row must start with a category hash"),
    "a missing table": (lambda m: m["ctr_data"].pop(next(iter(m["ctr_data"]))),
                        r"ctr_data must hold one table for each statistic"),
    "a statistic of a category past the inputs": (
        lambda m: m["features_info"]["ctrs"][0]["elements"][0].__setitem__("cat_feature_index", 99),
        r"cat_feature_index must be a whole number in \[0, \d\]"),
    "an input at another column": (lambda m: m["features_info"]["float_features"][0].__setitem__("flat_feature_index", 9),
                                   r"float_features\[0\] must be number input 0"),
    "another column's name": (lambda m: m["features_info"]["float_features"][0].__setitem__("feature_id", "evil"),
                              r"float_features\[0\].feature_id must be"),
    "falling borders": (lambda m: m["features_info"]["float_features"][0]["borders"].reverse(),
                        r"float_features\[0\].borders must rise"),
    "asymmetric trees": (lambda m: m.__setitem__("trees", m.pop("oblivious_trees")), r"unknown \['trees'\]"),
    "a regression loss": (lambda m: m["model_info"]["params"]["loss_function"].__setitem__("type", "RMSE"),
                          r"loss_function must name a multiclass loss"),
    "other classes": (lambda m: m["model_info"]["class_params"].__setitem__("class_to_label", [0, 5, 1]),
                      r"class_params must be those of pipekit's 3 class codes"),
    "a bias per output too few": (lambda m: m["scale_and_bias"][1].pop(), r"bias must be a list of 3 finite numbers"),
    "a long text in the parameters": (lambda m: m["model_info"]["params"].__setitem__("note", "x" * 1000),
                                      r"holds a text of more than 256 characters"),
    # CatBoost's reader stopped at the escape of a lone surrogate and loaded the trees before it, without the
    # statistics' tables they read: predict crashed (SIGSEGV)
    "a lone surrogate in the parameters": (lambda m: m["model_info"]["params"].__setitem__("zz", "\ud800"),
                                           r"model_info.params.zz holds a text that is not printable as it stands"),
    "a combination's border the input lacks": (
        lambda m: m["features_info"]["ctrs"][0]["elements"].append(
            {"border": 12345.5, "combination_element": "float_feature", "float_feature_index": 0}),
        r"ctrs\[0\].elements\[\d\].border is not one of float input 0's borders"),
}


def test_sec_edited_catboost_models_are_refused_before_catboost_reads_them(cat_export, tmp_path):
    """CatBoost reads a JSON model's split indices, leaf counts and statistics' tables as they are: each edit is
    refused in a child process (a crash would show as its exit code), as is the binary CBM format a tester's
    flipped bytes crashed CatBoost's reader with."""
    model, path, stored, _ = cat_export
    edits = [edit for edit, _ in CB_ATTACKS.values()] + [b"CBM1" + bytes(64)]
    paths, lines = loaded_in_a_child(path, stored, edits, tmp_path, "model_")
    said = [s for _, s in CB_ATTACKS.values()] + [r"in CatBoost's binary format, which earlier pipekit versions"]
    assert len(lines) == len(said)
    for line, p, name, pattern in zip(lines, paths, [*CB_ATTACKS, "CBM"], said):
        assert line.startswith(f"REFUSED {p}: record.json: CatBoost: "), (name, line)
        assert re.search(pattern, line), (name, pattern, line)
