"""Date parts, cont/cat splitting, dtype shrinking and the out-of-core Parquet path, on real data."""


import numpy as np
import pandas as pd
import polars as pl
import pytest

import pipekit
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.data.splitters import TimeSplitter
from pipekit.tabular import Tabular, TabularProcessor
from pipekit.tabular.dates import add_datepart, cont_cat_split, df_shrink
from pipekit.tabular.stream import process_to_parquet
from pipekit.datasets import path

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]




@pytest.fixture(scope="module")
def rossmann() -> pl.DataFrame:
    return pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})


def test_add_datepart_matches_pandas_calendar(rossmann):
    out = add_datepart(rossmann, "Date", drop=False)
    s = pd.to_datetime(pd.Series(rossmann["Date"].to_list()))
    assert out["Year"].to_list() == s.dt.year.tolist()
    assert out["Week"].to_list() == s.dt.isocalendar().week.astype(int).tolist()
    assert out["Dayofweek"].to_list() == s.dt.day_of_week.tolist()
    assert out["Dayofyear"].to_list() == s.dt.day_of_year.tolist()
    for ours, theirs in (("Is_month_end", "is_month_end"), ("Is_month_start", "is_month_start"),
                         ("Is_quarter_end", "is_quarter_end"), ("Is_quarter_start", "is_quarter_start"),
                         ("Is_year_end", "is_year_end"), ("Is_year_start", "is_year_start")):
        assert out[ours].to_list() == getattr(s.dt, theirs).tolist(), ours
    secs = (s - pd.Timestamp("1970-01-01")).dt.total_seconds().astype("int64")
    assert out["Elapsed"].to_list() == secs.tolist()
    assert "Date" not in add_datepart(rossmann.head(5), "Date").columns


def test_add_datepart_prefix_time_nulls_and_errors():
    df = pl.DataFrame({"saledate": ["2020-02-29 13:45:10", None]})
    out = add_datepart(df, "saledate", time=True)
    assert out.columns[:2] == ["saleYear", "saleMonth"] and "saleHour" in out.columns
    assert out.row(0, named=True)["saleHour"] == 13 and out.row(0, named=True)["saleSecond"] == 10
    assert out["saleYear"].to_list() == [2020, None]
    with pytest.raises(DataError, match=r"'when'.*'soon' at row 1"):
        add_datepart(pl.DataFrame({"when": ["2020-01-01", "soon"]}), "when")
    with pytest.raises(DataError, match="'Datum'"):
        add_datepart(df, "Datum")
    with pytest.raises(DataError, match="expected a date"):
        add_datepart(pl.DataFrame({"d": [1.5]}), "d")
    pdf = pd.DataFrame({"Date": pd.to_datetime(["2021-12-31"])})
    assert add_datepart(pdf, "Date")["Is_year_end"].to_list() == [True]


def test_cont_cat_split_and_df_shrink(rossmann):
    df = add_datepart(rossmann.with_columns(pl.col("Date").str.to_date()), "Date", drop=False)
    cont, cat = cont_cat_split(df, max_card=20, dep_var="Sales")
    assert "Sales" not in cont + cat and "Date" not in cont + cat
    assert {"Customers", "Elapsed", "Store"} <= set(cont)  # 100 stores > max_card
    assert {"DayOfWeek", "StateHoliday", "Promo", "Is_month_end", "Month"} <= set(cat)
    assert "Store" in cont_cat_split(df, max_card=200, dep_var="Sales")[1]
    small = df_shrink(df)
    assert small["Store"].dtype == pl.Int16 and small["DayOfWeek"].dtype == pl.Int8
    assert small["StateHoliday"].dtype == pl.Categorical and small["Sales"].dtype == pl.Int32
    assert df_shrink(df, int2uint=True)["DayOfWeek"].dtype == pl.UInt8
    assert small.estimated_size() < df.estimated_size() / 2
    assert small["Sales"].cast(pl.Int64).equals(df["Sales"])
    # the book's pandas frame comes back as pandas, with its index, smaller and with the same values
    pdf = rossmann.head(5000).to_pandas().set_index(np.arange(5000) * 3)
    shrunk = df_shrink(pdf)
    assert isinstance(shrunk, pd.DataFrame) and (shrunk.index == pdf.index).all()
    assert str(shrunk["DayOfWeek"].dtype) == "int8" and str(shrunk["StateHoliday"].dtype) == "category"
    assert shrunk.memory_usage(deep=True).sum() < pdf.memory_usage(deep=True).sum() / 2
    assert (shrunk["Sales"].astype("int64") == pdf["Sales"]).all() and list(shrunk.columns) == list(pdf.columns)
    # gaps keep pandas' nullable types (a plain conversion made Int8 with a gap float64, and bool with one object)
    gaps = df_shrink(pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "b": pd.array([True, None, False])}))
    assert gaps.dtypes.astype(str).to_dict() == {"i": "Int8", "b": "boolean"} and gaps["i"].isna().tolist() == [
        False, True, False]
    with pytest.raises(ParameterError, match="max_card"):
        cont_cat_split(df, max_card=0)


