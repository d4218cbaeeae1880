"""Gaps between the ways a tabular model reads and processes data, on the real data sets: every reading of a new
CSV file follows the reading the fitted processing recorded, the lazy path refuses what the eager one refuses,
class targets decode to their own type (also from an export in a fresh process), and an error names the file
its rows came from exactly once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit
from pipekit.core.errors import DataError, ParameterError
from pipekit.data.blocks import CategoryBlock
from pipekit.data.splitters import RandomSplitter
from pipekit.tabular import Categorify, Tabular, TabularDataLoaders, TabularProcessor, tabular_learner
from pipekit.tabular.stream import process_to_parquet

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
        "dls.test_dl": lambda: np.concatenate([b[0].cpu().numpy() for b in dls.test_dl(ADULT)]),
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


def test_rows_read_without_skipinitialspace_meet_a_model_trained_on_the_file_read_with_it(adult_dls):
    """The book's pd.read_csv("adult.csv") keeps ' Private'; a model trained by from_csv (spaces dropped) strips
    them from rows of any form, as the file's reading does, instead of making every category unseen."""
    pd = pytest.importorskip("pandas")
    raw = pd.read_csv(ADULT).head(200)
    assert raw["workclass"].iloc[0].startswith(" ")
    dls = adult_dls
    want = dls.tabular.new(ADULT).cats.head(200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unseen category warns
        for rows in (raw, pl.from_pandas(raw), raw.iloc[0], raw.iloc[0].to_dict(), raw.head(3).to_dict("records")):
            got = dls.tabular.new(rows).cats
            assert got.equals(want.head(len(got))), type(rows)
    # from_df of a frame read without skipinitialspace, asked to drop the spaces, has the file's vocabulary
    tab = TabularDataLoaders.from_df(raw, cat_names=CATS, cont_names=CONTS, y_names="salary", bs=64, seed=0,
                                     skipinitialspace=True).tabular
    assert "Private" in tab.classes["workclass"] and not any(str(v).startswith(" ") for v in tab.classes["workclass"])
    assert set(tab.y_vocab) == {">=50k", "<50k"}


# 2. a float64 value beyond float32: the same DataError, naming the column and row, on the eager and the lazy path
def test_values_beyond_float32_are_refused_on_the_lazy_path_as_on_the_eager_one(tmp_path):
    big = pl.read_csv(ADULT, n_rows=3000).with_columns(
        pl.when(pl.int_range(pl.len()) == 2041).then(-1e300).otherwise(pl.col("fnlwgt")).alias("fnlwgt"))
    assert big.schema["fnlwgt"] == pl.Float64
    kw = dict(cat_names=["workclass"], cont_names=["age", "fnlwgt"], y_names="salary")
    msg = r"continuous column 'fnlwgt' holds 1 value\(s\) beyond the float32 range .* the largest -1e\+300 \(first " \
          r"at row 2041\)"
    with pytest.raises(DataError, match=msg):
        Tabular(big, splits=RandomSplitter(0.2, seed=0), **kw)  # the eager path
    csv, pq = tmp_path / "big.csv", tmp_path / "big.parquet"
    big.write_csv(csv)
    big.write_parquet(pq)
    out = tmp_path / "out.parquet"
    lazy = {"process_to_parquet(frame)": lambda: process_to_parquet(big, out, valid_pct=0.2, **kw),
            "process_to_parquet(LazyFrame)": lambda: process_to_parquet(big.lazy(), out, valid_pct=0.2, **kw),
            "process_to_parquet(csv)": lambda: process_to_parquet(csv, out, valid_pct=0.2, **kw),
            "process_to_parquet(parquet)": lambda: process_to_parquet(pq, out, valid_pct=0.2, **kw),
            "fit_lazy": lambda: TabularProcessor(**kw).fit_lazy(pl.scan_parquet(pq)).collect()}
    for name, run in lazy.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not taken for a missing value with a warning
            with pytest.raises(DataError, match=msg):
                run()
        assert not out.exists(), name


# 3. a class target decodes to its own type: a bool column to False/True, ints used as classes to ints
_FRESH = """
import json, sys, warnings
import polars as pl
from pipekit.learn import load_learner
warnings.simplefilter("ignore")
out = {}
for export, rows in zip(sys.argv[1::2], sys.argv[2::2]):
    learn = load_learner(export)
    preds = [learn.predict(r)[0] for r in pl.read_csv(rows).to_dicts()]
    # the built-in type each prediction is (an int class is an int that also shows its row)
    kinds = {next(t for t in type(p).__mro__ if t.__module__ == "builtins").__name__ for p in preds}
    out[export] = {"vocab": learn.dls.vocab, "types": sorted(kinds)}
print(json.dumps(out))
"""


def test_a_bool_or_int_class_target_decodes_to_its_own_type(tmp_path):
    adult = pl.read_csv(ADULT, n_rows=2000)
    rich = pl.col("salary") == ">=50k"
    exports, wants = [], {}
    for kind, y, want in (("bool", rich, [False, True]), ("int", rich.cast(pl.Int64), [0, 1])):
        df = adult.with_columns(y.alias("rich")).drop("salary")
        tab = Tabular(df, cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], y_names="rich",
                      y_block=None if kind == "bool" else "category", splits=RandomSplitter(0.2, seed=0))
        decoded = tab.valid.decode(50)["rich"]
        assert decoded.dtype == df.schema["rich"], kind
        assert decoded.to_list() == df["rich"].gather(tab.valid_idx[:50]).to_list(), kind
        dls = tab.dataloaders(bs=64, seed=0)
        assert dls.vocab == want and all(type(v) is type(want[0]) for v in dls.vocab), kind
        assert [dls.y_block.decode(i) for i in (0, 1)] == want, kind
        learn = tabular_learner(dls, layers=[16])
        learn.fit(1, 1e-2)
        pred = learn.predict(df.drop("rich").row(0, named=True))[0]
        # the class in its own type (an int class is an int that also shows its row: pred.show())
        assert isinstance(pred, type(want[0])) and pred in want, kind
        assert isinstance(pred, bool) == (kind == "bool"), kind  # an int class is an int, never a bool
        export, rows = tmp_path / f"{kind}.pipekit", tmp_path / f"{kind}.csv"
        learn.export(export)
        df.drop("rich").head(5).write_csv(rows)
        exports += [str(export), str(rows)]
        wants[str(export)] = {"vocab": want, "types": [type(want[0]).__name__]}
        with zipfile.ZipFile(export) as z:  # the target's type is plain JSON in the record
            state = json.loads(z.read("record.json"))["dls"]["recipe"]["params"]["processor"]["state"]
        assert state["y_vocab_"] == [str(v).lower() for v in want] and state["y_type_"] == kind
    out = subprocess.run([sys.executable, "-c", _FRESH, *exports], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == wants  # load_learner in a fresh process


# 4. an error about a file's rows names the file once, however the path was written; one about a parameter does not
def _damaged_adult(folder: Path) -> None:
    adult = pl.read_csv(ADULT)
    adult.head(300).with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("?"))
                                 .otherwise(pl.col("age").cast(pl.String)).alias("age")).write_csv(folder / "bad.csv")
    (folder / "empty.csv").write_bytes(b"")
    lines = ADULT.read_bytes().splitlines(keepends=True)  # not UTF-8 past the rows the column types are read from
    (folder / "latin1.csv").write_bytes(b"".join(lines[:12_001]) + lines[12_001].replace(b"Private", "Priv\xe9".encode(
        "latin-1")) + b"".join(lines[12_002:]))


