"""Files of file format 2 (what pipekit wrote before format 3 moved ``skipinitialspace`` from the TabularRecipe to its
TabularProcessor and recorded a class target's ``y_type_``) load and predict as they did.

A format-2 file is made here from a fresh export by rewriting its JSON into the shape format 2 had
(:func:`as_format_2`). That shape was checked field by field against real files written by the last pipekit of
format 2 (tabular learners from a CSV file and a frame, a bool target, collab, vision and text learners, the
processing saved alone, GBM, RandomForest, BaggedModel, WeightedEnsemble and fit_ensemble files): they differ from
the current files exactly in the fields rewritten below.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from file_edits import edited_copy

import pipekit
from pipekit.backends import GBM, RandomForest
from pipekit.backends.data import procs_signature
from pipekit.core.archive import VERSION
from pipekit.core.errors import ExportError
from pipekit.data import RandomSplitter
from pipekit.ensemble import BaggedModel, WeightedEnsemble
from pipekit.tabular import CollabDataLoaders, Tabular, TabularDataLoaders, collab_learner, tabular_learner
from pipekit.tabular.core import TabularSplit, process_new

DATA = Path(os.environ.get("PIPEKIT_DATA", "")) if os.environ.get("PIPEKIT_DATA") else None
needs_data = pytest.mark.skipif(DATA is None or not (DATA / "adult_sample").is_dir(), reason="needs $PIPEKIT_DATA")
CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONTS = ["age", "fnlwgt", "education-num"]
RECIPE, PROCESSOR, DATABLOCK = "pipekit.tabular.TabularRecipe", "pipekit.tabular.TabularProcessor", "pipekit.data.DataBlock"
#: state backends record since format 2 (their files load without it)
BACKEND_FIELDS_SINCE_2 = ("cat_dtypes_", "norm_stats_")


def _records(node: Any):
    """Every component record in a file's record, outer ones first."""
    if isinstance(node, list):
        for v in node:
            yield from _records(v)
    elif isinstance(node, dict):
        if "class" in node and "params" in node:
            yield node
        for v in node.values():
            yield from _records(v)


