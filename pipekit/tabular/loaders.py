"""Tabular DataLoaders: whole batches gathered from materialised tensors ``(cats, conts, y)``.

The processed table is turned into three contiguous tensors once; a batch is an ``index_select`` on
each (no per-batch DataFrame indexing, no per-row Python). The recipe that goes with the loaders is
``TabularRecipe``, whose one parameter is the fitted ``TabularProcessor``: it is what an exported model
carries and what ``dls.test_dl(df)`` encodes new rows with.

Example:
    >>> dls = tab.dataloaders(bs=64, seed=0)          # doctest: +SKIP
    >>> cats, conts, y = dls.one_batch()              # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from pipekit.core.component import Component
from pipekit.core.errors import DataError, collecting
from pipekit.core.validate import (BOOL, Is, argument_names, bs_or_batch_size, check, check_arguments,
                                   is_pandas, shuffle_or_shuffle_train)
from pipekit.data.blocks import CategoryBlock, RegressionBlock, TransformBlock
from pipekit.data.dataloaders import DataLoaders, Datasets
from pipekit.data.items import check_unique_columns, table_kind
from pipekit.data.loader import ArrayDataset, DataLoader
from pipekit.data.splitters import VALID_PCT, IndexSplitter, RandomSplitter
from pipekit.data.store import TensorStore
from pipekit.data.transform import BatchPipeline
from pipekit.tabular.core import (Tabular, TabularSplit, csv_header, csv_schemas_read_once, is_csv_file, naming_file,
                                  pandas_index_of, process_new, read_frame, scan_table, show_rows)
from pipekit.tabular.processor import CLASS_TYPES, TabularProcessor, column_names
from pipekit.tabular.procs import DEFAULT_PROCS, Procs, denormalize


def _values(value: Any) -> list:
    return value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else list(value)


class TabularCatBlock(TransformBlock):
    """The categorical inputs of a tabular batch: one row of codes into ``classes`` per item, decoded to a
    dict column -> value. An input block: no loss, no geometry, shown as columns of a table.

    >>> import torch
    >>> from pipekit.tabular import TabularCatBlock
    >>> block = TabularCatBlock(["workclass", "sex"], {"workclass": ["#na#", "Private", "State-gov"],
    ...                                               "sex": ["#na#", "Female", "Male"]})
    >>> block.decode(torch.tensor([2, 1]))
    {'workclass': 'State-gov', 'sex': 'Female'}
    """

    table_columns = True

    def __init__(self, cat_names: Sequence[str] = (), classes: Mapping[str, Sequence[str]] | None = None) -> None:
        self.cat_names, self.classes = list(cat_names), classes

    def decode(self, value: Any, split_idx: int | None = 1) -> dict[str, str]:
        classes = self.classes or {}
        return {c: classes[c][int(i)] for c, i in zip(self.cat_names, _values(value))}


class TabularContBlock(TransformBlock):
    """The continuous inputs of a tabular batch (normalised floats), decoded to a dict column -> value in the
    data's own units (``stats``: column -> (mean, std) the values were normalised with).

    >>> import torch
    >>> from pipekit.tabular import TabularContBlock
    >>> block = TabularContBlock(["age", "hours"], {"age": (38.5, 13.5)})   # age was normalised, hours not
    >>> {k: round(v, 2) for k, v in block.decode(torch.tensor([1.0, 40.0])).items()}
    {'age': 52.0, 'hours': 40.0}
    """

    table_columns = True

    def __init__(self, cont_names: Sequence[str] = (), stats: Mapping[str, Sequence[float]] | None = None) -> None:
        self.cont_names, self.stats = list(cont_names), stats

    def decode(self, value: Any, split_idx: int | None = 1) -> dict[str, float]:
        stats = self.stats or {}
        return {c: float(denormalize(v, *stats[c])) if c in stats else float(v)
                for c, v in zip(self.cont_names, _values(value))}


def _stores(frame: pl.DataFrame, processor: TabularProcessor, with_y: bool, with_cont: bool = True) -> list[TensorStore]:
    cats, conts, y = TabularSplit(frame, processor, None, "all").arrays()
    if y is not None and y.ndim == 1 and processor.y_kind_ == "regression":
        # (n, 1) like the tabular and collab nets' predictions (and fastai's targets): the book's r_mse(preds, targs),
        # F.mse_loss and nn.MSELoss against a (bs, 1) output must not broadcast
        y = y[:, None]
    return ([TensorStore(cats)] + ([TensorStore(conts)] if with_cont else [])
            + ([TensorStore(y)] if with_y and y is not None else []))


class TabularRecipe(Component):
    """How tabular batches are made and new rows encoded: the fitted ``TabularProcessor``.

    Batches are ``(cats, conts[, y])``: two input blocks (``TabularCatBlock``, ``TabularContBlock``) and
    a ``CategoryBlock`` or ``RegressionBlock`` target built from the fitted target vocabulary. With
    ``with_cont=False`` (ratings: ``CollabDataLoaders``) a batch is ``(cats[, y])``, one input of codes, as a
    model written ``forward(self, x)`` takes it. New CSV files are read as the processor records the training
    file was read (its ``skipinitialspace``: ``TabularDataLoaders.from_csv`` drops the spaces after each comma in
    text values), so their values are the training values.

    >>> import polars as pl
    >>> import pipekit.datasets as D
    >>> from pipekit.tabular import TabularDataLoaders, TabularRecipe
    >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=200)
    >>> dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["sex"], cont_names=["age"], bs=32, seed=0)
    >>> recipe = dls.recipe
    >>> isinstance(recipe, TabularRecipe), recipe.n_inp_, [type(b).__name__ for b in recipe.fitted_blocks]
    (True, 2, ['TabularCatBlock', 'TabularContBlock', 'CategoryBlock'])
    >>> ds = recipe.new_datasets(df.head(3))           # new rows encoded as the training rows were
    >>> len(ds), [tuple(t.shape) for t in ds[0]]
    (3, [(1,), (1,)])
    """

    registry_kind = "recipe"
    param_constraints = {"processor": Is(lambda p: isinstance(p, TabularProcessor), "a TabularProcessor"),
                         "with_cont": BOOL}

    def __init__(self, processor: TabularProcessor, with_cont: bool = True) -> None:
        self.processor, self.with_cont = processor, with_cont
        self.check_params()

    @classmethod
    def upgrade_record(cls, record: dict[str, Any], version: int) -> None:
        """Files of format 2 kept the reading of the training CSV file (``skipinitialspace``) as a parameter of
        the recipe; it is now the processor's, which reads new files for every user of the processing."""
        processor = record["params"].get("processor")
        if version < 3 and "skipinitialspace" in record["params"] and isinstance(processor, dict) \
                and isinstance(processor.get("params"), dict) and "skipinitialspace" not in processor["params"]:
            processor["params"]["skipinitialspace"] = record["params"].pop("skipinitialspace")

    @property
    def n_inp_(self) -> int:
        """The inputs of a batch: codes and continuous values, or codes alone (``with_cont=False``)."""
        return 2 if self.with_cont else 1

    @property
    def is_fitted(self) -> bool:
        return self.processor.is_fitted

    def dl_type(self) -> type:
        return DataLoader

    def batch_pipeline(self) -> BatchPipeline:
        return BatchPipeline([])

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle or copy keeps: everything but the blocks built from the fitted state, rebuilt on use."""
        return {k: v for k, v in vars(self).items() if k != "_blocks"}

    def _built_from(self) -> tuple[list[Any], tuple[Any, ...]]:
        """What the fitted blocks are built from: the processor, its attributes and its procs' (compared by
        identity: fitting, loading or ``set_params`` assigns new objects), and the plain settings (by value)."""
        p = self.processor
        held = [p, *vars(p).values()]
        for proc in getattr(p, "procs", ()):
            held += [proc, *vars(proc).values()]
        return held, (self.with_cont, tuple(p.y_names))

    @property
    def fitted_blocks(self) -> tuple[TransformBlock, ...]:
        """The blocks of a batch, inputs then target, built from the fitted processor once and reused until what
        they are built from changes (another processor, a refit, a reload, another target)."""
        self.check_is_fitted("Tabular(...).dataloaders()")
        held, plain = self._built_from()
        built = self.__dict__.get("_blocks")
        if built is not None and built[1] == plain and len(built[0]) == len(held) \
                and all(a is b for a, b in zip(built[0], held)):
            return built[2]
        blocks = self._new_blocks()
        self._blocks = (held, plain, blocks)
        return blocks

    def _new_blocks(self) -> tuple[TransformBlock, ...]:
        p = self.processor
        ins: tuple[TransformBlock, ...] = (TabularCatBlock(p.cat_names_, p.classes_),) + (
            (TabularContBlock(p.cont_names_, p.cont_stats_),) if self.with_cont else ())
        if p.y_kind_ == "category":  # classes in the target's own type: a bool target predicts False/True
            classes = p.y_classes_
            y: TransformBlock = CategoryBlock(vocab=classes)
            y.setup(pl.Series(classes, dtype=CLASS_TYPES[p.y_type][0]), np.arange(p.c_))
        elif p.y_kind_ == "regression":
            y = RegressionBlock(n_out=len(p.y_names))
            y.setup(pl.Series([[0.0] * len(p.y_names)]), np.arange(1))
        else:
            return ins
        y.column_name = ", ".join(p.y_names)  # type: ignore[attr-defined]  # a table shows it under this name
        if len(p.y_names) > 1:  # several targets' values: a table shows each in its own column
            y.column_names = list(p.y_names)  # type: ignore[attr-defined]
        return ins + (y,)

    def prediction_of_row(self, source: Any, decoded: Any) -> Any:
        """What ``learn.predict`` gives for one row (``source``): the ``decoded`` label or number itself, or the
        list of several targets' numbers, which also shows the row with it (``show()``); a bool class as it is."""
        if isinstance(decoded, (bool, np.bool_)) or not self.processor.y_names:
            return decoded
        out: _ShowsItsRow
        if len(self.processor.y_names) > 1:  # several regression targets: one number per target, in y_names order
            values = _values(decoded) if isinstance(decoded, (list, tuple, torch.Tensor, np.ndarray)) else None
            if self.processor.y_kind_ != "regression" or values is None or len(values) != len(self.processor.y_names):
                return decoded
            out = PredictedValues(float(v) for v in values)
            out._recipe, out._source = self, source
            return out
        kind = next((k for k, types in ((PredictedLabel, str), (PredictedClass, (int, np.integer)),
                                        (PredictedValue, (float, np.floating))) if isinstance(decoded, types)), None)
        if kind is None:
            return decoded
        out = kind(decoded)
        out._recipe, out._source = self, source
        return out

    def new_datasets(self, source: Any, with_labels: bool | None = False) -> ArrayDataset:
        """Encode new rows (a DataFrame, a path, dict rows) with the fitted procs; ``with_labels=None`` keeps
        the target when the rows carry it (see :meth:`TabularProcessor.transform`)."""
        p = self.processor
        # rows to score may carry a blank or unknown target; ratings' ids (the only inputs without continuous
        # values) may not be blank: warned about, where a table's blank category is a category of its own
        frame = process_new(p, source, with_labels, ids=() if self.with_cont else p.cat_names_)
        labelled = bool(p.y_names) and all(c in frame.columns for c in p.y_names)
        if with_labels and not labelled:
            raise DataError(f"test_dl(with_labels=True): the new data lacks the target column(s) {p.y_names}.")
        stores = _stores(frame, p, with_y=labelled and with_labels is not False, with_cont=self.with_cont)
        return ArrayDataset(stores, blocks=self.fitted_blocks[:len(stores)], n_inp=self.n_inp_)


