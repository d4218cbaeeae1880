"""Edges a fuzzing tester found, on adult.csv rows: a Tabular split that leaves rows in neither set says so as a
DataBlock's does; a fit whose training batch of one row a BatchNorm layer cannot normalise is refused naming how the
loader gave it and the fix (and still trains where no batch has one row, the model has no BatchNorm, or its
BatchNorm takes one row); a FillMissing flag ``<col>_na`` named as a column the source has is refused as a model
input and warned of otherwise."""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from pipekit.core.errors import DataError, PipekitWarning
from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, TabularDataLoaders, TabularPandas
from pipekit.tabular.all import Learner, MSELossFlat, nn, tabular_learner

CATS, CONTS, Y = ["workclass", "education"], ["age", "education-num"], "salary"
NO_BN = {"use_bn": False, "bn_cont": False}


@pytest.fixture(scope="module")
def adult_40(adult_1500):
    """40 adult rows as pandas."""
    return adult_1500.head(40).to_pandas()


# ------------------------------------------------------------------ a split that places some rows in neither set
def test_tabular_splits_leaving_rows_out_warn_as_a_datablock_does(adult_40):
    splits = (list(range(20)), list(range(30, 40)))  # rows 20..29 forgotten
    for make in (Tabular, TabularPandas):
        with pytest.warns(PipekitWarning, match=r"^Tabular: 10 of 40 rows are in neither the training nor the "
                                                r"validation set and are left out \(first: row 20\); to leave them out "
                                                r"without this warning, give Tabular only the rows to split .*, or use "
                                                r"a splitter that places every row \(or list each row"):
            to = make(adult_40, procs=[Categorify, FillMissing, Normalize], cat_names=CATS, cont_names=CONTS,
                      y_names=Y, splits=splits)
        assert (len(to.train), len(to.valid)) == (20, 10)
    # masks and a splitting function: the same warning, naming the first row in neither
    valid = np.zeros(40, dtype=bool)
    valid[35:] = True
    train = np.zeros(40, dtype=bool)
    train[:5] = True
    with pytest.warns(PipekitWarning, match=r"30 of 40 rows .*\(first: row 5\)"):
        Tabular(adult_40, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(train, valid))
    with pytest.warns(PipekitWarning, match=r"5 of 40 rows .*\(first: row 35\)") as said:
        Tabular(adult_40, cat_names=CATS, cont_names=CONTS, y_names=Y,
                splits=lambda items: (np.arange(30), np.arange(30, 35)))
    neither = [str(w.message) for w in said if "in neither" in str(w.message)]
    assert len(neither) == 1 and "list each row" not in neither[0]  # a function, not two lists: a splitter fixes it
    # the DataBlock's warning is the same text, of items
    db = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader(Y),
                   splitter=lambda items: splits)
    with pytest.warns(PipekitWarning, match=r"^10 of 40 items are in neither the training nor the validation set and "
                                            r"are left out \(first: \{.*\}\); to leave them out without this warning, "
                                            r"give get_items only the items to split, or use a splitter that places "
                                            r"every item$"):
        db.dataloaders(adult_40, bs=4)


def test_tabular_splits_placing_every_row_say_nothing(adult_40):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*in neither the training nor the validation set", PipekitWarning)
        for splits in (None, (list(range(30)), list(range(30, 40))), RandomSplitter(0.25, seed=0),
                       RandomSplitter(0.0, seed=0)):
            to = Tabular(adult_40, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=splits)
            assert len(to.train) + len(to.valid) == 40


# ------------------------------------------------------------------ batches of one row and BatchNorm
def _dls(df, **kw):
    """Loaders predicting hours worked (a number: one training row has a target, where a class would be alone)."""
    return TabularDataLoaders.from_df(df, procs=[Categorify, FillMissing, Normalize], cat_names=CATS,
                                      cont_names=CONTS, y_names="hours-per-week", y_block="regression", seed=0, **kw)


def _fit(dls, **kw):
    learn = tabular_learner(dls, layers=[8], **kw)
    learn.fit(1, 1e-3)
    return learn


def test_one_training_row_with_batchnorm_is_refused_naming_the_fix(adult_40, one_torch_thread):
    # torch's own words were "Expected more than 1 value per channel when training, got input size [1, 1]"
    dls = _dls(adult_40.head(2), bs=64, valid_idx=[1])
    learn = tabular_learner(dls, layers=[8])
    with pytest.raises(DataError, match=r"^fit: a training batch holds one row \(the training set has one row\), and "
                                        r"the model's BatchNorm layer 'bn_cont' needs at least 2 rows per batch in "
                                        r"training .*give more rows, or a lower valid_pct.*or train "
                                        r"tabular_learner\(dls, config=dict\(use_bn=False, bn_cont=False\)\)$"):
        learn.fit(1)


def test_bs_1_or_a_last_batch_of_one_row_with_batchnorm_is_refused(adult_40, one_torch_thread):
    with pytest.raises(DataError, match=r"one row \(bs=1, 30 training rows one per batch\).*pass bs=2 or more"):
        _fit(_dls(adult_40, bs=1, valid_idx=list(range(30, 40))))
    # in order (no shuffle, so nothing is dropped): 9 training rows in batches of 4 end with a batch of one
    dls = _dls(adult_40.head(10), bs=4, valid_idx=[9], shuffle=False)
    assert [len(b[0]) for b in dls.train] == [4, 4, 1]
    with pytest.raises(DataError, match=r"the last of the 3 batches of bs=4 holds the one row left of the 9 training "
                                        r"rows.*drop it \(drop_last=True; a shuffled training loader drops it by default\)"):
        _fit(dls)
    _fit(_dls(adult_40.head(10), bs=3, valid_idx=[9], shuffle=False))  # a bs that leaves no row alone


