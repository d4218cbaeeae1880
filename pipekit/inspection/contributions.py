"""Per-row contributions of any model that has exact ones: a tree model's own (``RandomForest``,
``ExtraTrees``: tree-interpreter, in probabilities or values; ``GBM``: TreeSHAP, in raw scores), those of a
fitted scikit-learn forest or tree (the book's ``RandomForestRegressor(...).fit(xs, y)``: tree-interpreter, as
``treeinterpreter.predict(m, row.values)`` gives them), the weighted mean of them for a model that averages
tree models (``BaggedModel``, ``MeanEnsemble``, ``WeightedEnsemble``), and those of a ``TabularClassifier`` /
``TabularRegressor`` around any of these, per input column of its raw rows.

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

The book's scikit-learn forest, fitted on a pandas frame, explained on the first rows of another:

    >>> import pandas as pd
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> xs = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    >>> m = RandomForestRegressor(n_estimators=5, random_state=0).fit(xs, 2 * xs["a"] + xs["b"])
    >>> c = contributions(m, xs.iloc[:5])
    >>> c.feature_names, bool(np.allclose(c.bias + c.values.sum(1), m.predict(xs.iloc[:5])))
    (['a', 'b'], True)

A ``TabularRegressor`` around a forest, explained per column of the raw rows it predicts from (a date's parts
summed into the date):

    >>> from pipekit.sklearn import TabularRegressor
    >>> raw = xs.assign(day=pd.date_range("2015-01-01", periods=300))
    >>> reg = TabularRegressor(RandomForest("regression", n_estimators=5, n_jobs=1)).fit(raw, 2 * raw["a"])
    >>> c = contributions(reg, raw.iloc[:5])
    >>> c.feature_names, bool(np.allclose(c.bias + c.values.sum(1), reg.predict(raw.iloc[:5])))
    (['a', 'b', 'day'], True)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from pipekit.backends.base import Contributions, Model, array_rows
from pipekit.core.errors import DataError, NotFittedError, ParameterError
from pipekit.inspection.explain import is_estimator


@runtime_checkable
class Decomposes(Protocol):
    """A model that splits each prediction exactly into a bias and one term per input column."""

    def contributions(self, data: Any) -> Contributions: ...


def contributions(model: Any, data: Any) -> Contributions:
    """Per-row contributions of ``model`` on ``data``: ``bias + values.sum(features) == prediction`` (per
    class for classification), for ``waterfall_plot``.

    ``RandomForest`` / ``ExtraTrees`` and ``GBM`` give their own (``model.contributions``). A fitted
    scikit-learn forest or tree (``RandomForestRegressor``/``Classifier``, ``ExtraTreesRegressor``/``Classifier``,
    ``DecisionTreeRegressor``/``Classifier``, ``ExtraTreeRegressor``/``Classifier``, one output), as the book fits
    on ``to.train.xs``, gives the tree-interpreter contributions of ``RandomForest`` (the same path walk, over its
    trees): the values of ``m.predict`` or the probabilities of ``m.predict_proba`` (columns in ``m.classes_``
    order). ``data`` is then a pandas or Polars frame (``valid_xs.iloc[:5]``), a processed split (``to.valid``), or
    a 2-D array (``row.values``); the features are the model's ``feature_names_in_`` (read by name from a frame),
    or, for a model fitted on an array, the frame's columns in order (``x0``, ``x1``, ... for an array). ``BaggedModel``
    gives the mean of its fold models' contributions, ``MeanEnsemble`` and ``WeightedEnsemble`` the weighted
    mean of their members' (members without weight are left out), with the class columns in ``classes_``
    order and the columns of every member (zero where a member does not use one). These are exact when the
    averaged contributions are probabilities (forest classifiers) or values (regression); a GBM
    classifier's are log-odds, which do not average into the model's probability, and a GBM regressor's of a
    ``poisson``, ``gamma`` or ``tweedie`` objective are the log of its value, so an average holding one is
    refused. A ``SklearnModel`` holding one of those scikit-learn forests or trees (what ``RandomForest`` names for
    scikit-learn's other settings) gives its trees' contributions on the rows it prepares, in its ``classes_``
    order. ``RandomForest``, ``ExtraTrees`` and ``GBM`` take a 1-D or 2-D array of numbers too (``row.values``), its
    values in the order of ``feature_names_``. A fitted ``TabularClassifier`` / ``TabularRegressor`` gives the
    contributions of its backend (``model_``, any of the above) on ``process(data)`` for the raw rows ``data`` it
    predicts from, each column the procs made summed into the input column it came from (``age_na`` into
    ``age``, a date's parts into the date, as ``feature_importances_`` credits them): the columns are its
    ``feature_names_in_``, the classes its ``classes_``, and ``bias + values.sum(1)`` is its ``predict`` (regression)
    or ``predict_proba`` (a forest classifier); a GBM's stay raw scores (``decision_function`` for two classes). A
    model without an exact decomposition (``TorchTabular``, ``StackingEnsemble``, ``SklearnModel`` of another
    estimator, ``XGBoost``, ``CatBoost``, an estimator around one of those, a scikit-learn estimator other than a
    forest or tree) is refused, naming what explains it instead.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.inspection import contributions
    >>> xs = pl.DataFrame({"a": np.arange(40.0), "noise": np.zeros(40)})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 19, "yes", "no"))
    >>> rf = RandomForest("classification", n_estimators=5, n_jobs=1).fit(data)
    >>> c = contributions(rf, data.take(np.array([0, 39])))
    >>> c.values.shape, c.space, bool(np.allclose(c.bias + c.values.sum(1), c.prediction))
    ((2, 2, 2), 'probability', True)
    """
    from pipekit.backends.sklearn_adapter import SklearnModel
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
        return model.contributions(data)  # a row or rows as an array (row.values) too: the backend reads them
    elif _is_sklearn_trees(model):
        forest, data = _as_forest(model, data)
        return forest.contributions(data)
    elif isinstance(model, SklearnModel) and _is_sklearn_trees(model.estimator):
        return _wrapped_trees(model, data)
    elif is_estimator(model):
        return _estimator_contributions(model, data)
    else:
        outside = "" if isinstance(model, Model) else (
            " (of scikit-learn estimators only forests and trees are read: RandomForest/ExtraTrees Regressor or "
            "Classifier, DecisionTree/ExtraTree Regressor or Classifier, and TabularClassifier/TabularRegressor "
            "around a tree model; boosted or linear models have no tree paths pipekit reads)")
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
        if c.space == "raw_score" and model.task == "regression":
            raise ParameterError(
                f"{type(model).__name__}: {name} gives contributions in raw scores (the log of the predicted value, "
                "of a GBM objective with a link such as poisson, gamma or tweedie), but "
                f"{type(model).__name__} averages values, and the mean of logs is not the log of the mean value: "
                "the sum would not be its prediction. Explain that model alone (contributions(that_model, data)), "
                "or average models whose contributions are values (forests, or GBMs of an objective without a "
                "link, such as 'regression')")
        if c.space == "raw_score":
            raise ParameterError(
                f"{type(model).__name__}: {name} gives contributions in raw scores (log-odds of a boosted "
                f"classifier), but {type(model).__name__} averages probabilities, and the mean of log-odds is not "
                "the log-odds of the mean probability: the sum would not be its prediction. Explain that model "
                "alone (contributions(that_model, data)), or average forests, whose contributions are probabilities")
        explained.append((w, c))
    return _weighted_mean(explained, model.classes_ if model.task == "classification" else None)


def _sklearn_tree_types() -> tuple[type, ...]:
    """The scikit-learn estimators whose trees the forest's path walk reads: forests averaging decision trees,
    and single decision trees."""
    from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier,
                                  RandomForestRegressor)
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor

    return (RandomForestRegressor, RandomForestClassifier, ExtraTreesRegressor, ExtraTreesClassifier,
            DecisionTreeRegressor, DecisionTreeClassifier, ExtraTreeRegressor, ExtraTreeClassifier)


def _is_sklearn_trees(model: Any) -> bool:
    # scikit-learn is imported only for one of its own estimators
    return type(model).__module__.split(".")[0] == "sklearn" and isinstance(model, _sklearn_tree_types())


class _Read:
    """A fitted scikit-learn forest or tree as the forest backend reads it (``estimators_``, ``n_jobs``,
    ``predict`` / ``predict_proba`` of the rows as an array): a tree is a forest of that one tree (the mean over one
    tree is the tree), and a model fitted on named columns is given its rows under those names, which the
    backend matched by name before (no warning of arrays without names, and no filter of the process's warnings
    changed, which other threads share)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.single = not hasattr(model, "n_estimators")
        self.estimators_ = [model] if self.single else model.estimators_
        names = getattr(model, "feature_names_in_", None)
        self.names = None if names is None else list(names)

    @property
    def n_jobs(self) -> Any:
        return 1 if self.single else self.model.n_jobs

    @n_jobs.setter
    def n_jobs(self, value: Any) -> None:  # the backend predicts in its own threads, each tree in order
        if not self.single:
            self.model.n_jobs = value

    def _rows(self, X: np.ndarray) -> Any:
        if self.names is None:
            return X
        import pandas as pd

        return pd.DataFrame(X, columns=self.names, copy=False)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(self._rows(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self._rows(X))


def _as_forest(model: Any, data: Any) -> tuple[Any, Any]:
    """A fitted scikit-learn forest or tree as pipekit's forest backend holding it (``model_``, read as it is: no
    copy, nothing refitted), so ``RandomForest.contributions`` walks its trees; and ``data`` as that backend reads
    it (a 2-D array as a frame of the model's features)."""
    from sklearn.base import is_classifier

    from pipekit.backends.data import as_data
    from pipekit.backends.forest import ExtraTrees, RandomForest

    name = type(model).__name__
    single = not hasattr(model, "n_estimators")  # a tree, not a forest (fitted or not)
    if not hasattr(model, "tree_" if single else "estimators_"):
        raise NotFittedError(f"{name} is not fitted yet; fit it (m.fit(xs, y)) before asking for its contributions")
    if getattr(model, "n_outputs_", 1) != 1:
        raise ParameterError(f"{name} predicts {model.n_outputs_} targets at once; contributions explain one: fit "
                             "one model per target")
    n_features = int(model.n_features_in_)
    names = getattr(model, "feature_names_in_", None)
    cols = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(n_features)]
    data = array_rows(data, cols, name)
    data = as_data(data)  # a frame, a row, a processed split: its inputs
    if names is None:  # fitted on an array: the frame's columns are its features, in order
        cols = list(data.xs.columns)
        if len(cols) != n_features:
            raise DataError(f"{name} was fitted on an array of {n_features} features without names; the data has "
                            f"{len(cols)} column(s): give a frame of exactly its {n_features} columns, in the order "
                            "it was fitted on")
        names = cols
    task = "classification" if is_classifier(model) else "regression"
    forest = (ExtraTrees if "ExtraTree" in name else RandomForest)(
        task, n_estimators=1 if single else len(model.estimators_), n_jobs=None, name=name)
    forest.model_ = _Read(model)
    forest.feature_names_ = [str(c) for c in names]
    forest.cat_features_, forest.procs_signature_ = [], None
    if task == "classification":
        forest.classes_ = np.asarray(model.classes_)
    return forest, data


