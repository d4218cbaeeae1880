"""Fashion-MNIST from its IDX files: 60,000 training and 10,000 test images of 10 clothing classes.

Three runs side by side on the same training images, scored on the whole test set: a small CNN from scratch
at the images' own 28 px, and an EfficientNet-Lite0 at 64 px from random weights and from its ImageNet weights
(``fine_tune``: one frozen epoch, then the rest unfrozen; the body keeps ImageNet's batch-norm statistics,
``BnFreeze(body=True)``). Small grey images of clothes are far from ImageNet's photos, yet with 10,000
training images and 3 epochs the pretrained network is the most accurate (0.8878, against 0.8477 for the
small CNN and 0.8405 for Lite0 from random weights). Letting the body's statistics follow the clothes
instead gave 0.8105, below both networks from scratch.

    pipekit run fashion_mnist                  # 10,000 training images, 3 epochs per run
    pipekit run fashion_mnist --n-train 60000  # all of them
    pipekit run fashion_mnist --quick          # a few batches, for tests
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import pipekit.datasets as D
from pipekit.cli import positive_int, recipe_parser
from pipekit.data import set_seed
from pipekit.learn import BnFreeze, accuracy
from pipekit.vision import Normalize, aug_transforms, dataloaders_from_arrays, require_weights, vision_learner

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
STATS = ([0.286], [0.353])  # measured on the training images


def load(quick: bool = False, n_train: int | None = None):
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz"), D.read_idx(p / "train-labels-idx1-ubyte.gz")
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz"), D.read_idx(p / "t10k-labels-idx1-ubyte.gz")
    n_train = n_train if n_train is not None else 256 if quick else None
    if n_train:
        keep = np.random.default_rng(0).permutation(len(xt))[:n_train]
        xt, yt = xt[keep], yt[keep]
    if quick:
        xv, yv = xv[:256], yv[:256]
    return xt, yt, xv, yv


def dataloaders(quick: bool = False, bs: int = 128, size: int | None = None, normalize: bool = True, data=None):
    """The images as DataLoaders, augmented in batches (``pipekit summary fashion_mnist`` walks them).

    ``data``: the arrays from ``load`` (None: loaded here); ``size``: the batches are resampled to it (None: 28 px);
    ``normalize=False`` leaves the normalisation to the learner."""
    tfms = aug_transforms(do_flip=True, max_rotate=5, max_zoom=1.05, max_warp=0.0, max_lighting=0.0, size=size)
    return dataloaders_from_arrays(*(data or load(quick)), vocab=CLASSES, bs=bs, seed=42,
                                   batch_tfms=tfms + ([Normalize.from_stats(*STATS)] if normalize else []))


def run(data, arch: str, pretrained: bool, size: int | None, epochs: int, lr: float) -> float:
    set_seed(42)
    dls = dataloaders(size=size, normalize=not pretrained, data=data)
    # a pretrained body keeps ImageNet's batch-norm statistics (BnFreeze); a random one learns its own
    learn = vision_learner(dls, arch, pretrained=pretrained, metrics=accuracy, ps=0.25, train_bn=not pretrained,
                           cbs=BnFreeze(body=True) if pretrained else None)
    if pretrained:
        learn.fine_tune(epochs - 1, base_lr=lr)
    else:
        learn.fit_one_cycle(epochs, lr)
    return float(learn.validate()[1])


def main(quick: bool = False, epochs: int | None = None, n_train: int | None = None) -> dict:
    """The three runs; ``epochs`` None: 3, or 2 with ``quick``; ``n_train`` None: 10,000 training images, or 256
    with ``quick`` (which also scores 256 test images, not all 10,000)."""
    require_weights("efficientnet_lite0")  # the last run needs them: say so before the first trains
    t0 = time.perf_counter()
    data = load(quick, n_train if n_train is not None else 256 if quick else 10_000)
    n = epochs if epochs is not None else 2 if quick else 3
    runs = {"simple_cnn scratch 28px": ("simple_cnn", False, None, 5e-3),
            "efficientnet_lite0 scratch 64px": ("efficientnet_lite0", False, 64, 3e-3),
            "efficientnet_lite0 pretrained 64px": ("efficientnet_lite0", True, 64, 3e-3)}
    accs = {name: run(data, arch, pre, size, n, lr) for name, (arch, pre, size, lr) in runs.items()}
    elapsed = time.perf_counter() - t0
    figures = " | ".join(f"{name} accuracy={acc:.4f}" for name, acc in accs.items())
    print(f"result: fashion_mnist ({len(data[0])} train / {len(data[2])} test images, {n} epochs each) {figures} "
          f"time={elapsed:.1f}s")
    return {"accuracy": accs, "time_s": elapsed}


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 training and 256 test images and 2 epochs, for tests "
                                                         "(--epochs and --n-train, when given, still apply)")
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help="epochs of each run (pretrained: 1 frozen + the rest) (default 3; 2 with --quick)")
    ap.add_argument("--n-train", type=positive_int, default=None,
                    help="training images (of 60,000) (default 10,000; 256 with --quick)")
    ap.add_argument("--threads", type=positive_int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick, a.epochs, a.n_train)
