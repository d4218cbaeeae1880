"""A model file is data: no name in it reaches an import or a call that pipekit did not list.

Model files are pipekit files (manifest.json, record.json and arrays.npz in a zip) rebuilt by
``Component.from_record``, the one guarded loader. Every module-level callable of scikit-learn (each
submodule, with the names it imports, such as os or subprocess functions), of builtins, os, subprocess,
importlib, pathlib and shutil is named in a crafted model file as the estimator (its module and name),
at the top level and as an ensemble member, and as the record's class (short and full name); the
parameters are built to create a marker file (or delete a victim file) if the callable ran. Every load
must raise ExportError naming it, and the marker must not appear. Legitimate exports still round-trip
with identical predictions on adult.
"""
from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
import io
import itertools
import json
import os
import pkgutil
import re
import shutil
import struct
import subprocess
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_models_helpers import adult

import pipekit
from pipekit.backends import GBM, RandomForest, SklearnModel, load_model, loadable_estimators
from pipekit.core import Component, ExportError
from pipekit.ensemble import MeanEnsemble, StackingEnsemble, WeightedEnsemble

from_record = Component.from_record

OTHER_MODULES = ["builtins", "os", "subprocess", "importlib", "pathlib", "shutil"]


def _sklearn_modules() -> list[str]:
    """Every module of the installed scikit-learn, found on disk without importing any. Its test suites
    (``tests`` packages, ``conftest``) are left out: they need pytest plugins and skip themselves on import."""
    root = Path(importlib.util.find_spec("sklearn").origin).parent
    names = ["sklearn"]

    def walk(folder: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(folder)], prefix):
            leaf = info.name.rsplit(".", 1)[-1]
            if leaf in ("tests", "conftest"):
                continue
            names.append(info.name)
            if info.ispkg:
                walk(folder / leaf, info.name + ".")

    walk(root, "sklearn.")
    return sorted(names)


SKLEARN_MODULES = _sklearn_modules()


def test_sec_the_sweep_covers_scikit_learn():
    # the parametrised sweep below must not shrink to nothing if the walk breaks
    assert len(SKLEARN_MODULES) > 300
    assert {"sklearn.utils", "sklearn.linear_model._logistic", "sklearn.ensemble._forest"} <= set(SKLEARN_MODULES)


# ------------------------------------------------------------------------------------------ crafted files
def payload(fn, marker: Path, victim: Path) -> dict:
    """Keyword arguments that make ``fn`` create ``marker`` (or delete ``victim``) if it is ever called."""
    shell = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    by_name = {"command": shell, "cmd": shell, "args": shell, "shell": True, "source": code, "code": code,
               "expression": code, "object": code, "file": str(marker), "filename": str(marker),
               "fname": str(marker), "dst": str(marker), "mode": "w", "path": str(victim), "src": str(victim),
               "name": str(marker)}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {"command": shell, "args": shell, "shell": True}
    out = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            out.update(args=shell, shell=True)
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and (p.default is p.empty or p.name in by_name):
            out[p.name] = by_name.get(p.name, str(marker))
    return out


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def stored_zip(members: dict[str, bytes]) -> bytes:
    """A zip of stored members, packed by hand (what zipfile writes, 20x faster for thousands of files)."""
    out, central = bytearray(), bytearray()
    for name, data in members.items():
        nm, crc, off = name.encode(), zlib.crc32(data), len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(nm), 0)
        out += nm + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, len(data), len(data),
                               len(nm), 0, 0, 0, 0, 0, off) + nm
    n = len(members)
    return bytes(out + central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), 0))


MANIFEST = json.dumps({"format": "pipekit", "version": 2, "kind": "component", "pipekit": "0.1.0"}).encode()


