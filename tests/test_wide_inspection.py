"""The scikit-learn wrapper and the inspection tools on wide tables (hundreds of columns): the work grows with the
columns, not with their square. Polars rebuilds ``DataFrame.schema`` on each access, so a check that reads it once
per column costs columns x columns; these tests count its reads, as tests/test_wide_tables.py does."""

import numpy as np
import pandas as pd
import polars as pl

import pipekit.datasets as D
from pipekit.inspection import drop_redundant, partial_dependence
from pipekit.sklearn import TabularClassifier

CAT = ["workclass", "education", "sex"]
CONT = ["age", "fnlwgt", "education-num"]


def _wide(n_noise: int) -> pl.DataFrame:
    """300 adult rows and ``n_noise`` extra float columns."""
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(300)[CAT + CONT + ["salary"]]
    noise = np.random.default_rng(0).normal(size=(len(df), n_noise)).astype("float32")
    return pl.from_pandas(pd.concat([df, pd.DataFrame(noise, columns=[f"n{i}" for i in range(n_noise)])], axis=1))


def _reads(n_noise: int, reads: dict) -> tuple[int, ...]:
    """Schema reads of a TabularClassifier's fit and predict, of drop_redundant (refits without a column) and of
    partial_dependence, on a frame of ``n_noise`` extra columns."""
    df = _wide(n_noise)
    X, y = df.drop("salary"), df["salary"]
    counts = []
    reads["n"] = 0
    model = TabularClassifier(backend="rf", random_state=0).fit(X, y)
    counts.append(reads["n"])
    reads["n"] = 0
    model.predict(X.head(5))
    counts.append(reads["n"])
    reads["n"] = 0
    drop_redundant(model, (X.head(200), y.head(200)), (X.tail(100), y.tail(100)), columns=["age"])
    counts.append(reads["n"])
    reads["n"] = 0
    partial_dependence(model, X.head(30), "age", grid=3)
    counts.append(reads["n"])
    return tuple(counts)


def test_sklearn_wrapper_and_inspection_read_the_schema_a_fixed_number_of_times(schema_reads):
    narrow, wide = _reads(50, schema_reads), _reads(400, schema_reads)
    # a read per column would add 350 reads per fit (the check that each column holds values)
    assert wide == narrow, (narrow, wide)
