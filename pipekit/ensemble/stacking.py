"""``StackingEnsemble``: k-fold out-of-fold predictions of each base model feed a meta-model.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
    >>> ens = StackingEnsemble([RandomForest("classification", n_estimators=10, n_jobs=1),
    ...                         GBM("classification", n_estimators=40, n_jobs=1)], n_folds=3).fit(train)
    >>> ens.oob_predictions_.shape, ens.score(valid) > 0.8
    ((2, 300, 2), True)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.backends.sklearn_adapter import SklearnModel
from pipekit.core.component import Component
from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Interval, Options
from pipekit.data.progress import progress_bar
from pipekit.ensemble.base import (Ensemble, align_classes, as_member_list, check_members, member_name,
                                   validate_prediction)


class StackingEnsemble(Ensemble):
    """Fits its members itself: for each of ``n_folds`` folds of ``train`` (stratified for classification,
    shuffled with ``seed``) a clone of every member is fitted on the other folds (with the held-out fold as
    its valid split, so a GBM can stop early) and predicts the held-out fold; a meta-model (``meta``: any
    sklearn estimator or SklearnModel; default logistic regression on the members' log-probabilities /
    ridge on their values) learns from those out-of-fold predictions, plus the raw inputs when
    ``passthrough``. Finally every member is refitted on all of ``train`` (with ``valid`` for early stopping).

    Fitted: ``members_`` (refitted members), ``meta_model_``, ``oob_predictions_``, ``report_`` (on valid).
    """

    members_fitted = False  # it fits clones of its members itself
    param_constraints = {"n_folds": Interval(2, None, integer=True), "passthrough": Options(True, False),
                         "seed": Interval(0, 2**32 - 1, integer=True, none_ok=True)}

    def __init__(self, members: Sequence[Any] | dict[str, Any], meta: Any = None, n_folds: int = 5,
                 passthrough: bool = False, metric: Any = None, seed: int | None = 0):
        self.members = as_member_list(members)
        task = check_members(self.members, fitted=False)[0]
        self.meta = meta if meta is None or isinstance(meta, SklearnModel) else SklearnModel(meta, task)
        self.n_folds, self.passthrough, self.metric, self.seed = n_folds, passthrough, metric, seed
        self.check_params()

    def check_params(self) -> None:
        for i, m in enumerate(self.members):
            if not isinstance(m, Component):
                raise ParameterError(f"member {member_name(m, i)} has no clone(); stacking refits every member per fold")
        super().check_params()

    def fitted_members(self) -> list:
        self.check_is_fitted()
        return self.members_

    def _folds(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import KFold, StratifiedKFold

        if self.task == "classification":
            counts = np.unique(y, return_counts=True)[1]
            if counts.min() < self.n_folds:
                raise DataError(f"the rarest class has {counts.min()} rows, fewer than n_folds={self.n_folds}; "
                                "lower n_folds")
            cv: Any = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed)
        else:
            cv = KFold(self.n_folds, shuffle=True, random_state=self.seed)
        return list(cv.split(np.zeros(len(y)), y))

    def _features(self, preds: np.ndarray, data: TabularData) -> pl.DataFrame:
        if self.task == "regression":
            feats = preds.T
        elif preds.shape[2] == 2:
            logp = np.log(np.clip(preds, 1e-7, 1.0))  # (M, n, K)
            feats = (logp[:, :, 1] - logp[:, :, 0]).T
        else:
            feats = np.log(np.clip(preds, 1e-7, 1.0)).transpose(1, 0, 2).reshape(preds.shape[1], -1)
        if self.passthrough:
            feats = np.hstack([feats, data.matrix(self.passthrough_columns_, dtype=np.float64)])
        return pl.DataFrame({f"m{j}": feats[:, j] for j in range(feats.shape[1])})

    def fit(self, train: Any, valid: Any = None) -> StackingEnsemble:
        d = as_data(train)
        if d.y is None:
            raise DataError("the training split has no targets (ys)")
        v = as_data(valid) if valid is not None else None
        classes = np.unique(d.y) if self.task == "classification" else None
        y = encode_y(d.y, self.task, classes)
        self.passthrough_columns_ = list(d.feature_names)
        folds = self._folds(y)
        k = None if classes is None else len(classes)
        oof = np.zeros((len(self.members), len(d)) + ((k,) if k else ()))
        jobs = [(i, f) for i in range(len(self.members)) for f in range(len(folds))]
        for i, f in progress_bar(jobs, total=len(jobs), description="stacking folds"):
            tr_idx, va_idx = folds[f]
            m = self.members[i].clone().fit(d.take(tr_idx), d.take(va_idx))
            p = np.asarray(m.predict(d.take(va_idx)), dtype=np.float64)
            if classes is not None:
                p = align_classes(p, m.classes_, classes)
            oof[i, va_idx] = validate_prediction(p, len(va_idx), member_name(m, i), self.task, k)
        self.oob_predictions_ = oof
        self.members_ = [m.clone().fit(d, v) for m in self.members]
        check_members(self.members_, fitted=True)
        if self.meta is not None:
            meta = self.meta.clone()
        else:  # logistic regression on the members' log-probabilities, ridge on their values
            from sklearn.linear_model import LogisticRegression, Ridge

            meta = SklearnModel(LogisticRegression(C=1.0, max_iter=1000) if self.task == "classification"
                                else Ridge(alpha=1.0), self.task)
        self.meta_model_ = meta.fit(as_data(self._features(oof, d), y=d.y))
        self._remember_procs(d)
        self.report_ = None if v is None else self._scores(self._data(v))
        return self

    def _combine(self, preds: np.ndarray, data: TabularData | None) -> np.ndarray:
        if data is None:
            raise ParameterError("StackingEnsemble combines the members' predictions on data (its meta-model may "
                                 "read the inputs too)")
        return self.meta_model_.predict(self._features(preds, data))

