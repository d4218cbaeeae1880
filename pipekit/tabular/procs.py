"""Tabular preprocessing procs as Polars expressions fitted on the training rows.

A proc learns its state (vocabularies, fill values, means/stds) from the training rows only, keeps it
as plain data (lists, dicts of floats) and turns it into Polars expressions. The same expressions run
on an eager ``pl.DataFrame`` or on a ``pl.LazyFrame`` with the streaming engine, which is how tables
larger than memory are processed.

Example:
    >>> import polars as pl
    >>> from pipekit.tabular import Categorify, ColumnNames
    >>> df = pl.DataFrame({"color": ["red", "blue", None, "red"]})
    >>> names = ColumnNames(cat_names=["color"], cont_names=[])
    >>> cat = Categorify()
    >>> cat.setup(df, pl.lit(True), names)
    >>> cat.classes_["color"]
    ['#na#', 'blue', 'red']
    >>> df.with_columns(cat.expressions())["color"].to_list()
    [2, 1, 0, 2]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

import numpy as np
import polars as pl

from pipekit.core.component import Component
from pipekit.core.errors import DataError, FieldError, ParameterError, warn
from pipekit.core.validate import Interval, Is, Options, check_state, finite_number, one_of_two_names, plain_number
from pipekit.data.transform import as_list
# the vocabulary type is the data layer's; it is also importable from here, where the tabular classes are built
from pipekit.data.vocab import CategoryMap as CategoryMap, NA_TOKEN as NA_TOKEN, ValueCodes as ValueCodes, one_value

Frame = pl.DataFrame | pl.LazyFrame


@dataclass
class ColumnNames:
    """The roles of the columns; procs may add columns (``FillMissing`` adds ``<col>_na`` categories).

    Example:
        >>> import polars as pl
        >>> from pipekit.tabular import ColumnNames, FillMissing
        >>> names = ColumnNames(cat_names=["job"], cont_names=["age"])
        >>> FillMissing().setup(pl.DataFrame({"job": ["a", "b"], "age": [20.0, None]}), pl.lit(True), names)
        >>> names                                     # FillMissing added the flag of the missing ages
        ColumnNames(cat_names=['job', 'age_na'], cont_names=['age'])
    """

    cat_names: list[str] = field(default_factory=list)
    cont_names: list[str] = field(default_factory=list)


def schema_of(frame: Frame) -> pl.Schema:
    """The schema of an eager frame or of a lazy scan (resolved without reading rows)."""
    return frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema


def collect(frame: Frame) -> pl.DataFrame:
    """Run an aggregation query; lazy queries use the streaming engine so they need not fit in memory."""
    if isinstance(frame, pl.LazyFrame):
        return frame.collect(engine="streaming")
    return frame


def distinct_train_values(frame: Frame, columns: Sequence[str], train: pl.Expr) -> dict[str, pl.Series]:
    """The distinct non-null values of each of ``columns`` in the training rows.

    On a lazy scan each is a streaming ``unique`` of one column (a few MB), where an aggregation
    inside ``select`` would hold the whole column in memory. An eager frame answers for every column in
    one query, the columns in parallel. Categorical and Enum columns are read by their codes: a unique
    over their strings holds memory after it is done.
    """
    if isinstance(frame, pl.LazyFrame):
        return {c: frame.filter(train).select(pl.col(c)).drop_nulls().unique().collect(engine="streaming").to_series()
                for c in columns}
    schema = frame.schema
    coded = {c for c in columns if isinstance(schema[c], (pl.Categorical, pl.Enum))}
    row = frame.select([(pl.col(c).to_physical() if c in coded else pl.col(c)).filter(train).drop_nulls().unique()
                        .implode().alias(c) for c in columns])
    out = {c: row[c][0].rename(c) for c in columns}
    return {c: categories_of(schema[c]).gather(v).rename(c) if c in coded else v  # type: ignore[arg-type]
            for c, v in out.items()}


def categories_of(dtype: pl.Categorical | pl.Enum) -> pl.Series:
    """The strings of a Categorical or Enum type, indexed by their physical codes."""
    return dtype.categories if isinstance(dtype, pl.Enum) else dtype.categories.to_series()


def nested_column_error(c: str, dtype: pl.DataType, role: str) -> DataError | None:
    """The DataError for a column ``c`` of ``role`` ("cat_names", "cont_names") that holds several values per row
    (a list, an array, a struct) or Python objects, which can be neither a category nor a number; else None."""
    if not (isinstance(dtype, (pl.List, pl.Array, pl.Struct)) or dtype == pl.Object):
        return None
    if isinstance(dtype, pl.Struct):
        fields = [f.name for f in dtype.fields]
        first = fields[0] if fields else "name"
        return DataError(f"column {c!r} in {role} holds {dtype} values, several named fields per row: a struct can be "
                         f"neither a category nor a number. Give its fields columns of their own (Polars: "
                         f"pl.col({c!r}).struct.field({first!r}).alias({f'{c}_{first}'!r}) for one, "
                         f"df.unnest({c!r}) for all; pandas: pd.json_normalize(df[{c!r}].tolist())) and name those "
                         f"in {role}, or drop it from {role}.")
    kind = "Python objects" if dtype == pl.Object else f"{dtype} values, several per row"
    return DataError(f"column {c!r} in {role} holds {kind}: a list can be neither a category nor a number. Give each "
                     f"value a column of its own (e.g. pl.col({c!r}).list.get(0).alias('first')), make the whole list "
                     f"one text to use as a category (pl.col({c!r}).cast(pl.List(pl.String)).list.join(' ')), or "
                     f"drop it from {role}.")


#: the largest float32, the type continuous columns are processed and fed to models in
FLOAT32_MAX = 3.4028234663852886e38


def float32_overflow_error(frame: Frame, columns: Sequence[str]) -> DataError | None:
    """The DataError for the first of the continuous ``columns`` of ``frame`` whose finite values (float64, or text
    read as numbers) lie beyond the float32 range, where they would become inf and be taken for missing values;
    else None. One aggregation, streaming on a lazy scan, so the eager and the lazy path refuse the same values
    with the same message.

    >>> float32_overflow_error(pl.DataFrame({"x": [1.0, -1e300, 2e300]}), ["x"])
    DataError("continuous column 'x' holds 2 value(s) beyond the float32 range (+-3.4e38) it is processed in, the largest 2e+300 (first at row 1); as float32 they would be inf. Rescale the column (divide it by a power of ten, or take its log) first.")
    """
    if not columns:
        return None
    schema, aggs = schema_of(frame), []
    for i, c in enumerate(columns):
        dtype = schema[c]
        values = pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False) \
            if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)) else pl.col(c).cast(pl.Float64)
        big = values.is_finite() & (values.abs() > FLOAT32_MAX)
        beyond = values.filter(big)
        aggs += [big.sum().alias(f"n{i}"), big.arg_true().first().alias(f"r{i}"),
                 beyond.sort_by(beyond.abs(), descending=True).first().alias(f"v{i}")]
    found = collect(frame.select(aggs)).row(0, named=True)
    for i, c in enumerate(columns):
        if found[f"n{i}"]:
            return DataError(f"continuous column {c!r} holds {found[f'n{i}']} value(s) beyond the float32 range "
                             f"(+-3.4e38) it is processed in, the largest {found[f'v{i}']:g} (first at row "
                             f"{found[f'r{i}']}); as float32 they would be inf. Rescale the column (divide it by a "
                             "power of ten, or take its log) first.")
    return None


def code_dtype(n_classes: int) -> pl.DataType:
    """The smallest signed integer type that holds codes ``0..n_classes-1`` (keeps 10M-row tables small)."""
    if n_classes <= 127:
        return pl.Int8()
    if n_classes <= 32767:
        return pl.Int16()
    return pl.Int32()


class TabularProc(Component):
    """Base class: ``setup`` learns state (attributes ending in ``_``) from the training rows,
    ``expressions`` applies it as Polars expressions, on eager frames and lazy scans alike.

    Example:
        >>> import numpy as np, polars as pl
        >>> from pipekit.tabular import Categorify, TabularProc, TabularProcessor
        >>> class ClipOutliers(TabularProc):
        ...     # clip each continuous column to the training rows' q and 1 - q quantiles
        ...     order = 1                                              # after FillMissing, before Normalize
        ...     def __init__(self, q: float = 0.01):
        ...         self.q = q
        ...     def setup(self, frame, train, names):
        ...         rows = frame.filter(train)
        ...         self.bounds_ = {c: (rows[c].quantile(self.q), rows[c].quantile(1 - self.q)) for c in names.cont_names}
        ...     def expressions(self, schema=None, eager=False):
        ...         return [pl.col(c).clip(lo, hi) for c, (lo, hi) in self.bounds_.items()]
        >>> df = pl.DataFrame({"job": ["a", "b", "a", "b"], "hours": [38.0, 40.0, 42.0, 400.0], "y": [0, 1, 0, 1]})
        >>> proc = TabularProcessor([Categorify(), ClipOutliers(q=0.25)], cat_names="job", cont_names="hours", y_names="y",
        ...                         y_block="category")
        >>> proc.fit_transform(df, np.array([True, True, True, False]))["hours"].to_list()
        [40.0, 40.0, 42.0, 42.0]
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "proc"
    order: ClassVar[int] = 0

    def setup(self, frame: Frame, train: pl.Expr, names: ColumnNames) -> None:
        """Learn the state from the rows of ``frame`` where the boolean expression ``train`` holds."""
        raise NotImplementedError

    def expressions(self, schema: Mapping[str, pl.DataType] | None = None, eager: bool = False) -> list[pl.Expr]:
        """Polars expressions applying the fitted state (use with ``frame.with_columns``).

        ``schema`` (the input's) lets a proc pick a faster expression per dtype; ``eager`` says the input
        is a materialised DataFrame (not a streaming scan), so data-dependent lookups are safe."""
        raise NotImplementedError

    def check_new(self, frame: pl.DataFrame) -> None:
        """Inspect new data before it is processed (warn about what will be filled); default: nothing."""

    def check_valid(self, raw: pl.DataFrame, out: pl.DataFrame) -> None:
        """Warn about what the validation rows ``raw`` (``out`` once processed) hold that the training rows did not
        teach, as the split is made; default: nothing."""

    def check_is_fitted(self, what: str = "setup() (Tabular does this on the training rows)") -> None:
        super().check_is_fitted(what)


