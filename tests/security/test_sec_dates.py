"""add_datepart: time-zone-aware values keep their parts, ambiguous and unparseable dates are never guessed."""
import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import DataError, ParameterError
from pipekit.datasets import path
from pipekit.tabular.dates import add_datepart

PARTS = ["Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Is_month_end", "Is_quarter_end", "Hour", "Minute"]


@pytest.fixture(scope="module")
def dates() -> pl.Series:
    df = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})
    return df["Date"]


def _pandas_parts(values):
    """The parts pandas gives each value read with its own offset (fastai's add_datepart reads them so)."""
    rows = []
    for v in values:
        t = pd.Timestamp(v)
        rows.append({"Year": t.year, "Month": t.month, "Week": t.isocalendar()[1], "Day": t.day,
                     "Dayofweek": t.day_of_week, "Dayofyear": t.day_of_year, "Is_month_end": t.is_month_end,
                     "Is_quarter_end": t.is_quarter_end, "Hour": t.hour, "Minute": t.minute,
                     "Elapsed": t.value // 10**9})
    return rows


def test_text_with_utc_offsets_keeps_the_local_parts():
    values = ["2015-03-31T23:30:00-05:00", "2015-12-31T23:59:00+09:00", "2016-01-01T00:15:00+14:00",
              "2015-06-30T22:00:00Z", "2015-07-01T01:00:00+0200"]
    out = add_datepart(pl.DataFrame({"Date": values}), "Date", time=True)
    assert out.select(PARTS + ["Elapsed"]).to_dicts() == _pandas_parts(values)
    assert out["Is_quarter_end"].to_list() == [True, True, False, True, False]  # read on each value's own clock


def test_rossmann_dates_with_an_offset_give_the_same_calendar_parts(dates):
    naive = add_datepart(dates.to_frame(), "Date")
    aware = add_datepart((dates + "T23:30:00-05:00").to_frame().lazy(), "Date", time=True).collect()
    assert aware.null_count().sum_horizontal().item() == 0
    assert aware.select(naive.columns[:-1]).equals(naive.select(naive.columns[:-1]))
    assert (aware["Hour"] == 23).all() and (aware["Elapsed"] - naive["Elapsed"] == (23 * 60 + 30 + 300) * 60).all()


def test_zone_aware_datetime_columns_use_their_own_zone():
    utc = [dt.datetime(2015, 3, 31, 22, 30), dt.datetime(2015, 10, 25, 0, 30), dt.datetime(2015, 12, 31, 23, 30)]
    berlin = pl.Series("Date", utc).dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Berlin")
    out = add_datepart(berlin.to_frame(), "Date", time=True)
    pdf = pd.DataFrame({"Date": pd.to_datetime(utc).tz_localize("UTC").tz_convert("Europe/Berlin")})
    assert out.select(PARTS + ["Elapsed"]).to_dicts() == _pandas_parts(pdf["Date"])
    from_pandas = add_datepart(pdf, "Date", time=True)  # a pandas frame gives a pandas frame
    assert pl.from_pandas(from_pandas[PARTS + ["Elapsed"]]).equals(out.select(PARTS + ["Elapsed"]))
    assert out["Day"].to_list() == [1, 25, 1] and out["Hour"].to_list() == [0, 2, 0]  # CEST, CEST, CET


def test_ambiguous_day_month_order_asks_for_a_format(dates):
    with pytest.raises(DataError, match=r"ambiguous.*'01/02/2015' is 01 February 2015 or 02 January 2015.*"
                                         r"format='%d/%m/%Y'.*format='%m/%d/%Y'"):
        add_datepart(pl.DataFrame({"Date": ["01/02/2015", "03/04/2015"]}), "Date")
    out = add_datepart(pl.DataFrame({"Date": ["01/02/2015", "03/04/2015"]}), "Date", format="%m/%d/%Y")
    assert out.select("Month", "Day").rows() == [(1, 2), (3, 4)]
    # the real column written both ways: days past the 12th settle the order, both read right
    iso = add_datepart(dates.to_frame(), "Date")
    d = dates.str.to_date()
    for fmt in ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%y"):
        assert add_datepart(d.dt.strftime(fmt).to_frame(), "Date").equals(iso), fmt
    # its first twelve days of each month alone read both ways
    first_days = d.filter(d.dt.day() <= 12).dt.strftime("%d/%m/%Y").to_frame()
    with pytest.raises(DataError, match="ambiguous"):
        add_datepart(first_days, "Date")
    assert add_datepart(first_days, "Date", format="%d/%m/%Y").equals(iso.filter(pl.col("Day") <= 12))


def test_unparseable_values_are_counted_with_row_numbers(dates):
    bad = dates.head(1000).scatter([3, 500, 998], ["not a date", "2015-13-45", "31/12/2015"]).to_frame()
    with pytest.raises(DataError, match=r"3 value\(s\) of column 'Date' are not dates in format '%Y-%m-%d': "
                                         r"'not a date' at row 3, '2015-13-45' at row 500, '31/12/2015' at row 998"):
        add_datepart(bad.lazy(), "Date")
    with pytest.warns(UserWarning, match="3 value.*at row 3.*their date parts are null"):
        out = add_datepart(bad, "Date", errors="null")
    assert out["Year"].null_count() == 3 and out["Year"][3] is None and out["Year"][4] == 2015
    with pytest.raises(ParameterError, match="errors='ignore' is not accepted; expected one of 'raise', 'null'"):
        add_datepart(bad, "Date", errors="ignore")


def test_mixed_offsets_are_refused_and_drop_matches_fastai():
    with pytest.raises(DataError, match="mixes times with a UTC offset"):
        add_datepart(pl.DataFrame({"t": ["2015-01-01T10:00+01:00", "2015-01-01T10:00"]}), "t")
    df = pl.DataFrame({"saledate": ["2015-01-01"]})
    assert "saledate" not in add_datepart(df, "saledate").columns  # fastai's add_datepart(drop=True) default
    assert "saledate" in add_datepart(df, "saledate", drop=False).columns


@pytest.mark.parametrize("value", [None, "when", [1, 2]])
def test_sec_an_estimators_date_columns_from_a_file_are_checked(tmp_path, value):
    """The column roles of a saved estimator decide what predict parses as dates: a file's null, a string (read
    letter by letter as columns) or numbers there are refused at load, naming the field."""
    import pipekit
    from pipekit.core.errors import ExportError
    from pipekit.sklearn import TabularRegressor
    from file_edits import edited_copy

    raw = pd.read_csv(path("rossmann_sample") / "train.csv", nrows=500, dtype={"StateHoliday": str})
    reg = TabularRegressor("rf", random_state=0).fit(raw[["Store", "Date"]].assign(Date=pd.to_datetime(raw["Date"])),
                                                    raw["Sales"])
    pipekit.save(reg, tmp_path / "reg.pipekit")

    def edit(record):
        record["state"]["date_names_"] = value
    bad = edited_copy(tmp_path / "reg.pipekit", edit, tmp_path / "bad.pipekit")
    with pytest.raises(ExportError, match=r"field 'state.date_names_' must be a list of column names"):
        pipekit.load(bad)


@pytest.mark.parametrize("value", [None, "%d/%m/%Y", {"Date": "%s"}, {"Date": "%d/%m/%Y%z"}, {"Date": 3}, {"Date": ["%d/%m/%Y"]}])
def test_sec_an_estimators_date_layouts_from_a_file_are_layouts_pipekit_reads(tmp_path, value):
    """The layout a saved estimator reads a text date column in goes to the date parser: a file's layout must be
    one pipekit itself writes (by name, no other directive), or the file is refused at load, naming the field. A
    file written before layouts were kept reads each call's own rows, as it did."""
    import pipekit
    from pipekit.core.errors import ExportError
    from pipekit.sklearn import TabularRegressor
    from file_edits import edited_copy

    raw = pd.read_csv(path("rossmann_sample") / "train.csv", nrows=500, dtype={"StateHoliday": str})
    X = raw[["Store", "Date"]].assign(Date=pd.to_datetime(raw["Date"]).dt.strftime("%d/%m/%Y"))
    reg = TabularRegressor("rf", date_names=["Date"], random_state=0).fit(X, raw["Sales"])
    assert reg.date_formats_ == {"Date": "%d/%m/%Y"}
    pipekit.save(reg, tmp_path / "reg.pipekit")

    def edit(record):
        record["state"]["date_formats_"] = value
    bad = edited_copy(tmp_path / "reg.pipekit", edit, tmp_path / "bad.pipekit")
    with pytest.raises(ExportError, match=r"field 'state.date_formats_' must be a dict of column names to date "
                                          r"layouts pipekit reads"):
        pipekit.load(bad)

    def older(record):
        del record["state"]["date_formats_"]
    old = pipekit.load(edited_copy(tmp_path / "reg.pipekit", older, tmp_path / "old.pipekit"))
    assert old.date_formats_ == {} and np.allclose(old.predict(X), reg.predict(X), rtol=1e-12)  # forest threads sum in any order
