"""Gradient boosting backend on LightGBM: native categorical splits on the Categorify codes, early
stopping on the valid split, gain/split importance, TreeSHAP contributions, export as LightGBM's own
model text (no pickle).

Example:
    >>> import polars as pl, numpy as np
    >>> from pipekit.backends import GBM, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "c": rng.integers(0, 4, 400)})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2 + xs["c"].to_numpy(), cat_names=["c"])
    >>> gbm = GBM("regression", n_estimators=300, learning_rate=0.2, min_child_samples=5, n_jobs=1)
    >>> gbm = gbm.fit(data.take(np.arange(300)), data.take(np.arange(300, 400)))
    >>> gbm.score(data) < 0.5
    True
    >>> gbm.feature_names_, gbm.feature_importances_.shape, bool((gbm.feature_importances_ > 0).all())
    (['a', 'c'], (2,), True)
"""

from __future__ import annotations

import contextlib
import ctypes
import numbers
import re
import threading
import time
from collections.abc import Iterator
from decimal import Context, Decimal, localcontext
from typing import Any

import numpy as np
import polars as pl

from pipekit.backends.base import (NAME, N_JOBS, POSITIVE_INT, SEED, TASK, TIME_LIMIT, Booster, Contributions,
                                   DefaultFloat, DefaultInt, FoldStop, array_rows, check_valid_split, feature_frame,
                                   kept_rounds, plain, threads, written)
from pipekit.backends.booster_files import (_METRICS, LIGHTGBM_FILE_PARAMS, LIGHTGBM_RULES, MAX_DEPTH, MAX_LEAVES,
                                            check_lightgbm_file_params, check_params_to_save, lightgbm_names,
                                            monotone_values)
from pipekit.backends.data import TabularData
from pipekit.core.component import built_from_held_settings, param_names
from pipekit.core.errors import ExportError, ParameterError, warn
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import POSITIVE, Interval, Is, Options, check, check_state
from pipekit.data.progress import ProgressMeter

FRACTION = Interval(0, 1, closed="right")
#: what GBM's own arguments set, by LightGBM's name for it: each of its names (``random_state``, ``colsample_bytree``,
#: ``num_boost_round``, ``min_data_in_leaf``, ...) given to GBM sets the argument, so a model has one spelling
_OWN_ARGUMENTS = {"num_iterations": "n_estimators", "learning_rate": "learning_rate", "num_leaves": "num_leaves",
                  "min_data_in_leaf": "min_child_samples", "bagging_fraction": "subsample",
                  "feature_fraction": "colsample", "lambda_l2": "reg_lambda",
                  "early_stopping_round": "early_stopping_rounds", "num_threads": "n_jobs", "seed": "seed"}
#: LightGBM's 0 (or less) for these: every core, no early stopping; GBM's spelling of the same
_LIGHTGBM_OFF = {"n_jobs": -1, "early_stopping_rounds": None}
#: GBM's default ``early_stopping_rounds``: it stops on a valid split when one is given, and has nothing to stop on
#: without one; any other value given is a request for early stopping, which a fit without a valid split warns of
_PATIENCE = 50
#: one LightGBM data set built, or one prediction made, at a time in the process: two built at once from threads (a
#: bag's fold models fitted side by side) crashed the process inside LightGBM's LGBM_DatasetCreateFromMat, and so did
#: a bag's predictions on one thread beside a served model's on all the cores; each call is also given the
#: model's own thread count (the data sets the training's parameters, predictions num_threads), since LightGBM keeps
#: one count for the whole process, which every call sets
_BUILDING = threading.Lock()
_CAPPED = {"blocks": 0, "before": -1}  # bags fitting GBMs side by side now, LightGBM's own maximum before them
_CAPPING = threading.Lock()
#: arguments of LightGBM's scikit-learn estimators that are no LightGBM parameter, with pipekit's way to the same
#: how rows are weighed by class, for any number of classes (``y``: the training labels)
_BALANCED_WEIGHTS = "fit(..., sample_weight=sklearn.utils.class_weight.compute_sample_weight('balanced', y))"
_SKLEARN_API_ONLY = {
    "class_weight": f"weigh the rows instead, {_BALANCED_WEIGHTS}, or for two classes give "
                    "params={'is_unbalance': True}",
    "importance_type": "GBM.feature_importance(kind='gain') or kind='split' gives either importance"}
#: LightGBM parameters a GBM sets itself from the data it is fitted on, by LightGBM's own name, with where they come from
_SET_BY_PIPEKIT = {
    "categorical_feature": "the categorical inputs are the split's cat_names (Tabular(..., cat_names=[...]), "
                           "as_data(xs, y, cat_names=[...])), which GBM gives LightGBM as categorical features by "
                           "their category codes while native_categorical=True (the default; native_categorical=False "
                           "splits on the codes as numbers)"}
#: LightGBM parameters whose values the build checks by other rules than the table of a file's parameters: the
#: objective against the task, the metric by :func:`check_metric`, and those a file may hold with one value only
#: (a device, the learner across machines), which code may set as it likes
_CHECKED_APART = frozenset({"objective", "metric", *LIGHTGBM_RULES.refused_values})


#: the names of classification metrics that pipekit (``pipekit.metrics``), scikit-learn (its scoring names) and XGBoost
#: give and LightGBM does not know, each as LightGBM's metric of the same: (the one for two classes, the one for more).
#: LightGBM drops a metric name it does not know without an error, and early stopping would have no metric to watch.
#: Accuracy is watched as the error rate (1 - accuracy: the same rounds are best), the ROC-AUC of more than two classes
#: as LightGBM's AUC-mu. The regression names (rmse, mse, mae, mape, scikit-learn's mean_squared_error, ...) are
#: LightGBM's already; its own names and aliases are all taken as they are
METRIC_NAMES: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("log_loss", "logloss", "mlogloss"), ("binary_logloss", "multi_logloss")),
    **dict.fromkeys(("accuracy", "error", "error_rate", "merror"), ("binary_error", "multi_error")),
    **dict.fromkeys(("roc_auc", "roc_auc_score", "roc_auc_binary", "roc_auc_ovr", "roc_auc_ovo", "roc_auc_ovr_weighted",
                     "roc_auc_ovo_weighted"), ("auc", "auc_mu"))}
#: LightGBM's metrics for each task by their own names (each has aliases too: ``mse`` is ``l2``), as errors list them
_LIGHTGBM_METRICS = {
    "classification": ("binary_logloss", "binary_error", "auc", "average_precision", "multi_logloss", "multi_error",
                       "auc_mu", "cross_entropy", "cross_entropy_lambda", "kullback_leibler"),
    "regression": ("l2", "rmse", "l1", "mape", "huber", "fair", "poisson", "quantile", "gamma", "gamma_deviance",
                   "tweedie")}
_ALIAS = {"classification": "binary for binary_logloss", "regression": "mse for l2"}
#: LightGBM's metric names that ask for no metric: with them early stopping has nothing to watch
_NO_METRIC = frozenset({"None", "na", "null", "custom"})


def _metric_keys(params: dict[str, Any] | None) -> list[str]:
    """The keys of LightGBM ``params`` that name its ``metric`` (``metric``, ``metrics``, ``metric_types``)."""
    names = lightgbm_names()
    return [k for k in (params or {}) if names.get(k, k) == "metric"]


def _metric_words(value: Any) -> list[str] | None:
    """The metric names in a value of LightGBM's ``metric``: its comma-separated text or a list of names; None for a
    value of another kind (left to LightGBM)."""
    if isinstance(value, str):
        return [w.strip() for w in value.split(",")]
    if isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value):
        return [w.strip() for w in value]
    return None


def check_metric(params: dict[str, Any] | None, task: str, names_only: bool = False) -> None:
    """Refuse, naming the names taken, a ``metric`` in LightGBM ``params`` that is neither one of LightGBM's metrics
    (aliases included) nor, for classification, one of :data:`METRIC_NAMES`. ``names_only``: refuse only words that
    are names (letters, digits, ``_``), leaving any other text to the check of a file's parameters, which names the
    field (a GBM checks them all when it fits).

    >>> check_metric({"metric": "log_loss"}, "classification")
    >>> check_metric({"metric": "r2"}, "regression")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: GBM: metric='r2': 'r2' is not a metric GBM knows; give one of ...
    """
    for key in _metric_keys(params):
        value = (params or {})[key]
        words = _metric_words(value)
        bad = [w for w in words or () if w not in _METRICS and not (task == "classification" and w in METRIC_NAMES)
               and not (names_only and not re.fullmatch(r"\w+", w))]
        if not bad:
            continue
        given = f"metric={value!r}" if key == "metric" else f"params={{{key!r}: {value!r}}}"
        why = (f"{bad[0]!r} is a classification metric and the task is 'regression'"
               if bad[0] in METRIC_NAMES else f"{bad[0]!r} is not a metric GBM knows")
        ours = f"pipekit's and scikit-learn's {', '.join(METRIC_NAMES)} (watched as LightGBM's of the same), or " \
            if task == "classification" else ""
        raise ParameterError(f"GBM: {given}: {why}; give one of {ours}LightGBM's {', '.join(_LIGHTGBM_METRICS[task])} "
                             f"(or a LightGBM alias of one, as {_ALIAS[task]}); several as a list")


