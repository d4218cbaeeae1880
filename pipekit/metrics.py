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

>>> import numpy as np, torch
>>> float(accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])))
0.5
>>> rmse.score(np.array([1.0, 2.0]), np.array([1.0, 4.0])), rmse.greater_is_better
(1.4142135623730951, False)
>>> accuracy_multi(thresh=0.2).thresh
0.2
"""
from __future__ import annotations

import functools
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pipekit.core.component import Component, construct
from pipekit.core.errors import DataError, FieldError, ParameterError, warn
from pipekit.core.registry import registered
from pipekit.core.validate import CLASS_AXIS, Interval, Is, Options, check

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

TASKS = ("classification", "regression")


def _torch() -> Any:
    import torch

    return torch


class Metric(Component):
    """Base class; see the module docstring. ``name`` defaults to the snake-case class name."""

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "metric"
    greater_is_better: ClassVar[bool] = True
    #: the task a backend metric applies to ("classification", "regression" or None for either)
    task: ClassVar[str | None] = None
    #: what ``accumulate`` applies to raw model outputs: None, "softmax", "sigmoid" or "argmax"
    activation: ClassVar[str | None] = None
    #: the name a Learner shows and records it under (fastai's, e.g. ``precision_score``); default: the class name
    metric_name: ClassVar[str] = ""
    #: other names ``get_metric`` accepts for it (e.g. "r2" for ``r2_score``), and a tracker's ``monitor=`` (the
    #: names pipekit once recorded it under, e.g. "roc_auc_binary", so saved recipes keep working)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: for a metric of single-label classes, the multi-label one to use instead; given, a Learner's targets of
    #: several 0/1 labels per item (shaped like the predictions) are refused, naming it
    multi_label_instead: ClassVar[str] = ""

    @property
    def name(self) -> str:
        if self.metric_name:
            return self.metric_name
        import re

        return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(self).__name__).lower()

    def reset(self) -> None:
        raise NotImplementedError

    #: the number of classes of a learner's single-label target, see :meth:`set_classes` (None: not known)
    _n_classes: int | None = None

    def set_classes(self, n_classes: int | None) -> None:
        """Told by a Learner before each validation pass: the number of classes of its data's single-label target
        (None for any other target). One score per item is then read from the data, not guessed from its shape:
        a one-class classifier's one column scores as a class, a single-output binary model's is refused."""
        self._n_classes = n_classes

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        raise NotImplementedError

    @property
    def value(self) -> float | None:
        raise NotImplementedError

    def score(self, y_true: Any, y_pred: Any) -> float:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``metric(pred, targ)``: the value on those tensors; ``metric(**params)``: a configured copy."""
        m = self.configured(**kwargs)
        if not args:
            return m
        if len(args) != 2:
            raise ParameterError(f"{self.name}(pred, targ) takes two tensors, got {len(args)} arguments")
        m.reset()
        m.accumulate(args[0], args[1], None, len(args[0]))
        return m._batch_value()

    def configured(self, **params: Any) -> Metric:
        """A fresh copy with some parameters changed, checked as the constructor checks them."""
        return construct(type(self), {**self.get_params(deep=False), **params})

    def _batch_value(self) -> Any:
        return self.value

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a > b if self.greater_is_better else a < b

    def loss(self, value: float) -> float:
        """The value as something to minimise, so gains and drops compare across metrics."""
        return -value if self.greater_is_better else value

    def _refuse_multi_label(self, pred: Any, targ: Any) -> None:
        if self.multi_label_instead and _is_multi_label(pred, targ):
            raise ParameterError(f"{self.name} scores one class per item, and these targets hold several 0/1 labels per "
                                 f"item ({tuple(targ.shape)}, as BCEWithLogitsLossFlat trains on): use "
                                 f"{self.multi_label_instead} for multi-label targets")

    def _activate(self, pred: Any) -> Any:
        if self.activation == "softmax":
            return pred.float().softmax(-1)
        if self.activation == "sigmoid":
            return pred.float().sigmoid()
        if self.activation == "argmax":
            return pred.argmax(-1)
        return pred


def _is_multi_label(pred: Any, targ: Any) -> bool:
    """Targets of several labels per item: floats shaped like the (n, k) predictions, k > 1."""
    return (hasattr(pred, "ndim") and pred.ndim == 2 and pred.shape[1] > 1 and hasattr(targ, "is_floating_point")
            and tuple(targ.shape) == tuple(pred.shape) and targ.is_floating_point())


class MeanMetric(Metric):
    """A mean of per-item quantities (``batch_stats`` gives their sum and count), turned into the value
    by ``finalize`` (e.g. a square root for RMSE). Sums stay on the device."""

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        v = self.per_item(pred, targ)
        # summed in float64: exact counts past 2**24 items (pixels), and errors as precise as scikit-learn's
        return v.sum(dtype=_torch().float64), v.numel()

    def per_item(self, pred: Any, targ: Any) -> Any:
        raise NotImplementedError

    def finalize(self, mean: float) -> float:
        return mean

    def reset(self) -> None:
        self._total: Any = 0.0
        self._count: Any = 0

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if not hasattr(self, "_total"):
            self.reset()
        s, n = self.batch_stats(pred.detach() if hasattr(pred, "detach") else pred, targ, loss)
        self._total = self._total + s
        self._count = self._count + n

    @property
    def value(self) -> float | None:
        count = float(getattr(self, "_count", 0))
        return self.finalize(float(self._total) / count) if count else None

    def _batch_value(self) -> Any:
        count = self._count
        return self._total / count if self.finalize is MeanMetric.finalize or not count else \
            _torch().as_tensor(self.finalize(float(self._total) / float(count)))

    def score(self, y_true: Any, y_pred: Any) -> float:
        torch = _torch()
        _check_not_empty(self, y_true, y_pred)
        self.reset()
        # a copy of a read-only array (a loaded model's predictions, a slice of a frame): torch warns about sharing one
        self.accumulate(*(torch.as_tensor(np.require(v, requirements='W')) for v in (y_pred, y_true)))
        v = self.value
        return float("nan") if v is None else float(v)


class ArrayMetric(Metric):
    """Computed once on every (activated) prediction of the set: ``compute(y_true, y_pred)`` on NumPy arrays."""

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        self._preds: list[Any] = []
        self._targs: list[Any] = []

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if not hasattr(self, "_preds"):
            self.reset()
        self._refuse_multi_label(pred, targ)
        self._preds.append(self._activate(pred.detach()).cpu())
        self._targs.append(targ.detach().cpu())

    @property
    def value(self) -> float | None:
        if not getattr(self, "_preds", None):
            return None
        torch = _torch()
        p, t = torch.cat(self._preds).numpy(), torch.cat(self._targs).numpy()
        return self.score(t, p)

    def score(self, y_true: Any, y_pred: Any) -> float:
        # a single column of targets or predictions is the column itself
        t, p = (a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a
                for a in (np.asarray(y_true), np.asarray(y_pred)))
        _check_not_empty(self, t, p)
        return float(self.compute(t, p))


