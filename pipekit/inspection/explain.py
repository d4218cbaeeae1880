"""What did the model learn? Permutation importance and partial dependence (1-D / 2-D, average and
individual curves) for any backend or ensemble; waterfalls of per-row contributions for the models that
have exact ones (see ``pipekit.inspection.contributions``).

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> from pipekit.inspection import partial_dependence, permutation_importance
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
    >>> rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(train)
    >>> imp = permutation_importance(rf, valid, n_repeats=3, seed=0)
    >>> imp["feature"][-1]
    'noise'
    >>> pdp = partial_dependence(rf, valid, "a", grid=5)
    >>> bool(pdp.average[-1] > pdp.average[0])
    True
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import polars as pl

from pipekit.backends.base import Backend, Contributions, Model, class_index, feature_frame
from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.core.errors import DataError, NotFittedError, ParameterError
from pipekit.core.protocols import ProcessedSplit
from pipekit.core.validate import Interval, Options, check
from pipekit.data.plotting import _write_png, get_pyplot, savefig_or_show
from pipekit.data.progress import progress_bar, under_bar
from pipekit.metrics import get_metric


def permutation_importance(model: Any, data: Any, metric: Any = None, n_repeats: int = 5, seed: int | None = None,
                           features: str | Sequence[str] | None = None, y: Any = None) -> pl.DataFrame:
    """Score drop when one input column is shuffled (its link to the target broken), per column.

    ``importance`` is the mean drop over ``n_repeats`` shuffles, oriented so that positive means the column
    helps whatever the metric's direction; ``std`` is across repeats and ``ci_low``/``ci_high`` a 95%
    t-interval of the mean. Sorted by importance, descending. Works for backends and ensembles (on a labelled
    split, ``tab.valid``) and for fitted scikit-learn estimators, ``TabularClassifier``/``TabularRegressor``
    included: those take the rows ``data`` they predict from, a Tabular's split (``tab.valid``, its processed
    inputs and targets, for an estimator fitted on ``tab.train.xs``) or raw rows (a pandas or Polars frame, or an
    array) with their targets ``y`` (values, or the name of the frame's target column), and shuffle the input
    columns. The default metric is accuracy (on probabilities where the estimator gives them) or rmse. A
    ``tabular_learner`` Learner is measured through its trained net, ``TorchTabular.from_learner(learn)``
    (``pipekit.ensemble``), on a split of the Tabular it was trained on.

    Example:
        >>> import polars as pl
        >>> import pipekit.datasets as D
        >>> from pipekit.backends import RandomForest
        >>> from pipekit.inspection import permutation_importance
        >>> from pipekit.tabular import Categorify, Tabular
        >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=400)
        >>> tab = Tabular(df, procs=[Categorify], cat_names=["relationship"],
        ...               cont_names=["age", "capital-gain"], y_names="salary",
        ...               splits=(list(range(300)), list(range(300, 400))))
        >>> rf = RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
        >>> imp = permutation_importance(rf, tab.valid, n_repeats=3, seed=0)
        >>> imp.columns, imp["feature"][0]
        (['feature', 'importance', 'std', 'ci_low', 'ci_high'], 'capital-gain')
    """
    check("permutation_importance", n_repeats=(n_repeats, Interval(1, None, integer=True)))
    model = learner_model(model, "permutation_importance")
    if not isinstance(model, Model):
        return _estimator_importance(model, data, y, metric, n_repeats, seed, features)
    d = as_data(data, y=y)
    m = model.scoring_metric(metric)
    y_enc = model.encode_y(d.y)
    cols = _names(features) if features is not None else model.feature_names_ if isinstance(model, Backend) \
        else d.feature_names
    d.check_columns(cols, "features", named=features is not None)

    def loss(c: str | None, perm: np.ndarray | None) -> float:
        dd = d if c is None or perm is None else d.with_xs(d.xs.with_columns(d.xs.get_column(c).gather(perm)))
        return m.loss(m.score(y_enc, model.predict(dd)))

    return _drops(cols, d.feature_names, len(d), n_repeats, seed, loss)


def _names(features: str | Sequence[str]) -> list[str]:
    """Column names given as one name or a list of them (one name is not a list of its letters)."""
    return [features] if isinstance(features, str) else list(features)


def _drops(cols: list[str], all_cols: list[str], n: int, n_repeats: int, seed: int | None,
           loss: Callable[[str | None, np.ndarray | None], float]) -> pl.DataFrame:
    """The permutation importance frame: ``loss(c, perm)`` is the loss with column ``c`` shuffled by ``perm``
    (``loss(None, None)`` with nothing shuffled). A bar counts the shuffles, columns x repeats; the model's own
    bars (a learner's over its batches) keep quiet under it."""
    base = loss(None, None)
    drops = np.zeros((len(cols), n_repeats))

    def shuffles() -> Iterator[tuple[int, str, np.ndarray]]:
        for j, c in enumerate(cols):
            # one stream per column: a column's result does not depend on which other columns are asked for
            rng = np.random.default_rng(None if seed is None else [seed, all_cols.index(c)])
            for _ in range(n_repeats):
                yield j, c, rng.permutation(n)

    for k, (j, c, perm) in enumerate(progress_bar(shuffles(), total=len(cols) * n_repeats,
                                                  description="permutation importance")):
        with under_bar():
            drops[j, k % n_repeats] = loss(c, perm) - base
    mean, std, half = drops.mean(1), np.zeros(len(cols)), np.zeros(len(cols))
    if n_repeats > 1:
        from scipy.stats import t

        std = drops.std(1, ddof=1)
        half = t.ppf(0.975, n_repeats - 1) * std / np.sqrt(n_repeats)
    return pl.DataFrame({"feature": cols, "importance": mean, "std": std, "ci_low": mean - half,
                         "ci_high": mean + half}).sort("importance", descending=True)


@dataclass
class FittedEstimator:
    """A fitted scikit-learn estimator (``TabularClassifier``/``TabularRegressor`` included) as the inspection
    tools use it: its task, its classes, and ``predict(X)`` giving class probabilities (one-hot labels where it
    has no ``predict_proba``) or values, on raw rows in the form it was fitted on."""

    model: Any
    task: str
    classes: np.ndarray | None

    @property
    def who(self) -> str:
        return type(self.model).__name__

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "regression":
            return np.asarray(self.model.predict(X), dtype=np.float64).reshape(-1)
        if callable(getattr(self.model, "predict_proba", None)):
            return np.asarray(self.model.predict_proba(X), dtype=np.float64)
        assert self.classes is not None
        return (np.asarray(self.model.predict(X))[:, None] == self.classes[None, :]).astype(np.float64)

    def loss(self, X: Any, y_enc: np.ndarray, metric: Any) -> float:
        """``metric``'s loss (lower is better) of the predictions of ``X`` against the targets ``y_enc``, as
        ``encode_y`` gives them for this estimator (encoded once by the caller, not on every call)."""
        return metric.loss(metric.score(y_enc, self.predict(X)))


def is_learner(model: Any) -> bool:
    """Whether ``model`` is a ``Learner`` (a net trained behind its ``dls`` and ``model``), told as the ensembles
    tell one."""
    return not isinstance(model, Model) and hasattr(model, "dls") and hasattr(model, "model")


def is_estimator(model: Any) -> bool:
    """Whether ``model`` is a ``TabularClassifier`` or ``TabularRegressor`` (``pipekit.sklearn``), told without
    importing their module (scikit-learn with it, about 2 s): where it is not loaded, nothing is one of them.

    >>> import polars as pl
    >>> is_estimator(pl.DataFrame())
    False
    """
    mod = sys.modules.get("pipekit.sklearn.estimators")
    return mod is not None and isinstance(model, (mod.TabularClassifier, mod.TabularRegressor))


def learner_model(model: Any, fn: str) -> Any:
    """``model`` as the inspection function ``fn`` predicts with it: a ``tabular_learner`` Learner as its trained
    net, ``TorchTabular.from_learner(learn)`` (the pipekit model an ensemble takes it as; the Learner is left as it
    is), anything else as it is. A Learner ``from_learner`` cannot read is refused with its reason."""
    if not is_learner(model):
        return model
    from pipekit.ensemble.torch_tabular import TorchTabular

    try:
        return TorchTabular.from_learner(model)
    except ParameterError as e:
        raise ParameterError(f"{fn} reads a Learner through its trained net, TorchTabular.from_learner(learn) "
                             f"(pipekit.ensemble), which cannot take this one: {e}") from None


def fitted_estimator(model: Any, fn: str) -> FittedEstimator:
    """``model`` checked to be a fitted scikit-learn classifier or regressor, for the inspection function
    ``fn``; anything else is refused naming what ``fn`` takes."""
    from sklearn.base import is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError as SklearnNotFitted
    from sklearn.utils.validation import check_is_fitted

    who = type(model).__name__
    if is_learner(model):  # the functions that predict with it took it as its net before; these refit the model
        raise ParameterError(f"{fn} refits copies of the model without some of its columns, and a {who}'s net is "
                             "built for the columns of the procs it was trained with; rank the columns for the net "
                             "with permutation_importance(learn, tab.valid), and refit without them a model pipekit "
                             f"refits, as the book does with its forest: {fn}(rf, tab.train, tab.valid) with rf = "
                             "RandomForest(task).fit(tab.train) (pipekit.backends)")
    if not (callable(getattr(model, "predict", None)) and callable(getattr(model, "fit", None))):
        raise ParameterError(f"{fn} takes a pipekit backend or ensemble, or a fitted scikit-learn estimator; "
                             f"got {who}")
    try:
        kind = "classification" if is_classifier(model) else "regression" if is_regressor(model) else None
    except AttributeError:  # no estimator tags: not built on sklearn.base.BaseEstimator
        raise ParameterError(f"{fn} takes a pipekit backend or ensemble, or a fitted scikit-learn estimator; {who} "
                             "has fit and predict but is no scikit-learn estimator (it has no estimator tags), so "
                             "whether it classifies or regresses is not known; build it on sklearn.base.BaseEstimator "
                             "with ClassifierMixin or RegressorMixin, or wrap it in a pipekit model") from None
    if kind is None:
        raise ParameterError(f"{fn}: {who} is neither a classifier nor a regressor (scikit-learn's estimator type), "
                             "so no metric fits it")
    try:
        check_is_fitted(model)
    except SklearnNotFitted:
        raise NotFittedError(f"{fn}: this {who} is not fitted; fit it first (model.fit(X, y)), then inspect it on "
                             "held-out rows") from None
    return FittedEstimator(model, kind, np.asarray(model.classes_) if kind == "classification" else None)


def split_rows(data: Any, classes: np.ndarray | None = None) -> tuple[pl.DataFrame, list[str], np.ndarray | None]:
    """The inputs, their names and the targets of a Tabular's split (``tab.valid``) or of ``TabularData``, as a
    scikit-learn estimator fitted on ``tab.train.xs`` predicts and scores them. The targets are the split's
    labels, or its codes (what ``tab.train.y`` gives) where the estimator's ``classes`` hold the codes and not the
    labels. Anything else is refused as :func:`~pipekit.backends.data.as_data` refuses it."""
    d = as_data(data)
    y = d.y
    if classes is not None and y is not None and isinstance(data, ProcessedSplit) and data.y_vocab is not None:
        known = set(np.asarray(classes).tolist())
        if not set(np.unique(y).tolist()) <= known:
            targets = data.targets
            codes = np.asarray(targets.to_numpy() if hasattr(targets, "to_numpy") else targets).reshape(-1)
            if len(codes) == len(y) and set(np.unique(codes).tolist()) <= known:
                y = codes
    return d.xs, d.feature_names, y


def _estimator_importance(model: Any, data: Any, y: Any, metric: Any, n_repeats: int, seed: int | None,
                          features: str | Sequence[str] | None) -> pl.DataFrame:
    """:func:`permutation_importance` of a fitted scikit-learn estimator on raw rows ``data`` and targets ``y``."""
    est = fitted_estimator(model, "permutation_importance")
    who = est.who
    X: Any
    if isinstance(data, (TabularData, ProcessedSplit)):  # a Tabular's split: its processed inputs and its targets
        X, names, split_y = split_rows(data, est.classes)
        y = split_y if y is None else y
    else:
        X, names = _raw_columns(data, who)
    if len(X) == 0:
        raise DataError(f"permutation_importance: the rows passed to {who} are empty; pass held-out rows to "
                        "measure the importances on")
    if isinstance(y, str) and y not in names:
        raise ParameterError(f"permutation_importance: y={y!r} names no column of the data (its columns: "
                             f"{names[:10]}); name the target column, or pass the targets as values (y=targets)")
    if isinstance(y, str):  # the target column of the frame
        target, y = y, _column(X, y)
        X = X.drop(columns=[target]) if hasattr(X, "iloc") else X.drop(target)
        names = [c for c in names if c != target]
    if y is None:
        known = getattr(model, "feature_names_in_", None)
        extra = [c for c in names if known is not None and c not in set(known)]
        hint = f" (the frame's column {extra[0]!r} is none of its inputs: y={extra[0]!r}?)" if len(extra) == 1 else ""
        raise ParameterError(f"permutation_importance: {who} is a scikit-learn estimator fitted with fit(X, y); pass "
                             f"the targets of these rows, permutation_importance(model, X, y=y), or name the target "
                             f"column of the frame, y='column'{hint}")
    X, names = estimator_inputs(X, names, model, "permutation_importance")
    y_arr = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y).reshape(-1)
    if len(y_arr) != len(X):
        raise DataError(f"permutation_importance: X has {len(X)} rows but y has {len(y_arr)}")
    m = get_metric(metric, est.task, est.classes)
    y_enc = encode_y(y_arr, est.task, est.classes)  # an unknown label is refused before any shuffling

    cols = _names(features) if features is not None else names
    keys = _keys(X, names)  # read once: a lookup per column would cost columns x columns on a wide table
    missing = [c for c in cols if c not in keys]
    if missing:
        raise ParameterError(f"permutation_importance: features {missing} are not columns of the data ({names[:10]})")

    def loss(c: str | None, perm: np.ndarray | None) -> float:
        return est.loss(X if c is None or perm is None else _shuffled(X, keys, c, perm), y_enc, m)

    return _drops(cols, names, len(X), n_repeats, seed, loss)


