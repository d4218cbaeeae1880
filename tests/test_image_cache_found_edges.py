"""The presize cache at the edges users reach: a file rewritten during a build, palette images in memory, files
whose modification time lies in the future, a clearing during a build, a data folder moved; on real images."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipekit.datasets as D
import pipekit.vision.cache as vision_cache
from pipekit.data.cache import CacheRebuildWarning, CacheWriteWarning
from pipekit.vision import Resize, build_image_store, clear_image_cache, decode_image
from pipekit.vision.sources import MemoryImage


@pytest.fixture
def reads(monkeypatch):
    """Each image file read from disk by the image cache, counted by path."""
    seen: Counter[str] = Counter()
    read = vision_cache._read_bytes

    def counting(path):
        seen[os.fspath(path)] += 1
        return read(path)

    monkeypatch.setattr(vision_cache, "_read_bytes", counting)
    return seen


def _digits(folder: Path, n: int, digit: str = "3") -> list[Path]:
    """``n`` of mnist_tiny's digits copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted((D.path("mnist_tiny") / "train" / digit).glob("*.png"))[:n]:
        shutil.copy(f, folder / f.name)
    return sorted(folder.glob("*.png"))


def _pixels(f: Path) -> np.ndarray:
    return Resize(16).apply(decode_image(f, mode="L"))


@pytest.mark.parametrize("held", [512 << 20, 0], ids=["bytes-kept", "read-again"])
def test_a_file_rewritten_during_a_warm_build_is_stored_under_the_key_of_what_was_decoded(tmp_path, monkeypatch,
                                                                                         held):
    monkeypatch.setattr(vision_cache, "HELD_BYTES", held, raising=False)
    files = _digits(tmp_path / "data", 12)
    cache = tmp_path / "c"
    build_image_store(files[:-1], Resize(16), mode="L", cache_dir=cache)  # yesterday's run: a warm cache
    target = files[-1]  # a file added today
    backup = tmp_path / "backup.png"
    shutil.copy(target, backup)
    other = sorted((D.path("mnist_tiny") / "train" / "7").glob("*.png"))[0]
    v1, v2 = _pixels(backup), _pixels(other)
    assert not np.array_equal(v1, v2)
    read = vision_cache._read_bytes
    seen: Counter[str] = Counter()

    def rewriting(path):  # a sync tool saves a new version of the file just after the build first reads it
        data = read(path)
        seen[os.fspath(path)] += 1
        if os.fspath(path) == os.fspath(target) and seen[os.fspath(path)] == 1:
            shutil.copy(other, target)
        return data

    monkeypatch.setattr(vision_cache, "_read_bytes", rewriting)
    store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    monkeypatch.setattr(vision_cache, "_read_bytes", read)
    got = np.asarray(store.pixels[-1])
    if held:  # the bytes hashed are the bytes decoded: the file is read once
        assert seen[os.fspath(target)] == 1 and np.array_equal(got, v1)
    else:  # read again to be decoded, and keyed by what was decoded
        assert seen[os.fspath(target)] == 2 and np.array_equal(got, v2)
    # a file holding the first content gets its own pixels from the cache, never the second content's
    again = build_image_store([backup, *files[:3]], Resize(16), mode="L", cache_dir=cache)
    assert np.array_equal(np.asarray(again.pixels[0]), v1)
    # and the rewritten file, read again by a later build, gets the second
    later = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    assert np.array_equal(np.asarray(later.pixels[-1]), v2)


