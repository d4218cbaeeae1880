"""A table's fitted blocks are built once per fitted state: ``learn.predict(row)``, ``dls.c``, ``dls.vocab`` and
``load_learner`` reuse them rather than build a target block (its vocabulary set up) on every read, and they follow
what they are built from (a refit with another target, another processor, a loaded learner); a copy or pickle of the
recipe carries none of them. ``TabularDataLoaders.from_csv`` infers the CSV's column types once per build, and a file
changed between two builds is read as it is then."""

from __future__ import annotations

import copy
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.data import CategoryBlock, RegressionBlock
from pipekit.data.seed import set_seed
from pipekit.learn import load_learner
from pipekit.tabular import TabularDataLoaders, TabularProcessor, TabularRecipe, tabular_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CATS, CONTS = ["workclass", "education", "sex"], ["fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv", skipinitialspace=True).iloc[:2000]


@pytest.fixture(scope="module")
def learn(adult):
    set_seed(0)
    dls = TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names="salary",
                                     valid_idx=list(range(1600, 2000)), bs=64)
    learn = tabular_learner(dls, layers=[10])
    learn.fit(1, 1e-2)
    return learn


@pytest.fixture
def setups(monkeypatch):
    """Counts ``CategoryBlock.setup`` calls (a table's target block is set up each time it is built)."""
    count = {"n": 0}
    original = CategoryBlock.setup

    def counted(self, *args, **kwargs):
        count["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CategoryBlock, "setup", counted)
    return count


def test_predict_and_the_loaders_answers_reuse_the_fitted_blocks(learn, adult, setups):
    learn.predict(adult.iloc[1700])
    setups["n"] = 0
    for i in range(3):
        label, _, probs = learn.predict(adult.iloc[1700 + i])
        assert label in ("<50k", ">=50k") and probs.shape == (2,)
    dls = learn.dls
    assert (dls.c, dls.vocab, dls.loss_kind, type(dls.y_block)) == (2, ["<50k", ">=50k"], "cross_entropy",
                                                                     CategoryBlock)
    assert setups["n"] == 0  # built before, reused
    assert dls.blocks[-1] is dls.y_block is learn.dls.recipe.fitted_blocks[-1]


def test_a_loaded_learner_builds_its_blocks_once(learn, adult, setups, tmp_path):
    learn.export(tmp_path / "tab.pkl")
    setups["n"] = 0
    loaded = load_learner(tmp_path / "tab.pkl")
    assert setups["n"] <= 1
    assert loaded.dls.vocab == ["<50k", ">=50k"] and loaded.dls.blocks[-1].column_name == "salary"
    setups["n"] = 0
    assert loaded.predict(adult.iloc[1700])[0] == learn.predict(adult.iloc[1700])[0]
    assert setups["n"] == 0


def test_the_blocks_follow_a_refit_with_another_target(adult):
    frame = pl.from_pandas(adult)
    mask = np.arange(len(frame)) < 1600
    p = TabularProcessor(cat_names=["workclass", "education"], cont_names=CONTS, y_names="salary")
    p.fit_transform(frame, mask)
    recipe = TabularRecipe(p)
    first = recipe.fitted_blocks
    assert recipe.fitted_blocks is first and first[-1].vocab == ["<50k", ">=50k"]
    p.set_params(y_names="sex")  # another target, the same processor refitted
    p.fit_transform(frame, mask)
    again = recipe.fitted_blocks
    assert again is not first and again[-1].vocab == ["Female", "Male"] and again[-1].column_name == "sex"
    p.set_params(y_names="age", y_block=RegressionBlock())
    p.fit_transform(frame, mask)
    assert isinstance(recipe.fitted_blocks[-1], RegressionBlock) and recipe.fitted_blocks[-1].column_name == "age"
    # another processor given to the recipe: its blocks
    other = TabularProcessor(cat_names=["race"], cont_names=["age"], y_names="salary")
    other.fit_transform(frame, mask)
    recipe.set_params(processor=other)
    assert recipe.fitted_blocks[0].cat_names == ["race"] and recipe.fitted_blocks[1].cont_names == ["age"]
    # without continuous inputs: the codes and the target
    recipe.set_params(with_cont=False)
    assert [type(b).__name__ for b in recipe.fitted_blocks] == ["TabularCatBlock", "CategoryBlock"]


def test_copies_and_pickles_of_the_recipe_carry_no_built_blocks(learn):
    recipe = learn.dls.recipe
    blocks = recipe.fitted_blocks
    for twin in (copy.copy(recipe), copy.deepcopy(recipe), pickle.loads(pickle.dumps(recipe))):
        assert "_blocks" not in vars(twin)
        assert twin.fitted_blocks is not blocks and twin.fitted_blocks[-1].vocab == blocks[-1].vocab
    assert pickle.dumps(recipe) == pickle.dumps(copy.copy(recipe))


@pytest.fixture
def inferences(monkeypatch):
    """Counts the ``pl.scan_csv`` calls that infer a CSV's column types (no schema given, rows to read types from)."""
    count: Counter[str] = Counter()
    original = pl.scan_csv

    def counted(source, *args, **kwargs):
        if "schema" not in kwargs and kwargs.get("infer_schema_length", 100) != 0:
            count[str(source)] += 1
        return original(source, *args, **kwargs)

    monkeypatch.setattr(pl, "scan_csv", counted)
    return count


def test_from_csv_infers_the_files_types_once(inferences):
    path = D.path("adult_sample") / "adult.csv"
    dls = TabularDataLoaders.from_csv(path, y_names="salary", cat_names=["workclass"], cont_names=["age"], seed=0)
    assert dls.vocab == ["<50k", ">=50k"]
    # one inference for its first row, its header and its columns: the file's types, and whether its first rows hold
    # a missing marker (two scans)
    assert inferences[str(path)] <= 2, inferences


def test_a_file_changed_between_two_builds_is_read_as_it_is_then(tmp_path, inferences):
    path = tmp_path / "t.csv"
    rows = [f"{i % 7},{'a' if i % 2 else 'b'},{'yes' if i % 3 else 'no'}" for i in range(40)]
    path.write_text("x,c,y\n" + "\n".join(rows) + "\n")
    kw = dict(y_names="y", cat_names=["c"], cont_names=["x"], valid_idx=list(range(30, 40)))
    assert TabularDataLoaders.from_csv(path, **kw).classes["c"] == ["#na#", "a", "b"]
    path.write_text("x,c,y\n" + "\n".join(r.replace(",a,", ",z,") for r in rows) + "\n")
    assert TabularDataLoaders.from_csv(path, **kw).classes["c"] == ["#na#", "b", "z"]
    assert inferences[str(Path(path))] <= 4
