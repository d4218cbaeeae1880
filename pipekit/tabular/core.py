"""``Tabular``: a table split into train/valid, processed by procs fitted on the training rows.

Example:
    >>> from pipekit.datasets import path
    >>> from pipekit.data import RandomSplitter
    >>> from pipekit.tabular import Tabular, Categorify, FillMissing, Normalize
    >>> tab = Tabular(path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing, Normalize],
    ...               cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], y_names="salary",
    ...               splits=RandomSplitter(valid_pct=0.2, seed=42))
    >>> len(tab.train), len(tab.valid), tab.y_vocab
    (26049, 6512, ['<50k', '>=50k'])
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import polars as pl

from pipekit.core.errors import DataError, ExportError, ParameterError, warn
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import (BOOL, Is, check, check_positive_int, is_column, is_pandas,
                                   past_float32, unknown_names)
from pipekit.data.items import (PANDAS_NA, TABLE_SUFFIXES, as_enums, check_table_nesting, check_unique_columns,
                                csv_names, csv_source, file_version, header_fields, missing_markers_to_null,
                                pandas_header_names, parquet_files, parquet_ordered_categories, read_csv,
                                read_packed_csv, scan_csv_whole_lines, skip_blank_lines, strip_header_spaces,
                                strip_initial_spaces, table_error, table_formats, table_kind, to_items,
                                wide_encoding_error, without_polars_context)
from pipekit.data.items import column_name as _name
from pipekit.data.items import missing_as_null as _missing_as_null
from pipekit.data.items import null_if_missing as _null_if_missing
from pipekit.data.splitters import Splitter, TimeSplitter, left_out_message, row_index
from pipekit.data.vocab import CategoryMap
from pipekit.tabular.processor import TabularProcessor, load_processor
from pipekit.tabular.procs import (DEFAULT_PROCS, Categorify, FillMissing, Normalize, Procs, TabularProc,
                                   float32_overflow_error, schema_of, unshared_procs)

if TYPE_CHECKING:  # imported where the loaders are built: pipekit.data.dataloaders imports torch
    from pipekit.data.dataloaders import DataLoaders

Splits = Splitter | Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray]] | Sequence[Any] | None


def scan_table(source: Any, cat_names: Sequence[str] = (), text_names: Sequence[str] = (),
               cont_names: Sequence[str] = (), all_rows: bool = False, wide_names: Sequence[str] = ()) -> pl.LazyFrame:
    """A lazy query over a table; nothing is read until it is collected, and then only the columns selected.

    A CSV/TSV, Parquet or Arrow file is scanned. A CSV's columns have the types ``read_table`` gives them (from
    its first 10,000 rows; from all of them with ``all_rows``), so a file gives the same table as the frame read
    from it: numbers are numbers, in ``cat_names`` too (categories ``'2'`` before ``'10'``, and a new file's
    ``2012.0`` is the training year ``2012``), and its blank lines are no rows (``pandas.read_csv`` skips them
    too; a warning says how many). A ``.csv.gz``/``.tsv.gz``, a ``.zip`` holding one CSV and a ``.txt`` (comma
    separated) are read whole, as ``read_table`` reads them, then queried; a folder of Parquet files or a pattern such
    as ``'data/*.parquet'`` is scanned as one table (its files sorted). Text ``cat_names`` and ``text_names`` are read as
    ``pl.Categorical`` and numeric ``cont_names`` as Float32, so 10M-row tables stay small (category codes are
    never trusted: ``Categorify`` looks values up by value); :func:`collect_table` reads again as Float64 those
    holding values float32 cannot hold as whole units (ids, large counts). Polars frames are used as they are; any other source
    (pandas, Arrow, a Hugging Face dataset, rows as dicts) becomes a table the way ``pipekit.data.to_items``
    makes one, a pandas frame's text ``cat_names`` and ``text_names`` as ``pl.Categorical`` too. A CSV's numeric
    ``wide_names`` are read as Float64 (whatever type its first rows suggest: a decimal after 10,000 whole numbers
    reads as one).

    Example:
        >>> from pipekit.datasets import path
        >>> scan_table(path("adult_sample") / "adult.csv").select("age", "salary").collect().shape
        (32561, 2)
    """
    if isinstance(source, pl.LazyFrame):
        return source
    if isinstance(source, pl.DataFrame):
        return source.lazy()
    if not isinstance(source, (str, os.PathLike)):
        return to_items(source, categorical=[*cat_names, *text_names]).lazy()
    p = Path(source)
    files = parquet_files(source)  # a folder of Parquet files, or a pattern ('data/*.parquet')
    if files is not None:
        return as_enums(pl.scan_parquet(files, glob=False), parquet_ordered_categories(files))
    kind = table_kind(p)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; check the path (relative paths start from {Path.cwd()})"
                                if not p.is_absolute() else f"{p} does not exist; check the path")
    if kind is None:
        raise DataError(f"cannot read {str(p)!r} as a table; the formats read are {table_formats()}. "
                        "Another file can be read with pandas or Polars and the frame passed.")
    if kind == "packed":  # a .csv.gz, a .zip of one CSV or a .txt: read whole, as from_csv reads a CSV
        frame = read_packed_csv(p, infer_schema_length=None if all_rows else 10_000)
        named = pandas_header_names(header_fields(p, ",", frame.columns))  # 'Unnamed: 3', as pandas names it
        frame = frame.rename({w: c for w, c in zip(frame.columns, named) if w != c})
        if frame.height == 0 and frame.width:
            raise DataError(f"{p} has a header but no rows ({frame.columns[:10]}); check the file, or download it "
                            "again")
        return frame.lazy()
    if kind != "csv":
        check_table_nesting(p, kind)  # before Polars, which a deeply nested column crashes
        lf = pl.scan_parquet(p, glob=False) if kind == "parquet" else pl.scan_ipc(p, glob=False)
        try:
            lf.collect_schema()  # a file that is not a table fails here, where its name is known
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:  # a panic is no Exception
            raise table_error(p, e) from e
        # an ordered categorical (df.to_parquet of one) keeps its declared categories in their order, as
        # pd.read_parquet gives them back
        return as_enums(lf, parquet_ordered_categories([p])) if kind == "parquet" else lf
    if (wide := wide_encoding_error(p)) is not None:  # Polars would read its header as names between NUL bytes
        raise wide
    sep = "\t" if p.suffix.lower() == ".tsv" else ","
    source = csv_source(p, sep)
    try:  # an empty file, or one not UTF-8 in the rows types are read from, is named here
        schema, markers = _csv_schema(p, source, sep, None if all_rows else 10_000)
    except pl.exceptions.PolarsError as e:
        raise table_error(p, e) from e
    # the columns are named as pandas.read_csv names them ('age', 'age.1', 'Unnamed: 3'), Polars' names kept
    # for the scan (its schema is matched by name) and the query renamed at its end
    names = pandas_header_names(header_fields(p, sep, schema.names()))
    read = dict(zip(names, schema.names()))  # each name given -> Polars' name of that column

    def typed(cols: Sequence[str], ok: Callable[[pl.DataType], bool]) -> list[str]:
        return [read[c] for c in cols if c in read and ok(schema[read[c]])]

    types: dict[str, pl.DataType] = dict.fromkeys(typed([*cat_names, *text_names], lambda t: t == pl.String),
                                                  pl.Categorical())
    types.update(dict.fromkeys(typed(cont_names, lambda t: t.is_numeric()), pl.Float32()))
    types.update(dict.fromkeys(typed(wide_names, lambda t: t.is_numeric()), pl.Float64()))
    lf = scan_csv_whole_lines(source(), {**schema, **types}, p, sep, PANDAS_NA if markers else None)
    if not markers:
        lf = missing_markers_to_null(lf, [c for c, t in schema.items() if t == pl.String])
    # blank lines are no rows, as read_csv reads them (a file without any pays a search of its bytes)
    lf = skip_blank_lines(lf, p, sep)
    renamed = {w: c for c, w in read.items() if c != w}
    return lf.rename(renamed) if renamed else lf


#: the column types of the CSV files read while one table is built (:func:`csv_schemas_read_once`): file, version
#: (``pipekit.data.items.file_version``), separator and rows read -> (schema, whether it reads missing markers)
_CSV_SCHEMAS: contextvars.ContextVar[dict[tuple[Any, ...], tuple[pl.Schema, bool]] | None] = \
    contextvars.ContextVar("pipekit_csv_schemas", default=None)


@contextlib.contextmanager
def csv_schemas_read_once() -> Iterator[None]:
    """Within it, :func:`scan_table` infers the column types of each version of a CSV file once (per separator and
    number of rows read), however often the file is scanned: building a table reads its header, its first row and
    its columns, each a scan of the file. Outside it (and after it) every scan infers the types anew, so a file
    changed between two builds is read as it is then."""
    if _CSV_SCHEMAS.get() is not None:  # a build inside a build shares the outer one's
        yield
        return
    token = _CSV_SCHEMAS.set({})
    try:
        yield
    finally:
        _CSV_SCHEMAS.reset(token)


def _csv_schema(p: Path, source: Callable[[], Any], sep: str, rows: int | None) -> tuple[pl.Schema, bool]:
    """The column types :func:`scan_table` reads the CSV at ``p`` with (from its first ``rows`` rows, all of them
    with None), and whether the scan takes the texts pandas reads as missing as missing values; inferred once per
    version of the file within :func:`csv_schemas_read_once`."""
    memo = _CSV_SCHEMAS.get()
    key = (str(p), sep, rows, file_version(p)) if memo is not None else None
    if memo is not None and key in memo:
        return memo[key]
    schema = pl.scan_csv(source(), separator=sep, infer_schema_length=rows, glob=False,
                         null_values=list(PANDAS_NA)).collect_schema()
    # the texts pandas reads as missing ('NA') are missing values: Polars reads a file up to twice as slowly
    # with null_values, so the scan takes them only where the rows the types come from hold one in a column
    # of numbers (or the types come from all rows); otherwise a text column's are nulled as it is read, and
    # one after those rows fails to parse, which reads the file again with all its rows' types (collect_table)
    markers = rows is None or schema != pl.scan_csv(source(), separator=sep, infer_schema_length=rows,
                                                    glob=False).collect_schema()
    if memo is not None and key is not None:
        memo[key] = (schema, markers)
    return schema, markers


def collect_table(frame: pl.LazyFrame, source: Any, cont_names: Sequence[str] = (),
                  skipinitialspace: bool = False) -> pl.DataFrame:
    """A query from :func:`scan_table` (or a selection of its columns) collected, streaming. Where a CSV does not
    read as its first rows said (a '?' in a column of numbers, after row 10,000), its columns are read again as
    ``TabularDataLoaders.from_csv`` reads them, each column's type from all its rows (``scan_table(all_rows=
    True)``), so the table's checks name the column, the value and its row; any other failure to read names the
    file. A CSV's continuous columns are read as float32: one that holds inf is read again as float64, to refuse
    values beyond float32 by name rather than take them for missing ones, and one with values of 2**24 or more in
    magnitude (where float32 merges neighbouring whole numbers: ids, large counts) is read again as float64, so its
    values reach the processing as the file writes them. With ``skipinitialspace`` the columns read again have the
    spaces beginning their text values dropped, as ``frame`` has them dropped (:func:`read_csv_columns`)."""
    p = Path(source) if isinstance(source, (str, os.PathLike)) else None
    csv = p is not None and TABLE_SUFFIXES.get(p.suffix.lower()) == "csv"
    try:
        out = frame.collect(engine="streaming")
    except DataError as e:  # a line longer than the header (scan_csv_whole_lines)
        raise without_polars_context(e) from None
    except pl.exceptions.PolarsError as e:
        if p is None:
            raise
        if not csv:
            raise table_error(p, e) from e
        names = frame.collect_schema().names()
        try:
            again = scan_table(p, all_rows=True).select(names)
            return (strip_initial_spaces(again) if skipinitialspace else again).collect(engine="streaming")
        except DataError as e2:
            raise without_polars_context(e2) from None
        except pl.exceptions.PolarsError as e2:
            raise table_error(p, e2) from e2
    if csv and p is not None:
        with naming_file(p):  # the file's own values are at fault
            if (err := csv_float32_error(p, out, cont_names)) is not None:
                raise err
            out = _reread_large(p, out, cont_names)
    return out


def float32_rounded(frame: pl.DataFrame | pl.LazyFrame, cont_names: Sequence[str]) -> list[str]:
    """The Float32 ``cont_names`` of ``frame`` (a CSV's, read as float32 by :func:`scan_table`) holding a value
    beyond :data:`~pipekit.core.validate.FLOAT32_EXACT` in magnitude, which float32 rounds (1e12 + 1 reads as 1e12):
    such columns are read from the file again as Float64. One aggregation (streaming on a lazy frame)."""
    cols = [c for c in cont_names if schema_of(frame).get(c) == pl.Float32]
    if not cols:
        return []
    query = frame.select(past_float32(pl.col(c), rounded=True).any() for c in cols)
    found = (query.collect(engine="streaming") if isinstance(query, pl.LazyFrame) else query).row(0)
    return [c for c, big in zip(cols, found) if big]


def _reread_large(path: Path, frame: pl.DataFrame, cont_names: Sequence[str]) -> pl.DataFrame:
    """``frame`` (read from the CSV at ``path``) with its columns of :func:`float32_rounded` read again from the file
    as Float64, by the same reader, so the rows line up; whether the processing keeps them Float64 is its choice,
    made on the training rows' own values. Costs a second reading of the file only where such a column is there."""
    large = float32_rounded(frame, cont_names) if len(frame) else []
    if not large:
        return frame
    try:
        again = scan_table(path, wide_names=large).select(large).collect(engine="streaming")
    except pl.exceptions.PolarsError as e:
        raise table_error(path, e) from e
    return frame.with_columns(again)


def csv_float32_error(path: Path, frame: pl.DataFrame | pl.LazyFrame, cont_names: Sequence[str]) -> DataError | None:
    """A CSV's continuous columns are read as float32 (:func:`scan_table`), where a value beyond its range is inf:
    the columns of ``frame`` (read from the CSV at ``path``, or staged from it) that hold inf are read again from the
    file as float64, so such values get the DataError an eager frame gets (:func:`float32_overflow_error`) rather
    than be taken for missing ones; an 'inf' written in the file stays inf. One streaming pass on a lazy scan."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    cols = [c for c in cont_names if schema.get(c) == pl.Float32]
    if not cols:
        return None
    query = frame.select(pl.col(c).is_infinite().any() for c in cols)
    has_inf = (query.collect(engine="streaming") if isinstance(query, pl.LazyFrame) else query).row(0)
    wide = [c for c, inf in zip(cols, has_inf) if inf]
    if not wide:
        return None
    again = scan_table(path, wide_names=wide).select(wide)  # the file's columns named as the frame names them
    return float32_overflow_error(again, wide)


@contextlib.contextmanager
def naming_file(source: Any) -> Iterator[None]:
    """A :class:`DataError` raised while the rows of a file are processed names the file, once, as the errors of
    its reading name it (``Path(source)``): ``'/data/adult.csv: continuous column 'age' holds text ...'``; other
    sources are left alone. Only the processing of the rows goes inside: the reading of a file names the file
    itself, and an error about a parameter is a :class:`ParameterError`, which names no file."""
    try:
        yield
    except DataError as e:
        where = str(Path(source)) if isinstance(source, (str, os.PathLike)) else None
        if where and e.args and isinstance(e.args[0], str) and where not in e.args[0]:
            e.args = (f"{where}: {e.args[0]}", *e.args[1:])
        raise


def is_csv_file(source: Any) -> bool:
    """Whether ``source`` is the path of a CSV or TSV file (by its suffix, as every table reader tells one)."""
    return isinstance(source, (str, os.PathLike)) and TABLE_SUFFIXES.get(Path(source).suffix.lower()) == "csv"


def read_frame(source: Any, cat_names: Sequence[str] = (), skipinitialspace: bool = False) -> pl.DataFrame:
    """The whole table in memory (a Polars DataFrame is used as it is), read as :func:`scan_table` reads it; a CSV
    file with ``skipinitialspace`` is read as ``TabularDataLoaders.from_csv`` reads one, the spaces after each
    comma dropped from its text values (adult.csv's ``", Private"`` is ``"Private"``), and a table in memory
    or another file has the spaces beginning its text values dropped alike."""
    if skipinitialspace and is_csv_file(source):  # named as pandas.read_csv(skipinitialspace=True) names them
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        frame = read_csv(p, separator="\t" if p.suffix.lower() == ".tsv" else ",",
                         new_columns=csv_names(p, skipinitialspace=True))
        return strip_initial_spaces(frame)
    frame = source if isinstance(source, pl.DataFrame) else collect_table(scan_table(source, cat_names), source)
    if skipinitialspace and isinstance(source, (str, os.PathLike)):  # a file read whole: its header's names too
        return strip_header_spaces(strip_initial_spaces(frame), Path(source))
    return strip_initial_spaces(frame) if skipinitialspace else frame


def csv_header(path: str | os.PathLike, skipinitialspace: bool = False) -> dict[str, str]:
    """The column names of the CSV file at ``path`` as ``pandas.read_csv`` names them (with ``skipinitialspace``,
    as ``pandas.read_csv(skipinitialspace=True)`` does: :func:`csv_names`), each mapped to the name
    :func:`scan_table` gives that column; only the header and the rows the types come from are read."""
    p = Path(path)
    written = scan_table(p).collect_schema().names()
    if not skipinitialspace:
        return dict(zip(written, written))
    return dict(zip(csv_names(p, skipinitialspace=True), written))


def read_csv_columns(path: str | os.PathLike, names: Sequence[str], cat_names: Sequence[str] = (),
                     text_names: Sequence[str] = (), cont_names: Sequence[str] = (),
                     skipinitialspace: bool = False, *, header: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The columns ``names`` of the CSV file at ``path``, and only those: the file is scanned (:func:`scan_table`,
    ``cat_names``/``text_names`` as categories and ``cont_names`` as numbers there) and collected streaming
    (:func:`collect_table`), so its other columns are never held in memory. With ``skipinitialspace`` the names are
    the header's without the spaces that begin them and the spaces after each comma are dropped from the text values,
    as :func:`read_frame` reads the whole file. ``header``: what :func:`csv_header` gives for the file, when the
    caller has it already (it is not read again).

    A name the file does not hold is a DataError naming the file, the close names it may have meant and the file's
    columns (:func:`~pipekit.core.validate.unknown_names`); ``Tabular`` checks its names against the header first,
    as :meth:`TabularProcessor.check_columns` checks a table's.

    Example:
        >>> from pipekit.datasets import path
        >>> read_csv_columns(path("adult_sample") / "adult.csv", ["age", "workclass"], cat_names=["workclass"],
        ...                  skipinitialspace=True).row(0)
        (49, 'Private')
    """
    p = Path(path)
    written = csv_header(p, skipinitialspace) if header is None else header
    if absent := [c for c in names if c not in written]:
        raise DataError(f"{p}: column(s) {absent} are not in the file; {unknown_names(absent, list(written))}.")

    def in_file(cols: Sequence[str]) -> list[str]:
        return [written[c] for c in cols if c in written]

    frame = scan_table(p, in_file(cat_names), in_file(text_names), in_file(cont_names)).select(in_file(names))
    out = collect_table(strip_initial_spaces(frame) if skipinitialspace else frame, p, in_file(cont_names),
                        skipinitialspace)
    have = set(out.columns)
    return out.rename({w: c for c, w in written.items() if c != w and w in have})


def read_new(processor: TabularProcessor, source: Any) -> pl.DataFrame:
    """New rows as fitted ``processor`` reads them: a table, a path, a dict row, a pandas Series or a list of dict
    rows; a file is read as the training table was (the processor's ``skipinitialspace``), so its values are the
    training values. Every reading of new rows through fitted processing goes through here."""
    if isinstance(source, np.ndarray):  # read as one column, 'item': every input would be said to be missing
        names = list(processor.cat_names) + list(processor.cont_names)
        shape = "x".join(str(n) for n in source.shape)
        raise DataError(f"new data: a NumPy array ({shape}) has no column names, and the procs read columns by name; "
                        "make it a frame naming its columns as the training table did, pd.DataFrame(arr, "
                        "columns=[...]) with the name of each of its columns in order (the training frame's "
                        f"df.columns when it holds them all), among them the columns the procs read: {names}")
    return read_frame(rows_to_frame(source), processor.cat_names, processor.skipinitialspace)


def process_new(processor: TabularProcessor, source: Any, with_labels: bool | None = None,
                ids: Sequence[str] = ()) -> pl.DataFrame:
    """New rows (what :func:`read_new` reads) processed by fitted ``processor``: ``Tabular.new``, ``dls.test_dl``
    and ``learn.predict`` encode them here; ``with_labels`` as :meth:`TabularProcessor.transform` takes it
    (``test_dl`` ignores the target unless asked for it). A DataError about the rows of a file names the file.
    ``ids``: categorical columns that identify something (the users and items of ratings), where a missing value
    is no category of its own: it is warned about, as it is scored as an id never seen in training."""
    check_fork_safe("process_new")
    source = rows_to_frame(source)
    frame = read_new(processor, source)
    with naming_file(source):
        warn_missing_ids(frame, ids)
        return processor.transform(frame, with_labels, missing_said=ids)


def warn_missing_ids(frame: pl.DataFrame, ids: Sequence[str]) -> None:
    """One warning naming each column of ``ids`` that is missing (null or NaN) in some rows of ``frame``, and in
    how many: a rating's user or item cannot be missing in training, so at predict such a row is scored as an
    unseen id (the ``#na#`` row of the embeddings).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_missing_ids(pl.DataFrame({"userId": [73, None, None], "movieId": [1, 2, 3]}), ["userId", "movieId"])
    >>> print(w[0].message)  # doctest: +ELLIPSIS
    'userId' is missing in 2 of 3 rows; they are scored as an unseen userId (#na#)...
    """
    schema = frame.schema  # read once: a wide frame rebuilds it on every access
    cols = [c for c in ids if c in schema]
    if not cols or not len(frame):
        return
    counts = frame.select([(pl.col(c).is_null() | pl.col(c).is_nan() if schema[c].is_float()
                            else pl.col(c).is_null()).sum().alias(c) for c in cols]).row(0)
    missing = {c: int(n) for c, n in zip(cols, counts) if n}
    if missing:
        said = "; ".join(f"{c!r} is missing in {n} of {len(frame)} rows" for c, n in missing.items())
        names = ", ".join(missing)
        warn(f"{said}; they are scored as an unseen {names} (#na#): the prediction of an id never seen "
             f"in training. Give the id, or drop those rows (Polars: df.drop_nulls({list(missing)}))")


def rows_to_frame(items: Any) -> Any:
    """New rows as a table: a dict row, a dict of columns (a list of values each), a pandas Series (a row), a list
    of dict rows, a list of pandas Series (rows naming the same columns), or ``[one of those]`` (what ``learn.predict(row)`` hands over); frames and paths are left to be
    read as tables are.

    >>> rows_to_frame({"age": 30, "job": "cook"}).shape, rows_to_frame({"age": [30, 41], "job": ["cook", None]}).shape
    ((1, 2), (2, 2))
    """
    if isinstance(items, (list, tuple)) and len(items) == 1 and (
            not isinstance(items[0], dict) or any(is_column(v) for v in items[0].values())):
        items = items[0]
    if isinstance(items, (str, os.PathLike)) and not Path(items).is_file():
        raise ParameterError(f"tabular new data: {str(items)[:80]!r} is not a table file; give a DataFrame, the path "
                             "of a CSV/Parquet file, a dict row, a pandas Series or a list of dict rows.")
    if isinstance(items, dict):
        if items and all(is_column(v) for v in items.values()):  # columns: {"age": [30, 41], "job": [...]}
            lengths = {k: len(v) for k, v in items.items()}
            if len(set(lengths.values())) > 1:
                raise ParameterError(f"tabular new data: the columns of the dict have different lengths ({lengths}); "
                                     "give every column a value for each row")
            check_unique_columns([_name(k) for k in items], "dict of columns")  # 0 and '0' both name '0'
            return pl.DataFrame({_name(k): [_null_if_missing(x) for x in _values(v)] for k, v in items.items()})
        columns = [k for k, v in items.items() if is_column(v)]
        if columns:
            raise ParameterError(f"tabular new data: a dict is one row (a value per column) or columns (a list of values "
                                 f"per column); this one mixes them: {columns[:5]} hold lists, the others single values. "
                                 "Give every column a list, or a DataFrame.")
        return pl.DataFrame([_missing_as_null(items)])
    if is_pandas(items, "Series"):
        return pl.DataFrame([_missing_as_null(items.to_dict())])
    if isinstance(items, (list, tuple)) and items and all(is_pandas(r, "Series") for r in items):
        return pl.DataFrame([_missing_as_null(r.to_dict()) for r in _same_index_rows(items)])
    if isinstance(items, (list, tuple)) and not all(isinstance(r, dict) for r in items):
        kinds = sorted({type(r).__name__ for r in items})
        raise ParameterError(f"tabular new data: give a DataFrame, a path, a dict row ({{column: value}}), a dict of "
                             "columns, a pandas Series or a list of dict rows or of Series; got a "
                             f"{type(items).__name__} of {', '.join(kinds[:4]) if items else 'nothing'} (values without "
                             "their column names: a row needs them, as in dict(zip(columns, values))).")
    if isinstance(items, (list, tuple)):
        return pl.DataFrame([_missing_as_null(r) for r in items])
    return items


def _same_index_rows(rows: Sequence[Any]) -> Sequence[Any]:
    """``rows`` (pandas Series, each a row as ``df.iloc[i]`` gives it, its column names in its index), checked to
    name the same columns: a row naming others would make columns missing in the rows before it."""
    first = set(rows[0].index)
    for i, r in enumerate(rows[1:], start=1):
        if set(r.index) != first:
            lacks, extra = sorted(map(str, first - set(r.index))), sorted(map(str, set(r.index) - first))
            raise ParameterError(f"tabular new data: the Series at position {i} of the list names other columns than "
                                 f"the first one: it lacks {lacks[:5]} and adds {extra[:5]}; give every row the same "
                                 "columns (rows of one DataFrame: df.iloc[i]), or give a DataFrame")
    return rows


def _values(v: Any) -> list:
    return v.to_list() if isinstance(v, pl.Series) else v.tolist() if hasattr(v, "tolist") else list(v)


def split_rows(splits: Splits, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, valid_idx)``: every row trains when ``splits`` is None; a splitter (the ones DataBlock
    takes, or a function ``items -> (train_idx, valid_idx)``) is called; a pair of index arrays, or of boolean
    masks with one value per row (``(~is_valid, is_valid)``), is used. A split with no validation row (as None,
    or ``RandomSplitter(valid_pct=0)``) trains on every row with no validation scores; one with no training row
    is refused. Rows in neither set are left out, with a warning naming the first (as a DataBlock's split warns)."""
    n = len(items)
    if splits is None:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    train, valid = splits(items) if callable(splits) else splits
    train, valid = row_index(train, n, "Tabular: the train"), row_index(valid, n, "Tabular: the valid")
    if len(train) == 0:
        raise DataError(f"Tabular: the split left the training set empty (0 of {n} rows); check the splitter.")
    placed = np.zeros(n, dtype=bool)
    placed[train] = True
    both = valid[placed[valid]]  # a mask, not np.intersect1d: that sorts, 2.5 s on 2M rows here
    if both.size:
        raise DataError(f"Tabular: the split puts {both.size} row(s) in both the training and the validation set "
                        f"(first: row {int(both[0])}).")
    placed[valid] = True
    n_left = n - int(np.count_nonzero(placed))  # counted on the mask: a position listed twice places one row
    if n_left:
        first = int(np.argmin(placed))
        msg = left_out_message(n_left, n, f"row {first}", "give Tabular only the rows to split (pandas: "
                               "df.iloc[rows]; Polars: df[rows])", unit="row")
        warn(f"Tabular: {msg}" + ("" if callable(splits) else " (or list each row in one of the two sets of splits)"))
    return train, valid


@contextlib.contextmanager
def _plain_pages() -> Iterator[None]:
    """numpy arrays made inside use plain pages, not transparent huge pages: where the kernel compacts memory
    when such a page is first touched (THP defrag "madvise" and a page cache filling the memory), the index
    arrays of a 10M-row split cost twice their CPU time in the kernel. Only a performance setting changes."""
    setter = getattr(getattr(np, "_core", None), "multiarray", None)
    setter = getattr(setter, "_set_madvise_hugepage", None)
    old = setter(False) if setter is not None else None
    try:
        yield
    finally:
        if setter is not None:
            setter(old)


def take_rows(frame: pl.DataFrame, idxs: np.ndarray) -> pl.DataFrame:
    """Rows ``idxs`` of ``frame``; increasing indices (a split's subsets) are taken by a boolean filter,
    several times faster than a gather on a 10M-row table."""
    if len(idxs) > 1 and bool(np.all(idxs[1:] > idxs[:-1])):
        keep = np.zeros(len(frame), dtype=bool)
        keep[idxs] = True
        return frame.filter(pl.Series(keep))
    return frame[idxs]


_P = TypeVar("_P", bound=TabularProc)


class FittedProc(Generic[_P]):
    """A fitted proc of a Tabular as fastai's ``TabularPandas`` shows it (``to.fill_missing``, ``to.categorify``,
    ``to.normalize``): a view of the proc itself (``.proc``), whose attributes it reads (``fill_values_``,
    ``classes_``, ``means_``, ...), with fastai's names for what it learned. It holds nothing of its own."""

    def __init__(self, proc: _P) -> None:
        self.proc = proc

    def __getattr__(self, name: str) -> Any:
        if name == "proc":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.proc, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.proc!r})"


class FillMissingView(FittedProc[FillMissing]):
    """``to.fill_missing``: the fitted :class:`~pipekit.tabular.procs.FillMissing`, with fastai's ``na_dict``."""

    @property
    def na_dict(self) -> dict[str, float]:
        """The value each continuous column with missing values in the training rows is filled with (those columns
        get a ``<col>_na`` flag), as fastai's ``to.fill_missing.na_dict``; ``fill_values_`` has every column's."""
        return {c: self.proc.fill_values_[c] for c in self.proc.na_columns_}

    @property
    def fill_strategy(self) -> str:
        """fastai's name of ``strategy`` ('median', 'mode' or 'constant')."""
        return self.proc.strategy


class CategorifyView(FittedProc[Categorify]):
    """``to.categorify``: the fitted :class:`~pipekit.tabular.procs.Categorify`, with fastai's ``classes`` and
    ``to.categorify['col']``."""

    @property
    def classes(self) -> dict[str, Any]:
        """Each categorical column's classes, ``#na#`` first (``classes_``; the same as ``to.classes``)."""
        return self.proc.classes_

    def __getitem__(self, col: str) -> Any:
        """One column's classes (a :class:`~pipekit.tabular.procs.CategoryMap`), as fastai's
        ``to.categorify['col']``."""
        return self.proc.classes_[col]


class NormalizeView(FittedProc[Normalize]):
    """``to.normalize``: the fitted :class:`~pipekit.tabular.procs.Normalize`, with fastai's ``means`` and
    ``stds``."""

    @property
    def means(self) -> dict[str, float]:
        return self.proc.means_

    @property
    def stds(self) -> dict[str, float]:
        return self.proc.stds_


class FittedProcs(list):
    """``to.procs``: the fitted procs in the order they ran (a list), named as fastai's pipeline of procs names
    them: ``to.procs.categorify``, ``.fill_missing`` and ``.normalize`` are the views ``to.categorify`` ...
    give, and a name one of them has reads it there (``to.procs.means``, ``to.procs.classes``,
    ``to.procs.na_dict``).

    >>> import polars as pl
    >>> from pipekit.tabular import Tabular, Normalize
    >>> to = Tabular(pl.DataFrame({"a": ["x", "y", "x"], "t": [1.0, 3.0, 5.0], "y": ["no", "yes", "no"]}), cat_names=["a"],
    ...              cont_names=["t"], y_names="y", procs=[Normalize], splits=None)
    >>> to.procs, to.procs.normalize.means, to.procs.stds["t"] > 1.6
    ([Normalize()], {'t': 3.0}, True)
    """

    _NAMED = ("fill_missing", "categorify", "normalize")

    def __init__(self, owner: _FittedNames, where: str = "to.procs") -> None:
        super().__init__(owner.processor.procs)
        self._owner, self._where = owner, where

    @classmethod
    def of(cls, processor: TabularProcessor, where: str) -> FittedProcs:
        """The fitted procs of ``processor`` (:meth:`TabularProcessor.fitted_procs
        <pipekit.tabular.processor.TabularProcessor.fitted_procs>`), named ``where`` in the error of a name none of
        them has."""
        owner = _FittedNames()
        owner.processor = processor
        return cls(owner, where)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._NAMED:
            return getattr(self._owner, name)
        found = [getattr(view, name) for view in self._views() if hasattr(view, name)]
        if not found:
            raise AttributeError(f"{self._where} has no {name!r}: the fitted procs are "
                                 f"{[type(p).__name__ for p in self]}, named {', '.join(self._NAMED)}")
        return found[0] if len(found) == 1 else found

    def _views(self) -> list[FittedProc[Any]]:
        views = []
        for name in self._NAMED:
            try:
                views.append(getattr(self._owner, name))
            except AttributeError:  # processed without that proc
                pass
        return views


class _FittedNames:
    """Column names and fitted vocabularies, read from the processor (what models and ensembles use).

    fastai's ``TabularPandas`` names read the same processing, on the table and on each split (``to.train``):
    ``vocab`` (the target's classes), ``all_col_names``, and the fitted procs ``fill_missing``, ``categorify`` and
    ``normalize``.

    Example:
        >>> from pipekit.datasets import path
        >>> from pipekit.data import RandomSplitter
        >>> from pipekit.tabular import Tabular, Categorify, FillMissing, Normalize
        >>> to = Tabular(path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing, Normalize],
        ...              cat_names=["workclass"], cont_names=["age", "education-num"], y_names="salary",
        ...              splits=RandomSplitter(valid_pct=0.2, seed=42))
        >>> to.vocab, to.valid.vocab.o2i[">=50k"], to.all_col_names
        (['<50k', '>=50k'], 1, ['workclass', 'education-num_na', 'age', 'education-num', 'salary'])
        >>> to.fill_missing.na_dict, to.categorify["workclass"][:3], to.train.normalize.means["age"] > 38
        ({'education-num': 10.0}, ['#na#', ' ?', ' Federal-gov'], True)
    """

    processor: TabularProcessor

    @property
    def cat_names(self) -> list[str]:
        """The categorical input columns, with the ``<col>_na`` flags ``FillMissing`` added."""
        return self.processor.cat_names_

    @property
    def cont_names(self) -> list[str]:
        """The continuous input columns."""
        return self.processor.cont_names_

    @property
    def y_names(self) -> list[str]:
        """The target column(s)."""
        return self.processor.y_names

    @property
    def classes(self) -> dict[str, list[str]]:
        """Each categorical column's classes, ``#na#`` first, in code order (the book's ``to.classes['ProductSize']``):
        a :class:`~pipekit.tabular.procs.CategoryMap`, whose ``.o2i[value]`` is a value's code."""
        return self.processor.classes_

    @property
    def y_vocab(self) -> list[str] | None:
        """A categorical target's classes as text, in code order; None for a regression or no target (``vocab`` gives
        them in the target's own type)."""
        return self.processor.y_vocab_

    @property
    def vocab(self) -> Any:
        """The target's classes in code order, in the target's own type (fastai's ``to.vocab``; ``dls.vocab`` is the
        same): a :class:`~pipekit.tabular.procs.CategoryMap` (``.o2i[label]`` is a class's code). A regression
        target has none: an AttributeError, as in fastai."""
        p = self.processor
        classes = p.y_classes_
        if p.y_kind_ != "category" or classes is None:
            raise AttributeError(f"vocab is the classes of a category target; this table's target {p.y_names} is "
                                 f"{'a regression' if p.y_kind_ == 'regression' else 'absent'} (y_kind={p.y_kind_!r})")
        return CategoryMap(classes, name=", ".join(p.y_names))

    @property
    def all_col_names(self) -> list[str]:
        """The processed columns: categorical (``_na`` flags included), continuous, then target (fastai's
        ``to.all_col_names``)."""
        return self.cat_names + self.cont_names + self.y_names

    @property
    def procs(self) -> FittedProcs:
        """The fitted procs, in the order they ran (``to.procs``, a list; ``to.procs.categorify``,
        ``to.procs.means`` read them by name as fastai's do)."""
        return FittedProcs(self)

    def _proc(self, kind: type[TabularProc], view: type[FittedProc[Any]]) -> Any:
        for proc in self.processor.procs:
            if isinstance(proc, kind):
                return view(proc)
        raise AttributeError(f"this table was processed without {kind.__name__} (procs="
                             f"{[type(p).__name__ for p in self.processor.procs]}); add it to procs to have it")

    @property
    def fill_missing(self) -> FillMissingView:
        """The fitted ``FillMissing`` (fastai's ``to.fill_missing``): ``.na_dict`` is the fill value of each column
        that had missing values in the training rows."""
        return self._proc(FillMissing, FillMissingView)

    @property
    def categorify(self) -> CategorifyView:
        """The fitted ``Categorify`` (fastai's ``to.categorify``): ``['col']`` is a column's classes, ``.classes``
        every column's."""
        return self._proc(Categorify, CategorifyView)

    @property
    def normalize(self) -> NormalizeView:
        """The fitted ``Normalize`` (fastai's ``to.normalize``): ``.means`` and ``.stds`` by column."""
        return self._proc(Normalize, NormalizeView)


def show_rows(processor: TabularProcessor, frame: pl.DataFrame, max_n: int, who: str) -> None:
    """The first ``max_n`` rows of a processed ``frame`` as a person reads them: its input and target columns,
    categories as their values, continuous columns in the data's own units; shown by ``show_table`` (a table in a
    notebook, printed in a script)."""
    from pipekit.data.plotting import show_table

    n = check_positive_int(who, "max_n", max_n)
    have = set(frame.columns)
    cols = [c for c in processor.cat_names_ + processor.cont_names_ + processor.y_names if c in have]
    show_table(processor.decode(frame.head(n).select(cols), units=True), name="tabular_rows")


class TabularSplit(_FittedNames):
    """Processed rows of one subset: ``.xs`` (the inputs), ``.y`` (the target, 1-D), ``.ys``, ``.cats``,
    ``.conts``, ``to_numpy()``, ``to_torch()``.

    ``.xs``, ``.y`` and ``.ys`` are the user's kind of frame: pandas (with the source's row labels) for a table
    given as a pandas DataFrame, as fastai's ``to.train.xs`` is, so the book's pandas code runs on them as
    written; Polars otherwise. Each access is a new frame: changing it leaves the table as it was. Models read
    ``.inputs`` and ``.targets``, the Polars frames, whatever the source.

    Example:
        >>> import polars as pl
        >>> from pipekit.datasets import path
        >>> from pipekit.tabular import Tabular, Categorify, FillMissing, Normalize
        >>> df = pl.read_csv(path("adult_sample") / "adult.csv", n_rows=300)
        >>> tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education"],
        ...               cont_names=["age", "education-num"], y_names="salary",
        ...               splits=[list(range(240)), list(range(240, 300))])
        >>> xs, y = tab.train.to_numpy()
        >>> xs.shape, xs.dtype, y.shape, len(tab.valid)
        ((240, 5), dtype('float32'), (240,), 60)
        >>> tab.valid.inputs.columns, tab.valid.inputs.shape
        (['workclass', 'education', 'education-num_na', 'age', 'education-num'], (60, 5))
        >>> tab.valid.targets.columns, tab.y_vocab
        (['salary'], ['<50k', '>=50k'])
    """

    def __init__(self, frame: pl.DataFrame, processor: TabularProcessor, idxs: np.ndarray | None = None,
                 name: str = "train", pandas_index: Any = None) -> None:
        self._full = frame
        self.idxs = idxs
        self.processor = processor
        self.name = name
        self._frame: pl.DataFrame | None = None
        # the row labels of a pandas source (all its rows): the user-facing frames are pandas, labelled by them
        self.pandas_index = pandas_index

    @property
    def frame(self) -> pl.DataFrame:
        """This subset's processed rows as one Polars frame: inputs (codes, normalised numbers) and targets."""
        if self._frame is None:
            self._frame = self._full if self.idxs is None else take_rows(self._full, self.idxs)
        return self._frame

    def new_rows(self, source: Any) -> TabularSplit:
        """``source`` (new rows: a table, a dict row, a list of them) processed as these rows were: what a tabular
        test loader's ``xs`` is (``dls.test_dl(df).xs``, fastai's ``to.new(df)``)."""
        return new_rows(self.processor, source)

    def new(self, source: Any) -> TabularSplit:
        """``source`` processed with the table's fitted procs, as ``to.new(df)`` processes it (fastai's
        ``to.train.new(df)``, whose ``.process()`` applies the same procs): the split it is called on does not
        change the result. See :meth:`Tabular.new`.

        >>> import polars as pl
        >>> tab = Tabular(pl.DataFrame({"a": ["x", "y", "x"], "t": [1.0, 2.0, 3.0]}), cat_names=["a"], y_names="t",
        ...               splits=([0, 1], [2]))
        >>> to_tst = tab.train.new(pl.DataFrame({"a": ["y", "x"]})); to_tst.process(); to_tst.xs["a"].to_list()
        [2, 1]
        """
        return new_rows(self.processor, source)

    def __len__(self) -> int:
        return len(self._full) if self.idxs is None else len(self.idxs)

    def process(self) -> None:
        """Nothing to do: these rows were processed when they were made (``to.new(df)`` applies the fitted procs
        at once). fastai's tabular tutorial writes ``to_tst = to.new(df); to_tst.process()``, which runs as
        written.

        >>> to_tst = tab.new(df.head(3)); to_tst.process(); to_tst.xs.shape  # doctest: +SKIP
        (3, 14)
        """

    @property
    def has_targets(self) -> bool:
        """Whether these rows hold the target column(s) (new rows to predict may not)."""
        return bool(self.y_names) and all(c in self._full.columns for c in self.y_names)

    @property
    def inputs(self) -> pl.DataFrame:
        """Model inputs as a Polars frame: categorical codes then normalised continuous columns (what models
        read; ``.xs`` is the same in the user's kind of frame)."""
        return self.frame.select(self.cat_names + self.cont_names)

    @property
    def targets(self) -> pl.DataFrame | None:
        """Encoded targets as a Polars frame, one column per y_name; None when the data has no target."""
        return self.frame.select(self.y_names) if self.has_targets else None

    def _users(self, frame: pl.DataFrame) -> Any:
        """``frame`` in the kind of frame the table came as: pandas, labelled as the source's rows, for a pandas
        source; itself otherwise."""
        if self.pandas_index is None:
            return frame
        out = frame.to_pandas()
        out.index = self._labels()
        return out

    def _labels(self) -> Any:
        return self.pandas_index if self.idxs is None else self.pandas_index[self.idxs]

    @property
    def xs(self) -> Any:
        """Model inputs: categorical codes then normalised continuous columns; a pandas DataFrame for a table
        given as pandas (labelled as its rows), a Polars one otherwise."""
        return self._users(self.inputs)

    def select(self, columns: str | Sequence[str]) -> Any:
        """This split with only the input ``columns`` (the book's ``xs[to_keep]``), as the model-facing
        :class:`~pipekit.backends.TabularData` with the same rows, targets and procs: a model fitted on it reads
        those columns of any split of this Tabular (``m.fit(tab.train.select(keep)); m.score(tab.valid)``)."""
        from pipekit.backends.data import as_data

        return as_data(self).select(columns)

    def drop(self, columns: str | Sequence[str]) -> Any:
        """This split without the input ``columns`` (see :meth:`select`)."""
        from pipekit.backends.data import as_data

        return as_data(self).drop(columns)

    @property
    def cats(self) -> pl.DataFrame:
        """The categorical input columns, as codes (0 is ``#na#``), as a Polars frame (fastai's ``to.cats``)."""
        return self.frame.select(self.cat_names)

    @property
    def conts(self) -> pl.DataFrame:
        """The continuous input columns, as processed (normalised when ``Normalize`` is a proc), as a Polars frame
        (fastai's ``to.conts``)."""
        return self.frame.select(self.cont_names)

    @property
    def ys(self) -> Any:
        """Encoded targets as a frame, one column per y_name (class codes into ``y_vocab`` or floats); None when the
        data has no target; pandas for a pandas source, as ``.xs``. For one target, ``.y`` is the 1-D Series to
        score predictions against."""
        ys = self.targets
        return None if ys is None else self._users(ys)

    @property
    def y(self) -> Any:
        """The one target as a 1-D Series named after it (class codes into ``y_vocab``, or float32 values), as
        fastai's ``to.train.y`` is; a pandas Series (labelled as the rows) for a pandas source, a Polars Series
        otherwise; None when the data has no target. Built on :meth:`y_array`. Use it rather than ``.ys`` (an
        ``(n, 1)`` frame) to score a 1-D prediction: numpy broadcasts ``preds - ys`` to an ``(n, n)`` matrix, a
        wrong number with no error.

        Example:
            >>> import numpy as np, polars as pl
            >>> df = pl.DataFrame({"a": ["x", "y", "x", "y"], "t": [0.5, 1.0, 1.5, 2.0]})
            >>> tab = Tabular(df, cat_names=["a"], y_names="t", splits=([0, 1, 2], [3]))
            >>> tab.train.y.to_list(), (np.zeros(3) - tab.train.y).shape
            ([0.5, 1.0, 1.5], (3,))
        """
        if len(self.y_names) > 1:
            raise ParameterError(f"{self.name}.y is the one target of a table with one y_name; this one has "
                                 f"{len(self.y_names)} ({self.y_names}): use .ys (a frame, one column each) or "
                                 ".y_array() (an (n, k) array).")
        y = self.y_array()
        if y is None:
            return None
        if self.pandas_index is None:
            return pl.Series(self.y_names[0], y)
        import pandas as pd

        return pd.Series(y, index=self._labels(), name=self.y_names[0])

    def y_array(self) -> np.ndarray | None:
        """Targets as numpy: int64 codes (classification), float32 ``(n,)`` or ``(n, k)`` (regression)."""
        if not self.has_targets:
            return None
        if self.processor.y_kind_ == "category":
            y = self.frame[self.y_names[0]].to_numpy().astype(np.int64, copy=False)
        else:
            y = self.frame.select(self.y_names).to_numpy(order="c").astype(np.float32, copy=False)
            y = y[:, 0] if y.shape[1] == 1 else y
        # Arrow buffers are read-only; the target is small, so copy rather than hand torch a read-only array.
        return y if y.flags.writeable else y.copy()

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(cats, conts, y)``: int64 ``(n, n_cat)`` codes, float32 ``(n, n_cont)`` values and ``y_array()``."""
        n = len(self)
        for c, dtype in self.cats.schema.items():  # codes: text or fractions would fail or be cut short here
            if not (dtype.is_integer() or dtype == pl.Boolean):
                kind = type(dtype).__name__ if isinstance(dtype, (pl.Categorical, pl.Enum)) else dtype
                raise DataError(f"categorical column {c!r} holds {kind} values (e.g. "
                                f"{self.cats[c].drop_nulls().head(1).to_list()}), and a model reads a category as its "
                                "code: add Categorify to procs (procs=[Categorify, FillMissing, Normalize]), or give the "
                                "column as cont_names")
        cats = (self.cats.to_numpy(order="c").astype(np.int64, copy=False) if self.cat_names
                else np.zeros((n, 0), dtype=np.int64))
        conts = (self.conts.to_numpy(order="c").astype(np.float32, copy=False) if self.cont_names
                 else np.zeros((n, 0), dtype=np.float32))
        return cats, conts, self.y_array()

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(xs, y)``: a float32 matrix of categorical codes and continuous values, and ``y_array()``."""
        xs = self.inputs.to_numpy(order="c")
        return xs.astype(np.float32, copy=False), self.y_array()

    def to_torch(self) -> tuple[Any, Any, Any]:
        """``(cats int64, conts float32, y)`` CPU tensors shaped ``(n, n_cat)``, ``(n, n_cont)``."""
        import torch

        cats, conts, y = self.arrays()
        return torch.from_numpy(cats), torch.from_numpy(conts), (None if y is None else torch.from_numpy(y))

    def decode(self, n: int = 5) -> pl.DataFrame:
        """The first ``n`` rows with categories as their values (continuous columns stay normalised)."""
        return self.processor.decode(self.frame.head(n))

    @property
    def items(self) -> Any:
        """This split's processed rows (fastai's ``to.train.items``): the frame ``xs`` and ``ys`` are columns of, in
        the user's kind of frame as they are (pandas labelled as the source's rows for a pandas source, so
        ``.iloc``/``.loc`` work). It holds the model's columns only; the source's other columns are in the source."""
        return self._users(self.frame)

    def show(self, max_n: int = 10) -> None:
        """Show the first ``max_n`` rows as a person reads them (fastai's ``to.train.show(3)``); see
        :meth:`Tabular.show`."""
        show_rows(self.processor, self.frame, max_n, f"{self.name}.show")

    def __repr__(self) -> str:
        return (f"TabularSplit({self.name}, {len(self)} rows, {len(self.cat_names)} categorical, "
                f"{len(self.cont_names)} continuous, y={self.y_names})")


#: bytes a value of each Parquet physical type takes once read (a column's own Arrow type, when the file records one,
#: gives the exact width: an int8 code is stored as INT32); text and bytes take a 16-byte view per value plus the text
_PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}


