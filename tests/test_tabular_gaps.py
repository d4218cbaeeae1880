"""Gaps between the ways a tabular model reads and processes data, on the real data sets: every reading of a new
CSV file follows the reading the fitted processing recorded, the lazy path refuses what the eager one refuses,
class targets decode to their own type (also from an export in a fresh process), and an error names the file
its rows came from exactly once."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import pipekit
from pipekit.tabular import Tabular, TabularDataLoaders

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT = DATA / "adult_sample" / "adult.csv"
CATS, CONTS = ["workclass", "education", "marital-status"], ["age", "fnlwgt"]


@pytest.fixture(scope="module")
def adult_dls():
    """adult.csv as the book reads it: its text cells begin with a space, which from_csv drops."""
    return TabularDataLoaders.from_csv(ADULT, cat_names=CATS, cont_names=CONTS, y_names="salary", bs=256, seed=0)


# 1. a new CSV file is read as the training file was, on every path that reads one through the fitted processing
def test_every_reading_of_a_new_csv_follows_the_recorded_reading(tmp_path, adult_dls):
    dls = adult_dls
    assert " Private" in ADULT.read_text()[:400] and "Private" in dls.tabular.classes["workclass"]
    train = dls.tabular.frame.select(CATS).to_numpy()
    loaded = pipekit.load(pipekit.save(dls.recipe, tmp_path / "recipe.pipekit"))
    readings = {
        "dls.tabular.new": lambda: dls.tabular.new(ADULT).cats.to_numpy(),
        "dls.test_dl": lambda: np.concatenate([b[0].numpy() for b in dls.test_dl(ADULT)]),
        "a loaded recipe": lambda: loaded.new_datasets(ADULT).gather(np.arange(len(train)))[0].numpy(),
        "Tabular(path, skipinitialspace=True)": lambda: Tabular(
            ADULT, cat_names=CATS, cont_names=CONTS, y_names="salary", skipinitialspace=True).frame.select(CATS)
        .to_numpy(),
    }
    for name, read in readings.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a category read with its space would be unseen: a warning
            codes = read()
        assert np.array_equal(codes, train), name
    tab = Tabular(ADULT, cat_names=CATS, cont_names=CONTS, y_names="salary", skipinitialspace=True)
    assert tab.new(ADULT).cats.equals(tab.frame.select(CATS))
