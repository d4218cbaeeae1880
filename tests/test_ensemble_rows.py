"""A backend and an ensemble of it, fitted on the same adult Tabular, hold the rows given to predict to one rule
(``pipekit.backends.data.check_rows``): the same error, word for word, for each kind of bad row, and the same
predictions for good rows in every form a user has them."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from test_models_helpers import adult_tab

from pipekit.backends import GBM, load_model
from pipekit.core import DataError
from pipekit.datasets import path
from pipekit.ensemble import BaggedModel, MeanEnsemble
from pipekit.tabular import Categorify, FillMissing


@pytest.fixture(scope="module")
def tab():
    return adult_tab(3000)


@pytest.fixture(scope="module")
def models(tab, tmp_path_factory):
    """A GBM fitted on adult's training rows and the models that must read rows as it does: an ensemble of it fitted
    on the split (it keeps the procs), one never fitted (it knows only what its member knows), both read back from
    files, and a bagged GBM."""
    folder = tmp_path_factory.mktemp("rows")
    gbm = GBM("classification", n_estimators=30, n_jobs=1).fit(tab.train)
    ens = MeanEnsemble([gbm]).fit(tab.train)
    return {"gbm": gbm, "ensemble": ens, "unfitted ensemble": MeanEnsemble([gbm]),
            "loaded gbm": load_model(gbm.export(folder / "gbm.pipekit")),
            "loaded ensemble": load_model(ens.export(folder / "ens.pipekit")),
            "bagged": BaggedModel(GBM("classification", n_estimators=30, n_jobs=1), n_folds=2).fit(tab.train)}


def _raw(tab):
    return pl.read_csv(path("adult_sample") / "adult.csv").head(3000)[tab.valid_idx[:40]]


def _raw_units(tab):
    """Processed category codes, but the normalised columns back in the data's own units (years, dollars)."""
    xs = tab.valid.xs.head(40)
    norm = next(p for p in tab.processor.procs if vars(p).get("means_"))
    return xs.with_columns(pl.col(c) * norm.stds_[c] + norm.means_[c] for c in norm.means_)


BAD = {
    "a missing input": (lambda tab: tab.valid.xs.drop("age"), r"the model's input column\(s\) \['age'\] missing"),
    "a missing category input": (lambda tab: tab.valid.xs.drop("workclass"), r"\['workclass'\] missing"),
    "no rows": (lambda tab: tab.valid.xs.head(0), "^predict got 0 rows: there is nothing to predict"),
    "no rows, pandas": (lambda tab: tab.valid.xs.head(0).to_pandas(), "^predict got 0 rows"),
    "categories as text": (lambda tab: tab.valid.xs.with_columns(pl.col("workclass").cast(pl.String)),
                           r"category column 'workclass' is String, where .* its \d+ category codes as Int8"),
    "fractional codes": (lambda tab: tab.valid.xs.with_columns(pl.col("education").cast(pl.Float64) + 0.5),
                         r"category column 'education' is Float64"),
    "codes above the vocabulary": (lambda tab: tab.valid.xs.with_columns(pl.col("workclass").cast(pl.Int64) + 100),
                                   r"category column 'workclass' holds 1\d\d \(row \d+\), outside the \d+ category "
                                   r"codes"),
    "a negative code": (lambda tab: tab.valid.xs.with_columns(pl.lit(-1).alias("race")), r"'race' holds -1 \(row 0\)"),
    "codes above the vocabulary, Int8": (
        lambda tab: tab.valid.xs.with_columns(pl.lit(100, pl.Int8).alias("race")), r"'race' holds 100 \(row 0\)"),
    "a number as text": (lambda tab: tab.valid.xs.with_columns(pl.col("age").cast(pl.String)),
                         r"column 'age' holds String values"),
    "a dict row with text": (lambda tab: {**tab.valid.xs.row(0, named=True), "fnlwgt": "n/a"},
                             r"column 'fnlwgt' holds String values \(e.g. \['n/a'\]\)"),
    "an infinite value": (lambda tab: tab.valid.xs.with_columns(pl.lit(float("inf")).alias("age")),
                          r"column 'age' holds inf at row 0"),
    "raw rows": (_raw, r"\['education-num_na'\] missing"),
    "raw rows with the filled flag": (lambda tab: _raw(tab).with_columns(pl.lit(False).alias("education-num_na")),
                                      r"these rows look unprocessed: column '.*' has a median of"),
    "numbers in their own units": (_raw_units, r"these rows look unprocessed: column '.*' has a median of"),
    "a split of other procs": (lambda tab: adult_tab(3000, (Categorify, FillMissing)).valid, "different procs"),
}