class _ShowsItsRow:
    """A table's prediction for one row: the value itself (a label or a number, compared, printed and saved as
    one), which also shows the row it was predicted for, as the book's ``row, clas, probs = learn.predict(...)``
    then ``row.show()`` does."""

    plain: type  # the built-in type the prediction is
    _recipe: TabularRecipe
    _source: Any

    def show(self) -> None:
        """The row as the model read it (categories as their values, a missing one as ``#na#``, numbers in the
        data's units) with the prediction in the target's column: a table in a notebook, printed in a script."""
        p = self._recipe.processor
        with collecting():  # predict has warned already about what the row lacks
            frame = process_new(p, self._source, False, ids=() if self._recipe.with_cont else p.cat_names_)
        value = self.plain(self)
        values = value if isinstance(value, list) else [value]  # several targets: one value per target column
        codes = [p.y_classes_.index(v) if p.y_kind_ == "category" and p.y_classes_ else v for v in values]  # as stored
        show_rows(p, frame.with_columns(pl.Series(c, [v]) for c, v in zip(p.y_names, codes)), 1, "row.show")


class PredictedLabel(_ShowsItsRow, str):
    """A predicted class of one row (a ``str``) that shows its row: ``show()``."""

    plain = str


class PredictedClass(_ShowsItsRow, int):
    """A predicted class of one row (an ``int``) that shows its row: ``show()``."""

    plain = int


