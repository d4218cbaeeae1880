"""dogscats: the book's chapter-1 model -- fine-tune an ImageNet-pretrained network to tell cats from dogs.

As in the book: labels come from the file names (``is_cat``: the Kaggle photos are named cat.N.jpg and
dog.N.jpg), every photo is decoded and resized once (presizing, cached on disk), each batch gets a random
crop + flip/rotate/zoom/warp/lighting resampled once, and ``fine_tune`` trains the new head on the frozen
pretrained body for one epoch, then the body too, with discriminative learning rates. The normalisation
the weights were trained with is added by ``vision_learner``.

The pretrained body's batch-norm layers keep ImageNet's statistics throughout (``BnFreeze(body=True)``),
and while the body is frozen their weights stay as they are too (``train_bn=False``): nothing is
back-propagated through the frozen body, so on a CPU the frozen epoch costs about a third of what it does with
trainable batch-norm weights, and the head learns on exactly the features the body gives at inference. In
the second phase the stem and the high-resolution blocks (the first layer group: the costliest layers per
image, whose edge and texture filters transfer as they are) stay frozen (``unfreeze_to=1``). ``base_lr=1e-3``:
the head's peak rate is 1e-3 in the first phase, 5e-4 in the second; at twice that, the second phase loses
what the first gained. Measured on the 3000/1000 photos at 224 px, 2 threads: error 0.015 in 204 s of
training; with the statistics following the augmented photos and the whole body unfrozen, 0.024 in 310 s.
Where the CPU computes bfloat16 in hardware, training runs in bfloat16 mixed precision (``to_bf16()``).

    pipekit run dogscats                       # EfficientNet-Lite0, ImageNet weights, 224 px
    pipekit run dogscats --size 128            # cheaper, less accurate (the features are 224-px ones)
    pipekit run dogscats --quick               # 200 train / 100 valid photos, for tests
    pipekit run dogscats --scratch             # the same network from random weights, for comparison
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import pipekit.datasets as D
from pipekit.cli import positive_int, recipe_parser
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, set_seed
from pipekit.learn import BnFreeze, cpu_bf16_is_fast, error_rate
from pipekit.vision import ImageBlock, Resize, aug_transforms, vision_learner


def is_cat(path: str | Path) -> bool:
    """The book's label function, for the dogscats names (cat.N.jpg / dog.N.jpg)."""
    return Path(path).name.startswith("cat")


def subset(n_train: int, n_valid: int):
    """get_items taking the first ``n_train``/``n_valid`` photos of each class (only those are decoded)."""
    def get_items(path: Path) -> list[Path]:
        return [f for split, n in (("train", n_train), ("valid", n_valid)) for kind in ("cats", "dogs")
                for f in get_image_files(path / split / kind)[:n]]
    return get_items


def datablock(quick: bool = False, size: int = 224):
    """The recipe's DataBlock and the folder it reads (``pipekit summary dogscats`` walks them).

    No Normalize: ``vision_learner`` adds the statistics its pretrained weights were trained with."""
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=subset(100, 50) if quick else get_image_files,
                       get_y=is_cat, splitter=GrandparentSplitter(), item_tfms=[Resize(int(size * 1.25))],
                       batch_tfms=aug_transforms(size=size, min_scale=0.75))
    return dblock, D.path("dogscats")


def main(quick: bool = False, size: int | None = None, epochs: int = 1, arch: str = "efficientnet_lite0",
         pretrained: bool = True) -> dict:
    set_seed(42)
    t0 = time.perf_counter()
    size = size or (160 if quick else 224)  # 224: what the weights were trained at
    dblock, path = datablock(quick, size)
    dls = dblock.dataloaders(path, bs=32, seed=42)
    # a random body has no statistics worth keeping: BnFreeze only for pretrained weights
    learn = vision_learner(dls, arch, pretrained=pretrained, metrics=error_rate, train_bn=False,
                           cbs=BnFreeze(body=True) if pretrained else None)
    if cpu_bf16_is_fast():
        learn.to_bf16()
    t_fit = time.perf_counter()
    if pretrained:
        learn.fine_tune(epochs, base_lr=1e-3, unfreeze_to=1)
    else:
        learn.fit_one_cycle(epochs + 1, 2e-3)
    fit_s = time.perf_counter() - t_fit
    loss, err = learn.validate()
    elapsed = time.perf_counter() - t0
    how = "fine_tune" if pretrained else "from scratch"
    print(f"result: dogscats is_cat {arch} {how} {size}px train={len(dls.train.dataset)} "
          f"valid={len(dls.valid.dataset)} valid_loss={loss:.4f} error_rate={err:.4f} accuracy={1 - err:.4f} "
          f"train_time={fit_s:.1f}s time={elapsed:.1f}s")
    return {"error_rate": err, "accuracy": 1 - err, "valid_loss": loss, "train_s": fit_s, "time_s": elapsed}


if __name__ == "__main__":
    p = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 train / 100 valid photos at 160 px, for tests (--size "
                                                        "and --epochs, when given, still apply)")
    p.add_argument("--size", type=positive_int, default=None, help="training image size (default 224; 160 with --quick)")
    p.add_argument("--epochs", type=positive_int, default=1, help="unfrozen epochs after the frozen one (the book: 1)")
    p.add_argument("--arch", default="efficientnet_lite0")
    p.add_argument("--scratch", action="store_true", help="random weights instead of ImageNet's")
    p.add_argument("--threads", type=positive_int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick, a.size, a.epochs, a.arch, not a.scratch)