def _check_not_empty(metric: Metric, y_true: Any, y_pred: Any) -> None:
    """Scoring no samples is an error, as in scikit-learn (a number would hide an empty split)."""
    if len(y_true) == 0 or len(y_pred) == 0:
        raise DataError(f"{metric.name}: found empty input ({len(y_true)} targets, {len(y_pred)} predictions) while "
                        "a minimum of 1 sample is required; check the split being scored")


def _takes_two(fn: Any) -> bool:
    """Whether ``fn`` takes the predictions and the targets: ``fn(pred, targ)``, or ``fn(pred, *targs)`` for data of
    several targets (the course's ``disease_err(inp, disease, variety)``)."""
    return callable(fn) and _positional_count(fn, 2) is not None


def _positional_count(fn: Any, n: int) -> int | None:
    """``n`` when ``fn`` can be called with ``n`` positional arguments, else the number of positional arguments it
    needs when that is more than 2 (and nothing else is required), else None. A builtin without a signature: ``n``."""
    try:
        sig = inspect.signature(fn)
    except ValueError:  # a builtin without a signature: nothing to check
        return n
    try:
        sig.bind(*[None] * n)
        return n
    except TypeError:
        pass
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_kw = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    need = sum(p.default is p.empty for p in positional)
    return need if need > 2 and not required_kw else None


#: a function named like a loss or an error is better smaller (scikit-learn's ``log_loss``, ``mean_squared_error``,
#: ``max_error``, ``mean_tweedie_deviance``; a user's ``my_rmse``, ``cross_entropy``); any other name is better larger
_LOWER_IS_BETTER = re.compile(r"loss|error|deviance|entropy|perplexity|(^|_)(mse|rmse|mae|mape|msle|rmsle)($|_)",
                              re.IGNORECASE)
#: scikit-learn metrics that score class probabilities (the others of ``sklearn.metrics`` take labels), and those
#: of them that take the positive class's column for two classes
_SKLEARN_SCORES = {"roc_auc_score", "average_precision_score", "log_loss", "brier_score_loss", "top_k_accuracy_score",
                   "d2_log_loss_score"}
_SKLEARN_POSITIVE = {"roc_auc_score", "average_precision_score", "brier_score_loss"}


class FuncMetric(MeanMetric):
    """A plain function as a metric. In a Learner ``fn(pred, targ)`` returns a batch mean (fastai's
    convention); with ``y_first`` it is ``fn(y_true, y_pred)`` on whole arrays (scikit-learn's).

    ``greater_is_better``: None (the default) reads it from the function's name: a loss or an error
    (``log_loss``, ``mean_squared_error``, ``my_rmse``) is better smaller, anything else larger, and a name
    ending in ``score`` (``d2_absolute_error_score``) always larger. A lambda has no name to read: where it
    chooses between models (``y_first``) a warning says it is taken as better larger. A function of
    ``sklearn.metrics`` gets what it takes from a classifier's probabilities: the labels (``accuracy_score``,
    ``f1_score``, ...), the positive class's column for two classes (``roc_auc_score``,
    ``average_precision_score``, ``brier_score_loss``) or the probabilities (``log_loss``); any other function
    gets the probabilities, ``(n, n_classes)``.

    >>> from sklearn.metrics import accuracy_score, mean_squared_error
    >>> FuncMetric(mean_squared_error, y_first=True).greater_is_better
    False
    >>> FuncMetric(accuracy_score, y_first=True).score(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    1.0
    """

    param_constraints = {"fn": Is(_takes_two, "a function of the predictions and the targets, fn(pred, targ) (or "
                                              "fn(pred, *targs) for data of several targets)"),
                         "greater_is_better": Options(True, False, None)}
    #: a file's function is called on every batch: a registered function (or metric), never a getter such as the
    #: item finder get_files, a module, a callback...
    ref_kinds = {"params.fn": ("function", "metric")}

    def __init__(self, fn: Callable[..., Any], greater_is_better: bool | None = None, y_first: bool = False):
        self.fn, self.greater_is_better, self.y_first = fn, greater_is_better, y_first  # type: ignore[misc,assignment]
        self.check_params()
        if greater_is_better is None:
            # a score is better larger whatever it scores (scikit-learn's d2_absolute_error_score, r2_score)
            name = self.name
            self.greater_is_better = (name.lower().endswith("score")  # type: ignore[misc]
                                      or not _LOWER_IS_BETTER.search(name))
            if y_first and name == "<lambda>":  # chosen on: a loss maximised would pick the worst model
                warn("a lambda metric has no name to read its direction from; it is taken as better larger. "
                     "For a loss or an error pass FuncMetric(fn, greater_is_better=False, y_first=True), or "
                     "name the function")

    @property
    def name(self) -> str:
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        return getattr(fn, "__name__", type(fn).__name__)

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A file's metric function (of a registered kind, checked as it was read) is a function or a metric, not a
        class: calling a class builds an object of it on every batch."""
        super().state_from_data(state)
        if isinstance(self.fn, type):
            raise FieldError("params.fn", f"is the class {self.fn.__qualname__!s:.60}, which builds an object when "
                                          "called; a metric's function is fn(pred, targ), a registered function; the "
                                          "file is damaged or was not written by pipekit")

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        n = len(pred)
        # the targets of data with several (a tuple) each as an argument, as fastai calls fn(pred, *yb), when the
        # function takes that many; a function of two gets them as one tuple
        several = isinstance(targ, tuple) and _positional_count(self.fn, 1 + len(targ)) == 1 + len(targ)
        value = _torch().as_tensor(self.fn(pred, *targ) if several else self.fn(pred, targ))  # a number: a batch mean
        if value.numel() != 1:
            raise ParameterError(f"metric {self.name!r} returned {tuple(value.shape)} values for a batch of {n}: a "
                                 "metric function fn(pred, targ) returns the batch's mean (e.g. end with .mean())")
        return value.detach().float().reshape(()) * n, n

    def score(self, y_true: Any, y_pred: Any) -> float:
        if not self.y_first:
            return super().score(y_true, y_pred)
        fn, kw = self.fn, {}
        base = fn.func if isinstance(fn, functools.partial) else fn
        p = np.asarray(y_pred) if not hasattr(y_pred, "detach") else y_pred
        if str(getattr(base, "__module__", "")).startswith("sklearn.metrics") and getattr(p, "ndim", 0) == 2 \
                and p.shape[1] >= 2:  # a classifier's probabilities, turned into what the function takes
            name = getattr(base, "__name__", "")
            if name not in _SKLEARN_SCORES:
                p = np.asarray(p).argmax(1)
            elif name in _SKLEARN_POSITIVE and p.shape[1] == 2:
                p = np.asarray(p)[:, 1]
            elif name in ("log_loss", "top_k_accuracy_score"):
                if name == "log_loss":  # rows of an ensemble's mix sum to 1 up to rounding, which it warns of
                    p = np.asarray(p, dtype=np.float64)
                    p = p / p.sum(1, keepdims=True)
                if not (isinstance(fn, functools.partial) and "labels" in fn.keywords):
                    kw = {"labels": np.arange(p.shape[1])}  # every class, even one the scored rows lack
        return float(fn(y_true, p, **kw))


#: what ``AccumMetric`` applies to a model's outputs before its function sees them (fastai's ``ActivationType``)
_ACCUM_ACTIVATIONS = ("no", "sigmoid", "softmax", "binarysoftmax")


def _one_number(metric: Metric, v: Any) -> float:
    """A metric function's answer as a float: a number, a 0-d (or one-value) tensor or array."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.dtype == object or a.size != 1:
        raise ParameterError(f"metric {metric.name!r} returned {v!r:.60} ({type(v).__name__}, not one number): a metric "
                             "function returns one number for the whole set (e.g. scipy's pearsonr(...)[0])")
    return float(a.reshape(()))