def as_format_2(path: Path, out: Path, edit: Any = None) -> Path:
    """The file ``path`` as pipekit wrote it in format 2: manifest version 2; a TabularRecipe holds the
    ``skipinitialspace`` of its CSV reading (False for a table that was not a CSV file) and its processor does not;
    a TabularProcessor's state has no ``y_type_``; a backend's state no ``cat_dtypes_``/``norm_stats_``; an unfitted
    DataBlock's state is ``{"getters_": []}``. ``edit``
    (record -> None) changes the record further, to make a damaged file."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: (z.read(i), i.compress_type) for i in z.infolist()}
    manifest = json.loads(members["manifest.json"][0])
    record = json.loads(members["record.json"][0])
    assert manifest["version"] == VERSION == 4
    manifest["version"] = 2
    for rec in list(_records(record)):
        if rec["class"] == RECIPE:
            rec["params"]["skipinitialspace"] = rec["params"]["processor"]["params"].pop("skipinitialspace", False)
        elif rec["class"] == PROCESSOR:
            rec["params"].pop("skipinitialspace", None)
            rec["state"].pop("y_type_", None)
        elif rec["class"] == DATABLOCK and not rec["state"]:
            rec["state"] = {"getters_": []}
        for k in BACKEND_FIELDS_SINCE_2:
            (rec.get("state") or {}).pop(k, None)
    if edit is not None:
        edit(record)
    members["manifest.json"] = (json.dumps(manifest).encode(), members["manifest.json"][1])
    members["record.json"] = (json.dumps(record).encode(), members["record.json"][1])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, (data, how) in members.items():
            z.writestr(name, data, compress_type=how)
    out.write_bytes(buf.getvalue())
    return out


def _record(path: Path) -> Any:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("record.json"))


def _preds(learn: Any, rows: Any) -> np.ndarray:
    return learn.get_preds(dl=learn.dls.test_dl(rows))[0].numpy()


@pytest.fixture(scope="module")
def adult_csv(tmp_path_factory) -> Path:
    """The first 3,000 rows of adult.csv as the file writes them (', Private': the reading matters)."""
    assert DATA is not None
    lines = (DATA / "adult_sample" / "adult.csv").read_bytes().splitlines(keepends=True)
    path = tmp_path_factory.mktemp("adult") / "adult_3000.csv"
    path.write_bytes(b"".join(lines[:3001]))
    return path


@needs_data
@pytest.mark.parametrize("kind", ["csv", "frame", "collab"])
def test_a_format_2_tabular_or_collab_learner_loads_and_predicts_the_same(kind, adult_csv, tmp_path):
    pipekit.set_seed(0)
    if kind == "collab":
        ratings = pl.read_csv(DATA / "movie_lens_sample" / "ratings.csv")
        dls = CollabDataLoaders.from_df(ratings, user_name="userId", item_name="movieId", rating_name="rating",
                                        valid_pct=0.2, seed=42, bs=64)
        learn, rows = collab_learner(dls, n_factors=10, y_range=(0, 5.5)), ratings.head(200)
    else:
        kw = dict(cat_names=CATS, cont_names=CONTS, y_names="salary", valid_pct=0.2, seed=42, bs=128)
        dls = TabularDataLoaders.from_csv(adult_csv, **kw) if kind == "csv" else \
            TabularDataLoaders.from_df(pl.read_csv(adult_csv), **kw)
        learn = tabular_learner(dls, layers=[16])
        rows = adult_csv if kind == "csv" else pl.read_csv(adult_csv, n_rows=200)
    learn.fit(1, 1e-2)
    learn.export(tmp_path / "now.pipekit")
    old = as_format_2(tmp_path / "now.pipekit", tmp_path / "format2.pipekit")
    recipe = _record(old)["dls"]["recipe"]
    assert recipe["params"]["skipinitialspace"] is (kind == "csv")  # where format 2 kept the reading
    assert "skipinitialspace" not in recipe["params"]["processor"]["params"]

    loaded = pipekit.load_learner(old)
    assert loaded.dls.recipe.processor.skipinitialspace is (kind == "csv")  # moved to the processor
    want = _preds(learn, rows)
    # the same weights on the same rows; a last batch of another size may take another matmul kernel (1 ulp)
    np.testing.assert_allclose(_preds(loaded, rows), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_preds(pipekit.load_learner(tmp_path / "now.pipekit"), rows), want, rtol=0, atol=1e-6)
    if kind == "csv":  # new rows of the file are read as training read it: ' Private' is the training 'Private'
        codes = process_new(loaded.dls.recipe.processor, adult_csv)["workclass"]
        assert (codes > 0).mean() > 0.9, "the file's categories were read as unseen (#na#)"
    # loaded, it exports in the current format and loads again to the same predictions
    loaded.export(tmp_path / "again.pipekit")
    with zipfile.ZipFile(tmp_path / "again.pipekit") as z:
        assert json.loads(z.read("manifest.json"))["version"] == VERSION
    np.testing.assert_allclose(_preds(pipekit.load_learner(tmp_path / "again.pipekit"), rows), want, rtol=0, atol=1e-6)


@needs_data
def test_a_format_2_bool_target_still_decodes_its_classes_as_text(adult_csv, tmp_path):
    df = pl.read_csv(adult_csv).with_columns((pl.col("salary") == ">=50k").alias("rich")).drop("salary")
    pipekit.set_seed(0)
    dls = TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names="rich", valid_pct=0.2, seed=42,
                                     bs=128)
    learn = tabular_learner(dls, layers=[16])
    learn.fit(1, 1e-2)
    learn.export(tmp_path / "now.pipekit")
    old = pipekit.load_learner(as_format_2(tmp_path / "now.pipekit", tmp_path / "format2.pipekit"))
    now = pipekit.load_learner(tmp_path / "now.pipekit")
    rows = df.drop("rich").head(50)
    np.testing.assert_array_equal(_preds(old, rows), _preds(now, rows))
    row = rows.row(0, named=True)
    # format 2 decoded a bool target's classes as the text its vocabulary holds; y_type_ made them False/True
    assert old.dls.vocab == ["false", "true"] and old.predict(row)[0] == str(now.predict(row)[0]).lower()
    assert now.dls.vocab == [False, True] and type(now.predict(row)[0]) is bool


@needs_data
def test_format_2_backends_bags_and_ensembles_predict_the_same_on_old_and_new_processing(adult_csv, tmp_path):
    """The processing's fingerprint (``procs_signature``, which backends and ensembles store and compare) is the
    one a format-2 file stored: rows processed by the loaded processing, or by a Tabular built now on the same
    data, are taken as the same processing."""
    tab = Tabular(adult_csv, cat_names=CATS, cont_names=CONTS, y_names="salary",
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    frame = pl.read_csv(adult_csv, n_rows=200)
    new = tab.new(frame)
    gbm = GBM("classification", n_estimators=20).fit(tab.train, tab.valid)
    rf = RandomForest("classification", n_estimators=10).fit(tab.train, tab.valid)
    models = {"gbm": gbm, "rf": rf,
              "bagged": BaggedModel(GBM("classification", n_estimators=10), n_folds=2).fit(tab.train, tab.valid),
              "weighted": WeightedEnsemble({"rf": rf, "gbm": gbm}).fit(tab.valid)}
    assert "y_type_" not in tab.processor.to_record()["state"]  # "str": what a record without it means
    pipekit.save(tab.processor, tmp_path / "processor.pipekit")
    processor = pipekit.load(as_format_2(tmp_path / "processor.pipekit", tmp_path / "processor2.pipekit"))
    assert procs_signature(processor) == procs_signature(tab.processor)
    assert processor.y_type_ == "str" and processor.skipinitialspace is False
    by_old = TabularSplit(processor.transform(frame), processor, None, "new")
    for name, model in models.items():
        pipekit.save(model, tmp_path / f"{name}.pipekit")
        loaded = pipekit.load(as_format_2(tmp_path / f"{name}.pipekit", tmp_path / f"{name}2.pipekit"))
        want = model.predict(new)
        for rows in (new, by_old) + ((loaded.process(frame),) if name == "weighted" else ()):
            # a forest sums its trees in threads: the same trees, in another order at the last bit
            np.testing.assert_allclose(loaded.predict(rows), want, rtol=0, atol=1e-12, err_msg=name)


@needs_data
def test_a_format_2_forest_of_a_bool_target_predicts_on_the_tabular_built_now(adult_csv, tmp_path):
    """A bool target's processing records ``y_type_`` since format 3; it only says how the classes decode, so the
    fingerprint a format-2 forest stored (of the processing without it) is the one of the same Tabular built now."""
    df = pl.read_csv(adult_csv).with_columns((pl.col("salary") == ">=50k").alias("rich")).drop("salary")
    tab = Tabular(df, cat_names=CATS, cont_names=CONTS, y_names="rich", splits=RandomSplitter(valid_pct=0.2, seed=42))
    assert tab.processor.to_record()["state"]["y_type_"] == "bool"
    pipekit.save(tab.processor, tmp_path / "processor.pipekit")
    old_processor = pipekit.load(as_format_2(tmp_path / "processor.pipekit", tmp_path / "processor2.pipekit"))
    old_sig = procs_signature(old_processor)  # what format 2 stored: its processing had no y_type_
    assert old_processor.y_type_ == "str" and old_sig == procs_signature(tab.processor)
    rf = RandomForest("classification", n_estimators=10, seed=0).fit(tab.train, tab.valid)
    pipekit.save(rf, tmp_path / "rf.pipekit")
    old = pipekit.load(as_format_2(tmp_path / "rf.pipekit", tmp_path / "rf2.pipekit",
                                   edit=lambda r: r["state"].update(procs_signature_=old_sig)))
    rebuilt = Tabular(df, cat_names=CATS, cont_names=CONTS, y_names="rich",
                      splits=RandomSplitter(valid_pct=0.2, seed=42))
    np.testing.assert_allclose(old.predict_proba(rebuilt.valid), rf.predict_proba(tab.valid), rtol=0, atol=1e-12)
    # a forest sums its trees in threads: the same trees, in another order at the last bit
    np.testing.assert_allclose(old.predict(rebuilt.new(df.head(50))), rf.predict(tab.new(df.head(50))), rtol=0,
                               atol=1e-12)


@needs_data
def test_a_format_2_vision_learner_loads_and_predicts_the_same(tmp_path):
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import Learner, simple_cnn
    from pipekit.vision import ImageBlock

    pipekit.set_seed(0)
    path = DATA / "mnist_tiny"
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter()).dataloaders(path, bs=64, seed=42)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=dls.c))
    learn.fit(1, 1e-2)
    learn.export(tmp_path / "now.pipekit")
    old = pipekit.load_learner(as_format_2(tmp_path / "now.pipekit", tmp_path / "format2.pipekit"))
    items = sorted((path / "test").glob("*.png"))[:10]
    np.testing.assert_array_equal(_preds(old, items), _preds(learn, items))


@needs_data
def test_format_2_records_are_upgraded_strictly(adult_csv, tmp_path):
    """Only what format 2 wrote is moved: a damaged reading, one given twice, or a format-3 recipe holding one is
    refused as any unknown or bad parameter is."""
    dls = TabularDataLoaders.from_csv(adult_csv, cat_names=CATS, cont_names=CONTS, y_names="salary", valid_pct=0.2,
                                      seed=42, bs=128)
    tabular_learner(dls, layers=[8]).export(tmp_path / "now.pipekit")

    def recipe(rec):
        return rec["dls"]["recipe"]["params"]

    cases = {
        "not a bool": (lambda r: recipe(r).update(skipinitialspace="yes"), r"TabularProcessor: skipinitialspace='yes' is not accepted; expected True or False"),
        "given twice": (lambda r: recipe(r)["processor"]["params"].update(skipinitialspace=True),
                        r"TabularRecipe has parameters \['skipinitialspace'\] that TabularRecipe does not take"),
        "processor not a record": (lambda r: recipe(r).update(processor=[1]),
                                   r"TabularRecipe has parameters \['skipinitialspace'\] that TabularRecipe does not"),
    }
    for name, (edit, match) in cases.items():
        with pytest.raises(ExportError, match=match):
            pipekit.load_learner(as_format_2(tmp_path / "now.pipekit", tmp_path / f"{name}.pipekit", edit))
    # a format-3 file is never upgraded: the recipe's old parameter is refused there
    edited_copy(tmp_path / "now.pipekit", lambda r: recipe(r).update(skipinitialspace=True), tmp_path / "three.pipekit")
    with pytest.raises(ExportError, match=r"parameters \['skipinitialspace'\] that TabularRecipe does not take"):
        pipekit.load_learner(tmp_path / "three.pipekit")
    # a target type that is not one pipekit knows is refused in either format
    bad = as_format_2(tmp_path / "now.pipekit", tmp_path / "bad_type.pipekit",
                      lambda r: recipe(r)["processor"]["state"].update(y_type_="os.system"))
    with pytest.raises(ExportError, match=r"y_type_"):
        pipekit.load_learner(bad)


@needs_data
def test_a_format_2_unfitted_data_recipe_loads_unfitted(tmp_path):
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock

    recipe = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    pipekit.save(recipe, tmp_path / "now.pipekit")
    old = as_format_2(tmp_path / "now.pipekit", tmp_path / "format2.pipekit")
    assert _record(old)["state"] == {"getters_": []}
    loaded = pipekit.load(old)
    assert not loaded.is_fitted and repr(loaded) == repr(pipekit.load(tmp_path / "now.pipekit"))
    # the folder, or the files where the file kept no get_items (format 2 kept none: pipekit's finders had no name)
    dls = loaded.dataloaders(DATA / "mnist_tiny" if loaded.get_items else get_image_files(DATA / "mnist_tiny"), bs=64,
                             seed=42)
    assert dls.vocab == ["3", "7"]
    # in a current file that state is a fitted recipe missing its fields
    with zipfile.ZipFile(old) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members["manifest.json"] = json.dumps({**json.loads(members["manifest.json"]), "version": VERSION}).encode()
    with zipfile.ZipFile(tmp_path / "three.pipekit", "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    with pytest.raises(ExportError, match=r"field 'state.blocks_' is missing"):
        pipekit.load(tmp_path / "three.pipekit")