def write_model_file(path: Path, record: dict, arrays: dict | None = None) -> Path:
    """A model file as ``pipekit.save`` writes it (manifest, record as JSON, arrays.npz), built in memory.
    Callers give a fresh name each time: rewriting a file in place makes ext4 flush it (2 ms a file)."""
    members = {"manifest.json": MANIFEST, "record.json": json.dumps(record).encode()}
    if arrays:
        members["arrays.npz"] = stored_zip({f"{k}.npy": _npy(np.asarray(v)) for k, v in arrays.items()})
    path.write_bytes(stored_zip(members))
    return path


#: the arrays the crafted records below refer to
ARRAYS = {"classes": np.arange(2), "weights": np.ones(1), "coef": np.zeros((1, 1)), "intercept": np.zeros(1)}
#: a fitted LogisticRegression's attributes over one feature, two classes
LR_FITTED = {"attributes": {"coef_": {"__array__": "coef"}, "intercept_": {"__array__": "intercept"},
                            "classes_": {"__array__": "classes"}}}


def sklearn_record(module: str, name: str, params: dict, model: dict | None = None) -> dict:
    """A fitted SklearnModel's record, well formed except for the estimator it names."""
    return {"class": "pipekit.backends.SklearnModel",
            "params": {"estimator": {"sklearn_estimator": f"{module}.{name}", "params": params},
                       "task": "classification", "name": None},
            "state": {"feature_names_": ["a"], "cat_features_": [], "classes_": {"__array__": "classes"},
                      "procs_signature_": None, "valid_score_": None,
                      "model_": {"attributes": {}} if model is None else model}}


def ensemble_record(member: dict) -> dict:
    return {"class": "pipekit.ensemble.WeightedEnsemble",
            "params": {"members": [member], "metric": None, "n_iter": 10, "check_columns": True},
            "state": {"weights_": {"__array__": "weights"}, "selection_": [0], "processor_": None}}


def callables(module) -> list[tuple[str, object]]:
    out = []
    for name in dir(module):
        try:
            obj = getattr(module, name)
        except Exception:  # a lazy attribute whose import fails is not reachable either
            continue
        if callable(obj):
            out.append((name, obj))
    return out


# names already loaded from a real file in this session. The loader sees only the strings in a file, and
# a member is read exactly like a top-level model (one read_pipekit, then Component.from_record for every
# record in it), so each distinct name goes through a real file once (as a member too for the system
# modules' names), and every (module, name) pair through from_record, the one guarded function, at every
# level.
_THROUGH_A_FILE: set[str] = set()
_FILE_NUMBER = itertools.count()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "victim").write_text("still here")
    return d


def expect_refused(load, args: tuple, named: str, listed: dict, estimator_of) -> None:
    # try/except rather than pytest.raises: ~45,000 checks, and pytest.raises costs 50 us each
    try:
        model = load(*args)
    except ExportError as e:
        msg = str(e)
        if named not in listed:
            assert f"estimator class {named} is not loadable" in msg, msg
            assert "sklearn.linear_model.LogisticRegression" in msg  # the message says what is accepted
        return
    # only a registered name loads, and it always means the class pipekit registered under that name
    assert named in listed, f"{named} loaded from a crafted file"
    assert type(estimator_of(model)) is listed[named], named


def top(model):
    return model.model_


def inner(model):
    return model.members[0].model_


def expect_not_a_class(record: dict, name: str) -> None:
    try:
        from_record(record, ARRAYS)
    except ExportError as e:
        assert name in str(e), str(e)
        return
    raise AssertionError(f"a record of class {name!r} loaded")