def test_pandas_dates_with_gaps_split_as_polars_dates(rossmann):
    """A pandas frame with missing dates gets the same parts, and the same continuous / categorical split, as the
    Polars frame: the number parts are float64 (NaN for a missing date) as fastai's are, the flags nullable
    booleans."""
    pdf = rossmann.select("Date", "Sales").head(3000).to_pandas()
    pdf["Date"] = pd.to_datetime(pdf["Date"])
    pdf.loc[::50, "Date"] = pd.NaT
    from_pandas, from_polars = add_datepart(pdf, "Date"), add_datepart(pl.from_pandas(pdf), "Date")
    assert str(from_pandas["Year"].dtype) == "float64" and str(from_pandas["Is_month_end"].dtype) == "boolean"
    assert from_pandas["Year"].isna().sum() == 60
    assert cont_cat_split(from_pandas, dep_var="Sales") == cont_cat_split(from_polars, dep_var="Sales")
    assert pl.from_pandas(from_pandas).equals(from_polars)


def test_tabular_with_time_split(rossmann):
    df = add_datepart(rossmann.head(20000), "Date", drop=False)
    tab = Tabular(df, cat_names=["Store", "DayOfWeek", "StateHoliday", "Month"], cont_names=["Elapsed"],
                  y_names="Sales", splits=TimeSplitter("Date", "2015-07-01"))
    dates = df["Date"].to_numpy()
    assert (dates[tab.valid_idx] >= "2015-07-01").all() and (dates[tab.train_idx] < "2015-07-01").all()
    assert tab.y_kind == "regression"


def test_time_split_reads_text_dates_as_add_datepart_does_and_keeps_the_columns_time_zone(rossmann):
    import datetime as dt

    # rossmann's dates written month first: those to the 12th of each month read both ways, so a guess is refused
    dates = rossmann["Date"].str.to_date().unique().sort()
    us = pl.DataFrame({"Date": dates.dt.strftime("%m/%d/%Y")})
    early = us.filter(pl.col("Date").str.slice(3, 2).cast(pl.Int32) <= 12)
    with pytest.raises(DataError, match=r"TimeSplitter: column 'Date' is ambiguous.*format='%m/%d/%Y' \(month first\)"):
        TimeSplitter("Date", "2015-06-01").split(early)
    by_date = early["Date"].str.to_date("%m/%d/%Y")
    valid = TimeSplitter("Date", "2015-06-01", format="%m/%d/%Y").split(early)[1]
    assert sorted(valid.tolist()) == (by_date >= dt.date(2015, 6, 1)).arg_true().to_list()
    # every date of the column: the days past the 12th tell the layout, as add_datepart reads it
    valid = TimeSplitter("Date", "2015-06-01").split(us)[1]
    assert sorted(valid.tolist()) == (dates >= dt.date(2015, 6, 1)).arg_true().to_list()
    with pytest.raises(DataError, match=r"1 value\(s\) of column 'Date' are not dates in format '%m/%d/%Y', first "
                                        r"'soon' at row 3"):
        TimeSplitter("Date", "2015-06-01", format="%m/%d/%Y").split(
            us.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("soon")).otherwise("Date").alias("Date")))
    # a time-zone-aware column: the cutoff is read in its zone (it was a TypeError)
    when = pl.datetime_range(dt.datetime(2015, 5, 31, 20), dt.datetime(2015, 6, 1, 4), "1h", eager=True)
    aware = pl.DataFrame({"when": when.dt.replace_time_zone("America/New_York")})
    assert TimeSplitter("when", "2015-06-01").split(aware)[1].tolist() == [4, 5, 6, 7, 8]
    assert TimeSplitter("when", "2015-06-01T02:00+00:00").split(aware)[1].tolist() == [2, 3, 4, 5, 6, 7, 8]  # 22:00 there
    # text written with its offset is compared on the clock it was written in, as add_datepart reads it
    written = pl.DataFrame({"Date": ["2015-06-01T10:00:00+02:00", "2015-06-01T23:30:00+02:00",
                                     "2015-06-02T01:00:00+02:00"]})
    assert TimeSplitter("Date", "2015-06-02").split(written)[1].tolist() == [2]
    assert add_datepart(written, "Date")["Day"].to_list() == [1, 1, 2]
    # NumPy's datetimes (a pandas column's values) as a cutoff
    assert TimeSplitter("when", np.datetime64("2015-06-01T02:00")).split(aware)[1].tolist() == [6, 7, 8]
    with pytest.raises(DataError, match="has a UTC offset but column 'when' has no time zone"):
        TimeSplitter("when", "2015-06-01T00:00+00:00").split(pl.DataFrame({"when": when}))


