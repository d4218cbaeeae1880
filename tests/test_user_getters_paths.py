"""Getters and splitters as users write and call them: a one-column table's rows reach a function getter as rows, a
getter called by hand on a pandas row, ``folders=['.', ...]`` in the file finders, ``GrandparentSplitter`` with lists
of folder names, and a recipe file with a ``@dataclass`` loaded by the command line."""
from __future__ import annotations

import pickle
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import pipekit.datasets as D
from pipekit.core.component import Component
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, FuncSplitter, GrandparentSplitter, Pipe,
                          RandomSplitter, TransformBlock, get_files, get_image_files, parent_label, using_attr)
from pipekit.data.getters import Row, apply_getter, item_at, iter_items
from pipekit.data.items import to_items
import pipekit.recipe_files as RF
from pipekit.recipe_files import load_recipe, recipe_loaders

MNIST = D.path("mnist_tiny")


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    return pd.read_csv(MNIST / "labels.csv").groupby("label").head(20).reset_index(drop=True)  # 3s and 7s


# ------------------------------------------------------------------ a one-column table's rows are rows
def _kind(r):
    return type(r).__name__


@pytest.mark.parametrize("make", [
    lambda df: df[["name"]],                                   # pandas
    lambda df: pl.from_pandas(df[["name"]]),                   # Polars
    lambda df: pa.Table.from_pandas(df[["name"]], preserve_index=False),  # Arrow
], ids=["pandas", "polars", "arrow"])
def test_one_column_table_gives_rows(labels, make):
    items = to_items(make(labels))
    assert items.columns == ["name"]
    first = item_at(items, 0)
    assert isinstance(first, Row) and first.name == first["name"] == labels["name"][0]
    assert all(isinstance(r, Row) for r in iter_items(items))
    got = apply_getter(lambda r: str(MNIST / r.name), items).to_list()
    assert got == [str(MNIST / n) for n in labels["name"]]


def test_one_column_csv_gives_rows(labels, tmp_path):
    csv = tmp_path / "names.csv"
    labels[["name"]].to_csv(csv, index=False)
    got = apply_getter(lambda r: r["name"].split("/")[1], to_items(csv)).to_list()
    assert got == [n.split("/")[1] for n in labels["name"]]


def test_bare_values_stay_bare():
    files = get_image_files(MNIST / "train")[:3]
    assert [_kind(v) for v in iter_items(to_items(files))] == ["PosixPath"] * 3
    assert item_at(to_items(files), 2) == files[2]
    assert list(iter_items(to_items(["a text", "another"]))) == ["a text", "another"]
    assert list(iter_items(to_items([3, 7]))) == [3, 7]
    assert apply_getter(parent_label.__call__, to_items(files)).to_list() == ["3"] * 3


def test_getters_given_parts_get_bare_values(labels):
    items = pl.from_pandas(labels)
    # a function after another getter is given each value, whatever that getter named its column
    assert Pipe(ColReader("label"), lambda v: v * 10).column(items).to_list() == [v * 10 for v in labels["label"]]
    assert Pipe(ColReader("name"), lambda p: p.name).column(items).to_list() == \
        [Path(n).name for n in labels["name"]]
    assert using_attr(str.upper, "name").column(to_items([Path("a/b/x.png")])).to_list() == ["X.PNG"]


def test_test_dl_of_a_one_column_table_reads_rows(labels):
    from pipekit.vision import ImageBlock

    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=lambda r: MNIST / r["name"], get_y=ColReader("label"),
                   splitter=RandomSplitter(0.25, seed=42))
    dls = db.dataloaders(labels, bs=8, num_workers=0)
    x, = dls.test_dl(labels[["name"]].iloc[:5]).one_batch()
    assert tuple(x.shape) == (5, 3, 28, 28)


def test_datasets_of_a_one_column_table_reads_rows(labels):
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=lambda r: r.fname,
                   get_y=lambda r: r.fname.split("/")[1], splitter=RandomSplitter(0.25, seed=42))
    dsets = db.datasets(labels.rename(columns={"name": "fname"})[["fname"]])
    assert len(dsets.train) + len(dsets.valid) == len(labels)
    assert list(dsets.vocab) == sorted(labels["name"].str.split("/").str[1].unique())


# ------------------------------------------------------------------ a getter called by hand on one row
def test_colreader_on_a_pandas_row(labels):
    r = labels.iloc[0]
    assert ColReader("name", pref="/data/")(r) == "/data/" + labels["name"][0]
    assert ColReader("label")(r) == labels["label"][0] == 3 and type(ColReader("label")(r)) is int
    assert ColReader(0)(r) == labels["name"][0]


