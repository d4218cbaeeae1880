"""dogscats: the book's chapter-1 cat/dog classifier, here trained from scratch on the `dogscats` folders.

Presizing as in the book: every photo is decoded and resized once (cached on disk), then each batch
gets a random crop + flip/rotate/zoom/warp/lighting resampled once, and ImageNet normalisation.

    python recipes/dogscats.py              # full run (xresnet18 from scratch, 64 px)
    python recipes/dogscats.py --quick      # a few batches, for tests
"""
from __future__ import annotations

import argparse
import time

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label, set_seed
from pipekit.learn import accuracy
from pipekit.vision import ImageBlock, Normalize, Resize, aug_transforms, imagenet_stats, vision_learner


def datablock(quick: bool = False, size: int = 64):
    """The recipe's DataBlock and the folder it reads (``pipekit summary dogscats`` walks them)."""
    # quick runs take every 40th file (75 train, 25 valid) so that only those are decoded
    get_items = (lambda p: get_image_files(p)[::40]) if quick else get_image_files
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_items, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(int(size * 1.25))],
                       batch_tfms=aug_transforms(size=size, min_scale=0.75) + [Normalize.from_stats(*imagenet_stats)])
    return dblock, D.path("dogscats")


def main(quick: bool = False, size: int = 64, epochs: int = 4, arch: str = "xresnet18") -> dict:
    set_seed(42)
    t0 = time.perf_counter()
    dblock, path = datablock(quick, size)
    dls = dblock.dataloaders(path, bs=64, seed=42)
    learn = vision_learner(dls, arch, metrics=accuracy)
    learn.fit_one_cycle(1 if quick else epochs, 3e-3)
    loss, acc = learn.validate()
    elapsed = time.perf_counter() - t0
    print(f"result: dogscats cats-vs-dogs {arch} from scratch {size}px valid_loss={loss:.4f} "
          f"accuracy={acc:.4f} time={elapsed:.1f}s")
    return {"accuracy": acc, "valid_loss": loss, "time_s": elapsed}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="train a few batches only (for tests)")
    p.add_argument("--size", type=int, default=64, help="training image size")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--arch", default="xresnet18", help="xresnet18, xresnet34, xresnet50 or simple_cnn")
    a = p.parse_args()
    main(a.quick, a.size, a.epochs, a.arch)
