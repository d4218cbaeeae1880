"""Chapter 6 begins its DataBlock walk on a table with no blocks and no getters: ``DataBlock().datasets(df)`` makes
each item the whole row, twice (``x, y = dsets.train[0]``; ``x['fname']``), split 80/20 at random; getters are then
added one at a time (``get_x=lambda r: r['fname']``, then ``get_y`` splitting the labels). On coco_tiny's table of
file names and labels (the book's PASCAL table, smaller) and on adult_sample's CSV, as pandas and Polars frames.
"""
from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError, PipelineStepError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, MultiCategoryBlock, RandomSplitter, TransformBlock)
from pipekit.data.getters import Row
from pipekit.vision import ImageBlock

COLUMNS = ["fname", "labels", "is_valid"]


@pytest.fixture(scope="module")
def coco() -> pd.DataFrame:
    """coco_tiny's train.json as the book's PASCAL table: a file name, its objects' names (space-separated, sorted)
    and an is_valid column, one row per image."""
    path = D.path("coco_tiny")
    d = json.loads((path / "train.json").read_text())
    names = {c["id"]: c["name"] for c in d["categories"]}
    objects: dict[int, set[str]] = {}
    for a in d["annotations"]:
        objects.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    rows = [{"fname": im["file_name"], "labels": " ".join(sorted(objects[im["id"]])), "is_valid": i % 5 == 0}
            for i, im in enumerate(d["images"])]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_blockless_datablock_items_are_whole_rows(coco, kind):
    df = coco if kind == "pandas" else pl.from_pandas(coco)
    dsets = DataBlock().datasets(df)
    assert (len(dsets.train), len(dsets.valid)) == (160, 40)  # RandomSplitter's default: 20% valid
    train, valid = dsets.splits
    assert set(train).isdisjoint(valid) and len(set(train) | set(valid)) == len(coco)
    x, y = dsets.train[0]
    assert isinstance(x, Row) and x == y  # the row twice, as fastai's pandas Series twice
    expected = coco.iloc[int(train[0])].to_dict()
    assert dict(x) == expected and list(x) == COLUMNS
    assert x["fname"] == x.fname == expected["fname"] and x.fname.endswith(".jpg")
    assert x.labels == expected["labels"] and isinstance(x.is_valid, bool)
    assert repr(x).startswith("{'fname': '") and "'labels': " in repr(x)  # readable where it is shown
    # every item of each subset is its own row of the table
    assert [dsets.valid[i][0]["fname"] for i in range(len(dsets.valid))] == coco["fname"].iloc[valid].tolist()
    assert dsets.decode(dsets.train[0]) == (x, y)


def test_seeded_split_is_random_splitter_default(coco):
    a, b = DataBlock().datasets(coco, seed=42), DataBlock().datasets(coco, seed=42)
    same = DataBlock(splitter=RandomSplitter(0.2, seed=42)).datasets(coco)
    assert (a.splits[1] == b.splits[1]).all() and (a.splits[1] == same.splits[1]).all()


def test_getters_added_one_at_a_time(coco):
    path = D.path("coco_tiny")
    dsets = DataBlock(get_x=lambda r: r["fname"], get_y=lambda r: r["labels"]).datasets(coco)
    i = int(dsets.splits[0][0])
    assert dsets.train[0] == (coco.fname[i], coco.labels[i])

    def get_x(r):
        return path / "train" / r["fname"]

    def get_y(r):
        return r["labels"].split(" ")

    dsets = DataBlock(get_x=get_x, get_y=get_y).datasets(coco)
    x, y = dsets.train[0]
    i = int(dsets.splits[0][0])
    assert x == str(path / "train" / coco.fname[i])
    assert y == coco.labels[i].split(" ") and isinstance(y, list)  # the getter's list, as fastai shows it
    # and on to the book's multi-label blocks
    dsets = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_x=get_x, get_y=get_y).datasets(coco)
    vocab, i = dsets.train.vocab, int(dsets.splits[0][0])
    assert [vocab[j] for j in dsets.train[0][1].nonzero().flatten().tolist()] == coco.labels[i].split(" ")


def test_rows_are_not_batched_and_say_what_to_give(coco):
    dblock = DataBlock()
    with pytest.raises(DataError, match=r"whole row.*\['fname', 'labels', 'is_valid'\].*give blocks and getters"):
        dblock.dataloaders(coco, bs=8)
    dls = dblock.datasets(coco).dataloaders(bs=8)  # loaders of rows: refused at their first batch, saying the same
    with pytest.raises(DataError, match="give blocks and getters"):
        dls.one_batch()
    with pytest.raises(DataError, match="give blocks and getters"):
        dblock.summary(coco, show=False)
    assert dblock.datasets(coco).train[0][0]["fname"] in set(coco.fname)  # the DataBlock itself is unchanged


def test_blocks_that_read_one_column_still_refuse_several(coco):
    for blocks in [(ImageBlock, MultiCategoryBlock), CategoryBlock]:
        with pytest.raises(PipelineStepError, match=r"no getter given and the items have several columns "
                                                    r"\['fname', 'labels', 'is_valid'\]"):
            DataBlock(blocks=blocks).datasets(coco)


def test_adult_rows_and_a_plain_input_block():
    csv = D.path("adult_sample") / "adult.csv"
    dsets = DataBlock().datasets(csv, seed=42)
    assert (len(dsets.train), len(dsets.valid)) == (26049, 6512)
    table = pl.read_csv(csv)
    x, y = dsets.valid[3]
    assert x == y and dict(x) == table.row(int(dsets.splits[1][3]), named=True)
    assert len(x) == 15 and x.salary in ("<50k", ">=50k") and x["education-num"] == table["education-num"][
        int(dsets.splits[1][3])]
    missing = int(table["occupation"].is_null().arg_true()[0])  # a missing value stays missing in the row
    where = {int(p): k for k, p in enumerate(dsets.splits[0])} | {int(p): k for k, p in enumerate(dsets.splits[1])}
    part = dsets.train if missing in {int(p) for p in dsets.splits[0]} else dsets.valid
    assert part[where[missing]][0]["occupation"] is None
    # a plain TransformBlock as the input is the row; the label a block of its own
    dsets = DataBlock(blocks=(TransformBlock, CategoryBlock), get_y=ColReader("salary")).datasets(
        pd.read_csv(csv), seed=42)
    x, y = dsets.train[0]
    assert dsets.vocab == ["<50k", ">=50k"] and dsets.vocab[int(y)] == x.salary
    # new rows through the fitted recipe are rows too
    new = dsets.recipe.new_datasets(table.head(2))
    assert new[1][0] == table.row(1, named=True)
