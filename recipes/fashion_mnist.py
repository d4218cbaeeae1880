"""Fashion-MNIST from its IDX files: 60,000 training and 10,000 test images of 10 clothing classes.

    python recipes/fashion_mnist.py             # full run
    python recipes/fashion_mnist.py --quick     # a few batches, for tests
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import pipekit.datasets as D
from pipekit.data import set_seed
from pipekit.learn import accuracy
from pipekit.vision import Normalize, aug_transforms, dataloaders_from_arrays, vision_learner

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def load(quick: bool = False, n_train: int | None = None):
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz"), D.read_idx(p / "train-labels-idx1-ubyte.gz")
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz"), D.read_idx(p / "t10k-labels-idx1-ubyte.gz")
    n_train = 256 if quick else n_train
    if n_train:
        keep = np.random.default_rng(0).permutation(len(xt))[:n_train]
        xt, yt = xt[keep], yt[keep]
    if quick:
        xv, yv = xv[:256], yv[:256]
    return xt, yt, xv, yv


def dataloaders(quick: bool = False, bs: int = 128):
    """The images as DataLoaders, augmented in batches (``pipekit summary fashion_mnist`` walks them)."""
    tfms = aug_transforms(do_flip=True, max_rotate=5, max_zoom=1.05, max_warp=0.0, max_lighting=0.0)
    return dataloaders_from_arrays(*load(quick), vocab=CLASSES, bs=bs, seed=42,
                                   batch_tfms=tfms + [Normalize.from_stats([0.286], [0.353])])


def main(quick: bool = False, epochs: int = 3) -> dict:
    set_seed(42)
    t0 = time.perf_counter()
    dls = dataloaders(quick)
    learn = vision_learner(dls, "simple_cnn", metrics=accuracy, ps=0.25)
    learn.fit_one_cycle(1 if quick else epochs, 5e-3)
    loss, acc = learn.validate()
    elapsed = time.perf_counter() - t0
    print(f"result: fashion_mnist simple_cnn test_loss={loss:.4f} accuracy={acc:.4f} "
          f"({len(dls.train.dataset)} train / {len(dls.valid.dataset)} test images) time={elapsed:.1f}s")
    return {"accuracy": acc, "valid_loss": loss, "time_s": elapsed}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="train a few batches only (for tests)")
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    main(a.quick, a.epochs)
