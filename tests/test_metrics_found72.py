"""Metrics and contributions checked against scikit-learn's and fastai's numbers on adult and rossmann: ROC-AUC and
log loss of a single-output binary model, a GBM regressor's log-link contributions, paired_difference with
weighted rows, a two-class GBM trained with the multiclass objective, 1-D probabilities given as labels, and the
thresholds of the multi-label metrics."""

from __future__ import annotations

import functools

import numpy as np
import polars as pl
import pytest
import sklearn.metrics as skm
import torch

import pipekit.datasets as D
import pipekit.inspection.explain as explain
from pipekit.backends import GBM, RandomForest
from pipekit.core import DataError, ParameterError
from pipekit.inspection import contributions, waterfall_plot
from pipekit.metrics import (AccuracyMulti, F1Score, F1ScoreMulti, FBetaMulti, HammingLossMulti, JaccardMulti,
                             LogLoss, PrecisionMulti, RecallMulti, RocAuc, RocAucBinary, accuracy, accuracy_multi,
                             error_rate, get_metric, paired_difference, skm_to_fastai)
from pipekit.tabular import Categorify, FillMissing, Tabular


@pytest.fixture(scope="module")
def adult():
    return pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=4000)


@pytest.fixture(scope="module")
def adult_tab(adult):
    df = adult.head(3000)
    return Tabular(df, procs=[Categorify, FillMissing], cat_names=["workclass", "education", "relationship"],
                   cont_names=["age", "fnlwgt", "hours-per-week"], y_names="salary",
                   splits=(list(range(2500)), list(range(2500, 3000))))


@pytest.fixture(scope="module")
def rossmann_tab():
    df = pl.read_csv(D.path("rossmann_sample") / "train.csv", n_rows=4000,
                     infer_schema_length=10000).filter(pl.col("Sales") > 0)
    return Tabular(df, procs=[Categorify], cat_names=["Store", "DayOfWeek"], cont_names=["Promo", "SchoolHoliday"],
                   y_names="Sales", y_block="regression", splits=(list(range(3000)), list(range(3000, df.height))))


def _waterfall(monkeypatch, c, **kw):
    """The figure waterfall_plot draws, its title and its last row's label."""
    got = {}
    monkeypatch.setattr(explain, "savefig_or_show", lambda fig, path, name: got.setdefault("fig", fig))
    waterfall_plot(c, **kw)
    ax = got["fig"].axes[0]
    return ax.get_title(), ax.get_yticklabels()[-1].get_text()


# ------------------------------------------------------------------ a single-output binary model's ROC-AUC, log loss
def test_rocauc_and_logloss_of_a_single_output_binary_learner_are_scikit_learns(adult):
    import pipekit
    from pipekit.learn import BCEWithLogitsLossFlat
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    pipekit.set_seed(0)
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=["workclass", "education", "relationship"],
                                     cont_names=["age", "hours-per-week"], valid_idx=list(range(3200, 4000)), bs=256)
    learn = tabular_learner(dls, n_out=1, loss_func=BCEWithLogitsLossFlat(),
                            metrics=[RocAuc(), RocAucBinary(), LogLoss()])
    learn.fit(1, 1e-2)
    _, auc, auc_binary, logloss = learn.validate()
    preds, targs = learn.get_preds()  # the sigmoid of the one logit: the positive class's probability
    p, t = np.asarray(preds).reshape(-1), np.asarray(targs).reshape(-1)
    assert auc == pytest.approx(skm.roc_auc_score(t, p), abs=1e-6) and auc > 0.7
    assert auc == pytest.approx(auc_binary)
    assert logloss == pytest.approx(skm.log_loss(t, p), abs=1e-5) and logloss < 1


def test_one_logit_per_item_is_the_positive_class_and_two_scores_still_a_softmax():
    rng = np.random.default_rng(0)
    logit = torch.tensor(rng.normal(size=(60, 1)), dtype=torch.float32)
    t = torch.tensor(rng.integers(0, 2, 60))
    p = torch.sigmoid(logit[:, 0]).double().numpy()
    assert float(RocAuc()(logit, t)) == pytest.approx(skm.roc_auc_score(t.numpy(), p))
    assert float(LogLoss()(logit, t)) == pytest.approx(skm.log_loss(t.numpy(), p), abs=1e-6)
    two = torch.cat([torch.zeros_like(logit), logit], 1)  # softmax of (0, z) is sigmoid(z) in the second column
    assert float(RocAuc()(two, t)) == pytest.approx(skm.roc_auc_score(t.numpy(), p))
    assert float(LogLoss()(two, t)) == pytest.approx(skm.log_loss(t.numpy(), p), abs=1e-6)


# ------------------------------------------------------------------ a GBM regressor with a log-link objective
def test_poisson_gbm_contributions_are_raw_scores_the_log_of_the_prediction(rossmann_tab, monkeypatch):
    tab = rossmann_tab
    gp = GBM("regression", n_estimators=50, n_jobs=1, params={"objective": "poisson"}).fit(tab.train, tab.valid)
    c = contributions(gp, tab.valid)
    assert c.space == "raw_score"
    total = c.bias + c.values.sum(1)
    np.testing.assert_allclose(total, gp.predict(tab.valid, raw_score=True), rtol=1e-6)
    np.testing.assert_allclose(np.exp(total), gp.predict(tab.valid), rtol=1e-5)  # the log of the sales predicted
    title, last = _waterfall(monkeypatch, c, row=0)
    assert "raw score" in title and "log" in title and last.startswith("raw score")
    rf = RandomForest("regression", n_estimators=10, n_jobs=1).fit(tab.train)
    from pipekit.ensemble import MeanEnsemble

    with pytest.raises(ParameterError, match="raw scores .*the log of the predicted value"):
        contributions(MeanEnsemble([gp, rf]), tab.valid)


