"""New rows given as a list of pandas Series (each a row as ``df.iloc[i]`` gives it, its column names in its
index) are read as the rows of a table, as a list of dict rows is."""

import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.tabular import TabularDataLoaders, tabular_learner


@pytest.fixture(scope="module")
def adult():
    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=600, skipinitialspace=True)
    dls = TabularDataLoaders.from_df(df, cat_names=["workclass", "education", "sex"],
                                     cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                                     valid_idx=list(range(500, 600)), seed=0, bs=64)
    return df, tabular_learner(dls, layers=[8])


def test_list_of_series_predicts_as_the_frame(adult):
    df, learn = adult
    idx = [2, 7, 11, 40, 41]  # 2 and 11 have no education-num: missing values stay missing
    from_series = learn.get_preds(dl=learn.dls.test_dl([df.iloc[i] for i in idx]))[0]
    from_frame = learn.get_preds(dl=learn.dls.test_dl(df.iloc[idx]))[0]
    assert from_series.shape == (len(idx), 2)
    assert torch.allclose(from_series, from_frame)


def test_series_naming_other_columns_is_refused_naming_the_row(adult):
    df, learn = adult
    rows = [df.iloc[0], df.iloc[1], df.iloc[2].drop("sex")]
    with pytest.raises(ParameterError, match=r"position 2 .*lacks \['sex'\]"):
        learn.dls.test_dl(rows)
