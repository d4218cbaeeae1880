"""camvid_tiny: road-scene segmentation with a U-Net, scored by pixel accuracy ignoring the Void class.

Masks travel with their images through every spatial augmentation (nearest-neighbour resampling).

    python recipes/camvid_tiny.py              # full run
    python recipes/camvid_tiny.py --quick      # a few batches, for tests
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import pipekit.datasets as D
from pipekit.data import DataBlock, RandomSplitter, get_image_files, set_seed
from pipekit.vision import (ImageBlock, MaskBlock, Normalize, Resize, aug_transforms, image_paths_with,
                            imagenet_stats, pixel_accuracy, unet_learner)


def datablock():
    """The recipe's DataBlock and the folder it reads (``pipekit summary camvid_tiny`` walks them)."""
    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images"),
                       get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                       splitter=RandomSplitter(0.2, seed=42), item_tfms=[Resize((96, 128))],
                       batch_tfms=aug_transforms(max_rotate=10, max_warp=0.1)
                       + [Normalize.from_stats(*imagenet_stats)])
    return dblock, path


def main(quick: bool = False, epochs: int = 12, arch: str = "xresnet18") -> dict:
    set_seed(42)
    t0 = time.perf_counter()
    dblock, path = datablock()
    void = dblock.blocks[1].codes.index("Void")
    dls = dblock.dataloaders(path, bs=8, seed=42)
    if quick:
        rng = np.random.default_rng(0)
        for i, n in enumerate((8, 8)):
            ds = dls.loaders[i].dataset
            dls.loaders[i] = dls.loaders[i].new(dataset=ds.subset(np.sort(rng.permutation(len(ds))[:n])))
    learn = unet_learner(dls, arch, metrics=[pixel_accuracy(ignore_index=void)])
    learn.fit_one_cycle(1 if quick else epochs, 3e-3)
    loss, acc = learn.validate()
    elapsed = time.perf_counter() - t0
    print(f"result: camvid_tiny unet({arch}) valid_loss={loss:.4f} pixel_accuracy_no_void={acc:.4f} "
          f"time={elapsed:.1f}s")
    return {"pixel_accuracy": acc, "valid_loss": loss, "time_s": elapsed}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="train a few batches only (for tests)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--arch", default="xresnet18", help="encoder: xresnet18, xresnet34, xresnet50 or simple_cnn")
    a = ap.parse_args()
    main(a.quick, a.epochs, a.arch)
