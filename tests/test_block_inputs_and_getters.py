"""A regression target from pandas' nullable and Arrow-backed columns, multi-label targets given as Python lists,
and a segmentation recipe's mask getter given as a format string that is stored with an exported model."""
from __future__ import annotations

from operator import attrgetter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import Datasets, DataBlock, RandomSplitter, TfmdLists, get_image_files
from pipekit.data.blocks import MultiCategorize, ToFloat
from pipekit.data.getters import PathFormat
from pipekit.data.lists import L

ADULT = D.path("adult_sample") / "adult.csv"


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT, nrows=200)


# ------------------------------------------------------------------ ToFloat on pandas' dtypes
@pytest.mark.parametrize("dtype", ["Int64", "Float64", "int64[pyarrow]", "float64[pyarrow]", "int64"])
def test_tofloat_reads_pandas_nullable_and_arrow_numbers(adult, dtype):
    ages = adult["age"].astype(dtype)
    t = ToFloat()
    t.setup(ages)
    out = t.encode(ages)
    assert out.dtype == np.float32 and out.shape == (len(adult), 1) and t.n_out_ == 1
    assert out[:, 0].tolist() == adult["age"].astype("float32").tolist()


def test_tofloat_reads_pandas_nullable_booleans(adult):
    rich = (adult["salary"].str.strip() == ">=50k").astype("boolean")
    t = ToFloat()
    t.setup(rich)
    assert t.encode(rich)[:, 0].tolist() == rich.astype(float).tolist()


def test_datasets_with_an_int64_target_from_pandas(adult):
    df = adult.convert_dtypes(dtype_backend="pyarrow")
    df["age"] = adult["age"].astype("Int64")
    dsets = Datasets(df, tfms=[[attrgetter("education")], [attrgetter("age"), ToFloat()]])
    x, y = dsets[3]
    assert x == adult["education"][3] and y.tolist() == [float(adult["age"][3])]


def test_tofloat_names_the_column_and_row_of_a_missing_value(adult):
    ages = adult["age"].astype("Int64")
    ages[7] = pd.NA
    with pytest.raises(DataError, match=r"missing value.*column 'age' at row\(s\) \[7\].*fill"):
        ToFloat().encode(ages)


def test_tofloat_names_the_column_and_row_of_text(adult):
    ages = adult["age"].astype("string[pyarrow]")
    ages[4] = "forty"
    with pytest.raises(DataError, match=r"needs numbers.*column 'age' \(row 4: 'forty'\).*to_numeric"):
        ToFloat().encode(ages)


# ------------------------------------------------------------------ MultiCategorize on Python lists
def _labels(adult: pd.DataFrame) -> list[list[str]]:
    """Each person's labels: their sex, and 'rich' when they earn >=50k."""
    return [[s.strip()] + (["rich"] if y.strip() == ">=50k" else [])
            for s, y in zip(adult["sex"], adult["salary"])][:20] + [[]]


@pytest.mark.parametrize("kind", [list, tuple, L])
def test_multicategorize_takes_lists_of_label_lists(adult, kind):
    labels = _labels(adult)
    given = kind(tuple(v) for v in labels) if kind is tuple else kind(labels)
    t = MultiCategorize()
    t.setup(given)
    assert list(t.vocab_) == sorted({v for ls in labels for v in ls})
    out = t.encode(given)
    assert out.shape == (len(labels), len(t.vocab_))
    assert [t.decode(row) for row in out] == [sorted(ls) for ls in labels]
    assert out[-1].sum() == 0  # an item without labels


def test_tfmdlists_of_label_lists_as_fastai():
    tl = TfmdLists([["3"], ["7", "odd"], []], [MultiCategorize()])
    assert list(tl.vocab) == ["3", "7", "odd"]
    assert tl[1].tolist() == [0.0, 1.0, 1.0] and tl.decode(tl[1]) == ["7", "odd"]


def test_multicategorize_refuses_mixed_label_lists_naming_the_item():
    with pytest.raises(DataError, match=r"mixed types \['number', 'text'\].*'number': 1"):
        MultiCategorize().setup([["3"], [7]])
    with pytest.raises(DataError, match=r"item 0 holds a list of labels and item 1 a single value \('7'\)"):
        MultiCategorize().setup([["3"], "7"])


