"""A metric from what a user passes: an object, a class, a function or a scikit-learn scorer (:func:`as_metric`),
or, for a backend's task, a name of pipekit's or one of scikit-learn's scoring names (:func:`get_metric`); the check that a metric
can score a task's predictions before any model is fitted (:func:`check_metric`), and that a Learner's metrics
score its data's kind of target (:func:`check_metric_targets`)."""
from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipekit.core.errors import ParameterError, warn
from pipekit.core.registry import registered
from pipekit.core.validate import Options, check
from pipekit.metrics.base import SUGGESTED_METRICS, TARGET_KINDS, TASKS, Metric, describe_target, target_fix, target_kind, two_classes_as_labels
from pipekit.metrics.classification import RocAuc, _LabelScore
from pipekit.metrics.functions import (CLASS_ARGS, LAMBDA_GUESS, FuncMetric, class_positions, scored_direction, scores_decide,
                                       sklearn_input, sklearn_take)

DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}


def as_metric(m: Any, y_first: bool = False) -> Metric:
    """A fresh metric from what a user passes: a metric (copied, so learners never share accumulators),
    a metric class, ``functools.partial`` of a metric, or a plain function (see :class:`FuncMetric`); with ``y_first``
    (whole arrays, targets first) a scikit-learn scorer too (``make_scorer(...)``, ``get_scorer(...)``, see
    :func:`get_metric`).

    >>> from pipekit.metrics import Accuracy, as_metric
    >>> as_metric(Accuracy).name, as_metric(Accuracy(axis=1)).axis
    ('accuracy', 1)
    >>> def mean_gap(pred, targ):
    ...     return (pred - targ).abs().mean()
    >>> type(as_metric(mean_gap)).__name__
    'FuncMetric'
    >>> try:
    ...     as_metric("accuracy")
    ... except Exception as e:
    ...     print(type(e).__name__)
    ParameterError
    """
    if is_scorer(m):
        if not y_first:  # a Learner's metric is a function of a batch's outputs and targets, not of a fitted model
            raise ParameterError(f"metrics={m!r} is a scikit-learn scorer, which scores a fitted estimator on X and y; "
                                 "a Learner's metric scores its outputs: pass a pipekit Metric (RocAuc(), rmse) or "
                                 "the function through skm_to_fastai(fn), from pipekit.learn")
        return _scorer_metric(m)
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
        rows = np.arange(max(12, 2 * k))  # every class twice: a score over the classes (one-vs-rest AUC) is defined
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
                             f"{type(e).__name__}: {str(e).splitlines()[0][:600]}{_labels_fix(metric)}") from e
    if isinstance(metric, FuncMetric):
        _check_direction(metric, perfect, [_quiet_score(metric, y_true, p) for p in worse])


def checked_metric(metric: Any, task: str, classes: Any = None) -> Metric:
    """:func:`get_metric` then :func:`check_metric`, as a model chooses with it: a function that cannot score the
    task's predictions fails before any model is fitted, and a plain function's direction is set by its scores. A
    lambda's direction is warned of once: the direction its scores set, or where they do not tell, that it is taken
    as better larger (the warning :class:`FuncMetric` gives where nothing checks its scores).

    >>> def rmspe(y_true, y_pred):
    ...     return float(np.sqrt(np.mean(((y_true - y_pred) / y_true) ** 2)))
    >>> checked_metric(rmspe, "regression").greater_is_better
    False
    """
    with scores_decide():
        m = get_metric(metric, task, classes)
    check_metric(m, task, None if classes is None else len(classes))
    return m


