"""Files pipekit writes (learn.save, learn.export, save_pickle, Tabular.save, the image cache's packs and meta files,
the token cache's ids) go to a new temporary file with a random name, created without following links, then renamed
into place: a link planted in the folder (at a temporary name pipekit once used or is about to use, or at the
destination itself) is never written through, the destination becomes a regular file keeping the permission bits of
the file it replaces, and no temporary file is left, whether the write ends normally, in an error or on Ctrl-C.
The image cache's unsigned index naming a pack outside the cache folder is damaged, and nothing outside is read."""
from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import pipekit.core.archive as archive
import pipekit.datasets as D
from pipekit.core.archive import atomic_output
from pipekit.core.errors import ExportError
from pipekit.data.cache import CacheRebuildWarning, atomic_write_json, read_json
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.tabular import Tabular, load_pickle, save_pickle
from pipekit.vision import Resize, build_image_store

PRECIOUS = b"precious user file\n"


@pytest.fixture()
def victim(tmp_path):
    f = tmp_path / "elsewhere" / "victim.txt"
    f.parent.mkdir()
    f.write_bytes(PRECIOUS)
    return f


@pytest.fixture(scope="module")
def small_learner(mnist_dls):
    torch.manual_seed(0)
    return Learner(mnist_dls, simple_cnn(n_in=1, n_out=2))


def learner_in(learn: Learner, folder: Path) -> Learner:
    learn.path = folder
    return learn


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".pk-tmp")))


def weights_of(path: Path) -> list[torch.Tensor]:
    return [p.detach().clone() for p in load_learner(path).model.parameters()]


def test_a_link_at_the_old_temporary_name_is_not_written_through(small_learner, tmp_path, victim):
    learn = learner_in(small_learner, tmp_path / "proj")
    models = tmp_path / "proj" / "models"
    models.mkdir(parents=True)
    planted = [models / f".model.pipekit.{os.getpid()}.tmp", tmp_path / "proj" / f".export.pipekit.{os.getpid()}.tmp"]
    for link in planted:
        link.symlink_to(victim)
    saved = learn.save("model")
    learn.export()
    assert victim.read_bytes() == PRECIOUS
    assert saved == models / "model.pipekit" and not saved.is_symlink() and saved.is_file()
    export = tmp_path / "proj" / "export.pipekit"
    assert not export.is_symlink() and zipfile.is_zipfile(export)
    expected = [p.detach() for p in learn.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights_of(export), expected))
    assert all(link.is_symlink() for link in planted)  # left alone, as every file pipekit does not write


def test_a_link_at_the_destination_is_replaced_by_the_saved_file(small_learner, tmp_path, victim):
    learn = learner_in(small_learner, tmp_path / "proj")
    models = tmp_path / "proj" / "models"
    models.mkdir(parents=True)
    (models / "model.pipekit").symlink_to(victim)
    (tmp_path / "proj" / "export.pipekit").symlink_to(victim)
    saved = learn.save("model")
    learn.export()
    assert victim.read_bytes() == PRECIOUS
    for f in (saved, tmp_path / "proj" / "export.pipekit"):
        assert not f.is_symlink() and f.is_file() and zipfile.is_zipfile(f)
    learn.load("model")  # the saved weights load back
    expected = [p.detach() for p in learn.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights_of(tmp_path / "proj" / "export.pipekit"), expected))
    assert leftovers(tmp_path) == []


def test_a_link_at_a_folder_exports_file_is_replaced(small_learner, tmp_path, victim):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights.safetensors").symlink_to(victim)
    with pytest.raises(ExportError, match=r"holds no pipekit export, yet it holds \['weights.safetensors'\]"):
        small_learner.export(target)  # not an export's folder: its weights.safetensors is the user's, refused
    assert victim.read_bytes() == PRECIOUS and (target / "weights.safetensors").is_symlink()
    (target / "weights.safetensors").unlink()
    small_learner.export(target)
    (target / "weights.safetensors").unlink()
    (target / "weights.safetensors").symlink_to(victim)  # in a previous export: replaced, never written through
    small_learner.export(target)
    assert victim.read_bytes() == PRECIOUS
    assert not (target / "weights.safetensors").is_symlink()
    assert all(torch.equal(a, b.detach()) for a, b in zip(weights_of(target), small_learner.model.parameters()))
    assert leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def adult():
    return pd.read_csv(D.path("adult_sample") / "adult.csv").head(300)


