"""A Learner's metrics and loss are checked against its data's kind of target (``dls.loss_kind``) when it is made:
a metric of another kind (rmse of classes, accuracy of ratings, accuracy_multi of one class per item) and a loss that
cannot read the targets (MSELossFlat of classes, CrossEntropyLossFlat of ratings) are refused, naming the targets and
what fits them, rather than giving a number that means nothing or failing inside torch after an epoch. A function of
the user's is never refused."""
from __future__ import annotations

import warnings

import polars as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (
    CategoryBlock, DataBlock, GrandparentSplitter, MultiCategoryBlock, RegressionBlock, get_image_files, parent_label,
)
from pipekit.learn import (
    AccumMetric, BCEWithLogitsLossFlat, CrossEntropyLossFlat, FocalLossFlat, L1LossFlat, Learner, MSELossFlat,
)
from pipekit.metrics import (
    Accuracy, F1Score, F1ScoreMulti, R2Score, RocAucBinary, accuracy, accuracy_multi, error_rate, mae, rmse,
)
from pipekit.tabular import Categorify, CollabDataLoaders, FillMissing, Normalize, TabularDataLoaders, collab_learner
from pipekit.tabular import tabular_learner
from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner
from pipekit.vision import ImageBlock, Resize, vision_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(600)


@pytest.fixture(scope="module")
def salary(adult):
    """The book's adult classifier: two classes of 'salary'."""
    return TabularDataLoaders.from_df(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"],
                                      cont_names=["age"], y_names="salary", bs=64, seed=0)


@pytest.fixture(scope="module")
def ages(adult):
    """A regression of 'age'."""
    return TabularDataLoaders.from_df(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"],
                                      cont_names=["fnlwgt"], y_names="age", bs=64, seed=0)


@pytest.fixture(scope="module")
def ratings():
    return CollabDataLoaders.from_df(pl.read_csv(D.path("movie_lens_sample") / "ratings.csv"), bs=64, seed=42)


@pytest.fixture(scope="module")
def multi_label():
    """mnist_tiny's digits with a second label on every image: several 0/1 labels per item."""
    root = D.path("mnist_tiny")
    files = sorted(get_image_files(root / "train"))[::20] + sorted(get_image_files(root / "valid"))[::20]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_y=lambda f: [parent_label(f), "digit"],
                         splitter=GrandparentSplitter(), item_tfms=Resize(28)).dataloaders(files, bs=8)


def _collab(dls, **kwargs):
    return collab_learner(dls, n_factors=4, y_range=(0, 5.5), **kwargs)


# 1. metrics against the kind of target
@pytest.mark.parametrize("metric", [accuracy, error_rate, F1Score(), F1ScoreMulti(), accuracy_multi, RocAucBinary()])
def test_collab_ratings_refuse_metrics_of_classes_and_labels(ratings, metric):
    # these scored ratings as 0.0, 1.0 or 0.4992 without a word, or failed after a whole epoch
    with pytest.raises(ParameterError, match=r"targets are numbers \(RegressionBlock of 'rating'\): use rmse, mae"):
        _collab(ratings, metrics=metric)


@pytest.mark.parametrize("metric", [rmse, mae, R2Score()])
def test_a_classifier_refuses_metrics_of_numbers(salary, metric):
    with pytest.raises(ParameterError) as e:
        tabular_learner(salary, layers=[8], metrics=[accuracy, metric])
    msg = str(e.value)
    assert f"the metric {metric.name} scores numbers" in msg
    assert "classes (one per item) ['<50k', '>=50k'] (CategoryBlock of 'salary')" in msg
    assert "use accuracy, error_rate, F1Score()" in msg and "y_block=RegressionBlock()" in msg


def test_accuracy_multi_of_one_class_per_item_is_refused(salary):
    # silently 0.62 with batches of 2 items (one per class), a torch error with others
    with pytest.raises(ParameterError, match=r"accuracy_multi scores several 0/1 labels per item .* targets are "
                                             r"classes \(one per item\) \['<50k', '>=50k'\]"):
        tabular_learner(salary, layers=[8], metrics=accuracy_multi)
    with pytest.raises(ParameterError, match=r"the metric f1_score \(F1ScoreMulti\) scores several 0/1 labels"):
        tabular_learner(salary, layers=[8], metrics=F1ScoreMulti())  # its recorded name is F1Score's


def test_accuracy_of_a_regression_says_use_a_metric_of_numbers(ages):
    with pytest.raises(ParameterError) as e:
        tabular_learner(ages, layers=[8], metrics=accuracy)
    msg = str(e.value)
    assert "targets are numbers (RegressionBlock of 'age'): use rmse, mae or R2Score()" in msg
    assert "if the numbers are classes, y_block=CategoryBlock()" in msg and "accuracy_multi" not in msg