class AccumMetric(ArrayMetric):
    """A function of every prediction and target of the set, computed once at the end of the pass (fastai's
    ``AccumMetric``): what a Learner's metric is when its value is no mean of per-item values (a correlation, a
    kappa, an AUC).

    Each batch's outputs go through ``activation`` ('no', 'sigmoid', 'softmax' over ``dim_argmax``, or
    'binarysoftmax': the softmax's last column, the positive class of two), else an arg-max over ``dim_argmax``
    when it is given; then, with ``thresh``, ``pred >= thresh``. With ``flatten`` predictions and targets are
    flattened (and must then be as many). ``to_np`` hands the function NumPy arrays (else tensors),
    ``invert_arg`` calls it as ``func(targs, preds)`` (scikit-learn's order) instead of ``func(preds, targs)``,
    and the other keyword arguments go to the function on every call. ``name`` is the recorder's column (default:
    the function's name); a name of a loss or an error (``hamming_loss``, ``my_mse``) is better smaller, as for
    :class:`FuncMetric`. ``metric(preds, targs)`` and ``score(y_true, y_pred)`` take outputs as a model gives them.

    A file keeps it only when its function is registered (``pipekit.register(fn, kind="function")``) and no keyword
    arguments are bound to it; otherwise an export leaves it out, as it leaves out a metric of a plain function.

    >>> import torch
    >>> from sklearn.metrics import cohen_kappa_score
    >>> kappa = AccumMetric(cohen_kappa_score, dim_argmax=-1, to_np=True, invert_arg=True, weights="quadratic")
    >>> kappa.name, float(kappa(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]),
    ...                         torch.tensor([0, 1, 2])))
    ('cohen_kappa_score', 1.0)
    """

    param_constraints = {
        "func": Is(lambda f: callable(f) and not isinstance(f, type) and _positional_count(f, 2) == 2,
                   "a function of the predictions and the targets of the whole set, func(preds, targs)"),
        "dim_argmax": Interval(None, None, integer=True, none_ok=True),
        "activation": Options(*_ACCUM_ACTIVATIONS, None),
        "thresh": Interval(None, None, none_ok=True),
        "to_np": Options(True, False), "invert_arg": Options(True, False), "flatten": Options(True, False),
        "name": Is(lambda v: v is None or (isinstance(v, str) and v != ""), "None or a non-empty name"),
    }
    param_attrs = {"name": "_name"}  # ``name`` is the metric's property
    #: a file's function is called on every pass: a registered function, never a class, getter or callback
    ref_kinds = {"params.func": ("function",)}

    def __init__(self, func: Callable[..., Any], dim_argmax: int | None = None, activation: str | None = "no",
                 thresh: float | None = None, to_np: bool = False, invert_arg: bool = False, flatten: bool = True,
                 name: str | None = None, **kwargs: Any):
        # the function's keyword arguments are bound to it, so copies and reprs carry them
        self.func = functools.partial(func, **kwargs) if kwargs else func
        self.dim_argmax, self.activation, self.thresh = dim_argmax, activation, thresh  # type: ignore[misc]
        self.to_np, self.invert_arg, self.flatten, self._name = to_np, invert_arg, flatten, name
        self.check_params()
        low = self.name.lower()
        self.greater_is_better = low.endswith("score") or not _LOWER_IS_BETTER.search(low)  # type: ignore[misc]

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        fn = self.func.func if isinstance(self.func, functools.partial) else self.func
        return str(getattr(fn, "__name__", type(fn).__name__))

    def _activate(self, pred: Any) -> Any:
        act = self.activation
        if act in ("softmax", "binarysoftmax"):
            pred = pred.float().softmax(-1 if self.dim_argmax is None else self.dim_argmax)
            if act == "binarysoftmax":
                pred = pred[:, -1]
        elif act == "sigmoid":
            pred = pred.float().sigmoid()
        elif self.dim_argmax is not None:
            pred = pred.argmax(self.dim_argmax)
        return pred if self.thresh is None else pred >= self.thresh

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if not hasattr(self, "_preds"):
            self.reset()
        if isinstance(targ, (tuple, list)):
            raise ParameterError(f"{self.name} scores one target and these data have {len(targ)}; score each with a "
                                 "metric function fn(pred, *targs)")
        p, t = self._activate(pred.detach()), targ.detach()
        if self.flatten:
            p, t = p.reshape(-1), t.reshape(-1)
            if len(p) != len(t):
                raise ParameterError(
                    f"{self.name}: {len(p)} predictions for {len(t)} targets once flattened (outputs "
                    f"{tuple(pred.shape)}, targets {tuple(targ.shape)}): for class scores take the arg-max "
                    "(dim_argmax=-1, or skm_to_fastai's is_class=True) or the positive class "
                    "(activation='binarysoftmax'); for several values per item pass flatten=False")
        self._preds.append(p.cpu())
        self._targs.append(t.cpu())

    @property
    def value(self) -> float | None:
        if not getattr(self, "_preds", None):
            return None
        torch = _torch()
        p, t = torch.cat(self._preds), torch.cat(self._targs)
        if self.to_np:
            p, t = p.numpy(), t.numpy()
        return _one_number(self, self.func(t, p) if self.invert_arg else self.func(p, t))

    def score(self, y_true: Any, y_pred: Any) -> float:
        torch = _torch()
        _check_not_empty(self, y_true, y_pred)
        self.reset()
        self.accumulate(*(v if hasattr(v, "detach") else torch.as_tensor(np.require(v, requirements="W"))
                          for v in (y_pred, y_true)))
        v = self.value
        return float("nan") if v is None else v


