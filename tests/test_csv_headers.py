"""A CSV header naming a column twice, or leaving a name empty, is read as ``pandas.read_csv`` reads it: the
second ``age`` is ``age.1`` and an empty name is ``Unnamed: {position}``, on every path that reads a CSV's header
(scanning, reading some columns, ``from_csv``, new rows read from a file)."""

import gzip

import numpy as np
import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import RandomSplitter, read_table
from pipekit.tabular import Tabular, TabularDataLoaders, scan_table, tabular_learner
from pipekit.tabular.core import csv_header, read_csv_columns, read_frame

COLS = ["age", "fnlwgt", "workclass", "education-num", "sex", "salary"]


def _adult(n: int = 300) -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=n)[COLS]


def _write(tmp_path, header: list[str], sep: str = ",", name: str = "t.csv"):
    """adult rows under ``header`` (one name per column of COLS) written to ``tmp_path / name``."""
    f = tmp_path / name
    body = _adult().to_csv(index=False, header=False, sep=sep)
    f.write_text(sep.join(header) + "\n" + body)
    return f


HEADERS = {
    "repeated": ["age", "fnlwgt", "workclass", "age", "sex", "salary"],
    "empty": ["age", "fnlwgt", "workclass", "", "sex", "salary"],
    "spaces": ["age", "fnlwgt", "workclass", " ", "sex", "salary"],
    "taken": ["age", "age", "workclass", "age.1", "", "salary"],  # the second 'age' skips the 'age.1' written
}


@pytest.mark.parametrize("kind", list(HEADERS))
@pytest.mark.parametrize("sep", [",", "\t"])
def test_header_names_are_pandas_names(tmp_path, kind, sep):
    f = _write(tmp_path, HEADERS[kind], sep, "t.tsv" if sep == "\t" else "t.csv")
    want = list(pd.read_csv(f, sep=sep).columns)
    want_skip = list(pd.read_csv(f, sep=sep, skipinitialspace=True).columns)
    assert scan_table(f).collect_schema().names() == want
    assert read_frame(f).columns == want
    assert read_frame(f, skipinitialspace=True).columns == want_skip
    assert list(csv_header(f, skipinitialspace=True)) == want_skip
    # each column holds the values pandas gives it under that name
    out = read_csv_columns(f, want_skip, skipinitialspace=True)
    ref = pd.read_csv(f, sep=sep, skipinitialspace=True)
    for c in want_skip:
        assert out[c].to_list() == [None if pd.isna(v) else v for v in ref[c]], c


def test_model_from_repeated_and_empty_names_predicts_from_the_file(tmp_path):
    f = _write(tmp_path, ["age", "fnlwgt", "workclass", "age", "", "salary"])
    df = pd.read_csv(f, skipinitialspace=True)
    assert list(df.columns) == ["age", "fnlwgt", "workclass", "age.1", "Unnamed: 4", "salary"]
    dls = TabularDataLoaders.from_csv(f, cat_names=["workclass", "Unnamed: 4"], cont_names=["age", "age.1"],
                                      y_names="salary", valid_pct=0.2, seed=0, bs=64)
    tab = Tabular(f, cat_names=["Unnamed: 4"], cont_names=["age.1"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=0), skipinitialspace=True)
    # 'age.1' is the file's fourth column (education-num), not the first 'age' again
    train = df["age.1"].iloc[tab.train.idxs]
    assert np.isclose(tab.normalize.means["age.1"], train.fillna(train.median()).mean())  # FillMissing's median
    assert set(tab.classes["Unnamed: 4"]) == {"#na#", *df["Unnamed: 4"].unique()}
    learn = tabular_learner(dls, layers=[8])
    from_file = learn.get_preds(dl=dls.test_dl(f))[0]
    from_frame = learn.get_preds(dl=dls.test_dl(df))[0]
    assert from_file.shape == (len(df), 2)
    assert torch.allclose(from_file, from_frame)
    assert learn.predict(df.iloc[0])[0] in ("<50k", ">=50k")


def test_empty_header_name_of_a_gzipped_csv_is_unnamed(tmp_path):
    f = _write(tmp_path, ["age", "fnlwgt", "workclass", "", "sex", "salary"])
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    want = list(pd.read_csv(gz).columns)
    assert want[3] == "Unnamed: 3"
    assert scan_table(gz).collect_schema().names() == want
    assert read_frame(gz, skipinitialspace=True).columns == list(pd.read_csv(gz, skipinitialspace=True).columns)


@pytest.mark.parametrize("kind", list(HEADERS))
@pytest.mark.parametrize("sep", [",", "\t"])
def test_read_table_names_columns_as_pandas_does(tmp_path, kind, sep):
    f = _write(tmp_path, HEADERS[kind], sep, "t.tsv" if sep == "\t" else "t.csv")
    ref = pd.read_csv(f, sep=sep)
    df = read_table(f)
    assert df.columns == list(ref.columns)
    for c in ref.columns:  # each name holds the column pandas gives it
        assert df[c].to_list() == [None if pd.isna(v) else v for v in ref[c]], c
    assert read_table(f, n_rows=1).columns == list(ref.columns)


def test_a_gzipped_csv_naming_a_column_twice_is_read_as_pandas_names_it(tmp_path):
    f = _write(tmp_path, HEADERS["taken"])
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    ref = pd.read_csv(gz)
    assert list(ref.columns) == ["age", "age.2", "workclass", "age.1", "Unnamed: 4", "salary"]
    df = read_table(gz)
    assert df.columns == list(ref.columns)
    assert df["age.2"].to_list() == ref["age.2"].to_list()  # fnlwgt, the second 'age' of the file
    assert scan_table(gz).collect_schema().names() == list(ref.columns)


def test_predict_reads_a_csv_naming_twice_a_column_the_model_does_not_read(tmp_path, capsys):
    from pipekit.backends import RandomForest
    from pipekit.cli import main
    from pipekit.tabular import Categorify, FillMissing, Normalize

    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=1000)
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "sex"],
                  cont_names=["age", "education-num"], y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=0))
    model = RandomForest("classification", n_estimators=5, seed=0, n_jobs=1).fit(tab.train)
    file = model.export(tmp_path / "forest.pipekit")
    rows = _adult(20)
    plain, twice = tmp_path / "plain.csv", tmp_path / "twice.csv"
    rows.to_csv(plain, index=False)
    # a second 'fnlwgt' (the model reads neither), read as 'fnlwgt.1'
    twice.write_text(",".join([*COLS, "fnlwgt"]) + "\n" + rows.assign(x=rows["fnlwgt"] + 1).to_csv(index=False, header=False))
    assert list(pd.read_csv(twice).columns) == [*COLS, "fnlwgt.1"]
    assert main(["predict", str(file), str(plain)]) == 0
    want = capsys.readouterr().out.replace(str(plain), str(twice))
    assert main(["predict", str(file), str(twice)]) == 0
    got = capsys.readouterr().out
    assert got == want and len(got.splitlines()) == 20