def _wrapped_trees(model: Any, data: Any) -> Contributions:
    """The contributions of a ``SklearnModel`` holding a scikit-learn forest or tree (the wrapper
    ``RandomForest``'s refusal of a scikit-learn setting names): its trees walked on the rows the wrapper prepares
    (its columns, its procs' codes), with the wrapper's ``feature_names_`` and, for classification, its
    ``classes_`` (the estimator is fitted on their positions; a class it never saw contributes 0)."""
    import polars as pl

    d = model._prepare(array_rows(data, model.feature_names_, type(model).__name__, model.row_form().codes)
                       if model.is_fitted else data)
    X = model.matrix(d, order="C")
    forest, rows = _as_forest(model.model_, pl.DataFrame({c: X[:, j] for j, c in enumerate(model.feature_names_)}))
    c = forest.contributions(rows)
    if model.task != "classification":
        return c
    c.classes = np.asarray(model.classes_)[np.asarray(model.model_.classes_, dtype=np.int64)]
    return _weighted_mean([(1.0, c)], model.classes_)


def _estimator_contributions(est: Any, data: Any) -> Contributions:
    """The contributions of a fitted ``TabularClassifier`` / ``TabularRegressor``: those of its backend
    (``est.model_``) on the rows its procs make (``est.process(data)``), each column the procs made credited to
    the input column it came from (``age_na`` to ``age``, date parts to their date), as ``feature_importances_``
    credits them, so the columns are ``est.input_columns()``; classes in ``est.classes_`` order, with its labels."""
    who = type(est).__name__
    est.check_is_fitted()
    try:
        c = contributions(est.model_, est.process(data))
    except ParameterError as e:
        raise ParameterError(f"{who} is explained through its backend (model_, on the rows process(X) makes), and "
                             f"{e}: for this estimator, permutation_importance(est, X, y=y) or "
                             "partial_dependence(est, X, 'column')") from None
    inputs = est.input_columns()
    values = np.zeros((c.values.shape[0], len(inputs), *c.values.shape[2:]))
    # each made column added into its input column (several add into one: a date's parts)
    np.add.at(values, (slice(None), np.asarray(est.input_index(c.feature_names), dtype=np.intp)),  # type: ignore[arg-type]
              c.values)
    bias, prediction, classes = c.bias, np.asarray(c.prediction, dtype=np.float64), None
    if est.task == "classification":
        own = {str(k): i for i, k in enumerate(est.classes_)}
        order = np.asarray([own[str(k)] for k in np.asarray(c.classes).tolist()], dtype=np.int64)
        classes = np.asarray(est.classes_)
        if values.ndim == 3:  # a column per class: put in the estimator's order
            values[..., order] = values.copy()
            bias, prediction, given = np.empty_like(c.bias), np.empty_like(prediction), prediction
            bias[:, order], prediction[:, order] = c.bias, given
        elif order[-1] != len(order) - 1:  # a two-class GBM's log-odds, of the class the estimator lists first
            values, bias, prediction = -values, -bias, -prediction
    return Contributions(bias=bias, values=values, feature_names=inputs, prediction=prediction, space=c.space,
                         classes=classes)


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
