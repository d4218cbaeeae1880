"""Chapter 11's ``TfmdLists`` and ``Pipeline`` on real data (mnist_tiny files, imdb_sample texts): failing steps
named the same way by both, splits refused when they overlap, pipekit's getters and ``Categorize`` as steps, and
numericalized texts as 1-d tensors that slice and decode."""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from pipekit.core.errors import DataError, PipelineStepError
from pipekit.data import (Categorize, ColReader, Pipeline, RegexLabeller, TfmdLists, Transform, get_image_files,
                          parent_label, using_attr)
from pipekit.datasets import path
from pipekit.text import Numericalize, Tokenizer


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
    mean = sum(sizes) / len(sizes)
    # the book's NormalizeMean, written for one number, fails on the list and is run number by number, as in fastai
    assert Pipeline([NormalizeMean(), lambda x: x * 2]).setup(sizes) == pytest.approx([(s - mean) * 2 for s in sizes])
    assert TfmdLists(sizes, [NormalizeMean(), lambda x: x * 2])[:] == pytest.approx([(s - mean) * 2 for s in sizes])

    class LongestName(Transform):  # its setup reads the whole list, and fails on it
        def setups(self, items):
            self.longest = max(items, key=len)

    with pytest.raises(PipelineStepError) as by_pipeline:
        Pipeline([LongestName()]).setup(sizes)
    with pytest.raises(PipelineStepError) as by_tfmdlists:
        TfmdLists(sizes, [LongestName()])
    for err in (by_pipeline, by_tfmdlists):
        assert str(err.value).startswith("LongestName.setup failed on a column of 50 item(s) (list): TypeError")
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


def test_tfmdlists_of_files_with_pipekits_getters_and_categorize(files):
    splits = [range(709), range(709, len(files))]  # mnist_tiny's train/ then valid/
    # the book's splits come from a splitter called on the list of files (it took only a table)
    from pipekit.data import FuncSplitter, GrandparentSplitter

    for splitter in (GrandparentSplitter(valid_name="valid"), FuncSplitter(lambda f: f.parent.parent.name == "valid")):
        train, valid = splitter(files)
        assert train.tolist() == list(splits[0]) and valid.tolist() == list(splits[1])
    tls = TfmdLists(files, [parent_label, Categorize()], splits=splits)
    labels = [f.parent.name for f in files]
    assert tls.vocab == tls.tfms[1].vocab == ["3", "7"] and len(tls.valid) == 699
    assert isinstance(tls[0], int) and tls[0] == ["3", "7"].index(labels[0])
    assert tls.decode(tls[0]) == labels[0] and tls.decode(tls.valid[-1]) == labels[-1]
    assert tls.decode(np.array(tls[:4])) == labels[:4]  # codes back to their labels
    assert [tls.vocab[c] for c in tls.valid] == labels[709:]
    # all the codes at once, as a tensor of a batch or an array (the book indexes the vocab with what a model gives)
    assert tls.vocab[torch.tensor(list(tls.valid))] == tls.vocab[np.array(list(tls.valid))] == labels[709:]
    # the labels as a list, a Polars Series or a pandas Series
    for lab in (lambda fs: [f.parent.name for f in fs], lambda fs: pl.Series([f.parent.name for f in fs]),
                lambda fs: pd.Series([f.parent.name for f in fs])):
        assert list(TfmdLists(files, [lab, Categorize()], splits=splits)) == list(tls)
    # other getters read the whole column the same way
    by_regex = TfmdLists(files, [RegexLabeller(r"/(\d)/[^/]+\.png$"), Categorize()], splits=splits)
    by_attr = TfmdLists(files, [using_attr(RegexLabeller(r"/(\d)$"), "parent"), Categorize()], splits=splits)
    assert list(by_regex) == list(by_attr) == list(tls)
    table = pl.read_csv(path("mnist_tiny") / "labels.csv")
    n = len(table)
    by_col = TfmdLists(table, [ColReader("label"), Categorize()], splits=[range(n - 10), range(n - 10, n)])
    assert by_col.vocab == [3, 7] and by_col.decode(by_col.valid[4]) == table["label"][n - 6]
    assert by_col.vocab[torch.tensor(list(by_col.valid))] == table["label"][n - 10:].to_list()
    by_name = TfmdLists(table, [ColReader("name"), parent_label, Categorize()], splits=[range(n - 10), range(n - 10, n)])
    assert by_name.vocab == ["3", "7"] and [by_name.decode(c) for c in by_name] == [str(v) for v in table["label"]]
    with pytest.raises(DataError, match=r"RegexLabeller: pattern .* does not match item 0"):
        TfmdLists(files, [RegexLabeller(r"/(cat)_"), Categorize()], splits=splits)


def test_tfmdlists_of_texts_gives_id_tensors_that_slice_and_decode(texts):
    tl = TfmdLists(texts, [Tokenizer(), Numericalize], splits=[range(100), range(100, 120)])
    tkn, num = tl.tfms[0], tl.tfms[1]
    assert tl.vocab == num.vocab and len(tl.vocab) % 8 == 0
    x = tl[0]
    # an item is what num(tkn(text)) gives for the one text
    assert isinstance(x, torch.Tensor) and x.dtype == torch.long and x.ndim == 1
    assert torch.equal(x, num(tkn(texts[0]))) and torch.equal(tl.valid[3], num(tkn(texts[103])))
    assert tl.decode(x[:10]) == tkn.decode([num.vocab[i] for i in x[:10]])
    assert tl.decode(x[:1]) == "" and [num.vocab[i] for i in x[:3]][0] == "xxbos"
    two = tl[:2]
    assert [type(v) for v in two] == [torch.Tensor, torch.Tensor] and torch.equal(two[1], tl[1])
    decoded = tl.decode(two)
    assert len(decoded) == 2 and decoded[1] == tl.decode(tl[1]) and isinstance(decoded[0], str)
    # words of the text come back (those in the vocabulary)
    known = [w for w in tkn(texts[1]) if w in set(num.vocab)]
    assert tkn(decoded[1])[:20] == known[:20]
    # a Pipeline decodes what it encoded, one text per text
    p = Pipeline([Tokenizer(), Numericalize(min_freq=1)])
    p.setup(texts[:100])
    back = p.decode(p(texts[:3]))
    assert len(back) == 3 and all(tkn(b) == tkn(t) for b, t in zip(back, texts[:3]))
