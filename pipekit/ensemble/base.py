"""What every ensemble shares: checking that members fit together, collecting their predictions aligned
by class label, scoring, reports and export of the members."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.backends.base import (ExportError, Metric, TabularData, as_data, get_metric, object_from_state,
                                 state_to_file, to_jsonable, unnest)


def member_name(member: Any, i: int) -> str:
    """``"<i>:<name>"``, using a member's ``name`` attribute when it has one."""
    return f"{i}:{getattr(member, 'name', None) or type(member).__name__}"


def as_member_list(members: Any) -> list:
    """Members as a list; a dict ``{name: model}`` names its models for reports and error messages."""
    if isinstance(members, dict):
        for name, m in members.items():
            try:
                m.name = str(name)
            except AttributeError as e:  # a model class that refuses new attributes keeps its class name
                raise TypeError(f"member {name!r} ({type(m).__name__}) cannot take a name") from e
        return list(members.values())
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
        raise ValueError("members must be a non-empty list of models or a dict {name: model}")
    return list(members)


def check_members(members: Sequence[Any], check_columns: bool = True, fitted: bool = True) -> tuple[str, Any]:
    """Validate that ``members`` can be combined; returns ``(task, classes)`` (classes sorted by label)."""
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence) or len(members) == 0:
        raise ValueError("members must be a non-empty list of models")
    for i, m in enumerate(members):
        if not (hasattr(m, "predict") and hasattr(m, "task")):
            raise TypeError(f"member {member_name(m, i)} has no predict/task; members must be pipekit backends "
                            "(RandomForest, GBM, SklearnModel, TorchTabular)")
    tasks = {m.task for m in members}
    if len(tasks) > 1:
        raise ValueError(f"members mix tasks {sorted(tasks)}: " +
                         ", ".join(f"{member_name(m, i)}={m.task}" for i, m in enumerate(members)))
    task = tasks.pop()
    if not fitted:
        return task, None
    for i, m in enumerate(members):
        if not getattr(m, "is_fitted", True):
            raise RuntimeError(f"member {member_name(m, i)} is not fitted; fit it first (or use StackingEnsemble, "
                               "which fits its members)")
    ref = members[0]
    for i, m in enumerate(members[1:], start=1):
        sa, sb = getattr(ref, "procs_signature_", None), getattr(m, "procs_signature_", None)
        if sa is not None and sb is not None and sa != sb:
            raise ValueError(f"members were trained on data processed by different procs: {member_name(ref, 0)} "
                             f"(signature {sa}) vs {member_name(m, i)} (signature {sb}); train every member on "
                             "the same Tabular")
        if check_columns:
            fa, fb = list(getattr(ref, "feature_names_", [])), list(getattr(m, "feature_names_", []))
            if fa and fb and set(fa) != set(fb):
                only_a = sorted(set(fa) - set(fb))
                only_b = sorted(set(fb) - set(fa))
                raise ValueError(f"members were trained on different columns: {member_name(ref, 0)} has {only_a} "
                                 f"that {member_name(m, i)} lacks, and it has {only_b}; train them on the same "
                                 "Tabular, or pass check_columns=False if the difference is intended")
    classes = None
    if task == "classification":
        classes = np.asarray(ref.classes_)
        for i, m in enumerate(members[1:], start=1):
            if set(np.asarray(m.classes_).tolist()) != set(classes.tolist()):
                raise ValueError(f"members disagree on the classes: {member_name(ref, 0)} has {classes.tolist()}, "
                                 f"{member_name(m, i)} has {np.asarray(m.classes_).tolist()}")
        classes = np.sort(classes)
    return task, classes


def align_classes(pred: np.ndarray, member_classes: Sequence, classes: np.ndarray) -> np.ndarray:
    """Reorder probability columns from a member's class order to ``classes`` (matched by label)."""
    member_classes = np.asarray(member_classes).tolist()
    order = [member_classes.index(c) for c in classes.tolist()]
    return pred[:, order]


def validate_prediction(pred: Any, n_rows: int, name: str, task: str, n_classes: int | None) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape[0] != n_rows:
        raise ValueError(f"member {name} returned {pred.shape[0]} predictions for {n_rows} rows; every member "
                         "must predict every row of the same data")
    if task == "classification" and (pred.ndim != 2 or pred.shape[1] != n_classes):
        raise ValueError(f"member {name} returned predictions of shape {pred.shape}; expected ({n_rows}, "
                         f"{n_classes}) class probabilities")
    if task == "regression":
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.ndim != 1:
            raise ValueError(f"member {name} returned shape {pred.shape}; expected ({n_rows},) values")
    bad = ~np.isfinite(pred)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"member {name} predicted {int(bad.sum())} NaN/inf values (first at row {row}); check "
                         "that model (diverged training, or inputs it never saw)")
    return pred


def member_predictions(members: Sequence[Any], data: TabularData, task: str,
                       classes: np.ndarray | None) -> np.ndarray:
    """Stacked predictions ``(n_members, n_rows[, n_classes])``, classes aligned by label."""
    out = []
    for i, m in enumerate(members):
        name = member_name(m, i)
        try:
            p = m.predict(data)
        except KeyError as e:
            raise KeyError(f"member {name}: {e.args[0] if e.args else e}") from e
        if task == "classification":
            p = np.asarray(p, dtype=np.float64)
            if p.ndim == 2 and p.shape[1] == len(classes):
                p = align_classes(p, m.classes_, classes)
        out.append(validate_prediction(p, len(data), name, task, None if classes is None else len(classes)))
    return np.stack(out)


