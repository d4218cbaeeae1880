"""The book's ``save_pickle(path/'to.pkl', to)`` and ``load_pickle(path/'to.pkl')`` (chapter 9 saves its processed
table and its final columns with them), written without pickle: loading a pickle can run any code, so pipekit never
writes nor reads one, and a file ``save_pickle`` wrote is safe to take from someone else.

What is saved decides the file, whatever its name says:

- a processed table (:class:`~pipekit.tabular.Tabular`, the book's ``TabularPandas``): ``Tabular.save``'s Parquet file
  and its fitted processing beside it (``to.pkl`` and ``to.pkl.pipekit``, copied together: the table's file records
  which processing was written with it, and loading refuses another);
- a pandas or Polars DataFrame or Series (the book's ``xs_final``): a Parquet file, read back as the same kind, with
  its column names and types (pandas categories of text, and row labels, included). What a Parquet file would give
  back changed is refused when saving, naming the column and the fix: categories of numbers (Parquet keeps the
  categories of text only), column names of mixed types, Python objects, lists in a pandas column;
- a NumPy array of numbers, booleans or text: the ``.npy`` format (dates are saved as a pandas Series);
- a model, an ensemble, a learner or any other pipekit object: ``pipekit.save``'s file (a folder holding its files,
  for a name without an extension).

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
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pipekit.core.archive import atomic_output
from pipekit.core.errors import ExportError, ParameterError

#: the key in a Parquet file's metadata naming what ``save_pickle`` wrote (a pandas or Polars frame or series)
SAVED_KEY = b"pipekit.save_pickle"
_FRAMES = ("pandas.DataFrame", "pandas.Series", "polars.DataFrame", "polars.Series")
_SERIES_COLUMN = "__series__"  # the column an unnamed series is written as
#: the save_pickle record's kind in the Parquet file of a processed table (``Tabular.save``; its processing beside it)
TABLE_KIND = "pipekit.Tabular"


def _frame_kind(obj: Any) -> str | None:
    module = type(obj).__module__.split(".")[0]
    kind = f"{module}.{type(obj).__name__}"
    return kind if kind in _FRAMES else None


def save_pickle(fn: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` to ``fn`` as the book's ``save_pickle`` does, without pickle (see :mod:`pipekit.tabular.saving`
    for what each kind of object becomes); :func:`load_pickle` reads it back. Returns the path written. A relative
    ``fn`` is under the working folder, whatever is saved (a learner's too, unlike ``learn.export``, which puts a
    relative name under ``learn.path``); a model or learner saved to a name without an extension is a folder
    holding ``pipekit.save``'s files, which :func:`load_pickle` reads as it reads the file.

    The file is written to a new temporary file beside ``fn`` and renamed over it
    (:func:`pipekit.core.archive.atomic_output`): a link at ``fn`` is replaced by the new file, never written through,
    a file there before keeps its permission bits, and an error part-way leaves it as it was.

    >>> import polars as pl, tempfile
    >>> from pathlib import Path
    >>> from pipekit.tabular import load_pickle, save_pickle
    >>> df = pl.DataFrame({"age": [39, 50], "salary": ["<50k", ">=50k"]})
    >>> fn = save_pickle(Path(tempfile.mkdtemp()) / "df.pkl", df)
    >>> fn.name, load_pickle(fn).equals(df)
    ('df.pkl', True)
    >>> from pipekit.core import ParameterError
    >>> try:
    ...     save_pickle(fn, {"n": 2})  # a dict is refused: pipekit writes no pickles
    ... except ParameterError as e:
    ...     print(e)
    save_pickle: a dict cannot be saved: pipekit writes no pickles (loading one can run any code), ...(json.dump for plain values)
    """
    from pipekit.core.component import Component
    from pipekit.tabular.core import Tabular

    p = Path(fn)
    if isinstance(obj, Tabular):
        return obj._write(p)
    kind = _frame_kind(obj)
    if kind is not None:
        import pyarrow.parquet as pq

        table = _saved_table(obj, kind)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(p) as f:  # a link at ``p`` is replaced, never written through
            pq.write_table(table, f)
        return p
    if isinstance(obj, np.ndarray):
        _check_array(obj)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(p) as f:  # a file object: NumPy adds no '.npy' to the name; a link at ``p`` is replaced
            np.save(f, obj, allow_pickle=False)
        return p
    if isinstance(obj, Component) or hasattr(obj, "export"):
        from pipekit.core.archive import save

        return save(obj, p)
    raise ParameterError(f"save_pickle: a {type(obj).__name__} cannot be saved: pipekit writes no pickles (loading one "
                         "can run any code), so save_pickle takes a processed table (Tabular/TabularPandas), a pandas or "
                         "Polars DataFrame or Series, a NumPy array, or a pipekit model, ensemble or learner; write "
                         "other objects in a format of their own (json.dump for plain values)")


