"""Fields of a saved model that new data is read by are checked at load, on real files.

A learner export's ``dls.bs`` is the batch size a loaded learner reads new items in (``learn.dls.bs``, the default
of ``learn.dls.test_dl``): a crafted one is refused naming ``dls.bs``. A backend file's ``cat_levels_`` and
``norm_stats_`` (what bare new frames are held to) are taken from the fitted procs it keeps (``processor_``), and a
file whose copy disagrees with them is refused naming the field; a file written before they were kept still loads.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from file_edits import component_records, edited_copy, refused_quickly
from pipekit.backends import GBM
from pipekit.core import DataError
from pipekit.data import DataLoaders, get_image_files
from pipekit.data.dataloaders import MAX_RECORDED_BS
from pipekit.learn import load_learner

pytestmark = pytest.mark.data


# ---------------------------------------------------------------- a learner export's dls.bs
@pytest.fixture(scope="module")
def mnist_export(mnist_learner, tmp_path_factory):
    """mnist_tiny's small CNN (trained in batches of 16), exported."""
    return mnist_learner.export(tmp_path_factory.mktemp("bs") / "mnist.pipekit")


@pytest.fixture(scope="module")
def test_items():
    return get_image_files(D.path("mnist_tiny") / "test")  # 20 unlabelled digits


def test_a_loaded_learner_reads_new_items_in_the_recorded_batch_size(mnist_learner, mnist_export, test_items):
    learn = load_learner(mnist_export)
    assert mnist_learner.dls.bs == 16
    assert learn.dls.bs == 16  # as fastai users read it after load_learner
    dl = learn.dls.test_dl(test_items)
    assert dl.bs == 16 and len(dl) == 2  # 20 items in batches of 16
    assert [len(b[0]) for b in dl] == [16, 4]
    assert learn.dls.test_dl(test_items, bs=5).bs == 5  # a bs given still wins
    torch.testing.assert_close(learn.get_preds(dl=dl)[0],
                               mnist_learner.get_preds(dl=mnist_learner.dls.test_dl(test_items))[0])


def test_a_loaded_learner_exports_its_recorded_batch_size_again(mnist_export, tmp_path):
    again = load_learner(load_learner(mnist_export).export(tmp_path / "again.pipekit"))
    assert again.dls.bs == 16


@pytest.mark.parametrize("bs", [10**12, MAX_RECORDED_BS + 1, 0, -5, 2.5, 16.0, "x", True, None, [16]])
def test_a_crafted_dls_bs_is_refused_by_name(mnist_export, tmp_path, bs):
    crafted = edited_copy(mnist_export, lambda r: r["dls"].update({"bs": bs}), tmp_path / "bs.pipekit")
    said = refused_quickly(load_learner, crafted, named=("'dls.bs'", "1 to 1,048,576"), seconds=30,
                           megabytes=400)
    assert "dls.recipe" not in said


def test_an_export_without_a_recorded_batch_size_reads_in_batches_of_64(mnist_export, tmp_path, test_items):
    older = edited_copy(mnist_export, lambda r: r["dls"].pop("bs"), tmp_path / "older.pipekit")
    learn = load_learner(older)
    assert learn.dls.bs == 64 and learn.dls.test_dl(test_items).bs == 64


def test_a_refused_recipe_field_is_still_named_from_the_top(mnist_export, tmp_path):
    def duplicate_classes(record: dict) -> None:
        for rec in component_records(record["dls"], "pipekit.data.Categorize"):
            rec["state"]["vocab_"] = ["3", "3"]

    crafted = edited_copy(mnist_export, duplicate_classes, tmp_path / "recipe.pipekit")
    said = refused_quickly(load_learner, crafted, seconds=30, megabytes=400)
    assert "field 'dls.recipe.state.blocks_[1].state.tfms_[0].state.vocab_'" in said


def test_loaders_with_no_data_still_refuse_what_needs_data(mnist_export):
    with pytest.raises(DataError, match="hold no data"):
        _ = load_learner(mnist_export).dls.train


def test_a_batch_size_over_the_cap_is_recorded_as_the_cap(adult_xy):
    x, y = (torch.from_numpy(a) for a in adult_xy)
    dls = DataLoaders.from_dsets(list(zip(x[:400], y[:400])), list(zip(x[400:], y[400:])), bs=MAX_RECORDED_BS * 2,
                                 device="cpu")
    state = json.loads(json.dumps(dls.state()))
    assert state["bs"] == MAX_RECORDED_BS
    assert DataLoaders.from_state(state).bs == MAX_RECORDED_BS


