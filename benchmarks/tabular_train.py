"""One epoch of the same tabular net on adult_sample: pipekit vs fastai ``tabular_learner``, bs 64 and 1024.

Both sides: the book's chapter-1 columns, Categorify/FillMissing/Normalize, RandomSplitter(0.2, seed=42),
``tabular_learner(dls, layers=[200, 100], metrics=accuracy)``, Adam at lr 1e-3, CPU, 1 torch thread,
no progress bars. Each (library, batch size) runs in its own process and fits ``--epochs`` single
epochs; the fastest epoch (train + validation pass) is reported, so start-up is not counted. Beside it:

* the training DataLoader alone (no model), the data side of an epoch: on pipekit's side measured with
  ``pipekit.bench.profile`` (its untimed warm epochs give s/epoch, items/s and batches/s; its stage-timed
  ones, the stages the time goes to); on fastai's, the faster of two passes timed by hand;
* what limits pipekit's epoch, from ``pipekit.bench.bottleneck(learn)``: the loader alone, the model
  trained on one cached batch (no loading) and the real training step, in items/s through the Learner's
  own loop, and its verdict;
* the floor: a bare torch loop with the same model and optimiser over batches built beforehand (training
  pass only), which bounds how much faster than fastai any library can be at that batch size here.

Ratios are against fastai measured in the same run; a JSON record goes to bench_results/tabular_train.json.

    FASTAI_PYTHON=/path/to/python python benchmarks/tabular_train.py [--epochs 2] [--bs 64 1024] [--skip-fastai]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PIPEKIT = """
import json, sys, time
import torch
torch.set_num_threads(1)
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.learn import accuracy
from pipekit.tabular import Tabular, tabular_learner
path, bs, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cat = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
cont = ["age", "fnlwgt", "education-num"]
set_seed(0)
tab = Tabular(path, cat_names=cat, cont_names=cont, y_names="salary", splits=RandomSplitter(0.2, seed=42))
dls = tab.dataloaders(bs=bs, seed=0)
learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
from pipekit.bench import bottleneck, profile
# the training loader alone (no model), the data side of an epoch: pipekit.bench's untimed warm epochs
prof = profile(dls, cold=False, warm_epochs=2)
loader = [prof.plain_wall_s / prof.warm.epochs]
top = [{"stage": s.name, "kind": s.kind, "where": s.where, "seconds": s.seconds, "share": s.share}
       for s in sorted(prof.warm.stages, key=lambda s: -s.seconds)[:3]]
times = []
for _ in range(epochs):
    t = time.perf_counter()
    learn.fit(1, 1e-3)
    times.append(time.perf_counter() - t)
acc = float(learn.validate()[1])
# loader alone, model alone on one batch, the real step: which one limits training
neck = bottleneck(learn, n_batches=len(dls.train) - 2)  # a whole epoch of batches per phase
# The floor: a bare torch loop (same model, loss and optimiser) over batches built beforehand, training
# pass only. No library can train this model on this machine faster than that.
import copy
from pipekit.learn.optim import Adam
model = copy.deepcopy(learn.model).train()
opt = Adam([{"params": list(model.parameters())}], lr=1e-3)
batches = [tuple(t.clone() for t in b) for b in dls.train]
loss_func = torch.nn.CrossEntropyLoss()
floor = []
for _ in range(epochs + 1):
    t = time.perf_counter()
    for x_cat, x_cont, y in batches:
        loss_func(model(x_cat, x_cont), y.view(-1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    floor.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"epoch_s": min(times), "all_s": times, "accuracy": acc, "batches": len(dls.train),
                               "loader_s": min(loader), "floor_s": min(floor), "bottleneck": neck.to_dict(),
                               "loader_items_s": prof.items_per_s, "loader_batches_s": prof.batches_per_s,
                               "loader_top_stages": top, "loader_stages": prof.warm.by_kind(),
                               "loader_summary": prof.summary(), "loader_profile": prof.to_dict()}))
"""

FASTAI = """
import json, sys, time
import torch
torch.set_num_threads(1)
import pandas as pd
from fastai.tabular.all import (Categorify, FillMissing, Normalize, RandomSplitter, TabularPandas, accuracy,
                                range_of, set_seed, tabular_learner)