def estimator_inputs(X: Any, names: list[str], model: Any, fn: str) -> tuple[Any, list[str]]:
    """The columns of the rows ``X`` (named ``names``) that a scikit-learn estimator fitted on named columns reads,
    in the order it was fitted on (its ``feature_names_in_``): a forest fitted on some of a split's columns
    (``m.fit(xs[keep], y)``) is given those of ``tab.valid``. Rows without names (an array), or an estimator fitted
    without them, are kept as they are; rows missing a column the estimator reads are refused, naming it.

    >>> import pandas as pd
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> from pipekit.inspection.explain import estimator_inputs
    >>> xs = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0], "c": [5.0, 6.0, 7.0]})
    >>> m = DecisionTreeRegressor().fit(xs[["c", "a"]], [0.0, 1.0, 2.0])
    >>> estimator_inputs(xs, ["a", "b", "c"], m, "fn")[1]
    ['c', 'a']
    """
    known = getattr(model, "feature_names_in_", None)
    if known is None or isinstance(X, np.ndarray):
        return X, names
    want = [str(c) for c in known]
    if want == names:
        return X, names
    have = set(names)
    missing = [c for c in want if c not in have]
    if missing:
        raise DataError(f"{fn}: {type(model).__name__} was fitted on columns the data lacks: {missing[:10]} (it "
                        f"reads {len(want)} columns, {want[:20]}; the data has {names[:20]}); pass rows holding every "
                        "column it was fitted on")
    if isinstance(X, pl.DataFrame):
        return X.select(want), want
    keys = _keys(X, names)
    return X[[keys[c] for c in want]], want


