"""Fitting a pipekit backend or ensemble on one processed table, as a scikit-learn ``fit`` needs it: from
scratch, on every row, seeded, never touching the model the user passed.

- a backend (``GBM``, ``RandomForest``, ``TorchTabular``, ``SklearnModel``) is cloned and fitted;
- ``StackingEnsemble`` fits its own k-fold members and meta-model;
- ``MeanEnsemble`` fits a clone of every member and averages them (with its fixed weights);
- ``WeightedEnsemble`` selects its weights on 5-fold out-of-fold predictions of its members, which are
  then fitted on every row (the selection never sees a prediction of a row a member trained on).

Given no ``procs``, an estimator processes its table with :func:`default_procs` of its backend: trees (GBM, the
forests, XGBoost, CatBoost, a scikit-learn tree model) read the numbers as they are, a net or a linear model reads
them normalised.

Example:
    >>> from pipekit.backends import GBM
    >>> default_backend("gbm", "classification")
    GBM(task='classification', n_estimators=100)
    >>> [p.__name__ for p in default_procs(GBM("classification"))]
    ['Categorify', 'FillMissing']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipekit.backends import GBM, RandomForest
from pipekit.backends.base import Backend, Model
from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.core.component import Component, param_names
from pipekit.core.errors import DataError, ParameterError
from pipekit.ensemble import BaggedModel, MeanEnsemble, TorchTabular, WeightedEnsemble
from pipekit.ensemble.bagged import RareClassError, TimeColumnError, rare_class_error, time_col_error
from pipekit.ensemble.base import align_classes, no_sample_weight
from pipekit.tabular.procs import DEFAULT_PROCS, Normalize

#: the backends named by a string
BACKENDS = ("gbm", "rf", "net")
#: folds of the out-of-fold predictions a WeightedEnsemble selects its weights on
SELECTION_FOLDS = 5


def default_backend(name: str, task: str) -> Model:
    """The backend a name stands for, with pipekit's defaults, which are not all those of the libraries behind it:
    ``"gbm"`` is ``GBM(task, n_estimators=100)``, LightGBM's 100 rounds at GBM's learning rate 0.05, half
    LightGBM's 0.1 (``GBM(task, n_estimators=100, learning_rate=0.1)`` trains as ``LGBMClassifier()`` does on the
    same rows where no number is missing, behind an estimator given no ``procs``: a tree's default procs leave the
    numbers as read);
    ``"rf"`` is ``RandomForest(task)``, the book's forest (half the columns tried at each split, at least 5 rows
    in a leaf); ``"net"`` is ``TorchTabular(task)``."""
    makers = {"gbm": lambda: GBM(task, n_estimators=100), "rf": lambda: RandomForest(task),
              "net": lambda: TorchTabular(task)}
    if name not in makers:
        raise ParameterError(f"backend={name!r} is not known; use one of {list(BACKENDS)} or a pipekit model")
    return makers[name]()


def default_procs(model: Any) -> tuple[Any, ...]:
    """The procs an estimator runs when given none: ``Categorify, FillMissing`` for a model that learns only trees
    (see :func:`learns_trees`), which splits on the values as they are (and LightGBM bins them as read: normalised
    values would train another model than ``LGBMClassifier()`` on the same rows), as the book fits its forests;
    ``Categorify, FillMissing, Normalize`` for any other (a net, a linear model, an ensemble holding one)."""
    if learns_trees(model):
        return tuple(p for p in DEFAULT_PROCS if p is not Normalize)
    return DEFAULT_PROCS


def learns_trees(model: Any) -> bool:
    """Whether ``model`` reads its inputs only through decision trees: its ``learns_trees`` (a GBM, XGBoost or
    CatBoost booster, a ``RandomForest`` or ``ExtraTrees``, a ``SklearnModel`` around a scikit-learn tree or tree
    ensemble (or a LightGBM, XGBoost tree or CatBoost estimator), a ``BaggedModel`` of one, or an ensemble whose every
    member does; a ``StackingEnsemble`` with ``passthrough`` also needs a meta-model that does). False for anything
    that is no pipekit model.

    >>> from pipekit.backends import XGBoost
    >>> learns_trees(XGBoost("regression")), learns_trees(XGBoost("regression", params={"booster": "gblinear"}))
    (True, False)
    """
    return isinstance(model, Model) and model.learns_trees


def seed_all(model: Any, seed: int) -> None:
    """Set the ``seed`` of ``model`` and of every model inside it (an unfitted clone): each member of an ensemble,
    the model a ``BaggedModel`` bags (its fold models then take ``seed + fold``), a ``StackingEnsemble``'s
    meta-model.

    >>> bag = BaggedModel(GBM("classification", n_jobs=1), n_folds=3)
    >>> seed_all(bag, 7)
    >>> bag.seed, bag.model.seed, [bag.fold_model(f).seed for f in range(3)]
    (7, 7, [7, 8, 9])
    """
    if isinstance(model, Component) and "seed" in param_names(type(model)):
        model.set_params(seed=seed)
    if not isinstance(model, Component):
        return
    for m in [*(getattr(model, "members", None) or []), getattr(model, "model", None), getattr(model, "meta", None)]:
        if isinstance(m, Component):
            seed_all(m, seed)


def model_task(model: Any) -> str:
    task = getattr(model, "task", None)
    if task is None:
        raise ParameterError(f"{type(model).__name__} has no task; pass a pipekit backend or ensemble")
    return task


def fit_model(model: Model, train: Any, seed: int | None = None, sample_weight: Any = None,
              classes: Any = None) -> Model:
    """A fitted copy of ``model`` (a backend or an ensemble) trained on ``train`` (a processed split), each row
    weighed by ``sample_weight`` when given (a backend that weighs rows). ``classes``: the labels as ``y`` gave
    them (the estimator's ``classes_``; the backends see them as text), for an error to name a class as ``y``
    holds it."""
    m = model.clone()
    if seed is not None:
        seed_all(m, seed)
    if sample_weight is not None:
        if not isinstance(m, Backend) or isinstance(m, BaggedModel):  # a Backend's fit says which weigh rows
            raise ParameterError(no_sample_weight(m))
        return m.fit(train, sample_weight=sample_weight)  # type: ignore[attr-defined]
    if isinstance(m, MeanEnsemble):
        members = [fit_model(x, train, classes=classes) for x in m.members]
        return type(m)(**{**m.get_params(deep=False), "members": members})
    if isinstance(m, WeightedEnsemble):
        return _fit_weighted(m, as_data(train), seed, classes)
    try:
        return m.fit(train)  # type: ignore[attr-defined]
    except RareClassError as e:  # said on X and y, the class as y holds it: not on a Tabular the user never built
        raise DataError(rare_class_error(_as_given(e.label, classes), e.rows, e.n_folds, xy=True)) from None
    except TimeColumnError as e:  # said on X: fit takes no order=, and no Tabular records the times
        raise DataError(time_col_error(e.col, e.have, xy=True)) from None


def _as_given(label: Any, classes: Any) -> Any:
    """``label`` (a class as the backends see it, text) as ``classes`` (the labels ``y`` gave) holds it."""
    given = {str(c): c for c in (classes if classes is not None else ())}.get(str(label), label)
    return given.item() if isinstance(given, np.generic) else given


def _rarest(y: Any, classes: Any) -> tuple[Any, int]:
    """The class of ``y`` (labels as text) with the fewest rows, as ``classes`` holds it, and its rows."""
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    return _as_given(labels[counts.argmin()].item(), classes), int(counts.min())


def _fit_weighted(ens: WeightedEnsemble, d: TabularData, seed: int | None, given: Any = None) -> WeightedEnsemble:
    from sklearn.model_selection import KFold, StratifiedKFold

    if d.y is None:
        raise DataError("the training split has no targets")
    task = ens.task
    classes = np.unique(d.y) if task == "classification" else None
    if classes is not None:
        label, rarest = _rarest(d.y, given)
        if rarest < SELECTION_FOLDS:
            # StackingEnsemble's n_folds come down to the class's rows; one row no fold can hold out and learn
            stack = f"StackingEnsemble(<the same members>, n_folds={rarest}) or " if rarest >= 2 else ""
            raise DataError(f"the class {label!r} has {rarest} row{'s' if rarest > 1 else ''} in y, fewer than the "
                            f"{SELECTION_FOLDS} folds a WeightedEnsemble selects its weights on (each class in every "
                            f"fold); use {stack}MeanEnsemble(<the same members>), which fits each member on every "
                            f"row, or drop the rows labelled {label!r} from X and y before fit")
        cv: Any = StratifiedKFold(SELECTION_FOLDS, shuffle=True, random_state=seed or 0)
    else:
        cv = KFold(SELECTION_FOLDS, shuffle=True, random_state=seed or 0)
    y = encode_y(d.y, task, classes)
    oof = [np.zeros((len(d), len(classes))) if classes is not None else np.zeros(len(d)) for _ in ens.members]
    for tr, va in cv.split(np.zeros(len(d)), y):
        for i, member in enumerate(ens.members):
            fitted = member.clone().fit(d.take(tr))
            p = np.asarray(fitted.predict(d.take(va)), dtype=np.float64)
            oof[i][va] = align_classes(p, fitted.classes_, classes) if classes is not None else p.reshape(len(va))
    members = [m.clone().fit(d) for m in ens.members]
    out = type(ens)(**{**ens.get_params(deep=False), "members": members})
    out.fit_predictions(oof, d.y)
    out.processor_ = d.processor
    return out
