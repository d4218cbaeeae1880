"""mnist_tiny: tell 3s from 7s (the book's first image model), with a small CNN.

    python recipes/mnist_tiny.py            # full run
    python recipes/mnist_tiny.py --quick    # a few batches, for tests
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label, set_seed
from pipekit.learn import accuracy
from pipekit.vision import ImageBlock, Normalize, aug_transforms, mnist_stats, vision_learner


def shrink(dls, n_train: int, n_valid: int) -> None:
    """Keep only the first items of each set (quick runs for tests)."""
    rng = np.random.default_rng(0)
    for i, n in enumerate((n_train, n_valid)):
        ds = dls.loaders[i].dataset
        keep = np.sort(rng.permutation(len(ds))[:n])
        dls.loaders[i] = dls.loaders[i].new(dataset=ds.subset(keep))


def datablock():
    """The recipe's DataBlock and the folder it reads (``pipekit summary mnist_tiny`` walks them)."""
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(),
                       batch_tfms=aug_transforms(do_flip=False, max_rotate=10, max_warp=0.0, max_lighting=0.1)
                       + [Normalize.from_stats(*mnist_stats)])
    return dblock, D.path("mnist_tiny")


def main(quick: bool = False) -> dict:
    set_seed(42)
    t0 = time.perf_counter()
    dblock, path = datablock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unlabelled test/ folder is left out of the split, as intended
        dls = dblock.dataloaders(path, bs=64, seed=42)
    learn = vision_learner(dls, "simple_cnn", metrics=accuracy, lr=1e-2)
    if quick:
        shrink(dls, 64, 64)
    learn.fit_one_cycle(1 if quick else 5, 1e-2)
    loss, acc = learn.validate()
    elapsed = time.perf_counter() - t0
    print(f"result: mnist_tiny 3-vs-7 simple_cnn valid_loss={loss:.4f} accuracy={acc:.4f} time={elapsed:.1f}s")
    return {"accuracy": acc, "valid_loss": loss, "time_s": elapsed}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="train a few batches only (for tests)")
    main(p.parse_args().quick)