def present(c: str, dtype: pl.DataType) -> pl.Expr:
    """True where categorical column ``c`` holds a value: a NaN of a float column is missing, not a category."""
    return pl.col(c).is_not_null() & pl.col(c).is_not_nan() if dtype.is_float() else pl.col(c).is_not_null()


def _missing(c: str) -> pl.Expr:
    """True where column ``c`` is null, NaN or +/-inf: a value that is not a finite number is missing."""
    return pl.col(c).is_finite().not_().fill_null(True)


def _as_number(c: str, dtype: pl.DataType) -> pl.Expr | None:
    """Column ``c`` read as numbers the way the processor will read it (text is parsed), or None."""
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    if dtype.is_numeric():
        return pl.col(c).cast(pl.Float64)
    return None


#: column names as a fitted proc keeps them: a list of distinct text
_COLUMN_NAMES = Is(lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v) and len(set(v)) == len(v),
                   "a list of distinct column names")


class FillStrategy:
    """fastai's names of :class:`FillMissing`'s strategies, for ``FillMissing(fill_strategy=FillStrategy.mode)`` as
    fastai writes it (``FillMissing(strategy="mode")`` in pipekit's words); each is pipekit's name of the strategy.

    - ``median``: the median of the training rows' finite values.
    - ``mode``: the most frequent of the training rows' finite values; of values tied for most frequent, the
      smallest (fastai takes the tied value pandas counts first, the one seen first in the training rows).
    - ``constant``: ``fill_value`` (fastai's ``fill_vals``).

    >>> FillStrategy.mode, FillMissing(fill_strategy=FillStrategy.mode)
    ('mode', FillMissing(strategy='mode'))
    """

    median = "median"
    mode = "mode"
    constant = "constant"


def _fill_number(v: Any) -> bool:
    return Interval().accepts(v)


def _fastai_fill_args(strategy: Any, fill_value: Any, given: dict[str, Any]) -> tuple[Any, Any]:
    """``(strategy, fill_value)`` of a ``FillMissing`` given fastai's keywords ``fill_strategy`` and ``fill_vals``
    (``given``); each of them given with pipekit's own name too, with another value, is refused, as is any other
    keyword."""
    unknown = [k for k in given if k not in ("fill_strategy", "fill_vals")]
    if unknown:
        from pipekit.core.validate import check_arguments

        check_arguments("FillMissing", given, ["strategy", "fill_value", "add_col", "fill_strategy", "fill_vals"])
    if "fill_strategy" in given:
        named = given["fill_strategy"]
        if not isinstance(named, str):  # fastai's FillStrategy members are functions; a function is not run here
            name = getattr(named, "__name__", None)
            known = name in ("median", "mode", "constant")
            raise ParameterError(f"FillMissing: fill_strategy={name or repr(named)[:60]} is not accepted; pipekit "
                                 "fills with one of its strategies, FillStrategy.median, FillStrategy.mode or "
                                 "FillStrategy.constant (pipekit's FillStrategy, from pipekit.tabular.all), not a "
                                 "function" + (f"; this one is fastai's FillStrategy.{name}: pass pipekit's, or "
                                               f"strategy={name!r}" if known else ""))
        strategy = one_of_two_names("FillMissing", "strategy", strategy, "fill_strategy", named, "median")
    if "fill_vals" in given:
        vals = given["fill_vals"]
        if vals is not None:
            default = getattr(vals, "default_factory", None)
            if default is not None and default() != 0:
                raise ParameterError(f"FillMissing: fill_vals is a defaultdict of default {default()!r}; pipekit fills "
                                     "a column fill_vals does not name with 0: give each column's value in a dict")
            vals = one_of_two_names("FillMissing", "fill_value", fill_value, "fill_vals", vals, 0.0)
            fill_value = dict(vals) if isinstance(vals, Mapping) else vals
    return strategy, fill_value


