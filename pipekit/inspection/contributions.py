"""Per-row contributions of any model that has exact ones: a tree model's own (``RandomForest``,
``ExtraTrees``: tree-interpreter, in probabilities or values; ``GBM``: TreeSHAP, in raw scores), and the
weighted mean of them for a model that averages tree models (``BaggedModel``, ``MeanEnsemble``,
``WeightedEnsemble``).

An average of predictions is explained exactly by the same average of their contributions only when the
contributions are in the space the model averages in: probabilities or values. A GBM classifier's
contributions are log-odds, and the mean of log-odds is not the log-odds of the mean probability, so an
average that holds one is refused, as are models with no exact decomposition (the tabular net, a stack's
meta-model): ``permutation_importance`` and ``partial_dependence`` explain those.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.ensemble import MeanEnsemble
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> ens = MeanEnsemble([RandomForest("classification", n_estimators=5, seed=s, n_jobs=1).fit(data) for s in (0, 1)])
    >>> c = contributions(ens, data)
    >>> c.space, bool(np.allclose(c.bias + c.values.sum(1), ens.predict(data)))
    ('probability', True)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from pipekit.backends.base import Contributions, Model
from pipekit.core.errors import ParameterError


@runtime_checkable
class Decomposes(Protocol):
    """A model that splits each prediction exactly into a bias and one term per input column."""

    def contributions(self, data: Any) -> Contributions: ...


def contributions(model: Any, data: Any) -> Contributions:
    """Per-row contributions of ``model`` on ``data``: ``bias + values.sum(features) == prediction`` (per
    class for classification), for ``waterfall_plot``.

    ``RandomForest`` / ``ExtraTrees`` and ``GBM`` give their own (``model.contributions``). ``BaggedModel``
    gives the mean of its fold models' contributions, ``MeanEnsemble`` and ``WeightedEnsemble`` the weighted
    mean of their members' (members without weight are left out), with the class columns in ``classes_``
    order and the columns of every member (zero where a member does not use one). These are exact when the
    averaged contributions are probabilities (forest classifiers) or values (regression); a GBM
    classifier's are log-odds, which do not average into the model's probability, so an average holding
    one is refused. A model without an exact decomposition (``TorchTabular``, ``StackingEnsemble``,
    ``SklearnModel``, ``XGBoost``, ``CatBoost``) is refused, naming what explains it instead.
    """
    from pipekit.ensemble.bagged import BaggedModel
    from pipekit.ensemble.base import Ensemble, member_name
    from pipekit.ensemble.mean import MeanEnsemble
    from pipekit.ensemble.weighted import WeightedEnsemble

    # averages first: they have a contributions() method that comes back here
    if isinstance(model, BaggedModel):
        d = model._prepare(data)
        parts = [(f"fold model {i} (models_[{i}])", 1.0 / len(model.models_), m) for i, m in enumerate(model.models_)]
    elif isinstance(model, (MeanEnsemble, WeightedEnsemble)):
        d = model._prepare(data)
        parts = [(f"member {member_name(m, i)}", float(w), m)
                 for i, (w, m) in enumerate(zip(model.weights_, model.members)) if w > 0]
    elif isinstance(model, Decomposes) and not isinstance(model, Ensemble):
        return model.contributions(data)
    else:
        outside = "" if isinstance(model, Model) else (
            " (a scikit-learn estimator, TabularClassifier/TabularRegressor included, has no tree paths pipekit "
            "reads: fit pipekit's RandomForest or GBM on the Tabular's split for exact contributions)")
        raise ParameterError(
            f"{type(model).__name__} has no exact per-row contributions: only tree models decompose a prediction "
            "exactly (RandomForest, ExtraTrees, GBM, and BaggedModel, MeanEnsemble or WeightedEnsemble averages of "
            f"them){outside}; explain it with permutation_importance or partial_dependence")
    explained = []
    for name, w, m in parts:
        try:
            c = contributions(m, d)
        except ParameterError as e:
            raise ParameterError(f"{type(model).__name__}: {name}: {e}") from None
        if c.space == "raw_score":
            raise ParameterError(
                f"{type(model).__name__}: {name} gives contributions in raw scores (log-odds of a boosted "
                f"classifier), but {type(model).__name__} averages probabilities, and the mean of log-odds is not "
                "the log-odds of the mean probability: the sum would not be its prediction. Explain that model "
                "alone (contributions(that_model, data)), or average forests, whose contributions are probabilities")
        explained.append((w, c))
    return _weighted_mean(explained, model.classes_ if model.task == "classification" else None)


def _weighted_mean(parts: list[tuple[float, Contributions]], classes: np.ndarray | None) -> Contributions:
    """The weighted mean of contributions in one space, over the union of their columns (in order of first
    appearance) and, for classification, the columns of ``classes`` (matched by label; a class a model
    never saw contributes 0, as it predicts 0 for it)."""
    names: list[str] = []
    for _, c in parts:
        names += [f for f in c.feature_names if f not in names]
    first = parts[0][1]
    n = len(first.values)
    K = None if classes is None else len(classes)
    bias = np.zeros((n,) if K is None else (n, K))
    values = np.zeros((n, len(names)) if K is None else (n, len(names), K))
    prediction = np.zeros_like(bias)
    for w, c in parts:
        cols = [names.index(f) for f in c.feature_names]
        if K is None:
            bias += w * c.bias
            values[:, cols] += w * c.values
            prediction += w * np.asarray(c.prediction, dtype=np.float64).reshape(n)
            continue
        own = np.asarray(c.classes).tolist()
        for k, label in enumerate(np.asarray(classes).tolist()):
            if label in own:
                j = own.index(label)
                bias[:, k] += w * c.bias[:, j]
                values[:, cols, k] += w * c.values[:, :, j]
                prediction[:, k] += w * c.prediction[:, j]
    return Contributions(bias=bias, values=values, feature_names=names, prediction=prediction, space=first.space,
                         classes=None if classes is None else np.asarray(classes))
