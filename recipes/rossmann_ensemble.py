"""Rossmann store sales (100-store sample): a LightGBM, a random forest and a tabular net on log sales,
combined by a weighted ensemble selected on RMSPE, then explained end to end: permutation importance,
partial dependence (1-D and 2-D), a contribution waterfall, column clusters, drop_redundant,
adversarial validation (out_of_domain) and pruning. Every plot is written as a PNG.

The split is by time (validation from 2015-06-14 on, as in the competition). The honest check selects
the ensemble weights on the first half of the validation days and reports on the later half.

Run:  pipekit run rossmann_ensemble [--quick] [--epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from pipekit.cli import booster_seed_int, n_jobs_int, out_folder, positive_int, recipe_parser
from pipekit.backends import GBM, RandomForest, as_data
from pipekit.core.archive import atomic_write_bytes
from pipekit.core.errors import ParameterError
from pipekit.data.seed import set_seed
from pipekit.data.splitters import TimeSplitter
from pipekit.datasets import path
from pipekit.ensemble import MeanEnsemble, TorchTabular, WeightedEnsemble
from pipekit.inspection import (cluster_columns, drop_redundant, out_of_domain, partial_dependence,
                                permutation_importance, plot_importance, plot_partial_dependence,
                                prune_features, waterfall_plot)
from pipekit.metrics import ArrayMetric
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular
from pipekit.tabular.dates import add_datepart

CAT_NAMES = ["Store", "DayOfWeek", "Year", "Month", "Week", "Day", "StateHoliday", "SchoolHoliday", "Promo",
             "StoreType", "Assortment", "PromoInterval", "CompetitionOpenSinceYear", "Promo2", "Promo2SinceYear",
             "Is_month_start", "Is_month_end", "Is_quarter_start", "Is_quarter_end"]
CONT_NAMES = ["CompetitionDistance", "Elapsed", "Dayofyear"]
CUTOFF = "2015-06-14"


class LogRMSPE(ArrayMetric):
    """RMSPE of sales when the model predicts log sales."""

    greater_is_better, task, metric_name = False, "regression", "rmspe"

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y, p = np.exp(np.asarray(y_true, dtype=np.float64)), np.exp(np.asarray(y_pred, dtype=np.float64))
        return float(np.sqrt(np.mean(((y - p) / y) ** 2)))


RMSPE = LogRMSPE()


def load(n_stores: int | None = None) -> pl.DataFrame:
    root = path("rossmann_sample")
    train = pl.read_csv(root / "train.csv", schema_overrides={"StateHoliday": pl.String})
    store = pl.read_csv(root / "store.csv")
    if n_stores:
        keep = sorted(train["Store"].unique().to_list())[:n_stores]
        train = train.filter(pl.col("Store").is_in(keep))
    # closed days and zero sales are not scored; predicting log sales makes the errors relative, like RMSPE
    df = (train.filter((pl.col("Open") == 1) & (pl.col("Sales") > 0)).join(store, on="Store", how="left")
          .with_columns(pl.col("Sales").cast(pl.Float64).log().alias("LogSales")))
    return add_datepart(df, "Date", drop=False)


def tabular(df: pl.DataFrame) -> Tabular:
    """The sales table processed on the days before the cutoff, split at it."""
    return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=CAT_NAMES, cont_names=CONT_NAMES,
                   y_names="LogSales", y_block="regression", splits=TimeSplitter("Date", CUTOFF))


def dataloaders():
    """The processed table as the net's DataLoaders (``pipekit summary rossmann_ensemble`` walks them)."""
    return tabular(load()).dataloaders(bs=512, seed=0)


#: what --quick sets of the options not given: (value without --quick, value with it)
QUICK = {"epochs": (5, 1)}


