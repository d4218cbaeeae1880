"""Random forest backend on scikit-learn: OOB score, per-tree predictions, tree-interpreter contributions,
and an export that stores the trees as arrays (no pickle).

Example:
    >>> import polars as pl, numpy as np
    >>> from pipekit.backends import RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 3, 200)})
    >>> data = as_data(xs, y=(xs["a"] > 0).to_numpy())
    >>> rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(data)
    >>> mean, std = rf.tree_predictions(data)
    >>> c = rf.contributions(data)
    >>> bool(np.allclose(c.bias + c.values.sum(1), rf.predict(data)))
    True
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import polars as pl

from pipekit.backends.base import (NAME, N_JOBS, POSITIVE_INT, SEED, TASK, TIME_LIMIT, Backend, Contributions, FoldStop,
                                   array_rows, cores, feature_frame, plain, threads, written)
from pipekit.backends.data import TabularData
from pipekit.core.component import param_names
from pipekit.core.errors import ExportError, ParameterError
from pipekit.core.validate import Interval, Is, Options
from pipekit.metrics import get_metric


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


#: scikit-learn's split criteria of its forests, by task (None: its default, gini / squared_error)
CRITERIA = {"classification": ("gini", "entropy", "log_loss"),
            "regression": ("squared_error", "absolute_error", "friedman_mse", "poisson")}
#: the seconds of trees a bag's fold forest grows between two looks at the bag's stop signal (RandomForest._grow):
#: how long a fold model fitting in a thread may run on after Ctrl-C. Each step restarts scikit-learn's fit, which
#: reads the rows again: 1 ms on 10,000 rows of 14 columns (0.1% of a step), 50 ms on 1,000,000 rows of 20 (5% where
#: max_samples makes each tree a few milliseconds; nothing where each takes seconds)
STOP_EVERY = 1.0
#: scikit-learn's names of a forest's arguments that are pipekit's under another name
_SKLEARN_NAMES = {"random_state": "seed"}


def _class_weight(v: Any) -> bool:
    return v is None or v in ("balanced", "balanced_subsample") or (
        isinstance(v, dict) and all(isinstance(w, (int, float, np.number)) and not isinstance(w, bool)
                                    and np.isfinite(w) and w >= 0 for w in v.values()))


def _from_sklearn(cls: type, given: dict[str, Any], sklearn: dict[str, Any]) -> dict[str, Any]:
    """The arguments of forest ``cls`` for scikit-learn's names in ``sklearn`` (``random_state`` is ``seed``), which
    must not contradict the arguments ``given`` with them; any other name is a ParameterError saying what to write."""
    out: dict[str, Any] = {}
    for k, v in sklearn.items():
        arg = _SKLEARN_NAMES.get(k)
        if arg is None:
            what = "ExtraTrees" if issubclass(cls, ExtraTrees) else "RandomForest"
            raise ParameterError(
                f"{cls.__name__} has no parameter {k!r}; its parameters are {param_names(cls)} (and random_state, "
                f"scikit-learn's name for seed); for any other scikit-learn setting wrap scikit-learn's forest: "
                f"SklearnModel({what}Classifier({k}=...), 'classification') (or {what}Regressor, 'regression'), "
                "from pipekit.backends")
        if arg in given and given[arg] != v:
            raise ParameterError(f"{cls.__name__}: {arg}={given[arg]!r} and {k}={v!r} (scikit-learn's name for {arg}) "
                                 "set the same thing; give one")
        out[arg] = v
    return out


def class_weight_by_code(who: str, class_weight: Any, classes: Any) -> Any:
    """A ``class_weight`` dict keyed by labels (as users write it) as one keyed by the codes of ``classes`` (their
    positions), which a scikit-learn estimator fitted on codes takes; any other value (``"balanced"``, None) as it
    is. A key is a label or its text (a file keeps keys as text: ``{"0": 1.0}`` is label 0's weight); a key that is
    no label is refused, naming ``who`` and the labels."""
    if not isinstance(class_weight, dict):
        return class_weight
    labels = [c.item() if isinstance(c, np.generic) else c for c in classes]
    by_text = {str(c): i for i, c in enumerate(labels)}
    codes = {k: labels.index(k) if k in labels else by_text.get(str(k)) for k in class_weight}
    unknown = [k for k, i in codes.items() if i is None]
    if unknown:
        raise ParameterError(f"{who}: class_weight names {unknown[:5]}, which are not classes of the training labels "
                             f"{labels[:20]}; key it by those labels")
    return {i: float(class_weight[k]) for k, i in codes.items()}


def drawn_rows(model: Any, k: int = 16) -> Iterator[list[tuple[Any, np.ndarray]]]:
    """Each tree of a fitted scikit-learn forest or bagging ensemble with the training rows its sample drew
    (``estimators_samples_``: as it drew them, sample weights and ``max_samples`` included), ``k`` trees at a time.
    A forest's are read ``k`` trees at a time (a forest of 100 trees on 1,000,000 rows draws 400 MB of them); any
    other ensemble's (``BaggingRegressor``, which draws them from seeds of its own) at once."""
    from sklearn.ensemble._forest import BaseForest

    trees = model.estimators_
    if isinstance(model, BaseForest):
        part = copy.copy(model)
        for i in range(0, len(trees), k):
            part.estimators_ = trees[i:i + k]
            yield list(zip(part.estimators_, part.estimators_samples_))
    else:
        samples = model.estimators_samples_
        for i in range(0, len(trees), k):
            yield list(zip(trees[i:i + k], samples[i:i + k]))


def trees_leaving_out(model: Any, n: int) -> np.ndarray:
    """How many trees of a fitted scikit-learn forest or bagging ensemble left each of its ``n`` training rows out
    of their sample (:func:`drawn_rows`): 0 where every tree drew the row, which then has no out-of-bag prediction
    (scikit-learn's ``oob_prediction_`` / ``oob_decision_function_`` hold 0 there, a prediction no tree made).

    >>> from sklearn.ensemble import RandomForestRegressor
    >>> X = np.arange(40.0).reshape(20, 2)
    >>> m = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0])
    >>> trees_leaving_out(m, 20).shape, int(trees_leaving_out(m, 20).max()) <= 3
    ((20,), True)
    """
    count = np.zeros(n, np.int64)
    for block in drawn_rows(model):
        for _, drawn in block:
            count += np.bincount(drawn, minlength=n) == 0
    return count


class RandomForest(Backend):
    """Random forest for ``task`` "classification" or "regression".

    The defaults are the book's ``rf()``, not scikit-learn's: ``min_samples_leaf=5`` and ``max_features=0.5``
    (scikit-learn's are 1, and 1.0 for regression or ``"sqrt"`` for classification), with ``n_estimators=100``.

    ``max_samples``: rows per tree (int, capped at the training size, or a fraction; None = all), the
    book's trick for big tables. ``max_features``: fraction / int / "sqrt" of features per split.
    ``max_depth``: the deepest a tree grows (None: until its leaves hold ``min_samples_leaf`` rows).
    scikit-learn's forest arguments of the same meaning are taken and passed to its forest as they are:
    ``criterion`` (None: scikit-learn's default, ``"gini"`` / ``"squared_error"``), ``min_samples_split``,
    ``max_leaf_nodes``, ``min_impurity_decrease``, ``class_weight`` (classification: ``"balanced"``,
    ``"balanced_subsample"`` or ``{label: weight}`` by the labels of ``classes_``) and ``bootstrap`` (each tree
    on a bootstrap sample of the rows; False grows every tree on every row, which leaves no out-of-bag rows, so it
    takes ``oob_score=False`` and no ``max_samples``). ``random_state`` is ``seed``. Any other name is refused,
    naming :class:`~pipekit.backends.SklearnModel` around scikit-learn's forest for the rest of its settings.
    Fitted: ``model_`` (the sklearn forest), ``oob_score_`` (default metric, accuracy / rmse, on OOB
    predictions, leaving out the rows every tree drew), ``oob_predictions_`` (NaN for those rows), ``valid_score_``
    when ``valid`` is given. ``time_limit``: seconds of fitting; the trees are grown a few at a time and growing
    stops when the next few would end past it (the forest keeps the trees grown: ``stopped_on_time_``). Grown in
    full, the trees are those one fit would grow.

    scikit-learn's names read the fitted forest too, so code written for ``RandomForestRegressor`` runs:
    ``estimators_`` (the trees: ``np.stack([t.predict(tab.valid.xs.to_numpy()) for t in rf.estimators_])`` is the
    per-tree spread the book reads; :meth:`tree_predictions` gives its mean and standard deviation),
    ``feature_importances_`` (an array in input column order; :meth:`feature_importance` is the sorted frame),
    ``oob_prediction_`` (regression) and ``oob_decision_function_`` (classification), the out-of-bag
    predictions of the training rows (from the fit; a loaded model has none), NaN for a row that every tree drew
    (a forest of few trees has some; with sample or class weights, scikit-learn draws the heavily weighted rows
    into most trees, so more of them have none, and the scores leave them out). Unlike scikit-learn's ``oob_score_``, which is R² for a regressor, pipekit's
    ``oob_score_`` is the model's metric (rmse for regression, accuracy for classification); scikit-learn's R² (or
    accuracy) of the rows with an out-of-bag prediction is ``rf.model_.oob_score_``, and ``rf.model_`` holds
    ``oob_prediction_`` / ``oob_decision_function_`` too.

    Example:
        >>> import numpy as np, polars as pl
        >>> from pipekit.backends import as_data
        >>> xs = pl.DataFrame({"a": np.linspace(0, 1, 300), "b": np.zeros(300)})
        >>> rf = RandomForest("regression", n_estimators=10, n_jobs=1).fit(as_data(xs, y=xs["a"].to_numpy()))
        >>> len(rf.estimators_), rf.feature_importances_.round(2).tolist(), rf.oob_prediction_.shape
        (10, [1.0, 0.0], (300,))
        >>> bool(rf.oob_score_ < 0.1), bool(rf.model_.oob_score_ > 0.9)  # rmse; scikit-learn's R²
        (True, True)
    """

    imports = ("sklearn.ensemble",)
    param_constraints = {
        "task": TASK, "n_estimators": POSITIVE_INT, "min_samples_leaf": POSITIVE_INT,
        "max_samples": Is(lambda v: v is None or (_is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
                          "None, an int >= 1 or a float in (0, 1]"),
        "max_features": Is(lambda v: v is None or v in ("sqrt", "log2") or (_is_int(v) and v >= 1)
                           or (isinstance(v, float) and 0 < v <= 1), "None, 'sqrt', 'log2', a float in (0, 1] or an int >= 1"),
        "oob_score": Options(True, False), "n_jobs": N_JOBS, "seed": Interval(0, 2**32 - 1, integer=True, none_ok=True),
        "time_limit": TIME_LIMIT, "name": NAME, "max_depth": Interval(1, None, integer=True, none_ok=True),
        "criterion": Options(None, *CRITERIA["classification"], *CRITERIA["regression"]),
        "min_samples_split": Is(lambda v: (_is_int(v) and v >= 2) or (isinstance(v, float) and 0 < v <= 1),
                                "an int >= 2 or a float in (0, 1]"),
        "max_leaf_nodes": Interval(2, None, integer=True, none_ok=True),
        "min_impurity_decrease": Interval(0, None), "bootstrap": Options(True, False),
        "class_weight": Is(_class_weight, "None, 'balanced', 'balanced_subsample' or a dict {label: weight >= 0}")}
    unsaved = ("oob_predictions_",)
    #: scikit-learn's settings a forest's record gained, at their defaults (a forest holding them writes the record
    #: it wrote without them, and a record without them reads as them)
    record_defaults = {
        "params.criterion": None, "params.min_samples_split": 2, "params.max_leaf_nodes": None,
        "params.min_impurity_decrease": 0.0, "params.bootstrap": True, "params.class_weight": None}
    #: scikit-learn's trees split on float32 values whatever they are given: a float64 matrix would only be copied
    matrix_dtype = np.float32
    #: on the fold models a ``BaggedModel`` fits in threads: its stop signal (``pipekit.backends.base.FoldStop``),
    #: checked between the few trees grown at a time (:meth:`_grow`), so a bag left by Ctrl-C has its fold models
    #: end within about ``STOP_EVERY`` seconds
    _fold_stop: FoldStop | None = None

    @property
    def learns_trees(self) -> bool:
        """True: a forest's trees split on the values as they are."""
        return True

    def __init__(self, task: str, n_estimators: int = 100, max_samples: int | float | None = None,
                 max_features: float | int | str | None = 0.5, min_samples_leaf: int = 5, oob_score: bool = True,
                 n_jobs: int | None = -1, seed: int | None = SEED, time_limit: float | None = None, name: str | None = None,
                 max_depth: int | None = None, criterion: str | None = None, min_samples_split: int | float = 2,
                 max_leaf_nodes: int | None = None, min_impurity_decrease: float = 0.0, bootstrap: bool | None = True,
                 class_weight: str | dict | None = None, **sklearn: Any):
        self.task, self.n_estimators, self.max_samples, self.max_features = task, n_estimators, max_samples, max_features
        given = written(seed=seed)  # a seed the caller gave, 0 too, which random_state must not contradict
        self.min_samples_leaf, self.oob_score, self.n_jobs, self.name = min_samples_leaf, oob_score, n_jobs, name
        self.seed = plain(seed)
        self.time_limit, self.max_depth = time_limit, max_depth
        self.criterion, self.min_samples_split, self.max_leaf_nodes = criterion, min_samples_split, max_leaf_nodes
        self.min_impurity_decrease, self.bootstrap, self.class_weight = min_impurity_decrease, bootstrap, class_weight
        if sklearn:  # scikit-learn's names, as its forests take them
            for k, v in _from_sklearn(type(self), given, sklearn).items():
                setattr(self, k, v)
        self.check_params()

    def check_params(self) -> None:
        """As every component's, and what scikit-learn's forest would refuse only when fitted: a ``criterion`` of
        the other task, ``class_weight`` for regression, ``bootstrap=False`` with ``oob_score`` or ``max_samples``."""
        super().check_params()
        name = type(self).__name__
        if self.criterion is not None and self.criterion not in CRITERIA[self.task]:
            raise ParameterError(f"{name}: criterion={self.criterion!r} is not a {self.task} criterion; give one of "
                                 f"{', '.join(map(repr, CRITERIA[self.task]))} (or None, scikit-learn's default)")
        if self.class_weight is not None and self.task != "classification":
            raise ParameterError(f"{name}: class_weight={self.class_weight!r} weighs classes, and the task is "
                                 "'regression'; weigh rows with fit(..., sample_weight=w), or leave class_weight=None")
        if self._bootstrap() is False and (self.oob_score or self.max_samples is not None):
            given = "oob_score=True" if self.oob_score else f"max_samples={self.max_samples!r}"
            raise ParameterError(f"{name}: bootstrap=False grows every tree on every row, so {given} has no "
                                 "sample to draw or score out of bag; give oob_score=False and max_samples=None with "
                                 "it, or leave bootstrap on")

    def _bootstrap(self) -> bool | None:
        """Whether the trees grow on bootstrap samples (what ``bootstrap`` gives)."""
        return self.bootstrap

    def set_params(self, **params: Any) -> Any:
        """As every component's; scikit-learn's ``random_state`` is taken as ``seed``."""
        own = param_names(type(self))
        sklearn = {k: v for k, v in params.items() if k.partition("__")[0] not in own}
        if sklearn:
            given = {k: v for k, v in params.items() if k not in sklearn}
            params = {**given, **_from_sklearn(type(self), given, sklearn)}
        return super().set_params(**params)

    def _sklearn_class_weight(self) -> Any:
        """``class_weight`` as scikit-learn's forest takes it for the class codes the forest is fitted on: a dict of
        labels as one of codes (a label not among ``classes_`` is refused, naming them)."""
        return class_weight_by_code(type(self).__name__, self.class_weight, self.classes_)

    def params_to_data(self) -> dict[str, Any]:
        """The record's parameters, a ``class_weight`` dict keyed by its labels' text (a file's keys are text; fitting
        reads ``"0"`` as label 0)."""
        out = super().params_to_data()
        if isinstance(out.get("class_weight"), dict):
            out["class_weight"] = {str(k.item() if isinstance(k, np.generic) else k): v
                                   for k, v in out["class_weight"].items()}
        return out

    def _make_sklearn(self, n_rows: int):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        max_samples = self.max_samples
        if isinstance(max_samples, (int, np.integer)):
            max_samples = min(int(max_samples), n_rows)
            max_samples = None if max_samples == n_rows else max_samples
        cls = RandomForestClassifier if self.task == "classification" else RandomForestRegressor
        criterion = {"criterion": self.criterion} if self.criterion is not None else {}
        # the classes are known from fitting on (a forest read from a file predicts with its trees' values)
        weights = {"class_weight": self._sklearn_class_weight()} if "classes_" in vars(self) else {}
        return cls(n_estimators=self.n_estimators, max_samples=max_samples, max_features=self.max_features,
                   min_samples_leaf=self.min_samples_leaf, oob_score=self.oob_score,
                   n_jobs=self.n_jobs if self.n_jobs in (None, -1) else threads(self.n_jobs),
                   random_state=self.seed, max_depth=vars(self).get("max_depth"),
                   min_samples_split=self.min_samples_split, max_leaf_nodes=self.max_leaf_nodes,
                   min_impurity_decrease=self.min_impurity_decrease, bootstrap=bool(self._bootstrap()),
                   **criterion, **weights)

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        end = self._deadline()
        X = self.matrix(d, order="C")  # float32 C-contiguous: exactly what sklearn trees consume, no 2nd copy
        y = self.encode_y(d.y)
        # the out-of-bag predictions are made here, not by scikit-learn's forest: it gives a row that every tree drew
        # the prediction 0 (class 0, or the value 0) and warns, where pipekit's is NaN and left out of the score
        forest = self._make_sklearn(len(d)).set_params(oob_score=False)
        # the forest's oob_score is then the one given, as a forest read from a file has it
        self.model_ = self._grow(forest, X, y, end, d.weight).set_params(oob_score=self.oob_score)
        self.oob_score_ = self.oob_predictions_ = None
        if self.oob_score:
            oob = self._out_of_bag(X)
            keep = ~np.isnan(oob).any(1) if oob.ndim == 2 else ~np.isnan(oob)
            self.oob_predictions_ = oob
            self.oob_score_ = get_metric(None, self.task).score(y[keep], oob[keep]) if keep.any() else float("nan")
            # scikit-learn's names, as its forest fitted with oob_score=True holds them: its score is accuracy / R²
            from sklearn.metrics import accuracy_score, r2_score

            if self.task == "classification":
                self.model_.oob_decision_function_ = oob
                sk = accuracy_score(y[keep], oob[keep].argmax(1)) if keep.any() else float("nan")
            else:
                self.model_.oob_prediction_ = oob
                sk = r2_score(y[keep], oob[keep]) if keep.sum() > 1 else float("nan")
            self.model_.oob_score_ = float(sk)

    def _out_of_bag(self, X: np.ndarray) -> np.ndarray:
        """Each training row's out-of-bag prediction (class probabilities in ``classes_`` order, or the value): the
        mean of the trees whose bootstrap sample left it out, NaN for a row every tree drew. The numbers are
        scikit-learn's where it has one (each tree's prediction of the rows it left out, added up in float64 in the
        trees' order and divided by their count); a few trees at a time predict in threads, and are added up in order.
        """
        forest, n, clf = self.model_, len(X), self.task == "classification"
        total = np.zeros((n, len(self.classes_)) if clf else n)
        count = np.zeros(n, np.int64)

        def left_out(tree: Any, drawn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rows = np.flatnonzero(np.bincount(drawn, minlength=n) == 0)
            return rows, (tree.predict_proba if clf else tree.predict)(X[rows], check_input=False)

        k = max(1, min(threads(self.n_jobs), len(forest.estimators_)))
        with ThreadPoolExecutor(k) as pool:
            for block in drawn_rows(forest, k):
                for rows, pred in (pool.map if k > 1 else map)(left_out, *zip(*block)):
                    total[rows] += pred
                    count[rows] += 1
        seen = count > 0
        total[~seen] = np.nan
        total[seen] /= count[seen, None] if clf else count[seen]
        return total

    def takes_weights(self) -> bool:
        return True

    def _grow(self, forest: Any, X: np.ndarray, y: np.ndarray, end: float | None, w: np.ndarray | None = None) -> Any:
        """Fit ``forest``: at once without a time limit or a bag's stop signal; with either, a few trees at a time
        (warm start, which draws each tree's seed as one fit would, so the trees grown in full are those one fit
        grows), two per thread first (they tell the rate): with a limit, a tenth of the trees at a time while the
        next are expected to end in time; with a stop signal, checked before each, at most ``STOP_EVERY`` seconds of
        trees at a time."""
        stop = self._fold_stop
        if end is None and stop is None:
            return forest.fit(X, y, sample_weight=w)
        step, grown, start = max(1, -(-self.n_estimators // 10)), 0, time.perf_counter()
        first = min(step, 2 * cores(self.n_jobs))
        forest.set_params(warm_start=True)
        while grown < self.n_estimators:
            if stop is not None:
                stop.check()
            fit = first  # the first trees tell the rate, whatever the limit
            if grown:
                now = time.perf_counter()
                rate = (now - start) / grown  # seconds a tree
                fit = self.n_estimators if end is None else min(step, int((end - now) / rate))
                if fit < 1:
                    self.stopped_on_time_ = True
                    break
                if stop is not None:
                    fit = min(fit, max(first, int(STOP_EVERY / rate)))
            grown = min(self.n_estimators, grown + fit)
            forest.set_params(n_estimators=grown).fit(X, y, sample_weight=w)
        return forest.set_params(warm_start=False)

    def _predict(self, d: TabularData) -> np.ndarray:
        """The trees' mean, summed in the trees' order for every row, so the same forest gives the same bits on
        every run: scikit-learn's threads add their trees up in the order they finish, which changes the last
        bits of a probability from run to run. The threads here each take a share of the rows instead."""
        X = self.matrix(d, order="C")
        forest = self.model_
        method = forest.predict_proba if self.task == "classification" else forest.predict
        n = min(cores(self.n_jobs), max(1, len(X) // 512))
        kept = forest.n_jobs
        forest.n_jobs = 1
        try:
            if n <= 1:
                return method(X)
            with ThreadPoolExecutor(n) as pool:  # tree prediction releases the GIL
                return np.concatenate(list(pool.map(lambda rows: method(X[rows]), np.array_split(np.arange(len(X)), n))))
        finally:
            forest.n_jobs = kept

    def tree_predictions(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the trees of each row's prediction (the book's
        "how confident is the forest about this row" analysis). Shapes (n,) or (n, n_classes)."""
        X = self.matrix(self._prepare(data), order="C")
        method = "predict_proba" if self.task == "classification" else "predict"
        preds = np.stack([getattr(t, method)(X, check_input=False) for t in self.model_.estimators_])
        return preds.mean(0), preds.std(0)

    # -- scikit-learn's names of what the fitted forest holds ---------------------------------------------
    @property
    def estimators_(self) -> list:
        """The fitted scikit-learn trees, as on scikit-learn's forest."""
        self.check_is_fitted()
        return self.model_.estimators_

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean decrease in impurity per input column, in the order of ``feature_names_`` (sums to 1), as on
        scikit-learn's forest."""
        self.check_is_fitted()
        return np.asarray(self.model_.feature_importances_, dtype=np.float64)

    @property
    def oob_prediction_(self) -> np.ndarray:
        """Out-of-bag prediction of each training row (regression; NaN for a row no tree left out)."""
        return self._oob("regression", "oob_prediction_", "oob_decision_function_")

    @property
    def oob_decision_function_(self) -> np.ndarray:
        """Out-of-bag class probabilities of each training row, in ``classes_`` order (classification; NaN for a row
        no tree left out)."""
        return self._oob("classification", "oob_decision_function_", "oob_prediction_")

    def _oob(self, task: str, name: str, other: str) -> np.ndarray:
        # an AttributeError, as scikit-learn raises for a name its forest lacks: hasattr(rf, name) says False
        self.check_is_fitted()
        if self.task != task:
            raise AttributeError(f"{name} is the out-of-bag prediction of a {task} forest; this one is for "
                                 f"{self.task}: read {other}")
        oob = getattr(self, "oob_predictions_", None)
        if oob is None:
            why = ("it was fitted with oob_score=False: fit with oob_score=True" if hasattr(self, "oob_predictions_")
                   else "out-of-bag predictions are not kept in a model's file; they come from fitting it")
            raise AttributeError(f"{type(self).__name__} has no {name}: {why}")
        return oob

    def feature_importance(self) -> pl.DataFrame:
        """Mean decrease in impurity per input column (sums to 1), sorted descending."""
        self.check_is_fitted()
        return feature_frame(self.feature_names_, self.model_.feature_importances_)

    def contributions(self, data: Any) -> Contributions:
        """Tree-interpreter decomposition: for every tree, each split on the path of a row moves the node
        value; the move is credited to the split feature. Averaged over trees,
        ``bias + values.sum(axis=1) == predict(data)`` exactly (up to float rounding). ``data`` may also be an
        array of numbers (the book's ``row.values``: a row, or rows), its values in the order of ``feature_names_``."""
        self.check_is_fitted()
        d = self._prepare(array_rows(data, self.feature_names_, type(self).__name__, self.row_form().codes))
        X = self.matrix(d, order="C")
        n, F = X.shape
        K = len(self.classes_) if self.task == "classification" else 1
        contrib = np.zeros((n, F * K))
        bias = np.zeros(K)
        for est in self.model_.estimators_:
            t = est.tree_
            values = t.value[:, 0, :]  # classifier: class fractions per node; regressor: the mean
            internal = np.flatnonzero(t.children_left >= 0)
            parent = np.full(t.node_count, -1, dtype=np.int64)
            parent[t.children_left[internal]] = internal
            parent[t.children_right[internal]] = internal
            child = np.flatnonzero(parent >= 0)
            delta = values[child] - values[parent[child]]
            cols = t.feature[parent[child]][:, None] * K + np.arange(K)[None, :]
            D = np.zeros((t.node_count, F * K))
            D[child[:, None], cols] = delta
            contrib += est.decision_path(X, check_input=False) @ D
            bias += values[0]
        contrib, bias = contrib / len(self.model_.estimators_), bias / len(self.model_.estimators_)
        clf = self.task == "classification"
        return Contributions(bias=np.broadcast_to(bias, (n, K)).copy() if clf else np.full(n, bias[0]),
                             values=contrib.reshape(n, F, K) if clf else contrib,
                             feature_names=list(self.feature_names_), prediction=self._predict(d),
                             space="probability" if clf else "value", classes=self.classes_ if clf else None)

    # -- files: the trees as checked node tables ---------------------------------------------------------
    def model_to_data(self) -> dict[str, Any]:
        return {"trees": trees_to_data(self.model_.estimators_)}

    def model_from_data(self, data: Any) -> Any:
        if not (isinstance(data, dict) and set(data) == {"trees"}):
            raise ExportError("model_ must hold the forest's tree tables as {'trees': {...}}")
        n_classes = len(self.classes_) if self.task == "classification" else None
        return forest_from_data(self._make_sklearn(1), data["trees"], self.task, len(self.feature_names_), n_classes)


class ExtraTrees(RandomForest):
    """Extremely randomised trees (scikit-learn's ExtraTrees) for ``task`` "classification" or "regression":
    split thresholds are drawn at random, so the trees are less alike than a random forest's, which is what
    an ensemble wants of a member. Trees see every row unless ``max_samples`` (or ``oob_score``) asks for
    bootstrap samples (``bootstrap=None``, the default), or ``bootstrap=True`` asks for them always. Same interface, files and explanations as :class:`RandomForest`.

    Example:
        >>> import polars as pl, numpy as np
        >>> from pipekit.backends import ExtraTrees, as_data
        >>> xs = pl.DataFrame({"a": np.linspace(-1, 1, 200)})
        >>> ExtraTrees("classification", n_estimators=10, n_jobs=1).fit(as_data(xs, y=xs["a"].to_numpy() > 0)).score(
        ...     as_data(xs, y=xs["a"].to_numpy() > 0)) > 0.95
        True
    """

    def __init__(self, task: str, n_estimators: int = 100, max_samples: int | float | None = None,
                 max_features: float | int | str | None = 0.5, min_samples_leaf: int = 2, oob_score: bool = False,
                 n_jobs: int | None = -1, seed: int | None = SEED, time_limit: float | None = None, name: str | None = None,
                 max_depth: int | None = None, criterion: str | None = None, min_samples_split: int | float = 2,
                 max_leaf_nodes: int | None = None, min_impurity_decrease: float = 0.0, bootstrap: bool | None = None,
                 class_weight: str | dict | None = None, **sklearn: Any):
        super().__init__(task, n_estimators, max_samples, max_features, min_samples_leaf, oob_score, n_jobs, seed,
                         time_limit, name, max_depth, criterion, min_samples_split, max_leaf_nodes,
                         min_impurity_decrease, bootstrap, class_weight, **sklearn)

    param_constraints = {**RandomForest.param_constraints, "bootstrap": Options(None, True, False)}
    record_defaults = {**RandomForest.record_defaults, "params.bootstrap": None}

    def _bootstrap(self) -> bool | None:
        """``bootstrap``; None: bootstrap samples where ``max_samples`` or ``oob_score`` asks for them."""
        if self.bootstrap is None:
            return self.max_samples is not None or bool(self.oob_score)
        return self.bootstrap

    def _make_sklearn(self, n_rows: int):
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

        params = super()._make_sklearn(n_rows).get_params()
        if self.bootstrap is None:  # the rows per tree scikit-learn is given (all of them: no sample to draw)
            params["bootstrap"] = params["max_samples"] is not None or bool(self.oob_score)
        cls = ExtraTreesClassifier if self.task == "classification" else ExtraTreesRegressor
        return cls(**params)


def trees_to_data(estimators: list) -> dict[str, np.ndarray]:
    """The node tables of sklearn trees as plain arrays, concatenated with one offset table."""
    states = [e.tree_.__getstate__() for e in estimators]
    out = {"offsets": np.cumsum([0] + [s["node_count"] for s in states]).astype(np.int64),
           "max_depth": np.array([s["max_depth"] for s in states], np.int64),
           "values": np.concatenate([s["values"] for s in states])}
    for f in states[0]["nodes"].dtype.names:
        out[f] = np.concatenate([s["nodes"][f] for s in states])
    return out


def tree_structures_from_data(tables: Any, task: str, n_features: int, n_classes: int | None) -> list:
    """sklearn ``Tree`` objects from :func:`trees_to_data` output, after checking that every node table
    is a well-formed tree over ``n_features`` inputs.

    sklearn's compiled traversal trusts the node table (no bounds checks), so a file's child and feature
    indices are checked here: each internal node's children are later nodes of the same tree (so every
    path ends at a leaf) and its feature is an input column; leaves have no children.
    """
    from sklearn.tree._tree import Tree

    if not isinstance(tables, dict):
        raise ExportError(f"the tree tables must be a mapping of arrays, got {type(tables).__name__}")
    k = np.array([n_classes if task == "classification" else 1], dtype=np.intp)
    template = Tree(n_features, k, 1).__getstate__()["nodes"].dtype
    missing = [f for f in (*template.names, "offsets", "max_depth", "values") if f not in tables]
    if missing:
        raise ExportError(f"the exported trees lack the tables {missing}: they were written by an incompatible "
                          "scikit-learn version; refit and export again")
    offsets = tables["offsets"]
    if (not isinstance(offsets, np.ndarray) or offsets.ndim != 1 or offsets.dtype.kind not in "iu"
            or len(offsets) < 2 or offsets[0] != 0 or (np.diff(offsets) < 1).any()):
        raise ExportError("the tree offsets must be increasing integers from 0, one more than the number of trees")
    offsets = offsets.astype(np.int64)
    n_nodes, n_trees = int(offsets[-1]), len(offsets) - 1
    depth, values = tables["max_depth"], tables["values"]
    for name, a, n in [(f, tables[f], n_nodes) for f in template.names] + [
            ("max_depth", depth, n_trees), ("values", values, n_nodes)]:
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf" or len(a) != n:
            raise ExportError(f"the tree table {name!r} must be a numeric array of length {n} (from the offsets)")
    counts = np.diff(offsets)
    local = np.arange(n_nodes) - np.repeat(offsets[:-1], counts)
    size = np.repeat(counts, counts)
    left, right = tables["left_child"].astype(np.int64), tables["right_child"].astype(np.int64)
    feature = tables["feature"].astype(np.int64)
    ok = np.where(left == -1, right == -1, (left > local) & (left < size) & (right > local) & (right < size)
                  & (feature >= 0) & (feature < n_features))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        t = int(np.searchsorted(offsets, i, side="right") - 1)
        raise ExportError(f"tree {t} node {int(local[i])} is malformed: children ({int(left[i])}, {int(right[i])}) "
                          f"and feature {int(feature[i])} must be later nodes of the same tree (or -1 for a leaf) "
                          f"and an input column below {n_features}")
    # a NaN threshold sends every row one way without an error, and a NaN or infinite value reaches predictions;
    # an infinite threshold is scikit-learn's own (a split that sends only the missing values to one side)
    bad = np.isnan(tables["threshold"].astype(np.float64)) & (left != -1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        t = int(np.searchsorted(offsets, i, side="right") - 1)
        raise ExportError(f"tree {t} node {int(local[i])} splits at threshold nan; a split threshold must be a "
                          "number")
    if not np.isfinite(values.astype(np.float64)).all():
        raise ExportError("the tree node values hold NaN or infinite numbers; a fitted tree's values are finite")
    if (depth < 0).any() or (depth >= counts).any():
        raise ExportError("the tree max_depth must be between 0 and each tree's node count")
    trees = []
    for i in range(n_trees):
        a, b = int(offsets[i]), int(offsets[i + 1])
        nodes = np.zeros(b - a, dtype=template)
        for f in template.names:
            nodes[f] = tables[f][a:b]
        tree = Tree(n_features, k, 1)
        tree.__setstate__({"max_depth": int(depth[i]), "node_count": b - a, "nodes": nodes,
                           "values": np.ascontiguousarray(values[a:b], dtype=np.float64)})
        trees.append(tree)
    return trees


def forest_from_data(forest: Any, tables: Any, task: str, n_features: int, n_classes: int | None) -> Any:
    """``forest`` (an unfitted sklearn forest) holding the trees of :func:`trees_to_data` output, checked by
    :func:`tree_structures_from_data`, with the fitted attributes prediction reads."""
    tree_cls, params = type(forest.estimator), {p: getattr(forest, p) for p in forest.estimator_params}
    forest.estimators_ = []
    for tree in tree_structures_from_data(tables, task, n_features, n_classes):
        est = _fitted(tree_cls(**params), n_features, n_classes)
        est.tree_, est.max_features_ = tree, n_features
        forest.estimators_.append(est)
    forest.estimator_ = tree_cls(**params)
    return _fitted(forest, n_features, n_classes)


def _fitted(est: Any, n_features: int, n_classes: int | None) -> Any:
    est.n_features_in_, est.n_outputs_ = n_features, 1
    if n_classes is not None:
        est.classes_, est.n_classes_ = np.arange(n_classes), n_classes
    return est
