"""Metrics of single-label classifiers: one class per item, scored from the model's class scores (arg-max labels,
or softmax probabilities) against class indices."""
from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np

from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.core.validate import BOOL, CLASS_AXIS, Interval, Is, Options
from pipekit.metrics.base import ArrayMetric, MeanMetric, apply_activation


def _class_list(v: Any) -> bool:
    """Whether ``v`` names classes as scikit-learn's ``labels`` does here: a non-empty list (or tuple) of distinct class
    indices (whole numbers from 0)."""
    if not isinstance(v, (list, tuple)) or not v:
        return False
    index = Interval(0, None, integer=True)
    return all(index.accepts(x) for x in v) and len({int(x) for x in v}) == len(v)


#: scikit-learn's ``labels`` of a metric of classes: None (every class) or the class indices it scores
CLASS_LABELS = Is(lambda v: v is None or _class_list(v),
                  "None or a non-empty list of distinct class indices (whole numbers from 0), e.g. [0, 2]")


#: scikit-learn's ``zero_division`` of a per-class score: what a class never predicted (precision) or never present
#: (recall) scores, 'warn' (0 with scikit-learn's warning), 0, 1 or NaN
ZERO_DIVISION = Is(lambda v: (isinstance(v, str) and v == "warn") or (
    isinstance(v, numbers.Real) and not isinstance(v, bool) and (v in (0, 1) or v != v)),
    "'warn', 0, 1 or nan, as scikit-learn's zero_division")
#: ROC-AUC's ``max_fpr``: None (the whole curve) or the false-positive rate the partial area stops at, as scikit-learn's
MAX_FPR = Interval(0, 1, closed="right", none_ok=True)
#: what a record of a metric without these parameters means: files written before they were taken load as they did,
#: and a metric given none of them is written as it was
_WEIGHT_DEFAULTS: dict[str, Any] = {"params.axis": -1, "params.sample_weight": None}


def _as_sample_weight(owner: str, sample_weight: Any) -> np.ndarray | None:
    """``sample_weight`` as scikit-learn takes it (one finite number per item scored, in the order of the items:
    in a fit, the validation set's), kept as a float64 array so that a saved learner holds it; None stays None."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, bytes, dict)):
        w = None
    else:
        try:
            src = sample_weight.detach().cpu().numpy() if hasattr(sample_weight, "detach") else sample_weight
            w = np.array(src, dtype=np.float64)
        except (TypeError, ValueError):
            w = None
    if w is None or w.ndim != 1 or not len(w):
        raise ParameterError(f"{owner}: sample_weight={sample_weight!r:.80} is not accepted; give one number per item "
                             "scored (in a fit, one per item of the validation set, in its order), as a list or a "
                             "1-D array, or None")
    bad = np.flatnonzero(~np.isfinite(w))
    if len(bad):
        raise ParameterError(f"{owner}: sample_weight[{int(bad[0])}] is {w[bad[0]]}; each weight must be a finite "
                             "number")
    return w


def _weight_kwargs(metric: Any, n_items: int) -> dict[str, Any]:
    """``sample_weight=`` for scikit-learn when the metric was given one, checked to hold one weight per item
    scored."""
    w = getattr(metric, "sample_weight", None)
    if w is None:
        return {}
    if len(w) != n_items:
        raise DataError(f"{type(metric).__name__} ({metric.name}): sample_weight holds {len(w)} weights and "
                        f"{n_items} items were scored; sample_weight must align with the items scored, one weight "
                        "per item in their order (in a fit, the validation set's items, in order: "
                        "len(dls.valid_ds) of them)")
    return {"sample_weight": w}


def _check_class_axis(name: str, axis: int, pred: Any) -> None:
    """Refuse a class ``axis`` that the model's outputs ``pred`` do not have."""
    if not -pred.ndim <= axis < pred.ndim:
        raise ParameterError(f"{name}: axis={axis} is not an axis of the model's outputs of shape "
                             f"{tuple(pred.shape)}; give the class axis (-1 for (bs, n_classes), 1 for "
                             "(bs, n_classes, h, w))")


def _classes_last(name: str, axis: int, pred: Any, targ: Any) -> tuple[Any, Any]:
    """Model outputs with the class axis ``metric.axis`` moved last and every other axis flattened into items
    (``(n, classes)``), and the targets flattened to match, as fastai's metrics flatten them; outputs of one
    dimension, or of two with the class axis last, are returned as they are."""
    if pred.ndim < 2:
        return pred, targ
    _check_class_axis(name, axis, pred)
    if pred.ndim == 2 and axis in (-1, 1):
        return pred, targ
    k = pred.shape[axis]
    flat = pred.movedim(axis, -1).reshape(-1, k)
    if targ.numel() != flat.shape[0]:
        raise ParameterError(f"{name}: with axis={axis} the model's outputs of shape {tuple(pred.shape)} hold "
                             f"{flat.shape[0]} items of {k} class scores, and the targets of shape "
                             f"{tuple(targ.shape)} hold {targ.numel()}; give the class axis of the outputs")
    return flat, targ.reshape(-1)


