"""Wrap a scikit-learn estimator in the backend interface.

Any estimator with ``fit``/``predict`` (and ``predict_proba`` for classification) trains and predicts.
Export writes the estimator's name, its JSON parameters and its fitted arrays; ``load_model`` rebuilds
only the estimators pipekit lists in :func:`loadable_estimators` (linear models, naive Bayes, k-NN,
linear discriminant analysis, decision trees, random forests and extra trees), never a class named by
the file, and it checks every parameter against the class's signature and every fitted attribute
before setting it. Estimators whose fitted state holds Python objects (pipelines, nested estimators)
refuse to export with a clear error.

Example:
    >>> import polars as pl, numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from pipekit.backends import SklearnModel, as_data
    >>> xs = pl.DataFrame({"a": np.linspace(-1, 1, 50)})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 0, "yes", "no"))
    >>> SklearnModel(LogisticRegression(), "classification").fit(data).predict_labels(data)[:2].tolist()
    ['no', 'no']
    >>> "LogisticRegression" in loadable_estimators()
    True
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipekit.backends.base import (Backend, ExportError, TabularData, as_data, check_task, feature_frame, register,
                                 to_jsonable, unnest)


@dataclass(frozen=True)
class _Loadable:
    """How one listed estimator class comes back from a file: ``attributes`` sets its fitted arrays and
    scalars; ``refit`` fits it again on the stored training arrays (k-NN, whose fitted state is the data
    plus a search tree built from it deterministically); ``trees`` rebuilds decision-tree node tables
    (checked) from arrays, ``tree_cls`` being the class of a forest's trees."""

    cls: type
    restore: str = "attributes"
    tree_cls: type | None = None


@functools.lru_cache(maxsize=None)
def _loadable() -> dict[str, _Loadable]:
    from sklearn import discriminant_analysis, ensemble, linear_model, naive_bayes, neighbors, svm, tree

    attributes = [
        linear_model.LogisticRegression, linear_model.SGDClassifier, linear_model.LinearRegression,
        linear_model.Ridge, linear_model.RidgeCV, linear_model.Lasso, linear_model.LassoCV, linear_model.ElasticNet,
        linear_model.ElasticNetCV, linear_model.HuberRegressor, linear_model.SGDRegressor, svm.LinearSVR,
        naive_bayes.GaussianNB, naive_bayes.BernoulliNB, naive_bayes.MultinomialNB, naive_bayes.ComplementNB,
        discriminant_analysis.LinearDiscriminantAnalysis, neighbors.NearestCentroid,
    ]
    out = {c.__name__: _Loadable(c) for c in attributes}
    for c in (neighbors.KNeighborsClassifier, neighbors.KNeighborsRegressor):
        out[c.__name__] = _Loadable(c, "refit")
    for c, t in ((tree.DecisionTreeClassifier, None), (tree.DecisionTreeRegressor, None),
                 (ensemble.RandomForestClassifier, tree.DecisionTreeClassifier),
                 (ensemble.RandomForestRegressor, tree.DecisionTreeRegressor),
                 (ensemble.ExtraTreesClassifier, tree.ExtraTreeClassifier),
                 (ensemble.ExtraTreesRegressor, tree.ExtraTreeRegressor)):
        out[c.__name__] = _Loadable(c, "trees", t)
    return out


def loadable_estimators() -> dict[str, type]:
    """The scikit-learn estimator classes a model file may name, by the name pipekit writes for them.

    >>> sorted(loadable_estimators())[:3]
    ['BernoulliNB', 'ComplementNB', 'DecisionTreeClassifier']
    """
    return {k: v.cls for k, v in _loadable().items()}


def _entry_for(cls: type) -> tuple[str, _Loadable] | None:
    for name, entry in _loadable().items():
        if entry.cls is cls:  # the exact class: a subclass may override anything
            return name, entry
    return None


_TREE_OBJECTS = ("tree_", "estimators_", "estimator_")
_PLAIN_KINDS = "biufcSU"


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
        found = _entry_for(cls)
        if found is None:
            raise TypeError(f"{cls.__module__}.{cls.__name__} cannot be exported: load_model rebuilds only the "
                            f"scikit-learn estimators pipekit lists ({', '.join(sorted(_loadable()))}); use one "
                            "of them, or RandomForest/GBM")
        name, entry = found
        params = est.get_params(deep=False)
        bad = [k for k, v in params.items() if not _plain(v)]
        if bad:
            raise TypeError(f"{cls.__name__} parameters {bad} are not plain values and cannot be exported "
                            "without pickling")
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        if entry.restore == "refit":
            y = np.asarray(est._y)
            arrays["fit/X"] = np.asarray(est._fit_X)
            arrays["fit/y"] = np.asarray(est.classes_)[y] if hasattr(est, "classes_") else y
        else:
            if entry.restore == "trees":
                from pipekit.backends.forest import trees_to_arrays

                trees = est.estimators_ if hasattr(est, "estimators_") else [est]
                arrays.update({f"trees/{k}": v for k, v in trees_to_arrays(trees).items()})
            for k, v in vars(est).items():
                if not k.endswith("_") or k.startswith("_") or (entry.restore == "trees" and k in _TREE_OBJECTS):
                    continue
                if isinstance(v, np.ndarray) and v.dtype.kind in _PLAIN_KINDS and v.dtype.fields is None:
                    arrays[f"attr/{k}"] = v
                elif isinstance(v, (int, float, str, bool, np.generic)) or v is None:
                    scalars[k] = to_jsonable(v)
                else:
                    raise TypeError(f"{cls.__name__} fitted attribute {k!r} ({type(v).__name__}) cannot be exported "
                                    "without pickling; use RandomForest/GBM or a simpler estimator")
        meta["params"] = {"task": self.task}
        meta["estimator"] = {"name": name, "params": to_jsonable(params), "scalars": scalars}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "SklearnModel":
        spec = meta.get("estimator")
        if not isinstance(spec, dict):
            raise ExportError("'estimator' must be a JSON object with the estimator's name, params and scalars")
        est = _estimator_from_state(spec, arrays, meta["params"]["task"])
        obj = cls(est, meta["params"]["task"])
        obj._restore_base(meta)
        n_in = getattr(est, "n_features_in_", len(obj.feature_names_))
        if n_in != len(obj.feature_names_):
            raise ExportError(f"{type(est).__name__} was fitted on {n_in!r} inputs but the file names "
                              f"{len(obj.feature_names_)} features")
        obj.model_ = est
        obj.valid_score_ = None
        return obj


