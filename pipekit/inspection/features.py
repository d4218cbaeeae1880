"""Which columns matter, which are redundant, and which give away the split: Spearman column clusters,
``drop_redundant``, adversarial validation (``out_of_domain``) and ``prune_features``.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
    >>> cluster_columns(train, plot=False).pairs(0.5).height
    0
    >>> ood = out_of_domain(train, valid, n_estimators=20, n_jobs=1)
    >>> bool(0.3 < ood.auc < 0.7)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.backends.base import Model
from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.backends.forest import RandomForest, trees_leaving_out
from pipekit.core.component import Component
from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.core.validate import Interval, check
from pipekit.inspection.explain import (FittedEstimator, _raw_columns, estimator_inputs, fitted_estimator,
                                       importance_frame, split_rows)
from pipekit.data.plotting import get_pyplot, savefig_or_show
from pipekit.metrics import get_metric


@dataclass
class ColumnClusters:
    """Spearman rank correlations between input columns and their average-linkage clustering.

    >>> import numpy as np, polars as pl
    >>> from pipekit.inspection import cluster_columns
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=100)
    >>> xs = pl.DataFrame({"a": a, "a2": 2 * a + 1, "noise": rng.normal(size=100)})
    >>> cc = cluster_columns(xs, plot=False)       # plot=True (the default) draws the dendrogram
    >>> cc.columns, cc.correlation.shape, round(float(cc.correlation[0, 1]), 4)
    (['a', 'a2', 'noise'], (3, 3), 1.0)
    """

    columns: list[str]
    correlation: np.ndarray
    linkage: np.ndarray
    #: columns left out because they hold one value only (they correlate with nothing)
    constant: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        """A summary (the arrays are ``correlation`` and ``linkage``): how many columns, the closest pairs."""
        pairs = self.pairs()
        close = ", ".join(f"{a}~{b} ({r:+.2f})" for a, b, r in pairs.head(5).iter_rows())
        more = f", +{pairs.height - 5} more" if pairs.height > 5 else ""
        return (f"ColumnClusters({len(self.columns)} columns, {pairs.height} pair(s) with |spearman| >= 0.8"
                f"{': ' + close + more if close else ''}"
                f"{f'; constant, left out: {self.constant}' if self.constant else ''})")

    def candidates(self, threshold: float = 0.8) -> list[str]:
        """The columns of the pairs at ``threshold`` (each once, closest pairs first): what
        :func:`drop_redundant` tries dropping by default.

        >>> x = np.arange(50.0)
        >>> c = cluster_columns(as_data(pl.DataFrame({"a": x, "a2": x ** 2, "b": np.sin(x)}), y=x), plot=False)
        >>> c.candidates(), c
        (['a', 'a2'], ColumnClusters(3 columns, 1 pair(s) with |spearman| >= 0.8: a~a2 (+1.00)))
        """
        pairs = self.pairs(threshold)
        return list(dict.fromkeys(c for a, b in zip(pairs["column_a"], pairs["column_b"]) for c in (a, b)))

    def pairs(self, threshold: float = 0.8) -> pl.DataFrame:
        """Column pairs whose absolute rank correlation is at least ``threshold`` (candidates to drop)."""
        i, j = np.triu_indices(len(self.columns), k=1)
        r = np.abs(self.correlation[i, j])
        keep = r >= threshold
        return pl.DataFrame({"column_a": [self.columns[k] for k in i[keep]],
                             "column_b": [self.columns[k] for k in j[keep]],
                             "spearman": self.correlation[i[keep], j[keep]]}).sort(
            pl.col("spearman").abs(), descending=True)


def _spearman(X: np.ndarray) -> np.ndarray:
    """Spearman rank correlations between the columns of ``X``; NaNs are left out pair by pair (NaN for a
    pair too short or constant to rank)."""
    if np.isnan(X).any():
        import pandas as pd

        return pd.DataFrame(X).corr(method="spearman").to_numpy()
    from scipy.stats import rankdata

    return np.atleast_2d(np.corrcoef(rankdata(X, axis=0), rowvar=False))


_DROP_IT = "drop the column from the rows, or turn it into numbers"


def _rows(data: Any, fn: str) -> TabularData:
    """``data`` as :class:`TabularData`: a Tabular's split or ``TabularData`` as :func:`as_data` reads it; raw rows
    (a pandas or Polars frame, a pyarrow table, a 2-d array) as the scikit-learn estimators read them
    (:func:`~pipekit.sklearn.frames.as_frame`: a pandas column mixing numbers and text is text), named as given
    (an array's columns ``x0, x1, ...``). Rows without a row or a column are read as they are, for the caller
    to say what it needs of them."""
    import pyarrow as pa

    from pipekit.core.validate import is_pandas
    from pipekit.sklearn.frames import as_frame, default_columns

    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if is_pandas(data, "DataFrame"):
        if not all(isinstance(c, str) for c in data.columns):
            # each column under its label as text (the "0" of a column labelled 0), as _raw_columns and _without
            # name the rows given to an estimator
            data = data.set_axis([str(c) for c in data.columns], axis=1)
    elif not isinstance(data, (pa.Table, pa.RecordBatch, np.ndarray)):
        return as_data(data)  # a Polars frame as it is, a Tabular's split, TabularData
    if getattr(data, "ndim", 2) == 2 and 0 in data.shape:  # as_frame refuses these: read as they are
        names = default_columns(data.shape[1]) if isinstance(data, np.ndarray) else None
        return as_data(pl.DataFrame(data, schema=names, orient="row"))
    return as_data(as_frame(data, fn))


def _as_numbers(d: TabularData, fn: str, fix: str) -> TabularData:
    """``d`` with every input a number, each column under its own name: text, categories and True/False as
    ``Categorify``'s codes (0 for a missing one; text and True/False in sorted order, a Polars ``Enum`` or pandas
    category column in its own category order, as the book's ordered ``ProductSize``), dates (and text holding
    only ISO dates) as their ``Elapsed`` seconds, as the scikit-learn estimators' procs read those columns (their
    roles from :func:`~pipekit.sklearn.frames.column_roles`). A processed split, all numbers, is returned as it
    is. A column of another kind (lists, structs, durations) is refused, naming it and ``fix``."""
    schema = d.xs.schema
    other = [c for c, t in schema.items() if not t.is_numeric()]
    if not other:
        return d
    from pipekit.sklearn.frames import column_roles, date_parts
    from pipekit.tabular.procs import Categorify, ColumnNames

    for c in other:
        t = schema[c]
        if not (t in (pl.String, pl.Boolean, pl.Date, pl.Null) or isinstance(t, (pl.Categorical, pl.Enum, pl.Datetime))):
            raise DataError(f"{fn}: column {c!r} holds {t} values, which are neither numbers, text, categories nor "
                            f"dates and cannot be ranked; {fix}")
    cats, empty, dates = column_roles(d.xs.select(other), None, None, None)
    xs = d.xs.with_columns(pl.col(c).cast(pl.Float64) for c in empty)  # no value at all: missing numbers
    if cats:
        codes = Categorify()
        codes.setup(xs, pl.lit(True), ColumnNames(list(cats), []))
        xs = xs.with_columns(codes.expressions(xs.schema, eager=True))
    if dates:
        parts, _, _ = date_parts(xs.select(dates), dates, times=[])
        xs = xs.with_columns(parts.get_column(f"{c}_Elapsed").cast(pl.Float64).alias(c) for c in dates)
    return replace(d, xs=xs, cat_names=tuple(dict.fromkeys([*d.cat_names, *cats])))


def cluster_columns(data: Any, max_rows: int = 20000, seed: int = 0, path: str | Path | None = None,
                    plot: bool = True) -> ColumnClusters:
    """Spearman rank-correlation dendrogram of the input columns (columns that merge near the right edge
    hold the same information). Uses up to ``max_rows`` sampled rows; the plot is written to ``path`` (PNG
    when headless).

    ``data``: a Tabular's split (``tab.train``), or raw rows as a scikit-learn estimator's ``fit`` takes them (a
    pandas or Polars frame, a 2-d array): their text, category and True/False columns are ranked by their
    codes (``Categorify``'s: text and True/False in sorted order, a Polars ``Enum`` or pandas category column in
    its own category order, so an ordered ``ProductSize`` ranks in the order declared) and their date columns by
    time, each under its own name.

    A column holding a single value in the rows used (Rossmann's ``Open`` once closed days are dropped)
    has no rank correlation with anything: it is left out of the clusters, named in a warning and in
    ``ColumnClusters.constant``.

    Example:
        >>> import numpy as np, polars as pl
        >>> from pipekit.backends import as_data
        >>> x = np.arange(50.0)
        >>> xs = pl.DataFrame({"a": x, "a2": x ** 2, "b": np.sin(x)})
        >>> cluster_columns(as_data(xs, y=x), plot=False).pairs(0.99)["column_a"].to_list()
        ['a']
        >>> raw = pl.DataFrame({"size": ["S", "M", "L", "M"] * 10, "code": ["s", "m", "l", "m"] * 10,
        ...                     "day": ["2015-07-01", "2015-07-02", "2015-07-03", "2015-07-04"] * 10})
        >>> cluster_columns(raw, plot=False).pairs(0.99)[["column_a", "column_b"]].row(0)
        ('size', 'code')
    """
    return _cluster(data, max_rows, seed, path, plot, "cluster_columns", _DROP_IT)


def _cluster(data: Any, max_rows: int, seed: int, path: str | Path | None, plot: bool, fn: str,
             fix: str) -> ColumnClusters:
    """:func:`cluster_columns` for ``fn``; ``fix``: what to do about a column that cannot be ranked."""
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    d = _rows(data, fn)
    if d.xs.width < 2:
        raise DataError(f"{fn} needs at least 2 columns, got {d.feature_names}")
    if len(d) == 0:
        raise DataError(f"{fn}: the rows are empty (0 rows of columns {d.feature_names[:20]}); rank correlations "
                        "need rows: pass the rows of the split")
    if len(d) > max_rows:
        d = d.take(np.sort(np.random.default_rng(seed).choice(len(d), max_rows, replace=False)))
    d = _as_numbers(d, fn, fix)
    X = d.matrix(d.feature_names, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    const = ~(lo < hi)  # one distinct value, or none (all missing)
    constant = [c for c, k in zip(d.feature_names, const) if k]
    columns = [c for c, k in zip(d.feature_names, const) if not k]
    if constant:
        warn(f"{fn}: left out {len(constant)} column(s) holding a single value in the "
             f"{len(d)} rows used, which correlate with nothing: {constant}")
    if len(columns) < 2:
        raise DataError(f"{fn} needs at least 2 columns that vary; only {columns} vary "
                         f"(constant: {constant})")
    corr = _spearman(X[:, ~const])
    corr = np.where(np.isnan(corr), 0.0, corr)
    np.fill_diagonal(corr, 1.0)
    corr = (corr + corr.T) / 2
    dist = squareform(np.clip(1 - np.abs(corr), 0, None), checks=False)
    z = hierarchy.linkage(dist, method="average")
    if plot:
        plt = get_pyplot()
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(columns) + 1.5))
        hierarchy.dendrogram(z, labels=columns, orientation="left", ax=ax, leaf_font_size=9)
        ax.set_xlabel("1 - |Spearman rank correlation|")
        ax.set_title("column clusters" + (f" ({len(constant)} constant left out)" if constant else ""))
        savefig_or_show(fig, path, name="cluster_columns")
    return ColumnClusters(columns=columns, correlation=corr, linkage=z, constant=constant)


def _score(model: Model, train: TabularData, valid: TabularData | None, metric: Any) -> float:
    """``metric`` on ``valid``, or on a forest's out-of-bag predictions of ``train`` (rows no tree left out are
    skipped, as ``oob_score_`` skips them)."""
    if valid is not None:
        return model.score(valid, metric)
    oob = getattr(model, "oob_predictions_", None) if isinstance(model, RandomForest) else None
    if oob is not None:
        return _oob_score(oob, model.encode_y(train.y), metric)
    raise ParameterError("no valid split given and the model has no out-of-bag score (a RandomForest with "
                         "oob_score=True); pass valid=")


def _oob_score(oob: np.ndarray, y_enc: np.ndarray, metric: Any) -> float:
    """``metric`` on out-of-bag predictions, leaving out the rows no tree left out (as ``oob_score_`` does)."""
    keep = ~np.isnan(oob).any(1) if oob.ndim == 2 else ~np.isnan(oob)
    return float(metric.score(y_enc[keep], oob[keep]))


def _labelled(obj: Any, fn: str, est: FittedEstimator) -> tuple[Any, list[str], np.ndarray]:
    """Rows and targets for the scikit-learn estimator ``est``: a labelled split of a Tabular (``tab.train``, its
    processed inputs, and its targets as the estimator knows them, see
    :func:`~pipekit.inspection.explain.split_rows`) or an ``(X, y)`` pair of raw rows as given to its ``fit``. An
    estimator fitted on named columns is given those columns, in its order
    (:func:`~pipekit.inspection.explain.estimator_inputs`): the book's forest of some of the columns,
    ``m.fit(xs[keep], y)``, is read on the Tabular's splits."""
    X, names, y = _rows_and_targets(obj, fn, est.who, est.classes)
    X, names = estimator_inputs(X, names, est.model, fn)
    return X, names, y


