"""Imbalanced classes on real data (adult, mnist_tiny): a stratified split sized and allocated as scikit-learn's,
refused where scikit-learn refuses; weighted loaders whose weights follow get_items when the splitter leaves items
out; LightGBM's class weighing refused where LightGBM would ignore or reject it; ensembles refusing sample_weight
with the message TabularClassifier gives."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.model_selection import train_test_split

import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import (
    CategoryBlock,
    DataBlock,
    GrandparentSplitter,
    RandomSplitter,
    TrainTestSplitter,
    get_image_files,
    parent_label,
)
from pipekit.ensemble import BaggedModel, MeanEnsemble, StackingEnsemble, WeightedEnsemble
from pipekit.sklearn import TabularClassifier
from pipekit.tabular import Categorify, FillMissing, Tabular
from pipekit.vision import ImageBlock, Resize

ADULT = D.path("adult_sample") / "adult.csv"
MNIST = D.path("mnist_tiny")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(ADULT)


def per_class(df: pl.DataFrame, col: str, rows: int) -> pl.DataFrame:
    """The first ``rows`` rows of each value of ``col`` that has as many."""
    big = df[col].value_counts().filter(pl.col("count") >= rows)[col]
    return df.filter(pl.col(col).is_in(big.implode())).group_by(col, maintain_order=True).head(rows)


# -- TrainTestSplitter(stratify_col=...) ------------------------------------------------------------------------------
def test_stratified_split_has_scikit_learns_size_when_every_class_rounds_up(adult):
    """Each class's share rounded on its own (round(1.5) == 2) gave 32 of 96 rows (33%) for a 25% split."""
    df = per_class(adult, "education", 6)
    n_classes = df["education"].n_unique()
    assert len(df) == 6 * n_classes
    train, valid = TrainTestSplitter(0.25, seed=0, stratify_col="education")(df)
    _, sk_valid = train_test_split(
        np.arange(len(df)), test_size=0.25, random_state=0, stratify=df["education"]
    )
    assert len(valid) == len(sk_valid) == math.ceil(0.25 * len(df))
    assert len(train) + len(valid) == len(df)
    counts = df[valid]["education"].value_counts()["count"].to_numpy()
    assert set(counts.tolist()) <= {1, 2}  # each class its share of 1.5 rounded down or up, as scikit-learn's


def test_stratified_split_on_all_of_adult_keeps_each_race_at_its_share(adult):
    train, valid = TrainTestSplitter(0.2, seed=42, stratify_col="race")(adult)
    again = TrainTestSplitter(0.2, seed=42, stratify_col="race")(adult)[1]
    other = TrainTestSplitter(0.2, seed=43, stratify_col="race")(adult)[1]
    assert np.array_equal(valid, again) and not np.array_equal(valid, other)
    _, sk_valid = train_test_split(
        np.arange(len(adult)), test_size=0.2, random_state=42, stratify=adult["race"]
    )
    assert len(valid) == len(sk_valid)
    total = adult["race"].value_counts()
    held = adult[valid]["race"].value_counts().rename({"count": "held"})
    both = total.join(held, on="race")
    assert len(both) == len(total)
    for n, k in zip(both["count"], both["held"]):
        assert math.floor(0.2 * n) <= k <= math.ceil(0.2 * n)


def test_stratified_split_refuses_a_validation_set_smaller_than_the_classes(adult):
    """Three rows of each occupation at 10% gave no validation rows at all; scikit-learn refuses."""
    df = per_class(adult, "occupation", 3)
    with pytest.raises(ValueError):
        train_test_split(np.arange(len(df)), test_size=0.1, random_state=0, stratify=df["occupation"])
    with pytest.raises(
        DataError,
        match=r"validation set of \d+ of the \d+ items, fewer than the \d+ classes of "
        r"column 'occupation'.*valid_pct between",
    ):
        TrainTestSplitter(0.1, seed=0, stratify_col="occupation")(df)


