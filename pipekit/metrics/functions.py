"""A user's function as a metric: :class:`FuncMetric` (a batch mean in a Learner, fastai's convention, or
scikit-learn's ``fn(y_true, y_pred)`` on whole arrays) and fastai's :class:`AccumMetric` / :func:`skm_to_fastai` (a
function of every prediction and target of the set, computed once at the end of the pass)."""
from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from typing import Any

import numpy as np

from pipekit.core.errors import FieldError, ParameterError, warn
from pipekit.core.validate import BOOL, Interval, Is, Options
from pipekit.metrics.base import (ArrayMetric, MeanMetric, Metric, _as_tensor, _check_not_empty, _torch,
                                  apply_activation)


def _takes_two(fn: Any) -> bool:
    """Whether ``fn`` takes the predictions and the targets: ``fn(pred, targ)``, or ``fn(pred, *targs)`` for data of
    several targets (the course's ``disease_err(inp, disease, variety)``)."""
    return callable(fn) and _positional_count(fn, 2) is not None


def _positional_count(fn: Any, n: int) -> int | None:
    """``n`` when ``fn`` can be called with ``n`` positional arguments, else the number of positional arguments it
    needs when that is more than 2 (and nothing else is required), else None. A builtin without a signature: ``n``."""
    try:
        sig = inspect.signature(fn)
    except ValueError:  # a builtin without a signature: nothing to check
        return n
    try:
        sig.bind(*[None] * n)
        return n
    except TypeError:
        pass
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_kw = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    need = sum(p.default is p.empty for p in positional)
    return need if need > 2 and not required_kw else None


#: a function named like a loss or an error is better smaller (scikit-learn's ``log_loss``, ``mean_squared_error``,
#: ``max_error``, ``mean_tweedie_deviance``; a user's ``my_rmse``, ``cross_entropy``, Kaggle's ``rmspe``, ``smape``,
#: ``wmape``, a median absolute error ``medae``, a negative log-likelihood ``nll``, a ``pinball`` or ``huber`` loss, a
#: ``brier`` score); any other name is better larger
_LOWER_IS_BETTER = re.compile(r"loss|error|deviance|entropy|perplexity|(^|_)(mse|rmse|mae|mape|msle|rmsle|rmspe|mspe|"
                              r"smape|wmape|mdape|medae|mdae|mase|rmsse|mad|nll|pinball|huber|brier|regret)($|_)",
                              re.IGNORECASE)
#: the one score that is better smaller: the Brier score (``brier_score``) is a squared error (its skill score,
#: scikit-learn's ``d2_brier_score``, is better larger)
_LOWER_SCORE = re.compile(r"^(?!d2_)(.*_)?brier($|_)", re.IGNORECASE)
#: scikit-learn metrics that score class probabilities (the others of ``sklearn.metrics`` take labels), and those
#: of them that take the positive class's column for two classes
_SKLEARN_SCORES = {"roc_auc_score", "average_precision_score", "log_loss", "brier_score_loss", "top_k_accuracy_score",
                   "d2_log_loss_score"}
_SKLEARN_POSITIVE = {"roc_auc_score", "average_precision_score", "brier_score_loss"}


def better_larger(name: str) -> bool:
    """Whether a metric of function ``name`` is better larger, by its name: the one rule of every metric given as a
    function (a Learner's, its trackers', an ensemble's). A score is better larger, whatever it scores
    (scikit-learn's ``d2_absolute_error_score``, ``r2_score``), but for the Brier score; an error, a loss or a
    distance is not (``rmspe``, ``smape``, ``nll``); anything else is. A direction read so is set by the function's
    scores instead where they tell it (:func:`scored_direction`), when the metric is checked
    (:func:`~pipekit.metrics.lookup.check_metric`).

    >>> better_larger("rmspe"), better_larger("r2_score"), better_larger("cost")
    (False, True, True)
    """
    return not _LOWER_IS_BETTER.search(name) or (name.lower().endswith("score") and not _LOWER_SCORE.search(name))


