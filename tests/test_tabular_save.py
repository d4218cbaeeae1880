"""``to.save(path)`` and ``Tabular.load(path)``: the book's ``save_pickle(path/'to.pkl', to)`` and
``load_pickle`` with data files instead of a pickle, on Rossmann's sales read with pandas (rows filtered, so their
labels have gaps) and split by index lists in no particular order: the loaded table has the same processed rows,
each split in the same order, the same processing and the same pandas labels, in this process and a fresh one.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.backends import GBM
from pipekit.core.errors import DataError, ParameterError
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, TabularPandas

CAT = ["StoreType", "Assortment", "PromoInterval", "StateHoliday", "DayOfWeek"]
CONT = ["CompetitionDistance", "Promo", "Promo2SinceYear", "Store"]


@pytest.fixture(scope="module")
def df():
    root = path("rossmann_sample")
    df = pd.read_csv(root / "train.csv", low_memory=False).merge(pd.read_csv(root / "store.csv"), on="Store")
    df = df[(df.Open == 1) & (df.Sales > 0)].head(6000)
    df["Sales"] = np.log(df["Sales"])
    return df


@pytest.fixture(scope="module")
def to(df):
    rng = np.random.default_rng(0)
    order = rng.permutation(len(df))
    # 4,000 training rows and 1,500 validation rows in shuffled order; 500 rows in neither
    splits = (list(order[:4000]), list(order[4000:5500]))
    return TabularPandas(df, [Categorify, FillMissing, Normalize], CAT, CONT, y_names="Sales", splits=splits)


def test_a_saved_table_loads_with_its_rows_split_order_labels_and_processing(to, df, tmp_path):
    file = to.save(tmp_path / "to.parquet")
    assert file.exists() and (tmp_path / "to.pipekit").exists()
    back = Tabular.load(file)
    for name in ("train", "valid"):
        a, b = getattr(to, name), getattr(back, name)
        assert isinstance(b.xs, pd.DataFrame) and isinstance(b.y, pd.Series)
        pd.testing.assert_frame_equal(b.xs, a.xs)
        pd.testing.assert_series_equal(b.y, a.y)
        assert b.xs.index.equals(df.index[getattr(to, f"{name}_idx")])
    assert (len(back.train), len(back.valid)) == (4000, 1500)  # the 500 rows in neither split stay out of both
    assert back.classes == to.classes and back.cat_names == to.cat_names
    assert back.processor.cont_stats_ == to.processor.cont_stats_
    # new rows are processed alike, and a model fitted on either table predicts the same
    raw = df.iloc[5500:5600]
    pd.testing.assert_frame_equal(back.new(raw).xs, to.new(raw).xs)
    p1 = GBM("regression", n_estimators=30, n_jobs=1, seed=0).fit(to.train).predict(to.valid)
    p2 = GBM("regression", n_estimators=30, n_jobs=1, seed=0).fit(back.train).predict(back.valid)
    np.testing.assert_array_equal(p1, p2)


def test_a_saved_table_loads_in_a_fresh_process(to, tmp_path):
    file = to.save(tmp_path / "shared.parquet")
    code = ("import json, sys\nfrom pipekit.tabular import Tabular\nto = Tabular.load(sys.argv[1])\n"
            "xs, y = to.valid.xs, to.valid.y\n"
            "print(json.dumps({'kind': type(xs).__module__.split('.')[0], 'index': [int(i) for i in xs.index[:5]],"
            " 'y': [float(v) for v in y.iloc[:5]], 'store_type': [int(v) for v in xs['StoreType'].iloc[:5]]}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(file)], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"kind": "pandas", "index": [int(i) for i in to.valid.xs.index[:5]],
                   "y": [float(v) for v in to.valid.y.iloc[:5]],
                   "store_type": [int(v) for v in to.valid.xs["StoreType"].iloc[:5]]}


def test_a_polars_table_loads_as_polars_and_bad_saves_are_refused(df, tmp_path):
    frame = pl.from_pandas(df.head(300))
    tab = Tabular(frame, [Categorify, FillMissing], CAT, CONT, y_names="Sales", splits=(list(range(250)),
                                                                                        list(range(250, 300))))
    back = Tabular.load(tab.save(tmp_path / "pl.parquet"))
    assert isinstance(back.train.xs, pl.DataFrame) and back.train.xs.equals(tab.train.xs)
    assert back.valid.y.to_list() == tab.valid.y.to_list()
    with pytest.raises(ParameterError, match="ending in .parquet"):
        tab.save(tmp_path / "to.pkl")
    clash = Tabular(frame.with_columns(pl.lit(True).alias("is_valid")), [Categorify], ["StoreType", "is_valid"],
                    y_names="Sales", splits=(list(range(250)), list(range(250, 300))))
    with pytest.raises(DataError, match="column named 'is_valid'.*rename that column"):
        clash.save(tmp_path / "clash.parquet")
    # row labels a file cannot hold are refused before anything is written, with the fix
    multi = df.head(300).set_index(["Store", "DayOfWeek"], drop=False)
    tab = Tabular(multi, [Categorify], ["StoreType"], y_names="Sales", splits=(list(range(250)), list(range(250, 300))))
    assert tab.train.xs.index.equals(multi.index[:250])
    with pytest.raises(DataError, match="MultiIndex's labels are Python objects.*reset_index"):
        tab.save(tmp_path / "multi.parquet")
    assert not (tmp_path / "multi.parquet").exists()


def test_a_table_loads_only_with_the_processing_written_with_it(to, df, tmp_path):
    import shutil

    import pipekit
    from pipekit.core.errors import ExportError
    from pipekit.tabular import load_pickle, save_pickle

    # to.parquet and to.pkl keep a processing each (to.pipekit, to.pkl.pipekit): both load as saved
    other = TabularPandas(df.iloc[3000:], [Categorify, FillMissing, Normalize], CAT, CONT, y_names="Sales",
                          splits=(list(range(2000)), list(range(2000, 3000))))
    first = to.save(tmp_path / "to.parquet")
    save_pickle(tmp_path / "to.pkl", other)
    assert (tmp_path / "to.pkl.pipekit").is_file()
    assert Tabular.load(first).processor.cont_stats_ == to.processor.cont_stats_
    assert load_pickle(tmp_path / "to.pkl").processor.cont_stats_ == other.processor.cont_stats_
    # a processing left from an earlier run is refused; given by the caller, it is used as asked
    pipekit.save(other.processor, tmp_path / "to.pipekit")
    with pytest.raises(ExportError, match=r"to.parquet': the fitted processing beside it, '.*to.pipekit', is not the "
                                          r"one written with this table .*save the table again"):
        Tabular.load(first)
    with pytest.raises(ExportError, match="is not the one written with this table"):
        Tabular.load(first)
    assert Tabular.load(first, processor=to.processor).classes == to.classes
    # the table copied alone: the processing is named, to copy along with it
    (tmp_path / "alone").mkdir()
    shutil.copy(save_pickle(tmp_path / "t.pkl", to), tmp_path / "alone" / "t.pkl")
    for load in (load_pickle, Tabular.load):
        with pytest.raises(ExportError, match=r"t.pkl' is a table written by Tabular.save or save_pickle.* copy "
                                              r"t.pkl.pipekit along with it"):
            load(tmp_path / "alone" / "t.pkl")
    # a table's file named like its processing would be replaced by it: refused, nothing written
    with pytest.raises(ParameterError, match=r"'.*t2.pipekit' ends in .pipekit.*\(t2.pkl\)"):
        save_pickle(tmp_path / "t2.pipekit", to)
    assert not (tmp_path / "t2.pipekit").exists()


def test_a_table_an_earlier_pipekit_saved_still_loads(to, tmp_path):
    from pipekit.tabular.core import parquet_table_bytes

    file = to.save(tmp_path / "to.parquet")
    pl.read_parquet(file).write_parquet(file)  # as the previous pipekit wrote it: no record of its processing
    back = Tabular.load(file)
    pd.testing.assert_frame_equal(back.valid.xs, to.valid.xs)
    # the memory a table pipekit wrote takes is measured as before, well within MAX_RATIO of its file
    size = file.stat().st_size
    assert parquet_table_bytes(file)[1] < 20 * size
