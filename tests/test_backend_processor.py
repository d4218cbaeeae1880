"""A backend fitted on a Tabular's split keeps its procs (``processor_``) in its file, as an ensemble does: loaded in
a fresh process, ``model.predict(model.process(raw_df))`` gives what ``model.predict(tab.new(raw_df))`` gave where the
Tabular was built. A file written before backends kept them loads and predicts processed rows as before."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM, ExtraTrees, RandomForest, as_data
from pipekit.core import DataError, ExportError, ParameterError
from pipekit.data import RandomSplitter
from pipekit.tabular import Tabular

needs_data = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")
pytestmark = needs_data


@pytest.fixture(scope="module")
def adult() -> tuple[pl.DataFrame, Tabular]:
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(3000)
    tab = Tabular(df.head(2500), cat_names=["workclass", "education"], cont_names=["age", "hours-per-week"],
                  y_names="salary", splits=RandomSplitter(0.2, seed=42))
    return df.tail(500), tab


@pytest.fixture(scope="module")
def rossmann() -> tuple[pl.DataFrame, Tabular]:
    train = pl.read_csv(D.path("rossmann_sample") / "train.csv", infer_schema_length=None)
    store = pl.read_csv(D.path("rossmann_sample") / "store.csv", infer_schema_length=None)
    df = train.filter(pl.col("Open") == 1).join(store, on="Store").head(4000).with_columns(
        pl.col("Sales").cast(pl.Float64).log().alias("LogSales"), pl.col("StateHoliday").cast(pl.Utf8))
    tab = Tabular(df.head(3500), cat_names=["Store", "DayOfWeek", "StoreType", "Assortment", "StateHoliday",
                                            "PromoInterval"],
                  cont_names=["CompetitionDistance", "Promo", "SchoolHoliday"], y_names="LogSales",
                  y_block="regression", splits=RandomSplitter(0.2, seed=0))
    return df.tail(500).drop("LogSales", "Sales"), tab


def _fresh_process(model_path: Path, rows_path: Path, out: Path) -> None:
    """Load the model in a new interpreter (nothing of the Tabular there) and predict the raw rows."""
    code = ("import sys, numpy as np, polars as pl, pipekit\n"
            "m = pipekit.load(sys.argv[1])\n"
            "raw = pl.read_parquet(sys.argv[2])\n"
            "np.save(sys.argv[3], m.predict(m.process(raw)))\n")
    subprocess.run([sys.executable, "-c", code, str(model_path), str(rows_path), str(out)], check=True,
                   env={**os.environ, "PIPEKIT_QUIET": "1"}, timeout=300)


@pytest.mark.parametrize("make", [lambda: GBM("classification", n_estimators=40, n_jobs=1),
                                  lambda: RandomForest("classification", n_estimators=20, n_jobs=1, seed=0)],
                         ids=["gbm", "forest"])
def test_saved_backend_processes_raw_rows_in_a_fresh_process(adult, make, tmp_path):
    raw, tab = adult
    model = make().fit(tab.train, tab.valid)
    want = model.predict(tab.new(raw))
    pipekit.save(model, tmp_path / "m.pipekit")
    raw.write_parquet(tmp_path / "raw.parquet")
    _fresh_process(tmp_path / "m.pipekit", tmp_path / "raw.parquet", tmp_path / "p.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want)
    # in this process too, from the exported file; the raw rows themselves are still refused, naming process
    loaded = pipekit.load(model.export(tmp_path / "again.pipekit"))
    np.testing.assert_array_equal(loaded.predict(loaded.process(raw)), want)
    np.testing.assert_array_equal(loaded.predict(loaded.process(raw.row(3, named=True))), want[3:4])
    with pytest.raises(DataError, match=r"model\.predict\(model\.process\(df\)\)"):
        loaded.predict(raw)
    assert loaded.processor().cat_names == tab.train.processor.cat_names


def test_saved_forest_on_rossmann_regression(rossmann, tmp_path):
    raw, tab = rossmann
    rf = ExtraTrees("regression", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    want = rf.predict(tab.new(raw))
    raw.write_parquet(tmp_path / "raw.parquet")
    _fresh_process(rf.export(tmp_path / "rf.pipekit"), tmp_path / "raw.parquet", tmp_path / "p.npy")
    got = np.load(tmp_path / "p.npy")
    assert got.shape == (len(raw),) and np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)


def test_file_without_procs_loads_and_predicts_as_before(adult, tmp_path):
    """A file written before backends kept their procs: no processor_ in its state."""
    raw, tab = adult
    g = GBM("classification", n_estimators=20, n_jobs=1).fit(tab.train)
    path = g.export(tmp_path / "g.pipekit")
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    record = json.loads(members["record.json"])
    assert "processor_" in record["state"]
    del record["state"]["processor_"]
    members["record.json"] = json.dumps(record).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    (tmp_path / "old.pipekit").write_bytes(buf.getvalue())
    old = pipekit.load(tmp_path / "old.pipekit")
    np.testing.assert_array_equal(old.predict(tab.new(raw)), g.predict(tab.new(raw)))
    with pytest.raises(ParameterError, match=r"keeps no procs: .* written before models kept them"):
        old.process(raw)
    with pytest.raises(DataError, match="these rows look unprocessed"):
        old.predict(raw)
    # a processor_ that is not the fitted procs of a Tabular is refused at load, naming it
    record["state"]["processor_"] = [1, 2]
    members["record.json"] = json.dumps(record).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    (tmp_path / "bad.pipekit").write_bytes(buf.getvalue())
    with pytest.raises(ExportError, match="processor_ must be the fitted procs of a Tabular"):
        pipekit.load(tmp_path / "bad.pipekit")


def test_bare_frame_model_keeps_no_procs(adult):
    _, tab = adult
    rf = RandomForest("classification", n_estimators=5, n_jobs=1).fit(as_data(tab.train.xs, y=tab.train.y))
    assert rf.processor_ is None
    with pytest.raises(ParameterError, match=r"fitted on a bare frame .*tab\.new\(df\)"):
        rf.process(tab.train.xs)
