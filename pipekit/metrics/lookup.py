"""A metric from what a user passes: an object, a class or a function (:func:`as_metric`), or, for a backend's
task, a name of pipekit's or one of scikit-learn's scoring names (:func:`get_metric`); the check that a metric
can score a task's predictions before any model is fitted (:func:`check_metric`), and that a Learner's metrics
score its data's kind of target (:func:`check_metric_targets`)."""
from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipekit.core.errors import ParameterError, warn
from pipekit.core.registry import registered
from pipekit.core.validate import Options, check
from pipekit.metrics.base import SUGGESTED_METRICS, TARGET_KINDS, TASKS, Metric, describe_target, target_fix, target_kind, two_classes_as_labels
from pipekit.metrics.classification import RocAuc, _LabelScore
from pipekit.metrics.functions import FuncMetric, scored_direction

DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}


def as_metric(m: Any, y_first: bool = False) -> Metric:
    """A fresh metric from what a user passes: a metric (copied, so learners never share accumulators),
    a metric class, ``functools.partial`` of a metric, or a plain function (see :class:`FuncMetric`)."""
    if isinstance(m, Metric):
        return m.clone()
    if isinstance(m, type) and issubclass(m, Metric):
        return m()
    if isinstance(m, functools.partial) and isinstance(m.func, Metric) and not m.args:
        return m.func.configured(**m.keywords)
    if callable(m):
        return FuncMetric(m, y_first=y_first)
    if isinstance(m, str):  # a name is no metric here: the object of that name is (get_metric reads names for a task)
        import pipekit.metrics as package  # pipekit.learn hands on the package's metrics

        named = getattr(package, m, None) if m.isidentifier() else None
        known = _metrics_by_name().get(m)
        use = (f"{m}, from pipekit.learn" if isinstance(named, Metric) or isinstance(named, type) and
               issubclass(named, Metric) else f"{known.__name__}(), from pipekit.learn" if known is not None else
               "a pipekit Metric such as accuracy or rmse, from pipekit.learn, or a function fn(pred, targ)")
        raise ParameterError(f"metrics={m!r} is a str: pass the metric itself ({use})")
    raise ParameterError(f"a metric must be a pipekit Metric or a function fn(pred, targ); got {type(m).__name__}")