def scored_direction(perfect: float | None, worse: Sequence[float]) -> bool | None:
    """What a metric's scores tell of its direction: True (better larger) when ``perfect``, its score of a
    (near-)perfect prediction, is above each of ``worse`` (its scores of clearly worse ones) that is a number, False
    when below each; None when they tie or fall on both sides of it, or when ``perfect`` or every one of ``worse`` is
    missing, NaN or infinite."""
    if perfect is None or not np.isfinite(perfect):
        return None
    finite = [w for w in worse if w is not None and np.isfinite(w)]
    apart = [w for w in finite if abs(perfect - w) > 1e-12 * max(1.0, abs(perfect), abs(w))]
    if not finite or len(apart) < len(finite):  # a worse prediction scored as the perfect one: nothing told
        return None
    if all(perfect > w for w in finite):
        return True
    if all(perfect < w for w in finite):
        return False
    return None


#: scikit-learn's keyword arguments that name classes by their labels
CLASS_ARGS = ("pos_label", "labels")


def sklearn_take(name: str) -> str:
    """What scikit-learn's function ``name`` takes of a classifier's probabilities (see :func:`sklearn_input`): the
    probabilities for a score of them (``roc_auc_score``, ``log_loss``, ...), else the labels."""
    return "proba" if name in _SKLEARN_SCORES else "labels"


def class_positions(name: str, bound: dict[str, Any], classes: Any) -> dict[str, Any]:
    """The keyword arguments of ``bound`` that name classes by label (``pos_label``, ``labels``; see
    :data:`CLASS_ARGS`) as the positions in ``classes`` that pipekit scores: a classifier's targets are class
    indices into its ``classes_``. A label that is none of ``classes`` is refused, naming it, the metric and the
    classes.

    >>> class_positions("f1_score", {"pos_label": "malignant", "beta": 2}, np.array(["benign", "malignant"]))
    {'pos_label': 1}
    """
    known = np.asarray(classes).tolist()

    def position(arg: str, label: Any) -> int:
        value = label.item() if isinstance(label, np.generic) else label
        if value in known:
            return known.index(value)
        raise ParameterError(f"metric {name!r}: {arg}={value!r} is not one of the classes {known}: pass one of "
                             "them (a class label, as scikit-learn takes it)")

    out: dict[str, Any] = {}
    if bound.get("pos_label") is not None:
        out["pos_label"] = position("pos_label", bound["pos_label"])
    if bound.get("labels") is not None:
        out["labels"] = np.array([position("labels", v) for v in list(bound["labels"])], dtype=np.int64)
    return out


def sklearn_input(name: str, p: Any, take: str, bound: dict[str, Any],
                  classes: Any = None) -> tuple[Any, dict[str, Any]]:
    """What scikit-learn's function ``name`` gets from a classifier's probabilities ``p`` (n, n_classes), and the
    keyword arguments to add: with ``take`` 'labels' the classes (the arg-max), with 'proba' the probabilities, the
    positive class's column for two classes where the function scores that column (``roc_auc_score``,
    ``average_precision_score``, ``brier_score_loss``, or ``take`` 'positive', as a scorer asks): ``pos_label``'s
    column where one is bound, else the second. ``log_loss`` gets rows renormalised (an ensemble's mix sums to 1 up
    to rounding, which it warns of); it and ``top_k_accuracy_score`` get ``labels`` of every class (even one the
    scored rows lack) unless ``bound`` has them. ``classes``: the classifier's class labels, where known; the
    arguments of ``bound`` naming classes by label (``pos_label``, ``labels``) are then given as their positions,
    as the targets are (see :func:`class_positions`). Anything else (a regression's values, one column) is returned
    as it is."""
    kw = {} if classes is None else class_positions(name, bound, classes)
    if getattr(p, "ndim", 0) != 2 or p.shape[1] < 2:
        return p, kw
    p = np.asarray(p)
    if take == "labels":
        return p.argmax(1), kw
    if name in ("log_loss", "top_k_accuracy_score"):
        if name == "log_loss":
            p = np.asarray(p, dtype=np.float64)
            p = p / p.sum(1, keepdims=True)
        if "labels" not in bound:
            kw["labels"] = np.arange(p.shape[1])
    if p.shape[1] == 2 and (take == "positive" or name in _SKLEARN_POSITIVE):
        pos = kw.get("pos_label", bound.get("pos_label"))
        # the positive class's column, as scikit-learn's scorers take it (a label not a position is left to the
        # function to refuse)
        p = p[:, pos if isinstance(pos, (int, np.integer)) and not isinstance(pos, bool) and 0 <= pos < 2 else 1]
    return p, kw