def _one_score_per_item(name: str, multi: str, loss_kind: str | None) -> str:
    """Why a metric of classes cannot score one output per item, and what to use: for a regression (the data's
    ``loss_kind`` 'mse') a metric of numbers; for a single-output binary model the multi-label metric ``multi``;
    not knowing the data (the metric called on tensors), both."""
    regression = ("for a regression (numbers) use rmse, mae or R2Score(), or, if the numbers are classes, "
                  "y_block=CategoryBlock() and a model of one output per class")
    binary = (f"for a single-output binary model use {multi} (a sigmoid, then a threshold of 0.5), or give the model "
              "2 outputs")
    said = f"{name} takes one score per class, and this model gives one score per item (the arg-max of one column is " \
           "always 0)"
    if loss_kind == "mse":
        return f"{name} scores classes, and this model gives one number per item for targets that are numbers: " + \
            regression
    return f"{said}: {binary}" if loss_kind is not None else f"{said}: {regression}; {binary}"


def _refuse_probabilities(name: str, labels: Any) -> None:
    """Refuse predicted labels (one per item) that are numbers with a fraction, such as the positive class's
    probability ``P[:, 1]``: compared with the classes they would score near 0, so the labels (``P.argmax(1)``) or
    the (n, k) class probabilities are asked for, as scikit-learn refuses continuous predictions of classes."""
    floating = labels.is_floating_point() if hasattr(labels, "is_floating_point") else \
        np.issubdtype(np.asarray(labels).dtype, np.floating)
    if not floating or labels.ndim != 1:
        return
    a = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    fractional = np.flatnonzero(np.isfinite(a) & (a != np.round(a)))
    if len(fractional):
        i = int(fractional[0])
        raise DataError(f"{name} scores predicted classes, and these predictions are one number per item with a "
                        f"fraction (item {i}: {float(a[i]):.4g}), as a probability is, not a class; give the class "
                        "labels (P.argmax(1) of the (n, k) class probabilities P) or P itself, whose arg-max is "
                        "scored, rather than one column such as P[:, 1]")


def _paired_targets(name: str, axis: int, pred: Any, labels: Any, targ: Any) -> Any:
    """The targets of the predicted classes ``labels`` (the arg-max of ``pred`` over ``axis``), one per label: of
    the same shape, or the same items with axes of size 1 left out or flattened (``(n, 1)`` targets of ``(n,)``
    labels, ``(bs * seq_len,)`` of ``(bs, seq_len)``). Targets of another shape would pair each label with another
    item's target, so they are refused, naming both shapes."""
    if tuple(targ.shape) == tuple(labels.shape):
        return targ
    same_items = targ.numel() == labels.numel() and (
        labels.ndim == 1 or targ.ndim == 1
        or [d for d in targ.shape if d != 1] == [d for d in labels.shape if d != 1])
    if same_items:
        return targ.reshape(labels.shape)
    raise DataError(f"{name}: the predicted classes (the arg-max over axis {axis} of the model's outputs of shape "
                    f"{tuple(pred.shape)}) have shape {tuple(labels.shape)}, and the targets shape "
                    f"{tuple(targ.shape)}, so they do not pair item by item; give the class axis of the outputs: "
                    f"axis=-1 for (bs, n_classes) or a language model's (bs, seq_len, vocab), axis=1 for a "
                    "segmentation model's (bs, n_classes, h, w) against (bs, h, w) masks, e.g. Accuracy(axis=1)")


class Accuracy(MeanMetric):
    """Share of items whose arg-max prediction is the target. The arg-max is over the class axis ``axis``: the last
    one of ``(bs, n_classes)`` outputs, and of a language model's ``(bs, seq_len, vocab)`` (each token an item); a
    segmentation model's ``(bs, n_classes, h, w)`` outputs, against ``(bs, h, w)`` masks, are scored along axis 1
    with the default ``axis`` (pixel accuracy, each pixel an item), as they are on data of masks (a Learner's
    ``loss_kind`` 'pixel_cross_entropy'). Predicted classes and targets of other shapes are refused, naming both.

    >>> import torch
    >>> from pipekit.metrics import Accuracy
    >>> round(float(Accuracy()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))), 4)
    0.6667
    >>> Accuracy().score([0, 1, 1, 0], [0, 1, 0, 0])  # scikit-learn's face: targets, then predicted labels
    0.75
    """

    task, multi_label_instead = "classification", "accuracy_multi (a sigmoid, then a threshold)"
    target_kinds = ("cross_entropy", "pixel_cross_entropy")  # a mask's pixels with axis=1

    param_constraints = {"axis": CLASS_AXIS}

    def __init__(self, axis: int = -1):
        self.axis = axis
        self.check_params()

    def per_item(self, pred: Any, targ: Any) -> Any:
        self._refuse_multi_label(pred, targ)
        # one column is one class's score only where the data has one class (its arg-max, 0, is then every target)
        if pred.ndim == 2 and pred.shape[-1] == 1 and targ.reshape(-1).shape[0] == pred.shape[0] \
                and self._n_classes != 1:
            raise ParameterError(_one_score_per_item(self.name, "accuracy_multi", self._loss_kind))
        # class scores (n, k) are arg-maxed; predicted labels (n,) are compared as they are (scikit-learn's face),
        # and numbers with a fraction (a probability) are refused as no labels
        # (a tensor's max(dim) gives the first maximum's index like argmax, several times faster for few classes)
        labels_given = pred.ndim == 1 and pred.shape == targ.reshape(-1).shape
        if labels_given:
            _refuse_probabilities(self.name, pred)
            return pred == targ.reshape(pred.shape)
        axis = self._class_axis(pred, targ)
        _check_class_axis(self.name, axis, pred)
        p = pred.max(axis).indices if hasattr(pred, "detach") else pred.argmax(axis)
        return p == _paired_targets(self.name, axis, pred, p, targ)

    def _class_axis(self, pred: Any, targ: Any) -> int:
        """The axis the arg-max is taken over: ``axis`` as given, except that with the default (-1) a segmentation
        model's outputs, ``(bs, n_classes, h, w)`` against ``(bs, h, w)`` masks, are scored along axis 1: on data of
        masks (``loss_kind`` 'pixel_cross_entropy'), and for outputs of more than 3 dimensions shaped so. Outputs
        of 3 shaped both ways (``(bs, seq_len, vocab)`` of a language model) keep the last axis."""
        if self.axis != -1 or pred.ndim < 3:
            return self.axis
        if self._loss_kind == "pixel_cross_entropy":
            return 1
        per_pixel = pred.ndim == targ.ndim + 1 and tuple(pred.shape[:1] + pred.shape[2:]) == tuple(targ.shape)
        classes_last = tuple(pred.shape[:-1]) == tuple(targ.shape)
        return 1 if per_pixel and (pred.ndim > 3 or not classes_last) else -1


