"""The one interface of every model that is not a torch ``Learner``: backends (forests, GBMs, scikit-learn
estimators, the tabular net) and the ensembles built from them.

A backend takes processed splits of a ``Tabular`` (or :class:`~pipekit.backends.data.TabularData`)::

    model.fit(train, valid=None) -> model
    model.predict(data)          -> np.ndarray   (class probabilities for classification)
    model.predict_proba(data), model.predict_labels(data)
    model.score(data, metric=None) -> float     (any pipekit.metrics metric, by name or object)
    model.feature_importance()   -> polars.DataFrame (where the model has one)
    model.export(path); load_model(path)          (the one pipekit file format, see pipekit.save)

Backends are components (``pipekit.core.Component``): parameters are the ``__init__`` arguments,
learned state ends in ``_``, ``clone()`` gives an unfitted copy and a file is rebuilt only through the
registry (``Component.from_record``), never by running code named in it.

Example:
    >>> import polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> xs = pl.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "b": [1, 0, 1, 0] * 10})
    >>> data = as_data(xs, y=[0, 1, 0, 1] * 10)
    >>> RandomForest("classification", n_estimators=5, n_jobs=1, oob_score=False).fit(data).score(data)
    1.0
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
import polars as pl

from pipekit.backends.data import (TASKS, RowForm, TabularData, as_data, check_no_infinite, check_rows, encode_y,
                                   normalised_stats, ROW_SAMPLE, row_hashes, rows_signature, unlabelled)
from pipekit.core.archive import load, save
from pipekit.core.component import Component
from pipekit.core.errors import STATE_ERRORS, DataError, ExportError, ParameterError
from pipekit.core.forks import check_fork_safe, fork_checked
from pipekit.core.protocols import ProcessedSplit
from pipekit.core.validate import Interval, Is, Options, check_state, is_pandas
from pipekit.data.runtime import usable_cpus
from pipekit.metrics import Metric, get_metric

#: constraints most backends share
TASK = Options(*TASKS)
POSITIVE_INT = Interval(1, None, integer=True)
NAME = Is(lambda v: v is None or isinstance(v, str), "None or a display name (text)")
N_JOBS = Is(lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v != 0),
            "None, -1 or a positive int")
#: a booster's ``time_limit``: seconds, or None for no limit
TIME_LIMIT = Interval(0, None, closed="neither", none_ok=True)


class FoldStopped(Exception):
    """Raised in a fold model's fit at its next checkpoint once its bag has stopped (:class:`FoldStop`): the fold
    model is dropped, and no one waits for it."""


class FoldStop:
    """The one signal a bag's fold models (:class:`pipekit.ensemble.BaggedModel`), fitting in threads, stop on when
    the bag leaves before they are done (Ctrl-C, a fold model's error, a caller that stops asking for fold models).
    The bag sets it as the
    ``_fold_stop`` of each fold model whose backend can end a fit part-way, which checks it at its own checkpoint (a
    GBM after each boosting round, a forest between the few trees it grows at a time, the tabular net before each
    batch) and ends there with :class:`FoldStopped`: the threads end within a round, a few trees or a batch instead
    of when their fold models would have been done. A check is one read of a flag.

    >>> stop = FoldStop()
    >>> stop.check()                       # not set: nothing happens
    >>> stop.set(); stop.check()
    Traceback (most recent call last):
    ...
    pipekit.backends.base.FoldStopped: the bag this fold model was fitted for has stopped
    """

    def __init__(self) -> None:
        self._set = threading.Event()

    def set(self) -> None:
        self._set.set()

    def check(self) -> None:
        """Raise :class:`FoldStopped` once the signal is set."""
        if self._set.is_set():
            raise FoldStopped("the bag this fold model was fitted for has stopped")


class Default:
    """A default argument value marked as one: equal to, and shown as, the plain number (in a signature, a repr,
    ``get_params``), and told apart from the same number the caller wrote, so that two names of one setting given
    together are checked against what was written only (``seed=0, random_state=5`` is refused, ``random_state=5``
    alone is taken). ``__init__`` keeps the plain number (:func:`plain`)."""

    __slots__ = ()


class DefaultInt(Default, int):
    """A default whole number (:class:`Default`)."""


class DefaultFloat(Default, float):
    """A default number (:class:`Default`)."""


#: the default ``seed`` of the models that take one: 0, told apart from a ``seed=0`` the caller wrote
SEED = DefaultInt(0)


def plain(value: Any) -> Any:
    """``value`` without the mark of a :class:`Default`: the int or float it equals; any other value as it is.

    >>> type(plain(SEED)), plain(None)
    (<class 'int'>, None)
    """
    if isinstance(value, DefaultInt):
        return int(value)
    return float(value) if isinstance(value, DefaultFloat) else value


def written(**values: Any) -> dict[str, Any]:
    """The ``values`` the caller wrote: those that are not a :class:`Default`.

    >>> written(seed=SEED, n_jobs=1)
    {'n_jobs': 1}
    """
    return {k: v for k, v in values.items() if not isinstance(v, Default)}


def cores(n_jobs: int | None) -> int:
    """The cores an ``n_jobs`` setting means: None or -1 every core this process may use, else ``n_jobs``.

    >>> cores(3)
    3
    """
    if n_jobs not in (None, -1):
        return int(n_jobs)  # type: ignore[arg-type]
    return usable_cpus()


def threads(n_jobs: int | None) -> int:
    """The threads a model's ``n_jobs`` starts: :func:`cores`, never more than the cores this process may use, and
    -2 all but one (as scikit-learn reads it). A setting from another machine's file, or a crafted one (10**15
    threads overflowed CatBoost), starts no more threads than there are cores to run them.

    >>> threads(1), threads(10**15) == cores(None)
    (1, True)
    """
    available = cores(None)
    if n_jobs is None:
        return available
    n = int(n_jobs)
    return min(n, available) if n > 0 else max(1, available + 1 + n)


class Model(Component):
    """What backends and ensembles share: prediction faces, scoring with a pipekit metric, export.

    Subclasses implement ``_prepare(data) -> TabularData`` (check the model is fitted, convert and check
    the data) and ``_predict(d)`` (probabilities in ``classes_`` order, or values).

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import Model, RandomForest, as_data
    >>> xs = pl.DataFrame({"a": np.arange(40.0)})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 19, "yes", "no"))
    >>> m = RandomForest("classification", n_estimators=5, n_jobs=1).fit(data)
    >>> isinstance(m, Model), m.predict_proba(data).shape, m.predict_labels(data)[[0, -1]].tolist()
    (True, (40, 2), ['no', 'yes'])
    >>> m.score(data, "accuracy")
    1.0
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "model"
    if TYPE_CHECKING:  # what every model offers: backends store them, ensembles derive them from their members
        @property
        def task(self) -> str: ...
        @property
        def classes_(self) -> np.ndarray: ...

    #: display name in ensemble reports and error messages
    name: str | None = None
    #: the metric ``score`` uses when none is given (None: accuracy / rmse)
    metric: Any = None
    #: learned state not written as itself (large or derived, absent after loading; or kept in the model's data)
    unsaved: ClassVar[tuple[str, ...]] = ()

    def _prepare(self, data: Any) -> TabularData:
        raise NotImplementedError

    def _predict(self, d: TabularData) -> np.ndarray:
        raise NotImplementedError

    @property
    def learns_trees(self) -> bool:
        """Whether the model reads its inputs only through decision trees, which split on the values as they are
        (:func:`pipekit.sklearn.fitting.default_procs` leaves such a model's numbers unnormalised). False here: a net,
        a linear model. The boosters, the forests, a scikit-learn tree model, a bagged model of one and an ensemble of
        them say True, unless their parameters ask for linear models (XGBoost's ``booster='gblinear'``, LightGBM's
        ``linear_tree``)."""
        return False

    def stops_early(self) -> bool:
        """Whether ``fit(train, valid)`` uses ``valid`` to choose anything (a GBM stops early on it), so a
        bagged copy holds rows of its own training folds out for it."""
        return False

    def stopped_params(self, scale: float = 1.0) -> dict[str, Any]:
        """For a model fitted with early stopping: the parameters that fit it again, without a valid split, for
        ``scale`` times the rounds it kept (a bagged copy refits on its stopping rows too this way)."""
        raise NotImplementedError(f"{type(self).__name__} does not stop early")

    def predict(self, data: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) in ``classes_`` order for classification, values (n,) for
        regression."""
        check_fork_safe(f"{type(self).__name__}.predict")
        try:
            d = self._prepare(data)
        except DataError:
            if _row_count(data) == 0:  # the rows' own fault, said for this call rather than for a training split
                raise DataError("predict got 0 rows: there is nothing to predict (scikit-learn's "
                                "predict refuses an empty array too); pass at least one row, or skip the call when "
                                "the frame is empty (if len(df): model.predict(model.process(df)))") from None
            raise
        return self._predict(d)

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) in ``classes_`` order, as ``predict`` gives them; a regression model
        refuses."""
        if self.task != "classification":
            raise ParameterError(f"predict_proba needs a classification model; this one is {self.task!r}")
        return self.predict(data)

    def predict_labels(self, data: Any) -> np.ndarray:
        """Most likely class label per row (classification only)."""
        return self.classes_[self.predict_proba(data).argmax(1)]

    def encode_y(self, y: np.ndarray | None) -> np.ndarray:
        """Targets as the model sees them: class indices into ``classes_`` or float64 values."""
        return encode_y(y, self.task, self.classes_ if self.task == "classification" else None)

    def score(self, data: Any, metric: Any = None) -> float:
        """``metric`` (a name such as "accuracy", "log_loss", "rmse", "r2", or a Metric; default the model's
        ``metric``, else accuracy / rmse) of the predictions on a labelled split."""
        d = self._labelled(data, "score")
        return self.scoring_metric(metric).score(self.encode_y(d.y), self._predict(d))

    def scoring_metric(self, metric: Any = None) -> Metric:
        """``metric`` (default the model's ``metric``, else accuracy / rmse) as this fitted model is scored with it: a
        scikit-learn scorer's or function's ``pos_label`` / ``labels`` name ``classes_`` by label, as scikit-learn
        reads them (see :func:`~pipekit.metrics.lookup.with_classes`); an unfitted model's (a template refitted
        later) knows no classes yet, so they must be its positions."""
        return get_metric(self.metric if metric is None else metric, self.task,
                          self.classes_ if self.task == "classification" and self.is_fitted else None)

    def _labelled(self, data: Any, what: str) -> TabularData:
        """``data`` prepared for this model (``_prepare``), refused unless it holds targets: ``what`` (score, an
        ensemble's report) compares the predictions with them."""
        d = self._prepare(data)
        if d.y is None:
            raise unlabelled(what)
        return d

    def __sklearn_tags__(self) -> Any:
        """Refused, naming the wrappers: scikit-learn asks for an estimator's tags as its tools take it
        (``cross_val_score``, ``GridSearchCV``, ``check_is_fitted``), and a pipekit model fits on the splits of a
        Tabular, not on ``X, y``. ``sklearn.base.clone`` does not ask (it calls ``__sklearn_clone__``), so it still
        copies a model, and ``TabularClassifier(model)`` in those tools is scikit-learn's estimator around it.
        The message says whether the model is fitted (``check_is_fitted`` asks for the tags first), and where pipekit
        says it: ``model.is_fitted``."""
        name = type(self).__name__
        wrapper = "TabularRegressor" if self.task == "regression" else "TabularClassifier"
        fitted = "is fitted" if self.is_fitted else "is not fitted yet: model.fit(tab.train) fits it"
        raise ParameterError(f"{name} is a pipekit model, not a scikit-learn estimator (this {name} {fitted}; "
                             "pipekit's model.is_fitted says whether it is). Its fit takes the splits of a "
                             "Tabular (tab.train, tab.valid), not X and y. For scikit-learn's tools "
                             f"(cross_val_score, GridSearchCV, Pipeline), wrap it in {wrapper} (pipekit.sklearn), "
                             f"whose fit takes X and y: cross_val_score({wrapper}({name}(...)), X, y)")

    def feature_importance(self) -> pl.DataFrame:
        """The model's own importance of each input column (a forest's or a GBM's); a model without one refuses,
        naming ``pipekit.inspection.permutation_importance``, which works for any model."""
        raise NotImplementedError(f"{type(self).__name__} has no built-in feature importance; "
                                  "use pipekit.inspection.permutation_importance")

    def state_to_data(self) -> dict[str, Any]:
        return {k: v for k, v in self.fitted_state().items() if k not in self.unsaved}

    def export(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to one pipekit file (a zip, or a folder when ``path`` has no extension);
        ``load_model`` / ``pipekit.load`` read it back."""
        self.check_is_fitted()
        return save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        """Load a file written by ``export`` that must hold a ``cls``."""
        check_fork_safe(f"{cls.__name__}.load")
        obj = load(path)
        if not isinstance(obj, cls):
            raise ExportError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


class KeepsProcessor:
    """What keeps the fitted procs of the Tabular whose split it was fitted on as ``processor_`` (None for a bare
    frame), so that, saved and loaded in a fresh process, it still processes raw rows as that Tabular did:
    ``model.predict(model.process(df))``, as ``learn.export`` carries its processing in fastai. Every backend keeps
    them; a ``processor_`` read from a file must be the fitted procs of a Tabular, since ``process(rows)`` and
    ``processor()`` hand it raw rows. A file written before models kept them loads without them."""

    def state_from_data(self, state: dict[str, Any]) -> None:
        from pipekit.tabular.processor import TabularProcessor

        super().state_from_data(state)  # type: ignore[misc]
        p = vars(self).get("processor_")
        if p is not None and not (isinstance(p, TabularProcessor) and p.is_fitted):
            raise ExportError(f"{type(self).__name__}: processor_ must be the fitted procs of a Tabular (a fitted "
                              f"TabularProcessor), got {'an unfitted' if isinstance(p, TabularProcessor) else 'a'} "
                              f"{type(p).__name__}")

    def processor(self) -> Any:
        """The fitted procs of the Tabular whose split this model was fitted on (``model.processor().transform(df)``
        processes new raw rows)."""
        self.check_is_fitted()  # type: ignore[attr-defined]
        p = vars(self).get("processor_")
        if p is None:
            raise ParameterError(f"this {type(self).__name__} keeps no procs: it was fitted on a bare frame (as_data), "
                                 "or read from a file written before models kept them; process rows with the Tabular "
                                 "it was fitted on (model.predict(tab.new(df)), in the session that built it), or fit "
                                 "it on a split of a Tabular (model.fit(tab.train)) and save it again")
        return p

    def process(self, raw: Any) -> Any:
        """Raw rows (a Polars/pandas frame, a table file, a dict row, a pandas Series or a list of dict rows; with
        or without the target) processed by the procs this model was fitted with, ready for ``predict``:
        ``model.predict(model.process(df))`` gives what ``model.predict(tab.new(df))`` gave in the session that built
        the Tabular. A CSV file is read as the training table was (``Tabular.new`` reads it the same way:
        ``pipekit.tabular.core.process_new``)."""
        from pipekit.tabular.core import new_rows

        check_fork_safe(f"{type(self).__name__}.process")
        return new_rows(self.processor(), raw)


def _row_count(data: Any) -> int | None:
    """The number of rows of what ``predict`` was given, None when it is not data a model reads (``as_data`` refuses
    it with a ParameterError or DataError, or pandas or Polars cannot read it as a frame: a TypeError or
    ValueError); any other error is no verdict on the rows and is raised."""
    try:
        return len(as_data(data))
    except (TypeError, ValueError):  # ParameterError and DataError are both ValueErrors
        return None


def check_valid_split(model: Any, valid: Any) -> Any:
    """``valid`` as ``model.fit(train, valid)`` uses it: None for a split of no rows (``tab.valid`` of a Tabular with
    no validation rows, the final fit on every row), so the fit is the one without a validation split, as fastai's
    learner trains with an empty validation set. Refused when it is not a split (None, a processed split of a
    Tabular, a ``TabularData`` or a frame of inputs): an array, Series or list there is the target of a scikit-learn
    habit, ``fit(xs, y)``, which fit would take as validation rows.

    >>> from pipekit.backends import RandomForest
    >>> check_valid_split(RandomForest("regression"), [1.0, 2.0])
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: RandomForest.fit(train, valid=None) takes splits ...
    """
    if valid is None:
        return None
    if isinstance(valid, (TabularData, ProcessedSplit, pl.DataFrame)) or is_pandas(valid, "DataFrame"):
        return valid if len(valid) else None
    raise not_a_split(model, valid)


def not_a_split(model: Any, value: Any, signature: str = "train, valid=None", given: str = "valid") -> ParameterError:
    """The error for ``value``, given to ``model.fit`` as its argument ``given`` where ``fit(signature)`` takes no
    targets: ``fit(xs, y)``, a scikit-learn habit; it says how to fit on inputs and targets."""
    n = len(value) if hasattr(value, "__len__") else None
    what = f"a {type(value).__module__.split('.')[0]}.{type(value).__name__}".replace("builtins.", "")
    name = type(model).__name__
    return ParameterError(f"{name}.fit({signature}) takes splits (tab.train, tab.valid from a Tabular, or "
                          f"as_data(xs, y=y)), and {given} got {what}{'' if n is None else f' of {n} values'}, not a "
                          "split: to fit on inputs xs and targets y, pass model.fit(as_data(xs, y=y)) "
                          "(pipekit.backends.as_data), or use the scikit-learn wrappers TabularClassifier / "
                          "TabularRegressor (pipekit.sklearn), whose fit takes X and y")


#: a fitted model's ``procs_signature_``: the signature of the procs of the Tabular it was fitted on, or None when
#: it was fitted on a bare frame
PROCS_SIGNATURE = Is(lambda v: v is None or isinstance(v, str), "the signature of its procs (text) or null")


def _row_form_of(processor: Any, cat_features: Sequence[str],
                 feature_names: Sequence[str]) -> tuple[dict[str, int], dict[str, list[float]]]:
    """What a model fitted after the procs ``processor`` holds new rows to (its ``cat_levels_`` and ``norm_stats_``):
    the number of codes of each categorical input of ``cat_features`` (``'#na#'`` and its classes), and the raw mean
    and standard deviation of each input of ``feature_names`` the procs normalise (a model fitted on a bare frame
    has no procs: ``{}`` and None). A fit writes these and loading a file works them out again from its procs,
    refusing a file whose copies differ: both come from here, so what a fit wrote always loads."""
    vocabs = processor.classes_
    levels = {c: len(vocabs[c]) for c in cat_features if c in vocabs}
    scales = {c: [m, s] for c, (m, s) in normalised_stats(processor).items() if c in feature_names}
    return levels, scales


class Backend(KeepsProcessor, Model):
    """Shared behaviour of the backends. Subclasses implement ``_fit(d, valid)`` (setting the learned
    model in ``model_``, or the attribute named by ``model_attr``), ``_predict(d)``, and, when the learned
    model is not plain data, ``model_to_data()`` / ``model_from_data(data)``.

    Fitted attributes: ``feature_names_``, ``cat_features_``, ``classes_`` (classification, labels
    sorted), ``procs_signature_``, ``cat_levels_`` and ``cat_dtypes_`` (the number of codes of each categorical input
    and the type they came in, when fitted on a Tabular's split), ``processor_`` (the fitted procs of that Tabular,
    None for a bare frame: ``process(df)`` applies them to raw rows, see :class:`KeepsProcessor`), ``norm_stats_``
    (the raw mean and standard deviation of each normalised input, when fitted on a Tabular's split:
    :func:`~pipekit.backends.data.check_rows` holds bare frames to them), ``train_rows_signature_`` (of the training rows, see ``rows_signature``), ``valid_score_``
    (when fitted with a ``valid`` split).

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> xs = pl.DataFrame({"a": np.arange(40.0), "c": np.arange(40) % 3})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2, cat_names=["c"])
    >>> rf = RandomForest("regression", n_estimators=5, n_jobs=1).fit(data)
    >>> rf.feature_names_, rf.cat_features_, rf.predict(data).shape
    (['a', 'c'], ['c'], (40,))
    >>> rf.clone().get_params()["n_estimators"], hasattr(rf.clone(), "model_")
    (5, False)
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    model_attr: ClassVar[str] = "model_"
    #: the modules fitting imports (a caller with a time budget imports them first, outside the fold models' time)
    imports: ClassVar[tuple[str, ...]] = ()
    task: str
    classes_: np.ndarray
    feature_names_: list[str]
    cat_features_: list[str]
    procs_signature_: str | None
    #: whether a ``time_limit`` stopped the fit (a bagged model: how many of its fold models it stopped)
    stopped_on_time_: int

    def fit(self, train: Any, valid: Any = None, sample_weight: Any = None) -> Any:
        """Fit on ``train``; ``valid`` (optional) is scored into ``valid_score_`` (and stops a GBM early).
        ``sample_weight``: each training row's weight in the loss (one non-negative number per row), for the
        backends whose library weighs rows (GBM, the forests, XGBoost, CatBoost, a scikit-learn model whose fit
        takes ``sample_weight``); the others refuse it."""
        check_fork_safe(f"{type(self).__name__}.fit")
        valid = check_valid_split(self, valid)
        d = as_data(train)
        if sample_weight is not None:
            d = replace(d, weight=self._checked_weights(sample_weight, len(d)))
        self._setup(d)
        v = None if valid is None else self._prepare(valid)
        if v is not None and v.y is None:
            raise DataError("the valid split has no targets; scoring and early stopping need labels")
        self._fit(d, v)
        self.valid_score_ = None if v is None else self.score(v)
        return self

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        raise NotImplementedError

    def takes_weights(self) -> bool:
        """Whether ``fit`` takes ``sample_weight`` (``_fit`` then reads ``d.weight``)."""
        return False

    def _checked_weights(self, sample_weight: Any, n: int) -> np.ndarray:
        who = f"{type(self).__name__}.fit"
        if not self.takes_weights():
            raise ParameterError(f"{who} takes no sample_weight: the model it fits does not weigh rows; GBM, "
                                 "RandomForest, ExtraTrees, XGBoost, CatBoost and scikit-learn models whose fit takes "
                                 "sample_weight do")
        try:
            w = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError(f"{who}: sample_weight must be numbers, one per training row") from None
        if w.ndim != 1 or len(w) != n:
            raise ParameterError(f"{who}: sample_weight has shape {w.shape}; give one number per training row ({n})")
        if not np.isfinite(w).all() or (w < 0).any():
            i = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
            raise ParameterError(f"{who}: sample_weight at row {i} is {w[i]}; weights must be finite and not negative")
        if not w.sum() > 0:
            raise ParameterError(f"{who}: sample_weight is zero for every row; at least one row must count")
        return w

    def _deadline(self) -> float | None:
        """When fitting must stop (``time.perf_counter()``), or None: for a backend with a ``time_limit`` (the
        boosters, the forests, the tabular net), called as its fit starts; ``stopped_on_time_`` then says
        whether the limit stopped it."""
        self.stopped_on_time_ = False
        limit = getattr(self, "time_limit", None)
        return None if limit is None else time.perf_counter() + limit

    def _setup(self, train: TabularData) -> None:
        if train.y is None:
            raise DataError("the training split has no targets (ys); pass a labelled split to fit: tab.train, or for "
                            "a frame of inputs and its targets as_data(xs, y=y)")
        if len(train) == 0:
            raise DataError("the training split is empty")
        check_no_infinite(train, train.feature_names, f"{type(self).__name__}.fit")
        self.feature_names_ = list(train.feature_names)
        self.cat_features_ = [c for c in train.cat_names if c in self.feature_names_]
        self.procs_signature_ = train.procs_signature
        self.processor_ = train.processor  # saved with the model: a loaded one processes raw rows (process(df))
        self.train_rows_signature_ = rows_signature(train)  # an ensemble never chooses weights on these rows
        # nor, in this session, on them reordered or in part: a sample of them (bagged.fitted_on)
        self._train_row_hashes, self._train_rows = row_hashes(train)[:ROW_SAMPLE], len(train)
        form: tuple[dict[str, int], dict[str, list[float]] | None] = ({}, None) if train.processor is None else \
            _row_form_of(train.processor, self.cat_features_, self.feature_names_)
        self.cat_levels_, self.norm_stats_ = form
        schema = train.xs.schema  # once: each read rebuilds it, a cost that grows with the columns
        self.cat_dtypes_ = {c: str(schema[c]) for c in self.cat_levels_}
        kind = getattr(train.processor, "y_kind_", None) if train.processor is not None else None
        if kind in ("category", "regression") and (self.task == "classification") != (kind == "category"):
            raise DataError(f"{type(self).__name__}(task={self.task!r}) cannot fit a Tabular whose target is a "
                            f"{'category' if kind == 'category' else 'number (a regression)'}: give task="
                            f"{'classification' if kind == 'category' else 'regression'!r}, or build the Tabular with "
                            f"y_block={'regression' if kind == 'category' else 'category'!r}")
        y = train.y
        if self.task == "classification":
            if y.dtype.kind == "f" and np.isnan(y).any():
                raise DataError("the training target has NaN values; drop or fill those rows first")
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise DataError(f"classification needs at least 2 classes in train; found {self.classes_.tolist()}")
        else:
            bad = ~np.isfinite(encode_y(y, "regression"))
            if bad.any():
                raise DataError(f"the training target has {int(bad.sum())} NaN or infinite value(s), first at row "
                                f"{int(np.flatnonzero(bad)[0])}; drop those rows (a log of zero is -inf)")

    def _prepare(self, data: Any) -> TabularData:
        self.check_is_fitted()
        d = as_data(data, cat_names=None if isinstance(data, ProcessedSplit) else self.cat_features_)
        check_rows(d, self.row_form())
        return d

    def row_form(self) -> RowForm:
        """What the rows this model was fitted on look like (:func:`~pipekit.backends.data.check_rows` holds new
        rows to it); what a file written before it was recorded lacks is not known."""
        state = vars(self)
        dtypes, scales = state.get("cat_dtypes_") or {}, state.get("norm_stats_")
        return RowForm(self.feature_names_, self.procs_signature_,
                       {c: (n, dtypes.get(c)) for c, n in (state.get("cat_levels_") or {}).items()},
                       None if scales is None else {c: (m, s) for c, (m, s) in scales.items() if c in self.feature_names_})

    #: the dtype this backend's library computes in (None: float32, float64 where a column needs it; see
    #: :meth:`TabularData.matrix`)
    matrix_dtype: Any = None

    def matrix(self, d: TabularData, order: Literal["C", "F"] = "C") -> np.ndarray:
        return d.matrix(self.feature_names_, order=order, dtype=self.matrix_dtype)

    # -- files ----------------------------------------------------------------------------------------
    def model_to_data(self) -> Any:
        """The learned model as data (override when it is an object, e.g. a LightGBM booster)."""
        return getattr(self, self.model_attr)

    def model_from_data(self, data: Any) -> Any:
        return data

    def state_to_data(self) -> dict[str, Any]:
        state = super().state_to_data()
        if state:
            state[self.model_attr] = self.model_to_data()
        return state

    def state_from_data(self, state: dict[str, Any]) -> None:
        state = dict(state)
        model = state.pop(self.model_attr, None)
        if not state:
            return  # an unfitted model's record
        names, cats = state.get("feature_names_"), state.get("cat_features_")
        if not (isinstance(names, list) and names and isinstance(cats, list)
                and all(isinstance(c, str) for c in names + cats)):
            raise ExportError(f"{type(self).__name__}: feature_names_ must be a non-empty list of column names and "
                              "cat_features_ a list of column names")
        if self.task == "classification" and not (isinstance(state.get("classes_"), np.ndarray)
                                                  and state["classes_"].ndim == 1 and len(state["classes_"]) >= 2):
            raise ExportError(f"{type(self).__name__}: a classifier's state needs its classes_ (an array of labels)")
        levels = state.get("cat_levels_", {})
        if not (isinstance(levels, dict) and all(k in cats and type(v) is int and v >= 1 for k, v in levels.items())):
            raise ExportError(f"{type(self).__name__}: cat_levels_ must map categorical inputs to their number of codes")
        dtypes, scales = state.get("cat_dtypes_", {}), state.get("norm_stats_")
        if not (isinstance(dtypes, dict) and all(k in levels and isinstance(v, str) for k, v in dtypes.items())):
            raise ExportError(f"{type(self).__name__}: cat_dtypes_ must map categorical inputs to the type of their codes")
        if not (scales is None or (isinstance(scales, dict) and all(
                isinstance(v, list) and len(v) == 2 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v) and v[1] > 0
                for k, v in scales.items()))):
            raise ExportError(f"{type(self).__name__}: norm_stats_ must map normalised inputs to their raw mean and "
                              "standard deviation (finite numbers, a positive deviation), or be null")
        # new rows (and an ensemble's other members) are held to the procs this model was fitted after
        check_state(state, "checking new rows against the procs it was fitted after", procs_signature_=PROCS_SIGNATURE)
        super().state_from_data(state)
        self._derive_row_form(state)
        if model is None:
            raise ExportError(f"{type(self).__name__}: the state holds no {self.model_attr}")
        try:
            setattr(self, self.model_attr, self.model_from_data(model))
        except ExportError as e:
            raise ExportError(f"{type(self).__name__}: {e}") from None
        except STATE_ERRORS as e:
            raise ExportError(f"{type(self).__name__}: the stored model is malformed ({type(e).__name__}: {e})") from e

    def _derive_row_form(self, state: dict[str, Any]) -> None:
        """Set ``cat_levels_`` and ``norm_stats_`` of a model read from a file from its ``processor_``, the fitted
        procs they were taken from at fit: ``row_form`` holds bare new frames to them, so the file's copies are not
        trusted, and a copy that disagrees with its procs is refused, naming the field. A file without procs (fitted
        on a bare frame, or written before models kept them) keeps its copies as they are, and one written before
        a copy was kept still lacks it (what rows it holds new frames to is unchanged)."""
        p = vars(self).get("processor_")
        if p is None:
            return
        levels, scales = _row_form_of(p, self.cat_features_, self.feature_names_)
        name = type(self).__name__
        given_levels = state.get("cat_levels_")
        if given_levels is not None:
            if (c := differing_column(given_levels, levels)) is not None:
                raise ExportError(
                        f"{name}: state field 'cat_levels_.{c}' is {given_levels.get(c, 'missing')}, but its procs "
                        f"(processor_) give column {c!r} {levels[c] if c in levels else 'no'} codes ('#na#' and its "
                        "classes); the file is damaged or was not written by pipekit.save")
        given_scales = state.get("norm_stats_")
        if given_scales is not None:
            if (c := differing_column(given_scales, scales)) is not None:
                mine, theirs = scales.get(c), given_scales.get(c)
                raise ExportError(
                    f"{name}: state field 'norm_stats_.{c}' is {theirs if theirs is not None else 'missing'}, but "
                    f"its procs (processor_) "
                    + (f"normalise column {c!r} with mean and standard deviation {mine}" if mine is not None
                       else f"do not normalise column {c!r}")
                    + "; the file is damaged or was not written by pipekit.save")
        if given_levels is not None:
            self.cat_levels_ = levels
        if given_scales is not None:
            self.norm_stats_ = scales