def test_batches_of_one_row_train_where_batchnorm_is_not_in_the_way(adult_40, one_torch_thread):
    # no BatchNorm: bs=1 trains, as does one training row
    _fit(_dls(adult_40.head(8), bs=1, valid_idx=[6, 7]), config=NO_BN)
    _fit(_dls(adult_40.head(2), bs=64, valid_idx=[1]), config=NO_BN)
    # BatchNorm with 2 or 3 training rows and bs=4: one batch of them
    for n in (3, 4):
        _fit(_dls(adult_40.head(n), bs=4, valid_idx=[n - 1]))
    # shuffled, 9 rows in batches of 4: the last row of the epoch is dropped, so nothing is refused
    dls = _dls(adult_40.head(10), bs=4, valid_idx=[9])
    assert [len(b[0]) for b in dls.train] == [4, 4]
    _fit(dls)


def test_batches_of_one_row_train_where_batchnorm_takes_them(adult_40, one_torch_thread):
    # a BatchNorm1d over a sequence (rows, channels, steps) normalises each channel over the row's steps, and one in
    # eval mode over its running statistics: torch takes one row in both, and so does fit
    class Steps(nn.Module):
        def __init__(self, frozen):
            super().__init__()
            self.conv, self.bn, self.head, self.frozen = nn.Conv1d(1, 4, 1), nn.BatchNorm1d(4), nn.Linear(4, 1), frozen

        def forward(self, x_cat, x_cont):
            if self.frozen:
                self.bn.eval()
            return self.head(self.bn(self.conv(x_cont.unsqueeze(1))).mean(2))

    for frozen in (False, True):
        learn = Learner(_dls(adult_40.head(8), bs=1, valid_idx=[6, 7]), Steps(frozen), loss_func=MSELossFlat())
        learn.fit(1)
        assert len(learn.recorder.values) == 1


# ------------------------------------------------------------------ a column named as FillMissing's flag
@pytest.fixture(scope="module")
def adult_with_na_column(adult_1500):
    """40 adult rows whose ages miss every fifth value, and a column of the user's named 'age_na'."""
    df = adult_1500.head(40)
    age = pl.when(pl.int_range(pl.len()) % 5 == 1).then(None).otherwise(pl.col("age")).alias("age")
    return df.with_columns(age, pl.Series("age_na", ["u", "v"] * 20))


def test_a_column_named_as_a_flag_is_refused_as_an_input_and_warned_of_otherwise(adult_with_na_column, tmp_path):
    msg = (r"(^|adult_na\.csv: )FillMissing: continuous column 'age' has missing values in the training rows, so it gets a flag column "
           r"'age_na', but the table already has a column 'age_na'; rename that column \(pandas: "
           r"df\.rename\(columns=\{'age_na': 'age_na_given'\}\); .* or pass FillMissing\(add_col=False\)\.$")
    said = (r"FillMissing: continuous column 'age' has missing values in the training rows, so it gets a flag column "
            r"'age_na', and the table has a column 'age_na' that is no model input: the processed table's 'age_na' "
            r"\(to\.items, show_batch\) is the flag, not yours; rename your column")
    csv = tmp_path / "adult_na.csv"
    adult_with_na_column.write_csv(csv)
    splits = (list(range(30)), list(range(30, 40)))
    for source in (adult_with_na_column.to_pandas(), adult_with_na_column, csv):
        with pytest.raises(DataError, match=msg):  # an input: the flag and the user's column would be one
            Tabular(source, cat_names=CATS + ["age_na"], cont_names=CONTS, y_names=Y, splits=splits)
        with pytest.warns(PipekitWarning, match=said):  # no input: it trains, as before, and says whose it is
            to = Tabular(source, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=splits)
        assert "age_na" in to.cat_names and "age_na" not in CATS  # the flag, an input of its own
    with pytest.warns(PipekitWarning, match=said):
        Tabular(csv, cat_names=CATS, cont_names=CONTS, y_names=Y, skipinitialspace=True)
    with pytest.warns(PipekitWarning, match=said):
        _dls(adult_with_na_column.to_pandas(), bs=8, valid_idx=list(range(30, 40)))


def test_a_column_named_as_a_flag_that_no_flag_takes_is_kept(adult_with_na_column):
    df = adult_with_na_column.to_pandas()
    # no flag: FillMissing(add_col=False) fills and adds no column
    to = Tabular(df, procs=[Categorify, FillMissing(add_col=False), Normalize], cat_names=CATS, cont_names=CONTS,
                 y_names=Y)
    assert "age_na" not in to.cat_names
    # no age missing: no flag is learned, and the user's column is an input as any other
    full = df.assign(age=df["age"].fillna(30.0))
    to = Tabular(full, cat_names=CATS + ["age_na"], cont_names=CONTS, y_names=Y)
    assert to.cat_names[:3] == CATS + ["age_na"] and "age" not in to.processor.procs[0].na_columns_ and sorted(to.items["age_na"].unique().tolist()) == [1, 2]
