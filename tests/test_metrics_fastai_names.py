"""fastai's metrics by their names (``FBeta``, ``Jaccard``, ``HammingLoss``, ``APScoreBinary``, ``BrierScore``, the
multi-label ones, ``msle``, ``ExplainedVariance``, ``PearsonCorrCoef``, ``SpearmanCorrCoef``, ``AccumMetric`` and
``skm_to_fastai``): each value is the one fastai computes, worked out here from scikit-learn and scipy on fixed
predictions made from adult_sample and rossmann_sample, accumulated over batches as a Learner does, recorded under
fastai's names, and kept by an export where the metric can be written down."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as scs
import sklearn.metrics as skm
import torch

import pipekit
from pipekit.core.errors import ParameterError
from pipekit.datasets import path
from pipekit.learn import (
    AccumMetric, APScoreBinary, APScoreMulti, BrierScore, BrierScoreMulti, ExplainedVariance, FBeta, FBetaMulti,
    HammingLoss, HammingLossMulti, Jaccard, JaccardMulti, PearsonCorrCoef, SpearmanCorrCoef, as_metric, msle,
    skm_to_fastai,
)


@pytest.fixture(scope="module")
def adult_preds():
    """3,000 adult rows: a fixed linear score of three columns as a two-class model's outputs (class 0's score 0),
    three education levels scored from education-num, and three 0/1 labels per row (salary, older than the mean,
    longer hours) with a score each."""
    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=3000)
    x = df[["age", "education-num", "hours-per-week"]].to_numpy(float)
    x = np.nan_to_num((x - np.nanmean(x, 0)) / np.nanstd(x, 0))
    y = (df["salary"].str.strip() == ">=50k").to_numpy().astype(np.int64)
    s = x @ np.array([0.8, 1.1, 0.6]) - 1.2
    p2 = np.stack([np.zeros_like(s), s], 1).astype(np.float32)
    y3 = np.digitize(df["education-num"].fillna(10).to_numpy(), [9, 12]).astype(np.int64)
    p3 = np.stack([-x[:, 1] * 3 - 1.5, np.zeros(len(x)), x[:, 1] * 3 - 1 + 0.3 * x[:, 0]], 1).astype(np.float32)
    tm = np.stack([y, x[:, 0] > 0, x[:, 2] > 0.2], 1).astype(np.float32)
    pm = np.stack([s, x[:, 0] * 1.5 + 0.2, x[:, 2] * 1.1 + 0.5 * x[:, 0]], 1).astype(np.float32)
    return {"p2": p2, "y": y, "p3": p3, "y3": y3, "pm": pm, "tm": tm}


@pytest.fixture(scope="module")
def rossmann_preds():
    """3,000 rossmann days: log(1 + Sales) as the target, a fixed guess from the day's customers as the prediction."""
    r = pd.read_csv(path("rossmann_sample") / "train.csv", nrows=3000, usecols=["Sales", "Customers"])
    return (np.log1p(r["Customers"].to_numpy(float)) * 0.9 + 2.4).astype(np.float32), \
        np.log1p(r["Sales"].to_numpy(float)).astype(np.float32)


def accumulated(metric, preds, targs, bs=512):
    """The metric's value over ``preds`` fed in batches of ``bs``, as a Learner's validation pass feeds it."""
    m = as_metric(metric)
    m.reset()
    for i in range(0, len(preds), bs):
        p, t = torch.as_tensor(preds[i:i + bs]), torch.as_tensor(targs[i:i + bs])
        m.accumulate(p, t, None, len(p))
    return m.name, m.value


