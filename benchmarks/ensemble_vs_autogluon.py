"""pipekit's ``fit_ensemble`` beside AutoGluon-Tabular on the same rows, split, columns and time limit.

Each side runs in its own process on one parquet file written here (categorical columns as text, so both
treat them as categories) and the same training / validation row indices. pipekit fits on the training rows
only and makes every choice on them (out-of-fold); AutoGluon gets the training rows only (no tuning data;
it holds out what it needs from them) without its neural nets, as it was measured. Both are scored here,
on the validation rows, with the same pipekit metric, and compared row by row: the difference and its 95% paired
bootstrap interval over the validation rows say whether one side is better by more than those rows' noise
(``pipekit.metrics.paired_difference``). AutoGluon runs in the virtual environment named by
``AUTOGLUON_PYTHON`` (``pip install "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3"``); without it
the anchor is skipped with a note.

Data sets: adult (all 14 columns, ``RandomSplitter(0.2, seed=42)``, accuracy; anchors AutoGluon
``medium_quality`` at the same limit and ``best_quality`` at ten times pipekit's), rossmann_sample (time
split at 2015-06-14, RMSPE of sales from log sales; pipekit bags on contiguous periods in the time order of
``Elapsed``; ``medium_quality`` at the same limit), and two sets
bundled with scikit-learn: breast_cancer (accuracy) and diabetes (rmse), ``medium_quality`` at the same limit.

    AUTOGLUON_PYTHON=/path/to/ag/bin/python python benchmarks/ensemble_vs_autogluon.py \
        [--datasets adult rossmann breast_cancer diabetes] [--quick] [--n-jobs 2] [--reuse-autogluon]

pipekit's bagged members fit their fold models side by side, one LightGBM thread each, so ``--n-jobs`` cores
are used without threads waiting on one another. On a machine busy with other work (load average above its
cores), ``--n-jobs 1`` still helps AutoGluon: LightGBM's threads spin while they wait for
one another (one GBM on 360 breast_cancer rows, 207 rounds, at load 7 on 2 cores: 9.3 CPU s and 31.6 s with two
threads, 0.4 CPU s and 2.2 s with one).

``--quick`` uses limits of a few tens of seconds (AutoGluon best_quality at 120 s). ``--reuse-autogluon``
reads AutoGluon results recorded by an earlier run with the same data set, presets, limit and cores instead
of running it again (its 20-minute best_quality run). A JSON record goes to
bench_results/ensemble_vs_autogluon.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench_results"

#: seconds per data set: (pipekit and medium_quality, best_quality) normally and with --quick
LIMITS = {"adult": ((120, 1200), (30, 120)), "rossmann": ((120, None), (30, None)),
          "breast_cancer": ((30, None), (15, None)), "diabetes": ((30, None), (15, None))}

AUTOGLUON = r"""
import json, sys, time
import numpy as np, pandas as pd
spec = json.load(open(sys.argv[1]))
from autogluon.tabular import TabularPredictor
df = pd.read_parquet(spec["data"])
train = df.iloc[np.load(spec["train_idx"])][spec["columns"] + [spec["label"]]].reset_index(drop=True)
valid = df.iloc[np.load(spec["valid_idx"])][spec["columns"]].reset_index(drop=True)
metric = spec["ag_metric"]
if metric == "log_rmspe":  # RMSPE of sales from log sales, the metric pipekit selects on
    from autogluon.core.metrics import make_scorer
    def log_rmspe(y_true, y_pred):
        y, p = np.exp(np.asarray(y_true, float)), np.exp(np.asarray(y_pred, float))
        return float(np.sqrt(np.mean(((y - p) / y) ** 2)))
    metric = make_scorer("log_rmspe", log_rmspe, optimum=0, greater_is_better=False)
predictor = TabularPredictor(label=spec["label"], problem_type=spec["problem_type"], eval_metric=metric,
                             path=spec["path"], verbosity=1)