def check_module(modname: str, folder: Path, members_through_files: bool = False) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(modname)
    except ImportError as e:  # an optional dependency of scikit-learn that is not installed
        pytest.skip(f"{modname} cannot be imported here: {e}")
    marker, victim = folder / "marker", folder / "victim"
    listed = loadable_estimators()
    n = 0
    for name, obj in callables(module):
        named = f"{modname}.{name}"
        member = sklearn_record(modname, name, payload(obj, marker, victim))
        ensemble = ensemble_record(member)
        expect_refused(from_record, (member, ARRAYS), named, listed, top)
        expect_refused(from_record, (ensemble, ARRAYS), named, listed, inner)
        for cls_name in (name, named):  # the callable as the record's own class, by short and full name
            expect_not_a_class({**member, "class": cls_name}, cls_name)
        if name not in _THROUGH_A_FILE or members_through_files:
            _THROUGH_A_FILE.add(name)
            k = next(_FILE_NUMBER)
            path = write_model_file(folder / f"top{k}.pipekit", member, ARRAYS)
            expect_refused(load_model, (path,), named, listed, top)
            if members_through_files:
                path = write_model_file(folder / f"ens{k}.pipekit", ensemble, ARRAYS)
                expect_refused(load_model, (path,), named, listed, inner)
        n += 1
    assert not marker.exists(), f"a callable of {modname} ran while loading"
    assert victim.read_text() == "still here", f"a callable of {modname} deleted a file while loading"
    return n


@pytest.mark.parametrize("modname", OTHER_MODULES)
def test_sec_no_system_callable_loads(modname, sweep_dir):
    n = check_module(modname, sweep_dir, members_through_files=True)
    assert n >= 5  # the sweep really ran (importlib has 7 callables, builtins ~150)


@pytest.mark.parametrize("modname", SKLEARN_MODULES)
def test_sec_no_sklearn_callable_loads(modname, sweep_dir):
    check_module(modname, sweep_dir)


def test_sec_the_payloads_would_run_if_called(tmp_path):
    """The crafted parameters are live: calling these callables directly with them does create the marker
    or delete the victim, so an absent marker above means nothing was called."""
    marker, victim = tmp_path / "marker", tmp_path / "victim"
    for fn in (os.system, subprocess.run, subprocess.check_call, builtins.open, shutil.copyfile):
        if fn is shutil.copyfile:
            victim.write_text("x")
        handle = fn(**payload(fn, marker, victim))
        if fn is builtins.open:
            handle.close()
        assert marker.exists(), fn
        marker.unlink()
    victim.write_text("x")
    os.remove(**payload(os.remove, marker, victim))
    assert not victim.exists()


def test_sec_stacking_meta_model_and_nested_members_are_guarded(tmp_path):
    marker = tmp_path / "marker"
    evil = sklearn_record("os", "system", {"command": f"touch {marker}"})
    good = sklearn_record("sklearn.linear_model", "LogisticRegression", {}, LR_FITTED)
    unfitted = {**good, "state": {}}
    meta = {**good, "state": {**good["state"], "feature_names_": ["m0"]}}  # it reads the member's prediction
    stacking = {"class": "pipekit.ensemble.StackingEnsemble",
                "params": {"members": [unfitted], "meta": unfitted, "n_folds": 2, "passthrough": False, "metric": None,
                           "seed": 0},
                "state": {"members_": [good], "meta_model_": meta, "passthrough_columns_": ["a"],
                          "passthrough_cats_": [], "processor_": None}}
    assert isinstance(from_record(stacking, ARRAYS), StackingEnsemble)  # the control: it loads as written
    # the guard holds wherever the record sits: a member or the meta-model, as parameter or fitted state
    for where in (("params", "members", 0), ("params", "meta"), ("state", "members_", 0), ("state", "meta_model_")):
        crafted = json.loads(json.dumps(stacking))
        node = crafted
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = evil
        with pytest.raises(ExportError, match=r"SklearnModel.*estimator class os.system is not loadable"):
            load_model(write_model_file(tmp_path / f"stack_{'_'.join(map(str, where))}.pipekit", crafted, ARRAYS))
    # an ensemble nested as a member goes through the same guard
    nested = ensemble_record(ensemble_record(evil))
    with pytest.raises(ExportError, match=r"SklearnModel.*estimator class os.system is not loadable"):
        load_model(write_model_file(tmp_path / "nested.pipekit", nested, ARRAYS))
    # a tabular net's procs are looked up in pipekit's registry only
    net = {"class": "pipekit.ensemble.TorchTabular", "params": {"task": "classification"},
           "state": {"feature_names_": ["a"], "cat_features_": [], "classes_": {"__array__": "classes"},
                     "emb_szs_": [], "model_": {"weights": {}, "processor": {
                         "class": "pipekit.tabular.TabularProcessor",
                         "params": {"procs": [{"class": "os.system", "params": {"command": f"touch {marker}"},
                                               "state": {}}], "cat_names": ["a"], "cont_names": [], "y_names": ["y"]},
                         "state": {"cat_names_": ["a"], "cont_names_": [], "y_kind_": "category",
                                   "y_vocab_": ["0", "1"], "c_": 2}}}}}
    with pytest.raises(ExportError, match="net.pipekit: record.json: .*'os.system' is not registered"):
        load_model(write_model_file(tmp_path / "net.pipekit", net, ARRAYS))
    assert not marker.exists()