def skm_to_fastai(func: Callable[..., Any], is_class: bool = True, thresh: float | None = None, axis: int = -1,
                  activation: str | None = None, **kwargs: Any) -> AccumMetric:
    """A scikit-learn metric ``func(y_true, y_pred, **kwargs)`` as a Learner's metric (fastai's ``skm_to_fastai``):
    an :class:`AccumMetric` given NumPy arrays in scikit-learn's order. ``is_class``: the outputs are class scores,
    arg-maxed over ``axis`` (with ``thresh``: a sigmoid, then ``>= thresh``, for several labels per item);
    ``activation`` overrides that choice ('no', 'sigmoid', 'softmax', 'binarysoftmax'). Other keyword arguments
    (``flatten=False``, ``name=``, or the function's own, such as ``average='macro'``) go to AccumMetric.

    >>> import torch
    >>> from sklearn.metrics import cohen_kappa_score, r2_score
    >>> preds, targs = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 0, 0])
    >>> round(float(skm_to_fastai(cohen_kappa_score)(preds, targs)), 4)
    0.5
    >>> skm_to_fastai(r2_score, is_class=False).name
    'r2_score'
    """
    dim_argmax = axis if is_class and thresh is None else None
    if activation is None:
        activation = "sigmoid" if is_class and thresh is not None else "no"
    return AccumMetric(func, dim_argmax=dim_argmax, activation=activation, thresh=thresh, to_np=True,
                       invert_arg=True, **kwargs)


# ---------------------------------------------------------------------------------------- the metrics
class Accuracy(MeanMetric):
    """Share of items whose arg-max prediction is the target."""

    task, multi_label_instead = "classification", "accuracy_multi (a sigmoid, then a threshold)"

    param_constraints = {"axis": CLASS_AXIS}

    def __init__(self, axis: int = -1):
        self.axis = axis
        self.check_params()

    def per_item(self, pred: Any, targ: Any) -> Any:
        self._refuse_multi_label(pred, targ)
        # one column is one class's score only where the data has one class (its arg-max, 0, is then every target)
        if pred.ndim == 2 and pred.shape[-1] == 1 and targ.reshape(-1).shape[0] == pred.shape[0] \
                and self._n_classes != 1:
            raise ParameterError(f"{self.name} takes one score per class, and this model gives one score per item "
                                 "(the arg-max of one column is always 0): for a single-output binary model use "
                                 "accuracy_multi (a sigmoid, then a threshold of 0.5), or give the model 2 outputs")
        # class scores (n, k) are arg-maxed; predicted labels (n,) are compared as they are (scikit-learn's face)
        # (a tensor's max(dim) gives the first maximum's index like argmax, several times faster for few classes)
        p = pred if pred.ndim == 1 and pred.shape == targ.reshape(-1).shape else \
            pred.max(self.axis).indices if hasattr(pred, "detach") else pred.argmax(self.axis)
        return p == targ.reshape(p.shape)


class ErrorRate(Accuracy):
    """``1 - accuracy``."""

    greater_is_better = False

    def per_item(self, pred: Any, targ: Any) -> Any:
        return ~super().per_item(pred, targ)


class AccuracyMulti(MeanMetric):
    """Multi-label accuracy: share of (item, label) pairs right after thresholding at ``thresh``."""

    param_constraints = {"thresh": Interval(0, 1, closed="neither")}

    def __init__(self, thresh: float = 0.5, sigmoid: bool = True):
        self.thresh, self.sigmoid = thresh, sigmoid
        self.check_params()

    def per_item(self, pred: Any, targ: Any) -> Any:
        p = pred.float().sigmoid() if self.sigmoid else pred
        return (p > self.thresh) == targ.bool()


def _diff(pred: Any, targ: Any) -> Any:
    return pred.reshape(-1).double() - targ.reshape(-1).double()


class MAE(MeanMetric):
    """Mean absolute error."""

    greater_is_better, task, metric_name = False, "regression", "mae"

    def per_item(self, pred: Any, targ: Any) -> Any:
        return _diff(pred, targ).abs()


class MSE(MeanMetric):
    """Mean squared error."""

    greater_is_better, task, metric_name = False, "regression", "mse"

    def per_item(self, pred: Any, targ: Any) -> Any:
        return _diff(pred, targ) ** 2


class RMSE(MSE):
    """Root mean squared error over the whole set. With several outputs per item (keypoints, multi-target
    regression) it is the mean of each output's RMSE, as scikit-learn's ``root_mean_squared_error`` gives;
    one output is the square root of the pooled MSE."""

    metric_name = "rmse"

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        n = len(pred)
        d = pred.reshape(n, -1).double() - targ.reshape(n, -1).double()
        return (d ** 2).sum(0), n  # per-output sums, pooled over batches

    @property
    def value(self) -> float | None:
        count = float(getattr(self, "_count", 0))
        if not count:
            return None
        per_output = np.asarray(_torch().as_tensor(self._total).detach().cpu(), dtype=np.float64).reshape(-1) / count
        return float(np.mean([self.finalize(m) for m in per_output]))

    def _batch_value(self) -> Any:
        return _torch().as_tensor(self.value)

    def finalize(self, mean: float) -> float:
        return float(np.sqrt(mean))


class RMSPE(RMSE):
    """Root mean squared percentage error; rows with a zero target are skipped (Kaggle's definition). Every
    value is pooled (the competition scores one output)."""

    metric_name = "rmspe"

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        t = targ.reshape(-1).double()
        keep = t != 0
        return (((pred.reshape(-1).double() - t) / t.where(keep, t.new_ones(())))[keep] ** 2).sum(), keep.sum()


class ExpRMSPE(RMSPE):
    """RMSPE of ``exp(pred)`` against ``exp(target)``: the score of a model trained on the log of a target (the
    Rossmann sales), in the target's own units, as fastai's ``exp_rmspe``.

    >>> from pipekit.metrics import ExpRMSPE
    >>> import torch
    >>> m = ExpRMSPE()
    >>> round(float(m(torch.log(torch.tensor([110.0, 90.0])), torch.log(torch.tensor([100.0, 100.0])))), 4)
    0.1
    """

    metric_name = "exp_rmspe"

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        return super().batch_stats(pred.double().exp(), targ.double().exp(), loss)


class Perplexity(MeanMetric):
    """exp(mean loss): the language model's metric, pooled over the whole set."""

    greater_is_better = False

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        if loss is None:
            raise ParameterError("perplexity needs the loss; use it as a Learner metric")
        n = len(pred)
        return loss.detach().float() * n, n

    def finalize(self, mean: float) -> float:
        return float(np.exp(mean))


class R2Score(ArrayMetric):
    """Coefficient of determination; 0.0 on a constant target, as scikit-learn's ``r2_score`` gives."""

    task, metric_name, aliases = "regression", "r2_score", ("r2",)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import r2_score

        return r2_score(y_true, y_pred)


class MSLE(MeanMetric):
    """Mean squared logarithmic error: the mean of ``(log(1 + pred) - log(1 + targ)) ** 2`` (fastai's ``msle``;
    scikit-learn's ``mean_squared_log_error``), for positive targets whose relative error matters.

    >>> import torch
    >>> round(float(msle(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))), 4)
    0.2402
    """

    greater_is_better, task, metric_name = False, "regression", "msle"

    def per_item(self, pred: Any, targ: Any) -> Any:
        return (pred.reshape(-1).double().log1p() - targ.reshape(-1).double().log1p()) ** 2


