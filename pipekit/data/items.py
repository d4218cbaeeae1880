"""Any supported source becomes one Polars DataFrame with a row per item."""
from __future__ import annotations

import array
import codecs
import contextlib
import csv
import functools
import io
import mmap
import os
import re
import sys
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from pipekit.core.archive import MAX_RATIO, RATIO_FLOOR
from pipekit.core.errors import DataError, ParameterError, collecting, warn
from pipekit.core.validate import Options, check, is_missing, is_pandas, unknown_names

#: the texts a CSV field holds for a missing value, as pandas.read_csv (and so fastai) reads them by default: a
#: column of numbers with 'NA' in it is a column of numbers, a class written 'N/A' is no class
PANDAS_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
             "NA", "NULL", "NaN", "None", "n/a", "nan", "null")

#: the texts of :data:`PANDAS_NA` Polars reads as text (it reads an empty field as missing already)
MISSING_MARKERS = PANDAS_NA[1:]


def holds_missing_markers(frame: pl.DataFrame) -> bool:
    """Whether a text column of ``frame`` (read from a CSV without ``null_values``) holds a text pandas reads as
    missing (:data:`PANDAS_NA`): a column of numbers with an 'NA' in it is read as text, so it shows here too. A
    look-up of each text column, some 20 ms a million rows: the file is parsed a second time with ``null_values``
    only where one is found, since Polars reads a file up to twice as slowly with them."""
    found = frame.select(pl.col(pl.String).is_in(MISSING_MARKERS).any())
    return found.width > 0 and any(found.row(0))


