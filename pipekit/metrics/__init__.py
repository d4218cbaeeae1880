"""One ``Metric`` for every model: a direction, an array face and an accumulating face.

- ``metric.score(y_true, y_pred)`` scores whole arrays the way scikit-learn does: targets first, then
  predictions as a backend returns them (class probabilities, or values). Backends, ensembles and the
  explanation tools use it.
- ``reset() / accumulate(pred, targ, loss, bs) / value`` is what a ``Learner`` calls over a validation
  pass: ``pred`` are raw model outputs (the metric applies its own activation) and sums stay on the
  device, so there is no host sync per batch. The value is computed over the whole set, never as an
  average of per-batch values.
- ``greater_is_better`` tells selection, early stopping and reports which way is up.

A metric object is also what fastai users know as a function: ``accuracy(preds, targs)`` gives the
value on those tensors, ``accuracy_multi(thresh=0.2)`` (or ``functools.partial(accuracy_multi,
thresh=0.2)``) gives a configured metric, and a plain function ``fn(pred, targ)`` is accepted wherever
a metric is.

The package, by purpose: ``base`` (the Metric mechanism: Metric, MeanMetric, ArrayMetric), ``functions`` (a
function as a metric: FuncMetric, fastai's AccumMetric and skm_to_fastai), ``classification``, ``multilabel`` and
``regression`` (the metrics of each kind of target), ``lookup`` (as_metric, get_metric, check_metric: a metric from
what a user passes; check_metric_targets: a Learner's metrics against its data's kind of target) and ``paired``
(paired_difference). Import them from here: ``from pipekit.metrics import accuracy``; a metric's registered name,
which files record, is ``pipekit.metrics.<Name>`` whichever file defines it.

>>> import numpy as np, torch
>>> float(accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])))
0.5
>>> rmse.score(np.array([1.0, 2.0]), np.array([1.0, 4.0])), rmse.greater_is_better
(1.4142135623730951, False)
>>> accuracy_multi(thresh=0.2).thresh
0.2
"""
from __future__ import annotations

from pipekit.metrics.base import TASKS, ArrayMetric, MeanMetric, Metric
from pipekit.metrics.classification import (
    Accuracy, APScoreBinary, BalancedAccuracy, BrierScore, CohenKappa, ErrorRate, F1Score, FBeta, HammingLoss, Jaccard,
    LogLoss, MatthewsCorrCoef, Precision, Recall, RocAuc, RocAucBinary, accuracy, error_rate, log_loss, roc_auc,
    top_k_accuracy,
)
from pipekit.metrics.functions import AccumMetric, FuncMetric, skm_to_fastai
from pipekit.metrics.functions import ActivationType as ActivationType
from pipekit.metrics.lookup import DEFAULT_METRIC as DEFAULT_METRIC
from pipekit.metrics.lookup import as_metric, check_metric, get_metric
from pipekit.metrics.lookup import check_metric_targets as check_metric_targets
from pipekit.metrics.lookup import metric_task as metric_task
from pipekit.metrics.multilabel import (
    AccuracyMulti, APScoreMulti, BrierScoreMulti, F1ScoreMulti, FBetaMulti, HammingLossMulti, JaccardMulti,
    PrecisionMulti, RecallMulti, RocAucMulti, accuracy_multi,
)
from pipekit.metrics.paired import PairedDifference, paired_difference
from pipekit.metrics.regression import (
    MAE, MSE, MSLE, RMSE, RMSPE, ExplainedVariance, ExpRMSPE, PearsonCorrCoef, Perplexity, R2Score, SpearmanCorrCoef,
    exp_rmspe, mae, mse, msle, perplexity, r2_score, rmse, rmspe,
)

__all__ = [
    "Metric", "MeanMetric", "ArrayMetric", "FuncMetric", "as_metric", "get_metric", "check_metric",
    "Accuracy", "ErrorRate", "AccuracyMulti", "MAE", "MSE", "RMSE", "RMSPE", "ExpRMSPE", "Perplexity", "R2Score", "F1Score",
    "BalancedAccuracy", "MatthewsCorrCoef", "CohenKappa", "top_k_accuracy", "RocAuc", "RocAucBinary", "RocAucMulti", "F1ScoreMulti", "Precision", "Recall", "PrecisionMulti",
    "RecallMulti", "LogLoss", "accuracy", "error_rate", "accuracy_multi", "mae", "mse", "rmse",
    "rmspe", "exp_rmspe", "perplexity", "r2_score", "log_loss", "roc_auc", "TASKS", "PairedDifference", "paired_difference",
    "AccumMetric", "skm_to_fastai", "FBeta", "Jaccard", "HammingLoss", "APScoreBinary", "BrierScore", "FBetaMulti",
    "JaccardMulti", "HammingLossMulti", "APScoreMulti", "BrierScoreMulti", "MSLE", "msle", "ExplainedVariance",
    "PearsonCorrCoef", "SpearmanCorrCoef",
]
