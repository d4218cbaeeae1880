"""``TabularProcessor``: column roles + procs + target encoding, one component fitted on the training rows.

It validates the input columns, fits the procs on the training rows and applies them to any frame,
eager or lazy. ``Tabular`` uses it for in-memory tables; ``process_to_parquet`` uses the same object
on a lazy scan with the streaming engine for tables larger than memory. Its parameters are the procs
and the column roles; what fitting learns (``cat_names_``, ``cont_names_``, ``y_kind_``, ``y_vocab_``,
``c_`` and each proc's state) is saved with ``pipekit.save`` and read back with ``pipekit.load``.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.tabular import Categorify, Normalize
    >>> df = pl.DataFrame({"a": ["x", "y", "x"], "b": [1.0, 2.0, 3.0], "y": ["no", "yes", "no"]})
    >>> proc = TabularProcessor([Categorify(), Normalize()], ["a"], ["b"], ["y"])
    >>> out = proc.fit_transform(df, np.array([True, True, False]))
    >>> proc.y_vocab_, out["a"].to_list(), out["y"].to_list()
    (['no', 'yes'], [1, 2, 1], [0, 1, 0])
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl

from pipekit.core.component import Component
from pipekit.core.errors import DataError, ExportError, FieldError, ParameterError, warn
from pipekit.core.validate import (BOOL, Is, Options, check_state, is_pandas, names_shown, past_float32,
                                   unknown_names)
from pipekit.data.blocks import (CategoryBlock, MultiCategoryBlock, RegressionBlock, number_classes_hint,
                                 warn_near_labels, warn_number_classes)
from pipekit.data.transform import as_list
from pipekit.tabular.procs import (DEFAULT_PROCS, FLOAT_TYPES, NA_TOKEN, Procs, Categorify, CategoryMap, ColumnNames, FillMissing,
                                   Normalize, TabularProc, check_fitted_procs, denormalize, as_stored, collect, distinct_train_values, float32_overflow_error,
                                   make_procs, nested_column_error, present, schema_of, with_learned_float)

if TYPE_CHECKING:
    from pipekit.tabular.core import FittedProcs

_SPLIT_COL = "__pipekit_train__"
#: the procs a processing holds at most one of (a second FillMissing finds nothing left to fill, and is harmless)
ONCE = (Categorify, Normalize)
#: the names add_datepart gives a date's parts (after the date column's own prefix)
_DATE_PART = re.compile(r".*(Year|Month|Week|Day|Dayofweek|Dayofyear|Is_(month|quarter|year)_(end|start)|Hour|Minute|"
                        r"Second|Elapsed)")
F = TypeVar("F", pl.DataFrame, pl.LazyFrame)
#: an integer target read as a regression with at most this many distinct values is warned about (classes, more often)
_FEW_INTEGERS = 10
#: how a table asks for a regression of its target
_REGRESSION = "y_block=RegressionBlock()"


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def aligned_series(name: str, values: np.ndarray, frame: pl.DataFrame) -> pl.Series:
    """``values`` as a Series chunked like the columns of ``frame``: a column added with other chunk
    boundaries makes Polars copy the whole frame into single chunks (seconds and GBs on a 10M-row CSV
    read in parallel, which arrives in hundreds of chunks)."""
    chunks = frame.to_series(0).get_chunks() if frame.width else []
    if len(chunks) <= 1:
        return pl.Series(name, values)
    ends = np.cumsum([len(s) for s in chunks])
    return pl.concat([pl.Series(name, v) for v in np.split(values, ends[:-1])], rechunk=False)


def _as_categorical(frame: F, columns: Sequence[str]) -> F:
    return frame.with_columns(pl.col(c).cast(pl.Categorical(pl.Categories.random())) for c in columns)


def text_not_numbers(frame: pl.DataFrame | pl.LazyFrame, columns: Sequence[str]) -> dict[str, tuple[Any, int, int]]:
    """The continuous ``columns`` holding text that does not read as a number (a blank is missing, not text), each
    with its first such value, that value's row and how many rows are alike: one aggregation, streaming on a lazy
    scan.

    >>> text_not_numbers(pl.DataFrame({"age": ["39", " ?", "50", "?"]}), ["age"])
    {'age': (' ?', 1, 2)}
    """
    if not columns:
        return {}
    aggs = []
    for i, c in enumerate(columns):
        text = pl.col(c).cast(pl.String)
        bad = text.is_not_null() & (text.str.strip_chars() != "") & \
            text.str.strip_chars().cast(pl.Float64, strict=False).is_null()
        aggs += [bad.sum().alias(f"n{i}"), bad.arg_true().first().alias(f"r{i}"), text.filter(bad).first().alias(f"v{i}")]
    found = collect(frame.select(aggs)).row(0, named=True)
    return {c: (found[f"v{i}"], found[f"r{i}"], found[f"n{i}"]) for i, c in enumerate(columns) if found[f"n{i}"]}


def _beyond_float32(frame: pl.DataFrame | pl.LazyFrame, columns: Sequence[str], train: pl.Expr) -> list[str]:
    """The continuous ``columns`` with a finite value beyond :data:`~pipekit.core.validate.FLOAT32_EXACT` in magnitude in the training rows
    (text read as numbers, as ``_prepare`` reads it): as float32 their neighbouring whole numbers would merge (at
    1e12 one float32 spans 65,536 of them), so they are processed as Float64. One aggregation, streaming on a lazy
    scan; True/False and columns with no values are never such columns."""
    schema = schema_of(frame)
    numbers = {}
    for c in columns:
        dt = schema[c]
        if _is_text(dt):
            numbers[c] = pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        elif dt.is_numeric():
            numbers[c] = pl.col(c).cast(pl.Float64)
    if not numbers:
        return []
    found = collect(frame.select((train & past_float32(e)).any().alias(c)
                                 for c, e in numbers.items())).row(0, named=True)
    return [c for c in numbers if found[c]]


def _check_numbers(frame: pl.DataFrame | pl.LazyFrame, columns: Sequence[str]) -> None:
    """Refuse text in continuous ``columns`` that does not read as a number (:func:`text_not_numbers`), naming the
    column, the first such value and its row."""
    for c, (value, row, n) in text_not_numbers(frame, columns).items():
        raise DataError(f"continuous column {c!r} holds text that is not a number, e.g. {value!r} at row {row} ({n} "
                        f"such rows); clean the column or list it in cat_names.{_decimal_comma_hint(c, value)}")


#: a number written with a decimal comma, thousands grouped by dots or not ('12,5', '-0,25', '1.234,5'), as a
#: European spreadsheet's CSV export writes numbers
_DECIMAL_COMMA = re.compile(r"-?(\d+|\d{1,3}(\.\d{3})+),\d+")
#: a number that reads as well with a thousands comma ('52,300', as a US spreadsheet writes 52300): one to three
#: digits, the first not 0, then a comma and three digits; it gets no decimal-comma hint, which would read it as 52.3
_THOUSANDS_COMMA = re.compile(r"-?[1-9]\d{0,2},\d{3}")


def _decimal_comma_hint(c: str, value: Any) -> str:
    """Where ``value`` (text of continuous column ``c`` that is not a number) is a number written with a decimal
    comma, how to read the column as numbers; otherwise nothing. Text that reads as well with a thousands comma
    ('52,300': 52300 or 52.3) gets nothing, as following the hint could silently read 52300 as 52.3.

    >>> _decimal_comma_hint("x", "1.234,5").startswith(" The text reads as a number written with a decimal comma")
    True
    >>> _decimal_comma_hint("x", "12,5,1"), _decimal_comma_hint("x", "abc"), _decimal_comma_hint("x", "52,300")
    ('', '', '')
    """
    if not (isinstance(value, str) and _DECIMAL_COMMA.fullmatch(value.strip())
            and not _THOUSANDS_COMMA.fullmatch(value.strip())):
        return ""
    return (" The text reads as a number written with a decimal comma: read the file with pandas.read_csv(path, "
            "sep=';', decimal=',') and pass the DataFrame, or convert the column first (Polars: "
            f"pl.col({c!r}).str.replace_all('.', '', literal=True).str.replace(',', '.').cast(pl.Float64)).")


def warn_missing_numbers(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    """Warn of continuous ``columns`` holding missing values (null, NaN or inf) in the training rows of a net's data
    processed without FillMissing, naming each and its count: a net reads them as NaN, and its first training batch
    stops with a NaN loss (forests and LightGBM take missing values as they are, so only a net's learner warns)."""
    if not columns:
        return
    counts = frame.select((~pl.col(c).cast(pl.Float64).is_finite()).fill_null(True).sum().alias(c)
                          for c in columns).row(0, named=True)
    found = [f"{c!r} ({n} of {len(frame)} rows)" for c, n in counts.items() if n]
    if found:
        several = len(found) > 1
        warn(f"continuous column{'s' if several else ''} {', '.join(found)} hold{'' if several else 's'} null, NaN or "
             "inf values, and procs has no FillMissing to fill them (a net would read NaN, and its loss be NaN): add "
             "FillMissing to procs (procs=[Categorify, FillMissing, Normalize]), or fill or drop those rows first")


#: the types a class target's values decode to, by the name ``y_type_`` saves: the column type a decoded target
#: has, and how a class written as text in ``y_vocab_`` (as Polars writes the column's values) reads back
CLASS_TYPES: dict[str, tuple[pl.DataType, Callable[[str], Any]]] = {
    "str": (pl.String(), str), "bool": (pl.Boolean(), {"false": False, "true": True}.__getitem__),
    "int": (pl.Int64(), int), "float": (pl.Float64(), float)}


def class_type(dtype: pl.DataType) -> str:
    """The name in :data:`CLASS_TYPES` of the type a class target of column type ``dtype`` decodes to: a bool
    column's classes are ``False``/``True``, an integer column's ints, a float column's floats; anything else text."""
    return "bool" if dtype == pl.Boolean else "int" if dtype.is_integer() else "float" if dtype.is_float() else "str"


def typed_classes(vocab: Sequence[Any], kind: str) -> list[Any]:
    """``vocab`` (classes as text) read back as the ``kind`` of :data:`CLASS_TYPES` (a ValueError for text that
    is not such a value: a damaged file).

    >>> typed_classes(["false", "true"], "bool"), typed_classes(["0", "1", "10"], "int")
    ([False, True], [0, 1, 10])
    """
    read = CLASS_TYPES[kind][1]
    out = []
    for v in vocab:
        try:
            if not isinstance(v, str):
                raise TypeError
            out.append(read(v))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"class {str(v)[:40]!r} is not a value of type {kind} written as text") from None
    return out