class ExplainedVariance(ArrayMetric):
    """Explained variance (scikit-learn's ``explained_variance_score``): ``1 - var(targ - pred) / var(targ)``, like
    R2 but blind to a constant offset of the predictions.

    >>> import torch
    >>> float(ExplainedVariance()(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0])))
    1.0
    """

    task, metric_name, aliases = "regression", "explained_variance_score", ("explained_variance",)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import explained_variance_score

        return explained_variance_score(y_true, y_pred)


class PearsonCorrCoef(ArrayMetric):
    """Pearson correlation of the predictions with the targets, every value pooled (scipy's ``pearsonr``); NaN
    with scipy's warning when either is constant.

    >>> import torch
    >>> round(float(PearsonCorrCoef()(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))), 4)
    0.982
    """

    task, metric_name, aliases = "regression", "pearsonr", ("pearson",)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from scipy.stats import pearsonr

        return float(pearsonr(np.ravel(y_pred).astype(np.float64), np.ravel(y_true).astype(np.float64))[0])


class SpearmanCorrCoef(ArrayMetric):
    """Spearman rank correlation of the predictions with the targets, every value pooled (scipy's ``spearmanr``);
    ``nan_policy`` as in scipy ('propagate', 'raise' or 'omit').

    >>> import torch
    >>> float(SpearmanCorrCoef()(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0])))
    1.0
    """

    task, metric_name, aliases = "regression", "spearmanr", ("spearman",)
    param_constraints = {"nan_policy": Options("propagate", "raise", "omit")}

    def __init__(self, nan_policy: str = "propagate"):
        self.nan_policy = nan_policy
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from scipy.stats import spearmanr

        return float(spearmanr(np.ravel(y_pred).astype(np.float64), np.ravel(y_true).astype(np.float64),
                               nan_policy=self.nan_policy)[0])


class _ArgmaxScore(ArrayMetric):
    """A scikit-learn score (``sk_name`` in ``sklearn.metrics``) of arg-max predictions, with ``sk_kwargs``."""

    abstract = True
    task, activation = "classification", "argmax"
    multi_label_instead = "AccuracyMulti() (a sigmoid, then a threshold)"
    sk_name = ""

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if pred.ndim == 2 and pred.shape[-1] == 1 and targ.reshape(-1).shape[0] == pred.shape[0]:
            multi = type(self).multi_label_instead.split(" ")[0]
            raise ParameterError(f"{self.name} takes one score per class, and this model gives one score per item "
                                 f"(the arg-max of one column is always 0): for a single-output binary model use "
                                 f"{multi} (a sigmoid, then a threshold of 0.5), or give the model 2 outputs")
        super().accumulate(pred, targ, loss, bs)

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """The scikit-learn function's other arguments (checked against the data where they depend on it)."""
        return {}

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        import sklearn.metrics

        labels = y_pred.argmax(-1) if y_pred.ndim == 2 else y_pred
        return float(getattr(sklearn.metrics, self.sk_name)(y_true, labels, **self.sk_kwargs(y_true, y_pred, labels)))


class _LabelScore(_ArgmaxScore):
    """A per-class score of arg-max predictions; ``average`` as in scikit-learn, ``pos_label`` the class scored
    with ``average='binary'``."""

    abstract = True
    param_constraints = {"average": Options("binary", "macro", "micro", "weighted"),
                         "pos_label": Interval(0, None, integer=True)}
    #: whether ``get_metric`` knows it by name with an average ("f1_macro"): not a score that needs a parameter
    named: ClassVar[bool] = True

    def __init__(self, average: str = "binary", pos_label: int = 1):
        self.average, self.pos_label = average, pos_label
        self.check_params()

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        n_classes = y_pred.shape[1] if y_pred.ndim == 2 else len(np.union1d(np.unique(y_true), np.unique(labels)))
        if self.average == "binary" and n_classes > 2:
            base = self.name.removesuffix("_score")
            by_name = f" (by name: '{base}_macro', '{base}_micro' or '{base}_weighted')" if self.named else ""
            raise ParameterError(f"{self.name} with average='binary' scores class 1 of a two-class model and this "
                                 f"one has {n_classes} classes: pass average='macro', 'micro' or 'weighted'{by_name}")
        if self.average == "binary" and self.pos_label >= n_classes:
            raise ParameterError(f"{self.name}: pos_label={self.pos_label} is not a class of this {n_classes}-class "
                                 f"model; give the index of the class to score (0 to {n_classes - 1})")
        return {"average": self.average, "pos_label": self.pos_label}


class F1Score(_LabelScore):
    """F1 on arg-max predictions; ``average`` as in scikit-learn ('binary': of class 1 of a two-class model).

    >>> import torch
    >>> float(F1Score()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0])))
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
    the common class).

    >>> import torch
    >>> float(BalancedAccuracy()(torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1.0]]),
    ...                          torch.tensor([0, 0, 1, 1])))  # recalls 2/2 and 1/2
    0.75
    """

    metric_name = sk_name = "balanced_accuracy_score"
    aliases = ("balanced_accuracy",)


class MatthewsCorrCoef(_ArgmaxScore):
    """Matthews correlation coefficient on arg-max predictions (scikit-learn's ``matthews_corrcoef``): -1 to 1, 0
    for guessing, and 0 too for a model that always predicts one class, however common.

    >>> import torch
    >>> float(MatthewsCorrCoef()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]),
    ...                          torch.tensor([0, 1, 1, 0])))
    1.0
    """

    metric_name = sk_name = "matthews_corrcoef"


