"""``StackingEnsemble``: k-fold out-of-fold predictions of each base model feed a meta-model.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> data = as_data(xs, y=np.where(xs["a"] + xs["b"] > 0, "yes", "no"))
    >>> train, valid = data.take(np.arange(300)), data.take(np.arange(300, 400))
    >>> ens = StackingEnsemble([RandomForest("classification", n_estimators=10, n_jobs=1),
    ...                         GBM("classification", n_estimators=40, n_jobs=1)], n_folds=3).fit(train)
    >>> ens.oob_predictions_.shape, ens.score(valid) > 0.8
    ((2, 300, 2), True)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.backends.base import Model, check_valid_split
from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.backends.sklearn_adapter import SklearnModel
from pipekit.core.component import Component
from pipekit.core.errors import DataError, ExportError, FieldError, NotFittedError, ParameterError
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import Interval, Options
from pipekit.data.progress import progress_bar, under_bar
from pipekit.backends.data import rows_signature
from pipekit.ensemble.bagged import (BaggedModel, aligned, fold_fit_rows, make_folds, out_of_fold, target_name,
                                     time_ranks, training_predictions)
from pipekit.ensemble.base import (Ensemble, align_classes, as_member_list, check_members, member_name,
                                   no_sample_weight, validate_prediction)


#: what to pass StackingEnsemble in place of fitted members (it fits clones of them fold by fold)
_UNFIT_FIX = ("pass unfitted members, e.g. member.clone(), which stacking fits fold by fold (a "
              "TorchTabular.from_learner net is retrained so, with the epochs and lr given to from_learner), or "
              "members bagged on these training rows (BaggedModel(member).fit(train))")


class StackingEnsemble(Ensemble):
    """A meta-model (``meta``: any pipekit model, e.g. a bagged GBM, or a scikit-learn estimator; default
    logistic regression on the members' log-probabilities / ridge on their values) learns from the members'
    out-of-fold predictions on ``train``, plus the original inputs when ``passthrough`` (a second layer as
    AutoGluon stacks).

    Members bagged on ``train`` (fitted ``BaggedModel`` s) bring their out-of-fold predictions and are kept
    as they are. Unfitted members are fitted here: for each of ``n_folds`` folds of ``train`` (stratified for
    classification, shuffled with ``seed``) a clone of every member is fitted on the other folds and predicts
    the held-out fold; finally every member is refitted on all of ``train`` (an unfitted ``BaggedModel`` member
    is bagged once on ``train`` instead, its own out-of-fold predictions serving). A model that stops early stops on
    a share of the rows it trains on, as a ``BaggedModel``'s fold models do (``BaggedModel.split_rows``), never
    on the fold it predicts nor on ``valid``; the refitted member is then fitted once more on all of ``train``
    with the rounds it chose. So no choice sees ``valid``, which ``report_`` scores.

    ``members``: models, fitted and bagged on ``train`` or all unfitted, as a list or a dict naming them; ``name``: its
    own name (see :class:`~pipekit.ensemble.base.Ensemble`).

    Fitted: ``members_`` (the refitted members; None when the bagged members are used as given),
    ``meta_model_``, ``oob_predictions_`` (the members' out-of-fold predictions),
    ``report_`` (on valid), ``train_rows_signature_`` (of ``train``, also set on each refitted member: an
    ensemble refuses to choose weights on rows its members were fitted on); with a bagged ``meta`` also the
    stack's own ``oof_predictions_``, ``oof_targets_`` and ``rows_signature_``.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import GBM, RandomForest, as_data
    >>> from pipekit.ensemble import StackingEnsemble
    >>> xs = pl.DataFrame({"a": np.arange(80.0), "b": np.arange(80.0) % 7})
    >>> data = as_data(xs, y=2 * xs["a"].to_numpy())
    >>> ens = StackingEnsemble([RandomForest("regression", n_estimators=5, n_jobs=1),
    ...                         GBM("regression", n_estimators=20, n_jobs=1)], n_folds=2).fit(data)
    >>> ens.oob_predictions_.shape, type(ens.meta_model_).__name__, ens.predict(data).shape
    ((2, 80), 'SklearnModel', (80,))
    """

    members_fitted = False  # it fits clones of its members itself
    param_constraints = {**Ensemble.param_constraints, "n_folds": Interval(2, None, integer=True),
                         "passthrough": Options(True, False),
                         "seed": Interval(0, 2**32 - 1, integer=True, none_ok=True)}

    def __init__(self, members: Sequence[Any] | dict[str, Any], meta: Any = None, n_folds: int = 5,
                 passthrough: bool = False, metric: Any = None, seed: int | None = 0, name: str | None = None):
        self.members = as_member_list(members)
        task = check_members(self.members, fitted=False)[0]
        self.meta = meta if meta is None or isinstance(meta, Model) else SklearnModel(meta, task)
        self.n_folds, self.passthrough, self.metric, self.seed, self.name = n_folds, passthrough, metric, seed, name
        self.check_params()

    def check_params(self) -> None:
        for i, m in enumerate(self.members):
            if not isinstance(m, Component):
                raise ParameterError(f"member {member_name(m, i)} has no clone(); stacking refits every member per fold")
        super().check_params()

    def fitted_members(self) -> list:
        self.check_is_fitted()
        # members bagged on the training rows are used as given (None here: a file holds them once)
        return self.members if self.members_ is None else self.members_

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file, checked against the members: ``members_`` one refitted member per member
        (or None, the bagged members used as given), a fitted ``meta_model_`` of this task and classes that reads
        exactly the columns ``_features`` gives it, ``passthrough_columns_`` and ``passthrough_cats_`` column names,
        ``processor_`` fitted procs."""
        super().state_from_data(state)
        if not state:
            return  # an unfitted ensemble's record
        if "members_" not in state:  # null (the bagged members used as given) is written, never left out
            raise FieldError("state.members_", "is missing: prediction needs the refitted members (a list of fitted "
                                               "models) or null; the file is damaged or was not written by pipekit")
        cols, cats = vars(self).get("passthrough_columns_"), vars(self).get("passthrough_cats_")
        if not (isinstance(cols, list) and isinstance(cats, list) and all(isinstance(c, str) for c in cols + cats)
                and set(cats) <= set(cols)):
            raise ExportError("StackingEnsemble: passthrough_columns_ must list column names and passthrough_cats_ "
                              "those of them that are categorical")
        refitted = vars(self).get("members_")
        if refitted is not None and not (
                isinstance(refitted, list) and len(refitted) == len(self.members)
                and all(type(r) is type(m) and r.is_fitted for r, m in zip(refitted, self.members))):
            raise ExportError(f"StackingEnsemble: members_ must hold {len(self.members)} fitted models, one of each "
                              f"member's class ({[type(m).__name__ for m in self.members]}), or be null")
        try:
            task, classes = check_members(self.fitted_members(), fitted=True)
        except (ParameterError, NotFittedError) as e:
            raise ExportError(f"StackingEnsemble: the members{'_' if refitted is not None else ''} cannot be "
                              f"stacked ({e})") from None
        meta = vars(self).get("meta_model_")
        if not (isinstance(meta, Model) and isinstance(meta, Component) and meta.is_fitted and meta.task == task):
            raise ExportError(f"StackingEnsemble: meta_model_ must be a fitted {task} model, got "
                              f"{type(meta).__name__}")
        if classes is not None and np.asarray(meta.classes_).tolist() != classes.tolist():
            raise ExportError(f"StackingEnsemble: meta_model_ predicts the classes {np.asarray(meta.classes_).tolist()[:5]}"
                              f", the members {classes.tolist()[:5]}")
        per = 1 if classes is None or len(classes) == 2 else len(classes)
        n = len(self.fitted_members()) * per
        names = [f"m{j}" for j in range(n + (len(cols) if self.passthrough else 0))]
        cat_names = [f"m{n + j}" for j, c in enumerate(cols) if self.passthrough and c in cats]
        read = vars(meta).get("feature_names_")
        if read is not None and (list(read) != names or list(vars(meta).get("cat_features_") or []) != cat_names):
            raise ExportError(f"StackingEnsemble: meta_model_ reads the columns {list(read)[:6]}, but the members' "
                              f"predictions{' and the passthrough columns' if self.passthrough else ''} make "
                              f"{names[:6]}{' ...' if len(names) > 6 else ''}")
        oof = vars(self).get("oof_predictions_")
        if oof is not None:
            targets = vars(self).get("oof_targets_")
            shape = (len(targets),) + (() if classes is None else (len(classes),)) \
                if isinstance(targets, np.ndarray) and targets.ndim == 1 else None
            if not (isinstance(oof, np.ndarray) and oof.shape == shape and oof.dtype.kind == "f"
                    and np.isfinite(oof).all()):
                raise ExportError("StackingEnsemble: oof_predictions_ must hold one finite prediction per training "
                                  "row of oof_targets_")

    def _features(self, preds: np.ndarray, data: TabularData) -> TabularData:
        """What the meta-model reads: each member's prediction (log-odds for two classes, log-probabilities
        otherwise, values for regression) as ``m0..``, then with ``passthrough`` the original inputs (category
        codes stay categorical, so a GBM meta-model splits on them natively)."""
        if self.task == "regression":
            feats = preds.T
        elif preds.shape[2] == 2:
            logp = np.log(np.clip(preds, 1e-7, 1.0))  # (M, n, K)
            feats = (logp[:, :, 1] - logp[:, :, 0]).T
        else:
            feats = np.log(np.clip(preds, 1e-7, 1.0)).transpose(1, 0, 2).reshape(preds.shape[1], -1)
        cols = [pl.Series(f"m{j}", feats[:, j]) for j in range(feats.shape[1])]
        cats = []
        if self.passthrough:
            data.check_columns(self.passthrough_columns_, "the stacking ensemble's passthrough column(s)")
            for j, c in enumerate(self.passthrough_columns_, start=len(cols)):
                s = data.xs.get_column(c)
                if c in self.passthrough_cats_:
                    cats.append(f"m{j}")
                    cols.append(s.cast(pl.Int64).alias(f"m{j}"))
                else:
                    cols.append(s.cast(pl.Float64).alias(f"m{j}"))
        return as_data(pl.DataFrame(cols), y=data.y, cat_names=cats)

    def input_readers(self) -> list:
        """The members, and with ``passthrough`` the meta-model, which reads the inputs too (None: its default, a
        logistic or ridge regression, which learns no trees)."""
        return [*self.members, self.meta] if self.passthrough else list(self.members)

    def fit(self, train: Any, valid: Any = None, order: Any = None, sample_weight: Any = None) -> StackingEnsemble:
        """Fit on ``train``. Bagged members already fitted on ``train`` (``BaggedModel``) are kept as they are
        and their out-of-fold predictions feed the meta-model; other members are fitted here, fold by fold.
        A bagged ``meta`` keeps out-of-fold predictions of the whole stack (``oof_predictions_``), so the
        stack can join a ``WeightedEnsemble`` selected on training rows. ``valid`` is only scored. ``order``: each
        training row's time (``tab.train_times``); the folds the unfitted members are fitted on are then contiguous
        periods in time order (an unfitted ``BaggedModel`` member is bagged with it), and so are a bagged
        ``meta``'s (``BaggedModel(folds="time")``); a meta-model that is not bagged is fitted on every row, without
        it. It is refused, before anything is fitted, with an unfitted ``BaggedModel`` member or a bagged ``meta``
        whose folds are ``"shuffled"``, and where nothing would use it: fitted members and a meta-model that is not
        bagged. ``sample_weight`` is refused
        (:func:`~pipekit.ensemble.base.no_sample_weight`): the members and the meta-model are fitted unweighted."""
        check_fork_safe("StackingEnsemble.fit")
        if sample_weight is not None:
            raise ParameterError(no_sample_weight(self))
        valid = check_valid_split(self, valid)  # fit(xs, y) would take y as validation rows; no rows: None
        bagged_meta = isinstance(self.meta, BaggedModel)
        fitted = [isinstance(m, Component) and m.is_fitted for m in self.members]
        if order is not None:  # refused before anything is fitted
            self._check_order(order, fitted)
        d = as_data(train)
        if d.y is None:
            raise DataError("the training split has no targets (ys)")
        v = as_data(valid) if valid is not None else None
        # checked before any member is fitted; scores the validation rows (report_)
        metric = self._fit_metric(np.unique(np.asarray(d.y)) if self.task == "classification" else None)
        self.reset_state()
        self.passthrough_columns_ = list(d.feature_names)
        self.passthrough_cats_ = [c for c in d.cat_names if c in self.passthrough_columns_]
        if all(fitted):
            task, classes = check_members(self.members, fitted=True)
            plain = [member_name(m, i) for i, m in enumerate(self.members) if out_of_fold(m) is None]
            if len(plain) == len(self.members):  # fitted, none bagged: no out-of-fold predictions to learn from
                raise ParameterError(f"the members are fitted, but not bagged on these training rows: {plain}; "
                                     + _UNFIT_FIX)
            kept = training_predictions(self.members, classes, d)
            if kept is None:
                raise ParameterError("the members are fitted, but not bagged on these training rows; "
                                     + _UNFIT_FIX)
            oof = np.stack(kept[0])
            self.members_ = None
        elif any(fitted):
            names = [member_name(m, i) for i, m in enumerate(self.members) if fitted[i]]
            raise ParameterError(f"some members are fitted and some are not (fitted: {names}); " + _UNFIT_FIX)
        else:
            oof = self._fit_members(d, v, order)
        self.oob_predictions_ = oof
        if self.meta is not None:
            meta = self.meta.clone()
        else:  # logistic regression on the members' log-probabilities, ridge on their values
            from sklearn.linear_model import LogisticRegression, Ridge

            meta = SklearnModel(LogisticRegression(C=1.0, max_iter=1000) if self.task == "classification"
                                else Ridge(alpha=1.0), self.task)
        features = self._features(oof, d)
        timed = {"order": order} if order is not None and bagged_meta else {}  # a meta-model not bagged has no folds
        self.meta_model_ = meta.fit(features, **timed)  # type: ignore[attr-defined]
        meta_oof = out_of_fold(self.meta_model_)
        if meta_oof is not None:  # the meta-model's folds: the stack's own out-of-fold predictions
            classes = self.classes_
            self.oof_predictions_ = (align_classes(meta_oof, self.meta_model_.classes_, classes)
                                     if classes is not None else meta_oof)
            self.oof_targets_ = encode_y(d.y, self.task, classes)
            self.rows_signature_ = rows_signature(d)
        self._remember_procs(d)
        self.train_rows_signature_ = rows_signature(d)  # see bagged.fitted_on
        self.report_ = None if v is None else self._scores(self._data(v), metric)
        return self

    def _check_order(self, order: Any, fitted: list[bool]) -> None:
        """Refuse ``order`` (each training row's time) where it would be dropped: by a bagged ``meta`` or an
        unfitted ``BaggedModel`` member whose folds are shuffled (:meth:`BaggedModel.check_order`), or where no folds
        are cut here (``fitted``: which members are fitted already, and the meta-model is not bagged)."""
        if isinstance(self.meta, BaggedModel):
            self.meta.check_order(order, "StackingEnsemble", "the meta-model")
        for i, m in enumerate(self.members):
            if isinstance(m, BaggedModel) and not fitted[i]:  # bagged here, with order
                m.check_order(order, "StackingEnsemble", f"member {member_name(self.members[i], i)!r}")
        if not all(fitted) or isinstance(self.meta, BaggedModel):
            return
        meta_name = "the default (not bagged)" if self.meta is None else type(self.meta).__name__
        plain = [member_name(m, i) for i, m in enumerate(self.members) if out_of_fold(m) is None]
        # fitted members not bagged keep no out-of-fold predictions to learn from: only refitting or bagging them
        # here helps, not a bagged meta-model
        why, fix = ((f", {plain} not bagged (they keep no out-of-fold predictions to learn from),",
                     "), which this stack fits on time folds, or bag them on these rows with "
                     "BaggedModel(member, folds='time').fit(train, order=...)") if plain else
                    (" (bagged with their own folds)",
                     ", or BaggedModel(model, folds='time') to bag here), bag the members with "
                     "BaggedModel(..., folds='time').fit(train, order=...), or give meta=BaggedModel(..., folds='time')"))
        raise ParameterError("StackingEnsemble: order= sets the time folds of the members this stack fits and of a "
                             f"bagged meta-model, but the members are fitted already{why} and the meta-model is "
                             f"{meta_name}; pass unfitted members (member.clone(){fix}")

    def _fit_members(self, d: TabularData, v: TabularData | None, order: Any = None) -> np.ndarray:
        """Out-of-fold predictions of clones of the members fitted fold by fold, then every member refitted on
        all of ``d`` into ``members_``: each stopped early on its own rows only (``v`` chooses nothing). A member
        that is an unfitted ``BaggedModel`` is fitted once on ``d`` (with ``order`` for time folds) and its own
        out-of-fold predictions serve, as those of a bag fitted on ``d`` would."""
        classes = np.unique(d.y) if self.task == "classification" else None  # type: ignore[arg-type]
        y = encode_y(d.y, self.task, classes)
        folds = make_folds(d.y if classes is not None else y, self.task, self.n_folds, self.seed,  # type: ignore[arg-type]
                           order=None if order is None else time_ranks(order, len(d)), target=target_name(d))
        fold_of = np.empty(len(d), dtype=np.int64)
        for f, (_, va_idx) in enumerate(folds):
            fold_of[va_idx] = f
        k = None if classes is None else len(classes)
        oof = np.zeros((len(self.members), len(d)) + ((k,) if k else ()))
        refitted: list[Any] = [None] * len(self.members)
        for i, member in enumerate(self.members):
            if isinstance(member, BaggedModel):  # bagged here once, as a bag fitted on d would be given
                bag = member.clone()
                refitted[i] = bag.fit(d, order=order)  # shuffled folds with order: refused before fitting (_check_order)
                p = out_of_fold(bag)
                if classes is not None:
                    p = aligned(p, bag.classes_, classes)  # type: ignore[arg-type]
                oof[i] = validate_prediction(p, len(d), member_name(self.members[i], i), self.task, k)
        strata = np.asarray(y) if classes is not None else None
        jobs = [(i, f) for i in range(len(self.members)) if refitted[i] is None for f in range(len(folds))]
        for i, f in progress_bar(jobs, total=len(jobs), description="stacking folds"):
            fit_idx, stop_idx, va_idx = fold_fit_rows(fold_of, f, self.members[i].stops_early(), self._split_seed(),
                                                      strata=strata)
            with under_bar():  # a member's own bar (a GBM's rounds) keeps quiet under this one
                m = self.members[i].clone().fit(d.take(fit_idx), d.take(stop_idx) if len(stop_idx) else None)
                p = np.asarray(m.predict(d.take(va_idx)), dtype=np.float64)
            if classes is not None:  # a fold (a period of time folds) may miss a class: its column is 0, as in a bag
                p = aligned(p, m.classes_, classes)
            oof[i, va_idx] = validate_prediction(p, len(va_idx), member_name(m, i), self.task, k)
        refitted = [self._refit(m, d, strata) if r is None else r for m, r in zip(self.members, refitted)]
        sig = rows_signature(d)
        for m in refitted:  # their predictions on d are memorised: no ensemble may choose on them
            m.train_rows_signature_ = sig
        self.members_ = refitted  # type: ignore[assignment]
        check_members(self.members_, fitted=True)  # type: ignore[arg-type]
        return oof

    def _refit(self, member: Any, d: TabularData, strata: np.ndarray | None) -> Any:
        """``member`` fitted on all of ``d``: a model that stops early stops on a seeded share of ``d``
        (the split of a fold no row is in), then is fitted again on every row with the rounds it chose, scaled
        to the rows added (``stopped_params``)."""
        fit_idx, stop_idx, _ = fold_fit_rows(np.zeros(len(d), dtype=np.int64), self.n_folds, member.stops_early(),
                                             self._split_seed(), strata=strata)
        if not len(stop_idx):
            return member.clone().fit(d)
        m = member.clone().fit(d.take(fit_idx), d.take(stop_idx))
        return member.clone().set_params(**m.stopped_params(len(d) / len(fit_idx))).fit(d)

    def _split_seed(self) -> int:
        """The seed of the members' stopping rows, as a ``BaggedModel`` of this stack's ``seed`` draws them."""
        return (self.seed or 0) % 2**31

    def _combine(self, preds: np.ndarray, data: TabularData | None) -> np.ndarray:
        if data is None:
            raise ParameterError("StackingEnsemble combines the members' predictions on data (its meta-model may "
                                 "read the inputs too)")
        return self.meta_model_.predict(self._features(preds, data))

