"""Metrics accumulated over the whole validation set (never an average of per-batch values).

A metric is either a plain function ``fn(pred, targ) -> tensor`` (wrapped in ``AvgMetric``: a sum
weighted by batch size, exact for per-item averages such as accuracy) or a ``Metric`` object with
``reset() / accumulate(pred, targ, loss, bs) / value``. Metrics whose value is not a mean of per-item
values (RMSE, R2, F1, ROC-AUC, perplexity) keep the sufficient statistics or all predictions.

>>> import torch
>>> m = as_metric(accuracy); m.reset()
>>> m.accumulate(torch.tensor([[0., 1.], [1., 0.]]), torch.tensor([1, 1]), None, 2)
>>> float(m.value)
0.5
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = [
    "Metric", "AvgMetric", "AccumMetric", "as_metric", "accuracy", "error_rate", "accuracy_multi",
    "rmse", "mae", "mse", "R2Score", "F1Score", "RocAuc", "RocAucBinary", "Perplexity", "perplexity",
    "ValueMetric", "METRICS", "metric_to_json", "metric_from_json",
]

METRICS: dict[str, Callable[..., Any]] = {}


def _register(obj: Any) -> Any:
    METRICS[getattr(obj, "name", None) or obj.__name__] = obj
    return obj


class Metric:
    """Base class: accumulate over batches, read ``value`` at the end of validation."""

    name: str = "metric"

    def reset(self) -> None:
        raise NotImplementedError

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor, loss: torch.Tensor | None, bs: int) -> None:
        raise NotImplementedError

    @property
    def value(self) -> Any:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {}


class AvgMetric(Metric):
    """Batch-size-weighted mean of ``fn(pred, targ)`` over the whole set."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.reset()

    def reset(self) -> None:
        self.total: Any = 0.0
        self.count = 0

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor, loss: torch.Tensor | None, bs: int) -> None:
        # keep the sum as a tensor on the device: no host sync per batch
        self.total = self.total + self.fn(pred, targ).detach().float() * bs
        self.count += bs

    @property
    def value(self) -> float | None:
        return float(self.total) / self.count if self.count else None


class AccumMetric(Metric):
    """Collects all (activated) predictions and targets, then computes ``fn(preds, targs)`` once."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float], name: str, activation: str | None = None,
                 flatten: bool = True):
        if activation not in (None, "softmax", "sigmoid", "argmax"):
            raise ValueError(f"activation must be None, 'softmax', 'sigmoid' or 'argmax'; got {activation!r}")
        self.fn, self.name, self.activation, self.flatten = fn, name, activation, flatten
        self.reset()

    def reset(self) -> None:
        self.preds: list[torch.Tensor] = []
        self.targs: list[torch.Tensor] = []

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor, loss: torch.Tensor | None, bs: int) -> None:
        pred = pred.detach().float()
        if self.activation == "softmax":
            pred = pred.softmax(-1)
        elif self.activation == "sigmoid":
            pred = pred.sigmoid()
        elif self.activation == "argmax":
            pred = pred.argmax(-1)
        self.preds.append(pred.cpu())
        self.targs.append(targ.detach().cpu())

    @property
    def value(self) -> float | None:
        if not self.preds:
            return None
        p, t = torch.cat(self.preds).numpy(), torch.cat(self.targs).numpy()
        if self.flatten:
            p = p.reshape(-1) if p.ndim <= 2 and (p.ndim == 1 or p.shape[-1] == 1) else p
            t = t.reshape(-1) if t.ndim <= 2 and (t.ndim == 1 or t.shape[-1] == 1) else t
        return float(self.fn(p, t))


# ---------------------------------------------------------------- functional (per-item mean) metrics
@_register
def accuracy(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Share of items whose arg-max prediction equals the target."""
    p = pred.argmax(dim=axis)
    return (p == targ.reshape(p.shape)).float().mean()


