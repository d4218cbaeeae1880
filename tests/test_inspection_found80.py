"""The chapter 9 inspection tools and the interpretation of a classifier, as their users call them: an explicit
partial-dependence grid in the data's own units, a ``tabular_learner`` Learner or a non-scikit-learn model
given to them, a scikit-learn forest measured on a Tabular's split, fastai's ``top_losses(items=True)``,
``plot_top_losses(ranks)`` and ``interp[idxs]``, and the probabilities of a loss that decodes nothing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit.datasets as D
from pipekit.backends import RandomForest, as_data
from pipekit.core import ParameterError
from pipekit.ensemble import TorchTabular
from pipekit.inspection import drop_redundant, partial_dependence, permutation_importance, prune_features
from pipekit.learn import ClassificationInterpretation, Learner
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, TabularDataLoaders, tabular_learner
from pipekit.vision import ImageDataLoaders, Resize


@pytest.fixture(scope="module")
def adult():
    """1500 adult rows, ages normalised, relationship categorised; a forest fitted on the first 1000."""
    df = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=1500)
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["relationship"],
                  cont_names=["age", "hours-per-week", "education-num"], y_names="salary",
                  splits=(list(range(1000)), list(range(1000, 1500))))
    rf = RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    return df, tab, rf


def _mean_proba(rf, tab, col, value):
    """The mean probability of '>=50k' over the valid rows with the processed column ``col`` set to ``value``."""
    d = as_data(tab.valid)
    xs = d.xs.with_columns(pl.lit(value).cast(d.xs.schema[col]).alias(col))
    return float(np.asarray(rf.predict(d.with_xs(xs)))[:, 1].mean())


# ----------------------------------------------------------------------------------- F1: explicit grid values
def test_pdp_explicit_ages_are_read_in_years_as_the_default_grid(adult):
    df, tab, rf = adult
    norm = next(p for p in as_data(tab.valid).processor.procs if isinstance(p, Normalize))
    mean, std = float(norm.means_["age"]), float(norm.stds_["age"])
    assert abs(mean - float(df["age"][:1000].mean())) < 1e-6  # the training rows' statistics
    p = partial_dependence(rf, tab.valid, "age", grid=[30, 50])
    assert p.grid_labels[0] == [30.0, 50.0] and p.grid_raw[0].tolist() == [30.0, 50.0]
    np.testing.assert_allclose(p.grid[0], [(30 - mean) / std, (50 - mean) / std], rtol=1e-4)
    hand = [_mean_proba(rf, tab, "age", float(z)) for z in p.grid[0]]
    np.testing.assert_allclose(p.average, hand, rtol=1e-6)
    assert p.average[1] > p.average[0]  # older people earn more: the curve is not flat
    np.testing.assert_allclose(partial_dependence(rf, tab.valid, "age", grid={"age": [30, 50]}).average, p.average)


def test_pdp_explicit_categories_are_category_values(adult):
    _, tab, rf = adult
    every = partial_dependence(rf, tab.valid, "relationship")
    p = partial_dependence(rf, tab.valid, "relationship", grid=[" Husband", " Wife"])
    assert p.grid_labels[0] == [" Husband", " Wife"] and list(p.grid_raw[0]) == [" Husband", " Wife"]
    at = [every.grid_labels[0].index(v) for v in (" Husband", " Wife")]
    np.testing.assert_allclose(p.average, every.average[at])
    np.testing.assert_array_equal(p.grid[0], every.grid[0][at])


def test_pdp_unknown_category_is_refused_listing_the_vocab(adult):
    _, tab, rf = adult
    with pytest.raises(ParameterError, match=r"' Husbnd'.*'relationship'.*' Own-child'"):
        partial_dependence(rf, tab.valid, "relationship", grid=[" Husbnd"])
    with pytest.raises(ParameterError, match="'old' of 'age' is not a number"):
        partial_dependence(rf, tab.valid, "age", grid=["old"])


def test_pdp_missing_grid_value_is_filled_as_the_procs_fill_it(adult):
    _, tab, rf = adult
    fill = next(p for p in as_data(tab.valid).processor.procs if isinstance(p, FillMissing)).fill_values_["education-num"]
    p = partial_dependence(rf, tab.valid, "education-num", grid=[None, fill])
    assert p.grid[0][0] == p.grid[0][1] and p.average[0] == p.average[1]
    assert np.isnan(p.grid_raw[0][0]) and p.grid_raw[0][1] == fill


def test_pdp_explicit_grid_of_raw_rows_is_given_as_it_is(adult):
    from sklearn.ensemble import RandomForestRegressor

    df, _, _ = adult
    X = df.select("age", "education-num").to_pandas()
    m = RandomForestRegressor(n_estimators=10, random_state=0, n_jobs=1).fit(X, df["hours-per-week"].to_numpy())
    p = partial_dependence(m, X, "age", grid=[30, 50], n_rows=None)
    assert p.grid[0].tolist() == [30, 50] and p.grid_raw[0].tolist() == [30, 50]
    hand = [float(m.predict(X.assign(age=v)).mean()) for v in (30, 50)]
    np.testing.assert_allclose(p.average, hand)
    np.testing.assert_allclose(partial_dependence(m, pl.from_pandas(X), "age", grid=[30, 50], n_rows=None).average,
                               hand)


# ------------------------------------------------------------- F2: a Learner, a model that is no estimator
@pytest.fixture(scope="module")
def learner():
    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=400)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"],
                                     cont_names=["education-num", "age"], procs=[Categorify, FillMissing, Normalize],
                                     valid_idx=list(range(300, 400)), bs=64, seed=0)
    torch.manual_seed(0)
    return dls, tabular_learner(dls, layers=[10])


def test_learner_is_inspected_through_its_net(learner):
    dls, learn = learner
    net = TorchTabular.from_learner(learn)
    got = permutation_importance(learn, dls.tabular.valid, n_repeats=2, seed=0)
    want = permutation_importance(net, dls.tabular.valid, n_repeats=2, seed=0)
    assert got.equals(want)
    p = partial_dependence(learn, dls.tabular.valid, "age", grid=[30, 60])
    np.testing.assert_allclose(p.average, partial_dependence(net, dls.tabular.valid, "age", grid=[30, 60]).average)


def test_learner_refused_where_the_model_is_refitted(learner):
    dls, learn = learner
    with pytest.raises(ParameterError, match=r"drop_redundant refits.*RandomForest"):
        drop_redundant(learn, dls.tabular.train, dls.tabular.valid, columns=["age"])


def test_model_that_is_no_sklearn_estimator_gets_a_parameter_error():
    class Constant:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.zeros(len(X))

    with pytest.raises(ParameterError, match="Constant has fit and predict but is no scikit-learn estimator"):
        permutation_importance(Constant(), pl.DataFrame({"a": [1.0, 2.0, 3.0]}), y=[1.0, 2.0, 3.0])


# ------------------------------------------------------------------ F5: an estimator on a Tabular's split
def test_permutation_importance_of_sklearn_forest_takes_the_split():
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=1500)
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=["relationship"], cont_names=["age", "education-num"],
                  y_names="hours-per-week", splits=(list(range(1000)), list(range(1000, 1500))))
    m = RandomForestRegressor(n_estimators=10, random_state=0, n_jobs=1).fit(tab.train.xs, tab.train.y)
    got = permutation_importance(m, tab.valid, n_repeats=2, seed=0)
    assert got.equals(permutation_importance(m, tab.valid.xs, y=tab.valid.y, n_repeats=2, seed=0))
    # a classifier fitted on tab.train.y knows the target's codes: the split's targets are read as codes
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=["relationship"], cont_names=["age", "education-num"],
                  y_names="salary", splits=(list(range(1000)), list(range(1000, 1500))))
    c = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1).fit(tab.train.xs, tab.train.y)
    got = permutation_importance(c, tab.valid, n_repeats=2, seed=0)
    assert got.equals(permutation_importance(c, tab.valid.xs, y=tab.valid.y, n_repeats=2, seed=0))
    pruned = prune_features(c, tab.train, tab.valid, threshold=0.05)
    assert pruned.score_before == pytest.approx(float((c.predict(tab.valid.xs) == tab.valid.y.to_numpy()).mean()))


# -------------------------------------------------------------------------- F3 / F4: interpretation
@pytest.fixture(scope="module")
def mnist():
    return ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)


def _learner(dls, loss_func=None):
    torch.manual_seed(0)
    kw = {} if loss_func is None else {"loss_func": loss_func}
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)), **kw)


def test_top_losses_items_and_getitem_as_fastai(mnist):
    interp = ClassificationInterpretation.from_learner(_learner(mnist))
    losses, idxs, items = interp.top_losses(3, items=True)
    l2, i2 = interp.top_losses(3)
    assert torch.equal(losses, l2) and torch.equal(idxs, i2)
    assert items == [mnist.valid_ds.items[int(i)] for i in idxs]
    inps, preds, targs, decoded, ls = interp[[0, 5]]
    assert torch.equal(inps, interp.inputs[[0, 5]]) and torch.equal(preds, interp.preds[[0, 5]])
    assert torch.equal(targs, interp.targs[[0, 5]]) and torch.equal(decoded, interp.decoded[[0, 5]])
    assert torch.equal(ls, interp.losses[[0, 5]])
    assert interp[idxs][1].shape == (3, 2) and interp[4][4].shape == (1,)
    with pytest.raises(ParameterError, match="out of range"):
        interp[[0, len(interp.losses)]]


def test_plot_top_losses_of_ranks(mnist, monkeypatch):
    interp = ClassificationInterpretation.from_learner(_learner(mnist))
    shown: list[int] = []
    monkeypatch.setattr(interp, "_show_input", lambda ax, i, title: shown.append(i))
    _, order = interp.top_losses()
    assert interp.plot_top_losses(range(2, 5)) is not None
    assert shown == order[2:5].tolist()
    shown.clear()
    interp.plot_top_losses([0, 1], largest=False)
    assert shown == interp.top_losses(largest=False)[1][:2].tolist()
    with pytest.raises(ParameterError, match="ranks"):
        interp.plot_top_losses([0.5])


@pytest.mark.parametrize("loss_func", [F.cross_entropy, nn.CrossEntropyLoss()], ids=["function", "module"])
def test_torch_cross_entropy_probabilities_are_probabilities(mnist, loss_func):
    learn = _learner(mnist, loss_func)
    scores = learn.get_preds()[0]
    interp = ClassificationInterpretation.from_learner(learn)
    torch.testing.assert_close(interp.preds, scores.softmax(1))
    torch.testing.assert_close(interp.decoded, scores.argmax(1))
    losses, idxs = interp.top_losses(1)
    i = int(idxs[0])
    prob = float(interp.preds[i].max())
    assert 0.5 <= prob <= 1.0 and interp._title(i, float(losses[0])).endswith(f"/ {prob:.2f}")


class SoftmaxCE:
    """A loss class as fastai's are written: an activation (probabilities), no decodes."""
    reduction = "mean"

    def __call__(self, out, targ, reduction=None):
        return F.cross_entropy(out, targ, reduction=reduction or self.reduction)

    def activation(self, o):
        return o.softmax(1)


