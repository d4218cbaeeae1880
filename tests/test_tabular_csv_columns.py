"""``TabularDataLoaders.from_csv`` reads only the columns the model uses from a CSV file, with the spaces after each
comma dropped (``skipinitialspace``), and gives the table ``Tabular`` gives."""

import os
from pathlib import Path

from typing import Any

import numpy as np
import polars as pl
import pytest

from pipekit.core.errors import DataError
from pipekit.data.splitters import RandomSplitter
from pipekit.tabular import Categorify, Tabular, TabularDataLoaders
from pipekit.tabular import core
from pipekit.tabular.core import read_csv_columns

DATA = Path(os.environ.get("PIPEKIT_DATA", "/work/shared/data"))
ADULT = DATA / "adult_sample" / "adult.csv"
CATS = ["workclass", "education", "sex"]
CONTS = ["age", "fnlwgt"]

pytestmark = pytest.mark.skipif(not ADULT.exists(), reason="adult_sample is not in PIPEKIT_DATA")


@pytest.fixture(scope="module")
def wide_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """adult.csv (2,000 rows) with a wide text column the model does not use, written after a comma and a space."""
    lines = ADULT.read_bytes().splitlines()[:2001]
    out = [lines[0] + b",notes"] + [line + b", " + b"x" * 2000 for line in lines[1:]]
    path = tmp_path_factory.mktemp("wide") / "adult_wide.csv"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def _batches(dls: Any) -> list[np.ndarray]:
    return [t.cpu().numpy() for dl in (dls.train, dls.valid) for b in dl for t in b]


def test_from_csv_never_reads_a_column_the_model_does_not_use(wide_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    collected: list[list[str]] = []
    collect = core.collect_table

    def spy(frame: pl.LazyFrame, *args: Any, **kwargs: Any) -> pl.DataFrame:
        collected.append(frame.collect_schema().names())
        return collect(frame, *args, **kwargs)

    def whole(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the whole CSV file was read")

    monkeypatch.setattr(core, "collect_table", spy)
    monkeypatch.setattr(pl, "read_csv", whole)  # the eager reader of a whole file
    dls = TabularDataLoaders.from_csv(wide_csv, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=64, seed=0)
    monkeypatch.undo()
    assert collected == [[*CATS, *CONTS, "salary"]]  # the model's columns, and no other
    narrow = wide_csv.with_name("adult_narrow.csv")
    narrow.write_bytes(b"\n".join(line.rsplit(b",", 1)[0] for line in wide_csv.read_bytes().splitlines()) + b"\n")
    same = TabularDataLoaders.from_csv(narrow, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=64, seed=0)
    assert dls.tabular.frame.equals(same.tabular.frame)
    assert dls.tabular.frame.schema == same.tabular.frame.schema
    for a, b in zip(_batches(dls), _batches(same), strict=True):
        np.testing.assert_array_equal(a, b)
    categorify = next(p for p in dls.tabular.procs if isinstance(p, Categorify))
    assert "Private" in categorify.classes_["workclass"]  # the space after the comma dropped

def test_from_csv_equals_tabular_on_the_same_columns() -> None:
    dls = TabularDataLoaders.from_csv(ADULT, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=64, seed=42)
    tab = Tabular(ADULT, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=42),
                  skipinitialspace=True)
    assert dls.tabular.frame.equals(tab.frame)
    assert dls.tabular.frame.schema == tab.frame.schema
    np.testing.assert_array_equal(dls.tabular.train_idx, tab.train_idx)


def test_from_csv_with_no_cont_names_takes_the_numeric_columns_of_the_file(wide_csv: Path) -> None:
    dls = TabularDataLoaders.from_csv(wide_csv, y_names="salary", cat_names=CATS, bs=64, seed=0)
    assert dls.tabular.cont_names == ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss",
                                      "hours-per-week"]


def test_read_csv_columns_strips_values_and_header_names(tmp_path: Path) -> None:
    path = tmp_path / "spaced.csv"
    path.write_text('age, job, notes\n39, cook, a\n40, NA, b\n41,"  quoted, text", c\n')
    frame = read_csv_columns(path, ["age", "job"], cat_names=["job"], skipinitialspace=True)
    assert frame.columns == ["age", "job"]
    assert frame["age"].to_list() == [39, 40, 41]
    assert frame["job"].cast(pl.String).to_list()[::2] == ["cook", "quoted, text"]
    whole = core.read_frame(path, skipinitialspace=True)  # the values the file read whole holds
    assert frame.with_columns(pl.col("job").cast(pl.String)).equals(whole.select("age", "job"))
    with pytest.raises(DataError, match=r"spaced.csv: column\(s\) \['salary'\] are not in the file; the columns are "
                                        r"\['age', 'job', 'notes'\]\.$"):
        read_csv_columns(path, ["salary"], skipinitialspace=True)


def test_the_csv_header_is_read_not_the_whole_file_and_a_misspelt_column_is_named(
        wide_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipekit.tabular import loaders

    headers: list[Path] = []
    header = core.csv_header

    def counted(path: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
        headers.append(Path(path))
        return header(path, *args, **kwargs)

    def whole(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the whole CSV file was read")

    monkeypatch.setattr(core, "csv_header", counted)
    monkeypatch.setattr(loaders, "csv_header", counted)
    monkeypatch.setattr(pl, "read_csv", whole)
    dls = TabularDataLoaders.from_csv(wide_csv, y_names="salary", cat_names=CATS, bs=64, seed=0)  # cont_names found
    # the header decides the numbers, then Tabular reads it for the columns: never the whole file
    assert headers == [wide_csv] * 2 and dls.tabular.cont_names[:2] == CONTS
    headers.clear()
    Tabular(wide_csv, cat_names=CATS, cont_names=CONTS, y_names="salary", skipinitialspace=True)
    assert headers == [wide_csv]
    misspelt = (r"adult_wide.csv: Tabular: column\(s\) \['workclas'\] listed in cat_names; and \['Age'\] listed in cont_names "
                r"are not in the data; did you mean 'workclass' \(for 'workclas'\) and 'age' \(for 'Age'\)\? The "
                r"columns are \['age', 'workclass', ")
    for make in (lambda: TabularDataLoaders.from_csv(wide_csv, y_names="salary", cat_names=["workclas"],
                                                     cont_names=["Age"]),
                 lambda: Tabular(wide_csv, cat_names=["workclas"], cont_names=["Age"], y_names="salary",
                                 skipinitialspace=True)):
        with pytest.raises(DataError, match=misspelt):
            make()
    headers.clear()
    given = core.csv_header(ADULT, skipinitialspace=True)
    assert read_csv_columns(ADULT, ["age"], skipinitialspace=True, header=given).columns == ["age"]
    with pytest.raises(DataError, match=r"adult.csv: column\(s\) \['salary'\] are not in the file; the columns are "
                                        r"\['age'\]\.$"):  # the header given is the one used
        read_csv_columns(ADULT, ["salary"], skipinitialspace=True, header={"age": "age"})
    assert headers == [ADULT]  # only the call above read it
