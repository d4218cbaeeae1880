"""Transfer learning, shown honestly: which starting weights help on 96 labelled mnist_tiny digits?

Three runs on the same 96 training digits, scored on the whole validation set:

- an XResNet from random weights (28 px);
- the same XResNet starting from pipekit's own checkpoint, pretrained here on Fashion-MNIST and saved with
  ``learn.save`` (``pretrained=<that file>``; frozen for one epoch, then unfrozen with discriminative rates);
- an EfficientNet-Lite0 starting from its ImageNet weights (``pretrained=True``, 64 px, the same
  ``fine_tune``), its body keeping ImageNet's batch-norm statistics (``BnFreeze(body=True)``,
  ``train_bn=False``). With 3 batches per epoch the statistics cannot follow the digits anyway: left to
  follow them at ImageNet's momentum, they stay between the two and the network scores 0.58; kept as they
  are, the head and the body's weights learn on the features the body gives at inference: 0.99.

All three accuracies are printed, whatever they are.

    pipekit run transfer
    pipekit run transfer --quick       # 128 pretraining images, 1 epoch per run, 128 validation digits, for tests
"""
from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from pipekit.cli import number_option, positive_int, recipe_parser
import pipekit.datasets as D
from pipekit.core.validate import Interval
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label, set_seed
from pipekit.learn import BnFreeze, accuracy
from pipekit.vision import (Normalize, Resize, aug_transforms, dataloaders_from_arrays, mnist_stats, require_weights,
                            vision_learner)
from pipekit.vision.blocks import ImageBlock


def fashion_dls(n_train: int, n_valid: int):
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz"), D.read_idx(p / "train-labels-idx1-ubyte.gz")
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz"), D.read_idx(p / "t10k-labels-idx1-ubyte.gz")
    keep = np.random.default_rng(0).permutation(len(xt))[:n_train]
    return dataloaders_from_arrays(xt[keep], yt[keep], xv[:n_valid], yv[:n_valid], vocab=[str(i) for i in range(10)],
                                   bs=64, seed=0, batch_tfms=[Normalize.from_stats(*mnist_stats)])


def datablock(size: int | None = None, normalize: bool = True):
    """The fine-tuning data's DataBlock and folder (``pipekit summary transfer`` walks them): the digits at
    ``size`` px (None: 28); ``normalize=False`` leaves the normalisation to the learner."""
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(size)] if size else None,
                       batch_tfms=aug_transforms(do_flip=False, max_warp=0.0)
                       + ([Normalize.from_stats(*mnist_stats)] if normalize else []))
    return dblock, D.path("mnist_tiny")


def mnist_dls(quick: bool, size: int | None = None, normalize: bool = True):
    """The 96 training digits (and the validation set, 128 of it when ``quick``)."""
    dblock, path = datablock(size, normalize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unlabelled test/ folder is left out of the split, as intended
        dls = dblock.dataloaders(path, bs=32, seed=7)
    # a small training set is where pretraining matters: keep 96 labelled digits
    rng = np.random.default_rng(0)
    for i, n in enumerate((96, 128 if quick else 10_000)):
        ds = dls.loaders[i].dataset
        dls.loaders[i] = dls.loaders[i].new(dataset=ds.subset(np.sort(rng.permutation(len(ds))[:n])))
    return dls


#: what --quick sets of the options not given: (value without --quick, value with it)
QUICK = {"n_pretrain": (4000, 128), "epochs": (4, 1)}


def main(quick: bool = False, n_pretrain: int | None = None, epochs: int | None = None, arch: str = "xresnet18",
         imagenet_arch: str = "efficientnet_lite0", imagenet_size: int = 64) -> dict:
    """The three runs; ``n_pretrain`` and ``epochs`` left None are 4000 and 4, or with ``quick`` 128 and 1 (which
    also pretrains 1 epoch, not 2, and scores 128 images at each step; an option given wins)."""
    given = {"n_pretrain": n_pretrain, "epochs": epochs}
    n_pretrain, epochs = (v if v is not None else QUICK[k][1 if quick else 0] for k, v in given.items())
    require_weights(imagenet_arch)  # the last arm needs them: say so before the first trains
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        set_seed(0)
        pre = vision_learner(fashion_dls(n_pretrain, 128 if quick else 2000), arch,
                             metrics=accuracy, path=tmp)
        pre.fit_one_cycle(1 if quick else 2, 3e-3)
        _, pre_acc = pre.validate()
        weights = pre.save(f"fashion_{arch}", with_opt=False)
        print(f"pretrained on Fashion-MNIST: accuracy {pre_acc:.4f}, saved to {Path(weights).name}")

        n_ep = epochs
        set_seed(1)
        scratch = vision_learner(mnist_dls(quick), arch, metrics=accuracy, path=tmp)
        scratch.fit_one_cycle(n_ep + 1, 3e-3)
        _, acc_scratch = scratch.validate()

        set_seed(1)
        tuned = vision_learner(mnist_dls(quick), arch, metrics=accuracy, pretrained=weights, path=tmp)
        tuned.fine_tune(n_ep, base_lr=3e-3, freeze_epochs=1)
        _, acc_tuned = tuned.validate()

        set_seed(1)
        imagenet = vision_learner(mnist_dls(quick, imagenet_size, normalize=False), imagenet_arch, metrics=accuracy,
                                  pretrained=True, path=tmp, train_bn=False, cbs=BnFreeze(body=True))
        imagenet.fine_tune(n_ep, base_lr=3e-3, freeze_epochs=1)
        _, acc_imagenet = imagenet.validate()
    elapsed = time.perf_counter() - t0
    print(f"result: transfer to mnist_tiny (96 train digits, {n_ep} epochs after the frozen one) accuracy: "
          f"{arch} scratch={acc_scratch:.4f} {arch} from fashion_mnist checkpoint fine_tuned={acc_tuned:.4f} (its "
          f"pretrain accuracy {pre_acc:.4f} on {n_pretrain} images) "
          f"{imagenet_arch} from imagenet {imagenet_size}px fine_tuned={acc_imagenet:.4f} time={elapsed:.1f}s")
    return {"scratch": acc_scratch, "fine_tuned": acc_tuned, "imagenet": acc_imagenet, "pretrain": pre_acc,
            "time_s": elapsed}


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="a short run for tests: --n-pretrain 128 --epochs 1 unless "
                                                         "given, 1 pretraining epoch and 128 images scored at each step")
    ap.add_argument("--n-pretrain", type=number_option(Interval(1, 60_000, integer=True,
                                                                why="Fashion-MNIST has 60,000 training images")),
                    default=None, help="Fashion-MNIST images to pretrain on (default 4000; 128 with --quick)")
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help="fine-tuning epochs after the frozen one (from scratch: one more) (default 4; 1 with --quick)")
    ap.add_argument("--arch", default="xresnet18", help="pretrained on Fashion-MNIST: xresnet18/34/50 or simple_cnn")
    ap.add_argument("--imagenet-arch", default="efficientnet_lite0", help="efficientnet_lite0, 1 or 2")
    ap.add_argument("--imagenet-size", type=positive_int, default=64, help="image size for the ImageNet-pretrained run")
    ap.add_argument("--threads", type=positive_int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick, a.n_pretrain, a.epochs, a.arch, a.imagenet_arch, a.imagenet_size)
