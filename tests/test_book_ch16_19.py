"""Chapters 16 and 19 as the book writes them, and chapter 11's typed transforms as fastai's docs write them: a
callback's ``self.x``/``self.y``, the star import's ``ProcessPoolExecutor`` (``map`` passing keywords on),
``GetAttr`` and ``progress_bar``, and a Transform with one ``encodes``/``decodes`` per type. Expected values are
fastai 2.8.12's on the same inputs."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.data import L, TfmdLists, Transform, get_image_files, parent_label
from pipekit.data.progress import progress_bar as pipekit_progress_bar
from pipekit.data.transform import encode_column, runs_per_value, written_for_items
from pipekit.learn import Callback, Learner
from pipekit.vision import ImageDataLoaders, Resize

pytestmark = pytest.mark.data

STAR: dict = {}
exec("from pipekit.vision.all import *", STAR)


@pytest.fixture(scope="module")
def mnist_dls():
    torch.set_num_threads(1)
    return ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0, device="cpu")


@pytest.fixture(scope="module")
def files() -> L:
    return get_image_files(D.path("mnist_tiny"), folders=["train", "valid"])


# ------------------------------------------------------------------ chapter 16: self.x, self.y


class Halve(Callback):
    """The book's chapter 16 habit (MixUp's): read the batch as ``self.x``/``self.y``, replace it through
    ``self.learn.xb``."""

    def __init__(self):
        self.seen = []

    def before_batch(self):
        self.seen.append((tuple(self.x.shape), tuple(self.y.shape), self.x is self.learn.xb[0], self.y is self.yb[0]))
        self.learn.xb = (self.x * 0.5,)


def test_a_callback_reads_the_batch_as_self_x_and_self_y(mnist_dls):
    pipekit.set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2, bias=False))
    learn = Learner(mnist_dls, model, loss_func=F.cross_entropy)
    assert learn.x is None and learn.y is None  # no batch yet (fastai: None)
    plain = learn.validate()[0]
    halve = Halve()
    halved = learn.validate(cbs=halve)[0]
    # fastai: x is xb[0] (64, 3, 28, 28) and y is yb[0] (64,) for a model of one input and one target
    assert halve.seen[0] == ((64, 3, 28, 28), (64,), True, True) and len(halve.seen) == len(mnist_dls.valid)
    # the model saw the halved inputs: a linear model without bias gives half the scores
    total, n = 0.0, 0
    with torch.no_grad():
        for xb, yb in mnist_dls.valid:
            total += float(F.cross_entropy(model(xb) * 0.5, yb)) * len(yb)
            n += len(yb)
    assert halved == pytest.approx(total / n, rel=1e-5) and halved != pytest.approx(plain, rel=1e-3)
    # the learner's own x/y are the last batch's; read only, as fastai's
    assert learn.x is learn.xb[0] and learn.y is learn.yb[0]
    with pytest.raises(AttributeError):
        learn.x = torch.zeros(1)


def test_learner_x_is_the_tuple_of_inputs_for_a_model_of_several():
    learn = Learner.__new__(Learner)  # only the batch attributes matter here
    a, b, t = torch.zeros(2, 3), torch.ones(2, 3), torch.arange(2)
    learn.xb, learn.yb = (a, b), (t,)
    # fastai's detuplify: one element is itself, several stay a tuple, none is None
    assert learn.x == (a, b) and learn.y is t
    learn.xb, learn.yb = (a,), ()
    assert learn.x is a and learn.y is None


# ------------------------------------------------------------------ chapter 19: ProcessPoolExecutor, GetAttr, progress_bar


def load(i: int, fns: list) -> np.ndarray:
    """One mnist_tiny image as pixels (a function at the top of the module: the workers get it pickled)."""
    return np.array(Image.open(fns[i]))


def collate(idxs, ds):
    """Chapter 19's ``collate(idxs, ds)``: the items of ``ds`` at ``idxs``, stacked."""
    xb, yb = zip(*[ds[i] for i in idxs])
    return torch.stack(xb), torch.stack(yb)


