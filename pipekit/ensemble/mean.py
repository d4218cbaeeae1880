"""``MeanEnsemble``: average the members' probabilities / values (optionally with fixed weights).

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
    >>> rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(train)
    >>> gbm = GBM("classification", n_estimators=50, n_jobs=1).fit(train)
    >>> ens = MeanEnsemble([rf, gbm])
    >>> bool(np.allclose(ens.predict(valid), (rf.predict(valid) + gbm.predict(valid)) / 2))
    True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipekit.ensemble.base import EnsembleBase, as_member_list, check_members, encode_targets, member_predictions
from pipekit.backends.base import TabularData, register


@register
class MeanEnsemble(EnsembleBase):
    """Plain (or fixed-weight) average of fitted members. ``fit(data)`` checks the members against the data
    and records the report; prediction needs no fitting beyond that."""

    def __init__(self, members: Sequence[Any] | dict[str, Any], weights: Sequence[float] | None = None, metric: Any = None,
                 check_columns: bool = True):
        self.members = as_member_list(members)
        self.task, self.classes_ = check_members(self.members, check_columns=check_columns)
        if weights is None:
            w = np.full(len(self.members), 1.0 / len(self.members))
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(self.members),) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"weights must be {len(self.members)} non-negative numbers with a positive sum, "
                                 f"got {list(weights)}")
            w = w / w.sum()
        self.weights_ = w
        self.metric = metric
        self.check_columns = check_columns
        self.report_ = None
        self.procs_state_ = None

    def fit(self, data: Any = None) -> "MeanEnsemble":
        """Optional: score members and the average on ``data`` into ``report_``."""
        if data is not None:
            d = self._prepare(data)
            self._remember_procs(d)
            preds = member_predictions(self.members, d, self.task, self.classes_)
            y = encode_targets(d.y, self.task, self.classes_)
            m = self._metric()
            self.report_ = self._report_frame([m(y, p) for p in preds] + [m(y, self._combine(preds, d))], m.name)
        return self

    def _combine(self, preds: np.ndarray, data: TabularData) -> np.ndarray:
        return np.tensordot(self.weights_, preds, axes=1)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        metas, arrays = self._members_state()
        arrays["weights"] = self.weights_
        return {"members": metas, "metric": self.metric if isinstance(self.metric, str) else None,
                "check_columns": self.check_columns, "procs_state": self.procs_state_}, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "MeanEnsemble":
        obj = cls(cls._members_from_state(meta["members"], arrays), weights=arrays["weights"],
                  metric=meta["metric"], check_columns=meta["check_columns"])
        obj.procs_state_ = meta.get("procs_state")
        return obj
