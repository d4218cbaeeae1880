"""coco_tiny: what is the largest object in the picture? (or, with --multilabel, which objects are there)

Labels come from the COCO annotations in `train.json`: for each image, the category of its largest
bounding box (single-label) or the set of all its categories (multi-label). An ImageNet-pretrained
EfficientNet-Lite2 is fine-tuned: four epochs of the head on the frozen body, then four more with the body
from its second layer group on (``unfreeze_to=1``).

There are only 200 photos (160 to train, 40 to validate) of 128 px, so the recipe holds the model back: the
photos are upsampled to 320 px (the features were learned on larger objects), the head is a single linear
layer on the pooled features (``lin_ftrs=[]``) with weight decay 0.1, and the body keeps ImageNet's
batch-norm statistics (``BnFreeze(body=True)``, ``train_bn=False``). With the default head (a 512-unit
hidden layer), the body's statistics following the photos and Lite0 at 192 px, the validation loss ended
above that of a uniform guess (2.31 against ln 6 = 1.79) and the accuracy below the no-skill baseline.

    python recipes/coco_tiny.py [--multilabel]
    python recipes/coco_tiny.py --scratch       # the same network from random weights
    python recipes/coco_tiny.py --quick         # a few batches, for tests
"""
from __future__ import annotations

import argparse
import json
import time

import polars as pl
import torch

import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, DataBlock, MultiCategoryBlock, RandomSplitter, set_seed
from pipekit.learn import BnFreeze, accuracy, accuracy_multi
from pipekit.vision import ImageBlock, Resize, aug_transforms, vision_learner


def items() -> pl.DataFrame:
    """One row per image: path, the largest object's category, all categories (space-separated)."""
    path = D.path("coco_tiny")
    meta = json.loads((path / "train.json").read_text())
    names = {c["id"]: c["name"] for c in meta["categories"]}
    files = {im["id"]: str(path / "train" / im["file_name"]) for im in meta["images"]}
    boxes = pl.DataFrame([{"image_id": a["image_id"], "area": a["bbox"][2] * a["bbox"][3],
                           "label": names[a["category_id"]]} for a in meta["annotations"]])
    per_image = boxes.sort("area", descending=True).group_by("image_id", maintain_order=True).agg(
        pl.col("label").first().alias("largest"), pl.col("label").unique().sort().str.join(" ").alias("labels"))
    return per_image.with_columns(pl.col("image_id").replace_strict(files).alias("path")).sort("path")


def datablock(quick: bool = False, multilabel: bool = False, size: int = 320):
    """The recipe's DataBlock and the table of images it reads (``pipekit summary coco_tiny`` walks them).

    No Normalize: ``vision_learner`` adds the statistics its pretrained weights were trained with."""
    df = items()
    if quick:
        df = df.head(48)
    y_block = MultiCategoryBlock(label_delim=" ") if multilabel else CategoryBlock
    dblock = DataBlock(blocks=(ImageBlock, y_block), get_x=ColReader("path"),
                       get_y=ColReader("labels" if multilabel else "largest"),
                       splitter=RandomSplitter(0.2, seed=42), item_tfms=[Resize(int(size * 1.25))],
                       batch_tfms=aug_transforms(size=size, min_scale=0.75))
    return dblock, df


def main(quick: bool = False, multilabel: bool = False, epochs: int = 4, arch: str = "efficientnet_lite2",
         pretrained: bool = True, size: int | None = None, lr: float = 3e-3) -> dict:
    set_seed(42)
    t0 = time.perf_counter()
    size = size or (64 if quick else 320)  # the photos are 128x128; Lite2's weights saw 260-px images
    dblock, df = datablock(quick, multilabel, size)
    dls = dblock.dataloaders(df, bs=32, seed=42)
    metric = accuracy_multi(thresh=0.5) if multilabel else accuracy
    learn = vision_learner(dls, arch, pretrained=pretrained, metrics=metric, lin_ftrs=[], wd=0.1,
                           train_bn=not pretrained, cbs=BnFreeze(body=True) if pretrained else None)
    if pretrained:
        learn.fine_tune(1 if quick else epochs, base_lr=lr, freeze_epochs=1 if quick else epochs, unfreeze_to=1)
    else:
        learn.fit_one_cycle(1 if quick else 2 * epochs, lr)
    loss, acc = learn.validate()
    # what a model that learned nothing would score: always the most frequent class, or for each
    # label its more frequent answer (present/absent)
    if multilabel:
        lists = df[dls.valid.dataset.idxs]["labels"].str.split(" ")
        freqs = [lists.list.contains(v).mean() for v in dls.vocab]
        baseline = sum(max(f, 1 - f) for f in freqs) / len(freqs)
    else:
        train_counts = df[dls.train.dataset.idxs]["largest"].value_counts(sort=True)
        valid_labels = df[dls.valid.dataset.idxs]["largest"]
        baseline = float((valid_labels == train_counts["largest"][0]).mean())
    task = "multi-label" if multilabel else "largest-object"
    elapsed = time.perf_counter() - t0
    how = "pretrained" if pretrained else "scratch"
    print(f"result: coco_tiny {task} {arch} ({how}) {size}px valid_loss={loss:.4f} accuracy={acc:.4f} "
          f"(no-skill baseline {baseline:.3f}, vocab {dls.vocab}) time={elapsed:.1f}s")
    return {"accuracy": acc, "valid_loss": loss, "time_s": elapsed}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="train a few batches only (for tests)")
    ap.add_argument("--multilabel", action="store_true")
    ap.add_argument("--epochs", type=int, default=4, help="epochs frozen, then as many unfrozen (pretrained)")
    ap.add_argument("--arch", default="efficientnet_lite2",
                    help="efficientnet_lite0/1/2, xresnet18/34/50 or simple_cnn (the last four with --scratch)")
    ap.add_argument("--scratch", action="store_true", help="random weights instead of ImageNet's")
    ap.add_argument("--size", type=int, default=320, help="training image size")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick, a.multilabel, a.epochs, a.arch, not a.scratch, a.size, a.lr)
