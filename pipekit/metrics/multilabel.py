"""Metrics of multi-label models: several 0/1 labels per item (BCEWithLogitsLossFlat), each label's probability the
sigmoid of its output, thresholded where the score takes labels. Each threshold is fastai's: a label is present at
or above ``thresh`` in the scores of labels (``F1ScoreMulti``, ``HammingLossMulti``...), as fastai's
``skm_to_fastai(thresh=)`` and pipekit's own; above it in ``accuracy_multi``, as fastai's ``accuracy_multi``."""
from __future__ import annotations

from typing import Any

import numpy as np

from pipekit.core.validate import BOOL, Interval, Is, Options, check, finite_number
from pipekit.metrics.base import ArrayMetric, MeanMetric
from pipekit.metrics.classification import FBETA_BETA


#: a threshold of the outputs as they are (``sigmoid=False``: logits, scores of the user's): any finite number
THRESH = Is(lambda v: finite_number(v) is not None, "a finite number (a threshold of the outputs as they are, "
            "sigmoid=False)")
#: a threshold of sigmoid probabilities (``sigmoid=True``): strictly between 0 and 1
PROBABILITY_THRESH = Interval(0, 1, closed="neither")


class _Thresholded:
    """A metric of labels thresholded at ``thresh``: of probabilities (``sigmoid=True``) a threshold between 0 and
    1, of the outputs as they are (``sigmoid=False``: logits, scores of the user's) any finite number."""

    thresh: float
    sigmoid: bool

    def check_params(self) -> None:
        """``thresh`` as ``sigmoid`` calls for (:data:`PROBABILITY_THRESH` or :data:`THRESH`), then every parameter
        as ``param_constraints`` says."""
        owner = type(self).__name__
        sigmoid = check(owner, sigmoid=(self.sigmoid, BOOL))["sigmoid"]
        check(owner, thresh=(self.thresh, PROBABILITY_THRESH if sigmoid else THRESH))
        super().check_params()  # type: ignore[misc]


class AccuracyMulti(_Thresholded, MeanMetric):
    """Multi-label accuracy: share of (item, label) pairs right after thresholding at ``thresh``: a label is
    predicted present when its probability is above ``thresh`` (``>``, as fastai's ``accuracy_multi``; the
    thresholded scores such as ``F1ScoreMulti`` take ``>=``, as fastai's do). With ``sigmoid=False`` the outputs
    are thresholded as they are, at any finite ``thresh`` (0.0 on logits is a probability of 0.5).

    >>> import torch
    >>> from pipekit.metrics import AccuracyMulti
    >>> logits = torch.tensor([[2.0, -1.0], [-1.0, 1.0]])
    >>> float(AccuracyMulti()(logits, torch.tensor([[1.0, 0.0], [1.0, 1.0]])))  # 3 of 4 labels right
    0.75
    >>> float(AccuracyMulti(thresh=0.9, sigmoid=False)(torch.tensor([[0.95, 0.5]]), torch.tensor([[1.0, 0.0]])))
    1.0
    >>> float(AccuracyMulti(thresh=0.0, sigmoid=False)(logits, torch.tensor([[1.0, 0.0], [1.0, 1.0]])))  # of logits
    0.75
    """

    target_kinds = ("bce",)
    param_constraints = {"thresh": THRESH, "sigmoid": BOOL}

    def __init__(self, thresh: float = 0.5, sigmoid: bool = True):
        self.thresh, self.sigmoid = thresh, sigmoid
        self.check_params()

    def per_item(self, pred: Any, targ: Any) -> Any:
        p = pred.float().sigmoid() if self.sigmoid else pred
        return (p > self.thresh) == targ.bool()