class BookDataset:
    def __init__(self, fns):
        self.fns = fns

    def __len__(self):
        return len(self.fns)

    def __getitem__(self, i):
        im = Image.open(self.fns[i]).convert("RGB")
        return torch.tensor(np.array(im)).float() / 255, torch.tensor(int(self.fns[i].parent.name == "7"))


def test_process_pool_map_passes_arguments_on_serially_and_in_workers(files):
    ProcessPoolExecutor = STAR["ProcessPoolExecutor"]
    fns = list(files[:12])
    with ProcessPoolExecutor(max_workers=0) as ex:  # fastcore: 0 workers runs in this process
        serial = list(ex.map(load, range(len(fns)), fns=fns))
    with ProcessPoolExecutor(2) as ex:
        pooled = list(ex.map(load, range(len(fns)), fns=fns))
    assert len(serial) == len(pooled) == 12 and all(np.array_equal(a, b) for a, b in zip(serial, pooled))
    assert serial[0].shape == (28, 28)
    # fastcore: extra positional arguments come first, partial(f, *args, **kwargs)(item)
    with ProcessPoolExecutor(max_workers=0) as ex:
        assert list(ex.map(int, ["11", "101"], base=2)) == [3, 5]
        assert list(ex.map(pow, [1, 2, 3], 2)) == [2, 4, 8]
    # chapter 19's DataLoader: ex.map(collate, chunks, ds=self.ds) in 2 workers gives the batches in order
    ds = BookDataset(list(files[:40]))
    chunks = [list(range(n, min(n + 16, len(ds)))) for n in range(0, len(ds), 16)]
    with ProcessPoolExecutor(2) as ex:
        batches = list(ex.map(collate, chunks, ds=ds))
    assert [tuple(x.shape) for x, _ in batches] == [(16, 28, 28, 3), (16, 28, 28, 3), (8, 28, 28, 3)]
    assert torch.equal(batches[1][0], collate(chunks[1], ds)[0])
    assert torch.equal(torch.cat([y for _, y in batches]), torch.tensor([int(f.parent.name == "7") for f in ds.fns]))


def test_get_attr_passes_on_what_the_object_lacks(mnist_dls):
    GetAttr = STAR["GetAttr"]

    class BookCallback(GetAttr):  # chapter 19's Callback
        _default = "learner"

    cb = BookCallback()
    with pytest.raises(AttributeError):  # no learner yet
        cb.model  # noqa: B018
    model = nn.Linear(3, 2)
    cb.learner = Learner(mnist_dls, nn.Sequential(nn.Flatten(), model), loss_func=F.cross_entropy)
    assert cb.model is cb.learner.model and cb.dls is mnist_dls and "dls" in dir(cb)
    with pytest.raises(AttributeError):
        cb.not_an_attribute  # noqa: B018
    with pytest.raises(AttributeError):  # dunder names are never passed on (fastcore)
        cb.__wrapped__  # noqa: B018

    class OnlyModel(GetAttr):
        _default, _xtra = "learner", ["model"]

    only = OnlyModel()
    only.learner = cb.learner
    assert only.model is cb.learner.model and not hasattr(only, "dls")


def test_progress_bar_goes_through_a_loader_with_pipekits_bar(mnist_dls, monkeypatch, capsys):
    progress_bar = STAR["progress_bar"]
    assert progress_bar is pipekit_progress_bar  # pipekit's one bar, not a second one
    batches = list(progress_bar(mnist_dls.valid, leave=False))
    assert len(batches) == len(mnist_dls.valid) == 11 and tuple(batches[0][0].shape) == (64, 3, 28, 28)
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    monkeypatch.setenv("PIPEKIT_PROGRESS", "1")
    n = sum(len(y) for _, y in progress_bar(mnist_dls.valid, leave=True))
    shown = capsys.readouterr()
    assert n == 699 and "11/11" in shown.out + shown.err  # the bar drawn, with its count


# ------------------------------------------------------------------ a Transform with one encodes per type