t = time.perf_counter()
predictor.fit(train, presets=spec["presets"], time_limit=spec["time_limit"], num_cpus=spec["n_jobs"],
              excluded_model_types=["NN_TORCH", "FASTAI"])
fit_s = time.perf_counter() - t
if spec["problem_type"] == "regression":
    pred = predictor.predict(valid).to_numpy(dtype=float)
else:
    proba = predictor.predict_proba(valid)
    pred = proba[sorted(proba.columns)].to_numpy(dtype=float)  # columns in label order, as pipekit orders classes
np.save(spec["pred"], pred)
board = predictor.leaderboard(silent=True)
print("RESULT " + json.dumps({"fit_s": fit_s, "best_model": predictor.model_best, "n_models": int(len(board)),
                               "leaderboard": board[["model", "score_val", "fit_time"]].head(8).to_dict("records")},
                              default=str))
"""


# ------------------------------------------------------------------------------------------------ data sets
def dataset(name: str) -> dict:
    """The table (categorical columns as text), its columns, target, task, metric and split."""
    from pipekit.data.splitters import RandomSplitter, TimeSplitter
    from pipekit.datasets import path

    if name == "adult":
        cats = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
                "native-country"]
        conts = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
        df = pl.read_csv(path("adult_sample") / "adult.csv")
        spec = {"label": "salary", "task": "classification", "metric": "accuracy", "ag_metric": "accuracy"}
        train_idx, valid_idx = RandomSplitter(valid_pct=0.2, seed=42)(df)
    elif name == "rossmann":
        sys.path.insert(0, str(ROOT / "recipes"))
        from rossmann_ensemble import CAT_NAMES, CONT_NAMES, CUTOFF, load

        df, cats, conts = load(), list(CAT_NAMES), list(CONT_NAMES)
        # split by time: the members are bagged on contiguous periods in the order of Elapsed (the date as a
        # number, a model input), as fit_ensemble does by itself for a Tabular a TimeSplitter split
        spec = {"label": "LogSales", "task": "regression", "metric": "log_rmspe", "ag_metric": "log_rmspe",
                "time_col": "Elapsed"}
        train_idx, valid_idx = TimeSplitter("Date", CUTOFF)(df)
    elif name in ("breast_cancer", "diabetes"):
        from sklearn import datasets

        data = (datasets.load_breast_cancer if name == "breast_cancer" else datasets.load_diabetes)(as_frame=True)
        df = pl.from_pandas(data.frame).rename({"target": "y"})
        if name == "breast_cancer":  # labels, not codes: a class target
            df = df.with_columns(pl.col("y").replace_strict({0: "malignant", 1: "benign"}, return_dtype=pl.String))
        cats, conts = [], list(data.feature_names)
        spec = {"label": "y", "task": "classification" if name == "breast_cancer" else "regression",
                "metric": "accuracy" if name == "breast_cancer" else "rmse",
                "ag_metric": "accuracy" if name == "breast_cancer" else "root_mean_squared_error"}
        train_idx, valid_idx = RandomSplitter(valid_pct=0.2, seed=42)(df)
    else:
        raise SystemExit(f"unknown data set {name!r}; choose from {sorted(LIMITS)}")
    df = df.select(cats + conts + [spec["label"]]).with_columns([pl.col(c).cast(pl.String) for c in cats])
    return {**spec, "name": name, "frame": df, "cats": cats, "conts": conts, "train_idx": np.asarray(train_idx),
            "valid_idx": np.asarray(valid_idx)}


def metric_of(name: str):
    from pipekit.metrics import get_metric

    if name == "log_rmspe":
        sys.path.insert(0, str(ROOT / "recipes"))
        from rossmann_ensemble import RMSPE

        return RMSPE
    return get_metric(name, "classification" if name == "accuracy" else "regression")


# ------------------------------------------------------------------------------------------------ pipekit side
def pipekit_worker(spec_file: str) -> None:
    """Run in its own process: Tabular processing plus fit_ensemble, timed together; scores on the valid rows."""
    import torch

    from pipekit.ensemble import fit_ensemble
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    spec = json.loads(Path(spec_file).read_text())
    torch.set_num_threads(max(1, spec["n_jobs"]))
    df = pl.read_parquet(spec["data"])
    metric = metric_of(spec["metric"])
    t, cpu = time.perf_counter(), time.process_time()
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=spec["cats"], cont_names=spec["conts"],
                  y_names=spec["label"], y_block="category" if spec["task"] == "classification" else "regression",
                  splits=(np.load(spec["train_idx"]), np.load(spec["valid_idx"])))
    ens = fit_ensemble(tab, time_limit=spec["time_limit"], metric=metric, n_jobs=spec["n_jobs"],
                       seed=spec["seed"], verbose=True, time_col=spec.get("time_col"))
    fit_s, cpu_s = time.perf_counter() - t, time.process_time() - cpu
    ens.print_report()
    rep = ens.report_
    oof_col, valid_col = f"oof_{metric.name}", f"valid_{metric.name}"
    members = rep.filter(pl.col("weight").is_not_null())  # every member fitted has a weight, 0 when unused
    better = max if metric.greater_is_better else min
    returned = rep.filter(pl.col("status") == "returned")
    print("RESULT " + json.dumps({
        "fit_s": fit_s, "cpu_s": cpu_s, "score": float(ens.score(tab.valid, metric)), "returned": returned["model"][0],
        "oof": returned[oof_col][0], "best_member_oof": better(members[oof_col].to_list()),
        "best_member_valid": better(members[valid_col].to_list()),
        "best_member": members.sort(oof_col, descending=metric.greater_is_better)["model"][0],
        "report": rep.to_dicts(), "pred": np.asarray(ens.predict(tab.valid)).tolist()}))


def run(python: str, code: list[str], env_extra: dict | None = None, timeout: float | None = None) -> dict:
    env = {**os.environ, "PIPEKIT_QUIET": "1", **(env_extra or {})}
    proc = subprocess.run([python, *code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["log"] = "\n".join(x for x in proc.stdout.splitlines() if not x.startswith("RESULT "))[-8000:]
            return out
    raise RuntimeError(f"benchmark process failed ({python}):\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}")


def cached_path(name: str, presets: str, limit: float, n_jobs: int) -> Path:
    return OUT / "autogluon_runs" / f"{name}_{presets}_{limit:g}s_{n_jobs}cpu.json"


def autogluon(ds: dict, files: dict, presets: str, limit: float, n_jobs: int, ag_python: str, reuse: bool,
              work: Path) -> dict:
    cache = cached_path(ds["name"], presets, limit, n_jobs)
    if reuse and cache.exists():
        rec = json.loads(cache.read_text())
        rec["reused"] = True
        return rec
    spec = {**files, "columns": ds["cats"] + ds["conts"], "label": ds["label"], "ag_metric": ds["ag_metric"],
            "problem_type": "regression" if ds["task"] == "regression" else
            ("binary" if ds["frame"][ds["label"]].n_unique() == 2 else "multiclass"),
            "presets": presets, "time_limit": limit, "n_jobs": n_jobs, "path": str(work / f"ag_{presets}"),
            "pred": str(work / f"pred_{presets}.npy")}
    spec_file = work / f"ag_{presets}.json"
    spec_file.write_text(json.dumps(spec))
    res = run(ag_python, ["-c", textwrap.dedent(AUTOGLUON), str(spec_file)], timeout=limit * 3 + 600)
    pred = np.load(spec["pred"])
    res["score"] = float(metric_of(ds["metric"]).score(valid_targets(ds), pred))
    res["pred"] = pred.tolist()  # kept, so a run that reuses this one still compares row by row
    res.pop("log", None)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(res, indent=1))
    res["reused"] = False
    return res


def valid_targets(ds: dict) -> np.ndarray:
    """The validation rows' targets as both sides' predictions are scored against: class indices in the sorted
    order of the training rows' labels (as pipekit orders classes), or values."""
    y = ds["frame"][ds["label"]].to_numpy()[ds["valid_idx"]]
    if ds["task"] == "classification":
        y = np.searchsorted(np.sort(np.unique(ds["frame"][ds["label"]].to_numpy()[ds["train_idx"]])), y)
    return y


