"""Fit time of pipekit's RandomForest / GBM backends vs calling scikit-learn / LightGBM directly on the
same arrays (adult, all rows, 14 inputs). pipekit's time includes turning the Polars split into the
array layout each library consumes; the target is a ratio <= 1.10.

Run:  python benchmarks/backends_fit.py [--repeats N] [--rows N]
       pipekit bench backends_fit --args --repeats N
Writes bench_results/backends_fit.json in the checkout (wherever it is run from).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from pipekit.backends import GBM, RandomForest
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

ROOT = Path(__file__).resolve().parents[1]
CAT_NAMES = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
             "native-country"]
CONT_NAMES = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=0, help="replicate adult's real rows up to this many (0 = as is)")
    args = ap.parse_args(argv)
    import lightgbm as lgb
    from sklearn.ensemble import RandomForestClassifier

    df = pl.read_csv(path("adult_sample") / "adult.csv")
    if args.rows and args.rows > df.height:
        df = pl.concat([df] * (args.rows // df.height + 1)).head(args.rows)  # replication of the real rows
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=CAT_NAMES, cont_names=CONT_NAMES,
                  y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))
    train = tab.train
    # the same arrays the direct calls get: float32 C order for sklearn, labels as class indices
    X, y = train.to_numpy()
    y = y.astype(np.int64)
    cat_idx = [i for i, c in enumerate(train.xs.columns) if c in train.cat_names]

    rf_kw = dict(n_estimators=100, max_features=0.5, min_samples_leaf=5, n_jobs=1)
    gbm = GBM("classification", n_estimators=300, early_stopping_rounds=None, n_jobs=1, seed=0)
    gbm.classes_ = np.array(["a", "b"])  # only to read the exact parameter dict pipekit trains with
    lgb_params = gbm.lgb_params()
    del gbm.classes_

    def direct_rf():
        RandomForestClassifier(**rf_kw, oob_score=False, random_state=0).fit(X, y)

    def pipekit_rf():
        RandomForest("classification", **rf_kw, oob_score=False, seed=0).fit(train)

    def direct_lgb():
        ds = lgb.Dataset(X, label=y, categorical_feature=cat_idx, free_raw_data=True)
        lgb.train(lgb_params, ds, num_boost_round=300)

    def pipekit_lgb():
        GBM("classification", n_estimators=300, early_stopping_rounds=None, n_jobs=1, seed=0).fit(train)

    times: dict[str, list[float]] = {k: [] for k in ("direct_rf", "pipekit_rf", "direct_lgb", "pipekit_lgb")}
    direct_lgb(), pipekit_lgb()  # warm-up (library loading, first allocation)
    for _ in range(args.repeats):  # interleaved so machine noise hits both sides alike
        for name, fn in (("direct_rf", direct_rf), ("pipekit_rf", pipekit_rf), ("direct_lgb", direct_lgb),
                         ("pipekit_lgb", pipekit_lgb)):
            times[name].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    rf_ratio = med["pipekit_rf"] / med["direct_rf"]
    lgb_ratio = med["pipekit_lgb"] / med["direct_lgb"]
    print(f"rows {X.shape[0]} x {X.shape[1]} inputs, median of {args.repeats}")
    print(f"random forest fit: pipekit {med['pipekit_rf']:.2f} s, sklearn direct {med['direct_rf']:.2f} s, "
          f"ratio {rf_ratio:.3f} (target <= 1.10)")
    print(f"LightGBM fit:      pipekit {med['pipekit_lgb']:.2f} s, lightgbm direct {med['direct_lgb']:.2f} s, "
          f"ratio {lgb_ratio:.3f} (target <= 1.10)")
    print("fastai anchor: fastai trains forests/GBMs by calling sklearn directly, so the direct calls are the anchor")
    rec = {"benchmark": "backends_fit", "rows": int(X.shape[0]), "inputs": int(X.shape[1]), "repeats": args.repeats,
           "times_s": times, "median_s": med, "rf_ratio": rf_ratio, "lgb_ratio": lgb_ratio,
           "machine": platform.platform(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = ROOT / "bench_results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends_fit.json").write_text(json.dumps(rec, indent=1))
    return rec


if __name__ == "__main__":
    main()