class ErrorRate(Accuracy):
    """``1 - accuracy``.

    >>> import torch
    >>> from pipekit.metrics import ErrorRate
    >>> m = ErrorRate()
    >>> round(float(m(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))), 4), m.greater_is_better
    (0.3333, False)
    """

    greater_is_better = False

    def per_item(self, pred: Any, targ: Any) -> Any:
        return ~super().per_item(pred, targ)


class _ArgmaxScore(ArrayMetric):
    """A scikit-learn score (``sk_name`` in ``sklearn.metrics``) of arg-max predictions, with ``sk_kwargs``."""

    abstract = True
    task, activation, target_kinds = "classification", "argmax", ("cross_entropy",)
    multi_label_instead = "AccuracyMulti() (a sigmoid, then a threshold)"
    sk_name = ""
    #: the width of the class scores accumulated (the model's classes), which their arg-max no longer shows
    _width: int | None = None
    #: ``axis``: the class axis of the model's outputs, which the arg-max is taken over (``(bs, n_classes, h, w)``
    #: outputs with ``axis=1`` are scored pixel by pixel); ``sample_weight``: scikit-learn's, one weight per item scored
    axis: int = -1
    sample_weight: np.ndarray | None = None
    param_constraints: ClassVar[dict[str, Any]] = {"axis": CLASS_AXIS}
    record_defaults: ClassVar[dict[str, Any]] = dict(_WEIGHT_DEFAULTS)

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        pred, targ = _classes_last(self.name, self.axis, pred, targ)
        if pred.ndim == 2 and pred.shape[-1] == 1 and targ.reshape(-1).shape[0] == pred.shape[0]:
            multi = type(self).multi_label_instead.split(" ")[0]
            raise ParameterError(_one_score_per_item(self.name, multi, self._loss_kind))
        if pred.ndim == 2:  # the model's classes, its columns, which the arg-max below no longer shows
            self._labels_kwargs(pred.shape[1])
            self._width = int(pred.shape[1])
        super().accumulate(pred, targ, loss, bs)

    def reset(self) -> None:
        super().reset()
        self._width = None

    def _model_classes(self, y_pred: np.ndarray) -> int | None:
        """The model's number of classes: the width of its class scores (those given, or those the accumulated
        arg-max came from), else the Learner's data's (:meth:`set_classes`); None when neither is known."""
        if y_pred.ndim == 2:
            return int(y_pred.shape[1])
        return self._width or self._n_classes

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """The scikit-learn function's other arguments (checked against the data where they depend on it)."""
        return {}

    def _labels_kwargs(self, n_classes: int | None) -> dict[str, Any]:
        """``labels=`` for scikit-learn when the metric was given some (none: scikit-learn's default, every class),
        as plain class indices; an index that is no class of the model's ``n_classes`` (None: not known) is refused,
        naming it."""
        chosen = getattr(self, "labels", None)
        if chosen is None:
            return {}
        chosen = [int(x) for x in chosen]
        beyond = [x for x in chosen if n_classes is not None and x >= n_classes]
        if beyond and n_classes is not None:
            raise ParameterError(f"{self.name}: labels={chosen} names {beyond}, no class of this {n_classes}-class "
                                 f"model; give class indices from 0 to {n_classes - 1}")
        return {"labels": chosen}

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        import sklearn.metrics

        if y_pred.ndim == 1:
            _refuse_probabilities(self.name, y_pred)
        labels = y_pred.argmax(-1) if y_pred.ndim == 2 else y_pred
        return float(getattr(sklearn.metrics, self.sk_name)(y_true, labels, **self.sk_kwargs(y_true, y_pred, labels),
                                                            **_weight_kwargs(self, len(y_true))))


