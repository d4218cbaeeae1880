"""The token cache through the book's loop of editing texts and rebuilding: a rebuild of the same data set and settings
deletes the entry it supersedes (the image cache's rule, SUPERSEDED_SHARE), so the cache holds about one entry of
the data set's tokens, not one more per edit, and the loaders' tokens are those of a build without a cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipekit.data.cache import cache_usage
from pipekit.text import TextBlock, TextDataLoaders, Tokenizer


@pytest.fixture
def folder(tmp_path, monkeypatch, imdb_text_files) -> Path:
    """40 imdb_sample reviews as text files (train/ and valid/, a folder per label), the cache in tmp_path."""
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    return imdb_text_files(40)


def build(root: Path, cache_dir=None):
    return TextDataLoaders.from_folder(root, bs=8, min_freq=1, cache_dir=cache_dir)


def assert_as_without_a_cache(dls, root: Path) -> None:
    fresh = build(root, cache_dir=False)
    assert dls.blocks[0].vocab == fresh.blocks[0].vocab and len(dls.blocks[0].vocab) > 100
    for mine, theirs in ((dls.train, fresh.train), (dls.valid, fresh.valid)):
        assert mine.dataset.stores[0].ids.equals(theirs.dataset.stores[0].ids)


def test_editing_one_text_and_rebuilding_keeps_one_entry(folder, tmp_path):
    text_cache = tmp_path / "cache" / "text"
    dls = build(folder)
    assert dls.blocks[0].from_cache_ is False
    one_entry, entries = cache_usage(text_cache)
    assert one_entry > 0 and entries == 1
    files = sorted(folder.rglob("*.txt"))
    for round_ in range(3):
        edited = files[7 * round_]
        edited.write_text(edited.read_text(encoding="utf-8") + f" Edited in round {round_}.", encoding="utf-8")
        dls = build(folder)
        assert dls.blocks[0].from_cache_ is False  # the edited data set is tokenized again ...
        size, entries = cache_usage(text_cache)
        # ... and its old entry deleted: about one entry's bytes (the old code held round_ + 2 entries)
        assert entries == 1 and size < 1.2 * one_entry
        assert_as_without_a_cache(dls, folder)
    # the entry kept is the current one: the next build reads it
    assert build(folder).blocks[0].from_cache_ is True


def test_adding_or_deleting_a_text_supersedes_but_a_sample_does_not(folder, tmp_path):
    text_cache = tmp_path / "cache" / "text"
    build(folder)
    added = folder / "train" / "positive" / "999.txt"
    added.write_text("A new review, added to the data set. Great film!", encoding="utf-8")
    assert_as_without_a_cache(build(folder), folder)
    assert cache_usage(text_cache)[1] == 1
    sorted(folder.rglob("*.txt"))[3].unlink()
    assert_as_without_a_cache(build(folder), folder)
    assert cache_usage(text_cache)[1] == 1
    # half of the texts with the same settings: another data set, which leaves the whole one's entry in place
    texts = pl.Series([f.read_text(encoding="utf-8") for f in sorted(folder.rglob("*.txt"))])
    block = TextBlock(Tokenizer(), min_freq=1)
    block.setup(texts.head(20), np.arange(16))
    assert block.from_cache_ is False and cache_usage(text_cache)[1] == 2
    assert build(folder).blocks[0].from_cache_ is True