def _raw_columns(data: Any, who: str, fn: str = "permutation_importance") -> tuple[Any, list[str]]:
    """Rows for an estimator's predict, as given (a pandas or Polars frame, a 2-d array), and the column names
    (``x0, x1, ...`` for an array)."""
    if isinstance(data, pl.DataFrame) or hasattr(data, "iloc") and hasattr(data, "columns"):
        return data, [str(c) for c in data.columns]
    arr = np.asarray(data) if isinstance(data, (np.ndarray, list)) else None
    if arr is None or arr.ndim != 2:
        raise ParameterError(f"{fn}: {who} predicts from the rows it was fitted on; pass a Tabular's split "
                             f"(tab.valid) or raw rows as a pandas or Polars DataFrame or a 2-d array, got "
                             f"{type(data).__name__}")
    return arr, [f"x{j}" for j in range(arr.shape[1])]


def _column(X: Any, name: str) -> Any:
    return X.get_column(name) if isinstance(X, pl.DataFrame) else X[name]


def _keys(X: Any, names: list[str]) -> dict[str, Any]:
    """Each column name of the rows ``X`` (``names``, as :func:`_raw_columns` gives them) mapped to what picks the
    column out: its position in a 2-d array, a pandas frame's own label (the ``0`` of a column named ``'0'``; the
    first of two that read alike), the name in a Polars frame. Built once per call, looked up per column."""
    if isinstance(X, np.ndarray):
        return {n: j for j, n in enumerate(names)}
    if isinstance(X, pl.DataFrame):
        return dict(zip(names, names))
    keys: dict[str, Any] = {}
    for k in X.columns:
        keys.setdefault(str(k), k)
    return keys


def _shuffled(X: Any, keys: dict[str, Any], c: str, perm: np.ndarray) -> Any:
    """``X`` with column ``c``'s values in the order ``perm`` (its type kept); ``keys``: :func:`_keys` of ``X``."""
    if isinstance(X, pl.DataFrame):
        return X.with_columns(X.get_column(c).gather(perm))
    if isinstance(X, np.ndarray):
        out = X.copy()
        j = keys[c]
        out[:, j] = X[perm, j]
        return out
    out = X.copy()
    col = keys[c]
    out[col] = X[col].iloc[perm].set_axis(X.index)  # its dtype kept (categories, nullable integers)
    return out


def importance_frame(obj: Any) -> pl.DataFrame:
    """A ``feature``/``importance`` frame from what a user has: such a frame (Polars or pandas; the book's
    ``cols``/``imp`` names are read too), a pipekit model (its ``feature_importance()``), or a fitted estimator
    with scikit-learn's ``feature_importances_`` (a forest, ``TabularClassifier("rf")``), named by its
    ``feature_names_in_`` (``x0, x1, ...`` without names).

    >>> import pandas as pd
    >>> from pipekit.inspection.explain import importance_frame
    >>> importance_frame(pd.DataFrame({"cols": ["a", "b"], "imp": [0.2, 0.8]}))["feature"].to_list()
    ['b', 'a']
    """
    if hasattr(obj, "iloc") and hasattr(obj, "columns"):  # pandas
        obj = pl.from_pandas(obj.reset_index(drop=True))
    if isinstance(obj, pl.DataFrame):
        if {"cols", "imp"} <= set(obj.columns) and not {"feature", "importance"} & set(obj.columns):
            obj = obj.rename({"cols": "feature", "imp": "importance"})
        if not {"feature", "importance"} <= set(obj.columns):
            raise ParameterError(f"an importance frame needs columns 'feature' and 'importance'; got {obj.columns}")
        return obj.sort("importance", descending=True)
    if isinstance(obj, Model):
        return obj.feature_importance()
    values = getattr(obj, "feature_importances_", None)  # None too where it is not fitted
    if values is None:
        hint = "fit it first, or " if hasattr(obj, "fit") and not hasattr(obj, "n_features_in_") else ""
        raise ParameterError(f"{type(obj).__name__} has no feature importances to plot: pass a frame with 'feature' and "
                             f"'importance' columns (permutation_importance gives one: {hint}use "
                             f"permutation_importance(model, X, y=y)), a pipekit model, or an estimator with "
                             f"feature_importances_")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    names = getattr(obj, "feature_names_in_", None)
    names = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(len(values))]
    return feature_frame(names, values)