def differing_column(given: Mapping[str, Any], derived: Mapping[str, Any]) -> str | None:
    """The first column (in sorted order) on which two row forms disagree (column -> level count, or column ->
    ``[mean, std]``, numbers to 1e-6; a column only one has disagrees), else None: a file's copy against what its
    procs give, a fold model's against its bag's.

    >>> differing_column({"age": [38.5, 13.6], "race": 6}, {"age": [38.5, 13.6], "race": 6}) is None
    True
    >>> differing_column({"age": [0.0, 1.0]}, {"age": [38.5, 13.6]})
    'age'
    """
    for c in sorted(set(given) | set(derived)):
        a, b = given.get(c), derived.get(c)
        if a is None or b is None or not np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                                                     rtol=1e-6, atol=0.0):
            return c
    return None


def kept_rounds(best: Any, held: int) -> int:
    """The boosting rounds a fitted booster predicts with: ``best``, the best round its library's early stopping
    reported (counted from 1; None or 0: none reported), but no more than the ``held`` rounds the booster keeps; every
    round held when none was reported. LightGBM's ``lgb.train`` counts the rounds of its loop, and a round in which
    no tree finds a split adds no tree (a few rows, ``extra_trees``), so its ``best_iteration`` can pass the trees it
    keeps (866 of 676 on 100 rows of the wine data); LightGBM then predicts with every tree held, as this does.

    >>> kept_rounds(866, 676), kept_rounds(120, 676), kept_rounds(0, 676), kept_rounds(None, 676)
    (676, 120, 676, 676)
    """
    return min(int(best), held) if best is not None and best > 0 else held


