"""A Hugging Face ``datasets.Dataset`` with an ``Image`` column (images in memory) as an ImageBlock source,
built here from the real mnist_tiny and dogscats files (no download): the same pixels as from the files,
presized into the same cache keyed by the image bytes."""
from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core import DataError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, to_items
from pipekit.vision import ImageBlock, MaskBlock, Resize
from pipekit.vision.cache import build_image_store
from pipekit.vision.sources import MemoryImage, image_sources


def mnist_files() -> list[Path]:
    root = D.path("mnist_tiny")
    return sorted(root.glob("train/*/*.png"))[::7] + sorted(root.glob("valid/*/*.png"))[::7]


def in_memory_dataset(files: list[Path], images: list | None = None) -> datasets.Dataset:
    """PIL images loaded into memory (no file behind them): the Image feature stores their PNG bytes."""
    if images is None:
        images = []
        for f in files:
            with Image.open(f) as im:
                images.append(im.copy())
    return datasets.Dataset.from_dict(
        {"image": images, "label": [f.parent.name for f in files], "is_valid": [f.parts[-3] == "valid" for f in files]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["3", "7"]),
                                    "is_valid": datasets.Value("bool")}))


def block(**kw) -> DataBlock:
    return DataBlock(blocks=(ImageBlock(cls="L", **kw), CategoryBlock), get_x=ColReader("image"),
                     get_y=ColReader("label"), splitter=ColSplitter("is_valid"))


def test_an_hf_image_column_gives_the_pixels_of_the_files(tmp_path):
    files = mnist_files()
    ds = in_memory_dataset(files)
    items = to_items(ds)
    assert isinstance(items.schema["image"], pl.Struct) and items["image"][0]["path"] is None  # bytes, no file
    assert sorted(set(items["label"])) == ["3", "7"]  # ClassLabel integers come back as their names
    dls = block(cache_dir=tmp_path).dataloaders(ds, bs=16, seed=0, num_workers=0)
    from_files = DataBlock(blocks=(ImageBlock(cls="L", cache_dir=False), CategoryBlock), get_x=ColReader("path"),
                           get_y=lambda item: Path(item["path"]).parent.name,
                           splitter=lambda items: (np.flatnonzero(~items["is_valid"].to_numpy()),
                                                   np.flatnonzero(items["is_valid"].to_numpy())))
    ref = from_files.dataloaders(pl.DataFrame({"path": [str(f) for f in files],
                                               "is_valid": [f.parts[-3] == "valid" for f in files]}),
                                 bs=16, seed=0, num_workers=0)
    store, ref_store = dls.train.dataset.stores[0], ref.train.dataset.stores[0]
    assert store.pixels.shape == (len(files), 28, 28, 1) and np.array_equal(store.pixels, ref_store.pixels)
    assert dls.vocab == ["3", "7"] and len(dls.valid.dataset) == sum(f.parts[-3] == "valid" for f in files)
    (x, y), (rx, ry) = dls.one_batch(), ref.one_batch()
    assert x.shape == (16, 1, 28, 28) and torch.equal(x, rx) and torch.equal(y, ry)


def test_in_memory_images_share_the_presize_cache_keyed_by_their_bytes(tmp_path):
    files = mnist_files()
    ds = in_memory_dataset(files)
    first = block(cache_dir=tmp_path).datasets(ds).stores[0]
    again = block(cache_dir=tmp_path).datasets(ds).stores[0]
    assert first.n_decoded_ == len(files) and again.n_decoded_ == 0 and again.n_reused_ == len(files)
    assert np.array_equal(np.asarray(first.pixels), np.asarray(again.pixels))
    # one image changed: only its bytes are new, the other images come from the cache
    images = list(ds["image"])
    images[0] = images[0].rotate(90)
    changed = in_memory_dataset(files, images)
    third = block(cache_dir=tmp_path).datasets(changed).stores[0]
    assert third.n_decoded_ == 1 and third.n_reused_ == len(files) - 1
    assert np.array_equal(np.asarray(third.pixels)[0, :, :, 0], np.rot90(np.asarray(first.pixels)[0, :, :, 0]))


