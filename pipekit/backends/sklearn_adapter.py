"""Wrap a scikit-learn estimator in the backend interface.

Any estimator with ``fit``/``predict`` (and ``predict_proba`` for classification) trains and predicts.
A file stores the estimator as its registered class name plus its parameters as plain data, and its
fitted arrays and scalars. pipekit registers the scikit-learn estimators a file may name (kind
"sklearn_estimator", listed by :func:`loadable_estimators`: linear models, naive Bayes, k-NN, linear
discriminant analysis, decision trees, random forests and extra trees); loading looks the name up
there, checks every parameter against the class's signature and every fitted attribute before setting
it, and rebuilds trees from checked node tables. Estimators whose fitted state holds Python objects
(pipelines, nested estimators) and classes pipekit does not list refuse to export with a clear error.

Example:
    >>> import polars as pl, numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from pipekit.backends import SklearnModel, as_data
    >>> xs = pl.DataFrame({"a": np.linspace(-1, 1, 50)})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 0, "yes", "no"))
    >>> SklearnModel(LogisticRegression(), "classification").fit(data).predict_labels(data)[:2].tolist()
    ['no', 'no']
    >>> "sklearn.linear_model.LogisticRegression" in loadable_estimators()
    True
    >>> SklearnModel(LogisticRegression(C=2.0), "classification").params_to_data()["estimator"]["params"]["C"]
    2.0
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

from pipekit.backends.base import N_JOBS, NAME, TASK, Backend, cores, feature_frame
from pipekit.backends.data import TabularData
from pipekit.backends.forest import forest_from_data, tree_structures_from_data, trees_to_data
from pipekit.core.component import _same, param_names, to_data
from pipekit.core.errors import ExportError, ParameterError, warn
from pipekit.core.registry import register, registered
from pipekit.core.validate import Is

KIND = "sklearn_estimator"
_TREE_OBJECTS = ("tree_", "estimators_", "estimator_")
#: the defaults scikit-learn gives a parameter it is deprecating or about to change
_PLACEHOLDERS = ("deprecated", "warn")


@runtime_checkable
class Estimator(Protocol):
    """What a scikit-learn estimator offers a backend."""

    def fit(self, X: Any, y: Any) -> Any: ...
    def predict(self, X: Any) -> Any: ...


@runtime_checkable
class Classifier(Estimator, Protocol):
    def predict_proba(self, X: Any) -> Any: ...


#: what gives a listed classifier predict_proba where its parameters can leave it without one
_PROBABILITIES = {"SGDClassifier": "loss='log_loss'"}


def loadable_estimators() -> dict[str, type]:
    """The scikit-learn estimator classes a model file may name, by their registered name (pipekit registers
    its list on first use, so importing pipekit does not import all of scikit-learn).

    >>> sorted(loadable_estimators())[:2]
    ['sklearn.discriminant_analysis.LinearDiscriminantAnalysis', 'sklearn.ensemble.ExtraTreesClassifier']
    """
    _register_listed()
    return registered(KIND)


@functools.lru_cache(maxsize=None)
def _register_listed() -> None:
    from sklearn import discriminant_analysis, ensemble, linear_model, naive_bayes, neighbors, svm, tree

    for cls in (linear_model.LogisticRegression, linear_model.SGDClassifier, linear_model.LinearRegression,
                linear_model.Ridge, linear_model.RidgeCV, linear_model.Lasso, linear_model.LassoCV,
                linear_model.ElasticNet, linear_model.ElasticNetCV, linear_model.HuberRegressor,
                linear_model.SGDRegressor, svm.LinearSVR, naive_bayes.GaussianNB, naive_bayes.BernoulliNB,
                naive_bayes.MultinomialNB, naive_bayes.ComplementNB, discriminant_analysis.LinearDiscriminantAnalysis,
                neighbors.NearestCentroid, neighbors.KNeighborsClassifier, neighbors.KNeighborsRegressor,
                tree.DecisionTreeClassifier, tree.DecisionTreeRegressor, ensemble.RandomForestClassifier,
                ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor):
        public = ".".join(p for p in cls.__module__.split(".") if not p.startswith("_"))
        register(cls, name=f"{public}.{cls.__name__}", kind=KIND)


def _restore(cls: type) -> str:
    """How a listed class's fitted state comes back: "refit" (k-NN: the stored training data, searched
    again deterministically), "forest" / "tree" (checked node tables plus attributes) or "attributes"
    (arrays and scalars)."""
    from sklearn.ensemble import BaseEnsemble
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.tree import BaseDecisionTree

    if cls in (KNeighborsClassifier, KNeighborsRegressor):
        return "refit"
    return "forest" if issubclass(cls, BaseEnsemble) else "tree" if issubclass(cls, BaseDecisionTree) else "attributes"


def _name_of(est: Any) -> str:
    cls = type(est)
    found = [name for name, c in loadable_estimators().items() if c is cls]  # the exact class: a subclass may
    if not found:                                                              # override anything
        instead = _instead(cls) or (f"Register it, pipekit.register({cls.__qualname__}, kind={KIND!r}), before saving "
                                    "and in the process that loads the file, or use one of those listed, or "
                                    "RandomForest/GBM")
        raise ExportError(f"{cls.__module__}.{cls.__qualname__} cannot be exported: a model file names its estimator "
                          "class, and loading rebuilds only the scikit-learn estimators pipekit lists "
                          f"({', '.join(loadable_estimators())}) and those registered as one. {instead}")
    return found[0]


def _instead(cls: type) -> str | None:
    """What saves a model of ``cls`` where a file of it as a scikit-learn estimator would not load: LightGBM's
    estimators keep their fitted booster in private attributes, which pipekit's GBM saves as checked model text."""
    if cls.__module__.split(".")[0] != "lightgbm" or not cls.__name__.startswith("LGBM"):
        return None
    task = "regression" if "Regressor" in cls.__name__ else "classification"
    wrapper = "TabularRegressor" if task == "regression" else "TabularClassifier"
    return (f"pipekit's GBM({task!r}, ...) trains LightGBM with the same parameters (n_estimators, num_leaves, ...) "
            f"and its files save and load the model; {wrapper}(GBM({task!r}, ...)) is it as a scikit-learn "
            "estimator")


