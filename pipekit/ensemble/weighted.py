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

import time
from typing import Any, Sequence

import numpy as np

from pipekit.backends.base import POSITIVE_INT, TIME_LIMIT, not_a_split
from pipekit.backends.data import encode_y
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import Options
from pipekit.ensemble.bagged import training_predictions
from pipekit.ensemble.base import (Ensemble, as_member_list, member_name, member_predictions, no_sample_weight,
                                   validate_prediction)


class WeightedEnsemble(Ensemble):
    """Members must already be fitted; ``fit(data)`` selects weights on ``data`` (a labelled split the
    members were not trained on), ``fit()`` on the out-of-fold predictions of bagged members (as does
    ``fit(train)`` with the rows they were bagged on), ``fit_predictions`` on any precomputed predictions.

    ``time_limit``: seconds for the selection; it stops after the step during which they run out (the first
    step, the best single member, is always taken) and keeps the best prefix so far.

    ``members``: fitted models, as a list or a dict naming them; ``name``: its own name (see
    :class:`~pipekit.ensemble.base.Ensemble`).

    Fitted: ``weights_`` (one per member, summing to 1), ``selection_`` (member index picked at each step),
    ``scores_`` (score after each step), ``best_member_``, ``stopped_on_time_``, ``report_``.

    >>> import numpy as np, polars as pl
    >>> from sklearn.dummy import DummyRegressor
    >>> from pipekit.backends import RandomForest, SklearnModel, as_data
    >>> from pipekit.ensemble import WeightedEnsemble
    >>> xs = pl.DataFrame({"a": np.arange(80.0)})
    >>> data = as_data(xs, y=2 * xs["a"].to_numpy())
    >>> train, valid = data.take(np.arange(0, 80, 2)), data.take(np.arange(1, 80, 2))
    >>> rf = RandomForest("regression", n_estimators=5, n_jobs=1).fit(train)
    >>> mean = SklearnModel(DummyRegressor(), "regression", name="mean").fit(train)  # predicts the mean
    >>> ens = WeightedEnsemble([rf, mean], n_iter=10).fit(valid)
    >>> ens.weights_.tolist(), ens.report_["model"].to_list()
    ([1.0, 0.0], ['0:RandomForest', 'mean', 'WeightedEnsemble'])
    """

    param_constraints = {**Ensemble.param_constraints, "n_iter": POSITIVE_INT, "check_columns": Options(True, False),
                         "time_limit": TIME_LIMIT}

    def __init__(self, members: Sequence[Any] | dict[str, Any], metric: Any = None, n_iter: int = 50,
                 check_columns: bool = True, time_limit: float | None = None, name: str | None = None):
        self.members, self.metric, self.n_iter, self.check_columns = as_member_list(members), metric, n_iter, \
            check_columns
        self.time_limit, self.name = time_limit, name
        self.check_params()

    def fit(self, data: Any = None, y: Any = None, sample_weight: Any = None) -> WeightedEnsemble:
        """Select weights on the labelled split ``data``. With bagged members (``BaggedModel``) the weights are
        selected on their out-of-fold predictions when ``data`` is None or the rows they were fitted on, so
        no validation row chooses anything; ``selected_on_`` says which ("out_of_fold" or "data"). ``y`` is
        refused: the targets are in the split (``fit(as_data(xs, y=y))`` for a frame and its targets); so is
        ``sample_weight`` (:func:`~pipekit.ensemble.base.no_sample_weight`): every row counts alike."""
        check_fork_safe("WeightedEnsemble.fit")
        if sample_weight is not None:
            raise ParameterError(no_sample_weight(self))
        if y is not None:
            raise not_a_split(self, y, "data=None", "y")
        d = None if data is None else self._data(data)
        oof = training_predictions(self.members, self.classes_, d)  # None: d holds rows no member was fitted on
        preds, y = oof if oof is not None or d is None else (member_predictions(self.members, d, self.task,  # type: ignore[misc]
                                                                                self.classes_), d.y)
        self.fit_predictions(preds, y)
        self.selected_on_ = "out_of_fold" if oof is not None else "data"
        self._remember_procs(d)  # without data: the procs the members were bagged with
        return self

    def fit_predictions(self, preds: Sequence[np.ndarray] | np.ndarray, y: np.ndarray | None) -> WeightedEnsemble:
        """Select weights from precomputed predictions (one array per member, in ``classes_`` order; e.g.
        out-of-fold predictions) and the raw targets ``y``."""
        classes = self.classes_
        y = encode_y(None if y is None else np.asarray(y), self.task, classes)
        if len(preds) != len(self.members):
            raise DataError(f"got predictions for {len(preds)} members, the ensemble has {len(self.members)}")
        k = None if classes is None else len(classes)
        P = np.stack([validate_prediction(p, len(y), member_name(m, i), self.task, k)
                      for i, (p, m) in enumerate(zip(preds, self.members))])
        metric = self._fit_metric(classes)  # once: its direction decides every step
        # ties on a coarse metric (accuracy) are broken by log-loss, which rewards the better-calibrated mix
        tie = self.task == "classification" and metric.name != "log_loss"

        rows = np.arange(len(y))

        def keys_of(mixes: list[np.ndarray]) -> list[tuple[float, float]]:
            losses = [metric.loss(metric.score(y, p)) for p in mixes]
            low = min(losses)  # the tie-break only where it breaks a tie
            # the mean negative log-probability of the true class (log-loss with probabilities clipped at 1e-15)
            return [(v, float(-np.log(np.clip(p[rows, y], 1e-15, 1.0)).mean()) if tie and v == low else 0.0)
                    for v, p in zip(losses, mixes)]

        total = np.zeros_like(P[0])
        selection, keys = [], []
        deadline = None if self.time_limit is None else time.perf_counter() + self.time_limit
        self.stopped_on_time_ = False
        for step in range(self.n_iter):
            if deadline is not None and step and time.perf_counter() >= deadline:
                self.stopped_on_time_ = True
                break
            cand = keys_of([(total + P[j]) / (step + 1) for j in range(len(P))])
            j = min(range(len(P)), key=lambda i: cand[i])  # first best: deterministic
            selection.append(j)
            keys.append(cand[j])
            total += P[j]
        best_len = min(range(len(keys)), key=lambda i: keys[i]) + 1
        counts = np.bincount(selection[:best_len], minlength=len(P)).astype(np.float64)
        self.weights_ = counts / counts.sum()
        self.selection_, self.processor_, self.selected_on_ = selection, None, "predictions"
        self.scores_ = [metric.loss(k[0]) for k in keys]  # the loss of a loss is the score again
        member_scores = [metric.score(y, p) for p in P]
        self.best_member_ = int(min(range(len(P)), key=lambda i: metric.loss(member_scores[i])))
        self.report_ = self._report_frame(member_scores + [metric.score(y, self._combine(P, None))], metric.name)
        return self

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file, checked against the members: ``weights_`` one finite, non-negative weight
        per member summing to 1, ``selection_`` and ``best_member_`` member indices, ``processor_`` fitted procs."""
        super().state_from_data(state)
        if not state:
            return  # an unfitted ensemble's record
        n = len(self.members)
        w = vars(self).get("weights_")
        if not (isinstance(w, np.ndarray) and w.shape == (n,) and w.dtype.kind == "f"):
            got = f"an array of shape {w.shape} of {w.dtype}" if isinstance(w, np.ndarray) else type(w).__name__
            raise ExportError(f"WeightedEnsemble: weights_ must be an array of {n} floats, one per member, got {got}")
        if not (np.isfinite(w).all() and (w >= 0).all() and abs(float(w.sum()) - 1.0) <= 1e-6):
            raise ExportError(f"WeightedEnsemble: weights_ must be finite, non-negative and sum to 1, got "
                              f"{w.tolist()}")
        self.weights_ = w.astype(np.float64)
        selection, best = vars(self).get("selection_", []), vars(self).get("best_member_", 0)
        if not (isinstance(selection, list) and all(type(j) is int and 0 <= j < n for j in selection)):
            raise ExportError(f"WeightedEnsemble: selection_ must list member indices below {n}")
        if not (type(best) is int and 0 <= best < n):
            raise ExportError(f"WeightedEnsemble: best_member_ must be a member index below {n}, got {best!r:.40}")

    def _weights(self) -> np.ndarray:
        return self.weights_

    def _predict(self, d: Any, made: dict[int, Any] | None = None) -> np.ndarray:
        used = np.flatnonzero(self.weights_ > 0)  # a member without weight is not asked to predict
        members = [self.members[i] for i in used]
        preds = member_predictions(members, d, self.task, self.classes_, made)
        return np.tensordot(self.weights_[used], preds, axes=1)
