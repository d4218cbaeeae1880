"""book_spellings: the book's workflows written the way the book writes them, on the real data sets.

1. Chapter 8, a collaborative-filtering model from scratch on the MovieLens sample (``untar_data(URLs.ML_SAMPLE)``):
   ``class DotProductBias(Module)`` with no ``super().__init__()``, ``Embedding`` tables starting from N(0, 0.01)
   and ``sigmoid_range``, trained by a plain ``Learner`` with ``MSELossFlat``; scored as validation MSE against
   predicting the mean rating. Then the book's lookups: ``idx = dls.classes['movieId'].o2i[m]`` into the movie
   factors, the cosine similarity to every movie, and ``dls.classes['movieId'][idxs]`` of the closest others. The same
   model trained with torch's ``F.mse_loss`` learns alike (the ratings are ``(n, 1)``, as the model's outputs).
2. Chapter 9, adult with pandas habits: ``pd.read_csv``, ``TabularPandas(df, procs, cat, cont, y_names=dep_var,
   splits=splits)``, saved and loaded again as the book writes it (``save_pickle(path/'to.pkl', to)``,
   ``load_pickle``; data files, never a pickle), a frame of chosen columns the same way, ``to.procs.normalize.means``,
   ``to.show(3)``, the processed ``to.train.xs`` / ``to.train.y`` (pandas, 1-D)
   given to scikit-learn's random forest, then a ``tabular_learner`` net, and the book's ensemble of the two
   (``MeanEnsemble({"rf": ..., "net": TorchTabular.from_learner(learn)})``); accuracy of each.
3. Chapter 10, the tokenizer by hand on imdb_sample: ``tkn = Tokenizer(WordTokenizer())``, ``toks = tkn(txt)``,
   ``num.setup(toks200)``, ``nums = num(toks)[:20]``, and ``' '.join(num.vocab[o] for o in nums)``; ``first(toks)``;
   a classifier's ``dls.vocab`` from ``TextDataLoaders.from_df``: ``dls.vocab[0]`` the tokens, ``dls.vocab[1]`` the
   classes.
4. Chapter 11, ``TfmdLists(files, [parent_label, Categorize()], splits=GrandparentSplitter()(files))`` on
   mnist_tiny: the vocabulary, an item and its decoded label; chapter 6's ``vocab[torch.where(y == 1.)[0]]``.
   Chapter 9 (2. above) also reads the pipekit forest's trees as the book reads scikit-learn's: ``rf.estimators_``.
   Then chapter 11's ``dsets = dblock.datasets(files)`` and ``dsets.dataloaders(bs=64)``.
   Chapter 11's ``def f(x:int): return x+1; tfm = Transform(f); tfm(2), tfm(2.0)``, which gives ``(3, 2.0)``.
   Chapter 11's Siamese pairs: ``class SiameseImage(fastuple)``, the chapter's ``SiameseTransform`` written for one
   file, ``TfmdLists(files, tfm, splits=splits)`` and ``tls.dataloaders(after_item=[Resize(...), ToTensor],
   after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])``; chapter 6's ``DataBlock().datasets(df)``.
   The same TfmdLists over ``get_image_files(path)`` (test/ too, in no split: left out, said once); chapter 15's
   ``model_meta[resnet34]['cut']`` and ``@delegates``; chapter 17's own ``TerminateOnNaNCallback`` ending a fit at
   ``lr=1e4`` without an error.
5. Chapter 4 from scratch on mnist_tiny's 3s and 7s: the pixels as ``tensor(Image.open(o))``,
   ``dset = list(zip(train_x, train_y))``,
   ``DataLoaders(DataLoader(dset, batch_size=256), DataLoader(valid_dset, batch_size=256))``, and
   ``Learner(dls, nn.Linear(28*28, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy).fit(10, lr=1)``;
   the chapter's ``list(DataLoader(range(15), batch_size=5, shuffle=True))`` and
   ``DataLoader(list(enumerate(string.ascii_lowercase)), batch_size=6, shuffle=True)``; chapter 13's
   ``image2tensor(Image.open(path))`` under its ``top_edge`` kernel; ``array(im3)[4:10,4:10]`` and
   ``trainable_params(learn.model)``.
6. Chapter 2's augmentation on dogscats photos: ``item_tfms=RandomResizedCrop(64, min_scale=0.3)`` and
   ``batch_tfms=aug_transforms(mult=2)``, with a ``RandTransform`` of the reader's among the item transforms: each
   epoch draws other crops and flips, validation repeats, the same seed draws the same batches. Then chapter 2's
   ``ImageClassifierCleaner(learn)`` on a copy of some of its photos, and the book's two loops deleting and moving
   the files marked.

    pipekit run book_spellings            # full run
    pipekit run book_spellings --quick    # fewer rows and epochs, for tests
"""
from __future__ import annotations

