"""The one interface every non-torch tabular backend implements, plus the shared plumbing.

A backend takes the processed splits of a ``Tabular`` (any object with ``.xs``, a Polars DataFrame of
model inputs, and ``.ys``) and implements::

    model.fit(train, valid=None) -> model
    model.predict(data)          -> np.ndarray   (class probabilities for classification)
    model.predict_proba(data)    -> np.ndarray
    model.score(data, metric=None) -> float
    model.feature_importance()   -> polars.DataFrame (where the model has one)
    model.export(path); load_model(path)          (JSON + arrays in one .npz, no pickled code)

Example:
    >>> import polars as pl
    >>> from pipekit.backends import RandomForest, as_data
    >>> xs = pl.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "b": [1, 0, 1, 0] * 10})
    >>> data = as_data(xs, y=[0, 1, 0, 1] * 10)
    >>> RandomForest("classification", n_estimators=5, n_jobs=1, oob_score=False).fit(data).score(data)
    1.0
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.core.archive import MAX_JSON_BYTES, ExportError, parse_json, read_npz
from pipekit.backends.metrics import (DEFAULT_METRIC, METRICS, TASKS, Metric, check_task,  # noqa: F401
                                    get_metric)

FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------------ data
@dataclass
class TabularData:
    """The model-facing view of one processed split: inputs ``xs`` (Polars, one column per model input),
    the raw target values ``y`` (labels, decoded), which inputs are categorical codes, and a signature of
    the procs/columns that produced them (so models trained on different processing are caught).
    Build it with :func:`as_data`."""

    xs: pl.DataFrame
    y: np.ndarray | None = None
    cat_names: tuple[str, ...] = ()
    y_name: str | None = None
    procs_signature: str | None = None
    source: Any = field(default=None, repr=False)
    processor: Any = field(default=None, repr=False)  # the fitted procs (kept by take/with_xs, unlike source)

    def __len__(self) -> int:
        return self.xs.height

    @property
    def feature_names(self) -> list[str]:
        return list(self.xs.columns)

    def take(self, idx: np.ndarray) -> "TabularData":
        """Rows ``idx`` of this split (the source is dropped: it no longer describes these rows)."""
        idx = np.asarray(idx, dtype=np.int64)
        return replace(self, xs=self.xs[idx], y=None if self.y is None else self.y[idx], source=None)

    def with_xs(self, xs: pl.DataFrame) -> "TabularData":
        if xs.height != self.xs.height:
            raise ValueError(f"new xs has {xs.height} rows, the split has {self.xs.height}")
        return replace(self, xs=xs, source=None)

    def matrix(self, columns: Sequence[str], order: str = "C", dtype=np.float32) -> np.ndarray:
        """The inputs as one 2-D array in ``columns`` order, written column by column straight from the
        Arrow buffers into the layout the backend consumes (one copy, no intermediate frame)."""
        missing = [c for c in columns if c not in self.xs.columns]
        if missing:
            raise KeyError(
                f"column(s) {missing} missing from the data; the model was trained on {list(columns)}. "
                "Process new data with the same Tabular (tab.new(df)) so every input column exists.")
        out = np.empty((self.xs.height, len(columns)), dtype=dtype, order=order)
        for j, c in enumerate(columns):
            s = self.xs.get_column(c)
            if s.dtype == pl.String or s.dtype == pl.Categorical or s.dtype == pl.Enum:
                raise TypeError(f"column {c!r} holds {s.dtype} values (e.g. {s.drop_nulls().head(1).to_list()}); "
                                "backends need numbers: run Categorify on it first")
            out[:, j] = s.to_numpy()  # nulls come out as NaN for floats
        return out


def _ys_to_array(ys: Any) -> np.ndarray | None:
    if ys is None:
        return None
    if isinstance(ys, pl.DataFrame):
        if ys.width != 1:
            raise ValueError(f"only single-target models are supported; ys has columns {ys.columns}")
        ys = ys.to_series()
    if isinstance(ys, pl.Series):
        return ys.to_numpy()
    if hasattr(ys, "numpy") and not isinstance(ys, np.ndarray):  # torch tensors
        ys = ys.detach().cpu().numpy()
    arr = np.asarray(ys)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"only single-target models are supported; ys has shape {arr.shape}")
    return arr


def _decode_y(split: Any, y: np.ndarray | None) -> np.ndarray | None:
    """Integer target codes become their labels when the split knows its target vocabulary, so that
    class order is defined by label, never by code."""
    if y is None or not np.issubdtype(y.dtype, np.integer):
        return y
    for owner in (split, getattr(split, "tabular", None), getattr(split, "parent", None)):
        vocab = getattr(owner, "y_vocab", None) if owner is not None else None
        if vocab is not None:
            vocab = np.asarray(list(vocab))
            if len(y) and (y.min() < 0 or y.max() >= len(vocab)):
                raise ValueError(f"target code {int(y.max())} is outside the target vocabulary of {len(vocab)}")
            return vocab[y]
    return y


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.ndarray, np.generic)):
        return v.tolist()
    return str(v)


def _signature(split: Any) -> str | None:
    """A short hash of the fitted procs' state, so models trained on differently processed data are caught."""
    processor = getattr(split, "processor", None)
    state_fn = getattr(processor, "state", None)
    if callable(state_fn):
        blob = json.dumps(state_fn(), sort_keys=True, default=_json_default).encode()
        return hashlib.sha1(blob).hexdigest()[:16]
    for owner in (split, getattr(split, "tabular", None), getattr(split, "parent", None)):
        if owner is None:
            continue
        fn = getattr(owner, "procs_signature", None)
        if fn is not None:
            return fn() if callable(fn) else str(fn)
        state = getattr(owner, "procs_state", None)
        if state is not None:
            state = state() if callable(state) else state
            blob = json.dumps(state, sort_keys=True, default=_json_default).encode()
            return hashlib.sha1(blob).hexdigest()[:16]
    return None


