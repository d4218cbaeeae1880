"""Reading dates written as text: which layout a column of text dates is in, refusing one that reads both
day-first and month-first (``01/06/2015``), so no date is silently read the other way round. Used by
``add_datepart``, ``TimeSplitter`` and the estimators, all through :func:`text_date_layouts` and
:func:`read_text_dates`."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import TypeVar

import polars as pl

from pipekit.core.errors import DataError

# a UTC offset (or Z) written after a time of day: "2015-03-31T23:30:00+02:00", "... 23:30 -0500", "...T23:30Z"
AWARE = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
OFFSET = r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
# day and month as numbers in either order: 01/02/2015, 1.2.15, 01-02-2015 13:45
_NUMERIC_DATE = r"^(\d{1,2})([/.\-])(\d{1,2})([/.\-])(\d{4}|\d{2})(.*)$"
# the same, with nothing after the year but a time of day (not "1.2.30.4")
_NUMERIC_DAY = r"^\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp][Mm])?)?$"
_TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S%.f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S%.f", " %I:%M %p",
                 " %I:%M:%S %p")
_ISO_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f")


#: what to do about a column whose every value reads both day-first and month-first, given the two formats
PASS_FORMAT = "pass format={day!r} (day first) or format={month!r} (month first)"


def _layouts_in_order(values: pl.Series, seps: pl.Series, year: str, day_first: bool) -> tuple[list[str], pl.Series]:
    """The layouts, day first or month first, one per way of writing the date in ``seps`` (its two separators) with
    the times of day that read ``values``, and the values read in them (null where none reads)."""
    layouts: list[str] = []
    parsed = pl.Series([None] * len(values), dtype=pl.Datetime("us"))
    for sep in seps:  # each way of writing the date, with the times of day that read its values
        date_fmt = f"%d{sep[0]}%m{sep[1]}{year}" if day_first else f"%m{sep[0]}%d{sep[1]}{year}"
        for time_fmt in _TIME_FORMATS:
            read = values.str.to_datetime(date_fmt + time_fmt, strict=False, time_unit="us")
            if (read.is_not_null() & parsed.is_null()).any():
                layouts.append(date_fmt + time_fmt)
                parsed = parsed.fill_null(read)
                if not parsed.null_count():
                    break
        if not parsed.null_count():
            break
    return layouts, parsed


def numeric_date_layouts(values: pl.Series, field: str, who: str, fix: str = PASS_FORMAT) -> list[str] | None:
    """The layouts of dates written day and month as numbers (``01/02/2015``), all in the one day and month order
    the values settle, one per way they are written (separators, time of day), that read them; None for other
    text. The order is read from every value together, whatever its layout.

    Raises (naming ``who``, the caller) when every value reads both day-first and month-first and the two
    readings differ, and when the years are written with both 2 and 4 digits (``15`` would be read as the year
    15); ``fix`` says what to do, given the two formats as ``day`` and ``month``.

    >>> numeric_date_layouts(pl.Series(["31/01/2015", "01-02-2015 10:30"]), "Date", "add_datepart")
    ['%d/%m/%Y', '%d-%m-%Y %H:%M']
    """
    parts = values.str.extract_groups(_NUMERIC_DATE)
    if values.is_empty() or parts.struct.field("1").null_count():
        return None
    p = parts.struct.unnest()
    first, second = p["1"].cast(pl.Int32), p["3"].cast(pl.Int32)
    seps = (p["2"] + p["4"]).unique(maintain_order=True)
    widths = p["5"].str.len_chars()
    s1, s2 = seps[0][0], seps[0][1]
    formats = {"day": f"%d{s1}%m{s2}%Y", "month": f"%m{s1}%d{s2}%Y"}
    if widths.n_unique() != 1:
        long, short = values.filter(widths == 4)[0], values.filter(widths == 2)[0]
        raise DataError(
            f"{who}: column {field!r} writes years with 4 and with 2 digits (e.g. {long!r} and {short!r}), so "
            f"a 2-digit year's century is not known; write every year with its 4 digits, then "
            f"{fix.format(**formats)}.")
    year = "%Y" if widths[0] == 4 else "%y"
    readings = []
    for name, day_first, ok in (("day-first", True, (second <= 12).all() and (first <= 31).all()),
                                ("month-first", False, (first <= 12).all() and (second <= 31).all())):
        if not ok:
            continue
        layouts, parsed = _layouts_in_order(values, seps, year, day_first)
        if not parsed.null_count():
            readings.append((name, layouts, parsed))
    if not readings:
        return None
    if len(readings) == 2 and not readings[0][2].equals(readings[1][2]):
        i = int((first != second).arg_true()[0])
        (_, [fmt_d, *_], by_day), (_, [fmt_m, *_], by_month) = readings
        raise DataError(
            f"{who}: column {field!r} is ambiguous: every value reads both day-first and month-first, "
            f"e.g. {values[i]!r} is {by_day[i]:%d %B %Y} or {by_month[i]:%d %B %Y}; "
            f"{fix.format(day=fmt_d, month=fmt_m)}.")
    return readings[0][1]


def numeric_date_format(values: pl.Series, field: str, who: str, fix: str = PASS_FORMAT) -> str | None:
    """The format of dates written day and month as numbers (``01/02/2015``), or None for other text and for dates
    written in several layouts (:func:`numeric_date_layouts` gives those).

    Raises (naming ``who``, the caller) when every value reads both day-first and month-first and the two
    readings differ, whatever their layouts, and when years are written with both 2 and 4 digits; ``fix`` says what
    to do, given the two formats as ``day`` and ``month``.

    >>> numeric_date_format(pl.Series(["31/01/2015", "01/02/2015"]), "Date", "add_datepart")
    '%d/%m/%Y'
    """
    layouts = numeric_date_layouts(values, field, who, fix)
    return layouts[0] if layouts is not None and len(layouts) == 1 else None


def iso_format(values: pl.Series) -> str | None:
    """The ISO layout that reads the most of ``values`` (None when none reads any)."""
    misses = [values.str.to_datetime(f, strict=False).null_count() for f in _ISO_FORMATS]
    best = min(range(len(misses)), key=misses.__getitem__)
    return _ISO_FORMATS[best] if len(values) and misses[best] < len(values) else None


def _distinct(values: pl.Series) -> pl.Series:
    """The distinct text dates of ``values``, stripped, a UTC offset after the time of day left out when every one
    has one (the parts read the local clock)."""
    given = values.cast(pl.String).str.strip_chars().drop_nulls().unique(maintain_order=True)
    if len(given) and given.str.contains(AWARE).all():
        given = given.str.replace(OFFSET, "")
    return given


def text_date_layouts(values: pl.Series, field: str, who: str, fix: str = PASS_FORMAT) -> list[str] | None:
    """The layouts a column of text dates is read in, each value in the first that reads it (see
    :func:`read_text_dates`): day and month as numbers in the one order every value together settles, a layout per
    way they are written (see :func:`numeric_date_layouts`; ``fix`` as it takes it), else the ISO layout that reads
    most of them; None when no layout reads any. It is read from every distinct value, a UTC offset after the time
    of day left out (the parts read the local clock). ``add_datepart``, ``TimeSplitter`` and the time folds read a
    column in them, and a fitted ``TabularClassifier`` or ``TabularRegressor`` keeps the numeric ones, so later rows
    are read in the training rows' order: a few rows such as ``05/03/2016`` read both ways on their own.

    >>> text_date_layouts(pl.Series(["13/02/2015", "03-04-2015 10:00", None]), "Date", "fit")
    ['%d/%m/%Y', '%d-%m-%Y %H:%M']
    >>> text_date_layouts(pl.Series(["2015-07-31T10:00:00+02:00"]), "t", "fit"), text_date_layouts(pl.Series(["x"]), "t", "fit")
    (['%Y-%m-%dT%H:%M:%S'], None)
    """
    given = _distinct(values)
    numeric = numeric_date_layouts(given, field, who, fix)
    if numeric is not None:
        return numeric
    iso = iso_format(given)
    return None if iso is None else [iso]


_Text = TypeVar("_Text", pl.Series, pl.Expr)


def read_text_dates(text: _Text, layouts: Sequence[str]) -> _Text:
    """Text dates (a Series or an expression) as datetimes, each value read in the first of ``layouts`` that reads
    it, null where none does.

    >>> read_text_dates(pl.Series(["13/02/2015", "03-04-2015 10:00", "x"]), ["%d/%m/%Y", "%d-%m-%Y %H:%M"]).to_list()
    [datetime.datetime(2015, 2, 13, 0, 0), datetime.datetime(2015, 4, 3, 10, 0), None]
    """
    reads = [text.str.to_datetime(format=f, strict=False, time_unit="us") for f in layouts]
    return functools.reduce(lambda a, b: a.fill_null(b), reads)


def text_date_format(values: pl.Series, field: str, who: str, fix: str = PASS_FORMAT) -> str | None:
    """The one layout a column of text dates is read in (see :func:`text_date_layouts`), or None when no layout
    reads any and when the column is written in several layouts.

    >>> text_date_format(pl.Series(["31/01/2015", "05/03/2016", None]), "Date", "fit")
    '%d/%m/%Y'
    >>> text_date_format(pl.Series(["2015-07-31T10:00:00+02:00"]), "t", "fit"), text_date_format(pl.Series(["x"]), "t", "fit")
    ('%Y-%m-%dT%H:%M:%S', None)
    """
    layouts = text_date_layouts(values, field, who, fix)
    return layouts[0] if layouts is not None and len(layouts) == 1 else None


def _numeric_formats() -> frozenset[str]:
    out: set[str] = set()
    for s1 in "/.-":
        for s2 in "/.-":
            for year in ("%Y", "%y"):
                for date in (f"%d{s1}%m{s2}{year}", f"%m{s1}%d{s2}{year}"):
                    out.update(date + t for t in _TIME_FORMATS)
    return frozenset(out)


#: the layouts of dates written day and month as numbers (what a fitted estimator keeps: they read two ways), every
#: one :func:`text_date_layouts` gives; a layout read from a file must be one of them
NUMERIC_FORMATS = _numeric_formats()


def in_order_of(kept: str | Sequence[str], values: pl.Series) -> list[str]:
    """The layouts in the day and month order of ``kept`` (a layout or the layouts of a column of numeric text
    dates) that read every one of ``values``, one per way they are written, with or without a time of day whatever
    ``kept`` had; ``kept`` itself when they do not read them all (the values not read are then named by whoever
    parses them).

    >>> in_order_of("%d/%m/%Y", pl.Series(["05/03/2016 13:45"])), in_order_of(["%d/%m/%Y %H:%M"], pl.Series(["05.03.2016"]))
    (['%d/%m/%Y %H:%M'], ['%d.%m.%Y'])
    """
    layouts = [kept] if isinstance(kept, str) else list(kept)
    given = _distinct(values)
    parts = given.str.extract_groups(_NUMERIC_DATE)
    if given.is_empty() or parts.struct.field("1").null_count():
        return layouts
    p = parts.struct.unnest()
    widths = p["5"].str.len_chars()
    if widths.n_unique() != 1:
        return layouts
    read, parsed = _layouts_in_order(given, (p["2"] + p["4"]).unique(maintain_order=True),
                                     "%Y" if widths[0] == 4 else "%y", layouts[0].startswith("%d"))
    return layouts if parsed.null_count() else read


# a date written year first with dashes, optionally with a time of day: 2015-07-31, 2015-07-31 13:45:00, ...T13:45
_STRICT_ISO = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"


def numeric_dates(values: pl.Series) -> bool:
    """Whether text ``values`` are all dates written day and month as numbers (``31/07/2015``, ``7.31.15 13:45``),
    every one that is not null: a layout read only when a column is named as a date, since ``01/02/2015`` reads
    two ways.

    >>> numeric_dates(pl.Series(["31/07/2015", None, "01/08/2015 10:30"])), numeric_dates(pl.Series(["1.2.30.4"]))
    (True, False)
    """
    if values.dtype != pl.String:
        return False
    given = values.drop_nulls().str.strip_chars()
    if given.is_empty() or not given.head(64).str.contains(_NUMERIC_DAY).all():
        return False
    return bool(given.str.contains(_NUMERIC_DAY).all())


def iso_dates(values: pl.Series) -> bool:
    """Whether text ``values`` are dates written the ISO way (``2015-07-31``, optionally with a time of day), every
    one of them that is not null in one layout, and real dates (no 2015-02-30): a column read from a CSV without
    parsing its dates.

    >>> iso_dates(pl.Series(["2015-07-31", None, "2015-08-01"])), iso_dates(pl.Series(["2015-02-30"]))
    (True, False)
    >>> iso_dates(pl.Series(["31/07/2015"])), iso_dates(pl.Series(["2015", "a"])), iso_dates(pl.Series([None], dtype=pl.String))
    (False, False, False)
    """
    if values.dtype != pl.String:
        return False
    # free text (reviews, names) fails on its first values: a cheap look before the whole column is read
    if not values.drop_nulls().head(64).str.strip_chars().str.contains(_STRICT_ISO).all():
        return False
    given = values.drop_nulls().str.strip_chars().unique()
    if given.is_empty() or not given.str.contains(_STRICT_ISO).all():
        return False
    fmt = iso_format(given)  # one layout for all, as add_datepart reads them
    return fmt is not None and not given.str.to_datetime(fmt, strict=False, time_unit="us").null_count()


def has_time_of_day(values: pl.Series) -> bool:
    """Whether dates (a Date or Datetime column, or ISO text) hold a time of day other than midnight: date parts
    of a column of days leave out the hour, minute and second, which would be constant.

    >>> has_time_of_day(pl.Series(["2015-07-31", "2015-08-01"])), has_time_of_day(pl.Series(["2015-07-31 13:45"]))
    (False, True)
    """
    if values.dtype == pl.String:
        given = values.drop_nulls().str.strip_chars().unique()
        fmt = iso_format(given)
        if fmt is None:
            return False
        values = given.str.to_datetime(fmt, strict=False, time_unit="us")
    if not isinstance(values.dtype, pl.Datetime):
        return False
    return bool((values.drop_nulls().dt.time() != dt.time(0)).any())
