"""``BaggedModel``: any backend fitted k times on k folds of the training rows.

Each fold model is fitted on the other folds and predicts its own fold, so every training row gets an
out-of-fold prediction from a model that never saw it: not in its training rows, and not among the
rows that stopped it early either (a model that stops early, such as a GBM, stops on a seeded
``stop_fraction`` of its own training folds, never on the fold it predicts). New rows get the mean of
the fold models. Folds are seeded and stratified by class for classification; ``n_repeats`` repeats
the k folds with other shuffles and averages each row's out-of-fold predictions. Rows split by time
(``folds="time"``) get contiguous periods instead, in time order (blocked k-fold, not forward chaining: a
period is predicted by models trained on the periods before and after it), so no fold model is scored on a
period it saw any time of (``fit_ensemble`` does so by itself for a Tabular split by a ``TimeSplitter``).

The out-of-fold predictions (``oof_predictions_``), the fold of every row (``folds_``) and the targets
(``oof_targets_``) are kept, so ensembles select weights and stack on training rows only
(``WeightedEnsemble.fit()``, ``StackingEnsemble``), and ``fold_rows`` / ``fold_model`` say exactly how
each fold model was fitted.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> bag = BaggedModel(GBM("classification", n_estimators=50, n_jobs=1), n_folds=3).fit(data)
    >>> bag.oof_predictions_.shape, len(bag.models_), bool(bag.oof_score_ > 0.85)
    ((300, 2), 3, True)
    >>> held = bag.fold_rows(0)[2]                     # rows of fold 0: predicted by the model fitted without them
    >>> bool(np.allclose(bag.models_[0].predict(data.take(held)), bag.oof_predictions_[held]))
    True
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, ClassVar

import numpy as np

from pipekit.backends.base import (NAME, N_JOBS, POSITIVE_INT, TIME_LIMIT, Backend, FoldStop, FoldStopped, Model,
                                   check_valid_split, cores, differing_column)
from pipekit.backends.data import TabularData, as_data, row_hashes, rows_signature
from pipekit.core.component import Component
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import Interval, Is, Options
from pipekit.data.progress import progress_bar, under_bar
from pipekit.data.splitters import stratified_counts, text_times
from pipekit.ensemble.base import align_classes, member_name, no_sample_weight
from pipekit.metrics import get_metric


#: the share of a fold model's training rows held out to stop it early (``BaggedModel``'s ``stop_fraction``)
STOP_FRACTION = 0.1
#: the folds a BaggedModel or fit_ensemble cuts, and the column that orders time folds
FOLD_KINDS = Options("auto", "shuffled", "time")
TIME_COL = Is(lambda c: c is None or isinstance(c, str) and c != "", "None or a column name")


class _OutOfTime(Exception):
    """A refit fold model ran out of its time: the refit ends and the model stays as it was."""


#: the longest a bag waits for its fold models in threads between two looks at Ctrl-C (seconds)
_WAKE = 0.1


def _when_done(futures: list[Future], then: Callable[[], Any]) -> None:
    """Call ``then()`` once all of ``futures`` are done: at once when they are, else in the thread of the last to end."""
    left, lock = [len(futures)], threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            then()

    if not futures:
        then()
    for fut in futures:
        fut.add_done_callback(one_done)


def failure(error: BaseException) -> str:
    """``type: message`` of an error, for a message that names it.

    >>> failure(ValueError("Input contains NaN"))
    'ValueError: Input contains NaN'
    """
    return f"{type(error).__name__}: {error}"


def make_folds(y: np.ndarray, task: str, n_folds: int, seed: int | None,
               order: Any = None, target: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, held_idx)`` for each of ``n_folds`` folds: shuffled and seeded, stratified by class for
    classification (``y``: class indices or values); or, with ``order`` (each row's time: dates, numbers or
    anything that sorts), contiguous periods in time order, fold 0 the earliest, no shuffling (blocked k-fold):
    the rows of one time always share a fold, so a fold model is scored on a period of which it saw no time
    at all (rows from later days predicting earlier ones in the same period would make out-of-fold scores
    optimistic for a model used on later days). The one fold maker of the ensembles; ``target`` (the target
    column's name) is named in the error for a class too rare to fold.

    >>> [len(h) for _, h in make_folds(np.array([0, 1] * 5), "classification", 5, seed=0)]
    [2, 2, 2, 2, 2]
    >>> [h.tolist() for _, h in make_folds(np.zeros(6), "regression", 3, seed=0, order=[5, 5, 3, 2, 1, 0])]
    [[4, 5], [2, 3], [0, 1]]
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(y) < n_folds:
        raise DataError(f"{len(y)} training rows cannot make {n_folds} folds; lower n_folds")
    if order is not None:
        return _time_folds(time_ranks(order, len(y)), n_folds)
    if task == "classification":
        labels, counts = np.unique(y, return_counts=True)
        if counts.min() < n_folds:
            raise RareClassError(labels[counts.argmin()].item(), int(counts.min()), n_folds, target)
        cv: Any = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    else:
        cv = KFold(n_folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y))


def target_name(d: Any) -> str | None:
    """The target column's name of processed rows ``d`` (for messages), or None when they do not say it."""
    names = getattr(getattr(d, "processor", None), "y_names", None)
    return names[0] if isinstance(names, (list, tuple)) and names and isinstance(names[0], str) else None


class RareClassError(DataError):
    """A class of ``rows`` training rows that ``n_folds`` stratified folds cannot hold (:func:`rare_class_error` says
    it); its fields let a caller that took the rows as ``X`` and ``y`` say the fix on those
    (:func:`pipekit.sklearn.fitting.fit_model`)."""

    def __init__(self, label: Any, rows: int, n_folds: int, target: str | None = None):
        super().__init__(rare_class_error(label, rows, n_folds, target))
        self.label, self.rows, self.n_folds = label, rows, n_folds


def rare_class_error(label: Any, rows: int, n_folds: int, target: str | None = None, xy: bool = False) -> str:
    """Why a class of ``rows`` training rows cannot be stratified into ``n_folds`` folds, and the fix that exists:
    fewer folds, down to 2, or, for a class of one row, which no fold model could both learn and be scored on,
    dropping or merging that class (``target``: the target column's name, for the example; ``xy``: the rows were
    given as ``X`` and ``y``, to ``TabularClassifier.fit``, and are dropped there, with no Tabular to build).

    >>> rare_class_error("b", 2, 3)
    "the rarest class ('b') has 2 training rows, fewer than n_folds=3; give n_folds=2 or fewer"
    >>> rare_class_error("b", 1, 3, xy=True).split("; ")[-1]
    "drop that row from X and y (the row whose label in y is 'b') or merge the class with another in y before fit"
    """
    if rows >= 2:
        return (f"the rarest class ({label!r}) has {rows} training rows, fewer than n_folds={n_folds}; give "
                f"n_folds={rows} or fewer")
    why = (f"the class {label!r} has 1 training row: a bagged model holds out each row in one fold, and the fold "
           "models then never see that class; ")
    if xy:
        return why + (f"drop that row from X and y (the row whose label in y is {label!r}) or merge the class with "
                      "another in y before fit")
    return why + ("drop that row or merge the class with another before building the "
                  f"Tabular (e.g. df.filter(pl.col({target or 'target'!r}) != {label!r}))")


