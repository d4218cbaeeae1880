"""``to.procs`` as fastai's pipeline of procs reads: a list in order, each proc by its name, their fitted values."""
import os

import pandas as pd
import pytest

from pipekit.data import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Normalize, TabularPandas

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


@pytest.fixture(scope="module")
def to():
    import pipekit.datasets as D

    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(2000)
    return TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education"],
                         cont_names=["age", "education-num"], y_names="salary",
                         splits=RandomSplitter(seed=42)(range(len(df))))


def test_procs_in_order_and_by_name(to):
    assert [type(p).__name__ for p in to.procs] == ["FillMissing", "Categorify", "Normalize"]  # as fastai orders them
    assert to.procs.normalize.means == to.normalize.means
    assert to.procs.means["age"] == pytest.approx(to.train.normalize.means["age"])
    assert to.procs.classes["workclass"] == to.classes["workclass"]
    assert to.procs.categorify["education"] == to.classes["education"]
    assert to.procs.na_dict == {"education-num": 10.0}


def test_a_proc_the_table_lacks_is_named(to):
    plain = TabularPandas(to.train.xs.head(50).assign(salary=0), procs=[Categorify], cat_names=["workclass"],
                          cont_names=["age"], y_names="salary", splits=(list(range(40)), list(range(40, 50))))
    with pytest.raises(AttributeError, match="without Normalize"):
        _ = plain.procs.normalize
    with pytest.raises(AttributeError, match=r"no 'means'.*\['Categorify'\]"):
        _ = plain.procs.means
