"""``fit_ensemble``: bagged members, selection on their out-of-fold predictions and a second stacking layer,
within a time budget, in one call.

Members are fitted in the order of their expected value per second (``Candidate.value / Candidate.cost``;
the cost is relative to the default GBM and turned into seconds by timing the members already fitted); a
member expected to overrun the time limit is skipped, and one whose folds run over it is stopped; the fold
models of every member share the time left (each stops at its share: a booster keeps the rounds it boosted, a
forest the trees it grew, the net a one-cycle schedule shortened to fit), so even the first member, fitted
before any time was measured, ends about in time. Fold
models that stop early (the boosters) stop on a share of their own rows; once the members are fitted, each
member's fold models are fitted again on those rows too, for the rounds they kept, while time allows (the
report's ``refit`` column says which were). Weights
are selected by Caruana's greedy selection on the out-of-fold predictions of the training rows; then a
second layer (a bagged GBM on the original inputs plus the selected members' out-of-fold predictions) is
fitted when time allows (its fold models sharing the time left), and kept only when it beats the weighted
ensemble out of fold. The validation
rows are scored for the report and choose nothing.

Folds: a Tabular split by time (by a ``TimeSplitter``, whose column and training rows' times it records) is
bagged on contiguous periods in time order (blocked k-fold): each period is predicted out of fold by models
trained on the other periods, earlier and later ones, so no day of it is predicted from rows of the same period
(rows of nearby days, which resemble each other, stay on one side); the validation rows, after every training
day, are predicted from earlier ones only. Other splits fold on shuffled rows, stratified by class. ``folds=`` / ``time_col=`` choose them explicitly.

Example:
    >>> from pipekit.ensemble import fit_ensemble
    >>> # ens = fit_ensemble(tab, time_limit=120, metric="accuracy")
    >>> # ens.print_report(); ens.export("adult.pipekit"); ens.predict(ens.process(raw_rows))
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipekit.backends import GBM, CatBoost, ExtraTrees, RandomForest, XGBoost, as_data, installed
from pipekit.backends.base import Model
from pipekit.core.errors import DataError, ParameterError, PipekitError, warn
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import POSITIVE, Interval, Is, Options, check
from pipekit.data.progress import progress_bar
from pipekit.ensemble.bagged import (FOLD_KINDS, TIME_COL, BaggedModel, failure, fold_where, out_of_fold,
                                     rare_class_error, time_ranks, time_values)
from pipekit.ensemble.base import Ensemble
from pipekit.ensemble.stacking import StackingEnsemble
from pipekit.ensemble.torch_tabular import TorchTabular, target_range
from pipekit.ensemble.weighted import WeightedEnsemble
from pipekit.metrics.lookup import _quiet_score, checked_metric, get_metric, metric_task

#: a GBM's stopping patience and round cap: it stops on its own rows long before the cap
_ROUNDS, _PATIENCE = 10_000, 50
#: the second layer's expected value and cost (a bagged GBM on the inputs and the members' predictions),
#: measured like the members': it scored below the weighted ensemble out of fold on adult (0.8732 against
#: 0.8760), breast_cancer, diabetes and rossmann (RMSPE 0.1867 against 0.1501), and took 2.1 (adult) to 2.6
#: (rossmann) times the default GBM. So it comes after every default member but CatBoost, and the time kept
#: for it does not push out a member that fits
STACK_VALUE, STACK_COST = 0.1, 2.4
#: the seconds one epoch of the tabular net takes at least, however few the rows (its batches' fixed cost, with
#: the learner built once per fit): 50 rows of diabetes took the bagged net 1.8 to 2.2 s a fold model on 2 cores,
#: against 0.04 s for the default GBM, where its cost alone said 0.1 s
NET_EPOCH_S = 0.3
#: folds per member by default: without a time limit, and within one unless every candidate is expected to fit
#: with the larger number (a member's time grows with its folds; under a tight limit more members pay more than
#: more folds: rossmann at 120 s fitted one member with 8 folds, two with 5, and the two scored better)
FOLDS, FOLDS_TIMED = 8, 5


@dataclass
class Candidate:
    """A member ``fit_ensemble`` may fit: a ``name``, an unfitted ``model`` (bagged by fit_ensemble), its
    expected ``value`` (how much such a member usually adds, 0..1), its ``cost`` (time relative to the
    default GBM on the same rows, above 0) and ``floor_s`` (the seconds each of its fold models takes however few
    the rows, 0 for none: the tabular net's epochs cost that much on a table of 50 rows).

    >>> from pipekit.backends import GBM
    >>> Candidate("gbm", GBM("classification"), value=0.5, cost=0)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: Candidate 'gbm': cost=0 is not accepted; expected a number in (0, inf)
    """

    name: str
    model: Any
    value: float = 1.0
    cost: float = 1.0
    #: seconds each fold model takes however few the rows (the net builds a learner and runs every epoch), the
    #: least its expected time is, where ``cost`` (which grows with the rows) says less
    floor_s: float = 0.0

    def __post_init__(self) -> None:
        # checked here, not when fit_ensemble orders the candidates: a cost of 0 would divide by zero there
        check(f"Candidate {self.name!r}", name=(self.name, Is(lambda v: isinstance(v, str) and v != "",
                                                                 "a non-empty string")),
              value=(self.value, Interval(0, 1)), cost=(self.cost, POSITIVE),
              floor_s=(self.floor_s, Interval(0, None)))


def default_candidates(task: str, n_jobs: int | None = -1, seed: int = 0,
                       y_range: tuple[float, float] | None = None) -> list[Candidate]:
    """The members ``fit_ensemble`` tries by default: LightGBM (its defaults at a rate of 0.1, a slower one
    sampling 60% of the columns per tree, larger trees, extremely randomised splits), XGBoost and CatBoost
    where installed, the tabular net with entity embeddings, extremely randomised trees and a random forest.

    Values are how much each added to ensembles selected out of fold on adult and rossmann (their weights);
    costs are bagged fit times relative to the default GBM, measured on adult with 2 cores (8 folds,
    refitted after stopping; the boosters and forests fit two fold models at once, the net one at a time):
    CatBoost is worth much but costs twenty GBMs, so it comes late and only with time to spare.

    >>> [c.name for c in default_candidates("classification") if c.name not in ("xgboost", "catboost")][:3]
    ['gbm', 'gbm_sub', 'gbm_large']
    """
    kw: dict[str, Any] = {"n_jobs": n_jobs, "seed": seed}
    stop: dict[str, Any] = {"n_estimators": _ROUNDS, "early_stopping_rounds": _PATIENCE}
    out = [Candidate("gbm", GBM(task, learning_rate=0.1, **stop, **kw), 1.0, 1.0)]
    if installed("xgboost"):
        out.append(Candidate("xgboost", XGBoost(task, learning_rate=0.05, max_depth=6, **stop, **kw), 1.0, 2.5))
    out += [Candidate("gbm_sub", GBM(task, learning_rate=0.05, min_child_samples=10, colsample=0.6, reg_lambda=3.0,
                                     **stop, **kw), 0.8, 1.9),
            Candidate("gbm_large", GBM(task, learning_rate=0.03, num_leaves=128, min_child_samples=5,
                                       colsample=0.9, **stop, **kw), 0.5, 2.3),
            Candidate("net", TorchTabular(task, layers=[200, 100], epochs=5, lr=1e-2, bs=256, seed=seed,
                                          y_range=y_range), 0.2, 2.2, floor_s=5 * NET_EPOCH_S),
            Candidate("gbm_xt", GBM(task, learning_rate=0.05, params={"extra_trees": True}, **stop, **kw), 0.4,
                      2.7),
            Candidate("extra_trees", ExtraTrees(task, n_estimators=60, min_samples_leaf=3, **kw), 0.15, 1.1)]
    if installed("catboost"):
        out.append(Candidate("catboost", CatBoost(task, learning_rate=0.1, depth=6, **stop, **kw), 0.8, 20.0))
    out.append(Candidate("random_forest", RandomForest(task, n_estimators=60, min_samples_leaf=3, oob_score=False,
                                                       **kw), 0.1, 1.7))
    return out


def stacker(task: str, n_jobs: int | None = -1, seed: int = 0) -> GBM:
    """The second layer's model: a GBM with small leaves and a slow rate (it sees strong inputs, the
    members' predictions, and must not overfit them)."""
    return GBM(task, learning_rate=0.03, num_leaves=15, min_child_samples=40, colsample=0.8,
               n_estimators=_ROUNDS, early_stopping_rounds=_PATIENCE, n_jobs=n_jobs, seed=seed)


def fit_ensemble(tab: Any, time_limit: float | None = None, metric: Any = None,
                 candidates: list[Candidate | str] | dict[str, Any] | None = None, n_folds: int | None = None,
                 stack: bool = True, seed: int = 0, n_jobs: int | None = -1, verbose: bool = True,
                 folds: str = "auto", time_col: str | None = None) -> WeightedEnsemble | StackingEnsemble:
    """Bag the ``candidates`` on ``tab.train`` in order of expected value per second, select weights on their
    out-of-fold predictions, try a second stacking layer, and return the best ensemble by out-of-fold
    ``metric`` (a ``WeightedEnsemble``, or a ``StackingEnsemble`` when the second layer wins). ``report()``
    lists every candidate: its out-of-fold and validation scores, weight, fit time and what became of it.

    ``tab``: a ``Tabular`` (its ``valid`` split is only scored). ``time_limit``: seconds for everything
    but the first import of the candidates' libraries in the process (None: fit every candidate); the first
    candidate is always fitted. ``metric``: what selection optimises
    (name or Metric; default accuracy / rmse). ``candidates``: a list of :class:`Candidate` or of the names of
    :func:`default_candidates` (``["gbm", "extra_trees"]``), or a dict ``{name: unfitted backend}`` (default: every
    one of :func:`default_candidates`). ``n_folds``: folds each member is bagged
    on (default: 8 without a ``time_limit``; with one, the first member is bagged on 5, and the ensemble moves
    to 8, bagging that member again, only when its time says that every candidate fits with 8; never more than
    the training rows of the rarest class).
    A candidate whose model fails (its fit or predict raises) is left out with a warning naming it, the fold and
    the error, and its report row says ``failed: fold k of n: <error>``; the others are fitted as if it had not
    been given (the first of them always). When every candidate fails, :class:`CandidatesFailedError` names each
    failure. Errors in what applies to every candidate (the Tabular, the metric, the folds) stop the call.
    ``stack``: try the second layer. ``folds``: ``"auto"`` (the default: ``"time"`` when ``time_col`` is given or
    the Tabular was split by time (see :func:`split_in_time`: split by a ``TimeSplitter``, whose column and
    training rows' times it records); else ``"shuffled"``), ``"time"`` (every member, and the second layer,
    bagged on contiguous periods in the time order of ``time_col``: the column the Tabular's ``TimeSplitter``
    read, a date or datetime column it keeps, or a model input such as ``add_datepart``'s ``Elapsed``) or
    ``"shuffled"`` (seeded, stratified by class). The report's last row and the verbose lines say which folds
    were used.

    Example:
        >>> import numpy as np, polars as pl
        >>> from pipekit.backends import GBM, ExtraTrees
        >>> from pipekit.ensemble import fit_ensemble
        >>> from pipekit.tabular import Tabular
        >>> rng = np.random.default_rng(0)
        >>> df = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
        >>> df = df.with_columns(y=pl.when(pl.col("a") + pl.col("b") > 0).then(pl.lit("yes")).otherwise(pl.lit("no")))
        >>> tab = Tabular(df, cont_names=["a", "b"], y_names="y", splits=(np.arange(300), np.arange(300, 400)))
        >>> ens = fit_ensemble(tab, time_limit=60, metric="accuracy", n_folds=3, verbose=False,
        ...                    candidates={"gbm": GBM("classification", n_estimators=50, n_jobs=1),
        ...                                "trees": ExtraTrees("classification", n_estimators=10, n_jobs=1)})
        >>> ens.selected_on_, ens.score(tab.valid) > 0.9, ens.report_["model"].to_list()[:2]
        ('out_of_fold', True, ['gbm', 'trees'])
    """
    check_fork_safe("fit_ensemble")
    check("fit_ensemble", time_limit=(time_limit, Interval(0, None, closed="neither", none_ok=True)),
          n_folds=(n_folds, Interval(2, None, integer=True, none_ok=True)), stack=(stack, Options(True, False)),
          tab=(tab, Is(lambda t: hasattr(t, "train") and hasattr(t, "processor"),
                       "a Tabular: Tabular(df, cat_names=..., cont_names=..., y_names=..., splits=...)")),
          folds=(folds, FOLD_KINDS), time_col=(time_col, TIME_COL))
    start = time.perf_counter()
    more_folds = n_folds is None and time_limit is not None  # 5 folds, 8 if everything fits with them
    chosen_folds = n_folds is None
    if n_folds is None:
        n_folds = FOLDS if time_limit is None else FOLDS_TIMED
    train = as_data(tab.train)
    valid = as_data(tab.valid) if len(tab.valid) else None
    task = {"category": "classification", "regression": "regression"}.get(tab.processor.y_kind_)
    if task is None or train.y is None:
        raise DataError("fit_ensemble needs a Tabular with one target (a category or a number)")
    # a scikit-learn scorer's or function's pos_label / labels are the target's labels, as scikit-learn reads them
    classes = np.unique(np.asarray(train.y)) if task == "classification" else None
    # checked before anything is fitted; a plain function's direction is set by its scores
    try:
        m = checked_metric(metric, task, classes)
    except ParameterError as e:
        if task == "regression" and _classifies(metric):
            raise ParameterError(f"{e}{_NUMBER_CODES}") from None
        raise
    cands = _candidates(candidates, task, n_jobs, seed, train)
    kind, time_col, ranks = _fold_order(tab, len(train), folds, time_col, n_folds)
    # shuffled folds are stratified: each holds some rows of every class
    rarest, lowered = _rarest_class(train, task) if kind == "shuffled" else np.inf, False
    if rarest < 2:
        label, n = np.unique(np.asarray(train.y), return_counts=True)
        raise DataError(rare_class_error(label[n.argmin()].item(), 1, n_folds, tab.y_names[0]))
    if chosen_folds and rarest < n_folds:  # pipekit's number of folds, not the caller's: as many as fit
        n_folds, more_folds, lowered = int(rarest), False, True
    if verbose:
        print(f"folds: {_folds_said(kind, time_col, n_folds)}"
              + (" (no more than the training rows of the rarest class)" if lowered else ""), flush=True)
    plan = Plan(cands, time_limit, start, stack, n_folds)
    plan.fold_kind, plan.time_col = kind, time_col
    rows: list[dict[str, Any]] = []
    fitted: list[tuple[Candidate, BaggedModel]] = []
    failed: dict[str, Exception] = {}  # each candidate whose fold models failed, with the fold model's own error
    # each member's fold models predict the validation rows for the report inside their share of the time,
    # and a booster's again when refitted
    made: dict[int, Any] = {}
    queue = plan.order()
    while queue:
        c = queue.pop(0)
        expected = plan.expected(c)
        row = {"model": c.name, "expected_s": expected}
        rows.append(row)
        if fitted and not plan.fits(c, expected):
            row["status"] = "skipped: over the time limit"
            if verbose:
                print(f"{c.name}: skipped, over the time limit", flush=True)
            continue
        imported = time.perf_counter()
        _import_libraries([c])
        plan.start += time.perf_counter() - imported  # a library's first import in the process is not fitting time
        # stopped early on their own rows only: refitting on the stopping rows too comes later, as time allows
        bag = BaggedModel(c.model, n_folds=n_folds, seed=seed, name=c.name, refit_stopped=False, folds=kind,
                          time_col=time_col)
        t = time.perf_counter()
        try:
            ends = _budgeted(bag.fit_folds(train, time_limit=plan.budget(c), valid=valid, order=ranks), n_folds,
                             bag.workers()[0],
                             f"bagging {c.name}", plan, t, must_finish=not fitted)
        except Exception as e:
            if not hasattr(e, "pipekit_fold"):  # not raised by a fold model: the caller's, for every candidate
                raise
            # one model's failure: the others are fitted all the same
            row["fit_s"] = time.perf_counter() - t
            row["status"] = f"failed: {_failed_said(e)}"
            failed[c.name] = e
            warn(f"fit_ensemble: candidate {c.name!r} failed and is left out: {_failed_said(e)}")
            if verbose:
                print(f"{c.name}: failed ({_failed_said(e)}), left out", flush=True)
            continue
        row["fit_s"] = time.perf_counter() - t
        if not bag.is_fitted:
            row["status"] = "stopped: over the time limit"
            if verbose:
                print(f"{c.name}: stopped, over the time limit ({row['fit_s']:.1f} s)", flush=True)
            continue
        # the first round of fold models also pays one-off costs (a library's import, warm-up): the later
        # rounds tell the rate
        at_once = bag.workers()[0]
        rounds = -(-n_folds // at_once)
        plan.measured(c, (ends[-1] - ends[at_once]) / (rounds - 1) * rounds if rounds > 1 else ends[-1])
        if more_folds:
            more_folds = False
            if plan.everything_fits(FOLDS, at_once) and min(_rarest_class(train, task), _times(ranks)) >= FOLDS:
                # the first member told the time: every candidate fits with 8 folds, so bag it again on 8
                if verbose:
                    print(f"{c.name}: {n_folds} folds took {row['fit_s']:.1f} s; every candidate fits with "
                          f"{FOLDS} folds, bagging on {FOLDS}", flush=True)
                n_folds = plan.n_folds = FOLDS
                plan.reset()
                rows.pop()
                queue.insert(0, c)
                continue
        fitted.append((c, bag))
        row["status"] = "fitted" + (f" ({bag.stopped_on_time_} of {n_folds} fold models cut short by the time limit)"
                                    if bag.stopped_on_time_ else "")
        _keep_valid(bag, made)
        row["fit_s"] = time.perf_counter() - t
        if verbose:
            print(f"{c.name}: out-of-fold {m.name} {m.score(bag.oof_targets_, bag.oof_predictions_):.4f} "
                  f"({row['fit_s']:.1f} s)", flush=True)
    if not fitted:  # the first candidate left is always fitted, so only failures leave none
        raise CandidatesFailedError(failed) from list(failed.values())[-1]
    _refit(fitted, rows, train, valid, made, plan, n_folds, m, verbose)
    cut = [f"{c.name} ({bag.stopped_on_time_} of {n_folds})" for c, bag in fitted if bag.stopped_on_time_]
    if cut:
        limit = "the time limit" if time_limit is None else f"time_limit={time_limit:g} s"
        kept = " or ".join(dict.fromkeys(_kept_on_time(c.model) for c, bag in fitted if bag.stopped_on_time_))
        warn(f"fit_ensemble: {limit} cut short the fold models of {', '.join(cut)}: they keep {kept} by "
             "then and may score far below what they reach with more time; raise time_limit")
    # a name stays the ensembles' metric, so a file stores it and the loaded ensemble scores with it (the metric
    # object of "mape" or "rmsle" is a function of scikit-learn's, which a file cannot hold)
    return _finish(fitted, rows, m, task, train, valid, made, plan, n_folds, seed, n_jobs, verbose, ranks,
                   kept=metric if isinstance(metric, str) else m)


class CandidatesFailedError(PipekitError, RuntimeError):
    """Every candidate of ``fit_ensemble`` failed to fit: ``failures`` holds each one's error, raised by one of its
    fold models (its ``pipekit_fold`` says which), and the message names each candidate, its fold and its error."""

    def __init__(self, failures: dict[str, Exception]):
        self.failures = failures
        said = "; ".join(f"{name!r}: {_failed_said(e)}" for name, e in failures.items())
        super().__init__(f"fit_ensemble: every candidate failed, so there is no ensemble ({said}); the errors are the "
                         "models' own: fix the rows or parameters they name, or give candidates that fit")


def _failed_said(e: Exception) -> str:
    """Where and how a candidate failed, for its warning and its report row: ``fold 1 of 3: RuntimeError: ...``
    (``e.pipekit_fold``: the fold, repeat and number of folds of the fold model that raised it)."""
    return f"{fold_where(*e.pipekit_fold)}: {failure(e)}"  # type: ignore[attr-defined]


def _fold_order(tab: Any, n: int, folds: str, time_col: str | None,
                n_folds: int) -> tuple[str, str | None, np.ndarray | None]:
    """``(fold kind, time column, each training row's time rank)`` the members are bagged on. In auto mode a
    split that cannot give ``n_folds`` periods (fewer distinct times) falls back to shuffled folds, with a
    warning; ``folds='time'`` refuses it."""
    if folds == "shuffled":
        if time_col is not None:
            raise ParameterError(f"fit_ensemble: time_col={time_col!r} orders time folds, and folds='shuffled'; give "
                                 "folds='time' (or 'auto'), or no time_col")
        return "shuffled", None, None
    found = time_col is None
    if time_col is None:
        time_col = split_in_time(tab)
        if time_col is None:
            if folds == "time":
                raise ParameterError("fit_ensemble(folds='time') needs time_col=, the column of the rows' times: a "
                                     "model input such as add_datepart's 'Elapsed', or split the Tabular with a "
                                     "TimeSplitter, whose column it records")
            return "shuffled", None, None
    try:
        ranks = time_ranks(recorded_times(tab, time_col), n, where=f"column {time_col!r}")
    except DataError as e:
        if folds == "time" or not found:  # a column asked for: its times are the user's to fix
            raise
        warn(f"fit_ensemble: the training rows' times in {time_col!r} cannot order time folds ({e}); bagging on "
             "shuffled folds")
        return "shuffled", None, None
    if _times(ranks) < n_folds:
        said = (f"the training rows hold {_times(ranks):g} distinct times in {time_col!r}, too few for {n_folds} "
                "contiguous periods")
        if folds == "time":
            raise DataError(f"fit_ensemble: {said}; lower n_folds")
        warn(f"fit_ensemble: {said}; bagging on {n_folds} shuffled folds instead (for periods, lower n_folds "
             "and pass folds='time')")
        return "shuffled", None, None
    return "time", time_col, ranks


def _times(ranks: np.ndarray | None) -> float:
    """Distinct times among the training rows (no limit for shuffled folds): the periods time folds can make."""
    return np.inf if ranks is None else float(ranks.max() + 1 if len(ranks) else 0)


def recorded_times(tab: Any, col: str) -> Any:
    """The training rows' times in column ``col``: those the Tabular recorded when a ``TimeSplitter`` split it
    on ``col`` (its ``train_times``), else column ``col`` of its training rows (a model input)."""
    if col == getattr(tab, "time_col", None) and getattr(tab, "train_times", None) is not None:
        return tab.train_times
    return time_values(tab.train, col)


def split_in_time(tab: Any) -> str | None:
    """The column ``tab`` was split in time on, or None: the column its ``TimeSplitter`` read (the Tabular records
    it, ``tab.time_col``), else a date or datetime column the Tabular keeps in which its validation rows all come
    after its training rows. A number is never taken for time here (a table sorted by an id, an age or a count
    and split on its last rows is not split in time); ``fit_ensemble(time_col=...)`` names one (such as
    ``add_datepart``'s ``Elapsed``). A random split has none, so its members keep shuffled folds.

    >>> import polars as pl, datetime as dt
    >>> from pipekit.data import TimeSplitter
    >>> from pipekit.tabular import Tabular
    >>> df = pl.DataFrame({"day": [dt.date(2015, 1, d) for d in range(1, 11)], "x": range(10), "y": [1.0] * 10})
    >>> split_in_time(Tabular(df, cont_names=["x"], y_names="y", splits=TimeSplitter("day", "2015-01-08")))
    'day'
    >>> split_in_time(Tabular(df, cont_names=["x"], y_names="y", splits=(range(7), range(7, 10))))  # x is no time
    >>> split_in_time(Tabular(df, cont_names=["x"], y_names="y", splits=([0, 2, 4, 6, 8], [1, 3, 5, 7, 9])))
    """
    if getattr(tab, "time_col", None) is not None:  # a TimeSplitter's split: its validation rows come later
        return str(tab.time_col)
    frame = getattr(tab, "frame", None)
    train_idx, valid_idx = getattr(tab, "train_idx", None), getattr(tab, "valid_idx", None)
    if frame is None or train_idx is None or valid_idx is None or not len(valid_idx) or not len(train_idx):
        return None
    for name, dtype in frame.schema.items():
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            col = frame[name]
            train_last, valid_first = col.gather(train_idx).max(), col.gather(valid_idx).min()
            if train_last is not None and valid_first is not None and train_last < valid_first:  # type: ignore[operator]
                return str(name)
    return None


def _folds_said(kind: str, time_col: str | None, n_folds: int) -> str:
    return (f"{n_folds} contiguous periods in the time order of {time_col!r} (blocked, not shuffled)"
            if kind == "time" else f"{n_folds} shuffled folds")


def _kept_on_time(model: Any) -> str:
    """What a fold model of ``model`` that a time limit stopped keeps (see ``BaggedModel.fit_folds``)."""
    if isinstance(model, (RandomForest, ExtraTrees)):
        return "the trees grown"
    if isinstance(model, TorchTabular):
        return "a schedule shortened to fit"
    return "the rounds boosted" if model.stops_early() else "what they fitted"


def _rarest_class(train: Any, task: str) -> float:
    """Rows of the rarest class (no limit for regression): the folds a member can be bagged on at most."""
    if task != "classification":
        return np.inf
    return float(np.unique(np.asarray(train.y), return_counts=True)[1].min())


def _import_libraries(cands: list[Candidate]) -> None:
    """Import what the candidates fit with (``Backend.imports``) just before they are fitted, outside their
    measured time: a first import would be paid inside the first fold models' time, cut their share of a small
    limit or project their bag too slow (LightGBM's takes about 2 s with scikit-learn, torch's compiler, which
    the net's first optimizer imports, about 3 s). Nor is it counted against the limit (``fit_ensemble`` moves
    the limit's start by it): the ensemble a limit gives is the same in a new process and in one that imported them
    before, and the call takes that much longer the first time; a candidate skipped for time never imports its
    library (XGBoost's and CatBoost's take about 1 s)."""
    for name in dict.fromkeys(n for c in cands for n in getattr(c.model, "imports", ())):
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:  # the candidate's own fit says what to install
            pass


def _budgeted(steps: Any, n: int, at_once: int, description: str, plan: Plan, start: float,
              must_finish: bool) -> list[float]:
    """Run a generator of fold models (it yields the seconds spent after each; ``at_once`` of them are fitted
    side by side) under a progress bar; stop it when the folds so far project past the time limit, unless it
    must finish. Returns the yielded times."""
    bar = progress_bar(steps, total=n, description=description)
    ends = [0.0]
    for done, spent in enumerate(bar, start=1):
        ends.append(spent)
        if not must_finish and done < n and plan.overruns(projected(spent, done, n, at_once), start):
            bar.close()  # type: ignore[attr-defined]
            steps.close()  # the model is left as it was before the generator started
            break
    return ends


def projected(spent: float, done: int, n: int, at_once: int) -> float:
    """The seconds ``n`` fold models take, fitted ``at_once`` side by side, when ``done`` took ``spent``: the
    ones fitted side by side end together, so time goes by rounds of ``at_once``.

    >>> projected(30.0, 1, 8, 2), projected(30.0, 2, 8, 2), projected(60.0, 3, 8, 2), projected(30.0, 1, 8, 1)
    (120.0, 120.0, 120.0, 240.0)
    """
    return spent / -(-done // at_once) * -(-n // at_once)


def _refit(fitted: list, rows: list[dict[str, Any]], train: Any, valid: Any, made: dict[int, Any], plan: Plan,
           n_folds: int, m: Any, verbose: bool) -> None:
    """Fit the fold models that stopped early again on all their rows, member by member in the order they were
    fitted, each when its time (about that of its first pass) fits in what is left; a member whose refit would
    overrun keeps its first fold models. A refitted member predicts the validation rows again (``made``), in
    the time its refit is given."""
    by_name = {r["model"]: r for r in rows}
    for c, bag in fitted:
        row = by_name[c.name]
        row["refit"] = False
        if not c.model.stops_early():
            row["refit"] = None
            continue
        if not plan.fits(c, bag.fit_seconds_):
            continue
        t = time.perf_counter()
        steps = bag.refit_folds(train, plan.budget(c), valid=valid)
        try:
            _budgeted(steps, n_folds, bag.workers()[0], f"refitting {c.name}", plan, t, must_finish=False)
        except Exception as e:
            if not hasattr(e, "pipekit_fold"):  # not raised by a fold model: the caller's
                raise
            # refit_folds changes nothing until every fold model is refitted
            warn(f"fit_ensemble: refitting candidate {c.name!r} on its stopping rows failed ({_failed_said(e)}); "
                 "it keeps its fold models stopped on their own rows")
        if bag.refit_stopped:
            _keep_valid(bag, made)
        row["fit_s"] += time.perf_counter() - t
        row["refit"] = bag.refit_stopped
        if verbose and bag.refit_stopped:
            print(f"{c.name}: refitted on its stopping rows too, out-of-fold {m.name} "
                  f"{m.score(bag.oof_targets_, bag.oof_predictions_):.4f} ({time.perf_counter() - t:.1f} s)",
                  flush=True)


class Plan:
    """The order members are fitted in and the time each is expected to take (seconds per cost unit,
    measured on the members fitted so far)."""

    def __init__(self, cands: list[Candidate], time_limit: float | None, start: float, stack: bool, n_folds: int):
        self.cands, self.time_limit, self.start, self.stack, self.n_folds = cands, time_limit, start, stack, n_folds
        self.unit: float | None = None
        self._units: list[float] = []
        # the folds every member is bagged on (fit_ensemble's)
        self.fold_kind: str = "shuffled"
        self.time_col: str | None = None

    def order(self) -> list[Candidate]:
        return sorted(self.cands, key=lambda c: -c.value / c.cost)  # stable: ties keep the given order

    def expected(self, c: Candidate) -> float | None:
        """Seconds ``c`` is expected to take bagged: its cost in the seconds measured so far, and no less than its
        fold models' ``floor_s`` (known before anything is measured)."""
        floor = c.floor_s * self.n_folds
        if self.unit is None:
            return floor or None
        return max(c.cost * self.unit, floor)

    def stack_expected(self) -> float | None:
        return None if self.unit is None else STACK_COST * self.unit

    def measured(self, c: Candidate, seconds: float) -> None:
        if seconds <= c.floor_s * self.n_folds:  # its fixed cost, which says nothing of the seconds per cost unit
            return
        self._units.append(seconds / c.cost)
        self.unit = float(np.median(self._units))

    def reset(self) -> None:
        """Forget the times measured (the number of folds changed)."""
        self.unit, self._units = None, []

    def everything_fits(self, n_folds: int, at_once: int) -> bool:
        """Whether every candidate (the boosters refitted on their stopping rows too) and the second layer are
        expected to fit in the time left with ``n_folds`` folds instead of ``self.n_folds``, ``at_once`` fold
        models side by side (the fold models of a round end together)."""
        if self.unit is None:
            return False
        scale = -(-n_folds // at_once) / -(-self.n_folds // at_once)
        unit = self.unit * scale
        seconds = sum(max(c.cost * (2 if c.model.stops_early() else 1) * unit, c.floor_s * n_folds)
                      for c in self.cands)
        return seconds + (STACK_COST * unit if self.stack else 0.0) <= self.left()

    def left(self) -> float:
        return np.inf if self.time_limit is None else self.time_limit - (time.perf_counter() - self.start)

    def reserve(self, c: Candidate) -> float:
        """Seconds kept for the second layer while ``c`` fits: its expected time when it is worth more per
        second than ``c``."""
        return (self.stack_expected() or 0.0) if self.stack and c.value / c.cost < STACK_VALUE / STACK_COST else 0.0

    def fits(self, c: Candidate, expected: float | None) -> bool:
        """Whether ``c`` is expected to end in time, leaving room for the second layer (``reserve``)."""
        return expected is None or expected + self.reserve(c) <= self.left()

    def budget(self, c: Candidate) -> float | None:
        """The seconds ``c`` may take (None: no time limit): what is left, less the ``reserve``. Its fold models
        that can stop on time share them (``BaggedModel.fit_folds``), so even a member that takes far longer
        than expected (the first, fitted before anything was measured) ends about in time."""
        return None if self.time_limit is None else max(self.left() - self.reserve(c), 0.0)

    def overruns(self, projected_total: float, member_start: float) -> bool:
        return projected_total - (time.perf_counter() - member_start) > self.left()


#: what a regression Tabular given classification members or a classification metric is told
_NUMBER_CODES = (" (a target of numbers is a regression: for classes coded as numbers, build the Tabular with "
                 "y_block='category')")


def _classifies(metric: Any) -> bool:
    """Whether ``metric`` scores classifications (a metric named or given for classes)."""
    try:
        return metric is not None and metric_task(get_metric(metric, "classification")) == "classification"
    except PipekitError:
        return False


def _candidates(candidates: Any, task: str, n_jobs: int | None, seed: int, train: Any) -> list[Candidate]:
    def defaults() -> list[Candidate]:
        # the net's range from every training row, not each fold's own
        lo, hi = target_range(train.y) if task == "regression" else (None, None)
        return default_candidates(task, n_jobs, seed, None if lo is None or hi is None else (lo, hi))

    if candidates is None:
        return defaults()
    if isinstance(candidates, dict):
        candidates = [Candidate(str(k), v) for k, v in candidates.items()]
    if isinstance(candidates, (list, tuple)) and any(isinstance(c, str) for c in candidates):
        # the default candidates by name (candidates=["gbm", "extra_trees"]), beside candidates of one's own
        known = {c.name: c for c in defaults()}
        unknown = [c for c in candidates if isinstance(c, str) and c not in known]
        absent = list(dict.fromkeys(c for c in unknown if c in ("xgboost", "catboost")))  # candidates where installed
        if unknown and set(absent) == set(unknown):
            one = len(absent) == 1
            raise ParameterError(f"candidates: {' and '.join(absent)} "
                                 f"{'is a default candidate' if one else 'are default candidates'} only where "
                                 f"{'its package is' if one else 'their packages are'} installed, and "
                                 f"{'it is' if one else 'they are'} not: pip install {' '.join(absent)}, or leave "
                                 f"{'it' if one else 'them'} out of candidates")
        if unknown:
            raise ParameterError(f"candidates: {unknown} {'is not a name' if len(unknown) == 1 else 'are not names'} "
                                 f"of the default candidates ({', '.join(known)}"
                                 f"{'; xgboost and catboost where installed' if 'catboost' not in known else ''}); "
                                 "name those, or give Candidate(name, model) or {name: unfitted model}")
        candidates = [known[c] if isinstance(c, str) else c for c in candidates]
    bagged = [c.name for c in candidates if isinstance(c, Candidate) and isinstance(c.model, BaggedModel)] \
        if isinstance(candidates, list) else []
    if bagged:
        raise ParameterError(f"candidates {bagged} are already bagged: give fit_ensemble the backend itself "
                             "(GBM(...), not BaggedModel(GBM(...))); it bags every candidate")
    if not candidates or not all(isinstance(c, Candidate) and isinstance(c.model, Model) for c in candidates):
        raise ParameterError("candidates must be a non-empty list of Candidate(name, model, value, cost) or of the "
                             "default candidates' names (e.g. ['gbm', 'extra_trees']), or a dict {name: unfitted "
                             "pipekit model}")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ParameterError(f"candidate names must be unique, got {names}")
    bad = [c.name for c in candidates if c.model.task != task]
    if bad:
        hint = _NUMBER_CODES if task == "regression" else ""
        raise ParameterError(f"candidates {bad} are not {task} models, the Tabular's task{hint}")
    return list(candidates)


def _keep_valid(bag: BaggedModel, made: dict[int, Any]) -> None:
    """Keep what a member's fold models predicted on the validation rows as they were fitted (``fit_folds``'s
    ``valid``): its ``predict(valid)``, paid inside its time."""
    if "valid_predictions_" in vars(bag):
        made[id(bag)] = bag.valid_predictions_


def _predict_valid(model: Any, valid: Any, made: dict[int, Any]) -> None:
    """A member's or an ensemble's predictions on the validation rows (for the report only), kept by
    ``id(model)``; an ensemble combines what its members predicted."""
    if valid is not None:
        made[id(model)] = model._predict(model._prepare(valid), made) if isinstance(model, Ensemble) else \
            model.predict(valid)


def _finish(fitted: list, rows: list[dict[str, Any]], m: Any, task: str, train: Any, valid: Any,
            made: dict[int, Any], plan: Plan, n_folds: int, seed: int, n_jobs: int | None, verbose: bool,
            ranks: np.ndarray | None = None, kept: Any = None) -> WeightedEnsemble | StackingEnsemble:
    """The best of the weighted ensemble and the second layer, with the report of every candidate. ``m`` scores;
    ``kept``: the metric as the ensembles keep it (the name it was given by, which a file stores and the report's
    columns are named by; default ``m``)."""
    bags = [b for _, b in fitted]
    kept = m if kept is None else kept
    label = kept if isinstance(kept, str) else m.scoring_name
    t = time.perf_counter()
    weighted = _select(bags, m, train, plan, kept)
    y = bags[0].oof_targets_
    weights = {b.name: w for b, w in zip(weighted.members, weighted.weights_.tolist())}
    for r in rows:
        r["weight"] = weights.get(r["model"], 0.0) if r.get("status", "").startswith("fitted") else None
    _predict_valid(weighted, valid, made)
    w_row = {"model": "weighted_ensemble", "model_obj": weighted, "oof": m.score(y, _oof(weighted)),
             "fit_s": time.perf_counter() - t}
    rows.append(w_row)
    best = w_row
    if plan.stack:
        row: dict[str, Any] = {"model": "layer2_gbm", "expected_s": plan.stack_expected()}
        rows.append(row)
        if row["expected_s"] is not None and row["expected_s"] > plan.left():
            row["status"] = "skipped: over the time limit"
            if verbose:
                print("second layer: skipped, over the time limit", flush=True)
        else:
            t = time.perf_counter()
            meta = BaggedModel(stacker(task, n_jobs, seed), n_folds=n_folds, seed=seed,
                               time_limit=None if plan.time_limit is None else max(plan.left(), 1e-3),
                               folds=plan.fold_kind, time_col=plan.time_col)
            layer2 = StackingEnsemble(list(weighted.members), meta=meta, passthrough=True, metric=kept).fit(
                train, order=ranks)
            _predict_valid(layer2, valid, made)
            row.update(model_obj=layer2, oof=m.score(y, layer2.oof_predictions_), fit_s=time.perf_counter() - t)
            if verbose:
                print(f"second layer: out-of-fold {m.name} {row['oof']:.4f} (weighted ensemble {w_row['oof']:.4f}, "
                      f"{row['fit_s']:.1f} s)", flush=True)
            if m.loss(row["oof"]) < m.loss(best["oof"]):
                best = row
    for r in rows:
        if "model_obj" in r:
            r["status"] = "returned" if r is best else "fitted, not returned (worse out of fold)"
    ens: WeightedEnsemble | StackingEnsemble = best["model_obj"]
    ens.report_ = _report(rows, dict((c.name, b) for c, b in fitted), m, valid, made, plan, label)
    dropped = [r["model"] for r in rows if str(r.get("status", "")).endswith("over the time limit")]
    if dropped:
        limit = "the time limit" if plan.time_limit is None else f"time_limit={plan.time_limit:g} s"
        warn(f"fit_ensemble: {limit} left out {', '.join(dropped)} (skipped or stopped: "
             "over the time limit; ens.report_ says which); raise time_limit to fit them")
    constant = constant_oof_score(bags[0], m)
    if constant is not None and m.loss(best["oof"]) >= m.loss(constant):
        what = "the class prior" if task == "classification" else "the mean"
        cut, total = sum(b.stopped_on_time_ for b in bags), sum(len(b.models_) for b in bags)
        # a limit that cut fold models short is the likely cause; otherwise the inputs tell little of the target
        why = (f"it was given time_limit={plan.time_limit:g} s, in which {cut} of {total} fold models were cut short: "
               "raise time_limit (and check that the inputs tell the target)" if plan.time_limit is not None and cut
               else "its members learned nothing of the target that the constant does not know"
               + ("" if plan.time_limit is None else f" (time_limit={plan.time_limit:g} s cut none short)")
               + ": check the inputs and the target")
        warn(f"fit_ensemble: the returned {best['model']} scores {m.name} {best['oof']:.4g} out of fold, no better "
             f"than predicting {what} ({constant:.4g}, out of fold on the same training rows); {why}")
    return ens


def constant_oof_score(bag: BaggedModel, m: Any) -> float | None:
    """``m``'s out-of-fold score of a constant predictor on ``bag``'s folds: each fold's rows predicted with the class
    frequencies (classification) or the mean (regression) of the targets of the other folds' rows, the rows its
    fold models were fitted on. None where the metric cannot score a constant (a correlation) or gives no number.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, as_data
    >>> from pipekit.metrics import get_metric
    >>> rng = np.random.default_rng(0)
    >>> xs, y = pl.DataFrame({"a": rng.normal(size=200)}), np.where(rng.random(200) < 0.7, "no", "yes")
    >>> bag = BaggedModel(GBM("classification", n_estimators=5, n_jobs=1), n_folds=4).fit(as_data(xs, y))
    >>> round(constant_oof_score(bag, get_metric("accuracy", "classification")), 3), float((y == "no").mean())
    (0.645, 0.645)
    """
    y, folds = np.asarray(bag.oof_targets_), np.asarray(bag.folds_)
    k = None if bag.task != "classification" else np.asarray(bag.oof_predictions_).shape[1]
    pred = np.zeros((len(folds), len(y)) + ((k,) if k else ()))
    for r, of in enumerate(folds):
        for f in np.unique(of):
            rest = y[of != f]
            pred[r, of == f] = np.bincount(rest.astype(np.int64), minlength=k) / len(rest) if k else rest.mean()
    score = _quiet_score(m, y, pred.mean(0))
    return score if score is not None and np.isfinite(score) else None


def _select(bags: list, m: Any, train: Any, plan: Plan, kept: Any) -> WeightedEnsemble:
    """Caruana selection on the out-of-fold predictions, then again on the members it chose until every member
    has a weight: the ensemble holds only members it uses, and its weights are exactly what selection on
    their recorded out-of-fold predictions gives (on the chosen members the greedy walk repeats the steps
    that reached the best score, so it scores at least as well). Selection gets the time left (a slow metric
    on many rows: roc_auc takes 10 ms a step), and stops with the best ensemble so far when it runs out. ``kept``:
    the metric as the ensemble keeps it (see :func:`_finish`; default ``m``)."""
    members = list(bags)
    while True:
        left = None if plan.time_limit is None else max(plan.left(), 1e-3)
        ens = WeightedEnsemble(members, metric=kept, n_iter=100, time_limit=left).fit(train)
        if (ens.weights_ > 0).all() or ens.stopped_on_time_:  # cut short: a second walk would have no time
            ens.time_limit = None  # the call's limit, not one for whoever refits the ensemble (set_params would
            return ens             # drop the fitted weights)
        members = [b for b, w in zip(members, ens.weights_) if w > 0]


def _oof(ens: WeightedEnsemble) -> np.ndarray:
    return np.tensordot(ens.weights_, np.stack([out_of_fold(b) for b in ens.members]), axes=1)  # type: ignore[misc]


def _report(rows: list[dict[str, Any]], bags: dict, m: Any, valid: Any, made: dict[int, Any],
            plan: Plan, label: str) -> pl.DataFrame:
    """One row per candidate, the weighted ensemble and the second layer: out-of-fold and validation scores (the
    validation rows only scored: ``made`` holds what each member predicted on them, which the ensembles
    combine), weight, fit and expected seconds, and what became of it. ``label``: the metric's name in the
    columns (``oof_<label>``, ``valid_<label>``)."""
    out = []

    def valid_score(model: Any) -> float | None:  # every model fitted has predicted the validation rows
        if model is None or valid is None:
            return None
        try:
            return m.score(model.encode_y(valid.y), made[id(model)])
        except DataError as e:  # the validation rows are only scored: a score they cannot give is no score
            said.setdefault("valid", str(e).split(";")[0])
            return None

    said: dict[str, str] = {}

    for r in rows:
        model = bags.get(r["model"], r.get("model_obj"))
        oof = r["oof"] if "oof" in r else None if model is None else m.score(model.oof_targets_,
                                                                               model.oof_predictions_)
        out.append({"model": r["model"], f"oof_{label}": oof, f"valid_{label}": valid_score(model),
                    "weight": r.get("weight"), "fit_s": r.get("fit_s"), "expected_s": r.get("expected_s"),
                    "refit": r.get("refit"), "status": r.get("status")})
    if "valid" in said:
        warn(f"fit_ensemble: the validation rows cannot be scored with {m.name} ({said['valid']}): the report's "
             f"valid_{label} column is empty, and the ensemble, chosen out of fold, is returned as fitted")
    out.append({"model": "total", "fit_s": time.perf_counter() - plan.start, "status": f"time limit "
                f"{'none' if plan.time_limit is None else format(plan.time_limit, 'g') + ' s'}, "
                f"{_folds_said(plan.fold_kind, plan.time_col, plan.n_folds)}"})
    schema = {"model": pl.String, f"oof_{label}": pl.Float64, f"valid_{label}": pl.Float64, "weight": pl.Float64,
              "fit_s": pl.Float64, "expected_s": pl.Float64, "refit": pl.Boolean, "status": pl.String}
    return pl.DataFrame(out, schema=schema)
