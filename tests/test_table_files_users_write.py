"""Table files as users write them, read on the tabular path beside fastai: a field of spaces only (', ,', which
``from_csv``'s skipinitialspace reads as missing), pandas ``category`` and Polars ``Enum`` columns keeping the spaces
adult.csv writes after each comma, and a spreadsheet's UTF-16/UTF-32 "Unicode text" export. Each is a variant of
adult.csv written to a temporary folder; fastai's numbers were computed once with fastai 2.8.12 on the same files."""
from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from pipekit.datasets import path

from pipekit.core.errors import DataError
from pipekit.data.items import read_table
from pipekit.tabular import Tabular, TabularDataLoaders

pytestmark = pytest.mark.data

ADULT = path("adult_sample") / "adult.csv"
KW = {"cat_names": ["workclass", "education"], "cont_names": ["age", "fnlwgt"], "y_names": "salary", "bs": 64}

# fastai 2.8.12: TabularDataLoaders.from_csv(space_file, procs=[Categorify, FillMissing, Normalize],
# valid_idx=range(1000, 1200), **KW); its classes and the counts of the training rows' workclass codes
FASTAI_CLASSES = ["#na#", "?", "Federal-gov", "Local-gov", "Private", "Self-emp-inc", "Self-emp-not-inc", "State-gov"]
FASTAI_COUNTS = {0: 143, 1: 42, 2: 21, 3: 55, 4: 597, 5: 32, 6: 80, 7: 30}
FASTAI_FIRST_CODES = [0, 4, 4, 5, 6, 4, 4, 0, 4, 5, 4, 4, 4, 4, 0]
# fastai 2.8.12: from_df(pd.read_csv(adult.csv, nrows=1200, skipinitialspace=True).astype({"workclass": "category"}),
# procs=[Categorify]).classes["workclass"]
FASTAI_CATEGORY_CLASSES = ["#na#", "?", "Federal-gov", "Local-gov", "Private", "Self-emp-inc", "Self-emp-not-inc",
                           "State-gov", "Without-pay"]


def adult_lines(n: int) -> list[str]:
    """adult.csv's header and its first ``n`` rows, as the file writes them (a space after each comma)."""
    with open(ADULT) as f:
        return [next(f).rstrip("\n") for _ in range(n + 1)]


def space_file(tmp_path: Path, n: int = 1200) -> Path:
    """The first ``n`` rows of adult.csv with every 7th row's workclass a lone space (``49, ,101320``), as many
    exports pad an empty field."""
    lines = adult_lines(n)
    for i in range(1, len(lines), 7):
        fields = lines[i].split(",")
        fields[1] = " "
        lines[i] = ",".join(fields)
    out = tmp_path / "adult_space.csv"
    out.write_text("\n".join(lines) + "\n")
    return out


def test_a_field_of_spaces_is_missing_as_fastai_reads_it(tmp_path):
    dls = TabularDataLoaders.from_csv(space_file(tmp_path), valid_idx=list(range(1000, 1200)), **KW)
    assert list(dls.classes["workclass"]) == FASTAI_CLASSES  # no class ''
    codes = np.asarray(dls.tabular.train.xs["workclass"])
    assert dict(zip(*(a.tolist() for a in np.unique(codes, return_counts=True)))) == FASTAI_COUNTS
    assert codes[:15].tolist() == FASTAI_FIRST_CODES


def test_a_field_of_spaces_at_predict_is_missing_as_in_training(tmp_path):
    f = space_file(tmp_path)
    dls = TabularDataLoaders.from_csv(f, valid_idx=list(range(1000, 1200)), **KW)
    codes = np.asarray(dls.tabular.new(f).xs["workclass"])
    assert (codes[::7] == 0).all() and (np.delete(codes, np.arange(0, 1200, 7)) > 0).all()
    np.testing.assert_array_equal(codes[:15], FASTAI_FIRST_CODES)
    # the file read by pandas without skipinitialspace (' ' and ' Private'), and a row of it, are read alike
    np.testing.assert_array_equal(np.asarray(dls.tabular.new(pd.read_csv(f)).xs["workclass"]), codes)
    assert dls.tabular.new(pd.read_csv(f).iloc[0].to_dict()).xs["workclass"].to_list() == [0]


