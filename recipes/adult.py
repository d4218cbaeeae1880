"""Adult census income: will a person earn >= 50k? A tabular net with embeddings (the book's chapter 1).

Run:  python recipes/adult.py [--quick] [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import time

import torch

from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.learn.metrics import accuracy
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner

CAT_NAMES = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT_NAMES = ["age", "fnlwgt", "education-num"]


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a short run for tests")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--bs", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    set_seed(args.seed)
    t0 = time.perf_counter()
    tab = Tabular(path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing, Normalize],
                  cat_names=CAT_NAMES, cont_names=CONT_NAMES, y_names="salary",
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    dls = tab.dataloaders(bs=args.bs, seed=args.seed)
    learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
    epochs = 1 if args.quick else args.epochs
    learn.fit_one_cycle(epochs, args.lr)
    loss, acc = learn.validate()[:2]
    print(f"result: adult valid accuracy {acc:.4f} (valid loss {loss:.4f}, {epochs} epochs, "
          f"{len(tab.train)} train / {len(tab.valid)} valid rows, {time.perf_counter() - t0:.1f} s)")
    return float(acc)


if __name__ == "__main__":
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    main()
