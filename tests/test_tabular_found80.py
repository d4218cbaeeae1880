"""Saving and streaming tables on the real adult sample.

A split listing a training row several times (oversampling) is saved and loaded with its repeats. A
``process_to_parquet`` table records the SHA-256 of its processing, so a stale ``.pipekit`` beside it is refused. The
book's ``to.train.new(df)`` processes new rows as ``to.new(df)`` does. A ``valid=`` expression that cannot run on the
columns' types is refused as the expression's error, not the file's. A ``.csv.gz`` or ``.zip`` source is streamed
from a plain copy, never read whole."""

from __future__ import annotations

import datetime as dt
import gzip
import zipfile

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

import pipekit.datasets as D
import pipekit.tabular.core as tabular_core
from pipekit.core.errors import ExportError, ParameterError
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, load_pickle, process_to_parquet, save_pickle

CATS, CONTS = ["workclass", "education"], ["age", "education-num"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:600].reset_index(drop=True)


@pytest.fixture
def adult_csv(adult, tmp_path):
    path = tmp_path / "adult.csv"
    adult.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- oversampled training rows saved


def _oversampled(adult: pd.DataFrame) -> Tabular:
    train, valid = list(range(500)), list(range(500, 600))
    rich = [i for i in train if adult.salary[i] == ">=50k"]
    return Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=CATS, cont_names=CONTS,
                   y_names="salary", splits=(train + rich * 3, valid))


def test_oversampled_tabular_saves_and_loads_with_its_repeats(adult, tmp_path):
    to = _oversampled(adult)
    back = Tabular.load(to.save(tmp_path / "to.parquet"))
    np.testing.assert_array_equal(back.train_idx, to.train_idx)
    np.testing.assert_array_equal(back.valid_idx, to.valid_idx)
    assert len(back.train) == len(to.train) > 500
    assert back.train.y.tolist() == to.train.y.tolist()
    pd.testing.assert_frame_equal(back.train.xs, to.train.xs)
    pickled = load_pickle(save_pickle(tmp_path / "to.pkl", to))
    assert pickled.train.y.tolist() == to.train.y.tolist()


def test_oversampled_small_table_gives_back_the_listed_rows(tmp_path):
    df = pl.DataFrame({"a": ["x", "y", "x", "y", "x", "y"], "t": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    to = Tabular(df, procs=[], cat_names=["a"], y_names="t", splits=([0, 1, 2, 3, 3, 3], [4, 5]))
    back = Tabular.load(to.save(tmp_path / "to.parquet"))
    assert back.train.y.to_list() == [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]
    assert back.valid.y.to_list() == [5.0, 6.0]


def test_damaged_places_of_an_oversampled_split_are_refused(adult, tmp_path):
    path = _oversampled(adult).save(tmp_path / "to.parquet")
    table = pq.read_table(path)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    col = "__pipekit_train_positions__"
    damaged = frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit([1], dtype=pl.List(pl.Int64)))
                                 .otherwise(pl.col(col)).alias(col))  # row 0 takes row 1's place too
    damaged.write_parquet(path, metadata={k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()
                                          if not k.startswith(b"ARROW")})
    with pytest.raises(ExportError, match="must number the .* training rows .* each once"):
        Tabular.load(path)


def test_a_table_saved_without_repeats_keeps_one_position_column(adult, tmp_path):
    to = Tabular(adult, procs=[Categorify], cat_names=CATS, y_names="salary",
                 splits=(list(range(500))[::-1], list(range(500, 600))))
    path = to.save(tmp_path / "to.parquet")
    names = pq.read_schema(path).names
    assert "__pipekit_split_position__" in names and "__pipekit_train_positions__" not in names
    np.testing.assert_array_equal(Tabular.load(path).train_idx, to.train_idx)


# ---------------------------------------------------------------- process_to_parquet records its processing


def test_process_to_parquet_refuses_a_stale_processing_beside_its_table(adult, adult_csv, tmp_path):
    out = tmp_path / "adult_out.parquet"
    process_to_parquet(adult_csv, out, procs=[Categorify], cat_names=["workclass"], y_names="salary")  # run 1
    adult.iloc[::-1].assign(workclass=lambda d: d.workclass.str.upper()).to_csv(adult_csv, index=False)
    elsewhere = tmp_path / "v2.pipekit"
    process_to_parquet(adult_csv, out, procs=[Categorify], cat_names=["workclass"], y_names="salary",
                       processor_path=elsewhere)  # run 2: the processing written elsewhere, run 1's left beside
    with pytest.raises(ExportError, match="is not the one written with this table"):
        Tabular.load(out)
    back = Tabular.load(out, processor=elsewhere)
    assert set(back.classes["workclass"][1:]) == set(adult.workclass.str.upper().dropna())


