"""Damaged copies of the real data sets: each is refused with a pipekit error naming the file, row or column and
the fix (or, for a boolean mask, read as the mask it is); nothing is lost or mislabelled silently."""
from __future__ import annotations

import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import DataError, PipelineStepError
from pipekit.data import IndexSplitter, RandomSplitter, read_table, to_items
from pipekit.tabular import Categorify, CollabDataLoaders, Tabular, TabularDataLoaders
from pipekit.text import TextDataLoaders
from pipekit.vision import ImageDataLoaders, ImageDecodeError, decode_image, verify_images

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT, MNIST = DATA / "adult_sample" / "adult.csv", DATA / "mnist_tiny"
RATINGS, IMDB = DATA / "movie_lens_sample" / "ratings.csv", DATA / "imdb_sample" / "texts.csv"


def adult(n: int = 200) -> pl.DataFrame:
    return pl.read_csv(ADULT, n_rows=n)


# 1. every CSV reader goes through one guarded reading, naming the file
READERS = {
    "read_table": lambda f: read_table(f),
    "ImageDataLoaders.from_csv": lambda f: ImageDataLoaders.from_csv(f.parent, f.name),
    "TextDataLoaders.from_csv": lambda f: TextDataLoaders.from_csv(f.parent, f.name),
    "TabularDataLoaders.from_csv": lambda f: TabularDataLoaders.from_csv(f, y_names="rating"),
    "CollabDataLoaders.from_csv": lambda f: CollabDataLoaders.from_csv(f),
    "Tabular(path)": lambda f: Tabular(f, cat_names=["userId"], y_names="rating"),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_csv_readers_name_an_empty_or_non_utf8_file(tmp_path, reader):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{empty} is empty \(no header line and no rows\)"):
        READERS[reader](empty)
    lines = RATINGS.read_bytes().splitlines(keepends=True)[:30]
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"".join(lines[:20]) + "73,1097,caf\xe9,1255504951\n".encode("latin-1") + b"".join(lines[20:]))
    with pytest.raises(DataError, match=rf"{latin1} is not UTF-8 text \(line 21, byte \d+\); re-save it as UTF-8"):
        READERS[reader](latin1)


# 2. a value that does not read as its column's first rows said: the same message on every path
def _adult_with_text_age(tmp_path: Path, n: int, row: int) -> Path:
    df = pl.read_csv(ADULT, n_rows=n).with_columns(pl.col("age").cast(pl.String))
    f = tmp_path / "adult.csv"
    df.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit("?")).otherwise(pl.col("age")).alias("age")
                    ).write_csv(f)
    return f


def test_text_in_a_continuous_column_after_the_first_rows_of_a_csv(tmp_path):
    f = _adult_with_text_age(tmp_path, 1500, 1200)
    msg = r"continuous column 'age' holds text that is not a number, e.g. '\?' at row 1200"
    with pytest.raises(DataError, match=msg):
        Tabular(f, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=RandomSplitter(0.2, seed=0))
    with pytest.raises(DataError, match=msg):
        TabularDataLoaders.from_csv(f, cat_names=["workclass"], cont_names=["age"], y_names="salary")


def test_text_after_the_rows_a_csv_reader_infers_from(tmp_path):
    f = _adult_with_text_age(tmp_path, 10_500, 10_400)
    assert read_table(f)["age"].dtype == pl.String  # read, the '?' kept for the checks to name
    with pytest.raises(DataError, match=r"column 'age' holds text that is not a number, e.g. '\?' at row 10400"):
        TabularDataLoaders.from_csv(f, cat_names=["workclass"], cont_names=["age"], y_names="salary")


