"""Wide tables (hundreds of columns): the work of processing and predicting a row grows with the columns, not with
their square. Polars rebuilds ``DataFrame.schema`` (every column's name and type) on each access, so a check that
reads it once per column costs columns x columns; these tests count its reads."""

import numpy as np
import pandas as pd

import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.data import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner

CAT = ["workclass", "education", "sex"]
CONT = ["age", "fnlwgt", "education-num"]


def _wide(n_noise: int) -> pd.DataFrame:
    """600 adult rows and ``n_noise`` extra float columns, one of them with a missing value (a FillMissing flag)."""
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(600)[CAT + CONT + ["salary"]]
    noise = np.random.default_rng(0).normal(size=(len(df), n_noise)).astype("float32")
    noise[3, 0] = np.nan
    return pd.concat([df, pd.DataFrame(noise, columns=[f"n{i}" for i in range(n_noise)])], axis=1)


def _reads_to_predict(n_noise: int, reads: dict) -> tuple[int, int, int]:
    """Schema reads of ``learn.predict(row)``, of a GBM's ``predict(process(rows))`` and of fitting a GBM (one fold
    model of an ensemble) on a table of ``n_noise`` extra columns."""
    df = _wide(n_noise)
    tab = Tabular(
        df,
        procs=[Categorify, FillMissing, Normalize],
        cat_names=CAT,
        cont_names=CONT + [f"n{i}" for i in range(n_noise)],
        y_names="salary",
        splits=RandomSplitter(0.2, seed=0),
    )
    learn = tabular_learner(tab.dataloaders(bs=64), layers=[8])
    gbm = GBM("classification", n_estimators=2, n_jobs=1).fit(tab.train, tab.valid)
    learn.predict(df.iloc[0])  # first calls pay one-off work
    gbm.predict(gbm.process(df.iloc[[0]]))
    reads["n"] = 0
    learn.predict(df.iloc[1])
    net = reads["n"]
    reads["n"] = 0
    gbm.predict(gbm.process(df.iloc[[1, 2]]))
    rows = reads["n"]
    reads["n"] = 0
    GBM("classification", n_estimators=2, n_jobs=1).fit(tab.train, tab.valid)
    return net, rows, reads["n"]


def test_predicting_and_fitting_read_the_schema_a_fixed_number_of_times(schema_reads):
    narrow, wide = _reads_to_predict(50, schema_reads), _reads_to_predict(400, schema_reads)
    # a read per column would add 350 reads (FillMissing's, the infinite-value and input-column checks)
    assert wide == narrow, (narrow, wide)
    assert max(wide) < 50, wide
