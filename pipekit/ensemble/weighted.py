"""``WeightedEnsemble``: greedy forward selection with replacement (Caruana et al., 2004).

Start from the best single member, then repeatedly add (with replacement) the member whose inclusion
gives the best score of the running average on the selection data; the final bag is the best-scoring
prefix, so on the selection data the ensemble is never worse than its best member. Weights are the
selection counts divided by the bag size.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
    >>> rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(train)
    >>> gbm = GBM("classification", n_estimators=50, n_jobs=1).fit(train)
    >>> ens = WeightedEnsemble({"rf": rf, "gbm": gbm}, n_iter=20).fit(valid)
    >>> float(ens.weights_.sum()), ens.score(valid) >= max(rf.score(valid), gbm.score(valid))
    (1.0, True)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipekit.ensemble.base import (EnsembleBase, as_member_list, check_members, encode_targets, member_name, member_predictions,
                                     validate_prediction)
from pipekit.backends.base import TabularData, get_metric, register
from pipekit.backends.metrics import _log_loss as log_loss


@register
class WeightedEnsemble(EnsembleBase):
    """Members must already be fitted; ``fit(data)`` selects weights on ``data`` (a labelled split the
    members were not trained on: the valid split or out-of-fold predictions via ``fit_predictions``).

    Fitted: ``weights_`` (one per member, summing to 1), ``selection_`` (member index picked at each step),
    ``scores_`` (score after each step), ``best_member_``, ``report_``.
    """

    def __init__(self, members: Sequence[Any] | dict[str, Any], metric: Any = None, n_iter: int = 50, check_columns: bool = True):
        self.members = as_member_list(members)
        self.task, self.classes_ = check_members(self.members, check_columns=check_columns)
        if not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
            raise ValueError(f"n_iter must be an int >= 1, got {n_iter!r}")
        self.metric = metric
        get_metric(metric, self.task)  # fail early on a bad metric
        self.n_iter = int(n_iter)
        self.check_columns = check_columns
        self.procs_state_ = None

    def fit(self, data: Any) -> "WeightedEnsemble":
        """Select weights on the labelled split ``data``."""
        d = self._prepare(data)
        self._remember_procs(d)
        preds = member_predictions(self.members, d, self.task, self.classes_)
        return self.fit_predictions(preds, d.y)

    def fit_predictions(self, preds: Sequence[np.ndarray] | np.ndarray, y: np.ndarray) -> "WeightedEnsemble":
        """Select weights from precomputed predictions (one array per member, in ``classes_`` order; e.g.
        out-of-fold predictions) and the raw targets ``y``."""
        y = encode_targets(np.asarray(y), self.task, self.classes_)
        if len(preds) != len(self.members):
            raise ValueError(f"got predictions for {len(preds)} members, the ensemble has {len(self.members)}")
        k = None if self.classes_ is None else len(self.classes_)
        P = np.stack([validate_prediction(p, len(y), member_name(m, i), self.task, k)
                      for i, (p, m) in enumerate(zip(preds, self.members))])
        metric = self._metric()
        loss = metric.loss
        # ties on a coarse metric (accuracy) are broken by log-loss, which rewards the better-calibrated mix
        tie = (lambda p: log_loss(y, p)) if (self.task == "classification" and metric.name != "log_loss") else None

        def key(p: np.ndarray) -> tuple[float, float]:
            return (loss(metric(y, p)), tie(p) if tie else 0.0)

        total = np.zeros_like(P[0])
        selection, keys = [], []
        for step in range(self.n_iter):
            cand = [key((total + P[j]) / (step + 1)) for j in range(len(P))]
            j = min(range(len(P)), key=lambda i: cand[i])  # first best: deterministic
            selection.append(j)
            keys.append(cand[j])
            total += P[j]
        best_len = min(range(len(keys)), key=lambda i: keys[i]) + 1
        counts = np.bincount(selection[:best_len], minlength=len(P)).astype(np.float64)
        self.weights_ = counts / counts.sum()
        self.selection_ = selection
        self.scores_ = [-k[0] if metric.greater_is_better else k[0] for k in keys]
        member_scores = [metric(y, p) for p in P]
        self.best_member_ = int(min(range(len(P)), key=lambda i: loss(member_scores[i])))
        self.report_ = self._report_frame(member_scores + [metric(y, self._combine(P, None))], metric.name)
        return self

    def _combine(self, preds: np.ndarray, data: TabularData | None) -> np.ndarray:
        return np.tensordot(self.weights_, preds, axes=1)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        metas, arrays = self._members_state()
        arrays["weights"] = self.weights_
        return {"members": metas, "metric": self.metric if isinstance(self.metric, str) else None,
                "n_iter": self.n_iter, "check_columns": self.check_columns, "procs_state": self.procs_state_,
                "selection": list(map(int, self.selection_))}, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "WeightedEnsemble":
        obj = cls(cls._members_from_state(meta["members"], arrays), metric=meta["metric"], n_iter=meta["n_iter"],
                  check_columns=meta["check_columns"])
        obj.weights_ = arrays["weights"]
        obj.selection_ = meta["selection"]
        obj.procs_state_ = meta.get("procs_state")
        obj.report_ = None
        return obj