# 3. an image over OpenCV's pixel limit
def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size (a small file can claim 40000x30000 pixels; OpenCV checks the size first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_an_image_too_large_to_decode_is_named_and_listed(tmp_path):
    for sub in ("train/3", "train/7", "valid/3", "valid/7"):
        (tmp_path / sub).mkdir(parents=True)
        for f in sorted((MNIST / sub).glob("*.png"))[:4]:
            shutil.copy(f, tmp_path / sub / f.name)
    huge = tmp_path / "train" / "7" / "huge.png"
    huge.write_bytes(_png_header(40000, 30000))
    msg = rf"{huge}: the image is too large to decode: 40000x30000 = 1,200,000,000 pixels, over the limit of 1,073,741,824"
    with pytest.raises(ImageDecodeError, match=msg) as e:
        decode_image(huge)
    assert isinstance(e.value, DataError)  # too large, as an image past pipekit's own bound is
    files = sorted(tmp_path.rglob("*.png"))
    assert verify_images(files) == [huge]
    # a folder is searched (not walked as the characters of its name, which listed Path('/') as a bad file)
    assert verify_images(tmp_path) == verify_images(str(tmp_path)) == [huge]
    with pytest.raises(DataError, match=r"huge.png' is not a folder; give a folder or a list of files"):
        verify_images(huge)
    with pytest.raises(PipelineStepError, match=msg):
        ImageDataLoaders.from_folder(tmp_path, img_cls="L", bs=4, seed=0)


# 4. a pandas frame naming a column twice
def test_a_pandas_frame_with_a_duplicated_column(tmp_path):
    pdf = adult(50).to_pandas()
    twice = pd.concat([pdf, pdf[["age"]]], axis=1)
    with pytest.raises(DataError, match=r"the pandas DataFrame has the column name\(s\) \['age'\] more than once"):
        to_items(twice)
    with pytest.raises(DataError, match=r"\['age'\] more than once"):
        TabularDataLoaders.from_df(twice, cat_names=["workclass"], cont_names=["fnlwgt"], y_names="salary")


# 5. a boolean mask as validation rows; positions out of range
def test_a_boolean_mask_is_a_mask_and_bad_positions_are_named():
    pdf = adult(200).to_pandas()
    mask = (pdf.age > 50).to_numpy()
    assert 0 < mask.sum() < len(mask) - 2
    train, valid = IndexSplitter(mask)(pl.from_pandas(pdf))
    assert valid.tolist() == np.flatnonzero(mask).tolist() and len(train) == len(pdf) - mask.sum()
    dls = TabularDataLoaders.from_df(pdf, y_names="salary", cat_names=["workclass"], cont_names=["fnlwgt"],
                                     valid_idx=mask, bs=32, seed=0)
    assert dls.tabular.valid_idx.tolist() == np.flatnonzero(mask).tolist()
    kw = dict(y_names="salary", cat_names=["workclass"], cont_names=["fnlwgt"], bs=32, seed=0)
    with pytest.raises(DataError, match=r"IndexSplitter: the validation mask has 150 values for 200 rows"):
        TabularDataLoaders.from_df(pdf, valid_idx=mask[:150], **kw)
    with pytest.raises(DataError, match=r"1 row position\(s\) outside 0..199 \(there are 200 rows\): \[-1\]"):
        TabularDataLoaders.from_df(pdf, valid_idx=[3, -1], **kw)
    with pytest.raises(DataError, match=r"2 row position\(s\) outside 0..199 .*: \[200, 250\]"):
        IndexSplitter([5, 200, 250])(pl.from_pandas(pdf))
    with pytest.raises(DataError, match=r"Tabular: the valid mask has 3 values for 200 rows"):
        Tabular(pdf, cont_names=["fnlwgt"], y_names="salary", splits=(~mask, [True, False, True]))


# 6. labels mixing numbers and text
def test_from_lists_labels_of_mixed_types():
    files = sorted((MNIST / "train").glob("*/*.png"))[::10]
    labels = [3 if f.parent.name == "3" else "seven" for f in files]
    with pytest.raises(DataError, match=r"from_lists: the labels hold mixed types \['int', 'str'\] \(first at items "
                                        r"\{'int': 0, 'str': \d+\}\)"):
        ImageDataLoaders.from_lists(MNIST, files, labels, img_cls="L", bs=8, seed=0)


# 7. what load_dataset() returns without split=
def test_a_hugging_face_dataset_dict():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_polars(pl.read_csv(IMDB, n_rows=40))
    dd = datasets.DatasetDict({"train": ds, "test": ds})
    msg = r"this is a DatasetDict with splits \['train', 'test'\]; pass one split, e.g. ds\['train'\]"
    with pytest.raises(DataError, match=msg):
        to_items(dd)
    with pytest.raises(DataError, match=msg):
        TextDataLoaders.from_df(dd, text_col="text", label_col="label")
    assert to_items(dd["train"]).shape == (40, 3)


# 8. a list column as a category or a number
def test_a_list_column_is_neither_a_category_nor_a_number(tmp_path):
    f = tmp_path / "adult.parquet"
    adult(100).with_columns(pl.concat_list("age", "education-num").alias("tags")).write_parquet(f)
    with pytest.raises(DataError, match=r"column 'tags' in cat_names holds List\(Float64\) values, several per row: "
                                        r"a list can be neither a category nor a number"):
        Tabular(f, procs=[Categorify], cat_names=["tags"], cont_names=["age"], y_names="salary",
                splits=RandomSplitter(0.2, seed=0))
    with pytest.raises(DataError, match=r"column 'tags' in cont_names holds List\(Float64\) values") as info:
        Tabular(f, cat_names=["workclass"], cont_names=["tags"], y_names="salary", splits=RandomSplitter(0.2, seed=0))
    assert "list it in cat_names" not in str(info.value)


# 9. numbers beyond float32
def test_values_beyond_float32_are_named_not_taken_for_missing(tmp_path):
    big = adult(200).with_columns(pl.col("fnlwgt").cast(pl.Float64) * 1e300)
    top = big["fnlwgt"].max()
    msg = rf"continuous column 'fnlwgt' holds 200 value\(s\) beyond the float32 range .* the largest {re.escape(f'{top:g}')}"
    kw = dict(cat_names=["workclass"], cont_names=["age", "fnlwgt"], y_names="salary")
    with pytest.raises(DataError, match=msg):
        TabularDataLoaders.from_df(big, seed=0, **kw)
    f = tmp_path / "adult.csv"
    big.write_csv(f)
    with pytest.raises(DataError, match=msg):
        Tabular(f, splits=RandomSplitter(0.2, seed=0), **kw)
    one = adult(200).with_columns(pl.when(pl.int_range(pl.len()) == 7).then(-1e300).otherwise(pl.col("fnlwgt"))
                                  .alias("fnlwgt"))
    with pytest.raises(DataError, match=r"'fnlwgt' holds 1 value\(s\) beyond .* the largest -1e\+300 \(first at row 7\)"):
        Tabular(one, splits=RandomSplitter(0.2, seed=0), **kw)


def test_image_formats_found_and_the_ones_left_out_named(tmp_path):
    """Every format pipekit decodes is found in a folder; a file in an image format it cannot decode (.heic,
    .svg) is named in a warning instead of disappearing from the data."""
    from PIL import Image

    from pipekit.data import get_image_files
    from pipekit.data.getters import IMAGE_EXTENSIONS

    img = Image.open(sorted((MNIST / "train" / "3").glob("*.png"))[0]).convert("RGB")
    formats = {".jpe": "JPEG", ".pbm": "PPM", ".pnm": "PPM", ".avif": "AVIF", ".jp2": "JPEG2000"}
    for ext, fmt in formats.items():
        (img.convert("1") if ext == ".pbm" else img).save(tmp_path / f"a{ext}", format=fmt)
    (tmp_path / "phone.heic").write_bytes(b"\0" * 64)
    (tmp_path / "logo.svg").write_text("<svg/>")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"left out 2 file\(s\) in image formats pipekit does not decode: 1 \.heic, "
                                         r"1 \.svg; convert them"):
        found = get_image_files(tmp_path)
    assert sorted(f.suffix for f in found) == sorted(formats) and set(formats) <= IMAGE_EXTENSIONS
    for f in found:
        assert decode_image(f).shape == (28, 28, 3), f


