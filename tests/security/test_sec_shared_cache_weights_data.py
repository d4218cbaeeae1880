"""A PIPEKIT_CACHE shared with another user: the cached pretrained weights and the downloaded data sets in it are used
only when this user's pipekit wrote them, and a cache folder that cannot be written does not stop a pretrained learner.

"Another user" is pipekit running under another cache key (PIPEKIT_CACHE_KEY_FILE pointing at a second key file), as
in tests/test_cache_signing.py; the weights are the real EfficientNet-Lite0 package's, the data set the real
adult_sample, downloaded from a file:// archive pinned by its sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import warnings
from pathlib import Path

import pytest
import torch

import pipekit.data.external as ext
import pipekit.datasets as D
from pipekit.core.errors import DatasetUnavailableError, UntrustedDataError
from pipekit.data import URLs, untar_data
from pipekit.data.cache import CacheRebuildWarning, CacheWriteWarning, atomic_write_json
from pipekit.data.external import Checksum, DatasetInfo
from pipekit.vision import pretrained as P
from pipekit.vision.efficientnet import lite_variant
# each test its own user's key (user_key, autouse), and another user's inside other_user's block
from test_cache_signing import NOT_OURS, other_user, user_key  # noqa: E402, F401

pytestmark = pytest.mark.data
SHARED = Path(os.environ.get("PIPEKIT_DATA", "/work/shared/data"))


@pytest.fixture(scope="module")
def pinned() -> dict[str, torch.Tensor]:
    spec = lite_variant("lite0").weights
    return P.read_verified_pth(P.locate_weights(spec), spec.sha256)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------- pretrained weights
def test_weights_another_user_tampered_and_rewrote_are_rebuilt_not_loaded(tmp_path, pinned):
    spec = lite_variant("lite0").weights
    P.load_weights(spec, tmp_path)  # this user's copy
    copy = P.cached_weights_path(spec, tmp_path)
    first = next(iter(pinned))
    tampered = {n: (t.clone().fill_(0.1234) if n == first else t) for n, t in pinned.items()}
    with other_user(tmp_path):  # pipekit's own writer, under the other user's key
        P._write_copy(copy, spec, tampered)
    with pytest.warns(CacheRebuildWarning, match=NOT_OURS) as said:
        state = P.load_weights(spec, tmp_path)
    assert str(copy) in str(said[0].message)
    assert same(state, pinned) and not torch.equal(state[first], tampered[first])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt copy is this user's again
        assert same(P.load_weights(spec, tmp_path), pinned)


def test_a_learner_never_starts_from_weights_another_user_put_in_a_shared_cache(tmp_path, monkeypatch, pinned):
    from pipekit.vision import ImageDataLoaders, Resize, vision_learner

    shared = tmp_path / "shared"
    monkeypatch.setenv("PIPEKIT_CACHE", str(shared))
    spec = lite_variant("lite0").weights
    stem = "_conv_stem.weight"
    tampered = {n: (t.clone().fill_(0.1234) if n == stem else t) for n, t in pinned.items()}
    with other_user(tmp_path):  # the other user's copy, made before this user ever ran
        P._write_copy(P.cached_weights_path(spec), spec, tampered)
    dls = ImageDataLoaders.from_folder(SHARED / "mnist_tiny", valid="valid", item_tfms=Resize(32), bs=16,
                                       num_workers=0)
    with pytest.warns(CacheRebuildWarning, match=NOT_OURS):
        learn = vision_learner(dls, "efficientnet_lite0")
    got = learn.model.state_dict()
    name = next(n for n in got if n.endswith(stem))
    assert torch.equal(got[name], pinned[stem])


def test_weights_cached_before_copies_were_signed_are_rebuilt_once(tmp_path, pinned):
    spec = lite_variant("lite0").weights
    copy = P.cached_weights_path(spec, tmp_path)
    from safetensors.torch import save as st_save

    data = st_save({k: v.contiguous() for k, v in pinned.items()}, metadata={"name": spec.name, "source_sha256": spec.sha256})
    copy.parent.mkdir(parents=True)
    copy.write_bytes(data)  # the layout an older pipekit wrote: an unkeyed SHA-256 in the meta
    atomic_write_json(copy.with_suffix(".json"), {"version": 1, "name": spec.name, "source_sha256": spec.sha256,
                                                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    with pytest.warns(CacheRebuildWarning, match="made by an older pipekit.*rebuilt once"):
        assert same(P.load_weights(spec, tmp_path), pinned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same(P.load_weights(spec, tmp_path), pinned)


def test_an_unwritable_cache_folder_warns_once_and_the_weights_come_from_the_package(tmp_path, monkeypatch, pinned):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PIPEKIT_CACHE", str(blocker / "cache"))  # as a read-only home: nothing can be made there
    spec = lite_variant("lite0").weights
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first = P.load_weights(spec)
        second = P.load_weights(spec)
    writes = [str(w.message) for w in said if issubclass(w.category, CacheWriteWarning)]
    assert len(writes) == 1 and str(blocker / "cache" / "weights") in writes[0] and "PIPEKIT_CACHE" in writes[0]
    assert same(first, pinned) and same(second, pinned)


# ------------------------------------------------------------------------------------------- data sets
@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty PIPEKIT_CACHE and no PIPEKIT_DATA: data sets are looked up in the cache, then downloaded."""
    monkeypatch.delenv("PIPEKIT_DATA", raising=False)
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def adult_download(tmp_path, monkeypatch) -> Path:
    """adult_sample published as a file:// archive pinned by its size and sha256; returns the real adult.csv."""
    arc = tmp_path / "pub" / "adult_sample.tgz"
    arc.parent.mkdir()
    with tarfile.open(arc, "w:gz") as t:
        t.add(SHARED / "adult_sample" / "adult.csv", arcname="adult_sample/adult.csv")
    data = arc.read_bytes()
    url = arc.as_uri()
    info = DatasetInfo("adult_sample", (url,), ("adult.csv",),
                       checksums={url: Checksum(len(data), sha256=hashlib.sha256(data).hexdigest())})
    monkeypatch.setitem(ext.REGISTRY, "adult_sample", info)
    return SHARED / "adult_sample" / "adult.csv"