class CohenKappa(_ArgmaxScore):
    """Cohen's kappa on arg-max predictions (scikit-learn's ``cohen_kappa_score``): agreement beyond chance;
    ``weights='linear'`` or ``'quadratic'`` count near misses of ordered classes as partly right.

    >>> import torch
    >>> float(CohenKappa()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 1, 0])))
    0.5
    """

    metric_name = sk_name = "cohen_kappa_score"
    aliases = ("cohen_kappa",)
    param_constraints = {"weights": Options(None, "linear", "quadratic")}

    def __init__(self, weights: str | None = None):
        self.weights = weights
        self.check_params()

    def sk_kwargs(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        return {"weights": self.weights}


class FBeta(_LabelScore):
    """F-beta on arg-max predictions (scikit-learn's ``fbeta_score``): recall counts ``beta`` times as much as
    precision (``beta=1`` is F1); ``average`` and ``pos_label`` as in :class:`F1Score`.

    >>> import torch
    >>> round(float(FBeta(2)(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))), 4)
    0.8333
    """

    metric_name = sk_name = "fbeta_score"
    multi_label_instead = "FBetaMulti(beta) (a sigmoid, then a threshold)"
    param_constraints = {**_LabelScore.param_constraints, "beta": Interval(0, None, closed="neither")}
    named = False

    def __init__(self, beta: float, average: str = "binary", pos_label: int = 1):
        self.beta = beta
        super().__init__(average, pos_label)

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


def top_k_accuracy(inp: Any, targ: Any, k: int = 5, axis: int = -1) -> Any:
    """The share of items whose target is among the ``k`` classes scored highest (fastai's ``top_k_accuracy``,
    a metric as it is: ``metrics=[accuracy, top_k_accuracy]``, or ``partial(top_k_accuracy, k=3)``).

    >>> import torch
    >>> float(top_k_accuracy(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), torch.tensor([1, 0]), k=2))
    0.5
    """
    if inp.ndim != 2:
        raise ParameterError(f"top_k_accuracy takes one score per class for each item, (n, classes); got scores of "
                             f"shape {tuple(inp.shape)}")
    k = min(int(k), inp.shape[axis])
    top = inp.topk(k=k, dim=axis).indices
    return (top == targ.reshape(-1, 1)).any(dim=axis).float().mean()


class RocAuc(ArrayMetric):
    """Area under the ROC curve on class probabilities (one-vs-rest for several classes)."""

    task, activation, multi_label_instead = "classification", "softmax", "RocAucMulti() (sigmoid probabilities)"
    metric_name, aliases = "roc_auc_score", ("roc_auc",)

    param_constraints = {"average": Options("macro", "weighted", "micro"), "multi_class": Options("ovr", "ovo")}

    def __init__(self, average: str = "macro", multi_class: str = "ovr"):
        self.average, self.multi_class = average, multi_class
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        if y_pred.ndim == 2 and y_pred.shape[1] == 2:
            return roc_auc_score(y_true, y_pred[:, 1])
        if y_pred.ndim == 1:
            return roc_auc_score(y_true, y_pred)
        return roc_auc_score(y_true, y_pred, average=self.average, multi_class=self.multi_class,
                             labels=np.arange(y_pred.shape[1]))


class RocAucBinary(RocAuc):
    """ROC-AUC of a two-class model: of the positive class's probability, from two scores per item (a softmax, as
    for CrossEntropyLossFlat, then its second column) or from one logit (a sigmoid). A model of more classes is
    refused (``RocAuc()`` scores it one-vs-rest).

    >>> import torch
    >>> float(RocAucBinary()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]), torch.tensor([0, 1, 1])))
    1.0
    """

    aliases = ("roc_auc_binary",)

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        _two_classes(self.name, y_pred, "use RocAuc() (one-vs-rest) for several classes")
        return super().compute(y_true, y_pred)


def _two_classes(name: str, y_pred: np.ndarray, fix: str) -> None:
    """Refuse the probabilities of a model of more than two classes, for a metric of two, saying ``fix``."""
    if y_pred.ndim == 2 and y_pred.shape[1] > 2:
        raise ParameterError(f"{name} scores a two-class model and this one gives {y_pred.shape[1]} scores per item: "
                             f"{fix}")


def _class_probs(pred: Any) -> Any:
    """Class probabilities from a model's outputs: a softmax of several scores per item, a sigmoid of one."""
    p = pred.float()
    return p.softmax(-1) if p.ndim == 2 and p.shape[1] > 1 else p.sigmoid()


class APScoreBinary(ArrayMetric):
    """Average precision of a two-class model (scikit-learn's ``average_precision_score``): the area under the
    precision-recall curve of the positive class's probability, from two scores per item (a softmax, then its
    second column) or one logit (a sigmoid). A model of more classes is refused.

    >>> import torch
    >>> float(APScoreBinary()(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]), torch.tensor([0, 1, 1])))
    1.0
    """

    task, metric_name, aliases = "classification", "average_precision_score", ("average_precision",)
    multi_label_instead = "APScoreMulti() (sigmoid probabilities)"

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import average_precision_score

        _two_classes(self.name, y_pred, "it takes the probability of class 1 of two")
        return average_precision_score(y_true, y_pred[:, 1] if y_pred.ndim == 2 else y_pred)


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
    multi_label_instead = "BrierScoreMulti() (sigmoid probabilities)"

    def _activate(self, pred: Any) -> Any:
        return _class_probs(pred)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import brier_score_loss

        if y_pred.ndim == 2 and y_pred.shape[1] > 2:
            return brier_score_loss(y_true, y_pred, labels=np.arange(y_pred.shape[1]))
        return brier_score_loss(y_true, y_pred[:, 1] if y_pred.ndim == 2 else y_pred, pos_label=1)


class RocAucMulti(ArrayMetric):
    """ROC-AUC of a multi-label model (several 0/1 labels per item, BCEWithLogitsLossFlat): sigmoid probabilities
    of every label, scored as scikit-learn's ``roc_auc_score`` with ``average`` ('macro': the mean of each label's
    AUC, 'weighted', 'micro' or 'samples').

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    >>> float(RocAucMulti()(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, 0.5], [-2.0, -1.5]]), targs))
    1.0
    """

    activation = "sigmoid"
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


class _LabelScoreMulti(_SigmoidScores, ArrayMetric):
    """A scikit-learn score (``sk_name``) of a multi-label model: each label predicted present when its
    probability (a sigmoid of the output, unless ``sigmoid=False``) is above ``thresh``; ``average`` as in
    scikit-learn ('macro', the default as in fastai: the mean of each label's score; 'micro' pools every item and
    label)."""

    abstract = True
    sk_name = ""
    param_constraints = {"thresh": Interval(0, 1, closed="neither"),
                         "average": Options("micro", "macro", "weighted", "samples")}

    def __init__(self, thresh: float = 0.5, sigmoid: bool = True, average: str = "macro"):
        self.thresh, self.sigmoid, self.average = thresh, sigmoid, average
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        import sklearn.metrics

        fn = getattr(sklearn.metrics, self.sk_name)
        return fn(np.asarray(y_true) > 0.5, y_pred > self.thresh, **self.sk_kwargs())

    def sk_kwargs(self) -> dict[str, Any]:
        """The scikit-learn function's other arguments."""
        return {"average": self.average}


class F1ScoreMulti(_LabelScoreMulti):
    """F1 of a multi-label model: each label predicted present when its probability (a sigmoid of the output,
    unless ``sigmoid=False``) is above ``thresh``; ``average`` as in scikit-learn: 'macro' (the default, as in
    fastai) is the mean of each label's F1, so a rare label counts as much as a common one; 'micro' pools every
    item and label. A label never predicted nor present scores 0, with scikit-learn's warning.

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
    param_constraints = {**_LabelScoreMulti.param_constraints, "beta": Interval(0, None, closed="neither")}

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
    when its probability (a sigmoid of the output, unless ``sigmoid=False``) is above ``thresh``; ``1 -
    accuracy_multi``.

    >>> import torch
    >>> targs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> round(float(HammingLossMulti()(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, -0.5]]), targs)), 4)
    0.1667
    """

    greater_is_better = False
    metric_name = sk_name = "hamming_loss"
    aliases = ("hamming_loss_multi",)
    param_constraints = {"thresh": Interval(0, 1, closed="neither")}

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

    metric_name, aliases = "average_precision_score", ("average_precision_multi",)
    param_constraints = {"average": Options("macro", "weighted", "micro", "samples"), "sigmoid": Options(True, False)}

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
    param_constraints = {"sigmoid": Options(True, False)}

    def __init__(self, sigmoid: bool = True):
        self.sigmoid = sigmoid
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean((np.asarray(y_pred, dtype=np.float64) - (np.asarray(y_true) > 0.5)) ** 2))


