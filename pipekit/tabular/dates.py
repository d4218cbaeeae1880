"""Column helpers for tables: date parts, splitting columns into continuous/categorical, dtype shrinking.

Example:
    >>> import polars as pl
    >>> df = pl.DataFrame({"saledate": ["2015-07-31", "2015-01-01"]})
    >>> add_datepart(df, "saledate").columns[:4]
    ['saleYear', 'saleMonth', 'saleWeek', 'saleDay']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import polars as pl

_TEMPORAL = (pl.Date, pl.Datetime)


def _to_polars(df: Any, where: str) -> pl.DataFrame | pl.LazyFrame:
    if isinstance(df, (pl.DataFrame, pl.LazyFrame)):
        return df
    if type(df).__module__.startswith("pandas") and type(df).__name__ == "DataFrame":
        return pl.from_pandas(df)
    raise TypeError(f"{where}: expected a Polars or pandas DataFrame, got {type(df).__name__}.")


def _schema(df: pl.DataFrame | pl.LazyFrame) -> pl.Schema:
    return df.collect_schema() if isinstance(df, pl.LazyFrame) else df.schema


def add_datepart(df: Any, field_name: str, prefix: str | None = None, drop: bool = True,
                 time: bool = False) -> pl.DataFrame | pl.LazyFrame:
    """Replace a date column by its parts: Year, Month, Week, Day, Dayofweek (Monday=0), Dayofyear,
    Is_month_end/start, Is_quarter_end/start, Is_year_end/start, Elapsed (seconds since 1970), and with
    ``time=True`` Hour, Minute, Second. Text dates are parsed; nulls stay null (FillMissing fills them).

    ``prefix`` defaults to the column name without a trailing "date"/"Date" (``Date`` -> ``Year``, ...).

    Example:
        >>> import polars as pl
        >>> out = add_datepart(pl.DataFrame({"Date": ["2015-03-31"]}), "Date")
        >>> out.select("Year", "Month", "Dayofweek", "Is_month_end", "Is_quarter_end").row(0)
        (2015, 3, 1, True, True)
    """
    frame = _to_polars(df, "add_datepart")
    schema = _schema(frame)
    if field_name not in schema:
        raise KeyError(f"add_datepart: column {field_name!r} is not in the data; the columns are {list(schema)}.")
    dtype = schema[field_name]
    col = pl.col(field_name)
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        if isinstance(frame, pl.DataFrame):
            s = frame[field_name].cast(pl.String)
            parsed = s.str.to_datetime(strict=False)
            bad = (parsed.is_null() & s.is_not_null()).arg_true()
            if len(bad):
                i = int(bad[0])
                raise ValueError(f"add_datepart: column {field_name!r} has text that is not a date, e.g. {s[i]!r} "
                                 f"at row {i}; fix or null those values.")
        col = col.cast(pl.String).str.to_datetime(strict=False)
    elif not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise TypeError(f"add_datepart: column {field_name!r} has type {dtype}; expected a date, datetime or text.")
    pre = re.sub("[Dd]ate$", "", field_name) if prefix is None else prefix
    month, day = col.dt.month(), col.dt.day()
    month_end = col.dt.month_end().dt.day() == day
    parts = [
        col.dt.year().alias(f"{pre}Year"),
        month.alias(f"{pre}Month"),
        col.dt.week().alias(f"{pre}Week"),
        day.alias(f"{pre}Day"),
        (col.dt.weekday() - 1).alias(f"{pre}Dayofweek"),
        col.dt.ordinal_day().alias(f"{pre}Dayofyear"),
        month_end.alias(f"{pre}Is_month_end"),
        (day == 1).alias(f"{pre}Is_month_start"),
        (month.is_in([3, 6, 9, 12]) & month_end).alias(f"{pre}Is_quarter_end"),
        (month.is_in([1, 4, 7, 10]) & (day == 1)).alias(f"{pre}Is_quarter_start"),
        ((month == 12) & (day == 31)).alias(f"{pre}Is_year_end"),
        ((month == 1) & (day == 1)).alias(f"{pre}Is_year_start"),
    ]
    if time:
        parts += [col.dt.hour().alias(f"{pre}Hour"), col.dt.minute().alias(f"{pre}Minute"),
                  col.dt.second().alias(f"{pre}Second")]
    parts.append(col.cast(pl.Datetime("ms")).dt.epoch("s").alias(f"{pre}Elapsed"))
    out = frame.with_columns(parts)
    return out.drop(field_name) if drop else out


def cont_cat_split(df: Any, max_card: int = 20, dep_var: str | Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``(cont_names, cat_names)``: floats and integers with more than ``max_card`` distinct values are
    continuous; everything else (text, booleans, low-cardinality integers) is categorical. Date columns
    are left out (turn them into parts with ``add_datepart`` first).

    Example:
        >>> import polars as pl
        >>> cont_cat_split(pl.DataFrame({"a": [1.5, 2.0], "b": ["x", "y"], "y": [0, 1]}), dep_var="y")
        (['a'], ['b'])
    """
    frame = _to_polars(df, "cont_cat_split")
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect(engine="streaming")
    if max_card < 1:
        raise ValueError(f"cont_cat_split: max_card must be >= 1, got {max_card}.")
    skip = {dep_var} if isinstance(dep_var, str) else set(dep_var or [])
    cont, cat = [], []
    for c, dt in frame.schema.items():
        if c in skip or dt in _TEMPORAL or isinstance(dt, pl.Datetime) or dt == pl.Duration:
            continue
        if dt.is_float() or (dt.is_integer() and frame[c].n_unique() > max_card):
            cont.append(c)
        else:
            cat.append(c)
    return cont, cat


