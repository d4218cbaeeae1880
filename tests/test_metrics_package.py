"""``pipekit.metrics`` is a package of modules by purpose, and everything the one module held is where it was: each
name imports from ``pipekit.metrics``, every metric class keeps its registered name ``pipekit.metrics.<Name>`` (the
name learner files record), and a pickle naming ``pipekit.metrics.<Name>`` loads. Every metric applies its
activation through one function, and its flags take True or False only, as every other component's do."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

import pipekit.metrics as M
from pipekit.core.component import Component
from pipekit.core.errors import ParameterError
from pipekit.core.registry import name_of, registered
from pipekit.metrics import (
    AccumMetric, AccuracyMulti, APScoreMulti, BrierScoreMulti, F1Score, F1ScoreMulti, FBetaMulti, FuncMetric,
    HammingLossMulti, RocAuc, RocAucBinary,
)
from pipekit.metrics.base import apply_activation

#: the public names of pipekit/metrics.py, the module this package replaced
MODULE_ALL = [
    "Metric", "MeanMetric", "ArrayMetric", "FuncMetric", "as_metric", "get_metric", "check_metric",
    "Accuracy", "ErrorRate", "AccuracyMulti", "MAE", "MSE", "RMSE", "RMSPE", "ExpRMSPE", "Perplexity", "R2Score",
    "F1Score", "BalancedAccuracy", "MatthewsCorrCoef", "CohenKappa", "top_k_accuracy", "RocAuc", "RocAucBinary",
    "RocAucMulti", "F1ScoreMulti", "Precision", "Recall", "PrecisionMulti", "RecallMulti", "LogLoss", "accuracy",
    "error_rate", "accuracy_multi", "mae", "mse", "rmse", "rmspe", "exp_rmspe", "perplexity", "r2_score", "log_loss",
    "roc_auc", "TASKS", "PairedDifference", "paired_difference", "AccumMetric", "skm_to_fastai", "FBeta", "Jaccard",
    "HammingLoss", "APScoreBinary", "BrierScore", "FBetaMulti", "JaccardMulti", "HammingLossMulti", "APScoreMulti",
    "BrierScoreMulti", "MSLE", "msle", "ExplainedVariance", "PearsonCorrCoef", "SpearmanCorrCoef",
]


def test_the_package_exports_every_name_of_the_module_it_replaced():
    assert M.__all__ == MODULE_ALL
    for name in [*MODULE_ALL, "DEFAULT_METRIC", "metric_task"]:
        assert getattr(M, name) is not None, name
    assert M.DEFAULT_METRIC == {"classification": "accuracy", "regression": "rmse"}
    assert M.metric_task(M.get_metric("r2", "regression")) == "regression"
    # the classes live in the package's modules, each of one purpose
    assert M.F1ScoreMulti.__module__ == "pipekit.metrics.multilabel"
    assert M.AccumMetric.__module__ == "pipekit.metrics.functions"


def test_every_metric_class_keeps_its_registered_name():
    metric_classes = {v for v in vars(M).values() if isinstance(v, type) and issubclass(v, M.Metric)}
    assert len(metric_classes) == 42
    for cls in metric_classes:
        assert name_of(cls) == f"pipekit.metrics.{cls.__name__}", cls
        assert cls.__module__.startswith("pipekit.metrics.")
    assert {k for k in registered("metric") if k.startswith("pipekit.metrics.")} == \
        {f"pipekit.metrics.{c.__name__}" for c in metric_classes}


def test_a_metric_record_written_before_loads_in_a_fresh_process():
    # what learner files hold: each metric's record by its registered name, read with nothing of pipekit imported
    records = [{"class": "pipekit.metrics.Accuracy", "params": {"axis": -1}, "state": {}},
               {"class": "pipekit.metrics.F1ScoreMulti", "params": {"thresh": 0.3, "sigmoid": True,
                                                                    "average": "micro"}, "state": {}},
               {"class": "pipekit.metrics.RMSE", "params": {}, "state": {}},
               {"class": "pipekit.metrics.RocAuc", "params": {"average": "weighted", "multi_class": "ovo"},
                "state": {}}]
    code = ("import json, sys\nfrom pipekit.core.component import Component\n"
            "ms = [Component.from_record(r) for r in json.loads(sys.argv[1])]\n"
            "print(json.dumps([[type(m).__module__, m.name, m.get_params()] for m in ms]))\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(records)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        ["pipekit.metrics.classification", "accuracy", {"axis": -1}],
        ["pipekit.metrics.multilabel", "f1_score", {"thresh": 0.3, "sigmoid": True, "average": "micro"}],
        ["pipekit.metrics.regression", "rmse", {}],
        ["pipekit.metrics.classification", "roc_auc_score", {"average": "weighted", "multi_class": "ovo", "axis": -1,
                                                             "sample_weight": None, "max_fpr": None}]]
    assert [m.to_record([])["class"] for m in map(Component.from_record, records)] == [r["class"] for r in records]


def test_a_pickle_that_names_the_module_loads():
    metric = F1Score(average="macro")
    data = pickle.dumps(metric, protocol=0)
    assert b"pipekit.metrics.classification\nF1Score" in data
    old = data.replace(b"pipekit.metrics.classification\nF1Score", b"pipekit.metrics\nF1Score")
    loaded = pickle.loads(old)
    assert type(loaded) is F1Score and loaded.get_params() == {"average": "macro", "pos_label": 1, "labels": None, "axis": -1,
                                                            "sample_weight": None, "zero_division": "warn"}
    preds, targs = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0])
    assert float(loaded(preds, targs)) == pytest.approx(skm.f1_score([0, 1, 0], [0, 1, 1], average="macro"))


def test_a_name_passed_as_a_metric_is_named_from_the_package():
    with pytest.raises(ParameterError, match=r"metrics='rmse' is a str: pass the metric itself \(rmse, from"):
        M.as_metric("rmse")
    with pytest.raises(ParameterError, match=r"pass the metric itself \(F1ScoreMulti, from"):
        M.as_metric("F1ScoreMulti")


# ------------------------------------------------------------------ one activation for every metric
OUTPUTS = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0], [-1.0, 4.0, 1.0], [0.0, 0.0, 3.0]])


@pytest.mark.parametrize("activation, dim_argmax, expected", [
    ("softmax", None, OUTPUTS.softmax(-1)),
    ("softmax", 0, OUTPUTS.softmax(0)),
    ("sigmoid", None, OUTPUTS.sigmoid()),
    ("binarysoftmax", -1, OUTPUTS.softmax(-1)[:, -1]),
    ("no", -1, torch.tensor([0, 1, 1, 2])),
    (None, -1, torch.tensor([0, 1, 1, 2])),
    ("no", None, OUTPUTS),
])
def test_accum_metric_activates_through_the_metrics_one_function(activation, dim_argmax, expected):
    seen = []

    def record(preds, targs):
        seen.append(preds)
        return 0.0

    AccumMetric(record, activation=activation, dim_argmax=dim_argmax, flatten=False)(OUTPUTS, torch.zeros(4))
    torch.testing.assert_close(seen[0], expected)
    act = "argmax" if activation in (None, "no") and dim_argmax is not None else activation
    torch.testing.assert_close(apply_activation(OUTPUTS, act, -1 if dim_argmax is None else dim_argmax), expected)


def test_class_metrics_and_accum_metric_score_the_same_probabilities():
    targs = torch.tensor([0, 1, 1, 2])
    ovr = AccumMetric(skm.roc_auc_score, activation="softmax", flatten=False, to_np=True, invert_arg=True,
                      multi_class="ovr")
    assert float(ovr(OUTPUTS, targs)) == pytest.approx(float(RocAuc()(OUTPUTS, targs)))
    two, y = OUTPUTS[:, :2], torch.tensor([0, 1, 1, 0])
    binary = AccumMetric(skm.roc_auc_score, activation="binarysoftmax", to_np=True, invert_arg=True)
    assert float(binary(two, y)) == pytest.approx(float(RocAucBinary()(two, y)))


# ------------------------------------------------------------------ flags take True or False
FLAGS = [
    (lambda v: AccumMetric(skm.cohen_kappa_score, to_np=v), "to_np"),
    (lambda v: AccumMetric(skm.cohen_kappa_score, invert_arg=v), "invert_arg"),
    (lambda v: AccumMetric(skm.cohen_kappa_score, flatten=v), "flatten"),
    (lambda v: FuncMetric(skm.accuracy_score, greater_is_better=v), "greater_is_better"),
    (lambda v: FuncMetric(skm.accuracy_score, y_first=v), "y_first"),
    (lambda v: AccuracyMulti(sigmoid=v), "sigmoid"),
    (lambda v: F1ScoreMulti(sigmoid=v), "sigmoid"),
    (lambda v: FBetaMulti(2.0, sigmoid=v), "sigmoid"),
    (lambda v: HammingLossMulti(sigmoid=v), "sigmoid"),
    (lambda v: APScoreMulti(sigmoid=v), "sigmoid"),
    (lambda v: BrierScoreMulti(sigmoid=v), "sigmoid"),
]


@pytest.mark.parametrize("make, param", FLAGS)
@pytest.mark.parametrize("bad", [1, 0, "no"])
def test_a_metric_flag_refuses_what_is_not_true_or_false(make, param, bad):
    with pytest.raises(ParameterError, match=rf"{param}={bad!r} is not accepted; expected True(, False)? or (False|None)"):
        make(bad)


@pytest.mark.parametrize("make, param", FLAGS)
def test_a_metric_flag_takes_true_and_false(make, param):
    for value in (True, False):
        assert make(value).get_params()[param] is value
    if param == "greater_is_better":
        assert make(None).greater_is_better is True  # None: read from the function's name


def test_sigmoid_false_scores_probabilities_as_given():
    probs = np.array([[0.9, 0.2], [0.1, 0.7], [0.6, 0.4]])
    targs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    got = F1ScoreMulti(sigmoid=False).score(targs, probs)
    assert got == pytest.approx(skm.f1_score(targs > 0.5, probs > 0.5, average="macro"))
