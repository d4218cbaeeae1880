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

import numpy as np
import polars as pl

from pipekit.core.errors import DataError, warn
from pipekit.core.validate import Interval, Is, Options, check, is_pandas, unknown_names
from pipekit.data.dates import AWARE, OFFSET, read_text_dates, text_date_layouts
from pipekit.tabular.core import read_frame
from pipekit.tabular.procs import collect, schema_of

_TEMPORAL = (pl.Date, pl.Datetime)


_SHOW_ROWS = 10

#: the format= of add_datepart: None, a strftime layout, or a list of them
_FORMAT = Is(lambda v: v is None or isinstance(v, str) or (
    isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(f, str) for f in v)),
    "None, a strftime layout such as '%d.%m.%Y', or a list of them")

#: a month's English name or its abbreviation, as a word
_MONTH_NAME = r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?:\b|$)"
#: the layouts of dates written with the month's name that an error suggests, the first that reads every value
_MONTH_NAME_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%B %d %Y", "%b. %d, %Y", "%d %b %Y", "%d %B %Y",
                       "%d-%b-%Y", "%d-%b-%y", "%d %b, %Y", "%d %B, %Y", "%b-%d-%Y", "%Y-%b-%d", "%d/%b/%Y",
                       "%b %d, %Y %H:%M:%S", "%b %d, %Y %H:%M", "%d %b %Y %H:%M:%S", "%d %b %Y %H:%M")


def month_name_format(values: pl.Series) -> str | None:
    """The layout (a strftime format) that reads every one of ``values``, text dates written with the month's name
    ('Jul 1, 2015', '01-Jul-2015'), among the usual ones; None when they are not such dates or none reads them all.

    >>> month_name_format(pl.Series(["Jul 1, 2015", "Dec 31, 2014"])), month_name_format(pl.Series(["1 July 2015"]))
    ('%b %d, %Y', '%d %B %Y')
    """
    values = values.drop_nulls()
    if not len(values) or not values.str.contains(_MONTH_NAME).all():
        return None
    for fmt in _MONTH_NAME_FORMATS:
        if values.str.to_datetime(format=fmt, strict=False, time_unit="us").null_count() == 0:
            return fmt
    return None


