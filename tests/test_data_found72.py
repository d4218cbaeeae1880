"""The data pipeline on real data, as fastai 2.8 gives it: items as a NumPy array or a pandas or Polars Series through
plain per-item functions, a regression target of two columns, a table's targets in test_dl, ColSplitter over a number
column, and fastai's EndSplitter and FileSplitter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from pipekit.core import DataError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, Categorize, ColReader, ColSplitter, DataBlock, Datasets, EndSplitter,
                          FileSplitter, GrandparentSplitter, RegressionBlock, TfmdLists, Transform, get_image_files,
                          parent_label)
from pipekit.datasets import path

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def mnist_files() -> list[str]:
    """Every 10th of mnist_tiny's train/ and valid/ files, in name order (fastai lists the same files)."""
    return sorted(str(f) for f in get_image_files(path("mnist_tiny"), folders=["train", "valid"]))[::10]


def adult(n: int = 200) -> pd.DataFrame:
    df = pd.read_csv(path("adult_sample") / "adult.csv").iloc[:n].copy()
    df["is_valid"] = np.arange(len(df)) % 4 == 0
    return df


def name_len(o):
    return len(str(o))


def lab(f):
    return Path(f).parent.name


class Lab(Transform):
    def encodes(self, f):
        return Path(f).parent.name


KINDS = {"numpy": np.array, "pandas": pd.Series, "polars": pl.Series}


# ------------------------------------------------------------------ items as an array or a Series
@pytest.mark.parametrize("kind", list(KINDS))
def test_datasets_over_an_array_or_series_run_a_plain_function_on_each_item(mnist_files, kind):
    """fastai: Datasets(items, [[name_len], [parent_label, Categorize()]]) gives each item its own name length,
    whatever holds the items; a function of the whole array gave one number for the whole column."""
    splits = GrandparentSplitter()(mnist_files)
    dsets = Datasets(KINDS[kind](mnist_files), [[name_len], [parent_label, Categorize()]], splits=splits)
    listed = Datasets(mnist_files, [[name_len], [parent_label, Categorize()]], splits=splits)
    train = [mnist_files[i] for i in splits[0]]
    assert dsets.train[0] == listed.train[0] == (len(train[0]), ["3", "7"].index(lab(train[0])))
    assert [dsets.valid[i][0] for i in range(len(dsets.valid))] == [len(mnist_files[i]) for i in splits[1]]
    xb, yb = dsets.dataloaders(bs=4, shuffle=False).valid.one_batch()
    assert xb.tolist() == [len(mnist_files[i]) for i in splits[1][:4]]
    assert yb.tolist() == [["3", "7"].index(lab(mnist_files[i])) for i in splits[1][:4]]


@pytest.mark.parametrize("kind", ["numpy", "pandas"])
@pytest.mark.parametrize("tfm", [lab, Lab(), lambda o: o.split("/")[-2]], ids=["function", "subclass", "lambda"])
def test_tfmdlists_over_an_array_or_series_label_each_item(mnist_files, kind, tfm):
    """fastai: TfmdLists(items, [lab, Categorize()]) over an ndarray or a pandas Series labels each file, as over a
    list (a function or a Transform subclass written for one path failed on the whole column)."""
    splits = GrandparentSplitter()(mnist_files)
    tls = TfmdLists(KINDS[kind](mnist_files), [tfm, Categorize()], splits=splits)
    assert tls.vocab == ["3", "7"]
    assert [tls.train[i] for i in range(len(tls.train))] == [["3", "7"].index(lab(mnist_files[i])) for i in splits[0]]
    assert [tls.valid[i] for i in range(len(tls.valid))] == [["3", "7"].index(lab(mnist_files[i])) for i in splits[1]]


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_function_of_the_whole_column_giving_one_value_per_item_runs_once(mnist_files, kind):
    """The fast path stays: a function that works on the whole array (or Series) and gives one value per item is
    called once; one giving a single value for the column is run on each item instead."""
    calls = []

    def doubled(a):
        calls.append(type(a))
        return a * 2 if not isinstance(a, str) else a + a

    lens = KINDS[kind]([len(f) for f in mnist_files])
    tl = TfmdLists(lens, [doubled])
    assert len(calls) == 1 and [tl[i] for i in range(3)] == [2 * len(f) for f in mnist_files[:3]]

    def total(a):  # one number for a column; one item's own for an item
        return int(np.sum(a)) if hasattr(a, "__len__") else a + 1

    tl = TfmdLists(lens, [total])
    assert [tl[i] for i in range(len(tl))] == [len(f) + 1 for f in mnist_files]