def test_colreader_on_other_rows(labels):
    row = next(labels.itertuples(index=False))
    assert ColReader("label")(row) == 3
    assert ColReader("name")(Row({"name": "3/7.png", "label": 3})) == "3/7.png"
    assert ColReader("ok")({"ok": np.bool_(True)}) is True
    tags = ColReader("tags", label_delim=" ")({"tags": "cat dog"})
    assert tags == ["cat", "dog"] and type(tags) is list
    assert ColReader("tags", label_delim=" ")(pd.Series({"tags": "cat  dog"})) == ["cat", "dog"]
    with pytest.raises(DataError, match=r"ColReader.*given int 5 as one item; give a row"):
        ColReader("x")(5)


# ------------------------------------------------------------------ folders=['.', ...]
def _tree(root: Path) -> Path:
    for f in ("top.png", "train/3/a.png", "train/7/b.png", "valid/3/c.png", "extra/x.png"):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"")
    return root


def test_folders_dot_is_the_files_directly_under_path(tmp_path):
    root = _tree(tmp_path / "d")
    rel = lambda files: [p.relative_to(root).as_posix() for p in files]  # noqa: E731
    assert rel(get_image_files(root, folders=[".", "train"])) == ["top.png", "train/3/a.png", "train/7/b.png"]
    assert rel(get_files(root, folders=["train", "."])) == ["top.png", "train/3/a.png", "train/7/b.png"]
    assert rel(get_image_files(root, folders=".")) == ["top.png"]
    assert rel(get_image_files(root, folders=[str(root)])) == ["top.png"]
    assert rel(get_image_files(root, folders=["train"])) == ["train/3/a.png", "train/7/b.png"]
    assert len(rel(get_image_files(root))) == 5


def test_folders_dot_on_real_data():
    assert get_image_files(MNIST, folders=[".", "train"]) == get_image_files(MNIST, folders=["train"])
    assert len(get_image_files(MNIST, folders=[".", "train"])) == 709


# ------------------------------------------------------------------ GrandparentSplitter with lists of names
FILES = ["m/train/3/a.png", "m/valid/7/b.png", "m/train/7/c.png", "m/test/3/d.png", "m/extra/3/e.png"]


def test_grandparent_takes_lists_of_names():
    tr, va = GrandparentSplitter(valid_name=["valid", "test"])(FILES)
    assert tr.tolist() == [0, 2] and va.tolist() == [1, 3]
    tr, va = GrandparentSplitter(train_name=("train", "extra"), valid_name="valid")(FILES)
    assert tr.tolist() == [0, 2, 4] and va.tolist() == [1]
    assert [s.tolist() for s in GrandparentSplitter()(FILES)] == [[0, 2], [1]]


@pytest.mark.parametrize("bad", [[], ["valid", 3], 3, {"valid": 1}])
def test_grandparent_refuses_other_names(bad):
    with pytest.raises(ParameterError, match=r"valid_name=.*a folder's name, a non-empty list of them, or None"):
        GrandparentSplitter(valid_name=bad)
    with pytest.raises(ParameterError, match=r"train_name=None.*a folder's name or a non-empty list of them"):
        GrandparentSplitter(train_name=None)


def test_grandparent_list_round_trips():
    s = GrandparentSplitter(train_name=("train",), valid_name=["valid", "test"])
    assert repr(s) == "GrandparentSplitter(train_name=['train'], valid_name=['valid', 'test'])"
    back = Component.from_record(s.to_record())
    assert isinstance(back, GrandparentSplitter) and back.get_params() == s.get_params()
    assert [a.tolist() for a in back(FILES)] == [[0, 2], [1, 3]]
    assert s.clone().valid_name == ["valid", "test"]


def test_grandparent_list_in_a_datablock():
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                   splitter=GrandparentSplitter(train_name="train", valid_name=["valid"]))
    # the test/ files, in neither set, are left out with a warning whose fix lists the split's folders flat
    with pytest.warns(Warning, match=re.escape("folders=['train', 'valid']")):
        dsets = db.datasets(MNIST)
    assert (len(dsets.train), len(dsets.valid)) == (709, 699)


