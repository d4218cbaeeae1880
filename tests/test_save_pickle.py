"""Chapter 9's save_pickle/load_pickle: what is saved comes back equal, and no pickle is ever written or loaded."""
import os
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import ExportError, ParameterError
from pipekit.tabular import Categorify, FillMissing, TabularPandas, load_pickle, save_pickle
from pipekit.data import RandomSplitter

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


@pytest.fixture(scope="module")
def adult():
    import pipekit.datasets as D

    return pd.read_csv(D.path("adult_sample") / "adult.csv")


def test_processed_table_round_trip(adult, tmp_path):
    to = TabularPandas(adult, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                       cont_names=["age", "fnlwgt"], y_names="salary", splits=RandomSplitter(seed=42)(range(len(adult))))
    written = save_pickle(tmp_path / "to.pkl", to)
    assert written == tmp_path / "to.pkl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to.pkl", "to.pkl.pipekit"]
    back = load_pickle(tmp_path / "to.pkl")
    pd.testing.assert_frame_equal(back.train.xs, to.train.xs)
    pd.testing.assert_frame_equal(back.valid.xs, to.valid.xs)
    assert back.train.y.to_list() == to.train.y.to_list()
    assert back.classes["workclass"] == to.classes["workclass"]


def test_frames_and_arrays_come_back_equal(adult, tmp_path):
    xs = adult[["age", "workclass", "education-num"]].iloc[::7].astype({"workclass": "category"})
    back = load_pickle(save_pickle(tmp_path / "xs_final.pkl", xs))
    pd.testing.assert_frame_equal(back, xs)  # the categories and the row labels (every 7th) kept
    for series in (adult["age"], adult["age"].rename(None)):
        pd.testing.assert_series_equal(load_pickle(save_pickle(tmp_path / "s.pkl", series)), series)
    frame = pl.from_pandas(adult.head(50))
    assert load_pickle(save_pickle(tmp_path / "p.pkl", frame)).equals(frame)
    column = pl.Series("age", adult["age"].to_numpy())
    assert load_pickle(save_pickle(tmp_path / "c.pkl", column)).equals(column)
    arr = adult[["age", "fnlwgt"]].to_numpy()
    np.testing.assert_array_equal(load_pickle(save_pickle(tmp_path / "a.pkl", arr)), arr)


def test_a_model_round_trips(adult, tmp_path):
    from pipekit.backends import RandomForest
    from pipekit.tabular import Tabular

    tab = Tabular(adult.head(600), cat_names=["workclass"], cont_names=["age", "fnlwgt"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=1))
    model = RandomForest("classification", n_estimators=5, n_jobs=1, seed=0).fit(tab.train)
    back = load_pickle(save_pickle(tmp_path / "m.pkl", model))
    np.testing.assert_array_equal(back.predict(tab.valid), model.predict(tab.valid))


def test_a_pickle_is_refused_never_loaded(tmp_path):
    marker = tmp_path / "ran"

    class Runs:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Runs()))
    with pytest.raises(ExportError, match="never loads pickles"):
        load_pickle(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_what_cannot_be_written_without_pickle_is_named(tmp_path):
    with pytest.raises(ParameterError, match="a dict cannot be saved"):
        save_pickle(tmp_path / "d.pkl", {"a": 1})
    with pytest.raises(ParameterError, match="astype"):
        save_pickle(tmp_path / "o.pkl", np.array([{"a": 1}], dtype=object))
    assert not list(tmp_path.iterdir())
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "foreign.pkl")
    with pytest.raises(ExportError, match="save_pickle did not write"):
        load_pickle(tmp_path / "foreign.pkl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pickle(tmp_path / "none.pkl")


def _parquet_with_record(path, table, kind="pandas.Series", name="x", **write):
    """``table`` written as save_pickle writes a frame: its record in the file's metadata."""
    import json

    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, table.schema, **write) as w:
        w.write_table(table)
        w.add_key_value_metadata({"pipekit.save_pickle": json.dumps({"kind": kind, "name": name})})
    return path