import argparse
import random
import string
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipekit.cli import recipe_parser
import pipekit
import torch.nn.functional as F

from pipekit.basics import array, trainable_params

from pipekit.data import (URLs, Categorize, CategoryBlock, DataBlock, DataLoader, DataLoaders, GrandparentSplitter, L,
                          RandomSplitter, RandTransform, TfmdLists, Transform, fastuple, first, get_image_files,
                          parent_label, untar_data)
from pipekit.datasets import path
from pipekit.ensemble import MeanEnsemble, TorchTabular
from pipekit.learn import SGD, Embedding, Learner, Module, MSELossFlat, accuracy, one_hot, sigmoid_range, tensor
from pipekit.tabular import (Categorify, CollabDataLoaders, FillMissing, Normalize, TabularPandas, load_pickle,
                             save_pickle, tabular_learner)
from pipekit.text import Numericalize, TextDataLoaders, Tokenizer, WordTokenizer
from pipekit.vision import (ImageBlock, IntToFloatTensor, Normalize as ImageNormalize, PILImage, RandomResizedCrop,
                            Resize, ToTensor, aug_transforms, imagenet_stats)


class DotProductBias(Module):
    """The book's chapter 8 model: user and movie factors and biases, squashed into ``y_range``."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, y_range: tuple = (0, 5.5)):
        self.user_factors, self.user_bias = Embedding(n_users, n_factors), Embedding(n_users, 1)
        self.movie_factors, self.movie_bias = Embedding(n_movies, n_factors), Embedding(n_movies, 1)
        self.y_range = y_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, movies = self.user_factors(x[:, 0]), self.movie_factors(x[:, 1])
        res = (users * movies).sum(dim=1, keepdim=True) + self.user_bias(x[:, 0]) + self.movie_bias(x[:, 1])
        return sigmoid_range(res, *self.y_range)


def dataloaders(bs: int = 64):
    """Chapter 8's loaders: the MovieLens sample's ratings, (user, movie) codes and a rating per row."""
    return CollabDataLoaders.from_csv(untar_data(URLs.ML_SAMPLE) / "ratings.csv", bs=bs, seed=42)


def collab_from_scratch(epochs: int) -> dict:
    dls = dataloaders()
    tab = dls.tabular
    baseline = float(((tab.valid.y_array() - float(tab.train.y_array().mean())) ** 2).mean())
    pipekit.set_seed(42)
    learn = Learner(dls, DotProductBias(len(dls.classes["userId"]), len(dls.classes["movieId"]), 50),
                    loss_func=MSELossFlat())
    learn.fit_one_cycle(epochs, 5e-3, wd=0.1)
    # the book's lookups: a movie's row of the factors by its id, and the movies closest to it
    movie = int(tab.train.frame["movieId"].value_counts().sort("count")["movieId"][-1])  # the most rated (a code)
    m = dls.classes["movieId"][movie]
    idx = dls.classes["movieId"].o2i[int(m)]
    movie_factors = learn.model.movie_factors.weight
    distances = F.cosine_similarity(movie_factors, movie_factors[idx][None])
    # the closest other movies: the book's argsort(descending=True)[1] skips the movie itself, its own closest
    order = distances.argsort(descending=True)
    closest = dls.classes["movieId"][order[order != idx][:3]]
    # the chapter's start: a user's factors looked up by a matrix product with a one-hot vector
    user_factors = learn.model.user_factors.weight
    one_hot_3 = one_hot(3, len(dls.classes["userId"])).float()
    # the same model trained with torch's own loss: targets are (n, 1) like its outputs, so it learns alike
    again = dataloaders()
    pipekit.set_seed(42)
    torch_loss = Learner(again, DotProductBias(len(again.classes["userId"]), len(again.classes["movieId"]), 50),
                         loss_func=F.mse_loss)
    torch_loss.fit_one_cycle(epochs, 5e-3, wd=0.1)
    return {"mse": float(learn.validate()[0]), "mean_rating_mse": baseline, "movie": m, "idx": idx,
            "closest": closest, "code": movie, "mse_torch_loss": float(torch_loss.validate()[0]),
            "one_hot_lookup": bool(torch.allclose(user_factors.t() @ one_hot_3, user_factors[3]))}


def tabular_ensemble(rows: int, epochs: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier

    df = pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True).head(rows)
    n_train = int(len(df) * 0.8)
    procs, dep_var = [Categorify, FillMissing, Normalize], "salary"
    cat = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
    cont = ["age", "fnlwgt", "education-num"]
    splits = (list(range(n_train)), list(range(n_train, len(df))))
    to = TabularPandas(df, procs, cat, cont, y_names=dep_var, splits=splits)  # as chapter 9 writes it
    # the book's save_pickle(path/'to.pkl', to) and to = load_pickle(path/'to.pkl'), written as data files (no
    # pickle); then its xs_final, a frame of the columns kept, the same way
    with tempfile.TemporaryDirectory() as tmp:
        saved_xs = to.train.xs
        save_pickle(Path(tmp) / "to.pkl", to)
        to = load_pickle(Path(tmp) / "to.pkl")
        reloaded = bool(to.train.xs.equals(saved_xs) and to.train.xs.index.equals(saved_xs.index))
        xs_final = to.train.xs[["age", "education-num", "marital-status"]]
        save_pickle(Path(tmp) / "xs_final.pkl", xs_final)
        reloaded = reloaded and bool(load_pickle(Path(tmp) / "xs_final.pkl").equals(xs_final))
    # the procs, read back as fastai's pipeline of procs is: the means Normalize used
    means = to.procs.normalize.means
    to.show(3)  # the rows as read: categories as values, numbers in their own units
    shown = to.processor.decode(to.items.head(3), units=True)
    # a pandas table gives pandas back: the book's xs, y = to.train.xs, to.train.y as written
    xs, y, valid_xs, valid_y = to.train.xs, to.train.y, to.valid.xs, to.valid.y
    rf = RandomForestClassifier(100, min_samples_leaf=5, max_features=0.5, n_jobs=-1, random_state=0).fit(xs, y)
    rf_acc = float((rf.predict(valid_xs) == valid_y).mean())
    pipekit.set_seed(42)
    learn = tabular_learner(to.dataloaders(bs=256), layers=[200, 100], metrics=accuracy)
    learn.fit_one_cycle(epochs, 1e-2)
    net = TorchTabular.from_learner(learn)
    from pipekit.backends import RandomForest

    forest = RandomForest("classification", n_estimators=100, min_samples_leaf=5, n_jobs=-1).fit(to.train)
    ens = MeanEnsemble({"rf": forest, "net": net})
    mean = (forest.predict_proba(to.valid) + net.predict_proba(to.valid)) / 2
    same = bool(np.allclose(ens.predict_proba(to.valid), mean))
    # the wrapped net predicts what the learner does
    learner_probs = learn.get_preds()[0].numpy()
    # the book's spread over the trees, read from the pipekit forest as from scikit-learn's
    per_tree = np.stack([t.predict_proba(to.valid.xs.to_numpy()) for t in forest.estimators_])
    dls = to.dataloaders(bs=256)
    return {"rows": (len(to.train), len(to.valid)), "shown_age": shown["age"].to_list(), "cat_names": dls.cat_names,
            "reloaded": reloaded, "means": dict(means), "xs_kind": type(xs).__module__.split(".")[0],
            "trees_are_forest": bool(np.allclose(per_tree.mean(0), forest.predict_proba(to.valid), atol=1e-6)),
            "tree_std": float(per_tree[:, :, 1].std(0).mean()),"ensemble_is_mean": same, "net_is_learner": bool(np.allclose(net.predict_proba(to.valid), learner_probs,
                                                                          atol=1e-5)),
            "rf_sklearn": rf_acc, "net": float(net.score(to.valid)), "forest": float(forest.score(to.valid)),
            "ensemble": float(ens.score(to.valid))}


def tokenizer_by_hand() -> dict:
    txts = pd.read_csv(path("imdb_sample") / "texts.csv").text.tolist()
    tkn = Tokenizer(WordTokenizer())
    toks = tkn(txts[0])
    num = Numericalize()
    num.setup([tkn(t) for t in txts[:200]])
    nums = num(toks)[:20]
    # a classifier's dls.vocab: the text's tokens, then the classes (what text_classifier_learner reads)
    df = pd.read_csv(path("imdb_sample") / "texts.csv")
    dls = TextDataLoaders.from_df(pd.concat([df[~df.is_valid].head(150), df[df.is_valid].head(50)]), text_col="text",
                                  label_col="label", valid_col="is_valid", bs=16, seed=0)
    return {"tokens": len(toks), "vocab": len(num.vocab), "text": " ".join(num.vocab[o] for o in nums),
            "first": first(toks), "dls_vocab": (list(dls.vocab[0][:2]), list(dls.vocab[1]))}


def tfmdlists_of_files() -> dict:
    files = get_image_files(path("mnist_tiny"), folders=["train", "valid"])
    tls = TfmdLists(files, [parent_label, Categorize()], splits=GrandparentSplitter(valid_name="valid")(files))
    y = torch.tensor([0., 1.])  # a multi-hot target, as chapter 6 reads its labels
    dsets = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                      splitter=GrandparentSplitter(valid_name="valid")).datasets(files)
    xb, _ = dsets.dataloaders(bs=64, seed=0).one_batch()

    def f(x: int):
        return x + 1
    tfm = Transform(f)

    class Label(Transform):  # a subclass adding an encodes for another type keeps its parent's, as fastai's
        def encodes(self, x: str):
            return x.upper()

    class Folder(Label):
        def encodes(self, x: Path):
            return parent_label(x)
    return {"vocab": tls.vocab, "train": len(tls.train), "valid": len(tls.valid), "first": tls.decode(tls[0]),
            "first_folder": files[0].parent.name, "hot": tls.vocab[torch.where(y == 1.)[0]],
            "dsets_batch": tuple(xb.shape), "typed": (tfm(2), tfm(2.0)),
            "subclass": Folder()((files[0], "seven"))}


def chapters_11_15_17() -> dict:
    """Chapter 11's TfmdLists over every file of mnist_tiny (its unlabelled test/ folder in no split, left out with
    a warning), chapter 15's ``model_meta`` and ``@delegates``, and chapter 17's own ``TerminateOnNaNCallback``
    stopping a fit at lr=1e4 quietly."""
    import inspect
    import warnings

    from pipekit.data import delegates
    from pipekit.learn import Callback, CancelFitException, Recorder
    from pipekit.vision import ImageDataLoaders, model_meta, resnet34

    files = get_image_files(path("mnist_tiny"))  # the book's: every folder
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        tls = TfmdLists(files, [parent_label, Categorize()], splits=GrandparentSplitter(valid_name="valid")(files))

    @delegates(Learner.__init__)
    def make(dls, **kwargs):
        nn = torch.nn
        return Learner(dls, nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                          nn.Flatten(), nn.Linear(8, 2)), **kwargs)

    class TerminateOnNaNCallback(Callback):  # the book's chapter 17 callback
        run_before = Recorder

        def after_batch(self):
            if torch.isinf(self.loss) or torch.isnan(self.loss):
                self.stopped_at.append(self.iter)
                raise CancelFitException

    nan_cb = TerminateOnNaNCallback()
    nan_cb.stopped_at = []
    dls = ImageDataLoaders.from_folder(path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    pipekit.set_seed(0)
    make(dls, cbs=nan_cb).fit(1, 1e4)
    return {"items": (len(tls), len(tls.train), len(tls.valid)), "left_out": len(said),
            "cut": model_meta[resnet34]["cut"], "delegated": "metrics" in inspect.signature(make).parameters,
            "nan_stop": nan_cb.stopped_at}


class SiameseImage(fastuple):
    """Chapter 11's pair of images and whether they show the same class."""


