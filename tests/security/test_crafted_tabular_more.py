"""Table processing read from a file must be one fitting could have made, or it is an ExportError naming the file and
the field as the file is loaded, never a model that loads and then answers wrongly or fails inside Polars at every
predict: a Categorify codes every categorical input (a collab model's ids fed uncoded read as embedding rows), the
``<col>_na`` flags the output names need the FillMissing that makes them, a ``procs`` list holds proc records only,
and ``cat_complete_`` names distinct categorical inputs. A processed table read back by ``Tabular.load`` holds no
missing split flag, code or target, and no missing or infinite value in a column FillMissing fills.

Real data: movie_lens_sample's ratings (collab exports), adult_sample (a tabular learner export, its saved
processing, a saved processed table).
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path as dataset_path
from pipekit.learn import load_learner
from pipekit.tabular import (Categorify, CollabDataLoaders, FillMissing, Normalize, Tabular, TabularProcessor,
                             collab_learner, tabular_learner)
from file_edits import edited_copy, refused_quickly

pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]

CATS = ["workclass", "education", "marital-status"]
CONTS = ["age", "fnlwgt", "education-num"]  # education-num has missing values: FillMissing adds education-num_na
PROCESSOR = ("dls", "recipe", "params", "processor")


def _at(record: dict, *keys: str) -> dict:
    for k in keys:
        record = record[k]
    return record


@pytest.fixture(scope="module")
def tab(adult_1500) -> Tabular:
    return Tabular(adult_1500, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=42))


@pytest.fixture(scope="module")
def files(tab, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("crafted_tabular")
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[8])
    learn.export(out / "tab.pipekit")
    pipekit.save(tab.processor, out / "proc.pipekit")
    ratings = pl.read_csv(dataset_path("movie_lens_sample") / "ratings.csv")
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    collab_learner(dls, n_factors=8, y_range=(0.5, 5.5)).export(out / "dot.pipekit")
    collab_learner(dls, use_nn=True, layers=[8], y_range=(0.5, 5.5)).export(out / "nn.pipekit")
    return {"out": out, "tab": out / "tab.pipekit", "proc": out / "proc.pipekit", "dot": out / "dot.pipekit",
            "nn": out / "nn.pipekit", "parquet": tab.save(out / "table.parquet"), "ratings": ratings}


# ----------------------------------------------------------------------------------- Categorify of a collab export
@pytest.mark.parametrize("model", ["dot", "nn"])
def test_collab_export_whose_categorify_lost_a_column_is_refused(files, model):
    """Without the user ids' classes the raw ids reached the embeddings as row numbers: predictions of other users,
    silently (an id past the table failed inside torch)."""
    procs = (*PROCESSOR, "params", "procs")
    bad = edited_copy(files[model], lambda r: _at(r, *procs)[0]["state"]["classes_"].pop("userId"),
                      files["out"] / f"{model}_no_users.pipekit")
    msg = refused_quickly(load_learner, bad, named=("dls.recipe.params.processor.params.procs[0].state.classes_",
                                                    "userId", "damaged"))
    assert "every categorical input" in msg
    # the file as written loads and scores the users it was fitted on
    learn = load_learner(files[model])
    rows = files["ratings"].head(5)
    preds, _ = learn.get_preds(dl=learn.dls.test_dl(rows))
    assert preds.shape[0] == 5 and bool(((preds >= 0.5) & (preds <= 5.5)).all())


def test_collab_export_without_its_categorify_is_refused(files):
    bad = edited_copy(files["dot"], lambda r: _at(r, *PROCESSOR, "params", "procs").pop(0),
                      files["out"] / "dot_no_categorify.pipekit")
    refused_quickly(load_learner, bad, named=("dls.recipe.params.processor.params.procs", "no Categorify",
                                              "cat_complete_"))


# ----------------------------------------------------------------------------------- FillMissing and the procs list
def test_tabular_export_without_the_fillmissing_its_flags_need_is_refused(files, adult_1500):
    """The model reads education-num_na, which only FillMissing makes: every predict failed inside Polars."""
    assert "education-num_na" in _cat_names(files["tab"])
    bad = edited_copy(files["tab"], lambda r: _at(r, *PROCESSOR, "params", "procs").pop(0),
                      files["out"] / "tab_no_fill.pipekit")
    refused_quickly(load_learner, bad, named=("dls.recipe.params.processor.params.procs", "no FillMissing",
                                              "education-num_na"))
    assert load_learner(files["tab"]).predict(adult_1500.row(0, named=True))[0].strip() in ("<50k", ">=50k")


def _cat_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return _at(json.loads(z.read("record.json")), *PROCESSOR)["state"]["cat_names_"]


@pytest.mark.parametrize("where,edit,field", [
    ("tab", lambda procs: procs.__setitem__(0, []), "dls.recipe.params.processor.params.procs[0]"),
    ("tab", lambda procs: procs.append([[], []]), "dls.recipe.params.processor.params.procs[3]"),
    ("proc", lambda procs: procs.insert(1, []), "params.procs[1]"),
])
def test_a_list_among_a_files_procs_is_refused(files, where, edit, field):
    """A list in a file's procs was flattened away, a FillMissing replaced by [] silently dropped."""
    procs = (*PROCESSOR, "params", "procs") if where == "tab" else ("params", "procs")
    bad = edited_copy(files[where], lambda r: edit(_at(r, *procs)), files["out"] / f"{where}_list.pipekit")
    msg = refused_quickly(load_learner if where == "tab" else pipekit.load, bad, named=(field, "is a list"))
    assert "Categorify, FillMissing, Normalize" in msg