class _LabelScore(_ArgmaxScore):
    """A per-class score of arg-max predictions; ``average`` as in scikit-learn, ``pos_label`` the class scored
    with ``average='binary'``, ``labels`` the classes averaged otherwise (scikit-learn's: None, every class)."""

    abstract = True
    param_constraints = {"average": Options("binary", "macro", "micro", "weighted"),
                         "pos_label": Interval(0, None, integer=True), "labels": CLASS_LABELS, "axis": CLASS_AXIS,
                         "zero_division": ZERO_DIVISION}
    # labels came after the file format's first records of these scores: a record of every class (None) leaves it
    # out, so files pipekit versions before it read still write as they did (axis, sample_weight, zero_division too)
    record_defaults: ClassVar[dict[str, Any]] = {"params.labels": None, **_WEIGHT_DEFAULTS,
                                                 "params.zero_division": "warn"}
    #: whether ``get_metric`` knows it by name with an average ("f1_macro"): not a score that needs a parameter
    named: ClassVar[bool] = True

    def __init__(self, average: str = "binary", pos_label: int = 1, labels: list[int] | None = None,
                 axis: int = -1, sample_weight: Any = None, zero_division: str | float = "warn"):
        self.average, self.pos_label, self.labels = average, pos_label, labels
        self.axis, self.zero_division = axis, zero_division
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()
        if labels is not None and average == "binary":
            raise ParameterError(f"{self.name}: labels={list(labels)} chooses the classes an average is taken over, and "
                                 "average='binary' scores pos_label's class alone: pass average='macro', 'micro' or "
                                 "'weighted' with labels, or pos_label= without them")

    @property
    def scoring_name(self) -> str:
        """With an average other than 'binary', scikit-learn's scoring name (``f1_macro``, ``precision_weighted``)
        where ``get_metric`` knows it by one (:attr:`named`) and every class is scored (no ``labels``)."""
        if self.named and self.average != "binary" and self.labels is None:
            return f"{self.name.removesuffix('_score')}_{self.average}"
        return self.name

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        # the model's classes, not those that happen to be present: a validation set (and its predictions) of class
        # 0 alone is still scored as one of a two-class model
        model_classes = self._model_classes(y_pred)
        n_classes = model_classes or len(np.union1d(np.unique(y_true), np.unique(labels)))
        if self.average == "binary" and n_classes > 2:
            names = [repr(self.configured(average=a).scoring_name) for a in ("macro", "micro", "weighted")]
            by_name = f" (by name: {names[0]}, {names[1]} or {names[2]})" if self.named else ""
            raise ParameterError(f"{self.name} with average='binary' scores class 1 of a two-class model and this "
                                 f"one has {n_classes} classes: pass average='macro', 'micro' or 'weighted'{by_name}")
        # labels alone of one class (no model's width to read): scikit-learn's value, 0.0 with its warning
        if self.average == "binary" and self.pos_label >= n_classes and (model_classes is not None or n_classes > 1):
            raise ParameterError(f"{self.name}: pos_label={self.pos_label} is not a class of this {n_classes}-class "
                                 f"model; give the index of the class to score (0 to {n_classes - 1})")
        return {"average": self.average, "pos_label": self.pos_label, "zero_division": self.zero_division,
                **self._labels_kwargs(model_classes)}


class F1Score(_LabelScore):
    """F1 on arg-max predictions; ``average`` as in scikit-learn ('binary': of class 1 of a two-class model), and
    ``labels`` the class indices averaged (scikit-learn's; None: every class).

    >>> import torch
    >>> float(F1Score()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0])))
    0.6666666666666666
    >>> float(F1Score(average="macro", labels=[1])(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]),
    ...                                            torch.tensor([0, 1, 0])))  # class 1 alone
    0.6666666666666666
    """

    sk_name, multi_label_instead = "f1_score", "F1ScoreMulti() (a sigmoid, then a threshold)"
    aliases = ("f1",)


class Precision(_LabelScore):
    """Precision on arg-max predictions: of the items predicted as a class, the share that are; ``average`` as
    in scikit-learn ('binary': of class 1 of a two-class model). A class never predicted scores 0, with scikit-learn's warning.

    >>> import torch
    >>> float(Precision()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0])))
    0.5
    """

    sk_name, multi_label_instead = "precision_score", "PrecisionMulti() (a sigmoid, then a threshold)"
    metric_name, aliases = "precision_score", ("precision",)


class Recall(_LabelScore):
    """Recall on arg-max predictions: of the items of a class, the share predicted as it; ``average`` as in
    scikit-learn ('binary': of class 1 of a two-class model).

    >>> import torch
    >>> float(Recall()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])))
    0.5
    """

    sk_name, multi_label_instead = "recall_score", "RecallMulti() (a sigmoid, then a threshold)"
    metric_name, aliases = "recall_score", ("recall",)


class BalancedAccuracy(_ArgmaxScore):
    """Balanced accuracy on arg-max predictions: the mean of each class's recall, so a rare class counts as much
    as a common one (scikit-learn's ``balanced_accuracy_score``; 0.5 for a two-class model that always predicts
    the common class). ``adjusted=True`` rescales it so that chance scores 0 and a perfect model 1, as
    scikit-learn's.

    >>> import torch
    >>> float(BalancedAccuracy()(torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1.0]]),
    ...                          torch.tensor([0, 0, 1, 1])))  # recalls 2/2 and 1/2
    0.75
    """

    metric_name = sk_name = "balanced_accuracy_score"
    aliases = ("balanced_accuracy",)
    param_constraints = {"adjusted": BOOL, "axis": CLASS_AXIS}
    record_defaults: ClassVar[dict[str, Any]] = {"params.adjusted": False, **_WEIGHT_DEFAULTS}  # as _LabelScore's

    def __init__(self, adjusted: bool = False, axis: int = -1, sample_weight: Any = None):
        self.adjusted, self.axis = adjusted, axis
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        return {"adjusted": self.adjusted}


