"""Time-ordered folds on real rossmann rows: a table split by time bags its members on contiguous periods, so no
fold model is scored on a period it saw any day of; random splits keep shuffled folds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipekit.backends import GBM, as_data
from pipekit.core import DataError, ParameterError
from pipekit.data import RandomSplitter, TimeSplitter
from pipekit.ensemble import BaggedModel, fit_ensemble
from pipekit.ensemble.auto import split_in_time
from pipekit.ensemble.bagged import make_folds, time_ranks
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from rossmann_ensemble import CAT_NAMES, CONT_NAMES, load  # noqa: E402


def gbm(**kw):
    return GBM("regression", learning_rate=0.1, n_estimators=300, early_stopping_rounds=20, n_jobs=1, **kw)


@pytest.fixture(scope="module")
def raw():
    return load(n_stores=6)  # about 4,300 rows, January 2013 to July 2015; Date is ISO text


def table(raw, splits):
    return Tabular(raw, procs=[Categorify, FillMissing, Normalize], cat_names=CAT_NAMES, cont_names=CONT_NAMES,
                   y_names="LogSales", y_block="regression", splits=splits)


@pytest.fixture(scope="module")
def tab(raw):
    return table(raw, TimeSplitter("Date", "2015-06-01"))


def days_of(raw, tab):
    """Each training row's day, from the raw table (the Tabular's training rows are rows train_idx of it)."""
    return raw["Date"].str.to_date().to_numpy()[tab.train_idx]


def assert_periods(bag, days):
    """Each fold's scored rows are one contiguous period: no row a fold model trained or stopped on falls on a day
    inside it, and fold f's period ends before fold f + 1's begins."""
    last = None
    for f in range(bag.n_folds):
        fit_idx, stop_idx, held = bag.fold_rows(f)
        lo, hi = days[held].min(), days[held].max()
        seen = days[np.concatenate([fit_idx, stop_idx])]
        assert not ((seen >= lo) & (seen <= hi)).any(), f"fold {f} trained on a day of the period it is scored on"
        assert last is None or last < lo
        last = hi


def test_fit_ensemble_bags_a_time_split_table_on_contiguous_periods(raw, tab):
    assert split_in_time(tab) == "Date"  # the column the TimeSplitter read, which the Tabular records
    ens = fit_ensemble(tab, n_folds=4, candidates={"gbm": gbm()}, stack=False, verbose=False)
    bag = ens.members[0]
    assert (bag.fold_kind_, bag.folds, bag.time_col) == ("time", "time", "Date")
    assert_periods(bag, days_of(raw, tab))
    assert "4 contiguous periods in the time order of 'Date'" in ens.report_["status"][-1]
    # add_datepart's Elapsed, named explicitly, orders the rows as their days do: the same periods
    by_elapsed = fit_ensemble(tab, n_folds=4, candidates={"gbm": gbm()}, stack=False, verbose=False,
                              time_col="Elapsed").members[0]
    assert by_elapsed.time_col == "Elapsed" and np.array_equal(by_elapsed.folds_, bag.folds_)
    # shuffled folds, as before: every fold's scored rows share their days with the rows its model trained on
    shuffled = BaggedModel(gbm(), n_folds=4, folds="shuffled").fit(tab.train)
    days = days_of(raw, tab)
    fit_idx, _, held = shuffled.fold_rows(0)
    assert shuffled.fold_kind_ == "shuffled" and np.isin(days[held], days[fit_idx]).mean() > 0.9


def test_bagged_model_time_folds_explicit_and_refit_keeps_them(raw, tab):
    days = days_of(raw, tab)
    by_col = BaggedModel(gbm(), n_folds=3, time_col="Elapsed", refit_stopped=False).fit(tab.train)
    by_order = BaggedModel(gbm(), n_folds=3, folds="time").fit(as_data(tab.train), order=days)
    assert by_col.fold_kind_ == by_order.fold_kind_ == "time"
    assert np.array_equal(by_col.folds_, by_order.folds_)  # the same periods from the column or the days
    assert_periods(by_order, days)
    # the out-of-fold guarantee holds: each row predicted by the model fitted without it
    d = as_data(tab.train)
    held = by_order.fold_rows(1)[2]
    assert np.allclose(by_order.models_[1].predict(d.take(held)), by_order.oof_predictions_[held])
    before = by_col.folds_.copy()
    for _ in by_col.refit_folds(tab.train):
        pass
    assert by_col.refit_stopped and np.array_equal(by_col.folds_, before) and by_col.fold_kind_ == "time"


def test_time_folds_bad_input(raw, tab):
    d = as_data(tab.train)
    with pytest.raises(ParameterError, match="time_col="):
        BaggedModel(gbm(), folds="time").fit(d)
    with pytest.raises(ParameterError, match="folds='shuffled'"):
        BaggedModel(gbm(), folds="shuffled").fit(d, order=np.arange(len(d)))
    with pytest.raises(DataError, match="'Date' is not a column"):
        BaggedModel(gbm(), time_col="Date").fit(d)
    with pytest.raises(DataError, match="gives 3 times"):
        BaggedModel(gbm(), folds="time").fit(d, order=[1, 2, 3])
    with pytest.raises(ParameterError, match="folds="):
        BaggedModel(gbm(), folds="blocked")
    with pytest.raises(ParameterError, match="time_col"):
        fit_ensemble(tab, folds="shuffled", time_col="Elapsed", verbose=False)
    # too few distinct times for the folds, a missing time, text that is not dates
    with pytest.raises(DataError, match="2 distinct times cannot make 3"):
        make_folds(np.zeros(6), "regression", 3, 0, order=[0, 0, 0, 0, 1, 1])
    with pytest.raises(DataError, match="first at training row 2"):
        make_folds(np.zeros(4), "regression", 2, 0, order=[1.0, 2.0, np.nan, 3.0])
    with pytest.raises(DataError, match="column .order. are not dates, first .a. at row 0"):
        make_folds(np.zeros(4), "regression", 2, 0, order=["a", "b", "c", "d"])


def test_a_random_split_keeps_shuffled_folds(raw):
    tab = table(raw.head(1500), RandomSplitter(0.2, seed=0))
    assert split_in_time(tab) is None
    ens = fit_ensemble(tab, n_folds=3, candidates={"gbm": gbm()}, stack=False, verbose=False)
    assert ens.members[0].fold_kind_ == "shuffled" and ens.report_["status"][-1].endswith("3 shuffled folds")


def test_text_dates_order_folds_by_day():
    order = pl.Series(["2015-01-03", "2015-01-01", "2015-01-02", "2015-01-01"])
    assert [h.tolist() for _, h in make_folds(np.zeros(4), "regression", 2, 0, order=order)] == [[1, 3], [0, 2]]


def test_time_folds_survive_a_file(raw, tab, tmp_path):
    import pipekit

    bag = BaggedModel(gbm(), n_folds=3, time_col="Elapsed").fit(tab.train)
    back = pipekit.load(pipekit.save(bag, tmp_path / "bag.pipekit"))
    assert (back.fold_kind_, back.folds, back.time_col) == ("time", "auto", "Elapsed")
    assert np.array_equal(back.folds_, bag.folds_)
    assert_periods(back, days_of(raw, tab))


def test_one_busy_period_gets_its_own_fold_and_leaves_none_empty(raw):
    """Rossmann rows of 2013 with one week of 2014 and one of 2015: three years make three contiguous periods
    (a year each), although 2013 holds far more than a third of the rows."""
    day = pl.col("Date").str.to_date()
    rows = raw.filter((day.dt.year() == 2013) | (day.dt.ordinal_day() <= 7))
    years = rows["Date"].str.to_date().dt.year()
    folds = make_folds(np.zeros(len(rows)), "regression", 3, 0, order=years)
    assert [sorted(set(years.gather(h).to_list())) for _, h in folds] == [[2013], [2014], [2015]]
    # with days as times, the 4 folds are contiguous and each about a quarter of the rows
    sizes = [len(h) for _, h in make_folds(np.zeros(len(rows)), "regression", 4, 0, order=rows["Date"])]
    assert min(sizes) > 0.2 * len(rows) and sum(sizes) == len(rows)


def test_text_dates_are_read_as_time_splitter_reads_them(raw):
    """Rossmann days of early 2015 written month first (03/01/2015 is March 1): read one way only, as
    TimeSplitter and add_datepart read them, or refused when every day reads both ways."""
    rows = raw.filter(pl.col("Date").str.starts_with("2015-0")).with_columns(day=pl.col("Date").str.to_date())
    us = rows["day"].dt.strftime("%m/%d/%Y").alias("Date")
    assert np.array_equal(time_ranks(us, len(rows)), time_ranks(rows["day"], len(rows)))  # 01/31/2015 says how
    early = rows.filter(pl.col("day").dt.day() <= 12)
    with pytest.raises(DataError, match="'Date' is ambiguous.*format='%m/%d/%Y'"):
        time_ranks(early["day"].dt.strftime("%m/%d/%Y").alias("Date"), len(early))


def test_a_time_split_without_date_parts_bags_on_the_splitters_dates(raw):
    """Rossmann split by TimeSplitter('Date') with no add_datepart: no model input orders the rows in time, and
    the Tabular's record of the days it split on gives the periods."""
    tab = Tabular(raw, procs=[Categorify, FillMissing, Normalize], y_names="LogSales", y_block="regression",
                  cat_names=["Store", "DayOfWeek", "Promo", "StateHoliday", "SchoolHoliday", "StoreType"],
                  cont_names=["CompetitionDistance"], splits=TimeSplitter("Date", "2015-06-01"))
    assert tab.time_col == "Date" and "Date" not in tab.frame.columns
    days = days_of(raw, tab)
    assert np.array_equal(tab.train_times.dt.date().to_numpy(), days)  # ISO text read as the splitter read it
    ens = fit_ensemble(tab, n_folds=4, candidates={"gbm": gbm()}, stack=False, verbose=False)
    bag = ens.members[0]
    assert bag.fold_kind_ == "time" and "time order of 'Date'" in ens.report_["status"][-1]
    assert_periods(bag, days)
    named = fit_ensemble(tab, n_folds=4, candidates={"gbm": gbm()}, stack=False, verbose=False, time_col="Date")
    assert np.array_equal(named.members[0].folds_, bag.folds_)
    # a bare BaggedModel reads columns of the rows it is given; the message says where the days are
    with pytest.raises(DataError, match="order=tab.train_times"):
        BaggedModel(gbm(), time_col="Date").fit(tab.train)
    again = BaggedModel(gbm(), n_folds=4, folds="time").fit(tab.train, order=tab.train_times)
    assert np.array_equal(again.folds_, bag.folds_)
    # a Tabular split otherwise records no time
    assert table(raw.head(500), RandomSplitter(0.2, seed=0)).time_col is None


