"""Adult census income: a random forest, LightGBM and a tabular net, combined by a weighted ensemble
(greedy forward selection with replacement, Caruana et al. 2004).

A plain mean of the three loses to the best member; the weighted ensemble is selected on the validation
set, so it cannot be worse than its best member there. An honest check selects on one half of the
validation rows (LightGBM also stops early on that half only) and reports on the other half.

The honest way to build it is ``fit_ensemble``: bagged members whose weights (and a second stacking layer)
are chosen on their out-of-fold predictions of the training rows, within a time limit; the validation
rows are only scored.

Run:  pipekit run adult_ensemble [--quick] [--epochs N] [--time-limit S] [--out DIR]
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

from pipekit.backends import GBM, ExtraTrees, RandomForest, as_data, load_model
from pipekit.cli import SEED_MAX, n_jobs_int, number_option, out_folder, positive_int, positive_number, recipe_parser
from pipekit.core.archive import atomic_write_bytes
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Is
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.ensemble import Candidate, MeanEnsemble, TorchTabular, WeightedEnsemble, fit_ensemble
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

CAT_NAMES = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
             "native-country"]
CONT_NAMES = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def make_members(args: argparse.Namespace) -> dict[str, object]:
    """A small, diverse library: one forest, three differently-biased GBMs (native categorical splits;
    smaller bagged trees; category codes as ordered numbers) and the tabular net."""
    n_gbm = 100 if args.quick else 2000
    kw = {"n_jobs": args.n_jobs}
    return {
        "rf": RandomForest("classification", n_estimators=20 if args.quick else 100, seed=args.seed, **kw),
        "gbm": GBM("classification", learning_rate=0.05, n_estimators=n_gbm, seed=args.seed, **kw),
        "gbm_bagged": GBM("classification", learning_rate=0.03, num_leaves=15, subsample=0.8, colsample=0.7,
                          n_estimators=n_gbm, seed=args.seed + 1, **kw),
        "gbm_ordinal": GBM("classification", native_categorical=False, subsample=0.8, colsample=0.8,
                           n_estimators=n_gbm, seed=args.seed + 2, **kw),
        "net": TorchTabular("classification", layers=[200, 100], epochs=args.epochs, lr=1e-2,
                            bs=256, seed=args.seed),
    }


def tabular(quick: bool = False) -> Tabular:
    """The table (its first 5000 rows when ``quick``), processed on its training rows and split 80/20."""
    df = pl.read_csv(path("adult_sample") / "adult.csv")
    if quick:
        df = df.head(5000)
    return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=CAT_NAMES, cont_names=CONT_NAMES,
                   y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))


def dataloaders():
    """The processed table as the net's DataLoaders (``pipekit summary adult_ensemble`` walks them)."""
    return tabular().dataloaders(bs=256, seed=42)


def main(quick: bool = False, epochs: int | None = None, seed: int = 42, n_jobs: int = 1, time_limit: float = 120.0,
         out: str | Path | None = None) -> dict:
    """Fit, export and report; the options are the command line's (``pipekit run adult_ensemble --quick --n-jobs 2``
    is ``main(quick=True, n_jobs=2)``). ``epochs``: the net's (None: 5, or 1 with ``quick``). ``out``: the folder to
    keep the exported ensembles and result.json in (None: a temporary folder, removed at the end); result.json is
    written last, so a folder without it holds a run that did not finish. The result record is returned."""
    args = argparse.Namespace(quick=quick, epochs=epochs if epochs is not None else 1 if quick else 5, seed=seed,
                              n_jobs=n_jobs, time_limit=time_limit)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="pipekit_adult_ensemble_") as tmp:
            return fit_and_report(args, Path(tmp))
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"adult_ensemble: out={str(out)!r} is a file, not a folder: give a folder to write the "
                             "exported ensembles and result.json in")
    folder.mkdir(parents=True, exist_ok=True)
    # a previous run's record goes first: until this run writes its own, the folder does not look complete
    (folder / "result.json").unlink(missing_ok=True)
    res = fit_and_report(args, folder)
    print(f"exported ensembles and result.json written to {out}")
    return res


