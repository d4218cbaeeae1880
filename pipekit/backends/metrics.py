"""Scoring for the backends and ensembles: a ``Metric`` knows its direction, so selection, importance and
reports work the same for accuracy (higher is better) and RMSE (lower is better).

Example:
    >>> from pipekit.backends.metrics import get_metric
    >>> m = get_metric("rmse", "regression")
    >>> m(np.array([1.0, 2.0]), np.array([1.0, 4.0])), m.greater_is_better
    (1.4142135623730951, False)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TASKS = ("classification", "regression")


# --------------------------------------------------------------------------------------------- metrics
class Metric:
    """A scoring function with a direction. ``fn(y_true, pred)`` where for classification ``y_true`` holds
    class indices and ``pred`` the (n, n_classes) probabilities; for regression both are 1-D floats.

    Example:
        >>> m = Metric(lambda y, p: float(np.mean(np.abs(y - p))), greater_is_better=False, name="mae")
        >>> m(np.array([1.0, 2.0]), np.array([1.0, 3.0]))
        0.5
    """

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float], greater_is_better: bool = True,
                 name: str | None = None):
        if not callable(fn):
            raise TypeError(f"Metric fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.greater_is_better = bool(greater_is_better)
        self.name = name or getattr(fn, "__name__", "metric")

    def __call__(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        return float(self.fn(y_true, pred))

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a > b if self.greater_is_better else a < b

    def loss(self, value: float) -> float:
        """The value turned into something to minimise (so drops/gains compare across metrics)."""
        return -value if self.greater_is_better else value

    def __repr__(self) -> str:
        return f"Metric({self.name}, greater_is_better={self.greater_is_better})"


def _accuracy(y, p):
    return np.mean(np.asarray(p).argmax(1) == y)


def _log_loss(y, p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1.0)
    return -np.mean(np.log(p[np.arange(len(y)), y]))


def _roc_auc(y, p):
    from sklearn.metrics import roc_auc_score

    p = np.asarray(p)
    if p.shape[1] == 2:
        return roc_auc_score(y, p[:, 1])
    return roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1]))


def _rmse(y, p):
    return np.sqrt(np.mean((np.asarray(y, dtype=np.float64) - np.asarray(p, dtype=np.float64)) ** 2))


def _mae(y, p):
    return np.mean(np.abs(np.asarray(y, dtype=np.float64) - np.asarray(p, dtype=np.float64)))


def _rmspe(y, p):
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    keep = y != 0  # the Kaggle definition skips zero targets (closed stores)
    return np.sqrt(np.mean(((y[keep] - p[keep]) / y[keep]) ** 2))


def _r2(y, p):
    y = np.asarray(y, dtype=np.float64)
    return 1.0 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)


METRICS: dict[str, tuple[Callable, bool, str]] = {
    "accuracy": (_accuracy, True, "classification"),
    "log_loss": (_log_loss, False, "classification"),
    "roc_auc": (_roc_auc, True, "classification"),
    "rmse": (_rmse, False, "regression"),
    "mae": (_mae, False, "regression"),
    "rmspe": (_rmspe, False, "regression"),
    "r2": (_r2, True, "regression"),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}


def get_metric(metric: str | Metric | Callable | None, task: str) -> Metric:
    """Resolve ``metric`` (a name from ``METRICS``, a ``Metric``, a callable treated as greater-is-better,
    or None for the task default: accuracy / rmse)."""
    check_task(task)
    if metric is None:
        metric = DEFAULT_METRIC[task]
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} is not known; use one of {sorted(METRICS)} or pass a Metric")
        fn, gib, kind = METRICS[metric]
        if kind != task:
            raise ValueError(f"metric={metric!r} is a {kind} metric but the task is {task!r}")
        return Metric(fn, gib, metric)
    if callable(metric):
        return Metric(metric, True)
    raise TypeError(f"metric must be None, a name, a Metric or a callable, got {type(metric).__name__}")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not valid; use one of {TASKS}")
    return task