# ------------------------------------------------------------------ image_paths_with as a format string
def test_path_format_names_the_mask_of_each_camvid_image():
    path = D.path("camvid_tiny")
    files = sorted((path / "images").glob("*"))[:5]
    get_y = PathFormat(path / "labels", "{stem}_P{suffix}")
    masks = [get_y(f) for f in files]
    assert masks == [str(path / "labels" / f"{f.stem}_P{f.suffix}") for f in files]
    assert all(Path(m).is_file() for m in masks)
    assert PathFormat("/d", "{parent}/{name}")("a/3/7.png") == "/d/3/7.png"


@pytest.mark.parametrize("fmt, why", [("{stem}_{size}", r"field \{size\}"), ("{stem.upper}", r"field \{stem.upper\}"),
                                      ("{0}", r"field \{0\}"), ("{stem!r}", r"field \{stem!r\}"),
                                      ("{stem", "not a format string")])
def test_a_bad_field_is_refused_when_made(fmt, why):
    from pipekit.vision import image_paths_with

    with pytest.raises(ParameterError, match=rf"PathFormat: fmt=.*{why}.*\{{name\}}, \{{stem\}}, \{{suffix\}}"):
        image_paths_with(D.path("camvid_tiny") / "labels", fmt)


@pytest.mark.parametrize("fmt", ["../../{name}", "masks/../../{name}", "/etc/{name}"])
def test_a_name_leaving_the_folder_is_refused(fmt):
    from pipekit.vision import image_paths_with

    with pytest.raises(ParameterError, match=r"outside the getter's folder.*path.parent"):
        image_paths_with(D.path("camvid_tiny") / "labels", fmt)


def test_the_camvid_mask_getter_as_text_survives_export(tmp_path):
    from pipekit.learn import load_learner
    from pipekit.vision import ImageBlock, MaskBlock, Resize, image_paths_with, unet_learner

    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    files = sorted(get_image_files(path / "images"))
    dls = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: files[:12],
                    get_y=image_paths_with(path / "labels", "{stem}_P{suffix}"),
                    splitter=RandomSplitter(0.25, seed=42), item_tfms=[Resize((32, 48))]).dataloaders(path, bs=4, seed=42)
    learn = unet_learner(dls, "xresnet18", pretrained=False)
    new = files[12:15]
    before = learn.validate(dl=dls.test_dl(new, with_labels=True))
    loaded = load_learner(learn.export(tmp_path / "camvid.pipekit"))
    after = loaded.validate(dl=loaded.dls.test_dl(new, with_labels=True))
    assert np.allclose(before, after, rtol=1e-5) and np.isfinite(before[0])


def test_the_function_form_still_reads_masks_and_is_left_out_of_an_export():
    from pipekit.vision import image_paths_with

    path = D.path("camvid_tiny")
    f = sorted((path / "images").glob("*"))[0]
    get_y = image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}")
    assert get_y(f) == str(path / "labels" / f"{f.stem}_P{f.suffix}")
    assert not isinstance(get_y, PathFormat) and get_y.__name__ == "image_paths_with(labels)"


def test_a_path_format_under_the_empty_folder_names_relative_files():
    """``image_paths_with("", ...)`` names files relative to the working folder, as the function form and
    ``Path("") / name`` do, never at the root."""
    from pipekit.data import PathFormat

    assert PathFormat("", "{name}")("imgs/7.png") == "7.png"
    assert PathFormat("/", "{name}")("imgs/7.png") == "/7.png"
    assert PathFormat("labels/", "{stem}_P{suffix}")("imgs/7.png") == "labels/7_P.png"


def test_a_path_format_with_no_field_names_the_same_file_for_every_item():
    """A format with no field (one mask file for every image) gives one name per item, not one in all."""
    import polars as pl

    from pipekit.data import PathFormat

    items = pl.DataFrame({"path": ["a/1.png", "a/2.png", "b/3.png"]})
    assert PathFormat("labels", "shared_mask.png").column(items).to_list() == ["labels/shared_mask.png"] * 3