def test_save_pickle_replaces_a_link_at_the_destination(adult, tmp_path, victim):
    frame, arr = tmp_path / "xs_final.pkl", tmp_path / "ages.npy"
    frame.symlink_to(victim)
    arr.symlink_to(victim)
    save_pickle(frame, adult)
    save_pickle(arr, adult["age"].to_numpy())
    assert victim.read_bytes() == PRECIOUS
    assert not frame.is_symlink() and not arr.is_symlink()
    assert load_pickle(frame).equals(adult)
    assert np.array_equal(load_pickle(arr), adult["age"].to_numpy())
    assert leftovers(tmp_path) == []


def test_tabular_save_replaces_links_at_the_table_and_its_processing(adult_1500_tab, tmp_path, victim):
    to = tmp_path / "to.pkl"
    processing = tmp_path / "to.pkl.pipekit"
    to.symlink_to(victim)
    processing.symlink_to(victim)
    save_pickle(to, adult_1500_tab)
    assert victim.read_bytes() == PRECIOUS
    assert not to.is_symlink() and not processing.is_symlink()
    back = Tabular.load(to)
    assert back.frame.equals(adult_1500_tab.frame) and list(back.valid_idx) == list(adult_1500_tab.valid_idx)
    assert leftovers(tmp_path) == []


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary_file(small_learner, adult, tmp_path,
                                                                          monkeypatch):
    zipped, folder, table = tmp_path / "model.pipekit", tmp_path / "model", tmp_path / "xs.pkl"
    small_learner.export(zipped)
    small_learner.export(folder)
    save_pickle(table, adult)
    before = {f: f.read_bytes() for f in (zipped, table, *folder.iterdir())}
    write_bytes, writestr = archive._write_all, zipfile.ZipFile.writestr
    write_table = pq.write_table

    def ws(self, name, *a, **k):
        if str(getattr(name, "filename", name)) == "weights.safetensors":
            raise OSError(28, "No space left on device")
        return writestr(self, name, *a, **k)

    def wb(f, data):
        if bytes(data[8:10]) == b'{"':  # weights.safetensors: its header's length, then its JSON header
            f.write(bytes(data)[:100])
            raise KeyboardInterrupt("Ctrl-C while writing weights")
        return write_bytes(f, data)

    def half_a_table(table, where, **k):
        if isinstance(where, io.BytesIO):  # save_pickle's check that the table reads back as it is
            return write_table(table, where, **k)
        where.write(b"PAR1 half a table")
        raise RuntimeError("the disk went away")

    with monkeypatch.context() as m:
        m.setattr(zipfile.ZipFile, "writestr", ws)
        m.setattr(archive, "_write_all", wb)
        m.setattr(pq, "write_table", half_a_table)
        with pytest.raises(OSError, match="No space left"):
            small_learner.export(zipped)
        with pytest.raises(KeyboardInterrupt):
            small_learner.export(folder)
        with pytest.raises(RuntimeError, match="the disk went away"):
            save_pickle(table, adult.head(3))
    assert leftovers(tmp_path) == []
    assert zipped.read_bytes() == before[zipped] and table.read_bytes() == before[table]
    assert not (folder / "manifest.json").exists()  # an interrupted folder export is no export load accepts
    small_learner.export(folder)
    assert {f: f.read_bytes() for f in folder.iterdir()} == {f: b for f, b in before.items() if f.parent == folder}


def test_atomic_output_never_opens_what_is_at_its_temporary_names(tmp_path, victim, monkeypatch):
    names = iter([".a.bin.taken.tmp", ".a.bin.fresh.tmp"])
    (tmp_path / ".a.bin.taken.tmp").symlink_to(victim)
    with atomic_output(tmp_path / "a.bin", name=lambda: next(names)) as f:
        f.write(b"new")
    assert victim.read_bytes() == PRECIOUS and (tmp_path / "a.bin").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.bin.taken.tmp", "a.bin", "elsewhere"]


