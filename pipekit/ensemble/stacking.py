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

from pipekit.data.progress import progress_bar
from pipekit.ensemble.base import (EnsembleBase, align_classes, as_member_list, check_members, encode_targets, member_name,
                                     member_predictions, validate_prediction)
from pipekit.backends.base import TabularData, as_data, object_from_state, register, state_to_file, unnest
from pipekit.backends.sklearn_adapter import SklearnModel


def _default_meta(task: str) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    return LogisticRegression(C=1.0, max_iter=1000) if task == "classification" else Ridge(alpha=1.0)


@register
class StackingEnsemble(EnsembleBase):
    """Fits its members itself: for each of ``n_folds`` folds of ``train`` (stratified for classification,
    shuffled with ``seed``) a clone of every member is fitted on the other folds (with the held-out fold as
    its valid split, so a GBM can stop early) and predicts the held-out fold; a meta-model (default
    logistic regression on the members' log-probabilities / ridge on their values, or any sklearn
    estimator) learns from those out-of-fold predictions, plus the raw inputs when ``passthrough``. Finally
    every member is refitted on all of ``train`` (with ``valid`` for early stopping).

    Fitted: ``members_`` (refitted members), ``meta_model_``, ``oob_predictions_``, ``report_`` (on valid).
    """

    def __init__(self, members: Sequence[Any] | dict[str, Any], meta: Any = None, n_folds: int = 5, passthrough: bool = False,
                 metric: Any = None, seed: int = 0):
        self.templates = as_member_list(members)
        self.task, _ = check_members(self.templates, fitted=False)
        for i, m in enumerate(self.templates):
            if not hasattr(m, "clone"):
                raise TypeError(f"member {member_name(m, i)} has no clone(); stacking refits every member per fold")
        if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
            raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}")
        if meta is not None and not (hasattr(meta, "fit") and hasattr(meta, "predict")):
            raise TypeError(f"meta must be an sklearn-style estimator with fit/predict, got {type(meta).__name__}")
        self.meta = meta
        self.n_folds = int(n_folds)
        self.passthrough = bool(passthrough)
        self.metric = metric
        self.seed = seed
        self.members = self.templates
        self.classes_ = None
        self.procs_state_ = None
        self.report_ = None

    def _folds(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import KFold, StratifiedKFold

        if self.task == "classification":
            counts = np.unique(y, return_counts=True)[1]
            if counts.min() < self.n_folds:
                raise ValueError(f"the rarest class has {counts.min()} rows, fewer than n_folds={self.n_folds}; "
                                 "lower n_folds")
            cv = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed)
        else:
            cv = KFold(self.n_folds, shuffle=True, random_state=self.seed)
        return list(cv.split(np.zeros(len(y)), y))

    def _features(self, preds: np.ndarray, data: TabularData) -> np.ndarray:
        if self.task == "classification":
            logp = np.log(np.clip(preds, 1e-7, 1.0))  # (M, n, K)
            feats = logp[:, :, 1] - logp[:, :, 0] if preds.shape[2] == 2 else logp.transpose(1, 0, 2).reshape(
                preds.shape[1], -1)
            feats = feats.T if preds.shape[2] == 2 else feats
        else:
            feats = preds.T
        if self.passthrough:
            feats = np.hstack([feats, data.matrix(self.passthrough_columns_, dtype=np.float64)])
        return feats

    def fit(self, train: Any, valid: Any = None) -> "StackingEnsemble":
        d = as_data(train)
        if d.y is None:
            raise ValueError("the training split has no targets (ys)")
        v = as_data(valid) if valid is not None else None
        self._remember_procs(d)
        if self.task == "classification":
            self.classes_ = np.unique(d.y)
        y = encode_targets(d.y, self.task, self.classes_)
        self.passthrough_columns_ = list(d.feature_names)
        folds = self._folds(y)
        M, n = len(self.templates), len(d)
        k = len(self.classes_) if self.classes_ is not None else None
        oof = np.zeros((M, n, k) if k else (M, n))
        jobs = [(i, f) for i in range(M) for f in range(len(folds))]
        for i, f in progress_bar(jobs, total=len(jobs), description="stacking folds"):
            tr_idx, va_idx = folds[f]
            m = self.templates[i].clone().fit(d.take(tr_idx), d.take(va_idx))
            m.name = getattr(self.templates[i], "name", None)
            p = np.asarray(m.predict(d.take(va_idx)), dtype=np.float64)
            if k:
                p = align_classes(p, m.classes_, self.classes_)
            oof[i, va_idx] = validate_prediction(p, len(va_idx), member_name(m, i), self.task, k)
        self.oob_predictions_ = oof
        self.members = [_named(t.clone().fit(d, v), t) for t in self.templates]
        self.members_ = self.members
        check_members(self.members)
        meta = SklearnModel(self.meta if self.meta is not None else _default_meta(self.task), self.task)
        feats = self._features(oof, d)
        self.meta_model_ = meta.fit(as_data(_frame(feats), y=d.y))
        if v is not None:
            self.report_ = self._report_on(v)
        return self

    def _report_on(self, v: TabularData):
        m = self._metric()
        y = encode_targets(v.y, self.task, self.classes_)
        preds = member_predictions(self.members, v, self.task, self.classes_)
        return self._report_frame([m(y, p) for p in preds] + [m(y, self._combine(preds, v))], m.name)

    def _combine(self, preds: np.ndarray, data: TabularData) -> np.ndarray:
        return self.meta_model_.predict(_frame(self._features(preds, data)))

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        metas, arrays = self._members_state()
        mmeta, marr = state_to_file(self.meta_model_)
        arrays.update({f"meta/{k}": a for k, a in marr.items()})
        return {"members": metas, "meta_model": mmeta, "n_folds": self.n_folds, "passthrough": self.passthrough,
                "metric": self.metric if isinstance(self.metric, str) else None, "seed": self.seed,
                "task": self.task, "classes": None if self.classes_ is None else self.classes_.tolist(),
                "passthrough_columns": self.passthrough_columns_, "procs_state": self.procs_state_}, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "StackingEnsemble":
        members = cls._members_from_state(meta["members"], arrays)
        obj = cls(members, n_folds=meta["n_folds"], passthrough=meta["passthrough"], metric=meta["metric"],
                  seed=meta["seed"])
        obj.members = obj.members_ = members
        obj.meta_model_ = object_from_state(meta["meta_model"], unnest("meta", arrays), where="meta-model")
        obj.classes_ = None if meta["classes"] is None else np.asarray(meta["classes"])
        obj.passthrough_columns_ = meta["passthrough_columns"]
        obj.procs_state_ = meta.get("procs_state")
        return obj


def _frame(feats: np.ndarray):
    import polars as pl

    return pl.DataFrame({f"m{j}": feats[:, j] for j in range(feats.shape[1])})


def _named(model: Any, template: Any) -> Any:
    model.name = getattr(template, "name", None)
    return model
