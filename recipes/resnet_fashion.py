"""resnet_fashion: the book's chapters 13, 14 and 17 on Fashion-MNIST: a CNN from scratch, what batch
normalisation does to its activations (``ActivationStats``), and a ResNet from residual blocks.

20,000 of the 60,000 training images (drawn at random with a fixed seed, so the full run takes two to three
minutes on 2 CPU cores), scored on all 10,000 test images, at their own 28 px, normalised, not augmented:

- the book's simple CNN (five stride-2 ``ConvLayer``s, no batch-norm), ``fit_one_cycle(3, 0.06)`` with
  ``ActivationStats(with_hist=True)``: accuracy 0.7919. At the end of training 95.0% of the activations
  entering its last hidden ReLU are at or below 0.05 (the book's "near zero": the ReLU passes little or
  nothing), 85.0% averaged over its four ReLUs. ``color_dim`` shows the book's bad start: nearly every
  activation at zero for the first batches, a burst past 10 around batch 20, unsteady until about batch 120.
- the same CNN with batch-norm after each conv, same schedule: accuracy 0.8802, with 57.7% dead at the last
  ReLU (51.3% over the four): batch-norm keeps each ReLU's input centred, so about half passes.
- a small ResNet built from ``ConvLayer`` and ``ResBlock`` (a stride-2 stem, three residual blocks, 32 -> 64 ->
  128 channels), ``fit_one_cycle(5, 0.01)``: accuracy 0.9033 (lr 0.03 gave 0.9086 and 0.003 gave 0.9014).

The charts (``learn.activation_stats.color_dim(layer)`` and ``.dead_chart(layer)`` of the last hidden layer,
with and without batch-norm) are shown where there is a screen or notebook, else written as PNG files to
``$PIPEKIT_PLOTS`` (default ``./pipekit_plots``). The full run took 130 s and, with the machine busier, 190 s on 2 CPU cores (one torch thread).

    pipekit run resnet_fashion            # full run (20,000 of the 60,000 training images)
    pipekit run resnet_fashion --quick    # 1,024 training and 512 test images, fewer epochs, for tests
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipekit.cli import number_option, positive_int, recipe_parser
import pipekit.datasets as D
from pipekit.core.validate import Interval
from pipekit.data import DataLoaders, set_seed
from pipekit.learn import ActivationStats, ConvLayer, Learner, accuracy
from pipekit.vision import Normalize, ResBlock, dataloaders_from_arrays

SEED = 42
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
STATS = ([0.286], [0.353])  # measured on the training images


def load(n_train: int, n_valid: int | None = None):
    """``n_train`` training images drawn at random (seeded) from the 60,000, and the first ``n_valid`` of the
    10,000 test images (None: all) to validate on."""
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz"), D.read_idx(p / "train-labels-idx1-ubyte.gz")
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz"), D.read_idx(p / "t10k-labels-idx1-ubyte.gz")
    keep = np.random.default_rng(0).permutation(len(xt))[:n_train]
    return xt[keep], yt[keep], xv[:n_valid], yv[:n_valid]


def dataloaders(data=None, bs: int = 128) -> DataLoaders:
    """The images at their own 28 px, normalised, not augmented (``pipekit summary resnet_fashion``)."""
    xt, yt, xv, yv = data or load(1024, 512)
    return dataloaders_from_arrays(xt, yt, xv, yv, vocab=CLASSES, bs=bs, seed=SEED,
                                   batch_tfms=[Normalize.from_stats(*STATS)])


def simple_cnn(batch_norm: bool) -> nn.Sequential:
    """The book's first CNN: five stride-2 convolutions (28 -> 14 -> 7 -> 4 -> 2 -> 1 px) doubling the channels,
    the last one giving the 10 class scores; each conv then batch-norm (or not) then ReLU."""
    norm = "batch" if batch_norm else None
    return nn.Sequential(ConvLayer(1, 8, ks=5, stride=2, norm_type=norm), ConvLayer(8, 16, stride=2, norm_type=norm),
                         ConvLayer(16, 32, stride=2, norm_type=norm), ConvLayer(32, 64, stride=2, norm_type=norm),
                         ConvLayer(64, 10, stride=2, norm_type=norm, act_cls=None), nn.Flatten())


def resnet() -> nn.Sequential:
    """A small ResNet for 28 px: a 5x5 stride-2 stem (28 -> 14 px), three residual blocks doubling the channels
    (the last two halving the size: 14 -> 7 -> 4 px), average pooling and a linear head. Each block's last
    batch-norm starts at zero, so each block starts as (the ReLU of) its shortcut."""
    return nn.Sequential(ConvLayer(1, 16, ks=5, stride=2), ResBlock(1, 16, 32), ResBlock(1, 32, 64, stride=2),
                         ResBlock(1, 64, 128, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def last_relu_input(batch_norm: bool) -> str:
    """The recorded layer whose output the CNN's last ReLU takes: block 3's conv, or its batch-norm."""
    return "3.1" if batch_norm else "3.0"


def cnn_run(dls: DataLoaders, batch_norm: bool, epochs: int, lr: float) -> dict:
    """Train the simple CNN with ``ActivationStats(with_hist=True)``; the share of the last hidden layer's
    activations at or below 0.05 (those its ReLU zeroes, the book's "dead" ones) over the last tenth of the
    training batches, that share over every ReLU's input, and the colourful-dimension and dead-share charts."""
    set_seed(SEED)
    learn = Learner(dls, simple_cnn(batch_norm), metrics=accuracy, cbs=ActivationStats(with_hist=True))
    learn.fit_one_cycle(epochs, lr)
    stats = learn.activation_stats
    layer = last_relu_input(batch_norm)
    near_zero = stats.stats_[layer][:, 2]
    tail = max(1, len(near_zero) // 10)
    relu_inputs = [f"{i}.{1 if batch_norm else 0}" for i in range(4)]
    return {"accuracy": float(learn.recorder.values[-1][2]), "dead_last": float(near_zero[-tail:].mean()),
            "dead_all": float(np.mean([stats.stats_[n][-tail:, 2].mean() for n in relu_inputs])),
            "plots": [stats.color_dim(layer), stats.dead_chart(layer)]}


def resnet_run(dls: DataLoaders, epochs: int, lr: float) -> float:
    set_seed(SEED)
    learn = Learner(dls, resnet(), metrics=accuracy)
    learn.fit_one_cycle(epochs, lr)
    return float(learn.recorder.values[-1][2])


#: what --quick sets of the options not given: (value without --quick, value with it)
QUICK = {"n_train": (20_000, 1024), "cnn_epochs": (3, 1), "resnet_epochs": (5, 3)}


def main(quick: bool = False, n_train: int | None = None, cnn_epochs: int | None = None,
         resnet_epochs: int | None = None, cnn_lr: float = 0.06, resnet_lr: float = 0.01) -> dict:
    """The three runs; ``n_train``, ``cnn_epochs`` and ``resnet_epochs`` left None are 20,000, 3 and 5, or with
    ``quick`` 1,024, 1 and 3 (which also scores 512 test images, not all 10,000; an option given wins)."""
    given = {"n_train": n_train, "cnn_epochs": cnn_epochs, "resnet_epochs": resnet_epochs}
    n_train, cnn_epochs, resnet_epochs = (v if v is not None else QUICK[k][1 if quick else 0] for k, v in given.items())
    t0 = time.perf_counter()
    data = load(n_train, 512 if quick else None)
    dls = dataloaders(data)
    plain, normed = cnn_run(dls, False, cnn_epochs, cnn_lr), cnn_run(dls, True, cnn_epochs, cnn_lr)
    res = resnet_run(dls, resnet_epochs, resnet_lr)
    elapsed = time.perf_counter() - t0
    plots = [p for r in (plain, normed) for p in r["plots"] if p is not None]
    if plots:
        print("plots written: " + ", ".join(str(Path(p)) for p in plots))
    print(f"result: resnet_fashion ({len(data[0])} of 60000 train / {len(data[2])} test images, 28px) "
          f"cnn ({cnn_epochs} epochs): accuracy={plain['accuracy']:.4f} dead_last={plain['dead_last']:.3f} "
          f"dead_all={plain['dead_all']:.3f} | cnn+batchnorm: accuracy_bn={normed['accuracy']:.4f} "
          f"dead_last_bn={normed['dead_last']:.3f} dead_all_bn={normed['dead_all']:.3f} | "
          f"resnet ({resnet_epochs} epochs): accuracy_resnet={res:.4f} time={elapsed:.1f}s")
    return {"cnn": plain, "cnn_bn": normed, "resnet": res, "plots": plots, "time_s": elapsed}


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="512 test images, and --n-train 1024 --cnn-epochs 1 "
                                                         "--resnet-epochs 3 unless given (for tests)")
    ap.add_argument("--n-train", type=number_option(Interval(1, 60_000, integer=True,
                                                             why="Fashion-MNIST has 60,000 training images")),
                    default=None, help="training images (of 60,000) (default 20,000; 1,024 with --quick)")
    ap.add_argument("--cnn-epochs", type=positive_int, default=None,
                    help="epochs of each simple CNN (default 3; 1 with --quick)")
    ap.add_argument("--resnet-epochs", type=positive_int, default=None,
                    help="epochs of the ResNet (default 5; 3 with --quick)")
    # one thread: on a 2-core machine shared with other work, two threads made these small convolutions 6 to 10
    # times slower (each step waits for both threads to be scheduled)
    ap.add_argument("--threads", type=positive_int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick, a.n_train, a.cnn_epochs, a.resnet_epochs)
