"""Labels and targets that are not what the user meant, on real data: classes that differ only by spaces or case, a
0/1 integer read as a regression, numbers taken as classes, the ratings' column guessed wrong, a y_range that cannot
reach its targets; each is said (or refused) with the fix."""

import re
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, DataBlock, GrandparentSplitter, MultiCategoryBlock, RegressionBlock,
                          get_image_files)
from pipekit.datasets import path
from pipekit.tabular import (Categorify, CollabDataLoaders, FillMissing, Normalize, TabularDataLoaders,
                             collab_learner, tabular_learner)
from pipekit.vision import ImageBlock, ImageDataLoaders, Resize

pytestmark = pytest.mark.data
PROCS = [Categorify, FillMissing, Normalize]
CAT = ["workclass", "education"]


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").head(1500)


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(path("movie_lens_sample") / "ratings.csv")


def _said(record: list[warnings.WarningMessage], pattern: str) -> list[str]:
    return [str(w.message) for w in record if re.search(pattern, str(w.message))]


# ---------------------------------------------------------------- classes that differ only by spaces or case
def test_table_target_classes_differing_by_case_or_spaces_are_warned_about(adult, tmp_path):
    every5 = pl.int_range(pl.len()) % 5 == 0
    upper = adult.with_columns(pl.when(every5).then(pl.col("salary").str.to_uppercase()).otherwise(pl.col("salary")))
    with pytest.warns(UserWarning, match=r"the training targets of 'salary' hold classes that differ only by case "
                                         r"\('<50K' and '<50k'; '>=50K' and '>=50k'\).*str.to_lowercase\(\)"):
        dls = TabularDataLoaders.from_df(upper, procs=PROCS, cat_names=CAT, cont_names=["age"], y_names="salary",
                                         bs=64, seed=0)
    assert list(dls.vocab) == ["<50K", "<50k", ">=50K", ">=50k"]  # said, not changed
    # trailing spaces, through a CSV file (from_csv drops only the spaces after each comma)
    csv = tmp_path / "spaced.csv"
    adult.with_columns(pl.when(every5).then(pl.col("salary") + " ").otherwise(pl.col("salary"))).write_csv(csv)
    with pytest.warns(UserWarning, match=r"training targets of 'salary' hold classes that differ only by spaces "
                                         r"around them \('<50k' and '<50k '"):
        TabularDataLoaders.from_csv(csv, procs=PROCS, cat_names=CAT, cont_names=["age"], y_names="salary", bs=64,
                                    seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean classes: nothing said
        TabularDataLoaders.from_df(adult, procs=PROCS, cat_names=CAT, cont_names=["age"], y_names="salary", bs=64,
                                   seed=0)


def test_datablock_labels_differing_by_case_are_warned_about():
    files = get_image_files(path("mnist_tiny"))
    files = [f for f in files if f.parent.parent.name in ("train", "valid")][::10]
    # '7' is 'seven' or 'Seven' by the file's position, '3' is '3' or '3 ': two classes written four ways
    label = {str(f): ("seven" if i % 2 else "Seven") if f.parent.name == "7" else ("3" if i % 2 else "3 ")
             for i, f in enumerate(files)}
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=lambda f: label[str(f)],
                       splitter=GrandparentSplitter())
    with pytest.warns(UserWarning, match=r"the training labels hold classes that differ only by spaces around them "
                                         r"or by case \('3' and '3 '; 'Seven' and 'seven'\).*strip the spaces and "
                                         r"make the case one"):
        dls = dblock.dataloaders(files, bs=16)
    assert list(dls.vocab) == ["3", "3 ", "Seven", "seven"]


