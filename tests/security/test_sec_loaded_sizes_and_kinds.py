"""What a crafted model file may still ask for once its record parses: sizes the stored weights do not have, thread
counts for the machine that loads it, a Parquet table far larger than its file, and registered objects of another
kind than the field they stand in. Each is refused (or bounded) at load, naming the file and the field, and every
genuine export of the same real data still loads and predicts.

- a tabular net's (and a collab EmbeddingNN's) ``arch.config.emb_szs`` / ``n_cont`` are checked against the stored
  weights before anything is built: a width of 2**25 took 2 GB and seconds before the weights were compared;
- a scikit-learn estimator's ``n_jobs`` from a file is lowered to the cores (a file's n_jobs=3000 started 3,000
  threads at each predict), and a value that is no thread count is refused;
- ``Tabular.load`` reads the Parquet footer first: 2 MB of constant columns no longer become gigabytes in memory;
- a ``{"__ref__": name}`` (or a record) where a recipe keeps its getters must be a getter: torch.nn.Linear, a callback
  or the item finder get_files were called on every item predict was given.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipekit
from pipekit.backends import SklearnModel
from pipekit.backends.base import cores, threads
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path as dataset_path
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.tabular import CollabDataLoaders, Tabular, collab_learner, tabular_learner
from pipekit.vision import ImageBlock
from file_edits import edited_copy
from file_edits import refused_quickly as refused_within_bounds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONTS = ["age", "fnlwgt", "education-num"]


def label_of(path):
    """A user's own getter, registered as a function: a file may name it as a getter."""
    return Path(path).parent.name


pipekit.register(label_of, name="tests.security.sizes_and_kinds.label_of", kind="function")


def refused_quickly(load, path: Path, *named: str) -> str:
    """``load(path)`` raises an ExportError naming the file and each of ``named``, in under 5 s and 100 MB traced."""
    return refused_within_bounds(load, path, named=named)


# ------------------------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def tab(adult_1500) -> Tabular:
    return Tabular(adult_1500, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=42))


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sizes_and_kinds")


@pytest.fixture(scope="module")
def tabular_export(tab, out) -> Path:
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[8])
    return learn.export(out / "tabular.pipekit")


@pytest.fixture(scope="module")
def collab_export(out) -> Path:
    dls = CollabDataLoaders.from_csv(dataset_path("movie_lens_sample") / "ratings.csv", bs=64, seed=0)
    learn = collab_learner(dls, use_nn=True, layers=[8], y_range=(0.5, 5.5))
    assert type(learn.model).__name__ == "EmbeddingNN"
    return learn.export(out / "collab_nn.pipekit")


@pytest.fixture(scope="module")
def vision_export(mnist_dls, out) -> Path:
    return Learner(mnist_dls, simple_cnn(n_in=1, n_out=mnist_dls.c, channels=(4, 8))).export(out / "vision.pipekit")


@pytest.fixture(scope="module")
def image() -> str:
    return str(sorted((dataset_path("mnist_tiny") / "valid" / "3").glob("*.png"))[0])


# ------------------------------------------------------------------------------- R2: embedding sizes
def _config(rec):
    return rec["arch"]["config"]


def test_sec_tabular_embedding_widths_must_be_the_stored_tables(tabular_export, adult_1500, out):
    good = load_learner(tabular_export)
    good.predict(adult_1500.row(0, named=True))
    widths = [w for _, w in _config(json.loads(zipfile.ZipFile(tabular_export).read("record.json")))["emb_szs"]]
    for name, edit, field in [
        # a width of 2**25 built index lists of 2**25 entries and a 2**28-value table before the shapes were compared
        ("wide", lambda c: c["emb_szs"][0].__setitem__(1, 2**25), "arch.config.emb_szs"),
        ("widest", lambda c: c["emb_szs"][0].__setitem__(1, 2**31), "arch.config.emb_szs"),
        # the same number of table values, shared out otherwise: the first linear layer takes other inputs
        ("traded", lambda c: c.__setitem__("emb_szs", [[1, c["emb_szs"][0][0] * c["emb_szs"][0][1]],
                                                       *c["emb_szs"][1:]]), "arch.config.emb_szs"),
        ("n_cont", lambda c: c.__setitem__("n_cont", 10**9), "arch.config.n_cont"),
        ("not pairs", lambda c: c.__setitem__("emb_szs", [[8, 5, 1]] + c["emb_szs"][1:]), "arch.config.emb_szs"),
        ("zero width", lambda c: c["emb_szs"][0].__setitem__(1, 0), "arch.config.emb_szs"),
    ]:
        path = edited_copy(tabular_export, edit, out / f"emb_{name.replace(' ', '_')}.pipekit", part=_config)
        refused_quickly(load_learner, path, f"field '{field}")
    assert [e.embedding_dim for e in good.model.embeds] == widths  # the genuine file as it was


