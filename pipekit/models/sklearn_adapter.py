"""Wrap any scikit-learn estimator in the backend interface.

Export stores the estimator's class name (only classes from the ``sklearn`` package are accepted on
load), its JSON-able parameters and its fitted array/scalar attributes, so linear models, naive Bayes,
k-NN and similar round-trip without pickling; estimators whose fitted state holds Python objects
(pipelines, nested estimators other than trees) refuse to export with a clear error.

Example:
    >>> import polars as pl, numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from pipekit.models import SklearnModel, as_data
    >>> xs = pl.DataFrame({"a": np.linspace(-1, 1, 50)})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 0, "yes", "no"))
    >>> SklearnModel(LogisticRegression(), "classification").fit(data).predict_labels(data)[:2].tolist()
    ['no', 'no']
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import polars as pl

from pipekit.models.base import Backend, TabularData, as_data, check_task, feature_frame, register, to_jsonable


@register
class SklearnModel(Backend):
    """Any sklearn estimator with ``fit(X, y)`` and ``predict`` (plus ``predict_proba`` for classification).
    Targets are passed as class indices into ``classes_`` (labels sorted), so probabilities line up with
    the other backends by label."""

    _param_names = ("estimator", "task")

    def __init__(self, estimator: Any, task: str):
        self.task = check_task(task)
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise TypeError(f"estimator must have fit and predict methods, got {type(estimator).__name__}")
        if task == "classification" and not hasattr(estimator, "predict_proba"):
            raise TypeError(f"{type(estimator).__name__} has no predict_proba; classification backends return "
                            "probabilities (for SVC use probability=True)")
        self.estimator = estimator

    def clone(self) -> "SklearnModel":
        from sklearn.base import clone

        return SklearnModel(clone(self.estimator), self.task)

    def fit(self, train: Any, valid: Any = None) -> "SklearnModel":
        from sklearn.base import clone

        d = as_data(train)
        self._setup(d)
        self.model_ = clone(self.estimator).fit(self.matrix(d, order="C"), self.encode_y(d.y))
        self.valid_score_ = self.score(valid) if valid is not None else None
        return self

    def _predict_raw(self, d: TabularData) -> np.ndarray:
        X = self.matrix(d, order="C")
        if self.task == "classification":
            p = self.model_.predict_proba(X)
            # a fold may miss a class: place the columns the estimator knows at their class index
            out = np.zeros((len(d), len(self.classes_)))
            out[:, np.asarray(self.model_.classes_, dtype=np.int64)] = p
            return out
        return np.asarray(self.model_.predict(X), dtype=np.float64).reshape(len(d))

    def feature_importance(self) -> pl.DataFrame:
        self._check_fitted()
        if hasattr(self.model_, "feature_importances_"):
            return feature_frame(self.feature_names_, self.model_.feature_importances_)
        if hasattr(self.model_, "coef_"):
            coef = np.abs(np.atleast_2d(self.model_.coef_)).mean(0)
            return feature_frame(self.feature_names_, coef)
        return super().feature_importance()

    # -- export ---------------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = self._base_state()
        est = self.model_
        cls = type(est)
        if not cls.__module__.startswith("sklearn."):
            raise TypeError(f"only scikit-learn estimators can be exported; {cls.__module__}.{cls.__name__} "
                            "is not")
        params = est.get_params(deep=False)
        bad = [k for k, v in params.items() if not _plain(v)]
        if bad:
            raise TypeError(f"{cls.__name__} parameters {bad} are not plain values and cannot be exported "
                            "without pickling")
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for k, v in vars(est).items():
            if not k.endswith("_") or k.startswith("_"):
                continue
            if isinstance(v, np.ndarray) and v.dtype != object:
                arrays[f"attr/{k}"] = v
            elif isinstance(v, (int, float, str, bool, np.generic)) or v is None:
                scalars[k] = to_jsonable(v)
            else:
                raise TypeError(f"{cls.__name__} fitted attribute {k!r} ({type(v).__name__}) cannot be exported "
                                "without pickling; use RandomForest/GBM or a simpler estimator")
        meta["params"] = {"task": self.task}
        meta["estimator"] = {"module": cls.__module__, "name": cls.__name__, "params": to_jsonable(params),
                             "scalars": scalars}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "SklearnModel":
        spec = meta["estimator"]
        if not spec["module"].startswith("sklearn."):
            raise ValueError(f"refusing to load estimator class from module {spec['module']!r}")
        est_cls = getattr(importlib.import_module(spec["module"]), spec["name"])
        est = est_cls(**spec["params"])
        for k, v in spec["scalars"].items():
            setattr(est, k, v)
        for k, v in arrays.items():
            if k.startswith("attr/"):
                setattr(est, k[5:], v)
        obj = cls(est, meta["params"]["task"])
        obj._restore_base(meta)
        obj.model_ = est
        obj.valid_score_ = None
        return obj


def _plain(v: Any) -> bool:
    """JSON-able without custom objects (so the parameters can be stored as data)."""
    if v is None or isinstance(v, (int, float, str, bool, np.generic)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False
