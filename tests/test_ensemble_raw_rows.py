"""Raw rows whose normalised columns hold small numbers (wine's measurements) are refused, not predicted from as if
processed; processed rows, a dict row of them and ``model.process(raw)`` are read as before, also after a save."""

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_wine

import pipekit
from pipekit.backends import GBM
from pipekit.core.errors import DataError
from pipekit.ensemble import MeanEnsemble
from pipekit.tabular import Normalize, Tabular


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    df = pl.from_pandas(X).with_columns(target=pl.Series(np.array(["zeta", "alpha", "mid"])[y.values]))
    valid = np.arange(0, len(df), 4)
    train = np.setdiff1d(np.arange(len(df)), valid)
    tab = Tabular(df, procs=[Normalize], cont_names=list(X.columns), y_names="target", splits=(train, valid))
    gbm = GBM("classification", n_estimators=30, n_jobs=1, seed=0).fit(tab.train)
    return df, tab, gbm, MeanEnsemble({"gbm": gbm})


@pytest.mark.parametrize("kind", ["backend", "ensemble"])
def test_raw_rows_with_small_numbers_are_refused(wine, kind, tmp_path):
    df, tab, gbm, ens = wine
    model = gbm if kind == "backend" else ens
    raw = df[np.asarray(tab.valid_idx)]
    assert abs(raw["alcohol"].median() - 13) < 1  # within the old guess's 10 standard units of 0
    with pytest.raises(DataError, match="normalised column '.*' holds .* a value float32 cannot hold"):
        model.predict(raw)
    with pytest.raises(DataError, match="look unprocessed"):
        model.predict(raw.to_pandas())
    loaded = pipekit.load(model.export(tmp_path / "m.pipekit"))
    with pytest.raises(DataError, match="look unprocessed"):
        loaded.predict(raw)
    expected = model.predict(tab.valid)
    np.testing.assert_allclose(loaded.predict(loaded.process(raw)), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(tab.valid.xs), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(tab.valid.xs.row(0, named=True)), expected[:1], rtol=1e-6)
    np.testing.assert_allclose(model.predict(tab.valid.xs.cast(pl.Float64)), expected, rtol=1e-6)


def test_whole_number_columns_are_refused_where_normalised(wine):
    _, tab, gbm, _ = wine
    rows = tab.valid.xs.with_columns(pl.col("magnesium").round().cast(pl.Int64))
    with pytest.raises(DataError, match="normalised column 'magnesium' is Int64"):
        gbm.predict(rows)