def test_process_to_parquet_matches_in_memory(tmp_path):
    src = path("adult_sample") / "adult.csv"
    out = tmp_path / "adult_processed.parquet"
    proc = process_to_parquet(src, out, cat_names=CAT, cont_names=CONT, y_names="salary", valid_pct=0.2, seed=42)
    saved = pipekit.load(tmp_path / "adult_processed.pipekit")
    assert isinstance(saved, TabularProcessor) and saved.classes_ == proc.classes_
    tab = Tabular.from_processed(out)
    n = len(tab.train) + len(tab.valid)
    assert n == 32561 and 0.18 < len(tab.valid) / n < 0.22
    assert proc.cat_names_ == tab.cat_names == CAT + ["education-num_na"]
    # the same split in memory gives exactly the same processed table
    ref = Tabular(src, cat_names=CAT, cont_names=CONT, y_names="salary", splits=(tab.train_idx, tab.valid_idx))
    assert ref.frame.equals(tab.frame)
    assert ref.classes == tab.classes
    # and the loaded processor handles new data like the in-memory one
    new = pl.read_csv(src).head(20)
    assert tab.new(new).xs.equals(ref.new(new).xs)
    # the same seed gives the same split
    process_to_parquet(src, tmp_path / "again.parquet", cat_names=CAT, cont_names=CONT, y_names="salary",
                       valid_pct=0.2, seed=42)
    assert (Tabular.from_processed(tmp_path / "again.parquet").valid_idx == tab.valid_idx).all()
    # the fitted processing of pipekit 0.1 (<out>.state.json) is refused, naming the file and the fix
    (tmp_path / "again.pipekit").rename(tmp_path / "again.state.json")
    with pytest.raises(ExportError, match=r"again\.state\.json.*JSON state format.*process_to_parquet"):
        Tabular.from_processed(tmp_path / "again.parquet")


def test_process_to_parquet_expression_split_and_errors(tmp_path, rossmann):
    src = tmp_path / "ross.parquet"
    add_datepart(rossmann, "Date", drop=False).write_parquet(src)
    out = tmp_path / "ross_proc.parquet"
    process_to_parquet(src, out, cat_names=["Store", "StateHoliday"], cont_names=["Elapsed"], y_names="Sales",
                       valid=pl.col("Date") >= "2015-07-01")
    tab = Tabular.from_processed(out)
    assert len(tab.valid) == int((rossmann["Date"] >= "2015-07-01").sum())
    with pytest.raises(ParameterError, match=r"out_path=.*x\.csv.*a path ending in .parquet"):
        process_to_parquet(src, tmp_path / "x.csv", cat_names=["Store"], y_names="Sales")
    deep = tmp_path / ("quarterly_reports_" * 6) / "x.csv"  # a long path is named by its start and its file name
    with pytest.raises(ParameterError, match=r"out_path=PosixPath\('/.*\.\.\..*/x\.csv'\) is not accepted"):
        process_to_parquet(src, deep, cat_names=["Store"], y_names="Sales")
    with pytest.raises(ParameterError, match="either valid= .* or valid_pct"):
        process_to_parquet(src, out, cat_names=["Store"], y_names="Sales", valid=pl.lit(True), valid_pct=0.2)
    with pytest.raises(ParameterError, match="valid_pct=1.5"):
        process_to_parquet(src, out, cat_names=["Store"], y_names="Sales", valid_pct=1.5)
    with pytest.raises(DataError, match="'Shop'"):
        process_to_parquet(src, out, cat_names=["Shop"], y_names="Sales")
    nulls = tmp_path / "nulls.parquet"
    rossmann.with_columns(pl.when(pl.col("Store") == 11).then(None).otherwise(pl.col("Sales")).alias("Sales")) \
        .write_parquet(nulls)
    stores = rossmann["Store"]
    n, first = int((stores == 11).sum()), int((stores == 11).arg_true()[0])
    with pytest.raises(DataError, match=rf"'Sales' has {n} missing or infinite value\(s\) .*, first at row {first}"):
        process_to_parquet(nulls, out, cat_names=["Store"], y_names="Sales")
    assert np.isfinite(tab.train.conts.to_numpy()).all()


def test_a_time_split_on_the_date_add_datepart_dropped_says_so(rossmann):
    """add_datepart(df, "Date") drops Date (as in fastai), so TimeSplitter("Date") has nothing to read: the error
    lists the table's columns (not the few Tabular selected) and says drop=False keeps the column."""
    df = add_datepart(rossmann.head(2000), "Date")
    kw = dict(cat_names=["Store", "DayOfWeek"], cont_names=["Elapsed"], y_names="Sales")
    with pytest.raises(DataError, match=r"TimeSplitter: column 'Date' is not in the table; the columns are "
                                        r"\['Store', 'DayOfWeek', 'Sales', 'Customers', 'Open', 'Promo', .* and 1 more\]"
                                        r"\. It was replaced by its date parts \(Year, Elapsed, \.\.\.\); "
                                        r"add_datepart\(df, 'Date', drop=False\) keeps the column\."):
        Tabular(df, **kw, splits=TimeSplitter("Date", "2015-07-20"))
    with pytest.raises(DataError, match=r"column 'day' is not in the table; did you mean 'Day'\? The columns are \['Store', .*\]$"):
        Tabular(df, **kw, splits=TimeSplitter("day", "2015-07-20"))
    tab = Tabular(add_datepart(rossmann.head(2000), "Date", drop=False), **kw,
                  splits=TimeSplitter("Date", "2015-07-20"))
    assert len(tab.train) and len(tab.valid)
