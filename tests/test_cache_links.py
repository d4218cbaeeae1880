"""The on-disk caches in folders pipekit does not own alone: an empty or relative ``PIPEKIT_CACHE``, a cache folder that
is also a project folder, links planted in a shared or copied cache, and a cache moved to another disk through a link.
Clearing deletes only what pipekit wrote, and no build or clearing writes or deletes through a link in a cache."""
from __future__ import annotations

import os
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.cli import main
from pipekit.core.errors import ParameterError
from pipekit.data import get_image_files
from pipekit.data.cache import (STALE_AFTER_S, CacheRebuildWarning, CacheWriteWarning, cache_usage,
                                clean_stale_temps, temp_name)
from pipekit.data.external import pipekit_cache_dir
from pipekit.text import TextBlock
from pipekit.vision import Resize, build_image_store


@pytest.fixture(scope="module")
def digits() -> list[Path]:
    return list(get_image_files(D.path("mnist_tiny") / "train")[:40])


@pytest.fixture(scope="module")
def reviews() -> pl.Series:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv").head(100)["text"]


def user_files(home: Path) -> dict[str, bytes]:
    """Every file under ``home`` (not following links) and its bytes."""
    return {p.relative_to(home).as_posix(): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def a_users_folder(home: Path, digits: list[Path]) -> dict[str, bytes]:
    """A project's own files, some named as pipekit names its cache files (a real image, NumPy arrays, JSON)."""
    (home / "cats").mkdir(parents=True)
    shutil.copy(digits[0], home / "cats" / "1.png")
    np.save(home / "embeddings.npy", np.arange(5))
    (home / "embeddings.json").write_text("{}")
    (home / "meta.json").write_text('{"my": "project settings"}\n')
    return user_files(home)


def only_entry(folder: Path) -> Path:
    [entry] = list(folder.iterdir())
    return entry


def test_an_empty_pipekit_cache_means_unset_and_a_relative_one_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPEKIT_CACHE", "")
    assert pipekit_cache_dir("images") == Path.home() / ".cache" / "pipekit" / "images"
    project = tmp_path / "project"
    (project / "images" / "cats").mkdir(parents=True)
    (project / "images" / "cats" / "1.jpg").write_bytes(b"my photo")
    monkeypatch.chdir(project)
    for relative in ("cache", ".", "~no_such_user_here/cache"):  # a ~user naming no user stays relative
        monkeypatch.setenv("PIPEKIT_CACHE", relative)
        with pytest.raises(ParameterError, match=rf"PIPEKIT_CACHE='{re.escape(relative)}' is a relative folder.*absolute"):
            pipekit.clear_cache()
        with pytest.raises(SystemExit, match=r"pipekit cache clear: PIPEKIT_CACHE=.* is a relative folder"):
            main(["cache", "clear"])
    assert (project / "images" / "cats" / "1.jpg").read_bytes() == b"my photo"
    monkeypatch.setenv("PIPEKIT_CACHE", "~/pk_cache")  # a ~ the shell did not expand is the user's home
    assert pipekit_cache_dir() == Path.home() / "pk_cache"


def test_clearing_a_cache_folder_that_is_also_a_project_folder_keeps_the_projects_files(tmp_path, monkeypatch,
                                                                                        digits, reviews, capsys):
    project = tmp_path / "work"
    images = a_users_folder(project / "images", digits)
    texts = a_users_folder(project / "text", digits)
    monkeypatch.setenv("PIPEKIT_CACHE", str(project))
    build_image_store(digits, None, mode="L")
    TextBlock.from_df("text").setup(reviews, np.arange(80))
    # what pipekit measures is its own: one entry each, the project's files not counted
    (img_bytes, img_entries), (tok_bytes, tok_entries) = cache_usage(project / "images"), cache_usage(project / "text")
    assert img_entries == tok_entries == 1 and img_bytes > 40 * 28 * 28 and tok_bytes > 0
    assert img_bytes < sum(p.stat().st_size for p in (project / "images").rglob("*") if p.is_file()) - 100
    with pytest.warns(UserWarning) as record:
        assert pipekit.clear_cache() == {"images": img_bytes, "tokens": tok_bytes}
    assert sorted(str(w.message).split(" pipekit deletes")[0] for w in record) == [
        f"the cache folder {project / kind} holds 4 item(s) pipekit did not write, kept: cats/, embeddings.json, "
        "embeddings.npy, meta.json." for kind in ("images", "text")]
    assert user_files(project / "images") == images and user_files(project / "text") == texts
    assert sorted(p.name for p in (project / "images").iterdir()) == ["cats", "embeddings.json", "embeddings.npy",
                                                                       "meta.json"]
    # the command line says the same, and succeeds: keeping the project's files is not a failure
    build_image_store(digits, None, mode="L")
    assert main(["cache", "clear", "--images"]) == 0
    out, err = capsys.readouterr()
    assert out == f"images   freed {megabytes_of(img_bytes)} in {project / 'images'}\n"
    assert f"pipekit cache clear: warning: the cache folder {project / 'images'} holds 4 item(s)" in err
    assert "could not be removed" not in err and user_files(project / "images") == images


def megabytes_of(n: int) -> str:
    from pipekit.cli import megabytes

    return megabytes(n)


def test_a_linked_image_entry_folder_is_replaced_not_written_through(tmp_path, digits):
    cache, home = tmp_path / "shared_cache", tmp_path / "home"
    mine = a_users_folder(home / "features", digits)
    build_image_store(digits, Resize(32), cache_dir=cache)
    entry = only_entry(cache / "images")
    shutil.rmtree(entry)
    entry.symlink_to(home / "features", target_is_directory=True)
    with pytest.warns(CacheRebuildWarning, match=rf"{re.escape(str(entry))}: is a link to {re.escape(str(home / 'features'))}.*link was removed"):
        store = build_image_store(digits, Resize(32), cache_dir=cache)
    assert user_files(home) == {f"features/{k}": v for k, v in mine.items()}
    assert entry.is_dir() and not entry.is_symlink() and store.n_decoded_ == 40 and store.path_.parent == entry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_image_store(digits, Resize(32), cache_dir=cache).n_reused_ == 40  # the rebuilt entry serves


def test_a_linked_token_entry_folder_is_replaced_not_written_through(tmp_path, digits, reviews):
    cache, home = tmp_path / "shared_cache", tmp_path / "home"
    mine = a_users_folder(home / "notes", digits)

    def build() -> TextBlock:
        block = TextBlock.from_df("text", cache_dir=cache)
        block.setup(reviews, np.arange(80))
        return block

    reference = build().vocab
    entry = only_entry(cache / "text")
    shutil.rmtree(entry)
    entry.symlink_to(home / "notes", target_is_directory=True)
    with pytest.warns(CacheRebuildWarning, match=rf"{re.escape(str(entry))}: is a link to {re.escape(str(home / 'notes'))}"):
        block = build()
    assert block.from_cache_ is False and block.vocab == reference
    assert user_files(home) == {f"notes/{k}": v for k, v in mine.items()}
    assert entry.is_dir() and not entry.is_symlink() and {p.name for p in entry.iterdir()} == {"meta.json", "ids.arrow"}
    assert build().from_cache_ is True


def test_a_pack_or_token_file_replaced_by_a_link_is_not_read_through_it(tmp_path, digits, reviews):
    # a link in a pack's place to a copy outside the cache, identical byte for byte, was opened through and served
    cache, outside = tmp_path / "shared_cache", tmp_path / "outside"
    outside.mkdir()
    build_image_store(digits, Resize(32), cache_dir=cache)
    pack = next(only_entry(cache / "images").glob("*.npy"))
    shutil.copy(pack, outside / pack.name)
    pack.unlink()
    pack.symlink_to(outside / pack.name)
    with pytest.warns(CacheRebuildWarning, match=rf"{re.escape(str(pack))}: is a link to .*link was removed"):
        store = build_image_store(digits, Resize(32), cache_dir=cache)
    assert store.n_decoded_ == 40 and not pack.is_symlink()
    block = TextBlock.from_df("text", cache_dir=cache)
    block.setup(reviews, np.arange(80))
    ids = only_entry(cache / "text") / "ids.arrow"
    shutil.copy(ids, outside / "ids.arrow")
    ids.unlink()
    ids.symlink_to(outside / "ids.arrow")
    with pytest.warns(CacheRebuildWarning, match=rf"{re.escape(str(ids))}: is a link to "):
        block = TextBlock.from_df("text", cache_dir=cache)
        block.setup(reviews, np.arange(80))
    assert block.from_cache_ is False and not ids.is_symlink()
    assert (outside / "ids.arrow").exists() and (outside / pack.name).exists()  # what the links pointed to is kept


def test_a_named_pipe_in_the_index_locks_place_stops_neither_a_clearing_nor_a_build(tmp_path, digits):
    # opening a planted pipe for reading waited for a writer forever: `pipekit cache clear` hung
    cache = tmp_path / "shared_cache"
    build_image_store(digits, Resize(32), cache_dir=cache)
    lock = only_entry(cache / "images") / "index.lock"
    lock.unlink()
    os.mkfifo(lock)
    assert pipekit.clear_cache("images", cache_dir=cache)["images"] > 0
    assert not lock.exists()
    build_image_store(digits, Resize(32), cache_dir=cache)
    lock = only_entry(cache / "images") / "index.lock"
    lock.unlink()
    os.mkfifo(lock)
    assert build_image_store(digits[:30], Resize(32), cache_dir=cache).n_reused_ == 30  # commits beside it
    assert lock.is_file()


def test_a_linked_index_lock_creates_nothing_where_it_points(tmp_path, digits, monkeypatch):
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    build_image_store(digits[:20], Resize(32), cache_dir=cache)
    lock = only_entry(cache / "images") / "index.lock"
    lock.unlink()
    lock.symlink_to(home / ".profile")
    with pytest.warns(CacheRebuildWarning, match=r"index\.lock: is a link to"):
        assert build_image_store(digits, Resize(32), cache_dir=cache).n_decoded_ == 20
    assert list(home.iterdir()) == [] and lock.is_file() and not lock.is_symlink()
    # a link planted between the check and the opening (O_NOFOLLOW refuses it): the images are built in memory
    import pipekit.vision.cache as vision_cache

    monkeypatch.setattr(vision_cache, "remove_link", lambda path: False)
    lock.unlink()
    lock.symlink_to(home / ".profile")
    with pytest.warns(CacheWriteWarning, match=re.escape(str(cache / "images"))):
        store = build_image_store(digits[:30], Resize(32), cache_dir=cache)
    assert store.path_ is None and len(store) == 30 and list(home.iterdir()) == []


def test_pack_clean_up_deletes_only_files_named_as_packs(tmp_path, digits):
    """Files someone left in an image entry folder are not packs, so no build deletes them."""
    cache = tmp_path / "cache"
    build_image_store(digits[:20], Resize(32), cache_dir=cache)
    entry = only_entry(cache / "images")
    np.save(entry / "embeddings.npy", np.arange(5))
    (entry / "embeddings.json").write_text("{}")
    first_pack = sorted(entry.glob("*.npy"))
    build_image_store(digits, Resize(32), cache_dir=cache)  # its pack lists all 40: the first one is garbage
    left = sorted(p.name for p in entry.iterdir() if not p.name.startswith("index"))
    assert "embeddings.npy" in left and "embeddings.json" in left and len(left) == 4
    assert not any(p.exists() for p in first_pack if p.name != "embeddings.npy")


def test_stale_temporary_files_are_not_looked_for_through_linked_folders(tmp_path):
    root, outside = tmp_path / "cache" / "images", tmp_path / "elsewhere"
    (root / "0123456789abcdef").mkdir(parents=True)
    outside.mkdir()
    (root / "fedcba9876543210").symlink_to(outside, target_is_directory=True)
    stale = [root / "0123456789abcdef" / temp_name("pack"), outside / temp_name("pack")]
    old = time.time() - STALE_AFTER_S - 60
    for f in stale:
        f.write_bytes(b"left by a killed build")
        os.utime(f, (old, old))
    assert clean_stale_temps(root) == [stale[0]]
    assert not stale[0].exists() and stale[1].read_bytes() == b"left by a killed build"


def test_a_cache_kind_folder_linked_to_another_disk_is_cleared_inside(tmp_path, monkeypatch, digits, capsys):
    cache, disk, home = tmp_path / "cache", tmp_path / "big" / "pk_images", tmp_path / "home"
    disk.mkdir(parents=True)
    cache.mkdir()
    (cache / "images").symlink_to(disk, target_is_directory=True)
    monkeypatch.setenv("PIPEKIT_CACHE", str(cache))
    build_image_store(digits, None, mode="L")
    mine = a_users_folder(home, digits)
    # an entry-named link inside (a copied cache) is removed itself, never followed; a file in an entry is kept
    (disk / "ffffffffffffffff").symlink_to(home, target_is_directory=True)
    (only_entry_named(disk) / "notes.txt").write_text("mine")
    size, entries = cache_usage(cache / "images")
    assert entries == 1 and size > 40 * 28 * 28
    assert main(["cache", "info", "--images"]) == 0
    assert f"{cache / 'images'} (a link to {disk})" in capsys.readouterr().out
    assert main(["cache", "clear", "--images"]) == 0
    out, err = capsys.readouterr()
    assert out == f"images   freed {megabytes_of(size)} in {cache / 'images'} (a link to {disk})\n"
    assert "kept: " in err and "/notes.txt" in err and "could not be removed" not in err
    assert (cache / "images").is_symlink() and user_files(home) == mine
    assert [p.name for p in disk.iterdir()] == [only_entry_named(disk).name]
    assert [p.name for p in only_entry_named(disk).iterdir()] == ["notes.txt"]
    assert cache_usage(cache / "images")[0] == 0


def only_entry_named(folder: Path) -> Path:
    """The one real entry folder (16 hex digits, not a link) in an image cache folder."""
    [entry] = [p for p in folder.iterdir() if not p.is_symlink() and p.is_dir()]
    return entry