# ---------------------------------------------------------------- a 0/1 integer target read as a regression
def test_integer_target_of_few_values_read_as_regression_is_warned_about(adult):
    rich = adult.with_columns((pl.col("salary") == ">=50k").cast(pl.Int64).alias("rich"))
    kw = dict(procs=PROCS, cat_names=CAT, cont_names=["age"], y_names="rich", bs=64, seed=0)
    with pytest.warns(UserWarning, match=r"target column 'rich' holds only the integers \[0, 1\] in the training "
                                         r"rows and is read as a regression \(MSELossFlat.*y_block=CategoryBlock\(\)"):
        dls = TabularDataLoaders.from_df(rich, **kw)
    assert dls.loss_kind == "mse"  # said, not changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the kind asked for, or an integer of many values: nothing said
        assert TabularDataLoaders.from_df(rich, y_block=CategoryBlock(), **kw).c == 2
        assert TabularDataLoaders.from_df(rich, y_block=RegressionBlock(), **kw).loss_kind == "mse"
        TabularDataLoaders.from_df(adult, procs=PROCS, cat_names=CAT, cont_names=["fnlwgt"], y_names="age", bs=64,
                                   seed=0)


# ---------------------------------------------------------------- numbers taken as classes
def test_numeric_target_under_categoryblock_is_refused_briefly_pointing_to_regression(adult):
    weights = adult.with_columns((pl.col("fnlwgt") / 1000.0).alias("w"))
    with pytest.raises(DataError) as e:
        TabularDataLoaders.from_df(weights, procs=PROCS, cat_names=CAT, cont_names=["age"], y_names="w",
                                   y_block=CategoryBlock(), bs=64, seed=0)
    msg = str(e.value)
    assert len(msg) < 800, len(msg)  # the classes shown are the first 20, not all of them
    assert re.search(r"not among the training classes \['\d.*, \.\.\. and \d+ more\]; these labels are numbers "
                     r"\(\d+ distinct\), each a class of its own: for a regression use y_block=RegressionBlock\(\)",
                     msg), msg


def test_fractional_classes_that_fit_are_warned_about(adult):
    # ages as floats, 20 to 72: 53 classes, each seen in training, so nothing fails
    ages = adult.with_columns(pl.col("age").clip(20, 72).cast(pl.Float64).alias("agef"))
    with pytest.warns(UserWarning, match=r"the classes of target 'agef' are numbers, 53 distinct ones, each a class "
                                         r"of its own.*for a regression use y_block=RegressionBlock\(\)"):
        dls = TabularDataLoaders.from_df(ages, procs=PROCS, cat_names=CAT, cont_names=["fnlwgt"], y_names="agef",
                                         y_block=CategoryBlock(), bs=64, seed=0)
    assert dls.c == 53


def _mnist_files(every: int) -> list[Path]:
    return [f for f in get_image_files(path("mnist_tiny")) if f.parent.parent.name in ("train", "valid")][::every]


def test_datablock_number_labels_say_regressionblock():
    files = _mnist_files(4)
    rng = np.random.default_rng(0)
    ys = {str(f): float(rng.uniform(0, 100)) for f in files}  # a label of its own per item
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=lambda f: ys[str(f)],
                       splitter=GrandparentSplitter())
    # (the DataBlock's encoding step relays the labels' DataError)
    with pytest.raises((DataError, PipelineStepError), match=r"these labels are numbers \(\d+ distinct\), each a class of its own: for a "
                                        r"regression use RegressionBlock\(\) as the target block") as e:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dblock.dataloaders(files, bs=16)
    assert "name or id" not in str(e.value)
    # numbers of a few values each seen in training: nothing fails, and it is said
    train = [f for f in files if f.parent.parent.name == "train"]
    valid = [f for f in files if f.parent.parent.name == "valid"]
    ages = {str(f): float(18 + i % 60) for i, f in enumerate(train)} | \
        {str(f): float(18 + i % 30) for i, f in enumerate(valid)}
    frame = pl.DataFrame({"fname": [str(f) for f in train + valid], "age": [ages[str(f)] for f in train + valid],
                          "is_valid": [False] * len(train) + [True] * len(valid)})
    with pytest.warns(UserWarning, match=r"the training labels are numbers, 60 distinct ones, each a class of its own "
                                         r"\(a CategoryBlock\): for a regression use RegressionBlock\(\)"):
        dls = ImageDataLoaders.from_df(frame, valid_col="is_valid", bs=16)
    assert dls.c == 60