def _rows_and_targets(obj: Any, fn: str, who: str, classes: np.ndarray | None) -> tuple[Any, list[str], np.ndarray]:
    if isinstance(obj, tuple) and len(obj) == 2:
        X, names = _raw_columns(obj[0], who, fn)
        y = obj[1]
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y).reshape(-1)
        if len(y) != len(X):
            raise DataError(f"{fn}: X has {len(X)} rows but y has {len(y)}")
        return X, names, y
    try:
        X, names, y = split_rows(obj, classes)
    except ParameterError:
        y = None
    if y is None:
        raise ParameterError(f"{fn}: {who} is a scikit-learn estimator; pass labelled rows: a Tabular's split "
                             f"(tab.train, tab.valid) or an (X, y) pair, got {type(obj).__name__} without targets")
    return X, names, y


def _without(X: Any, names: list[str], cols: Sequence[str]) -> Any:
    """The rows ``X`` without the columns ``cols``."""
    if isinstance(X, pl.DataFrame):
        return X.drop(list(cols))
    if isinstance(X, np.ndarray):
        at = {n: j for j, n in enumerate(names)}  # one lookup per column dropped, not a search of the names
        return np.delete(X, [at[c] for c in cols], axis=1)
    dropped = set(cols)
    return X.drop(columns=[k for k in X.columns if str(k) in dropped])


