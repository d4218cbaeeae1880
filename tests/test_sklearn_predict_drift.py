"""Predicting on new rows with the scikit-learn estimators and the backends: each call's warnings about what the rows
hold that training did not (as the user's warning filters say), text dates at predict read in a layout given by
``date_format``, and the messages for no rows and for a NumPy array of rows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.base import clone

import pipekit
from pipekit.backends import GBM, RandomForest
from pipekit.core.errors import DataError
from pipekit.datasets import path
from pipekit.sklearn import TabularClassifier, TabularRegressor
from pipekit.tabular import Tabular

UNSEEN = "never seen in training"


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").head(2300)


@pytest.fixture(scope="module")
def rossmann() -> tuple[pd.DataFrame, np.ndarray]:
    """Open days of the Rossmann sample: store, day of week, promo and the date as a datetime; log sales."""
    df = pd.read_csv(path("rossmann_sample") / "train.csv", low_memory=False)
    df = df[df.Open == 1].head(6000).reset_index(drop=True)
    X = df[["Store", "DayOfWeek", "Promo"]].assign(Store=df.Store.astype(str), Date=pd.to_datetime(df.Date))
    return X, np.log(df.Sales.to_numpy() + 1.0)


@pytest.fixture(scope="module")
def reg(rossmann) -> TabularRegressor:
    X, y = rossmann
    return TabularRegressor(GBM("regression", n_estimators=30), random_state=0).fit(X, y)


def test_each_predict_warns_of_unseen_values_as_the_filters_say(adult):
    """A server predicting the same kind of bad row at every request: with 'always' each call warns (it warned
    only once per fitted model); with Python's default filter a line repeating the same text warns once, and a
    user's 'error' filter raises."""
    train = adult.head(2000)
    clf = TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(train.drop("salary"), train["salary"].to_numpy())
    row = adult.slice(2000, 1).drop("salary").with_columns(pl.lit("Martian").alias("workclass"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            clf.predict(row)
    said = [str(w.message) for w in caught if UNSEEN in str(w.message)]
    assert len(said) == 3 and all("'workclass': 1" in s for s in said)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            clf.predict(row)
    assert sum(UNSEEN in str(w.message) for w in caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match=UNSEEN):
            clf.predict(row)


def test_one_row_of_text_dates_at_predict_says_the_fix_and_date_format_reads_it(reg, rossmann, tmp_path):
    """A model fitted on datetimes given one row whose date reads both day-first and month-first: the message says
    how to convert it or give the layout, and date_format (a parameter get_params and clone carry, saved with the
    model) reads it, as it reads '%Y%m%d' text; a text date no layout reads says the same fix."""
    X, _ = rossmann
    dates = X["Date"]
    row = X[dates.dt.day <= 12].head(1)
    expected = reg.predict(row)
    text = row.assign(Date=row["Date"].dt.strftime("%d/%m/%Y"))
    with pytest.raises(
        DataError,
        match=r"TabularRegressor\.predict: column 'Date' is ambiguous.*X\['Date'\] = "
        r"pd\.to_datetime\(X\['Date'\], format='%d/%m/%Y'\).*"
        r"set_params\(date_format='%d/%m/%Y'\)",
    ):
        reg.predict(text)
    compact = row.assign(Date=row["Date"].dt.strftime("%Y%m%d"))
    with pytest.raises(
        DataError,
        match=r"column 'Date' holds text that no date layout .* \('\d{8}' at row 0\).*"
        r"date_format=",
    ):
        reg.predict(compact)
    given = clone(reg).set_params(date_format="%d/%m/%Y")
    assert given.get_params()["date_format"] == "%d/%m/%Y"
    given.fit(X, rossmann[1])
    assert np.allclose(given.predict(text), expected)
    pipekit.save(reg, tmp_path / "reg.pipekit")
    fitted = pipekit.load(tmp_path / "reg.pipekit")
    fitted.set_params(date_format={"Date": "%Y%m%d"})
    assert np.allclose(fitted.predict(compact), expected)
    assert clone(fitted).get_params()["date_format"] == {"Date": "%Y%m%d"}


def test_text_dates_fitted_with_date_format_predict_one_row(rossmann, tmp_path):
    """Training dates written '%d/%m/%Y' named in date_names and read with date_format: a one-row predict of a
    date that reads both ways gives what the model gives it among other rows."""
    X, y = rossmann
    text = X.assign(Date=X["Date"].dt.strftime("%d/%m/%Y"))
    est = TabularRegressor(
        GBM("regression", n_estimators=30), date_names=["Date"], random_state=0, date_format="%d/%m/%Y"
    ).fit(text, y)
    rows = text.iloc[::50]
    ambiguous = np.flatnonzero(X["Date"].iloc[::50].dt.day.to_numpy() <= 12)[0]
    assert np.allclose(est.predict(rows.iloc[[ambiguous]]), est.predict(rows)[ambiguous])
    pipekit.save(est, tmp_path / "est.pipekit")
    loaded = pipekit.load(tmp_path / "est.pipekit")
    assert loaded.date_format == "%d/%m/%Y"
    assert np.allclose(loaded.predict(rows.iloc[[ambiguous]]), est.predict(rows)[ambiguous])
    with pytest.raises(
        pipekit.core.ParameterError, match=r"date_format names \['When'\], which are not date "
    ):
        clone(est).set_params(date_format={"When": "%d/%m/%Y"}).fit(text, y)


@pytest.mark.parametrize("layout", ["%Y/%m/%d", "%Y-%m-%d", "%d %B %Y"])
def test_text_dates_the_parser_reads_fit_and_predict(reg, rossmann, layout):
    """Text dates in a layout the parser reads ('2016/01/01', ISO, '01 January 2016') fit when named in date_names,
    and predict one row as among other rows, as a model fitted on datetimes predicts them; one row of dates written
    day and month as numbers still reads two ways, and the message names date_format."""
    X, y = rossmann
    text = X.assign(Date=X["Date"].dt.strftime(layout))
    est = TabularRegressor(GBM("regression", n_estimators=30), date_names=["Date"], random_state=0).fit(
        text, y
    )
    rows = text.iloc[::50]
    assert np.allclose(est.predict(rows.iloc[[3]]), est.predict(rows)[3])
    assert np.allclose(reg.predict(rows.iloc[[3]]), reg.predict(X.iloc[::50].iloc[[3]]))
    day = X[X["Date"].dt.day <= 12].head(1)
    with pytest.raises(DataError, match=r"column 'Date' is ambiguous.*set_params\(date_format='%d/%m/%Y'\)"):
        est.predict(day.assign(Date=day["Date"].dt.strftime("%d/%m/%Y")))


@pytest.fixture(scope="module")
def rf(adult):
    tab = Tabular(
        adult,
        cat_names=["workclass", "education", "sex"],
        cont_names=["age", "fnlwgt", "hours-per-week"],
        y_names="salary",
        splits=(np.arange(2000), np.arange(2000, 2300)),
    )
    return RandomForest("classification", n_estimators=10, n_jobs=1, seed=0).fit(tab.train)


@pytest.mark.parametrize("empty", ["polars", "pandas"])
def test_predict_on_no_rows_names_the_call(rf, adult, empty):
    rows = adult.head(0) if empty == "polars" else adult.head(0).to_pandas()
    with pytest.raises(DataError, match=r"^predict got 0 rows: there is nothing to predict") as e:
        rf.predict(rf.process(rows))
    assert "tab.valid" not in str(e.value)
    with pytest.raises(DataError, match=r"^predict got 0 rows"):
        rf.predict_proba(rf.process(rows))


def test_a_numpy_array_of_rows_says_it_has_no_column_names(rf, adult):
    arr = adult.slice(2000, 5).drop("salary").to_numpy()
    with pytest.raises(
        DataError,
        match=r"a NumPy array \(5x14\) has no column names.*pd\.DataFrame\(arr, "
        r"columns=\[\.\.\.\]\).*\['workclass', 'education', 'sex', 'age', "
        r"'fnlwgt', 'hours-per-week'\]",
    ) as e:
        rf.process(arr)
    assert "'item'" not in str(e.value)