# ------------------------------------------------------------------ a regression target of two columns
def test_regression_target_read_from_two_columns_is_a_two_column_float_batch():
    """fastai: RegressionBlock(n_out=2) with get_y=ColReader(['age', 'hours-per-week']) gives a (bs, 2) float
    target (pipekit refused it: "needs numbers, got Struct")."""
    df = adult()
    db = DataBlock(blocks=(CategoryBlock, RegressionBlock(n_out=2)), get_x=ColReader("sex"),
                   get_y=ColReader(["age", "hours-per-week"]), splitter=ColSplitter())
    dls = db.dataloaders(df, bs=4, shuffle=False)
    _, yb = dls.valid.one_batch()
    valid = df[df.is_valid]
    assert yb.dtype == torch.float32 and tuple(yb.shape) == (4, 2)
    assert yb.tolist() == valid[["age", "hours-per-week"]].iloc[:4].astype(float).values.tolist()
    assert yb.tolist() == [[49.0, 40.0], [42.0, 50.0], [46.0, 40.0], [30.0, 40.0]]  # fastai 2.8.12's batch


def test_regression_target_of_two_columns_checks_width_and_names_a_missing_value():
    df = adult(40)
    three = DataBlock(blocks=(CategoryBlock, RegressionBlock(n_out=3)), get_x=ColReader("sex"),
                      get_y=ColReader(["age", "hours-per-week"]), splitter=ColSplitter())
    with pytest.raises((DataError, PipelineStepError), match=r"n_out=3\) got 2 value"):
        three.dataloaders(df, bs=4)
    df["hours-per-week"] = df["hours-per-week"].astype("Int64")
    df.loc[5, "hours-per-week"] = pd.NA
    two = DataBlock(blocks=(CategoryBlock, RegressionBlock(n_out=2)), get_x=ColReader("sex"),
                    get_y=ColReader(["age", "hours-per-week"]), splitter=ColSplitter())
    with pytest.raises((DataError, PipelineStepError), match=r"column 'hours-per-week' at row\(s\) \[5\]"):
        two.dataloaders(df, bs=4)


# ------------------------------------------------------------------ test_dl of a table's rows
@pytest.fixture(scope="module")
def salary_dls():
    df = adult()
    db = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                   splitter=ColSplitter())
    return df, db.dataloaders(df, bs=8, seed=0)


def test_test_dl_of_a_datablocks_rows_reads_the_inputs_unless_labels_are_asked_for(salary_dls):
    """As fastai's DataBlock: rows carrying the target column still give the inputs only by default (a batch of
    one), and with_labels=True reads their targets, so learn.validate scores them."""
    df, dls = salary_dls
    new = df.iloc[:8]
    (xb,) = dls.test_dl(new).one_batch()
    assert xb.flatten().tolist() == new.age.astype(float).tolist()
    xb, yb = dls.test_dl(new, with_labels=True).one_batch()
    assert yb.tolist() == [dls.vocab.index(s) for s in new.salary]
    from torch import nn
    from torch.nn import functional as F

    from pipekit.learn import Learner
    scores = Learner(dls, nn.Linear(1, 2), loss_func=F.cross_entropy).validate(dl=dls.test_dl(new, with_labels=True))
    assert scores and scores[0] is not None and np.isfinite(scores[0])


def test_test_dl_of_rows_without_their_target_reads_the_inputs(salary_dls):
    df, dls = salary_dls
    new = df.iloc[:8].drop(columns=["salary"])
    assert len(dls.test_dl(new).one_batch()) == 1
    with pytest.raises(DataError):
        dls.test_dl(new, with_labels=True)


def test_test_dl_of_rows_with_a_target_never_seen_reads_the_inputs(salary_dls):
    df, dls = salary_dls
    new = df.iloc[:8].copy()
    new["salary"] = "unknown"
    assert len(dls.test_dl(new).one_batch()) == 1
    with pytest.raises(DataError, match="with_labels=False"):
        dls.test_dl(new, with_labels=True)


# ------------------------------------------------------------------ ColSplitter over numbers
def test_colsplitter_reads_any_nonzero_number_as_validation_as_fastai():
    """fastai's ColSplitter(): df['is_valid'].astype(bool), so 2 is validation as 1 is (pipekit trained on it)."""
    df = adult(60)
    df["is_valid"] = np.arange(len(df)) % 3  # 0, 1, 2, ...
    with pytest.warns(UserWarning, match=r"numbers other than 0 and 1 \(2, in 20 rows\).*40 of 60 rows.*valid_value=2"):
        train, valid = ColSplitter()(df)
    assert valid.tolist() == [i for i in range(60) if i % 3] and train.tolist() == list(range(0, 60, 3))
    small = pd.DataFrame({"x": range(6), "is_valid": [0, 1, 0, 1, 2, 0]})
    assert [s.tolist() for s in ColSplitter()(small)] == [[0, 2, 5], [1, 3, 4]]  # fastai 2.8.12's
    assert [s.tolist() for s in ColSplitter(on=1)(small)] == [[0, 2, 4, 5], [1, 3]]
    floats = pd.DataFrame({"x": range(3), "is_valid": [0.0, 0.5, -1.0]})
    assert ColSplitter()(floats)[1].tolist() == [1, 2]


