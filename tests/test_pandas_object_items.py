"""A pandas frame whose columns hold Python objects, as users build them: ``Path`` objects (``f.relative_to(path)``)
read as the file names they are, PIL images or arrays kept as the objects a ``ColReader`` gives an ``ImageBlock``,
and a column mixing them with numbers refused, naming the column and the fix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, get_image_files
from pipekit.data.items import to_items
from pipekit.vision import ImageBlock, ImageDataLoaders, Resize

MNIST = D.path("mnist_tiny")


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return sorted(get_image_files(MNIST / "train"))[::20]


def batches(dls) -> list[torch.Tensor]:
    return [t for dl in (dls.train, dls.valid) for t in dl.one_batch()]


def test_from_df_with_path_objects_gives_the_batches_of_their_text(files):
    labels = [f.parent.name for f in files]
    as_paths = pd.DataFrame({"fname": [f.relative_to(MNIST) for f in files], "label": labels})
    as_text = pd.DataFrame({"fname": [str(f.relative_to(MNIST)) for f in files], "label": labels})
    got = ImageDataLoaders.from_df(as_paths, MNIST, item_tfms=Resize(28), bs=8, seed=0)
    want = ImageDataLoaders.from_df(as_text, MNIST, item_tfms=Resize(28), bs=8, seed=0)
    assert got.vocab == want.vocab == ["3", "7"]
    for a, b in zip(batches(got), batches(want), strict=True):
        assert torch.equal(a, b)
    # the items are the text of the paths; a missing one (None, NaN) stays missing, beside other columns
    frame = as_paths.assign(fname=[None, np.nan] + list(as_paths["fname"][2:]), n=range(len(files)))
    items = to_items(frame)
    assert items.schema == pl.Schema({"fname": pl.String, "label": pl.String, "n": pl.Int64})
    assert items["fname"].to_list() == [None, None] + [str(f.relative_to(MNIST)) for f in files[2:]]


def test_pil_images_and_arrays_in_a_pandas_column_reach_the_image_block(files):
    labels = [f.parent.name for f in files]
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader("img"), get_y=ColReader("label"),
                      splitter=RandomSplitter(0.2, seed=0))
    want = batches(block.dataloaders(pd.DataFrame({"img": [str(f) for f in files], "label": labels}), bs=4, seed=0))
    images = [Image.open(f).convert("RGB") for f in files]
    for column in (images, [np.asarray(im) for im in images]):
        frame = pd.DataFrame({"img": column, "label": labels})
        assert to_items(frame).schema == pl.Schema({"img": pl.Object, "label": pl.String})
        got = batches(block.dataloaders(frame, bs=4, seed=0))
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)


def test_paths_or_images_mixed_with_numbers_are_refused_naming_the_column(files):
    frame = pd.DataFrame({"fname": [f.relative_to(MNIST) for f in files], "label": [f.parent.name for f in files]})
    frame.loc[3, "fname"] = 0
    with pytest.raises(DataError, match=r"column 'fname' mixes path objects \(PosixPath, row 0\) with numbers "
                                        r"\(int 0, row 3\).*None \(not a number such as 0 or -1\).*df\['fname'\]"):
        to_items(frame)
    with pytest.raises(DataError, match=r"column 'fname' mixes path objects"):
        ImageDataLoaders.from_df(frame, MNIST, item_tfms=Resize(28), bs=8, seed=0)
    images = pd.DataFrame({"img": [Image.open(files[0]), 1.5], "label": ["3", "7"]})
    with pytest.raises(DataError, match=r"column 'img' mixes Python objects \(PngImageFile, row 0\) with numbers "
                                        r"\(float 1.5, row 1\)"):
        to_items(images)


def test_dates_or_dicts_mixed_with_text_are_read_as_text_as_before():
    import datetime

    from pipekit.tabular import TabularDataLoaders

    adult = pd.read_csv(D.path("adult_sample") / "adult.csv").head(40)
    adult["when"] = [datetime.date(2020, 1, 1 + i % 20) if i % 7 else "unknown" for i in range(len(adult))]
    adult["meta"] = [{"k": i} if i % 2 else i for i in range(len(adult))]
    with pytest.warns(Warning, match=r"\['when', 'meta'\] mix text and numbers; read as text"):
        items = to_items(adult[["when", "meta", "age"]])
    assert items.schema["when"] == pl.String and items.schema["meta"] == pl.String
    assert items["when"][0] == "unknown" and items["when"][1] == "2020-01-02" and items["meta"][1] == "{'k': 1}"
    with pytest.warns(Warning):
        dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=["when"], cont_names=["age"], bs=8,
                                         seed=0)
    assert "unknown" in dls.classes["when"] and "2020-01-02" in dls.classes["when"]