def test_grandparent_list_names_deep_files(tmp_path):
    for f in ("train/3/a.png", "train/7/e.png", "valid/7/b.png", "test/7/c.png", "test/7/deeper/d.png"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes(b"")
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                   splitter=GrandparentSplitter(valid_name=["valid", "test"]))
    with pytest.warns(Warning, match=r"1 of 5 items lie inside a 'train' or 'valid' or 'test' folder but deeper"):
        dsets = db.datasets(tmp_path)
    assert (len(dsets.train), len(dsets.valid)) == (2, 2)


# ------------------------------------------------------------------ a recipe file with a @dataclass
RECIPE = '''from __future__ import annotations
from dataclasses import dataclass
import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock


@dataclass
class Config:
    valid_pct: float = 0.25
    seed: int = 42


def datablock():
    c = Config()
    return (DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("label"), get_y=ColReader("label"),
                      splitter=RandomSplitter(c.valid_pct, seed=c.seed)), D.path("mnist_tiny") / "labels.csv")
'''


def test_recipe_with_a_dataclass_loads(tmp_path, capsys):
    from pipekit.cli import main

    path = tmp_path / "my_recipe.py"
    path.write_text(RECIPE)
    mod = load_recipe(path)
    assert sys.modules[mod.__name__] is mod
    c = mod.Config(valid_pct=0.5)
    assert pickle.loads(pickle.dumps(c)) == c
    pair, _, _ = recipe_loaders(mod)
    assert pair[0].splitter.valid_pct == 0.25
    assert main(["summary", str(path)]) == 0
    assert "Collating a batch of 4" in capsys.readouterr().out


def test_recipe_names_do_not_clobber_other_modules(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "recipe.py").write_text(RECIPE)
    (tmp_path / "b" / "recipe.py").write_text(RECIPE.replace("0.25", "0.5"))
    other = ModuleType("user_recipe_recipe")
    sys.modules["user_recipe_recipe"] = other
    try:
        a = load_recipe(tmp_path / "a" / "recipe.py")
        b = load_recipe(tmp_path / "b" / "recipe.py")
        assert sys.modules["user_recipe_recipe"] is other
        assert a.__name__ != b.__name__ and sys.modules[a.__name__] is a and sys.modules[b.__name__] is b
        assert a.Config().valid_pct == 0.25 and b.Config().valid_pct == 0.5
        assert pickle.loads(pickle.dumps(b.Config())) == b.Config()
        again = load_recipe(tmp_path / "a" / "recipe.py")  # the same file again: its own name
        assert again.__name__ == a.__name__ and sys.modules[a.__name__] is again
    finally:
        for name in [n for n in sys.modules if n.startswith("user_recipe_recipe")]:
            del sys.modules[name]
    assert RF.module_name(Path("my-recipe.v2.py")) == "user_recipe_my_recipe_v2"


def test_recipe_that_fails_is_not_left_registered(tmp_path):
    path = tmp_path / "broken_recipe.py"
    path.write_text("from dataclasses import dataclass\nraise RuntimeError('no data here')\n")
    with pytest.raises(RuntimeError, match="no data here"):
        load_recipe(path)
    assert RF.module_name(path) not in sys.modules


# ------------------------------------------------------------------ a Series is a column of values
@pytest.mark.parametrize("name", ["fname", None])
def test_datasets_of_a_pandas_series_gives_values(labels, name):
    series = pd.Series(labels["name"].to_list(), name=name)
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=lambda f: f, get_y=lambda f: f.split("/")[1],
                   splitter=FuncSplitter(lambda f: f.endswith(("0.png", "1.png"))))
    dsets = db.datasets(series)
    valid = [n for n in labels["name"] if n.endswith(("0.png", "1.png"))]
    assert 0 < len(valid) < len(labels)
    assert [x for x, _ in dsets.valid] == valid
    assert list(dsets.vocab) == ["3", "7"]
    assert [dsets.vocab[int(y)] for _, y in dsets.valid] == [n.split("/")[1] for n in valid]


@pytest.mark.parametrize("make, column", [
    (lambda s: pd.Series(s, name="name"), "name"),
    (lambda s: pd.Series(s), "0"),
    (lambda s: pl.Series("name", s), "item"),
], ids=["pandas-named", "pandas-unnamed", "polars"])
def test_series_items_are_values(labels, make, column):
    names = labels["name"].to_list()[:5]
    items = to_items(make(names))
    assert items.columns == [column]
    assert list(iter_items(items)) == names and item_at(items, 1) == names[1]
    assert list(iter_items(items[[4, 0]])) == [names[4], names[0]]  # a selection of its rows too
    assert item_at(pickle.loads(pickle.dumps(items)), 2) == names[2]


