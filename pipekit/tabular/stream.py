"""Out-of-core tabular processing: fit procs with streaming aggregations, write the result to Parquet.

The source (CSV/Parquet/Arrow path or LazyFrame) is scanned lazily; each proc's statistics are one
streaming query over the training rows, and the processed table (small integer codes, Float32
values, an ``is_valid`` column) is written with ``sink_parquet`` without ever holding the raw table
in memory. ``Tabular.from_processed`` then loads that compact file for training.

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

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pipekit.tabular.core import DEFAULT_PROCS, _as_list, read_table
from pipekit.tabular.processor import TabularProcessor
from pipekit.tabular.procs import TabularProc, make_procs

VALID_COL = "is_valid"
_ROW = "__pipekit_row__"


def _valid_expr(valid: pl.Expr | None, valid_pct: float | None, seed: int) -> pl.Expr | None:
    if valid is not None and valid_pct is not None:
        raise ValueError("process_to_parquet: give either valid= (an expression) or valid_pct=, not both.")
    if valid is not None:
        if not isinstance(valid, pl.Expr):
            raise TypeError(f"process_to_parquet: valid must be a Polars expression (e.g. pl.col('Date') >= "
                            f"'2015-06-14'), got {type(valid).__name__}.")
        return valid.fill_null(False)
    if valid_pct is None:
        return None
    if not 0 < valid_pct < 1:
        raise ValueError(f"process_to_parquet: valid_pct must be in (0, 1), got {valid_pct}.")
    # A seeded hash of the row number: the same rows are valid on every pass, with no index held in memory.
    return (pl.col(_ROW).hash(seed) % 1_000_000) < int(round(valid_pct * 1_000_000))


def process_to_parquet(source: Any, out_path: str | os.PathLike,
                       procs: Sequence[type[TabularProc] | TabularProc] | None = DEFAULT_PROCS,
                       cat_names: str | Sequence[str] | None = None, cont_names: str | Sequence[str] | None = None,
                       y_names: str | Sequence[str] | None = None, y_block: Any = None,
                       valid: pl.Expr | None = None, valid_pct: float | None = None, seed: int = 0,
                       state_path: str | os.PathLike | None = None) -> TabularProcessor:
    """Fit procs on the training rows of a table that need not fit in memory; stream the result to Parquet.

    The validation rows are those where ``valid`` (a Polars expression over the raw columns) holds, or a
    seeded ``valid_pct`` of the rows; with neither, every row trains. The output has the processed
    inputs, the encoded targets and a boolean ``is_valid`` column. The fitted state is written as JSON
    next to it (``<out>.state.json``, or ``state_path``) and returned as a ``TabularProcessor``.
    """
    out = Path(out_path)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"process_to_parquet: out_path must end in .parquet, got {str(out)!r}.")
    cats, conts, ys = _as_list(cat_names, "cat_names"), _as_list(cont_names, "cont_names"), _as_list(y_names, "y_names")
    processor = TabularProcessor(make_procs(procs), cats, conts, ys, y_block=y_block)
    lf = read_table(source, cats, lazy=True, text_names=ys, cont_names=conts)
    assert isinstance(lf, pl.LazyFrame)
    processor.check_columns(lf.collect_schema().names(), where="process_to_parquet")
    vexpr = _valid_expr(valid, valid_pct, seed)
    if valid_pct is not None:
        lf = lf.with_row_index(_ROW)
    lf = lf.with_columns((vexpr if vexpr is not None else pl.lit(False)).alias(VALID_COL))
    out.parent.mkdir(parents=True, exist_ok=True)
    is_text_file = isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in (".csv", ".tsv", ".txt")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".pipekit_stage_") as tmp:
        if is_text_file:
            # One pass over the CSV writes the model's columns and the split flag to Parquet; the several
            # statistics passes then read only the columns they need instead of parsing the text again.
            staged = Path(tmp) / "staged.parquet"
            lf.select(list(dict.fromkeys(cats + conts + ys)) + [VALID_COL]).sink_parquet(staged, engine="streaming")
            lf = pl.scan_parquet(staged)
        if ys:
            nulls = lf.select([pl.col(c).null_count() for c in ys]).collect(engine="streaming").row(0)
            bad = {c: n for c, n in zip(ys, nulls) if n}
            if bad:
                raise ValueError(f"process_to_parquet: target column(s) have nulls {bad}; filter those rows first.")
        query = processor.fit_lazy(lf, ~pl.col(VALID_COL), keep=[VALID_COL])
        query.sink_parquet(out, engine="streaming")
    sp = Path(state_path) if state_path is not None else out.with_suffix(".state.json")
    sp.write_text(json.dumps(processor.state()))
    return processor
