"""The book's chapters 15 and 17 under ``from pipekit.vision.all import *``: ``model_meta`` and ``@delegates``
(chapter 15), and a ``TerminateOnNaNCallback`` of one's own stopping a diverging fit (chapter 17), on mnist_tiny."""
import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit.datasets as D
from pipekit.learn import (Callback, CancelFitException, Learner, NonFiniteError, Recorder,
                           TerminateOnNaNCallback)
from pipekit.vision import ImageDataLoaders


def _star() -> dict:
    names: dict = {}
    exec("from pipekit.vision.all import *", names)
    return names


@pytest.fixture(scope="module")
def dls():
    return ImageDataLoaders.from_folder(D.path("mnist_tiny"), valid="valid", bs=64, seed=0)


def test_model_meta_gives_what_vision_learner_uses(dls):
    g = _star()
    model_meta, resnet18, resnet34 = g["model_meta"], g["resnet18"], g["resnet34"]
    meta = model_meta[g["resnet50"]]
    assert set(meta) == {"cut", "split", "stats"}
    assert meta["cut"] == -2 and meta["stats"] == g["imagenet_stats"]
    assert model_meta["resnet50"] == meta  # by registered name too
    assert model_meta[g["xresnet18"]]["cut"] == -1 and model_meta[g["xresnet18"]]["stats"] is None
    assert model_meta["efficientnet_lite0"]["stats"] == g["efficientnet_lite_stats"]
    assert {f.__name__ for f in model_meta} >= {"resnet18", "resnet152", "xresnet50", "efficientnet_lite2"}
    # the int cut takes the body create_body cuts by default, names and layer groups included
    body = g["create_body"](resnet34, cut=model_meta[resnet34]["cut"])
    default = g["create_body"](resnet34)
    assert type(body) is type(default) and list(body.state_dict()) == list(default.state_dict())
    assert [len(p) for p in body.layer_groups()] == [len(p) for p in default.layer_groups()]
    # the split is the learner's own on mnist_tiny
    learn = g["vision_learner"](dls, resnet18, pretrained=False)
    split = model_meta[resnet18]["split"](learn.model)
    assert [[id(p) for p in grp] for grp in split] == [[id(p) for p in grp] for grp in learn.splitter(learn.model)]
    assert len(split) == 3
    with pytest.raises(KeyError, match=r"'Linear' is not one of pipekit's image architectures \(resnet18, .*pass cut="):
        model_meta[nn.Linear]
    model_meta[resnet18]["cut"] = 0  # a copy: the table stays as it is
    assert model_meta[resnet18]["cut"] == -2


def test_delegates_shows_passed_on_keywords_in_signatures():
    g = _star()
    delegates = g["delegates"]

    def base(a, b=1, c: int = 2, d=3):
        return (a, b, c, d)

    @delegates(base, but=["d"])
    def f(x, **kwargs):
        return base(x, **kwargs)

    assert str(inspect.signature(f)) == "(x, *, b=1, c: int = 2)"
    assert f(0, c=5) == (0, 1, 5, 3)  # still passed on through **kwargs
    assert f.__annotations__["c"] is int

    @delegates(base, keep=True, but="b, c")
    def h(x, **kwargs):
        return base(x, **kwargs)

    assert str(inspect.signature(h)) == "(x, *, d=3, **kwargs)"

    class Base:
        def __init__(self, size=64, pad=0):
            self.size, self.pad = size, pad

    @delegates()
    class Crop(Base):
        def __init__(self, mode="zeros", **kwargs):
            super().__init__(**kwargs)
            self.mode = mode

    assert list(inspect.signature(Crop).parameters) == ["mode", "size", "pad"]
    assert Crop(pad=2).pad == 2
    # a Learner's keyword arguments, as the book's chapter 15 delegates to them
    @delegates(g["Learner"].__init__)
    def make(dls, arch, **kwargs):
        return kwargs

    assert {"loss_func", "metrics", "cbs", "lr"} <= set(inspect.signature(make).parameters)
    with pytest.raises(TypeError, match=r"g has no \*\*kwargs .* add \*\*kwargs"):
        @delegates(base)
        def g(x):
            return x
    with pytest.raises(TypeError, match="with no `to`, decorate a class"):
        delegates()(lambda **kw: kw)


def _nan_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


def test_users_terminate_on_nan_callback_stops_the_fit_quietly(dls):
    seen = []

    class TerminateOnNaNCallback(Callback):  # the book's chapter 17 callback, under its name
        run_before = Recorder

        def after_batch(self):
            if torch.isinf(self.loss) or torch.isnan(self.loss):
                seen.append(self.iter)
                raise CancelFitException

    learn = Learner(dls, _nan_model(), loss_func=F.cross_entropy, cbs=TerminateOnNaNCallback())
    learn.fit(1, 1e4)  # no error: the user's callback stopped it
    assert len(seen) == 1 and 0 < seen[0] < len(dls.train)
    # the built-in guard, still there, put the last finite weights back
    assert all(bool(torch.isfinite(p).all()) for p in learn.model.parameters())
    assert all(math.isfinite(x) for x in learn.recorder.losses)
    loss = learn.validate()[0]  # nothing left over from the stopped fit
    assert math.isfinite(loss)


def test_without_a_callback_of_ones_own_the_guard_still_stops_with_an_error(dls):
    learn = Learner(dls, _nan_model(), loss_func=F.cross_entropy)
    with pytest.raises(NonFiniteError, match=r"training stopped at epoch 0, batch \d+: the training loss was NaN/inf"):
        learn.fit(1, 1e4)
    assert all(bool(torch.isfinite(p).all()) for p in learn.model.parameters())
    assert isinstance(learn.terminate_on_nan, TerminateOnNaNCallback)


def test_changing_what_model_meta_gives_changes_nothing_else():
    from pipekit.vision.all import imagenet_stats, model_meta, resnet18, resnet50

    before = [list(s) for s in imagenet_stats]
    entry = model_meta[resnet50]
    entry["stats"][0][0], entry["cut"] = 0.0, -5
    assert [list(s) for s in imagenet_stats] == before
    assert model_meta[resnet18]["stats"][0][0] == before[0][0] and model_meta[resnet50]["cut"] == -2