#: the rows of a frame or series :func:`save_pickle_hint` checks, so that a message about a large one is made quickly
_HINT_ROWS = 1000


def save_pickle_hint(obj: Any) -> str | None:
    """What :func:`save_pickle` says of ``obj``, for the message of a function that cannot write it: for a processed
    table, a pandas or Polars frame or series, or a NumPy array, how ``save_pickle`` writes it and what reads it back,
    or, for one it refuses, the fix its refusal names; None for any other object. Nothing is written; of a frame or
    series, the first 1,000 rows are checked (those after them are checked by ``save_pickle`` itself).

    >>> import numpy as np
    >>> save_pickle_hint(np.arange(3.0))[:55]
    'write it with pipekit.tabular.save_pickle(path, arr) (e'
    >>> save_pickle_hint(np.array([{"a": 1}], dtype=object))[:86]
    'nor can pipekit.tabular.save_pickle write it: a NumPy array of object values cannot be'
    >>> save_pickle_hint({"n": 2}) is None
    True
    """
    from pipekit.tabular.core import Tabular

    if isinstance(obj, Tabular):
        return ("write a processed table with to.save(path) (a path ending in .parquet; Tabular.load(path) reads it "
                "back) or pipekit.tabular.save_pickle(path, to) (load_pickle(path) reads it back): its rows go to that "
                "file and its fitted processing to a .pipekit file beside it")
    kind = _frame_kind(obj)
    if kind is None and not isinstance(obj, np.ndarray):
        return None
    try:
        if kind is None:
            _check_array(obj)
        else:  # what its first rows would give back
            _saved_table(obj.iloc[:_HINT_ROWS] if kind.startswith("pandas") else obj.head(_HINT_ROWS), kind)
    except ParameterError as e:
        return f"nor can pipekit.tabular.save_pickle write it: {str(e).removeprefix('save_pickle: ')}"
    var, what = (("arr", "written in NumPy's .npy format") if kind is None else
                 ("s" if kind.endswith("Series") else "df", "written as a Parquet file"))
    return (f"write it with pipekit.tabular.save_pickle(path, {var}) (e.g. path 'xs.pkl'; {what}), which "
            f"pipekit.tabular.load_pickle(path) reads back as a {kind or 'NumPy array'}")


def _saved_table(obj: Any, kind: str) -> Any:
    """The Arrow table, with its save_pickle record, that :func:`save_pickle` writes for a frame or series of ``kind``
    (a ParameterError for one that would not come back as it is)."""
    name = None
    if kind == "pandas.Series":
        name = obj.name.item() if isinstance(obj.name, np.generic) else obj.name  # np.int64(3) is named 3
        if not (name is None or isinstance(name, (str, int, float))):  # bool is an int
            raise ParameterError(f"save_pickle: the Series' name {name!r} (a {type(name).__name__}) would come "
                                 "back as text, not as it is; name it with text or a number first "
                                 "(s.rename(str(s.name)))")
        obj = obj.to_frame(_SERIES_COLUMN if name is None else str(name))
    elif kind == "polars.Series":
        name = obj.name
        obj = obj.to_frame(obj.name or _SERIES_COLUMN)
    table = _frame_table(obj, kind)
    record = {"kind": kind, "name": name}
    return table.replace_schema_metadata({**(table.schema.metadata or {}), SAVED_KEY: json.dumps(record)})