def _checked_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` stored for ``cls`` checked as loading reads them: names against the signature (a parameter
    scikit-learn removed, left at its placeholder default, is left out with a warning), values plain JSON."""
    accepted = param_names(cls)
    # a parameter scikit-learn deprecated keeps the default "deprecated" (or "warn") until a release removes it; a
    # file written while it existed still loads where it is gone, since that default asked for nothing
    gone = [k for k in params if k not in accepted and isinstance(params[k], str) and params[k] in _PLACEHOLDERS]
    if gone:
        warn(f"{cls.__name__}: the stored parameter(s) {', '.join(f'{k:.60}={params[k]!r}' for k in gone[:10])} are not "
             f"arguments of {cls.__name__} in the installed scikit-learn, which removed them; left out (their "
             "value was scikit-learn's placeholder for the default); save the model again to write a file without "
             "them")
        params = {k: v for k, v in params.items() if k not in gone}
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise ParameterError(f"{cls.__name__}: parameters {unknown} are not arguments of {cls.__name__}; accepted: "
                             f"{accepted}")
    bad = [k for k, v in params.items() if not _plain(v)]
    if bad:
        raise ParameterError(f"{cls.__name__}: parameters {bad} are not plain JSON values (numbers, strings, "
                             "bools, null, lists and objects of them)")
    return params


def estimator_from_data(spec: Any) -> Any:
    """The listed estimator a stored ``{"sklearn_estimator": name, "params": {...}}`` names, built with its
    parameters after checking them (names against the signature, values plain JSON)."""
    if not (isinstance(spec, dict) and set(spec) == {KIND, "params"}):
        raise ParameterError(f"a stored estimator must be {{'{KIND}': name, 'params': {{...}}}}, got {spec!r:.120}")
    name, params = spec[KIND], spec["params"]
    cls = loadable_estimators().get(name) if isinstance(name, str) else None
    if cls is None:
        short = name.rsplit(".", 1)[-1] if isinstance(name, str) else "TheClass"
        raise ParameterError(f"estimator class {name!s:.120} is not loadable; a model file may name only the "
                             f"scikit-learn estimators pipekit lists ({', '.join(loadable_estimators())}) and those "
                             f"registered as one: if {name!s:.120} is your own class, define it and register it "
                             f"under that name, pipekit.register({short:.60}, kind={KIND!r}), before loading")
    if not isinstance(params, dict):
        raise ParameterError(f"{cls.__name__}: 'params' must be a JSON object, got {type(params).__name__}")
    return cls(**_bounded_threads(cls, _checked_params(cls, params)))


def _bounded_threads(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``n_jobs`` (the threads or processes scikit-learn starts at each fit and predict) checked as
    a backend's (None, -1 or a positive int) and, above the cores this process may use, lowered to them with a
    warning: the estimator does the same work with fewer workers, a file made on a larger machine still loads, and a
    file cannot make each predict start thousands of threads. A negative value below -1 means "all cores but
    ``-n_jobs - 1``" to scikit-learn (never more than the cores), and is kept.

    >>> import warnings
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     _bounded_threads(KNeighborsClassifier, {"n_jobs": 10**6})["n_jobs"] == cores(None)
    True
    """
    if "n_jobs" not in params:
        return params
    n = params["n_jobs"]
    if not N_JOBS.accepts(n) and not (isinstance(n, int) and not isinstance(n, bool) and n < -1):
        raise ParameterError(f"{cls.__name__}: n_jobs={str(n)[:40]} is not accepted; expected {N_JOBS}")
    limit = cores(None)
    if n is not None and n > limit:
        warn(f"{cls.__name__}: n_jobs={n} is more than the {limit} core(s) this process may use; using "
             f"n_jobs={limit}")
        return {**params, "n_jobs": limit}
    return params


def sklearn_learns_trees(estimator: Any) -> bool:
    """Whether a scikit-learn (or LightGBM, XGBoost, CatBoost) estimator learns only trees, which split on the values
    as they are: scikit-learn's trees, forests and tree boosting, AdaBoost or bagging of trees, a LightGBM estimator
    without ``linear_tree``, XGBoost's tree boosters, CatBoost."""
    from sklearn.ensemble import (AdaBoostClassifier, AdaBoostRegressor, BaggingClassifier, BaggingRegressor,
                                  ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,
                                  GradientBoostingRegressor, HistGradientBoostingClassifier,
                                  HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)
    from sklearn.tree import BaseDecisionTree

    from pipekit.backends.gbm import linear_tree

    if isinstance(estimator, (BaseDecisionTree, RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier,
                              ExtraTreesRegressor, GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return True
    if isinstance(estimator, (AdaBoostClassifier, AdaBoostRegressor, BaggingClassifier, BaggingRegressor)):
        inner = getattr(estimator, "estimator", None)  # None: a decision tree
        return inner is None or sklearn_learns_trees(inner)
    library = type(estimator).__module__.split(".")[0]
    if library == "lightgbm":
        return not linear_tree(estimator.get_params())  # a linear model in each leaf reads the values
    if library == "xgboost":
        return estimator.get_params().get("booster") in (None, "gbtree", "dart")
    return library == "catboost"


class SklearnModel(Backend):
    """Any sklearn estimator with ``fit(X, y)`` and ``predict`` (plus ``predict_proba`` for classification).
    ``estimator`` is the estimator (never fitted in place: each fit clones it) or its stored form
    (``{"sklearn_estimator": name, "params": {...}}``). Targets are passed as class indices into
    ``classes_`` (labels sorted), so probabilities line up with the other backends by label; an estimator's
    ``class_weight`` dict is keyed by the labels, as for scikit-learn, and passed to the estimator by class index.

    Fitted: ``model_`` (the fitted estimator), ``valid_score_`` when ``valid`` is given.

    >>> import numpy as np, polars as pl
    >>> from sklearn.linear_model import Ridge
    >>> from pipekit.backends import SklearnModel, as_data
    >>> xs = pl.DataFrame({"a": np.linspace(0, 1, 20)})
    >>> data = as_data(xs, y=3 * xs["a"].to_numpy() + 1)
    >>> m = SklearnModel(Ridge(alpha=1e-6), "regression").fit(data)
    >>> type(m.model_).__name__, round(float(m.model_.coef_[0]), 3), round(m.score(data, "r2"), 4)
    ('Ridge', 3.0, 1.0)
    """

    param_constraints = {"estimator": Is(lambda e: isinstance(e, Estimator), "an estimator with fit and predict"),
                         "task": TASK, "name": NAME}

    @property
    def learns_trees(self) -> bool:
        """Whether its estimator learns only trees (:func:`sklearn_learns_trees`)."""
        return sklearn_learns_trees(self.estimator)

    def __init__(self, estimator: Any, task: str, name: str | None = None):
        self.estimator = estimator_from_data(estimator) if isinstance(estimator, dict) else estimator
        self.task, self.name = task, name
        self.check_params()
        if task == "classification" and not isinstance(self.estimator, Classifier):
            raise ParameterError(f"{type(self.estimator).__name__} has no predict_proba; classification backends "
                                 "return probabilities (for SVC use probability=True)")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` arguments; with ``deep``, the estimator's own parameters as ``estimator__<name>`` too,
        as scikit-learn's meta-estimators list them, so a search grid reaches them
        (``{"backend__estimator__C": [0.1, 1.0]}`` for a ``TabularClassifier`` around it)."""
        out = super().get_params(deep)
        if deep and hasattr(self.estimator, "get_params"):
            out.update({f"estimator__{k}": v for k, v in self.estimator.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> SklearnModel:
        """Change parameters; ``estimator__<name>`` sets one of the estimator's on a copy of it (the estimator
        given is never changed), which becomes the ``estimator`` parameter. A name the estimator does not have
        is refused; its values are checked by the estimator's own ``fit``, as scikit-learn does. Learned state is
        dropped, as for every backend."""
        from sklearn.base import clone

        inner = {k[len("estimator__"):]: v for k, v in params.items() if k.startswith("estimator__")}
        given = params.get("estimator", self.estimator) if inner else None
        given = estimator_from_data(given) if isinstance(given, dict) else given
        if hasattr(given, "get_params"):  # else Component.set_params names what estimator__ reaches
            estimator = clone(given)
            known = estimator.get_params(deep=True)
            unknown = [k for k in inner if k not in known]
            if unknown:
                raise ParameterError(f"{type(self).__name__}: {type(estimator).__name__} has no parameter "
                                     f"{unknown[0]!r} (estimator__{unknown[0]}); its parameters are "
                                     f"{sorted(k for k in known if '__' not in k)}")
            params = {**{k: v for k, v in params.items() if not k.startswith("estimator__")},
                      "estimator": estimator.set_params(**inner)}
        return super().set_params(**params)

    def params_to_data(self) -> dict[str, Any]:
        # only the parameters set to other than their defaults, as scikit-learn's repr shows them: a file written
        # with one release loads with another whose parameters differ (one removed, such as LogisticRegression's
        # multi_class in 1.8, or one added), each left out taking the loading release's default
        defaults = inspect.signature(type(self.estimator).__init__).parameters
        params = {k: v for k, v in self.estimator.get_params(deep=False).items()
                  if k not in defaults or not _same(v, defaults[k].default)}
        bad = [k for k, v in params.items() if not _plain(v)]
        if bad:
            raise ExportError(f"{type(self.estimator).__name__} parameters {bad} are not plain values and cannot be "
                              "exported without pickling")
        name, stored = _name_of(self.estimator), to_data(params)
        try:  # a file whose parameters loading would refuse is not written
            _checked_params(type(self.estimator), stored)
        except ParameterError as e:
            raise self._unloadable(e) from None
        return {"estimator": {KIND: name, "params": stored}, "task": self.task, "name": self.name}

    def _unloadable(self, e: Exception) -> ExportError:
        """The error saving raises where the file would not load, with the reason ``e`` loading would give: for a
        class pipekit lists or one registered, it is this estimator's configuration that fails."""
        cls = type(self.estimator)
        instead = _instead(cls)
        if instead is None and cls in loadable_estimators().values():
            est = " ".join(repr(self.estimator).split())  # scikit-learn's repr on one line
            if len(est) > 120:  # cut after a whole parameter
                est = est[:est.rfind(", ", 0, 116)] + ", ...)"
            if self.task == "classification" and not hasattr(self.estimator, "predict_proba"):
                hint = _PROBABILITIES.get(cls.__name__)
                instead = (f"{cls.__name__} is an estimator pipekit saves, but this one, {est}, has no predict_proba, "
                           "which pipekit's classifiers need (they predict class probabilities)"
                           + (f"; {cls.__name__}({hint}) has one" if hint else ""))
            else:
                instead = (f"{cls.__name__} is an estimator pipekit saves (listed or registered); it is this one's "
                           f"configuration, {est}, that a file cannot restore")
        elif instead is None:
            instead = (f"save an estimator pipekit lists ({', '.join(loadable_estimators())}), or use "
                       "RandomForest/GBM")
        return ExportError(f"{cls.__name__} cannot be exported: a file of it would not load ({e}). {instead}")

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        from sklearn.base import clone

        weights = {} if d.weight is None else {"sample_weight": d.weight}
        estimator = clone(self.estimator)
        if self.task == "classification":  # the estimator sees class indices: its class_weight keys must too
            estimator.set_params(**self._class_weights_by_index(d))
        self.model_ = estimator.fit(self.matrix(d, order="C"), self.encode_y(d.y), **weights)

    def _class_weights_by_index(self, d: TabularData) -> dict[str, Any]:
        """The estimator's ``class_weight`` dicts (its own, or a nested estimator's: ``clf__class_weight``) keyed
        by the class indices the estimator is fitted on instead of the labels users key them by, as
        ``set_params`` arguments for the clone that is fitted (the estimator given is never changed).

        A key is a label or its text (a file keeps keys as text), read as ``RandomForest`` reads its own
        ``class_weight``; a label that is no class of the target is refused, naming the classes. A class of the
        target absent from these rows (a fold that misses it) has no index here and its weight is left out;
        ``"balanced"`` and ``None`` are passed on as they are."""
        from pipekit.backends.data import target_classes
        from pipekit.backends.forest import class_weight_by_code

        given = {k: v for k, v in self.estimator.get_params(deep=True).items()
                 if (k == "class_weight" or k.endswith("__class_weight")) and isinstance(v, dict)}
        if not given:
            return {}
        classes = [c.item() if isinstance(c, np.generic) else c for c in self.classes_]
        if d.processor is not None:  # the target's other classes (a fold may miss one): known, but not fitted here
            with contextlib.suppress(AttributeError, TypeError):
                classes += [c for c in target_classes(d) if c not in classes]
        out = {}
        for key, weights in given.items():
            try:
                by_code = class_weight_by_code(type(self.estimator).__name__, weights, classes)
            except ParameterError:
                # keyed by class index (0 .. k-1, the codes the estimator is fitted on), as before labels were read:
                # taken as such, with the labels to key it by
                if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and 0 <= k < len(classes)
                           for k in weights):
                    raise
                warn(f"{type(self.estimator).__name__}: class_weight {dict(weights)} names class positions, not "
                     f"labels; read as positions in the classes {classes[:20]}. Key it by the labels "
                     f"({ {classes[int(k)]: w for k, w in weights.items()} }), as scikit-learn reads it")
                by_code = {int(k): float(w) for k, w in weights.items()}
            out[key] = {i: w for i, w in by_code.items() if i < len(self.classes_)}
        return out

    def takes_weights(self) -> bool:
        from sklearn.utils.validation import has_fit_parameter

        return has_fit_parameter(self.estimator, "sample_weight")

    def _predict(self, d: TabularData) -> np.ndarray:
        X = self.matrix(d, order="C")
        if self.task == "classification":
            # a fold may miss a class: place the columns the estimator knows at their class index
            out = np.zeros((len(d), len(self.classes_)))
            proba = np.asarray(self.model_.predict_proba(X))
            out[:, np.asarray(self.model_.classes_, dtype=np.int64)] = proba
            if proba.dtype != np.float64:
                # an estimator fitted on the float32 matrix computes in float32 (LogisticRegression): its rows miss 1
                # by ~1e-7, which log_loss warns about; summed again in float64 they add up to 1
                total = out.sum(axis=1, keepdims=True)
                np.divide(out, total, out=out, where=total > 0)
            return out
        return np.asarray(self.model_.predict(X), dtype=np.float64).reshape(len(d))

    def feature_importance(self) -> pl.DataFrame:
        """Impurity importance for tree models, mean absolute coefficient for linear ones."""
        self.check_is_fitted()
        with contextlib.suppress(AttributeError):  # not a tree model
            return feature_frame(self.feature_names_, self.model_.feature_importances_)
        coef = vars(self.model_).get("coef_")
        if coef is not None:
            return feature_frame(self.feature_names_, np.abs(np.atleast_2d(coef)).mean(0))
        return super().feature_importance()

    # -- files: fitted attributes as plain data --------------------------------------------------------
    def model_to_data(self) -> dict[str, Any]:
        est, name = self.model_, _name_of(self.model_)
        how = _restore(type(est))
        if how == "refit":
            y = np.asarray(est._y)
            return {"fit_X": np.asarray(est._fit_X), "fit_y": np.asarray(est.classes_)[y] if self.task ==
                    "classification" else y}
        attrs: dict[str, Any] = {}
        for k, v in vars(est).items():
            if not k.endswith("_") or k.startswith("_") or (how in ("forest", "tree") and k in _TREE_OBJECTS):
                continue
            if not _plain_value(v):
                raise ExportError(f"{name} fitted attribute {k!r} ({type(v).__name__}) cannot be exported without "
                                  "pickling; use RandomForest/GBM or a simpler estimator")
            attrs[k] = to_data(v, None) if isinstance(v, np.generic) else v
        out: dict[str, Any] = {"attributes": attrs}
        if how != "attributes":
            out["trees"] = trees_to_data(est.estimators_ if how == "forest" else [est])
            return out
        try:  # rebuilt from its public attributes as loading rebuilds it: an estimator keeping its fitted state in
            # private ones (LightGBM's) is refused now, not at load
            self.model_from_data({**out, "attributes": {k: v.item() if isinstance(v, np.generic) else v  # as read
                                                        for k, v in attrs.items()}})
        except ExportError as e:
            raise self._unloadable(e) from None
        return out

    def model_from_data(self, data: Any) -> Any:
        from sklearn.base import clone

        cls = type(self.estimator)
        what, how = cls.__name__, _restore(cls)
        known = {"refit": ("fit_X", "fit_y"), "attributes": ("attributes",)}.get(how, ("attributes", "trees"))
        if not isinstance(data, dict) or set(data) != set(known):
            held = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ExportError(f"{what}: the stored model holds {held!r:.80}, but a {what} state holds exactly "
                              f"{list(known)}")
        est = clone(self.estimator)
        n_features = len(self.feature_names_)
        if how == "refit":
            X, y = data["fit_X"], data["fit_y"]
            if not (isinstance(X, np.ndarray) and isinstance(y, np.ndarray) and X.ndim == 2 and y.ndim == 1
                    and len(X) == len(y) and X.dtype.kind in "biuf" and X.shape[1] == n_features):
                raise ExportError(f"{what}: the stored training data must be a numeric 2-D fit_X with one column per "
                                  f"feature ({n_features}) and a 1-D fit_y of the same length")
            est.fit(X, y)
            if self.task == "classification":
                self._check_classes(f"{what} (refitted on fit_y)", np.asarray(est.classes_))
            return self._probe(est)
        attrs = data["attributes"]
        if not isinstance(attrs, dict):
            raise ExportError(f"{what}: 'attributes' must be a JSON object of fitted attributes")
        for k, v in attrs.items():
            if (not isinstance(k, str) or not k.isidentifier() or not k.endswith("_") or k.startswith("_")
                    or hasattr(cls, k)):
                raise ExportError(f"{what}: {k!r} is not a fitted attribute pipekit restores (a public name ending "
                                  "in '_' that is not a method or property of the class)")
            if not _plain_value(v) or isinstance(v, np.generic):
                raise ExportError(f"{what}: fitted attribute {k!r} must be a number, string, bool, null or an array of "
                                  f"numbers, booleans or strings, got {type(v).__name__}")
        n_in = attrs.get("n_features_in_", n_features)
        if n_in != n_features:
            raise ExportError(f"{what} was fitted on {n_in!r} inputs but the file names {n_features} features")
        n_classes = self._check_classes(what, attrs.get("classes_"))
        _check_fitted_shapes(what, attrs, self.task, n_features, n_classes)
        if how in ("forest", "tree"):
            classes = attrs.get("classes_")
            n_classes = len(classes) if isinstance(classes, np.ndarray) else None
            if self.task == "classification" and n_classes is None:
                raise ExportError(f"{what}: a classifier's state needs its classes_")
            if how == "forest":
                forest_from_data(est, data["trees"], self.task, n_features, n_classes)
            else:
                structures = tree_structures_from_data(data["trees"], self.task, n_features, n_classes)
                if len(structures) != 1:
                    raise ExportError(f"{what}: a single tree's state holds {len(structures)} trees")
                est.tree_ = structures[0]
        for k, v in attrs.items():
            setattr(est, k, v)
        return self._probe(est)

    def _check_classes(self, what: str, classes: Any) -> int | None:
        """The number of classes the stored estimator was fitted on: its ``classes_`` must be distinct, sorted
        indices into the model's recorded ``classes_`` (the targets it is fitted on; a fold may miss a class)."""
        if self.task != "classification":
            return None
        n = len(self.classes_)
        if not (isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) >= 1
                and classes.dtype.kind in "iu" and (np.diff(classes) > 0).all() and classes[0] >= 0
                and classes[-1] < n):
            raise ExportError(f"{what}: the fitted attribute 'classes_' must hold sorted, distinct class indices below "
                              f"{n} (the model's classes_ {np.asarray(self.classes_).tolist()[:5]}), got "
                              f"{str(classes)[:60]}")
        return len(classes)

    def _probe(self, est: Any) -> Any:
        """``est`` after checking it predicts one row of zeros as the model's ``_predict`` reads it (class
        probabilities, one per fitted class, or one value), with finite numbers: a state the checks above do not
        cover (an attribute only some estimators keep) fails here, at load, and not at the user's predict."""
        what, X = type(est).__name__, np.zeros((1, len(self.feature_names_)))
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(est.predict_proba(X) if self.task == "classification" else est.predict(X))
        except Exception as e:  # noqa: BLE001  (scikit-learn raises many types for inconsistent fitted attributes)
            raise ExportError(f"{what}: the stored fitted attributes do not predict ({type(e).__name__}: "
                              f"{str(e)[:160]})") from None
        want = (1, len(est.classes_)) if self.task == "classification" else None
        if (out.shape != want if want else out.size != 1) or out.dtype.kind not in "iuf" or not np.isfinite(out).all():
            raise ExportError(f"{what}: the stored fitted attributes predict {out.tolist()!s:.80} for a row of zeros"
                              f"{'' if want is None else f' (expected {want[1]} class probabilities)'}; they are not "
                              "those of a fitted estimator")
        return est