def _parse_text_dates(frame: pl.DataFrame | pl.LazyFrame, field: str, format: str | Sequence[str] | None,
                      errors: str, local_name: str, elapsed_name: str) -> pl.DataFrame | pl.LazyFrame:
    """``frame`` with the local wall-clock datetime and the seconds since 1970-01-01 UTC of a text date
    column, parsed once, in the columns ``local_name`` and ``elapsed_name``."""
    text = pl.col(field).cast(pl.String).str.strip_chars()
    values = collect(frame.select(text.drop_nulls().unique(maintain_order=True).alias("v")))["v"]
    aware = values.str.contains(AWARE)
    if aware.any() and not aware.all():
        with_off, without = values.filter(aware)[0], values.filter(~aware)[0]
        raise DataError(f"add_datepart: column {field!r} mixes times with a UTC offset (e.g. {with_off!r}) and "
                         f"without one (e.g. {without!r}); give every value an offset, or none.")
    is_aware = bool(len(values)) and bool(aware.all())
    local_text = text.str.replace(OFFSET, "") if is_aware else text
    if format is not None:
        given = [format] if isinstance(format, str) else list(format)
        layouts = [re.sub(r"\s*%[:#]?z", "", f) for f in given] if is_aware else given
    else:  # day and month as numbers in the order every value settles (one layout per way they are written), or ISO
        layouts = text_date_layouts(values, field, "add_datepart") or []
    # an explicit format parses about ten times faster than polars' per-value inference
    local = read_text_dates(local_text, layouts) if layouts else \
        local_text.str.to_datetime(strict=False, time_unit="us")
    if is_aware:
        sign = pl.when(text.str.extract(r"([+-])\d{2}(?::?\d{2})?$", 1) == "-").then(-1).otherwise(1)
        hours = text.str.extract(r"[+-](\d{2})(?::?\d{2})?$", 1).cast(pl.Int64).fill_null(0)
        minutes = text.str.extract(r"[+-]\d{2}:?(\d{2})$", 1).cast(pl.Int64).fill_null(0)
        elapsed = (local - pl.duration(seconds=sign * (hours * 3600 + minutes * 60))).dt.epoch("s")
    else:
        elapsed = local.dt.epoch("s")
    frame = frame.with_columns(local.alias(local_name), elapsed.alias(elapsed_name))
    bad = text.is_not_null() & pl.col(local_name).is_null()
    n_bad = int(collect(frame.select(bad.sum().alias("n")))["n"][0])
    if n_bad:
        rows = collect(frame.with_row_index("__row").select(pl.col("__row"), text.alias("v"), bad.alias("bad"))) \
            .filter(pl.col("bad")).head(_SHOW_ROWS)
        shown = ", ".join(f"{v!r} at row {r}" for r, v in zip(rows["__row"], rows["v"]))
        more = f" and {n_bad - len(rows)} more" if n_bad > len(rows) else ""
        how = f" in format {layouts[0]!r}" if len(layouts) == 1 else f" in formats {layouts}" if layouts else ""
        named = None if is_aware else month_name_format(values)
        hint = f"; they are dates written with the month's name: pass format={named!r}" \
            if named and named not in layouts else ""
        msg = f"add_datepart: {n_bad} value(s) of column {field!r} are not dates{how}: {shown}{more}{hint}"
        if errors == "raise":
            raise DataError(msg + "; fix them, null them, pass format= if they share another format, or "
                             "errors='null' to turn them into nulls.")
        warn(msg + "; their date parts are null (FillMissing fills them and marks the rows).")
    return frame