def encode_targets(y: np.ndarray, task: str, classes: np.ndarray | None) -> np.ndarray:
    if y is None:
        raise ValueError("this needs a labelled split (with ys)")
    if task == "regression":
        return np.asarray(y, dtype=np.float64)
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    bad = classes[idx] != y
    if bad.any():
        raise ValueError(f"label {np.asarray(y)[bad][0]!r} is not one of the members' classes {classes.tolist()}")
    return idx


class EnsembleBase:
    """Shared plumbing: ``predict``, ``predict_proba``, ``predict_labels``, ``score``, ``report``,
    ``export``/``load_model`` (members included, plus the procs state of the data they were fitted on)."""

    members: list
    metric: Any
    task: str
    classes_: np.ndarray | None

    def _combine(self, preds: np.ndarray, data: TabularData) -> np.ndarray:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "weights_") or hasattr(self, "meta_model_")

    def _metric(self) -> Metric:
        return get_metric(self.metric, self.task)

    def _prepare(self, data: Any) -> TabularData:
        d = as_data(data)
        if d.procs_signature is not None:
            for i, m in enumerate(self.members):
                sig = getattr(m, "procs_signature_", None)
                if sig is not None and sig != d.procs_signature:
                    raise ValueError(f"member {member_name(m, i)} was trained on data processed by different procs "
                                     f"than the data given (signature {sig} vs {d.procs_signature})")
        return d

    def _remember_procs(self, d: TabularData) -> None:
        processor = getattr(d.source, "processor", None)
        state = getattr(processor, "state", None)
        self.procs_state_ = to_jsonable(state()) if callable(state) else None

    def predict(self, data: Any) -> np.ndarray:
        """Probabilities (n, n_classes) in ``classes_`` order, or values (n,)."""
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        d = self._prepare(data)
        return self._combine(member_predictions(self.members, d, self.task, self.classes_), d)

    def predict_proba(self, data: Any) -> np.ndarray:
        if self.task != "classification":
            raise ValueError("predict_proba needs a classification ensemble")
        return self.predict(data)

    def predict_labels(self, data: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(data).argmax(1)]

    def encode_y(self, y: np.ndarray) -> np.ndarray:
        return encode_targets(y, self.task, self.classes_)

    def score(self, data: Any, metric: Any = None) -> float:
        d = self._prepare(data)
        m = get_metric(metric if metric is not None else self.metric, self.task)
        return m(self.encode_y(d.y), self.predict(d))

    def report(self, data: Any = None, metric: Any = None) -> pl.DataFrame:
        """Each member's and the ensemble's score (on ``data``, default the data the ensemble was fitted or
        selected on), with the member weights where the ensemble has them. Printed and returned."""
        if data is None:
            if getattr(self, "report_", None) is None:
                raise ValueError("pass the data to score (this ensemble kept no validation scores)")
            frame = self.report_
        else:
            d = self._prepare(data)
            m = get_metric(metric if metric is not None else self.metric, self.task)
            y = self.encode_y(d.y)
            preds = member_predictions(self.members, d, self.task, self.classes_)
            scores = [m(y, p) for p in preds] + [m(y, self._combine(preds, d))]
            frame = self._report_frame(scores, m.name)
        print(frame)
        return frame

    def _report_frame(self, scores: list[float], metric_name: str) -> pl.DataFrame:
        names = [member_name(m, i) for i, m in enumerate(self.members)] + [type(self).__name__]
        weights = getattr(self, "weights_", None)
        w = list(np.asarray(weights, dtype=np.float64)) + [1.0] if weights is not None else [None] * len(names)
        return pl.DataFrame({"model": names, metric_name: np.asarray(scores, dtype=np.float64), "weight": w})

    # -- export ---------------------------------------------------------------------------------------
    def _members_state(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        metas, arrays = [], {}
        for i, m in enumerate(self.members):
            if not hasattr(m, "to_state"):
                raise TypeError(f"member {member_name(m, i)} cannot be exported (no to_state)")
            meta, arr = state_to_file(m)
            metas.append(meta)
            arrays.update({f"member{i}/{k}": v for k, v in arr.items()})
        return metas, arrays

    @staticmethod
    def _members_from_state(metas: list[dict], arrays: dict[str, np.ndarray]) -> list:
        """Members come back through ``object_from_state``, the same guarded path as a model file."""
        if not isinstance(metas, list) or not metas:
            raise ExportError("'members' must be a non-empty JSON list of member states")
        return [object_from_state(meta, unnest(f"member{i}", arrays), where=f"member {i}")
                for i, meta in enumerate(metas)]

    def export(self, path: Any):
        """Write the ensemble, every member, and the procs state of its data into one ``.npz``."""
        from pipekit.backends.base import save_npz

        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to export")
        meta, arrays = state_to_file(self)
        return save_npz(path, meta, arrays)

    def processor(self) -> Any:
        """The fitted procs of the data this ensemble was fitted on, rebuilt from the exported state, to
        process new raw rows (``ens.processor().transform(df)``)."""
        if getattr(self, "procs_state_", None) is None:
            raise ValueError("this ensemble was fitted on data without procs state (not from a Tabular)")
        from pipekit.tabular.processor import TabularProcessor

        return TabularProcessor.from_state(self.procs_state_)