def check_metric(metric: Metric, task: str, n_classes: int | None = None) -> None:
    """Score a near-perfect prediction of a few rows with ``metric`` before any model is fitted: a function that
    cannot take what it will be given (``(n, n_classes)`` probabilities and class indices, or values) fails
    here, with what it gets, rather than after every fit.

    A metric known to score the other task (a named one, a function of ``sklearn.metrics``) is refused first:
    ``mean_squared_error`` of a classifier's labels is a number, and a meaningless one.

    A function's direction (a :class:`FuncMetric`'s ``greater_is_better``) is then read from its scores
    (:func:`~pipekit.metrics.functions.scored_direction`): the near-perfect prediction against a constant one and one
    of the wrong values (the wrong class; the values in reverse). Where FuncMetric read the direction from the
    function's name (none was given) the scores set it, the name deciding only where they do not tell; a direction
    given (``FuncMetric(fn, greater_is_better=...)``, or a copy of a FuncMetric, which keeps the direction it had)
    that they contradict is kept, with a warning naming the metric.

    >>> check_metric(get_metric("accuracy", "classification"), "classification", 2)
    >>> from sklearn.metrics import mean_squared_error
    >>> check_metric(get_metric(mean_squared_error, "classification"), "classification", 2)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: metric 'mean_squared_error' is a regression metric but the task is 'classification'...
    >>> def rmspe(y_true, y_pred):
    ...     return float(np.sqrt(np.mean(((y_true - y_pred) / y_true) ** 2)))
    >>> m = get_metric(rmspe, "regression")
    >>> check_metric(m, "regression")
    >>> m.greater_is_better
    False
    """
    scores = metric_task(metric)
    if scores is not None and scores != task:
        raise ParameterError(f"metric {metric.name!r} is a {scores} metric but the task is {task!r}; use a "
                             f"{task} metric (default: {DEFAULT_METRIC[task]!r})")
    rows = np.arange(12)
    if task == "classification":
        k = max(2, n_classes or 2)
        y_true = rows % k
        y_pred = np.full((len(rows), k), 0.1 / (k - 1))
        y_pred[rows, y_true] = 0.9
        # every class equally likely; the wrong class as sure as the near-perfect prediction is of the right one
        worse = [np.full((len(rows), k), 1.0 / k), np.roll(y_pred, 1, axis=1)]
        gets = f"class indices and (n, {k}) probabilities"
    else:
        y_true = (rows + 1).astype(np.float64)  # no zero: a relative error (mape, rmspe) divides by the true values
        y_pred = y_true + 0.25
        worse = [np.full(len(rows), y_true.mean()), y_true[::-1].copy()]
        gets = "true values and predicted values, both (n,)"
    try:
        perfect = metric.score(y_true, y_pred)
    except Exception as e:  # a user's function: whatever it raises is reported with what it was given
        raise ParameterError(f"metric {metric.name!r} fails on a {task}'s predictions (it gets {gets}): "
                             f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    if isinstance(metric, FuncMetric):
        _check_direction(metric, perfect, [_quiet_score(metric, y_true, p) for p in worse])


def _quiet_score(metric: Metric, y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """``metric``'s score of a poor prediction, or None where it fails on one (a correlation of a constant): only
    the near-perfect prediction must be scored, and what a user's function says of the poor ones is not shown."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return float(metric.score(y_true, y_pred))
    except Exception:
        return None


def _check_direction(metric: FuncMetric, perfect: float, worse: list[float | None]) -> None:
    """Set (where it was read from the function's name) or check a function metric's direction by its scores of a
    near-perfect prediction (``perfect``) and of poor ones (``worse``; None where it failed on one)."""
    scored = [w for w in worse if w is not None]
    told = scored_direction(perfect, scored)
    if told is None or told == metric.greater_is_better:
        return
    said = ", ".join(f"{w:.4g}" for w in scored)
    way = "larger" if told else "smaller"
    if not metric._direction_from_name:
        warn(f"metric {metric.name!r} scores a near-perfect prediction {perfect:.4g} and poor ones {said}, so "
             f"{way} is better, but it is set greater_is_better={metric.greater_is_better}: models are chosen "
             f"on it as set. If {way} is better, pass FuncMetric({metric.name}, greater_is_better={told}, "
             "y_first=True)")
        return
    metric.greater_is_better = told  # type: ignore[misc]  # the scores tell what the function's name did not
    warn(f"metric {metric.name!r} is taken as better {way}, as its scores say (a near-perfect prediction "
         f"{perfect:.4g}, poor ones {said}), not as its name would; to set it yourself pass "
         f"FuncMetric({metric.name}, greater_is_better=..., y_first=True)")


def check_metric_targets(who: str, metrics: Sequence[Metric], dls: Any, loss: Any = None) -> None:
    """Refuse, before any batch is run, a metric that does not score the targets of ``dls``: its ``target_kinds``
    against the data's ``loss_kind`` (rmse of classes, accuracy of ratings, accuracy_multi of one class per item give
    a number that means nothing, or fail inside torch after an epoch). The message names the metric, the targets and
    the metrics that score them. ``loss``: the learner's loss; one that reads two classes as one 0/1 label per item
    (``reads_two_classes``, a single-output binary model) lets the multi-label metrics score them too.

    A metric that declares no kinds (a function of the user's, perplexity) and data whose kind is not known
    (:func:`~pipekit.metrics.base.target_kind`) are not checked.
    """
    kind = target_kind(dls)
    if kind is None:
        return
    scored = {kind}
    if two_classes_as_labels(dls, loss):
        scored.add("bce")
    for m in metrics:
        kinds = m.target_kinds
        if kinds is None or scored.intersection(kinds):
            continue
        instead = m.multi_label_instead if kind == "bce" else ""
        use = instead or SUGGESTED_METRICS[kind]
        scores = " or ".join(TARGET_KINDS.get(k, repr(k)) for k in kinds)
        cls = type(m).__name__  # named too where the recorded name is another metric's (f1_score: F1ScoreMulti)
        name = m.name if m.name.replace("_", "").lower() == cls.lower() else f"{m.name} ({cls})"
        raise ParameterError(f"{who}: the metric {name} scores {scores}, and this learner's targets are "
                             f"{describe_target(dls)}: use {use}{target_fix(kind, kinds[0])}")


#: the task of each module of ``sklearn.metrics`` whose functions score one task only
_SKLEARN_TASKS = {"sklearn.metrics._regression": "regression", "sklearn.metrics._classification": "classification",
                  "sklearn.metrics._ranking": "classification"}


def metric_task(metric: Metric) -> str | None:
    """The task ``metric`` scores, where it is known: a pipekit metric's ``task``, or for a function of
    ``sklearn.metrics`` the task of the module it is defined in; None for any other function.

    >>> from sklearn.metrics import r2_score, roc_auc_score
    >>> metric_task(get_metric(r2_score, "regression")), metric_task(get_metric(roc_auc_score, "classification"))
    ('regression', 'classification')
    """
    fn = getattr(metric, "fn", None) if isinstance(metric, FuncMetric) else None
    if fn is None:
        return getattr(metric, "task", None)
    base = fn.func if isinstance(fn, functools.partial) else fn
    return _SKLEARN_TASKS.get(str(getattr(base, "__module__", "")))


#: scikit-learn's scoring names of the ROC-AUC of several classes, as RocAuc's parameters
_SKLEARN_ROC_AUC = {"roc_auc_ovr": {"multi_class": "ovr"}, "roc_auc_ovo": {"multi_class": "ovo"},
                    "roc_auc_ovr_weighted": {"multi_class": "ovr", "average": "weighted"},
                    "roc_auc_ovo_weighted": {"multi_class": "ovo", "average": "weighted"}}
#: the pipekit metric of what scikit-learn's ``neg_*`` scorers negate
_NEGATED = {"mean_absolute_error": "mae", "mean_squared_error": "mse", "root_mean_squared_error": "rmse",
            "log_loss": "log_loss"}


def _negated_name(metric: str, by_name: dict[str, Any]) -> str:
    """Why scikit-learn's scorer name ``metric`` (``neg_mean_absolute_error``) is no pipekit metric, and what to pass.
    A pipekit metric scores the loss itself and knows it is better smaller, so a name for minus the loss would give
    the other sign than scikit-learn's scorer does."""
    import sklearn.metrics

    loss = metric[len("neg_"):]
    ours = _NEGATED.get(loss) or (loss if loss in by_name else None)
    fn = next((f for f in (loss, f"{loss}_loss") if callable(getattr(sklearn.metrics, f, None))), None)
    use = (f"metric={ours!r}" if ours else f"metric=sklearn.metrics.{fn}" if fn else
           "the pipekit metric or the sklearn.metrics function of that loss")
    return (f"metric={metric!r} is scikit-learn's scorer of minus {loss}; pipekit's metrics score the loss itself "
            f"(positive) and know that smaller is better, so selection and reports need no minus sign: use {use}")


def _metrics_by_name() -> dict[str, type[Metric]]:
    """Every registered metric class a backend's task can use, by its name and its aliases (fastai's names and
    pipekit's former ones)."""
    by_name: dict[str, type[Metric]] = {}
    for cls in registered("metric").values():
        if isinstance(cls, type) and issubclass(cls, Metric) and cls.task is not None:
            try:
                for alias in (cls().name, *cls.aliases):
                    by_name.setdefault(alias, cls)
            except TypeError:  # a metric that needs parameters has no bare name
                continue
    return by_name


def get_metric(metric: Any, task: str) -> Metric:
    """A metric for a backend's ``task``: a name (``"accuracy"``, ``"rmse"``, ``"roc_auc"``, ...), a Metric,
    a function ``fn(y_true, y_pred)`` (see :class:`FuncMetric`: its direction is read from its name), or None for
    the task's default. The label scores also take scikit-learn's scoring names with their average
    (``"f1_macro"``, ``"precision_weighted"``, ``"recall_micro"``), and the ROC-AUC scikit-learn's ``"roc_auc_ovr"``,
    ``"roc_auc_ovo"`` and their ``_weighted`` forms. scikit-learn's ``neg_*`` scorer names are refused, naming the
    metric to use: a pipekit metric scores the loss itself, not minus it (``"mae"`` for
    ``"neg_mean_absolute_error"``).

    >>> get_metric("f1_macro", "classification"), get_metric("roc_auc_ovr_weighted", "classification")
    (F1Score(average='macro'), RocAuc(average='weighted'))
    """
    check("get_metric", task=(task, Options(*TASKS)))
    if metric is None:
        metric = DEFAULT_METRIC[task]
    if isinstance(metric, str):
        by_name = _metrics_by_name()
        if metric in _SKLEARN_ROC_AUC:  # scikit-learn's scoring names of the ROC-AUC of several classes
            if task != "classification":
                raise ParameterError(f"metric={metric!r} is a classification metric but the task is {task!r}")
            return RocAuc(**_SKLEARN_ROC_AUC[metric])
        if metric.startswith("neg_"):  # scikit-learn's scorers of minus a loss or an error
            raise ParameterError(_negated_name(metric, by_name))
        base, _, average = metric.rpartition("_")
        averaged = by_name.get(base) or by_name.get(f"{base}_score")
        if metric not in by_name and averaged is not None and issubclass(averaged, _LabelScore) and \
                average in ("binary", "macro", "micro", "weighted"):
            if averaged.task != task:
                raise ParameterError(f"metric={metric!r} is a {averaged.task} metric but the task is {task!r}")
            return averaged(average=average)  # type: ignore[call-arg]
        if metric not in by_name:
            raise ParameterError(f"metric={metric!r} is not known; use one of {sorted(by_name)} (the label scores "
                                 "with an average too: 'f1_macro', 'precision_weighted', ...) or pass a Metric")
        if by_name[metric].task != task:
            raise ParameterError(f"metric={metric!r} is a {by_name[metric].task} metric but the task is {task!r}")
        return by_name[metric]()
    return as_metric(metric, y_first=True)
