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

    pipekit run coco_tiny [--multilabel]
    pipekit run coco_tiny --scratch       # the same network from random weights
    pipekit run coco_tiny --folds 5       # k-fold cross-validation over all 200 photos
    pipekit run coco_tiny --probe         # a linear probe: logistic regression on the frozen features
    pipekit run coco_tiny --box-probe     # a probe of the feature map's cells, labelled by the boxes
    pipekit run coco_tiny --quick         # a few batches, for tests

Forty validation photos make a noisy figure: one photo is 2.5 points. ``--folds k`` trains the recipe k times,
each time validating on another k-th of the photos, and reports the accuracy and the no-skill baseline over
all of them.

``--probe`` trains nothing in the network: the photos go once through the pretrained body
(``learn.model.body``, centre crops, no augmentation), and a logistic regression with strong L2 regularisation
learns the classes from the pooled features, in seconds.

``--box-probe`` uses what the annotations say beyond the largest object's name: where every object is. The
photos are resized to 320 px without cropping (so the boxes map onto the body's 10x10 feature map), each
cell of the training photos (and of their mirror images) is labelled by the largest box over its centre, or
"background", and a logistic regression learns a category from a cell's 1,280 features: 32,000 labelled
cells instead of 160 labelled photos. A validation photo's largest object is the category with the largest
expected area: its probability summed over the photo's cells.

Measured with 5 stratified folds over the 200 photos (2 threads): fine-tuning 0.455 (565 s), the linear probe
0.520 (26 s), the box probe 0.560 (122 s; per fold 0.600 0.600 0.500 0.525 0.575, each above its fold's
baseline of 0.450-0.475), against a no-skill baseline of 0.470. With Lite2 at 256 px or Lite1 at 320 px the
box probe gives 0.53-0.55, at 448 px 0.51-0.53. On the recipe's own split fine-tuning gives 0.55 and the
probe 0.50 (baseline 0.475): with 160 training photos of 128 px the largest object is barely learnable from
these features, and a single 40-photo split cannot tell the methods apart. Other probes over the same 5 folds
(Lite0/1/2 at 224 to 448 px, flipped copies, a 2x2 grid of pooled features, earlier stages, the ImageNet
logits, a ridge regression of each class's box area from the annotations) all scored 0.45 to 0.56. In many
photos the largest annotated object is hardly visible: a plate of pasta or a bed labelled ``book``, a tray of
food labelled ``chair``.
"""
from __future__ import annotations

import json
import time

import numpy as np
import polars as pl
import torch

import pipekit.datasets as D
from pipekit.cli import number_option, positive_int, positive_number, recipe_parser
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Is
from pipekit.data import (CategoryBlock, ColReader, DataBlock, IndexSplitter, MultiCategoryBlock, RandomSplitter,
                          set_seed)
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


def photos(quick: bool = False) -> pl.DataFrame:
    """The table the recipe reads: every image, or the first 48 in quick mode."""
    return items().head(48) if quick else items()


def datablock(quick: bool = False, multilabel: bool = False, size: int = 320, splitter=None):
    """The recipe's DataBlock and the table of images it reads (``pipekit summary coco_tiny`` walks them).
    ``splitter``: the validation photos (default a seeded random 20%).

    No Normalize: ``vision_learner`` adds the statistics its pretrained weights were trained with."""
    df = photos(quick)
    y_block = MultiCategoryBlock(label_delim=" ") if multilabel else CategoryBlock
    dblock = DataBlock(blocks=(ImageBlock, y_block), get_x=ColReader("path"),
                       get_y=ColReader("labels" if multilabel else "largest"),
                       splitter=splitter or RandomSplitter(0.2, seed=42), item_tfms=[Resize(int(size * 1.25))],
                       batch_tfms=aug_transforms(size=size, min_scale=0.75))
    return dblock, df


def train(quick: bool, multilabel: bool, epochs: int, arch: str, pretrained: bool, size: int, lr: float,
          splitter=None) -> tuple:
    """Train on one split; returns (valid loss, accuracy, no-skill baseline, validation photos, vocab)."""
    set_seed(42)
    dblock, df = datablock(quick, multilabel, size, splitter)
    dls = dblock.dataloaders(df, bs=32, seed=42)
    metric = accuracy_multi(thresh=0.5) if multilabel else accuracy
    learn = vision_learner(dls, arch, pretrained=pretrained, metrics=metric, lin_ftrs=[], wd=0.1,
                           train_bn=not pretrained, cbs=BnFreeze(body=True) if pretrained else None)
    if pretrained:
        learn.fine_tune(epochs, base_lr=lr, freeze_epochs=epochs, unfreeze_to=1)
    else:
        learn.fit_one_cycle(2 * epochs, lr)
    loss, acc = learn.validate()
    # what a model that learned nothing would score: always the most frequent class, or for each
    # label its more frequent answer (present/absent)
    if multilabel:
        lists = df[dls.valid.dataset.idxs]["labels"].str.split(" ")
        freqs = [lists.list.contains(v).mean() for v in dls.vocab]
        baseline = sum(max(f, 1 - f) for f in freqs) / len(freqs)
    else:
        baseline = no_skill(df[dls.train.dataset.idxs]["largest"].to_numpy(),
                            df[dls.valid.dataset.idxs]["largest"].to_numpy())
    return loss, acc, baseline, len(dls.valid.dataset.idxs), dls.vocab


def no_skill(train_labels: np.ndarray, valid_labels: np.ndarray) -> float:
    """The accuracy of always answering the most frequent training label."""
    values, counts = np.unique(train_labels, return_counts=True)
    return float((valid_labels == values[counts.argmax()]).mean())


def body_maps(df: pl.DataFrame, arch: str, size: int, method: str = "crop", flips: bool = False) -> np.ndarray:
    """The pretrained body's last feature maps (N, [2,] C, G, G) of every photo of ``df`` in its row order:
    ``size`` px (``Resize(size, method)``), the weights' ImageNet statistics; with ``flips`` each photo and its
    mirror image."""
    set_seed(42)
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("path"), get_y=ColReader("largest"),
                       splitter=RandomSplitter(0.2, seed=42), item_tfms=[Resize(size, method=method)])
    dls = dblock.dataloaders(df, bs=32, seed=42)
    learn = vision_learner(dls, arch, pretrained=True)  # adds the weights' normalisation to the batches
    body = learn.model.body.eval()  # type: ignore[union-attr]  # the features the head pools
    maps, rows = [], []
    with torch.inference_mode():
        for dl in (learn.dls.train.new(shuffle=False, drop_last=False, augment=False), learn.dls.valid):
            for xb, _ in dl:
                f = body(xb).float()
                maps.append(torch.stack([f, body(xb.flip(3)).float()], 1) if flips else f)
            rows.append(np.asarray(dl.dataset.idxs))
    out = torch.cat(maps).numpy()
    out[np.concatenate(rows)] = out.copy()
    return out


def probe_features(df: pl.DataFrame, arch: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features of every photo of ``df`` (average and max over the pretrained body's last feature map,
    centre crops of ``size`` px, ImageNet statistics), in its row order, and the largest object of each."""
    f = body_maps(df, arch, size)
    return np.concatenate([f.mean((2, 3)), f.max((2, 3))], 1), df["largest"].to_numpy()


def cell_labels(df: pl.DataFrame, grid: int) -> np.ndarray:
    """(N, 2, grid, grid) labels of the feature map's cells for each photo and its mirror image: the category
    of the largest box (of the COCO annotations) over the cell's centre, or "background"."""
    from PIL import Image

    path = D.path("coco_tiny")
    meta = json.loads((path / "train.json").read_text())
    names = {c["id"]: c["name"] for c in meta["categories"]}
    by_file = {str(path / "train" / im["file_name"]): im["id"] for im in meta["images"]}
    boxes: dict[int, list] = {}
    for a in meta["annotations"]:
        boxes.setdefault(a["image_id"], []).append((a["bbox"], names[a["category_id"]]))
    out = np.full((len(df), 2, grid, grid), "background", dtype=object)
    centres = (np.arange(grid) + 0.5) / grid
    for n, p in enumerate(df["path"].to_list()):
        with Image.open(p) as im:
            w, h = im.size
        # the largest box last, so it wins where boxes overlap
        for (x0, y0, bw, bh), label in sorted(boxes[by_file[p]], key=lambda b: b[0][2] * b[0][3]):
            rows = (centres * h >= y0) & (centres * h <= y0 + bh)
            for flip in (0, 1):
                xs = centres * w if not flip else w - centres * w
                cols = (xs >= x0) & (xs <= x0 + bw)
                out[n, flip][np.ix_(rows, cols)] = label
    return out


def fit_box_probe(maps: np.ndarray, cells: np.ndarray, labels: np.ndarray, valid: np.ndarray,
              c: float = 0.001) -> tuple[float, float, float]:
    """A logistic regression on the standardised feature vectors of the training photos' cells (and of their
    mirror images), each labelled by the box over it; a validation photo's largest object is the category
    with the largest expected area (the sum of its probability over the cells of the photo and its mirror
    image). (log loss of those area shares, accuracy, no-skill baseline) on the ``valid`` rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    is_valid = np.zeros(len(labels), dtype=bool)
    is_valid[valid] = True
    dim = maps.shape[2]

    def vectors(rows: np.ndarray) -> np.ndarray:  # one row per cell: (photo, flip, y, x) x channels
        return maps[rows].transpose(0, 1, 3, 4, 2).reshape(-1, dim)

    scale = StandardScaler().fit(vectors(~is_valid))
    model = LogisticRegression(C=c, max_iter=5000).fit(scale.transform(vectors(~is_valid)), cells[~is_valid].reshape(-1))
    kinds = [k for k in model.classes_ if k != "background"]
    cols = [list(model.classes_).index(k) for k in kinds]
    proba = model.predict_proba(scale.transform(vectors(is_valid))).reshape(int(is_valid.sum()), -1, len(model.classes_))
    area = proba[:, :, cols].sum(1)
    predicted = np.asarray(kinds)[area.argmax(1)]
    acc = float((predicted == labels[is_valid]).mean())
    baseline = no_skill(labels[~is_valid], labels[is_valid])
    # area shares over every category (one no training cell showed gets none: the loss sees that miss)
    every = sorted(set(kinds) | set(labels.tolist()))
    share = np.full((len(area), len(every)), 1e-6)
    share[:, [every.index(k) for k in kinds]] += area
    share /= share.sum(1, keepdims=True)
    return float(log_loss(labels[is_valid], share, labels=every)), acc, baseline


def probe(feats: np.ndarray, labels: np.ndarray, valid: np.ndarray, c: float = 0.003) -> tuple[float, float, float]:
    """A logistic regression on the training rows' standardised features; (log loss, accuracy, no-skill
    baseline) on the ``valid`` rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    is_valid = np.zeros(len(labels), dtype=bool)
    is_valid[valid] = True
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(feats[~is_valid], labels[~is_valid])
    proba = model.predict_proba(feats[is_valid])
    acc = float((model.classes_[proba.argmax(1)] == labels[is_valid]).mean())
    baseline = no_skill(labels[~is_valid], labels[is_valid])
    return float(log_loss(labels[is_valid], proba, labels=model.classes_)), acc, baseline


#: the folds to cross-validate over: none (the recipe's one split) or two and more
FOLDS = Is(lambda k: type(k) is int and (k == 0 or k >= 2), "0 (the recipe's one split) or k >= 2 folds")


def main(quick: bool = False, multilabel: bool = False, epochs: int | None = None, arch: str = "efficientnet_lite2",
         pretrained: bool = True, size: int | None = None, lr: float = 3e-3, folds: int = 0,
         linear_probe: bool = False, box_probe: bool = False) -> dict:
    t0 = time.perf_counter()
    size = size or (64 if quick else 320)  # the photos are 128x128; Lite2's weights saw 260-px images
    epochs = epochs if epochs is not None else 1 if quick else 4
    task = "multi-label" if multilabel else "largest-object"
    how = "pretrained" if pretrained else "scratch"
    if not FOLDS.accepts(folds):
        raise ParameterError(f"folds={folds}: give k >= 2 to cross-validate, or 0 for the recipe's single split")
    if (linear_probe or box_probe) and (multilabel or not pretrained):
        raise ParameterError("linear_probe and box_probe need the pretrained weights and the single-label task")
    table = photos(quick)
    if box_probe:  # the feature maps once, squished so the boxes map onto their cells
        how = "pretrained, box probe"
        maps = body_maps(table, arch, size, method="squish", flips=True)
        cells, labels = cell_labels(table, maps.shape[-1]), table["largest"].to_numpy()

        def run(splitter=None) -> tuple:
            valid = np.asarray((splitter or RandomSplitter(0.2, seed=42))(table)[1])
            loss, acc, baseline = fit_box_probe(maps, cells, labels, valid)
            return loss, acc, baseline, len(valid), sorted(set(labels.tolist()))
    elif linear_probe:  # the features once; each split then fits only the logistic regression
        how = "pretrained, linear probe"
        feats, labels = probe_features(table, arch, size)

        def run(splitter=None) -> tuple:
            valid = np.asarray((splitter or RandomSplitter(0.2, seed=42))(table)[1])
            loss, acc, baseline = probe(feats, labels, valid)
            return loss, acc, baseline, len(valid), sorted(set(labels.tolist()))
    else:
        def run(splitter=None) -> tuple:
            return train(quick, multilabel, epochs, arch, pretrained, size, lr, splitter)
    if folds == 0:
        loss, acc, baseline, _, vocab = run()
        elapsed = time.perf_counter() - t0
        print(f"result: coco_tiny {task} {arch} ({how}) {size}px valid_loss={loss:.4f} accuracy={acc:.4f} "
              f"(no-skill baseline {baseline:.3f}, vocab {vocab}) time={elapsed:.1f}s")
        return {"accuracy": acc, "valid_loss": loss, "time_s": elapsed}
    # k-fold: every photo is validated once, by a model that never saw it; figures are means over photos.
    # Folds are stratified by the largest object (shuffled, grouped by it, dealt round-robin), so every class
    # with at least two photos is in every fold's training set.
    largest = table["largest"].to_numpy()
    n = len(largest)
    order = np.random.default_rng(42).permutation(n)
    order = order[np.argsort(largest[order], kind="stable")]
    parts = [np.sort(order[k::folds]) for k in range(folds)]
    per_fold = [run(IndexSplitter(p.tolist())) for p in parts]
    sizes = [f[3] for f in per_fold]
    acc, loss, baseline = (float(np.average([f[i] for f in per_fold], weights=sizes)) for i in (1, 0, 2))
    elapsed = time.perf_counter() - t0
    print(f"result: coco_tiny {task} {arch} ({how}) {size}px {folds}-fold valid_loss={loss:.4f} accuracy={acc:.4f} "
          f"(no-skill baseline {baseline:.3f}; per fold accuracy {' '.join(f'{f[1]:.3f}' for f in per_fold)}, "
          f"baseline {' '.join(f'{f[2]:.3f}' for f in per_fold)}; valid photos {'+'.join(map(str, sizes))} of {n}) "
          f"time={elapsed:.1f}s")
    return {"accuracy": acc, "valid_loss": loss, "baseline": baseline, "time_s": elapsed,
            "folds": [{"accuracy": f[1], "valid_loss": f[0], "baseline": f[2], "valid": f[3]} for f in per_fold]}


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="48 photos, 64 px and 1 epoch, for tests (--size and --epochs, "
                                                         "when given, still apply)")
    ap.add_argument("--multilabel", action="store_true")
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help="epochs frozen, then as many unfrozen (pretrained; from scratch, twice as many) (default 4; "
                         "1 with --quick)")
    ap.add_argument("--arch", default="efficientnet_lite2",
                    help="efficientnet_lite0/1/2, xresnet18/34/50 or simple_cnn (the last four with --scratch)")
    ap.add_argument("--scratch", action="store_true", help="random weights instead of ImageNet's")
    ap.add_argument("--size", type=positive_int, default=None, help="training image size (default 320; 64 with --quick)")
    ap.add_argument("--lr", type=positive_number, default=3e-3)
    ap.add_argument("--folds", type=number_option(FOLDS, integer=True), default=0,
                    help="cross-validate over k folds of all the photos (k >= 2; 0, the default: one split)")
    ap.add_argument("--probe", action="store_true", help="a linear probe on the frozen pretrained features")
    ap.add_argument("--box-probe", action="store_true",
                    help="a probe of the feature map's cells, each labelled by the annotated box over it")
    ap.add_argument("--threads", type=positive_int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick, a.multilabel, a.epochs, a.arch, not a.scratch, a.size, a.lr, a.folds, a.probe, a.box_probe)