def df_shrink(df: Any, skip: Sequence[str] = (), obj2cat: bool = True, int2uint: bool = False) -> pl.DataFrame:
    """Downcast each column to the smallest type that holds its values: integers by range, floats to
    Float32, text to Categorical (``obj2cat``); ``int2uint`` uses unsigned types for non-negative integers.

    Example:
        >>> import polars as pl
        >>> df_shrink(pl.DataFrame({"i": [1, 200], "f": [0.5, 1.0], "s": ["a", "b"]})).dtypes
        [Int16, Float32, Categorical]
    """
    frame = _to_polars(df, "df_shrink")
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect(engine="streaming")
    ints = [c for c, dt in frame.schema.items() if dt.is_integer() and c not in skip]
    bounds = frame.select([pl.col(c).min().alias(f"{c}\x00lo") for c in ints]
                          + [pl.col(c).max().alias(f"{c}\x00hi") for c in ints]).row(0, named=True) if ints else {}
    signed = [pl.Int8, pl.Int16, pl.Int32, pl.Int64]
    unsigned = [pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64]
    exprs = []
    for c, dt in frame.schema.items():
        if c in skip:
            continue
        if c in ints:
            lo, hi = bounds[f"{c}\x00lo"], bounds[f"{c}\x00hi"]
            if lo is None:
                continue
            choices = unsigned if (int2uint or dt.is_unsigned_integer()) and lo >= 0 else signed
            for t in choices:
                info_lo, info_hi = _int_range(t)
                if info_lo <= lo and hi <= info_hi:
                    exprs.append(pl.col(c).cast(t))
                    break
        elif dt == pl.Float64:
            exprs.append(pl.col(c).cast(pl.Float32))
        elif dt == pl.String and obj2cat:
            exprs.append(pl.col(c).cast(pl.Categorical))
    return frame.with_columns(exprs) if exprs else frame


def _int_range(t: Any) -> tuple[int, int]:
    bits = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64, pl.UInt8: 8, pl.UInt16: 16, pl.UInt32: 32,
            pl.UInt64: 64}[t]
    if t in (pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
