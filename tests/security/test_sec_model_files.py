"""A model file is data: no name in it reaches an import or a call that pipekit did not list.

Every module-level callable of scikit-learn (each submodule, with the names it imports, such as os or
subprocess functions), of builtins, os, subprocess, importlib, pathlib and shutil is named in a crafted
model file as the estimator (class and module), at the top level and as an ensemble member, and as the
registered class; the parameters are built to create a marker file (or delete a victim file) if the
callable ran. Every load must raise ExportError naming the class, and the marker must not appear.
Legitimate exports still round-trip with identical predictions on adult.
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
import subprocess
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_models_helpers import adult

import pipekit.ensemble  # noqa: F401  (registers the ensembles, so they are loadable)
from pipekit.ensemble import MeanEnsemble, StackingEnsemble, WeightedEnsemble
from pipekit.learn import ExportError
from pipekit.models import GBM, RandomForest, SklearnModel, load_model
from pipekit.models.base import _REGISTRY, object_from_state
from pipekit.models.sklearn_adapter import loadable_estimators

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


_NPY_U8 = _npy(np.zeros(0, np.uint8))[:10]


def write_model_file(path: Path, meta: dict, arrays: dict | None = None) -> Path:
    """A model file as ``save_npz`` writes it (metadata JSON as a uint8 array plus arrays), built in memory.
    Callers give a fresh name each time: rewriting a file in place makes ext4 flush it (2 ms a file)."""
    blob = json.dumps(meta).encode()
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({len(blob)},), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    members = {"__meta__.npy": _NPY_U8[:8] + struct.pack("<H", len(header)) + header.encode() + blob}
    members.update({f"{k}.npy": _npy(np.asarray(v)) for k, v in (arrays or {}).items()})
    path.write_bytes(stored_zip(members))
    return path


def sklearn_meta(module: str, name: str, params: dict) -> dict:
    """An SklearnModel state, well formed except for the estimator it names."""
    return {"class": "SklearnModel", "format": 1, "params": {"task": "classification"}, "feature_names": ["a"],
            "cat_features": [], "procs_signature": None, "y_name": None, "name": None, "classes": [0, 1],
            "estimator": {"module": module, "name": name, "params": params, "scalars": {}}}


def ensemble_meta(member: dict) -> dict:
    return {"class": "WeightedEnsemble", "format": 1, "members": [member], "metric": None, "n_iter": 10,
            "check_columns": True, "procs_state": None, "selection": [0]}


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
# a member is read exactly like a top-level model (one load_npz, then object_from_state for each object),
# so each distinct name goes through a real file once (as a member too for the system modules' names),
# and every (module, name) pair through object_from_state, the one guarded function, at every level.
_THROUGH_A_FILE: set[str] = set()
_FILE_NUMBER = itertools.count()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "victim").write_text("still here")
    return d


def expect_refused(load, args: tuple, modname: str, name: str, listed: dict, estimator_of) -> None:
    # try/except rather than pytest.raises: ~30,000 checks, and pytest.raises costs 50 us each
    try:
        model = load(*args)
    except ExportError as e:
        msg = str(e)
        if name not in listed:
            assert f"estimator class {modname}.{name} is not loadable" in msg, msg
            assert "LogisticRegression" in msg  # the message says what is accepted
        return
    # only a listed name loads, and it always means pipekit's own class, whatever module the file names
    assert name in listed, f"{modname}.{name} loaded from a crafted file"
    assert type(estimator_of(model)) is listed[name], (modname, name)


def top(model):
    return model.model_


def inner(model):
    return model.members[0].model_


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
        member = sklearn_meta(modname, name, payload(obj, marker, victim))
        ensemble = ensemble_meta(member)
        expect_refused(object_from_state, (member, {}), modname, name, listed, top)
        expect_refused(object_from_state, (ensemble, {"weights": np.ones(1)}), modname, name, listed, inner)
        if name not in _REGISTRY:  # the same name as the registered class of the file
            try:
                object_from_state({**member, "class": name}, {})
                raise AssertionError(f"class {name!r} loaded")
            except ExportError as e:
                assert f"class {name!r} is not loadable" in str(e)
        if name not in _THROUGH_A_FILE or members_through_files:
            _THROUGH_A_FILE.add(name)
            k = next(_FILE_NUMBER)
            path = write_model_file(folder / f"top{k}.npz", member)
            expect_refused(load_model, (path,), modname, name, listed, top)
            if members_through_files:
                path = write_model_file(folder / f"ens{k}.npz", ensemble, {"weights": [1.0]})
                expect_refused(load_model, (path,), modname, name, listed, inner)
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
    evil = sklearn_meta("os", "system", {"command": f"touch {marker}"})
    stacking = {"class": "StackingEnsemble", "format": 1, "members": [evil], "meta_model": evil, "n_folds": 2,
                "passthrough": False, "metric": None, "seed": 0, "task": "classification", "classes": [0, 1],
                "passthrough_columns": ["a"], "procs_state": None}
    with pytest.raises(ExportError, match=r"member 0 \(SklearnModel\): estimator class os.system is not loadable"):
        load_model(write_model_file(tmp_path / "stack.npz", stacking))
    # an ensemble nested as a member goes through the same guard
    nested = ensemble_meta(ensemble_meta(evil))
    with pytest.raises(ExportError, match=r"member 0 \(WeightedEnsemble\): member 0 \(SklearnModel\)"):
        load_model(write_model_file(tmp_path / "nested.npz", nested, {"weights": [1.0], "member0/weights": [1.0]}))
    # a tabular net's procs are looked up in pipekit's registry only
    net = {"class": "TorchTabular", "format": 1, "params": {"task": "classification"}, "feature_names": [],
           "cat_features": [], "classes": [0, 1], "emb_szs": [],
           "processor": {"class": "pipekit.tabular.TabularProcessor",
                         "params": {"procs": [{"class": "os.system", "params": {"command": f"touch {marker}"},
                                               "state": {}}], "cat_names": ["a"], "cont_names": [], "y_names": ["y"]},
                         "state": {"cat_names_": ["a"], "cont_names_": [], "y_kind_": "category",
                                   "y_vocab_": ["0", "1"], "c_": 2}}}
    with pytest.raises(ExportError, match="TorchTabular.*'os.system' is not registered"):
        load_model(write_model_file(tmp_path / "net.npz", net))
    assert not marker.exists()


def test_sec_estimator_state_is_only_plain_data(tmp_path):
    ok = sklearn_meta("sklearn.linear_model", "LogisticRegression", {"C": 1.0})
    coef = {"attr/coef_": np.zeros((1, 1)), "attr/intercept_": np.zeros(1), "attr/classes_": np.arange(2)}
    model = object_from_state(ok, coef)  # the control: this state is loadable
    assert type(model.model_).__name__ == "LogisticRegression" and model.model_.C == 1.0

    def refused(meta, arrays, pattern):
        with pytest.raises(ExportError, match=pattern):
            object_from_state(meta, arrays)

    est = ok["estimator"]
    refused({**ok, "estimator": {**est, "params": {"evil": 1}}}, coef, r"parameters \['evil'\] are not arguments")
    refused({**ok, "estimator": {**est, "params": {"C": print}}}, coef, r"parameters \['C'\] are not plain JSON")
    refused({**ok, "estimator": {**est, "params": [1]}}, coef, "'params' must be a JSON object")
    for attr in ("__class__", "__dict__", "_fit_X", "predict", "predict_proba", "coef"):
        refused({**ok, "estimator": {**est, "scalars": {attr: 1}}}, coef, "is not a fitted attribute")
        refused(ok, {**coef, f"attr/{attr}": np.zeros(1)}, "is not a fitted attribute")
    refused({**ok, "estimator": {**est, "scalars": {"n_iter_": [1, 2]}}}, coef, "must be a number, string")
    refused(ok, {**coef, "attr/coef_": np.array([print], dtype=object)}, "must hold numbers, booleans or strings")
    refused(ok, {**coef, "fit/X": np.zeros((2, 1))}, r"array 'fit/X' is not part of a LogisticRegression state")
    refused({**ok, "estimator": {**est, "scalars": {"n_features_in_": 7}}}, coef, "fitted on 7 inputs but the file "
            "names 1 features")


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_sec_pickled_arrays_in_a_model_file_are_never_unpickled(tmp_path):
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    meta = np.frombuffer(json.dumps(sklearn_meta("sklearn.linear_model", "LogisticRegression", {})).encode(),
                         np.uint8)
    path = tmp_path / "pickled.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__meta__.npy", _npy(meta))
        z.writestr("attr/coef_.npy", buf.getvalue())
    with pytest.raises(ExportError, match=r"member 'attr/coef_.npy' holds object values"):
        load_model(path)
    assert not marker.exists()


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
        back = load_model(model.export(tmp_path / f"{key}.npz"))
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
        back = load_model(ens.export(tmp_path / f"{key}.npz"))
        assert type(back) is type(ens)
        np.testing.assert_array_equal(back.predict(va), ens.predict(va), err_msg=key)
    assert weighted.score(va) > 0.8


def _head(split, n):
    from pipekit.models import as_data

    return as_data(split).take(np.arange(n))


def test_sec_every_listed_estimator_round_trips(splits, tmp_path):
    """Each class of the allow-list exports and loads back with identical predictions on adult."""
    from sklearn.base import is_classifier

    from pipekit.models import as_data

    tr, va = (as_data(s).take(np.arange(1500)) for s in splits)
    codes = [c for c in tr.xs.columns if tr.xs[c].dtype.is_integer()]  # non-negative inputs for count models
    for name, cls in sorted(loadable_estimators().items()):
        kw = {"loss": "log_loss"} if name == "SGDClassifier" else {}
        if hasattr(cls(), "random_state"):
            kw["random_state"] = 0
        if hasattr(cls(), "n_estimators"):
            kw["n_estimators"] = 5
        task = "classification" if is_classifier(cls()) else "regression"
        if task == "regression":  # predict age from the other inputs
            d, v = (as_data(s.xs.drop("age"), y=s.xs["age"].to_numpy()) for s in (tr, va))
        elif name in ("MultinomialNB", "ComplementNB"):
            d, v = (as_data(s.xs.select(codes), y=s.y) for s in (tr, va))
        else:
            d, v = tr, va
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the short fits
            model = SklearnModel(cls(**kw), task).fit(d)
        back = load_model(model.export(tmp_path / f"{name}.npz"))
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
        with pytest.raises(TypeError, match="cannot be exported: load_model rebuilds only"):
            model.export(tmp_path / "x.npz")


def test_sec_tree_tables_from_a_file_are_checked(fitted, splits, tmp_path):
    """sklearn walks tree node tables without bounds checks, so a file's child and feature indices are
    checked: children must be later nodes of the same tree, features input columns."""
    from pipekit.models.base import load_npz, save_npz

    _, va = splits
    for key, prefix in (("rf", ""), ("extra", "trees/")):
        meta, arrays = load_npz(fitted[key].export(tmp_path / f"{key}.npz"))
        left, feature = arrays[f"{prefix}tree_left_child"], arrays[f"{prefix}tree_feature"]
        root_children = (int(left[0]), int(arrays[f"{prefix}tree_right_child"][0]))
        n_nodes = int(arrays[f"{prefix}tree_offsets"][1])
        attacks = {
            "out of range": (f"{prefix}tree_left_child", 0, 10**9),
            "into the next tree": (f"{prefix}tree_left_child", 0, n_nodes + 1),
            "a cycle": (f"{prefix}tree_right_child", root_children[0], 0),
            "a leaf with one child": (f"{prefix}tree_right_child", int(np.flatnonzero(left == -1)[0]), 1),
            "feature out of range": (f"{prefix}tree_feature", 0, 10**6),
            "negative feature": (f"{prefix}tree_feature", 0, -5),
        }
        for what, (field, node, value) in attacks.items():
            bad = {k: v.copy() for k, v in arrays.items()}
            bad[field][node] = value
            path = save_npz(tmp_path / f"{key}_bad.npz", meta, bad)
            with pytest.raises(ExportError) as err:
                load_model(path)
            assert re.search(r"tree 0 node \d+ is malformed", str(err.value)), (key, what, str(err.value))
        assert int(feature[0]) >= 0  # the root splits: the attacks above hit an internal node
    # the forest must agree with its feature names (predictions skip sklearn's column check)
    meta, arrays = load_npz(fitted["rf"].export(tmp_path / "rf.npz"))
    path = save_npz(tmp_path / "rf_nf.npz", {**meta, "n_features": meta["n_features"] + 5}, arrays)
    with pytest.raises(ExportError, match="n_features"):
        load_model(path)
    offsets = arrays["tree_offsets"].copy()
    offsets[1] = offsets[2]  # an empty tree
    path = save_npz(tmp_path / "rf_off.npz", meta, {**arrays, "tree_offsets": offsets})
    with pytest.raises(ExportError, match="tree_offsets must be increasing"):
        load_model(path)
    # the untouched file still loads
    np.testing.assert_array_equal(load_model(tmp_path / "rf.npz").predict(va), fitted["rf"].predict(va))


def test_sec_adapter_docstring_examples_run():
    import doctest

    import pipekit.models.sklearn_adapter

    result = doctest.testmod(pipekit.models.sklearn_adapter, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0