class Dbl(Transform):
    def encodes(self, x: int):
        return x * 2

    def encodes(self, x: str):  # noqa: F811 (fastai's spelling: one encodes per type)
        return x + x

    def decodes(self, x: int):
        return x // 2

    def decodes(self, x: str):  # noqa: F811
        return x[: len(x) // 2]


def test_a_transform_with_an_encodes_per_type_keeps_them_all():
    d = Dbl()
    # fastai: (6, 'aa', 2.5), decodes 3 and 'a'; a tuple item by item
    assert (d(3), d("a"), d(2.5)) == (6, "aa", 2.5)
    assert (d.decode(6), d.decode("aa")) == (3, "a")
    assert d((1, "b", 2.5)) == (2, "bb", 2.5)
    # a column of values goes value by value, each to its own encodes
    assert encode_column(d, pl.Series("v", [1, 2])).to_list() == [2, 4]
    assert written_for_items(d) and not runs_per_value(d)

    class Nearest(Transform):  # fastai: the nearest class wins, a later definition for one class replaces
        def encodes(self, x):
            return "other"

        def encodes(self, x: int):  # noqa: F811
            return "int"

        def encodes(self, x: bool):  # noqa: F811
            return "bool"

        def encodes(self, x: str):  # noqa: F811
            return "str"

        def encodes(self, x: str):  # noqa: F811
            return "str2"

    assert Nearest()((1, True, 2.5, "a")) == ("int", "bool", "other", "str2")


def test_an_encodes_per_type_in_tfmdlists_of_real_files(files):
    some = list(files[:3]) + list(files[-3:])
    labels = [f.parent.name for f in some]
    tls = TfmdLists(some, [parent_label, Dbl()])
    # fastai: the labels '3'/'7' doubled, decoded back
    assert tls[:] == [v + v for v in labels] and [tls.decode(tls[i]) for i in range(len(some))] == labels
    sizes = [f.stat().st_size for f in some]
    tls = TfmdLists(sizes, [Dbl()])
    assert tls[:] == [s * 2 for s in sizes] and tls.decode(tls[0]) == sizes[0]


def test_a_subclass_adding_an_encodes_keeps_its_parents_for_other_types(files):
    """fastai's type dispatch falls back to the parent's: a subclass's ``encodes`` for ``str`` leaves ``Dbl``'s for
    ``int`` in place (fastai 2.8.12: the sizes doubled, the labels upper-cased); an untyped one takes every value."""

    class Upper(Dbl):
        def encodes(self, x: str):
            return x.upper()

    class Every(Dbl):
        def encodes(self, x):
            return "all"

    some = list(files[:2]) + list(files[-2:])
    pairs = tuple((f.stat().st_size, f.parent.name) for f in some)
    assert Upper()(pairs) == tuple((n * 2, label.upper()) for n, label in pairs)
    assert Upper().decode(pairs[0]) == (pairs[0][0] // 2, pairs[0][1][:0])  # decodes inherited whole
    assert (Every()(pairs[0][0]), Every()(pairs[0][1])) == ("all", "all")
    assert written_for_items(Upper()) and not runs_per_value(Upper())

    class Flag(Transform):
        def encodes(self, x: bool):
            return "base-bool"

    class Count(Flag):
        def encodes(self, x: int):
            return "sub-int"

    # fastai 2.8.12: the nearest class wins across the subclass's and its parent's definitions
    assert Count()((True, pairs[0][0], pairs[0][1])) == ("base-bool", "sub-int", pairs[0][1])


def test_a_callback_setting_self_x_is_told_to_set_xb():
    """``self.x`` is read-only on the Learner (xb[0], as fastai's): a callback assigning it is pointed at xb."""
    class Halve(Callback):
        def before_batch(self):
            self.x = self.x / 2

    cb = Halve()
    cb.learn = object()
    with pytest.warns(UserWarning, match=r"set self\.learn\.xb = \(\.\.\.,\) \(x is xb\[0\]\)"):
        cb.x = 1