def test_process_to_parquet_table_loads_with_its_processing_and_an_older_file_still_loads(adult_csv, tmp_path):
    out = tmp_path / "adult_out.parquet"
    process_to_parquet(adult_csv, out, procs=[Categorify], cat_names=CATS, y_names="salary", valid_pct=0.2, seed=3)
    assert b"pipekit.save_pickle" in (pq.read_metadata(out).metadata or {})
    first = Tabular.load(out)
    pl.read_parquet(out).write_parquet(out)  # a file written before tables recorded their processing
    assert b"pipekit.save_pickle" not in (pq.read_metadata(out).metadata or {})
    assert Tabular.load(out).train.y.to_list() == first.train.y.to_list()


# ---------------------------------------------------------------- to.train.new(df)


def test_train_new_processes_rows_as_to_new(adult):
    to = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=CATS, cont_names=CONTS,
                 y_names="salary", splits=(list(range(500)), list(range(500, 600))))
    rows = adult.iloc[:5]
    for split in (to.train, to.valid):
        new = split.new(rows)
        new.process()
        pd.testing.assert_frame_equal(new.xs, to.new(rows).xs)
    np.testing.assert_allclose(to.train.new(rows).xs.to_numpy(), to.train.xs.iloc[:5].to_numpy(), rtol=1e-6)


# ---------------------------------------------------------------- valid= expressions


@pytest.fixture
def dated(adult, tmp_path):
    frame = pl.from_pandas(adult[["workclass", "age", "salary"]]).with_columns(
        Date=pl.date_range(dt.date(2015, 1, 1), dt.date(2015, 1, 1) + dt.timedelta(days=len(adult) - 1),
                           eager=True))
    frame.write_parquet(tmp_path / "dated.parquet")
    frame.with_columns(pl.col("Date").cast(pl.String)).write_csv(tmp_path / "dated.csv")
    return tmp_path


def test_valid_comparing_a_date_column_with_text_names_the_type_and_the_fix(dated):
    with pytest.raises(ParameterError, match=r"'Date' is Date.*str\.to_date\(\)"):
        process_to_parquet(dated / "dated.parquet", dated / "out.parquet", cat_names=["workclass"], y_names="salary",
                           valid=pl.col("Date") >= "2015-06-14")
    with pytest.raises(ParameterError, match=r"'Date' is String.*str\.to_date\(\)") as e:
        process_to_parquet(dated / "dated.csv", dated / "out.parquet", cat_names=["workclass"], y_names="salary",
                           valid=pl.col("Date") >= dt.date(2015, 6, 14))
    assert "could not read" not in str(e.value)
    with pytest.raises(ParameterError, match="gives Int64 values"):
        process_to_parquet(dated / "dated.parquet", dated / "out.parquet", cat_names=["workclass"], y_names="salary",
                           valid=pl.col("age") + 1)


def test_the_documented_date_expressions_split_by_date(dated):
    expected = 600 - (dt.date(2015, 6, 14) - dt.date(2015, 1, 1)).days
    for src, valid in (("dated.parquet", pl.col("Date") >= pl.lit("2015-06-14").str.to_date()),
                       ("dated.csv", pl.col("Date") >= "2015-06-14")):
        process_to_parquet(dated / src, dated / "out.parquet", cat_names=["workclass"], y_names="salary", valid=valid)
        assert pl.read_parquet(dated / "out.parquet")["is_valid"].sum() == expected


# ---------------------------------------------------------------- packed sources streamed


def test_packed_csv_is_streamed_from_a_plain_copy(adult_csv, tmp_path, monkeypatch):
    kw = dict(cat_names=CATS, cont_names=CONTS, y_names="salary", valid_pct=0.2, seed=1)
    process_to_parquet(adult_csv, tmp_path / "plain.parquet", **kw)
    expected = pl.read_parquet(tmp_path / "plain.parquet")
    (tmp_path / "adult.csv.gz").write_bytes(gzip.compress(adult_csv.read_bytes()))
    with zipfile.ZipFile(tmp_path / "adult.zip", "w") as z:
        z.write(adult_csv, "data/adult.csv")

    def read_whole(*args, **kwargs):
        raise AssertionError("the packed CSV was read whole into memory")

    monkeypatch.setattr(tabular_core, "read_packed_csv", read_whole)
    out = tmp_path / "out" / "packed.parquet"
    out.parent.mkdir()
    for name in ("adult.csv.gz", "adult.zip"):
        process_to_parquet(tmp_path / name, out, **kw)
        assert pl.read_parquet(out).equals(expected)
        assert sorted(p.name for p in out.parent.iterdir()) == ["packed.parquet", "packed.pipekit"]  # copy removed


def test_packed_csv_errors_name_the_file_given(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"a,b,salary\n1,2,x\n1,2,3,4\n"))
    with pytest.raises(Exception, match=r"bad\.csv\.gz: line 3 has 4 fields") as e:
        process_to_parquet(bad, tmp_path / "out.parquet", cat_names=["a"], y_names="salary")
    assert ".pipekit_unpack_" not in str(e.value)