def test_a_text_repeated_through_a_dictionary_is_measured_as_read(adult, tmp_path):
    import time

    import pyarrow as pa

    from pipekit.tabular import Tabular
    from pipekit.tabular.core import check_parquet_size, parquet_table_bytes

    big = os.urandom(1 << 17).hex()  # 256 KiB of text, on each of 2,000 rows: a 256 KiB file that reads as 512 MiB
    codes = pa.array(np.zeros(2000, np.int32))
    flat = pa.table({"x": pa.DictionaryArray.from_arrays(codes, pa.array([big]))})
    bomb = _parquet_with_record(tmp_path / "bomb.pkl", flat, store_schema=False)  # the file says: a text column
    assert os.path.getsize(bomb) < 300_000 and parquet_table_bytes(bomb)[1] >= 2000 * len(big)
    start = time.process_time()  # CPU time: a machine busy with other work does not count
    for load in (load_pickle, Tabular.load):  # refused before anything is read, processing or rows
        with pytest.raises(ExportError, match=r"bomb.pkl': its 2,000 rows would take [\d,]+ bytes or more.*MAX_RATIO"):
            load(bomb)
    assert time.process_time() - start < 5  # about 2 ms: nothing of the 512 MiB it reads as is made
    # the same in a list column, and text that repeats the value before it (DELTA_BYTE_ARRAY) is refused by name
    lists = pa.table({"l": pa.ListArray.from_arrays(pa.array([0, 1000, 2000], pa.int32()), flat["x"].combine_chunks())})
    nested = _parquet_with_record(tmp_path / "nested.pkl", lists, store_schema=False)
    assert parquet_table_bytes(nested)[1] >= 2000 * len(big)
    with pytest.raises(ExportError, match="nested.pkl"):
        check_parquet_size(nested)
    delta = _parquet_with_record(tmp_path / "delta.pkl", pa.table({"x": pa.array([big[:1000]] * 20)}),
                                 use_dictionary=False, column_encoding={"x": "DELTA_BYTE_ARRAY"})
    with pytest.raises(ExportError, match="column 'x' is stored with DELTA_BYTE_ARRAY.*pd.read_parquet"):
        check_parquet_size(delta)
    # what save_pickle writes of a real table is read as before: text, categories and all
    for frame in (adult, adult.astype({"workclass": "category", "education": "category"})):
        back = load_pickle(save_pickle(tmp_path / "adult.pkl", frame))
        pd.testing.assert_frame_equal(back, frame)


def test_what_would_come_back_otherwise_is_refused_at_save(adult, tmp_path):
    head = adult.head(20)
    refused = {
        "objects": (pl.DataFrame({"o": pl.Series([{"k": 1}, "text", 3], dtype=pl.Object)}),
                    r"column 'o' holds Python objects \(Object\).*map_elements\(str"),
        "number categories": (head.assign(age=head["age"].astype("category")),
                              r"column 'age' holds categories of int64 and would come back as int64.*astype\(str\)"),
        "mixed names": (head[["age", "fnlwgt"]].set_axis([0, "fnlwgt"], axis=1),
                        r"column names \[0, 'fnlwgt'\] would come back as \['0', 'fnlwgt'\].*map\(str\)"),
        "the same name twice": (head[["age", "fnlwgt"]].set_axis(["age", "age"], axis=1),
                                r"more than one column named 'age'"),
        "a tuple name": (head["age"].rename(("age", "years")), r"name \('age', 'years'\) \(a tuple\) would come back"),
        "text and numbers": (head[["age"]].astype(object).assign(age=lambda d: [1, "a"] * 10),
                             r"column 'age' \(object\) cannot be written.*ArrowInvalid"),
        "lists": (pd.DataFrame({"l": pd.Series([[1, 2], [3]], dtype=object)}), r"column 'l' holds lists.*pl.from_pandas"),
        "sparse": (pd.DataFrame({"s": pd.arrays.SparseArray([0, 1])}), r"column 's' .*sparse.to_dense"),
        "128-bit numbers": (pl.DataFrame({"i": pl.Series([1], dtype=pl.Int128)}), r"column 'i' \(Int128\) cannot be"),
        "seconds": (pd.Series(np.array(["2020-01-01"], "M8[D]"), name="d"),
                    r"the Series \(datetime64\[s\]\) would come back as datetime64\[ms\]"),
        "dates": (np.array(["2020-01-01"], dtype="M8[D]"), r"datetime64\[D\] values could not be read back.*pd.Series"),
        "durations": (np.array([1], dtype="m8[s]"), r"timedelta64\[s\] values could not be read back"),
        "masked": (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), r"a MaskedArray would come back as a plain.*filled"),
    }
    for what, (obj, said) in refused.items():
        with pytest.raises(ParameterError, match=said):
            save_pickle(tmp_path / f"{what}.pkl", obj)
        assert not (tmp_path / f"{what}.pkl").exists(), what
    # what does come back as it was is still written: numbers as names, a name NumPy gave, text categories
    for obj in (head[["age", "fnlwgt"]].set_axis([0, 1], axis=1), head["age"].rename(np.int64(3)),
                head.astype({"workclass": "category"})):
        back = load_pickle(save_pickle(tmp_path / "fine.pkl", obj))
        (pd.testing.assert_series_equal if isinstance(obj, pd.Series) else pd.testing.assert_frame_equal)(back, obj)