def column_names(names: Any) -> Any:
    """Column names given as one name, a list or None, as a list (anything else is left for the check). A name
    given as an integer (the columns of ``pd.DataFrame(array)`` are 0, 1, 2, ...) is its text, ``'0'``: a pandas
    frame's columns are named so as they become a table's, and a row's (a Series, a dict) as it is read.

    >>> column_names([0, "age", np.int64(2)]), column_names(3), column_names(None)
    (['0', 'age', '2'], ['3'], [])
    """
    if names is None:
        return []
    if isinstance(names, str) or _integer_name(names):
        names = [names]
    return [str(c) if _integer_name(c) else c for c in names] if isinstance(names, (list, tuple)) else names


def _integer_name(c: Any) -> bool:
    """Whether ``c`` is a column name given as an integer (a bool is not one)."""
    return isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_))


def _table_proc(p: Any) -> Any:
    """``p``, or the table proc it stands for where its class says one through a ``table_proc(given)`` class method,
    as a table proc given in a DataBlock's ``batch_tfms`` says its batch transform through ``batch_transform(pieces)``
    (:func:`~pipekit.data.transform.grouped_batch_tfms`): fastai has one ``Normalize`` for images and tables, and
    where ``from pipekit.vision.all import *`` came after ``from pipekit.tabular.all import *``,
    ``procs=[Categorify, FillMissing, Normalize]`` names pipekit.vision's. A class is made with its defaults first."""
    make = getattr(p, "table_proc", None)
    return make(p() if isinstance(p, type) else p) if callable(make) else p


_NAMES = Is(lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v), "column names (a name or a list)")
_COLUMNS = Is(lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v), "a list of column names")
_DISTINCT_COLUMNS = Is(lambda v: _COLUMNS.accepts(v) and len(set(v)) == len(v), "a list of distinct column names")
#: what a fitted processor read from a file must hold to encode new rows (``TabularProcessor.state_from_data``)
_DAMAGED = "the file is damaged or was not written by pipekit: save or export the fitted model again"
_FITTED_STATE = {
    "cat_names_": _COLUMNS, "cont_names_": _COLUMNS,
    "y_kind_": Options("category", "regression", "none"),
    "y_vocab_": Is(lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
                   "the target's classes (a list of text) or null"),
    "y_type_": Options(*CLASS_TYPES),
    "c_": Is(lambda v: type(v) is int and v >= 0, "the target's size (an integer)"),
    # the categorical columns with no missing values in the training rows (selected by name: one named twice would
    # be selected twice, which Polars refuses)
    "cat_complete_": _DISTINCT_COLUMNS,
    # the continuous inputs that held True/False in the training rows (null: not known, a file written before it)
    "cont_bools_": Is(lambda v: v is None or _DISTINCT_COLUMNS.accepts(v), "a list of distinct column names or null"),
    # the continuous inputs processed as Float64 (values float32 cannot hold as whole units in the training rows)
    "cont_float64_": _DISTINCT_COLUMNS,
    # the float type ("Float32", "Float64") of the column a class target's classes were learned from, as
    # Categorify.floats_ records its columns' (a float64 target of classes learned from Float32 values is then also
    # looked up by its float32: the values that column was shrunk from); null for classes of any other column
    "y_float_": Is(lambda v: v is None or v in FLOAT_TYPES, f"null or one of {FLOAT_TYPES}"),
}


def _repeated_rows(rows: np.ndarray, n: int) -> np.ndarray | None:
    """The positions of the rows listed more than once in ``rows`` (positions into a table of ``n`` rows, in
    range), each as many times as it is listed beyond the first; None when no row repeats."""
    counts = np.bincount(rows.astype(np.int64, copy=False), minlength=n)
    extra = np.maximum(counts - 1, 0)
    return np.repeat(np.arange(n, dtype=np.int64), extra) if extra.any() else None