def test_procs_given_in_code_may_still_hold_lists(adult_1500):
    """In code, lists inside the procs list are combined as every procs and transforms parameter combines them."""
    nested = Tabular(adult_1500, procs=[[FillMissing], [], [Categorify, [Normalize]]], cat_names=CATS, cont_names=CONTS,
                     y_names="salary", splits=RandomSplitter(0.2, seed=42))
    assert [type(p) for p in nested.procs] == [FillMissing, Categorify, Normalize]
    flat = Tabular(adult_1500, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=42))
    assert nested.frame.equals(flat.frame)


# ----------------------------------------------------------------------------------- cat_complete_
@pytest.mark.parametrize("where", ["proc", "tab"])
@pytest.mark.parametrize("names,problem", [
    (["workclass", "education", "workclass"], "must be a list of distinct column names"),
    (["workclass", "age"], "must name only categorical inputs"),
])
def test_cat_complete_must_name_distinct_categorical_inputs(files, adult_1500, where, names, problem):
    """A column named twice loaded, then every predict failed inside Polars (DuplicateError)."""
    state = (*PROCESSOR, "state") if where == "tab" else ("state",)
    bad = edited_copy(files[where], lambda r: _at(r, *state).update(cat_complete_=names),
                      files["out"] / f"{where}_complete.pipekit")
    field = ("dls.recipe.params.processor." if where == "tab" else "") + "state.cat_complete_"
    msg = refused_quickly(load_learner if where == "tab" else pipekit.load, bad, named=(field,))
    assert problem in msg
    proc = pipekit.load(files["proc"])
    assert proc.cat_complete_ == ["workclass", "education", "marital-status"]
    assert proc.transform(adult_1500.head(20)).columns[:3] == CATS


# ----------------------------------------------------------------------------------- Tabular.load
def _set(column: str, value, row: int = 3):
    return lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == row).then(value).otherwise(pl.col(column))
                                    .alias(column))


@pytest.mark.parametrize("name,edit,column,says", [
    ("null_is_valid", _set("is_valid", None), "is_valid", "1 missing value(s) (null), first at row 3"),
    ("null_code", _set("workclass", None), "workclass", "1 missing value(s) (null), first at row 3"),
    ("null_flag", _set("education-num_na", None, 7), "education-num_na", "first at row 7"),
    ("null_target", _set("salary", None), "salary", "1 missing value(s) (null)"),
    ("nan_continuous", _set("age", float("nan")), "age", "missing or non-finite value(s) (null, NaN or inf)"),
    ("inf_continuous", _set("fnlwgt", float("-inf")), "fnlwgt", "missing or non-finite"),
    ("null_continuous", _set("education-num", None), "education-num", "missing or non-finite"),
])
def test_tabular_load_refuses_missing_values_processing_never_leaves(files, tab, name, edit, column, says):
    """A null is_valid failed inside NumPy, a null code or target inside torch at fit, and a NaN input stopped
    training with advice to lower the learning rate; the file and the column are named instead."""
    src = files["parquet"]
    bad = files["out"] / f"{name}.parquet"
    edit(pl.read_parquet(src)).write_parquet(bad)
    shutil.copy(src.with_suffix(".pipekit"), bad.with_suffix(".pipekit"))
    msg = refused_quickly(Tabular.load, bad, named=(f"column {column!r}", says, "Tabular.save"))
    assert str(bad) in msg
    assert Tabular.load(src).frame.equals(tab.frame)  # the file as saved loads, its rows as they were


