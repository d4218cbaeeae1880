"""The ``Metric`` mechanism every metric shares: a direction, an array face (``score``) and an accumulating face
(``reset / accumulate / value``), with the two ways a value is built (:class:`MeanMetric`, a mean of per-item
quantities summed on the device, and :class:`ArrayMetric`, computed once on every prediction of the set). Every
subclass registers itself by name (``pipekit.metrics.<Name>``), so a learner file can name its metrics."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pipekit.core.component import Component, construct
from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import names_shown

TASKS = ("classification", "regression")
#: what each kind of target a Learner's data has (its ``dls.loss_kind``, the loss its target block calls for) holds,
#: in the words a message uses
TARGET_KINDS = {"cross_entropy": "classes (one per item)", "pixel_cross_entropy": "classes per pixel (a mask)",
                "bce": "several 0/1 labels per item (multi-label)", "mse": "numbers"}
#: the metrics a message suggests for each kind of target, the most used first
SUGGESTED_METRICS = {"cross_entropy": "accuracy, error_rate, F1Score() or RocAuc()",
                     "pixel_cross_entropy": "Accuracy(axis=1), foreground_acc, Dice() or DiceMulti()",
                     "bce": "accuracy_multi, F1ScoreMulti() or RocAucMulti()", "mse": "rmse, mae or R2Score()"}


def target_kind(dls: Any) -> str | None:
    """The kind of target of ``dls`` (its ``loss_kind``, one of :data:`TARGET_KINDS`), or None where it is not known:
    loaders whose target names none (a language model's, a torch DataLoader's), a kind of the user's, or data of
    several targets (a learner's metrics and loss then get them all)."""
    kind = getattr(dls, "loss_kind", None)
    if kind not in TARGET_KINDS:
        return None
    blocks = tuple(getattr(dls, "blocks", ()) or ())
    return None if len(blocks) - int(getattr(dls, "n_inp", 1)) > 1 else kind


def two_classes_as_labels(dls: Any, loss: Any) -> bool:
    """Whether ``loss`` reads the two classes of ``dls`` as one 0/1 label per item (``reads_two_classes``, a
    single-output binary model): its metrics may then be multi-label ones, and its model must give one output."""
    return (target_kind(dls) == "cross_entropy" and getattr(loss, "reads_two_classes", False)
            and getattr(dls, "c", None) == 2)


def describe_target(dls: Any) -> str:
    """The target of ``dls`` as a message names it: what it holds, its first classes and its block (with a table's
    column), e.g. ``classes (one per item) ['<50k', '>=50k'] (CategoryBlock of 'salary')``."""
    kind = getattr(dls, "loss_kind", None)
    block = getattr(dls, "y_block", None)
    vocab = getattr(block, "vocab", None)
    labels = ""
    if vocab is not None and not isinstance(vocab, str):
        labels = f" {names_shown([str(v) for v in vocab], limit=5)}"
    columns = list(getattr(dls, "y_names", None) or ())  # a table's target columns; other loaders have none
    of = f" of {', '.join(repr(str(c)) for c in columns)}" if columns else ""
    where = f" ({type(block).__name__}{of})" if block is not None else ""
    return f"{TARGET_KINDS.get(str(kind), f'of loss kind {kind!r}')}{labels}{where}"


def target_fix(kind: str, wanted: str) -> str:
    """The change to the data, if any, that makes targets of ``kind`` the ``wanted`` kind, as the end of a message."""
    if kind == "mse" and wanted in ("cross_entropy", "bce"):
        return "; if the numbers are classes, y_block=CategoryBlock()"
    if kind == "cross_entropy" and wanted == "mse":
        return "; to predict numbers instead, y_block=RegressionBlock()"
    if kind == "cross_entropy" and wanted == "bce":
        return "; for several labels per item, y_block=MultiCategoryBlock()"
    return ""


def _torch() -> Any:
    import torch

    return torch


class Metric(Component):
    """Base class; see the module docstring. ``name`` defaults to the snake-case class name.

    >>> import torch
    >>> from pipekit.metrics import Accuracy
    >>> m = Accuracy()
    >>> m.name, m.greater_is_better, m.better(0.9, 0.8)
    ('accuracy', True, True)
    >>> float(m(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])))
    0.5
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "metric"
    greater_is_better: ClassVar[bool] = True
    #: the task a backend metric applies to ("classification", "regression" or None for either)
    task: ClassVar[str | None] = None
    #: the targets it scores, as a Learner's data names them (``dls.loss_kind``, see :data:`TARGET_KINDS`):
    #: 'cross_entropy' one class per item, 'pixel_cross_entropy' a mask's classes, 'bce' several 0/1 labels per item,
    #: 'mse' numbers. A Learner on data of another kind refuses it (:func:`check_metric_targets`); None: it scores
    #: any target and is never refused (a function of the user's, perplexity)
    target_kinds: ClassVar[tuple[str, ...] | None] = None
    #: what ``accumulate`` applies to raw model outputs (see :func:`apply_activation`): None, "softmax", "sigmoid" or
    #: "argmax"
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

    @classmethod
    def own_aliases(cls) -> tuple[str, ...]:
        """The :attr:`aliases` this class declares itself: a subclass scores something else (RMSPE is an RMSE's
        subclass, not ``root_mean_squared_error``), so it is not known by its base's."""
        return tuple(cls.__dict__.get("aliases", ()))

    @property
    def scoring_name(self) -> str:
        """The name that says what it scores with its parameters, as ``get_metric`` reads scikit-learn's scoring
        names (``f1_macro`` for ``F1Score(average="macro")``): an ensemble's report names its columns by it. Its
        ``name`` unless a subclass's parameters change what is scored."""
        return self.name

    def reset(self) -> None:
        raise NotImplementedError

    #: the number of classes of a learner's single-label target, see :meth:`set_classes` (None: not known)
    _n_classes: int | None = None
    #: the kind of target (``dls.loss_kind``) of the learner's data, see :meth:`set_classes` (None: not known)
    _loss_kind: str | None = None

    def set_classes(self, n_classes: int | None, loss_kind: str | None = None) -> None:
        """Told by a Learner before each validation pass: the number of classes of its data's single-label target
        (None for any other target) and the data's kind of target (``dls.loss_kind``). One score per item is then
        read from the data, not guessed from its shape: a one-class classifier's one column scores as a class, a
        single-output binary model's is refused, and a regression's is told to use a metric of numbers."""
        self._n_classes, self._loss_kind = n_classes, loss_kind

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
        pred, targ = (_as_tensor(a) for a in args)
        m.accumulate(pred, targ, None, len(pred))
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
        return apply_activation(pred, self.activation)


def _as_tensor(v: Any, array_like: bool = False) -> Any:
    """A NumPy array (predictions or targets a metric is called on, ``metric(pred, targ)``) as a tensor; with
    ``array_like`` (``score(y_true, y_pred)``, scikit-learn's face) anything NumPy reads as an array too (a list of
    labels); a tensor, or anything else, as it is."""
    if isinstance(v, np.ndarray) or (array_like and not hasattr(v, "detach")):
        # a copy of a read-only array (a loaded model's predictions, a slice of a frame): torch warns about sharing one
        return _torch().as_tensor(np.require(v, requirements="W"))
    return v


def apply_activation(pred: Any, activation: str | None, dim: int = -1) -> Any:
    """Raw model outputs as a metric scores them: ``activation`` applied over the class axis ``dim``. "softmax",
    "sigmoid" and "argmax" as named; "binarysoftmax" (fastai's) is the softmax's last column, the positive class of
    two; None or "no" leaves the outputs as they are."""
    if activation in ("softmax", "binarysoftmax"):
        probs = pred.float().softmax(dim)
        return probs[:, -1] if activation == "binarysoftmax" else probs
    if activation == "sigmoid":
        return pred.float().sigmoid()
    if activation == "argmax":
        return pred.argmax(dim)
    return pred


def _is_multi_label(pred: Any, targ: Any) -> bool:
    """Targets of several labels per item: floats shaped like the (n, k) predictions, k > 1."""
    return (hasattr(pred, "ndim") and pred.ndim == 2 and pred.shape[1] > 1 and hasattr(targ, "is_floating_point")
            and tuple(targ.shape) == tuple(pred.shape) and targ.is_floating_point())


class MeanMetric(Metric):
    """A mean of per-item quantities (``batch_stats`` gives their sum and count), turned into the value
    by ``finalize`` (e.g. a square root for RMSE). Sums stay on the device.

    >>> import torch
    >>> from pipekit.metrics import MeanMetric
    >>> class MeanError(MeanMetric):
    ...     greater_is_better = False
    ...     def per_item(self, pred, targ):
    ...         return pred - targ
    >>> m = MeanError()
    >>> m.reset()
    >>> m.accumulate(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
    >>> m.accumulate(torch.tensor([4.0]), torch.tensor([1.0]))
    >>> m.name, m.value
    ('mean_error', 2.0)
    """

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
        pred, targ = _as_tensor(pred), _as_tensor(targ)
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
        _check_not_empty(self, y_true, y_pred)
        self.reset()
        self.accumulate(*(_as_tensor(v, array_like=True) for v in (y_pred, y_true)))
        v = self.value
        return float("nan") if v is None else float(v)


class ArrayMetric(Metric):
    """Computed once on every (activated) prediction of the set: ``compute(y_true, y_pred)`` on NumPy arrays.

    >>> import numpy as np
    >>> from pipekit.metrics import ArrayMetric
    >>> class MaxError(ArrayMetric):
    ...     greater_is_better = False
    ...     def compute(self, y_true, y_pred):
    ...         return np.abs(y_true - y_pred).max()
    >>> MaxError().score(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 1.0]))
    2.0
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        self._preds: list[Any] = []
        self._targs: list[Any] = []

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if not hasattr(self, "_preds"):
            self.reset()
        pred, targ = _as_tensor(pred), _as_tensor(targ)
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