def test_a_table_sorted_by_a_number_is_not_split_in_time():
    """Adult sorted by education-num (as an export may be), its last rows held out: the validation rows come after
    the training rows in that number and in a row id, yet neither is time, so the members keep shuffled folds
    (13 distinct values cannot make 5 periods, which used to fail the whole fit)."""
    from pipekit.datasets import path
    from pipekit.ensemble.auto import _fold_order

    df = pl.read_csv(path("adult_sample") / "adult.csv").sort("education-num").with_row_index("row_id")
    df = df.with_columns(pl.col("row_id").cast(pl.Int64))
    cut = int(df["education-num"].search_sorted(13))  # every row of 13 years or more is held out
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education", "race"],
                  cont_names=["row_id", "age", "education-num"], y_names="salary",
                  splits=(np.arange(cut), np.arange(cut, len(df))))
    assert split_in_time(tab) is None and tab.time_col is None
    ens = fit_ensemble(tab, n_folds=5, candidates={"gbm": GBM("classification", n_estimators=50, n_jobs=1)},
                       stack=False, verbose=False)
    assert ens.members[0].fold_kind_ == "shuffled" and ens.members[0].oof_score_ > 0.75
    # named explicitly, a number orders time folds; too few of its values for the folds: refused with folds='time',
    # shuffled with a warning in auto mode
    assert _fold_order(tab, len(tab.train), "auto", "row_id", 5)[0] == "time"
    with pytest.raises(DataError, match="12 distinct times in 'education-num', too few for 15"):
        _fold_order(tab, len(tab.train), "time", "education-num", 15)
    with pytest.warns(UserWarning, match="too few for 15 contiguous periods; bagging on 15 shuffled folds"):
        assert _fold_order(tab, len(tab.train), "auto", "education-num", 15) == ("shuffled", None, None)


def test_a_time_split_with_too_few_days_falls_back_to_shuffled_folds(raw):
    """Rossmann trained on four days of six stores: four days cannot make five periods, so auto mode bags on
    shuffled folds and says so, rather than failing."""
    rows = raw.filter(pl.col("Date").is_between(pl.lit("2015-05-26"), pl.lit("2015-06-05")))
    tab = table(rows, TimeSplitter("Date", "2015-05-30"))
    assert tab.train_times.n_unique() == 4
    with pytest.warns(UserWarning, match="4 distinct times in 'Date', too few for 5"):
        ens = fit_ensemble(tab, n_folds=5, candidates={"gbm": gbm()}, stack=False, verbose=False)
    assert ens.members[0].fold_kind_ == "shuffled" and ens.report_["status"][-1].endswith("5 shuffled folds")
    with pytest.raises(DataError, match="too few for 5 contiguous periods; lower n_folds"):
        fit_ensemble(tab, n_folds=5, candidates={"gbm": gbm()}, stack=False, verbose=False, folds="time")