def test_sec_collab_embedding_nn_widths_must_be_the_stored_tables(collab_export, out):
    good = load_learner(collab_export)
    assert len(good.model.embeds) == 2
    for name, width in (("wide", 2**25), ("off_by_one", None)):
        def edit(c, width=width):
            c["emb_szs"][1][1] = width if width is not None else c["emb_szs"][1][1] + 1
        path = edited_copy(collab_export, edit, out / f"collab_{name}.pipekit", part=_config)
        refused_quickly(load_learner, path, "field 'arch.config.emb_szs'")


# ---------------------------------------------------------------------------- R4: scikit-learn threads
@pytest.fixture(scope="module")
def knn_file(tab, out) -> Path:
    from sklearn.neighbors import KNeighborsClassifier

    model = SklearnModel(KNeighborsClassifier(n_neighbors=5, algorithm="kd_tree"), "classification").fit(tab.train)
    return pipekit.save(model, out / "knn.pipekit")


def _estimator_params(rec):
    return rec["params"]["estimator"]["params"]


def test_sec_a_files_n_jobs_is_bounded_by_the_cores(knn_file, tab, out):
    good = pipekit.load(knn_file)
    path = edited_copy(knn_file, lambda p: p.update(n_jobs=3000), out / "knn_threads.pipekit", part=_estimator_params)
    with pytest.warns(UserWarning, match=rf"KNeighborsClassifier: n_jobs=3000 is more than the {cores(None)} core"):
        model = pipekit.load(path)
    assert model.model_.n_jobs == cores(None)
    np.testing.assert_allclose(model.predict(tab.valid), good.predict(tab.valid))
    for bad in (0, "many", 1.5, True, [4]):
        path = edited_copy(knn_file, lambda p, b=bad: p.update(n_jobs=b), out / "knn_bad.pipekit",
                           part=_estimator_params)
        refused_quickly(pipekit.load, path, "n_jobs=")
    # scikit-learn's own spellings of "all cores (but some)" are kept: they never mean more than the cores
    for kept in (None, -1, -2, 1):
        path = edited_copy(knn_file, lambda p, k=kept: p.update(n_jobs=k), out / "knn_ok.pipekit",
                           part=_estimator_params)
        assert pipekit.load(path).model_.n_jobs == kept


# ------------------------------------------------------------------------------------ R5: Parquet size
@pytest.fixture(scope="module")
def saved_table(tab, out) -> Path:
    return tab.save(out / "tab.parquet")


def _constant_table(path: Path, rows: int, like: Path) -> Path:
    """A Parquet file of ``rows`` rows of constant columns, those of the processed table ``like`` (codes 1, numbers 0,
    no validation row, each row in neither split): a few hundred KB on disk."""
    schema = pq.read_schema(like)
    columns = {}
    for field in schema:
        value = -1 if field.name == "__pipekit_split_position__" else 1 if pa.types.is_integer(field.type) else 0
        columns[field.name] = pa.array(np.full(rows, value, field.type.to_pandas_dtype()), type=field.type)
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path


def test_sec_a_parquet_table_far_larger_than_its_file_is_refused_before_reading(saved_table, out):
    back = Tabular.load(saved_table)  # the genuine table loads as it was
    assert len(back.train) + len(back.valid) == 1500
    bomb = _constant_table(out / "bomb.parquet", 3_000_000, saved_table)
    shutil.copy(saved_table.with_suffix(".pipekit"), bomb.with_suffix(".pipekit"))
    assert os.path.getsize(bomb) < 1_000_000  # on disk: small
    said = refused_quickly(Tabular.load, bomb, "3,000,000 rows", "MAX_RATIO", "max_bytes=")
    assert "was not read" in said
    refused_quickly(lambda p: Tabular.load(p, max_bytes=10_000_000), bomb, "max_bytes=10,000,000")
    assert len(Tabular.load(bomb, max_bytes=2**30).frame) == 3_000_000  # a table one trusts, read on request


def test_sec_a_processed_table_that_its_processing_did_not_make_is_refused(saved_table, out):
    frame = pl.read_parquet(saved_table)
    for name, edit, column in [
        ("code", lambda f: f.with_columns(pl.lit(100, pl.Int8).alias("workclass")), "workclass"),
        ("negative", lambda f: f.with_columns(pl.lit(-3, pl.Int8).alias("education")), "education"),
        ("target", lambda f: f.with_columns(pl.lit(7, pl.Int8).alias("salary")), "salary"),
        ("missing", lambda f: f.drop("race"), "race"),
        ("text", lambda f: f.with_columns(pl.col("workclass").cast(pl.Utf8)), "workclass"),
        ("is_valid", lambda f: f.with_columns(pl.col("is_valid").cast(pl.Utf8)), "is_valid"),
        ("positions", lambda f: f.with_columns(pl.lit(0, pl.Int64).alias("__pipekit_split_position__")),
         "__pipekit_split_position__"),
    ]:
        path = out / f"processed_{name}.parquet"
        edit(frame).write_parquet(path)
        shutil.copy(saved_table.with_suffix(".pipekit"), path.with_suffix(".pipekit"))
        refused_quickly(Tabular.load, path, f"column {column!r}")