def test_a_foreign_pack_id_in_the_image_index_is_damage_and_nothing_outside_is_read(tmp_path, monkeypatch):
    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:6]
    root = tmp_path / "cache"
    first = build_image_store(files[:5], Resize(16), mode="L", cache_dir=root)
    assert first.n_decoded_ == 5
    (cdir,) = [f.parent for f in root.rglob("index.json")]
    # a pack and its meta outside the cache folder, named by a path in the index
    outside = tmp_path / "x"
    foreign = os.path.relpath(outside, cdir)
    assert foreign.startswith("..") and not (root / "x.json").exists()
    shutil.copy(next(cdir.glob("*.npy")), outside.with_suffix(".npy"))
    shutil.copy(next(p for p in cdir.glob("*.json") if p.name != "index.json"), outside.with_suffix(".json"))
    index_file = cdir / "index.json"
    index = read_json(index_file)
    atomic_write_json(index_file, {k: [foreign, slot] for k, (_, slot) in index.items()})
    import pipekit.vision.cache as vcache

    read: list[Path] = []
    real_read_json = vcache.read_json

    def recording(path, *a, **k):
        read.append(Path(path).resolve())
        return real_read_json(path, *a, **k)

    monkeypatch.setattr(vcache, "read_json", recording)
    with pytest.warns(CacheRebuildWarning, match=r"index\.json.*x'.*not a pack name"):
        store = build_image_store(files, Resize(16), mode="L", cache_dir=root)
    assert read and all(p.is_relative_to(root.resolve()) for p in read)
    assert store.n_decoded_ == 6 and len(store.gather(np.arange(6))) == 6
    assert all(ref[0] != foreign for ref in real_read_json(index_file).values())
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ the caches' temporary files (TempFile)
def planting(monkeypatch, stem: str) -> str:
    """Make the cache's next temporary file of ``stem`` take a name known in advance (then random ones again), as
    someone who can write the cache folder may guess it; returns that name."""
    import pipekit.data.cache as cache

    real = cache.temp_name
    known = real(stem)
    given: list[str] = []

    def name(s: str, pid: int | None = None) -> str:
        if s == stem and not given:
            given.append(known)
            return known
        return real(s, pid)

    monkeypatch.setattr(cache, "temp_name", name)
    return known


def test_a_link_at_an_image_packs_temporary_name_is_not_written_through(tmp_path, victim, monkeypatch):
    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:6]
    root = tmp_path / "cache"
    assert build_image_store(files[:3], Resize(16), mode="L", cache_dir=root).n_decoded_ == 3
    (cdir,) = [f.parent for f in root.rglob("index.json")]
    link = cdir / planting(monkeypatch, "pack")
    link.symlink_to(victim)
    store = build_image_store(files, Resize(16), mode="L", cache_dir=root)  # a new pack: 3 reused, 3 decoded
    assert victim.read_bytes() == PRECIOUS and link.is_symlink()
    assert (store.n_decoded_, store.n_reused_) == (3, 3)
    expected = build_image_store(files, Resize(16), mode="L", cache_dir=False).gather(np.arange(6))
    assert torch.equal(store.gather(np.arange(6)), expected)
    again = build_image_store(files, Resize(16), mode="L", cache_dir=root)  # the pack written serves the next build
    assert again.n_decoded_ == 0 and torch.equal(again.gather(np.arange(6)), expected)
    assert [p for p in cdir.glob("*.npy") if p.is_symlink()] == []
    assert [n for n in leftovers(tmp_path) if n != link.name] == []


def test_an_image_pack_that_cannot_be_created_is_built_in_memory(tmp_path, monkeypatch):
    """A cache folder that takes no new file (read-only, full) fails when the pack's temporary file is made: that is
    the unwritable folder the image cache already handles, a warning and the images in memory."""
    import pipekit.data.cache as cache
    from pipekit.data.cache import CacheWriteWarning

    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:4]
    root = tmp_path / "cache"
    build_image_store(files[:2], Resize(16), mode="L", cache_dir=root)  # the entry folder exists: only files fail
    real = cache.new_temp_file

    def read_only(folder, name):
        if name().startswith("pack."):
            raise PermissionError(13, "Permission denied", str(folder))
        return real(folder, name)

    monkeypatch.setattr(cache, "new_temp_file", read_only)
    with pytest.warns(CacheWriteWarning, match="cannot be written"):
        store = build_image_store(files, Resize(16), mode="L", cache_dir=root)
    expected = build_image_store(files, Resize(16), mode="L", cache_dir=False).gather(np.arange(4))
    assert store.n_decoded_ == 4 and torch.equal(store.gather(np.arange(4)), expected)