def _labels_fix(metric: Metric) -> str:
    """What to pass where ``metric``'s keyword arguments name classes by label (``pos_label="malignant"``) and it is
    checked without the classes: the position of the class in the classifier's ``classes_``."""
    fn = getattr(metric, "fn", None)
    kwargs = fn.kwargs if isinstance(fn, _ScoreFunction) else fn.keywords if isinstance(fn, functools.partial) else {}
    if isinstance(fn, _ScoreFunction) and fn.classes is not None:
        return ""
    named = {k: kwargs[k] for k in CLASS_ARGS if kwargs.get(k) is not None}
    if not named:
        return ""
    said = ", ".join(f"{k}={v!r}" for k, v in named.items())
    return (f". {said} names a class by its label, and the classes are not known here, where the metric is given "
            "class positions: pass each class's position in the classifier's classes_ (the sorted labels: "
            "pos_label=list(model.classes_).index(label)), or score with fit_ensemble(metric=...) or "
            "model.score(data, metric=...), which read labels")


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
    # a lambda's guess not yet said (see checked_metric): one warning, of the direction taken
    unsaid, metric._guess_unsaid = metric._guess_unsaid, False
    if told is None and unsaid:
        warn(LAMBDA_GUESS)
    if told is None or told == metric.greater_is_better and not unsaid:
        return
    said = ", ".join(f"{w:.4g}" for w in scored)
    way = "larger" if told else "smaller"
    if unsaid:  # the direction read from no name: the scores set it
        metric.greater_is_better = told  # type: ignore[misc]
        warn(f"metric {metric.name!r} is taken as better {way}, as its scores say (a near-perfect prediction "
             f"{perfect:.4g}, poor ones {said}); a lambda has no name to read it from: to set it yourself pass "
             "FuncMetric(fn, greater_is_better=..., y_first=True), or name the function")
        return
    if not metric._direction_from_name:
        use = (f"make_scorer({metric.name}, greater_is_better={told}, ...)" if isinstance(metric.fn, _ScoreFunction)
               and metric.fn.scorer else f"FuncMetric({metric.name}, greater_is_better={told}, y_first=True)")
        warn(f"metric {metric.name!r} scores a near-perfect prediction {perfect:.4g} and poor ones {said}, so "
             f"{way} is better, but it is set greater_is_better={metric.greater_is_better}: models are chosen "
             f"on it as set. If {way} is better, pass {use}")
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
    _check_one_target(who, metrics, dls)
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


def _check_one_target(who: str, metrics: Sequence[Metric], dls: Any) -> None:
    """Refuse, before any batch is run, a pipekit metric that scores one target (one declaring its
    ``target_kinds``: ``accuracy``, ``rmse``, ``F1Score()``..., or such a metric given as a function) on data of
    several targets (``blocks=(ImageBlock, CategoryBlock, CategoryBlock), n_inp=1``): each batch gives a metric every
    target at once, ``fn(pred, t1, t2)``, which such a metric cannot read (it would fail after a whole training
    epoch). :func:`~pipekit.metrics.base.target_kind` knows no kind for such data. A function
    of the user's (no ``target_kinds``) is called with every target and is never refused here."""
    blocks = tuple(getattr(dls, "blocks", ()) or ())
    targets = blocks[int(getattr(dls, "n_inp", 1)):]
    one = next((m for m in metrics if m.target_kinds is not None), None)
    if len(targets) < 2 or one is None:
        return
    names = [f"t{i + 1}" for i in range(len(targets))]
    args = ", ".join(names)
    sizes = getattr(dls, "c", None)
    first = sizes[0] if isinstance(sizes, list) and sizes and isinstance(sizes[0], int) else None
    outputs = f"pred[:, :{first}]" if first is not None else "the first target's outputs"
    raise ParameterError(
        f"{who}: the metric {one.name} scores one target, and the data has {len(targets)} targets "
        f"({', '.join(type(b).__name__ for b in targets)}), which every batch gives a metric together. Give a function "
        f"of the predictions and every target, fn(pred, {args}), that scores the one it is for from its own outputs, "
        f"e.g. def {names[0]}_{one.name}(pred, {args}): return {one.name}({outputs}, {names[0]}), and pass "
        f"metrics=[{names[0]}_{one.name}, ...]")


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
    if isinstance(base, _ScoreFunction):  # a scorer's function, or a scikit-learn error known by name
        base = base.score_func
    return _SKLEARN_TASKS.get(str(getattr(base, "__module__", "")))


#: scikit-learn's scoring names of the ROC-AUC of several classes, as RocAuc's parameters
_SKLEARN_ROC_AUC: dict[str, dict[str, Any]] = {"roc_auc_ovr": {"multi_class": "ovr"}, "roc_auc_ovo": {"multi_class": "ovo"},
                                                 "roc_auc_ovr_weighted": {"multi_class": "ovr", "average": "weighted"},
                                                 "roc_auc_ovo_weighted": {"multi_class": "ovo", "average": "weighted"}}