def poisoned(csv: Path) -> bytes:
    return csv.read_bytes().replace(b">=50k", b"<50k")


def group_writable(file: Path) -> None:
    file.chmod(file.stat().st_mode | stat.S_IWGRP)


ROOT_ONLY = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                               reason="gives a file to another user (root only)")
OTHER = os.geteuid() + 4321 if hasattr(os, "geteuid") else 0


def plant(cache: Path, csv: Path, folder_owner: int | None = None) -> Path:
    """A folder adult_sample/ in the cache with poisoned rows, as s4_poison_data.sh leaves it: its data file another
    user's (and with ``folder_owner``, the folder too); with a checkpoint in models/, as learn.save writes."""
    planted = cache / "data" / "adult_sample"
    (planted / "models").mkdir(parents=True)
    (planted / "models" / "stage1.pipekit").write_bytes(b"the user's checkpoint")
    (planted / "adult.csv").write_bytes(poisoned(csv))
    os.chown(planted / "adult.csv", OTHER, -1)
    if folder_owner is not None:
        os.chown(planted, folder_owner, -1)
    return planted


@ROOT_ONLY
def test_a_data_set_planted_in_the_cache_is_refused_as_unavailable(cache, tmp_path, monkeypatch, adult_download):
    planted = plant(cache, adult_download)
    with pytest.raises(UntrustedDataError) as err:
        D.path("adult_sample", download=False)
    assert isinstance(err.value, DatasetUnavailableError)  # the CLI says it in one line
    said = str(err.value)
    assert str(planted) in said and f"adult.csv is owned by uid {OTHER}" in said
    assert "PIPEKIT_CACHE" in said and "PIPEKIT_DATA" in said and "rm -r" not in said
    assert D.locate("adult_sample") is None and D.available()["adult_sample"] is None
    # the download cannot be made: the same refusal, not the planted rows, and the folder is left where it is
    monkeypatch.setitem(ext.REGISTRY, "adult_sample",
                        DatasetInfo("adult_sample", ((tmp_path / "gone.tgz").as_uri(),), ("adult.csv",)))
    with pytest.raises(UntrustedDataError, match=f"cannot be downloaded again.*{planted}.*PIPEKIT_DATA"):
        untar_data(URLs.ADULT_SAMPLE)
    assert (planted / "models" / "stage1.pipekit").exists()
    # a folder the user chose with PIPEKIT_DATA is used as it is
    monkeypatch.setenv("PIPEKIT_DATA", str(cache / "data"))
    assert D.path("adult_sample", download=False) == planted