def plot_importance(importance: pl.DataFrame | Any, top: int = 20, path: str | Path | None = None,
                    title: str | None = None) -> Path | None:
    """Horizontal bars of a ``feature``/``importance`` frame (from ``permutation_importance`` or a model's
    ``feature_importance()``), with error bars when ``std`` is present. Anything :func:`importance_frame` reads
    is accepted: a pandas frame, a pipekit model, a fitted scikit-learn forest or ``TabularClassifier``.

    >>> import polars as pl, tempfile
    >>> from pathlib import Path
    >>> from pipekit.inspection import plot_importance
    >>> imp = pl.DataFrame({"feature": ["age", "hours", "edu"], "importance": [0.3, 0.1, 0.2]})
    >>> out = plot_importance(imp, top=2, path=Path(tempfile.mkdtemp()) / "importance.png")
    >>> out.name, out.exists()
    ('importance.png', True)
    """
    importance = importance_frame(importance)
    f = importance.sort("importance", descending=True).head(top).reverse()
    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.3 * f.height + 1.2))
    xerr = f["std"].to_numpy() if "std" in f.columns else None
    ax.barh(f["feature"].to_list(), f["importance"].to_numpy(), xerr=xerr, color="tab:blue", alpha=0.8)
    ax.set_xlabel("importance")
    ax.set_title(title or "feature importance")
    return savefig_or_show(fig, path, name="importance")


# ------------------------------------------------------------------------------------ partial dependence
@dataclass
class PartialDependence:
    """Result of :func:`partial_dependence`, one entry per feature in ``grid``, ``grid_raw`` and ``grid_labels``:

    - ``grid``: the values the model was given, in the units it was fitted on: for a Tabular's split these
      are processed (category codes, ``Normalize``'d numbers), so set a column to ``grid[0][i]`` to repeat
      one point by hand;
    - ``grid_raw``: the same points in the data's own units (category values, de-normalised numbers), as
      the plot's axis shows them; equal to ``grid`` where nothing was processed (raw rows);
    - ``grid_labels``: their readable form (category names as text, numbers as floats).

    ``average`` has shape (g,) or (g1, g2); ``individual`` (n_rows, g) for 1-D when requested.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.inspection import partial_dependence
    >>> xs = pl.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 5})
    >>> rf = RandomForest("regression", n_estimators=5, n_jobs=1).fit(as_data(xs, y=2 * xs["a"].to_numpy()))
    >>> pdp = partial_dependence(rf, xs, "a", grid=[0.0, 39.0], kind="both")
    >>> pdp.features, pdp.average.shape, pdp.individual.shape, bool(pdp.average[1] > pdp.average[0])
    (('a',), (2,), (40, 2), True)
    """

    features: tuple[str, ...]
    grid: list[np.ndarray]
    grid_raw: list[np.ndarray]
    grid_labels: list[list]
    average: np.ndarray
    individual: np.ndarray | None
    categorical: tuple[bool, ...]
    output: str


def _decode(processor: Any, col: str, values: np.ndarray) -> np.ndarray:
    """Processed values -> the data's own: vocab entries for codes, de-normalised continuous values (values
    no processing touched are returned as they are)."""
    if processor is not None:
        vocab = processor.classes_.get(col)
        if vocab is not None:
            return np.asarray([vocab[int(v)] if 0 <= int(v) < len(vocab) else v for v in values], dtype=object)
        stats = _norm_stats(processor, col)
        if stats is not None:
            return np.asarray([float(v) * stats[1] + stats[0] for v in values], dtype=np.float64)
    return np.asarray(values)


def _norm_stats(processor: Any, col: str) -> tuple[float, float] | None:
    """The mean and standard deviation ``Normalize`` scaled column ``col`` by, or None where it did not."""
    if processor is None:
        return None
    from pipekit.tabular.procs import Normalize

    for proc in processor.procs:
        means, stds = (proc.means_, proc.stds_) if isinstance(proc, Normalize) else (None, None)
        if means is not None and stds is not None and col in means:
            return float(means[col]), float(stds[col])
    return None


def _fill_value(processor: Any, col: str) -> float | None:
    """The number ``FillMissing`` fills a missing value of column ``col`` with, or None where it fills none."""
    if processor is None:
        return None
    from pipekit.tabular.procs import FillMissing

    for proc in processor.procs:
        fills = vars(proc).get("fill_values_") if isinstance(proc, FillMissing) else None
        if fills is not None and col in fills:
            return float(fills[col])
    return None


def _is_missing(v: Any) -> bool:
    return v is None or isinstance(v, (float, np.floating)) and bool(np.isnan(v))


def _encode(processor: Any, col: str, given: list, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Values of column ``col`` given in the data's own units (category values, numbers as the source holds them)
    as the procs turn them into the model's, and as given: a category's code in the column's vocab (a missing
    value: ``#na#``), a number filled where missing and normalised as ``FillMissing`` and ``Normalize`` do (given
    as a float, NaN where missing). A category never seen in training, or text for a number, is refused naming
    the values the column takes."""
    vocab = processor.classes_.get(col)
    if vocab is not None:
        from pipekit.tabular.procs import NA_TOKEN, Categorify

        codes = Categorify.lookup(col, vocab, given)
        out = [0 if _is_missing(v) or isinstance(v, str) and v == NA_TOKEN else c for v, c in zip(given, codes)]
        unknown = [v for v, c in zip(given, out) if c is None]
        if unknown:
            raise ParameterError(f"partial_dependence: grid values {unknown} are not categories of {col!r} seen in "
                                 f"training; give values of its vocab {vocab!r}")
        return np.asarray(out, dtype=np.int64), np.asarray(given, dtype=object)
    numbers = []
    for v in given:
        try:
            numbers.append(np.nan if _is_missing(v) else float(v))
        except (TypeError, ValueError):
            raise ParameterError(f"partial_dependence: grid value {v!r} of {col!r} is not a number; {col!r} is a "
                                 "continuous column: give its values in its own units (grid=[30, 50])") from None
    raw = np.asarray(numbers, dtype=np.float64)
    fill, stats = _fill_value(processor, col), _norm_stats(processor, col)
    x = raw if fill is None else np.where(np.isnan(raw), fill, raw)
    if stats is not None:
        x = (x - stats[0]) / stats[1]
    return x.astype(dtype if dtype.kind == "f" else np.float64), raw


def _column_grid(values: np.ndarray, categorical: bool, col: str, grid: Any, processor: Any,
                 date: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(grid, grid_raw)`` of one column (``date``: a raw date column, see :func:`_grid`): the points the model is
    given and the same points in the data's own units. Points given are in the data's own units, as the default grid is: a processed split's are encoded as
    its procs encode the column (:func:`_encode`). A normalised column's quantiles are taken in its own units and
    rounded to the precision its float32 normalised values keep of them (an age of 20, not 19.99999992; a
    whole-number column's points are whole), then normalised as ``Normalize`` does; the model is given exactly the
    points shown."""
    given = grid.get(col, 20) if isinstance(grid, dict) else grid
    if not isinstance(given, (int, np.integer)):
        if processor is None:  # rows as the model takes them: the values are given as they are
            g = _grid(values, categorical, col, given)
            return g, g
        return _encode(processor, col, list(given), values.dtype)
    stats = None if categorical else _norm_stats(processor, col)
    if stats is None:
        g = _grid(values, categorical, col, grid, date)
        return g, _decode(processor, col, g)
    mean, std = stats
    z = values.astype(np.float64)
    z = z[np.isfinite(z)]
    if len(z) == 0:
        raise DataError(f"partial_dependence: column {col!r} has no values (all missing) to make a grid from")
    # float32 keeps a normalised value to within half its spacing: in the column's units, that times std
    noise = float(np.spacing(np.float32(max(np.abs(z).max(), 1.0)))) * std  # a constant column is all 0
    digits = -int(np.ceil(np.log10(noise)))
    raw = np.round(z * std + mean, digits)
    raw_grid = np.unique(np.round(_grid(raw, False, col, grid), digits))
    return ((raw_grid - mean) / std).astype(values.dtype if values.dtype.kind == "f" else np.float64), raw_grid