class RocAucMulti(ArrayMetric):
    """ROC-AUC of a multi-label model (several 0/1 labels per item, BCEWithLogitsLossFlat): sigmoid probabilities
    of every label, scored as scikit-learn's ``roc_auc_score`` with ``average`` ('macro': the mean of each label's
    AUC, 'weighted', 'micro' or 'samples').

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    >>> float(RocAucMulti()(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, 0.5], [-2.0, -1.5]]), targs))
    1.0
    """

    activation, target_kinds = "sigmoid", ("bce",)
    metric_name, aliases = "roc_auc_score", ("roc_auc_multi",)
    param_constraints = {"average": Options("macro", "weighted", "micro", "samples")}

    def __init__(self, average: str = "macro"):
        self.average = average
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        return roc_auc_score(y_true, y_pred, average=self.average)


class _SigmoidScores:
    """What a multi-label metric scores: each label's probability, the sigmoid of its output (or, ``sigmoid=False``,
    the output as it is)."""

    sigmoid: bool

    def _activate(self, pred: Any) -> Any:
        return pred.float().sigmoid() if self.sigmoid else pred.float()


class _LabelScoreMulti(_Thresholded, _SigmoidScores, ArrayMetric):
    """A scikit-learn score (``sk_name``) of a multi-label model: each label predicted present when its
    probability (a sigmoid of the output, unless ``sigmoid=False``) is at or above ``thresh`` (``>=``, as fastai's
    multi-label scores and ``skm_to_fastai(thresh=)``: all-zero logits, probability 0.5, predict every label
    present at the default 0.5; with ``sigmoid=False``, any finite ``thresh`` of the outputs, such as 0.0 of
    logits); ``average`` as in
    scikit-learn ('macro', the default as in fastai: the mean of each label's score; 'micro' pools every item and
    label)."""

    abstract = True
    sk_name, target_kinds = "", ("bce",)
    param_constraints = {"thresh": THRESH, "sigmoid": BOOL,
                         "average": Options("micro", "macro", "weighted", "samples")}

    def __init__(self, thresh: float = 0.5, sigmoid: bool = True, average: str = "macro"):
        self.thresh, self.sigmoid, self.average = thresh, sigmoid, average
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        import sklearn.metrics

        fn = getattr(sklearn.metrics, self.sk_name)
        return fn(np.asarray(y_true) > 0.5, y_pred >= self.thresh, **self.sk_kwargs())

    def sk_kwargs(self) -> dict[str, Any]:
        """The scikit-learn function's other arguments."""
        return {"average": self.average}


class F1ScoreMulti(_LabelScoreMulti):
    """F1 of a multi-label model: each label predicted present when its probability (a sigmoid of the output,
    unless ``sigmoid=False``) is at or above ``thresh`` (as fastai's); ``average`` as in scikit-learn: 'macro' (the
    default, as in fastai) is the mean of each label's F1, so a rare label counts as much as a common one; 'micro'
    pools every item and label. A label never predicted nor present scores 0, with scikit-learn's warning.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> preds = torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, -0.5]])
    >>> float(F1ScoreMulti()(preds, targs)), float(F1ScoreMulti(average="micro")(preds, targs))
    (0.8333333333333333, 0.8571428571428571)
    """

    metric_name = sk_name = "f1_score"
    aliases = ("f1_score_multi",)


class PrecisionMulti(_LabelScoreMulti):
    """Precision of a multi-label model, labels thresholded and averaged ('macro' by default) as in ``F1ScoreMulti``.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> float(PrecisionMulti()(torch.tensor([[2.0, 1.0], [-1.0, 1.0], [1.0, -0.5]]), targs))
    0.75
    """

    metric_name = sk_name = "precision_score"
    aliases = ("precision_multi",)


class RecallMulti(_LabelScoreMulti):
    """Recall of a multi-label model, labels thresholded and averaged ('macro' by default) as in ``F1ScoreMulti``.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> float(RecallMulti()(torch.tensor([[2.0, 1.0], [-1.0, 1.0], [1.0, -0.5]]), targs))
    0.75
    """

    metric_name = sk_name = "recall_score"
    aliases = ("recall_multi",)