def lightgbm_metric(value: Any, n_classes: int) -> Any:
    """A value of LightGBM's ``metric`` with the names of :data:`METRIC_NAMES` as LightGBM's for ``n_classes``
    classes (0: regression, where there are none to change), in the form given (text or list).

    >>> lightgbm_metric("log_loss", 2), lightgbm_metric(["accuracy", "auc_mu"], 3), lightgbm_metric("l2", 0)
    ('binary_logloss', ['multi_error', 'auc_mu'], 'l2')
    """
    words = _metric_words(value)
    if words is None or not n_classes:
        return value
    named = [METRIC_NAMES[w][n_classes > 2] if w in METRIC_NAMES else w for w in words]
    return ",".join(named) if isinstance(value, str) else named


def _is_true(value: Any) -> bool:
    """A LightGBM flag as LightGBM reads it (``True``, ``1``, ``"true"``)."""
    return value.strip().lower() not in ("false", "0", "") if isinstance(value, str) else bool(value)


def check_class_weights(params: dict[str, Any], n_classes: int) -> None:
    """Refuse LightGBM's weighing of the positive class (``is_unbalance``, ``scale_pos_weight``, under any of their
    names) where LightGBM would not use it, silently: an objective other than ``binary`` or ``multiclassova`` (the
    softmax of ``n_classes`` classes reads neither), naming the row weights that balance any number of classes; and
    both given together, which LightGBM ends with a fatal error.

    >>> check_class_weights({"objective": "binary", "is_unbalance": True}, 2)   # LightGBM weighs it: nothing said
    >>> try:
    ...     check_class_weights({"objective": "multiclass", "is_unbalance": True}, 3)
    ... except ParameterError as e:
    ...     print(str(e).split("; ")[-1].split(", ")[0])
    weigh the rows by class instead
    """
    names = lightgbm_names()
    asked = [f"{k!r}: {v!r}" for k, v in params.items()
             if (names.get(k, k) == "is_unbalance" and _is_true(v))
             or (names.get(k, k) == "scale_pos_weight" and float(v) != 1.0)]  # 1: LightGBM's default, no weighing
    if not asked:
        return
    objective = next((v for k, v in params.items() if names.get(k, k) == "objective"), None)
    if not (isinstance(objective, str) and OBJECTIVE_NAMES.get(objective) in ("binary", "multiclassova")):
        raise ParameterError(f"GBM: params={{{', '.join(asked)}}} weighs the positive class of LightGBM's objectives "
                             f"'binary' and 'multiclassova' only, and LightGBM ignores it for objective {objective!r} "
                             f"with {n_classes} classes; weigh the rows by class instead, {_BALANCED_WEIGHTS} "
                             "(y: the training labels)")
    if len(asked) == 2:
        raise ParameterError(f"GBM: params={{{', '.join(asked)}}} are two ways of weighing the positive class, which "
                             "LightGBM refuses together; give one: is_unbalance=True weighs it by the classes' sizes, "
                             "scale_pos_weight by the number given")


def linear_tree(params: dict[str, Any]) -> bool:
    """Whether LightGBM ``params`` ask for a linear model in each leaf: ``linear_tree`` under any of its names in
    LightGBM's table of aliases (``linear_trees``), true as LightGBM reads it (``True``, ``1``, ``"true"``).

    >>> linear_tree({"linear_trees": "true"}), linear_tree({"num_leaves": 7})
    (True, False)
    """
    names = lightgbm_names()  # empty without LightGBM's table of names: the parameter's own name only
    return any(names.get(k, k) == "linear_tree" and _is_true(v) for k, v in params.items())


def _objective_fits(value: Any, task: str, n_classes: int = 2) -> tuple[str, ...] | None:
    """None where ``value`` names a LightGBM objective (any of its aliases) that a GBM of ``task`` with ``n_classes``
    classes trains with (:func:`_objectives`, what loading a file checks); else the objectives that fit."""
    accepted = _objectives(task, n_classes)
    return None if isinstance(value, str) and OBJECTIVE_NAMES.get(value) in accepted else accepted


#: LightGBM reads a flag given as text ("true", "False") as the flag: taken as it reads it where a flag is accepted
_TEXT_FLAGS: dict[str, Any] = {"true": True, "false": False}


def check_lightgbm_values(params: dict[str, Any] | None, task: str, keywords: bool = False) -> None:
    """Refuse, naming the parameter as written (``max_depth='deep'``, or ``params={'max_depth': 'deep'}`` when
    ``keywords`` is False), a LightGBM parameter in ``params`` that a GBM sets itself (:data:`_SET_BY_PIPEKIT`), an
    objective that is not one a GBM of ``task`` trains with, or a value of another that the table of LightGBM's
    parameters (:data:`pipekit.backends.booster_files.LIGHTGBM_FILE_PARAMS`, what a file is held to) does not
    accept. Names outside that table (and their values) are LightGBM's to check when it fits.

    >>> check_lightgbm_values({"lambda_l1": 0.5, "objective": "xentropy"}, "classification")
    >>> check_lightgbm_values({"reg_alpha": -1}, "regression", keywords=True)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: GBM: reg_alpha=-1: LightGBM's lambda_l1 must be a finite number in [0, inf]
    """
    names = lightgbm_names()
    for key, value in (params or {}).items():
        name = names.get(key, key) if isinstance(key, str) else key
        given = f"{key}={value!r}" if keywords else f"params={{{key!r}: {value!r}}}"
        if name in _SET_BY_PIPEKIT:
            raise ParameterError(f"GBM: {given}: GBM sets LightGBM's {name} itself: {_SET_BY_PIPEKIT[name]}")
        if name == "objective":
            fits = _objective_fits(value, task)
            if fits is not None:
                what = (f"is LightGBM's {OBJECTIVE_NAMES[value]} objective, which does not fit the task {task!r}"
                        if isinstance(value, str) and value in OBJECTIVE_NAMES else "is not a LightGBM objective")
                raise ParameterError(f"GBM: {given}: {value!r:.60} {what}; a {task} GBM trains with one of "
                                     f"{', '.join(fits)} (or a LightGBM alias of one)")
        elif name in LIGHTGBM_FILE_PARAMS and name not in _CHECKED_APART and \
                not LIGHTGBM_FILE_PARAMS[name].accepts(value) and \
                not (isinstance(value, str) and LIGHTGBM_FILE_PARAMS[name].accepts(_TEXT_FLAGS.get(value.lower()))):
            raise ParameterError(f"GBM: {given}: LightGBM's {name} must be {LIGHTGBM_FILE_PARAMS[name]}")


#: LightGBM's own name for what each GBM argument of :data:`_OWN_ARGUMENTS` sets
_LIGHTGBM_NAME = {arg: name for name, arg in _OWN_ARGUMENTS.items()}


def _same_value(a: Any, b: Any) -> bool:
    """Whether two values given for one setting are the same (arrays and lists element by element)."""
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))) if \
            isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)) else bool(a == b)
    except Exception:  # values that do not compare are not the same
        return False