def add_datepart(df: Any, field_name: str, prefix: str | None = None, drop: bool = True, time: bool = False,
                 format: str | Sequence[str] | None = None, errors: str = "raise") -> Any:
    """Replace a date column by its parts: Year, Month, Week, Day, Dayofweek (Monday=0), Dayofyear,
    Is_month_end/start, Is_quarter_end/start, Is_year_end/start, Elapsed (seconds since 1970), and with
    ``time=True`` Hour, Minute, Second. The number parts are integers (``Elapsed`` too, as the book's chapter 9
    has it: ``cont_cat_split`` with a ``max_card`` above the number of dates makes it categorical and the book moves
    it back by hand), or, as fastai's, when the column holds a missing date (or one ``errors="null"`` could not
    read), all Float64, null for that row (NaN in a pandas result), so ``cont_cat_split`` makes them continuous;
    the ``Is_*`` flags are booleans, null for a missing date. FillMissing fills the nulls and marks the rows.
    (fastai 2.8's ``Elapsed`` is a float even without a missing date.) So the types follow the rows: training and
    test rows processed apart may get integer and float parts, which ``pl.concat(..., how="vertical_relaxed")``
    joins (a plain concat refuses them); a LazyFrame is read once more to know whether a date is missing.

    ``drop=True`` removes the source column, as fastai's ``add_datepart`` does by default; pass
    ``drop=False`` to keep it (a TimeSplitter or a later join may need it).

    Which clock: the parts read each value's own local clock, the time as written with its UTC offset
    (``2015-03-31T23:30:00-05:00`` is day 31, hour 23) or in the zone of a time-zone-aware column;
    ``Elapsed`` counts true seconds since 1970-01-01 UTC, so it orders values from different zones
    correctly. Naive values are taken as they are.

    Text is parsed: ``format=`` (a strftime format such as ``"%d.%m.%Y"``, or a list of them, each value read in
    the first that reads it) says how; without it ISO
    dates and the usual layouts are recognised, and dates written ``01/02/2015`` are read day-first or
    month-first only when the values settle it (some first or second number above 12), the order read from
    every value together when they are written in several layouts (``13/02/2015``, ``03-04-2015 10:00``): when
    every value reads both ways a DataError asks for ``format=``, as does a column writing years with both 2 and
    4 digits. Values that are not dates are counted and listed
    with their row numbers: a DataError with ``errors="raise"``, a warning and nulls with ``errors="null"``.
    A column mixing values with and without a UTC offset is refused.

    ``prefix`` defaults to the column name without a trailing "date"/"Date" (``Date`` -> ``Year``, ...). A part
    named as a column the table already has (a user's own ``saleYear``, or the parts of an earlier call) is refused
    with a DataError naming the columns: rename them, drop them, or give another ``prefix``; nothing is overwritten.

    The result is the caller's kind of frame: a pandas DataFrame gives a new pandas DataFrame (its index and its
    other columns' types kept; ``df`` itself is not changed, so write ``df = add_datepart(df, ...)``), a Polars
    LazyFrame stays lazy, and a Polars DataFrame or any other table (a path, an Arrow table) gives a Polars
    DataFrame.

    Example:
        >>> import polars as pl
        >>> out = add_datepart(pl.DataFrame({"Date": ["2015-03-31"]}), "Date")
        >>> out.select("Year", "Month", "Dayofweek", "Is_month_end", "Is_quarter_end").row(0)
        (2015, 3, 1, True, True)
        >>> add_datepart(pl.DataFrame({"t": ["2015-03-31T23:30:00-05:00"]}), "t", time=True).select(
        ...     "tDay", "tHour", "tElapsed").row(0)
        (31, 23, 1427862600)
        >>> import pandas as pd
        >>> pdf = add_datepart(pd.DataFrame({"saledate": ["2011-11-16"], "x": [1]}), "saledate")
        >>> type(pdf).__name__, list(pdf.columns[:3]), bool((pdf.saleYear < 2012).all())
        ('DataFrame', ['x', 'saleYear', 'saleMonth'], True)
    """
    check("add_datepart", errors=(errors, Options("raise", "null")), format=(format, _FORMAT))
    if is_pandas(df, "DataFrame"):
        return _add_datepart_pandas(df, field_name, prefix, drop, time, format, errors)
    frame = df if isinstance(df, pl.LazyFrame) else read_frame(df)  # a lazy query stays lazy
    schema = schema_of(frame)
    if field_name not in schema:
        raise DataError(f"add_datepart: column {field_name!r} is not in the data; "
                        f"{unknown_names([field_name], list(schema))}.")
    pre = re.sub("[Dd]ate$", "", field_name) if prefix is None else prefix
    _refuse_taken_parts(field_name, pre, time, list(schema), "Polars")
    dtype = schema[field_name]
    tmp: list[str] = []
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        tmp = [f"{field_name}\x00local", f"{field_name}\x00elapsed"]
        frame = _parse_text_dates(frame, field_name, format, errors, *tmp)
        col, elapsed = pl.col(tmp[0]), pl.col(tmp[1])
    elif dtype == pl.Date:
        # times of day asked of a date (a datetime column given as dates at predict) are midnight's
        col = pl.col(field_name).cast(pl.Datetime("us")) if time else pl.col(field_name)
        elapsed = col.cast(pl.Datetime("ms")).dt.epoch("s")
    elif isinstance(dtype, pl.Datetime):
        col = pl.col(field_name)  # a zone-aware column gives its parts in its own zone
        elapsed = col.dt.epoch("s")
    else:
        raise DataError(f"add_datepart: column {field_name!r} has type {dtype}; expected a date, datetime or text.")
    # a missing date (or one that did not parse) makes every number part a float, null where the date is
    missing = bool(collect(frame.select(col.is_null().any().alias("m")))["m"][0])
    month, day = col.dt.month(), col.dt.day()
    month_end = col.dt.days_in_month() == day  # read from the date: no clock time to re-localise in its zone
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
    parts.append(elapsed.alias(f"{pre}Elapsed"))
    if missing:  # exact as floats: every date's seconds are far below 2**53
        parts = [p if p.meta.output_name().startswith(f"{pre}Is_") else p.cast(pl.Float64) for p in parts]
    out = frame.with_columns(parts).drop(tmp)
    return out.drop(field_name) if drop else out


