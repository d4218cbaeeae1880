"""Degenerate data built from the real data sets (one class, no rows, no labels, no ratings, a row that is no row, a
column of NaN): each trains as fastai trains it or is refused early, with a pipekit error that names what is wrong
and says what to do."""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from pipekit.core.errors import DataError, ParameterError, PipekitError
from pipekit.data import DataBlock, GrandparentSplitter, MultiCategoryBlock, RegressionBlock, get_image_files
from pipekit.data.blocks import MultiCategorize
from pipekit.learn import ClassificationInterpretation, Interpretation, accuracy, error_rate
from pipekit.metrics import as_metric
from pipekit.tabular import Categorify, CollabDataLoaders, Normalize, TabularDataLoaders, tabular_learner
from pipekit.vision import ImageBlock, ImageDataLoaders, Resize, resnet18, vision_learner

pytestmark = pytest.mark.data

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT, MNIST = DATA / "adult_sample" / "adult.csv", DATA / "mnist_tiny"
RATINGS = DATA / "movie_lens_sample" / "ratings.csv"


def mnist_subset(root: Path, classes: tuple[str, ...], n_train: int = 6, n_valid: int = 3) -> Path:
    """A few of mnist_tiny's images of ``classes``, in its train/valid folders."""
    for sub, n in (("train", n_train), ("valid", n_valid)):
        for cls in classes:
            (root / sub / cls).mkdir(parents=True)
            for f in sorted((MNIST / sub / cls).iterdir())[:n]:
                shutil.copy(f, root / sub / cls / f.name)
    return root


def adult(n: int = 200) -> pl.DataFrame:
    return pl.read_csv(ADULT, n_rows=n)


# 1. a one-class classifier scores accuracy 1 and error_rate 0, as fastai's does
def test_one_class_classifier_fits_with_accuracy_and_error_rate(tmp_path):
    root = mnist_subset(tmp_path / "one_class", ("3",))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        dls = ImageDataLoaders.from_folder(root, valid="valid", item_tfms=Resize(28), bs=4)
    assert any("single class '3'" in str(w.message) and "its accuracy 1" in str(w.message) for w in said)
    assert dls.c == 1
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=[accuracy, error_rate])
    learn.fit(1, 1e-3)
    assert learn.recorder.values[-1][2:] == [1.0, 0.0]
    assert learn.validate()[1:] == [1.0, 0.0]


def test_single_output_binary_model_is_still_refused_by_accuracy(tmp_path):
    """Two classes and a model of one output: the arg-max of one column says nothing, and accuracy says so."""
    from torch import nn

    from pipekit.learn import BCEWithLogitsLossFlat, Learner

    root = mnist_subset(tmp_path / "two", ("3", "7"), n_train=4, n_valid=2)
    dls = ImageDataLoaders.from_folder(root, valid="valid", item_tfms=Resize(28), bs=4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 1))
    learn = Learner(dls, model, loss_func=BCEWithLogitsLossFlat(), metrics=accuracy)
    with pytest.raises(ParameterError, match="accuracy_multi"):
        learn.validate()
    # and called on tensors alone, with no data to read the classes from
    with pytest.raises(ParameterError, match="one score per item"):
        accuracy(torch.zeros(4, 1), torch.tensor([0, 1, 0, 1]))


# 2. ClassificationInterpretation refuses a regression learner; multi_label is read from the target block
def regression_learner():
    dls = TabularDataLoaders.from_df(adult(100), cat_names=["workclass"], cont_names=["age"], y_names="hours-per-week",
                                     y_block=RegressionBlock(), valid_idx=[97, 98, 99], bs=16)
    return tabular_learner(dls, layers=[8])


def test_classification_interpretation_refuses_a_regression_learner():
    learn = regression_learner()
    with pytest.raises(ParameterError, match=r"needs a classifier; this learner predicts numbers \(hours-per-week\).*"
                                             r"Interpretation\.from_learner\(learn\)\.top_losses\(\)"):
        ClassificationInterpretation.from_learner(learn)
    losses, idxs = Interpretation.from_learner(learn).top_losses()
    assert len(losses) == 3 and sorted(idxs.tolist()) == [0, 1, 2]


def test_multi_label_is_read_from_the_target_block():
    """(n, 1) targets shaped like the predictions are a regression's here, not one label of a multi-label model."""
    it = Interpretation.from_learner(regression_learner())
    assert tuple(it.targs.shape) == tuple(it.preds.shape) == (3, 1)
    assert not ClassificationInterpretation(it.learn, it.dl, it.inputs, it.preds, it.targs, it.decoded,
                                            it.losses).multi_label
    dls = TabularDataLoaders.from_df(adult(100), cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                     valid_idx=list(range(80, 100)), bs=16)
    interp = ClassificationInterpretation.from_learner(tabular_learner(dls, layers=[8]))
    assert not interp.multi_label and interp.confusion_matrix().sum() == 20