#: what a lambda chosen on (``y_first``) with no direction given is taken as, said where its scores cannot tell
LAMBDA_GUESS = ("a lambda metric has no name to read its direction from; it is taken as better larger. For a loss "
                "or an error pass FuncMetric(fn, greater_is_better=False, y_first=True), or name the function")
#: set while a metric is built whose scores will decide its direction next (see scores_decide)
_SCORES_DECIDE: ContextVar[bool] = ContextVar("pipekit_scores_decide", default=False)


@contextmanager
def scores_decide() -> Iterator[None]:
    """Build metrics whose direction their scores decide next
    (:func:`~pipekit.metrics.lookup.check_metric`, as :func:`~pipekit.metrics.lookup.checked_metric` does): a
    :class:`FuncMetric` of a lambda built inside does not warn that it is taken as better larger, since its scores
    set the direction, and one warning then says the direction taken (or this guess, where the scores do not
    tell)."""
    token = _SCORES_DECIDE.set(True)
    try:
        yield
    finally:
        _SCORES_DECIDE.reset(token)


class FuncMetric(MeanMetric):
    """A plain function as a metric. In a Learner ``fn(pred, targ)`` returns a batch mean (fastai's
    convention); with ``y_first`` it is ``fn(y_true, y_pred)`` on whole arrays (scikit-learn's).

    ``greater_is_better``: None (the default) reads it from the function's name: a loss or an error
    (``log_loss``, ``mean_squared_error``, ``my_rmse``) is better smaller, anything else larger, and a name
    ending in ``score`` (``d2_absolute_error_score``) always larger. A lambda has no name to read: where it
    chooses between models (``y_first``) a warning says it is taken as better larger. A function of
    ``sklearn.metrics`` gets what it takes from a classifier's probabilities: the labels (``accuracy_score``,
    ``f1_score``, ...), the positive class's column for two classes (``roc_auc_score``,
    ``average_precision_score``, ``brier_score_loss``) or the probabilities (``log_loss``); any other function
    gets the probabilities, ``(n, n_classes)``. Where its scores decide the direction next (``fit_ensemble``, see
    :func:`scores_decide`) the lambda's guess is not warned of: the one warning says the direction its scores set.

    >>> from sklearn.metrics import accuracy_score, mean_squared_error
    >>> FuncMetric(mean_squared_error, y_first=True).greater_is_better
    False
    >>> FuncMetric(accuracy_score, y_first=True).score(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    1.0
    """

    param_constraints = {"fn": Is(_takes_two, "a function of the predictions and the targets, fn(pred, targ) (or "
                                              "fn(pred, *targs) for data of several targets)"),
                         "greater_is_better": Is(lambda v: v is None or BOOL.accepts(v), "True, False or None"),
                         "y_first": BOOL}
    #: a file's function is called on every batch: a registered function (or metric), never a getter such as the
    #: item finder get_files, a module, a callback...
    ref_kinds = {"params.fn": ("function", "metric")}

    def __init__(self, fn: Callable[..., Any], greater_is_better: bool | None = None, y_first: bool = False):
        self.fn, self.greater_is_better, self.y_first = fn, greater_is_better, y_first  # type: ignore[misc,assignment]
        self.check_params()
        #: whether the direction was read from the function's name (not given): its scores may then set it, see
        #: check_metric. Not a parameter (greater_is_better holds the direction read) and not learned state, so a
        #: copy or a file, whose greater_is_better is given, has it False
        self._direction_from_name = greater_is_better is None
        #: a lambda's guess (better larger) not yet said, as its scores decide next (see scores_decide): check_metric
        #: says the direction it takes, once
        self._guess_unsaid = False
        if greater_is_better is None:
            name = self.name
            self.greater_is_better = better_larger(name)  # type: ignore[misc]
            if y_first and name == "<lambda>":  # chosen on: a loss maximised would pick the worst model
                if _SCORES_DECIDE.get():
                    self._guess_unsaid = True
                else:
                    warn(LAMBDA_GUESS)

    @property
    def name(self) -> str:
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        return getattr(fn, "__name__", type(fn).__name__)

    def set_params(self, **params: Any) -> FuncMetric:
        """As :meth:`~pipekit.core.component.Component.set_params`; a ``greater_is_better`` given is the direction
        from then on (None: read from the function's name again)."""
        super().set_params(**params)
        if "greater_is_better" in params:
            self._direction_from_name = params["greater_is_better"] is None
            self._guess_unsaid = False
        return self

    @property
    def target_kinds(self) -> tuple[str, ...] | None:  # type: ignore[override]
        """The targets a pipekit metric given as the function scores (``FuncMetric(rmse)`` scores numbers, as rmse
        does, and a Learner of classes refuses it as it refuses rmse; a file's is left out at load); None for a
        function of the user's, which is never refused."""
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        return fn.target_kinds if isinstance(fn, Metric) else None

    @property
    def multi_label_instead(self) -> str:  # type: ignore[override]
        """What a pipekit metric given as the function names to use instead on multi-label targets."""
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        return fn.multi_label_instead if isinstance(fn, Metric) else ""

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A file's metric function (of a registered kind, checked as it was read) is a function or a metric, not a
        class: calling a class builds an object of it on every batch."""
        super().state_from_data(state)
        if isinstance(self.fn, type):
            raise FieldError("params.fn", f"is the class {self.fn.__qualname__!s:.60}, which builds an object when "
                                          "called; a metric's function is fn(pred, targ), a registered function; the "
                                          "file is damaged or was not written by pipekit")

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        n = len(pred)
        # the targets of data with several (a tuple) each as an argument, as fastai calls fn(pred, *yb), when the
        # function takes that many; a function of two gets them as one tuple
        several = isinstance(targ, tuple) and _positional_count(self.fn, 1 + len(targ)) == 1 + len(targ)
        value = _torch().as_tensor(self.fn(pred, *targ) if several else self.fn(pred, targ))  # a number: a batch mean
        if value.numel() != 1:
            raise ParameterError(f"metric {self.name!r} returned {tuple(value.shape)} values for a batch of {n}: a "
                                 "metric function fn(pred, targ) returns the batch's mean (e.g. end with .mean())")
        return value.detach().float().reshape(()) * n, n

    def score(self, y_true: Any, y_pred: Any) -> float:
        if not self.y_first:
            return super().score(y_true, y_pred)
        fn = self.fn
        base = fn.func if isinstance(fn, functools.partial) else fn
        p = np.asarray(y_pred) if not hasattr(y_pred, "detach") else y_pred
        kw: dict[str, Any] = {}
        if str(getattr(base, "__module__", "")).startswith("sklearn.metrics"):
            name = getattr(base, "__name__", "")
            bound = fn.keywords if isinstance(fn, functools.partial) else {}
            p, kw = sklearn_input(name, p, sklearn_take(name), bound)
        return float(fn(y_true, p, **kw))


class ActivationType(str, Enum):
    """What :class:`AccumMetric` (and :func:`skm_to_fastai`) apply to a model's outputs before the function sees
    them, fastai's ``ActivationType``: each member is its string ('no', 'sigmoid', 'softmax', 'binarysoftmax'), and
    either may be passed.

    >>> ActivationType.BinarySoftmax == "binarysoftmax"
    True
    >>> AccumMetric(lambda p, t: 0.0, activation=ActivationType.Sigmoid).activation
    'sigmoid'
    """

    No = "no"
    Sigmoid = "sigmoid"
    Softmax = "softmax"
    BinarySoftmax = "binarysoftmax"


#: what ``AccumMetric`` applies to a model's outputs before its function sees them (the values of ActivationType)
_ACCUM_ACTIVATIONS = tuple(a.value for a in ActivationType)


def _one_number(metric: Metric, v: Any) -> float:
    """A metric function's answer as a float: a number, a 0-d (or one-value) tensor or array."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.dtype == object or a.size != 1:
        raise ParameterError(f"metric {metric.name!r} returned {v!r:.60} ({type(v).__name__}, not one number): a metric "
                             "function returns one number for the whole set (e.g. scipy's pearsonr(...)[0])")
    return float(a.reshape(()))