class Booster(Backend):
    """A gradient-boosted backend (LightGBM, XGBoost, CatBoost): at most ``n_estimators`` rounds, stopping
    after ``early_stopping_rounds`` without progress on the valid split, keeping ``best_iteration_``, or
    at the end of the first round after ``time_limit`` seconds of fitting, keeping the rounds done so far (the
    best of them on the valid split when it stops early); ``stopped_on_time_`` says whether the time stopped it. A fit the
    time stops depends on the machine's speed, so it is no longer reproducible round for round."""

    @property
    def learns_trees(self) -> bool:
        """True: boosted trees split on the values as they are (a subclass whose parameters ask for linear models
        says False for them)."""
        return True

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    n_estimators: int
    early_stopping_rounds: int | None
    time_limit: float | None
    best_iteration_: int
    stopped_on_time_: bool

    def stops_early(self) -> bool:
        return self.early_stopping_rounds is not None

    def takes_weights(self) -> bool:
        return True  # each library weighs a row's gradient

    def stopped_params(self, scale: float = 1.0) -> dict[str, Any]:
        self.check_is_fitted()
        return {"n_estimators": max(1, int(round(self.best_iteration_ * scale))), "early_stopping_rounds": None}


def feature_frame(names: Sequence[str], values: np.ndarray, column: str = "importance") -> pl.DataFrame:
    return pl.DataFrame({"feature": list(names), column: np.asarray(values, dtype=np.float64)}).sort(
        column, descending=True)