def test_a_gbm_regressor_of_squared_error_still_explains_its_values(rossmann_tab, monkeypatch):
    tab = rossmann_tab
    g = GBM("regression", n_estimators=30, n_jobs=1).fit(tab.train, tab.valid)
    c = contributions(g, tab.valid)
    assert c.space == "value"
    np.testing.assert_allclose(c.bias + c.values.sum(1), g.predict(tab.valid), rtol=1e-6)
    title, last = _waterfall(monkeypatch, c, row=0)
    assert title == "value" and last.startswith("prediction")


# ------------------------------------------------------------------ a two-class GBM of the multiclass objective
def test_two_class_gbm_of_the_multiclass_objective_explains_each_class(adult_tab, monkeypatch):
    tab = adult_tab
    g = GBM("classification", n_estimators=30, n_jobs=1, params={"objective": "multiclass"}).fit(tab.train, tab.valid)
    c = contributions(g, tab.valid)
    raw = g.predict(tab.valid, raw_score=True)
    assert raw.shape == (500, 2) and c.bias.shape == (500, 2) and c.values.shape == (500, 6, 2)
    np.testing.assert_allclose(c.bias + c.values.sum(1), raw, rtol=1e-6, atol=1e-9)
    title, last = _waterfall(monkeypatch, c, row=0, cls=">=50k")
    assert title.endswith("of class >=50k") and last == f"prediction {raw[0, 1]:.3g}"
    title, last = _waterfall(monkeypatch, c, row=0, cls="<50k")
    assert title.endswith("of class <50k") and last == f"prediction {raw[0, 0]:.3g}"


# ------------------------------------------------------------------ paired_difference with weighted rows
def test_paired_difference_resamples_the_weights_with_the_rows(adult):
    df = adult.head(400)
    y = (df["salary"] == ">=50k").cast(int).to_numpy()
    w = np.where(df["sex"].str.strip_chars() == "Female", 1.0, 0.0)  # women's rows alone count
    a = np.where(w > 0, y, 1 - y)  # right on every row that counts, wrong elsewhere
    b = np.where(w > 0, 1 - y, y)
    assert skm.accuracy_score(y, a, sample_weight=w) == 1.0 and skm.accuracy_score(y, b, sample_weight=w) == 0.0
    for metric in (F1Score(average="micro", sample_weight=w),
                   functools.partial(skm.accuracy_score, sample_weight=w)):
        d = paired_difference(metric, y, a, b, n_resamples=200)
        assert (d.difference, d.low, d.high, d.better) == (1.0, 1.0, 1.0, "a")
    with pytest.raises(DataError, match="weighs 10 rows"):
        paired_difference(F1Score(average="micro", sample_weight=w[:10]), y, a, b, n_resamples=200)


# ------------------------------------------------------------------ 1-D probabilities are no labels
def test_accuracy_refuses_the_positive_class_probability_as_labels(adult_tab):
    tab = adult_tab
    rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(tab.train)
    y, P = np.asarray(tab.valid.y).astype(int), rf.predict(tab.valid)
    assert accuracy.score(y, P) == pytest.approx(skm.accuracy_score(y, P.argmax(1)))
    assert accuracy.score(y, P.argmax(1).astype(float)) == pytest.approx(skm.accuracy_score(y, P.argmax(1)))
    with pytest.raises(ValueError):  # scikit-learn refuses the mix too
        skm.accuracy_score(y, P[:, 1])
    for m in (accuracy, error_rate, get_metric("accuracy", "classification"), F1Score()):
        with pytest.raises(DataError, match=r"P\.argmax\(1\)"):
            m.score(y, P[:, 1])
    with pytest.raises(DataError, match=r"P\.argmax\(1\)"):
        paired_difference("accuracy", y, P[:, 1], 1 - P[:, 1], task="classification")


# ------------------------------------------------------------------ multi-label thresholds as fastai's
TARGS = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]).float()


def test_multi_label_scores_threshold_at_or_above_as_fastai_and_accuracy_multi_above():
    zeros = torch.zeros(6, 3)  # every probability exactly 0.5, the threshold
    # fastai 2.8.12 on these: F1ScoreMulti 0.6667 (every label predicted, '>='), HammingLossMulti 0.5,
    # accuracy_multi 0.5 (no label predicted, '>')
    assert float(F1ScoreMulti()(zeros, TARGS)) == pytest.approx(2 / 3)
    assert float(F1ScoreMulti()(zeros, TARGS)) == pytest.approx(
        float(skm_to_fastai(skm.f1_score, thresh=0.5, average="macro", flatten=False)(zeros, TARGS)))
    every = np.ones((6, 3), dtype=bool)
    t = TARGS.numpy() > 0.5
    for m, fn, kw in ((PrecisionMulti(), skm.precision_score, {"average": "macro"}),
                      (RecallMulti(), skm.recall_score, {"average": "macro"}),
                      (FBetaMulti(2), skm.fbeta_score, {"average": "macro", "beta": 2}),
                      (JaccardMulti(), skm.jaccard_score, {"average": "macro"}),
                      (HammingLossMulti(), skm.hamming_loss, {})):
        assert float(m(zeros, TARGS)) == pytest.approx(fn(t, every, **kw))
    assert float(HammingLossMulti()(zeros, TARGS)) == pytest.approx(0.5)
    assert float(accuracy_multi(zeros, TARGS)) == pytest.approx(0.5)
    assert float(AccuracyMulti()(zeros, TARGS)) == pytest.approx((t == 0).mean())
