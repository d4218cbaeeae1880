"""How much work a build of image loaders does, counted (files read), never timed, on real data.

A first build reads each file once (its bytes are hashed and decoded from the same read); a later build, in this
process or another, reads no file whose version (size, times, inode) is the one the pack's signed meta records,
and reads again every file that changed, whatever the change kept.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import pipekit.datasets as D
import pipekit.vision.cache as vision_cache
from pipekit.data.cache import CacheRebuildWarning, atomic_write_json
from pipekit.vision import ImageDataLoaders, Resize, build_image_store


def test_from_folder_reads_each_file_once_then_none_on_a_warm_build(reads):
    path = D.path("mnist_tiny")
    dls = ImageDataLoaders.from_folder(path)
    n = len(dls.train_ds) + len(dls.valid_ds)
    assert n == 1408
    # the first build: every file once (the first one too, whose size sets the pack's)
    assert len(reads) == n and set(reads.values()) == {1}
    reads.clear()
    again = ImageDataLoaders.from_folder(path)
    # the data set's files have not changed for long: their versions are recorded, and none is read again
    assert sum(reads.values()) == 0
    assert again.train.dataset.stores[0].n_reused_ == n
    x, y = dls.valid.one_batch()
    x2, y2 = again.valid.one_batch()
    assert np.array_equal(x.cpu().numpy(), x2.cpu().numpy()) and np.array_equal(
        y.cpu().numpy(), y2.cpu().numpy()
    )


def _same_size_pair(files: list[Path]) -> tuple[Path, Path]:
    """Two of ``files`` of one size in bytes and different contents."""
    by_size: dict[int, Path] = {}
    for f in files:
        other = by_size.setdefault(f.stat().st_size, f)
        if other != f and other.read_bytes() != f.read_bytes():
            return other, f
    raise AssertionError("no two files of one size")


@pytest.fixture
def digits(tmp_path):
    """120 of mnist_tiny's digits copied to a folder of their own."""
    out = tmp_path / "digits"
    out.mkdir()
    for f in sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:120]:
        shutil.copy(f, out / f.name)
    return sorted(out.glob("*.png"))


def test_a_file_changed_within_the_settling_time_is_read_every_build(digits, reads, tmp_path):
    cache = tmp_path / "c"
    build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    reads.clear()
    # just copied: a write in the same tick of the file system's clock could keep every time, so no version is kept
    assert build_image_store(digits, Resize(16), mode="L", cache_dir=cache).n_reused_ == len(digits)
    assert len(reads) == len(digits)


def test_a_changed_file_is_read_again_whatever_the_change_kept(digits, reads, tmp_path, monkeypatch):
    # the copies count as settled: their versions are recorded
    monkeypatch.setattr(vision_cache, "SETTLED_S", 0, raising=False)
    cache = tmp_path / "c"
    first = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    pixels = first.gather(np.arange(len(digits))).numpy()
    reads.clear()
    assert build_image_store(digits, Resize(16), mode="L", cache_dir=cache).n_reused_ == len(digits)
    assert sum(reads.values()) == 0
    # a file rewritten in place with another digit of the same size, its modification time given back: only the
    # change time (the kernel's) tells, and the file is read again
    a, b = _same_size_pair(digits)
    st = a.stat()
    with open(a, "r+b") as f:
        f.write(b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (a.stat().st_size, a.stat().st_mtime_ns, a.stat().st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    reads.clear()
    again = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    assert dict(reads) == {str(a): 1}
    now = again.gather(np.arange(len(digits))).numpy()
    ia, ib = digits.index(a), digits.index(b)
    assert np.array_equal(now[ia], pixels[ib]) and not np.array_equal(now[ia], pixels[ia])
    # a file replaced by another through a rename (a new inode)
    c = digits[(ia + 1) % len(digits) if (ia + 1) % len(digits) != ib else (ia + 2) % len(digits)]
    tmp = c.with_suffix(".tmp")
    shutil.copy(b, tmp)
    os.replace(tmp, c)
    reads.clear()
    last = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    assert dict(reads) == {str(c): 1}
    assert np.array_equal(last.gather(np.array([digits.index(c)])).numpy()[0], pixels[ib])


def test_a_version_written_into_the_meta_by_hand_is_not_trusted(digits, reads, tmp_path, monkeypatch):
    monkeypatch.setattr(vision_cache, "SETTLED_S", 0, raising=False)
    cache = tmp_path / "c"
    first = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    pixels = first.gather(np.arange(len(digits))).numpy()
    a, b = _same_size_pair(digits)
    a.write_bytes(b.read_bytes())
    # the meta made to record the changed file's new version beside its old key, through pipekit's own JSON writer
    # (so its checksum is right): only the pack's signature can object
    meta_path = first.path_.with_suffix(".json")
    meta = json.loads(meta_path.read_text())["data"]
    slot = meta["sources"].index(os.path.abspath(a))
    meta["stamps"][slot] = vision_cache._version(str(a))
    atomic_write_json(meta_path, meta)
    reads.clear()
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        again = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    assert any(issubclass(w.category, CacheRebuildWarning) and "signature" in str(w.message) for w in log)
    assert again.n_decoded_ == len(digits) and len(reads) == len(
        digits
    )  # nothing served from the edited entry
    ia, ib = digits.index(a), digits.index(b)
    assert np.array_equal(again.gather(np.array([ia])).numpy()[0], pixels[ib])


def test_a_pack_recording_no_versions_is_written_again_with_them_once(digits, reads, tmp_path, monkeypatch):
    """A pack written when its files had just changed (or by an older pipekit) records no versions: the next build
    reads the files, and writes the pack again with their versions, copying the images (none decoded)."""
    cache = tmp_path / "c"
    monkeypatch.setattr(
        vision_cache, "SETTLED_S", 10**6, raising=False
    )  # nothing settled: no version recorded
    first = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    pixels = first.gather(np.arange(len(digits))).numpy()
    monkeypatch.setattr(vision_cache, "SETTLED_S", 0, raising=False)
    reads.clear()
    upgraded = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    assert len(reads) == len(digits) and upgraded.n_decoded_ == 0 and upgraded.path_ == first.path_
    reads.clear()
    again = build_image_store(digits, Resize(16), mode="L", cache_dir=cache)
    assert sum(reads.values()) == 0 and again.n_reused_ == len(digits)
    assert np.array_equal(again.gather(np.arange(len(digits))).numpy(), pixels)