class MatthewsCorrCoef(_ArgmaxScore):
    """Matthews correlation coefficient on arg-max predictions (scikit-learn's ``matthews_corrcoef``): -1 to 1, 0
    for guessing, and 0 too for a model that always predicts one class, however common.

    >>> import torch
    >>> float(MatthewsCorrCoef()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]),
    ...                          torch.tensor([0, 1, 1, 0])))
    1.0
    """

    metric_name = sk_name = "matthews_corrcoef"

    def __init__(self, sample_weight: Any = None, axis: int = -1):
        self.axis = axis
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()


class CohenKappa(_ArgmaxScore):
    """Cohen's kappa on arg-max predictions (scikit-learn's ``cohen_kappa_score``): agreement beyond chance;
    ``weights='linear'`` or ``'quadratic'`` count near misses of ordered classes as partly right; ``labels`` (class
    indices) the classes of the agreement table, as scikit-learn's (None: every class seen).

    >>> import torch
    >>> float(CohenKappa()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 1, 0])))
    0.5
    """

    metric_name = sk_name = "cohen_kappa_score"
    aliases = ("cohen_kappa",)
    param_constraints = {"weights": Options(None, "linear", "quadratic"), "labels": CLASS_LABELS, "axis": CLASS_AXIS}
    record_defaults: ClassVar[dict[str, Any]] = {"params.labels": None, **_WEIGHT_DEFAULTS}  # as _LabelScore's

    def __init__(self, weights: str | None = None, labels: list[int] | None = None, axis: int = -1,
                 sample_weight: Any = None):
        self.weights, self.labels, self.axis = weights, labels, axis
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        return {"weights": self.weights, **self._labels_kwargs(self._model_classes(y_pred))}


#: F-beta's ``beta`` (recall counts ``beta`` times as much as precision): above 0 and at most a million, where the
#: score is already recall alone to a millionth of a millionth; scikit-learn squares it, which overflows a float
#: (OverflowError) past about 1e154, and an infinite beta scores a meaningless 1.0
FBETA_BETA = Interval(0, 1e6, closed="right")


class FBeta(_LabelScore):
    """F-beta on arg-max predictions (scikit-learn's ``fbeta_score``): recall counts ``beta`` times as much as
    precision (``beta=1`` is F1); ``average`` and ``pos_label`` as in :class:`F1Score`.

    >>> import torch
    >>> round(float(FBeta(2)(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))), 4)
    0.8333
    """

    metric_name = sk_name = "fbeta_score"
    multi_label_instead = "FBetaMulti(beta) (a sigmoid, then a threshold)"
    param_constraints = {**_LabelScore.param_constraints, "beta": FBETA_BETA}
    named = False

    def __init__(self, beta: float, average: str = "binary", pos_label: int = 1, labels: list[int] | None = None,
                 axis: int = -1, sample_weight: Any = None, zero_division: str | float = "warn"):
        self.beta = beta
        super().__init__(average, pos_label, labels, axis, sample_weight, zero_division)

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        return {**super().sk_kwargs(y_true, y_pred, labels), "beta": self.beta}


class Jaccard(_LabelScore):
    """Jaccard index on arg-max predictions (scikit-learn's ``jaccard_score``): of the items predicted as a class
    or of it, the share that are both; ``average`` and ``pos_label`` as in :class:`F1Score`.

    >>> import torch
    >>> float(Jaccard()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0])))
    0.5
    """

    metric_name = sk_name = "jaccard_score"
    multi_label_instead = "JaccardMulti() (a sigmoid, then a threshold)"
    aliases = ("jaccard",)


class HammingLoss(_ArgmaxScore):
    """Hamming loss on arg-max predictions (scikit-learn's ``hamming_loss``): the share of items predicted wrong,
    which for one label per item is the error rate.

    >>> import torch
    >>> round(float(HammingLoss()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))), 4)
    0.3333
    """

    greater_is_better = False
    metric_name = sk_name = "hamming_loss"
    multi_label_instead = "HammingLossMulti() (a sigmoid, then a threshold)"

    def __init__(self, axis: int = -1, sample_weight: Any = None):
        self.axis = axis
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()


def top_k_accuracy(inp: Any, targ: Any, k: int = 5, axis: int = -1) -> Any:
    """The share of items whose target is among the ``k`` classes scored highest (fastai's ``top_k_accuracy``,
    a metric as it is: ``metrics=[accuracy, top_k_accuracy]``, or ``partial(top_k_accuracy, k=3)``). A language
    model's ``(bs, seq_len, vocab)`` scores, against ``(bs, seq_len)`` targets, are scored token by token.

    >>> import torch
    >>> float(top_k_accuracy(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), torch.tensor([1, 0]), k=2))
    0.5
    >>> float(top_k_accuracy(torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]]), torch.tensor([[1, 0]]), k=2))
    0.5
    """
    if inp.ndim == targ.ndim + 1 and inp.ndim > 2:  # a language model's (bs, seq_len, vocab): each token an item
        inp, targ = _classes_last("top_k_accuracy", axis, inp, targ)
        axis = -1
    if inp.ndim != 2:
        raise ParameterError(f"top_k_accuracy takes one score per class for each item, (n, classes), or a language "
                             f"model's (bs, seq_len, vocab) against (bs, seq_len) targets; got scores of shape "
                             f"{tuple(inp.shape)} and targets of shape {tuple(targ.shape)}")
    if targ.numel() != inp.shape[0]:
        raise DataError(f"top_k_accuracy: the scores of shape {tuple(inp.shape)} hold {inp.shape[0]} items and the "
                        f"targets of shape {tuple(targ.shape)} hold {targ.numel()}; give one target per item")
    k = min(int(k), inp.shape[axis])
    top = inp.topk(k=k, dim=axis).indices
    return (top == targ.reshape(-1, 1)).any(dim=axis).float().mean()