class _SiameseTransform(Transform):
    """Chapter 11's ``SiameseTransform``, written for one file as the book writes it: the file, a second one of the
    same class or another (drawn from Python's ``random``; fixed for the validation files), and whether they match.
    (Its name starts with ``_``: a reader's class, which pipekit does not register as one of its own.)"""

    def __init__(self, files, label_func, splits):  # noqa: ANN001  (the book's)
        self.labels = files.map(label_func).unique()
        self.lbl2files = {lbl: L(f for f in files if label_func(f) == lbl) for lbl in self.labels}
        self.label_func = label_func
        self.valid = {f: self._draw(f) for f in files[splits[1]]}

    def encodes(self, f):  # noqa: ANN001, ANN201
        f2, t = self.valid.get(f, self._draw(f))
        return SiameseImage(PILImage.create(f), PILImage.create(f2), t)

    def _draw(self, f):  # noqa: ANN001, ANN202
        same = random.random() < 0.5
        cls = self.label_func(f)
        if not same:
            cls = random.choice(L(lbl for lbl in self.labels if lbl != cls))
        return random.choice(self.lbl2files[cls]), same


def siamese_pairs() -> dict:
    """Chapter 11's Siamese pairs through the mid-level API, and chapter 6's first look at a table's rows."""
    files = L(sorted(get_image_files(path("mnist_tiny"), folders=["train", "valid"])))[::4]
    splits = GrandparentSplitter()(files)
    random.seed(0)
    tls = TfmdLists(files, _SiameseTransform(files, parent_label, splits), splits=splits)
    dls = tls.dataloaders(bs=16, after_item=[Resize(32), ToTensor],
                          after_batch=[IntToFloatTensor, ImageNormalize.from_stats(*imagenet_stats)], seed=0, device="cpu")
    x1, x2, same = dls.valid.one_batch()
    df = pd.DataFrame({"fname": [f.name for f in files], "label": [f.parent.name for f in files]})
    dsets = DataBlock().datasets(df, seed=0)
    x, y = dsets.train[0]  # chapter 6: each item is its row, twice
    first_row = int(dsets.splits[0][0])
    return {"batch": (tuple(x1.shape), tuple(x2.shape), tuple(same.shape)), "same": int(same.sum()),
            "row": x == y and (x["fname"], x.label) == (df.fname[first_row], df.label[first_row])}