path, bs, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cat = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
cont = ["age", "fnlwgt", "education-num"]
set_seed(0)
df = pd.read_csv(path)
to = TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=cat, cont_names=cont,
                   y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42)(range_of(df)))
dls = to.dataloaders(bs=bs)
learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
loader = []
for _ in range(2):
    t = time.perf_counter()
    for _b in dls.train:
        pass
    loader.append(time.perf_counter() - t)
times = []
with learn.no_bar(), learn.no_logging():
    for _ in range(epochs):
        t = time.perf_counter()
        learn.fit(1, 1e-3)
        times.append(time.perf_counter() - t)
    acc = float(learn.validate()[1])
print("RESULT " + json.dumps({"epoch_s": min(times), "all_s": times, "accuracy": acc, "batches": len(dls.train),
                               "loader_s": min(loader)}))
"""


def run(python: str, code: str, *args: str) -> dict:
    env = {**os.environ, "PIPEKIT_QUIET": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark process failed ({python}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--bs", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--skip-fastai", action="store_true")
    args = ap.parse_args()
    import pipekit.datasets as D

    path = str(Path(D.path("adult_sample")) / "adult.csv")
    fastai_py = None if args.skip_fastai else os.environ.get("FASTAI_PYTHON")
    if not args.skip_fastai and not fastai_py:
        print("note: FASTAI_PYTHON is not set; the fastai anchor is skipped")
    results: dict[str, dict] = {}
    for bs in args.bs:
        results[f"pipekit_bs{bs}"] = run(sys.executable, PIPEKIT, path, str(bs), str(args.epochs))
        if fastai_py:
            results[f"fastai_bs{bs}"] = run(fastai_py, FASTAI, path, str(bs), str(args.epochs))
        p = results[f"pipekit_bs{bs}"]
        line = (f"bs {bs:5d}: pipekit {p['epoch_s']:.2f} s/epoch ({p['batches']} batches, loader alone "
                f"{p['loader_s']:.3f} s, valid acc {p['accuracy']:.4f})")
        f = results.get(f"fastai_bs{bs}")
        if f:
            line += (f" | fastai {f['epoch_s']:.2f} s/epoch (loader alone {f['loader_s']:.3f} s, valid acc "
                     f"{f['accuracy']:.4f}) | epoch {f['epoch_s'] / p['epoch_s']:.1f}x faster, loader "
                     f"{f['loader_s'] / p['loader_s']:.0f}x faster")
        print(line, flush=True)
        stages = ", ".join(f"{t['stage']} ({t['where']}) {t['share']:.0%}" for t in p["loader_top_stages"])
        print(f"           pipekit.bench.profile, loader alone: {p['loader_items_s']:,.0f} items/s "
              f"({p['loader_batches_s']:,.0f} batches/s); top stages: {stages}", flush=True)
        nk = p["bottleneck"]
        print(f"           pipekit.bench.bottleneck ({nk['n_batches']} batches): loader alone "
              f"{nk['loader_items_s']:,.0f} items/s | model on one cached batch {nk['model_items_s']:,.0f} items/s | "
              f"training step {nk['full_items_s']:,.0f} items/s -> limiter: {nk['limiter']}", flush=True)
        print(f"           verdict: {nk['verdict']}", flush=True)
        if f:
            print(f"           floor: a bare torch loop, same model and optimiser, batches pre-built, training pass "
                  f"only: {p['floor_s']:.3f} s -> the most any library could be faster than fastai here is "
                  f"{f['epoch_s'] / p['floor_s']:.1f}x; pipekit epoch = {p['epoch_s'] / p['floor_s']:.2f}x the floor",
                  flush=True)
        else:
            print(f"           floor (bare torch loop, training pass only): {p['floor_s']:.3f} s; pipekit epoch = "
                  f"{p['epoch_s'] / p['floor_s']:.2f}x the floor", flush=True)
    out = ROOT / "bench_results"
    out.mkdir(exist_ok=True)
    record = {"benchmark": "tabular_train", "time": time.time(), "epochs": args.epochs,
              "note": "adult_sample, book columns, layers [200,100], 1 torch thread, fastest epoch", "results": results}
    (out / "tabular_train.json").write_text(json.dumps(record, indent=1))
    print(f"record: {out / 'tabular_train.json'}")


if __name__ == "__main__":
    main()