def test_dogscats_jpeg_bytes_and_pil_images_presize_like_their_files(tmp_path):
    root = D.path("dogscats")
    files = sorted(root.glob("valid/cats/*.jpg"))[:6] + sorted(root.glob("valid/dogs/*.jpg"))[:6]
    ds = datasets.Dataset.from_dict({"image": [{"bytes": f.read_bytes(), "path": None} for f in files],
                                     "label": [f.parent.name for f in files]},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}))
    want = build_image_store([str(f) for f in files], Resize(64), mode="RGB", cache_dir=False).pixels
    dblock = DataBlock(blocks=(ImageBlock(cache_dir=tmp_path), CategoryBlock), get_x=ColReader("image"),
                       get_y=ColReader("label"), item_tfms=Resize(64), splitter=ColSplitter("is_valid"))
    got = dblock.datasets(to_items(ds).with_columns(is_valid=pl.Series([i % 4 == 0 for i in range(12)])))
    assert np.array_equal(np.asarray(got.stores[0].pixels), want)
    # PIL images in a column of objects: keyed by mode, size and pixels, decoded as the files are
    pil = []
    for f in files:
        with Image.open(f) as im:
            pil.append(im.copy())
    sources = image_sources(pl.Series("img", pil, dtype=pl.Object), "ImageBlock")
    assert all(isinstance(s, MemoryImage) and s.image is not None for s in sources)
    store = build_image_store(sources, Resize(64), mode="RGB", cache_dir=tmp_path)
    # PIL's JPEG decoder and OpenCV's may round a few pixels differently; the pictures are the same
    diff = np.abs(np.asarray(store.pixels, dtype=np.int16) - want.astype(np.int16))
    assert diff.mean() < 1.0 and store.n_decoded_ == len(files)
    assert build_image_store(sources, Resize(64), mode="RGB", cache_dir=tmp_path).n_reused_ == len(files)


def test_bad_image_items_are_named():
    s = pl.Series("image", [{"bytes": None, "path": None}])
    with pytest.raises(DataError, match="item 0 of column 'image' has neither image bytes nor a path"):
        image_sources(s, "ImageBlock")
    with pytest.raises(DataError, match="ImageBlock needs images: .*got a column of Int64"):
        image_sources(pl.Series("image", [1, 2]), "ImageBlock")
    with pytest.raises(DataError, match="item 1 of column 'x' is a int"):
        image_sources(pl.Series("x", ["a.png", 3], dtype=pl.Object), "ImageBlock")
    bad = MemoryImage("item 0 of column 'image'", data=b"not an image")
    with pytest.raises(ValueError, match="item 0 of column 'image': not a readable image"):
        build_image_store([bad], mode="RGB", cache_dir=False)
    mask = MemoryImage("a colour mask", image=Image.fromarray(np.dstack([np.zeros((4, 4), np.uint8),
                                                                         np.ones((4, 4), np.uint8) * 3,
                                                                         np.zeros((4, 4), np.uint8)])))
    with pytest.raises(ValueError, match="a colour mask: mask has 3 different colour channels"):
        mask.decode("mask")
    assert MaskBlock(codes=["a", "b"]).geometry == "mask"


def test_a_16_bit_pil_image_gives_the_pixels_of_its_file(tmp_path):
    """A 16-bit grey PNG opens in PIL as mode I;16; its pixels are scaled to 8 bits as the file's are, not
    clipped (every value above 255 white)."""
    digit = np.asarray(Image.open(D.path("mnist_tiny") / "test" / "1503.png").convert("L"))
    f16 = tmp_path / "digit16.png"
    Image.fromarray(digit.astype(np.uint16) * 257).save(f16)
    with Image.open(f16) as im:
        assert im.mode == "I;16"
        pil16, pil32 = im.copy(), im.convert("I")  # I: how older Pillow opens the same file
    from_file = build_image_store([str(f16)], mode="L", cache_dir=False).pixels[0, :, :, 0]
    assert np.array_equal(from_file, digit)
    for img in (pil16, pil32):
        got = MemoryImage("a 16-bit image", image=img).decode("L")[:, :, 0]
        assert np.array_equal(got, digit), img.mode
        assert np.array_equal(MemoryImage("rgb", image=img).decode("RGB"), np.repeat(digit[:, :, None], 3, 2))
    # a palette mask keeps its indices, a 1-bit mask is classes 0 and 1
    codes = (digit > 0).astype(np.uint8) * 2
    pal = Image.fromarray(codes, mode="L").convert("P")
    assert np.array_equal(MemoryImage("pal", image=pal).decode("mask")[:, :, 0], np.asarray(pal))
    one_bit = Image.fromarray(digit > 0).convert("1")
    assert set(np.unique(MemoryImage("1-bit", image=one_bit).decode("mask"))) == {0, 1}
