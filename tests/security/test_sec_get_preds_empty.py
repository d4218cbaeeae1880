"""get_preds over zero rows returns empty tensors of the right dtype and shape, never None.
Real data: adult_sample (tabular net) and mnist_tiny (CNN)."""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.learn import Learner, accuracy, simple_cnn
from pipekit.tabular import Tabular, tabular_learner
from pipekit.vision import ImageBlock

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(2000)


@pytest.fixture(scope="module")
def tab_learner(adult):
    tab = Tabular(adult, cat_names=["workclass", "education", "race"], cont_names=["age", "education-num"],
                  y_names="salary", splits=RandomSplitter(0.2, seed=42))
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[16], metrics=accuracy)
    learn.fit(1, 1e-2)
    return learn


def test_tabular_get_preds_on_no_rows(tab_learner, adult):
    dl = tab_learner.dls.test_dl(adult.head(0))
    preds, targs = tab_learner.get_preds(dl=dl)
    assert isinstance(preds, torch.Tensor) and preds.shape == (0, 2) and preds.dtype == torch.float32
    assert targs.shape == (0,) and targs.dtype == torch.int64  # the rows carry the target column, with no rows
    assert tab_learner.get_preds(dl=tab_learner.dls.test_dl(adult.head(0).drop("salary")))[1] is None
    inputs, preds, targs, dec = tab_learner.get_preds(dl=dl, with_input=True, with_decoded=True)
    assert preds.shape == (0, 2) and dec.shape == (0,) and dec.dtype == torch.int64
    cats, conts = inputs
    assert cats.shape == (0, 4) and cats.dtype == torch.int64 and conts.shape == (0, 2)
    # the same model on one row gives the shapes the empty result promises
    one = tab_learner.get_preds(dl=tab_learner.dls.test_dl(adult.head(1)))[0]
    assert one.shape[1:] == preds.shape[1:] and one.dtype == preds.dtype


def test_labelled_loader_with_no_rows(tab_learner):
    valid = tab_learner.dls.valid
    empty = valid.new(dataset=valid.dataset.subset(np.zeros(0, dtype=np.int64)))
    preds, targs, losses = tab_learner.get_preds(dl=empty, with_loss=True)
    assert preds.shape == (0, 2) and targs.shape == (0,) and targs.dtype == torch.int64
    assert losses.shape == (0,) and losses.dtype == torch.float32


def test_image_get_preds_on_no_rows(tmp_path):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=64, seed=0, device="cpu")
    learn = Learner(dls, simple_cnn(1, 2, (8, 16)), metrics=accuracy, path=tmp_path)
    valid = dls.valid
    empty = valid.new(dataset=valid.dataset.subset(np.zeros(0, dtype=np.int64)))
    inputs, preds, targs, dec = learn.get_preds(dl=empty, with_input=True, with_decoded=True)
    assert preds.shape == (0, 2) and preds.dtype == torch.float32
    assert targs.shape == (0,) and dec.shape == (0,)
    assert inputs.shape[0] == 0 and inputs.shape[1:] == valid.one_batch()[0].shape[1:]
