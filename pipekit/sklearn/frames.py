"""What the scikit-learn estimators accept as ``X`` and ``y``, turned into one Polars frame and checked the
way scikit-learn checks them (the same messages where scikit-learn's tools match on them).

``X`` may be a pandas or Polars frame, a pyarrow table, a NumPy array or anything ``np.asarray`` takes.
Frames keep their column types (text, categories, dates); an array's object columns holding text become
text columns, and so do those of rows given as lists (``[(0.5, "a"), ...]``), whose numbers stay numbers.
Columns get roles (categorical, continuous, date) from the names given or from their type; text whose every
value is an ISO date (``2015-07-31``, a CSV read without parsing dates) is a date column.

Example:
    >>> import numpy as np
    >>> frame = as_frame(np.array([[1.5, "a"], [2.0, "b"]], dtype=object), "Demo")
    >>> frame.schema["x0"], frame.schema["x1"]
    (Float64, String)
    >>> column_roles(frame, None, None, None)
    (['x1'], ['x0'], [])
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipekit.data.dates import has_time_of_day, iso_dates, numeric_dates
from pipekit.data.items import to_items
from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.core.validate import is_pandas
from pipekit.tabular.dates import _DATE_PARTS, _TIME_PARTS, add_datepart

_2D = ("Reshape your data either using array.reshape(-1, 1) if your data has a single feature or "
       "array.reshape(1, -1) if it contains a single sample.")


def default_columns(n: int) -> list[str]:
    """The names given to the columns of an input without names (a NumPy array): ``x0, x1, ...``."""
    return [f"x{i}" for i in range(n)]


def _check_shape(n_rows: int, n_cols: int, who: str) -> None:
    for n, what in ((n_rows, "sample"), (n_cols, "feature")):
        if n < 1:
            raise ValueError(f"Found array with 0 {what}(s) (shape=({n_rows}, {n_cols})) while a minimum "
                             f"of 1 is required by {who}.")


def _text_or_number(name: str, col: np.ndarray) -> pl.Series:
    """An object column: numbers when every value is one, else text (None and NaN stay missing)."""
    if not any(isinstance(v, (str, bytes)) for v in col):
        with contextlib.suppress(TypeError, ValueError):
            return pl.Series(name, np.asarray(col, dtype=np.float64))
    values = [None if v is None or (isinstance(v, float) and v != v) else
              v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in col]
    return pl.Series(name, values, dtype=pl.String)


def _from_array(arr: np.ndarray, columns: Sequence[str]) -> pl.DataFrame:
    series = []
    for j, name in enumerate(columns):
        col = arr[:, j]
        kind = col.dtype.kind
        if kind in "biuf":
            series.append(pl.Series(name, np.ascontiguousarray(col)))
        elif kind == "M":
            series.append(pl.Series(name, col))
        elif kind in "US":
            series.append(pl.Series(name, col.astype(str), dtype=pl.String))
        else:
            series.append(_text_or_number(name, col))
    return pl.DataFrame(series)


def as_frame(X: Any, who: str) -> pl.DataFrame:
    """``X`` as a Polars frame: a frame keeps its column names (pandas names that are not all text become
    ``x0, x1, ...``, as arrays' columns are named). Sparse, complex, 1-D and empty inputs are refused with
    scikit-learn's messages."""
    if type(X).__module__.startswith("scipy.sparse") or hasattr(X, "tocsr"):
        # refused rather than densified, as HistGradientBoostingClassifier refuses it: the sparse matrix is nearly
        # always a one-hot encoding, whose columns the procs would take as numbers (each normalised, none a
        # category), and densifying a wide one can take far more memory than its sparse form
        raise TypeError(f"{who} does not take sparse input (a scipy sparse matrix or array): its procs read "
                        "columns of text, categories and numbers; pass X.toarray() or a DataFrame. In a Pipeline, "
                        f"leave out the one-hot step and pass the text columns as they are ({who} encodes them "
                        "itself), or make the step's output dense: OneHotEncoder(sparse_output=False), "
                        "ColumnTransformer(..., sparse_threshold=0)")
    if isinstance(X, pl.LazyFrame):
        X = X.collect()
    if isinstance(X, (pa.Table, pa.RecordBatch)):
        X = pl.from_arrow(X)
    if is_pandas(X):
        import pandas as pd

        if isinstance(X, pd.Series):
            raise ValueError(f"Expected a 2D input, got a pandas Series instead. {_2D}")
        if isinstance(X, pd.DataFrame):
            if not all(isinstance(c, str) for c in X.columns):
                X = X.set_axis(default_columns(X.shape[1]), axis=1)
            # read as a Tabular reads pandas: a column mixing numbers and text becomes text (with a warning),
            # a name given twice is a DataError
            X = to_items(X)
    if isinstance(X, pl.DataFrame):
        _check_shape(X.height, X.width, who)
        return X
    if isinstance(X, pl.Series):
        raise ValueError(f"Expected a 2D input, got a polars Series instead. {_2D}")
    arr = np.asarray(X)
    if arr.dtype.kind in "US" and not isinstance(X, np.ndarray):
        # rows given as lists mixing numbers and text: NumPy makes every value text; read as objects, each column
        # is numbers or text as a frame of the same rows gives it
        arr = np.asarray(X, dtype=object)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {who} takes real numbers, text and categories.")
    if arr.ndim < 2:
        raise ValueError(f"Expected 2D array, got {'scalar' if arr.ndim == 0 else '1D'} array instead:\n"
                         f"array={arr!r:.200}.\n{_2D}")
    if arr.ndim > 2:
        raise ValueError(f"Found array with dim {arr.ndim}. {who} expected <= 2.")
    _check_shape(arr.shape[0], arr.shape[1], who)
    return _from_array(arr, default_columns(arr.shape[1]))


# ---------------------------------------------------------------------------------------- column roles
def _resolve(names: Sequence[Any] | None, columns: list[str], role: str) -> list[str]:
    """Column names given as names or positions, checked against ``columns``."""
    out = []
    for c in names or []:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not -len(columns) <= c < len(columns):
                raise DataError(f"{role}: column position {c} is outside the {len(columns)} columns of X")
            out.append(columns[c])
        elif isinstance(c, str):
            if c not in columns:
                raise DataError(f"{role}: column {c!r} is not in X; its columns are {columns[:20]}"
                                f"{' ...' if len(columns) > 20 else ''}")
            out.append(c)
        else:
            raise ParameterError(f"{role} takes column names or positions, got {c!r}")
    return out


def column_roles(frame: pl.DataFrame, cat_names: Sequence[Any] | None, cont_names: Sequence[Any] | None,
                 date_names: Sequence[Any] | None, who: str | None = None) -> tuple[list[str], list[str], list[str]]:
    """``(cat, cont, dates)``: the columns named in each role, and every other column by its type: text,
    categories and booleans are categorical, numbers continuous, dates and datetimes are dates, and so is text
    holding only ISO dates (``2015-07-31``). Text holding only dates with day and month as numbers
    (``31/07/2015``), which may read two ways, stays categorical; with ``who`` (the estimator fitting) a warning
    says so and how to name it a date."""
    cols = frame.columns
    given = {role: _resolve(names, cols, role) for role, names in
             (("cat_names", cat_names), ("cont_names", cont_names), ("date_names", date_names))}
    seen: dict[str, str] = {}
    for role, names in given.items():
        for c in names:
            if c in seen:
                raise ParameterError(f"column {c!r} is given two roles ({seen[c]} and {role}); give it one")
            seen[c] = role
    cat, cont, dates = given["cat_names"], given["cont_names"], given["date_names"]
    for c, dt in frame.schema.items():
        if c in seen:
            continue
        if dt == pl.Date or isinstance(dt, pl.Datetime) or iso_dates(frame[c]):
            dates.append(c)  # ISO text too: a date column of a CSV read without parse_dates
        elif dt == pl.String or dt == pl.Boolean or isinstance(dt, (pl.Categorical, pl.Enum)):
            cat.append(c)
            if who is not None and numeric_dates(frame[c]):
                example = frame[c].drop_nulls()[0]
                warn(f"{who}: column {c!r} holds dates written as text ({example!r}) and is taken as a category, so "
                     f"every date not in the training rows is unseen; give date_names=[{c!r}] for its date parts "
                     "(year, month, day of week, elapsed time), read in the layout of its values, or parse it "
                     f"first (pd.to_datetime(X[{c!r}], format=...))")
        elif dt.is_numeric() or dt == pl.Null:
            cont.append(c)
        else:
            raise DataError(f"column {c!r} holds {dt} values, which are neither text, categories, numbers nor "
                            "dates; convert it, drop it, or name its role in cat_names/cont_names")
    order = {c: i for i, c in enumerate(cols)}
    return (sorted(cat, key=order.__getitem__), sorted(cont, key=order.__getitem__),
            sorted(dates, key=order.__getitem__))


def check_filled(frame: pl.DataFrame, columns: Sequence[str], who: str) -> None:
    """Refuse a column of ``X`` with no value at all (every row null, NaN or inf): the procs could learn nothing
    from it.

    >>> try:
    ...     check_filled(pl.DataFrame({"a": [1.0, None], "b": [None, None]}), ["a", "b"], "TabularClassifier")
    ... except DataError as e:
    ...     print(str(e)[:54])
    TabularClassifier: column 'b' of X has no values (ever
    """
    if not columns:
        return
    schema = frame.schema  # read once: Polars builds it anew on each read
    filled = frame.select([(pl.col(c).is_finite().any() if schema[c].is_float() else pl.col(c).is_not_null()
                           .any()).alias(c) for c in columns]).row(0)
    for c, has in zip(columns, filled):
        if not has:
            raise DataError(f"{who}: column {c!r} of X has no values (every row is null, NaN or inf); drop the "
                            "column from X.")


def date_parts(frame: pl.DataFrame, dates: Sequence[str], times: Sequence[str] | None = None,
               formats: Mapping[str, str | list[str]] | None = None, who: str | None = None
               ) -> tuple[pl.DataFrame, list[str], list[str]]:
    """Each date column replaced by its parts (``<col>_Year``, ``<col>_Month``, ..., ``<col>_Elapsed``;
    times of day for the ``times`` columns, by default those that are datetimes); returns the frame and the new
    categorical (the ``Is_*`` flags) and continuous part names. Text dates are parsed (ISO and the usual layouts),
    so rows read back from a CSV give the parts their datetimes gave at fit when ``times`` names them. By default
    only a column holding a time of day other than midnight gets the hour, minute and second (of a column of days
    they would be constant), as ``add_datepart(time=False)`` leaves them out. ``formats``: the layout each text
    column is read in, or its layouts where it is written in several (what ``text_date_layouts`` read from the
    training rows); a column without one is read in the layout of its own values. A column of the frame named like a part (``d_Year`` beside the date ``d``) is
    refused with a DataError (naming ``who``, the estimator fitting): the part would replace it.

    >>> out, cat, cont = date_parts(pl.DataFrame({"d": ["2015-07-31", "2015-08-01"]}), ["d"])
    >>> cont[:2], "d_Hour" in cont, "d_Hour" in date_parts(pl.DataFrame({"d": ["2015-07-31 13:45"]}), ["d"])[2]
    (['d_Year', 'd_Month'], False, True)
    """
    cat: list[str] = []
    cont: list[str] = []
    schema = frame.schema  # read once: the date columns' types
    names = set(schema)  # the frame's names as the parts replace each date column
    for c in dates:
        time = c in times if times is not None else has_time_of_day(frame[c])
        parts = add_datepart(frame.select(c), c, prefix=f"{c}_", time=time,
                             format=(formats or {}).get(c) if schema[c] == pl.String else None)
        taken = [p for p in parts.columns if p in names]
        if taken:
            raise DataError(f"{who + ': ' if who else ''}column {taken[0]!r} of X has the name of a part of the date "
                            f"column {c!r}, which would replace it; rename {taken[0]!r} (or {c!r}), or turn {c!r} into "
                            "the numbers you want yourself and pass them as columns")
        frame = frame.drop(c).hstack(parts)
        names.discard(c)
        names.update(parts.columns)
        for part in parts.columns:
            (cat if parts.schema[part] == pl.Boolean else cont).append(part)
    return frame, cat, cont


def date_part_names(column: str) -> list[str]:
    """Every name :func:`date_parts` may give a part of the date column ``column`` (``<column>_Year``, ...,
    ``<column>_Elapsed``, and the times of day): the exact names, so a column of X whose name merely starts with
    ``<column>_`` is never taken for one of its parts.

    >>> date_part_names("d")[:2], "d_Elapsed" in date_part_names("d"), "d_Hour" in date_part_names("d")
    (['d_Year', 'd_Month'], True, True)
    """
    return [f"{column}_{p}" for p in _DATE_PARTS + _TIME_PARTS + ("Elapsed",)]