def as_data(obj: Any, y: Any = None, cat_names: Sequence[str] | None = None) -> TabularData:
    """Normalise a processed split (``tab.train``/``tab.valid`` or anything with ``.xs``/``.ys``), a Polars
    DataFrame of inputs (plus optional ``y``), or a ``TabularData`` into a :class:`TabularData`.

    Categorical inputs are taken from the split's ``cat_names`` (plus their ``<col>_na`` flags); for a
    bare frame pass ``cat_names`` or integer columns are taken as category codes.
    """
    if isinstance(obj, TabularData):
        if y is not None:
            return replace(obj, y=_ys_to_array(y))
        return obj
    if isinstance(obj, pl.DataFrame):
        xs, ys, split = obj, y, None
    elif hasattr(obj, "xs"):
        xs, ys, split = obj.xs, (y if y is not None else getattr(obj, "ys", None)), obj
    else:
        raise TypeError(f"expected a Tabular split (with .xs/.ys), a polars DataFrame or TabularData, "
                        f"got {type(obj).__name__}")
    if not isinstance(xs, pl.DataFrame):
        raise TypeError(f".xs must be a polars DataFrame, got {type(xs).__name__}")
    yarr = _decode_y(split, _ys_to_array(ys))
    if yarr is not None and len(yarr) != xs.height:
        raise ValueError(f"xs has {xs.height} rows but ys has {len(yarr)}; they must describe the same rows")
    if cat_names is None and split is not None:
        cat_names = getattr(split, "cat_names", None)
    if cat_names is None:
        cats = [c for c, t in xs.schema.items() if t.is_integer()]
    else:
        cats = [c for c in cat_names if c in xs.columns]
    y_names = getattr(split, "y_names", None) if split is not None else None
    y_name = y_names[0] if isinstance(y_names, (list, tuple)) and y_names else (y_names or None)
    return TabularData(xs=xs, y=yarr, cat_names=tuple(cats), y_name=y_name,
                       procs_signature=_signature(split) if split is not None else None, source=split,
                       processor=getattr(split, "processor", None))