def test_an_error_names_the_file_once_and_only_when_its_rows_are_at_fault(tmp_path, monkeypatch):
    _damaged_adult(tmp_path)
    monkeypatch.chdir(tmp_path)  # paths written './bad.csv', as a user may
    kw = dict(cat_names=["workclass"], cont_names=["age"], y_names="salary")
    tab = Tabular(ADULT, splits=RandomSplitter(0.2, seed=0), **kw)
    dls = tab.dataloaders(bs=64, seed=0)
    readers = {"Tabular": lambda f: Tabular(f, splits=RandomSplitter(0.2, seed=0), **kw),
               "tab.new": lambda f: tab.new(f),
               "dls.test_dl": lambda f: dls.test_dl(f),
               "process_to_parquet": lambda f: process_to_parquet(f, tmp_path / "out.parquet", valid_pct=0.2, **kw),
               "TabularDataLoaders.from_csv": lambda f: TabularDataLoaders.from_csv(f, bs=64, seed=0, **kw),
               "TabularDataLoaders.from_df": lambda f: TabularDataLoaders.from_df(f, bs=64, seed=0, **kw)}
    faults = {"bad.csv": r"continuous column 'age' holds text that is not a number, e.g. '\?' at row 5",
              "empty.csv": r"is empty \(no header line and no rows\)",
              "latin1.csv": r"is not UTF-8 text \(line 12002, byte \d+\)"}
    for name, read in readers.items():
        for file, what in faults.items():
            if file == "latin1.csv" and name in ("tab.new", "dls.test_dl"):
                continue  # read whole: the error is the one of the file's reading, tested with the others
            with pytest.raises(DataError, match=what) as info:
                read(f"./{file}")
            assert str(info.value).count(file) == 1, (name, str(info.value)[:200])
    cases = {"ordered of another type": lambda f: Tabular(f, procs=[Categorify(ordered={"education-num": ["a"]})],
                                                          cat_names=["education-num"], y_names="salary"),
             "y_block='regression' on text": lambda f: Tabular(f, cat_names=["workclass"], y_names="salary",
                                                                y_block="regression"),
             "a CategoryBlock vocab of another type": lambda f: process_to_parquet(
                 f, tmp_path / "out.parquet", cat_names=["workclass"], y_names="hours-per-week",
                 y_block=CategoryBlock(vocab=["nine", "ten"]))}
    for f in (ADULT, "./bad.csv"):  # a parameter at fault: no file named, whatever the file holds
        for name, run in cases.items():
            with pytest.raises(ParameterError) as info:
                run(f)
            assert "adult.csv" not in str(info.value) and "bad.csv" not in str(info.value), name
