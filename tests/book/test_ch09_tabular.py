"""Chapter 9 (and chapter 1's tabular model), as a reader writes it: adult.csv through
``TabularDataLoaders.from_csv`` with the book's columns and procs, a ``tabular_learner``, then one person's
income predicted from a row in every form a user holds it, the same after export in a fresh process; and a
gradient-boosting model on the same processed data, asked about a pandas row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from book_helpers import fresh_predictions, probs_of

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.learn import accuracy
from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner

path = D.path("adult_sample")
CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONTS = ["age", "fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def learn(one_torch_thread):
    dls = TabularDataLoaders.from_csv(path / "adult.csv", path=path, y_names="salary", cat_names=CATS,
                                      cont_names=CONTS, procs=[Categorify, FillMissing, Normalize], bs=256, seed=42)
    pipekit.set_seed(42)
    learn = tabular_learner(dls, metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    return learn


@pytest.fixture(scope="module")
def rows():
    # as pandas reads the book's CSV: spaces after the commas dropped
    return pd.read_csv(path / "adult.csv", skipinitialspace=True)


def test_trained_beats_the_majority(learn):
    _, targs = learn.get_preds()
    majority = max(float(targs.float().mean()), 1 - float(targs.float().mean()))
    assert learn.recorder.value("accuracy") > majority + 0.03, (learn.recorder.value("accuracy"), majority)


def test_predict_a_row_in_every_form(learn, rows, tmp_path):
    r = rows.iloc[7]
    forms = {"pandas Series": r, "dict": r.to_dict(), "one-row pandas frame": rows.iloc[[7]],
             "one-row polars frame": pl.from_pandas(rows.iloc[[7]]), "inputs only": {c: r[c] for c in CATS + CONTS}}
    preds = {k: learn.predict(v) for k, v in forms.items()}
    ref = preds["pandas Series"]
    assert ref[0] in ("<50k", ">=50k") and learn.dls.vocab[int(ref[1])] == ref[0]
    for k, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs_of(ref), atol=1e-6), k
    # the book's row, row.iloc[0] of the processed frame, is one person: more than one is refused
    with pytest.raises(ValueError, match="one item; this DataFrame has 2 rows"):
        learn.predict(rows.iloc[:2])
    with pytest.raises(ValueError, match="dict row"):
        learn.predict("Private")
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in r.to_dict().items()}
    there = fresh_predictions(learn.export(tmp_path / "adult.pipekit"), [("row", row), ("pandas_row", row)], tmp_path)
    for decoded, probs in there:
        assert decoded == ref[0] and np.allclose(probs, probs_of(ref), atol=1e-6)


def test_gbm_on_the_same_data_reads_pandas_rows(learn, rows):
    tab = learn.dls.tabular
    gbm = GBM("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train, tab.valid)
    assert gbm.valid_score_ > 0.8  # accuracy, above the majority's 0.76
    processed = tab.new(rows.iloc[[7]])
    ref = gbm.predict(processed)
    assert ref.shape == (1, 2)
    xs = processed.xs  # rows given as pandas come back as pandas, labelled as they were
    assert isinstance(xs, pd.DataFrame) and list(xs.index) == [7]
    for form in (xs, xs.iloc[0], xs.iloc[0].to_dict(), tab.new(rows.iloc[7]), tab.new(rows.iloc[7].to_dict())):
        assert np.allclose(gbm.predict(form), ref)