def check_no_infinite(d: TabularData, columns: Sequence[str], where: str) -> None:
    """Refuse +/-inf in the model inputs ``columns`` of ``d``, naming the column and the first row.

    NaN stays allowed (the backends treat it as missing); an infinite value would be split on or
    averaged as a number and give a wrong answer without a word. One pass over the float columns.
    """
    cols = [c for c in columns if c in d.xs.columns and d.xs.schema[c].is_float()]
    if not cols:
        return
    counts = d.xs.select([pl.col(c).is_infinite().sum().alias(c) for c in cols]).row(0)
    for c, n in zip(cols, counts):
        if n:
            s = d.xs.get_column(c)
            row = int(s.is_infinite().arg_true()[0])
            raise ValueError(f"{where}: column {c!r} holds {s[row]} at row {row} ({n} infinite value(s) in that "
                             "column); models need finite inputs. Put FillMissing in the procs (it treats inf as "
                             "missing) or clean the column.")


# -------------------------------------------------------------------------------------- serialisation
def save_npz(path: str | Path, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """One file: ``meta`` as JSON plus named arrays, readable with ``allow_pickle=False``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    for k, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise TypeError(f"array {k!r} holds Python objects and cannot be exported without pickling")
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, __meta__=blob, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def load_npz(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file written by :func:`save_npz`, read through the bounded archive reader
    (sizes checked before inflating, arrays without pickle, JSON size and depth capped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        arrays = read_npz(path, where=str(path), limits={"__meta__": MAX_JSON_BYTES})
    except ExportError as e:
        raise ExportError(f"{e}; it is not a pipekit model file load_model accepts") from None
    meta = arrays.pop("__meta__", None)
    if meta is None:
        raise ExportError(f"{path} is not a pipekit model file (no __meta__ entry)")
    if meta.dtype != np.uint8 or meta.ndim != 1:
        raise ExportError(f"{path}: member '__meta__.npy' must be the JSON metadata as 1-D uint8, got "
                          f"{meta.dtype} of shape {meta.shape}")
    meta = parse_json(meta, where=f"{path}: member '__meta__.npy'")
    if not isinstance(meta, dict):
        raise ExportError(f"{path}: member '__meta__.npy' must hold a JSON object, got {type(meta).__name__}")
    return meta, arrays


def to_jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    return v


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Make a class loadable by name from an exported file (no code is ever unpickled)."""
    _REGISTRY[cls.__name__] = cls
    return cls


def state_to_file(obj: Any) -> tuple[dict, dict[str, np.ndarray]]:
    meta, arrays = obj.to_state()
    meta = {"class": type(obj).__name__, "format": FORMAT_VERSION, **meta}
    return meta, arrays


# what a state's from_state raises when a field has the wrong type or is missing
_STATE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError)


def object_from_state(meta: dict, arrays: dict[str, np.ndarray], where: str = "model") -> Any:
    """Rebuild a model or ensemble from its file state: the one way a model file becomes an object.

    The class is looked up in the registry of classes pipekit made loadable (:func:`register`), never
    imported by a name read from the file; nested models (ensemble members, meta-models) come back through
    this same function. Any malformed field raises :class:`ExportError` naming ``where`` and the class.
    """
    if not isinstance(meta, dict):
        raise ExportError(f"{where}: the state must be a JSON object, got {type(meta).__name__}")
    name = meta.get("class")
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ExportError(f"{where}: class {name!r} is not loadable; loadable classes: {sorted(_REGISTRY)} "
                          "(importing pipekit.ensemble makes the ensembles loadable)")
    try:
        return _REGISTRY[name].from_state(meta, arrays)
    except ExportError as e:
        raise ExportError(f"{where} ({name}): {e}") from None
    except _STATE_ERRORS as e:
        raise ExportError(f"{where} ({name}): the file state is malformed ({type(e).__name__}: {e})") from e


