"""The book's one-line factories give exactly what the DataBlock (or Tabular) they stand for gives, take the
book's parameter names and refuse bad arguments by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, GrandparentSplitter,
                          MultiCategoryBlock, RandomSplitter, get_image_files, get_text_files,
                          parent_label)
from pipekit.tabular import (Categorify, CollabDataLoaders, FillMissing, Normalize, Tabular, TabularDataLoaders)
from pipekit.data.splitters import IndexSplitter
from pipekit.text import TextBlock, TextDataLoaders
from pipekit.vision import ImageBlock, ImageDataLoaders, MaskBlock, Resize, SegmentationDataLoaders

pytestmark = pytest.mark.filterwarnings("ignore:.*are in neither the training nor the validation set")


def _same(a, b):
    """Two DataLoaders with the same items, split, vocab and first batches."""
    assert len(a.train_ds) == len(b.train_ds) and len(a.valid_ds) == len(b.valid_ds)
    assert a.vocab == b.vocab
    for x, y in zip(a.one_batch(), b.one_batch()):
        assert torch.equal(x, y)
    for x, y in zip(a.valid.one_batch(), b.valid.one_batch()):
        assert torch.equal(x, y)


@pytest.fixture(scope="module")
def cats_dogs():
    return sorted(get_image_files(D.path("dogscats") / "valid"))[::25]  # 40 files, both classes


def test_from_name_func_is_the_datablock_with_the_name(cats_dogs):
    def label(name: str) -> str:
        assert isinstance(name, str) and "/" not in name  # the book's label functions read the name
        return name.split(".")[0]

    path = D.path("dogscats")
    dls = ImageDataLoaders.from_name_func(path, cats_dogs, label_func=label, valid_pct=0.25, seed=7,
                                          item_tfms=Resize(24), bs=8)
    spelled = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=lambda p: p.name.split(".")[0],
                        splitter=RandomSplitter(0.25, seed=7), item_tfms=Resize(24)).dataloaders(cats_dogs, bs=8, seed=7)
    _same(dls, spelled)
    assert dls.vocab == ["cat", "dog"] and len(dls.valid_ds) == 10
    # names relative to path are read under it
    rel = [p.relative_to(path) for p in cats_dogs]
    _same(ImageDataLoaders.from_name_func(path, rel, label_func=label, valid_pct=0.25, seed=7, item_tfms=Resize(24),
                                          bs=8), dls)
    by_re = ImageDataLoaders.from_name_re(path, cats_dogs, pat=r"^(cat|dog)\.\d+\.jpg$", valid_pct=0.25, seed=7,
                                          item_tfms=Resize(24), bs=8)
    _same(by_re, dls)
    by_path = ImageDataLoaders.from_re(path, cats_dogs, pat=r"/(cat|dog)s/", valid_pct=0.25, seed=7,
                                       item_tfms=Resize(24), bs=8)
    assert by_path.vocab == ["cat", "dog"]
    with pytest.raises(ParameterError, match="fnames must be a list"):
        ImageDataLoaders.from_name_func(path, path / "valid", label_func=label)
    with pytest.raises(ParameterError, match="label_func"):
        ImageDataLoaders.from_name_func(path, cats_dogs, label_func="cat")
    with pytest.raises(ParameterError, match="valid_pct"):
        ImageDataLoaders.from_path_func(path, cats_dogs, label_func=parent_label, valid_pct=1.5)
    with pytest.raises(PipelineStepError, match="does not match item 0"):
        ImageDataLoaders.from_name_re(path, cats_dogs, pat=r"^(bird)\.\d+\.jpg$")


def test_from_folder_from_csv_from_df_from_lists_on_mnist_tiny():
    path = D.path("mnist_tiny")
    dls = ImageDataLoaders.from_folder(path, img_cls="L", item_tfms=Resize(20), bs=32, seed=0)
    spelled = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), splitter=GrandparentSplitter(),
                        get_items=lambda p: get_image_files(p, folders=["train", "valid"]), get_y=parent_label,
                        item_tfms=Resize(20)).dataloaders(path, bs=32, seed=0)
    _same(dls, spelled)
    assert dls.vocab == ["3", "7"] and len(dls.train_ds) == 709 and len(dls.valid_ds) == 699
    pct = ImageDataLoaders.from_folder(path, valid_pct=0.3, img_cls="L", item_tfms=Resize(20), bs=32, seed=0)
    assert len(pct.valid_ds) == int(0.3 * (len(pct.train_ds) + len(pct.valid_ds)))
    # labels.csv: name,label
    csv = ImageDataLoaders.from_csv(path, img_cls="L", item_tfms=Resize(20), bs=32, seed=1)
    df = pl.read_csv(path / "labels.csv")
    from_df = ImageDataLoaders.from_df(df.to_pandas(), path=path, img_cls="L", item_tfms=Resize(20), bs=32, seed=1)
    _same(csv, from_df)
    spelled = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_x=ColReader("name", pref=path),
                        get_y=ColReader("label"), splitter=RandomSplitter(0.2, seed=1),
                        item_tfms=Resize(20)).dataloaders(df, bs=32, seed=1)
    _same(csv, spelled)
    # a folder prefix and a validation column
    flagged = df.with_columns(pl.col("name").str.replace(r"^train/", ""),
                              (pl.arange(0, df.height) % 5 == 0).alias("is_valid")).filter(
        pl.col("name").str.starts_with("3/") | pl.col("name").str.starts_with("7/"))
    by_col = ImageDataLoaders.from_df(flagged, path=path, folder="train", valid_col="is_valid", img_cls="L",
                                      item_tfms=Resize(20), bs=16, seed=0)
    assert len(by_col.valid_ds) == int(flagged["is_valid"].sum()) and len(by_col.train_ds) == int((~flagged["is_valid"]).sum())
    # lists: one label per file, or a list of labels per file
    files = [path / n for n in df["name"].to_list()[::23]]
    labels = df["label"].cast(pl.String).to_list()[::23]
    lists = ImageDataLoaders.from_lists(path, files, labels, valid_pct=0.25, seed=0, img_cls="L", item_tfms=Resize(20),
                                        bs=8)
    assert lists.vocab == ["3", "7"] and len(lists.valid_ds) == int(0.25 * len(files))
    multi = ImageDataLoaders.from_lists(path, files, [[lab, "digit"] for lab in labels], seed=0, img_cls="L",
                                        item_tfms=Resize(20), bs=8)
    assert isinstance(multi.y_block, MultiCategoryBlock) and multi.vocab == ["3", "7", "digit"]
    with pytest.raises(ParameterError, match=f"{len(files)} files but {len(files) - 1} labels"):
        ImageDataLoaders.from_lists(path, files, labels[:-1])
    with pytest.raises(ParameterError, match="label_col='lbl' is not a column"):
        ImageDataLoaders.from_df(df, path=path, label_col="lbl")
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        ImageDataLoaders.from_csv(path, "nothing.csv")
    with pytest.raises(ParameterError, match="img_cls"):
        ImageDataLoaders.from_folder(path, img_cls="CMYK")


def test_segmentation_from_label_func():
    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    files = sorted(get_image_files(path / "images"))[:40]

    def label_func(o: Path) -> Path:
        return path / "labels" / f"{o.stem}_P{o.suffix}"

    dls = SegmentationDataLoaders.from_label_func(path, files, label_func, codes=codes, item_tfms=Resize((24, 32)),
                                                  bs=8, seed=3)
    spelled = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_y=label_func, splitter=RandomSplitter(seed=3),
                        item_tfms=Resize((24, 32))).dataloaders(files, bs=8, seed=3)
    _same(dls, spelled)
    x, m = dls.one_batch()
    assert x.shape == (8, 3, 24, 32) and m.shape == (8, 24, 32) and int(m.max()) < len(codes)
    with pytest.raises(PipelineStepError, match="mask value"):
        SegmentationDataLoaders.from_label_func(path, files, label_func, codes=codes[:3], item_tfms=Resize((24, 32)))


def test_text_from_folder_and_from_csv(tmp_path):
    full = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([full.filter(~pl.col("is_valid")).head(100), full.filter(pl.col("is_valid")).head(40)])
    for i, (label, text, valid) in enumerate(df.iter_rows()):
        folder = tmp_path / ("valid" if valid else "train") / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text)
    dls = TextDataLoaders.from_folder(tmp_path, min_freq=2, cache_dir=False, bs=16, seed=0)
    spelled = DataBlock(blocks=(TextBlock.from_folder(tmp_path, min_freq=2, cache_dir=False), CategoryBlock),
                        get_items=lambda p: get_text_files(p, folders=["train", "valid"]), get_y=parent_label,
                        splitter=GrandparentSplitter()).dataloaders(tmp_path, bs=16, seed=0)
    _same(dls, spelled)
    assert dls.vocab[1] == ["negative", "positive"] and len(dls.valid_ds) == int(df["is_valid"].sum())
    csv = TextDataLoaders.from_csv(D.path("imdb_sample"), "texts.csv", text_col="text", label_col="label",
                                   valid_col="is_valid", min_freq=2, cache_dir=False, bs=16, seed=0)
    assert len(csv.valid_ds) == 200 and csv.vocab[1] == ["negative", "positive"]
    by_pos = TextDataLoaders.from_df(pl.read_csv(D.path("imdb_sample") / "texts.csv"), text_col=1, label_col=0,
                                     valid_col=2, min_freq=2, cache_dir=False, bs=16, seed=0)
    _same(by_pos, csv)
    lm = TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_pct=0.1, min_freq=2, cache_dir=False, bs=8,
                                 seed=0)
    x, y = lm.one_batch()
    assert x.shape == y.shape and torch.equal(x[:, 1:], y[:, :-1])


def test_tabular_and_collab_from_csv():
    adult = D.path("adult_sample") / "adult.csv"
    cats, conts = ["workclass", "education", "marital-status"], ["age", "fnlwgt", "education-num"]
    dls = TabularDataLoaders.from_csv(adult, y_names="salary", cat_names=cats, cont_names=conts,
                                      procs=[Categorify, FillMissing, Normalize], bs=128, seed=42)
    raw = pl.read_csv(adult).with_columns(pl.col(pl.String).str.strip_chars_start(" "))
    tab = Tabular(raw, procs=[Categorify, FillMissing, Normalize], cat_names=cats, cont_names=conts, y_names="salary",
                  splits=RandomSplitter(0.2, seed=42))
    _same(dls, tab.dataloaders(bs=128, seed=42))
    assert "Private" in dls.tabular.classes["workclass"]  # the spaces after the commas are gone
    # the rows at valid_idx are the validation set; cont_names default to the other numeric columns
    by_idx = TabularDataLoaders.from_df(raw.head(500), cat_names=cats, y_names="salary", valid_idx=range(400, 500),
                                        bs=32, seed=0)
    assert len(by_idx.valid_ds) == 100 and set(by_idx.tabular.cont_names) == {
        "age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}
    assert np.array_equal(by_idx.tabular.valid_idx, IndexSplitter(range(400, 500))(raw.head(500))[1])
    every = TabularDataLoaders.from_df(raw.head(300), cat_names=cats, y_names="salary", valid_pct=0, bs=32)
    assert (len(every.train_ds), len(every.valid_ds)) == (300, 0)
    with pytest.raises(ParameterError, match="valid_pct"):
        TabularDataLoaders.from_df(raw, cat_names=cats, y_names="salary", valid_pct=1)
    ratings = D.path("movie_lens_sample") / "ratings.csv"
    c = CollabDataLoaders.from_csv(ratings, bs=64, seed=0)
    d = CollabDataLoaders.from_df(pl.read_csv(ratings), bs=64, seed=0)
    _same(c, d)
    assert c.tabular.cat_names[:2] == ["userId", "movieId"] and len(c.valid_ds) == int(0.2 * 6031)


def test_from_folder_without_split_folders_names_the_fix(tmp_path):
    """Class folders straight under the path (a user's own folder): the error lists them and says valid_pct."""
    src = sorted(get_image_files(D.path("mnist_tiny") / "train"))
    for label in ("3", "7"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        (tmp_path / "txts" / label).mkdir(parents=True)
        for i, f in enumerate(x for x in src if x.parent.name == label):
            if i < 10:
                (tmp_path / "imgs" / label / f.name).write_bytes(f.read_bytes())
                (tmp_path / "txts" / label / f"{i}.txt").write_text(f"a {label} text {i}")
    with pytest.raises(DataError, match=r"'train' or 'valid' folder \(its folders: \['3', '7'\]\); .*valid_pct=0\.2"):
        ImageDataLoaders.from_folder(tmp_path / "imgs", item_tfms=Resize(28))
    with pytest.raises(DataError, match=r"TextDataLoaders.from_folder: .*'train' or 'valid' folder"):
        TextDataLoaders.from_folder(tmp_path / "txts")
    dls = ImageDataLoaders.from_folder(tmp_path / "imgs", valid_pct=0.2, seed=42, item_tfms=Resize(28), bs=4)
    assert len(dls.train_ds) + len(dls.valid_ds) == 20 and dls.vocab == ["3", "7"]


def test_from_df_takes_full_paths():
    """A table made from get_image_files holds full paths: they are used as they are, not put under path."""
    files = sorted(get_image_files(D.path("mnist_tiny") / "valid"))[::20]
    df = pl.DataFrame({"fname": [str(f) for f in files], "label": [f.parent.name for f in files]})
    dls = ImageDataLoaders.from_df(df, item_tfms=Resize(28), seed=1, bs=4)
    assert len(dls.train_ds) + len(dls.valid_ds) == len(files)
    rel = pl.DataFrame({"fname": [str(f.relative_to(D.path("mnist_tiny"))) for f in files], "label": df["label"]})
    _same(dls, ImageDataLoaders.from_df(rel, path=D.path("mnist_tiny"), item_tfms=Resize(28), seed=1, bs=4))
    mixed = pl.concat([df.head(2), rel.slice(2)])
    with pytest.raises(DataError, match=r"fn_col 'fname' mixes full paths \(row 0: .*\) with names relative"):
        ImageDataLoaders.from_df(mixed, path=D.path("mnist_tiny"), item_tfms=Resize(28), seed=1)