def _error(model, rows):
    with pytest.raises(DataError) as e:
        model.predict(rows)
    return str(e.value)


@pytest.mark.parametrize("kind", list(BAD))
def test_a_backend_and_its_ensemble_refuse_a_bad_row_with_the_same_error(tab, models, kind):
    make, message = BAD[kind]
    said = {name: _error(m, make(tab)) for name, m in models.items()}
    assert re.search(message, said["gbm"]), said["gbm"]
    assert {name: s for name, s in said.items() if s != said["gbm"]} == {}


GOOD = {
    "the split": lambda tab: tab.valid,
    "its frame": lambda tab: tab.valid.xs,
    "as pandas": lambda tab: tab.valid.xs.to_pandas(),
    "new rows through the Tabular": lambda tab: tab.new(_raw(tab)),
    "codes widened to Int64": lambda tab: tab.valid.xs.with_columns(pl.col(c).cast(pl.Int64) for c in tab.cat_names),
    "columns in another order, and one more": lambda tab: tab.valid.xs.select(reversed(tab.valid.xs.columns))
    .with_columns(extra=pl.lit(1.0)),
    "a missing category": lambda tab: tab.valid.xs.with_columns(pl.lit(None, pl.Int8).alias("workclass")),
}


@pytest.mark.parametrize("form", list(GOOD))
def test_a_backend_and_its_ensemble_predict_the_same_from_good_rows(tab, models, form):
    rows = GOOD[form](tab)
    gbm = models["gbm"].predict(rows)
    for name in ("ensemble", "unfitted ensemble", "loaded gbm", "loaded ensemble"):
        np.testing.assert_allclose(models[name].predict(rows), gbm, rtol=1e-12, err_msg=name)
    assert models["bagged"].predict(rows).shape == gbm.shape
    if form not in ("new rows through the Tabular", "a missing category"):  # else other rows than the split's
        np.testing.assert_allclose(gbm, models["gbm"].predict(tab.valid), rtol=1e-6)


def test_one_row_as_a_dict_or_a_pandas_row_is_read_alike(tab, models):
    expected = models["gbm"].predict(tab.valid)[:1]
    for row in (tab.valid.xs.row(0, named=True), tab.valid.xs.to_pandas().iloc[0]):
        for name, m in models.items():
            if name != "bagged":
                np.testing.assert_allclose(m.predict(row), expected, rtol=1e-6, err_msg=name)


def test_a_model_file_written_before_the_row_form_was_kept_reads_rows_as_it_did(tab, models, tmp_path):
    """Files written before backends kept the codes' type and the normalised columns' raw units load, and hold rows
    only to what they know: the columns and the range of the codes."""
    import json
    import zipfile

    src = models["gbm"].export(tmp_path / "gbm.pipekit")
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    record = json.loads(files["record.json"])
    assert set(record["state"]) >= {"cat_dtypes_", "norm_stats_"}
    del record["state"]["cat_dtypes_"], record["state"]["norm_stats_"]
    files["record.json"] = json.dumps(record).encode()
    old = tmp_path / "old.pipekit"
    with zipfile.ZipFile(old, "w") as z:
        for n, v in files.items():
            z.writestr(n, v)
    loaded = load_model(old)
    np.testing.assert_allclose(loaded.predict(tab.valid.xs), models["gbm"].predict(tab.valid))
    assert loaded.predict(_raw_units(tab)).shape == (40, 2)  # the raw units are not known to it: taken as before
    make, message = BAD["codes above the vocabulary"]
    assert _error(loaded, make(tab)) == _error(models["gbm"], make(tab))


def test_counting_the_rows_predict_got_lets_an_unexpected_error_through(tab, monkeypatch):
    """predict counts the rows it was given to say "predict got 0 rows"; input as_data cannot read counts as no
    data, but an error that says nothing about the rows (a fault inside the reading) is raised, not swallowed."""
    from pipekit.backends import base

    assert base._row_count(tab.valid.xs.head(0)) == 0
    assert base._row_count([1.0, 2.0]) is None  # as_data's ParameterError: not data a model reads

    def broken(data: object, **kwargs: object) -> None:
        raise RuntimeError("a fault while reading the rows")

    monkeypatch.setattr(base, "as_data", broken)
    with pytest.raises(RuntimeError, match="a fault while reading"):
        base._row_count(tab.valid.xs)