def test_a_header_naming_a_column_twice_is_read_as_pandas_names_it(tmp_path):
    raw = (DATA / "adult_sample" / "adult.csv").read_text().splitlines()
    header = raw[0].split(",")
    header[header.index("capital-loss")] = "age"  # two columns named age
    path = tmp_path / "twice.csv"
    path.write_text("\n".join([",".join(header), *raw[1:400]]) + "\n")
    ref = pd.read_csv(path)
    assert "age.1" in ref.columns
    df = read_table(path)
    assert df.columns == list(ref.columns)  # the second 'age' is 'age.1', as pandas names it
    assert df["age.1"].to_list() == ref["age.1"].to_list()  # the file's capital-loss values, not 'age' again
    assert df["age"].to_list() == ref["age"].to_list()
    dls = TabularDataLoaders.from_csv(path, cat_names=["workclass"], cont_names=["age", "age.1"], y_names="salary")
    assert dls.cont_names == ["age", "age.1"]
    tab = Tabular(path, procs=[Categorify], cat_names=["workclass"], cont_names=["age.1"], y_names="salary")
    assert tab.xs["age.1"].to_list() == ref["age.1"].to_list()


def test_labels_differing_only_by_spaces_are_warned_about(tmp_path):
    texts = pl.read_csv(DATA / "imdb_sample" / "texts.csv")
    df = pl.concat([texts.filter(~pl.col("is_valid")).head(90), texts.filter(pl.col("is_valid")).head(30)])
    spaced = df.with_columns(pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.col("label") + " ")
                             .otherwise(pl.col("label")).alias("label"))
    with pytest.warns(UserWarning, match=r"the training labels hold classes that differ only by spaces around them "
                                         r"\('negative' and 'negative '; 'positive' and 'positive '\)"):
        dls = TextDataLoaders.from_df(spaced, text_col="text", label_col="label", valid_col="is_valid", bs=8,
                                      seed=0)
    assert dls.vocab[1] == ["negative", "negative ", "positive", "positive "]  # said, not changed
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from pipekit.data import Categorize

        Categorize().setup(df["label"])  # clean labels: nothing said


