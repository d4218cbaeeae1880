"""Column types users hold, on the tabular path beside fastai: an ordered categorical given as a pyarrow Table or a
Parquet file ``df.to_parquet`` wrote, date/datetime categories met in another time zone or type, pandas period,
interval, sparse and complex columns, integer ids past 64 bits, a NumPy structured array, struct and duration columns,
and an unordered pandas categorical of numbers (read as its numbers). Each is built from adult.csv's rows."""
from __future__ import annotations

import decimal
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from pipekit.datasets import path

from pipekit.core.errors import DataError
from pipekit.data import IndexSplitter, RegressionBlock
from pipekit.tabular import Tabular

pytestmark = pytest.mark.data

ADULT = path("adult_sample") / "adult.csv"
SPLIT = IndexSplitter(list(range(400, 500)))


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    """adult.csv's first 500 rows, as pandas reads them (skipinitialspace, as fastai's from_csv)."""
    return pd.read_csv(ADULT, nrows=500, skipinitialspace=True)


def vocab(src, col: str, **kw) -> list[str]:
    return list(Tabular(src, cat_names=[col], cont_names=["age"], y_names="salary", splits=SPLIT, **kw)
                .categorify[col])


def test_an_ordered_categorical_keeps_its_order_from_pandas_arrow_and_parquet(adult, tmp_path):
    # education ordered by education-num, plus a category no row holds: pd.read_parquet gives this back, and fastai
    # takes the declared categories, in their order, unused ones included
    order = list(adult.sort_values("education-num")["education"].drop_duplicates()) + ["Unheard-of"]
    d = adult[["education", "age", "salary"]].assign(
        education=pd.Categorical(adult["education"], categories=order, ordered=True))
    d.to_parquet(tmp_path / "adult.parquet", index=False)
    table = pa.Table.from_pandas(d, preserve_index=False)
    assert table.schema.field("education").type.ordered
    want = ["#na#", *order]
    assert vocab(d, "education") == want
    assert vocab(table, "education") == want
    assert vocab(tmp_path / "adult.parquet", "education") == want
    (tmp_path / "parts").mkdir()
    d.to_parquet(tmp_path / "parts" / "0.parquet", index=False)
    assert vocab(str(tmp_path / "parts" / "*.parquet"), "education") == want


def test_datetime_and_date_categories_are_looked_up_by_value(adult):
    shift = pd.Timestamp("2020-01-01 09:00", tz="Asia/Tokyo") + pd.to_timedelta(adult["age"] % 3, unit="h")
    d = adult[["age", "salary"]].assign(shift=shift)
    t = Tabular(d, cat_names=["shift"], cont_names=["age"], y_names="salary", splits=SPLIT)
    row = d.iloc[[0]].copy()
    code = t.new(row).xs["shift"].tolist()
    assert code[0] > 0
    row["shift"] = row["shift"].dt.tz_convert("UTC")  # the same instant, shown in UTC: fastai finds it
    assert t.new(row).xs["shift"].tolist() == code
    row["shift"] = row["shift"] + pd.Timedelta(minutes=1)  # another instant is unseen
    with pytest.warns(UserWarning, match="never seen"):
        assert t.new(row).xs["shift"].tolist() == [0]

    days = pl.from_pandas(adult[["age", "salary"]]).with_columns(
        day=pl.date(2021, 5, 1) + pl.duration(days=pl.col("age") % 4))
    t2 = Tabular(days, cat_names=["day"], cont_names=["age"], y_names="salary", splits=SPLIT)
    first = t2.new(days[:3]).xs["day"].to_list()
    assert all(first)
    # the rows through pandas (datetime64 at midnight) and as a Polars Datetime are the same dates
    assert t2.new(days[:3].to_pandas()).xs["day"].tolist() == first
    assert t2.new(days[:3].with_columns(pl.col("day").cast(pl.Datetime))).xs["day"].to_list() == first


def test_period_interval_and_sparse_columns_are_read_and_complex_is_refused(adult):
    d = adult[["age", "salary"]].assign(
        month=pd.PeriodIndex.from_fields(year=2020 + adult["age"] % 2, month=1 + adult["age"] % 12, freq="M"),
        band=pd.cut(adult["age"], [0, 30, 50, 100]).astype("interval"),
        gain=pd.arrays.SparseArray(adult["capital-gain"].astype(float).to_numpy(), fill_value=0.0))
    assert isinstance(d["band"].dtype, pd.IntervalDtype)
    t = Tabular(d, cat_names=["month", "band"], cont_names=["age", "gain"], y_names="salary", splits=SPLIT)
    assert t.categorify["month"][1:] == sorted(set(d["month"][:400].astype(str)))
    assert t.categorify["band"][1:] == ["(0, 30]", "(30, 50]", "(50, 100]"]
    assert t.normalize.means["gain"] == pytest.approx(adult["capital-gain"][:400].mean(), rel=1e-5)
    bad = d.assign(wave=adult["age"].to_numpy() * (1 + 1j))
    with pytest.raises(DataError, match=r"column 'wave' holds complex numbers.*np\.real\(df\['wave'\]\)"):
        Tabular(bad, cat_names=["month"], cont_names=["age", "wave"], y_names="salary", splits=SPLIT)