#: the split whose validation targets hold every class, which a metric undefined without some class asks for
_STRATIFIED = ("a split that holds every class (a stratified one, e.g. TrainTestSplitter(valid_pct=0.2, seed=42, "
               "stratify_col=<the label column>))")


class RocAuc(ArrayMetric):
    """Area under the ROC curve on class probabilities (one-vs-rest for several classes): a softmax of several
    scores per item, or, of one (a single-output binary model, BCEWithLogitsLossFlat), that score read as the
    positive class's logit (a sigmoid), as scikit-learn scores the positive class's probability.

    For several classes, targets holding no item of one of the model's classes are refused with the default
    one-vs-rest macro average (that class's AUC, and so the average, is undefined), naming the class; the
    ``average='weighted'`` and ``multi_class='ovo'`` averages are over the classes present, as scikit-learn's.

    >>> import numpy as np
    >>> from pipekit.metrics import RocAuc
    >>> probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    >>> RocAuc().score(np.array([0, 1, 2, 1]), probs)  # one-vs-rest, the mean over classes
    1.0
    >>> RocAuc(multi_class="ovo").scoring_name
    'roc_auc_ovo'
    """

    task, activation, multi_label_instead = "classification", "softmax", "RocAucMulti() (sigmoid probabilities)"
    target_kinds = ("cross_entropy",)
    metric_name, aliases = "roc_auc_score", ("roc_auc",)

    param_constraints = {"average": Options("macro", "weighted", "micro"), "multi_class": Options("ovr", "ovo"),
                         "axis": CLASS_AXIS, "max_fpr": MAX_FPR}
    record_defaults: ClassVar[dict[str, Any]] = {**_WEIGHT_DEFAULTS, "params.max_fpr": None}  # as _LabelScore's

    def __init__(self, average: str = "macro", multi_class: str = "ovr", axis: int = -1, sample_weight: Any = None,
                 max_fpr: float | None = None):
        self.average, self.multi_class, self.axis, self.max_fpr = average, multi_class, axis, max_fpr
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()

    def check_params(self) -> None:
        """Each parameter as ``param_constraints`` says, and the two together as scikit-learn's ``roc_auc_score``
        takes them: the micro average pools one-vs-rest scores, which one-vs-one has none of, and one-vs-one weighs
        no items."""
        super().check_params()
        if self.multi_class == "ovo" and self.sample_weight is not None:
            raise ParameterError(f"{type(self).__name__}: multi_class='ovo' scores pairs of classes and scikit-learn "
                                 "weighs no items there; give sample_weight with multi_class='ovr', or leave it out")
        if (self.multi_class, self.average) == ("ovo", "micro"):
            raise ParameterError(f"{type(self).__name__}: average='micro' pools every class's one-vs-rest scores, and "
                                 "multi_class='ovo' scores pairs of classes, so scikit-learn takes the two together "
                                 "nowhere; give multi_class='ovo' with average='macro' or 'weighted', or "
                                 "average='micro' with multi_class='ovr'")

    @property
    def scoring_name(self) -> str:
        """scikit-learn's scoring name of its ``multi_class`` and ``average`` (``roc_auc_ovo``,
        ``roc_auc_ovr_weighted``; ``roc_auc_ovr_micro`` for the micro average, which has none); its name with the
        defaults."""
        if (self.average, self.multi_class) == ("macro", "ovr"):
            return self.name
        return f"roc_auc_{self.multi_class}{'' if self.average == 'macro' else f'_{self.average}'}"

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        super().accumulate(*_classes_last(self.name, self.axis, pred, targ), loss, bs)

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred, self._n_classes)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        weights = _weight_kwargs(self, len(y_true))
        if y_pred.ndim == 1 or y_pred.shape[1] == 2:
            present = np.unique(np.asarray(y_true))
            if len(present) < 2:  # scikit-learn's NaN, with a warning that names neither the class nor the fix
                warn(f"{self.name}: the targets scored (in a fit, the validation set's) hold only class "
                     f"{present[0].item() if len(present) else 'none'} of the two, and ROC-AUC ranks the items of one "
                     "class against those of the other, so it is undefined and scored NaN (which a tracker, such "
                     "as SaveModelCallback, never counts as the best); score " + _STRATIFIED)
                return float("nan")
            return roc_auc_score(y_true, y_pred if y_pred.ndim == 1 else y_pred[:, 1], max_fpr=self.max_fpr,
                                 **weights)
        if self.max_fpr is not None:
            raise ParameterError(f"{self.name}: max_fpr={self.max_fpr} takes the partial area of a two-class model's "
                                 f"curve, and this model has {y_pred.shape[1]} classes: leave max_fpr=None, or score a "
                                 "two-class model")
        missing = self._refuse_undefined(y_true, y_pred.shape[1])
        if missing and (self.multi_class, self.average) == ("ovr", "weighted"):
            # a class with no item weighs 0 in the average over the rest: scikit-learn's own sum, over the classes
            # present (it scores the others NaN, with a warning, and weighs them 0)
            y = np.asarray(y_true).astype(np.int64)
            w = np.ones(len(y)) if not weights else np.asarray(weights["sample_weight"], dtype=np.float64)
            present = np.setdiff1d(np.arange(y_pred.shape[1]), missing)
            scores = [roc_auc_score(y == c, y_pred[:, c], **weights) for c in present]
            return float(np.average(scores, weights=[w[y == c].sum() for c in present]))
        return roc_auc_score(y_true, y_pred, average=self.average, multi_class=self.multi_class,
                             labels=np.arange(y_pred.shape[1]), **weights)

    def _refuse_undefined(self, y_true: np.ndarray, n_classes: int) -> list[int]:
        """Refuse targets of several classes whose score is undefined (scikit-learn's NaN, which would pass as a
        value): one-vs-rest's macro average when a class of the model has no item (its class against the rest has
        no positive), and any average but one-vs-rest's micro when the targets hold one class alone. Returns the
        classes with no item (the other averages are over the classes present)."""
        present = np.unique(np.asarray(y_true).astype(np.int64))
        missing = [int(c) for c in np.setdiff1d(np.arange(n_classes), present)]
        if not missing or (self.multi_class, self.average) == ("ovr", "micro"):
            return missing
        stratified = _STRATIFIED
        if len(present) < 2:
            raise DataError(f"{self.name}: the targets scored hold class {int(present[0])} alone of this "
                            f"{n_classes}-class model, and ROC-AUC needs items of two classes at least; score "
                            f"{stratified}, or RocAuc(average='micro'), which pools every class's scores")
        if (self.multi_class, self.average) == ("ovr", "macro"):
            shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise DataError(f"{self.name}: the targets scored hold no item of class {shown} of this {n_classes}-class "
                            "model, so its one-vs-rest ROC-AUC, and the macro average over every class, are undefined; "
                            f"score {stratified}, or average over the classes present: "
                            "RocAuc(average='weighted') or RocAuc(multi_class='ovo')")
        return missing