def test_a_field_of_spaces_is_missing_in_each_reading_of_a_file(tmp_path):
    from pipekit.data.items import read_csv_table
    from pipekit.tabular.core import read_csv_columns, read_frame

    f = space_file(tmp_path)
    blank = len(range(0, 1200, 7))
    for frame in (read_csv_table(f, None, skipinitialspace=True), read_frame(f, skipinitialspace=True),
                  read_frame(pl.read_csv(f), skipinitialspace=True),  # text, as Polars reads it
                  read_csv_columns(f, ["workclass"], cat_names=["workclass"], skipinitialspace=True)):
        col = frame["workclass"]
        assert col.null_count() == blank and "" not in col.cast(pl.String).to_list(), col.dtype


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model's DataLoaders from adult.csv's first 1200 rows read by ``from_csv`` (skipinitialspace)."""
    clean = tmp_path_factory.mktemp("adult") / "adult.csv"
    clean.write_text("\n".join(adult_lines(1200)) + "\n")
    return TabularDataLoaders.from_csv(clean, valid_idx=list(range(1000, 1200)), **KW)


def test_a_pandas_category_column_at_predict_is_stripped_as_a_text_one(trained):
    df = pd.read_csv(ADULT, nrows=300)  # ' Private', as pandas reads adult.csv
    as_text = np.asarray(trained.tabular.new(df).xs["workclass"])
    assert (as_text > 0).all()
    as_category = trained.tabular.new(df.astype({"workclass": "category"}))
    np.testing.assert_array_equal(np.asarray(as_category.xs["workclass"]), as_text)
    # an ordered categorical, its categories in an order of the user's, is read by value too
    order = list(df["workclass"].value_counts().index)
    ordered = df.astype({"workclass": pd.CategoricalDtype(order, ordered=True)})
    np.testing.assert_array_equal(np.asarray(trained.tabular.new(ordered).xs["workclass"]), as_text)
    assert len(trained.test_dl(df.astype({"workclass": "category"})).dataset) == 300


def test_a_polars_enum_column_at_predict_is_stripped(trained):
    p = pl.read_csv(ADULT, n_rows=300)
    as_text = np.asarray(trained.tabular.new(p).xs["workclass"])
    enum = p.with_columns(pl.col("workclass").cast(pl.Enum(sorted(p["workclass"].unique().to_list(), reverse=True))))
    np.testing.assert_array_equal(np.asarray(trained.tabular.new(enum).xs["workclass"]), as_text)


def test_a_category_column_learned_with_skipinitialspace_has_the_classes_fastai_gives(tmp_path):
    df = pd.read_csv(ADULT, nrows=1200)
    kw = {"cat_names": ["workclass"], "cont_names": ["age"], "y_names": "salary", "bs": 64}
    dls = TabularDataLoaders.from_df(df.astype({"workclass": "category"}), skipinitialspace=True, **kw)
    assert list(dls.classes["workclass"]) == FASTAI_CATEGORY_CLASSES
    # an ordered categorical keeps its declared order, stripped, as Categorify keeps an Enum's
    order = [" Without-pay", " Private", " ?", " State-gov", " Self-emp-inc", " Federal-gov", " Local-gov",
             " Self-emp-not-inc", " Never-worked"]
    dls = TabularDataLoaders.from_df(df.astype({"workclass": pd.CategoricalDtype(order, ordered=True)}),
                                     skipinitialspace=True, **kw)
    assert list(dls.classes["workclass"]) == ["#na#"] + [c.strip() for c in order]


def test_an_enum_category_of_spaces_only_is_missing(trained):
    p = pl.read_csv(ADULT, n_rows=300)
    cats = [" ", *sorted(p["workclass"].unique().to_list())]
    blanked = p.with_columns(pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.lit(" ")).otherwise(pl.col("workclass"))
                             .cast(pl.Enum(cats)).alias("workclass"))
    codes = np.asarray(trained.tabular.new(blanked).xs["workclass"])
    assert (codes[::5] == 0).all() and (np.delete(codes, np.arange(0, 300, 5)) > 0).all()


def test_categories_that_are_one_value_once_stripped_are_read_as_text(trained):
    df = pd.read_csv(ADULT, nrows=300)  # ' Private', as pandas reads adult.csv
    df.loc[0, "workclass"] = "Private"  # one row typed by hand
    as_text = np.asarray(trained.tabular.new(df).xs["workclass"])
    assert (as_text > 0).all() and as_text[0] == as_text[1] == trained.classes["workclass"].index("Private")
    # a pandas category and a Polars Enum declaring ' Private' and 'Private' are read as that text column
    np.testing.assert_array_equal(np.asarray(trained.tabular.new(df.astype({"workclass": "category"}))
                                             .xs["workclass"]), as_text)
    p = pl.from_pandas(df)
    clash = p.with_columns(pl.col("workclass").cast(pl.Enum(sorted(p["workclass"].unique().to_list()))))
    np.testing.assert_array_equal(np.asarray(trained.tabular.new(clash).xs["workclass"]), as_text)
    dls = TabularDataLoaders.from_df(clash, cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                     skipinitialspace=True, bs=64)
    assert list(dls.classes["workclass"]).count("Private") == 1 and " Private" not in dls.classes["workclass"]


@pytest.mark.parametrize("name, bom, codec", [
    ("UTF-16", codecs.BOM_UTF16_LE, "utf-16-le"),  # Excel's "Unicode text"
    ("UTF-16", codecs.BOM_UTF16_BE, "utf-16-be"),
    ("UTF-32", codecs.BOM_UTF32_LE, "utf-32-le"),
])
def test_a_utf16_or_utf32_file_is_named_with_the_fix(tmp_path, trained, name, bom, codec):
    f = tmp_path / "adult_unicode.csv"
    f.write_bytes(bom + ("\n".join(adult_lines(300)) + "\n").encode(codec))
    fix = (rf"{f}: the file is {name} text.*iconv -f {name.lower()} -t utf-8 adult_unicode.csv.*"
           rf"pandas.read_csv\(path, encoding='{name.lower()}'\)")
    calls = [lambda: read_table(f), lambda: Tabular(f, cat_names=["workclass"], cont_names=["age"], y_names="salary"),
             lambda: TabularDataLoaders.from_csv(f, **KW), lambda: trained.tabular.new(f),
             lambda: trained.test_dl(f)]
    for call in calls:
        with pytest.raises(DataError, match=fix) as e:
            call()
        assert "latin" not in str(e.value) and "\\x00" not in str(e.value)
    # a .txt (read whole, as a CSV) is named alike
    txt = f.with_suffix(".txt")
    txt.write_bytes(f.read_bytes())
    with pytest.raises(DataError, match=rf"{txt}: the file is {name} text"):
        read_table(txt)