# ---------------------------------------------------------------- collaborative filtering: which column is rated
def test_collab_third_column_not_named_like_the_ratings_is_refused(ratings):
    reordered = ratings.select("userId", "movieId", "timestamp", "rating")
    with pytest.raises(DataError, match=r"without rating_name= the ratings are the third column, 'timestamp', but the "
                                        r"table has a column named like ratings, 'rating' .*pass rating_name='rating'"):
        CollabDataLoaders.from_df(reordered, bs=64, seed=42)
    dls = CollabDataLoaders.from_df(reordered, rating_name="rating", bs=64, seed=42)
    assert dls.recipe.processor.y_names == ["rating"]
    # the rating third, under another name the rule knows, is taken as before
    dls = CollabDataLoaders.from_df(ratings.rename({"rating": "Stars"}), bs=64, seed=42)
    assert dls.recipe.processor.y_names == ["Stars"]


def test_y_range_warning_names_the_target_column(ratings):
    dls = CollabDataLoaders.from_df(ratings.select("userId", "movieId", "timestamp", "rating"),
                                    rating_name="timestamp", bs=64, seed=42)
    with pytest.warns(UserWarning, match=r"lie outside it .*The targets are column 'timestamp': if that is not what "
                                         r"to predict, name the right one \(rating_name="):
        collab_learner(dls, n_factors=4, y_range=(0, 5.5))


def test_y_range_whose_bound_many_targets_sit_at_is_warned_about(ratings):
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=42)
    at_5 = int((dls.tabular.train.y.to_numpy() == 5).sum())
    with pytest.warns(UserWarning, match=rf"collab_learner: y_range=\(0, 5\), and {at_5} of 4825 training targets "
                                         rf"\(column 'rating'\) sit exactly at its bounds \({at_5} at 5\).*never "
                                         r"predicted: widen it a little, e.g. y_range=\(0, 5.5\)"):
        collab_learner(dls, n_factors=4, y_range=(0, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collab_learner(dls, n_factors=4, y_range=(0, 5.5))


def test_reversed_y_range_is_refused_without_a_warning_about_targets_outside_it(adult):
    dls = TabularDataLoaders.from_df(adult, procs=PROCS, cat_names=CAT, cont_names=["fnlwgt"], y_names="age", bs=64,
                                     seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(ParameterError, match=r"y_range=\[100, 17\] is not accepted.*low < high"):
            tabular_learner(dls, layers=[8], y_range=(100, 17))
    assert not _said(record, "y_range"), [str(w.message) for w in record]


# ---------------------------------------------------------------- smaller messages
def test_resize_in_batch_tfms_points_to_item_tfms():
    with pytest.raises(ParameterError, match=r"got Resize\(size=64\); Resize is an item transform, run on each item "
                                             r"before batching: it goes in item_tfms \(item_tfms=\[Resize\(size=64\)\]\)"):
        DataBlock(blocks=(ImageBlock, CategoryBlock), batch_tfms=Resize(64))


def test_test_dl_with_labels_on_unlabelled_files_points_to_with_labels_false(mnist_dls):
    test = sorted(get_image_files(path("mnist_tiny") / "test"))[:10]
    with pytest.raises(DataError, match=r"label\(s\) \['test'\] .* are not in the training labels .*; for new items "
                                        r"without labels \(a test set\) pass with_labels=False"):
        mnist_dls.test_dl(test, with_labels=True)
    assert len(mnist_dls.test_dl(test, with_labels=False).dataset) == 10


def test_multi_label_tables_are_refused_saying_what_to_do_and_the_readme_says_so(adult):
    flags = adult.with_columns((pl.col("salary") == ">=50k").alias("rich"), (pl.col("age") > 45).alias("old"))
    with pytest.raises(ParameterError, match=r"\(several labels per row\) is not supported for tables; train one "
                                             r"classifier per label instead: y_names= each of \['rich', 'old'\] in "
                                             r"turn, with y_block=CategoryBlock\(\)"):
        TabularDataLoaders.from_df(flags, procs=PROCS, cat_names=CAT, cont_names=["fnlwgt"], y_names=["rich", "old"],
                                   y_block=MultiCategoryBlock(encoded=True, vocab=["rich", "old"]))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert re.search(r"multi-label tables \(fastai's `y_block=MultiCategoryBlock\(encoded=True, vocab=\[\.\.\.\]\)`"
                     r"[^|]*\) are not supported: train one classifier per label column", readme)
