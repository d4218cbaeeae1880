"""``TabularProcessor``: column roles + fitted procs + target encoding, as plain data.

It validates the input columns, fits the procs on the training rows and applies them to any frame,
eager or lazy. ``Tabular`` uses it for in-memory tables; ``process_to_parquet`` uses the same object
on a lazy scan with the streaming engine for tables larger than memory.

Example:
    >>> import numpy as np, polars as pl
    >>> from pipekit.tabular.procs import Categorify, Normalize
    >>> df = pl.DataFrame({"a": ["x", "y", "x"], "b": [1.0, 2.0, 3.0], "y": ["no", "yes", "no"]})
    >>> proc = TabularProcessor([Categorify(), Normalize()], ["a"], ["b"], ["y"])
    >>> out = proc.fit_transform(df, np.array([True, True, False]))
    >>> proc.y_vocab_, out["a"].to_list(), out["y"].to_list()
    (['no', 'yes'], [1, 2, 1], [0, 1, 0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from pipekit.tabular.procs import ColumnNames, TabularProc, code_dtype, distinct_train_values

_SPLIT_COL = "__pipekit_train__"
_Y_KINDS = ("category", "regression")


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def _y_kind(y_block: Any) -> str | None:
    if y_block is None:
        return None
    kind = y_block if isinstance(y_block, str) else getattr(y_block, "kind", None)
    if kind not in _Y_KINDS:
        raise ValueError(f"y_block: expected None, 'category', 'regression' or a CategoryBlock/RegressionBlock, got {y_block!r}.")
    return kind


class TabularProcessor:
    """Column roles, fitted procs and target encoding; ``transform`` works on eager and lazy frames.

    Fitted attributes: ``cat_names_`` (including ``<col>_na`` columns added by FillMissing),
    ``cont_names_``, ``classes_`` (vocab per categorical column), ``y_kind_``, ``y_vocab_``, ``c_``.
    """

    def __init__(self, procs: Sequence[TabularProc], cat_names: Sequence[str], cont_names: Sequence[str],
                 y_names: Sequence[str] = (), y_block: Any = None) -> None:
        # Dependency order whatever the order given: fill (adds _na columns), categorify, normalise.
        self.procs = sorted(procs, key=lambda p: p.order)
        self.cat_names, self.cont_names, self.y_names = list(cat_names), list(cont_names), list(y_names)
        both = set(self.cat_names) & set(self.cont_names)
        if both:
            raise ValueError(f"columns {sorted(both)} are in both cat_names and cont_names; give each column one role.")
        inputs_as_y = set(self.y_names) & (set(self.cat_names) | set(self.cont_names))
        if inputs_as_y:
            raise ValueError(f"target column(s) {sorted(inputs_as_y)} are also listed as inputs; remove them from "
                             "cat_names/cont_names (a model must not see its target).")
        if not self.cat_names and not self.cont_names:
            raise ValueError("Tabular: give at least one input column in cat_names or cont_names.")
        self.y_block = y_block
        self.y_kind_: str | None = _y_kind(y_block)
        given_vocab = getattr(y_block, "vocab", None) if not isinstance(y_block, str) else None
        self.y_vocab_: list[str] | None = [str(v) for v in given_vocab] if given_vocab else None
        self.cat_names_: list[str] = list(self.cat_names)
        self.cont_names_: list[str] = list(self.cont_names)
        self.fitted_ = False

    # ------------------------------------------------------------------ validation
    def check_columns(self, columns: Sequence[str], where: str = "Tabular", need_y: bool = True) -> None:
        have = set(columns)
        for role, names in (("cat_names", self.cat_names), ("cont_names", self.cont_names),
                            ("y_names", self.y_names if need_y else [])):
            missing = [c for c in names if c not in have]
            if missing:
                raise KeyError(f"{where}: column(s) {missing} listed in {role} are not in the data; "
                               f"the columns are {list(columns)}.")

    def _prepare(self, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
        """Cast continuous columns to Float32 (NaN -> null), failing early on text or dates."""
        schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
        exprs = []
        for c in self.cont_names:
            dt = schema[c]
            if dt in (pl.Date, pl.Datetime, pl.Duration, pl.Time) or isinstance(dt, (pl.Datetime, pl.Duration)):
                raise TypeError(f"continuous column {c!r} holds {dt} values; turn dates into numbers with "
                                f"add_datepart(df, {c!r}) first.")
            if _is_text(dt):
                if isinstance(frame, pl.DataFrame):
                    s = frame[c].cast(pl.String)
                    num = s.str.strip_chars().cast(pl.Float64, strict=False)
                    bad = (s.is_not_null() & num.is_null() & (s.str.strip_chars() != "")).arg_true()
                    if len(bad):
                        i = int(bad[0])
                        raise TypeError(f"continuous column {c!r} holds text that is not a number, e.g. {s[i]!r} at "
                                        f"row {i} ({len(bad)} such rows); clean the column or list it in cat_names.")
                exprs.append(pl.col(c).cast(pl.String).str.strip_chars().replace("", None)
                             .cast(pl.Float32, strict=False).alias(c))
            elif dt == pl.Float32 and isinstance(frame, pl.DataFrame) and not frame[c].is_nan().any():
                continue  # already what the procs need
            elif dt.is_numeric() or dt == pl.Boolean:
                exprs.append(pl.col(c).cast(pl.Float32).fill_nan(None).alias(c))
            elif dt == pl.Null:
                exprs.append(pl.col(c).cast(pl.Float32))
            else:
                raise TypeError(f"continuous column {c!r} has type {dt}, which is not numeric; list it in cat_names.")
        return frame.with_columns(exprs) if exprs else frame

    def _check_targets(self, frame: pl.DataFrame) -> None:
        for c in self.y_names:
            n = frame[c].null_count()
            if n:
                first = int(frame[c].is_null().arg_true()[0])
                raise ValueError(f"target column {c!r} has {n} null value(s), first at row {first}; drop those rows "
                                 f"(df.filter(pl.col({c!r}).is_not_null())) or fill them before building Tabular.")

    # ------------------------------------------------------------------ fitting
    def _fit_targets(self, frame: pl.DataFrame | pl.LazyFrame, train: pl.Expr) -> None:
        if not self.y_names:
            self.y_kind_ = self.y_kind_ or "none"
            self.c_ = 0
            return
        schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
        if self.y_kind_ is None:
            dt = schema[self.y_names[0]]
            self.y_kind_ = "category" if (_is_text(dt) or dt == pl.Boolean) else "regression"
        if self.y_kind_ == "category":
            if len(self.y_names) != 1:
                raise ValueError(f"a classification target is one column, got y_names={self.y_names}.")
            if self.y_vocab_ is None:
                c = self.y_names[0]
                vals = distinct_train_values(frame, c, train)
                if _is_text(vals.dtype):
                    vals = vals.cast(pl.String)
                self.y_vocab_ = vals.sort().cast(pl.String).to_list()
            if len(self.y_vocab_) < 2:
                raise ValueError(f"target column {self.y_names[0]!r} has a single class {self.y_vocab_} in the "
                                 "training rows; a classifier needs at least two.")
            self.c_ = len(self.y_vocab_)
        else:
            for c in self.y_names:
                if not (schema[c].is_numeric() or schema[c] == pl.Boolean):
                    raise TypeError(f"regression target {c!r} has type {schema[c]}; pass y_block='category' to "
                                    "classify, or cast it to numbers.")
            self.c_ = len(self.y_names)

    def _target_exprs(self, frame: pl.DataFrame | pl.LazyFrame) -> list[pl.Expr]:
        if self.y_kind_ == "category":
            c = self.y_names[0]
            schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
            dt = code_dtype(len(self.y_vocab_))
            if isinstance(frame, pl.DataFrame) and isinstance(schema[c], pl.Categorical):
                # As in Categorify: look the distinct strings up once, gather by physical code.
                strings = schema[c].categories.to_series()
                lut = strings.cast(pl.Enum(self.y_vocab_), strict=False).to_physical().cast(dt)
                return [pl.lit(lut).gather(pl.col(c).to_physical()).alias(c)]
            col = pl.col(c) if _is_text(schema[c]) else pl.col(c).cast(pl.String)
            return [col.cast(pl.Enum(self.y_vocab_), strict=False).to_physical().cast(code_dtype(len(self.y_vocab_)))
                    .alias(c)]
        if self.y_kind_ == "regression":
            return [pl.col(c).cast(pl.Float32).alias(c) for c in self.y_names]
        return []

    def _fit(self, frame: pl.DataFrame | pl.LazyFrame, train: pl.Expr) -> pl.DataFrame | pl.LazyFrame:
        names = ColumnNames(list(self.cat_names), list(self.cont_names))
        frame = self._prepare(frame)
        for proc in self.procs:
            proc.setup(frame, train, names)
            schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
            frame = frame.with_columns(proc.expressions(schema, eager=isinstance(frame, pl.DataFrame)))
        self.cat_names_, self.cont_names_ = names.cat_names, names.cont_names
        self._fit_targets(frame, train)
        self.fitted_ = True
        return frame.with_columns(self._target_exprs(frame))

    def fit_transform(self, items: pl.DataFrame, train_mask: np.ndarray) -> pl.DataFrame:
        """Fit on the rows where ``train_mask`` is true, return every row processed (inputs and targets)."""
        self._check_targets(items)
        frame = items.with_columns(pl.Series(_SPLIT_COL, np.asarray(train_mask, dtype=bool)))
        out = self._fit(frame, pl.col(_SPLIT_COL))
        assert isinstance(out, pl.DataFrame)
        out = out.select(self._out_columns(out.columns))
        self._check_unseen_labels(items, out)
        return out

    def fit_lazy(self, frame: pl.LazyFrame, train: pl.Expr | None = None, keep: Sequence[str] = ()) -> pl.LazyFrame:
        """Fit on a lazy scan (each statistic is a streaming aggregation); return the processing query.

        ``keep`` names extra raw columns to pass through (e.g. a split flag)."""
        if not isinstance(frame, pl.LazyFrame):
            raise TypeError(f"fit_lazy: expected a polars LazyFrame, got {type(frame).__name__}.")
        self.check_columns(frame.collect_schema().names(), where="fit_lazy")
        out = self._fit(frame, pl.lit(True) if train is None else train)
        return out.select(self._out_columns(out.collect_schema().names()) + list(keep))

    def _out_columns(self, available: Sequence[str]) -> list[str]:
        return self.cat_names_ + self.cont_names_ + [c for c in self.y_names if c in available]

    def _check_unseen_labels(self, raw: pl.DataFrame, out: pl.DataFrame) -> None:
        if self.y_kind_ != "category":
            return
        c = self.y_names[0]
        bad = out[c].is_null() & raw[c].is_not_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise ValueError(f"target column {c!r} has value {raw[c][i]!r} at row {i} that is not among the training "
                             f"classes {self.y_vocab_}; keep every class in the training rows.")

    # ------------------------------------------------------------------ applying
    def transform(self, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
        """Apply the fitted processing to new rows; targets are encoded when their columns are present."""
        if not self.fitted_:
            raise RuntimeError("TabularProcessor is not fitted; build a Tabular (or call fit_transform) first.")
        lazy = isinstance(frame, pl.LazyFrame)
        columns = frame.collect_schema().names() if lazy else frame.columns
        self.check_columns(columns, where="new data", need_y=False)
        y_present = bool(self.y_names) and all(c in columns for c in self.y_names)
        if not lazy:
            if y_present and all(frame[c].null_count() == len(frame) for c in self.y_names):
                frame, y_present = frame.drop(self.y_names), False  # an unlabelled test set
            if y_present:
                self._check_targets(frame)
            for proc in self.procs:
                proc.check_new(frame)
        raw = frame
        frame = self._prepare(frame)
        for proc in self.procs:
            schema = frame.collect_schema() if lazy else frame.schema
            frame = frame.with_columns(proc.expressions(schema, eager=not lazy))
        if y_present:
            frame = frame.with_columns(self._target_exprs(frame))
        out_cols = self.cat_names_ + self.cont_names_ + (self.y_names if y_present else [])
        frame = frame.select(out_cols)
        if y_present and not lazy:
            self._check_unseen_labels(raw, frame)
        return frame

    def decode(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Categorical codes (and class targets) back to their values."""
        exprs = []
        for c, vocab in self.classes_.items():
            if c in frame.columns:
                exprs.append(pl.col(c).cast(pl.Int64).replace_strict(list(range(len(vocab))), vocab,
                                                                     return_dtype=pl.String).alias(c))
        if self.y_kind_ == "category" and self.y_names[0] in frame.columns:
            c = self.y_names[0]
            exprs.append(pl.col(c).replace_strict(list(range(len(self.y_vocab_))), self.y_vocab_,
                                                  return_dtype=pl.String).alias(c))
        return frame.with_columns(exprs)

    @property
    def classes_(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.procs:
            if getattr(p, "classes_", None):
                out.update(p.classes_)
        return out

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Everything needed to process new data, as JSON-able plain data."""
        return {"cat_names": self.cat_names, "cont_names": self.cont_names, "y_names": self.y_names,
                "cat_names_": self.cat_names_, "cont_names_": self.cont_names_, "y_kind_": self.y_kind_,
                "y_vocab_": self.y_vocab_, "c_": getattr(self, "c_", 0),
                "procs": [p.to_dict() for p in self.procs]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TabularProcessor:
        """Rebuild a fitted processor from ``state()`` (no pickle, no code executed)."""
        procs = [TabularProc.from_dict(d) for d in state["procs"]]
        obj = cls(procs, state["cat_names"], state["cont_names"], state["y_names"],
                  y_block=state["y_kind_"] if state["y_kind_"] in _Y_KINDS else None)
        obj.cat_names_, obj.cont_names_ = list(state["cat_names_"]), list(state["cont_names_"])
        obj.y_vocab_, obj.c_ = state["y_vocab_"], state["c_"]
        obj.y_kind_ = state["y_kind_"]
        obj.fitted_ = True
        return obj