def test_sec_estimator_state_is_only_plain_data(tmp_path):
    coef = {"coef_": {"__array__": "coef"}, "intercept_": {"__array__": "intercept"},
            "classes_": {"__array__": "classes"}}
    arrays = {**ARRAYS, "coef": np.zeros((1, 1)), "intercept": np.zeros(1)}
    ok = sklearn_record("sklearn.linear_model", "LogisticRegression", {"C": 1.0}, {"attributes": coef})
    model = from_record(ok, arrays)  # the control: this state is loadable
    assert type(model.model_).__name__ == "LogisticRegression" and model.model_.C == 1.0
    assert model.predict(pl.DataFrame({"a": [0.0, 1.0]})).shape == (2, 2)

    def refused(record, pattern, arrays=arrays):
        with pytest.raises(ExportError, match=pattern):
            from_record(record, arrays)

    def with_params(params):
        return {**ok, "params": {**ok["params"], "estimator": {**ok["params"]["estimator"], "params": params}}}

    def with_model(model):
        return {**ok, "state": {**ok["state"], "model_": model}}

    refused(with_params({"evil": 1}), r"parameters \['evil'\] are not arguments")
    # values a record can turn into objects (a registered class, an array, a component) are not plain parameters
    for value in ({"__ref__": "pipekit.metrics.Accuracy"}, {"__array__": "coef"},
                  {"class": "pipekit.metrics.Accuracy", "params": {}}):
        refused(with_params({"C": value}), r"parameters \['C'\] are not plain JSON")
    refused(with_params({"C": print}), "unexpected builtin_function_or_method in a record")
    refused(with_params([1]), "'params' must be a JSON object")
    for attr in ("__class__", "__dict__", "_fit_X", "predict", "predict_proba", "coef"):
        refused(with_model({"attributes": {**coef, attr: 1}}), "is not a fitted attribute")
        refused(with_model({"attributes": {**coef, attr: {"__array__": "coef"}}}), "is not a fitted attribute")
    refused(with_model({"attributes": {**coef, "n_iter_": [1, 2]}}), "must be a number, string")
    refused(ok, "must be a number, string", {**arrays, "coef": np.array([print], dtype=object)})
    refused(with_model({"attributes": coef, "fit_X": {"__array__": "coef"}}),
            r"holds \['attributes', 'fit_X'\], but a LogisticRegression state holds exactly \['attributes'\]")
    refused(with_model({"attributes": {**coef, "n_features_in_": 7}}), "fitted on 7 inputs but the file names 1 "
            "features")
    refused({**ok, "state": {**ok["state"], "feature_names_": "a"}}, "feature_names_ must be a non-empty list")


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_sec_pickled_arrays_in_a_model_file_are_never_unpickled(tmp_path):
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    record = sklearn_record("sklearn.linear_model", "LogisticRegression", {},
                            {"attributes": {"coef_": {"__array__": "coef"}}})
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("coef.npy", buf.getvalue())
        z.writestr("classes.npy", _npy(np.arange(2)))
    path = tmp_path / "pickled.pipekit"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", MANIFEST)
        z.writestr("record.json", json.dumps(record))
        z.writestr("arrays.npz", inner.getvalue())
    with pytest.raises(ExportError, match=r"arrays.npz: member 'coef.npy' holds object values"):
        load_model(path)
    assert not marker.exists()