class FBetaMulti(_LabelScoreMulti):
    """F-beta of a multi-label model (recall counts ``beta`` times as much as precision), labels thresholded and
    averaged ('macro' by default) as in ``F1ScoreMulti``.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> round(float(FBetaMulti(2)(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, -0.5]]), targs)), 4)
    0.7778
    """

    metric_name = sk_name = "fbeta_score"
    param_constraints = {**_LabelScoreMulti.param_constraints, "beta": FBETA_BETA}

    def __init__(self, beta: float, thresh: float = 0.5, sigmoid: bool = True, average: str = "macro"):
        self.beta = beta
        super().__init__(thresh, sigmoid, average)

    def sk_kwargs(self) -> dict[str, Any]:
        return {**super().sk_kwargs(), "beta": self.beta}


class JaccardMulti(_LabelScoreMulti):
    """Jaccard index of a multi-label model, labels thresholded and averaged ('macro' by default) as in
    ``F1ScoreMulti``.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> float(JaccardMulti()(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, -0.5]]), targs))
    0.75
    """

    metric_name = sk_name = "jaccard_score"
    aliases = ("jaccard_multi",)


class HammingLossMulti(_LabelScoreMulti):
    """Hamming loss of a multi-label model: the share of (item, label) pairs predicted wrong, each label present
    when its probability (a sigmoid of the output, unless ``sigmoid=False``) is at or above ``thresh`` (as fastai's
    ``HammingLossMulti``); ``1 - accuracy_multi`` except for a probability exactly at ``thresh``, which
    ``accuracy_multi`` (``>``, as fastai's) reads as absent.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> round(float(HammingLossMulti()(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, -0.5]]), targs)), 4)
    0.1667
    """

    greater_is_better = False
    metric_name = sk_name = "hamming_loss"
    aliases = ("hamming_loss_multi",)
    param_constraints = {"thresh": THRESH, "sigmoid": BOOL}

    def __init__(self, thresh: float = 0.5, sigmoid: bool = True):
        self.thresh, self.sigmoid = thresh, sigmoid
        self.check_params()

    def sk_kwargs(self) -> dict[str, Any]:
        return {}


class APScoreMulti(_SigmoidScores, ArrayMetric):
    """Average precision of a multi-label model (scikit-learn's ``average_precision_score``) on each label's
    probability (a sigmoid of the output, unless ``sigmoid=False``); ``average``: 'macro' (the mean of each label's),
    'weighted', 'micro' or 'samples'.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> float(APScoreMulti()(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, -0.5]]), targs))
    1.0
    """

    metric_name, aliases, target_kinds = "average_precision_score", ("average_precision_multi",), ("bce",)
    param_constraints = {"average": Options("macro", "weighted", "micro", "samples"), "sigmoid": BOOL}

    def __init__(self, sigmoid: bool = True, average: str = "macro"):
        self.sigmoid, self.average = sigmoid, average
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import average_precision_score

        return average_precision_score(np.asarray(y_true) > 0.5, y_pred, average=self.average)


class BrierScoreMulti(_SigmoidScores, ArrayMetric):
    """Brier score of a multi-label model: the mean, over every item and label, of the squared difference between
    the label's probability (a sigmoid of the output, unless ``sigmoid=False``) and its 0/1 value; the mean of each
    label's ``brier_score_loss``. fastai's ``BrierScoreMulti`` scores thresholded labels instead.

    >>> import torch
    >>> float(BrierScoreMulti()(torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])))
    0.25
    """

    greater_is_better, metric_name, aliases = False, "brier_score_loss", ("brier_score_multi",)
    target_kinds = ("bce",)
    param_constraints = {"sigmoid": BOOL}

    def __init__(self, sigmoid: bool = True):
        self.sigmoid = sigmoid
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean((np.asarray(y_pred, dtype=np.float64) - (np.asarray(y_true) > 0.5)) ** 2))


accuracy_multi = AccuracyMulti()