def test_a_pair_rated_twice_is_warned_about(tmp_path):
    ratings = pd.read_csv(DATA / "movie_lens_sample" / "ratings.csv")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42)  # one rating per pair: nothing said
    twice = pd.concat([ratings, ratings.iloc[:300].assign(rating=0.5)], ignore_index=True)
    with pytest.warns(UserWarning, match=r"300 \(userId, movieId\) pair\(s\) are rated more than once \(600 of 6331 "
                                         r"rows\).*df\.groupby\(\['userId', 'movieId'\], as_index=False\)\['rating'\]"
                                         r"\.mean\(\)"):
        CollabDataLoaders.from_df(twice, valid_pct=0.2, seed=42)
    with pytest.raises(DataError, match=r"cast them first: df\['rating'\] = df\['rating'\]\.astype\(float\)"):
        CollabDataLoaders.from_df(ratings.assign(rating=ratings["rating"].astype(str)))


def test_a_byte_order_mark_and_an_empty_class_folder_of_texts(tmp_path):
    texts = pl.read_csv(DATA / "imdb_sample" / "texts.csv")
    df = pl.concat([texts.filter(~pl.col("is_valid")).head(40), texts.filter(pl.col("is_valid")).head(10)])
    for split in ("train", "valid"):
        for label in ("negative", "positive", "neutral"):
            (tmp_path / split / label).mkdir(parents=True)
    for i, row in enumerate(df.iter_rows(named=True)):
        f = tmp_path / ("valid" if row["is_valid"] else "train") / row["label"] / f"{i}.txt"
        f.write_bytes(("\ufeff" if i % 2 == 0 else "").encode() + row["text"].encode())
    with pytest.warns(UserWarning, match=r"class folder\(s\) hold no \.txt file like the items, so their class is "
                                         r"missing: \[.*train/neutral"):
        dls = TextDataLoaders.from_folder(tmp_path, valid="valid", bs=8, seed=0)
    words = list(dls.train_ds.blocks[0].vocab)
    assert dls.vocab[1] == ["negative", "positive"] and "xxmaj" in words
    assert "\ufeff" not in words  # 25 of the files start with a byte-order mark: no token of their text