# ---------------------------------------------------------------- a GBM file's cat_levels_ and norm_stats_
@pytest.fixture(scope="module")
def adult_raw():
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(3000)


@pytest.fixture(scope="module")
def gbm_file(adult_raw, tmp_path_factory):
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    tab = Tabular(adult_raw, procs=[Categorify, FillMissing, Normalize],
                  cat_names=["workclass", "education", "marital-status", "occupation", "relationship", "race"],
                  cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    model = GBM("classification", n_estimators=10, n_jobs=1).fit(tab.train, tab.valid)
    return model, pipekit.save(model, tmp_path_factory.mktemp("gbm") / "gbm.pipekit")


def _state(record: dict) -> dict:
    return record["state"]


def test_a_genuine_gbm_file_loads_with_the_row_form_it_was_fitted_with(gbm_file, adult_raw):
    model, path = gbm_file
    loaded = pipekit.load(path)
    assert loaded.row_form() == model.row_form()
    assert loaded.cat_levels_["race"] == len(model.processor_.classes_["race"]) == 6
    np.testing.assert_allclose(loaded.predict(loaded.process(adult_raw.head(200))),
                               model.predict(model.process(adult_raw.head(200))))


@pytest.mark.parametrize("edit, named", [
    (lambda s: s["norm_stats_"].update({"age": [0.0, 1.0]}), "'norm_stats_.age'"),
    (lambda s: s["norm_stats_"]["fnlwgt"].__setitem__(1, 1.0), "'norm_stats_.fnlwgt'"),
    (lambda s: s["norm_stats_"].pop("education-num"), "'norm_stats_.education-num'"),
    (lambda s: s["norm_stats_"].update({"workclass": [1.0, 2.0]}), "'norm_stats_.workclass'"),
    (lambda s: s["cat_levels_"].update({"race": 100000}), "'cat_levels_.race'"),
    (lambda s: s["cat_levels_"].update({"race": 2}), "'cat_levels_.race'"),
    (lambda s: (s["cat_levels_"].pop("education"), s["cat_dtypes_"].pop("education")), "'cat_levels_.education'"),
])
def test_a_copy_that_disagrees_with_the_procs_is_refused_by_name(gbm_file, tmp_path, edit, named):
    _, path = gbm_file
    crafted = edited_copy(path, edit, tmp_path / "crafted.pipekit", part=_state)
    said = refused_quickly(pipekit.load, crafted, named=(named, "processor_"))
    assert "the file is damaged" in said


def test_a_file_written_before_the_copies_were_kept_still_loads(gbm_file, tmp_path, adult_raw):
    model, path = gbm_file
    older = edited_copy(path, lambda s: [s.pop(k) for k in ("cat_levels_", "cat_dtypes_", "norm_stats_")],
                        tmp_path / "older.pipekit", part=_state)
    loaded = pipekit.load(older)
    assert "cat_levels_" not in vars(loaded) and "norm_stats_" not in vars(loaded)
    np.testing.assert_allclose(loaded.predict(loaded.process(adult_raw.head(200))),
                               model.predict(model.process(adult_raw.head(200))))


@pytest.mark.parametrize("field, value", [("cat_levels_", {"workclass": 1000}), ("norm_stats_", {"age": [500.0, 1e-3]})])
def test_a_bags_fold_model_whose_row_form_disagrees_with_the_bag_is_refused(adult_raw, tmp_path, field, value):
    from pipekit.data import RandomSplitter
    from pipekit.ensemble import BaggedModel
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    tab = Tabular(adult_raw, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"], cont_names=["age"],
                  y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))
    bag = BaggedModel(GBM("classification", n_estimators=5, n_jobs=1), n_folds=2).fit(tab.train)
    path = pipekit.save(bag, tmp_path / "bag.pipekit")
    assert pipekit.load(path).models_[1].row_form() == bag.row_form()  # as written, the bag's own
    crafted = edited_copy(path, lambda s: s["models_"][1]["state"].update({field: value}), tmp_path / "crafted.pipekit",
                          part=_state)
    said = refused_quickly(pipekit.load, crafted, named=(f"'models_[1].state.{field}'", "the bag's procs"))
    assert "the file is damaged" in said
