"""pipekit demo: the book's first model -- fine-tune an ImageNet-pretrained network to tell cats from dogs.

On a CPU-sized share of the real dogscats photos (300 to train, 200 to validate): declare the data with
labels from the file names, look at a batch, ask the pretrained network what it sees before any training
(its own ImageNet classes), fine-tune it, predict one photo, then export the model and load it back
without the training data (and without the weights package).

    make demo            # or: pipekit run demo
    pipekit run demo --quick    # 20 train / 10 valid photos, one short epoch each phase (a quick check)
"""
from __future__ import annotations

import argparse
import tempfile
from functools import partial
import time
from pathlib import Path

from pipekit.cli import recipe_parser
import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files
from pipekit.data.plotting import plot_dir
from pipekit.learn import error_rate
from pipekit.vision import ImageBlock, Resize, aug_transforms, imagenet_predict, vision_learner

# photos per class; training size in pixels: the weights' own 224 px (at 128 or 160 px their features tell
# cats from dogs markedly worse, and more photos do not make up for it)
N_TRAIN, N_VALID, SIZE = 150, 100, 224
#: photos per class and training size with ``--quick``: a run of seconds that still exports and loads back
QUICK_TRAIN, QUICK_VALID, QUICK_SIZE = 10, 5, 128


def is_cat(path: str | Path) -> bool:
    """The book's label function, for the dogscats names (cat.N.jpg / dog.N.jpg)."""
    return Path(path).name.startswith("cat")


def some_photos(path: Path, n_train: int = N_TRAIN, n_valid: int = N_VALID) -> list[Path]:
    """The first photos of each class in train/ and valid/ (only these are decoded)."""
    return [f for split, n in (("train", n_train), ("valid", n_valid)) for kind in ("cats", "dogs")
            for f in get_image_files(path / split / kind)[:n]]


def datablock(quick: bool = False):
    """The demo's DataBlock and the folder it reads (``pipekit summary demo`` walks them); ``quick``: a few
    photos at a smaller size.

    No Normalize: ``vision_learner`` adds the statistics its pretrained weights were trained with."""
    size = QUICK_SIZE if quick else SIZE
    photos = partial(some_photos, n_train=QUICK_TRAIN, n_valid=QUICK_VALID) if quick else some_photos
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=photos,
                       get_y=is_cat, splitter=GrandparentSplitter(), item_tfms=[Resize(int(size * 1.25))],
                       batch_tfms=aug_transforms(size=size, min_scale=0.75))
    return dblock, D.path("dogscats")


def batch_figure() -> Path:
    """Where the demo draws its batch: ``demo_batch.png`` in the folder every pipekit figure goes to,
    ``$PIPEKIT_PLOTS`` or else ``./pipekit_plots`` (``make demo`` sets it to ``out/plots``)."""
    return plot_dir() / "demo_batch.png"


def main(quick: bool = False) -> None:
    """The demo; ``quick``: a few photos at a smaller size, for a check in seconds (its accuracy means little)."""
    t0 = time.perf_counter()
    pipekit.set_seed(42)
    n_train, n_valid, size = (QUICK_TRAIN, QUICK_VALID, QUICK_SIZE) if quick else (N_TRAIN, N_VALID, SIZE)
    dblock, path = datablock(quick)
    dls = dblock.dataloaders(path, bs=32, seed=42)
    print(dls)
    print("batch drawn to", dls.show_batch(max_n=9, path=batch_figure()))

    photo = sorted((path / "valid" / "cats").glob("*.jpg"))[N_VALID]  # a photo the model never sees
    labels, probs = imagenet_predict("efficientnet_lite0", [photo])
    print(f"before training, the ImageNet weights see in {photo.name}: {labels[0]} (p={probs[0]:.2f})")

    learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, metrics=error_rate)
    learn.fine_tune(1)
    loss, err = learn.validate()

    label, idx, p = learn.predict(photo)
    print(f"is_cat({photo.name}) = {label} (p={float(p[idx]):.3f})")
    with tempfile.TemporaryDirectory() as tmp:
        learn.export(Path(tmp) / "dogscats.pipekit")
        loaded = pipekit.load_learner(Path(tmp) / "dogscats.pipekit")
        label2, _, p2 = loaded.predict(photo)
    # loaded onto the CPU (load_learner's default): on a GPU the trained model's convolutions round differently
    tol = 1e-6 if learn.device.type == "cpu" else 1e-3
    diff = float((p2 - p).abs().max())
    same = label2 == label and diff < tol
    roundtrip = ("identical" if diff < 1e-6 else f"same_to_{diff:.0e}_on_the_cpu") if same else "DIFFERENT"
    print(f"result: dogscats is_cat efficientnet_lite0 fine_tune {size}px ({2 * n_train} train / {2 * n_valid} "
          f"valid photos) accuracy={1 - err:.4f} error_rate={err:.4f} valid_loss={loss:.4f} "
          f"predict({photo.name})={label} export_roundtrip={roundtrip} "
          f"time={time.perf_counter() - t0:.1f}s")
    if not same:
        raise SystemExit("the exported model predicts differently from the trained one")


if __name__ == "__main__":
    p = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few photos at a smaller size (for a quick check)")
    main(quick=p.parse_args().quick)