def test_a_loss_activation_is_applied_once(mnist):
    learn = _learner(mnist, SoftmaxCE())
    probs = learn.get_preds()[0]
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))  # get_preds applied the loss's activation
    interp = ClassificationInterpretation.from_learner(learn)
    torch.testing.assert_close(interp.preds, probs)  # not a softmax of probabilities
    torch.testing.assert_close(interp.decoded, probs.argmax(1))


def test_a_regression_on_whole_numbers_keeps_its_predictions(mnist):
    from pipekit.data import DataLoaders
    from pipekit.learn import Interpretation, MSELossFlat

    # how much ink each digit has, in whole tenths of its pixels: one output per image, integer targets
    xs = torch.cat([x.float().flatten(1) / 255 for x, _ in mnist.valid])[:64]
    ink = (xs.mean(1) * 10).round().long()
    ds = list(zip(xs, ink))
    torch.manual_seed(0)
    learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), nn.Linear(xs.shape[1], 1),
                    loss_func=MSELossFlat())
    preds = learn.get_preds()[0]
    interp = Interpretation.from_learner(learn)
    assert preds.shape == (64, 1) and not torch.allclose(preds, torch.ones_like(preds))
    torch.testing.assert_close(interp.preds, preds)
    torch.testing.assert_close(interp.decoded, preds)