class RocAucBinary(RocAuc):
    """ROC-AUC of a two-class model: of the positive class's probability, from two scores per item (a softmax, as
    for CrossEntropyLossFlat, then its second column) or from one logit (a sigmoid). A model of more classes is
    refused (``RocAuc()`` scores it one-vs-rest).

    >>> import torch
    >>> float(RocAucBinary()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]), torch.tensor([0, 1, 1])))
    1.0
    """

    aliases = ("roc_auc_binary",)

    @property
    def scoring_name(self) -> str:
        """Its name: of two classes, ``average`` and ``multi_class`` change nothing scored."""
        return self.name

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        _two_classes(self.name, y_pred, "use RocAuc() (one-vs-rest) for several classes")
        return super().compute(y_true, y_pred)


def _two_classes(name: str, y_pred: np.ndarray, fix: str) -> None:
    """Refuse the probabilities of a model of more than two classes, for a metric of two, saying ``fix``."""
    if y_pred.ndim == 2 and y_pred.shape[1] > 2:
        raise ParameterError(f"{name} scores a two-class model and this one gives {y_pred.shape[1]} scores per item: "
                             f"{fix}")


def _positive_probs(y_pred: np.ndarray, pos_label: int) -> np.ndarray:
    """The probability of class ``pos_label`` (0 or 1) of a two-class model: its column of two, or, of one (class
    1's probability), that or one minus it."""
    if y_pred.ndim == 2:
        return y_pred[:, pos_label]
    return y_pred if pos_label == 1 else 1 - y_pred


def _class_probs(pred: Any, n_classes: int | None = None) -> Any:
    """Class probabilities from a model's outputs: a softmax of several scores per item, a sigmoid of one (a
    single-output binary model's logit of the positive class). One column of a model whose data has one class
    (``n_classes``, as a Learner tells its metrics) is that class's score, its softmax."""
    one_class = n_classes == 1
    return apply_activation(pred, "softmax" if pred.ndim == 2 and (pred.shape[1] > 1 or one_class) else "sigmoid")


