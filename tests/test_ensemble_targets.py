"""Backends, the tabular net and ensembles on adult.csv read as ``TabularDataLoaders.from_csv`` reads it: raw rows
processed as the Tabular processes them, and class labels decoded to the target's own type, through files."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import torch
from test_models_helpers import ADULT_CATS, ADULT_CONTS

from pipekit.backends import GBM, RandomForest, as_data, load_model
from pipekit.ensemble import BaggedModel, TorchTabular, WeightedEnsemble
from pipekit.tabular import Tabular
from pipekit.datasets import path

CSV = path("adult_sample") / "adult.csv"


@pytest.fixture(scope="module")
def csv_tab():
    """adult.csv read from its path with the spaces after each comma dropped (' Private' is 'Private'), and the
    rows of its two splits."""
    n = pl.scan_csv(CSV).select(pl.len()).collect().item()
    idx = np.random.default_rng(0).permutation(n)
    rows = (np.sort(idx[:6000]), np.sort(idx[6000:8000]))
    return Tabular(CSV, cat_names=ADULT_CATS, cont_names=ADULT_CONTS, y_names="salary", skipinitialspace=True,
                   splits=rows), rows


def test_an_ensemble_reads_a_csv_file_as_its_tabular_did(csv_tab, tmp_path):
    tab, (train_rows, valid_rows) = csv_tab
    tr, va = tab.train, tab.valid
    assert "Private" in tr.classes["workclass"]
    rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(tr)
    bag = BaggedModel(GBM("classification", n_estimators=40, n_jobs=1), n_folds=2).fit(tr)
    ens = WeightedEnsemble([rf, bag], n_iter=5).fit(va)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a category read with its space (' Private') is unseen, and warned about
        whole = as_data(ens.process(CSV))
    assert whole.xs[train_rows].equals(as_data(tr).xs.select(whole.xs.columns))
    np.testing.assert_array_equal(ens.predict(whole.take(valid_rows)), ens.predict(va))
    # a dict row is processed as the Tabular processes it (its values as given: 'Private' is the training value)
    raw = pl.read_csv(CSV).with_columns(pl.col(pl.String).str.strip_chars_start()).row(int(valid_rows[3]), named=True)
    assert ens.process(raw).xs.equals(tab.new(raw).xs)
    np.testing.assert_array_equal(ens.predict(ens.process(raw)), ens.predict(as_data(va).take(np.array([3]))))
    # and so through a file: the procs, their reading included, travel with the ensemble
    back = load_model(ens.export(tmp_path / "ens.pipekit"))
    np.testing.assert_array_equal(back.predict(back.process(CSV)), ens.predict(whole))


def salary_tab(kind: str) -> Tabular:
    """adult's first 4,000 rows, the target whether salary is >=50k as a bool column or as 0/1 integers."""
    df = pl.read_csv(CSV).head(4000)
    rich = df["salary"].str.strip_chars() == ">=50k"
    df = df.with_columns((rich if kind == "bool" else rich.cast(pl.Int64)).alias("rich")).drop("salary")
    n = df.height
    return Tabular(df, cat_names=ADULT_CATS, cont_names=ADULT_CONTS, y_names="rich", y_block="category",
                   splits=(np.arange(int(n * 0.8)), np.arange(int(n * 0.8), n)))


@pytest.mark.parametrize("kind,classes", [("bool", [False, True]), ("int", [0, 1])])
def test_models_decode_classes_to_the_targets_type(kind, classes, tmp_path):
    torch.set_num_threads(1)
    tab = salary_tab(kind)
    tr, va = tab.train, tab.valid
    assert tab.processor.y_classes_ == classes
    models = {"rf": RandomForest("classification", n_estimators=20, n_jobs=1).fit(tr),
              "gbm": GBM("classification", n_estimators=40, n_jobs=1).fit(tr),
              "net": TorchTabular("classification", epochs=1, seed=0).fit(tr, va)}
    models["ens"] = WeightedEnsemble(list(models.values()), n_iter=5).fit(va)
    truth = np.asarray(tab.processor.y_classes_)[va.ys.to_numpy().ravel()]
    for name, m in models.items():
        back = load_model(m.export(tmp_path / f"{name}.pipekit"))
        for model in (m, back):
            labels = model.predict_labels(va)
            assert model.classes_.tolist() == classes and type(model.classes_.tolist()[0]) is type(classes[0]), name
            assert type(labels.tolist()[0]) is type(classes[0]) and set(labels.tolist()) <= set(classes), name
            assert np.mean(labels == truth) > 0.75, name
        np.testing.assert_allclose(back.predict(va), m.predict(va), atol=1e-6)
    report = models["ens"].report(va)
    assert report["accuracy"][-1] == pytest.approx(models["ens"].score(va))