@_register
def error_rate(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """``1 - accuracy``."""
    return 1 - accuracy(pred, targ, axis)


def accuracy_multi(thresh: float = 0.5, sigmoid: bool = True) -> Metric:
    """Multi-label accuracy: share of (item, label) pairs right after thresholding at ``thresh``."""
    if not 0.0 < thresh < 1.0:
        raise ValueError(f"accuracy_multi: thresh must be in (0, 1), got {thresh}")

    def accuracy_multi(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        p = pred.sigmoid() if sigmoid else pred
        return ((p > thresh) == targ.bool()).float().mean()

    m = AvgMetric(accuracy_multi, "accuracy_multi")
    m.config = lambda: {"thresh": thresh, "sigmoid": sigmoid}  # type: ignore[method-assign]
    return m


METRICS["accuracy_multi"] = accuracy_multi


@_register
def mae(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (pred.reshape(-1).float() - targ.reshape(-1).float()).abs().mean()


@_register
def mse(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return ((pred.reshape(-1).float() - targ.reshape(-1).float()) ** 2).mean()


class ValueMetric(Metric):
    """Mean of a per-item quantity, transformed once at the end (e.g. sqrt for RMSE, exp for perplexity)."""

    def __init__(self, name: str, per_item: Callable[..., torch.Tensor], final: Callable[[float], float]):
        self.name, self.per_item, self.final = name, per_item, final
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor, loss: torch.Tensor | None, bs: int) -> None:
        vals = self.per_item(pred, targ, loss)
        if vals.ndim == 0:  # a mean already: weight it by the batch size
            self.total += float(vals) * bs
            self.count += bs
        else:
            self.total += float(vals.sum())
            self.count += vals.numel()

    @property
    def value(self) -> float | None:
        return self.final(self.total / self.count) if self.count else None


def rmse() -> Metric:
    """Root mean squared error over the whole set (sqrt of the pooled MSE, not a mean of batch RMSEs)."""
    return ValueMetric("rmse", lambda p, t, _: (p.reshape(-1).float() - t.reshape(-1).float()) ** 2, np.sqrt)


def Perplexity() -> Metric:  # noqa: N802 - reads like the class users know
    """exp(mean loss): the language-model metric, pooled over the whole set."""
    return ValueMetric("perplexity", lambda p, t, loss: loss.detach().float(), lambda v: float(np.exp(v)))


perplexity = Perplexity
METRICS["rmse"] = rmse
METRICS["perplexity"] = Perplexity


def R2Score() -> Metric:  # noqa: N802
    """Coefficient of determination over the whole set (sklearn's ``r2_score``)."""
    from sklearn.metrics import r2_score

    return AccumMetric(lambda p, t: r2_score(t, p), "r2_score")


def F1Score(average: str = "binary") -> Metric:  # noqa: N802
    """F1 on arg-max predictions; ``average`` as in sklearn ('binary', 'macro', 'micro', 'weighted')."""
    from sklearn.metrics import f1_score

    if average not in ("binary", "macro", "micro", "weighted"):
        raise ValueError(f"F1Score: average must be 'binary', 'macro', 'micro' or 'weighted'; got {average!r}")
    m = AccumMetric(lambda p, t: f1_score(t, p, average=average), "f1_score", activation="argmax")
    m.config = lambda: {"average": average}  # type: ignore[method-assign]
    return m


def RocAuc(average: str = "macro", multi_class: str = "ovr") -> Metric:  # noqa: N802
    """Area under the ROC curve on softmax probabilities (one-vs-rest for several classes)."""
    from sklearn.metrics import roc_auc_score

    def fn(p: np.ndarray, t: np.ndarray) -> float:
        if p.ndim == 2 and p.shape[1] == 2:
            return roc_auc_score(t, p[:, 1])
        return roc_auc_score(t, p, average=average, multi_class=multi_class)

    m = AccumMetric(fn, "roc_auc", activation="softmax")
    m.config = lambda: {"average": average, "multi_class": multi_class}  # type: ignore[method-assign]
    return m


def RocAucBinary() -> Metric:  # noqa: N802
    """ROC-AUC for a single-logit binary model (sigmoid probabilities)."""
    from sklearn.metrics import roc_auc_score

    return AccumMetric(lambda p, t: roc_auc_score(t, p), "roc_auc", activation="sigmoid")


for _f in (R2Score, F1Score, RocAuc, RocAucBinary):
    METRICS[_f.__name__] = _f


def as_metric(m: Any) -> Metric:
    """Wrap a plain function as ``AvgMetric``; call a metric factory (e.g. ``rmse``); pass Metrics through."""
    if isinstance(m, Metric):
        return m
    if m in (rmse, Perplexity, R2Score, F1Score, RocAuc, RocAucBinary, accuracy_multi):
        return m()
    if callable(m):
        return AvgMetric(m)
    raise TypeError(f"metrics must be functions fn(pred, targ) or Metric objects; got {type(m).__name__}")


def metric_to_json(m: Metric) -> dict[str, Any] | None:
    """``{"name", "config"}`` when the metric is one of pipekit's (so it can be rebuilt), else None."""
    key = m.fn.__name__ if isinstance(m, AvgMetric) and m.name in METRICS else None
    factory_names = {"rmse": "rmse", "perplexity": "perplexity", "r2_score": "R2Score", "f1_score": "F1Score",
                     "roc_auc": "RocAuc", "accuracy_multi": "accuracy_multi"}
    if key is None:
        key = factory_names.get(m.name)
    if key is None or key not in METRICS:
        return None
    return {"name": key, "config": m.config()}


def metric_from_json(d: dict[str, Any]) -> Metric:
    """Rebuild a metric recorded by ``metric_to_json``."""
    fn = METRICS[d["name"]]
    if fn in (accuracy, error_rate, mae, mse):
        return AvgMetric(fn)
    return fn(**d.get("config", {}))
