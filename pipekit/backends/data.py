"""What a backend reads: :class:`TabularData`, one processed split as model inputs and targets.

``as_data`` turns a processed split of a ``Tabular`` (anything following
:class:`pipekit.core.protocols.ProcessedSplit`), a Polars DataFrame of inputs (plus targets) or a
``TabularData`` into one; ``encode_y`` turns targets into what models fit on (class indices or floats).

Example:
    >>> import polars as pl
    >>> d = as_data(pl.DataFrame({"a": [0.5, 1.5], "c": [1, 2]}), y=["no", "yes"])
    >>> d.cat_names, encode_y(d.y, "classification", np.array(["no", "yes"])).tolist()
    (('c',), [0, 1])
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

import numpy as np
import polars as pl

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.protocols import ProcessedSplit
from pipekit.core.validate import past_float32

TASKS = ("classification", "regression")


@dataclass
class TabularData:
    """The model-facing view of one processed split: inputs ``xs`` (Polars, one column per model input),
    the target values ``y`` (labels, decoded), which inputs are categorical codes, the fitted processing
    that produced them (``processor``) and its signature (so models trained on differently processed data
    are caught). Build it with :func:`as_data`.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import as_data
    >>> d = as_data(pl.DataFrame({"a": [0.5, 1.5, 2.5], "c": [1, 2, 1]}), y=["no", "yes", "no"])
    >>> len(d), d.feature_names, d.cat_names
    (3, ['a', 'c'], ('c',))
    >>> d.take(np.array([2, 0])).y.tolist()
    ['no', 'no']
    """

    xs: pl.DataFrame
    y: np.ndarray | None = None
    cat_names: tuple[str, ...] = ()
    procs_signature: str | None = None
    processor: Any = field(default=None, repr=False)
    #: each row's weight in the loss (``fit(..., sample_weight=w)``), or None: every row counts once
    weight: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.xs.height

    @property
    def feature_names(self) -> list[str]:
        return list(self.xs.columns)

    def take(self, idx: np.ndarray) -> TabularData:
        """Rows ``idx`` of this split."""
        idx = np.asarray(idx, dtype=np.int64)
        return replace(self, xs=self.xs[idx], y=None if self.y is None else self.y[idx],
                       weight=None if self.weight is None else self.weight[idx])

    def with_xs(self, xs: pl.DataFrame) -> TabularData:
        """The same rows with other inputs (e.g. one column shuffled)."""
        if xs.height != self.xs.height:
            raise ParameterError(f"new xs has {xs.height} rows, the split has {self.xs.height}")
        return replace(self, xs=xs)

    def check_columns(self, columns: Sequence[str], what: str = "column(s)", named: bool = False) -> None:
        """Every one of ``columns`` is an input; the error names the missing ones. ``named``: the user named them
        (features to explain), so a name is more likely mistyped than the data processed another way."""
        have = set(self.xs.columns)
        missing = [c for c in columns if c not in have]
        if missing:
            fix = ("name columns of the data" if named else
                   "process new data with the same Tabular (tab.new(df)) so every input column exists")
            raise DataError(f"{what} {missing} missing from the data (its columns: {self.feature_names}); {fix}")

    def select(self, columns: str | Sequence[str]) -> TabularData:
        """The split with only the input ``columns``, in that order (the book's ``xs[to_keep]``): the same rows,
        targets and procs, its categorical inputs still categorical. A model fitted on it reads those columns of
        any split of the same Tabular.

        >>> d = as_data(pl.DataFrame({"a": [0.5, 1.5], "b": [1.0, 2.0], "c": [1, 2]}), y=[0, 1])
        >>> d.select(["c", "a"]).feature_names, d.select(["c", "a"]).cat_names, d.drop("b").feature_names
        (['c', 'a'], ('c',), ['a', 'c'])
        >>> d.select(["a", "age"])
        Traceback (most recent call last):
        ...
        pipekit.core.errors.DataError: select: column(s) ['age'] are not inputs of this split; its inputs are ['a', 'b', 'c']
        """
        keep = self._known(columns, "select")
        if not keep:
            raise DataError("select: no columns given; a split needs at least one input")
        return replace(self, xs=self.xs.select(keep), cat_names=tuple(c for c in self.cat_names if c in keep))

    def drop(self, columns: str | Sequence[str]) -> TabularData:
        """The split without the input ``columns`` (see :meth:`select`)."""
        gone = self._known(columns, "drop")
        return replace(self, xs=self.xs.drop(gone), cat_names=tuple(c for c in self.cat_names if c not in gone))

    def _known(self, columns: str | Sequence[str], what: str) -> list[str]:
        """``columns`` (one name or several, each once) where every one is an input; the error names the others."""
        names = [columns] if isinstance(columns, str) else list(columns)
        if not all(isinstance(c, str) for c in names):
            raise ParameterError(f"{what}: columns must be column names (text), got {names[:5]}")
        have = set(self.xs.columns)
        unknown = [c for c in names if c not in have]
        if unknown:
            raise DataError(f"{what}: column(s) {unknown} are not inputs of this split; its inputs are "
                            f"{self.feature_names}")
        return list(dict.fromkeys(names))

    def matrix(self, columns: Sequence[str], order: Literal["C", "F"] = "C", dtype: Any = None) -> np.ndarray:
        """The inputs as one 2-D array in ``columns`` order, written column by column straight from the
        Arrow buffers into the layout the backend consumes (one copy, no intermediate frame). ``dtype`` None: float32,
        or float64 where one of ``columns`` is a column the processing keeps Float64 (its ``cont_float64_``: values
        float32 cannot hold as whole numbers, ids and large counts), so a tree can split between neighbouring
        values; the processing decides it once, so a model reads its training and its new rows alike. Data without
        processing (a bare frame) is read as float64 where a Float64 column holds a value past
        :data:`~pipekit.core.validate.FLOAT32_EXACT`."""
        self.check_columns(columns, "the model's input column(s)")
        self.check_numbers(columns)
        if dtype is None and self.processor is not None:
            wide = set(getattr(self.processor, "cont_float64_", None) or ())
            dtype = np.float64 if any(c in wide for c in columns) else np.float32
        elif dtype is None:
            schema = self.xs.schema
            floats = [c for c in columns if schema[c] == pl.Float64]
            past = bool(floats) and any(self.xs.select(past_float32(pl.col(c)).any() for c in floats).row(0))
            dtype = np.float64 if past else np.float32
        out = np.empty((self.xs.height, len(columns)), dtype=dtype, order=order)
        for j, c in enumerate(columns):
            out[:, j] = self.xs.get_column(c).to_numpy()  # nulls come out as NaN for floats
        return out

    def check_numbers(self, columns: Sequence[str]) -> None:
        """Every one of the input ``columns`` holds numbers; the error names the first that holds text."""
        for c in columns:
            s = self.xs.get_column(c)
            if s.dtype == pl.String or isinstance(s.dtype, (pl.Categorical, pl.Enum)):
                kind = "String" if s.dtype == pl.String else type(s.dtype).__name__
                raise DataError(f"column {c!r} holds {kind} values (e.g. {s.drop_nulls().head(1).to_list()}); "
                                "backends need numbers: run Categorify on it first, or for new rows of a Tabular pass "
                                "them processed by it (tab.new(df))")


def _ys_to_array(ys: Any) -> np.ndarray | None:
    if ys is None:
        return None
    if isinstance(ys, pl.DataFrame):
        if ys.width != 1:
            raise DataError(f"only single-target models are supported; ys has columns {ys.columns}")
        ys = ys.to_series()
    if isinstance(ys, pl.Series):
        ys = ys.to_numpy()
    elif type(ys).__module__.startswith("torch"):
        ys = ys.detach().cpu().numpy()
    arr = np.asarray(ys)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"only single-target models are supported; ys has shape {arr.shape}")
    if arr.dtype == object:  # Polars hands text out as Python objects; labels are stored as text arrays
        arr = np.asarray(arr.tolist())
    return arr


def procs_signature(processor: Any) -> str | None:
    """A short hash of fitted processing's state, so models trained on differently processed data are caught."""
    if processor is None:
        return None
    record = processor.to_record()
    # fields that only say how labels decode, not how inputs are encoded (the processor's signature_ignores): left
    # out, the signature of a bool or integer target's processing is the one files written before them hold
    ignored: frozenset[str] = getattr(processor, "signature_ignores", frozenset())
    record = {**record, "state": {k: v for k, v in (record.get("state") or {}).items() if k not in ignored}}
    blob = json.dumps(record, sort_keys=True, default=lambda v: np.asarray(v).tolist()).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def _as_polars(obj: Any) -> Any:
    """pandas frames, pandas Series (one row) and dicts (one row) as Polars frames; anything else as it is."""
    kind = type(obj).__module__.split(".")[0]
    if kind == "pandas" and type(obj).__name__ == "DataFrame":
        return pl.from_pandas(obj)
    if kind == "pandas" and type(obj).__name__ == "Series":
        return pl.DataFrame([obj.to_dict()])
    if isinstance(obj, dict):
        return pl.DataFrame([obj])
    return obj


def as_data(obj: Any, y: Any = None, cat_names: Sequence[str] | None = None) -> TabularData:
    """A :class:`TabularData` from a processed split (``tab.train``, ``tab.valid``, ``tab.new(df)``), a
    Polars or pandas DataFrame of inputs (plus ``y``), one row of them (a dict or a pandas Series) or a
    ``TabularData``.

    A split's target codes become their labels (class order is defined by label, never by code) and its
    ``cat_names`` say which inputs are categorical; for a bare frame pass ``cat_names``, or integer
    columns are taken as category codes.

    >>> import pandas as pd, polars as pl
    >>> from pipekit.backends import as_data
    >>> d = as_data(pl.DataFrame({"age": [30.0, 41.0], "edu": [3, 5]}), y=[0, 1], cat_names=["edu"])
    >>> d.cat_names, d.xs.shape, d.y.tolist()
    (('edu',), (2, 2), [0, 1])
    >>> as_data(pd.DataFrame({"age": [30.0], "hours": [40.0]})).cat_names  # float columns only: no categories
    ()
    """
    if isinstance(obj, TabularData):
        return obj if y is None else replace(obj, y=_ys_to_array(y))
    obj = _as_polars(obj)
    if isinstance(obj, pl.DataFrame):
        xs, yarr, processor = obj, _ys_to_array(y), None
    elif isinstance(obj, ProcessedSplit):
        xs, yarr, processor = obj.inputs, _ys_to_array(y if y is not None else obj.targets), obj.processor
        if yarr is not None and obj.y_vocab is not None and yarr.dtype.kind in "iu":
            # the classes in the target's own type where the processing records it (a bool target's False/True),
            # as a Tabular's learner decodes them
            vocab = np.asarray(list(target_classes(obj)))
            if len(yarr) and (yarr.min() < 0 or yarr.max() >= len(vocab)):
                raise DataError(f"target code {int(yarr.max())} is outside the target vocabulary of {len(vocab)}")
            yarr = vocab[yarr]
        cat_names = obj.cat_names if cat_names is None else cat_names
    else:
        raise ParameterError(f"expected a processed split of a Tabular (tab.train, tab.new(df)), a polars DataFrame "
                             f"or TabularData, got {type(obj).__name__}")
    if not isinstance(xs, pl.DataFrame):
        raise ParameterError(f".xs must be a polars DataFrame, got {type(xs).__name__}")
    if yarr is not None and len(yarr) != xs.height:
        raise DataError(f"xs has {xs.height} rows but ys has {len(yarr)}; they must describe the same rows")
    have = xs.schema  # read once: a wide frame rebuilds it on every access
    cats = ([c for c, t in have.items() if t.is_integer()] if cat_names is None
            else [c for c in cat_names if c in have])
    return TabularData(xs=xs, y=yarr, cat_names=tuple(cats), procs_signature=procs_signature(processor),
                       processor=processor)


def target_classes(split: Any) -> list[Any]:
    """The target classes of a processed split, index = code: in the target's own type where its processing
    records it (``TabularProcessor.y_classes_``: ``[False, True]`` for a bool column), else its text vocabulary
    (processing saved before the type was recorded decodes to text, as it did).

    >>> from pipekit.tabular import Tabular
    >>> df = pl.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [True, False, True, False]})
    >>> target_classes(Tabular(df, cont_names=["a"], y_names="y", splits=(np.arange(3), np.arange(3, 4))).train)
    [False, True]
    """
    typed = getattr(split.processor, "y_classes_", None)
    return list(split.y_vocab) if typed is None else list(typed)


def rows_signature(d: TabularData, chunk: int = 65_536) -> str:
    """A short hash of a split's inputs and targets. Every fitted backend keeps that of its training rows
    (``train_rows_signature_``) and a bagged model that of the rows it was bagged on, so an ensemble never
    chooses weights on rows a member was fitted on. The rows are hashed a chunk at a time (the same bytes as
    the whole float64 matrix, without holding it).

    >>> d = as_data(pl.DataFrame({"a": [1.0, 2.0]}), y=[0.0, 1.0])
    >>> rows_signature(d) == rows_signature(d.take(np.array([0, 1]))), rows_signature(d) == rows_signature(d.take(np.array([1, 0])))
    (True, False)
    """
    h = hashlib.sha1(json.dumps(list(d.feature_names)).encode())
    for start in range(0, len(d), chunk):
        part = replace(d, xs=d.xs.slice(start, chunk))
        h.update(np.ascontiguousarray(part.matrix(d.feature_names, dtype=np.float64)).tobytes())
    if d.y is not None:
        y = np.asarray(d.y)
        h.update((y.astype(str) if y.dtype.kind in "OUS" else y.astype(np.float64)).tobytes())
    return h.hexdigest()[:16]


#: how many of its training rows' hashes a backend keeps: the smallest ones, a uniform sample of the rows that
#: costs 32 KB whatever the table's size, from which an ensemble estimates the share of rows it is given that the
#: backend was fitted on (exactly, up to this many rows; within about 0.01 above)
ROW_SAMPLE = 4096


def row_hashes(d: TabularData) -> np.ndarray:
    """One hash per row of a split's inputs and target, sorted: a backend keeps the smallest ``ROW_SAMPLE`` of its
    training rows' for the session (``_train_row_hashes``, never saved), so an ensemble can tell rows it was fitted
    on given in another order or as a part of them, which :func:`rows_signature` (of the rows in order) does not
    match.

    >>> d = as_data(pl.DataFrame({"a": [1.0, 2.0, 3.0]}), y=[0.0, 1.0, 0.0])
    >>> bool(np.isin(row_hashes(d.take(np.array([2, 0]))), row_hashes(d)).all())
    True
    """
    frame = d.xs.select(list(d.feature_names))
    if d.y is not None:
        y = np.asarray(d.y)
        frame = frame.with_columns(pl.Series("\x00y", y.astype(str) if y.dtype.kind in "OUS" else y.astype(np.float64)))
    return np.sort(frame.hash_rows(seed=0).to_numpy())


def unlabelled(what: str = "this") -> DataError:
    """The error for rows without their targets given to ``what`` (fit, score, an ensemble's report), which
    compares predictions with them, saying how to give rows with their targets."""
    return DataError(f"{what} needs a labelled split (with ys): a processed split of the Tabular (tab.valid, "
                     "tab.new(df) of rows with the target column), or for an ensemble's raw rows with the target, "
                     "ens.process(df)")


def encode_y(y: np.ndarray | None, task: str, classes: np.ndarray | None = None) -> np.ndarray:
    """Targets as models fit on them: indices into the sorted ``classes`` (classification) or float64.

    >>> import numpy as np
    >>> from pipekit.backends import encode_y
    >>> encode_y(np.array(["yes", "no", "yes"]), "classification", np.array(["no", "yes"])).tolist()
    [1, 0, 1]
    >>> encode_y(np.array([1, 2]), "regression").dtype
    dtype('float64')
    >>> try:
    ...     encode_y(np.array(["maybe"]), "classification", np.array(["no", "yes"]))
    ... except Exception as e:
    ...     print(type(e).__name__)
    DataError
    """
    if y is None:
        raise unlabelled()
    if task == "regression":
        try:
            return np.asarray(y, dtype=np.float64)
        except ValueError:
            raise DataError(f"a regression target must be numeric; got values like {np.asarray(y)[:3].tolist()}") \
                from None
    if classes is None:
        raise ParameterError("encode_y: a classification target needs the classes")
    y = np.asarray(y)
    idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    bad = classes[idx] != y
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        if y.dtype.kind in "iu" and classes.dtype.kind not in "iufb" and len(y) and 0 <= y.min() \
                and y.max() < len(classes):  # a processed split's targets (tab.valid.y) hold the class codes
            raise DataError(f"the targets are integer codes of the known classes {classes.tolist()} (row {row} "
                            f"holds {y[row].item()!r}), as a processed split's y holds them (tab.valid.y), not "
                            "labels; pass the labels (np.asarray(classes)[codes]), or score the split itself "
                            "(model.score(tab.valid))")
        raise DataError(f"label {y[row:row + 1].tolist()[0]!r} (row {row}) was not seen in training; known classes: "
                        f"{classes.tolist()}")
    return idx.astype(np.int64)


def check_no_infinite(d: TabularData, columns: Sequence[str], where: str) -> None:
    """Refuse +/-inf in the model inputs ``columns`` of ``d``, naming the column and the first row.

    NaN stays allowed (the backends treat it as missing); an infinite value would be split on or
    averaged as a number and give a wrong answer without a word. One pass over the float columns.
    """
    schema = d.xs.schema  # read once: a wide frame rebuilds it on every access
    cols = [c for c in columns if c in schema and schema[c].is_float()]
    if not cols:
        return
    counts = d.xs.select([pl.col(c).is_infinite().sum().alias(c) for c in cols]).row(0)
    for c, n in zip(cols, counts):
        if n:
            s = d.xs.get_column(c)
            row = int(s.is_infinite().arg_true()[0])
            raise DataError(f"{where}: column {c!r} holds {s[row]} at row {row} ({n} infinite value(s) in that "
                            "column); models need finite inputs. Put FillMissing in the procs (it treats inf as "
                            "missing) or clean the column.")


#: how far apart, in the column's own standard deviations, a normalised column's raw mean and 0 (where processed
#: values centre) must be for the column to tell raw rows from processed ones whatever their median
#: (see :func:`check_rows`)
CENTRE_GAP = 4.0
#: standard units from 0 beyond which no processed rows' median sits, so a column whose median is there tells too
RAW_UNITS = 10.0
#: how many times nearer its raw mean than 0 (each distance in its own standard units) a column's median must be
#: for the column to vote the rows raw
NEARER = 4.0
#: what to do with rows that are not processed, said alike by every model
_PROCESS_THEM = ("pass the rows processed by the same Tabular (tab.new(df), in the session that built it), or for an "
                 "ensemble or a model fitted on a Tabular's split, also one loaded in a fresh process, "
                 "ens.predict(ens.process(df)) or model.predict(model.process(df)): process applies the procs it was "
                 "fitted with")


@dataclass(frozen=True)
class RowForm:
    """What the rows a model was fitted on look like, as far as the model knows it; :func:`check_rows` holds new
    rows to it. ``features``: the input columns; ``signature``: the procs' (:func:`procs_signature`); ``codes``:
    each category input's number of codes and the integer type the procs write them in (None: not known);
    ``scales``: each normalised input's raw mean and standard deviation (None: not known, as for a model fitted on
    a bare frame or read from a file written before models kept them)."""

    features: Sequence[str] = ()
    signature: str | None = None
    codes: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    scales: dict[str, tuple[float, float]] | None = None


def normalised_stats(processor: Any) -> dict[str, tuple[float, float]]:
    """The raw mean and standard deviation of each column the fitted procs ``processor`` normalise."""
    stats = [p for p in getattr(processor, "procs", ()) if vars(p).get("means_")]
    if not stats:
        return {}
    return {c: (float(m), float(stats[0].stds_[c])) for c, m in stats[0].means_.items()}


def check_rows(d: TabularData, form: RowForm) -> None:
    """Refuse rows a model fitted on rows of ``form`` cannot predict from, with one message per fault whatever the
    model (a backend or an ensemble): no rows, a missing input, a split of other procs, and for a bare frame (a
    Polars or pandas frame, a dict row, a pandas row) values that cannot be processed ones: normalised inputs in
    their raw units (see :func:`_raw_votes`: at least half of the normalised inputs that tell raw from processed rows
    have a median much nearer their raw mean than 0), category inputs that are not whole numbers or fall outside the
    codes, and, where no normalised input speaks for the rows, category codes of another type than the procs write
    (a raw integer id that falls among the codes, a day of the week, would otherwise be predicted from without a
    word); lastly text or infinite values in an input. An extra column is no fault: models read theirs.

    >>> form = RowForm(["a", "c"], codes={"c": (3, "Int8")}, scales={})
    >>> check_rows(as_data(pl.DataFrame({"a": [0.5], "c": pl.Series([2], dtype=pl.Int8)})), form)
    >>> check_rows(as_data(pl.DataFrame({"a": [0.5], "c": [7]})), form)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.DataError: these rows look unprocessed: category column 'c' holds 7 (row 0), outside the 3 ...
    """
    if len(d) == 0:
        raise DataError("the data passed to the model has no rows (an empty split, as tab.valid of a Tabular with no "
                        "validation rows: there is nothing to score, predict or choose weights on; score or select "
                        "on rows the model was not fitted on, or on out-of-fold predictions: fit_ensemble, "
                        "BaggedModel)")
    have = set(d.xs.columns)
    missing = [c for c in form.features if c not in have]
    if missing:  # raw rows lack the columns procs add (FillMissing's "_na" flags)
        raise DataError(f"the model's input column(s) {missing} missing from the data (its columns: "
                        f"{d.feature_names}); {_PROCESS_THEM}")
    if d.procs_signature is not None:
        check_signature(d, form.signature)
    else:
        _check_processed(d, form)
    d.check_numbers(form.features)
    check_no_infinite(d, form.features, "the model's input")


def check_signature(d: TabularData, signature: str | None) -> None:
    """Refuse a split processed by other procs than those of ``signature`` (a :func:`procs_signature`), where both
    are known: its codes and scales would be read as those of another vocabulary and normalisation."""
    if d.procs_signature is not None and signature is not None and d.procs_signature != signature:
        raise DataError(f"the model was trained on data processed by different procs (signature {signature} "
                        f"vs {d.procs_signature}); use the same Tabular")


def _check_processed(d: TabularData, form: RowForm) -> None:
    """The checks of :func:`check_rows` on a bare frame's values (see there)."""
    scales = form.scales or {}
    have = set(d.xs.columns)
    cols = [c for c in scales if c in have]
    _check_normalised(d, cols, scales)
    for c, (n, code) in form.codes.items():
        if c not in have:
            continue
        col = d.xs[c]
        s = col.drop_nulls()
        s = s.drop_nans() if s.dtype.is_float() else s  # a pandas row (a Series) carries its codes as floats
        whole = s.dtype.is_numeric() and (s.dtype.is_integer() or bool((s % 1 == 0).all()))
        lo: Any = s.min() if whole else None
        hi: Any = s.max() if whole else None
        if lo is not None and (lo < 0 or hi >= n):
            bad = lo if lo < 0 else hi
            row = int((col == bad).arg_true()[0])
            raise DataError(f"these rows look unprocessed: category column {c!r} holds {bad} (row {row}), outside the "
                            f"{n} category codes the model was fitted on: this looks like an unprocessed frame; "
                            f"{_PROCESS_THEM}")
        # without a normalised input to speak for the rows, codes must come as the procs write them
        typed = code is None or form.scales is None or bool(cols) or str(col.dtype) == code
        if not (whole and typed):
            raise DataError(f"these rows look unprocessed: category column {c!r} is {col.dtype}, where the processed "
                            f"rows the model was fitted on hold its {n} category codes as {code or 'integers'}; "
                            f"{_PROCESS_THEM}; rows already processed are taken as a processed split (tab.valid), as its "
                            f"frame (tab.valid.xs), or with the codes as {code or 'integers'} (tab.new(df) would "
                            "process them again)")


def _raw_votes(medians: dict[str, float], scales: dict[str, tuple[float, float]]) -> tuple[list[str], list[str]]:
    """The normalised columns that tell raw rows from processed ones, and those of them whose ``medians`` vote the
    rows raw. Processed values centre on 0 with a standard deviation of 1, raw ones on the training ``mean`` with
    its ``std``: a median ``m`` sits ``|m|`` standard units from the processed centre and ``|m - mean| / std`` from
    the raw one, and votes raw when it is ``NEARER`` times nearer the raw one. A column tells when its two centres
    are ``CENTRE_GAP`` of its standard deviations apart (processed rows then sit far from the raw centre, whatever
    their median: a what-if value, a mean row, a float64 copy), or when its median sits beyond ``RAW_UNITS`` of 0,
    where no processed rows' median sits.

    >>> _raw_votes({"alcohol": 13.05, "ash": 0.1}, {"alcohol": (13.0, 0.81), "ash": (2.37, 0.27)})
    (['alcohol', 'ash'], ['alcohol'])
    """
    telling, raw = [], []
    for c, m in medians.items():
        mean, std = scales[c]
        if not (std > 0 and math.isfinite(m)):
            continue
        d_proc, d_raw = abs(m), abs(m - mean) / std
        if abs(mean) >= CENTRE_GAP * std or d_proc > RAW_UNITS:
            telling.append(c)
            if d_raw * NEARER < d_proc:
                raw.append(c)
    return telling, raw


def _check_normalised(d: TabularData, cols: Sequence[str], scales: dict[str, tuple[float, float]]) -> None:
    """Refuse a bare frame whose normalised inputs ``cols`` are in their raw units: more than half of those that
    tell (:func:`_raw_votes`) vote raw."""
    values = d.xs.select([pl.col(c).cast(pl.Float64, strict=False).fill_nan(None).median() for c in cols]).row(0) \
        if cols else ()
    medians = {c: v for c, v in zip(cols, values) if isinstance(v, float)}
    telling, raw = _raw_votes(medians, scales)
    # more than half of the telling columns must vote: a processed value far out in a heavy-tailed column (a capital
    # gain of 12 standard units) beside another telling column that votes processed is one vote, not a verdict
    if 2 * len(raw) > len(telling):
        c, v = raw[0], medians[raw[0]]
        mean, std = scales[c]
        raise DataError(f"these rows look unprocessed: column {c!r} has a median of {v:.4g}, "
                        f"{abs(v - mean) / std:.2g} standard deviation(s) from its raw mean {mean:.4g} (standard "
                        f"deviation {std:.4g}) and {abs(v):.3g} from 0, where the processed rows the model was fitted "
                        f"on are normalised around 0 (of the {len(telling)} normalised column(s) that tell raw rows from "
                        f"processed ones, {len(raw)} sit so near their raw mean); {_PROCESS_THEM}")