def test_sec_model_files_of_pipekit_0_1_are_refused_with_the_reason(tmp_path):
    """The .npz model files of pipekit 0.1 (JSON metadata plus arrays) are not read: the message says which
    format they are and what to do."""
    path = tmp_path / "old_rf.npz"
    meta = {"class": "RandomForest", "format": 1, "params": {"task": "classification"}}
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), tree_offsets=np.arange(3))
    for load in (load_model, pipekit.load, RandomForest.load):
        with pytest.raises(ExportError, match=r"old_rf.npz was written by pipekit 0.1 \(file format 1\).*"
                                              r"model.export\(path\)"):
            load(path)


# ---------------------------------------------------------------------------------- legitimate exports
@pytest.fixture(scope="module")
def splits():
    return adult()


@pytest.fixture(scope="module")
def fitted(splits):
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier

    tr, va = splits
    return {
        "lr": SklearnModel(LogisticRegression(max_iter=500), "classification").fit(tr),
        "nb": SklearnModel(GaussianNB(), "classification").fit(tr),
        "knn": SklearnModel(KNeighborsClassifier(n_neighbors=15), "classification").fit(tr),
        "extra": SklearnModel(ExtraTreesClassifier(n_estimators=10, min_samples_leaf=5, random_state=0, n_jobs=1),
                              "classification").fit(tr),
        "rf": RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tr, va),
        "gbm": GBM("classification", n_estimators=150, learning_rate=0.1, n_jobs=1).fit(tr, va),
    }


def test_sec_legitimate_models_round_trip_identically(fitted, splits, tmp_path):
    _, va = splits
    for key, model in fitted.items():
        back = load_model(model.export(tmp_path / f"{key}.pipekit"))
        assert type(back) is type(model)
        p = model.predict(va)
        assert p.shape == (len(va.xs), 2) and model.score(va) > 0.75, key  # real models, not placeholders
        np.testing.assert_array_equal(back.predict(va), p, err_msg=key)


def test_sec_legitimate_ensembles_round_trip_identically(fitted, splits, tmp_path):
    tr, va = splits
    weighted = WeightedEnsemble(list(fitted.values()), n_iter=10).fit(va)
    mean = MeanEnsemble([fitted["lr"], fitted["knn"], fitted["rf"]])
    stacking = StackingEnsemble([RandomForest("classification", n_estimators=8, n_jobs=1, oob_score=False),
                                 GBM("classification", n_estimators=40, learning_rate=0.2, n_jobs=1)],
                                n_folds=2, seed=0).fit(_head(tr, 3000))
    for key, ens in {"weighted": weighted, "mean": mean, "stacking": stacking}.items():
        back = load_model(ens.export(tmp_path / f"{key}.pipekit"))
        assert type(back) is type(ens)
        np.testing.assert_array_equal(back.predict(va), ens.predict(va), err_msg=key)
    assert weighted.score(va) > 0.8


def _head(split, n):
    from pipekit.backends import as_data

    return as_data(split).take(np.arange(n))


def test_sec_every_listed_estimator_round_trips(splits, tmp_path):
    """Each class of the allow-list exports and loads back with identical predictions on adult."""
    from sklearn.base import is_classifier

    from pipekit.backends import as_data

    tr, va = (as_data(s).take(np.arange(1500)) for s in splits)
    codes = [c for c in tr.xs.columns if tr.xs[c].dtype.is_integer()]  # non-negative inputs for count models
    assert len(loadable_estimators()) == 26
    for name, cls in sorted(loadable_estimators().items()):
        kw = {"loss": "log_loss"} if cls.__name__ == "SGDClassifier" else {}
        if hasattr(cls(), "random_state"):
            kw["random_state"] = 0
        if hasattr(cls(), "n_estimators"):
            kw["n_estimators"] = 5
        task = "classification" if is_classifier(cls()) else "regression"
        if task == "regression":  # predict age from the other inputs
            d, v = (as_data(s.xs.drop("age"), y=s.xs["age"].to_numpy()) for s in (tr, va))
        elif cls.__name__ in ("MultinomialNB", "ComplementNB"):
            d, v = (as_data(s.xs.select(codes), y=s.y) for s in (tr, va))
        else:
            d, v = tr, va
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the short fits
            model = SklearnModel(cls(**kw), task).fit(d)
        back = load_model(model.export(tmp_path / f"{name}.pipekit"))
        assert type(back.model_) is cls
        np.testing.assert_array_equal(back.predict(v), model.predict(v), err_msg=name)