def test_accuracy_told_of_a_regression_no_longer_advises_accuracy_multi(adult):
    """Accuracy's own refusal of one output per item reads the data's kind (the Recorder tells it): a regression is
    pointed to rmse, a single-output binary model to accuracy_multi, and unknown data to both."""
    y = torch.tensor(adult["age"].to_numpy()[:16], dtype=torch.float32).reshape(-1, 1)
    m = Accuracy()
    m.set_classes(None, "mse")
    with pytest.raises(ParameterError) as e:
        m.accumulate(y + 1.0, y)  # as a Learner's validation pass does
    assert "use rmse, mae or R2Score()" in str(e.value) and "accuracy_multi" not in str(e.value)
    m.set_classes(2, "cross_entropy")
    with pytest.raises(ParameterError, match="single-output binary model use accuracy_multi") as e:
        m.accumulate(y, (y > 40).long())
    assert "rmse" not in str(e.value)
    with pytest.raises(ParameterError, match=r"for a regression .*rmse.*; for a single-output binary model"):
        accuracy(y, y)


def test_a_multi_label_target_refuses_metrics_of_numbers(multi_label):
    with pytest.raises(ParameterError, match=r"rmse scores numbers, and this learner's targets are several 0/1 labels "
                                             r"per item \(multi-label\) \['3', '7', 'digit'\] \(MultiCategoryBlock\): "
                                             r"use accuracy_multi"):
        vision_learner(multi_label, "simple_cnn", metrics=rmse)


def test_setting_metrics_or_loaders_checks_them_again(salary, ages):
    learn = tabular_learner(salary, layers=[8], metrics=accuracy)
    with pytest.raises(ParameterError, match="rmse scores numbers"):
        learn.metrics = [accuracy, rmse]
    assert [m.name for m in learn.metrics] == ["accuracy"]  # refused: the metrics are as they were
    with pytest.raises(ParameterError, match=r"accuracy scores classes .* targets are numbers"):
        learn.dls = ages
    assert learn.dls is salary
    learn.metrics = error_rate
    learn.dls = salary  # loaders of the same kind pass


def test_the_pairs_that_fit_are_accepted(salary, ages, ratings, multi_label):
    def share_positive(pred, targ):  # a function of the user's scores whatever it is given
        return (pred[:, -1] > 0).float().mean() if pred.ndim == 2 else (pred > 0).float().mean()

    kappa = AccumMetric(lambda p, t: 0.5, name="kappa", flatten=False)
    learn = tabular_learner(salary, layers=[8], metrics=[accuracy, error_rate, F1Score(), share_positive, kappa])
    with learn.no_bar(), learn.no_logging():
        assert len(learn.validate()) == 6
    assert tabular_learner(ages, layers=[8], metrics=[rmse, mae, R2Score(), share_positive]).metrics
    assert _collab(ratings, metrics=[rmse, share_positive, kappa]).metrics
    assert vision_learner(multi_label, "simple_cnn", metrics=[accuracy_multi, F1ScoreMulti(), share_positive]).metrics


def test_a_single_output_binary_model_takes_the_multi_label_metrics(salary):
    """Two classes read as one 0/1 label per item (BCEWithLogitsLossFlat, one output): accuracy_multi scores them."""
    learn = tabular_learner(salary, layers=[8], n_out=1, loss_func=BCEWithLogitsLossFlat(), metrics=accuracy_multi)
    with learn.no_bar(), learn.no_logging():
        loss, acc = learn.validate()
    assert 0 <= acc <= 1