def fit_and_report(args: argparse.Namespace, out: Path) -> dict:
    """The recipe's steps with the options ``args``, its exports and result record written in the folder ``out``."""
    set_seed(args.seed)
    t0 = time.perf_counter()
    tab = tabular(args.quick)

    # 1. members on the train split; the valid split is used for GBM early stopping and ensemble selection
    library = make_members(args)
    for m in library.values():
        m.fit(tab.train, tab.valid)
    names, members = list(library), list(library.values())
    mean = MeanEnsemble({k: library[k] for k in ("rf", "gbm", "net")}).fit(tab.valid)
    ens = WeightedEnsemble(library, metric="accuracy", n_iter=50).fit(tab.valid)
    print("members and ensembles on the validation set (the weighted ensemble's selection set):")
    mean.print_report()
    ens.print_report()
    scores = dict(zip(names, map(float, ens.report_["accuracy"].to_list()[:-1])))
    best = max(scores.values())
    weighted = ens.score(tab.valid)
    if not weighted >= best:
        raise SystemExit("greedy selection keeps the best prefix: never below the best member")

    # 2. honest check: early-stop the GBMs and select on half A of valid, report on half B (never seen)
    v = as_data(tab.valid)
    perm = np.random.default_rng(args.seed).permutation(len(v))
    half_a, half_b = v.take(np.sort(perm[: len(v) // 2])), v.take(np.sort(perm[len(v) // 2:]))
    members_a = [m.clone().fit(tab.train, half_a) if isinstance(m, GBM) else m for m in members]
    for n, m in zip(names, members_a):
        m.name = n
    held = {n: m.score(half_b) for n, m in zip(names, members_a)}
    held_ens = {}
    for metric in ("accuracy", "log_loss"):
        sel = WeightedEnsemble(members_a, metric=metric, n_iter=50).fit(half_a)
        held_ens[metric] = sel.score(half_b, "accuracy")
        print(f"held-out half B ({len(half_b)} rows), selected on half A by {metric}, weights "
              f"{np.round(sel.weights_, 2).tolist()}: ensemble accuracy {held_ens[metric]:.4f}")
    print("  members on half B: " + ", ".join(f"{k} {s:.4f}" for k, s in held.items()))

    # 3. export the whole ensemble with its procs, load it back and check it predicts the same
    file = ens.export(out / "adult_weighted.pipekit")
    back = load_model(file)
    if not np.allclose(back.predict(tab.valid), ens.predict(tab.valid), atol=1e-6):
        raise SystemExit("the exported weighted ensemble predicts differently from the fitted one")

    # 4. the honest ensemble: bagged members, weights and a second layer chosen on out-of-fold predictions of
    #    the training rows only; the validation rows are scored, never used
    t1 = time.perf_counter()
    quick = [Candidate("gbm", GBM("classification", learning_rate=0.1, n_estimators=300, n_jobs=args.n_jobs)),
             Candidate("extra_trees", ExtraTrees("classification", n_estimators=20, n_jobs=args.n_jobs), 0.3)]
    auto = fit_ensemble(tab, time_limit=args.time_limit, metric="accuracy", candidates=quick if args.quick else None,
                        n_folds=3 if args.quick else 5, n_jobs=args.n_jobs, seed=args.seed)
    auto.print_report()
    rep = auto.report_
    returned = rep.filter(pl.col("status") == "returned")
    fitted = rep.filter(pl.col("weight").is_not_null())
    honest = {"accuracy": float(auto.score(tab.valid)), "oof": returned["oof_accuracy"][0],
              "returned": returned["model"][0], "seconds": time.perf_counter() - t1,
              "members_oof": dict(zip(fitted["model"], fitted["oof_accuracy"])),
              "members_valid": dict(zip(fitted["model"], fitted["valid_accuracy"]))}
    back_auto_file = auto.export(out / "adult_fit_ensemble.pipekit")
    back_auto = load_model(back_auto_file)
    raw = pl.read_csv(path("adult_sample") / "adult.csv").drop("salary")[tab.valid_idx[:100].tolist()]
    if not np.allclose(back_auto.predict(back_auto.process(raw)), auto.predict(tab.valid)[:100], atol=1e-9):
        raise SystemExit("the exported fit_ensemble ensemble predicts differently from the fitted one")

    res = {"members": scores, "mean_rf_gbm_net": float(mean.score(tab.valid)), "weighted": float(weighted),
           "weights": dict(zip(names, ens.weights_.tolist())), "heldout_members": held,
           "heldout_weighted": held_ens, "honest": honest, "seconds": time.perf_counter() - t0, "quick": args.quick,
           "args": vars(args), "files": [file.name, back_auto_file.name]}
    # the record is written last and whole (a temporary file renamed into place): it is there when the run finished
    atomic_write_bytes(out / "result.json", json.dumps(res, indent=1).encode())
    print(f"result: adult valid accuracy RF {scores['rf']:.4f}, LightGBM {scores['gbm']:.4f}, net {scores['net']:.4f}, "
          f"mean of the three {res['mean_rf_gbm_net']:.4f}, WeightedEnsemble {weighted:.4f} >= best member {best:.4f}; "
          f"held-out half: ensemble {held_ens['accuracy']:.4f} (accuracy-selected) / {held_ens['log_loss']:.4f} "
          f"(log-loss-selected) vs best member {max(held.values()):.4f} "
          f"({len(tab.train)} train / {len(tab.valid)} valid rows, {res['seconds']:.0f} s); honest fit_ensemble "
          f"({honest['returned']}, chosen on training rows only): valid accuracy {honest['accuracy']:.4f}, "
          f"out-of-fold {honest['oof']:.4f} in {honest['seconds']:.0f} s")
    return res


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="first 5000 rows, small models, and 1 epoch for the net "
                                                         "unless --epochs is given (for tests)")
    ap.add_argument("--epochs", type=positive_int, default=None, help="the net's epochs (default 5; 1 with --quick)")
    ap.add_argument("--seed", default=42, type=number_option(Is(lambda v: 0 <= v <= SEED_MAX - 2, (
        f"a seed from 0 to {SEED_MAX - 2} (the GBMs take seed, seed + 1 and seed + 2)")), integer=True))
    ap.add_argument("--n-jobs", type=n_jobs_int, default=1, dest="n_jobs",
                    help="threads of the forests and GBMs (-1: every core)")
    ap.add_argument("--time-limit", type=positive_number, default=120.0, dest="time_limit",
                    help="seconds for fit_ensemble (the honest ensemble)")
    ap.add_argument("--out", type=out_folder, default=None,
                    help="folder to keep the exported ensembles and result.json in, made when missing (default: a "
                         "temporary folder, removed at the end); result.json is written last, when the run finished")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    main(**vars(a))