class _EstimatorRefits:
    """Copies of a fitted scikit-learn estimator (``sklearn.base.clone``) fitted on some of the columns of
    ``train`` and scored on ``valid`` (or out of bag, for a forest with ``oob_score=True``)."""

    def __init__(self, model: Any, train: Any, valid: Any, metric: Any, fn: str) -> None:
        self.est = fitted_estimator(model, fn)
        self.fn = fn
        X, names, y = _rows_and_targets(train, fn, self.est.who, self.est.classes)
        self.split_columns = names  # the split's columns: the estimator may read some of them
        self.train = (*estimator_inputs(X, names, self.est.model, fn), y)
        self.valid = None if valid is None else _labelled(valid, fn, self.est)
        self.metric = get_metric(metric, self.est.task, self.est.classes)
        # targets encoded once per split: every refit learns the same classes from the same train targets
        self._encoded: dict[tuple, np.ndarray] = {}

    def _targets(self, split: str, y: Any, est: FittedEstimator) -> np.ndarray:
        key = (split, None if est.classes is None else tuple(est.classes.tolist()))
        if key not in self._encoded:
            self._encoded[key] = encode_y(y, est.task, est.classes)
        return self._encoded[key]

    def check_columns(self, columns: Sequence[str], given: str = "columns=") -> None:
        """Refuse ``columns`` (what the caller's argument ``given`` names) that the model does not read."""
        names = self.train[1]
        unread = [c for c in columns if c not in names and c in self.split_columns]
        if unread:  # a model fitted on some of the split's columns (m.fit(xs[keep], y))
            raise DataError(f"{self.fn}: {self.est.who} was fitted without {unread} (it reads {names[:20]}); "
                            f"{given} must name columns the model reads")
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{self.fn}: columns {missing} missing from the data (its columns: {names[:20]})")

    def refit(self, cols: Sequence[str]) -> FittedEstimator:
        from sklearn.base import clone

        X, names, y = self.train
        return fitted_estimator(clone(self.est.model).fit(_without(X, names, cols), y), self.fn)

    def score(self, est: FittedEstimator, cols: Sequence[str]) -> float:
        """The score (not the loss) of ``est``, fitted without ``cols``."""
        if self.valid is not None:
            X, names, y = self.valid
            return float(self.metric.score(self._targets("valid", y, est), est.predict(_without(X, names, cols))))
        oob = getattr(est.model, "oob_decision_function_" if est.task == "classification" else "oob_prediction_",
                      None)
        if oob is None:
            raise ParameterError(f"{self.fn}: no valid split given and {est.who} has no out-of-bag predictions (a "
                                 "forest with oob_score=True); pass valid=")
        oob = np.array(oob, dtype=np.float64)
        oob[trees_leaving_out(est.model, len(oob)) == 0] = np.nan
        return _oob_score(oob, self._targets("train", self.train[2], est), self.metric)


