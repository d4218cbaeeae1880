"""The presize cache at the edges users reach: a file rewritten during a build, palette images in memory, files
whose modification time lies in the future, a clearing during a build, a data folder moved; on real images."""

from __future__ import annotations

import os
import shutil
import threading
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


def test_a_warm_build_of_new_files_keeps_no_files_bytes_waiting_for_their_decoding(tmp_path, monkeypatch):
    files = _digits(tmp_path / "data", 10)
    cache = tmp_path / "c"
    build_image_store(files, Resize(16), mode="L", cache_dir=cache)  # yesterday's run: a warm cache
    new = _digits(tmp_path / "new", 40, digit="7")  # today's files, no entry holds them
    # the bytes of each new file from its read to its decoding: all of them at once, were they hashed in one pass and
    # decoded in the next
    read, decode = vision_cache._read_bytes, vision_cache.decode_bytes
    waiting: dict[str, int] = {}
    most, reads = [0], Counter()
    lock = threading.Lock()

    def reading(path):
        data = read(path)
        with lock:
            reads[os.fspath(path)] += 1
            if Path(path) in new:
                waiting[os.fspath(path)] = len(data)
                most[0] = max(most[0], len(waiting))
        return data

    def decoding(data, mode, name):
        with lock:
            waiting.pop(name, None)
        return decode(data, mode=mode, name=name)

    monkeypatch.setattr(vision_cache, "_read_bytes", reading)
    monkeypatch.setattr(vision_cache, "decode_bytes", decoding)
    both = files + new
    store = build_image_store(both, Resize(16), mode="L", cache_dir=cache, num_workers=2)
    assert store.n_decoded_ == len(new) and store.n_reused_ == len(files)
    assert most[0] <= 4  # at most the files hashed beside the first new one, and those being decoded
    assert all(reads[os.fspath(f)] == 1 for f in new)  # each new file read once: decoded from the bytes hashed
    assert np.array_equal(store.pixels, build_image_store(both, Resize(16), mode="L", cache_dir=False).pixels)
    monkeypatch.undo()
    assert build_image_store(both, Resize(16), mode="L", cache_dir=cache).n_reused_ == len(both)


def _entry(cache: Path) -> Path:
    (entry,) = (cache / "images").iterdir()
    return entry


def test_clearing_during_a_build_keeps_the_lock_file_the_build_commits_under(tmp_path, monkeypatch):
    files = _digits(tmp_path / "data", 40)
    cache = tmp_path / "c"
    build_image_store(files[:10], Resize(16), mode="L", cache_dir=cache)
    lock = _entry(cache) / "index.lock"
    before = os.stat(lock).st_ino
    seen = []

    def clear():
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            clear_image_cache(cache)
        seen.append((lock.exists() and os.stat(lock).st_ino, [str(w.message) for w in said]))

    _clear_at(monkeypatch, 25, clear)  # while the build writes its temporary pack
    store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    (ino, said), = seen
    # the lock file stays, the one every build locks to commit; the clearing says what it kept
    assert ino == before and any("temporary file(s) of a build still running" in m for m in said)
    assert store.path_ is not None and store.path_.exists() and store.path_.with_suffix(".json").exists()
    assert os.stat(lock).st_ino == before


def test_clearing_while_a_build_commits_waits_a_little_then_keeps_its_entry(tmp_path, monkeypatch):
    import pipekit.data.cache as data_cache

    files = _digits(tmp_path / "data", 40)
    cache = tmp_path / "c"
    build_image_store(files[:10], Resize(16), mode="L", cache_dir=cache)
    monkeypatch.setattr(data_cache, "LOCK_WAIT_S", 0.2, raising=False)
    lock = _entry(cache) / "index.lock"
    before = os.stat(lock).st_ino
    write = vision_cache.atomic_write_json
    seen = []

    def writing(dest, obj):  # the build holds the entry's lock: it writes its meta, then renames its pack
        if not seen and dest.name != "index.json":
            start = time.monotonic()
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                clear_image_cache(cache)
            seen.append(time.monotonic() - start)
            assert any("kept whole" in str(w.message) for w in said)
        return write(dest, obj)

    monkeypatch.setattr(vision_cache, "atomic_write_json", writing)
    store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    assert len(seen) == 1 and seen[0] < 5  # waited for the lock, not for ever
    assert os.stat(lock).st_ino == before and store.path_.exists() and store.path_.with_suffix(".json").exists()
    monkeypatch.undo()
    assert build_image_store(files, Resize(16), mode="L", cache_dir=cache).n_reused_ == len(files)
    # with no build running, everything goes
    assert clear_image_cache(cache) > 0 and not (cache / "images").exists()