def _fitted_shapes(task: str, n_features: int, n_classes: int | None) -> dict[str, list[tuple[int, ...]]]:
    """The shapes the fitted arrays prediction reads may have in the listed estimators, for ``n_features`` inputs
    and ``n_classes`` classes (None: regression). Linear classifiers keep one row of coefficients for two
    classes; regressors keep a vector (an intercept may be a single number)."""
    F = n_features
    if n_classes is None:
        return {"coef_": [(F,), (1, F)], "intercept_": [(), (1,)]}
    K = n_classes
    rows = 1 if K == 2 else K
    return {"coef_": [(rows, F)], "intercept_": [(rows,)], "theta_": [(K, F)], "var_": [(K, F)],
            "means_": [(K, F)], "centroids_": [(K, F)], "deviations_": [(K, F)], "feature_log_prob_": [(K, F)],
            "feature_count_": [(K, F)], "class_prior_": [(K,)], "class_count_": [(K,)], "class_log_prior_": [(K,)],
            "priors_": [(K,)], "xbar_": [(F,)], "feature_all_": [(F,)], "within_class_std_dev_": [(F,)],
            "n_classes_": [()]}


def _check_fitted_shapes(what: str, attrs: dict[str, Any], task: str, n_features: int, n_classes: int | None) -> None:
    """Refuse a stored fitted array that prediction reads (see :func:`_fitted_shapes`) of another shape than the
    features and classes give it, or holding NaN (infinity is refused too, but in the log-probabilities, where
    a class or feature never seen is minus infinity); ``n_classes_`` must be the number of classes."""
    for k, shapes in _fitted_shapes(task, n_features, n_classes).items():
        if k not in attrs:
            continue
        v = attrs[k]
        if k == "n_classes_":
            if v != n_classes or isinstance(v, (bool, np.ndarray)):
                raise ExportError(f"{what}: the fitted attribute 'n_classes_' is {str(v)[:20]}, but classes_ holds "
                                  f"{n_classes} classes")
            continue
        a = np.asarray(v)
        if isinstance(v, str) or a.dtype.kind not in "biuf" or a.shape not in shapes:
            said = " or ".join(str(s) for s in shapes)
            raise ExportError(f"{what}: the fitted attribute {k!r} has shape {a.shape} of {a.dtype}; with "
                              f"{n_features} features{'' if n_classes is None else f' and {n_classes} classes'} it "
                              f"must be numbers of shape {said}")
        bad = np.isnan(a) | (a == np.inf) if "log" in k else ~np.isfinite(a)
        if a.dtype.kind == "f" and bad.any():
            raise ExportError(f"{what}: the fitted attribute {k!r} holds NaN or infinite values")


def _plain_value(v: Any) -> bool:
    """What a fitted attribute may be in a file: a number, text, bool, None, or an array of those."""
    return v is None or isinstance(v, (bool, int, float, str, np.generic)) or (
        isinstance(v, np.ndarray) and v.dtype.kind in "biufcSU" and v.dtype.fields is None)


def _plain(v: Any) -> bool:
    """Numbers, text, bools, None, and lists / text-keyed objects of them: what a parameter may be in a file."""
    if v is None or isinstance(v, (bool, int, float, str, np.bool_, np.integer, np.floating)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False
