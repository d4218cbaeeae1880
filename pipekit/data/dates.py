"""Reading dates written as text: which layout a column of text dates is in, refusing one that reads both
day-first and month-first (``01/06/2015``), so no date is silently read the other way round. Used by
``add_datepart`` and ``TimeSplitter``."""

from __future__ import annotations

import polars as pl

from pipekit.core.errors import DataError

# a UTC offset (or Z) written after a time of day: "2015-03-31T23:30:00+02:00", "... 23:30 -0500", "...T23:30Z"
AWARE = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
OFFSET = r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
# day and month as numbers in either order: 01/02/2015, 1.2.15, 01-02-2015 13:45
_NUMERIC_DATE = r"^(\d{1,2})([/.\-])(\d{1,2})([/.\-])(\d{4}|\d{2})(.*)$"
_TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S%.f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S%.f", " %I:%M %p",
                 " %I:%M:%S %p")
_ISO_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f")


def numeric_date_format(values: pl.Series, field: str, who: str) -> str | None:
    """The format of dates written day and month as numbers (``01/02/2015``), or None for other text.

    Raises (naming ``who``, the caller) when every value reads both day-first and month-first and the two
    readings differ.

    >>> numeric_date_format(pl.Series(["31/01/2015", "01/02/2015"]), "Date", "add_datepart")
    '%d/%m/%Y'
    """
    parts = values.str.extract_groups(_NUMERIC_DATE)
    if values.is_empty() or parts.struct.field("1").null_count():
        return None
    p = parts.struct.unnest()
    first, second = p["1"].cast(pl.Int32), p["3"].cast(pl.Int32)
    seps, years = (p["2"] + p["4"]).unique(), p["5"].str.len_chars().unique()
    if len(seps) != 1 or len(years) != 1:
        return None  # mixed separators or year widths: left to the general parser, which reports the misfits
    s1, s2 = seps[0][0], seps[0][1]
    year = "%Y" if years[0] == 4 else "%y"
    readings = []
    for name, date_fmt, ok in (("day-first", f"%d{s1}%m{s2}{year}", (second <= 12).all() and (first <= 31).all()),
                               ("month-first", f"%m{s1}%d{s2}{year}", (first <= 12).all() and (second <= 31).all())):
        if not ok:
            continue
        for time_fmt in _TIME_FORMATS:
            parsed = values.str.to_datetime(date_fmt + time_fmt, strict=False)
            if not parsed.null_count():
                readings.append((name, date_fmt + time_fmt, parsed))
                break
    if not readings:
        return None
    if len(readings) == 2 and not readings[0][2].equals(readings[1][2]):
        i = int((first != second).arg_true()[0])
        (_, fmt_d, by_day), (_, fmt_m, by_month) = readings
        raise DataError(
            f"{who}: column {field!r} is ambiguous: every value reads both day-first and month-first, "
            f"e.g. {values[i]!r} is {by_day[i]:%d %B %Y} or {by_month[i]:%d %B %Y}; pass format={fmt_d!r} "
            f"(day first) or format={fmt_m!r} (month first).")
    return readings[0][1]


def iso_format(values: pl.Series) -> str | None:
    """The ISO layout that reads the most of ``values`` (None when none reads any)."""
    misses = [values.str.to_datetime(f, strict=False).null_count() for f in _ISO_FORMATS]
    best = min(range(len(misses)), key=misses.__getitem__)
    return _ISO_FORMATS[best] if len(values) and misses[best] < len(values) else None