def _labels(raw: np.ndarray, categorical: bool) -> list:
    """What a person reads of the grid points ``raw``: text for categories, floats for numbers (dates at midnight
    as the day they are: ``2015-07-31``)."""
    if raw.dtype.kind == "M" and np.all(raw == raw.astype("datetime64[D]")):
        return [str(v) for v in raw.astype("datetime64[D]")]
    return [str(v) for v in raw] if categorical else [float(v) for v in raw]


def _values(X: Any, names: list[str], col: str) -> np.ndarray:
    """Column ``col`` of rows ``X`` (a Polars or pandas frame, a 2-d array) as an array."""
    if isinstance(X, np.ndarray):
        return X[:, names.index(col)]
    return np.asarray(_column(X, col).to_numpy())


def _categorical(X: Any, names: list[str], feats: Sequence[str], who: str) -> tuple[list[bool], list[bool]]:
    """Whether each raw column of ``feats`` holds categories, and whether it holds dates, by the rule
    ``TabularClassifier`` and ``TabularRegressor`` give the same raw rows (``column_roles``): text, categories and
    booleans are categories, numbers are not; dates (and text holding ISO dates) are dates, and categories too,
    in that their grid points are values present (quantile dates, see :func:`_grid`) shown as text."""
    from pipekit.sklearn.frames import as_frame, column_roles

    sub: Any
    keys = _keys(X, names)
    if isinstance(X, np.ndarray):
        sub = X[:, [keys[f] for f in feats]]
    elif isinstance(X, pl.DataFrame):
        sub = X.select(feats)
    else:
        sub = X[[keys[f] for f in feats]].set_axis(list(feats), axis=1)
    frame = as_frame(sub, who)
    _, cont, dates = column_roles(frame, None, None, None)
    return [c not in cont for c in frame.columns], [c in dates for c in frame.columns]


def _grid(values: np.ndarray, categorical: bool, col: str, grid: Any, date: bool = False) -> np.ndarray:
    """Grid points of one column: every value present for categories, ``grid`` quantiles (5% to 95%) of a
    number (whole numbers for a column holding only whole numbers: an integer column holds no others) or of a
    date column (``date``: the dates present nearest those quantiles, as the column holds them, text or dates), or
    the points given. A column with no value present (all missing) has no grid but the points given."""
    if isinstance(grid, dict):
        grid = grid.get(col, 20)
    if not isinstance(grid, (int, np.integer)):
        return np.asarray(list(grid))
    import pandas as pd

    present = values[~np.asarray(pd.isna(values), dtype=bool)]  # missing values left out
    if len(present) == 0:
        raise DataError(f"partial_dependence: column {col!r} has no values (all missing) to make a grid from")
    if categorical and not date:
        uniq = list(dict.fromkeys(present.tolist()))
        try:
            uniq = sorted(uniq)
        except TypeError:  # mixed types: kept in order of appearance
            pass
        return np.asarray(uniq, dtype=values.dtype if values.dtype.kind in "iufb" else object)
    levels = np.linspace(0.05, 0.95, int(grid))
    if date:
        return _date_grid(present, levels)
    vals = np.asarray(present.tolist(), dtype=np.float64)
    q = np.quantile(vals, levels)
    return np.unique(np.round(q)) if np.array_equal(vals, np.round(vals)) else np.unique(q)