def refit(model: Model, train: TabularData, valid: TabularData | None = None,
          select: TabularData | None = None) -> Model:
    """An unfitted copy of ``model`` fitted on ``train`` (the columns it holds): what ``drop_redundant`` and
    ``prune_features`` score. A backend is fitted as it was: with ``fit(train, valid)`` when it was fitted with a
    valid split (``valid_score_`` set; a GBM stops early on it) or is not fitted yet, else with ``fit(train)``, so
    a GBM fitted on its training rows alone is not stopped early on ``valid``. An ensemble is rebuilt the way it
    was made: each member is refitted in turn (a copy, on the columns of ``train`` it used, as that member was
    fitted), then

    - a ``MeanEnsemble`` averages them (scoring them on ``select`` when given);
    - a ``WeightedEnsemble`` chooses its weights again where it chose them: on the members' out-of-fold
      predictions (``fit()``) when it was selected on them, else on ``select``, the labelled split the
      members were not fitted on;
    - a ``StackingEnsemble`` fits its meta-model again on ``train``.

    A ``WeightedEnsemble`` given weights through ``fit_predictions`` cannot be refitted: the predictions it
    was given are not known here (refit its members and call ``fit_predictions`` again).

    Example:
        >>> import numpy as np, polars as pl
        >>> from pipekit.backends import GBM, RandomForest, as_data
        >>> from pipekit.ensemble import WeightedEnsemble
        >>> rng = np.random.default_rng(0)
        >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
        >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
        >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
        >>> ens = WeightedEnsemble([RandomForest("classification", n_estimators=10, n_jobs=1).fit(train),
        ...                         GBM("classification", n_estimators=20, n_jobs=1).fit(train)]).fit(valid)
        >>> small = refit(ens, train.drop(["noise"]), select=valid.drop(["noise"]))
        >>> [m.feature_names_ for m in small.members], float(small.weights_.sum())
        ([['a', 'b'], ['a', 'b']], 1.0)
    """
    from pipekit.ensemble.bagged import BaggedModel
    from pipekit.ensemble.base import Ensemble, member_name
    from pipekit.ensemble.mean import MeanEnsemble
    from pipekit.ensemble.stacking import StackingEnsemble
    from pipekit.ensemble.weighted import WeightedEnsemble

    if not isinstance(model, Component):
        raise ParameterError(f"{type(model).__name__} has no clone(), so it cannot be refitted on other columns; "
                             "pass a pipekit model (a backend or an ensemble of them)")
    if not isinstance(model, Ensemble):
        fitted_alone = model.is_fitted and getattr(model, "valid_score_", None) is None
        return model.clone().fit(train, None if fitted_alone else valid)  # type: ignore[attr-defined]
    if not isinstance(model, (MeanEnsemble, WeightedEnsemble, StackingEnsemble)):
        raise ParameterError(f"{type(model).__name__} cannot be refitted on other columns here; pass a "
                             "MeanEnsemble, WeightedEnsemble or StackingEnsemble of the same members")
    on = None
    if isinstance(model, WeightedEnsemble):
        on = vars(model).get("selected_on_")
        if on == "predictions":
            raise ParameterError("this WeightedEnsemble got its weights from fit_predictions, on predictions that "
                                 "cannot be made again here; pass an ensemble selected with fit(valid), or with "
                                 "fit() on bagged members")
        if on is None:  # not fitted yet: bagged members choose on their out-of-fold predictions
            bagged = all(isinstance(m, BaggedModel) for m in model.members)
            on = "out_of_fold" if bagged and select is None else "data"
        if on == "data" and select is None:
            raise ParameterError("this WeightedEnsemble chooses its weights on a labelled split; pass valid= (rows "
                                 "its members were not fitted on) to choose them again")
    fitted = [not isinstance(m, Component) or m.is_fitted for m in model.members]
    if isinstance(model, StackingEnsemble) and not any(fitted):
        return model.clone().fit(train, valid)  # it fits its members itself
    members = []
    for i, m in enumerate(model.members):
        if not fitted[i]:
            members.append(m.clone())
            continue
        used = vars(m).get("feature_names_")
        # a member fitted on some of the columns (check_columns=False) keeps to them
        gone = [] if used is None else [c for c in train.feature_names if c not in used]
        try:
            members.append(refit(m, train.drop(gone), None if valid is None else valid.drop(gone),
                                 None if select is None else select.drop(gone)))
        except ParameterError as e:
            raise ParameterError(f"member {member_name(m, i)}: {e}") from None
    new = model.clone().set_params(members=members)
    if isinstance(new, StackingEnsemble):
        return new.fit(train, valid)
    if isinstance(new, WeightedEnsemble):
        return new.fit(select if on == "data" else None)
    return new.fit(select)  # MeanEnsemble: scored on select, when given


