"""Every parameter that takes transforms, metrics, callbacks or procs takes one object too (the book writes
``item_tfms=Resize(224)``), and lists nested in a list (``[aug_transforms(...), Normalize(...)]``)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.data import (CategoryBlock, DataBlock, DataLoaders, GrandparentSplitter, Pipeline, TensorStore,
                          get_image_files, parent_label)
from pipekit.data.transform import as_list
from pipekit.learn import (Callback, CrossEntropyLossFlat, EarlyStoppingCallback, Learner, MLP, accuracy,
                           error_rate)
from pipekit.tabular import Categorify, FillMissing, Tabular, TabularProcessor
from pipekit.vision import ImageBlock, Normalize, Resize, aug_transforms, dataloaders_from_arrays


def test_as_list_reads_one_object_a_list_and_nested_lists():
    r = Resize(8)
    assert as_list(r) == [r] and as_list([r]) == [r] and as_list((r,)) == [r] and as_list(None) == []
    assert as_list([[r], (r, [r])]) == [r, r, r]
    assert len(Pipeline(r)) == 1 and len(Pipeline([[r]])) == 1


def _mnist_block(item_tfms, batch_tfms):
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=item_tfms, batch_tfms=batch_tfms)


@pytest.mark.filterwarnings("ignore:20 of 1428 items")
def test_datablock_takes_one_transform_or_nested_lists():
    path = D.path("mnist_tiny")
    norm = Normalize([0.1], [0.3])
    one = _mnist_block(Resize(20), norm).dataloaders(path, bs=16, seed=3, device="cpu")
    listed = _mnist_block([Resize(20)], [norm]).dataloaders(path, bs=16, seed=3, device="cpu")
    assert torch.equal(one.one_batch()[0], listed.one_batch()[0])
    assert one.one_batch()[0].shape == (16, 1, 20, 20)
    # aug_transforms' list and a Normalize side by side, as readers write it
    nested = _mnist_block(Resize(20), [aug_transforms(size=16), norm]).dataloaders(path, bs=16, seed=3, device="cpu")
    flat = _mnist_block(Resize(20), [*aug_transforms(size=16), norm]).dataloaders(path, bs=16, seed=3, device="cpu")
    xb = nested.one_batch()[0]
    assert xb.shape == (16, 1, 16, 16) and torch.equal(xb, flat.one_batch()[0])
    assert [type(t).__name__ for t in nested.train.batch_tfms].count("Normalize") == 1


@pytest.fixture(scope="module")
def small_dls():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    return DataLoaders.from_stores([TensorStore(x[:64]), TensorStore(y[:64])], [TensorStore(x[64:]), TensorStore(y[64:])],
                                   blocks=(CategoryBlock(), CategoryBlock(vocab=["no", "yes"])), bs=16, seed=0,
                                   device="cpu", num_workers=0)


class CountEpochs(Callback):
    def before_fit(self):
        self.n_ = 0

    def after_epoch(self):
        self.n_ += 1


def test_learner_takes_one_metric_and_one_callback(small_dls):
    pipekit.set_seed(0)
    cb = CountEpochs()
    learn = Learner(small_dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat(), metrics=error_rate, cbs=cb)
    assert [m.name for m in learn.metrics] == ["error_rate"] and learn.count_epochs is cb
    learn.fit(2, 1e-2)
    assert cb.n_ == 2 and learn.recorder.metric_names == ["epoch", "train_loss", "valid_loss", "error_rate", "time"]
    # fit(cbs=one callback) and fit_one_cycle(cbs=a callback class) add it for that fit only
    extra = CountEpochs()
    extra_name = "count_epochs"
    learn.remove_cb(cb)
    learn.fit(1, cbs=extra)
    assert extra.n_ == 1 and not hasattr(learn, extra_name)
    learn.fit_one_cycle(1, 1e-2, cbs=EarlyStoppingCallback)
    assert not any(isinstance(c, EarlyStoppingCallback) for c in learn.cbs)
    nested = Learner(small_dls, MLP(4, 2, layers=[8]), metrics=[[accuracy], (error_rate,)])
    assert [m.name for m in nested.metrics] == ["accuracy", "error_rate"]


def test_procs_take_one_proc():
    df = pl.DataFrame({"a": ["x", "y", None, "y"] * 5, "b": [1.0, None, 3.0, 4.0] * 5, "t": [0.0, 1.0] * 10})
    assert [type(p).__name__ for p in TabularProcessor(Categorify, ["a"], ["b"], "t").procs] == ["Categorify"]
    assert [type(p).__name__ for p in TabularProcessor(FillMissing(), ["a"], ["b"], "t").procs] == ["FillMissing"]
    tab = Tabular(df, procs=Categorify, cat_names="a", cont_names=[], y_names="t", splits=(range(15), range(15, 20)))
    assert tab.classes["a"][0] == "#na#" and tab.train.cats["a"].to_list()[:3] == [1, 2, 0]


def test_dataloaders_from_arrays_takes_one_batch_transform():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(40, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 2, size=40)
    dls = dataloaders_from_arrays(x[:32], y[:32], x[32:], y[32:], vocab=["a", "b"], bs=8, seed=0, device="cpu",
                                  batch_tfms=Normalize([0.5], [0.25]))
    xb = dls.valid.one_batch()[0]
    expected = (torch.from_numpy(x[32:40]).float()[:, None] / 255 - 0.5) / 0.25
    assert torch.allclose(xb, expected, atol=1e-5)
