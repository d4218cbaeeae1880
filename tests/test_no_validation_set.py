"""Training on every item with no validation set (fastai's final fit on all the data): RandomSplitter(valid_pct=0),
IndexSplitter([]), a mid-level split [all, []] and Tabular(splits=None) give an empty validation loader, and a learner
trains with its validation loss and metrics recorded as None, on mnist_tiny and adult."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import (CategoryBlock, Categorize, DataBlock, Datasets, GrandparentSplitter, IndexSplitter,
                          PipelineStepError, RandomSplitter, get_image_files, parent_label)
from pipekit.learn import (ClassificationInterpretation, CrossEntropyLossFlat, EarlyStoppingCallback, Learner, ReduceLROnPlateau,
                           SaveModelCallback, accuracy, load_learner, simple_cnn)
from pipekit.tabular import Tabular, TabularDataLoaders, tabular_learner
from pipekit.vision import ImageBlock, IntToFloatTensor, PILImageBW, ToTensor

MNIST = D.path("mnist_tiny")
ADULT = D.path("adult_sample") / "adult.csv"
CAT, CONT = ["workclass", "education", "sex"], ["age", "fnlwgt", "education-num"]


def mnist_dls(splitter, source=None):
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files,
                       get_y=parent_label, splitter=splitter)
    return dblock.dataloaders(source or MNIST / "train", bs=64, seed=0, device="cpu")


def small_learner(dls, **kw):
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(1, 2, (8, 16)), loss_func=CrossEntropyLossFlat(), metrics=accuracy, **kw)


@pytest.fixture(scope="module")
def all_train():
    return mnist_dls(RandomSplitter(valid_pct=0, seed=42))


@pytest.fixture(scope="module")
def adult():
    return pl.read_csv(ADULT).head(2000)


def test_valid_pct_0_gives_an_empty_validation_loader(all_train):
    dls = all_train
    assert (len(dls.train_ds), len(dls.valid_ds), len(dls.valid), dls.valid.bs) == (709, 0, 0, 64)
    assert list(dls.valid) == [] and sum(len(y) for _, y in dls.train) == len(dls.train_ds) - 709 % 64
    with pytest.raises(DataError, match=r"holds no batch \(0 items.*valid_pct=0.*dls.train"):
        dls.valid.show_batch()


def test_fit_on_every_item_records_none_and_exports(all_train, tmp_path):
    learn = small_learner(all_train, path=tmp_path)
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit_one_cycle(1, 1e-2)
    (row,) = learn.recorder.values
    assert len(row) == 3 and isinstance(row[0], float) and np.isfinite(row[0]) and row[1:] == [None, None]
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))  # it trained
    assert learn.validate() == [None, None]  # fastai's answer for a validation set with no batch
    preds, targs = learn.get_preds(ds_idx=1)
    assert tuple(preds.shape) == (0, 2) and tuple(targs.shape) == (0,)
    assert tuple(learn.get_preds(ds_idx=0)[0].shape) == (709, 2)
    with pytest.raises(DataError, match=r"from_learner: the validation set is empty.*ds_idx=0"):
        ClassificationInterpretation.from_learner(learn)
    assert ClassificationInterpretation.from_learner(learn, ds_idx=0).confusion_matrix().sum() == 709
    learn.fine_tune(1, 1e-2)
    assert [r[1:] for r in learn.recorder.values] == [[None, None]]
    learn.export(tmp_path / "all.pipekit")
    back = load_learner(tmp_path / "all.pipekit")
    files = get_image_files(MNIST / "test")[:4]
    for f in files:
        label, idx, probs = back.predict(f)
        assert label == learn.predict(f)[0] and label in ("3", "7")
        torch.testing.assert_close(probs, learn.predict(f)[2])


def test_the_table_prints_none_as_fastai(all_train, monkeypatch, capsys):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    learn = small_learner(all_train)
    learn.fit(1, 1e-3)
    out = capsys.readouterr().out
    header, row = [line.split() for line in out.strip().splitlines()[-2:]]
    assert header[:4] == ["epoch", "train_loss", "valid_loss", "accuracy"] and row[2:4] == ["None", "None"]


def test_index_splitter_of_nothing_trains_on_every_item():
    dls = mnist_dls(IndexSplitter([]))
    assert (len(dls.train_ds), len(dls.valid_ds), len(dls.valid)) == (709, 0, 0)
    learn = small_learner(dls)
    learn.fit(1, 1e-2)
    assert learn.recorder.values[0][1:] == [None, None]


def test_grandparent_splitter_without_a_valid_folder_says_so_and_trains_on_train():
    said = r"no items under 'validation' folders.*the 709 item\(s\) under 'train' with no validation set"
    with pytest.warns(UserWarning, match=said):
        dls = mnist_dls(GrandparentSplitter(valid_name="validation"), source=MNIST)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (709, 0)  # the 'valid' and 'test' files are left out
    with pytest.raises(PipelineStepError, match="no items under 'training' folders"):
        mnist_dls(GrandparentSplitter(train_name="training"), source=MNIST)


def test_midlevel_datasets_with_an_empty_validation_split():
    files = get_image_files(MNIST / "train")
    dsets = Datasets(files, [[PILImageBW.create], [parent_label, Categorize()]],
                     splits=[list(range(len(files))), []])
    dls = dsets.dataloaders(bs=64, after_item=[ToTensor], after_batch=[IntToFloatTensor], seed=0, device="cpu")
    assert len(dls.loaders) == 2 and (len(dls.train_ds), len(dls.valid_ds), len(dls.valid)) == (709, 0, 0)
    pipekit.set_seed(0)
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2)),
                    loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    learn.fit(1, 1e-2)
    (row,) = learn.recorder.values
    assert np.isfinite(row[0]) and row[1:] == [None, None]


@pytest.mark.parametrize("make", [
    lambda df: Tabular(df, cat_names=CAT, cont_names=CONT, y_names="salary").dataloaders(bs=256, seed=0),
    lambda df: Tabular(df, cat_names=CAT, cont_names=CONT, y_names="salary",
                       splits=RandomSplitter(valid_pct=0, seed=0)).dataloaders(bs=256, seed=0),
    lambda df: TabularDataLoaders.from_df(df, cat_names=CAT, cont_names=CONT, y_names="salary", valid_pct=0,
                                          seed=0, bs=256),
], ids=["splits=None", "valid_pct=0", "from_df"])
def test_tabular_with_no_validation_rows_trains(adult, make):
    dls = make(adult)
    assert (len(dls.train_ds), len(dls.valid_ds), len(dls.valid)) == (2000, 0, 0)
    pipekit.set_seed(0)
    learn = tabular_learner(dls, layers=[16], metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    (row,) = learn.recorder.values
    assert np.isfinite(row[0]) and row[1:] == [None, None] and learn.validate() == [None, None]


@pytest.mark.parametrize("cb", [EarlyStoppingCallback(monitor="valid_loss"), SaveModelCallback(),
                                ReduceLROnPlateau(monitor="accuracy")], ids=lambda cb: type(cb).__name__)
def test_trackers_of_a_validation_score_name_the_missing_validation_set(all_train, cb):
    learn = small_learner(all_train)
    with pytest.raises(ParameterError, match=rf"{type(cb).__name__}: monitor='{cb.monitor}' is measured on the "
                                             r"validation set.*no validation batch.*monitor='train_loss'"):
        learn.fit(1, 1e-3, cbs=cb)
    assert learn.recorder.values == []  # refused before training


def test_trackers_of_the_training_loss_still_work(all_train, tmp_path):
    learn = small_learner(all_train, path=tmp_path)
    learn.fit(2, 1e-2, cbs=[EarlyStoppingCallback(monitor="train_loss", patience=3),
                            SaveModelCallback(every_epoch=True)])
    assert len(learn.recorder.values) == 2 and (tmp_path / "models" / "model_1.pipekit").exists()


def test_an_empty_training_set_is_still_refused(adult):
    for pct in (1.0, 1.5, -0.1):
        with pytest.raises(ParameterError, match=rf"valid_pct={pct}"):
            RandomSplitter(valid_pct=pct)
    with pytest.raises(ParameterError, match="valid_pct"):
        TabularDataLoaders.from_df(adult, cat_names=CAT, cont_names=CONT, y_names="salary", valid_pct=1)
    n = len(get_image_files(MNIST / "train"))
    with pytest.raises(DataError, match=r"leaves the training set empty \(0 train / 709 valid of 709 items\)"):
        mnist_dls(IndexSplitter(range(n)))
    with pytest.raises(DataError, match="training set empty"):
        Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary", splits=([], np.arange(len(adult))))


def test_every_factorys_valid_pct_0_trains_on_every_item():
    """valid_pct=0 means the same in every factory (one rule, the splitters'): images, texts and ratings."""
    import pandas as pd
    from torch import nn

    import pipekit.datasets as D
    from pipekit.learn import Learner
    from pipekit.tabular import CollabDataLoaders, collab_learner
    from pipekit.text import TextDataLoaders
    from pipekit.vision import ImageDataLoaders

    digits = ImageDataLoaders.from_folder(D.path("mnist_tiny") / "train", valid_pct=0, seed=0, bs=64, img_cls="L")
    n_files = len(list((D.path("mnist_tiny") / "train").rglob("*.png")))
    assert (len(digits.train_ds), len(digits.valid_ds)) == (n_files, 0)
    learn = Learner(digits, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    learn.fit(1, 1e-2)
    assert learn.recorder.values[-1][1] is None and learn.recorder.values[-1][0] > 0

    texts = pd.read_csv(D.path("imdb_sample") / "texts.csv").head(60)
    tdls = TextDataLoaders.from_df(texts, text_col="text", label_col="label", valid_pct=0, seed=0, bs=16)
    assert (len(tdls.train_ds), len(tdls.valid_ds)) == (60, 0)

    ratings = pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")
    cdls = CollabDataLoaders.from_df(ratings, valid_pct=0, seed=0, bs=256)
    assert (len(cdls.train_ds), len(cdls.valid_ds)) == (len(ratings), 0)
    collab = collab_learner(cdls, n_factors=8, y_range=(0, 5.5))
    collab.fit(1, 5e-3)
    assert collab.recorder.values[-1][1] is None


def test_backends_fit_a_table_without_validation_rows_as_without_a_valid_split():
    """The README's ``model.fit(tab.train, tab.valid)`` kept for a final fit (splits=None): tab.valid has no rows,
    and each backend fits as with no validation split; scoring on it says the split is empty."""
    import pandas as pd

    from pipekit.backends import GBM, RandomForest
    from pipekit.core.errors import DataError
    from pipekit.ensemble import TorchTabular
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    df = pd.read_csv(ADULT).iloc[:1500]
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education"],
                  cont_names=["age", "fnlwgt"], y_names="salary", splits=None)
    for m in (RandomForest("classification", n_estimators=10, n_jobs=1), GBM("classification", n_estimators=20, n_jobs=1),
              TorchTabular("classification", epochs=1)):
        m.fit(tab.train, tab.valid)
        assert m.valid_score_ is None and m.score(tab.train) > 0.7, type(m).__name__
        with pytest.raises(DataError, match="no rows .*an empty split"):
            m.score(tab.valid)


def test_image_folders_with_valid_pct_0_train_on_the_train_and_valid_folders_only():
    """``ImageDataLoaders.from_folder(path, valid_pct=0)``: the images of train/ and valid/, as fastai's, never the
    unlabelled test/ folder as a class of its own."""
    from pipekit.vision import ImageDataLoaders

    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), valid_pct=0, seed=0, bs=64, img_cls="L")
    assert (len(dls.train_ds), len(dls.valid_ds), dls.vocab) == (709 + 699, 0, ["3", "7"])