def _negated_name(metric: str, by_name: dict[str, Any]) -> str:
    """Why scikit-learn's scorer name ``metric`` (``neg_mean_absolute_error``) is no pipekit metric, and what to pass.
    A pipekit metric scores the loss itself and knows it is better smaller, so a name for minus the loss would give
    the other sign than scikit-learn's scorer does."""
    import sklearn.metrics

    loss = metric[len("neg_"):]
    ours = by_name[loss]().name if loss in by_name else None  # a metric class's name, or its scikit-learn alias
    fn = next((f for f in (loss, f"{loss}_loss") if callable(getattr(sklearn.metrics, f, None))), None)
    use = (f"metric={ours!r}" if ours else f"metric=sklearn.metrics.{fn}" if fn else
           "the pipekit metric or the sklearn.metrics function of that loss")
    return (f"metric={metric!r} is scikit-learn's scorer of minus {loss}; pipekit's metrics score the loss itself "
            f"(positive) and know that smaller is better, so selection and reports need no minus sign: use {use}")


#: the errors pipekit has no metric class of, scored with scikit-learn's function of that name, by their short names
#: and the function's own, each better smaller (the errors a metric class scores are known by that class's
#: ``aliases``: ``"mean_absolute_error"`` is MAE); and what to do where the function cannot score the values it is given
_SKLEARN_ERRORS = {"rmsle": "root_mean_squared_log_error", "root_mean_squared_log_error": "root_mean_squared_log_error",
                   "mape": "mean_absolute_percentage_error",
                   "mean_absolute_percentage_error": "mean_absolute_percentage_error"}
_SKLEARN_ERROR_FIX = {"root_mean_squared_log_error": "a logarithmic error scores values above -1 only: score these "
                                                     "targets with metric='rmse'"}
#: what a scikit-learn scorer asks of an estimator (its ``_response_method``, one of these or a tuple of them)
_RESPONSES = ("predict", "predict_proba", "decision_function")


class _ScoreFunction:
    """A scikit-learn score function ``score_func(y_true, y_pred, **kwargs)`` called on what pipekit's models predict
    as scikit-learn's scorers call it on an estimator's responses: with ``response`` 'predict' a classifier's classes
    (the arg-max of its probabilities), with 'proba' (``predict_proba``, ``decision_function``) its probabilities,
    the positive class's column for two classes (see :func:`~pipekit.metrics.functions.sklearn_input`: ``log_loss``
    gets every class's label), with 'function' what :class:`FuncMetric` gives a function of ``sklearn.metrics``;
    None, or a regression's values, as they are. ``classes``: the classifier's class labels, where known: the
    keyword arguments naming classes by label (``pos_label="malignant"``, ``labels=[...]``) are then given as the
    class positions the targets are (see :func:`~pipekit.metrics.functions.class_positions`), as scikit-learn's
    scorers see labels. ``scorer``: read from a scorer (a message names make_scorer). A ValueError of the function
    (a value it cannot score) is a ParameterError naming it and ``fix`` where one is given."""

    def __init__(self, score_func: Any, response: str | None = None, kwargs: dict[str, Any] | None = None,
                 fix: str = "", scorer: bool = False, classes: Any = None):
        self.score_func, self.response, self.kwargs, self.fix, self.scorer = score_func, response, kwargs or {}, fix, scorer
        self.classes = classes
        self.__name__ = str(getattr(score_func, "__name__", type(score_func).__name__))

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        p, kw = y_pred, dict[str, Any]()
        if self.response is not None:  # a classifier's probabilities, as the scorer's response method gives them
            take = {"predict": "labels", "function": sklearn_take(self.__name__)}.get(self.response, "positive")
            p, kw = sklearn_input(self.__name__, y_pred, take, self.kwargs, self.classes)
        try:
            return self.score_func(y_true, p, **{**self.kwargs, **kw})
        except ValueError as e:
            if not self.fix:
                raise
            raise ParameterError(f"metric {self.__name__!r} cannot score these values ({e}); {self.fix}") from e

    def __repr__(self) -> str:
        kw = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        if self.scorer:
            return f"{self.__name__}(response={self.response!r}{kw})"
        return f"{self.__name__}({kw.removeprefix(', ')})" if kw else self.__name__


