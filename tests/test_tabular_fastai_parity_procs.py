"""Categorify and add_datepart give fastai's values on real data (adult_sample, rossmann_sample): a pandas
categorical's declared categories, text sorted as text, float date parts, and a test loader's processed rows.

The expected lists were computed with fastai 2.8.12 on the same data and code."""

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Normalize, TabularPandas
from pipekit.tabular.dates import add_datepart, cont_cat_split

RACES = [" White", " Black", " Other", " Amer-Indian-Eskimo", " Asian-Pac-Islander"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(path("adult_sample") / "adult.csv")


@pytest.fixture(scope="module")
def rossmann() -> pd.DataFrame:
    df = pd.read_csv(path("rossmann_sample") / "train.csv", low_memory=False)
    return df[df.Date >= "2015-07-14"].reset_index(drop=True)  # the last 18 days: few distinct dates


def _split(n: int, valid: list[int]) -> tuple[list[int], list[int]]:
    held = set(valid)
    return [i for i in range(n) if i not in held], valid


def test_unordered_pandas_categorical_keeps_declared_categories(adult):
    df = adult.copy()
    df["race"] = df["race"].astype(pd.CategoricalDtype(RACES))
    df["relationship"] = df["relationship"].str.strip().astype("category").cat.add_categories(["Cousin"])
    df["native-country"] = df["native-country"].astype("category")
    hol = df.index[df["native-country"] == " Holand-Netherlands"].tolist()  # its one row is a validation row
    train, valid = _split(len(df), sorted(set(range(26000, len(df))) | set(hol)))
    to = TabularPandas(
        df,
        procs=[Categorify, FillMissing, Normalize],
        cat_names=["race", "relationship", "native-country"],
        cont_names=["age"],
        y_names="salary",
        splits=(train, valid),
    )
    # fastai: to.classes['race'], to.classes['relationship'], the Holand row's code, the first race codes
    assert list(to.classes["race"]) == ["#na#"] + RACES
    assert list(to.classes["relationship"]) == [
        "#na#",
        "Husband",
        "Not-in-family",
        "Other-relative",
        "Own-child",
        "Unmarried",
        "Wife",
        "Cousin",
    ]
    assert len(to.classes["native-country"]) == 43
    assert to.valid.xs.loc[hol, "native-country"].tolist() == [16]
    assert to.train.xs["race"].tolist()[:8] == [1, 1, 2, 5, 2, 1, 1, 1]

    # new rows whose race is text, one of a value outside the declared categories: #na# (code 0), with a warning;
    # fastai: to.new(tst).xs['race'] == [1, 0, 2, 5]
    tst = df.iloc[:4].copy()
    tst["race"] = tst["race"].astype(str)
    tst.loc[tst.index[1], "race"] = " Martian"
    with pytest.warns(UserWarning, match="never seen in training"):
        assert to.new(tst).xs["race"].tolist() == [1, 0, 2, 5]
    # ... and as a categorical of its own categories
    tst["race"] = tst["race"].astype("category")
    with pytest.warns(UserWarning, match="never seen in training"):
        assert to.new(tst).xs["race"].tolist() == [1, 0, 2, 5]


def test_text_of_numbers_sorts_as_text(adult):
    df = adult.copy()
    df["hpw"] = df["hours-per-week"].astype(str)
    to = TabularPandas(
        df,
        procs=[Categorify],
        cat_names=["hpw", "hours-per-week"],
        cont_names=["age"],
        y_names="salary",
        splits=(list(range(26000)), list(range(26000, len(df)))),
    )
    # fastai: list(to.classes['hpw'])[:6], its index of '40', the first training codes
    assert list(to.classes["hpw"])[:6] == ["#na#", "1", "10", "11", "12", "13"]
    assert list(to.classes["hpw"]).index("40") == 35
    assert to.train.xs["hpw"].tolist()[:5] == [35, 40, 26, 35, 46]
    # a column of numbers keeps their order, as fastai's
    assert list(to.classes["hours-per-week"])[:4] == ["#na#", "1", "2", "3"]


def test_add_datepart_elapsed_is_whole_seconds_as_the_books_chapter_9_has_it(rossmann):
    df = add_datepart(rossmann.copy(), "Date")
    assert str(df["Elapsed"].dtype) == "int64" and str(df["Day"].dtype) != "float64"
    secs = (pd.to_datetime(rossmann["Date"]) - pd.Timestamp("1970-01-01")).dt.total_seconds().astype("int64")
    assert (df["Elapsed"] == secs).all()  # exact seconds
    assert df["Elapsed"].iloc[0] == 1438300800  # 2015-07-31
    # 18 dates: with a max_card above that, Elapsed is categorical, and the book's chapter 9 moves it back by hand
    cont, cat = cont_cat_split(df, max_card=9000, dep_var="Sales")
    assert "Elapsed" in cat
    cat.remove("Elapsed")
    cont.append("Elapsed")
    polars = add_datepart(pl.from_pandas(rossmann[["Date", "Sales"]]), "Date")
    assert polars.schema["Elapsed"] == pl.Int64 and polars["Elapsed"].to_list() == df["Elapsed"].tolist()


def test_add_datepart_missing_date_makes_float_parts(rossmann):
    raw = rossmann.copy()
    raw.loc[3, "Date"] = np.nan
    df = add_datepart(raw, "Date")
    parts = ["Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Elapsed"]
    assert {c: str(df[c].dtype) for c in parts} == dict.fromkeys(parts, "float64")  # fastai's dtypes
    assert df.loc[3, parts].isna().all()
    assert df.loc[2, ["Year", "Month", "Day", "Dayofweek", "Elapsed"]].tolist() == [
        2015,
        7,
        31,
        4,
        1438300800.0,
    ]
    assert df["Is_month_end"].tolist()[:3] == [True, True, True]
    # fastai's cont names: every number part is continuous
    cont, _ = cont_cat_split(df, max_card=20, dep_var="Sales")
    assert cont == ["Store", "Customers", "Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Elapsed"]
    polars = add_datepart(pl.from_pandas(raw[["Date"]]), "Date")
    assert polars.schema["Day"] == pl.Float64 and polars["Day"][3] is None and polars["Day"][2] == 31.0
    assert polars.schema["Is_month_end"] == pl.Boolean


def test_test_dl_xs_is_the_processed_rows(adult):
    to = TabularPandas(
        adult,
        procs=[Categorify, FillMissing, Normalize],
        cat_names=["workclass", "education"],
        cont_names=["age", "fnlwgt"],
        y_names="salary",
        splits=(list(range(26000)), list(range(26000, len(adult)))),
    )
    dl = to.dataloaders(bs=64).test_dl(adult.iloc[30000:30005])
    xs = dl.xs
    assert isinstance(xs, type(to.train.xs)) and list(xs.columns) == list(to.train.xs.columns)
    assert xs.dtypes.tolist() == to.train.xs.dtypes.tolist()
    assert xs.index.tolist() == [30000, 30001, 30002, 30003, 30004]
    # fastai: dl.xs
    assert xs["workclass"].tolist() == [5, 7, 5, 5, 5]
    assert xs["education"].tolist() == [16, 6, 10, 9, 1]
    np.testing.assert_allclose(
        xs["age"], [-0.7083166, 0.6085080, 0.0964096, 1.0474496, -0.4888458], atol=1e-5
    )
    np.testing.assert_allclose(
        xs["fnlwgt"], [-0.0911514, -0.6011139, 0.4995819, 0.4157967, -0.6472389], atol=1e-5
    )
    assert dl.dataset.xs.equals(xs)
    assert dl.y.tolist() == to.new(adult.iloc[30000:30005]).y.tolist()


def test_xs_of_a_loader_without_a_table_says_so():
    df = pl.DataFrame({"x": [0.5 * i for i in range(10)], "y": ["a", "b"] * 5})
    dls = DataBlock(
        blocks=(RegressionBlock, CategoryBlock),
        get_x=ColReader("x"),
        get_y=ColReader("y"),
        splitter=RandomSplitter(0.2, seed=0),
    ).dataloaders(df, bs=4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dl = dls.test_dl(df.head(3))
    for loader in (dls.train, dl):
        with pytest.raises(AttributeError, match="this loader reads no table"):
            loader.xs  # noqa: B018