@dataclass
class Contributions:
    """Per-row additive explanation: ``bias + values.sum(features) == prediction`` (per class for
    classification). For a forest ``prediction`` is the probability / value; for a GBM it is the raw score
    (log-odds for binary, per-class raw scores for multiclass, the value for regression).

    ``bias``: (n,) or (n, n_classes); ``values``: (n, n_features) or (n, n_features, n_classes).

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> xs = pl.DataFrame({"a": np.arange(40.0), "noise": np.zeros(40)})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2)
    >>> c = RandomForest("regression", n_estimators=5, n_jobs=1).fit(data).contributions(data.take(np.arange(3)))
    >>> c.space, c.values.shape, bool(np.allclose(c.bias + c.values.sum(1), c.prediction))
    ('value', (3, 2), True)
    >>> c.frame(0)["feature"].to_list()
    ['a', 'noise']
    """

    bias: np.ndarray
    values: np.ndarray
    feature_names: list[str]
    prediction: np.ndarray
    space: str  # "probability", "raw_score" or "value"
    classes: np.ndarray | None = None

    def __repr__(self) -> str:
        # a summary, not the arrays (rows x features x classes numbers): the first rows' largest terms, the
        # class shown being the one ``frame`` shows by default (the last, the positive one of two)
        n, n_features = self.values.shape[:2]
        labels = [] if self.classes is None else np.asarray(self.classes).tolist()
        shown = repr(labels) if len(labels) <= 10 else f"[{', '.join(map(repr, labels[:10]))}, ...]"
        kind = f"{len(labels)} classes {shown}" if labels else "regression"
        lines = [f"Contributions({n} rows x {n_features} features, {self.space}, {kind})"]
        cls = f" of {labels[-1]!r}" if labels else ""
        show, terms = 3, 3
        for row in range(min(n, show)):
            top = self.frame(row).head(terms)
            bias, pred = (np.asarray(a[row], dtype=np.float64).reshape(-1)[-1] for a in (self.bias, self.prediction))
            largest = ", ".join(f"{f} {c:+.4g}" for f, c in top.iter_rows())
            more = ", ..." if n_features > len(top) else ""
            lines.append(f"  row {row}: {self.space}{cls} {pred:.4g} = bias {bias:.4g} + {n_features} terms, largest "
                         f"{largest}{more}")
        if n > show:
            lines.append(f"  ... {n - show} more rows")
        lines.append("  .frame(row) lists a row's contributions, largest first")
        return "\n".join(lines)

    def for_class(self, row: int, cls: Any = None) -> tuple[np.ndarray, Any, Any, Any]:
        """One row's contributions (n_features,), bias and prediction for the class label ``cls`` (None: the last
        class, the positive one of two), and that label (None for regression). A two-class model giving one raw
        score (a GBM's log-odds of the last class) gives the first class the same log-odds negated. A label the
        model does not know is refused naming the ones it knows, as is any ``cls`` for regression.

        >>> c = Contributions(bias=np.array([0.5]), values=np.array([[1.0, -0.25]]), feature_names=["a", "b"],
        ...                   prediction=np.array([1.25]), space="raw_score", classes=np.array(["no", "yes"]))
        >>> values, bias, pred, label = c.for_class(0, "no")
        >>> values.tolist(), float(bias), float(pred), label
        ([-1.0, 0.25], -0.5, -1.25, 'no')
        """
        values, bias, pred = self.values[row], self.bias[row], self.prediction[row]
        if self.classes is None and cls is not None:
            raise ParameterError(f"cls={cls!r} picks a class of a classifier's contributions; these explain a "
                                 f"{self.space} (regression): leave cls out")
        labels = None if self.classes is None else list(np.asarray(self.classes).tolist())
        if values.ndim == 2 or np.ndim(bias) == 1 and np.size(bias) > 1:  # one column per class
            labels = labels if labels is not None else list(range(values.shape[-1]))
            k = class_index(labels, cls, "cls")
            values, bias = values[:, k], bias[k]
            if np.ndim(pred) > 0 and np.size(pred) > 1:
                pred = pred[k]
            return values, bias, pred, labels[k]
        if labels is None:
            return values, bias, pred, None
        k = class_index(labels, cls, "cls")
        if k != len(labels) - 1:
            if not (self.space == "raw_score" and len(labels) == 2):
                raise ParameterError(f"cls={cls!r}: these contributions hold the {self.space} of class "
                                     f"{labels[-1]!r} only; leave cls out")
            values, bias, pred = -values, -bias, -pred  # the log-odds of the other class of two, negated
        return values, bias, pred, labels[k]

    def frame(self, row: int, cls: Any = None) -> pl.DataFrame:
        """Contributions of one row as a frame (feature, contribution) sorted by magnitude; ``cls``: the class
        label whose contributions to show, as :meth:`for_class` reads it (None: the last class, the positive one of
        two; a two-class GBM's first class gets the log-odds of the last, negated)."""
        v = self.for_class(row, cls)[0]
        return pl.DataFrame({"feature": self.feature_names, "contribution": np.asarray(v, dtype=np.float64)}).sort(
            pl.col("contribution").abs(), descending=True)


