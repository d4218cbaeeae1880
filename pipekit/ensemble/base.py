"""What every ensemble shares: checking that members fit together, collecting their predictions aligned
by class label, scoring, reports, and the processing of the data they were fitted on.

An ensemble is a model (``pipekit.backends.Model``) whose members are a parameter: a list of models (a
dict ``{name: model}`` names them). ``clone()`` clones the members, files hold them as nested records,
and loading rebuilds them through ``Component.from_record`` like any other model."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np
import polars as pl

from pipekit.backends.base import NAME, Backend, KeepsProcessor, Model
from pipekit.backends.data import RowForm, TabularData, as_data, check_rows, normalised_stats
from pipekit.core.component import Component, param_names, to_data
from pipekit.core.errors import DataError, ExportError, NotFittedError, ParameterError, warn
from pipekit.metrics import DEFAULT_METRIC, FuncMetric, Metric, get_metric
from pipekit.metrics.functions import scores_decide
from pipekit.metrics.lookup import checked_metric
from pipekit.metrics.lookup import is_scorer, metric_name


@runtime_checkable
class Member(Protocol):
    """What an ensemble needs of a member (classifiers also give ``classes_``, their probability columns)."""

    task: str
    name: str | None

    def predict(self, data: Any) -> Any: ...


def member_name(member: Member, i: int) -> str:
    """The member's ``name`` (its key when the members were a dict, as every message names it), or
    ``"<i>:<class name>"`` for an unnamed one."""
    return str(member.name) if member.name else f"{i}:{type(member).__name__}"


def not_a_member(m: Any, label: str) -> ParameterError:
    """The error for ``m``, which is no model an ensemble can hold, named ``label`` (its key, or its position),
    saying what to pass instead."""
    hint = ""
    if hasattr(m, "dls") and hasattr(m, "model"):  # a Learner: its net is trained behind the model interface
        hint = ("; a tabular_learner Learner is no member: pass TorchTabular.from_learner(learn), its trained net "
                "as a model (or train the same net as TorchTabular(task, layers=[...], epochs=...).fit(tab.train, "
                "tab.valid))")
    return ParameterError(f"member {label} ({type(m).__name__}) has no predict/task/name; members must be pipekit "
                          f"models (RandomForest, GBM, SklearnModel, TorchTabular, an ensemble){hint}")


def as_member_list(members: Any) -> list:
    """Members as a list; a dict ``{name: model}`` names its models for reports, files and error messages (and
    errors name a member by its key: ``member 'net'``). The caller's models keep their own names: a model whose
    name is not its key (or given twice) joins as a copy (:func:`named_copy`) named by the key, so another
    ensemble built from the same model names its own copy, as scikit-learn's VotingClassifier leaves its
    estimators alone. The copy holds what the model had learned when the ensemble was built: fitting or refitting
    the model afterwards does not reach the ensemble, so fit the models first, or make each with ``name=`` its key
    (``RandomForest(..., name="rf")``) to have it join as it is."""
    if isinstance(members, dict):
        out: list = []
        for name, m in members.items():
            if not isinstance(m, Member) and not (hasattr(m, "predict") and hasattr(m, "task")):
                raise not_a_member(m, repr(str(name)))
            if m.name != str(name) or any(m is o for o in out):
                m = named_copy(m, str(name))
            out.append(m)
        return out
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
        raise ParameterError("members must be a non-empty list of models or a dict {name: model}")
    return list(members)


def named_copy(m: Any, name: str) -> Any:
    """A shallow copy of the model ``m`` named ``name``: it shares what ``m`` learned (trees, boosters, arrays, the
    fitted procs; a big forest is not held twice), and its parameters that are components (a bagged model's
    ``model``, a nested ensemble's ``members``) are such copies too, so setting a parameter through the ensemble
    (``ens.set_params(rf__n_estimators=50)``) leaves ``m`` as it was. A model refitted after the ensemble was built
    is refitted alone: the copy keeps what it had learned, and one fitted only after the ensemble was built leaves the
    copy unfitted (:func:`not_fitted_member` says so)."""
    c = _shallow_copy(m)
    c.name = name
    c._joined_as_copy = True  # a mark for not_fitted_member only: files and clones leave it out
    return c


def not_fitted_member(member: Any, i: int) -> NotFittedError:
    """The error for the unfitted ``member`` at position ``i``: fit it first; for a copy a dict made
    (:func:`named_copy`), fitting the model given under that key no longer reaches the ensemble, so it says how to
    build the ensemble so that it does."""
    name = member_name(member, i)
    if not getattr(member, "_joined_as_copy", False):
        return NotFittedError(f"member {name} is not fitted; fit it first (or use StackingEnsemble, which fits its "
                              "members)")
    return NotFittedError(
        f"member {name} is not fitted: the ensemble holds a copy of the model given as {name!r}, made when the "
        f"ensemble was built (a dict member whose name is not its key joins as a copy named by the key), so fitting "
        f"that model afterwards does not reach it. Build the ensemble after fitting its members, or make the model "
        f"with name={name!r} ({type(member).__name__}(..., name={name!r})) so that it joins as it is (or use "
        "StackingEnsemble, which fits its members)")


def _shallow_copy(m: Any) -> Any:
    """``copy.copy(m)``, with the components among its parameters (alone or in a list) copied the same way."""
    c = copy.copy(m)
    if isinstance(m, Component):
        for k, v in m.get_params(deep=False).items():
            if isinstance(v, Component):
                setattr(c, m.param_attrs.get(k, k), _shallow_copy(v))
            elif isinstance(v, list) and any(isinstance(x, Component) for x in v):
                setattr(c, m.param_attrs.get(k, k), [_shallow_copy(x) if isinstance(x, Component) else x for x in v])
    return c


def check_members(members: Sequence[Any], check_columns: bool = True, fitted: bool | None = None) -> tuple[str, Any]:
    """Check that ``members`` can be combined; returns ``(task, classes)`` (classes sorted by label, None
    for regression or when the members are not fitted). ``fitted``: True requires fitted members, False
    checks only the task, None checks what the members allow (all fitted, or none, as after ``clone()``)."""
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence) or len(members) == 0:
        raise ParameterError("members must be a non-empty list of models")
    for i, m in enumerate(members):
        if not isinstance(m, Member):
            raise not_a_member(m, str(i))
    tasks = {m.task for m in members}
    if len(tasks) > 1:
        raise ParameterError(f"members mix tasks {sorted(tasks)}: " +
                             ", ".join(f"{member_name(m, i)}={m.task}" for i, m in enumerate(members)))
    task = tasks.pop()
    unfitted = [i for i, m in enumerate(members) if isinstance(m, Component) and not m.is_fitted]
    if fitted is False or (fitted is None and len(unfitted) == len(members)):
        return task, None
    if unfitted:
        raise not_fitted_member(members[unfitted[0]], unfitted[0])
    backends = [(i, m) for i, m in enumerate(members) if isinstance(m, Backend)]
    for i, m in backends[1:]:
        j, ref = backends[0]
        sa, sb = ref.procs_signature_, m.procs_signature_
        ya, yb = (list(getattr(getattr(x, "processor_", None), "y_names", None) or []) for x in (ref, m))
        if ya and yb and ya != yb:
            raise ParameterError(f"members predict different targets: {member_name(ref, j)} predicts {ya}, "
                                 f"{member_name(m, i)} predicts {yb}; an ensemble combines predictions of one target: "
                                 "train every member on the same Tabular")
        if sa is not None and sb is not None and sa != sb:
            raise ParameterError(f"members were trained on data processed by different procs: {member_name(ref, j)} "
                                 f"(signature {sa}) vs {member_name(m, i)} (signature {sb}); train every member on "
                                 "the same Tabular")
        fa, fb = set(ref.feature_names_), set(m.feature_names_)
        if check_columns and fa != fb:
            raise ParameterError(f"members were trained on different columns: {member_name(ref, j)} has "
                                 f"{sorted(fa - fb)} that {member_name(m, i)} lacks, and it has {sorted(fb - fa)}; "
                                 "train them on the same Tabular, or pass check_columns=False if it is intended")
    if task != "classification":
        return task, None
    classes = np.asarray(members[0].classes_)
    for i, m in enumerate(members[1:], start=1):
        if set(np.asarray(m.classes_).tolist()) != set(classes.tolist()):
            raise ParameterError(f"members disagree on the classes: {member_name(members[0], 0)} has "
                                 f"{classes.tolist()}, {member_name(m, i)} has {np.asarray(m.classes_).tolist()}")
    return task, np.sort(classes)


def unsaved_metric(metric: Any, task: str, who: str) -> str:
    """The warning for ``metric``, which a file cannot hold, as ``who`` (an ensemble's class) is saved: what it is,
    what the loaded model scores with instead (the task's default) and what to pass to keep it (the name of the
    pipekit metric of the same function where there is one)."""
    try:
        with scores_decide():  # only its name is read: fitting said its direction
            name = get_metric(metric, task).name
    except ParameterError:
        name = getattr(metric, "__name__", type(metric).__name__)
    if is_scorer(metric) or getattr(getattr(metric, "fn", None), "scorer", False):  # fit_ensemble reads a scorer
        kind = "a scikit-learn scorer"
    elif isinstance(metric, Metric) and not isinstance(metric, FuncMetric):
        kind = "a metric that is not registered"
    else:
        kind = "a function"
    known = None
    scoring = name.removesuffix("_score")  # scikit-learn's scoring name of a score function (roc_auc)
    # else the pipekit metric of that function (mae for mean_absolute_error), else the name as it is
    for candidate in (scoring if scoring != name else None, metric_name(name), name):
        try:
            if candidate:
                get_metric(candidate, task)
                known = candidate
                break
        except ParameterError:
            continue
    use = f"metric={known!r}" if known else "its name (metric='roc_auc', 'mape')"
    default = DEFAULT_METRIC[task]
    return (f"{who}: its metric {name!r} is {kind}, which a file cannot hold: the file stores no metric, and the "
            f"loaded model's score() and report() use the {task} default, {default!r}. To keep the metric in the "
            f"file, give the ensemble (or fit_ensemble) {use}, or a registered pipekit Metric; or score the loaded "
            f"model with it: score(data, metric=...)")


def align_classes(pred: np.ndarray, member_classes: Sequence, classes: np.ndarray) -> np.ndarray:
    """Reorder probability columns from a member's class order to ``classes`` (matched by label)."""
    member_classes = np.asarray(member_classes).tolist()
    return pred[:, [member_classes.index(c) for c in classes.tolist()]]


def validate_prediction(pred: Any, n_rows: int, name: str, task: str, n_classes: int | None) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape[0] != n_rows:
        raise DataError(f"member {name} returned {pred.shape[0]} predictions for {n_rows} rows; every member "
                        "must predict every row of the same data")
    if task == "classification" and (pred.ndim != 2 or pred.shape[1] != n_classes):
        raise DataError(f"member {name} returned predictions of shape {pred.shape}; expected ({n_rows}, "
                        f"{n_classes}) class probabilities")
    if task == "regression":
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.ndim != 1:
            raise DataError(f"member {name} returned shape {pred.shape}; expected ({n_rows},) values")
    bad = ~np.isfinite(pred)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"member {name} predicted {int(bad.sum())} NaN/inf values (first at row {row}); check "
                        "that model (diverged training, or inputs it never saw)")
    return pred


def member_predictions(members: Sequence[Any], data: TabularData, task: str,
                       classes: np.ndarray | None, made: dict[int, Any] | None = None) -> np.ndarray:
    """Stacked predictions ``(n_members, n_rows[, n_classes])``, classes aligned by label. ``made``: the
    predictions members already made on ``data``, by ``id(member)``; those made here are added to it."""
    out = []
    for i, m in enumerate(members):
        name = member_name(m, i)
        p = None if made is None else made.get(id(m))
        if p is None:
            try:
                p = m.predict(data)
            except DataError as e:
                raise DataError(f"member {name}: {e}") from e
            if made is not None:
                made[id(m)] = p
        if classes is not None:
            p = np.asarray(p, dtype=np.float64)
            if p.ndim == 2 and p.shape[1] == len(classes):
                p = align_classes(p, m.classes_, classes)
        out.append(validate_prediction(p, len(data), name, task, None if classes is None else len(classes)))
    return np.stack(out)


def members_processor(members: Sequence[Any]) -> Any:
    """The fitted procs the members were trained on, when members keep them (every model fitted on a Tabular's
    split does; one fitted on a bare frame, or read from an older file, keeps only their signature) and all those
    that keep them keep the same; else None."""
    found: list[Any] = []
    for m in members:
        p = m.known_processor() if isinstance(m, Ensemble) else vars(m).get("processor_")
        if p is not None and not any(p is q for q in found):
            found.append(p)
    if len(found) > 1:  # copies of the same procs (members loaded from files) are alike
        from pipekit.backends.data import procs_signature

        if len({procs_signature(p) for p in found}) > 1:
            return None
    return found[0] if found else None


class Ensemble(KeepsProcessor, Model):
    """Shared plumbing of the ensembles: members, scoring, ``report``, the processing of the data they were
    fitted on (``processor()``, checked as a file is loaded). Subclasses implement ``_combine(preds, data)``.

    Every ensemble takes ``members``: a list of models, or a dict ``{name: model}`` naming them in reports, errors
    and ``get_params`` (``rf__n_estimators``; a model whose ``name`` is not its key joins as a copy holding what it
    has learned by then, see :func:`as_member_list`). And ``name``: the ensemble's own name, as a member of another
    ensemble (a dict key sets it on the copy)."""

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    param_constraints: ClassVar[dict[str, Any]] = {"name": NAME}
    #: ``name`` came after files were written without it: a record without it is an unnamed ensemble
    record_defaults: ClassVar[dict[str, Any]] = {"params.name": None}

    members: list
    check_columns: bool = True
    #: whether the members must come fitted (True), not (False), or either way but all alike (None)
    members_fitted: ClassVar[bool | None] = None
    unsaved = ("report_", "oob_predictions_")

    @property
    def task(self) -> str:  # derived from the members, never stored
        """``'classification'`` or ``'regression'``: the members' task (they must share one)."""
        return check_members(self.members, fitted=False)[0]

    @property
    def classes_(self) -> Any:
        """The class labels, in the column order of ``predict``'s probabilities (the fitted members', which must
        agree)."""
        return check_members(self.fitted_members(), self.check_columns, fitted=True)[1]

    @property
    def learns_trees(self) -> bool:
        """Whether every model that reads the inputs learns only trees: the members (see :meth:`input_readers`)."""
        readers = self.input_readers()
        return bool(readers) and all(isinstance(m, Model) and m.learns_trees for m in readers)

    def input_readers(self) -> list:
        """The models that read the ensemble's inputs: its members (a stack with ``passthrough`` adds its meta-model)."""
        return list(self.members)

    def fitted_members(self) -> list:
        """The fitted models the ensemble predicts with."""
        return self.members

    # -- the members' parameters, by name, as scikit-learn's VotingClassifier gives its estimators' -------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` arguments; with ``deep``, each named member's too, as ``<name>__<param>``: a search grid
        tunes one member, ``{"backend__rf__n_estimators": [100, 300]}`` for a ``TabularClassifier`` around
        ``MeanEnsemble({"rf": RandomForest(...), "gbm": GBM(...)})`` (a member named like one of the ensemble's
        own parameters is reached through ``members`` only)."""
        out = super().get_params(deep)  # type: ignore[misc]
        if deep:
            for name, m in self._named(self.members).items():
                out[name] = m
                out.update({f"{name}__{k}": v for k, v in m.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> Any:
        """As every component's (checked before any is set), and ``<name>__<param>`` sets a named member's
        parameter (the members given in the same call, when ``members`` is among them)."""
        own = param_names(type(self))
        by_member: dict[str, dict[str, Any]] = {}
        rest: dict[str, Any] = {}
        replaced: dict[str, Any] = {}
        for k, v in params.items():
            head, sep, key = k.partition("__")
            if sep and head not in own:
                by_member.setdefault(head, {})[key] = v
            elif not sep and head not in own:  # a named member replaced: {"rf": RandomForest(...)}
                replaced[head] = v
            else:
                rest[k] = v
        if replaced:
            given = as_member_list(rest["members"]) if "members" in rest else list(self.members)
            named = self._named(given)
            unknown = sorted(set(replaced) - set(named))
            if unknown:
                raise ParameterError(f"{type(self).__name__} has no parameter or named member {unknown[0]!r}; its "
                                     f"parameters are {own}, its named members {sorted(named)}")
            new = {name: as_member_list({name: m})[0] for name, m in replaced.items()}  # named as the one replaced
            rest["members"] = [new.get(str(getattr(m, "name", None)), m) for m in given]
        if by_member:
            named = self._named(as_member_list(rest["members"]) if "members" in rest else self.members)
            for head, values in by_member.items():
                if head not in named:
                    raise ParameterError(f"{type(self).__name__} has no parameter or named member {head!r}; its "
                                         f"parameters are {own}, its named members {sorted(named)}")
                named[head].clone().set_params(**values)  # checked on a copy before anything is set
        super().set_params(**rest)  # type: ignore[misc]
        named = self._named(self.members)
        for head, values in by_member.items():
            named[head].set_params(**values)
        return self

    def _named(self, members: Sequence[Any]) -> dict[str, Any]:
        own = set(param_names(type(self)))
        names = {str(getattr(m, "name", None) or ""): m for m in members if isinstance(m, Component)}
        return {k: m for k, m in names.items() if k and "__" not in k and k not in own}

    def contributions(self, data: Any) -> Any:
        """Per-row contributions, exact where the model averages tree models' probabilities or values (see
        :func:`pipekit.inspection.contributions`, which this is; other models are refused, naming what explains
        them instead)."""
        from pipekit.inspection.contributions import contributions

        return contributions(self, data)

    def check_params(self) -> None:
        super().check_params()
        check_members(self.members, self.check_columns, fitted=self.members_fitted)
        with scores_decide():  # a bad metric fails here, not after fitting; fitting says a lambda's direction
            get_metric(self.metric, self.task)

    def _fit_metric(self, classes: Any = None) -> Metric:
        """``metric`` for this task as fitting scores with it, checked once before anything is fitted or chosen on it
        (:func:`~pipekit.metrics.lookup.check_metric`, as ``fit_ensemble`` checks its metric): a function that fails
        on the task's predictions fails here, and a plain function's direction is read from its scores, its name
        deciding only where they do not tell (a ``cost`` whose scores are better smaller is minimised).
        ``classes``: a classifier's class labels, by which a scikit-learn scorer's ``pos_label`` names one."""
        classify = self.task == "classification" and classes is not None
        return checked_metric(self.metric, self.task, classes if classify else None)

    def params_to_data(self) -> dict[str, Any]:
        """The parameters a file keeps. A metric given by name (``"mape"``, ``"roc_auc"``) or as a registered pipekit
        Metric is kept; one a file cannot hold (a user's own function, a scikit-learn scorer) is stored as None, so
        the loaded ensemble scores with its task's default, with a warning saying so and how to keep the metric."""
        params = self.get_params(deep=False)
        try:
            to_data(params["metric"])
        except ExportError:
            warn(unsaved_metric(params["metric"], self.task, type(self).__name__))
            params["metric"] = None
        return params

    def state_from_data(self, state: dict[str, Any]) -> None:
        try:
            super().state_from_data(state)
        except AttributeError as e:  # a name this ensemble derives (classes_, weights_) cannot be set
            raise ExportError(f"{type(self).__name__}: the stored state names a derived attribute ({e})") from None

    def _combine(self, preds: np.ndarray, data: TabularData | None) -> np.ndarray:
        """The weighted average of the members' predictions (StackingEnsemble learns its combination)."""
        return np.tensordot(self._weights(), preds, axes=1)

    def _data(self, data: Any) -> TabularData:
        d = as_data(data)
        check_rows(d, self.row_form())
        return d

    def row_form(self) -> RowForm:
        """What the rows the members were fitted on look like: their input columns and procs, and, where the procs
        of the data this ensemble or its members were fitted on are known (``known_processor``), the codes and
        normalised columns they make; else what the members know of them. :func:`~pipekit.backends.data.check_rows`
        holds new rows to it, as each backend holds them to its own, so a backend and its ensemble refuse the same
        rows with the same message."""
        from pipekit.tabular.procs import code_dtype

        forms = [m.row_form() for m in self._members_or_given()
                 if isinstance(m, (Backend, Ensemble)) and m.is_fitted]
        features = list(dict.fromkeys(c for f in forms for c in f.features))
        signature = next((f.signature for f in forms if f.signature is not None), None)
        processor = self.known_processor()
        if processor is not None:
            codes: dict[str, tuple[int, str | None]] = {
                c: (len(v), str(code_dtype(len(v)))) for c, v in (getattr(processor, "classes_", None) or {}).items()}
            scales: dict[str, tuple[float, float]] | None = normalised_stats(processor)
        else:
            codes = {c: v for f in forms for c, v in f.codes.items()}
            scales = None if not forms or any(f.scales is None for f in forms) else {
                c: v for f in forms for c, v in (f.scales or {}).items()}
        if features:  # columns no member reads are not checked (as a backend checks only its own)
            codes = {c: v for c, v in codes.items() if c in features}
            scales = None if scales is None else {c: v for c, v in scales.items() if c in features}
        return RowForm(features, signature, codes, scales)

    def _prepare(self, data: Any) -> TabularData:
        self.check_is_fitted()
        return self._data(data)

    def _predict(self, d: TabularData, made: dict[int, Any] | None = None) -> np.ndarray:
        """The combined prediction; ``made``: what members already predicted on ``d`` (see member_predictions)."""
        return self._combine(member_predictions(self.fitted_members(), d, self.task, self.classes_, made), d)

    def _remember_procs(self, d: TabularData | None) -> None:
        """Keep the procs of ``d``, or where it has none (no data, a bare frame) those the members keep."""
        p = None if d is None else d.processor
        self.processor_ = p if p is not None else members_processor(self._members_or_given())

    def _members_or_given(self) -> list:
        try:
            return self.fitted_members()
        except NotFittedError:
            return self.members

    def known_processor(self) -> Any:
        """The procs of the data this ensemble was fitted on, else those its members were trained on (None:
        neither is known)."""
        p = vars(self).get("processor_")
        return p if p is not None else members_processor(self._members_or_given())

    def _scores(self, d: TabularData, metric: Any = None) -> pl.DataFrame:
        """Each member's and the ensemble's score on ``d``, with the member weights where there are some."""
        m = self.scoring_metric(metric)
        y = self.encode_y(d.y)
        preds = member_predictions(self.fitted_members(), d, self.task, self.classes_)
        return self._report_frame([m.score(y, p) for p in preds] + [m.score(y, self._combine(preds, d))], m.name)

    def _report_frame(self, scores: list[float], metric_name: str) -> pl.DataFrame:
        names = [member_name(m, i) for i, m in enumerate(self.fitted_members())] + [type(self).__name__]
        weights = self._weights()
        w = list(np.asarray(weights, dtype=np.float64)) + [1.0] if weights is not None else [None] * len(names)
        return pl.DataFrame({"model": names, metric_name: np.asarray(scores, dtype=np.float64), "weight": w},
                            schema={"model": pl.String, metric_name: pl.Float64, "weight": pl.Float64})

    def _weights(self) -> Any:
        """The member weights, summing to 1 (None for an ensemble that learns its combination)."""
        return None

    def report(self, data: Any = None, metric: Any = None) -> pl.DataFrame:
        """Each member's and the ensemble's score (on ``data``, default the data the ensemble was fitted or
        selected on), with the member weights where the ensemble has them, as a Polars frame (a notebook shows
        it; :meth:`print_report` prints it whole)."""
        if data is None:
            frame = vars(self).get("report_")
            if frame is None:
                raise ParameterError("pass the data to score, e.g. ens.report(ens.process(df)): this ensemble kept "
                                     "no validation scores (a report is not written to files: a loaded ensemble "
                                     "has none)")
        else:
            frame = self._scores(self._labelled(data, "report"), metric)
        return frame

    def print_report(self, data: Any = None, metric: Any = None) -> None:
        """Print :meth:`report` with every row and column (nothing is returned, so it shows once), in what the
        console's encoding writes (ASCII borders where it cannot write Polars' box-drawing ones)."""
        import sys

        from pipekit.data.plotting import _table_text

        print(_table_text(self.report(data, metric), sys.stdout, width=160))

    def processor(self) -> Any:
        """The fitted procs of the data this ensemble was fitted on (or, where it was fitted on none, of the data
        its members were: bagged members and the tabular net keep them), rebuilt from the exported state, to
        process new raw rows (``ens.processor().transform(df)``)."""
        processor = self.known_processor()
        if processor is None:
            raise ParameterError("this ensemble has no procs state: it was not fitted on the splits of a Tabular, and "
                                 "no member keeps the procs it was trained on (each was fitted on a bare frame, or "
                                 "saved before models kept them); fit the ensemble on a split of that Tabular (ens.fit(tab.valid), or "
                                 "ens.fit(tab.train) with members bagged on it), bag the members on a split of a "
                                 "Tabular (BaggedModel keeps its procs), or process rows with the Tabular itself "
                                 "(tab.new(df))")
        return processor


def no_sample_weight(model: Any) -> str:
    """Why ``model`` (an ensemble: a bag, a weighted or stacked ensemble) is refused ``sample_weight``, by its own
    ``fit`` and by ``TabularClassifier(model).fit(X, y, sample_weight=...)`` alike, and what weighs rows.

    >>> from pipekit.backends import GBM
    >>> from pipekit.ensemble import BaggedModel
    >>> no_sample_weight(BaggedModel(GBM("classification"))).split(";")[0]
    'sample_weight: a BaggedModel backend does not pass sample_weight on to its models'
    """
    return (f"sample_weight: a {type(model).__name__} backend does not pass sample_weight on to its models; give one "
            "backend that weighs rows (GBM, RandomForest, ExtraTrees, XGBoost, CatBoost or a scikit-learn model whose "
            "fit takes sample_weight)")