def nest(prefix: str, meta: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """Namespace a member's arrays so an ensemble file can hold many models."""
    return meta, {f"{prefix}/{k}": v for k, v in arrays.items()}


def unnest(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}


def load_model(path: str | Path) -> Any:
    """Load any model or ensemble written by ``export`` (JSON + arrays; loading never executes code).

    Example:
        >>> # model.export("rf.npz"); model = load_model("rf.npz")
    """
    meta, arrays = load_npz(path)
    return object_from_state(meta, arrays, where=str(path))


def bytes_to_array(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8).copy()


def array_to_bytes(a: np.ndarray) -> bytes:
    return np.asarray(a, dtype=np.uint8).tobytes()


# ----------------------------------------------------------------------------------------- base model
class Backend:
    """Shared behaviour of the non-torch backends. Subclasses set ``_param_names`` and implement
    ``_fit(data, valid)``, ``_predict_raw(data)`` (probabilities or values) and ``to_state``/``from_state``.

    Fitted attributes: ``feature_names_``, ``cat_features_``, ``classes_`` (classification, labels sorted),
    ``procs_signature_``.
    """

    _param_names: tuple[str, ...] = ()
    task: str
    name: str | None = None  # display name in ensemble reports and error messages (set freely)

    # -- params ---------------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names}

    def clone(self) -> "Backend":
        """An unfitted copy with the same parameters (used by stacking's k-fold)."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "feature_names_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(train, valid) first")

    # -- data -----------------------------------------------------------------------------------------
    def _setup(self, train: TabularData) -> None:
        if train.y is None:
            raise ValueError("the training split has no targets (ys); pass a labelled split to fit")
        if len(train) == 0:
            raise ValueError("the training split is empty")
        check_no_infinite(train, train.feature_names, f"{type(self).__name__}.fit")
        self.feature_names_ = list(train.feature_names)
        self.cat_features_ = [c for c in train.cat_names if c in self.feature_names_]
        self.procs_signature_ = train.procs_signature
        self.y_name_ = train.y_name
        if self.task == "classification":
            y = train.y
            if y.dtype.kind == "f" and np.isnan(y).any():
                raise ValueError("the training target has NaN values; drop or fill those rows first")
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(f"classification needs at least 2 classes in train; found {self.classes_.tolist()}")
        else:
            y = np.asarray(train.y, dtype=np.float64)
            if np.isnan(y).any():
                raise ValueError(f"the training target has {int(np.isnan(y).sum())} NaN values; drop those rows")

    def encode_y(self, y: np.ndarray) -> np.ndarray:
        """Targets as the model sees them: class indices into ``classes_`` or float64 values."""
        if self.task == "regression":
            return np.asarray(y, dtype=np.float64)
        y = np.asarray(y)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if bad.any():
            raise ValueError(f"label {y[bad][0].item()!r} (row {int(np.flatnonzero(bad)[0])}) was not seen in training; "
                             f"known classes: {self.classes_.tolist()}")
        return idx.astype(np.int64)

    def _data(self, data: Any) -> TabularData:
        self._check_fitted()
        d = as_data(data, cat_names=self.cat_features_ if isinstance(data, pl.DataFrame) else None)
        if len(d) == 0:
            raise ValueError(f"the data passed to {type(self).__name__} has no rows")
        self.check_compatible(d)
        check_no_infinite(d, self.feature_names_, type(self).__name__)
        return d

    def check_compatible(self, d: TabularData) -> None:
        missing = [c for c in self.feature_names_ if c not in d.xs.columns]
        if missing:
            raise KeyError(f"column(s) {missing} missing from the data passed to {type(self).__name__}; it was "
                           "trained on those inputs. Process new data with the same Tabular (tab.new(df)).")
        if (self.procs_signature_ is not None and d.procs_signature is not None
                and d.procs_signature != self.procs_signature_):
            raise ValueError(f"{type(self).__name__} was trained on data processed by different procs "
                             f"(signature {self.procs_signature_} vs {d.procs_signature}); use the same Tabular")

    def matrix(self, d: TabularData, order: str = "C") -> np.ndarray:
        return d.matrix(self.feature_names_, order=order)

    # -- predictions ----------------------------------------------------------------------------------
    def fit(self, train: Any, valid: Any = None) -> "Backend":
        raise NotImplementedError

    def _predict_raw(self, d: TabularData) -> np.ndarray:
        raise NotImplementedError

    def predict(self, data: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) in ``classes_`` order for classification, values (n,) for
        regression."""
        return self._predict_raw(self._data(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        if self.task != "classification":
            raise ValueError(f"predict_proba needs a classification model; this one is {self.task!r}")
        return self.predict(data)

    def predict_labels(self, data: Any) -> np.ndarray:
        """Most likely class label per row (classification only)."""
        return self.classes_[self.predict_proba(data).argmax(1)]

    def score(self, data: Any, metric: str | Metric | None = None) -> float:
        """``metric`` (default accuracy / rmse) of the predictions on a labelled split."""
        d = self._data(data)
        if d.y is None:
            raise ValueError("score needs a labelled split (with ys)")
        return get_metric(metric, self.task)(self.encode_y(d.y), self._predict_raw(d))

    def feature_importance(self) -> pl.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} has no built-in feature importance; "
                                  "use pipekit.ensemble.permutation_importance")

    # -- export ---------------------------------------------------------------------------------------
    def _base_state(self) -> dict:
        self._check_fitted()
        meta = {"params": to_jsonable(self.get_params()), "feature_names": self.feature_names_,
                "cat_features": self.cat_features_, "procs_signature": self.procs_signature_,
                "y_name": self.y_name_, "name": self.name}
        if self.task == "classification":
            meta["classes"] = to_jsonable(self.classes_)
        return meta

    def _restore_base(self, meta: dict) -> None:
        self.feature_names_ = list(meta["feature_names"])
        self.cat_features_ = list(meta["cat_features"])
        self.procs_signature_ = meta.get("procs_signature")
        self.y_name_ = meta.get("y_name")
        if meta.get("name"):
            self.name = meta["name"]
        if "classes" in meta:
            self.classes_ = np.asarray(meta["classes"])

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "Backend":
        raise NotImplementedError

    def export(self, path: str | Path) -> Path:
        """Write the fitted model to one ``.npz`` (JSON metadata + arrays); load with ``load_model``."""
        meta, arrays = state_to_file(self)
        return save_npz(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Backend":
        obj = load_model(path)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def feature_frame(names: Sequence[str], values: np.ndarray, column: str = "importance") -> pl.DataFrame:
    return pl.DataFrame({"feature": list(names), column: np.asarray(values, dtype=np.float64)}).sort(
        column, descending=True)


@dataclass
class Contributions:
    """Per-row additive explanation: ``bias + values.sum(features) == prediction`` (per class for
    classification). For a forest ``prediction`` is the probability / value; for a GBM it is the raw score
    (log-odds for binary, per-class raw scores for multiclass, the value for regression).

    ``bias``: (n,) or (n, n_classes); ``values``: (n, n_features) or (n, n_features, n_classes).
    """

    bias: np.ndarray
    values: np.ndarray
    feature_names: list[str]
    prediction: np.ndarray
    space: str  # "probability", "raw_score" or "value"
    classes: np.ndarray | None = None

    def frame(self, row: int, cls: int | None = None) -> pl.DataFrame:
        """Contributions of one row as a frame (feature, contribution) sorted by magnitude."""
        v = self.values[row]
        if v.ndim == 2:
            v = v[:, 1 if cls is None and v.shape[1] == 2 else (cls or 0)]
        return pl.DataFrame({"feature": self.feature_names, "contribution": v.astype(np.float64)}).sort(
            pl.col("contribution").abs(), descending=True)