def _declared_order(values: pl.Series, declared: Sequence[Any]) -> list[str] | None:
    """The training ``values`` of a categorical target as text, in the order its ``declared`` categories give them
    (a category never seen in training is no class, as fastai's strict ``CategoryMap`` leaves it out); None where
    the categories do not read as the column's values (then the classes are sorted)."""
    try:
        order = pl.Series(list(declared), strict=False).cast(values.dtype, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        return None
    listed, seen = order.to_list(), set(values.to_list())
    if None in listed or len(set(listed)) != len(listed) or not seen <= set(listed):
        return None
    return pl.Series([v for v in listed if v in seen], dtype=values.dtype).cast(pl.String).to_list()


class TabularProcessor(Component):
    """Column roles, procs and target encoding; ``transform`` works on eager and lazy frames.

    ``y_block``: None (text, ``Categorical``/``Enum`` and bool targets are classes, and so is a pandas categorical
    column of numbers, which :meth:`fit_transform` is told of; other numbers are regression), "category", "regression",
    a ``CategoryBlock`` (its ``vocab`` fixes the classes) or a ``RegressionBlock``. ``skipinitialspace``: the
    table's CSV file was read with the spaces after each comma dropped from its text values
    (``TabularDataLoaders.from_csv``), so new CSV files are read so too (``pipekit.tabular.core.read_new``) and their
    values are the training values; it is saved with the processing. Fitted attributes:
    ``cat_names_`` (with the ``<col>_na`` flags FillMissing adds), ``cont_names_``, ``y_kind_``
    ("category", "regression" or "none"), ``y_vocab_`` (the classes, as text), ``y_type_`` (what they decode
    to, by the target column's type: "str", "bool", "int" or "float"), ``c_``, ``cat_complete_`` (the categorical
    columns with no missing value in the training rows; none in files written before it), ``cont_bools_`` (the
    continuous inputs that held True/False in the training rows, so that True/False in new rows where numbers were
    trained on is warned about; none in files written before it), ``cont_float64_`` (the continuous inputs with a
    training value beyond 2**24 in magnitude, where float32 merges neighbouring whole numbers: they are processed as
    Float64, ``Normalize`` scales them in float64 to Float32 values, and without it they stay Float64; every other
    continuous input is Float32, and files written before it name none), ``y_float_`` (the float type, ``'Float32'``
    or ``'Float64'``, of the column a class target's classes were learned from; None for any other target and in
    files written before it, whose float classes are matched exactly); ``classes_`` gathers the input
    vocabularies and ``y_classes_`` gives the target's classes in their own type (``[False, True]``).

    >>> import numpy as np, polars as pl
    >>> from pipekit.tabular import Categorify, FillMissing, Normalize, TabularProcessor
    >>> df = pl.DataFrame({"job": ["a", "b", "a", "b"], "age": [20.0, None, 40.0, 30.0],
    ...                    "paid": [True, False, True, False]})
    >>> proc = TabularProcessor([FillMissing(), Categorify(), Normalize()], cat_names="job", cont_names="age",
    ...                         y_names="paid")
    >>> out = proc.fit_transform(df, np.array([True, True, True, False]))   # fitted on the first three rows
    >>> proc.cat_names_, proc.cont_names_, proc.y_kind_, proc.y_classes_, proc.classes_["job"]
    (['job', 'age_na'], ['age'], 'category', [False, True], ['#na#', 'a', 'b'])
    >>> new = proc.transform(pl.DataFrame({"job": ["b"], "age": [30.0]}))
    >>> new["job"].to_list(), new["age_na"].to_list(), [round(v, 4) for v in new["age"].to_list()]
    ([2], [1], [0.0])
    """

    registry_kind = "proc"
    param_constraints = {
        "procs": Is(lambda v: all(isinstance(p, TabularProc) for p in v),
                    "TabularProc classes or instances (Categorify, FillMissing, Normalize)"),
        "cat_names": _NAMES, "cont_names": _NAMES, "y_names": _NAMES,
        "y_block": Is(lambda v: v is None or v in ("category", "regression") or isinstance(
            v, (CategoryBlock, RegressionBlock)), "None, 'category', 'regression', a CategoryBlock or a RegressionBlock"),
        "skipinitialspace": BOOL}
    # added to the record in format 3; a record without them (all of format 2) reads new CSV files as they are and
    # decodes the target's classes as text, and the processing's fingerprint stays what format 2 files stored
    # cat_complete_ came later still: a record without it names no column as complete in training, so nothing
    # missing in new rows is news; and cont_bools_ after it: a record without it names no input as True/False in
    # training, so True/False in a number column of new rows is warned about; and cont_float64_ after that: a
    # record without it processes every continuous input as Float32, as pipekit did when it was written
    record_defaults = {"params.skipinitialspace": False, "state.y_type_": "str", "state.cat_complete_": [],
                       "state.cont_bools_": [], "state.cont_float64_": [], "state.y_float_": None}
    #: state fields that change how labels decode or what is warned about, not how inputs are encoded: outside
    #: ``procs_signature``, so a model saved before them still matches the same processing fitted now
    signature_ignores: frozenset[str] = frozenset({"y_type_", "cat_complete_", "cont_bools_", "y_float_"})
    cat_names_: list[str]
    cont_names_: list[str]
    y_kind_: str
    y_vocab_: list[str] | None
    y_type_: str
    c_: int
    cat_complete_: list[str]
    cont_bools_: list[str] | None
    cont_float64_: list[str]
    y_float_: str | None
    #: the target's classes as Categorify encodes them (:attr:`_target_classes`), not recorded
    _y_classes: CategoryMap | None

    def __init__(self, procs: Procs = DEFAULT_PROCS,
                 cat_names: str | Sequence[str] | None = None, cont_names: str | Sequence[str] | None = None,
                 y_names: str | Sequence[str] | None = None, y_block: Any = None,
                 skipinitialspace: bool = False) -> None:
        # Dependency order whatever the order given: fill (adds _na columns), categorify, normalise.
        # Lists inside the list are flattened (as every parameter taking procs or transforms accepts them); a file's
        # record lists proc records only, so where they were is kept for state_from_data to refuse
        self._list_entries = [i for i, p in enumerate(procs) if isinstance(p, (list, tuple))] \
            if isinstance(procs, (list, tuple)) else []
        self.procs = make_procs([_table_proc(p) for p in as_list(procs)])
        self.cat_names, self.cont_names = column_names(cat_names), column_names(cont_names)
        if isinstance(y_block, type) and issubclass(y_block, (CategoryBlock, RegressionBlock)):
            y_block = y_block()  # fastai's y_block=CategoryBlock, the class, as a DataBlock's blocks take it
        self.y_names, self.y_block = column_names(y_names), y_block
        self.skipinitialspace = skipinitialspace
        if isinstance(y_block, MultiCategoryBlock) or y_block is MultiCategoryBlock:
            # fastai's multi-label tables: the net, its loss and its decoding here take one target kind per column
            each = f"each of {self.y_names}" if len(self.y_names) > 1 else "each label column"
            raise ParameterError(f"TabularProcessor: y_block={y_block!r} (several labels per row) is not supported "
                                 f"for tables; train one classifier per label instead: y_names= {each} in turn, "
                                 "with y_block=CategoryBlock()")
        self.check_params()
        for role, names in (("cat_names", self.cat_names), ("cont_names", self.cont_names), ("y_names", self.y_names)):
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                raise ParameterError(f"{role} lists {twice} more than once; give each column once.")
        both = set(self.cat_names) & set(self.cont_names)
        if both:
            raise ParameterError(f"columns {sorted(both)} are in both cat_names and cont_names; give each column one role.")
        inputs_as_y = set(self.y_names) & (set(self.cat_names) | set(self.cont_names))
        if inputs_as_y:
            raise ParameterError(f"target column(s) {sorted(inputs_as_y)} are also listed as inputs; remove them "
                                 "from cat_names/cont_names (a model must not see its target).")
        if not self.cat_names and not self.cont_names:
            raise ParameterError("Tabular: give at least one input column in cat_names or cont_names.")
        kinds = [type(p) for p in self.procs if isinstance(p, ONCE)]
        twice = sorted({k.__name__ for k in kinds if kinds.count(k) > 1})
        if twice:
            raise ParameterError(f"procs lists {twice} more than once; give each once (a second would code the codes "
                                 "or scale the scaled values)")

    def fitted_procs(self, where: str = "procs") -> FittedProcs:
        """The fitted procs in the order they ran (a list), named as a table's ``to.procs`` names them:
        ``.categorify``, ``.fill_missing``, ``.normalize``, and a name one of them has (``.means``, ``.na_dict``).
        ``where`` is what they are read as (``dls.procs`` of a table's loaders), named in the error of a name none
        of them has."""
        from pipekit.tabular.core import FittedProcs  # the table's views of the procs build on this processor

        return FittedProcs.of(self, where)

    # ------------------------------------------------------------------ validation
    def check_columns(self, columns: Sequence[str], where: str = "Tabular", need_y: bool = True) -> None:
        """Refuse data without a column the procs need: every missing one is named at once, by its role, with
        what may explain it (a table read with the wrong separator, date parts not added to new rows)."""
        have = set(columns)
        said, gone = [], []
        for role, names in (("cat_names", self.cat_names), ("cont_names", self.cont_names),
                            ("y_names", self.y_names if need_y else [])):
            missing = [c for c in names if c not in have]
            if missing:
                said.append(f"{missing} listed in {role}")
                gone += missing
        if not said:
            return
        hints = []
        if len(columns) == 1 and any(sep in columns[0] for sep in (";", "\t", "|")):
            hints.append(f"the data has one column, {columns[0][:40]!r}{'...' if len(columns[0]) > 40 else ''}: "
                         "the file may separate its columns with "
                         "another character than a comma; read it with that separator (e.g. "
                         "pl.read_csv(path, separator=';')) and pass the frame")
        numbers = [c for c in gone if c.isdigit()]
        if numbers and not hints:
            hints.append(f"a column name given as an integer ({numbers[0]}) is read as its text ({numbers[0]!r}), as a "
                         "pandas frame's integer column names (pd.DataFrame(array)) are; name columns of the data")
        parts = [c for c in gone if _DATE_PART.fullmatch(c)]
        if parts and not hints:
            hints.append(f"{parts[:6]} may be the parts add_datepart makes of a date: call add_datepart on the new "
                         "rows' date column as on the training rows")
        raise DataError(f"{where}: column(s) {'; and '.join(said)} are not in the data; "
                        f"{unknown_names(gone, list(columns))}." + "".join(f" Note: {h}." for h in hints))

    def _prepare(self, frame: F, check: bool = True) -> F:
        """Cast continuous columns to Float32, those of ``cont_float64_`` to Float64 (NaN -> null), failing early on
        text or dates; with ``check``, text that is not a number and values beyond float32 are refused by row (on a
        lazy scan, one streaming pass over the text columns and one over the float64 and text ones), as on an eager
        frame."""
        schema = schema_of(frame)
        if check:
            _check_numbers(frame, [c for c in self.cont_names if _is_text(schema[c])])
        exprs, wide = [], []
        float64 = set(vars(self).get("cont_float64_") or ())
        nans: set[str] = set()  # float columns of an eager frame holding NaN, found in one pass
        if isinstance(frame, pl.DataFrame):
            floats = [c for c in self.cont_names if schema[c].is_float()]
            if floats:
                nans = {c for c, n in zip(floats, frame.select(pl.col(c).is_nan().any() for c in floats).row(0)) if n}
        for c in self.cont_names:
            dt = schema[c]
            to = pl.Float64 if c in float64 else pl.Float32
            if isinstance(dt, pl.Duration):  # a length of time is a number once given a unit
                raise DataError(f"continuous column {c!r} holds {dt} values (lengths of time); make them numbers "
                                f"first, e.g. seconds: df[{c!r}] = df[{c!r}].dt.total_seconds() (pandas), "
                                f"pl.col({c!r}).dt.total_seconds() (Polars).")
            if dt in (pl.Date, pl.Time) or isinstance(dt, pl.Datetime):
                raise DataError(f"continuous column {c!r} holds {dt} values; turn dates into numbers with "
                                f"add_datepart(df, {c!r}) first.")
            if _is_text(dt):
                wide.append(c)
                exprs.append(pl.col(c).cast(pl.String).str.strip_chars().replace("", None)
                             .cast(to, strict=False).alias(c))
            elif dt.is_float():
                if dt != pl.Float32:
                    wide.append(c)
                if dt != to or not isinstance(frame, pl.DataFrame) or c in nans:
                    exprs.append(pl.col(c).cast(to).fill_nan(None).alias(c))  # else already what the procs need
            elif dt.is_numeric() or dt == pl.Boolean:  # no NaN to look for
                exprs.append(pl.col(c).cast(to).alias(c))
            elif dt == pl.Null:
                exprs.append(pl.col(c).cast(to))
            elif (err := nested_column_error(c, dt, "cont_names")) is not None:
                raise err
            else:
                raise DataError(f"continuous column {c!r} has type {dt}, which is not numeric; list it in cat_names.")
        if check and (err := float32_overflow_error(frame, wide)) is not None:
            raise err  # as float32 they would be inf, taken for missing values
        return frame.with_columns(exprs) if exprs else frame

    def _check_targets(self, frame: pl.DataFrame | pl.LazyFrame) -> None:
        """Refuse a target with nulls (or NaN in a float column), naming the column and the first row (one
        streaming pass on a scan), and how to drop those rows in pandas and in Polars."""
        ys = self.y_names
        if not ys:
            return
        schema = schema_of(frame)
        floats = [c in schema and schema[c].is_float() for c in ys]
        missing = [pl.col(c).is_null() | ~pl.col(c).is_finite() if f else pl.col(c).is_null() for c, f in zip(ys, floats)]
        infinite = [pl.col(c).is_infinite().any() if f else pl.lit(False) for c, f in zip(ys, floats)]
        k = len(ys)
        row = collect(frame.select([m.sum().alias(f"n{i}") for i, m in enumerate(missing)] +
                                   [m.arg_true().first().alias(f"f{i}") for i, m in enumerate(missing)] +
                                   [m.alias(f"i{i}") for i, m in enumerate(infinite)])).row(0)
        for c, f, n, first, inf in zip(ys, floats, row[:k], row[k:2 * k], row[2 * k:]):
            if n:
                keep = f"pl.col({c!r}).is_finite()" if f else f"pl.col({c!r}).is_not_null()"
                # pandas' dropna drops NaN and None, not inf
                pandas = f"df[np.isfinite(df[{c!r}])]" if inf else f"df.dropna(subset=[{c!r}])"
                raise DataError(f"target column {c!r} has {n} missing or infinite value(s) (null, NaN or inf: a log "
                                f"of zero is -inf), first at row {first}; drop those rows (pandas: {pandas}; Polars: "
                                f"df.filter({keep})) or fill them before processing the table.")

    # ------------------------------------------------------------------ fitting
    def _fit_targets(self, frame: pl.DataFrame | pl.LazyFrame, train: pl.Expr,
                     class_targets: Mapping[str, Sequence[Any] | None] | None = None) -> None:
        """Learn what the target is. Without a ``y_block``, one target column is classes when it holds text, a
        Polars ``Categorical``/``Enum`` or True/False, or is named in ``class_targets`` (a pandas categorical
        column, whose numbers Polars reads as plain numbers: ``pd.Categorical(df['education-num'] // 4)``); its
        classes are the training values, decoded as the column's type (ints here), in the order the
        categorical declares them (those seen in training; sorted where ``class_targets`` gives none), as
        fastai's ``TabularPandas`` makes a categorical target's classes. Any other numbers are a regression (a
        few distinct integers warn that they may be classes)."""
        class_targets = class_targets or {}
        y = self.y_block
        kind = "category" if isinstance(y, CategoryBlock) else "regression" if isinstance(y, RegressionBlock) else y
        vocab = y.vocab if isinstance(y, CategoryBlock) else None
        self.y_vocab_ = [str(v) for v in vocab] if vocab else None
        self.y_type_ = "str"
        self.y_float_ = None
        if not self.y_names:
            self.y_kind_, self.c_ = kind or "none", 0
            return
        schema = schema_of(frame)
        dt = schema[self.y_names[0]]
        declared = class_targets.get(self.y_names[0]) if len(self.y_names) == 1 else None
        if kind is None:
            classes = len(self.y_names) == 1 and self.y_names[0] in class_targets
            kind = "category" if (_is_text(dt) or dt == pl.Boolean or classes) else "regression"
            if kind == "regression" and dt.is_integer() and len(self.y_names) == 1:
                self._warn_few_integers(frame, train)
        self.y_kind_ = kind
        if kind == "category":
            if len(self.y_names) != 1:
                each = " and ".join(f"y_names={c!r}" for c in self.y_names)
                raise ParameterError(f"a classification target is one column, got y_names={self.y_names}; train one "
                                     f"learner per target column instead ({each}, each with "
                                     "y_block=CategoryBlock()); several labels in one model (MultiCategoryBlock) are "
                                     "not supported for tables.")
            # predictions decode to the column's own values (False/True, ints), as the user wrote them
            self.y_type_ = class_type(dt)
            self.y_float_ = ("Float32" if dt == pl.Float32 else "Float64") if dt.is_float() else None
            if vocab and self.y_type_ != "str":  # the classes given, written as the column's values are
                self.y_vocab_ = as_stored(self.y_names[0], vocab, dt, f"CategoryBlock(vocab=...) of target "
                                          f"{self.y_names[0]!r}")
            if self.y_vocab_ is None and isinstance(dt, pl.Enum):  # declared categories, in their order
                self.y_vocab_ = dt.categories.to_list()
            if self.y_vocab_ is None:
                vals = distinct_train_values(frame, self.y_names[:1], train)[self.y_names[0]]
                self.y_vocab_ = _declared_order(vals, declared) if declared is not None else None
                if self.y_vocab_ is None:
                    self.y_vocab_ = (vals.cast(pl.String) if _is_text(vals.dtype) else vals).sort().cast(
                        pl.String).to_list()
                if self.y_type_ == "str":  # classes learned from text: '<50k' and '<50k ' would be two
                    warn_near_labels(self.y_vocab_, f"training targets of {self.y_names[0]!r}")
            if len(self.y_vocab_) < 2:
                raise DataError(f"target column {self.y_names[0]!r} has a single class {self.y_vocab_} in the "
                                "training rows; a classifier needs at least two.")
            self.c_ = len(self.y_vocab_)
        else:
            for c in self.y_names:
                if not (schema[c].is_numeric() or schema[c] == pl.Boolean):
                    if y is not None:  # asked for: the parameter is at fault, not the column
                        raise ParameterError(f"y_block={y!r} makes a regression target, but target {c!r} has type "
                                             f"{schema[c]}; pass y_block='category' to classify, or cast it to "
                                             "numbers.")
                    raise DataError(f"regression target {c!r} has type {schema[c]}; pass y_block='category' to "
                                    "classify, or cast it to numbers.")
            self.c_ = len(self.y_names)

    def _warn_few_integers(self, frame: pl.DataFrame | pl.LazyFrame, train: pl.Expr) -> None:
        """Warn when an integer target read as a regression (no ``y_block`` given) holds only a few distinct values
        in the training rows (a 0/1 ``Survived``): more often classes written as numbers than a quantity."""
        c = self.y_names[0]
        values = sorted(distinct_train_values(frame, [c], train)[c].to_list())
        if 2 <= len(values) <= _FEW_INTEGERS:
            warn(f"target column {c!r} holds only the integers {values} in the training rows and is read as a "
                 "regression (MSELossFlat, one output); for classes pass y_block=CategoryBlock(), or "
                 "y_block=RegressionBlock() to say it is a regression")

    def _warn_number_classes(self) -> None:
        """Warn when the classes learned are fractional numbers, many of them (a regression's target under
        ``y_block=CategoryBlock()``)."""
        if self.y_kind_ == "category" and self.y_type_ == "float" and self.y_block is not None and \
                not (isinstance(self.y_block, CategoryBlock) and self.y_block.vocab):
            warn_number_classes(self.y_classes_ or [], f"classes of target {self.y_names[0]!r}", _REGRESSION)

    def _target_exprs(self, frame: pl.DataFrame | pl.LazyFrame) -> list[pl.Expr]:
        if self.y_kind_ == "category" and self.y_vocab_ is not None:
            # classes are looked up by value the way Categorify looks categories up, without its #na# code:
            # an unseen class stays null (and is refused by _check_unseen_labels)
            c = self.y_names[0]
            return [(Categorify.encode_values(c, self._target_classes, schema_of(frame)[c],
                                              isinstance(frame, pl.DataFrame)) - 1).alias(c)]
        if self.y_kind_ == "regression":
            return [pl.col(c).cast(pl.Float32).alias(c) for c in self.y_names]
        return []

    @property
    def _target_classes(self) -> CategoryMap:
        """``#na#`` then the target's classes, as the vocabulary Categorify encodes them with, marked with the float
        type ``y_float_`` records they were learned from: built once, when the target is fitted or read from a file
        (:meth:`_build_target_classes`), so what encoding works out of them (their numbers,
        :func:`~pipekit.tabular.procs.float_keys`) is not worked out again for each new row."""
        kept = vars(self).get("_y_classes")
        return kept if kept is not None else self._build_target_classes()

    def _build_target_classes(self) -> CategoryMap:
        """The vocabulary of :attr:`_target_classes`, made from ``y_vocab_`` and ``y_float_`` and kept."""
        learned = vars(self).get("y_float_") if self.y_type == "float" else None
        self._y_classes = with_learned_float(CategoryMap([NA_TOKEN, *(self.y_vocab_ or [])], name=self.y_names[0]),
                                             learned)
        return self._y_classes

    def _apply(self, frame: F, train: pl.Expr | None = None, names: ColumnNames | None = None,
               text: Sequence[str] = ()) -> F:
        """The procs' expressions over ``frame``; with ``train``, each proc is fitted first (on what the
        procs before it produced). The ``text`` columns of an eager frame become Categoricals with categories
        of their own right before Categorify: each string is hashed once, in parallel over the columns, so
        learning the vocabularies and encoding work on integer codes, and the codes are not held while the
        procs before it fit."""
        # a lazy query is checked when it is fitted; applying the fitted processing to one reads nothing
        frame = self._prepare(frame, check=train is not None or isinstance(frame, pl.DataFrame))
        for proc in self.procs:
            if text and isinstance(proc, Categorify):
                frame, text = _as_categorical(frame, text), ()
            if train is not None and names is not None:
                proc.setup(frame, train, names)
            frame = frame.with_columns(proc.expressions(schema_of(frame), eager=isinstance(frame, pl.DataFrame)))
        return _as_categorical(frame, text) if text else frame

    def _fit(self, frame: F, train: pl.Expr, keep: Sequence[str] = (), text: Sequence[str] = (),
             class_targets: Mapping[str, Sequence[Any] | None] | None = None) -> F:
        names = ColumnNames(list(self.cat_names), list(self.cont_names))
        # which categorical columns had missing values to learn from: one missing only in new rows is warned about
        schema = schema_of(frame)
        cats = list(self.cat_names) if any(isinstance(p, Categorify) for p in self.procs) else []
        counts = collect(frame.select([(train & present(c, schema[c]).not_()).any().alias(c) for c in cats])) \
            if cats else None
        self.cat_complete_ = [c for c in cats if counts is not None and not counts[c][0]]
        self.cont_bools_ = [c for c in self.cont_names if schema[c] == pl.Boolean]
        self.cont_float64_ = _beyond_float32(frame, self.cont_names, train)
        frame = self._apply(frame, train, names, text)
        self.cat_names_, self.cont_names_ = names.cat_names, names.cont_names
        self._fit_targets(frame, train, class_targets or {})
        self._y_classes = self._build_target_classes() if self.y_kind_ == "category" else None
        frame = frame.with_columns(self._target_exprs(frame))
        have = schema_of(frame)
        return frame.select(self.cat_names_ + self.cont_names_ + [c for c in self.y_names if c in have] + list(keep))

    def fit_transform(self, items: pl.DataFrame, train_mask: np.ndarray, *, train_rows: np.ndarray | None = None,
                      class_targets: Mapping[str, Sequence[Any] | None] | None = None) -> pl.DataFrame:
        """Fit on the rows where ``train_mask`` is true, return every row processed (inputs and targets), in the
        order of ``items``.

        ``train_rows``: the training rows' positions as the split lists them, where a row is listed several times
        (a class oversampled by repeating its training rows, as fastai's ``splits`` allow): each row then counts as
        many times as it is listed in what the procs learn (``Normalize``'s means and standard deviations,
        ``FillMissing``'s medians), as it does in training; fastai's ``TabularPandas`` learns them from the
        repeated rows too. ``class_targets``: target columns that are classes whatever their type, each with its
        declared categories in their order, or None (a pandas categorical column of numbers, which reaches Polars
        as plain numbers): see :meth:`_fit_targets`."""
        self._check_targets(items)
        schema = items.schema
        text = [c for c in dict.fromkeys(self.cat_names + self.y_names) if schema[c] == pl.String]
        frame = items.with_columns(aligned_series(_SPLIT_COL, np.asarray(train_mask, dtype=bool), items))
        repeats = None if train_rows is None else _repeated_rows(np.asarray(train_rows), len(items))
        if repeats is not None:
            # the second and later listings of a row join the fit as rows of their own, flagged as training rows;
            # the procs' statistics then count them as listed, and the frame's own rows are processed as before
            frame = pl.concat([frame, frame[repeats].with_columns(pl.lit(True).alias(_SPLIT_COL))], how="vertical")
        out = self._fit(frame, pl.col(_SPLIT_COL), text=text, class_targets=class_targets or {})
        if repeats is not None:
            out = out.head(len(items)).rechunk()
        self._check_unseen_labels(items, out)
        self._warn_number_classes()
        return out

    def fit_lazy(self, frame: pl.LazyFrame, train: pl.Expr | None = None, keep: Sequence[str] = (),
                 class_targets: Mapping[str, Sequence[Any] | None] | None = None) -> pl.LazyFrame:
        """Fit on a lazy scan (each statistic is a streaming aggregation); return the processing query.

        ``keep`` names extra raw columns to pass through (e.g. a split flag); ``class_targets`` as
        :meth:`fit_transform` takes it."""
        if not isinstance(frame, pl.LazyFrame):
            raise ParameterError(f"fit_lazy: expected a polars LazyFrame, got {type(frame).__name__}.")
        self.check_columns(frame.collect_schema().names(), where="fit_lazy")
        self._check_targets(frame)
        out = self._fit(frame, pl.lit(True) if train is None else train, keep, class_targets=class_targets)
        self._check_unseen_labels(frame)
        self._warn_number_classes()
        return out

    def _check_unseen_labels(self, raw: pl.DataFrame | pl.LazyFrame, out: pl.DataFrame | None = None) -> None:
        """Refuse a class target that is not among the training classes (it would be a null target), naming the
        value and its first row. ``out``: ``raw`` processed, whose codes are read; without it the classes are looked
        up again, as processing looks them up (one streaming pass on a lazy scan)."""
        if self.y_kind_ != "category":
            return
        c = self.y_names[0]
        codes = pl.lit(out[c]) if out is not None else self._target_exprs(raw)[0]
        bad = codes.is_null() & pl.col(c).is_not_null()
        n, i, value = collect(raw.select(bad.sum(), bad.arg_true().first().alias("row"),
                                         pl.col(c).filter(bad).first().alias("value"))).row(0)
        if n:
            numbers = number_classes_hint(self.y_classes_ or [], _REGRESSION)
            raise DataError(f"target column {c!r} has value {value!r} at row {i} that is not among the training "
                            f"classes {names_shown(self.y_vocab_ or [])}; "
                            + (f"{numbers}; or keep" if numbers else "keep") + " every class in the training rows.")

    # ------------------------------------------------------------------ applying
    def transform(self, frame: F, with_labels: bool | None = None, missing_said: Sequence[str] = ()) -> F:
        """Apply the fitted processing to new rows. ``with_labels=True``: the targets must be there, each a known
        class (or a finite number); ``False``: the target columns are ignored, as rows to be scored carry them
        blank or with anything in them; ``None``: targets are encoded when their columns are present and usable
        (a labelled frame with no rows keeps its target columns; an all-null target is an unlabelled set, and a
        target with blanks or classes never seen in training is ignored, with a warning). ``missing_said``: columns
        whose missing values the caller has already warned about (a rating's ids), left out of the warning about
        categorical columns missing only in new rows."""
        self.check_is_fitted("Tabular(...) or fit_transform")
        schema = schema_of(frame)
        columns = schema.names()
        self.check_columns(columns, where="new data", need_y=False)
        self._warn_bools(schema)
        y_present = bool(self.y_names) and all(c in columns for c in self.y_names)
        if with_labels is False and y_present:
            frame, y_present = frame.drop(self.y_names), False  # labels not asked for: the rows are only scored
        raw = frame
        if isinstance(frame, pl.DataFrame):
            if y_present and len(frame) and all(frame[c].null_count() == len(frame) for c in self.y_names):
                frame, y_present = frame.drop(self.y_names), False  # an unlabelled test set
            if y_present and self._target_problem(lambda: self._check_targets(frame), with_labels):
                frame, raw, y_present = frame.drop(self.y_names), frame.drop(self.y_names), False
            for proc in self.procs:
                proc.check_new(frame)
            self._check_new_missing(frame, missing_said)
        out = self._apply(frame)
        if y_present:
            out = out.with_columns(self._target_exprs(out))
        out = out.select(self.cat_names_ + self.cont_names_ + (self.y_names if y_present else []))
        if y_present and isinstance(raw, pl.DataFrame) and isinstance(out, pl.DataFrame) and \
                self._target_problem(lambda: self._check_unseen_labels(raw, out), with_labels):
            out = out.drop(self.y_names)  # classes never seen in training, read from the codes just made
        return out

    def _warn_bools(self, schema: pl.Schema) -> None:
        """Warn about a continuous column of True/False values in new rows where the training rows held numbers
        (``df.age > 40`` passed as ``age``): it would be read as 1/0, numbers the model learned nothing of."""
        trained = vars(self).get("cont_bools_")
        if trained is None:  # not known (a file written before it was kept)
            return
        bools = [repr(c) for c in self.cont_names if schema.get(c) == pl.Boolean and c not in trained]
        if bools:
            several = len(bools) > 1
            warn(f"continuous column{'s' if several else ''} {', '.join(bools)} hold{'' if several else 's'} "
                 "True/False values here, but numbers in the training rows: they are read as 1/0; pass "
                 + ("the columns' numbers" if several else "the column's numbers") + ", as in training")

    def _check_new_missing(self, frame: pl.DataFrame, said: Sequence[str] = (), where: str = "here") -> None:
        """Warn about a categorical column with missing values in new rows (``where``: the validation rows as a
        Tabular is split) that had none in the training rows: the model reads them as ``#na#``, a code it never
        learned from, and its predictions for those rows shift."""
        schema = frame.schema  # read once: a wide frame rebuilds it on every access
        cols = [c for c in self.cat_complete_ if c not in said and c in schema]
        if not cols or not len(frame):
            return
        counts = frame.select([present(c, schema[c]).not_().sum().alias(c) for c in cols]).row(0)
        new = {c: int(n) for c, n in zip(cols, counts) if n}
        if new:
            warn(f"Categorify: categorical column(s) with no missing values in training have missing values {where} "
                 f"(count per column: {new}); the model sees them as {NA_TOKEN!r}, which it never learned from, so "
                 "predictions for those rows are a guess: fill them with a value of the column if one is known.")

    @staticmethod
    def _target_problem(check: Callable[[], None], with_labels: bool | None) -> bool:
        """Run one of the target checks: with ``with_labels=True`` its DataError stands; with None (targets
        encoded when usable) it becomes a warning, and True says the rows go on without their target."""
        try:
            check()
        except DataError as e:
            if with_labels:
                raise
            warn(f"new data: {str(e).split(';')[0]}; the rows are processed without their target.")
            return True
        return False

    def decode(self, frame: Any, units: bool = False) -> Any:
        """Categorical codes back to their values, and class targets to theirs in the target's own type; with
        ``units``, normalised continuous columns back to the data's own units too (``Normalize`` undone). A pandas
        frame (a pandas table's ``to.items``) gives a pandas frame with its row labels; a Polars one a Polars one."""
        if is_pandas(frame, "DataFrame"):
            out = self.decode(pl.from_pandas(frame), units).to_pandas()
            out.index = frame.index
            return out
        have = set(frame.columns)
        if units:
            frame = frame.with_columns(pl.Series(c, denormalize(frame[c].to_numpy(), m, s))
                                       for c, (m, s) in self.cont_stats_.items() if c in have)
        vocabs: dict[str, tuple[list[Any], pl.DataType]] = {c: (v, pl.String()) for c, v in self.classes_.items()
                                                            if c in have}
        classes = self.y_classes_
        if self.y_kind_ == "category" and classes is not None and self.y_names[0] in frame.columns:
            vocabs[self.y_names[0]] = (classes, CLASS_TYPES[self.y_type][0])
        return frame.with_columns(pl.col(c).cast(pl.Int64).replace_strict(list(range(len(v))), v, return_dtype=dt)
                                  for c, (v, dt) in vocabs.items())

    @property
    def cont_stats_(self) -> dict[str, tuple[float, float]]:
        """Column -> ``(mean, std)`` each normalised continuous column was scaled with (empty without ``Normalize``)."""
        return {c: (m, p.stds_[c]) for p in self.procs if isinstance(p, Normalize) and p.is_fitted
                for c, m in p.means_.items()}

    @property
    def classes_(self) -> dict[str, list[str]]:
        """The vocabulary of every categorical input column (index 0 is ``#na#``)."""
        return {c: v for p in self.procs if isinstance(p, Categorify) and p.is_fitted for c, v in p.classes_.items()}

    @property
    def y_type(self) -> str:
        """What the target's classes decode to (``y_type_``; a record without it reads as text, see
        ``record_defaults``)."""
        return self.y_type_

    @property
    def y_classes_(self) -> list[Any] | None:
        """The target's classes in the type of its column, what predictions decode to: ``[False, True]`` for a bool
        column, ``[0, 1]`` for integers used as classes, text for text (``y_vocab_`` holds them as text)."""
        vocab = vars(self).get("y_vocab_")
        return None if vocab is None else typed_classes(vocab, self.y_type)

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file (a learner export's recipe, a processor saved on its own, an ensemble's procs),
        checked before anything encodes with it: the column names, the target's kind, classes and size, a target type
        pipekit knows with classes of it, and every proc fitted (:func:`~pipekit.tabular.procs.check_fitted_procs`).
        A :class:`FieldError` names the field (``state.y_vocab_``, ``params.procs[1].state.means_``)."""
        if self._list_entries:  # make_procs flattened them away: what the file meant there is unknown
            i = self._list_entries[0]
            raise FieldError(f"params.procs[{i}]", "is a list, but a processing's procs are the records of its procs "
                                                   f"(Categorify, FillMissing, Normalize), one per entry; {_DAMAGED}")
        if not state:
            return  # an unfitted processor's record
        super().state_from_data(state)
        check_state(vars(self), "the table's processing, to encode new items,", **_FITTED_STATE)
        labels, c = self.y_vocab_, self.c_
        if self.y_kind_ == "category" and not (labels is not None and len(set(labels)) == len(labels) >= 2
                                               and c == len(labels)):
            raise FieldError("state.y_vocab_", f"must list the target's classes, distinct, at least two and as many "
                                               f"as c_={c}, got {str(labels)[:60]}")
        if labels is not None:
            try:
                typed_classes(labels, self.y_type_)
            except ValueError as e:
                raise FieldError("state.y_vocab_", f"does not match y_type_={self.y_type_!r}: {e}") from None
        self._check_complete()
        for field in ("cont_bools_", "cont_float64_"):
            extra = [c for c in vars(self)[field] or [] if c not in self.cont_names]
            if extra:
                raise FieldError(f"state.{field}", f"must name only continuous inputs (cont_names="
                                                   f"{list(self.cont_names)[:8]}), got {extra[:5]}; {_DAMAGED}")
        self._check_categories()
        self._check_flags()
        self._check_scaled()
        # an emptied proc reads as an unfitted one, which only the processing it belongs to can tell apart
        check_fitted_procs(self.procs, self.cont_names, self.cont_names_)
        self._y_classes = self._build_target_classes() if self.y_kind_ == "category" else None

    def _check_scaled(self) -> None:
        """The columns each fitted proc works on, as ``setup`` chose them: the inputs are distinct, each either
        categorical or continuous and none the target; one Categorify and one Normalize; Categorify codes
        categorical inputs, FillMissing fills continuous ones, and Normalize scales every continuous input
        (scaling a categorical column would move its codes off the embedding rows, coding a continuous one would
        turn its values into categories, and a column left out would reach the model unscaled)."""
        cats, conts, ys = list(self.cat_names_), list(self.cont_names_), list(self.y_names or [])
        roles = cats + conts
        if len(set(roles)) != len(roles) or set(roles) & set(ys):
            twice = sorted({c for c in roles if roles.count(c) > 1} | (set(roles) & set(ys)))
            raise FieldError("state.cat_names_", f"and cont_names_ must name distinct input columns, none of them the "
                                                 f"target {ys}: {twice[:5]} is named twice or is the target")
        kinds: dict[type, int] = {}
        for i, proc in enumerate(self.procs if isinstance(self.procs, list) else []):
            if not (isinstance(proc, TabularProc) and proc.is_fitted):
                continue
            if type(proc) in kinds and isinstance(proc, ONCE):
                raise FieldError(f"params.procs[{i}]", f"is a second {type(proc).__name__} (procs[{kinds[type(proc)]}] "
                                                       "is one): the processing fits one")
            kinds[type(proc)] = i
            field, columns, allowed, exact = (
                ("classes_", list(proc.classes_), cats, False) if isinstance(proc, Categorify) else
                ("columns_", list(proc.columns_), conts, False) if isinstance(proc, FillMissing) else
                ("means_", list(proc.means_), conts, True) if isinstance(proc, Normalize) else (None, [], [], False))
            if field is None:
                continue
            kind = "categorical" if allowed is cats else "continuous"
            if (set(columns) != set(allowed)) if exact else not set(columns) <= set(allowed):
                raise FieldError(f"params.procs[{i}].state.{field}",
                                 f"must name {'every one of the' if exact else 'only'} {kind} inputs "
                                 f"({'cat' if allowed is cats else 'cont'}_names_={allowed[:8]}), got {columns[:8]}")
            # Categorify codes every categorical input, the flags FillMissing adds too: a column left without
            # classes would reach an embedding as its raw values, read as row numbers
            uncoded = [c for c in cats if c not in columns] if isinstance(proc, Categorify) else []
            if uncoded:
                raise FieldError(f"params.procs[{i}].state.{field}",
                                 f"must hold the classes of every categorical input (cat_names_={cats[:8]}), but "
                                 f"{uncoded[:5]} have none; {_DAMAGED}")

    def _check_flags(self) -> None:
        """Each fitted FillMissing flags the columns whose ``<col>_na`` flag the processing's output names
        (``cat_names_``, less the input columns), and no other: a flag named but not made would be missing from every
        row at predict (a Polars error about a column), one made but not named would never be read. Without a
        FillMissing the output names no column but the inputs."""
        named = set(self.cat_names_) - set(self.cat_names)  # an input column may be called '<col>_na' too
        fills = [(i, p) for i, p in enumerate(self.procs if isinstance(self.procs, list) else [])
                 if isinstance(p, FillMissing) and p.is_fitted]
        if not fills:
            # only FillMissing makes them, so new rows would have none of these columns (an emptied FillMissing is
            # named by check_fitted_procs)
            if named and not any(isinstance(p, FillMissing) for p in self.procs):
                raise FieldError("params.procs", f"has no FillMissing, but state.cat_names_ names "
                                                 f"{sorted(named)[:5]}, which are not categorical inputs (cat_names="
                                                 f"{list(self.cat_names)[:8]}): only FillMissing adds such columns "
                                                 f"(its '<col>_na' flags), so new rows would have none; {_DAMAGED}")
            return
        # a second FillMissing finds nothing left to fill: the flags are those of all of them together
        flagged = sorted({c for _, p in fills if p.add_col for c in p.na_columns_})
        expected = sorted({c for _, p in fills for c in p.columns_ if f"{c}_na" in named})
        if flagged != expected:
            i, proc = fills[0]
            raise FieldError(f"params.procs[{i}].state.na_columns_",
                             f"must list the columns whose '<col>_na' flag the processing's cat_names_ name "
                             f"({expected}), got {proc.na_columns_}" + ("" if proc.add_col else " with add_col=False"))

    def _check_complete(self) -> None:
        """``cat_complete_`` names categorical inputs (``cat_names``) that a fitted Categorify codes, as fitting
        chooses them (it names none without a Categorify, whose ``#na#`` code the warning about missing values is
        about): a name that is not an input is no column of new rows, and a processing whose Categorify is gone would
        hand its categories to a model uncoded."""
        complete = self.cat_complete_
        extra = [c for c in complete if c not in self.cat_names]
        if extra:
            raise FieldError("state.cat_complete_", f"must name only categorical inputs (cat_names="
                                                    f"{list(self.cat_names)[:8]}), got {extra[:5]}; {_DAMAGED}")
        # an emptied Categorify is named by check_fitted_procs
        if complete and not any(isinstance(p, Categorify) for p in self.procs):
            raise FieldError("params.procs", f"has no Categorify, but state.cat_complete_ names the columns it "
                                             f"coded ({complete[:5]}); {_DAMAGED}")

    def _check_categories(self) -> None:
        """Each fitted Categorify's classes, as its ``setup`` makes them: ``#na#`` first, then the column's values
        written as text, each once (codes are positions in the list, and a value in it twice or not text fails to
        encode at predict)."""
        for i, proc in enumerate(self.procs if isinstance(self.procs, list) else []):
            if not (isinstance(proc, Categorify) and proc.is_fitted):
                continue
            where = f"params.procs[{i}].state.classes_"
            classes = proc.classes_
            if not (isinstance(classes, dict) and all(isinstance(c, str) for c in classes)):
                raise FieldError(where, f"must map each categorical column's name to its classes, got "
                                        f"{str(classes)[:60]!r}")
            for col, vocab in classes.items():
                if not (isinstance(vocab, list) and vocab and vocab[0] == NA_TOKEN
                        and all(isinstance(v, str) for v in vocab) and len(set(vocab)) == len(vocab)):
                    raise FieldError(f"{where}.{col}", f"must be {NA_TOKEN!r} then the column's values as text, each "
                                                       f"once, got {str(vocab)[:60]!r}")

def load_processor(path: str | os.PathLike) -> TabularProcessor:
    """The fitted processing saved in a pipekit file (``process_to_parquet`` writes ``<out>.pipekit``).

    >>> import tempfile
    >>> from pathlib import Path
    >>> import polars as pl
    >>> from pipekit.tabular import load_processor, process_to_parquet
    >>> df = pl.DataFrame({"job": ["a", "b", "a", "c"], "age": [20.0, 35.0, 40.0, 30.0], "paid": [1.0, 0.5, 1.5, 0.0]})
    >>> out = Path(tempfile.mkdtemp()) / "jobs.parquet"
    >>> _ = process_to_parquet(df.lazy(), out, cat_names=["job"], cont_names=["age"], y_names="paid")
    >>> proc = load_processor(out.with_suffix(".pipekit"))          # written beside the Parquet file
    >>> type(proc).__name__, proc.classes_["job"], proc.y_kind_
    ('TabularProcessor', ['#na#', 'a', 'b', 'c'], 'regression')
    """
    from pipekit.core.archive import load

    p = Path(path)
    if p.name.endswith(".state.json"):
        raise ExportError(f"{p} holds fitted table processing in the JSON state format of pipekit 0.1, which this "
                          "pipekit does not read; re-create it with process_to_parquet(source, out_path, ...), which "
                          "writes <out>.pipekit beside the Parquet file.")
    obj = load(p)
    if not isinstance(obj, TabularProcessor):
        raise ExportError(f"{p} holds a {type(obj).__name__}, not the fitted processing of a table")
    return obj
