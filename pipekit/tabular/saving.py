"""The book's ``save_pickle(path/'to.pkl', to)`` and ``load_pickle(path/'to.pkl')`` (chapter 9 saves its processed
table and its final columns with them), written without pickle: loading a pickle can run any code, so pipekit never
writes nor reads one, and a file ``save_pickle`` wrote is safe to take from someone else.

What is saved decides the file, whatever its name says:

- a processed table (:class:`~pipekit.tabular.Tabular`, the book's ``TabularPandas``): ``Tabular.save``'s Parquet file
  and its fitted processing beside it (``to.pkl`` and ``to.pipekit``);
- a pandas or Polars DataFrame or Series (the book's ``xs_final``): a Parquet file, read back as the same kind, with
  its column types (pandas categories and row labels included);
- a NumPy array of numbers, booleans or text: the ``.npy`` format;
- a model, an ensemble, a learner or any other pipekit object: ``pipekit.save``'s file.

>>> import tempfile, pandas as pd
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> df = pd.DataFrame({"YearMade": [2004, 1996], "ProductSize": pd.Categorical(["Large", "Mini"])}, index=[7, 9])
>>> back = load_pickle(save_pickle(folder / "xs_final.pkl", df))
>>> back.equals(df), back.index.tolist(), str(back.ProductSize.dtype)
(True, [7, 9], 'category')
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipekit.core.errors import ExportError, ParameterError

#: the key in a Parquet file's metadata naming what ``save_pickle`` wrote (a pandas or Polars frame or series)
SAVED_KEY = b"pipekit.save_pickle"
_FRAMES = ("pandas.DataFrame", "pandas.Series", "polars.DataFrame", "polars.Series")
_SERIES_COLUMN = "__series__"  # the column an unnamed series is written as


def _frame_kind(obj: Any) -> str | None:
    module = type(obj).__module__.split(".")[0]
    kind = f"{module}.{type(obj).__name__}"
    return kind if kind in _FRAMES else None


def save_pickle(fn: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` to ``fn`` as the book's ``save_pickle`` does, without pickle (see :mod:`pipekit.tabular.saving`
    for what each kind of object becomes); :func:`load_pickle` reads it back. Returns the path written."""
    from pipekit.core.component import Component
    from pipekit.tabular.core import Tabular

    p = Path(fn)
    if isinstance(obj, Tabular):
        return obj._write(p)
    kind = _frame_kind(obj)
    if kind is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = None
        if kind == "pandas.Series":
            name = obj.name
            obj = obj.to_frame(_SERIES_COLUMN if name is None else str(name))
        elif kind == "polars.Series":
            name = obj.name
            obj = obj.to_frame(obj.name or _SERIES_COLUMN)
        table = pa.Table.from_pandas(obj) if kind.startswith("pandas") else obj.to_arrow()
        record = {"kind": kind, "name": name if name is None or isinstance(name, (str, int, float)) else str(name)}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), SAVED_KEY: json.dumps(record)})
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, p)
        return p
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or obj.dtype.fields is not None:
            raise ParameterError(f"save_pickle: a NumPy array of {obj.dtype} values cannot be written without pickle; "
                                 "convert it to numbers or text first (arr.astype(float) or arr.astype(str))")
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:  # a file object: NumPy adds no '.npy' to the name
            np.save(f, obj, allow_pickle=False)
        return p
    if isinstance(obj, Component) or hasattr(obj, "export"):
        from pipekit.core.archive import save

        return save(obj, p)
    raise ParameterError(f"save_pickle: a {type(obj).__name__} cannot be saved: pipekit writes no pickles (loading one "
                         "can run any code), so save_pickle takes a processed table (Tabular/TabularPandas), a pandas or "
                         "Polars DataFrame or Series, a NumPy array, or a pipekit model, ensemble or learner; write "
                         "other objects in a format of their own (json.dump for plain values)")


def load_pickle(fn: str | os.PathLike) -> Any:
    """Read back what :func:`save_pickle` wrote to ``fn``: the same kind of object, equal to the one saved. A real
    pickle (fastai's ``save_pickle`` writes those) is refused, never loaded, because loading a pickle can run code."""
    from pipekit.core.archive import MAX_TOTAL_BYTES, array_from_npy, read_file

    p = Path(fn)
    if not p.is_file():
        raise FileNotFoundError(f"load_pickle: {str(p)!r} {'is a folder' if p.is_dir() else 'does not exist'}; "
                                "give the file save_pickle wrote")
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PAR1"):
        return _load_parquet(p)
    if head.startswith(b"\x93NUMPY"):
        return array_from_npy(read_file(p, str(p), MAX_TOTAL_BYTES), str(p)).copy()
    if head.startswith(b"PK"):
        from pipekit.core.archive import load

        return load(p)
    sign = "it starts with the byte 0x80, as pickles do" if head[:1] == b"\x80" else f"it starts with {head!r}"
    raise ExportError(f"load_pickle: {str(p)!r} was not written by pipekit's save_pickle ({sign}); pipekit never "
                      "loads pickles, because loading one can run any code. Where the file came from, load the "
                      "original data instead (pd.read_csv, ...) and save it again with pipekit's save_pickle")


def _load_parquet(p: Path) -> Any:
    import pyarrow.parquet as pq

    from pipekit.data.items import check_table_nesting
    from pipekit.tabular.core import Tabular, check_parquet_size

    check_table_nesting(p, "parquet")
    check_parquet_size(p)
    metadata = pq.read_schema(p).metadata or {}
    if SAVED_KEY not in metadata:
        if p.with_suffix(".pipekit").exists():  # Tabular.save's table, its processing beside it
            return Tabular.load(p)
        raise ExportError(f"load_pickle: {str(p)!r} is a Parquet file that save_pickle did not write, and no fitted "
                          f"processing ({p.with_suffix('.pipekit').name}) is beside it; read it with pd.read_parquet "
                          "or pl.read_parquet")
    try:
        record = json.loads(metadata[SAVED_KEY])
        kind, name = record["kind"], record["name"]
        if kind not in _FRAMES:
            raise ValueError(f"kind {kind!r}")
    except Exception as e:  # noqa: BLE001  (whatever a damaged record raises)
        raise ExportError(f"load_pickle: {str(p)!r}: its save_pickle record is damaged ({type(e).__name__}: {e})") from None
    table = pq.read_table(p)
    if kind.startswith("pandas"):
        frame = table.to_pandas()
        return frame if kind == "pandas.DataFrame" else frame.iloc[:, 0].rename(name)
    import polars as pl

    out = pl.DataFrame(pl.from_arrow(table))
    return out if kind == "polars.DataFrame" else out.to_series(0).alias(name or "")
