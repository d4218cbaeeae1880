"""Transfer learning, shown honestly: pretrain an XResNet on Fashion-MNIST, save it, fine-tune it on mnist_tiny.

The same mnist_tiny training (same epochs, same data order) is run twice: from random weights and
from the saved Fashion-MNIST body (frozen for one epoch, then unfrozen with discriminative learning
rates). Both accuracies are printed, whatever they are.

    python recipes/transfer.py
    python recipes/transfer.py --quick       # a few batches, for tests
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label, set_seed
from pipekit.learn import accuracy
from pipekit.vision import Normalize, aug_transforms, dataloaders_from_arrays, mnist_stats, vision_learner
from pipekit.vision.blocks import ImageBlock


def fashion_dls(n_train: int, n_valid: int):
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz"), D.read_idx(p / "train-labels-idx1-ubyte.gz")
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz"), D.read_idx(p / "t10k-labels-idx1-ubyte.gz")
    keep = np.random.default_rng(0).permutation(len(xt))[:n_train]
    return dataloaders_from_arrays(xt[keep], yt[keep], xv[:n_valid], yv[:n_valid], vocab=[str(i) for i in range(10)],
                                   bs=64, seed=0, batch_tfms=[Normalize.from_stats(*mnist_stats)])


def datablock():
    """The fine-tuning data's DataBlock and folder (``pipekit summary transfer`` walks them)."""
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(),
                       batch_tfms=aug_transforms(do_flip=False, max_warp=0.0) + [Normalize.from_stats(*mnist_stats)])
    return dblock, D.path("mnist_tiny")


def mnist_dls(quick: bool):
    dblock, path = datablock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unlabelled test/ folder is left out of the split, as intended
        dls = dblock.dataloaders(path, bs=32, seed=7)
    # a small training set is where pretraining matters: keep 96 labelled digits
    rng = np.random.default_rng(0)
    for i, n in enumerate((96, 128 if quick else 10_000)):
        ds = dls.loaders[i].dataset
        dls.loaders[i] = dls.loaders[i].new(dataset=ds.subset(np.sort(rng.permutation(len(ds))[:n])))
    return dls


def main(quick: bool = False, n_pretrain: int = 4000, epochs: int = 4, arch: str = "xresnet18") -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        set_seed(0)
        pre = vision_learner(fashion_dls(128 if quick else n_pretrain, 128 if quick else 2000), arch,
                             metrics=accuracy, path=tmp)
        pre.fit_one_cycle(1 if quick else 2, 3e-3)
        _, pre_acc = pre.validate()
        weights = pre.save(f"fashion_{arch}", with_opt=False)
        print(f"pretrained on Fashion-MNIST: accuracy {pre_acc:.4f}, saved to {Path(weights).name}")

        n_ep = 1 if quick else epochs
        set_seed(1)
        scratch = vision_learner(mnist_dls(quick), arch, metrics=accuracy, path=tmp)
        scratch.fit_one_cycle(n_ep + 1, 3e-3)
        _, acc_scratch = scratch.validate()

        set_seed(1)
        tuned = vision_learner(mnist_dls(quick), arch, metrics=accuracy, pretrained=weights, path=tmp)
        tuned.fine_tune(n_ep, base_lr=3e-3, freeze_epochs=1)
        _, acc_tuned = tuned.validate()
    elapsed = time.perf_counter() - t0
    print(f"result: transfer fashion_mnist->mnist_tiny(96 train) {arch} accuracy scratch={acc_scratch:.4f} "
          f"fine_tuned={acc_tuned:.4f} (pretrain accuracy {pre_acc:.4f}) time={elapsed:.1f}s")
    return {"scratch": acc_scratch, "fine_tuned": acc_tuned, "pretrain": pre_acc, "time_s": elapsed}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="train a few batches only (for tests)")
    ap.add_argument("--n-pretrain", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--arch", default="xresnet18", help="xresnet18, xresnet34, xresnet50 or simple_cnn")
    a = ap.parse_args()
    main(a.quick, a.n_pretrain, a.epochs, a.arch)