@ROOT_ONLY
def test_another_users_folder_in_a_shared_cache_is_refused_and_left_where_it_is(cache, adult_download):
    planted = plant(cache, adult_download, folder_owner=OTHER)
    with pytest.raises(UntrustedDataError, match=f"{planted} is not used: .*PIPEKIT_CACHE to a folder of your own"):
        D.path("adult_sample")  # downloads allowed, yet their folder is theirs: not moved from under their runs
    assert planted.is_dir() and not [p for p in (cache / "data").iterdir() if ".refused-" in p.name]


@ROOT_ONLY
def test_a_refused_folder_is_moved_aside_with_its_checkpoints_and_the_data_set_downloaded_again(cache, adult_download):
    planted = plant(cache, adult_download)
    with pytest.warns(UserWarning, match=f"{planted} was not used \\(adult.csv is owned by uid {OTHER}") as said:
        got = untar_data(URLs.ADULT_SAMPLE)
    assert got == planted and (got / "adult.csv").read_bytes() == adult_download.read_bytes()
    aside = [p for p in (cache / "data").iterdir() if p.name.startswith("adult_sample.refused-")]
    assert len(aside) == 1 and str(aside[0]) in str(said[0].message)
    assert (aside[0] / "models" / "stage1.pipekit").read_bytes() == b"the user's checkpoint"  # nothing deleted
    assert (aside[0] / "adult.csv").read_bytes() == poisoned(adult_download)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # downloaded and verified by this user's pipekit: used as it is
        assert D.path("adult_sample", download=False) == planted


def test_a_download_cannot_be_changed_by_the_group_even_under_umask_002(cache, adult_download):
    old = os.umask(0o002)
    try:
        folder = D.path("adult_sample")
    finally:
        os.umask(old)
    for entry in [folder, *folder.rglob("*")]:
        assert not entry.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH), entry
    assert D.locate("adult_sample") == folder


def test_the_users_own_group_writable_files_leave_the_folder_trusted(cache, monkeypatch, adult_download):
    folder = D.path("adult_sample")
    (folder / "models").mkdir()
    (folder / "models" / "stage1.pipekit").write_bytes(b"the user's checkpoint")
    group_writable(folder / "models")
    group_writable(folder / "models" / "stage1.pipekit")
    (folder / "export.pipekit").write_bytes(b"the user's export")  # learn.export() under a umask of 002
    group_writable(folder / "export.pipekit")
    monkeypatch.setattr(ext, "_TRUSTED", set(), raising=False)  # as a new process
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.path("adult_sample", download=False) == folder