class PredictedValue(_ShowsItsRow, float):
    """A predicted number of one row (a ``float``) that shows its row: ``show()``."""

    plain = float


class PredictedValues(_ShowsItsRow, list):
    """The predicted numbers of one row for several regression targets (a ``list`` of floats, one per target in
    ``y_names`` order) that shows its row with each prediction in its target's column: ``show()``."""

    plain = list


def tabular_dataloaders(tab: Any, bs: int = 64, val_bs: int | None = None, shuffle: bool = True,
                        seed: int | None = None, device: Any = None, num_workers: int | None = None,
                        with_cont: bool = True) -> DataLoaders:
    """DataLoaders over a ``Tabular``: the tensors are built once and both subsets index into them;
    ``with_cont=False`` leaves the continuous part out of the batches. A Tabular with no validation rows
    (``splits=None``) gets an empty validation loader: a learner trains on every row, with no validation scores.

    >>> import polars as pl
    >>> import pipekit.datasets as D
    >>> from pipekit.data import RandomSplitter
    >>> from pipekit.tabular import Tabular, tabular_dataloaders
    >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=200)
    >>> tab = Tabular(df, cat_names=["workclass", "sex"], cont_names=["age", "fnlwgt"], y_names="salary",
    ...               splits=RandomSplitter(0.2, seed=0))
    >>> dls = tabular_dataloaders(tab, bs=32, seed=0)
    >>> cats, conts, y = dls.one_batch()
    >>> tuple(cats.shape), tuple(conts.shape), tuple(y.shape), len(dls.train_ds), len(dls.valid_ds)
    ((32, 2), (32, 2), (32,), 160, 40)
    """
    if not tab.y_names:
        raise DataError("dataloaders: this Tabular has no target; give y_names= to train a model.")
    recipe = TabularRecipe(tab.processor, with_cont=with_cont)
    dsets = Datasets(tab.frame, [tab.train_idx, tab.valid_idx],
                     _stores(tab.frame, tab.processor, with_y=True, with_cont=with_cont),
                     recipe.fitted_blocks, recipe.n_inp_, recipe=recipe, table=tab)
    # A batch is three index_selects (microseconds): prefetch threads would only fight the training
    # loop for the GIL, so batches are made in the main thread unless asked otherwise.
    dls = DataLoaders.from_datasets(dsets, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                    num_workers=0 if num_workers is None else num_workers, drop_last=None)
    dls.tabular = tab  # type: ignore[attr-defined]
    return dls