def compare_rows(ds: dict, rec: dict, seed: int) -> None:
    """pipekit against each AutoGluon run on the same validation rows: the difference of the metric and its
    paired bootstrap interval (``pipekit.metrics.paired_difference``); the row predictions are then dropped
    from the record."""
    from dataclasses import asdict

    from pipekit.metrics import paired_difference

    y, pred = valid_targets(ds), np.asarray(rec["pipekit"].pop("pred"))
    for a in rec["autogluon"].values():
        if "pred" not in a:  # recorded by a run that kept no predictions
            continue
        a["paired"] = asdict(paired_difference(metric_of(ds["metric"]), y, pred, np.asarray(a.pop("pred")),
                                               seed=seed))


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["adult", "rossmann", "breast_cancer", "diabetes"])
    ap.add_argument("--quick", action="store_true", help="limits of a few tens of seconds")
    ap.add_argument("--time-limit", type=float, default=None, help="pipekit's (and medium_quality's) seconds per "
                    "data set instead of the defaults")
    ap.add_argument("--n-jobs", type=int, default=2, dest="n_jobs", help="cores for both sides (1 on a busy "
                    "machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-best-quality", action="store_true", help="skip AutoGluon best_quality on adult")
    ap.add_argument("--skip-autogluon", action="store_true")
    ap.add_argument("--reuse-autogluon", action="store_true", help="read AutoGluon results an earlier run recorded")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        pipekit_worker(args.worker[1])
        return
    ag_python = None if args.skip_autogluon else os.environ.get("AUTOGLUON_PYTHON")
    if not args.skip_autogluon and not ag_python:
        print("note: AUTOGLUON_PYTHON is not set; the AutoGluon anchor is skipped", flush=True)
    results: dict[str, dict] = {}
    print(f"load average at start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pipekit_vs_ag_") as tmp:
        for name in args.datasets:
            ds = dataset(name)
            (limit, best_limit) = LIMITS[name][1 if args.quick else 0]
            limit = args.time_limit or limit
            work = Path(tmp) / name
            work.mkdir()
            files = {"data": str(work / "data.parquet"), "train_idx": str(work / "train.npy"),
                     "valid_idx": str(work / "valid.npy")}
            ds["frame"].write_parquet(files["data"])
            np.save(files["train_idx"], ds["train_idx"])
            np.save(files["valid_idx"], ds["valid_idx"])
            spec = {**files, "cats": ds["cats"], "conts": ds["conts"], "label": ds["label"], "task": ds["task"],
                    "metric": ds["metric"], "time_limit": limit, "n_jobs": args.n_jobs, "seed": args.seed,
                    "time_col": ds.get("time_col")}
            (work / "pipekit.json").write_text(json.dumps(spec))
            load_before = load_average()
            p = run(sys.executable, [str(Path(__file__).resolve()), "--worker", "pipekit", str(work / "pipekit.json")],
                    {"OMP_NUM_THREADS": str(args.n_jobs)})
            print(p.pop("log"), flush=True)
            rec = {"pipekit": p, "limit": limit, "rows": [len(ds["train_idx"]), len(ds["valid_idx"])],
                   "metric": ds["metric"], "load_average": [load_before, load_average()], "autogluon": {}}
            if ag_python:
                runs = [("medium_quality", limit)]
                if best_limit and not args.no_best_quality:
                    runs.append(("best_quality", best_limit))
                for presets, lim in runs:
                    rec["autogluon"][presets] = autogluon(ds, files, presets, lim, args.n_jobs, ag_python,
                                                          args.reuse_autogluon, work)
            compare_rows(ds, rec, args.seed)
            results[name] = rec
            print_rows(name, rec)
    print_table(results)
    OUT.mkdir(exist_ok=True)
    record = {"benchmark": "ensemble_vs_autogluon", "time": time.time(), "n_jobs": args.n_jobs, "quick": args.quick,
              "load_average_end": load_average(), "results": results}
    (OUT / "ensemble_vs_autogluon.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"record: {OUT / 'ensemble_vs_autogluon.json'}")


def print_rows(name: str, rec: dict) -> None:
    p = rec["pipekit"]
    print(f"{name}: pipekit {rec['metric']} {p['score']:.4f} in {p['fit_s']:.0f} s ({p['cpu_s']:.0f} CPU s; returned "
          f"{p['returned']}, "
          f"out-of-fold {p['oof']:.4f}; best member out of fold {p['best_member']} {p['best_member_oof']:.4f}; best "
          f"member on the validation rows {p['best_member_valid']:.4f}); load average {rec['load_average'][0]} -> {rec['load_average'][1]}",
          flush=True)
    for presets, a in rec["autogluon"].items():
        print(f"{name}: AutoGluon {presets} {rec['metric']} {a['score']:.4f} in {a['fit_s']:.0f} s "
              f"({a['n_models']} models, best {a['best_model']}){' [recorded earlier]' if a['reused'] else ''}",
              flush=True)
        if "paired" in a:
            d = a["paired"]
            print(f"{name}: pipekit - AutoGluon {presets}: {d['difference']:+.4f} ({d['level']:.0%} paired bootstrap "
                  f"interval over the {d['n_rows']} validation rows {d['low']:+.4f} to {d['high']:+.4f}: "
                  f"{verdict(d)})", flush=True)


def verdict(paired: dict) -> str:
    return {"a": "pipekit better", "b": "AutoGluon better", None: "a tie"}[paired["better"]]


def print_table(results: dict) -> None:
    """One line per (data set, AutoGluon run): pipekit's validation score and fit time, whether it is at least
    its best member out of fold and beats its best member on the validation rows, then AutoGluon's, and which
    side is better by more than the validation rows' noise (a paired bootstrap interval of the difference at
    95%; only which side scored higher when the AutoGluon run was recorded without its predictions)."""
    lines = ["", f"{'data set':14} {'metric':9} {'pipekit':>8} {'fit s':>6} {'>=best oof':>10} {'>best valid':>11}   "
             f"{'AutoGluon':15} {'score':>8} {'fit s':>6} {'AG s / pk s':>11}  {'95% interval of pk - AG':24} "
             "verdict"]
    for name, rec in results.items():
        p = rec["pipekit"]
        metric = metric_of(rec["metric"])
        sign = 1 if metric.greater_is_better else -1
        oof_ok = sign * (p["oof"] - p["best_member_oof"]) >= -1e-12
        valid_ok = sign * (p["score"] - p["best_member_valid"]) > 0
        head = (f"{name:14} {metric.name:9} {p['score']:8.4f} {p['fit_s']:6.0f} {str(oof_ok):>10} "
                f"{str(valid_ok):>11}   ")
        if not rec["autogluon"]:
            lines.append(head + "(not run)")
        for presets, a in rec["autogluon"].items():
            if "paired" in a:
                d = a["paired"]
                interval, said = f"{d['low']:+.4f} to {d['high']:+.4f}", verdict(d)
            else:
                interval = "(no predictions recorded)"
                said = "pipekit higher" if sign * (p["score"] - a["score"]) > 0 else "pipekit not higher"
            lines.append(head + f"{presets:15} {a['score']:8.4f} {a['fit_s']:6.0f} {a['fit_s'] / p['fit_s']:10.1f}x  "
                                f"{interval:24} {said}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