def with_classes(metric: Metric, classes: Any) -> Metric:
    """``metric`` scoring a classifier of class labels ``classes`` (its ``classes_``): a scikit-learn scorer or a
    function of ``sklearn.metrics`` with keyword arguments naming classes by label (``make_scorer(fbeta_score,
    beta=2, pos_label="malignant")``, ``functools.partial(f1_score, pos_label="malignant")``, ``labels=[...]``) reads
    them as scikit-learn does, as labels, given to the function as the positions of those classes, which pipekit's
    targets are. A label that is none of ``classes`` is refused here, naming it and the classes. Any other metric is
    returned as it is (pipekit's own metrics take positions: ``F1Score(pos_label=1)``).

    >>> from sklearn.metrics import f1_score
    >>> m = with_classes(get_metric(functools.partial(f1_score, pos_label="no"), "classification"),
    ...                  np.array(["no", "yes"]))
    >>> m.score(np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]))
    0.6666666666666666
    """
    if not (isinstance(metric, FuncMetric) and metric.y_first):
        return metric
    fn = metric.fn
    if isinstance(fn, _ScoreFunction) and fn.response is not None:
        bound = _ScoreFunction(fn.score_func, fn.response, fn.kwargs, fn.fix, fn.scorer, classes)
    elif isinstance(fn, functools.partial) and not fn.args and \
            str(getattr(fn.func, "__module__", "")).startswith("sklearn.metrics"):
        bound = _ScoreFunction(fn.func, "function", dict(fn.keywords), classes=classes)
    else:
        return metric
    if not any(k in bound.kwargs for k in CLASS_ARGS):
        return metric
    class_positions(bound.__name__, bound.kwargs, classes)  # a label that is no class is refused now, not per score
    out = FuncMetric(bound, greater_is_better=metric.greater_is_better, y_first=True)
    out._direction_from_name, out._guess_unsaid = metric._direction_from_name, metric._guess_unsaid
    return out


def is_scorer(m: Any) -> bool:
    """Whether ``m`` is a scikit-learn scorer (``make_scorer(...)``, ``get_scorer(...)``): one exists only once
    scikit-learn has made it, so scikit-learn is never imported to tell."""
    base = getattr(sys.modules.get("sklearn.metrics._scorer"), "_BaseScorer", None)
    return isinstance(base, type) and isinstance(m, base)


def _scorer_metric(scorer: Any, task: str | None = None) -> FuncMetric:
    """The metric of a scikit-learn scorer: a :class:`FuncMetric` of its score function (named after it, so a report
    reads ``roc_auc_score``) with its keyword arguments, better larger where its sign is positive
    (``greater_is_better``: its value is reported as the function gives it, a loss positive) and given what its
    response method asks of the model (see :class:`_ScoreFunction`). A scorer whose attributes are not those of
    scikit-learn's ``_Scorer`` is refused, naming what to pass instead."""
    fn, sign = getattr(scorer, "_score_func", None), getattr(scorer, "_sign", None)
    kwargs, response = getattr(scorer, "_kwargs", None), getattr(scorer, "_response_method", None)
    methods = (response,) if isinstance(response, str) else response
    if not (callable(fn) and sign in (1, -1) and isinstance(kwargs, dict) and isinstance(methods, tuple) and methods
            and all(r in _RESPONSES for r in methods)) or hasattr(scorer, "_thresholds"):
        import sklearn

        name = getattr(fn, "__name__", None)
        use = (f"the function itself (metric={name}) or its name (metric={name.removesuffix('_score')!r})"
               if isinstance(name, str) else "the score function itself (metric=roc_auc_score) or its name "
               "(metric='roc_auc')")
        of = f" of {name}" if isinstance(name, str) else ""  # its repr may need the very attributes it lacks
        raise ParameterError(f"metric is a scikit-learn {type(scorer).__name__}{of} that pipekit cannot read "
                             f"(scikit-learn {sklearn.__version__}): pass {use}")
    take = None if task == "regression" else "predict" if methods == ("predict",) else "proba"
    return FuncMetric(_ScoreFunction(fn, take, kwargs, scorer=True), greater_is_better=sign > 0, y_first=True)


def _sklearn_error(metric: str, task: str) -> Metric:
    """The metric of a scikit-learn error known by name (``_SKLEARN_ERRORS``): its function, better smaller."""
    if task != "regression":
        raise ParameterError(f"metric={metric!r} is a regression metric but the task is {task!r}")
    import sklearn.metrics

    name = _SKLEARN_ERRORS[metric]
    fn = _ScoreFunction(getattr(sklearn.metrics, name), fix=_SKLEARN_ERROR_FIX.get(name, ""))
    return FuncMetric(fn, greater_is_better=False, y_first=True)