def _add_datepart_pandas(df: Any, field_name: str, prefix: str | None, drop: bool, time: bool,
                         format: str | Sequence[str] | None, errors: str) -> Any:
    """``add_datepart`` on a pandas frame: the parts are computed from the date column alone and added to a copy of
    ``df``, so its other columns keep their pandas types (an ordered category stays ordered) and its index."""
    import pandas as pd

    if field_name not in df.columns:
        raise DataError(f"add_datepart: column {field_name!r} is not in the data; "
                        f"{unknown_names([field_name], list(df.columns))}.")
    pre = re.sub("[Dd]ate$", "", field_name) if prefix is None else prefix
    _refuse_taken_parts(field_name, pre, time, [str(c) for c in df.columns], "pandas")
    parts = add_datepart(read_frame(df[[field_name]]), field_name, prefix, True, time, format, errors)
    new = to_pandas(parts, df.index)
    base = df.drop(columns=[field_name] if drop else [])
    return pd.concat([base, new], axis=1)


#: the parts ``add_datepart`` makes, after their prefix; the time ones with ``time=True``
_DATE_PARTS = ("Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Is_month_end", "Is_month_start",
               "Is_quarter_end", "Is_quarter_start", "Is_year_end", "Is_year_start")
_TIME_PARTS = ("Hour", "Minute", "Second")


def _refuse_taken_parts(field_name: str, pre: str, time: bool, columns: Sequence[str], kind: str) -> None:
    """Refuse to write a date part (``pre`` + ``Year``, ...) over a column the table already has: a user's
    ``saleYear`` holding other values would be replaced without a word (as FillMissing refuses an ``_na`` flag
    over a user's column). ``kind``: "pandas" or "Polars", the frame whose renaming the error shows."""
    names = [pre + p for p in _DATE_PARTS + (_TIME_PARTS if time else ()) + ("Elapsed",)]
    have = set(columns)
    taken = [c for c in names if c in have]
    if not taken:
        return
    c = taken[0]
    rename = (f"df.rename(columns={{{c!r}: {c + '_given'!r}}})" if kind == "pandas"
              else f"df.rename({{{c!r}: {c + '_given'!r}}})")
    drop = f"df.drop(columns={taken})" if kind == "pandas" else f"df.drop({taken})"
    raise DataError(f"add_datepart: column {field_name!r} gives the date part column(s) {taken}, but the table "
                    f"already has column(s) of those names, which would be overwritten; rename them ({rename}) or "
                    f"give the parts another prefix (add_datepart(df, {field_name!r}, prefix={(pre or field_name) + '_'!r})). "
                    f"Where they are the parts of an earlier add_datepart of {field_name!r}, drop them first "
                    f"({drop}).")


def to_pandas(frame: pl.DataFrame, index: Any) -> Any:
    """``frame`` as a pandas DataFrame with ``index``. Integer and boolean columns holding nulls become pandas'
    nullable ``Int32``/``boolean`` types (a plain conversion gives float64 and object), so that a missing date's
    ``Is_*`` flags, or a shrunk column with gaps, are read by ``cont_cat_split`` and ``Tabular`` as the Polars frame
    is; float columns (a missing date's number parts) hold NaN for null."""
    import pandas as pd

    out = frame.to_pandas()
    for name, dtype in frame.schema.items():
        col = frame.get_column(name)
        if col.null_count() and (dtype.is_integer() or dtype == pl.Boolean):
            # built from the values and the null mask, not from to_pandas' float64: 64-bit integers past
            # 2**53 stay exact, and no Python list is made (Int32 comes from int32 values)
            values, mask = col.fill_null(False if dtype == pl.Boolean else 0).to_numpy(), col.is_null().to_numpy()
            out[name] = (pd.arrays.BooleanArray(values, mask) if dtype == pl.Boolean
                         else pd.arrays.IntegerArray(values, mask))
    out.index = index
    return out


