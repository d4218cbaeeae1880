"""Crafted learner exports whose records name what their field does not take, refused at load naming the file and the
field, while the genuine export of the same real data (mnist_tiny's 3s and 7s) still loads and predicts:

- an item finder (``get_files``, ``get_image_files``, ``get_text_files``: a recipe's get_items, which lists the files
  of a folder) as a ``Transform(f)``'s encoder or decoder, directly or called by a getter (UsingAttr's ``f``, Pipe's
  ``getters``), or as the recipe's ``get_x``/``get_y``: with a label naming a folder, every ``predict`` listed it;
- an item finder as a ``RandTransform``'s ``before_call``, called before every item: refused by the field's kind, and
  by the transform itself where its class lets the field name a getter too (directly, or called by ``UsingAttr``);
- a transform's ``split_idx`` given as a flag (``true``) or a float (``1.0``), where it is None, 0 or 1;
- a base class (the abstract ``Metric``, ``ArrayMetric``, ``MeanMetric``) as a metric: it computes nothing, and
  ``validate`` failed with an empty NotImplementedError;
- an older file naming many classes that are not registered, with one of pipekit's packages failing to import (a
  missing dependency): the import is tried once, not once for each name.
"""
from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path

import pytest
from file_edits import edited_copy, refused_quickly

import pipekit
import pipekit.core.registry as registry
import pipekit.datasets as D
from pipekit.data import RandTransform
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.metrics import accuracy

pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]

GET_FILES = {"__ref__": "pipekit.data.get_files"}
SAME = {"__ref__": "tests.security.crafted_refs.same"}
LABEL_TFMS = "dls.recipe.state.blocks_[1].state.tfms_"


def same(x):
    """A user's function of the values, registered so a file may name it as a Transform(f)'s encoder and decoder."""
    return x


def draw(b, split_idx=None):
    """A user's before_call, registered so a file may name it."""


class DrawBy(RandTransform):
    """A user's RandTransform whose file may name a getter as its before_call, as a Transform(f)'s functions may."""

    ref_kinds = {"params.before_call": ("function", "getter")}


pipekit.register(same, name="tests.security.crafted_refs.same", kind="function")
pipekit.register(draw, name="tests.security.crafted_refs.draw", kind="function")
pipekit.register(DrawBy, name="tests.security.crafted_refs.DrawBy")
DRAW = {"__ref__": "tests.security.crafted_refs.draw"}


def _record(cls: str, **params) -> dict:
    return {"class": f"pipekit.data.{cls}", "params": params, "state": {}}


