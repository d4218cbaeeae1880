"""Any supported source becomes one Polars DataFrame with a row per item."""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipekit.core.errors import ParameterError
from pipekit.core.validate import Options, check

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "ipc",
                  ".feather": "ipc", ".ipc": "ipc"}


def read_table(path: str | os.PathLike, **kwargs: Any) -> pl.DataFrame:
    """Read a CSV/TSV/Parquet/Arrow file into Polars, with an error naming the file when it fails."""
    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unsupported table format {path.suffix!r}; use one of {sorted(TABLE_SUFFIXES)}")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        if kind == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return pl.read_csv(path, **{"infer_schema_length": 10_000, "separator": sep, **kwargs})
        if kind == "parquet":
            return pl.read_parquet(path, **kwargs)
        return pl.read_ipc(path, **kwargs)
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"could not read {path}: {e}") from e


def to_items(source: Any) -> pl.DataFrame:
    """Turn a source into the items DataFrame.

    Accepts a Polars DataFrame/LazyFrame, pandas DataFrame, Arrow table, Hugging Face ``datasets.Dataset``,
    a CSV/TSV/Parquet/Arrow file path, a dict (a row, or columns), or a sequence: paths become a ``path``
    column, dicts rows, anything else an ``item`` column (objects such as arrays, tensors or PIL images
    are kept as they are, in a column of Python objects).

    >>> to_items([Path("a.png"), Path("b.png")]).columns
    ['path']
    >>> to_items(pl.DataFrame({"x": [1, 2]})).shape
    (2, 1)
    """
    if isinstance(source, pl.DataFrame):
        df = source
    elif isinstance(source, pl.LazyFrame):
        df = source.collect()
    elif isinstance(source, pa.Table):
        df = pl.from_arrow(source)  # type: ignore[assignment]
    elif type(source).__module__.startswith("pandas"):
        import pandas as pd

        if isinstance(source, pd.Series):
            source = source.to_frame()
        df = _from_pandas(source)
    elif isinstance(source, dict):
        df = pl.DataFrame(source)  # scalars make one row, lists make columns
    elif type(source).__module__.startswith("datasets"):
        df = _from_hf(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ValueError(f"the source {path} is a folder: pass get_items= (e.g. get_image_files) to find "
                             "its items, or pass a list of files")
        df = read_table(path) if path.suffix.lower() in TABLE_SUFFIXES else pl.DataFrame({"path": [str(path)]})
    elif isinstance(source, (Sequence, np.ndarray)) or hasattr(source, "__iter__"):
        values = list(source)
        if values and all(isinstance(v, os.PathLike) for v in values):
            df = pl.DataFrame({"path": [str(v) for v in values]})
        elif values and all(isinstance(v, dict) for v in values):
            df = pl.DataFrame(values)
        elif any(_held_object(v) for v in values):
            # arrays, tensors, PIL images...: kept as the objects they are, for the block that reads them
            df = pl.DataFrame({"item": pl.Series("item", values, dtype=pl.Object)})
        else:
            try:
                df = pl.DataFrame({"item": values}, strict=True) if values else pl.DataFrame({"item": []})
            except (TypeError, pl.exceptions.PolarsError) as e:
                types = sorted({type(v).__name__ for v in values})
                first = type(values[0])
                odd = next((i for i, v in enumerate(values) if type(v) is not first), 0)
                raise TypeError(f"the items mix types {types} (item 0 is a {first.__name__}, item {odd} a "
                                f"{type(values[odd]).__name__}: {values[odd]!r}); give one type per source") from e
    else:
        raise TypeError(f"unsupported source {type(source).__name__}; give a Polars/pandas DataFrame, an Arrow "
                        "table, a datasets.Dataset, a CSV/Parquet path or a list of items")
    return df


def _from_pandas(frame: Any) -> pl.DataFrame:
    """A pandas frame as Polars: a text column that also holds numbers (``[0, "a", "0"]``, a CSV read by pandas)
    becomes text, with a warning, where Arrow would refuse it; an ordered categorical keeps its order (as an
    ``Enum``, which ``Categorify`` follows)."""
    import pandas as pd

    try:
        df = pl.from_pandas(frame)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        mixed = [c for c in frame.columns if frame[c].dtype == object
                 and len({type(v) for v in frame[c].dropna()}) > 1]
        if not mixed:
            raise
        warnings.warn(f"column(s) {mixed} mix text and numbers; read as text (0 and '0' become the same value)",
                      stacklevel=3)
        frame = frame.copy()
        for c in mixed:
            frame[c] = frame[c].map(lambda v: v if v is None or v != v else str(v))
        df = pl.from_pandas(frame)
    enums = {c: [str(v) for v in frame[c].cat.categories] for c in frame.columns
             if isinstance(frame[c].dtype, pd.CategoricalDtype) and frame[c].cat.ordered}
    if enums:
        df = df.with_columns(pl.col(c).cast(pl.String).cast(pl.Enum(v)) for c, v in enums.items())
    return df


def _held_object(v: Any) -> bool:
    """A value Polars would take apart or refuse (an array, a tensor, an image object) rather than store."""
    return isinstance(v, np.ndarray) or type(v).__module__.split(".")[0] in ("torch", "PIL")


def _from_hf(ds: Any) -> pl.DataFrame:
    """A Hugging Face dataset as a frame. ``ClassLabel`` columns hold their label names (the integers Arrow
    stores are positions in ``names``; -1, no label, becomes null); an ``Image`` column stays the
    ``{bytes, path}`` structs image blocks read."""
    if hasattr(ds, "to_polars"):
        df = ds.to_polars()
    else:
        # a Dataset with an indices mapping (after select/shuffle) must be flattened before its table is read
        ds = ds.flatten_indices() if getattr(ds, "_indices", None) is not None else ds
        df = pl.from_arrow(ds.data.table)  # type: ignore[assignment]
    labels = {c: list(f.names) for c, f in (getattr(ds, "features", None) or {}).items()
              if type(f).__name__ == "ClassLabel" and c in df.columns and df.schema[c].is_integer()}
    if labels:
        df = df.with_columns(pl.col(c).replace_strict(list(range(len(names))), names, default=None,
                                                      return_dtype=pl.String) for c, names in labels.items())
    return df  # type: ignore[return-value]


def table_column(df: pl.DataFrame, col: int | str, param: str) -> str:
    """A column named or given by position (the book's ``fn_col=0``, ``label_col=1``)."""
    if isinstance(col, bool) or not isinstance(col, (int, str)):
        raise ParameterError(f"{param}={col!r}: give a column name or its position")
    if isinstance(col, int):
        if not -df.width <= col < df.width:
            raise ParameterError(f"{param}={col} but the table has {df.width} columns {df.columns}")
        return df.columns[col]
    if col not in df.columns:
        raise ParameterError(f"{param}={col!r} is not a column; the columns are {df.columns}")
    return col


def read_csv_table(path: str | os.PathLike, csv_fname: str | os.PathLike | None, header: str | None = "infer",
                   delimiter: str | None = None, skipinitialspace: bool = False) -> pl.DataFrame:
    """The book's ``from_csv`` reading: ``path / csv_fname`` (or ``path`` itself when ``csv_fname`` is None),
    ``header="infer"`` (the first line names the columns) or None (no header: columns are used by position),
    ``delimiter`` (default ","), ``skipinitialspace`` (drop the spaces after each delimiter in text)."""
    check("from_csv", header=(header, Options("infer", None)))
    file = Path(path) / csv_fname if csv_fname is not None else Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file} does not exist")
    df = pl.read_csv(file, has_header=header == "infer", separator=delimiter or ",", infer_schema_length=10_000)
    if skipinitialspace:
        df = df.with_columns(pl.col(pl.String).str.strip_chars_start(" "))
    return df