def test_a_crafted_record_or_pandas_description_is_refused_by_name(adult, tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = adult["age"].head(2).set_axis(["alice", "bob"]).rename("age")
    table = pq.read_table(save_pickle(tmp_path / "scores.pkl", scores))
    crafted = {
        "a dict name": ({"kind": "pandas.Series", "name": {"alice": "bob", "bob": "alice"}}, None, "cannot be named"),
        "a list name": ({"kind": "pandas.Series", "name": [1, 2]}, None, "cannot be named"),
        "a Polars number name": ({"kind": "polars.Series", "name": 5}, None, "cannot be named"),
        "no column": ({"kind": "pandas.Series", "name": None}, pa.table({}), "holds 0 columns, not one"),
        "no Polars column": ({"kind": "polars.Series", "name": None}, pa.table({}), "holds 0 columns, not one"),
        "pandas types": ({"kind": "pandas.Series", "name": "age"}, "no_such_dtype", "could not be read back"),
        "pandas labels": ({"kind": "pandas.Series", "name": "age"}, "zzz", "could not be read back.*pd.read_parquet"),
    }
    for what, (record, change, said) in crafted.items():
        t = change if isinstance(change, pa.Table) else table
        meta = dict(t.schema.metadata or {})
        if isinstance(change, str):
            pandas = json.loads(meta[b"pandas"])
            if change == "zzz":
                pandas["index_columns"] = ["zzz"]
            else:
                pandas["columns"][0]["numpy_type"] = change
            meta[b"pandas"] = json.dumps(pandas).encode()
        meta[b"pipekit.save_pickle"] = json.dumps(record).encode()
        f = tmp_path / f"{what}.pkl"
        pq.write_table(t.replace_schema_metadata(meta), f)
        with pytest.raises(ExportError, match=f"{what}.pkl.*{said}"):
            load_pickle(f)
    assert load_pickle(tmp_path / "scores.pkl").to_dict() == {"alice": adult["age"][0], "bob": adult["age"][1]}


def _npy(path, shape: str) -> str:
    header = ("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shape).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    return path


def test_a_crafted_array_shape_is_refused_by_name(tmp_path):
    for name, shape in [("negative", "(-1, 0)"), ("both_negative", "(-1, -8)"), ("too_many", "(" + "1, " * 100 + ")"),
                        ("overflows", f"({2**40}, {2**40}, 0)"), ("too_big", f"(0, {10**30})")]:
        with pytest.raises(ExportError, match=rf"{name}.npy: its header says shape .* which no NumPy array has"):
            load_pickle(_npy(tmp_path / f"{name}.npy", shape))
    np.testing.assert_array_equal(load_pickle(save_pickle(tmp_path / "empty.npy", np.zeros((0, 3)))), np.zeros((0, 3)))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_or_a_device_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.pkl")
    os.symlink("/dev/zero", tmp_path / "zero.pkl")
    for name in ("pipe.pkl", "zero.pkl"):
        with pytest.raises(ExportError, match=f"{name}' is not a regular file"):
            load_pickle(tmp_path / name)