def cont_cat_split(df: Any, max_card: int = 20, dep_var: str | Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``(cont_names, cat_names)``: floats and integers with more than ``max_card`` distinct values are
    continuous; everything else (text, booleans, low-cardinality integers, and categories, a pandas
    ``category`` column of numbers too) is categorical. Date columns are left out (turn them into parts with
    ``add_datepart`` first).

    Example:
        >>> import polars as pl
        >>> cont_cat_split(pl.DataFrame({"a": [1.5, 2.0], "b": ["x", "y"], "y": [0, 1]}), dep_var="y")
        (['a'], ['b'])
    """
    # a pandas column made a category (astype("category")), of numbers too, is categorical: read as a table its
    # categories may come back as their numbers
    chosen = {str(c) for c, t in df.dtypes.items() if str(t) == "category"} if is_pandas(df, "DataFrame") else set()
    frame = read_frame(df)
    check("cont_cat_split", max_card=(max_card, Interval(1, None, integer=True)))
    skip = {dep_var} if isinstance(dep_var, str) else set(dep_var or [])
    cont, cat = [], []
    for c, dt in frame.schema.items():
        if c in skip or dt in _TEMPORAL or isinstance(dt, pl.Datetime) or dt == pl.Duration:
            continue
        if c not in chosen and (dt.is_float() or (dt.is_integer() and frame[c].n_unique() > max_card)):
            cont.append(c)
        else:
            cat.append(c)
    return cont, cat


def df_shrink(df: Any, skip: Sequence[str] = (), obj2cat: bool = True, int2uint: bool = False) -> Any:
    """Downcast each column to the smallest type that holds its values: integers by range, floats to
    Float32, text to Categorical (``obj2cat``); ``int2uint`` uses unsigned types for non-negative integers.
    The result is the caller's kind of frame: pandas in, pandas out (with its index); anything else gives a
    Polars frame. Categories are sorted, as pandas' ``astype("category")`` (and fastai's ``df_shrink``) makes
    them, so a pandas result's ``.cat.codes`` are theirs; a Polars Categorical orders its values lexically.

    Example:
        >>> import polars as pl
        >>> df_shrink(pl.DataFrame({"i": [1, 200], "f": [0.5, 1.0], "s": ["a", "b"]})).dtypes
        [Int16, Float32, Categorical]
        >>> import pandas as pd
        >>> df_shrink(pd.DataFrame({"i": [1, 200], "s": ["a", "b"]}, index=[7, 9])).dtypes.astype(str).to_dict()
        {'i': 'int16', 's': 'category'}
        >>> df_shrink(pd.DataFrame({"s": ["z", "a", "m", "a"]}))["s"].cat.codes.tolist()
        [2, 0, 1, 0]
    """
    if is_pandas(df, "DataFrame"):
        frame = read_frame(df)
        out = to_pandas(df_shrink(frame, skip, obj2cat, int2uint), df.index)
        for c, dt in frame.schema.items():  # text made categories: in sorted order, not the rows' order
            if dt == pl.String and obj2cat and c not in skip:
                out[c] = out[c].cat.reorder_categories(sorted(out[c].cat.categories))
        return out
    frame = read_frame(df)
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
                info = np.iinfo(str(t).lower())
                if info.min <= lo and hi <= info.max:
                    exprs.append(pl.col(c).cast(t))
                    break
        elif dt == pl.Float64:
            exprs.append(pl.col(c).cast(pl.Float32))
        elif dt == pl.String and obj2cat:
            exprs.append(pl.col(c).cast(pl.Categorical))
    return frame.with_columns(exprs) if exprs else frame