def test_stratified_split_refuses_a_class_of_one_row_naming_it(adult):
    with pytest.raises(ValueError, match="least populated"):
        train_test_split(
            np.arange(len(adult)), test_size=0.2, random_state=0, stratify=adult["native-country"]
        )
    with pytest.raises(
        DataError, match=r"column 'native-country' have 1 item.*Holand-Netherlands.*RandomSplitter"
    ):
        TrainTestSplitter(0.2, seed=0, stratify_col="native-country")(adult)
    labels = adult["native-country"].to_list()
    with pytest.raises(DataError, match=r"of stratify= have 1 item"):
        TrainTestSplitter(test_size=0.2, random_state=0, stratify=labels)(adult)
    # no validation set asked for: nothing to hold every class, so nothing refused
    assert len(TrainTestSplitter(0, seed=0, stratify_col="native-country")(adult)[1]) == 0


# -- DataBlock.weighted_dataloaders ----------------------------------------------------------------------------------
def test_weighted_dataloaders_takes_one_weight_per_listed_item_when_the_split_leaves_some_out():
    """mnist_tiny's test/ files are in neither subset of a GrandparentSplitter: the weights are still one per file
    get_image_files lists (as fastai's), and each training file gets its own."""
    files = get_image_files(MNIST)
    assert sum(f.parent.name == "test" for f in files) == 20
    dblock = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=get_image_files,
        get_y=parent_label,
        splitter=GrandparentSplitter(),
        item_tfms=[Resize(28)],
    )
    wgts = np.array([1.0 if f.parent.name == "7" else 0.0 for f in files])
    with pytest.warns(UserWarning, match="neither the training nor the validation set"):
        dls = dblock.weighted_dataloaders(MNIST, wgts, bs=64, seed=0)
    ys = torch.cat([y for _, y in dls.train])
    assert len(ys) > 0 and {dls.vocab[int(c)] for c in ys.unique()} == {"7"}
    with (
        pytest.warns(UserWarning),
        pytest.raises(
            ParameterError,
            match=rf"wgts has 5 weight\(s\) and the source "
            rf"{len(files)} items",
        ),
    ):
        dblock.weighted_dataloaders(MNIST, wgts[:5], bs=64, seed=0)


def test_weighted_dataloaders_lists_and_splits_the_items_once():
    """A function splitter leaving mnist_tiny's test/ files out, training on the train/ files and splitting the
    valid/ ones with a RandomSplitter without a seed: the items are listed and split once (a second split would
    differ), and the weights, one per listed file, are the training files' own: one file weighted is the only one
    drawn."""
    calls = {"get_items": 0, "splitter": 0}

    def listed(path):
        calls["get_items"] += 1
        return get_image_files(path)

    def split(files):
        calls["splitter"] += 1
        folder = np.array([f.parent.parent.name for f in files])
        valid = np.flatnonzero(folder == "valid")
        more, held = RandomSplitter(0.5)(pl.DataFrame({"i": valid}))
        return np.concatenate([np.flatnonzero(folder == "train"), valid[more]]), valid[held]

    files = get_image_files(MNIST)
    one = next(f for f in files if f.parent.parent.name == "train" and f.parent.name == "7")
    wgts = np.zeros(len(files))
    wgts[files.index(one)] = 1.0
    dblock = DataBlock(
        blocks=(ImageBlock, CategoryBlock), get_items=listed, get_y=parent_label, splitter=split
    )
    with pytest.warns(
        UserWarning, match="20 of 1428 items are in neither the training nor the validation set"
    ):
        dls = dblock.weighted_dataloaders(MNIST, wgts, bs=32, seed=0)
    assert calls == {"get_items": 1, "splitter": 1}
    xs, ys = zip(*dls.train)
    xs, ys = torch.cat(xs), torch.cat(ys)
    assert len(ys) == len(dls.train_ds) // 32 * 32 and {dls.vocab[int(c)] for c in ys} == {"7"}
    assert torch.equal(xs, xs[:1].expand_as(xs))