class LogLoss(ArrayMetric):
    """Mean negative log-probability of the true class, as scikit-learn's ``log_loss`` computes it
    (probabilities clipped to ``[eps, 1 - eps]`` with the machine epsilon of their dtype). The classes are
    the prediction's columns, so a split holding one class scores as any other."""

    greater_is_better, task, activation = False, "classification", "softmax"
    multi_label_instead = "the loss itself (BCEWithLogitsLossFlat), or RocAucMulti()"

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import log_loss as sk_log_loss

        labels = np.arange(y_pred.shape[1]) if y_pred.ndim == 2 else np.arange(2)
        with warnings.catch_warnings():
            if y_pred.ndim == 2 and np.allclose(y_pred.sum(1), 1.0, rtol=0, atol=1e-5):
                # probabilities computed in float32 (a net's softmax) sum to 1 only within its precision
                warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
            return float(sk_log_loss(np.asarray(y_true, dtype=np.int64), y_pred, labels=labels))


accuracy, error_rate, accuracy_multi = Accuracy(), ErrorRate(), AccuracyMulti()
mae, mse, rmse, rmspe, exp_rmspe, perplexity, msle = MAE(), MSE(), RMSE(), RMSPE(), ExpRMSPE(), Perplexity(), MSLE()
r2_score, log_loss, roc_auc = R2Score(), LogLoss(), RocAuc()
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}


def as_metric(m: Any, y_first: bool = False) -> Metric:
    """A fresh metric from what a user passes: a metric (copied, so learners never share accumulators),
    a metric class, ``functools.partial`` of a metric, or a plain function (see :class:`FuncMetric`)."""
    if isinstance(m, Metric):
        return m.clone()
    if isinstance(m, type) and issubclass(m, Metric):
        return m()
    if isinstance(m, functools.partial) and isinstance(m.func, Metric) and not m.args:
        return m.func.configured(**m.keywords)
    if callable(m):
        return FuncMetric(m, y_first=y_first)
    if isinstance(m, str):  # a name is no metric here: the object of that name is (get_metric reads names for a task)
        named = globals().get(m) if m.isidentifier() else None  # pipekit.learn hands on this module's metrics
        known = _metrics_by_name().get(m)
        use = (f"{m}, from pipekit.learn" if isinstance(named, Metric) or isinstance(named, type) and
               issubclass(named, Metric) else f"{known.__name__}(), from pipekit.learn" if known is not None else
               "a pipekit Metric such as accuracy or rmse, from pipekit.learn, or a function fn(pred, targ)")
        raise ParameterError(f"metrics={m!r} is a str: pass the metric itself ({use})")
    raise ParameterError(f"a metric must be a pipekit Metric or a function fn(pred, targ); got {type(m).__name__}")