def _one_spelling(given: dict[str, Any], lightgbm: dict[str, Any], params: dict | None,
                  task: str = "regression") -> tuple[dict[str, Any], dict[str, Any]]:
    """What a GBM is given under each of a setting's names, as one value each: ``given``, GBM's own arguments the
    caller wrote (never a default: :class:`pipekit.backends.base.Default`); ``lightgbm``, keywords in LightGBM's
    names; ``params``, LightGBM parameters the caller wrote in this call (None: none). Two names of one setting
    (``seed`` and ``random_state``, ``n_estimators`` and ``params={'num_boost_round': ...}``, two keys of ``params``
    that LightGBM reads as one) with different values are a ParameterError naming both; the same value under
    both is taken. Returns GBM's arguments each name of an argument sets (``random_state`` sets ``seed``) and the
    other LightGBM parameters of ``lightgbm`` by LightGBM's own name (``reg_alpha`` as ``lambda_l1``), to join
    ``params``. Values are checked under the names given (:func:`check_lightgbm_values`, and GBM's own argument's
    rule), for a GBM of ``task``."""
    names = lightgbm_names()
    if lightgbm and not names:  # a LightGBM without its table of names (it is read from LightGBM's own)
        raise ParameterError(f"GBM has no parameters {sorted(lightgbm)}; give LightGBM's parameters in params={{...}} "
                             f"(params={{'max_depth': 5}}); GBM's own are {param_names(GBM)}") from None
    # every name given, by LightGBM's own name for it: (as it is shown, the value); params first, as messages name them
    said: dict[str, list[tuple[str, Any]]] = {}
    for k, v in (params or {}).items():
        name = names.get(k, k) if isinstance(k, str) else k
        arg = _OWN_ARGUMENTS.get(name) if isinstance(name, str) else None
        if arg == "n_jobs":  # the threads of this machine, not a setting of the model: held apart (a file refuses them)
            continue
        if arg is not None:
            v = _off(arg, v)
            if not GBM.param_constraints[arg].accepts(v):
                raise ParameterError(f"GBM: params={{{k!r}: {v!r}}} (GBM's {arg}) must be "
                                     f"{GBM.param_constraints[arg]}")
        said.setdefault(name, []).append((f"params={{{k!r}: ...}}", v))
    for arg, v in given.items():
        said.setdefault(_LIGHTGBM_NAME[arg], []).append((f"{arg}={v!r}", v))
    for k, v in lightgbm.items():
        if k in _SKLEARN_API_ONLY:
            raise ParameterError(f"GBM: {k}= is an argument of LightGBM's scikit-learn estimators, not a LightGBM "
                                 f"parameter; {_SKLEARN_API_ONLY[k]}")
        if k not in names:
            raise ParameterError(f"GBM has no parameter {k!r} and LightGBM none of that name; GBM's parameters are "
                                 f"{param_names(GBM)}, and LightGBM's go in params={{...}} (params={{'max_depth': 5}})")
        name = names[k]
        if name == "objective" and v is None:  # LGBMClassifier's default: the task's own objective, as not given
            continue
        arg = _OWN_ARGUMENTS.get(name)
        if arg is None:
            check_lightgbm_values({k: v}, task, keywords=True)
        else:
            v = _off(arg, v)
            if not GBM.param_constraints[arg].accepts(v):
                raise ParameterError(f"GBM: {k}={v!r} (GBM's {arg}) must be {GBM.param_constraints[arg]}")
        shown = f"{k}={v!r} (LightGBM's name for {arg})" if arg is not None and k != arg else f"{k}={v!r}"
        said.setdefault(name, []).append((shown, v))
    own: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, values in said.items():
        (first, value), *others = values
        for other, v in others:
            if not _same_value(value, v):
                written_in = {k: w for k, w in (params or {}).items()
                              if (names.get(k, k) if isinstance(k, str) else k) == name}
                held = f" (params={written_in!r})" if written_in else ""
                raise ParameterError(f"GBM: {first} and {other} set the same thing, LightGBM's {name}, to different "
                                     f"values{held}; give one, or the same value under each")
        if name in _OWN_ARGUMENTS:
            own[_OWN_ARGUMENTS[name]] = value
        elif not any(shown.startswith("params=") for shown, _ in values):  # a keyword's, not yet in params
            extra[name] = value
    return own, extra


def _off(arg: str, value: Any) -> Any:
    """A value LightGBM reads as off (0 or less: every core, no early stopping) as GBM's argument ``arg`` spells it."""
    if arg in _LIGHTGBM_OFF and isinstance(value, numbers.Real) and not isinstance(value, bool) and value <= 0:
        return _LIGHTGBM_OFF[arg]
    return value