def _date_grid(present: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The values of the date column ``present`` (dates, datetimes or ISO text, none missing) nearest its quantiles
    ``levels``, as the column holds them, in time order and without repeats."""
    import pandas as pd

    text = present.dtype == object and all(isinstance(v, str) for v in present)
    # in UTC, so text with offsets and aware datetimes are ordered by the instant they name
    times = pd.to_datetime(pd.Series(present), utc=True, format="ISO8601" if text else None)
    ns = times.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    order = np.argsort(ns, kind="stable")
    picks = order[np.round(levels * (len(order) - 1)).astype(np.int64)]
    keep = np.r_[True, np.diff(ns[picks]) != 0]
    return present[picks[keep]]


def _take(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx].reset_index(drop=True) if hasattr(X, "iloc") else X[idx]


def _repeat_with(X: Any, names: list[str], feats: Sequence[str], combos: list[np.ndarray]) -> Any:
    """``len(combos[0])`` copies of the rows ``X`` one after another, copy ``k`` with each of ``feats`` set to
    ``combos[j][k]`` (each column keeps its type, but an integer column set to a number that is not whole, such
    as an age of 30.5, becomes a float column, so the model is given the point asked for, not its whole part)."""
    n, g = len(X), len(combos[0])
    fractional = {f: _fractional(c) for f, c in zip(feats, combos)}
    if isinstance(X, pl.DataFrame):
        rep = pl.concat([X] * g)
        schema = X.schema  # read once: Polars builds it anew on each read
        types = {f: pl.Float64 if fractional[f] and schema[f].is_integer() else schema[f] for f in feats}
        # a Python list only for object values (categories of mixed types): a 2-D grid repeats the rows many times
        return rep.with_columns([pl.Series(f, r.tolist() if r.dtype == object else r).cast(types[f])
                                 for f, r in ((f, np.repeat(c, n)) for f, c in zip(feats, combos))])
    keys = _keys(X, names)
    if isinstance(X, np.ndarray):
        out = np.tile(X, (g, 1))
        if X.dtype.kind in "biu" and any(fractional.values()):
            out = out.astype(np.float64)
        for f, c in zip(feats, combos):
            out[:, keys[f]] = np.repeat(c, n)
        return out
    import pandas as pd

    out = pd.concat([X] * g, ignore_index=True)
    for f, c in zip(feats, combos):
        col = keys[f]
        dtype = X[col].dtype
        if fractional[f] and pd.api.types.is_integer_dtype(dtype):
            dtype = np.float64 if isinstance(dtype, np.dtype) else pd.Float64Dtype()  # nullable Int64: Float64
        out[col] = pd.Series(np.repeat(c, n), index=out.index).astype(dtype)
    return out


def _fractional(values: np.ndarray) -> bool:
    """Whether grid points ``values`` hold a number that is not whole (or a missing one), which an integer column
    cannot hold."""
    if values.dtype.kind not in "fc" and values.dtype != object:
        return False
    numbers = [v for v in values.tolist() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
    x = np.asarray(numbers, dtype=np.float64)
    return bool(np.any(~np.isfinite(x) | (x != np.round(x))))


def partial_dependence(model: Any, data: Any, features: str | Sequence[str], kind: str = "average",
                       grid: int | Sequence | dict | None = None, target_class: Any = None,
                       n_rows: int | None = 1000, seed: int = 0, grid_resolution: int | None = None
                       ) -> PartialDependence:
    """Average (and/or per-row, ``kind="individual"``/``"both"``) prediction when ``features`` (one name, or
    two for a 2-D surface) are set to each grid value for every row (the book's YearMade analysis).

    ``model``: a pipekit backend or ensemble (a ``tabular_learner`` Learner as its net,
    ``TorchTabular.from_learner(learn)``), with a split of a Tabular (``tab.valid``) or a Polars frame of
    processed inputs; or a fitted scikit-learn estimator (a forest fitted on ``tab.train.xs``,
    ``TabularClassifier``/``TabularRegressor``), with the rows it predicts from: a Tabular's split (its
    processed inputs, whose codes and normalised numbers ``grid_raw`` and the plot decode), or a pandas or
    Polars frame or 2-d array as given to its ``fit`` (raw rows: text and category columns are categorical).

    ``grid``: number of quantile points for continuous columns and for the date columns of raw rows (the dates
    present nearest the quantiles, as the column holds them, shown as text; categories use every value present),
    explicit values, or a dict per feature; 20 points when neither it nor ``grid_resolution``
    (scikit-learn's and :func:`plot_partial_dependence`'s name for a number of points) is given. Values given are in
    the data's own units, as the default grid, ``grid_raw`` and the plot are: a Tabular split's ages, not their
    ``Normalize``'d values, and its category values, not their codes (a missing value is filled as its procs fill
    it); ``grid_raw`` holds them as given. A value that is not whole, given for an integer column (an age of 30.5),
    is given to the model as it is, in a float column. Classification uses the probability of
    ``target_class`` (default: the last class, the positive one for binary). ``n_rows`` rows are sampled
    (seeded) to keep it fast.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.inspection import partial_dependence
    >>> xs = pl.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 5})
    >>> rf = RandomForest("regression", n_estimators=5, n_jobs=1).fit(as_data(xs, y=2 * xs["a"].to_numpy()))
    >>> pdp = partial_dependence(rf, xs, "a", grid=[0.0, 20.0, 39.0])
    >>> [round(float(v)) for v in pdp.grid[0]], bool(np.all(np.diff(pdp.average) > 0))  # rises with a
    ([0, 20, 39], True)
    >>> partial_dependence(rf, xs, ["a", "b"], grid=3).average.shape  # a 2-D surface
    (3, 3)
    """
    check("partial_dependence", kind=(kind, Options("average", "individual", "both")),
          n_rows=(n_rows, Interval(1, None, integer=True, none_ok=True)),
          grid_resolution=(grid_resolution, Interval(2, None, integer=True, none_ok=True)))
    if grid is not None and grid_resolution is not None:
        raise ParameterError(f"partial_dependence: give grid ({grid!r:.40}) or grid_resolution ({grid_resolution}), "
                             "not both: grid_resolution is a number of grid points, grid that number or the values")
    grid = grid_resolution if grid_resolution is not None else 20 if grid is None else grid
    for col, points in grid.items() if isinstance(grid, dict) else [(None, grid)]:
        if isinstance(points, (int, np.integer)):  # a number of grid points (values given are taken as they are)
            check("partial_dependence", **{"grid" if col is None else f"grid[{col!r}]":
                                           (points, Interval(1, None, integer=True, why="a number of grid points"))})
    model = learner_model(model, "partial_dependence")
    feats = (features,) if isinstance(features, str) else tuple(features)
    if len(feats) not in (1, 2):
        raise ParameterError(f"features must be one column name or a pair, got {features!r}")
    if len(feats) == 2 and kind != "average":
        raise ParameterError("2-D partial dependence supports kind='average' only")
    processor: Any = None
    dated = [False] * len(feats)  # raw date columns, whose grid is quantile dates
    if isinstance(model, Model) or isinstance(data, (TabularData, ProcessedSplit)):
        d = as_data(data)
        d.check_columns(feats, "features", named=True)
        X, names, processor = d.xs, d.feature_names, d.processor
        cats = [f in d.cat_names for f in feats]
    predict: Callable[[Any], np.ndarray]
    if isinstance(model, Model):
        task = model.task
        classes = model.classes_ if task == "classification" else None

        def model_predict(rows: Any) -> np.ndarray:
            return np.asarray(model.predict(replace(d, xs=rows, y=None)))
        predict = model_predict
    else:
        est = fitted_estimator(model, "partial_dependence")
        task, classes, predict = est.task, est.classes, est.predict
        if processor is None and not isinstance(data, (TabularData, ProcessedSplit)):
            X, names = _raw_columns(data, est.who, "partial_dependence")
            missing = [f for f in feats if f not in names]
            if missing:
                raise DataError(f"features {missing} missing from the data (its columns: {names[:20]}); pass the "
                                "rows with the columns the estimator was fitted on")
            cats, dated = _categorical(X, names, feats, est.who)
    if len(X) == 0:
        raise DataError("partial_dependence: the data has no rows to average the predictions over")
    if n_rows is not None and len(X) > n_rows:
        X = _take(X, np.sort(np.random.default_rng(seed).choice(len(X), n_rows, replace=False)))
    col_out, output = 0, "value"
    if task == "classification":
        labels = list(np.asarray(classes).tolist())
        col_out = class_index(labels, target_class, "target_class")
        output = f"P({labels[col_out]})"
    grids, raws = map(list, zip(*[_column_grid(_values(X, names, f), c, f, grid, processor, t)
                                  for f, c, t in zip(feats, cats, dated)]))
    n = len(X)
    combos = [m.ravel() for m in np.meshgrid(*grids, indexing="ij")]
    # one predict call on all grid copies of the rows: fast for every backend
    pred = predict(_repeat_with(X, names, feats, combos))
    if pred.ndim == 2:
        pred = pred[:, col_out]
    pred = pred.reshape(len(combos[0]), n)  # (grid points, rows)
    average = pred.mean(1).reshape([len(g) for g in grids])
    individual = pred.T.copy() if kind in ("individual", "both") else None
    return PartialDependence(features=feats, grid=grids, grid_raw=raws,
                             grid_labels=[_labels(r, c) for r, c in zip(raws, cats)], average=average,
                             individual=individual, categorical=tuple(cats), output=output)


def plot_partial_dependence(pd: PartialDependence | Any, data: Any = None, features: Any = None,
                            path: str | Path | None = None, max_lines: int = 50, *, kind: str | None = None,
                            grid_resolution: int | None = None, target_class: Any = None,
                            ax: Any = None) -> Path | None:
    """Plot partial dependence: a line (continuous) or points (categorical) for one feature, with up to
    ``max_lines`` individual curves; a heat map for a pair.

    Two ways to call it:

    - ``plot_partial_dependence(pd, path)`` with a :class:`PartialDependence` from :func:`partial_dependence`;
    - ``plot_partial_dependence(model, data, features)``, as scikit-learn's is called: :func:`partial_dependence`
      of ``model`` on ``data`` (what it takes) is computed for each entry of ``features``, one panel each, side
      by side. As in scikit-learn, ``["YearMade", "ProductSize"]`` is two one-feature panels and a pair in it,
      ``[("YearMade", "ProductSize")]``, is one 2-D panel (:func:`partial_dependence` itself reads a pair of names
      as one surface). ``grid_resolution`` is its ``grid`` (quantile points of a continuous column, default 20),
      ``kind`` ("average", "individual", "both") and ``target_class`` are passed on.

    ``ax``: draw into this matplotlib Axes (its area is shared between the panels; or a list of Axes, one per
    panel) instead of a new figure; the figure is then the caller's to show, written to ``path`` when one is
    given. Returns the PNG written, if any.

    Example:
        >>> import tempfile, numpy as np, polars as pl
        >>> from pathlib import Path
        >>> from pipekit.backends import RandomForest, as_data
        >>> from pipekit.inspection import plot_partial_dependence
        >>> xs = pl.DataFrame({"a": np.linspace(-1, 1, 200), "b": np.tile([0.0, 1.0], 100)})
        >>> rf = RandomForest("regression", n_estimators=10, n_jobs=1).fit(as_data(xs, y=xs["a"].to_numpy()))
        >>> out = Path(tempfile.mkdtemp()) / "pdp.png"
        >>> plot_partial_dependence(rf, xs, ["a", "b"], grid_resolution=5, path=out).name
        'pdp.png'
    """
    check("plot_partial_dependence", grid_resolution=(grid_resolution, Interval(2, None, integer=True, none_ok=True)),
          max_lines=(max_lines, Interval(0, None, integer=True)))
    if isinstance(pd, PartialDependence):
        if isinstance(data, (str, Path)) and features is None and path is None:
            data, path = None, data  # plot_partial_dependence(pd, "pdp.png")
        given = [n for n, v in (("data", data), ("features", features), ("kind", kind),
                                ("grid_resolution", grid_resolution), ("target_class", target_class)) if v is not None]
        if given:
            raise ParameterError(f"plot_partial_dependence: {given} choose what partial_dependence computes, but a "
                                 "PartialDependence is computed already; plot it as it is, plot_partial_dependence(pd, "
                                 "path), or pass the model: plot_partial_dependence(model, data, features, ...)")
        results = [pd]
    else:
        if data is None or features is None or isinstance(pd, (str, Path)) or not callable(getattr(pd, "predict", None)):
            raise ParameterError("plot_partial_dependence takes a PartialDependence (pd = partial_dependence(model, "
                                 "data, 'column')) or a fitted model with the rows and features to compute it on: "
                                 "plot_partial_dependence(model, tab.valid, ['column', ...]); got "
                                 f"{type(pd).__name__}" + ("" if data is not None and features is not None else
                                                          " without data and features"))
        results = [partial_dependence(pd, data, f, kind=kind or "average", grid=20 if grid_resolution is None
                                      else grid_resolution, target_class=target_class) for f in _panels(features)]
    plt = get_pyplot()
    axes, fig = _panel_axes(ax, len(results), results, plt)
    for a, r in zip(axes, results):
        _draw_partial_dependence(a, r, max_lines, title=len(results) == 1)
    if ax is None:
        return savefig_or_show(fig, path, name="partial_dependence")
    if path is None:
        return None
    return _write_png(fig, path, "partial_dependence")


def _panels(features: Any) -> list[Any]:
    """The panels of scikit-learn's ``features``: a name, or a list whose entries are names (one 1-D panel each)
    or pairs of names (one 2-D panel each)."""
    if isinstance(features, str):
        return [features]
    entries = list(features) if isinstance(features, (list, tuple)) else None
    ok = entries and all(isinstance(f, str) or isinstance(f, (list, tuple)) and len(f) == 2
                         and all(isinstance(g, str) for g in f) for f in entries)
    if not ok:
        raise ParameterError(f"plot_partial_dependence: features={features!r}: pass a column name, or a list of "
                             "column names (one panel each) and pairs of names (one 2-D panel each), e.g. "
                             "['YearMade', ('YearMade', 'ProductSize')]")
    return [f if isinstance(f, str) else tuple(f) for f in entries]  # type: ignore[union-attr]


def _panel_axes(ax: Any, n: int, results: list[PartialDependence], plt: Any) -> tuple[list[Any], Any]:
    """One Axes per panel and their figure: a new figure (up to 3 panels a row), ``ax``'s area shared between
    them, or the Axes of a list ``ax``."""
    from matplotlib.axes import Axes

    rows, cols = -(-n // 3), min(n, 3)
    if ax is None:
        size = ((7, 5) if len(results[0].features) == 2 else (7, 4)) if n == 1 else (5 * cols, 4 * rows)
        fig, grid = plt.subplots(rows, cols, figsize=size, squeeze=False)
        for extra in grid.ravel()[n:]:
            extra.set_axis_off()
        return list(grid.ravel()[:n]), fig
    if isinstance(ax, Axes):
        if n == 1:
            return [ax], ax.figure
        box = ax.get_position()
        ax.set_axis_off()  # its area is shared between the panels, as scikit-learn does
        w, h = box.width / cols, box.height / rows
        return [ax.figure.add_axes((box.x0 + (k % cols + 0.12) * w, box.y0 + (rows - 1 - k // cols + 0.22) * h,
                                    0.8 * w, 0.68 * h)) for k in range(n)], ax.figure
    axes = list(np.ravel(np.asarray(ax, dtype=object))) if isinstance(ax, (list, tuple, np.ndarray)) else None
    if axes is None or len(axes) != n or not all(isinstance(a, Axes) for a in axes):
        raise ParameterError(f"plot_partial_dependence: ax must be a matplotlib Axes or a list of {n} Axes (one per "
                             f"panel), got {type(ax).__name__}" + (f" of {len(axes)}" if axes is not None else ""))
    return axes, axes[0].figure


def _draw_partial_dependence(ax: Any, pd: PartialDependence, max_lines: int, title: bool) -> None:
    """Draw one :class:`PartialDependence` on ``ax``: a heat map for a pair, else the average (and individual)
    curves."""
    if len(pd.features) == 2:
        im = ax.imshow(pd.average.T, origin="lower", aspect="auto", cmap="viridis")
        for axis, labels, setter in ((0, pd.grid_labels[0], ax.set_xticks), (1, pd.grid_labels[1], ax.set_yticks)):
            ticks = _tick_positions(len(labels))
            setter(ticks, [_fmt(labels[i]) for i in ticks], **({"rotation": 45} if axis == 0 else {}))
        ax.set_xlabel(pd.features[0])
        ax.set_ylabel(pd.features[1])
        ax.figure.colorbar(im, ax=ax, label=pd.output)
    else:
        x = np.arange(len(pd.grid[0])) if pd.categorical[0] else np.asarray(pd.grid_labels[0], dtype=np.float64)
        if pd.individual is not None:
            for row in pd.individual[:max_lines]:
                ax.plot(x, row, color="gray", alpha=0.2, lw=0.8)
        ax.plot(x, pd.average, color="tab:orange", lw=2.5, marker="o" if pd.categorical[0] else None,
                label="average")
        if pd.categorical[0]:
            ticks = _tick_positions(len(x))
            ax.set_xticks(ticks, [_fmt(pd.grid_labels[0][i]) for i in ticks], rotation=45, ha="right")
        ax.set_xlabel(pd.features[0])
        ax.set_ylabel(pd.output)
        ax.legend()
    if title:
        ax.set_title("partial dependence")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _tick_positions(n: int, most: int = 10) -> np.ndarray:
    """Every ``n // most``-th of ``n`` axis positions: a label for each of 300 store ids would overlap into
    a smear, so about ``most`` to 2 * ``most`` are labelled.

    >>> from pipekit.inspection.explain import _tick_positions
    >>> _tick_positions(5).tolist(), _tick_positions(346)[:3].tolist(), len(_tick_positions(346))
    ([0, 1, 2, 3, 4], [0, 34, 68], 11)
    """
    return np.arange(0, n, max(1, n // most))


# --------------------------------------------------------------------------------------------- waterfall
def waterfall_plot(contributions: Contributions, row: int = 0, cls: Any = None, top: int = 10,
                   path: str | Path | None = None) -> Path | None:
    """Bias, then each feature's contribution (largest ``top``, the rest summed as "other"), ending at the
    prediction of one row: the book's tree-interpreter waterfall. ``contributions``: from
    ``pipekit.inspection.contributions(model, data)`` (or a tree model's ``contributions``). ``cls`` picks the class (label) for
    classification (default: the last class; for a two-class GBM's log-odds, the first class gives the same
    log-odds negated); a label the model does not know is refused with the labels it knows. A regression's raw
    scores (a GBM with a ``poisson``, ``gamma`` or ``tweedie`` objective: the log of the predicted value) are
    titled and ended as a raw score, not as the value.

    Example:
        >>> import tempfile, numpy as np, polars as pl
        >>> from pathlib import Path
        >>> from pipekit.backends import GBM, as_data
        >>> from pipekit.inspection import waterfall_plot
        >>> xs = pl.DataFrame({"a": np.random.default_rng(0).normal(size=200)})
        >>> gbm = GBM("classification", n_estimators=10, n_jobs=1).fit(as_data(xs, y=np.where(xs["a"] > 0, "yes", "no")))
        >>> out = Path(tempfile.mkdtemp()) / "waterfall.png"
        >>> waterfall_plot(gbm.contributions(xs[:3]), row=0, cls="no", path=out).name
        'waterfall.png'
    """
    c = contributions
    if not isinstance(c, Contributions):
        raise ParameterError(f"waterfall_plot takes the per-row contributions of a model, got "
                             f"{type(c).__name__}; pass waterfall_plot(contributions(model, data), row=0) "
                             "(pipekit.inspection.contributions)")
    if not 0 <= row < len(c.values):
        raise ParameterError(f"row={row} is out of range for {len(c.values)} rows")
    values, bias, pred, label = c.for_class(row, cls)
    title, ending = c.space, "prediction"
    if label is not None:
        raw_two = c.space == "raw_score" and c.values.ndim == 2
        title = f"raw score (log-odds) of class {label}" if raw_two else f"{c.space} of class {label}"
    elif c.space == "raw_score":  # a regression whose objective has a link (a GBM's poisson, gamma, tweedie)
        title, ending = "raw score (log of the prediction; log-odds for cross_entropy)", "raw score"
    order = np.argsort(-np.abs(values))
    shown = order[:top]
    names = [c.feature_names[i] for i in shown]
    steps = list(values[shown])
    if len(order) > top:
        names.append("other")
        steps.append(float(values[order[top:]].sum()))
    plt = get_pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(steps) + 1.5))
    start = float(bias)
    ax.barh(0, start, color="lightgray")
    ylabels = ["bias"]
    ax.text(start, 0, f" {start:.3g}", va="center", fontsize=8)
    for i, (nme, v) in enumerate(zip(names, steps), start=1):
        ax.barh(i, v, left=start, color="tab:green" if v >= 0 else "tab:red")
        ax.text(max(start, start + v), i, f" {v:+.3g}", va="center", fontsize=8)
        ylabels.append(nme)
        start += v
    ax.barh(len(steps) + 1, start, color="tab:blue")
    path_values = float(bias) + np.concatenate([[0.0], np.cumsum(steps)])
    lo, hi = float(path_values.min()), float(path_values.max())
    pad = 0.25 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1e-3)
    # zoom on where the contributions happen; a large bias would otherwise squash them to slivers
    ax.set_xlim(min(lo - pad, 0.0) if lo - pad < 0 < hi + pad else lo - pad, hi + pad)
    if ax.get_xlim()[0] <= 0 <= ax.get_xlim()[1]:
        ax.axvline(0, color="black", lw=0.5)
    ylabels.append(f"{ending} {float(np.ravel(pred)[0]) if np.ndim(pred) else float(pred):.3g}")
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.invert_yaxis()
    ax.set_title(title)
    return savefig_or_show(fig, path, name="waterfall")
