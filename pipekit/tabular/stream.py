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
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pipekit.core.archive import atomic_write_bytes, save, unwritable_error, why_unwritable, writable_folder
from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Is, check
from pipekit.data.items import table_error, without_polars_context
from pipekit.data.splitters import VALID_PCT_OR_NONE
from pipekit.tabular.core import (VALID_COLUMN, csv_float32_error, float32_rounded, naming_file, pandas_class_targets,
                                  processing_path, scan_table)
from pipekit.tabular.processor import TabularProcessor
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
    ``pipekit.save`` to ``<out>.pipekit`` (or ``processor_path``) and returned. Both are written in a staging folder
    and renamed into place when complete: an error or Ctrl-C leaves the previous files as they were. A write the file
    system refuses (a full disk) raises its OSError naming ``out_path``.

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
                           "pl.col('Date') >= '2015-06-14'")),
          valid_pct=(valid_pct, VALID_PCT_OR_NONE))
    if valid is not None and valid_pct is not None:
        raise ParameterError("process_to_parquet: give either valid= (an expression) or valid_pct=, not both.")
    processor = TabularProcessor(unshared_procs(procs), cat_names, cont_names, y_names, y_block)
    cats, conts, ys = processor.cat_names, processor.cont_names, processor.y_names
    lf = scan_table(source, cats, ys, conts)
    processor.check_columns(lf.collect_schema().names(), where="process_to_parquet")

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
        table = Path(tmp) / "table.parquet"
        with naming_file(source):
            _sink(query, table, out)
        # Both complete: into place, the processing first. Its write (a whole file, beside its destination, which
        # may be in another folder) is the step a full disk can still fail, and it fails with neither file changed;
        # only the table's rename within its own folder, which needs no space, follows it. The other order could
        # leave the new table beside the earlier processing, which would decode its codes with the wrong classes.
        # Between the two renames (microseconds) a reader can still find the new processing beside the earlier table.
        try:
            if processor_dest.is_dir() or not processor_dest.suffix:  # pipekit.save's folder form, written by it
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
