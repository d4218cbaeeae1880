"""Fitted state read from a model file is checked before anything predicts with it.

Real models fitted on 1,500 rows of adult (a random forest, a LightGBM booster, a stacking ensemble of both, a
bagged forest) are saved with ``pipekit.save``; each test edits one field of a copy's record.json and loads it. A
field that is missing, of the wrong type, or an array where the record holds labels or names is an
:class:`ExportError` naming the file and the field's path from the top of the record, never an AttributeError,
a NumPy "truth value of an array is ambiguous", a TypeError inside LightGBM or a Polars error at predict. What
no check foresaw is still an ExportError naming the file, chained to the original error.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from file_edits import edited_copy
from test_models_helpers import adult_tab

import pipekit
from pipekit.backends import GBM, RandomForest
from pipekit.core import Component, ExportError
from pipekit.datasets import path as dataset_path
from pipekit.ensemble import BaggedModel, StackingEnsemble

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tab = adult_tab(1500)
    rf = RandomForest("classification", n_estimators=5).fit(tab.train, tab.valid)
    gbm = GBM("classification", n_estimators=5).fit(tab.train, tab.valid)
    stack = StackingEnsemble({"rf": rf.clone(), "gbm": gbm.clone()}, n_folds=3).fit(tab.train, tab.valid)
    bag = BaggedModel(RandomForest("classification", n_estimators=3), n_folds=3).fit(tab.train, tab.valid)
    d = tmp_path_factory.mktemp("fields")
    out = {name: pipekit.save(m, d / f"{name}.pipekit") for name, m in
           {"gbm": gbm, "stack": stack, "bag": bag}.items()}
    out["rows"] = d / "rows.csv"
    pl.read_csv(dataset_path("adult_sample") / "adult.csv").drop("salary").head(50).write_csv(out["rows"])
    return out


def _array_key(record: dict) -> str:
    """The name of an array the file holds (a reference to it is well formed, only misplaced)."""
    stack = [record]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__array__" in node:
                return node["__array__"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError("the record holds no array")


def _refused(path: Path, field: str, *words: str) -> str:
    with pytest.raises(ExportError) as e:
        pipekit.load(path)
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    assert f"field '{field}'" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _set(*keys, value):
    def edit(rec):
        node = rec
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value(rec) if callable(value) else value
    return edit


def _drop(*keys):
    def edit(rec):
        node = rec
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return edit


def _array(rec):
    return {"__array__": _array_key(rec)}


MEMBER0 = ("state", "members_", 0, "state")
META = ("state", "meta_model_", "state")
FILL = ("state", "processor_", "params", "procs", 0, "state")
CATS = ("state", "processor_", "params", "procs", 1, "state")

CASES = {
    # (file, edit, field named, words in the message)
    "stack without members_": ("stack", _drop("state", "members_"), "state.members_", ("is missing",)),
    "member without procs_signature_": ("stack", _drop(*MEMBER0, "procs_signature_"),
                                        "state.members_[0].state.procs_signature_", ("is missing",)),
    "member procs_signature_ an array": ("stack", _set(*MEMBER0, "procs_signature_", value=_array),
                                         "state.members_[0].state.procs_signature_", ("must be",)),
    "member procs_signature_ a number": ("stack", _set(*MEMBER0, "procs_signature_", value=3),
                                         "state.members_[0].state.procs_signature_", ("must be",)),
    "meta-model without procs_signature_": ("stack", _drop(*META, "procs_signature_"),
                                            "state.meta_model_.state.procs_signature_", ("is missing",)),
    "member best_iteration_ text": ("stack", _set("state", "members_", 1, "state", "best_iteration_", value="x"),
                                    "state.members_[1].state.best_iteration_", ("an integer",)),
    "best_iteration_ text": ("gbm", _set("state", "best_iteration_", value="x"), "state.best_iteration_", ()),
    "best_iteration_ a float": ("gbm", _set("state", "best_iteration_", value=2.5), "state.best_iteration_", ()),
    "best_iteration_ a list": ("gbm", _set("state", "best_iteration_", value=[3]), "state.best_iteration_", ()),
    "best_iteration_ an object": ("gbm", _set("state", "best_iteration_", value={}), "state.best_iteration_", ()),
    "best_iteration_ a bool": ("gbm", _set("state", "best_iteration_", value=True), "state.best_iteration_", ()),
    "best_iteration_ 0": ("gbm", _set("state", "best_iteration_", value=0), "state.best_iteration_", ()),
    "best_iteration_ past the booster": ("gbm", _set("state", "best_iteration_", value=10**6),
                                         "state.best_iteration_", ("in [1, 5]",)),
    "best_iteration_ missing": ("gbm", _drop("state", "best_iteration_"), "state.best_iteration_", ("is missing",)),
    "a class of Categorify an array": ("bag", _set(*CATS, "classes_", "race", 0, value=_array),
                                       "state.processor_.params.procs[1].state.classes_.race[0]", ("is an array",)),
    "a column of FillMissing an array": ("bag", _set(*FILL, "columns_", 1, value=_array),
                                         "state.processor_.params.procs[0].state.columns_[1]", ("is an array",)),
    "processor y_kind_ an array": ("bag", _set("state", "processor_", "state", "y_kind_", value=_array),
                                   "state.processor_.state.y_kind_", ("must be one of",)),
    "FillMissing column a number": ("bag", _set(*FILL, "columns_", 0, value=5),
                                    "state.processor_.params.procs[0].state.columns_", ("column names",)),
    "FillMissing columns_ text": ("bag", _set(*FILL, "columns_", value="age"),
                                  "state.processor_.params.procs[0].state.columns_", ()),
    "FillMissing columns_ twice": ("bag", _set(*FILL, "columns_", value=lambda r: ["age", "age", "fnlwgt"]),
                                   "state.processor_.params.procs[0].state.columns_", ("distinct",)),
    "FillMissing columns_ missing": ("bag", _drop(*FILL, "columns_"),
                                     "state.processor_.params.procs[0].state.columns_", ("is missing",)),
    "FillMissing fill value an object": ("bag", _set(*FILL, "fill_values_", "age", value={}),
                                         "state.processor_.params.procs[0].state.fill_values_", ("one number",)),
    "FillMissing fill value NaN": ("bag", _set(*FILL, "fill_values_", "age", value=float("nan")),
                                   "state.processor_.params.procs[0].state.fill_values_", ()),
    "FillMissing fill value of no column": ("bag", _set(*FILL, "fill_values_", "nope", value=1.0),
                                            "state.processor_.params.procs[0].state.fill_values_", ()),
    "FillMissing no fill value of a column": ("bag", _drop(*FILL, "fill_values_", "age"),
                                              "state.processor_.params.procs[0].state.fill_values_", ()),
    "FillMissing flag of no column": ("bag", _set(*FILL, "na_columns_", value=["nope"]),
                                      "state.processor_.params.procs[0].state.na_columns_", ("among columns_",)),
    # education-num is flagged: with no flag made, every row would lack the 'education-num_na' the model reads
    "FillMissing flags emptied": ("bag", _set(*FILL, "na_columns_", value=[]),
                                  "state.processor_.params.procs[0].state.na_columns_",
                                  ("['education-num']", "flag the processing's cat_names_ name")),
    "FillMissing flag the output does not name": ("bag", _set(*FILL, "na_columns_", value=["age", "education-num"]),
                                                  "state.processor_.params.procs[0].state.na_columns_", ()),
    "FillMissing flags without add_col": ("bag", _set(*FILL[:-1], "params", "add_col", value=False),
                                          "state.processor_.params.procs[0].state.na_columns_", ("add_col=False",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sec_a_malformed_fitted_field_is_named(files, tmp_path, case):
    name, edit, field, words = CASES[case]
    path = edited_copy(files[name], edit, tmp_path / f"{name}.pipekit")
    _refused(path, field, *words)


def test_sec_checked_files_still_load_and_predict(files):
    """The checks refuse nothing pipekit writes: each ensemble file loads and predicts raw rows (as ``pipekit
    predict`` does, with the procs it keeps) into one of the two classes, the same for a second load."""
    from pipekit.cli import predictions

    for name in ("stack", "bag"):
        got = predictions(pipekit.load(files[name]), files["rows"])
        assert len(got) == 50 and {p.split("\t")[0] for _, p in got} <= {"<50k", ">=50k"}
        assert got == predictions(pipekit.load(files[name]), files["rows"])
    gbm = pipekit.load(files["gbm"])
    assert 1 <= gbm.best_iteration_ <= gbm.booster_.current_iteration()


def test_sec_an_unforeseen_error_while_building_names_the_file(files, monkeypatch):
    """Whatever a library raises on state no check foresaw, loading says which file could not be loaded, chained to
    what was raised; running out of memory is not disguised as a damaged file."""
    def broken(*args, **kwargs):
        raise KeyError("members_")

    monkeypatch.setattr(Component, "from_record", classmethod(lambda cls, *a, **k: broken()))
    with pytest.raises(ExportError) as e:
        pipekit.load(files["gbm"])
    assert str(e.value).startswith(f"{files['gbm']} could not be loaded: KeyError")
    assert "damaged or not written by pipekit" in str(e.value)
    assert isinstance(e.value.__cause__, KeyError)

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Component, "from_record", classmethod(lambda cls, *a, **k: out_of_memory()))
    with pytest.raises(MemoryError):
        pipekit.load(files["gbm"])