def test_a_build_waiting_for_a_lock_a_clearing_removed_locks_the_file_there_now(tmp_path):
    import fcntl

    lock = tmp_path / "index.lock"
    clearing = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(clearing, fcntl.LOCK_EX)  # a clearing holds the entry's lock
    inside = threading.Event()
    release = threading.Event()
    got: list[bool] = []

    def build():
        with vision_cache._locked(lock):
            inside.set()
            probe = os.open(lock, os.O_RDWR | os.O_CREAT)  # a second build, locking the file there now
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got.append(False)  # it could: two builds would commit at once
            except BlockingIOError:
                got.append(True)
            finally:
                os.close(probe)
            release.wait(5)

    t = threading.Thread(target=build)
    t.start()
    time.sleep(0.2)
    assert not inside.is_set()
    os.unlink(lock)  # the clearing removes the lock file, then lets go of it
    os.close(clearing)
    assert inside.wait(5)
    release.set()
    t.join(5)
    assert got == [True]


def test_a_meta_written_for_a_pack_that_could_not_be_committed_is_removed(tmp_path, monkeypatch):
    files = _digits(tmp_path / "data", 40)
    cache = tmp_path / "c"
    commit = vision_cache.TempFile.commit

    def lost(self, dest):  # removed between the check and the rename, as another machine's clearing can
        os.unlink(self.path)
        return commit(self, dest)

    monkeypatch.setattr(vision_cache.TempFile, "commit", lost)
    with pytest.warns(CacheWriteWarning, match="removed by another process"):
        store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    assert store.path_ is None
    assert [f.name for f in _entry(cache).iterdir() if f.suffix in (".json", ".npy")] == []


def test_a_folder_reached_through_a_link_and_through_its_real_path_is_one_set_of_files(tmp_path, reads,
                                                                                         monkeypatch):
    monkeypatch.setattr(vision_cache, "SETTLED_S", 0)
    real = tmp_path / "disk" / "data"
    _digits(real, 20)
    (tmp_path / "home").mkdir()
    link = tmp_path / "home" / "data"
    link.symlink_to(real, target_is_directory=True)
    cache = tmp_path / "c"
    first = build_image_store(sorted(link.glob("*.png")), Resize(16), mode="L", cache_dir=cache)
    meta = first.path_.with_suffix(".json")
    versions = {(os.stat(meta).st_ino, os.stat(meta).st_mtime_ns)}
    reads.clear()
    for folder in (real, link, real, link):
        store = build_image_store(sorted(folder.glob("*.png")), Resize(16), mode="L", cache_dir=cache)
        assert store.n_reused_ == 20 and store.path_ == first.path_
        versions.add((os.stat(meta).st_ino, os.stat(meta).st_mtime_ns))
    assert sum(reads.values()) == 0 and len(versions) <= 2  # its meta rewritten once at most, no file read again


def test_a_commit_weighs_only_the_packs_it_takes_entries_from(tmp_path, monkeypatch):
    weighed: list[str] = []
    taken = vision_cache._taken

    def weighing(cdir, pack_id, listed, left):
        weighed.append(pack_id)
        return taken(cdir, pack_id, listed, left)

    monkeypatch.setattr(vision_cache, "_taken", weighing)
    threes, sevens = _digits(tmp_path / "a", 20), _digits(tmp_path / "b", 20, digit="7")
    cache = tmp_path / "c"
    a = build_image_store(threes, Resize(16), mode="L", cache_dir=cache)
    build_image_store(sevens, Resize(16), mode="L", cache_dir=cache)  # another data set: nothing of a's taken
    assert weighed == []
    build_image_store(threes + sevens[:2], Resize(16), mode="L", cache_dir=cache)  # a's images, and two more
    assert a.path_.stem in weighed


@pytest.mark.parametrize("system", ["posix", "nt"])
def test_a_future_modification_time_holds_a_file_back_only_where_the_change_time_is_its_creation(monkeypatch,
                                                                                                 system):
    now = time.time_ns()
    future, past = now + 3 * 24 * 3600 * 10**9, now - 3600 * 10**9
    version = f"100:{future}:{past}:1:1"
    monkeypatch.setattr(vision_cache.os, "name", system)
    settled = vision_cache._settled(version, now)
    monkeypatch.undo()
    assert settled == (system == "posix")
    assert vision_cache._settled(f"100:{past}:{past}:1:1", now)
