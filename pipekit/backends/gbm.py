"""Gradient boosting backend on LightGBM: native categorical splits on the Categorify codes, early
stopping on the valid split, gain/split importance, TreeSHAP contributions, export as LightGBM's own
model text (no pickle).

Example:
    >>> import polars as pl, numpy as np
    >>> from pipekit.backends import GBM, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "c": rng.integers(0, 4, 400)})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2 + xs["c"].to_numpy(), cat_names=["c"])
    >>> gbm = GBM("regression", n_estimators=300, learning_rate=0.2, min_child_samples=5, n_jobs=1)
    >>> gbm = gbm.fit(data.take(np.arange(300)), data.take(np.arange(300, 400)))
    >>> gbm.score(data) < 0.5
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from pipekit.backends.base import (Backend, Contributions, TabularData, array_to_bytes, as_data, bytes_to_array,
                                 check_task, feature_frame, register)


@register
class GBM(Backend):
    """LightGBM model for ``task`` "classification" or "regression".

    Category-code columns (the split's ``cat_names`` and their ``_na`` flags) are passed as LightGBM
    categorical features when ``native_categorical`` is True. With a ``valid`` split, training stops after
    ``early_stopping_rounds`` rounds without improvement and ``best_iteration_`` is used for prediction.
    ``params`` adds or overrides raw LightGBM parameters.
    Fitted: ``booster_``, ``best_iteration_``, ``evals_result_``.
    """

    _param_names = ("task", "n_estimators", "learning_rate", "num_leaves", "min_child_samples", "subsample",
                    "colsample", "reg_lambda", "early_stopping_rounds", "native_categorical", "n_jobs", "seed",
                    "params")

    def __init__(self, task: str, n_estimators: int = 1000, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 20, subsample: float = 1.0, colsample: float = 1.0,
                 reg_lambda: float = 0.0, early_stopping_rounds: int | None = 50, native_categorical: bool = True,
                 n_jobs: int | None = -1, seed: int = 0, params: dict | None = None):
        self.task = check_task(task)
        if not isinstance(n_estimators, (int, np.integer)) or n_estimators < 1:
            raise ValueError(f"n_estimators must be an int >= 1, got {n_estimators!r}")
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if not isinstance(num_leaves, (int, np.integer)) or num_leaves < 2:
            raise ValueError(f"num_leaves must be an int >= 2, got {num_leaves!r}")
        for name, v in (("subsample", subsample), ("colsample", colsample)):
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{name} must be a float in (0, 1], got {v!r}")
        if early_stopping_rounds is not None and (not isinstance(early_stopping_rounds, (int, np.integer))
                                                  or early_stopping_rounds < 1):
            raise ValueError(f"early_stopping_rounds must be None or an int >= 1, got {early_stopping_rounds!r}")
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"params must be a dict of LightGBM parameters, got {type(params).__name__}")
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.num_leaves = int(num_leaves)
        self.min_child_samples = int(min_child_samples)
        self.subsample = float(subsample)
        self.colsample = float(colsample)
        self.reg_lambda = float(reg_lambda)
        self.early_stopping_rounds = early_stopping_rounds
        self.native_categorical = bool(native_categorical)
        self.n_jobs = n_jobs
        self.seed = int(seed)
        self.params = dict(params) if params else None

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict this model trains with."""
        if self.task == "regression":
            obj = {"objective": "regression"}
        elif len(self.classes_) == 2:
            obj = {"objective": "binary"}
        else:
            obj = {"objective": "multiclass", "num_class": len(self.classes_)}
        p = {**obj, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
             "min_child_samples": self.min_child_samples, "lambda_l2": self.reg_lambda,
             "feature_fraction": self.colsample, "seed": self.seed, "deterministic": True,
             "num_threads": 0 if self.n_jobs in (None, -1) else int(self.n_jobs), "verbosity": -1,
             "force_col_wise": True}
        if self.subsample < 1:
            p.update(bagging_fraction=self.subsample, bagging_freq=1)
        p.update(self.params or {})
        return p

    def fit(self, train: Any, valid: Any = None) -> "GBM":
        import lightgbm as lgb

        d = as_data(train)
        self._setup(d)
        cats = [i for i, c in enumerate(self.feature_names_) if c in self.cat_features_] \
            if self.native_categorical else []
        # Fortran order: LightGBM reads column-major float32 without converting it again
        ds = lgb.Dataset(self.matrix(d, order="F"), label=self.encode_y(d.y), categorical_feature=cats,
                         feature_name=_safe_names(self.feature_names_), free_raw_data=True)
        valid_sets, callbacks, self.evals_result_ = [], [], {}
        if valid is not None:
            v = as_data(valid)
            self.check_compatible(v)
            if v.y is None:
                raise ValueError("the valid split has no targets; early stopping needs labels")
            if len(v) == 0:
                raise ValueError("the valid split is empty; pass valid=None to train without early stopping")
            vs = lgb.Dataset(self.matrix(v, order="F"), label=self.encode_y(v.y), reference=ds,
                             categorical_feature=cats, feature_name=_safe_names(self.feature_names_))
            valid_sets = [vs]
            callbacks.append(lgb.record_evaluation(self.evals_result_))
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(self.lgb_params(), ds, num_boost_round=self.n_estimators, valid_sets=valid_sets,
                                  valid_names=["valid"] if valid_sets else None, callbacks=callbacks)
        best = self.booster_.best_iteration
        self.best_iteration_ = int(best) if best and best > 0 else self.booster_.current_iteration()
        return self

    def _raw(self, X: np.ndarray, **kw) -> np.ndarray:
        return self.booster_.predict(X, num_iteration=self.best_iteration_, **kw)

    def _predict_raw(self, d: TabularData) -> np.ndarray:
        p = self._raw(self.matrix(d, order="F"))
        if self.task == "classification" and p.ndim == 1:
            return np.column_stack([1.0 - p, p])
        return p

    def feature_importance(self, kind: str = "gain") -> pl.DataFrame:
        """Total gain (``kind="gain"``) or number of splits (``kind="split"``) per input, descending."""
        self._check_fitted()
        if kind not in ("gain", "split"):
            raise ValueError(f"kind must be 'gain' or 'split', got {kind!r}")
        imp = self.booster_.feature_importance(importance_type=kind, iteration=self.best_iteration_)
        return feature_frame(self.feature_names_, imp)

    def contributions(self, data: Any) -> Contributions:
        """TreeSHAP values from LightGBM (``pred_contrib=True``) in raw-score space: log-odds for binary,
        per-class raw scores for multiclass, the value for regression."""
        d = self._data(data)
        X = self.matrix(d, order="F")
        c = self._raw(X, pred_contrib=True)
        F = len(self.feature_names_)
        raw = self._raw(X, raw_score=True)
        if self.task == "classification" and len(self.classes_) > 2:
            K = len(self.classes_)
            c = c.reshape(len(d), K, F + 1).transpose(0, 2, 1)  # (n, F+1, K)
            return Contributions(bias=c[:, F, :], values=c[:, :F, :], feature_names=list(self.feature_names_),
                                 prediction=raw, space="raw_score", classes=self.classes_)
        space = "raw_score" if self.task == "classification" else "value"
        return Contributions(bias=c[:, F], values=c[:, :F], feature_names=list(self.feature_names_),
                             prediction=raw, space=space, classes=getattr(self, "classes_", None))

    # -- export ---------------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = self._base_state()
        meta["best_iteration"] = self.best_iteration_
        return meta, {"booster": bytes_to_array(self.booster_.model_to_string().encode("utf-8"))}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "GBM":
        import lightgbm as lgb

        obj = cls(**meta["params"])
        obj._restore_base(meta)
        obj.best_iteration_ = int(meta["best_iteration"])
        obj.evals_result_ = {}
        obj.booster_ = lgb.Booster(model_str=array_to_bytes(arrays["booster"]).decode("utf-8"))
        return obj


def _safe_names(names: list[str]) -> list[str]:
    # LightGBM rejects some JSON special characters in feature names; the model keeps the real names
    return [f"f{i}" for i in range(len(names))]