def test_colsplitter_refuses_a_missing_value_naming_its_row():
    df = adult(20)
    df["is_valid"] = pd.array([0, 1] * 10, dtype="Int64")
    df.loc[7, "is_valid"] = pd.NA
    with pytest.raises(DataError, match="first at row 7"):
        ColSplitter()(df)


# ------------------------------------------------------------------ EndSplitter, FileSplitter
@pytest.fixture(scope="module")
def all_mnist() -> list[Path]:
    return sorted(Path(f) for f in get_image_files(path("mnist_tiny"), folders=["train", "valid"]))


@pytest.mark.parametrize("pct, last, want", [(0.2, True, (1127, 281, 1127, 1407)), (0.25, False, (1056, 352, 0, 351)),
                                             (0.01, True, (1394, 14, 1394, 1407))])
def test_endsplitter_splits_the_items_in_order_as_fastai(all_mnist, pct, last, want):
    """fastai 2.8.12's EndSplitter(valid_pct, valid_last) over mnist_tiny's 1408 files."""
    train, valid = EndSplitter(valid_pct=pct, valid_last=last)(all_mnist)
    assert (len(train), len(valid), int(valid[0]), int(valid[-1])) == want
    assert sorted(train.tolist() + valid.tolist()) == list(range(len(all_mnist)))
    again = DataBlock(blocks=(CategoryBlock,), get_y=parent_label, splitter=EndSplitter(pct, last)).clone()
    assert again.splitter.get_params() == {"valid_pct": pct, "valid_last": last}


def test_filesplitter_puts_the_listed_file_names_in_validation_as_fastai(all_mnist, tmp_path):
    """fastai 2.8.12's FileSplitter(fname): an item is validation when Path(item).name is a line of the file (a name
    listed once marks every file of that name, whatever its folder)."""
    fname = tmp_path / "valid.txt"
    fname.write_text("\n".join(f.name for f in all_mnist[::7]) + "\n")
    train, valid = FileSplitter(fname)(all_mnist)
    assert (len(train), len(valid)) == (1173, 235)
    assert valid[:10].tolist() == [0, 7, 14, 19, 21, 28, 35, 42, 49, 56]
    listed = {f.name for f in all_mnist[::7]}
    assert valid.tolist() == [i for i, f in enumerate(all_mnist) if f.name in listed]
    dls = DataBlock(blocks=(CategoryBlock, CategoryBlock), get_x=parent_label, get_y=parent_label,
                    splitter=FileSplitter(str(fname))).dataloaders([str(f) for f in all_mnist], bs=8)
    assert len(dls.valid_ds) == 235


def test_filesplitter_names_a_missing_file(all_mnist, tmp_path):
    with pytest.raises(DataError, match="valid.txt"):
        FileSplitter(tmp_path / "valid.txt")(all_mnist)


@pytest.mark.parametrize("vocab", [np.array(["3", "7"]), pl.Series(["3", "7"]), pd.Index(["3", "7"]), ("3", "7")],
                         ids=["numpy", "polars", "pandas-index", "tuple"])
def test_a_vocab_given_as_an_array_or_series_is_kept_as_its_labels(mnist_files, vocab, tmp_path):
    """``CategoryBlock(vocab=np.array(['3', '7']))`` (fastai takes it) builds, labels as the list does, and a fitted
    Categorize of such a vocab saves and loads (a pandas Index could not be saved; a Polars Series crashed setup)."""
    import pipekit

    assert CategoryBlock(vocab=vocab).vocab_arg == ["3", "7"]
    labels = [Path(f).parent.name for f in mnist_files]
    dsets = Datasets(mnist_files, [[parent_label, Categorize(vocab=vocab)]],
                     splits=GrandparentSplitter()(mnist_files))
    assert list(dsets.vocab) == ["3", "7"]
    train = [lab for f, lab in zip(mnist_files, labels) if Path(f).parent.parent.name == "train"]
    assert [dsets.vocab[int(y)] for (y,) in dsets.train] == train
    cat = Categorize(vocab=vocab)
    cat.setup(pl.Series(labels))
    back = pipekit.load(pipekit.save(cat, tmp_path / "cat.pipekit"))
    assert list(back.vocab) == ["3", "7"] and back.vocab_arg == ["3", "7"]
    with pytest.raises(ParameterError, match="one text"):
        CategoryBlock(vocab="37")