class FillMissing(TabularProc):
    """Fill missing continuous values with a train statistic and flag them in ``<col>_na`` columns.

    Missing means null, NaN, or +/-inf: an infinite value cannot be normalised or fed to a model, so it
    is filled like a null (and counted in its own warning, so a sensor's overflow is not mistaken for
    an empty cell). Columns with missing values in the training rows get a boolean ``<col>_na`` column,
    which is added to the categorical columns. A column that had no missing values in training but has
    some later is filled all the same, with a warning.

    ``strategy``: ``"median"``, ``"mode"`` or ``"constant"`` (see :class:`FillStrategy`). ``fill_value``: what
    ``"constant"`` fills with, one number for every column or a ``{column: number}`` dict (a column it does not name
    is filled with 0, fastai's default ``fill_vals``). fastai's keywords are taken too: ``fill_strategy=`` (a
    :class:`FillStrategy` member) for ``strategy``, ``fill_vals=`` for ``fill_value``.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"age": [20.0, None, 40.0]})
        >>> fm = FillMissing()
        >>> names = ColumnNames([], ["age"])
        >>> fm.setup(df, pl.lit(True), names)
        >>> (fm.fill_values_, names.cat_names)
        ({'age': 30.0}, ['age_na'])
    """

    order = 0
    param_constraints = {"strategy": Options("median", "mode", "constant"),
                         "fill_value": Is(lambda v: _fill_number(v) or isinstance(v, dict) and all(
                             isinstance(k, str) and _fill_number(x) for k, x in v.items()),
                             "a number, or a {column: number} dict"),
                         "add_col": Options(True, False)}
    columns_: list[str]
    fill_values_: dict[str, float]
    na_columns_: list[str]

    def __init__(self, strategy: str = "median", fill_value: float | Mapping[str, float] = 0.0, add_col: bool = True,
                 **fastai: Any) -> None:
        if fastai:
            strategy, fill_value = _fastai_fill_args(strategy, fill_value, fastai)
        if isinstance(fill_value, Mapping):  # stored as a plain dict of plain numbers (a file holds it so)
            fill_value = {k: plain_number(v) for k, v in fill_value.items()}
        self.strategy, self.fill_value, self.add_col = strategy, fill_value, add_col
        self.check_params()

    def _constant(self, c: str) -> float:
        """What ``"constant"`` fills column ``c`` with."""
        if isinstance(self.fill_value, dict):
            return float(self.fill_value.get(c, 0.0))
        return float(self.fill_value)

    def _stat(self, c: str, train: pl.Expr, floats: bool = True) -> pl.Expr:
        x = pl.col(c).filter(train & pl.col(c).is_finite() if floats else train)  # integers are finite or null
        if self.strategy == "median":
            return x.median().alias(c)
        if self.strategy == "mode":
            # Ties broken by the smallest value so the result is deterministic.
            return x.drop_nulls().mode().min().alias(c)
        return pl.lit(self._constant(c), dtype=pl.Float64).alias(c)

    def setup(self, frame: Frame, train: pl.Expr, names: ColumnNames) -> None:
        cols = list(names.cont_names)
        if isinstance(self.fill_value, dict):
            unknown = [k for k in self.fill_value if k not in cols]
            if unknown:
                from pipekit.core.validate import unknown_names

                raise ParameterError(f"FillMissing: fill_value names {unknown}, which are not continuous columns; "
                                     f"{unknown_names(unknown, cols, 'continuous columns')}")
        self.columns_ = cols
        if not cols:
            self.fill_values_, self.na_columns_ = {}, []
            return
        schema = schema_of(frame)
        floats = {c for c in cols if schema[c].is_float()}
        # counted under the training flag rather than over filtered copies; integers are never NaN or inf
        stats = collect(frame.select([self._stat(c, train, c in floats) for c in cols]
                                      + [((_missing(c) if c in floats else pl.col(c).is_null()) & train).sum()
                                         .alias(f"{c}\x00n") for c in cols]
                                      + [(pl.col(c).is_infinite() & train).sum().alias(f"{c}\x00i") if c in floats
                                         else pl.lit(0).alias(f"{c}\x00i") for c in cols]))
        fills: dict[str, float] = {}
        for c in cols:
            v = stats[c][0]
            if v is None:
                raise DataError(f"FillMissing: continuous column {c!r} has no finite values in the training rows "
                                 "(all null, NaN or inf); drop it from cont_names.")
            fills[c] = float(v)
        self.fill_values_ = fills
        self.na_columns_ = [c for c in cols if stats[f"{c}\x00n"][0] > 0]
        self.check_flag_columns(schema)
        for c in cols:
            n_inf = int(stats[f"{c}\x00i"][0] or 0)
            if n_inf:
                n_null = int(stats[f"{c}\x00n"][0]) - n_inf
                flag = f" and flagged in {c + '_na'!r}" if self.add_col else ""
                warn(f"FillMissing: continuous column {c!r} has {n_inf} infinite value(s) (inf/-inf) in the "
                     f"training rows (besides {n_null} null/NaN); they are treated as missing: filled with "
                     f"{fills[c]!r} (training {self.strategy}){flag}.")
        if self.add_col:
            for c in self.na_columns_:
                if f"{c}_na" not in names.cat_names:
                    names.cat_names.append(f"{c}_na")

    def flag_clashes(self, columns: Collection[str]) -> list[str]:
        """The continuous columns whose flag column ``<col>_na`` (added by this fitted proc) is one of ``columns``."""
        return [c for c in self.na_columns_ if self.add_col and f"{c}_na" in columns]

    def check_flag_columns(self, columns: Collection[str]) -> None:
        """Refuse a flag column ``<col>_na`` this fitted proc adds that the model's columns ``columns`` already
        have: the flag and the user's column would be one input."""
        clash = self.flag_clashes(columns)
        if clash:
            c = clash[0]
            raise DataError(f"FillMissing: continuous column {c!r} has missing values in the training rows, so it "
                            f"gets a flag column {c + '_na'!r}, but the table already has a column {c + '_na'!r}; "
                            f"rename that column (pandas: df.rename(columns={{{c + '_na'!r}: {c + '_na_given'!r}}}); "
                            f"Polars: df.rename({{{c + '_na'!r}: {c + '_na_given'!r}}})) or "
                            "pass FillMissing(add_col=False).")

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file, checked as Categorify's classes are before anything fills with it:
        ``columns_`` distinct column names, ``fill_values_`` one number for each of them, ``na_columns_`` those of
        them that get a flag column. A :class:`FieldError` names the field (``state.fill_values_``)."""
        super().state_from_data(state)
        if not state:
            return  # an unfitted proc's record
        purpose = "filling missing values in new rows"
        check_state(vars(self), purpose, columns_=_COLUMN_NAMES)
        cols = self.columns_
        check_state(vars(self), purpose, fill_values_=Is(
            lambda v: isinstance(v, dict) and set(v) == set(cols) and len(v) == len(cols)
            and all(_stored_number(x) for x in v.values()),
            "one number (finite, within float32's range) for each of columns_, by column name"),
            na_columns_=Is(lambda v: _COLUMN_NAMES.accepts(v) and set(v) <= set(cols),
                           "distinct column names among columns_"))

    def expressions(self, schema: Mapping[str, pl.DataType] | None = None, eager: bool = False) -> list[pl.Expr]:
        self.check_is_fitted()
        exprs: list[pl.Expr] = []
        if self.add_col:
            exprs += [_missing(c).alias(f"{c}_na") for c in self.na_columns_]
        # a null's is_finite is null, which `when` takes as false: one pass fills null, NaN and inf
        exprs += [pl.when(pl.col(c).is_finite()).then(pl.col(c)).otherwise(self.fill_values_[c]).alias(c)
                  for c in self.columns_]
        return exprs

    def _unflagged_missing(self, frame: pl.DataFrame) -> dict[str, int]:
        """Per column with no missing values in training (so no ``_na`` flag): its nulls and NaN in ``frame``."""
        self.check_is_fitted()
        schema, flagged = frame.schema, set(self.na_columns_)  # read once: a wide frame rebuilds it per access
        cols = [c for c in self.columns_ if c not in flagged and c in schema]
        counts = frame.select([(pl.col(c).is_null() | pl.col(c).is_nan()).sum() if schema[c].is_float()
                               else pl.col(c).null_count() for c in cols]).row(0) if cols else ()
        return {c: int(n) for c, n in zip(cols, counts) if n}

    def check_new(self, frame: pl.DataFrame) -> None:
        for c, n in self._unflagged_missing(frame).items():  # null or NaN (inf is reported below)
            warn(f"FillMissing: column {c!r} had no missing values in training but has {n} here; "
                 f"filled with {self.fill_values_[c]!r} (training {self.strategy}).")
        schema = frame.schema
        nums = {c: e for c in self.columns_ if c in schema and (e := _as_number(c, schema[c])) is not None}
        if not nums:
            return
        infs = frame.select([e.is_infinite().sum().alias(c) for c, e in nums.items()]).row(0)
        for c, n in zip(nums, infs):
            if n:
                warn(f"FillMissing: column {c!r} has {n} infinite value(s) (inf/-inf) here; treated as "
                     f"missing and filled with {self.fill_values_[c]!r} (training {self.strategy}).")

    def check_valid(self, raw: pl.DataFrame, out: pl.DataFrame) -> None:
        for c, n in self._unflagged_missing(raw).items():
            flag = f", and as training had none, no {c + '_na'!r} column flags them" if self.add_col else ""
            warn(f"FillMissing: continuous column {c!r} has no missing values in the training rows but {n} "
                 f"in the validation rows; they are filled with {self.fill_values_[c]!r} (training "
                 f"{self.strategy}){flag}.")


def as_stored(col: str, values: Sequence[Any], dtype: pl.DataType, what: str | None = None) -> list[str]:
    """``values`` (a user's list of the values of column ``col``, of type ``dtype``: an order of categories, the
    classes of a target; ``what`` names where they were given) written as text the way a vocabulary stores the
    column's values: ``3`` of an integer column is ``'3'``, ``False`` of a bool column ``'false'``.

    >>> as_stored("y", [False, True], pl.Boolean), as_stored("n", [3.0, 1], pl.Int64)
    (['false', 'true'], ['3', '1'])
    """
    what = what or f"Categorify: ordered[{col!r}]"
    s = pl.Series(col, list(values), strict=False)
    if dtype.is_numeric() and not s.dtype.is_numeric() and s.dtype != pl.Null:
        raise ParameterError(f"{what} holds {s.dtype} values but column {col!r} is {dtype}; give them as the "
                             "column's values")
    if dtype.is_numeric():
        exact = s.cast(dtype, strict=False)
        if exact.null_count() > s.null_count() or not (exact.cast(pl.Float64) == s.cast(pl.Float64)).all():
            raise ParameterError(f"{what} has values that are not {dtype} values of column {col!r}: "
                                 f"{s.to_list()[:5]}")
        s = exact
    return s.cast(pl.String).to_list()


#: how a yes/no value is written: by a bool column (as text), an integer column, a float column
_TRUTH_WORDS = (("true", "false"), ("1", "0"), ("1.0", "0.0"))


def truth_codes(vocab: Sequence[str]) -> tuple[int | None, int | None] | None:
    """Where ``vocab`` (``#na#`` then a column's values as text) holds the two values of a yes/no column, the
    codes of true and of false (None for one the training rows never had); None for any other vocabulary.

    >>> truth_codes(["#na#", "false", "true"]), truth_codes(["#na#", "0", "1"]), truth_codes(["#na#", "True"])
    ((2, 1), (2, 1), (1, None))
    >>> truth_codes(["#na#", "0", "1", "2"]) is None, truth_codes(["#na#", "a"]) is None
    (True, True)
    """
    if not 1 < len(vocab) <= 3:  # #na# and at most two values: anything longer is no yes/no column (checked first,
        return None  # as this runs on every encode and a vocabulary may hold millions of ids)
    words = [v.strip().lower() for v in vocab[1:]]
    if len(set(words)) != len(words):
        return None
    for yes, no in _TRUTH_WORDS:
        if set(words) <= {yes, no}:
            return (words.index(yes) + 1 if yes in words else None, words.index(no) + 1 if no in words else None)
    return None


def as_truth(col: pl.Expr, dtype: pl.DataType | None) -> pl.Expr:
    """Column ``col`` (of type ``dtype``, None when unknown) read as true/false: a bool as it is, the numbers 1
    and 0, the text ``true``/``false``/``1``/``0`` in any case; anything else is null."""
    if dtype == pl.Boolean:
        return col
    if dtype is not None and dtype.is_numeric():
        return pl.when(col == 1).then(pl.lit(True)).when(col == 0).then(pl.lit(False))
    text = col.cast(pl.String).str.strip_chars().str.to_lowercase()
    yes, no = [w for w, _ in _TRUTH_WORDS], [w for _, w in _TRUTH_WORDS]
    return pl.when(text.is_in(yes)).then(pl.lit(True)).when(text.is_in(no)).then(pl.lit(False))


def _written_otherwise(given: pl.Series, learned: Sequence[str]) -> bool:
    """Whether ``given`` values, none of them a ``learned`` one, look like the learned values written another way:
    numbers where text was learned (or text for numbers), or the same words in other spacing or case."""
    text = given.cast(pl.String)
    numbers = text.str.strip_chars().cast(pl.Float64, strict=False).is_not_null()
    known = pl.Series(list(learned), dtype=pl.String)
    known_numbers = known.str.strip_chars().cast(pl.Float64, strict=False).is_not_null()
    # a type mismatch only when one side is all numbers and the other has none: learned zips with an 'n/a' among
    # them still take new zips as new values
    if (numbers.all() and not known_numbers.any()) or (known_numbers.all() and not numbers.any()):
        return True
    fold = set(text.str.strip_chars().str.to_lowercase().to_list())
    return bool(fold & set(known.str.strip_chars().str.to_lowercase().to_list()))


def whole_number_texts(vocab: Sequence[str]) -> dict[str, str]:
    """Where ``vocab`` (``#na#`` then a column's values as text) holds numbers written as floats (a column of whole
    numbers read as floats because it had a missing value: ``'2012.0'``), each whole one as an integer is written
    (``'2012'``) mapped to its entry: text ids are looked up through it, so the text ``'2012'`` is the category
    ``2012.0`` as the integer ``2012`` is. Empty for any other vocabulary (integers, words).

    >>> whole_number_texts(["#na#", "-3.0", "2010.0", "2012.5"]), whole_number_texts(["#na#", "11", "20"])
    ({'-3': '-3.0', '2010': '2010.0'}, {})
    """
    kept = _whole_numbers_kept(vocab)
    return {} if kept is None else kept[0]


def _whole_number_replacement(vocab: Sequence[str]) -> tuple[pl.Series, pl.Series] | None:
    """:func:`whole_number_texts` of ``vocab`` as the texts and the entries they stand for, what an encoding replaces
    a column's text with; None where it has none."""
    kept = _whole_numbers_kept(vocab)
    return None if kept is None else kept[1]


def _whole_numbers_kept(vocab: Sequence[str]) -> tuple[dict[str, str], tuple[pl.Series, pl.Series]] | None:
    """The aliases of :func:`whole_number_texts` and their Series, or None where there are none. They are needed on
    every encode and lookup, so a class vocab's are worked out once and kept until its entries change
    (:meth:`CategoryMap.derived`)."""
    # its first entry checked first: an integer or word vocabulary (millions of ids) is never one
    if len(vocab) < 2 or vocab[1].lstrip("-").isdigit():
        return None
    try:
        float(vocab[1])
    except ValueError:
        return None
    kept = vocab.derived("whole_number_texts", _whole_numbers_of) if isinstance(vocab, CategoryMap) else \
        _whole_numbers_of(vocab)
    return kept if kept[0] else None


def _whole_numbers_of(vocab: Sequence[str]) -> tuple[dict[str, str], tuple[pl.Series, pl.Series]]:
    """The aliases of :func:`whole_number_texts` over the whole of ``vocab``, and them as the two Series an
    encoding replaces with."""
    aliases = _whole_number_aliases(list(vocab))
    return aliases, (pl.Series(list(aliases), dtype=pl.String), pl.Series(list(aliases.values()), dtype=pl.String))


def _whole_number_aliases(vocab: list[str]) -> dict[str, str]:
    """:func:`whole_number_texts` worked out over the whole of ``vocab``."""
    known = pl.Series(vocab[1:], dtype=pl.String)
    numbers = known.cast(pl.Float64, strict=False)
    if numbers.null_count():
        return {}
    whole = (numbers.round() == numbers) & (numbers.abs() < 2.0**63)
    texts = numbers.filter(whole).cast(pl.Int64).cast(pl.String).to_list()
    taken = set(known.to_list())
    aliases: dict[str, str] = {}
    for text, entry in zip(texts, known.filter(whole).to_list()):
        if text not in taken:
            aliases.setdefault(text, entry)
    return aliases


def column_code(vocab: CategoryMap, value: Any) -> int:
    """The code of ``value`` in the classes of one categorical column, looked up as ``Categorify`` encodes new rows
    (so ``50``, ``50.0`` and ``'50'`` are the same id of an integer column): what a column's
    ``CategoryMap.o2i`` answers. A value never seen in training is a KeyError naming the column and some known
    values.

    >>> ids = CategoryMap(["#na#", "1", "50", "73"], name="userId", code_of=column_code)
    >>> ids.o2i[50], ids.o2i["73"], ids.o2i[50.0], ids == ["#na#", "1", "50", "73"], ids[1:]
    (2, 3, 2, True, ['1', '50', '73'])
    """
    # a float32 (a NumPy scalar or 0-d array) is looked up as a Float32 column's value is
    given = np.float32(value) if getattr(value, "ndim", None) == 0 and getattr(value, "dtype", None) == np.float32 \
        else None
    value = one_value(value)
    if isinstance(value, str) and value == NA_TOKEN:
        return 0
    code = Categorify.lookup(vocab.name or "value", vocab, [value if given is None else given])[0] \
        if value is not None else None
    if code is None:
        col, known = vocab.name or "this column", vocab[1:4]
        why = ("is a missing value, scored as #na# (code 0)" if value is None else "was never seen in training")
        raise KeyError(f"{col!r}: {value!r} {why}; {len(vocab) - 1} known values, e.g. {known}")
    return code


#: the text of an integer as Python and Polars write it: no sign but a minus, no leading zero, no spaces
_PLAIN_INT = r"^-?(0|[1-9][0-9]*)$"


def _plain_codes(vocab: Sequence[str]) -> list[int] | None:
    """The codes of the entries of ``vocab`` (``#na#`` first, then text that ``int`` reads) a number matches: an
    entry that is the only one reading as its integer (``'00017'`` is 17's, a zip code's text read back as a number),
    and, where several read as one integer (``'7'`` and ``'007'``, both categories of a column of text), the one
    written as the integer is written (``'7'``; none of them where none is). None where every entry is matched (a
    vocabulary learned from an integer column): kept with a ``CategoryMap`` (a million ids are looked up often)."""
    def compute(v: Sequence[str]) -> list[int] | None:
        texts = pl.Series(list(v[1:]), dtype=pl.String)
        plain = texts.str.contains(_PLAIN_INT)
        if plain.all():
            return None
        numbers = pl.Series([int(t) for t in v[1:]])
        alone = numbers.is_unique()
        keep = alone | plain
        return None if keep.all() else (keep.arg_true() + 1).to_list()
    return vocab.derived("plain_int_codes", compute) if isinstance(vocab, CategoryMap) else compute(vocab)


def _plain_float_codes(vocab: Sequence[str], fkeys: Sequence[float], ints_first: bool) -> list[int]:
    """The codes of the entries of ``vocab`` (``#na#`` first, then text that ``float`` reads, as ``fkeys``) that a
    number matches: those written as Polars writes the float (``'7.0'``, ``'2.5e-8'``) or as an integer is
    written (``'7'``), one entry per number. Where a number is written both ways (``'7'`` and ``'7.0'``, categories
    of a column of strings) an integer column's 7 is ``'7'`` (``ints_first``) and a float column's 7.0 is
    ``'7.0'``. Text written otherwise is matched by its number where no other entry reads as that number
    (``'7.50'`` alone is 7.5's) and only as text where one does (``'007'`` beside ``'7'``)."""
    texts = pl.Series(list(vocab[1:]), dtype=pl.String)
    numbers = pl.Series(list(fkeys), dtype=pl.Float64)
    as_float, as_int = numbers.cast(pl.String) == texts, texts.str.contains(_PLAIN_INT)
    alone = numbers.is_unique()
    keep = as_float | as_int | alone
    if numbers.filter(keep).n_unique() == keep.sum():  # each number written one way (a float column's vocab)
        return (keep.arg_true() + 1).to_list()
    first, then = (as_int, as_float) if ints_first else (as_float, as_int)
    taken: set[float] = set()
    codes: list[int] = []
    for i in [*alone.arg_true().to_list(), *first.arg_true().to_list(), *then.arg_true().to_list()]:
        if fkeys[i] not in taken:
            taken.add(fkeys[i])
            codes.append(i + 1)
    return codes


#: the float types a Categorify vocabulary is recorded as learned from (``Categorify.floats_``)
FLOAT_TYPES = ("Float32", "Float64")


def learned_float(vocab: Sequence[str]) -> str | None:
    """The float type (``'Float32'``, ``'Float64'``) the values of a :class:`CategoryMap` of classes were learned
    from, as :func:`with_learned_float` marked it; None for classes learned from anything else (text, integers),
    for a plain list, and for classes read from a file written before pipekit kept it.

    >>> learned_float(with_learned_float(CategoryMap(["#na#", "0.1"]), "Float32")), learned_float(["#na#", "0.1"])
    ('Float32', None)
    """
    return getattr(vocab, "learned_float", None) if isinstance(vocab, CategoryMap) else None


def with_learned_float(vocab: CategoryMap, learned: str | None) -> CategoryMap:
    """``vocab``, marked as classes learned from values of the float type ``learned`` (one of
    :data:`FLOAT_TYPES`, or None): how encoding and ``o2i`` compare float values with them (:func:`float_keys`).
    The mark is an attribute of the vocabulary, so a copy (``copy.copy``, ``copy.deepcopy``, a pickle) keeps it."""
    vocab.learned_float = learned  # type: ignore[attr-defined]
    return vocab


def float_keys(vocab: Sequence[str], dtype: pl.DataType, learned: str | None = None) -> tuple[
        pl.Series, list[int], tuple[pl.Series, list[int]] | None]:
    """The numbers that values of a number column of type ``dtype`` are matched against in ``vocab`` (``#na#`` first,
    then text that ``float`` reads, a ValueError otherwise), and their codes: the entries of
    :func:`_plain_float_codes`. ``learned``: the float type the vocabulary was learned from (:func:`learned_float`).
    An integer or Float64 column is matched in float64, exactly: a float64 value that is no entry is unseen. So is
    any column of a vocabulary not learned from floats (``learned`` None: text, or classes read from a file written
    before pipekit kept the type). A narrower float column of a vocabulary learned from floats is matched in its own
    type, so a Float32 column (``df_shrink``, a shrunk Parquet file, a Polars ``Float32``) holding 0.1 as
    0.100000001490116 is the entry ``'0.1'``, learned from float32 or float64 values, as a float64 0.1 is. Where
    several entries are one float32 value, the entry written as that float32 is written is its category (``'0.1'``,
    not ``'0.10000000000000002'``), then the one that is that value exactly; an entry the type cannot hold (past its
    range, or a tiny number it holds as 0) is no value of such a column.
    Third, for a Float64 column of a vocabulary learned from Float32 values only, the entries as float32 keys, with
    their codes (None otherwise): a float64 value that matches no entry is the entry its float32 is written as, so
    float32 rows made float64 (0.100000001490116) and the float64 values a float32 column was shrunk from
    (1.2000000000000002, read again from the CSV) are the categories learned from that column.
    Worked out once per class vocabulary, column type and learned type (:meth:`CategoryMap.derived`).

    >>> numbers, codes, _ = float_keys(["#na#", "0.1", "0.10000000000000002", "2.5", "1e300"], pl.Float32(), "Float64")
    >>> numbers.to_list(), codes, float_keys(["#na#", "0.1", "1e300"], pl.Float64(), "Float32")[2][0].to_list()
    ([0.10000000149011612, 2.5], [1, 3], [0.10000000149011612])
    >>> float_keys(["#na#", "0.1"], pl.Float64(), "Float64")[2], float_keys(["#na#", "0.1"], pl.Float32())[0].to_list()
    (None, [0.1])
    """
    def compute(v: Sequence[str]) -> tuple[pl.Series, list[int], tuple[pl.Series, list[int]] | None]:
        fkeys = [float(t) for t in v[1:]]
        fcodes = _plain_float_codes(v, fkeys, dtype.is_integer())
        numbers = pl.Series([fkeys[i - 1] for i in fcodes], dtype=pl.Float64)
        if not dtype.is_float() or learned is None or (dtype == pl.Float64 and learned != "Float32"):
            return numbers, fcodes, None
        own = numbers.cast(pl.Float32 if dtype == pl.Float64 else dtype)
        texts = pl.Series([v[i] for i in fcodes], dtype=pl.String)
        if dtype == pl.Float64:
            single = (texts == own.cast(pl.String)) & own.is_finite()
            return numbers, fcodes, (own.filter(single), pl.Series(fcodes).filter(single).to_list()) \
                if single.any() else None
        keys = pl.DataFrame({"key": own, "code": fcodes}).with_columns(
            held=(own.is_finite() | numbers.is_infinite() | numbers.is_nan()) & ((own != 0) | (numbers == 0)),
            rank=pl.when(texts == own.cast(pl.String)).then(0).when(numbers == own.cast(pl.Float64)).then(1)
            .otherwise(2))
        keys = keys.filter("held").sort("rank", "code").unique("key", keep="first").sort("code")
        return keys["key"], keys["code"].to_list(), None
    if isinstance(vocab, CategoryMap):
        return vocab.derived(f"float_keys {dtype} {learned}", compute)
    return compute(vocab)


def _key_type(keys: Sequence[int]) -> pl.DataType | None:
    """The integer type integer category ``keys`` are matched in, from their range: Int64, UInt64 (non-negative ids
    of 64 bits), Int128 (ids past 64 bits: a 30-digit account number); None past 128 bits (matched as text)."""
    lo, hi = min(keys, default=0), max(keys, default=0)
    if -(2**63) <= lo and hi < 2**63:
        return pl.Int64()
    if lo >= 0 and hi < 2**64:
        return pl.UInt64()
    if -(2**127) <= lo and hi < 2**127:
        return pl.Int128()
    return None


#: the text a vocabulary holds for a date ('2021-05-01') and for a datetime ('2020-01-01 09:00:00.000000', with its
#: offset where it had a time zone: '+09:00'), as Polars writes them
_DATE_TEXT = r"^-?\d{4,}-\d{2}-\d{2}$"
_DATETIME_TEXT = r"^-?\d{4,}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?([+-]\d{2}:?\d{2})?$"


def temporal_keys(vocab: Sequence[str]) -> tuple[pl.DataType, pl.Series] | None:
    """Where ``vocab`` (``#na#`` then a column's values as text) holds the dates or datetimes of a Date or Datetime
    column, the type they were learned as (``pl.Date``; ``pl.Datetime`` in UTC where they had a time zone, naive
    where not) and the values as the physical integers of that type, in vocabulary order; None for any other
    vocabulary. Worked out once per class vocabulary (:meth:`CategoryMap.derived`).

    >>> temporal_keys(["#na#", "2021-05-01", "2021-05-02"])[0], temporal_keys(["#na#", "a"])
    (Date, None)
    """
    if len(vocab) < 2 or not vocab[1][:1].isdigit() and not vocab[1].startswith("-"):
        return None  # a word or id vocabulary (millions of entries) is never parsed
    if isinstance(vocab, CategoryMap):
        return vocab.derived("temporal_keys", _temporal_keys_of)
    return _temporal_keys_of(vocab)


def _temporal_keys_of(vocab: Sequence[str]) -> tuple[pl.DataType, pl.Series] | None:
    """:func:`temporal_keys` worked out over the whole of ``vocab``."""
    text = pl.Series(list(vocab[1:]), dtype=pl.String)
    if text.str.contains(_DATE_TEXT).all():
        learned: pl.DataType = pl.Date()
        values = text.str.to_date("%Y-%m-%d", strict=False)
    elif text.str.contains(_DATETIME_TEXT).all():
        zoned = text.str.contains(r"[+-]\d{2}:?\d{2}$")
        if zoned.any() and not zoned.all():
            return None
        unit: Literal["ns", "us"] = "ns" if text.str.contains(r"\.\d{9}").any() else "us"
        fmt = "%Y-%m-%d %H:%M:%S%.f" + ("%z" if zoned.all() else "")
        values = text.str.to_datetime(fmt, time_unit=unit, time_zone="UTC" if zoned.all() else None, strict=False)
        learned = values.dtype
    else:
        return None
    if values.null_count():
        return None
    return learned, values.to_physical()


def as_learned_time(col: pl.Expr, dtype: pl.DataType, learned: pl.DataType) -> pl.Expr:
    """Column ``col`` (of temporal type ``dtype``) as values of the type a Categorify vocabulary learned
    (:func:`temporal_keys`): an instant in any time zone converted to UTC, a datetime at midnight the date it is
    (in its own time zone), a date the datetime at its midnight; what has no such value (a time of day for a date,
    a naive datetime for one learned in a time zone) is null, unseen."""
    zone = getattr(dtype, "time_zone", None)
    if learned == pl.Date:
        if dtype == pl.Date:
            return col
        if isinstance(dtype, pl.Datetime):
            return pl.when(col.dt.truncate("1d") == col).then(col.dt.date())
        return pl.lit(None, dtype=pl.Date)
    assert isinstance(learned, pl.Datetime)
    if learned.time_zone is not None:
        if isinstance(dtype, pl.Datetime) and zone is not None:
            return col.dt.convert_time_zone("UTC").dt.cast_time_unit(learned.time_unit)
        return pl.lit(None, dtype=learned)
    if dtype == pl.Date:
        return col.cast(learned)
    if isinstance(dtype, pl.Datetime) and zone is None:
        return col.dt.cast_time_unit(learned.time_unit)
    return pl.lit(None, dtype=learned)


class Categorify(TabularProc):
    """Map each categorical column to codes of a vocabulary learned on the training rows.

    Index 0 is ``#na#``: missing values and values never seen in training both map to it. Codes are
    looked up by value, so incoming pandas/Polars category codes are never trusted. ``ordered`` fixes
    the vocabulary order of some columns (e.g. ``{"ProductSize": ["Mini", "Small", "Medium", "Large"]}``);
    Polars ``Enum`` columns take their declared categories as the vocabulary, in their order and unused ones
    included, as fastai's Categorify does; so do pandas categoricals of text or ordered ones, and ordered Arrow
    dictionaries (a ``pyarrow.Table``, a Parquet file ``df.to_parquet`` wrote), which are read as Enums. An
    unordered pandas categorical of numbers is read as its numbers. Other values sort by their natural order:
    numbers as numbers, dates as dates, text as text (``'10'`` before ``'2'``). Dates and datetimes are looked up
    by value: the same instant in another time zone, or a date given as a datetime at midnight, is the training
    category.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"size": ["Small", "Large", "Small"]})
        >>> cat = Categorify(ordered={"size": ["Small", "Medium", "Large"]})
        >>> cat.setup(df, pl.lit(True), ColumnNames(["size"], []))
        >>> cat.classes_["size"]
        ['#na#', 'Small', 'Medium', 'Large']
    """

    order = 1
    param_constraints = {"ordered": Is(lambda v: v is None or isinstance(v, Mapping) and all(
        isinstance(vs, (list, tuple)) for vs in v.values()), "None or a dict column -> list of values")}
    #: a record without ``floats_`` (written before pipekit kept it) names no column as learned from floats: its
    #: float values are matched exactly, in float64, as pipekit matched them when it was written
    record_defaults = {"state.floats_": {}}
    classes_: dict[str, CategoryMap]
    #: the columns learned from float values, each with the float type of its training column ("Float32" or
    #: "Float64"): a Float32 column's values are compared in float32 with classes learned from floats, and a float64
    #: value with classes learned from Float32 values is also looked up by its float32 (:func:`float_keys`)
    floats_: dict[str, str]

    def __init__(self, ordered: Mapping[str, Sequence[Any]] | None = None) -> None:
        self.ordered = ordered
        self.check_params()

    def setup(self, frame: Frame, train: pl.Expr, names: ColumnNames) -> None:
        cols = list(names.cat_names)
        schema = schema_of(frame)
        unknown = sorted(set(self.ordered or {}) - set(cols))
        if unknown:
            raise ParameterError(f"Categorify: ordered names {unknown}, which are not categorical columns; the "
                                 f"categorical columns are {cols}")
        # each order written as the column's values are stored (3.0 for an int column is '3')
        for c in cols:
            if (err := nested_column_error(c, schema[c], "cat_names")) is not None:
                raise err
        ordered = {k: as_stored(k, vs, schema[k]) for k, vs in (self.ordered or {}).items()}
        classes: dict[str, CategoryMap] = {}
        floats: dict[str, str] = {}
        distinct = distinct_train_values(frame, cols, train)
        for c in cols:
            dtype = schema[c]
            values = distinct[c]
            if isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype == pl.String:
                values = values.cast(pl.String)
            elif dtype.is_float():  # a NaN id is missing (#na#), as a null is, not a category called 'NaN'
                values = values.filter(values.is_not_nan())
            # Sort by the native value (numbers numerically, text as text: '10' before '2'), then store as
            # strings cast the same way the encoder casts incoming values, so lookups match.
            seen: list[str] = values.sort().cast(pl.String).to_list()
            if c in ordered:
                extra = sorted(set(seen) - set(ordered[c]))
                if extra:
                    raise DataError(f"Categorify: column {c!r} has training values {extra[:5]} missing from "
                                    f"ordered[{c!r}]; add them to the order.")
                vocab = list(ordered[c])
            elif isinstance(dtype, pl.Enum):
                vocab = [str(v) for v in dtype.categories.to_list()]
            else:
                vocab = seen
            if not vocab:
                raise DataError(f"Categorify: categorical column {c!r} has no values in the training rows "
                                "(all null); drop it from cat_names.")
            if NA_TOKEN in vocab:
                vocab.remove(NA_TOKEN)
            if dtype.is_float():
                floats[c] = "Float32" if dtype == pl.Float32 else "Float64"
            classes[c] = with_learned_float(CategoryMap([NA_TOKEN] + vocab, name=c, code_of=column_code),
                                            floats.get(c))
        self.classes_, self.floats_ = classes, floats

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The stored classes (plain lists) back as :class:`CategoryMap` s, so a loaded model's
        ``dls.classes[col].o2i`` works as the trained one's, each marked with the float type ``floats_`` records
        it was learned from (a :class:`FieldError` names ``state.floats_`` where it is not such a record)."""
        super().state_from_data(state)
        classes = getattr(self, "classes_", None)
        if not isinstance(classes, dict):  # refused by the processor's check of the record
            return
        if "floats_" in vars(self):
            check_state(vars(self), "encoding float categories of new rows", floats_=Is(
                lambda v: isinstance(v, dict) and all(c in classes and t in FLOAT_TYPES for c, t in v.items()),
                f"categorical columns of classes_, each with the float type it was learned from {FLOAT_TYPES}"))
        floats = vars(self).get("floats_") or {}
        self.classes_ = {c: with_learned_float(CategoryMap(v, name=c, code_of=column_code), floats.get(c))
                         if isinstance(v, list) and isinstance(c, str) else v for c, v in classes.items()}

    def expressions(self, schema: Mapping[str, pl.DataType] | None = None, eager: bool = False) -> list[pl.Expr]:
        """Encoding expressions; with the input ``schema`` known, Categorical columns skip the string cast."""
        self.check_is_fitted()
        exprs = []
        for c, vocab in self.classes_.items():
            dtype = schema.get(c) if schema is not None else None
            exprs.append(self.encode_values(c, vocab, dtype, eager).fill_null(0).alias(c))
        return exprs

    @staticmethod
    def encode_values(c: str, vocab: list[str], dtype: pl.DataType | None, eager: bool = False) -> pl.Expr:
        """Codes by value into ``vocab`` (entry 0 is ``#na#``) for column ``c``; unseen values are null."""
        dt = code_dtype(len(vocab))
        col = pl.col(c)
        if (codes := truth_codes(vocab)) is not None:
            # a yes/no column learned as bools, 0/1 or "True"/"False" text matches any of those at predict (a CSV
            # gives the text back, pandas gives 0/1 after arithmetic): the value is read as true/false first
            t, f = (pl.lit(code, dtype=dt) for code in codes)
            truth = as_truth(col, dtype)
            return pl.when(truth).then(t).when(truth.not_()).then(f)
        if dtype is not None and dtype.is_temporal() and (keys_at := temporal_keys(vocab)) is not None:
            # dates and times by value: the same instant in another time zone, or a date given as a datetime at
            # midnight (a pandas row), is the training category its text in the vocabulary was written from
            return as_learned_time(col, dtype, keys_at[0]).to_physical().replace_strict(
                keys_at[1], list(range(1, len(vocab))), default=None, return_dtype=dt)
        if eager and isinstance(dtype, (pl.Categorical, pl.Enum)):
            # Look the few distinct strings up once, then gather codes by the physical index: 3x faster
            # than casting every row. Only for materialised frames, whose strings are all in the mapping.
            known = categories_of(dtype)
            if (texts := _whole_number_replacement(vocab)) is not None:
                known = known.replace(*texts)
            lut = known.cast(pl.Enum(vocab[1:]), strict=False).to_physical().cast(pl.Int32) + 1
            return pl.lit(lut.cast(dt)).gather(col.to_physical())
        if dtype is not None and (dtype.is_integer() or dtype.is_float()):
            try:
                keys = [int(v) for v in vocab[1:]]
            except ValueError:
                keys = None
            # a number is the entry written as that number is written: 7 is '7', never '007' nor '+7' (text ids
            # of a column of strings, where '7' and '007' may both be categories; fastai scores such a 7 as #na#)
            plain = None if keys is None else _plain_codes(vocab)
            if keys is not None and plain is not None:
                keys = [keys[i - 1] for i in plain]
            # the keys' own integer type (ids of 64 bits, unsigned ones from a hash too, 128 bits past those), the
            # values cast to it: one it cannot hold is no training id (unseen); keys past 128 bits are matched as text
            key_type = None if keys is None else _key_type(keys)
            if keys is not None and key_type is not None:
                if dtype.is_float():
                    # whole numbers stored as floats (a pandas row of numbers is all float64) are the same
                    # values as the training integers: 73.0 is user 73; 73.5 is no training value
                    col = pl.when(col.round() == col).then(col).otherwise(None)
                return col.cast(key_type, strict=False).replace_strict(
                    pl.Series(keys, dtype=key_type), list(range(1, len(vocab))) if plain is None else plain,
                    default=None, return_dtype=dt)
            try:  # a vocabulary of numbers written as floats ('5.0': a pandas id column with a NaN): 5 is 5.0
                found = None if keys is not None else float_keys(vocab, dtype, learned_float(vocab))
            except ValueError:
                found = None
            if found is not None:  # compared in the column's own precision (a Float32 column's 0.1 is '0.1')
                numbers, fcodes, as_float32 = found
                exact = col.cast(numbers.dtype).replace_strict(numbers, fcodes, default=None, return_dtype=dt)
                if as_float32 is None:
                    return exact
                narrow = col.cast(pl.Float32)
                return pl.coalesce(exact, narrow.replace_strict(as_float32[0], as_float32[1], default=None,
                                                                return_dtype=dt))
        if not (dtype is not None and (isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype == pl.String)):
            col = col.cast(pl.String)
        if (texts := _whole_number_replacement(vocab)) is not None:  # text '2012' of a category learned as 2012.0
            col = col.cast(pl.String).replace(*texts)
        # A non-strict cast to an Enum of the training values looks codes up by value: unseen -> null.
        return col.cast(pl.Enum(vocab[1:]), strict=False).to_physical().cast(dt) + pl.lit(1, dtype=dt)

    @staticmethod
    def lookup(c: str, vocab: list[str], values: Sequence[Any]) -> list[int | None]:
        """Codes into ``vocab`` of a user's own values of column ``c`` (ids as ints or as text, as encoding reads
        a column of them: a float 1097.0 is the training id 1097); None for a value never seen in training or
        missing. What ``CategoryMap.o2i`` and a collab model's ``weight(ids)`` look ids up with."""
        values = list(values)
        if not values:
            return []

        def codes(vals: list[Any]) -> list[Any]:
            col = pl.Series(c, vals, strict=False)
            return pl.DataFrame([col]).select(Categorify.encode_values(c, vocab, col.dtype)).to_series().to_list()

        try:  # values of one type at once; of mixed types (1097 and '1097') each alone, as its own type reads
            if len({type(v) for v in values if v is not None}) > 1:
                raise TypeError
            found = codes(values)
        except (TypeError, ValueError, pl.exceptions.PolarsError):
            found = [codes([v])[0] if v is not None else None for v in values]
        # text that reads as a number is the number where the text is not in the vocabulary (ids of a float column,
        # '1097.0', looked up as '1097', as an int column's '1097' is)
        for i, (v, f) in enumerate(zip(values, found)):
            if not f and isinstance(v, str):
                try:
                    number = float(v)
                except ValueError:
                    continue
                found[i] = codes([int(number) if number.is_integer() else number])[0]
        return [int(f) if f else None for f in found]

    def unseen(self, frame: pl.DataFrame) -> dict[str, int]:
        """Per categorical column of ``frame``: how many values were never seen in training (they become #na#)."""
        self.check_is_fitted()
        schema = frame.schema
        cols = [c for c in self.classes_ if c in schema]
        # looked up as encoding looks them up (a float 13.0 is the training id 13)
        counts = frame.select([(present(c, schema[c]) & self.encode_values(c, self.classes_[c], schema[c])
                                .is_null()).sum().alias(c) for c in cols]).row(0) if cols else ()
        return {c: int(n) for c, n in zip(cols, counts)}

    #: the share of the validation rows holding a category never seen in training that is warned about: a few
    #: rare values are normal, while a large share means the column does not work as a category
    VALID_UNSEEN_SHARE = 0.05

    def check_valid(self, raw: pl.DataFrame, out: pl.DataFrame) -> None:
        """Warn about a categorical column that most validation rows can only see as ``#na#`` (an elapsed time,
        an id or a count made categorical meets values past the training rows under a time split). Read from the
        codes already made: a present value coded 0 was never seen in training."""
        self.check_is_fitted()
        schema, made = raw.schema, set(out.columns)
        cols = [c for c in self.classes_ if c in schema and c in made]
        if not cols or not len(raw):
            return
        held = raw.select([present(c, schema[c]).alias(c) for c in cols])
        for c in cols:
            unseen = held[c] & (out[c] == 0)
            n = int(unseen.sum())
            if n and n >= self.VALID_UNSEEN_SHARE * len(raw):
                shown = raw[c].filter(unseen).unique(maintain_order=True).head(3).to_list()
                if _dates(raw[c]):  # a date is neither: its parts are
                    fix = (f"{c!r} holds dates: make its parts with add_datepart(df, {c!r}) before building the "
                           "Tabular, and put them in cat_names (Year, Month, Dayofweek, ...) and cont_names "
                           "(Elapsed)")
                else:
                    fix = ("a column whose values run past the training rows (an elapsed time, an id, a count) is "
                           "continuous: put it in cont_names (cont_cat_split(max_card=...) puts an integer column "
                           "of few distinct values in cat_names)")
                warn(f"Categorify: {n} of {len(raw)} validation rows ({n / len(raw):.0%}) hold a value of "
                     f"categorical column {c!r} never seen in the training rows (e.g. {shown}), which the "
                     f"model sees as {NA_TOKEN!r}. {fix[0].upper() + fix[1:]}.")

    def check_new(self, frame: pl.DataFrame) -> None:
        """Warn about values never seen in training (they become ``#na#``, as a genuinely new category should).
        A column whose every value is unseen, two or more different values of it, and written another way than in
        training (numbers for text or text for numbers, other spacing or case) is refused: it would score every row
        as ``#na#``. New ids of the same kind (new users of a recommender) are only warned about."""
        unseen = {c: n for c, n in self.unseen(frame).items() if n}
        for c, n in unseen.items():
            col = frame[c]
            given = col.drop_nulls()
            if col.dtype.is_float():
                given = given.drop_nans()
            learned = self.classes_[c][1:]
            if n == len(given) and given.n_unique() >= 2 and _written_otherwise(given.unique().head(1000), learned):
                shown = given.unique(maintain_order=True).head(5).to_list()
                raise DataError(f"Categorify: none of the values of categorical column {c!r} was seen in training: "
                                f"given {shown} ({col.dtype}), learned {learned[:5]}"
                                f"{' ...' if len(learned) > 5 else ''}; write the column as it was written for "
                                "training (same type, spelling and codes). If these are new categories, set them to "
                                f"null to score them as {NA_TOKEN!r}, as an unseen value is.")
        if unseen:
            warn(f"Categorify: values never seen in training were mapped to {NA_TOKEN!r} "
                 f"(count per column: {unseen}).")


#: the range of a float32, which the processed columns are: a statistic outside it cannot encode a value
_F32_MAX, _F32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38


def _stored_number(v: Any, positive: bool = False) -> bool:
    """Whether a statistic read from a file can encode values: a finite number within float32's range (above
    its smallest normal number when ``positive``, as a standard deviation divides)."""
    x = finite_number(v)
    return x is not None and abs(x) <= _F32_MAX and (x >= _F32_TINY if positive else True)


def _dates(col: pl.Series) -> bool:
    """Whether a column holds dates: a Date or Datetime column, or text whose first values read as ISO dates.

    >>> _dates(pl.Series(["2015-07-31", "2015-07-30"])), _dates(pl.Series(["a", "b"]))
    (True, False)
    """
    if col.dtype.is_temporal():
        return True
    if col.dtype != pl.String:
        return False
    head = col.drop_nulls().head(20)
    return len(head) > 0 and bool(head.str.contains(r"^\d{4}-\d{2}-\d{2}").all())


def denormalize(z: Any, mean: float, std: float) -> np.ndarray:
    """Values ``Normalize`` scaled back to the data's own units, ``z * std + mean``, each rounded to the decimals its
    float32 code holds: past about 7 significant digits of ``z * std`` the digits are float32's rounding, not the
    data's (a fnlwgt of 96185 comes back as 96185.002, a capital gain of 0 as 0.0038). What ``Tabular.show`` and a
    table's ``show_batch`` display.

    >>> z = np.float32([(96185 - 189778.4) / 105549.98, -189778.4 / 105549.98, np.nan])
    >>> (z.astype(float) * 105549.98 + 189778.4).round(4).tolist()[:2], denormalize(z, 189778.4, 105549.98).tolist()
    ([96185.002, 0.0038], [96185.0, 0.0, nan])
    """
    z = np.asarray(z, dtype=np.float64)
    noise = std * np.maximum(np.abs(z), 1.0) * 2.0 ** -23
    with np.errstate(invalid="ignore", divide="ignore"):  # a missing value stays missing
        scale = 10.0 ** np.clip(np.floor(-np.log10(noise)), 0, 15)
    return np.round((z * std + mean) * scale) / scale + 0.0  # + 0.0: no -0.0


class Normalize(TabularProc):
    """Scale continuous columns to zero mean and unit standard deviation of the training rows (the population
    standard deviation, ``ddof=0``, as fastai's ``Normalize`` computes it, so the scaled values are the book's).

    A constant column keeps std 1 so it becomes zeros instead of infinities.

    fastai has one ``Normalize`` for tables and images, so a notebook that star-imports ``pipekit.tabular.all`` after
    ``pipekit.vision.all`` has this class where images want theirs: ``Normalize.from_stats(*imagenet_stats)`` and,
    in a DataBlock's ``batch_tfms``, ``Normalize`` or ``Normalize()`` give :class:`pipekit.vision.Normalize`.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"x": [1.0, 3.0, 5.0, 7.0]})
        >>> norm = Normalize()
        >>> norm.setup(df, pl.lit(True), ColumnNames([], ["x"]))
        >>> norm.stds_, df.with_columns(norm.expressions())["x"].to_list()
        ({'x': 2.23606797749979}, [-1.341640830039978, -0.4472135901451111, 0.4472135901451111, 1.341640830039978])
    """

    order = 2
    means_: dict[str, float]
    stds_: dict[str, float]

    @classmethod
    def from_stats(cls, mean: Sequence[float], std: Sequence[float]) -> Any:
        """:class:`pipekit.vision.Normalize` with these per-channel statistics, a batch transform for images
        (``batch_tfms=Normalize.from_stats(*imagenet_stats)``), as fastai's one ``Normalize`` gives it."""
        from pipekit.vision.transforms import Normalize as ImageNormalize

        return ImageNormalize.from_stats(mean, std)

    @classmethod
    def batch_transform(cls, pieces: Sequence[Normalize]) -> Any:
        """What stands for this table proc in a DataBlock's ``batch_tfms`` (``batch_tfms=Normalize()``):
        :class:`pipekit.vision.Normalize` taking its statistics from a sample of the training images. One fitted on a
        table's columns is refused. The other way round, pipekit.vision's ``Normalize`` says what stands for it in a
        table's ``procs`` through its ``table_proc`` class method."""
        fitted = [p for p in pieces if p.is_fitted]
        if fitted:
            raise ParameterError(f"DataBlock: batch_tfms got pipekit.tabular's Normalize (a table proc) fitted on the "
                                 f"columns {list(fitted[0].means_)[:5]}; for images give pipekit.vision's: "
                                 "Normalize.from_stats(*imagenet_stats), or Normalize() to take the statistics from "
                                 "a sample of the training images")
        from pipekit.vision.transforms import Normalize as ImageNormalize

        return ImageNormalize()

    def setup(self, frame: Frame, train: pl.Expr, names: ColumnNames) -> None:
        cols = list(names.cont_names)
        if not cols:
            self.means_, self.stds_ = {}, {}
            return
        stats = collect(frame.select([pl.col(c).filter(train).mean().alias(f"{c}\x00m") for c in cols]
                                      + [pl.col(c).filter(train).std(ddof=0).alias(f"{c}\x00s") for c in cols]))
        self.means_, self.stds_ = {}, {}
        for c in cols:
            m, s = stats[f"{c}\x00m"][0], stats[f"{c}\x00s"][0]
            if m is None:
                raise DataError(f"Normalize: continuous column {c!r} has no values in the training rows (all null); "
                                 "drop it from cont_names or put FillMissing before Normalize.")
            self.means_[c] = float(m)
            self.stds_[c] = float(s) if s is not None and s > 0 else 1.0

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file, checked as FillMissing's is before anything scales with it: ``means_`` a
        finite number for each column, ``stds_`` a finite positive one for the same columns (a std of 0 would
        scale every new value to an infinity). A :class:`FieldError` names the field (``state.stds_``)."""
        super().state_from_data(state)
        if not state:
            return  # an unfitted proc's record
        purpose = "scaling continuous columns of new rows"

        def numbers(positive: bool) -> Is:
            def ok(v: Any) -> bool:
                return isinstance(v, dict) and all(isinstance(c, str) for c in v) and all(
                    _stored_number(v[c], positive) for c in v)
            return Is(ok, "a finite number " + ("above 0 " if positive else "") + "within float32's range for each "
                      "column, by column name")

        check_state(vars(self), purpose, means_=numbers(False))
        means = self.means_
        check_state(vars(self), purpose, stds_=Is(lambda v: numbers(True).accepts(v) and list(v) == list(means),
                                                  "a finite number above 0 within float32's range for each column of "
                                                  "means_, in its order"))

    def expressions(self, schema: Mapping[str, pl.DataType] | None = None, eager: bool = False) -> list[pl.Expr]:
        self.check_is_fitted()
        # computed in the column's own type: a Float64 one (values float32 cannot hold as whole units, see
        # TabularProcessor.cont_float64_) is centred in float64, and only then made Float32, where the centred
        # values keep their distinct values
        return [((pl.col(c) - self.means_[c]) / self.stds_[c]).cast(pl.Float32).alias(c) for c in self.means_]


def make_procs(procs: Sequence[Any] | Any | None) -> list[TabularProc]:
    """Procs given as classes or instances (one, or a list), as instances sorted by their ``order`` (fill,
    categorify, normalize); anything else is left for the caller's parameter check to name."""
    out = [p() if isinstance(p, type) and issubclass(p, TabularProc) else p for p in as_list(procs)]
    return sorted(out, key=lambda p: p.order if isinstance(p, TabularProc) else 0)


def unshared_procs(procs: Any) -> Any:
    """``procs`` as a new table's own: each proc instance given (``Normalize()``) as an unfitted copy, so that two
    tables given one list fit their own statistics; a table fitting the user's instances in place would change what
    the first table's ``test_dl`` and ``new`` do once the second is made. Classes and anything else are left as
    they are, for the processor to make and check.

    >>> norm = Normalize()
    >>> unshared_procs([norm, Categorify])[0] is norm
    False
    """
    if procs is None:
        return None
    return [p.clone() if isinstance(p, TabularProc) else p for p in as_list(procs)]


def check_fitted_procs(procs: Sequence[Any], cont_names: Sequence[str], cont_names_: Sequence[str]) -> None:
    """Refuse the procs of a fitted processing read from a file (``load_learner`` checks an export's) that cannot
    process new rows as ``setup`` left them. Each proc checks its own fields as it is read (``state_from_data``), but
    an emptied record (``"state": {}``) reads as an unfitted proc, and a FillMissing emptied of its columns as one
    that fills nothing, which only the processing they belong to can tell apart: every proc must hold what its setup
    learned (the ``*_`` attributes its class declares), and each FillMissing must fill every continuous input the
    processing was given (``cont_names``, as its setup fills them all) that it still has (``cont_names_``); one it
    does not fill reaches the model with its missing values, and its ``<col>_na`` flag is missing from every row. A
    :class:`FieldError` names the field from the processing's record (``params.procs[0].state.columns_``).

    >>> fm = FillMissing()
    >>> fm.setup(pl.DataFrame({"age": [20.0, None]}), pl.lit(True), ColumnNames([], ["age"]))
    >>> check_fitted_procs([fm, Normalize()], ["age"], ["age"])
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'params.procs[1].state.means_' is missing: ...
    """
    for i, proc in enumerate(procs):
        if not isinstance(proc, TabularProc):
            continue  # the processing's parameter check names it
        name = type(proc).__name__
        learned = [n for k in type(proc).__mro__ for n in vars(k).get("__annotations__", {})
                   if n.endswith("_") and not n.startswith("_")]
        missing = [n for n in learned if n not in vars(proc)]
        if missing or not proc.is_fitted:
            raise FieldError(f"params.procs[{i}].state" + (f".{missing[0]}" if missing else ""),
                             f"is missing: the fitted processing's {name} processes new rows with what its setup "
                             f"learned ({', '.join(learned) or 'its state'}), and this record holds "
                             f"{'none of it' if not proc.is_fitted else 'only ' + ', '.join(proc.fitted_state())}; "
                             "the file is damaged or was not written by pipekit: save or export it again")
        if isinstance(proc, FillMissing):
            lacking = [c for c in cont_names if c in cont_names_ and c not in proc.columns_]
            if lacking:
                raise FieldError(f"params.procs[{i}].state.columns_",
                                 f"must list every continuous input the processing fills "
                                 f"(cont_names={list(cont_names)[:8]}), as its setup fills each of them; it lacks "
                                 f"{lacking[:5]}, whose missing values would reach the model unfilled (and a "
                                 "'<col>_na' flag the processing names would be missing from every row); the file "
                                 "is damaged or was not written by pipekit: save or export it again")


DEFAULT_PROCS = (Categorify, FillMissing, Normalize)
#: what ``procs=`` accepts: one proc (class or instance), a list of them, or None
Procs = Union[Sequence[Union[type[TabularProc], TabularProc]], type[TabularProc], TabularProc, None]
