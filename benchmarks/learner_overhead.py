"""Learner overhead per training batch against a hand-written PyTorch loop on the same model and data.

Fashion-MNIST (first N training images), AdamW, cross-entropy, CPU, 1 torch thread. For each model
(a small CNN and an MLP, where per-batch overhead weighs most) it times, interleaved over repetitions:

  (a) plain loop: ``for x, y in dls.train: loss = F.cross_entropy(model(x), y); backward; step; zero_grad``
      with the Learner's default optimiser (AdamW, no weight decay on biases/batch-norm: two param groups)
  (b) ``Learner.fit`` (default callbacks: train/eval switch, Recorder, progress) over the same loader,
      timing the training phase only
  (c) plain loop over pre-sliced tensors (no loader at all), for reference

and prints the per-batch times and the ratio (b)/(a) (target: within 1.10). Then, with ``pipekit.bench``:

  (d) the loader alone, ``profile(dls)``: ms/batch and items/s of its untimed warm epochs, and the stages
      the time goes to
  (e) ``bottleneck(learn)``: the loader alone, the model trained on one cached batch and the real training
      step, in items/s through the Learner's own loop, and which of loader and model limits training

With $FASTAI_PYTHON set, the same comparison runs in fastai (its Learner vs a plain loop over its own
DataLoader) for the anchor ratio, in the same run. A JSON record goes to bench_results/learner_overhead.json.

    python benchmarks/learner_overhead.py [--quick] [--skip-fastai]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_fmnist(n: int):
    import numpy as np

    import pipekit.datasets as D
    from pipekit.data.external import read_idx

    root = D.path("fashion_mnist")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:n, None].astype(np.float32) / 255.0
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    return x, y


def make_model(kind: str):
    from pipekit.learn import MLP, simple_cnn

    return simple_cnn(1, 10, (16, 32, 64)) if kind == "cnn" else MLP(784, 10, layers=[64])


def bench_pipekit(kind: str, n: int, bs: int, reps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from pipekit.bench import bottleneck, profile
    from pipekit.data import CategoryBlock, DataLoaders, TensorStore
    from pipekit.learn import Adam, Callback, Learner

    torch.set_num_threads(1)
    x, y = load_fmnist(n + bs)
    dls = DataLoaders.from_stores([TensorStore(x[:n]), TensorStore(y[:n])], [TensorStore(x[n:]), TensorStore(y[n:])],
                                  blocks=(CategoryBlock(), CategoryBlock()), bs=bs, seed=0, device="cpu",
                                  num_workers=0)
    torch.manual_seed(0)
    base = make_model(kind)
    plain_model = copy.deepcopy(base)
    # the same optimiser as the Learner's default: AdamW, no weight decay on biases and batch-norm
    norm = {id(p) for m in plain_model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    no_wd = [p for n, p in plain_model.named_parameters() if id(p) in norm or n.endswith("bias")]
    wd = [p for p in plain_model.parameters() if all(p is not q for q in no_wd)]
    opt = torch.optim.AdamW([{"params": wd}, {"params": no_wd, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99),
                            eps=1e-5, weight_decay=0.01)
    learn = Learner(dls, copy.deepcopy(base), opt_func=Adam, lr=1e-3)
    n_batches = len(dls.train)
    xt, yt = torch.from_numpy(x[:n]), torch.from_numpy(y[:n])

    class TrainTimer(Callback):
        def before_train(self):
            self.t0 = time.perf_counter()

        def after_train(self):
            self.dt = time.perf_counter() - self.t0

    timer = TrainTimer()
    learn.add_cb(timer)

    def plain_epoch() -> float:
        plain_model.train()
        t0 = time.perf_counter()
        for xb, yb in dls.train:
            loss = F.cross_entropy(plain_model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def tensor_epoch() -> float:
        plain_model.train()
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        for i in range(n_batches):
            idx = perm[i * bs:(i + 1) * bs]
            loss = F.cross_entropy(plain_model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def learner_epoch() -> float:
        learn.fit(1)
        return timer.dt

    plain_epoch(), learner_epoch(), tensor_epoch()  # warm-up
    a, b, c = [], [], []
    for _ in range(reps):
        a.append(plain_epoch())
        b.append(learner_epoch())
        c.append(tensor_epoch())
    per = lambda ts: statistics.median(ts) / n_batches * 1e3  # noqa: E731 - ms per batch
    # after the interleaved timings, so that neither disturbs them (bottleneck puts the learner back as it was)
    prof = profile(dls, cold=False, warm_epochs=2)
    # at least 32 batches a phase (over as many epochs as it takes): a few short batches are at the mercy of load
    neck = bottleneck(learn, n_batches=max(n_batches, 32))
    top = [{"stage": s.name, "kind": s.kind, "where": s.where, "seconds": s.seconds, "share": s.share}
           for s in sorted(prof.warm.stages, key=lambda s: -s.seconds)[:3]]
    return {"model": kind, "batches_per_epoch": n_batches, "bs": bs, "reps": reps,
            "plain_loop_ms_per_batch": per(a), "learner_ms_per_batch": per(b), "tensor_loop_ms_per_batch": per(c),
            "learner_over_plain": per(b) / per(a), "overhead_ms_per_batch": per(b) - per(a),
            "loader_ms_per_batch": 1e3 / prof.batches_per_s, "loader_items_s": prof.items_per_s,
            "loader_top_stages": top, "loader_profile": prof.to_dict(), "bottleneck": neck.to_dict()}


FASTAI_SCRIPT = r'''
import copy, gzip, json, statistics, sys, time
import numpy as np, torch, torch.nn.functional as F
from torch import nn
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.optimizer import Adam
import fastai.callback.progress  # noqa: F401 - adds Learner.no_bar

kind, n, bs, reps, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(1)
def idx(p):
    with gzip.open(p) as f: data = f.read()
    nd = data[3]; dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)
x = idx(f"{root}/train-images-idx3-ubyte.gz")[:n + bs, None].astype(np.float32) / 255.0
y = idx(f"{root}/train-labels-idx1-ubyte.gz")[:n + bs].astype(np.int64)
xt, yt = torch.from_numpy(x), torch.from_numpy(y)
class DS:  # fastai's loader batches by index and collates
    def __init__(self, a, b): self.a, self.b = a, b
    def __len__(self): return len(self.a)
    def __getitem__(self, i): return self.a[i], self.b[i]
train = DataLoader(DS(xt[:n], yt[:n]), bs=bs, shuffle=True, drop_last=True)
valid = DataLoader(DS(xt[n:], yt[n:]), bs=bs)
dls = DataLoaders(train, valid, device="cpu")
def block(ni, nf): return nn.Sequential(nn.Conv2d(ni, nf, 3, 2, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU(inplace=True))
class Pool(nn.Module):
    def forward(self, x): return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)
torch.manual_seed(0)
if kind == "cnn":
    base = nn.Sequential(nn.Sequential(block(1, 16), block(16, 32), block(32, 64)), nn.Sequential(Pool(), nn.Linear(128, 10)))
else:
    base = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(inplace=True), nn.Linear(64, 10))
plain_model = copy.deepcopy(base)
norm = {id(p) for m in plain_model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
no_wd = [p for n, p in plain_model.named_parameters() if id(p) in norm or n.endswith("bias")]
wd = [p for p in plain_model.parameters() if all(p is not q for q in no_wd)]
opt = torch.optim.AdamW([{"params": wd}, {"params": no_wd, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
class T(Callback):
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.dt = time.perf_counter() - self.t0
timer = T()
learn = Learner(dls, copy.deepcopy(base), loss_func=nn.CrossEntropyLoss(), opt_func=Adam, lr=1e-3, cbs=[timer])
nb = len(dls.train)
def plain():
    plain_model.train(); t0 = time.perf_counter()
    for xb, yb in dls.train:
        loss = F.cross_entropy(plain_model(xb), yb); loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0
def lrn():
    with learn.no_logging(), learn.no_bar(): learn.fit(1)
    return timer.dt
plain(); lrn()
a, b = [], []
for _ in range(reps):
    a.append(plain()); b.append(lrn())
per = lambda ts: statistics.median(ts) / nb * 1e3
print(json.dumps({"plain_loop_ms_per_batch": per(a), "learner_ms_per_batch": per(b), "learner_over_plain": per(b) / per(a)}))
'''


def bench_fastai(kind: str, n: int, bs: int, reps: int) -> dict | None:
    fa = os.environ.get("FASTAI_PYTHON")
    if not fa:
        print("  fastai: skipped (FASTAI_PYTHON is not set)")
        return None
    import pipekit.datasets as D

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(FASTAI_SCRIPT)
    res = subprocess.run([fa, f.name, kind, str(n), str(bs), str(reps), str(D.path("fashion_mnist"))],
                         capture_output=True, text=True, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.unlink(f.name)
    if res.returncode != 0:
        print(f"  fastai: failed ({res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode})")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few batches and repetitions (for tests)")
    p.add_argument("--skip-fastai", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench_results" / "learner_overhead.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("PIPEKIT_QUIET", "1")
    n, reps = (1024, 2) if args.quick else (8192, 7)
    records = []
    for kind, bs in (("cnn", 128), ("mlp", 64)):
        r = bench_pipekit(kind, n, bs, reps)
        print(f"{kind}: plain loop {r['plain_loop_ms_per_batch']:.3f} ms/batch | Learner {r['learner_ms_per_batch']:.3f} "
              f"ms/batch | Learner/plain {r['learner_over_plain']:.3f} (target <= 1.10) | overhead "
              f"{r['overhead_ms_per_batch'] * 1e3:.0f} us/batch | tensor-slicing loop {r['tensor_loop_ms_per_batch']:.3f} ms/batch")
        stages = ", ".join(f"{t['stage']} {t['share']:.0%}" for t in r["loader_top_stages"])
        print(f"  loader alone (pipekit.bench.profile): {r['loader_ms_per_batch']:.3f} ms/batch "
              f"({r['loader_items_s']:,.0f} items/s); top stages: {stages}")
        nk = r["bottleneck"]
        print(f"  pipekit.bench.bottleneck ({nk['n_batches']} batches): loader alone {nk['loader_items_s']:,.0f} items/s | "
              f"model on one cached batch {nk['model_items_s']:,.0f} items/s | training step "
              f"{nk['full_items_s']:,.0f} items/s -> limiter: {nk['limiter']}")
        print(f"  verdict: {nk['verdict']}")
        fa = None if args.skip_fastai else bench_fastai(kind, n, bs, reps)
        if fa is not None:
            r["fastai"] = fa
            print(f"  fastai anchor: plain loop {fa['plain_loop_ms_per_batch']:.3f} ms/batch | Learner "
                  f"{fa['learner_ms_per_batch']:.3f} ms/batch | Learner/plain {fa['learner_over_plain']:.3f} | "
                  f"pipekit Learner / fastai Learner {r['learner_ms_per_batch'] / fa['learner_ms_per_batch']:.3f}")
        records.append(r)
    out = {"benchmark": "learner_overhead", "n_items": n, "quick": args.quick, "results": records,
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