# 3. ratings with no rows, or no rating in any row
def test_collab_csv_with_a_header_only(tmp_path):
    f = tmp_path / "ratings.csv"
    f.write_text(RATINGS.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match=r"ratings\.csv has a header but no rows; there is nothing to train on"):
        CollabDataLoaders.from_csv(f)


def test_collab_csv_with_every_rating_empty(tmp_path):
    ratings = pl.read_csv(RATINGS, n_rows=20)
    f = tmp_path / "ratings.csv"
    ratings.with_columns(pl.lit(None).alias("rating")).write_csv(f)
    with pytest.raises(DataError, match=rf"'rating' is empty in all 20 rows of {f}"):
        CollabDataLoaders.from_csv(f)
    with pytest.raises(DataError, match=r"'rating' is empty in all 20 rows of the ratings table"):
        CollabDataLoaders.from_df(pl.read_csv(f))


# 4. multi-label targets with no label at all
def test_multi_category_block_with_every_label_list_empty(tmp_path):
    root = mnist_subset(tmp_path / "small", ("3", "7"), n_train=3, n_valid=2)
    block = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_items=get_image_files, get_y=lambda p: [],
                      splitter=GrandparentSplitter(), item_tfms=Resize(28))
    with pytest.raises(PipekitError, match=r"MultiCategoryBlock.*every one of the 6 training items has an empty label "
                                           r"list.*check get_y.*label_delim") as e:
        block.dataloaders(root, bs=4)
    assert isinstance(e.value, DataError) or isinstance(e.value.__cause__, DataError)
    with pytest.raises(DataError, match="empty label list"):  # text split at label_delim into nothing
        MultiCategorize(label_delim=" ").setup(pl.Series(["", " "]))


# 5. a tabular model given an image; a metric given by name
def test_tabular_predict_on_an_image_says_what_a_row_is():
    dls = TabularDataLoaders.from_df(adult(200), cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                     valid_idx=list(range(150, 200)), bs=16)
    learn = tabular_learner(dls, layers=[8])
    img = Image.open(sorted((MNIST / "train" / "7").iterdir())[0])
    for item in (img, 3, np.zeros((28, 28)), pl.Series("age", [30])):
        with pytest.raises(DataError, match=r"a table's model predicts on a row, a dict \(\{column: value\}\), a "
                                            r"pandas Series or a one-row DataFrame"):
            learn.predict(item)
    row = adult(1).to_pandas().iloc[0]
    assert learn.predict(row)[0] in ("<50k", ">=50k")


def test_metric_given_as_a_string_names_it_and_the_fix():
    with pytest.raises(ParameterError, match=r"metrics='accuracy' is a str: pass the metric itself \(accuracy, from "
                                             r"pipekit\.learn\)"):
        as_metric("accuracy")
    with pytest.raises(ParameterError, match=r"metrics='nope' is a str: pass the metric itself"):
        as_metric("nope")


# 6. NaN in a continuous column with no FillMissing: warned when the table is built
def test_nan_in_a_continuous_column_without_fill_missing_is_warned():
    df = adult(300).with_columns(pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("age"))
                                 .alias("age"))
    with warnings.catch_warnings():  # the data alone: a forest or LightGBM takes missing values as they are
        warnings.filterwarnings("error", message=".*FillMissing.*")
        dls = TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names=["workclass"],
                                         cont_names=["age", "fnlwgt"], y_names="salary", valid_pct=0.2, seed=0)
    n_train = int(dls.tabular.train.conts["age"].is_null().sum() + dls.tabular.train.conts["age"].is_nan().sum())
    assert 0 < n_train < 100
    with pytest.warns(UserWarning, match=rf"continuous column 'age' \({n_train} of {len(dls.tabular.train.frame)} "
                                         r"rows\) holds null, NaN or inf values.*add FillMissing to procs"):
        tabular_learner(dls, layers=[8])
    with warnings.catch_warnings():  # FillMissing in procs: nothing to warn of
        warnings.filterwarnings("error", message=".*FillMissing.*")
        tabular_learner(TabularDataLoaders.from_df(df, cat_names=["workclass"], cont_names=["age", "fnlwgt"],
                                                   y_names="salary", valid_pct=0.2, seed=0), layers=[8])