def test_a_cache_copied_elsewhere_is_still_used(cache, tmp_path, monkeypatch, adult_download):
    folder = D.path("adult_sample")
    copy = tmp_path / "restored"
    shutil.copytree(cache, copy, symlinks=True)  # as cp -a, rsync or a docker layer: every file a new inode
    assert (copy / "data" / "adult_sample" / "adult.csv").stat().st_ino != (folder / "adult.csv").stat().st_ino
    monkeypatch.setenv("PIPEKIT_CACHE", str(copy))
    monkeypatch.setitem(ext.REGISTRY, "adult_sample",  # nothing could be downloaded again
                        DatasetInfo("adult_sample", ((tmp_path / "gone.tgz").as_uri(),), ("adult.csv",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.path("adult_sample") == copy / "data" / "adult_sample"


def test_a_cache_folder_from_before_is_used_and_its_old_manifest_removed(cache, tmp_path, monkeypatch, adult_download):
    folder = cache / "data" / "adult_sample"
    folder.mkdir(parents=True)
    shutil.copy(adult_download, folder / "adult.csv")  # what an older pipekit (or the user) put there
    manifest = cache / "data" / "adult_sample.manifest.json"
    manifest.write_text(json.dumps({"name": "adult_sample", "entries": {}, "signature": "0" * 64}))
    monkeypatch.setitem(ext.REGISTRY, "adult_sample",
                        DatasetInfo("adult_sample", ((tmp_path / "gone.tgz").as_uri(),), ("adult.csv",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.path("adult_sample") == folder
    assert not manifest.exists() and (folder / "adult.csv").read_bytes() == adult_download.read_bytes()


def test_a_trusted_folder_is_walked_once_until_it_changes(cache, monkeypatch, adult_download):
    folder = D.path("adult_sample")
    monkeypatch.setattr(ext, "_TRUSTED", set(), raising=False)  # as a new process
    walks = []
    walk = os.walk
    monkeypatch.setattr(os, "walk", lambda top, *a, **k: (walks.append(top), walk(top, *a, **k))[1])
    assert D.path("adult_sample") == folder and len(walks) == 1
    assert D.path("adult_sample") == folder and D.locate("adult_sample") == folder and len(walks) == 1
    # another file in its place (a new entry: the folder's time changes) is looked at again
    new = folder / "adult.csv.new"
    new.write_bytes(adult_download.read_bytes())
    os.replace(new, folder / "adult.csv")
    assert D.locate("adult_sample") == folder and len(walks) == 2


@ROOT_ONLY
def test_a_file_another_user_adds_to_a_verified_data_set_is_not_accepted(cache, adult_download):
    folder = D.path("adult_sample")
    extra = folder / "extra.csv"
    extra.write_bytes(poisoned(adult_download))
    os.chown(extra, os.geteuid() + 4321, -1)  # the file another user wrote there is theirs
    assert D.locate("adult_sample") is None
    with pytest.raises(UntrustedDataError, match=f"extra.csv is owned by uid {os.geteuid() + 4321}, not by this user"):
        D.path("adult_sample", download=False)


@ROOT_ONLY
def test_a_link_to_a_file_of_another_user_is_not_accepted(cache, tmp_path, adult_download):
    folder = D.path("adult_sample")
    theirs = tmp_path / "theirs.csv"
    theirs.write_bytes(poisoned(adult_download))
    os.chown(theirs, os.geteuid() + 4321, -1)
    (folder / "adult.csv").unlink()
    (folder / "adult.csv").symlink_to(theirs)
    with pytest.raises(UntrustedDataError, match=f"adult.csv \\(a link to {theirs}\\) is owned by uid"):
        D.path("adult_sample", download=False)


@ROOT_ONLY
def test_another_users_incomplete_folder_is_left_to_them_too(cache, adult_download):
    theirs = cache / "data" / "adult_sample"
    theirs.mkdir(parents=True)  # their download, not finished: no adult.csv yet
    os.chown(theirs, OTHER, -1)
    with pytest.raises(UntrustedDataError, match=f"{theirs} is not used: .*PIPEKIT_CACHE to a folder of your own"):
        D.path("adult_sample")
    assert theirs.is_dir() and not [p for p in (cache / "data").iterdir() if ".refused-" in p.name]