def missing_markers_to_null(frame: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``frame`` with the texts pandas reads as missing (:data:`PANDAS_NA`) as nulls in its text ``columns``."""
    return frame.with_columns(pl.when(pl.col(c).is_in(MISSING_MARKERS)).then(None).otherwise(pl.col(c)).alias(c)
                              for c in columns)


TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "ipc",
                  ".feather": "ipc", ".ipc": "ipc"}

#: the files the table readers (``read_table``, ``Tabular``, ``TabularDataLoaders.from_csv``) also read as a CSV,
#: whole (:func:`read_packed_csv`), by the end of their name: a CSV or TSV compressed with gzip (``adult.csv.gz``), a
#: ``.zip`` archive holding one CSV (as Kaggle gives its tables) and a ``.txt`` file, a comma-separated CSV as
#: ``pandas.read_csv`` reads one. They are kept apart from :data:`TABLE_SUFFIXES`, by which the command line and a
#: DataBlock's items tell a table: there a ``.txt`` file is text, and a ``.gz`` or ``.zip`` file may hold anything.
PACKED_CSV_SUFFIXES = {".gz": "gzip", ".zip": "zip", ".txt": "text"}

#: the names a CSV goes by inside a ``.gz`` or ``.zip`` file (a ``.tsv`` is tab separated)
_CSV_NAMES = (".csv", ".tsv", ".txt")


def table_kind(path: str | os.PathLike) -> str | None:
    """How the table readers read the file at ``path``, told by the end of its name: ``'csv'``, ``'parquet'`` or
    ``'ipc'`` (:data:`TABLE_SUFFIXES`), ``'packed'`` (:data:`PACKED_CSV_SUFFIXES`: a CSV read whole by
    :func:`read_packed_csv`), or None (a file of another kind, a ``.tar.gz`` or a compressed Parquet file among them).

    >>> table_kind("adult.csv"), table_kind("train.csv.gz"), table_kind("bulldozers.zip"), table_kind("x.parquet.gz")
    ('csv', 'packed', 'packed', None)
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    if PACKED_CSV_SUFFIXES.get(suffix) == "gzip":
        inner = Path(p.stem).suffix.lower()
        return "packed" if inner in _CSV_NAMES or inner not in (*TABLE_SUFFIXES, ".tar") else None
    return "packed" if suffix in PACKED_CSV_SUFFIXES else None


def table_formats() -> str:
    """The endings of the files the table readers read, for a message."""
    return (f"{sorted(TABLE_SUFFIXES)}, and as a CSV read whole .csv.gz/.tsv.gz (gzip), a .zip holding one CSV and "
            ".txt (comma separated)")


def read_packed_csv(path: str | os.PathLike, **kwargs: Any) -> pl.DataFrame:
    """The CSV in the file at ``path`` (see :data:`PACKED_CSV_SUFFIXES`), read whole as :func:`read_csv` reads a
    ``.csv`` file (``kwargs`` are its; the separator is a tab for a ``.tsv`` inside, else a comma): a compressed
    CSV or the one CSV of a zip archive is written out to a temporary file first, so its blank lines, missing-value
    markers and faulty lines are read and named alike. Errors and warnings name ``path`` (and the file inside).

    >>> import gzip, tempfile
    >>> f = Path(tempfile.mkdtemp()) / "t.csv.gz"
    >>> _ = f.write_bytes(gzip.compress(b"a,b\\n1,x\\nNA,y\\n"))
    >>> read_packed_csv(f)["a"].to_list()
    [1, None]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    with _unpacked_csv(path) as (file, where):
        sep = "\t" if file.suffix.lower() == ".tsv" else ","
        if file == path:
            return read_csv(file, **{"separator": sep, **kwargs})
        said: list[Any] = []
        try:
            with collecting() as said:  # this thread's alone: a server or a thread pool reads tables side by side
                return read_csv(file, **{"separator": sep, **kwargs})
        except DataError as e:
            if e.args and isinstance(e.args[0], str):
                e.args = (e.args[0].replace(str(file), where), *e.args[1:])
            raise
        finally:
            for w in said:  # a warning names the file the user gave, not the temporary copy
                warn(str(w.message).replace(str(file), where), w.category)


@contextlib.contextmanager
def _unpacked_csv(path: Path) -> Generator[tuple[Path, str], None, None]:
    """``(file, where)``: the plain CSV file ``path`` is or holds (a temporary file, gone after the block, for a
    ``.gz`` or ``.zip``), and how a message names it."""
    kind = PACKED_CSV_SUFFIXES.get(path.suffix.lower())
    if kind == "text":
        yield path, str(path)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pipekit_csv_") as tmp:
        if kind == "gzip":
            import gzip
            import zlib

            file, where = Path(tmp) / Path(path.stem).name, str(path)
            try:
                with gzip.open(path, "rb") as src, open(file, "wb") as dst:
                    inflate_bounded(src, dst, path, where)
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{path} is not a complete gzip file ({e}); check it (gzip -t), or download it "
                                "again") from None
        else:
            member = _zip_csv_member(path)
            file, where = Path(tmp) / Path(member).name, f"{path} ({member})"
            import zipfile

            try:
                with zipfile.ZipFile(path) as z, z.open(member) as src, open(file, "wb") as dst:
                    inflate_bounded(src, dst, path, where)
            except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile) as e:
                raise DataError(f"{where}: could not be read from the zip archive ({e}); check it (unzip -t), or "
                                "download it again") from None
        yield file, where


def inflate_bounded(src: Any, dst: Any, path: Path, where: str, written: int = 0,
                    advice: str = "as no table does (a zip bomb?); check where it came from, or extract it yourself "
                                  "and pass the CSV") -> int:
    """Copy the inflated bytes of ``src`` (a member of the compressed file ``path``) to ``dst``, refusing more than
    ``MAX_RATIO`` times the compressed file's size (pipekit's bound on its own archives): a file of a few KB that
    inflates to GBs (a zip bomb) is stopped before it fills the disk. A real CSV compresses 5 to 20 times.
    ``written``: the bytes the members of ``path`` copied before this one gave, so that the bound holds for them all
    together (a data set archive's extraction); returns the total. ``advice`` ends the DataError: why and the fix."""
    limit = max(RATIO_FLOOR, MAX_RATIO * path.stat().st_size)
    while block := src.read(1 << 24):
        written += len(block)
        if written > limit:
            raise DataError(f"{where} inflates to more than {MAX_RATIO} times its {path.stat().st_size:,} bytes, "
                            f"{advice}")
        dst.write(block)
    return written


def _zip_csv_member(path: Path) -> str:
    """The name of the one CSV in the zip archive at ``path`` (folders, hidden files and macOS' ``__MACOSX/`` copies
    aside); a DataError naming what it holds when that is not one CSV."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")
                     and not Path(i.filename).name.startswith(".")]
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable zip archive ({e}); check it (unzip -t), or download it "
                        "again") from None
    if len(names) == 1 and Path(names[0]).suffix.lower() in _CSV_NAMES:
        return names[0]
    shown = names[:10] + ([f"... {len(names) - 10} more"] if len(names) > 10 else [])
    what = "no file" if not names else f"{len(names)} files {shown}" if len(names) > 1 else f"{names[0]!r}, not a CSV"
    raise DataError(f"{path}: a zip archive is read as a table when it holds one CSV, and this one holds {what}; "
                    "extract it (unzip) and pass the file to read")


def parquet_files(source: str | os.PathLike) -> list[Path] | None:
    """The Parquet files a folder or a glob pattern (``'data/*.parquet'``, given as a string or path that names no
    file) stands for, sorted, to be read as one table; None when ``source`` is neither. A folder is read when it holds
    Parquet files only (names beginning with '.' or '_', such as Spark's ``_SUCCESS``, aside), all with the same
    columns and types; a folder or pattern of anything else is refused saying what it holds and what to pass."""
    import glob

    p = Path(source)
    if p.is_dir():
        where, entries = f"the folder {p}", [e for e in sorted(p.iterdir()) if not e.name.startswith((".", "_"))]
        folders = [e.name for e in entries if e.is_dir()]
        if folders:
            raise DataError(f"{where} holds folders ({folders[:5]}); pipekit reads a folder of Parquet files, not its "
                            f"sub-folders: pass pl.scan_parquet('{p}/**/*.parquet', hive_partitioning=True) (or the "
                            "files) to read them all")
    elif not p.exists() and any(c in str(source) for c in "*?["):
        where = f"the pattern {str(source)!r}"
        entries = [Path(f) for f in sorted(glob.glob(str(source), recursive=True)) if Path(f).is_file()]
        if not entries:
            raise FileNotFoundError(f"{where} matches no file")
    else:
        return None
    if not entries:
        raise DataError(f"{where} holds no file; put the table's Parquet files in it")
    kinds: dict[str, list[str]] = {}
    for e in entries:
        kinds.setdefault(e.suffix.lower() if table_kind(e) != "parquet" else ".parquet", []).append(e.name)
    if set(kinds) != {".parquet"}:
        held = "; ".join(f"{k or 'no suffix'}: {v[:5]}{' ...' if len(v) > 5 else ''}" for k, v in kinds.items())
        fix = f"pass pl.scan_parquet('{p if p.is_dir() else p.parent}/*.parquet') to read its Parquet files" \
            if ".parquet" in kinds else "give one of its files, or read them yourself into one frame " \
            "(pl.concat([pl.read_csv(f) for f in files])) and pass it"
        raise DataError(f"{where} holds files other than Parquet ({held}); a folder or pattern is read as one table "
                        f"when its files are all Parquet: {fix}")
    first = _parquet_schema(entries[0])
    for e in entries[1:]:
        other = _parquet_schema(e)
        if list(other.items()) != list(first.items()):
            lacks, adds = [c for c in first if c not in other], [c for c in other if c not in first]
            typed = [f"{c!r} {first[c]} vs {other[c]}" for c in first if c in other and first[c] != other[c]]
            diff = "; ".join([f"{e.name} lacks {lacks}"] * bool(lacks) + [f"{e.name} adds {adds}"] * bool(adds)
                             + [", ".join(typed)] * bool(typed))
            raise DataError(f"{where}: {e.name} has other columns than {entries[0].name} ({diff or 'another order'}); "
                            "the files are read as one table, so give them the same columns and types, in one order")
    return entries


def _parquet_schema(path: Path) -> dict[str, Any]:
    """The columns and types of the Parquet file at ``path`` (its footer only), a DataError naming it if it is not
    one or nests too deeply (:func:`check_table_nesting`)."""
    check_table_nesting(path, "parquet")
    try:
        with open(path, "rb") as f:  # an open file: a name like a[1].parquet is that file, never a pattern
            return dict(pl.read_parquet_schema(f))
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
        raise table_error(path, e) from e


#: the most levels a column of a Parquet or Arrow table file may nest (a list of numbers is 1, a list of lists 2, a
#: struct of lists 2): tables pipekit reads nest a level or two, and Polars overflows its stack and kills Python on a
#: column some 400 lists deep (a 43 KB file), where pandas refuses over 100 schema levels
MAX_NESTING = 32


def _nested_types(t: pa.DataType) -> Generator[tuple[pa.DataType, int], None, None]:
    """The Arrow type ``t`` and every type inside it (a list's values, a struct's fields, a dictionary's values, an
    extension type's storage), each with its depth: 0 for ``t``, 1 for a list's or a struct's children."""
    todo = [(t, 0)]
    while todo:
        t, depth = todo.pop()
        if isinstance(t, pa.BaseExtensionType):
            t = t.storage_type
        if isinstance(t, pa.DictionaryType):
            t = t.value_type
        yield t, depth
        todo.extend((t.field(i).type, depth + 1) for i in range(t.num_fields))


def _nesting(t: pa.DataType) -> int:
    """How many levels the Arrow type ``t`` nests: 0 for a number or a text, 1 for a list or a struct of them."""
    return max(depth for _, depth in _nested_types(t))


@functools.lru_cache(maxsize=64)
def _polars_time_zone(tz: str) -> bool:
    """Whether Polars knows the time zone ``tz`` (its own database: 'Europe/Paris', 'UTC', '+01:00')."""
    try:
        pl.Series([0]).cast(pl.Datetime("us", tz))
        return True
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        return False


def _polars_unreadable(t: pa.DataType, kind: str) -> str | None:
    """What in the Arrow type ``t`` of a column of a Parquet (``kind`` 'parquet') or Arrow ('ipc') file Polars
    cannot read (it panics, an error no ``except Exception`` catches), said for the message; None when it reads
    all of it."""
    is_list_view = getattr(pa.types, "is_list_view", lambda t: False)
    is_large_list_view = getattr(pa.types, "is_large_list_view", lambda t: False)
    is_run_end_encoded = getattr(pa.types, "is_run_end_encoded", lambda t: False)
    for inner, _ in _nested_types(t):
        if pa.types.is_union(inner):
            return f"a union type ({inner})"
        if is_run_end_encoded(inner):
            return f"a run-end encoded type ({inner})"
        if is_list_view(inner) or is_large_list_view(inner):
            return f"a list view type ({inner})"
        if pa.types.is_interval(inner):
            return f"an interval type ({inner})"
        if pa.types.is_decimal256(inner) and (kind == "ipc" or inner.precision > 38):
            return f"a 256-bit decimal ({inner}; Polars reads decimals of at most 38 digits, as 128 bits)"
        if pa.types.is_fixed_size_list(inner) and inner.list_size == 0:
            return f"a fixed-size list of zero values ({inner})"
        if pa.types.is_timestamp(inner) and inner.tz and not _polars_time_zone(inner.tz):
            return f"timestamps in the time zone {inner.tz!r} (unknown to Polars' time zone database)"
    return None


def check_table_nesting(path: Path, kind: str) -> None:
    """Refuse a Parquet (``kind`` 'parquet') or Arrow IPC ('ipc') table file a column of which nests more than
    :data:`MAX_NESTING` levels, or holds a type Polars cannot read (a union, a list view, an interval, a
    256-bit decimal in an Arrow file, a time zone Polars does not know: Polars panics on them), before Polars opens
    it: a DataError naming the file and the column. pyarrow reads the file's footer alone, and refuses a schema
    nested past its own bound (100 Parquet levels, some 50 lists) cleanly, where Polars' readers, its schema reader
    among them, crash the process. A file pyarrow cannot read for another reason is left to Polars, whose error names
    it (:func:`table_error`)."""
    import pyarrow.ipc
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            schema = pq.read_schema(path)
        else:
            with pa.memory_map(str(path), "r") as source:
                schema = pyarrow.ipc.open_file(source).schema
    except (OSError, pa.ArrowException) as e:
        said = str(e)
        # a Parquet schema over pyarrow's depth (50 lists); an Arrow footer over its verifier's (some 130 lists)
        if "nested" in said or "depth" in said.lower() or "Verification of flatbuffer" in said:
            raise DataError(f"{path}: pyarrow refuses its schema ({said}): a column nests deeper than the "
                            f"{MAX_NESTING} levels pipekit reads (lists or structs inside each other), as no table's "
                            "does, or the file is damaged; check where it came from, or write the table again "
                            "without such a column") from None
        return
    reader = "pyarrow.parquet.read_table" if kind == "parquet" else "pyarrow.feather.read_table"
    for field in schema:
        depth = _nesting(field.type)
        if depth > MAX_NESTING:
            raise DataError(f"{path}: column {field.name!r} nests {depth} levels (lists or structs inside each "
                            f"other), over the {MAX_NESTING} pipekit reads, as no table's does; check where the "
                            f"file came from, or leave the column out: read the others with {reader}(path, "
                            "columns=[...]) and pass the table")
        unreadable = _polars_unreadable(field.type, kind)
        if unreadable is not None:
            raise DataError(f"{path}: column {field.name!r} holds {unreadable}, which Polars cannot read; leave the "
                            f"column out: read the others with {reader}(path, columns=[...]) and pass the table, or "
                            "write the file again with the column cast to a type Polars reads")


def pandas_overflow_error(frame: Any, columns: Sequence[Any]) -> DataError | None:
    """The DataError for the ``columns`` of pandas ``frame`` whose integers do not fit in 64 bits (a 30-digit id in
    a column of Python ints), which Arrow cannot hold as numbers: it names each column and its first such value and
    says the fix; None when no column holds one."""
    def too_big(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63

    found = []
    for c in columns:
        if c not in frame.columns or frame[c].dtype != object:
            continue
        try:
            pl.from_pandas(frame[[c]])
        except OverflowError:
            big = frame[c].map(too_big)
            found.append(f"{c!r} ({frame[c][big].iloc[0]} at row {big[big].index[0]!r})" if big.any() else repr(c))
    if not found:
        return None
    return DataError(f"column(s) {', '.join(found)} hold integers too large for 64 bits, which a table of numbers "
                     "cannot hold; cast them to float (df[col].astype(float)) or, for ids, to text "
                     "(df[col].astype(str)), or leave them out of the columns read")


def read_table(path: str | os.PathLike, **kwargs: Any) -> pl.DataFrame:
    """Read a CSV/TSV/Parquet/Arrow file into Polars, with an error naming the file when it fails; a ``.csv.gz``,
    a ``.zip`` holding one CSV or a ``.txt`` CSV is read whole by :func:`read_packed_csv`.

    >>> import pipekit.datasets as D
    >>> from pipekit.data import read_table
    >>> df = read_table(D.path("adult_sample") / "adult.csv", n_rows=3)
    >>> df.shape, df.columns[:3]
    ((3, 15), ['age', 'workclass', 'fnlwgt'])
    >>> try:
    ...     read_table("notes.docx")
    ... except ValueError as e:
    ...     print(str(e)[:49])
    notes.docx: unsupported table format '.docx'; the
    """
    path = Path(path)
    kind = table_kind(path)
    if kind is None:
        raise ValueError(f"{path}: unsupported table format {path.suffix!r}; the formats read are {table_formats()}")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if kind == "packed":
        return read_packed_csv(path, **kwargs)
    if kind == "csv":
        return read_csv(path, **{"separator": "\t" if path.suffix.lower() == ".tsv" else ",", **kwargs})
    check_table_nesting(path, kind)  # before Polars, which a deeply nested column crashes
    try:
        if kind == "parquet":
            return as_enums(pl.read_parquet(path, **{"glob": False, **kwargs}), parquet_ordered_categories([path]))
        with open(path, "rb") as f:  # read_ipc has no glob switch; an open file is read as it is
            return pl.read_ipc(f, **kwargs)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:  # a panic is no Exception: named here
        raise table_error(path, e) from e


def read_csv(path: str | os.PathLike, **kwargs: Any) -> pl.DataFrame:
    """``pl.read_csv`` (column types from the first 10,000 rows) with errors naming the file: an empty file, one
    that is not UTF-8 (with the line), a line with more fields than the header, or anything else Polars refuses. A
    value that does not parse as the type the first rows gave its column (a '?' after 10,000 numbers) makes the file
    be read again with each column's type from all its rows, so the column reads as text and the table's checks
    name the value and its row. Blank lines are no rows (:func:`skip_blank_lines`); ``n_rows`` counts rows. The
    texts pandas reads as missing (:data:`PANDAS_NA`: 'NA', 'N/A', 'null', 'nan', ...) are missing values. A UTF-16
    or UTF-32 file is refused with the fix (:func:`wide_encoding_error`). The header's columns are named as pandas
    names them (:func:`pandas_header_names`): a second ``age`` is ``age.1``, an empty name ``Unnamed: 3``."""
    path = Path(path)
    # glob=False: a file named data[1].csv or q*.csv is that file, never a pattern over others beside it
    kwargs = {"infer_schema_length": 10_000, "glob": False, **kwargs}
    sep, header = kwargs.get("separator", ","), kwargs.get("has_header", True)
    if (wide := wide_encoding_error(path)) is not None:  # Polars may read it, as names and values between NUL bytes
        raise wide
    try:
        source = csv_source(path, sep, header)
        try:
            raw = pl.read_csv(source(), **kwargs)
        except pl.exceptions.ComputeError as e:
            if "could not parse" not in str(e) or kwargs["infer_schema_length"] is None:
                raise
            kwargs = {**kwargs, "infer_schema_length": None}
            raw = pl.read_csv(source(), **kwargs)
        if "null_values" not in kwargs and holds_missing_markers(raw):  # read again only where a text says 'NA'
            kwargs["null_values"] = list(PANDAS_NA)
            raw = pl.read_csv(source(), **kwargs)
        frame = skip_blank_lines(raw, path, sep, header)
        asked = read = kwargs.get("n_rows")
        while asked and frame.height < asked and raw.height == read:  # blank lines took some of the rows asked for
            read = raw.height + asked - frame.height
            raw = pl.read_csv(source(), **{**kwargs, "n_rows": read})
            frame = skip_blank_lines(raw, path, sep, header)
    except pl.exceptions.PolarsError as e:
        raise table_error(path, e, sep, header) from e
    if not header or "new_columns" in kwargs:  # no header, or the caller named the columns
        return frame
    names = pandas_header_names(header_fields(path, sep, frame.columns))  # 'age.1', 'Unnamed: 3', as pandas has them
    renamed = {w: c for w, c in zip(frame.columns, names) if w != c}
    return frame.rename(renamed) if renamed else frame


def skip_blank_lines(frame: Any, path: Path, separator: str = ",", has_header: bool = True) -> Any:
    """``frame`` (a DataFrame, or a LazyFrame, which stays lazy), read by Polars from the CSV at ``path``, without
    the rows of nulls Polars reads from the file's blank lines: they are no rows, as ``pandas.read_csv`` reads them
    (``skip_blank_lines``), where they would be refused as missing labels or predicted as rows no one wrote. A row
    whose values are all missing, written with its separators (``,,,``), is a row and stays; so does a blank line
    inside a quoted text. One warning names the file and the count (:func:`blank_line_rows`)."""
    empty = pl.all_horizontal(pl.all().is_null())
    if isinstance(frame, pl.DataFrame) and not (frame.height and frame.width and frame.select(empty.any()).item()):
        return frame  # no row of nulls, no blank line: the file is not read again
    rows = blank_line_rows(path, separator, has_header)
    if not len(rows):
        return frame
    names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    index = "__row"
    while index in names:
        index += "_"
    keep = ~pl.col(index).is_in(pl.Series(rows, dtype=pl.UInt32).implode())
    if isinstance(frame, pl.DataFrame):  # eager, a blank line's row is checked to be all nulls too (no cost)
        keep = keep | ~pl.all_horizontal(pl.exclude(index).is_null())
    return frame.with_row_index(index).filter(keep).drop(index)


def blank_line_rows(path: Path, separator: str = ",", has_header: bool = True) -> np.ndarray:
    """The positions (from 0) of the rows Polars reads from the blank lines of the CSV at ``path`` as rows of nulls
    (the blank lines before a header it skips), with a warning naming the lines, once per version of the file. A
    line of spaces and tabs only is blank too, as pandas reads it (the separator excepted: a tab in a TSV is a
    field's end). A blank line inside a quoted text is part of it, not counted. Only a file holding a blank line is
    parsed again (its records split by the ``csv`` module, as Polars splits them); finding none costs a search of
    its bytes. The rows are a NumPy array: a file of millions of blank lines costs 8 bytes each."""
    return _blank_lines(path, separator, has_header).rows


def csv_source(path: Path, separator: str = ",", has_header: bool = True) -> Any:
    """What Polars reads the CSV at ``path`` from, called once per read: the path itself, or, where a line holds
    only spaces or tabs (which Polars reads as a row whose first value is that text, typing a column of numbers as
    text), the file's bytes with those lines emptied, so they are blank lines (:func:`skip_blank_lines`) and the
    columns take the types their values give; the line numbers stay the file's."""
    spaces = _blank_lines(path, separator, has_header).space_lines
    if not len(spaces):
        return lambda: path
    lines = path.read_bytes().splitlines(keepends=True)
    for i in spaces:
        line = lines[i - 1]
        lines[i - 1] = line[len(line.rstrip(b"\r\n")):]
    data = b"".join(lines)
    return lambda: io.BytesIO(data)


class BlankLines(NamedTuple):
    """The blank lines of a CSV: ``rows``, the positions (from 0) of the rows Polars reads from them, and
    ``space_lines``, the lines (from 1) of those that hold spaces or tabs."""

    rows: np.ndarray
    space_lines: np.ndarray


_NO_BLANK_LINES = BlankLines(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def file_version(path: Path) -> tuple[int, ...]:
    """What tells one version of the file at ``path`` from another, for what is remembered about a file while it
    is unchanged: its size, modification and change times and its inode and device. The change time is the
    kernel's: a file copied over with its size and modification time kept (``cp -p``, ``rsync -t``) or written
    in place and given its old time back (``os.utime``) still gets a new one, and a file replaced by a rename
    gets a new inode."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def _blank_lines(path: Path, separator: str, has_header: bool) -> BlankLines:
    """The blank lines of the CSV at ``path`` (see :func:`blank_line_rows`)."""
    return _blank_line_rows(str(path), separator, has_header, file_version(path))


@functools.lru_cache(maxsize=16)
def _blank_line_rows(path: str, separator: str, has_header: bool, version: tuple[int, ...]) -> BlankLines:
    """:func:`_blank_lines` for a version of a file (``version``, :func:`file_version`): a table read twice
    (its types, then its rows) is parsed once and warned about once."""
    space = "".join(c for c in " \t" if c != separator)
    ws = re.escape(space.encode())
    gap = re.compile(rb"\n[%s]*\r?\n|\n[%s]+\r?\Z" % (ws, ws) if space else rb"\n\r?\n")
    with open(path, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                # one regular-expression pass: 2 ms for adult.csv's 3.8 MB, where two bytes.find take 14 ms
                blank = gap.search(m) is not None or (not has_header and m[:1] in (b"\n", b"\r"))
        except ValueError:  # an empty file cannot be mapped, and has no blank line
            return _NO_BLANK_LINES
    if not blank:
        return _NO_BLANK_LINES
    # compact arrays, not a Python object per line: a file of millions of blank lines stays small
    rows, space_lines, lines = array.array("q"), array.array("q"), array.array("q")
    row, header = 0, has_header
    try:
        with contextlib.closing(_csv_records(Path(path), separator)) as records:
            for line, record in records:
                spaces = len(record) == 1 and bool(record[0]) and not record[0].strip(space) if space else False
                if header:  # Polars skips the blank lines before the header
                    header = not record
                    continue
                if not record or spaces:
                    rows.append(row)
                    if len(lines) < 6:
                        lines.append(line)
                    if spaces:
                        space_lines.append(line)
                row += 1
    except csv.Error:  # a file the csv module cannot split as Polars did: its rows are left as read
        return _NO_BLANK_LINES
    if rows:
        said = ", ".join(map(str, lines[:5])) + (" ..." if len(rows) > 5 else "")
        warn(f"{path}: skipped {len(rows)} blank line(s) (line{'s' if len(rows) > 1 else ''} {said}), as "
             "pandas.read_csv does: a blank line is no row (a row of missing values is written with its separators, "
             "',,')")
    return BlankLines(np.frombuffer(rows, dtype=np.int64), np.frombuffer(space_lines, dtype=np.int64))


def _csv_records(path: Path, separator: str) -> Generator[tuple[int, list[str]], None, None]:
    """The records of the CSV at ``path`` as the ``csv`` module splits them (a quoted field across lines whole, a
    blank line an empty record), each with the line it starts on, from 1 as an editor counts. The bytes are read as
    latin-1: only the separators, quotes and line ends (ASCII in UTF-8 too) tell where a record ends."""
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # a long text (a whole review) is one field
    try:
        with open(path, newline="", encoding="latin-1") as f:
            reader = csv.reader(f, delimiter=separator)
            start = 1
            for record in reader:
                yield start, record
                start = reader.line_num + 1
    finally:
        csv.field_size_limit(limit)


def header_fields(path: Path, separator: str, read: Sequence[str]) -> list[str]:
    """The fields of the header of the CSV at ``path`` as the file writes them (quotes removed, an empty name
    empty); ``read``: the names Polars gave its columns, one per field. The first record that is not a blank line
    is the header, as Polars takes it (a UTF-8 byte-order mark is no part of the first name). Where the ``csv``
    module splits that record otherwise than Polars did, or ``path`` is compressed (a ``.csv.gz``, a ``.zip``), the
    fields are told from Polars' names: an empty name is ``''`` there, and a repeated one ``'age_duplicated_0'``."""
    record: list[str] | None = None
    if PACKED_CSV_SUFFIXES.get(Path(path).suffix.lower()) not in ("gzip", "zip"):
        try:
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
                record = next((r for r in csv.reader(f, delimiter=separator) if r), None)
        except (OSError, csv.Error):
            record = None
    if record is not None and len(record) == len(read):
        return record
    seen: set[str] = set()
    fields = []
    for c in read:
        m = re.fullmatch(r"(.*)_duplicated_\d+", c, flags=re.S)
        fields.append(m.group(1) if m and m.group(1) in seen else c)
        seen.add(c)
    return fields


def pandas_header_names(fields: Sequence[str], skipinitialspace: bool = False) -> list[str]:
    """The column names ``pandas.read_csv`` gives a header of ``fields``: an empty name is ``'Unnamed: {i}'`` (``i``
    its position, from 0), and a name given before is the name with ``.1``, ``.2``, ... (skipping any name the header
    holds already: ``x, x, x.1`` is ``x, x.2, x.1``), the named columns before the unnamed ones. With
    ``skipinitialspace`` the spaces beginning each name are dropped first (``' '`` is then empty), as pandas drops
    them; without, a name of spaces is that name. Every CSV/TSV reader of pipekit names a file's columns so.

    >>> pandas_header_names(["age", "job", "age", ""])
    ['age', 'job', 'age.1', 'Unnamed: 3']
    >>> pandas_header_names(["x", "x", "x.1", " x"], skipinitialspace=True)
    ['x', 'x.2', 'x.1', 'x.3']
    """
    names = [f.lstrip(" ") if skipinitialspace else f for f in fields]
    unnamed = [i for i, n in enumerate(names) if n == ""]
    for i in unnamed:
        names[i] = f"Unnamed: {i}"
    left = set(unnamed)
    counts: dict[str, int] = {}
    for i in [i for i in range(len(names)) if i not in left] + unnamed:
        col = given = names[i]
        count = counts.get(col, 0)
        while count > 0:
            counts[given] = count + 1
            col = f"{given}.{count}"
            count = count + 1 if col in names else counts.get(col, 0)
        names[i] = col
        counts[col] = count + 1
    return names


def csv_names(path: Path, skipinitialspace: bool = False) -> list[str]:
    """The column names of the CSV/TSV file at ``path`` as ``pandas.read_csv(path, skipinitialspace=...)`` gives
    them (:func:`pandas_header_names`); reads the header and the rows its types come from."""
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        read = pl.scan_csv(csv_source(path, sep)(), separator=sep, glob=False,
                           infer_schema_length=0).collect_schema().names()
    except pl.exceptions.PolarsError as e:
        raise table_error(path, e) from e
    return pandas_header_names(header_fields(path, sep, read), skipinitialspace)


def table_error(path: Path, e: BaseException, separator: str | None = None, has_header: bool = True) -> DataError:
    """The :class:`DataError` for a table file Polars could not read: what is wrong with ``path``, and the fix.
    ``separator``: a CSV's (default ',' or, for a ``.tsv`` file, a tab)."""
    if isinstance(e, pl.exceptions.NoDataError):
        return DataError(f"{path} is empty (no header line and no rows); check the file, or download it again")
    if "invalid utf-8" in str(e).lower():
        if (wide := wide_encoding_error(path)) is not None:
            return wide
        where = _first_non_utf8(path)
        return DataError(f"{path} is not UTF-8 text{where}; re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), or "
                         "read it with pandas.read_csv(path, encoding='latin-1') and pass the DataFrame")
    if "more fields than defined" in str(e):
        sep = separator or ("\t" if path.suffix.lower() == ".tsv" else ",")
        long = _first_long_line(path, sep)
        if long is not None:
            line, fields, first = long
            what = "the header has" if has_header else "the first line has"
            return DataError(f"{path}: line {line} has {fields} fields, {what} {first}; a value holding the separator "
                             f"{sep!r} must be in double quotes, or the line has {fields - first} field(s) too many: "
                             "fix that line, then read the file again")
    # Polars' advice names arguments of its own readers ('truncate_ragged_lines=True'), which pipekit's calls do
    # not take; truncating would drop values unsaid
    said = "\n\n".join(p for p in str(e).split("\n\n") if "truncate_ragged_lines" not in p)
    return DataError(f"could not read {path}: {said}")


# the byte-order marks of the encodings a spreadsheet's "Unicode text" export writes, UTF-32 first (its little-endian
# mark begins with UTF-16's)
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32", "utf-32"), (codecs.BOM_UTF32_BE, "UTF-32", "utf-32"),
              (codecs.BOM_UTF16_LE, "UTF-16", "utf-16"), (codecs.BOM_UTF16_BE, "UTF-16", "utf-16"))


def wide_encoding_error(path: Path) -> DataError | None:
    """The :class:`DataError` for a table file at ``path`` written as UTF-16 or UTF-32 (Excel's "Unicode text"),
    told by the byte-order mark it begins with, which the readers take for UTF-8 (a header of names between NUL
    bytes, or bytes that are not UTF-8); None for any other file. Reads 4 bytes.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.data.items import wide_encoding_error
    >>> f = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = f.write_text("age,job\\n1,cook\\n", encoding="utf-16")
    >>> print(str(wide_encoding_error(f)).split(": ", 1)[1][:48])
    the file is UTF-16 text (it begins with UTF-16's
    """
    wide = wide_encoding(path)
    if wide is None:
        return None
    name, codec = wide
    return DataError(f"{path}: the file is {name} text (it begins with {name}'s byte-order mark), and tables "
                     f"are read as UTF-8; re-save it as UTF-8 (e.g. iconv -f {codec} -t utf-8 {path.name} > "
                     f"{path.stem}-utf8{path.suffix}, or a "
                     "spreadsheet's 'CSV UTF-8' format), or read it with pandas.read_csv(path, "
                     f"encoding={codec!r}) and pass the DataFrame")


def wide_encoding(path: Path) -> tuple[str, str] | None:
    """``(name, codec)`` of the UTF-16 or UTF-32 encoding whose byte-order mark the file at ``path`` begins with
    (``("UTF-16", "utf-16")``), None for any other file or one that cannot be read. Reads 4 bytes."""
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError:
        return None
    for bom, name, codec in _WIDE_BOMS:
        if start.startswith(bom):
            return name, codec
    return None


def scan_csv_whole_lines(source: Any, schema: dict[str, Any], path: Path, separator: str = ",",
                         null_values: Sequence[str] | None = None) -> pl.LazyFrame:
    """``pl.scan_csv`` of the CSV at ``path`` (read from ``source``: see :func:`csv_source`) with ``schema`` (every
    column of its header), refusing a line with more fields than the header as the eager reader refuses it
    (:func:`table_error`), whichever columns a query reads: Polars checks a line's length only where every column
    is read, so a query of some columns took the first fields of a line with an unquoted separator in a value, the
    rest shifted or dropped unsaid. The fields past the header's are read into one hidden column, checked a batch at
    a time as the rows stream (the file is still parsed once); the frame's columns are the header's."""
    extra = "__extra_fields"
    while extra in schema:
        extra += "_"

    def refuse(fields: pl.Series) -> pl.Series:
        if fields.null_count() != len(fields):
            raise table_error(path, pl.exceptions.ComputeError("found more fields than defined in 'Schema'"),
                              separator)
        return fields.is_null()

    lf = pl.scan_csv(source, schema={**schema, extra: pl.String()}, separator=separator, glob=False,
                     truncate_ragged_lines=True, missing_columns="insert",
                     null_values=None if null_values is None else list(null_values))
    return lf.filter(pl.col(extra).map_batches(refuse, return_dtype=pl.Boolean, is_elementwise=True)).drop(extra)


def without_polars_context(e: DataError) -> DataError:
    """``e`` (raised by pipekit inside a Polars query, as :func:`scan_csv_whole_lines` does) without the note of the
    query's expression Polars adds to its message."""
    if e.args and isinstance(e.args[0], str):
        e.args = (e.args[0].split("\n\nThis error occurred in the following expression")[0], *e.args[1:])
    return e


def _first_long_line(path: Path, separator: str) -> tuple[int, int, int] | None:
    """The first record of the CSV at ``path`` with more fields than its first (the header): its line (from 1), its
    number of fields and the header's; None if there is none."""
    first = None
    try:
        with contextlib.closing(_csv_records(path, separator)) as records:
            for line, record in records:
                if first is None:
                    first = len(record) or None  # the blank lines before a header are skipped
                elif len(record) > first:
                    return line, len(record), first
    except (OSError, csv.Error):
        pass
    return None


def _first_non_utf8(path: Path, chunk: int = 1 << 20) -> str:
    """Where the first byte that is not UTF-8 is (' (line 3, byte 25)'), read a chunk at a time; '' if none is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    done, lines = 0, 0
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as e:
                    start = max(e.start, 0)
                    line = lines + block.count(b"\n", 0, start) + 1
                    return f" (line {line}, byte {done + start})"
                done, lines = done + len(block), lines + block.count(b"\n")
    except OSError:
        pass
    return ""


def names_files(source: Any, items: pl.DataFrame) -> bool:
    """Whether ``items``, what :func:`to_items` made of ``source``, are files named as files: a path object
    (``pathlib.Path``, ``os.DirEntry``, any ``os.PathLike``) or any iterable of them (a list, ``get_image_files``'
    L, ``Path.glob``, ``os.scandir``). A ``str``, and a table's column of them (a table given as a frame, or as the
    path of a CSV/Parquet file), is a value, whatever it spells or its column is named.

    >>> names_files([Path("a.txt")], to_items([Path("a.txt")])), names_files("a.txt", to_items("a.txt"))
    (True, False)
    """
    if items.columns != ["path"]:
        return False
    if isinstance(source, os.PathLike):  # one file, unless it is a table read as its rows (a CSV's path column)
        return Path(source).suffix.lower() not in TABLE_SUFFIXES
    if _series_of_paths(source):
        return True
    tables = (str, bytes, dict, pl.DataFrame, pl.LazyFrame, pa.Table)
    return not (isinstance(source, tables) or is_pandas(source) or type(source).__module__.startswith("datasets"))


def _series_of_paths(source: Any) -> bool:
    """Whether ``source`` is a pandas Series of path objects (a column of ``Path`` values, e.g. ``df["file"]``)."""
    return (is_pandas(source) and getattr(source, "ndim", 0) == 1 and source.dtype == object and len(source) > 0
            and all(isinstance(v, os.PathLike) for v in source))


#: the one column :func:`to_items` makes up for a source of bare values: ``path`` for files (path objects), ``item``
#: for anything else (a list, a Polars Series). A function getter or splitter is given each value itself there (a
#: ``Path`` in ``path``), and in the one column a pandas Series gives (:class:`SeriesValues`, named as the Series is);
#: every other items table is a table's own columns (a pandas or Polars frame, a CSV, an Arrow table, one of a single
#: column too), whose rows it is given as rows. For a table the rule reads the column's name: a table of the user's
#: whose only column is named ``item`` or ``path`` is read as bare values too (a function is given ``'a.png'``, or
#: ``Path('a.png')``, not a row to read ``r['item']`` from); rename that column
#: (``df.rename(columns={'item': 'name'})``) to be given rows
VALUE_COLUMNS = (["path"], ["item"])


class SeriesValues(pl.DataFrame):
    """The items a pandas Series gives (:func:`to_items`): one column named as the Series is, so that a getter reads
    it by that name (``ColReader('fname')`` of ``df['fname']``, a test set's column), whose values are bare values: a
    function getter or splitter is given each value itself (:func:`~pipekit.data.getters.item_at`), as it is a
    list's or a Polars Series'. The frame's type records it: a selection of its rows (``items[rows]``, ``head``,
    ``clone``) keeps it, and a pickled one; a frame built from its column (``select``, ``with_columns``) is a table.

    >>> import pandas as pd
    >>> items = to_items(pd.Series(["a.png", "b.png"], name="fname"))
    >>> isinstance(items[[1]], SeriesValues), items.columns
    (True, ['fname'])
    """


def to_items(source: Any, categorical: Sequence[str] = ()) -> pl.DataFrame:
    """Turn a source into the items DataFrame.

    Accepts a Polars DataFrame/LazyFrame, pandas DataFrame, Arrow table, Hugging Face ``datasets.Dataset``,
    a CSV/TSV/Parquet/Arrow file path, a dict (a row, or columns), or a sequence: paths become a ``path``
    column, dicts rows, anything else an ``item`` column (objects such as arrays, tensors or PIL images
    are kept as they are, in a column of Python objects). A Series is a sequence of bare values
    (:data:`VALUE_COLUMNS`): a Polars one an ``item`` column, a pandas one of path objects ``path``, any other
    pandas one a :class:`SeriesValues` column named as the Series is (``ColReader('fname')`` reads ``df['fname']``). The text columns of a pandas frame named in
    ``categorical`` become ``pl.Categorical`` one column at a time, never all as Polars text at once (a table's
    categories, as a CSV's are read: a fraction of the memory).

    >>> import polars as pl
    >>> to_items([Path("a.png"), Path("b.png")]).columns
    ['path']
    >>> to_items(pl.DataFrame({"x": [1, 2]})).shape
    (2, 1)
    >>> import pandas as pd
    >>> to_items(pd.Series(["a.png", None], name="fname")).rows()
    [('a.png',), (None,)]
    >>> type(to_items(pd.Series(["a.png"], name="fname"))).__name__
    'SeriesValues'
    """
    if isinstance(source, pl.DataFrame):
        df = source
    elif isinstance(source, pl.LazyFrame):
        df = source.collect()
    elif isinstance(source, pa.Table):
        check_unique_columns(source.column_names, "Arrow table")
        df = as_enums(pl.from_arrow(source), arrow_ordered_categories(source))  # type: ignore[arg-type]
    elif isinstance(source, np.ndarray) and source.dtype.names:  # a structured/record array: named, typed columns
        check_unique_columns(list(source.dtype.names), "NumPy structured array")
        df = pl.DataFrame(source)
    elif _series_of_paths(source):  # a pandas Series of path objects: files, as a list of them is
        df = path_frame(list(source))
    elif is_pandas(source):
        import pandas as pd

        if isinstance(source, pd.Series):  # bare values, in a column named as the Series is
            df = SeriesValues(_from_pandas(source.to_frame(), categorical))
        else:
            df = _from_pandas(source, categorical)
    elif type(source).__module__.startswith("datasets"):  # before dict: a DatasetDict is a dict of splits
        df = _from_hf(source)
    elif isinstance(source, dict):
        try:
            df = pl.DataFrame(source)  # scalars make one row, lists make columns
        except UnicodeEncodeError:  # a text holding a lone surrogate: named, with the fix
            raise surrogate_error(source, "row") from None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ValueError(f"the source {path} is a folder: pass get_items= (e.g. get_image_files) to find "
                             "its items, or pass a list of files")
        df = read_table(path) if path.suffix.lower() in TABLE_SUFFIXES else path_frame([path])
    elif isinstance(source, (Sequence, np.ndarray)) or hasattr(source, "__iter__"):
        values = list(source)
        if values and all(isinstance(v, os.PathLike) for v in values):
            df = path_frame(values)
        elif values and all(isinstance(v, dict) for v in values):
            try:
                df = pl.DataFrame(values)
            except UnicodeEncodeError:  # a text holding a lone surrogate: its key and rows named, with the fix
                keys = dict.fromkeys(k for row in values for k in row)
                raise surrogate_error({k: [row.get(k) for row in values] for k in keys}, "row") from None
        elif any(_held_object(v) for v in values):
            # arrays, tensors, PIL images...: kept as the objects they are, for the block that reads them
            df = pl.DataFrame({"item": pl.Series("item", values, dtype=pl.Object)})
        else:
            try:
                df = pl.DataFrame({"item": values}, strict=True) if values else pl.DataFrame({"item": []})
            except UnicodeEncodeError:  # a file name that is not UTF-8, or a text holding a lone surrogate: named
                files = [v for v in values if isinstance(v, str) and _SURROGATE.search(v) and os.path.lexists(v)]
                raise (file_name_error(files) if files else surrogate_error({"item": values}, "item")) from None
            except (TypeError, pl.exceptions.PolarsError) as e:
                types = sorted({type(v).__name__ for v in values})
                first = type(values[0])
                odd = next((i for i, v in enumerate(values) if type(v) is not first), None)
                if odd is None and isinstance(values[0], (tuple, list)):  # e.g. chapter 11's pairs of files
                    raise TypeError(f"the items are {first.__name__}s ({values[0]!r:.80}), which a column of items "
                                    "cannot hold as they are; give a table with one column per part (a dict per "
                                    "item, e.g. {'file1': ..., 'file2': ..., 'same': ...}, or a DataFrame), paths "
                                    "as str, and a getter per block (getters=[ColReader('file1'), ...])") from e
                if odd is None:
                    raise TypeError(f"the items ({first.__name__}, e.g. {values[0]!r:.60}) cannot be held in a "
                                    f"column: {e}") from e
                raise TypeError(f"the items mix types {types} (item 0 is a {first.__name__}, item {odd} a "
                                f"{type(values[odd]).__name__}: {values[odd]!r}); give one type per source") from e
    else:
        raise TypeError(f"unsupported source {type(source).__name__}; give a Polars/pandas DataFrame, an Arrow "
                        "table, a datasets.Dataset, a CSV/Parquet path or a list of items")
    return df


def _from_pandas(frame: Any, categorical: Sequence[str] = ()) -> pl.DataFrame:
    """A pandas frame as Polars: a text column that also holds numbers (``[0, "a", "0"]``, a CSV read by pandas)
    becomes text, with a warning, where Arrow would refuse it, and a column of path objects their text; one of
    images, arrays or other Python objects is kept as they are (:func:`_object_columns`); an ordered categorical, and
    one of text categories, keeps its declared categories in their order (as an ``Enum``, which ``Categorify``
    follows), and an unordered one of number categories is read as its numbers; period and interval columns become text, sparse ones dense
    (:func:`_arrow_ready`); the text columns named in ``categorical`` become ``pl.Categorical``, converted one at a
    time. Each column keeps its pandas name, as text (``""`` too); names a table cannot hold are refused, naming the
    columns and the fix (:func:`_pandas_names`).

    >>> import pandas as pd
    >>> _from_pandas(pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"], 0: [1, 2]}), ["a", 0]).schema
    Schema([('a', Categorical), ('b', String), ('0', Int64)])
    """
    import pandas as pd

    names = _pandas_names(frame)
    frame = _arrow_ready(frame)
    text = [c for c in categorical if c in frame.columns and not isinstance(frame[c].dtype, pd.CategoricalDtype)
            and (frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype))]
    if text:  # each as Polars text, then its codes: one text column held at a time
        codes = {}
        for c in text:
            col = _from_pandas(frame[[c]]).to_series()
            codes[c] = col.cast(pl.Categorical) if col.dtype == pl.String else col
        rest = iter(_from_pandas(frame.drop(columns=text)).get_columns() if len(text) < frame.shape[1] else ())
        # by name, as a list of Series would rename one named "" (column_0, column_2, ...)
        return pl.DataFrame({n: codes[c] if c in codes else next(rest) for n, c in zip(names, frame.columns)})
    try:
        df = pl.from_pandas(frame)
    except UnicodeEncodeError:  # a text holding a lone surrogate (badly decoded text): named, with the fix
        raise surrogate_error({c: frame[c] for c in frame.columns}, "row") from None
    except OverflowError:  # a Python int beyond 64 bits (a 30-digit id): named, with the fix
        err = pandas_overflow_error(frame, list(frame.columns))
        if err is None:
            raise
        raise err from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        frame, held = _object_columns(frame, e)
        try:  # pandas may build an Arrow text column of the mapped values, which encodes them: named there too
            df = pl.from_pandas(frame.drop(columns=list(held)) if held else frame)
        except UnicodeEncodeError:
            raise surrogate_error({c: frame[c] for c in frame.columns}, "row") from None
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as again:
            raise _unconvertible_error(frame.drop(columns=list(held)), again) from again
        if held:  # by name, as a list of Series would rename one named "" (column_0, column_2, ...)
            rest = iter(df.get_columns())
            df = pl.DataFrame({n: held[c] if c in held else next(rest) for n, c in zip(names, frame.columns)})
    if df.columns != names:  # each column named as the user named it, as text
        df.columns = names
    # a categorical's declared categories, in their order, unused ones included, are its vocabulary (as fastai's
    # Categorify takes them): ordered ones and those of text (which Polars would read as a Categorical that keeps
    # neither the order nor the unused categories) become an Enum; unordered number categories Polars reads as
    # numbers, as a plain number column is read (a target stays a number, for regression or y_block='category')
    named = dict(zip(frame.columns, df.columns))  # Polars names every column with text (a pandas 0 is "0")
    return as_enums(df, {named[c]: [str(v) for v in frame[c].cat.categories] for c in frame.columns
                         if isinstance(frame[c].dtype, pd.CategoricalDtype) and _declared_categories(frame[c])})


def _object_columns(frame: Any, error: BaseException) -> tuple[Any, dict[Any, pl.Series]]:
    """pandas ``frame``, whose columns Arrow refused (``error``), as Arrow can take it, and the columns to keep as
    Python objects. Only its ``object`` columns are looked at, and only once Arrow has refused the frame:

    - path objects (``pathlib.Path``, any ``os.PathLike``), alone or with text, become their text (``os.fspath``), as
      a column of file names written as text is read (a relative one is found under the loader's ``path``);
    - text mixed with numbers (``[0, "a", "0"]``, a CSV read by pandas) becomes text, with a warning;
    - text, numbers and other Python values (dates, lists, dicts) mixed become text, as text with numbers does;
    - a column Arrow cannot hold of images or arrays (with text or paths, or not) is kept as the objects it holds
      (``pl.Object``, as a list of them is), for the block or getter that reads them.

    Paths or objects mixed with numbers are refused, naming the column, a row and the fix; so is a column Arrow
    still refuses (:func:`_unconvertible_error`). The frame itself is left alone (a copy is changed).

    >>> import pandas as pd
    >>> frame, held = _object_columns(pd.DataFrame({"f": [Path("a/1.png"), None], "x": [1, 2]}), ValueError())
    >>> frame["f"].tolist(), held
    (['a/1.png', None], {})
    """
    import pandas as pd

    out, held, mixed = frame, {}, []
    for i, c in enumerate(frame.columns):
        col = frame.iloc[:, i]
        if col.dtype != object:
            continue
        missing = col.isna().to_numpy()
        present = col[~missing]
        kinds = {_value_kind(v) for v in present}
        if "path" in kinds and kinds <= {"path", "text"}:
            values = [None if m else os.fspath(v) for v, m in zip(col, missing)]
        elif "array" in kinds or "path" in kinds:  # images or arrays; paths with other values
            if _arrow_holds(frame.iloc[:, [i]]):  # a column of 1-D arrays (a list column)
                continue
            if "number" in kinds:
                raise _objects_with_numbers_error(c, present)
            held[c] = pl.Series(str(c), [None if m else v for v, m in zip(col, missing)], dtype=pl.Object)
            continue
        else:  # text, numbers and other Python values (dates, lists, dicts) mixed: read as text
            if len({type(v) for v in present}) < 2 or kinds != {"text", "number"} and _arrow_holds(
                    frame.iloc[:, [i]]):  # one kind Arrow refused for another reason; a column of dicts or lists
                continue
            mixed.append(c)
            values = [v if v is None or v != v else str(v) for v in col]
        if out is frame:
            out = frame.copy(deep=False)
        out.isetitem(i, pd.Series(values, index=col.index, dtype=object))
    if mixed:
        warn(f"column(s) {mixed} mix text and numbers; read as text (0 and '0' become the same value)")
    if out is frame and not held:
        raise _unconvertible_error(frame, error) from error
    return out, held


def _value_kind(v: Any) -> str:
    """What a value of a pandas ``object`` column is to a table: ``text``, a ``path`` object, a ``number``, an
    ``array`` (an image, a NumPy array or tensor: anything exposing its pixels or values as an array) or an
    ``object`` (any other Python value: a date, a list, a dict)."""
    if isinstance(v, str):
        return "text"
    if isinstance(v, os.PathLike):
        return "path"
    if isinstance(v, (bool, int, float, np.number, np.bool_)):
        return "number"
    if hasattr(v, "__array_interface__") or hasattr(v, "__array__"):
        return "array"
    return "object"


def _arrow_holds(frame: Any) -> bool:
    """Whether Polars reads pandas ``frame`` (one column) through Arrow as it is."""
    try:
        pl.from_pandas(frame)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError, UnicodeEncodeError):
        return False
    return True


def _objects_with_numbers_error(name: Any, present: Any) -> DataError:
    """The DataError for pandas column ``name`` whose values (``present``, its non-missing ones) mix path objects or
    other Python objects with numbers, which no column type holds together: a row of each, and the fix."""
    number = next((i, v) for i, v in present.items() if _value_kind(v) == "number")
    other = next((i, v) for i, v in present.items() if _value_kind(v) in ("path", "array", "object"))
    what = "path objects" if _value_kind(other[1]) == "path" else "Python objects"
    return DataError(f"column {name!r} mixes {what} ({type(other[1]).__name__}, row {other[0]!r}) with numbers "
                     f"({type(number[1]).__name__} {number[1]!r}, row {number[0]!r}), which no column holds "
                     f"together; give one kind of value per column, None (not a number such as 0 or -1) where a "
                     f"row has none, e.g. df[{name!r}] = df[{name!r}].map(lambda v: None if isinstance(v, "
                     f"(int, float)) else v)")


def _unconvertible_error(frame: Any, error: BaseException) -> DataError:
    """The DataError for pandas ``frame`` that Arrow refused (``error``): the first column it refuses on its own
    (the first column when none is refused alone), what Arrow said, and the fix."""
    at = next((i for i in range(frame.shape[1]) if not _arrow_holds(frame.iloc[:, [i]])), 0)
    bad, dtype = (frame.columns[at], frame.dtypes.iloc[at]) if frame.shape[1] else ("?", "none")
    return DataError(f"column {bad!r} ({dtype}) cannot be held in a table: {type(error).__name__}: {error}; "
                     f"give it as text (df[{bad!r}] = df[{bad!r}].astype(str)), numbers or one kind of Python "
                     f"object per column, or drop it (df.drop(columns=[{bad!r}]))")


def _arrow_ready(frame: Any) -> Any:
    """pandas ``frame`` with the columns Arrow cannot hold converted where nothing is lost: a period or an interval
    column becomes its text (``'2020-01'``, ``'(0, 1]'``; a category to ``Categorify``), a sparse column its dense
    values. A complex column is refused, naming it and the fix. The frame itself is left alone (a copy is changed)."""
    import pandas as pd

    def kind(dtype: Any) -> str | None:
        if isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype)):
            return "text"
        if isinstance(dtype, pd.SparseDtype):
            return "dense"
        if isinstance(dtype, np.dtype) and dtype.kind == "c":
            return "complex"
        return None

    found = {i: k for i, dtype in enumerate(frame.dtypes) if (k := kind(dtype)) is not None}
    if not found:
        return frame
    if complex_at := [i for i, k in found.items() if k == "complex"]:
        c = frame.columns[complex_at[0]]
        raise DataError(f"column {c!r} holds complex numbers ({frame.dtypes.iloc[complex_at[0]]}), which a table "
                        f"cannot hold as a number or a category; give its parts as columns of their own "
                        f"(df[{f'{c}_re'!r}] = np.real(df[{c!r}]); df[{f'{c}_im'!r}] = np.imag(df[{c!r}]), or its "
                        f"magnitude, np.abs(df[{c!r}])) and drop it (df.drop(columns=[{c!r}]))")
    out = frame.copy(deep=False)
    for i, k in found.items():
        col = frame.iloc[:, i]
        if k == "dense":
            out.isetitem(i, col.sparse.to_dense())
        else:  # its text, a missing period (NaT) or interval (NaN) staying missing
            out.isetitem(i, col.astype(str).astype(object).where(col.notna(), None))
    return out


def _declared_categories(col: Any) -> bool:
    """Whether the declared categories of pandas categorical ``col`` are its vocabulary, kept in their order: an
    ordered one, and one of text. An unordered one of numbers is read as its numbers, as a number column is."""
    import pandas as pd

    return bool(col.cat.ordered or pd.api.types.is_string_dtype(col.cat.categories))


def as_enums(df: Any, categories: Mapping[str, Sequence[str]]) -> Any:
    """``df`` (a Polars DataFrame or LazyFrame) with each column named in ``categories`` an ``Enum`` of the
    categories given for it, in their order, unused ones included: what a pandas categorical, an Arrow dictionary
    declared ordered and a Parquet file's such column give (``Categorify`` takes an Enum's categories as the
    column's vocabulary). A column whose categories repeat as text (``1`` and ``'1'``) is left as it is."""
    have = set(df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns)
    cast = {c: list(v) for c, v in categories.items() if c in have and len(set(v)) == len(v)}
    if not cast:
        return df
    return df.with_columns(pl.col(c).cast(pl.String).cast(pl.Enum(v)) for c, v in cast.items())


def arrow_ordered_categories(table: Any) -> dict[str, list[str]]:
    """The dictionary columns of Arrow ``table`` (a ``pa.Table``) declared ordered (``pa.Table.from_pandas`` of an
    ordered pandas categorical, a Parquet file ``df.to_parquet`` wrote), each mapped to its dictionary as text in
    its order, unused values included; chunks with other dictionaries add their new values after. Polars reads such
    a column as a Categorical, which keeps neither; :func:`as_enums` casts it back."""
    out: dict[str, list[str]] = {}
    for name, column in zip(table.column_names, table.columns):
        if not (pa.types.is_dictionary(column.type) and column.type.ordered):
            continue
        values: dict[str, None] = {}
        for chunk in column.chunks:
            text = pl.Series(pl.from_arrow(chunk.dictionary)).cast(pl.String)  # type: ignore[arg-type]
            values.update(dict.fromkeys(v for v in text.to_list() if v is not None))
        out[name] = list(values)
    return out


def parquet_ordered_categories(files: Sequence[Path]) -> dict[str, list[str]]:
    """:func:`arrow_ordered_categories` of Parquet ``files`` (one table, read in their order): pyarrow reads the
    file's Arrow schema from its footer, and only where a column is an ordered dictionary reads that column (its
    dictionary pages) to learn the categories; Polars' scan of the file keeps neither the order nor the unused
    categories."""
    import pyarrow.parquet as pq

    out: dict[str, list[str]] = {}
    for path in files:
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException):
            return out  # left to Polars' reading, whose error names the file
        ordered = [f.name for f in pf.schema_arrow if pa.types.is_dictionary(f.type) and f.type.ordered]
        if not ordered:
            continue
        for name, cats in arrow_ordered_categories(pf.read(columns=ordered)).items():
            out[name] = list(dict.fromkeys([*out.get(name, []), *cats]))
    return out


def _pandas_names(frame: Any) -> list[str]:
    """The names a pandas frame's columns have in a Polars one: their text (``""`` kept; a pandas 0 is ``"0"``). A
    frame a Polars one cannot name so is refused, naming the columns and the fix: a name given twice, a MultiIndex
    of columns (or a tuple as a name), a missing name (``None``, NaN), and names that are one text (0 and ``"0"``).

    >>> import pandas as pd
    >>> _pandas_names(pd.DataFrame({"": [1], 0: [2]}))
    ['', '0']
    """
    import pandas as pd

    columns = list(frame.columns)
    check_unique_columns(columns, "pandas DataFrame")
    kind = "pandas DataFrame"
    if isinstance(frame.columns, pd.MultiIndex) or any(isinstance(c, tuple) for c in columns):
        tuples = [c for c in columns if isinstance(c, tuple)]
        shown = ", ".join(map(repr, tuples[:3])) + (", ..." if len(tuples) > 3 else "")
        raise DataError(f"the {kind} names {len(tuples)} column(s) with tuples ({shown}; a MultiIndex of columns "
                        "does), which a table, one text name per column, cannot hold; join the parts: df.columns = "
                        "['_'.join(map(str, c)) for c in df.columns]")
    missing = [i for i, c in enumerate(columns) if not isinstance(c, str) and bool(pd.isna(c))]
    if missing:
        raise DataError(f"the {kind}'s column(s) at position(s) {missing} have no name ({columns[missing[0]]!r}); "
                        "name them, e.g. df.columns = df.columns.fillna('name') (or df.rename(columns=...))")
    names = [str(c) for c in columns]
    at: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        at.setdefault(n, []).append(i)
    same = {n: [columns[i] for i in pos] for n, pos in at.items() if len(pos) > 1}
    if same:
        n, cols = next(iter(same.items()))
        raise DataError(f"the {kind}'s columns {cols} (positions {at[n]}) have one name as text, {n!r}, which a "
                        f"table's columns cannot share; rename one, e.g. df.rename(columns={{{cols[0]!r}: "
                        f"'{n}_{at[n][0]}'}})")
    return names


_SURROGATE = re.compile("[\ud800-\udfff]")


def path_frame(paths: Sequence[Any]) -> pl.DataFrame:
    """The ``path`` column of ``paths`` (path objects or str): a file name that is not valid UTF-8, which a Polars
    column cannot hold, is a DataError naming it and the fix (:func:`file_name_error`)."""
    names = [os.fspath(v) for v in paths]
    try:
        return pl.DataFrame({"path": pl.Series("path", names, dtype=pl.String)})
    except UnicodeEncodeError:
        raise file_name_error([v for v in names if isinstance(v, str) and _SURROGATE.search(v)]) from None


def file_name_error(names: Sequence[str]) -> DataError:
    """The DataError for file names Python could not decode as UTF-8 (it holds their bytes as lone surrogates, which a
    Polars column cannot hold): the first few, as bytes, how many, and the fix: rename them to UTF-8 (names written
    in Latin-1, as old Windows zips leave them) or, where Python does not read file names as UTF-8
    (``sys.getfilesystemencoding()`` is not utf-8, as under ``LC_ALL=C``), run it in UTF-8 mode.

    >>> print(str(file_name_error([os.fsdecode(b"pets/caf\\xe9.png")]))[:68])  # in UTF-8 mode
    1 file name is not valid UTF-8, which a column of items (UTF-8 text)
    """
    shown = ", ".join(repr(os.fsencode(v)) for v in names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5
                                                                  else "")
    many = "1 file name" if len(names) == 1 else f"{len(names)} file names"
    parents = {os.path.dirname(v) or "." for v in names}
    folder = os.path.commonpath(sorted(parents)) if len(parents) > 1 else parents.pop() if parents else "FOLDER"
    folder = folder if folder and not _SURROGATE.search(folder) else "FOLDER"
    encoding = sys.getfilesystemencoding()
    utf8_mode = encoding.lower().replace("-", "").replace("_", "") == "utf8"
    fixes = [] if utf8_mode else [
        f"Python reads file names as {encoding} here (sys.getfilesystemencoding(), from the locale, e.g. LC_ALL=C): "
        "run it in UTF-8 mode (PYTHONUTF8=1, or python -X utf8) or under a UTF-8 locale (LC_ALL=C.UTF-8)"]

    def utf8(v: str) -> bool:
        try:
            os.fsencode(v).decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    if not all(utf8(v) for v in names):
        fixes.append(f"rename the files to UTF-8 names, e.g. convmv -f latin1 -t utf-8 -r --notest {folder}, or, for "
                     "names written in Latin-1 (as old Windows zips leave them), in Python in UTF-8 mode: import os, "
                     "pathlib; [p.rename(p.with_name(os.fsencode(p.name).decode('latin-1'))) for p in "
                     f"sorted(pathlib.Path({folder!r}).rglob('*'), reverse=True) "
                     "if any('\\udc80' <= c <= '\\udcff' for c in p.name)]")
    what = f"{many} {'is' if len(names) == 1 else 'are'} not valid UTF-8" if utf8_mode else f"{many} Python could not decode as {encoding}"
    return DataError(f"{what}, which a column of items (UTF-8 text) cannot hold: {shown}; " + "; and ".join(fixes))


def surrogate_error(columns: dict[Any, Any], what: str) -> DataError:
    """The DataError for text UTF-8 cannot encode, found once Arrow has refused it: the first column of ``columns``
    (name: pandas Series, list of values or one value, as a dict source gives them) holding a lone surrogate
    (``'\\ud800'``, as text decoded with ``errors='surrogateescape'`` or a scrape's broken escapes holds), its first
    ``what`` labels (a Series' row labels, a list's positions), how many there are, the character, and the fix (a
    pandas column's, or a list's of texts)."""
    def bad(v: Any) -> bool:
        return isinstance(v, str) and not v.isascii() and _SURROGATE.search(v) is not None

    for name, values in columns.items():
        if _SURROGATE.search(str(name)):
            return DataError(f"the column name {name!r} holds a lone surrogate, which UTF-8 cannot encode; rename "
                             "it (name.encode('utf-8', 'replace').decode('utf-8'))")
        if hasattr(values, "iloc"):  # a pandas Series: its row labels
            if getattr(values.dtype, "kind", "O") in "biufcmM":  # numbers and dates hold no text
                continue
            series = values.astype(object)
            hit = series.map(bad)
            labels = list(series.index[hit.to_numpy(dtype=bool)])
            first = series[hit].iloc[0] if labels else None
        else:
            if isinstance(values, str) or not hasattr(values, "__iter__"):  # one value (a dict source's scalar)
                values = [values]
            labels = [i for i, v in enumerate(values) if bad(v)]
            first = values[labels[0]] if labels else None
        if not labels:
            continue
        char = "".join(_SURROGATE.findall(str(first))[:1])
        col = f"df[{name!r}]"
        fix = (f"{col} = {col}.str.encode('utf-8', 'replace').str.decode('utf-8')" if hasattr(values, "iloc") else
               "[t.encode('utf-8', 'replace').decode('utf-8') for t in texts]")
        where = (f"{what} {labels[0]!r}" if len(labels) == 1 else
                 f"{len(labels)} {what}s, first {', '.join(repr(v) for v in labels[:5])}")
        held = f"column {name!r} holds" if what == "row" else "the items hold"
        return DataError(f"{held} text with a lone surrogate ({char!r}, which UTF-8 cannot encode: "
                         f"text decoded badly) at {where}, e.g. {first!r:.80}; replace it ({fix}: each becomes "
                         "'?'), or decode the source with errors='replace' rather than 'surrogateescape'")
    return DataError("the text cannot be encoded as UTF-8 (it holds a lone surrogate); replace it with "
                     "text.encode('utf-8', 'replace').decode('utf-8')")


def one_type_column(name: str, values: Sequence[Any], what: str,
                    fix: str = "give them one type, e.g. all text") -> pl.Series:
    """``values`` as a column of one type; values mixing types (``3`` and ``"seven"``) are a DataError naming the
    types and the item where each first appears (labels given as lists, what a getter returns)."""
    try:
        return pl.Series(name, list(values), strict=True)
    except (TypeError, pl.exceptions.PolarsError) as e:
        types = sorted({type(v).__name__ for v in values if v is not None})
        first = {t: next(i for i, v in enumerate(values) if type(v).__name__ == t) for t in types}
        raise DataError(f"{what} mixed types {types} (first at items {first}); {fix}") from e


def check_unique_columns(names: Sequence[Any], kind: str) -> None:
    """Refuse a frame that names a column more than once (a Polars frame cannot hold one): which column would
    a getter or a role read?"""
    counts: dict[Any, int] = {}
    for c in names:
        counts[c] = counts.get(c, 0) + 1
    twice = [c for c, k in counts.items() if k > 1]
    if twice:
        raise DataError(f"the {kind} has the column name(s) {twice} more than once; give each column its own name "
                        "(rename them, or keep the first with df.loc[:, ~df.columns.duplicated()] in pandas)")


def missing_as_null(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One row given by hand (a dict, a pandas row's ``to_dict()``, a named tuple's ``_asdict()``) as a table reads
    it: its missing values (pandas' NaN, NA and NaT, which a text column holds as a float or a marker) as None, so a
    missing category or label is missing, not the text 'NaN' or a column of floats; its names as
    :func:`column_name` gives them (two that name one column refused).

    >>> missing_as_null({"tags": float("nan"), 0: "a.png"})
    {'tags': None, '0': 'a.png'}
    """
    check_unique_columns([column_name(k) for k in row], "row")  # 0 and '0' both name column '0'
    return {column_name(k): null_if_missing(v) for k, v in row.items()}


def column_name(k: Any) -> str:
    """A row's column name as a table's: one that is not text (the 0, 1, 2 of ``pd.DataFrame(array)``, a row of it
    a Series with an integer index) is its text, ``'0'``, as a pandas frame's columns are named when it is read."""
    return k if isinstance(k, str) else str(k)


def null_if_missing(v: Any) -> Any:
    """One value as a table holds it: None where it is missing (``is_missing``), a 0-d array as its one value."""
    if isinstance(v, np.ndarray) and v.ndim == 0:  # a 0-d array is its one value
        v = v.item()
    return None if is_missing(v) else v


def _held_object(v: Any) -> bool:
    """A value Polars would take apart or refuse (an array, a tensor, an image object) rather than store."""
    return isinstance(v, np.ndarray) or type(v).__module__.split(".")[0] in ("torch", "PIL")


#: the column a pandas frame's unnamed index becomes in Arrow (``Dataset.from_pandas(df[df.age > 25])`` keeps it)
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")

#: the names Hugging Face gives the validation split, most usual first
_HF_VALID_SPLITS = ("validation", "valid", "val", "dev", "test")


def _from_hf(ds: Any) -> pl.DataFrame:
    """A Hugging Face dataset as a frame: its stored columns, as Arrow holds them.

    - A ``ClassLabel`` column is an ``Enum`` of its ``names``, declared in their order: its categories are the
      vocabulary (every class, those a filtered view lacks included), so a class's code is the id Hugging Face
      stores (``preds.argmax(1)`` compares with ``ds["label"]``); -1, no label, is null. A ``Sequence``/``List``
      of ``ClassLabel`` (several labels per item; of a fixed length too) holds lists of those names, a -1 among
      an item's ids (no label) left out of its list. A ``ClassLabel`` deeper in a feature (``Sequence({"t":
      ClassLabel(...)})``, a dict of lists) keeps its integer ids: read the names with ``ds.features``.
    - An ``Image`` column stays the ``{bytes, path}`` structs image blocks read.
    - The column ``__index_level_0__`` (the index of a pandas frame that was not a plain range, which
      ``Dataset.from_pandas`` keeps so that ``to_pandas`` can make it the index again) is left out: it is the
      rows' positions in another frame, not data to learn from.

    A ``DatasetDict`` (several splits) and a dataset with a transform set (``set_transform``/``with_transform``,
    which runs only as rows are read in Python, never on the stored columns) are refused, each with the fix.
    """
    if isinstance(ds, dict):  # DatasetDict / IterableDatasetDict: what load_dataset() returns without split=
        raise _splits_error(ds)
    fmt = getattr(ds, "format", None)
    if isinstance(fmt, dict) and fmt.get("type") == "custom":
        fn = (fmt.get("format_kwargs") or {}).get("transform")
        name = getattr(fn, "__name__", "fn")
        name = name if name.isidentifier() else "fn"
        raise DataError(f"this {type(ds).__name__} has a transform set ({name}, by set_transform or with_transform), "
                        "which datasets runs only as rows are read in Python; pipekit reads the stored columns, so it "
                        f"would train on the values before {name}. Store its result: ds = ds.with_format(None)"
                        f".map({name}, batched=True) (with_format(None) first, or the transform runs again on the "
                        "rows map reads), then pass ds")
    if hasattr(ds, "to_polars"):
        df = ds.to_polars()
    else:
        # a Dataset with an indices mapping (after select/shuffle) must be flattened before its table is read
        ds = ds.flatten_indices() if getattr(ds, "_indices", None) is not None else ds
        df = pl.from_arrow(ds.data.table)  # type: ignore[assignment]
    df = df.drop([c for c in df.columns if _PANDAS_INDEX.fullmatch(c)])
    features = getattr(ds, "features", None) or {}
    exprs = []
    for c, f in features.items():
        if c not in df.columns:
            continue
        dtype = df.schema[c]
        names = _class_names(f)
        if names is not None and dtype.is_integer():  # one label per item
            exprs.append(_label_names(pl.col(c), names))
        elif isinstance(dtype, (pl.List, pl.Array)) and dtype.inner.is_integer():  # several: Sequence(ClassLabel)
            names = _class_names(getattr(f, "feature", None)) if type(f).__name__ in _HF_LISTS else None
            if names is not None:  # a fixed length (Sequence(..., length=n)) is an Arrow fixed-size list: as a list
                ids = pl.col(c).cast(pl.List(dtype.inner)) if isinstance(dtype, pl.Array) else pl.col(c)
                exprs.append(ids.list.eval(_label_names(pl.element(), names)).list.drop_nulls())
    return df.with_columns(exprs) if exprs else df  # type: ignore[return-value]


#: the ``datasets`` feature types that hold a list of values per row
_HF_LISTS = ("Sequence", "List", "LargeList")


def _class_names(feature: Any) -> list[str] | None:
    """The label names of a ``ClassLabel`` feature, in their declared order; None for any other feature."""
    return [str(n) for n in feature.names] if type(feature).__name__ == "ClassLabel" else None


def _label_names(ids: pl.Expr, names: list[str]) -> pl.Expr:
    """ClassLabel ids (positions in ``names``) as those names: an ``Enum`` of ``names`` in their declared order
    (text where a name is given twice, which an Enum cannot declare); -1 (no label) and ids past the names are
    null."""
    kind = pl.Enum(names) if len(set(names)) == len(names) else pl.String
    return ids.replace_strict(list(range(len(names))), names, default=None, return_dtype=kind)


def _splits_error(dd: dict[str, Any]) -> DataError:
    """The DataError for a ``DatasetDict``: pass one split, or keep the dataset's own validation split as the
    validation set (the splits concatenated, the validation rows named by position with ``IndexSplitter``, or
    marked in a column for a factory's ``valid_col``)."""
    splits = list(dd)
    train = "train" if "train" in splits else splits[0] if splits else "train"
    valid = next((s for s in _HF_VALID_SPLITS if s in splits and s != train),
                 next((s for s in splits if s != train), None))
    one = f"this is a {type(dd).__name__} with splits {splits}; pass one split, e.g. ds[{train!r}]"
    if valid is None:
        return DataError(f"{one} (or load_dataset(..., split={train!r}))")
    return DataError(f"{one}, or keep its {valid!r} split as the validation set: "
                     f"d = datasets.concatenate_datasets([ds[{train!r}], ds[{valid!r}]]) and "
                     f"splitter=IndexSplitter(range(len(ds[{train!r}]), len(d))) in the DataBlock (for a factory's "
                     f"valid_col: d = d.add_column('is_valid', [False] * len(ds[{train!r}]) + [True] * "
                     f"len(ds[{valid!r}])), then valid_col='is_valid')")


def table_column(df: pl.DataFrame, col: int | str, param: str) -> str:
    """A column named or given by position (the book's ``fn_col=0``, ``label_col=1``)."""
    if isinstance(col, bool) or not isinstance(col, (int, str)):
        raise ParameterError(f"{param}={col!r}: give a column name or its position")
    if isinstance(col, int):
        if not -df.width <= col < df.width:
            raise ParameterError(f"{param}={col} but the table has {df.width} columns {df.columns}")
        return df.columns[col]
    if col not in df.columns:
        raise ParameterError(f"{param}={col!r} is not a column; {unknown_names([col], df.columns)}")
    return col


def read_csv_table(path: str | os.PathLike, csv_fname: str | os.PathLike | None, header: str | None = "infer",
                   delimiter: str | None = None, skipinitialspace: bool = False) -> pl.DataFrame:
    """The book's ``from_csv`` reading: ``path / csv_fname`` (or ``path`` itself when ``csv_fname`` is None),
    ``header="infer"`` (the first line names the columns) or None (no header: columns are used by position),
    ``delimiter`` (default "," or, for a ``.tsv`` file, a tab, as the rest of pipekit reads one),
    ``skipinitialspace`` (drop the spaces after each delimiter, in text and in the header's names)."""
    check("from_csv", header=(header, Options("infer", None)))
    file = Path(path) / csv_fname if csv_fname is not None else Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file} does not exist")
    sep = delimiter or ("\t" if file.suffix.lower() == ".tsv" else ",")
    df = read_csv(file, has_header=header == "infer", separator=sep)
    return strip_header_spaces(strip_initial_spaces(df), file) if skipinitialspace else df


def strip_header_spaces(frame: pl.DataFrame, file: Path) -> pl.DataFrame:
    """``frame`` (read from the CSV ``file`` with ``skipinitialspace``) with the spaces that begin its column names
    dropped, as ``pandas.read_csv(skipinitialspace=True)`` reads a header ``c, x, y``; names that would then be
    one column's twice are refused."""
    names = {c: c.lstrip(" ") for c in frame.columns if c != c.lstrip(" ")}
    if not names:
        return frame
    after = [names.get(c, c) for c in frame.columns]
    twice = sorted({c for c in after if after.count(c) > 1})
    if twice:
        raise DataError(f"{file}: without the spaces that begin them (skipinitialspace), the header's names {twice} "
                        "name more than one column; rename the columns in the file, or pass skipinitialspace=False")
    return frame.rename(names)


def strip_initial_spaces(frame: Any) -> Any:
    """``frame`` (eager or lazy) with the spaces that begin its text values dropped, as a CSV file read with
    ``skipinitialspace`` gives them: rows a user read without it (``pd.read_csv("adult.csv")``'s ``" Private"``)
    meet the categories of a model trained on the file read with it. A value left empty (a field of spaces only,
    ``', ,'``) is missing, as ``pandas.read_csv(skipinitialspace=True)`` reads it, never a category ``''``. Text,
    ``Categorical`` and ``Enum`` columns (a pandas ``category``) are stripped alike; an Enum keeps its declared
    categories in their order, stripped (:func:`stripped_categories`). An Enum two of whose declared categories
    are one value once stripped (``' Private'`` and ``'Private'``) becomes a text column instead, its values
    merged as a text column's are: no order of the categories would say where the merged one stands.

    >>> import polars as pl
    >>> from pipekit.data.items import strip_initial_spaces
    >>> strip_initial_spaces(pl.DataFrame({"job": [" cook", "a b", " "], "age": [1, 2, 3]}))["job"].to_list()
    ['cook', 'a b', None]
    >>> strip_initial_spaces(pl.DataFrame({"job": [" cook", "a b"]}, schema={"job": pl.Categorical}))["job"].to_list()
    ['cook', 'a b']
    >>> sizes = pl.DataFrame({"size": [" S", " L"]}, schema={"size": pl.Enum([" S", " M", " L"])})
    >>> strip_initial_spaces(sizes)["size"].dtype
    Enum(categories=['S', 'M', 'L'])
    >>> jobs = pl.DataFrame({"job": [" cook", "cook"]}, schema={"job": pl.Enum([" cook", "cook"])})
    >>> out = strip_initial_spaces(jobs)["job"]
    >>> out.dtype, out.to_list()
    (String, ['cook', 'cook'])
    """
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema

    def stripped(c: str, text: bool) -> pl.Expr:
        values = pl.col(c) if text else pl.col(c).cast(pl.String)
        return values.str.strip_chars_start(" ").replace("", None)  # nothing but spaces is no value

    exprs = []
    for c, dtype in schema.items():
        if dtype == pl.String:
            exprs.append(stripped(c, True).alias(c))
        elif isinstance(dtype, pl.Categorical):
            exprs.append(stripped(c, False).cast(pl.Categorical).alias(c))
        elif isinstance(dtype, pl.Enum):
            categories = stripped_categories(dtype)
            if categories is None:  # two categories are one value once stripped: a text column
                exprs.append(stripped(c, False).alias(c))
            elif categories != dtype.categories.to_list():
                exprs.append(stripped(c, False).cast(pl.Enum(categories)).alias(c))
    return frame.with_columns(exprs) if exprs else frame


def stripped_categories(dtype: pl.Enum) -> list[str] | None:
    """The declared categories of an Enum (``dtype``) without the spaces that begin them, in their order; one of
    spaces only is dropped (its rows are missing). None where two categories are one value once stripped
    (``' Private'`` and ``'Private'``): merged, the declared order would say where only one of them stood, so
    :func:`strip_initial_spaces` strips such a column as text.

    >>> import polars as pl
    >>> from pipekit.data.items import stripped_categories
    >>> stripped_categories(pl.Enum([" cook", " ", "baker"]))
    ['cook', 'baker']
    >>> stripped_categories(pl.Enum([" cook", "baker", "cook"])) is None
    True
    """
    out: list[str] = [v.lstrip(" ") for v in dtype.categories.to_list() if v.lstrip(" ")]
    return out if len(set(out)) == len(out) else None