# 2. the loss against the kind of target
class _Counted(nn.Module):
    """A model that counts its calls: a loss refused by the kinds alone runs no batch."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, *x):
        self.calls += 1
        return self.model(*x)


def test_a_loss_of_numbers_on_classes_is_refused_without_running_a_batch(salary):
    base = tabular_learner(salary, layers=[8]).model
    for loss in (MSELossFlat(), L1LossFlat(), nn.MSELoss()):
        model = _Counted(base)
        with pytest.raises(ParameterError) as e:
            Learner(salary, model, loss_func=loss)
        msg = str(e.value)
        assert f"loss_func={type(loss).__name__} reads numbers" in msg or "reads several 0/1 labels" in msg
        assert "classes (one per item) ['<50k', '>=50k'] (CategoryBlock of 'salary')" in msg
        assert "leave loss_func out (CrossEntropyLossFlat reads them)" in msg and "RegressionBlock()" in msg
        assert model.calls == 0


def test_tabular_learner_with_mse_on_classes_is_refused(salary):
    # tabular_learner(dls, loss_func=MSELossFlat()) failed at the first batch: size of tensor a (128) vs b (64)
    with pytest.raises(ParameterError, match="loss_func=MSELossFlat reads numbers"):
        tabular_learner(salary, layers=[8], loss_func=MSELossFlat(), metrics=accuracy)


def test_bce_on_two_classes_needs_a_model_of_one_output(salary):
    with pytest.raises(ParameterError, match=r"this model gives 2 scores per item .* leave loss_func out "
                                             r"\(CrossEntropyLossFlat .*n_out=1"):
        tabular_learner(salary, layers=[8], loss_func=BCEWithLogitsLossFlat(), metrics=error_rate)
    assert tabular_learner(salary, layers=[8], n_out=1, loss_func=BCEWithLogitsLossFlat()).loss_func is not None


def test_bce_on_more_classes_is_refused(adult):
    dls = TabularDataLoaders.from_df(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["sex"],
                                     cont_names=["age"], y_names="race", bs=64, seed=0)
    assert dls.c > 2
    with pytest.raises(ParameterError, match=r"BCEWithLogitsLossFlat reads several 0/1 labels per item .* "
                                             r"leave loss_func out \(CrossEntropyLossFlat reads them\)"):
        tabular_learner(dls, layers=[8], loss_func=BCEWithLogitsLossFlat())


def test_collab_with_cross_entropy_is_refused(ratings):
    with pytest.raises(ParameterError, match=r"loss_func=CrossEntropyLossFlat reads classes .* targets are numbers "
                                             r"\(RegressionBlock of 'rating'\): leave loss_func out \(MSELossFlat"):
        _collab(ratings, loss_func=CrossEntropyLossFlat())


def test_multi_label_with_cross_entropy_is_refused(multi_label):
    with pytest.raises(ParameterError, match=r"CrossEntropyLossFlat reads classes .* several 0/1 labels per item .*"
                                             r"leave loss_func out \(BCEWithLogitsLossFlat reads them\)"):
        vision_learner(multi_label, "simple_cnn", loss_func=CrossEntropyLossFlat())


def test_text_classifier_with_mse_is_refused():
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(24), df.filter(pl.col("is_valid")).head(8)])
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=8, seed=0)
    config = dict(emb_sz=16, n_hid=16, n_layers=1)
    with pytest.raises(ParameterError, match=r"loss_func=MSELossFlat reads numbers .* classes \(one per item\) "
                                             r"\['negative', 'positive'\]"):
        text_classifier_learner(dls, AWD_LSTM, config=config, pretrained=False, loss_func=MSELossFlat(),
                                metrics=accuracy)


def test_losses_that_read_the_targets_and_functions_of_the_user_are_accepted(salary, ages, ratings):
    assert isinstance(tabular_learner(salary, layers=[8], loss_func=FocalLossFlat()).loss_func, FocalLossFlat)
    assert isinstance(tabular_learner(ages, layers=[8], loss_func=L1LossFlat()).loss_func, L1LossFlat)
    assert isinstance(_collab(ratings, loss_func=nn.MSELoss()).loss_func, nn.MSELoss)

    def my_loss(pred, targ):  # the user's: may read the targets any way it likes
        return F.cross_entropy(pred, targ.long().reshape(-1))

    assert tabular_learner(salary, layers=[8], loss_func=my_loss).loss_func is my_loss
    assert RegressionBlock().loss_kind == "mse"  # the kind the refusals above name


def test_vision_learner_says_which_loss_reads_the_targets_when_a_users_loss_fails():
    root = D.path("mnist_tiny")
    files = sorted(get_image_files(root / "train"))[::20] + sorted(get_image_files(root / "valid"))[::20]
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=parent_label, splitter=GrandparentSplitter(),
                    item_tfms=Resize(28)).dataloaders(files, bs=8)

    def sigmoid_loss(pred, targ):  # a function of the user's: not checked by kind, run on two items
        return F.binary_cross_entropy_with_logits(pred, targ)

    with pytest.raises(ParameterError, match=r"the loss cannot be computed .*; these targets are classes \(one per "
                                             r"item\) \['3', '7'\] \(CategoryBlock\): CrossEntropyLossFlat reads them"):
        vision_learner(dls, "simple_cnn", loss_func=sigmoid_loss)


def test_a_file_exported_with_a_metric_of_other_targets_loads_without_it(salary, tmp_path):
    """A learner exported before the check could hold rmse of classes: loading the file leaves that metric out with
    a warning naming it, and the learner predicts and validates with the metrics that score its targets."""
    from file_edits import edited_copy

    from pipekit.learn import load_learner

    learn = tabular_learner(salary, layers=[8], metrics=[accuracy])
    fname = learn.export(tmp_path / "ok.pipekit")

    def add_rmse(record):
        first = record["metrics"][0]
        record["metrics"].append({**first, "class": "pipekit.metrics.RMSE", "params": {}})

    old = edited_copy(fname, add_rmse, tmp_path / "old.pipekit")
    with pytest.warns(UserWarning, match=r"the metric rmse scores numbers.*validates without it"):
        loaded = load_learner(old)
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    loaded.dls = salary
    assert len(loaded.validate()) == 2  # the loss and the accuracy


def test_every_torch_loss_an_export_records_says_what_targets_it_reads():
    """The losses a file can name (export's TORCH_LOSSES) and those whose targets are known agree, so none is left
    unchecked at load or when a Learner is made."""
    from pipekit.learn.export import TORCH_LOSSES
    from pipekit.learn.losses import TORCH_LOSS_TARGETS, loss_target_kinds

    assert set(TORCH_LOSS_TARGETS) == set(TORCH_LOSSES)
    assert loss_target_kinds(nn.NLLLoss()) == ("cross_entropy", "pixel_cross_entropy")
    assert loss_target_kinds(nn.MultiMarginLoss()) is None  # not one a file names: not checked
