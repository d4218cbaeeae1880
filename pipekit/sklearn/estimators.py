"""``TabularClassifier`` and ``TabularRegressor``: pipekit's table processing and any of its backends behind
scikit-learn's estimator contract, so they work in ``cross_val_score``, ``GridSearchCV``, ``Pipeline``,
``StackingClassifier`` and the rest of scikit-learn's tools.

``fit(X, y)`` takes a pandas or Polars frame, a pyarrow table or a NumPy array; text, category, boolean
and date columns (dates and datetimes, and text holding ISO dates) are handled by the procs (``Categorify``,
``FillMissing``, and ``Normalize`` for a backend that is not made of trees) and date parts, not by the user. The fitted pipekit pieces stay reachable: ``model_`` is the backend (or ensemble) with its
own API, ``processor_`` the fitted processing, and ``process(X)`` the processed split the backend reads,
so ``clf.model_.predict(clf.process(X))`` is what ``clf.predict_proba(X)`` returns. A backend trained the
pipekit way (on a ``Tabular``) becomes an estimator with :meth:`TabularClassifier.from_model`.

Saving: ``pipekit.save(clf, "model.pipekit")`` / ``pipekit.load`` is the safe way to ship a model (the file
is data; loading rebuilds registered classes and never runs code from it). ``pickle`` and ``joblib`` work,
because scikit-learn's own tools (``clone`` across processes, ``joblib`` caches) rely on them, but loading
a pickle runs whatever code it names: unpickle only files you wrote yourself.

Example:
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> X = pl.DataFrame({"colour": rng.choice(["red", "blue"], 200), "size": rng.normal(size=200)})
    >>> y = np.where((X["colour"] == "red").to_numpy() ^ (X["size"] > 0).to_numpy(), "yes", "no")
    >>> clf = TabularClassifier(GBM("classification", n_estimators=50, min_child_samples=5), random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.95, clf.classes_.tolist(), clf.n_features_in_
    (True, ['no', 'yes'], 2)
    >>> from sklearn.model_selection import cross_val_score
    >>> bool(cross_val_score(clf, X, y, cv=3).mean() > 0.9)
    True
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from pipekit.backends import GBM  # noqa: F401  (the docstring's example)
from pipekit.backends.base import Backend, Model
from pipekit.backends.booster_files import lightgbm_names, monotone_values
from pipekit.backends.data import as_data, procs_signature
from pipekit.core.component import Component, param_names
from pipekit.core.errors import DataError, NotFittedError, ParameterError, collecting
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import Is, check_state
from pipekit.data.dates import AWARE, NUMERIC_FORMATS, OFFSET, in_order_of, text_date_layouts
from pipekit.tabular.dates import month_name_format
from pipekit.ensemble import BaggedModel
from pipekit.sklearn.fitting import (BACKENDS, default_backend, default_procs, fit_model, model_task,
                                      seed_all)
from pipekit.sklearn.frames import (as_frame, check_filled, column_roles, date_part_names, date_parts,
                                    default_columns)
from pipekit.tabular.core import TabularSplit
from pipekit.tabular.processor import _COLUMNS, TabularProcessor
from pipekit.tabular.procs import FillMissing, TabularProc, unshared_procs

__all__ = ["EstimatorNotFittedError", "TabularClassifier", "TabularRegressor"]


class EstimatorNotFittedError(NotFittedError, _SklearnNotFittedError):
    """pipekit's :class:`~pipekit.core.NotFittedError` that scikit-learn's tools recognise as theirs.

    >>> from sklearn.exceptions import NotFittedError
    >>> from pipekit.sklearn import TabularClassifier
    >>> from pipekit.sklearn.estimators import EstimatorNotFittedError
    >>> try:
    ...     TabularClassifier().predict([[1.0]])
    ... except NotFittedError as e:  # scikit-learn's own check catches it too
    ...     print(type(e).__name__, isinstance(e, EstimatorNotFittedError))
    EstimatorNotFittedError True
    """


def _names_or_none(v: Any) -> bool:
    return v is None or (isinstance(v, (list, tuple)) and all(
        isinstance(c, str) or (isinstance(c, numbers.Integral) and not isinstance(c, bool)) for c in v))


_NAMES = Is(_names_or_none, "None or a list of column names (or positions)")
def _kept_layouts(v: Any) -> bool:
    """Whether ``v`` is what a fitted estimator keeps of a text date column: a layout of day and month as numbers
    (a column written in one layout, as every file written before columns in several layouts were kept holds), or
    a list of several of them in one day and month order."""
    layouts = [v] if isinstance(v, str) else v
    return isinstance(layouts, list) and len(layouts) >= (1 if isinstance(v, str) else 2) and all(
        isinstance(f, str) and f in NUMERIC_FORMATS and f[:2] == layouts[0][:2] for f in layouts)


#: a text date column's layouts, as a file holds them: ones pipekit reads dates in, by column name
_DATE_FORMATS = Is(lambda v: isinstance(v, dict) and all(isinstance(k, str) and _kept_layouts(f) for k, f in v.items()),
                   "a dict of column names to date layouts pipekit reads (such as '%d/%m/%Y', or a list of them)")
#: the date_format parameter: one layout for every text date column, or one per column
_DATE_FORMAT = Is(lambda v: v is None or (isinstance(v, str) and "%" in v) or (isinstance(v, dict) and all(
    isinstance(k, str) and isinstance(f, str) and "%" in f for k, f in v.items())),
    "None, a strftime layout such as '%d/%m/%Y' for every date column X gives as text, or a dict of column names "
    "to layouts")
#: what to do about a text date column whose every value reads both day-first and month-first
_PARSE_FIRST = {"fit": "parse it before fitting: pd.to_datetime(X[{column}], format={day!r}) (day first) or "
                       "format={month!r} (month first), or give its layout: ",
                "predict": "convert it first, X[{column}] = pd.to_datetime(X[{column}], format={day!r}) (day first) "
                           "or format={month!r} (month first), or give its layout: "}


def _text_date_layout(values: pl.Series, column: str, who: str, call: str) -> list[str] | None:
    """The layouts ``call`` (``who``'s fit or predict) reads a text date column in when no date_format gives one
    (each value in the first that reads it): the day and month order its values settle, whatever layouts they are
    written in (ambiguous ones refused, naming the fix), an ISO layout, a layout written with the month's name, or
    None for text the parser reads in a layout of its own ('2016/01/01'); a column holding a value none of them
    reads is refused, naming the value and the fix."""
    give = ("est.set_params(date_format={day!r}) on this fitted model, which reads its next rows with it" if
            call == "predict" else f"{who}(..., date_format={{day!r}})")
    fix = _PARSE_FIRST[call].replace("{column}", repr(column).replace("{", "{{").replace("}", "}}")) + give
    layouts = text_date_layouts(values, column, f"{who}.{call}", fix)
    if layouts is not None:
        return layouts
    text = values.cast(pl.String).str.strip_chars()
    named = month_name_format(text)
    if named is not None or text.null_count() == len(text):
        return None if named is None else [named]
    # any other layout the parser reads on its own ('2016/01/01'), as it reads the column: a UTC offset after the
    # time of day left out, the layout inferred from the first value
    given = text.str.replace(OFFSET, "") if text.drop_nulls().str.contains(AWARE).all() else text
    try:
        unread = text.is_not_null() & given.str.to_datetime(strict=False, time_unit="us").is_null()
    except pl.exceptions.ComputeError:  # no layout read from the first value
        unread = text.is_not_null()
    if not unread.any():
        return None
    row = int(unread.arg_true()[0])
    raise DataError(f"{who}.{call}: column {column!r} holds text that no date layout pipekit recognises reads "
                    f"({text[row]!r} at row {row}); give its layout (a strftime layout such as '%Y%m%d'), " +
                    give.replace("{day!r}", "'...'") + f", or convert it first: X[{column!r}] = "
                    f"pd.to_datetime(X[{column!r}], format=...)")


def _filter_action(w: warnings.WarningMessage) -> str:
    """The action ('always', 'default', 'module', 'once') the warning filters give the recorded warning ``w``,
    matched as ``warnings.warn_explicit`` matches them."""
    text, module = str(w.message), w.filename[:-3] if w.filename.lower().endswith(".py") else w.filename
    for action, message, category, mod, lineno in warnings.filters:  # type: ignore[attr-defined]
        if ((message is None or message.match(text)) and issubclass(w.category, category)
                and (mod is None or mod.match(module)) and (lineno == 0 or w.lineno == lineno)):
            return str(action)
    return str(warnings.defaultaction)  # type: ignore[attr-defined]


def _set_for_fit(backend: Component, params: dict[str, Any]) -> None:
    """Set ``params`` (``num_leaves``, ``rf__n_estimators``: names as the backend's ``set_params`` takes them) on
    ``backend`` for ``fit`` to check: each value the backend (or the member or part it reaches) accepts is set the
    checked way; one it refuses is stored as given, for the ParameterError to come at fit. A name it does not have
    is refused."""
    refused: dict[str, Component] = {}
    for key in sorted(params, key=lambda k: k.count("__")):  # a member replaced before its parameters are set
        path, _, leaf = key.rpartition("__")
        owner = backend.get_params(deep=True).get(path) if path else backend
        if not isinstance(owner, Component):
            backend.set_params(**{key: params[key]})  # refused, naming what the path misses
            continue
        try:
            owner.set_params(**{leaf: params[key]})
        except ParameterError:
            if leaf not in param_names(type(owner)):
                raise
            refused[key] = owner
    for key, owner in refused.items():
        leaf = key.rpartition("__")[2]
        setattr(owner, owner.param_attrs.get(leaf, leaf), params[key])
        owner.reset_state()


#: LightGBM's parameters holding one value per model input, by position (by LightGBM's own name for each): a
#: user writes them in X's column order, as for ``LGBMRegressor``, and fit rewrites them in the order of the inputs
#: the procs give the backend
_PER_INPUT = ("monotone_constraints", "cegb_penalty_feature_lazy", "cegb_penalty_feature_coupled", "feature_contri",
              "max_bin_by_feature")
#: LightGBM's lists of sets of input positions, rewritten the same way
_INPUT_SETS = ("interaction_constraints",)


class _TabularEstimator(Component, BaseEstimator):
    """What the classifier and the regressor share (see the module docstring)."""

    registry_kind = "estimator"
    task: ClassVar[str]
    #: the layout of each text date column (a file written before they were kept reads each call's own rows)
    record_defaults: ClassVar[dict[str, Any]] = {"state.date_formats_": {}, "params.date_format": None}
    param_constraints = {
        "backend": Is(lambda v: v in BACKENDS if isinstance(v, str) else isinstance(v, Model),
                      f"one of {list(BACKENDS)} or a pipekit backend or ensemble (GBM(...), RandomForest(...), "
                      "TorchTabular(...), StackingEnsemble([...]), ...)"),
        "cat_names": _NAMES, "cont_names": _NAMES, "date_names": _NAMES,
        "procs": Is(lambda v: v is None or isinstance(v, (list, tuple)) and all(
            isinstance(p, TabularProc) or (isinstance(p, type) and issubclass(p, TabularProc)) for p in v),
            "None (the backend's default procs) or a list of TabularProc classes or instances (Categorify, "
            "FillMissing, Normalize)"),
        "random_state": Is(lambda v: v is None or isinstance(v, np.random.RandomState) or (
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= int(v) < 2**32),
            "None, an int in [0, 2**32) or a numpy RandomState"),
        "date_format": _DATE_FORMAT}

    def __init__(self, backend: Any = "gbm", cat_names: Sequence[str | int] | None = None,
                 cont_names: Sequence[str | int] | None = None, date_names: Sequence[str | int] | None = None,
                 procs: Sequence[Any] | None = None, random_state: Any = None,
                 date_format: str | dict[str, str] | None = None):
        # sequences are kept as a file gives them back (lists of names, a tuple of procs)
        self.backend, self.cat_names, self.cont_names, self.date_names = (
            backend, *(list(v) if isinstance(v, tuple) else v for v in (cat_names, cont_names, date_names)))
        self.procs, self.random_state = tuple(procs) if isinstance(procs, list) else procs, random_state
        self.date_format = date_format
        # no check here: fit checks every parameter, the backend's too, as scikit-learn's estimators do, so a search
        # candidate with a bad value scores its error_score while the others are still scored

    # ------------------------------------------------------------------ scikit-learn's protocol
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # FillMissing fills (and flags) missing values
        tags.input_tags.categorical = True
        tags.input_tags.string = True  # text columns are categories, encoded by Categorify
        tags.input_tags.sparse = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    def check_is_fitted(self, what: str = "fit") -> None:
        if not self.is_fitted:
            raise EstimatorNotFittedError(f"This {type(self).__name__} instance is not fitted yet; call {what} "
                                          "with appropriate arguments before using this estimator")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` arguments; with ``deep``, the backend's as ``backend__<name>`` too, those of the
        backend a name stands for (``"rf"``: ``RandomForest``'s) included, so a search grid can be written
        from them."""
        out = super().get_params(deep)
        if deep and isinstance(self.backend, str) and self.backend in BACKENDS:
            named = default_backend(self.backend, self.task).get_params(deep=True)
            out.update({f"backend__{k}": v for k, v in named.items()})
        return out

    def set_params(self, **params: Any) -> Any:
        """Change parameters. ``backend__<name>`` with a backend given by name (``"rf"``) sets the parameter on
        the backend that name stands for, which becomes the ``backend`` parameter (``RandomForest(
        "classification", n_estimators=10)``), as ``fit`` would have made it: scikit-learn's ``GridSearchCV``
        and ``clone`` see an ordinary backend object from then on.

        A name the estimator or its backend does not have is refused here; the values are checked by ``fit``
        (scikit-learn's contract), which raises the ParameterError naming a bad one, so in a search only the
        candidate holding it scores ``error_score``.

        A fitted estimator stays fitted, as scikit-learn's do: the new values take effect at the next ``fit``
        (``model_`` is a fitted copy of the backend, never the ``backend`` parameter itself), so a fitted
        ``Pipeline`` or a search's ``best_estimator_`` given ``backend__n_jobs=1`` still predicts as before."""
        fitted = self.fitted_state()  # Component.set_params drops it (pipekit's backends do); an estimator keeps it
        try:
            backend = params.get("backend", self.backend)
            if isinstance(backend, str) and any(k.startswith("backend__") for k in params):
                params = {**params, "backend": default_backend(backend, self.task)}
            nested = {k[len("backend__"):]: v for k, v in params.items() if k.startswith("backend__")}
            super().set_params(**{k: v for k, v in params.items() if not k.startswith("backend__")})
            if nested:
                if not isinstance(self.backend, Component):
                    raise ParameterError(f"{type(self).__name__}: backend__{next(iter(nested))} reaches into backend, "
                                         f"which is {self.backend!r:.60}, not a backend with parameters")
                try:
                    self.backend.set_params(**nested)  # checked, and nothing set when a value is refused
                except ParameterError:
                    _set_for_fit(self.backend, nested)
        finally:
            for k, v in fitted.items():
                setattr(self, k, v)
        return self

    # ------------------------------------------------------------------ checking inputs
    def _backend(self) -> Model:
        backend = default_backend(self.backend, self.task) if isinstance(self.backend, str) else self.backend
        if model_task(backend) != self.task:
            raise ParameterError(f"{type(self).__name__} needs a {self.task} backend; {backend!r} is for "
                                 f"{model_task(backend)}")
        return backend

    def _date_format(self, column: str) -> str | None:
        """The layout ``date_format`` gives the text date column ``column`` (None: none given)."""
        given = self.date_format
        return given.get(column) if isinstance(given, dict) else given

    def _seed(self) -> int | None:
        rs = self.random_state
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(0, 2**31 - 1))
        return None if rs is None else int(rs)

    def _frame(self, X: Any, reset: bool) -> pl.DataFrame:
        from sklearn.utils.validation import validate_data

        who = type(self).__name__
        if not reset:
            self.check_is_fitted()
        if X is None:
            raise ValueError(f"{who} needs X, got None")
        frame = as_frame(X, who)  # shape, sparse and dtype checks come before scikit-learn's bookkeeping
        seen = X
        if isinstance(X, (pl.DataFrame, pl.LazyFrame, pa.Table, pa.RecordBatch)):
            import pandas as pd

            # the names of a Polars or Arrow input are its own columns, set as feature_names_in_ at fit and checked
            # at predict (reordered or renamed columns refused) with whatever scikit-learn is installed: before 1.9
            # it reads names only from pandas or the __dataframe__ protocol, which Polars 2 dropped, and would fit
            # on columns renamed x0, x1, ... matched by position. An empty pandas frame with the same columns is
            # what every version reads the names and their count from.
            seen = pd.DataFrame(columns=frame.columns)
        validate_data(self, seen, reset=reset, skip_check_array=True)  # n_features_in_, feature_names_in_
        columns = self.input_columns()
        if frame.columns != columns:  # an input without names (or fitted without): columns by position
            frame = frame.select([pl.col(a).alias(b) for a, b in zip(frame.columns, columns)])
        return frame

    def _targets(self, y: Any, n: int) -> np.ndarray:
        from sklearn.utils import assert_all_finite
        from sklearn.utils.validation import column_or_1d

        who = type(self).__name__
        if y is None:
            raise ValueError(f"{who} requires y to be passed, but the target y is None.")
        if isinstance(y, (pl.Series, pl.DataFrame)):
            y = y.to_numpy()
        y = column_or_1d(np.asarray(y), warn=True)
        if len(y) != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {len(y)}]")
        if self.task == "regression":
            try:
                y = np.asarray(y, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{who}: a regression target must be numeric; got values like "
                                f"{y[:3].tolist()}; use TabularClassifier for labels") from None
            assert_all_finite(y, input_name="y")
        return y

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None, eval_set: Any = None, **fit_params: Any) -> Any:
        """Fit the procs and the backend on every row of ``X`` (see the module docstring for what X may be).
        ``sample_weight``: each row's weight in the backend's loss, for a backend that weighs rows (GBM, the
        forests, XGBoost, CatBoost, a scikit-learn model whose fit takes it); the procs' statistics are not
        weighted. ``eval_set=[(X_valid, y_valid)]``, as LightGBM's estimators take it: one validation pair, processed
        by the procs fitted on ``X`` and given to the backend as its valid split (``backend.fit(train, valid)``), so a
        GBM stops early on it (``best_iteration_``) and ``model_.valid_score_`` scores it.

        A GBM's parameters that hold one value per input by position (``monotone_constraints``,
        ``interaction_constraints``, ``cegb_penalty_feature_lazy`` / ``_coupled``, ``feature_contri`` and its
        aliases such as ``feature_penalty``, ``max_bin_by_feature``) are written in X's column order
        (``feature_names_in_``), as for ``LGBMRegressor``, and rewritten for the inputs the procs make (see
        :meth:`_in_input_order`); the GBM given stays as it is.

        A fit that fails (a parameter or value refused, the backend's error) leaves the estimator unfitted, a
        model fitted before included, as scikit-learn's estimators are left: ``predict`` then says to call fit."""
        try:
            return self._fit(X, y, sample_weight, eval_set, fit_params)
        except BaseException:
            self.reset_state()
            raise

    def _fit(self, X: Any, y: Any, sample_weight: Any, eval_set: Any, fit_params: dict[str, Any]) -> Any:
        check_fork_safe(f"{type(self).__name__}.fit")
        who = type(self).__name__
        if fit_params:
            raise ParameterError(f"{who}.fit takes X, y, sample_weight= and eval_set=[(X_valid, y_valid)], not "
                                 f"{', '.join(f'{k}=' for k in sorted(fit_params))}; set the backend's own options on "
                                 f"the backend ({who}(GBM(..., early_stopping_rounds=20)))")
        self.check_params()
        self._backend().clone()  # the backend's parameters too (set_params leaves them to fit), before any data is read
        self.reset_state()
        self.__dict__.setdefault("_shown", set()).clear()  # a new model: its warnings are shown anew
        pair = self._eval_pair(eval_set)
        frame = self._frame(X, reset=True)
        y = self._targets(y, frame.height)
        cat, cont, dates = column_roles(frame, self.cat_names, self.cont_names, self.date_names, who)
        check_filled(frame, cat + cont + dates, who)
        if isinstance(self.date_format, dict) and (other := [c for c in self.date_format if c not in dates]):
            raise ParameterError(f"{who}: date_format names {other}, which are not date columns of X (its dates: "
                                 f"{dates}); name them in date_names too, or leave them out of date_format")
        # the day and month order of each text date column written with numbers, read from every training row and
        # kept: a few later rows alone may read two ways (05/03/2016) or the other way round (ISO reads one way)
        # (one layout kept as it is, several as their list)
        formats: dict[str, str | list[str]] = {}
        read: dict[str, Any] = {}
        for c in dates:
            if frame.schema[c] == pl.String:
                given = self._date_format(c)
                layouts = [given] if given else _text_date_layout(frame[c], c, who, "fit")
                if layouts is not None:
                    read[c] = layouts
                if layouts is not None and not given and all(f in NUMERIC_FORMATS for f in layouts):
                    formats[c] = layouts[0] if len(layouts) == 1 else layouts
        frame, date_cat, date_cont = date_parts(frame, dates, formats=read, who=who)
        target = "__target__"
        while target in frame.columns:
            target += "_"
        column, y_block = self._encode_targets(target, y)
        backend = self._backend()
        procs = default_procs(backend) if self.procs is None else self.procs
        processor = TabularProcessor(unshared_procs(procs), cat + date_cat, cont + date_cont, target, y_block)
        processed = processor.fit_transform(frame.with_columns(column), np.ones(frame.height, dtype=bool))
        self.processor_ = processor
        self.cat_names_, self.cont_names_, self.date_names_ = cat, cont, dates
        self.date_formats_ = formats
        train, seed = TabularSplit(processed, processor), self._seed()
        backend = self._in_input_order(backend, as_data(train).feature_names)
        if pair is None:
            self.model_ = fit_model(backend, train, seed, sample_weight, vars(self).get("classes_"))
            return self
        X_valid, y_valid = pair
        n = self._frame(X_valid, reset=False).height
        valid = self._transform(X_valid, self._valid_targets(target, self._targets(y_valid, n)))
        model = backend.clone()
        if seed is not None:
            seed_all(model, seed)
        self.model_ = model.fit(train, TabularSplit(valid, processor, None, "valid"),  # type: ignore[attr-defined]
                                sample_weight=sample_weight)
        return self

    def _eval_pair(self, eval_set: Any) -> tuple[Any, Any] | None:
        """The one ``(X_valid, y_valid)`` pair of ``eval_set`` (None without one), refused unless the backend is
        one model whose fit takes a valid split."""
        if eval_set is None:
            return None
        who = type(self).__name__
        if not (isinstance(eval_set, (list, tuple)) and len(eval_set) == 1 and isinstance(eval_set[0], (list, tuple))
                and len(eval_set[0]) == 2):
            raise ParameterError(f"{who}.fit: eval_set must be a list of one (X_valid, y_valid) pair, "
                                 "eval_set=[(X_valid, y_valid)]; the backend stops early on one validation split")
        backend = self._backend()
        if not isinstance(backend, Backend) or isinstance(backend, BaggedModel):
            raise ParameterError(f"{who}.fit: eval_set= is the valid split of one backend (GBM, XGBoost, CatBoost, "
                                 f"a forest, TorchTabular); {type(backend).__name__} fits its members without one "
                                 "(a bag holds out rows of its own), so fit it without eval_set")
        return eval_set[0][0], eval_set[0][1]

    def _valid_targets(self, name: str, y: np.ndarray) -> pl.Series:
        """The target column of validation rows as the procs read it (named ``name``)."""
        return pl.Series(name, y, dtype=pl.Float64)

    def _encode_targets(self, name: str, y: np.ndarray) -> tuple[pl.Series, str]:
        """The target column the procs read (named ``name``) and its kind; a classifier sets ``classes_``."""
        return pl.Series(name, y, dtype=pl.Float64), "regression"

    # ------------------------------------------------------------------ predicting
    def process(self, X: Any) -> TabularSplit:
        """``X`` processed by the fitted procs: the split the backend in ``model_`` reads
        (``clf.model_.predict(clf.process(X))``)."""
        check_fork_safe(f"{type(self).__name__}.process")
        return TabularSplit(self._transform(X), self.processor_, None, "new")

    def _transform(self, X: Any, target: pl.Series | None = None) -> pl.DataFrame:
        """``X`` processed by the fitted procs, with its ``target`` column (labels checked and encoded) when
        given."""
        frame = self._frame(X, reset=False)
        # a date column arriving as text (read back from a CSV) is parsed, with the times of day it had at fit
        # (a '<date>_Hour' part made at fit, not a column of X of that name)
        timed = [d for d in self.date_names_
                 if f"{d}_Hour" in self.processor_.cont_names and f"{d}_Hour" not in self.cont_names_]
        kept = vars(self).get("date_formats_") or {}
        schema = frame.schema  # read once: Polars builds it anew on each read
        formats: dict[str, Any] = {}
        for c in self.date_names_:  # text: in date_format's layout, else the order read at fit, else its own values'
            if schema.get(c) != pl.String:
                continue
            given = self._date_format(c)
            layouts = [given] if given else (in_order_of(kept[c], frame[c]) if c in kept else
                                             _text_date_layout(frame[c], c, type(self).__name__, "predict"))
            if layouts is not None:
                formats[c] = layouts
        frame, _, _ = date_parts(frame, self.date_names_, timed, formats)
        # what the rows hold that training did not (unseen categories, missing values) is warned about at each call,
        # as the user's filters say: 'always' shows every call's, 'default' each text once per line of the caller
        # (a server's one-row requests, a permutation importance's shuffles), 'error' raises once the rows are
        # processed. Python's own registry of what it showed is emptied whenever any code changes the filters, which
        # pandas and scikit-learn do inside predict, so this model keeps it (emptied at fit). The procs' warnings are
        # collected in this thread alone, so a server predicting in several threads leaves the process's warnings be.
        with collecting() as caught:
            out = self.processor_.transform(frame if target is None else frame.with_columns(target),
                                            with_labels=None if target is None else True)
        shown = self.__dict__.setdefault("_shown", set())
        for w in caught:
            action = _filter_action(w)
            if action != "always":
                key = (w.category, str(w.message), *((w.filename, w.lineno) if action == "default" else
                                                     (w.filename,) if action == "module" else ()))
                if key in shown:
                    continue
                shown.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return out

    @property
    def best_iteration_(self) -> int:
        """The boosting rounds the fitted backend predicts with (a GBM, XGBoost or CatBoost: the best round on
        ``eval_set`` when it stopped early, else every round); a backend that does not boost has none."""
        self.check_is_fitted()
        best = vars(self.model_).get("best_iteration_")
        if best is None:
            raise AttributeError(f"{type(self).__name__}: its backend {type(self.model_).__name__} does not boost "
                                 "rounds, so it has no best_iteration_")
        return int(best)

    @property
    def feature_importances_(self) -> np.ndarray:
        """The backend's own importance of each input column, in ``feature_names_in_`` order, summing to 1 (a
        forest's impurity decrease, a GBM's gain), for scikit-learn's ``SelectFromModel`` and the like. A column
        the procs made is credited to the input it came from (FillMissing's ``age_na`` to ``age``, date parts
        to their date). A backend without importances (the net, an ensemble) has none: the attribute is
        missing, as scikit-learn expects; use ``pipekit.inspection.permutation_importance(est, X, y=y)``."""
        self.check_is_fitted()
        getter = getattr(self.model_, "feature_importance", None)
        try:
            imp = getter() if getter is not None else None
        except NotImplementedError:
            imp = None
        if imp is None:
            raise AttributeError(f"{type(self).__name__}: its backend {type(self.model_).__name__} has no feature "
                                 "importances; use pipekit.inspection.permutation_importance(est, X, y=y)")
        out = np.zeros(self.n_features_in_)
        np.add.at(out, self.input_index(imp["feature"].to_list()), imp["importance"].to_numpy().astype(np.float64))
        total = out.sum()
        return out / total if total > 0 else out

    def input_columns(self) -> list[str]:
        """The columns of X the estimator was fitted on, in their order: its ``feature_names_in_``, or ``x0, x1,
        ...`` where X had no column names (an array). ``feature_importances_`` and the contributions of
        ``pipekit.inspection.contributions`` are given per column, in this order."""
        self.check_is_fitted()
        names = vars(self).get("feature_names_in_")
        return [str(c) for c in names] if names is not None else default_columns(self.n_features_in_)

    def input_index(self, features: Sequence[str]) -> list[int]:
        """The position in :meth:`input_columns` of the column of X each of ``features`` came from, for columns the
        fitted procs give the backend (``as_data(est.process(X)).feature_names``): X's own columns, each date
        column's parts (``Date_Year``, ..., ``Date_Elapsed``) and FillMissing's ``_na`` flags (a date part's flag
        to its date), read by exact name from what fit recorded. A column of X named like another's flag or part
        (``Date_promo`` beside the date ``Date``) is its own source.

        >>> import numpy as np, pandas as pd
        >>> from pipekit.sklearn import TabularRegressor
        >>> X = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0] * 10, "day": pd.date_range("2015-01-01", periods=40)})
        >>> reg = TabularRegressor("rf", random_state=0).fit(X, np.arange(40.0))
        >>> reg.input_columns(), reg.input_index(["a_na", "a", "day_Year", "day_Elapsed"])
        (['a', 'day'], [0, 0, 1, 1])
        """
        inputs = self.input_columns()
        position = {c: i for i, c in enumerate(inputs)}
        processor = self.processor_
        made = set(processor.cat_names) | set(processor.cont_names)
        sources = {c: c for c in [*self.cat_names_, *self.cont_names_]}
        for d in self.date_names_:
            sources.update({part: d for part in date_part_names(d) if part in made and part not in sources})
        for proc in processor.procs:
            if isinstance(proc, FillMissing) and proc.add_col and proc.is_fitted:
                sources.update({f"{c}_na": sources.get(c, c) for c in proc.na_columns_})
        out = []
        for feature in features:
            source = sources.get(feature)
            if source not in position:
                raise DataError(f"{type(self).__name__}: the backend's column {feature!r} comes from no input column "
                                f"({inputs[:10]}); a proc other than Categorify, FillMissing and Normalize made it")
            out.append(position[source])
        return out

    def _in_input_order(self, model: Model, features: list[str]) -> Model:
        """``model`` with each GBM's per-input LightGBM parameters (:data:`_PER_INPUT`, :data:`_INPUT_SETS`, under
        any of LightGBM's names for them), which the user writes in X's column order, rewritten in the order of
        ``features``, the inputs the fitted procs give the backend (categoricals, ``_na`` flags, numbers, date
        parts). Each input takes its column's value: a date's parts and a column's ``_na`` flag take the date's or
        the column's penalty, weight and bins, and join the interaction sets that name it. A monotone constraint
        holds for X's own columns only: an ``_na`` flag gets 0 (missing is no value to be monotone in), and a date
        column must be given 0 (no part but the elapsed time rises with the date). The members of an ensemble and a
        bag's model are rewritten too. A copy is returned where anything changes; the backend given keeps its
        parameters."""
        if isinstance(model, GBM):
            return self._gbm_in_input_order(model, features)
        own = model.get_params(deep=False) if isinstance(model, Component) else {}
        if isinstance(own.get("members"), (list, tuple, dict)):
            held = own["members"]
            members: Any = ({k: self._in_input_order(m, features) for k, m in held.items()} if isinstance(held, dict)
                            else [self._in_input_order(m, features) for m in held])
            changed = any(a is not b for a, b in zip(held.values() if isinstance(held, dict) else held,
                                                     members.values() if isinstance(members, dict) else members))
            return type(model)(**{**own, "members": members}) if changed else model
        if isinstance(own.get("model"), Model):
            inner = self._in_input_order(own["model"], features)
            return type(model)(**{**own, "model": inner}) if inner is not own["model"] else model
        return model

    def _gbm_in_input_order(self, gbm: GBM, features: list[str]) -> GBM:
        """A clone of ``gbm`` with its per-input parameters rewritten for ``features`` (see :meth:`_in_input_order`),
        or ``gbm`` itself when it has none."""
        held = gbm.params or {}
        names = lightgbm_names()
        keys = [k for k in held if isinstance(k, str) and names.get(k, k) in _PER_INPUT + _INPUT_SETS]
        if not keys:
            return gbm
        who = type(self).__name__
        columns = self.input_columns()
        of = {f: columns[i] for f, i in zip(features, self.input_index(features))}  # the column of X each came from
        order = f"{len(columns)} columns of X, in its order {columns[:20]}{' ...' if len(columns) > 20 else ''}"
        new = dict(held)
        for key in keys:
            own, value = names.get(key, key), held[key]
            if own in _INPUT_SETS:
                bad = [i for group in value for i in group if not 0 <= i < len(columns)]
                if bad:
                    raise ParameterError(f"{who}: the GBM's params {key}= names input {bad[0]}; its sets hold "
                                         f"positions of the {order} (0 to {len(columns) - 1})")
                position = {c: i for i, c in enumerate(columns)}
                new[key] = [[j for j, f in enumerate(features) if position[of[f]] in set(group)] for group in value]
                continue
            values = monotone_values(key, value) if own == "monotone_constraints" else list(value)
            if not values:  # LightGBM reads an empty value as none given
                continue
            if len(values) != len(columns):
                raise ParameterError(f"{who}: the GBM's params {key}= has {len(values)} values; give one per column of "
                                     f"X, for the {order} (fit rewrites them for the inputs the procs make)")
            by_column = dict(zip(columns, values))
            if own == "monotone_constraints":
                dated = [d for d in self.date_names_ if by_column[d] != 0]
                if dated:
                    raise ParameterError(f"{who}: the GBM's params {key}= asks for a monotone output in the date "
                                         f"column(s) {dated}, which become date parts (year, month, day of week, "
                                         "...) that do not all rise with the date; give 0 for them, or pass the "
                                         "date as a number column of its own (days since a start) and constrain that")
                new[key] = [by_column[f] if of[f] == f else 0 for f in features]
            else:
                new[key] = [by_column[of[f]] for f in features]
        out = gbm.clone()
        out.set_params(params=new)
        return out

    def _raw_predict(self, X: Any) -> np.ndarray:
        split = self.process(X)  # checks that the estimator is fitted
        return np.asarray(self.model_.predict(split), dtype=np.float64)

    # ------------------------------------------------------------------ files
    def params_to_data(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        if isinstance(params["random_state"], np.random.RandomState):  # a generator's state is not a setting
            params["random_state"] = None
        return params

    def state_from_data(self, state: dict[str, Any]) -> None:
        # the column roles decide what predict reads and parses: lists of names, checked before any is used
        if state:  # a fitted estimator's state (an unfitted one stores none)
            check_state(state, f"{type(self).__name__}, to read new rows,", date_formats_=_DATE_FORMATS,
                        **{k: _COLUMNS for k in ("cat_names_", "cont_names_", "date_names_")})
        state = dict(state)
        for k in ("classes_", "feature_names_in_"):
            if isinstance(state.get(k), list):
                state[k] = np.asarray(state[k], dtype=object)
        super().state_from_data(state)

    def state_to_data(self) -> dict[str, Any]:
        state = self.fitted_state()
        for k in ("classes_", "feature_names_in_"):  # labels and names of any type are stored as a list
            if k in state and state[k].dtype == object:
                state[k] = state[k].tolist()
        return state

    # ------------------------------------------------------------------ the pipekit way in
    @classmethod
    def from_model(cls, model: Model, processing: Any, feature_names: Sequence[str] | None = None) -> Any:
        """An estimator around ``model``, a backend or ensemble already fitted the pipekit way on the splits of
        ``processing`` (a ``Tabular``, or its fitted ``TabularProcessor``). It predicts from raw rows holding
        the processing's input columns, in the order ``feature_names`` (default: categorical then continuous
        names). Its parameters describe the same recipe, so ``clone`` / ``cross_val_score`` refit it.

        Example:
            >>> # gbm = GBM("classification").fit(tab.train, tab.valid)
            >>> # clf = TabularClassifier.from_model(gbm, tab); clf.predict(df[clf.feature_names_in_])
        """
        processor = processing if isinstance(processing, TabularProcessor) else getattr(processing, "processor", None)
        if not isinstance(processor, TabularProcessor):
            raise ParameterError(f"{cls.__name__}.from_model: processing must be a Tabular or its fitted "
                                 f"TabularProcessor, got {type(processing).__name__}")
        processor.check_is_fitted("Tabular(...)")
        if not isinstance(model, Model):
            raise ParameterError(f"{cls.__name__}.from_model: model must be a pipekit backend or ensemble, got "
                                 f"{type(model).__name__}")
        model.check_is_fitted()
        kind = "category" if cls.task == "classification" else "regression"
        if model_task(model) != cls.task or processor.y_kind_ != kind:
            raise ParameterError(f"{cls.__name__}.from_model needs a {cls.task} model and processing with a "
                                 f"{kind} target; got a {model_task(model)} model and a {processor.y_kind_!r} target")
        sig = procs_signature(processor)
        if isinstance(model, Backend) and model.procs_signature_ not in (None, sig):
            raise ParameterError(f"{cls.__name__}.from_model: the model was trained on data processed by other "
                                 "procs than the ones given; pass the Tabular it was trained on")
        names = list(feature_names) if feature_names is not None else processor.cat_names + processor.cont_names
        missing = [c for c in processor.cat_names + processor.cont_names if c not in names]
        if missing:
            raise ParameterError(f"{cls.__name__}.from_model: feature_names lack the input columns {missing}")
        est = cls(backend=model.clone(), cat_names=list(processor.cat_names), cont_names=list(processor.cont_names),
                  procs=[p.clone() for p in processor.procs])
        est.model_, est.processor_ = model, processor
        est.cat_names_, est.cont_names_, est.date_names_ = list(processor.cat_names), list(processor.cont_names), []
        est.date_formats_ = {}
        est.n_features_in_, est.feature_names_in_ = len(names), np.asarray(names, dtype=object)
        if cls.task == "classification":
            est.classes_ = np.asarray(model.classes_)
        return est


class TabularClassifier(ClassifierMixin, _TabularEstimator):
    """A classifier on tables: procs plus a pipekit backend (see the module docstring).

    Args:
        backend: ``"gbm"`` (LightGBM, 100 rounds at GBM's learning rate 0.05, not LightGBM's 0.1), ``"rf"``
            (random forest), ``"net"`` (the tabular net), or a pipekit backend or ensemble object for
            ``task="classification"`` (``GBM("classification", num_leaves=15)``, ``GBM("classification",
            n_estimators=100, learning_rate=0.1)`` for LightGBM's defaults, ``StackingEnsemble([...])``); it is
            cloned at every fit, never fitted in place, and its parameters are searchable as ``backend__<name>``, a
            named backend's too (``GridSearchCV(TabularClassifier("rf"), {"backend__n_estimators": [50, 100]})``).
        cat_names, cont_names, date_names: columns (names, or positions for arrays) with those roles; every
            other column gets its role from its type (text, categories and booleans: categorical; numbers:
            continuous; dates and datetimes: date parts).
        procs: the table procs (classes or instances), kept as given. None (the default): ``Categorify,
            FillMissing`` for a backend made of trees (``"gbm"``, ``"rf"``, any GBM, RandomForest, ExtraTrees,
            XGBoost or CatBoost, a SklearnModel around a scikit-learn tree model, an ensemble of them), which
            splits on the values as read, so ``GBM("classification", n_estimators=100, learning_rate=0.1)``
            predicts what ``LGBMClassifier()`` fitted on the same rows does when no number is missing (``FillMissing``
            fills one with the median and adds a ``_na`` column, where LightGBM reads it as missing); ``Categorify, FillMissing,
            Normalize`` for the others (``"net"``, a linear model). ``processor_.procs`` are the procs run.
        random_state: seeds the backend (and every ensemble member); None keeps the backends' own seeds,
            which are fixed (0), so a fit is reproducible either way.
        date_format: the layout of the date columns X gives as text (a strftime layout such as ``"%d/%m/%Y"``
            or ``"%Y%m%d"``, or a dict of column names to layouts), read at fit and at every predict. None (the
            default): the layout the training rows settle (kept for predict), else the one each call's rows settle;
            a single row such as ``05/03/2016`` reads both day-first and month-first and is refused unless the
            training rows were text in that layout or ``date_format`` says it (``set_params(date_format=...)`` on a
            fitted model reads its next rows with it, its fit unchanged).

    Fitted: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (frames with text column names),
    ``model_`` (the pipekit backend), ``processor_`` (the fitted procs), ``cat_names_``, ``cont_names_``,
    ``date_names_``.

    >>> import numpy as np, pandas as pd
    >>> from pipekit.sklearn import TabularClassifier
    >>> X = pd.DataFrame({"age": np.arange(60.0), "job": ["a", "b", "c"] * 20})
    >>> y = np.where(X["age"] > 29, "yes", "no")
    >>> clf = TabularClassifier(backend="rf").fit(X, y)
    >>> clf.classes_.tolist(), clf.predict(X.iloc[[0, 59]]).tolist(), clf.predict_proba(X).shape
    (['no', 'yes'], ['no', 'yes'], (60, 2))
    """

    task = "classification"

    def _encode_targets(self, name: str, y: np.ndarray) -> tuple[pl.Series, str]:
        from sklearn.utils.multiclass import check_classification_targets

        y = np.asarray(y)
        missing = np.array([v is None or (isinstance(v, (float, np.floating)) and v != v) for v in y.reshape(-1)])
        if missing.any():
            raise DataError(f"{type(self).__name__}: y has {int(missing.sum())} missing label(s) (None or NaN), first at "
                            f"row {int(np.flatnonzero(missing)[0])}; drop those rows before fitting")
        check_classification_targets(y)
        try:
            classes, codes = np.unique(y, return_inverse=True)
        except TypeError:
            raise DataError(f"{type(self).__name__}: the labels in y mix types that cannot be ordered "
                            f"({sorted({type(v).__name__ for v in y})}); give labels of one type") from None
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {classes[0]!r}")
        text = [str(c) for c in classes]  # backends see the labels as text and are matched back by it
        if len(set(text)) != len(text):
            raise DataError(f"{type(self).__name__}: labels {classes.tolist()} are distinct values with the same "
                            "text; give labels of one type")
        self.classes_ = classes
        return pl.Series(name, np.asarray(text, dtype=object)[codes.reshape(-1)], dtype=pl.String), "category"

    def _valid_targets(self, name: str, y: np.ndarray) -> pl.Series:
        """Validation labels as the procs read them (text, as at fit); a class ``y`` never had is refused."""
        y = np.asarray(y)
        known = {str(c) for c in self.classes_}
        text = [str(v) for v in y.reshape(-1)]
        unseen = sorted({t for t in text if t not in known})
        if unseen:
            raise DataError(f"{type(self).__name__}.fit: eval_set's y holds labels {unseen[:5]} that y does not; the "
                            f"model learns the classes of y ({self.classes_.tolist()[:10]}): drop those rows from "
                            "the eval_set pair")
        return pl.Series(name, text, dtype=pl.String)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, len(classes_))``, columns in ``classes_`` order."""
        p = self._raw_predict(X)
        index = {str(c): i for i, c in enumerate(self.classes_)}
        out = np.zeros((p.shape[0], len(self.classes_)))
        out[:, [index[str(c)] for c in self.model_.classes_]] = p
        # a net's float32 softmax sums to 1 within ~1e-7, which scikit-learn's log_loss warns about: each row is
        # scaled to sum to 1 in float64
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=out, where=total > 0)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class label of each row (labels of the type ``y`` had)."""
        best = self.predict_proba(X).argmax(1)
        return self.classes_[best]

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of ``classes_[1]`` (two classes, shape ``(n,)``; positive means ``classes_[1]``) or
        log-probabilities ``(n, n_classes)``: a monotone function of ``predict_proba``, so every backend
        gives a score scikit-learn's ranking tools (``roc_auc_score``, thresholds) can use."""
        p = np.clip(self.predict_proba(X), 1e-300, 1.0)
        return np.log(p[:, 1]) - np.log(p[:, 0]) if p.shape[1] == 2 else np.log(p)


class TabularRegressor(RegressorMixin, _TabularEstimator):
    """A regressor on tables: procs plus a pipekit backend for ``task="regression"``. Arguments and fitted
    attributes as :class:`TabularClassifier` (no ``classes_``); ``score`` is R², as in scikit-learn.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 3))
        >>> reg = TabularRegressor(GBM("regression", n_estimators=60, min_child_samples=5), random_state=0)
        >>> bool(reg.fit(X, X[:, 0] * 2 + X[:, 1]).score(X, X[:, 0] * 2 + X[:, 1]) > 0.9)
        True
    """

    task = "regression"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values ``(n,)``."""
        return self._raw_predict(X).reshape(-1)