class AccumMetric(ArrayMetric):
    """A function of every prediction and target of the set, computed once at the end of the pass (fastai's
    ``AccumMetric``): what a Learner's metric is when its value is no mean of per-item values (a correlation, a
    kappa, an AUC).

    Each batch's outputs go through ``activation`` ('no', 'sigmoid', 'softmax' over ``dim_argmax``, or
    'binarysoftmax': the softmax's last column, the positive class of two; or the :class:`ActivationType` member of
    that name), else an arg-max over ``dim_argmax``
    when it is given; then, with ``thresh``, ``pred >= thresh``. With ``flatten`` predictions and targets are
    flattened (and must then be as many). ``to_np`` hands the function NumPy arrays (else tensors),
    ``invert_arg`` calls it as ``func(targs, preds)`` (scikit-learn's order) instead of ``func(preds, targs)``,
    and the other keyword arguments go to the function on every call. ``name`` is the recorder's column (default:
    the function's name); a name of a loss or an error (``hamming_loss``, ``my_mse``) is better smaller, as for
    :class:`FuncMetric`. ``metric(preds, targs)`` and ``score(y_true, y_pred)`` take outputs as a model gives them.

    A file keeps it only when its function is registered (``pipekit.register(fn, kind="function")``) and no keyword
    arguments are bound to it; otherwise an export leaves it out, as it leaves out a metric of a plain function.

    >>> import torch
    >>> from sklearn.metrics import cohen_kappa_score
    >>> kappa = AccumMetric(cohen_kappa_score, dim_argmax=-1, to_np=True, invert_arg=True, weights="quadratic")
    >>> kappa.name, float(kappa(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]),
    ...                         torch.tensor([0, 1, 2])))
    ('cohen_kappa_score', 1.0)
    """

    param_constraints = {
        "func": Is(lambda f: callable(f) and not isinstance(f, type) and _positional_count(f, 2) == 2,
                   "a function of the predictions and the targets of the whole set, func(preds, targs)"),
        "dim_argmax": Interval(None, None, integer=True, none_ok=True),
        "activation": Options(*_ACCUM_ACTIVATIONS, None),
        "thresh": Interval(None, None, none_ok=True),
        "to_np": BOOL, "invert_arg": BOOL, "flatten": BOOL,
        "name": Is(lambda v: v is None or (isinstance(v, str) and v != ""), "None or a non-empty name"),
    }
    param_attrs = {"name": "_name"}  # ``name`` is the metric's property
    #: a file's function is called on every pass: a registered function, never a class, getter or callback
    ref_kinds = {"params.func": ("function",)}

    def __init__(self, func: Callable[..., Any], dim_argmax: int | None = None,
                 activation: str | ActivationType | None = "no",
                 thresh: float | None = None, to_np: bool = False, invert_arg: bool = False, flatten: bool = True,
                 name: str | None = None, **kwargs: Any):
        # the function's keyword arguments are bound to it, so copies and reprs carry them
        self.func = functools.partial(func, **kwargs) if kwargs else func
        # an ActivationType member is kept as its string, the one form the activation is applied, shown and saved in
        activation = activation.value if isinstance(activation, ActivationType) else activation
        self.dim_argmax, self.activation, self.thresh = dim_argmax, activation, thresh  # type: ignore[misc]
        self.to_np, self.invert_arg, self.flatten, self._name = to_np, invert_arg, flatten, name
        self.check_params()
        self.greater_is_better = better_larger(self.name)  # type: ignore[misc]

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        fn = self.func.func if isinstance(self.func, functools.partial) else self.func
        return str(getattr(fn, "__name__", type(fn).__name__))

    def _activate(self, pred: Any) -> Any:
        # without an activation, dim_argmax asks for the arg-max over that axis (fastai's AccumMetric)
        act = "argmax" if self.activation in (None, "no") and self.dim_argmax is not None else self.activation
        pred = apply_activation(pred, act, -1 if self.dim_argmax is None else self.dim_argmax)
        return pred if self.thresh is None else pred >= self.thresh

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if not hasattr(self, "_preds"):
            self.reset()
        if isinstance(targ, (tuple, list)):
            raise ParameterError(f"{self.name} scores one target and these data have {len(targ)}; score each with a "
                                 "metric function fn(pred, *targs)")
        p, t = self._activate(pred.detach()), targ.detach()
        if self.flatten:
            p, t = p.reshape(-1), t.reshape(-1)
            if len(p) != len(t):
                raise ParameterError(
                    f"{self.name}: {len(p)} predictions for {len(t)} targets once flattened (outputs "
                    f"{tuple(pred.shape)}, targets {tuple(targ.shape)}): for class scores take the arg-max "
                    "(dim_argmax=-1, or skm_to_fastai's is_class=True) or the positive class "
                    "(activation='binarysoftmax'); for several values per item pass flatten=False")
        self._preds.append(p.cpu())
        self._targs.append(t.cpu())

    @property
    def value(self) -> float | None:
        if not getattr(self, "_preds", None):
            return None
        torch = _torch()
        p, t = torch.cat(self._preds), torch.cat(self._targs)
        if self.to_np:
            p, t = p.numpy(), t.numpy()
        return _one_number(self, self.func(t, p) if self.invert_arg else self.func(p, t))

    def score(self, y_true: Any, y_pred: Any) -> float:
        _check_not_empty(self, y_true, y_pred)
        self.reset()
        self.accumulate(*(_as_tensor(v, array_like=True) for v in (y_pred, y_true)))
        v = self.value
        return float("nan") if v is None else v


