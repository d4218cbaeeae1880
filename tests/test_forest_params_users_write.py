"""RandomForest and ExtraTrees take scikit-learn's forest arguments of the same meaning (``random_state`` as
``seed``, ``class_weight``, ``criterion``, ``min_samples_split``, ``max_leaf_nodes``, ``min_impurity_decrease``,
``bootstrap``), pass them to scikit-learn's forest, keep them through get_params/set_params/clone and a model file,
and refuse any other name by name. On adult_sample and rossmann_sample, few rows and trees."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone

import pipekit
from pipekit.backends import ExtraTrees, RandomForest
from pipekit.core import ExportError, ParameterError
from pipekit.data import RandomSplitter
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Tabular

from file_edits import component_records, edited_copy, refused_quickly  # noqa: E402
from test_models_helpers import adult_tab, rossmann_open_tab  # noqa: E402

NEW = {"criterion": "entropy", "min_samples_split": 10, "max_leaf_nodes": 40, "min_impurity_decrease": 1e-4,
       "class_weight": "balanced", "max_depth": 8}


@pytest.fixture(scope="module")
def adult():
    return adult_tab(3000, procs=(Categorify, FillMissing))


@pytest.fixture(scope="module")
def rossmann():
    return rossmann_open_tab(3000)


@pytest.mark.parametrize("cls", [RandomForest, ExtraTrees])
def test_sklearn_forest_arguments_reach_the_forest_and_round_trip(cls, adult, tmp_path):
    model = cls("classification", n_estimators=10, n_jobs=1, random_state=3, **NEW)
    assert model.seed == 3 and "random_state" not in model.get_params()
    assert {k: model.get_params()[k] for k in NEW} == NEW
    assert {k: clone(model).get_params()[k] for k in NEW} == NEW
    model.fit(adult.train, adult.valid)
    sk = model.model_.get_params()
    assert {k: sk[k] for k in NEW} == NEW and sk["random_state"] == 3
    assert max(t.tree_.n_leaves for t in model.estimators_) <= 40
    back = pipekit.load(pipekit.save(model, tmp_path / "forest.pipekit"))
    assert {k: back.get_params()[k] for k in NEW} == NEW and back.seed == 3
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))


def test_class_weight_dict_by_label_and_regression_criterion(adult, rossmann):
    model = RandomForest("classification", n_estimators=5, n_jobs=1, class_weight={">=50k": 3.0}).fit(adult.train)
    assert model.model_.class_weight == {list(model.classes_).index(">=50k"): 3.0}
    with pytest.raises(ParameterError, match="not classes of the training labels"):
        RandomForest("classification", n_estimators=5, n_jobs=1, class_weight={"rich": 3.0}).fit(adult.train)
    reg = RandomForest("regression", n_estimators=5, n_jobs=1, criterion="absolute_error", max_leaf_nodes=20)
    assert reg.fit(rossmann.train).model_.criterion == "absolute_error"
    with pytest.raises(ParameterError, match="not a regression criterion.*squared_error"):
        RandomForest("regression", criterion="gini")
    with pytest.raises(ParameterError, match="class_weight.*'regression'"):
        RandomForest("regression", class_weight="balanced")


def test_bootstrap_and_its_interplay_with_oob_and_max_samples(adult):
    with pytest.raises(ParameterError, match="bootstrap=False.*oob_score=True.*oob_score=False"):
        RandomForest("classification", bootstrap=False)
    with pytest.raises(ParameterError, match="bootstrap=False.*max_samples=0.5"):
        ExtraTrees("classification", bootstrap=False, max_samples=0.5)
    rf = RandomForest("classification", n_estimators=5, n_jobs=1, bootstrap=False, oob_score=False).fit(adult.train)
    assert rf.model_.bootstrap is False
    assert ExtraTrees("classification").bootstrap is None
    et = ExtraTrees("classification", n_estimators=5, n_jobs=1, bootstrap=True).fit(adult.train)
    assert et.model_.bootstrap is True
    assert ExtraTrees("classification", n_estimators=5, n_jobs=1).fit(adult.train).model_.bootstrap is False


def test_set_params_takes_sklearn_names_and_refuses_others():
    rf = RandomForest("classification")
    rf.set_params(random_state=3, class_weight="balanced_subsample", min_samples_split=0.1)
    assert (rf.seed, rf.class_weight, rf.min_samples_split) == (3, "balanced_subsample", 0.1)
    with pytest.raises(ParameterError, match="seed=4 and random_state=5"):
        rf.set_params(seed=4, random_state=5)
    for cls in (RandomForest, ExtraTrees):
        with pytest.raises(ParameterError) as e:
            cls("classification", ccp_alpha=0.01)
        message = str(e.value)
        assert "'ccp_alpha'" in message and "class_weight" in message and "SklearnModel(" in message, message
        assert f"{cls.__name__}Classifier(ccp_alpha=...)" in message, message
    with pytest.raises(ParameterError, match="'warm_start'"):
        rf.set_params(warm_start=True)
    with pytest.raises(ParameterError, match="min_samples_split"):
        RandomForest("classification", min_samples_split=1)


@pytest.mark.parametrize("cls", [RandomForest, ExtraTrees])
def test_seed_and_random_state_of_different_values_are_refused_even_seed_0(cls):
    for seed, state in ((0, 5), (5, 0), (3, 5), (None, 5)):
        with pytest.raises(ParameterError, match=rf"{cls.__name__}: seed={seed} and random_state={state} "
                                                 r"\(scikit-learn's name for seed\) set the same thing; give one"):
            cls("classification", seed=seed, random_state=state)
    for seed in (0, 5, None):  # the same value twice is the one seed
        model = cls("classification", seed=seed, random_state=seed)
        assert model.seed == seed and clone(model).seed == seed
    # random_state alone is the seed; seed alone, 0 (its default) too, is kept as a plain 0 its repr leaves out
    assert cls("classification", random_state=5).seed == 5
    model = cls("classification", seed=0)
    assert model.seed == 0 and type(model.seed) is int and "seed" not in repr(model)
    assert cls("classification").get_params()["seed"] == 0 and clone(cls("classification", random_state=7)).seed == 7


def test_file_naming_a_parameter_pipekit_does_not_list_is_refused(adult, tmp_path):
    model = RandomForest("classification", n_estimators=3, n_jobs=1, criterion="entropy").fit(adult.train)
    saved = pipekit.save(model, tmp_path / "rf.pipekit")

    def add(key, value):
        def edit(record):
            for rec in component_records(record, "pipekit.backends.RandomForest"):
                rec["params"][key] = value
        return edit

    for key, value in (("random_state", 1), ("ccp_alpha", 0.5), ("warm_start", True)):
        crafted = edited_copy(saved, add(key, value), tmp_path / f"{key}.pipekit")
        refused_quickly(pipekit.load, crafted, named=(key,), match="does not take")
    crafted = edited_copy(saved, add("criterion", "/etc/passwd"), tmp_path / "criterion.pipekit")
    with pytest.raises(ExportError, match="criterion"):
        pipekit.load(crafted)


#: the parameters a forest's record held before it took scikit-learn's settings: what an older pipekit reads
OLDER_PARAMS = {"task", "n_estimators", "max_samples", "max_features", "min_samples_leaf", "oob_score", "n_jobs", "seed",
                "time_limit", "name", "max_depth"}


@pytest.mark.parametrize("cls", [RandomForest, ExtraTrees])
def test_a_forest_at_the_defaults_writes_the_record_an_older_pipekit_reads(cls, adult, tmp_path):
    default = cls("classification", n_estimators=3, n_jobs=1).fit(adult.train)
    set_ = cls("classification", n_estimators=3, n_jobs=1, criterion="entropy", bootstrap=cls is ExtraTrees,
               oob_score=False).fit(adult.train)
    for model, written in ((default, {}), (set_, {"criterion": "entropy", "bootstrap": cls is ExtraTrees})):
        saved = pipekit.save(model, tmp_path / f"{id(model)}.pipekit")
        [rec] = component_records(json.loads(zipfile.ZipFile(saved).read("record.json")), f"pipekit.backends.{cls.__name__}")
        assert set(rec["params"]) - OLDER_PARAMS == set(written), sorted(rec["params"])
        assert {k: rec["params"][k] for k in written} == written
        back = pipekit.load(saved)
        assert back.get_params() == model.get_params()
        np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))


def test_class_weight_keyed_by_number_labels_saves_and_loads(tmp_path):
    # labels 0 and 1 (Rossmann's Promo): class_weight={0: 1.0, 1: 5.0}, as scikit-learn users key it, was refused
    # by the model file (its keys are text); it is written keyed by the labels' text and read back as their weights
    from pipekit.data import CategoryBlock

    df = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.Utf8}).head(3000)
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=["Store", "DayOfWeek"], cont_names=["Customers"],
                  y_names="Promo", y_block=CategoryBlock(), splits=RandomSplitter(valid_pct=0.2, seed=42))
    model = RandomForest("classification", n_estimators=5, n_jobs=1, class_weight={0: 1.0, np.int64(1): 5.0})
    model.fit(tab.train)
    codes = {str(c): i for i, c in enumerate(model.classes_)}
    assert model.model_.class_weight == {codes["0"]: 1.0, codes["1"]: 5.0}
    loaded = pipekit.load(pipekit.save(model, tmp_path / "cw.pipekit"))
    assert np.array_equal(loaded.predict(tab.valid), model.predict(tab.valid))
    assert loaded.class_weight == {"0": 1.0, "1": 5.0}
    assert clone(loaded).fit(tab.train).model_.class_weight == model.model_.class_weight  # text keys fit alike


def test_forests_and_gbm_share_one_default_seed_shown_as_0():
    import inspect

    from pipekit.backends import GBM
    from pipekit.backends.base import SEED

    for cls in (RandomForest, ExtraTrees, GBM):
        assert inspect.signature(cls).parameters["seed"].default is SEED, cls
        assert "seed: 'int | None' = 0" in str(inspect.signature(cls)) or "seed: 'int' = 0" in str(
            inspect.signature(cls)), cls
        model = cls("regression")
        assert model.get_params()["seed"] == 0 and "seed" not in repr(model)
        with pytest.raises(ParameterError, match=r"seed=0 and random_state=5"):
            cls("regression", seed=0, random_state=5)
        assert cls("regression", random_state=5).seed == 5