def main(quick: bool = False, epochs: int | None = None, seed: int = 0, n_jobs: int = 1,
         out: str | Path | None = None) -> dict:
    """Fit, explain and report; the options are the command line's (``pipekit run rossmann_ensemble --quick --out
    DIR`` is ``main(quick=True, out="DIR")``); ``epochs`` (the net's) None: 5, or 1 with ``quick`` (an option given
    wins). ``out``: the folder to keep the plots and result.json in, made when missing (None: a temporary folder,
    removed at the end); result.json is written last, so a folder without it holds a run that did not finish. The
    result record is returned."""
    epochs = epochs if epochs is not None else QUICK["epochs"][1 if quick else 0]
    args = argparse.Namespace(quick=quick, epochs=epochs, seed=seed, n_jobs=n_jobs)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="pipekit_rossmann_ensemble_") as tmp:
            return fit_and_explain(args, Path(tmp))
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():  # refused before anything runs
        raise ParameterError(f"rossmann_ensemble: out={str(out)!r} is a file, not a folder: give a folder to write the "
                             "plots and result.json in")
    # a previous run's record goes first: until this run writes its own, the folder does not look complete
    (folder / "result.json").unlink(missing_ok=True)
    return fit_and_explain(args, folder, kept=True)


def fit_and_explain(args: argparse.Namespace, out: Path, kept: bool = False) -> dict:
    """The recipe's steps with the options ``args``, its plots and result record written in the folder ``out``
    (named in the result line when ``kept``: a folder the user chose)."""
    set_seed(args.seed)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    df = load(10 if args.quick else None)
    tab = tabular(df)
    max_log = float(df["LogSales"].max())

    # members
    gbm = GBM("regression", learning_rate=0.05, num_leaves=63, n_estimators=150 if args.quick else 3000,
              n_jobs=args.n_jobs, seed=args.seed).fit(tab.train, tab.valid)
    rf = RandomForest("regression", n_estimators=15 if args.quick else 60, max_samples=50_000,
                      min_samples_leaf=3, n_jobs=args.n_jobs, seed=args.seed).fit(tab.train)
    net = TorchTabular("regression", layers=[1000, 500], epochs=args.epochs, lr=3e-3,
                       bs=512, wd=0.1, config={"ps": [0.001, 0.01], "embed_p": 0.04},
                       y_range=(0.0, max_log * 1.2), seed=args.seed).fit(tab.train)
    names = ["gbm", "rf", "net"]
    members = [gbm, rf, net]
    for n, m in zip(names, members):
        m.name = n
    ens = WeightedEnsemble(members, metric=RMSPE, n_iter=50).fit(tab.valid)
    mean = MeanEnsemble(members, metric=RMSPE).fit(tab.valid)
    print("validation RMSPE (the weighted ensemble's selection set):")
    ens.print_report()
    mean.print_report()
    scores = dict(zip(names, map(float, ens.report_["rmspe"].to_list()[:-1])))
    weighted = float(ens.score(tab.valid))

    # honest, time-ordered check: select on the first half of the validation days, report on the rest
    v = as_data(tab.valid)
    dates = df["Date"].gather(tab.valid_idx).to_numpy()
    mid = np.sort(np.unique(dates))[len(np.unique(dates)) // 2]
    early, late = v.take(np.flatnonzero(dates < mid)), v.take(np.flatnonzero(dates >= mid))
    gbm_early = gbm.clone().fit(tab.train, early)
    gbm_early.name = "gbm"
    honest = WeightedEnsemble([gbm_early, rf, net], metric=RMSPE, n_iter=50).fit(early)
    late_members = {n: m.score(late, RMSPE) for n, m in zip(names, [gbm_early, rf, net])}
    late_ens = float(honest.score(late))
    print(f"later half of valid ({len(late)} rows): members {({k: round(s, 4) for k, s in late_members.items()})}, "
          f"ensemble selected on the earlier half {late_ens:.4f}")

    # interpretation, end to end, plots written to out/
    imp = permutation_importance(gbm, tab.valid, metric=RMSPE, n_repeats=1 if args.quick else 3, seed=args.seed)
    plot_importance(imp, path=out / "permutation_importance.png", title="GBM permutation importance (RMSPE)")
    plot_importance(gbm, path=out / "gbm_gain_importance.png", title="GBM gain importance")
    pd1 = partial_dependence(gbm, tab.valid, "CompetitionDistance", kind="both", grid=15)
    plot_partial_dependence(pd1, out / "pdp_competition_distance.png")
    pd_promo = partial_dependence(gbm, tab.valid, "Promo")
    plot_partial_dependence(pd_promo, out / "pdp_promo.png")
    pd2 = partial_dependence(gbm, tab.valid, ("DayOfWeek", "Promo"))
    plot_partial_dependence(pd2, out / "pdp_dayofweek_promo.png")
    waterfall_plot(gbm.contributions(tab.valid.xs[:1]), row=0, path=out / "waterfall_gbm_row0.png")
    waterfall_plot(rf.contributions(tab.valid.xs[:1]), row=0, path=out / "waterfall_rf_row0.png")
    clusters = cluster_columns(tab.train, path=out / "column_clusters.png")
    pairs = clusters.pairs(0.9)
    print("highly rank-correlated columns:\n", pairs)
    ood = out_of_domain(tab.train, tab.valid, n_estimators=15 if args.quick else 40, n_jobs=args.n_jobs)
    print(f"adversarial validation AUC {ood.auc:.3f}; columns separating train from valid: {ood.separating(5)}")
    candidates = ["Elapsed", "Week"] if args.quick else ["Elapsed", "Year", "Week", "Dayofyear"]
    small_gbm = GBM("regression", learning_rate=0.1, num_leaves=63, n_estimators=60 if args.quick else 1000,
                    n_jobs=args.n_jobs, seed=args.seed)
    dropped = drop_redundant(small_gbm, tab.train, tab.valid, candidates, metric=RMSPE)
    print("valid RMSPE without each time column (change > 0 = better without it):\n", dropped)
    pruned = prune_features(gbm, tab.train, tab.valid, threshold=0.002, metric=RMSPE)
    print("prune_features:", pruned)
    plots = sorted(p.name for p in out.glob("*.png"))

    res = {"members": scores, "mean": float(mean.score(tab.valid)), "weighted": weighted,
           "weights": dict(zip(names, ens.weights_.tolist())), "late_members": late_members, "late_weighted": late_ens,
           "ood_auc": ood.auc, "ood_separating": ood.separating(5), "top_permutation": imp["feature"][:5].to_list(),
           "pruned_dropped": pruned.dropped, "pruned_rmspe": [pruned.score_before, pruned.score_after],
           "plots": plots, "seconds": time.perf_counter() - t0, "quick": args.quick}
    atomic_write_bytes(out / "result.json", json.dumps(res, indent=1).encode())
    print(f"result: rossmann_sample valid RMSPE GBM {scores['gbm']:.4f}, RF {scores['rf']:.4f}, net {scores['net']:.4f}, "
          f"WeightedEnsemble {weighted:.4f} (weights {np.round(ens.weights_, 2).tolist()}); later-half check: "
          f"ensemble {late_ens:.4f} vs best member {min(late_members.values()):.4f}; out-of-domain AUC {ood.auc:.3f} "
          f"({', '.join(ood.separating(3))}); {len(plots)} plots{f' in {out}' if kept else ''} ({res['seconds']:.0f} s)")
    return res


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="10 stores, small models and --epochs 1 unless given (for "
                                                         "tests)")
    ap.add_argument("--epochs", type=positive_int, default=None, help="the net's epochs (default 5; 1 with --quick)")
    ap.add_argument("--seed", type=booster_seed_int, default=0)
    ap.add_argument("--n-jobs", type=n_jobs_int, default=1, dest="n_jobs",
                    help="threads of the GBMs and forests (-1: every core)")
    ap.add_argument("--out", type=out_folder, default=None,
                    help="folder to keep the plots and result.json in, made when missing (default: a temporary folder, "
                         "removed at the end); result.json is written last, when the run finished")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    main(**vars(a))
