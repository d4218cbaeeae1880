"""Values that are finite in a file (and in Python's float64) but overflow float32 or the arithmetic a model or an
optimiser does with them are refused as they are read, naming the field, and as they are given in code, with the
same words; the values real training uses still load and fit.

- ``arch.config.y_range`` of ``[-1e308, 1e308]`` (a collab export on movie_lens_sample) used to load and predict NaN
  for every rating: ``high - low`` overflows float32;
- ``learner.opt_kwargs`` of ``wd``, ``eps`` (Adam's, QHAdam's) or RAdam's ``beta`` at 1e308 (a tabular export on
  adult_sample) used to load and stop the first fit with a NonFiniteError naming neither file nor field;
- ``FocalLossFlat(gamma=1e308)`` and ``CrossEntropyLossFlat(weight=[1e308, 1e308])`` likewise;
- ``learner.opt_kwargs.lr`` of -1e300 or 0 used to load and be silently ignored (the learner's own lr wins).
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import polars as pl
import pytest
import torch
from file_edits import edited_copy, refused_quickly

import pipekit
import pipekit.datasets as D
from pipekit.collab import CollabDataLoaders, collab_learner
from pipekit.core import ParameterError
from pipekit.core.validate import Y_RANGE
from pipekit.learn import (Adam, CrossEntropyLossFlat, FocalLossFlat, QHAdam, RAdam, SGD, load_learner)
from pipekit.learn.losses import BCEWithLogitsLossFlat
from pipekit.tabular import TabularDataLoaders, TabularModel, tabular_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("overflowing")


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(D.path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def collab_export(ratings, out) -> Path:
    """The book's collab learner on movie_lens_sample, ``y_range=(0, 5.5)``, exported."""
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    return collab_learner(dls, n_factors=10, y_range=(0, 5.5)).export(out / "collab.pipekit")


def _adult_dls(rows: int = 500) -> TabularDataLoaders:
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(rows)
    return TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                      cont_names=["age", "hours-per-week"], bs=64, seed=0)


@pytest.fixture(scope="module")
def adult_dls() -> TabularDataLoaders:
    return _adult_dls()


@pytest.fixture(scope="module")
def adult_export(adult_dls, out) -> Path:
    """A small tabular learner on adult_sample trained with ``partial(Adam, ...)`` at the book's values."""
    learn = tabular_learner(adult_dls, layers=[16], opt_func=partial(Adam, lr=1e-2, wd=0.1, eps=1e-8, sqr_mom=0.99))
    return learn.export(out / "adult.pipekit")


def _fits(learn, dls) -> None:
    """One epoch on ``dls`` leaves finite weights and a finite training loss."""
    learn.dls = dls
    learn.fit(1)
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert math.isfinite(learn.recorder.values[-1][0])


# ------------------------------------------------------------------------------------------------- y_range
@pytest.mark.parametrize("y_range", [[-1e308, 1e308], [-3e38, 3e38], [0.0, 1e39]])
def test_collab_y_range_overflowing_float32_is_refused_naming_the_field(collab_export, out, y_range):
    path = edited_copy(collab_export, lambda r: r["arch"]["config"].__setitem__("y_range", y_range),
                       out / "y_range.pipekit")
    msg = refused_quickly(load_learner, path, named=("arch.config.y_range",))
    assert "float32" in msg


def test_genuine_collab_export_predicts_ratings_within_its_y_range(collab_export, ratings):
    learn = pipekit.load(collab_export)
    for row in ratings.head(5).iter_rows(named=True):
        pred = float(learn.predict(row)[0])
        assert 0 < pred < 5.5


def test_y_range_overflowing_float32_is_refused_in_code(ratings, adult_dls):
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    with pytest.raises(ParameterError, match=r"y_range=\(-1e\+308, 1e\+308\).*float32"):
        collab_learner(dls, n_factors=10, y_range=(-1e308, 1e308))
    with pytest.raises(ParameterError, match="float32"):
        TabularModel({}, 2, 1, [8], y_range=(-3e38, 3e38))
    assert collab_learner(dls, n_factors=10, y_range=(0, 5.5)).model.y_range is not None
    assert all(Y_RANGE.accepts(r) for r in [None, (0, 5.5), (-1.0, 1.0), (0, 3e38), [1e-3, 2e-3]])
    assert not any(Y_RANGE.accepts(r) for r in [(-1e308, 1e308), (0, 1e39), (1.0, 1.0 + 1e-12), (5.5, 0)])


# ------------------------------------------------------------------------------------------ optimiser values
def _opt(func: str, **kwargs):
    def edit(r):
        r["learner"] = {"class": "pipekit.learn.Learner", "opt_func": {"__ref__": f"pipekit.learn.{func}"},
                        "opt_kwargs": kwargs}
    return edit


@pytest.mark.parametrize("func, key, value", [
    ("Adam", "wd", 1e308), ("Adam", "eps", 1e308), ("QHAdam", "eps", 1e308), ("QHAdam", "wd", 1e308),
    ("SGD", "wd", 1e308), ("RAdam", "beta", 1e308), ("Adam", "eps", 5.0), ("Adam", "wd", 1e3)])