def mnist_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    return ((xb.sigmoid() > 0.5) == yb).float().mean()


def linear_from_scratch(epochs: int) -> dict:
    from PIL import Image

    def stack(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for label, digit in ((1, "3"), (0, "7")):
            for f in sorted((path("mnist_tiny") / split / digit).glob("*.png")):
                xs.append(tensor(Image.open(f)).float().view(-1) / 255)
                ys.append(label)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.float32).unsqueeze(1)

    (train_x, train_y), (valid_x, valid_y) = stack("train"), stack("valid")
    dset, valid_dset = list(zip(train_x, train_y)), list(zip(valid_x, valid_y))
    dls = DataLoaders(DataLoader(dset, batch_size=256, shuffle=True, seed=0), DataLoader(valid_dset, batch_size=256))
    pipekit.set_seed(0)
    learn = Learner(dls, torch.nn.Linear(28 * 28, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(epochs, lr=1)
    from pipekit.vision import image2tensor, verify_images  # chapter 13's photo pixels; chapter 2's check

    accuracies = L(learn.recorder.values).itemgot(2)  # chapter 4's plot of the accuracy per epoch
    im3 = Image.open(sorted((path("mnist_tiny") / "train" / "3").glob("*.png"))[0])
    corner = array(im3)[4:10, 4:10]  # chapter 4's first look at the pixels
    trainable = len(trainable_params(learn.model))
    threes = (path("mnist_tiny") / "train" / "3").ls().sorted()  # chapter 4's list of the 3s
    failed = verify_images(threes)  # chapter 2's check before training: none of these is corrupt
    failed.map(Path.unlink)
    coll = list(DataLoader(range(15), batch_size=5, shuffle=True, seed=0))
    letters = first(DataLoader(list(enumerate(string.ascii_lowercase)), batch_size=6, shuffle=True, seed=0))

    im = image2tensor(Image.open(sorted((path("dogscats") / "valid" / "dogs").iterdir())[0]))
    top_edge = tensor([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]).float()
    edges = F.conv2d(im[:1].float()[None] / 255, top_edge[None, None])
    return {"accuracy": float(learn.recorder.values[-1][2]), "bs": dls.bs, "items": len(dset),
            "range_batches": [b.tolist() for b in coll], "letters": (letters[0].tolist(), letters[1]),
            "image": tuple(im.shape), "edges": tuple(edges.shape), "accuracies": accuracies, "threes": threes,
            "failed": len(failed), "corner": corner.shape, "trainable": trainable}


class _Mirror(RandTransform):
    """fastai's Albumentations-tutorial shape: a training-only augmentation written as an item transform."""

    def encodes(self, x: PILImage):  # noqa: ANN001, ANN201  (the tutorial's)
        return np.ascontiguousarray(x[:, ::-1])


def augmentation_ch2() -> dict:
    """Chapter 2's ``item_tfms=RandomResizedCrop(64, min_scale=0.3)`` and ``batch_tfms=aug_transforms(mult=2)`` on
    dogscats photos, with a ``RandTransform`` of the reader's among the item transforms: each epoch draws other
    crops and flips, validation is the squish then centre crop, and the same seed draws the same batches."""
    files = sorted(get_image_files(path("dogscats") / "valid"))[::25]

    def make(seed: int):
        return DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=parent_label, splitter=RandomSplitter(0.25, seed=0),
                         item_tfms=[_Mirror(p=0.5), RandomResizedCrop(64, min_scale=0.3)],
                         batch_tfms=aug_transforms(mult=2)).dataloaders(files, bs=16, seed=seed, device="cpu")

    dls = make(0)
    epoch0, epoch1 = (next(iter(dls.train))[0] for _ in range(2))
    again = next(iter(make(0).train))[0]
    valid = dls.valid.one_batch()[0]
    return {"batch": tuple(epoch0.shape), "epochs_differ": not torch.equal(epoch0, epoch1),
            "seeded": torch.equal(epoch0, again), "valid": tuple(valid.shape),
            "valid_repeats": torch.equal(valid, dls.valid.one_batch()[0])}


def cleaner_ch2() -> dict:
    """Chapter 2's data cleaning on a copy of 48 dogscats photos: ``cleaner = ImageClassifierCleaner(learn)``, the
    highest-loss validation cat marked for deletion and the next relabelled a dog (what the drop-downs do in a
    notebook), then the book's loops ``cleaner.fns[idx].unlink()`` and ``shutil.move(str(cleaner.fns[idx]),
    path/cat)``; the loaders built again from the folder see one cat fewer and one dog more."""
    import shutil

    from pipekit.vision import ImageDataLoaders, resnet18, vision_learner
    from pipekit.vision.widgets import ImageClassifierCleaner

    folder = Path(tempfile.mkdtemp()) / "dogscats"
    for split, n in (("train", 16), ("valid", 8)):
        for cat in ("cats", "dogs"):
            (folder / split / cat).mkdir(parents=True)
            for f in sorted(get_image_files(path("dogscats") / split / cat))[:n]:
                shutil.copy(f, folder / split / cat / f.name)
    dls = ImageDataLoaders.from_folder(folder, item_tfms=Resize(64), bs=16, seed=0, device="cpu")
    learn = vision_learner(dls, resnet18, pretrained=False)
    learn.fit(1)
    cleaner = ImageClassifierCleaner(learn)
    cleaner.select("cats", "Valid")
    losses = list(cleaner.losses)
    cleaner.mark(0, "<Delete>")
    cleaner.mark(1, "dogs")
    for idx in cleaner.delete():
        cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change():
        shutil.move(str(cleaner.fns[idx]), folder / "valid" / cat)
    after = ImageDataLoaders.from_folder(folder, item_tfms=Resize(64), bs=16, seed=0, device="cpu")
    labels = [Path(f).parent.name for f in after.valid.items]
    return {"shown": len(losses), "sorted": losses == sorted(losses, reverse=True),
            "valid_cats": labels.count("cats"), "valid_dogs": labels.count("dogs")}


def chapters_7_15_16_19() -> dict:
    """Chapter 16's callback adding a penalty in place to ``self.learn.loss`` under an RMSE loss, its ``Optimizer``
    of step functions with their own ``mom`` and ``set_hypers``; chapter 15's ``get_text_classifier(AWD_LSTM, ...)``;
    chapter 19's ``defaults.cpus``; chapter 7's ``fine_tune`` of a model trained from scratch (one parameter group:
    1 + n epochs, as fastai) and a final fit on every item (``valid_pct=0``: no validation scores)."""
    from functools import partial

    import torch.nn.functional as F
    from torch import nn

    from pipekit.basics import defaults
    from pipekit.data import CategoryBlock, DataBlock, RandomSplitter, get_image_files, parent_label
    from pipekit.learn import Callback, Learner, accuracy
    from pipekit.learn.optim import Optimizer, average_grad, momentum_step
    from pipekit.text.models import AWD_LSTM, awd_lstm_clas_config, get_text_classifier
    from pipekit.vision import ImageBlock

    pipekit.set_seed(0)
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=RandomSplitter(valid_pct=0, seed=0)).dataloaders(path("mnist_tiny") / "train", bs=64,
                                                                                seed=0)

    def rmse(pred, targ):  # noqa: ANN001, ANN202  (the book's)
        return torch.sqrt(F.mse_loss(pred.softmax(1)[:, 1], targ.float()))

    class Penalty(Callback):
        def after_loss(self):  # noqa: ANN202  (the book's spelling)
            self.learn.loss += 0.01 * sum(p.pow(2).sum() for p in self.learn.model.parameters())

    class Epochs(Callback):
        n = 0

        def before_epoch(self):  # noqa: ANN202
            Epochs.n += 1

    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2))
    learn = Learner(dls, model, loss_func=rmse, metrics=accuracy, cbs=[Penalty(), Epochs()])
    learn.fine_tune(1, 1e-2)  # one group: the frozen epoch runs too, as fastai's
    w = torch.nn.Parameter(torch.ones(3))
    opt = partial(Optimizer, cbs=[average_grad, momentum_step])([w], lr=0.1)
    mom = opt.hypers[0]["mom"]
    opt.set_hypers(mom=0.5)
    clf = get_text_classifier(AWD_LSTM, 100, 2, config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=1))
    return {"epochs": Epochs.n, "valid": learn.recorder.values[-1][1:], "train_loss": learn.recorder.values[-1][0],
            "mom": (mom, opt.hypers[0]["mom"]), "clf_out": tuple(clf.eval()(torch.randint(2, 100, (3, 20))).shape),
            "cpus": min(16, defaults.cpus)}