def parquet_table_bytes(path: str | os.PathLike, stop_over: int | None = None) -> tuple[int, int]:
    """``(rows, bytes)``: the rows a Parquet file holds and about the memory a table read from it takes: the rows
    times the width of each column's type, plus the uncompressed pages for text (and any other values of no fixed
    width), from the file's footer. Run-length and dictionary encodings make a column of one repeated value a few
    bytes on disk, so the pages' own sizes say little of what reading them takes. A nested column (lists) is counted
    chunk by chunk, by the values it holds.

    A dictionary page stores each text a column holds once, however many rows repeat it, and reading the column
    copies the text into every row (unless the file keeps the column as a dictionary: a pandas category). Such
    columns are measured from the file, a million rows at a time, by their codes into the dictionary, never by the
    repeated text: one 1 MiB value on each of 2,000 rows is a 1 MiB file and 2 GiB read. The measuring stops
    once the total passes ``stop_over`` (the count is then at least that). A text column stored with
    DELTA_BYTE_ARRAY, whose values each repeat the one before at no cost on disk, cannot be measured so and is
    refused (pipekit, pandas and Polars never write it)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def unreadable(e: Exception) -> ExportError:
        return ExportError(f"{str(path)!r} is not a readable Parquet file ({type(e).__name__}: {str(e)[:200]})")

    try:
        with pq.ParquetFile(path) as f:
            md, schema = f.metadata, f.schema_arrow
    except (OSError, pa.ArrowException, ValueError) as e:
        raise unreadable(e) from None
    rows, groups = int(md.num_rows), [md.row_group(i) for i in range(md.num_row_groups)]
    pages = sum(int(rg.total_byte_size) for rg in groups)
    if len(schema) == md.num_columns and not any(pa.types.is_nested(t) for t in schema.types):
        width, text = 0.0, False  # one leaf column per field, of its field's type
        for t in schema.types:
            try:
                width += t.bit_width / 8
            except ValueError:  # text, bytes: a view per value (as Polars holds it) and the text, in the pages
                width, text = width + 16, True
            text = text or pa.types.is_dictionary(t)
        total = int(rows * width) + (pages if text else 0)
    else:
        total = 0
        for rg in groups:
            for j in range(rg.num_columns):
                c = rg.column(j)
                values = max(int(c.num_values), int(rg.num_rows))
                total += max(int(c.total_uncompressed_size), values * _PARQUET_WIDTH.get(c.physical_type, 16))
    # text and bytes stored through a dictionary: measured by what reading them copies into each row
    kept = {f.name for f in schema if pa.types.is_dictionary(f.type)}  # read back as a dictionary, not copied
    coded: dict[str, None] = {}
    for rg in groups:
        for j in range(rg.num_columns):
            c = rg.column(j)
            if c.physical_type != "BYTE_ARRAY" or c.path_in_schema in kept:
                continue
            if "DELTA_BYTE_ARRAY" in c.encodings:
                raise ExportError(f"{str(path)!r}: column {c.path_in_schema!r} is stored with DELTA_BYTE_ARRAY "
                                  "encoding, whose values can each repeat the one before at no cost on disk, so "
                                  "the memory reading it takes cannot be known before reading it; pipekit writes no "
                                  "such file. If you trust the file, read it with pd.read_parquet or pl.read_parquet")
            if c.has_dictionary_page or {"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & set(c.encodings):
                coded[c.path_in_schema] = None

    def copied(a: pa.Array) -> int:  # the bytes of the text a column read in full holds, from its codes
        t = a.type
        if pa.types.is_dictionary(t):
            return int(pc.sum(pc.take(pc.binary_length(a.dictionary), a.indices)).as_py() or 0)
        if pa.types.is_struct(t):
            return sum(copied(a.field(i)) for i in range(t.num_fields))
        if isinstance(a, (pa.ListArray, pa.LargeListArray, pa.FixedSizeListArray)):  # a map is a list too
            return copied(a.values)
        return 0

    if coded and (stop_over is None or total <= stop_over):
        try:
            with pq.ParquetFile(path, read_dictionary=list(coded)) as f:
                for batch in f.iter_batches(batch_size=1 << 20, columns=list(coded)):
                    total += sum(copied(a) for a in batch.columns)
                    if stop_over is not None and total > stop_over:
                        break
        except (OSError, pa.ArrowException, ValueError) as e:
            raise unreadable(e) from None
    return rows, total


def check_parquet_size(path: str | os.PathLike, max_bytes: int | None = None) -> None:
    """Refuse a Parquet file whose table (:func:`parquet_table_bytes`) would take more than ``max_bytes`` of memory;
    with None, more than ``pipekit.core.archive.MAX_TOTAL_BYTES`` or, beyond ``RATIO_FLOOR``, more than ``MAX_RATIO``
    times the file's own size (the caps on what pipekit reads from an archive): what ``Tabular.save`` and
    ``process_to_parquet`` write expands 4 to 20 times, a crafted file of constant columns a thousand times. An
    :class:`ExportError` names the file, its sizes and ``max_bytes``, which reads a larger table one trusts."""
    from pipekit.core.archive import MAX_RATIO, MAX_TOTAL_BYTES, RATIO_FLOOR

    size = os.path.getsize(path)
    limit = max_bytes if max_bytes is not None else min(MAX_TOTAL_BYTES, max(RATIO_FLOOR, MAX_RATIO * size))
    rows, need = parquet_table_bytes(path, stop_over=limit)  # stops measuring once past the limit
    if max_bytes is not None:
        over, cap = need > max_bytes, f"max_bytes={max_bytes:,}"
    elif need > MAX_TOTAL_BYTES:
        over, cap = True, f"the {MAX_TOTAL_BYTES:,} bytes pipekit reads from one file (MAX_TOTAL_BYTES)"
    else:
        over = need > RATIO_FLOOR and need > MAX_RATIO * size
        cap = f"{MAX_RATIO} times the file's size (MAX_RATIO; tables pipekit writes expand 3 to 20 times)"
    if over:
        raise ExportError(f"{str(path)!r}: its {rows:,} rows would take {need:,} bytes or more in memory, read from a "
                          f"file of {size:,} bytes; that is over {cap}, so it was not read. If you trust the file, "
                          f"read it with Tabular.load(path, max_bytes=...) (bytes; {need:,} or more)")


def _check_processed_frame(frame: pl.DataFrame, processor: TabularProcessor, where: str) -> None:
    """Refuse a processed table read from a file (``Tabular.load``) that its fitted processing did not make, naming the
    file and the column: the split columns of their types (``is_valid`` true or false, each split's positions
    ``0..n-1`` once), every column the processing makes, each coded column holding codes of its classes only and the
    continuous ones numbers. The split columns, the codes and the target hold no null, and a continuous column a
    FillMissing fills, or a regression target, finite numbers only: processing never leaves them otherwise (a
    continuous column no FillMissing fills keeps the data's missing values, which a gradient-boosted model reads). A code past its
    classes, or a null one, failed inside the model at fit, a text or null ``is_valid`` inside NumPy, and a NaN
    input stopped training as if the learning rate were too high."""
    schema = frame.schema  # read once: a wide frame rebuilds it on every access

    def bad(column: str, problem: str) -> ExportError:
        return ExportError(f"{where!r}: column {column!r} {problem}; the file is damaged or was not written by "
                           "Tabular.save or process_to_parquet")

    def refuse_missing(column: str, finite: bool = False) -> None:
        missing = pl.col(column).is_null()
        if finite and schema[column].is_float():
            missing = missing | ~pl.col(column).is_finite()
        n, row = frame.select(missing.sum().alias("n"), missing.arg_true().first().alias("row")).row(0)
        if n:
            what = "missing or non-finite value(s) (null, NaN or inf)" if finite else "missing value(s) (null)"
            raise bad(column, f"holds {n} {what}, first at row {row}, where processing leaves none")

    if schema[VALID_COLUMN] != pl.Boolean:
        raise bad(VALID_COLUMN, f"must be true or false (Boolean), is {schema[VALID_COLUMN]}")
    refuse_missing(VALID_COLUMN)
    if _SPLIT_POSITION in schema:
        if not schema[_SPLIT_POSITION].is_integer():
            raise bad(_SPLIT_POSITION, f"must hold each row's position in its split (integers), is "
                                       f"{schema[_SPLIT_POSITION]}")
        refuse_missing(_SPLIT_POSITION)
        position, valid = frame[_SPLIT_POSITION].to_numpy(), frame[VALID_COLUMN].to_numpy()
        for name, rows in (("training", position[~valid & (position >= 0)]), ("validation", position[valid])):
            if rows.size and not np.array_equal(np.sort(rows), np.arange(rows.size)):
                raise bad(_SPLIT_POSITION, f"must number the {rows.size} {name} rows 0..{rows.size - 1}, each once")
    if _TRAIN_POSITIONS in schema or _VALID_POSITIONS in schema:
        for name, c in (("training", _TRAIN_POSITIONS), ("validation", _VALID_POSITIONS)):
            if c not in schema or _SPLIT_POSITION in schema:
                raise bad(c, "is missing, beside the other split's places" if c not in schema else
                          f"and {_SPLIT_POSITION!r} both record the split, where a file has one or the other")
            dtype = schema[c]
            if not (isinstance(dtype, pl.List) and dtype.inner.is_integer()):
                raise bad(c, f"must hold each row's places in the {name} rows (lists of integers), is {dtype}")
            refuse_missing(c)
            rows, places = _listed_places(frame[c])
            if places.size and not np.array_equal(np.sort(places), np.arange(places.size)):
                raise bad(c, f"must number the {places.size} {name} rows 0..{places.size - 1}, each once")
            if c == _VALID_POSITIONS and not np.array_equal(np.flatnonzero(frame[VALID_COLUMN].to_numpy()),
                                                            np.unique(rows)):
                raise bad(VALID_COLUMN, f"must be true exactly for the rows {c!r} lists")
    classes = processor.classes_ if isinstance(getattr(processor, "classes_", None), dict) else {}
    filled = {c for proc in getattr(processor, "procs", None) or [] if isinstance(proc, FillMissing) and proc.is_fitted
              for c in proc.columns_}
    y_names = list(processor.y_names or [])
    y_vocab = processor.y_vocab_ if getattr(processor, "y_kind_", None) == "category" else None
    for role, names in (("categorical", processor.cat_names_), ("continuous", processor.cont_names_),
                        ("target", y_names)):
        for c in names:
            if c not in schema:
                raise bad(c, f"is missing: the processing makes this {role} column (columns: {frame.columns[:12]})")
            dtype = schema[c]
            n = len(classes[c]) if role == "categorical" and c in classes else \
                len(y_vocab) if role == "target" and isinstance(y_vocab, list) else None
            if n is not None:
                if not dtype.is_integer():
                    raise bad(c, f"must hold the {role} codes (integers), is {dtype}")
                lo: Any = frame[c].min()
                hi: Any = frame[c].max()
                if lo is not None and (lo < 0 or hi >= n):
                    raise bad(c, f"holds codes from {lo} to {hi}, but its {n} classes take codes 0 to {n - 1}")
                refuse_missing(c)  # a value missing from its column is coded #na#, a missing class is refused
            elif role == "continuous" or (role == "target" and getattr(processor, "y_kind_", None) == "regression"):
                if not (dtype.is_numeric() or dtype == pl.Boolean):
                    raise bad(c, f"must hold numbers, is {dtype}")
                if role == "target" or c in filled:
                    refuse_missing(c, finite=True)


#: the columns a processed table's file adds to its rows: whether each is a validation row (``process_to_parquet``
#: writes it too), each row's place in its split (-1: in neither) and a pandas source's row labels. A split that
#: lists a row several times (oversampled) or in both splits is written instead as each row's places in the training
#: rows and in the validation rows (lists of integers, empty where it is not listed).
VALID_COLUMN, _SPLIT_POSITION, _PANDAS_INDEX = "is_valid", "__pipekit_split_position__", "__pipekit_pandas_index__"
_TRAIN_POSITIONS, _VALID_POSITIONS = "__pipekit_train_positions__", "__pipekit_valid_positions__"
_SAVED_SPLIT_COLUMNS = (VALID_COLUMN, _SPLIT_POSITION, _TRAIN_POSITIONS, _VALID_POSITIONS, _PANDAS_INDEX)


def _positions_column(name: str, idxs: np.ndarray, n_rows: int) -> pl.Series:
    """A column of ``n_rows`` lists: row ``i``'s places in the split ``idxs`` lists (``idxs[p] == i``), in order.

    >>> _positions_column("p", np.array([0, 2, 2, 1, 2]), 4).to_list()
    [[0], [3], [1, 2, 4], []]
    """
    import pyarrow as pa

    idxs = np.asarray(idxs, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(idxs, minlength=n_rows))]).astype(np.int64)
    places = np.argsort(idxs, kind="stable").astype(np.int64)  # by row, each row's places in their order
    return pl.Series(name, pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(places)), dtype=pl.List(pl.Int64))


def _listed_places(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, places)`` of a :func:`_positions_column`: each listing's row and its place in the split."""
    counts = column.list.len().fill_null(0).to_numpy()
    places = np.asarray(column.to_arrow().flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.repeat(np.arange(len(column)), counts), places


def _listed_rows(column: pl.Series) -> np.ndarray:
    """The split a :func:`_positions_column` records, its rows in their order (repeats kept).

    >>> _listed_rows(_positions_column("p", np.array([3, 0, 3, 1, 3]), 4)).tolist()
    [3, 0, 3, 1, 3]
    """
    rows, places = _listed_places(column)
    idxs = np.empty(len(places), dtype=np.int64)
    idxs[places] = rows
    return idxs


def pandas_class_targets(source: Any, y_names: Sequence[str]) -> dict[str, list[Any]]:
    """The target columns of a pandas ``source`` that are pandas categoricals, each with its declared categories
    in their order: classes whatever their values (``pd.Categorical(df['education-num'] // 4)`` reaches Polars as
    plain integers, which would otherwise be a regression), as fastai's ``TabularPandas`` classifies them."""
    if not y_names or not is_pandas(source, "DataFrame"):
        return {}
    out = {}
    for c in y_names:
        col = source[c] if c in source.columns else None
        if col is not None and is_pandas(col, "Series") and str(col.dtype) == "category":
            out[c] = list(col.cat.categories)
    return out


def pandas_index_of(source: Any, n_rows: int) -> Any:
    """The row labels of a pandas DataFrame of ``n_rows`` rows (None for any other source): a table given as
    pandas is given back as pandas, labelled as its rows."""
    return source.index if is_pandas(source, "DataFrame") and len(source.index) == n_rows else None


def new_rows(processor: TabularProcessor, source: Any) -> TabularSplit:
    """New rows (``source``: a table, a path, a dict row, a pandas Series or a list of dict rows) processed by the
    fitted ``processor`` as one split, ``new``; its ``.xs`` is pandas for a pandas DataFrame, labelled as its rows."""
    check_fork_safe("new_rows")
    frame = process_new(processor, source)
    return TabularSplit(frame, processor, None, "new", pandas_index_of(source, len(frame)))


def missing_split_column(who: str, col: str, columns: Sequence[str]) -> str:
    """The message for a column a splitter reads that the table lacks: the close names it may have meant and the
    table's columns (:func:`~pipekit.core.validate.unknown_names`); when date parts of it are there (``add_datepart`` drops the column it reads by default), saying so.

    >>> missing_split_column("TimeSplitter", "Date", ["Store", "Year", "Elapsed"])[-82:]
    "parts (Year, Elapsed, ...); add_datepart(df, 'Date', drop=False) keeps the column."
    """
    msg = f"{who}: column {col!r} is not in the table; {unknown_names([col], list(columns))}"
    pre = re.sub("[Dd]ate$", "", col)
    parts = [c for c in (f"{pre}Year", f"{pre}Elapsed") if c in columns]
    if parts:
        msg += (f". It was replaced by its date parts ({', '.join(parts)}, ...); add_datepart(df, {col!r}, "
                "drop=False) keeps the column.")
    return msg


def processing_path(p: Path) -> Path:
    """Where ``Tabular.save`` writes the fitted processing of the table it writes to ``p``: ``to.pipekit`` beside
    ``to.parquet`` (or ``.pq``), and for another name its whole name and ``.pipekit`` (``save_pickle``'s
    ``to.pkl`` beside ``to.pkl.pipekit``), so two tables saved under one stem keep a processing each."""
    return p.with_suffix(".pipekit") if p.suffix.lower() in (".parquet", ".pq") else p.with_name(p.name + ".pipekit")


class Tabular(_FittedNames):
    """A table processed by procs fitted on its training rows, split into ``.train`` and ``.valid``.

    Args:
        source: a Polars/pandas DataFrame, pyarrow Table, Polars LazyFrame, or a CSV/Parquet/Arrow path.
        procs: classes or instances of ``Categorify``, ``FillMissing``, ``Normalize`` (run in that
            dependency order: fill, then categorify, then normalise); by default all three (fastai's
            ``TabularPandas`` runs none unless given: ``procs=[]`` here).
        cat_names, cont_names: categorical / continuous input columns.
        y_names: target column(s).
        y_block: None (infer: text, a Polars ``Categorical``/``Enum``, bool or a pandas categorical column (of
            numbers too, as fastai classifies ``pd.Categorical(df['education-num'] // 4)``; its classes in the
            order of its categories) -> "category", other numbers -> "regression"), "category", "regression", a
            ``CategoryBlock`` or a ``RegressionBlock``.
        splits: None (every row trains, no validation set), a splitter as DataBlock takes them
            (``RandomSplitter(0.2, seed=42)``, ``ColSplitter``, ``TimeSplitter``, ... or a function
            ``items -> (train_idx, valid_idx)``), or a pair of index arrays; a training row listed several times
            (a class oversampled, ``(train + rare + rare, valid)``) trains that many times and counts that many
            times in what the procs learn (means, standard deviations, medians), as in fastai. From a file only
            the model's columns and those the splitter reads (``Splitter.columns()``) are loaded. Split by a
            ``TimeSplitter``, the Tabular records the column it read (``time_col``) and its training rows' times
            (``train_times``, text read as dates; not written to files), which ``fit_ensemble`` bags on in
            time order; otherwise both are None.
        skipinitialspace: drop the spaces after each comma from the text values of a CSV file, as
            ``TabularDataLoaders.from_csv`` does (adult.csv writes ``", Private"``): the source's, and those of the
            new files ``new`` (and the loaders' ``test_dl``) read, which the processor records.
        inplace, reduce_memory, do_setup: fastai's ``TabularPandas`` arguments, taken as they mean there. pipekit
            never changes ``df`` (the processed rows are ``.items``), with either ``inplace`` (fastai 2.8 leaves
            ``df`` unchanged too when given ``splits``, or under pandas' copy-on-write). ``reduce_memory`` is what
            pipekit always does: the processed table keeps only the model's columns, category codes in the
            smallest integer type and numbers as Float32 (but for columns with values float32 cannot hold as whole units, kept
            as Float64 until ``Normalize`` scales them; ``df`` itself is not shrunk, as in fastai). The procs are
            fitted as the table is made: ``do_setup=False`` is refused (``.new(df)`` processes new rows with them).

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"a": ["x", "y", "x", "y"], "b": [1.0, 2.0, None, 4.0], "y": [0.5, 1.0, 1.5, 2.0]})
        >>> tab = Tabular(df, cat_names=["a"], cont_names=["b"], y_names="y", splits=([0, 1, 2], [3]))
        >>> tab.cat_names, tab.train.cats["a"].to_list()
        (['a', 'b_na'], [1, 2, 1])
    """

    time_col: str | None
    train_times: pl.Series | None

    def __init__(self, source: Any, procs: Procs = DEFAULT_PROCS,
                 cat_names: str | Sequence[str] | None = None, cont_names: str | Sequence[str] | None = None,
                 y_names: str | Sequence[str] | None = None, y_block: Any = None, splits: Splits = None,
                 skipinitialspace: bool = False, *, inplace: bool = False, reduce_memory: bool = True,
                 do_setup: bool = True) -> None:
        check("Tabular", splits=(splits, Is(lambda s: s is None or callable(s) or isinstance(s, (tuple, list))
                                            and len(s) == 2, "None, a splitter or a pair of index arrays")),
              **{name: (v, BOOL) for name, v in
                 (("inplace", inplace), ("reduce_memory", reduce_memory), ("do_setup", do_setup))})
        if not do_setup:
            raise ParameterError("Tabular: do_setup=False (a table whose procs are not fitted) is not made by pipekit, "
                                 "which fits the procs on the training rows as it makes the table; leave do_setup "
                                 "out, and process new rows with the fitted procs by to.new(df)")
        p = self.processor = TabularProcessor(unshared_procs(procs), cat_names, cont_names, y_names, y_block,
                                              skipinitialspace)
        reads = [] if splits is None or isinstance(splits, (tuple, list)) else \
            splits.columns() if isinstance(splits, Splitter) else None  # a function may read any column
        wanted = None if reads is None else list(dict.fromkeys(p.cat_names + p.cont_names + p.y_names + reads))
        frame: pl.DataFrame | pl.LazyFrame | None = None
        # a CSV read with skipinitialspace: its header first, then only the columns read (a splitting function may
        # read any column: the whole file)
        with csv_schemas_read_once():  # the file's types are inferred once, for its header and its columns
            header = csv_header(source, skipinitialspace=True) if skipinitialspace and is_csv_file(source) \
                and wanted is not None else None
            if header is None and skipinitialspace and is_csv_file(source):
                frame = read_frame(source, skipinitialspace=True)
            elif header is None:  # a table in memory or another file: its text values as a CSV file read so gives them
                table = source
                if wanted is not None and is_pandas(source, "DataFrame") and all(c in source.columns for c in wanted):
                    table = source[wanted]  # only the columns read become Polars
                frame = table if isinstance(table, pl.DataFrame) else scan_table(table, p.cat_names, p.y_names,
                                                                                 p.cont_names)
                if skipinitialspace:
                    frame = strip_initial_spaces(frame)
            have = list(header) if header is not None else frame.collect_schema().names() \
                if isinstance(frame, pl.LazyFrame) else list(frame.columns) if frame is not None else []
            # a pandas source's columns as it has them (only the model's are made Polars): FillMissing's flags checked
            source_columns = {str(c) for c in (source.columns if is_pandas(source, "DataFrame") else have)}
            with naming_file(source):  # a file's columns: the file is named
                p.check_columns(have, where="Tabular")
                for c in [] if reads is None else [c for c in reads if c not in have]:
                    raise DataError(missing_split_column(type(splits).__name__, c, have))
            if frame is None:  # the names are checked: read them, and only them
                frame = read_csv_columns(source, wanted or [], p.cat_names, p.y_names, p.cont_names, True,
                                         header=header)
            picked = frame if wanted is None else frame.select(wanted)  # never a copy
            items = collect_table(picked, source, p.cont_names) if isinstance(picked, pl.LazyFrame) else picked
        if len(items) == 0:  # nothing to fit the procs on: said here, not as a proc's or a splitter's failure
            raise DataError(f"{source} has a header but no rows; there is nothing to process: check the file"
                            if isinstance(source, (str, os.PathLike)) else
                            "Tabular: the table has no rows; there is nothing to process")
        # a TimeSplitter's times are read once (text dates parsed once), for the split and for train_times
        by_time = splits if isinstance(splits, TimeSplitter) else None
        times = None if by_time is None else by_time.times(items)
        with _plain_pages():  # the split's index arrays are the size of the table
            train_idx, valid_idx = split_rows(splits if by_time is None or times is None else
                                              lambda _: by_time.split_times(times), items)
            mask = np.zeros(len(items), dtype=bool)
            mask[train_idx] = True
        # a training row listed several times (a class oversampled by repeating its rows) counts that many times
        # in what the procs learn, as it does in training: the processor is then given the positions as listed
        repeated = len(train_idx) != int(np.count_nonzero(mask))
        with naming_file(source):
            processed = p.fit_transform(items, mask, train_rows=train_idx if repeated else None,
                                        class_targets=pandas_class_targets(source, p.y_names))
            for proc in p.procs:  # a flag named as a column of the source that is no model input (it was not read)
                for c in proc.flag_clashes(source_columns) if isinstance(proc, FillMissing) else []:
                    warn(f"FillMissing: continuous column {c!r} has missing values in the training rows, so it gets a "
                         f"flag column {c + '_na'!r}, and the table has a column {c + '_na'!r} that is no model input: "
                         f"the processed table's {c + '_na'!r} (to.items, show_batch) is the flag, not yours; rename "
                         f"your column to tell them apart, or pass FillMissing(add_col=False)")
            self._attach(processed, train_idx, valid_idx, pandas_index_of(source, len(processed)))
        if by_time is not None and times is not None:  # the column is no model input, so the processed frame drops it
            self.time_col, self.train_times = by_time.col, times.gather(train_idx)
        if len(valid_idx):  # what the validation rows hold that training did not teach, said as the split is made
            raw, out = take_rows(items, valid_idx), take_rows(self.frame, valid_idx)
            for proc in p.procs:
                proc.check_valid(raw, out)
            p._check_new_missing(raw, where="in the validation rows")

    def _attach(self, frame: pl.DataFrame, train_idx: np.ndarray, valid_idx: np.ndarray,
                pandas_index: Any = None) -> None:
        self.frame = frame
        self.train_idx, self.valid_idx = train_idx, valid_idx
        self.time_col, self.train_times = None, None  # a TimeSplitter's split sets them (see splits)
        self.train = TabularSplit(self.frame, self.processor, train_idx, "train")
        self.valid = TabularSplit(self.frame, self.processor, valid_idx, "valid")
        self.label_rows(pandas_index)

    def label_rows(self, pandas_index: Any) -> None:
        """Give the table's rows the labels of the pandas frame they came from (None: no labels): ``.xs``, ``.y``
        and ``.ys`` of the table and of its splits are then pandas, labelled so (see :class:`TabularSplit`).
        ``Tabular(df)`` of a pandas ``df`` labels its rows with ``df.index``, and so does
        ``TabularDataLoaders.from_df(df)``."""
        if pandas_index is not None and len(pandas_index) != len(self.frame):
            raise DataError(f"{len(pandas_index)} row labels for a table of {len(self.frame)} rows")
        self.pandas_index = self.train.pandas_index = self.valid.pandas_index = pandas_index

    @property
    def xs(self) -> Any:
        """Every row's model inputs, in the table's order (fastai's ``to.xs``); ``.train.xs`` and ``.valid.xs``
        are the splits'.

        >>> import polars as pl
        >>> tab = Tabular(pl.DataFrame({"a": ["x", "y", "x"], "t": [1.0, 2.0, 3.0]}), cat_names=["a"], y_names="t",
        ...               splits=([0, 1], [2]))
        >>> tab.xs["a"].to_list(), tab.ys["t"].to_list(), tab.y.to_list()
        ([1, 2, 1], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        """
        return self._rows.xs

    @property
    def ys(self) -> Any:
        """Every row's encoded targets, in the table's order (fastai's ``to.ys``; see ``TabularSplit.ys``)."""
        return self._rows.ys

    @property
    def y(self) -> Any:
        """Every row's one target as a 1-D Series, in the table's order (see ``TabularSplit.y``)."""
        return self._rows.y

    @property
    def items(self) -> Any:
        """Every processed row in the table's order (fastai's ``to.items``): categorical codes, filled and normalised
        numbers, ``_na`` flags and the encoded target, a pandas frame labelled as the source's rows for a pandas
        source (as ``.xs``), a Polars one otherwise; the model's columns only (the source's others are in the
        source). ``.train.items`` and ``.valid.items`` are the splits'."""
        return self._rows.items

    def show(self, max_n: int = 10) -> None:
        """Show the first ``max_n`` rows as a person reads them (fastai's ``to.show(3)``): the input and target
        columns, categories as their values (a missing one as ``#na#``), continuous columns in the data's own units
        (``Normalize`` undone; a filled value shows what it was filled with). In a notebook a table, in a script
        printed (and drawn where plots go, as ``show_batch`` draws a table's batch).

        >>> import polars as pl
        >>> tab = Tabular(pl.DataFrame({"a": ["x", None, "x"], "t": [10.0, 20.0, 30.0], "y": ["no", "yes", "no"]}),
        ...               cat_names=["a"], cont_names=["t"], y_names="y", splits=([0, 1], [2]))
        >>> [round(v, 4) for v in tab.items["t"]], tab.items["a"].to_list(), tab.items["y"].to_list()
        ([-1.0, 1.0, 3.0], [1, 0, 1], [0, 1, 0])
        >>> tab.show(2)  # doctest: +ELLIPSIS
        ┌──────┬──────┬─────┐
        │ a    ┆ t    ┆ y   │
        ╞══════╪══════╪═════╡
        │ x    ┆ 10.0 ┆ no  │
        │ #na# ┆ 20.0 ┆ yes │
        └──────┴──────┴─────┘
        """
        show_rows(self.processor, self.frame, max_n, "Tabular.show")

    @property
    def _rows(self) -> TabularSplit:
        return TabularSplit(self.frame, self.processor, None, "tab", self.pandas_index)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the processed table to a Parquet file and its fitted processing beside it (``<path>.pipekit``):
        the book's ``save_pickle(path/'to.pkl', to)`` without pickle, whose loading can run code, so the files are
        safe to share. ``Tabular.load(path)`` gives back the same processed rows, each split's rows in the same
        order, the same processing, and for a pandas source pandas ``xs`` labelled as before. (A TimeSplitter's
        ``train_times`` are not written.)

        >>> import tempfile, polars as pl
        >>> tab = Tabular(pl.DataFrame({"a": ["x", "y", "y", "x"], "t": [1.0, 2.0, 3.0, 4.0]}), cat_names=["a"],
        ...               y_names="t", splits=([2, 0, 1], [3]))
        >>> back = Tabular.load(tab.save(Path(tempfile.mkdtemp()) / "to.parquet"))
        >>> back.train.xs["a"].to_list(), back.train.y.to_list(), back.classes["a"]
        ([2, 1, 2], [3.0, 1.0, 2.0], ['#na#', 'x', 'y'])

        A split listing a row several times (oversampled) comes back with its repeats:

        >>> tab = Tabular(pl.DataFrame({"a": ["x", "y", "x"], "t": [1.0, 2.0, 3.0]}), procs=[], cat_names=["a"],
        ...               y_names="t", splits=([0, 1, 1, 1], [2]))
        >>> Tabular.load(tab.save(Path(tempfile.mkdtemp()) / "to.parquet")).train.y.to_list()
        [1.0, 2.0, 2.0, 2.0]
        """
        p = Path(path)
        check("Tabular.save", path=(p, Is(lambda q: q.suffix.lower() in (".parquet", ".pq"),
                                           "a path ending in .parquet")))
        return self._write(p)

    def _write(self, p: Path) -> Path:
        """``save`` to ``p`` whatever its suffix (``save_pickle(path/'to.pkl', to)`` writes the same files). The
        processing is written first, and the table's Parquet file records the SHA-256 of its bytes (under
        ``save_pickle``'s key, of kind ``pipekit.Tabular``): ``Tabular.load`` then refuses a ``.pipekit`` written by
        another save of the same name, or one left from an earlier run, instead of decoding the rows with the wrong
        classes and statistics. The processing's file is :func:`processing_path`'s."""
        import json

        from pipekit.core.archive import atomic_output, save
        from pipekit.data.external import file_digests
        from pipekit.tabular.saving import SAVED_KEY, TABLE_KIND

        if p.suffix.lower() == ".pipekit":
            raise ParameterError(f"save_pickle: {str(p)!r} ends in .pipekit, the suffix of pipekit's archives (the "
                                 "fitted processing written beside a table's file is one), which pipekit.load would "
                                 f"take it for; name the table's file otherwise ({p.with_suffix('.pkl').name})")
        clash = [c for c in _SAVED_SPLIT_COLUMNS if c in self.frame.columns]
        if clash:
            raise DataError(f"Tabular.save: the table has a column named {clash[0]!r}, which the file uses to record "
                            "the split; rename that column before building the Tabular.")
        n = len(self.frame)
        valid = np.zeros(n, dtype=bool)
        valid[self.valid_idx] = True
        extra = [pl.Series(VALID_COLUMN, valid)]
        listed = np.bincount(self.train_idx, minlength=n) + np.bincount(self.valid_idx, minlength=n)
        if listed.size and listed.max() > 1:  # a row listed several times (oversampled) or in both splits
            extra += [_positions_column(_TRAIN_POSITIONS, self.train_idx, n),
                      _positions_column(_VALID_POSITIONS, self.valid_idx, n)]
        else:
            position = np.full(n, -1, dtype=np.int64)  # each row's place in its split; -1: in neither
            position[self.train_idx] = np.arange(len(self.train_idx))
            position[self.valid_idx] = np.arange(len(self.valid_idx))
            extra.append(pl.Series(_SPLIT_POSITION, position))
        if self.pandas_index is not None:
            try:
                labels = pl.Series(_PANDAS_INDEX, self.pandas_index.to_numpy())
                if labels.dtype == pl.Object:  # a MultiIndex's tuples, labels of mixed types
                    raise TypeError(f"a {type(self.pandas_index).__name__}'s labels are Python objects")
            except Exception as e:
                raise DataError(f"Tabular.save: the pandas row labels cannot be written ({type(e).__name__}: {e}); "
                                "label the rows by position (df.reset_index(drop=True), or df.reset_index() to keep "
                                "the labels as columns) before building the Tabular.") from None
            extra.append(labels)
        p.parent.mkdir(parents=True, exist_ok=True)
        digest = file_digests(save(self.processor, processing_path(p)))[2]
        record = {"kind": TABLE_KIND, "processing_sha256": digest}
        with atomic_output(p) as f:  # a link at ``p`` is replaced, never written through
            self.frame.with_columns(extra).write_parquet(f, metadata={SAVED_KEY.decode(): json.dumps(record)})
        return p

    @classmethod
    def from_processed(cls, path: str | os.PathLike,
                       processor: TabularProcessor | str | os.PathLike | None = None, *,
                       max_bytes: int | None = None) -> Tabular:
        """Load a table written by ``Tabular.save`` or ``process_to_parquet`` (already processed; split by its
        ``is_valid`` column). ``Tabular.load`` is the same.

        The fitted processing is loaded from ``<path>.pipekit`` (or the file ``processor`` names) unless
        ``processor`` is one; a table ``Tabular.save`` or ``process_to_parquet`` wrote records the SHA-256 of the
        processing written with it, and a ``.pipekit`` beside it with other bytes (written by another save of the same
        name, or an earlier run) is refused. The Parquet file's
        own description of its columns and rows is read first and a table larger in memory than ``max_bytes`` is
        refused before it is read; by default at most
        ``pipekit.core.archive.MAX_TOTAL_BYTES`` (8 GiB) and ``MAX_RATIO`` (100) times the file's size (see
        :func:`check_parquet_size`): a file of a few MB cannot expand to gigabytes. Pass a larger ``max_bytes`` to
        read a larger table you trust.
        """
        import json

        import pyarrow.parquet as pq

        from pipekit.data.external import file_digests
        from pipekit.tabular.saving import SAVED_KEY, TABLE_KIND

        p = Path(path)
        if max_bytes is not None:
            check_positive_int("Tabular.load", "max_bytes", max_bytes)
        check_parquet_size(p, max_bytes)
        record: Any = None  # Tabular.save's record: the SHA-256 of the processing written with the table
        with contextlib.suppress(ValueError, TypeError, AttributeError, RecursionError):  # none, or not JSON: no digest
            record = json.loads((pq.read_metadata(p).metadata or {}).get(SAVED_KEY, b"null"))
        digest = record.get("processing_sha256") if isinstance(record, dict) and record.get("kind") == TABLE_KIND else None
        if not isinstance(processor, TabularProcessor):
            where, old = Path(processor) if processor is not None else processing_path(p), p.with_suffix(".state.json")
            if processor is None and digest is not None:
                streamed = record.get("by") == "process_to_parquet"  # its processing may be elsewhere (processor_path)
                writer = "process_to_parquet" if streamed else "Tabular.save or save_pickle"
                if not where.is_file() and not old.exists():  # a pipekit 0.1 state file is refused, by name, below
                    raise ExportError(f"{str(p)!r} is a table written by {writer}, and its fitted processing "
                                      f"{where.name}, written with it, is not beside it; "
                                      + ("give the processing_path it was written to: Tabular.load(path, "
                                         "processor=...)" if streamed else f"copy {where.name} along with it (or "
                                                                           "give it: Tabular.load(path, processor=...))"))
                if where.is_file() and file_digests(where)[2] != digest:
                    raise ExportError(
                        f"{str(p)!r}: the fitted processing beside it, {str(where)!r}, is not the one written with "
                        f"this table (another {writer} to the same name, or an earlier run, wrote it), so its "
                        "classes and statistics would decode the rows wrongly; "
                        + ("give the processing written with it (process_to_parquet's processor_path): "
                           "Tabular.load(path, processor=...), or run process_to_parquet again" if streamed else
                           "save the table again, or give its processing: Tabular.load(path, processor=...)"))
            processor = load_processor(old if processor is None and not where.exists() and old.exists() else where)
        frame = pl.read_parquet(p, glob=False)
        if VALID_COLUMN not in frame.columns:
            raise DataError(f"Tabular.from_processed: {str(p)!r} has no 'is_valid' column; write it with Tabular.save "
                            "or process_to_parquet.")
        _check_processed_frame(frame, processor, str(p))
        valid = frame[VALID_COLUMN].to_numpy()
        train_idx, valid_idx = np.flatnonzero(~valid), np.flatnonzero(valid)
        if _TRAIN_POSITIONS in frame.columns:  # a split listing rows several times: each listing's place
            train_idx, valid_idx = _listed_rows(frame[_TRAIN_POSITIONS]), _listed_rows(frame[_VALID_POSITIONS])
        elif _SPLIT_POSITION in frame.columns:  # written by Tabular.save: each split's rows in their order
            position = frame[_SPLIT_POSITION].to_numpy()
            train_idx = train_idx[position[train_idx] >= 0]
            train_idx = train_idx[np.argsort(position[train_idx], kind="stable")]
            valid_idx = valid_idx[np.argsort(position[valid_idx], kind="stable")]
        index = None
        if _PANDAS_INDEX in frame.columns:
            import pandas as pd

            index = pd.Index(frame[_PANDAS_INDEX].to_pandas()).rename(None)
        obj = cls.__new__(cls)
        obj.processor = processor
        obj._attach(frame.drop([c for c in _SAVED_SPLIT_COLUMNS if c in frame.columns]), train_idx, valid_idx, index)
        return obj

    load = from_processed

    # Names and fitted vocabularies, as the models and ensembles read them.
    @property
    def y_kind(self) -> str:
        """What the target is: ``'category'`` (a classification), ``'regression'``, or ``'none'`` without a target."""
        return self.processor.y_kind_

    @property
    def c(self) -> int:
        """Number of model outputs: classes for classification, target columns for regression."""
        return self.processor.c_

    def new(self, source: Any) -> TabularSplit:
        """Apply the fitted procs to new rows (a table, a path, a dict row, a pandas Series or a list of dict
        rows; targets are encoded when present and usable: a target with blanks or classes never seen in
        training is left out, with a warning); warns about filled values."""
        return new_rows(self.processor, source)

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Every row (train and valid) as ``(xs, y)``; the subsets have their own ``to_numpy()``."""
        return TabularSplit(self.frame, self.processor, None, "all").to_numpy()

    def dataloaders(self, bs: int = 64, val_bs: int | None = None, shuffle: bool = True, seed: int | None = None,
                    device: Any = None, num_workers: int | None = None, path: str | os.PathLike = ".",
                    batch_size: int | None = None, shuffle_train: bool | None = None) -> DataLoaders:
        """DataLoaders whose batches are ``(cats, conts, y)`` gathered from materialised tensors. ``path``: where a
        learner built on them saves and exports (``dls.path``; the course's ``to.dataloaders(path='.')``).
        ``batch_size`` is ``bs`` under PyTorch's and fastai's name, ``shuffle_train`` ``shuffle`` under fastai's
        older name."""
        from pipekit.core.validate import bs_or_batch_size, shuffle_or_shuffle_train
        from pipekit.tabular.loaders import tabular_dataloaders

        bs = bs_or_batch_size("Tabular.dataloaders", bs, batch_size)
        shuffle = shuffle_or_shuffle_train("Tabular.dataloaders", shuffle, shuffle_train)

        check("Tabular.dataloaders", path=(path, Is(lambda p: isinstance(p, (str, os.PathLike)), "a folder (str or "
                                                                                                  "Path)")))
        dls = tabular_dataloaders(self, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                  num_workers=num_workers)
        dls.path = Path(path)
        return dls

    def __repr__(self) -> str:
        return (f"Tabular({len(self.train)} train / {len(self.valid)} valid rows, cat_names={self.cat_names}, "
                f"cont_names={self.cont_names}, y_names={self.y_names}, y_kind={self.y_kind!r})")


#: the book's name for a processed, split table (``TabularPandas(df, procs, cat, cont, y_names=dep_var,
#: splits=splits)`` runs as written): the same class, which takes a pandas or a Polars frame
TabularPandas = Tabular