def _check_array(obj: np.ndarray) -> None:
    """A ParameterError for a NumPy array :func:`save_pickle` cannot write so that it comes back as it is."""
    from pipekit.core.archive import _NPY_KINDS

    if type(obj) is not np.ndarray:  # np.save writes a masked array's data without its mask
        raise ParameterError(f"save_pickle: a {type(obj).__name__} would come back as a plain NumPy array, "
                             "without what it adds to one; save np.asarray(arr) (a masked array: "
                             "arr.filled(value))")
    if obj.dtype.hasobject or obj.dtype.fields is not None:
        raise ParameterError(f"save_pickle: a NumPy array of {obj.dtype} values cannot be written without pickle; "
                             "convert it to numbers or text first (arr.astype(float) or arr.astype(str))")
    if obj.dtype.kind not in _NPY_KINDS or obj.dtype.subdtype is not None:  # what load_pickle reads back
        fix = ("save it as a pandas Series (pd.Series(arr)), whose dates and durations come back as they were, "
               "or as numbers (arr.astype('int64'))" if obj.dtype.kind in "Mm" else
               "convert it to numbers or text first (arr.astype(float) or arr.astype(str))")
        raise ParameterError(f"save_pickle: a NumPy array of {obj.dtype} values could not be read back (an array "
                             f"file holds numbers, booleans or text); {fix}")