def _softmax(p):
    e = np.exp(p - p.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _sigmoid(p):
    return 1 / (1 + np.exp(-p.astype(np.float64)))


def test_single_label_scores_are_fastais_on_adult(adult_preds):
    """fastai's single-label scores are scikit-learn's on the arg-max labels (FBeta, Jaccard, HammingLoss) or on the
    positive class's softmax probability (APScoreBinary), each under the function's name."""
    d = adult_preds
    lab2, lab3 = d["p2"].argmax(1), d["p3"].argmax(1)
    pos = _softmax(d["p2"].astype(np.float64))[:, 1]
    expected = {
        "f2": (FBeta(2), "p2", "y", "fbeta_score", skm.fbeta_score(d["y"], lab2, beta=2)),
        "f05": (FBeta(0.5, average="macro"), "p3", "y3", "fbeta_score",
                skm.fbeta_score(d["y3"], lab3, beta=0.5, average="macro")),
        "jaccard": (Jaccard(), "p2", "y", "jaccard_score", skm.jaccard_score(d["y"], lab2)),
        "jaccard_w": (Jaccard(average="weighted"), "p3", "y3", "jaccard_score",
                      skm.jaccard_score(d["y3"], lab3, average="weighted")),
        "hamming": (HammingLoss(), "p3", "y3", "hamming_loss", skm.hamming_loss(d["y3"], lab3)),
        "ap": (APScoreBinary(), "p2", "y", "average_precision_score", skm.average_precision_score(d["y"], pos)),
    }
    for key, (metric, p, t, name, value) in expected.items():
        got_name, got = accumulated(metric, d[p], d[t])
        assert got_name == name, key
        assert got == pytest.approx(value, rel=1e-6), key
        assert 0.01 < value < 0.99, key  # neither a trivial 0 nor 1
    # a loss is better smaller, a score larger (what early stopping and SaveModelCallback follow)
    assert not HammingLoss().greater_is_better and FBeta(2).greater_is_better and Jaccard().greater_is_better
    # two scores per item of three classes: average='binary' is refused, naming the averages (no name for FBeta)
    with pytest.raises(ParameterError, match=r"fbeta_score with average='binary' scores class 1 of a two-class model "
                                             r"and this one has 3 classes: pass average='macro', 'micro' or "
                                             r"'weighted'$"):
        accumulated(FBeta(2), d["p3"], d["y3"])
    with pytest.raises(ParameterError, match=r"APScoreMulti"):  # several labels per item
        accumulated(APScoreBinary(), d["pm"], d["tm"])


def test_brier_score_scores_the_probabilities(adult_preds):
    """The Brier score of the softmax probabilities (of class 1 for two classes, summed over classes for more), as
    scikit-learn defines it; fastai's BrierScore scores the arg-max labels, which for two classes is the error rate."""
    d = adult_preds
    probs2, probs3 = _softmax(d["p2"].astype(np.float64)), _softmax(d["p3"].astype(np.float64))
    name, got = accumulated(BrierScore(), d["p2"], d["y"])
    assert name == "brier_score_loss" and not BrierScore().greater_is_better
    assert got == pytest.approx(skm.brier_score_loss(d["y"], probs2[:, 1]), rel=1e-6)
    error_rate = float((d["p2"].argmax(1) != d["y"]).mean())
    assert abs(got - error_rate) > 0.05  # 0.155 against the error rate's 0.228
    assert accumulated(BrierScore(), d["p3"], d["y3"])[1] == pytest.approx(
        skm.brier_score_loss(d["y3"], probs3, labels=[0, 1, 2]), rel=1e-6)


def test_multi_label_scores_are_fastais_on_adult(adult_preds):
    """Each label present when its sigmoid is over the threshold, scored and macro-averaged by scikit-learn; average
    precision on the probabilities; the Brier score as the mean over labels of each label's."""
    d = adult_preds
    probs = _sigmoid(d["pm"])
    labels, truth = probs > 0.5, d["tm"] > 0.5
    expected = {
        "fbeta": (FBetaMulti(2), "fbeta_score", skm.fbeta_score(truth, labels, beta=2, average="macro")),
        "jaccard": (JaccardMulti(), "jaccard_score", skm.jaccard_score(truth, labels, average="macro")),
        "jaccard_t": (JaccardMulti(thresh=0.3, average="micro"), "jaccard_score",
                      skm.jaccard_score(truth, probs > 0.3, average="micro")),
        "hamming": (HammingLossMulti(), "hamming_loss", skm.hamming_loss(truth, labels)),
        "ap": (APScoreMulti(), "average_precision_score", skm.average_precision_score(truth, probs, average="macro")),
        "brier": (BrierScoreMulti(), "brier_score_loss",
                  np.mean([skm.brier_score_loss(truth[:, j], probs[:, j]) for j in range(3)])),
    }
    for key, (metric, name, value) in expected.items():
        got_name, got = accumulated(metric, d["pm"], d["tm"])
        assert (got_name, got) == (name, pytest.approx(value, rel=1e-6)), key
        assert 0.01 < value < 0.99, key
    assert not HammingLossMulti().greater_is_better and not BrierScoreMulti().greater_is_better


def test_regression_scores_are_fastais_on_rossmann(rossmann_preds):
    """msle, explained variance and the two correlations pooled over every batch, as scipy and scikit-learn give
    them on the whole set (a mean of per-batch correlations would differ)."""
    pred, targ = rossmann_preds
    p64, t64 = pred.astype(np.float64), targ.astype(np.float64)
    expected = {
        "msle": (msle, skm.mean_squared_log_error(t64, p64)),
        "explained_variance_score": (ExplainedVariance(), skm.explained_variance_score(t64, p64)),
        "pearsonr": (PearsonCorrCoef(), scs.pearsonr(p64, t64)[0]),
        "spearmanr": (SpearmanCorrCoef(), scs.spearmanr(p64, t64)[0]),
    }
    for name, (metric, value) in expected.items():
        got_name, got = accumulated(metric, pred, targ)
        assert (got_name, got) == (name, pytest.approx(value, rel=1e-6)), name
        # a model with one output gives (n, 1) predictions: the same value
        assert accumulated(metric, pred[:, None], targ)[1] == pytest.approx(value, rel=1e-6), name
    per_batch = np.mean([scs.pearsonr(p64[i:i + 512], t64[i:i + 512])[0] for i in range(0, len(p64), 512)])
    assert abs(per_batch - expected["pearsonr"][1]) > 1e-4
    assert not msle.greater_is_better and PearsonCorrCoef().greater_is_better


def test_skm_to_fastai_and_accum_metric_follow_fastais_steps(adult_preds, rossmann_preds):
    """skm_to_fastai arg-maxes class scores (or takes a sigmoid and a threshold), hands scikit-learn NumPy arrays in
    its order, with the function's keyword arguments; AccumMetric applies its activation and hands tensors."""
    d = adult_preds
    kappa = skm_to_fastai(skm.cohen_kappa_score, weights="quadratic")
    assert accumulated(kappa, d["p3"], d["y3"]) == (
        "cohen_kappa_score", pytest.approx(skm.cohen_kappa_score(d["y3"], d["p3"].argmax(1), weights="quadratic")))
    f1_micro = skm_to_fastai(skm.f1_score, thresh=0.5, flatten=False, average="micro")
    assert accumulated(f1_micro, d["pm"], d["tm"])[1] == pytest.approx(
        skm.f1_score(d["tm"] > 0.5, _sigmoid(d["pm"]) >= 0.5, average="micro"))
    ap = skm_to_fastai(skm.average_precision_score, activation="binarysoftmax")
    assert accumulated(ap, d["p2"], d["y"]) == accumulated(APScoreBinary(), d["p2"], d["y"])
    pred, targ = rossmann_preds
    r2 = skm_to_fastai(skm.r2_score, is_class=False)
    assert accumulated(r2, pred, targ) == ("r2_score", pytest.approx(skm.r2_score(targ, pred), rel=1e-6))
    ovo = AccumMetric(skm.roc_auc_score, dim_argmax=-1, activation="softmax", flatten=False, to_np=True,
                      invert_arg=True, multi_class="ovo")
    assert accumulated(ovo, d["p3"], d["y3"])[1] == pytest.approx(
        skm.roc_auc_score(d["y3"], _softmax(d["p3"].astype(np.float64)), multi_class="ovo"), rel=1e-6)
    seen = []

    def my_mae(p, t):
        seen.append(type(p))
        return (p - t).abs().mean()

    assert accumulated(AccumMetric(my_mae), pred, targ)[1] == pytest.approx(np.abs(pred - targ).mean(), rel=1e-5)
    assert seen == [torch.Tensor] and not AccumMetric(my_mae).greater_is_better  # to_np=False: tensors
    assert AccumMetric(my_mae, name="sales_gap").name == "sales_gap"
    assert kappa.clone().func.keywords == {"weights": "quadratic"}  # a copy keeps the function's arguments
    # class scores without an arg-max are not one value per target: said, with the ways out
    with pytest.raises(ParameterError, match=r"r2_score: 1024 predictions for 512 targets once flattened .*"
                                             r"dim_argmax=-1.*flatten=False"):
        accumulated(r2, d["p2"], d["y"])
    with pytest.raises(ParameterError, match=r"returned .*not one number"):
        accumulated(AccumMetric(lambda p, t: p - t), pred, targ)
    with pytest.raises(ParameterError, match=r"AccumMetric: activation='relu' is not accepted"):
        AccumMetric(my_mae, activation="relu")


@pytest.fixture(scope="module")
def adult_learner():
    """A tabular net trained one epoch on 2,000 adult rows (the last 500 for validation)."""
    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner

    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=2000)
    pipekit.set_seed(0)
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, FillMissing, Normalize],
                                     cat_names=["workclass", "education", "marital-status", "occupation"],
                                     cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                                     valid_idx=list(range(1500, 2000)), bs=64)
    learn = tabular_learner(dls, layers=[20, 10],
                            metrics=[FBeta(2), HammingLoss(), APScoreBinary(), BrierScore(),
                                     skm_to_fastai(skm.cohen_kappa_score)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(1, 3e-2)
    return learn


def test_a_learner_records_them_under_fastais_names(adult_learner):
    learn = adult_learner
    assert learn.recorder.metric_names == ["epoch", "train_loss", "valid_loss", "fbeta_score", "hamming_loss",
                                           "average_precision_score", "brier_score_loss", "cohen_kappa_score", "time"]
    probs, targs = learn.get_preds()
    y, p = targs.numpy().reshape(-1), probs.numpy().astype(np.float64)
    labels = p.argmax(1)
    row = learn.validate()
    assert row[1:] == pytest.approx([skm.fbeta_score(y, labels, beta=2), skm.hamming_loss(y, labels),
                                     skm.average_precision_score(y, p[:, 1]), skm.brier_score_loss(y, p[:, 1]),
                                     skm.cohen_kappa_score(y, labels)], rel=1e-5)
    assert row[3] > 0.5 and row[5] > 0.2  # a model that learned something (a constant guess has a kappa of 0)
    assert learn.recorder.values[-1][2:] == pytest.approx(row[1:], rel=1e-5)


def test_export_keeps_the_named_metrics_and_leaves_out_a_function_of_scikit_learn(adult_learner, tmp_path):
    """The named metrics are written with their parameters and come back; an AccumMetric of a function that is not
    registered is left out, as a metric of a plain function is; one of a registered function is kept."""
    learn = adult_learner
    loaded = pipekit.load(learn.export(tmp_path / "adult.pipekit"))
    assert [m.name for m in loaded.metrics] == ["fbeta_score", "hamming_loss", "average_precision_score",
                                                "brier_score_loss"]
    assert loaded.metrics[0].beta == 2
    assert loaded.validate(dl=learn.dls.valid) == pytest.approx(learn.validate()[:-1], rel=1e-5)

    def kappa_of_labels(p, t):
        return skm.cohen_kappa_score(t, p)

    pipekit.register(kappa_of_labels, name="tests.kappa_of_labels", kind="function", replace=True)
    # bound keyword arguments (a partial) cannot be named in a file: that one is left out too
    before, learn.metrics = learn.metrics, [Jaccard(), AccumMetric(kappa_of_labels, dim_argmax=-1, to_np=True),
                                            AccumMetric(kappa_of_labels, dim_argmax=-1, to_np=True, weights="linear")]
    try:
        loaded = pipekit.load(learn.export(tmp_path / "adult2.pipekit"))
    finally:
        learn.metrics = before
    assert [type(m).__name__ for m in loaded.metrics] == ["Jaccard", "AccumMetric"]
    assert loaded.metrics[1].func is kappa_of_labels
    probs, targs = learn.get_preds()
    y, labels = targs.numpy().reshape(-1), probs.numpy().argmax(1)
    assert loaded.validate(dl=learn.dls.valid)[1:] == pytest.approx(
        [skm.jaccard_score(y, labels), skm.cohen_kappa_score(y, labels)], rel=1e-6)


def test_the_names_come_with_the_star_imports():
    import pipekit.tabular.all as tab
    import pipekit.text.all as text
    import pipekit.vision.all as vision

    names = {"FBeta", "PearsonCorrCoef", "SpearmanCorrCoef", "ExplainedVariance", "HammingLoss", "BrierScore",
             "APScoreBinary", "Jaccard", "msle", "AccumMetric", "skm_to_fastai", "FBetaMulti", "JaccardMulti",
             "HammingLossMulti", "APScoreMulti", "BrierScoreMulti", "F1Score", "F1ScoreMulti", "PrecisionMulti",
             "RecallMulti", "RocAuc", "RocAucBinary"}
    for mod in (vision, text, tab):
        assert names <= {n for n in vars(mod) if not n.startswith("_")}, mod.__name__  # what its star import gives


@pytest.mark.parametrize("make", [lambda: FBeta(2.0), lambda: FBetaMulti(0.5),
                                  lambda: AccumMetric(skm.cohen_kappa_score, dim_argmax=-1, to_np=True,
                                                      invert_arg=True)])
def test_metrics_that_need_an_argument_pass_the_conformance_checks(make):
    from conformance import check_component

    check_component(make())