def _has_no_rows(source: Any) -> bool:
    """Whether ``source`` (a frame, or a table file) has columns but no rows; a file's first row is all that is
    read (any fault reading it is left to the reading of the table, which names it)."""
    if isinstance(source, pl.DataFrame) or is_pandas(source, "DataFrame"):
        return len(source) == 0 and len(source.columns) > 0
    if is_csv_file(source):
        try:
            return scan_table(source).head(1).collect().height == 0
        except (pl.exceptions.PolarsError, DataError):  # a damaged line is named by the reading of the table
            return False
    return False


class TabularDataLoaders:
    """The book's tabular data in one call: a :class:`~pipekit.tabular.Tabular` (procs fitted on the training
    rows) and its ``dataloaders``; returns pipekit ``DataLoaders`` (with the ``Tabular`` as ``dls.tabular``).

    >>> import pipekit.datasets as D
    >>> dls = TabularDataLoaders.from_csv(D.path("adult_sample") / "adult.csv", y_names="salary",
    ...     cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], bs=64, seed=42)
    >>> dls.vocab, dls.tabular.cat_names
    (['<50k', '>=50k'], ['workclass', 'education'])
    """

    @staticmethod
    def from_df(df: Any, path: str | os.PathLike = ".", procs: Procs = DEFAULT_PROCS,
                cat_names: str | Sequence[str] | None = None, cont_names: str | Sequence[str] | None = None,
                y_names: str | Sequence[str] | None = None, y_block: Any = None,
                valid_idx: Sequence[int] | None = None, valid_pct: float = 0.2, seed: int | None = None,
                bs: int = 64, val_bs: int | None = None, shuffle: bool = True, device: Any = None,
                num_workers: int | None = None, skipinitialspace: bool = False, batch_size: int | None = None,
                shuffle_train: bool | None = None, **kwargs: Any) -> DataLoaders:
        """A table (Polars, pandas, Arrow or a path) with categorical ``cat_names``, continuous ``cont_names``
        (None: every numeric column not named as categorical or target, by a pandas frame's own types) and target
        ``y_names``; the rows at ``valid_idx`` are the validation set, else a random ``valid_pct`` (with ``seed``,
        which also fixes the batches). ``procs`` default to Categorify, FillMissing and Normalize. ``path``: the
        folder a learner on these loaders saves to (``dls.path``, then ``learn.path``); the data is in the table.
        ``skipinitialspace`` drops the spaces after each comma in the text values of a CSV file (and in its header's
        names), ``df`` and the new files ``dls.test_dl`` and ``dls.tabular.new`` read alike. Of a pandas frame only
        the columns named are converted, as ``Tabular`` converts them. ``batch_size`` is PyTorch's and fastai's name
        of ``bs``, ``shuffle_train`` fastai's older name of ``shuffle``; any other keyword is refused, naming the
        close ones.

        Built as ``Tabular(df, procs, cat_names, cont_names, y_names, y_block, splits=IndexSplitter(valid_idx)
        or RandomSplitter(valid_pct, seed), skipinitialspace).dataloaders(bs, ...)``.

        >>> import pandas as pd
        >>> import pipekit.datasets as D
        >>> df = pd.read_csv(D.path("adult_sample") / "adult.csv", skipinitialspace=True)
        >>> dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education", "sex"],
        ...                                  cont_names=["age", "fnlwgt"], valid_idx=list(range(800, 1000)), bs=64,
        ...                                  seed=0)
        >>> dls.vocab, len(dls.train_ds), len(dls.valid_ds), dls.tabular.procs
        (['<50k', '>=50k'], 32361, 200, [FillMissing(), Categorify(), Normalize()])
        >>> cats, conts, ys = dls.one_batch()       # category codes, normalised numbers, the target's codes
        >>> tuple(cats.shape), tuple(conts.shape), tuple(ys.shape)
        ((64, 3), (64, 2), (64,))
        """
        check_arguments("TabularDataLoaders.from_df", kwargs, argument_names(TabularDataLoaders.from_df))
        bs = bs_or_batch_size("TabularDataLoaders.from_df", bs, batch_size)
        shuffle = shuffle_or_shuffle_train("TabularDataLoaders.from_df", shuffle, shuffle_train)
        check("TabularDataLoaders.from_df", valid_pct=(valid_pct, VALID_PCT),
              skipinitialspace=(skipinitialspace, BOOL))
        cats, ys = column_names(cat_names), column_names(y_names)
        file = Path(df) if isinstance(df, (str, os.PathLike)) else None
        # a table is given to Tabular as it is (a pandas frame: only the columns it reads are converted), and a file
        # is read by Tabular, which names it; a CSV read with skipinitialspace, or one read whole (a .csv.gz, .zip,
        # .txt), is read here, the spaces beginning its header's names dropped too, as pandas.read_csv drops them
        source: Any = df
        read_here = file is not None and (skipinitialspace and is_csv_file(file) or table_kind(file) == "packed")
        # a CSV read with skipinitialspace is given to Tabular as a path: it reads only the model's columns, streaming
        streamed = file is not None and read_here and is_csv_file(file)
        if file is not None and read_here and not streamed:
            source = read_frame(file, skipinitialspace=skipinitialspace)
        elif is_pandas(df, "DataFrame"):
            check_unique_columns(list(df.columns), "pandas DataFrame")  # which one would a name read?
        elif file is None and not isinstance(df, (pl.DataFrame, pl.LazyFrame)):
            source = read_frame(df)  # Arrow, a Hugging Face dataset, rows...: made a Polars frame once
        with csv_schemas_read_once():  # a file's types inferred once, for its first row, header and columns
            if _has_no_rows(file if streamed else source):
                raise DataError(f"{file} has a header but no rows; there is nothing to train on: check the file"
                                if file is not None else "TabularDataLoaders.from_df: the table has no rows; there is "
                                "nothing to train on")
            if cont_names is None:  # every numeric column not named as categorical or target, in the table's order
                if is_pandas(source, "DataFrame"):  # the types pandas gives, the frame not converted
                    import pandas as pd

                    numbers = [str(c) for c, t in source.dtypes.items() if pd.api.types.is_numeric_dtype(t)
                               and not pd.api.types.is_bool_dtype(t)]  # named as the columns of the table read
                elif streamed:  # the file's types, from all its rows; its names as the table is read
                    header, schema = csv_header(df, skipinitialspace), scan_table(df, all_rows=True).collect_schema()
                    numbers = [c for c, w in header.items() if schema[w].is_numeric()]
                else:
                    schema = source.schema if isinstance(source, pl.DataFrame) else \
                        scan_table(source, all_rows=True).collect_schema()  # typed by all its rows, as it is read
                    numbers = [c for c, t in schema.items() if t.is_numeric()]
                cont_names = [c for c in numbers if c not in cats and c not in ys]
            conts = column_names(cont_names)
            wanted = list(dict.fromkeys(c for names in (cats, conts, ys) if isinstance(names, list) for c in names))
            if read_here and not streamed and all(c in source.columns for c in wanted):
                source = source.select(wanted)  # the columns the model reads, no copy
            splits = IndexSplitter(valid_idx) if valid_idx is not None else RandomSplitter(valid_pct, seed=seed)
            with naming_file(file if read_here else None):  # its errors name the file, as Tabular's do
                tab = Tabular(source, procs=procs, cat_names=cats, cont_names=conts, y_names=ys, y_block=y_block,
                              splits=splits, skipinitialspace=skipinitialspace)
        tab.label_rows(pandas_index_of(df, len(tab.frame)))  # a pandas df's dls.tabular.train.xs is pandas too
        dls: Any = tabular_dataloaders(tab, bs=bs, val_bs=val_bs, shuffle=shuffle, seed=seed, device=device,
                                       num_workers=num_workers)
        dls.path = Path(path)
        return dls

    @staticmethod
    def from_csv(csv: str | os.PathLike, skipinitialspace: bool = True, **kwargs: Any) -> DataLoaders:
        """:meth:`from_df` on a CSV file, read as ``from_csv`` reads tables (the first line names the columns,
        "," between them); ``skipinitialspace`` drops the spaces after each comma in text values (adult.csv writes
        ``", Private"``), as the book's reading does, in this file and in the new files ``dls.test_dl``,
        ``learn.predict`` and ``dls.tabular.new`` read.

        >>> import pipekit.datasets as D
        >>> dls = TabularDataLoaders.from_csv(D.path("adult_sample") / "adult.csv", y_names="salary",
        ...                                   cat_names=["workclass", "sex"], cont_names=["age"], bs=64, seed=0)
        >>> dls.vocab, dls.tabular.cat_names, dls.tabular.cont_names, len(dls.train_ds), len(dls.valid_ds)
        (['<50k', '>=50k'], ['workclass', 'sex'], ['age'], 26049, 6512)
        >>> cats, conts, ys = dls.one_batch()
        >>> tuple(cats.shape), tuple(conts.shape), tuple(ys.shape)
        ((64, 2), (64, 1), (64,))
        """
        check_arguments("TabularDataLoaders.from_csv", kwargs, argument_names(
            TabularDataLoaders.from_csv, TabularDataLoaders.from_df, but=("df",)))
        return TabularDataLoaders.from_df(csv, skipinitialspace=skipinitialspace, **kwargs)
