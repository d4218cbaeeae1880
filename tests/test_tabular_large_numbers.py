"""Continuous columns with values float32 cannot hold as whole units (ids, counts past 2**24), on adult_sample with
id-like columns added: each keeps its distinct values through ``Normalize`` (centred in float64, then Float32) and
without it (kept Float64, as tree backends read the table), from a frame and from a CSV file; the choice is made on
the training rows, kept with the processing and followed by new rows and by a file it was saved to; every other
continuous column stays Float32, and the batches a net gets are float32.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import pipekit
from pipekit.backends import GBM, RandomForest
from pipekit.backends.data import as_data
from pipekit.core.errors import FieldError
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, TabularProcessor
from pipekit.tabular.processor import load_processor

N, N_TRAIN = 3000, 2400
CAT = ["workclass", "education"]
CONT = ["age", "fnlwgt", "fnlwgt_1e12", "rid"]
SPLITS = (list(range(N_TRAIN)), list(range(N_TRAIN, N)))


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    df = pl.read_csv(path("adult_sample") / "adult.csv").head(N)
    # an id past float32's whole numbers (a row number + 2**25) and a weight offset by 1e12 (float32 steps by 65,536)
    return df.with_columns((pl.col("fnlwgt") + 10 ** 12).alias("fnlwgt_1e12"),
                           (pl.int_range(pl.len(), dtype=pl.Int64) + 2 ** 25).alias("rid"))


def _train_distinct(df: pl.DataFrame, c: str) -> int:
    return df[c].head(N_TRAIN).n_unique()


def test_normalize_keeps_distinct_large_values(adult):
    tab = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=CAT, cont_names=CONT,
                  y_names="salary", splits=SPLITS)
    assert tab.processor.cont_float64_ == ["fnlwgt_1e12", "rid"]
    xs = tab.train.xs
    for c in ("fnlwgt_1e12", "rid"):
        assert xs[c].n_unique() == _train_distinct(adult, c), c
        assert xs[c].std() == pytest.approx(1.0, rel=1e-3)
    # the offset column scales to what the column without the offset scales to
    np.testing.assert_allclose(xs["fnlwgt_1e12"].to_numpy(), xs["fnlwgt"].to_numpy(), atol=1e-5)
    # Normalize's output is Float32, whatever the column was processed in
    assert {c: tab.frame.schema[c] for c in CONT} == dict.fromkeys(CONT, pl.Float32)


def test_without_normalize_large_columns_stay_float64(adult):
    tab = Tabular(adult, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=SPLITS)
    schema = tab.frame.schema
    assert (schema["age"], schema["fnlwgt"]) == (pl.Float32, pl.Float32)
    assert (schema["fnlwgt_1e12"], schema["rid"]) == (pl.Float64, pl.Float64)
    # every value as the data holds it, so a forest or LightGBM can tell the rows apart
    assert tab.frame["rid"].to_list() == [float(v) for v in adult["rid"]]
    assert tab.frame["fnlwgt_1e12"].to_list() == [float(v) for v in adult["fnlwgt_1e12"]]
    assert tab.train.xs["rid"].n_unique() == N_TRAIN


def test_csv_file_is_not_rounded_on_read(adult, tmp_path):
    csv = tmp_path / "adult_ids.csv"
    adult.write_csv(csv)
    tab = Tabular(csv, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=SPLITS)
    assert tab.processor.cont_float64_ == ["fnlwgt_1e12", "rid"]
    assert tab.frame["fnlwgt_1e12"].to_list() == [float(v) for v in adult["fnlwgt_1e12"]]
    assert tab.frame["rid"].to_list() == [float(v) for v in adult["rid"]]
    assert tab.frame.schema["age"] == pl.Float32
    normed = Tabular(csv, procs=[Categorify, FillMissing, Normalize], cat_names=CAT, cont_names=CONT,
                     y_names="salary", splits=SPLITS)
    assert normed.train.xs["rid"].n_unique() == N_TRAIN


def test_ordinary_columns_stay_float32(adult):
    tab = Tabular(path("adult_sample") / "adult.csv", cat_names=CAT, cont_names=["age", "fnlwgt", "education-num"],
                  y_names="salary", splits=SPLITS)
    assert tab.processor.cont_float64_ == []
    assert all(tab.frame.schema[c] == pl.Float32 for c in tab.processor.cont_names_)
    # a processing with none writes the record it wrote before the field was kept (same signature, same file)
    assert "cont_float64_" not in tab.processor.to_record()["state"]
    # 4 bytes a value, not 8
    assert tab.frame.select(tab.processor.cont_names_).estimated_size() == pytest.approx(
        4 * len(tab.frame) * len(tab.processor.cont_names_), rel=0.05)


def test_batches_are_float32(adult):
    for procs in ([Categorify, FillMissing, Normalize], [Categorify, FillMissing]):
        tab = Tabular(adult, procs=procs, cat_names=CAT, cont_names=CONT, y_names="salary", splits=SPLITS)
        cats, conts, _ = tab.train.to_torch()
        assert conts.dtype == pytest.importorskip("torch").float32
        assert conts.shape == (N_TRAIN, len(CONT))
        dls = tab.dataloaders(bs=64)
        x_cat, x_cont, _ = dls.train.one_batch()
        assert str(x_cont.dtype) == "torch.float32"


def test_decision_is_fitted_state_and_survives_saving(adult, tmp_path):
    tab = Tabular(adult, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=SPLITS)
    # new rows with small ids still follow the training rows' choice
    small = adult.tail(5).with_columns(pl.Series("rid", [1, 2, 3, 2 ** 24 + 1, 2 ** 25 + 3]))
    new = tab.new(small)
    assert new.xs.schema["rid"] == pl.Float64
    assert new.xs["rid"].to_list() == [1.0, 2.0, 3.0, 2.0 ** 24 + 1, 2.0 ** 25 + 3]
    pipekit.save(tab.processor, tmp_path / "proc.pipekit")
    loaded = load_processor(tmp_path / "proc.pipekit")
    assert loaded.cont_float64_ == ["fnlwgt_1e12", "rid"]
    out = loaded.transform(adult.tail(600))
    assert out.schema["rid"] == pl.Float64
    assert out["rid"].to_list() == [float(v) for v in adult["rid"].tail(600)]
    assert out.equals(tab.frame.tail(600))


def test_record_without_the_field_loads_as_float32(adult):
    tab = Tabular(adult, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=SPLITS)
    record = json.loads(json.dumps(tab.processor.to_record()))
    assert record["state"]["cont_float64_"] == ["fnlwgt_1e12", "rid"]
    del record["state"]["cont_float64_"]  # a file written before the field
    old = TabularProcessor.from_record(record)
    assert old.cont_float64_ == []
    assert old.transform(adult.head(10)).schema["rid"] == pl.Float32
    record["state"]["cont_float64_"] = ["education"]  # not a continuous input: a damaged file
    with pytest.raises(FieldError, match="cont_float64_"):
        TabularProcessor.from_record(record)


def test_gbm_splits_on_large_ids(adult):
    # the target changes every 100 rows: only the id tells the rows apart (at 1e12 one float32 spans 65,536 ids)
    df = adult.with_columns(((pl.int_range(pl.len()) // 100) % 2).cast(pl.Float64).alias("t"),
                            (pl.int_range(pl.len(), dtype=pl.Int64) + 10 ** 12).alias("id"))
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=[], cont_names=["id"], y_names="t",
                  splits=SPLITS)
    model = GBM("regression", n_estimators=50, early_stopping_rounds=None).fit(tab.train)
    pred = model.predict(tab.train)
    assert np.corrcoef(pred, tab.train.y_array())[0, 1] > 0.9


def test_tree_backends_read_float64_only_where_a_column_needs_it(adult):
    tab = Tabular(adult, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=SPLITS)
    d = as_data(tab.train)
    assert d.matrix(["age", "fnlwgt"]).dtype == np.float32  # ordinary numbers: half the memory
    wide = d.matrix(["age", "rid"])
    assert wide.dtype == np.float64 and len(np.unique(wide[:, 1])) == N_TRAIN
    assert d.matrix(["age", "rid"], dtype=np.float32).dtype == np.float32  # a backend may still ask
    # scikit-learn's trees split on float32 whatever they get: the forest asks for it, with no float64 copy made
    forest = RandomForest("classification", n_estimators=2).fit(d.select(["age", "rid"]))
    assert forest.matrix(d.select(["age", "rid"])).dtype == np.float32


def test_a_csv_processed_by_streaming_keeps_large_values(adult, tmp_path):
    from pipekit.tabular import process_to_parquet

    csv = tmp_path / "adult_ids.csv"
    adult.write_csv(csv)
    proc = process_to_parquet(csv, tmp_path / "out.parquet", procs=[Categorify, FillMissing], cat_names=CAT,
                              cont_names=CONT, y_names="salary", valid_pct=0.2, seed=0)
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert sorted(proc.cont_float64_) == ["fnlwgt_1e12", "rid"]
    assert out["rid"].dtype == pl.Float64 and out["rid"].n_unique() == N
    assert (out["fnlwgt_1e12"] - 10 ** 12).sort().to_list() == adult["fnlwgt"].cast(pl.Float64).sort().to_list()
    assert out["age"].dtype == pl.Float32


def test_a_large_column_with_a_decimal_after_the_rows_types_come_from_is_read(adult, tmp_path):
    """The column read again as Float64 takes its type from the processing, not from the file's first rows: a
    decimal after 10,000 whole numbers past 2**24 reads as a number, by every reader of a CSV."""
    from pipekit.tabular import TabularDataLoaders, process_to_parquet

    df = pl.concat([adult] * 4).with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + 10 ** 12).cast(pl.String)
                                             .alias("rid"))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == df.height - 1).then(pl.lit("1000000000000.5"))
                         .otherwise(pl.col("rid")).alias("rid"))
    csv = tmp_path / "late_decimal.csv"
    df.write_csv(csv)
    tab = Tabular(csv, procs=[Categorify, FillMissing], cat_names=CAT, cont_names=["age", "rid"], y_names="salary",
                  splits=(list(range(10_000)), list(range(10_000, df.height))))
    assert tab.processor.cont_float64_ == ["rid"] and tab.valid.items["rid"][-1] == 1_000_000_000_000.5
    dls = TabularDataLoaders.from_csv(csv, y_names="salary", cat_names=CAT, cont_names=["age", "rid"], bs=64, seed=0)
    assert dls.tabular.processor.cont_float64_ == ["rid"]
    proc = process_to_parquet(csv, tmp_path / "out.parquet", procs=[Categorify, FillMissing], cat_names=CAT,
                              cont_names=["age", "rid"], y_names="salary", valid_pct=0.2, seed=0)
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert proc.cont_float64_ == ["rid"] and out["rid"].n_unique() == df.height


def test_a_bare_frame_of_large_ids_is_read_as_float64_by_a_tree(adult):
    ids = (pl.int_range(400, dtype=pl.Int64, eager=True) + 2 ** 24 + 1).cast(pl.Float64)
    d = as_data(pl.DataFrame({"id": ids, "age": adult["age"].head(400).cast(pl.Float64)}),
                y=np.asarray(adult["salary"].head(400)))
    assert d.matrix(["id"]).dtype == np.float64 and len(np.unique(d.matrix(["id"]))) == 400
    assert d.matrix(["age"]).dtype == np.float32
