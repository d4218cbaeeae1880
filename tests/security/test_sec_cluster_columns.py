"""cluster_columns on the Rossmann sample, where ``Open`` is constant once closed days are dropped (as the book does)."""
import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from pipekit.backends import as_data
from pipekit.datasets import path
from pipekit.inspection import cluster_columns
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular


@pytest.fixture(scope="module")
def open_days() -> pl.DataFrame:
    train = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})
    store = pl.read_csv(path("rossmann_sample") / "store.csv")
    return train.filter((pl.col("Open") == 1) & (pl.col("Sales") > 0)).join(store, on="Store", how="left")


def test_constant_open_column_is_left_out_with_a_warning(open_days):
    cols = ["Customers", "Open", "Promo", "DayOfWeek", "SchoolHoliday", "CompetitionDistance"]
    d = as_data(open_days.select(cols), y=open_days["Sales"].to_numpy())
    with pytest.warns(UserWarning, match=r"left out 1 column\(s\) holding a single value in the 20000 rows used.*"
                                         r"\['Open'\]"):
        cl = cluster_columns(d, plot=False)
    assert cl.constant == ["Open"] and cl.columns == ["Customers", "Promo", "DayOfWeek", "SchoolHoliday",
                                                      "CompetitionDistance"]
    assert cl.linkage.shape == (4, 4) and np.isfinite(cl.correlation).all()
    # the same rows, by scipy directly (CompetitionDistance has missing values: left out pair by pair)
    sample = d.take(np.sort(np.random.default_rng(0).choice(len(d), 20000, replace=False)))
    ref = spearmanr(sample.matrix(cl.columns, dtype=np.float64), nan_policy="omit").statistic
    assert np.allclose(cl.correlation, ref)
    top = cl.pairs(0.25)  # stores with a nearer competitor see more customers; promotions run on weekdays
    assert top.select("column_a", "column_b").rows() == [("Customers", "CompetitionDistance"), ("Promo", "DayOfWeek")]
    assert top["spearman"].to_list() == pytest.approx([ref[0, 4], ref[1, 2]])
    assert ref[0, 4] < -0.4 and ref[1, 2] < -0.25


def test_two_columns_and_processed_tables(open_days, tmp_path):
    small = open_days.head(3000)
    d = as_data(small.select("Customers", "Promo"), y=small["Sales"].to_numpy())
    cl = cluster_columns(d, plot=False)  # two columns: scipy returns a number, not a matrix
    assert cl.correlation.shape == (2, 2) and cl.correlation[0, 1] == pytest.approx(
        spearmanr(small["Customers"], small["Promo"]).statistic)
    tab = Tabular(small, procs=[Categorify, FillMissing, Normalize], cat_names=["Open", "Promo", "StateHoliday"],
                  cont_names=["Customers", "CompetitionDistance"], y_names="Sales", y_block="regression")
    with pytest.warns(UserWarning, match="Open"):
        cl = cluster_columns(tab.train, path=tmp_path / "clusters.png")
    assert "Open" in cl.constant and (tmp_path / "clusters.png").exists()
    with pytest.raises(ValueError, match=r"at least 2 columns that vary; only \['Customers'\] vary"):
        with pytest.warns(UserWarning):
            cluster_columns(as_data(small.select("Customers", "Open"), y=small["Sales"].to_numpy()), plot=False)