def test_pandas_series_keeps_missing_values_missing():
    items = to_items(pd.Series(["a.png", np.nan, "c.png"], name="fname"))
    assert items.columns == ["fname"] and items["fname"].to_list() == ["a.png", None, "c.png"]


@pytest.mark.parametrize("make", [lambda s: s, lambda s: s.rename(None)], ids=["named", "unnamed"])
def test_test_dl_of_a_pandas_series(labels, make):
    from pipekit.vision import ImageBlock

    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=lambda f: MNIST / f, get_y=lambda f: f.split("/")[1],
                   splitter=RandomSplitter(0.25, seed=42))
    dls = db.dataloaders(labels["name"].to_list(), bs=8, num_workers=0)
    x, = dls.test_dl(make(labels["name"].iloc[:5])).one_batch()
    want, = dls.test_dl(labels["name"].to_list()[:5]).one_batch()
    assert tuple(x.shape) == (5, 3, 28, 28) and bool((x == want).all())


def test_colreader_reads_a_pandas_series_by_its_name(labels):
    db = DataBlock(blocks=(TransformBlock,), get_x=ColReader("name", pref="imgs/"),
                   splitter=RandomSplitter(0.25, seed=42))
    dsets = db.datasets(labels["name"])
    assert sorted(x for x, in [*dsets.train, *dsets.valid]) == sorted("imgs/" + n for n in labels["name"])
    with pytest.raises(Exception, match=r"not in the items.*bare values.*df\[\['name'\]\]"):
        db.datasets(pl.Series("name", labels["name"].to_list()))


def test_a_one_column_table_named_item_or_path_gives_values(labels):
    # the rule reads the column's name (VALUE_COLUMNS): a table's only column named item/path is read as values
    assert item_at(to_items(labels[["name"]].rename(columns={"name": "item"})), 0) == labels["name"][0]
    assert item_at(to_items(labels[["name"]].rename(columns={"name": "path"})), 0) == Path(labels["name"][0])
    assert isinstance(item_at(to_items(labels[["name"]]), 0), Row)


# ------------------------------------------------------------------ a hand-given row's missing values
def test_colreader_on_a_row_with_missing_values():
    df = pd.DataFrame({"name": ["a.png", "b.png"], "tags": ["cat dog", np.nan], "y": [1.5, np.nan],
                       "when": pd.to_datetime(["2020-01-01", None])})
    assert ColReader("tags", label_delim=" ").on_items(df).to_list() == [["cat", "dog"], None]
    for row in (df.iloc[1], list(df.itertuples())[1], list(df.itertuples(index=False))[1]):
        assert ColReader("tags", label_delim=" ")(row) is None
        assert ColReader("tags")(row) is None
        assert ColReader("y")(row) is None
        assert ColReader("when")(row) is None
    assert ColReader("tags", label_delim=" ")(df.iloc[0]) == ["cat", "dog"] and ColReader("y")(df.iloc[0]) == 1.5


# ------------------------------------------------------------------ a plain tuple or list read by position
def test_colreader_reads_plain_tuples_by_position(labels):
    name, label = labels["name"][0], int(labels["label"][0])
    assert ColReader(0)((name, label)) == name
    assert ColReader(1)([name, label]) == label
    assert ColReader(0, pref="/data/")([name, "x"]) == "/data/" + name
    assert ColReader([1, 0])((name, label)) == {"1": label, "0": name}
    assert ColReader(0)(pl.from_pandas(labels).row(0)) == name
    assert ColReader(1)((name, np.nan)) is None
    with pytest.raises(DataError, match=r"tuple .*no column names.*a dict.*pandas row.*named tuple.*ColReader\(0\)"):
        ColReader("name")((name, label))
    with pytest.raises(DataError, match=r"list .*no column names"):
        ColReader(["name", 0])([name, label])


# ------------------------------------------------------------------ GrandparentSplitter(valid_name=None)
def test_grandparent_valid_name_none_trains_on_the_train_folder():
    with pytest.warns(UserWarning, match=r"valid_name=None; training on the 2 item\(s\) under 'train' with no "
                                         r"validation set"):
        tr, va = GrandparentSplitter(valid_name=None)(FILES)
    assert tr.tolist() == [0, 2] and va.tolist() == []
    s = GrandparentSplitter(valid_name=None)
    assert Component.from_record(s.to_record()).get_params() == s.get_params()
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                   splitter=GrandparentSplitter(valid_name=None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsets = db.datasets(MNIST)
    assert (len(dsets.train), len(dsets.valid)) == (709, 0)