@pytest.mark.parametrize("frame", ["pandas", "polars"])
def test_top_losses_items_of_a_frame_are_its_rows(frame):
    labels = pd.read_csv(D.path("mnist_tiny") / "labels.csv").sample(120, random_state=0).reset_index(drop=True)
    labels.index = labels.index + 1000
    df = labels if frame == "pandas" else pl.from_pandas(labels)
    dls = ImageDataLoaders.from_df(df, D.path("mnist_tiny"), img_cls="L", bs=32, seed=0, valid_pct=0.3)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    interp = ClassificationInterpretation.from_learner(learn)
    losses, idxs, items = interp.top_losses(5, items=True)
    names = [str(dls.valid_ds.items[int(i)]["name"]) for i in idxs]
    # the rows of the items table pipekit built, in the order of the losses, whatever frame was given
    assert isinstance(items, pl.DataFrame) and items.columns == ["name", "label"]
    assert items["name"].to_list() == names
    assert items["label"].to_list() == [dls.vocab[int(t)] for t in interp.targs[idxs]]
    by_name = labels.set_index("name")["label"]
    assert items.to_pandas()["label"].tolist() == [by_name[n] for n in names]


def test_top_losses_items_do_not_follow_the_users_frame_changed_in_place():
    import gc
    import weakref

    df = pd.read_csv(D.path("mnist_tiny") / "labels.csv").groupby("label").head(40).reset_index(drop=True)
    dls = ImageDataLoaders.from_df(df, D.path("mnist_tiny"), img_cls="L", bs=16, seed=0)
    torch.manual_seed(0)
    interp = ClassificationInterpretation.from_learner(Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(784, 2))))
    _, idxs, before = interp.top_losses(3, items=True)
    truth = [dls.valid_ds.items[int(i)]["name"] for i in idxs]
    assert before["name"].to_list() == truth
    df.sort_values("label", ascending=False, inplace=True)  # the user's frame, reordered after the build
    assert interp.top_losses(3, items=True)[2]["name"].to_list() == truth
    df.drop(df.index[10:], inplace=True)
    assert interp.top_losses(3, items=True)[2].equals(before)
    gone = weakref.ref(df)
    del df
    gc.collect()
    assert gone() is None  # the loaders keep no reference to the user's frame


def test_from_df_of_pandas_warns_once_of_its_conversion():
    d = pd.read_csv(D.path("mnist_tiny") / "labels.csv").head(200)
    d["label"] = d["label"].astype(object)
    d.loc[3, "label"] = "3"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ImageDataLoaders.from_df(d, D.path("mnist_tiny"), item_tfms=Resize(28), bs=16, seed=0)
    mixed = [str(x.message) for x in w if "mix text and numbers" in str(x.message)]
    assert len(mixed) == 1 and "['label']" in mixed[0]