def _label_tfms(rec: dict) -> list:
    return rec["dls"]["recipe"]["state"]["blocks_"][1]["state"]["tfms_"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("crafted_refs")


@pytest.fixture(scope="module")
def export(mnist_dls, out) -> Path:
    learn = Learner(mnist_dls, simple_cnn(n_in=1, n_out=mnist_dls.c, channels=(4, 8)), metrics=accuracy)
    return learn.export(out / "digits.pipekit")


@pytest.fixture(scope="module")
def image() -> str:
    return str(sorted((D.path("mnist_tiny") / "valid" / "3").glob("*.png"))[0])


# ------------------------------------------------------------------------- item finders where a value is read
FINDER_TFMS = {
    "enc get_files": (_record("FuncTransform", enc=GET_FILES, dec=GET_FILES), "[0].params.enc", "get_files"),
    "dec get_image_files": (_record("FuncTransform", enc=SAME, dec={"__ref__": "pipekit.data.get_image_files"}),
                            "[0].params.dec", "get_image_files"),
    "dec UsingAttr(get_files)": (_record("FuncTransform", enc=SAME, dec=_record("UsingAttr", f=GET_FILES,
                                                                                attr="parent")),
                                 "[0].params.dec.params.f", "get_files"),
    "enc Pipe(.., get_text_files)": (
        _record("FuncTransform", enc=_record("Pipe", getters=[_record("ParentLabel"),
                                                              {"__ref__": "pipekit.data.get_text_files"}]), dec=SAME),
        "[0].params.enc.params.getters[1]", "get_text_files"),
}


@pytest.mark.parametrize("case", list(FINDER_TFMS))
def test_an_item_finder_as_a_transforms_function_is_refused(export, out, case):
    tfm, field, finder = FINDER_TFMS[case]

    def edit(rec):
        tfms = _label_tfms(rec)
        tfms[0]["state"]["vocab_"] = ["/usr/share", "/usr/share/"]  # labels are data: a folder each
        tfms.insert(0, tfm)

    path = edited_copy(export, edit, out / "finder.pipekit")
    refused_quickly(load_learner, path, named=(f"field '{LABEL_TFMS}{field}'",
                                               f"is {finder}, which lists the files of a folder",
                                               "FuncTransform's", "registered function of the values"))


def test_a_transforms_registered_function_still_loads_and_predicts(export, out, image):
    expected = load_learner(export).predict(image)[0]
    path = edited_copy(export, lambda rec: _label_tfms(rec).insert(0, _record("FuncTransform", enc=SAME, dec=SAME)),
                       out / "same.pipekit")
    back = load_learner(path)
    assert back.dls.recipe.blocks_[1].tfms_[0].enc is same
    assert back.predict(image)[0] == expected


@pytest.mark.parametrize("key, getter, field", [
    ("get_y", GET_FILES, "get_y"),
    ("get_x", _record("UsingAttr", f=GET_FILES, attr="parent"), "get_x.params.f"),
    ("get_x", [_record("Pipe", getters=[{"__ref__": "pipekit.data.get_image_files"}])], "get_x[0].params.getters[0]"),
])
def test_an_item_finder_as_a_recipes_getter_is_refused(export, out, key, getter, field):
    """The getters a recipe is built again with (``learn.dls.recipe.dataloaders(folder)``) read each item's value,
    as its fitted getters do; get_items (the finder's own field) keeps its finder."""
    def edit(rec):
        assert rec["dls"]["recipe"]["params"]["get_items"] == {"__ref__": "pipekit.data.get_image_files"}
        rec["dls"]["recipe"]["params"][key] = getter

    path = edited_copy(export, edit, out / "recipe_finder.pipekit")
    refused_quickly(load_learner, path, named=(f"field 'dls.recipe.params.{field}'", "lists the files of a folder"))


# ------------------------------------------------------------------------ item finders as a before_call
def _rand(cls: str, before_call) -> dict:
    return {"class": cls, "params": {"before_call": before_call}, "state": {}}


FINDER_CALLS = {
    "RandTransform get_files": (_rand("pipekit.data.RandTransform", GET_FILES), "[0].params.before_call",
                                ("names 'pipekit.data.get_files'", "takes a registered function",
                                 "a registered getter, not a function")),
    "DrawBy get_files": (_rand("tests.security.crafted_refs.DrawBy", GET_FILES), "[0].params.before_call",
                         ("is get_files, which lists the files of a folder",
                          "DrawBy's before_call is a registered function of (item, split_idx)")),
    "DrawBy UsingAttr(get_files)": (_rand("tests.security.crafted_refs.DrawBy",
                                          _record("UsingAttr", f=GET_FILES, attr="parent")),
                                    "[0].params.before_call.params.f",
                                    ("is get_files, which lists the files of a folder",
                                     "DrawBy's before_call is a registered function of (item, split_idx)")),
}


@pytest.mark.parametrize("case", list(FINDER_CALLS))
def test_an_item_finder_as_a_rand_transforms_before_call_is_refused(export, out, case):
    tfm, field, words = FINDER_CALLS[case]

    def edit(rec):
        tfms = _label_tfms(rec)
        tfms[0]["state"]["vocab_"] = ["/usr/share", "/usr/share/"]  # labels are data: a folder each
        tfms.insert(0, tfm)

    path = edited_copy(export, edit, out / "finder_call.pipekit")
    refused_quickly(load_learner, path, named=(f"field '{LABEL_TFMS}{field}'", *words))


@pytest.mark.parametrize("cls", ["pipekit.data.RandTransform", "tests.security.crafted_refs.DrawBy"])
def test_a_rand_transforms_registered_before_call_still_loads_and_predicts(export, out, image, cls):
    expected = load_learner(export).predict(image)[0]
    path = edited_copy(export, lambda rec: _label_tfms(rec).insert(0, _rand(cls, DRAW)), out / "draw.pipekit")
    back = load_learner(path)
    assert back.dls.recipe.blocks_[1].tfms_[0].before_call_fn is draw
    assert back.predict(image)[0] == expected


# --------------------------------------------------------------------------------------- split_idx of a transform
def test_a_transforms_split_idx_is_none_0_or_1_not_a_flag_or_a_float(export, out):
    def split(value):
        return lambda rec: _label_tfms(rec)[0]["params"].__setitem__("split_idx", value)

    for value, shown in ((True, "split_idx=True"), (1.0, "split_idx=1.0"), (False, "split_idx=False")):
        path = edited_copy(export, split(value), out / "split.pipekit")
        refused_quickly(load_learner, path, named=("field 'dls'", "Categorize", shown, "one of None, 0, 1"))
    back = load_learner(edited_copy(export, split(1), out / "split_1.pipekit"))  # the number itself loads
    assert back.dls.recipe.blocks_[1].tfms_[0].split_idx == 1


# --------------------------------------------------------------------------------------------- base classes
@pytest.mark.parametrize("base", ["Metric", "ArrayMetric", "MeanMetric"])
def test_a_base_metric_class_is_refused(export, out, base):
    assert [m.name for m in load_learner(export).metrics] == ["accuracy"]
    path = edited_copy(export, lambda rec: rec.__setitem__("metrics", [{"class": f"pipekit.metrics.{base}",
                                                                        "params": {}, "state": {}}]),
                       out / "base_metric.pipekit")
    refused_quickly(load_learner, path, named=("field 'metrics[0].class'", f"'pipekit.metrics.{base}', a base class"))


# --------------------------------------------------------------------------- a package that fails to import
def test_a_package_that_fails_to_import_is_tried_once_for_an_older_files_names(export, out, monkeypatch):
    missing = "pipekit.not_installed_for_this_test"
    tried = []
    real = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name == missing:
            tried.append(name)
        return real(name, *args, **kwargs)

    registry.import_builtin_packages()  # those that import are imported once (seconds), not timed here
    monkeypatch.setattr(registry, "BUILTIN_PACKAGES", (*registry.BUILTIN_PACKAGES, missing))
    monkeypatch.setattr(importlib, "import_module", import_module)
    path = out / "older.pipekit"
    with zipfile.ZipFile(export) as z:
        members = {n: z.read(n) for n in z.namelist()}
    record = json.loads(members["record.json"])
    record["junk"] = [{"class": f"pipekit.unknown{i}", "params": {}} for i in range(200)]
    members["record.json"] = json.dumps(record).encode()
    members["manifest.json"] = json.dumps({**json.loads(members["manifest.json"]), "version": 2}).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    refused_quickly(load_learner, path, named=("'junk'",))
    assert len(tried) <= 1, f"{missing} was imported {len(tried)} times"