class APScoreBinary(ArrayMetric):
    """Average precision of a two-class model (scikit-learn's ``average_precision_score``): the area under the
    precision-recall curve of the positive class's probability, from two scores per item (a softmax, then its
    second column) or one logit (a sigmoid). A model of more classes is refused.

    >>> import torch
    >>> float(APScoreBinary()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]), torch.tensor([0, 1, 1])))
    1.0
    """

    task, metric_name, aliases = "classification", "average_precision_score", ("average_precision",)
    target_kinds = ("cross_entropy",)
    multi_label_instead = "APScoreMulti() (sigmoid probabilities)"
    param_constraints = {"axis": CLASS_AXIS, "average": Options("macro", "weighted", "micro", "samples", None),
                         "pos_label": Options(0, 1)}
    record_defaults: ClassVar[dict[str, Any]] = {**_WEIGHT_DEFAULTS, "params.average": "macro", "params.pos_label": 1}

    def __init__(self, axis: int = -1, average: str | None = "macro", pos_label: int = 1, sample_weight: Any = None):
        """``pos_label``: the class (0 or 1) whose items are the positives, ranked by that class's probability;
        ``average``: scikit-learn's (of one column of scores, every average is that column's)."""
        self.axis, self.average, self.pos_label = axis, average, pos_label
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        super().accumulate(*_classes_last(self.name, self.axis, pred, targ), loss, bs)

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import average_precision_score

        _two_classes(self.name, y_pred, "it takes the probability of class 1 of two")
        return average_precision_score(y_true, _positive_probs(y_pred, self.pos_label), average=self.average,
                                       pos_label=self.pos_label, **_weight_kwargs(self, len(y_true)))


class BrierScore(ArrayMetric):
    """Brier score of a classifier (scikit-learn's ``brier_score_loss``): the mean squared difference between the
    predicted probabilities (a softmax of several scores per item, a sigmoid of one) and the 0/1 outcome. For two
    classes it is that of class 1's probability (0 to 1); for more, the squares are summed over the classes (0 to
    2), as scikit-learn scores several classes. fastai's ``BrierScore`` scores the arg-max labels instead, which
    for two classes is the error rate; this one measures how well calibrated the probabilities are.

    >>> import torch
    >>> float(BrierScore()(torch.tensor([[0.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1])))
    0.25
    """

    greater_is_better, task, metric_name = False, "classification", "brier_score_loss"
    target_kinds = ("cross_entropy",)
    multi_label_instead = "BrierScoreMulti() (sigmoid probabilities)"
    param_constraints = {"axis": CLASS_AXIS, "pos_label": Options(None, 0, 1)}
    record_defaults: ClassVar[dict[str, Any]] = {**_WEIGHT_DEFAULTS, "params.pos_label": None}

    def __init__(self, axis: int = -1, sample_weight: Any = None, pos_label: int | None = None):
        """``pos_label``: of a two-class model, the class (0 or 1) whose probability is scored (None: 1)."""
        self.axis, self.pos_label = axis, pos_label
        self.sample_weight = _as_sample_weight(type(self).__name__, sample_weight)
        self.check_params()

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        super().accumulate(*_classes_last(self.name, self.axis, pred, targ), loss, bs)

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import brier_score_loss

        weights = _weight_kwargs(self, len(y_true))
        if y_pred.ndim == 2 and y_pred.shape[1] > 2:
            if self.pos_label is not None:
                raise ParameterError(f"{self.name}: pos_label={self.pos_label} chooses the class scored of a two-class "
                                     f"model, and this one has {y_pred.shape[1]} classes, each scored: leave "
                                     "pos_label=None")
            return brier_score_loss(y_true, y_pred, labels=np.arange(y_pred.shape[1]), **weights)
        pos = 1 if self.pos_label is None else self.pos_label
        return brier_score_loss(y_true, _positive_probs(y_pred, pos), pos_label=pos, **weights)


class LogLoss(ArrayMetric):
    """Mean negative log-probability of the true class, as scikit-learn's ``log_loss`` computes it
    (probabilities clipped to ``[eps, 1 - eps]`` with the machine epsilon of their dtype). The classes are
    the prediction's columns, so a split holding one class scores as any other. A model's outputs are a softmax
    of several scores per item, or, of one (a single-output binary model, BCEWithLogitsLossFlat), the positive
    class's logit, a sigmoid; ``score`` takes probabilities, (n, k) or the positive class's (n,).

    >>> import numpy as np
    >>> from pipekit.metrics import LogLoss
    >>> round(LogLoss().score(np.array([0, 1]), np.array([[0.8, 0.2], [0.4, 0.6]])), 4)  # -(log 0.8 + log 0.6) / 2
    0.367
    >>> LogLoss().score(np.array([0, 0]), np.array([[0.8, 0.2], [0.6, 0.4]])) > 0  # a split of one class scores too
    True
    """

    greater_is_better, task, activation = False, "classification", "softmax"
    target_kinds = ("cross_entropy",)
    multi_label_instead = "the loss itself (BCEWithLogitsLossFlat), or RocAucMulti()"

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred, self._n_classes)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import log_loss as sk_log_loss

        labels = np.arange(y_pred.shape[1]) if y_pred.ndim == 2 else np.arange(2)
        if y_pred.ndim == 2 and np.allclose(y_pred.sum(1), 1.0, rtol=0, atol=1e-5):
            # probabilities sum to 1 only within the precision they were computed in, which scikit-learn warns
            # of: they are made to sum to 1 (in float64), then kept in their own dtype, whose epsilon scikit-learn
            # clips them at (float32's for a net's softmax, as scikit-learn's log_loss of those same numbers)
            dtype = np.asarray(y_pred).dtype if np.asarray(y_pred).dtype.kind == "f" else np.float64
            y64 = np.asarray(y_pred, dtype=np.float64)
            y_pred = (y64 / y64.sum(1, keepdims=True)).astype(dtype)
        return float(sk_log_loss(np.asarray(y_true, dtype=np.int64), y_pred, labels=labels))


accuracy, error_rate, log_loss, roc_auc = Accuracy(), ErrorRate(), LogLoss(), RocAuc()
