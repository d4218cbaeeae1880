"""A pandas frame's column names as a table keeps them: an empty name ``""`` (fastai trains with one) stays ``""``
whatever columns are picked and beside a real ``column_0``; names a table cannot hold (a name twice, two names one
as text, a missing name, a MultiIndex of columns) are refused naming the columns and the fix, never renamed."""
import numpy as np
import pandas as pd
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import RandomSplitter, to_items
from pipekit.tabular import Tabular, TabularDataLoaders, tabular_learner


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:600]
    return df[["age", "workclass", "education", "hours-per-week", "salary"]].reset_index(drop=True)


def test_an_empty_name_is_kept_as_categorical_trains_and_predicts_a_row(adult):
    df = adult.rename(columns={"education": ""})
    for cats in (["workclass", ""], [""]):
        dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=cats, cont_names=["age"],
                                         valid_idx=list(range(120)), bs=64, seed=0)
        assert dls.cat_names == cats
        assert "" in list(dls.train.xs.columns) and "column_0" not in list(dls.train.xs.columns)
        # the "" column's categories are the education values
        assert set(df[""].dropna().unique()) <= set(dls.classes[""])
    learn = tabular_learner(dls, layers=[8])
    learn.fit(1, 1e-2)
    label = learn.predict(df.iloc[0])[0]
    assert label in set(df["salary"])


def test_an_empty_name_beside_a_real_column_0_keeps_both(adult):
    df = adult.rename(columns={"education": ""})
    df["column_0"] = np.where(df["hours-per-week"] > 40, "long", "short")
    tab = Tabular(df, cat_names=["workclass", "", "column_0"], cont_names=["age"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=42))
    assert tab.cat_names == ["workclass", "", "column_0"]
    assert set(tab.classes["column_0"]) >= {"long", "short"}
    assert set(tab.classes[""]) & set(df[""].unique())
    learn = tabular_learner(tab.dataloaders(bs=64, seed=0), layers=[8])
    learn.fit(1, 1e-2)
    assert learn.predict(df.iloc[3])[0] in set(df["salary"])


@pytest.mark.parametrize("categorical", [[], ["education"], ["workclass", ""], [""]])
def test_to_items_keeps_each_pandas_name_whatever_is_categorical(adult, categorical):
    df = adult.rename(columns={"education": ""})
    df["column_0"] = 1.0
    items = to_items(df, categorical=[c if c != "education" else "" for c in categorical])
    assert items.columns == list(df.columns)
    assert items[""].cast(pl.String).to_list() == df[""].to_list()


def test_two_names_one_as_text_are_refused_naming_them(adult):
    df = adult.rename(columns={"age": 0})
    df["0"] = 1.0
    for categorical in ([], ["workclass"]):
        with pytest.raises(DataError, match=r"columns \[0, '0'\] \(positions \[0, 5\]\) have one name as text, "
                                            r"'0'.*df\.rename\(columns="):
            to_items(df, categorical=categorical)


def test_a_missing_name_is_refused_naming_its_position(adult):
    df = adult.rename(columns={"education": None})
    for categorical in ([], ["workclass"]):
        with pytest.raises(DataError, match=r"column\(s\) at position\(s\) \[2\] have no name.*fillna"):
            to_items(df, categorical=categorical)
    # the fix the message gives names it
    df.columns = df.columns.fillna("education")
    assert to_items(df).columns == list(adult.columns)


def test_a_multiindex_of_columns_is_refused_with_the_fix(adult):
    df = adult.copy()
    df.columns = pd.MultiIndex.from_tuples([("x", c) for c in adult.columns])
    with pytest.raises(DataError, match=r"names 5 column\(s\) with tuples \(\('x', 'age'\).*'_'\.join"):
        to_items(df)


def test_a_name_given_twice_is_refused_naming_it(adult):
    df = adult.rename(columns={"workclass": "education"})
    with pytest.raises(DataError, match=r"column name\(s\) \['education'\] more than once"):
        Tabular(df, cat_names=["education"], cont_names=["age"], y_names="salary")