def check_metric(metric: Metric, task: str, n_classes: int | None = None) -> None:
    """Score a near-perfect prediction of a few rows with ``metric`` before any model is fitted: a function that
    cannot take what it will be given (``(n, n_classes)`` probabilities and class indices, or values) fails
    here, with what it gets, rather than after every fit.

    A metric known to score the other task (a named one, a function of ``sklearn.metrics``) is refused first:
    ``mean_squared_error`` of a classifier's labels is a number, and a meaningless one.

    >>> check_metric(get_metric("accuracy", "classification"), "classification", 2)
    >>> from sklearn.metrics import mean_squared_error
    >>> check_metric(get_metric(mean_squared_error, "classification"), "classification", 2)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: metric 'mean_squared_error' is a regression metric but the task is 'classification'...
    """
    scores = metric_task(metric)
    if scores is not None and scores != task:
        raise ParameterError(f"metric {metric.name!r} is a {scores} metric but the task is {task!r}; use a "
                             f"{task} metric (default: {DEFAULT_METRIC[task]!r})")
    rows = np.arange(12)
    if task == "classification":
        k = max(2, n_classes or 2)
        y_true = rows % k
        y_pred = np.full((len(rows), k), 0.1 / (k - 1))
        y_pred[rows, y_true] = 0.9
        gets = f"class indices and (n, {k}) probabilities"
    else:
        y_true = rows.astype(np.float64)
        y_pred = y_true + 0.25
        gets = "true values and predicted values, both (n,)"
    try:
        metric.score(y_true, y_pred)
    except Exception as e:  # a user's function: whatever it raises is reported with what it was given
        raise ParameterError(f"metric {metric.name!r} fails on a {task}'s predictions (it gets {gets}): "
                             f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e


#: the task of each module of ``sklearn.metrics`` whose functions score one task only
_SKLEARN_TASKS = {"sklearn.metrics._regression": "regression", "sklearn.metrics._classification": "classification",
                  "sklearn.metrics._ranking": "classification"}


def metric_task(metric: Metric) -> str | None:
    """The task ``metric`` scores, where it is known: a pipekit metric's ``task``, or for a function of
    ``sklearn.metrics`` the task of the module it is defined in; None for any other function.

    >>> from sklearn.metrics import r2_score, roc_auc_score
    >>> metric_task(get_metric(r2_score, "regression")), metric_task(get_metric(roc_auc_score, "classification"))
    ('regression', 'classification')
    """
    fn = getattr(metric, "fn", None) if isinstance(metric, FuncMetric) else None
    if fn is None:
        return getattr(metric, "task", None)
    base = fn.func if isinstance(fn, functools.partial) else fn
    return _SKLEARN_TASKS.get(str(getattr(base, "__module__", "")))


#: scikit-learn's scoring names of the ROC-AUC of several classes, as RocAuc's parameters
_SKLEARN_ROC_AUC = {"roc_auc_ovr": {"multi_class": "ovr"}, "roc_auc_ovo": {"multi_class": "ovo"},
                    "roc_auc_ovr_weighted": {"multi_class": "ovr", "average": "weighted"},
                    "roc_auc_ovo_weighted": {"multi_class": "ovo", "average": "weighted"}}
#: the pipekit metric of what scikit-learn's ``neg_*`` scorers negate
_NEGATED = {"mean_absolute_error": "mae", "mean_squared_error": "mse", "root_mean_squared_error": "rmse",
            "log_loss": "log_loss"}


def _negated_name(metric: str, by_name: dict[str, Any]) -> str:
    """Why scikit-learn's scorer name ``metric`` (``neg_mean_absolute_error``) is no pipekit metric, and what to pass.
    A pipekit metric scores the loss itself and knows it is better smaller, so a name for minus the loss would give
    the other sign than scikit-learn's scorer does."""
    import sklearn.metrics

    loss = metric[len("neg_"):]
    ours = _NEGATED.get(loss) or (loss if loss in by_name else None)
    fn = next((f for f in (loss, f"{loss}_loss") if callable(getattr(sklearn.metrics, f, None))), None)
    use = (f"metric={ours!r}" if ours else f"metric=sklearn.metrics.{fn}" if fn else
           "the pipekit metric or the sklearn.metrics function of that loss")
    return (f"metric={metric!r} is scikit-learn's scorer of minus {loss}; pipekit's metrics score the loss itself "
            f"(positive) and know that smaller is better, so selection and reports need no minus sign: use {use}")


def _metrics_by_name() -> dict[str, type[Metric]]:
    """Every registered metric class a backend's task can use, by its name and its aliases (fastai's names and
    pipekit's former ones)."""
    by_name: dict[str, type[Metric]] = {}
    for cls in registered("metric").values():
        if isinstance(cls, type) and issubclass(cls, Metric) and cls.task is not None:
            try:
                for alias in (cls().name, *cls.aliases):
                    by_name.setdefault(alias, cls)
            except TypeError:  # a metric that needs parameters has no bare name
                continue
    return by_name


def get_metric(metric: Any, task: str) -> Metric:
    """A metric for a backend's ``task``: a name (``"accuracy"``, ``"rmse"``, ``"roc_auc"``, ...), a Metric,
    a function ``fn(y_true, y_pred)`` (see :class:`FuncMetric`: its direction is read from its name), or None for
    the task's default. The label scores also take scikit-learn's scoring names with their average
    (``"f1_macro"``, ``"precision_weighted"``, ``"recall_micro"``), and the ROC-AUC scikit-learn's ``"roc_auc_ovr"``,
    ``"roc_auc_ovo"`` and their ``_weighted`` forms. scikit-learn's ``neg_*`` scorer names are refused, naming the
    metric to use: a pipekit metric scores the loss itself, not minus it (``"mae"`` for
    ``"neg_mean_absolute_error"``).

    >>> get_metric("f1_macro", "classification"), get_metric("roc_auc_ovr_weighted", "classification")
    (F1Score(average='macro'), RocAuc(average='weighted'))
    """
    check("get_metric", task=(task, Options(*TASKS)))
    if metric is None:
        metric = DEFAULT_METRIC[task]
    if isinstance(metric, str):
        by_name = _metrics_by_name()
        if metric in _SKLEARN_ROC_AUC:  # scikit-learn's scoring names of the ROC-AUC of several classes
            if task != "classification":
                raise ParameterError(f"metric={metric!r} is a classification metric but the task is {task!r}")
            return RocAuc(**_SKLEARN_ROC_AUC[metric])
        if metric.startswith("neg_"):  # scikit-learn's scorers of minus a loss or an error
            raise ParameterError(_negated_name(metric, by_name))
        base, _, average = metric.rpartition("_")
        averaged = by_name.get(base) or by_name.get(f"{base}_score")
        if metric not in by_name and averaged is not None and issubclass(averaged, _LabelScore) and \
                average in ("binary", "macro", "micro", "weighted"):
            if averaged.task != task:
                raise ParameterError(f"metric={metric!r} is a {averaged.task} metric but the task is {task!r}")
            return averaged(average=average)  # type: ignore[call-arg]
        if metric not in by_name:
            raise ParameterError(f"metric={metric!r} is not known; use one of {sorted(by_name)} (the label scores "
                                 "with an average too: 'f1_macro', 'precision_weighted', ...) or pass a Metric")
        if by_name[metric].task != task:
            raise ParameterError(f"metric={metric!r} is a {by_name[metric].task} metric but the task is {task!r}")
        return by_name[metric]()
    return as_metric(metric, y_first=True)


@dataclass(frozen=True)
class PairedDifference:
    """``paired_difference``'s answer: ``difference`` is ``metric(a) - metric(b)`` on the rows given, ``low`` /
    ``high`` the bounds of its bootstrap interval at ``level``, ``better`` "a" or "b" when the interval lies
    wholly on one side of 0 (in the metric's direction), else None: a tie at that level."""

    metric: str
    score_a: float
    score_b: float
    difference: float
    low: float
    high: float
    level: float
    n_rows: int
    better: str | None

    def __str__(self) -> str:
        verdict = {"a": "a is better", "b": "b is better", None: "a tie"}[self.better]
        return (f"{self.metric}: {self.score_a:.4f} - {self.score_b:.4f} = {self.difference:+.4f} "
                f"({self.level:.0%} interval {self.low:+.4f} to {self.high:+.4f} over {self.n_rows} rows: {verdict})")


def paired_difference(metric: Any, y_true: Any, pred_a: Any, pred_b: Any, task: str | None = None,
                      n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> PairedDifference:
    """Whether model ``a`` scores better than model ``b`` on the same rows by more than the rows' noise: the
    difference of ``metric`` and its paired bootstrap interval (rows resampled with replacement, both models
    scored on each resample, the ``level`` percentile interval of the differences). On 6,512 rows of adult,
    two models whose accuracies differ by 0.002 are usually a tie.

    ``pred_a`` / ``pred_b``: predictions as ``metric.score`` takes them (class probabilities or class indices,
    or values). ``metric``: a Metric, a function or a name (then ``task`` says which task's).

    >>> import numpy as np
    >>> y = np.array([0, 1] * 200)
    >>> a, b = y.copy(), y.copy()
    >>> a[:40] = 1 - a[:40]; b[30:74] = 1 - b[30:74]  # 40 and 44 mistakes, mostly on different rows
    >>> d = paired_difference("accuracy", y, a, b, task="classification")
    >>> round(d.difference, 3), d.better
    (0.01, None)
    >>> b = y.copy(); b[:44] = 1 - b[:44]  # the same 0.01, but b errs on every row a errs on, and on 4 more
    >>> paired_difference("accuracy", y, a, b, task="classification").better
    'a'
    """
    check("paired_difference", n_resamples=(n_resamples, Interval(100, None, integer=True)),
          level=(level, Interval(0, 1, closed="neither")),
          task=(task, Is(lambda t: t is None or t in TASKS, f"one of {TASKS} or None")))
    if isinstance(metric, str):
        if task is None:
            raise ParameterError(f"paired_difference(metric={metric!r}) needs task='classification' or "
                                 "'regression' to know which metric the name means")
        m = get_metric(metric, task)
    else:
        m = as_metric(metric, y_first=True)
    y, a, b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    if not (len(y) == len(a) == len(b)) or len(y) == 0:
        raise DataError(f"paired_difference needs one prediction of each model per row: {len(y)} targets, "
                        f"{len(a)} predictions of a, {len(b)} of b")
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        rows = rng.integers(0, len(y), len(y))
        diffs[i] = m.score(y[rows], a[rows]) - m.score(y[rows], b[rows])
    score_a, score_b = m.score(y, a), m.score(y, b)
    low, high = (float(v) for v in np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2]))
    up = 1 if m.greater_is_better else -1
    better = "a" if min(up * low, up * high) > 0 else "b" if max(up * low, up * high) < 0 else None
    return PairedDifference(m.name, score_a, score_b, score_a - score_b, low, high, level, len(y), better)
