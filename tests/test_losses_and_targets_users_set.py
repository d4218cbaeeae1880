"""Losses and targets as users set them: a loss object of the user's with its own activation and decoding, a range
per regression target, a binary cross-entropy on numbers, and n_out against the number of regression targets."""
from __future__ import annotations

import os
import warnings

import polars as pl
import pytest
import torch
import torch.nn.functional as F

import pipekit.datasets as D
from pipekit.core.errors import ExportError, ParameterError
from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock
from pipekit.learn import BaseLoss, BCEWithLogitsLossFlat, Learner
from pipekit.learn.nets import MLP
from pipekit.tabular import TabularDataLoaders, tabular_learner

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs the real data sets (PIPEKIT_DATA)")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(600)


def _salary_dls(df: pl.DataFrame) -> TabularDataLoaders:
    return TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                      cont_names=["fnlwgt", "education-num"], valid_idx=list(range(480, 600)),
                                      bs=64, seed=0)


def _two_numbers(df: pl.DataFrame) -> TabularDataLoaders:
    return TabularDataLoaders.from_df(df, y_names=["age", "hours-per-week"], y_block=RegressionBlock(n_out=2),
                                      cat_names=["workclass"], cont_names=["fnlwgt"],
                                      valid_idx=list(range(480, 600)), bs=64, seed=0)


class Tempered:
    """A loss as fastai's are written: a callable with activation and decodes (here a softmax at temperature 2,
    and a decoding that flips the class, so that its use shows)."""

    def __call__(self, out: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, targ.long().view(-1))

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x / 2.0, dim=-1)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return 1 - x.argmax(-1)


def test_users_loss_activation_and_decodes_are_applied(adult, tmp_path):
    torch.manual_seed(0)
    learn = tabular_learner(_salary_dls(adult), layers=[16], loss_func=Tempered(), path=tmp_path)
    learn.fit(1, 1e-2)
    logits = learn.get_preds(act=lambda x: x)[0]
    preds, _, decoded = learn.get_preds(with_decoded=True)
    assert torch.allclose(preds, F.softmax(logits / 2.0, dim=-1), atol=1e-6)
    assert torch.equal(decoded, 1 - logits.argmax(-1))
    row = adult.row(500, named=True)
    label, idx, probs = learn.predict(row)
    one = learn.get_preds(dl=learn.dls.test_dl([row]), act=lambda x: x)[0][0]
    assert torch.allclose(probs, F.softmax(one / 2.0, dim=-1), atol=1e-6)
    assert int(idx) == 1 - int(one.argmax()) and label == learn.dls.vocab[int(idx)]
    # a file holds no code: export refuses, rather than load a learner predicting with another activation
    with pytest.raises(ExportError, match=r"'Tempered' has its own activation and decodes.*BaseLoss.*register"):
        learn.export(tmp_path / "tempered.pipekit")


def test_plain_function_loss_keeps_raw_outputs(adult, tmp_path):
    learn = tabular_learner(_salary_dls(adult), layers=[16], path=tmp_path,
                            loss_func=lambda o, t: F.cross_entropy(o, t.long().view(-1)))
    preds, _, decoded = learn.get_preds(with_decoded=True)
    assert torch.equal(preds, learn.get_preds(act=lambda x: x)[0]) and torch.equal(decoded, preds)