def test_sec_unlisted_estimators_refuse_to_export(splits, tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    class MyLogistic(LogisticRegression):  # a subclass may override anything: it is not the listed class
        pass

    tr, _ = splits
    for est in (DummyClassifier(), MyLogistic(max_iter=300)):
        model = SklearnModel(est, "classification").fit(tr)
        with pytest.raises(ExportError, match="cannot be exported: a model file names its estimator class, and loading rebuilds only"):
            model.export(tmp_path / "x.pipekit")


def read_model_file(path: Path) -> tuple[dict, dict]:
    with zipfile.ZipFile(path) as z:
        arrays = dict(np.load(io.BytesIO(z.read("arrays.npz")), allow_pickle=False))
        return json.loads(z.read("record.json")), arrays


def test_sec_tree_tables_from_a_file_are_checked(fitted, splits, tmp_path):
    """sklearn walks tree node tables without bounds checks, so a file's child and feature indices are
    checked: children must be later nodes of the same tree, features input columns."""
    _, va = splits
    for key in ("rf", "extra"):
        record, arrays = read_model_file(fitted[key].export(tmp_path / f"{key}.pipekit"))
        tables = {k: v["__array__"] for k, v in record["state"]["model_"]["trees"].items()}
        left, feature = arrays[tables["left_child"]], arrays[tables["feature"]]
        root_children = (int(left[0]), int(arrays[tables["right_child"]][0]))
        n_nodes = int(arrays[tables["offsets"]][1])
        attacks = {
            "out of range": ("left_child", 0, 10**9),
            "into the next tree": ("left_child", 0, n_nodes + 1),
            "a cycle": ("right_child", root_children[0], 0),
            "a leaf with one child": ("right_child", int(np.flatnonzero(left == -1)[0]), 1),
            "feature out of range": ("feature", 0, 10**6),
            "negative feature": ("feature", 0, -5),
        }
        for k, (what, (field, node, value)) in enumerate(attacks.items()):
            bad = {name: v.copy() for name, v in arrays.items()}
            bad[tables[field]][node] = value
            path = write_model_file(tmp_path / f"{key}_bad{k}.pipekit", record, bad)
            with pytest.raises(ExportError) as err:
                load_model(path)
            assert re.search(r"tree 0 node \d+ is malformed", str(err.value)), (key, what, str(err.value))
        assert int(feature[0]) >= 0  # the root splits: the attacks above hit an internal node
    # the trees must split on the columns the file names (predictions skip sklearn's column check)
    record, arrays = read_model_file(tmp_path / "rf.pipekit")
    fewer = json.loads(json.dumps(record))
    fewer["state"]["feature_names_"] = kept = record["state"]["feature_names_"][:1]
    if isinstance(fewer["state"].get("norm_stats_"), dict):  # the scales of the column kept, as the procs give them
        fewer["state"]["norm_stats_"] = {c: v for c, v in fewer["state"]["norm_stats_"].items() if c in kept}
    with pytest.raises(ExportError, match=r"node \d+ is malformed.*an input column below 1"):
        load_model(write_model_file(tmp_path / "rf_nf.pipekit", fewer, arrays))
    offsets_key = record["state"]["model_"]["trees"]["offsets"]["__array__"]
    offsets = arrays[offsets_key].copy()
    offsets[1] = offsets[2]  # an empty tree
    with pytest.raises(ExportError, match="tree offsets must be increasing"):
        load_model(write_model_file(tmp_path / "rf_off.pipekit", record, {**arrays, offsets_key: offsets}))
    # a NaN threshold would send every row one way and a NaN value reach the predictions, with no error
    tables = {k: v["__array__"] for k, v in record["state"]["model_"]["trees"].items()}
    for field, value, said in [("threshold", np.nan, r"tree 0 node 0 splits at threshold nan; a split threshold "
                                                     r"must be a number"),
                               ("values", np.nan, r"tree node values hold NaN or infinite numbers"),
                               ("values", -np.inf, r"tree node values hold NaN or infinite numbers")]:
        bad = {name: v.copy() for name, v in arrays.items()}
        bad[tables[field]][0] = value
        with pytest.raises(ExportError, match=said):
            load_model(write_model_file(tmp_path / "rf_nan.pipekit", record, bad))
    # the untouched file still loads
    np.testing.assert_array_equal(load_model(tmp_path / "rf.pipekit").predict(va), fitted["rf"].predict(va))


def test_trees_fitted_with_missing_values_load(tmp_path):
    """Trees fitted on data with missing values left in (no FillMissing) split the missing rows off at an infinite
    threshold, scikit-learn's own: such a file loads and predicts as the fitted model did."""
    from test_models_helpers import adult_tab

    from pipekit.backends import ExtraTrees
    from pipekit.tabular import Categorify

    tab = adult_tab(4000, procs=(Categorify,))
    assert tab.train.xs["education-num"].null_count() + tab.train.xs["education-num"].is_nan().sum() > 0
    for model in (RandomForest("classification", n_estimators=20, n_jobs=1),
                  ExtraTrees("classification", n_estimators=20, n_jobs=1), GBM("classification", n_estimators=30)):
        model.fit(tab.train)
        if isinstance(model, RandomForest) and not isinstance(model, ExtraTrees):
            thresholds = np.concatenate([e.tree_.threshold for e in model.model_.estimators_])
            assert np.isinf(thresholds).any()  # the case this test is for
        path = model.export(tmp_path / f"{type(model).__name__}.pipekit")
        np.testing.assert_array_equal(load_model(path).predict_proba(tab.valid), model.predict_proba(tab.valid))


def test_sec_lightgbm_text_from_a_file_is_checked_before_lightgbm_reads_it(fitted, splits, tmp_path):
    """LightGBM trusts its trees' indices when predicting (a tampered file read stray memory, looped forever or
    aborted the process): every tree is checked first, and LightGBM's own refusals are ExportErrors."""
    _, va = splits
    record, arrays = read_model_file(fitted["gbm"].export(tmp_path / "gbm.pipekit"))
    key = record["state"]["booster_"]["__array__"]
    text = arrays[key].tobytes().decode()
    assert "num_cat=1" in text or "num_cat=2" in text  # the adult trees split on categories too
    no_sizes = re.sub(r"tree_sizes=[^\n]*\n", "", text)
    attacks = {
        "cut short": (text[: len(text) // 2], r"cut short"),
        "child out of range": (re.sub(r"left_child=-?\d+", "left_child=100000", no_sizes, count=1),
                               r"tree 0: node 0 has child node 100000"),
        "child before its parent": (re.sub(r"left_child=(-?\d+) (-?\d+)", r"left_child=\1 0", no_sizes, count=1),
                                    r"tree 0: node 1 has child node 0"),
        "feature out of range": (re.sub(r"split_feature=\d+", "split_feature=1000000", no_sizes, count=1),
                                 r"tree 0: a split on a feature outside"),
        "huge tree": (re.sub(r"num_leaves=\d+", "num_leaves=100000000", no_sizes, count=1), r"out of range"),
        "a leaf twice": (re.sub(r"right_child=(-?\d+)", "right_child=-1", re.sub(r"left_child=(-?\d+)", "left_child=-1",
                                                                            no_sizes, count=1), count=1),
                         r"do not form a tree|leaf"),
        "category set out of range": (re.sub(r"cat_boundaries=([^\n]*) \d+\n", r"cat_boundaries=\1 999999\n", no_sizes,
                                             count=1), r"category table"),
        "not a number": (re.sub(r"threshold=\S+", "threshold=nope", no_sizes, count=1), r"not a number"),
        "NaN threshold": (re.sub(r"threshold=\S+", "threshold=nan", no_sizes, count=1), r"tree 0: a split threshold "
                          r"is NaN or a leaf value is not a finite number"),
        "NaN leaf": (re.sub(r"leaf_value=\S+", "leaf_value=nan", no_sizes, count=1), r"leaf value is not a finite"),
        "infinite leaf": (re.sub(r"leaf_value=\S+", "leaf_value=inf", no_sizes, count=1), r"leaf value is not a"),
        "infinite category set": (re.sub(r"threshold=(\S+)", "threshold=inf", re.sub(r"decision_type=\S+",
                                  "decision_type=1", no_sizes, count=1), count=1), r"a categorical split points outside"),
        "another model's width": (re.sub(r"max_feature_idx=\d+", "max_feature_idx=2", text), r"for 3 inputs"),
        "LightGBM's own refusal": (re.sub(r"objective=[^\n]*", "objective=binary sigmoid:oops", no_sizes), r"LightGBM"),
    }
    for k, (what, (bad_text, said)) in enumerate(attacks.items()):
        bad = {**arrays, key: np.frombuffer(bad_text.encode(), dtype=np.uint8).copy()}
        with pytest.raises(ExportError, match=said):
            load_model(write_model_file(tmp_path / f"gbm_bad{k}.pipekit", record, bad))
            pytest.fail(f"{what}: loaded")
    # the untouched file still loads and predicts as the model did
    np.testing.assert_array_equal(load_model(tmp_path / "gbm.pipekit").predict(va), fitted["gbm"].predict(va))


def test_sec_a_model_file_does_not_choose_where_pipekit_writes(tmp_path):
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import load_learner
    from pipekit.vision import ImageBlock, Resize, vision_learner

    import pipekit.datasets as D

    mine = tmp_path / "my_cache"
    db = DataBlock(blocks=(ImageBlock(cache_dir=mine), CategoryBlock), get_items=lambda p: get_image_files(p)[::40],
                   get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=Resize(28))
    learn = vision_learner(db.dataloaders(D.path("mnist_tiny"), bs=8, seed=0), "simple_cnn")
    path = learn.export(tmp_path / "digits.pipekit")
    with zipfile.ZipFile(path) as z:
        assert str(mine) not in z.read("record.json").decode()  # this machine's folder is not written
    # a crafted record naming a folder: the folder is not followed
    record = json.loads(zipfile.ZipFile(path).read("record.json"))
    text = json.dumps(record)
    evil = tmp_path / "chosen_by_the_file"
    crafted = text.replace('"blocks": [{"class": "pipekit.vision.ImageBlock", "params": {',
                           f'"blocks": [{{"class": "pipekit.vision.ImageBlock", "params": {{"cache_dir": "{evil}", ')
    crafted = crafted.replace('"blocks_": [{"class": "pipekit.vision.ImageBlock", "params": {',
                              f'"blocks_": [{{"class": "pipekit.vision.ImageBlock", "params": {{"cache_dir": "{evil}", ')
    assert crafted.count(str(evil)) == 2  # the recipe's blocks and the fitted ones
    members = {n: zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist()}
    members["record.json"] = crafted.encode()
    bad = tmp_path / "crafted.pipekit"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    loaded = load_learner(bad)
    files = sorted(get_image_files(D.path("mnist_tiny") / "train"))[:300]  # enough to be cached on disk
    loaded.get_preds(dl=loaded.dls.test_dl(files))
    assert not evil.exists()


def test_sec_adapter_docstring_examples_run():
    import doctest

    import pipekit.backends.sklearn_adapter

    result = doctest.testmod(pipekit.backends.sklearn_adapter, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0