def test_a_period_column_fits_an_estimator_with_or_without_its_role(adult):
    from pipekit.sklearn import TabularClassifier

    X = adult[["age"]].assign(day=pd.period_range("2020-01-01", periods=len(adult), freq="D"))
    y = (adult["salary"] == ">=50k").to_numpy()
    for kw in ({}, {"cat_names": ["day"]}):
        clf = TabularClassifier("rf", **kw).fit(X, y)
        assert clf.predict(X[:5]).shape == (5,)


def test_integer_ids_past_64_bits_are_categories(adult):
    ids = pl.from_pandas(adult[["age", "salary"]]).with_columns(
        acct=pl.lit(2**100, pl.Int128) + (pl.col("age") % 5).cast(pl.Int128))
    t = Tabular(ids, cat_names=["acct"], cont_names=["age"], y_names="salary", splits=SPLIT)
    assert t.categorify["acct"][1] == str(2**100)
    assert t.new({"acct": [2**100 + 3], "age": [30]}).xs["acct"].to_list() == [4]

    big = 10**30
    table = pa.table({"acct": pa.array([decimal.Decimal(big + a % 4) for a in adult["age"]], pa.decimal128(38, 0)),
                      "age": adult["age"].to_numpy(), "salary": adult["salary"].to_numpy()})
    t2 = Tabular(table, cat_names=["acct"], cont_names=["age"], y_names="salary", splits=SPLIT)
    for given in (decimal.Decimal(big + 1), str(big + 1), big + 1):  # a JSON row gives the id as a Python int
        assert t2.new({"acct": [given], "age": [30]}).xs["acct"].to_list() == [2]


def test_a_structured_array_is_read_as_its_table(adult):
    d = adult[["workclass", "age", "salary"]]
    want = Tabular(d, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=SPLIT)
    got = Tabular(d.to_records(index=False), cat_names=["workclass"], cont_names=["age"], y_names="salary",
                  splits=SPLIT)
    assert list(got.categorify["workclass"]) == list(want.categorify["workclass"])
    assert got.train.cats.equals(want.train.cats) and got.valid.conts.equals(want.valid.conts)
    assert Tabular(np.array(list(d.itertuples(index=False)), dtype=[("workclass", "U20"), ("age", "i8"),
                                                                    ("salary", "U6")]),
                   cat_names=["workclass"], cont_names=["age"], y_names="salary",
                   splits=SPLIT).train.cats.equals(want.train.cats)


def test_struct_and_duration_refusals_give_fixes_that_work(adult):
    P = pl.from_pandas(adult[["age", "education", "salary"]]).with_columns(s=pl.struct("age", "education"))
    with pytest.raises(DataError, match=r"struct can be.*pl\.col\('s'\)\.struct\.field\('age'\)\.alias\('s_age'\)"
                       r".*df\.unnest\('s'\)"):
        Tabular(P, cat_names=["s"], cont_names=["age"], y_names="salary", splits=SPLIT)
    # the fixes the message gives work on a struct (a list's did not)
    fixed = P.with_columns(pl.col("s").struct.field("age").alias("s_age"))
    assert Tabular(fixed, cat_names=["s_age"], cont_names=["age"], y_names="salary", splits=SPLIT).c == 2
    assert P.drop("age", "education").unnest("s").columns == ["salary", "age", "education"]

    d = adult[["age", "salary"]].assign(hours=pd.to_timedelta(adult["hours-per-week"], unit="h"))
    with pytest.raises(DataError, match=r"\.dt\.total_seconds\(\)") as e:
        Tabular(d, cat_names=[], cont_names=["age", "hours"], y_names="salary", splits=SPLIT)
    assert "add_datepart" not in str(e.value)
    d["hours"] = d["hours"].dt.total_seconds()  # the fix the message gives
    t = Tabular(d, cat_names=[], cont_names=["age", "hours"], y_names="salary", splits=SPLIT)
    assert t.normalize.means["hours"] == pytest.approx(3600 * adult["hours-per-week"][:400].mean(), rel=1e-5)


def test_an_unordered_categorical_of_numbers_target_is_classes_as_in_fastai(adult):
    # hours-per-week in bands of 20 (0, 20, 40, 60) as a pandas Categorical target: classes of its numbers by
    # default, as fastai's TabularPandas makes them (y_block="category" gives the same); RegressionBlock takes the
    # numbers as a regression, as the plain column is read
    bands = adult["hours-per-week"].clip(upper=60) // 20 * 20
    d = adult[["age", "workclass"]].assign(band=pd.Categorical(bands))
    assert not d["band"].cat.ordered
    kw = dict(cat_names=["workclass"], cont_names=["age"], y_names="band", splits=SPLIT)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*read as a regression.*")
        t = Tabular(d, **kw)
    assert t.y_kind == "category" and t.vocab == [0, 20, 40, 60]
    assert t.train.to_numpy()[1].ravel().tolist() == (bands[:400] // 20).tolist()
    reg = Tabular(d, y_block=RegressionBlock(), **kw)
    y = reg.train.to_numpy()[1]
    assert y.dtype.kind == "f" and reg.y_kind == "regression"
    assert y.ravel().tolist() == bands[:400].astype(float).tolist()
    with pytest.warns(UserWarning, match="read as a regression"):
        plain = Tabular(d.assign(band=bands), **kw)
    assert plain.y_kind == "regression"
    as_classes = Tabular(d, y_block="category", **kw)
    assert as_classes.vocab == [0, 20, 40, 60] == Tabular(d.assign(band=bands), y_block="category", **kw).vocab
    assert as_classes.train.to_numpy()[1].ravel().tolist() == (bands[:400] // 20).tolist()