class SalaryAndSex(BaseLoss):
    """A loss of the user's over two class targets, subclassing BaseLoss as the docs advise, with no activation or
    decodes of its own."""

    def forward(self, out: torch.Tensor, salary: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        return (F.cross_entropy(out[:, :2], salary.long().view(-1))
                + F.cross_entropy(out[:, 2:], sex.long().view(-1)))


def test_base_loss_subclass_over_two_targets_predicts_each_label(adult, tmp_path):
    # BaseLoss's identity activation and decodes are not the loss's own: predict reads each target from its slice
    db = DataBlock(blocks=(RegressionBlock, CategoryBlock, CategoryBlock), n_inp=1, get_x=ColReader("age"),
                   get_y=[ColReader("salary"), ColReader("sex")], splitter=RandomSplitter(0.2, seed=0))
    dls = db.dataloaders(adult.select("age", "salary", "sex").with_columns(pl.col("age").cast(pl.Float64)), bs=64)
    torch.manual_seed(0)
    learn = Learner(dls, MLP(1, 4, layers=[8]), loss_func=SalaryAndSex(), path=tmp_path)
    labels, idx, outputs = learn.predict({"age": 40.0})
    salary, sex = dls.vocab
    assert torch.equal(idx, torch.stack([outputs[:2].argmax(), outputs[2:].argmax()]))
    assert labels == (salary[int(idx[0])], sex[int(idx[1])])
    preds = learn.get_preds(dl=dls.test_dl([{"age": 40.0}]), act=lambda x: x)[0]
    assert torch.equal(learn.get_preds(dl=dls.test_dl([{"age": 40.0}]))[0], preds)  # outputs as the model gives


def test_range_per_regression_target(adult, tmp_path):
    import pipekit

    dls = _two_numbers(adult)
    lows, highs = torch.tensor([10.0, 0.0]), torch.tensor([95.0, 110.0])
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[16], y_range=(lows, highs), path=tmp_path)
    learn.fit(1, 1e-2)
    preds = learn.get_preds()[0]
    assert preds.shape[1] == 2
    assert bool(((preds >= lows) & (preds <= highs)).all())
    # each column squashed into its own range: sigmoid_range of the same activations with each column's bounds
    xb = dls.valid.one_batch()
    learn.model.eval()
    with torch.no_grad():
        out = learn.model(*xb[:2])
        learn.model.y_range = None
        act = learn.model(*xb[:2])
        learn.model.y_range = ([10.0, 0.0], [95.0, 110.0])
    assert torch.allclose(out, torch.sigmoid(act) * (highs - lows) + lows, atol=1e-4)
    file = learn.export(tmp_path / "ranges.pipekit")
    loaded = pipekit.load_learner(file)
    row = adult.row(500, named=True)
    assert torch.allclose(loaded.predict(row)[2], learn.predict(row)[2], atol=1e-5)
    # a list of lists and a wrong number of ranges
    tabular_learner(dls, layers=[16], y_range=[[10, 0], [95, 110]])
    with pytest.raises(ParameterError, match=r"range for each of 3 targets, and the model gives 2 outputs"):
        tabular_learner(dls, layers=[16], y_range=([1, 2, 3], [4, 5, 6]))


def test_out_of_range_warning_is_per_target(adult):
    dls = _two_numbers(adult)
    with pytest.warns(UserWarning, match=r"lie outside it: \d+ of 480 of column 'hours-per-week' \(they run from "
                                         r"\d+ to 99, its range \(0, 60\)\)") as rec:
        tabular_learner(dls, layers=[16], y_range=(0, 100))
        tabular_learner(dls, layers=[16], y_range=([0, 0], [100, 60]))
    text = " ".join(str(w.message) for w in rec)
    assert "'age'" not in text.split("lie outside it")[1].split("predictions")[0]  # age (17..90) fits its range
    assert "y_range=([0, 0], [100, " in text  # one suggested range per target, age's kept


def test_bce_refused_on_numbers(adult):
    dls = _two_numbers(adult)
    for lf in (BCEWithLogitsLossFlat(), torch.nn.BCEWithLogitsLoss()):
        with pytest.raises(ParameterError, match=r"reads 0/1 labels.*'age' \(from 17 to \d+\), 'hours-per-week' "
                                                 r"\(from \d+ to \d+\).*MSELossFlat\(\).*MultiCategoryBlock"):
            tabular_learner(dls, layers=[16], loss_func=lf)


def test_n_out_against_regression_targets(adult):
    dls = _two_numbers(adult)
    with pytest.raises(ParameterError, match=r"the model gives 3 scores per item but the data has 2 regression "
                                             r"target\(s\) \['age', 'hours-per-week'\]; pass n_out=2"):
        tabular_learner(dls, layers=[16], n_out=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert tabular_learner(dls, layers=[16], n_out=2).model.layers[-1].out_features == 2


def test_rossmann_range_per_target_and_bce(tmp_path):
    df = pl.read_csv(D.path("rossmann_sample") / "train.csv", infer_schema_length=10000).head(800)
    dls = TabularDataLoaders.from_df(df, y_names=["Sales", "Customers"], y_block=RegressionBlock(n_out=2),
                                     cat_names=["DayOfWeek", "Promo"], cont_names=["Store"],
                                     valid_idx=list(range(640, 800)), bs=64, seed=0)
    highs = [float(df["Sales"].max()) * 1.2, float(df["Customers"].max()) * 1.2]
    learn = tabular_learner(dls, layers=[16], y_range=(-1, highs), path=tmp_path)  # a shared low, broadcast
    assert learn.model.y_range == ([-1.0, -1.0], highs)
    preds = learn.get_preds()[0]
    assert bool((preds[:, 1] <= highs[1]).all()) and bool((preds[:, 0] > highs[1]).any())
    with pytest.raises(ParameterError, match=r"'Sales' \(from 0 to \d+\), 'Customers'"):
        tabular_learner(dls, layers=[16], loss_func=BCEWithLogitsLossFlat())
