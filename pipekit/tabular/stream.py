"""Out-of-core tabular processing: fit procs with streaming aggregations, write the result to Parquet.

The source (CSV/Parquet/Arrow path or LazyFrame) is scanned lazily; each proc's statistics are one
streaming query over the training rows, and the processed table (small integer codes, Float32
values, an ``is_valid`` column) is written with ``sink_parquet`` without ever holding the raw table
in memory. The fitted processing is saved beside it as a pipekit file (``<out>.pipekit``, read back
by ``pipekit.load``); ``Tabular.from_processed`` then loads that compact table for training. Both files are
written in a staging folder beside the output and renamed into place once complete: a run that fails (a full disk,
a bad row, Ctrl-C) leaves the previous output as it was and no partial file.

Example:
    >>> import polars as pl
    >>> from pipekit.datasets import path
    >>> proc = process_to_parquet(path("adult_sample") / "adult.csv", "/tmp/adult_processed.parquet",
    ...                           cat_names=["workclass", "education"], cont_names=["age"], y_names="salary",
    ...                           valid_pct=0.2, seed=42)
    >>> pl.read_parquet("/tmp/adult_processed.parquet").columns
    ['workclass', 'education', 'age', 'salary', 'is_valid']
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pipekit.core.archive import atomic_write_bytes, save, unwritable_error, why_unwritable, writable_folder
from pipekit.core.errors import DataError, ParameterError, PipekitError, collecting, warn
from pipekit.core.validate import Is, check, unknown_names
from pipekit.data.items import (PACKED_CSV_SUFFIXES, _zip_csv_member, inflate_bounded, parquet_files, table_error,
                                table_kind, without_polars_context)
from pipekit.data.splitters import VALID_PCT_OR_NONE
from pipekit.tabular.core import (VALID_COLUMN, csv_float32_error, float32_rounded, naming_file, pandas_class_targets,
                                  processing_path, scan_table)
from pipekit.tabular.processor import TabularProcessor
from pipekit.tabular.saving import SAVED_KEY, TABLE_KIND
from pipekit.tabular.procs import DEFAULT_PROCS, Procs, unshared_procs

_ROW = "__pipekit_row__"
# How Polars reports the file system's error under its own ("... No space left on device (os error 28)")
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _os_error(e: BaseException) -> OSError | None:
    """The file system's error behind ``e``: ``e`` itself when an OSError, the one a Polars error names by its
    number, else None (an error about the data)."""
    if isinstance(e, OSError):
        return e
    m = _OS_ERROR.search(str(e)) if isinstance(e, pl.exceptions.PolarsError) else None
    if m is None:
        return None
    code = int(m[1])
    return OSError(code, os.strerror(code))


def _unwritable(e: OSError, dest: Path) -> OSError:
    """``e`` said of ``dest``, the file asked for (not the staging folder's file), with the fix."""
    folder = dest.parent.resolve()
    fix = ("free space there, or give a path on another disk" if e.errno in (errno.ENOSPC, errno.EDQUOT)
           else "give a path in a folder you can write to")
    return unwritable_error(e, f"process_to_parquet cannot write {dest} (in the folder {folder}): "
                               f"{why_unwritable(folder, e)}; {fix}; the previous output there, if any, is unchanged")


def _sink(query: pl.LazyFrame, path: Path, out: Path, **kwargs: Any) -> None:
    """``query.sink_parquet(path)``; a write that fails for the file system (a full disk) raises its OSError naming
    ``out``, the output asked for, rather than Polars' error about a staging file."""
    try:
        query.sink_parquet(path, engine="streaming", **kwargs)
    except (OSError, pl.exceptions.PolarsError) as e:
        if (os_err := _os_error(e)) is None:
            raise
        raise _unwritable(os_err, out) from e


def _valid_error(valid: pl.Expr, schema: pl.Schema) -> ParameterError | None:
    """Why ``valid`` cannot split a table of ``schema`` (a column it names missing, a comparison of a column with a
    value of another type, a result that is not true/false), said of the expression with the fix; None when it can.
    Tried on no rows, before the table is read, so the error is the expression's, never the file's."""
    names = [c for c in dict.fromkeys(valid.meta.root_names())]
    if missing := [c for c in names if c not in schema]:
        return ParameterError(f"process_to_parquet: valid={valid} reads column(s) {missing} the table does not have; "
                              f"{unknown_names(missing, list(schema.names()))}")
    try:
        got = pl.DataFrame(schema=schema).lazy().select(valid.alias(VALID_COLUMN)).collect().schema[VALID_COLUMN]
    except pl.exceptions.PolarsError as e:
        types = ", ".join(f"{c!r} is {schema[c]}" for c in names)
        dates = [c for c in names if schema[c].is_temporal()]
        texts = [c for c in names if schema[c] == pl.String]
        fix = (f"compare {dates[0]!r} with a date, e.g. pl.col({dates[0]!r}) >= pl.lit('2015-06-14').str.to_date() "
               f"(or datetime.date(2015, 6, 14))" if dates else
               f"{texts[0]!r} is text (a CSV's dates are): parse it to compare with a date, e.g. "
               f"pl.col({texts[0]!r}).str.to_date() >= datetime.date(2015, 6, 14), or compare it with text "
               f"(pl.col({texts[0]!r}) >= '2015-06-14')" if texts else
               "give an expression over the columns' types")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return ParameterError(f"process_to_parquet: valid={valid} cannot be computed on the table ({types}): "
                              f"{first}; {fix}")
    if got != pl.Boolean:
        return ParameterError(f"process_to_parquet: valid={valid} gives {got} values, where it must give true or false "
                              "for each row (a validation row or not); compare a column, e.g. pl.col('year') >= 2015")
    return None


def _unpacked(path: Path, folder: Path) -> tuple[Path, str]:
    """``(file, where)``: the CSV the packed file ``path`` holds (a ``.csv.gz``, a ``.zip`` of one CSV, a ``.txt``;
    see ``pipekit.data.items.PACKED_CSV_SUFFIXES``) as a ``.csv``/``.tsv`` file in ``folder``, which the streaming
    query scans lazily instead of reading it whole, and how a message names it. A compressed CSV is inflated there
    (bounded as ``read_table`` bounds it), a ``.txt`` linked there."""
    import zipfile
    import zlib

    kind = PACKED_CSV_SUFFIXES[path.suffix.lower()]

    def named(name: str) -> Path:
        plain = Path(name).name
        return folder / (plain if Path(plain).suffix.lower() in (".csv", ".tsv") else Path(plain).stem + ".csv")

    if kind == "text":
        file = named(path.name)
        os.symlink(path.resolve(), file)
        return file, str(path)
    if kind == "gzip":
        import gzip

        file, where = named(path.stem), str(path)
        try:
            with gzip.open(path, "rb") as src, open(file, "wb") as dst:
                inflate_bounded(src, dst, path, where)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataError(f"{path} is not a complete gzip file ({e}); check it (gzip -t), or download it again") \
                from None
        return file, where
    member = _zip_csv_member(path)
    file, where = named(member), f"{path} ({member})"
    try:
        with zipfile.ZipFile(path) as z, z.open(member) as packed, open(file, "wb") as dst:
            inflate_bounded(packed, dst, path, where)
    except (EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{where}: could not be read from the zip archive ({e}); check it (unzip -t), or download it "
                        "again") from None
    return file, where


def process_to_parquet(source: Any, out_path: str | os.PathLike,
                       procs: Procs = DEFAULT_PROCS,
                       cat_names: str | Sequence[str] | None = None, cont_names: str | Sequence[str] | None = None,
                       y_names: str | Sequence[str] | None = None, y_block: Any = None,
                       valid: pl.Expr | None = None, valid_pct: float | None = None, seed: int = 0,
                       processor_path: str | os.PathLike | None = None) -> TabularProcessor:
    """Fit procs on the training rows of a table that need not fit in memory; stream the result to Parquet.

    The validation rows are those where ``valid`` (a Polars expression over the raw columns) holds, or a
    seeded ``valid_pct`` of the rows (a hash of the row number and ``seed``: the same rows on every pass,
    with no index held in memory); with neither, every row trains. The output has the processed inputs,
    the encoded targets and a boolean ``is_valid`` column. The fitted processing is written with
    ``pipekit.save`` to ``<out>.pipekit`` (or ``processor_path``) and returned; the table's Parquet file records the
    SHA-256 of that file, so ``Tabular.load(out)`` refuses a ``.pipekit`` beside it that another run wrote. Both are
    written in a staging folder and renamed into place when complete: an error or Ctrl-C leaves the previous files as
    they were. A write the file system refuses (a full disk) raises its OSError naming ``out_path``. A ``.csv.gz``,
    a ``.zip`` holding one CSV or a ``.txt`` is decompressed to a temporary CSV beside the output (removed at the end)
    and streamed from there, so it needs that much free disk rather than memory. ``valid`` is checked against the
    table's column types before anything is read: a date column compares with dates
    (``pl.col('Date') >= pl.lit('2015-06-14').str.to_date()``), a CSV's dates are text
    (``pl.col('Date') >= '2015-06-14'`` compares them as text, ISO dates in their order).

    >>> import tempfile
    >>> from pathlib import Path
    >>> import polars as pl
    >>> from pipekit.tabular import process_to_parquet
    >>> df = pl.DataFrame({"job": ["a", "b", "a", "b", "a"], "age": [20.0, None, 40.0, 30.0, 50.0],
    ...                    "year": [2020, 2020, 2021, 2021, 2022], "paid": ["no", "yes", "no", "yes", "yes"]})
    >>> out = Path(tempfile.mkdtemp()) / "jobs.parquet"
    >>> proc = process_to_parquet(df.lazy(), out, cat_names=["job"], cont_names=["age"], y_names="paid",
    ...                           valid=pl.col("year") >= 2022)              # the last year validates
    >>> table = pl.read_parquet(out)
    >>> table.columns, table["is_valid"].to_list(), table["job"].to_list()
    (['job', 'age_na', 'age', 'paid', 'is_valid'], [False, False, False, False, True], [1, 2, 1, 2, 1])
    >>> proc.cat_names_, out.with_suffix(".pipekit").exists()
    (['job', 'age_na'], True)
    """
    out = Path(out_path)
    check("process_to_parquet", out_path=(out, Is(lambda p: p.suffix.lower() in (".parquet", ".pq"),
                                                   "a path ending in .parquet")),
          valid=(valid, Is(lambda v: v is None or isinstance(v, pl.Expr), "a Polars expression, e.g. "
                           "pl.col('year') >= 2015, or pl.col('Date') >= pl.lit('2015-06-14').str.to_date() for a "
                           "date column")),
          valid_pct=(valid_pct, VALID_PCT_OR_NONE))
    if valid is not None and valid_pct is not None:
        raise ParameterError("process_to_parquet: give either valid= (an expression) or valid_pct=, not both.")
    processor = TabularProcessor(unshared_procs(procs), cat_names, cont_names, y_names, y_block)
    args = (processor, out, valid, valid_pct, seed, processor_path)
    packed = (isinstance(source, (str, os.PathLike)) and table_kind(source) == "packed" and Path(source).is_file()
              and parquet_files(source) is None)
    if not packed:
        return _process(source, *args)
    # a compressed CSV is streamed from a plain copy beside the output; messages name the file given
    writable_folder(out.parent, "process_to_parquet", "process_to_parquet(source, '<a writable folder>/out.parquet')")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".pipekit_unpack_") as tmp:
        try:
            file, where = _unpacked(Path(source), Path(tmp))
        except OSError as e:  # a full disk
            raise _unwritable(e, out) from e
        said: list[Any] = []
        try:
            with collecting() as said:
                return _process(file, *args)
        except PipekitError as e:
            if e.args and isinstance(e.args[0], str):
                e.args = (e.args[0].replace(str(file), where), *e.args[1:])
            raise
        finally:
            for w in said:
                warn(str(w.message).replace(str(file), where), w.category)