# ------------------------------------------------------------------------------ F1: kinds of registered names
def _recipe_state(rec):
    return rec["dls"]["recipe"]["state"]


def test_sec_a_getter_read_from_a_file_must_be_a_getter(vision_export, image, out):
    good = load_learner(vision_export)
    expected = good.predict(image)[0]
    for name, value, said in [
        ("module", {"__ref__": "torch.nn.Linear"}, "is a registered torch_module, not a getter"),
        ("callback", {"__ref__": "pipekit.learn.CSVLogger"}, "is a registered callback"),
        ("tensorboard", {"__ref__": "pipekit.learn.TensorBoardCallback"}, "is a registered callback"),
        ("callback record", {"class": "pipekit.learn.CSVLogger", "params": {}, "state": {}}, "registered callback"),
        ("finder", {"__ref__": "pipekit.data.get_files"}, "lists the files of a folder"),
        ("getter class", {"__ref__": "pipekit.data.ColReader"}, "builds an object when called"),
        ("inside a getter", {"class": "pipekit.data.UsingAttr", "params": {
            "f": {"__ref__": "pipekit.learn.CSVLogger"}, "attr": "name"}, "state": {}}, "registered callback"),
    ]:
        path = edited_copy(vision_export, lambda s, v=value: s["getters_"].__setitem__(0, v),
                           out / f"getter_{name.replace(' ', '_')}.pipekit", part=_recipe_state)
        refused_quickly(load_learner, path, "field 'dls.recipe.state.getters_[0]", said)
    # the recipe's parameters are read the same way (a loaded recipe can build loaders anew)
    path = edited_copy(vision_export, lambda r: r["dls"]["recipe"]["params"].__setitem__(
        "get_items", {"__ref__": "pipekit.learn.TensorBoardCallback"}), out / "get_items.pipekit")
    refused_quickly(load_learner, path, "field 'dls.recipe.params.get_items'", "registered callback")
    assert load_learner(vision_export).predict(image)[0] == expected


def test_sec_a_users_registered_getter_still_loads(out, image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=label_of,
                        splitter=GrandparentSplitter()).dataloaders(dataset_path("mnist_tiny"), bs=64, seed=0)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=dls.c, channels=(4, 8)))
    path = learn.export(out / "own_getter.pipekit")
    rec = json.loads(zipfile.ZipFile(path).read("record.json"))
    assert {"__ref__": "tests.security.sizes_and_kinds.label_of"} in _recipe_state(rec)["getters_"]
    back = load_learner(path)
    assert back.dls.recipe.getters_[1] is label_of
    assert back.predict(image)[0] == learn.predict(image)[0]


# ------------------------------------------------------------------------ fitted state a recipe must hold
def test_sec_a_recipe_without_its_fitted_transforms_is_refused_at_load(vision_export, out):
    def blocks(rec):
        return _recipe_state(rec)["blocks_"]

    for name, edit, field in [
        ("vocab", lambda b: b[1]["state"]["tfms_"][0]["state"].pop("vocab_"),
         "dls.recipe.state.blocks_[1].state.tfms_[0].state.vocab_"),
        ("not a transform", lambda b: b[1]["state"]["tfms_"].__setitem__(0, 1), "dls.recipe.state.blocks_[1].state.tfms_"),
    ]:
        path = edited_copy(vision_export, edit, out / f"fitted_{name.replace(' ', '_')}.pipekit", part=blocks)
        refused_quickly(load_learner, path, f"field '{field}'")
    # the image block's IntToFloat dropped from the batch transforms the recipe runs
    path = edited_copy(vision_export, lambda s: s.__setitem__("batch_tfms_", []), out / "no_batch_tfms.pipekit",
                       part=_recipe_state)
    refused_quickly(load_learner, path, "field 'dls.recipe.state.batch_tfms_'", "IntToFloat")


def test_sec_a_boosters_and_forests_threads_are_bounded_by_the_cores(tab, out):
    """A GBM or forest file's n_jobs reaches LightGBM's num_threads (XGBoost's nthread, CatBoost's thread_count,
    which overflowed at 10**15): never more threads than the cores, and the same predictions."""
    from pipekit.backends import GBM, RandomForest

    assert threads(10**15) == cores(None) and threads(1) == 1 and threads(-2) == max(1, cores(None) - 1)
    for model in (GBM("classification", n_estimators=20, n_jobs=1), RandomForest("classification", n_estimators=5,
                                                                                 n_jobs=1)):
        saved = pipekit.save(model.fit(tab.train), out / f"{type(model).__name__}.pipekit")
        path = edited_copy(saved, lambda r: r["params"].update(n_jobs=10**15), out / "many_threads.pipekit")
        loaded = pipekit.load(path)
        assert loaded.n_jobs == 10**15  # the setting as the file gives it; the threads started are the cores
        np.testing.assert_allclose(loaded.predict(tab.valid), model.predict(tab.valid))
        if isinstance(loaded, GBM):
            assert loaded.lgb_params()["num_threads"] == cores(None)
        else:
            assert loaded._make_sklearn(100).n_jobs == cores(None)