def _metrics_by_name() -> dict[str, type[Metric]]:
    """Every registered metric class a backend's task can use, by its name and its aliases (fastai's names and
    pipekit's former ones)."""
    by_name: dict[str, type[Metric]] = {}
    for cls in registered("metric").values():
        if isinstance(cls, type) and issubclass(cls, Metric) and cls.task is not None:
            try:
                for alias in (cls().name, *cls.own_aliases()):
                    by_name.setdefault(alias, cls)
            except TypeError:  # a metric that needs parameters has no bare name
                continue
    return by_name


def metric_name(name: str) -> str | None:
    """The name of the pipekit metric class known by ``name`` (its own or one of its aliases), None for any other.

    >>> metric_name("mean_absolute_error"), metric_name("rmse"), metric_name("mape")
    ('mae', 'rmse', None)
    """
    cls = _metrics_by_name().get(name)
    return None if cls is None else cls().name


def get_metric(metric: Any, task: str, classes: Any = None) -> Metric:
    """A metric for a backend's ``task``: a name (``"accuracy"``, ``"rmse"``, ``"roc_auc"``, ...), a Metric,
    a function ``fn(y_true, y_pred)`` (see :class:`FuncMetric`: its direction is read from its name), a scikit-learn
    scorer, or None for the task's default. A scorer (``make_scorer(roc_auc_score, response_method="predict_proba")``,
    ``get_scorer("roc_auc")``) is the metric of its score function, named after it, with its keyword arguments,
    given a classifier's predicted classes where its response method is ``predict`` and its probabilities (the
    positive class's column for two classes) otherwise, as scikit-learn's searches score. The classes it is given,
    true and predicted, are the positions in the classifier's ``classes_`` (0 to n_classes - 1): with ``classes``
    (the classifier's class labels) the keyword arguments of a scorer or of a function of ``sklearn.metrics`` that
    name classes (``pos_label="malignant"``, ``labels=[...]``) are read as labels, as scikit-learn reads them, and
    given as those positions (see :func:`with_classes`); without, they must be the positions. Its sign is the direction
    (``greater_is_better=False``: better smaller), and the value is the function's, a loss positive. Regression
    also takes scikit-learn's function names ``"mean_absolute_error"`` (mae), ``"mean_squared_error"`` (mse) and
    ``"root_mean_squared_error"`` (rmse), the aliases of those metrics (classification: ``"log_loss"``), and
    ``"rmsle"`` (its ``root_mean_squared_log_error``) and ``"mape"`` (``mean_absolute_percentage_error``), better
    smaller. The label scores also take scikit-learn's scoring names with their average
    (``"f1_macro"``, ``"precision_weighted"``, ``"recall_micro"``), and the ROC-AUC scikit-learn's ``"roc_auc_ovr"``,
    ``"roc_auc_ovo"`` and their ``_weighted`` forms. scikit-learn's ``neg_*`` scorer names are refused, naming the
    metric to use: a pipekit metric scores the loss itself, not minus it (``"mae"`` for
    ``"neg_mean_absolute_error"``).

    >>> get_metric("f1_macro", "classification"), get_metric("roc_auc_ovr_weighted", "classification")
    (F1Score(average='macro'), RocAuc(average='weighted'))
    >>> from sklearn.metrics import get_scorer
    >>> m = get_metric(get_scorer("roc_auc"), "classification")
    >>> m.name, m.greater_is_better, m.score(np.array([0, 1, 1]), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    ('roc_auc_score', True, 1.0)
    >>> get_metric("mape", "regression").greater_is_better
    False
    """
    check("get_metric", task=(task, Options(*TASKS)))
    if classes is not None and task == "classification" and not isinstance(metric, str):
        return with_classes(get_metric(metric, task), classes)
    if metric is None:
        metric = DEFAULT_METRIC[task]
    if isinstance(metric, str):
        by_name = _metrics_by_name()
        if metric in _SKLEARN_ERRORS:  # scikit-learn's errors pipekit has no metric class of
            return _sklearn_error(metric, task)
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
            known = sorted({*by_name, *_SKLEARN_ERRORS})
            raise ParameterError(f"metric={metric!r} is not known; use one of {known} (the label scores with an "
                                 "average too: 'f1_macro', 'precision_weighted', ...) or pass a Metric")
        if by_name[metric].task != task:
            raise ParameterError(f"metric={metric!r} is a {by_name[metric].task} metric but the task is {task!r}")
        return by_name[metric]()
    if is_scorer(metric):
        return _scorer_metric(metric, task)
    return as_metric(metric, y_first=True)