def skm_to_fastai(func: Callable[..., Any], is_class: bool = True, thresh: float | None = None, axis: int = -1,
                  activation: str | ActivationType | None = None, **kwargs: Any) -> AccumMetric:
    """A scikit-learn metric ``func(y_true, y_pred, **kwargs)`` as a Learner's metric (fastai's ``skm_to_fastai``):
    an :class:`AccumMetric` given NumPy arrays in scikit-learn's order. ``is_class``: the outputs are class scores,
    arg-maxed over ``axis`` (with ``thresh``: a sigmoid, then ``>= thresh``, for several labels per item);
    ``activation`` overrides that choice ('no', 'sigmoid', 'softmax', 'binarysoftmax', or their
    :class:`ActivationType` members). Other keyword arguments
    (``flatten=False``, ``name=``, or the function's own, such as ``average='macro'``) go to AccumMetric.

    >>> import torch
    >>> from sklearn.metrics import cohen_kappa_score, r2_score
    >>> preds, targs = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 0, 0])
    >>> round(float(skm_to_fastai(cohen_kappa_score)(preds, targs)), 4)
    0.5
    >>> skm_to_fastai(r2_score, is_class=False).name
    'r2_score'
    """
    dim_argmax = axis if is_class and thresh is None else None
    if activation is None:
        activation = "sigmoid" if is_class and thresh is not None else "no"
    return AccumMetric(func, dim_argmax=dim_argmax, activation=activation, thresh=thresh, to_np=True,
                       invert_arg=True, **kwargs)