def _read_back(table: Any, pandas: bool) -> Any:
    """``table`` written to a Parquet file in memory and read back as :func:`load_pickle` reads it."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    back = pq.read_table(io.BytesIO(buffer.getvalue()))
    if pandas:
        return back.to_pandas()
    import polars as pl

    return pl.DataFrame(pl.from_arrow(back))


def _frame_table(obj: Any, kind: str) -> Any:
    """The Arrow table ``save_pickle`` writes for a pandas or Polars frame (a series made one), refused unless it reads
    back with the same column names, column types and row labels: its first 0 rows are written and read back, which
    takes milliseconds. A Parquet file names columns with text (numbers only when all are numbers of one type),
    keeps the categories of text only, and holds no Python objects; a ParameterError names the column and the fix."""
    import pyarrow as pa

    pandas = kind.startswith("pandas")
    what = "Series" if kind.endswith("Series") else "frame"
    if pandas:
        twice = obj.columns[obj.columns.duplicated()]
        if len(twice):
            raise ParameterError(f"save_pickle: the {what} has more than one column named {twice[0]!r}, and a file "
                                 "names each column once; rename them first (df.columns = [...])")
    else:
        import polars as pl

        for column, dtype in obj.schema.items():
            if dtype == pl.Object:  # Arrow would get the objects' memory addresses
                raise ParameterError(f"save_pickle: column {column!r} holds Python objects (Object), which cannot be "
                                     "written without pickle; convert it to numbers or text first (df.with_columns("
                                     f"pl.col({column!r}).map_elements(str, return_dtype=pl.String)))")

    def arrow(frame: Any, index: bool = True) -> Any:
        if not pandas:
            return frame.to_arrow()
        with warnings.catch_warnings():  # names of mixed types: refused below, with the fix
            warnings.filterwarnings("ignore", "The DataFrame has column names of mixed type")
            return pa.Table.from_pandas(frame, preserve_index=None if index else False)

    try:
        table = arrow(obj)
        back = _read_back(table.slice(0, 0), pandas)
    except Exception as e:  # noqa: BLE001  (pyarrow's and Polars' many conversion errors: the column is named below)
        for i, column in enumerate(obj.columns):
            try:
                _read_back(arrow(obj.iloc[:, [i]] if pandas else obj.select(obj.columns[i]), index=False).slice(0, 0),
                           pandas)
            except Exception as why:  # noqa: BLE001
                dtype = obj.dtypes.iloc[i] if pandas else obj.dtypes[i]
                raise ParameterError(f"save_pickle: column {column!r} ({dtype}) cannot be written to a Parquet file "
                                     f"({type(why).__name__}: {str(why)[:200]}); "
                                     "convert it to numbers, or to text of one type, first (.astype(str)); a sparse "
                                     "pandas column to a dense one (df[col].sparse.to_dense())") from None
        raise ParameterError(f"save_pickle: the {what}'s row labels cannot be written to a Parquet file "
                             f"({type(e).__name__}: {str(e)[:200]}); label its rows by position first "
                             "(df.reset_index())") from None
    if pandas:
        import pandas as pd

        try:
            pd.testing.assert_index_equal(back.columns, obj.columns, exact="equiv")
        except AssertionError:
            raise ParameterError(f"save_pickle: the column names {list(obj.columns)[:10]} would come back as "
                                 f"{list(back.columns)[:10]}: a file names columns with text, and with numbers only "
                                 "when all are numbers of one type; name them with text first "
                                 "(df.columns = df.columns.map(str))") from None
        for column, dtype, read in zip(obj.columns, obj.dtypes, back.dtypes):
            values, named = ("s", "the Series") if what == "Series" else (f"df[{column!r}]", f"column {column!r}")
            if isinstance(dtype, pd.CategoricalDtype):  # the 0 rows read back hold no categories
                if not (isinstance(read, pd.CategoricalDtype) and read.ordered == dtype.ordered):
                    raise ParameterError(
                        f"save_pickle: {named} holds categories of {dtype.categories.dtype} and would come back as "
                        f"{read}: a Parquet file keeps categories of text only; give it text categories "
                        f"({values}.astype(str).astype('category')) or its values' own type "
                        f"({values}.astype({values}.cat.categories.dtype)) first")
            elif read != dtype:
                raise ParameterError(f"save_pickle: {named} ({dtype}) would come back as {read}; convert it first "
                                     f"({values} = {values}.astype({str(read)!r})) so that what is loaded is what "
                                     "was saved")
            elif dtype.kind == "O" and str(column) in table.schema.names and _holds_lists(
                    table.schema.field(str(column)).type):
                raise ParameterError(f"save_pickle: column {column!r} holds lists, which would come back as NumPy "
                                     "arrays; save the frame as a Polars DataFrame (pl.from_pandas(df)), whose lists "
                                     "come back as lists")
        try:
            pd.testing.assert_index_equal(back.index, obj.index[:0], exact="equiv", check_categorical=False)
        except AssertionError:
            raise ParameterError(f"save_pickle: the {what}'s row labels ({type(obj.index).__name__} of "
                                 f"{obj.index.dtype}) would come back as a {type(back.index).__name__} of "
                                 f"{back.index.dtype}; label its rows by position first (df.reset_index())") from None
    elif back.schema != obj.schema:
        column, dtype, read = next(((c, t, back.schema.get(c)) for c, t in obj.schema.items()
                                    if back.schema.get(c) != t), (obj.columns, obj.schema, back.schema))
        raise ParameterError(f"save_pickle: column {column!r} ({dtype}) would come back as {read}; convert it first "
                             f"(df.with_columns(pl.col({column!r}).cast(...))) so that what is loaded is what was saved")
    return table


def _holds_lists(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return True
    return any(_holds_lists(t.field(i).type) for i in range(t.num_fields)) if pa.types.is_struct(t) else False


def load_pickle(fn: str | os.PathLike) -> Any:
    """Read back what :func:`save_pickle` wrote to ``fn``: the same kind of object, equal to the one saved (a folder
    a model or learner was saved into too). A real pickle (fastai's ``save_pickle`` writes those) is refused, never
    loaded, because loading a pickle can run code.

    >>> import numpy as np, pickle, tempfile
    >>> from pathlib import Path
    >>> from pipekit.tabular import load_pickle, save_pickle
    >>> folder = Path(tempfile.mkdtemp())
    >>> load_pickle(save_pickle(folder / "xs.pkl", np.arange(3))).tolist()
    [0, 1, 2]
    >>> _ = (folder / "real.pkl").write_bytes(pickle.dumps([1, 2]))
    >>> try:
    ...     load_pickle(folder / "real.pkl")  # a real pickle is refused, never loaded
    ... except Exception as e:
    ...     print(type(e).__name__)
    ExportError
    """
    from pipekit.core.archive import MAX_TOTAL_BYTES, array_from_npy, is_export_folder, load, read_file

    p = Path(fn)
    # a model or learner saved to a name without an extension; load says what is wrong with a folder whose
    # manifest.json (or the marker of an export stopped part-way) is no pipekit export's
    if is_export_folder(p):
        return load(p)
    if not p.is_file():
        if p.exists() and not p.is_dir():  # a pipe, a device (a link to /dev/zero): reading one may never end
            raise ExportError(f"load_pickle: {str(p)!r} is not a regular file; give the file save_pickle wrote")
        raise FileNotFoundError(f"load_pickle: {str(p)!r} {'is a folder' if p.is_dir() else 'does not exist'}; "
                                "give the file save_pickle wrote")
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PAR1"):
        return _load_parquet(p)
    if head.startswith(b"\x93NUMPY"):
        return array_from_npy(read_file(p, str(p), MAX_TOTAL_BYTES), str(p)).copy()
    if head.startswith(b"PK"):
        return load(p)
    sign = "it starts with the byte 0x80, as pickles do" if head[:1] == b"\x80" else f"it starts with {head!r}"
    raise ExportError(f"load_pickle: {str(p)!r} was not written by pipekit's save_pickle ({sign}); pipekit never "
                      "loads pickles, because loading one can run any code. Where the file came from, load the "
                      "original data instead (pd.read_csv, ...) and save it again with pipekit's save_pickle")


def _load_parquet(p: Path) -> Any:
    import pyarrow.parquet as pq

    from pipekit.core.errors import PipekitError
    from pipekit.data.items import check_table_nesting
    from pipekit.tabular.core import Tabular, check_parquet_size, processing_path

    check_table_nesting(p, "parquet")
    metadata = pq.read_metadata(p).metadata or {}
    beside = processing_path(p)
    if SAVED_KEY not in metadata:
        if beside.exists():  # a table an earlier pipekit's Tabular.save wrote, its processing beside it
            return Tabular.load(p)  # which checks the table's size
        raise ExportError(f"load_pickle: {str(p)!r} is a Parquet file that save_pickle did not write, and no fitted "
                          f"processing ({beside.name}) is beside it; read it with pd.read_parquet or pl.read_parquet")
    try:
        record = json.loads(metadata[SAVED_KEY])
        kind = record["kind"]
        if kind == TABLE_KIND:  # Tabular.save's table: Tabular.load finds its processing and checks it is the one
            return Tabular.load(p)
        name = record["name"]
        if kind not in _FRAMES:
            raise ValueError(f"kind {kind!r}")
        if not (name is None or isinstance(name, str if kind.startswith("polars") else (str, int, float))):
            raise ValueError(f"a {kind} cannot be named {str(name)[:60]!r}")
    except PipekitError:
        raise
    except Exception as e:  # noqa: BLE001  (whatever a damaged record raises)
        raise ExportError(f"load_pickle: {str(p)!r}: its save_pickle record is damaged ({type(e).__name__}: {e})") from None
    check_parquet_size(p)  # a table's, Tabular.load checks
    try:
        table = pq.read_table(p)
        if kind.startswith("pandas"):
            frame = table.to_pandas()
        else:
            import polars as pl

            frame = pl.DataFrame(pl.from_arrow(table))
    except (PipekitError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001  (pyarrow obeys the file's own description of its pandas columns)
        raise ExportError(f"load_pickle: {str(p)!r} could not be read back ({type(e).__name__}: {str(e)[:200]}): the "
                          "file is damaged or was not written by save_pickle; if you trust it, read it with "
                          "pd.read_parquet or pl.read_parquet") from None
    if kind.endswith("DataFrame"):
        return frame
    if frame.shape[1] != 1:
        raise ExportError(f"load_pickle: {str(p)!r}: its save_pickle record says a {kind} but the file holds "
                          f"{frame.shape[1]} columns, not one: the file is damaged or was not written by save_pickle")
    return frame.iloc[:, 0].rename(name) if kind == "pandas.Series" else frame.to_series(0).alias(name or "")