def _process(source: Any, processor: TabularProcessor, out: Path, valid: pl.Expr | None, valid_pct: float | None,
             seed: int, processor_path: str | os.PathLike | None) -> TabularProcessor:
    """:func:`process_to_parquet` of a source that is scanned as it is (a packed CSV given as its plain copy)."""
    cats, conts, ys = processor.cat_names, processor.cont_names, processor.y_names
    lf = scan_table(source, cats, ys, conts)
    schema = lf.collect_schema()
    processor.check_columns(schema.names(), where="process_to_parquet")
    if valid is not None and (refused := _valid_error(valid, schema)) is not None:
        raise refused

    def with_split(lf: pl.LazyFrame) -> pl.LazyFrame:
        split = valid
        if valid_pct is not None:
            lf = lf.with_row_index(_ROW)
            split = (pl.col(_ROW).hash(seed) % 1_000_000) < int(round(valid_pct * 1_000_000))
        return lf.with_columns((split.fill_null(False) if split is not None else pl.lit(False)).alias(VALID_COLUMN))

    lf = with_split(lf)
    processor_dest = Path(processor_path) if processor_path is not None else processing_path(out)
    writable_folder(out.parent, "process_to_parquet", "process_to_parquet(source, '<a writable folder>/out.parquet')")
    is_text_file = isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in (".csv", ".tsv")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".pipekit_stage_") as tmp:
        if is_text_file:  # an error reading the file names it (table_error); one about its rows, naming_file
            # One pass over the CSV writes the model's columns and the split flag to Parquet; the several
            # statistics passes then read only the columns they need instead of parsing the text again.
            staged, columns = Path(tmp) / "staged.parquet", list(dict.fromkeys(cats + conts + ys)) + [VALID_COLUMN]
            try:
                _sink(lf.select(columns), staged, out)
            except DataError as e:  # a line longer than the header (scan_csv_whole_lines)
                raise without_polars_context(e) from None
            except pl.exceptions.PolarsError:
                # a value that does not read as the file's first rows said ('?' after 10,000 numbers): the file
                # is read again with each column's type from all its rows, so the checks name the value and its row
                again = with_split(scan_table(source, cats, ys, conts, all_rows=True))
                try:
                    _sink(again.select(columns), staged, out)
                except DataError as e:
                    raise without_polars_context(e) from None
                except pl.exceptions.PolarsError as e:
                    raise table_error(Path(source), e) from e
            lf = pl.scan_parquet(staged, glob=False)
            with naming_file(source):
                if (err := csv_float32_error(Path(source), lf, conts)) is not None:
                    raise err  # the continuous columns were staged as float32: a value beyond it would be inf
                if large := float32_rounded(lf, conts):  # ids and counts float32 rounds: staged again as read
                    again = with_split(scan_table(source, cats, ys, [c for c in conts if c not in large],
                                                  wide_names=large))
                    staged = Path(tmp) / "staged_wide.parquet"
                    _sink(again.select(columns), staged, out)
                    lf = pl.scan_parquet(staged, glob=False)
        with naming_file(source):  # the rows processed are the file's rows
            # a pandas categorical target is classes, as in Tabular
            query = processor.fit_lazy(lf, ~pl.col(VALID_COLUMN), keep=[VALID_COLUMN],
                                       class_targets=pandas_class_targets(source, ys))
        try:
            staged_processing = save(processor, Path(tmp) / "processing.pipekit")
        except OSError as e:
            raise _unwritable(e, processor_dest) from e
        from pipekit.data.external import file_digests

        # the table records its processing's SHA-256, which Tabular.load checks a .pipekit found beside it against
        # (one written as a folder beside it is pipekit.save's own form, and is not recorded)
        folder_form = processor_dest.is_dir() or not processor_dest.suffix
        record = None if folder_form and processor_dest == processing_path(out) else \
            {"kind": TABLE_KIND, "by": "process_to_parquet", "processing_sha256": file_digests(staged_processing)[2]}
        table = Path(tmp) / "table.parquet"
        with naming_file(source):
            _sink(query, table, out, **({} if record is None else {"metadata": {SAVED_KEY.decode(): json.dumps(record)}}))
        # Both complete: into place, the processing first. Its write (a whole file, beside its destination, which
        # may be in another folder) is the step a full disk can still fail, and it fails with neither file changed;
        # only the table's rename within its own folder, which needs no space, follows it. The other order could
        # leave the new table beside the earlier processing, which would decode its codes with the wrong classes.
        # Between the two renames (microseconds) a reader can still find the new processing beside the earlier table.
        try:
            if folder_form:  # pipekit.save's folder form, written by it
                save(processor, processor_dest)
            else:
                processor_dest.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(processor_dest, staged_processing.read_bytes())
        except OSError as e:
            raise _unwritable(e, processor_dest) from e
        try:
            os.replace(table, out)
        except OSError as e:  # a folder at that name
            raise _unwritable(e, out) from e
    return processor