def _palette_image(indices: np.ndarray, colour: tuple[int, int, int]) -> Image.Image:
    img = Image.fromarray(indices, mode="P")
    img.putpalette([c * k // 3 for k in (3, 2, 1, 0) for c in colour] + [0] * (768 - 12))
    return img


def test_palette_images_in_memory_of_one_set_of_indices_and_two_palettes_are_two_images(tmp_path):
    digit = decode_image(sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[0], mode="L")[..., 0]
    indices = (digit // 64).astype(np.uint8)  # 0..3, the palette's four entries
    red, blue = _palette_image(indices, (255, 0, 0)), _palette_image(indices, (0, 0, 255))
    cache = tmp_path / "c"
    first = build_image_store([MemoryImage("red", image=red)], Resize(16), cache_dir=cache)
    second = build_image_store([MemoryImage("blue", image=blue)], Resize(16), cache_dir=cache)
    truth = build_image_store([MemoryImage("blue", image=blue)], Resize(16), cache_dir=False)
    assert second.n_decoded_ == 1
    assert np.array_equal(second.pixels, truth.pixels) and not np.array_equal(second.pixels, first.pixels)
    # the transparent entry is part of the image too; the same image again is served from the cache
    see_through = blue.copy()
    see_through.info["transparency"] = 0
    assert build_image_store([MemoryImage("t", image=see_through)], Resize(16), cache_dir=cache).n_decoded_ == 1
    assert build_image_store([MemoryImage("b", image=blue.copy())], Resize(16), cache_dir=cache).n_reused_ == 1


def test_files_with_a_modification_time_in_the_future_are_read_once(tmp_path, reads, monkeypatch):
    monkeypatch.setattr(vision_cache, "SETTLED_S", 0)  # the copies count as settled by their change time
    files = _digits(tmp_path / "data", 20)
    future = time.time() + 3 * 24 * 3600  # unpacked from an archive made on a machine whose clock ran ahead
    for f in files:
        os.utime(f, (future, future))
    cache = tmp_path / "c"
    first = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    reads.clear()
    again = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    assert sum(reads.values()) == 0 and again.n_reused_ == len(files)
    assert np.array_equal(again.pixels, first.pixels)


def _clear_at(monkeypatch, n: int, clear) -> None:
    """Run ``clear()`` when the cache reads its ``n``-th file: while the build writes its temporary pack."""
    read = vision_cache._read_bytes
    count = [0]

    def reading(path):
        count[0] += 1
        if count[0] == n:
            clear()
        return read(path)

    monkeypatch.setattr(vision_cache, "_read_bytes", reading)


def test_clearing_the_cache_during_a_build_keeps_the_live_builds_temporary_pack(tmp_path, monkeypatch):
    files = _digits(tmp_path / "data", 40)
    cache = tmp_path / "c"
    cleared = []
    _clear_at(monkeypatch, 20, lambda: cleared.append(clear_image_cache(cache)))
    store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    assert cleared == [0]  # nothing but the live build's temporary file, which is kept
    assert store.path_ is not None and store.path_.exists()
    assert np.array_equal(store.pixels, build_image_store(files, Resize(16), mode="L", cache_dir=False).pixels)
    monkeypatch.undo()
    assert build_image_store(files, Resize(16), mode="L", cache_dir=cache).n_reused_ == len(files)


def test_a_build_whose_temporary_pack_is_removed_still_gives_its_images(tmp_path, monkeypatch):
    files = _digits(tmp_path / "data", 40)
    cache = tmp_path / "c"

    def remove_temps():  # as a clearing on another machine sharing the folder, or an older pipekit's, does
        for f in (cache / "images").glob("*/*.pk-tmp"):
            f.unlink()

    _clear_at(monkeypatch, 20, remove_temps)
    with pytest.warns(CacheWriteWarning, match="removed by another process"):
        store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    assert store.path_ is None and store.n_decoded_ == len(files)
    assert np.array_equal(store.pixels, build_image_store(files, Resize(16), mode="L", cache_dir=False).pixels)
    assert not list((cache / "images").glob("*/*.npy"))


def test_a_moved_data_folder_is_read_once_then_never_again(tmp_path, reads, monkeypatch):
    monkeypatch.setattr(vision_cache, "SETTLED_S", 0)
    files = _digits(tmp_path / "data", 20)
    cache = tmp_path / "c"
    first = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    os.rename(tmp_path / "data", tmp_path / "data2")
    moved = sorted((tmp_path / "data2").glob("*.png"))
    reads.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRebuildWarning)
        once = build_image_store(moved, Resize(16), mode="L", cache_dir=cache)
        assert len(reads) == len(files) and once.n_decoded_ == 0 and once.path_ == first.path_
        reads.clear()
        again = build_image_store(moved, Resize(16), mode="L", cache_dir=cache)
    assert sum(reads.values()) == 0 and again.n_reused_ == len(files)
    assert np.array_equal(again.pixels, first.pixels)


def test_random_samples_of_a_folder_keep_about_one_copy_and_a_subset_keeps_the_whole_sets(tmp_path):
    import random

    from pipekit.data.cache import image_cache_copies

    files = _digits(tmp_path / "data", 60) + _digits(tmp_path / "data", 60, digit="7")
    cache = tmp_path / "c"
    whole = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    half = build_image_store(files[::2], Resize(16), mode="L", cache_dir=cache)  # a subset: the whole set's stays
    assert half.n_decoded_ == 0 and whole.path_.exists()
    assert build_image_store(files, Resize(16), mode="L", cache_dir=cache).n_decoded_ == 0
    rng = random.Random(0)
    for _ in range(10):  # a fresh random half of the folder at each run
        build_image_store(rng.sample(files, len(files) // 2), Resize(16), mode="L", cache_dir=cache)
    (_, copies, size), = image_cache_copies(cache / "images")
    assert copies <= 3 and size < 2 * len(files) * 16 * 16 + 40_000
