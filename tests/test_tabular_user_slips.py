"""What a reader of the book's tabular chapter and a scikit-learn user type, slips included: a model of the wrong
task, a log of zero sales, a date written out in words, a missing label, a missing category in a pandas row,
a metric for the out-of-bag score, a net given too little time. Each works or says what to change."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from test_models_helpers import adult, adult_tab

from pipekit.backends import GBM, RandomForest, as_data
from pipekit.core.errors import DataError, ParameterError
from pipekit.data.splitters import TimeSplitter
from pipekit.inspection import drop_redundant
from pipekit.tabular import Tabular


def test_a_model_of_the_wrong_task_and_an_infinite_target_are_refused():
    tab = Tabular(pd.DataFrame({"a": np.arange(400.0), "y": np.linspace(0, 1, 400)}), cont_names=["a"],
                  y_names="y", splits=(np.arange(300), np.arange(300, 400)))
    with pytest.raises(DataError, match=r"GBM\(task='classification'\) cannot fit a Tabular whose target is a "
                                        r"number .*task='regression'"):
        GBM("classification", n_estimators=5).fit(tab.train)
    with pytest.raises(DataError, match=r"RandomForest\(task='regression'\) cannot fit .*category"):
        RandomForest("regression", n_estimators=5).fit(adult()[0])
    # targets reaching a backend without a Tabular: a log of zero sales is refused there too, by row
    y = np.log(np.r_[np.ones(10), 0.0, np.ones(9)])
    with pytest.raises(DataError, match=r"1 NaN or infinite value\(s\), first at row 10"):
        GBM("regression", n_estimators=5).fit(as_data(pl.DataFrame({"a": np.arange(20.0)}), y=y))
    with pytest.raises(ParameterError, match=r"cutoff='June 14 2015' is not an ISO date; give e.g. '2015-06-14'"):
        TimeSplitter("Date", "June 14 2015")


def test_a_missing_label_and_a_missing_category_in_a_row():
    from pipekit.sklearn import TabularClassifier

    X = pd.DataFrame({"a": np.arange(40.0), "job": ["cook", "clerk"] * 20})
    y = np.array(["yes", "no"] * 20, dtype=object)
    y[7] = np.nan
    with pytest.raises(DataError, match=r"y has 1 missing label\(s\) \(None or NaN\), first at row 7"):
        TabularClassifier().fit(X, y)
    # a pandas row (or dict) with a missing text value: a missing category, not one never seen in training; as
    # workclass had no missing values in training, that is said (and nothing else)
    from pipekit.datasets import path

    tab = adult_tab()
    row = pd.read_csv(path("adult_sample") / "adult.csv").iloc[0].copy()  # as a pandas user has it
    row["workclass"] = np.nan
    for given in (row, row.to_dict(), [row.to_dict()]):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert tab.new(given).cats["workclass"].to_list() == [0]
        assert [str(x.message).split(";")[0] for x in w] == [
            "Categorify: categorical column(s) with no missing values in training have missing values here (count "
            "per column: {'workclass': 1})"]


def test_drop_redundant_scores_out_of_bag_with_the_metric_given():
    tr, _ = adult(3000)
    rf = RandomForest("classification", n_estimators=30, n_jobs=1, seed=0)
    by_default = drop_redundant(rf, tr, columns=["age"])
    by_log_loss = drop_redundant(rf, tr, columns=["age"], metric="log_loss")
    assert by_default["score"][0] == pytest.approx(rf.clone().fit(tr).oob_score_)  # accuracy, out of bag
    assert 0 < by_log_loss["score"][0] < 1 and by_log_loss["score"][0] != by_default["score"][0]
    # the change is "better without it" in the metric's own direction: a loss that grows is a negative change
    grew = by_log_loss["score"][1] - by_log_loss["score"][0]
    assert by_log_loss["change"][1] == pytest.approx(-grew)


def test_a_net_given_less_time_than_its_first_batches_says_so():
    import time

    import warnings

    from pipekit.ensemble import BaggedModel, TorchTabular
    from pipekit.learn import Callback

    tr, va = adult()

    class Stall(Callback):  # a first batch that takes the whole limit (a process's first, a busy machine)
        def before_batch(self):
            if self.learn.training and self.learn.train_iter == 1:
                time.sleep(0.6)

    import pipekit.learn.callbacks.builtin as builtin

    net = TorchTabular("classification", epochs=20, time_limit=0.5)
    original = builtin.TimeLimit.before_fit

    def with_stall(self):
        original(self)
        self.learn.add_cb(Stall())

    builtin.TimeLimit.before_fit = with_stall
    try:
        with pytest.warns(UserWarning, match=r"TimeLimit\(0\.\d+\): the time ran out after \d of \d+ training batches"):
            net.fit(tr, va)
        # the fold models of a bag say nothing: the bag counts them cut short, and fit_ensemble warns once
        bag = BaggedModel(TorchTabular("classification", epochs=20), n_folds=2, time_limit=1.0, n_jobs=1)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            bag.fit(tr)
    finally:
        builtin.TimeLimit.before_fit = original
    assert net.stopped_on_time_
    assert bag.stopped_on_time_ == 2 and not [w for w in seen if "TimeLimit(" in str(w.message)]


def test_a_raw_frame_given_to_a_model_fitted_on_codes_is_refused_and_the_processed_frame_is_not():
    from pipekit.data import RandomSplitter
    from pipekit.datasets import path
    from pipekit.tabular import Categorify, FillMissing

    df = pl.read_csv(path("rossmann_sample") / "train.csv", infer_schema_length=None).filter(pl.col("Sales") > 0)
    df = df.head(3000)
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=["Store", "DayOfWeek", "Promo"],
                  cont_names=["Customers"], y_names="Sales", splits=RandomSplitter(0.2, seed=0))
    rf = RandomForest("regression", n_estimators=5, n_jobs=1).fit(tab.train)
    raw = df.tail(5)  # store ids up to 1115 against a few dozen codes: once predicted from without a word
    with pytest.raises(DataError, match=r"column 'Store' holds \d+ \(row \d\), outside the \d+ category codes .*"
                                        r"unprocessed frame; pass the rows processed by the same Tabular"):
        rf.predict(raw)
    with pytest.raises(DataError, match=r"column 'Store' is String.*tab.new\(df\)"):
        rf.predict(raw.with_columns(pl.col("Store").cast(pl.String)))
    # the book's chapter-9 habit, the processed frame itself (or as pandas), still predicts
    expected = rf.predict(tab.new(raw))
    np.testing.assert_array_equal(rf.predict(tab.new(raw).xs), expected)
    np.testing.assert_array_equal(rf.predict(tab.new(raw).xs.to_pandas()), expected)


def test_the_books_pandas_habits_with_rossmann_work():
    from pipekit.datasets import path
    from pipekit.tabular import Categorify

    # pandas reads the full Kaggle file's StateHoliday in chunks as 0, '0' and 'a' in one column: Arrow refused
    # such a column with a bare ArrowInvalid
    df = pd.read_csv(path("rossmann_sample") / "train.csv", dtype={"StateHoliday": object})
    df["StateHoliday"] = pd.Series([0 if v == "0" and i % 2 else v for i, v in enumerate(df["StateHoliday"])],
                                   dtype=object)
    assert {type(v) for v in df["StateHoliday"]} == {int, str}
    with pytest.warns(UserWarning, match=r"column\(s\) \['StateHoliday'\] mix text and numbers; read as text"):
        tab = Tabular(df, cat_names=["StateHoliday", "Store"], cont_names=["Customers"], y_names="Sales",
                      splits=(~df["Date"].ge("2015-07-01").to_numpy(), df["Date"].ge("2015-07-01").to_numpy()))
    assert tab.classes["StateHoliday"] == ["#na#", "0", "a", "b", "c"][:len(tab.classes["StateHoliday"])]
    # boolean masks as splits (they were read as rows 0 and 1)
    assert len(tab.valid) == int((df["Date"] >= "2015-07-01").sum()) and len(tab.train) + len(tab.valid) == len(df)
    with pytest.raises(DataError, match=r"the valid mask has 10 values for \d+ rows"):
        Tabular(df, cont_names=["Customers"], y_names="Sales", splits=(np.arange(5), np.ones(10, bool)))
    # the book's ordered category in pandas keeps its order
    sizes = ["Mini", "Small", "Medium", "Large"]
    df["Size"] = pd.Categorical(np.array(sizes)[df["Store"].to_numpy() % 4], categories=sizes[::-1], ordered=True)
    tab = Tabular(df.head(2000), cat_names=["Size"], y_names="Sales", splits=(np.arange(1500), np.arange(1500, 2000)))
    assert tab.classes["Size"] == ["#na#"] + sizes[::-1]
    # an order for a column that is not categorical, or written as floats for an int column
    with pytest.raises(ParameterError, match=r"Categorify: ordered names \['size'\], which are not categorical "
                                             r"columns; the categorical columns are \['Size'\]"):
        Tabular(df.head(100), procs=[Categorify(ordered={"size": sizes})], cat_names=["Size"], y_names="Sales",
                splits=(np.arange(80), np.arange(80, 100)))
    tab = Tabular(df.head(2000), procs=[Categorify(ordered={"DayOfWeek": [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]})],
                  cat_names=["DayOfWeek"], y_names="Sales", splits=(np.arange(1500), np.arange(1500, 2000)))
    assert tab.classes["DayOfWeek"] == ["#na#", "7", "6", "5", "4", "3", "2", "1"]
    # a column named twice
    with pytest.raises(ParameterError, match=r"cat_names lists \['Store'\] more than once; give each column once"):
        Tabular(df.head(100), cat_names=["Store", "Store"], y_names="Sales", splits=(np.arange(80), np.arange(80, 100)))


def _split_warnings(*args, **kwargs):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tab = Tabular(*args, **kwargs)
    return tab, [str(x.message) for x in w if "validation rows" in str(x.message)], w


@pytest.mark.data
def test_a_split_whose_validation_rows_the_training_rows_never_taught_is_warned_about():
    import pipekit.datasets as D
    from pipekit.tabular import Categorify, FillMissing, add_datepart, cont_cat_split
    path = D.path("rossmann_sample")
    df = pl.read_csv(path / "train.csv", infer_schema_length=None).join(pl.read_csv(path / "store.csv"), on="Store")
    df = add_datepart(df.filter(pl.col("Open") == 1).with_columns(pl.col("Sales").log1p()), "Date", drop=False)
    # the elapsed time has under 1000 distinct values, so cont_cat_split makes it a category; under a time split
    # every validation row holds one never seen in training, and would train and score as '#na#'
    cont, cat = cont_cat_split(df.drop("Date", "Customers"), max_card=1000, dep_var="Sales")
    assert "Elapsed" in cat
    tab, said, w = _split_warnings(df, procs=[Categorify, FillMissing], cat_names=cat, cont_names=cont,
                                   y_names="Sales", splits=TimeSplitter("Date", "2015-06-01"))
    n = len(tab.valid)
    assert tab.valid.xs["Elapsed"].unique().to_list() == [0]
    assert len(said) == 1 and said[0].startswith(f"Categorify: {n} of {n} validation rows (100%) hold a value of "
                                                  "categorical column 'Elapsed' never seen in the training rows")
    assert "put it in cont_names" in said[0] and w[0].filename == __file__
    # the date itself as a category: the advice is its parts, not cont_names (which refuses a date)
    said = _split_warnings(df, procs=[Categorify, FillMissing], cat_names=["Date", "StoreType"], cont_names=[],
                           y_names="Sales", splits=TimeSplitter("Date", "2015-06-01"))[1]
    assert len(said) == 1 and "categorical column 'Date' never seen" in said[0]
    assert "'Date' holds dates: make its parts with add_datepart(df, 'Date')" in said[0]
    assert "put it in cont_names" not in said[0]
    # the book's spelling (the elapsed time continuous) says nothing: the other columns' values were all seen
    cont, cat = cont_cat_split(df.drop("Date", "Customers"), max_card=1, dep_var="Sales")
    assert _split_warnings(df, procs=[Categorify, FillMissing], cat_names=cat, cont_names=cont, y_names="Sales",
                           splits=TimeSplitter("Date", "2015-06-01"))[1] == []
    # nor does a random split's handful of rare categories (adult's countries seen once or twice)
    frame = pl.read_csv(D.path("adult_sample") / "adult.csv")
    cats = ["workclass", "education", "occupation", "native-country"]
    tab, said, _ = _split_warnings(frame, cat_names=cats, cont_names=["age", "fnlwgt"], y_names="salary",
                                   splits=(np.arange(3000), np.arange(3000, len(frame))))
    categorify = next(p for p in tab.procs if isinstance(p, Categorify))
    assert said == [] and 0 < categorify.unseen(frame[3000:])["native-country"] < 0.05 * len(tab.valid)


@pytest.mark.data
def test_missing_values_only_the_validation_rows_have_are_warned_about():
    import pipekit.datasets as D
    from pipekit.tabular import FillMissing
    frame = pl.read_csv(D.path("adult_sample") / "adult.csv").with_row_index("i")
    blank = frame.with_columns(pl.when(pl.col("i") % 97 == 3).then(None).otherwise(pl.col("age")).alias("age"))
    splits = (np.arange(26000), np.arange(26000, len(frame)))
    only_valid = blank.with_columns(pl.when(pl.col("i") < 26000).then(frame["age"]).otherwise(pl.col("age"))
                                    .alias("age"))
    n = int(only_valid["age"].null_count())
    tab, said, _ = _split_warnings(only_valid, cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                   splits=splits)
    assert said == [f"FillMissing: continuous column 'age' has no missing values in the training rows but {n} in "
                    f"the validation rows; they are filled with {next(p for p in tab.procs if isinstance(p, FillMissing)).fill_values_['age']!r} (training "
                    "median), and as training had none, no 'age_na' column flags them."]
    assert "age_na" not in tab.cat_names
    # blanks in the training rows too: the flag column is there, nothing to say
    tab, said, _ = _split_warnings(blank, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=splits)
    assert said == [] and "age_na" in tab.cat_names


def test_new_rows_missing_columns_are_all_named_with_what_explains_them():
    import io

    import pipekit.datasets as D
    from pipekit.tabular import Categorify, FillMissing, Normalize, add_datepart

    raw = pl.read_csv(D.path("rossmann_sample") / "train.csv", infer_schema_length=None).head(2000)
    tab = Tabular(add_datepart(raw, "Date"), procs=[Categorify, FillMissing, Normalize],
                  cat_names=["Store", "Month", "Year", "StateHoliday"], cont_names=["Dayofyear", "Customers"],
                  y_names="Sales", y_block="regression")
    new = raw.head(5)
    with pytest.raises(DataError) as err:  # every column missing at once, by role, and why they may be missing
        tab.new(new.drop("Customers"))
    said = str(err.value)
    assert said.startswith("new data: column(s) ['Month', 'Year'] listed in cat_names; and ['Dayofyear', 'Customers'] "
                           "listed in cont_names are not in the data")
    assert said.endswith("Note: ['Month', 'Year', 'Dayofyear'] may be the parts add_datepart makes of a date: call "
                         "add_datepart on the new rows' date column as on the training rows.")
    assert tab.new(add_datepart(new, "Date")).xs.height == 5  # what the note says fixes it
    semicolons = pl.read_csv(io.StringIO(new.write_csv(separator=";")))
    with pytest.raises(DataError, match=r"the data has one column, 'Store;DayOfWeek;Date;Sales;Customers;Ope'\.\.\.: "
                                        r"the file may separate its columns with another character than a comma; "
                                        r"read it with that separator \(e\.g\. pl\.read_csv\(path, separator=';'\)\)"):
        tab.new(semicolons)