class GBM(Booster):
    """LightGBM model for ``task`` "classification" or "regression".

    The defaults are not LightGBM's (100 rounds at ``learning_rate=0.1``, no early stopping): ``n_estimators=1000``
    rounds at ``learning_rate=0.05``, stopped once 50 rounds (``early_stopping_rounds``) pass with no better score
    on ``valid``.

    Category-code columns (the split's ``cat_names`` and their ``_na`` flags) are passed as LightGBM
    categorical features when ``native_categorical`` is True. With a ``valid`` split, training stops after
    ``early_stopping_rounds`` rounds without improvement and ``best_iteration_`` is used for prediction. Without
    one, all ``n_estimators`` rounds are boosted: quietly for the default 50, with a warning for any other
    ``early_stopping_rounds`` (LightGBM refuses it): pass the valid split, or ``early_stopping_rounds=None``.
    ``time_limit``: seconds of fitting, after which boosting stops (the rounds done are kept, the best of them
    when it stops early). ``params`` adds raw LightGBM parameters; a name in it of what an argument here sets
    (``params={"random_state": 5}``, ``{"num_iterations": 200}``) sets that argument too, so ``get_params``, a clone
    and a file hold one value (LightGBM's names of the threads, which a file refuses, are left to ``n_jobs``).

    LightGBM's names are taken too, as its scikit-learn estimators take them: a name of what an argument here sets
    is that argument (``random_state`` is ``seed``, ``colsample_bytree`` / ``feature_fraction`` is ``colsample``,
    ``num_boost_round`` is ``n_estimators``, ``subsample`` / ``bagging_fraction`` is ``subsample``), and any other
    LightGBM parameter joins ``params`` under LightGBM's own name for it (``GBM("regression", max_depth=5,
    reg_alpha=0.1)`` is ``GBM("regression", params={"max_depth": 5, "lambda_l1": 0.1})``, its repr and its file). Two
    names of one setting written together (``seed=1, params={"random_state": 5}``, ``n_estimators=1000,
    num_boost_round=5``, two keys of ``params`` LightGBM reads as one) must say the same value, or are a
    ParameterError naming both: what was written counts, a default's value written out too. What a GBM holds is
    taken as it stands, unchecked for that: a clone, and a file's record (an earlier pipekit's record keeps every
    argument, defaults too, beside ``params`` that LightGBM reads over them, so it loads and refits as it did). A
    name LightGBM does not know, or ``class_weight`` (its scikit-learn estimators' own), is a ParameterError saying
    what to write. ``metric`` (LightGBM's, what early stopping watches and ``evals_result_`` records; without it the
    objective's own, log loss or l2) takes LightGBM's names and, for classification, pipekit's and scikit-learn's
    (:data:`METRIC_NAMES`: ``metric="log_loss"`` is ``binary_logloss`` or ``multi_logloss``, ``"accuracy"`` is
    watched as ``binary_error`` / ``multi_error``, ``"roc_auc"`` as ``auc`` / ``auc_mu``); any other name is a
    ParameterError listing those taken. ``valid_score_`` is pipekit's score (``score``), accuracy or rmse.
    Fitted: ``booster_``, ``best_iteration_``, ``evals_result_``, ``stopped_on_time_``, ``valid_score_``,
    ``feature_importances_`` (split counts in ``feature_names_`` order, as LightGBM's scikit-learn API).

    >>> import pipekit.datasets as D
    >>> from pipekit.backends import GBM
    >>> from pipekit.data import RandomSplitter
    >>> from pipekit.tabular import Categorify, FillMissing, Tabular
    >>> tab = Tabular(D.path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing],
    ...               cat_names=["workclass", "education", "occupation"], cont_names=["age", "hours-per-week"],
    ...               y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))
    >>> gbm = GBM("classification", n_jobs=1).fit(tab.train, tab.valid)
    >>> gbm.classes_.tolist(), gbm.best_iteration_ < gbm.n_estimators, gbm.valid_score_ > 0.8   # stopped early
    (['<50k', '>=50k'], True, True)
    >>> gbm.predict(tab.valid).shape      # each class's probability for each validation row
    (6512, 2)
    """

    model_attr = "booster_"
    imports = ("lightgbm",)
    #: on the fold models a ``BaggedModel`` fits in threads: its stop signal (``pipekit.backends.base.FoldStop``),
    #: checked after each boosting round, so a bag left by Ctrl-C has its fold models end within a round
    _fold_stop: FoldStop | None = None
    param_constraints = {
        "task": TASK, "n_estimators": POSITIVE_INT, "learning_rate": POSITIVE,
        "num_leaves": Interval(2, None, integer=True), "min_child_samples": Interval(0, None, integer=True),
        "subsample": FRACTION, "colsample": FRACTION, "reg_lambda": Interval(0, None),
        "early_stopping_rounds": Interval(1, None, integer=True, none_ok=True), "native_categorical": Options(True, False),
        "time_limit": TIME_LIMIT, "n_jobs": N_JOBS, "seed": Interval(None, None, integer=True),
        "params": Is(lambda v: v is None or isinstance(v, dict), "None or a dict of LightGBM parameters"), "name": NAME}

    # the defaults of the arguments LightGBM has other names for are marked (Default), so that a name given with one
    # is checked against what the caller wrote, never against a default
    def __init__(self, task: str, n_estimators: int = DefaultInt(1000), learning_rate: float = DefaultFloat(0.05),
                 num_leaves: int = DefaultInt(31), min_child_samples: int = DefaultInt(20),
                 subsample: float = DefaultFloat(1.0), colsample: float = DefaultFloat(1.0),
                 reg_lambda: float = DefaultFloat(0.0), early_stopping_rounds: int | None = DefaultInt(_PATIENCE),
                 native_categorical: bool = True, time_limit: float | None = None, n_jobs: int | None = DefaultInt(-1),
                 seed: int = SEED, params: dict | None = None, name: str | None = None, **lightgbm: Any):
        self.task, self.n_estimators, self.learning_rate, self.num_leaves = task, n_estimators, learning_rate, num_leaves
        self.min_child_samples, self.subsample, self.colsample, self.reg_lambda = (min_child_samples, subsample,
                                                                                   colsample, reg_lambda)
        self.early_stopping_rounds, self.native_categorical = early_stopping_rounds, native_categorical
        self.time_limit = time_limit
        self.n_jobs, self.params, self.name = n_jobs, params, name
        self.seed = seed
        given = written(**{arg: getattr(self, arg) for arg in _LIGHTGBM_NAME})  # 0 and 1000 too, when written
        for arg in _LIGHTGBM_NAME:  # kept as the plain numbers (get_params, clone and a file hold those)
            setattr(self, arg, plain(getattr(self, arg)))
        # LightGBM's names, as its scikit-learn estimators take them, and those in params, as a caller wrote them: a
        # file's record (one an earlier pipekit wrote holds every argument, defaults too, beside params that LightGBM
        # read over them) and a copy of a GBM are taken as they stand, their values checked by check_params
        if (lightgbm or (isinstance(params, dict) and params)) and not built_from_held_settings(self):
            own, extra = _one_spelling(given, lightgbm, params, task=task)
            for k, v in own.items():  # a name of an argument in params sets it too: clone and a file read it alike
                setattr(self, k, v)
            if extra:
                self.params = {**(params or {}), **extra}
        self.check_params()

    def check_params(self) -> None:
        """As every component's, the names in LightGBM's ``metric`` in ``params`` (:func:`check_metric`), and the
        other LightGBM parameters in ``params`` (:func:`check_lightgbm_values`: the objective for the task, the
        values of LightGBM's common parameters)."""
        super().check_params()
        check_metric(self.params, self.task, names_only=True)
        check_lightgbm_values(self.params, self.task)

    def set_params(self, **params: Any) -> Any:
        """As every component's; LightGBM's names are taken as ``GBM(...)`` takes them (``max_depth=5`` joins
        ``params``, ``random_state=1`` sets ``seed``), and two names of one setting given together must agree. A
        setting given here replaces what the held ``params`` say of it under any of its names."""
        own = param_names(GBM)
        lightgbm = {k: v for k, v in params.items() if k not in own}
        given = {k: v for k, v in params.items() if k in _LIGHTGBM_NAME}
        if not (lightgbm or given or "params" in params):
            return super().set_params(**params)
        new = params.get("params")
        args, extra = _one_spelling(given, lightgbm, new if isinstance(new, dict) else None,
                                    task=params.get("task", self.task))
        out = {k: v for k, v in params.items() if k in own}
        if "params" in params:
            if extra:
                out["params"] = {**(new or {}), **extra}
        elif args or extra:
            names = lightgbm_names()
            now = {_LIGHTGBM_NAME[a] for a in args} | set(extra)
            held = self.params or {}
            left = {k: v for k, v in held.items() if (names.get(k, k) if isinstance(k, str) else k) not in now}
            if extra or len(left) < len(held):
                out["params"] = {**left, **extra} or None
        return super().set_params(**{**out, **args})

    def fit(self, train: Any, valid: Any = None, sample_weight: Any = None) -> Any:
        """As every backend's (:meth:`Backend.fit`); an ``early_stopping_rounds`` given (other than the default 50)
        has nothing to stop on without ``valid``: the fit says so and boosts every round (LightGBM refuses it;
        pipekit's ensembles fit their members without a valid split of the user's, so it is a warning here)."""
        valid = check_valid_split(self, valid)  # a split of no rows (no validation set) is none
        check_metric(self.params, self.task)
        said = [_metric_words(self.params[k]) for k in _metric_keys(self.params)] if self.params else []
        off = [words[0] for words in said if words and set(words) <= _NO_METRIC]  # LightGBM's names of no metric
        if valid is not None and self.early_stopping_rounds and said and len(off) == len(said):
            raise ParameterError(f"GBM: metric {off[0]!r} asks LightGBM for no metric, so early stopping has "
                                 "nothing to watch on the validation split; give a metric (metric='log_loss', "
                                 "'rmse') or early_stopping_rounds=None")
        if valid is None and self.early_stopping_rounds not in (None, _PATIENCE):
            warn(f"GBM(early_stopping_rounds={self.early_stopping_rounds}) has no validation split to stop on in this "
                 f"fit, so all n_estimators={self.n_estimators} rounds are boosted: pass one, gbm.fit(tab.train, "
                 "tab.valid) (TabularClassifier / TabularRegressor: fit(X, y, eval_set=[(X_valid, y_valid)])), or "
                 "give early_stopping_rounds=None")
        return super().fit(train, valid, sample_weight)

    @property
    def learns_trees(self) -> bool:
        """False where ``params`` ask LightGBM for a linear model in each leaf (:func:`linear_tree`), which reads the
        values; True for its trees."""
        return not linear_tree(self.params or {})

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict this model trains with."""
        if self.task == "regression":
            obj: dict[str, Any] = {"objective": "regression"}
        elif len(self.classes_) == 2:
            obj = {"objective": "binary"}
        else:
            obj = {"objective": "multiclass", "num_class": len(self.classes_)}
        p = {**obj, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
             "min_child_samples": self.min_child_samples, "lambda_l2": self.reg_lambda,
             "feature_fraction": self.colsample, "seed": self.seed, "deterministic": True,
             "num_threads": self._num_threads(), "verbosity": -1,
             "force_col_wise": True}
        if self.subsample < 1:
            p.update(bagging_fraction=self.subsample, bagging_freq=1)
        given = self.params or {}
        names = lightgbm_names()
        said = {names.get(k, k): k for k in given}  # LightGBM's own name -> the key it is given under
        if "objective" in said:  # the objective given, under whichever of its names, replaces the task's
            del p["objective"]
            n_classes = len(self.classes_) if self.task == "classification" else 0
            objective = given[said["objective"]]
            fits = _objective_fits(objective, self.task, n_classes)
            if fits is not None:
                raise ParameterError(f"GBM: objective={objective!r} does not fit a {n_classes}-class classifier; with "
                                     f"these training labels give one of {', '.join(fits)}")
            if OBJECTIVE_NAMES[objective] in MULTICLASS:  # one output per class, whatever their number
                p["num_class"] = n_classes
        if "num_class" in said and "num_class" in p:
            if given[said["num_class"]] != p["num_class"]:
                raise ParameterError(f"GBM: num_class={given[said['num_class']]!r}, and the training labels have "
                                     f"{p['num_class']} classes {list(self.classes_)[:20]}; leave num_class out "
                                     "(GBM sets it from the classes)")
            given = {k: v for k, v in given.items() if k != said["num_class"]}
        p.update(given)
        for key in _metric_keys(p):  # pipekit's and scikit-learn's names as LightGBM's for these classes
            p[key] = lightgbm_metric(p[key], len(self.classes_) if self.task == "classification" else 0)
        return p

    def _params_as_lightgbm(self) -> dict[str, Any] | None:
        """``params`` with the metric as LightGBM names it (:func:`lightgbm_metric`; two classes before a fit), as a
        file's parameters are checked: a file keeps the name given, which a GBM reads as it did."""
        if not self.params or self.task != "classification":
            return self.params
        n, keys = len(self.classes_) if "classes_" in vars(self) else 2, _metric_keys(self.params)
        return {k: lightgbm_metric(v, n) if k in keys else v for k, v in self.params.items()}

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        deadline = self._deadline()  # the time counts from here, LightGBM's first import included
        import lightgbm as lgb

        from pipekit.dependencies import check_dependencies

        check_dependencies(names=["lightgbm"])  # an older LightGBM fails on the dataset below, blaming free_raw_data

        cats = [i for i, c in enumerate(self.feature_names_) if c in self.cat_features_] \
            if self.native_categorical else []
        names = [f"f{i}" for i in range(len(self.feature_names_))]  # LightGBM refuses some characters in names
        params = self.lgb_params()
        self._check_monotone(params, cats)
        if self.task == "classification":
            check_class_weights(params, len(self.classes_))
        # Fortran order: LightGBM reads column-major float32 without converting it again. The data sets are built
        # here, with the training's parameters (binning reads them), one at a time in the process (_BUILDING)
        ds = lgb.Dataset(self.matrix(d, order="F"), label=self.encode_y(d.y), weight=d.weight, params=params,
                         categorical_feature=cats, feature_name=names, free_raw_data=True)
        valid_sets, callbacks = [], []
        self.evals_result_: dict[str, Any] = {}
        if valid is not None:
            valid_sets = [lgb.Dataset(self.matrix(valid, order="F"), label=self.encode_y(valid.y), reference=ds,
                                      params=params, categorical_feature=cats, feature_name=names)]
            callbacks.append(lgb.record_evaluation(self.evals_result_))
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        with _BUILDING:
            for built in (ds, *valid_sets):
                built.construct()
        if deadline is not None or self._fold_stop is not None:
            callbacks.append(_StopAt(deadline, self, best=valid is not None and bool(self.early_stopping_rounds),
                                     stop=self._fold_stop))
        progress = _Progress(ProgressMeter(self.n_estimators, f"boosting {self.name or type(self).__name__}"))
        if progress.meter.shows:
            callbacks.append(progress)
        try:
            self.booster_ = lgb.train(params, ds, num_boost_round=self.n_estimators, valid_sets=valid_sets,
                                      valid_names=["valid"] if valid_sets else None, callbacks=callbacks)
        finally:
            progress.close()
        self.best_iteration_ = kept_rounds(self.booster_.best_iteration, self.booster_.current_iteration())

    def _check_monotone(self, params: dict[str, Any], cats: list[int]) -> None:
        """LightGBM ends the process (its error is raised in a training thread) when ``monotone_constraints`` asks
        for a monotone output in a categorical input: refused here first, with the reason, as is a value that is not
        one of -1, 0 or 1 per input. It is read under each of LightGBM's names for it (``monotone_constraint``,
        ``mc``) and in each form LightGBM takes (a list, a tuple, a 1-D array, its comma-separated text
        ``"0,1,0"``)."""
        names = lightgbm_names()
        for key, value in params.items():
            if names.get(key, key) != "monotone_constraints":
                continue
            given = monotone_values(key, value)
            if not given:  # LightGBM reads an empty value as no constraints
                continue
            if len(given) != len(self.feature_names_):
                raise ParameterError(f"GBM: params {key}= has {len(given)} values; give one per input, "
                                     f"{len(self.feature_names_)}: {self.feature_names_}")
            bad = [self.feature_names_[i] for i in cats if given[i] != 0]
            if bad:
                raise ParameterError(f"GBM: params {key}= asks for a monotone output in the categorical input(s) "
                                     f"{bad}, which LightGBM cannot do; give 0 for them, or native_categorical=False "
                                     "to split on their codes as numbers")

    @staticmethod
    @contextlib.contextmanager
    def fitting_side_by_side(threads: int | None) -> Iterator[None]:
        """While a bag fits GBM fold models side by side, ``threads`` each, LightGBM's thread count for the whole
        process is capped at ``threads``: a prediction in another thread (a served model with ``n_jobs=-1``) then
        runs on as many threads as the fold models instead of changing the count under them (LightGBM sizes its
        buffers by that count). It narrows, and does not close, LightGBM's trouble with training in one thread
        while another predicts. The cap goes when the last such bag is done; a LightGBM without
        ``LGBM_SetMaxThreads`` is left as it is."""
        import lightgbm.basic

        lib = lightgbm.basic._LIB
        if threads is None or not hasattr(lib, "LGBM_SetMaxThreads"):
            yield
            return
        with _CAPPING:
            if _CAPPED["blocks"] == 0:
                before = ctypes.c_int(-1)
                lib.LGBM_GetMaxThreads(ctypes.byref(before))
                _CAPPED["before"] = before.value
                lib.LGBM_SetMaxThreads(ctypes.c_int(threads))
            _CAPPED["blocks"] += 1
        try:
            yield
        finally:
            with _CAPPING:
                _CAPPED["blocks"] -= 1
                if _CAPPED["blocks"] == 0:
                    lib.LGBM_SetMaxThreads(ctypes.c_int(_CAPPED["before"]))

    def _num_threads(self) -> int:
        """LightGBM's ``num_threads`` for ``n_jobs`` (0: LightGBM's default, all of them)."""
        return 0 if self.n_jobs in (None, -1) else threads(self.n_jobs)

    def _raw(self, X: np.ndarray, **kw: Any) -> np.ndarray:
        # LightGBM's thread count is one setting of the whole process that each of its calls sets: a prediction
        # that left it out set it to all the cores while a bag's other fold models trained on one thread each in
        # threads beside it, and LightGBM overran the buffers it had sized for one thread (a crash)
        with _BUILDING:  # and one prediction at a time, so two of other thread counts never overlap
            return np.asarray(self.booster_.predict(X, num_iteration=self.best_iteration_,
                                                    num_threads=self._num_threads(), **kw))

    def predict(self, data: Any, *, raw_score: bool = False, pred_contrib: bool = False) -> np.ndarray:
        """Class probabilities (n, n_classes) in ``classes_`` order for classification, values (n,) for
        regression. As LightGBM's ``predict`` takes them, ``raw_score=True`` gives the raw scores before the
        link (log-odds (n,) for binary, (n, n_classes) for multiclass) and ``pred_contrib=True`` LightGBM's
        TreeSHAP matrix: one column per input then the bias, per class for multiclass
        (``contributions`` gives the same values labelled).

        >>> gbm.predict(tab.valid, raw_score=True)[:3]  # doctest: +SKIP
        array([-3.1, 0.4, -5.2])
        """
        check_fork_safe("GBM.predict")
        check("GBM.predict", raw_score=(raw_score, Options(True, False)),
              pred_contrib=(pred_contrib, Options(True, False)))
        if raw_score and pred_contrib:
            raise ParameterError("GBM.predict: raw_score=True and pred_contrib=True ask for two different outputs; "
                                 "pass one of them")
        if not (raw_score or pred_contrib):
            return super().predict(data)
        d = self._prepare(data)
        return self._raw(self.matrix(d, order="F"), raw_score=raw_score, pred_contrib=pred_contrib)

    def _predict(self, d: TabularData) -> np.ndarray:
        p = self._raw(self.matrix(d, order="F"))
        return np.column_stack([1.0 - p, p]) if self.task == "classification" and p.ndim == 1 else p

    def feature_importance(self, kind: str = "gain") -> pl.DataFrame:
        """Total gain (``kind="gain"``) or number of splits (``kind="split"``) per input, descending."""
        self.check_is_fitted()
        check("GBM.feature_importance", kind=(kind, Options("gain", "split")))
        imp = self.booster_.feature_importance(importance_type=kind, iteration=self.best_iteration_)
        return feature_frame(self.feature_names_, imp)

    @property
    def feature_importances_(self) -> np.ndarray:
        """The number of splits on each input (over the rounds kept, ``best_iteration_``), in the order of
        ``feature_names_``, unnormalised: what LightGBM's scikit-learn API gives with its default
        ``importance_type="split"``. ``feature_importance(kind="gain")`` is the total gain, as a sorted frame."""
        self.check_is_fitted()
        return np.asarray(self.booster_.feature_importance(importance_type="split", iteration=self.best_iteration_),
                          dtype=np.int64)

    def contributions(self, data: Any) -> Contributions:
        """TreeSHAP values from LightGBM (``pred_contrib=True``) in raw-score space, ``bias + values.sum(1)`` being
        ``predict(data, raw_score=True)``: log-odds for a two-class model of the ``binary`` objective; per-class raw
        scores (values and bias per class, as for more classes) for a ``multiclass`` or ``multiclassova``
        objective, two classes included; for regression, the value itself (``space='value'``) with an objective
        that predicts its raw score (``regression``, ``regression_l1``, ``huber``, ``fair``, ``quantile``,
        ``mape``), else the raw score before the objective's link (``space='raw_score'``): the log of the
        predicted value for ``poisson``, ``gamma`` and ``tweedie``, its log-odds for ``cross_entropy``. An average
        of models (``MeanEnsemble``, ``BaggedModel``) averages values, so it refuses raw scores. ``data`` may also
        be an array of numbers (the book's ``row.values``: a row, or rows), its values in the order of
        ``feature_names_``."""
        self.check_is_fitted()
        d = self._prepare(array_rows(data, self.feature_names_, type(self).__name__, self.row_form().codes))
        X = self.matrix(d, order="F")
        c = self._raw(X, pred_contrib=True)
        F = len(self.feature_names_)
        raw = self._raw(X, raw_score=True)
        if self.task == "classification" and raw.ndim == 2:
            # one raw score per class (a multiclass objective, whatever the number of classes): LightGBM's
            # matrix holds each class's block of F + 1 columns, one after the other
            K = raw.shape[1]
            c = c.reshape(len(d), K, F + 1).transpose(0, 2, 1)  # (n, F+1, K)
            return Contributions(bias=c[:, F, :], values=c[:, :F, :], feature_names=list(self.feature_names_),
                                 prediction=raw, space="raw_score", classes=self.classes_)
        linked = self.task == "classification" or self._objective() not in IDENTITY_LINK
        return Contributions(bias=c[:, F], values=c[:, :F], feature_names=list(self.feature_names_),
                             prediction=raw, space="raw_score" if linked else "value",
                             classes=self.classes_ if self.task == "classification" else None)

    def _objective(self) -> str:
        """The LightGBM objective this model trains with, by LightGBM's own name (``poisson`` for
        ``params={'objective': 'poisson'}``, or the task's: ``regression``, ``binary``, ``multiclass``)."""
        names = lightgbm_names()
        given = next((v for k, v in self.lgb_params().items() if names.get(k, k) == "objective"), None)
        return OBJECTIVE_NAMES.get(given, str(given)) if isinstance(given, str) else str(given)

    # -- files: the booster as LightGBM's own model text --------------------------------------------------
    def params_to_data(self) -> dict[str, Any]:
        """The parameters a record keeps; its LightGBM ``params`` are first held to what a file may hold
        (:func:`pipekit.backends.booster_files.check_params_to_save`, the check loading runs), so a GBM whose file
        could not be loaded is refused when it is saved, naming the setting."""

        check_params_to_save(type(self).__name__, self._params_as_lightgbm(), LIGHTGBM_RULES)
        return super().params_to_data()

    def model_to_data(self, all_rounds: bool = False) -> np.ndarray:
        """The booster as LightGBM's model text in a 1-D uint8 array: the rounds prediction uses, or with
        ``all_rounds`` every round it holds (what a pickled copy keeps)."""
        text = self.booster_.model_to_string(num_iteration=-1 if all_rounds else None)
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()

    # -- pickling: the booster travels as its model text ---------------------------------------------------
    # LightGBM rebuilds a pickled booster as soon as it is unpickled, before any pipekit code runs; in a worker
    # forked from a process whose Polars threads were running that waits forever. Pickled as text, the booster is
    # rebuilt by __setstate__, after check_fork_safe has raised ForkedProcessError there.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "booster_" in state:
            state["booster_"] = self.model_to_data(all_rounds=True)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)  # the booster rebuilt in its place, so the attributes keep their order (and files theirs)
        held = state.get("booster_")
        if isinstance(held, np.ndarray):  # model text (a pickle of an earlier pipekit holds the booster itself)
            import lightgbm as lgb

            check_fork_safe("unpickling a GBM")
            state["booster_"] = lgb.Booster(model_str=held.tobytes().decode("utf-8"))
        self.__dict__.update(state)

    def __copy__(self) -> GBM:
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)  # a shallow copy shares the booster
        return out

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file; ``best_iteration_`` (the rounds prediction uses) must be a whole number of
        rounds, at most the rounds its ``lgb.train`` looped (``num_iterations`` in the stored booster's parameters).
        One above the trees the booster holds (a file written before pipekit capped it at fit, see
        :func:`kept_rounds`) is read as those trees: LightGBM predicts with every tree it holds then, so the
        predictions are the same.

        A GBM rebuilt from a file comes here right after ``__init__``, fitted or not, so its ``params`` (LightGBM
        parameters, passed to ``lgb.train`` by ``fit``) are checked here first: a file's must be LightGBM training
        parameters that are data, never a path, a network or a device setting (see
        :func:`pipekit.backends.booster_files.check_lightgbm_file_params`). A GBM built in code takes any."""

        check_lightgbm_file_params(self._params_as_lightgbm())
        super().state_from_data(state)
        if "booster_" in vars(self):
            held = self.booster_.current_iteration()
            looped = self.booster_.params.get("num_iterations")
            rounds = looped if isinstance(looped, int) and looped > 0 else self.n_estimators
            check_state(state, "prediction", best_iteration_=Interval(1, max(held, rounds), integer=True))
            self.best_iteration_ = kept_rounds(state["best_iteration_"], held)

    def model_from_data(self, data: Any) -> Any:
        import lightgbm as lgb

        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1):
            raise ExportError("booster_ must be LightGBM model text stored as a 1-D uint8 array")
        try:
            text = data.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ExportError("booster_ is not LightGBM model text (not UTF-8)") from None
        n_classes = len(self.classes_) if self.task == "classification" else 0
        text = checked_lightgbm_text(text, len(self.feature_names_), self.task, n_classes)
        try:
            return lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as e:
            raise ExportError(f"LightGBM refuses the stored model text: {str(e)[:200]}") from None


#: the keys LightGBM writes in a tree block (and its reader takes at most this many lines per tree)
TREE_KEYS = frozenset({
    "num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type", "left_child", "right_child",
    "leaf_value", "leaf_weight", "leaf_count", "internal_value", "internal_weight", "internal_count", "cat_boundaries",
    "cat_threshold", "is_linear", "shrinkage", "leaf_const", "num_features", "leaf_features", "leaf_coeff"})
#: objectives with one output per row (num_class=1, one tree per round), by task; multiclass objectives have k
SINGLE_OUTPUT = {"binary": ("binary", "cross_entropy", "cross_entropy_lambda"),
                 "regression": ("regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma",
                                "tweedie", "cross_entropy", "cross_entropy_lambda")}
MULTICLASS = ("multiclass", "multiclassova")
#: regression objectives whose prediction is the raw score itself (no link): the contributions of the others
#: (poisson, gamma, tweedie: the log of the value; cross_entropy: its log-odds) are raw scores
IDENTITY_LINK = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
#: every name LightGBM reads for an objective -> its own name for it (what its model text records)
OBJECTIVE_NAMES = {
    **{name: name for name in (*SINGLE_OUTPUT["binary"], *SINGLE_OUTPUT["regression"], *MULTICLASS, "lambdarank",
                               "rank_xendcg")},
    **dict.fromkeys(("regression_l2", "mean_squared_error", "mse", "l2", "l2_root", "root_mean_squared_error", "rmse"),
                    "regression"),
    **dict.fromkeys(("mean_absolute_error", "l1", "mae"), "regression_l1"), "softmax": "multiclass",
    **dict.fromkeys(("multiclass_ova", "ova", "ovr"), "multiclassova"), "xentropy": "cross_entropy",
    "xentlambda": "cross_entropy_lambda", "mean_absolute_percentage_error": "mape",
    **dict.fromkeys(("xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart"), "rank_xendcg")}
_INT_TOKEN = r"[-+]?[0-9]+"
_INT = re.compile(_INT_TOKEN)
_FLOAT_TOKEN = r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])"
#: the tree fields of whole numbers and of numbers, each value a plain ASCII number as LightGBM reads one (a sign,
#: digits, a point, an exponent, inf, nan; no '_', no other scripts' digits, no 'infinity'), spaces between them
INT_FIELDS = {key: rf"^ *(?:{_INT_TOKEN}(?: +{_INT_TOKEN})*)? *$" for key in (
    "split_feature", "left_child", "right_child", "decision_type", "cat_boundaries", "cat_threshold", "num_features",
    "leaf_features")}
FLOAT_FIELDS = {key: rf"^ *(?:{_FLOAT_TOKEN}(?: +{_FLOAT_TOKEN})*)? *$" for key in (
    "threshold", "leaf_value", "split_gain", "internal_value", "internal_weight", "internal_count", "leaf_weight",
    "leaf_count", "leaf_const", "leaf_coeff")}
#: the fields' patterns compiled once: the fields of a model of few small trees are matched one by one, those of
#: a larger model all in one polars pass (over _FEW characters)
_FIELD_RES = {key: re.compile(pattern) for key, pattern in {**INT_FIELDS, **FLOAT_FIELDS}.items()}
_FEW = 1 << 16
_LONG_INT = re.compile("[0-9]{19}")
#: whole numbers past this magnitude are out of every range a tree field has; they are kept at it in the arrays
_WIDE = 1 << 62
#: the most digits a whole number may have (Python's limit on reading one from text): a longer one is not a number
_DIGITS = 4300
_KEY = re.compile(r"[a-z_]+")
#: a parameter line; a value may hold brackets (``[interaction_constraints: [0,1],[2]]``), which LightGBM writes
#: into the parameters' JSON as they are, but no braces, quotes or backslashes
_PARAM = re.compile(r"\[[A-Za-z0-9_]+: [^{}\"\\\n]*\]")
_NOT_TEXT = re.compile(r"[^\n\x20-\x7e]")


def _int(v: str) -> int:
    """A whole number as LightGBM reads one (plain ASCII digits: no ``_``, no other scripts' digits)."""
    if not _INT.fullmatch(v):
        raise ValueError(v)
    return int(v)


def _odd_fields(trees: list[dict[str, str]]) -> list[dict[str, str]]:
    """For each tree, its number fields that are not plain numbers (``"bad"``) or hold a whole number of 19 digits
    or more (``"wide"``, read one by one): the fields of a large model are checked for all trees in one polars pass,
    so it loads about as fast as LightGBM reads it."""
    odd: list[dict[str, str]] = [{} for _ in trees]
    if sum(len(value) for tree in trees for value in tree.values()) <= _FEW:
        for tree, found in zip(trees, odd):
            for key, value in tree.items():
                pattern = _FIELD_RES.get(key)
                if pattern is not None and not pattern.match(value):
                    found[key] = "bad"
                elif key in INT_FIELDS and _LONG_INT.search(value):
                    found[key] = "wide"
        return odd
    keys = [key for key in _FIELD_RES if any(key in tree for tree in trees)]
    frame = pl.DataFrame({key: [tree.get(key) for tree in trees] for key in keys},
                         schema=dict.fromkeys(keys, pl.String))
    # one column per field saying "bad", then one per whole-number field saying "wide" (an absent field is neither)
    flags = frame.select(*[(~pl.col(key).str.contains(_FIELD_RES[key].pattern)).fill_null(False).alias(key)
                           for key in keys],
                         *[pl.col(key).str.contains(_LONG_INT.pattern).fill_null(False).alias(f"wide {key}")
                           for key in keys if key in INT_FIELDS])
    for row, col in zip(*np.nonzero(flags.to_numpy())):  # by tree, its "bad" fields first
        name = flags.columns[col]
        if name.startswith("wide "):
            odd[row].setdefault(name[5:], "wide")
        else:
            odd[row][name] = "bad"
    return odd


def _count(raw: str) -> int:
    """How many space-separated values ``raw`` holds."""
    if raw[:1] != " " and raw[-1:] != " " and "  " not in raw:
        return raw.count(" ") + 1 if raw else 0
    return len(raw.split())


def _numbers(tree: dict[str, str], key: str, n: int | Decimal, kind: type, where: str, odd: dict[str, str],
             required: bool = True, read: bool = True) -> np.ndarray:
    """Tree field ``key`` as an array of ``n`` numbers of ``kind`` (an absent field is empty: only allowed when ``n``
    is 0 or the field is optional); ``odd`` are the tree's fields :func:`_odd_fields` found. Whole numbers beyond
    +-2**62 are kept at that bound (out of every range a tree field has); :func:`_value` reads one as written.
    Without ``read``, only the values' form and count are checked (an empty array is returned)."""
    dtype = np.int64 if kind is int else np.float64
    raw = tree.get(key)
    if raw is None:
        if required and n:
            raise ExportError(f"{where}: the field {key!r} is missing")
        return np.zeros(0, dtype=dtype)
    if odd.get(key) == "bad" or (odd.get(key) == "wide" and any(len(v.lstrip("+-")) > _DIGITS for v in raw.split())):
        raise ExportError(f"{where}: {key} holds a value that is not a number")
    count = _count(raw)
    if count != n and (required or count):  # an optional field may be left empty (a one-leaf tree's weights)
        raise ExportError(f"{where}: {key} has {count} values, the tree needs {n}")
    if not read:
        return np.zeros(0, dtype=dtype)
    if kind is float:
        return np.array(raw.split(), dtype=dtype)
    if key not in odd and count:
        vals = np.fromstring(raw.strip(), dtype=dtype, sep=" ")  # plain whole numbers of at most 18 digits
        if len(vals) == count:
            return vals
    return np.array([_clamped(v) for v in raw.split()], dtype=dtype)


def _clamped(v: str) -> int:
    """The whole number ``v`` (a plain one), kept within +-2**62 (read from its digits without leading zeros: only
    numbers of at most 18 digits are converted)."""
    digits = v.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 18:
        return -_WIDE if v[0] == "-" else _WIDE
    return -int(digits) if v[0] == "-" else int(digits)


def _value(tree: dict[str, str], key: str, i: int) -> int:
    """The ``i``-th whole number of tree field ``key`` as written (for a message; :func:`_numbers` has checked it
    has at most 4300 digits)."""
    return int(tree[key].split()[i])


def _objectives(task: str, n_classes: int) -> tuple[str, ...]:
    """The LightGBM objectives a GBM of ``task`` with ``n_classes`` classes is trained with."""
    if task == "regression":
        return SINGLE_OUTPUT["regression"]
    # two classes: one log-odds output (binary), or a two-class multiclass objective given in ``params``
    return SINGLE_OUTPUT["binary"] + MULTICLASS if n_classes == 2 else MULTICLASS


def _check_header(lines: list[str], n_features: int, task: str, n_classes: int) -> tuple[list[str], int]:
    """The header lines (before the first tree), checked against the GBM that holds them: LightGBM sizes its
    prediction buffers by num_class (and num_tree_per_iteration, max_feature_idx) and writes one value per class
    from the objective, so a header that disagrees with the model's task and classes would make it write past
    a buffer or allocate without bound. Returns the lines to give LightGBM (without ``tree_sizes``) and the
    number of trees per round."""
    header: dict[str, str] = {}
    for line in lines:
        key, eq, value = line.partition("=")
        # LightGBM splits a line on every '=' (dropping empty pieces): only key=value with one '=' reads the same
        if not _KEY.fullmatch(key) or (eq and "=" in value and key not in ("feature_names", "monotone_constraints")):
            raise ExportError(f"booster_: the LightGBM header line {line[:60]!r} is not key=value")
        if key in header:
            raise ExportError(f"booster_: the LightGBM header gives {key} twice")
        header[key] = value
    try:
        max_feature = _int(header["max_feature_idx"])
        num_class = _int(header["num_class"])
        per_iter = _int(header.get("num_tree_per_iteration", header["num_class"]))
    except (KeyError, ValueError):
        raise ExportError("booster_: the LightGBM model text lacks a valid max_feature_idx / num_class header") from None
    if max_feature != n_features - 1:
        raise ExportError(f"booster_: the LightGBM model is for {max_feature + 1} inputs, this GBM has {n_features} "
                          f"(max_feature_idx={max_feature})")
    accepted = _objectives(task, n_classes)
    what = "a regression" if task == "regression" else f"a {n_classes}-class classifier"
    objective = [t for t in header.get("objective", "").split(" ") if t]
    if not objective or objective[0] not in accepted:
        raise ExportError(f"booster_: the LightGBM header says objective={header.get('objective', '')[:60]!r}; "
                          f"{what} is trained with one of {', '.join(accepted)}")
    want = n_classes if objective[0] in MULTICLASS else 1  # outputs per row, and trees per round
    if objective[0] in MULTICLASS:
        said = [t.split(":") for t in objective[1:] if "num_class" in t]
        if [s for s in said if s != ["num_class", str(n_classes)]] or len(said) != 1:
            raise ExportError(f"booster_: the LightGBM header's objective={header['objective'][:60]!r} must say "
                              f"num_class:{n_classes} once, for the {n_classes} classes of this GBM")
    if num_class != want or per_iter != want:
        raise ExportError(f"booster_: the LightGBM header says num_class={num_class}, num_tree_per_iteration="
                          f"{per_iter}; {what} with objective {objective[0]} has {want} of each")
    return [line for line in lines if not line.startswith("tree_sizes=")], per_iter


def _read_trees(lines: list[str], start: int, where: str) -> tuple[list[dict[str, str]], int]:
    """The tree blocks from line ``start`` as LightGBM reads them (``Tree=i``, then up to 22 ``key=value`` lines
    up to a blank one), refusing what it would read differently (a repeated or unknown key, a line without '=',
    a block longer than its reader takes); returns them and the index of the ``end of trees`` line."""
    trees: list[dict[str, str]] = []
    i = start
    while True:
        line = lines[i]
        if not line:
            i += 1
            continue
        if line == "end of trees":
            return trees, i
        name = f"{where} {len(trees)}"
        if line != f"Tree={len(trees)}":
            raise ExportError(f"{name}: expected 'Tree={len(trees)}', found {line[:40]!r}")
        tree: dict[str, str] = {}
        i += 1
        while lines[i]:
            key, eq, value = lines[i].partition("=")
            if not eq or key not in TREE_KEYS or key in tree:
                raise ExportError(f"{name}: the line {lines[i][:40]!r} is not a tree field LightGBM writes once "
                                  "(key=value)")
            tree[key] = value  # unique known keys: at most the 22 lines LightGBM's reader takes
            i += 1
        trees.append(tree)


def _check_parameters(lines: list[str]) -> list[str]:
    """The ``parameters:`` section after the trees, which LightGBM turns into JSON for ``Booster.params``: each
    line must be ``[name: value]`` as LightGBM writes it (a line without ': ' makes it read past its own list).
    Everything else after the trees (feature importances, pandas categories) is not read and is dropped."""
    out, inside = [], False
    for line in lines:
        if line == "parameters:":
            inside = True
        elif line == "end of parameters":
            break
        elif inside and line:
            if not _PARAM.fullmatch(line):
                raise ExportError(f"booster_: the LightGBM parameter line {line[:60]!r} is not '[name: value]'")
            out.append(line)
    return ["", "parameters:", *out, "end of parameters"] if out else []


def checked_lightgbm_text(text: str, n_features: int, task: str, n_classes: int) -> str:
    """LightGBM model text checked before LightGBM reads it, as the forests' node tables are: LightGBM trusts the
    header and the child, leaf, feature and category indices of its trees when predicting, so a tampered file
    would read stray memory, write past a buffer or loop forever. The header must be that of a model for this
    GBM's ``task`` and ``n_classes`` over ``n_features`` inputs (num_class, num_tree_per_iteration, objective,
    max_feature_idx). Every tree must be a tree over those inputs: each internal node's children come after it
    (so traversal ends), each node and leaf has one parent, split features exist, categorical splits point into
    the tree's category table. Numbers must be plain ASCII numbers (read alike by Python and LightGBM). Returns
    the text LightGBM is given: rebuilt from the checked lines, so it reads exactly what was checked (no
    ``tree_sizes``: it then reads the trees one after the other, where a bad one is an error rather than an
    abort)."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8) if text.isascii() else None
    bad = None if codes is not None and not (((codes < 0x20) & (codes != 0x0A)) | (codes == 0x7F)).any() else \
        _NOT_TEXT.search(text)
    if bad:
        raise ExportError(f"booster_: the LightGBM model text holds the character {bad.group()!r} at offset "
                          f"{bad.start()} (it is plain ASCII lines)")
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.startswith("Tree=")), None)
    if first is None:
        raise ExportError("booster_ is not LightGBM model text (no trees)")
    if "end of trees" not in lines[first:]:
        raise ExportError("booster_: the LightGBM model text is cut short (no 'end of trees')")
    head, per_iter = _check_header([line for line in lines[:first] if line], n_features, task, n_classes)
    trees, end = _read_trees(lines, first, "booster_: LightGBM tree")
    for i, (tree, odd) in enumerate(zip(trees, _odd_fields(trees))):
        _check_tree(tree, n_features - 1, f"booster_: LightGBM tree {i}", odd)
    if len(trees) % per_iter:
        raise ExportError(f"booster_: the LightGBM model has {len(trees)} trees, not a multiple of the "
                          f"num_tree_per_iteration={per_iter}")
    body = [f"Tree={i}\n" + "\n".join(f"{k}={v}" for k, v in tree.items()) + "\n" for i, tree in enumerate(trees)]
    tail = "\n".join(_check_parameters(lines[end + 1:]))
    return "\n".join(head) + "\n\n" + "\n".join(body) + "\nend of trees\n" + tail + "\n"


def _check_tree(tree: dict[str, str], max_feature: int, where: str, odd: dict[str, str]) -> None:
    try:
        n, n_cat = _int(tree.get("num_leaves", "")), _int(tree.get("num_cat", "0"))
    except ValueError:
        raise ExportError(f"{where}: num_leaves / num_cat are not whole numbers") from None
    if not (1 <= n <= MAX_LEAVES) or not 0 <= n_cat <= n - 1:  # each categorical split is one of the n - 1 nodes
        raise ExportError(f"{where}: num_leaves={n}, num_cat={n_cat} out of range")
    m = n - 1  # internal nodes
    feats = _numbers(tree, "split_feature", m, int, where, odd)
    left, right = _numbers(tree, "left_child", m, int, where, odd), _numbers(tree, "right_child", m, int, where, odd)
    thresholds = _numbers(tree, "threshold", m, float, where, odd)
    kinds = _numbers(tree, "decision_type", m, int, where, odd)
    leaves = _numbers(tree, "leaf_value", n, float, where, odd)
    # a NaN threshold sends every row one way without an error, and a NaN or infinite leaf reaches the predictions
    if np.isnan(thresholds).any() or not np.isfinite(leaves).all():
        raise ExportError(f"{where}: a split threshold is NaN or a leaf value is not a finite number; a fitted "
                          "tree's are numbers")
    for key in ("split_gain", "internal_value", "internal_weight", "internal_count"):
        _numbers(tree, key, m, float, where, odd, required=False, read=False)
    for key in ("leaf_weight", "leaf_count"):
        _numbers(tree, key, n, float, where, odd, required=False, read=False)
    if ((feats < 0) | (feats > max_feature)).any():
        raise ExportError(f"{where}: a split on a feature outside 0..{max_feature}")
    # each node's children in order (node 0's left and right, then node 1's ...): a child node must come after its
    # parent (so traversal ends), a leaf ~c must be one of the n
    kids, parents = np.stack([left, right], axis=1).ravel(), np.repeat(np.arange(m), 2)
    is_node = kids >= 0
    bad = np.flatnonzero(np.where(is_node, (kids <= parents) | (kids >= m), kids < -n))
    if len(bad):
        parent = int(parents[bad[0]])
        c = _value(tree, ("left_child", "right_child")[bad[0] % 2], parent)
        if c >= 0:
            raise ExportError(f"{where}: node {parent} has child node {c} (must be in {parent + 1}..{m - 1})")
        raise ExportError(f"{where}: node {parent} has leaf {~c} (the tree has {n} leaves)")
    nodes, leaf_parents = kids[is_node], parents[~is_node]
    if m and ((np.bincount(nodes, minlength=m)[1:] != 1).any() or (np.bincount(~kids[~is_node], minlength=n) != 1)
              .any()):
        raise ExportError(f"{where}: its nodes and leaves do not form a tree (each must have one parent)")
    if m:
        # each node's depth: the steps up to node 0, by jumping to the parent's parent until above the root
        up = np.full(m, -1)
        up[nodes] = parents[is_node]
        depth = (up >= 0).astype(np.int64)
        while (up >= 0).any():
            has = up >= 0
            depth[has], up[has] = depth[has] + depth[up[has]], up[up[has]]
        deepest = int(depth[leaf_parents].max()) + 1
        if deepest > MAX_DEPTH:
            raise ExportError(f"{where}: its leaves are {deepest} levels deep, over the {MAX_DEPTH} accepted")
    if ((kinds < 0) | (kinds > 15)).any():
        raise ExportError(f"{where}: a decision_type outside 0..15")
    bounds = _numbers(tree, "cat_boundaries", n_cat + 1 if n_cat else 0, int, where, odd)
    cats = _numbers(tree, "cat_threshold", len(tree.get("cat_threshold", "").split()), int, where, odd,
                   required=False)
    if n_cat and (bounds[0] != 0 or bounds[-1] != len(cats) or (np.diff(bounds) < 0).any()
                  or ((cats < 0) | (cats >= 1 << 32)).any()):
        raise ExportError(f"{where}: its category table (cat_boundaries, cat_threshold) is inconsistent")
    sets = thresholds[(kinds & 1) == 1]  # a categorical split's threshold is the index of its category set
    with np.errstate(invalid="ignore"):
        if not (np.isfinite(sets) & (sets == np.trunc(sets)) & (sets >= 0) & (sets < n_cat)).all():
            raise ExportError(f"{where}: a categorical split points outside its {n_cat} category sets")
    if tree.get("is_linear", "0") not in ("0", "1"):
        raise ExportError(f"{where}: is_linear must be 0 or 1")
    if tree.get("is_linear") == "1":
        counts = _numbers(tree, "num_features", n, int, where, odd)
        consts = _numbers(tree, "leaf_const", n, float, where, odd)
        if (counts < 0).any():
            raise ExportError(f"{where}: a negative num_features")
        total: int | Decimal = int(counts.sum())
        if counts.max() >= 1 << 40:  # the sum as written (a count past 2**62 is kept at it in counts), exactly
            with localcontext(Context(prec=2 * _DIGITS)):
                total = sum((Decimal(v) for v in tree["num_features"].split()), Decimal(0))
        features = _numbers(tree, "leaf_features", total, int, where, odd)
        if ((features < 0) | (features > max_feature)).any():
            raise ExportError(f"{where}: a linear leaf on a feature outside 0..{max_feature}")
        coeffs = _numbers(tree, "leaf_coeff", total, float, where, odd)
        # a linear leaf's prediction is its constant plus its coefficients times the inputs
        if not (np.isfinite(consts).all() and np.isfinite(coeffs).all()):
            raise ExportError(f"{where}: a linear leaf's leaf_const or leaf_coeff is not a finite number; a fitted "
                              "tree's are numbers")


class _StopAt:
    """A LightGBM callback that ends boosting at ``deadline`` (``time.perf_counter()``; None: no limit), keeping the
    rounds done, or with ``best`` the best of them on the first validation metric (as early stopping would keep
    them); and a fold model's fit, kept by no one, once its bag's ``stop`` signal is set (``GBM._fold_stop``)."""

    def __init__(self, deadline: float | None, model: GBM, best: bool, stop: FoldStop | None = None):
        # after LightGBM's recording (20) and early stopping (30), which ends first when both would; set on the
        # instance, as LightGBM numbers callbacks without one of their own first
        self.order = 40
        self.deadline, self.model, self.best, self.stop = deadline, model, best, stop
        self.best_iter, self.best_score, self.best_list = 0, None, []  # type: tuple[int, float | None, list]

    def __call__(self, env: Any) -> None:
        if self.stop is not None:
            self.stop.check()
        if self.deadline is None:
            return
        import lightgbm as lgb

        results = env.evaluation_result_list or []
        if self.best and results:
            first = results[0]
            value, maximize = first[2], first[3]
            if self.best_score is None or (value > self.best_score if maximize else value < self.best_score):
                self.best_iter, self.best_score, self.best_list = env.iteration, value, list(results)
        if time.perf_counter() >= self.deadline and env.iteration < env.end_iteration - 1:
            self.model.stopped_on_time_ = True
            if self.best and results:
                raise lgb.callback.EarlyStopException(self.best_iter, self.best_list)
            raise lgb.callback.EarlyStopException(env.iteration, list(results))


class _Progress:
    """A LightGBM callback moving a :class:`ProgressMeter` over the boosting rounds: the round and the latest
    validation score, redrawn at most every ``every`` seconds (a round costs one clock read), and the last round
    reached when the fit ends (early stopping and ``time_limit`` included)."""

    def __init__(self, meter: ProgressMeter, every: float = 0.2):
        self.order = 10  # first, so the round early stopping ends on is counted too
        self.meter, self.every = meter, every
        self.round, self.results, self.next_draw = 0, None, time.perf_counter() + every  # type: tuple[int, Any, float]

    def __call__(self, env: Any) -> None:
        self.round, self.results = env.iteration + 1 - env.begin_iteration, env.evaluation_result_list
        if time.perf_counter() >= self.next_draw:
            self.draw()
            self.next_draw = time.perf_counter() + self.every

    def draw(self) -> None:
        first = self.results[0] if self.results else None  # (valid name, metric, value, bigger is better, ...)
        self.meter.update(self.round, f"{first[0]} {first[1]} {first[2]:.4g}" if first else "")

    def close(self) -> None:
        if self.meter.shows and self.round:
            self.draw()
        self.meter.close()