def test_a_link_at_the_token_stores_temporary_name_is_not_written_through(tmp_path, victim, monkeypatch,
                                                                          imdb_text_files):
    from pipekit.text import TextDataLoaders

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    texts = imdb_text_files(30)

    def build(cache_dir=None):
        return TextDataLoaders.from_folder(texts, bs=8, min_freq=1, cache_dir=cache_dir)

    build()
    (entry,) = [p for p in (tmp_path / "cache" / "text").iterdir() if p.is_dir()]
    shutil.rmtree(entry)  # the entry is built again, into the same folder, where a link waits at its temporary name
    entry.mkdir()
    link = entry / planting(monkeypatch, "ids")
    link.symlink_to(victim)
    dls = build()
    assert dls.blocks[0].from_cache_ is False
    assert victim.read_bytes() == PRECIOUS and link.is_symlink()
    assert (entry / "ids.arrow").is_file() and not (entry / "ids.arrow").is_symlink()
    fresh = build(cache_dir=False)
    for ours, theirs in ((dls.train, fresh.train), (dls.valid, fresh.valid)):
        assert ours.dataset.stores[0].ids.equals(theirs.dataset.stores[0].ids)
    assert build().blocks[0].from_cache_ is True  # the entry written is read back by the next build


# ------------------------------------------------------------------ what replacing a file keeps
def mode_of(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_a_file_replaced_keeps_its_permission_bits(small_learner, adult, tmp_path):
    learn = learner_in(small_learner, tmp_path / "proj")
    saved = learn.save("model")
    table, arr = tmp_path / "xs.pkl", tmp_path / "ages.npy"
    save_pickle(table, adult)
    save_pickle(arr, adult["age"].to_numpy())
    for f in (saved, table, arr):
        f.chmod(0o600)
    old = os.umask(0o022)
    try:
        assert learn.save("model") == saved
        save_pickle(table, adult.head(10))
        save_pickle(arr, adult["age"].to_numpy()[:10])
    finally:
        os.umask(old)
    assert [mode_of(f) for f in (saved, table, arr)] == [0o600] * 3
    assert load_pickle(table).equals(adult.head(10)) and len(load_pickle(arr)) == 10
    learn.load("model")
    # a file written new gets the usual mode (0666 less the umask), as open() gives
    os.umask(0o022)
    try:
        save_pickle(tmp_path / "new.npy", np.arange(3))
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "new.npy") == 0o644
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("length", [240, 255])
def test_a_long_file_name_saves(tmp_path, length):
    dest = tmp_path / ("a" * (length - 4) + ".npy")  # 255 bytes: the longest name a folder entry takes
    save_pickle(dest, np.arange(5))
    assert np.array_equal(load_pickle(dest), np.arange(5))
    save_pickle(dest, np.arange(7))  # replaced through a temporary file beside it
    assert np.array_equal(load_pickle(dest), np.arange(7))
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_a_ctrl_c_as_the_temporary_file_is_made_leaves_none(tmp_path, monkeypatch):
    """Ctrl-C right after the temporary file is created, before its descriptor is handed back: the file is removed
    and the destination stays as it was."""
    dest = tmp_path / "k.bin"
    dest.write_bytes(b"old")
    real_open = os.open

    def interrupted(path, flags, *a, **k):
        fd = real_open(path, flags, *a, **k)
        if Path(path).name.startswith(".k.bin."):
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(archive.os, "open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(dest) as f:
            f.write(b"new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.bin"] and dest.read_bytes() == b"old"


def test_a_file_system_refusing_modes_still_saves(adult, tmp_path, monkeypatch):
    """Keeping the old file's mode is best effort: where the file system refuses to set one (vfat, some mounts),
    the save goes on."""
    import errno

    table = tmp_path / "xs.pkl"
    save_pickle(table, adult)
    real_chmod = os.chmod

    def refused(path, mode, *a, **k):
        if isinstance(path, int):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_chmod(path, mode, *a, **k)

    monkeypatch.setattr(os, "chmod", refused)
    save_pickle(table, adult.head(7))
    assert len(load_pickle(table)) == 7 and leftovers(tmp_path) == []
