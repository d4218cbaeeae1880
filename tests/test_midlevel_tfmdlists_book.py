"""Chapter 11's ``TfmdLists`` and ``Pipeline`` on real data (mnist_tiny files, imdb_sample texts): failing steps
named the same way by both, splits refused when they overlap, pipekit's getters and ``Categorize`` as steps, and
numericalized texts as 1-d tensors that slice and decode."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipekit.core.errors import DataError, PipelineStepError
from pipekit.data import Categorize, Pipeline, TfmdLists, Transform, get_image_files
from pipekit.datasets import path


@pytest.fixture(scope="module")
def files() -> list:
    return get_image_files(path("mnist_tiny"), folders=["train", "valid"])


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return pl.read_csv(path("imdb_sample") / "texts.csv")["text"].to_list()[:120]


class NormalizeMean(Transform):  # the book's transform, written for one number at a time
    def setups(self, items):
        self.mean = sum(items) / len(items)

    def encodes(self, x):
        return x - self.mean


def test_pipeline_setup_names_a_failing_step_as_tfmdlists_does(files):
    sizes = [float(f.stat().st_size) for f in files[:50]]
    with pytest.raises(PipelineStepError) as by_pipeline:
        Pipeline([NormalizeMean(), lambda x: x * 2]).setup(sizes)
    with pytest.raises(PipelineStepError) as by_tfmdlists:
        TfmdLists(sizes, [NormalizeMean(), lambda x: x * 2])
    for err in (by_pipeline, by_tfmdlists):
        assert str(err.value).startswith("NormalizeMean.encode failed on a column of 50 item(s) (list): TypeError")
        assert "see all the items at once" in str(err.value) and isinstance(err.value.__cause__, TypeError)
    # pipekit's own errors say what is wrong already and pass as they are

    with pytest.raises(DataError, match=r"label\(s\) \['4'\] .* not in the vocab you gave"):
        Pipeline([Categorize(vocab=["3", "7"])]).setup(pl.Series(["3", "4"]))


def test_tfmdlists_refuses_splits_that_overlap_as_the_datablock_does(files):
    names = [f.name for f in files]
    with pytest.raises(DataError, match=r"TfmdLists: the split puts 2 item\(s\) in both the training and the "
                                        rf"validation set \(first: item 700, '{names[700]}'\)"):
        TfmdLists(names, [], splits=[range(702), range(700, len(files))])
    mask = np.arange(len(files)) < 709
    with pytest.raises(DataError, match="1 item"):  # a mask and positions overlapping on one item
        TfmdLists(names, [], splits=[mask, [0]])
    tl = TfmdLists(names, [], splits=[mask, ~mask])
    assert len(tl.train) == 709 and tl.valid[0] == names[709]