def test_tabular_load_keeps_missing_values_of_columns_no_fillmissing_fills(adult_1500, tmp_path):
    """Without FillMissing a continuous column keeps the data's missing values (a gradient-boosted model reads
    them): such a table saves and loads as it was."""
    holed = adult_1500.with_columns(pl.when(pl.int_range(pl.len()) % 9 == 0).then(None).otherwise(pl.col("age"))
                               .alias("age"))
    tab = Tabular(holed, procs=[Categorify, Normalize], cat_names=CATS, cont_names=["age", "fnlwgt"],
                  y_names="salary", splits=RandomSplitter(0.2, seed=0))
    assert tab.frame["age"].null_count() > 0
    back = Tabular.load(tab.save(tmp_path / "holed.parquet"))
    assert back.frame.equals(tab.frame)
    assert np.array_equal(back.train.to_numpy()[1], tab.train.to_numpy()[1])


def test_saved_ratings_processing_must_code_both_id_columns(files):
    """A saved processing of ratings (no model) is held to the same rule: its Categorify codes both id columns."""
    tab = Tabular(files["ratings"], procs=[Categorify], cat_names=["userId", "movieId"], y_names="rating",
                  y_block="regression", splits=RandomSplitter(0.2, seed=0))
    saved = pipekit.save(tab.processor, files["out"] / "ratings_proc.pipekit")
    assert isinstance(pipekit.load(saved), TabularProcessor)
    bad = edited_copy(saved, lambda r: r["params"]["procs"][0]["state"]["classes_"].pop("movieId"),
                      files["out"] / "ratings_no_movies.pipekit")
    refused_quickly(pipekit.load, bad, named=("params.procs[0].state.classes_", "movieId"))


# ----------------------------------------------------------------------------------- a collab model's own classes
def _without_categorify_or_complete(record: dict) -> None:
    processor = _at(record, *PROCESSOR)
    processor["params"]["procs"].pop(0)
    processor["state"].pop("cat_complete_")


def _reordered(column: str):
    def edit(record: dict) -> None:
        classes = _at(record, *PROCESSOR, "params", "procs")[0]["state"]["classes_"][column]
        classes[1:] = classes[:0:-1]
    return edit


def _replaced(column: str):
    def edit(record: dict) -> None:
        classes = _at(record, *PROCESSOR, "params", "procs")[0]["state"]["classes_"][column]
        classes[1:] = [str(900000 + i) for i in range(len(classes) - 1)]
    return edit


@pytest.mark.parametrize("model", ["dot", "nn"])
@pytest.mark.parametrize("name,edit,named", [
    ("no_coding", _without_categorify_or_complete, ("dls.recipe.params.processor.params.procs", "no Categorify",
                                                    "arch.config.classes")),
    ("reordered_users", _reordered("userId"), ("arch.config.classes.userId", "procs[0].state.classes_.userId")),
    ("replaced_items", _replaced("movieId"), ("arch.config.classes.movieId", "procs[0].state.classes_.movieId")),
])
def test_collab_export_must_code_ids_into_the_models_classes(files, model, name, edit, named):
    """The model's embedding rows are its own classes (arch.config.classes): a processing without its Categorify (and
    without cat_complete_, which named the coded columns) fed raw ids as rows, and classes reordered or replaced with
    the same count coded each id as another one; all loaded and scored other users and items silently."""
    bad = edited_copy(files[model], edit, files["out"] / f"{model}_{name}.pipekit")
    msg = refused_quickly(load_learner, bad, named=named)
    assert "export the trained model again" in msg
    # the file as written codes the ids into the model's classes: the first rows' ids find their embedding rows
    learn = load_learner(files[model])
    rows = files["ratings"].head(5)
    x_cat = learn.dls.test_dl(rows).one_batch()[0]
    for j, column in enumerate(("userId", "movieId")):
        assert [learn.model.classes[column][i] for i in x_cat[:, j].tolist()] == [str(v) for v in rows[column]]
