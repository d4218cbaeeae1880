"""The image cache shared by processes building at once, and a cache folder that cannot be written."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.data.cache import CacheWriteWarning, read_json
from pipekit.vision import ImageDataLoaders, Resize, build_image_store

pytestmark = pytest.mark.data

ROUNDS = 6
# One process of a sweep: at each round's signal it builds its subset into that round's cache folder and saves
# the pixels (or the traceback), so the three processes start their builds within milliseconds of each other.
CHILD = r"""
import sys, time, traceback
from pathlib import Path
import numpy as np
from pipekit.vision import Resize, build_image_store
sync, base, name, rounds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
files = (sync / f"{name}.txt").read_text().splitlines()
for r in range(rounds):
    (sync / f"ready-{r}-{name}").touch()
    while not (sync / f"go-{r}").exists():
        time.sleep(0.002)
    try:
        store = build_image_store(files, Resize(32), cache_dir=base / str(r))
        np.save(sync / f"out-{r}-{name}.npy", store.gather(np.arange(len(files))).numpy())
    except BaseException:
        (sync / f"err-{r}-{name}.txt").write_text(traceback.format_exc())
    (sync / f"done-{r}-{name}").touch()
"""


def _wait_for(paths: list[Path], procs: list[subprocess.Popen], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            out = "\n".join(p.communicate(timeout=5)[1] or "" for p in dead)
            pytest.fail(f"waiting for {what}: a build process exited or hung\n{out}")
        time.sleep(0.005)


def test_processes_building_one_cache_at_once_keep_each_others_packs(tmp_path):
    """Three processes build overlapping and disjoint subsets of dogscats with one Resize into one folder, at the
    same moment, six times: each gets the pixels of a cache-less build, and the index they leave lists every
    pack on disk and only those, with every file of every subset (a later build decodes nothing)."""
    files = sorted(str(f) for f in D.path("dogscats").rglob("*.jpg"))
    subsets = {"a": files[0::40], "b": files[0::60], "c": files[7::40]}  # a and b share files[0::120]
    reference = {name: build_image_store(sub, Resize(32), cache_dir=False).gather(np.arange(len(sub))).numpy()
                 for name, sub in subsets.items()}
    sync, base = tmp_path / "sync", tmp_path / "caches"
    sync.mkdir()
    for name, sub in subsets.items():
        (sync / f"{name}.txt").write_text("\n".join(sub))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(pipekit.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(sync), str(base), name, str(ROUNDS)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for name in subsets]
    try:
        for r in range(ROUNDS):
            _wait_for([sync / f"ready-{r}-{n}" for n in subsets], procs, f"round {r} to start")
            (sync / f"go-{r}").touch()
            _wait_for([sync / f"done-{r}-{n}" for n in subsets], procs, f"round {r} to finish")
            errors = [(sync / f"err-{r}-{n}.txt").read_text() for n in subsets if (sync / f"err-{r}-{n}.txt").exists()]
            assert not errors, f"round {r}: {len(errors)} of 3 builds failed:\n" + "\n".join(errors)
            for name in subsets:
                assert np.array_equal(np.load(sync / f"out-{r}-{name}.npy"), reference[name]), (r, name)
            (cdir,) = (base / str(r) / "images").iterdir()
            listed = {ref[0] for ref in read_json(cdir / "index.json").values()}
            assert listed == {f.stem for f in cdir.glob("*.npy")}, f"round {r}"
            for name, sub in subsets.items():  # every file of every subset stayed indexed in a pack on disk
                again = build_image_store(sub, Resize(32), cache_dir=base / str(r))
                assert again.n_decoded_ == 0, f"round {r}: {again.n_decoded_} of {name}'s files decoded again"
                assert np.array_equal(again.gather(np.arange(len(sub))).numpy(), reference[name])
    finally:
        for p in procs:
            p.kill()
            p.communicate()


def _unwritable_folder(tmp_path: Path) -> Path:
    """A PIPEKIT_CACHE this process cannot write: a read-only folder, or, where the process ignores permissions
    (root), a regular file."""
    ro = tmp_path / "read_only"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except PermissionError:
        return ro
    (ro / "probe").unlink()
    not_a_folder = tmp_path / "cache_file"
    not_a_folder.write_text("a file where the cache folder should be")
    return not_a_folder


def test_unwritable_cache_folder_warns_and_gives_the_same_batches(tmp_path, monkeypatch):
    """With PIPEKIT_CACHE unwritable, mnist_tiny's loaders are built in memory with one CacheWriteWarning naming the
    folder, PIPEKIT_CACHE and cache_dir=False; their batches equal those of a writable cache."""
    src = D.path("mnist_tiny")

    def batches() -> list[torch.Tensor]:
        dls = ImageDataLoaders.from_folder(src, item_tfms=Resize(24), bs=64, seed=0)
        (xt, yt), (xv, yv) = dls.one_batch(), next(iter(dls.valid))
        return [xt, yt, xv, yv]

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "writable"))
    cached = batches()
    assert list((tmp_path / "writable" / "images").glob("*/*.npy"))
    bad = _unwritable_folder(tmp_path)
    monkeypatch.setenv("PIPEKIT_CACHE", str(bad))
    try:
        with pytest.warns(CacheWriteWarning) as record:
            in_memory = batches()
        if bad.is_dir():  # a complete cache in a read-only folder is still read, with no warning
            (tmp_path / "read_only").chmod(0o755)
            monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "writable"))
            for d in [tmp_path / "writable", *(tmp_path / "writable").rglob("*")]:
                if d.is_dir():
                    d.chmod(0o555)
            with warnings.catch_warnings():
                warnings.simplefilter("error", CacheWriteWarning)
                assert all(torch.equal(a, b) for a, b in zip(batches(), cached))
    finally:
        for d in [tmp_path / "read_only", tmp_path / "writable", *(tmp_path / "writable").rglob("*")]:
            if d.is_dir():
                d.chmod(0o755)
    said = [str(w.message) for w in record if issubclass(w.category, CacheWriteWarning)]
    assert len(said) == 1, said
    assert str(bad) in said[0] and "PIPEKIT_CACHE" in said[0] and "cache_dir=False" in said[0]
    assert all(torch.equal(a, b) for a, b in zip(in_memory, cached))