def array_rows(data: Any, names: Sequence[str], who: str,
               codes: Mapping[str, tuple[int, str | None]] | None = None) -> Any:
    """``data`` as a frame of the columns ``names`` where it is an array of numbers (the book's ``row.values``: one
    row, 1-D, or rows, 2-D, with the values in the order of ``names``); anything else as it is. An array of another
    width is refused, naming the columns expected. ``codes`` (a fitted model's ``row_form().codes``: each category
    input's number of codes and integer type) turns those columns back into the codes they hold, as the procs
    write them (an array of mixed columns holds them as floats); a value that is not one of the codes is refused,
    naming the column.

    >>> array_rows(np.array([1.0, 2.0]), ["a", "b"], "RandomForest").rows()
    [(1.0, 2.0)]
    >>> array_rows(np.array([0.5, 2.0]), ["a", "c"], "RandomForest", codes={"c": (3, "Int8")}).schema["c"]
    Int8
    """
    if not isinstance(data, (np.ndarray, list, tuple)):
        return data
    X = np.asarray(data)
    X = X[None, :] if X.ndim == 1 else X
    if X.ndim != 2 or X.shape[1] != len(names) or X.dtype.kind not in "biuf":
        what = f"shape {X.shape}" if X.dtype.kind in "biuf" else f"values of type {X.dtype}"
        raise DataError(f"{who} was fitted on {len(names)} features; the array has {what}: give rows of {len(names)} "
                        f"numbers in the order of its columns {list(names)[:20]} (row.values), or a frame with those "
                        "columns")
    cols: dict[str, Any] = {c: X[:, j] for j, c in enumerate(names)}
    for c, (n, code) in (codes or {}).items():
        if c in cols:
            cols[c] = _category_codes(cols[c], c, n, code, who)
    return pl.DataFrame(cols)