def time_ranks(order: Any, n: int, where: str = "order") -> np.ndarray:
    """Each row's time as a dense rank (0 the earliest): ``order`` is a sequence or Series of ``n`` dates,
    datetimes, numbers or text dates (read as ``TimeSplitter`` reads them: ISO, or day/month numbers that read
    only one way round).

    >>> time_ranks(["01/02/2015", "31/01/2015", "01/02/2015"], 3).tolist()
    [1, 0, 1]
    """
    import polars as pl

    s = order if isinstance(order, pl.Series) else pl.Series("order", order)
    if s.dtype == pl.String:  # text sorts as dates only when it reads as them, as TimeSplitter reads it
        s = text_times(s, s.name, "time folds")
    if len(s) != n:
        raise DataError(f"{where} gives {len(s)} times for {n} training rows; give one per row")
    missing = s.is_null() | s.is_nan() if s.dtype.is_float() else s.is_null()
    if missing.any():
        bad = int(missing.arg_true()[0])
        raise DataError(f"{where} has a missing time (first at training row {bad}); a row with no time has no "
                        "period to fall in")
    return s.rank("dense").to_numpy().astype(np.int64) - 1


def _time_folds(ranks: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous periods of about equal rows: boundary ``j`` falls between the two times whose rows come nearest
    to ``j / n_folds`` of the rows, never on a boundary already taken nor so late that a later fold would have no
    time, so every fold holds at least one whole time whenever there are ``n_folds`` distinct times (one busy
    day makes its own period rather than leaving another one empty).

    >>> r = np.repeat(np.arange(13), [100, 200, 300, 400, 500, 5000, 3000, 1500, 1000, 800, 700, 600, 500])
    >>> [len(h) for _, h in _time_folds(r, 5)]
    [1500, 5000, 3000, 2500, 2600]
    """
    n = len(ranks)
    counts = np.bincount(ranks)  # ranks are dense: every time 0..T-1 has rows
    n_times = len(counts)
    if n_times < n_folds:
        raise DataError(f"the training rows' {n_times} distinct times cannot make {n_folds} contiguous periods of "
                        "rows; lower n_folds")
    rows_before = np.r_[0, np.cumsum(counts)]  # rows_before[t]: rows of the times before time t
    cuts: list[int] = []  # fold f holds the times from cuts[f - 1] to cuts[f] - 1
    for j in range(1, n_folds):
        lo, hi = (cuts[-1] if cuts else 0) + 1, n_times - (n_folds - j)
        t = lo + int(np.abs(rows_before[lo:hi + 1] - j * n / n_folds).argmin())
        cuts.append(t)
    fold = np.searchsorted(np.asarray(cuts), ranks, side="right")
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]


def time_values(data: Any, col: str) -> Any:
    """Column ``col`` of the rows ``data`` holds (a Tabular's split, a TabularData or a frame of inputs), for
    time-ordered folds. A Tabular's split holds its processed columns only: the column a ``TimeSplitter`` read
    is not among them (the Tabular records its training rows' times as ``train_times``). A date column that a
    scikit-learn estimator replaced by its parts (it splits each date column of X, ``Date`` into ``Date_Year``,
    ..., ``Date_Elapsed``) is read from its ``Elapsed`` part, which orders the rows as the dates do; a row whose
    date was missing (``FillMissing``'s ``_na`` flag) has no time.

    >>> import polars as pl
    >>> time_values(pl.DataFrame({"Store": [1, 2], "Date_Elapsed": [86400.0, 0.0]}), "Date").to_list()
    [86400.0, 0.0]
    """
    import polars as pl

    frame = getattr(data, "frame", None)
    if frame is not None and col in frame.columns:
        return frame[col]
    xs = getattr(data, "xs", data)
    if hasattr(xs, "columns") and col in xs.columns:
        return xs[col]
    have = list(getattr(frame if frame is not None else xs, "columns", []))
    processor = getattr(data, "processor", None)
    cats = set(getattr(data, "cat_names", None) or getattr(processor, "cat_names_", None) or [])
    part = f"{col}_Elapsed"  # the date's parts: its Elapsed part orders the rows as the dates do
    if part in have and part not in cats:
        values = (frame if frame is not None and part in frame.columns else xs)[part]
        na = f"{part}_na"  # FillMissing filled a missing date's part: that row has no time
        if na in have:
            flags = (frame if frame is not None and na in frame.columns else xs)[na]
            values = values.to_frame().select(pl.when(missing_flags(flags, processor)).then(None)
                                              .otherwise(pl.col(part)).alias(part)).to_series()
        return values
    raise TimeColumnError(col, have)


def missing_flags(flags: Any, processor: Any = None) -> Any:
    """Which rows a ``FillMissing`` flag column ``flags`` marks as filled, as booleans: the flags as they are, or,
    on processed rows, where they hold the code of the ``True`` class of the flag's vocabulary in the fitted procs
    ``processor`` (``Categorify`` codes ``#na#``, ``False``, ``True`` as 0, 1, 2; a flag that was never ``True`` in
    the training rows has no such class, and marks no row).

    >>> import polars as pl
    >>> from pipekit.tabular import Categorify, FillMissing, TabularProcessor
    >>> rows = pl.DataFrame({"Elapsed": [1.0, None, 3.0, 4.0], "y": [0.0, 1.0, 0.0, 1.0]})
    >>> proc = TabularProcessor([Categorify, FillMissing], cont_names="Elapsed", y_names="y", y_block="regression")
    >>> codes = proc.fit_transform(rows, np.ones(4, dtype=bool))["Elapsed_na"]
    >>> codes.to_list(), missing_flags(codes, proc).to_list()
    ([1, 2, 1, 1], [False, True, False, False])
    """
    import polars as pl

    if flags.dtype == pl.Boolean:
        return flags
    vocab = (getattr(processor, "classes_", None) or {}).get(flags.name)
    if vocab is None:  # raw rows: a flag of 0 and 1
        return flags.cast(pl.Boolean)
    code = vocab.o2i.get(True)
    return flags == code if code is not None else pl.Series(flags.name, [False] * len(flags))


class TimeColumnError(DataError):
    """``time_col`` names no column of the training rows (:func:`time_col_error` says it); its fields let a caller
    that took the rows as ``X`` and ``y`` say the fix on those (:func:`pipekit.sklearn.fitting.fit_model`)."""

    def __init__(self, col: str, have: list[str]):
        super().__init__(time_col_error(col, have))
        self.col, self.have = col, have


def time_col_error(col: str, have: list[str], xy: bool = False) -> str:
    """Why ``time_col=col`` cannot order time folds of rows of the columns ``have``, naming the columns that
    may order them first (those with ``Elapsed`` in their name: a date's parts), and the fix that exists: another
    column, or the times as ``order=`` to a Tabular's rows; ``xy``: the rows were given as ``X`` and ``y`` to a
    scikit-learn estimator's ``fit``, which takes no ``order=``, and whose date columns become parts.

    >>> time_col_error("Day", ["Store", "Promo", "Date_Elapsed"], xy=True).split("; ")[0]
    "time_col='Day' is not a column of the training rows (columns: ['Date_Elapsed', 'Store', 'Promo'])"
    """
    timed = sorted(have, key=lambda c: "Elapsed" not in c)  # stable: the others in their order
    shown = f"{timed[:12]}" + (f" and {len(timed) - 12} more" if len(timed) > 12 else "")
    said = f"time_col={col!r} is not a column of the training rows (columns: {shown}); "
    if xy:
        return said + ("name a column of X that orders its rows in time: a date column of X (its 'Elapsed' part "
                       "orders them, so time_col='Date' reads 'Date_Elapsed') or a number such as a day count")
    return said + ("name a column of them that orders them in time (such as add_datepart's 'Elapsed'), or pass "
                   "their times as order= (a Tabular split by a TimeSplitter records them: order=tab.train_times)")


class Budget:
    """The seconds each fold model may take when ``n`` of them, ``at_once`` side by side, share what is left
    until ``deadline`` (None: no limit): the time left over the rounds left, divided by how much longer than
    its fit the last fold model to end took in all (its predictions, of its fold and any ``valid`` rows, take
    time in proportion to what it fitted, after its time limit stopped it), so the last ones end about at the
    deadline rather than a round's predictions late.

    >>> clock = iter([0.0, 5.0])
    >>> b = Budget(12.0, 3, 1, clock=lambda: next(clock))
    >>> b.start()                                   # 12 s left over 3 rounds
    4.0
    >>> b.done(fit_s=4.0, predict_s=1.0)            # 1.25 times its fit in all: 7 s left over 2 rounds, / 1.25
    >>> b.start()
    2.8
    """

    def __init__(self, deadline: float | None, n: int, at_once: int, clock: Any = time.perf_counter):
        self.deadline, self.left, self.at_once, self.clock, self.over = deadline, n, at_once, clock, 1.0

    def start(self) -> float | None:
        """The seconds the fold model starting now may take (None: no limit); call :meth:`done` when that one
        ends, with the seconds it spent fitting and predicting."""
        if self.deadline is None:
            return None
        rounds = -(-self.left // self.at_once)  # those running count until they end
        return max((self.deadline - self.clock()) / rounds / self.over, 1e-3)

    def done(self, fit_s: float, predict_s: float) -> None:
        self.left -= 1
        if fit_s > 0:
            self.over = (fit_s + predict_s) / fit_s


def out_of_fold(model: Any) -> np.ndarray | None:
    """The out-of-fold predictions a fitted model keeps for its training rows (a ``BaggedModel``, or a
    ``StackingEnsemble`` whose meta-model is bagged), in ``classes_`` order; None when it keeps none."""
    if not isinstance(model, Component) or not model.is_fitted:
        return None
    oof = vars(model).get("oof_predictions_")
    return None if oof is None else np.asarray(oof, dtype=np.float64)


def aligned(pred: np.ndarray, model_classes: Any, classes: np.ndarray) -> np.ndarray:
    """Probability columns of a fold model in ``classes`` order; a class the fold model never saw gets 0."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim == 1:
        return pred
    where = {c: j for j, c in enumerate(np.asarray(model_classes).tolist())}
    out = np.zeros((len(pred), len(classes)))
    for k, c in enumerate(classes.tolist()):
        if c in where:
            out[:, k] = pred[:, where[c]]
    return out


def fold_fit_rows(folds: np.ndarray, fold: int, stops_early: bool, seed: int, stop_fraction: float = STOP_FRACTION,
                  repeat: int = 0, strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fit_idx, stop_idx, held_idx)`` of the model of ``fold`` (of ``repeat``), given each row's fold in
    ``folds``, for a model that ``stops_early`` or not: ``BaggedModel.split_rows``, which a ``StackingEnsemble``
    splits its members' rows by too, each with its ``seed`` and ``stop_fraction``.

    >>> [len(r) for r in fold_fit_rows(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0, True, seed=0, stop_fraction=0.25)]
    [3, 1, 4]
    """
    held = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    if not stops_early:
        return rest, rest[:0], held
    rng = np.random.default_rng([seed, repeat, fold])
    n_stop = max(1, int(round(len(rest) * stop_fraction)))
    stop = np.zeros(len(rest), dtype=bool)
    if strata is None:
        stop[rng.choice(len(rest), n_stop, replace=False)] = True
        return rest[~stop], rest[stop], held
    order = rng.permutation(len(rest))  # the rows of each class in a seeded order; each gives its first ones
    codes = strata[rest][order]
    counts = np.unique(codes, return_counts=True)[1]
    take = np.minimum(stratified_counts(counts, n_stop), counts - 1)
    by_class = np.argsort(codes, kind="stable")  # positions grouped by class, each group in the seeded order
    starts = np.cumsum(counts) - counts
    for s, t in zip(starts, take):
        stop[order[by_class[s:s + t]]] = True
    return rest[~stop], rest[stop], held


class BaggedModel(Backend):
    """``model`` (any unfitted backend: GBM, RandomForest, SklearnModel, TorchTabular, XGBoost, CatBoost)
    fitted on ``n_folds`` folds of the training rows, ``n_repeats`` times.

    ``stop_fraction``: the share of each fold model's training rows held out to stop it early, for models
    that stop early (``model.stops_early()``); the fold it predicts never serves. With ``refit_stopped`` the
    fold model is then fitted again on all its rows (stopping rows included) for the rounds early stopping
    kept, scaled by the rows added (``model.stopped_params``), so no training row is lost to stopping.
    ``folds``: ``"shuffled"`` (seeded, stratified by class for classification), ``"time"`` (contiguous periods
    in time order, fold 0 the earliest, never shuffled (blocked k-fold: a period is predicted out of fold by
    models trained on the other periods, earlier and later ones, so never from rows of its own days, which
    resemble each other; not forward chaining); the times are column ``time_col`` of
    the training rows, or ``order=`` given to ``fit``), or ``"auto"`` (the default: ``"time"`` when
    ``time_col`` or ``order`` is given, else ``"shuffled"``; ``fit_ensemble`` gives the times of a Tabular split
    by a ``TimeSplitter`` as ``order``); ``fold_kind_`` records the folds used. With time
    folds every repeat has the same folds (its fold models differ by seed).
    ``seed`` shuffles the folds;
    fold model ``j`` gets ``seed + j`` where the model takes a seed, so fold models differ.
    ``n_jobs``: fold models fitted at once, in threads. None (the default): as many as the model's own
    ``n_jobs`` has cores, each fold model then with one thread (fold models side by side use the cores better
    than threads within one tree learner on a few thousand rows), or one at a time for a model that takes no
    ``n_jobs``; 1: one at a time, each with the model's own threads; k: k at once, sharing the model's cores.
    A model that fits one at a time in a process (the tabular net) is fitted one fold at a time whatever
    ``n_jobs`` says (see :meth:`workers`).
    Fold models are kept in fold order, whichever finishes first.
    ``valid`` (optional) is only scored into ``valid_score_``; it chooses nothing. ``time_limit``: seconds for
    ``fit``, shared by the fold models as :meth:`fit_folds` shares them.

    Fitted: ``models_`` (fold models, repeat-major), ``folds_`` ((n_repeats, n_rows) fold of each training
    row), ``oof_predictions_`` (each row's mean prediction by the models that never saw it, in
    ``classes_`` order), ``oof_targets_`` (targets as the models see them: class indices or values),
    ``oof_score_`` (the default metric, accuracy / rmse, on them), ``rows_signature_`` (of the training rows),
    ``processor_`` (the fitted procs of the Tabular whose split it was fitted on, None for a bare frame: an
    ensemble of bagged members processes raw rows with them), ``fit_seconds_``, ``stopped_on_time_`` (fold models a time limit stopped, see ``fit_folds``), plus what
    every backend keeps (``feature_names_``, ``classes_``, ...).

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> from pipekit.ensemble import BaggedModel
    >>> xs = pl.DataFrame({"a": np.arange(60.0), "b": np.arange(60.0) % 7})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 29, "yes", "no"))
    >>> bag = BaggedModel(RandomForest("classification", n_estimators=5, n_jobs=1), n_folds=2).fit(data)
    >>> len(bag.models_), bag.oof_predictions_.shape, bag.folds_.shape  # folds_: each repeat's fold of every row
    (2, (60, 2), (1, 60))
    >>> bag.predict(data.take(np.array([0, 59]))).argmax(1).tolist()
    [0, 1]
    """

    model_attr = "models_"
    param_constraints = {
        "model": Is(lambda m: isinstance(m, Model) and isinstance(m, Component), "a pipekit model (GBM, "
                    "RandomForest, SklearnModel, TorchTabular, ...)"),
        "n_folds": Interval(2, None, integer=True), "n_repeats": POSITIVE_INT,
        "stop_fraction": Interval(0, 0.5, closed="neither"), "refit_stopped": Options(True, False),
        "seed": Interval(0, 2**31 - 1, integer=True), "n_jobs": N_JOBS, "time_limit": TIME_LIMIT, "name": NAME,
        "folds": FOLD_KINDS, "time_col": TIME_COL}
    unsaved: ClassVar[tuple[str, ...]] = ("valid_predictions_",)  # for whoever fitted it, of rows not kept

    def __init__(self, model: Any, n_folds: int = 5, n_repeats: int = 1, stop_fraction: float = STOP_FRACTION,
                 refit_stopped: bool = True, seed: int = 0, n_jobs: int | None = None, time_limit: float | None = None,
                 name: str | None = None, folds: str = "auto", time_col: str | None = None):
        self.model, self.n_folds, self.n_repeats, self.stop_fraction = model, n_folds, n_repeats, stop_fraction
        self.refit_stopped, self.seed, self.n_jobs, self.time_limit, self.name = (refit_stopped, seed, n_jobs,
                                                                                  time_limit, name)
        self.folds, self.time_col = folds, time_col
        self.check_params()
        if isinstance(model, BaggedModel):
            raise ParameterError("BaggedModel: model is already bagged; bag the backend itself")
        if folds == "shuffled" and time_col is not None:
            raise ParameterError(f"BaggedModel: time_col={time_col!r} orders time folds, and folds='shuffled'; give "
                                 "folds='time' (or 'auto'), or no time_col")

    @property
    def task(self) -> str:  # type: ignore[override]  # the bagged model's, never stored twice
        """``'classification'`` or ``'regression'``: the bagged model's task."""
        return self.model.task

    @property
    def learns_trees(self) -> bool:
        """What its model learns: each fold's model is a copy of it."""
        return isinstance(self.model, Model) and self.model.learns_trees

    def stops_early(self) -> bool:
        return False  # its fold models stop early on their own rows; a valid split given to it chooses nothing

    # -- folds ---------------------------------------------------------------------------------------
    def fold_rows(self, fold: int, repeat: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fit_idx, stop_idx, held_idx)`` of fold model ``(repeat, fold)``: the training rows it was fitted on,
        those that stopped it early (empty when the model does not stop early; with ``refit_stopped`` the kept
        model is fitted on both) and the rows it predicted out of fold. The three are disjoint."""
        self.check_is_fitted()
        if not (0 <= fold < self.n_folds and 0 <= repeat < self.n_repeats):
            raise ParameterError(f"fold={fold}, repeat={repeat}: this model has {self.n_folds} folds and "
                                 f"{self.n_repeats} repeat(s)")
        strata = self.oof_targets_ if self.task == "classification" else None  # class indices, as _fit_one's
        return self.split_rows(self.folds_[repeat], fold, repeat, strata)

    def split_rows(self, folds: np.ndarray, fold: int, repeat: int = 0,
                   strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fit_idx, stop_idx, held_idx)`` of fold model ``(repeat, fold)``, given each row's fold in ``folds``:
        it predicts the rows of ``fold`` and trains on the others, less its stopping rows (a seeded
        ``stop_fraction`` of them, none when the model does not stop early), stratified by class when
        ``strata`` (each row's class index) is given: each class gives its share (largest remainders round it, as
        ``TrainTestSplitter`` allocates its validation items: :func:`~pipekit.data.splitters.stratified_counts`)
        but never all of its rows, so a class of one row there stays in training (early stopping on a class the
        model never trained on cannot be scored). A ``fold`` no row is in gives every row's split for a model
        fitted on all of them. ``StackingEnsemble`` splits its members' rows this way too.

        >>> import numpy as np
        >>> from pipekit.backends import GBM
        >>> bag = BaggedModel(GBM("classification"), n_folds=2, stop_fraction=0.25)
        >>> [len(r) for r in bag.split_rows(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0)]
        [3, 1, 4]
        """
        return fold_fit_rows(folds, fold, self.model.stops_early(), self.seed, self.stop_fraction, repeat, strata)

    def fold_model(self, fold: int, repeat: int = 0) -> Any:
        """The unfitted copy fold model ``(repeat, fold)`` starts from (``seed + index`` where it takes a seed)."""
        m = self.model.clone()
        if "seed" in m.get_params(deep=False):
            base = m.get_params(deep=False)["seed"]
            m.set_params(seed=(0 if base is None else base) + repeat * self.n_folds + fold)
        return m

    def workers(self) -> tuple[int, int | None]:
        """``(fold models fitted at once, threads each)`` that ``n_jobs`` and the model's ``n_jobs`` give
        (threads None: the model's own setting). A model that fits one at a time in a process (``fits_alone``: the
        tabular net, whose training holds the process's random generators) is fitted one fold at a time, each with
        the whole of its time share.

        >>> from pipekit.ensemble import TorchTabular
        >>> BaggedModel(TorchTabular("classification"), n_folds=4, n_jobs=2).workers()
        (1, None)
        """
        own = self.model.get_params(deep=False)
        total = self.n_folds * self.n_repeats
        if getattr(self.model, "fits_alone", False):
            return 1, None
        if "n_jobs" not in own:
            return (1 if self.n_jobs is None else min(cores(self.n_jobs), total)), None
        have = cores(own["n_jobs"])
        at_once = min(have if self.n_jobs is None else cores(self.n_jobs), total)
        return (1, None) if at_once == 1 else (at_once, max(1, have // at_once))

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, train: Any, valid: Any = None, order: Any = None,  # type: ignore[override]  # order third
            sample_weight: Any = None) -> BaggedModel:
        """Fit the fold models on ``train`` (a progress bar per fold); ``valid`` is only scored. ``order``: each
        training row's time, for time folds (see ``folds``). An error a fold model raises comes out as it is
        (a scikit-learn ``ValueError`` stays one), with a note naming the bag and the fold and with
        ``pipekit_fold``, its ``(fold, repeat, n_folds)``. ``sample_weight`` is refused (:func:`no_sample_weight`):
        the fold models are fitted unweighted."""
        check_fork_safe("BaggedModel.fit")
        if sample_weight is not None:
            raise ParameterError(no_sample_weight(self))
        valid = check_valid_split(self, valid)  # fit(xs, y) would take y as validation rows; no rows: None
        for _ in progress_bar(self.fit_folds(train, self.time_limit, order=order), total=self.n_folds * self.n_repeats,
                              description=f"bagging {self.name or type(self.model).__name__}"):
            pass
        if valid is not None:
            v = self._prepare(valid)
            if v.y is None:
                raise DataError("the valid split has no targets; scoring needs labels")
            self.valid_score_ = self.score(v)
        return self

    def fit_folds(self, train: Any, time_limit: float | None = None, valid: Any = None,
                  order: Any = None) -> Iterator[float]:
        """Fit fold by fold, yielding the seconds spent each time a fold model is done (a caller with a time
        budget may stop early: fold models not started are dropped, those running in threads are stopped at
        their next boosting round, few trees or batch (:class:`FoldStop`) and waited for until then; the model is
        fitted only once every fold is). Ctrl-C reaches the caller at once: the fold models running are stopped
        as for a caller that stops, and not waited for.

        ``time_limit``: seconds for all the fold models. Each fold model that can stop on time (a backend with
        a ``time_limit``: the boosters, the forests, the tabular net) gets its share of what is left when it
        starts: the seconds left over the rounds of fold models left (``n_jobs`` of them side by side make a
        round), and keeps what it fitted by then (the rounds boosted, the trees grown, the net's shortened
        schedule). ``stopped_on_time_`` counts the fold models it stopped. Other models (a scikit-learn model)
        fit whole. A fold model that overran its share (what it does besides boosting: binning its rows,
        predicting) has the next ones' shares cut by as much, so the last ends about at the limit.

        ``valid`` (optional, processed rows): each fold model also predicts them inside its time, and
        ``valid_predictions_`` keeps their mean (what ``predict(valid)`` gives, without a pass of its own
        after the limit).

        ``order``: each training row's time (dates, numbers, ISO text), for time folds; else ``time_col`` is
        read from ``train``'s columns (the column a ``TimeSplitter`` read is not one: a Tabular it split records
        those rows' times, ``order=tab.train_times``)."""
        ranks = self._time_ranks(train, order)
        d = as_data(train)
        v = None if valid is None else as_data(valid)
        self.reset_state()
        done = False
        try:
            yield from self._fit_folds(d, deadline=None if time_limit is None else time.perf_counter() + time_limit,
                                       valid=v, ranks=ranks)
            done = True
        finally:
            if not done:  # stopped between folds (or failed): no half-fitted state is left behind
                self.reset_state()

    def refit_folds(self, train: Any, time_limit: float | None = None, valid: Any = None) -> Iterator[float]:
        """For a model bagged with ``refit_stopped=False``: fit each fold model again on all its rows (stopping
        rows included) for the rounds early stopping kept, as ``refit_stopped=True`` would have, yielding the
        seconds spent each time a fold model is done. ``train`` must be the rows it was bagged on. The model
        changes only once every fold model is done: a caller with a time budget may stop between them and
        keep the model as it was. ``time_limit``: seconds for all of it, shared between the fold models as in
        :meth:`fit_folds`; a fold model that its share stops ends the refit, and the model is kept as it was.

        >>> import numpy as np, polars as pl
        >>> from pipekit.backends import GBM, as_data
        >>> xs = pl.DataFrame({"a": np.random.default_rng(0).normal(size=300)})
        >>> data = as_data(xs, y=np.where(xs["a"] > 0, "yes", "no"))
        >>> bag = BaggedModel(GBM("classification", n_estimators=200, n_jobs=1), n_folds=3, refit_stopped=False)
        >>> _ = list(bag.fit(data).refit_folds(data))
        >>> once = BaggedModel(GBM("classification", n_estimators=200, n_jobs=1), n_folds=3).fit(data)
        >>> bag.refit_stopped, bool(np.array_equal(bag.oof_predictions_, once.oof_predictions_))
        (True, True)
        """
        self.check_is_fitted()
        d = as_data(train)
        if self.refit_stopped or not self.model.stops_early():
            raise ParameterError("refit_folds: this model's fold models are already fitted on all their rows "
                                 "(refit_stopped=True, or a model that does not stop early)")
        if rows_signature(d) != self.rows_signature_:
            raise ParameterError("refit_folds: train must be the rows the model was bagged on")
        spent: float = vars(self)["fit_seconds_"]
        on_time = vars(self).get("stopped_on_time_", 0)  # the rounds refitted are those the time left them
        try:
            yield from self._fit_folds(d, stopped=list(self.models_),
                                       deadline=None if time_limit is None else time.perf_counter() + time_limit,
                                       valid=None if valid is None else as_data(valid))
        except _OutOfTime:
            return  # nothing was changed: the fold models and out-of-fold predictions are set only at the end
        self.refit_stopped, self.fit_seconds_, self.stopped_on_time_ = True, spent + vars(self)["fit_seconds_"], on_time

    def check_order(self, order: Any, who: str = "BaggedModel", bag: str | None = None) -> None:
        """Refuse ``order`` (each training row's time, which orders time folds) when this bag's folds are shuffled,
        as it would be dropped. ``who``: the model given ``order``, this bag or one that bags it with its own
        ``order`` (``"StackingEnsemble"``), then naming this bag as ``bag`` (``"the meta-model"``)."""
        if order is None or self.folds != "shuffled":
            return
        what, it = ("folds='shuffled'", "") if bag is None else (f"{bag} is BaggedModel(..., folds='shuffled')", "it ")
        raise ParameterError(f"{who}: order= orders time folds, and {what}; give {it}folds='time' (or 'auto'), or "
                             "no order")

    def _time_ranks(self, train: Any, order: Any) -> np.ndarray | None:
        """Each training row's time as a rank for time folds, None for shuffled ones."""
        self.check_order(order)
        if self.folds == "shuffled" or (self.folds == "auto" and order is None and self.time_col is None):
            return None
        if order is None and self.time_col is None:
            raise ParameterError("BaggedModel(folds='time') needs the rows' times: time_col='Date' (a column of the "
                                 "training rows) or fit(..., order=times)")
        n = len(train)
        if order is not None:
            return time_ranks(order, n)
        return time_ranks(time_values(train, self.time_col), n, where=f"column {self.time_col!r}")  # type: ignore[arg-type]

    def _fit_one(self, d: TabularData, folds: np.ndarray, fold: int, repeat: int, threads: int | None,
                 stopped: Any = None, valid: TabularData | None = None, seconds: float | None = None,
                 stop: FoldStop | None = None) -> tuple:
        """Fit fold model ``(repeat, fold)`` and predict its fold (and ``valid``). ``stop``: the bag's stop signal,
        given to a fold model fitted in a thread; it is checked between its steps too, and the model kept is
        left without it."""
        strata = np.unique(np.asarray(d.y), return_inverse=True)[1].ravel() if self.task == "classification" else None
        fit_idx, stop_idx, held = self.split_rows(folds, fold, repeat, strata)
        t0 = time.perf_counter()
        end = None if seconds is None else t0 + seconds

        def fresh() -> Any:
            m = self.fold_model(fold, repeat)
            if hasattr(m, "_quiet_time_limit"):  # the bag counts its fold models cut short (stopped_on_time_)
                m._quiet_time_limit = True
            if stop is not None and hasattr(m, "_fold_stop"):  # a backend that can end its fit part-way
                m._fold_stop = stop
            if threads is not None:
                m.set_params(n_jobs=threads)
            own = m.get_params(deep=False).get("time_limit", False)
            if end is not None and own is not False:  # its share, or its own limit when that is smaller
                share = max(end - time.perf_counter(), 1e-3)
                m.set_params(time_limit=share if own is None else min(own, share))
            return m

        check = stop.check if stop is not None else lambda: None
        try:
            with under_bar():  # this fold model's own bars keep quiet under the bag's bar of folds (any thread)
                check()
                m = stopped if stopped is not None else fresh().fit(d.take(fit_idx),
                                                                    d.take(stop_idx) if len(stop_idx) else None)
                if len(stop_idx) and (self.refit_stopped or stopped is not None):
                    check()
                    # the rows it stopped on train it too, as long as it chose
                    rest = np.sort(np.concatenate([fit_idx, stop_idx]))
                    again = fresh().set_params(**m.stopped_params(len(rest) / len(fit_idx))).fit(d.take(rest))
                    if vars(again).get("stopped_on_time_"):
                        if stopped is not None:
                            raise _OutOfTime  # a refit the time cuts short would be worse than the model it replaces
                    else:
                        m = again  # else the model stopped on its own rows stays
                vars(m).pop("_fold_stop", None)  # a kept fold model fitted again later answers to no bag
                if "processor_" not in m.unsaved:  # the bag keeps the procs, once in its file; its fold models their
                    vars(m).pop("processor_", None)  # signature (the net builds its module from them, and writes them there)
                check()
                t1 = time.perf_counter()
                p, pv = m.predict(d.take(held)), None if valid is None else m.predict(valid)
        except (_OutOfTime, FoldStopped, MemoryError):
            raise
        except Exception as e:
            # the traceback alone shows neither the bag nor the fold; the error keeps its type (a caller's
            # ``except ValueError`` still catches it), fit_ensemble tells one fold model's failure by pipekit_fold
            where = fold_where(fold, repeat, self.n_folds)
            note = (f"(raised in the fold model of {where} of BaggedModel {self.name or type(self.model).__name__!r}, "
                    f"fitted on {len(fit_idx) + len(stop_idx)} rows: the error is the model's own, change its "
                    "parameters or the rows it is given)")
            notes = getattr(e, "__notes__", None)
            # BaseException.add_note is Python 3.11's; on 3.10 the note is the same list, set by hand
            e.__notes__ = [*(notes or ()), note]
            e.pipekit_fold = (fold, repeat, self.n_folds)  # type: ignore[attr-defined]
            e.pipekit_bag = self.name or type(self.model).__name__  # type: ignore[attr-defined]
            raise
        return m, held, p, pv, (t1 - t0, time.perf_counter() - t1)

    def _run(self, d: TabularData, folds: np.ndarray, jobs: list[tuple[int, int]], stopped: list | None,
             deadline: float | None, valid: TabularData | None = None) -> Iterator[tuple[int, tuple]]:
        """``(job index, fitted fold model)`` as each is done: in this thread one at a time, else in a pool of
        threads. A fold model is started only when the caller asks for the next one (at most ``at_once`` run).
        Left before those running are done (the caller stops asking, a fold model fails, Ctrl-C), the bag's
        :class:`FoldStop` stops them at their next checkpoint, and the pool is shut down: a caller that stops, or an
        error, waits for them to end there (the caller goes on, on cores they no longer take), Ctrl-C does not (it
        reaches the caller at once). ``stopped``: the fold models to refit, by job index. ``deadline``: each fold
        model gets its share of the time left to it (``fit_folds``)."""
        at_once, threads = self.workers()
        args = [(d, folds[r], f, r, threads, None if stopped is None else stopped[j], valid)
                for j, (r, f) in enumerate(jobs)]
        clock = Budget(deadline, len(jobs), at_once)
        if at_once == 1:  # Ctrl-C stops the fold model fitting in this thread itself
            for j, a in enumerate(args):
                out = self._fit_one(*a, clock.start())
                clock.done(*out[-1])
                yield j, out
            return
        stop, pool, capped = FoldStop(), ThreadPoolExecutor(at_once), contextlib.ExitStack()
        # a model may need to know that copies of it fit side by side in threads (a GBM caps LightGBM's threads)
        beside = getattr(self.model, "fitting_side_by_side", None)
        if callable(beside):
            capped.enter_context(beside(threads))
        waiting = iter(enumerate(args))
        running: dict[Future, int] = {}

        def start_next() -> None:
            nxt = next(waiting, None)
            if nxt is not None:
                fut = pool.submit(self._fit_one, *nxt[1], clock.start(), stop)
                running[fut] = nxt[0]

        wait_for_them = True
        try:
            for _ in range(at_once):
                start_next()
            while running:
                # timed: once polars' threads run, Ctrl-C may be taken by one of them, and an untimed wait then sleeps
                # on until the fold model it waits for is done (15 s and more for a bag of GBMs)
                done, _ = wait(running, timeout=_WAKE, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=running.__getitem__):
                    clock.done(*fut.result()[-1])
                    yield running.pop(fut), fut.result()
                    start_next()
        except BaseException as e:
            stop.set()
            wait_for_them = isinstance(e, (Exception, GeneratorExit))  # not for Ctrl-C, nor an exit of the process
            raise
        finally:
            pool.shutdown(wait=wait_for_them, cancel_futures=True)
            # the fold models side by side are done once their threads have ended (Ctrl-C: after it is raised)
            _when_done(list(running), capped.close)

    def _fit_folds(self, d: TabularData, stopped: list | None = None, deadline: float | None = None,
                   valid: TabularData | None = None, ranks: np.ndarray | None = None) -> Iterator[float]:
        self._setup(d)
        y = self.encode_y(d.y)
        classes = self.classes_ if self.task == "classification" else None
        n, k = len(d), None if classes is None else len(classes)
        folds = np.empty((self.n_repeats, n), dtype=np.int32)
        oof = np.zeros((self.n_repeats, n) + ((k,) if k else ()))
        start = time.perf_counter()
        kind = vars(self).get("fold_kind_", "shuffled") if stopped is not None else \
            "shuffled" if ranks is None else "time"
        if stopped is not None:  # a refit: the very folds its first fit used (the rows are checked to be the same)
            folds[:] = vars(self)["folds_"]
        else:
            for r in range(self.n_repeats):
                # folds stratified by label (the same folds as by code; an error names the label)
                for f, (_, held) in enumerate(make_folds(y if classes is None else d.y, self.task,  # type: ignore[arg-type]
                                                         self.n_folds, self.seed + r, order=ranks,
                                                         target=target_name(d))):
                    folds[r, held] = f
        jobs = [(r, f) for r in range(self.n_repeats) for f in range(self.n_folds)]
        models: list[Any] = [None] * len(jobs)
        on_valid: list[Any] = [None] * len(jobs)
        for j, (m, held, p, pv, _) in self._run(d, folds, jobs, stopped, deadline, valid):
            r = jobs[j][0]
            oof[r, held] = aligned(p, m.classes_, classes) if classes is not None else np.asarray(p, np.float64)
            models[j] = m
            if pv is not None:
                on_valid[j] = aligned(pv, m.classes_, classes) if classes is not None else np.asarray(pv, np.float64)
            yield time.perf_counter() - start
        self.models_, self.folds_, self.fold_kind_ = models, folds, kind
        self.oof_predictions_, self.oof_targets_ = oof.mean(0), y
        self.oof_score_ = get_metric(None, self.task).score(y, self.oof_predictions_)
        self.rows_signature_ = self.train_rows_signature_  # of d, hashed by _setup
        self.processor_ = d.processor  # the Tabular's procs (None for a bare frame): an ensemble of it processes raw rows
        self.fit_seconds_ = time.perf_counter() - start
        self.stopped_on_time_ = sum(bool(vars(m).get("stopped_on_time_")) for m in models)
        self.valid_score_ = None
        if valid is not None:  # summed in fold order, as _predict sums them
            self.valid_predictions_ = sum(on_valid[1:], on_valid[0]) / len(models)

    def oof_score(self, metric: Any = None) -> float:
        """``metric`` (default: the default metric) of the out-of-fold predictions on the training rows."""
        self.check_is_fitted()
        classes = self.classes_ if self.task == "classification" else None  # a scorer's pos_label is a class label
        return get_metric(metric, self.task, classes).score(self.oof_targets_, self.oof_predictions_)

    def _predict(self, d: TabularData) -> np.ndarray:
        classes = self.classes_ if self.task == "classification" else None
        total: Any = None
        for m in self.models_:
            p = m.predict(d)
            p = aligned(p, m.classes_, classes) if classes is not None else np.asarray(p, np.float64)
            total = p if total is None else total + p
        return total / len(self.models_)

    def contributions(self, data: Any) -> Any:
        """Per-row contributions, exact where the model averages tree models' probabilities or values (see
        :func:`pipekit.inspection.contributions`, which this is; other models are refused, naming what explains
        them instead)."""
        from pipekit.inspection.contributions import contributions

        return contributions(self, data)

    def feature_importance(self) -> Any:
        """The fold models' importances, averaged per feature (where the model has them)."""
        import polars as pl

        self.check_is_fitted()
        frames = [m.feature_importance() for m in self.models_]
        col = frames[0].columns[1]
        return pl.concat(frames).group_by("feature", maintain_order=True).agg(pl.col(col).mean()).sort(
            col, descending=True)

    # -- files ---------------------------------------------------------------------------------------
    def model_from_data(self, data: Any) -> Any:
        if not (isinstance(data, list) and len(data) == self.n_folds * self.n_repeats
                and all(isinstance(m, type(self.model)) and m.is_fitted for m in data)):
            raise ExportError(f"models_ must hold {self.n_folds * self.n_repeats} fitted {type(self.model).__name__} "
                              "fold models")
        return data

    def state_from_data(self, state: dict[str, Any]) -> None:
        super().state_from_data(state)
        if not state:
            return
        n = len(self.oof_targets_) if isinstance(vars(self).get("oof_targets_"), np.ndarray) else -1
        folds = vars(self).get("folds_")
        if not (isinstance(folds, np.ndarray) and folds.shape == (self.n_repeats, n) and folds.dtype.kind in "iu"
                and folds.min() >= 0 and folds.max() < self.n_folds):
            raise ExportError(f"BaggedModel: folds_ must give a fold below {self.n_folds} for each of the training "
                              "rows, per repeat, and oof_targets_ one target per row")
        if vars(self).get("fold_kind_", "shuffled") not in ("shuffled", "time"):
            raise ExportError("BaggedModel: fold_kind_ must be 'shuffled' or 'time'")
        classification = self.task == "classification"
        k = len(self.classes_) if classification else None
        targets = self.oof_targets_
        if not (targets.ndim == 1 and (targets.dtype.kind in "iu" and (n == 0 or (targets.min() >= 0
                                                                                 and targets.max() < k))
                                       if classification else targets.dtype.kind == "f" and np.isfinite(targets).all())):
            raise ExportError("BaggedModel: oof_targets_ must hold " + (f"a class index below {k}" if classification
                                                                      else "a finite value") + " for each training row")
        oof = vars(self).get("oof_predictions_")
        shape = (n, k) if classification else (n,)
        if not (isinstance(oof, np.ndarray) and oof.shape == shape and oof.dtype.kind == "f" and np.isfinite(oof).all()):
            raise ExportError(f"BaggedModel: oof_predictions_ must hold one finite prediction per training row (shape "
                              f"{shape}), got {getattr(oof, 'shape', type(oof).__name__)}")
        labels = set(np.asarray(self.classes_).tolist()) if classification else set()
        for i, m in enumerate(self.models_):
            if m.task != self.task:
                raise ExportError(f"BaggedModel: fold model {i} (models_[{i}]) is a {m.task} model in a {self.task} bag")
            names = vars(m).get("feature_names_")
            if names is not None and list(names) != list(self.feature_names_):
                raise ExportError(f"BaggedModel: fold model {i} (models_[{i}]) reads the columns {list(names)[:5]}, "
                                  f"the bag {list(self.feature_names_)[:5]}")
            if classification and not set(np.asarray(m.classes_).tolist()) <= labels:
                raise ExportError(f"BaggedModel: fold model {i} (models_[{i}]) predicts classes "
                                  f"{np.asarray(m.classes_).tolist()[:5]} the bag's classes_ do not hold")
            # a fold model's row form (what bare new frames are held to) is the bag's, which its procs give
            for field in ("cat_levels_", "norm_stats_"):
                theirs, ours = vars(m).get(field), vars(self).get(field)
                if theirs is not None and ours is not None and differing_column(theirs, ours) is not None:
                    raise ExportError(f"BaggedModel: state field 'models_[{i}].state.{field}' is {theirs!r:.80}, "
                                      f"but the bag's procs give {ours!r:.80}; the file is damaged or was not written "
                                      "by pipekit.save")


def fold_where(fold: int, repeat: int, n_folds: int) -> str:
    """Which fold model: ``fold 1 of 3``, ``fold 1 (repeat 2) of 3`` (the words a failing fold's note and
    ``fit_ensemble``'s report use).

    >>> fold_where(1, 0, 3), fold_where(1, 2, 3)
    ('fold 1 of 3', 'fold 1 (repeat 2) of 3')
    """
    return f"fold {fold}" + (f" (repeat {repeat})" if repeat else "") + f" of {n_folds}"


#: the share of the rows an ensemble selects on that may be rows a member was fitted on: a few (a table may hold one
#: row twice, once among the training rows and once elsewhere); a share clearly above it is refused, as weights chosen
#: on the rows would favour what the member memorised (a forest of leaves of one row takes 73% of the weight on rows
#: of adult 45% its training rows, against none on the valid rows alone)
SEEN_SHARE = 0.05
#: how clearly: the rows must leave fewer of them unmatched by the training rows than rows of ``SEEN_SHARE`` training
#: rows would, by this many standard deviations (a one-sided bound: of 300 random held-out splits of adult on 1 to 4
#: category and up to 2 number columns, 213 of them rows the values could tell, none was refused)
SURE = 3.0


def seen_share(seen: np.ndarray, n_train: int, hashes: np.ndarray) -> tuple[float, bool] | None:
    """How much of the rows (their sorted :func:`row_hashes`, ``hashes``) are rows a model was fitted on, from the
    sorted hashes it keeps of its ``n_train`` training rows (``seen``: all, or the smallest ``ROW_SAMPLE``):
    ``(share, clear)``, the estimated share and whether the rows clearly hold more than ``SEEN_SHARE`` of training
    rows; None when their values cannot tell training rows from others.

    A row is matched when some training row has its values, so the model's training rows, in any order or in part,
    leave no row unmatched. Rows the model was not fitted on leave unmatched those whose values no training row has:
    as a share of such rows, about the share of training rows whose values no other training row repeats
    (Good-Turing's estimate of the unseen). The rows left unmatched, against those that rows all new would
    leave, give the share of training rows among them, with a spread from both counts. In a table of many distinct
    rows every training row found is one, and a few percent are told; in a table of a few categories whose every
    combination recurs, a new row has the values of training rows as often as one of them, and nothing can be told
    (None), however many rows are given (adult's rows on 3 columns, the target among them). The training rows
    themselves, all of them in another order, are told still: no other rows hold as many of every row.

    >>> train = np.sort(np.r_[np.arange(100), np.repeat(np.arange(100, 110), 20)]).astype(np.uint64)  # 300 rows
    >>> new = np.sort(np.r_[np.arange(500, 550), np.repeat(np.arange(100, 110), 5)]).astype(np.uint64)
    >>> seen_share(train, 300, train), seen_share(train, 300, train[::3]), seen_share(train, 300, new)
    ((1.0, True), (1.0, True), (0.0, False))
    >>> seen_share(train, 300, np.sort(np.r_[new, train[:9:3]])), seen_share(train, 300, train[:5])
    ((0.0, False), None)
    >>> few = np.repeat(np.arange(10), 30).astype(np.uint64)       # 10 value combinations, each 30 times
    >>> seen_share(few, 300, few[::4]) is None, seen_share(few, 300, few)
    (True, (1.0, True))
    """
    n_given = len(hashes)
    if len(seen) < n_train:  # a sample: below its largest hash, it holds every training row's (ties included)
        top = seen[-1]
        seen, hashes = seen[seen < top], hashes[hashes < top]
    if not (len(seen) and len(hashes)):
        return None
    if n_given == n_train and np.array_equal(seen, hashes):
        return 1.0, True  # as many rows as the training rows, with as many of every row: those, in some order
    values, counts = np.unique(seen, return_counts=True)
    unmatched = int((~np.isin(hashes, values, assume_unique=False)).sum())
    singles, doubles = int((counts == 1).sum()), int((counts == 2).sum())
    if not singles:
        return None
    unseen = singles / len(seen)  # the chance that a new row's values are no training row's
    expected = len(hashes) * unseen  # unmatched, were none of the rows training rows
    # unmatched, were SEEN_SHARE of them training rows, and its spread: binomial, and that of the estimate of
    # `unseen` (Esty's variance of Good-Turing's estimate, relative to it)
    bound = (1.0 - SEEN_SHARE) * expected
    spread = float(np.sqrt(bound * (1.0 - unseen) + bound ** 2 * ((1.0 - unseen) / singles + 2 * doubles / singles ** 2)))
    if bound <= SURE * spread:  # not even rows all matched would be clear: the values cannot tell
        return None
    return min(1.0, max(0.0, 1.0 - unmatched / expected)), bound - unmatched > SURE * spread


def seen_by(model: Any, sig: str, hashes: np.ndarray | None = None) -> float | None:
    """The share of the rows of signature ``sig`` (see :func:`rows_signature`) that ``model`` was fitted on, when
    they are its training rows or clearly hold more than ``SEEN_SHARE`` of them; None otherwise. It records its
    training rows in order as ``train_rows_signature_`` (the members a ``StackingEnsemble`` refits, the stack
    itself, and every backend): 1.0. With the rows' ``hashes`` (:func:`row_hashes`), from the sample of its
    training rows' hashes a backend keeps in this session: its training rows in another order, a part of them, or
    rows mixed with them (:func:`seen_share`); rows whose values cannot tell training rows from others are not
    taken for them. An ensemble: the largest share of its members'."""
    from pipekit.ensemble.base import Ensemble

    if getattr(model, "train_rows_signature_", None) == sig:
        return 1.0
    share = None
    seen, n_train = vars(model).get("_train_row_hashes"), vars(model).get("_train_rows")
    if hashes is not None and seen is not None and n_train and len(hashes) and len(seen):
        found = seen_share(seen, n_train, hashes)
        if found is not None and found[1]:
            share = found[0]
    if isinstance(model, Ensemble):
        inner = [s for s in (seen_by(m, sig, hashes) for m in model._members_or_given()) if s is not None]
        if inner:
            share = max(inner + ([] if share is None else [share]))
    return share


def fitted_on(model: Any, sig: str, hashes: np.ndarray | None = None) -> bool:
    """Whether ``model`` was fitted on the rows of signature ``sig`` and ``hashes``, or on a clear share of them
    (:func:`seen_by`)."""
    return seen_by(model, sig, hashes) is not None


def training_predictions(members: list, classes: np.ndarray | None,
                         data: TabularData | None = None) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Each member's out-of-fold predictions (in ``classes`` order) and the targets (labels or values), when
    every member keeps them for the same training rows: the ones ``data`` holds, when it is given. None when
    ``data`` is not those rows (predictions on it are then honest); an error when only some members were
    bagged on ``data``'s rows or keep no out-of-fold predictions, or when a member that is not bagged was
    fitted on them (:func:`fitted_on`), so no choice is ever made on rows a member was fitted on."""
    sig = None if data is None else rows_signature(data)
    kept = [(i, m, out_of_fold(m)) for i, m in enumerate(members)]
    on_rows = [i for i, m, oof in kept if oof is not None and (sig is None or m.rows_signature_ == sig)]
    if sig is not None and not on_rows:
        hashes = row_hashes(data)  # type: ignore[arg-type]
        shares = {member_name(m, i): seen_by(m, sig, hashes) for i, m in enumerate(members)}
        fitted = {name: share for name, share in shares.items() if share is not None}
        if fitted:
            said: dict[str, list[str]] = {}  # members of one share named together
            for name, share in fitted.items():
                said.setdefault("all" if share > 0.995 else f"about {share:.0%}", []).append(repr(name))
            how = ", ".join(f"{part} of them are training rows of {' and '.join(names)}" for part, names in said.items())
            if "all" not in said:  # a share of them: how much a table's repeated rows may account for
                how += f"; rows a table repeats are taken for up to {SEEN_SHARE:.0%}"
            raise DataError(
                f"member(s) {list(fitted)} were fitted on these rows ({how}): weights or a meta-model chosen on them would favour what those "
                "members memorised; select on rows none of them was fitted on (rows held out of their training, "
                "such as tab.valid for members fitted on tab.train), or on out-of-fold predictions of these rows: "
                "bag the members (BaggedModel) on them and call ens.fit(), or give ens.fit_predictions(preds, y) "
                "predictions made on each row by a model not fitted on it")
        return None
    missing = [member_name(m, i) for i, m, _ in kept if i not in on_rows]
    if missing:
        raise ParameterError(
            f"member(s) {missing} keep no out-of-fold predictions for the rows the other members were fitted on; "
            "bag every member (BaggedModel) on the same training rows, or select on rows no member was fitted "
            "on (the valid split)")
    sigs = {m.rows_signature_ for _, m, _ in kept}
    if len(sigs) > 1:
        raise ParameterError("the members were bagged on different training rows; bag them all on the same split")
    first = members[0]
    y = first.oof_targets_
    if first.task == "classification":
        y = np.asarray(first.classes_)[y]
    preds = [align_classes(oof, m.classes_, classes) if classes is not None else oof for _, m, oof in kept]  # type: ignore[arg-type]
    return preds, y  # type: ignore[return-value]