# -- GBM: is_unbalance, scale_pos_weight -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def race_tab(adult):
    return Tabular(
        adult.head(3000),
        procs=[Categorify, FillMissing],
        cat_names=["workclass", "sex"],
        cont_names=["age", "education-num"],
        y_names="race",
        splits=RandomSplitter(0.2, seed=42),
    )


@pytest.mark.parametrize("params", [{"is_unbalance": True}, {"scale_pos_weight": 3.0}, {"unbalance": "true"}])
def test_gbm_refuses_class_weighing_that_lightgbm_ignores_for_several_classes(race_tab, params):
    with pytest.raises(
        ParameterError,
        match=r"ignores it for objective 'multiclass' with 5 classes.*"
        r"compute_sample_weight\('balanced', y\)",
    ):
        GBM("classification", n_estimators=5, n_jobs=1, params=params).fit(race_tab.train)
    # one binary model per class reads it: taken
    GBM("classification", n_estimators=5, n_jobs=1, params={**params, "objective": "multiclassova"}).fit(
        race_tab.train
    )


def test_gbm_refuses_both_ways_of_weighing_the_positive_class_before_lightgbm(adult, capfd):
    tab = Tabular(
        adult.head(3000),
        procs=[Categorify, FillMissing],
        cat_names=["workclass", "sex"],
        cont_names=["age", "education-num"],
        y_names="salary",
        splits=RandomSplitter(0.2, seed=42),
    )
    with pytest.raises(ParameterError, match="two ways of weighing the positive class"):
        GBM(
            "classification", n_estimators=5, n_jobs=1, params={"is_unbalance": True, "scale_pos_weight": 2.0}
        ).fit(tab.train)
    assert "[LightGBM] [Fatal]" not in capfd.readouterr().out
    # either alone weighs a binary model's positive class
    for params in (
        {"is_unbalance": True},
        {"scale_pos_weight": 2.0},
        {"is_unbalance": True, "scale_pos_weight": 1},
    ):
        GBM("classification", n_estimators=5, n_jobs=1, params=params).fit(tab.train)


# -- ensembles: sample_weight ----------------------------------------------------------------------------------------
def test_ensembles_refuse_sample_weight_as_tabular_classifier_does(adult, race_tab):
    gbm = GBM("classification", n_estimators=5, n_jobs=1)
    w = np.ones(len(race_tab.train))
    X, y = adult.head(600).select("age", "education-num", "sex"), adult.head(600)["salary"]
    with pytest.raises(ParameterError) as said:
        TabularClassifier(BaggedModel(gbm, n_folds=3)).fit(X, y, sample_weight=np.ones(len(y)))
    assert "BaggedModel backend does not pass sample_weight on" in str(said.value)
    for name, fit in (
        ("BaggedModel", lambda: BaggedModel(gbm, n_folds=3).fit(race_tab.train, sample_weight=w)),
        ("StackingEnsemble", lambda: StackingEnsemble({"a": gbm}).fit(race_tab.train, sample_weight=w)),
    ):
        with pytest.raises(ParameterError) as e:
            fit()
        assert str(e.value) == str(said.value).replace(
            "BaggedModel", name
        )  # the one message, naming the ensemble
    fitted = gbm.clone().fit(race_tab.train)
    with pytest.raises(ParameterError, match="a WeightedEnsemble backend does not pass sample_weight on"):
        WeightedEnsemble({"a": fitted}).fit(race_tab.valid, sample_weight=np.ones(len(race_tab.valid)))
    with pytest.raises(ParameterError, match="a MeanEnsemble backend does not pass sample_weight on"):
        MeanEnsemble({"a": fitted}).fit(race_tab.valid, sample_weight=np.ones(len(race_tab.valid)))
