"""pipekit demo: the book's first workflow, end to end, on the real mnist_tiny digits (3s and 7s).

Declare the data, walk one batch through the pipeline, train a CNN, look at a batch, predict an
unlabelled image, export the model and load it back without the training data.

    make demo            # or: python recipes/demo.py
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import accuracy
from pipekit.vision import ImageBlock, Normalize, aug_transforms, mnist_stats, vision_learner


def datablock():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(),
                       batch_tfms=aug_transforms(do_flip=False, max_rotate=10, max_warp=0.0, max_lighting=0.1)
                       + [Normalize.from_stats(*mnist_stats)])
    return dblock, D.path("mnist_tiny")


def main() -> None:
    t0 = time.perf_counter()
    pipekit.set_seed(42)
    dblock, path = datablock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unlabelled test/ folder belongs to no split; it is reported, not used
        dblock.summary(path)
        dls = dblock.dataloaders(path, bs=64, seed=42)
    print(dls)
    out = Path(os.environ.get("PIPEKIT_PLOTS", "out/plots"))
    print("batch drawn to", dls.show_batch(max_n=9, path=out / "demo_batch.png"))

    learn = vision_learner(dls, "simple_cnn", metrics=accuracy, lr=1e-2)
    learn.fit_one_cycle(4, 1e-2)
    loss, acc = learn.validate()

    unlabelled = sorted((path / "test").glob("*.png"))[0]
    label, idx, probs = learn.predict(unlabelled)
    with tempfile.TemporaryDirectory() as tmp:
        learn.export(Path(tmp) / "mnist_tiny.pipekit")
        loaded = pipekit.load_learner(Path(tmp) / "mnist_tiny.pipekit")
        label2, _, probs2 = loaded.predict(unlabelled)
    same = label2 == label and bool((probs2 - probs).abs().max() < 1e-6)
    print(f"{unlabelled.name}: predicted {label} (p={float(probs[idx]):.3f}); after export/load: {label2}")
    print(f"result: mnist_tiny 3-vs-7 simple_cnn accuracy={acc:.4f} valid_loss={loss:.4f} "
          f"export_roundtrip={'identical' if same else 'DIFFERENT'} time={time.perf_counter() - t0:.1f}s")
    if not same:
        raise SystemExit("the exported model predicts differently from the trained one")


if __name__ == "__main__":
    main()
