"""Column names: a pandas frame's integer names (``pd.DataFrame(array)``) are their text, in the names given and in
the rows predicted; and ``add_datepart`` never writes its parts over a column the table already has."""

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.core.errors import DataError
from pipekit.data import RandomSplitter
from pipekit.tabular import Tabular, TabularDataLoaders, add_datepart, cont_cat_split, tabular_learner

NUMBERS = ["age", "fnlwgt", "education-num", "hours-per-week"]


@pytest.fixture(scope="module")
def array_frame() -> pd.DataFrame:
    """400 adult rows' numbers as ``pd.DataFrame(array)`` names them (0, 1, 2, 3), and the salary."""
    adult = pd.read_csv(D.path("adult_sample") / "adult.csv").head(400)
    df = pd.DataFrame(adult[NUMBERS].to_numpy(dtype="float64"))
    df["salary"] = adult["salary"]
    return df


def test_integer_names_are_the_columns_text(array_frame):
    tab = Tabular(array_frame, cont_names=[0, 1, 2, 3], y_names="salary", splits=RandomSplitter(0.2, seed=0))
    assert tab.cont_names == ["0", "1", "2", "3"]
    assert cont_cat_split(array_frame, dep_var="salary")[0] == ["0", "1", "2", "3"]
    dls = TabularDataLoaders.from_df(
        array_frame, cont_names=[0, 1, 2, 3], y_names="salary", valid_idx=list(range(300, 400)), bs=64, seed=0
    )
    assert dls.tabular.cont_names == ["0", "1", "2", "3"]


def test_a_row_with_integer_names_predicts_as_the_table_does(array_frame):
    torch.manual_seed(0)
    dls = TabularDataLoaders.from_df(
        array_frame, cont_names=[0, 1, 2, 3], y_names="salary", valid_idx=list(range(300, 400)), bs=64, seed=0
    )
    learn = tabular_learner(dls, layers=[8])
    learn.fit(1, 1e-2)
    xs = array_frame.drop(columns="salary")
    table = learn.get_preds(dl=learn.dls.test_dl(xs.iloc[:3]))[0]
    row = xs.iloc[1]  # a Series indexed 0, 1, 2, 3
    assert list(row.index) == [0, 1, 2, 3]
    _, _, probs = learn.predict(row)
    assert torch.allclose(probs, table[1], atol=1e-6)
    _, _, from_dict = learn.predict(row.to_dict())  # a dict row keyed by the integers
    assert torch.allclose(from_dict, table[1], atol=1e-6)

    gbm = GBM("classification", n_estimators=3, n_jobs=1).fit(dls.tabular.train, dls.tabular.valid)
    np.testing.assert_allclose(gbm.predict(gbm.process(row)), gbm.predict(gbm.process(xs.iloc[[1]])))
    with pytest.raises(DataError, match=r"\['0'\] more than once"):  # 0 and '0' would both be column '0'
        gbm.process({0: 1.0, "0": 2.0, 1: 1.0, 2: 1.0, 3: 1.0})


@pytest.fixture(scope="module")
def rossmann() -> pd.DataFrame:
    """200 rossmann rows, with a column of the user's named as a date part of ``Date`` would be."""
    df = pd.read_csv(D.path("rossmann_sample") / "train.csv", nrows=200, dtype={"StateHoliday": str})
    return df.assign(Year=df["Store"] % 7)  # the user's numbers, not years


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_add_datepart_refuses_to_overwrite_a_column(rossmann, kind):
    df = rossmann if kind == "pandas" else pl.from_pandas(rossmann)
    with pytest.raises(DataError) as e:
        add_datepart(df, "Date")
    said = str(e.value)
    assert "['Year']" in said and "rename" in said and "prefix='Date_'" in said
    assert ("df.rename(columns={'Year'" if kind == "pandas" else "df.rename({'Year'") in said
    out = add_datepart(df, "Date", prefix="Date_")  # the fix the error gives
    years = out["Date_Year"].to_list() if kind == "polars" else out["Date_Year"].tolist()
    assert set(years) == {2015} and list(out["Year"]) == list(rossmann["Year"])


def test_add_datepart_again_on_its_own_parts_is_refused_until_they_are_dropped(rossmann):
    base = rossmann.drop(columns="Year")
    once = add_datepart(base, "Date", drop=False)
    with pytest.raises(DataError, match="drop them first"):
        add_datepart(once, "Date")
    parts = [c for c in once.columns if c not in base.columns]
    again = add_datepart(once.drop(columns=parts), "Date", drop=False)
    assert again.equals(once)