def main(quick: bool = False) -> dict:
    t0 = time.perf_counter()
    out = {"collab": collab_from_scratch(2 if quick else 5),
           "tabular": tabular_ensemble(6000 if quick else 32561, 1 if quick else 4),
           "tokens": tokenizer_by_hand(), "tfmdlists": tfmdlists_of_files(), "siamese": siamese_pairs(),
           "scratch": linear_from_scratch(5 if quick else 10), "augment": augmentation_ch2(),
           "cleaner": cleaner_ch2(), "ch11_15_17": chapters_11_15_17(), "ch7_16_19": chapters_7_15_16_19()}
    c, t, k, s = out["collab"], out["tabular"], out["tokens"], out["tfmdlists"]
    print(f"result: book_spellings{' quick' if quick else ''} ch8_mse={c['mse']:.4f} "
          f"(mean rating {c['mean_rating_mse']:.4f}) ch8_closest_to_{c['movie']}={'/'.join(c['closest'])} ch9_rf={t['rf_sklearn']:.4f} ch9_net={t['net']:.4f} "
          f"ch9_rows={t['rows'][0]}+{t['rows'][1]} ch9_xs={t['xs_kind']} ch9_reloaded={'identical' if t['reloaded'] else 'DIFFERENT'} ch9_forest={t['forest']:.4f} ch9_tree_std={t['tree_std']:.4f} ch9_ensemble={t['ensemble']:.4f} ch10_vocab={k['vocab']} "
          f"ch11_vocab={'/'.join(s['vocab'])} ch11_items={s['train']}+{s['valid']} "
          f"ch11_typed={s['typed'][0]},{s['typed'][1]} ch11_subclass={','.join(s['subclass'])} ch4_accuracy={out['scratch']['accuracy']:.4f} "
          f"ch4_range_batches={len(out['scratch']['range_batches'])}x5 ch13_image={'x'.join(map(str, out['scratch']['image']))} "
          f"ch4_threes={len(out['scratch']['threes'])} ch2_failed={out['scratch']['failed']} "
          f"ch8_one_hot_lookup={'same' if c['one_hot_lookup'] else 'DIFFERENT'} "
          f"ch11_siamese_batch={'x'.join(map(str, out['siamese']['batch'][0]))} "
          f"ch6_row={'itself' if out['siamese']['row'] else 'DIFFERENT'} "
          f"ch2_rrc_batch={'x'.join(map(str, out['augment']['batch']))} "
          f"ch2_epochs={'differ' if out['augment']['epochs_differ'] else 'SAME'} "
          f"ch2_seeded={'same' if out['augment']['seeded'] else 'DIFFERENT'} "
          f"ch2_cleaned_valid={out['cleaner']['valid_cats']}cats+{out['cleaner']['valid_dogs']}dogs "
          f"ch11_all_files={'+'.join(map(str, out['ch11_15_17']['items'][1:]))}/{out['ch11_15_17']['items'][0]} "
          f"ch15_cut={out['ch11_15_17']['cut']} ch15_delegates={'metrics' if out['ch11_15_17']['delegated'] else 'NONE'} "
          f"ch17_nan_stop={'quiet' if out['ch11_15_17']['nan_stop'] else 'NONE'} "
          f"ch8_mse_loss={c['mse_torch_loss']:.4f} ch10_dls_vocab={'+'.join(k['dls_vocab'][0])}/{'+'.join(k['dls_vocab'][1])} "
          f"ch4_array={'x'.join(map(str, out['scratch']['corner']))} ch4_trainable={out['scratch']['trainable']} "
          f"ch7_fine_tune_epochs={out['ch7_16_19']['epochs']} ch7_final_fit_valid={out['ch7_16_19']['valid'][0]} "
          f"ch16_penalty_loss={out['ch7_16_19']['train_loss']:.4f} "
          f"ch16_mom={out['ch7_16_19']['mom'][0]}->{out['ch7_16_19']['mom'][1]} "
          f"ch15_text_classifier={'x'.join(map(str, out['ch7_16_19']['clf_out']))} ch19_cpus={out['ch7_16_19']['cpus']} "
          f"time={time.perf_counter() - t0:.1f}s")
    return out


if __name__ == "__main__":
    p = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rows and epochs (for tests)")
    main(quick=p.parse_args().quick)
