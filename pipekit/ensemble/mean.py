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

from pipekit.backends.base import not_a_split
from pipekit.core.component import Component
from pipekit.core.errors import ParameterError
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import Options
from pipekit.ensemble.base import Ensemble, as_member_list, check_members, no_sample_weight


class MeanEnsemble(Ensemble):
    """Plain (or fixed-weight) average of fitted members: it predicts as soon as its members are fitted.
    ``fit(data)`` (optional) scores the members and the average on ``data`` into ``report_`` and keeps the
    processing of that data (``processor()``).

    ``members``: fitted models, as a list or a dict naming them; ``name``: its own name (see
    :class:`~pipekit.ensemble.base.Ensemble`).

    >>> import numpy as np, polars as pl
    >>> from sklearn.dummy import DummyRegressor
    >>> from pipekit.backends import SklearnModel, as_data
    >>> from pipekit.ensemble import MeanEnsemble
    >>> data = as_data(pl.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), y=[1.0, 1.0, 3.0, 3.0])
    >>> mean = SklearnModel(DummyRegressor(), "regression").fit(data)  # predicts 2.0
    >>> zero = SklearnModel(DummyRegressor(strategy="constant", constant=0.0), "regression").fit(data)
    >>> MeanEnsemble([mean, zero]).predict(data).tolist(), MeanEnsemble([mean, zero], weights=[3, 1]).predict(data)[0].item()
    ([1.0, 1.0, 1.0, 1.0], 1.5)
    """

    param_constraints = {**Ensemble.param_constraints, "check_columns": Options(True, False)}

    def __init__(self, members: Sequence[Any] | dict[str, Any], weights: Sequence[float] | None = None,
                 metric: Any = None, check_columns: bool = True, name: str | None = None):
        self.members, self.weights, self.metric, self.check_columns = as_member_list(members), weights, metric, \
            check_columns
        self.name = name
        self.check_params()

    def check_params(self) -> None:
        super().check_params()
        if self.weights is not None:
            try:
                w = np.asarray(self.weights, dtype=np.float64)
            except (TypeError, ValueError):
                w = np.full(0, np.nan)
            if w.shape != (len(self.members),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ParameterError(f"weights must be {len(self.members)} finite, non-negative numbers with a positive "
                                     f"sum, got {str(self.weights)[:80]}")

    @property
    def is_fitted(self) -> bool:
        return all(not isinstance(m, Component) or m.is_fitted for m in self.members)

    def check_is_fitted(self, what: str = "fit") -> None:
        check_members(self.members, self.check_columns, fitted=True)  # names the member to fit

    @property
    def weights_(self) -> np.ndarray:
        """The weights in use, summing to 1 (equal by default)."""
        w = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def fit(self, data: Any = None, y: Any = None, sample_weight: Any = None) -> MeanEnsemble:
        """Optional: score the members and the average on the labelled split ``data`` into ``report_``. ``y`` is
        refused: the targets are in the split (``fit(as_data(xs, y=y))`` for a frame and its targets); so is
        ``sample_weight`` (:func:`~pipekit.ensemble.base.no_sample_weight`): the members are fitted already."""
        check_fork_safe("MeanEnsemble.fit")
        if sample_weight is not None:
            raise ParameterError(no_sample_weight(self))
        if y is not None:
            raise not_a_split(self, y, "data=None", "y")
        if data is not None:
            d = self._labelled(data, "fit")
            self._remember_procs(d)
            self.report_ = self._scores(d)
        return self

    def _weights(self) -> np.ndarray:
        return self.weights_