def drop_redundant(model: Model, train: Any, valid: Any = None, columns: Sequence[str] | None = None,
                   metric: Any = None, threshold: float = 0.8) -> pl.DataFrame:
    """Refit an unfitted copy of ``model`` without each of ``columns`` in turn (and without all of them),
    reporting the score (``metric`` on ``valid``, or on a forest's out-of-bag predictions when ``valid`` is None)
    and its change from keeping everything. A column whose removal does not hurt is redundant. An ensemble is
    refitted as :func:`refit` does, its weights chosen again on ``valid`` where they were chosen on a split.

    A pipekit model is refitted as it was fitted (:func:`refit`): on ``train``, with ``valid`` as its valid split
    where it was fitted with one (a GBM stops early on it), each split without the same columns; the score with
    every column is then the model's own.

    ``columns`` defaults to the columns of the redundant pairs of ``train`` (``cluster_columns(train)
    .candidates(threshold)``: rank correlation at least ``threshold``, raw rows' text and dates ranked as
    :func:`cluster_columns` ranks them), as in the book; dropping all of them
    at once would drop both of a pair, so that row is made only for columns given. No pair that close: only
    the score with every column is reported, with a warning.

    ``model`` may also be a fitted scikit-learn estimator (a forest fitted on ``tab.train.xs``,
    ``TabularRegressor``): copies of it (``sklearn.base.clone``) are fitted on ``train`` and scored on
    ``valid``, each a Tabular's labelled split or an ``(X, y)`` pair of the rows its ``fit`` takes; without
    ``valid``, on the out-of-bag predictions of a forest made with ``oob_score=True``. The default metric is
    accuracy (classifiers) or rmse.

    Returns a frame with columns ``dropped``, ``score``, ``change`` (positive = better without it).

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.inspection import drop_redundant
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=120)
    >>> xs = pl.DataFrame({"a": a, "a_copy": a + 0.01 * rng.normal(size=120), "noise": rng.normal(size=120)})
    >>> data = as_data(xs, y=3 * a)
    >>> train, valid = data.take(np.arange(80)), data.take(np.arange(80, 120))
    >>> report = drop_redundant(RandomForest("regression", n_estimators=5, n_jobs=1), train, valid)
    >>> report.columns, report["dropped"].to_list()  # the close pair found by itself, each column dropped in turn
    (['dropped', 'score', 'change'], ['(none)', 'a', 'a_copy'])
    """
    check("drop_redundant", threshold=(threshold, Interval(0, 1, closed="right")))
    sk = None if isinstance(model, Model) else _EstimatorRefits(model, train, valid, metric, "drop_redundant")
    tr = as_data(train) if sk is None else None
    va = as_data(valid) if valid is not None and sk is None else None
    given = columns is not None
    if columns is None:
        columns = _cluster(sk.train[0] if tr is None else tr, 20000, 0, None, False, "drop_redundant",
                           "pass columns= naming the columns to try dropping").candidates(threshold)
        if not columns:
            warn(f"drop_redundant: no two columns have a rank correlation of {threshold} or more; nothing "
                 "to try dropping (lower threshold= or pass columns=)")
    elif isinstance(columns, str) or not columns:
        raise ParameterError(f"drop_redundant: columns must be a list naming at least one column to try dropping "
                             f"(or None for the redundant pairs' columns), got {columns!r}")
    if tr is None:
        assert sk is not None
        sk.check_columns(columns)
        m = sk.metric
    else:
        tr.check_columns(columns)
        m = model.scoring_metric(metric)
    sign = 1.0 if m.greater_is_better else -1.0

    def score_without(cols: list[str]) -> float:
        if tr is None:
            assert sk is not None
            return sk.score(sk.refit(cols), cols)
        # fitted as the model was (with the valid split where it had one), without the same columns
        without = None if va is None else va.drop(cols)
        fitted = refit(model, tr.drop(cols), without, select=without)
        return _score(fitted, tr, va, m)

    base = score_without([])
    rows = [("(none)", base)] + [(c, score_without([c])) for c in columns]
    if given and len(columns) > 1:
        rows.append(("+".join(columns), score_without(list(columns))))
    return pl.DataFrame({"dropped": [r[0] for r in rows], "score": [float(r[1]) for r in rows],
                         "change": [sign * (float(r[1]) - base) + 0.0 for r in rows]})


