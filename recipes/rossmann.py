"""Rossmann store sales (100-store sample): daily sales regression with date parts and store metadata.

The last 48 days are the validation set (a time-based split on Date, as in the competition); the
metric is the root mean squared percentage error (RMSPE) of the sales.

Run:  pipekit run rossmann [--quick] [--epochs N]
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import polars as pl
import torch

from pipekit.cli import positive_int, positive_number, recipe_parser, seed_int
from pipekit.data.seed import set_seed
from pipekit.data.splitters import TimeSplitter
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner
from pipekit.tabular.dates import add_datepart

CAT_NAMES = ["Store", "DayOfWeek", "Year", "Month", "Week", "Day", "StateHoliday", "SchoolHoliday", "Promo",
             "StoreType", "Assortment", "PromoInterval", "CompetitionOpenSinceYear", "Promo2", "Promo2SinceYear",
             "Is_month_start", "Is_month_end", "Is_quarter_start", "Is_quarter_end"]
CONT_NAMES = ["CompetitionDistance", "Elapsed", "Dayofyear"]
CUTOFF = "2015-06-14"


def rmspe(pred: np.ndarray, targ: np.ndarray) -> float:
    """Root mean squared percentage error, the competition metric (rows with zero sales are excluded)."""
    keep = targ != 0
    return float(np.sqrt(np.mean(((targ[keep] - pred[keep]) / targ[keep]) ** 2)))


def load() -> pl.DataFrame:
    root = path("rossmann_sample")
    train = pl.read_csv(root / "train.csv", schema_overrides={"StateHoliday": pl.String})
    store = pl.read_csv(root / "store.csv")
    missing = set(train["Store"].unique().to_list()) - set(store["Store"].to_list())
    if missing:
        raise ValueError(f"store.csv lacks stores {sorted(missing)[:10]} found in train.csv")
    # Closed days and zero sales are not scored; log sales make the errors relative, like RMSPE.
    df = (train.filter((pl.col("Open") == 1) & (pl.col("Sales") > 0))
          .join(store, on="Store", how="left")
          .with_columns(pl.col("Sales").cast(pl.Float64).log().alias("LogSales")))
    return add_datepart(df, "Date", drop=False)


def tabular(df: pl.DataFrame | None = None) -> Tabular:
    """The sales table processed on the days before the cutoff, split at it."""
    return Tabular(load() if df is None else df, procs=[Categorify, FillMissing, Normalize], cat_names=CAT_NAMES,
                   cont_names=CONT_NAMES, y_names="LogSales", y_block="regression", splits=TimeSplitter("Date", CUTOFF))


def dataloaders(bs: int = 512, seed: int = 0):
    """The processed table as DataLoaders (``pipekit summary rossmann`` walks them)."""
    return tabular().dataloaders(bs=bs, seed=seed)


#: what --quick sets of the options not given: (value without --quick, value with it)
QUICK = {"epochs": (8, 1)}


def main(quick: bool = False, epochs: int | None = None, lr: float = 3e-3, bs: int = 512,
         layers: Sequence[int] = (500, 250), seed: int = 0) -> float:
    """Train and report; the options are the command line's (``pipekit run rossmann --quick --layers 200 100`` is
    ``main(quick=True, layers=[200, 100])``); ``epochs`` None: 8, or 1 with ``quick`` (an option given wins). The
    valid RMSPE is returned."""
    t0 = time.perf_counter()
    set_seed(seed)
    df = load()
    tab = tabular(df)
    dls = tab.dataloaders(bs=bs, seed=seed)
    max_log = float(df["LogSales"].max())
    # the book's dropouts, 0.001 and 0.01 for its two layers: 0.01 on the last hidden layer, 0.001 on those before
    ps = [0.001] * (len(layers) - 1) + [0.01]
    learn = tabular_learner(dls, layers=list(layers), y_range=(0.0, max_log * 1.2),
                            config=dict(ps=ps, embed_p=0.04), wd=0.1)
    epochs = epochs if epochs is not None else QUICK["epochs"][1 if quick else 0]
    learn.fit_one_cycle(epochs, lr)
    preds, targs = learn.get_preds()[:2]
    err = rmspe(np.exp(preds.numpy().reshape(-1)), np.exp(targs.numpy().reshape(-1)))
    print(f"result: rossmann_sample valid RMSPE {err:.4f} ({len(tab.train)} train rows before {CUTOFF}, "
          f"{len(tab.valid)} valid rows from it on; {epochs} epochs, {time.perf_counter() - t0:.1f} s)")
    return err


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="a short run for tests: --epochs 1 unless given")
    ap.add_argument("--epochs", type=positive_int, default=None, help="epochs (default 8; 1 with --quick)")
    ap.add_argument("--lr", type=positive_number, default=3e-3)
    ap.add_argument("--bs", type=positive_int, default=512)
    ap.add_argument("--layers", type=positive_int, nargs="+", default=[500, 250], help="hidden layer sizes (dropout 0.01 after the last, "
                    "0.001 after each before it)")
    ap.add_argument("--seed", type=seed_int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    main(**vars(a))