def test_overflowing_optimiser_value_is_refused_at_load_naming_the_field(adult_export, out, func, key, value):
    path = edited_copy(adult_export, _opt(func, **{key: value}), out / f"opt_{func}_{key}.pipekit")
    msg = refused_quickly(load_learner, path, named=(f"learner.opt_kwargs.{key}",))
    # the words the optimiser itself refuses the value with in code
    with pytest.raises(ParameterError) as e:
        getattr(pipekit.learn, func)([{"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=1e-3, **{key: value})
    assert str(e.value) in msg


@pytest.mark.parametrize("lr", [-1e300, 0, -0.5])
def test_bad_lr_in_opt_kwargs_is_refused_at_load_pointing_at_learner_lr(adult_export, out, lr):
    path = edited_copy(adult_export, _opt("Adam", lr=lr), out / "opt_lr.pipekit")
    msg = refused_quickly(load_learner, path, named=("learner.opt_kwargs.lr", "learner.lr"))
    assert "above 0" in msg


def test_genuine_export_with_optimiser_values_loads_and_fits(adult_export, adult_dls):
    learn = load_learner(adult_export)
    assert learn.opt_func.keywords == {"lr": 1e-2, "wd": 0.1, "eps": 1e-8, "sqr_mom": 0.99}
    _fits(learn, adult_dls)


@pytest.mark.parametrize("opt_func", [
    partial(Adam, wd=0.01, eps=1e-5), partial(Adam, wd=1.0, eps=1e-3), partial(QHAdam, eps=1e-8, wd=0.0),
    partial(SGD, mom=0.9, wd=5e-4), partial(RAdam, beta=50.0, sqr_mom=0.99)])
def test_typical_optimiser_values_export_load_and_fit(adult_dls, out, opt_func):
    learn = tabular_learner(adult_dls, layers=[16], opt_func=opt_func)
    loaded = load_learner(learn.export(out / "typical.pipekit"))
    assert loaded.opt_func.keywords == opt_func.keywords
    _fits(loaded, adult_dls)


# ------------------------------------------------------------------------------------------------ loss values
@pytest.mark.parametrize("cls, params, name", [
    ("FocalLossFlat", {"gamma": 1e308}, "gamma"), ("CrossEntropyLossFlat", {"weight": [1e308, 1e308]}, "weight"),
    ("CrossEntropyLossFlat", {"weight": [0.0, 0.0]}, "weight"), ("FocalLossFlat", {"weight": [1.0, -1.0]}, "weight"),
    ("CrossEntropyLossFlat", {"weight": [4e38, 1.0]}, "weight")])
def test_overflowing_loss_value_is_refused_at_load_naming_it(adult_export, out, cls, params, name):
    def edit(r):
        r["loss"] = {"class": f"pipekit.learn.{cls}", "params": params, "state": {}}
    path = edited_copy(adult_export, edit, out / "loss.pipekit")
    msg = refused_quickly(load_learner, path, named=("'loss'", f"{name}="))
    with pytest.raises(ParameterError) as e:
        getattr(pipekit.learn, cls)(**params)
    assert str(e.value) in msg


def test_book_loss_values_load_and_fit(adult_dls, out):
    for loss in (FocalLossFlat(gamma=2.0, weight=[1.0, 3.0]), CrossEntropyLossFlat(weight=torch.tensor([0.3, 0.7])),
                 CrossEntropyLossFlat(weight=[1.0, 0.0])):
        learn = tabular_learner(adult_dls, layers=[16], loss_func=loss)
        loaded = load_learner(learn.export(out / "loss_ok.pipekit"))
        assert type(loaded.loss_func) is type(loss)
        _fits(loaded, adult_dls)
    assert BCEWithLogitsLossFlat(pos_weight=[3.0, 0.0]).pos_weight is not None
    with pytest.raises(ParameterError, match="pos_weight"):
        BCEWithLogitsLossFlat(pos_weight=[1e308])


def test_sigmoid_range_and_the_text_classifier_share_the_y_range_rule():
    """A SigmoidRange layer built by hand (the book's chapter 8 writes sigmoid_range itself) and a text classifier's
    y_range are held to the rule collab and tabular models use: finite in float32, low < high."""
    from pipekit.learn.nets import SigmoidRange
    from pipekit.text.models import AWD_LSTM, get_text_classifier

    assert SigmoidRange(0, 5.5)(torch.zeros(1)).item() == 2.75
    with pytest.raises(ParameterError, match=r"SigmoidRange: y_range=\(-1e\+308, 1e\+308\) is not accepted; .*float32"):
        SigmoidRange(-1e308, 1e308)
    with pytest.raises(ParameterError, match=r"y_range=\(0, 1e\+39\) is not accepted; .*float32"):
        get_text_classifier(AWD_LSTM, 100, 1, y_range=(0, 1e39))