@dataclass
class OutOfDomain:
    """Adversarial validation result: ``auc`` of a forest telling valid rows from train rows (0.5 = the
    sets look alike; near 1 = something, often time, separates them), the columns it leaned on most
    (``importance``), and the fitted forest.

    >>> import numpy as np, polars as pl
    >>> from pipekit.inspection import out_of_domain
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"x": rng.normal(size=150), "y": rng.normal(size=150)})
    >>> ood = out_of_domain(xs.head(100), xs.tail(50), n_estimators=10, n_jobs=1)  # a random split: alike
    >>> type(ood).__name__, ood.auc < 0.7, sorted(ood.importance["feature"].to_list())
    ('OutOfDomain', True, ['x', 'y'])
    """

    auc: float
    importance: pl.DataFrame
    model: RandomForest

    def separating(self, top: int = 5) -> list[str]:
        return self.importance["feature"].head(top).to_list()


def out_of_domain(train: Any, valid: Any, n_estimators: int = 40, min_samples_leaf: int = 15,
                  max_rows: int | None = 50000, seed: int = 0, n_jobs: int | None = -1) -> OutOfDomain:
    """Adversarial validation: can a random forest tell whether a row comes from ``valid``? The AUC is
    computed on out-of-bag predictions (honest, no extra split); the importance names the columns that
    differ between the sets (the book's saleElapsed / SalesID finding).

    ``train`` and ``valid``: a Tabular's splits, or raw rows as a scikit-learn estimator's ``fit`` takes them (a
    pandas or Polars frame, a 2-d array): their text, category and True/False columns are coded (``Categorify``'s
    codes, learned on both sets together) and their dates read as time, each under its own name.

    >>> import numpy as np, polars as pl
    >>> from pipekit.inspection import out_of_domain
    >>> rng = np.random.default_rng(0)
    >>> train = pl.DataFrame({"day": np.arange(100.0), "x": rng.normal(size=100)})
    >>> valid = pl.DataFrame({"day": np.arange(100.0, 150.0), "x": rng.normal(size=50)})  # later days
    >>> ood = out_of_domain(train, valid, n_estimators=10, n_jobs=1)
    >>> ood.auc > 0.9, ood.separating(1)
    (True, ['day'])
    """
    from sklearn.metrics import roc_auc_score

    tr, va = _rows(train, "out_of_domain"), _rows(valid, "out_of_domain")
    if len(tr) == 0 or len(va) == 0:
        raise DataError(f"out_of_domain needs rows in both sets; got {len(tr)} train and {len(va)} valid")
    if tr.xs.width == 0:
        raise DataError("out_of_domain needs at least one column to tell the sets apart by; the train rows have none")
    va.check_columns(tr.feature_names, "train columns")
    rng = np.random.default_rng(seed)
    if max_rows is not None:
        if len(tr) > max_rows:
            tr = tr.take(np.sort(rng.choice(len(tr), max_rows, replace=False)))
        if len(va) > max_rows:
            va = va.take(np.sort(rng.choice(len(va), max_rows, replace=False)))
    try:
        xs = pl.concat(_common_categories(tr.xs, va.xs.select(tr.feature_names)), how="vertical_relaxed")
    except (pl.exceptions.SchemaError, pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
        a, b = tr.xs.schema, va.xs.schema
        raise DataError(f"out_of_domain: columns hold values of other types in train and valid: "
                        f"{[(c, a[c], b[c]) for c in tr.feature_names if a[c] != b[c]][:5]}; give both sets each "
                        "column in one type") from None
    is_valid = np.r_[np.zeros(len(tr), bool), np.ones(len(va), bool)]
    # raw rows' text and dates coded once for both sets, so a value seen in one set only still differs
    both = _as_numbers(TabularData(xs=xs, y=is_valid, cat_names=tr.cat_names), "out_of_domain", _DROP_IT)
    rf = RandomForest("classification", n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                      oob_score=True, n_jobs=n_jobs, seed=seed).fit(both)
    oob = rf.oob_predictions_
    keep = ~np.isnan(oob).any(1)
    auc = float(roc_auc_score(is_valid[keep], oob[keep, 1]))
    return OutOfDomain(auc=auc, importance=rf.feature_importance(), model=rf)


def _common_categories(a: pl.DataFrame, b: pl.DataFrame) -> list[pl.DataFrame]:
    """``a`` and ``b`` (the same columns) with each category column whose categories differ between them in one
    type: two ``Enum`` columns (a pandas category column each set made of its own values) as one ``Enum`` of the
    categories of ``a`` then those only ``b`` holds, in their order; an ``Enum`` and a ``Categorical`` or text as
    text. Their codes are then learned on both sets together."""
    kinds = (pl.Categorical, pl.Enum)
    ta, tb = a.schema, b.schema
    common: dict[str, pl.DataType] = {}
    for c in a.columns:
        x, y = ta[c], tb[c]
        if x == y or not (isinstance(x, kinds) or isinstance(y, kinds)):
            continue
        if isinstance(x, pl.Enum) and isinstance(y, pl.Enum):
            common[c] = pl.Enum(list(dict.fromkeys([*x.categories.to_list(), *y.categories.to_list()])))
        elif all(isinstance(t, kinds) or t == pl.String for t in (x, y)):
            common[c] = pl.String()
    if not common:
        return [a, b]
    return [f.with_columns(pl.col(c).cast(t) for c, t in common.items()) for f in (a, b)]


@dataclass
class PrunedFeatures:
    """Result of :func:`prune_features`: ``model`` refitted on ``kept``; scores before/after on valid.

    >>> from pipekit.inspection import PrunedFeatures
    >>> p = PrunedFeatures(kept=["age", "hours"], dropped=["id"], score_before=0.8512, score_after=0.8534, model=None)
    >>> print(p)
    kept 2 / dropped 1 columns ['id']: score 0.8512 -> 0.8534
    """

    kept: list[str]
    dropped: list[str]
    score_before: float
    score_after: float
    model: Any

    def __str__(self) -> str:
        return (f"kept {len(self.kept)} / dropped {len(self.dropped)} columns {self.dropped}: score "
                f"{self.score_before:.4f} -> {self.score_after:.4f}")


def prune_features(model: Model, train: Any, valid: Any, threshold: float = 0.005, metric: Any = None,
                   importance: pl.DataFrame | None = None) -> PrunedFeatures:
    """Drop the columns whose importance share (importance / total) is below ``threshold``, refit a copy of
    the fitted ``model`` on the rest and report the valid score before and after (the book keeps columns
    with importance > 0.005 and sees the score hold). ``importance`` defaults to the model's own
    ``feature_importance()``; pass a ``permutation_importance`` frame for models without one (an ensemble,
    the tabular net). An ensemble is refitted as :func:`refit` does, its weights chosen again on ``valid``
    where they were chosen on a split. A fitted scikit-learn estimator is refitted as :func:`drop_redundant`
    refits one (``train``/``valid``: Tabular splits or ``(X, y)`` pairs), ranked by its ``feature_importances_``
    unless ``importance`` is given; ``model`` is then the refitted estimator.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.inspection import prune_features
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=120), "zero": np.zeros(120)})
    >>> data = as_data(xs, y=3 * xs["a"].to_numpy())
    >>> train, valid = data.take(np.arange(80)), data.take(np.arange(80, 120))
    >>> rf = RandomForest("regression", n_estimators=5, n_jobs=1).fit(train)
    >>> p = prune_features(rf, train, valid)
    >>> p.kept, p.dropped, p.model.feature_names_
    (['a'], ['zero'], ['a'])
    """
    check("prune_features", threshold=(threshold, Interval(0, 1, closed="left")))
    sk = None if isinstance(model, Model) else _EstimatorRefits(model, train, valid, metric, "prune_features")
    if sk is None:
        tr, va = as_data(train), as_data(valid)
        imp = importance if importance is not None else model.feature_importance()
    else:  # its feature_importances_, as plot_importance reads them
        imp = importance_frame(importance if importance is not None else model)
    values = np.clip(imp["importance"].to_numpy().astype(np.float64), 0, None)
    total = values.sum()
    if total <= 0:
        raise DataError("every importance is zero or negative; nothing to rank columns by")
    share = values / total
    feats = imp["feature"].to_list()
    kept = [f for f, s in zip(feats, share) if s >= threshold]
    dropped = [f for f, s in zip(feats, share) if s < threshold]
    if not kept:
        raise ParameterError(f"threshold={threshold} drops every column; lower it")
    if sk is not None:
        sk.check_columns(dropped, "importance=")
        fitted = sk.refit(dropped)
        return PrunedFeatures(kept=kept, dropped=dropped, score_before=sk.score(sk.est, []),
                              score_after=sk.score(fitted, dropped), model=fitted.model)
    before = model.score(va, metric)
    refitted = refit(model, tr.drop(dropped), va.drop(dropped), select=va.drop(dropped))
    return PrunedFeatures(kept=kept, dropped=dropped, score_before=before, score_after=refitted.score(va, metric),
                          model=refitted)