def _category_codes(values: np.ndarray, column: str, n: int, code: str | None, who: str) -> pl.Series:
    """The category column ``column`` of an array's rows as codes of the integer type ``code`` (None: Int64),
    refusing a value that is not a whole number from 0 to ``n - 1``."""
    bad = ~np.isfinite(values) | (values % 1 != 0) | (values < 0) | (values >= n) if values.dtype.kind == "f" \
        else (values < 0) | (values >= n)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"category column {column!r} holds {values[row].item()!r} (row {row}) in the array, not one of the "
                        f"{n} category codes {who} was fitted on (whole numbers 0 to {n - 1}); give the rows as "
                        f"processed (tab.valid.xs.values, or tab.new(df).xs.values)")
    dtype = getattr(pl, code, None) if code else None
    return pl.Series(column, values.astype(np.int64)).cast(dtype if dtype is not None else pl.Int64)


def class_index(classes: Sequence, cls: Any, param: str) -> int:
    """Position of the class label ``cls`` in ``classes`` (None: the last class, the positive one for two
    classes); the error names ``param`` and the labels to choose from.

    >>> class_index(["<50k", ">=50k"], None, "cls"), class_index(["<50k", ">=50k"], "<50k", "cls")
    (1, 0)
    """
    labels = list(np.asarray(classes).tolist())
    if cls is None:
        return len(labels) - 1
    if isinstance(cls, np.generic):
        cls = cls.item()
    if cls not in labels:
        raise ParameterError(f"{param}={cls!r} is not one of the model's classes {labels}; pass one of them")
    return labels.index(cls)


#: any model or ensemble written by ``export`` or ``pipekit.save``: ``pipekit.load`` under the name the
#: backends use (nothing needs importing first, and loading never runs code from the file); in a worker forked from
#: a process whose Polars threads were running it says so rather than hang (pipekit.core.forks)
load_model = fork_checked("load_model")(load)