def _estimator_from_state(spec: dict, arrays: dict[str, np.ndarray], task: str) -> Any:
    """Build the listed estimator named by ``spec`` and restore its fitted state, checking every field."""
    name = spec.get("name")
    entry = _loadable().get(name) if isinstance(name, str) else None
    if entry is None:
        module = spec.get("module")
        named = f"{module}.{name}" if isinstance(module, str) and isinstance(name, str) else repr(name)
        raise ExportError(f"estimator class {named} is not loadable; a model file may name only the scikit-learn "
                          f"estimators pipekit lists: {', '.join(sorted(_loadable()))}")
    est = entry.cls(**_checked_params(entry.cls, spec.get("params", {})))
    scalars = spec.get("scalars", {})
    if not isinstance(scalars, dict):
        raise ExportError(f"{name}: 'scalars' must be a JSON object of fitted scalars")
    attrs: dict[str, Any] = {}
    for k, v in scalars.items():
        _check_attr_name(entry.cls, k)
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise ExportError(f"{name}: fitted attribute {k!r} must be a number, string, bool or null, "
                              f"got {type(v).__name__}")
        attrs[k] = v
    known = {"attributes": ("attr/",), "refit": ("fit/",), "trees": ("attr/", "trees/")}[entry.restore]
    for k, v in arrays.items():
        if not k.startswith(known):
            raise ExportError(f"{name}: array {k!r} is not part of a {name} state (accepted: "
                              f"{', '.join(p + '...' for p in known)})")
        if not (isinstance(v, np.ndarray) and v.dtype.kind in _PLAIN_KINDS and v.dtype.fields is None):
            raise ExportError(f"{name}: array {k!r} must hold numbers, booleans or strings")
        if k.startswith("attr/"):
            _check_attr_name(entry.cls, k[5:])
            attrs[k[5:]] = v
    if entry.restore == "refit":
        X, y = arrays.get("fit/X"), arrays.get("fit/y")
        if X is None or y is None or X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or X.dtype.kind not in "biuf":
            raise ExportError(f"{name}: the stored training data must be a numeric 2-D 'fit/X' and a 1-D 'fit/y' "
                              "of the same length")
        return est.fit(X, y)
    if entry.restore == "trees":
        _restore_trees(est, entry, unnest("trees", arrays), attrs, task)
    for k, v in attrs.items():
        setattr(est, k, v)
    return est


def _restore_trees(est: Any, entry: _Loadable, arrays: dict[str, np.ndarray], attrs: dict[str, Any], task: str) -> None:
    from pipekit.backends.forest import tree_structures_from_arrays, trees_from_arrays

    n_features = attrs.get("n_features_in_")
    n_classes = len(attrs["classes_"]) if task == "classification" and "classes_" in attrs else None
    if task == "classification" and n_classes is None:
        raise ExportError(f"{entry.cls.__name__}: a classifier's state needs its 'classes_'")
    if entry.tree_cls is None:
        structures = tree_structures_from_arrays(arrays, task, n_features, n_classes)
        if len(structures) != 1:
            raise ExportError(f"{entry.cls.__name__}: a single tree's state holds {len(structures)} trees")
        est.tree_ = structures[0]
    else:
        trees = trees_from_arrays(arrays, task, n_features, n_classes, est, tree_cls=entry.tree_cls)
        est.estimators_ = trees
        est.estimator_ = entry.tree_cls(**{p: getattr(est, p) for p in est.estimator_params})


def _checked_params(cls: type, params: Any) -> dict[str, Any]:
    """``params`` must be plain JSON data whose names are parameters of ``cls.__init__``."""
    if not isinstance(params, dict):
        raise ExportError(f"{cls.__name__}: 'params' must be a JSON object, got {type(params).__name__}")
    sig = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in sig.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise ExportError(f"{cls.__name__}: parameters {unknown} are not arguments of {cls.__name__}; accepted: "
                          f"{accepted}")
    bad = [k for k, v in params.items() if not _plain_json(v)]
    if bad:
        raise ExportError(f"{cls.__name__}: parameters {bad} are not plain JSON values (numbers, strings, bools, "
                          "null, lists and objects of them)")
    return params


def _check_attr_name(cls: type, name: Any) -> None:
    """A fitted attribute: a public name ending in ``_`` that is not a method or property of the class."""
    if (not isinstance(name, str) or not name.isidentifier() or not name.endswith("_") or name.startswith("_")
            or hasattr(cls, name)):
        raise ExportError(f"{cls.__name__}: {name!r} is not a fitted attribute pipekit restores (a public name "
                          "ending in '_' that is not a method or property of the class)")


def _plain_json(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, list):
        return all(_plain_json(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain_json(x) for k, x in v.items())
    return False


def _plain(v: Any) -> bool:
    """JSON-able without custom objects (so the parameters can be stored as data)."""
    if v is None or isinstance(v, (int, float, str, bool, np.generic)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False
